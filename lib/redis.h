/* Redis for the FastCGI programs and the tools: a blocking connection with
 * timeouts, one safe reconnect, and the Lua scripts run by EVALSHA (loaded
 * again on NOSCRIPT). Callers never see hiredis: replies are `sortie_reply`,
 * read through the accessors below. lib/aredis.h is the asynchronous client,
 * for an event loop (sortie-pushd). */
#ifndef SORTIE_REDIS_H
#define SORTIE_REDIS_H

#include <stddef.h>

#include "cfg.h"
#include "sortie_lua.h"

struct sortie_redis;
typedef struct sortie_reply sortie_reply;

enum sortie_reply_type {
  SORTIE_REPLY_STRING = 1,
  SORTIE_REPLY_ARRAY = 2,
  SORTIE_REPLY_INTEGER = 3,
  SORTIE_REPLY_NIL = 4,
  SORTIE_REPLY_STATUS = 5,
  SORTIE_REPLY_ERROR = 6,
};

/** A connection that connects on first use. Keeps a pointer to `c`, which must
 * outlive it. Never NULL. */
struct sortie_redis *sortie_redis_new(const struct sortie_cfg *c);
void sortie_redis_free(struct sortie_redis *r);
/** Why the last call returned NULL (static or owned by `r`; valid until the next
 * call). */
const char *sortie_redis_errstr(const struct sortie_redis *r);

/** Flags for the calls below. */
#define SORTIE_REDIS_IDEMPOTENT 1 /* safe to send again if the reply was lost */

/** Sends one command (argv/lens: `argc` byte strings, borrowed). A connection
 * found dead *before* sending is replaced first; after sending, the command is
 * sent again on a new connection only if `flags` says it is idempotent, since
 * a lost reply may hide a write that happened. Returns the reply (the caller
 * frees it with sortie_reply_free) or NULL if Redis could not be reached (see
 * sortie_redis_errstr). An error reply is a reply, not NULL. */
sortie_reply *sortie_redis_cmd(struct sortie_redis *r, int flags, int argc, const char **argv,
                               const size_t *lens);
/** After a call above returned NULL: 1 if its command had been sent and no
 * reply came in time (it was not idempotent, so it was not sent again): Redis
 * may have run it, or may run it still. 0 if it never reached Redis whole (no
 * connection, or the write failed), so nothing ran. */
int sortie_redis_outcome_unknown(const struct sortie_redis *r);
/** WAIT: blocks until `replicas` replicas have acknowledged every write made on
 * this connection so far, or `timeout_ms` (> 0) passed. Returns how many did,
 * or -1 (no reply, an error reply, or the connection that wrote is gone: see
 * sortie_redis_errstr). Never reconnects: WAIT on another connection would
 * vouch for nothing. */
int sortie_redis_wait(struct sortie_redis *r, int replicas, int timeout_ms);
/** Runs script `s` with no KEYS and `argc` arguments, after the three common
 * ones (prefix, history length, starting equity) that this function adds. Uses
 * EVALSHA; on NOSCRIPT sends the source with EVAL (which also caches it). A
 * READONLY refusal (the server is a replica now: nothing was written) returns
 * NULL and drops the connection, so that the next call finds the primary. */
sortie_reply *sortie_redis_script(struct sortie_redis *r, enum sortie_lua s, int flags, int argc,
                                  const char **argv, const size_t *lens);

void sortie_reply_free(sortie_reply *rep);
enum sortie_reply_type sortie_reply_type(const sortie_reply *rep);
/** String, status or error text (not NUL-safe: use *len), NULL for other types. */
const char *sortie_reply_str(const sortie_reply *rep, size_t *len);
long long sortie_reply_int(const sortie_reply *rep);
size_t sortie_reply_len(const sortie_reply *rep);
/** Element i of an array reply (borrowed from the array), NULL if out of range. */
const sortie_reply *sortie_reply_at(const sortie_reply *rep, size_t i);

/** The 40-hex SHA-1 of a script's source (as Redis names it). */
const char *sortie_redis_script_sha(enum sortie_lua s);

#endif
