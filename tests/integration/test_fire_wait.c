/* api.fire_wait_replicas: a write is answered 2xx only once a replica has it
 * (WAIT). With a real replica of the world's Redis: a fire answers 201 and the
 * replica has the trade; with the replica stalled (SIGSTOP), 503
 * outcome-unknown after about api.fire_wait_timeout_ms, and the retry with the
 * same Idempotency-Key gives the fire's real result. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

SORTIE_WORLD_CONF("api.fire_wait_replicas = 1\napi.fire_wait_timeout_ms = 1000\n");

static int replica_port, replica_pid;

static int free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &l) == 0, "free_port");
  close(fd);
  return ntohs(a.sin_port);
}

/* the first line a shell command prints, into out ("" if none) */
static const char *sh_line(const char *cmd, char *out, size_t n)
{
  out[0] = '\0';
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p, "%s", cmd);
  if (fgets(out, (int)n, p) == NULL)
    out[0] = '\0';
  out[strcspn(out, "\r\n")] = '\0';
  pclose(p);
  return out;
}

/* HGET on the replica */
static const char *replica_hget(const char *key, const char *field, char *out, size_t n)
{
  char cmd[700];
  snprintf(cmd, sizeof cmd, "redis-cli -p %d --raw HGET '%s' '%s' 2>/dev/null", replica_port,
           key, field);
  return sh_line(cmd, out, n);
}

/* a replica of the world's Redis, in the world's run folder, linked and synced */
static void replica_start(void)
{
  char dir[600], cmd[2048], line[256];
  snprintf(dir, sizeof dir, "%s/replica", world_run());
  mkdir(dir, 0755);
  replica_port = free_port();
  snprintf(cmd, sizeof cmd,
           "redis-server --bind 127.0.0.1 --port %d --dir %s --pidfile %s/redis.pid "
           "--logfile %s/redis.log --daemonize yes --save '' --appendonly no "
           "--replicaof 127.0.0.1 %d >/dev/null",
           replica_port, dir, dir, dir, world_redis_port());
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  snprintf(cmd, sizeof cmd, "cat %s/redis.pid 2>/dev/null", dir);
  for (int i = 0; i < 100 && replica_pid <= 0; i++) {
    replica_pid = atoi(sh_line(cmd, line, sizeof line));
    if (replica_pid <= 0)
      usleep(50000);
  }
  cr_assert(replica_pid > 0, "the replica wrote no pid (see %s/redis.log)", dir);
  snprintf(cmd, sizeof cmd, "redis-cli -p %d info replication 2>/dev/null | "
           "grep -c '^master_link_status:up'", replica_port);
  int up = 0;
  for (int i = 0; i < 200 && !up; i++) {
    up = atoi(sh_line(cmd, line, sizeof line)) == 1;
    if (!up)
      usleep(50000);
  }
  cr_assert(up, "the replica did not link to the world's Redis (see %s/redis.log)", dir);
}

/* .fini: the replica is woken and stopped, by its pid */
static void replica_stop(void)
{
  world_stall_end();
  if (replica_pid > 0) {
    kill(replica_pid, SIGCONT);
    kill(replica_pid, SIGTERM);
    for (int i = 0; i < 100 && kill(replica_pid, 0) == 0; i++)
      usleep(50000);
    if (kill(replica_pid, 0) == 0)
      kill(replica_pid, SIGKILL);
  }
  replica_pid = 0;
}

static void expect_outcome_unknown(struct http_resp *r, const char *what)
{
  char ra[32] = "";
  cr_assert_eq(r->status, 503, "%s: %ld %s", what, r->status, r->body ? r->body : "");
  cr_assert_not_null(r->json, "%s: %s", what, r->body);
  const char *type = jget_str(r->json, "type");
  cr_assert(type && strstr(type, "/outcome-unknown"), "%s: %s", what, r->body);
  cr_assert(http_header(r, "Retry-After", ra, sizeof ra) && atoi(ra) == 1, "%s: Retry-After", what);
}

Test(fire_wait, a_fire_waits_for_its_replica, .fini = replica_stop)
{
  replica_start();
  char sid[96], u1[96], u2[96], key[96], k[256], v[128], tid1[64];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  snprintf(u1, sizeof u1, "%s", uniq("a"));
  snprintf(u2, sizeof u2, "%s", uniq("b"));
  snprintf(key, sizeof key, "%s", uniq("idem"));
  cr_assert_eq(make_signal(sid, 3600), 201);

  /* replica up: 201, and the replica has the trade already */
  struct http_resp r;
  cr_assert_eq(fire(u1, sid, NULL, &r), 201, "%s", r.body);
  snprintf(tid1, sizeof tid1, "%s", jget_str(r.json, "trade_id"));
  http_free(&r);
  snprintf(k, sizeof k, "%strade:%s", kp(), tid1);
  cr_assert_str_eq(replica_hget(k, "user_id", v, sizeof v), u1);

  /* replica stalled: written on the primary, but not confirmed in time */
  world_stall(replica_pid, 30);
  long long t0 = now_ms();
  fire(u2, sid, key, &r);
  long long took = now_ms() - t0;
  expect_outcome_unknown(&r, "fire with the replica stalled");
  const char *d = jget_str(r.json, "detail");
  cr_assert(d && strstr(d, "Idempotency-Key"), "detail: %s", d ? d : "-");
  http_free(&r);
  /* the contract: no 503 before api.fire_wait_timeout_ms (1000 here, less the
   * 100 ms tolerance docs/API.md states); the upper bound only tells an answer
   * from the stall's end (30 s), whatever the machine's speed */
  cr_assert(took >= 900, "the 503 came after %lld ms, before the 1000 ms timeout", took);
  cr_assert(took < 20000, "the 503 came after %lld ms (timeout 1000)", took);
  /* the publish waits the same way */
  char *svc = token_for("test-feed", "service");
  char body[256];
  snprintf(body, sizeof body, "{\"channel\":\"mission:%s\",\"type\":\"note\",\"data\":1}", sid);
  http("POST", "/api/publish", svc, body, NULL, NULL, &r);
  expect_outcome_unknown(&r, "publish with the replica stalled");
  http_free(&r);
  free(svc);
  snprintf(k, sizeof k, "%ssignal:%s:fired", kp(), sid);
  const char *hg[] = {"HGET", k, u2};
  char *tid2 = rstr(3, hg);
  cr_assert_not_null(tid2, "the fire is not on the primary");
  world_stall_end();

  /* the retry with the same key: the real result (the fire, replayed) */
  cr_assert_eq(fire(u2, sid, key, &r), 201, "retry: %s", r.body);
  char rep[32] = "";
  cr_assert(http_header(&r, "Idempotent-Replayed", rep, sizeof rep) && strcmp(rep, "true") == 0,
            "not replayed: %s", r.headers);
  cr_assert_str_eq(jget_str(r.json, "trade_id"), tid2);
  http_free(&r);
  snprintf(k, sizeof k, "%ssignal:%s", kp(), sid);
  const char *fc[] = {"HGET", k, "fire_count"};
  char *count = rstr(3, fc);
  cr_assert_str_eq(count ? count : "-", "2");
  free(count);
  /* and the replica has it now */
  snprintf(k, sizeof k, "%strade:%s", kp(), tid2);
  cr_assert_str_eq(replica_hget(k, "user_id", v, sizeof v), u2);
  free(tid2);
}
