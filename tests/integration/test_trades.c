/* POST /api/trades/{id}/close: exact P/L, stats and equity, errors, and the events (incl. drawdown risk alerts) it publishes. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* several trades per user in a few seconds */
SORTIE_WORLD_CONF("api.fire_rate_per_min = 1000\n");

/* ---- helpers ---- */

static int is_problem(const struct http_resp *r)
{
  char ct[128];
  return http_header(r, "Content-Type", ct, sizeof ct) &&
         strstr(ct, "application/problem+json") != NULL;
}

/* creates a signal and fires it as `user`; the trade id goes to tid */
static void open_trade(const char *user, const char *dir, const char *entry, const char *sl,
                       const char *tp, char *tid, size_t n)
{
  char sid[96], body[512];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  snprintf(body, sizeof body,
           "{\"id\":\"%s\",\"symbol\":\"AAPL\",\"direction\":\"%s\",\"entry\":\"%s\","
           "\"stop_loss\":\"%s\",\"take_profit\":\"%s\",\"ttl\":3600}",
           sid, dir, entry, sl, tp);
  char *svc = token_for("test-feed", "service");
  struct http_resp r;
  http("POST", "/api/signals", svc, body, NULL, NULL, &r);
  free(svc);
  cr_assert_eq(r.status, 201, "signal: %s", r.body);
  http_free(&r);
  cr_assert_eq(fire(user, sid, NULL, &r), 201, "fire: %s", r.body);
  snprintf(tid, n, "%s", jget_str(r.json, "trade_id"));
  http_free(&r);
}

static void open_buy(const char *user, char *tid, size_t n)
{
  open_trade(user, "BUY", "145.75", "140.00", "160.00", tid, n);
}

/* POST /api/trades/{tid}/close with `body` as `role` (service when NULL) */
static long close_as(const char *role, const char *tid, const char *body, struct http_resp *r)
{
  char *tok = token_for(uniq("closer"), role ? role : "service");
  char path[256];
  snprintf(path, sizeof path, "/api/trades/%s/close", tid);
  http("POST", path, tok, body, NULL, NULL, r);
  free(tok);
  return r->status;
}

static long close_trade(const char *tid, const char *body, struct http_resp *r)
{
  return close_as(NULL, tid, body, r);
}

static void close_ok(const char *tid, const char *body)
{
  struct http_resp r;
  cr_assert_eq(close_trade(tid, body, &r), 200, "close %s with %s: %s", tid, body, r.body);
  http_free(&r);
}

/* a money member: a JSON string equal to want */
static void assert_money(json_object *o, const char *path, const char *want)
{
  json_object *v = o;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  char *save = NULL;
  for (char *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
    cr_assert(v && json_object_object_get_ex(v, k, &v), "no %s in %s", path,
              json_object_to_json_string(o));
  cr_assert(v && json_object_is_type(v, json_type_string), "%s is not a string: %s", path,
            json_object_to_json_string(o));
  cr_assert_str_eq(json_object_get_string(v), want, "%s", path);
}

static const char *const money_keys[] = {"pnl", "exit_price", "entry", "total_pnl",
                                         "last_7d_pnl", "equity", "peak", "stop_loss",
                                         "take_profit"};

/* no money member anywhere in o is a JSON number (strings, null, or an object
 * such as the close answer's "equity" block, which is checked inside) */
static void assert_no_money_numbers(json_object *o, const char *where)
{
  if (o == NULL)
    return;
  if (json_object_is_type(o, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(o); i++)
      assert_no_money_numbers(json_object_array_get_idx(o, i), where);
    return;
  }
  if (!json_object_is_type(o, json_type_object))
    return;
  json_object_object_foreach(o, k, v)
  {
    for (size_t i = 0; i < sizeof money_keys / sizeof money_keys[0]; i++)
      if (strcmp(k, money_keys[i]) == 0)
        cr_assert(!json_object_is_type(v, json_type_int) &&
                      !json_object_is_type(v, json_type_double),
                  "%s: %s is a JSON number (%s)", where, k, json_object_to_json_string(v));
    assert_no_money_numbers(v, where);
  }
}

/* the user's event history (h:user:{id}) */
static json_object *user_events(const char *user)
{
  char ch[128];
  snprintf(ch, sizeof ch, "user:%s", user);
  return rstream(ch);
}

static int count_type(json_object *events, const char *type)
{
  int n = 0;
  for (size_t i = 0; i < json_object_array_length(events); i++) {
    const char *t = jget_str(json_object_array_get_idx(events, i), "type");
    n += t && strcmp(t, type) == 0;
  }
  return n;
}

/* the last event of `type`, or NULL */
static json_object *last_of(json_object *events, const char *type)
{
  json_object *found = NULL;
  for (size_t i = 0; i < json_object_array_length(events); i++) {
    json_object *e = json_object_array_get_idx(events, i);
    const char *t = jget_str(e, "type");
    if (t && strcmp(t, type) == 0)
      found = e;
  }
  return found;
}

static char *hget(const char *key_fmt_id, const char *kind, const char *field)
{
  char key[256];
  snprintf(key, sizeof key, "%s%s:%s", kp(), kind, key_fmt_id);
  const char *av[] = {"HGET", key, field};
  return rstr(3, av);
}

static void assert_trade_open(const char *tid)
{
  char *st = hget(tid, "trade", "status");
  cr_assert_str_eq(st, "OPEN", "trade %s is %s", tid, st ? st : "(none)");
  free(st);
}

/* ---- success ---- */

Test(trades, buy_closed_with_exit_price_books_exit_minus_entry)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"exit_price\":\"150.10\"}", &r), 200, "%s", r.body);
  assert_money(r.json, "trade.pnl", "4.35");
  assert_money(r.json, "trade.exit_price", "150.10");
  assert_money(r.json, "trade.entry", "145.75");
  cr_assert_str_eq(jget_str(r.json, "trade.trade_id"), tid);
  cr_assert_str_eq(jget_str(r.json, "trade.result"), "win");
  http_free(&r);
  char *st = hget(tid, "trade", "status"), *pnl = hget(tid, "trade", "pnl");
  cr_assert_str_eq(st, "CLOSED");
  cr_assert_str_eq(pnl, "4.35");
  free(st);
  free(pnl);
}

Test(trades, buy_closed_below_entry_is_a_loss)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"exit_price\":\"141.50\"}", &r), 200, "%s", r.body);
  assert_money(r.json, "trade.pnl", "-4.25");
  cr_assert_str_eq(jget_str(r.json, "trade.result"), "loss");
  http_free(&r);
}

Test(trades, sell_closed_with_exit_price_books_entry_minus_exit)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_trade(user, "SELL", "145.75", "150.00", "130.00", tid, sizeof tid);
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"exit_price\":\"140.5\"}", &r), 200, "%s", r.body);
  assert_money(r.json, "trade.pnl", "5.25");
  cr_assert_str_eq(jget_str(r.json, "trade.result"), "win");
  assert_money(r.json, "stats.total_pnl", "5.25");
  http_free(&r);
}

Test(trades, sell_closed_above_entry_is_a_loss)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_trade(user, "SELL", "145.75", "150.00", "130.00", tid, sizeof tid);
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"exit_price\":\"147.00\"}", &r), 200, "%s", r.body);
  assert_money(r.json, "trade.pnl", "-1.25");
  cr_assert_str_eq(jget_str(r.json, "trade.result"), "loss");
  http_free(&r);
}

Test(trades, pnl_given_directly_is_booked_as_given)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"pnl\":\"-12.5\"}", &r), 200, "%s", r.body);
  assert_money(r.json, "trade.pnl", "-12.5");
  cr_assert_str_eq(jget_str(r.json, "trade.result"), "loss");
  json_object *ex;
  cr_assert(json_object_object_get_ex(json_object_object_get(r.json, "trade"), "exit_price", &ex) == 0 ||
                ex == NULL,
            "exit_price without one: %s", r.body);
  assert_money(r.json, "stats.total_pnl", "-12.50");
  assert_money(r.json, "stats.equity", "9987.50");
  http_free(&r);
}

Test(trades, zero_pnl_is_breakeven_neither_win_nor_loss)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"exit_price\":\"145.75\"}", &r), 200, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "trade.result"), "breakeven");
  cr_assert_eq(jget_int(r.json, "stats.wins"), 0);
  cr_assert_eq(jget_int(r.json, "stats.losses"), 0);
  assert_money(r.json, "stats.total_pnl", "0.00");
  http_free(&r);
}

Test(trades, stats_after_several_closes_are_exact)
{
  char user[96], t1[64], t2[64], t3[64], path[256];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, t1, sizeof t1);
  open_buy(user, t2, sizeof t2);
  open_trade(user, "SELL", "200.00", "210.00", "100.00", t3, sizeof t3);
  close_ok(t1, "{\"exit_price\":\"150.10\"}"); /* +4.35 */
  close_ok(t2, "{\"pnl\":\"-12.5\"}");         /* -12.50 */
  close_ok(t3, "{\"exit_price\":\"100.00\"}"); /* +100.00 */

  snprintf(path, sizeof path, "/api/users/%s/stats", user);
  char *tok = token_for(user, "user");
  struct http_resp r;
  http("GET", path, tok, NULL, NULL, NULL, &r);
  free(tok);
  cr_assert_eq(r.status, 200, "%s", r.body);
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 3);
  cr_assert_eq(jget_int(r.json, "stats.trades_today"), 3);
  cr_assert_eq(jget_int(r.json, "stats.wins"), 2);
  cr_assert_eq(jget_int(r.json, "stats.losses"), 1);
  json_object *st = json_object_object_get(r.json, "stats"), *wr;
  cr_assert(json_object_object_get_ex(st, "win_rate", &wr) &&
            (json_object_is_type(wr, json_type_double) || json_object_is_type(wr, json_type_int)));
  /* docs/API.md: "one decimal": 2 of 3 is 66.7 exactly, as written */
  cr_assert_eq(json_object_get_double(wr), 66.7, "win_rate %s, want 66.7",
               json_object_to_json_string(wr));
  const char *wt = strstr(r.body, "\"win_rate\":");
  cr_assert(wt && strncmp(wt + 11, "66.7", 4) == 0 && !isdigit((unsigned char)wt[15]),
            "win_rate is not written with one decimal: %s", r.body);
  assert_money(r.json, "stats.total_pnl", "91.85");
  assert_money(r.json, "stats.last_7d_pnl", "91.85");
  assert_money(r.json, "stats.equity", "10091.85");
  assert_no_money_numbers(r.json, "stats");
  http_free(&r);
}

Test(trades, admin_may_close)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  struct http_resp r;
  cr_assert_eq(close_as("admin", tid, "{\"pnl\":\"1.00\"}", &r), 200, "%s", r.body);
  http_free(&r);
}

/* ---- errors ---- */

Test(trades, closing_twice_is_409_and_books_once)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  close_ok(tid, "{\"exit_price\":\"150.10\"}");
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"pnl\":\"100.00\"}", &r), 409, "%s", r.body);
  cr_assert(is_problem(&r));
  cr_assert_eq(jget_int(r.json, "status"), 409);
  http_free(&r);
  char *wins = hget(user, "user", "wins"), *pnl = hget(tid, "trade", "pnl");
  cr_assert_str_eq(wins, "1");
  cr_assert_str_eq(pnl, "4.35");
  free(wins);
  free(pnl);
  json_object *ev = user_events(user);
  cr_assert_eq(count_type(ev, "trade_closed"), 1);
  json_object_put(ev);
}

/* ---- nothing half-written: checks before the first write ---- */

/* sets a field of <prefix><kind>:<id> straight in Redis */
static void hset(const char *id, const char *kind, const char *field, const char *value)
{
  char key[256];
  snprintf(key, sizeof key, "%s%s:%s", kp(), kind, id);
  const char *av[] = {"HSET", key, field, value};
  sortie_reply *r = rcmd(4, av);
  cr_assert(r && sortie_reply_type(r) != SORTIE_REPLY_ERROR, "HSET %s %s failed", key, field);
  sortie_reply_free(r);
}

static void append_reply(char **out, size_t *len, const sortie_reply *r)
{
  char buf[64];
  const char *s = buf;
  size_t n = 0;
  switch (r ? sortie_reply_type(r) : SORTIE_REPLY_NIL) {
  case SORTIE_REPLY_ARRAY:
    for (size_t i = 0; i < sortie_reply_len(r); i++)
      append_reply(out, len, sortie_reply_at(r, i));
    return;
  case SORTIE_REPLY_INTEGER:
    n = (size_t)snprintf(buf, sizeof buf, "%lld", sortie_reply_int(r));
    break;
  case SORTIE_REPLY_STRING:
  case SORTIE_REPLY_STATUS:
  case SORTIE_REPLY_ERROR:
    s = sortie_reply_str(r, &n);
    break;
  default:
    s = "(nil)";
    n = 5;
  }
  char *b = realloc(*out, *len + n + 2);
  cr_assert_not_null(b);
  memcpy(b + *len, s, n);
  b[*len + n] = '|';
  b[*len + n + 1] = '\0';
  *len += n + 1;
  *out = b;
}

/* everything a close writes, as one text: the trade, the owner's stats, day
 * buckets, rank and event history (free it) */
static char *close_state(const char *user, const char *tid)
{
  char k[5][256];
  snprintf(k[0], sizeof k[0], "%strade:%s", kp(), tid);
  snprintf(k[1], sizeof k[1], "%suser:%s", kp(), user);
  snprintf(k[2], sizeof k[2], "%suser:%s:pnl_days", kp(), user);
  snprintf(k[3], sizeof k[3], "%srank", kp());
  snprintf(k[4], sizeof k[4], "%sh:user:%s", kp(), user);
  const char *cmds[5][4] = {{"HGETALL", k[0]}, {"HGETALL", k[1]}, {"HGETALL", k[2]},
                            {"ZSCORE", k[3], user}, {"XRANGE", k[4], "-", "+"}};
  int argc[5] = {2, 2, 2, 3, 4};
  char *out = calloc(1, 1);
  size_t len = 0;
  for (int i = 0; i < 5; i++) {
    sortie_reply *r = rcmd(argc[i], cmds[i]);
    cr_assert_not_null(r);
    append_reply(&out, &len, r);
    sortie_reply_free(r);
  }
  return out;
}

/* the close of tid is refused with `status`/`slug` (and `field` if not NULL),
 * and nothing at all changed */
static void close_refused(const char *user, const char *tid, const char *body, long status,
                          const char *slug, const char *field)
{
  char *before = close_state(user, tid);
  struct http_resp r;
  cr_assert_eq(close_trade(tid, body, &r), status, "close with %s: %ld %s", body, r.status, r.body);
  cr_assert(is_problem(&r), "not problem+json: %s", r.body);
  const char *type = jget_str(r.json, "type");
  cr_assert(type && strstr(type, slug), "type %s, want %s", type ? type : "(none)", slug);
  if (field)
    cr_assert_str_eq(jget_str(r.json, "field") ? jget_str(r.json, "field") : "(none)", field);
  const char *detail = jget_str(r.json, "detail");
  cr_assert(detail && *detail, "no detail: %s", r.body);
  cr_log_info("%ld %s", r.status, r.body);
  http_free(&r);
  assert_trade_open(tid);
  char *after = close_state(user, tid);
  cr_assert_str_eq(after, before, "a refused close changed Redis");
  free(after);
  free(before);
}

/* A P/L that would take the user's total_pnl past int64 units (what HINCRBY
 * holds) is a 422 naming the field, and books nothing: the trade stays OPEN,
 * so once the total is fixed the close goes through. (It used to set the trade
 * CLOSED, then fail the HINCRBY: a 500, and a 409 for ever after.) */
Test(trades, a_pnl_overflowing_the_running_total_is_422_and_changes_nothing)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  hset(user, "user", "total_pnl", "9223372036854775000"); /* 92233720368.54775000 */
  close_refused(user, tid, "{\"exit_price\":\"150.10\"}", 422, "invalid-field", "exit_price");
  close_refused(user, tid, "{\"pnl\":\"1.00\"}", 422, "invalid-field", "pnl");
  json_object *ev = user_events(user);
  cr_assert_eq(count_type(ev, "trade_closed"), 0);
  json_object_put(ev);

  /* a loss still fits: only what cannot be stored is refused; then normal again */
  hset(user, "user", "total_pnl", "0");
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"pnl\":\"1.00\"}", &r), 200, "%s", r.body);
  assert_money(r.json, "stats.total_pnl", "1.00");
  http_free(&r);
  char *st = hget(tid, "trade", "status"), *tot = hget(user, "user", "total_pnl");
  cr_assert_str_eq(st, "CLOSED");
  cr_assert_str_eq(tot, "100000000");
  free(st);
  free(tot);
  ev = user_events(user);
  cr_assert_eq(count_type(ev, "trade_closed"), 1);
  json_object_put(ev);
}

/* the same for the day's P/L bucket, which can overflow on its own (a big
 * loss booked earlier in the total, big wins today) */
Test(trades, a_pnl_overflowing_the_days_pnl_is_422_and_changes_nothing)
{
  char user[96], tid[64], day[128];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  snprintf(day, sizeof day, "%s:pnl_days", user);
  char today[32];
  snprintf(today, sizeof today, "%lld", now_ms() / 86400000);
  hset(day, "user", today, "-9223372036854775000");
  close_refused(user, tid, "{\"pnl\":\"-1.00\"}", 422, "invalid-field", "pnl");
  hset(day, "user", today, "0");
  close_ok(tid, "{\"pnl\":\"-1.00\"}");
}

/* stored data a write would fail on (a counter that is not an integer, a
 * history key of another type) is a 500 that writes nothing */
Test(trades, unusable_stored_data_is_500_and_changes_nothing)
{
  char user[96], tid[64], k[256];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);

  hset(user, "user", "wins", "many");
  close_refused(user, tid, "{\"pnl\":\"2.00\"}", 500, "internal", NULL);
  hset(user, "user", "wins", "9223372036854775807");
  close_refused(user, tid, "{\"pnl\":\"2.00\"}", 500, "internal", NULL);
  hset(user, "user", "wins", "0");

  /* the user's event history is not a stream */
  snprintf(k, sizeof k, "%sh:user:%s", kp(), user);
  const char *del[] = {"DEL", k}, *set[] = {"SET", k, "not a stream"};
  sortie_reply_free(rcmd(2, del));
  sortie_reply_free(rcmd(3, set));
  close_refused(user, tid, "{\"pnl\":\"2.00\"}", 500, "internal", NULL);
  sortie_reply_free(rcmd(2, del));

  close_ok(tid, "{\"pnl\":\"2.00\"}");
  char *wins = hget(user, "user", "wins");
  cr_assert_str_eq(wins, "1");
  free(wins);
}

/* A history whose newest entry was deleted (XDEL) still has that id as its
 * top: XADD must pass it. The close takes an id past it instead of failing
 * halfway. */
Test(trades, a_history_top_above_its_last_entry_does_not_break_a_close)
{
  char user[96], tid[64], k[256], id[32];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  snprintf(k, sizeof k, "%sh:user:%s", kp(), user);
  long long top = now_ms() + 1500;
  snprintf(id, sizeof id, "%lld-0", top);
  const char *xa[] = {"XADD", k, id, "t", "x", "d", "{}", "p", "0-0"};
  sortie_reply *r0 = rcmd(9, xa);
  cr_assert(r0 && sortie_reply_type(r0) == SORTIE_REPLY_STRING);
  sortie_reply_free(r0);
  const char *xd[] = {"XDEL", k, id};
  cr_assert_eq(rinteger(3, xd), 1);

  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"pnl\":\"3.00\"}", &r), 200, "%s", r.body);
  http_free(&r);
  json_object *ev = user_events(user);
  json_object *c = last_of(ev, "trade_closed");
  cr_assert_not_null(c);
  long long ms = atoll(jget_str(c, "id"));
  cr_assert(ms >= top, "trade_closed id %s is not past the history's top %s", jget_str(c, "id"),
            id);
  json_object_put(ev);
}

Test(trades, unknown_trade_is_404)
{
  const char *bodies[] = {"{\"pnl\":\"1.00\"}", "{\"exit_price\":\"150.00\"}"};
  for (size_t i = 0; i < 2; i++) {
    char tid[96];
    snprintf(tid, sizeof tid, "%s", uniq("trd_none"));
    struct http_resp r;
    cr_assert_eq(close_trade(tid, bodies[i], &r), 404, "%s: %s", bodies[i], r.body);
    cr_assert(is_problem(&r));
    http_free(&r);
    char key[256];
    snprintf(key, sizeof key, "%strade:%s", kp(), tid);
    const char *av[] = {"EXISTS", key};
    cr_assert_eq(rinteger(2, av), 0, "closing an unknown trade created it");
  }
}

Test(trades, both_exit_price_and_pnl_is_422)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"exit_price\":\"150.10\",\"pnl\":\"4.35\"}", &r), 422, "%s", r.body);
  cr_assert(is_problem(&r));
  const char *f = jget_str(r.json, "field");
  cr_assert(f && (strcmp(f, "exit_price") == 0 || strcmp(f, "pnl") == 0), "field %s", f);
  http_free(&r);
  assert_trade_open(tid);
}

Test(trades, neither_exit_price_nor_pnl_is_422)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{}", &r), 422, "%s", r.body);
  const char *f = jget_str(r.json, "field");
  cr_assert(f && (strcmp(f, "exit_price") == 0 || strcmp(f, "pnl") == 0), "field %s", f);
  http_free(&r);
  assert_trade_open(tid);
}

Test(trades, a_number_instead_of_a_string_is_422)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  struct http_resp r;
  cr_assert_eq(close_trade(tid, "{\"exit_price\":150.10}", &r), 422, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "field"), "exit_price");
  http_free(&r);
  cr_assert_eq(close_trade(tid, "{\"pnl\":4}", &r), 422, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "field"), "pnl");
  http_free(&r);
  assert_trade_open(tid);
}

Test(trades, a_malformed_decimal_is_422)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  const char *bodies[] = {"{\"pnl\":\"1e3\"}", "{\"pnl\":\"1.123456789\"}", "{\"pnl\":\"\"}",
                          "{\"exit_price\":\"0\"}", "{\"exit_price\":\"-5.00\"}"};
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    struct http_resp r;
    cr_assert_eq(close_trade(tid, bodies[i], &r), 422, "%s: %s", bodies[i], r.body);
    cr_assert_not_null(jget_str(r.json, "field"), "%s", r.body);
    http_free(&r);
  }
  assert_trade_open(tid);
}

Test(trades, a_user_token_is_403_even_for_the_owner)
{
  char user[96], tid[64], path[256];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  snprintf(path, sizeof path, "/api/trades/%s/close", tid);
  char *tok = token_for(user, "user");
  struct http_resp r;
  http("POST", path, tok, "{\"pnl\":\"1000.00\"}", NULL, NULL, &r);
  free(tok);
  cr_assert_eq(r.status, 403, "%s", r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
  assert_trade_open(tid);
}

/* ---- events ---- */

Test(trades, close_publishes_trade_closed_stats_and_equity_in_order)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  close_ok(tid, "{\"exit_price\":\"150.10\"}");
  json_object *ev = user_events(user);
  size_t n = json_object_array_length(ev), at = n;
  for (size_t i = 0; i < n; i++)
    if (strcmp(jget_str(json_object_array_get_idx(ev, i), "type"), "trade_closed") == 0)
      at = i;
  cr_assert(at + 2 < n, "no trade_closed followed by two events: %s", json_object_to_json_string(ev));
  json_object *tc = json_object_array_get_idx(ev, at), *us = json_object_array_get_idx(ev, at + 1),
              *eq = json_object_array_get_idx(ev, at + 2);
  cr_assert_str_eq(jget_str(us, "type"), "user_stats_update");
  cr_assert_str_eq(jget_str(eq, "type"), "equity_updated");
  cr_assert_str_eq(jget_str(tc, "data.trade_id"), tid);
  assert_money(tc, "data.pnl", "4.35");
  cr_assert_str_eq(jget_str(tc, "data.result"), "win");
  assert_money(us, "data.stats.total_pnl", "4.35");
  cr_assert_eq(jget_int(us, "data.stats.wins"), 1);
  assert_money(eq, "data.equity", "10004.35");
  assert_money(eq, "data.total_pnl", "4.35");
  assert_money(eq, "data.peak", "10004.35");
  cr_assert_eq(count_type(ev, "risk_alert"), 0, "a win raised a risk alert");
  json_object_put(ev);
}

Test(trades, a_loss_crossing_5_percent_publishes_one_risk_alert)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  close_ok(tid, "{\"pnl\":\"-600.00\"}"); /* 10000 -> 9400: 6 % */
  json_object *ev = user_events(user);
  cr_assert_eq(count_type(ev, "risk_alert"), 1, "%s", json_object_to_json_string(ev));
  json_object *a = last_of(ev, "risk_alert");
  cr_assert_eq(jget_int(a, "data.threshold_pct"), 5, "%s", json_object_to_json_string(a));
  assert_money(a, "data.equity", "9400.00");
  assert_money(a, "data.peak", "10000.00");
  const char *dd = jget_str(a, "data.drawdown_pct");
  cr_assert(dd && fabs(atof(dd) - 6.0) < 0.01, "drawdown_pct %s", dd);
  json_object *eq = last_of(ev, "equity_updated");
  assert_money(eq, "data.equity", "9400.00");
  json_object_put(ev);
}

Test(trades, a_small_loss_after_an_alert_stays_quiet)
{
  char user[96], t1[64], t2[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, t1, sizeof t1);
  open_buy(user, t2, sizeof t2);
  close_ok(t1, "{\"pnl\":\"-600.00\"}"); /* 6 %: alert at 5 */
  close_ok(t2, "{\"pnl\":\"-200.00\"}"); /* 8 %: under 10, nothing new */
  json_object *ev = user_events(user);
  cr_assert_eq(count_type(ev, "risk_alert"), 1, "%s", json_object_to_json_string(ev));
  cr_assert_eq(count_type(ev, "equity_updated"), 2);
  assert_money(last_of(ev, "equity_updated"), "data.equity", "9200.00");
  json_object_put(ev);
}

Test(trades, a_loss_under_the_first_threshold_raises_no_alert)
{
  char user[96], tid[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, tid, sizeof tid);
  close_ok(tid, "{\"pnl\":\"-499.99\"}"); /* 4.9999 % */
  json_object *ev = user_events(user);
  cr_assert_eq(count_type(ev, "risk_alert"), 0, "%s", json_object_to_json_string(ev));
  json_object_put(ev);
}

Test(trades, crossing_the_next_threshold_alerts_again)
{
  char user[96], t1[64], t2[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, t1, sizeof t1);
  open_buy(user, t2, sizeof t2);
  close_ok(t1, "{\"pnl\":\"-600.00\"}"); /* 6 % */
  close_ok(t2, "{\"pnl\":\"-500.00\"}"); /* 11 % */
  json_object *ev = user_events(user);
  cr_assert_eq(count_type(ev, "risk_alert"), 2, "%s", json_object_to_json_string(ev));
  cr_assert_eq(jget_int(last_of(ev, "risk_alert"), "data.threshold_pct"), 10);
  json_object_put(ev);
}

Test(trades, drawdown_is_measured_from_the_peak)
{
  char user[96], t1[64], t2[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, t1, sizeof t1);
  open_buy(user, t2, sizeof t2);
  close_ok(t1, "{\"pnl\":\"2000.00\"}");  /* peak 12000 */
  close_ok(t2, "{\"pnl\":\"-700.00\"}");  /* 11300: 5.83 % below the peak, above the start */
  json_object *ev = user_events(user);
  cr_assert_eq(count_type(ev, "risk_alert"), 1, "%s", json_object_to_json_string(ev));
  json_object *a = last_of(ev, "risk_alert");
  cr_assert_eq(jget_int(a, "data.threshold_pct"), 5);
  assert_money(a, "data.peak", "12000.00");
  json_object_put(ev);
}

Test(trades, money_never_comes_back_as_a_json_number)
{
  char user[96], t1[64], t2[64];
  snprintf(user, sizeof user, "%s", uniq("u"));
  open_buy(user, t1, sizeof t1);
  open_trade(user, "SELL", "145.75", "150.00", "130.00", t2, sizeof t2);
  struct http_resp r;
  cr_assert_eq(close_trade(t1, "{\"exit_price\":\"150.10\"}", &r), 200);
  assert_no_money_numbers(r.json, "close response");
  http_free(&r);
  cr_assert_eq(close_trade(t2, "{\"pnl\":\"-900.00\"}", &r), 200); /* with a risk alert */
  assert_no_money_numbers(r.json, "close response");
  http_free(&r);
  json_object *ev = user_events(user);
  cr_assert(count_type(ev, "risk_alert") == 1);
  assert_no_money_numbers(ev, "user events");
  json_object_put(ev);
}
