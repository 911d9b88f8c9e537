/* A daemon reached without a proxy: one source address (127.0.0.2) opens
 * twice push.max_conn_per_ip (here 30) half-open requests. The ones past the
 * cap are closed at once; other addresses (127.0.0.1) are answered while
 * they are held; the held ones are closed once push.header_timeout_s (here
 * 5) passes without a byte; and a long-poll that waits longer than that
 * (12 s) is answered at its own timeout, not cut: a waiting poll is not a
 * stalled request. One line on
 * stderr, "COUNTS perip: ...". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../integration/test_pushd_util.h"

SORTIE_WORLD_CONF("push.workers = 1\n"
                  "push.max_conn_per_ip = 30\n"
                  "push.header_timeout_s = 5\n");

#define CAP 30
#define N (2 * CAP)

/* connects to the daemon from source address `src` */
static int connect_from(const char *src)
{
  int port = 0;
  sscanf(world_push_base(), "http://127.0.0.1:%d", &port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET};
  inet_pton(AF_INET, src, &a.sin_addr);
  struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &d.sin_addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      connect(fd, (struct sockaddr *)&d, sizeof d) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* how many of fds[0..n) the daemon closes within ms, stopping early once
 * `enough` are (0: all of them) (each looked at until it is closed); those
 * closed get fd -1 in `fds` after being closed here */
static int closed_among(int *fds, int n, int ms, int enough)
{
  long long end = pc_now() + ms;
  int closed = 0;
  char b[256];
  for (;;) {
    struct pollfd p[N];
    int open = 0;
    for (int i = 0; i < n; i++) {
      p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
      open += fds[i] >= 0;
    }
    if (open == 0 || pc_now() >= end || (enough > 0 && closed >= enough))
      break;
    if (poll(p, (nfds_t)n, 50) <= 0)
      continue;
    for (int i = 0; i < n; i++) {
      if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t r = recv(fds[i], b, sizeof b, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        close(fds[i]);
        fds[i] = -1;
        closed++;
      }
    }
  }
  return closed;
}

static int health_ok(void)
{
  struct pc_resp r;
  int ok = pc_get(world_push_base(), "/health", NULL, &r, T_SHORT) == 0 && r.status == 200;
  pc_resp_free(&r);
  return ok;
}

Test(perip, one_address_past_its_cap_is_refused_others_are_served_stalled_heads_time_out,
     .timeout = 60)
{
  static const char part[] = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  int fd[N];
  for (int i = 0; i < N; i++) {
    fd[i] = connect_from("127.0.0.2");
    cr_assert_geq(fd[i], 0, "connect %d from 127.0.0.2: %s", i, strerror(errno));
    send(fd[i], part, sizeof part - 1, MSG_NOSIGNAL);
  }
  /* past the cap: closed at once (the kernel accepted them; the daemon
   * refuses them as it takes them): waited for until N - CAP are, up to 4 s,
   * which only has to stay under the 5 s header timeout that closes the rest */
  int refused = closed_among(fd, N, 4000, N - CAP);
  int others = health_ok();
  /* the held ones: closed once they stay silent past the header timeout */
  long long t0 = pc_now();
  int timed_out = closed_among(fd, N, 20000, 0);
  long long took = pc_now() - t0;
  for (int i = 0; i < N; i++)
    if (fd[i] >= 0)
      close(fd[i]);
  /* and the address is served again once they are gone */
  int again = connect_from("127.0.0.2");
  cr_assert_geq(again, 0);
  static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  send(again, req, sizeof req - 1, MSG_NOSIGNAL);
  char buf[64] = "";
  struct pollfd p = {.fd = again, .events = POLLIN};
  poll(&p, 1, T_SHORT);
  ssize_t r = recv(again, buf, sizeof buf - 1, MSG_DONTWAIT);
  close(again);
  fprintf(stderr,
          "COUNTS perip: %d half-open requests from 127.0.0.2 (cap %d): %d closed at once | "
          "127.0.0.1 answered while held: %s | the held ones closed by the header timeout "
          "(5 s): %d of %d, the last %lld ms after the check began | 127.0.0.2 answered afterwards: %s\n",
          N, CAP, refused, others ? "yes" : "no", timed_out, N - refused, took,
          r > 0 && strncmp(buf, "HTTP/1.1 200", 12) == 0 ? "yes" : "no");
  cr_expect_eq(refused, N - CAP, "%d of %d past the cap were refused", refused, N - CAP);
  cr_expect(others, "another address was not answered while one held its cap");
  cr_expect_eq(timed_out, N - refused, "%d of %d stalled heads were closed", timed_out,
               N - refused);
  cr_expect(r > 0 && strncmp(buf, "HTTP/1.1 200", 12) == 0, "afterwards: %s", buf);
}

Test(perip, a_long_poll_waiting_past_the_header_timeout_is_answered_not_cut, .timeout = 30)
{
  char *tok = token_for("perip-poller", "user");
  const char *ch = chan("market");
  char *cur = cursor_now(ch);
  char path[256];
  snprintf(path, sizeof path, "/poll?channels=%s&cursor=%s&timeout=12", ch, cur);
  free(cur);
  long long t0 = pc_now();
  struct pc_resp r;
  char *auth = strf("Authorization: Bearer %s\r\n", tok);
  int rc = pc_get(world_push_base(), path, auth, &r, 25000);
  free(auth);
  long long took = pc_now() - t0;
  fprintf(stderr, "COUNTS perip: a long-poll of 12 s under a 5 s header timeout: status %d "
          "after %lld ms\n", rc == 0 ? r.status : -1, took);
  cr_expect_eq(rc, 0, "the poll was cut: no answer");
  cr_expect_eq(r.status, 200, "%s", r.body);
  pc_resp_free(&r);
  free(tok);
}
