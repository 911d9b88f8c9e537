/* Half-open requests up to the worker's cap (push.max_pending, here 40) and
 * past it: while they are held the cap is what they cost; once they are
 * gone the worker must take new connections again, at once (a worker that
 * stopped accepting for good after such a flood was seen in the field). The
 * held connections are cut by the clients, then by the daemon's own
 * connection timeout. One line on stderr, "COUNTS pending: ...". */
#include <sys/socket.h>
#include <unistd.h>

#include "../integration/test_pushd_util.h"

SORTIE_WORLD_CONF("push.workers = 1\n"
                  "push.max_pending = 40\n");

#define HALF 120 /* three times the cap */

static int health_ok(int timeout_ms)
{
  struct pc_resp r;
  int ok = pc_get(world_push_base(), "/health", NULL, &r, timeout_ms) == 0 && r.status == 200;
  pc_resp_free(&r);
  return ok;
}

/* opens n connections that send half a request head and stop */
static void half_open(int *fd, int n)
{
  static const char part[] = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  for (int i = 0; i < n; i++) {
    fd[i] = pc_connect(world_push_base(), 0, T_SHORT);
    cr_assert_geq(fd[i], 0, "connect %d", i);
    cr_assert_eq(send(fd[i], part, sizeof part - 1, MSG_NOSIGNAL), (ssize_t)(sizeof part - 1));
  }
}

Test(pending, a_worker_takes_connections_again_after_a_flood_of_half_open_requests,
     .timeout = 120)
{
  cr_assert(health_ok(T_SHORT), "not healthy to begin with");
  int fd[HALF];
  for (int round = 0; round < 3; round++) {
    half_open(fd, HALF);
    pc_sleep_ms(300);
    /* the flood is held: the cap is reached (a request may wait) */
    int during = health_ok(500);
    for (int i = 0; i < HALF; i++)
      close(fd[i]);
    /* gone: the worker answers again */
    long long t0 = pc_now();
    int after = 0;
    while (!after && pc_now() - t0 < 30000) /* a bound against a hang */
      after = health_ok(T_SHORT);
    long long took = pc_now() - t0;
    fprintf(stderr, "COUNTS pending: round %d: %d half-open requests (cap 40): /health while "
            "held %s; after they were closed answered=%d in %lld ms\n",
            round, HALF, during ? "answered" : "unanswered", after, took);
    cr_assert(after, "round %d: the worker never took a connection again", round);
  }
}
