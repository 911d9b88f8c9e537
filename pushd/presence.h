/* Presence: the distinct users watching each mission, counted in Redis
 * across every worker and daemon (lib/lua/presence.lua; docs/PUSHD.md,
 * "Presence"). Beside limit.h, above the channel layer (which reports each
 * subscription added or removed through the callback main.c wires to
 * pd_presence_watch) and the bus.
 *
 * A worker keeps one entry per (mission, user) it holds, with the number of
 * its subscriptions behind it: a second tab of a user already held here
 * changes a number and touches nothing else. Redis hears only of entries
 * that appear, disappear (after lingering a tick: a long-poll answered and
 * asked again, or a page reloaded, does not come and go in Redis), or are
 * due for renewal (every third of push.presence_ttl_s), in batched script
 * calls once a tick (PD_PRESENCE_TICK_MS). An entry let go stays until Redis
 * confirmed it; a failed call is sent again; when the command link comes
 * back, every entry is told again (Redis may have lost them). */
#ifndef SORTIE_PUSHD_PRESENCE_H
#define SORTIE_PUSHD_PRESENCE_H

#include <stdint.h>

#include "cfg.h"
#include "client.h"

#define PD_PRESENCE_TICK_MS 500
/* holdings per script call, and calls per tick at most (the rest wait) */
#define PD_PRESENCE_BATCH 128
#define PD_PRESENCE_CALLS 32

/** Turns presence on with cfg's TTL and debounce (kept); off until then. */
void pd_presence_init(const struct sortie_cfg *cfg);
/** The channel layer's pd_watch_cb: c subscribed to (added 1) or left
 * (0) `channel`; only mission:{id} channels count. */
void pd_presence_watch(const struct pd_client *c, const char *channel, int added);
/** Every PD_PRESENCE_TICK_MS: renewals that are due, then the batch of
 * changes, and a look at the missions whose time came (at least one call). */
void pd_presence_tick(uint64_t now_ms);
/** The command link is up (again): every entry is told to Redis again. */
void pd_presence_on_cmd_up(void);
/** The worker stops (its clients gone): every entry let go at once. */
void pd_presence_stop(uint64_t now_ms);
/** Entries held now (for tests and logs). */
uint32_t pd_presence_entries(void);

#endif
