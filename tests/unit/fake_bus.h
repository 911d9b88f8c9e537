/* A scripted fake of pushd's Redis side (pushd/bus.h) for the unit tests of
 * channels and resume: no Redis, no sockets, no sleeps. It keeps what Redis
 * would keep (streams of events per channel, the set of subscribed
 * channels) and what the two links would carry, and the test decides when
 * each thing arrives:
 *
 *  - the subscriber link is a FIFO of items (confirmations and messages),
 *    in the order Redis would send them; fake_pump_sub hands them
 *    to the daemon one by one;
 *  - history reads wait on the command link until fake_answer_read answers
 *    one, from the store as it is at that moment (as Redis runs a script
 *    when it gets to it);
 *  - a link can be dropped and brought back; what was in flight on it is
 *    lost, as on a real connection. */
#ifndef SORTIE_FAKE_BUS_H
#define SORTIE_FAKE_BUS_H

#include <stddef.h>
#include <stdint.h>

/** Empties everything; both links up. */
void fake_reset(void);

/** Publishes an event on `channel` (type "t"): stored, and queued on the
 * subscriber link if Redis has the channel subscribed. Returns its id's
 * sequence number (ids are "1000-<seq>", increasing from 1). */
uint64_t fake_publish(const char *channel);
/** Trims `channel`: its history no longer reaches back past id seq, so a
 * read from before it reports a reset for the channel. */
void fake_trim(const char *channel, uint64_t before_seq);

/** Items waiting on the subscriber link. */
size_t fake_sub_queued(void);
/** Hands the next n items (or all, n = 0) to the daemon; how many went. */
size_t fake_pump_sub(size_t n);
/** Reads waiting on the command link. */
size_t fake_reads_queued(void);
/** Runs read i in Redis now (its answer is fixed from the store as it is)
 * without handing the answer over yet; 0, or -1 if none. */
int fake_exec_read(size_t i);
/** Whether read i has run. */
int fake_read_ran(size_t i);
/** Answers read i (0 = oldest): runs it first if it has not run; 0, or -1. */
int fake_answer_read(size_t i);
/** The `from` and channel count of waiting read i (for checks). */
const char *fake_read_from(size_t i);
uint32_t fake_read_nchannels(size_t i);
/** The page size (events at most) read i asked for. */
uint32_t fake_read_limit(size_t i);
/** Reads answered so far. */
uint64_t fake_reads_done(void);
/** Pumps the subscriber link and answers reads until both are empty (and
 * at most `limit` steps); the number of steps taken. */
size_t fake_settle(size_t limit);

/** Drops / restores a link, telling the daemon as aredis would. */
void fake_sub_down(void);
void fake_sub_up(void);
void fake_cmd_down(void);
void fake_cmd_up(void);

/** Whether Redis has `channel` subscribed now. */
int fake_subscribed(const char *channel);
/** SUBSCRIBE commands sent so far. */
uint64_t fake_subscribes(void);

#endif
