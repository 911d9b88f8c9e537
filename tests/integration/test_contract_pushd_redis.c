/* A worker that finds Redis again after losing it writes a system_log line
 * on the admin channel (docs/PUSHD.md, "On the admin channel"): an admin's
 * stream that lives through a Redis restart gets it. */
#include "test_pushd_util.h"

SORTIE_WORLD_CONF("push.workers = 1\n");

Test(redis_back, a_worker_back_on_redis_writes_a_system_log_line_on_admin)
{
  char *tok = token_for(uniq("admin"), "admin");
  struct sse_client *c = sse_ok("admin", tok, NULL, NULL);
  cr_assert_not_null(sse_wait_idonly(c, T_SHORT));
  cr_assert_eq(world_ctl("redis-stop"), 0);
  /* the daemon sees it: /health 503 */
  int st = 0;
  long long deadline = pc_now() + T_LONG;
  while (pc_now() < deadline) {
    json_object *h = health_at(world_push_base(), &st);
    json_object_put(h);
    if (st == 503)
      break;
    pc_sleep_ms(50);
  }
  cr_assert_eq(st, 503, "/health did not turn 503 without Redis");
  cr_assert_eq(world_ctl("redis-start"), 0);
  /* the line, among the admin channel's events (admin_stats come too) */
  const struct sse_msg *found = NULL;
  size_t seen = 0;
  while (!found && !c->closed && pc_now() < deadline + T_LONG) {
    sse_read_events(c, seen + 1, 1000);
    for (; seen < c->nevents && !found; seen++) {
      const struct sse_msg *m = sse_event(c, seen);
      if (m->event && strcmp(m->event, "system_log") == 0)
        found = m;
    }
  }
  cr_assert_not_null(found, "no system_log on admin after Redis came back (%zu events, closed %d)",
                     c->nevents, c->closed);
  json_object *o = json_tokener_parse(found->data);
  cr_assert_not_null(o, "%s", found->data);
  cr_assert_str_eq(jget_str(o, "channel"), "admin");
  cr_assert_str_eq(jget_str(o, "type"), "system_log");
  cr_assert_not_null(jget_str(o, "data.level"), "%s", found->data);
  cr_assert_not_null(jget_str(o, "data.source"), "%s", found->data);
  const char *msg = jget_str(o, "data.message");
  cr_assert(msg && strstr(msg, "Redis again"), "%s", found->data);
  json_object_put(o);
  sse_close(c);
  free(tok);
}
