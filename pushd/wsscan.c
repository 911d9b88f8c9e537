/* The frame follower of pushd/ws.c (see wsscan.h): only the headers' lengths,
 * flags and opcodes are read; whether a frame is valid is wslay's to say. */
#include "wsscan.h"

/* Bytes of the extended payload length, from the header's second byte. */
static unsigned ext_size(uint8_t b1)
{
  unsigned len7 = b1 & 0x7f;
  return len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
}

/* Header bytes the frame needs in all, known from its second byte on. */
static unsigned header_size(uint8_t b1)
{
  return 2 + ext_size(b1) + ((b1 & 0x80) ? 4 : 0);
}

size_t pd_wsscan_next(struct pd_wsscan *s, const uint8_t *p, size_t n, int *header_end)
{
  size_t at = 0;
  *header_end = 0;
  while (at < n) {
    if (s->hlen == 0 && s->left) { /* payload */
      uint64_t k = s->left < n - at ? s->left : n - at;
      s->left -= k;
      at += (size_t)k;
      if (s->left == 0)
        s->in_close = 0;
      continue;
    }
    uint8_t b = p[at++];
    if (s->hlen == 0) {
      s->b0 = b;
      s->in_close = (b & 0x8f) == 0x88;
      s->hlen = 1;
      continue;
    }
    if (s->hlen == 1) {
      unsigned len7 = b & 0x7f;
      s->b1 = b;
      s->left = len7 < 126 ? len7 : 0;
      if (len7 > 125)
        s->in_close = 0;
    } else if (s->hlen < 2 + ext_size(s->b1)) {
      s->left = s->left << 8 | b; /* the extended length, big-endian */
    } /* else a mask byte: only counted */
    s->hlen++;
    if (s->hlen < header_size(s->b1))
      continue;
    unsigned opcode = s->b0 & 0x0f, fin = s->b0 & 0x80;
    if (opcode < 8) /* control frames may come inside a message and end nothing */
      s->in_message = !fin;
    else if (opcode == 9 && s->pings < UINT16_MAX)
      s->pings++;
    s->hlen = 0;
    if (s->left == 0)
      s->in_close = 0;
    *header_end = 1;
    break;
  }
  return at;
}

void pd_wsscan_feed(struct pd_wsscan *s, const uint8_t *p, size_t n)
{
  int header_end;
  for (size_t at = 0; at < n;)
    at += pd_wsscan_next(s, p + at, n - at, &header_end);
}

size_t pd_wsscan_held(const struct pd_wsscan *s)
{
  if (!s->in_close)
    return 0;
  if (s->hlen)
    return s->hlen;
  /* its header is whole: len7 <= 125 is the payload length */
  return header_size(s->b1) + (size_t)((s->b1 & 0x7f) - s->left);
}

int pd_wsscan_idle(const struct pd_wsscan *s)
{
  return s->hlen == 0 && s->left == 0 && !s->in_message;
}
