/* The asynchronous Redis connection of lib/aredis.h: a hiredis async context
 * in a sortie_loop through a small adapter (hiredis asks to add or remove read
 * and write interest; we do it on the loop).
 *
 * hiredis rules kept here: a context is never freed inside its own callback
 * (redisAsyncDisconnect defers), and every callback handles a NULL reply,
 * which is what pending commands get when the connection drops. */
#include "aredis.h"
#include "buf.h"
#include "log.h"
#include "redis_private.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct sortie_aredis {
  const char *name;
  const struct sortie_cfg *cfg;
  struct sortie_loop *loop;
  struct sortie_aredis_cbs cbs;
  void *ud;
  redisAsyncContext *ac;
  struct sortie_io io;
  int in_loop;
  int ready;
  int was_ready; /* ready before: the next up is a reconnect */
  uint64_t backoff;
  struct sortie_timer retry;
  struct sortie_timer connect_deadline;
  /* armed while script calls are out: no reply for redis.timeout_ms means
   * a Redis that does not answer (stopped, stalled), treated as lost */
  struct sortie_timer reply_deadline;
  /* Sentinel (redis.sentinels set): `ac` is first a link to sentinel
   * `sentinel_i`, asked for the primary; then a link to the primary it named
   * (have_addr), ready once ROLE says master. `tried`: sentinels asked in
   * this round, which ends with a backoff once each has failed. */
  enum { PH_SENTINEL, PH_PRIMARY } phase;
  int sentinel_i, tried, have_addr;
  char primary_host[256];
  int primary_port;
  struct sortie_script_env env;
  char prefix[96];    /* "<prefix>ch:": what every channel's Redis name starts with */
  size_t prefix_len;
  unsigned pending; /* script calls not yet answered */
};

/* ---- the adapter: hiredis <-> the loop ---- */

static void io_update(struct sortie_aredis *r, uint32_t want)
{
  if (!r->in_loop) {
    if (want == 0)
      return;
    r->io.fd = r->ac->c.fd;
    if (sortie_io_add(r->loop, &r->io, want) == 0)
      r->in_loop = 1;
    return;
  }
  if (want == 0) {
    sortie_io_del(r->loop, &r->io);
    r->in_loop = 0;
    return;
  }
  sortie_io_mod(r->loop, &r->io, want);
}

static void ev_add_read(void *p)
{
  struct sortie_aredis *r = p;
  io_update(r, r->io.events | EPOLLIN);
}
static void ev_del_read(void *p)
{
  struct sortie_aredis *r = p;
  io_update(r, r->io.events & ~(uint32_t)EPOLLIN);
}
static void ev_add_write(void *p)
{
  struct sortie_aredis *r = p;
  io_update(r, r->io.events | EPOLLOUT);
}
static void ev_del_write(void *p)
{
  struct sortie_aredis *r = p;
  io_update(r, r->io.events & ~(uint32_t)EPOLLOUT);
}
static void ev_cleanup(void *p)
{
  struct sortie_aredis *r = p;
  if (r->in_loop)
    sortie_io_del(r->loop, &r->io);
  r->in_loop = 0;
  r->io.events = 0;
}

static void on_io(struct sortie_io *io, uint32_t events)
{
  struct sortie_aredis *r = (struct sortie_aredis *)((char *)io - offsetof(struct sortie_aredis, io));
  if (r->ac == NULL)
    return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
    redisAsyncHandleRead(r->ac);
  if (r->ac && (events & EPOLLOUT))
    redisAsyncHandleWrite(r->ac);
}

/* ---- connecting ---- */

static void connect_now(struct sortie_aredis *r);

static void on_retry(struct sortie_timer *t)
{
  connect_now((struct sortie_aredis *)((char *)t - offsetof(struct sortie_aredis, retry)));
}

static void schedule_retry(struct sortie_aredis *r)
{
  r->backoff = r->backoff ? r->backoff * 2 : 100;
  if (r->backoff > 5000)
    r->backoff = 5000;
  sortie_timer_arm(&r->retry, r->backoff);
}

static void on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
  (void)priv;
  redisReply *rep = reply;
  if (rep && rep->type == REDIS_REPLY_ERROR) {
    LOG_ERROR("redis", "AUTH/SELECT refused: %s", rep->str);
    redisAsyncDisconnect(ac);
  }
}

static void become_ready(struct sortie_aredis *r)
{
  sortie_timer_stop(&r->connect_deadline);
  int again = r->was_ready;
  r->backoff = 0;
  r->tried = 0;
  r->ready = 1;
  r->was_ready = 1;
  LOG_INFO("redis", "%s connection ready", r->name);
  if (r->cbs.up)
    r->cbs.up(r->ud, again);
}

/* Sentinel: this attempt failed; the next one asks the next sentinel, at once
 * unless every sentinel has failed in this round (then after the backoff).
 * Never connects from inside a hiredis callback: through the retry timer. */
static void sentinel_next(struct sortie_aredis *r)
{
  r->have_addr = 0;
  r->sentinel_i++;
  if (++r->tried >= sortie_redis_sentinel_count(r->cfg)) {
    r->tried = 0;
    schedule_retry(r);
  } else {
    sortie_timer_arm(&r->retry, 0);
  }
}

static void on_master_addr(redisAsyncContext *ac, void *reply, void *priv)
{
  (void)priv;
  struct sortie_aredis *r = ac->data;
  if (r == NULL || r->ac != ac || reply == NULL)
    return; /* torn down: on_disconnect decides */
  char why[160];
  if (sortie_redis_sentinel_answer(reply, r->primary_host, sizeof r->primary_host,
                                   &r->primary_port, why, sizeof why) == 0)
    r->have_addr = 1;
  else
    LOG_WARN("redis", "%s: sentinel %d, master '%s': %s", r->name, r->sentinel_i + 1,
             r->cfg->redis_master_name, why);
  redisAsyncDisconnect(ac); /* then on_disconnect, PH_SENTINEL */
}

static void on_role(redisAsyncContext *ac, void *reply, void *priv)
{
  (void)priv;
  struct sortie_aredis *r = ac->data;
  if (r == NULL || r->ac != ac || reply == NULL)
    return;
  char why[160];
  if (sortie_redis_role_master(reply, why, sizeof why)) {
    become_ready(r);
    return;
  }
  /* a sentinel that has not seen the failover yet, or one under way */
  LOG_WARN("redis", "%s: %s:%d is not the primary (%s); asking the sentinels again", r->name,
           r->primary_host, r->primary_port, why);
  r->sentinel_i++;
  redisAsyncDisconnect(ac); /* then on_disconnect: lost(), a backoff */
}

static void on_ping(redisAsyncContext *ac, void *reply, void *priv)
{
  (void)priv;
  struct sortie_aredis *r = ac->data;
  if (r == NULL || r->ac != ac || reply == NULL)
    return; /* torn down: on_disconnect decides */
  become_ready(r);
}

static void lost(struct sortie_aredis *r)
{
  int was_ready = r->ready;
  r->ready = 0;
  r->ac = NULL;
  r->have_addr = 0;
  sortie_timer_stop(&r->connect_deadline);
  sortie_timer_stop(&r->reply_deadline);
  if (was_ready) {
    LOG_WARN("redis", "%s connection lost; reconnecting", r->name);
    if (r->cbs.down)
      r->cbs.down(r->ud);
  }
  schedule_retry(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
  (void)status;
  struct sortie_aredis *r = ac->data;
  if (r == NULL || r->ac != ac)
    return;
  if (r->phase == PH_SENTINEL) {
    r->ac = NULL;
    sortie_timer_stop(&r->connect_deadline);
    if (r->have_addr)
      sortie_timer_arm(&r->retry, 0); /* on to the primary it named */
    else
      sentinel_next(r);
    return;
  }
  lost(r);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
  redisAsyncContext *ac = (redisAsyncContext *)cac;
  struct sortie_aredis *r = ac->data;
  if (r == NULL || r->ac != ac)
    return;
  if (status != REDIS_OK) {
    sortie_timer_stop(&r->connect_deadline);
    r->ac = NULL; /* hiredis frees the context after this callback */
    if (r->phase == PH_SENTINEL) {
      LOG_WARN("redis", "%s: sentinel %d: %s", r->name, r->sentinel_i + 1, ac->errstr);
      sentinel_next(r);
      return;
    }
    LOG_WARN("redis", "%s: cannot connect: %s", r->name, ac->errstr);
    r->have_addr = 0;
    schedule_retry(r);
    return;
  }
  if (r->phase == PH_SENTINEL) {
    const char *av[3];
    int n = sortie_redis_sentinel_ask(r->cfg, av);
    redisAsyncCommandArgv(ac, on_master_addr, NULL, n, av, NULL);
    return; /* the deadline still runs: a sentinel that does not answer is passed over */
  }
  const char *av[2][2];
  char db[16];
  int n = sortie_redis_setup(r->cfg, av, db);
  for (int i = 0; i < n; i++)
    redisAsyncCommandArgv(ac, on_setup, NULL, 2, av[i], NULL);
  if (sortie_redis_use_sentinel(r->cfg)) {
    /* ready only once ROLE says master (the deadline runs until then) */
    const char *role[] = {"ROLE"};
    redisAsyncCommandArgv(ac, on_role, NULL, 1, role, NULL);
    return;
  }
  /* ready once Redis has answered: a stopped Redis still completes the TCP
   * handshake (the kernel does), and must not look up (the deadline runs) */
  const char *ping[] = {"PING"};
  redisAsyncCommandArgv(ac, on_ping, NULL, 1, ping, NULL);
}

/* Frees the context now, outside any hiredis callback: what was pending is
 * answered NULL; on_disconnect does not run (data is cleared first). */
static void drop_now(struct sortie_aredis *r)
{
  redisAsyncContext *ac = r->ac;
  r->ac = NULL;
  ac->data = NULL;
  redisAsyncFree(ac);
  if (r->in_loop)
    sortie_io_del(r->loop, &r->io);
  r->in_loop = 0;
}

static void on_reply_deadline(struct sortie_timer *t)
{
  struct sortie_aredis *r =
      (struct sortie_aredis *)((char *)t - offsetof(struct sortie_aredis, reply_deadline));
  if (r->ac == NULL || !r->ready || r->pending == 0)
    return;
  LOG_WARN("redis", "%s: no reply in %d ms to %u call(s); dropping the connection", r->name,
           r->cfg->redis_timeout_ms, r->pending);
  drop_now(r);
  lost(r);
}

static void on_connect_deadline(struct sortie_timer *t)
{
  struct sortie_aredis *r =
      (struct sortie_aredis *)((char *)t - offsetof(struct sortie_aredis, connect_deadline));
  if (r->ac && !r->ready) {
    LOG_WARN("redis", "%s: %s timed out", r->name,
             r->phase == PH_SENTINEL ? "asking a sentinel" : "connect");
    drop_now(r);
    if (r->phase == PH_SENTINEL) {
      sentinel_next(r);
    } else {
      r->have_addr = 0;
      schedule_retry(r);
    }
  }
}

/* Starts an async connection to host:port (host NULL: redis.socket) in
 * phase `ph`, given `deadline_ms` to be ready. */
static void start_link(struct sortie_aredis *r, int ph, const char *host, int port,
                       uint64_t deadline_ms)
{
  const struct sortie_cfg *cfg = r->cfg;
  r->phase = ph;
  redisAsyncContext *ac = host ? redisAsyncConnect(host, port)
                               : redisAsyncConnectUnix(cfg->redis_socket);
  if (ac == NULL || ac->err) {
    LOG_WARN("redis", "%s: %s", r->name, ac ? ac->errstr : "out of memory");
    if (ac)
      redisAsyncFree(ac);
    if (ph == PH_SENTINEL)
      sentinel_next(r);
    else
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
  sortie_timer_arm(&r->connect_deadline, deadline_ms);
}

static void connect_now(struct sortie_aredis *r)
{
  const struct sortie_cfg *cfg = r->cfg;
  uint64_t deadline = (uint64_t)cfg->redis_timeout_ms * 2 + 500;
  if (!sortie_redis_use_sentinel(cfg)) {
    start_link(r, PH_PRIMARY, cfg->redis_socket[0] ? NULL : cfg->redis_host, cfg->redis_port,
               deadline);
    return;
  }
  if (r->have_addr) {
    r->have_addr = 0;
    start_link(r, PH_PRIMARY, r->primary_host, r->primary_port, deadline);
    return;
  }
  int n = sortie_redis_sentinel_count(cfg);
  r->sentinel_i %= n;
  char host[256], why[160];
  int port;
  if (sortie_redis_sentinel_at(cfg, r->sentinel_i, host, sizeof host, &port, why, sizeof why)) {
    LOG_ERROR("redis", "%s: %s", r->name, why);
    sentinel_next(r);
    return;
  }
  start_link(r, PH_SENTINEL, host, port, (uint64_t)sortie_redis_sentinel_timeout_ms(cfg) * 2);
}

struct sortie_aredis *sortie_aredis_new(struct sortie_loop *l, const struct sortie_cfg *cfg,
                                        const char *name, const struct sortie_aredis_cbs *cbs,
                                        void *ud)
{
  struct sortie_aredis *r = sortie_xcalloc(1, sizeof *r);
  r->name = name;
  r->cfg = cfg;
  r->loop = l;
  if (cbs)
    r->cbs = *cbs;
  r->ud = ud;
  r->io.fd = -1;
  /* fits: redis.prefix holds at most 63 bytes */
  r->prefix_len = (size_t)sortie_redis_channel_key(cfg, "", r->prefix, sizeof r->prefix);
  sortie_script_env_init(&r->env, cfg);
  sortie_timer_init(&r->retry, l, on_retry);
  sortie_timer_init(&r->connect_deadline, l, on_connect_deadline);
  sortie_timer_init(&r->reply_deadline, l, on_reply_deadline);
  connect_now(r);
  return r;
}

void sortie_aredis_free(struct sortie_aredis *r)
{
  if (r == NULL)
    return;
  memset(&r->cbs, 0, sizeof r->cbs);
  sortie_timer_stop(&r->retry);
  sortie_timer_stop(&r->connect_deadline);
  sortie_timer_stop(&r->reply_deadline);
  if (r->ac) {
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->ready = 0;
    ac->data = NULL;
    redisAsyncFree(ac); /* pending replies get NULL now; the adapter is cleaned up */
  }
  r->ready = 0;
  free(r);
}

int sortie_aredis_up(const struct sortie_aredis *r)
{
  return r->ready;
}

/* ---- pub/sub ---- */

static void on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
  (void)priv;
  struct sortie_aredis *r = ac->data;
  redisReply *x = reply;
  if (r == NULL || x == NULL || x->type != REDIS_REPLY_ARRAY || x->elements < 3)
    return;
  redisReply *kind = x->element[0], *chan = x->element[1];
  if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING ||
      chan->len < r->prefix_len || memcmp(chan->str, r->prefix, r->prefix_len) != 0)
    return;
  const char *name = chan->str + r->prefix_len;
  size_t nlen = chan->len - r->prefix_len;
  if (strcmp(kind->str, "message") == 0 && x->element[2]->type == REDIS_REPLY_STRING) {
    if (r->cbs.message)
      r->cbs.message(r->ud, name, nlen, x->element[2]->str, x->element[2]->len);
  } else if (strcmp(kind->str, "subscribe") == 0) {
    if (r->cbs.subscribed)
      r->cbs.subscribed(r->ud, name, nlen);
  } else if (strcmp(kind->str, "unsubscribe") == 0) {
    if (r->cbs.unsubscribed)
      r->cbs.unsubscribed(r->ud, name, nlen);
  }
}

static int sub_cmd(struct sortie_aredis *r, const char *verb, const char *channel)
{
  if (!r->ready)
    return -1;
  char full[256];
  if (sortie_redis_channel_key(r->cfg, channel, full, sizeof full) < 0)
    return -1;
  const char *av[] = {verb, full};
  return redisAsyncCommandArgv(r->ac, on_sub, NULL, 2, av, NULL) == REDIS_OK ? 0 : -1;
}

int sortie_aredis_subscribe(struct sortie_aredis *r, const char *channel)
{
  if (sub_cmd(r, "SUBSCRIBE", channel) == 0)
    return 0;
  if (r->ready) {
    LOG_ERROR("redis", "%s: SUBSCRIBE %s refused; reconnecting", r->name, channel);
    redisAsyncDisconnect(r->ac);
  }
  return -1;
}

int sortie_aredis_unsubscribe(struct sortie_aredis *r, const char *channel)
{
  return sub_cmd(r, "UNSUBSCRIBE", channel);
}

/* ---- scripts ---- */

struct script_req {
  struct sortie_aredis *r;
  enum sortie_lua lua;
  int argc; /* with the head */
  const char **argv;
  size_t *lens;
  char *args; /* the copies of the caller's arguments, one block */
  int retried;
  sortie_aredis_reply_cb *cb;
  void *ud;
};

static void req_free(struct script_req *q)
{
  free(q->argv);
  free(q->lens);
  free(q->args);
  free(q);
}

static void on_script(redisAsyncContext *ac, void *reply, void *priv);

/* Calls out on the connection: the reply deadline runs while there are any,
 * counted again from each reply (a reply is progress). */
static void pending_sent(struct sortie_aredis *r)
{
  if (r->pending++ == 0)
    sortie_timer_arm(&r->reply_deadline, (uint64_t)r->cfg->redis_timeout_ms);
}

static void pending_done(struct sortie_aredis *r)
{
  r->pending--;
  if (r->pending && r->ready)
    sortie_timer_arm(&r->reply_deadline, (uint64_t)r->cfg->redis_timeout_ms);
  else
    sortie_timer_stop(&r->reply_deadline);
}

static int script_send(struct script_req *q)
{
  struct sortie_aredis *r = q->r;
  if (!r->ready)
    return -1;
  /* EVALSHA first; on NOSCRIPT the same with EVAL and the source */
  sortie_script_head(q->argv, q->lens, &r->env, r->cfg, q->lua, q->retried);
  return redisAsyncCommandArgv(r->ac, on_script, q, q->argc, q->argv, q->lens) == REDIS_OK ? 0
                                                                                          : -1;
}

static void on_script(redisAsyncContext *ac, void *reply, void *priv)
{
  struct script_req *q = priv;
  redisReply *x = reply;
  if (sortie_redis_noscript(x) && !q->retried) {
    q->retried = 1;
    if (script_send(q) == 0)
      return;
    x = NULL;
  }
  if (sortie_redis_readonly(x) && q->r->ac == ac && q->r->ready) {
    /* a demoted primary (a failover we missed): find the new one */
    LOG_WARN("redis", "%s: the server became a replica; asking the sentinels again", q->r->name);
    redisAsyncDisconnect(ac);
  }
  if (x && x->type == REDIS_REPLY_ERROR) {
    LOG_ERROR("redis", "script %s failed: %s", sortie_lua_name[q->lua], x->str);
    x = NULL;
  }
  pending_done(q->r);
  if (q->cb)
    q->cb(q->ud, (const sortie_reply *)x);
  req_free(q);
}

int sortie_aredis_script(struct sortie_aredis *r, enum sortie_lua s, int argc,
                         const char *const *argv, sortie_aredis_reply_cb *cb, void *ud)
{
  if (!r->ready)
    return -1;
  struct script_req *q = sortie_xcalloc(1, sizeof *q);
  q->r = r;
  q->lua = s;
  q->argc = SORTIE_SCRIPT_HEAD + argc;
  q->argv = sortie_xcalloc((size_t)q->argc, sizeof *q->argv);
  q->lens = sortie_xcalloc((size_t)q->argc, sizeof *q->lens);
  size_t total = 0;
  for (int i = 0; i < argc; i++)
    total += strlen(argv[i]) + 1;
  q->args = sortie_xmalloc(total ? total : 1);
  char *p = q->args;
  for (int i = 0; i < argc; i++) {
    size_t l = strlen(argv[i]);
    memcpy(p, argv[i], l + 1);
    q->argv[SORTIE_SCRIPT_HEAD + i] = p;
    q->lens[SORTIE_SCRIPT_HEAD + i] = l;
    p += l + 1;
  }
  q->cb = cb;
  q->ud = ud;
  if (script_send(q) < 0) {
    req_free(q);
    return -1;
  }
  pending_sent(r);
  return 0;
}

static void on_pong(redisAsyncContext *ac, void *reply, void *priv)
{
  (void)ac;
  (void)reply;
  pending_done(priv);
}

int sortie_aredis_ping(struct sortie_aredis *r)
{
  if (!r->ready || r->pending)
    return -1;
  const char *av[] = {"PING"};
  if (redisAsyncCommandArgv(r->ac, on_pong, r, 1, av, NULL) != REDIS_OK)
    return -1;
  pending_sent(r);
  return 0;
}

unsigned sortie_aredis_pending(const struct sortie_aredis *r)
{
  return r->pending;
}
