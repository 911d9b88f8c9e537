/* sortie-pushd operations: /health and /metrics counts, SIGTERM (WS close 1001, SSE retry), and resume across a daemon restart; one Test, since it stops the daemon. */
#include <unistd.h>

#include "test_pushd_util.h"

static json_object *health(int *status)
{
  return health_at(world_push_base(), status);
}

/* waits until /health reports these connection counts (they change when the
 * daemon has seen the sockets open or close) */
static int wait_counts(long sse, long ws, long poll, json_object **out)
{
  json_object *h = NULL;
  for (int i = 0; i < 200; i++) { /* up to 20 s */
    if (h)
      json_object_put(h);
    int st;
    h = health(&st);
    if (h && jget_int(h, "connections.sse") == sse && jget_int(h, "connections.ws") == ws &&
        jget_int(h, "connections.poll") == poll)
      break;
    pc_sleep_ms(100);
  }
  *out = h;
  return h && jget_int(h, "connections.sse") == sse && jget_int(h, "connections.ws") == ws &&
         jget_int(h, "connections.poll") == poll;
}

static void counts_match_open_clients(void)
{
  json_object *h;
  cr_assert(wait_counts(0, 0, 0, &h), "a quiet daemon: %s", json_object_to_json_string(h));
  long up0 = jget_int(h, "uptime_s");
  cr_assert_geq(up0, 0);
  cr_assert_str_eq(jget_str(h, "status"), "ok");
  cr_assert_str_eq(jget_str(h, "redis"), "ok");
  json_object_put(h);

  char x[128], y[128], z[128];
  snprintf(x, sizeof x, "%s", chan("market"));
  snprintf(y, sizeof y, "%s", chan("market"));
  snprintf(z, sizeof z, "%s", chan("market"));
  char *tok = token_for(uniq("u"), "user");
  struct sse_client *s1 = sse_ok(x, tok, NULL, NULL), *s2 = sse_ok(x, tok, NULL, NULL);
  cr_assert_not_null(sse_wait_idonly(s1, T_SHORT));
  cr_assert_not_null(sse_wait_idonly(s2, T_SHORT));
  struct ws_client *w = ws_ok(tok);
  char *wy = strf("[\"%s\"]", y);
  ws_subscribe(w, wy, NULL);
  char *cz = cursor_now(z);
  char *pp = strf("/poll?channels=%s&cursor=%s&timeout=30", z, cz);
  char *auth = strf("Authorization: Bearer %s\r\n", tok);
  int pfd = pc_get_send(world_push_base(), pp, auth, T_SHORT);
  cr_assert_geq(pfd, 0);
  cr_assert(wait_counts(2, 1, 1, &h), "2 SSE, 1 WS, 1 poll open: %s",
            json_object_to_json_string(h));
  /* channels are counted per worker: x on one or two workers, y and z */
  long chs = jget_int(h, "channels");
  cr_assert(chs >= 3 && chs <= 4, "channels %ld for 3 channels in use", chs);
  json_object_put(h);
  char *t = metrics_text();
  cr_assert_eq(metric_of(t, "sortie_pushd_connections{transport=\"sse\"}"), 2);
  cr_assert_eq(metric_of(t, "sortie_pushd_connections{transport=\"ws\"}"), 1);
  cr_assert_eq(metric_of(t, "sortie_pushd_connections{transport=\"poll\"}"), 1);
  cr_assert_eq(metric_of(t, "sortie_pushd_subscriptions"), 4);
  cr_assert_eq(metric_of(t, "sortie_pushd_channels"), (double)chs);
  cr_assert_eq(metric_of(t, "sortie_pushd_redis_up"), 1);
  free(t);
  /* the poll answers (an event on z): it no longer counts */
  char *id = publish_ok(z, "market_update", "{}");
  struct pc_resp pr;
  cr_assert_eq(pc_get_finish(pfd, &pr, T_LONG), 0);
  cr_assert(strstr(pr.body, id), "%s", pr.body);
  pc_resp_free(&pr);
  free(id);
  sse_close(s1);
  cr_assert(wait_counts(1, 1, 0, &h), "after one SSE and the poll ended: %s",
            json_object_to_json_string(h));
  json_object_put(h);
  sse_close(s2);
  ws_close(w);
  cr_assert(wait_counts(0, 0, 0, &h), "all closed: %s", json_object_to_json_string(h));
  json_object_put(h);
  /* uptime moves: waited for (up to 20 s), not slept for */
  int st;
  h = NULL;
  for (int i = 0; i < 200 && !(h && jget_int(h, "uptime_s") >= up0 + 1); i++) {
    if (h) {
      json_object_put(h);
      pc_sleep_ms(100);
    }
    h = health(&st);
  }
  cr_assert_geq(jget_int(h, "uptime_s"), up0 + 1);
  json_object_put(h);
  free(auth);
  free(pp);
  free(cz);
  free(wy);
  free(tok);
}

Test(ops, health_metrics_sigterm_and_resume_across_a_restart)
{
  counts_match_open_clients();

  /* streams open when the daemon is told to stop */
  char ch[128];
  snprintf(ch, sizeof ch, "%s", chan("market"));
  char *c0 = cursor_now(ch);
  char *tok = token_for(uniq("u"), "user");
  struct sse_client *sse = sse_ok(ch, tok, c0, NULL);
  struct ws_client *ws = ws_ok(tok);
  char *wch = strf("[\"%s\"]", ch), *since = strf("\"%s\"", c0);
  ws_subscribe(ws, wch, since);
  char *first[3];
  publish_n(ch, 3, first);
  sse_expect_ids(sse, first, 3, 0);
  ws_expect_ids(ws, first, 3);
  size_t msgs_before = sse->nmsgs;
  /* and a long-poll waiting for more */
  char *pq = strf("/poll?channels=%s&cursor=%s&timeout=30", ch, first[2]);
  char *pauth = strf("Authorization: Bearer %s\r\n", tok);
  int pfd = pc_get_send(world_push_base(), pq, pauth, T_SHORT);
  cr_assert_geq(pfd, 0);
  /* another user with 3 streams: their slots must be given back on stop */
  char *tok2 = token_for(uniq("u"), "user");
  struct sse_client *held[10];
  for (int i = 0; i < 3; i++)
    held[i] = sse_ok(ch, tok2, NULL, NULL);
  json_object *hc;
  cr_assert(wait_counts(4, 1, 1, &hc), "the long-poll is not waiting: %s",
            json_object_to_json_string(hc));
  json_object_put(hc);

  cr_assert_eq(world_ctl("pushd-stop"), 0, "pushd-stop failed");
  /* long-poll: answered with no events and the cursor it came with (the
   * worker once aborted here: libmicrohttpd cannot stop with a suspended
   * request) */
  struct pc_resp pr0;
  cr_assert_eq(pc_get_finish(pfd, &pr0, T_SHORT), 0, "the long-poll got no answer on SIGTERM");
  cr_assert_eq(pr0.status, 200, "long-poll on SIGTERM: %d %s", pr0.status, pr0.body);
  char *want_cur = strf("\"cursor\":\"%s\"", first[2]);
  cr_assert(strstr(pr0.body, "\"events\":[]") && strstr(pr0.body, want_cur),
            "long-poll on SIGTERM: %s", pr0.body);
  free(want_cur);
  pc_resp_free(&pr0);
  free(pauth);
  free(pq);
  for (int i = 0; i < 3; i++) {
    cr_assert(sse_wait_closed(held[i], T_SHORT));
    sse_close(held[i]);
  }
  /* WebSocket: a close frame 1001, then the end */
  int code = ws_wait_close(ws, T_SHORT);
  cr_assert_eq(code, 1001, "close code %d on SIGTERM, expected 1001 going away", code);
  cr_assert(ws_wait_eof(ws, T_SHORT));
  /* SSE: a retry: line, then the end */
  cr_assert(sse_wait_closed(sse, T_SHORT), "the SSE stream was not closed on SIGTERM");
  int saw_retry = 0;
  for (size_t i = msgs_before; i < sse->nmsgs; i++)
    saw_retry |= sse->msgs[i].retry > 0;
  cr_assert(saw_retry, "no retry: message before the SSE stream closed");
  cr_assert_eq(sse->nevents, 3);
  char *sse_last = strdup(sse_last_id(sse));
  cr_assert_str_eq(sse_last, first[2]);
  sse_close(sse);
  ws_close(ws);
  struct pc_resp r;
  cr_assert_neq(pc_get(world_push_base(), "/health", NULL, &r, T_SHORT) == 0 && r.status == 200, 1,
                "the daemon still answers after pushd-stop");
  pc_resp_free(&r);

  /* 50 events while it is down; the REST side does not need it */
  char *ids[50];
  publish_n(ch, 50, ids);
  /* taken before the start, so that a slow start cannot make the new
   * daemon look older than it is */
  long long started = pc_now();
  cr_assert_eq(world_ctl("pushd-start"), 0, "pushd-start failed");
  /* the stopped daemon gave its slots back: the other user may open all
   * push.max_conn_per_user (10) streams at once */
  for (int i = 0; i < 10; i++)
    held[i] = sse_ok(ch, tok2, NULL, NULL);
  for (int i = 0; i < 10; i++)
    sse_close(held[i]);
  free(tok2);

  sse = sse_ok(ch, tok, NULL, sse_last);
  sse_expect_ids(sse, ids, 50, 0);
  ws = ws_ok(tok);
  free(since);
  since = strf("{\"%s\":\"%s\"}", ch, first[2]);
  ws_subscribe(ws, wch, since);
  ws_expect_ids(ws, ids, 50);
  char *pp = strf("/poll?channels=%s&cursor=%s&timeout=5", ch, first[2]);
  struct pc_resp pr;
  cr_assert_eq(pd_get(pp, tok, NULL, &pr, T_LONG), 0);
  char **items;
  long n = pc_json_raw_items(pr.body, "events", &items);
  cr_assert_eq(n, 50, "long-poll after the restart: %ld events", n);
  for (long i = 0; i < n; i++) {
    char *id = env_id(items[i]);
    cr_assert_str_eq(id, ids[i]);
    free(id);
  }
  pc_strv_free(items, n);
  pc_resp_free(&pr);
  /* then live, once */
  char *live = publish_ok(ch, "market_update", "{\"live\":1}");
  cr_assert_eq(sse_read_events(sse, 51, T_LONG), 51);
  cr_assert_str_eq(sse_event(sse, 50)->id, live);
  ws_expect_ids(ws, &live, 1);
  sse_ws_expect_only(sse, 51, ws, ch);
  sse_close(sse);
  ws_close(ws);
  int st;
  json_object *h = health(&st);
  cr_assert_eq(st, 200);
  cr_assert_leq(jget_int(h, "uptime_s"), (pc_now() - started) / 1000 + 1,
                "a new daemon has a new uptime");
  json_object_put(h);
  free(live);
  free(pp);
  free_ids(ids, 50);
  free_ids(first, 3);
  free(sse_last);
  free(wch);
  free(since);
  free(tok);
  free(c0);
}
