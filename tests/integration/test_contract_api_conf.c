/* Configuration keys of the REST API with a value other than the default
 * (tests/CONTRACT.api.md): api.problem_base, redis.prefix, redis.db,
 * api.idempotency_ttl_s, trading.equity_start, trading.drawdown_alert_pct;
 * redis.socket; history.maxlen; SIGHUP to the sortie-api pool reopens log.file. */
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "proc.h"

SORTIE_WORLD_CONF("api.problem_base = https://sortie.example/problems/\n"
                  "redis.prefix = ctr:\n"
                  "redis.db = 2\n"
                  "api.idempotency_ttl_s = 120\n"
                  "trading.equity_start = 500.00\n"
                  "trading.drawdown_alert_pct = 50\n"
                  "history.maxlen = 10\n");

Test(contract_conf, problem_type_is_problem_base_plus_slug)
{
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", uniq("nosuch"));
  struct http_resp r;
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 404, "%s", r.body);
  const char *t = jget_str(r.json, "type");
  cr_assert(t && strcmp(t, "https://sortie.example/problems/not-found") == 0, "%s", r.body);
  http_free(&r);
}

static long long exists_in_db(const char *db, const char *key)
{
  const char *sel[] = {"SELECT", db};
  sortie_reply_free(rcmd(2, sel));
  const char *ex[] = {"EXISTS", key};
  long long n = rinteger(2, ex);
  const char *back[] = {"SELECT", "2"};
  sortie_reply_free(rcmd(2, back));
  return n;
}

Test(contract_conf, keys_go_under_redis_prefix_in_redis_db)
{
  cr_assert_str_eq(kp(), "ctr:");
  char sid[96], key[256], other[256];
  snprintf(sid, sizeof sid, "%s", uniq("csig"));
  cr_assert_eq(make_signal(sid, 600), 201);
  snprintf(key, sizeof key, "ctr:signal:%s", sid);
  snprintf(other, sizeof other, "sortie:signal:%s", sid);
  cr_assert_eq(exists_in_db("2", key), 1, "%s not in db 2", key);
  cr_assert_eq(exists_in_db("0", key), 0, "%s in db 0", key);
  cr_assert_eq(exists_in_db("2", other), 0, "%s under the default prefix", other);
}

Test(contract_conf, idempotent_answer_is_kept_for_idempotency_ttl_s)
{
  char sid[96], user[96], key[96], rk[300];
  snprintf(sid, sizeof sid, "%s", uniq("csig"));
  cr_assert_eq(make_signal(sid, 600), 201);
  snprintf(user, sizeof user, "%s", uniq("u"));
  snprintf(key, sizeof key, "%s", uniq("k"));
  struct http_resp r;
  cr_assert_eq(fire(user, sid, key, &r), 201, "%s", r.body);
  http_free(&r);
  snprintf(rk, sizeof rk, "ctr:idem:%s:%s", user, key);
  const char *ttl[] = {"TTL", rk};
  long long t = rinteger(2, ttl);
  cr_assert(t > 100 && t <= 120, "TTL of %s: %lld", rk, t);
}

static long long count_type(json_object *ev, const char *type)
{
  long long n = 0;
  for (size_t i = 0; i < json_object_array_length(ev); i++)
    if (strcmp(jget_str(json_object_array_get_idx(ev, i), "type"), type) == 0)
      n++;
  return n;
}

/* fires a new signal as `user` and closes the trade with `pnl`; the answer */
static void fire_and_close(const char *user, const char *pnl, struct http_resp *r)
{
  char sid[96], path[256], body[64];
  snprintf(sid, sizeof sid, "%s", uniq("csig"));
  cr_assert_eq(make_signal(sid, 600), 201);
  cr_assert_eq(fire(user, sid, NULL, r), 201, "%s", r->body);
  snprintf(path, sizeof path, "/api/trades/%s/close", jget_str(r->json, "trade_id"));
  http_free(r);
  snprintf(body, sizeof body, "{\"pnl\":\"%s\"}", pnl);
  char *svc = token_for("svc", "service");
  http("POST", path, svc, body, NULL, NULL, r);
  free(svc);
  cr_assert_eq(r->status, 200, "%s", r->body);
}

/* equity starts at trading.equity_start (500.00); with drawdown_alert_pct 50
 * a 20 % drawdown is quiet and one past 50 % alerts once */
Test(contract_conf, equity_start_and_drawdown_alert_pct)
{
  char user[96], path[256];
  snprintf(user, sizeof user, "%s", uniq("u"));
  snprintf(path, sizeof path, "/api/users/%s/stats", user);
  char *adm = token_for("adm", "admin");
  struct http_resp r;
  http("GET", path, adm, NULL, NULL, NULL, &r);
  free(adm);
  cr_assert_str_eq(jget_str(r.json, "stats.equity"), "500.00", "%s", r.body);
  http_free(&r);

  fire_and_close(user, "-100", &r);
  cr_assert_str_eq(jget_str(r.json, "stats.equity"), "400.00", "%s", r.body);
  http_free(&r);
  char ch[128];
  snprintf(ch, sizeof ch, "user:%s", user);
  json_object *ev = rstream(ch);
  cr_assert_eq(count_type(ev, "equity_updated"), 1, "%s", json_object_to_json_string(ev));
  cr_assert_eq(count_type(ev, "risk_alert"), 0, "20 %% alerted: %s", json_object_to_json_string(ev));
  json_object_put(ev);

  fire_and_close(user, "-200", &r);
  cr_assert_str_eq(jget_str(r.json, "stats.equity"), "200.00", "%s", r.body);
  http_free(&r);
  ev = rstream(ch);
  cr_assert_eq(count_type(ev, "equity_updated"), 2, "%s", json_object_to_json_string(ev));
  cr_assert_eq(count_type(ev, "risk_alert"), 1, "%s", json_object_to_json_string(ev));
  json_object_put(ev);
}

/* runs sortie-expire -q with the world's config and these overrides */
static int expire_with(const char *socket_env, const char *more_env)
{
  char bin[512], conf[600];
  snprintf(bin, sizeof bin, "%s/bin/sortie-expire", getenv("BUILD"));
  snprintf(conf, sizeof conf, "SORTIE_CONF=%s", world_conf());
  const char *env[] = {conf, "SORTIE_REDIS_PORT=1", socket_env, more_env, NULL};
  const char *argv[] = {bin, "-q", NULL};
  struct proc_spec sp = {.argv = argv, .env = env, .timeout_ms = 30000};
  struct proc_result r;
  cr_assert_eq(proc_run(&sp, &r), 0);
  cr_assert(r.exited, "sortie-expire did not exit");
  int code = r.code;
  cr_log_info("exit %d: %s", code, r.err);
  proc_result_free(&r);
  return code;
}

/* a private Redis that listens on the unix socket RUN/extra/NAME.sock only
 * (its path in sock), with more options (shell words); stop_redis(NAME) */
static void start_redis(const char *name, const char *more, char *sock, size_t n)
{
  const char *run = world_run();
  char cmd[2048];
  snprintf(sock, n, "%s/extra/%s.sock", run, name);
  snprintf(cmd, sizeof cmd,
           "mkdir -p '%s/extra' && redis-server --port 0 --unixsocket '%s' %s --save '' "
           "--appendonly no --daemonize yes --pidfile '%s/extra/%s.pid' --dir '%s/extra' "
           "--logfile '%s/extra/%s.log'",
           run, sock, more, run, name, run, run, name);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  long long until = now_ms() + 10000;
  while (access(sock, F_OK) != 0 && now_ms() < until)
    usleep(20 * 1000);
  cr_assert_eq(access(sock, F_OK), 0, "no socket %s", sock);
}

static void stop_redis(const char *name)
{
  char pidf[300];
  snprintf(pidf, sizeof pidf, "extra/%s.pid", name);
  long pid = world_pid(pidf);
  if (pid > 0)
    kill((pid_t)pid, SIGTERM);
}

/* redis.socket wins over redis.host/port: with the port pointing nowhere,
 * a program reaches a Redis listening only on the unix socket */
Test(contract_conf, redis_socket_is_used_instead_of_host_and_port, .timeout = 30)
{
  char sock[512], env[600];
  start_redis("capi-redis", "", sock, sizeof sock);
  snprintf(env, sizeof env, "SORTIE_REDIS_SOCKET=%s", sock);
  int ok = expire_with(env, NULL);
  int none = expire_with("SORTIE_REDIS_SOCKET=/nonexistent/redis.sock", NULL);
  stop_redis("capi-redis");
  cr_assert_eq(ok, 0, "sortie-expire over the socket: exit %d", ok);
  cr_assert_eq(none, 1, "sortie-expire with a missing socket: exit %d", none);
}

/* history.maxlen caps each channel's history (about: Redis trims whole
 * nodes of 100 entries); a cursor from before what was trimmed gets a reset */
Test(contract_conf, history_is_capped_at_about_maxlen_and_a_trimmed_cursor_resets, .timeout = 60)
{
  char sym[64], ch[96];
  snprintf(sym, sizeof sym, "C%d", (int)(now_ms() % 100000000));
  snprintf(ch, sizeof ch, "market:%s", sym);
  char *svc = token_for("svc", "service");
  char path[256];
  snprintf(path, sizeof path, "/api/events?channels=%s", ch);
  struct http_resp r;
  http("GET", path, svc, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  char cursor[64];
  snprintf(cursor, sizeof cursor, "%s", jget_str(r.json, "cursor"));
  http_free(&r);
  char body[256];
  snprintf(body, sizeof body, "{\"channel\":\"%s\",\"type\":\"market_update\",\"data\":{}}", ch);
  for (int i = 0; i < 250; i++) {
    http("POST", "/api/publish", svc, body, NULL, NULL, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_free(&r);
  }
  json_object *h = rstream(ch);
  size_t n = json_object_array_length(h);
  json_object_put(h);
  cr_assert(n >= 10 && n <= 110, "%zu events kept with history.maxlen = 10", n);
  snprintf(path, sizeof path, "/api/events?channels=%s&cursor=%s", ch, cursor);
  http("GET", path, svc, NULL, NULL, NULL, &r);
  free(svc);
  cr_assert_eq(r.status, 200, "%s", r.body);
  json_object *ev;
  cr_assert(json_object_object_get_ex(r.json, "events", &ev) && json_object_array_length(ev) >= 1);
  json_object *first = json_object_array_get_idx(ev, 0);
  cr_assert_str_eq(jget_str(first, "type"), "reset", "%s", r.body);
  cr_assert_str_eq(jget_str(first, "channel"), ch);
  http_free(&r);
}

/* redis.password_file: a Redis that requires a password is reached with the
 * file's password (its newline left out), and refused without it */
Test(contract_conf, redis_password_file_authenticates, .timeout = 30)
{
  char sock[512], pwf[512], env[600], pwenv[600];
  start_redis("capi-redis-pw", "--requirepass capi-s3cret", sock, sizeof sock);
  snprintf(pwf, sizeof pwf, "%s/extra/capi-redis.pw", world_run());
  FILE *pw = fopen(pwf, "w");
  cr_assert_not_null(pw, "%s", pwf);
  fputs("capi-s3cret\n", pw);
  fclose(pw);
  snprintf(env, sizeof env, "SORTIE_REDIS_SOCKET=%s", sock);
  snprintf(pwenv, sizeof pwenv, "SORTIE_REDIS_PASSWORD_FILE=%s", pwf);
  int with = expire_with(env, pwenv);
  int without = expire_with(env, NULL);
  stop_redis("capi-redis-pw");
  cr_assert_eq(with, 0, "with the password file: exit %d", with);
  cr_assert_eq(without, 1, "without a password: exit %d", without);
}

/* a 404 whose log line carries `mark` */
static void refused_with(const char *mark)
{
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", mark);
  struct http_resp r;
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 404, "%s", r.body);
  http_free(&r);
}

/* log rotation: the file moved away, SIGHUP to the pool master, and the
 * programs write to a new log.file */
Test(contract_conf, sighup_to_the_api_pool_reopens_log_file, .timeout = 60)
{
  char logf[512], old[512];
  snprintf(logf, sizeof logf, "%s/log/sortie.log", world_run());
  snprintf(old, sizeof old, "%s/log/sortie.log.capi", world_run());
  char mark[96];
  snprintf(mark, sizeof mark, "%s", uniq("before"));
  refused_with(mark);
  long long until = now_ms() + 20000;
  while (!file_has(logf, mark) && now_ms() < until)
    usleep(50 * 1000);
  cr_assert(file_has(logf, mark), "no line for %s before the rotation", mark);
  cr_assert_eq(rename(logf, old), 0);
  pid_t pid = (pid_t)world_pid("api.pid");
  cr_assert_gt(pid, 0, "no pid in %s/api.pid", world_run());
  cr_assert_eq(kill(pid, SIGHUP), 0);
  /* until a worker that reopened answers: each try has its own mark */
  int found = 0;
  until = now_ms() + 20000;
  while (!found && now_ms() < until) {
    snprintf(mark, sizeof mark, "%s", uniq("after"));
    refused_with(mark);
    for (int i = 0; i < 10 && !found; i++) {
      found = file_has(logf, mark);
      if (!found)
        usleep(50 * 1000);
    }
  }
  cr_assert(found, "nothing written to a new %s after SIGHUP", logf);
}
