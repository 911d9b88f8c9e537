/* Two sortie-pushd daemons (two masters) on one Redis behind Apache's
 * mod_proxy_balancer (conf/apache/sortie-push-balanced.conf, no stickiness):
 * streams through /push/ land on both, every client gets every event once in
 * order, and a client that moves from one daemon to the other resumes from
 * its cursor without a gap or a duplicate. The world's own daemon is A (on
 * PUSH_PORT); each test starts B on a port chosen before Apache starts. */
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_pushd_util.h"

static const char *two_members(void)
{
  static char m[128];
  snprintf(m, sizeof m, "127.0.0.1:%s 127.0.0.1:%d", getenv("PUSH_PORT"), world_free_port());
  setenv("PUSH_MEMBERS", m, 1);
  return NULL;
}
SORTIE_WORLD_PREPARE(two_members);

static pid_t b_pid;
static char b_base[64];

static int b_port(void)
{
  const char *m = getenv("PUSH_MEMBERS");
  cr_assert_not_null(m, "no PUSH_MEMBERS in the world");
  const char *sp = strrchr(m, ':');
  return atoi(sp + 1);
}

/* daemon B: its own master, the world's sortie.conf, its own port; its pid
 * file in extra/ so that a crashed run's world stop ends it too */
static void start_b(void)
{
  char bin[1024], pidfile[1024], port[16];
  snprintf(bin, sizeof bin, "%s/bin/sortie-pushd", getenv("BUILD") ? getenv("BUILD") : "build");
  snprintf(pidfile, sizeof pidfile, "%s/extra/pushd-b-%d.pid", world_run(), (int)getpid());
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/extra", world_run());
  mkdir(dir, 0755);
  snprintf(port, sizeof port, "%d", b_port());
  snprintf(b_base, sizeof b_base, "http://127.0.0.1:%d", b_port());
  b_pid = fork();
  if (b_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int dn = open("/dev/null", O_RDWR);
    dup2(dn, 0);
    dup2(dn, 1);
    execl(bin, bin, "-c", world_conf(), "-P", port, "-p", pidfile, (char *)NULL);
    _exit(127);
  }
  cr_assert_gt(b_pid, 0, "fork failed");
  int st = 0;
  for (int i = 0; i < 300 && st != 200; i++) {
    pc_sleep_ms(100);
    json_object_put(health_at(b_base, &st));
  }
  cr_assert_eq(st, 200, "daemon B did not come up on %s", b_base);
}

static void stop_b(void)
{
  if (b_pid <= 0)
    return;
  kill(b_pid, SIGTERM);
  for (int i = 0; i < 200; i++) {
    if (waitpid(b_pid, NULL, WNOHANG) == b_pid) {
      b_pid = 0;
      return;
    }
    pc_sleep_ms(100);
  }
  kill(b_pid, SIGKILL);
  waitpid(b_pid, NULL, 0);
  b_pid = 0;
}

/* connections.<kind> of the daemon at base, read on its own port */
static long conns(const char *base, const char *kind)
{
  int st;
  json_object *h = health_at(base, &st);
  char path[64];
  snprintf(path, sizeof path, "connections.%s", kind);
  long v = st == 200 && h ? (long)jget_int(h, path) : -1;
  json_object_put(h);
  return v;
}

/* waits (bounded) until A and B together hold `total` connections of `kind`;
 * then both must hold some */
static void expect_spread(const char *kind, long total)
{
  long a = 0, b = 0;
  for (int i = 0; i < 300; i++) {
    a = conns(world_push_base(), kind);
    b = conns(b_base, kind);
    if (a + b >= total)
      break;
    pc_sleep_ms(100);
  }
  cr_assert_eq(a + b, total, "%s: A has %ld, B %ld, %ld opened through Apache", kind, a, b,
               total);
  cr_assert(a > 0 && b > 0, "%s through the balancer all on one daemon: A %ld, B %ld", kind, a, b);
}

#define NC 4 /* clients of each kind through Apache */
#define NE 6 /* events */

/* long-polls through Apache (each poll may land on either daemon) from
 * `cursor` until `marker` comes; the ids seen before it must be ids[0..n) */
static void poll_until(const char *ch, const char *tok, const char *cursor, char **ids, int n,
                       const char *marker, int first_fd)
{
  char *auth = strf("Authorization: Bearer %s\r\n", tok);
  char *cur = strdup(cursor);
  int got = 0, fd = first_fd, done = 0;
  /* a hang bound for the whole exchange, not per poll */
  long long until = pc_now() + T_LONG;
  for (int round = 0; !done && round < 2 * n + 4 && pc_now() < until; round++) {
    if (fd < 0) {
      char *p = strf("/push/poll?channels=%s&cursor=%s&timeout=5", ch, cur);
      fd = pc_get_send(world_base(), p, auth, T_SHORT);
      free(p);
      cr_assert_geq(fd, 0, "no long-poll connection");
    }
    struct pc_resp r;
    cr_assert_eq(pc_get_finish(fd, &r, T_LONG), 0, "no long-poll answer");
    fd = -1;
    cr_assert_eq(r.status, 200, "/push/poll: %d %s", r.status, r.body);
    char **items;
    long k = pc_json_raw_items(r.body, "events", &items);
    for (long i = 0; i < k && !done; i++) {
      char *id = env_id(items[i]);
      if (strcmp(id, marker) == 0)
        done = 1;
      else {
        cr_assert_lt(got, n, "long-poll: more events than published: %s", r.body);
        cr_assert_str_eq(id, ids[got], "long-poll event %d: %s, expected %s", got, id, ids[got]);
        got++;
      }
      free(id);
    }
    pc_strv_free(items, k);
    json_object *o = json_tokener_parse(r.body);
    cr_assert_not_null(jget_str(o, "cursor"), "no cursor: %s", r.body);
    free(cur);
    cur = strdup(jget_str(o, "cursor"));
    json_object_put(o);
    pc_resp_free(&r);
  }
  cr_assert(done, "long-poll: the marker %s never came (%d events)", marker, got);
  cr_assert_eq(got, n, "long-poll: %d events before the marker, expected %d", got, n);
  free(cur);
  free(auth);
}

/* streams, WebSockets and long-polls through /push/ land on both daemons
 * (each one's /health, on its own port, counts some), and each client gets
 * every event once, in order, up to a marker */
static void spread_and_deliver(void)
{
  const char *ch = chan("market");
  char *c0 = cursor_now(ch);
  /* one user per transport: 3 x NC connections of one user would pass
   * push.max_conn_per_user (10) */
  char *tok = token_for(uniq("u"), "user");
  char *wtok = token_for(uniq("u"), "user");
  char *ptok = token_for(uniq("u"), "user");

  struct sse_client *s[NC];
  struct ws_client *w[NC];
  int pfd[NC];
  char *auth = strf("Authorization: Bearer %s\r\n", ptok);
  char *ppath = strf("/push/poll?channels=%s&cursor=%s&timeout=25", ch, c0);
  char *wch = strf("[\"%s\"]", ch);
  char *since = strf("\"%s\"", c0);
  for (int i = 0; i < NC; i++) {
    s[i] = sse_at(world_base(), "/push", ch, tok, c0, NULL);
    cr_assert_eq(s[i]->status, 200, "/push/events: %d %s", s[i]->status, s[i]->body);
    cr_assert_not_null(sse_wait_idonly(s[i], T_SHORT), "SSE %d never caught up", i);
  }
  for (int i = 0; i < NC; i++) {
    w[i] = ws_open(world_base(), "/push/ws", wtok, NULL, 0, T_SHORT);
    cr_assert(w[i] && w[i]->status == 101, "/push/ws: %d", w[i] ? w[i]->status : 0);
    json_object_put(ws_next_json(w[i], T_SHORT));
    ws_subscribe(w[i], wch, since);
  }
  for (int i = 0; i < NC; i++) {
    pfd[i] = pc_get_send(world_base(), ppath, auth, T_SHORT);
    cr_assert_geq(pfd[i], 0);
  }
  /* each daemon's own /health: both hold some of each kind */
  expect_spread("sse", NC);
  expect_spread("ws", NC);
  expect_spread("poll", NC);

  char *ids[NE];
  publish_n(ch, NE, ids);
  /* the end is a marker event, not a quiet window */
  char *mark = publish_ok(ch, "test_marker", "{\"marker\":1}");
  for (int i = 0; i < NC; i++) {
    sse_expect_ids(s[i], ids, NE, 0);
    cr_assert_geq(sse_read_events(s[i], NE + 1, T_LONG), NE + 1, "SSE %d: no marker", i);
    cr_assert_str_eq(sse_event(s[i], NE)->id, mark, "SSE %d: a duplicate or stray before the marker",
                     i);
    ws_expect_ids(w[i], ids, NE);
    const char *t = ws_next_text(w[i], T_LONG);
    cr_assert_not_null(t, "WS %d: no marker", i);
    char *id = env_id(t);
    cr_assert_str_eq(id, mark, "WS %d: a duplicate or stray before the marker", i);
    free(id);
    poll_until(ch, ptok, c0, ids, NE, mark, pfd[i]);
  }
  for (int i = 0; i < NC; i++) {
    sse_close(s[i]);
    ws_close(w[i]);
  }
  free(mark);
  free_ids(ids, NE);
  free(since);
  free(wch);
  free(ppath);
  free(auth);
  free(ptok);
  free(wtok);
  free(tok);
  free(c0);
}

static void stop_b_restart_a(void)
{
  stop_b();
  /* leave the world as found: A back on PUSH_PORT */
  if (conns(world_push_base(), "sse") < 0)
    world_ctl("pushd-start");
}

/* An SSE stream (Last-Event-ID), a WebSocket (since) and a long-poller
 * (cursor) on daemon A's own port; A stops gracefully; events are published
 * meanwhile; each reconnects through the balancer (which now finds only B)
 * from what it had, and gets the missed events, then live ones, each once, in
 * order. */
static void move_and_resume(void)
{
  const char *ch = chan("market");
  char *c0 = cursor_now(ch);
  char *tok = token_for(uniq("u"), "user");
  char *wch = strf("[\"%s\"]", ch);

  struct sse_client *s = sse_ok(ch, tok, c0, NULL);
  cr_assert_not_null(sse_wait_idonly(s, T_SHORT));
  struct ws_client *w = ws_ok(tok);
  char *since0 = strf("\"%s\"", c0);
  ws_subscribe(w, wch, since0);

  char *before[3];
  publish_n(ch, 3, before);
  sse_expect_ids(s, before, 3, 0);
  ws_expect_ids(w, before, 3);
  char *last = strdup(sse_last_id(s));
  cr_assert_str_eq(last, before[2]);

  /* A goes away gracefully: its streams end */
  cr_assert_eq(world_ctl("pushd-stop"), 0, "pushd-stop failed");
  cr_assert_eq(sse_wait_closed(s, T_LONG), 1, "A's SSE stream did not end when A stopped");
  cr_assert_eq(ws_wait_eof(w, T_LONG), 1, "A's WebSocket did not end when A stopped");
  sse_close(s);
  ws_close(w);

  /* missed while reconnecting */
  char *gap[3];
  publish_n(ch, 3, gap);

  /* reconnect through the balancer, as EventSource does: a refused attempt
   * (a stale pooled connection to A) is retried */
  struct sse_client *s2 = NULL;
  for (int i = 0; i < 20; i++) {
    s2 = sse_at(world_base(), "/push", ch, tok, NULL, last);
    if (s2->status == 200)
      break;
    sse_close(s2);
    s2 = NULL;
    pc_sleep_ms(500);
  }
  cr_assert_not_null(s2, "no SSE through the balancer after A stopped");
  struct ws_client *w2 = NULL;
  for (int i = 0; i < 20; i++) {
    w2 = ws_open(world_base(), "/push/ws", tok, NULL, 0, T_SHORT);
    if (w2 && w2->status == 101)
      break;
    if (w2)
      ws_close(w2);
    w2 = NULL;
    pc_sleep_ms(500);
  }
  cr_assert_not_null(w2, "no WebSocket through the balancer after A stopped");
  json_object_put(ws_next_json(w2, T_SHORT));
  char *since = strf("\"%s\"", last);
  ws_subscribe(w2, wch, since);
  /* both now on B: B's own /health counts them */
  long bs = 0, bw = 0;
  for (int i = 0; i < 300 && (bs < 1 || bw < 1); i++) {
    bs = conns(b_base, "sse");
    bw = conns(b_base, "ws");
    if (bs < 1 || bw < 1)
      pc_sleep_ms(100);
  }
  cr_assert(bs >= 1 && bw >= 1, "B holds sse %ld ws %ld after the move", bs, bw);

  char *after[3];
  publish_n(ch, 3, after);
  char *mark = publish_ok(ch, "test_marker", "{\"marker\":1}");
  char *want[6] = {gap[0], gap[1], gap[2], after[0], after[1], after[2]};
  sse_expect_ids(s2, want, 6, 0);
  cr_assert_geq(sse_read_events(s2, 7, T_LONG), 7, "SSE: no marker after the move");
  cr_assert_str_eq(sse_event(s2, 6)->id, mark, "SSE: a duplicate or stray after the move");
  ws_expect_ids(w2, want, 6);
  const char *t = ws_next_text(w2, T_LONG);
  cr_assert_not_null(t, "WS: no marker after the move");
  char *id = env_id(t);
  cr_assert_str_eq(id, mark, "WS: a duplicate or stray after the move");
  free(id);
  /* a long-poller that had `last` from A goes on from it through the balancer */
  poll_until(ch, tok, last, want, 6, mark, -1);

  sse_close(s2);
  ws_close(w2);
  free(mark);
  free_ids(before, 3);
  free_ids(gap, 3);
  free_ids(after, 3);
  free(since);
  free(since0);
  free(last);
  free(wch);
  free(tok);
  free(c0);
}

/* one test, in this order: Criterion runs a program's tests two at a time,
 * and the second part stops daemon A */
Test(balanced, two_daemons_share_the_clients_and_either_resumes_any, .init = start_b,
     .fini = stop_b_restart_a)
{
  spread_and_deliver();
  move_and_resume();
}
