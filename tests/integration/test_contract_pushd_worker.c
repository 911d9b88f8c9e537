/* The master starts a worker again when one dies: killed with SIGKILL, the
 * worker is replaced by a new process of the same master, which serves
 * streams, and the master says so in the log. */
#include <signal.h>
#include <unistd.h>

#include "test_pushd_util.h"

SORTIE_WORLD_CONF("push.workers = 1\n");

/* the master's worker, 0 while it has none */
static long only_worker(void)
{
  long w = pushd_worker_pid();
  return w == pushd_master_pid() ? 0 : w;
}

Test(worker, the_master_starts_a_dead_worker_again)
{
  long master = pushd_master_pid();
  long w1 = only_worker();
  cr_assert_gt(w1, 0, "no worker under master %ld", master);
  /* push.workers = 1: one child */
  char path0[128], buf[256] = "";
  snprintf(path0, sizeof path0, "/proc/%ld/task/%ld/children", master, master);
  FILE *cf = fopen(path0, "r");
  cr_assert_not_null(cf);
  cr_assert_not_null(fgets(buf, sizeof buf, cf));
  fclose(cf);
  long a = 0, b = 0;
  cr_assert_eq(sscanf(buf, "%ld %ld", &a, &b), 1, "push.workers = 1, children: %s", buf);
  cr_assert_eq(kill((pid_t)w1, SIGKILL), 0);
  long w2 = 0;
  long long deadline = pc_now() + T_LONG;
  while (pc_now() < deadline && ((w2 = only_worker()) == 0 || w2 == w1))
    pc_sleep_ms(50);
  cr_assert(w2 > 0 && w2 != w1, "no new worker after %ld was killed (now %ld)", w1, w2);
  cr_assert_eq(pushd_master_pid(), master);
  cr_assert_eq(kill((pid_t)master, 0), 0, "the master is gone");
  /* the new worker serves: a stream gets an event published after it opened */
  char *tok = token_for(uniq("u"), "user");
  const char *ch = chan("market");
  char *path = strf("/events?channels=%s", ch);
  struct sse_client *c = NULL;
  while (pc_now() < deadline) {
    c = sse_open(world_push_base(), path, tok, NULL, NULL, 0, T_SHORT);
    if (c && c->status == 200)
      break;
    sse_close(c);
    c = NULL;
    pc_sleep_ms(50);
  }
  cr_assert_not_null(c, "no stream after the restart");
  cr_assert_not_null(sse_wait_idonly(c, T_SHORT));
  char *id = publish_ok(ch, "market_update", "{\"after_restart\":1}");
  cr_assert_geq(sse_read_events(c, 1, T_LONG), 1);
  cr_assert_str_eq(sse_event(c, 0)->id, id);
  sse_close(c);
  /* and the master logged it */
  char *log = strf("%s/log/sortie.log", world_run());
  char *want = strf("worker 0 (pid %ld) ended (signal 9); starting it again", w1);
  FILE *f = fopen(log, "r");
  cr_assert_not_null(f);
  char line[1024];
  int found = 0;
  while (fgets(line, sizeof line, f))
    found |= strstr(line, want) != NULL;
  fclose(f);
  cr_assert(found, "no '%s' in %s", want, log);
  free(want);
  free(log);
  free(path);
  free(id);
  free(tok);
}
