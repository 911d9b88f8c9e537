/* Blocking Redis access over hiredis. */
#include "redis.h"
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
  char equity_units[32]; /* trading.equity_start in 10^-8 units, for the scripts */
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

struct sortie_redis *sortie_redis_new(const struct sortie_cfg *c)
{
  struct sortie_redis *r = sortie_xcalloc(1, sizeof *r);
  r->cfg = c;
  struct sortie_dec d, u;
  if (sortie_dec_parse(c->trading_equity_start, strlen(c->trading_equity_start), &d) < 0 ||
      sortie_dec_rescale(d, SORTIE_DEC_MAX_SCALE, &u) < 0) {
    LOG_WARN("redis", "trading.equity_start '%s' is not a decimal; using 0",
             c->trading_equity_start);
    u.units = 0;
  }
  snprintf(r->equity_units, sizeof r->equity_units, "%lld", (long long)u.units);
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
  if (c->redis_password && c->redis_password[0]) {
    rep = redisCommand(r->ctx, "AUTH %s", c->redis_password);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
      snprintf(r->err, sizeof r->err, "redis AUTH failed: %s",
               rep ? rep->str : r->ctx->errstr);
      goto fail;
    }
    freeReplyObject(rep);
  }
  if (c->redis_db) {
    rep = redisCommand(r->ctx, "SELECT %d", c->redis_db);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
      snprintf(r->err, sizeof r->err, "redis SELECT failed: %s", rep ? rep->str : r->ctx->errstr);
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

sortie_reply *sortie_redis_cmd(struct sortie_redis *r, int flags, int argc, const char **argv,
                               const size_t *lens)
{
  for (int attempt = 0; attempt < 2; attempt++) {
    if (r->ctx && looks_dead(r->ctx))
      drop(r);
    if (r->ctx == NULL && connect_now(r) < 0)
      return NULL;
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
    if (rep)
      return (sortie_reply *)rep;
    snprintf(r->err, sizeof r->err, "redis: %s", r->ctx->errstr[0] ? r->ctx->errstr : "I/O error");
    drop(r);
    if (!(flags & SORTIE_REDIS_IDEMPOTENT))
      break;
  }
  return NULL;
}

sortie_reply *sortie_redis_script(struct sortie_redis *r, enum sortie_lua s, int flags, int argc,
                                  const char **argv, const size_t *lens)
{
  enum { FIXED = 6 }; /* EVALSHA sha 0 prefix maxlen equity */
  const char *av[FIXED + 64];
  size_t al[FIXED + 64];
  char maxlen[16];
  if (argc > 64) {
    snprintf(r->err, sizeof r->err, "too many script arguments");
    return NULL;
  }
  snprintf(maxlen, sizeof maxlen, "%d", r->cfg->history_maxlen);
  av[0] = "EVALSHA";
  av[1] = sortie_redis_script_sha(s);
  av[2] = "0";
  av[3] = r->cfg->redis_prefix;
  av[4] = maxlen;
  av[5] = r->equity_units;
  for (int i = 0; i < FIXED; i++)
    al[i] = strlen(av[i]);
  for (int i = 0; i < argc; i++) {
    av[FIXED + i] = argv[i];
    al[FIXED + i] = lens ? lens[i] : strlen(argv[i]);
  }
  redisReply *rep = (redisReply *)sortie_redis_cmd(r, flags, FIXED + argc, av, al);
  if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
    freeReplyObject(rep);
    av[0] = "EVAL";
    al[0] = 4;
    av[1] = sortie_lua_src[s];
    al[1] = strlen(av[1]);
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
