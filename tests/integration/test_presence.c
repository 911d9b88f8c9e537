/* Presence (issue 12, item 1; docs/PUSHD.md "Presence"): the distinct users
 * watching a mission, counted by user across tabs, transports, workers and
 * daemons; presence_update events in the mission's history, debounced; the
 * count in GET /api/signals/{id}, GET /api/missions/{id} and the admin
 * stats' top_watched. One worker, so that a sync point (presence_sync)
 * covers every change the daemon queued before it. */
#include "test_presence_util.h"

static const char *second_port(void)
{
  static char conf[64];
  char p[16];
  snprintf(p, sizeof p, "%d", world_free_port());
  setenv("PRESENCE_B_PORT", p, 1);
  snprintf(conf, sizeof conf, "push.workers = 1\n");
  return conf;
}
SORTIE_WORLD_PREPARE(second_port);

Test(presence, two_users_three_tabs_count_two_and_the_tabs_get_the_history, .timeout = 120)
{
  char sid[96], alice[96], bob[96];
  new_signal(sid, sizeof sid, "pres");
  snprintf(alice, sizeof alice, "%s", uniq("alice"));
  snprintf(bob, sizeof bob, "%s", uniq("bob"));
  char *ch = strf("mission:%s", sid);
  cr_assert_eq(rest_watching(sid, NULL), 0, "nobody watches yet");
  cr_assert_eq(page_watching(sid), 0, "the mission page's data");
  cr_assert_eq(rest_watching(sid, alice), 0);
  char *cursor0 = cursor_now(ch);

  struct sse_client *b1 = tab_sse(world_push_base(), sid, bob);
  cr_assert_eq(wait_watching(sid, 1), 1);
  struct sse_client *a1 = tab_sse(world_push_base(), sid, alice);
  cr_assert_eq(wait_holders(sid, alice, 1), 1);
  char *held1 = holding_of(sid, alice);
  /* her second tab, on the same worker: Redis hears nothing of it (her
   * holding, with its expiry, is the same after a sync point; a renewal is
   * a third of the 60 s TTL away) */
  struct ws_client *a2 = tab_ws(world_push_base(), sid, alice);
  presence_sync(sid, world_push_base());
  char *held2 = holding_of(sid, alice);
  cr_assert_str_eq(held2, held1, "a second tab of a user held here went to Redis");
  free(held1);
  free(held2);
  cr_assert_eq(wait_watching(sid, 2), 2, "two users, three tabs");
  wait_update(sid, 2);
  cr_assert_eq(rest_watching(sid, alice), 2, "GET /api/missions/{id}");
  cr_assert_eq(page_watching(sid), 2, "the data of the mission page GET /mission/{id}");
  cr_assert_eq(holders_of(sid, alice), 1, "alice's two tabs on one worker: one holding");

  /* Bob's tab got exactly the mission's history after cursor0, in order,
   * the same envelopes REST reads (the marker ends it) */
  char *tok = token_for("pres-reader", "service");
  char *path = strf("/api/events?channels=%s&cursor=%s", ch, cursor0);
  struct http_resp r;
  http("GET", path, tok, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200);
  json_object *evs = NULL;
  cr_assert(json_object_object_get_ex(r.json, "events", &evs));
  size_t n = json_object_array_length(evs);
  cr_assert_geq(n, 1, "no presence_update in the history");
  char *m = sse_expect_only(b1, ch, n);
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx(evs, i);
    const struct sse_msg *got = sse_event(b1, i);
    cr_assert_str_eq(got->id, jget_str(e, "id"), "event %zu", i);
    cr_assert_str_eq(got->event, "presence_update");
    cr_assert_str_eq(got->data, json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN |
                                                                    JSON_C_TO_STRING_NOSLASHESCAPE),
                     "the tab's envelope and REST's differ");
  }
  free(m);
  http_free(&r);

  /* alice's WebSocket tab closes: she still watches in her SSE tab */
  ws_close(a2);
  presence_sync(sid, world_push_base());
  cr_assert_eq(rest_watching(sid, NULL), 2, "a user's tab closed, another of hers is open");
  wait_update(sid, 2);
  /* her last tab closes: she is gone */
  sse_close(a1);
  cr_assert_eq(wait_watching(sid, 1), 1);
  wait_update(sid, 1);
  sse_close(b1);
  cr_assert_eq(wait_watching(sid, 0), 0);
  wait_update(sid, 0);
  cr_assert_eq(rest_watching(sid, bob), 0);
  free(path);
  free(tok);
  free(cursor0);
  free(ch);
}

#define BURST 12

Test(presence, a_burst_is_debounced_and_its_last_count_is_published, .timeout = 120)
{
  char sid[96];
  new_signal(sid, sizeof sid, "presb");
  struct sse_client *tabs[BURST];
  for (int i = 0; i < BURST; i++) {
    char u[128];
    snprintf(u, sizeof u, "burst%d-%s", i, sid);
    tabs[i] = tab_sse(world_push_base(), sid, u);
  }
  /* the last count goes out, whatever the debounce held back */
  wait_update(sid, BURST);
  cr_assert_eq(rest_watching(sid, NULL), BURST);
  struct updates u = updates_of(sid);
  cr_assert_leq(u.n, BURST, "%zu updates for %d joins", u.n, BURST);
  free_updates(&u);

  /* the admin stats rank it first (nothing else here has as many) */
  char *adm = token_for("pres-admin", "admin");
  struct http_resp r;
  http("GET", "/api/admin/stats", adm, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200);
  json_object *top = NULL;
  cr_assert(json_object_object_get_ex(r.json, "top_watched", &top), "no top_watched: %s", r.body);
  cr_assert_geq(json_object_array_length(top), 1, "%s", r.body);
  cr_assert_leq(json_object_array_length(top), 5, "%s", r.body);
  json_object *first = json_object_array_get_idx(top, 0);
  cr_assert_str_eq(jget_str(first, "signal_id"), sid, "%s", r.body);
  cr_assert_eq(jget_int(first, "watching"), BURST, "%s", r.body);
  http_free(&r);
  /* and so does the daemon's next admin_stats event (every 5 s) */
  int seen = 0;
  for (long long until = now_ms() + T_LONG; !seen && now_ms() < until; pc_sleep_ms(100)) {
    json_object *adm_h = rstream("admin");
    size_t na = json_object_array_length(adm_h);
    for (size_t i = na; i-- > 0 && !seen;) {
      json_object *e = json_object_array_get_idx(adm_h, i);
      const char *t = jget_str(e, "type");
      json_object *d = NULL, *tw = NULL;
      if (t && strcmp(t, "admin_stats") == 0 && json_object_object_get_ex(e, "data", &d) &&
          json_object_object_get_ex(d, "daemon", NULL) &&
          json_object_object_get_ex(d, "top_watched", &tw) && json_object_array_length(tw) > 0) {
        json_object *f = json_object_array_get_idx(tw, 0);
        if (strcmp(jget_str(f, "signal_id"), sid) == 0 && jget_int(f, "watching") == BURST)
          seen = 1;
      }
    }
    json_object_put(adm_h);
  }
  cr_assert(seen, "no admin_stats event ranks %s first with %d", sid, BURST);

  for (int i = 0; i < BURST; i++)
    sse_close(tabs[i]);
  wait_update(sid, 0);
  cr_assert_eq(wait_watching(sid, 0), 0);
  http("GET", "/api/admin/stats", adm, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200);
  cr_assert_null(strstr(r.body, sid), "a mission nobody watches is still ranked: %s", r.body);
  http_free(&r);
  free(adm);
}

/* Two daemons (two masters) on one Redis: a user on both counts once, and
 * stops counting when her last tab on either closes. */
Test(presence, two_daemons_count_a_user_once, .timeout = 120)
{
  char sid[96], alice[96], bob[96], bbase[64];
  new_signal(sid, sizeof sid, "pres2d");
  snprintf(alice, sizeof alice, "%s", uniq("alice"));
  snprintf(bob, sizeof bob, "%s", uniq("bob"));
  pid_t b = start_daemon(atoi(getenv("PRESENCE_B_PORT")), bbase, sizeof bbase);

  struct sse_client *a_on_a = tab_sse(world_push_base(), sid, alice);
  struct ws_client *a_on_b = tab_ws(bbase, sid, alice);
  struct sse_client *b_on_b = tab_sse(bbase, sid, bob);
  cr_assert_eq(wait_holders(sid, alice, 2), 2, "alice is held by both daemons");
  cr_assert_eq(wait_watching(sid, 2), 2, "alice on two daemons counts once");
  wait_update(sid, 2);

  /* her tab on A closes: A lets her go, B still holds her */
  sse_close(a_on_a);
  cr_assert_eq(wait_holders(sid, alice, 1), 1);
  cr_assert_eq(rest_watching(sid, NULL), 2);
  cr_assert_eq(rest_watching(sid, bob), 2);
  /* her last one closes */
  ws_close(a_on_b);
  cr_assert_eq(wait_watching(sid, 1), 1);
  wait_update(sid, 1);
  /* B stops gracefully: it lets bob go at once (not after the TTL) */
  stop_daemon(b, SIGTERM);
  cr_assert_eq(wait_watching(sid, 0), 0, "a stopped daemon's users still count");
  wait_update(sid, 0);
  sse_close(b_on_b);
}

Test(presence, unknown_signal_404_and_other_channels_do_not_count, .timeout = 60)
{
  char sid[96], u[96];
  new_signal(sid, sizeof sid, "preso");
  snprintf(u, sizeof u, "%s", uniq("other"));
  cr_assert_eq(rest_watching(uniq("nosuch"), NULL), -2, "an unknown signal is not a 200");
  /* a user on the market and user channels only: no mission, no count */
  char *tok = token_for(u, "user");
  char *path = strf("/events?channels=market:AAPL,user:%s", u);
  struct sse_client *c = sse_open(world_push_base(), path, tok, NULL, NULL, 0, T_SHORT);
  cr_assert(c && c->status == 200);
  struct sse_client *w = tab_sse(world_push_base(), sid, u);
  cr_assert_eq(wait_watching(sid, 1), 1);
  /* u is held on this mission and nowhere else */
  char pat[300];
  snprintf(pat, sizeof pat, "%spres:*:h", kp());
  const char *ks[] = {"KEYS", pat};
  sortie_reply *r = rcmd(2, ks);
  cr_assert(r && sortie_reply_type(r) == SORTIE_REPLY_ARRAY);
  int held_in = 0;
  for (size_t i = 0; i < sortie_reply_len(r); i++) {
    size_t l;
    const char *k = sortie_reply_str(sortie_reply_at(r, i), &l);
    char *key = strndup(k, l);
    const char *hx[] = {"HEXISTS", key, u};
    if (rinteger(3, hx) == 1)
      held_in++;
    free(key);
  }
  sortie_reply_free(r);
  cr_assert_eq(held_in, 1, "%s is held on %d missions, watching one (a market or user "
                           "channel was counted)", u, held_in);
  sse_close(w);
  cr_assert_eq(wait_watching(sid, 0), 0);
  sse_close(c);
  free(path);
  free(tok);
}

/* Only traders count: a service token (a feed, a bot) and an admin on the
 * mission channel are not watchers. */
Test(presence, service_and_admin_streams_are_not_watchers, .timeout = 60)
{
  char sid[96];
  new_signal(sid, sizeof sid, "presr");
  char *path = strf("/events?channels=mission:%s", sid);
  const char *roles[2] = {"service", "admin"};
  struct sse_client *s[2];
  for (int i = 0; i < 2; i++) {
    char *tok = token_for(uniq(roles[i]), roles[i]);
    s[i] = sse_open(world_push_base(), path, tok, NULL, NULL, 0, T_SHORT);
    cr_assert(s[i] && s[i]->status == 200, "a %s stream on the mission", roles[i]);
    cr_assert_not_null(sse_wait_idonly(s[i], T_SHORT));
    free(tok);
  }
  presence_sync(sid, world_push_base());
  cr_assert_eq(rest_watching(sid, NULL), 0, "a service or admin stream counted as a watcher");
  char u[96];
  snprintf(u, sizeof u, "%s", uniq("trader"));
  struct sse_client *t = tab_sse(world_push_base(), sid, u);
  cr_assert_eq(wait_watching(sid, 1), 1);
  presence_sync(sid, world_push_base());
  cr_assert_eq(rest_watching(sid, NULL), 1, "one trader beside a feed and an admin");
  sse_close(t);
  cr_assert_eq(wait_watching(sid, 0), 0);
  for (int i = 0; i < 2; i++)
    sse_close(s[i]);
  free(path);
}
