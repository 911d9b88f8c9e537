/* Issue 9, item 4: Redis paused (SIGSTOP) for 10 s in the middle of fires
 * followed by SSE, WebSocket and long-poll clients, some of which connect
 * during the pause. The REST side answers 503 within its Redis timeout, the
 * daemon keeps answering /health, and afterwards nothing is lost: fires
 * retried with their Idempotency-Key get their real result (a fire answered
 * 503 may have been written: its retry is then a replayed 201), every fire
 * count reaches every client once, in order. One Test: it stops the world's
 * Redis; its .fini sends SIGCONT whatever happened. */
#include "restarts.h"

SORTIE_WORLD_CONF("history.maxlen = 5000\n");

enum { FIRES = 400, AT = 150, N = 30, PAUSE_MS = 10000 };
/* the clients that connect while Redis is paused: 2 SSE, 2 WebSocket, 1 poll
 * (rs_clients_make gives 0-11 SSE, 12-23 WebSocket, 24-29 long-poll) */
static const int late[] = {10, 11, 22, 23, 29};

static pid_t paused = -1;

static void cont_redis(void)
{
  if (paused > 0)
    kill(paused, SIGCONT);
}

static int is_late(int i)
{
  for (size_t k = 0; k < sizeof late / sizeof late[0]; k++)
    if (late[k] == i)
      return 1;
  return 0;
}

Test(restarts, redis_sigstop_10s_mid_fires_loses_nothing, .fini = cont_redis)
{
  rs_process_setup();
  struct rs_run run;
  rs_run_init(&run, 90000);
  struct rs_health *h = rs_health_start(world_push_base(), "/health");
  struct rs_client *cs = rs_clients_make(&run, N, 12, 12, world_push_base(), "");
  for (int i = 0; i < N; i++)
    if (!is_late(i))
      rs_client_launch(&cs[i]);
  int up = 0;
  for (long long end = pc_now() + 20000; pc_now() < end; pc_sleep_ms(50)) {
    up = 0;
    for (int i = 0; i < N; i++)
      up += !is_late(i) && atomic_load(&cs[i].ready);
    if (up == N - 5)
      break;
  }
  struct rs_firing *fg = rs_fires_start(&run, up == N - 5 ? FIRES : 0, 2, 10);
  int stopped = -1, acked_at_stop = 0, acked_at_cont = 0, n503_pause = 0, health_pause = 0;
  long long pause_ms = 0, slowest_503_pause = 0;
  if (up == N - 5) {
    rs_fires_wait_acked(fg, AT, 30000);
    pid_t pid = rs_pid("redis/redis.pid");
    int n503 = atomic_load(&fg->n503), answers = h->answers;
    acked_at_stop = atomic_load(&fg->acked);
    long long t0 = pc_now();
    if (pid > 0 && kill(pid, SIGSTOP) == 0) {
      paused = pid;
      stopped = 0;
      pc_sleep_ms(2000);
      for (int i = 0; i < N; i++)
        if (is_late(i))
          rs_client_launch(&cs[i]);
      pc_sleep_ms((int)(t0 + PAUSE_MS - pc_now()));
      kill(pid, SIGCONT);
      paused = -1;
    }
    pause_ms = pc_now() - t0;
    acked_at_cont = atomic_load(&fg->acked);
    n503_pause = atomic_load(&fg->n503) - n503;
    slowest_503_pause = atomic_load(&fg->slowest_503_ms);
    health_pause = h->answers - answers;
  } else {
    for (int i = 0; i < N; i++)
      if (is_late(i))
        rs_client_launch(&cs[i]);
  }
  rs_fires_join(fg);
  rs_end(&run, up == N - 5);
  rs_clients_join(cs, N);
  rs_health_stop(h);
  cr_assert_eq(up, N - 5, "only %d of %d clients connected", up, N - 5);
  cr_assert_eq(stopped, 0, "could not pause Redis");

  long long late_first = 0;
  for (int i = 0; i < N; i++)
    if (is_late(i) && cs[i].first_connect_ms > late_first)
      late_first = cs[i].first_connect_ms;
  char extra[400];
  snprintf(extra, sizeof extra,
           "pause=%lldms acked_at_stop=%d acked_at_cont=%d 503_during_pause=%d "
           "slowest_503=%lldms slowest_fire_answer=%lldms pushd_health_gap_max=%lldms "
           "pushd_health_answers_during_pause=%d pushd_health_non200=%d "
           "late_clients_first_connect_max=%lldms",
           pause_ms, acked_at_stop, acked_at_cont, n503_pause, slowest_503_pause,
           (long long)atomic_load(&fg->slowest_ms), h->max_gap_ms, health_pause, h->non200,
           late_first);
  struct rs_counts k = rs_count("redis-sigstop-10s", &run, fg, cs, N, extra);
  /* the REST side answered (503) while Redis was paused, the daemon too */
  cr_assert_gt(n503_pause, 0, "no fire was answered 503 during the pause");
  cr_assert_gt(health_pause, 0, "the daemon did not answer /health during the pause");
  rs_assert_nothing_lost(&k, &run, cs, N);
  rs_clients_free(cs, N);
  rs_fires_free(fg);
  free(h);
}
