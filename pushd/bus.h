/* The daemon's Redis: two connections of lib/aredis.h, `sub` subscribed to
 * exactly the channels this worker's clients read, `cmd` for the history,
 * connection-limit and admin scripts. It reports upward only through the
 * callbacks main.c gives it.
 *
 * This is the seam the unit tests of channels and resume replace with a
 * scripted fake (tests/unit/fake_bus.c): everything above it reaches Redis
 * through these functions alone. */
#ifndef SORTIE_PUSHD_BUS_H
#define SORTIE_PUSHD_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "event.h"
#include "loop.h"

struct pd_bus_cbs {
  void (*message)(const char *channel, size_t clen, const char *env, size_t len);
  void (*subscribed)(const char *channel, size_t clen);
  void (*unsubscribed)(const char *channel, size_t clen);
  void (*sub_up)(void);   /* the subscriber link is ready (again) */
  void (*sub_down)(void); /* ... and lost: nothing is subscribed any more */
  void (*cmd_up)(void);   /* the command link is ready (again) */
};

/** Connects both links (retrying by themselves). cfg must outlive the bus. */
void pd_bus_start(struct sortie_loop *l, const struct sortie_cfg *cfg, int worker,
                  const struct pd_bus_cbs *cbs);
void pd_bus_stop(void);
/** 1 while the subscriber link is ready; pd_bus_cmd_up: the command link. */
int pd_bus_up(void);
int pd_bus_cmd_up(void);

/** SUBSCRIBE / UNSUBSCRIBE a channel (the name is copied): 0, or -1 when it
 * was not sent (link down, or for UNSUBSCRIBE, nothing subscribed). */
int pd_bus_subscribe(const char *channel);
int pd_bus_unsubscribe(const char *channel);

/* One page of history (lib/lua/events.lua). */
struct pd_hist {
  struct pd_event **events; /* in id order */
  uint32_t nevents;
  char **resets;            /* channels whose history after the cursor is gone */
  uint32_t nresets;
  char end[SORTIE_EVENT_ID_MAX + 1]; /* every event up to this id was in the page */
};

/** h NULL: the read failed (Redis went away). h and everything in it are
 * borrowed for the call (ref the events to keep them). */
typedef void pd_hist_cb(void *ud, const struct pd_hist *h);
/** Reads at most `limit` events after id `from` ("" = none, only the end)
 * of `n` channels (borrowed). 0, or -1 (no callback) when the link is down. */
int pd_bus_history(const char *from, const char *const *channels, uint32_t n, uint32_t limit,
                   pd_hist_cb *cb, void *ud);

/** The per-user connection limit (lib/lua/conns.lua): a slot for `conn_id`
 * of `user` (both copied). cb gets allowed, and failed = 1 when Redis did
 * not answer (then allowed is 1: fail open). */
typedef void pd_conns_cb(void *ud, int allowed, int failed);
void pd_bus_conns_open(const char *user, const char *conn_id, int limit, pd_conns_cb *cb,
                       void *ud);
/** Renews (`op` "refresh") or gives back ("close") `n` slots in one call:
 * pairs[2i] the user, pairs[2i + 1] the connection id (all copied); fire
 * and forget. */
void pd_bus_conns_batch(const char *op, unsigned n, const char *const *pairs);

/** Presence (lib/lua/presence.lua): tells Redis which users this worker
 * (`holder`) holds on which mission, and lets the script look at the
 * missions whose time came (at most `due_max`). recs holds n triples (signal
 * id, user, "1" held / "0" let go), all copied. cb(ud, ok, why): ok 1 when
 * the script ran (why, borrowed, names a mission it left alone), 0 when
 * the call failed (nothing known of its effect). Returns 0, or -1 (no
 * callback) when the command link is down. */
typedef void pd_presence_cb(void *ud, int ok, const char *why);
int pd_bus_presence(const char *holder, int ttl_ms, int debounce_ms, unsigned due_max,
                    unsigned n, const char *const *recs, pd_presence_cb *cb, void *ud);

/** Script calls on the command link not yet answered. */
unsigned pd_bus_pending(void);
/** Once a second: an idle command link is pinged, so that a Redis that
 * stopped answering is seen as lost (and /health says so) within
 * redis.timeout_ms even when nothing else is asked of it. */
void pd_bus_tick(void);

/** Publishes this daemon's admin_stats (lib/lua/admin_stats.lua), with
 * top_watched when `presence`; the strings here and below are copied. */
void pd_bus_admin_stats(const char *connections_json, const char *daemon, int presence);
/** A line on the admin page's system log. */
void pd_bus_syslog(const char *level, const char *message);

#endif
