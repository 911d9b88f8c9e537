/* Resume jobs: bringing subscriptions up to date (a reconnect with a
 * cursor, a WebSocket subscribe with `since`, a new subscription from now,
 * the catch-up after the subscriber link to Redis was lost). History first,
 * then what came live meanwhile; at the seam no gap and no duplicate.
 *
 * The seam: a job waits until every channel it covers is subscribed in
 * Redis, then reads history after its id (events.lua, in pages of at most
 * 500, fewer the more channels a read covers: about 2,000 entries a read).
 * Live events for its subscriptions that arrive meanwhile wait in the job.
 * When history is exhausted at id E (every event up to E was in it), the
 * waiting events after each subscription's last id go out, in order, and the
 * subscriptions are live. A job from "now" first reads the newest id Redis
 * has given (no channel needs to be in place for that) and is from then on
 * a job from that id: what was published after it is in history or still
 * to come live, whatever the links do meanwhile.
 *
 * Flow control: history goes out only while the client's queue is under
 * half of push.outbuf_max; the rest of a page is read again, from the last
 * event sent, once the queue has drained. Live events waiting in a job count
 * against push.outbuf_max too.
 *
 * Turns: at most push.history_reads reads are out in Redis at once per
 * worker, and one per client; a job ready to read waits its turn on a queue,
 * in order, and goes to its back after each page. A job whose subscriptions
 * all leave while it waits there is freed and never reaches Redis.
 *
 * Cost: a job waits for its channels by a count (one step per subscription
 * when Redis confirms a channel), for Redis on a list (one step per job
 * when it comes back), for room on its client: never by rescanning
 * everything that waits. pd_resume_steps() counts the steps, for tests. */
#ifndef SORTIE_PUSHD_RESUME_H
#define SORTIE_PUSHD_RESUME_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "client.h"

/* History reads out at once in a worker, when push.history_reads is 0. */
#define PD_RESUME_READS 4

/** Registers with the channel layer; call once before any job. At most
 * `reads` history reads are out at once (0: PD_RESUME_READS), and at most
 * one per client; the others wait on a queue, in order. */
void pd_resume_init(uint32_t reads);

/** Brings n subscriptions of c (borrowed array) up to date after event id
 * `from` (copied; "" = from now). A subscription already in a job leaves it. With
 * n == 0 the client is told it is caught up at `from` at once. The client
 * hears PD_CTL_SUBSCRIBED when the channels are in place in Redis, PD_CTL_RESET
 * for a channel whose history is gone, the events, then PD_CTL_CAUGHT_UP. */
void pd_resume_start(struct pd_client *c, struct pd_sub **subs, uint32_t n, const char *from);
/** Ends a subscription: takes it out of its job (a job left with none is
 * freed, or cancelled while its read is out), then removes it. */
void pd_resume_unsubscribe(struct pd_sub *s);
/** Whether the client was told s is in place: s is live, or its job
 * announced it. */
int pd_resume_announced(const struct pd_sub *s);

/** The client's queue drained: its jobs that stopped for room go on. */
void pd_resume_on_drain(struct pd_client *c);

/* From Redis (wired by main.c to bus.h's callbacks). */
void pd_resume_on_subscribed(const char *channel, size_t clen);
void pd_resume_on_down(void);
void pd_resume_on_up(void);
void pd_resume_on_cmd_up(void);
/** Once a second: jobs that wait for Redis are tried again. */
void pd_resume_tick(void);

/** Steps taken so far (jobs and subscriptions visited by the waiting
 * machinery), and jobs alive now: for tests. */
uint64_t pd_resume_steps(void);
uint32_t pd_resume_jobs(void);
/** History reads out in Redis now, and jobs waiting for a read slot. */
uint32_t pd_resume_reads_out(void);
uint32_t pd_resume_reads_queued(void);

#endif
