/* push.max_connections: one worker with room for two streams; the third
 * stream, of any transport, is refused with 503 problem+json and Retry-After,
 * and a stream that ends gives its room back. */
#include "test_pushd_util.h"

SORTIE_WORLD_CONF("push.workers = 1\n"
                  "push.max_connections = 2\n");

static void expect_503(int status, const char *head, const char *body, const char *what)
{
  cr_assert_eq(status, 503, "%s past push.max_connections: %d %s", what, status, body ? body : "");
  char v[128];
  cr_assert_not_null(pc_header(head, "Content-Type", v, sizeof v));
  cr_assert(strstr(v, "application/problem+json"), "%s: %s", what, v);
  cr_assert(body && strstr(body, "\"status\":503"), "%s: %s", what, body ? body : "");
  cr_assert_not_null(pc_header(head, "Retry-After", v, sizeof v), "%s: no Retry-After", what);
}

Test(full, past_max_connections_a_stream_is_503_until_one_ends)
{
  char *tok = token_for(uniq("u"), "user");
  struct sse_client *a = sse_ok(chan("market"), tok, NULL, NULL);
  struct ws_client *b = ws_ok(tok);
  /* both are counted once the daemon has taken them over: the WS greeting
   * came, and the SSE head */
  char *p = strf("/events?channels=%s", chan("market"));
  struct sse_client *c = sse_open(world_push_base(), p, tok, NULL, NULL, 0, T_SHORT);
  cr_assert_not_null(c);
  expect_503(c->status, c->head, c->body, "SSE");
  sse_close(c);
  struct ws_client *d = ws_open(world_push_base(), "/ws", tok, NULL, 0, T_SHORT);
  cr_assert_not_null(d);
  expect_503(d->status, d->head, d->body, "WebSocket");
  ws_close(d);
  /* one ends: a new stream is let in again once the daemon has seen it go */
  sse_close(a);
  struct sse_client *e = NULL;
  long long deadline = pc_now() + T_SHORT;
  for (;;) {
    e = sse_open(world_push_base(), p, tok, NULL, NULL, 0, T_SHORT);
    cr_assert_not_null(e);
    if (e->status == 200 || pc_now() > deadline)
      break;
    cr_assert_eq(e->status, 503, "%d %s", e->status, e->body ? e->body : "");
    sse_close(e);
    pc_sleep_ms(50);
  }
  cr_assert_eq(e->status, 200, "still refused after a stream ended: %d", e->status);
  sse_close(e);
  ws_close(b);
  free(p);
  free(tok);
}
