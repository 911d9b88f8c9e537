/* Server-Sent Events: the framing, and the transport a browser's EventSource
 * talks to. A stream starts with its response head and `retry:`, then carries
 * one message per event with `id:` = the event id (a cursor for every channel
 * of the stream, since ids are global), a comment heartbeat, and is resumed by
 * the browser's Last-Event-ID. */
#include "pushd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void sse_deliver(struct pd_client *c, struct pd_event *e)
{
  pd_client_send(c, pd_event_sse(e));
}

static void sse_control(struct pd_client *c, const char *json, size_t len, const char *cursor)
{
  /* control messages are named by their "type": reset, error */
  char type[32] = "message";
  const char *t = strstr(json, "\"type\":\"");
  if (t) {
    t += 8;
    size_t n = strcspn(t, "\"");
    if (n < sizeof type) {
      memcpy(type, t, n);
      type[n] = '\0';
    }
  }
  struct sortie_buf b = {0};
  pd_sse_frame(&b, cursor, type, json, len);
  pd_client_send_copy(c, b.base, b.len);
  sortie_buf_free(&b);
}

static void sse_caught_up(struct pd_client *c, struct pd_job *j, const char *cursor)
{
  (void)j;
  /* an id-only message moves the browser's Last-Event-ID without an event:
   * a reconnect before the next event then resumes from here */
  char line[64];
  int n = snprintf(line, sizeof line, "id: %s\n\n", cursor);
  pd_client_send_copy(c, line, (size_t)n);
}

static void sse_ready(struct pd_client *c, struct pd_job *j)
{
  (void)c;
  (void)j;
}

static void sse_readable(struct pd_client *c)
{
  /* a client sends nothing on an event stream: data or EOF both end it */
  char buf[512];
  ssize_t n = read(c->io.fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
    pd_client_close(c, "peer closed");
}

static void sse_destroy(struct pd_client *c)
{
  (void)c;
}

const struct pd_transport pd_sse_transport = {
    .name = "sse",
    .kind = PD_SSE,
    .deliver = sse_deliver,
    .control = sse_control,
    .ready = sse_ready,
    .caught_up = sse_caught_up,
    .readable = sse_readable,
    .destroy = sse_destroy,
};

struct pd_client *pd_sse_start(int fd, const struct sortie_identity *who, char **channels,
                               uint32_t n, const char *cursor, const char *cors_origin)
{
  struct pd_client *c = pd_client_new(&pd_sse_transport, fd, who);
  struct sortie_buf h = {0};
  sortie_buf_puts(&h, "HTTP/1.1 200 OK\r\n"
                      "Content-Type: text/event-stream; charset=utf-8\r\n"
                      "Cache-Control: no-cache, no-store\r\n"
                      "X-Accel-Buffering: no\r\n"
                      "X-Content-Type-Options: nosniff\r\n"
                      "Connection: close\r\n");
  if (cors_origin)
    sortie_buf_printf(&h, "Access-Control-Allow-Origin: %s\r\n"
                          "Access-Control-Allow-Credentials: true\r\n"
                          "Vary: Origin\r\n", cors_origin);
  /* the first bytes go out at once (a comment), so proxies and browsers see
   * the stream open before the first event */
  sortie_buf_printf(&h, "\r\n: sortie-pushd\nretry: %d\n\n", pd_cfg->push_retry_ms);
  pd_client_send_copy(c, h.base, h.len);
  sortie_buf_free(&h);

  struct pd_sub *subs[4096];
  uint32_t k = 0;
  for (uint32_t i = 0; i < n && k < sizeof subs / sizeof subs[0]; i++)
    subs[k++] = pd_sub_add(c, channels[i]);
  pd_job_start(c, subs, k, cursor);
  return c;
}

static struct pd_chunk *heartbeat_chunk;

static void hb(struct pd_client *c)
{
  pd_client_send(c, heartbeat_chunk);
}

void pd_sse_heartbeat(void)
{
  if (heartbeat_chunk == NULL)
    heartbeat_chunk = pd_chunk_copy(": hb\n\n", 6);
  pd_clients_each(PD_SSE, hb);
}
