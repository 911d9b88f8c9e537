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

static int connect_now(struct sortie_redis *r)
{
  const struct sortie_cfg *c = r->cfg;
  struct timeval tv = {c->redis_timeout_ms / 1000, (c->redis_timeout_ms % 1000) * 1000};
  drop(r);
  if (c->redis_socket[0])
    r->ctx = redisConnectUnixWithTimeout(c->redis_socket, tv);
  else
    r->ctx = redisConnectWithTimeout(c->redis_host, c->redis_port, tv);
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
  enum { FIXED = SORTIE_SCRIPT_HEAD };
  const char *av[FIXED + 64];
  size_t al[FIXED + 64];
  if (argc > 64) {
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
