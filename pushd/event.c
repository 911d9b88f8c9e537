/* Events as they come from Redis, and the shared chunks their encodings live
 * in: one envelope in, one SSE frame and one WebSocket frame out, whatever the
 * number of subscribers. */
#include "pushd.h"

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

int pd_pos_parse(const char *s, size_t len, struct pd_pos *out)
{
  return sortie_stream_id_parse(s, len, &out->ms, &out->seq);
}

size_t pd_pos_format(struct pd_pos p, char *buf)
{
  return (size_t)snprintf(buf, SORTIE_STREAM_ID_MAX + 1, "%llu-%llu", (unsigned long long)p.ms,
                          (unsigned long long)p.seq);
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
  memset(&e, 0, sizeof e);
  const char *p = env, *end = env + len;
  if (take(&p, end, "{\"id\":\"", e.id, sizeof e.id) < 0 ||
      take(&p, end, ",\"channel\":\"", e.channel, sizeof e.channel) < 0 ||
      take(&p, end, ",\"type\":\"", e.type, sizeof e.type) < 0 ||
      pd_pos_parse(e.id, strlen(e.id), &e.pos) < 0 || len < 2 || env[len - 1] != '}')
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
    pd_sse_frame(&b, e->id, e->type, e->env->data, e->env->len);
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
