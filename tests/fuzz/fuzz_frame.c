/* libFuzzer target for pushd/frame.c: an SSE message made from any payload must
 * read back, by the rules browsers follow (WHATWG "event stream
 * interpretation"), as exactly one event whose data is the payload with its
 * line breaks made "\n"; and a WebSocket frame's header must give back the
 * payload length. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Interprets an event stream; returns the number of events dispatched and the
 * data of the last one in *out. */
static int interpret(const char *s, size_t n, struct sortie_buf *out)
{
  int events = 0;
  struct sortie_buf d = {0};
  int have_data = 0;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && s[j] != '\n' && s[j] != '\r')
      j++;
    if (j == n)
      break; /* an unterminated line is not processed */
    const char *line = s + i;
    size_t ll = j - i;
    if (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n')
      j++;
    i = j + 1;
    if (ll == 0) {
      if (have_data) {
        events++;
        sortie_buf_reset(out);
        /* the data buffer's last "\n" is dropped */
        sortie_buf_append(out, d.base, d.len ? d.len - 1 : 0);
      }
      sortie_buf_reset(&d);
      have_data = 0;
      continue;
    }
    if (ll >= 5 && memcmp(line, "data:", 5) == 0) {
      size_t k = 5;
      if (k < ll && line[k] == ' ')
        k++;
      sortie_buf_append(&d, line + k, ll - k);
      sortie_buf_putc(&d, '\n');
      have_data = 1;
    }
  }
  sortie_buf_free(&d);
  return events;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *p = (const char *)data;
  struct sortie_buf frame = {0}, got = {0}, want = {0};
  pd_sse_frame(&frame, "1-0", "x", p, size);
  if (interpret(frame.base, frame.len, &got) != 1)
    abort();
  for (size_t i = 0; i < size; i++) {
    if (p[i] == '\r') {
      sortie_buf_putc(&want, '\n');
      if (i + 1 < size && p[i + 1] == '\n')
        i++;
    } else {
      sortie_buf_putc(&want, p[i]);
    }
  }
  if (got.len != want.len || (want.len && memcmp(got.base, want.base, want.len) != 0))
    abort();
  sortie_buf_reset(&frame);
  pd_ws_frame(&frame, 1, p, size);
  const unsigned char *f = (const unsigned char *)frame.base;
  size_t len = f[1] & 0x7f, h = 2;
  if (len == 126) {
    len = (size_t)f[2] << 8 | f[3];
    h = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | f[2 + i];
    h = 10;
  }
  if (f[0] != 0x81 || len != size || frame.len != h + size || memcmp(f + h, p, size) != 0)
    abort();
  sortie_buf_free(&frame);
  sortie_buf_free(&got);
  sortie_buf_free(&want);
  return 0;
}
