/* Resume jobs (resume.h). */
#include "resume.h"
#include "bus.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 500 /* events per history read, at most (sortie_history_page) */

enum jstate {
  J_NEW,        /* not yet sent */
  J_RUN,        /* on the run queue: to send now */
  J_WAIT_CH,    /* waits for nwait channels to be confirmed by Redis */
  J_WAIT_REDIS, /* on the wait list: a link to Redis is down */
  J_THROTTLED,  /* waits for its client's queue to drain */
  J_QUEUED,     /* ready to read: waits its turn on the read queue */
  J_INFLIGHT,   /* a read is out, or its answer is being handled */
};

struct jlist {
  struct pd_job *head, *tail;
};

struct pd_job {
  struct pd_client *c;
  struct pd_sub **subs;
  uint32_t nsubs;
  char from[SORTIE_EVENT_ID_MAX + 1]; /* history is read after this id */
  struct pd_event **pending;          /* live events that arrived meanwhile */
  uint32_t npending, cappending;
  size_t pending_bytes;               /* what they will cost in the queue */
  uint32_t nwait;                     /* channels not yet subscribed in Redis */
  uint32_t gen;                       /* link generation when the read went out */
  uint32_t page;                      /* the page size that read asked for */
  enum jstate state;
  uint8_t cancelled; /* its subscriptions all left while in flight: free on return */
  uint8_t from_now;  /* started without an id: its first read fixes the position */
  uint8_t announced; /* the client was told the subscriptions are in place */
  uint8_t throttled; /* stopped for room: go on once the queue has drained */
  uint8_t out;       /* its read is out: holds one of the worker's read slots */
  uint8_t turn;      /* taken off the read queue: may read now */
  struct jlist *list;
  struct pd_job *prev, *next;
};

static struct jlist runq, waitq;
/* The read queue: jobs ready to read, in the order they got ready. At most
 * max_reads reads are out at once in a worker, and at most one per client
 * (pd_client.reading), so that one user's reads (bounded by their
 * connections) queue behind each other and everyone else's rather than in
 * Redis in front of the fires; a job that read a page and has more goes to
 * the back. A job cancelled while it waits here never reaches Redis. */
static struct jlist readq;
static uint32_t reads_out, max_reads;
static uint32_t link_gen; /* +1 each time the subscriber link is lost */
static uint64_t steps;
static uint32_t njobs;
static int running;

/* ---- lists ---- */

static void list_del(struct pd_job *j)
{
  if (j->list == NULL)
    return;
  if (j->prev)
    j->prev->next = j->next;
  else
    j->list->head = j->next;
  if (j->next)
    j->next->prev = j->prev;
  else
    j->list->tail = j->prev;
  j->list = NULL;
  j->prev = j->next = NULL;
}

static void list_add(struct jlist *l, struct pd_job *j)
{
  list_del(j);
  j->list = l;
  j->prev = NULL;
  j->next = l->head;
  if (l->head)
    l->head->prev = j;
  if (l->tail == NULL)
    l->tail = j;
  l->head = j;
}

static void list_append(struct jlist *l, struct pd_job *j)
{
  list_del(j);
  j->list = l;
  j->next = NULL;
  j->prev = l->tail;
  if (l->tail)
    l->tail->next = j;
  else
    l->head = j;
  l->tail = j;
}

static void job_send(struct pd_job *j);

/* The first job on the read queue whose client has no read out. Those
 * passed over belong to clients reading now: at most max_reads clients,
 * each with at most one job per subscription. */
static struct pd_job *next_turn(void)
{
  for (struct pd_job *j = readq.head; j; j = j->next) {
    steps++;
    if (!j->c->reading)
      return j;
  }
  return NULL;
}

/* Sends what is on the run queue, then gives free read slots to the read
 * queue in order; new work queued meanwhile is taken too. */
static void run(void)
{
  if (running)
    return;
  running = 1;
  for (;;) {
    struct pd_job *j = runq.head;
    if (j == NULL && reads_out < max_reads && (j = next_turn()) != NULL)
      j->turn = 1;
    if (j == NULL)
      break;
    list_del(j);
    steps++;
    job_send(j);
  }
  running = 0;
}

static void schedule(struct pd_job *j)
{
  j->state = J_RUN;
  list_add(&runq, j);
}

static void wait_redis(struct pd_job *j)
{
  j->state = J_WAIT_REDIS;
  list_add(&waitq, j);
}

/* Moves the whole wait list to the run queue. */
static void wake_waiting(void)
{
  while (waitq.head)
    schedule(waitq.head);
}

/* ---- jobs ---- */

static void job_free(struct pd_job *j)
{
  list_del(j);
  for (uint32_t i = 0; i < j->npending; i++)
    pd_event_unref(j->pending[i]);
  free(j->pending);
  free(j->subs);
  free(j);
  njobs--;
}

static void detach(struct pd_sub *s)
{
  struct pd_job *j = s->job;
  if (j == NULL)
    return;
  for (uint32_t i = 0; i < j->nsubs; i++)
    if (j->subs[i] == s) {
      j->subs[i] = j->subs[--j->nsubs];
      break;
    }
  if (s->waiting) {
    s->waiting = 0;
    j->nwait--;
  }
  s->job = NULL;
  if (j->nsubs == 0) {
    if (j->out)
      j->c->reading = 0; /* the client may read again; the slot stays taken
                            until Redis answers (a script cannot be stopped) */
    if (j->state == J_INFLIGHT)
      j->cancelled = 1; /* freed by whoever holds it in flight */
    else
      job_free(j);
  } else if (j->state == J_WAIT_CH && j->nwait == 0) {
    schedule(j);
  }
}

void pd_resume_unsubscribe(struct pd_sub *s)
{
  detach(s);
  pd_sub_remove(s);
}

int pd_resume_announced(const struct pd_sub *s)
{
  return s->job == NULL || s->job->announced;
}

static struct pd_sub *job_sub(struct pd_job *j, const char *channel)
{
  for (uint32_t i = 0; i < j->nsubs; i++)
    if (strcmp(pd_channel_name(j->subs[i]->ch), channel) == 0)
      return j->subs[i];
  return NULL;
}

static void throttle(struct pd_job *j)
{
  j->throttled = 1;
  j->state = J_THROTTLED;
  pd_conn_want_drain(&j->c->conn);
}

/* Whether history may go on: the client's queue is under half the bound (an
 * empty queue always takes one more event, however big). */
static int has_room(const struct pd_job *j)
{
  size_t q = pd_conn_queued(&j->c->conn);
  return q == 0 || q < pd_conns_max() / 2;
}

/* A live event for a subscription of a job: it waits in the job. */
static void held(struct pd_sub *s, struct pd_event *e)
{
  struct pd_job *j = s->job;
  if (j->npending == j->cappending) {
    j->cappending = j->cappending ? j->cappending * 2 : 8;
    j->pending = sortie_xrealloc(j->pending, j->cappending * sizeof *j->pending);
  }
  j->pending[j->npending++] = pd_event_ref(e);
  j->pending_bytes += j->c->tp->cost(e);
  if (j->pending_bytes > pd_conns_max()) {
    pd_stats_self()->slow_disconnects++;
    pd_conn_close(&j->c->conn, "too many events waiting while resuming");
  }
}

void pd_resume_init(uint32_t reads)
{
  max_reads = reads ? reads : PD_RESUME_READS;
  pd_channels_init(held);
}

/* Drops the waiting events that history already delivered (a page read again
 * after a pause brings the live events that waited meanwhile), so that only
 * what is still to go counts against the bound. */
static void prune(struct pd_job *j)
{
  uint32_t k = 0;
  size_t bytes = 0;
  for (uint32_t i = 0; i < j->npending; i++) {
    struct pd_event *e = j->pending[i];
    struct pd_sub *s = job_sub(j, e->channel);
    if (s == NULL || pd_evid_cmp(e->id, s->last) <= 0) {
      pd_event_unref(e);
      continue;
    }
    j->pending[k++] = e;
    bytes += j->c->tp->cost(e);
  }
  j->npending = k;
  j->pending_bytes = bytes;
}

static void control(struct pd_job *j, enum pd_control_kind kind, const char *const *chans,
                    uint32_t n, const char *id)
{
  struct pd_control m = {.kind = kind, .channels = chans, .nchannels = n, .id = id};
  j->c->tp->control(j->c, &m);
}

/* History is exhausted at j->from: the waiting events go out and the
 * subscriptions are live. Runs in flight (the job cannot be freed under it);
 * frees the job, or throttles it. */
static void job_done(struct pd_job *j)
{
  struct pd_client *c = j->c;
  prune(j);
  size_t q = pd_conn_queued(&c->conn);
  if (q && q + j->pending_bytes > pd_conns_max()) {
    /* what waited would not fit behind the queue: once it is empty, read
     * again from the same id (finds nothing older) and finish then */
    throttle(j);
    return;
  }
  struct pd_evid at = {0, 0};
  pd_evid_parse(j->from, strlen(j->from), &at);
  /* history covered everything up to `at`: only what came live after it is new */
  for (uint32_t i = 0; i < j->nsubs; i++)
    if (pd_evid_cmp(j->subs[i]->last, at) < 0)
      j->subs[i]->last = at;
  uint64_t n = 0;
  for (uint32_t i = 0; i < j->npending && !j->cancelled; i++) {
    struct pd_event *e = j->pending[i];
    struct pd_sub *s = job_sub(j, e->channel);
    if (s)
      n += (uint64_t)pd_sub_deliver(s, e);
  }
  pd_stats_self()->deliveries += n;
  if (j->cancelled) {
    job_free(j); /* the client went away */
    return;
  }
  struct pd_evid top = at;
  for (uint32_t i = 0; i < j->nsubs; i++) {
    struct pd_sub *s = j->subs[i];
    if (pd_evid_cmp(s->last, top) > 0)
      top = s->last;
    s->job = NULL;
    s->reset_sent = 0;
    s->waiting = 0;
  }
  /* the id the client stands at: the newest of `at` and what went out */
  char id[SORTIE_EVENT_ID_MAX + 1];
  pd_evid_format(top, id);
  job_free(j);
  struct pd_control m = {.kind = PD_CTL_CAUGHT_UP, .id = id};
  c->tp->control(c, &m);
}

static void on_history(void *ud, const struct pd_hist *h)
{
  struct pd_job *j = ud; /* in flight while we work on it */
  reads_out--;
  if (j->cancelled) {
    job_free(j); /* its client may be gone: not touched */
    run();       /* the slot it held is free */
    return;
  }
  j->out = 0;
  j->c->reading = 0;
  if (h == NULL) {
    wait_redis(j); /* Redis went away mid-read: again once it is back */
    run();
    return;
  }
  if (j->from_now) {
    /* the position read: "now" is the newest id Redis has given. Every
     * event after it is either in history after it or still to come, live,
     * so from here on the job is one with an id. */
    memcpy(j->from, h->end, sizeof j->from);
    j->from_now = 0;
    j->state = J_NEW;
    job_send(j);
    run();
    return;
  }
  /* The id a reset hands out (SSE id, long-poll cursor): the end of the page
   * only when every channel of the job is reset; otherwise the job's own id,
   * since events of the other channels still follow. */
  uint32_t nreset = 0;
  for (uint32_t i = 0; i < h->nresets; i++)
    nreset += job_sub(j, h->resets[i]) != NULL;
  const char *reset_at = nreset >= j->nsubs || j->from[0] == '\0' ? h->end : j->from;
  for (uint32_t i = 0; i < h->nresets && !j->cancelled; i++) {
    struct pd_sub *s = job_sub(j, h->resets[i]);
    if (s == NULL || s->reset_sent)
      continue; /* a page read again after a pause can report it again */
    s->reset_sent = 1;
    /* its history is gone: the client refetches its state, and gets what
     * comes after the present */
    pd_evid_parse(h->end, strlen(h->end), &s->last);
    const char *name = pd_channel_name(s->ch);
    control(j, PD_CTL_RESET, &name, 1, reset_at);
  }
  uint32_t i;
  uint64_t n = 0;
  for (i = 0; i < h->nevents && !j->cancelled; i++) {
    struct pd_event *e = h->events[i];
    struct pd_sub *s = job_sub(j, e->channel);
    if (s == NULL || pd_evid_cmp(e->id, s->last) <= 0)
      continue;
    if (!has_room(j))
      break;
    n += (uint64_t)pd_sub_deliver(s, e);
  }
  pd_stats_self()->deliveries += n;
  if (j->cancelled) {
    job_free(j); /* the client went away */
    return;
  }
  if (i < h->nevents) {
    /* the queue is full: the rest of the page after the last event handled
     * is read again once the client has taken what it has */
    if (i > 0)
      pd_evid_format(h->events[i - 1]->id, j->from);
    throttle(j);
    return;
  }
  memcpy(j->from, h->end, sizeof j->from);
  if (h->nevents >= j->page || j->gen != link_gen) {
    /* a full page: there is more. Or the subscriber link was lost since the
     * read went out, so live events after the end may be missing: read
     * again from the end once the channels are subscribed again. */
    j->state = J_NEW;
    job_send(j);
    run();
    return;
  }
  job_done(j);
  run();
}

static void job_send(struct pd_job *j)
{
  int given = j->turn; /* run() gave it a read slot */
  j->turn = 0;
  if (!pd_bus_up() || !pd_bus_cmd_up()) {
    wait_redis(j);
    return;
  }
  /* the position read needs no channel in place; every later read does */
  for (uint32_t i = 0; i < j->nsubs && !j->from_now; i++) {
    struct pd_sub *s = j->subs[i];
    steps++;
    if (!s->waiting && !pd_channel_ready(s->ch)) {
      s->waiting = 1;
      j->nwait++;
    }
  }
  if (j->nwait) {
    j->state = J_WAIT_CH;
    return;
  }
  if (j->throttled && pd_conn_queued(&j->c->conn)) {
    throttle(j);
    return;
  }
  j->throttled = 0;
  const char **names = sortie_xmalloc((j->nsubs ? j->nsubs : 1) * sizeof *names);
  for (uint32_t i = 0; i < j->nsubs; i++)
    names[i] = pd_channel_name(j->subs[i]->ch);
  j->state = J_INFLIGHT; /* a control below may close the client: keep j */
  if (!j->announced && !j->from_now) {
    /* every channel is subscribed in Redis: from here on nothing published
     * can be missed, so the client may be told (WebSocket "subscribed") */
    j->announced = 1;
    control(j, PD_CTL_SUBSCRIBED, names, j->nsubs, "");
    if (j->cancelled) {
      free(names);
      job_free(j);
      return;
    }
  }
  /* its turn to read: given by run() from the read queue, or at once when
   * nobody waits, a slot is free and its client has no read out */
  if (!given && (readq.head || reads_out >= max_reads || j->c->reading)) {
    free(names);
    j->state = J_QUEUED;
    list_append(&readq, j);
    return;
  }
  j->gen = link_gen;
  j->page = j->from_now ? 1 : sortie_history_page(j->nsubs, PAGE);
  int rc = pd_bus_history(j->from, names, j->nsubs, j->page, on_history, j);
  free(names);
  if (rc < 0) {
    wait_redis(j);
    return;
  }
  j->out = 1;
  j->c->reading = 1;
  reads_out++;
}

void pd_resume_start(struct pd_client *c, struct pd_sub **subs, uint32_t n, const char *from)
{
  if (from == NULL)
    from = "";
  if (n == 0) {
    struct pd_control m = {.kind = PD_CTL_CAUGHT_UP, .id = from};
    c->tp->control(c, &m);
    return;
  }
  struct pd_job *j = sortie_xcalloc(1, sizeof *j);
  njobs++;
  j->c = c;
  j->subs = sortie_xmalloc(n * sizeof *j->subs);
  for (uint32_t i = 0; i < n; i++) {
    detach(subs[i]);
    subs[i]->job = j;
    subs[i]->reset_sent = 0;
    j->subs[j->nsubs++] = subs[i];
  }
  snprintf(j->from, sizeof j->from, "%s", from);
  j->from_now = j->from[0] == '\0';
  job_send(j);
  run();
}

void pd_resume_on_drain(struct pd_client *c)
{
  for (uint16_t i = 0; i < c->nsubs; i++) {
    struct pd_job *j = c->subs[i]->job;
    steps++;
    if (j && j->state == J_THROTTLED)
      schedule(j);
  }
  run();
}

void pd_resume_on_subscribed(const char *channel, size_t clen)
{
  struct pd_channel *ch = pd_channels_on_subscribed(channel, clen);
  if (ch == NULL)
    return;
  uint32_t n;
  struct pd_sub *const *subs = pd_channel_subs(ch, &n);
  for (uint32_t i = 0; i < n; i++) {
    struct pd_sub *s = subs[i];
    steps++;
    if (!s->waiting)
      continue;
    s->waiting = 0;
    struct pd_job *j = s->job;
    if (--j->nwait == 0 && j->state == J_WAIT_CH)
      schedule(j);
  }
  run();
}

/* The subscriber link is gone (pass 1): counts of channels waited for are
 * void, since every channel must be subscribed again. */
static void down_uncount(struct pd_channel *ch, void *ud)
{
  (void)ud;
  uint32_t n;
  struct pd_sub *const *subs = pd_channel_subs(ch, &n);
  for (uint32_t i = 0; i < n; i++) {
    struct pd_sub *s = subs[i];
    steps++;
    if (s->waiting) {
      s->waiting = 0;
      s->job->nwait--;
    }
    /* what was about to read goes back through the checks once Redis is
     * back: its channels must be subscribed again first */
    if (s->job && (s->job->state == J_WAIT_CH || s->job->state == J_RUN ||
                   s->job->state == J_QUEUED))
      wait_redis(s->job);
  }
}

/* (pass 2): every live subscription may miss events from now on, so each
 * client's live subscriptions go into a job that reads what was missed once
 * Redis is back: one job per client, from the oldest of their ids (each one
 * still filters by its own). */
static void down_catch_up(struct pd_channel *ch, void *ud)
{
  (void)ud;
  uint32_t n;
  struct pd_sub *const *subs = pd_channel_subs(ch, &n);
  for (uint32_t i = 0; i < n; i++) {
    steps++;
    if (subs[i]->job)
      continue;
    struct pd_client *c = subs[i]->client;
    struct pd_job *j = sortie_xcalloc(1, sizeof *j);
    njobs++;
    j->c = c;
    j->subs = sortie_xmalloc(c->nsubs * sizeof *j->subs);
    struct pd_evid from = subs[i]->last;
    for (uint16_t k = 0; k < c->nsubs; k++) {
      struct pd_sub *s = c->subs[k];
      steps++;
      if (s->job)
        continue;
      s->job = j;
      s->reset_sent = 0;
      j->subs[j->nsubs++] = s;
      if (pd_evid_cmp(s->last, from) < 0)
        from = s->last;
    }
    pd_evid_format(from, j->from);
    j->announced = 1; /* a catch-up the client did not ask for: no "subscribed" */
    wait_redis(j);
  }
}

void pd_resume_on_down(void)
{
  link_gen++;
  pd_channels_on_down();
  pd_channels_each(down_uncount, NULL);
  pd_channels_each(down_catch_up, NULL);
}

void pd_resume_on_up(void)
{
  pd_channels_resubscribe();
  wake_waiting();
  run();
}

void pd_resume_on_cmd_up(void)
{
  wake_waiting();
  run();
}

void pd_resume_tick(void)
{
  if (waitq.head && pd_bus_up() && pd_bus_cmd_up())
    wake_waiting();
  run(); /* and whatever a detach left on the run queue */
}

uint64_t pd_resume_steps(void)
{
  return steps;
}

uint32_t pd_resume_jobs(void)
{
  return njobs;
}

uint32_t pd_resume_reads_out(void)
{
  return reads_out;
}

uint32_t pd_resume_reads_queued(void)
{
  uint32_t n = 0;
  for (struct pd_job *j = readq.head; j; j = j->next)
    n++;
  return n;
}
