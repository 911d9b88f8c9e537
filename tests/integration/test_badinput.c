/* Bad input of every kind is refused with the right 4xx and writes nothing; hostile text renders escaped; bad tokens are 401. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "buf.h"
#include "harness.h"

/* ---- helpers ---- */

static int is_problem(const struct http_resp *r)
{
  char ct[128];
  return http_header(r, "Content-Type", ct, sizeof ct) &&
         strstr(ct, "application/problem+json") != NULL;
}

static long long key_exists(const char *kind, const char *id)
{
  char key[512];
  snprintf(key, sizeof key, "%s%s:%s", kp(), kind, id);
  const char *av[] = {"EXISTS", key};
  return rinteger(2, av);
}

/* a valid signal body with id and title (both plain text, no JSON escaping needed) */
static char *signal_body(const char *id, const char *title)
{
  char *b = malloc(1024);
  snprintf(b, 1024,
           "{\"id\":\"%s\",\"symbol\":\"AAPL\",\"direction\":\"BUY\",\"entry\":\"145.75\","
           "\"stop_loss\":\"140.00\",\"take_profit\":\"160.00\",\"ttl\":3600,\"title\":\"%s\"}",
           id, title);
  return b;
}

/* POST /api/signals as a service with a raw body and content type */
static long post_signal_raw(const char *body, const char *ctype, struct http_resp *r)
{
  char *svc = token_for("test-feed", "service");
  http("POST", "/api/signals", svc, body, ctype, NULL, r);
  free(svc);
  return r->status;
}

/* no signal_created event in the history names `id` */
static void assert_no_signal_event(const char *id)
{
  json_object *h = rstream("signals");
  for (size_t i = 0; i < json_object_array_length(h); i++) {
    json_object *e = json_object_array_get_idx(h, i);
    const char *sid = jget_str(e, "data.id");
    cr_assert(!(sid && strcmp(sid, id) == 0), "an event was published for %s", id);
  }
  json_object_put(h);
}

/* refused: status `want`, problem+json, signal `id` absent, no event */
static void assert_refused_signal(const struct http_resp *r, long want, const char *id)
{
  cr_assert_eq(r->status, want, "want %ld, got %ld: %s", want, r->status, r->body);
  cr_assert(is_problem(r), "not problem+json: %s", r->headers);
  cr_assert_eq(jget_int(r->json, "status"), want);
  cr_assert_eq(key_exists("signal", id), 0, "signal %s was written", id);
  assert_no_signal_event(id);
}

static void assert_nothing_fired(const char *sid, const char *user)
{
  char key[256];
  snprintf(key, sizeof key, "%ssignal:%s", kp(), sid);
  const char *av[] = {"HGET", key, "fire_count"};
  char *fc = rstr(3, av);
  cr_assert_str_eq(fc, "0", "fire_count of %s is %s", sid, fc ? fc : "(none)");
  free(fc);
  char fired[300];
  snprintf(fired, sizeof fired, "%s:fired", sid);
  cr_assert_eq(key_exists("signal", fired), 0);
  if (user) {
    cr_assert_eq(key_exists("user", user), 0, "user %s was written", user);
    cr_assert_eq(key_exists("rate", user), 0, "rate of %s was written", user);
  }
}

/* a fire body for sid, now */
static void fire_body(char *out, size_t n, const char *sid)
{
  snprintf(out, n, "{\"signal_id\":\"%s\",\"timestamp\":%lld}", sid, now_s());
}

/* ---- malformed bodies ---- */

Test(body, malformed_json_is_400_and_writes_nothing)
{
  char id[96];
  snprintf(id, sizeof id, "%s", uniq("sig"));
  char bodies[5][256];
  snprintf(bodies[0], 256, "{\"id\":\"%s\",\"symbol\":", id);
  snprintf(bodies[1], 256, "{\"id\":\"%s\",}", id);
  snprintf(bodies[2], 256, "{'id':'%s'}", id);
  snprintf(bodies[3], 256, "{\"id\":\"%s\"} {}", id);
  snprintf(bodies[4], 256, "{\"id\":\"%s\" \"symbol\":\"AAPL\"}", id);
  for (int i = 0; i < 5; i++) {
    struct http_resp r;
    post_signal_raw(bodies[i], NULL, &r);
    assert_refused_signal(&r, 400, id);
    http_free(&r);
  }
}

Test(body, an_empty_body_is_400)
{
  struct http_resp r;
  post_signal_raw("", "application/json", &r);
  cr_assert_eq(r.status, 400, "%s", r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
}

Test(body, a_json_array_or_scalar_body_is_400)
{
  char id[96];
  snprintf(id, sizeof id, "%s", uniq("sig"));
  char *obj = signal_body(id, "t");
  char arr[1100];
  snprintf(arr, sizeof arr, "[%s]", obj);
  const char *bodies[] = {arr, "42", "\"text\"", "null", "true"};
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    struct http_resp r;
    post_signal_raw(bodies[i], NULL, &r);
    assert_refused_signal(&r, 400, id);
    http_free(&r);
  }
  free(obj);
}

static char *big_signal_body(const char *id, size_t briefing_len)
{
  char *brief = malloc(briefing_len + 1);
  memset(brief, 'x', briefing_len);
  brief[briefing_len] = '\0';
  size_t n = briefing_len + 1024;
  char *b = malloc(n);
  snprintf(b, n,
           "{\"id\":\"%s\",\"symbol\":\"AAPL\",\"direction\":\"BUY\",\"entry\":\"145.75\","
           "\"stop_loss\":\"140.00\",\"take_profit\":\"160.00\",\"ttl\":3600,\"briefing\":\"%s\"}",
           id, brief);
  free(brief);
  return b;
}

Test(body, a_body_over_16_kib_is_413_problem)
{
  char id[96];
  snprintf(id, sizeof id, "%s", uniq("sig"));
  char *b = big_signal_body(id, 20000);
  struct http_resp r;
  post_signal_raw(b, NULL, &r);
  assert_refused_signal(&r, 413, id);
  http_free(&r);
  free(b);
}

/* a POST with a chunked body, sent byte for byte */
static int post_chunked(const char *path, const char *token, const char *body, size_t chunk,
                        struct http_resp *r)
{
  struct sortie_buf q = {0};
  sortie_buf_printf(&q,
                    "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                    "Connection: close\r\n\r\n",
                    path, token);
  size_t n = strlen(body);
  for (size_t off = 0; off < n; off += chunk) {
    size_t l = n - off < chunk ? n - off : chunk;
    sortie_buf_printf(&q, "%zx\r\n", l);
    sortie_buf_append(&q, body + off, l);
    sortie_buf_puts(&q, "\r\n");
  }
  sortie_buf_puts(&q, "0\r\n\r\n");
  int rc = http_raw(q.base, q.len, r);
  sortie_buf_free(&q);
  return rc;
}

Test(body, a_chunked_body_over_16_kib_is_413_problem)
{
  char id[96];
  snprintf(id, sizeof id, "%s", uniq("sig"));
  char *b = big_signal_body(id, 20000);
  char *svc = token_for("test-feed", "service");
  struct http_resp r;
  cr_assert_eq(post_chunked("/api/signals", svc, b, 4000, &r), 0, "no answer");
  assert_refused_signal(&r, 413, id);
  http_free(&r);
  free(svc);
  free(b);
}

Test(body, a_chunked_body_under_the_limit_is_accepted)
{
  char id[96];
  snprintf(id, sizeof id, "%s", uniq("sig"));
  char *b = big_signal_body(id, 3000);
  char *svc = token_for("test-feed", "service");
  struct http_resp r;
  cr_assert_eq(post_chunked("/api/signals", svc, b, 1000, &r), 0, "no answer");
  cr_assert_eq(r.status, 201, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "id"), id);
  http_free(&r);
  cr_assert_eq(key_exists("signal", id), 1);
  free(svc);
  free(b);
}

Test(body, a_non_json_content_type_is_415_and_writes_nothing)
{
  char id[96];
  snprintf(id, sizeof id, "%s", uniq("sig"));
  char *b = signal_body(id, "t");
  const char *types[] = {"text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/xml", "text/json"};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    struct http_resp r;
    post_signal_raw(b, types[i], &r);
    cr_assert_eq(r.status, 415, "%s: %ld %s", types[i], r.status, r.body);
    assert_refused_signal(&r, 415, id);
    http_free(&r);
  }
  /* and with no Content-Type at all */
  char *svc = token_for("test-feed", "service");
  char req[2048];
  int n = snprintf(req, sizeof req,
                   "POST /api/signals HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   svc, strlen(b), b);
  struct http_resp r;
  cr_assert_eq(http_raw(req, (size_t)n, &r), 0);
  assert_refused_signal(&r, 415, id);
  http_free(&r);
  free(svc);
  free(b);
}

Test(body, json_with_a_charset_parameter_is_accepted)
{
  char id[96];
  snprintf(id, sizeof id, "%s", uniq("sig"));
  char *b = signal_body(id, "t");
  struct http_resp r;
  post_signal_raw(b, "application/json; charset=utf-8", &r);
  cr_assert_eq(r.status, 201, "%s", r.body);
  http_free(&r);
  free(b);
}

Test(body, json_nested_100_deep_is_400)
{
  char id[96];
  snprintf(id, sizeof id, "%s", uniq("sig"));
  struct sortie_buf b = {0};
  sortie_buf_printf(&b, "{\"id\":\"%s\",\"symbol\":\"AAPL\",\"direction\":\"BUY\",\"entry\":\"145.75\","
                        "\"stop_loss\":\"140.00\",\"take_profit\":\"160.00\",\"ttl\":3600,\"x\":",
                    id);
  for (int i = 0; i < 100; i++)
    sortie_buf_puts(&b, i % 2 ? "[" : "{\"k\":");
  sortie_buf_puts(&b, "1");
  for (int i = 99; i >= 0; i--)
    sortie_buf_puts(&b, i % 2 ? "]" : "}");
  sortie_buf_puts(&b, "}");
  struct http_resp r;
  post_signal_raw(b.base, NULL, &r);
  assert_refused_signal(&r, 400, id);
  http_free(&r);
  sortie_buf_free(&b);
}

/* a valid signal whose title holds the raw bytes `bad` */
static void expect_bad_utf8_refused(const char *bad)
{
  char id[96], title[64];
  snprintf(id, sizeof id, "%s", uniq("sig"));
  snprintf(title, sizeof title, "a%sb", bad);
  char *b = signal_body(id, title);
  struct http_resp r;
  post_signal_raw(b, NULL, &r);
  cr_assert_eq(r.status, 400, "title bytes a%sb: %ld %s", bad, r.status, r.body);
  assert_refused_signal(&r, 400, id);
  http_free(&r);
  free(b);
}

Test(utf8, invalid_bytes_are_400)
{
  expect_bad_utf8_refused("\xff");
  expect_bad_utf8_refused("\xfe");
  expect_bad_utf8_refused("\x80");    /* a continuation byte alone */
  expect_bad_utf8_refused("\xc3");    /* a lead byte without its continuation */
  expect_bad_utf8_refused("\xe2\x82"); /* a 3-byte sequence cut short */
}

Test(utf8, an_overlong_encoding_is_400)
{
  expect_bad_utf8_refused("\xc0\xaf");     /* '/' in two bytes */
  expect_bad_utf8_refused("\xe0\x80\xaf"); /* '/' in three bytes */
}

Test(utf8, an_encoded_utf16_surrogate_is_400)
{
  expect_bad_utf8_refused("\xed\xa0\x80"); /* U+D800 */
}

Test(utf8, a_code_point_above_u10ffff_is_400)
{
  expect_bad_utf8_refused("\xf4\x90\x80\x80"); /* U+110000 */
}

/* ---- hostile ids, in the path and in bodies ---- */

static void assert_4xx(long st, const char *what)
{
  cr_assert(st >= 400 && st <= 499, "%s: status %ld, want 4xx", what, st);
}

/* `enc` is the id as it goes in a URL (percent-encoded); `decoded` what a
 * careless server would store it as */
static void bad_path_id(const char *enc, const char *decoded)
{
  char *usr = token_for(uniq("u"), "user"), *svc = token_for("test-backoffice", "service");
  char path[1024];
  struct http_resp r;

  snprintf(path, sizeof path, "/api/signals/%s/fire-count", enc);
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  assert_4xx(r.status, path);
  http_free(&r);

  snprintf(path, sizeof path, "/api/signals/%s", enc);
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  assert_4xx(r.status, path);
  http_free(&r);

  snprintf(path, sizeof path, "/api/missions/%s", enc);
  http("GET", path, usr, NULL, NULL, NULL, &r);
  assert_4xx(r.status, path);
  http_free(&r);

  snprintf(path, sizeof path, "/mission/%s", enc);
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  assert_4xx(r.status, path);
  http_free(&r);

  snprintf(path, sizeof path, "/api/users/%s/stats", enc);
  http("GET", path, svc, NULL, NULL, NULL, &r);
  assert_4xx(r.status, path);
  http_free(&r);

  snprintf(path, sizeof path, "/api/trades/%s/close", enc);
  http("POST", path, svc, "{\"pnl\":\"1.00\"}", NULL, NULL, &r);
  assert_4xx(r.status, path);
  http_free(&r);
  cr_assert_eq(key_exists("trade", decoded), 0, "trade %s was written", decoded);
  free(usr);
  free(svc);
}

/* the same request line sent raw (no client-side encoding at all) */
static void bad_raw_path(const char *raw_id)
{
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET /api/signals/%s/fire-count HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Connection: close\r\n\r\n",
                   raw_id);
  struct http_resp r;
  cr_assert_eq(http_raw(req, (size_t)n, &r), 0, "no answer to a raw request line");
  long st = r.status;
  if (st == 0) /* an HTTP/0.9 answer has no status line: take the problem's own */
    st = jget_int(r.json, "status");
  assert_4xx(st, "raw request line");
  http_free(&r);
}

/* the id in bodies: 422 (or 400) and nothing written */
static void bad_body_id(const char *json_id /* JSON-escaped */, const char *redis_id)
{
  char *b = signal_body(json_id, "bad-id probe");
  struct http_resp r;
  post_signal_raw(b, NULL, &r);
  cr_assert_eq(r.status, 422, "signal id %s: %ld %s", json_id, r.status, r.body);
  cr_assert_str_eq(jget_str(r.json, "field"), "id");
  http_free(&r);
  free(b);
  if (redis_id)
    cr_assert_eq(key_exists("signal", redis_id), 0);

  char user[96], body[512];
  snprintf(user, sizeof user, "%s", uniq("u"));
  char *tok = token_for(user, "user");
  fire_body(body, sizeof body, json_id);
  http("POST", "/api/fire", tok, body, NULL, NULL, &r);
  cr_assert_eq(r.status, 422, "fire signal_id %s: %ld %s", json_id, r.status, r.body);
  cr_assert_str_eq(jget_str(r.json, "field"), "signal_id");
  http_free(&r);
  free(tok);
  cr_assert_eq(key_exists("user", user), 0);
  cr_assert_eq(key_exists("rate", user), 0);
}

Test(ids, a_script_tag_id_is_refused_everywhere)
{
  char enc[128], dec[128], js[128];
  const char *u = uniq("x");
  snprintf(enc, sizeof enc, "%s%%3C%%2Fscript%%3E", u);
  snprintf(dec, sizeof dec, "%s</script>", u);
  bad_path_id(enc, dec);
  snprintf(enc, sizeof enc, "%s%%3Cscript%%3E", u);
  snprintf(dec, sizeof dec, "%s<script>", u);
  bad_path_id(enc, dec);
  bad_raw_path("<script>");
  snprintf(js, sizeof js, "%s</script>", u);
  bad_body_id(js, js);
}

Test(ids, a_crlf_id_is_refused_everywhere)
{
  char enc[128], dec[128], js[128];
  const char *u = uniq("x");
  snprintf(enc, sizeof enc, "%s%%0D%%0AX-Injected:%%201", u);
  snprintf(dec, sizeof dec, "%s\r\nX-Injected: 1", u);
  bad_path_id(enc, dec);
  bad_raw_path("a\r\nX-Injected: 1");
  snprintf(js, sizeof js, "%s\\r\\nX-Injected: 1", u);
  snprintf(dec, sizeof dec, "%s\r\nX-Injected: 1", u);
  bad_body_id(js, dec);
}

Test(ids, an_id_with_a_space_is_refused_everywhere)
{
  char enc[128], dec[128];
  const char *u = uniq("x");
  snprintf(enc, sizeof enc, "%s%%20b", u);
  snprintf(dec, sizeof dec, "%s b", u);
  bad_path_id(enc, dec);
  bad_raw_path("a b");
  bad_body_id(dec, dec);
}

Test(ids, a_dot_dot_slash_id_is_refused_everywhere)
{
  char enc[128], dec[128];
  const char *u = uniq("x");
  snprintf(enc, sizeof enc, "..%%2F..%%2F%s", u);
  snprintf(dec, sizeof dec, "../../%s", u);
  bad_path_id(enc, dec);
  bad_raw_path("../../etc/passwd");
  bad_raw_path("..%2F..%2Fetc");
  snprintf(dec, sizeof dec, "../%s", u);
  bad_body_id(dec, dec);
}

Test(ids, a_65_character_id_is_refused_everywhere)
{
  char id[80];
  snprintf(id, sizeof id, "%s", uniq("long"));
  size_t l = strlen(id);
  memset(id + l, 'x', 65 - l);
  id[65] = '\0';
  bad_path_id(id, id);
  bad_body_id(id, id);
  /* 64 is the longest id there is */
  id[64] = '\0';
  char *b = signal_body(id, "t");
  struct http_resp r;
  post_signal_raw(b, NULL, &r);
  cr_assert_eq(r.status, 201, "a 64-character id: %s", r.body);
  http_free(&r);
  free(b);
}

Test(ids, a_nul_in_an_id_is_refused_everywhere)
{
  char enc[128], js[128], prefix[96];
  snprintf(prefix, sizeof prefix, "%s", uniq("x"));
  snprintf(enc, sizeof enc, "%s%%00b", prefix);
  bad_path_id(enc, prefix); /* a C server would cut the id at the NUL */
  snprintf(js, sizeof js, "%s\\u0000b", prefix);
  bad_body_id(js, prefix);
}

/* ---- hostile text on the mission page ---- */

static const char *const XSS = "</script><script>alert(1)</script>";

static char *make_xss_signal(void)
{
  char *id = strdup(uniq("xss"));
  json_object *o = json_object_new_object();
  json_object_object_add(o, "id", json_object_new_string(id));
  json_object_object_add(o, "symbol", json_object_new_string("AAPL"));
  json_object_object_add(o, "direction", json_object_new_string("BUY"));
  json_object_object_add(o, "entry", json_object_new_string("145.75"));
  json_object_object_add(o, "stop_loss", json_object_new_string("140.00"));
  json_object_object_add(o, "take_profit", json_object_new_string("160.00"));
  json_object_object_add(o, "ttl", json_object_new_int(3600));
  json_object_object_add(o, "title", json_object_new_string(XSS));
  json_object_object_add(o, "briefing", json_object_new_string(XSS));
  struct http_resp r;
  post_signal_raw(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), NULL, &r);
  cr_assert_eq(r.status, 201, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "title"), XSS);
  http_free(&r);
  json_object_put(o);
  return id;
}

static void get_page(const char *id, struct http_resp *r)
{
  char path[256];
  snprintf(path, sizeof path, "/mission/%s", id);
  http("GET", path, NULL, NULL, NULL, NULL, r);
}

Test(page, a_script_title_is_accepted_and_rendered_escaped)
{
  char *id = make_xss_signal();
  struct http_resp r;
  get_page(id, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  char ct[128];
  cr_assert(http_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "text/html"), "%s", ct);
  cr_assert_null(strcasestr(r.body, "<script>alert"), "raw <script>alert in the page");
  cr_assert_null(strcasestr(r.body, "</script><script>"), "raw payload in the page");
  cr_assert_not_null(strstr(r.body, "alert(1)"), "the title is not on the page at all");
  http_free(&r);
  free(id);
}

Test(page, the_json_block_is_closed_only_by_its_own_tag)
{
  char *id = make_xss_signal();
  struct http_resp r;
  get_page(id, &r);
  cr_assert_eq(r.status, 200);
  const char *open = strcasestr(r.body, "<script type=\"application/json\"");
  cr_assert_not_null(open, "no JSON block on the page");
  const char *start = strchr(open, '>');
  cr_assert_not_null(start);
  start++;
  const char *end = strcasestr(start, "</script");
  cr_assert_not_null(end, "the JSON block is never closed");
  /* what lies between is the whole JSON: it parses and holds the exact title,
   * so the first "</script" after the block's start is the block's own */
  char *block = strndup(start, (size_t)(end - start));
  cr_assert_null(strcasestr(block, "<script"), "a script tag inside the JSON block");
  json_object *o = json_tokener_parse(block);
  cr_assert_not_null(o, "the JSON block does not parse: %s", block);
  const char *t = jget_str(o, "title");
  if (t == NULL)
    t = jget_str(o, "signal.title");
  cr_assert_not_null(t, "no title in the JSON block: %s", block);
  cr_assert_str_eq(t, XSS);
  json_object_put(o);
  free(block);
  http_free(&r);
  free(id);
}

Test(page, an_unknown_mission_is_a_404_html_page)
{
  struct http_resp r;
  get_page(uniq("nosuch"), &r);
  cr_assert_eq(r.status, 404);
  char ct[128];
  cr_assert(http_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "text/html"), "%s", ct);
  cr_assert_not_null(strcasestr(r.body, "<html"), "%s", r.body);
  http_free(&r);
}

Test(page, a_mission_path_that_is_not_an_id_is_the_404_html_page_too)
{
  struct http_resp r;
  /* (no %2F: Apache itself refuses encoded slashes with its own 404) */
  http("GET", "/mission/%3Cb%3Ebad%20id%3E", NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 404);
  char ct[128];
  cr_assert(http_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "text/html"), "%s", ct);
  cr_assert_null(strstr(r.body, "<b>bad"), "the id must be escaped: %s", r.body);
  cr_assert_not_null(strstr(r.body, "&lt;b&gt;bad id"), "%s", r.body);
  http_free(&r);
}

/* ---- authentication ---- */

/* a signal nobody has fired, and a user with no state */
static void fresh(char *sid, size_t sn, char *user, size_t un)
{
  snprintf(sid, sn, "%s", uniq("sig"));
  snprintf(user, un, "%s", uniq("u"));
  cr_assert_eq(make_signal(sid, 3600), 201);
}

/* POST /api/fire with `token` (NULL: none); asserts 401 and that nothing was fired */
static void expect_401_fire(const char *token, const char *sid, const char *user,
                            const char *query)
{
  char body[256], path[4200];
  fire_body(body, sizeof body, sid);
  snprintf(path, sizeof path, "/api/fire%s", query ? query : "");
  struct http_resp r;
  http("POST", path, token, body, NULL, NULL, &r);
  cr_assert_eq(r.status, 401, "%s", r.body);
  cr_assert(is_problem(&r));
  char v[256];
  cr_assert_not_null(http_header(&r, "WWW-Authenticate", v, sizeof v), "%s", r.headers);
  cr_assert(strncasecmp(v, "Bearer", 6) == 0, "WWW-Authenticate: %s", v);
  http_free(&r);
  assert_nothing_fired(sid, user);
}

static char *b64url(const char *s)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t n = strlen(s);
  char *o = malloc(n * 4 / 3 + 4), *p = o;
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    *p++ = tab[u[i] >> 2];
    *p++ = tab[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
    *p++ = tab[((u[i + 1] & 15) << 2) | (u[i + 2] >> 6)];
    *p++ = tab[u[i + 2] & 63];
  }
  if (n - i == 1) {
    *p++ = tab[u[i] >> 2];
    *p++ = tab[(u[i] & 3) << 4];
  } else if (n - i == 2) {
    *p++ = tab[u[i] >> 2];
    *p++ = tab[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
    *p++ = tab[(u[i + 1] & 15) << 2];
  }
  *p = '\0';
  return o;
}

Test(auth, a_valid_token_in_the_header_or_the_cookie_is_accepted)
{
  char sid[96], user[96], body[256], cookie[4200];
  fresh(sid, sizeof sid, user, sizeof user);
  char *tok = token_for(user, "user");
  snprintf(cookie, sizeof cookie, "Cookie: sortie_token=%s", tok);
  fire_body(body, sizeof body, sid);
  struct http_resp r;
  http("POST", "/api/fire", NULL, body, NULL, cookie, &r);
  cr_assert_eq(r.status, 201, "cookie: %s", r.body);
  http_free(&r);
  char path[256];
  snprintf(path, sizeof path, "/api/users/%s/stats", user);
  http("GET", path, tok, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "header: %s", r.body);
  http_free(&r);
  free(tok);
}

Test(auth, no_token_is_401_with_www_authenticate)
{
  char sid[96], user[96];
  fresh(sid, sizeof sid, user, sizeof user);
  expect_401_fire(NULL, sid, user, NULL);
}

Test(auth, a_token_in_the_query_string_is_401_naming_the_push_daemon)
{
  char sid[96], user[96], q[4200], path[4400];
  fresh(sid, sizeof sid, user, sizeof user);
  char *tok = token_for(user, "user");
  snprintf(q, sizeof q, "?token=%s", tok);
  expect_401_fire(NULL, sid, user, q);
  snprintf(path, sizeof path, "/api/missions/%s?token=%s", sid, tok);
  struct http_resp r;
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 401, "%s", r.body);
  const char *d = jget_str(r.json, "detail");
  cr_assert(d && strcasestr(d, "push daemon"), "detail: %s", d ? d : "(none)");
  http_free(&r);
  free(tok);
}

Test(auth, an_alg_none_token_is_401)
{
  char sid[96], user[96], claims[256];
  fresh(sid, sizeof sid, user, sizeof user);
  snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"role\":\"admin\",\"iat\":%lld,\"exp\":%lld}",
           user, now_s(), now_s() + 3600);
  char *h = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}"), *p = b64url(claims);
  char tok[1024];
  snprintf(tok, sizeof tok, "%s.%s.", h, p);
  expect_401_fire(tok, sid, user, NULL);
  /* and with a signature-looking tail */
  snprintf(tok, sizeof tok, "%s.%s.AAAA", h, p);
  expect_401_fire(tok, sid, user, NULL);
  free(h);
  free(p);
}

Test(auth, a_token_signed_with_another_key_is_401)
{
  char sid[96], user[96];
  fresh(sid, sizeof sid, user, sizeof user);
  const char *key = "not-the-server-secret-but-long-enough-0123456789";
  char *tok = sortie_auth_mint("HS256", (const unsigned char *)key, strlen(key), user, "user",
                               (long)now_s(), (long)now_s() + 3600);
  cr_assert_not_null(tok);
  expect_401_fire(tok, sid, user, NULL);
  free(tok);
}

Test(auth, an_expired_token_is_401)
{
  char sid[96], user[96];
  fresh(sid, sizeof sid, user, sizeof user);
  char *tok = token_custom(user, "user", (long)now_s() - 7200, (long)now_s() - 3600);
  expect_401_fire(tok, sid, user, NULL);
  free(tok);
}

Test(auth, a_token_with_nbf_in_the_future_is_401)
{
  char sid[96], user[96], claims[256];
  fresh(sid, sizeof sid, user, sizeof user);
  snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"role\":\"user\",\"exp\":%lld,\"nbf\":%lld}",
           user, now_s() + 7200, now_s() + 3600);
  char *tok = token_claims(claims);
  cr_assert_not_null(tok);
  expect_401_fire(tok, sid, user, NULL);
  free(tok);
}

Test(auth, a_token_without_sub_is_401)
{
  char sid[96], user[96], claims[256];
  fresh(sid, sizeof sid, user, sizeof user);
  snprintf(claims, sizeof claims, "{\"role\":\"user\",\"iat\":%lld,\"exp\":%lld}", now_s(),
           now_s() + 3600);
  char *tok = token_claims(claims);
  cr_assert_not_null(tok);
  expect_401_fire(tok, sid, user, NULL);
  free(tok);
}

/* ---- Idempotency-Key ---- */

static void expect_400_idem(const char *key)
{
  char sid[96], user[96];
  fresh(sid, sizeof sid, user, sizeof user);
  struct http_resp r;
  cr_assert_eq(fire(user, sid, key, &r), 400, "key '%s': %s", key, r.body);
  cr_assert(is_problem(&r));
  http_free(&r);
  assert_nothing_fired(sid, user);
}

Test(idempotency, a_key_with_a_space_is_400)
{
  expect_400_idem("two words");
}

Test(idempotency, a_key_of_200_characters_is_400)
{
  char key[201];
  memset(key, 'k', 200);
  key[200] = '\0';
  expect_400_idem(key);
}
