/* libFuzzer target for pushd/wsscan.c, the frame follower in front of wslay
 * (pushd/ws.c cb_recv). The input is
 *   k (1 byte; k % 16 lengths follow), k piece lengths (1 byte each, 0 = an
 *   empty read), then the client's byte stream.
 * The stream is followed three ways: whole, one byte at a time, and in the
 * input's pieces (cycled until the stream ends), each piece in a heap buffer
 * of exactly its size so that ASan sees a read outside it. Each way must
 * agree with a plain parser written here, which reads the whole stream at
 * once: the same frames (FIN bit, opcode, payload length, in order), the same
 * number of pings, the same "a close frame wslay can accept is under way"
 * answer and the same offset where that frame began. Each piece also goes
 * through cb_recv's hold logic, copied here: what is handed on must be the
 * stream in order, the held bytes its tail, never more than
 * PD_WSSCAN_CLOSE_MAX, never more than were held plus read. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wsscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NONE SIZE_MAX

struct frame {
  uint8_t b0; /* FIN and opcode (RSV bits cleared) */
  uint64_t len;
};

/* What a whole stream gives. */
struct result {
  struct frame *f; /* nf frames whose header is whole, in order */
  size_t nf;
  size_t pings;
  size_t held_start; /* where an unfinished acceptable close frame began; NONE */
  int idle;          /* on a frame boundary, outside a fragmented message */
};

static void check(int ok)
{
  if (!ok)
    abort();
}

/* The reference: frame by frame over the whole stream. */
static void reference(const uint8_t *p, size_t n, struct result *r)
{
  size_t at = 0;
  int in_message = 0, boundary = 1;
  r->held_start = NONE;
  while (at < n) {
    size_t start = at;
    int close_ok = (p[at] & 0x8f) == 0x88; /* FIN set, opcode 8 */
    if (n - at < 2) {
      boundary = 0;
      if (close_ok)
        r->held_start = start;
      break;
    }
    unsigned len7 = p[at + 1] & 0x7f;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    size_t hsize = 2 + ext + ((p[at + 1] & 0x80) ? 4 : 0);
    if (len7 > 125)
      close_ok = 0;
    if (n - at < hsize) {
      boundary = 0;
      if (close_ok)
        r->held_start = start;
      break;
    }
    uint64_t len = len7;
    if (ext) {
      len = 0;
      for (size_t i = 0; i < ext; i++)
        len = len << 8 | p[at + 2 + i];
    }
    uint8_t b0 = p[at];
    r->f[r->nf].b0 = b0 & 0x8f;
    r->f[r->nf].len = len;
    r->nf++;
    if ((b0 & 0x0f) < 8)
      in_message = !(b0 & 0x80);
    else if ((b0 & 0x0f) == 9)
      r->pings++;
    at += hsize;
    if (len > n - at) {
      boundary = 0;
      if (close_ok)
        r->held_start = start;
      break;
    }
    at += (size_t)len;
  }
  r->idle = boundary && !in_message;
}

/* cb_recv's hold, over one way of cutting the stream */
struct follow {
  struct pd_wsscan s, t; /* s read with pd_wsscan_next, t with pd_wsscan_feed */
  uint8_t *hold;         /* PD_WSSCAN_CLOSE_MAX bytes */
  size_t nhold;
  size_t given; /* bytes of the stream handed on so far */
  size_t read;  /* bytes of the stream read so far */
};

/* One read of `n` bytes at `stream + f->read`. */
static void follow_piece(struct follow *f, const uint8_t *stream, size_t n, struct result *r)
{
  uint8_t *piece = malloc(n ? n : 1);
  check(piece != NULL);
  memcpy(piece, stream + f->read, n);
  f->s.pings = 0; /* per read, as ws_readable does */
  f->t.pings = 0;
  for (size_t at = 0; at < n;) {
    int end = -1;
    size_t k = pd_wsscan_next(&f->s, piece + at, n - at, &end);
    check(k > 0 && k <= n - at && (end == 0 || end == 1));
    check(end == 1 || k == n - at);
    at += k;
    if (end) {
      r->f[r->nf].b0 = f->s.b0 & 0x8f;
      r->f[r->nf].len = f->s.left;
      r->nf++;
    }
  }
  if (n == 0) {
    int end = -1;
    check(pd_wsscan_next(&f->s, piece, 0, &end) == 0 && end == 0);
  }
  pd_wsscan_feed(&f->t, piece, n);
  free(piece);
  check(f->s.left == f->t.left && f->s.b0 == f->t.b0 && f->s.b1 == f->t.b1 &&
        f->s.hlen == f->t.hlen && f->s.in_message == f->t.in_message &&
        f->s.in_close == f->t.in_close && f->s.pings == f->t.pings);
  r->pings += f->s.pings;
  /* cb_recv: the held bytes, then the new ones; a close frame not yet whole
   * waits, the rest is handed on */
  size_t held = pd_wsscan_held(&f->s), total = f->nhold + n;
  check(held == pd_wsscan_held(&f->t));
  check(held <= PD_WSSCAN_CLOSE_MAX && held <= total);
  uint8_t *buf = malloc(total ? total : 1);
  check(buf != NULL);
  memcpy(buf, f->hold, f->nhold);
  memcpy(buf + f->nhold, stream + f->read, n);
  f->read += n;
  size_t give = total - held;
  check(memcmp(buf, stream + f->given, give) == 0); /* the stream, in order */
  f->given += give;
  f->nhold = held;
  memcpy(f->hold, buf + give, held);
  free(buf);
  check(held == 0 || (f->hold[0] & 0x8f) == 0x88); /* it begins a close frame */
}

static void compare(const struct result *a, const struct result *b)
{
  check(a->nf == b->nf && a->pings == b->pings && a->held_start == b->held_start &&
        a->idle == b->idle);
  for (size_t i = 0; i < a->nf; i++)
    check(a->f[i].b0 == b->f[i].b0 && a->f[i].len == b->f[i].len);
}

/* Follows the stream in pieces of the given lengths, cycled (each 0 is an
 * empty read; lengths all 0, or none, mean one piece after them). */
static void follow_all(const uint8_t *stream, size_t n, const uint8_t *lens, size_t k,
                       const struct result *want)
{
  struct follow f = {0};
  struct result r = {0};
  r.f = malloc((n / 2 + 1) * sizeof *r.f);
  f.hold = malloc(PD_WSSCAN_CLOSE_MAX);
  check(r.f != NULL && f.hold != NULL);
  size_t sum = 0;
  for (size_t i = 0; i < k; i++) {
    sum += lens[i];
    if (lens[i] == 0) /* an empty read changes nothing */
      follow_piece(&f, stream, 0, &r);
  }
  for (size_t i = 0; sum && f.read < n; i = (i + 1) % k) {
    size_t m = lens[i] < n - f.read ? lens[i] : n - f.read;
    follow_piece(&f, stream, m, &r);
  }
  if (f.read < n)
    follow_piece(&f, stream, n - f.read, &r);
  size_t held = pd_wsscan_held(&f.s);
  r.held_start = held ? n - held : NONE;
  r.idle = pd_wsscan_idle(&f.s);
  check(r.idle == pd_wsscan_idle(&f.t));
  compare(&r, want);
  free(f.hold);
  free(r.f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  size_t k = data[0] % 16;
  if (k > size - 1)
    k = size - 1;
  const uint8_t *lens = data + 1, *stream = data + 1 + k;
  size_t n = size - 1 - k;
  struct result want = {0};
  want.f = malloc((n / 2 + 1) * sizeof *want.f);
  check(want.f != NULL);
  reference(stream, n, &want);
  static const uint8_t one = 1;
  follow_all(stream, n, NULL, 0, &want); /* whole */
  follow_all(stream, n, &one, 1, &want); /* a byte at a time */
  follow_all(stream, n, lens, k, &want);
  free(want.f);
  return 0;
}
