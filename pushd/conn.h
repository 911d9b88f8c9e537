/* The socket layer: a streaming client's descriptor and its capped outbound
 * queue of shared chunks, written with one writev per connection per loop
 * turn (so what is queued in one turn goes out together), and close-later:
 * a connection is closed at once (its descriptor, its queue) but freed only
 * at the end of the loop turn, never inside its own callback.
 *
 * It knows no channel, no Redis and no transport: it reports upward only
 * through the pd_conn_ops its owner gives it. A pd_conn is embedded in its
 * owner (the client, client.h); its fields are this layer's own. */
#ifndef SORTIE_PUSHD_CONN_H
#define SORTIE_PUSHD_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "loop.h"

struct pd_conn;

struct pd_conn_ops {
  /* the peer sent bytes or hung up (read them yourself from conn->io.fd) */
  void (*readable)(struct pd_conn *c);
  /* the queue emptied after pd_conn_want_drain was asked */
  void (*drained)(struct pd_conn *c);
  /* pd_conn_close began the teardown, for `why` (static): let go of
   * everything that refers to this connection (called once; sending is a
   * no-op from here) */
  void (*closed)(struct pd_conn *c, const char *why);
  /* end of the turn after the close: free the owner */
  void (*destroy)(struct pd_conn *c);
};

struct pd_qent {
  struct pd_chunk *c;
  uint32_t off;
};

struct pd_conn {
  struct sortie_io io;          /* fd -1 for a connection with no socket (long-poll) */
  uint8_t closing;              /* closed; freed at the end of the turn */
  uint8_t dirty;                /* on the end-of-turn list (to flush, or to free) */
  uint8_t close_after_flush;    /* close once the queue is written */
  uint8_t want_drain;           /* call ops->drained when the queue empties */
  struct pd_qent *q;            /* a ring of chunk references */
  uint32_t qhead, qlen, qcap;
  size_t qbytes;
  uint64_t last_rx;             /* loop time of the last bytes from the peer */
  struct pd_conn *dirty_next;
};

/** Sets the loop, the queue bound (push.outbuf_max) and the callbacks
 * (kept; one set for every connection, so that an idle connection does not
 * carry a pointer to them) for every connection; registers the end-of-turn
 * flush and free. */
void pd_conns_init(struct sortie_loop *l, size_t outbuf_max, const struct pd_conn_ops *ops);
/** The queue bound, and the loop. */
size_t pd_conns_max(void);
struct sortie_loop *pd_conns_loop(void);
/** Makes c (embedded in its owner) a connection on socket `fd` (-1: none),
 * which it owns from now on and closes. */
void pd_conn_init(struct pd_conn *c, int fd);
/** Queues a chunk (takes a new reference; the caller keeps its own). Past
 * the bound the connection is closed as a slow consumer. */
void pd_conn_send(struct pd_conn *c, struct pd_chunk *ch);
/** Queues a copy of len bytes at p (borrowed). */
void pd_conn_send_copy(struct pd_conn *c, const void *p, size_t len);
/** Bytes queued and not yet written. */
static inline size_t pd_conn_queued(const struct pd_conn *c)
{
  return c->qbytes;
}
/** Queues a copy even when the connection closes after the flush: the frames
 * of a closing handshake that must follow what is queued. */
void pd_conn_send_final(struct pd_conn *c, const void *p, size_t len);
/** Asks for ops->drained once the queue is empty: from the loop (a flush, or
 * the end of this turn if it is empty already), never from inside this call. */
void pd_conn_want_drain(struct pd_conn *c);
/** Writes what is queued, then closes. Nothing more is queued after. */
void pd_conn_close_after_flush(struct pd_conn *c);
/** Starts the teardown (idempotent): ops->closed runs now, then the socket is
 * closed and the queue dropped; ops->destroy runs at the end of the turn. */
void pd_conn_close(struct pd_conn *c, const char *why);
/** Marks the peer as heard from now. */
void pd_conn_heard(struct pd_conn *c);
/** Loop milliseconds since the peer was last heard from. */
uint64_t pd_conn_silent_ms(const struct pd_conn *c);

#endif
