/* The per-user connection limit (limit.h). A slot is named
 * "<host>.<pid>.<serial>", unique across daemons and workers. */
#include "limit.h"
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int max_per_user;

void pd_limit_init(int max)
{
  max_per_user = max;
}

int pd_limit_max(void)
{
  return max_per_user;
}

static void conn_id(uint64_t serial, char *out, size_t n)
{
  static char host[64];
  if (host[0] == '\0' && gethostname(host, sizeof host - 1) < 0)
    snprintf(host, sizeof host, "host");
  snprintf(out, n, "%s.%d.%llu", host, (int)getpid(), (unsigned long long)serial);
}

void pd_limit_open(const char *user, uint64_t serial, pd_conns_cb *cb, void *ud)
{
  char id[96];
  conn_id(serial, id, sizeof id);
  pd_bus_conns_open(user, id, max_per_user, cb, ud);
}

/* Renewals and give-backs wait in a batch (user and connection id of each,
 * copied) until it is full or the loop turn ends. */
struct batch {
  const char *op;
  char *pairs[2 * LIMIT_BATCH];
  unsigned n;
};
static struct batch renewals = {.op = "refresh"}, closes = {.op = "close"};

static void send_batch(struct batch *b)
{
  pd_bus_conns_batch(b->op, b->n, (const char *const *)b->pairs);
  for (unsigned i = 0; i < 2 * b->n; i++)
    free(b->pairs[i]);
  b->n = 0;
}

static void add(struct batch *b, const char *user, uint64_t serial)
{
  char id[96];
  conn_id(serial, id, sizeof id);
  b->pairs[2 * b->n] = sortie_xstrdup(user);
  b->pairs[2 * b->n + 1] = sortie_xstrdup(id);
  if (++b->n == LIMIT_BATCH)
    send_batch(b);
}

void pd_limit_close(const char *user, uint64_t serial)
{
  add(&closes, user, serial);
}

void pd_limit_refresh(const char *user, uint64_t serial)
{
  add(&renewals, user, serial);
}

void pd_limit_flush(void)
{
  if (closes.n)
    send_batch(&closes);
  if (renewals.n)
    send_batch(&renewals);
}
