/* Channels and subscriptions: which clients of this worker read which
 * channel, the reference-counted Redis SUBSCRIBE behind them (through
 * bus.h), and the fan-out of a live event: encoded once per transport, the
 * same bytes queued to every subscriber.
 *
 * A subscription that is being brought up to date belongs to a resume job
 * (resume.h): its live events go to the `held` hook the layer above gave,
 * not to the client. This layer knows no job beyond that pointer. */
#ifndef SORTIE_PUSHD_CHANNEL_H
#define SORTIE_PUSHD_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "event.h"

struct pd_channel;
struct pd_job;

/* A subscription: one client in one channel. */
struct pd_sub {
  struct pd_client *client;
  struct pd_channel *ch;
  uint32_t ch_idx;      /* its index in the channel's list */
  struct pd_evid last;  /* the id of the last event this client got here */
  /* the resume layer's (resume.c): */
  struct pd_job *job;   /* resuming; NULL once live */
  uint8_t reset_sent;   /* this job already told the client "reset" here */
  uint8_t waiting;      /* counted in its job's wait for this channel */
};

/** Called with a live event for a subscription whose `job` is set (e is
 * borrowed: ref it to keep it). */
typedef void pd_held_cb(struct pd_sub *s, struct pd_event *e);
void pd_channels_init(pd_held_cb *held);

/** Told of each subscription added (added 1) and removed (0): its client
 * and channel name, borrowed for the call; it must not add or remove
 * subscriptions. The presence count's feed (main.c wires it to presence.h
 * when push.presence is on); NULL: nobody. */
typedef void pd_watch_cb(const struct pd_client *c, const char *channel, int added);
void pd_channels_watch(pd_watch_cb *cb);

/** Subscribes c to channel `name` (valid; the caller checked rights; the
 * name is copied). Returns the new subscription, or the existing one: it
 * belongs to the channel layer, and lives until pd_sub_remove. */
struct pd_sub *pd_sub_add(struct pd_client *c, const char *name);
/** Removes a subscription (and the Redis subscription with the channel's
 * last one). It must be in no job: the layers above call
 * pd_resume_unsubscribe, which takes it out of its job first. */
void pd_sub_remove(struct pd_sub *s);
/** A client's subscription to `name`, or NULL. */
struct pd_sub *pd_sub_find(const struct pd_client *c, const char *name);
/** Delivers e to s if it is newer than s->last (moves s->last); 1 if it
 * did. May close the client (slow consumer): check c->conn.closing. */
int pd_sub_deliver(struct pd_sub *s, struct pd_event *e);

const char *pd_channel_name(const struct pd_channel *ch);
/** Whether Redis has confirmed the channel's subscription. */
int pd_channel_ready(const struct pd_channel *ch);
/** The subscriptions of a channel (borrowed; valid until one is added or
 * removed). */
struct pd_sub *const *pd_channel_subs(const struct pd_channel *ch, uint32_t *n);
/** Calls fn for every channel (fn must not add or remove subscriptions). */
void pd_channels_each(void (*fn)(struct pd_channel *ch, void *ud), void *ud);
/** Channels of this worker. */
uint32_t pd_channels_count(void);

/* From Redis (wired by main.c to bus.h's callbacks, some through resume.c). */
void pd_channels_on_message(const char *name, size_t nlen, const char *env, size_t len);
/** The channel whose subscription Redis confirmed, if it waited for that
 * (NULL otherwise). */
struct pd_channel *pd_channels_on_subscribed(const char *name, size_t nlen);
void pd_channels_on_unsubscribed(const char *name, size_t nlen);
/** The subscriber link is gone: no channel is subscribed any more. */
void pd_channels_on_down(void);
/** The link is back: SUBSCRIBE every channel again. Returns how many. */
uint32_t pd_channels_resubscribe(void);

#endif
