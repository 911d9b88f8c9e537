/* Presence under faults (docs/PUSHD.md "Presence"): a daemon killed with
 * kill -9 while it holds viewers; its users stop counting within
 * push.presence_ttl_s of its last renewal (plus a tick and the debounce),
 * those still held elsewhere stay counted, and the drop is published.
 * A short TTL (3 s) keeps the wait short; the test's own bound (T_LONG, 30 s)
 * only turns a hang into a failure. */
#include "integration/test_presence_util.h"

static const char *second_port(void)
{
  char p[16];
  snprintf(p, sizeof p, "%d", world_free_port());
  setenv("PRESENCE_B_PORT", p, 1);
  return NULL;
}
SORTIE_WORLD_PREPARE(second_port);
SORTIE_WORLD_CONF("push.workers = 2\npush.presence_ttl_s = 3\n");

Test(presence_faults, kill9_of_a_daemon_its_viewers_stop_counting_within_the_ttl, .timeout = 120)
{
  char sid[96], sid2[96], alice[96], bob[96], carol[96], dave[96], bbase[64];
  new_signal(sid, sizeof sid, "presk");
  new_signal(sid2, sizeof sid2, "presk2");
  snprintf(dave, sizeof dave, "%s", uniq("dave"));
  snprintf(alice, sizeof alice, "%s", uniq("alice"));
  snprintf(bob, sizeof bob, "%s", uniq("bob"));
  snprintf(carol, sizeof carol, "%s", uniq("carol"));
  pid_t b = start_daemon(atoi(getenv("PRESENCE_B_PORT")), bbase, sizeof bbase);

  /* alice on both daemons, bob on B alone, carol on A alone */
  struct sse_client *a_on_a = tab_sse(world_push_base(), sid, alice);
  struct ws_client *a_on_b = tab_ws(bbase, sid, alice);
  struct sse_client *b_on_b = tab_sse(bbase, sid, bob);
  struct ws_client *c_on_a = tab_ws(world_push_base(), sid, carol);
  /* and a second mission watched from B alone: once B is dead, no daemon
   * touches it again, and its expiry alone must bring the drop */
  struct sse_client *d_on_b = tab_sse(bbase, sid2, dave);
  cr_assert_eq(wait_holders(sid, alice, 2), 2);
  cr_assert_eq(wait_watching(sid, 3), 3);
  wait_update(sid, 3);
  cr_assert_eq(wait_watching(sid2, 1), 1);
  wait_update(sid2, 1);

  /* B dies without a word: nothing is given back */
  stop_daemon(b, SIGKILL);
  /* bob goes once B's holdings expire; alice stays (A holds her) */
  cr_assert_eq(wait_watching(sid, 2), 2, "B's viewers still count after its TTL");
  wait_update(sid, 2);
  cr_assert_eq(wait_watching(sid2, 0), 0, "B's viewers still count after its TTL");
  wait_update(sid2, 0);
  cr_assert_eq(wait_holders(sid, bob, 0), 0, "B's holding of bob is still in Redis");
  /* B's expired holding goes from her record at A's next renewal */
  cr_assert_eq(wait_holders(sid, alice, 1), 1, "alice: A's holding alone");
  cr_assert_eq(rest_watching(sid, carol), 2);
  /* and the survivors' own holdings are renewed past the TTL meanwhile */
  cr_assert_eq(rest_watching(sid, NULL), 2);

  sse_close(a_on_a);
  ws_close(c_on_a);
  cr_assert_eq(wait_watching(sid, 0), 0);
  wait_update(sid, 0);
  ws_close(a_on_b);
  sse_close(b_on_b);
  sse_close(d_on_b);
}
