/* The restart fault tests of issue 9 (tests/faults/test_restarts_*.c): clients
 * that follow one mission channel over SSE, WebSocket and long-poll and come
 * back with their cursor whenever the connection ends; fire threads that retry
 * with the same Idempotency-Key until a final answer; a /health watcher; and
 * the counts each test prints (one COUNTS line) and asserts on.
 *
 * The end of a run is a marker, not a quiet window: once every fire has its
 * final answer, rs_end() takes the fire count (the target) and publishes one
 * more event on the channel (type RS_MARK_TYPE, by POST /api/publish: not a
 * fire, so the fire counts stay the fires' own, and the mission history's
 * count leaves it out; the COUNTS line says end_marker=<clients that got
 * it>/<clients>). Every fire_count_update comes before it in the channel's
 * order, so a client reads until it has the marker (bounded only by the run's
 * deadline: a marker that never comes is a failure), and a duplicate pushd
 * sends before the marker, however late, is counted. (One sent after it, with
 * nothing to follow, no client can tell from a slow server.)
 *
 * Threads: every function named rs_*_main runs in a thread of its own and
 * never asserts; the test's main thread reads what they recorded after joining
 * them, and only it calls Criterion. Every thread ends by itself: at its goal,
 * at the run's stop flag, or at the run's deadline. */
#ifndef SORTIE_TEST_RESTARTS_H
#define SORTIE_TEST_RESTARTS_H

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "integration/test_pushd_util.h"

#define RS __attribute__((unused)) static

/* ---- one run: the channel everyone follows, when to stop ---- */

struct rs_run {
  char signal[96];
  char channel[128];
  char cursor0[64];     /* the cursor before the first fire */
  long long deadline;   /* pc_now() past which every thread gives up */
  atomic_long target;   /* the last count to expect; 0 while fires go on */
  char marker_id[64];   /* the end marker's id; "" until it is published */
  int marker_tries;     /* POST /api/publish attempts it took */
  atomic_int stop;      /* every thread: stop now */
};

/* the test process: more descriptors, no SIGPIPE, libcurl and the harness's
 * configuration loaded once before any thread uses them */
RS void rs_process_setup(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_ALL);
  free(token_for("rs-warmup", "user"));
  json_object_put(json_tokener_parse("{\"warm\":1}"));
}

/* an event id "<ms>-<seq>" as two numbers; 0, -1 */
RS int rs_id_parse(const char *id, long long *ms, long long *seq)
{
  char *end;
  *ms = strtoll(id, &end, 10);
  if (*end != '-')
    return -1;
  *seq = strtoll(end + 1, &end, 10);
  return *end ? -1 : 0;
}

/* ---- the clients ---- */

enum rs_kind { RS_SSE, RS_WS, RS_POLL };
static const char *const rs_kind_name[] = {"sse", "ws", "poll"};

struct rs_ev {
  long count;
  long long ms, seq;
};

/* the end marker's type (published by rs_end, data {"run":"<signal>"}) */
#define RS_MARK_TYPE "rs_end"

struct rs_client {
  enum rs_kind kind;
  int idx;
  struct rs_run *run;
  const char *base;    /* the daemon's own URL, or Apache's */
  const char *prefix;  /* "" on the daemon, "/push" through Apache */
  char *token;
  char cursor[64];     /* where to resume: the last id the client saw */
  /* what came, in order: every fire_count_update */
  struct rs_ev *ev;
  size_t nev, capev;
  int connects;        /* connections that got their stream (or poll answer) */
  int refused;         /* attempts that got no stream: refused, reset, non-200 */
  int resets;          /* reset messages */
  int bad;             /* messages that were neither events nor expected control */
  int marked;          /* the end marker came: the client stops reading there */
  struct rs_ev mark;   /* its id (count 0) */
  atomic_int ready;    /* the first connection is up */
  long long first_connect_ms; /* how long the first connection took */
  pthread_t th;
};

/* records one envelope's text; returns its count (0 when not a fire count) */
RS long rs_take_envelope(struct rs_client *c, const char *text)
{
  json_object *o = json_tokener_parse(text);
  const char *type = jget_str(o, "type"), *id = jget_str(o, "id");
  long count = 0;
  if (c->marked) {
    /* the client stops at the marker: nothing after it is recorded */
  } else if (type && strcmp(type, RS_MARK_TYPE) == 0 && id) {
    const char *run = jget_str(o, "data.run");
    if (run == NULL || strcmp(run, c->run->signal) != 0 ||
        rs_id_parse(id, &c->mark.ms, &c->mark.seq) < 0)
      c->bad++;
    else
      c->marked = 1;
  } else if (type && strcmp(type, "fire_count_update") == 0 && id) {
    struct rs_ev e = {.count = (long)jget_int(o, "data.count")};
    if (rs_id_parse(id, &e.ms, &e.seq) < 0)
      c->bad++;
    if (c->nev == c->capev) {
      c->capev = c->capev ? c->capev * 2 : 256;
      c->ev = realloc(c->ev, c->capev * sizeof *c->ev);
    }
    c->ev[c->nev++] = e;
    snprintf(c->cursor, sizeof c->cursor, "%s", id);
    count = e.count;
  } else if (type && strcmp(type, "reset") == 0) {
    c->resets++;
  } else if (type && strcmp(type, "presence_update") == 0) {
    /* the mission's watching count (push.presence): expected on the
     * channel, never negative, and not a fire */
    if (strcmp(jget_str(o, "data.signal_id") ? jget_str(o, "data.signal_id") : "",
               c->run->signal) != 0 || jget_int(o, "data.watching") < 0)
      c->bad++;
  } else if (type && (strcmp(type, "subscribed") == 0 || strcmp(type, "connection_status") == 0 ||
                      strcmp(type, "pong") == 0)) {
    /* control messages of a WebSocket */
  } else {
    c->bad++;
  }
  json_object_put(o);
  return count;
}

/* the client has everything once the end marker came */
static int rs_done(struct rs_client *c)
{
  return c->marked;
}

static int rs_give_up(struct rs_client *c)
{
  return atomic_load(&c->run->stop) || pc_now() > c->run->deadline;
}

/* a pause between two connection attempts: 100-200 ms */
static void rs_backoff(struct rs_client *c)
{
  pc_sleep_ms(100 + (c->idx * 37 + c->refused * 53) % 100);
}

static void rs_note_connect(struct rs_client *c, long long t0)
{
  if (c->connects++ == 0) {
    c->first_connect_ms = pc_now() - t0;
    atomic_store(&c->ready, 1);
  }
}

static void rs_sse(struct rs_client *c)
{
  char *path = strf("%s/events?channels=%s&cursor=%s", c->prefix, c->run->channel, c->run->cursor0);
  long long t0 = pc_now();
  while (!rs_give_up(c) && !rs_done(c)) {
    /* like a browser: the same URL again, with Last-Event-ID once it has one */
    struct sse_client *s = sse_open(c->base, path, c->token, c->cursor[0] ? c->cursor : NULL, NULL,
                                    0, T_SHORT);
    if (s == NULL || s->status != 200) {
      c->refused++;
      sse_close(s);
      rs_backoff(c);
      continue;
    }
    rs_note_connect(c, t0);
    size_t seen = 0;
    while (!rs_give_up(c) && !rs_done(c)) {
      /* 300 ms: how often the deadline and stop flag are looked at */
      sse_read_msgs(s, seen + 1, 300);
      for (; seen < s->nmsgs && !rs_done(c); seen++) {
        const struct sse_msg *m = &s->msgs[seen];
        if (m->data)
          rs_take_envelope(c, m->data);
        if (m->id) /* the id-only "caught up" message moves the cursor too */
          snprintf(c->cursor, sizeof c->cursor, "%s", m->id);
      }
      if (s->closed)
        break;
    }
    sse_close(s);
  }
  free(path);
}

static void rs_ws(struct rs_client *c)
{
  char *path = strf("%s/ws", c->prefix);
  long long t0 = pc_now();
  while (!rs_give_up(c) && !rs_done(c)) {
    struct ws_client *w = ws_open(c->base, path, c->token, NULL, 0, T_SHORT);
    if (w == NULL || w->status != 101) {
      c->refused++;
      ws_close(w);
      rs_backoff(c);
      continue;
    }
    char *sub = strf("{\"action\":\"subscribe\",\"channels\":[\"%s\"],\"since\":\"%s\"}",
                     c->run->channel, c->cursor[0] ? c->cursor : c->run->cursor0);
    int sent = ws_send_text(w, sub);
    free(sub);
    if (sent < 0) {
      c->refused++;
      ws_close(w);
      rs_backoff(c);
      continue;
    }
    rs_note_connect(c, t0);
    while (!rs_give_up(c) && !rs_done(c)) {
      /* 300 ms: how often the deadline and stop flag are looked at */
      const char *t = ws_next_text(w, 300);
      if (t)
        rs_take_envelope(c, t);
      else if (w->closed || w->close_code >= 0)
        break;
    }
    ws_close(w);
  }
  free(path);
}

static void rs_poll(struct rs_client *c)
{
  char *auth = strf("Authorization: Bearer %s\r\n", c->token);
  long long t0 = pc_now();
  while (!rs_give_up(c) && !rs_done(c)) {
    char *path = strf("%s/poll?channels=%s&cursor=%s&timeout=3", c->prefix, c->run->channel,
                      c->cursor[0] ? c->cursor : c->run->cursor0);
    struct pc_resp r;
    /* the poll answers within its 3 s (at once when events wait); 30 s only
     * turns a hung poll into a failed one (counted refused, then retried from
     * the same cursor), on however slow a machine */
    int rc = pc_get(c->base, path, auth, &r, 30000);
    free(path);
    if (rc < 0 || r.status != 200) {
      c->refused++;
      pc_resp_free(&r);
      rs_backoff(c);
      continue;
    }
    rs_note_connect(c, t0);
    char **items = NULL;
    long n = pc_json_raw_items(r.body, "events", &items);
    for (long i = 0; i < n && !rs_done(c); i++)
      rs_take_envelope(c, items[i]);
    if (n > 0)
      pc_strv_free(items, n);
    json_object *o = json_tokener_parse(r.body);
    const char *cur = jget_str(o, "cursor");
    if (cur && *cur)
      snprintf(c->cursor, sizeof c->cursor, "%s", cur);
    else
      c->bad++;
    json_object_put(o);
    pc_resp_free(&r);
  }
  free(auth);
}

static void *rs_client_main(void *arg)
{
  struct rs_client *c = arg;
  if (c->kind == RS_SSE)
    rs_sse(c);
  else if (c->kind == RS_WS)
    rs_ws(c);
  else
    rs_poll(c);
  return NULL;
}

/* n clients: nsse SSE, nws WebSocket, the rest long-poll, each its own user,
 * all on run->channel at base + prefix; not started yet */
RS struct rs_client *rs_clients_make(struct rs_run *run, int n, int nsse, int nws,
                                     const char *base, const char *prefix)
{
  struct rs_client *cs = calloc((size_t)n, sizeof *cs);
  for (int i = 0; i < n; i++) {
    struct rs_client *c = &cs[i];
    c->kind = i < nsse ? RS_SSE : i < nsse + nws ? RS_WS : RS_POLL;
    c->idx = i;
    c->run = run;
    c->base = base;
    c->prefix = prefix;
    c->token = token_for(uniq("rsc"), "user");
    atomic_init(&c->ready, 0);
  }
  return cs;
}

RS void rs_client_launch(struct rs_client *c)
{
  cr_assert_eq(pthread_create(&c->th, NULL, rs_client_main, c), 0);
}

/* rs_clients_make, and every one started at once */
RS struct rs_client *rs_clients_start(struct rs_run *run, int n, int nsse, int nws,
                                      const char *base, const char *prefix)
{
  struct rs_client *cs = rs_clients_make(run, n, nsse, nws, base, prefix);
  for (int i = 0; i < n; i++)
    rs_client_launch(&cs[i]);
  return cs;
}

/* waits (bounded) for every client's first connection; returns how many are up */
RS int rs_clients_wait_ready(struct rs_client *cs, int n, int timeout_ms)
{
  long long end = pc_now() + timeout_ms;
  int up;
  do {
    up = 0;
    for (int i = 0; i < n; i++)
      up += atomic_load(&cs[i].ready);
    if (up == n)
      break;
    pc_sleep_ms(50);
  } while (pc_now() < end);
  return up;
}

RS void rs_clients_join(struct rs_client *cs, int n)
{
  for (int i = 0; i < n; i++)
    pthread_join(cs[i].th, NULL);
}

RS void rs_clients_free(struct rs_client *cs, int n)
{
  for (int i = 0; i < n; i++) {
    free(cs[i].ev);
    free(cs[i].token);
  }
  free(cs);
}

/* What the clients got before the end marker, against counts 1..target. */
struct rs_tally {
  int clients, complete;
  int marked;          /* clients that got the end marker */
  long min_delivered;  /* the fewest distinct counts a client got */
  long lost, dup;      /* summed over clients */
  long order;          /* events not after the one before (id or count) */
  int resets, bad, connects, polls, refused; /* connects: SSE and WS streams */
  long long slowest_first_connect_ms;
};

RS struct rs_tally rs_tally(const struct rs_client *cs, int n, long target)
{
  struct rs_tally t = {.clients = n, .min_delivered = target};
  unsigned char *seen = calloc((size_t)target + 2, 1);
  for (int i = 0; i < n; i++) {
    const struct rs_client *c = &cs[i];
    memset(seen, 0, (size_t)target + 2);
    long distinct = 0, dup = 0, order = 0;
    for (size_t k = 0; k < c->nev; k++) {
      const struct rs_ev *e = &c->ev[k];
      if (e->count >= 1 && e->count <= target) {
        if (seen[e->count])
          dup++;
        else
          distinct++;
        seen[e->count] = 1;
      } else {
        dup++; /* a count that should not exist */
      }
      if (k > 0) {
        const struct rs_ev *p = &c->ev[k - 1];
        if (e->count <= p->count || e->ms < p->ms || (e->ms == p->ms && e->seq <= p->seq))
          order++;
      }
    }
    /* the marker after the last event, as it was published */
    if (c->marked && c->nev > 0) {
      const struct rs_ev *p = &c->ev[c->nev - 1];
      if (c->mark.ms < p->ms || (c->mark.ms == p->ms && c->mark.seq <= p->seq))
        order++;
    }
    t.marked += c->marked;
    if (distinct < t.min_delivered)
      t.min_delivered = distinct;
    t.lost += target - distinct;
    t.dup += dup;
    t.order += order;
    t.complete += distinct == target && dup == 0 && order == 0 && c->marked;
    t.resets += c->resets;
    t.bad += c->bad;
    if (c->kind == RS_POLL)
      t.polls += c->connects;
    else
      t.connects += c->connects;
    t.refused += c->refused;
    if (c->first_connect_ms > t.slowest_first_connect_ms)
      t.slowest_first_connect_ms = c->first_connect_ms;
  }
  free(seen);
  return t;
}

/* the first client short of the target, described (for an assertion message) */
RS void rs_first_incomplete(const struct rs_client *cs, int n, long target, char *out, size_t len)
{
  snprintf(out, len, "none");
  for (int i = 0; i < n; i++) {
    const struct rs_client *c = &cs[i];
    int ok = c->marked && c->nev == (size_t)target;
    for (size_t k = 0; ok && k < c->nev; k++)
      ok = c->ev[k].count == (long)k + 1;
    if (ok)
      continue;
    size_t k = 0;
    while (k < c->nev && c->ev[k].count == (long)k + 1)
      k++;
    snprintf(out, len, "client %d (%s): %zu events, first wrong at #%zu (count %ld), last %ld, "
             "connects %d, resets %d, %s", i, rs_kind_name[c->kind], c->nev, k,
             k < c->nev ? c->ev[k].count : -1L, c->nev ? c->ev[c->nev - 1].count : -1L,
             c->connects, c->resets, c->marked ? "then the end marker" : "no end marker");
    return;
  }
}

/* ---- fires ---- */

struct rs_fire {
  char user[64];
  char key[96];
  long status;       /* final answer: 201, 409, other; 0 if none came */
  int replayed;      /* the 201 was a replay (an earlier attempt had written it) */
  int after_503;     /* a 503 or transport error came before the final answer */
  char trade[48];
  long count;        /* fire_count in the 201 */
};

struct rs_firing {
  struct rs_run *run;
  struct rs_fire *f;
  int n, interval_ms;
  atomic_int next, acked, answered;
  /* every attempt, over all threads */
  atomic_int attempts, n503, ntransport, nother;
  atomic_llong slowest_ms, slowest_503_ms;
  pthread_t th[8];
  int nthreads;
};

static void rs_max(atomic_llong *m, long long v)
{
  long long cur = atomic_load(m);
  while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
    ;
}

static void *rs_fire_main(void *arg)
{
  struct rs_firing *fg = arg;
  for (;;) {
    int i = atomic_fetch_add(&fg->next, 1);
    if (i >= fg->n)
      break;
    struct rs_fire *f = &fg->f[i];
    while (!atomic_load(&fg->run->stop) && pc_now() < fg->run->deadline) {
      struct http_resp r;
      long long t0 = pc_now();
      long st = fire(f->user, fg->run->signal, f->key, &r);
      long long ms = pc_now() - t0;
      atomic_fetch_add(&fg->attempts, 1);
      rs_max(&fg->slowest_ms, ms);
      if (st == 201 || st == 409) {
        f->status = st;
        if (st == 201) {
          char v[16];
          f->replayed = http_header(&r, "Idempotent-Replayed", v, sizeof v) != NULL;
          const char *tid = jget_str(r.json, "trade_id");
          snprintf(f->trade, sizeof f->trade, "%s", tid ? tid : "");
          f->count = (long)jget_int(r.json, "fire_count");
          atomic_fetch_add(&fg->acked, 1);
        }
        http_free(&r);
        break;
      }
      http_free(&r);
      if (st == 503) {
        atomic_fetch_add(&fg->n503, 1);
        rs_max(&fg->slowest_503_ms, ms);
      } else if (st == 0) {
        atomic_fetch_add(&fg->ntransport, 1);
      } else if (st != 502 && st != 500) {
        /* a refusal that retrying cannot change */
        atomic_fetch_add(&fg->nother, 1);
        f->status = st;
        break;
      } else {
        atomic_fetch_add(&fg->nother, 1);
      }
      f->after_503 = 1;
      pc_sleep_ms(50);
    }
    atomic_fetch_add(&fg->answered, 1);
    if (fg->interval_ms)
      pc_sleep_ms(fg->interval_ms);
  }
  return NULL;
}

/* n fires on run->signal by n distinct users, by `threads` threads, each
 * waiting interval_ms between two fires */
RS struct rs_firing *rs_fires_start(struct rs_run *run, int n, int threads, int interval_ms)
{
  struct rs_firing *fg = calloc(1, sizeof *fg);
  fg->run = run;
  fg->n = n;
  fg->interval_ms = interval_ms;
  fg->f = calloc((size_t)n, sizeof *fg->f);
  const char *tag = uniq("rsf");
  for (int i = 0; i < n; i++) {
    snprintf(fg->f[i].user, sizeof fg->f[i].user, "%s_%d", tag, i);
    snprintf(fg->f[i].key, sizeof fg->f[i].key, "key-%s_%d", tag, i);
  }
  fg->nthreads = threads > 8 ? 8 : threads;
  for (int i = 0; i < fg->nthreads; i++)
    cr_assert_eq(pthread_create(&fg->th[i], NULL, rs_fire_main, fg), 0);
  return fg;
}

/* waits (bounded) until at least n fires were acknowledged */
RS int rs_fires_wait_acked(struct rs_firing *fg, int n, int timeout_ms)
{
  long long end = pc_now() + timeout_ms;
  while (atomic_load(&fg->acked) < n && atomic_load(&fg->answered) < fg->n && pc_now() < end)
    pc_sleep_ms(5);
  return atomic_load(&fg->acked);
}

RS void rs_fires_join(struct rs_firing *fg)
{
  for (int i = 0; i < fg->nthreads; i++)
    pthread_join(fg->th[i], NULL);
}

RS void rs_fires_free(struct rs_firing *fg)
{
  free(fg->f);
  free(fg);
}

/* Checks every 201 in Redis: the user is in the signal's fired hash with that
 * trade, and the trade exists for that user. Returns how many are there. */
RS int rs_acked_in_redis(const struct rs_firing *fg, int *replayed, int *after_503)
{
  int present = 0;
  *replayed = *after_503 = 0;
  char fkey[256];
  snprintf(fkey, sizeof fkey, "%ssignal:%s:fired", kp(), fg->run->signal);
  for (int i = 0; i < fg->n; i++) {
    const struct rs_fire *f = &fg->f[i];
    if (f->status != 201)
      continue;
    *replayed += f->replayed;
    *after_503 += f->after_503;
    const char *av[] = {"HGET", fkey, f->user};
    char *tid = rstr(3, av);
    char tkey[256];
    snprintf(tkey, sizeof tkey, "%strade:%s", kp(), f->trade);
    const char *bv[] = {"HGET", tkey, "user_id"};
    char *owner = rstr(3, bv);
    present += tid && strcmp(tid, f->trade) == 0 && owner && strcmp(owner, f->user) == 0;
    free(tid);
    free(owner);
  }
  return present;
}

/* the signal's fire count in Redis, -1 if unreadable */
RS long rs_fire_count(const struct rs_run *run)
{
  char key[256];
  snprintf(key, sizeof key, "%ssignal:%s", kp(), run->signal);
  const char *av[] = {"HGET", key, "fire_count"};
  char *s = rstr(3, av);
  long v = s ? atol(s) : -1;
  free(s);
  return v;
}

/* the mission's history in Redis holds fire counts 1..n in order: returns
 * how many of them do (the length of the good prefix); the end marker (the
 * last entry once rs_end ran) and the watching counts (presence_update) are
 * neither counted in *total nor a break */
RS long rs_history_good(const struct rs_run *run, long *total)
{
  json_object *h = rstream(run->channel);
  long good = 0, n = (long)json_object_array_length(h), bad = 0;
  *total = 0;
  for (long i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx(h, (size_t)i);
    const char *type = jget_str(e, "type");
    if (type && (strcmp(type, RS_MARK_TYPE) == 0 || strcmp(type, "presence_update") == 0))
      continue;
    ++*total;
    if (!bad && jget_int(e, "data.count") == good + 1)
      good++;
    else
      bad = 1;
  }
  json_object_put(h);
  return good;
}

/* ---- /health, polled every ~50 ms ---- */

struct rs_health {
  char url_base[128];
  char path[32];
  atomic_int stop;
  pthread_t th;
  /* results */
  long long max_gap_ms;   /* the longest time between two answers */
  long long max_gap_end;  /* pc_now() when it ended */
  int answers, non200, failures;
  long long last_answer;
};

static void *rs_health_main(void *arg)
{
  struct rs_health *h = arg;
  while (!atomic_load(&h->stop)) {
    struct pc_resp r;
    int rc = pc_get(h->url_base, h->path, NULL, &r, 2000);
    long long now = pc_now();
    if (rc == 0 && r.status > 0) {
      if (h->last_answer && now - h->last_answer > h->max_gap_ms) {
        h->max_gap_ms = now - h->last_answer;
        h->max_gap_end = now;
      }
      h->last_answer = now;
      h->answers++;
      h->non200 += r.status != 200;
    } else {
      h->failures++;
    }
    pc_resp_free(&r);
    pc_sleep_ms(50);
  }
  /* a gap still open at the end counts too */
  if (h->last_answer && pc_now() - h->last_answer > h->max_gap_ms + 100) {
    h->max_gap_ms = pc_now() - h->last_answer;
    h->max_gap_end = pc_now();
  }
  return NULL;
}

RS struct rs_health *rs_health_start(const char *base, const char *path)
{
  struct rs_health *h = calloc(1, sizeof *h);
  snprintf(h->url_base, sizeof h->url_base, "%s", base);
  snprintf(h->path, sizeof h->path, "%s", path);
  atomic_init(&h->stop, 0);
  cr_assert_eq(pthread_create(&h->th, NULL, rs_health_main, h), 0);
  return h;
}

RS void rs_health_stop(struct rs_health *h)
{
  atomic_store(&h->stop, 1);
  pthread_join(h->th, NULL);
}

/* ---- the world's processes ---- */

/* the pid in a pid file of the world (relative to its runtime folder), -1 */
RS pid_t rs_pid(const char *rel)
{
  char path[700];
  snprintf(path, sizeof path, "%s/%s", world_run(), rel);
  FILE *f = fopen(path, "r");
  int p = -1;
  if (f) {
    if (fscanf(f, "%d", &p) != 1)
      p = -1;
    fclose(f);
  }
  return p > 1 ? (pid_t)p : -1;
}

/* waits (bounded) for a process to be gone; 1 if it is */
RS int rs_wait_gone(pid_t p, int timeout_ms)
{
  long long end = pc_now() + timeout_ms;
  while (kill(p, 0) == 0 && pc_now() < end)
    pc_sleep_ms(20);
  return kill(p, 0) != 0;
}

/* ---- the run ---- */

RS void rs_run_init(struct rs_run *run, long long budget_ms)
{
  memset(run, 0, sizeof *run);
  snprintf(run->signal, sizeof run->signal, "%s", uniq("rss"));
  snprintf(run->channel, sizeof run->channel, "mission:%s", run->signal);
  cr_assert_eq(make_signal(run->signal, 3600), 201, "cannot create the signal");
  char *c0 = cursor_now(run->channel);
  snprintf(run->cursor0, sizeof run->cursor0, "%s", c0);
  free(c0);
  run->deadline = pc_now() + budget_ms;
  atomic_init(&run->target, 0);
  atomic_init(&run->stop, 0);
}

/* Every fire has its final answer (the fire threads were joined): the target
 * is the signal's fire count, and the end marker is published after it on the
 * channel (retried until it is acknowledged: a publish whose answer was lost
 * may come twice, and a client stops at the first). ok 0 (the run could not
 * start): every thread stops instead. */
RS void rs_end(struct rs_run *run, int ok)
{
  if (!ok) {
    atomic_store(&run->stop, 1);
    return;
  }
  atomic_store(&run->target, rs_fire_count(run));
  char *data = strf("{\"run\":\"%s\"}", run->signal);
  while (!run->marker_id[0] && pc_now() < run->deadline) {
    char *id = publish_id(run->channel, RS_MARK_TYPE, data);
    run->marker_tries++;
    if (id)
      snprintf(run->marker_id, sizeof run->marker_id, "%s", id);
    else
      pc_sleep_ms(200);
    free(id);
  }
  free(data);
  if (!run->marker_id[0]) /* nothing to wait for: the clients stop, the checks fail */
    atomic_store(&run->stop, 1);
}

/* ---- the counts ---- */

struct rs_counts {
  int sent, acked, in_redis, replayed, after_503, not_final;
  long fire_count, history, history_good;
  struct rs_tally t;
};

/* Reads Redis and the clients after every thread was joined, and prints one
 * line: COUNTS <name>: ... <extra> */
RS struct rs_counts rs_count(const char *name, struct rs_run *run, struct rs_firing *fg,
                             const struct rs_client *cs, int n, const char *extra)
{
  struct rs_counts k = {.sent = fg->n, .acked = atomic_load(&fg->acked)};
  k.in_redis = rs_acked_in_redis(fg, &k.replayed, &k.after_503);
  for (int i = 0; i < fg->n; i++)
    k.not_final += fg->f[i].status != 201 && fg->f[i].status != 409;
  k.fire_count = rs_fire_count(run);
  k.history_good = rs_history_good(run, &k.history);
  long target = atomic_load(&run->target);
  k.t = rs_tally(cs, n, target);
  int nk[3] = {0, 0, 0};
  for (int i = 0; i < n; i++)
    nk[cs[i].kind]++;
  fprintf(stderr,
          "COUNTS %s: fires sent=%d acked=%d in_redis=%d fire_count=%ld (201 after a 503 or "
          "transport error=%d, of them replays=%d; attempts=%d 503=%d transport=%d other=%d "
          "unanswered=%d) history=%ld/%ld clients=%d(sse=%d,ws=%d,poll=%d) "
          "complete=%d/%d delivered_each_min=%ld/%ld lost=%ld dup=%ld order_err=%ld resets=%d "
          "bad=%d stream_connects=%d poll_answers=%d refused=%d end_marker=%d/%d %s\n",
          name, k.sent, k.acked, k.in_redis, k.fire_count, k.after_503, k.replayed,
          atomic_load(&fg->attempts), atomic_load(&fg->n503), atomic_load(&fg->ntransport),
          atomic_load(&fg->nother), k.not_final, k.history_good, k.history, n, nk[0], nk[1],
          nk[2], k.t.complete, n, k.t.min_delivered, target, k.t.lost, k.t.dup, k.t.order,
          k.t.resets, k.t.bad, k.t.connects, k.t.polls, k.t.refused, k.t.marked, n,
          extra ? extra : "");
  return k;
}

/* the assertions every restart test makes: every fire answered, every 201 in
 * Redis, the count and the history agree, every client got 1..count once, in
 * order, and then the end marker */
RS void rs_assert_nothing_lost(const struct rs_counts *k, const struct rs_run *run,
                               const struct rs_client *cs, int n)
{
  long target = atomic_load(&run->target);
  cr_assert_eq(k->not_final, 0, "%d fires got no final answer", k->not_final);
  cr_assert_eq(k->acked, k->sent, "acked %d of %d fires", k->acked, k->sent);
  cr_assert_eq(k->in_redis, k->acked, "%d acknowledged fires are not in Redis",
               k->acked - k->in_redis);
  cr_assert_eq(k->fire_count, k->acked, "fire_count %ld, acked %d", k->fire_count, k->acked);
  cr_assert_eq(target, k->fire_count);
  cr_assert_eq(k->history_good, k->fire_count, "the mission history holds 1..%ld of %ld",
               k->history_good, k->fire_count);
  char why[256];
  rs_first_incomplete(cs, n, target, why, sizeof why);
  cr_assert_eq(k->t.lost, 0, "clients lost %ld events; %s", k->t.lost, why);
  cr_assert_eq(k->t.dup, 0, "clients got %ld duplicates; %s", k->t.dup, why);
  cr_assert_eq(k->t.order, 0, "%ld events out of order; %s", k->t.order, why);
  cr_assert_eq(k->t.resets, 0, "%d resets", k->t.resets);
  cr_assert_eq(k->t.bad, 0, "%d unexpected messages", k->t.bad);
  cr_assert(run->marker_id[0], "the end marker was not published (%d tries)", run->marker_tries);
  cr_assert_eq(k->t.marked, n, "%d of %d clients got the end marker; %s", k->t.marked, n, why);
  cr_assert_eq(k->t.complete, n, "%d of %d clients complete; %s", k->t.complete, n, why);
}

/* ---- Redis restarted from its AOF in the middle of fires ---- */

/* Item 4: 600 fires followed by 25 clients (10 SSE, 10 WebSocket, 5
 * long-poll) on the daemon; after 200 acknowledged fires Redis is stopped
 * (SHUTDOWN, or kill -9 when kill9) and started again from its AOF. Fires
 * answered 503 or not at all are retried with their Idempotency-Key. Prints
 * the counts; returns them, and how many acknowledged fires Redis lost. */
RS struct rs_counts rs_redis_restart(const char *name, int kill9, struct rs_run *run,
                                     struct rs_client **csp, int *ncs)
{
  enum { FIRES = 600, AT = 200, N = 25 };
  rs_process_setup();
  rs_run_init(run, 80000);
  struct rs_health *h = rs_health_start(world_push_base(), "/health");
  struct rs_client *cs = rs_clients_start(run, N, 10, 10, world_push_base(), "");
  int up = rs_clients_wait_ready(cs, N, 20000);
  struct rs_firing *fg = rs_fires_start(run, up == N ? FIRES : 0, 2, 8);
  int stopped = -1, started = -1, acked_at_stop = 0, acked_at_start = 0;
  long long down_ms = 0;
  if (up == N) {
    rs_fires_wait_acked(fg, AT, 30000);
    long long t0 = pc_now();
    acked_at_stop = atomic_load(&fg->acked);
    if (kill9) {
      pid_t pid = rs_pid("redis/redis.pid");
      stopped = pid > 0 ? kill(pid, SIGKILL) : -1;
      if (stopped == 0 && !rs_wait_gone(pid, 5000))
        stopped = -1;
    } else {
      stopped = world_ctl("redis-stop");
    }
    started = world_ctl("redis-start");
    down_ms = pc_now() - t0;
    acked_at_start = atomic_load(&fg->acked);
  }
  rs_fires_join(fg);
  rs_end(run, up == N);
  rs_clients_join(cs, N);
  rs_health_stop(h);
  cr_assert_eq(up, N, "only %d of %d clients connected", up, N);
  cr_assert_eq(stopped, 0, "could not stop Redis");
  cr_assert_eq(started, 0, "redis-start failed");

  char extra[320];
  snprintf(extra, sizeof extra, "acked_at_stop=%d acked_at_start=%d redis_down=%lldms "
           "slowest_fire_answer=%lldms pushd_health_gap_max=%lldms pushd_health_non200=%d",
           acked_at_stop, acked_at_start, down_ms, (long long)atomic_load(&fg->slowest_ms),
           h->max_gap_ms, h->non200);
  struct rs_counts k = rs_count(name, run, fg, cs, N, extra);
  if (k.in_redis != k.acked)
    fprintf(stderr, "LOST %s: %d acknowledged fires are not in Redis after the restart\n", name,
            k.acked - k.in_redis);
  rs_fires_free(fg);
  free(h);
  *csp = cs;
  *ncs = N;
  return k;
}

#undef RS
#endif
