/* Redis stopped answering (SIGSTOP) with nothing being asked of it: the daemon
 * must notice (its idle command link is pinged; no reply within
 * redis.timeout_ms is a lost link), say so on /health, keep taking new
 * streams (their per-user slot cannot be counted, so they are let in, as when
 * Redis is down), and be whole again once Redis answers. Before, /health said
 * "ok" and a new SSE stream or WebSocket handshake got no answer until Redis
 * came back. */
#include "restarts.h"

static pid_t paused = -1;
static void cont_redis(void)
{
  if (paused > 0)
    kill(paused, SIGCONT);
  paused = -1;
}

/* polls /health until it answers `want` or ms pass; the status last seen */
static int health_until(int want, int ms)
{
  long long end = pc_now() + ms;
  int st = 0;
  do {
    json_object *h = health_at(world_push_base(), &st);
    json_object_put(h);
    if (st == want)
      break;
    pc_sleep_ms(100);
  } while (pc_now() < end);
  return st;
}

Test(stall, redis_stopped_while_idle_is_seen_and_streams_still_open, .fini = cont_redis)
{
  rs_process_setup();
  char *tok = token_for(uniq("stall"), "user");
  cr_assert_eq(health_until(200, T_LONG), 200, "not healthy to begin with");
  pid_t pid = rs_pid("redis/redis.pid");
  cr_assert_gt(pid, 1);
  cr_assert_eq(kill(pid, SIGSTOP), 0);
  paused = pid;
  int h_paused = health_until(503, 20000) /* about 2 s (docs); 20: a hang bound */;
  struct sse_client *s =
      sse_open(world_push_base(), "/events?channels=signals", tok, NULL, NULL, 0, T_LONG);
  int sse_status = s ? s->status : -1;
  struct ws_client *w = ws_open(world_push_base(), "/ws", tok, NULL, 0, T_LONG);
  int ws_status = w ? w->status : -1;
  cont_redis();
  int h_after = health_until(200, 30000);
  fprintf(stderr, "COUNTS stall: health_while_stopped=%d new_sse=%d new_ws=%d health_after=%d\n",
          h_paused, sse_status, ws_status, h_after);
  cr_expect_eq(h_paused, 503, "/health kept answering %d with Redis stopped", h_paused);
  cr_expect_eq(sse_status, 200, "a new SSE stream got %d with Redis stopped", sse_status);
  cr_expect_eq(ws_status, 101, "a WebSocket handshake got %d with Redis stopped", ws_status);
  cr_expect_eq(h_after, 200, "/health did not come back once Redis answered");
  sse_close(s);
  ws_close(w);
  free(tok);
}
