/* A streaming client: a connection (conn.h) with an identity, the channels it
 * reads (channel.h) and a transport that writes to it. This header holds
 * only types: what the layers above the socket share about a client (the
 * transport table, the client itself, the request a transport starts from).
 * The functions that make, list and close clients are clients.h's, above
 * channels and resume.
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
  int echo;                            /* WS: GET /echo (push.ws_echo), echoes what it gets */
  struct MHD_Connection *mhd;          /* poll: the suspended request */
  int peer_fd;                         /* poll: the request's socket, watched (never read,
                                          never owned) for the client's hangup, or -1 */
  uint32_t timeout_s;                  /* poll */
  void (*wake)(struct MHD_Connection *mhd); /* poll: resume the request, run MHD */
  struct pd_client **slot;             /* poll: where the request keeps the client; set
                                          to NULL if the client goes before the request */
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
  /* the client's deadline came (clients.h pd_client_deadline; at first its
   * token's exp): end the stream, warn, or set the next one (NULL: none) */
  void (*expire)(struct pd_client *c);
};

struct pd_client {
  struct pd_conn conn;          /* the socket and its queue: first */
  const struct pd_transport *tp;
  struct sortie_identity who;
  struct pd_sub **subs;         /* the channels it reads (channel.c owns them) */
  uint16_t nsubs, capsubs;
  uint8_t counted;              /* holds a slot of the per-user limit */
  uint8_t reading;              /* one of its history reads is out (resume.c) */
  uint64_t serial;
  uint32_t dl_at;               /* its deadline, unix seconds (0: none) */
  uint32_t dl_slot;             /* its place in the deadline heap (0: not on it) */
  void *tp_state;               /* the transport's own */
  struct pd_client *next, *prev;/* every client of this worker */
};

static inline struct pd_client *pd_client_of(struct pd_conn *c)
{
  return (struct pd_client *)c; /* conn is the first member */
}

#endif
