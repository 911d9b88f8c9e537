/* POST /api/signals and GET /api/signals/{id}: creation, validation of every field, auth, history event, public view. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* ---- helpers ---- */

/* a valid BUY signal body with id `id` (no id member when NULL) */
static json_object *valid_buy(const char *id)
{
  json_object *o = json_object_new_object();
  if (id)
    json_object_object_add(o, "id", json_object_new_string(id));
  json_object_object_add(o, "symbol", json_object_new_string("AAPL"));
  json_object_object_add(o, "direction", json_object_new_string("BUY"));
  json_object_object_add(o, "entry", json_object_new_string("145.75"));
  json_object_object_add(o, "stop_loss", json_object_new_string("140.00"));
  json_object_object_add(o, "take_profit", json_object_new_string("160.00"));
  json_object_object_add(o, "ttl", json_object_new_int(3600));
  json_object_object_add(o, "title", json_object_new_string("test signal"));
  return o;
}

/* a valid SELL signal body */
static json_object *valid_sell(const char *id)
{
  json_object *o = valid_buy(id);
  json_object_object_add(o, "direction", json_object_new_string("SELL"));
  json_object_object_add(o, "stop_loss", json_object_new_string("150.00"));
  json_object_object_add(o, "take_profit", json_object_new_string("130.00"));
  return o;
}

static void set_str(json_object *o, const char *k, const char *v)
{
  json_object_object_add(o, k, json_object_new_string(v));
}

/* POSTs `body` (consumed) to /api/signals with `role`'s token (no token when NULL) */
static long create_as(const char *role, json_object *body, struct http_resp *r)
{
  char *tok = role ? token_for(uniq("caller"), role) : NULL;
  http("POST", "/api/signals", tok, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN),
       NULL, NULL, r);
  free(tok);
  json_object_put(body);
  return r->status;
}

static long create(json_object *body, struct http_resp *r)
{
  return create_as("service", body, r);
}

static long long signal_exists(const char *id)
{
  char key[256];
  snprintf(key, sizeof key, "%ssignal:%s", kp(), id);
  const char *av[] = {"EXISTS", key};
  return rinteger(2, av);
}

/* how many signal_created events in the `signals` history are about `id` */
static int created_events_for(const char *id)
{
  json_object *h = rstream("signals");
  int n = 0;
  for (size_t i = 0; i < json_object_array_length(h); i++) {
    json_object *e = json_object_array_get_idx(h, i);
    const char *t = jget_str(e, "type"), *sid = jget_str(e, "data.id");
    if (t && sid && strcmp(t, "signal_created") == 0 && strcmp(sid, id) == 0)
      n++;
  }
  json_object_put(h);
  return n;
}

static int is_problem(const struct http_resp *r)
{
  char ct[128];
  return http_header(r, "Content-Type", ct, sizeof ct) &&
         strstr(ct, "application/problem+json") != NULL;
}

/* the body (consumed) must be refused with 422 naming `field`, and nothing may
 * be written for its id */
static void expect_422(json_object *body, const char *id, const char *field)
{
  struct http_resp r;
  create(body, &r);
  cr_assert_eq(r.status, 422, "want 422 for field %s, got %ld: %s", field, r.status, r.body);
  cr_assert(is_problem(&r), "not problem+json: %s", r.headers);
  cr_assert_eq(jget_int(r.json, "status"), 422);
  cr_assert_not_null(jget_str(r.json, "field"), "no field member: %s", r.body);
  cr_assert_str_eq(jget_str(r.json, "field"), field, "%s", r.body);
  http_free(&r);
  cr_assert_eq(signal_exists(id), 0, "signal %s was written", id);
  cr_assert_eq(created_events_for(id), 0, "an event was published for %s", id);
}

static char *idcopy(const char *prefix)
{
  return strdup(uniq(prefix));
}

/* ---- creation ---- */

Test(signals, create_with_id_returns_201_and_the_signal)
{
  char *id = idcopy("sig");
  struct http_resp r;
  long long t0 = now_s();
  cr_assert_eq(create(valid_buy(id), &r), 201, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "id"), id);
  cr_assert_str_eq(jget_str(r.json, "symbol"), "AAPL");
  cr_assert_str_eq(jget_str(r.json, "direction"), "BUY");
  cr_assert_str_eq(jget_str(r.json, "entry"), "145.75");
  cr_assert_str_eq(jget_str(r.json, "stop_loss"), "140.00");
  cr_assert_str_eq(jget_str(r.json, "take_profit"), "160.00");
  cr_assert_str_eq(jget_str(r.json, "title"), "test signal");
  cr_assert_str_eq(jget_str(r.json, "status"), "ACTIVE");
  cr_assert_eq(jget_int(r.json, "fire_count"), 0);
  long long exp = jget_int(r.json, "expires_at");
  cr_assert(exp >= t0 + 3600 && exp <= now_s() + 3600, "expires_at %lld", exp);
  long long left = jget_int(r.json, "seconds_left");
  cr_assert(left > 3590 && left <= 3600, "seconds_left %lld", left);
  http_free(&r);
  cr_assert_eq(signal_exists(id), 1);
  free(id);
}

Test(signals, create_without_id_generates_a_sig_n_id)
{
  struct http_resp r;
  cr_assert_eq(create(valid_buy(NULL), &r), 201, "%s", r.body);
  const char *id = jget_str(r.json, "id");
  cr_assert_not_null(id);
  cr_assert(strncmp(id, "sig_", 4) == 0 && id[4] != '\0', "generated id %s", id);
  for (const char *p = id + 4; *p; p++)
    cr_assert(*p >= '0' && *p <= '9', "generated id %s is not sig_<number>", id);
  cr_assert_eq(signal_exists(id), 1);
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", id);
  struct http_resp g;
  http("GET", path, NULL, NULL, NULL, NULL, &g);
  cr_assert_eq(g.status, 200);
  cr_assert_str_eq(jget_str(g.json, "id"), id);
  http_free(&g);
  http_free(&r);
}

Test(signals, two_generated_ids_differ)
{
  struct http_resp a, b;
  cr_assert_eq(create(valid_buy(NULL), &a), 201);
  cr_assert_eq(create(valid_buy(NULL), &b), 201);
  cr_assert_str_neq(jget_str(a.json, "id"), jget_str(b.json, "id"));
  http_free(&a);
  http_free(&b);
}

Test(signals, create_sends_a_location_header)
{
  char *id = idcopy("sig");
  struct http_resp r;
  cr_assert_eq(create(valid_buy(id), &r), 201);
  char loc[256], want[256];
  cr_assert_not_null(http_header(&r, "Location", loc, sizeof loc), "%s", r.headers);
  snprintf(want, sizeof want, "/api/signals/%s", id);
  /* relative or absolute, it must end in the signal's path */
  size_t ll = strlen(loc), wl = strlen(want);
  cr_assert(ll >= wl && strcmp(loc + ll - wl, want) == 0, "Location %s", loc);
  http_free(&r);
  free(id);
}

Test(signals, create_appends_signal_created_to_the_signals_history)
{
  char *id = idcopy("sig");
  struct http_resp r;
  cr_assert_eq(create(valid_buy(id), &r), 201);
  http_free(&r);
  json_object *h = rstream("signals");
  json_object *found = NULL;
  for (size_t i = 0; i < json_object_array_length(h); i++) {
    json_object *e = json_object_array_get_idx(h, i);
    const char *sid = jget_str(e, "data.id");
    if (sid && strcmp(sid, id) == 0)
      found = e;
  }
  cr_assert_not_null(found, "no event about %s in h:signals", id);
  cr_assert_str_eq(jget_str(found, "type"), "signal_created");
  cr_assert_str_eq(jget_str(found, "data.symbol"), "AAPL");
  cr_assert_str_eq(jget_str(found, "data.entry"), "145.75");
  cr_assert_str_eq(jget_str(found, "data.status"), "ACTIVE");
  json_object_put(h);
  cr_assert_eq(created_events_for(id), 1);
  free(id);
}

Test(signals, admin_may_create)
{
  char *id = idcopy("sig");
  struct http_resp r;
  cr_assert_eq(create_as("admin", valid_buy(id), &r), 201, "%s", r.body);
  http_free(&r);
  cr_assert_eq(signal_exists(id), 1);
  free(id);
}

Test(signals, sell_with_stop_above_and_target_below_is_201)
{
  char *id = idcopy("sig");
  struct http_resp r;
  cr_assert_eq(create(valid_sell(id), &r), 201, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "direction"), "SELL");
  cr_assert_str_eq(jget_str(r.json, "stop_loss"), "150.00");
  cr_assert_str_eq(jget_str(r.json, "take_profit"), "130.00");
  http_free(&r);
  free(id);
}

Test(signals, existing_id_is_409_and_the_first_signal_stays)
{
  char *id = idcopy("sig");
  struct http_resp r;
  cr_assert_eq(create(valid_buy(id), &r), 201);
  http_free(&r);
  json_object *again = valid_sell(id);
  set_str(again, "title", "second");
  cr_assert_eq(create(again, &r), 409, "%s", r.body);
  cr_assert(is_problem(&r));
  cr_assert_eq(jget_int(r.json, "status"), 409);
  http_free(&r);
  char key[256];
  snprintf(key, sizeof key, "%ssignal:%s", kp(), id);
  const char *av[] = {"HGET", key, "title"}, *av2[] = {"HGET", key, "direction"};
  char *title = rstr(3, av), *dir = rstr(3, av2);
  cr_assert_str_eq(title, "test signal");
  cr_assert_str_eq(dir, "BUY");
  free(title);
  free(dir);
  cr_assert_eq(created_events_for(id), 1, "the refused create published an event");
  free(id);
}

/* ---- validation: 422 naming the field, nothing written ---- */

Test(signals, missing_symbol_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  json_object_object_del(b, "symbol");
  expect_422(b, id, "symbol");
  free(id);
}

Test(signals, bad_symbol_is_422)
{
  const char *bad[] = {"AA PL", "$$$", "", "AAPL/USD", "A<B", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *id = idcopy("sig");
    json_object *b = valid_buy(id);
    set_str(b, "symbol", bad[i]);
    expect_422(b, id, "symbol");
    free(id);
  }
}

Test(signals, symbol_as_a_number_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  json_object_object_add(b, "symbol", json_object_new_int(42));
  expect_422(b, id, "symbol");
  free(id);
}

Test(signals, direction_other_than_buy_or_sell_is_422)
{
  const char *bad[] = {"HOLD", "LONG", "", "BUYY", "SEL"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *id = idcopy("sig");
    json_object *b = valid_buy(id);
    set_str(b, "direction", bad[i]);
    expect_422(b, id, "direction");
    free(id);
  }
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  json_object_object_del(b, "direction");
  expect_422(b, id, "direction");
  free(id);
}

Test(signals, entry_as_a_json_number_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  json_object_object_add(b, "entry", json_object_new_double(145.75));
  expect_422(b, id, "entry");
  free(id);
}

Test(signals, entry_in_exponent_notation_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "entry", "1e5");
  set_str(b, "take_profit", "200000");
  expect_422(b, id, "entry");
  free(id);
}

Test(signals, entry_with_nine_decimals_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "entry", "145.123456789");
  expect_422(b, id, "entry");
  free(id);
}

Test(signals, entry_with_eight_decimals_is_kept_exactly)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "entry", "145.12345678");
  struct http_resp r;
  cr_assert_eq(create(b, &r), 201, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "entry"), "145.12345678");
  http_free(&r);
  free(id);
}

Test(signals, stop_loss_above_entry_for_a_buy_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "stop_loss", "150.00");
  expect_422(b, id, "stop_loss");
  free(id);
}

Test(signals, take_profit_below_entry_for_a_buy_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "take_profit", "145.00");
  expect_422(b, id, "take_profit");
  free(id);
}

Test(signals, stop_loss_below_entry_for_a_sell_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_sell(id);
  set_str(b, "stop_loss", "140.00");
  expect_422(b, id, "stop_loss");
  free(id);
}

Test(signals, take_profit_above_entry_for_a_sell_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_sell(id);
  set_str(b, "take_profit", "146.00");
  expect_422(b, id, "take_profit");
  free(id);
}

/* both and neither implicate the pair; either of its names is a fair answer */
static void expect_422_expiry(json_object *body, const char *id)
{
  struct http_resp r;
  create(body, &r);
  cr_assert_eq(r.status, 422, "%s", r.body);
  const char *f = jget_str(r.json, "field");
  cr_assert(f && (strcmp(f, "expires_at") == 0 || strcmp(f, "ttl") == 0), "field %s", f);
  http_free(&r);
  cr_assert_eq(signal_exists(id), 0);
}

Test(signals, both_expires_at_and_ttl_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  json_object_object_add(b, "expires_at", json_object_new_int64(now_s() + 600));
  expect_422_expiry(b, id);
  free(id);
}

Test(signals, neither_expires_at_nor_ttl_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  json_object_object_del(b, "ttl");
  expect_422_expiry(b, id);
  free(id);
}

Test(signals, expires_at_in_the_past_is_422)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  json_object_object_del(b, "ttl");
  json_object_object_add(b, "expires_at", json_object_new_int64(now_s() - 60));
  expect_422(b, id, "expires_at");
  free(id);
}

Test(signals, expires_at_in_the_future_is_kept)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  json_object_object_del(b, "ttl");
  long long exp = now_s() + 900;
  json_object_object_add(b, "expires_at", json_object_new_int64(exp));
  struct http_resp r;
  cr_assert_eq(create(b, &r), 201, "%s", r.body);
  cr_assert_eq(jget_int(r.json, "expires_at"), exp);
  http_free(&r);
  free(id);
}

Test(signals, title_with_cr_or_lf_is_422)
{
  const char *bad[] = {"two\nlines", "carriage\rreturn", "crlf\r\nhere", "\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *id = idcopy("sig");
    json_object *b = valid_buy(id);
    set_str(b, "title", bad[i]);
    expect_422(b, id, "title");
    free(id);
  }
}

Test(signals, title_over_200_bytes_is_422)
{
  char title[202];
  memset(title, 'a', 201);
  title[201] = '\0';
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "title", title);
  expect_422(b, id, "title");
  free(id);
  /* 101 two-byte characters: 101 characters but 202 bytes */
  char wide[203] = "";
  for (int i = 0; i < 101; i++)
    strcat(wide, "\xc3\xa9");
  id = idcopy("sig");
  b = valid_buy(id);
  set_str(b, "title", wide);
  expect_422(b, id, "title");
  free(id);
}

Test(signals, title_of_exactly_200_bytes_is_accepted)
{
  char title[201];
  memset(title, 'b', 200);
  title[200] = '\0';
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "title", title);
  struct http_resp r;
  cr_assert_eq(create(b, &r), 201, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "title"), title);
  http_free(&r);
  free(id);
}

Test(signals, briefing_over_4000_bytes_is_422)
{
  char *brief = malloc(4002);
  memset(brief, 'c', 4001);
  brief[4001] = '\0';
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "briefing", brief);
  expect_422(b, id, "briefing");
  free(brief);
  free(id);
}

Test(signals, briefing_with_line_breaks_is_kept)
{
  const char *brief = "line one\nline two\r\nline three";
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "briefing", brief);
  struct http_resp r;
  cr_assert_eq(create(b, &r), 201, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "briefing"), brief);
  http_free(&r);
  free(id);
}

/* ---- auth ---- */

Test(signals, user_token_is_403_and_writes_nothing)
{
  char *id = idcopy("sig");
  struct http_resp r;
  cr_assert_eq(create_as("user", valid_buy(id), &r), 403, "%s", r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
  cr_assert_eq(signal_exists(id), 0);
  cr_assert_eq(created_events_for(id), 0);
  free(id);
}

Test(signals, no_token_is_401_and_writes_nothing)
{
  char *id = idcopy("sig");
  struct http_resp r;
  cr_assert_eq(create_as(NULL, valid_buy(id), &r), 401, "%s", r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
  cr_assert_eq(signal_exists(id), 0);
  free(id);
}

/* ---- GET /api/signals/{id} ---- */

Test(signals, get_returns_the_public_view)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "briefing", "the briefing");
  struct http_resp r;
  cr_assert_eq(create(b, &r), 201);
  http_free(&r);
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", id);
  http("GET", path, NULL, NULL, NULL, NULL, &r); /* public: no token */
  cr_assert_eq(r.status, 200, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "id"), id);
  cr_assert_str_eq(jget_str(r.json, "symbol"), "AAPL");
  cr_assert_str_eq(jget_str(r.json, "direction"), "BUY");
  cr_assert_str_eq(jget_str(r.json, "entry"), "145.75");
  cr_assert_str_eq(jget_str(r.json, "stop_loss"), "140.00");
  cr_assert_str_eq(jget_str(r.json, "take_profit"), "160.00");
  cr_assert_str_eq(jget_str(r.json, "title"), "test signal");
  cr_assert_str_eq(jget_str(r.json, "briefing"), "the briefing");
  cr_assert_str_eq(jget_str(r.json, "status"), "ACTIVE");
  cr_assert_eq(jget_int(r.json, "fire_count"), 0);
  cr_assert(jget_int(r.json, "expires_at") > now_s());
  cr_assert(jget_int(r.json, "seconds_left") > 0);
  /* internal bookkeeping is not part of the public view */
  json_object *v;
  cr_assert_not(json_object_object_get_ex(r.json, "created_by", &v), "%s", r.body);
  http_free(&r);
  free(id);
}

Test(signals, get_shows_expired_once_past_expires_at)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  json_object_object_add(b, "ttl", json_object_new_int(1));
  struct http_resp r;
  cr_assert_eq(create(b, &r), 201);
  http_free(&r);
  sleep(2);
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", id);
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200);
  cr_assert_str_eq(jget_str(r.json, "status"), "EXPIRED", "%s", r.body);
  cr_assert_eq(jget_int(r.json, "seconds_left"), 0);
  http_free(&r);
  free(id);
}

Test(signals, get_unknown_is_404_problem)
{
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", uniq("nosuch"));
  struct http_resp r;
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 404);
  cr_assert(is_problem(&r));
  cr_assert_eq(jget_int(r.json, "status"), 404);
  http_free(&r);
}

Test(signals, prices_come_back_exactly_as_sent)
{
  char *id = idcopy("sig");
  json_object *b = valid_buy(id);
  set_str(b, "symbol", "EURUSD");
  set_str(b, "entry", "1.10");
  set_str(b, "stop_loss", "1.0500");
  set_str(b, "take_profit", "1.2");
  struct http_resp r;
  cr_assert_eq(create(b, &r), 201, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "entry"), "1.10");
  cr_assert_str_eq(jget_str(r.json, "stop_loss"), "1.0500");
  cr_assert_str_eq(jget_str(r.json, "take_profit"), "1.2");
  /* strings in JSON, never numbers */
  json_object *v;
  cr_assert(json_object_object_get_ex(r.json, "entry", &v) && json_object_is_type(v, json_type_string));
  http_free(&r);

  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", id);
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  cr_assert_str_eq(jget_str(r.json, "entry"), "1.10");
  cr_assert_str_eq(jget_str(r.json, "stop_loss"), "1.0500");
  cr_assert_str_eq(jget_str(r.json, "take_profit"), "1.2");
  cr_assert(strstr(r.body, "\"entry\":\"1.10\"") != NULL, "%s", r.body);
  http_free(&r);

  char key[256];
  snprintf(key, sizeof key, "%ssignal:%s", kp(), id);
  const char *av[] = {"HGET", key, "entry"};
  char *stored = rstr(3, av);
  cr_assert_str_eq(stored, "1.10");
  free(stored);
  free(id);
}
