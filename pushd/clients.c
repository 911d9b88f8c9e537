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
  pd_conns_init(l, (size_t)c->push_outbuf_max, &client_ops);
  pd_limit_init(c->push_max_conn_per_user);
  pd_resume_init();
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

void pd_clients_refresh_limits(void)
{
  for (struct pd_client *c = all_head; c; c = c->next)
    if (c->counted)
      pd_limit_refresh(c->who.sub, c->serial);
}
