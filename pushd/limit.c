/* The per-user connection limit (limit.h). A slot is named
 * "<host>.<pid>.<serial>", unique across daemons and workers. */
#include "limit.h"

#include <stdio.h>
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

static void op(const char *what, const char *user, uint64_t serial, pd_conns_cb *cb, void *ud)
{
  char id[96];
  conn_id(serial, id, sizeof id);
  pd_bus_conns(what, user, id, max_per_user, cb, ud);
}

void pd_limit_open(const char *user, uint64_t serial, pd_conns_cb *cb, void *ud)
{
  op("open", user, serial, cb, ud);
}

void pd_limit_close(const char *user, uint64_t serial)
{
  op("close", user, serial, NULL, NULL);
}

void pd_limit_refresh(const char *user, uint64_t serial)
{
  op("refresh", user, serial, NULL, NULL);
}
