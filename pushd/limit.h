/* The per-user connection limit (push.max_conn_per_user), counted in Redis
 * across every daemon (lib/lua/conns.lua): a stream takes a slot when it
 * opens, gives it back when it closes, and renews it every
 * push.slot_renew_s (slots expire in 180 s, so a daemon that dies does not
 * hold them for ever). Renewals and give-backs go in batches, one script
 * call for up to LIMIT_BATCH slots. */
#ifndef SORTIE_PUSHD_LIMIT_H
#define SORTIE_PUSHD_LIMIT_H

#include <stdint.h>

#include "bus.h"

/** The limit to apply (kept). */
void pd_limit_init(int max_per_user);
/** Asks for a slot for connection `serial` of `user` (copied): cb(ud,
 * allowed, failed) (failed: Redis did not answer, and the stream is
 * allowed). cb may run before this returns, when Redis is away. */
void pd_limit_open(const char *user, uint64_t serial, pd_conns_cb *cb, void *ud);
/** Gives the slot back; renews it. Both are queued, and sent with the
 * batch they fill or at pd_limit_flush() (at the end of each loop turn). */
void pd_limit_close(const char *user, uint64_t serial);
void pd_limit_refresh(const char *user, uint64_t serial);
void pd_limit_flush(void);
#define LIMIT_BATCH 64
/** The limit. */
int pd_limit_max(void);

#endif
