/* The daemon's two Redis links (bus.h) over lib/aredis.h, and the replies of
 * its scripts turned into C. */
#include "bus.h"
#include "aredis.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sortie_aredis *sub, *cmd;
static struct pd_bus_cbs up_cbs;
static int worker_id;
static char maxage_s[16];

static void stats_up(void)
{
  pd_stats_self()->redis_up = sortie_aredis_up(sub) && sortie_aredis_up(cmd);
}

static void on_sub_up(void *ud, int again)
{
  (void)ud;
  if (again)
    pd_stats_self()->redis_reconnects++;
  stats_up();
  up_cbs.sub_up();
}

static void on_sub_down(void *ud)
{
  (void)ud;
  stats_up();
  up_cbs.sub_down();
}

static void on_cmd_up(void *ud, int again)
{
  (void)ud;
  if (again) {
    pd_stats_self()->redis_reconnects++;
    char m[128];
    snprintf(m, sizeof m, "worker %d (pid %d) connected to Redis again", worker_id,
             (int)getpid());
    pd_bus_syslog("warn", m);
  }
  stats_up();
  up_cbs.cmd_up();
}

static void on_cmd_down(void *ud)
{
  (void)ud;
  stats_up();
}

static void on_message(void *ud, const char *ch, size_t clen, const char *msg, size_t mlen)
{
  (void)ud;
  up_cbs.message(ch, clen, msg, mlen);
}

static void on_subscribed(void *ud, const char *ch, size_t clen)
{
  (void)ud;
  up_cbs.subscribed(ch, clen);
}

static void on_unsubscribed(void *ud, const char *ch, size_t clen)
{
  (void)ud;
  up_cbs.unsubscribed(ch, clen);
}

void pd_bus_start(struct sortie_loop *l, const struct sortie_cfg *cfg, int worker,
                  const struct pd_bus_cbs *cbs)
{
  static const struct sortie_aredis_cbs sub_cbs = {on_sub_up, on_sub_down, on_message,
                                                   on_subscribed, on_unsubscribed};
  static const struct sortie_aredis_cbs cmd_cbs = {on_cmd_up, on_cmd_down, NULL, NULL, NULL};
  up_cbs = *cbs;
  worker_id = worker;
  snprintf(maxage_s, sizeof maxage_s, "%d", cfg->history_max_age_s);
  sub = sortie_aredis_new(l, cfg, "subscriber", &sub_cbs, NULL);
  cmd = sortie_aredis_new(l, cfg, "commands", &cmd_cbs, NULL);
}

void pd_bus_stop(void)
{
  sortie_aredis_free(sub);
  sortie_aredis_free(cmd);
  sub = cmd = NULL;
}

int pd_bus_up(void)
{
  return sub && sortie_aredis_up(sub);
}

int pd_bus_cmd_up(void)
{
  return cmd && sortie_aredis_up(cmd);
}

unsigned pd_bus_pending(void)
{
  return cmd ? sortie_aredis_pending(cmd) : 0;
}

void pd_bus_tick(void)
{
  if (cmd)
    sortie_aredis_ping(cmd);
}

int pd_bus_subscribe(const char *channel)
{
  return sortie_aredis_subscribe(sub, channel);
}

int pd_bus_unsubscribe(const char *channel)
{
  return sortie_aredis_unsubscribe(sub, channel);
}

/* ---- history ---- */

struct hist_req {
  pd_hist_cb *cb;
  void *ud;
};

static char *dup_str(const sortie_reply *r)
{
  size_t len;
  const char *s = r && sortie_reply_type(r) == SORTIE_REPLY_STRING ? sortie_reply_str(r, &len)
                                                                    : NULL;
  return s ? sortie_xstrndup(s, len) : NULL;
}

/* events.lua answers {"ok"?, end, {reset channels}, {id, channel, type, envelope, ...}} */
static void on_history(void *ud, const sortie_reply *r)
{
  struct hist_req q = *(struct hist_req *)ud;
  free(ud);
  const sortie_reply *end = r ? sortie_reply_at(r, 1) : NULL;
  const sortie_reply *rs = r ? sortie_reply_at(r, 2) : NULL;
  const sortie_reply *ev = r ? sortie_reply_at(r, 3) : NULL;
  size_t endlen = 0;
  const char *endstr = end ? sortie_reply_str(end, &endlen) : NULL;
  if (endstr == NULL || sortie_reply_type(end) != SORTIE_REPLY_STRING ||
      endlen > SORTIE_EVENT_ID_MAX || rs == NULL || sortie_reply_type(rs) != SORTIE_REPLY_ARRAY ||
      ev == NULL || sortie_reply_type(ev) != SORTIE_REPLY_ARRAY) {
    q.cb(q.ud, NULL);
    return;
  }
  struct pd_hist h;
  memset(&h, 0, sizeof h);
  memcpy(h.end, endstr, endlen);
  h.end[endlen] = '\0';
  size_t nr = sortie_reply_len(rs), ne = sortie_reply_len(ev);
  h.resets = sortie_xcalloc(nr + 1, sizeof *h.resets);
  for (size_t i = 0; i < nr; i++) {
    char *s = dup_str(sortie_reply_at(rs, i));
    if (s)
      h.resets[h.nresets++] = s;
  }
  h.events = sortie_xcalloc(ne / 4 + 1, sizeof *h.events);
  for (size_t i = 3; i < ne; i += 4) {
    size_t len;
    const sortie_reply *env = sortie_reply_at(ev, i);
    const char *s = sortie_reply_type(env) == SORTIE_REPLY_STRING ? sortie_reply_str(env, &len)
                                                                   : NULL;
    struct pd_event *e = s ? pd_event_parse(s, len) : NULL;
    if (e)
      h.events[h.nevents++] = e;
  }
  q.cb(q.ud, &h);
  for (uint32_t i = 0; i < h.nresets; i++)
    free(h.resets[i]);
  for (uint32_t i = 0; i < h.nevents; i++)
    pd_event_unref(h.events[i]);
  free(h.resets);
  free(h.events);
}

int pd_bus_history(const char *from, const char *const *channels, uint32_t n, uint32_t limit,
                   pd_hist_cb *cb, void *ud)
{
  if (!pd_bus_cmd_up())
    return -1;
  const char **av = sortie_xcalloc(5 + (size_t)n, sizeof *av);
  char lim[16];
  snprintf(lim, sizeof lim, "%u", limit);
  av[0] = lim;
  av[1] = from;
  av[2] = maxage_s;
  av[3] = ""; /* no reader counted: resume.c queues the daemon's reads */
  av[4] = "0";
  for (uint32_t i = 0; i < n; i++)
    av[5 + i] = channels[i];
  struct hist_req *q = sortie_xmalloc(sizeof *q);
  q->cb = cb;
  q->ud = ud;
  int rc = sortie_aredis_script(cmd, SORTIE_LUA_EVENTS, 5 + (int)n, av, on_history, q);
  free(av);
  if (rc < 0)
    free(q);
  return rc;
}

/* ---- the connection limit ---- */

struct conns_req {
  pd_conns_cb *cb;
  void *ud;
};

static void on_conns(void *ud, const sortie_reply *r)
{
  struct conns_req q = *(struct conns_req *)ud;
  free(ud);
  const sortie_reply *x = r ? sortie_reply_at(r, 0) : NULL;
  if (x == NULL || sortie_reply_type(x) != SORTIE_REPLY_INTEGER) {
    q.cb(q.ud, 1, 1); /* fail open: without Redis the limit cannot be counted */
    return;
  }
  q.cb(q.ud, sortie_reply_int(x) == 1, 0);
}

/* how long a connection slot counts without renewal (limit.h) */
#define SLOT_TTL_S "180"

void pd_bus_conns_open(const char *user, const char *conn_id, int limit, pd_conns_cb *cb,
                       void *ud)
{
  char lim[16];
  snprintf(lim, sizeof lim, "%d", limit);
  const char *av[] = {"open", user, conn_id, lim, SLOT_TTL_S};
  struct conns_req *q = sortie_xmalloc(sizeof *q);
  q->cb = cb;
  q->ud = ud;
  if (cmd && sortie_aredis_script(cmd, SORTIE_LUA_CONNS, 5, av, on_conns, q) == 0)
    return;
  free(q);
  cb(ud, 1, 1);
}

void pd_bus_conns_batch(const char *op, unsigned n, const char *const *pairs)
{
  if (cmd == NULL || n == 0)
    return;
  const char **av = sortie_xcalloc(2 + 2 * (size_t)n, sizeof *av);
  av[0] = op;
  av[1] = SLOT_TTL_S;
  memcpy(av + 2, pairs, 2 * (size_t)n * sizeof *av);
  sortie_aredis_script(cmd, SORTIE_LUA_CONNS, 2 + 2 * (int)n, av, NULL, NULL);
  free(av);
}

/* ---- presence ---- */

struct pres_req {
  pd_presence_cb *cb;
  void *ud;
};

/* presence.lua answers {1} or {1, why} */
static void on_presence(void *ud, const sortie_reply *r)
{
  struct pres_req q = *(struct pres_req *)ud;
  free(ud);
  const sortie_reply *x = r ? sortie_reply_at(r, 0) : NULL;
  if (x == NULL || sortie_reply_type(x) != SORTIE_REPLY_INTEGER || sortie_reply_int(x) != 1) {
    q.cb(q.ud, 0, NULL);
    return;
  }
  char *why = dup_str(sortie_reply_at(r, 1));
  q.cb(q.ud, 1, why);
  free(why);
}

int pd_bus_presence(const char *holder, int ttl_ms, int debounce_ms, unsigned due_max,
                    unsigned n, const char *const *recs, pd_presence_cb *cb, void *ud)
{
  if (!pd_bus_cmd_up())
    return -1;
  char ttl[16], deb[16], dm[16];
  snprintf(ttl, sizeof ttl, "%d", ttl_ms);
  snprintf(deb, sizeof deb, "%d", debounce_ms);
  snprintf(dm, sizeof dm, "%u", due_max);
  const char **av = sortie_xcalloc(4 + 3 * (size_t)n, sizeof *av);
  av[0] = holder;
  av[1] = ttl;
  av[2] = deb;
  av[3] = dm;
  memcpy(av + 4, recs, 3 * (size_t)n * sizeof *av);
  struct pres_req *q = sortie_xmalloc(sizeof *q);
  q->cb = cb;
  q->ud = ud;
  int rc = sortie_aredis_script(cmd, SORTIE_LUA_PRESENCE, 4 + 3 * (int)n, av, on_presence, q);
  free(av);
  if (rc < 0)
    free(q);
  return rc;
}

void pd_bus_admin_stats(const char *connections_json, const char *daemon, int presence)
{
  const char *av[] = {connections_json, daemon, "publish", presence ? "1" : ""};
  if (cmd)
    sortie_aredis_script(cmd, SORTIE_LUA_ADMIN_STATS, 4, av, NULL, NULL);
}

void pd_bus_syslog(const char *level, const char *message)
{
  const char *av[] = {level, "pushd", message};
  if (cmd)
    sortie_aredis_script(cmd, SORTIE_LUA_SYSLOG, 3, av, NULL, NULL);
}
