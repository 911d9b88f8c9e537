/* bench/fanout: many subscribers on one channel, for measuring a push server.
 *
 *   fanout -h HOST -p PORT -t sse|ws -n SUBSCRIBERS -c CHANNEL -k TOKEN
 *          [-d SECONDS] [-i] [-q PATH_PREFIX] [-b SOURCE_ADDRESS]
 *
 * Opens n connections (SSE: GET /events?channels=C; WS: GET /ws, then a
 * subscribe message; the token in an Authorization header), waits until all are subscribed, then counts every
 * event received for -d seconds and the latency of each: receipt time minus
 * the publish time carried in the event id ("<ms>-<seq>"). With -i it only
 * holds the connections (idle) until stdin closes, printing "ready" once all
 * are open. Output: one line of key=value pairs. -b binds the client side to
 * another loopback address (127.0.0.2, ...): one source address has only
 * about 28,000 ports towards one server port.
 *
 * One epoll loop, non-blocking sockets; connections are opened in bursts so
 * the server's listen queue is not overrun. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "streamclient.h"

static int nsubs, duration = 10, idle;
static const char *host = "127.0.0.1", *source;
static int port = 8081;
static struct sc_target target = {.prefix = "", .channel = "market:BENCH", .token = ""};
static struct sc_conn *conns;
static int epfd;
static long long received, bytes_in;
static int nsubscribed, ndead;
static uint64_t *hist; /* latency histogram, 1 ms buckets */
#define HMAX 60000

static uint64_t wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void record(const char *id_start)
{
  unsigned long long ms = strtoull(id_start, NULL, 10);
  if (ms == 0)
    return;
  uint64_t now = wall_ms();
  uint64_t lat = now > ms ? now - ms : 0;
  if (lat >= HMAX)
    lat = HMAX - 1;
  hist[lat]++;
  received++;
}

/* an SSE message: an event (its id carries the publish time), or the id-only
 * message that says the stream is caught up and live */
static void sse_message(void *ctx, const char *msg, size_t len)
{
  struct sc_conn *c = ctx;
  const char *d = memmem(msg, len, "data: {\"id\":\"", 13);
  if (d) {
    record(d + 13);
  } else if (!c->live && len > 4 && memcmp(msg, "id: ", 4) == 0) {
    c->live = 1;
    nsubscribed++;
  }
}

static void ws_message(void *ctx, const char *p, size_t len)
{
  struct sc_conn *c = ctx;
  if (len > 7 && memcmp(p, "{\"id\":\"", 7) == 0) {
    record(p + 7);
  } else if (!c->live && memmem(p, len, "\"subscribed\"", 12)) {
    c->live = 1;
    nsubscribed++;
  }
}

static void on_readable(struct sc_conn *c)
{
  int open = sc_read(c, 65536, &bytes_in);
  if (sc_parse(c, &target, "fanout", target.ws ? ws_message : sse_message, c) < 0 || !open) {
    ndead++;
    return;
  }
  /* keep idle memory small in the client too */
  if (c->len == 0 && c->cap > 131072) {
    free(c->buf);
    c->buf = NULL;
    c->cap = 0;
  }
}

static void pump(int ms)
{
  struct epoll_event evs[512];
  int n = epoll_wait(epfd, evs, 512, ms);
  for (int i = 0; i < n; i++) {
    struct sc_conn *c = evs[i].data.ptr;
    if (c->state == SC_CONNECTING && (evs[i].events & EPOLLOUT)) {
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
      epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
      sc_send_head(c, &target);
    }
    if (c->state != SC_DEAD && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
      on_readable(c);
  }
}

static uint64_t pct(double p)
{
  uint64_t want = (uint64_t)(p * (double)received), acc = 0;
  for (uint64_t i = 0; i < HMAX; i++) {
    acc += hist[i];
    if (acc > want)
      return i;
  }
  return HMAX;
}

int main(int argc, char **argv)
{
  int opt;
  while ((opt = getopt(argc, argv, "h:p:t:n:c:k:d:iq:b:")) != -1) {
    switch (opt) {
    case 'h': host = optarg; break;
    case 'p': port = atoi(optarg); break;
    case 't': target.ws = strcmp(optarg, "ws") == 0; break;
    case 'n': nsubs = atoi(optarg); break;
    case 'c': target.channel = optarg; break;
    case 'k': target.token = optarg; break;
    case 'd': duration = atoi(optarg); break;
    case 'i': idle = 1; break;
    case 'q': target.prefix = optarg; break;
    case 'b': source = optarg; break;
    default:
      fprintf(stderr, "usage: fanout -h HOST -p PORT -t sse|ws -n N -c CHANNEL -k TOKEN [-d S] "
                      "[-i] [-q PREFIX] [-b SOURCE]\n");
      return 2;
    }
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  hist = calloc(HMAX, sizeof *hist);
  conns = calloc((size_t)nsubs, sizeof *conns);
  epfd = epoll_create1(0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  struct sockaddr_in from = {.sin_family = AF_INET};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
      (source && inet_pton(AF_INET, source, &from.sin_addr) != 1)) {
    fprintf(stderr, "fanout: bad address\n");
    return 2;
  }
  char host_port[300];
  snprintf(host_port, sizeof host_port, "%s:%d", host, port);
  target.host = host_port;
  uint64_t t0 = wall_ms();
  for (int i = 0; i < nsubs; i++) {
    if (sc_connect(&conns[i], &a, source ? &from : NULL) < 0) {
      fprintf(stderr, "fanout: connect %d: %s\n", i, strerror(errno));
      return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &conns[i]};
    epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev);
    if (i % 200 == 199)
      pump(1);
  }
  while (nsubscribed + ndead < nsubs && wall_ms() - t0 < 120000)
    pump(100);
  uint64_t t_sub = wall_ms() - t0;
  if (idle) {
    printf("ready subscribed=%d dead=%d connect_ms=%llu\n", nsubscribed, ndead,
           (unsigned long long)t_sub);
    fflush(stdout);
    struct pollfd pf = {0, POLLIN, 0};
    for (;;) {
      pump(50);
      if (poll(&pf, 1, 0) > 0) {
        char b[64];
        if (read(0, b, sizeof b) <= 0)
          break;
      }
    }
    return 0;
  }
  printf("ready subscribed=%d dead=%d connect_ms=%llu\n", nsubscribed, ndead,
         (unsigned long long)t_sub);
  fflush(stdout);
  received = 0;
  memset(hist, 0, HMAX * sizeof *hist);
  uint64_t start = wall_ms();
  while (wall_ms() - start < (uint64_t)duration * 1000)
    pump(50);
  /* a short grace period for events published at the very end */
  uint64_t g = wall_ms();
  while (wall_ms() - g < 1000)
    pump(50);
  printf("transport=%s subscribers=%d subscribed=%d dead=%d received=%lld rate=%.0f/s "
         "p50_ms=%llu p90_ms=%llu p99_ms=%llu max_ms=%llu\n",
         target.ws ? "ws" : "sse", nsubs, nsubscribed, ndead, received,
         (double)received / (double)duration, (unsigned long long)pct(0.50), (unsigned long long)pct(0.90),
         (unsigned long long)pct(0.99), (unsigned long long)pct(0.99999));
  return 0;
}
