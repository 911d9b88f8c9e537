/* bench/bare: the limit row of the side-by-side fan-out benchmark: a push
 * server reduced to one write() per delivery. It is the floor, not a
 * product: no token, no history, no resume, no limits but one.
 *
 *   bare -p PORT -r REDIS_PORT -c REDIS_CHANNEL [-w WORKERS] [-P PIDFILE]
 *
 * Listens on 127.0.0.1:PORT. Any GET with "Upgrade: websocket" gets a 101
 * (the accept key computed as RFC 6455 asks), any other GET an SSE head and
 * a first comment (": hi"). Every worker process subscribes on its own to
 * REDIS_CHANNEL on 127.0.0.1:REDIS_PORT, the Redis pub/sub channel that
 * Sortie's publish script writes to (so bench/publish, unchanged, feeds it
 * and sortie-pushd alike), and for each message makes its two frames once
 * (SSE: "data: <message>\n\n"; WebSocket: one text frame) and writes the
 * right one to each of its subscribers with one write(). Only what a full
 * socket refuses is queued, and written when it drains; a subscriber whose
 * queue passes 4 MiB is closed.
 *
 * The master forks the workers (each accepts from the one listening socket),
 * writes PIDFILE, and on SIGTERM or SIGINT stops them and exits. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEAD_MAX 4096
#define QUEUE_MAX (4u << 20)
#define WORKERS_MAX 64

struct sub {
  int fd;
  int ws;        /* a WebSocket; else SSE */
  int streaming; /* the head was answered: the subscriber gets every message */
  int idx;       /* its place in the worker's list of streaming subscribers */
  char *head;    /* the request head while it arrives */
  size_t hlen;
  char *q; /* what a full socket refused, in order */
  size_t qlen, qcap;
};

static int lfd, rfd, epfd;
static struct sub **subs; /* the streaming subscribers */
static int nsubs, subs_cap;
static char *rbuf; /* what Redis sent, not parsed yet */
static size_t rlen, rcap;
static char redis_tag; /* epoll's data.ptr for the Redis and listening sockets */
static char listen_tag;

static void sub_close(struct sub *s)
{
  if (s->streaming) {
    subs[s->idx] = subs[--nsubs];
    subs[s->idx]->idx = s->idx;
  }
  close(s->fd); /* also takes it out of the epoll set */
  free(s->head);
  free(s->q);
  free(s);
}

/* Appends n bytes to s's queue and asks for writability; closes s past the
 * cap. Returns -1 when s is closed. */
static int sub_queue(struct sub *s, const char *p, size_t n)
{
  if (s->qlen + n > QUEUE_MAX) {
    sub_close(s);
    return -1;
  }
  if (s->qlen + n > s->qcap) {
    s->qcap = (s->qlen + n) * 2;
    s->q = realloc(s->q, s->qcap);
  }
  memcpy(s->q + s->qlen, p, n);
  s->qlen += n;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
  epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
  return 0;
}

/* One write of a frame to s (or into its queue while the queue is not
 * empty). Returns -1 when s is closed. */
static int sub_send(struct sub *s, const char *p, size_t n)
{
  if (s->qlen)
    return sub_queue(s, p, n);
  ssize_t w = write(s->fd, p, n);
  if (w == (ssize_t)n)
    return 0;
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR) {
      sub_close(s);
      return -1;
    }
    w = 0;
  }
  return sub_queue(s, p + w, n - (size_t)w);
}

static void sub_drain(struct sub *s)
{
  ssize_t w = write(s->fd, s->q, s->qlen);
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR)
      sub_close(s);
    return;
  }
  memmove(s->q, s->q + w, s->qlen - (size_t)w);
  s->qlen -= (size_t)w;
  if (s->qlen == 0) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
  }
}

/* The answer to a whole request head: a 101 or an SSE head. */
static void sub_answer(struct sub *s)
{
  char out[512];
  int n;
  const char *key = strcasestr(s->head, "\r\nSec-WebSocket-Key:");
  if (strcasestr(s->head, "\r\nUpgrade: websocket") && key) {
    key += 20;
    while (*key == ' ')
      key++;
    size_t klen = strcspn(key, "\r\n ");
    char in[256];
    unsigned char sha[SHA_DIGEST_LENGTH], acc[64];
    if (klen > 100) {
      sub_close(s);
      return;
    }
    snprintf(in, sizeof in, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)klen, key);
    SHA1((const unsigned char *)in, strlen(in), sha);
    EVP_EncodeBlock(acc, sha, SHA_DIGEST_LENGTH);
    n = snprintf(out, sizeof out,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n\r\n",
                 (char *)acc);
    s->ws = 1;
  } else {
    n = snprintf(out, sizeof out,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
                 ": hi\n\n");
  }
  free(s->head);
  s->head = NULL;
  if (nsubs == subs_cap) {
    subs_cap = subs_cap ? subs_cap * 2 : 1024;
    subs = realloc(subs, (size_t)subs_cap * sizeof *subs);
  }
  s->streaming = 1;
  s->idx = nsubs;
  subs[nsubs++] = s;
  sub_send(s, out, (size_t)n);
}

/* Readable: the request head, then whatever the client sends (a WebSocket's
 * pongs or close), read and dropped; the end of the stream closes s. */
static void sub_read(struct sub *s)
{
  char tmp[4096];
  for (;;) {
    char *into = s->streaming ? tmp : s->head + s->hlen;
    size_t room = s->streaming ? sizeof tmp : HEAD_MAX - 1 - s->hlen;
    ssize_t r = read(s->fd, into, room);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (r <= 0) {
      sub_close(s);
      return;
    }
    if (s->streaming)
      continue;
    s->hlen += (size_t)r;
    s->head[s->hlen] = 0;
    if (strstr(s->head, "\r\n\r\n")) {
      sub_answer(s);
      return;
    }
    if (s->hlen >= HEAD_MAX - 1) {
      sub_close(s);
      return;
    }
  }
}

static void accept_all(void)
{
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sub *s = calloc(1, sizeof *s);
    s->fd = fd;
    s->head = malloc(HEAD_MAX);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  }
}

/* One message: both frames made once, then one write per subscriber. */
static void fan_out(const char *msg, size_t len)
{
  static char *sse, *ws;
  static size_t cap;
  if (len + 16 > cap) {
    cap = len + 16;
    sse = realloc(sse, cap);
    ws = realloc(ws, cap);
  }
  memcpy(sse, "data: ", 6);
  memcpy(sse + 6, msg, len);
  memcpy(sse + 6 + len, "\n\n", 2);
  size_t h = 2;
  ws[0] = (char)0x81;
  if (len < 126) {
    ws[1] = (char)len;
  } else if (len < 65536) {
    ws[1] = 126;
    ws[2] = (char)(len >> 8);
    ws[3] = (char)len;
    h = 4;
  } else {
    return;
  }
  memcpy(ws + h, msg, len);
  /* from the end: a subscriber closed here takes the last one's place */
  for (int i = nsubs - 1; i >= 0; i--) {
    struct sub *s = subs[i];
    if (s->ws)
      sub_send(s, ws, h + len);
    else
      sub_send(s, sse, len + 8);
  }
}

/* A RESP bulk string or integer at *p (end e): sets *str and *slen for a bulk
 * string; returns 1, 0 when incomplete, -1 when not understood. */
static int resp_item(const char **p, const char *e, const char **str, size_t *slen)
{
  const char *crlf = memmem(*p, (size_t)(e - *p), "\r\n", 2);
  if (crlf == NULL)
    return 0;
  if (**p == ':') {
    *str = NULL;
    *p = crlf + 2;
    return 1;
  }
  if (**p != '$')
    return -1;
  long n = strtol(*p + 1, NULL, 10);
  if (n < 0 || crlf + 2 + n + 2 > e)
    return n < 0 ? -1 : 0;
  *str = crlf + 2;
  *slen = (size_t)n;
  *p = crlf + 2 + n + 2;
  return 1;
}

/* Parses every whole push in rbuf: ["message", channel, payload] goes out. */
static int redis_parse(void)
{
  const char *p = rbuf, *e = rbuf + rlen;
  while (p < e) {
    const char *q = p, *crlf = memmem(q, (size_t)(e - q), "\r\n", 2);
    if (crlf == NULL)
      break;
    if (*q != '*')
      return -1;
    long n = strtol(q + 1, NULL, 10);
    q = crlf + 2;
    const char *item[3] = {0};
    size_t ilen[3] = {0};
    int whole = 1;
    for (long i = 0; i < n; i++) {
      const char *s = NULL;
      size_t sl = 0;
      int r = resp_item(&q, e, &s, &sl);
      if (r < 0)
        return -1;
      if (r == 0) {
        whole = 0;
        break;
      }
      if (i < 3) {
        item[i] = s;
        ilen[i] = sl;
      }
    }
    if (!whole)
      break;
    if (n == 3 && item[0] && ilen[0] == 7 && memcmp(item[0], "message", 7) == 0 && item[2])
      fan_out(item[2], ilen[2]);
    p = q;
  }
  memmove(rbuf, p, (size_t)(e - p));
  rlen = (size_t)(e - p);
  return 0;
}

static void redis_read(void)
{
  for (;;) {
    if (rcap - rlen < 65536) {
      rcap = rcap ? rcap * 2 : 262144;
      rbuf = realloc(rbuf, rcap);
    }
    ssize_t r = read(rfd, rbuf + rlen, rcap - rlen);
    if (r > 0) {
      rlen += (size_t)r;
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
      break;
    fprintf(stderr, "bare: Redis closed the subscription\n");
    exit(1);
  }
  if (redis_parse() < 0) {
    fprintf(stderr, "bare: Redis sent what this does not parse\n");
    exit(1);
  }
}

/* Connects to Redis and subscribes, blocking until Redis confirms. */
static int redis_subscribe(int port, const char *channel)
{
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
    return -1;
  char cmd[600];
  int n = snprintf(cmd, sizeof cmd, "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", strlen(channel), channel);
  if (n < 0 || (size_t)n >= sizeof cmd || write(fd, cmd, (size_t)n) != n)
    return -1;
  char ack[1024];
  size_t got = 0;
  while (got < sizeof ack - 1) { /* *3 $9 subscribe $len channel :1 */
    ssize_t r = read(fd, ack + got, sizeof ack - 1 - got);
    if (r <= 0)
      return -1;
    got += (size_t)r;
    ack[got] = 0;
    const char *c = strstr(ack, "\r\n:");
    if (c && strstr(c + 3, "\r\n"))
      break;
  }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static void worker(int redis_port, const char *channel)
{
  rfd = redis_subscribe(redis_port, channel);
  if (rfd < 0) {
    fprintf(stderr, "bare: cannot subscribe on Redis port %d\n", redis_port);
    exit(1);
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &redis_tag};
  epoll_ctl(epfd, EPOLL_CTL_ADD, rfd, &ev);
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.ptr = &listen_tag;
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event evs[512];
  for (;;) {
    int n = epoll_wait(epfd, evs, 512, -1);
    /* subscribers first, Redis last: a subscriber closed in this turn is
     * never touched after it is freed, because only Redis's messages and
     * the subscriber's own event reach a subscriber */
    int redis_ready = 0;
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &redis_tag) {
        redis_ready = 1;
      } else if (p == &listen_tag) {
        accept_all();
      } else {
        struct sub *s = p;
        if (evs[i].events & EPOLLOUT && s->qlen)
          sub_drain(s); /* may close s: then its EPOLLIN is dropped below */
        else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
          sub_read(s);
      }
    }
    if (redis_ready)
      redis_read();
  }
}

static pid_t kids[WORKERS_MAX];
static int nkids;
static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
  (void)sig;
  stopping = 1;
}

int main(int argc, char **argv)
{
  int port = 0, redis_port = 6379, workers = 1, opt;
  const char *channel = NULL, *pidfile = NULL;
  while ((opt = getopt(argc, argv, "p:r:c:w:P:")) != -1) {
    switch (opt) {
    case 'p': port = atoi(optarg); break;
    case 'r': redis_port = atoi(optarg); break;
    case 'c': channel = optarg; break;
    case 'w': workers = atoi(optarg); break;
    case 'P': pidfile = optarg; break;
    default:
      fprintf(stderr, "usage: bare -p PORT -r REDIS_PORT -c REDIS_CHANNEL [-w WORKERS] [-P PIDFILE]\n");
      return 2;
    }
  }
  if (port <= 0 || channel == NULL || workers < 1 || workers > WORKERS_MAX) {
    fprintf(stderr, "bare: -p, -c and 1..%d workers are needed\n", WORKERS_MAX);
    return 2;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
    fprintf(stderr, "bare: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
    return 1;
  }
  for (int i = 0; i < workers; i++) {
    pid_t p = fork();
    if (p == 0) {
      signal(SIGTERM, SIG_DFL);
      signal(SIGINT, SIG_DFL);
      worker(redis_port, channel);
    }
    if (p > 0)
      kids[nkids++] = p;
  }
  struct sigaction sa = {.sa_handler = on_stop};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  if (pidfile) {
    FILE *f = fopen(pidfile, "w");
    if (f) {
      fprintf(f, "%d\n", (int)getpid());
      fclose(f);
    }
  }
  /* the master: until told to stop or a worker ends */
  while (!stopping) {
    int st;
    pid_t p = wait(&st);
    if (p > 0) {
      fprintf(stderr, "bare: worker %d ended\n", (int)p);
      break;
    }
  }
  for (int i = 0; i < nkids; i++)
    kill(kids[i], SIGTERM);
  while (wait(NULL) > 0)
    ;
  if (pidfile)
    unlink(pidfile);
  return 0;
}
