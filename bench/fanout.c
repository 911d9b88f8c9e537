/* bench/fanout: many subscribers on one channel, for measuring a push server.
 *
 *   fanout -h HOST -p PORT -t sse|ws -n SUBSCRIBERS -c CHANNEL -k TOKEN
 *          [-d SECONDS] [-i] [-q PATH_PREFIX] [-b SOURCE_ADDRESS]
 *
 * Opens n connections (SSE: GET /events?channels=C&token=K; WS: GET /ws, then
 * a subscribe message), waits until all are subscribed, then counts every
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

enum { SSE, WS };

struct conn {
  int fd;
  int state; /* 0 connecting, 1 head sent, 2 streaming, 3 dead */
  int subscribed;
  char *buf;
  size_t len, cap;
};

static int transport, nsubs, duration = 10, idle;
static const char *host = "127.0.0.1", *channel = "market:BENCH", *token = "", *prefix = "";
static const char *source;
static struct sockaddr_in source_addr;
static int port = 8081;
static struct conn *conns;
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

static void send_all(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EAGAIN) {
        struct pollfd pf = {fd, POLLOUT, 0};
        poll(&pf, 1, 1000);
        continue;
      }
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

static void ws_send_text(int fd, const char *msg)
{
  size_t n = strlen(msg);
  unsigned char h[8];
  size_t hl = 2;
  h[0] = 0x81;
  if (n < 126) {
    h[1] = (unsigned char)(0x80 | n);
  } else {
    h[1] = 0x80 | 126;
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    hl = 4;
  }
  unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  char *f = malloc(hl + 4 + n);
  memcpy(f, h, hl);
  memcpy(f + hl, mask, 4);
  for (size_t i = 0; i < n; i++)
    f[hl + 4 + i] = (char)(msg[i] ^ mask[i % 4]);
  send_all(fd, f, hl + 4 + n);
  free(f);
}

static void send_head(struct conn *c)
{
  char req[4096];
  int n;
  if (transport == SSE)
    n = snprintf(req, sizeof req,
                 "GET %s/events?channels=%s&token=%s HTTP/1.1\r\nHost: %s:%d\r\n"
                 "Accept: text/event-stream\r\n\r\n",
                 prefix, channel, token, host, port);
  else
    n = snprintf(req, sizeof req,
                 "GET %s/ws?token=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n",
                 prefix, token, host, port);
  send_all(c->fd, req, (size_t)n);
  c->state = 1;
}

/* Consumes what is parseable in c->buf. */
static void parse(struct conn *c)
{
  size_t pos = 0;
  if (c->state == 1) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
      return;
    if (strncmp(c->buf, transport == SSE ? "HTTP/1.1 200" : "HTTP/1.1 101", 12) != 0) {
      fprintf(stderr, "fanout: refused: %.*s\n", (int)(strchr(c->buf, '\r') - c->buf), c->buf);
      c->state = 3;
      ndead++;
      return;
    }
    pos = (size_t)(end - c->buf) + 4;
    c->state = 2;
    if (transport == WS) {
      char sub[512];
      snprintf(sub, sizeof sub, "{\"action\":\"subscribe\",\"channels\":[\"%s\"]}", channel);
      ws_send_text(c->fd, sub);
    }
  }
  if (transport == SSE) {
    /* messages end with a blank line; a data: line carrying "id":" counts */
    for (;;) {
      char *m = memmem(c->buf + pos, c->len - pos, "\n\n", 2);
      if (m == NULL)
        break;
      size_t mlen = (size_t)(m - (c->buf + pos));
      char *msg = c->buf + pos;
      char *d = memmem(msg, mlen, "data: {\"id\":\"", 13);
      if (d)
        record(d + 13);
      else if (!c->subscribed && memmem(msg, mlen, "id: ", 4) == msg) {
        c->subscribed = 1; /* the id-only message: caught up, live */
        nsubscribed++;
      }
      pos += mlen + 2;
    }
  } else {
    while (c->len - pos >= 2) {
      unsigned char *f = (unsigned char *)c->buf + pos;
      size_t l = f[1] & 0x7f, h = 2;
      if (l == 126) {
        if (c->len - pos < 4)
          break;
        l = (size_t)f[2] << 8 | f[3];
        h = 4;
      } else if (l == 127) {
        if (c->len - pos < 10)
          break;
        l = 0;
        for (int i = 0; i < 8; i++)
          l = l << 8 | f[2 + i];
        h = 10;
      }
      if (c->len - pos < h + l)
        break;
      char *p = (char *)f + h;
      if ((f[0] & 0x0f) == 1) {
        if (l > 7 && memcmp(p, "{\"id\":\"", 7) == 0)
          record(p + 7);
        else if (!c->subscribed && l > 20 && memmem(p, l, "\"subscribed\"", 12)) {
          c->subscribed = 1;
          nsubscribed++;
        }
      } else if ((f[0] & 0x0f) == 9) {
        unsigned char pong[6] = {0x8a, 0x80, 0, 0, 0, 0};
        send_all(c->fd, (char *)pong, 6);
      }
      pos += h + l;
    }
  }
  memmove(c->buf, c->buf + pos, c->len - pos);
  c->len -= pos;
}

static void on_readable(struct conn *c)
{
  for (;;) {
    if (c->cap - c->len < 65536) {
      c->cap = c->cap ? c->cap * 2 : 131072;
      c->buf = realloc(c->buf, c->cap);
    }
    ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (n > 0) {
      bytes_in += n;
      c->len += (size_t)n;
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      if (c->state != 3) {
        c->state = 3;
        ndead++;
      }
      epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
      close(c->fd);
      return;
    }
    break;
  }
  parse(c);
  /* keep idle memory small in the client too */
  if (c->len == 0 && c->cap > 131072) {
    free(c->buf);
    c->buf = NULL;
    c->cap = 0;
  }
}

static int open_one(struct conn *c, struct sockaddr_in *a)
{
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0)
    return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (source && bind(c->fd, (struct sockaddr *)&source_addr, sizeof source_addr) < 0) {
    close(c->fd);
    return -1;
  }
  if (connect(c->fd, (struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS) {
    close(c->fd);
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
  c->state = 0;
  return 0;
}

static void pump(int ms)
{
  struct epoll_event evs[512];
  int n = epoll_wait(epfd, evs, 512, ms);
  for (int i = 0; i < n; i++) {
    struct conn *c = evs[i].data.ptr;
    if (c->state == 0 && (evs[i].events & EPOLLOUT)) {
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
      epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
      send_head(c);
    }
    if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
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
    case 't': transport = strcmp(optarg, "ws") == 0 ? WS : SSE; break;
    case 'n': nsubs = atoi(optarg); break;
    case 'c': channel = optarg; break;
    case 'k': token = optarg; break;
    case 'd': duration = atoi(optarg); break;
    case 'i': idle = 1; break;
    case 'q': prefix = optarg; break;
    case 'b': source = optarg; break;
    default:
      fprintf(stderr, "usage: fanout -h HOST -p PORT -t sse|ws -n N -c CHANNEL -k TOKEN [-d S] [-i]\n");
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
  inet_pton(AF_INET, host, &a.sin_addr);
  if (source) {
    source_addr = (struct sockaddr_in){.sin_family = AF_INET};
    if (inet_pton(AF_INET, source, &source_addr.sin_addr) != 1) {
      fprintf(stderr, "fanout: bad source address %s\n", source);
      return 2;
    }
  }
  uint64_t t0 = wall_ms();
  for (int i = 0; i < nsubs; i++) {
    if (open_one(&conns[i], &a) < 0) {
      fprintf(stderr, "fanout: connect %d: %s\n", i, strerror(errno));
      return 1;
    }
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
         transport == SSE ? "sse" : "ws", nsubs, nsubscribed, ndead, received,
         (double)received / (double)duration, (unsigned long long)pct(0.50), (unsigned long long)pct(0.90),
         (unsigned long long)pct(0.99), (unsigned long long)pct(0.99999));
  return 0;
}
