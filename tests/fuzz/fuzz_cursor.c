/* libFuzzer target for lib/valid.c: cursors (parse, format, parse again) and channel names. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "valid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXPOS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* the parsers take slices; a copy of exactly `size` bytes lets ASan catch any
   * read past the end */
  char *s = malloc(size ? size : 1);
  if (s == NULL)
    return 0;
  memcpy(s, data, size);

  const char *arg = NULL;
  size_t alen = 0;
  enum sortie_chan_kind k = sortie_channel_parse(s, size, &arg, &alen);
  if (k != SORTIE_CHAN_INVALID && (arg < s || arg + alen != s + size))
    abort(); /* the argument is the tail of the name */
  uint64_t ms, seq;
  sortie_stream_id_parse(s, size, &ms, &seq);

  struct sortie_cursor_pos pos[MAXPOS], again[MAXPOS];
  size_t n = 0, m = 0;
  if (sortie_cursor_parse(s, size, pos, MAXPOS, &n) == 0) {
    if (n == 0 || n > MAXPOS)
      abort();
    struct sortie_buf b = {0};
    sortie_cursor_format(pos, n, &b);
    /* nothing in a valid cursor is normalised away: format gives the input back */
    if (b.len != size || memcmp(b.base, s, size) != 0)
      abort();
    if (sortie_cursor_parse(b.base, b.len, again, MAXPOS, &m) != 0 || m != n)
      abort();
    for (size_t i = 0; i < n; i++) {
      if (strcmp(pos[i].channel, again[i].channel) != 0 || strcmp(pos[i].id, again[i].id) != 0)
        abort();
      if (sortie_channel_parse(pos[i].channel, strlen(pos[i].channel), NULL, NULL) ==
          SORTIE_CHAN_INVALID)
        abort();
      if (sortie_stream_id_parse(pos[i].id, strlen(pos[i].id), &ms, &seq) != 0)
        abort();
      for (size_t j = 0; j < i; j++)
        if (strcmp(pos[i].channel, pos[j].channel) == 0)
          abort(); /* duplicates are refused */
    }
    sortie_buf_free(&b);
  }
  free(s);
  return 0;
}
