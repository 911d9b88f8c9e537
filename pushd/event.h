/* Events as they come from Redis, the shared chunks their encodings live in,
 * and event ids.
 *
 * An event id is "<ms>-<seq>", global and increasing (lib/lua/common.lua): a
 * client's position in a channel is the id of the last event it got there,
 * and a cursor is simply an id. struct pd_evid is one, parsed; its text form
 * is made by pd_evid_format. Nothing else names it. */
#ifndef SORTIE_PUSHD_EVENT_H
#define SORTIE_PUSHD_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "valid.h"

/* A reference-counted byte chunk, shared by every client it is queued to. */
struct pd_chunk {
  uint32_t refs;
  uint32_t len;
  char data[];
};

/** A chunk of `len` bytes (contents uninitialised) holding one reference,
 * which the caller owns. */
struct pd_chunk *pd_chunk_new(size_t len);
/** A chunk holding a copy of `len` bytes at `p` (borrowed); one reference. */
struct pd_chunk *pd_chunk_copy(const void *p, size_t len);
static inline struct pd_chunk *pd_chunk_ref(struct pd_chunk *c)
{
  c->refs++;
  return c;
}
/** Drops one reference (NULL is allowed). */
void pd_chunk_unref(struct pd_chunk *c);

struct pd_evid {
  uint64_t ms, seq;
};
/** 0 and the id in *out, or -1 when s[0..len) is not an event id. */
int pd_evid_parse(const char *s, size_t len, struct pd_evid *out);
static inline int pd_evid_cmp(struct pd_evid a, struct pd_evid b)
{
  if (a.ms != b.ms)
    return a.ms < b.ms ? -1 : 1;
  return a.seq < b.seq ? -1 : a.seq > b.seq;
}
/** Writes "<ms>-<seq>" and a NUL into buf (SORTIE_EVENT_ID_MAX + 1 bytes). */
size_t pd_evid_format(struct pd_evid id, char *buf);

/* One event, as published: made once per message from Redis and shared by
 * every subscriber (reference-counted). */
struct pd_event {
  uint32_t refs;
  struct pd_evid id;
  char channel[SORTIE_CHANNEL_MAX + 1];
  char type[65];
  struct pd_chunk *env; /* the envelope JSON, as published */
  struct pd_chunk *sse; /* its SSE frame, made on first use */
  struct pd_chunk *ws;  /* its WebSocket text frame, made on first use */
};

/** Parses an envelope as the Lua scripts write it ({"id":..,"channel":..,
 * "type":..,...}); NULL if it is not one. The bytes are copied; the caller
 * owns the one reference of the result. */
struct pd_event *pd_event_parse(const char *env, size_t len);
void pd_event_unref(struct pd_event *e);
static inline struct pd_event *pd_event_ref(struct pd_event *e)
{
  e->refs++;
  return e;
}
/** The encoded frames, made once; borrowed from the event (ref to keep). */
struct pd_chunk *pd_event_sse(struct pd_event *e);
struct pd_chunk *pd_event_ws(struct pd_event *e);

/* A control message of the daemon to a client, as data: each transport
 * writes it in its own way (a WebSocket text message, an SSE event, an item
 * of a long-poll answer), or not at all. */
enum pd_control_kind {
  PD_CTL_SUBSCRIBED,   /* channels are subscribed in Redis: nothing published now is missed */
  PD_CTL_UNSUBSCRIBED, /* channels were unsubscribed at the client's request */
  PD_CTL_RESET,        /* channel[0]'s history is gone: refetch state; `id` is where the client stands */
  PD_CTL_ERROR,        /* a request was refused: `code`, `message` */
  PD_CTL_CAUGHT_UP,    /* history is delivered, live from here; `id` is where the client stands */
};

struct pd_control {
  enum pd_control_kind kind;
  const char *const *channels; /* borrowed for the call */
  uint32_t nchannels;
  const char *id;              /* RESET, CAUGHT_UP: an event id, or "" */
  const char *code, *message;  /* ERROR */
};

/** Appends the JSON form of m ({"type":"subscribed","channels":[..]}, ...)
 * to out. CAUGHT_UP has none (appends nothing and returns -1); 0 otherwise. */
int pd_control_json(const struct pd_control *m, struct sortie_buf *out);
/** The "type" of m's JSON form ("reset", ...). */
const char *pd_control_type(enum pd_control_kind k);

#endif
