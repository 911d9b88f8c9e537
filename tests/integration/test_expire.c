/* The cron job, for real: runs $BUILD/bin/sortie-expire against the world's Redis (expiry, concurrent runs, retention, history trim, errors). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "proc.h"

/* ---- helpers ---- */

/* Every test that runs sortie-expire holds this lock shared; the one that
 * must see two runs alone (many batches) holds it exclusively. A run expires
 * every due signal of the world, whoever made it, so tests would otherwise
 * see each other's runs. */
static void world_lock(int how)
{
  static int fd = -1;
  char path[600];
  snprintf(path, sizeof path, "%s/test_expire.lock", world_run());
  if (fd < 0)
    fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  cr_assert(fd >= 0, "cannot open %s", path);
  cr_assert_eq(flock(fd, how), 0);
}

static const char *expire_bin(void)
{
  static char path[600];
  snprintf(path, sizeof path, "%s/bin/sortie-expire", getenv("BUILD"));
  return path;
}

/* runs sortie-expire (extra: more "NAME=value" for its environment) */
static void run_expire(const char *const *extra_env, const char *flag, struct proc_result *r)
{
  const char *argv[] = {expire_bin(), flag, NULL};
  struct proc_spec s = {.argv = argv, .env = extra_env, .timeout_ms = 60000};
  cr_assert_eq(proc_run(&s, r), 0, "could not start %s", expire_bin());
  cr_assert(!r->timed_out, "sortie-expire did not finish in 60 s");
}

static void run_expire_ok(void)
{
  struct proc_result r;
  run_expire(NULL, NULL, &r);
  cr_assert(r.exited && r.code == 0, "sortie-expire: exit %d signal %d; stderr: %s", r.code,
            r.signal, r.err);
  proc_result_free(&r);
}

static const char *key(char *buf, size_t n, const char *fmt, ...)
{
  size_t l = (size_t)snprintf(buf, n, "%s", kp());
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + l, n - l, fmt, ap);
  va_end(ap);
  return buf;
}

static char *hget(const char *k, const char *field)
{
  const char *av[] = {"HGET", k, field};
  return rstr(3, av);
}

static long long exists(const char *k)
{
  const char *av[] = {"EXISTS", k};
  return rinteger(2, av);
}

/* score of member in zset `set` (under the prefix) as text, or NULL */
static char *zscore(const char *set, const char *member)
{
  char k[256];
  const char *av[] = {"ZSCORE", key(k, sizeof k, "%s", set), member};
  return rstr(3, av);
}

static void must_ok(sortie_reply *r)
{
  cr_assert_not_null(r, "redis command failed");
  cr_assert_neq(sortie_reply_type(r), SORTIE_REPLY_ERROR, "redis: %s",
                sortie_reply_str(r, NULL));
  sortie_reply_free(r);
}

/* how many events of `type` channel's history holds; the data of the last
 * one goes into data (if not NULL) */
static int count_events(const char *channel, const char *type, char *data, size_t n)
{
  char k[256];
  const char *av[] = {"XRANGE", key(k, sizeof k, "h:%s", channel), "-", "+"};
  sortie_reply *r = rcmd(4, av);
  cr_assert_not_null(r);
  int c = 0;
  for (size_t i = 0; i < sortie_reply_len(r); i++) {
    const sortie_reply *fields = sortie_reply_at(sortie_reply_at(r, i), 1);
    const char *t = NULL, *d = NULL;
    size_t tl = 0, dl = 0;
    for (size_t j = 0; fields && j + 1 < sortie_reply_len(fields); j += 2) {
      size_t fl;
      const char *f = sortie_reply_str(sortie_reply_at(fields, j), &fl);
      if (f && fl == 1 && f[0] == 't')
        t = sortie_reply_str(sortie_reply_at(fields, j + 1), &tl);
      if (f && fl == 1 && f[0] == 'd')
        d = sortie_reply_str(sortie_reply_at(fields, j + 1), &dl);
    }
    if (t && tl == strlen(type) && memcmp(t, type, tl) == 0) {
      c++;
      if (data && d)
        snprintf(data, n, "%.*s", (int)dl, d);
    }
  }
  sortie_reply_free(r);
  return c;
}

/* waits until signal sid is past its expires_at */
static void wait_past_expiry(const char *sid)
{
  char k[256];
  char *exp = hget(key(k, sizeof k, "signal:%s", sid), "expires_at");
  cr_assert_not_null(exp, "signal %s has no expires_at", sid);
  long long e = atoll(exp);
  free(exp);
  while (now_ms() < e * 1000 + 200)
    usleep(100000);
}

static char *status_of(const char *sid)
{
  char k[256];
  return hget(key(k, sizeof k, "signal:%s", sid), "status");
}

/* a free TCP port on 127.0.0.1 that nothing listens on */
static int closed_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &l) == 0);
  int p = ntohs(a.sin_port);
  close(fd);
  return p;
}

/* ---- expiry ---- */

Test(expire, due_signal_is_expired_once_and_announced)
{
  world_lock(LOCK_SH);
  char sid[96], k[256];
  snprintf(sid, sizeof sid, "%s", uniq("exp"));
  cr_assert_eq(make_signal(sid, 1), 201);
  wait_past_expiry(sid);

  struct proc_result r;
  run_expire(NULL, NULL, &r);
  cr_assert(r.exited && r.code == 0, "exit %d; stderr: %s", r.code, r.err);
  proc_result_free(&r);

  char *st = status_of(sid);
  cr_assert_str_eq(st ? st : "(none)", "EXPIRED");
  free(st);
  char *ended_at = hget(key(k, sizeof k, "signal:%s", sid), "ended_at");
  cr_assert_not_null(ended_at, "no ended_at on the expired signal");
  char *in_active = zscore("active", sid);
  cr_assert_null(in_active, "still in the active set (score %s)", in_active);
  char *in_ended = zscore("ended", sid);
  cr_assert_not_null(in_ended, "not in the ended set");
  cr_assert_eq(atoll(in_ended), atoll(ended_at));
  free(in_ended);

  /* the API says so too */
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", sid);
  struct http_resp g;
  http("GET", path, NULL, NULL, NULL, NULL, &g);
  cr_assert_eq(g.status, 200, "%s", g.body);
  cr_assert_str_eq(jget_str(g.json, "status"), "EXPIRED");
  cr_assert_eq(jget_int(g.json, "seconds_left"), 0);
  http_free(&g);

  /* exactly one mission_status_update, saying EXPIRED */
  char ch[128], data[512] = "";
  snprintf(ch, sizeof ch, "mission:%s", sid);
  cr_assert_eq(count_events(ch, "mission_status_update", data, sizeof data), 1);
  json_object *d = json_tokener_parse(data);
  cr_assert_not_null(d, "event data is not JSON: %s", data);
  cr_assert_str_eq(jget_str(d, "signal_id"), sid);
  cr_assert_str_eq(jget_str(d, "status"), "EXPIRED");
  cr_assert_eq(jget_int(d, "ended_at"), atoll(ended_at));
  json_object_put(d);

  /* firing it now is 410 */
  struct http_resp f;
  cr_assert_eq(fire(uniq("u"), sid, NULL, &f), 410, "%s", f.body);
  cr_assert_str_eq(jget_str(f.json, "signal_status"), "EXPIRED");
  http_free(&f);

  /* a second run changes nothing */
  run_expire_ok();
  cr_assert_eq(count_events(ch, "mission_status_update", NULL, 0), 1);
  char *again = hget(key(k, sizeof k, "signal:%s", sid), "ended_at");
  cr_assert_str_eq(again ? again : "(none)", ended_at);
  free(again);
  free(ended_at);
  st = status_of(sid);
  cr_assert_str_eq(st ? st : "(none)", "EXPIRED");
  free(st);
}

Test(expire, signal_not_yet_due_stays_active)
{
  world_lock(LOCK_SH);
  char sid[96], k[256];
  snprintf(sid, sizeof sid, "%s", uniq("live"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  run_expire_ok();
  char *st = status_of(sid);
  cr_assert_str_eq(st ? st : "(none)", "ACTIVE");
  free(st);
  char *sc = zscore("active", sid);
  cr_assert_not_null(sc, "an ACTIVE signal left the active set");
  free(sc);
  const char *av[] = {"XLEN", key(k, sizeof k, "h:mission:%s", sid)};
  cr_assert_eq(rinteger(2, av), 0, "events were published for a signal that is not due");
  cr_assert_eq(fire(uniq("u"), sid, NULL, NULL), 201);
}

/* starts n runs of sortie-expire at the same moment and waits for all */
static void run_expire_at_once(int n, struct proc_result *res)
{
  int barrier[2];
  cr_assert_eq(pipe2(barrier, O_CLOEXEC), 0);
  const char *argv[] = {expire_bin(), NULL};
  struct proc_spec s = {.argv = argv, .timeout_ms = 120000, .barrier = barrier};
  struct proc p[8];
  cr_assert(n <= 8);
  for (int i = 0; i < n; i++)
    cr_assert_eq(proc_start(&s, &p[i]), 0);
  close(barrier[1]); /* every child waits for this EOF, then execs */
  close(barrier[0]);
  for (int i = 0; i < n; i++) {
    proc_finish(&p[i], &res[i]);
    cr_assert(!res[i].timed_out, "run %d did not finish", i);
  }
}

Test(expire, two_runs_at_once_expire_each_signal_once)
{
  world_lock(LOCK_SH);
  enum { N = 30 };
  static char sids[N][96];
  for (int i = 0; i < N; i++) {
    snprintf(sids[i], sizeof sids[i], "%s", uniq("twice"));
    cr_assert_eq(make_signal(sids[i], 1), 201);
  }
  wait_past_expiry(sids[N - 1]);
  struct proc_result r[2];
  run_expire_at_once(2, r);
  for (int i = 0; i < 2; i++) {
    cr_assert(r[i].exited && r[i].code == 0, "run %d: exit %d signal %d; stderr: %s", i,
              r[i].code, r[i].signal, r[i].err);
    proc_result_free(&r[i]);
  }
  for (int i = 0; i < N; i++) {
    char *st = status_of(sids[i]);
    cr_assert_str_eq(st ? st : "(none)", "EXPIRED", "signal %s", sids[i]);
    free(st);
    char ch[128];
    snprintf(ch, sizeof ch, "mission:%.96s", sids[i]);
    cr_assert_eq(count_events(ch, "mission_status_update", NULL, 0), 1, "signal %s", sids[i]);
  }
  /* and once more, alone: nothing new */
  run_expire_ok();
  for (int i = 0; i < N; i++) {
    char ch[128];
    snprintf(ch, sizeof ch, "mission:%.96s", sids[i]);
    cr_assert_eq(count_events(ch, "mission_status_update", NULL, 0), 1, "signal %s", sids[i]);
  }
}

/* writes n signals straight into Redis in the layout POST /api/signals uses,
 * ACTIVE and already past expires_at (so a test does not wait for n API calls
 * or for a ttl) */
static void make_due_signals(int n, char (*sids)[96], const char *prefix)
{
  char k[256], exp[32], created[32];
  long long now = now_s();
  snprintf(exp, sizeof exp, "%lld", now - 5);
  snprintf(created, sizeof created, "%lld", now - 60);
  for (int i = 0; i < n; i++) {
    snprintf(sids[i], 96, "%s", uniq(prefix));
    const char *h[] = {"HSET", key(k, sizeof k, "signal:%s", sids[i]), "id", sids[i], "symbol",
                       "AAPL", "direction", "BUY", "entry", "145.75", "stop_loss", "140.00",
                       "take_profit", "160.00", "expires_at", exp, "title", "t", "briefing", "",
                       "status", "ACTIVE", "created_at", created, "created_by", "test-feed",
                       "fire_count", "0"};
    must_ok(rcmd((int)(sizeof h / sizeof h[0]), h));
    const char *za[] = {"ZADD", key(k, sizeof k, "active"), exp, sids[i]};
    must_ok(rcmd(4, za));
    const char *zs[] = {"ZADD", key(k, sizeof k, "signals"), created, sids[i]};
    must_ok(rcmd(4, zs));
  }
}

/* More due signals than one batch (500) of sortie-expire: runs at once (cron
 * runs that overlap) must still leave none of them ACTIVE when they are done. The signals are written straight into Redis
 * in the layout POST /api/signals uses, already past expires_at, so the test
 * does not wait for 1,200 API calls. */
Test(expire, runs_at_once_over_many_batches_miss_no_signal)
{
  world_lock(LOCK_EX);
  enum { N = 1200 };
  static char sids[N][96];
  make_due_signals(N, sids, "bulk");
  enum { RUNS = 4 };
  struct proc_result r[RUNS];
  run_expire_at_once(RUNS, r);
  for (int i = 0; i < RUNS; i++) {
    cr_assert(r[i].exited && r[i].code == 0, "run %d: exit %d; stderr: %s", i, r[i].code,
              r[i].err);
    cr_log_info("run %d: %s", i, r[i].out);
    proc_result_free(&r[i]);
  }
  int active = 0, twice = 0, none = 0;
  const char *first = NULL;
  for (int i = 0; i < N; i++) {
    char *st = status_of(sids[i]);
    if (st == NULL || strcmp(st, "EXPIRED") != 0) {
      active++;
      if (first == NULL)
        first = sids[i];
    }
    free(st);
    char ch[128];
    snprintf(ch, sizeof ch, "mission:%.96s", sids[i]);
    int e = count_events(ch, "mission_status_update", NULL, 0);
    twice += e > 1;
    none += e == 0;
  }
  cr_expect_eq(twice, 0, "%d signal(s) got two mission_status_update", twice);
  cr_expect_eq(active, 0,
               "after %d runs at once, %d of %d due signals are still not EXPIRED (first: %s) "
               "and %d have no mission_status_update",
               RUNS, active, N, first ? first : "-", none);
  /* a later run catches up whatever was left */
  run_expire_ok();
  for (int i = 0; i < N; i++) {
    char *st = status_of(sids[i]);
    cr_assert_str_eq(st ? st : "(none)", "EXPIRED", "signal %s after a third run", sids[i]);
    free(st);
  }
}

/* The same, with one run and no luck involved: the active set holds 500
 * members the expire script only tidies away (signals already CANCELLED, a
 * state expire.lua handles by removing them from the set), older than 50 due
 * ACTIVE signals. One run must still expire all 50. */
Test(expire, tidied_members_do_not_hide_due_signals_in_the_next_batch)
{
  world_lock(LOCK_EX);
  enum { STALE = 500, DUE = 50 };
  static char stale[STALE][96], due[DUE][96];
  char k[256], t_stale[32], t_due[32];
  long long now = now_s();
  snprintf(t_stale, sizeof t_stale, "%lld", now - 100);
  snprintf(t_due, sizeof t_due, "%lld", now - 5);
  for (int i = 0; i < STALE + DUE; i++) {
    char *id = i < STALE ? stale[i] : due[i - STALE];
    const char *t = i < STALE ? t_stale : t_due;
    snprintf(id, 96, "%s", uniq(i < STALE ? "gone" : "due"));
    const char *h[] = {"HSET", key(k, sizeof k, "signal:%s", id), "id", id, "symbol", "AAPL",
                       "direction", "BUY", "entry", "145.75", "stop_loss", "140.00",
                       "take_profit", "160.00", "expires_at", t, "title", "t", "briefing", "",
                       "status", i < STALE ? "CANCELLED" : "ACTIVE", "created_at", t,
                       "created_by", "test-feed", "fire_count", "0"};
    must_ok(rcmd((int)(sizeof h / sizeof h[0]), h));
    const char *za[] = {"ZADD", key(k, sizeof k, "active"), t, id};
    must_ok(rcmd(4, za));
  }
  struct proc_result r;
  run_expire(NULL, NULL, &r);
  cr_assert(r.exited && r.code == 0, "exit %d; stderr: %s", r.code, r.err);
  cr_log_info("%s", r.out);
  proc_result_free(&r);
  int left = 0;
  for (int i = 0; i < DUE; i++) {
    char *st = status_of(due[i]);
    left += st == NULL || strcmp(st, "EXPIRED") != 0;
    free(st);
  }
  for (int i = 0; i < STALE; i++) {
    char *z = zscore("active", stale[i]);
    cr_expect_null(z, "CANCELLED signal %s still in the active set", stale[i]);
    free(z);
  }
  cr_assert_eq(left, 0, "one run left %d of %d due signals ACTIVE", left, DUE);
}


static int count_expired(int n, char (*sids)[96])
{
  int c = 0;
  for (int i = 0; i < n; i++) {
    char *st = status_of(sids[i]);
    c += st && strcmp(st, "EXPIRED") == 0;
    free(st);
  }
  return c;
}

/* how many system_log lines on `admin` say "signal <sid> expired", per signal
 * (counts[i] for sids[i]); the admin history holds about history.maxlen
 * (1000) lines, so n must stay well under that */
static void count_expired_lines(int n, char (*sids)[96], int *counts)
{
  char k[256];
  const char *av[] = {"XRANGE", key(k, sizeof k, "h:admin"), "-", "+"};
  sortie_reply *r = rcmd(4, av);
  cr_assert_not_null(r);
  memset(counts, 0, sizeof(int) * (size_t)n);
  for (size_t i = 0; i < sortie_reply_len(r); i++) {
    const sortie_reply *fields = sortie_reply_at(sortie_reply_at(r, i), 1);
    for (size_t j = 0; fields && j + 1 < sortie_reply_len(fields); j += 2) {
      size_t fl, dl;
      const char *f = sortie_reply_str(sortie_reply_at(fields, j), &fl);
      if (f == NULL || fl != 1 || f[0] != 'd')
        continue;
      const char *d = sortie_reply_str(sortie_reply_at(fields, j + 1), &dl);
      char line[512];
      snprintf(line, sizeof line, "%.*s", (int)dl, d ? d : "");
      for (int s = 0; s < n; s++) {
        char want[160];
        snprintf(want, sizeof want, "\"signal %.96s expired\"", sids[s]);
        if (strstr(line, want))
          counts[s]++;
      }
    }
  }
  sortie_reply_free(r);
}

/* Item 9 of issue 9: two runs at once, each killed (SIGKILL) at its own point
 * in the middle, round after round; then one clean run. Every step on one
 * signal is one atomic script, so whatever point a run dies at, a signal is
 * either not touched yet or expired whole: none expired twice (two events,
 * two log lines, a second ended_at), none left ACTIVE after the clean run. */
Test(expire, runs_killed_halfway_expire_each_signal_exactly_once)
{
  world_lock(LOCK_EX);
  enum { N = 300, ROUNDS = 5 };
  static char sids[N][96];
  make_due_signals(N, sids, "kill");

  /* The kill points move through the work: in round r the first run dies once
   * the due signals left fall to about N * (1 - (r + 0.5) / ROUNDS) (polled,
   * so the kill lands while runs are at work whatever the machine's speed), the
   * other r ms later (at once in round 0); which run dies first alternates. */
  char ak[256];
  key(ak, sizeof ak, "active");
  int killed = 0, finished = 0;
  for (int round = 0; round < ROUNDS; round++) {
    int barrier[2];
    cr_assert_eq(pipe2(barrier, O_CLOEXEC), 0);
    const char *argv[] = {expire_bin(), "-q", NULL};
    struct proc_spec s = {.argv = argv, .timeout_ms = 30000, .barrier = barrier};
    struct proc p[2];
    for (int i = 0; i < 2; i++)
      cr_assert_eq(proc_start(&s, &p[i]), 0);
    long long target = (long long)N * (2 * ROUNDS - 2 * round - 1) / (2 * ROUNDS), left = 0;
    char nowb[32];
    snprintf(nowb, sizeof nowb, "%lld", now_s());
    const char *zc[] = {"ZCOUNT", ak, "-inf", nowb};
    long long t0 = proc_now_ms();
    close(barrier[1]);
    close(barrier[0]);
    while ((left = rinteger(4, zc)) > target && proc_now_ms() - t0 < 10000)
      ;
    int first = round % 2;
    kill(p[first].pid, SIGKILL);
    long long t1 = proc_now_ms();
    if (round > 0)
      usleep((useconds_t)round * 1000);
    kill(p[1 - first].pid, SIGKILL);
    for (int i = 0; i < 2; i++) {
      struct proc_result r;
      proc_finish(&p[i], &r);
      cr_assert(!r.timed_out);
      if (r.signal == SIGKILL)
        killed++;
      else
        cr_assert(r.exited && r.code == 0, "round %d run %d: exit %d; stderr: %s", round, i,
                  r.code, r.err);
      finished += r.exited;
      proc_result_free(&r);
    }
    cr_log_info("round %d: first kill after %lld ms with %lld of %d due signals left, the "
                "second %d ms later; %d of %d expired so far",
                round, t1 - t0, left, N, round, count_expired(N, sids), N);
  }
  cr_log_info("%d run(s) killed, %d ran to the end before their kill", killed, finished);
  cr_assert(killed > 0, "no run was killed: the test killed nothing halfway");

  run_expire_ok();

  int active = 0, twice = 0, none = 0, bad_ended = 0, lines_twice = 0, lines_none = 0;
  static int lines[N];
  count_expired_lines(N, sids, lines);
  for (int i = 0; i < N; i++) {
    char k[256], ch[128];
    char *st = status_of(sids[i]);
    active += st == NULL || strcmp(st, "EXPIRED") != 0;
    free(st);
    snprintf(ch, sizeof ch, "mission:%.96s", sids[i]);
    int e = count_events(ch, "mission_status_update", NULL, 0);
    twice += e > 1;
    none += e == 0;
    char *ended_at = hget(key(k, sizeof k, "signal:%s", sids[i]), "ended_at");
    char *in_ended = zscore("ended", sids[i]);
    char *in_active = zscore("active", sids[i]);
    bad_ended += ended_at == NULL || in_ended == NULL || in_active != NULL ||
                 strcmp(ended_at, in_ended) != 0;
    free(ended_at);
    free(in_ended);
    free(in_active);
    lines_twice += lines[i] > 1;
    lines_none += lines[i] == 0;
  }
  cr_log_info("%d signals: %d EXPIRED, %d still ACTIVE; events: %d with none, %d with two or "
              "more; log lines: %d with none, %d with two or more; %d with ended/active sets "
              "out of step",
              N, N - active, active, none, twice, lines_none, lines_twice, bad_ended);
  cr_expect_eq(active, 0, "%d signal(s) still ACTIVE after a clean run", active);
  cr_expect_eq(twice, 0, "%d signal(s) got two or more mission_status_update", twice);
  cr_expect_eq(none, 0, "%d signal(s) got no mission_status_update", none);
  cr_expect_eq(lines_twice, 0, "%d signal(s) logged as expired twice", lines_twice);
  cr_expect_eq(lines_none, 0, "%d signal(s) never logged as expired", lines_none);
  cr_expect_eq(bad_ended, 0, "%d signal(s) with ended_at, ended and active out of step",
               bad_ended);
}

/* Stored data the expire script would fail on halfway (here the admin
 * history, where it logs, not a stream) keeps the signal ACTIVE and untouched,
 * says so and exits 1; once fixed, the next run expires it once. */
Test(expire, unusable_stored_data_leaves_the_signal_untouched_and_exits_1)
{
  world_lock(LOCK_EX);
  static char sids[1][96];
  char k[256], ch[128], tmp[300];
  make_due_signals(1, sids, "stuck");
  snprintf(ch, sizeof ch, "mission:%.96s", sids[0]);
  /* the admin history is put aside (RENAME) and a string stands in for it */
  key(k, sizeof k, "h:admin");
  snprintf(tmp, sizeof tmp, "%.256s.aside", k);
  const char *ren[] = {"RENAME", k, tmp}, *back[] = {"RENAME", tmp, k}, *del[] = {"DEL", k};
  int had = exists(k) == 1;
  if (had)
    must_ok(rcmd(3, ren));
  const char *set[] = {"SET", k, "not a stream"};
  must_ok(rcmd(3, set));

  struct proc_result r;
  run_expire(NULL, "-q", &r);
  must_ok(rcmd(2, del));
  if (had)
    must_ok(rcmd(3, back));
  cr_assert(r.exited && r.code == 1, "exit %d signal %d; stderr: %s", r.code, r.signal, r.err);
  cr_assert(strstr(r.err, sids[0]) != NULL, "stderr does not name the signal: %s", r.err);
  cr_log_info("%s", r.err);
  proc_result_free(&r);
  char *st = status_of(sids[0]);
  cr_assert_str_eq(st ? st : "(none)", "ACTIVE");
  free(st);
  char *ended = hget(key(k, sizeof k, "signal:%s", sids[0]), "ended_at");
  cr_assert_null(ended, "ended_at set: %s", ended);
  char *a = zscore("active", sids[0]), *e = zscore("ended", sids[0]);
  cr_assert_not_null(a, "taken off the active set");
  cr_assert_null(e, "put in the ended set");
  free(a);
  cr_assert_eq(count_events(ch, "mission_status_update", NULL, 0), 0);

  run_expire_ok();
  st = status_of(sids[0]);
  cr_assert_str_eq(st ? st : "(none)", "EXPIRED");
  free(st);
  cr_assert_eq(count_events(ch, "mission_status_update", NULL, 0), 1);
}

/* ---- retention ---- */

Test(expire, retention_drops_old_signal_data_but_keeps_trades)
{
  world_lock(LOCK_SH);
  char sid[96], recent[96], user[96], tid[64], k[256], old[32], just[32];
  snprintf(sid, sizeof sid, "%s", uniq("old"));
  snprintf(recent, sizeof recent, "%s", uniq("recent"));
  snprintf(user, sizeof user, "%s", uniq("u"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  cr_assert_eq(make_signal(recent, 3600), 201);
  struct http_resp f;
  cr_assert_eq(fire(user, sid, NULL, &f), 201, "%s", f.body);
  snprintf(tid, sizeof tid, "%s", jget_str(f.json, "trade_id"));
  http_free(&f);
  cr_assert_eq(fire(user, recent, NULL, NULL), 201);

  /* `sid` ended long ago (past retention.signal_s), `recent` a moment ago */
  snprintf(old, sizeof old, "%lld", now_s() - 1000000);
  snprintf(just, sizeof just, "%lld", now_s() - 10);
  const char *pairs[2][2] = {{sid, old}, {recent, just}};
  for (int i = 0; i < 2; i++) {
    const char *h[] = {"HSET", key(k, sizeof k, "signal:%s", pairs[i][0]), "status", "EXPIRED",
                       "ended_at", pairs[i][1]};
    must_ok(rcmd(6, h));
    const char *zr[] = {"ZREM", key(k, sizeof k, "active"), pairs[i][0]};
    must_ok(rcmd(3, zr));
    const char *za[] = {"ZADD", key(k, sizeof k, "ended"), pairs[i][1], pairs[i][0]};
    must_ok(rcmd(4, za));
  }
  cr_assert_eq(exists(key(k, sizeof k, "signal:%s:fired", sid)), 1);
  cr_assert_eq(exists(key(k, sizeof k, "h:mission:%s", sid)), 1);

  run_expire_ok();

  cr_assert_eq(exists(key(k, sizeof k, "signal:%s", sid)), 0, "the old signal's hash is still there");
  cr_assert_eq(exists(key(k, sizeof k, "signal:%s:fired", sid)), 0, "its :fired hash is still there");
  cr_assert_eq(exists(key(k, sizeof k, "h:mission:%s", sid)), 0, "its mission history is still there");
  char *z = zscore("ended", sid);
  cr_assert_null(z, "still in the ended set");
  z = zscore("signals", sid);
  cr_assert_null(z, "still in the signals set");
  /* the trade is the user's history: it stays */
  cr_assert_eq(exists(key(k, sizeof k, "trade:%s", tid)), 1, "trade %s was dropped", tid);
  char *ts = hget(key(k, sizeof k, "trade:%s", tid), "signal_id");
  cr_assert_str_eq(ts ? ts : "(none)", sid);
  free(ts);
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s", sid);
  struct http_resp g;
  http("GET", path, NULL, NULL, NULL, NULL, &g);
  cr_assert_eq(g.status, 404, "%s", g.body);
  http_free(&g);

  /* the recently ended signal keeps everything */
  cr_assert_eq(exists(key(k, sizeof k, "signal:%s", recent)), 1);
  cr_assert_eq(exists(key(k, sizeof k, "signal:%s:fired", recent)), 1);
  cr_assert_eq(exists(key(k, sizeof k, "h:mission:%s", recent)), 1);
  z = zscore("ended", recent);
  cr_assert_not_null(z);
  free(z);
}

/* ---- history trim ---- */

static void publish(const char *channel)
{
  char *svc = token_for("test-feed", "service");
  char body[256];
  snprintf(body, sizeof body, "{\"channel\":\"%s\",\"type\":\"market_update\",\"data\":{\"p\":\"1.5\"}}",
           channel);
  struct http_resp r;
  http("POST", "/api/publish", svc, body, NULL, NULL, &r);
  cr_assert_eq(r.status, 201, "publish on %s: %ld %s", channel, r.status, r.body);
  http_free(&r);
  free(svc);
}

Test(expire, history_trim_drops_idle_channels_and_keeps_fresh_ones)
{
  world_lock(LOCK_SH);
  char idle[128], fresh[128], k[256], oldms[32];
  snprintf(idle, sizeof idle, "market:%s", uniq("IDLE"));
  snprintf(fresh, sizeof fresh, "market:%s", uniq("FRESH"));
  for (int i = 0; i < 3; i++)
    publish(fresh);
  /* the idle channel's events are older than history.max_age_s (1 day): write
   * them straight into its history with ids from then */
  for (int i = 0; i < 3; i++) {
    snprintf(oldms, sizeof oldms, "%lld-%d", now_ms() - (86400LL + 3600) * 1000, i);
    const char *xa[] = {"XADD", key(k, sizeof k, "h:%s", idle), oldms, "t", "market_update",
                        "d", "{}", "p", "0-0"};
    must_ok(rcmd(9, xa));
  }

  run_expire_ok();

  cr_assert_eq(exists(key(k, sizeof k, "h:%s", idle)), 0, "the idle channel's history is still there");
  const char *xl[] = {"XLEN", key(k, sizeof k, "h:%s", fresh)};
  cr_assert_eq(rinteger(2, xl), 3, "the fresh channel lost events");
  /* the dropped channel starts again cleanly */
  publish(idle);
  const char *xi[] = {"XLEN", key(k, sizeof k, "h:%s", idle)};
  cr_assert_eq(rinteger(2, xi), 1);
}

/* ---- output and errors ---- */

Test(expire, prints_a_summary_and_is_silent_with_q)
{
  world_lock(LOCK_SH);
  struct proc_result r;
  run_expire(NULL, NULL, &r);
  cr_assert(r.exited && r.code == 0, "exit %d; stderr: %s", r.code, r.err);
  regex_t re;
  cr_assert_eq(regcomp(&re,
                       "^expired [0-9]+ signal\\(s\\), purged [0-9]+, trimmed [0-9]+ event\\(s\\), "
                       "dropped [0-9]+ idle channel\\(s\\)\n$",
                       REG_EXTENDED),
               0);
  cr_assert_eq(regexec(&re, r.out, 0, NULL, 0), 0, "unexpected summary: '%s'", r.out);
  regfree(&re);
  proc_result_free(&r);

  run_expire(NULL, "-q", &r);
  cr_assert(r.exited && r.code == 0, "exit %d; stderr: %s", r.code, r.err);
  cr_assert_eq(r.out_len, 0, "-q printed: %s", r.out);
  proc_result_free(&r);
}

Test(expire, unreachable_redis_exits_1_with_a_message)
{
  char env[64];
  snprintf(env, sizeof env, "SORTIE_REDIS_PORT=%d", closed_port());
  const char *extra[] = {env, NULL};
  struct proc_result r;
  /* a hang is bounded by run_expire's time limit (killed: r.exited is 0) */
  run_expire(extra, NULL, &r);
  cr_assert(!r.timed_out, "did not give up before the time limit");
  cr_assert(r.exited, "ended by signal %d", r.signal);
  cr_assert_eq(r.code, 1, "exit %d with Redis unreachable; stdout: %s", r.code, r.out);
  cr_assert(strstr(r.err, "sortie-expire") != NULL, "no message on stderr: '%s'", r.err);
  cr_assert(strcasestr(r.err, "redis") != NULL, "the message does not name Redis: '%s'", r.err);
  cr_assert(strstr(r.out, "expired ") == NULL, "a summary was printed for a failed run: %s", r.out);
  proc_result_free(&r);

  /* a config that does not exist: 1 and a message, too */
  const char *bad[] = {"SORTIE_CONF=/nonexistent/sortie.conf", NULL};
  run_expire(bad, NULL, &r);
  cr_assert(r.exited && r.code == 1, "exit %d signal %d with a missing config", r.code, r.signal);
  cr_assert(strstr(r.err, "/nonexistent/sortie.conf") != NULL, "stderr: '%s'", r.err);
  proc_result_free(&r);
}
