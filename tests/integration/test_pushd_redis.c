/* sortie-pushd across a Redis restart: clients stay connected, /health says degraded, and every event published around the outage arrives once, in order; one Test, since it stops Redis. */
#include <unistd.h>

#include "test_pushd_util.h"

/* publishes, retrying while the API finds Redis again (bounded) */
static char *publish_retry(const char *ch, int i)
{
  char d[64];
  snprintf(d, sizeof d, "{\"after_outage\":%d}", i);
  for (int k = 0; k < 300; k++) { /* up to about 30 s */
    char *id = publish_id(ch, "market_update", d);
    if (id)
      return id;
    pc_sleep_ms(100);
  }
  cr_assert_fail("could not publish after redis-start");
  return NULL;
}

static json_object *wait_health(int want_status, int *got)
{
  json_object *h = NULL;
  for (int i = 0; i < 300; i++) { /* up to about 30 s */
    if (h)
      json_object_put(h);
    h = health_at(world_push_base(), got);
    if (*got == want_status)
      break;
    pc_sleep_ms(100);
  }
  return h;
}

Test(redis, clients_stay_connected_and_lose_nothing_across_a_redis_restart)
{
  char ch[128];
  snprintf(ch, sizeof ch, "%s", chan("market"));
  char *c0 = cursor_now(ch);
  char *tok = token_for(uniq("u"), "user");
  struct sse_client *sse = sse_ok(ch, tok, c0, NULL);
  struct ws_client *ws = ws_ok(tok);
  char *wch = strf("[\"%s\"]", ch), *since = strf("\"%s\"", c0);
  ws_subscribe(ws, wch, since);
  char *first[5];
  publish_n(ch, 5, first);
  sse_expect_ids(sse, first, 5, 0);
  ws_expect_ids(ws, first, 5);
  double rec0 = metric("sortie_pushd_redis_reconnects_total");

  cr_assert_eq(world_ctl("redis-stop"), 0, "redis-stop failed");
  int st;
  json_object *h = wait_health(503, &st);
  cr_assert_eq(st, 503, "/health while Redis is down: %d", st);
  cr_assert_str_eq(jget_str(h, "status"), "degraded");
  cr_assert_str_eq(jget_str(h, "redis"), "down");
  cr_assert_eq(jget_int(h, "connections.sse"), 1, "the SSE client was dropped");
  cr_assert_eq(jget_int(h, "connections.ws"), 1, "the WebSocket client was dropped");
  json_object_put(h);
  cr_assert_eq(metric("sortie_pushd_redis_up"), 0);
  /* the clients are still connected and served */
  sse_read_now(sse); /* what is there now; the end of the stream would be */
  cr_assert(!sse->closed, "the SSE stream ended with Redis");
  cr_assert_eq(ws_send_text(ws, "{\"action\":\"ping\"}"), 0);
  json_object *o = ws_next_json(ws, T_SHORT);
  cr_assert_not_null(o, "no pong while Redis is down");
  cr_assert_str_eq(jget_str(o, "type"), "pong");
  json_object_put(o);
  /* a client that comes back during the outage is taken, and waits */
  struct sse_client *late = sse_ok(ch, tok, NULL, first[4]);

  cr_assert_eq(world_ctl("redis-start"), 0, "redis-start failed");
  /* events published at once, while the daemon is still reconnecting... */
  char *ids[20];
  for (int i = 0; i < 10; i++)
    ids[i] = publish_retry(ch, i);
  h = wait_health(200, &st);
  cr_assert_eq(st, 200, "the daemon did not find Redis again");
  cr_assert_str_eq(jget_str(h, "redis"), "ok");
  json_object_put(h);
  /* ...and after */
  for (int i = 10; i < 20; i++)
    ids[i] = publish_retry(ch, i);

  sse_expect_ids(sse, ids, 20, 5);
  ws_expect_ids(ws, ids, 20);
  sse_expect_ids(late, ids, 20, 0);
  /* exactly once: a marker published now is the next event everywhere */
  char *mark = sse_expect_only(late, ch, 20);
  cr_assert_eq(sse_read_events(sse, 26, T_LONG), 26, "SSE: %zu events", sse->nevents);
  cr_assert_str_eq(sse_event(sse, 25)->id, mark, "SSE: expected 5 + 20 exactly once, then the marker");
  const char *wt = ws_next_text(ws, T_LONG);
  cr_assert_not_null(wt, "the marker never came on the WebSocket");
  char *wid = env_id(wt);
  cr_assert_str_eq(wid, mark, "WS: expected the marker next, got %s", wt);
  free(wid);
  free(mark);
  cr_assert(!sse->closed && !ws->closed, "a client was dropped");
  cr_assert_geq(metric("sortie_pushd_redis_reconnects_total"), rec0 + 1);
  cr_assert_eq(metric("sortie_pushd_redis_up"), 1);

  /* and a fresh client works as before */
  char *c1 = cursor_now(ch);
  struct sse_client *fresh = sse_ok(ch, tok, c1, NULL);
  char *last = publish_ok(ch, "market_update", "{\"last\":1}");
  cr_assert_eq(sse_read_events(fresh, 1, T_LONG), 1);
  cr_assert_str_eq(sse_event(fresh, 0)->id, last);
  cr_assert_eq(sse_read_events(sse, 27, T_LONG), 27);
  cr_assert_str_eq(sse_event(sse, 26)->id, last);
  sse_close(fresh);
  sse_close(late);
  sse_close(sse);
  ws_close(ws);
  free(last);
  free(c1);
  free_ids(ids, 20);
  free_ids(first, 5);
  free(wch);
  free(since);
  free(tok);
  free(c0);
}
