/* The truth of a 503. Redis stalled (SIGSTOP) past redis.timeout_ms while a
 * write is in flight: the answer is 503 outcome-unknown (Redis got the command
 * and runs it once it wakes), and sending the request again tells the real
 * result. Redis down before the request: 503 redis-unavailable, nothing
 * written. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Every test here stalls or stops the world's Redis, and Criterion runs two
 * tests at once: each holds this lock for its whole length. */
static void outage_lock(void)
{
  char path[600];
  snprintf(path, sizeof path, "%s/outcome.lock", world_run());
  int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  cr_assert(fd >= 0, "cannot open %s", path);
  cr_assert_eq(flock(fd, LOCK_EX), 0); /* released when the test's process ends */
}

static int redis_pid(void)
{
  int pid = (int)world_pid("redis/redis.pid");
  cr_assert_gt(pid, 0, "no pid in %s/redis/redis.pid", world_run());
  return pid;
}

static int redis_up(void)
{
  char cmd[128];
  snprintf(cmd, sizeof cmd, "redis-cli -p %d ping 2>/dev/null | grep -q PONG", world_redis_port());
  return system(cmd) == 0;
}

/* .fini: Redis runs again, unstalled, whatever happened in the test */
static void redis_back(void)
{
  world_stall_end();
  if (!redis_up())
    world_ctl("redis-start");
}

static void expect_503(struct http_resp *r, const char *slug, const char *what)
{
  char ct[128] = "", ra[32] = "";
  cr_assert_eq(r->status, 503, "%s: %ld %s", what, r->status, r->body ? r->body : "");
  cr_assert(http_header(r, "Content-Type", ct, sizeof ct) &&
            strncmp(ct, "application/problem+json", 24) == 0, "%s: Content-Type %s", what, ct);
  cr_assert(http_header(r, "Retry-After", ra, sizeof ra) && atoi(ra) == 1,
            "%s: Retry-After '%s'", what, ra);
  cr_assert_not_null(r->json, "%s: body %s", what, r->body);
  const char *type = jget_str(r->json, "type");
  cr_assert(type && strlen(type) > strlen(slug) &&
            strcmp(type + strlen(type) - strlen(slug), slug) == 0,
            "%s: type %s, expected .../%s: %s", what, type ? type : "-", slug, r->body);
  cr_assert_eq(jget_int(r->json, "retry_after"), 1, "%s: %s", what, r->body);
}

/* a Redis field as text, "" when absent (static ring of 4) */
static const char *hget(const char *key, const char *field)
{
  static char ring[4][128];
  static int n;
  char *v = ring[n++ % 4];
  const char *av[] = {"HGET", key, field};
  char *s = rstr(3, av);
  snprintf(v, sizeof ring[0], "%s", s ? s : "");
  free(s);
  return v;
}

/* waits up to 5 s for HGET key field to be non-empty; returns it */
static const char *await_field(const char *key, const char *field)
{
  for (int i = 0; i < 100; i++) {
    const char *v = hget(key, field);
    if (*v)
      return v;
    usleep(50000);
  }
  return "";
}

static long post(const char *path, const char *token, const char *body, struct http_resp *r)
{
  http("POST", path, token, body, NULL, NULL, r);
  return r->status;
}

Test(outcome, stalled_writes_are_outcome_unknown_and_the_retry_tells, .fini = redis_back)
{
  outage_lock();
  char sid[96], u_key[96], u_nokey[96], u_trade[96], key[96], newsig[96], ch[128];
  char fired[256], skey[256], trade[64], k[256];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  snprintf(u_key, sizeof u_key, "%s", uniq("uk"));
  snprintf(u_nokey, sizeof u_nokey, "%s", uniq("un"));
  snprintf(u_trade, sizeof u_trade, "%s", uniq("ut"));
  snprintf(key, sizeof key, "%s", uniq("idem"));
  snprintf(newsig, sizeof newsig, "%s", uniq("new"));
  snprintf(ch, sizeof ch, "mission:%s", uniq("pub"));
  snprintf(skey, sizeof skey, "%ssignal:%s", kp(), sid);
  snprintf(fired, sizeof fired, "%ssignal:%s:fired", kp(), sid);
  cr_assert_eq(make_signal(sid, 3600), 201);
  struct http_resp r;
  cr_assert_eq(fire(u_trade, sid, NULL, &r), 201, "%s", r.body);
  snprintf(trade, sizeof trade, "%s", jget_str(r.json, "trade_id"));
  http_free(&r);
  char *svc = token_for("test-feed", "service");
  char sigbody[512], pubbody[512], path[256];
  snprintf(sigbody, sizeof sigbody,
           "{\"id\":\"%s\",\"symbol\":\"AAPL\",\"direction\":\"BUY\",\"entry\":\"145.75\","
           "\"stop_loss\":\"140.00\",\"take_profit\":\"160.00\",\"ttl\":3600}", newsig);
  snprintf(pubbody, sizeof pubbody, "{\"channel\":\"%s\",\"type\":\"note\",\"data\":{\"n\":1}}",
           ch);
  /* every script once before the stall: a script not yet in Redis's cache
   * would come back NOSCRIPT from the stall, not run (its retry then does it) */
  cr_assert_eq(fire(uniq("w"), sid, NULL, &r), 201, "%s", r.body);
  snprintf(path, sizeof path, "/api/trades/%s/close", jget_str(r.json, "trade_id"));
  http_free(&r);
  cr_assert_eq(post(path, svc, "{\"pnl\":\"1\"}", &r), 200, "%s", r.body);
  http_free(&r);
  cr_assert_eq(post("/api/publish", svc, "{\"channel\":\"signals\",\"type\":\"note\",\"data\":0}",
                    &r), 201, "%s", r.body);
  http_free(&r);
  snprintf(path, sizeof path, "/api/trades/%s/close", trade);

  /* Redis takes each command (the kernel queues it) but answers none */
  world_stall(redis_pid(), 30);
  long long t0 = now_ms();
  fire(u_key, sid, key, &r);
  long long took = now_ms() - t0;
  expect_503(&r, "outcome-unknown", "fire with a key");
  const char *detail = jget_str(r.json, "detail");
  cr_assert(detail && strstr(detail, "outcome is unknown") && strstr(detail, "Idempotency-Key"),
            "detail: %s", detail ? detail : "-");
  /* only tells the timeout's 503 from Redis waking at the stall's end (30 s) */
  cr_assert(took < 20000, "the 503 took %lld ms", took);
  http_free(&r);
  fire(u_nokey, sid, NULL, &r);
  expect_503(&r, "outcome-unknown", "fire without a key");
  http_free(&r);
  post("/api/signals", svc, sigbody, &r);
  expect_503(&r, "outcome-unknown", "POST /api/signals");
  http_free(&r);
  post(path, svc, "{\"pnl\":\"1.5\"}", &r);
  expect_503(&r, "outcome-unknown", "POST /api/trades/{id}/close");
  http_free(&r);
  post("/api/publish", svc, pubbody, &r);
  expect_503(&r, "outcome-unknown", "POST /api/publish");
  http_free(&r);
  world_stall_end();

  /* Redis ran every one of them once awake */
  const char *tid_key = await_field(fired, u_key);
  cr_assert(*tid_key, "the fire answered 503 never reached Redis");
  char first_tid[64];
  snprintf(first_tid, sizeof first_tid, "%s", tid_key);

  /* the retry with the same key: the fire's real result, written once */
  cr_assert_eq(fire(u_key, sid, key, &r), 201, "retry: %s", r.body);
  char rep[32] = "";
  cr_assert(http_header(&r, "Idempotent-Replayed", rep, sizeof rep) &&
            strcmp(rep, "true") == 0, "retry not replayed: %s", r.headers);
  cr_assert_str_eq(jget_str(r.json, "trade_id"), first_tid);
  http_free(&r);
  cr_assert_str_eq(hget(skey, "fire_count"), "4");
  snprintf(k, sizeof k, "%suser:%s", kp(), u_key);
  cr_assert_str_eq(hget(k, "total_trades"), "1");

  /* without a key: 409 with the trade of the fire answered 503 */
  const char *tid_nokey = await_field(fired, u_nokey);
  cr_assert(*tid_nokey, "the keyless fire answered 503 never reached Redis");
  cr_assert_eq(fire(u_nokey, sid, NULL, &r), 409, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "trade_id"), tid_nokey);
  http_free(&r);
  cr_assert_str_eq(hget(skey, "fire_count"), "4");

  /* the other writes: sending them again tells */
  cr_assert_eq(post("/api/signals", svc, sigbody, &r), 409, "%s", r.body);
  cr_assert(strstr(r.body, "/duplicate-signal\""), "%s", r.body);
  http_free(&r);
  cr_assert_eq(post(path, svc, "{\"pnl\":\"1.5\"}", &r), 409, "%s", r.body);
  http_free(&r);
  snprintf(k, sizeof k, "%strade:%s", kp(), trade);
  cr_assert_str_eq(hget(k, "status"), "CLOSED");
  json_object *h = rstream(ch);
  cr_assert_eq(json_object_array_length(h), 1, "history of %s: %s", ch,
               json_object_to_json_string(h));
  json_object_put(h);
  free(svc);
}

Test(outcome, redis_down_before_sending_is_unavailable_and_writes_nothing, .fini = redis_back)
{
  outage_lock();
  char sid[96], user[96], key[96], fired[256], skey[256];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  snprintf(user, sizeof user, "%s", uniq("u"));
  snprintf(key, sizeof key, "%s", uniq("idem"));
  snprintf(skey, sizeof skey, "%ssignal:%s", kp(), sid);
  snprintf(fired, sizeof fired, "%ssignal:%s:fired", kp(), sid);
  cr_assert_eq(make_signal(sid, 3600), 201);

  cr_assert_eq(world_ctl("redis-stop"), 0);
  struct http_resp r;
  fire(user, sid, key, &r);
  expect_503(&r, "redis-unavailable", "fire with Redis down");
  http_free(&r);
  cr_assert_eq(world_ctl("redis-start"), 0);

  cr_assert_str_eq(hget(fired, user), "");
  cr_assert_str_eq(hget(skey, "fire_count"), "0");
  /* the retry with the same key is a fresh fire, not a replay */
  cr_assert_eq(fire(user, sid, key, &r), 201, "%s", r.body);
  char rep[32];
  cr_assert_null(http_header(&r, "Idempotent-Replayed", rep, sizeof rep));
  cr_assert_eq(jget_int(r.json, "fire_count"), 1);
  http_free(&r);
  cr_assert_str_eq(hget(skey, "fire_count"), "1");
}
