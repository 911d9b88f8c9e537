/* What the blocking client (redis.c) and the async one (aredis.c) share:
 * the head of every script call, the commands a new connection sends first,
 * and the name a Sortie channel has in Redis. Only lib/redis*.c include it. */
#ifndef SORTIE_REDIS_PRIVATE_H
#define SORTIE_REDIS_PRIVATE_H

#include <stddef.h>

#include "cfg.h"
#include "sortie_lua.h"

/* A script call is EVALSHA <sha> 0 <prefix> <history.maxlen> <equity units>
 * followed by the script's own arguments (see lib/lua/common.lua). */
#define SORTIE_SCRIPT_HEAD 6

/* The values of a script call's head that depend on the configuration,
 * computed once per connection. */
struct sortie_script_env {
  char maxlen[16];
  char equity[32]; /* trading.equity_start in 10^-8 units */
};

void sortie_script_env_init(struct sortie_script_env *env, const struct sortie_cfg *c);
/** Fills av/al[0..SORTIE_SCRIPT_HEAD) (pointers into env, cfg and static
 * strings: borrowed). `eval`: EVAL with the source instead of EVALSHA. */
void sortie_script_head(const char **av, size_t *al, const struct sortie_script_env *env,
                        const struct sortie_cfg *c, enum sortie_lua s, int eval);

/* The commands a new connection sends before anything else (AUTH, SELECT):
 * at most two, of two arguments each, pointing into cfg and `db`. Returns how
 * many. */
int sortie_redis_setup(const struct sortie_cfg *c, const char *av[2][2], char db[16]);

/** The Redis name of Sortie channel `name`: "<prefix>ch:<name>" into out
 * (size n); its length, or -1 when it does not fit. With name "" it is the
 * part every channel's Redis name starts with. */
int sortie_redis_channel_key(const struct sortie_cfg *c, const char *name, char *out, size_t n);

struct redisReply;
/** Whether a reply says the script is not cached (EVALSHA's NOSCRIPT error):
 * then the call is sent again with EVAL and the source. */
int sortie_redis_noscript(const struct redisReply *r);

/* Redis Sentinel (redis.sentinels, redis.master_name): both clients ask the
 * sentinels in turn for the primary's address, connect to it and check with
 * ROLE that it is one (a sentinel's view may be stale). */

/** Whether redis.sentinels is set: then redis.host, redis.port and
 * redis.socket are not used. */
int sortie_redis_use_sentinel(const struct sortie_cfg *c);
/** How long a sentinel gets to connect and to answer: redis.timeout_ms, at
 * most 500 ms (one silent sentinel must not eat a request's time). */
int sortie_redis_sentinel_timeout_ms(const struct sortie_cfg *c);
/** The address of sentinel `i` (from 0) of redis.sentinels ("host:port,
 * host:port", spaces allowed) into host (size hn) and *port. 0; 1 when there
 * is no sentinel `i`; -1 when entry `i` is not host:port (err says so). */
int sortie_redis_sentinel_at(const struct sortie_cfg *c, int i, char *host, size_t hn, int *port,
                             char *err, size_t errlen);
/** How many entries redis.sentinels has. */
int sortie_redis_sentinel_count(const struct sortie_cfg *c);
/** The argv of SENTINEL get-master-addr-by-name <redis.master_name>
 * (pointers into cfg and static strings: borrowed). Returns 3, the argc. */
int sortie_redis_sentinel_ask(const struct sortie_cfg *c, const char *av[3]);
/** Reads the answer to that question: 0 with host (size hn) and *port; -1
 * with the reason in err (no such master: nil; an error reply; not an address). */
int sortie_redis_sentinel_answer(const struct redisReply *rep, char *host, size_t hn, int *port,
                                 char *err, size_t errlen);
/** Whether a reply to ROLE says "master" (else the reason into err). */
int sortie_redis_role_master(const struct redisReply *rep, char *err, size_t errlen);
/** Whether an error reply says the server is a read-only replica (READONLY,
 * also inside a script's error): then the connection is to a demoted
 * primary, nothing was written, and it is dropped to find the new one. */
int sortie_redis_readonly(const struct redisReply *rep);

#endif
