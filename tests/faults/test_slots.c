/* A user's connection slots (push.max_conn_per_user, counted in Redis across
 * daemons) when the daemon dies with kill -9: they cannot be given back, so
 * they count until their TTL (180 s, renewed every minute while the daemon
 * lives) and not after. The test does not wait three minutes: it checks that
 * every slot left in Redis expires within the TTL, then moves their expiry
 * to the past, as three minutes without renewal would, and the user is let
 * in again. A graceful stop gives them back at once (test_pushd_ops). */
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include "../integration/test_pushd_util.h"

SORTIE_WORLD_CONF("push.workers = 1\n"
                  "push.max_conn_per_user = 4\n");

#define TTL_S 180

static int stream_status(const char *tok)
{
  struct sse_client *c = sse_open(world_push_base(), "/events?channels=signals", tok, NULL, NULL,
                                  0, T_LONG);
  int st = c ? c->status : -1;
  sse_close(c);
  return st;
}

Test(slots, a_killed_daemons_slots_count_until_their_ttl_and_no_longer)
{
  char sub[96];
  snprintf(sub, sizeof sub, "%s", uniq("slots"));
  char *tok = token_for(sub, "user");
  struct sse_client *c[4];
  for (int i = 0; i < 4; i++) {
    c[i] = sse_open(world_push_base(), "/events?channels=signals", tok, NULL, NULL, 0, T_LONG);
    cr_assert(c[i] && c[i]->status == 200, "stream %d", i);
  }
  cr_assert_eq(stream_status(tok), 429, "a fifth stream is over the limit");

  pid_t pid = (pid_t)pushd_master_pid();
  cr_assert_gt(pid, 1);
  cr_assert_eq(getpgid(pid) == pid ? kill(-pid, SIGKILL) : kill(pid, SIGKILL), 0);
  for (int i = 0; i < 400 && kill(pid, 0) == 0; i++) /* up to 20 s */
    pc_sleep_ms(50);
  cr_assert_eq(world_ctl("pushd-start"), 0);
  for (int i = 0; i < 4; i++)
    sse_close(c[i]);

  /* the dead daemon could not give them back: they still count */
  cr_assert_eq(stream_status(tok), 429, "the killed daemon's slots stopped counting at once");
  char **members;
  long long *until;
  size_t n = slots_of(sub, &members, &until);
  long long now = now_s();
  cr_assert_eq(n, 4, "%zu slots in Redis", n);
  for (size_t i = 0; i < n; i++)
    cr_assert(until[i] > now && until[i] <= now + TTL_S, "a slot counts until %lld (now %lld)",
              until[i], now);
  /* three minutes without renewal: each slot's expiry is in the past */
  char key[256], past[32];
  snprintf(key, sizeof key, "%sconns:%s", kp(), sub);
  snprintf(past, sizeof past, "%lld", now - 1);
  for (size_t i = 0; i < n; i++) {
    const char *za[] = {"ZADD", key, "XX", past, members[i]};
    sortie_reply_free(rcmd(5, za));
  }
  free_slots(members, until, n);
  cr_assert_eq(stream_status(tok), 200, "expired slots still count");
  free(tok);
}
