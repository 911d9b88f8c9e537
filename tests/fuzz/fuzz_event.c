/* libFuzzer target for the parsers of pushd/event.c: pd_evid_parse (the
 * Last-Event-ID header, ?cursor= and a WebSocket "since" go through it),
 * pd_event_parse (envelopes as they come from Redis) and pd_control_json (the
 * control messages that echo names a client sent).
 *  - an id that parses agrees with sortie_event_id_parse and prints back to
 *    the same id; pd_evid_cmp is an order;
 *  - an envelope that parses has a valid id, a short channel and type without
 *    quotes or backslashes, keeps its bytes, and its SSE frame starts with its
 *    id and type and its WebSocket frame carries it unchanged;
 *  - a control message built from the input (valid UTF-8, up to its first NUL)
 *    is JSON that reads back with the same type and names. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const char *s, size_t size)
{
  struct pd_evid a, b;
  uint64_t ms, seq;
  int r = pd_evid_parse(s, size, &a);
  if ((r == 0) != (sortie_event_id_parse(s, size, &ms, &seq) == 0))
    abort();
  if (r < 0)
    return;
  if (a.ms != ms || a.seq != seq)
    abort();
  char buf[SORTIE_EVENT_ID_MAX + 1];
  size_t n = pd_evid_format(a, buf);
  if (n > SORTIE_EVENT_ID_MAX || strlen(buf) != n || pd_evid_parse(buf, n, &b) < 0 ||
      pd_evid_cmp(a, b) != 0)
    abort();
  struct pd_evid z = {0, 0}, m = {UINT64_MAX, UINT64_MAX};
  if (pd_evid_cmp(z, a) > 0 || pd_evid_cmp(a, m) > 0 || pd_evid_cmp(a, z) != -pd_evid_cmp(z, a))
    abort();
}

/* A name copied out of an envelope: up to `max` bytes, no quote or
 * backslash. (Its bytes are not checked further: envelopes are written by the
 * Lua scripts from checked names, and a NUL in one only shortens it.) */
static int clean(const char *s, size_t max)
{
  return strlen(s) <= max && strchr(s, '"') == NULL && strchr(s, '\\') == NULL;
}

static void check_envelope(const char *s, size_t size)
{
  struct pd_event *e = pd_event_parse(s, size);
  if (e == NULL)
    return;
  if (size < 8 || memcmp(s, "{\"id\":\"", 7) != 0 || s[size - 1] != '}' ||
      !clean(e->channel, SORTIE_CHANNEL_MAX) || !clean(e->type, 64) || e->env->len != size ||
      memcmp(e->env->data, s, size) != 0)
    abort();
  char id[SORTIE_EVENT_ID_MAX + 1], head[200];
  pd_evid_format(e->id, id);
  int hl = e->type[0] ? snprintf(head, sizeof head, "id: %s\nevent: %s\n", id, e->type)
                      : snprintf(head, sizeof head, "id: %s\n", id);
  struct pd_chunk *sse = pd_event_sse(e), *ws = pd_event_ws(e);
  if (pd_event_sse(e) != sse || sse->len < (size_t)hl || memcmp(sse->data, head, (size_t)hl) != 0)
    abort();
  const unsigned char *f = (const unsigned char *)ws->data;
  size_t h = (f[1] & 0x7f) == 126 ? 4 : (f[1] & 0x7f) == 127 ? 10 : 2;
  if (f[0] != 0x81 || ws->len != h + size || memcmp(ws->data + h, s, size) != 0)
    abort();
  pd_event_unref(pd_event_ref(e));
  pd_event_unref(e);
}

/* The control messages: the input's lines as channel names, the whole as a
 * message. Only for valid UTF-8 (the daemon checks client text first). */
static void check_control(const char *s, size_t size)
{
  char *z = malloc(size + 1);
  if (z == NULL)
    return;
  memcpy(z, s, size);
  z[size] = '\0';
  size_t zl = strlen(z);
  if (!sortie_utf8_valid((const unsigned char *)z, zl)) {
    free(z);
    return;
  }
  const char *names[8];
  uint32_t n = 0;
  char *lines = strdup(z);
  for (char *p = lines; n < 8;) {
    names[n++] = p;
    char *nl = strchr(p, '\n');
    if (nl == NULL)
      break;
    *nl = '\0';
    p = nl + 1;
  }
  struct pd_control ms[] = {
      {.kind = PD_CTL_SUBSCRIBED, .channels = names, .nchannels = n},
      {.kind = PD_CTL_UNSUBSCRIBED, .channels = names, .nchannels = 0},
      {.kind = PD_CTL_RESET, .channels = names, .nchannels = 1},
      {.kind = PD_CTL_ERROR, .code = "invalid_channel", .message = z},
  };
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
    struct sortie_buf b = {0};
    const char *why;
    if (pd_control_json(&ms[i], &b) != 0)
      abort();
    json_object *o = sortie_json_parse(b.base, b.len, &why), *v;
    const char *str;
    size_t len;
    if (o == NULL || sortie_json_str(o, "type", &str, &len) != 0 ||
        strcmp(str, pd_control_type(ms[i].kind)) != 0)
      abort();
    if (ms[i].kind == PD_CTL_ERROR) {
      if (sortie_json_str(o, "message", &str, &len) != 0 || len != zl || memcmp(str, z, zl) != 0)
        abort();
    } else if (ms[i].kind == PD_CTL_RESET) {
      if (sortie_json_str(o, "channel", &str, &len) != 0 || strcmp(str, names[0]) != 0)
        abort();
    } else {
      if (!json_object_object_get_ex(o, "channels", &v) ||
          json_object_array_length(v) != ms[i].nchannels)
        abort();
      for (uint32_t k = 0; k < ms[i].nchannels; k++)
        if (strcmp(json_object_get_string(json_object_array_get_idx(v, k)), names[k]) != 0)
          abort();
    }
    json_object_put(o);
    sortie_buf_free(&b);
  }
  free(lines);
  free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s = malloc(size ? size : 1); /* exact size: ASan sees over-reads */
  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  check_id(s, size);
  check_envelope(s, size);
  check_control(s, size);
  free(s);
  return 0;
}
