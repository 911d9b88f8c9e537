/* The HTTP side of the daemon, on libmicrohttpd in the worker's own loop (its
 * epoll fd sits inside ours). libmicrohttpd parses every request and answers
 * the short ones (/health, /metrics, errors, long-polls). A stream (SSE, or a
 * WebSocket handshake) is checked here (method, Origin, token, channels,
 * per-user limit), then its socket is taken over: dup() it, return MHD_NO so
 * libmicrohttpd forgets the connection, and serve it from client.c.
 *
 * Why the takeover: libmicrohttpd allows an "upgrade" only for 101 responses,
 * and holds a memory pool per connection; an event stream is a plain 200 that
 * lasts hours. Taking the socket lets every stream share one writev path and
 * cost a few hundred bytes when idle. It relies on MHD_USE_TURBO, with which
 * libmicrohttpd closes a connection without shutdown(2), so our duplicate
 * stays open (tests/integration/test_pushd_*.c would catch a change). */
#include "http.h"
#include "clients.h"
#include "frame.h"
#include "json.h"
#include "limit.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const struct sortie_cfg *cfg;
static struct MHD_Daemon *mhd;
static struct sortie_loop *http_loop;
static struct sortie_io mhd_io;
static struct sortie_timer mhd_timer;
static int kicked;
static uint64_t req_serial;

/* What we know about a stream request between libmicrohttpd's calls. */
struct req {
  const struct pd_transport *tp;
  int phase;   /* 0: checking the per-user limit, 1: allowed, 2: refused */
  struct sortie_identity who;
  char **channels;
  uint32_t nchannels;
  char cursor[SORTIE_EVENT_ID_MAX + 1];
  char origin[256]; /* the allowed Origin to echo in CORS headers, or "" */
  char accept[29];
  uint32_t timeout_s;
  uint64_t serial;
  struct MHD_Connection *conn;
  struct pd_client *poll; /* a long-poll in progress (NULL again if it ended early) */
  uint8_t poll_started;
  uint8_t echo;           /* GET /echo */
};

static void req_free(struct req *r)
{
  for (uint32_t i = 0; i < r->nchannels; i++)
    free(r->channels[i]);
  free(r->channels);
  free(r);
}

/* ---- checks ---- */

/* The Origin header: absent (not a browser), the same origin as the Host, or
 * one of push.origins. Writes the value to echo in CORS headers. */
static int origin_allowed(struct MHD_Connection *conn, char *echo, size_t n)
{
  const char *o = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
  echo[0] = '\0';
  if (o == NULL)
    return 1;
  const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
  if (host) {
    const char *p = strstr(o, "://");
    if (p && strcasecmp(p + 3, host) == 0)
      return 1; /* same origin: no CORS headers needed */
  }
  size_t ol = strlen(o);
  const char *list = cfg->push_origins;
  while (*list) {
    const char *comma = strchr(list, ',');
    size_t l = comma ? (size_t)(comma - list) : strlen(list);
    while (l && list[0] == ' ') {
      list++;
      l--;
    }
    while (l && list[l - 1] == ' ')
      l--;
    if (l == ol && strncasecmp(list, o, l) == 0) {
      snprintf(echo, n, "%s", o);
      return 1;
    }
    if (!comma)
      break;
    list = comma + 1;
  }
  return 0;
}

static int authenticate(struct MHD_Connection *conn, const char *query_token,
                        struct sortie_identity *who, const char **why)
{
  char token[SORTIE_TOKEN_MAX + 1];
  const char *src;
  const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
  const char *cookie = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cookie");
  /* the query string is rebuilt for sortie_auth_find_token (MHD has decoded
   * the arguments already; a token has no characters that need encoding) */
  char q[SORTIE_TOKEN_MAX + 8] = "";
  if (query_token && strlen(query_token) <= SORTIE_TOKEN_MAX)
    snprintf(q, sizeof q, "token=%s", query_token);
  if (sortie_auth_find_token(authz, cookie, q, 1, token, sizeof token, &src) < 0) {
    *why = "send a token: Authorization: Bearer, the sortie_token cookie, or ?token=";
    return -1;
  }
  return sortie_auth_verify(cfg, token, (long)time(NULL), who, why);
}

/* Parses ?channels=a,b into r->channels; checks names, rights and the limit.
 * On failure writes the status and detail. */
static int parse_channels(struct MHD_Connection *conn, struct req *r, unsigned *status,
                          char *detail, size_t n)
{
  const char *list = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "channels");
  if (list == NULL || *list == '\0') {
    *status = 400;
    snprintf(detail, n, "channels is required: a comma-separated list of channel names");
    return -1;
  }
  uint32_t max = (uint32_t)cfg->push_max_channels;
  r->channels = sortie_xcalloc(max, sizeof *r->channels);
  const char *p = list;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t l = comma ? (size_t)(comma - p) : strlen(p);
    if (sortie_channel_parse(p, l, NULL, NULL) <= SORTIE_CHAN_UNKNOWN || l > SORTIE_CHANNEL_MAX) {
      *status = 400;
      snprintf(detail, n, "'%.*s' is not a channel", (int)sortie_utf8_prefix(p, l, 80), p);
      return -1;
    }
    if (!sortie_auth_may_read(&r->who, p, l)) {
      *status = 403;
      snprintf(detail, n, "user %s may not read channel %.*s", r->who.sub, (int)l, p);
      return -1;
    }
    int dup = 0;
    for (uint32_t i = 0; i < r->nchannels; i++)
      dup |= strlen(r->channels[i]) == l && memcmp(r->channels[i], p, l) == 0;
    if (!dup) {
      if (r->nchannels == max) {
        *status = 400;
        snprintf(detail, n, "at most %u channels per connection", max);
        return -1;
      }
      r->channels[r->nchannels++] = sortie_xstrndup(p, l);
    }
    if (!comma)
      break;
    p = comma + 1;
  }
  return 0;
}

static int ws_handshake_ok(struct MHD_Connection *conn, struct req *r, unsigned *status,
                           const char **detail)
{
  const char *up = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade");
  const char *co = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection");
  const char *ver = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
  const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
  *status = 400;
  if (up == NULL || strcasestr(up, "websocket") == NULL || co == NULL ||
      strcasestr(co, "upgrade") == NULL) {
    *detail = "this is a WebSocket endpoint: send Upgrade: websocket";
    *status = 426;
    return 0;
  }
  if (ver == NULL || strcmp(ver, "13") != 0) {
    *detail = "only WebSocket version 13 is spoken here";
    *status = 426;
    return 0;
  }
  if (key == NULL || strlen(key) != 24 || pd_ws_accept_key(key, r->accept) < 0) {
    *detail = "Sec-WebSocket-Key must be 16 bytes in base64";
    return 0;
  }
  return 1;
}

/* ---- the per-user limit, asked of Redis with the request suspended ---- */

static void on_limit(void *ud, int allowed, int failed)
{
  struct req *r = ud;
  if (failed)
    LOG_WARN("http", "connection limit not checked (Redis unavailable); allowing user=%s",
             r->who.sub);
  r->phase = allowed ? 1 : 2;
  MHD_resume_connection(r->conn);
  kicked = 1;
}

/* A long-poll has its answer: libmicrohttpd calls the handler again. */
static void wake(struct MHD_Connection *conn)
{
  MHD_resume_connection(conn);
  kicked = 1;
}

/* A long-poll that may go on: a client with no socket of its own, the
 * request suspended until it has its answer. */
static enum MHD_Result start_poll(struct MHD_Connection *conn, struct req *r)
{
  MHD_suspend_connection(conn);
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct pd_stream_req sr = {.fd = -1,
                            .peer_fd = ci ? ci->connect_fd : -1,
                            .who = &r->who,
                            .channels = r->channels,
                            .nchannels = r->nchannels,
                            .cursor = r->cursor,
                            .serial = r->serial,
                            .mhd = conn,
                            .timeout_s = r->timeout_s,
                            .wake = wake,
                            .slot = &r->poll,
                            .counted = r->phase == 1};
  r->poll_started = 1;
  r->poll = pd_poll_transport.start(&sr);
  return MHD_YES;
}

/* ---- taking a stream over ---- */

static enum MHD_Result take_over(struct MHD_Connection *conn, struct req *r)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  int fd = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
  if (fd < 0) {
    LOG_ERROR("http", "cannot take the socket over: %s", strerror(errno));
    return pd_reply_problem(conn, 503, "unavailable", "Unavailable", "try again", r->origin);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  /* Our own writes are already one writev per client per loop turn: let the
   * kernel send each at once rather than hold a small one back for an ACK
   * (Nagle with the peer's delayed ACK costs 40 ms), and undo any cork
   * libmicrohttpd left on the socket. */
  int on = 1, off = 0;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
  struct pd_stream_req sr = {.fd = fd,
                            .who = &r->who,
                            .channels = r->channels,
                            .nchannels = r->nchannels,
                            .cursor = r->cursor,
                            .origin = r->origin[0] ? r->origin : NULL,
                            .accept = r->accept,
                            .serial = r->serial,
                            .counted = r->phase == 1,
                            .echo = r->echo};
  r->tp->start(&sr);
  /* libmicrohttpd now closes its own descriptor (no shutdown: MHD_USE_TURBO) */
  return MHD_NO;
}

static enum MHD_Result stream_request(struct MHD_Connection *conn,
                                      const struct pd_transport *tp, const char *method,
                                      void **con_cls)
{
  struct req *r = *con_cls;
  if (r != NULL) {
    /* called again: after the limit check, or a long-poll with its answer */
    if (r->poll)
      return pd_poll_respond(r->poll, conn, r->origin);
    if (r->poll_started)
      return pd_reply_problem(conn, 503, "unavailable", "Unavailable",
                              "the poll was ended early; ask again with the same cursor",
                              r->origin);
    if (r->phase == 0)
      return MHD_YES;
    if (r->phase == 2) {
      char d[160];
      snprintf(d, sizeof d, "user %s already has %d connections open", r->who.sub,
               cfg->push_max_conn_per_user);
      return pd_reply_problem(conn, 429, "too-many-connections", "Too many connections", d, r->origin);
    }
    if (r->tp == &pd_poll_transport)
      return start_poll(conn, r);
    return take_over(conn, r);
  }
  char origin[256];
  if (!origin_allowed(conn, origin, sizeof origin))
    return pd_reply_problem(conn, 403, "forbidden", "Not allowed", "this Origin is not allowed", NULL);
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return pd_reply_problem(conn, 405, "method-not-allowed", "Method not allowed", "use GET", origin);
  if (pd_clients_count() >= (uint32_t)cfg->push_max_connections)
    return pd_reply_problem(conn, 503, "unavailable", "Unavailable", "this server is full; try another",
                   origin);
  r = sortie_xcalloc(1, sizeof *r);
  r->tp = tp;
  r->conn = conn;
  r->serial = ++req_serial;
  memcpy(r->origin, origin, sizeof r->origin);
  *con_cls = r;
  const char *why;
  if (authenticate(conn, MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token"), &r->who,
                   &why) < 0)
    return pd_reply_problem(conn, 401, "unauthorized", "Authentication required", why, origin);
  unsigned status;
  char detail[200];
  if (tp == &pd_ws_transport) {
    const char *d;
    if (!ws_handshake_ok(conn, r, &status, &d))
      return pd_reply_problem(conn, status, "malformed", "Malformed request", d, origin);
  } else if (parse_channels(conn, r, &status, detail, sizeof detail) < 0) {
    return pd_reply_problem(conn, status, status == 403 ? "forbidden" : "malformed",
                   status == 403 ? "Not allowed" : "Malformed request", detail, origin);
  }
  /* where to resume: Last-Event-ID (a browser's reconnect) or ?cursor= */
  const char *cur = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
  if (cur == NULL || *cur == '\0')
    cur = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "cursor");
  if (cur && *cur) {
    struct pd_evid p;
    if (strlen(cur) > SORTIE_EVENT_ID_MAX || pd_evid_parse(cur, strlen(cur), &p) < 0)
      return pd_reply_problem(conn, 400, "malformed", "Malformed request",
                     "cursor (or Last-Event-ID) is not an event id", origin);
    snprintf(r->cursor, sizeof r->cursor, "%s", cur);
  }
  if (tp == &pd_poll_transport) {
    const char *t = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "timeout");
    /* 25 s when none is given, or the cap when that is lower */
    long to = cfg->push_poll_timeout_max_s < 25 ? cfg->push_poll_timeout_max_s : 25;
    if (t) {
      char *end;
      to = strtol(t, &end, 10);
      if (*t == '\0' || *end || to < 0 || to > cfg->push_poll_timeout_max_s) {
        snprintf(detail, sizeof detail, "timeout must be from 0 to %d seconds",
                 cfg->push_poll_timeout_max_s);
        return pd_reply_problem(conn, 400, "malformed", "Malformed request", detail, origin);
      }
    }
    r->timeout_s = (uint32_t)to;
  }
  /* a stream or a waiting long-poll counts against the user's connections,
   * on every daemon */
  MHD_suspend_connection(conn);
  pd_limit_open(r->who.sub, r->serial, on_limit, r);
  return MHD_YES;
}

/* GET /echo, served only with push.ws_echo = 1: a WebSocket that echoes
 * every message (ws.c), for conformance suites. No token, no Origin check
 * (it reads nothing but what its own client sends), no per-user slot; it
 * counts against push.max_connections like any stream. */
static enum MHD_Result echo_request(struct MHD_Connection *conn, const char *method)
{
  if (strcmp(method, "GET") != 0)
    return pd_reply_problem(conn, 405, "method-not-allowed", "Method not allowed", "use GET", NULL);
  if (pd_clients_count() >= (uint32_t)cfg->push_max_connections)
    return pd_reply_problem(conn, 503, "unavailable", "Unavailable", "this server is full", NULL);
  struct req r = {.tp = &pd_ws_transport, .serial = ++req_serial, .echo = 1};
  unsigned status;
  const char *d;
  if (!ws_handshake_ok(conn, &r, &status, &d))
    return pd_reply_problem(conn, status, "malformed", "Malformed request", d, NULL);
  return take_over(conn, &r);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **con_cls)
{
  (void)cls;
  (void)version;
  (void)upload_data;
  if (*upload_size) {
    *upload_size = 0; /* no endpoint takes a body */
    return MHD_YES;
  }
  if (strcmp(method, "OPTIONS") == 0) {
    char origin[256];
    if (!origin_allowed(conn, origin, sizeof origin))
      return pd_reply_problem(conn, 403, "forbidden", "Not allowed", "this Origin is not allowed", NULL);
    struct MHD_Response *rs = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (origin[0]) {
      MHD_add_response_header(rs, "Access-Control-Allow-Origin", origin);
      MHD_add_response_header(rs, "Access-Control-Allow-Credentials", "true");
    }
    MHD_add_response_header(rs, "Access-Control-Allow-Methods", "GET, OPTIONS");
    MHD_add_response_header(rs, "Access-Control-Allow-Headers", "Authorization, Last-Event-ID");
    MHD_add_response_header(rs, "Access-Control-Max-Age", "600");
    enum MHD_Result ok = MHD_queue_response(conn, 204, rs);
    MHD_destroy_response(rs);
    return ok;
  }
  if (strcmp(url, "/events") == 0)
    return stream_request(conn, &pd_sse_transport, method, con_cls);
  if (strcmp(url, "/ws") == 0)
    return stream_request(conn, &pd_ws_transport, method, con_cls);
  if (strcmp(url, "/poll") == 0)
    return stream_request(conn, &pd_poll_transport, method, con_cls);
  if (strcmp(url, "/echo") == 0 && cfg->push_ws_echo)
    return echo_request(conn, method);
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return pd_reply_problem(conn, 405, "method-not-allowed", "Method not allowed", "use GET", NULL);
  struct sortie_buf b = {0};
  enum MHD_Result rc;
  if (strcmp(url, "/health") == 0) {
    int ok;
    pd_stats_health(&b, &ok);
    rc = pd_reply(conn, ok ? 200 : 503, "application/json", b.base, b.len, NULL);
  } else if (strcmp(url, "/metrics") == 0) {
    pd_stats_metrics(&b);
    rc = pd_reply(conn, 200, "text/plain; version=0.0.4", b.base, b.len, NULL);
  } else {
    rc = pd_reply_problem(conn, 404, "not-found", "Not found",
                 "paths: /events (SSE), /ws (WebSocket), /poll, /health, /metrics", NULL);
  }
  sortie_buf_free(&b);
  return rc;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
  (void)cls;
  (void)conn;
  (void)toe;
  struct req *r = *con_cls;
  if (r == NULL)
    return;
  if (r->poll)
    pd_poll_finished(r->poll);
  req_free(r);
  *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  (void)cls;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  LOG_DEBUG("mhd", "%s", line);
}

/* ---- in the loop ---- */

static void on_mhd(struct sortie_io *io, uint32_t events)
{
  (void)io;
  (void)events;
  kicked = 1;
}

static void on_mhd_timer(struct sortie_timer *t)
{
  (void)t;
  kicked = 1;
}

/* End of turn: libmicrohttpd's work, if it has any. */
static void run_mhd(void *ud)
{
  (void)ud;
  if (!kicked || mhd == NULL)
    return;
  kicked = 0;
  MHD_run(mhd);
  /* libmicrohttpd's next turn: when it asks, and at least once a second.
   * At its connection limit it takes the listening socket out of its epoll
   * set and puts it back only inside a later MHD_run; with no connection
   * left to wake us, nothing would call it, and the worker would never
   * accept again (tests/faults/test_pending.c). */
  MHD_UNSIGNED_LONG_LONG to;
  if (MHD_get_timeout(mhd, &to) != MHD_YES || to > 1000)
    to = 1000;
  sortie_timer_arm(&mhd_timer, to);
}

/* How many connections libmicrohttpd may hold at once in this worker:
 * requests being read and waiting long-polls (a stream's socket is taken
 * over at once and counts against push.max_connections instead). Set
 * deliberately: a quarter of the descriptors the worker may open, so that a
 * flood of half-open requests leaves room for the streams themselves, at
 * least 64 and at most 16384; or push.max_pending. */
static unsigned pending_limit(const struct sortie_cfg *c)
{
  if (c->push_max_pending > 0)
    return (unsigned)c->push_max_pending;
  struct rlimit rl;
  rlim_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur / 4 : 256;
  return n < 64 ? 64 : n > 16384 ? 16384 : (unsigned)n;
}

int pd_http_start(struct sortie_loop *l, const struct sortie_cfg *c, int listen_fd)
{
  cfg = c;
  http_loop = l;
  pd_reply_init(c->api_problem_base);
  mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME |
                             MHD_USE_ERROR_LOG,
                         0, NULL, NULL, handler, NULL, MHD_OPTION_LISTEN_SOCKET, listen_fd,
                         MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
                         MHD_OPTION_CONNECTION_LIMIT, pending_limit(c),
                         /* per source address, for a daemon reached without
                          * a proxy (behind Apache every peer is 127.0.0.1) */
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)c->push_max_conn_per_ip,
                         /* a request head that stalls, or a kept-alive
                          * connection left idle, is closed after this; a
                          * waiting long-poll is suspended and not subject */
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->push_header_timeout_s,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
  if (mhd == NULL)
    return -1;
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_EPOLL_FD);
  if (di == NULL)
    return -1;
  mhd_io.fd = di->epoll_fd;
  mhd_io.cb = on_mhd;
  sortie_timer_init(&mhd_timer, l, on_mhd_timer);
  if (sortie_io_add(l, &mhd_io, EPOLLIN) < 0)
    return -1;
  sortie_loop_on_turn_end(l, run_mhd, NULL);
  kicked = 1;
  return 0;
}

void pd_http_stop(void)
{
  if (mhd == NULL)
    return;
  sortie_io_del(http_loop, &mhd_io);
  sortie_timer_stop(&mhd_timer);
  MHD_stop_daemon(mhd);
  mhd = NULL;
}
