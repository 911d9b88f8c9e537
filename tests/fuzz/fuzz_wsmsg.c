/* libFuzzer target for the WebSocket client messages
 * ({"action":"subscribe","channels":[..],"since":..}, unsubscribe, ping).
 *
 * pushd/ws.c parses them in static functions (on_text, subscribe,
 * unsubscribe) tied to a live connection, so this target walks the same path
 * through the public functions those call, in the same order:
 * sortie_utf8_valid, sortie_json_parse, sortie_json_str("action"), the
 * "channels" array, SORTIE_CHANNEL_MAX and sortie_channel_parse,
 * sortie_auth_may_read, the "since" object or string and pd_evid_parse, and
 * pd_control_json for the answer. It checks:
 *  - sortie_channel_parse against a classifier written here from the grammar
 *    in valid.h (kind [a-z]{1,16}, ":" + an id, the five kinds);
 *  - a subscribe that would be accepted names only readable channels: a user
 *    gets user:<own id> and no admin, whatever the spelling;
 *  - every "since" that would be accepted is "" or an id that prints back;
 *  - the "subscribed" / "unsubscribed" answers for the accepted names are JSON
 *    that reads back with the same names.
 * Not covered: the code of ws.c itself (the copy of its order here can drift
 * from it), the frames before the text (wslay), the per-connection channel
 * limit and what subscribing does (Redis, resume). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "event.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* valid.h's grammar, written again without looking at valid.c's loops */
static int ref_idchar(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.' || c == '-';
}

static enum sortie_chan_kind ref_channel(const char *s, size_t len)
{
  const char *colon = memchr(s, ':', len);
  size_t k = colon ? (size_t)(colon - s) : len;
  if (k < 1 || k > 16)
    return SORTIE_CHAN_INVALID;
  for (size_t i = 0; i < k; i++)
    if (s[i] < 'a' || s[i] > 'z')
      return SORTIE_CHAN_INVALID;
  const char *a = colon ? colon + 1 : NULL;
  size_t al = colon ? len - k - 1 : 0;
  if (colon) {
    if (al < 1 || al > 64 || (al == 1 && a[0] == '.') || (al == 2 && a[0] == '.' && a[1] == '.'))
      return SORTIE_CHAN_INVALID;
    for (size_t i = 0; i < al; i++)
      if (!ref_idchar(a[i]))
        return SORTIE_CHAN_INVALID;
  }
  if (!colon)
    return k == 7 && !memcmp(s, "signals", 7) ? SORTIE_CHAN_SIGNALS
           : k == 5 && !memcmp(s, "admin", 5) ? SORTIE_CHAN_ADMIN
                                              : SORTIE_CHAN_UNKNOWN;
  if (k == 7 && !memcmp(s, "mission", 7))
    return SORTIE_CHAN_MISSION;
  if (k == 4 && !memcmp(s, "user", 4))
    return SORTIE_CHAN_USER;
  if (k == 6 && !memcmp(s, "market", 6)) {
    if (al > 32)
      return SORTIE_CHAN_UNKNOWN;
    for (size_t i = 0; i < al; i++)
      if (a[i] >= 'a' && a[i] <= 'z')
        return SORTIE_CHAN_UNKNOWN;
    return SORTIE_CHAN_MARKET;
  }
  return SORTIE_CHAN_UNKNOWN;
}

static enum sortie_chan_kind channel(const char *s, size_t len)
{
  const char *arg = NULL;
  size_t al = 0;
  enum sortie_chan_kind k = sortie_channel_parse(s, len, &arg, &al);
  if (k != ref_channel(s, len))
    abort();
  return k;
}

/* ws.c's since_for */
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

static void check_answer(enum pd_control_kind kind, const char **names, uint32_t n)
{
  struct pd_control m = {.kind = kind, .channels = names, .nchannels = n};
  struct sortie_buf b = {0};
  const char *why;
  json_object *v;
  if (pd_control_json(&m, &b) != 0)
    abort();
  json_object *o = sortie_json_parse(b.base, b.len, &why);
  if (o == NULL || !json_object_object_get_ex(o, "channels", &v) ||
      json_object_array_length(v) != n)
    abort();
  for (uint32_t i = 0; i < n; i++)
    if (strcmp(json_object_get_string(json_object_array_get_idx(v, i)), names[i]) != 0)
      abort();
  json_object_put(o);
  sortie_buf_free(&b);
}

static void subscribe(const struct sortie_identity *who, json_object *msg)
{
  json_object *chans, *since = NULL;
  if (!json_object_object_get_ex(msg, "channels", &chans) ||
      !json_object_is_type(chans, json_type_array) || json_object_array_length(chans) == 0)
    return; /* bad_request */
  json_object_object_get_ex(msg, "since", &since);
  if (since && !json_object_is_type(since, json_type_object) &&
      !json_object_is_type(since, json_type_string))
    return; /* bad_since */
  size_t n = json_object_array_length(chans);
  const char **names = malloc(n * sizeof *names);
  for (size_t i = 0; i < n; i++) {
    json_object *v = json_object_array_get_idx(chans, i);
    const char *name = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    size_t len = name ? strlen(name) : 0;
    if (name == NULL || len > SORTIE_CHANNEL_MAX ||
        channel(name, len) <= SORTIE_CHAN_UNKNOWN || !sortie_auth_may_read(who, name, len)) {
      free(names);
      return; /* invalid_channel, forbidden */
    }
    const char *sv = since_for(since, name);
    struct pd_evid p;
    if (sv == NULL || (*sv && pd_evid_parse(sv, strlen(sv), &p) < 0)) {
      free(names);
      return; /* bad_since */
    }
    names[i] = name;
  }
  /* accepted: check what was let through */
  for (size_t i = 0; i < n; i++) {
    const char *name = names[i], *sv = since_for(since, name);
    enum sortie_chan_kind k = ref_channel(name, strlen(name));
    if (who->role == SORTIE_ROLE_USER &&
        (k == SORTIE_CHAN_ADMIN || (k == SORTIE_CHAN_USER && strcmp(name + 5, who->sub) != 0)))
      abort();
    if (*sv) {
      struct pd_evid p, q;
      char buf[SORTIE_EVENT_ID_MAX + 1];
      if (pd_evid_parse(sv, strlen(sv), &p) < 0)
        abort();
      size_t bl = pd_evid_format(p, buf);
      if (pd_evid_parse(buf, bl, &q) < 0 || pd_evid_cmp(p, q) != 0)
        abort();
    }
  }
  check_answer(PD_CTL_SUBSCRIBED, names, (uint32_t)n);
  free(names);
}

static void unsubscribe(json_object *msg)
{
  json_object *chans;
  if (!json_object_object_get_ex(msg, "channels", &chans) ||
      !json_object_is_type(chans, json_type_array))
    return;
  size_t n = json_object_array_length(chans);
  const char **names = malloc((n ? n : 1) * sizeof *names);
  uint32_t k = 0;
  for (size_t i = 0; i < n; i++) {
    json_object *v = json_object_array_get_idx(chans, i);
    /* ws.c names only channels it finds subscribed: stand in with the valid ones */
    if (json_object_is_type(v, json_type_string) &&
        channel(json_object_get_string(v), strlen(json_object_get_string(v))) >
            SORTIE_CHAN_UNKNOWN)
      names[k++] = json_object_get_string(v);
  }
  check_answer(PD_CTL_UNSUBSCRIBED, names, k);
  free(names);
}

static void on_text(const struct sortie_identity *who, const char *p, size_t len)
{
  if (!sortie_utf8_valid((const unsigned char *)p, len))
    return; /* closed with 1007 */
  const char *why = NULL;
  json_object *msg = sortie_json_parse(p, len, &why);
  if (msg == NULL) {
    if (why == NULL || why[0] == '\0')
      abort(); /* the error message needs a reason */
    return;
  }
  if (!json_object_is_type(msg, json_type_object)) {
    json_object_put(msg);
    return;
  }
  const char *action = NULL;
  size_t al;
  sortie_json_str(msg, "action", &action, &al);
  if (action && strcmp(action, "subscribe") == 0)
    subscribe(who, msg);
  else if (action && strcmp(action, "unsubscribe") == 0)
    unsubscribe(msg);
  json_object_put(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s = malloc(size ? size : 1); /* exact size: ASan sees over-reads */
  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  struct sortie_identity user = {.sub = "u1", .role = SORTIE_ROLE_USER, .exp = 1},
                         admin = {.sub = "ops", .role = SORTIE_ROLE_ADMIN, .exp = 1};
  on_text(&user, s, size);
  on_text(&admin, s, size);
  channel(s, size); /* the whole input as a channel name (?channels= items too) */
  free(s);
  return 0;
}
