/* The scripted fake of pushd/bus.h (see fake_bus.h). It implements bus.h's
 * functions, so a test links it instead of pushd/bus.o; the daemon's layers
 * above it are the real ones. */
#include "fake_bus.h"
#include "bus.h"
#include "channel.h"
#include "resume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXCH 8192
#define MAXEV 200000

struct ev {
  uint64_t seq;
  char channel[SORTIE_CHANNEL_MAX + 1];
};

enum item_kind { IT_CONFIRM, IT_UNCONFIRM, IT_MSG };
struct item {
  enum item_kind kind;
  char channel[SORTIE_CHANNEL_MAX + 1];
  uint64_t seq;
  struct item *next;
};

struct read {
  char from[SORTIE_EVENT_ID_MAX + 1];
  char **channels;
  uint32_t n, limit;
  pd_hist_cb *cb;
  void *ud;
  size_t snap;  /* events in the store when it ran (0: not yet) */
  uint64_t snap_last;
  int ran;
  struct read *next;
};

static struct ev *store;     /* every event, in id order */
static size_t nstore;
static uint64_t seq_next;
static char *subscribed[MAXCH]; /* what Redis has subscribed */
static size_t nsubscribed;
static struct { char channel[SORTIE_CHANNEL_MAX + 1]; uint64_t before; } trims[64];
static size_t ntrims;
static struct item *items, **items_tail = &items;
static size_t nitems;
static struct read *reads, **reads_tail = &reads;
static size_t nreads;
static uint64_t reads_done, subscribes;
static int sub_up = 1, cmd_up = 1;

static void items_clear(void)
{
  while (items) {
    struct item *it = items;
    items = it->next;
    free(it);
  }
  items_tail = &items;
  nitems = 0;
}

static void read_free(struct read *r)
{
  for (uint32_t i = 0; i < r->n; i++)
    free(r->channels[i]);
  free(r->channels);
  free(r);
}

void fake_reset(void)
{
  if (store == NULL)
    store = malloc(MAXEV * sizeof *store);
  nstore = 0;
  seq_next = 1;
  for (size_t i = 0; i < nsubscribed; i++)
    free(subscribed[i]);
  nsubscribed = 0;
  ntrims = 0;
  items_clear();
  while (reads) {
    struct read *r = reads;
    reads = r->next;
    read_free(r);
  }
  reads_tail = &reads;
  nreads = 0;
  reads_done = subscribes = 0;
  sub_up = cmd_up = 1;
}

static int sub_index(const char *ch)
{
  for (size_t i = 0; i < nsubscribed; i++)
    if (strcmp(subscribed[i], ch) == 0)
      return (int)i;
  return -1;
}

int fake_subscribed(const char *channel)
{
  return sub_index(channel) >= 0;
}

uint64_t fake_subscribes(void)
{
  return subscribes;
}

static struct item *item_push(enum item_kind k, const char *channel)
{
  struct item *it = calloc(1, sizeof *it);
  it->kind = k;
  if (channel)
    snprintf(it->channel, sizeof it->channel, "%s", channel);
  *items_tail = it;
  items_tail = &it->next;
  nitems++;
  return it;
}

static void envelope(char *out, size_t n, uint64_t seq, const char *channel)
{
  snprintf(out, n, "{\"id\":\"1000-%llu\",\"channel\":\"%s\",\"type\":\"t\",\"data\":{}}",
           (unsigned long long)seq, channel);
}

uint64_t fake_publish(const char *channel)
{
  struct ev *e = &store[nstore++];
  e->seq = seq_next++;
  snprintf(e->channel, sizeof e->channel, "%s", channel);
  if (sub_up && fake_subscribed(channel))
    item_push(IT_MSG, channel)->seq = e->seq;
  return e->seq;
}

void fake_trim(const char *channel, uint64_t before)
{
  snprintf(trims[ntrims].channel, sizeof trims[ntrims].channel, "%s", channel);
  trims[ntrims++].before = before;
}

size_t fake_sub_queued(void)
{
  return nitems;
}

size_t fake_pump_sub(size_t n)
{
  size_t done = 0;
  while (items && (n == 0 || done < n)) {
    struct item *it = items;
    items = it->next;
    if (items == NULL)
      items_tail = &items;
    nitems--;
    done++;
    char env[256];
    switch (it->kind) {
    case IT_CONFIRM:
      pd_resume_on_subscribed(it->channel, strlen(it->channel));
      break;
    case IT_UNCONFIRM:
      pd_channels_on_unsubscribed(it->channel, strlen(it->channel));
      break;
    case IT_MSG:
      envelope(env, sizeof env, it->seq, it->channel);
      pd_channels_on_message(it->channel, strlen(it->channel), env, strlen(env));
      break;
    }
    free(it);
  }
  return done;
}

size_t fake_reads_queued(void)
{
  return nreads;
}

static struct read *read_at(size_t i)
{
  struct read *r = reads;
  while (r && i--)
    r = r->next;
  return r;
}

const char *fake_read_from(size_t i)
{
  struct read *r = read_at(i);
  return r ? r->from : NULL;
}

uint32_t fake_read_nchannels(size_t i)
{
  struct read *r = read_at(i);
  return r ? r->n : 0;
}

uint32_t fake_read_limit(size_t i)
{
  struct read *r = read_at(i);
  return r ? r->limit : 0;
}

uint64_t fake_reads_done(void)
{
  return reads_done;
}

static uint64_t from_seq(const char *from)
{
  uint64_t ms = 0, seq = 0;
  if (*from == '\0' || sortie_event_id_parse(from, strlen(from), &ms, &seq) < 0)
    return 0;
  return ms < 1000 ? 0 : seq;
}

int fake_exec_read(size_t i)
{
  struct read *r = read_at(i);
  if (r == NULL)
    return -1;
  if (!r->ran) {
    r->ran = 1;
    r->snap = nstore;
    r->snap_last = seq_next - 1;
  }
  return 0;
}

int fake_read_ran(size_t i)
{
  struct read *r = read_at(i);
  return r && r->ran;
}

/* What events.lua answers, over the fake's store as it was when the read ran. */
int fake_answer_read(size_t i)
{
  fake_exec_read(i);
  struct read **pp = &reads;
  while (*pp && i--)
    pp = &(*pp)->next;
  struct read *r = *pp;
  if (r == NULL)
    return -1;
  *pp = r->next;
  if (*pp == NULL)
    reads_tail = pp;
  nreads--;
  reads_done++;
  struct pd_hist h;
  memset(&h, 0, sizeof h);
  uint64_t last = r->snap_last;
  snprintf(h.end, sizeof h.end, "1000-%llu", (unsigned long long)last);
  h.events = calloc(r->limit + 1, sizeof *h.events);
  h.resets = calloc(r->n + 1, sizeof *h.resets);
  if (r->from[0] != '\0') {
    uint64_t after = from_seq(r->from);
    int *reset = calloc(r->n + 1, sizeof *reset);
    for (uint32_t c = 0; c < r->n; c++)
      for (size_t t = 0; t < ntrims; t++)
        if (strcmp(trims[t].channel, r->channels[c]) == 0 && trims[t].before > after + 1) {
          reset[c] = 1;
          h.resets[h.nresets++] = r->channels[c];
        }
    for (size_t k = 0; k < r->snap; k++) {
      struct ev *e = &store[k];
      if (e->seq <= after)
        continue;
      for (uint32_t c = 0; c < r->n; c++)
        if (!reset[c] && strcmp(e->channel, r->channels[c]) == 0) {
          char env[256];
          envelope(env, sizeof env, e->seq, e->channel);
          h.events[h.nevents++] = pd_event_parse(env, strlen(env));
          break;
        }
      if (h.nevents == r->limit) {
        snprintf(h.end, sizeof h.end, "1000-%llu", (unsigned long long)e->seq);
        break;
      }
    }
    free(reset);
  }
  r->cb(r->ud, &h);
  for (uint32_t k = 0; k < h.nevents; k++)
    pd_event_unref(h.events[k]);
  free(h.events);
  free(h.resets);
  read_free(r);
  return 0;
}

size_t fake_settle(size_t limit)
{
  size_t steps = 0;
  while (steps < limit && (items || reads)) {
    if (items)
      fake_pump_sub(1);
    else
      fake_answer_read(0);
    steps++;
  }
  return steps;
}

void fake_sub_down(void)
{
  if (!sub_up)
    return;
  sub_up = 0;
  for (size_t i = 0; i < nsubscribed; i++)
    free(subscribed[i]);
  nsubscribed = 0;
  items_clear(); /* what was on the wire is lost */
  pd_resume_on_down();
}

void fake_sub_up(void)
{
  sub_up = 1;
  pd_resume_on_up();
}

void fake_cmd_down(void)
{
  cmd_up = 0;
  while (reads) {
    struct read *r = reads;
    reads = r->next;
    nreads--;
    r->cb(r->ud, NULL);
    read_free(r);
  }
  reads_tail = &reads;
}

void fake_cmd_up(void)
{
  cmd_up = 1;
  pd_resume_on_cmd_up();
}

/* ---- bus.h ---- */

void pd_bus_start(struct sortie_loop *l, const struct sortie_cfg *cfg, int worker,
                  const struct pd_bus_cbs *cbs)
{
  (void)l;
  (void)cfg;
  (void)worker;
  (void)cbs;
}

void pd_bus_stop(void)
{
}

int pd_bus_up(void)
{
  return sub_up;
}

int pd_bus_cmd_up(void)
{
  return cmd_up;
}

int pd_bus_subscribe(const char *channel)
{
  if (!sub_up)
    return -1;
  subscribes++;
  if (!fake_subscribed(channel) && nsubscribed < MAXCH)
    subscribed[nsubscribed++] = strdup(channel);
  item_push(IT_CONFIRM, channel);
  return 0;
}

int pd_bus_unsubscribe(const char *channel)
{
  int i = sub_index(channel);
  if (!sub_up || i < 0)
    return -1;
  free(subscribed[i]);
  subscribed[i] = subscribed[--nsubscribed];
  item_push(IT_UNCONFIRM, channel);
  return 0;
}

int pd_bus_history(const char *from, const char *const *channels, uint32_t n, uint32_t limit,
                   pd_hist_cb *cb, void *ud)
{
  if (!cmd_up)
    return -1;
  struct read *r = calloc(1, sizeof *r);
  snprintf(r->from, sizeof r->from, "%s", from);
  r->channels = calloc(n + 1, sizeof *r->channels);
  for (uint32_t i = 0; i < n; i++)
    r->channels[i] = strdup(channels[i]);
  r->n = n;
  r->limit = limit;
  r->cb = cb;
  r->ud = ud;
  *reads_tail = r;
  reads_tail = &r->next;
  nreads++;
  return 0;
}

void pd_bus_conns_open(const char *user, const char *conn_id, int limit, pd_conns_cb *cb,
                       void *ud)
{
  (void)user;
  (void)conn_id;
  (void)limit;
  cb(ud, 1, 0);
}

void pd_bus_conns_batch(const char *op, unsigned n, const char *const *pairs)
{
  (void)op;
  (void)n;
  (void)pairs;
}

unsigned pd_bus_pending(void)
{
  return 0;
}

void pd_bus_admin_stats(const char *connections_json, const char *daemon, int presence)
{
  (void)connections_json;
  (void)daemon;
  (void)presence;
}

void pd_bus_syslog(const char *level, const char *message)
{
  (void)level;
  (void)message;
}
