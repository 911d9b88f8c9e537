/* sortie-pushd rows of tests/CONTRACT.pushd.md that no other program checked:
 * the SSE head (first comment, retry:, Cache-Control), the heartbeat comment
 * and the server's WebSocket pings at their configured intervals, the close
 * of a silent WebSocket peer, CORS credentials, long-poll without a cursor and
 * its timeout cap, /health's version, sortie_pushd_refused_total, and SIGHUP
 * reopening the log. Intervals are configured short so the tests are fast. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "test_pushd_util.h"

#define HB_S 1
#define PING_S 1
#define RETRY_MS 1500
#define POLL_MAX_S 3
SORTIE_WORLD_CONF("push.heartbeat_s = 1\n"
                  "push.ping_s = 1\n"
                  "push.retry_ms = 1500\n"
                  "push.poll_timeout_max_s = 3\n"
                  "push.origins = https://cors.example\n");

/* ---- SSE ---- */

Test(contract_sse, head_first_comment_retry_and_no_cache)
{
  char *tok = token_for(uniq("u"), "user");
  struct sse_client *c = sse_ok(chan("market"), tok, NULL, NULL);
  char v[256];
  cr_assert_not_null(pc_header(c->head, "Content-Type", v, sizeof v));
  cr_assert(strncmp(v, "text/event-stream", 17) == 0, "Content-Type %s", v);
  cr_assert_not_null(pc_header(c->head, "Cache-Control", v, sizeof v), "%s", c->head);
  cr_assert(strstr(v, "no-cache"), "Cache-Control %s", v);
  /* the id-only "caught up" message comes after the head's comment and retry: */
  cr_assert_not_null(sse_wait_idonly(c, T_SHORT));
  cr_assert_geq(c->nmsgs, 2);
  cr_assert(strncmp(c->msgs[0].raw, ": sortie-pushd\n", 15) == 0, "the stream starts %.40s",
            c->msgs[0].raw);
  cr_assert_eq(c->msgs[0].retry, RETRY_MS, "the first message: %s", c->msgs[0].raw);
  cr_assert_eq(c->retry, RETRY_MS, "retry: %ld, push.retry_ms is %d", c->retry, RETRY_MS);
  sse_close(c);
  free(tok);
}

/* A ": hb" comment every push.heartbeat_s: four of them take at least three
 * intervals (the timer never fires sooner; later only under load), and they
 * keep coming on a stream with no events. */
Test(contract_sse, a_heartbeat_comment_every_heartbeat_s)
{
  char *tok = token_for(uniq("u"), "user");
  long long t0 = pc_now();
  struct sse_client *c = sse_ok(chan("market"), tok, NULL, NULL);
  long long deadline = pc_now() + T_SHORT;
  while (c->nheartbeats < 4 && !c->closed && pc_now() < deadline)
    sse_read_for(c, 20);
  long long t1 = pc_now();
  cr_assert_geq(c->nheartbeats, 4, "%zu heartbeats in %lld ms (closed %d)", c->nheartbeats,
                t1 - t0, c->closed);
  cr_assert_geq(t1 - t0, 3 * HB_S * 1000 - 50, "4 heartbeats in %lld ms: more often than %d s",
                t1 - t0, HB_S);
  cr_assert_eq(c->nevents, 0);
  sse_close(c);
  free(tok);
}

/* ---- WebSocket pings and the silent peer ---- */

Test(contract_ws, the_server_pings_every_ping_s_and_a_client_that_answers_stays)
{
  char *tok = token_for(uniq("u"), "user");
  const char *ch = chan("market");
  long long t0 = pc_now();
  struct ws_client *c = ws_ok(tok);
  char *chj = strf("[\"%s\"]", ch);
  ws_subscribe(c, chj, NULL);
  /* ws_recv_frame answers every ping with a pong, as a browser does */
  long long deadline = pc_now() + T_SHORT;
  while (c->npings < 4 && !c->closed && pc_now() < deadline) {
    struct ws_frame f;
    if (ws_recv_frame(c, &f, 100) == 1)
      ws_frame_free(&f);
  }
  long long t1 = pc_now();
  cr_assert_geq(c->npings, 4, "%zu pings in %lld ms (closed %d)", c->npings, t1 - t0, c->closed);
  cr_assert_geq(t1 - t0, 3 * PING_S * 1000 - 50, "4 pings in %lld ms: more often than %d s",
                t1 - t0, PING_S);
  /* more than two intervals have passed with only pongs from us: still open */
  cr_assert_eq(c->closed, 0);
  cr_assert_eq(c->close_code, -1);
  free(ws_expect_only(c, ch));
  ws_close(c);
  free(chj);
  free(tok);
}

/* A peer that sends nothing after its handshake (no pong either) is closed
 * once it has been silent for two ping intervals: not sooner (from our last
 * byte), and without hanging. */
Test(contract_ws, a_peer_silent_for_two_ping_intervals_is_closed)
{
  char *tok = token_for(uniq("u"), "user");
  long long t0 = pc_now(); /* our last byte is the handshake, sent after this */
  struct ws_client *c = ws_open(world_push_base(), "/ws", tok, NULL, 0, T_SHORT);
  cr_assert_not_null(c);
  cr_assert_eq(c->status, 101);
  /* read raw: the client library would answer pings */
  long long deadline = pc_now() + T_SHORT;
  int eof = 0;
  while (!eof && pc_now() < deadline) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0)
      continue;
    char b[4096];
    ssize_t n = recv(c->fd, b, sizeof b, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      eof = 1;
  }
  long long t1 = pc_now();
  cr_assert(eof, "a silent peer still open after %lld ms", t1 - t0);
  cr_assert_geq(t1 - t0, 2 * PING_S * 1000, "closed after %lld ms of silence, before two intervals",
                t1 - t0);
  ws_close(c);
  free(tok);
}

/* ---- CORS ---- */

static void expect_cors(const char *head, const char *what)
{
  char v[256];
  cr_assert_not_null(pc_header(head, "Access-Control-Allow-Origin", v, sizeof v), "%s: %s", what,
                     head);
  cr_assert_str_eq(v, "https://cors.example", "%s", what);
  cr_assert_not_null(pc_header(head, "Access-Control-Allow-Credentials", v, sizeof v), "%s: %s",
                     what, head);
  cr_assert_str_eq(v, "true", "%s", what);
}

Test(contract_cors, allowed_cross_origin_sse_and_poll_carry_allow_credentials)
{
  char *tok = token_for(uniq("u"), "user");
  const char *origin = "Origin: https://cors.example\r\n";
  char *p1 = strf("/events?channels=%s", chan("market"));
  struct sse_client *c = sse_open(world_push_base(), p1, tok, NULL, origin, 0, T_SHORT);
  cr_assert_not_null(c);
  cr_assert_eq(c->status, 200);
  expect_cors(c->head, "SSE");
  sse_close(c);
  char *p2 = strf("/poll?channels=%s&timeout=0", chan("market"));
  struct pc_resp r;
  cr_assert_eq(pd_get(p2, tok, origin, &r, T_SHORT), 0);
  cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
  expect_cors(r.head, "poll");
  pc_resp_free(&r);
  /* without Origin: no CORS headers */
  cr_assert_eq(pd_get(p2, tok, NULL, &r, T_SHORT), 0);
  char v[64];
  cr_assert_null(pc_header(r.head, "Access-Control-Allow-Origin", v, sizeof v));
  cr_assert_null(pc_header(r.head, "Access-Control-Allow-Credentials", v, sizeof v));
  pc_resp_free(&r);
  free(p1);
  free(p2);
  free(tok);
}

/* ---- long-poll ---- */

/* Without a cursor the poll waits for the next event: what was published
 * before it is not answered; an event published while it waits is. */
Test(contract_poll, without_a_cursor_it_waits_for_the_next_event)
{
  char *tok = token_for(uniq("u"), "user");
  const char *ch = chan("market");
  char *before = publish_ok(ch, "market_update", "{\"before\":1}");
  char *path = strf("/poll?channels=%s&timeout=%d", ch, POLL_MAX_S);
  char *h = strf("Authorization: Bearer %s\r\n", tok);
  int fd = pc_get_send(world_push_base(), path, h, T_SHORT);
  cr_assert_geq(fd, 0);
  /* publish until the poll answers (when the daemon takes "now" is not ours
   * to know); each answer must hold only events published after `before` */
  char *ids[64] = {0};
  int n = 0;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  long long deadline = pc_now() + T_LONG;
  while (n < 64 && pc_now() < deadline && poll(&p, 1, 0) == 0) {
    char d[32];
    snprintf(d, sizeof d, "{\"after\":%d}", n);
    ids[n++] = publish_ok(ch, "market_update", d);
    pc_sleep_ms(100);
  }
  struct pc_resp r;
  cr_assert_eq(pc_get_finish(fd, &r, T_LONG), 0);
  cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
  char **items = NULL;
  long k = pc_json_raw_items(r.body, "events", &items);
  cr_assert_gt(k, 0, "answered with no event: %s", r.body);
  cr_assert_null(strstr(r.body, before), "the event before the poll came: %s", r.body);
  for (long i = 0; i < k; i++) {
    char *id = env_id(items[i]);
    int found = 0;
    for (int j = 0; j < n; j++)
      found |= strcmp(ids[j], id) == 0;
    cr_assert(found, "answered %s, not one published while it waited", id);
    free(id);
  }
  pc_strv_free(items, k);
  pc_resp_free(&r);
  free_ids(ids, n);
  free(before);
  free(path);
  free(h);
  free(tok);
}

static long long timed_poll(const char *path, const char *tok, struct pc_resp *r)
{
  long long t0 = pc_now();
  cr_assert_eq(pd_get(path, tok, NULL, r, T_SHORT), 0, "%s: no answer within %d ms", path,
               T_SHORT);
  return pc_now() - t0;
}

/* timeout may be 0 to push.poll_timeout_max_s (a larger one is 400); one left
 * out is 25 s, or the cap when that is lower. An empty answer comes no more
 * than 100 ms before the timeout (docs/PUSHD.md). */
Test(contract_poll, the_timeout_is_capped_by_poll_timeout_max_s)
{
  char *tok = token_for(uniq("u"), "user");
  const char *ch = chan("market");
  char *cur = cursor_now(ch);
  struct pc_resp r;
  char *over = strf("/poll?channels=%s&cursor=%s&timeout=%d", ch, cur, POLL_MAX_S + 1);
  timed_poll(over, tok, &r);
  cr_assert_eq(r.status, 400, "timeout over the cap: %d %s", r.status, r.body);
  cr_assert(strstr(r.body, "/problems/malformed"), "%s", r.body);
  pc_resp_free(&r);

  char *at = strf("/poll?channels=%s&cursor=%s&timeout=%d", ch, cur, POLL_MAX_S);
  long long ms = timed_poll(at, tok, &r);
  cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
  cr_assert(strstr(r.body, "\"events\":[]"), "%s", r.body);
  cr_assert_geq(ms, POLL_MAX_S * 1000 - 100, "timeout=%d answered after %lld ms", POLL_MAX_S, ms);
  char v[64];
  cr_assert_not_null(pc_header(r.head, "Cache-Control", v, sizeof v), "%s", r.head);
  cr_assert_str_eq(v, "no-store");
  pc_resp_free(&r);

  /* no timeout given: the default 25 s is more than the cap, so the cap */
  char *dflt = strf("/poll?channels=%s&cursor=%s", ch, cur);
  ms = timed_poll(dflt, tok, &r);
  cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
  cr_assert(strstr(r.body, "\"events\":[]"), "%s", r.body);
  cr_assert_geq(ms, POLL_MAX_S * 1000 - 100, "no timeout: answered after %lld ms", ms);
  pc_resp_free(&r);
  free(over);
  free(at);
  free(dflt);
  free(cur);
  free(tok);
}

/* ---- /health, /metrics ---- */

Test(contract_health, health_names_the_version_and_answers_are_not_cached)
{
  int st;
  json_object *h = health_at(world_push_base(), &st);
  cr_assert_eq(st, 200);
  cr_assert_not_null(h);
  cr_assert_str_eq(jget_str(h, "version"), SORTIE_VERSION);
  json_object_put(h);
  struct pc_resp r;
  cr_assert_eq(pd_get("/health", NULL, NULL, &r, T_SHORT), 0);
  char v[128];
  cr_assert_not_null(pc_header(r.head, "Content-Type", v, sizeof v));
  cr_assert(strstr(v, "application/json"), "%s", v);
  cr_assert_not_null(pc_header(r.head, "Cache-Control", v, sizeof v));
  cr_assert_str_eq(v, "no-store");
  pc_resp_free(&r);
  cr_assert_eq(pd_get("/metrics", NULL, NULL, &r, T_SHORT), 0);
  cr_assert_eq(r.status, 200);
  cr_assert_not_null(pc_header(r.head, "Cache-Control", v, sizeof v));
  cr_assert_str_eq(v, "no-store");
  pc_resp_free(&r);
}

/* Each refusal (auth, bad input) adds one to sortie_pushd_refused_total (other
 * tests of this program may add theirs meanwhile: at least ours). */
Test(contract_metrics, refused_total_counts_refused_requests)
{
  double before = metric("sortie_pushd_refused_total");
  cr_assert_geq(before, 0, "no sortie_pushd_refused_total");
  char *tok = token_for(uniq("u"), "user");
  struct pc_resp r;
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(pd_get("/events?channels=signals", NULL, NULL, &r, T_SHORT), 0);
    cr_assert_eq(r.status, 401);
    pc_resp_free(&r);
    cr_assert_eq(pd_get("/poll?channels=Bad!&timeout=0", tok, NULL, &r, T_SHORT), 0);
    cr_assert_eq(r.status, 400);
    pc_resp_free(&r);
  }
  double after = metric("sortie_pushd_refused_total");
  cr_assert_geq(after - before, 6, "refused_total %.0f -> %.0f after 6 refusals", before, after);
  free(tok);
}

/* ---- SIGHUP ---- */

/* the daemon's workers: the master's children */
static int worker_pids(long *out, int max)
{
  long master = pushd_master_pid();
  char path[128];
  snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", master, master);
  FILE *f = fopen(path, "r");
  int n = 0;
  while (f && n < max && fscanf(f, "%ld", &out[n]) == 1)
    n++;
  if (f)
    fclose(f);
  return n;
}

/* how many Redis connections are in pubsub mode (only sortie-pushd's
 * subscriber links, one per worker that has a channel, ever are) */
static int pubsub_links(void)
{
  const char *av[] = {"CLIENT", "LIST"};
  char *l = rstr(2, av);
  int n = 0;
  for (const char *p = l; p && (p = strstr(p, " flags=")) != NULL; p++) {
    const char *f = p + 7;
    while (*f && *f != ' ' && *f != 'P')
      f++;
    n += *f == 'P';
  }
  free(l);
  return n;
}

/* After the log is moved away (rotation), SIGHUP to the master makes every
 * worker write to a new file at the configured path; the daemon keeps
 * serving across it. A worker's next log line is provoked by cutting its
 * subscriber link to Redis (it reconnects and says so): streams on channels
 * of their own are opened until every worker has that link subscribed. */
Test(contract_signals, sighup_reopens_the_log_in_every_worker)
{
  long w[8];
  int nw = worker_pids(w, 8);
  cr_assert_geq(nw, 1, "no worker of pid %ld", pushd_master_pid());
  char *tok = token_for(uniq("u"), "user");
  struct sse_client *c[32];
  const char *ch0 = NULL;
  int nc = 0;
  while (nc < 32 && (nc == 0 || pubsub_links() < nw)) {
    const char *ch = chan("market");
    if (nc == 0)
      ch0 = strdup(ch);
    c[nc] = sse_ok(ch, tok, NULL, NULL);
    cr_assert_not_null(sse_wait_idonly(c[nc], T_SHORT));
    nc++;
  }
  cr_assert_geq(pubsub_links(), nw, "%d streams, %d of %d workers subscribed", nc, pubsub_links(),
                nw);
  char *log = strf("%s/log/sortie.log", world_run());
  char *rotated = strf("%s/log/sortie.log.contract-%d", world_run(), (int)getpid());
  cr_assert_eq(rename(log, rotated), 0, "rename %s: %s", log, strerror(errno));
  struct stat sb;
  cr_assert_neq(stat(log, &sb), 0, "the log was not moved away");
  cr_assert_eq(kill((pid_t)pushd_master_pid(), SIGHUP), 0);
  /* the master reopens at once; wait for the file, then have each worker log */
  long long deadline = pc_now() + T_LONG;
  while (stat(log, &sb) != 0 && pc_now() < deadline)
    pc_sleep_ms(20);
  cr_assert_eq(stat(log, &sb), 0, "no new %s after SIGHUP", log);
  pc_sleep_ms(200); /* the workers get SIGHUP from the master: a moment after it */
  const char *kill_av[] = {"CLIENT", "KILL", "TYPE", "pubsub"};
  sortie_reply *rep = rcmd(4, kill_av);
  if (rep)
    sortie_reply_free(rep);
  char *found = NULL;
  int seen = 0;
  while (seen < nw && pc_now() < deadline) {
    pc_sleep_ms(100);
    free(found);
    found = file_text(log);
    seen = 0;
    for (int i = 0; i < nw; i++) {
      char *pid = strf("[redis] pid=%ld ", w[i]);
      seen += strstr(found, pid) != NULL;
      free(pid);
    }
  }
  cr_assert_eq(seen, nw, "%d of %d workers wrote to the reopened log:\n%s", seen, nw,
               found ? found : "(not read)");
  /* the streams lived through it */
  char *id = publish_ok(ch0, "market_update", "{\"after_hup\":1}");
  cr_assert_geq(sse_read_events(c[0], 1, T_LONG), 1);
  cr_assert_str_eq(sse_event(c[0], 0)->id, id);
  free(id);
  for (int i = 0; i < nc; i++)
    sse_close(c[i]);
  free((char *)ch0);
  free(found);
  free(log);
  free(rotated);
  free(tok);
}

/* ---- 1008: a ping flood ---- */

/* More than 1,000 ping frames in one read close the connection with 1008
 * "too many pings"; 1,000 are answered (a pong each) and it stays. Each batch
 * goes out in one send of a few KiB, which loopback hands over whole. */
static void send_pings(struct ws_client *c, int n)
{
  size_t len = (size_t)n * 6;
  unsigned char *b = malloc(len);
  for (int i = 0; i < n; i++) {
    unsigned char *f = b + (size_t)i * 6;
    f[0] = 0x89; /* FIN, ping */
    f[1] = 0x80; /* masked, empty */
    f[2] = f[3] = f[4] = f[5] = 0x5a;
  }
  cr_assert_eq(ws_send_raw(c, b, len, T_SHORT), 0);
  free(b);
}

Test(contract_ws, more_than_1000_pings_in_one_read_are_closed_1008)
{
  char *tok = token_for(uniq("u"), "user");
  const char *ch = chan("market");
  struct ws_client *c = ws_ok(tok);
  char *chj = strf("[\"%s\"]", ch);
  ws_subscribe(c, chj, NULL);
  /* 1,000: answered, the connection stays */
  size_t pongs = 0;
  send_pings(c, 1000);
  long long deadline = pc_now() + T_LONG;
  while (pongs < 1000 && !c->closed && pc_now() < deadline) {
    struct ws_frame f;
    if (ws_recv_frame(c, &f, 100) == 1) {
      pongs += f.opcode == 10;
      ws_frame_free(&f);
    }
  }
  cr_assert_eq(pongs, 1000, "%zu pongs for 1000 pings (closed %d, code %d)", pongs, c->closed,
               c->close_code);
  free(ws_expect_only(c, ch));
  /* 1,001: closed 1008 */
  send_pings(c, 1001);
  int code = ws_wait_close(c, T_LONG);
  cr_assert_eq(code, 1008, "close code %d (%s)", code, c->close_reason);
  cr_assert(strstr(c->close_reason, "ping"), "reason '%s'", c->close_reason);
  ws_close(c);
  free(chj);
  free(tok);
}

/* ---- 429 past push.max_conn_per_user (10 here, the default) ---- */

Test(contract_limits, the_stream_past_max_conn_per_user_is_429_with_retry_after)
{
  char *tok = token_for(uniq("u"), "user");
  struct sse_client *c[10];
  for (int i = 0; i < 10; i++)
    c[i] = sse_ok(chan("market"), tok, NULL, NULL);
  char *p = strf("/events?channels=%s", chan("market"));
  struct sse_client *x = sse_open(world_push_base(), p, tok, NULL, NULL, 0, T_SHORT);
  cr_assert_not_null(x);
  cr_assert_eq(x->status, 429, "the 11th stream of a user: %d %s", x->status,
               x->body ? x->body : "");
  char v[128];
  cr_assert_not_null(pc_header(x->head, "Content-Type", v, sizeof v));
  cr_assert(strstr(v, "application/problem+json"), "%s", v);
  cr_assert_not_null(pc_header(x->head, "Retry-After", v, sizeof v), "%s", x->head);
  cr_assert_gt(atoi(v), 0, "Retry-After: %s", v);
  sse_close(x);
  for (int i = 0; i < 10; i++)
    sse_close(c[i]);
  free(p);
  free(tok);
}
