/* Channels, subscriptions and the live fan-out (channel.h). */
#include "channel.h"
#include "bus.h"
#include "log.h"
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

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
  uint32_t busy; /* a fan-out is iterating subs: do not free */
  struct pd_channel *hnext;
};

static pd_held_cb *held_cb;
static pd_watch_cb *watch_cb;
static struct pd_channel **table; /* open hashing on the name */
static uint32_t table_size, nchannels;

void pd_channels_init(pd_held_cb *held)
{
  held_cb = held;
}

void pd_channels_watch(pd_watch_cb *cb)
{
  watch_cb = cb;
}

static uint32_t hash(const char *s, size_t len)
{
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < len; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

static struct pd_channel *lookup(const char *name, size_t len)
{
  if (table_size == 0)
    return NULL;
  for (struct pd_channel *ch = table[hash(name, len) & (table_size - 1)]; ch; ch = ch->hnext)
    if (strlen(ch->name) == len && memcmp(ch->name, name, len) == 0)
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
      uint32_t b = hash(ch->name, strlen(ch->name)) & (nsize - 1);
      ch->hnext = nt[b];
      nt[b] = ch;
    }
  free(table);
  table = nt;
  table_size = nsize;
}

static void count_changed(void)
{
  pd_stats_self()->channels = nchannels;
}

static struct pd_channel *channel_get(const char *name)
{
  struct pd_channel *ch = lookup(name, strlen(name));
  if (ch)
    return ch; /* possibly UNSUBSCRIBING: subscribed again when Redis confirms */
  if (nchannels + 1 > table_size / 2)
    grow();
  ch = sortie_xcalloc(1, sizeof *ch);
  ch->name = sortie_xstrdup(name);
  uint32_t b = hash(name, strlen(name)) & (table_size - 1);
  ch->hnext = table[b];
  table[b] = ch;
  nchannels++;
  count_changed();
  if (pd_bus_up()) {
    ch->state = CH_SUBSCRIBING;
    pd_bus_subscribe(name);
  }
  return ch;
}

static void channel_free(struct pd_channel *ch)
{
  uint32_t b = hash(ch->name, strlen(ch->name)) & (table_size - 1);
  for (struct pd_channel **pp = &table[b]; *pp; pp = &(*pp)->hnext)
    if (*pp == ch) {
      *pp = ch->hnext;
      break;
    }
  nchannels--;
  count_changed();
  free(ch->subs);
  free(ch->name);
  free(ch);
}

/* The last subscriber may have left. */
static void channel_release(struct pd_channel *ch)
{
  if (ch->nsubs || ch->busy)
    return;
  if (ch->state == CH_SUBSCRIBING || ch->state == CH_SUBSCRIBED) {
    ch->state = CH_UNSUBSCRIBING;
    if (pd_bus_unsubscribe(ch->name) == 0)
      return;
    /* refused (hiredis: not subscribed to anything): nothing to wait for */
    ch->state = CH_IDLE;
  }
  if (ch->state == CH_IDLE)
    channel_free(ch);
}

void pd_channels_on_unsubscribed(const char *name, size_t nlen)
{
  struct pd_channel *ch = lookup(name, nlen);
  if (ch == NULL || ch->state != CH_UNSUBSCRIBING)
    return;
  if (ch->nsubs == 0) {
    channel_free(ch);
    return;
  }
  ch->state = CH_SUBSCRIBING; /* subscribers came back meanwhile */
  pd_bus_subscribe(ch->name);
}

struct pd_channel *pd_channels_on_subscribed(const char *name, size_t nlen)
{
  struct pd_channel *ch = lookup(name, nlen);
  /* only a channel waiting for this answer: one already being unsubscribed
   * waits for the UNSUBSCRIBE's answer, which comes next */
  if (ch == NULL || ch->state != CH_SUBSCRIBING)
    return NULL;
  ch->state = CH_SUBSCRIBED;
  return ch;
}

void pd_channels_on_down(void)
{
  for (uint32_t b = 0; b < table_size; b++)
    for (struct pd_channel *ch = table[b], *next; ch; ch = next) {
      next = ch->hnext;
      int gone = ch->state == CH_UNSUBSCRIBING && ch->nsubs == 0;
      ch->state = CH_IDLE;
      if (gone)
        channel_free(ch);
    }
}

uint32_t pd_channels_resubscribe(void)
{
  uint32_t n = 0;
  for (uint32_t b = 0; b < table_size; b++)
    for (struct pd_channel *ch = table[b]; ch; ch = ch->hnext) {
      if (ch->state != CH_IDLE)
        continue;
      ch->state = CH_SUBSCRIBING;
      if (pd_bus_subscribe(ch->name) < 0) {
        ch->state = CH_IDLE; /* the link went down again: on_down follows */
        return n;
      }
      n++;
    }
  return n;
}

const char *pd_channel_name(const struct pd_channel *ch)
{
  return ch->name;
}

int pd_channel_ready(const struct pd_channel *ch)
{
  return ch->state == CH_SUBSCRIBED;
}

struct pd_sub *const *pd_channel_subs(const struct pd_channel *ch, uint32_t *n)
{
  *n = ch->nsubs;
  return ch->subs;
}

void pd_channels_each(void (*fn)(struct pd_channel *ch, void *ud), void *ud)
{
  for (uint32_t b = 0; b < table_size; b++)
    for (struct pd_channel *ch = table[b]; ch; ch = ch->hnext)
      fn(ch, ud);
}

uint32_t pd_channels_count(void)
{
  return nchannels;
}

/* ---- subscriptions ---- */

struct pd_sub *pd_sub_find(const struct pd_client *c, const char *name)
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
  if (watch_cb)
    watch_cb(c, ch->name, 1);
  return s;
}

void pd_sub_remove(struct pd_sub *s)
{
  struct pd_channel *ch = s->ch;
  struct pd_client *c = s->client;
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
  if (watch_cb)
    watch_cb(c, ch->name, 0);
  free(s);
  if (ch->nsubs == 0)
    channel_release(ch);
}

int pd_sub_deliver(struct pd_sub *s, struct pd_event *e)
{
  if (pd_evid_cmp(e->id, s->last) <= 0)
    return 0;
  s->last = e->id;
  s->client->tp->deliver(s->client, e);
  return 1;
}

/* ---- fan-out ---- */

void pd_channels_on_message(const char *name, size_t nlen, const char *env, size_t len)
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
  uint64_t wall = sortie_wall_ms();
  uint64_t lat = wall > e->id.ms ? wall - e->id.ms : 0; /* clocks may disagree */
  uint64_t n = 0;
  /* iterate by index from the end: a delivery may close its client (slow
   * consumer), which removes that subscription by swapping in the last one,
   * already visited; `busy` keeps the channel itself alive meanwhile */
  ch->busy++;
  for (uint32_t i = ch->nsubs; i-- > 0;) {
    if (i >= ch->nsubs)
      continue;
    struct pd_sub *s = ch->subs[i];
    if (s->job)
      held_cb(s, e);
    else
      n += (uint64_t)pd_sub_deliver(s, e);
  }
  ch->busy--;
  st->deliveries += n;
  if (n)
    pd_stats_latency(lat);
  pd_event_unref(e);
  channel_release(ch);
}
