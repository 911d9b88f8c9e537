/* bench/firelat: fire-to-client latency through the whole path.
 *
 *   firelat -a APACHE_PORT -p PUSH_PORT [-q PUSH_PREFIX] -t sse|ws -n SUBSCRIBERS
 *           -s SIGNAL -k SUBSCRIBER_TOKEN -u USER_TOKENS_FILE [-r FIRES_PER_S]
 *           [-d SECONDS]
 *
 * Opens n subscribers on mission:SIGNAL (SSE or WebSocket, straight to the
 * push daemon, or through Apache with -p APACHE_PORT -q /push; SSE through
 * Apache is asked for as HTTP/1.0 so that it comes unchunked), waits until
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

enum { SSE, WS };
#define BUCKET_US 10
#define NBUCKETS 100000 /* 1 s */
#define MAXFIRES 100000

struct conn {
  int fd;
  int state; /* 0 connecting, 1 head sent, 2 streaming, 3 dead */
  int live;
  char *buf;
  size_t len, cap;
};

struct hist {
  uint64_t b[NBUCKETS];
  uint64_t n, over;
};

static int transport, nsubs = 100, duration = 10, apache_port = 8080, push_port = 8081;
static double rate = 10;
static const char *prefix = "", *signal_id, *token, *users_file;
static struct conn *conns;
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

static void send_all(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) {
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
  unsigned char f[600];
  if (n > 500)
    return;
  f[0] = 0x81;
  f[1] = (unsigned char)(0x80 | n);
  unsigned char mask[4] = {0x5a, 0x17, 0xc3, 0x08};
  memcpy(f + 2, mask, 4);
  for (size_t i = 0; i < n; i++)
    f[6 + i] = (unsigned char)msg[i] ^ mask[i % 4];
  send_all(fd, (char *)f, 6 + n);
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

static void sub_parse(struct conn *c)
{
  size_t pos = 0;
  if (c->state == 1) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
      return;
    if (strncmp(c->buf, "HTTP/1.", 7) != 0 ||
        strncmp(c->buf + 8, transport == SSE ? " 200" : " 101", 4) != 0) {
      fprintf(stderr, "firelat: subscriber refused: %.*s\n",
              (int)strcspn(c->buf, "\r"), c->buf);
      c->state = 3;
      ndead++;
      return;
    }
    pos = (size_t)(end - c->buf) + 4;
    c->state = 2;
    if (transport == WS) {
      char sub[300];
      snprintf(sub, sizeof sub, "{\"action\":\"subscribe\",\"channels\":[\"mission:%s\"]}",
               signal_id);
      ws_send_text(c->fd, sub);
    }
  }
  if (transport == SSE) {
    for (;;) {
      char *m = memmem(c->buf + pos, c->len - pos, "\n\n", 2);
      if (m == NULL)
        break;
      char *msg = c->buf + pos;
      size_t mlen = (size_t)(m - msg);
      if (memmem(msg, mlen, "data: ", 6))
        on_event(msg, mlen);
      else if (!c->live && mlen > 4 && memcmp(msg, "id: ", 4) == 0) {
        c->live = 1; /* the id-only message: caught up, live */
        nlive++;
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
        if (!c->live && memmem(p, l, "\"subscribed\"", 12)) {
          c->live = 1;
          nlive++;
        } else {
          on_event(p, l);
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

static void sub_readable(struct conn *c)
{
  for (;;) {
    if (c->cap - c->len < 16384) {
      c->cap = c->cap ? c->cap * 2 : 32768;
      c->buf = realloc(c->buf, c->cap);
    }
    ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (n > 0) {
      c->len += (size_t)n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      break;
    if (c->state != 3) {
      c->state = 3;
      ndead++;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    return;
  }
  sub_parse(c);
}

static void sub_send_head(struct conn *c)
{
  char req[4096];
  int n;
  if (transport == SSE)
    n = snprintf(req, sizeof req,
                 "GET %s/events?channels=mission:%s HTTP/1.%d\r\nHost: 127.0.0.1:%d\r\n"
                 "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
                 prefix, signal_id, prefix[0] ? 0 : 1, push_port, token);
  else
    n = snprintf(req, sizeof req,
                 "GET %s/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 prefix, push_port, token);
  send_all(c->fd, req, (size_t)n);
  c->state = 1;
}

static int tcp_connect(struct sockaddr_in *a, int nonblock)
{
  int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS) {
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
    api_fd = tcp_connect(&api_addr, 0); /* blocking connect on loopback: immediate */
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
  send_all(api_fd, req, (size_t)n);
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
    struct conn *c = evs[i].data.ptr;
    if (c == NULL) {
      if (api_fd >= 0)
        api_readable();
      continue;
    }
    if (c->state == 0 && (evs[i].events & EPOLLOUT)) {
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
      epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
      sub_send_head(c);
    }
    if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
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
    case 'q': prefix = optarg; break;
    case 't': transport = strcmp(optarg, "ws") == 0 ? WS : SSE; break;
    case 'n': nsubs = atoi(optarg); break;
    case 's': signal_id = optarg; break;
    case 'k': token = optarg; break;
    case 'u': users_file = optarg; break;
    case 'r': rate = atof(optarg); break;
    case 'd': duration = atoi(optarg); break;
    default: goto usage;
    }
  }
  if (signal_id == NULL || token == NULL || users_file == NULL || nsubs < 1 || rate <= 0)
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

  for (int i = 0; i < nsubs; i++) {
    struct conn *c = &conns[i];
    c->fd = tcp_connect(&push_addr, 1);
    if (c->fd < 0) {
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
         transport == SSE ? "sse" : "ws", nsubs, ndead, fires, fire_ok, fire_bad,
         fire_ok * nsubs, (unsigned long long)deliver.n, late_or_unknown,
         hist_pct(&deliver, 0.50), hist_pct(&deliver, 0.99), hist_pct(&deliver, 0.99999),
         hist_pct(&answer, 0.50), hist_pct(&answer, 0.99));
  return 0;

usage:
  fprintf(stderr, "usage: firelat -a APACHE_PORT -p PUSH_PORT [-q PREFIX] -t sse|ws -n N "
                  "-s SIGNAL -k TOKEN -u USERS_FILE [-r RATE] [-d SECONDS]\n");
  return 2;
}
