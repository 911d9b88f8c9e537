/* sortie-pushd internals: the types and functions its files share.
 *
 * One worker process = one event loop (loop.c) that drives libmicrohttpd for the
 * HTTP side (http.c), two hiredis async connections (redis.c: one subscribed to
 * the channels its clients want, one for history reads), and the sockets of the
 * streaming clients it took over from libmicrohttpd (client.c; sse.c, ws.c,
 * poll.c are the transports). An event arrives once from Redis, becomes one
 * pd_event (event.c), is encoded once per transport, and the same bytes are
 * queued to every subscriber (channel.c) and written with one writev per
 * client per loop turn.
 *
 * Ids and cursors: every event id is global and increasing (see lib/lua/
 * common.lua), so a client's position in a channel is the id of the last event
 * it got there, and a connection's cursor is the id of the last event it got
 * at all. Resuming (a reconnect, a subscribe with `since`, a Redis outage) is a
 * "job" (channel.c): live events for the resuming subscriptions wait in the job
 * while history is read, then go out after it, without gap or duplicate.
 *
 * Ownership: objects are freed only from the loop's end-of-turn hook, never
 * inside their own callbacks (pd_client_close() marks, pd_reap() frees). */
#ifndef SORTIE_PUSHD_H
#define SORTIE_PUSHD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "cfg.h"
#include "log.h"
#include "valid.h"

/* ---------------------------------------------------------------- loop.c */

struct pd_io;
typedef void pd_io_cb(struct pd_io *io, uint32_t events);

/* A file descriptor in the loop. `events` are EPOLLIN/EPOLLOUT/... as armed. */
struct pd_io {
  int fd;
  uint32_t events;
  pd_io_cb *cb;
};

struct pd_timer;
typedef void pd_timer_cb(struct pd_timer *t);

/* A one-shot timer; `slot` is 0 when not armed. */
struct pd_timer {
  uint64_t at;
  uint32_t slot;
  pd_timer_cb *cb;
};

int pd_loop_init(void);
int pd_io_add(struct pd_io *io, uint32_t events);
int pd_io_mod(struct pd_io *io, uint32_t events);
void pd_io_del(struct pd_io *io);
void pd_timer_arm(struct pd_timer *t, uint64_t delay_ms);
void pd_timer_stop(struct pd_timer *t);
/** Monotonic milliseconds, cached for the current loop turn. */
uint64_t pd_now(void);
/** Wall-clock milliseconds since the epoch (event ids are on this clock). */
uint64_t pd_wall_ms(void);
/** Runs until *stop is set; calls pd_end_of_turn() after every batch. */
void pd_loop_run(volatile sig_atomic_t *stop);
/** Defined by main.c: work done once per loop turn (flush, reap, MHD). */
void pd_end_of_turn(void);

/* --------------------------------------------------------------- event.c */

/* A reference-counted byte chunk, shared by every client it is queued to. */
struct pd_chunk {
  uint32_t refs;
  uint32_t len;
  char data[];
};

/** A chunk of `len` bytes (contents uninitialised), one reference. */
struct pd_chunk *pd_chunk_new(size_t len);
/** A chunk holding a copy of `len` bytes at `p`. */
struct pd_chunk *pd_chunk_copy(const void *p, size_t len);
static inline struct pd_chunk *pd_chunk_ref(struct pd_chunk *c)
{
  c->refs++;
  return c;
}
void pd_chunk_unref(struct pd_chunk *c);

/* A position: an event id "<ms>-<seq>" as numbers. */
struct pd_pos {
  uint64_t ms, seq;
};
int pd_pos_parse(const char *s, size_t len, struct pd_pos *out);
static inline int pd_pos_cmp(struct pd_pos a, struct pd_pos b)
{
  if (a.ms != b.ms)
    return a.ms < b.ms ? -1 : 1;
  return a.seq < b.seq ? -1 : a.seq > b.seq;
}
/** Writes "<ms>-<seq>" into buf (at least SORTIE_STREAM_ID_MAX + 1 bytes). */
size_t pd_pos_format(struct pd_pos p, char *buf);

/* One event, as published: made once per message from Redis and shared. */
struct pd_event {
  uint32_t refs;
  struct pd_pos pos;
  char id[SORTIE_STREAM_ID_MAX + 1];
  char channel[SORTIE_CHANNEL_MAX + 1];
  char type[65];
  struct pd_chunk *env; /* the envelope JSON */
  struct pd_chunk *sse; /* its SSE frame, made on first use */
  struct pd_chunk *ws;  /* its WebSocket text frame, made on first use */
};

/** Parses an envelope as the Lua scripts write it ({"id":..,"channel":..,
 * "type":..,...}); NULL if it is not one. The event copies the bytes. */
struct pd_event *pd_event_parse(const char *env, size_t len);
void pd_event_unref(struct pd_event *e);
static inline struct pd_event *pd_event_ref(struct pd_event *e)
{
  e->refs++;
  return e;
}
/** The encoded frames (borrowed from the event). */
struct pd_chunk *pd_event_sse(struct pd_event *e);
struct pd_chunk *pd_event_ws(struct pd_event *e);

/* --------------------------------------------------------------- frame.c */

/** Appends one SSE message to `out`: optional `id:` and `event:` lines, then
 * `data` split into one `data:` line per line (CR, LF or CRLF), then a blank
 * line. A NULL/empty id or event is left out. */
void pd_sse_frame(struct sortie_buf *out, const char *id, const char *event, const char *data,
                  size_t len);

/** Appends a server-to-client WebSocket frame (FIN set, unmasked). */
void pd_ws_frame(struct sortie_buf *out, int opcode, const void *payload, size_t len);
/** Sec-WebSocket-Accept for a client key (28 chars + NUL into out). */
int pd_ws_accept_key(const char *key, char out[29]);

/* -------------------------------------------------------------- client.c */

struct pd_client;
struct pd_sub;
struct pd_job;

enum pd_kind { PD_SSE = 0, PD_WS = 1, PD_POLL = 2 };

/* A transport: what the fan-out calls, without asking which kind it is. */
struct pd_transport {
  const char *name;
  enum pd_kind kind;
  /* an event for one of the client's subscriptions, in order */
  void (*deliver)(struct pd_client *c, struct pd_event *e);
  /* a control message (JSON text); `cursor`, if not NULL, is where the
   * client now stands (SSE puts it in `id:`) */
  void (*control)(struct pd_client *c, const char *json, size_t len, const char *cursor);
  /* a resume job's channels are all subscribed in Redis (history comes next) */
  void (*ready)(struct pd_client *c, struct pd_job *j);
  /* a resume job of this client finished at `cursor` */
  void (*caught_up)(struct pd_client *c, struct pd_job *j, const char *cursor);
  /* socket readable (WS, SSE hang-up) */
  void (*readable)(struct pd_client *c);
  /* free the transport's own state */
  void (*destroy)(struct pd_client *c);
};

struct pd_qent {
  struct pd_chunk *c;
  uint32_t off;
};

struct pd_client {
  const struct pd_transport *tp;
  struct pd_io io;              /* the socket (fd -1 for long-poll) */
  struct sortie_identity who;
  struct pd_sub **subs;
  uint16_t nsubs, capsubs;
  uint8_t closing;              /* being torn down; freed at end of turn */
  uint8_t dirty;                /* on the flush list */
  uint8_t close_after_flush;    /* close once the queue is written */
  uint8_t counted;              /* holds a slot in the per-user limit */
  uint8_t throttled;            /* a resume job waits for the queue to drain */
  /* outbound queue: a ring of chunk references */
  struct pd_qent *q;
  uint32_t qhead, qlen, qcap;
  size_t qbytes;
  uint64_t last_rx;             /* pd_now() of the last bytes from the peer */
  uint64_t serial;              /* connection number within this worker */
  void *tp_state;               /* the transport's own state */
  struct pd_client *next, *prev;/* every client of this worker */
  struct pd_client *dirty_next;
};

/** A new client of transport `tp` on socket `fd` (-1 for none), on the
 * worker's list. The client owns fd. */
struct pd_client *pd_client_new(const struct pd_transport *tp, int fd,
                                const struct sortie_identity *who);
/** Queues a chunk (takes a new reference). Cuts the client off when its queue
 * passes push.outbuf_max. */
void pd_client_send(struct pd_client *c, struct pd_chunk *ch);
/** Queues a copy of bytes. */
void pd_client_send_copy(struct pd_client *c, const void *p, size_t len);
/** Tries to write the queue now (writev of up to IOV_MAX chunks). */
void pd_client_flush(struct pd_client *c);
/** Starts tearing the client down (idempotent); memory is freed at the end of
 * the loop turn. `why` is logged. */
void pd_client_close(struct pd_client *c, const char *why);
/** Flushes every client that has queued bytes, then frees closed clients. */
void pd_clients_end_of_turn(void);
/** Calls fn for every live client of a kind (for heartbeats and shutdown). */
void pd_clients_each(enum pd_kind kind, void (*fn)(struct pd_client *c));
/** The id under which a stream counts against its user's limit in Redis:
 * "<host>.<pid>.<serial>". */
void pd_conn_id(uint64_t serial, char *out, size_t n);
/** Renews every counted connection in Redis (they expire if not renewed). */
void pd_clients_refresh_limits(void);
/** Current number of clients of each kind in this worker. */
extern uint32_t pd_nclients[3];

/* ------------------------------------------------------------- channel.c */

/* A subscription: one client in one channel. */
struct pd_sub {
  struct pd_client *client;
  struct pd_channel *ch;
  uint32_t ch_idx;      /* index in ch->subs */
  struct pd_pos pos;    /* the last event this client got here */
  struct pd_job *job;   /* resuming; NULL once live */
  uint8_t reset_sent;   /* this job already told the client "reset" here */
};

/** Subscribes client `c` to channel `name` (must be valid; checks done by the
 * caller). Returns the subscription, or the existing one. The subscription
 * starts inside no job: call pd_job_start() to bring it up to date. */
struct pd_sub *pd_sub_add(struct pd_client *c, const char *name);
/** Removes a subscription (and the Redis subscription with the last one). */
void pd_sub_remove(struct pd_sub *s);
/** Finds a client's subscription to `name`, or NULL. */
struct pd_sub *pd_sub_find(struct pd_client *c, const char *name);

/** Brings `n` subscriptions of one client up to date from `cursor` ("" = from
 * now): history first, then what arrived live meanwhile. */
void pd_job_start(struct pd_client *c, struct pd_sub **subs, uint32_t n, const char *cursor);

/** The channels of a job (for a transport's caught_up). */
uint32_t pd_job_nsubs(const struct pd_job *j);
const char *pd_job_channel(const struct pd_job *j, uint32_t i);
/** Whether the transport was told a job's subscriptions are in place (its
 * ready() ran); true for no job (a live subscription). */
int pd_job_announced(const struct pd_job *j);

/** Number of channels this worker is subscribed to. */
extern uint32_t pd_nchannels;

/* Called by redis.c. */
void pd_channel_on_message(const char *name, size_t nlen, const char *env, size_t len);
void pd_channel_on_subscribed(const char *name, size_t nlen);
void pd_channel_on_unsubscribed(const char *name, size_t nlen);
void pd_channels_on_redis_down(void);
void pd_channels_on_redis_up(void);
void pd_jobs_on_cmd_up(void);
/** The client's queue is empty again: its resume jobs that stopped for room
 * go on (from pd_client_flush). */
void pd_jobs_on_drain(struct pd_client *c);
void pd_jobs_tick(void);

/* --------------------------------------------------------------- redis.c */

/* One event of a history read. */
struct pd_hist {
  struct pd_event **events;
  uint32_t nevents;
  char **resets; /* channel names */
  uint32_t nresets;
  char cursor[SORTIE_STREAM_ID_MAX + 1];
};

typedef void pd_hist_cb(void *ud, struct pd_hist *h); /* h NULL: Redis failed */
typedef void pd_conn_cb(void *ud, int allowed, int failed);

int pd_redis_start(const struct sortie_cfg *cfg);
void pd_redis_stop(void);
int pd_redis_up(void); /* 1 when both connections are ready */
int pd_redis_cmd_up(void);
/** 0, or -1 when hiredis refused the command (no connection, or for
 * UNSUBSCRIBE: not subscribed to anything). */
int pd_redis_subscribe(const char *channel);
int pd_redis_unsubscribe(const char *channel);
/** Reads history (lib/lua/events.lua) after `cursor` for `n` channels. The
 * callback owns nothing: events are borrowed for the call (ref them to keep). */
int pd_redis_history(const char *cursor, const char *const *channels, uint32_t n, uint32_t limit,
                     pd_hist_cb *cb, void *ud);
/** A marker on the subscriber connection, sent at the end of this loop turn:
 * cb(ud, 1) once every message published before it has been handed to the
 * channel layer; cb(ud, 0) if the connection dropped. -1 if Redis is away. */
int pd_redis_sync(void (*cb)(void *ud, int ok), void *ud);
/** Sends what this turn asked of Redis in batches (the sync marker). */
void pd_redis_end_of_turn(void);
/** The per-user connection limit (lib/lua/conns.lua): op "open" or "close". */
int pd_redis_conns(const char *op, const char *user, const char *conn_id, pd_conn_cb *cb,
                   void *ud);

/** Publishes this daemon's admin_stats on `admin` (lib/lua/admin_stats.lua). */
void pd_redis_admin_stats(const char *connections_json, const char *daemon);
/** A line on the admin page's system log. */
void pd_redis_syslog(const char *level, const char *message);

/* ---------------------------------------------------------------- http.c */

struct MHD_Connection;

int pd_http_start(const struct sortie_cfg *cfg, int listen_fd);
void pd_http_stop(void);
/** Runs libmicrohttpd's work if it has any (end of turn). */
void pd_http_run(void);
/** Queues a response (the body is copied) with the usual headers, and CORS
 * headers for an allowed `origin` (NULL or "" for none). MHD_YES/MHD_NO. */
int pd_http_reply(struct MHD_Connection *conn, unsigned status, const char *ctype, const char *body,
                  size_t len, const char *origin);
/** Asks for a libmicrohttpd run at the end of this turn (after a resume). */
void pd_http_kick(void);

/* ---------------------------------------------------------------- poll.c */
/** Starts a long-poll for an authenticated request (see http.c). */
struct pd_client *pd_poll_start(struct MHD_Connection *conn, const struct sortie_identity *who,
                                char **channels, uint32_t n, const char *cursor,
                                uint32_t timeout_s);
/** The MHD handler's second call for a resumed poll: queues its response. */
int pd_poll_respond(struct pd_client *c, struct MHD_Connection *conn, const char *origin);
/** The MHD request of a poll ended (answered or dropped). */
void pd_poll_finished(struct pd_client *c);

/* ------------------------------------------------------------ transports */

extern const struct pd_transport pd_sse_transport;
extern const struct pd_transport pd_ws_transport;
extern const struct pd_transport pd_poll_transport;

/** Starts a stream on a socket taken over from libmicrohttpd: writes the
 * response head and hands the socket to the loop. */
struct pd_client *pd_sse_start(int fd, const struct sortie_identity *who, char **channels,
                               uint32_t n, const char *cursor, const char *cors_origin);
struct pd_client *pd_ws_start(int fd, const struct sortie_identity *who, const char *accept_key);
/** Heartbeats: SSE comment every push.heartbeat_s, WS ping every push.ping_s
 * (and the dead-peer cut). Called from a timer in main.c. */
void pd_sse_heartbeat(void);
void pd_ws_heartbeat(void);
/** Graceful stop: WS close 1001, SSE told to retry. */
void pd_streams_shutdown(void);

/* ------------------------------------------------------------- metrics.c */

#define PD_LAT_BUCKETS 14
struct pd_stats {
  /* gauges */
  uint32_t conns[3];
  uint32_t subscriptions;
  uint32_t channels;
  uint32_t redis_up;
  uint32_t pid;
  /* counters */
  uint64_t events_in;
  uint64_t deliveries;
  uint64_t slow_disconnects;
  uint64_t redis_reconnects;
  uint64_t refused;
  uint64_t lat_bucket[PD_LAT_BUCKETS]; /* cumulative at render time */
  uint64_t lat_sum_ms;
  uint64_t lat_count;
};

/** Shared memory for every worker's stats (made by the master before fork). */
int pd_stats_init(int workers);
/** This worker's slot. */
struct pd_stats *pd_stats_self(void);
void pd_stats_select(int worker);
void pd_stats_latency(uint64_t ms);
/** Renders /metrics and /health from all workers' slots. */
void pd_stats_metrics(struct sortie_buf *out);
void pd_stats_health(struct sortie_buf *out, int *ok);
/** {"sse":n,"ws":n,"poll":n} for the whole daemon. */
void pd_stats_connections(struct sortie_buf *out);
extern uint64_t pd_started_ms;

/* ---------------------------------------------------------------- main.c */

extern struct sortie_cfg *pd_cfg;
extern int pd_worker_id;
extern volatile sig_atomic_t pd_stopping;

#endif
