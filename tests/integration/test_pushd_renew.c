/* The renewal of the per-user connection slots (push.max_conn_per_user,
 * counted in Redis): every live stream's slot is renewed once per
 * push.slot_renew_s, in batched script calls (pushd/limit.c, up to
 * LIMIT_BATCH slots each), and a slot given back is not brought back. The
 * world renews every 2 s so that the test sees several rounds; a slot's
 * score is the second it stops counting, so a renewal moves it forward. */
#include "test_pushd_util.h"

SORTIE_WORLD_CONF("push.workers = 1\n"
                  "push.slot_renew_s = 2\n"
                  "push.max_conn_per_user = 1000\n");

#define MANY 400 /* over six slices of 64: some renewal calls carry a full batch */

static long long score_of(char **members, long long *scores, size_t n, const char *m)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(members[i], m) == 0)
      return scores[i];
  return -1;
}

Test(renew, every_live_slot_is_renewed_in_batches_and_a_closed_one_is_not_brought_back,
     .timeout = 120)
{
  char a[96], b[96];
  snprintf(a, sizeof a, "%s", uniq("renewa"));
  snprintf(b, sizeof b, "%s", uniq("renewb"));
  char *ta = token_for(a, "user"), *tb = token_for(b, "user");
  static struct sse_client *sa[MANY];
  struct sse_client *sb[3];
  for (int i = 0; i < MANY; i++) {
    sa[i] = sse_open(world_push_base(), "/events?channels=signals", ta, NULL, NULL, 0, T_LONG);
    cr_assert(sa[i] && sa[i]->status == 200, "stream %d of %s", i, a);
  }
  for (int i = 0; i < 3; i++) {
    sb[i] = sse_open(world_push_base(), "/events?channels=signals", tb, NULL, NULL, 0, T_LONG);
    cr_assert(sb[i] && sb[i]->status == 200, "stream %d of %s", i, b);
  }
  /* one of b's streams closes: its slot is given back */
  sse_close(sb[2]);
  char **ma, **mb;
  long long *sca, *scb;
  size_t na = 0, nb = 0;
  for (int i = 0; i < 200; i++) { /* the close reaches Redis: up to 10 s */
    nb = slots_of(b, &mb, &scb);
    if (nb == 2)
      break;
    free_slots(mb, scb, nb);
    pc_sleep_ms(50);
  }
  cr_assert_eq(nb, 2, "%s has %zu slots after one of its 3 streams closed", b, nb);
  na = slots_of(a, &ma, &sca);
  cr_assert_eq(na, MANY, "%s has %zu slots for %d streams", a, na, MANY);

  /* every slot's score moves past where it was: up to 30 s, against a
   * renewal every 2 s */
  size_t stale = na + nb;
  for (int round = 0; round < 300 && stale > 0; round++) {
    pc_sleep_ms(100);
    char **m2;
    long long *s2;
    size_t n2a = slots_of(a, &m2, &s2);
    stale = 0;
    for (size_t i = 0; i < na; i++)
      if (score_of(m2, s2, n2a, ma[i]) <= sca[i])
        stale++;
    free_slots(m2, s2, n2a);
    size_t n2b = slots_of(b, &m2, &s2);
    for (size_t i = 0; i < nb; i++)
      if (score_of(m2, s2, n2b, mb[i]) <= scb[i])
        stale++;
    cr_assert_eq(n2b, 2, "a renewal brought a closed slot back (%zu slots)", n2b);
    free_slots(m2, s2, n2b);
  }
  cr_assert_eq(stale, 0, "%zu of %zu slots were not renewed in 30 s", stale, na + nb);

  /* the keys themselves live on with their slots */
  char key[256];
  snprintf(key, sizeof key, "%sconns:%s", kp(), a);
  const char *ttl[] = {"TTL", key};
  sortie_reply *r = rcmd(2, ttl);
  cr_assert(r && sortie_reply_type(r) == SORTIE_REPLY_INTEGER && sortie_reply_int(r) > 60,
            "the slots' key expires in %lld s", r ? sortie_reply_int(r) : -1);
  sortie_reply_free(r);

  free_slots(ma, sca, na);
  free_slots(mb, scb, nb);
  for (int i = 0; i < MANY; i++)
    sse_close(sa[i]);
  for (int i = 0; i < 2; i++)
    sse_close(sb[i]);
  free(ta);
  free(tb);
}
