/* An event loop object: one epoll set, a min-heap of one-shot timers, and a
 * list of end-of-turn hooks where modules do their deferred work (flushing
 * queues, freeing what was closed, batching commands). One per worker
 * process; nothing in it is global, so a unit test makes its own and turns it
 * by hand (sortie_loop_turn).
 *
 * Ownership: the loop never owns the sortie_io or sortie_timer structs it is
 * given; they are embedded in their owners, which must remove them (io_del,
 * timer_stop) before freeing them. */
#ifndef SORTIE_LOOP_H
#define SORTIE_LOOP_H

#include <signal.h>
#include <stdint.h>

struct sortie_loop;

struct sortie_io;
typedef void sortie_io_cb(struct sortie_io *io, uint32_t events);

/* A file descriptor in a loop. `events` are the EPOLL* bits armed now. */
struct sortie_io {
  int fd;
  uint32_t events;
  sortie_io_cb *cb;
};

struct sortie_timer;
typedef void sortie_timer_cb(struct sortie_timer *t);

/* A one-shot timer; `slot` is 0 when it is not armed. */
struct sortie_timer {
  uint64_t at;
  uint32_t slot;
  sortie_timer_cb *cb;
  struct sortie_loop *loop;
};

typedef void sortie_turn_cb(void *ud);

/** A new loop, or NULL when epoll cannot be had (errno set). */
struct sortie_loop *sortie_loop_new(void);
/** Frees the loop (its fds and timers must be gone already). */
void sortie_loop_free(struct sortie_loop *l);

/** Watches io->fd for `events` (EPOLLIN...) and calls io->cb; 0 or -1. */
int sortie_io_add(struct sortie_loop *l, struct sortie_io *io, uint32_t events);
int sortie_io_mod(struct sortie_loop *l, struct sortie_io *io, uint32_t events);
/** Stops watching (the fd is not closed); safe on an io never added. (An io
 * does not point back at its loop: a streaming client holds one, and every
 * byte of an idle client counts.) */
void sortie_io_del(struct sortie_loop *l, struct sortie_io *io);

/** Prepares a timer of loop `l` (no allocation). */
void sortie_timer_init(struct sortie_timer *t, struct sortie_loop *l, sortie_timer_cb *cb);
/** (Re)arms to fire once, `delay_ms` from now. */
void sortie_timer_arm(struct sortie_timer *t, uint64_t delay_ms);
void sortie_timer_stop(struct sortie_timer *t);

/** Registers fn(ud) to run at the end of every turn, after the events and
 * timers of that turn, in the order of registration. */
void sortie_loop_on_turn_end(struct sortie_loop *l, sortie_turn_cb *fn, void *ud);
/** Removes a hook registered with the same fn and ud (not from inside a hook). */
void sortie_loop_off_turn_end(struct sortie_loop *l, sortie_turn_cb *fn, void *ud);

/** Monotonic milliseconds, read once per turn. */
uint64_t sortie_loop_now(const struct sortie_loop *l);
/** Wall-clock milliseconds since the epoch (event ids are on this clock). */
uint64_t sortie_wall_ms(void);

/** One turn: waits at most `max_wait_ms` (-1: until the next timer) for
 * events, runs them, the due timers, then the end-of-turn hooks. 0, or -1
 * when epoll failed. */
int sortie_loop_turn(struct sortie_loop *l, int max_wait_ms);
/** Turns until *stop is set (or epoll fails). */
void sortie_loop_run(struct sortie_loop *l, volatile sig_atomic_t *stop);
/** Runs the end-of-turn hooks now, outside a turn. */
void sortie_loop_end_turn(struct sortie_loop *l);

#endif
