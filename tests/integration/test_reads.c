/* The reading endpoints: fire-count, user stats, missions, health, and the router's 404/405/HEAD answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ---- helpers ---- */

static int is_problem(const struct http_resp *r)
{
  char ct[128];
  return http_header(r, "Content-Type", ct, sizeof ct) &&
         strstr(ct, "application/problem+json") != NULL;
}

static long get(const char *path, const char *token, const char *extra, struct http_resp *r)
{
  http("GET", path, token, NULL, NULL, extra, r);
  return r->status;
}

static long get_as(const char *sub, const char *role, const char *path, const char *extra,
                   struct http_resp *r)
{
  char *tok = token_for(sub, role);
  get(path, tok, extra, r);
  free(tok);
  return r->status;
}

static void fc_path(char *out, size_t n, const char *sid)
{
  snprintf(out, n, "/api/signals/%s/fire-count", sid);
}

static void stats_path(char *out, size_t n, const char *uid)
{
  snprintf(out, n, "/api/users/%s/stats", uid);
}

static void mission_path(char *out, size_t n, const char *sid)
{
  snprintf(out, n, "/api/missions/%s", sid);
}

/* the ETag of a response, copied into out (asserts there is one) */
static char *etag_of(const struct http_resp *r, char *out, size_t n)
{
  cr_assert_not_null(http_header(r, "ETag", out, n), "no ETag: %s", r->headers);
  cr_assert(out[0] != '\0');
  return out;
}

static void inm(char *out, size_t n, const char *tag)
{
  snprintf(out, n, "If-None-Match: %s", tag);
}

/* closes trade `tid` with pnl `pnl` as a service */
static void close_with_pnl(const char *tid, const char *pnl)
{
  char *svc = token_for("test-backoffice", "service");
  char path[256], body[128];
  snprintf(path, sizeof path, "/api/trades/%s/close", tid);
  snprintf(body, sizeof body, "{\"pnl\":\"%s\"}", pnl);
  struct http_resp r;
  http("POST", path, svc, body, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "close %s: %s", tid, r.body);
  http_free(&r);
  free(svc);
}

/* opens a trade for user on a fresh signal; trade id into tid */
static void open_trade(const char *user, char *tid, size_t n)
{
  char sid[96];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  struct http_resp r;
  cr_assert_eq(fire(user, sid, NULL, &r), 201, "%s", r.body);
  snprintf(tid, n, "%s", jget_str(r.json, "trade_id"));
  http_free(&r);
}

/* ---- GET /api/signals/{id}/fire-count ---- */

Test(fire_count, body_has_signal_id_count_and_timestamp)
{
  const char *sid = uniq("sig");
  cr_assert_eq(make_signal(sid, 3600), 201);
  char path[256];
  fc_path(path, sizeof path, sid);
  struct http_resp r;
  long long t0 = now_s();
  cr_assert_eq(get(path, NULL, NULL, &r), 200, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "signal_id"), sid);
  json_object *c, *ts;
  cr_assert(json_object_object_get_ex(r.json, "count", &c) && json_object_is_type(c, json_type_int));
  cr_assert_eq(json_object_get_int64(c), 0);
  cr_assert(json_object_object_get_ex(r.json, "timestamp", &ts) &&
            json_object_is_type(ts, json_type_int));
  long long t = json_object_get_int64(ts);
  cr_assert(t >= t0 - 2 && t <= now_s() + 2, "timestamp %lld, now %lld", t, now_s());
  http_free(&r);
}

Test(fire_count, counts_fires)
{
  const char *sid = uniq("sig");
  char sidc[96];
  snprintf(sidc, sizeof sidc, "%s", sid);
  cr_assert_eq(make_signal(sidc, 3600), 201);
  cr_assert_eq(fire(uniq("u"), sidc, NULL, NULL), 201);
  cr_assert_eq(fire(uniq("u"), sidc, NULL, NULL), 201);
  char path[256];
  fc_path(path, sizeof path, sidc);
  struct http_resp r;
  cr_assert_eq(get(path, NULL, NULL, &r), 200);
  cr_assert_eq(jget_int(r.json, "count"), 2);
  http_free(&r);
}

Test(fire_count, etag_and_if_none_match_give_304_with_an_empty_body)
{
  const char *sid = uniq("sig");
  cr_assert_eq(make_signal(sid, 3600), 201);
  char path[256], tag[128], hdr[200], tag2[128];
  fc_path(path, sizeof path, sid);
  struct http_resp r;
  cr_assert_eq(get(path, NULL, NULL, &r), 200);
  etag_of(&r, tag, sizeof tag);
  http_free(&r);
  inm(hdr, sizeof hdr, tag);
  cr_assert_eq(get(path, NULL, hdr, &r), 304, "%s", r.body);
  cr_assert_eq(r.len, 0, "304 with a body: %s", r.body);
  cr_assert_str_eq(etag_of(&r, tag2, sizeof tag2), tag);
  http_free(&r);
}

Test(fire_count, etag_changes_after_a_fire)
{
  const char *sid = uniq("sig");
  char sidc[96];
  snprintf(sidc, sizeof sidc, "%s", sid);
  cr_assert_eq(make_signal(sidc, 3600), 201);
  char path[256], before[128], after[128], hdr[200];
  fc_path(path, sizeof path, sidc);
  struct http_resp r;
  cr_assert_eq(get(path, NULL, NULL, &r), 200);
  etag_of(&r, before, sizeof before);
  http_free(&r);
  cr_assert_eq(fire(uniq("u"), sidc, NULL, NULL), 201);
  inm(hdr, sizeof hdr, before);
  cr_assert_eq(get(path, NULL, hdr, &r), 200, "the old ETag still matched after a fire");
  cr_assert_eq(jget_int(r.json, "count"), 1);
  cr_assert_str_neq(etag_of(&r, after, sizeof after), before);
  http_free(&r);
}

Test(fire_count, unknown_signal_is_404_problem)
{
  char path[256];
  fc_path(path, sizeof path, uniq("nosuch"));
  struct http_resp r;
  cr_assert_eq(get(path, NULL, NULL, &r), 404);
  cr_assert(is_problem(&r));
  cr_assert_eq(jget_int(r.json, "status"), 404);
  http_free(&r);
}

/* ---- GET /api/users/{id}/stats ---- */

Test(stats, own_stats_are_200)
{
  const char *sid = uniq("sig");
  char user[96], path[256];
  snprintf(user, sizeof user, "%s", uniq("u"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  cr_assert_eq(fire(user, sid, NULL, NULL), 201);
  stats_path(path, sizeof path, user);
  struct http_resp r;
  cr_assert_eq(get_as(user, "user", path, NULL, &r), 200, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "user_id"), user);
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 1);
  cr_assert_eq(jget_int(r.json, "stats.trades_today"), 1);
  cr_assert_eq(jget_int(r.json, "stats.wins"), 0);
  cr_assert_eq(jget_int(r.json, "stats.losses"), 0);
  cr_assert_str_eq(jget_str(r.json, "stats.total_pnl"), "0.00");
  cr_assert_str_eq(jget_str(r.json, "stats.last_7d_pnl"), "0.00");
  cr_assert(jget_int(r.json, "stats.rank") >= 1, "%s", r.body);
  http_free(&r);
}

Test(stats, etag_and_if_none_match_give_304)
{
  char user[96], path[256], tag[128], hdr[200];
  snprintf(user, sizeof user, "%s", uniq("u"));
  stats_path(path, sizeof path, user);
  struct http_resp r;
  cr_assert_eq(get_as(user, "user", path, NULL, &r), 200);
  etag_of(&r, tag, sizeof tag);
  http_free(&r);
  inm(hdr, sizeof hdr, tag);
  cr_assert_eq(get_as(user, "user", path, hdr, &r), 304, "%s", r.body);
  cr_assert_eq(r.len, 0);
  http_free(&r);
}

Test(stats, etag_changes_after_the_users_fire)
{
  char user[96], path[256], tag[128], tag2[128], hdr[200];
  snprintf(user, sizeof user, "%s", uniq("u"));
  stats_path(path, sizeof path, user);
  struct http_resp r;
  cr_assert_eq(get_as(user, "user", path, NULL, &r), 200);
  etag_of(&r, tag, sizeof tag);
  http_free(&r);
  const char *sid = uniq("sig");
  cr_assert_eq(make_signal(sid, 3600), 201);
  cr_assert_eq(fire(user, sid, NULL, NULL), 201);
  inm(hdr, sizeof hdr, tag);
  cr_assert_eq(get_as(user, "user", path, hdr, &r), 200, "stale 304 after a fire");
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 1);
  cr_assert_str_neq(etag_of(&r, tag2, sizeof tag2), tag);
  http_free(&r);
}

/* rank is part of the stats: when another user's close moves this user's rank,
 * the old ETag must no longer match */
Test(stats, etag_changes_when_the_rank_changes)
{
  char a[96], b[96], ta[64], tb[64], path[256], tag[128], hdr[200];
  snprintf(a, sizeof a, "%s", uniq("leader"));
  snprintf(b, sizeof b, "%s", uniq("chaser"));
  open_trade(a, ta, sizeof ta);
  open_trade(b, tb, sizeof tb);
  /* amounts far above anything else in this world, so the order is ours */
  close_with_pnl(ta, "5000000");
  stats_path(path, sizeof path, a);
  struct http_resp r;
  cr_assert_eq(get_as(a, "user", path, NULL, &r), 200);
  long long rank_before = jget_int(r.json, "stats.rank");
  etag_of(&r, tag, sizeof tag);
  http_free(&r);
  close_with_pnl(tb, "9000000"); /* b overtakes a */
  cr_assert_eq(get_as(a, "user", path, NULL, &r), 200);
  long long rank_after = jget_int(r.json, "stats.rank");
  http_free(&r);
  cr_assert_eq(rank_after, rank_before + 1, "rank %lld -> %lld", rank_before, rank_after);
  inm(hdr, sizeof hdr, tag);
  cr_assert_eq(get_as(a, "user", path, hdr, &r), 200,
               "304 for the old ETag although rank went %lld -> %lld", rank_before, rank_after);
  http_free(&r);
}

Test(stats, another_users_stats_are_403)
{
  char path[256];
  stats_path(path, sizeof path, uniq("b"));
  struct http_resp r;
  cr_assert_eq(get_as(uniq("a"), "user", path, NULL, &r), 403, "%s", r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
}

Test(stats, admin_may_read_anyone)
{
  const char *sid = uniq("sig");
  char user[96], path[256];
  snprintf(user, sizeof user, "%s", uniq("u"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  cr_assert_eq(fire(user, sid, NULL, NULL), 201);
  stats_path(path, sizeof path, user);
  struct http_resp r;
  cr_assert_eq(get_as(uniq("root"), "admin", path, NULL, &r), 200, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "user_id"), user);
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 1);
  http_free(&r);
}

Test(stats, a_user_who_never_traded_has_zeros_and_no_rank)
{
  char user[96], path[256], key[256];
  snprintf(user, sizeof user, "%s", uniq("fresh"));
  stats_path(path, sizeof path, user);
  struct http_resp r;
  cr_assert_eq(get_as(user, "user", path, NULL, &r), 200, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "user_id"), user);
  cr_assert_eq(jget_int(r.json, "stats.trades_today"), 0);
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 0);
  cr_assert_eq(jget_int(r.json, "stats.wins"), 0);
  cr_assert_eq(jget_int(r.json, "stats.losses"), 0);
  cr_assert_eq(jget_int(r.json, "stats.win_rate"), 0);
  cr_assert_str_eq(jget_str(r.json, "stats.total_pnl"), "0.00");
  cr_assert_str_eq(jget_str(r.json, "stats.last_7d_pnl"), "0.00");
  json_object *stats, *rank;
  cr_assert(json_object_object_get_ex(r.json, "stats", &stats));
  cr_assert(json_object_object_get_ex(stats, "rank", &rank), "no rank member: %s", r.body);
  cr_assert_null(rank, "rank is not null: %s", r.body);
  http_free(&r);
  /* reading wrote nothing */
  snprintf(key, sizeof key, "%suser:%s", kp(), user);
  const char *av[] = {"EXISTS", key};
  cr_assert_eq(rinteger(2, av), 0);
}

Test(stats, without_a_token_is_401)
{
  char path[256];
  stats_path(path, sizeof path, uniq("u"));
  struct http_resp r;
  cr_assert_eq(get(path, NULL, NULL, &r), 401);
  cr_assert(is_problem(&r));
  http_free(&r);
}

/* ---- GET /api/missions/{id} ---- */

Test(missions, returns_signal_status_time_count_and_caller_state)
{
  const char *sid = uniq("sig");
  char sidc[96], user[96], path[256];
  snprintf(sidc, sizeof sidc, "%s", sid);
  snprintf(user, sizeof user, "%s", uniq("u"));
  cr_assert_eq(make_signal(sidc, 3600), 201);
  mission_path(path, sizeof path, sidc);
  struct http_resp r;
  cr_assert_eq(get_as(user, "user", path, NULL, &r), 200, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "signal.id"), sidc);
  cr_assert_str_eq(jget_str(r.json, "signal.symbol"), "AAPL");
  cr_assert_str_eq(jget_str(r.json, "signal.direction"), "BUY");
  cr_assert_str_eq(jget_str(r.json, "signal.entry"), "145.75");
  cr_assert_str_eq(jget_str(r.json, "signal.stop_loss"), "140.00");
  cr_assert_str_eq(jget_str(r.json, "signal.take_profit"), "160.00");
  cr_assert_str_eq(jget_str(r.json, "status"), "ACTIVE");
  long long left = jget_int(r.json, "seconds_left");
  cr_assert(left > 3590 && left <= 3600, "seconds_left %lld", left);
  cr_assert_eq(jget_int(r.json, "fire_count"), 0);
  json_object *fired, *tid, *stats;
  cr_assert(json_object_object_get_ex(r.json, "fired", &fired) &&
            json_object_is_type(fired, json_type_boolean));
  cr_assert_not(json_object_get_boolean(fired));
  cr_assert(json_object_object_get_ex(r.json, "trade_id", &tid) == 0 || tid == NULL,
            "trade_id before firing: %s", r.body);
  cr_assert(json_object_object_get_ex(r.json, "stats", &stats) &&
            json_object_is_type(stats, json_type_object));
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 0);
  http_free(&r);
}

Test(missions, fired_turns_true_with_the_trade_after_firing)
{
  const char *sid = uniq("sig");
  char sidc[96], user[96], path[256], tid[64];
  snprintf(sidc, sizeof sidc, "%s", sid);
  snprintf(user, sizeof user, "%s", uniq("u"));
  cr_assert_eq(make_signal(sidc, 3600), 201);
  mission_path(path, sizeof path, sidc);
  struct http_resp r;
  cr_assert_eq(get_as(user, "user", path, NULL, &r), 200);
  json_object *fired;
  cr_assert(json_object_object_get_ex(r.json, "fired", &fired));
  cr_assert_not(json_object_get_boolean(fired));
  http_free(&r);

  cr_assert_eq(fire(user, sidc, NULL, &r), 201);
  snprintf(tid, sizeof tid, "%s", jget_str(r.json, "trade_id"));
  http_free(&r);

  cr_assert_eq(get_as(user, "user", path, NULL, &r), 200);
  cr_assert(json_object_object_get_ex(r.json, "fired", &fired) &&
            json_object_is_type(fired, json_type_boolean));
  cr_assert(json_object_get_boolean(fired), "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "trade_id"), tid);
  cr_assert_eq(jget_int(r.json, "fire_count"), 1);
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 1);
  http_free(&r);

  /* another user sees the count but has not fired */
  cr_assert_eq(get_as(uniq("other"), "user", path, NULL, &r), 200);
  cr_assert(json_object_object_get_ex(r.json, "fired", &fired));
  cr_assert_not(json_object_get_boolean(fired));
  cr_assert_eq(jget_int(r.json, "fire_count"), 1);
  http_free(&r);
}

Test(missions, without_a_token_is_401)
{
  const char *sid = uniq("sig");
  char path[256];
  cr_assert_eq(make_signal(sid, 3600), 201);
  mission_path(path, sizeof path, sid);
  struct http_resp r;
  cr_assert_eq(get(path, NULL, NULL, &r), 401);
  cr_assert(is_problem(&r));
  char v[128];
  cr_assert_not_null(http_header(&r, "WWW-Authenticate", v, sizeof v));
  http_free(&r);
}

Test(missions, unknown_is_404)
{
  char path[256];
  mission_path(path, sizeof path, uniq("nosuch"));
  struct http_resp r;
  cr_assert_eq(get_as(uniq("u"), "user", path, NULL, &r), 404, "%s", r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
}

/* ---- GET /health ---- */

Test(health, says_ok_with_redis_and_a_version)
{
  struct http_resp r;
  cr_assert_eq(get("/health", NULL, NULL, &r), 200, "%s", r.body);
  char ct[128];
  cr_assert(http_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "application/json"));
  cr_assert_str_eq(jget_str(r.json, "status"), "ok");
  cr_assert_str_eq(jget_str(r.json, "redis"), "ok");
  json_object *v;
  cr_assert(json_object_object_get_ex(r.json, "version", &v) &&
            json_object_is_type(v, json_type_string));
  cr_assert(json_object_get_string_len(v) > 0);
  http_free(&r);
}

/* ---- the router: 404, 405, HEAD ---- */

Test(router, unknown_api_paths_are_404_problems)
{
  const char *paths[] = {"/api/nope", "/api/signals/x/nope", "/api/users/x", "/api/missions",
                         "/api/fire/extra"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    struct http_resp r;
    char *tok = token_for(uniq("u"), "user");
    get(paths[i], tok, NULL, &r);
    free(tok);
    cr_assert_eq(r.status, 404, "%s: %ld", paths[i], r.status);
    cr_assert(is_problem(&r), "%s: not problem+json", paths[i]);
    cr_assert_eq(jget_int(r.json, "status"), 404, "%s: %s", paths[i], r.body);
    http_free(&r);
  }
}

Test(router, get_on_a_post_route_is_405_with_allow)
{
  struct http_resp r;
  cr_assert_eq(get_as(uniq("u"), "user", "/api/fire", NULL, &r), 405, "%s", r.body);
  cr_assert(is_problem(&r));
  char allow[128];
  cr_assert_not_null(http_header(&r, "Allow", allow, sizeof allow), "%s", r.headers);
  cr_assert(strstr(allow, "POST") != NULL, "Allow: %s", allow);
  cr_assert(strstr(allow, "GET") == NULL, "Allow: %s", allow);
  http_free(&r);
}

Test(router, delete_on_a_get_route_is_405_with_allow)
{
  struct http_resp r;
  http("DELETE", "/api/signals/x/fire-count", NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 405, "%s", r.body);
  cr_assert(is_problem(&r));
  char allow[128];
  cr_assert_not_null(http_header(&r, "Allow", allow, sizeof allow), "%s", r.headers);
  cr_assert(strstr(allow, "GET") != NULL, "Allow: %s", allow);
  cr_assert(strstr(allow, "DELETE") == NULL, "Allow: %s", allow);
  http_free(&r);
}

Test(router, put_on_signals_is_405_with_allow_post)
{
  struct http_resp r;
  char *svc = token_for("test-feed", "service");
  http("PUT", "/api/signals", svc, "{}", NULL, NULL, &r);
  free(svc);
  cr_assert_eq(r.status, 405, "%s", r.body);
  char allow[128];
  cr_assert_not_null(http_header(&r, "Allow", allow, sizeof allow));
  cr_assert(strstr(allow, "POST") != NULL, "Allow: %s", allow);
  http_free(&r);
}

Test(router, head_on_a_get_route_is_200_without_a_body)
{
  const char *sid = uniq("sig");
  cr_assert_eq(make_signal(sid, 3600), 201);
  char path[256], tag_get[128], tag_head[128];
  fc_path(path, sizeof path, sid);
  struct http_resp g, h;
  cr_assert_eq(get(path, NULL, NULL, &g), 200);
  http("HEAD", path, NULL, NULL, NULL, NULL, &h);
  cr_assert_eq(h.status, 200, "%s", h.headers);
  cr_assert_eq(h.len, 0);
  cr_assert_str_eq(etag_of(&h, tag_head, sizeof tag_head), etag_of(&g, tag_get, sizeof tag_get));
  char ct[128];
  cr_assert(http_header(&h, "Content-Type", ct, sizeof ct) && strstr(ct, "application/json"),
            "%s", h.headers);
  http_free(&g);
  http_free(&h);

  http("HEAD", "/health", NULL, NULL, NULL, NULL, &h);
  cr_assert_eq(h.status, 200);
  cr_assert_eq(h.len, 0);
  http_free(&h);
}
