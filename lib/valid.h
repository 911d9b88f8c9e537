/* Validation of the names that travel in URLs, bodies and events: ids, channel
 * names, symbols, event types, stream ids and cursors. Every function takes a
 * byte slice (pointer + length; not necessarily NUL-terminated) and only reads it. */
#ifndef SORTIE_VALID_H
#define SORTIE_VALID_H

#include <stddef.h>
#include <stdint.h>

#define SORTIE_ID_MAX 64
#define SORTIE_CHANNEL_MAX 80  /* "mission:" + 64; kinds are short */
#define SORTIE_EVENT_ID_MAX 41 /* "<20 digits>-<20 digits>" */
#define SORTIE_SYMBOL_MAX 32

/** Ids of signals, users and trades: ^[A-Za-z0-9_.-]{1,64}$, except "." and
 * "..". 1 if valid. */
int sortie_valid_id(const char *s, size_t len);
/** Symbols: ^[A-Z0-9_.-]{1,32}$ (callers upper-case first). 1 if valid. */
int sortie_valid_symbol(const char *s, size_t len);
/** Event types: ^[a-z][a-z0-9_]{0,63}$. 1 if valid. */
int sortie_valid_event_type(const char *s, size_t len);
/** 1 if `type` is one of the control message types a client gets from the push
 * daemon (reset, subscribed, pong, error, connection_status): these may not be
 * published as events. */
int sortie_reserved_event_type(const char *s, size_t len);

enum sortie_chan_kind {
  SORTIE_CHAN_INVALID = -1, /* not of the form ^[a-z]+(:[A-Za-z0-9_.-]{1,64})?$ */
  SORTIE_CHAN_UNKNOWN = 0,  /* well-formed, but no such kind of channel */
  SORTIE_CHAN_MISSION,      /* mission:{signal_id} */
  SORTIE_CHAN_USER,         /* user:{user_id} */
  SORTIE_CHAN_MARKET,       /* market:{SYMBOL} */
  SORTIE_CHAN_SIGNALS,      /* signals */
  SORTIE_CHAN_ADMIN,        /* admin */
};

/** Classifies a channel name. On success `*arg`/`*arglen` (if non-NULL) point at
 * the part after ':' (length 0 for signals/admin). */
enum sortie_chan_kind sortie_channel_parse(const char *s, size_t len, const char **arg,
                                           size_t *arglen);

/** Redis stream ids "<ms>-<seq>" (both up to 20 digits, fitting uint64); "0" is
 * accepted as "0-0". 0 on success with the parts in ms/seq, -1 otherwise. */
int sortie_event_id_parse(const char *s, size_t len, uint64_t *ms, uint64_t *seq);

/* The page of one history read (lib/lua/events.lua) over `nchannels`
 * channels: the script looks at up to page + 1 entries of each channel, so
 * the page shrinks as channels grow and any read costs Redis about 2,000
 * entries (64 channels: 31), never fewer than 16 events and never more
 * than `most`. One rule for GET /api/events and sortie-pushd's resume. */
static inline uint32_t sortie_history_page(uint32_t nchannels, uint32_t most)
{
  uint32_t p = nchannels ? 2000 / nchannels : most;
  if (p < 16)
    p = 16;
  return p < most ? p : most;
}
/** Compares two valid stream ids; <0, 0, >0. Invalid ids compare as 0-0. */
int sortie_event_id_cmp(const char *a, const char *b);

/** The value of a hex digit, or -1. */
int sortie_unhex(char c);

/** 1 if `len` bytes at `s` are well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF). */
int sortie_utf8_valid(const unsigned char *s, size_t len);
/** How many bytes of s (len bytes) to quote in a message so that at most
 * `max` go and the quote is whole UTF-8: cut before a character that would
 * not fit; 0 when those bytes are not UTF-8 at all. */
size_t sortie_utf8_prefix(const char *s, size_t len, size_t max);

#endif
