/* bench/publish: publishes events at a steady rate, for fan-out benchmarks.
 *
 *   publish -c CHANNEL -r EVENTS_PER_SECOND -d SECONDS [-s DATA_BYTES] [-n PORT]
 *
 * By default through Redis, with the same Lua script as POST /api/publish
 * (history XADD + PUBLISH), using SORTIE_CONF for Redis: what sortie-pushd
 * and bench/bare.c subscribe to. With -n PORT it POSTs each event instead to
 * nchan on 127.0.0.1:PORT (POST /pub?c=CHANNEL, bench/nchan.conf), on one
 * kept-alive connection, waiting for each answer, on the same schedule.
 *
 * Every event's data is {"p":"<ms>-xxx"}: the wall-clock time (ms) at which
 * it is due by the schedule, padded with x to DATA_BYTES (20, so 28 bytes of
 * JSON), so that bench/fanout times every delivery the same way whatever the
 * server. The time due, not the time sent: a server that keeps the publisher
 * waiting (nchan answers a POST in the worker that fans the message out) is
 * charged the wait, as it would be if the publisher did not wait. Prints how
 * many it published and how long it took. */
#include "redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long long wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

/* The event's data in out (room for 4096 bytes): {"p":"<ms>-xxx"} with
 * `size` characters between the quotes. Returns its length. */
static int event_data(char *out, int size, unsigned long long ms)
{
  int n = snprintf(out, 64, "{\"p\":\"%llu-", ms);
  int pad = size - (n - 6);
  if (pad > 0) {
    memset(out + n, 'x', (size_t)pad);
    n += pad;
  }
  memcpy(out + n, "\"}", 3);
  return n + 2;
}

/* ---- nchan: HTTP POST on one kept-alive connection ---- */

static int http_connect(int port)
{
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (fd < 0)
    return -1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Sends one POST and reads its whole answer (head + Content-Length bytes).
 * Returns the status, or -1 when the connection failed. */
static int http_post(int fd, int port, const char *channel, const char *body, int blen)
{
  char req[4096 + 512];
  int n = snprintf(req, sizeof req,
                   "POST /pub?c=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %d\r\n\r\n%.*s",
                   channel, port, blen, blen, body);
  if (n < 0 || (size_t)n >= sizeof req)
    return -1;
  for (int off = 0; off < n;) {
    ssize_t w = write(fd, req + off, (size_t)(n - off));
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    off += (int)w;
  }
  char buf[8192];
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    len += (size_t)r;
    buf[len] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    if (end == NULL) {
      if (len >= sizeof buf - 1)
        return -1;
      continue;
    }
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    long want = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
    if ((long)(len - (size_t)(end + 4 - buf)) >= want)
      return len > 12 ? atoi(buf + 9) : -1;
  }
}

int main(int argc, char **argv)
{
  const char *channel = "market:BENCH";
  double rate = 10;
  int seconds = 10, size = 20, nchan_port = 0, opt;
  while ((opt = getopt(argc, argv, "c:r:d:s:n:")) != -1) {
    switch (opt) {
    case 'c': channel = optarg; break;
    case 'r': rate = atof(optarg); break;
    case 'd': seconds = atoi(optarg); break;
    case 's': size = atoi(optarg); break;
    case 'n': nchan_port = atoi(optarg); break;
    default:
      fprintf(stderr, "usage: publish -c CHANNEL -r RATE -d SECONDS [-s DATA_BYTES] [-n NCHAN_PORT]\n");
      return 2;
    }
  }
  if (size < 15 || size > 4000)
    size = 20;
  if (rate <= 0)
    rate = 1;
  struct sortie_cfg cfg; /* sortie_redis_new keeps a pointer to it */
  struct sortie_redis *r = NULL;
  int fd = -1;
  if (nchan_port) {
    fd = http_connect(nchan_port);
    if (fd < 0) {
      fprintf(stderr, "publish: cannot connect to nchan on port %d\n", nchan_port);
      return 1;
    }
  } else {
    char err[256];
    if (sortie_cfg_load(&cfg, NULL, err, sizeof err) < 0) {
      fprintf(stderr, "publish: %s\n", err);
      return 1;
    }
    r = sortie_redis_new(&cfg);
  }
  char data[4096];
  long total = (long)(rate * seconds), sent = 0;
  double start = now();
  unsigned long long start_ms = wall_ms();
  for (long i = 0; i < total; i++) {
    double due = start + (double)i / rate;
    double w = due - now();
    if (w > 0)
      usleep((useconds_t)(w * 1e6));
    int n = event_data(data, size, start_ms + (unsigned long long)((double)i * 1000 / rate));
    if (nchan_port) {
      int st = http_post(fd, nchan_port, channel, data, n);
      if (st < 0) {
        fprintf(stderr, "publish: the connection to nchan failed\n");
        break;
      }
      if (st == 201 || st == 202)
        sent++;
      continue;
    }
    const char *av[] = {channel, "tick", data};
    sortie_reply *rep = sortie_redis_script(r, SORTIE_LUA_PUBLISH, 0, 3, av, NULL);
    if (rep && sortie_reply_type(rep) == SORTIE_REPLY_ARRAY)
      sent++;
    sortie_reply_free(rep);
  }
  printf("published=%ld seconds=%.2f\n", sent, now() - start);
  if (r)
    sortie_redis_free(r);
  if (fd >= 0)
    close(fd);
  return 0;
}
