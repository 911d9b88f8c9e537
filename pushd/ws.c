/* WebSocket (RFC 6455): the handshake key, server frames, UTF-8 checking, and
 * the transport. wslay parses what the client sends (masking, fragments,
 * control frames, size limit) and writes its own control frames (pong, close)
 * through our queue; events go out as frames encoded once per event and shared
 * by every subscriber, so they never pass through wslay.
 *
 * Client -> server: {"action":"subscribe","channels":[...],"since":{...}},
 * {"action":"unsubscribe","channels":[...]}, {"action":"ping"},
 * {"action":"refresh","token":"..."}.
 * Server -> client: connection_status first, then envelopes and subscribed /
 * unsubscribed / pong / error / reset / refreshed / token_expiring messages.
 * Close codes: 1001 going away, 1002 protocol error, 1003 binary data, 1007
 * bad UTF-8, 1008 policy, 1009 too big, 4001 token expired.
 *
 * Token lifetime: push.token_warn_s before the token's exp the client gets
 * {"type":"token_expiring","exp":E,"close_at":C}; a refresh with a token of
 * the same sub and role replaces it in place ({"type":"refreshed","exp":E});
 * without one the connection is closed with 4001 at C = exp +
 * push.token_grace_s. From exp on, subscribe is refused (token_expired);
 * channels already subscribed keep flowing until C. One deadline per client
 * (clients.h), moved by each step.
 *
 * Echo mode (GET /echo, only with push.ws_echo = 1): the same transport with
 * a flag, for conformance suites. No token, no channel, no greeting: every
 * complete text or binary message goes back as it came, through the same
 * framing checks, caps and close handshake as /ws. The message-rate limit
 * does not apply to it (it guards the Redis work a subscribe starts; an
 * echo starts none, and a suite sends thousands of messages a second).
 *
 * Close handshake (both modes), RFC 6455 5.5.1 and 7.4: a close with no
 * payload is answered with none; a code and reason are echoed; a 1-byte
 * payload, or a code that may not be sent (below 1000, 1004-1006, 1015,
 * 1016-2999, 5000 and up) is answered 1002; a reason that is not UTF-8 1007.
 * This is decided here, not by wslay 1.1.1, which takes a 1-byte payload for
 * none, refuses 1012-1014 (registered with IANA since), and checks a reason's
 * UTF-8 one read at a time, skipping two bytes of every read: so cb_recv
 * never hands wslay part of a close frame (it holds back the start of one
 * until it is whole), and the answer is queued at the frame's end, before
 * wslay's own (which then adds nothing). */
#include "channel.h"
#include "frame.h"
#include "json.h"
#include "resume.h"
#include "transport.h"
#include "wsscan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wslay/wslay.h>

/* ---- the transport ---- */

/* A wslay context costs about 5 KiB (most of it its read buffer), and an idle
 * subscriber sends nothing for minutes. So the context exists only while the
 * client is in the middle of something: it is made when bytes arrive and
 * freed as soon as they end on a frame boundary, outside a fragmented message,
 * with nothing queued. To know where frames end, the bytes handed to wslay are
 * followed here too, by pd_wsscan (wsscan.h): only the headers' lengths, flags
 * and opcodes (wslay does all the checking). */
struct ws_state {
  wslay_event_context_ptr ctx; /* NULL while idle */
  uint8_t *hold;               /* the start of a close frame not yet whole (see
                                  cb_recv), nhold bytes, malloc'd; else NULL */
  struct pd_wsscan scan;       /* the bytes handed to wslay, followed; its
                                  pings count those of this read (a flood closes) */
  uint8_t nhold;
  uint8_t io_failed : 1;       /* the socket itself failed or ended */
  uint8_t warned : 1;          /* token_expiring sent for the token's exp */
  uint8_t echo : 1;            /* GET /echo: echoes, reads nothing else */
  uint16_t msgs;               /* messages handled in the second `msg_sec` */
  uint32_t msg_sec;
  uint32_t budget;             /* bytes this read may still take (fair turns) */
};
/* every client has one, idle or not: it stays in glibc's 64-byte chunk */
_Static_assert(sizeof(struct ws_state) <= 56, "struct ws_state grew");

/* One read of a client takes at most this much: a client that sends without
 * pause (a ping flood, say) gets its turn like everyone else, and what its
 * frames make wslay queue (a pong per ping) stays small before it goes to the
 * capped outbound queue. */
#define WS_READ_BUDGET 65536
/* More ping frames than this in one read is a flood: closed with 1008. */
#define WS_PINGS_PER_READ 1000
/* Messages (subscribe, unsubscribe, ping, refresh) one connection may send
 * per second: each subscribe starts Redis work (a SUBSCRIBE, history reads),
 * so a storm of them is refused, message by message, with "rate_limited". */
#define WS_MSGS_PER_S 50

static void send_text(struct pd_client *c, const char *json, size_t len)
{
  struct sortie_buf b = {0};
  pd_ws_frame(&b, 1, json, len);
  pd_conn_send_copy(&c->conn, b.base, b.len);
  sortie_buf_free(&b);
}

/* Closes with a code: the close frame goes out after what is queued, then
 * the connection ends. */
static void ws_close_code(struct pd_client *c, uint16_t code, const char *reason)
{
  if (c->conn.close_after_flush || c->conn.closing)
    return;
  char payload[125];
  size_t rl = strlen(reason);
  if (rl > sizeof payload - 2)
    rl = sizeof payload - 2;
  payload[0] = (char)(code >> 8);
  payload[1] = (char)(code & 0xff);
  memcpy(payload + 2, reason, rl);
  struct sortie_buf b = {0};
  pd_ws_frame(&b, 8, payload, rl + 2);
  pd_conn_send_copy(&c->conn, b.base, b.len);
  sortie_buf_free(&b);
  pd_conn_close_after_flush(&c->conn);
}

static void send_error(struct pd_client *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void send_error(struct pd_client *c, const char *code, const char *fmt, ...)
{
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct pd_control m = {.kind = PD_CTL_ERROR, .code = code, .message = msg};
  c->tp->control(c, &m);
}

static void ws_deliver(struct pd_client *c, struct pd_event *e)
{
  pd_conn_send(&c->conn, pd_event_ws(e));
}

static size_t ws_cost(struct pd_event *e)
{
  return pd_event_ws(e)->len;
}

/* Every control message but CAUGHT_UP is a text message. SUBSCRIBED comes
 * when the subscriptions are in place in Redis, so that anything published
 * after the client reads it reaches it; history (for a `since`) follows,
 * then live events. */
static void ws_control(struct pd_client *c, const struct pd_control *m)
{
  struct sortie_buf b = {0};
  if (pd_control_json(m, &b) == 0 && !(m->kind == PD_CTL_SUBSCRIBED && m->nchannels == 0))
    send_text(c, b.base, b.len);
  sortie_buf_free(&b);
}

/* The `since` of one channel in a subscribe request: a per-channel object, or
 * one id for all; "" when none. NULL when the value is not a string. */
static const char *since_for(json_object *since, const char *name)
{
  json_object *x;
  if (since == NULL)
    return "";
  if (json_object_is_type(since, json_type_string))
    return json_object_get_string(since);
  if (!json_object_object_get_ex(since, name, &x))
    return "";
  return json_object_is_type(x, json_type_string) ? json_object_get_string(x) : NULL;
}

/* The token's exp has passed (the connection lives on until its close, but
 * gains no channel). */
static int token_past(const struct pd_client *c)
{
  return c->who.exp > 0 && sortie_wall_ms() >= (uint64_t)c->who.exp * 1000;
}

/* Channels of one subscribe request, grouped by their `since`. */
static void subscribe(struct pd_client *c, json_object *msg)
{
  json_object *chans, *since = NULL;
  if (!json_object_object_get_ex(msg, "channels", &chans) ||
      !json_object_is_type(chans, json_type_array) || json_object_array_length(chans) == 0) {
    send_error(c, "bad_request", "subscribe needs \"channels\": a non-empty array of names");
    return;
  }
  json_object_object_get_ex(msg, "since", &since);
  if (since && !json_object_is_type(since, json_type_object) &&
      !json_object_is_type(since, json_type_string)) {
    send_error(c, "bad_since", "\"since\" must be an object {\"channel\":\"id\"} or an id");
    return;
  }
  if (token_past(c)) {
    send_error(c, "token_expired", "the token expired at %ld: send a refresh first", c->who.exp);
    return;
  }
  size_t n = json_object_array_length(chans);
  size_t fresh = 0;
  /* check everything before changing anything: a request is all or nothing */
  for (size_t i = 0; i < n; i++) {
    json_object *v = json_object_array_get_idx(chans, i);
    const char *name = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    size_t len = name ? strlen(name) : 0;
    if (name == NULL || len > SORTIE_CHANNEL_MAX ||
        sortie_channel_parse(name, len, NULL, NULL) <= SORTIE_CHAN_UNKNOWN) {
      if (name == NULL)
        send_error(c, "invalid_channel", "a channel name must be a string");
      else
        send_error(c, "invalid_channel", "'%.*s' is not a channel",
                   (int)sortie_utf8_prefix(name, len, 80), name);
      return;
    }
    if (!sortie_auth_may_read(&c->who, name, len)) {
      send_error(c, "forbidden", "user %s may not read channel %s", c->who.sub, name);
      return;
    }
    if (!pd_sub_find(c, name))
      fresh++;
    const char *sv = since_for(since, name);
    struct pd_evid p;
    if (sv == NULL || (*sv && pd_evid_parse(sv, strlen(sv), &p) < 0)) {
      send_error(c, "bad_since", "since for %s is not an event id", name);
      return;
    }
  }
  int max = pd_clients_cfg()->push_max_channels;
  if (c->nsubs + fresh > (size_t)max) {
    send_error(c, "too_many_channels", "at most %d channels per connection", max);
    return;
  }
  /* Channels already subscribed are in place in Redis: say so at once, even
   * while their history is still being sent (the request asks for nothing
   * new). One whose subscription is not yet in Redis is named by that
   * subscription's own "subscribed", which is still to come. */
  const char **names = sortie_xmalloc(n * sizeof *names);
  uint32_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = json_object_get_string(json_object_array_get_idx(chans, i));
    struct pd_sub *s = pd_sub_find(c, name);
    if (s && pd_resume_announced(s))
      names[k++] = name;
  }
  if (k) {
    struct pd_control m = {.kind = PD_CTL_SUBSCRIBED, .channels = names, .nchannels = k};
    ws_control(c, &m);
  }
  /* the others: history for each `since` group, then live; each group's
   * "subscribed" comes when Redis has its subscriptions */
  struct pd_sub **group = sortie_xmalloc(n * sizeof *group);
  uint8_t *done = sortie_xcalloc(n, 1);
  for (size_t i = 0; i < n && !c->conn.closing; i++) {
    if (done[i])
      continue;
    const char *name = json_object_get_string(json_object_array_get_idx(chans, i));
    if (pd_sub_find(c, name)) {
      done[i] = 1;
      continue; /* already subscribed: nothing to resume */
    }
    const char *sv = since_for(since, name);
    uint32_t g = 0;
    for (size_t m = i; m < n; m++) {
      if (done[m])
        continue;
      const char *nm = json_object_get_string(json_object_array_get_idx(chans, m));
      if (strcmp(since_for(since, nm), sv) != 0 || pd_sub_find(c, nm))
        continue;
      done[m] = 1;
      group[g++] = pd_sub_add(c, nm);
    }
    pd_resume_start(c, group, g, sv);
  }
  free(done);
  free(group);
  free(names);
}

/* ---- the token's lifetime ---- */

/* The first deadline of a token: its warning. */
static void token_watch(struct pd_client *c)
{
  ((struct ws_state *)c->tp_state)->warned = 0;
  if (c->who.exp > 0)
    pd_client_deadline(c, c->who.exp - pd_clients_cfg()->push_token_warn_s);
}

/* Its deadline: first the warning (then the close is due at exp + grace),
 * then the close. */
static void ws_expire(struct pd_client *c)
{
  struct ws_state *st = c->tp_state;
  if (st->warned) {
    ws_close_code(c, 4001, "token expired");
    return;
  }
  long close_at = c->who.exp + pd_clients_cfg()->push_token_grace_s;
  char m[128];
  int n = snprintf(m, sizeof m, "{\"type\":\"token_expiring\",\"exp\":%ld,\"close_at\":%ld}",
                   c->who.exp, close_at);
  send_text(c, m, (size_t)n);
  st->warned = 1;
  pd_client_deadline(c, close_at);
}

/* {"action":"refresh","token":"..."}: verified as at connect; the same sub
 * and role only (the channels already subscribed were allowed for them); an
 * exp already past is refused. The old token stays on any refusal. */
static void refresh(struct pd_client *c, json_object *msg)
{
  const char *tok = NULL;
  size_t tl = 0;
  if (sortie_json_str(msg, "token", &tok, &tl) < 0 || tok == NULL || tl == 0 ||
      strlen(tok) != tl) {
    send_error(c, "bad_request", "refresh needs \"token\": a JWT");
    return;
  }
  uint64_t now = sortie_wall_ms();
  struct sortie_identity id;
  const char *why;
  if (sortie_auth_verify(pd_clients_cfg(), tok, (long)(now / 1000), &id, &why) < 0) {
    send_error(c, "bad_token", "%s; the current token is kept", why);
    return;
  }
  if (strcmp(id.sub, c->who.sub) != 0 || id.role != c->who.role) {
    send_error(c, "wrong_sub",
               "the new token is for %s (%s), this connection for %s (%s); the current token is kept",
               id.sub, sortie_role_name(id.role), c->who.sub, sortie_role_name(c->who.role));
    return;
  }
  if ((uint64_t)id.exp * 1000 <= now) {
    send_error(c, "bad_token", "the new token has expired already; the current token is kept");
    return;
  }
  c->who.exp = id.exp;
  token_watch(c);
  char m[64];
  int n = snprintf(m, sizeof m, "{\"type\":\"refreshed\",\"exp\":%ld}", id.exp);
  send_text(c, m, (size_t)n);
}

static void unsubscribe(struct pd_client *c, json_object *msg)
{
  json_object *chans;
  if (!json_object_object_get_ex(msg, "channels", &chans) ||
      !json_object_is_type(chans, json_type_array)) {
    send_error(c, "bad_request", "unsubscribe needs \"channels\": an array of names");
    return;
  }
  size_t n = json_object_array_length(chans);
  const char **names = sortie_xmalloc((n ? n : 1) * sizeof *names);
  uint32_t k = 0;
  for (size_t i = 0; i < n; i++) {
    json_object *v = json_object_array_get_idx(chans, i);
    if (!json_object_is_type(v, json_type_string))
      continue;
    struct pd_sub *s = pd_sub_find(c, json_object_get_string(v));
    if (s == NULL)
      continue;
    names[k++] = json_object_get_string(v);
    pd_resume_unsubscribe(s);
  }
  struct pd_control m = {.kind = PD_CTL_UNSUBSCRIBED, .channels = names, .nchannels = k};
  ws_control(c, &m);
  free(names);
}

static void on_text(struct pd_client *c, const uint8_t *p, size_t len)
{
  if (!sortie_utf8_valid(p, len)) {
    ws_close_code(c, 1007, "invalid UTF-8 in a text message");
    return;
  }
  const char *why;
  json_object *msg = sortie_json_parse((const char *)p, len, &why);
  if (msg == NULL || !json_object_is_type(msg, json_type_object)) {
    send_error(c, "bad_json", "%s", msg ? "a message must be a JSON object" : why);
    if (msg)
      json_object_put(msg);
    return;
  }
  const char *action = NULL;
  size_t al;
  sortie_json_str(msg, "action", &action, &al);
  struct ws_state *st = c->tp_state;
  uint32_t sec = (uint32_t)(sortie_loop_now(pd_conns_loop()) / 1000);
  if (st->msg_sec != sec) {
    st->msg_sec = sec;
    st->msgs = 0;
  }
  if (++st->msgs > WS_MSGS_PER_S) {
    send_error(c, "rate_limited", "at most %d messages a second; this one was not handled",
               WS_MSGS_PER_S);
    json_object_put(msg);
    return;
  }
  if (action && strcmp(action, "subscribe") == 0)
    subscribe(c, msg);
  else if (action && strcmp(action, "unsubscribe") == 0)
    unsubscribe(c, msg);
  else if (action && strcmp(action, "ping") == 0)
    send_text(c, "{\"type\":\"pong\"}", 15);
  else if (action && strcmp(action, "refresh") == 0)
    refresh(c, msg);
  else
    send_error(c, "unknown_action", "action must be subscribe, unsubscribe, ping or refresh");
  json_object_put(msg);
}

static ssize_t cb_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *ud)
{
  (void)flags;
  struct pd_client *c = ud;
  struct ws_state *st = c->tp_state;
  /* Held bytes begin a frame, so wslay has nothing left in its buffer and
   * offers all of it (4 KiB, more than PD_WSSCAN_CLOSE_MAX). They are the
   * start of a close frame not yet whole, which waits until it is, so that
   * wslay reads each close frame in one piece; the scanner says how many of
   * the last bytes belong to one (never more than were held plus read). */
  size_t nh = st->nhold;
  if (st->budget == 0 || nh >= len) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK); /* the rest next turn */
    return -1;
  }
  size_t want = len - nh < st->budget ? len - nh : st->budget;
  ssize_t n = read(c->conn.io.fd, buf + nh, want);
  if (n > 0) {
    st->budget -= (uint32_t)n;
    pd_conn_heard(&c->conn);
    pd_wsscan_feed(&st->scan, buf + nh, (size_t)n);
    size_t total = nh + (size_t)n, give = total - pd_wsscan_held(&st->scan);
    if (nh) {
      memcpy(buf, st->hold, nh);
      free(st->hold);
      st->hold = NULL;
      st->nhold = 0;
    }
    if (give < total) { /* a close frame not yet whole: it waits */
      st->hold = sortie_xmalloc(PD_WSSCAN_CLOSE_MAX);
      st->nhold = (uint8_t)(total - give);
      memcpy(st->hold, buf + give, total - give);
    }
    if (give)
      return (ssize_t)give;
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
  } else {
    st->io_failed = 1;
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
  }
  return -1;
}

static ssize_t cb_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
  (void)ctx;
  (void)flags;
  struct pd_client *c = ud;
  /* wslay's own frames (pong, close) join the queue in order, whole */
  pd_conn_send_final(&c->conn, data, len);
  return (ssize_t)len;
}

/* ---- the close handshake (see the top of the file) ---- */

/* The close frame being read: whole in one wslay_event_recv (cb_recv sees
 * to it), so one buffer serves the worker. */
static struct {
  const struct pd_client *c; /* whose, NULL when none */
  size_t len, got;
  uint8_t p[125];
} close_in;

/* A code a peer may send in a close frame (RFC 6455 7.4, the IANA registry):
 * 1000-1003, 1007-1014, and 3000-4999 (libraries, applications). */
static int close_code_ok(unsigned code)
{
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

static void cb_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *ud)
{
  (void)ctx;
  close_in.c = NULL;
  if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->payload_length <= sizeof close_in.p) {
    close_in.c = ud;
    close_in.len = (size_t)arg->payload_length;
    close_in.got = 0;
  }
}

static void cb_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *ud)
{
  (void)ctx;
  if (close_in.c != ud || arg->data_length > close_in.len - close_in.got)
    return;
  memcpy(close_in.p + close_in.got, arg->data, arg->data_length);
  close_in.got += arg->data_length;
}

/* The end of a frame: for a close frame, the answer, queued before wslay
 * queues its own (which then finds one queued and adds nothing). */
static void cb_frame_end(wslay_event_context_ptr ctx, void *ud)
{
  if (close_in.c != ud)
    return;
  close_in.c = NULL;
  if (close_in.got != close_in.len)
    return; /* cannot happen (one piece); wslay answers alone */
  const uint8_t *p = close_in.p;
  size_t n = close_in.len;
  unsigned code = n >= 2 ? (unsigned)p[0] << 8 | p[1] : 0;
  if (n == 0)
    wslay_event_queue_close(ctx, 0, NULL, 0); /* none came, none goes back */
  else if (n == 1)
    wslay_event_queue_close(ctx, 1002, (const uint8_t *)"close payload of 1 byte", 23);
  else if (!close_code_ok(code))
    wslay_event_queue_close(ctx, 1002, (const uint8_t *)"invalid close code", 18);
  else if (!sortie_utf8_valid(p + 2, n - 2))
    wslay_event_queue_close(ctx, 1007, (const uint8_t *)"close reason not UTF-8", 22);
  else
    wslay_event_queue_close(ctx, (uint16_t)code, p + 2, n - 2);
}

/* ---- messages ---- */

static void cb_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud)
{
  struct pd_client *c = ud;
  if (c->conn.closing || c->conn.close_after_flush)
    return;
  if (arg->opcode == WSLAY_PING) {
    /* its pong (queued by wslay) goes now, in order: wslay 1.1.1 drops the
     * pongs still queued when it queues a close later in the same read */
    wslay_event_send(ctx);
    return;
  }
  if (((struct ws_state *)c->tp_state)->echo) {
    /* wslay has checked it (UTF-8 for text); it goes back whole, and at
     * once: in order after the pongs of pings that came before it, and ahead
     * of a close that a bad frame later in this read would queue (wslay
     * sends its control frames first) */
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
      struct wslay_event_msg m = {arg->opcode, arg->msg, arg->msg_length};
      if (wslay_event_queue_msg(ctx, &m) == 0) /* copied; refused once closing */
        wslay_event_send(ctx);                 /* cb_send takes all of it */
    }
    return;
  }
  if (arg->opcode == WSLAY_TEXT_FRAME)
    on_text(c, arg->msg, arg->msg_length);
  else if (arg->opcode == WSLAY_BINARY_FRAME)
    ws_close_code(c, 1003, "binary messages are not supported");
}

static void ws_ctx_new(struct pd_client *c, struct ws_state *st)
{
  static const struct wslay_event_callbacks cbs = {
      cb_recv, cb_send, NULL, cb_frame_start, cb_frame_chunk, cb_frame_end, cb_msg};
  if (wslay_event_context_server_init(&st->ctx, &cbs, c) != 0)
    abort(); /* out of memory: the project's policy */
  wslay_event_config_set_max_recv_msg_length(st->ctx,
                                            (uint64_t)pd_clients_cfg()->push_max_message);
}

static void ws_readable(struct pd_client *c)
{
  struct ws_state *st = c->tp_state;
  if (c->conn.close_after_flush) {
    /* closing: what the peer still sends is read and dropped */
    char sink[4096];
    ssize_t n = read(c->conn.io.fd, sink, sizeof sink);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      pd_client_close(c, "peer closed");
    return;
  }
  if (st->ctx == NULL)
    ws_ctx_new(c, st);
  st->budget = WS_READ_BUDGET;
  st->scan.pings = 0;
  int rc = wslay_event_recv(st->ctx);
  close_in.c = NULL;
  if (c->conn.closing)
    return;
  if (st->scan.pings > WS_PINGS_PER_READ) {
    ws_close_code(c, 1008, "too many pings");
    return;
  }
  if (rc != 0) {
    if (st->io_failed) {
      pd_client_close(c, "read failed");
      return;
    }
    /* a frame wslay cannot accept (a fragmented or oversized control frame,
     * say): close 1002 */
    ws_close_code(c, 1002, "protocol error");
    return;
  }
  if (c->conn.close_after_flush)
    return; /* our own close (1003, 1007) is queued: nothing of wslay's after it */
  wslay_event_send(st->ctx); /* the close reply or protocol error close */
  if (c->conn.closing)
    return;
  if (wslay_event_get_close_sent(st->ctx)) {
    pd_conn_close_after_flush(&c->conn);
  } else if (!wslay_event_get_read_enabled(st->ctx)) {
    pd_client_close(c, "peer stopped");
  } else if (pd_wsscan_idle(&st->scan) && wslay_event_get_queued_msg_count(st->ctx) == 0 &&
             !c->conn.close_after_flush) {
    /* nothing under way: give the context back until the client speaks */
    wslay_event_context_free(st->ctx);
    st->ctx = NULL;
  }
}

static void ws_destroy(struct pd_client *c)
{
  struct ws_state *st = c->tp_state;
  if (st) {
    if (st->ctx)
      wslay_event_context_free(st->ctx);
    free(st->hold);
    free(st);
  }
  c->tp_state = NULL;
}

static void ws_heartbeat(struct pd_client *c)
{
  static struct pd_chunk *ping;
  if (ping == NULL)
    ping = pd_chunk_copy("\x89\x00", 2);
  if (pd_conn_silent_ms(&c->conn) > 2 * (uint64_t)pd_clients_cfg()->push_ping_s * 1000) {
    pd_client_close(c, "peer silent for two ping intervals");
    return;
  }
  pd_conn_send(&c->conn, ping);
}

static void ws_shutdown(struct pd_client *c)
{
  ws_close_code(c, 1001, "server going away");
}

static struct pd_client *ws_start(const struct pd_stream_req *r)
{
  struct pd_client *c = pd_client_new(&pd_ws_transport, r->fd, r->who, r->serial, r->counted);
  struct ws_state *st = sortie_xcalloc(1, sizeof *st);
  c->tp_state = st; /* the wslay context comes with the client's first bytes */
  st->echo = r->echo != 0;
  struct sortie_buf h = {0};
  sortie_buf_printf(&h, "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n\r\n", r->accept);
  pd_conn_send_copy(&c->conn, h.base, h.len);
  sortie_buf_reset(&h);
  if (st->echo) { /* an echo speaks only when spoken to */
    sortie_buf_free(&h);
    return c;
  }
  char hello[160];
  int n = snprintf(hello, sizeof hello,
                   "{\"type\":\"connection_status\",\"status\":\"connected\","
                   "\"connection_id\":\"%d.%llu\"}", pd_clients_worker(),
                   (unsigned long long)c->serial);
  pd_ws_frame(&h, 1, hello, (size_t)n);
  pd_conn_send_copy(&c->conn, h.base, h.len);
  sortie_buf_free(&h);
  if (!c->conn.closing)
    token_watch(c); /* warned before exp rather than ended at it */
  return c;
}

const struct pd_transport pd_ws_transport = {
    .name = "ws",
    .kind = 1,
    .start = ws_start,
    .deliver = ws_deliver,
    .cost = ws_cost,
    .control = ws_control,
    .readable = ws_readable,
    .heartbeat = ws_heartbeat,
    .shutdown = ws_shutdown,
    .destroy = ws_destroy,
    .expire = ws_expire,
};
