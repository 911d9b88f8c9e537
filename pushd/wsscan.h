/* Follows a WebSocket client's byte stream frame by frame (wsscan.c): where
 * frames end, whether a fragmented message is under way, how many pings came,
 * and how much of a close frame not yet whole has arrived. Pure (no socket,
 * no wslay), so that it is fuzzed alone (tests/fuzz/fuzz_wsscan.c); pushd/ws.c
 * runs it over the bytes it hands wslay, which does all the checking. */
#ifndef SORTIE_PUSHD_WSSCAN_H
#define SORTIE_PUSHD_WSSCAN_H

#include <stddef.h>
#include <stdint.h>

/* The longest close frame wslay accepts: a 2-byte header, a mask, 125 bytes.
 * pd_wsscan_held() never says more. */
#define PD_WSSCAN_CLOSE_MAX (2 + 4 + 125)

/* The follower's state, all zero at the start of a stream. Every WebSocket
 * client has one inside its transport state, idle or not, so it is kept to
 * 16 bytes: of a frame's header only the first two bytes are kept; the
 * extended length is gathered in `left` as it comes, the mask only counted. */
struct pd_wsscan {
  uint64_t left;          /* while hlen > 0: the extended length read so far;
                             else the payload bytes of the current frame to come */
  uint8_t b0, b1;         /* the header's first two bytes (FIN, opcode; mask, len7) */
  uint8_t hlen;           /* header bytes of the frame seen so far; 0 between
                             headers */
  uint8_t in_message : 1; /* a fragmented data message is under way */
  uint8_t in_close : 1;   /* the frame being followed is a close frame wslay can
                             accept (FIN set, at most 125 bytes as far as its
                             header has told), not yet whole */
  uint16_t pings;         /* ping frames whose header ended here since the
                             caller last set this to 0 (stops at UINT16_MAX) */
};

/** Follows `n` more bytes of the stream (`p`, borrowed, only read). */
void pd_wsscan_feed(struct pd_wsscan *s, const uint8_t *p, size_t n);

/** The same, but stops just after the first frame header that ends among
 * the `n` bytes: returns the bytes taken (n when none ended) and sets
 * *header_end to 1 if one did (else 0). Then s->b0 holds that frame's FIN bit
 * and opcode, and s->left its payload length. pd_wsscan_feed() is this in a
 * loop; the fuzz target reads the frames one by one with it. */
size_t pd_wsscan_next(struct pd_wsscan *s, const uint8_t *p, size_t n, int *header_end);

/** How many of the last bytes fed belong to a close frame not yet whole
 * (one wslay can accept: FIN set, at most 125 bytes of payload), from its
 * first header byte on; 0 when none is under way. At most
 * PD_WSSCAN_CLOSE_MAX, and never more than the bytes fed since that frame
 * began, so a caller that holds those bytes back and feeds each byte once
 * always has them. */
size_t pd_wsscan_held(const struct pd_wsscan *s);

/** 1 when the stream stands on a frame boundary outside a fragmented
 * message, else 0. */
int pd_wsscan_idle(const struct pd_wsscan *s);

#endif
