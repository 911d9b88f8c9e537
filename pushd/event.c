/* Events, chunks, ids and control messages (event.h): one envelope in, one
 * SSE frame and one WebSocket frame out, whatever the number of
 * subscribers. */
#include "event.h"
#include "frame.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pd_chunk *pd_chunk_new(size_t len)
{
  struct pd_chunk *c = sortie_xmalloc(sizeof *c + len);
  c->refs = 1;
  c->len = (uint32_t)len;
  return c;
}

struct pd_chunk *pd_chunk_copy(const void *p, size_t len)
{
  struct pd_chunk *c = pd_chunk_new(len);
  memcpy(c->data, p, len);
  return c;
}

void pd_chunk_unref(struct pd_chunk *c)
{
  if (c && --c->refs == 0)
    free(c);
}

int pd_evid_parse(const char *s, size_t len, struct pd_evid *out)
{
  return sortie_event_id_parse(s, len, &out->ms, &out->seq);
}

size_t pd_evid_format(struct pd_evid id, char *buf)
{
  return (size_t)snprintf(buf, SORTIE_EVENT_ID_MAX + 1, "%llu-%llu", (unsigned long long)id.ms,
                          (unsigned long long)id.seq);
}

/* Copies the JSON string value that follows `key` ("\"id\":\"") at *p into
 * out; the values we read (ids, channel names, types) never hold escapes. */
static int take(const char **p, const char *end, const char *key, char *out, size_t outsz)
{
  size_t kl = strlen(key);
  if ((size_t)(end - *p) < kl || memcmp(*p, key, kl) != 0)
    return -1;
  const char *v = *p + kl;
  const char *q = memchr(v, '"', (size_t)(end - v));
  if (q == NULL || (size_t)(q - v) >= outsz || q == v)
    return -1;
  for (const char *x = v; x < q; x++)
    if (*x == '\\')
      return -1;
  memcpy(out, v, (size_t)(q - v));
  out[q - v] = '\0';
  *p = q + 1;
  return 0;
}

struct pd_event *pd_event_parse(const char *env, size_t len)
{
  struct pd_event e;
  char id[SORTIE_EVENT_ID_MAX + 1];
  memset(&e, 0, sizeof e);
  const char *p = env, *end = env + len;
  if (take(&p, end, "{\"id\":\"", id, sizeof id) < 0 ||
      take(&p, end, ",\"channel\":\"", e.channel, sizeof e.channel) < 0 ||
      take(&p, end, ",\"type\":\"", e.type, sizeof e.type) < 0 ||
      pd_evid_parse(id, strlen(id), &e.id) < 0 || len < 2 || env[len - 1] != '}')
    return NULL;
  struct pd_event *x = sortie_xmalloc(sizeof *x);
  *x = e;
  x->refs = 1;
  x->env = pd_chunk_copy(env, len);
  return x;
}

void pd_event_unref(struct pd_event *e)
{
  if (e == NULL || --e->refs > 0)
    return;
  pd_chunk_unref(e->env);
  pd_chunk_unref(e->sse);
  pd_chunk_unref(e->ws);
  free(e);
}

struct pd_chunk *pd_event_sse(struct pd_event *e)
{
  if (e->sse == NULL) {
    struct sortie_buf b = {0};
    char id[SORTIE_EVENT_ID_MAX + 1];
    pd_evid_format(e->id, id);
    pd_sse_frame(&b, id, e->type, e->env->data, e->env->len);
    e->sse = pd_chunk_copy(b.base, b.len);
    sortie_buf_free(&b);
  }
  return e->sse;
}

struct pd_chunk *pd_event_ws(struct pd_event *e)
{
  if (e->ws == NULL) {
    struct sortie_buf b = {0};
    pd_ws_frame(&b, 1, e->env->data, e->env->len);
    e->ws = pd_chunk_copy(b.base, b.len);
    sortie_buf_free(&b);
  }
  return e->ws;
}

const char *pd_control_type(enum pd_control_kind k)
{
  switch (k) {
  case PD_CTL_SUBSCRIBED: return "subscribed";
  case PD_CTL_UNSUBSCRIBED: return "unsubscribed";
  case PD_CTL_RESET: return "reset";
  case PD_CTL_ERROR: return "error";
  case PD_CTL_CAUGHT_UP: break;
  }
  return "caught_up";
}

int pd_control_json(const struct pd_control *m, struct sortie_buf *out)
{
  switch (m->kind) {
  case PD_CTL_SUBSCRIBED:
  case PD_CTL_UNSUBSCRIBED:
    sortie_buf_printf(out, "{\"type\":\"%s\",\"channels\":[", pd_control_type(m->kind));
    for (uint32_t i = 0; i < m->nchannels; i++) {
      if (i)
        sortie_buf_putc(out, ',');
      sortie_json_quote(out, m->channels[i], strlen(m->channels[i]));
    }
    sortie_buf_puts(out, "]}");
    return 0;
  case PD_CTL_RESET:
    sortie_buf_puts(out, "{\"type\":\"reset\",\"channel\":");
    sortie_json_quote(out, m->channels[0], strlen(m->channels[0]));
    sortie_buf_putc(out, '}');
    return 0;
  case PD_CTL_ERROR:
    sortie_buf_printf(out, "{\"type\":\"error\",\"code\":\"%s\",\"message\":", m->code);
    sortie_json_quote(out, m->message, strlen(m->message));
    sortie_buf_putc(out, '}');
    return 0;
  case PD_CTL_CAUGHT_UP:
    break;
  }
  return -1;
}
