/* POST /api/publish and GET /api/events: envelopes, cursors, paging, merging, channel rules, reset, exact data, fire events. */
#include <curl/curl.h>
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

/* a fresh market channel ("market:MKT_<pid>_<n>") in out */
static const char *market(char *out, size_t n)
{
  snprintf(out, n, "market:%s", uniq("MKT"));
  return out;
}

static long publish_as(const char *role, const char *channel, const char *type,
                       const char *data_json, struct http_resp *r)
{
  char *tok = token_for(uniq("pub"), role);
  size_t n = strlen(channel) + strlen(type) + strlen(data_json) + 64;
  char *body = malloc(n);
  snprintf(body, n, "{\"channel\":\"%s\",\"type\":\"%s\",\"data\":%s}", channel, type, data_json);
  http("POST", "/api/publish", tok, body, NULL, NULL, r);
  free(body);
  free(tok);
  return r->status;
}

static long publish(const char *channel, const char *type, const char *data_json,
                    struct http_resp *r)
{
  return publish_as("service", channel, type, data_json, r);
}

/* publishes and returns the new event's id (malloc'd) */
static char *publish_ok(const char *channel, const char *type, const char *data_json)
{
  struct http_resp r;
  cr_assert_eq(publish(channel, type, data_json, &r), 201, "publish on %s: %s", channel, r.body);
  char *id = strdup(jget_str(r.json, "id"));
  http_free(&r);
  return id;
}

/* GET /api/events?channels=..[&cursor=..][&limit=..] with token `tok` */
static long poll_events(const char *tok, const char *channels, const char *cursor, int limit,
                        struct http_resp *r)
{
  CURL *c = curl_easy_init();
  char *ch = curl_easy_escape(c, channels, 0);
  char *cu = cursor ? curl_easy_escape(c, cursor, 0) : NULL;
  char path[4096];
  int n = snprintf(path, sizeof path, "/api/events?channels=%s", ch);
  if (cu)
    n += snprintf(path + n, sizeof path - (size_t)n, "&cursor=%s", cu);
  if (limit > 0)
    snprintf(path + n, sizeof path - (size_t)n, "&limit=%d", limit);
  curl_free(ch);
  curl_free(cu);
  curl_easy_cleanup(c);
  http("GET", path, tok, NULL, NULL, NULL, r);
  return r->status;
}

static json_object *events_of(const struct http_resp *r)
{
  json_object *e = NULL;
  cr_assert(r->json && json_object_object_get_ex(r->json, "events", &e) &&
                json_object_is_type(e, json_type_array),
            "no events array: %s", r->body);
  return e;
}

/* the current cursor for `channels` as a privileged reader (malloc'd) */
static char *cursor_now(const char *channels)
{
  char *tok = token_for("test-reader", "service");
  struct http_resp r;
  cr_assert_eq(poll_events(tok, channels, NULL, 0, &r), 200, "%s", r.body);
  free(tok);
  cr_assert_eq(json_object_array_length(events_of(&r)), 0);
  const char *c = jget_str(r.json, "cursor");
  cr_assert(c && *c, "no cursor: %s", r.body);
  char *out = strdup(c);
  http_free(&r);
  return out;
}

/* polls as a service reader; asserts 200 */
static void poll_ok(const char *channels, const char *cursor, int limit, struct http_resp *r)
{
  char *tok = token_for("test-reader", "service");
  poll_events(tok, channels, cursor, limit, r);
  free(tok);
  cr_assert_eq(r->status, 200, "%s", r->body);
}

static long long stream_len(const char *channel)
{
  char key[256];
  snprintf(key, sizeof key, "%sh:%s", kp(), channel);
  const char *av[] = {"XLEN", key};
  return rinteger(2, av);
}

/* ---- POST /api/publish ---- */

Test(publish, returns_201_with_id_channel_and_type)
{
  char ch[128];
  market(ch, sizeof ch);
  struct http_resp r;
  cr_assert_eq(publish(ch, "market_update", "{\"price\":\"1.10\"}", &r), 201, "%s", r.body);
  const char *id = jget_str(r.json, "id");
  cr_assert_not_null(id);
  unsigned long long ms, seq;
  char tail;
  cr_assert_eq(sscanf(id, "%llu-%llu%c", &ms, &seq, &tail), 2, "id %s", id);
  cr_assert_str_eq(jget_str(r.json, "channel"), ch);
  cr_assert_str_eq(jget_str(r.json, "type"), "market_update");
  http_free(&r);
  cr_assert_eq(stream_len(ch), 1);
}

Test(publish, admin_may_publish)
{
  char ch[128];
  market(ch, sizeof ch);
  struct http_resp r;
  cr_assert_eq(publish_as("admin", ch, "market_update", "{}", &r), 201, "%s", r.body);
  http_free(&r);
}

Test(publish, a_malformed_channel_is_400_and_writes_nothing)
{
  const char *bad[] = {"Bad", "mission:", "mission:a b", "foo:bar", "", "user:a:b", ":x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct http_resp r;
    cr_assert_eq(publish(bad[i], "notification", "{}", &r), 400, "channel '%s': %ld %s", bad[i],
                 r.status, r.body);
    cr_assert(is_problem(&r));
    http_free(&r);
    cr_assert_eq(stream_len(bad[i]), 0, "channel '%s' got an event", bad[i]);
  }
}

Test(publish, a_reserved_type_is_422)
{
  const char *reserved[] = {"reset", "pong", "subscribed", "error", "connection_status"};
  char ch[128];
  market(ch, sizeof ch);
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
    struct http_resp r;
    cr_assert_eq(publish(ch, reserved[i], "{}", &r), 422, "type %s: %s", reserved[i], r.body);
    cr_assert_str_eq(jget_str(r.json, "field"), "type");
    http_free(&r);
  }
  cr_assert_eq(stream_len(ch), 0);
}

Test(publish, a_malformed_type_is_422)
{
  const char *bad[] = {"Bad-Type", "", "1abc", "with space", "_x", "a-b",
                       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
  char ch[128];
  market(ch, sizeof ch);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct http_resp r;
    cr_assert_eq(publish(ch, bad[i], "{}", &r), 422, "type '%s': %s", bad[i], r.body);
    cr_assert_str_eq(jget_str(r.json, "field"), "type");
    http_free(&r);
  }
  cr_assert_eq(stream_len(ch), 0);
}

Test(publish, a_user_token_is_403_and_writes_nothing)
{
  char ch[128];
  market(ch, sizeof ch);
  struct http_resp r;
  cr_assert_eq(publish_as("user", ch, "market_update", "{}", &r), 403, "%s", r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
  cr_assert_eq(stream_len(ch), 0);
}

/* ---- GET /api/events ---- */

Test(events, a_published_event_appears_in_the_poll)
{
  char ch[128];
  market(ch, sizeof ch);
  char *cur = cursor_now(ch);
  char *id = publish_ok(ch, "market_update", "{\"price\":\"1.10\"}");
  struct http_resp r;
  poll_ok(ch, cur, 0, &r);
  json_object *ev = events_of(&r);
  cr_assert_eq(json_object_array_length(ev), 1, "%s", r.body);
  json_object *e = json_object_array_get_idx(ev, 0);
  cr_assert_str_eq(jget_str(e, "id"), id);
  cr_assert_str_eq(jget_str(e, "channel"), ch);
  cr_assert_str_eq(jget_str(e, "type"), "market_update");
  cr_assert_str_eq(jget_str(e, "data.price"), "1.10");
  http_free(&r);
  free(id);
  free(cur);
}

Test(events, the_envelope_is_id_channel_type_ts_data_with_ts_from_the_id)
{
  char ch[128];
  market(ch, sizeof ch);
  char *cur = cursor_now(ch);
  char *id = publish_ok(ch, "market_update", "{\"k\":\"v\"}");
  struct http_resp r;
  poll_ok(ch, cur, 0, &r);
  json_object *e = json_object_array_get_idx(events_of(&r), 0);
  cr_assert_not_null(e, "%s", r.body);
  const char *want[] = {"id", "channel", "type", "ts", "data"};
  cr_assert_eq(json_object_object_length(e), 5, "%s", json_object_to_json_string(e));
  for (size_t i = 0; i < 5; i++) {
    json_object *v;
    cr_assert(json_object_object_get_ex(e, want[i], &v), "no %s", want[i]);
  }
  json_object *ts = json_object_object_get(e, "ts");
  cr_assert(json_object_is_type(ts, json_type_int), "ts is not an integer");
  long long ms = strtoll(id, NULL, 10);
  cr_assert_eq(json_object_get_int64(ts), ms, "ts %lld, id %s", (long long)json_object_get_int64(ts), id);
  cr_assert(ms > now_ms() - 60000 && ms <= now_ms() + 1000, "ts %lld is not now", ms);
  /* the envelope's members in the contract's order */
  const char *p = strstr(r.body, "{\"id\":");
  cr_assert_not_null(p, "%s", r.body);
  const char *pc = strstr(p, "\"channel\":"), *pt = strstr(p, "\"type\":"), *pts = strstr(p, "\"ts\":"),
             *pd = strstr(p, "\"data\":");
  cr_assert(pc && pt && pts && pd && pc < pt && pt < pts && pts < pd, "%s", r.body);
  http_free(&r);
  free(id);
  free(cur);
}

Test(events, without_a_cursor_there_are_no_events_and_a_cursor)
{
  char ch[128];
  market(ch, sizeof ch);
  free(publish_ok(ch, "market_update", "{}"));
  free(publish_ok(ch, "market_update", "{}"));
  struct http_resp r;
  poll_ok(ch, NULL, 0, &r);
  cr_assert_eq(json_object_array_length(events_of(&r)), 0, "%s", r.body);
  const char *c = jget_str(r.json, "cursor");
  cr_assert(c && *c, "%s", r.body);
  http_free(&r);
}

Test(events, a_cursor_gives_the_events_after_it_in_order_and_a_new_cursor)
{
  char ch[128];
  market(ch, sizeof ch);
  char *cur = cursor_now(ch);
  char *ids[3];
  for (int i = 0; i < 3; i++) {
    char d[32];
    snprintf(d, sizeof d, "{\"i\":%d}", i);
    ids[i] = publish_ok(ch, "market_update", d);
  }
  struct http_resp r;
  poll_ok(ch, cur, 0, &r);
  json_object *ev = events_of(&r);
  cr_assert_eq(json_object_array_length(ev), 3, "%s", r.body);
  for (int i = 0; i < 3; i++) {
    json_object *e = json_object_array_get_idx(ev, (size_t)i);
    cr_assert_str_eq(jget_str(e, "id"), ids[i]);
    cr_assert_eq(jget_int(e, "data.i"), i);
  }
  const char *c2 = jget_str(r.json, "cursor");
  cr_assert(c2 && *c2);
  cr_assert_str_neq(c2, cur);
  http_free(&r);
  for (int i = 0; i < 3; i++)
    free(ids[i]);
  free(cur);
}

Test(events, polling_again_with_the_new_cursor_gives_nothing)
{
  char ch[128];
  market(ch, sizeof ch);
  char *cur = cursor_now(ch);
  for (int i = 0; i < 3; i++)
    free(publish_ok(ch, "market_update", "{}"));
  struct http_resp r;
  poll_ok(ch, cur, 0, &r);
  cr_assert_eq(json_object_array_length(events_of(&r)), 3);
  char *c2 = strdup(jget_str(r.json, "cursor"));
  http_free(&r);
  poll_ok(ch, c2, 0, &r);
  cr_assert_eq(json_object_array_length(events_of(&r)), 0, "%s", r.body);
  http_free(&r);
  /* and the next event after that is delivered once */
  char *id = publish_ok(ch, "market_update", "{}");
  poll_ok(ch, c2, 0, &r);
  json_object *ev = events_of(&r);
  cr_assert_eq(json_object_array_length(ev), 1, "%s", r.body);
  cr_assert_str_eq(jget_str(json_object_array_get_idx(ev, 0), "id"), id);
  http_free(&r);
  free(id);
  free(c2);
  free(cur);
}

Test(events, two_channels_are_merged_in_id_order)
{
  char a[128], b[128], both[300];
  market(a, sizeof a);
  market(b, sizeof b);
  snprintf(both, sizeof both, "%s,%s", a, b);
  char *cur = cursor_now(both);
  const char *order[] = {a, b, b, a, b};
  char *ids[5];
  for (int i = 0; i < 5; i++) {
    char d[32];
    snprintf(d, sizeof d, "{\"i\":%d}", i);
    ids[i] = publish_ok(order[i], "market_update", d);
  }
  struct http_resp r;
  poll_ok(both, cur, 0, &r);
  json_object *ev = events_of(&r);
  cr_assert_eq(json_object_array_length(ev), 5, "%s", r.body);
  for (int i = 0; i < 5; i++) {
    json_object *e = json_object_array_get_idx(ev, (size_t)i);
    cr_assert_str_eq(jget_str(e, "id"), ids[i], "position %d: %s", i, r.body);
    cr_assert_str_eq(jget_str(e, "channel"), order[i]);
    cr_assert_eq(jget_int(e, "data.i"), i);
  }
  http_free(&r);
  for (int i = 0; i < 5; i++)
    free(ids[i]);
  free(cur);
}

Test(events, limit_pages_through_without_loss_or_repeat)
{
  char ch[128];
  market(ch, sizeof ch);
  char *cur = cursor_now(ch);
  enum { N = 5 };
  char *ids[N];
  for (int i = 0; i < N; i++) {
    char d[32];
    snprintf(d, sizeof d, "{\"i\":%d}", i);
    ids[i] = publish_ok(ch, "market_update", d);
  }
  const size_t pages[] = {2, 2, 1, 0};
  int seen = 0;
  for (size_t p = 0; p < 4; p++) {
    struct http_resp r;
    poll_ok(ch, cur, 2, &r);
    json_object *ev = events_of(&r);
    cr_assert_eq(json_object_array_length(ev), pages[p], "page %zu: %s", p, r.body);
    for (size_t i = 0; i < json_object_array_length(ev); i++) {
      json_object *e = json_object_array_get_idx(ev, i);
      cr_assert_str_eq(jget_str(e, "id"), ids[seen], "page %zu item %zu", p, i);
      seen++;
    }
    free(cur);
    cur = strdup(jget_str(r.json, "cursor"));
    http_free(&r);
  }
  cr_assert_eq(seen, N);
  for (int i = 0; i < N; i++)
    free(ids[i]);
  free(cur);
}

Test(events, a_user_may_read_its_own_channel)
{
  char user[96], ch[128];
  snprintf(user, sizeof user, "%s", uniq("u"));
  snprintf(ch, sizeof ch, "user:%s", user);
  char *tok = token_for(user, "user");
  struct http_resp r;
  cr_assert_eq(poll_events(tok, ch, NULL, 0, &r), 200, "%s", r.body);
  http_free(&r);
  free(tok);
}

Test(events, another_users_channel_is_403)
{
  char ch[128];
  snprintf(ch, sizeof ch, "user:%s", uniq("b"));
  char *tok = token_for(uniq("a"), "user");
  struct http_resp r;
  cr_assert_eq(poll_events(tok, ch, NULL, 0, &r), 403, "%s", r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
  /* also when listed next to allowed channels */
  char mixed[300];
  snprintf(mixed, sizeof mixed, "signals,%s", ch);
  cr_assert_eq(poll_events(tok, mixed, NULL, 0, &r), 403, "%s", r.body);
  http_free(&r);
  free(tok);
}

Test(events, the_admin_channel_is_403_for_a_user)
{
  char *tok = token_for(uniq("a"), "user");
  struct http_resp r;
  cr_assert_eq(poll_events(tok, "admin", NULL, 0, &r), 403, "%s", r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
  free(tok);
}

Test(events, admin_may_read_any_user_and_admin)
{
  char ch[300];
  snprintf(ch, sizeof ch, "user:%s,admin", uniq("b"));
  char *tok = token_for(uniq("root"), "admin");
  struct http_resp r;
  cr_assert_eq(poll_events(tok, ch, NULL, 0, &r), 200, "%s", r.body);
  http_free(&r);
  free(tok);
}

Test(events, a_bad_channel_is_400)
{
  const char *bad[] = {"Bad", "mission:", "mission:a b", "foo:bar", "market:lower"};
  char *tok = token_for(uniq("a"), "user");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct http_resp r;
    cr_assert_eq(poll_events(tok, bad[i], NULL, 0, &r), 400, "'%s': %ld %s", bad[i], r.status,
                 r.body);
    cr_assert(is_problem(&r));
    http_free(&r);
  }
  free(tok);
}

Test(events, no_channel_at_all_is_400)
{
  char *tok = token_for(uniq("a"), "user");
  struct http_resp r;
  http("GET", "/api/events", tok, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 400, "no channels parameter: %s", r.body);
  http_free(&r);
  /* a list with no channel in it is no better */
  cr_assert_eq(poll_events(tok, ",", NULL, 0, &r), 400, "channels=',': %ld %s", r.status, r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
  free(tok);
}

Test(events, a_malformed_cursor_is_400)
{
  const char *bad[] = {"garbage", "1-2-3", "12-x", "-1", "1-", "99999999999999999999999-0"};
  char ch[128];
  market(ch, sizeof ch);
  char *tok = token_for(uniq("a"), "user");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct http_resp r;
    cr_assert_eq(poll_events(tok, ch, bad[i], 0, &r), 400, "cursor '%s': %ld %s", bad[i],
                 r.status, r.body);
    cr_assert_str_eq(jget_str(r.json, "field"), "cursor");
    http_free(&r);
  }
  free(tok);
}

/* A value that cannot be read is refused, never taken for a missing one:
 * a cursor longer than any id, a bad %-escape, an encoded NUL; a limit or a
 * status too long to read. */
Test(events, unreadable_query_values_are_400_not_absent)
{
  char ch[128];
  market(ch, sizeof ch);
  char *tok = token_for(uniq("a"), "user");
  char longcur[300];
  memset(longcur, '1', sizeof longcur - 1);
  longcur[sizeof longcur - 1] = '\0';
  const char *cases[][2] = {
      {"cursor", longcur}, {"cursor", "%zz"}, {"cursor", "1-%00"},
      {"limit", "10000000000000000000000"}, {"limit", "%"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *path = NULL;
    if (asprintf(&path, "/api/events?channels=%s&%s=%s", ch, cases[i][0], cases[i][1]) < 0)
      cr_assert_fail("asprintf");
    struct http_resp r;
    http("GET", path, tok, NULL, NULL, NULL, &r);
    cr_assert_eq(r.status, 400, "%s=%.40s: %ld %s", cases[i][0], cases[i][1], r.status, r.body);
    cr_assert_str_eq(jget_str(r.json, "field"), cases[i][0]);
    http_free(&r);
    free(path);
  }
  const char *sig[] = {"/api/signals?status=activeactiveactiveactive",
                       "/api/signals?limit=10000000000000000000000", "/api/signals?status=%zz"};
  for (size_t i = 0; i < sizeof sig / sizeof sig[0]; i++) {
    struct http_resp r;
    http("GET", sig[i], tok, NULL, NULL, NULL, &r);
    cr_assert_eq(r.status, 400, "%s: %ld %s", sig[i], r.status, r.body);
    http_free(&r);
  }
  free(tok);
}

Test(events, a_cursor_older_than_the_history_gets_one_reset)
{
  char ch[128];
  snprintf(ch, sizeof ch, "mission:%s", uniq("m"));
  char *cur = cursor_now(ch);
  for (int i = 0; i < 3; i++)
    free(publish_ok(ch, "mission_status_update", "{}"));
  char key[256];
  snprintf(key, sizeof key, "%sh:%s", kp(), ch);
  const char *av[] = {"XTRIM", key, "MAXLEN", "1"};
  cr_assert_eq(rinteger(4, av), 2);
  struct http_resp r;
  poll_ok(ch, cur, 0, &r);
  json_object *ev = events_of(&r);
  int resets = 0;
  for (size_t i = 0; i < json_object_array_length(ev); i++) {
    json_object *e = json_object_array_get_idx(ev, i);
    const char *t = jget_str(e, "type");
    if (t && strcmp(t, "reset") == 0) {
      resets++;
      cr_assert_str_eq(jget_str(e, "channel"), ch);
    }
  }
  cr_assert_eq(resets, 1, "%s", r.body);
  char *c2 = strdup(jget_str(r.json, "cursor"));
  http_free(&r);
  /* after the reset the client is current: no second reset */
  poll_ok(ch, c2, 0, &r);
  cr_assert_eq(json_object_array_length(events_of(&r)), 0, "%s", r.body);
  http_free(&r);
  free(c2);
  free(cur);
}

Test(events, data_with_newlines_script_tags_and_unicode_round_trips_exactly)
{
  const char *text = "line1\nline2\r\nCR\rend </script><script>alert(1)</script> "
                     "\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 \"q\" \\ / \t";
  json_object *data = json_object_new_object();
  json_object_object_add(data, "text", json_object_new_string(text));
  json_object *arr = json_object_new_array();
  json_object_array_add(arr, json_object_new_int(1));
  json_object_array_add(arr, json_object_new_string("</SCRIPT>"));
  json_object_array_add(arr, NULL);
  json_object_object_add(data, "list", arr);
  char ch[128];
  market(ch, sizeof ch);
  char *cur = cursor_now(ch);
  free(publish_ok(ch, "notification", json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN)));
  struct http_resp r;
  poll_ok(ch, cur, 0, &r);
  json_object *e = json_object_array_get_idx(events_of(&r), 0);
  cr_assert_not_null(e, "%s", r.body);
  json_object *got = json_object_object_get(e, "data");
  cr_assert_str_eq(jget_str(got, "text"), text);
  cr_assert(json_object_equal(got, data), "sent %s, got %s",
            json_object_to_json_string(data), json_object_to_json_string(got));
  http_free(&r);
  /* and so it is stored */
  json_object *h = rstream(ch);
  cr_assert_eq(json_object_array_length(h), 1);
  cr_assert(json_object_equal(json_object_object_get(json_object_array_get_idx(h, 0), "data"), data));
  json_object_put(h);
  json_object_put(data);
  free(cur);
}

/* "any event": a number the server cannot hold must be refused, never changed.
 * docs/API.md (Conventions): JSON is checked strictly, "no integer beyond 64
 * bits": 400 malformed, and nothing written (2^64, one past the largest
 * unsigned 64-bit integer, and one below the smallest signed one too) */
Test(events, numbers_in_data_are_never_silently_changed)
{
  const char *bigs[] = {"123456789012345678901234567890", "18446744073709551616",
                        "-9223372036854775809"};
  char ch[128], data[128];
  market(ch, sizeof ch);
  char *cur = cursor_now(ch);
  struct http_resp r;
  for (size_t i = 0; i < sizeof bigs / sizeof bigs[0]; i++) {
    snprintf(data, sizeof data, "{\"volume\":%s}", bigs[i]);
    publish(ch, "market_update", data, &r);
    cr_assert_eq(r.status, 400, "%s: %ld %s", data, r.status, r.body);
    const char *type = jget_str(r.json, "type");
    cr_assert(type && strstr(type, "/malformed"), "%s: %s", data, r.body);
    http_free(&r);
    cr_assert_eq(stream_len(ch), 0, "%s was written", data);
  }
  free(cur);
}

/* ---- the events a fire publishes ---- */

Test(events, a_fire_publishes_fire_count_update_on_the_mission)
{
  char sid[96], ch[160];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  snprintf(ch, sizeof ch, "mission:%s", sid);
  cr_assert_eq(make_signal(sid, 3600), 201);
  char *cur = cursor_now(ch);
  char user[96];
  snprintf(user, sizeof user, "%s", uniq("u"));
  cr_assert_eq(fire(user, sid, NULL, NULL), 201);
  char *tok = token_for(uniq("watcher"), "user"); /* any user may read a mission */
  struct http_resp r;
  cr_assert_eq(poll_events(tok, ch, cur, 0, &r), 200, "%s", r.body);
  free(tok);
  json_object *ev = events_of(&r);
  cr_assert_eq(json_object_array_length(ev), 1, "%s", r.body);
  json_object *e = json_object_array_get_idx(ev, 0);
  cr_assert_str_eq(jget_str(e, "type"), "fire_count_update");
  cr_assert_str_eq(jget_str(e, "channel"), ch);
  cr_assert_str_eq(jget_str(e, "data.signal_id"), sid);
  cr_assert_eq(jget_int(e, "data.count"), 1);
  http_free(&r);
  free(cur);
}

Test(events, a_fire_publishes_trade_executed_then_stats_on_the_user)
{
  char sid[96], user[96], ch[160], tid[64];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  snprintf(user, sizeof user, "%s", uniq("u"));
  snprintf(ch, sizeof ch, "user:%s", user);
  cr_assert_eq(make_signal(sid, 3600), 201);
  char *cur = cursor_now(ch);
  struct http_resp r;
  cr_assert_eq(fire(user, sid, NULL, &r), 201);
  snprintf(tid, sizeof tid, "%s", jget_str(r.json, "trade_id"));
  http_free(&r);
  char *tok = token_for(user, "user");
  cr_assert_eq(poll_events(tok, ch, cur, 0, &r), 200, "%s", r.body);
  free(tok);
  json_object *ev = events_of(&r);
  cr_assert_eq(json_object_array_length(ev), 2, "%s", r.body);
  json_object *te = json_object_array_get_idx(ev, 0), *su = json_object_array_get_idx(ev, 1);
  cr_assert_str_eq(jget_str(te, "type"), "trade_executed");
  cr_assert_str_eq(jget_str(te, "data.trade_id"), tid);
  cr_assert_str_eq(jget_str(te, "data.signal_id"), sid);
  cr_assert_str_eq(jget_str(te, "data.symbol"), "AAPL");
  cr_assert_str_eq(jget_str(te, "data.direction"), "BUY");
  cr_assert_str_eq(jget_str(te, "data.entry"), "145.75");
  cr_assert_str_eq(jget_str(su, "type"), "user_stats_update");
  cr_assert_str_eq(jget_str(su, "data.user_id"), user);
  cr_assert_eq(jget_int(su, "data.stats.total_trades"), 1);
  cr_assert_str_eq(jget_str(su, "data.stats.total_pnl"), "0.00");
  http_free(&r);
  free(cur);
}

/* A read over 64 channels looks at a bounded number of entries (about 2,000:
 * pages of 31 here, whatever `limit` asks), and following the cursor brings
 * every event, once, in order. */
Test(events, a_read_over_many_channels_is_a_small_page_and_the_cursor_brings_the_rest)
{
  enum { NCH = 64, PER = 2 };
  static char names[NCH][64];
  char list[NCH * 64 + 1] = "";
  for (int i = 0; i < NCH; i++) {
    market(names[i], sizeof names[i]);
    strcat(list, i ? "," : "");
    strcat(list, names[i]);
  }
  char *cur = cursor_now(list);
  static char *ids[NCH * PER];
  for (int k = 0; k < PER; k++)
    for (int i = 0; i < NCH; i++)
      ids[k * NCH + i] = publish_ok(names[i], "market_update", "{}");
  int got = 0, reads = 0;
  size_t most = 0;
  while (got < NCH * PER && reads < 50) {
    struct http_resp r;
    poll_ok(list, cur, 100, &r);
    reads++;
    json_object *ev = events_of(&r);
    size_t n = json_object_array_length(ev);
    most = n > most ? n : most;
    for (size_t i = 0; i < n; i++) {
      const char *id = jget_str(json_object_array_get_idx(ev, i), "id");
      cr_assert(got < NCH * PER && id && strcmp(id, ids[got]) == 0,
                "event %d: got %s, expected %s", got, id ? id : "(none)",
                got < NCH * PER ? ids[got] : "nothing more");
      got++;
    }
    free(cur);
    cur = strdup(jget_str(r.json, "cursor"));
    http_free(&r);
  }
  cr_expect_eq(got, NCH * PER, "%d of %d events", got, NCH * PER);
  cr_expect_leq(most, 2000 / NCH, "a 64-channel read answered %zu events", most);
  for (int i = 0; i < NCH * PER; i++)
    free(ids[i]);
  free(cur);
}
