/* Server-Sent Events: the transport a browser's EventSource talks to. A
 * stream starts with its response head and `retry:`, then carries one
 * message per event with `id:` = the event id (a cursor for every channel of
 * the stream, since ids are global), a comment heartbeat, and is resumed by
 * the browser's Last-Event-ID.
 *
 * A stream ends at its token's exp: a last message `event: token_expired`
 * with data {"type":"token_expired","exp":N} and no id: (the browser's
 * Last-Event-ID stays on the last event; EventSource hands it only to a
 * listener of that name, never to onmessage), then the connection closes.
 * The browser reconnects with the cookie or token it has then and resumes
 * from its Last-Event-ID. Nothing published at or after exp goes out on the
 * old stream. */
#include "channel.h"
#include "frame.h"
#include "resume.h"
#include "transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void sse_expire(struct pd_client *c)
{
  if (c->conn.close_after_flush)
    return;
  char m[128];
  int n = snprintf(m, sizeof m,
                   "event: token_expired\ndata: {\"type\":\"token_expired\",\"exp\":%ld}\n\n",
                   c->who.exp);
  pd_conn_send_copy(&c->conn, m, (size_t)n);
  pd_conn_close_after_flush(&c->conn);
}

static void sse_deliver(struct pd_client *c, struct pd_event *e)
{
  /* published at or after exp (the deadline's timer may not have run yet in
   * this turn): the stream ends before it, and the reconnect resumes it */
  if (c->who.exp > 0 && e->id.ms >= (uint64_t)c->who.exp * 1000) {
    sse_expire(c);
    return;
  }
  pd_conn_send(&c->conn, pd_event_sse(e));
}

static size_t sse_cost(struct pd_event *e)
{
  return pd_event_sse(e)->len;
}

static void sse_control(struct pd_client *c, const struct pd_control *m)
{
  struct sortie_buf b = {0};
  if (m->kind == PD_CTL_CAUGHT_UP) {
    /* an id-only message moves the browser's Last-Event-ID without an
     * event: a reconnect before the next event then resumes from here */
    sortie_buf_printf(&b, "id: %s\n\n", m->id);
  } else if (m->kind == PD_CTL_RESET || m->kind == PD_CTL_ERROR) {
    struct sortie_buf json = {0};
    pd_control_json(m, &json);
    pd_sse_frame(&b, m->id, pd_control_type(m->kind), json.base, json.len);
    sortie_buf_free(&json);
  }
  if (b.len)
    pd_conn_send_copy(&c->conn, b.base, b.len);
  sortie_buf_free(&b);
}

static void sse_readable(struct pd_client *c)
{
  /* a client sends nothing on an event stream: data or EOF both end it */
  char buf[512];
  ssize_t n = read(c->conn.io.fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
    pd_client_close(c, "peer closed");
}

static void sse_heartbeat(struct pd_client *c)
{
  static struct pd_chunk *hb;
  if (hb == NULL)
    hb = pd_chunk_copy(": hb\n\n", 6);
  pd_conn_send(&c->conn, hb);
}

static void sse_shutdown(struct pd_client *c)
{
  char m[64];
  int n = snprintf(m, sizeof m, ": server restarting\nretry: %d\n\n",
                   pd_clients_cfg()->push_retry_ms);
  pd_conn_send_copy(&c->conn, m, (size_t)n);
  pd_conn_close_after_flush(&c->conn);
}

static struct pd_client *sse_start(const struct pd_stream_req *r)
{
  struct pd_client *c = pd_client_new(&pd_sse_transport, r->fd, r->who, r->serial, r->counted);
  struct sortie_buf h = {0};
  sortie_buf_puts(&h, "HTTP/1.1 200 OK\r\n"
                      "Content-Type: text/event-stream; charset=utf-8\r\n"
                      "Cache-Control: no-cache, no-store\r\n"
                      "X-Accel-Buffering: no\r\n"
                      "X-Content-Type-Options: nosniff\r\n"
                      "Connection: close\r\n");
  if (r->origin && r->origin[0])
    sortie_buf_printf(&h, "Access-Control-Allow-Origin: %s\r\n"
                          "Access-Control-Allow-Credentials: true\r\n"
                          "Vary: Origin\r\n", r->origin);
  /* the first bytes go out at once (a comment), so proxies and browsers see
   * the stream open before the first event */
  sortie_buf_printf(&h, "\r\n: sortie-pushd\nretry: %d\n\n", pd_clients_cfg()->push_retry_ms);
  pd_conn_send_copy(&c->conn, h.base, h.len);
  sortie_buf_free(&h);
  if (c->conn.closing)
    return c;
  struct pd_sub **subs = sortie_xmalloc((r->nchannels ? r->nchannels : 1) * sizeof *subs);
  for (uint32_t i = 0; i < r->nchannels; i++)
    subs[i] = pd_sub_add(c, r->channels[i]);
  pd_resume_start(c, subs, r->nchannels, r->cursor);
  free(subs);
  return c;
}

const struct pd_transport pd_sse_transport = {
    .name = "sse",
    .kind = 0,
    .start = sse_start,
    .deliver = sse_deliver,
    .cost = sse_cost,
    .control = sse_control,
    .readable = sse_readable,
    .heartbeat = sse_heartbeat,
    .shutdown = sse_shutdown,
    .destroy = NULL,
    .expire = sse_expire,
};
