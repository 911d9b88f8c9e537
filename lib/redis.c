/* Blocking Redis access over hiredis. */
#include "redis.h"
#include "redis_private.h"
#include "buf.h"
#include "decimal.h"
#include "log.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct sortie_redis {
  const struct sortie_cfg *cfg;
  redisContext *ctx;
  char err[256];
  struct sortie_script_env env;
  int sentinel_first; /* the sentinel that named the primary last (from 0) */
  int unknown; /* the last NULL came after the command was sent (see redis.h) */
};

static char sha_hex[SORTIE_LUA_COUNT][41];

const char *sortie_redis_script_sha(enum sortie_lua s)
{
  if (sha_hex[s][0] == '\0') {
    unsigned char md[SHA_DIGEST_LENGTH];
    const char *src = sortie_lua_src[s];
    SHA1((const unsigned char *)src, strlen(src), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
      snprintf(sha_hex[s] + 2 * i, 3, "%02x", md[i]);
  }
  return sha_hex[s];
}

void sortie_script_env_init(struct sortie_script_env *env, const struct sortie_cfg *c)
{
  struct sortie_dec d, u;
  if (sortie_dec_parse(c->trading_equity_start, strlen(c->trading_equity_start), &d) < 0 ||
      sortie_dec_rescale(d, SORTIE_DEC_MAX_SCALE, &u) < 0) {
    LOG_WARN("redis", "trading.equity_start '%s' is not a decimal; using 0",
             c->trading_equity_start);
    u.units = 0;
  }
  snprintf(env->equity, sizeof env->equity, "%lld", (long long)u.units);
  snprintf(env->maxlen, sizeof env->maxlen, "%d", c->history_maxlen);
}

void sortie_script_head(const char **av, size_t *al, const struct sortie_script_env *env,
                        const struct sortie_cfg *c, enum sortie_lua s, int eval)
{
  av[0] = eval ? "EVAL" : "EVALSHA";
  av[1] = eval ? sortie_lua_src[s] : sortie_redis_script_sha(s);
  av[2] = "0";
  av[3] = c->redis_prefix;
  av[4] = env->maxlen;
  av[5] = env->equity;
  for (int i = 0; i < SORTIE_SCRIPT_HEAD; i++)
    al[i] = strlen(av[i]);
}

int sortie_redis_setup(const struct sortie_cfg *c, const char *av[2][2], char db[16])
{
  int n = 0;
  if (c->redis_password && c->redis_password[0]) {
    av[n][0] = "AUTH";
    av[n++][1] = c->redis_password;
  }
  if (c->redis_db) {
    snprintf(db, 16, "%d", c->redis_db);
    av[n][0] = "SELECT";
    av[n++][1] = db;
  }
  return n;
}

int sortie_redis_channel_key(const struct sortie_cfg *c, const char *name, char *out, size_t n)
{
  int k = snprintf(out, n, "%sch:%s", c->redis_prefix, name);
  return k < 0 || (size_t)k >= n ? -1 : k;
}

int sortie_redis_noscript(const struct redisReply *r)
{
  return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

int sortie_redis_use_sentinel(const struct sortie_cfg *c)
{
  for (const char *p = c->redis_sentinels; *p; p++)
    if (*p != ' ' && *p != ',')
      return 1;
  return 0;
}

int sortie_redis_sentinel_timeout_ms(const struct sortie_cfg *c)
{
  return c->redis_timeout_ms < 500 ? c->redis_timeout_ms : 500;
}

int sortie_redis_sentinel_at(const struct sortie_cfg *c, int i, char *host, size_t hn, int *port,
                             char *err, size_t errlen)
{
  const char *p = c->redis_sentinels;
  for (int k = 0;; k++) {
    while (*p == ' ' || *p == ',')
      p++;
    if (*p == '\0')
      return 1;
    const char *end = p + strcspn(p, ", ");
    if (k < i) {
      p = end;
      continue;
    }
    /* host:port; the port after the last ':' (an IPv6 host has its own) */
    const char *colon = NULL;
    for (const char *q = p; q < end; q++)
      if (*q == ':')
        colon = q;
    char *pend;
    long v = colon ? strtol(colon + 1, &pend, 10) : 0;
    if (colon == NULL || colon == p || pend != end || v < 1 || v > 65535 ||
        (size_t)(colon - p) >= hn) {
      snprintf(err, errlen, "redis.sentinels: '%.*s' is not host:port", (int)(end - p), p);
      return -1;
    }
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    *port = (int)v;
    return 0;
  }
}

int sortie_redis_sentinel_count(const struct sortie_cfg *c)
{
  int n = 0;
  for (const char *p = c->redis_sentinels; *p;) {
    while (*p == ' ' || *p == ',')
      p++;
    if (*p)
      n++;
    p += strcspn(p, ", ");
  }
  return n;
}

int sortie_redis_sentinel_ask(const struct sortie_cfg *c, const char *av[3])
{
  av[0] = "SENTINEL";
  av[1] = "get-master-addr-by-name";
  av[2] = c->redis_master_name;
  return 3;
}

int sortie_redis_sentinel_answer(const struct redisReply *rep, char *host, size_t hn, int *port,
                                 char *err, size_t errlen)
{
  if (rep == NULL) {
    snprintf(err, errlen, "no answer");
    return -1;
  }
  if (rep->type == REDIS_REPLY_ERROR) {
    snprintf(err, errlen, "%s", rep->str);
    return -1;
  }
  if (rep->type == REDIS_REPLY_NIL) {
    snprintf(err, errlen, "it knows no master of that name");
    return -1;
  }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
      rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING ||
      rep->element[0]->len >= hn) {
    snprintf(err, errlen, "not an address");
    return -1;
  }
  char *end;
  long v = strtol(rep->element[1]->str, &end, 10);
  if (*end != '\0' || v < 1 || v > 65535) {
    snprintf(err, errlen, "not a port: %s", rep->element[1]->str);
    return -1;
  }
  memcpy(host, rep->element[0]->str, rep->element[0]->len + 1);
  *port = (int)v;
  return 0;
}

int sortie_redis_role_master(const struct redisReply *rep, char *err, size_t errlen)
{
  if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
      rep->element[0]->type == REDIS_REPLY_STRING) {
    if (strcmp(rep->element[0]->str, "master") == 0)
      return 1;
    snprintf(err, errlen, "ROLE says %s", rep->element[0]->str);
    return 0;
  }
  snprintf(err, errlen, "ROLE: %s", rep == NULL ? "no answer"
                                   : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                                    : "unexpected reply");
  return 0;
}

int sortie_redis_readonly(const struct redisReply *rep)
{
  /* a script's error carries the refused call's error after its own text */
  return rep && rep->type == REDIS_REPLY_ERROR &&
         (strncmp(rep->str, "READONLY", 8) == 0 || strstr(rep->str, "-READONLY") != NULL);
}

struct sortie_redis *sortie_redis_new(const struct sortie_cfg *c)
{
  struct sortie_redis *r = sortie_xcalloc(1, sizeof *r);
  r->cfg = c;
  sortie_script_env_init(&r->env, c);
  return r;
}

void sortie_redis_free(struct sortie_redis *r)
{
  if (r == NULL)
    return;
  if (r->ctx)
    redisFree(r->ctx);
  free(r);
}

const char *sortie_redis_errstr(const struct sortie_redis *r)
{
  return r->err;
}

static void drop(struct sortie_redis *r)
{
  if (r->ctx) {
    redisFree(r->ctx);
    r->ctx = NULL;
  }
}

static struct timeval ms_tv(int ms)
{
  return (struct timeval){ms / 1000, (ms % 1000) * 1000};
}

/* Connects r->ctx to one address (`host` NULL: redis.socket) and sends AUTH
 * and SELECT. 0, or -1 with r->err set and no connection. */
static int connect_to(struct sortie_redis *r, const char *host, int port)
{
  const struct sortie_cfg *c = r->cfg;
  struct timeval tv = ms_tv(c->redis_timeout_ms);
  drop(r);
  if (host == NULL)
    r->ctx = redisConnectUnixWithTimeout(c->redis_socket, tv);
  else
    r->ctx = redisConnectWithTimeout(host, port, tv);
  if (r->ctx == NULL || r->ctx->err) {
    snprintf(r->err, sizeof r->err, "connect to redis: %s",
             r->ctx ? r->ctx->errstr : "out of memory");
    drop(r);
    return -1;
  }
  redisSetTimeout(r->ctx, tv);
  redisReply *rep = NULL;
  const char *av[2][2];
  char db[16];
  int ncmd = sortie_redis_setup(c, av, db);
  for (int i = 0; i < ncmd; i++) {
    rep = redisCommandArgv(r->ctx, 2, av[i], NULL);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
      snprintf(r->err, sizeof r->err, "redis %s failed: %s", av[i][0],
               rep ? rep->str : r->ctx->errstr);
      goto fail;
    }
    freeReplyObject(rep);
  }
  return 0;
fail:
  if (rep)
    freeReplyObject(rep);
  drop(r);
  return -1;
}

/* Asks sentinel `i` where the primary is. 0 with host/port; 1 when there is
 * no sentinel `i`; -1 with the reason in why. */
static int ask_sentinel(struct sortie_redis *r, int i, char *host, size_t hn, int *port, char *why,
                        size_t wn)
{
  const struct sortie_cfg *c = r->cfg;
  char shost[256];
  int sport, rc = sortie_redis_sentinel_at(c, i, shost, sizeof shost, &sport, why, wn);
  if (rc != 0)
    return rc;
  struct timeval tv = ms_tv(sortie_redis_sentinel_timeout_ms(c));
  redisContext *s = redisConnectWithTimeout(shost, sport, tv);
  if (s == NULL || s->err) {
    snprintf(why, wn, "sentinel %.64s:%d: %.120s", shost, sport, s ? s->errstr : "out of memory");
    if (s)
      redisFree(s);
    return -1;
  }
  redisSetTimeout(s, tv);
  const char *av[3];
  int ac = sortie_redis_sentinel_ask(c, av);
  redisReply *rep = redisCommandArgv(s, ac, av, NULL);
  char sub[160];
  rc = sortie_redis_sentinel_answer(rep, host, hn, port, sub, sizeof sub);
  if (rc < 0)
    snprintf(why, wn, "sentinel %.64s:%d: master '%.63s': %.100s", shost, sport,
             c->redis_master_name, rep ? sub : s->errstr);
  if (rep)
    freeReplyObject(rep);
  redisFree(s);
  return rc;
}

/* The primary through Sentinel: each sentinel in turn, from the one that
 * answered last, names it; the first that names a server whose ROLE is
 * master wins. */
static int connect_sentinel(struct sortie_redis *r)
{
  char why[256] = "redis.sentinels is empty";
  int n = sortie_redis_sentinel_count(r->cfg);
  for (int k = 0; k < n; k++) {
    int i = (r->sentinel_first + k) % n;
    char host[256];
    int port;
    if (ask_sentinel(r, i, host, sizeof host, &port, why, sizeof why) != 0)
      continue;
    if (connect_to(r, host, port) < 0) {
      snprintf(why, sizeof why, "%.200s (named by sentinel %d)", r->err, i + 1);
      continue;
    }
    redisReply *rep = redisCommand(r->ctx, "ROLE");
    char sub[160];
    int ok = sortie_redis_role_master(rep, sub, sizeof sub);
    if (rep)
      freeReplyObject(rep);
    if (ok) {
      r->sentinel_first = i;
      return 0;
    }
    /* a stale sentinel, or a failover under way: ask the next one */
    snprintf(why, sizeof why, "%.64s:%d named by sentinel %d is not the primary: %.120s", host,
             port, i + 1, sub);
    drop(r);
  }
  snprintf(r->err, sizeof r->err, "no primary through Sentinel: %s", why);
  return -1;
}

static int connect_now(struct sortie_redis *r)
{
  const struct sortie_cfg *c = r->cfg;
  if (sortie_redis_use_sentinel(c))
    return connect_sentinel(r);
  return connect_to(r, c->redis_socket[0] ? NULL : c->redis_host, c->redis_port);
}

/* A connection that Redis closed (restart, timeout) shows as readable with EOF
 * or as an error before we send anything: then replacing it is always safe. */
static int looks_dead(redisContext *ctx)
{
  if (ctx->err)
    return 1;
  /* one syscall: a healthy idle connection has nothing to read (EAGAIN) */
  char ch;
  ssize_t n = recv(ctx->fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

int sortie_redis_outcome_unknown(const struct sortie_redis *r)
{
  return r->unknown;
}

static const char *ctx_errstr(const redisContext *ctx)
{
  return ctx->errstr[0] ? ctx->errstr : "I/O error";
}

/* Writes the command in ctx's output buffer. When a write fails, Redis has at
 * most a part of the command before the connection closes (drop()), and Redis
 * runs no command it has not read whole: the command did not run. */
static int send_all(redisContext *ctx)
{
  int done = 0;
  while (!done)
    if (redisBufferWrite(ctx, &done) == REDIS_ERR)
      return -1;
  return 0;
}

sortie_reply *sortie_redis_cmd(struct sortie_redis *r, int flags, int argc, const char **argv,
                               const size_t *lens)
{
  r->unknown = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    if (r->ctx && looks_dead(r->ctx))
      drop(r);
    if (r->ctx == NULL && connect_now(r) < 0)
      return NULL;
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK) {
      snprintf(r->err, sizeof r->err, "redis: %s", ctx_errstr(r->ctx));
      drop(r);
      return NULL;
    }
    if (send_all(r->ctx) < 0) {
      /* never ran: sending it again is safe for any command */
      snprintf(r->err, sizeof r->err, "redis: sending: %s", ctx_errstr(r->ctx));
      drop(r);
      continue;
    }
    void *rep = NULL;
    if (redisGetReply(r->ctx, &rep) == REDIS_OK && rep)
      return rep;
    snprintf(r->err, sizeof r->err, "redis: no reply: %s", ctx_errstr(r->ctx));
    drop(r);
    if (!(flags & SORTIE_REDIS_IDEMPOTENT)) {
      r->unknown = 1; /* Redis may have run it, or may run it still */
      break;
    }
  }
  return NULL;
}

int sortie_redis_wait(struct sortie_redis *r, int replicas, int timeout_ms)
{
  r->unknown = 0;
  if (r->ctx == NULL) {
    snprintf(r->err, sizeof r->err, "redis WAIT: the connection that wrote is gone");
    return -1;
  }
  /* Redis answers WAIT by timeout_ms: read for that long plus the usual timeout */
  long t = (long)timeout_ms + r->cfg->redis_timeout_ms, d = r->cfg->redis_timeout_ms;
  struct timeval tv = {t / 1000, (t % 1000) * 1000}, dflt = {d / 1000, (d % 1000) * 1000};
  redisSetTimeout(r->ctx, tv);
  redisReply *rep = redisCommand(r->ctx, "WAIT %d %d", replicas, timeout_ms);
  if (rep == NULL) {
    snprintf(r->err, sizeof r->err, "redis WAIT: %s", ctx_errstr(r->ctx));
    drop(r);
    return -1;
  }
  redisSetTimeout(r->ctx, dflt);
  int got = -1;
  if (rep->type == REDIS_REPLY_INTEGER)
    got = (int)rep->integer;
  else
    snprintf(r->err, sizeof r->err, "redis WAIT: %s",
             rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
  freeReplyObject(rep);
  return got;
}

sortie_reply *sortie_redis_script(struct sortie_redis *r, enum sortie_lua s, int flags, int argc,
                                  const char **argv, const size_t *lens)
{
  /* GET /api/events passes 5 + up to 64 channels */
  enum { FIXED = SORTIE_SCRIPT_HEAD, MOST = 80 };
  const char *av[FIXED + MOST];
  size_t al[FIXED + MOST];
  if (argc > MOST) {
    r->unknown = 0;
    snprintf(r->err, sizeof r->err, "too many script arguments");
    return NULL;
  }
  sortie_script_head(av, al, &r->env, r->cfg, s, 0);
  for (int i = 0; i < argc; i++) {
    av[FIXED + i] = argv[i];
    al[FIXED + i] = lens ? lens[i] : strlen(argv[i]);
  }
  redisReply *rep = (redisReply *)sortie_redis_cmd(r, flags, FIXED + argc, av, al);
  if (sortie_redis_noscript(rep)) {
    freeReplyObject(rep);
    sortie_script_head(av, al, &r->env, r->cfg, s, 1);
    rep = (redisReply *)sortie_redis_cmd(r, flags, FIXED + argc, av, al);
  }
  if (sortie_redis_readonly(rep)) {
    /* a demoted primary (a failover under way, or one this connection
     * missed): the script wrote nothing; the next call finds the primary */
    snprintf(r->err, sizeof r->err, "redis: script %s refused by a replica (READONLY)",
             sortie_lua_name[s]);
    freeReplyObject(rep);
    drop(r);
    return NULL;
  }
  if (rep && rep->type == REDIS_REPLY_ERROR)
    LOG_ERROR("redis", "script %s failed: %s", sortie_lua_name[s], rep->str);
  return (sortie_reply *)rep;
}

void sortie_reply_free(sortie_reply *rep)
{
  if (rep)
    freeReplyObject(rep);
}

enum sortie_reply_type sortie_reply_type(const sortie_reply *rep)
{
  return (enum sortie_reply_type)((const redisReply *)rep)->type;
}

const char *sortie_reply_str(const sortie_reply *rep, size_t *len)
{
  const redisReply *x = (const redisReply *)rep;
  if (x->type != REDIS_REPLY_STRING && x->type != REDIS_REPLY_STATUS &&
      x->type != REDIS_REPLY_ERROR) {
    if (len)
      *len = 0;
    return NULL;
  }
  if (len)
    *len = x->len;
  return x->str;
}

long long sortie_reply_int(const sortie_reply *rep)
{
  return ((const redisReply *)rep)->integer;
}

size_t sortie_reply_len(const sortie_reply *rep)
{
  const redisReply *x = (const redisReply *)rep;
  return x->type == REDIS_REPLY_ARRAY ? x->elements : 0;
}

const sortie_reply *sortie_reply_at(const sortie_reply *rep, size_t i)
{
  const redisReply *x = (const redisReply *)rep;
  if (x->type != REDIS_REPLY_ARRAY || i >= x->elements)
    return NULL;
  return (const sortie_reply *)x->element[i];
}
