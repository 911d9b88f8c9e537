/* Presence across Redis restarts (docs/PUSHD.md "Presence"): Redis stopped
 * and started again with its data (the AOF), then without it. The daemon
 * tells Redis again of every user it holds when its link comes back, and a
 * tab closed while Redis was away is let go once it is back: the count is
 * right again, and published. One Test: it restarts the world's Redis. */
#include "integration/test_presence_util.h"

/* a TTL far past the test's waits: what comes back comes from the daemon
 * telling Redis again, not from a renewal */
SORTIE_WORLD_CONF("push.workers = 2\npush.presence_ttl_s = 600\n");

Test(presence_redis, counts_are_right_after_a_restart_with_and_without_the_data, .timeout = 180)
{
  char sid[96], alice[96], bob[96], carol[96];
  new_signal(sid, sizeof sid, "presr");
  snprintf(alice, sizeof alice, "%s", uniq("alice"));
  snprintf(bob, sizeof bob, "%s", uniq("bob"));
  snprintf(carol, sizeof carol, "%s", uniq("carol"));
  struct sse_client *a = tab_sse(world_push_base(), sid, alice);
  struct ws_client *b = tab_ws(world_push_base(), sid, bob);
  struct sse_client *c = tab_sse(world_push_base(), sid, carol);
  cr_assert_eq(wait_watching(sid, 3), 3);
  wait_update(sid, 3);

  /* Redis stops (SHUTDOWN keeps the AOF); carol leaves meanwhile */
  cr_assert_eq(world_ctl("redis-stop"), 0);
  sse_close(c);
  cr_assert_eq(world_ctl("redis-start"), 0);
  cr_assert_eq(wait_watching(sid, 2), 2, "carol, gone while Redis was away, still counts");
  wait_update(sid, 2);
  cr_assert_eq(holders_of(sid, carol), 0);

  /* Redis stops and comes back empty: the daemon tells it again */
  cr_assert_eq(world_ctl("redis-stop"), 0);
  char *rm = strf("rm -rf '%s/redis/appendonlydir' '%s/redis/dump.rdb'", world_run(), world_run());
  cr_assert_eq(system(rm), 0);
  free(rm);
  cr_assert_eq(world_ctl("redis-start"), 0);
  /* the signal was lost with the rest: the feed publishes it again */
  for (int i = 0; i < 100 && make_signal(sid, 3600) != 201; i++)
    pc_sleep_ms(100);
  cr_assert_eq(wait_watching(sid, 2), 2, "the users held were not told again");
  cr_assert_eq(holders_of(sid, alice), 1);
  cr_assert_eq(holders_of(sid, bob), 1);
  /* (told again before the signal was back, the count is published with
   * the next change or renewal) a user more: published, counted right */
  char dave[96];
  snprintf(dave, sizeof dave, "%s", uniq("dave"));
  struct sse_client *d = tab_sse(world_push_base(), sid, dave);
  cr_assert_eq(wait_watching(sid, 3), 3);
  wait_update(sid, 3);

  sse_close(a);
  ws_close(b);
  sse_close(d);
  cr_assert_eq(wait_watching(sid, 0), 0);
  wait_update(sid, 0);
}
