/* Channels and subscriptions: which clients of this worker read which
 * channel, the reference-counted Redis SUBSCRIBE behind them, the fan-out of a
 * live event, and resume jobs (history, then live, at the seam no gap and no
 * duplicate).
 *
 * The seam: a job waits until every channel it covers is subscribed in Redis,
 * then reads history after its cursor (events.lua, in pages). Live events for
 * its subscriptions that arrive meanwhile wait in the job. When history is
 * exhausted at cursor C (every event up to C was in it), the waiting events
 * with ids after each subscription's position go out, in order, and the
 * subscriptions are live. Every delivery moves the subscription's position,
 * and nothing at or before the position is delivered again.
 *
 * Flow control: history goes out only while the client's queue has room
 * (half of push.outbuf_max); the rest of a page is read again, from the last
 * event sent, once the queue has drained. A client far behind therefore gets
 * its backlog as fast as it reads it, and is never cut off for the size of
 * the backlog itself, only for not reading. */
#include "pushd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t pd_nchannels;

/* IDLE: not subscribed in Redis (Redis down). UNSUBSCRIBING: its last
 * subscriber left and an UNSUBSCRIBE is out; the entry stays until Redis
 * confirms, so that a SUBSCRIBE for the same name is never sent before that
 * confirmation (hiredis would drop the new subscription's callback). */
enum ch_state { CH_IDLE, CH_SUBSCRIBING, CH_SUBSCRIBED, CH_UNSUBSCRIBING };

struct pd_channel {
  char *name;
  struct pd_sub **subs;
  uint32_t nsubs, cap;
  enum ch_state state;
  uint32_t busy;      /* a fan-out is iterating subs: do not free */
  struct pd_channel *hnext;
};

/* An upper bound of what a transport adds to an envelope (SSE's id, event
 * and data lines; a WebSocket frame header), for queue budgets. */
#define EV_FRAMING 160

struct pd_job {
  struct pd_client *c;
  struct pd_sub **subs;
  uint32_t nsubs;
  char cursor[SORTIE_STREAM_ID_MAX + 1];
  struct pd_event **pending; /* live events that arrived while resuming */
  uint32_t npending, cappending;
  size_t pending_bytes;
  uint8_t inflight;  /* a history read is out, or its answer is being handled */
  uint8_t cancelled; /* the client went away; free when inflight ends */
  uint8_t delivered; /* any event went out during this job */
  uint8_t from_now;  /* started without a cursor: everything that came live counts */
  uint8_t announced; /* the transport was told the subscriptions are in place */
  uint8_t throttled; /* waits for the client's queue to drain */
  struct pd_job *next; /* on the list of jobs waiting for Redis */
};

/* ---- the channel table: open hashing on the name ---- */

static struct pd_channel **table;
static uint32_t table_size;

static uint32_t hash(const char *s)
{
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static struct pd_channel *lookup(const char *name, size_t len)
{
  if (table_size == 0)
    return NULL;
  char tmp[SORTIE_CHANNEL_MAX + 1];
  if (len > SORTIE_CHANNEL_MAX)
    return NULL;
  memcpy(tmp, name, len);
  tmp[len] = '\0';
  for (struct pd_channel *ch = table[hash(tmp) & (table_size - 1)]; ch; ch = ch->hnext)
    if (strcmp(ch->name, tmp) == 0)
      return ch;
  return NULL;
}

static void grow(void)
{
  uint32_t nsize = table_size ? table_size * 2 : 1024;
  struct pd_channel **nt = sortie_xcalloc(nsize, sizeof *nt);
  for (uint32_t i = 0; i < table_size; i++)
    for (struct pd_channel *ch = table[i], *next; ch; ch = next) {
      next = ch->hnext;
      uint32_t b = hash(ch->name) & (nsize - 1);
      ch->hnext = nt[b];
      nt[b] = ch;
    }
  free(table);
  table = nt;
  table_size = nsize;
}

static struct pd_channel *channel_get(const char *name)
{
  struct pd_channel *ch = lookup(name, strlen(name));
  if (ch)
    return ch; /* possibly UNSUBSCRIBING: subscribed again when Redis confirms */
  if (pd_nchannels + 1 > table_size / 2)
    grow();
  ch = sortie_xcalloc(1, sizeof *ch);
  ch->name = sortie_xstrdup(name);
  uint32_t b = hash(name) & (table_size - 1);
  ch->hnext = table[b];
  table[b] = ch;
  pd_nchannels++;
  pd_stats_self()->channels = pd_nchannels;
  if (pd_redis_up()) {
    ch->state = CH_SUBSCRIBING;
    pd_redis_subscribe(name);
  }
  return ch;
}

static void channel_free(struct pd_channel *ch)
{
  uint32_t b = hash(ch->name) & (table_size - 1);
  for (struct pd_channel **pp = &table[b]; *pp; pp = &(*pp)->hnext)
    if (*pp == ch) {
      *pp = ch->hnext;
      break;
    }
  pd_nchannels--;
  pd_stats_self()->channels = pd_nchannels;
  free(ch->subs);
  free(ch->name);
  free(ch);
}

/* The last subscriber left. */
static void channel_release(struct pd_channel *ch)
{
  if (ch->nsubs || ch->busy)
    return;
  if (ch->state == CH_SUBSCRIBING || ch->state == CH_SUBSCRIBED) {
    ch->state = CH_UNSUBSCRIBING;
    if (pd_redis_unsubscribe(ch->name) == 0)
      return;
    /* refused (hiredis: not subscribed to anything): nothing to wait for */
    ch->state = CH_IDLE;
  }
  if (ch->state == CH_IDLE)
    channel_free(ch);
}

void pd_channel_on_unsubscribed(const char *name, size_t nlen)
{
  struct pd_channel *ch = lookup(name, nlen);
  if (ch == NULL || ch->state != CH_UNSUBSCRIBING)
    return;
  if (ch->nsubs == 0) {
    channel_free(ch);
    return;
  }
  ch->state = CH_SUBSCRIBING; /* subscribers came back meanwhile */
  pd_redis_subscribe(ch->name);
}

/* ---- subscriptions ---- */

struct pd_sub *pd_sub_find(struct pd_client *c, const char *name)
{
  for (uint16_t i = 0; i < c->nsubs; i++)
    if (strcmp(c->subs[i]->ch->name, name) == 0)
      return c->subs[i];
  return NULL;
}

struct pd_sub *pd_sub_add(struct pd_client *c, const char *name)
{
  struct pd_sub *s = pd_sub_find(c, name);
  if (s)
    return s;
  struct pd_channel *ch = channel_get(name);
  s = sortie_xcalloc(1, sizeof *s);
  s->client = c;
  s->ch = ch;
  if (ch->nsubs == ch->cap) {
    ch->cap = ch->cap ? ch->cap * 2 : 4;
    ch->subs = sortie_xrealloc(ch->subs, ch->cap * sizeof *ch->subs);
  }
  s->ch_idx = ch->nsubs;
  ch->subs[ch->nsubs++] = s;
  if (c->nsubs == c->capsubs) {
    c->capsubs = c->capsubs ? (uint16_t)(c->capsubs * 2) : 2;
    c->subs = sortie_xrealloc(c->subs, c->capsubs * sizeof *c->subs);
  }
  c->subs[c->nsubs++] = s;
  pd_stats_self()->subscriptions++;
  return s;
}

static void job_detach(struct pd_job *j, struct pd_sub *s);

void pd_sub_remove(struct pd_sub *s)
{
  struct pd_channel *ch = s->ch;
  struct pd_client *c = s->client;
  if (s->job)
    job_detach(s->job, s);
  /* swap-remove from the channel and from the client */
  struct pd_sub *last = ch->subs[--ch->nsubs];
  ch->subs[s->ch_idx] = last;
  last->ch_idx = s->ch_idx;
  for (uint16_t i = 0; i < c->nsubs; i++)
    if (c->subs[i] == s) {
      c->subs[i] = c->subs[--c->nsubs];
      break;
    }
  pd_stats_self()->subscriptions--;
  free(s);
  if (ch->nsubs == 0)
    channel_release(ch);
}

/* ---- fan-out ---- */

static void job_pend(struct pd_job *j, struct pd_event *e);

void pd_channel_on_message(const char *name, size_t nlen, const char *env, size_t len)
{
  struct pd_channel *ch = lookup(name, nlen);
  if (ch == NULL)
    return; /* unsubscribed meanwhile */
  struct pd_event *e = pd_event_parse(env, len);
  if (e == NULL) {
    LOG_WARN("channel", "dropped a malformed message on %s", ch->name);
    return;
  }
  struct pd_stats *st = pd_stats_self();
  st->events_in++;
  uint64_t wall = pd_wall_ms();
  uint64_t lat = wall > e->pos.ms ? wall - e->pos.ms : 0; /* clocks may disagree */
  uint64_t n = 0;
  /* iterate by index from the end: a delivery may close its client (slow
   * consumer), which removes that subscription by swapping in the last one,
   * already visited; `busy` keeps the channel itself alive meanwhile */
  ch->busy++;
  for (uint32_t i = ch->nsubs; i-- > 0;) {
    if (i >= ch->nsubs)
      continue;
    struct pd_sub *s = ch->subs[i];
    if (s->job) {
      job_pend(s->job, e);
      continue;
    }
    if (pd_pos_cmp(e->pos, s->pos) <= 0)
      continue;
    s->pos = e->pos;
    s->client->tp->deliver(s->client, e);
    n++;
  }
  ch->busy--;
  st->deliveries += n;
  if (n)
    pd_stats_latency(lat);
  pd_event_unref(e);
  channel_release(ch);
}

/* ---- jobs ---- */

static struct pd_job *waiting_head; /* jobs whose history read must be (re)sent */

static int job_ready(struct pd_job *j)
{
  if (j->throttled && j->c->qbytes)
    return 0;
  for (uint32_t i = 0; i < j->nsubs; i++)
    if (j->subs[i]->ch->state != CH_SUBSCRIBED)
      return 0;
  return pd_redis_cmd_up();
}

static void job_free(struct pd_job *j)
{
  for (uint32_t i = 0; i < j->npending; i++)
    pd_event_unref(j->pending[i]);
  free(j->pending);
  free(j->subs);
  free(j);
}

static void job_unwait(struct pd_job *j)
{
  for (struct pd_job **pp = &waiting_head; *pp; pp = &(*pp)->next)
    if (*pp == j) {
      *pp = j->next;
      j->next = NULL;
      return;
    }
}

static void job_detach(struct pd_job *j, struct pd_sub *s)
{
  for (uint32_t i = 0; i < j->nsubs; i++)
    if (j->subs[i] == s) {
      j->subs[i] = j->subs[--j->nsubs];
      break;
    }
  s->job = NULL;
  if (j->nsubs == 0) {
    job_unwait(j);
    if (j->inflight)
      j->cancelled = 1; /* freed by whoever holds it in flight */
    else
      job_free(j);
  }
}

static void job_pend(struct pd_job *j, struct pd_event *e)
{
  if (j->npending == j->cappending) {
    j->cappending = j->cappending ? j->cappending * 2 : 8;
    j->pending = sortie_xrealloc(j->pending, j->cappending * sizeof *j->pending);
  }
  j->pending[j->npending++] = pd_event_ref(e);
  j->pending_bytes += e->env->len + EV_FRAMING;
  if (j->pending_bytes > (size_t)pd_cfg->push_outbuf_max) {
    pd_stats_self()->slow_disconnects++;
    pd_client_close(j->c, "too many events waiting while resuming");
  }
}

static void job_send(struct pd_job *j);

static void job_wait(struct pd_job *j)
{
  job_unwait(j);
  j->next = waiting_head;
  waiting_head = j;
}

/* Whether `len` more bytes for the client fit in its share of the queue. An
 * empty queue always takes one event, however big. */
static int job_room(const struct pd_job *j, size_t len)
{
  const struct pd_client *c = j->c;
  return c->qbytes == 0 || c->qbytes + len <= (size_t)pd_cfg->push_outbuf_max / 2;
}

/* No room: the job goes on when the client's queue is empty (pd_jobs_on_drain). */
static void job_throttle(struct pd_job *j)
{
  j->throttled = 1;
  j->c->throttled = 1;
  j->inflight = 0;
  job_wait(j);
}

static struct pd_sub *job_sub(struct pd_job *j, const char *channel)
{
  for (uint32_t i = 0; i < j->nsubs; i++)
    if (strcmp(j->subs[i]->ch->name, channel) == 0)
      return j->subs[i];
  return NULL;
}

/* Sends e to the subscription if it is new to it. The send may close the
 * client: callers check c->closing before touching anything else. */
static void deliver(struct pd_job *j, struct pd_sub *s, struct pd_event *e)
{
  if (pd_pos_cmp(e->pos, s->pos) <= 0)
    return;
  s->pos = e->pos;
  j->delivered = 1;
  pd_stats_self()->deliveries++;
  j->c->tp->deliver(j->c, e);
}

/* History is exhausted at j->cursor: the pending events go out and the
 * subscriptions are live. Runs with j->inflight set (the job cannot be freed
 * under it); frees the job. */
/* Drops the waiting events that history already delivered (a page read
 * again after a pause brings the live events that waited meanwhile), so
 * that only what is still to go counts against the bound. */
static void job_prune(struct pd_job *j)
{
  uint32_t k = 0;
  size_t bytes = 0;
  for (uint32_t i = 0; i < j->npending; i++) {
    struct pd_event *e = j->pending[i];
    struct pd_sub *s = job_sub(j, e->channel);
    if (s == NULL || pd_pos_cmp(e->pos, s->pos) <= 0) {
      pd_event_unref(e);
      continue;
    }
    j->pending[k++] = e;
    bytes += e->env->len + EV_FRAMING;
  }
  j->npending = k;
  j->pending_bytes = bytes;
}

static void job_done(struct pd_job *j)
{
  struct pd_client *c = j->c;
  job_prune(j);
  if (c->qbytes && c->qbytes + j->pending_bytes > (size_t)pd_cfg->push_outbuf_max) {
    /* what waited would not fit behind the queue: once it is empty, read
     * again from the cursor (finds nothing older) and finish then */
    job_throttle(j);
    return;
  }
  struct pd_pos at;
  if (pd_pos_parse(j->cursor, strlen(j->cursor), &at) < 0)
    at = (struct pd_pos){0, 0};
  /* A job with a cursor: history covered everything up to `at`, so only what
   * came live after it is new. A job from "now": every event that came live
   * since the subscription is new to the client, even one published before
   * the read that fixed `at`. */
  if (!j->from_now)
    for (uint32_t i = 0; i < j->nsubs; i++)
      if (pd_pos_cmp(j->subs[i]->pos, at) < 0)
        j->subs[i]->pos = at;
  /* what came live meanwhile, after history: already in order */
  for (uint32_t i = 0; i < j->npending && !c->closing; i++) {
    struct pd_event *e = j->pending[i];
    struct pd_sub *s = job_sub(j, e->channel);
    if (s)
      deliver(j, s, e);
  }
  if (c->closing) {
    job_free(j);
    return;
  }
  for (uint32_t i = 0; i < j->nsubs; i++) {
    struct pd_sub *s = j->subs[i];
    if (j->from_now && pd_pos_cmp(s->pos, at) < 0)
      s->pos = at;
    s->job = NULL;
    s->reset_sent = 0;
  }
  /* the position the client stands at: the newest of `at` and what went out */
  char cur[SORTIE_STREAM_ID_MAX + 1];
  struct pd_pos top = at;
  for (uint32_t i = 0; i < j->nsubs; i++)
    if (pd_pos_cmp(j->subs[i]->pos, top) > 0)
      top = j->subs[i]->pos;
  pd_pos_format(top, cur);
  c->tp->caught_up(c, j, cur);
  job_free(j);
}

static void on_synced(void *ud, int ok);

static void on_history(void *ud, struct pd_hist *h)
{
  struct pd_job *j = ud; /* j->inflight stays set while we work on it */
  struct pd_client *c = j->c;
  if (j->cancelled) {
    job_free(j);
    return;
  }
  if (h == NULL) {
    /* Redis went away mid-read: try again once it is back */
    j->inflight = 0;
    job_wait(j);
    return;
  }
  /* The position a reset hands out (SSE id, long-poll cursor): the end of
   * the page only when every channel of the job is reset; otherwise where
   * the page starts, since events of the other channels still follow. */
  uint32_t nreset = 0;
  for (uint32_t i = 0; i < h->nresets; i++)
    nreset += job_sub(j, h->resets[i]) != NULL;
  const char *reset_at = nreset >= j->nsubs || j->cursor[0] == '\0' ? h->cursor : j->cursor;
  for (uint32_t i = 0; i < h->nresets && !c->closing; i++) {
    struct pd_sub *s = job_sub(j, h->resets[i]);
    if (s == NULL || s->reset_sent)
      continue; /* a page read again after a pause can report it again */
    s->reset_sent = 1;
    /* its history is gone: the client refetches its state, and gets what
     * comes after the present */
    pd_pos_parse(h->cursor, strlen(h->cursor), &s->pos);
    char msg[160];
    int n = snprintf(msg, sizeof msg, "{\"type\":\"reset\",\"channel\":\"%s\"}", h->resets[i]);
    c->tp->control(c, msg, (size_t)n, reset_at);
  }
  uint32_t i;
  for (i = 0; i < h->nevents && !c->closing; i++) {
    struct pd_event *e = h->events[i];
    struct pd_sub *s = job_sub(j, e->channel);
    if (s == NULL || pd_pos_cmp(e->pos, s->pos) <= 0)
      continue;
    if (!job_room(j, e->env->len + EV_FRAMING))
      break;
    deliver(j, s, e);
  }
  if (c->closing || j->cancelled) {
    job_free(j); /* the teardown detached every subscription */
    return;
  }
  if (i < h->nevents) {
    /* the queue is full: the rest of the page after the last event handled
     * is read again once the client has taken what it has */
    if (i > 0)
      pd_pos_format(h->events[i - 1]->pos, j->cursor);
    job_throttle(j);
    return;
  }
  memcpy(j->cursor, h->cursor, sizeof j->cursor);
  if (h->nevents >= 500) {
    j->inflight = 0;
    job_send(j); /* a full page: there is more */
    return;
  }
  if (j->from_now) {
    /* No history was read, so the events the subscriber connection carries
     * decide; one may still be on its way with an id before the cursor we
     * just got (the two connections race). A PING on the subscriber
     * connection comes back after every message published before it:
     * finish then. */
    if (pd_redis_sync(on_synced, j) < 0) {
      j->inflight = 0;
      job_wait(j);
    }
    return;
  }
  job_done(j);
}

static void on_synced(void *ud, int ok)
{
  struct pd_job *j = ud;
  if (j->cancelled || j->c->closing) {
    job_free(j);
    return;
  }
  if (!ok) {
    j->inflight = 0;
    job_wait(j);
    return;
  }
  job_done(j);
}

static void job_send(struct pd_job *j)
{
  if (!job_ready(j)) {
    job_wait(j);
    return;
  }
  j->throttled = 0;
  if (!j->announced) {
    /* every channel is subscribed in Redis: from here on nothing published
     * can be missed, so the client may be told (WebSocket "subscribed") */
    j->announced = 1;
    j->inflight = 1; /* the call may close the client: keep j alive */
    j->c->tp->ready(j->c, j);
    j->inflight = 0;
    if (j->cancelled || j->c->closing) {
      if (j->cancelled)
        job_free(j);
      return;
    }
  }
  const char *names[4096];
  uint32_t n = 0;
  for (uint32_t i = 0; i < j->nsubs && n < 4096; i++)
    names[n++] = j->subs[i]->ch->name;
  j->inflight = 1;
  if (pd_redis_history(j->cursor, names, n, 500, on_history, j) < 0) {
    j->inflight = 0;
    job_wait(j);
  }
}

void pd_job_start(struct pd_client *c, struct pd_sub **subs, uint32_t n, const char *cursor)
{
  if (n == 0) {
    c->tp->caught_up(c, NULL, cursor && *cursor ? cursor : "");
    return;
  }
  struct pd_job *j = sortie_xcalloc(1, sizeof *j);
  j->c = c;
  j->subs = sortie_xmalloc(n * sizeof *j->subs);
  for (uint32_t i = 0; i < n; i++) {
    if (subs[i]->job)
      job_detach(subs[i]->job, subs[i]);
    subs[i]->job = j;
    subs[i]->reset_sent = 0;
    j->subs[j->nsubs++] = subs[i];
  }
  snprintf(j->cursor, sizeof j->cursor, "%s", cursor ? cursor : "");
  j->from_now = j->cursor[0] == '\0';
  job_send(j);
}

uint32_t pd_job_nsubs(const struct pd_job *j)
{
  return j ? j->nsubs : 0;
}

int pd_job_announced(const struct pd_job *j)
{
  return j == NULL || j->announced;
}

const char *pd_job_channel(const struct pd_job *j, uint32_t i)
{
  return j->subs[i]->ch->name;
}

/* Sends the history reads that were waiting for their channels or for Redis. */
static void jobs_retry(void)
{
  struct pd_job *list = waiting_head;
  waiting_head = NULL;
  while (list) {
    struct pd_job *j = list;
    list = j->next;
    j->next = NULL;
    job_send(j);
  }
}

void pd_channel_on_subscribed(const char *name, size_t nlen)
{
  struct pd_channel *ch = lookup(name, nlen);
  /* only a channel waiting for this answer: one already being unsubscribed
   * waits for the UNSUBSCRIBE's answer, which comes next */
  if (ch == NULL || ch->state != CH_SUBSCRIBING)
    return;
  ch->state = CH_SUBSCRIBED;
  jobs_retry();
}

void pd_jobs_on_cmd_up(void)
{
  jobs_retry();
}

void pd_jobs_on_drain(struct pd_client *c)
{
  /* one at a time from the head: a job_send may close the client, and the
   * teardown frees the client's jobs */
  for (;;) {
    struct pd_job *j = waiting_head;
    while (j && !(j->c == c && j->throttled))
      j = j->next;
    if (j == NULL || c->closing)
      return;
    job_unwait(j);
    j->throttled = 0;
    job_send(j);
  }
}

/* Once a second: a job that could not be sent (its channels not yet
 * subscribed, Redis busy or away) is tried again even if no event announced
 * that it may go now. */
void pd_jobs_tick(void)
{
  if (waiting_head && pd_redis_up() && pd_redis_cmd_up())
    jobs_retry();
}

/* Redis is gone: every live subscription may miss events from now on, so each
 * client's live subscriptions go into a job that will read what was missed
 * once Redis is back. */
void pd_channels_on_redis_down(void)
{
  for (uint32_t b = 0; b < table_size; b++)
    for (struct pd_channel *ch = table[b], *next; ch; ch = next) {
      next = ch->hnext;
      if (ch->state == CH_UNSUBSCRIBING && ch->nsubs == 0) {
        ch->state = CH_IDLE;
        channel_free(ch);
        continue;
      }
      ch->state = CH_IDLE;
    }
  for (uint32_t b = 0; b < table_size; b++)
    for (struct pd_channel *ch = table[b]; ch; ch = ch->hnext)
      for (uint32_t i = 0; i < ch->nsubs; i++) {
        struct pd_sub *s = ch->subs[i];
        if (s->job)
          continue;
        struct pd_client *c = s->client;
        /* one job per client for all of its live subscriptions, from the
         * oldest of their positions (each one still filters by its own) */
        struct pd_sub *live[4096];
        uint32_t n = 0;
        struct pd_pos from = s->pos;
        for (uint16_t k = 0; k < c->nsubs && n < 4096; k++)
          if (c->subs[k]->job == NULL) {
            live[n++] = c->subs[k];
            if (pd_pos_cmp(c->subs[k]->pos, from) < 0)
              from = c->subs[k]->pos;
          }
        char cur[SORTIE_STREAM_ID_MAX + 1];
        pd_pos_format(from, cur);
        struct pd_job *j = sortie_xcalloc(1, sizeof *j);
        j->c = c;
        j->subs = sortie_xmalloc(n * sizeof *j->subs);
        for (uint32_t k = 0; k < n; k++) {
          live[k]->job = j;
          live[k]->reset_sent = 0;
          j->subs[j->nsubs++] = live[k];
        }
        memcpy(j->cursor, cur, sizeof j->cursor);
        j->announced = 1; /* a catch-up the client did not ask for: no "subscribed" */
        job_wait(j);
      }
}

void pd_channels_on_redis_up(void)
{
  /* subscribe again to every channel */
  uint32_t n = 0;
  for (uint32_t b = 0; b < table_size; b++)
    for (struct pd_channel *ch = table[b]; ch; ch = ch->hnext) {
      if (ch->state != CH_IDLE)
        continue;
      ch->state = CH_SUBSCRIBING;
      pd_redis_subscribe(ch->name);
      n++;
    }
  if (n == 0)
    jobs_retry();
}
