/* Helpers shared by the sortie-pushd integration programs (test_pushd_*.c). */
#ifndef SORTIE_TEST_PUSHD_UTIL_H
#define SORTIE_TEST_PUSHD_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pushclient.h"

#define U __attribute__((unused)) static
/* every wait in these tests is bounded by one of these: upper bounds that only
 * turn a hang into a failure (a 3-5x slower machine, ASan, must not reach
 * them); no test waits them out to show that nothing happens (see
 * sse_expect_only / ws_expect_only) */
#define T_SHORT 10000
#define T_LONG 30000

/* a fresh channel of a kind: "market:MKT_<pid>_<n>" etc. (static ring) */
U const char *chan(const char *kind)
{
  static char ring[8][128];
  static int n;
  char *o = ring[n++ % 8];
  if (strcmp(kind, "market") == 0)
    snprintf(o, sizeof ring[0], "market:%s", uniq("MKT"));
  else
    snprintf(o, sizeof ring[0], "%s:%s", kind, uniq(kind));
  return o;
}

U char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
U char *strf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  return s;
}

/* POST /api/publish as a service; the new event's id (malloc'd), NULL on failure.
 * No assertion: usable from threads. */
U char *publish_id(const char *channel, const char *type, const char *data_json)
{
  char *tok = token_for("test-feed", "service");
  char *body = strf("{\"channel\":\"%s\",\"type\":\"%s\",\"data\":%s}", channel, type, data_json);
  struct http_resp r;
  http("POST", "/api/publish", tok, body, NULL, NULL, &r);
  char *id = NULL;
  if (r.status == 201 && jget_str(r.json, "id"))
    id = strdup(jget_str(r.json, "id"));
  http_free(&r);
  free(body);
  free(tok);
  return id;
}

U char *publish_ok(const char *channel, const char *type, const char *data_json)
{
  char *id = publish_id(channel, type, data_json);
  cr_assert_not_null(id, "publish on %s failed", channel);
  return id;
}

/* publishes n events {"i":k} on channel; ids into ids[] (malloc'd each) */
U void publish_n(const char *channel, int n, char **ids)
{
  for (int i = 0; i < n; i++) {
    char d[64];
    snprintf(d, sizeof d, "{\"i\":%d}", i);
    ids[i] = publish_ok(channel, "market_update", d);
  }
}

U void free_ids(char **ids, int n)
{
  for (int i = 0; i < n; i++)
    free(ids[i]);
}

/* the current cursor (GET /api/events without one) for channels, as a service */
U char *cursor_now(const char *channels)
{
  char *tok = token_for("test-reader", "service");
  char *path = strf("/api/events?channels=%s", channels);
  struct http_resp r;
  http("GET", path, tok, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "/api/events: %ld %s", r.status, r.body);
  const char *c = jget_str(r.json, "cursor");
  cr_assert(c && *c, "no cursor: %s", r.body);
  char *out = strdup(c);
  http_free(&r);
  free(path);
  free(tok);
  return out;
}

/* The world's sortie-pushd: its master's pid (from pushd.pid), its first
 * worker's (the master's child; the master itself when /proc cannot say),
 * and a line of that worker's /proc status ("VmRSS:", "VmHWM:") in KiB, -1 */
U long pushd_master_pid(void)
{
  long p = world_pid("pushd.pid");
  return p > 0 ? p : -1;
}

U long pushd_worker_pid(void)
{
  long master = pushd_master_pid(), worker = 0;
  char path[128];
  snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", master, master);
  FILE *f = fopen(path, "r");
  if (f) {
    if (fscanf(f, "%ld", &worker) != 1)
      worker = 0;
    fclose(f);
  }
  return worker > 0 ? worker : master;
}

/* A "VmRSS:"-style field of /proc/PID/status, in KiB (-1 if unreadable). */
U long pid_kib(long pid, const char *field)
{
  char path[128], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  long kib = -1;
  size_t fl = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, fl) == 0)
      kib = atol(line + fl);
  if (f)
    fclose(f);
  return kib;
}

U long pushd_worker_kib(const char *field)
{
  return pid_kib(pushd_worker_pid(), field);
}

/* GET on the daemon, Authorization from token when not NULL */
U int pd_get(const char *path, const char *token, const char *extra, struct pc_resp *out,
             int timeout_ms)
{
  char *h = strf("%s%s%s%s", token ? "Authorization: Bearer " : "", token ? token : "",
                 token ? "\r\n" : "", extra ? extra : "");
  int rc = pc_get(world_push_base(), path, h, out, timeout_ms);
  free(h);
  return rc;
}

/* GET /health of the daemon at base, parsed (json_object_put it); status too */
U json_object *health_at(const char *base, int *status)
{
  struct pc_resp r;
  json_object *o = NULL;
  *status = 0;
  if (pc_get(base, "/health", NULL, &r, T_SHORT) == 0) {
    *status = r.status;
    o = json_tokener_parse(r.body);
  }
  pc_resp_free(&r);
  return o;
}

/* a sample of /metrics: the value of the series `name` exactly as written
 * (labels included), -1 when absent */
U double metric_of(const char *text, const char *name)
{
  size_t nl = strlen(name);
  for (const char *p = text; p && *p;) {
    const char *eol = strchr(p, '\n');
    if (strncmp(p, name, nl) == 0 && p[nl] == ' ')
      return strtod(p + nl + 1, NULL);
    p = eol ? eol + 1 : NULL;
  }
  return -1;
}

U char *metrics_text(void)
{
  struct pc_resp r;
  cr_assert_eq(pc_get(world_push_base(), "/metrics", NULL, &r, T_SHORT), 0, "no /metrics");
  cr_assert_eq(r.status, 200);
  char *t = strdup(r.body);
  pc_resp_free(&r);
  return t;
}

U double metric(const char *name)
{
  char *t = metrics_text();
  double v = metric_of(t, name);
  free(t);
  return v;
}

/* an SSE stream on the daemon (or through Apache when base says so) */
U struct sse_client *sse_at(const char *base, const char *prefix, const char *channels,
                            const char *token, const char *cursor, const char *last_event_id)
{
  char *path = strf("%s/events?channels=%s%s%s", prefix, channels, cursor ? "&cursor=" : "",
                    cursor ? cursor : "");
  struct sse_client *c = sse_open(base, path, token, last_event_id, NULL, 0, T_SHORT);
  free(path);
  cr_assert_not_null(c, "no SSE answer for %s", channels);
  return c;
}

U struct sse_client *sse_ok(const char *channels, const char *token, const char *cursor,
                            const char *last_event_id)
{
  struct sse_client *c = sse_at(world_push_base(), "", channels, token, cursor, last_event_id);
  cr_assert_eq(c->status, 200, "SSE %s: %d %s", channels, c->status, c->body ? c->body : "");
  return c;
}

/* a WebSocket on the daemon, past its connection_status message */
U struct ws_client *ws_ok(const char *token)
{
  struct ws_client *c = ws_open(world_push_base(), "/ws", token, NULL, 0, T_SHORT);
  cr_assert_not_null(c, "no WebSocket answer");
  cr_assert_eq(c->status, 101, "WS handshake: %d %s", c->status, c->body ? c->body : "");
  cr_assert(c->accept_ok, "bad Sec-WebSocket-Accept");
  json_object *hello = ws_next_json(c, T_SHORT);
  cr_assert_not_null(hello, "no first message");
  cr_assert_str_eq(jget_str(hello, "type"), "connection_status");
  cr_assert_str_eq(jget_str(hello, "status"), "connected");
  cr_assert_not_null(jget_str(hello, "connection_id"));
  json_object_put(hello);
  return c;
}

/* sends a subscribe (channels: JSON array text; since: JSON value text or
 * NULL) and checks the "subscribed" answer names them */
U void ws_subscribe(struct ws_client *c, const char *channels_json, const char *since_json)
{
  char *m = strf("{\"action\":\"subscribe\",\"channels\":%s%s%s}", channels_json,
                 since_json ? ",\"since\":" : "", since_json ? since_json : "");
  cr_assert_eq(ws_send_text(c, m), 0);
  free(m);
  json_object *a = ws_next_json(c, T_SHORT);
  cr_assert_not_null(a, "no answer to subscribe %s", channels_json);
  cr_assert_str_eq(jget_str(a, "type"), "subscribed", "%s", json_object_to_json_string(a));
  json_object *want = json_tokener_parse(channels_json), *got = NULL;
  cr_assert(json_object_object_get_ex(a, "channels", &got));
  cr_assert(json_object_equal(want, got), "subscribed %s, asked %s",
            json_object_to_json_string(got), channels_json);
  json_object_put(want);
  json_object_put(a);
}

/* the next WS message, which must be an error with this code */
U void ws_expect_error(struct ws_client *c, const char *code)
{
  json_object *e = ws_next_json(c, T_SHORT);
  cr_assert_not_null(e, "no answer (expected error %s)", code);
  cr_assert_str_eq(jget_str(e, "type"), "error", "%s", json_object_to_json_string(e));
  cr_assert_str_eq(jget_str(e, "code"), code, "%s", json_object_to_json_string(e));
  cr_assert(jget_str(e, "message") && *jget_str(e, "message"));
  json_object_put(e);
}

/* a text message made with printf */
U int ws_sendf(struct ws_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
U int ws_sendf(struct ws_client *c, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int rc = vasprintf(&s, fmt, ap) < 0 ? -1 : ws_send_text(c, s);
  va_end(ap);
  free(s);
  return rc;
}

/* the "id" of an envelope's text */
U char *env_id(const char *env)
{
  json_object *o = json_tokener_parse(env);
  cr_assert_not_null(o, "not JSON: %s", env);
  const char *id = jget_str(o, "id");
  cr_assert_not_null(id, "no id: %s", env);
  char *s = strdup(id);
  json_object_put(o);
  return s;
}

/* the SSE stream has exactly the events with these ids, in order; each id:
 * line equals the envelope's id and event: its type */
U void sse_expect_ids(struct sse_client *c, char **ids, int n, size_t from)
{
  cr_assert_geq(sse_read_events(c, from + (size_t)n, T_LONG), from + (size_t)n,
                "SSE got %zu events, expected %zu", c->nevents, from + (size_t)n);
  for (int i = 0; i < n; i++) {
    const struct sse_msg *m = sse_event(c, from + (size_t)i);
    cr_assert_not_null(m->id, "event %d without id", i);
    cr_assert_str_eq(m->id, ids[i], "SSE event %zu: id %s, expected %s", from + (size_t)i, m->id,
                     ids[i]);
    char *eid = env_id(m->data);
    cr_assert_str_eq(eid, ids[i]);
    free(eid);
    json_object *o = json_tokener_parse(m->data);
    cr_assert_str_eq(m->event, jget_str(o, "type"));
    json_object_put(o);
  }
}

/* the next n WS text messages are the envelopes with these ids, in order */
U void ws_expect_ids(struct ws_client *c, char **ids, int n)
{
  for (int i = 0; i < n; i++) {
    const char *t = ws_next_text(c, T_LONG);
    cr_assert_not_null(t, "WS: message %d of %d missing", i, n);
    char *eid = env_id(t);
    cr_assert_str_eq(eid, ids[i], "WS message %d: %s, expected id %s", i, t, ids[i]);
    free(eid);
  }
}

/* "Nothing more arrives", without a quiet window that a merely late duplicate
 * would miss: publishes a marker event on `channel` (which the client follows)
 * and reads up to it. sse_expect_only asserts that the client holds exactly
 * `n` events before the marker (the marker is then event n); ws_expect_only
 * that the next text message is the marker. Returns the marker's id
 * (malloc'd). */
U char *sse_expect_only(struct sse_client *c, const char *channel, size_t n)
{
  char *m = publish_ok(channel, "test_marker", "{\"marker\":1}");
  size_t at = (size_t)-1;
  for (size_t i = 0; at == (size_t)-1; i++) {
    if (i >= c->nevents && sse_read_events(c, i + 1, T_LONG) <= i)
      break;
    const struct sse_msg *e = sse_event(c, i);
    if (e->id && strcmp(e->id, m) == 0)
      at = i;
  }
  cr_assert_neq(at, (size_t)-1, "the marker %s never came (%zu events)", m, c->nevents);
  cr_assert_eq(at, n, "%zu events came before the marker, expected %zu (a duplicate or a stray)",
               at, n);
  return m;
}

U char *ws_expect_only(struct ws_client *c, const char *channel)
{
  char *m = publish_ok(channel, "test_marker", "{\"marker\":1}");
  const char *t = ws_next_text(c, T_LONG);
  cr_assert_not_null(t, "the marker %s never came", m);
  json_object *o = json_tokener_parse(t);
  const char *id = o ? jget_str(o, "id") : NULL;
  cr_assert(id && strcmp(id, m) == 0, "unexpected WS message before the marker %s: %s", m, t);
  json_object_put(o);
  return m;
}

/* both at once, publishing one marker that each must see next */
U void sse_ws_expect_only(struct sse_client *s, size_t n, struct ws_client *w, const char *channel)
{
  char *m = sse_expect_only(s, channel, n);
  const char *t = ws_next_text(w, T_LONG);
  cr_assert_not_null(t, "the marker %s never came on the WS", m);
  json_object *o = json_tokener_parse(t);
  const char *id = o ? jget_str(o, "id") : NULL;
  cr_assert(id && strcmp(id, m) == 0, "unexpected WS message before the marker %s: %s", m, t);
  json_object_put(o);
  free(m);
}

/* user `sub`'s connection slots in Redis (PUSHD.md, push.max_conn_per_user):
 * member -> score (the time it counts until), as parallel arrays (n
 * returned); free them with free_slots */
U size_t slots_of(const char *sub, char ***members, long long **scores)
{
  char key[256];
  snprintf(key, sizeof key, "%sconns:%s", kp(), sub);
  const char *zr[] = {"ZRANGE", key, "0", "-1", "WITHSCORES"};
  sortie_reply *r = rcmd(5, zr);
  cr_assert(r && sortie_reply_type(r) == SORTIE_REPLY_ARRAY);
  size_t n = sortie_reply_len(r) / 2;
  *members = calloc(n + 1, sizeof **members);
  *scores = calloc(n + 1, sizeof **scores);
  for (size_t i = 0; i < n; i++) {
    size_t l;
    const char *m = sortie_reply_str(sortie_reply_at(r, 2 * i), &l);
    (*members)[i] = strndup(m, l);
    (*scores)[i] = atoll(sortie_reply_str(sortie_reply_at(r, 2 * i + 1), &l));
  }
  sortie_reply_free(r);
  return n;
}

U void free_slots(char **members, long long *scores, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(members[i]);
  free(members);
  free(scores);
}

#undef U

#endif
