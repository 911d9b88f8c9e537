/* Helpers of the presence tests (test_presence*.c, tests/faults/
 * test_presence_faults.c): what REST and the history say of a mission's
 * watchers, what Redis holds, and a second daemon of the world. */
#ifndef SORTIE_TEST_PRESENCE_UTIL_H
#define SORTIE_TEST_PRESENCE_UTIL_H

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_pushd_util.h"

#define PU __attribute__((unused)) static

/* `watching` of GET /api/signals/{sid} (public), or of GET /api/missions/{sid}
 * as `user` when user is not NULL; -1 when absent, -2 when not a 200 */
PU long long rest_watching(const char *sid, const char *user)
{
  char *path = strf(user ? "/api/missions/%s" : "/api/signals/%s", sid);
  char *tok = user ? token_for(user, "user") : NULL;
  struct http_resp r;
  http("GET", path, tok, NULL, NULL, NULL, &r);
  long long v = -2;
  if (r.status == 200) {
    json_object *w = NULL;
    v = json_object_object_get_ex(r.json, "watching", &w) ? json_object_get_int64(w) : -1;
  }
  http_free(&r);
  free(path);
  free(tok);
  return v;
}

/* `watching` in the data of the mission page GET /mission/{sid} renders
 * (its mission-data block), -1 when absent, -2 when the page is not there */
PU long long page_watching(const char *sid)
{
  char *path = strf("/mission/%s", sid);
  struct http_resp r;
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  long long v = -2;
  const char *open = r.status == 200 ? strstr(r.body, "id=\"mission-data\">") : NULL;
  const char *end = open ? strstr(open, "</script>") : NULL;
  if (end) {
    open += strlen("id=\"mission-data\">");
    char *js = strndup(open, (size_t)(end - open));
    json_object *o = json_tokener_parse(js), *w = NULL;
    cr_assert_not_null(o, "the page's mission data is not JSON: %s", js);
    v = json_object_object_get_ex(o, "watching", &w) ? json_object_get_int64(w) : -1;
    json_object_put(o);
    free(js);
  }
  http_free(&r);
  free(path);
  return v;
}

/* waits (bounded) until GET /api/signals/{sid} says `want`; the last value */
PU long long wait_watching(const char *sid, long long want)
{
  long long v = -3;
  for (long long until = now_ms() + T_LONG; now_ms() < until; pc_sleep_ms(50)) {
    v = rest_watching(sid, NULL);
    if (v == want)
      break;
  }
  return v;
}

/* the presence_update events of mission:{sid}'s history, in order: their
 * watching values and ids (malloc'd arrays, *n of them; free_updates) */
struct updates {
  long long *watching;
  char **ids;
  size_t n;
};

PU void free_updates(struct updates *u)
{
  for (size_t i = 0; i < u->n; i++)
    free(u->ids[i]);
  free(u->ids);
  free(u->watching);
  memset(u, 0, sizeof *u);
}

PU struct updates updates_of(const char *sid)
{
  char ch[200];
  snprintf(ch, sizeof ch, "mission:%s", sid);
  json_object *a = rstream(ch);
  size_t len = json_object_array_length(a);
  struct updates u = {calloc(len + 1, sizeof(long long)), calloc(len + 1, sizeof(char *)), 0};
  for (size_t i = 0; i < len; i++) {
    json_object *e = json_object_array_get_idx(a, i);
    const char *t = jget_str(e, "type");
    if (t == NULL || strcmp(t, "presence_update") != 0)
      continue;
    const char *s = jget_str(e, "data.signal_id");
    cr_assert(s && strcmp(s, sid) == 0, "presence_update of %s names %s", sid, s ? s : "none");
    u.watching[u.n] = jget_int(e, "data.watching");
    u.ids[u.n] = strdup(jget_str(e, "id"));
    u.n++;
  }
  json_object_put(a);
  return u;
}

/* the rules every mission's updates keep: never negative, each differs from
 * the one before (none when the count did not change), and consecutive ids
 * at least 1000 ms apart (push.presence_debounce_ms, the default) */
PU void check_updates(const char *sid, const struct updates *u)
{
  for (size_t i = 0; i < u->n; i++) {
    cr_assert_geq(u->watching[i], 0, "%s: update %zu says %lld", sid, i, u->watching[i]);
    if (i == 0)
      continue;
    cr_assert_neq(u->watching[i], u->watching[i - 1],
                  "%s: update %zu repeats %lld (the count did not change)", sid, i,
                  u->watching[i]);
    long long a = atoll(u->ids[i - 1]), b = atoll(u->ids[i]);
    cr_assert_geq(b - a, 1000, "%s: updates %s and %s are %lld ms apart", sid, u->ids[i - 1],
                  u->ids[i], b - a);
  }
}

/* waits (bounded) until the newest presence_update of sid says `want`;
 * checks the rules on the whole history then */
PU void wait_update(const char *sid, long long want)
{
  long long last = -3;
  for (long long until = now_ms() + T_LONG; now_ms() < until; pc_sleep_ms(50)) {
    struct updates u = updates_of(sid);
    last = u.n ? u.watching[u.n - 1] : -3;
    if (last == want) {
      check_updates(sid, &u);
      free_updates(&u);
      return;
    }
    free_updates(&u);
  }
  cr_assert_fail("%s: the newest presence_update says %lld, expected %lld", sid, last, want);
}

/* Redis's record of who holds `user` on sid ("holder expiry_ms ..."; ""
 * when none), malloc'd */
PU char *holding_of(const char *sid, const char *user)
{
  char key[300];
  snprintf(key, sizeof key, "%spres:%s:h", kp(), sid);
  const char *av[] = {"HGET", key, user};
  char *v = rstr(3, av);
  return v ? v : strdup("");
}

/* holders (workers) Redis has for `user` on sid now */
PU int holders_of(const char *sid, const char *user)
{
  char key[300];
  snprintf(key, sizeof key, "%spres:%s:h", kp(), sid);
  const char *av[] = {"HGET", key, user};
  char *v = rstr(3, av);
  int n = 0;
  for (char *p = v; p && *p;) {
    while (*p == ' ')
      p++;
    if (*p == '\0')
      break;
    n++;
    p = strchr(p, ' '); /* holder */
    if (p)
      p = strchr(p + 1, ' '); /* its expiry */
  }
  free(v);
  return n;
}

PU int wait_holders(const char *sid, const char *user, int want)
{
  int n = -1;
  for (long long until = now_ms() + T_LONG; now_ms() < until; pc_sleep_ms(50))
    if ((n = holders_of(sid, user)) == want)
      break;
  return n;
}

/* A sync point: every presence change a worker queued before this call has
 * reached Redis when it returns. A probe user's stream opens and closes;
 * its holding appears and goes in Redis (one worker: the changes queued
 * before it went out by the same tick or before, the one-tick linger of a
 * let-go included). */
PU void presence_sync(const char *sid, const char *push_base)
{
  char probe[96];
  snprintf(probe, sizeof probe, "%s", uniq("probe"));
  char *tok = token_for(probe, "user");
  char *ch = strf("mission:%s", sid);
  char *path = strf("/events?channels=%s", ch);
  struct sse_client *c = sse_open(push_base, path, tok, NULL, NULL, 0, T_SHORT);
  cr_assert(c && c->status == 200, "probe stream");
  cr_assert_eq(wait_holders(sid, probe, 1), 1, "the probe never reached Redis");
  sse_close(c);
  cr_assert_eq(wait_holders(sid, probe, 0), 0, "the probe never left Redis");
  free(path);
  free(ch);
  free(tok);
}

/* A second daemon (its own master) on the world's sortie.conf and `port`,
 * its pid file in extra/ so a crashed run's world stop ends it too. Waits
 * until its /health says 200; base gets its URL. */
PU pid_t start_daemon(int port, char *base, size_t blen)
{
  char bin[1024], pidfile[1200], ps[16], dir[1024];
  snprintf(bin, sizeof bin, "%s/bin/sortie-pushd", getenv("BUILD") ? getenv("BUILD") : "build");
  snprintf(dir, sizeof dir, "%s/extra", world_run());
  mkdir(dir, 0755);
  snprintf(pidfile, sizeof pidfile, "%s/pushd-%d-%d.pid", dir, port, (int)getpid());
  snprintf(ps, sizeof ps, "%d", port);
  snprintf(base, blen, "http://127.0.0.1:%d", port);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int dn = open("/dev/null", O_RDWR);
    dup2(dn, 0);
    dup2(dn, 1);
    execl(bin, bin, "-c", world_conf(), "-P", ps, "-p", pidfile, (char *)NULL);
    _exit(127);
  }
  cr_assert_gt(pid, 0, "fork failed");
  int st = 0;
  for (int i = 0; i < 300 && st != 200; i++) {
    pc_sleep_ms(100);
    json_object_put(health_at(base, &st));
  }
  cr_assert_eq(st, 200, "the second daemon did not come up on %s", base);
  return pid;
}

/* SIGTERM (graceful) or SIGKILL to the daemon. With SIGKILL its workers
 * (the master's children) are killed first, the master stopped meanwhile:
 * a running master would start a new worker for each, and a master killed
 * first would have its workers told to stop gracefully (they get SIGTERM
 * when it dies) */
PU void stop_daemon(pid_t pid, int sig)
{
  if (pid <= 0)
    return;
  if (sig == SIGKILL) {
    kill(pid, SIGSTOP);
    char path[128];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    long w;
    while (f && fscanf(f, "%ld", &w) == 1)
      kill((pid_t)w, SIGKILL);
    if (f)
      fclose(f);
  }
  kill(pid, sig);
  for (int i = 0; i < 200; i++) {
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return;
    pc_sleep_ms(100);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* an SSE tab of `user` on mission:{sid} at base */
PU struct sse_client *tab_sse(const char *base, const char *sid, const char *user)
{
  char *tok = token_for(user, "user");
  char *path = strf("/events?channels=mission:%s", sid);
  struct sse_client *c = sse_open(base, path, tok, NULL, NULL, 0, T_SHORT);
  cr_assert(c && c->status == 200, "SSE tab of %s on %s: %d", user, base, c ? c->status : 0);
  free(path);
  free(tok);
  return c;
}

/* a WebSocket tab of `user` subscribed to mission:{sid} at base */
PU struct ws_client *tab_ws(const char *base, const char *sid, const char *user)
{
  char *tok = token_for(user, "user");
  struct ws_client *c = ws_open(base, "/ws", tok, NULL, 0, T_SHORT);
  cr_assert(c && c->status == 101, "WS tab of %s on %s", user, base);
  json_object_put(ws_next_json(c, T_SHORT)); /* connection_status */
  char *chs = strf("[\"mission:%s\"]", sid);
  ws_subscribe(c, chs, NULL);
  free(chs);
  free(tok);
  return c;
}

/* a fresh signal (its mission the one watched), id in sid */
PU void new_signal(char *sid, size_t n, const char *prefix)
{
  snprintf(sid, n, "%s", uniq(prefix));
  cr_assert_eq(make_signal(sid, 3600), 201, "signal %s", sid);
}

#undef PU
#endif
