/* Presence (presence.h): this worker's (mission, user) entries, and the
 * batched calls that tell Redis about them. */
#include "presence.h"
#include "bus.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct entry {
  struct entry *hnext;        /* the table's chain */
  struct entry *qnext;        /* the queue of entries to look at next tick */
  struct entry *rnext, *rprev;/* the renewal list, oldest hold sent first */
  uint64_t sent_ms;           /* when its hold was last sent */
  uint64_t zero_ms;           /* when `held` fell to 0 */
  uint32_t held;              /* this worker's subscriptions behind it */
  uint32_t out;               /* calls carrying it, not yet answered */
  uint8_t queued;
  uint8_t in_redis;           /* a hold was sent and no let-go confirmed since */
  uint8_t force;              /* send its hold even if one went out lately */
  uint8_t on_rlist;
  const char *user;           /* into key */
  char key[];                 /* "sid\0user\0" */
};

static int enabled;
static int ttl_ms, debounce_ms;
static uint64_t renew_ms;
static char holder[96];
static struct entry **table;
static uint32_t table_size, nentries;
static struct entry *q_head, *q_tail;
static struct entry *r_head, *r_tail;
static int stopping;

/* One script call's entries, and what it said of each (1 held, 0 let go). */
struct batch {
  unsigned n;
  struct entry *e[PD_PRESENCE_BATCH];
  uint8_t op[PD_PRESENCE_BATCH];
};

void pd_presence_init(const struct sortie_cfg *cfg)
{
  enabled = 1;
  ttl_ms = cfg->push_presence_ttl_s * 1000;
  debounce_ms = cfg->push_presence_debounce_ms;
  renew_ms = (uint64_t)ttl_ms / 3;
  char host[64] = "";
  if (gethostname(host, sizeof host - 1) < 0 || host[0] == '\0')
    snprintf(host, sizeof host, "host");
  snprintf(holder, sizeof holder, "%s.%d", host, (int)getpid());
}

uint32_t pd_presence_entries(void)
{
  return nentries;
}

static uint32_t hash(const char *sid, const char *user)
{
  uint32_t h = 2166136261u; /* FNV-1a over "sid\0user" */
  for (const char *p = sid;; p++) {
    h = (h ^ (uint8_t)*p) * 16777619u;
    if (*p == '\0')
      break;
  }
  for (const char *p = user; *p; p++)
    h = (h ^ (uint8_t)*p) * 16777619u;
  return h;
}

static void grow(void)
{
  uint32_t nsize = table_size ? table_size * 2 : 256;
  struct entry **nt = sortie_xcalloc(nsize, sizeof *nt);
  for (uint32_t i = 0; i < table_size; i++)
    for (struct entry *e = table[i], *next; e; e = next) {
      next = e->hnext;
      uint32_t b = hash(e->key, e->user) & (nsize - 1);
      e->hnext = nt[b];
      nt[b] = e;
    }
  free(table);
  table = nt;
  table_size = nsize;
}

static struct entry *lookup(const char *sid, const char *user)
{
  if (table_size == 0)
    return NULL;
  for (struct entry *e = table[hash(sid, user) & (table_size - 1)]; e; e = e->hnext)
    if (strcmp(e->key, sid) == 0 && strcmp(e->user, user) == 0)
      return e;
  return NULL;
}

static struct entry *entry_new(const char *sid, const char *user)
{
  if (nentries + 1 > table_size / 2)
    grow();
  size_t sl = strlen(sid), ul = strlen(user);
  struct entry *e = sortie_xcalloc(1, sizeof *e + sl + ul + 2);
  memcpy(e->key, sid, sl + 1);
  memcpy(e->key + sl + 1, user, ul + 1);
  e->user = e->key + sl + 1;
  uint32_t b = hash(sid, user) & (table_size - 1);
  e->hnext = table[b];
  table[b] = e;
  nentries++;
  return e;
}

static void rlist_remove(struct entry *e)
{
  if (!e->on_rlist)
    return;
  if (e->rprev)
    e->rprev->rnext = e->rnext;
  else
    r_head = e->rnext;
  if (e->rnext)
    e->rnext->rprev = e->rprev;
  else
    r_tail = e->rprev;
  e->rnext = e->rprev = NULL;
  e->on_rlist = 0;
}

static void rlist_append(struct entry *e, uint64_t now)
{
  rlist_remove(e);
  e->sent_ms = now;
  e->rprev = r_tail;
  if (r_tail)
    r_tail->rnext = e;
  else
    r_head = e;
  r_tail = e;
  e->on_rlist = 1;
}

static void enqueue(struct entry *e)
{
  if (e->queued)
    return;
  e->queued = 1;
  e->qnext = NULL;
  if (q_tail)
    q_tail->qnext = e;
  else
    q_head = e;
  q_tail = e;
}

/* Frees e if nothing holds it, Redis has nothing of it, and no call or
 * queue refers to it. */
static void maybe_free(struct entry *e)
{
  if (e->held || e->in_redis || e->out || e->queued)
    return;
  rlist_remove(e);
  uint32_t b = hash(e->key, e->user) & (table_size - 1);
  for (struct entry **pp = &table[b]; *pp; pp = &(*pp)->hnext)
    if (*pp == e) {
      *pp = e->hnext;
      break;
    }
  nentries--;
  free(e);
}

void pd_presence_watch(const struct pd_client *c, const char *channel, int added)
{
  /* traders only: a feed's service token or an admin watching over a
   * mission is not one of the "N traders watching" (its role cannot change
   * on the connection: a refresh keeps sub and role) */
  if (!enabled || strncmp(channel, "mission:", 8) != 0 || c->who.sub[0] == '\0' ||
      c->who.role != SORTIE_ROLE_USER)
    return;
  const char *sid = channel + 8;
  struct entry *e = lookup(sid, c->who.sub);
  if (added) {
    if (e == NULL)
      e = entry_new(sid, c->who.sub);
    if (e->held++ == 0)
      enqueue(e); /* Redis is told next tick, unless it was held there already */
    return;
  }
  if (e == NULL || e->held == 0)
    return;
  if (--e->held == 0) {
    e->zero_ms = 0; /* set at the next tick: the linger starts there */
    enqueue(e);
  }
}

static void on_reply(void *ud, int ok, const char *why)
{
  struct batch *b = ud;
  if (why)
    LOG_WARN("presence", "left a mission alone: %s", why);
  for (unsigned i = 0; i < b->n; i++) {
    struct entry *e = b->e[i];
    e->out--;
    if (!ok) {
      e->force = 1;
      enqueue(e); /* told again next tick, as it is then */
    } else if (b->op[i] == 0 && e->held == 0 && !e->queued) {
      e->in_redis = 0;
    }
    maybe_free(e);
  }
  free(b);
}

/* Sends a batch; on a refused send puts its entries back. 0 or -1. */
static int send(struct batch *b)
{
  const char *recs[3 * PD_PRESENCE_BATCH];
  for (unsigned i = 0; i < b->n; i++) {
    recs[3 * i] = b->e[i]->key;
    recs[3 * i + 1] = b->e[i]->user;
    recs[3 * i + 2] = b->op[i] ? "1" : "0";
  }
  unsigned due_max = stopping ? 0 : 64;
  if (pd_bus_presence(holder, ttl_ms, debounce_ms, due_max, b->n, recs, on_reply, b) == 0)
    return 0;
  for (unsigned i = 0; i < b->n; i++) {
    b->e[i]->out--;
    b->e[i]->force = 1;
    enqueue(b->e[i]);
  }
  free(b);
  return -1;
}

/* What the queue asks of Redis now, in batches; entries still lingering
 * wait for the next tick. */
static void flush(uint64_t now)
{
  struct entry *later = NULL, *later_tail = NULL;
  struct batch *b = NULL;
  unsigned calls = 0;
  while (q_head && (stopping || calls < PD_PRESENCE_CALLS)) {
    struct entry *e = q_head;
    q_head = e->qnext;
    if (q_head == NULL)
      q_tail = NULL;
    e->queued = 0;
    int op;
    if (e->held > 0) {
      /* held: its hold goes out, unless it did lately and Redis kept it */
      if (e->in_redis && e->on_rlist && !e->force)
        continue;
      op = 1;
    } else {
      if (e->zero_ms == 0)
        e->zero_ms = now;
      if (!stopping && now < e->zero_ms + PD_PRESENCE_TICK_MS) {
        e->qnext = NULL; /* lingers: looked at again next tick */
        e->queued = 1;
        if (later_tail)
          later_tail->qnext = e;
        else
          later = e;
        later_tail = e;
        continue;
      }
      if (!e->in_redis) {
        maybe_free(e);
        continue;
      }
      op = 0;
    }
    if (b == NULL)
      b = sortie_xcalloc(1, sizeof *b);
    b->e[b->n] = e;
    b->op[b->n] = (uint8_t)op;
    b->n++;
    e->out++;
    e->force = 0;
    if (op) {
      e->in_redis = 1;
      rlist_append(e, now);
    } else {
      rlist_remove(e);
    }
    if (b->n == PD_PRESENCE_BATCH) {
      calls++;
      int rc = send(b);
      b = NULL;
      if (rc < 0)
        break; /* the link is down: the rest waits */
    }
  }
  if (b && b->n)
    send(b);
  else if (calls == 0 && !stopping) {
    /* nothing to tell: still one call, for the missions whose time came */
    struct batch *z = sortie_xcalloc(1, sizeof *z);
    send(z);
  } else {
    free(b);
  }
  /* the lingering ones go back in front, in their order */
  if (later) {
    later_tail->qnext = q_head;
    if (q_head == NULL)
      q_tail = later_tail;
    q_head = later;
  }
}

void pd_presence_tick(uint64_t now)
{
  if (!enabled)
    return;
  /* renewals due: the oldest holds sent first */
  while (r_head && r_head->sent_ms + renew_ms <= now) {
    struct entry *e = r_head;
    rlist_remove(e);
    e->force = 1;
    enqueue(e);
  }
  if (pd_bus_cmd_up())
    flush(now);
}

void pd_presence_on_cmd_up(void)
{
  if (!enabled)
    return;
  for (uint32_t i = 0; i < table_size; i++)
    for (struct entry *e = table[i]; e; e = e->hnext) {
      e->force = 1;
      enqueue(e);
    }
}

void pd_presence_stop(uint64_t now)
{
  if (!enabled)
    return;
  stopping = 1;
  if (pd_bus_cmd_up())
    flush(now);
}
