/* sortie-pushd rules and abuse: tokens, channel rights, Origin, channel and connection limits, WebSocket protocol abuse, slow consumers. */
#include <pthread.h>
#include <unistd.h>

#include "test_pushd_util.h"
#include "valid.h"

SORTIE_WORLD_CONF("push.origins = https://good.example, https://also.example\n"
                  "push.max_conn_per_user = 3\n"
                  "push.max_channels = 5\n"
                  "push.outbuf_max = 65536\n"
                  /* big events for the slow-consumer test: the kernel buffers of
                   * one loopback connection take a few MB before pushd's own queue
                   * fills */
                  "api.body_max = 65536\n");

/* a fresh WebSocket gets an event published now: the daemon still serves */
static void still_serves(void)
{
  const char *ch = chan("market");
  char *tok = token_for(uniq("u"), "user");
  struct ws_client *ws = ws_ok(tok);
  char *wch = strf("[\"%s\"]", ch);
  char *c0 = cursor_now(ch);
  char *since = strf("\"%s\"", c0);
  ws_subscribe(ws, wch, since);
  char *id = publish_ok(ch, "market_update", "{\"alive\":true}");
  const char *t = ws_next_text(ws, T_LONG);
  cr_assert_not_null(t, "the daemon no longer delivers");
  char *eid = env_id(t);
  cr_assert_str_eq(eid, id);
  free(eid);
  free(id);
  free(since);
  free(c0);
  free(wch);
  free(tok);
  ws_close(ws);
}

static long sse_status(const char *channels, const char *token, const char *extra)
{
  char *path = strf("/events?channels=%s", channels);
  struct sse_client *c = sse_open(world_push_base(), path, token, NULL, extra, 0, T_SHORT);
  free(path);
  cr_assert_not_null(c, "no answer for SSE %s", channels);
  long st = c->status;
  if (st != 200) {
    char ct[128];
    cr_assert(pc_header(c->head, "Content-Type", ct, sizeof ct) &&
                  strstr(ct, "application/problem+json"),
              "an error is problem+json: %s", c->head);
    json_object *p = json_tokener_parse(c->body);
    cr_assert_not_null(p, "body: %s", c->body);
    cr_assert_eq(jget_int(p, "status"), st);
    json_object_put(p);
  }
  sse_close(c);
  return st;
}

static long ws_status(const char *path, const char *token, const char *extra)
{
  struct ws_client *c = ws_open(world_push_base(), path, token, extra, 0, T_SHORT);
  cr_assert_not_null(c, "no answer for WS");
  long st = c->status;
  ws_close(c);
  return st;
}

static long poll_status(const char *query, const char *token, const char *extra)
{
  char *path = strf("/poll?%s", query);
  struct pc_resp r;
  cr_assert_eq(pd_get(path, token, extra, &r, T_LONG), 0, "no answer for %s", path);
  long st = r.status;
  pc_resp_free(&r);
  free(path);
  return st;
}

/* ---- identity ---- */

Test(rules, no_or_bad_token_is_401_on_every_transport)
{
  cr_assert_eq(sse_status("signals", NULL, NULL), 401);
  cr_assert_eq(ws_status("/ws", NULL, NULL), 401);
  cr_assert_eq(poll_status("channels=signals&timeout=0", NULL, NULL), 401);
  cr_assert_eq(sse_status("signals", "not.a.token", NULL), 401);
  char *expired = token_custom(uniq("u"), "user", (long)now_s() - 7200, (long)now_s() - 3600);
  cr_assert_eq(sse_status("signals", expired, NULL), 401);
  cr_assert_eq(ws_status("/ws", expired, NULL), 401);
  /* the header answer names the scheme */
  struct sse_client *c = sse_open(world_push_base(), "/events?channels=signals", NULL, NULL, NULL,
                                  0, T_SHORT);
  char v[128];
  cr_assert_not_null(pc_header(c->head, "WWW-Authenticate", v, sizeof v));
  sse_close(c);
  free(expired);
}

Test(rules, a_token_by_cookie_or_query_is_accepted)
{
  char *tok = token_for(uniq("u"), "user");
  char *cookie = strf("Cookie: theme=dark; sortie_token=%s\r\n", tok);
  cr_assert_eq(sse_status(chan("market"), NULL, cookie), 200);
  cr_assert_eq(ws_status("/ws", NULL, cookie), 101);
  char *q = strf("/ws?token=%s", tok);
  cr_assert_eq(ws_status(q, NULL, NULL), 101);
  char *path = strf("/events?channels=%s&token=%s", chan("market"), tok);
  struct sse_client *c = sse_open(world_push_base(), path, NULL, NULL, NULL, 0, T_SHORT);
  cr_assert_eq(c->status, 200);
  sse_close(c);
  free(path);
  free(q);
  free(cookie);
  free(tok);
}

Test(rules, users_read_only_their_own_user_channel_and_not_admin)
{
  char a[96], b[96], a2[96];
  snprintf(a, sizeof a, "%s", uniq("ua"));
  snprintf(b, sizeof b, "%s", uniq("ub"));
  snprintf(a2, sizeof a2, "%s", uniq("ua"));
  char *ta = token_for(a, "user"), *ta2 = token_for(a2, "user");
  char *adm = token_for(uniq("boss"), "admin");
  char *ua = strf("user:%s", a), *ub = strf("user:%s", b), *ua2 = strf("user:%s", a2);
  /* the SSE probes are refused before any subscription, except the last
   * (another user's own channel: the WebSocket part below uses `a`) */
  cr_assert_eq(sse_status(ub, ta, NULL), 403);
  cr_assert_eq(sse_status("admin", ta, NULL), 403);
  char *mixed = strf("%s,%s", ua, ub);
  cr_assert_eq(sse_status(mixed, ta, NULL), 403, "one forbidden channel refuses the stream");
  char *pq = strf("channels=%s&timeout=0", ub);
  cr_assert_eq(poll_status(pq, ta, NULL), 403);
  cr_assert_eq(sse_status(ua2, ta2, NULL), 200, "a user reads its own channel");
  /* WebSocket: an error message, the connection stays */
  struct ws_client *ws = ws_ok(ta);
  char *m = strf("[\"%s\"]", ub);
  cr_assert_eq(ws_sendf(ws, "{\"action\":\"subscribe\",\"channels\":%s}", m), 0);
  ws_expect_error(ws, "forbidden");
  cr_assert_eq(ws_send_text(ws, "{\"action\":\"subscribe\",\"channels\":[\"admin\"]}"), 0);
  ws_expect_error(ws, "forbidden");
  /* all or nothing: a request with one forbidden channel subscribes none */
  char *both = strf("{\"action\":\"subscribe\",\"channels\":[\"%s\",\"admin\"]}", ua);
  cr_assert_eq(ws_send_text(ws, both), 0);
  ws_expect_error(ws, "forbidden");
  char *own = strf("[\"%s\"]", ua);
  char *c0 = cursor_now(ua), *s0 = strf("\"%s\"", c0);
  ws_subscribe(ws, own, s0);
  /* events of B never reach A */
  char *idb = publish_ok(ub, "notification", "{\"for\":\"b\"}");
  char *ida = publish_ok(ua, "notification", "{\"for\":\"a\"}");
  const char *t = ws_next_text(ws, T_LONG);
  cr_assert_not_null(t, "A did not get its own event");
  char *got = env_id(t);
  cr_assert_str_eq(got, ida, "A got %s", t);
  free(got);
  /* and B's does not come late: a marker on A's channel, published after
   * it, is the next message */
  free(ws_expect_only(ws, ua));
  ws_close(ws);
  /* admin reads admin (WebSocket first: see the SSE probes above) */
  ws = ws_ok(adm);
  char *c1 = cursor_now("admin");
  char *s1 = strf("\"%s\"", c1);
  ws_subscribe(ws, "[\"admin\"]", s1);
  char *ida2 = publish_ok("admin", "system_log", "{\"line\":\"x\"}");
  t = ws_next_text(ws, T_LONG);
  cr_assert_not_null(t, "admin did not get the admin event");
  got = env_id(t);
  cr_assert_str_eq(got, ida2);
  free(got);
  ws_close(ws);
  /* and anyone's user channel */
  cr_assert_eq(sse_status(ub, adm, NULL), 200);
  free(s1);
  free(c1);
  free(ida2);
  free(idb);
  free(ida);
  free(c0);
  free(s0);
  free(own);
  free(both);
  free(m);
  free(pq);
  free(mixed);
  free(ua);
  free(ub);
  free(ua2);
  free(adm);
  free(ta);
  free(ta2);
}

/* ---- Origin ---- */

Test(rules, only_configured_or_same_origins_are_allowed)
{
  char *tok = token_for(uniq("u"), "user");
  cr_assert_eq(sse_status("signals", tok, "Origin: https://evil.example\r\n"), 403);
  cr_assert_eq(ws_status("/ws", tok, "Origin: https://evil.example\r\n"), 403);
  cr_assert_eq(poll_status("channels=signals&timeout=0", tok, "Origin: https://evil.example\r\n"),
               403);
  /* a configured origin, echoed for CORS */
  char *p1 = strf("/events?channels=%s", chan("market"));
  struct sse_client *c =
      sse_open(world_push_base(), p1, tok, NULL, "Origin: https://also.example\r\n", 0, T_SHORT);
  free(p1);
  cr_assert_eq(c->status, 200);
  char v[256];
  cr_assert_not_null(pc_header(c->head, "Access-Control-Allow-Origin", v, sizeof v));
  cr_assert_str_eq(v, "https://also.example");
  sse_close(c);
  cr_assert_eq(ws_status("/ws", tok, "Origin: https://good.example\r\n"), 101);
  /* a prefix of an allowed origin is not allowed */
  cr_assert_eq(sse_status("signals", tok, "Origin: https://good.example.evil.example\r\n"), 403);
  cr_assert_eq(sse_status("signals", tok, "Origin: https://good.exampl\r\n"), 403);
  /* same origin: Origin matches the Host the daemon sees */
  char *same = strf("Origin: %s\r\n", world_push_base());
  cr_assert_eq(sse_status(chan("market"), tok, same), 200);
  cr_assert_eq(ws_status("/ws", tok, same), 101);
  /* through Apache the Host is Apache's: the page's own origin is allowed */
  char *page = strf("Origin: %s\r\n", world_base());
  char *p2 = strf("/push/events?channels=%s", chan("market"));
  struct sse_client *p = sse_open(world_base(), p2, tok, NULL, page, 0, T_SHORT);
  free(p2);
  cr_assert_not_null(p);
  cr_assert_eq(p->status, 200, "%s", p->head);
  sse_close(p);
  p = sse_open(world_base(), "/push/events?channels=signals", tok, NULL,
               "Origin: https://evil.example\r\n", 0, T_SHORT);
  cr_assert_eq(p->status, 403);
  sse_close(p);
  free(page);
  free(same);
  free(tok);
}

/* ---- channel limits and names ---- */

Test(rules, more_than_max_channels_is_refused)
{
  char *tok = token_for(uniq("u"), "user");
  char five[1024] = "", six[1024];
  for (int i = 0; i < 5; i++) {
    const char *c = chan("market");
    strcat(five, i ? "," : "");
    strcat(five, c);
  }
  snprintf(six, sizeof six, "%s,%s", five, chan("market"));
  cr_assert_eq(sse_status(six, tok, NULL), 400);
  cr_assert_eq(sse_status(five, tok, NULL), 200);
  char *dup = strf("%s,signals,signals", strchr(five, ',') + 1);
  cr_assert_eq(sse_status(dup, tok, NULL), 200, "a channel named twice counts once");
  char *pq = strf("channels=%s&timeout=0", six);
  cr_assert_eq(poll_status(pq, tok, NULL), 400);
  /* WebSocket: per request and in total */
  struct ws_client *ws = ws_ok(tok);
  char w6[1024] = "[", w3[512] = "[", w2[512] = "[", w3b[512] = "[";
  for (int i = 0; i < 6; i++)
    snprintf(w6 + strlen(w6), sizeof w6 - strlen(w6), "%s\"%s\"", i ? "," : "", chan("market"));
  strcat(w6, "]");
  cr_assert_eq(ws_sendf(ws, "{\"action\":\"subscribe\",\"channels\":%s}", w6), 0);
  ws_expect_error(ws, "too_many_channels");
  for (int i = 0; i < 3; i++) {
    snprintf(w3 + strlen(w3), sizeof w3 - strlen(w3), "%s\"%s\"", i ? "," : "", chan("market"));
    snprintf(w3b + strlen(w3b), sizeof w3b - strlen(w3b), "%s\"%s\"", i ? "," : "",
             chan("market"));
  }
  for (int i = 0; i < 2; i++)
    snprintf(w2 + strlen(w2), sizeof w2 - strlen(w2), "%s\"%s\"", i ? "," : "", chan("market"));
  strcat(w3, "]");
  strcat(w3b, "]");
  strcat(w2, "]");
  ws_subscribe(ws, w3, NULL);
  cr_assert_eq(ws_sendf(ws, "{\"action\":\"subscribe\",\"channels\":%s}", w3b), 0);
  ws_expect_error(ws, "too_many_channels");
  ws_subscribe(ws, w2, NULL); /* 5 in all: allowed */
  ws_subscribe(ws, w3, NULL); /* already subscribed: nothing new */
  ws_close(ws);
  free(pq);
  free(dup);
  free(tok);
}

Test(rules, bad_channel_names_are_400_or_invalid_channel)
{
  char *tok = token_for(uniq("u"), "user");
  static const char *bad[] = {
      "Market:X", "market:", "nochan:x", "market:a%20b", "market:a/b", "%00", ",",
      "market:x,", "market:0123456789012345678901234567890123456789012345678901234567890123456789",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(sse_status(bad[i], tok, NULL), 400, "channels=%s", bad[i]);
  cr_assert_eq(sse_status("", tok, NULL), 400);
  struct sse_client *c = sse_open(world_push_base(), "/events", tok, NULL, NULL, 0, T_SHORT);
  cr_assert_eq(c->status, 400, "no channels at all");
  sse_close(c);
  cr_assert_eq(poll_status("channels=Bad!&timeout=0", tok, NULL), 400);
  cr_assert_eq(poll_status("channels=signals&timeout=abc", tok, NULL), 400);
  cr_assert_eq(poll_status("channels=signals&timeout=0&cursor=yesterday", tok, NULL), 400);
  c = sse_open(world_push_base(), "/events?channels=signals", tok, "not-an-id", NULL, 0, T_SHORT);
  cr_assert_eq(c->status, 400, "a Last-Event-ID that is not an id");
  sse_close(c);

  struct ws_client *ws = ws_ok(tok);
  static const char *wbad[] = {"[\"Bad!\"]", "[\"market:\"]", "[123]", "[\"nochan:x\"]",
                               "[\"signals\",null]"};
  for (size_t i = 0; i < sizeof wbad / sizeof wbad[0]; i++) {
    char *m = strf("{\"action\":\"subscribe\",\"channels\":%s}", wbad[i]);
    cr_assert_eq(ws_send_text(ws, m), 0);
    ws_expect_error(ws, "invalid_channel");
    free(m);
  }
  cr_assert_eq(ws_send_text(ws, "{\"action\":\"subscribe\",\"channels\":\"signals\"}"), 0);
  ws_expect_error(ws, "bad_request");
  cr_assert_eq(ws_send_text(ws, "{\"action\":\"subscribe\",\"channels\":[]}"), 0);
  ws_expect_error(ws, "bad_request");
  cr_assert_eq(ws_send_text(ws, "{\"action\":\"subscribe\",\"channels\":[\"signals\"],"
                                "\"since\":\"yesterday\"}"), 0);
  ws_expect_error(ws, "bad_since");
  cr_assert_eq(ws_send_text(ws, "{\"action\":\"subscribe\",\"channels\":[\"signals\"],"
                                "\"since\":{\"signals\":5}}"), 0);
  ws_expect_error(ws, "bad_since");
  cr_assert_eq(ws_send_text(ws, "{\"action\":\"subscribe\",\"channels\":[\"signals\"],"
                                "\"since\":[1]}"), 0);
  ws_expect_error(ws, "bad_since");
  /* still a working connection */
  cr_assert_eq(ws_send_text(ws, "{\"action\":\"ping\"}"), 0);
  json_object *o = ws_next_json(ws, T_SHORT);
  cr_assert_str_eq(jget_str(o, "type"), "pong");
  json_object_put(o);
  ws_close(ws);
  free(tok);
}

/* An error that quotes a bad channel name stays whole UTF-8 (a WebSocket
 * text frame that is not is a protocol error for the client), however the
 * name is cut; an empty timeout is a bad timeout, not 0. */
Test(rules, errors_quoting_a_channel_stay_utf8_and_an_empty_timeout_is_400)
{
  char *tok = token_for(uniq("u8"), "user");
  char name[128];
  memset(name, 'a', 79);
  strcpy(name + 79, "\xc3\xa9"); /* the 80th and 81st bytes: one character */
  struct ws_client *ws = ws_ok(tok);
  cr_assert_eq(ws_sendf(ws, "{\"action\":\"subscribe\",\"channels\":[\"%s\"]}", name), 0);
  const char *t = ws_next_text(ws, T_SHORT);
  cr_assert_not_null(t, "no answer");
  cr_assert(sortie_utf8_valid((const unsigned char *)t, strlen(t)), "not UTF-8: %s", t);
  cr_assert(strstr(t, "invalid_channel"), "%s", t);
  ws_close(ws);
  /* the same through SSE: the problem+json body */
  char *path = strf("/events?channels=%.79s%%C3%%A9", name);
  struct sse_client *c = sse_open(world_push_base(), path, tok, NULL, NULL, 0, T_SHORT);
  cr_assert(c && c->status == 400, "SSE: %d", c ? c->status : -1);
  cr_assert(sortie_utf8_valid((const unsigned char *)c->body, strlen(c->body)), "not UTF-8: %s",
            c->body);
  json_object *o = json_tokener_parse(c->body);
  cr_assert_not_null(o, "not JSON: %s", c->body);
  json_object_put(o);
  sse_close(c);
  free(path);
  cr_assert_eq(poll_status("channels=signals&timeout=", tok, NULL), 400, "an empty timeout");
  free(tok);
}

Test(rules, handshake_and_method_errors)
{
  char *tok = token_for(uniq("u"), "user");
  char *auth = strf("Authorization: Bearer %s\r\n", tok);
  struct pc_resp r;
  /* /ws without an Upgrade */
  cr_assert_eq(pc_get(world_push_base(), "/ws", auth, &r, T_SHORT), 0);
  cr_assert_eq(r.status, 426, "%s", r.head);
  pc_resp_free(&r);
  char *h = strf("%sUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", auth);
  cr_assert_eq(pc_get(world_push_base(), "/ws", h, &r, T_SHORT), 0);
  cr_assert_eq(r.status, 426, "version 8: %d %s", r.status, r.body);
  cr_assert(strstr(r.body, "version"), "%s", r.body);
  char v[16];
  cr_assert_str_eq(pc_header(r.head, "Sec-WebSocket-Version", v, sizeof v), "13");
  pc_resp_free(&r);
  free(h);
  h = strf("%sUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: short\r\n", auth);
  cr_assert_eq(pc_get(world_push_base(), "/ws", h, &r, T_SHORT), 0);
  cr_assert_eq(r.status, 400, "a bad key: %d %s", r.status, r.body);
  pc_resp_free(&r);
  free(h);
  cr_assert_eq(pc_get(world_push_base(), "/nothing", NULL, &r, T_SHORT), 0);
  cr_assert_eq(r.status, 404);
  pc_resp_free(&r);
  /* POST on a stream path */
  struct http_resp hr;
  char *url = strf("%s/events?channels=signals", world_push_base());
  http("POST", url, tok, "{}", NULL, NULL, &hr);
  cr_assert_eq(hr.status, 405);
  char allow[64];
  cr_assert_not_null(http_header(&hr, "Allow", allow, sizeof allow), "405 without Allow");
  cr_assert(strstr(allow, "GET"), "Allow: %s", allow);
  http_free(&hr);
  free(url);
  free(auth);
  free(tok);
  still_serves();
}

/* ---- the per-user connection limit ---- */

Test(rules, the_connection_after_max_conn_per_user_is_429_until_one_closes)
{
  char u[96];
  snprintf(u, sizeof u, "%s", uniq("lim"));
  char *tok = token_for(u, "user");
  char ch[128], *path;
  snprintf(ch, sizeof ch, "%s", chan("market"));
  path = strf("/events?channels=%s", ch);
  struct sse_client *s[3];
  for (int i = 0; i < 3; i++) {
    s[i] = sse_ok(ch, tok, NULL, NULL);
    cr_assert_not_null(sse_wait_idonly(s[i], T_SHORT));
  }
  struct sse_client *x = sse_open(world_push_base(), path, tok, NULL, NULL, 0, T_SHORT);
  cr_assert_eq(x->status, 429, "the 4th stream of a user (limit 3)");
  char ra[16];
  cr_assert_not_null(pc_header(x->head, "Retry-After", ra, sizeof ra));
  sse_close(x);
  cr_assert_eq(ws_status("/ws", tok, NULL), 429, "a WebSocket counts too");
  /* another user is not affected */
  char *other = token_for(uniq("lim"), "user");
  cr_assert_eq(sse_status(chan("market"), other, NULL), 200);
  /* the first streams still work */
  char *id = publish_ok(ch, "market_update", "{\"limit\":true}");
  for (int i = 0; i < 3; i++) {
    int found = 0;
    for (size_t k = 0; !found && sse_read_events(s[i], k + 1, T_LONG) > k; k++)
      found = strcmp(sse_event(s[i], k)->id, id) == 0;
    cr_assert(found, "stream %d did not get the event", i);
  }
  /* one closes: a new one is allowed again (after the daemon sees the close) */
  sse_close(s[0]);
  long st = 0;
  struct ws_client *w = NULL;
  for (int i = 0; i < 200 && st != 101; i++) { /* up to 20 s */
    pc_sleep_ms(100);
    ws_close(w);
    w = ws_open(world_push_base(), "/ws", tok, NULL, 0, T_SHORT);
    cr_assert_not_null(w);
    st = w->status;
  }
  cr_assert_eq(st, 101, "a slot was not given back after a close");
  /* and the limit holds again */
  cr_assert_eq(sse_status(ch, tok, NULL), 429);
  ws_close(w);
  sse_close(s[1]);
  sse_close(s[2]);
  free(id);
  free(path);
  free(other);
  free(tok);
}

/* Sends three long-polls of the user of tok (whose limit is 3) on ch from
 * cursor c0, each waiting up to timeout_s, and waits until they are waiting:
 * a fourth with timeout=0 (which answers at once when let in) is refused
 * with 429. Returns that fourth's query, for polls of the same user after. */
static char *three_waiting_polls(const char *tok, const char *ch, const char *c0, int timeout_s,
                                 int fd[3])
{
  char *path = strf("/poll?channels=%s&cursor=%s&timeout=%d", ch, c0, timeout_s);
  char *h = strf("Authorization: Bearer %s\r\n", tok);
  char *probe = strf("channels=%s&cursor=%s&timeout=0", ch, c0);
  for (int i = 0; i < 3; i++) {
    fd[i] = pc_get_send(world_push_base(), path, h, T_SHORT);
    cr_assert_geq(fd[i], 0);
  }
  long st = 0;
  for (int i = 0; i < 200 && st != 429; i++) { /* up to 20 s */
    pc_sleep_ms(100);
    st = poll_status(probe, tok, NULL);
  }
  cr_assert_eq(st, 429, "a fourth waiting long-poll of a user (limit 3) got %ld", st);
  free(h);
  free(path);
  return probe;
}

/* Waiting long-polls count too: a user cannot hold more than the limit of
 * them open at once (each would otherwise hold a daemon connection and a
 * subscription for up to poll_timeout_max_s), and an answered poll gives its
 * slot back. */
Test(rules, waiting_long_polls_count_against_max_conn_per_user)
{
  char u[96];
  snprintf(u, sizeof u, "%s", uniq("limp"));
  char *tok = token_for(u, "user");
  const char *ch = chan("market");
  char *c0 = cursor_now(ch);
  int fd[3];
  free(three_waiting_polls(tok, ch, c0, 20, fd));
  cr_assert_eq(sse_status(ch, tok, NULL), 429, "nor a stream beside three long-polls");
  /* an event answers the three; their slots come back */
  char *id = publish_ok(ch, "market_update", "{\"limp\":1}");
  for (int i = 0; i < 3; i++) {
    struct pc_resp r;
    cr_assert_eq(pc_get_finish(fd[i], &r, T_LONG), 0, "long-poll %d not answered", i);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, id), "long-poll %d: %s", i, r.body);
    pc_resp_free(&r);
  }
  long st = 0;
  for (int i = 0; i < 200 && st != 200; i++) { /* up to 20 s */
    pc_sleep_ms(100);
    st = sse_status(ch, tok, NULL);
  }
  cr_assert_eq(st, 200, "the answered long-polls did not give their slots back");
  free(id);
  free(c0);
  free(tok);
}

/* A long-poll whose client hangs up gives its slot back at once, not at its
 * timeout: libmicrohttpd does not watch a suspended request's socket, so
 * the daemon watches it itself (poll.c). Without that, a user who reloads a
 * page on long-poll three times here would be refused (429) for a minute. */
Test(rules, a_long_poll_whose_client_hangs_up_gives_its_slot_back_at_once)
{
  char *tok = token_for(uniq("limh"), "user");
  const char *ch = chan("market");
  char *c0 = cursor_now(ch);
  int fd[3];
  char *probe = three_waiting_polls(tok, ch, c0, 60, fd);
  for (int i = 0; i < 3; i++)
    close(fd[i]);
  long st = 0;
  for (int i = 0; i < 50 && st != 200; i++) { /* 5 s, far below the 60 s timeout */
    pc_sleep_ms(100);
    st = poll_status(probe, tok, NULL);
  }
  cr_assert_eq(st, 200, "5 s after three long-polls hung up, a poll of their user got %ld", st);
  free(probe);
  free(c0);
  free(tok);
  still_serves();
}

/* ---- WebSocket messages ---- */

Test(rules, ws_bad_json_and_unknown_action_are_errors_and_the_connection_stays)
{
  char *tok = token_for(uniq("u"), "user");
  struct ws_client *ws = ws_ok(tok);
  cr_assert_eq(ws_send_text(ws, "{\"action\":"), 0);
  ws_expect_error(ws, "bad_json");
  cr_assert_eq(ws_send_text(ws, "[1,2]"), 0);
  ws_expect_error(ws, "bad_json");
  cr_assert_eq(ws_send_text(ws, "{\"action\":\"dance\"}"), 0);
  ws_expect_error(ws, "unknown_action");
  cr_assert_eq(ws_send_text(ws, "{\"channels\":[\"signals\"]}"), 0);
  ws_expect_error(ws, "unknown_action");
  cr_assert_eq(ws_send_text(ws, "{\"action\":\"ping\"}"), 0);
  json_object *o = ws_next_json(ws, T_SHORT);
  cr_assert_not_null(o);
  cr_assert_str_eq(jget_str(o, "type"), "pong");
  json_object_put(o);
  /* a text message in two fragments is one message */
  const char *msg = "{\"action\":\"ping\"}";
  cr_assert_eq(ws_send_frame(ws, 0, 1, 1, msg, 5, T_SHORT), 0);
  cr_assert_eq(ws_send_frame(ws, 1, 0, 1, msg + 5, strlen(msg) - 5, T_SHORT), 0);
  o = ws_next_json(ws, T_SHORT);
  cr_assert_not_null(o, "no answer to a fragmented message");
  cr_assert_str_eq(jget_str(o, "type"), "pong");
  json_object_put(o);
  /* a large message under push.max_message is fine */
  size_t big = 60000;
  char *m = malloc(big + 64);
  int n = snprintf(m, big + 64, "{\"action\":\"ping\",\"pad\":\"");
  memset(m + n, 'p', big);
  strcpy(m + n + big, "\"}");
  cr_assert_eq(ws_send_text(ws, m), 0);
  o = ws_next_json(ws, T_SHORT);
  cr_assert_not_null(o, "no answer to a 60 KB message");
  cr_assert_str_eq(jget_str(o, "type"), "pong");
  json_object_put(o);
  free(m);
  /* a client ping frame gets a pong frame with the same payload */
  cr_assert_eq(ws_send_frame(ws, 1, 9, 1, "abc", 3, T_SHORT), 0);
  struct ws_frame f;
  cr_assert_eq(ws_recv_frame(ws, &f, T_SHORT), 1);
  cr_assert_eq(f.opcode, 10);
  cr_assert_eq(f.len, 3);
  cr_assert(memcmp(f.data, "abc", 3) == 0);
  cr_assert_eq(f.masked, 0, "server frames are not masked");
  ws_frame_free(&f);
  ws_close(ws);
  free(tok);
}

/* A storm of messages on one WebSocket (each subscribe starts Redis work) is
 * refused past 50 a second, message by message; the connection stays and
 * is served again the next second. */
Test(rules, ws_message_storm_is_rate_limited_and_the_connection_stays)
{
  char *tok = token_for(uniq("storm"), "user");
  struct ws_client *ws = ws_ok(tok);
  const char *ch = chan("market");
  char *sub = strf("{\"action\":\"subscribe\",\"channels\":[\"%s\"]}", ch);
  char *unsub = strf("{\"action\":\"unsubscribe\",\"channels\":[\"%s\"]}", ch);
  long long t0 = pc_now();
  for (int i = 0; i < 200; i++)
    cr_assert_eq(ws_send_text(ws, i % 2 ? unsub : sub), 0);
  /* One connection's messages are answered in order (a handled subscribe
   * undone by its unsubscribe before Redis confirmed it gets no answer), so
   * the pong to a ping sent after them is the marker after every answer: no
   * quiet window. A ping counts against the limit too: one goes every 1.1 s
   * (the limit's one-second window, the contract) until one is answered with
   * a pong, those before it maybe refused. 30 s: a bound against a hang. */
  int limited = 0, other = 0, npings = 0, pong = 0;
  long long end = pc_now() + 30000, next_ping = pc_now() + 1100;
  while (!pong && pc_now() < end && !ws->closed) {
    if (pc_now() >= next_ping) {
      cr_assert_eq(ws_send_text(ws, "{\"action\":\"ping\"}"), 0);
      npings++;
      next_ping = pc_now() + 1100;
    }
    json_object *m = ws_next_json(ws, 100); /* paces the loop; nothing is concluded from NULL */
    if (m == NULL)
      continue;
    const char *t = jget_str(m, "type");
    const char *code = jget_str(m, "code");
    if (t && strcmp(t, "pong") == 0)
      pong = 1;
    else if (t && strcmp(t, "error") == 0 && code && strcmp(code, "rate_limited") == 0)
      limited++;
    else
      other++;
    json_object_put(m);
  }
  cr_assert(pong, "not served again after the storm (%d pings, closed %d)", npings, ws->closed);
  /* the contract: at most 50 handled in each second the burst spans; how
   * many seconds it spans is measured (a slow machine spreads it), so the
   * bound is 50 per second of that span plus the two partial ones */
  long long span = pc_now() - t0;
  long windows = (long)(span / 1000) + 2;
  long handled = 200 - (limited - (npings - 1)); /* at most npings - 1 refusals were pings */
  cr_assert_gt(limited - (npings - 1), 0, "200 messages in %lld ms, none refused", span);
  cr_assert_leq(handled, 50 * windows, "200 messages in %lld ms: %ld handled, at most %ld allowed",
                span, handled, 50 * windows);
  cr_assert_leq(other, handled, "%d answers to %ld handled messages", other, handled);
  ws_close(ws);
  free(sub);
  free(unsub);
  free(tok);
}

Test(rules, ws_unsubscribe_stops_a_channel)
{
  char a[128], b[128];
  snprintf(a, sizeof a, "%s", chan("market"));
  snprintf(b, sizeof b, "%s", chan("market"));
  char *tok = token_for(uniq("u"), "user");
  struct ws_client *ws = ws_ok(tok);
  char *both = strf("[\"%s\",\"%s\"]", a, b);
  ws_subscribe(ws, both, NULL);
  char *c0 = cursor_now(a);
  ws_close(ws);
  ws = ws_ok(tok);
  char *since = strf("\"%s\"", c0);
  ws_subscribe(ws, both, since);
  char *m = strf("{\"action\":\"unsubscribe\",\"channels\":[\"%s\",\"market:never\"]}", a);
  cr_assert_eq(ws_send_text(ws, m), 0);
  json_object *o = ws_next_json(ws, T_SHORT);
  cr_assert_not_null(o);
  cr_assert_str_eq(jget_str(o, "type"), "unsubscribed", "%s", json_object_to_json_string(o));
  json_object *chs = NULL;
  cr_assert(json_object_object_get_ex(o, "channels", &chs));
  cr_assert_eq(json_object_array_length(chs), 1, "only what was subscribed is listed");
  cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(chs, 0)), a);
  json_object_put(o);
  char *ia = publish_ok(a, "market_update", "{}");
  char *ib = publish_ok(b, "market_update", "{}");
  const char *t = ws_next_text(ws, T_LONG);
  cr_assert_not_null(t);
  char *got = env_id(t);
  cr_assert_str_eq(got, ib, "got %s", t);
  /* nor later: a marker on b, published after, is the next message */
  free(ws_expect_only(ws, b));
  free(got);
  free(ia);
  free(ib);
  free(m);
  free(since);
  free(c0);
  free(both);
  ws_close(ws);
  free(tok);
}

/* A subscribe for a channel the connection already has is answered even
 * while that channel's history is still going out (it once got no answer). */
Test(rules, ws_subscribing_again_while_history_is_sent_is_answered)
{
  enum { N = 900 }; /* two pages of history (the cap is 1000), several times push.outbuf_max */
  char ch[128];
  snprintf(ch, sizeof ch, "%s", chan("market"));
  char *c0 = cursor_now(ch);
  char *ids[N];
  publish_n(ch, N, ids);
  char *tok = token_for(uniq("u"), "user");
  struct ws_client *ws = ws_ok(tok);
  char *w = strf("[\"%s\"]", ch);
  char *since = strf("\"%s\"", c0);
  ws_subscribe(ws, w, since);
  cr_assert_eq(ws_sendf(ws, "{\"action\":\"subscribe\",\"channels\":%s}", w), 0);
  /* every event once, in order, and one more "subscribed" somewhere among them */
  int acks = 0;
  size_t k = 0;
  while (k < N || acks == 0) {
    json_object *o = ws_next_json(ws, T_LONG);
    cr_assert_not_null(o, "after %zu of %d events and %d answers: nothing more", k, N, acks);
    if (strcmp(jget_str(o, "type"), "subscribed") == 0) {
      json_object *got = NULL, *want = json_tokener_parse(w);
      cr_assert(json_object_object_get_ex(o, "channels", &got));
      cr_assert(json_object_equal(want, got), "%s", json_object_to_json_string(o));
      json_object_put(want);
      acks++;
    } else {
      cr_assert_lt(k, (size_t)N, "an event more than published: %s",
                   json_object_to_json_string(o));
      cr_assert_str_eq(jget_str(o, "id"), ids[k], "event %zu: %s", k, json_object_to_json_string(o));
      k++;
    }
    json_object_put(o);
  }
  cr_assert_eq(acks, 1);
  /* no second answer and no event twice: a marker is the next message */
  free(ws_expect_only(ws, ch));
  ws_close(ws);
  free_ids(ids, N);
  free(since);
  free(w);
  free(tok);
  free(c0);
}

/* A backlog many times push.outbuf_max goes out whole, as fast as the client
 * reads it: the bound cuts off a client that does not read, not one that is
 * far behind (it once cut off every client whose missed page outgrew it). */
Test(rules, a_backlog_bigger_than_the_queue_bound_resumes_whole)
{
  enum { N = 600, PAD = 1000, L = 50 }; /* about 650 KB of history; the bound is 64 KB */
  char ch[128];
  snprintf(ch, sizeof ch, "%s", chan("market"));
  char *c0 = cursor_now(ch);
  char *pad = malloc(PAD + 1);
  memset(pad, 'q', PAD);
  pad[PAD] = '\0';
  char *ids[N];
  for (int i = 0; i < N; i++) {
    char *d = strf("{\"i\":%d,\"pad\":\"%s\"}", i, pad);
    ids[i] = publish_ok(ch, "market_update", d);
    free(d);
  }
  char *tok = token_for(uniq("u"), "user");
  /* SSE by Last-Event-ID, through a small receive buffer; events published
   * while it is still behind (they wait in its resume) come after, once */
  char *path = strf("/events?channels=%s", ch);
  struct sse_client *s = sse_open(world_push_base(), path, tok, c0, NULL, 4096, T_SHORT);
  cr_assert(s && s->status == 200);
  char *live[L];
  publish_n(ch, L, live);
  sse_expect_ids(s, ids, N, 0);
  sse_expect_ids(s, live, L, N);
  /* WebSocket by since */
  struct ws_client *ws = ws_ok(tok);
  char *w = strf("[\"%s\"]", ch);
  char *since = strf("\"%s\"", c0);
  ws_subscribe(ws, w, since);
  ws_expect_ids(ws, ids, N);
  ws_expect_ids(ws, live, L);
  /* both are live afterwards: neither was cut off */
  char *last = publish_ok(ch, "market_update", "{\"after\":1}");
  cr_assert_geq(sse_read_events(s, N + L + 1, T_LONG), N + L + 1, "the SSE stream ended");
  cr_assert_str_eq(sse_event(s, N + L)->id, last);
  ws_expect_ids(ws, &last, 1);
  sse_ws_expect_only(s, N + L + 1, ws, ch);
  free(last);
  free_ids(ids, N);
  free_ids(live, L);
  free(since);
  free(w);
  ws_close(ws);
  sse_close(s);
  free(path);
  free(pad);
  free(tok);
  free(c0);
}

/* opens a subscribed WebSocket for an abuse test */
static struct ws_client *victim(void)
{
  char *tok = token_for(uniq("u"), "user");
  struct ws_client *ws = ws_ok(tok);
  char *w = strf("[\"%s\"]", chan("market"));
  ws_subscribe(ws, w, NULL);
  free(w);
  free(tok);
  return ws;
}

static void expect_close(struct ws_client *ws, int code)
{
  int got = ws_wait_close(ws, T_LONG);
  cr_assert_eq(got, code, "close code %d, expected %d (reason: %s)", got, code, ws->close_reason);
  cr_assert(ws_wait_eof(ws, T_SHORT), "the server did not close the connection after close %d",
            code);
}

Test(rules, ws_unmasked_frame_is_closed_1002)
{
  struct ws_client *ws = victim();
  cr_assert_eq(ws_send_frame(ws, 1, 1, 0, "{\"action\":\"ping\"}", 17, T_SHORT), 0);
  expect_close(ws, 1002);
  ws_close(ws);
  still_serves();
}

Test(rules, ws_message_over_max_message_is_closed_1009)
{
  struct ws_client *ws = victim();
  size_t n = 1u << 20;
  char *m = malloc(n);
  memset(m, ' ', n);
  m[0] = '{';
  m[n - 1] = '}';
  ws_send_frame(ws, 1, 1, 1, m, n, T_LONG); /* the server may stop reading: no check */
  free(m);
  expect_close(ws, 1009);
  ws_close(ws);
  /* in fragments: the sum counts */
  ws = victim();
  char *frag = malloc(40000);
  memset(frag, ' ', 40000);
  ws_send_frame(ws, 0, 1, 1, frag, 40000, T_LONG);
  ws_send_frame(ws, 1, 0, 1, frag, 40000, T_LONG);
  free(frag);
  expect_close(ws, 1009);
  ws_close(ws);
  still_serves();
}

Test(rules, ws_bad_utf8_is_closed_1007)
{
  static const char *bad[] = {"{\"action\":\"ping\",\"x\":\"\xff\"}",
                              "{\"action\":\"ping\",\"x\":\"\xc0\xaf\"}",     /* overlong */
                              "{\"action\":\"ping\",\"x\":\"\xed\xa0\x80\"}", /* surrogate */
                              "{\"action\":\"ping\",\"x\":\"\xe2\x82\"}"};    /* cut short */
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct ws_client *ws = victim();
    cr_assert_eq(ws_send_text(ws, bad[i]), 0);
    expect_close(ws, 1007);
    ws_close(ws);
  }
  /* valid multibyte text is fine, also at the very end of a message */
  struct ws_client *ws = victim();
  const char *fine = "{\"action\":\"ping\",\"x\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x9a\x80\"}";
  cr_assert_eq(ws_send_text(ws, fine), 0);
  json_object *o = ws_next_json(ws, T_SHORT);
  cr_assert_not_null(o, "valid UTF-8 refused");
  cr_assert_str_eq(jget_str(o, "type"), "pong");
  json_object_put(o);
  cr_assert_eq(ws_send_text(ws, "\xe2\x82\xac"), 0);
  ws_expect_error(ws, "bad_json");
  ws_close(ws);
  still_serves();
}

Test(rules, ws_fragmented_ping_is_closed_1002)
{
  struct ws_client *ws = victim();
  cr_assert_eq(ws_send_frame(ws, 0, 9, 1, "ab", 2, T_SHORT), 0);
  expect_close(ws, 1002);
  ws_close(ws);
  still_serves();
}

Test(rules, ws_oversized_control_frame_is_closed_1002)
{
  /* control frames carry at most 125 bytes (RFC 6455 5.5) */
  struct ws_client *ws = victim();
  char p[126];
  memset(p, 'a', sizeof p);
  cr_assert_eq(ws_send_frame(ws, 1, 9, 1, p, sizeof p, T_SHORT), 0);
  expect_close(ws, 1002);
  ws_close(ws);
  still_serves();
}

Test(rules, ws_binary_frame_is_closed_1003)
{
  struct ws_client *ws = victim();
  cr_assert_eq(ws_send_frame(ws, 1, 2, 1, "\x01\x02\x03", 3, T_SHORT), 0);
  expect_close(ws, 1003);
  ws_close(ws);
  still_serves();
}

Test(rules, ws_reserved_opcode_or_rsv_bit_is_closed_1002)
{
  struct ws_client *ws = victim();
  cr_assert_eq(ws_send_frame(ws, 1, 3, 1, "x", 1, T_SHORT), 0);
  expect_close(ws, 1002);
  ws_close(ws);
  /* RSV1 set without an extension that defines it */
  ws = victim();
  cr_assert_eq(ws_send_frame(ws, 1, 0x40 | 1, 1, "{}", 2, T_SHORT), 0);
  expect_close(ws, 1002);
  ws_close(ws);
  still_serves();
}

Test(rules, ws_client_close_is_answered_and_the_connection_ends)
{
  struct ws_client *ws = victim();
  cr_assert_eq(ws_send_frame(ws, 1, 8, 1, "\x03\xe8" "bye", 5, T_SHORT), 0);
  expect_close(ws, 1000);
  ws_close(ws);
  still_serves();
}

/* ---- slow consumers ---- */

struct reader {
  struct sse_client *c;
  size_t want;
};

static void *read_all(void *p)
{
  struct reader *r = p;
  sse_read_events(r->c, r->want, 60000);
  return NULL;
}

Test(rules, a_client_that_never_reads_is_cut_off_and_the_others_get_everything)
{
  enum { N = 160, PAD = 48000 }; /* 7.5 MB in all */
  char ch[128];
  snprintf(ch, sizeof ch, "%s", chan("market"));
  char *c0 = cursor_now(ch);
  char *tok = token_for(uniq("u"), "user"), *tok2 = token_for(uniq("u"), "user");
  struct sse_client *good = sse_ok(ch, tok, c0, NULL);
  cr_assert_not_null(sse_wait_idonly(good, T_SHORT));
  /* two that never read: a WebSocket and an SSE stream with small buffers */
  struct ws_client *sw = ws_open(world_push_base(), "/ws", tok2, NULL, 4096, T_SHORT);
  cr_assert(sw && sw->status == 101);
  char *wch = strf("[\"%s\"]", ch);
  json_object *hello = ws_next_json(sw, T_SHORT);
  cr_assert_not_null(hello);
  json_object_put(hello);
  ws_subscribe(sw, wch, NULL);
  char *path = strf("/events?channels=%s&cursor=%s", ch, c0);
  struct sse_client *ss = sse_open(world_push_base(), path, tok2, NULL, NULL, 4096, T_SHORT);
  cr_assert(ss && ss->status == 200);
  cr_assert_not_null(sse_wait_idonly(ss, T_SHORT));
  double slow0 = metric("sortie_pushd_slow_consumer_disconnects_total");

  struct reader r = {good, N};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, read_all, &r), 0);
  char *pad = malloc(PAD + 1);
  memset(pad, 'z', PAD);
  pad[PAD] = '\0';
  char *ids[N];
  int failed = -1;
  for (int i = 0; i < N; i++) {
    char *d = strf("{\"i\":%d,\"pad\":\"%s\"}", i, pad);
    ids[i] = publish_id(ch, "market_update", d);
    free(d);
    if (ids[i] == NULL && failed < 0)
      failed = i;
  }
  pthread_join(th, NULL);
  cr_assert_eq(failed, -1, "publish %d failed", failed);
  /* the reader got every event, in order */
  sse_expect_ids(good, ids, N, 0);
  /* the two that never read were cut off: their sockets end before all came */
  size_t nw = ws_read_texts(sw, N + 10, T_LONG);
  cr_assert(sw->closed, "the WebSocket that never read is still open (%zu messages)", nw);
  cr_assert_lt(nw, (size_t)N + 1, "it got everything: never cut off");
  size_t ns = sse_read_events(ss, N + 10, T_LONG);
  cr_assert(ss->closed, "the SSE stream that never read is still open (%zu events)", ns);
  cr_assert_lt(ns, (size_t)N, "it got everything: never cut off");
  double slow1 = metric("sortie_pushd_slow_consumer_disconnects_total");
  cr_assert_geq(slow1, slow0 + 2, "slow_consumer_disconnects_total went from %g to %g", slow0,
                slow1);
  /* the reader is still live */
  char *last = publish_ok(ch, "market_update", "{\"after\":1}");
  cr_assert_eq(sse_read_events(good, N + 1, T_LONG), N + 1);
  cr_assert_str_eq(sse_event(good, N)->id, last);
  free(last);
  free_ids(ids, N);
  free(pad);
  free(path);
  free(wch);
  sse_close(good);
  sse_close(ss);
  ws_close(sw);
  free(tok);
  free(tok2);
  free(c0);
  still_serves();
}
