/* SIGINT to the master stops the daemon as SIGTERM does (docs/PUSHD.md,
 * "Signals"): WebSocket clients get close 1001, SSE clients a retry: line,
 * then the daemon is gone (its pid file removed as it exits). */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_pushd_util.h"

SORTIE_WORLD_CONF("push.workers = 1\n");

Test(sigint, sigint_closes_websockets_1001_sends_sse_retry_and_the_daemon_exits)
{
  char *tok = token_for(uniq("u"), "user");
  struct ws_client *ws = ws_ok(tok);
  struct sse_client *sse = sse_ok(chan("market"), tok, NULL, NULL);
  cr_assert_not_null(sse_wait_idonly(sse, T_SHORT));
  size_t before = sse->nmsgs;
  long master = pushd_master_pid();
  cr_assert_gt(master, 0);
  cr_assert_eq(kill((pid_t)master, SIGINT), 0);
  int code = ws_wait_close(ws, T_SHORT);
  cr_assert_eq(code, 1001, "close code %d on SIGINT, expected 1001", code);
  cr_assert(sse_wait_closed(sse, T_SHORT), "the SSE stream was not closed on SIGINT");
  int saw_retry = 0;
  for (size_t i = before; i < sse->nmsgs; i++)
    saw_retry |= sse->msgs[i].retry > 0;
  cr_assert(saw_retry, "no retry: before the SSE stream closed");
  char *pidfile = strf("%s/pushd.pid", world_run());
  struct stat sb;
  long long deadline = pc_now() + T_SHORT;
  while (stat(pidfile, &sb) == 0 && pc_now() < deadline)
    pc_sleep_ms(20);
  cr_assert_neq(stat(pidfile, &sb), 0, "the daemon did not exit on SIGINT");
  ws_close(ws);
  sse_close(sse);
  free(pidfile);
  free(tok);
}
