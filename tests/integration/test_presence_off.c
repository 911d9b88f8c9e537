/* push.presence = 0 (docs/PUSHD.md "Presence"): no presence work at all.
 * Mission streams add no key to Redis and no presence_update to the
 * history; GET /api/signals/{id} and /api/missions/{id} carry no
 * `watching`, GET /api/admin/stats no `top_watched`. */
#include "test_presence_util.h"

SORTIE_WORLD_CONF("push.presence = 0\npush.workers = 1\n");

Test(presence_off, no_count_no_event_no_member, .timeout = 60)
{
  char sid[96], u[96];
  new_signal(sid, sizeof sid, "presoff");
  snprintf(u, sizeof u, "%s", uniq("offuser"));
  char *ch = strf("mission:%s", sid);
  struct sse_client *a = tab_sse(world_push_base(), sid, u);
  struct ws_client *b = tab_ws(world_push_base(), sid, "offother");
  /* the one worker's loop sends admin_stats every 5 s: between two of them
   * its presence timer (every 500 ms when on) would have run several times */
  char *adm = token_for("off-admin", "admin");
  struct sse_client *ad = sse_ok("admin", adm, NULL, NULL);
  int seen = 0;
  for (size_t i = 0; seen < 2; i++) {
    cr_assert_gt(sse_read_events(ad, i + 1, T_LONG), i, "no admin_stats from the daemon");
    const struct sse_msg *e = sse_event(ad, i);
    if (e->event && strcmp(e->event, "admin_stats") == 0 && strstr(e->data, "\"daemon\"")) {
      cr_assert_null(strstr(e->data, "top_watched"), "%s", e->data);
      seen++;
    }
  }
  sse_close(ad);
  free(sse_expect_only(a, ch, 0));
  cr_assert_eq(rest_watching(sid, NULL), -1, "watching in GET /api/signals/{id}");
  cr_assert_eq(rest_watching(sid, u), -1, "watching in GET /api/missions/{id}");
  cr_assert_eq(page_watching(sid), -1, "watching in the mission page's data");
  char pat[200];
  snprintf(pat, sizeof pat, "%spres:*", kp());
  const char *keys[] = {"KEYS", pat};
  sortie_reply *r = rcmd(2, keys);
  cr_assert(r && sortie_reply_type(r) == SORTIE_REPLY_ARRAY);
  cr_assert_eq(sortie_reply_len(r), 0, "presence keys in Redis with push.presence = 0");
  sortie_reply_free(r);
  struct http_resp h;
  http("GET", "/api/admin/stats", adm, NULL, NULL, NULL, &h);
  cr_assert_eq(h.status, 200);
  cr_assert_null(strstr(h.body, "top_watched"), "%s", h.body);
  http_free(&h);
  sse_close(a);
  ws_close(b);
  free(adm);
  free(ch);
}
