/* bench/streamclient.h: the subscriber side that the benchmark clients
 * (fanout.c, firelat.c) share: one non-blocking connection to the push
 * daemon (straight or through Apache's /push/) or to a peer server with one
 * plain URL per channel (nchan, bench/bare.c), its request, its reading, and
 * cutting what it receives into SSE messages or WebSocket frames, each given
 * to the caller. Header-only: each benchmark program is a single file. */
#ifndef BENCH_STREAMCLIENT_H
#define BENCH_STREAMCLIENT_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* what a stream sent: an SSE message (text up to its blank line) or the
 * payload of a WebSocket text frame */
typedef void sc_message_fn(void *ctx, const char *msg, size_t len);

enum sc_state { SC_CONNECTING, SC_HEAD_SENT, SC_STREAMING, SC_DEAD };

struct sc_conn {
  int fd;
  enum sc_state state;
  int live; /* subscribed: set by the caller's message function */
  char *buf;
  size_t len, cap;
};

/* What every subscriber of one program asks for. */
struct sc_target {
  int ws;              /* WebSocket, else SSE */
  const char *prefix;  /* "" straight to the daemon, "/push" through Apache */
  const char *host;    /* the Host header's value */
  const char *channel; /* one channel */
  const char *token;
  /* NULL for sortie-pushd; else the peer's URL path of the channel (nchan's
   * "/sub?c=CHANNEL"): asked for with GET, as SSE or as a WebSocket, with no
   * token and no subscribe message (the URL is the subscription) */
  const char *url;
};

/* Writes all n bytes, waiting while the socket is full. */
static void sc_send_all(int fd, const char *p, size_t n)
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

/* One masked text frame (a client's frames must be masked), up to 64 KiB. */
static void sc_ws_send_text(int fd, const char *msg)
{
  static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  unsigned char f[8 + 65536];
  size_t n = strlen(msg), h = 2;
  if (n > 65535)
    return;
  f[0] = 0x81;
  if (n < 126) {
    f[1] = (unsigned char)(0x80 | n);
  } else {
    f[1] = 0x80 | 126;
    f[2] = (unsigned char)(n >> 8);
    f[3] = (unsigned char)n;
    h = 4;
  }
  memcpy(f + h, mask, 4);
  for (size_t i = 0; i < n; i++)
    f[h + 4 + i] = (unsigned char)msg[i] ^ mask[i % 4];
  sc_send_all(fd, (char *)f, h + 4 + n);
}

/* The answer's head: -1 not whole yet, 0 not the status wanted (" 200",
 * " 101"; the refusal is printed), else the bytes it takes. */
static long sc_head(const char *who, const char *buf, size_t len, const char *status)
{
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  if (end == NULL)
    return -1;
  if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 8, status, 4) != 0) {
    fprintf(stderr, "%s: refused: %.*s\n", who, (int)strcspn(buf, "\r"), buf);
    return 0;
  }
  return end - buf + 4;
}

/* Calls fn for every whole SSE message (text up to a blank line) in buf;
 * returns the bytes consumed. */
static size_t sc_sse_messages(const char *buf, size_t len, sc_message_fn *fn, void *ctx)
{
  size_t pos = 0;
  for (;;) {
    const char *m = memmem(buf + pos, len - pos, "\n\n", 2);
    if (m == NULL)
      return pos;
    size_t mlen = (size_t)(m - (buf + pos));
    fn(ctx, buf + pos, mlen);
    pos += mlen + 2;
  }
}

/* Calls fn for every whole text frame in buf (a server's frames are not
 * masked) and answers a ping on fd; returns the bytes consumed. */
static size_t sc_ws_frames(int fd, const char *buf, size_t len, sc_message_fn *fn, void *ctx)
{
  size_t pos = 0;
  while (len - pos >= 2) {
    const unsigned char *f = (const unsigned char *)buf + pos;
    size_t l = f[1] & 0x7f, h = 2;
    if (l == 126) {
      if (len - pos < 4)
        break;
      l = (size_t)f[2] << 8 | f[3];
      h = 4;
    } else if (l == 127) {
      if (len - pos < 10)
        break;
      l = 0;
      for (int i = 0; i < 8; i++)
        l = l << 8 | f[2 + i];
      h = 10;
    }
    if (len - pos < h + l)
      break;
    if ((f[0] & 0x0f) == 1) {
      fn(ctx, (const char *)f + h, l);
    } else if ((f[0] & 0x0f) == 9) {
      static const unsigned char pong[6] = {0x8a, 0x80, 0, 0, 0, 0};
      sc_send_all(fd, (const char *)pong, 6);
    }
    pos += h + l;
  }
  return pos;
}

/* A non-blocking connection to `to`, from `from` when not NULL. */
static int sc_connect(struct sc_conn *c, const struct sockaddr_in *to,
                      const struct sockaddr_in *from)
{
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0)
    return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if ((from && bind(c->fd, (const struct sockaddr *)from, sizeof *from) < 0) ||
      (connect(c->fd, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS)) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  c->state = SC_CONNECTING;
  return 0;
}

/* The request, once connected. SSE through Apache is asked for as HTTP/1.0,
 * so that it comes unchunked. */
static void sc_send_head(struct sc_conn *c, const struct sc_target *t)
{
  char req[4096];
  int n;
  if (t->url && t->ws)
    n = snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 t->url, t->host);
  else if (t->url)
    n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n",
                 t->url, t->host);
  else if (t->ws)
    n = snprintf(req, sizeof req,
                 "GET %s/ws HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 t->prefix, t->host, t->token);
  else
    n = snprintf(req, sizeof req,
                 "GET %s/events?channels=%s HTTP/1.%d\r\nHost: %s\r\n"
                 "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
                 t->prefix, t->channel, t->prefix[0] ? 0 : 1, t->host, t->token);
  if (n > 0 && (size_t)n < sizeof req)
    sc_send_all(c->fd, req, (size_t)n);
  c->state = SC_HEAD_SENT;
}

/* Reads all the socket holds (`chunk` bytes of room at least). Returns 1
 * while the stream is open; 0 once it is closed or failed: the descriptor is
 * then closed, and so out of any epoll set. */
static int sc_read(struct sc_conn *c, size_t chunk, long long *bytes_in)
{
  for (;;) {
    if (c->cap - c->len < chunk) {
      c->cap = c->cap ? c->cap * 2 : 2 * chunk;
      c->buf = realloc(c->buf, c->cap);
    }
    ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (n > 0) {
      c->len += (size_t)n;
      if (bytes_in)
        *bytes_in += n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return 1;
    close(c->fd);
    c->fd = -1;
    c->state = SC_DEAD;
    return 0;
  }
}

/* Parses what c->buf holds: the head (and then, on a WebSocket to
 * sortie-pushd, the subscribe message), then every whole message, each given
 * to fn; keeps the rest. Returns -1 when the head refused the stream. */
static int sc_parse(struct sc_conn *c, const struct sc_target *t, const char *who,
                    sc_message_fn *fn, void *ctx)
{
  size_t pos = 0;
  if (c->state == SC_HEAD_SENT) {
    long h = sc_head(who, c->buf, c->len, t->ws ? " 101" : " 200");
    if (h < 0)
      return 0;
    if (h == 0) {
      close(c->fd);
      c->fd = -1;
      c->state = SC_DEAD;
      return -1;
    }
    pos = (size_t)h;
    c->state = SC_STREAMING;
    if (t->ws && !t->url) {
      char sub[512];
      snprintf(sub, sizeof sub, "{\"action\":\"subscribe\",\"channels\":[\"%s\"]}", t->channel);
      sc_ws_send_text(c->fd, sub);
    }
  }
  if (t->ws)
    pos += sc_ws_frames(c->fd, c->buf + pos, c->len - pos, fn, ctx);
  else
    pos += sc_sse_messages(c->buf + pos, c->len - pos, fn, ctx);
  memmove(c->buf, c->buf + pos, c->len - pos);
  c->len -= pos;
  return 0;
}

#endif
