/* Redis for the daemon: two hiredis async connections in the worker's own
 * epoll loop (a small adapter below: hiredis asks to add/remove read and write
 * interest, we do it on the loop). `sub` is subscribed to exactly the channels
 * this worker's clients read; `cmd` runs the history and connection-limit
 * scripts. Either one lost: reconnect with backoff (100 ms doubling to 5 s);
 * the channel layer re-subscribes and backfills (channel.c).
 *
 * hiredis rules kept here: a context is never freed inside its own callback
 * (we call redisAsyncDisconnect, which defers), and every callback handles a
 * NULL reply, which is what pending commands get when the connection drops. */
#include "pushd.h"
#include "redis.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct rconn {
  const char *name;
  redisAsyncContext *ac;
  struct pd_io io;
  int in_loop;
  int ready;
  uint64_t backoff;
  struct pd_timer retry;
  struct pd_timer connect_deadline;
  void (*on_ready)(void);
  void (*on_lost)(void);
};

static const struct sortie_cfg *cfg;
static struct rconn sub_c, cmd_c;
static char chan_prefix[96]; /* "<prefix>ch:" */
static size_t chan_prefix_len;
static char maxlen_s[16], maxage_s[16], equity_s[32], connlimit_s[16];

/* ---- the adapter: hiredis <-> our loop ---- */

static void rc_update(struct rconn *r, uint32_t want)
{
  if (!r->in_loop) {
    if (want == 0)
      return;
    r->io.fd = r->ac->c.fd;
    if (pd_io_add(&r->io, want) == 0)
      r->in_loop = 1;
    return;
  }
  if (want == 0) {
    pd_io_del(&r->io);
    r->in_loop = 0;
    return;
  }
  pd_io_mod(&r->io, want);
}

static void ev_add_read(void *p)
{
  struct rconn *r = p;
  rc_update(r, r->io.events | EPOLLIN);
}
static void ev_del_read(void *p)
{
  struct rconn *r = p;
  rc_update(r, r->io.events & ~(uint32_t)EPOLLIN);
}
static void ev_add_write(void *p)
{
  struct rconn *r = p;
  rc_update(r, r->io.events | EPOLLOUT);
}
static void ev_del_write(void *p)
{
  struct rconn *r = p;
  rc_update(r, r->io.events & ~(uint32_t)EPOLLOUT);
}
static void ev_cleanup(void *p)
{
  struct rconn *r = p;
  if (r->in_loop)
    pd_io_del(&r->io);
  r->in_loop = 0;
  r->io.events = 0;
}

static void on_io(struct pd_io *io, uint32_t events)
{
  struct rconn *r = (struct rconn *)((char *)io - offsetof(struct rconn, io));
  if (r->ac == NULL)
    return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
    redisAsyncHandleRead(r->ac);
  if (r->ac && (events & EPOLLOUT))
    redisAsyncHandleWrite(r->ac);
}

/* ---- connecting ---- */

static void rc_connect(struct rconn *r);

static void on_retry(struct pd_timer *t)
{
  rc_connect((struct rconn *)((char *)t - offsetof(struct rconn, retry)));
}

static void schedule_retry(struct rconn *r)
{
  if (pd_stopping)
    return;
  r->backoff = r->backoff ? r->backoff * 2 : 100;
  if (r->backoff > 5000)
    r->backoff = 5000;
  pd_timer_arm(&r->retry, r->backoff);
}

static void lost(struct rconn *r)
{
  int was_ready = r->ready;
  r->ready = 0;
  r->ac = NULL;
  pd_timer_stop(&r->connect_deadline);
  pd_stats_self()->redis_up = sub_c.ready && cmd_c.ready;
  if (was_ready) {
    LOG_WARN("redis", "%s connection lost; reconnecting", r->name);
    r->on_lost();
  }
  schedule_retry(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
  (void)status;
  struct rconn *r = ac->data;
  if (r && r->ac == ac)
    lost(r);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
  (void)priv;
  redisReply *rep = reply;
  if (rep && rep->type == REDIS_REPLY_ERROR) {
    LOG_ERROR("redis", "AUTH/SELECT refused: %s", rep->str);
    redisAsyncDisconnect(ac);
  }
}

static void on_connect(const redisAsyncContext *cac, int status)
{
  redisAsyncContext *ac = (redisAsyncContext *)cac;
  struct rconn *r = ac->data;
  if (r == NULL || r->ac != ac)
    return;
  pd_timer_stop(&r->connect_deadline);
  if (status != REDIS_OK) {
    LOG_WARN("redis", "%s: cannot connect: %s", r->name, ac->errstr);
    r->ac = NULL; /* hiredis frees the context after this callback */
    schedule_retry(r);
    return;
  }
  if (cfg->redis_password && cfg->redis_password[0]) {
    const char *av[] = {"AUTH", cfg->redis_password};
    redisAsyncCommandArgv(ac, on_auth, NULL, 2, av, NULL);
  }
  if (cfg->redis_db) {
    char db[16];
    snprintf(db, sizeof db, "%d", cfg->redis_db);
    const char *av[] = {"SELECT", db};
    redisAsyncCommandArgv(ac, on_auth, NULL, 2, av, NULL);
  }
  if (r->backoff) {
    pd_stats_self()->redis_reconnects++;
    if (r == &cmd_c) {
      char m[128];
      snprintf(m, sizeof m, "worker %d (pid %d) connected to Redis again", pd_worker_id,
               (int)getpid());
      r->ready = 1; /* the log line goes out on this connection */
      pd_redis_syslog("warn", m);
    }
  }
  r->backoff = 0;
  r->ready = 1;
  pd_stats_self()->redis_up = sub_c.ready && cmd_c.ready;
  LOG_INFO("redis", "%s connection ready", r->name);
  r->on_ready();
}

static void on_connect_deadline(struct pd_timer *t)
{
  struct rconn *r = (struct rconn *)((char *)t - offsetof(struct rconn, connect_deadline));
  if (r->ac && !r->ready) {
    LOG_WARN("redis", "%s: connect timed out", r->name);
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);
    if (r->in_loop)
      pd_io_del(&r->io);
    r->in_loop = 0;
    schedule_retry(r);
  }
}

static void rc_connect(struct rconn *r)
{
  redisAsyncContext *ac = cfg->redis_socket[0] ? redisAsyncConnectUnix(cfg->redis_socket)
                                               : redisAsyncConnect(cfg->redis_host, cfg->redis_port);
  if (ac == NULL || ac->err) {
    LOG_WARN("redis", "%s: %s", r->name, ac ? ac->errstr : "out of memory");
    if (ac)
      redisAsyncFree(ac);
    schedule_retry(r);
    return;
  }
  r->ac = ac;
  ac->data = r;
  r->io.cb = on_io;
  r->io.events = 0;
  r->in_loop = 0;
  ac->ev.data = r;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  /* hiredis 0.14 has no async connect timeout of its own */
  r->connect_deadline.cb = on_connect_deadline;
  pd_timer_arm(&r->connect_deadline, (uint64_t)cfg->redis_timeout_ms * 2 + 500);
}

/* ---- the subscriber ---- */

static void sync_answered(const char *name, size_t nlen);

static void on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
  (void)ac;
  (void)priv;
  redisReply *r = reply;
  if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
    return;
  redisReply *kind = r->element[0], *chan = r->element[1];
  if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING ||
      chan->len < chan_prefix_len || memcmp(chan->str, chan_prefix, chan_prefix_len) != 0)
    return;
  const char *name = chan->str + chan_prefix_len;
  size_t nlen = chan->len - chan_prefix_len;
  if (strcmp(kind->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
    pd_channel_on_message(name, nlen, r->element[2]->str, r->element[2]->len);
  else if (nlen > 6 && memcmp(name, "#sync:", 6) == 0) {
    if (strcmp(kind->str, "subscribe") == 0)
      sync_answered(name, nlen);
  } else if (strcmp(kind->str, "subscribe") == 0)
    pd_channel_on_subscribed(name, nlen);
  else if (strcmp(kind->str, "unsubscribe") == 0)
    pd_channel_on_unsubscribed(name, nlen);
}

static int sub_cmd(const char *verb, const char *channel)
{
  if (!sub_c.ready)
    return -1;
  char full[256];
  snprintf(full, sizeof full, "%s%s", chan_prefix, channel);
  const char *av[] = {verb, full};
  return redisAsyncCommandArgv(sub_c.ac, on_sub, NULL, 2, av, NULL) == REDIS_OK ? 0 : -1;
}

int pd_redis_subscribe(const char *channel)
{
  if (sub_cmd("SUBSCRIBE", channel) == 0)
    return 0;
  if (sub_c.ready) {
    /* the connection is in a state we cannot reason about: start over (the
     * channel layer subscribes everything again once it is back) */
    LOG_ERROR("redis", "SUBSCRIBE %s refused; reconnecting", channel);
    redisAsyncDisconnect(sub_c.ac);
  }
  return -1;
}

int pd_redis_unsubscribe(const char *channel)
{
  return sub_cmd("UNSUBSCRIBE", channel);
}

/* A sync marker on the subscriber connection. hiredis 0.14 cannot route a
 * PING's answer in subscribed mode, so the marker is a SUBSCRIBE to a channel
 * of its own ("#sync:<pid>:<n>": no real channel name has a '#'): its answer
 * comes after every message published before it. The requests of one loop
 * turn share one marker (sent at the end of the turn), and markers come back
 * in the order they were sent, so they wait in a FIFO. */
struct sync_req {
  void (*cb)(void *ud, int ok);
  void *ud;
  struct sync_req *next;
};

struct sync_marker {
  uint64_t n;
  struct sync_req *reqs;
  struct sync_marker *next;
};

static struct sync_req *sync_batch;                 /* asked this turn */
static struct sync_marker *markers, **markers_tail = &markers;
static uint64_t sync_next;

static void sync_run(struct sync_req *q, int ok)
{
  while (q) {
    struct sync_req *next = q->next;
    q->cb(q->ud, ok);
    free(q);
    q = next;
  }
}

static void sync_answered(const char *name, size_t nlen)
{
  struct sync_marker *m = markers;
  char want[64];
  int n = m ? snprintf(want, sizeof want, "#sync:%d:%llu", (int)getpid(),
                       (unsigned long long)m->n) : 0;
  if (m == NULL || (size_t)n != nlen || memcmp(want, name, nlen) != 0)
    return; /* not ours, or out of order: cannot happen on one connection */
  markers = m->next;
  if (markers == NULL)
    markers_tail = &markers;
  sub_cmd("UNSUBSCRIBE", want);
  sync_run(m->reqs, 1);
  free(m);
}

/* the subscriber connection is gone: every request fails */
static void syncs_fail(void)
{
  while (markers) {
    struct sync_marker *m = markers;
    markers = m->next;
    sync_run(m->reqs, 0);
    free(m);
  }
  markers_tail = &markers;
  struct sync_req *b = sync_batch;
  sync_batch = NULL;
  sync_run(b, 0);
}

int pd_redis_sync(void (*cb)(void *ud, int ok), void *ud)
{
  if (!sub_c.ready)
    return -1;
  struct sync_req *q = sortie_xmalloc(sizeof *q);
  q->cb = cb;
  q->ud = ud;
  q->next = sync_batch;
  sync_batch = q;
  return 0;
}

void pd_redis_end_of_turn(void)
{
  if (sync_batch == NULL)
    return;
  char name[64];
  uint64_t n = ++sync_next;
  snprintf(name, sizeof name, "#sync:%d:%llu", (int)getpid(), (unsigned long long)n);
  struct sync_req *b = sync_batch;
  sync_batch = NULL;
  if (sub_cmd("SUBSCRIBE", name) < 0) {
    sync_run(b, 0);
    return;
  }
  struct sync_marker *m = sortie_xmalloc(sizeof *m);
  m->n = n;
  m->reqs = b;
  m->next = NULL;
  *markers_tail = m;
  markers_tail = &m->next;
}

static void sub_ready(void)
{
  if (cmd_c.ready)
    pd_channels_on_redis_up();
}

static void sub_lost(void)
{
  syncs_fail();
  pd_channels_on_redis_down();
}

static void cmd_ready(void)
{
  if (sub_c.ready)
    pd_channels_on_redis_up();
  pd_jobs_on_cmd_up();
}

static void cmd_lost(void)
{
}

int pd_redis_up(void)
{
  return sub_c.ready;
}

int pd_redis_cmd_up(void)
{
  return cmd_c.ready;
}

/* ---- scripts on `cmd` ---- */

struct script_req {
  enum sortie_lua lua;
  int argc;
  char **argv;
  size_t *lens;
  int retried;
  void (*done)(struct script_req *q, redisReply *r); /* r NULL: failed */
  void *cb;
  void *ud;
};

static void req_free(struct script_req *q)
{
  for (int i = 0; i < q->argc; i++)
    free(q->argv[i]);
  free(q->argv);
  free(q->lens);
  free(q);
}

static void on_script(redisAsyncContext *ac, void *reply, void *priv);

static int script_send(struct script_req *q)
{
  if (!cmd_c.ready)
    return -1;
  /* EVALSHA first; on NOSCRIPT the same with EVAL and the source */
  q->argv[0] = sortie_xstrdup(q->retried ? "EVAL" : "EVALSHA");
  q->lens[0] = strlen(q->argv[0]);
  const char *body = q->retried ? sortie_lua_src[q->lua] : sortie_redis_script_sha(q->lua);
  q->argv[1] = sortie_xstrdup(body);
  q->lens[1] = strlen(body);
  int rc = redisAsyncCommandArgv(cmd_c.ac, on_script, q, q->argc, (const char **)q->argv, q->lens);
  free(q->argv[0]);
  free(q->argv[1]);
  q->argv[0] = q->argv[1] = NULL;
  return rc == REDIS_OK ? 0 : -1;
}

static void on_script(redisAsyncContext *ac, void *reply, void *priv)
{
  (void)ac;
  struct script_req *q = priv;
  redisReply *r = reply;
  if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !q->retried) {
    q->retried = 1;
    if (script_send(q) == 0)
      return;
    r = NULL;
  }
  if (r && r->type == REDIS_REPLY_ERROR) {
    LOG_ERROR("redis", "script %s failed: %s", sortie_lua_name[q->lua], r->str);
    r = NULL;
  }
  q->done(q, r);
  req_free(q);
}

/* Builds a request: EVALSHA <sha> 0 prefix maxlen equity + args. */
static struct script_req *req_new(enum sortie_lua lua, int nargs)
{
  struct script_req *q = sortie_xcalloc(1, sizeof *q);
  q->lua = lua;
  q->argc = 6 + nargs;
  q->argv = sortie_xcalloc((size_t)q->argc, sizeof *q->argv);
  q->lens = sortie_xcalloc((size_t)q->argc, sizeof *q->lens);
  const char *fixed[] = {NULL, NULL, "0", cfg->redis_prefix, maxlen_s, equity_s};
  for (int i = 2; i < 6; i++) {
    q->argv[i] = sortie_xstrdup(fixed[i]);
    q->lens[i] = strlen(fixed[i]);
  }
  return q;
}

static void req_arg(struct script_req *q, int i, const char *s)
{
  q->argv[6 + i] = sortie_xstrdup(s);
  q->lens[6 + i] = strlen(s);
}

static char *dup_str(const redisReply *r)
{
  return r && r->type == REDIS_REPLY_STRING ? sortie_xstrndup(r->str, r->len) : NULL;
}

static void history_done(struct script_req *q, redisReply *r)
{
  pd_hist_cb *cb = (pd_hist_cb *)q->cb;
  struct pd_hist h;
  memset(&h, 0, sizeof h);
  if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 4 ||
      r->element[1]->type != REDIS_REPLY_STRING || r->element[1]->len > SORTIE_STREAM_ID_MAX ||
      r->element[2]->type != REDIS_REPLY_ARRAY || r->element[3]->type != REDIS_REPLY_ARRAY) {
    cb(q->ud, NULL);
    return;
  }
  memcpy(h.cursor, r->element[1]->str, r->element[1]->len);
  h.cursor[r->element[1]->len] = '\0';
  redisReply *rs = r->element[2], *ev = r->element[3];
  h.resets = sortie_xcalloc(rs->elements + 1, sizeof *h.resets);
  for (size_t i = 0; i < rs->elements; i++) {
    char *s = dup_str(rs->element[i]);
    if (s)
      h.resets[h.nresets++] = s;
  }
  h.events = sortie_xcalloc(ev->elements / 4 + 1, sizeof *h.events);
  for (size_t i = 3; i < ev->elements; i += 4) {
    redisReply *env = ev->element[i];
    if (env->type != REDIS_REPLY_STRING)
      continue;
    struct pd_event *e = pd_event_parse(env->str, env->len);
    if (e)
      h.events[h.nevents++] = e;
  }
  cb(q->ud, &h);
  for (uint32_t i = 0; i < h.nresets; i++)
    free(h.resets[i]);
  for (uint32_t i = 0; i < h.nevents; i++)
    pd_event_unref(h.events[i]);
  free(h.resets);
  free(h.events);
}

int pd_redis_history(const char *cursor, const char *const *channels, uint32_t n, uint32_t limit,
                     pd_hist_cb *cb, void *ud)
{
  struct script_req *q = req_new(SORTIE_LUA_EVENTS, 3 + (int)n);
  char lim[16];
  snprintf(lim, sizeof lim, "%u", limit);
  req_arg(q, 0, lim);
  req_arg(q, 1, cursor);
  req_arg(q, 2, maxage_s);
  for (uint32_t i = 0; i < n; i++)
    req_arg(q, 3 + (int)i, channels[i]);
  q->done = history_done;
  q->cb = (void *)cb;
  q->ud = ud;
  if (script_send(q) < 0) {
    req_free(q);
    return -1;
  }
  return 0;
}

static void conns_done(struct script_req *q, redisReply *r)
{
  pd_conn_cb *cb = (pd_conn_cb *)q->cb;
  if (cb == NULL)
    return;
  if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
      r->element[0]->type != REDIS_REPLY_INTEGER) {
    cb(q->ud, 1, 1); /* fail open: without Redis the limit cannot be counted */
    return;
  }
  cb(q->ud, r->element[0]->integer == 1, 0);
}

int pd_redis_conns(const char *op, const char *user, const char *conn_id, pd_conn_cb *cb,
                   void *ud)
{
  struct script_req *q = req_new(SORTIE_LUA_CONNS, 5);
  req_arg(q, 0, op);
  req_arg(q, 1, user);
  req_arg(q, 2, conn_id);
  req_arg(q, 3, connlimit_s);
  req_arg(q, 4, "180");
  q->done = conns_done;
  q->cb = (void *)cb;
  q->ud = ud;
  if (script_send(q) < 0) {
    req_free(q);
    if (cb)
      cb(ud, 1, 1);
    return -1;
  }
  return 0;
}

static void fire_and_forget_done(struct script_req *q, redisReply *r)
{
  (void)q;
  (void)r;
}

/* Runs a script whose answer nobody waits for. */
static void fire_and_forget(enum sortie_lua lua, int n, const char *const *args)
{
  struct script_req *q = req_new(lua, n);
  for (int i = 0; i < n; i++)
    req_arg(q, i, args[i]);
  q->done = fire_and_forget_done;
  if (script_send(q) < 0)
    req_free(q);
}

void pd_redis_admin_stats(const char *connections_json, const char *daemon)
{
  const char *args[] = {connections_json, daemon, "publish"};
  fire_and_forget(SORTIE_LUA_ADMIN_STATS, 3, args);
}

void pd_redis_syslog(const char *level, const char *message)
{
  const char *args[] = {level, "pushd", message};
  fire_and_forget(SORTIE_LUA_SYSLOG, 3, args);
}

int pd_redis_start(const struct sortie_cfg *c)
{
  cfg = c;
  chan_prefix_len = (size_t)snprintf(chan_prefix, sizeof chan_prefix, "%sch:", c->redis_prefix);
  snprintf(maxlen_s, sizeof maxlen_s, "%d", c->history_maxlen);
  snprintf(maxage_s, sizeof maxage_s, "%d", c->history_max_age_s);
  snprintf(connlimit_s, sizeof connlimit_s, "%d", c->push_max_conn_per_user);
  /* the scripts take the starting equity too; pushd's scripts do not use it */
  snprintf(equity_s, sizeof equity_s, "0");
  sub_c = (struct rconn){.name = "subscriber", .on_ready = sub_ready, .on_lost = sub_lost};
  cmd_c = (struct rconn){.name = "commands", .on_ready = cmd_ready, .on_lost = cmd_lost};
  sub_c.retry.cb = cmd_c.retry.cb = on_retry;
  rc_connect(&sub_c);
  rc_connect(&cmd_c);
  return 0;
}

void pd_redis_stop(void)
{
  struct rconn *rs[] = {&sub_c, &cmd_c};
  for (int i = 0; i < 2; i++) {
    pd_timer_stop(&rs[i]->retry);
    pd_timer_stop(&rs[i]->connect_deadline);
    if (rs[i]->ac) {
      redisAsyncContext *ac = rs[i]->ac;
      rs[i]->ac = NULL;
      rs[i]->ready = 0;
      ac->data = NULL;
      redisAsyncDisconnect(ac);
    }
  }
}
