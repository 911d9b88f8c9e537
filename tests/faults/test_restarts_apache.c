/* Issue 9, item 6: Apache restarted gracefully (SIGUSR1, what `apachectl -k
 * graceful` sends), twice, in the middle of fires and of SSE, WebSocket and
 * long-poll clients that all go through Apache's /push/ prefix: no
 * acknowledged fire is lost (fires answered with a transport error or a 5xx are
 * retried with their Idempotency-Key), and every stream gets every fire count
 * once, in order, then the end marker published after the last fire
 * (reconnecting with its cursor if Apache cut it). One Test: it restarts the
 * world's Apache. */
#include "restarts.h"

SORTIE_WORLD_CONF("history.maxlen = 5000\n");

enum { FIRES = 600, N = 30, N_SSE = 16, N_WS = 8 };

Test(restarts, apache_graceful_restart_mid_fires_and_streams)
{
  rs_process_setup();
  struct rs_run run;
  rs_run_init(&run, 80000);
  struct rs_health *hp = rs_health_start(world_base(), "/push/health");
  struct rs_health *ha = rs_health_start(world_base(), "/health");
  struct rs_client *cs = rs_clients_start(&run, N, N_SSE, N_WS, world_base(), "/push");
  int up = rs_clients_wait_ready(cs, N, 20000);
  struct rs_firing *fg = rs_fires_start(&run, up == N ? FIRES : 0, 2, 8);
  int signalled = 0, acked_at[2] = {0, 0}, alive = 0;
  long long at[2] = {0, 0};
  if (up == N) {
    pid_t pid = rs_pid("apache/httpd.pid");
    for (int g = 0; g < 2; g++) {
      rs_fires_wait_acked(fg, FIRES * (g + 1) / 3, 30000);
      acked_at[g] = atomic_load(&fg->acked);
      at[g] = pc_now();
      signalled += pid > 0 && kill(pid, SIGUSR1) == 0;
    }
    alive = pid > 0 && kill(pid, 0) == 0;
  }
  rs_fires_join(fg);
  rs_end(&run, up == N);
  rs_clients_join(cs, N);
  rs_health_stop(hp);
  rs_health_stop(ha);
  cr_assert_eq(up, N, "only %d of %d clients connected through Apache", up, N);
  cr_assert_eq(signalled, 2, "could not signal Apache");

  /* when the longest /health gap ended, after which graceful restart */
  long long ea = ha->max_gap_end, ep = hp->max_gap_end;
  int ga = ea >= at[1] ? 2 : ea >= at[0] ? 1 : 0, gp = ep >= at[1] ? 2 : ep >= at[0] ? 1 : 0;
  char extra[400];
  snprintf(extra, sizeof extra,
           "graceful_at_acked=%d,%d slowest_fire_answer=%lldms apache_health_gap_max=%lldms "
           "(ended %lldms after graceful #%d; non200=%d failed=%d) "
           "push_health_via_apache_gap_max=%lldms (ended %lldms after graceful #%d; non200=%d "
           "failed=%d)",
           acked_at[0], acked_at[1], (long long)atomic_load(&fg->slowest_ms), ha->max_gap_ms,
           ga ? ea - at[ga - 1] : 0, ga, ha->non200, ha->failures, hp->max_gap_ms,
           gp ? ep - at[gp - 1] : 0, gp, hp->non200, hp->failures);
  struct rs_counts k = rs_count("apache-graceful-x2", &run, fg, cs, N, extra);
  cr_assert(alive, "Apache's parent is gone after the graceful restarts");
  rs_assert_nothing_lost(&k, &run, cs, N);
  rs_clients_free(cs, N);
  rs_fires_free(fg);
  free(hp);
  free(ha);
}
