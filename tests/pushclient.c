/* SSE and WebSocket test clients over plain sockets, for the sortie-pushd tests (see pushclient.h). */
#include "pushclient.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

long long pc_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pc_sleep_ms(int ms)
{
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

static int left_ms(long long deadline)
{
  long long l = deadline - pc_now();
  return l < 0 ? 0 : (int)l;
}

static void *xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if (q == NULL) {
    perror("pushclient");
    abort();
  }
  return q;
}

/* grows a byte buffer to hold `need` more bytes plus a NUL */
static void grow(char **b, size_t *cap, size_t len, size_t need)
{
  if (len + need + 1 <= *cap)
    return;
  size_t n = *cap ? *cap : 1024;
  while (n < len + need + 1)
    n *= 2;
  *b = xrealloc(*b, n);
  *cap = n;
}

static void append(char **b, size_t *len, size_t *cap, const void *p, size_t n)
{
  grow(b, cap, *len, n);
  memcpy(*b + *len, p, n);
  *len += n;
  (*b)[*len] = '\0';
}

static void random_bytes(void *p, size_t n)
{
  unsigned char *b = p;
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(b + got, n - got, 0);
    if (r <= 0) {
      for (; got < n; got++)
        b[got] = (unsigned char)rand();
      return;
    }
    got += (size_t)r;
  }
}

/* ---- sockets ---- */

static int parse_base(const char *base, char *host, size_t hn, int *port)
{
  const char *p = strstr(base, "://");
  p = p ? p + 3 : base;
  const char *colon = strchr(p, ':');
  const char *slash = strchr(p, '/');
  if (colon == NULL || (slash && slash < colon))
    return -1;
  size_t l = (size_t)(colon - p);
  if (l >= hn)
    return -1;
  memcpy(host, p, l);
  host[l] = '\0';
  *port = atoi(colon + 1);
  return *port > 0 ? 0 : -1;
}

int pc_connect(const char *base, int rcvbuf, int timeout_ms)
{
  char host[128];
  int port;
  if (parse_base(base, host, sizeof host, &port) < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (strcmp(host, "localhost") == 0)
    snprintf(host, sizeof host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
    return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    if (errno != EINPROGRESS) {
      close(fd);
      return -1;
    }
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t el = sizeof err;
    if (poll(&pf, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 ||
        err != 0) {
      close(fd);
      return -1;
    }
  }
  return fd;
}

/* Sends all of p, also reading into (*in, *inlen) whenever the peer has
 * something, so that neither side can block the other. 0, -1 */
static int send_all(int fd, const void *p, size_t len, int timeout_ms, char **in, size_t *inlen,
                    size_t *incap, int *eof)
{
  long long deadline = pc_now() + timeout_ms;
  size_t off = 0;
  while (off < len) {
    struct pollfd pf = {.fd = fd, .events = POLLOUT | (in ? POLLIN : 0)};
    int r = poll(&pf, 1, left_ms(deadline));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    if ((pf.revents & POLLIN) && in && !*eof) {
      grow(in, incap, *inlen, 65536);
      ssize_t n = recv(fd, *in + *inlen, 65536, 0);
      if (n > 0) {
        *inlen += (size_t)n;
        (*in)[*inlen] = '\0';
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        *eof = 1;
      }
    }
    if (pf.revents & (POLLOUT | POLLERR | POLLHUP)) {
      ssize_t w = send(fd, (const char *)p + off, len - off, MSG_NOSIGNAL);
      if (w > 0)
        off += (size_t)w;
      else if (w < 0 && errno != EAGAIN && errno != EINTR)
        return -1;
    }
  }
  return 0;
}

/* Reads what is there within timeout: >0 bytes, 0 at the timeout, -1 at the
 * end (EOF or error). */
static ssize_t recv_some(int fd, char **b, size_t *len, size_t *cap, int timeout_ms)
{
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  int r;
  do
    r = poll(&pf, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r <= 0)
    return 0;
  grow(b, cap, *len, 65536);
  ssize_t n = recv(fd, *b + *len, 65536, 0);
  if (n > 0) {
    *len += (size_t)n;
    (*b)[*len] = '\0';
    return n;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return 0;
  return -1;
}

char *pc_header(const char *head, const char *name, char *out, size_t n)
{
  size_t nl = strlen(name);
  for (const char *p = head; p && *p;) {
    const char *eol = strstr(p, "\r\n");
    size_t l = eol ? (size_t)(eol - p) : strlen(p);
    if (l > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ' || *v == '\t')
        v++;
      size_t vl = l - (size_t)(v - p);
      while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
      if (vl >= n)
        vl = n - 1;
      memcpy(out, v, vl);
      out[vl] = '\0';
      return out;
    }
    if (!eol)
      break;
    p = eol + 2;
  }
  return NULL;
}

/* Reads a response head into *head; the bytes after it stay in (b, len).
 * 0, -1 */
static int read_head(int fd, char **b, size_t *len, size_t *cap, char **head, int *status,
                     int *eof, long long deadline)
{
  for (;;) {
    char *sep = *b ? strstr(*b, "\r\n\r\n") : NULL;
    if (sep) {
      size_t hl = (size_t)(sep - *b);
      *head = strndup(*b, hl);
      memmove(*b, sep + 4, *len - hl - 4);
      *len -= hl + 4;
      (*b)[*len] = '\0';
      *status = 0;
      sscanf(*head, "HTTP/%*s %d", status);
      return 0;
    }
    if (*eof || *len > 65536)
      return -1;
    int ms = left_ms(deadline);
    if (ms == 0)
      return -1;
    if (recv_some(fd, b, len, cap, ms) < 0)
      *eof = 1;
  }
}

/* chunked decoding, incremental: raw bytes in, body bytes out */
enum { CH_SIZE, CH_DATA, CH_CRLF, CH_END };

static void dechunk(char **raw, size_t *rawlen, int *state, size_t *left, char **out,
                    size_t *outlen, size_t *outcap)
{
  size_t pos = 0;
  while (pos < *rawlen && *state != CH_END) {
    if (*state == CH_SIZE) {
      char *eol = memmem(*raw + pos, *rawlen - pos, "\r\n", 2);
      if (eol == NULL)
        break;
      *left = strtoul(*raw + pos, NULL, 16);
      pos = (size_t)(eol - *raw) + 2;
      *state = *left ? CH_DATA : CH_END;
    } else if (*state == CH_DATA) {
      size_t n = *rawlen - pos < *left ? *rawlen - pos : *left;
      append(out, outlen, outcap, *raw + pos, n);
      pos += n;
      *left -= n;
      if (*left == 0)
        *state = CH_CRLF;
    } else {
      if (*rawlen - pos < 2)
        break;
      pos += 2;
      *state = CH_SIZE;
    }
  }
  memmove(*raw, *raw + pos, *rawlen - pos);
  *rawlen -= pos;
}

/* the rest of a non-stream answer: by Content-Length, chunked or until close */
static void read_body(int fd, const char *head, char **b, size_t *len, size_t *cap, int eof,
                      long long deadline, char **body, size_t *blen)
{
  char v[64];
  long clen = -1;
  int chunked = 0;
  if (pc_header(head, "Content-Length", v, sizeof v))
    clen = atol(v);
  if (pc_header(head, "Transfer-Encoding", v, sizeof v) && strcasecmp(v, "chunked") == 0)
    chunked = 1;
  char *out = NULL;
  size_t olen = 0, ocap = 0;
  int st = CH_SIZE;
  size_t chleft = 0;
  append(&out, &olen, &ocap, "", 0);
  for (;;) {
    if (chunked) {
      dechunk(b, len, &st, &chleft, &out, &olen, &ocap);
      if (st == CH_END)
        break;
    } else if (clen >= 0 && *len >= (size_t)clen) {
      append(&out, &olen, &ocap, *b, (size_t)clen);
      break;
    }
    int ms = left_ms(deadline);
    if (eof || ms == 0) {
      if (!chunked)
        append(&out, &olen, &ocap, *b ? *b : "", *len);
      break;
    }
    if (recv_some(fd, b, len, cap, ms) < 0)
      eof = 1;
  }
  *body = out;
  *blen = olen;
}

static char *host_of(const char *base, char *out, size_t n)
{
  const char *p = strstr(base, "://");
  p = p ? p + 3 : base;
  size_t l = strcspn(p, "/");
  if (l >= n)
    l = n - 1;
  memcpy(out, p, l);
  out[l] = '\0';
  return out;
}

static int send_request(const char *base, const char *path, const char *headers, int rcvbuf,
                        int timeout_ms, const char *more)
{
  int fd = pc_connect(base, rcvbuf, timeout_ms);
  if (fd < 0)
    return -1;
  char host[160];
  size_t n = strlen(path) + (headers ? strlen(headers) : 0) + (more ? strlen(more) : 0) + 400;
  char *req = malloc(n);
  snprintf(req, n, "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n", path,
           host_of(base, host, sizeof host), more ? more : "", headers ? headers : "");
  int eof = 0;
  int rc = send_all(fd, req, strlen(req), timeout_ms, NULL, NULL, NULL, &eof);
  free(req);
  if (rc < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int pc_get_send(const char *base, const char *path, const char *headers, int timeout_ms)
{
  int own = headers && strcasestr(headers, "Connection:") != NULL;
  return send_request(base, path, headers, 0, timeout_ms, own ? NULL : "Connection: close\r\n");
}

int pc_get_finish(int fd, struct pc_resp *out, int timeout_ms)
{
  memset(out, 0, sizeof *out);
  long long deadline = pc_now() + timeout_ms;
  char *b = NULL;
  size_t len = 0, cap = 0;
  int eof = 0;
  append(&b, &len, &cap, "", 0);
  if (read_head(fd, &b, &len, &cap, &out->head, &out->status, &eof, deadline) < 0) {
    free(b);
    close(fd);
    return -1;
  }
  read_body(fd, out->head, &b, &len, &cap, eof, deadline, &out->body, &out->len);
  free(b);
  close(fd);
  return 0;
}

int pc_get(const char *base, const char *path, const char *headers, struct pc_resp *out,
           int timeout_ms)
{
  long long t0 = pc_now();
  int fd = pc_get_send(base, path, headers, timeout_ms);
  if (fd < 0) {
    memset(out, 0, sizeof *out);
    return -1;
  }
  return pc_get_finish(fd, out, left_ms(t0 + timeout_ms));
}

void pc_resp_free(struct pc_resp *r)
{
  free(r->head);
  free(r->body);
  memset(r, 0, sizeof *r);
}

/* ---- raw JSON items ---- */

static const char *skip_value(const char *p)
{
  int depth = 0;
  while (*p) {
    if (*p == '"') {
      for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && p[1])
          p++;
      if (*p)
        p++;
      continue;
    }
    if (*p == '{' || *p == '[')
      depth++;
    else if (*p == '}' || *p == ']') {
      if (depth == 0)
        return p;
      depth--;
    } else if (*p == ',' && depth == 0) {
      return p;
    }
    p++;
  }
  return p;
}

long pc_json_raw_items(const char *json, const char *member, char ***out)
{
  *out = NULL;
  if (json == NULL)
    return -1;
  char key[128];
  snprintf(key, sizeof key, "\"%s\":", member);
  /* the member at depth 1 of the object */
  const char *p = json;
  while (*p && *p != '{')
    p++;
  if (*p != '{')
    return -1;
  p++;
  const char *arr = NULL;
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '\n')
      p++;
    if (*p != '"')
      return -1;
    if (strncmp(p, key, strlen(key)) == 0) {
      arr = p + strlen(key);
      break;
    }
    /* skip this member: its key, ':' and value, up to the ',' */
    p = skip_value(p);
    if (*p != ',')
      return -1;
  }
  if (arr == NULL)
    return -1;
  while (*arr == ' ')
    arr++;
  if (*arr != '[')
    return -1;
  p = arr + 1;
  long n = 0;
  char **v = NULL;
  while (*p == ' ')
    p++;
  while (*p && *p != ']') {
    const char *end = skip_value(p);
    v = xrealloc(v, (size_t)(n + 1) * sizeof *v);
    v[n++] = strndup(p, (size_t)(end - p));
    p = end;
    if (*p == ',')
      p++;
    while (*p == ' ')
      p++;
  }
  *out = v;
  return n;
}

void pc_strv_free(char **v, long n)
{
  for (long i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* ---- SSE ---- */

static void sse_dispatch(struct sse_client *c)
{
  if (!c->f_any) {
    c->curlen = 0;
    if (c->cur_raw)
      c->cur_raw[0] = '\0';
    return;
  }
  if (c->nmsgs == c->capmsgs) {
    c->capmsgs = c->capmsgs ? c->capmsgs * 2 : 16;
    c->msgs = xrealloc(c->msgs, c->capmsgs * sizeof *c->msgs);
  }
  struct sse_msg *m = &c->msgs[c->nmsgs++];
  m->id = c->f_id;
  m->event = c->f_event;
  m->data = c->f_data;
  m->retry = c->f_retry;
  m->raw = strndup(c->cur_raw ? c->cur_raw : "", c->curlen);
  if (m->data)
    c->nevents++;
  if (m->retry >= 0)
    c->retry = m->retry;
  c->f_id = c->f_event = c->f_data = NULL;
  c->f_retry = -1;
  c->f_any = 0;
  c->curlen = 0;
}

static void sse_line(struct sse_client *c, const char *l, size_t n)
{
  if (n == 0) {
    sse_dispatch(c);
    return;
  }
  if (l[0] == ':') {
    c->ncomments++;
    if (n == 4 && memcmp(l, ": hb", 4) == 0)
      c->nheartbeats++;
    return;
  }
  const char *colon = memchr(l, ':', n);
  size_t fl = colon ? (size_t)(colon - l) : n;
  const char *v = colon ? colon + 1 : l + n;
  size_t vl = (size_t)(l + n - v);
  if (vl && *v == ' ') {
    v++;
    vl--;
  }
  if (fl == 4 && memcmp(l, "data", 4) == 0) {
    if (c->f_data == NULL) {
      c->f_data = strndup(v, vl);
    } else {
      size_t ol = strlen(c->f_data);
      c->f_data = xrealloc(c->f_data, ol + vl + 2);
      c->f_data[ol] = '\n';
      memcpy(c->f_data + ol + 1, v, vl);
      c->f_data[ol + 1 + vl] = '\0';
    }
    c->f_any = 1;
  } else if (fl == 2 && memcmp(l, "id", 2) == 0) {
    free(c->f_id);
    c->f_id = strndup(v, vl);
    c->f_any = 1;
  } else if (fl == 5 && memcmp(l, "event", 5) == 0) {
    free(c->f_event);
    c->f_event = strndup(v, vl);
    c->f_any = 1;
  } else if (fl == 5 && memcmp(l, "retry", 5) == 0) {
    c->f_retry = strtol(v, NULL, 10);
    c->f_any = 1;
  }
}

/* parses the complete lines of c->in */
static void sse_parse(struct sse_client *c)
{
  size_t pos = 0;
  while (pos < c->inlen) {
    size_t e = pos;
    while (e < c->inlen && c->in[e] != '\n' && c->in[e] != '\r')
      e++;
    if (e == c->inlen)
      break; /* no line end yet */
    size_t next = e + 1;
    if (c->in[e] == '\r') {
      if (e + 1 == c->inlen && !c->closed)
        break; /* a CR at the end: wait to see whether LF follows */
      if (e + 1 < c->inlen && c->in[e + 1] == '\n')
        next = e + 2;
    }
    append(&c->cur_raw, &c->curlen, &c->curcap, c->in + pos, next - pos);
    sse_line(c, c->in + pos, e - pos);
    pos = next;
  }
  memmove(c->in, c->in + pos, c->inlen - pos);
  c->inlen -= pos;
  if (c->in)
    c->in[c->inlen] = '\0';
}

/* moves raw bytes through the chunk decoder into c->in */
static void sse_take_raw(struct sse_client *c)
{
  if (c->chunked) {
    dechunk(&c->raw, &c->rawlen, &c->chstate, &c->chleft, &c->in, &c->inlen, &c->incap);
    if (c->chstate == CH_END)
      c->closed = 1;
  } else if (c->rawlen) {
    append(&c->in, &c->inlen, &c->incap, c->raw, c->rawlen);
    c->rawlen = 0;
  }
  sse_parse(c);
}

/* one read (up to timeout); 1 if something came, 0 otherwise */
static int sse_pump(struct sse_client *c, int timeout_ms)
{
  if (c->closed || c->fd < 0)
    return 0;
  ssize_t r = recv_some(c->fd, &c->raw, &c->rawlen, &c->rawcap, timeout_ms);
  if (r < 0)
    c->closed = 1;
  sse_take_raw(c);
  return r > 0;
}

struct sse_client *sse_open(const char *base, const char *path, const char *token,
                            const char *last_event_id, const char *extra_headers, int rcvbuf,
                            int timeout_ms)
{
  long long deadline = pc_now() + timeout_ms;
  size_t hn = 256 + (token ? strlen(token) : 0) + (last_event_id ? strlen(last_event_id) : 0) +
              (extra_headers ? strlen(extra_headers) : 0);
  char *h = malloc(hn);
  int o = snprintf(h, hn, "Accept: text/event-stream\r\nCache-Control: no-cache\r\n");
  if (token)
    o += snprintf(h + o, hn - (size_t)o, "Authorization: Bearer %s\r\n", token);
  if (last_event_id)
    o += snprintf(h + o, hn - (size_t)o, "Last-Event-ID: %s\r\n", last_event_id);
  if (extra_headers)
    snprintf(h + o, hn - (size_t)o, "%s", extra_headers);
  int fd = send_request(base, path, h, rcvbuf, timeout_ms, NULL);
  free(h);
  if (fd < 0)
    return NULL;
  struct sse_client *c = calloc(1, sizeof *c);
  c->fd = fd;
  c->retry = -1;
  c->f_retry = -1;
  append(&c->raw, &c->rawlen, &c->rawcap, "", 0);
  int eof = 0;
  if (read_head(fd, &c->raw, &c->rawlen, &c->rawcap, &c->head, &c->status, &eof, deadline) < 0) {
    sse_close(c);
    return NULL;
  }
  char v[64];
  if (pc_header(c->head, "Transfer-Encoding", v, sizeof v) && strcasecmp(v, "chunked") == 0)
    c->chunked = 1;
  if (c->status != 200) {
    size_t bl;
    read_body(fd, c->head, &c->raw, &c->rawlen, &c->rawcap, eof, deadline, &c->body, &bl);
    c->closed = 1;
    return c;
  }
  c->closed = eof;
  sse_take_raw(c);
  return c;
}

size_t sse_read_events(struct sse_client *c, size_t n, int timeout_ms)
{
  long long deadline = pc_now() + timeout_ms;
  while (c->nevents < n && !c->closed) {
    int ms = left_ms(deadline);
    if (ms == 0)
      break;
    sse_pump(c, ms);
  }
  return c->nevents;
}

size_t sse_read_msgs(struct sse_client *c, size_t n, int timeout_ms)
{
  long long deadline = pc_now() + timeout_ms;
  while (c->nmsgs < n && !c->closed) {
    int ms = left_ms(deadline);
    if (ms == 0)
      break;
    sse_pump(c, ms);
  }
  return c->nmsgs;
}

void sse_read_for(struct sse_client *c, int ms)
{
  long long deadline = pc_now() + ms;
  while (!c->closed) {
    int l = left_ms(deadline);
    if (l == 0)
      break;
    sse_pump(c, l);
  }
}

int sse_wait_closed(struct sse_client *c, int timeout_ms)
{
  sse_read_for(c, timeout_ms);
  return c->closed;
}

static const char *find_idonly(const struct sse_client *c)
{
  for (size_t i = 0; i < c->nmsgs; i++)
    if (c->msgs[i].id && !c->msgs[i].data && !c->msgs[i].event)
      return c->msgs[i].id;
  return NULL;
}

const char *sse_wait_idonly(struct sse_client *c, int timeout_ms)
{
  long long deadline = pc_now() + timeout_ms;
  const char *id;
  while ((id = find_idonly(c)) == NULL && !c->closed) {
    int ms = left_ms(deadline);
    if (ms == 0)
      break;
    sse_pump(c, ms);
  }
  return find_idonly(c);
}

const struct sse_msg *sse_event(const struct sse_client *c, size_t i)
{
  for (size_t k = 0; k < c->nmsgs; k++)
    if (c->msgs[k].data && i-- == 0)
      return &c->msgs[k];
  return NULL;
}

const char *sse_last_id(const struct sse_client *c)
{
  for (size_t k = c->nmsgs; k-- > 0;)
    if (c->msgs[k].id)
      return c->msgs[k].id;
  return NULL;
}

void sse_forget(struct sse_client *c)
{
  for (size_t i = 0; i < c->nmsgs; i++) {
    free(c->msgs[i].id);
    free(c->msgs[i].event);
    free(c->msgs[i].data);
    free(c->msgs[i].raw);
  }
  c->nmsgs = c->nevents = 0;
}

int sse_read_now(struct sse_client *c)
{
  return sse_pump(c, 0);
}

void sse_close(struct sse_client *c)
{
  if (c == NULL)
    return;
  if (c->fd >= 0)
    close(c->fd);
  for (size_t i = 0; i < c->nmsgs; i++) {
    free(c->msgs[i].id);
    free(c->msgs[i].event);
    free(c->msgs[i].data);
    free(c->msgs[i].raw);
  }
  free(c->msgs);
  free(c->head);
  free(c->body);
  free(c->raw);
  free(c->in);
  free(c->cur_raw);
  free(c->f_id);
  free(c->f_event);
  free(c->f_data);
  free(c);
}

/* ---- WebSocket ---- */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static void ws_accept_for(const char *key, char out[64])
{
  char buf[128];
  snprintf(buf, sizeof buf, "%s%s", key, ws_guid);
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)buf, strlen(buf), md);
  EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

struct ws_client *ws_open(const char *base, const char *path, const char *token,
                          const char *extra_headers, int rcvbuf, int timeout_ms)
{
  long long deadline = pc_now() + timeout_ms;
  unsigned char nonce[16];
  random_bytes(nonce, sizeof nonce);
  char key[64], want[64];
  EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
  ws_accept_for(key, want);
  size_t hn = 400 + (token ? strlen(token) : 0) + (extra_headers ? strlen(extra_headers) : 0);
  char *h = malloc(hn);
  int o = snprintf(h, hn, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                          "Sec-WebSocket-Version: 13\r\n", key);
  if (token)
    o += snprintf(h + o, hn - (size_t)o, "Authorization: Bearer %s\r\n", token);
  if (extra_headers)
    snprintf(h + o, hn - (size_t)o, "%s", extra_headers);
  int fd = send_request(base, path, h, rcvbuf, timeout_ms, NULL);
  free(h);
  if (fd < 0)
    return NULL;
  struct ws_client *c = calloc(1, sizeof *c);
  c->fd = fd;
  c->close_code = -1;
  char *b = NULL;
  size_t len = 0, cap = 0;
  append(&b, &len, &cap, "", 0);
  int eof = 0;
  if (read_head(fd, &b, &len, &cap, &c->head, &c->status, &eof, deadline) < 0) {
    free(b);
    ws_close(c);
    return NULL;
  }
  if (c->status != 101) {
    size_t bl;
    read_body(fd, c->head, &b, &len, &cap, eof, deadline, &c->body, &bl);
    free(b);
    c->closed = 1;
    return c;
  }
  char got[64];
  c->accept_ok = pc_header(c->head, "Sec-WebSocket-Accept", got, sizeof got) != NULL &&
                 strcmp(got, want) == 0;
  c->in = b;
  c->inlen = len;
  c->incap = cap;
  c->closed = eof;
  return c;
}

static void frame_header(unsigned char *h, size_t *hl, int fin, int opcode, int masked,
                         size_t len)
{
  h[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x7f)); /* RSV bits pass through */
  unsigned char m = masked ? 0x80 : 0;
  if (len < 126) {
    h[1] = (unsigned char)(m | len);
    *hl = 2;
  } else if (len < 65536) {
    h[1] = m | 126;
    h[2] = (unsigned char)(len >> 8);
    h[3] = (unsigned char)len;
    *hl = 4;
  } else {
    h[1] = m | 127;
    for (int i = 0; i < 8; i++)
      h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    *hl = 10;
  }
}

int ws_send_raw(struct ws_client *c, const void *p, size_t len, int timeout_ms)
{
  if (c == NULL || c->fd < 0)
    return -1;
  int eof = c->closed;
  int rc = send_all(c->fd, p, len, timeout_ms, &c->in, &c->inlen, &c->incap, &eof);
  c->closed = eof;
  return rc;
}

int ws_send_frame(struct ws_client *c, int fin, int opcode, int masked, const void *p, size_t len,
                  int timeout_ms)
{
  unsigned char h[14];
  size_t hl;
  frame_header(h, &hl, fin, opcode, masked, len);
  unsigned char *f = malloc(hl + 4 + len + 1);
  memcpy(f, h, hl);
  size_t o = hl;
  if (masked) {
    unsigned char mk[4];
    random_bytes(mk, 4);
    memcpy(f + o, mk, 4);
    o += 4;
    for (size_t i = 0; i < len; i++)
      f[o + i] = ((const unsigned char *)p)[i] ^ mk[i % 4];
  } else if (len) {
    memcpy(f + o, p, len);
  }
  int rc = ws_send_raw(c, f, o + len, timeout_ms);
  free(f);
  return rc;
}

int ws_send_text(struct ws_client *c, const char *text)
{
  return ws_send_frame(c, 1, 1, 1, text, strlen(text), 5000);
}

/* parses one whole frame at the start of c->in: 1 (f filled), 0 (incomplete) */
static int take_frame(struct ws_client *c, struct ws_frame *f)
{
  if (c->inlen < 2)
    return 0;
  const unsigned char *b = (const unsigned char *)c->in;
  size_t hl = 2;
  uint64_t len = b[1] & 0x7f;
  int masked = (b[1] & 0x80) != 0;
  if (len == 126) {
    if (c->inlen < 4)
      return 0;
    len = ((uint64_t)b[2] << 8) | b[3];
    hl = 4;
  } else if (len == 127) {
    if (c->inlen < 10)
      return 0;
    len = 0;
    for (int i = 0; i < 8; i++)
      len = (len << 8) | b[2 + i];
    hl = 10;
  }
  if (masked)
    hl += 4;
  if (c->inlen < hl || c->inlen - hl < len)
    return 0;
  f->fin = (b[0] & 0x80) != 0;
  f->opcode = b[0] & 0x0f;
  f->masked = masked;
  f->len = (size_t)len;
  f->data = malloc(f->len + 1);
  memcpy(f->data, b + hl, f->len);
  if (masked)
    for (size_t i = 0; i < f->len; i++)
      f->data[i] ^= b[hl - 4 + i % 4];
  f->data[f->len] = '\0';
  memmove(c->in, c->in + hl + len, c->inlen - hl - (size_t)len);
  c->inlen -= hl + (size_t)len;
  return 1;
}

static void note_frame(struct ws_client *c, const struct ws_frame *f)
{
  if (f->opcode == 8) {
    if (f->len >= 2) {
      c->close_code = (f->data[0] << 8) | f->data[1];
      size_t rl = f->len - 2 < sizeof c->close_reason - 1 ? f->len - 2 : sizeof c->close_reason - 1;
      memcpy(c->close_reason, f->data + 2, rl);
      c->close_reason[rl] = '\0';
    } else {
      c->close_code = 1005;
    }
  } else if (f->opcode == 9) {
    c->npings++;
    if (!c->closed)
      ws_send_frame(c, 1, 10, 1, f->data, f->len, 1000);
  }
}

int ws_recv_frame(struct ws_client *c, struct ws_frame *f, int timeout_ms)
{
  memset(f, 0, sizeof *f);
  if (c == NULL || c->fd < 0)
    return -1;
  long long deadline = pc_now() + timeout_ms;
  for (;;) {
    if (take_frame(c, f)) {
      note_frame(c, f);
      return 1;
    }
    if (c->closed)
      return -1;
    int ms = left_ms(deadline);
    if (ms == 0)
      return 0;
    if (recv_some(c->fd, &c->in, &c->inlen, &c->incap, ms) < 0)
      c->closed = 1;
  }
}

void ws_frame_free(struct ws_frame *f)
{
  free(f->data);
  memset(f, 0, sizeof *f);
}

static void keep_text(struct ws_client *c, const char *p, size_t n)
{
  if (c->ntexts == c->captexts) {
    c->captexts = c->captexts ? c->captexts * 2 : 16;
    c->texts = xrealloc(c->texts, c->captexts * sizeof *c->texts);
  }
  c->texts[c->ntexts++] = strndup(p, n);
}

/* one frame into the text log (reassembling fragments): 1 frame, 0 timeout, -1 end */
static int ws_pump(struct ws_client *c, int timeout_ms)
{
  struct ws_frame f;
  int r = ws_recv_frame(c, &f, timeout_ms);
  if (r <= 0)
    return r;
  if (f.opcode == 1 || f.opcode == 0) {
    if (f.opcode == 1)
      c->fragop = 1, c->fraglen = 0;
    if (c->fragop == 1) {
      c->frag = xrealloc(c->frag, c->fraglen + f.len + 1);
      memcpy(c->frag + c->fraglen, f.data, f.len);
      c->fraglen += f.len;
      if (f.fin) {
        keep_text(c, c->frag, c->fraglen);
        c->fragop = 0;
        c->fraglen = 0;
      }
    }
  }
  int closing = f.opcode == 8;
  ws_frame_free(&f);
  return closing ? -1 : 1;
}

size_t ws_read_texts(struct ws_client *c, size_t n, int timeout_ms)
{
  long long deadline = pc_now() + timeout_ms;
  while (c && c->ntexts < n) {
    int ms = left_ms(deadline);
    if (ms == 0 || ws_pump(c, ms) < 0)
      break;
  }
  return c ? c->ntexts : 0;
}

const char *ws_next_text(struct ws_client *c, int timeout_ms)
{
  if (c == NULL)
    return NULL;
  if (ws_read_texts(c, c->next + 1, timeout_ms) <= c->next)
    return NULL;
  return c->texts[c->next++];
}

json_object *ws_next_json(struct ws_client *c, int timeout_ms)
{
  const char *t = ws_next_text(c, timeout_ms);
  return t ? json_tokener_parse(t) : NULL;
}

json_object *ws_next_type(struct ws_client *c, const char *type, int timeout_ms)
{
  long long deadline = pc_now() + timeout_ms;
  for (;;) {
    json_object *o = ws_next_json(c, left_ms(deadline));
    if (o == NULL)
      return NULL;
    json_object *t;
    if (json_object_object_get_ex(o, "type", &t) && strcmp(json_object_get_string(t), type) == 0)
      return o;
    json_object_put(o);
    if (left_ms(deadline) == 0)
      return NULL;
  }
}

int ws_wait_close(struct ws_client *c, int timeout_ms)
{
  if (c == NULL)
    return -1;
  long long deadline = pc_now() + timeout_ms;
  while (c->close_code < 0) {
    int ms = left_ms(deadline);
    if (ms == 0)
      return -1;
    int r = ws_pump(c, ms);
    if (r < 0 && c->close_code < 0)
      return 0; /* the connection ended without a close frame */
  }
  return c->close_code;
}

int ws_wait_eof(struct ws_client *c, int timeout_ms)
{
  long long deadline = pc_now() + timeout_ms;
  while (!c->closed) {
    int ms = left_ms(deadline);
    if (ms == 0)
      return 0;
    /* keep frames out of the way without interpreting them further */
    if (recv_some(c->fd, &c->in, &c->inlen, &c->incap, ms) < 0)
      c->closed = 1;
    if (c->inlen > (1u << 24))
      c->inlen = 0;
  }
  return 1;
}

void ws_close(struct ws_client *c)
{
  if (c == NULL)
    return;
  if (c->fd >= 0)
    close(c->fd);
  for (size_t i = 0; i < c->ntexts; i++)
    free(c->texts[i]);
  free(c->texts);
  free(c->head);
  free(c->body);
  free(c->in);
  free(c->frag);
  free(c);
}
