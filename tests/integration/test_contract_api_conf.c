/* Configuration keys of the REST API with a value other than the default
 * (tests/CONTRACT.api.md): api.problem_base, redis.prefix, redis.db,
 * api.idempotency_ttl_s, trading.equity_start, trading.drawdown_alert_pct. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

SORTIE_WORLD_CONF("api.problem_base = https://sortie.example/problems/\n"
                  "redis.prefix = ctr:\n"
                  "redis.db = 2\n"
                  "api.idempotency_ttl_s = 120\n"
                  "trading.equity_start = 500.00\n"
                  "trading.drawdown_alert_pct = 50\n");

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
