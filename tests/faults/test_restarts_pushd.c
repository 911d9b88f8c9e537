/* Issue 9, item 3: `kill -9` of sortie-pushd (master and workers at once) in
 * the middle of 1,000 fires followed by 100 clients over SSE, WebSocket and
 * long-poll on one mission channel; the daemon is started again and every
 * client, coming back with its cursor, gets fire counts 1..1000 once, in
 * order, then the end marker published after the last fire. One Test: it
 * kills the world's daemon. */
#include "restarts.h"

SORTIE_WORLD_CONF("history.maxlen = 5000\n");

enum { FIRES = 1000, KILL_AT = 300, CLIENTS = 100, N_SSE = 40, N_WS = 40 };

Test(restarts, kill9_pushd_mid_fires_every_client_resumes)
{
  rs_process_setup();
  struct rs_run run;
  rs_run_init(&run, 80000);
  struct rs_health *h = rs_health_start(world_push_base(), "/health");
  struct rs_client *cs = rs_clients_start(&run, CLIENTS, N_SSE, N_WS, world_push_base(), "");
  int up = rs_clients_wait_ready(cs, CLIENTS, 20000);
  struct rs_firing *fg = NULL;
  int killed = -1, restarted = -1, gone = 0, acked_at_kill = 0, acked_at_restart = 0;
  long long down_ms = 0;
  if (up == CLIENTS) {
    fg = rs_fires_start(&run, FIRES, 2, 6);
    rs_fires_wait_acked(fg, KILL_AT, 30000);
    /* the whole daemon, as an OOM kill or `systemctl kill -s KILL` would */
    pid_t pid = rs_pid("pushd.pid");
    long long t0 = pc_now();
    acked_at_kill = atomic_load(&fg->acked);
    if (pid > 0) {
      killed = getpgid(pid) == pid ? kill(-pid, SIGKILL) : kill(pid, SIGKILL);
      gone = rs_wait_gone(pid, 20000); /* a hang bound */
    }
    restarted = world_ctl("pushd-start");
    down_ms = pc_now() - t0;
    acked_at_restart = atomic_load(&fg->acked);
    rs_fires_join(fg);
  }
  rs_end(&run, up == CLIENTS);
  rs_clients_join(cs, CLIENTS);
  rs_health_stop(h);
  cr_assert_eq(up, CLIENTS, "only %d of %d clients connected", up, CLIENTS);

  char extra[256];
  snprintf(extra, sizeof extra, "acked_at_kill=%d acked_at_restart=%d health_gap_max=%lldms "
           "(kill to started: %lldms) health_non200=%d", acked_at_kill, acked_at_restart,
           h->max_gap_ms, down_ms, h->non200);
  struct rs_counts k = rs_count("kill9-pushd", &run, fg, cs, CLIENTS, extra);
  cr_assert_eq(killed, 0, "could not kill the daemon");
  cr_assert(gone, "the daemon did not die");
  cr_assert_eq(restarted, 0, "pushd-start failed");
  cr_assert_eq(k.sent, FIRES);
  rs_assert_nothing_lost(&k, &run, cs, CLIENTS);
  /* every client lost its connection once and came back */
  for (int i = 0; i < CLIENTS; i++)
    cr_assert_geq(cs[i].connects, 2, "client %d never reconnected", i);
  rs_clients_free(cs, CLIENTS);
  rs_fires_free(fg);
  free(h);
}
