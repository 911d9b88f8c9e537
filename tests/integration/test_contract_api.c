/* The REST contract rows that no other test asserted (tests/CONTRACT.api.md):
 * every problem `type` of docs/API.md#errors with its status, title and extra
 * members (`max_bytes`, `server_time`, `trade_id`, `signal_status`,
 * `retry_after`, `field`), and GET /api/signals and GET /api/admin/stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "proc.h"

/* a low fire rate so that the 429 takes three fires, not eleven */
SORTIE_WORLD_CONF("api.fire_rate_per_min = 2\n");

/* r is an application/problem+json answer with this status and
 * type /problems/<slug>, a title and the same status in the body */
static void assert_problem(const struct http_resp *r, long status, const char *slug)
{
  cr_assert_eq(r->status, status, "want %ld, got %ld %s", status, r->status, r->body);
  char ct[128];
  cr_assert(http_header(r, "Content-Type", ct, sizeof ct) && strstr(ct, "application/problem+json"),
            "Content-Type %s", r->headers);
  char want[128];
  snprintf(want, sizeof want, "/problems/%s", slug);
  const char *type = jget_str(r->json, "type");
  cr_assert(type && strcmp(type, want) == 0, "type %s, want %s: %s", type ? type : "(none)", want,
            r->body);
  const char *title = jget_str(r->json, "title");
  cr_assert(title && *title, "no title: %s", r->body);
  cr_assert_eq(jget_int(r->json, "status"), status, "%s", r->body);
  cr_log_info("%s", r->body);
}

static long req(const char *method, const char *path, const char *role, const char *body,
                const char *ctype, const char *extra, struct http_resp *r)
{
  char *tok = role ? token_for(uniq("caller"), role) : NULL;
  http(method, path, tok, body, ctype, extra, r);
  free(tok);
  return r->status;
}

static void new_signal(char *sid, size_t n, long ttl)
{
  snprintf(sid, n, "%s", uniq("csig"));
  cr_assert_eq(make_signal(sid, ttl), 201);
}

Test(contract_api, malformed_json_is_400_malformed)
{
  struct http_resp r;
  req("POST", "/api/fire", "user", "{not json", NULL, NULL, &r);
  assert_problem(&r, 400, "malformed");
  http_free(&r);
}

Test(contract_api, no_token_is_401_unauthorized_with_www_authenticate)
{
  struct http_resp r;
  req("GET", "/api/signals", NULL, NULL, NULL, NULL, &r);
  assert_problem(&r, 401, "unauthorized");
  char h[128];
  cr_assert(http_header(&r, "WWW-Authenticate", h, sizeof h), "%s", r.headers);
  cr_assert(strncmp(h, "Bearer", 6) == 0, "WWW-Authenticate: %s", h);
  http_free(&r);
}

Test(contract_api, user_on_service_endpoint_is_403_forbidden)
{
  struct http_resp r;
  req("POST", "/api/signals", "user", "{}", NULL, NULL, &r);
  assert_problem(&r, 403, "forbidden");
  http_free(&r);
  req("GET", "/api/admin/stats", "user", NULL, NULL, NULL, &r);
  assert_problem(&r, 403, "forbidden");
  http_free(&r);
}

Test(contract_api, unknown_signal_is_404_not_found)
{
  struct http_resp r;
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", uniq("nosuch"));
  req("GET", path, NULL, NULL, NULL, NULL, &r);
  assert_problem(&r, 404, "not-found");
  http_free(&r);
}

Test(contract_api, wrong_method_is_405_with_allow)
{
  struct http_resp r;
  req("GET", "/api/fire", "user", NULL, NULL, NULL, &r);
  assert_problem(&r, 405, "method-not-allowed");
  char allow[128];
  cr_assert(http_header(&r, "Allow", allow, sizeof allow), "no Allow: %s", r.headers);
  cr_assert(strstr(allow, "POST"), "Allow: %s", allow);
  http_free(&r);
}

Test(contract_api, second_fire_is_409_duplicate_fire_with_trade_id)
{
  char sid[96], user[96];
  new_signal(sid, sizeof sid, 600);
  snprintf(user, sizeof user, "%s", uniq("u"));
  struct http_resp r;
  cr_assert_eq(fire(user, sid, NULL, &r), 201, "%s", r.body);
  char tid[96];
  snprintf(tid, sizeof tid, "%s", jget_str(r.json, "trade_id"));
  http_free(&r);
  fire(user, sid, NULL, &r);
  assert_problem(&r, 409, "duplicate-fire");
  const char *t = jget_str(r.json, "trade_id");
  cr_assert(t && strcmp(t, tid) == 0, "trade_id %s, want %s", t ? t : "(none)", tid);
  http_free(&r);
}

Test(contract_api, existing_signal_id_is_409_duplicate_signal)
{
  char sid[96];
  new_signal(sid, sizeof sid, 600);
  cr_assert_eq(make_signal(sid, 600), 409);
  char *svc = token_for("svc", "service");
  char body[512];
  snprintf(body, sizeof body,
           "{\"id\":\"%s\",\"symbol\":\"AAPL\",\"direction\":\"BUY\",\"entry\":\"1\","
           "\"stop_loss\":\"0.5\",\"take_profit\":\"2\",\"ttl\":60}",
           sid);
  struct http_resp r;
  http("POST", "/api/signals", svc, body, NULL, NULL, &r);
  free(svc);
  assert_problem(&r, 409, "duplicate-signal");
  http_free(&r);
}

Test(contract_api, second_close_is_409_already_closed)
{
  char sid[96], user[96];
  new_signal(sid, sizeof sid, 600);
  snprintf(user, sizeof user, "%s", uniq("u"));
  struct http_resp r;
  cr_assert_eq(fire(user, sid, NULL, &r), 201, "%s", r.body);
  char path[256];
  snprintf(path, sizeof path, "/api/trades/%s/close", jget_str(r.json, "trade_id"));
  http_free(&r);
  cr_assert_eq(req("POST", path, "service", "{\"pnl\":\"1.5\"}", NULL, NULL, &r), 200, "%s",
               r.body);
  http_free(&r);
  req("POST", path, "service", "{\"pnl\":\"1.5\"}", NULL, NULL, &r);
  assert_problem(&r, 409, "already-closed");
  http_free(&r);
}

/* a signal past expires_at: 410 with its status; out of the active list,
 * still in the list of all signals */
Test(contract_api, expired_signal_is_410_signal_not_active_with_signal_status, .timeout = 30)
{
  char sid[96];
  new_signal(sid, sizeof sid, 1);
  char *svc = token_for("svc", "service");
  struct http_resp r;
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", sid);
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  long long exp = jget_int(r.json, "expires_at");
  http_free(&r);
  /* in the very second of expires_at it is EXPIRED already, and so not in
   * the active list (it was, for that second, with status EXPIRED) */
  while (now_s() < exp)
    usleep(20 * 1000);
  http("GET", "/api/signals?status=active&limit=200", svc, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  cr_assert(strstr(r.body, sid) == NULL, "expired at %lld, listed active at %lld: %s", exp,
            jget_int(r.json, "server_time"), r.body);
  http_free(&r);
  fire(uniq("u"), sid, NULL, &r);
  assert_problem(&r, 410, "signal-not-active");
  const char *st = jget_str(r.json, "signal_status");
  cr_assert(st && strcmp(st, "EXPIRED") == 0, "signal_status: %s", r.body);
  http_free(&r);

  http("GET", "/api/signals?status=active&limit=200", svc, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  cr_assert(strstr(r.body, sid) == NULL, "an expired signal in the active list: %s", r.body);
  http_free(&r);
  http("GET", "/api/signals?status=all&limit=200", svc, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  cr_assert(strstr(r.body, sid), "not in the list of all: %s", r.body);
  http_free(&r);
  free(svc);
}

Test(contract_api, body_over_body_max_is_413_with_max_bytes)
{
  size_t n = 16384 + 100;
  char *body = malloc(n + 1);
  memset(body, ' ', n);
  const char *head = "{\"signal_id\":\"x\",\"pad\":\"";
  memcpy(body, head, strlen(head));
  memset(body + strlen(head), 'a', n - 2 - strlen(head));
  memcpy(body + n - 2, "\"}", 2);
  body[n] = '\0';
  struct http_resp r;
  req("POST", "/api/fire", "user", body, NULL, NULL, &r);
  free(body);
  assert_problem(&r, 413, "body-too-large");
  cr_assert_eq(jget_int(r.json, "max_bytes"), 16384, "%s", r.body);
  http_free(&r);
}

Test(contract_api, non_json_content_type_is_415)
{
  struct http_resp r;
  req("POST", "/api/fire", "user", "{\"signal_id\":\"x\"}", "text/plain", NULL, &r);
  assert_problem(&r, 415, "unsupported-media-type");
  http_free(&r);
}

/* a fire timestamp outside api.fire_window_s (300 s): 422 invalid-field,
 * `field` timestamp, and the server's time to correct the clock by */
Test(contract_api, stale_fire_timestamp_is_422_with_field_and_server_time)
{
  char sid[96], body[256];
  new_signal(sid, sizeof sid, 600);
  snprintf(body, sizeof body, "{\"signal_id\":\"%s\",\"timestamp\":%lld}", sid, now_s() - 400);
  struct http_resp r;
  long long before = now_s();
  req("POST", "/api/fire", "user", body, NULL, NULL, &r);
  long long after = now_s();
  assert_problem(&r, 422, "invalid-field");
  const char *f = jget_str(r.json, "field");
  cr_assert(f && strcmp(f, "timestamp") == 0, "field: %s", r.body);
  long long st = jget_int(r.json, "server_time");
  /* the same host's clock: within a second either side of the request */
  cr_assert(st >= before - 1 && st <= after + 1, "server_time %lld, now %lld: %s", st, before,
            r.body);
  http_free(&r);
}

Test(contract_api, idempotency_key_on_another_signal_is_422_reused)
{
  char a[96], b[96], user[96], key[96];
  new_signal(a, sizeof a, 600);
  new_signal(b, sizeof b, 600);
  snprintf(user, sizeof user, "%s", uniq("u"));
  snprintf(key, sizeof key, "%s", uniq("key"));
  struct http_resp r;
  cr_assert_eq(fire(user, a, key, &r), 201, "%s", r.body);
  http_free(&r);
  fire(user, b, key, &r);
  assert_problem(&r, 422, "idempotency-key-reused");
  http_free(&r);
}

/* api.fire_rate_per_min = 2 in this world: the third fire in a minute is a
 * 429 with Retry-After and retry_after, both whole seconds 1..60 */
Test(contract_api, fire_over_rate_is_429_rate_limited_with_retry_after)
{
  char user[96];
  snprintf(user, sizeof user, "%s", uniq("u"));
  struct http_resp r;
  for (int i = 0; i < 2; i++) {
    char sid[96];
    new_signal(sid, sizeof sid, 600);
    cr_assert_eq(fire(user, sid, NULL, &r), 201, "%s", r.body);
    http_free(&r);
  }
  char sid[96];
  new_signal(sid, sizeof sid, 600);
  fire(user, sid, NULL, &r);
  assert_problem(&r, 429, "rate-limited");
  long long ra = jget_int(r.json, "retry_after");
  cr_assert(ra >= 1 && ra <= 60, "retry_after %lld", ra);
  char h[32];
  cr_assert(http_header(&r, "Retry-After", h, sizeof h), "%s", r.headers);
  cr_assert_eq(atoll(h), ra, "Retry-After %s, retry_after %lld", h, ra);
  http_free(&r);
}

/* stored data a fire cannot use (the user's counter not an integer): 500
 * internal, and the fire count is unchanged */
Test(contract_api, unusable_stored_counter_is_500_internal)
{
  char sid[96], user[96], key[256];
  new_signal(sid, sizeof sid, 600);
  snprintf(user, sizeof user, "%s", uniq("u"));
  snprintf(key, sizeof key, "%suser:%s", kp(), user);
  const char *set[] = {"HSET", key, "total_trades", "many"};
  sortie_reply_free(rcmd(4, set));
  struct http_resp r;
  fire(user, sid, NULL, &r);
  assert_problem(&r, 500, "internal");
  http_free(&r);
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", sid);
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(jget_int(r.json, "fire_count"), 0, "%s", r.body);
  http_free(&r);
}

/* ---- GET /api/signals ---- */

static json_object *signal_list(const char *query)
{
  char path[256];
  snprintf(path, sizeof path, "/api/signals%s", query);
  struct http_resp r;
  req("GET", path, "user", NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s %s", path, r.body);
  json_object *o = json_object_get(r.json);
  http_free(&r);
  json_object *arr;
  cr_assert(json_object_object_get_ex(o, "signals", &arr) && json_object_is_type(arr, json_type_array));
  cr_assert(jget_int(o, "server_time") > 0);
  return o;
}

/* the position of signal `id` in the list, -1 if absent */
static int pos_of(json_object *o, const char *id)
{
  json_object *arr;
  json_object_object_get_ex(o, "signals", &arr);
  for (size_t i = 0; i < json_object_array_length(arr); i++)
    if (strcmp(jget_str(json_object_array_get_idx(arr, i), "id"), id) == 0)
      return (int)i;
  return -1;
}

Test(contract_api, signal_list_default_is_active_soonest_expiry_first)
{
  char late[96], soon[96];
  new_signal(late, sizeof late, 7200);
  new_signal(soon, sizeof soon, 3000);
  json_object *o = signal_list("?limit=200");
  int pl = pos_of(o, late), ps = pos_of(o, soon);
  cr_assert(pl >= 0 && ps >= 0 && ps < pl, "soon at %d, late at %d", ps, pl);
  json_object *arr;
  json_object_object_get_ex(o, "signals", &arr);
  long long prev = 0;
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    json_object *s = json_object_array_get_idx(arr, i);
    cr_assert_str_eq(jget_str(s, "status"), "ACTIVE");
    long long e = jget_int(s, "expires_at");
    cr_assert(e >= prev, "not by expiry at %zu", i);
    prev = e;
  }
  json_object_put(o);
  json_object *d = signal_list("");
  cr_assert(pos_of(d, soon) >= 0);
  json_object_put(d);
}

Test(contract_api, signal_list_all_is_newest_first, .timeout = 30)
{
  char old[96], young[96];
  new_signal(old, sizeof old, 600);
  long long t = now_s();
  while (now_s() == t) /* created_at is in seconds: a later second */
    usleep(50 * 1000);
  new_signal(young, sizeof young, 600);
  json_object *o = signal_list("?status=all&limit=200");
  int po = pos_of(o, old), py = pos_of(o, young);
  cr_assert(po >= 0 && py >= 0 && py < po, "young at %d, old at %d", py, po);
  json_object *arr;
  json_object_object_get_ex(o, "signals", &arr);
  for (size_t i = 1; i < json_object_array_length(arr); i++)
    cr_assert(jget_int(json_object_array_get_idx(arr, i), "created_at") <=
                  jget_int(json_object_array_get_idx(arr, i - 1), "created_at"),
              "not newest first at %zu", i);
  json_object_put(o);
}

Test(contract_api, signal_list_limit_caps_and_is_checked)
{
  char a[96], b[96];
  new_signal(a, sizeof a, 600);
  new_signal(b, sizeof b, 600);
  json_object *o = signal_list("?status=all&limit=1");
  json_object *arr;
  json_object_object_get_ex(o, "signals", &arr);
  cr_assert_eq(json_object_array_length(arr), 1);
  json_object_put(o);
  const char *bad[] = {"?limit=0", "?limit=201", "?limit=x", "?status=ended"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char path[128];
    snprintf(path, sizeof path, "/api/signals%s", bad[i]);
    struct http_resp r;
    req("GET", path, "user", NULL, NULL, NULL, &r);
    assert_problem(&r, 400, "malformed");
    const char *f = jget_str(r.json, "field");
    cr_assert(f && strcmp(f, bad[i][1] == 'l' ? "limit" : "status") == 0, "%s: %s", bad[i], r.body);
    http_free(&r);
  }
  struct http_resp r;
  req("GET", "/api/signals?limit=200", "user", NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  http_free(&r);
}

/* ---- GET /api/admin/stats ---- */

static json_object *admin_stats(const char *role)
{
  struct http_resp r;
  req("GET", "/api/admin/stats", role, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  json_object *o = json_object_get(r.json);
  http_free(&r);
  return o;
}

Test(contract_api, admin_stats_counts_fires_and_active_signals)
{
  json_object *a = admin_stats("admin");
  long long t0 = now_s();
  cr_assert(jget_int(a, "server_time") >= t0 - 1 && jget_int(a, "server_time") <= t0 + 1);
  cr_assert(jget_int(a, "fires_last_minute") >= 0);
  long long this0 = jget_int(a, "fires_this_minute");
  long long minute0 = jget_int(a, "server_time") / 60;
  json_object_put(a);

  char sid[96];
  new_signal(sid, sizeof sid, 600);
  struct http_resp r;
  cr_assert_eq(fire(uniq("u"), sid, NULL, &r), 201, "%s", r.body);
  http_free(&r);

  json_object *b = admin_stats("service");
  long long minute1 = jget_int(b, "server_time") / 60;
  cr_assert(jget_int(b, "active_signals") >= 1, "active_signals: %s", json_object_to_json_string(b));
  if (minute1 == minute0)
    cr_assert(jget_int(b, "fires_this_minute") >= this0 + 1, "%lld then %s", this0,
              json_object_to_json_string(b));
  else /* the UTC minute turned in between: the fire is in one of the two */
    cr_assert(jget_int(b, "fires_this_minute") + jget_int(b, "fires_last_minute") >= 1, "%s",
              json_object_to_json_string(b));
  json_object_put(b);
}

/* ---- sortie-token ---- */

static void run_token(const char *const *args, struct proc_result *r)
{
  char bin[512];
  snprintf(bin, sizeof bin, "%s/bin/sortie-token", getenv("BUILD"));
  const char *argv[12] = {bin};
  size_t n = 1;
  for (; args[n - 1] && n < 11; n++)
    argv[n] = args[n - 1];
  argv[n] = NULL;
  struct proc_spec sp = {.argv = argv, .timeout_ms = 30000};
  cr_assert_eq(proc_run(&sp, r), 0, "could not start %s", bin);
  cr_assert(r->exited, "sortie-token did not exit");
}

/* the payload of a JWT, decoded (base64url), parsed */
static json_object *jwt_payload(const char *tok)
{
  const char *a = strchr(tok, '.'), *b = a ? strchr(a + 1, '.') : NULL;
  cr_assert(b, "not a JWT: %s", tok);
  static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char out[1024];
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (const char *p = a + 1; p < b && o < sizeof out - 1; p++) {
    const char *q = strchr(al, *p);
    cr_assert(q && *p, "bad base64url in %s", tok);
    acc = (acc << 6) | (unsigned)(q - al);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  out[o] = '\0';
  json_object *j = json_tokener_parse(out);
  cr_assert(j, "payload not JSON: %s", out);
  return j;
}

Test(contract_api, sortie_token_mints_a_token_the_api_takes)
{
  char sub[96];
  snprintf(sub, sizeof sub, "%s", uniq("adm"));
  const char *args[] = {"-c", world_conf(), "-r", "admin", "-t", "120", sub, NULL};
  struct proc_result r;
  long long t0 = now_s();
  run_token(args, &r);
  cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
  cr_assert(r.out_len > 1 && r.out[r.out_len - 1] == '\n' && !strchr(r.out, ' '), "stdout: %s",
            r.out);
  r.out[r.out_len - 1] = '\0';
  cr_assert(strchr(r.out, '\n') == NULL, "more than one line: %s", r.out);
  json_object *p = jwt_payload(r.out);
  cr_assert_str_eq(jget_str(p, "sub"), sub);
  cr_assert_str_eq(jget_str(p, "role"), "admin");
  long long exp = jget_int(p, "exp");
  cr_assert(exp >= t0 + 120 && exp <= now_s() + 120, "exp %lld, now %lld", exp, t0);
  json_object_put(p);
  struct http_resp h;
  http("GET", "/api/admin/stats", r.out, NULL, NULL, NULL, &h);
  cr_assert_eq(h.status, 200, "%s", h.body);
  http_free(&h);
  proc_result_free(&r);

  /* default: role user, TTL 3600 s, and the config from $SORTIE_CONF */
  const char *args2[] = {sub, NULL};
  char env[600];
  snprintf(env, sizeof env, "SORTIE_CONF=%s", world_conf());
  const char *envv[] = {env, NULL};
  char bin[512];
  snprintf(bin, sizeof bin, "%s/bin/sortie-token", getenv("BUILD"));
  const char *argv[] = {bin, args2[0], NULL};
  struct proc_spec sp = {.argv = argv, .env = envv, .timeout_ms = 30000};
  t0 = now_s();
  cr_assert_eq(proc_run(&sp, &r), 0);
  cr_assert(r.exited && r.code == 0, "exit %d: %s", r.code, r.err);
  r.out[strcspn(r.out, "\n")] = '\0';
  p = jwt_payload(r.out);
  cr_assert(jget_str(p, "role") == NULL || strcmp(jget_str(p, "role"), "user") == 0,
            "role %s", jget_str(p, "role"));
  exp = jget_int(p, "exp");
  cr_assert(exp >= t0 + 3600 && exp <= now_s() + 3600, "exp %lld, now %lld", exp, t0);
  json_object_put(p);
  http("GET", "/api/admin/stats", r.out, NULL, NULL, NULL, &h);
  cr_assert_eq(h.status, 403, "%s", h.body);
  http_free(&h);
  proc_result_free(&r);
}

/* usage errors exit 2 with the usage (or the reason) on stderr and nothing on
 * stdout; a key that cannot be read exits 1 */
Test(contract_api, sortie_token_refuses_bad_arguments)
{
  const char *c = world_conf();
  const char *bad_role[] = {"-c", c, "-r", "root", "alice", NULL};
  const char *bad_ttl[] = {"-c", c, "-t", "0", "alice", NULL};
  const char *no_sub[] = {"-c", c, NULL};
  const char *bad_sub[] = {"-c", c, "al ice", NULL};
  const char *two_subs[] = {"-c", c, "alice", "bob", NULL};
  const char *const *usage2[] = {bad_role, bad_ttl, no_sub, bad_sub, two_subs};
  for (size_t i = 0; i < sizeof usage2 / sizeof *usage2; i++) {
    struct proc_result r;
    run_token(usage2[i], &r);
    cr_assert_eq(r.code, 2, "case %zu: exit %d", i, r.code);
    cr_assert_eq(r.out_len, 0, "case %zu: stdout %s", i, r.out);
    cr_assert(r.err_len > 0, "case %zu: nothing on stderr", i);
    proc_result_free(&r);
  }
  const char *no_key[] = {"-c", c, "-k", "/nonexistent/sortie.key", "alice", NULL};
  struct proc_result r;
  run_token(no_key, &r);
  cr_assert_eq(r.code, 1, "exit %d: %s", r.code, r.err);
  cr_assert_eq(r.out_len, 0, "stdout %s", r.out);
  cr_assert(r.err_len > 0);
  proc_result_free(&r);
}

/* ---- reads: headers and members no other test asserts ---- */

Test(contract_api, fire_count_has_etag_and_cache_control_no_cache)
{
  char sid[96], path[256];
  new_signal(sid, sizeof sid, 600);
  snprintf(path, sizeof path, "/api/signals/%s/fire-count", sid);
  struct http_resp r;
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  char h[128];
  cr_assert(http_header(&r, "Cache-Control", h, sizeof h) && strstr(h, "no-cache"), "%s",
            r.headers);
  cr_assert(http_header(&r, "ETag", h, sizeof h) && *h, "%s", r.headers);
  cr_assert(http_header(&r, "Content-Type", h, sizeof h) && strstr(h, "application/json"), "%s",
            r.headers);
  http_free(&r);
}

/* the mission read carries the server's time and a cursor that a client can
 * follow the mission from: the next fire is the first event after it */
Test(contract_api, mission_has_server_time_and_a_cursor_to_follow_from)
{
  char sid[96], user[96], path[256];
  new_signal(sid, sizeof sid, 600);
  snprintf(user, sizeof user, "%s", uniq("u"));
  char *tok = token_for(user, "user");
  snprintf(path, sizeof path, "/api/missions/%s", sid);
  struct http_resp r;
  long long t0 = now_s();
  http("GET", path, tok, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  long long st = jget_int(r.json, "server_time");
  cr_assert(st >= t0 - 1 && st <= now_s() + 1, "server_time %lld: %s", st, r.body);
  const char *c = jget_str(r.json, "cursor");
  cr_assert(c && strchr(c, '-'), "cursor: %s", r.body);
  char cursor[64];
  snprintf(cursor, sizeof cursor, "%s", c);
  http_free(&r);
  cr_assert_eq(fire(user, sid, NULL, &r), 201, "%s", r.body);
  http_free(&r);
  snprintf(path, sizeof path, "/api/events?channels=mission:%s&cursor=%s", sid, cursor);
  http("GET", path, tok, NULL, NULL, NULL, &r);
  free(tok);
  cr_assert_eq(r.status, 200, "%s", r.body);
  json_object *ev;
  cr_assert(json_object_object_get_ex(r.json, "events", &ev));
  cr_assert_eq(json_object_array_length(ev), 1, "%s", r.body);
  cr_assert_str_eq(jget_str(json_object_array_get_idx(ev, 0), "type"), "fire_count_update");
  http_free(&r);
}

/* ---- log.file / log.level (info, the world's default) ---- */

static int log_has(const char *needle)
{
  char p[512];
  snprintf(p, sizeof p, "%s/log/sortie.log", world_run());
  return file_has(p, needle);
}

/* a refusal is an [http] info line in log.file with the query's token=
 * redacted; a success is a debug line, not written at info. The success is
 * sent first: the refusal's line is the marker read up to. */
Test(contract_api, log_has_refusals_at_info_with_the_token_redacted, .timeout = 30)
{
  char sid[96], okpath[256], badpath[256], secret[96], okmark[96];
  new_signal(sid, sizeof sid, 600);
  snprintf(okmark, sizeof okmark, "%s", uniq("okmark"));
  snprintf(secret, sizeof secret, "%s", uniq("SEKRET"));
  snprintf(okpath, sizeof okpath, "/api/signals/%s?m=%s", sid, okmark);
  struct http_resp r;
  http("GET", okpath, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  http_free(&r);
  snprintf(badpath, sizeof badpath, "/api/signals/%s?m=x&token=%s", uniq("nosuch"), secret);
  http("GET", badpath, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 404, "%s", r.body);
  http_free(&r);
  char want[256];
  snprintf(want, sizeof want, "?m=x&token=REDACTED 404");
  long long until = now_ms() + 20000;
  while (!log_has(want) && now_ms() < until)
    usleep(50 * 1000);
  cr_assert(log_has(want), "no info line with %s in the log", want);
  cr_assert(!log_has(secret), "the token is in the log");
  cr_assert(!log_has(okmark), "a success was logged at info");
}
