/* An asynchronous Redis connection in a sortie_loop, for sortie-pushd: hiredis
 * behind Sortie's own small API, the way lib/redis.h hides it from the
 * blocking programs. One object is one connection that connects by itself,
 * sends AUTH/SELECT first, and reconnects with backoff (100 ms doubling to
 * 5 s) whenever it is lost. It reports upward only through the callbacks it
 * is given; it knows no channel table and no client.
 *
 * Two uses, usually on two connections: pub/sub (subscribe, unsubscribe) and
 * scripts (EVALSHA, EVAL on NOSCRIPT). Channel names are
 * Sortie's ("mission:x"); their Redis names are made here and nowhere else.
 *
 * Callbacks: every one may be NULL, and none is called from inside a call the
 * user made. A reply callback of a command that was sent runs exactly once:
 * with the reply, or with NULL when it failed or the connection was lost.
 * A connection on which script calls wait redis.timeout_ms without any reply
 * (Redis stopped or stalled) counts as lost: dropped, and made again. */
#ifndef SORTIE_AREDIS_H
#define SORTIE_AREDIS_H

#include <stddef.h>

#include "cfg.h"
#include "loop.h"
#include "redis.h"

struct sortie_aredis;

struct sortie_aredis_cbs {
  /* the connection is ready (Redis answered, after AUTH/SELECT); `again` is 1
   * after a loss */
  void (*up)(void *ud, int again);
  /* the connection was lost; what was pending has been answered NULL before
   * this is called */
  void (*down)(void *ud);
  /* pub/sub: a message on a Sortie channel (bytes borrowed for the call) */
  void (*message)(void *ud, const char *channel, size_t clen, const char *msg, size_t mlen);
  /* pub/sub: Redis confirmed SUBSCRIBE / UNSUBSCRIBE of a channel */
  void (*subscribed)(void *ud, const char *channel, size_t clen);
  void (*unsubscribed)(void *ud, const char *channel, size_t clen);
};

/** A connection named `name` (for logs; static) to the Redis of `cfg`, which
 * must outlive it. Connecting starts at once. Never NULL. */
struct sortie_aredis *sortie_aredis_new(struct sortie_loop *l, const struct sortie_cfg *cfg,
                                        const char *name, const struct sortie_aredis_cbs *cbs,
                                        void *ud);
/** Disconnects (pending replies get NULL, now) and frees; not from inside a
 * callback of this connection. up/down/message callbacks do not run again. */
void sortie_aredis_free(struct sortie_aredis *r);
/** 1 while the connection is ready. */
int sortie_aredis_up(const struct sortie_aredis *r);

/** SUBSCRIBE / UNSUBSCRIBE one Sortie channel (`channel` is copied). 0, or -1
 * when the connection is not ready or hiredis refused (for UNSUBSCRIBE: not
 * subscribed to anything). A SUBSCRIBE refused on a ready connection leaves
 * it in a state nobody can reason about: the connection is dropped and made
 * again (down, then up). */
int sortie_aredis_subscribe(struct sortie_aredis *r, const char *channel);
int sortie_aredis_unsubscribe(struct sortie_aredis *r, const char *channel);

/** A PING on an idle connection that is not subscribed to anything, so that
 * a Redis that stopped answering is noticed (the reply deadline above) even
 * when nothing else is asked: 0, or -1 when not sent (not ready, or calls
 * are out already, which the deadline watches). */
int sortie_aredis_ping(struct sortie_aredis *r);

/** Script calls sent and not yet answered (a stopping daemon waits for
 * these: a connection-limit slot given back must reach Redis). */
unsigned sortie_aredis_pending(const struct sortie_aredis *r);

typedef void sortie_aredis_reply_cb(void *ud, const sortie_reply *reply);

/** Runs a script with the common head (lib/redis_private.h) and `argc`
 * arguments (copied). The reply (borrowed for the call) goes to cb, NULL when
 * it failed: connection lost, or an error reply (logged). cb may be NULL.
 * Returns 0; or -1 when nothing was sent (the connection is not ready), and
 * then cb is not called. */
int sortie_aredis_script(struct sortie_aredis *r, enum sortie_lua s, int argc,
                         const char *const *argv, sortie_aredis_reply_cb *cb, void *ud);

#endif
