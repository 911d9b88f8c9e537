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

#endif
