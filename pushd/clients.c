/* Clients (clients.h): a connection, its subscriptions and its transport,
 * and the worker's list of them. */
#include "clients.h"
#include "channel.h"
#include "limit.h"
#include "log.h"
#include "metrics.h"
#include "resume.h"

#include <stdlib.h>

static const struct sortie_cfg *cfg;
static int worker_id;
static struct pd_client *all_head; /* every live client */
static uint32_t counts[PD_KINDS];

const struct sortie_cfg *pd_clients_cfg(void)
{
  return cfg;
}

int pd_clients_worker(void)
{
  return worker_id;
}

/* ---- deadlines (pd_client_deadline): a min-heap of clients keyed on dl_at,
 * 1-based, each client knowing its slot; one timer of the worker is armed
 * for the first. ---- */

static struct pd_client **dl_heap;
static uint32_t dl_len, dl_cap;
static struct sortie_timer dl_timer;

static void dl_set(uint32_t i, struct pd_client *c)
{
  dl_heap[i] = c;
  c->dl_slot = i;
}

static void dl_up(uint32_t i)
{
  struct pd_client *c = dl_heap[i];
  while (i > 1 && dl_heap[i / 2]->dl_at > c->dl_at) {
    dl_set(i, dl_heap[i / 2]);
    i /= 2;
  }
  dl_set(i, c);
}

static void dl_down(uint32_t i)
{
  struct pd_client *c = dl_heap[i];
  for (;;) {
    uint32_t k = 2 * i;
    if (k > dl_len)
      break;
    if (k + 1 <= dl_len && dl_heap[k + 1]->dl_at < dl_heap[k]->dl_at)
      k++;
    if (dl_heap[k]->dl_at >= c->dl_at)
      break;
    dl_set(i, dl_heap[k]);
    i = k;
  }
  dl_set(i, c);
}

static void dl_remove(struct pd_client *c)
{
  uint32_t i = c->dl_slot;
  if (i == 0)
    return;
  c->dl_slot = 0;
  struct pd_client *last = dl_heap[dl_len--];
  if (i <= dl_len && last != c) {
    dl_set(i, last);
    dl_up(i);
    dl_down(last->dl_slot);
  }
}

/* Arms the timer for the first deadline (wall-clock: token times are). */
static void dl_arm(void)
{
  if (dl_len == 0) {
    sortie_timer_stop(&dl_timer);
    return;
  }
  uint64_t at = (uint64_t)dl_heap[1]->dl_at * 1000, now = sortie_wall_ms();
  sortie_timer_arm(&dl_timer, at > now ? at - now : 0);
}

static void on_deadline(struct sortie_timer *t)
{
  (void)t;
  uint64_t now = sortie_wall_ms();
  while (dl_len && (uint64_t)dl_heap[1]->dl_at * 1000 <= now) {
    struct pd_client *c = dl_heap[1];
    dl_remove(c);
    c->dl_at = 0;
    if (c->tp->expire && !c->conn.closing)
      c->tp->expire(c); /* may set a later deadline, or close c */
  }
  dl_arm();
}

void pd_client_deadline(struct pd_client *c, long at)
{
  struct pd_client *first = dl_len ? dl_heap[1] : NULL;
  uint32_t was = c->dl_at;
  dl_remove(c);
  c->dl_at = 0;
  if (at <= 0 || c->conn.closing || c->tp->expire == NULL) {
    if (first == c)
      dl_arm();
    return;
  }
  c->dl_at = at > (long)UINT32_MAX ? UINT32_MAX : (uint32_t)at;
  if (dl_len + 1 >= dl_cap) {
    dl_cap = dl_cap ? dl_cap * 2 : 64;
    dl_heap = sortie_xrealloc(dl_heap, dl_cap * sizeof *dl_heap);
  }
  dl_heap[++dl_len] = c;
  c->dl_slot = dl_len;
  dl_up(dl_len);
  if (dl_heap[1] != first || (first == c && c->dl_at != was))
    dl_arm();
}

static void on_readable(struct pd_conn *conn)
{
  struct pd_client *c = pd_client_of(conn);
  if (c->tp->readable)
    c->tp->readable(c);
}

static void on_drained(struct pd_conn *conn)
{
  pd_resume_on_drain(pd_client_of(conn));
}

/* The teardown: subscriptions and resumes end, the limit slot goes back,
 * and the client leaves the list. */
static void on_closed(struct pd_conn *conn, const char *why)
{
  struct pd_client *c = pd_client_of(conn);
  LOG_DEBUG("client", "%s #%llu user=%s closed: %s", c->tp->name, (unsigned long long)c->serial,
            c->who.sub, why);
  while (c->nsubs)
    pd_resume_unsubscribe(c->subs[c->nsubs - 1]);
  if (c->counted)
    pd_limit_close(c->who.sub, c->serial);
  if (c->prev)
    c->prev->next = c->next;
  else
    all_head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->next = c->prev = NULL;
  if (c->dl_slot) {
    int first = dl_heap[1] == c;
    dl_remove(c);
    if (first)
      dl_arm();
  }
  counts[c->tp->kind]--;
  pd_stats_self()->conns[c->tp->kind] = counts[c->tp->kind];
}

static void on_destroy(struct pd_conn *conn)
{
  struct pd_client *c = pd_client_of(conn);
  if (c->tp->destroy)
    c->tp->destroy(c);
  free(c->subs);
  free(c);
}

static const struct pd_conn_ops client_ops = {on_readable, on_drained, on_closed, on_destroy};

void pd_clients_init(struct sortie_loop *l, const struct sortie_cfg *c, int worker)
{
  cfg = c;
  worker_id = worker;
  sortie_timer_init(&dl_timer, l, on_deadline);
  pd_conns_init(l, (size_t)c->push_outbuf_max, &client_ops);
  pd_limit_init(c->push_max_conn_per_user);
  pd_resume_init((uint32_t)c->push_history_reads);
}

struct pd_client *pd_client_new(const struct pd_transport *tp, int fd,
                                const struct sortie_identity *who, uint64_t serial, int counted)
{
  struct pd_client *c = sortie_xcalloc(1, sizeof *c);
  c->tp = tp;
  if (who)
    c->who = *who;
  c->serial = serial;
  c->counted = (uint8_t)(counted != 0);
  c->next = all_head;
  if (all_head)
    all_head->prev = c;
  all_head = c;
  counts[tp->kind]++;
  pd_stats_self()->conns[tp->kind] = counts[tp->kind];
  if (who && who->exp > 0)
    pd_client_deadline(c, who->exp); /* a stream ends with its token */
  pd_conn_init(&c->conn, fd); /* may close it at once (epoll) */
  return c;
}

void pd_client_close(struct pd_client *c, const char *why)
{
  pd_conn_close(&c->conn, why);
}

uint32_t pd_clients_count(void)
{
  uint32_t n = 0;
  for (int k = 0; k < PD_KINDS; k++)
    n += counts[k];
  return n;
}

void pd_clients_heartbeat(const struct pd_transport *tp)
{
  if (tp->heartbeat == NULL)
    return;
  for (struct pd_client *c = all_head, *next; c; c = next) {
    next = c->next;
    if (c->tp == tp)
      tp->heartbeat(c); /* may close c: `next` was taken before */
  }
}

void pd_clients_shutdown(void)
{
  for (struct pd_client *c = all_head, *next; c; c = next) {
    next = c->next;
    if (c->tp->shutdown)
      c->tp->shutdown(c);
  }
}

void pd_clients_refresh_limits(unsigned slice, unsigned nslices)
{
  for (struct pd_client *c = all_head; c; c = c->next)
    if (c->counted && c->serial % nslices == slice)
      pd_limit_refresh(c->who.sub, c->serial);
}
