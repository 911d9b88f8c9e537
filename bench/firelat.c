/* bench/firelat: fire-to-client latency through the whole path.
 *
 *   firelat -a APACHE_PORT -p PUSH_PORT [-q PUSH_PREFIX] -t sse|ws -n SUBSCRIBERS
 *           -s SIGNAL -k SUBSCRIBER_TOKEN -u USER_TOKENS_FILE [-r FIRES_PER_S]
 *           [-d SECONDS]
 *
 * Opens n subscribers on mission:SIGNAL (SSE or WebSocket, straight to the
 * push daemon, or through Apache with -p APACHE_PORT -q /push), waits until
 * all are live, then fires the signal r times a second over REST
 * (POST /api/fire through Apache, one keep-alive connection, each fire by
 * the next user of the tokens file) and times, for every subscriber, the
 * fire_count_update that each fire causes: receipt minus the moment the
 * request was written. The signal must be fresh (fire_count 0), so that fire
 * k is the one whose count is k.
 *
 * Also times each fire's own answer (request written -> 201 read): the peer
 * the delivery latency is read against. One thread, one epoll loop;
 * microsecond histograms. Output: one line of key=value pairs. */
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "streamclient.h"

#define BUCKET_US 10
#define NBUCKETS 100000 /* 1 s */
#define MAXFIRES 100000

struct hist {
  uint64_t b[NBUCKETS];
  uint64_t n, over;
};

static int nsubs = 100, duration = 10, apache_port = 8080, push_port = 8081;
static double rate = 10;
static const char *signal_id, *users_file;
static struct sc_target target = {.prefix = ""};
static struct sc_conn *conns;
static int epfd, nlive, ndead;
static struct sockaddr_in push_addr, api_addr;
static uint64_t sent_at[MAXFIRES + 1]; /* fire k -> when its request was written, µs */
static struct hist deliver, answer;

/* the firing connection */
static int api_fd = -1;
static char api_buf[65536];
static size_t api_len;
static int api_busy; /* a request is out */
static long fires, fire_ok, fire_bad, late_or_unknown;
static char **users;
static int nusers;

static uint64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void hist_add(struct hist *h, uint64_t us)
{
  uint64_t i = us / BUCKET_US;
  if (i >= NBUCKETS) {
    h->over++;
    i = NBUCKETS - 1;
  }
  h->b[i]++;
  h->n++;
}

static double hist_pct(const struct hist *h, double p)
{
  uint64_t want = (uint64_t)(p * (double)h->n), acc = 0;
  for (uint64_t i = 0; i < NBUCKETS; i++) {
    acc += h->b[i];
    if (acc > want)
      return (double)((i + 1) * BUCKET_US) / 1000.0;
  }
  return (double)NBUCKETS * BUCKET_US / 1000.0;
}

/* An event for this benchmark: its "count" names the fire that caused it. */
static void on_event(const char *p, size_t n)
{
  uint64_t t = now_us();
  if (memmem(p, n, "\"fire_count_update\"", 19) == NULL)
    return;
  char *c = memmem(p, n, "\"count\":", 8);
  if (c == NULL)
    return;
  long k = strtol(c + 8, NULL, 10);
  if (k < 1 || k > fires || sent_at[k] == 0) {
    late_or_unknown++;
    return;
  }
  hist_add(&deliver, t - sent_at[k]);
}

/* an SSE message: an event, or the id-only message that says the stream is
 * caught up and live */
static void sse_message(void *ctx, const char *msg, size_t len)
{
  struct sc_conn *c = ctx;
  if (memmem(msg, len, "data: ", 6)) {
    on_event(msg, len);
  } else if (!c->live && len > 4 && memcmp(msg, "id: ", 4) == 0) {
    c->live = 1;
    nlive++;
  }
}

static void ws_message(void *ctx, const char *p, size_t len)
{
  struct sc_conn *c = ctx;
  if (!c->live && memmem(p, len, "\"subscribed\"", 12)) {
    c->live = 1;
    nlive++;
  } else {
    on_event(p, len);
  }
}

static void sub_readable(struct sc_conn *c)
{
  int open = sc_read(c, 16384, NULL);
  if (sc_parse(c, &target, "firelat: subscriber", target.ws ? ws_message : sse_message, c) < 0 ||
      !open)
    ndead++;
}

/* a blocking connection (to Apache, on loopback: immediate) */
static int tcp_connect(const struct sockaddr_in *a)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (const struct sockaddr *)a, sizeof *a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* ---- the firing side: one keep-alive HTTP/1.1 connection to Apache ---- */

static void api_close(void)
{
  if (api_fd >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, api_fd, NULL);
    close(api_fd);
  }
  api_fd = -1;
  api_len = 0;
}

static void fire_one(void)
{
  if (fires >= MAXFIRES || fires >= nusers)
    return;
  if (api_fd < 0) {
    api_fd = tcp_connect(&api_addr);
    if (api_fd < 0) {
      fire_bad++;
      return;
    }
    fcntl(api_fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, api_fd, &ev);
  }
  char body[256], req[2048];
  int bl = snprintf(body, sizeof body, "{\"signal_id\":\"%s\",\"timestamp\":%ld}", signal_id,
                    (long)time(NULL));
  int n = snprintf(req, sizeof req,
                   "POST /api/fire HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                   apache_port, users[fires], bl, body);
  fires++;
  sent_at[fires] = now_us();
  sc_send_all(api_fd, req, (size_t)n);
  api_busy = 1;
}

/* Reads the answer to the fire that is out; returns when it is whole. */
static void api_readable(void)
{
  int eof = 0;
  for (;;) {
    ssize_t n = read(api_fd, api_buf + api_len, sizeof api_buf - 1 - api_len);
    if (n > 0) {
      api_len += (size_t)n;
      if (api_len < sizeof api_buf - 1)
        continue;
      break;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      break;
    eof = 1; /* closed by Apache (keep-alive limit): the next fire reconnects */
    break;
  }
  api_buf[api_len] = '\0';
  char *end = strstr(api_buf, "\r\n\r\n");
  size_t want = 0;
  if (end) {
    char *cl = strcasestr(api_buf, "\r\nContent-Length:");
    char *te = strcasestr(api_buf, "\r\nTransfer-Encoding: chunked");
    if (te && te < end) { /* the body ends with the zero-length chunk */
      char *z = strstr(end + 2, "\r\n0\r\n\r\n");
      if (z)
        want = (size_t)(z - api_buf) + 7;
    } else {
      want = (size_t)(end - api_buf) + 4 + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
      if (api_len < want)
        want = 0;
    }
  }
  if (want > 0) { /* the answer is whole */
    if (strncmp(api_buf, "HTTP/1.1 201", 12) == 0) {
      fire_ok++;
      hist_add(&answer, now_us() - sent_at[fires]);
    } else {
      fire_bad++;
      fprintf(stderr, "firelat: fire %ld: %.*s\n", fires, (int)strcspn(api_buf, "\r"), api_buf);
    }
    if (strcasestr(api_buf, "\r\nConnection: close") != NULL)
      eof = 1;
    memmove(api_buf, api_buf + want, api_len - want);
    api_len -= want;
    api_busy = 0;
  }
  if (eof) {
    if (api_busy) { /* closed before the answer was whole */
      fprintf(stderr, "firelat: fire %ld: connection closed before the answer\n", fires);
      fire_bad++;
      api_busy = 0;
    }
    api_close();
  }
}

static void pump(int ms)
{
  struct epoll_event evs[256];
  int n = epoll_wait(epfd, evs, 256, ms);
  for (int i = 0; i < n; i++) {
    struct sc_conn *c = evs[i].data.ptr;
    if (c == NULL) {
      if (api_fd >= 0)
        api_readable();
      continue;
    }
    if (c->state == SC_CONNECTING && (evs[i].events & EPOLLOUT)) {
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
      epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
      sc_send_head(c, &target);
    }
    if (c->state != SC_DEAD && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
      sub_readable(c);
  }
}

static void load_users(void)
{
  FILE *f = fopen(users_file, "r");
  if (f == NULL) {
    perror(users_file);
    exit(1);
  }
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '\0')
      continue;
    users = realloc(users, (size_t)(nusers + 1) * sizeof *users);
    users[nusers++] = strdup(line);
  }
  fclose(f);
}

int main(int argc, char **argv)
{
  int opt;
  while ((opt = getopt(argc, argv, "a:p:q:t:n:s:k:u:r:d:")) != -1) {
    switch (opt) {
    case 'a': apache_port = atoi(optarg); break;
    case 'p': push_port = atoi(optarg); break;
    case 'q': target.prefix = optarg; break;
    case 't': target.ws = strcmp(optarg, "ws") == 0; break;
    case 'n': nsubs = atoi(optarg); break;
    case 's': signal_id = optarg; break;
    case 'k': target.token = optarg; break;
    case 'u': users_file = optarg; break;
    case 'r': rate = atof(optarg); break;
    case 'd': duration = atoi(optarg); break;
    default: goto usage;
    }
  }
  if (signal_id == NULL || target.token == NULL || users_file == NULL || nsubs < 1 || rate <= 0)
    goto usage;
  load_users();
  if ((double)nusers < rate * duration) {
    fprintf(stderr, "firelat: %d user tokens for %.0f fires\n", nusers, rate * duration);
    return 1;
  }
  conns = calloc((size_t)nsubs, sizeof *conns);
  epfd = epoll_create1(0);
  push_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)push_port)};
  api_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)apache_port)};
  inet_pton(AF_INET, "127.0.0.1", &push_addr.sin_addr);
  inet_pton(AF_INET, "127.0.0.1", &api_addr.sin_addr);

  char channel[300], host[64];
  snprintf(channel, sizeof channel, "mission:%s", signal_id);
  snprintf(host, sizeof host, "127.0.0.1:%d", push_port);
  target.channel = channel;
  target.host = host;
  for (int i = 0; i < nsubs; i++) {
    struct sc_conn *c = &conns[i];
    if (sc_connect(c, &push_addr, NULL) < 0) {
      perror("firelat: connect");
      return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
  }
  uint64_t t0 = now_us();
  while (nlive + ndead < nsubs && now_us() - t0 < 30000000)
    pump(100);
  if (nlive < nsubs) {
    fprintf(stderr, "firelat: only %d of %d subscribers live\n", nlive, nsubs);
    return 1;
  }

  long total = (long)(rate * duration);
  uint64_t start = now_us(), gap = (uint64_t)(1e6 / rate);
  while (fires < total) {
    uint64_t due = start + (uint64_t)fires * gap, t = now_us();
    if (api_busy && t - sent_at[fires] > 5000000) { /* no answer in 5 s */
      fprintf(stderr, "firelat: fire %ld: no answer\n", fires);
      fire_bad++;
      api_busy = 0;
      api_close();
    }
    if (t >= due && !api_busy) {
      fire_one();
      continue;
    }
    int wait = t >= due ? 1 : (int)((due - t + 999) / 1000);
    pump(wait);
  }
  uint64_t g = now_us();
  while (now_us() - g < 1000000)
    pump(50);

  printf("transport=%s subscribers=%d dead=%d fires=%ld fire_201=%ld fire_bad=%ld "
         "expected=%ld received=%llu unknown=%ld "
         "deliver_p50_ms=%.2f deliver_p99_ms=%.2f deliver_max_ms=%.2f "
         "answer_p50_ms=%.2f answer_p99_ms=%.2f\n",
         target.ws ? "ws" : "sse", nsubs, ndead, fires, fire_ok, fire_bad,
         fire_ok * nsubs, (unsigned long long)deliver.n, late_or_unknown,
         hist_pct(&deliver, 0.50), hist_pct(&deliver, 0.99), hist_pct(&deliver, 0.99999),
         hist_pct(&answer, 0.50), hist_pct(&answer, 0.99));
  return 0;

usage:
  fprintf(stderr, "usage: firelat -a APACHE_PORT -p PUSH_PORT [-q PREFIX] -t sse|ws -n N "
                  "-s SIGNAL -k TOKEN -u USERS_FILE [-r RATE] [-d SECONDS]\n");
  return 2;
}
