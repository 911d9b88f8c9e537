/* A streaming client: a connection (conn.h) with an identity, the channels it
 * reads (channel.h) and a transport that writes to it. This header holds
 * what the layers above the socket share about a client: the transport
 * table, the client itself, and the request a transport starts from.
 *
 * Transports are complete tables of functions (sse.c, ws.c, poll.c): the
 * fan-out, resume and the HTTP side call them without asking what kind of
 * client they have. An entry a transport does not need is NULL. */
#ifndef SORTIE_PUSHD_CLIENT_H
#define SORTIE_PUSHD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "cfg.h"
#include "conn.h"
#include "event.h"
#include "loop.h"

struct pd_client;
struct pd_sub;
struct MHD_Connection;

/* What the HTTP side hands a transport to start a client. Everything is
 * borrowed for the call. */
struct pd_stream_req {
  int fd;                              /* SSE, WS: the socket taken over (then owned), else -1 */
  const struct sortie_identity *who;
  char *const *channels;               /* SSE, poll: checked, deduplicated */
  uint32_t nchannels;
  const char *cursor;                  /* "" = from now */
  const char *origin;                  /* the Origin to echo in CORS headers, or NULL */
  const char *accept;                  /* WS: Sec-WebSocket-Accept */
  uint64_t serial;                     /* the connection's number in this worker */
  int counted;                         /* holds a slot of the per-user limit */
  struct MHD_Connection *mhd;          /* poll: the suspended request */
  uint32_t timeout_s;                  /* poll */
  void (*wake)(struct MHD_Connection *mhd); /* poll: resume the request, run MHD */
};

struct pd_transport {
  const char *name;
  unsigned kind; /* its slot in the per-transport counters (metrics.h) */
  /* a new client for an accepted request (NULL: refused, the request
   * answered by the caller) */
  struct pd_client *(*start)(const struct pd_stream_req *r);
  /* an event of one of the client's channels, new to it, in order */
  void (*deliver)(struct pd_client *c, struct pd_event *e);
  /* the bytes deliver(e) queues (for flow control) */
  size_t (*cost)(struct pd_event *e);
  /* a control message (event.h) */
  void (*control)(struct pd_client *c, const struct pd_control *m);
  /* the socket is readable */
  void (*readable)(struct pd_client *c);
  /* every heartbeat interval of this transport */
  void (*heartbeat)(struct pd_client *c);
  /* the daemon stops: tell the client to go */
  void (*shutdown)(struct pd_client *c);
  /* free the transport's own state (tp_state) */
  void (*destroy)(struct pd_client *c);
};

struct pd_client {
  struct pd_conn conn;          /* the socket and its queue: first */
  const struct pd_transport *tp;
  struct sortie_identity who;
  struct pd_sub **subs;         /* the channels it reads (channel.c owns them) */
  uint16_t nsubs, capsubs;
  uint8_t counted;              /* holds a slot of the per-user limit */
  uint64_t serial;
  void *tp_state;               /* the transport's own */
  struct pd_client *next, *prev;/* every client of this worker */
};

static inline struct pd_client *pd_client_of(struct pd_conn *c)
{
  return (struct pd_client *)c; /* conn is the first member */
}

/** Sets up the client layer: the loop, the configuration (kept, must
 * outlive it) and this worker's number. */
void pd_clients_init(struct sortie_loop *l, const struct sortie_cfg *cfg, int worker);
const struct sortie_cfg *pd_clients_cfg(void);
int pd_clients_worker(void);

/** A new client of `tp` on socket `fd` (-1: none; owned from now on), on
 * the worker's list; `who` is copied. The client is the worker's: it is
 * freed at the end of the turn after pd_client_close. */
struct pd_client *pd_client_new(const struct pd_transport *tp, int fd,
                                const struct sortie_identity *who, uint64_t serial, int counted);
/** Starts the teardown (see pd_conn_close): subscriptions and resumes end,
 * the limit slot is given back; freed at the end of the turn. */
void pd_client_close(struct pd_client *c, const char *why);
/** Clients of every transport now. */
uint32_t pd_clients_count(void);
/** Calls tp's heartbeat (or shutdown) for each of its live clients. */
void pd_clients_heartbeat(const struct pd_transport *tp);
void pd_clients_shutdown(void);
/** Streams (clients with a socket) still open. */
uint32_t pd_clients_streams(void);
/** Renews every counted connection's limit slot in Redis. */
void pd_clients_refresh_limits(void);

#endif
