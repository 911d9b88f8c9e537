/* POST /api/fire against the real stack: the atomic fire script, idempotency,
 * the error codes, and concurrency. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

Test(fire, success_returns_trade_count_and_stats)
{
  const char *sid = uniq("sig"), *user = uniq("u");
  cr_assert_eq(make_signal(sid, 3600), 201);
  struct http_resp r;
  cr_assert_eq(fire(user, sid, NULL, &r), 201, "%s", r.body);
  cr_assert_eq(jget_int(r.json, "fire_count"), 1);
  cr_assert_str_eq(jget_str(r.json, "signal_id"), sid);
  cr_assert(strncmp(jget_str(r.json, "trade_id"), "trd_", 4) == 0);
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 1);
  cr_assert_eq(jget_int(r.json, "stats.trades_today"), 1);
  cr_assert_str_eq(jget_str(r.json, "stats.total_pnl"), "0.00");
  http_free(&r);

  char key[256];
  snprintf(key, sizeof key, "%ssignal:%s", kp(), sid);
  const char *av[] = {"HGET", key, "fire_count"};
  char *count = rstr(3, av);
  cr_assert_str_eq(count, "1");
  free(count);
}

Test(fire, second_fire_by_same_user_is_409_and_writes_nothing)
{
  const char *sid = uniq("sig"), *user = uniq("u");
  cr_assert_eq(make_signal(sid, 3600), 201);
  cr_assert_eq(fire(user, sid, NULL, NULL), 201);
  struct http_resp r;
  cr_assert_eq(fire(user, sid, NULL, &r), 409);
  cr_assert_str_eq(jget_str(r.json, "title"), "Already fired");
  cr_assert(strstr(http_header(&r, "Content-Type", (char[128]){0}, 128), "application/problem+json"));
  http_free(&r);
  struct http_resp c;
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s/fire-count", sid);
  http("GET", path, NULL, NULL, NULL, NULL, &c);
  cr_assert_eq(jget_int(c.json, "count"), 1);
  http_free(&c);
}

Test(fire, idempotent_retry_returns_the_first_answer)
{
  const char *sid = uniq("sig"), *user = uniq("u"), *key = uniq("idem");
  cr_assert_eq(make_signal(sid, 3600), 201);
  struct http_resp a, b;
  cr_assert_eq(fire(user, sid, key, &a), 201);
  cr_assert_eq(fire(user, sid, key, &b), 201, "%s", b.body);
  cr_assert_str_eq(jget_str(a.json, "trade_id"), jget_str(b.json, "trade_id"));
  cr_assert_eq(jget_int(b.json, "fire_count"), 1);
  char v[64];
  cr_assert_not_null(http_header(&b, "Idempotent-Replayed", v, sizeof v));
  http_free(&a);
  http_free(&b);
  /* the same key for another signal is a client bug, said clearly */
  const char *sid2 = uniq("sig");
  cr_assert_eq(make_signal(sid2, 3600), 201);
  cr_assert_eq(fire(user, sid2, key, NULL), 422);
}

Test(fire, unknown_signal_is_404)
{
  cr_assert_eq(fire(uniq("u"), uniq("nosuch"), NULL, NULL), 404);
}

Test(fire, expired_signal_is_410)
{
  const char *sid = uniq("sig");
  cr_assert_eq(make_signal(sid, 1), 201);
  sleep(2);
  struct http_resp r;
  cr_assert_eq(fire(uniq("u"), sid, NULL, &r), 410, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "signal_status"), "EXPIRED");
  http_free(&r);
}

Test(fire, timestamp_outside_the_window_is_422)
{
  const char *sid = uniq("sig");
  cr_assert_eq(make_signal(sid, 3600), 201);
  char *tok = token_for(uniq("u"), "user");
  char body[256];
  snprintf(body, sizeof body, "{\"signal_id\":\"%s\",\"timestamp\":%lld}", sid, now_s() - 400);
  struct http_resp r;
  http("POST", "/api/fire", tok, body, NULL, NULL, &r);
  cr_assert_eq(r.status, 422);
  cr_assert_str_eq(jget_str(r.json, "field"), "timestamp");
  http_free(&r);
  free(tok);
}

Test(fire, rate_limit_is_429_with_retry_after)
{
  const char *user = uniq("u");
  for (int i = 0; i < 10; i++) {
    const char *sid = uniq("sig");
    cr_assert_eq(make_signal(sid, 3600), 201);
    cr_assert_eq(fire(user, sid, NULL, NULL), 201, "fire %d", i);
  }
  const char *sid = uniq("sig");
  cr_assert_eq(make_signal(sid, 3600), 201);
  struct http_resp r;
  cr_assert_eq(fire(user, sid, NULL, &r), 429);
  char ra[32];
  cr_assert_not_null(http_header(&r, "Retry-After", ra, sizeof ra));
  cr_assert(atoi(ra) >= 1 && atoi(ra) <= 60, "Retry-After %s", ra);
  cr_assert_eq(jget_int(r.json, "retry_after"), atoi(ra));
  http_free(&r);
}

/* ---- nothing half-written: checks before the first write ---- */

static void must(sortie_reply *r)
{
  cr_assert(r && sortie_reply_type(r) != SORTIE_REPLY_ERROR, "redis: %s",
            r ? sortie_reply_str(r, NULL) : "unreachable");
  sortie_reply_free(r);
}

/* every key a fire of sid by user writes, serialized (DUMP), as one text */
static char *fire_state(const char *sid, const char *user)
{
  const char *fmt[] = {"signal:%s", "signal:%s:fired", "h:mission:%s", "user:%s", "rate:%s",
                       "h:user:%s", "user:%s:pnl_days"};
  char *out = calloc(1, 1);
  size_t len = 0;
  for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
    char k[256];
    int n = snprintf(k, sizeof k, "%s", kp());
    snprintf(k + n, sizeof k - (size_t)n, fmt[i], i < 3 ? sid : user);
    const char *av[] = {"DUMP", k};
    sortie_reply *r = rcmd(2, av);
    cr_assert_not_null(r);
    size_t l = 0;
    const char *d = sortie_reply_str(r, &l);
    char *b = realloc(out, len + 2 * l + 2);
    cr_assert_not_null(b);
    out = b;
    for (size_t j = 0; d && j < l; j++)
      len += (size_t)sprintf(out + len, "%02x", (unsigned char)d[j]);
    out[len++] = '|';
    out[len] = '\0';
    sortie_reply_free(r);
  }
  return out;
}

/* a fire refused with status/slug that changed nothing at all */
static void fire_refused(const char *sid, const char *user, long status, const char *slug)
{
  char *before = fire_state(sid, user);
  struct http_resp r;
  cr_assert_eq(fire(user, sid, NULL, &r), status, "%ld %s", r.status, r.body);
  char ct[128];
  cr_assert(http_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "problem+json"));
  const char *type = jget_str(r.json, "type"), *detail = jget_str(r.json, "detail");
  cr_assert(type && strstr(type, slug), "type %s, want %s", type ? type : "(none)", slug);
  cr_assert(detail && *detail, "no detail: %s", r.body);
  cr_log_info("%ld %s", r.status, r.body);
  http_free(&r);
  char *after = fire_state(sid, user);
  cr_assert_str_eq(after, before, "a refused fire changed Redis");
  free(after);
  free(before);
}

/* Stored data that a write of the fire would fail on is a 500 that writes
 * nothing (it used to count the fire, make the trade and then fail) */
Test(fire, unusable_stored_data_is_500_and_writes_nothing)
{
  char sid[96], user[96], k[256];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  snprintf(user, sizeof user, "%s", uniq("u"));
  cr_assert_eq(make_signal(sid, 3600), 201);

  /* a user counter that is not an integer, or at the top of int64 */
  snprintf(k, sizeof k, "%suser:%s", kp(), user);
  const char *bad1[] = {"HSET", k, "total_trades", "lots"};
  must(rcmd(4, bad1));
  fire_refused(sid, user, 500, "internal");
  const char *bad2[] = {"HSET", k, "total_trades", "9223372036854775807"};
  must(rcmd(4, bad2));
  fire_refused(sid, user, 500, "internal");
  const char *bad3[] = {"HSET", k, "total_trades", "0", "wins", "1.5"};
  must(rcmd(6, bad3));
  fire_refused(sid, user, 500, "internal");
  const char *del[] = {"DEL", k};
  must(rcmd(2, del));

  /* a history that is not a stream, on the mission or on the user */
  const char *fmt[] = {"%sh:mission:%s", "%sh:user:%s"};
  for (int i = 0; i < 2; i++) {
    snprintf(k, sizeof k, fmt[i], kp(), i == 0 ? sid : user);
    const char *set[] = {"SET", k, "not a stream"}, *d[] = {"DEL", k};
    must(rcmd(3, set));
    fire_refused(sid, user, 500, "internal");
    must(rcmd(2, d));
  }

  /* the user's hash or P/L days of another type, a P/L day that is not an
   * integer, a signal count that is not one (read once, typed, before any
   * write) */
  char k2[256];
  snprintf(k, sizeof k, "%suser:%s", kp(), user);
  snprintf(k2, sizeof k2, "%suser:%s:pnl_days", kp(), user);
  const char *t1[] = {"SET", k, "a string"}, *t2[] = {"SET", k2, "a string"},
             *t3[] = {"HSET", k2, "20000", "12.5"}, *d2[] = {"DEL", k2};
  must(rcmd(3, t1));
  fire_refused(sid, user, 500, "internal");
  must(rcmd(2, del));
  must(rcmd(3, t2));
  fire_refused(sid, user, 500, "internal");
  must(rcmd(2, d2));
  must(rcmd(4, t3));
  fire_refused(sid, user, 500, "internal");
  must(rcmd(2, d2));
  snprintf(k, sizeof k, "%ssignal:%s", kp(), sid);
  const char *c1[] = {"HSET", k, "fire_count", "many"}, *c0[] = {"HSET", k, "fire_count", "0"};
  must(rcmd(4, c1));
  fire_refused(sid, user, 500, "internal");
  must(rcmd(4, c0));

  /* all fixed: the fire goes through, counted once */
  struct http_resp r;
  cr_assert_eq(fire(user, sid, NULL, &r), 201, "%s", r.body);
  cr_assert_eq(jget_int(r.json, "fire_count"), 1);
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 1);
  cr_assert_eq(jget_int(r.json, "stats.trades_today"), 1);
  http_free(&r);
}

/* A 429 writes nothing either (the window is counted, not pruned, first) */
Test(fire, rate_limited_fire_writes_nothing)
{
  char sid[96], user[96], k[256], score[32], m[32];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  snprintf(user, sizeof user, "%s", uniq("u"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  snprintf(k, sizeof k, "%srate:%s", kp(), user);
  long long now = now_ms();
  /* one fire out of the window (would be pruned), ten in it */
  for (int i = 0; i <= 10; i++) {
    snprintf(score, sizeof score, "%lld", i == 0 ? now - 120000 : now - 1000 - i);
    snprintf(m, sizeof m, "trd_x%d", i);
    const char *za[] = {"ZADD", k, score, m};
    must(rcmd(4, za));
  }
  fire_refused(sid, user, 429, "rate-limited");
}

Test(fire, another_users_id_in_the_body_is_403)
{
  const char *sid = uniq("sig");
  cr_assert_eq(make_signal(sid, 3600), 201);
  char *tok = token_for(uniq("a"), "user");
  char body[256];
  snprintf(body, sizeof body, "{\"signal_id\":\"%s\",\"timestamp\":%lld,\"user_id\":\"someone\"}",
           sid, now_s());
  struct http_resp r;
  http("POST", "/api/fire", tok, body, NULL, NULL, &r);
  cr_assert_eq(r.status, 403);
  http_free(&r);
  free(tok);
}

/* ---- concurrency: many requests in flight at once, with curl's multi API ---- */

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
  (void)p;
  (void)ud;
  return sz * n;
}

static int fire_many(const char *sid, const char **users, int n, long *status)
{
  CURLM *m = curl_multi_init();
  CURL **h = calloc((size_t)n, sizeof *h);
  struct curl_slist **hdrs = calloc((size_t)n, sizeof *hdrs);
  char **bodies = calloc((size_t)n, sizeof *bodies);
  char url[256];
  snprintf(url, sizeof url, "%s/api/fire", world_base());
  for (int i = 0; i < n; i++) {
    char *tok = token_for(users[i], "user");
    char auth[2048];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    free(tok);
    hdrs[i] = curl_slist_append(NULL, auth);
    hdrs[i] = curl_slist_append(hdrs[i], "Content-Type: application/json");
    bodies[i] = malloc(256);
    snprintf(bodies[i], 256, "{\"signal_id\":\"%s\",\"timestamp\":%lld}", sid, now_s());
    h[i] = curl_easy_init();
    curl_easy_setopt(h[i], CURLOPT_URL, url);
    curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, bodies[i]);
    curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hdrs[i]);
    curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h[i], CURLOPT_TIMEOUT, 60L);
    curl_multi_add_handle(m, h[i]);
  }
  int running = 1;
  while (running) {
    curl_multi_perform(m, &running);
    if (running)
      curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  for (int i = 0; i < n; i++) {
    curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &status[i]);
    curl_multi_remove_handle(m, h[i]);
    curl_easy_cleanup(h[i]);
    curl_slist_free_all(hdrs[i]);
    free(bodies[i]);
  }
  curl_multi_cleanup(m);
  free(h);
  free(hdrs);
  free(bodies);
  return 0;
}

Test(fire, two_hundred_users_at_once_count_exactly_200)
{
  const char *sid = uniq("sig");
  char sidc[96];
  snprintf(sidc, sizeof sidc, "%s", sid);
  cr_assert_eq(make_signal(sidc, 3600), 201);
  enum { N = 200 };
  const char *users[N];
  static char names[N][64];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "crowd_%d_%d", (int)getpid(), i);
    users[i] = names[i];
  }
  long st[N];
  fire_many(sidc, users, N, st);
  int created = 0;
  for (int i = 0; i < N; i++)
    created += st[i] == 201;
  cr_assert_eq(created, N, "only %d of %d fires got 201", created, N);
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s/fire-count", sidc);
  struct http_resp r;
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(jget_int(r.json, "count"), N);
  http_free(&r);
}

Test(fire, one_user_twenty_times_at_once_gets_exactly_one_201)
{
  const char *sid = uniq("sig");
  char sidc[96], user[96];
  snprintf(sidc, sizeof sidc, "%s", sid);
  snprintf(user, sizeof user, "%s", uniq("solo"));
  cr_assert_eq(make_signal(sidc, 3600), 201);
  enum { N = 20 };
  const char *users[N];
  for (int i = 0; i < N; i++)
    users[i] = user;
  long st[N];
  fire_many(sidc, users, N, st);
  int created = 0, dup = 0;
  for (int i = 0; i < N; i++) {
    created += st[i] == 201;
    dup += st[i] == 409;
  }
  cr_assert_eq(created, 1);
  cr_assert_eq(dup, N - 1);
  char key[256];
  snprintf(key, sizeof key, "%suser:%s", kp(), user);
  const char *av[] = {"HGET", key, "total_trades"};
  char *tt = rstr(3, av);
  cr_assert_str_eq(tt, "1");
  free(tt);
}
