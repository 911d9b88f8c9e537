/* libFuzzer target for lib/valid.c: cursors (event ids: parse, print, parse again),
 * channel names and the UTF-8 check. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "valid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

  /* a cursor is an event id: what parses must print back the same numbers */
  if (sortie_event_id_parse(s, size, &ms, &seq) == 0) {
    char back[48];
    int n = snprintf(back, sizeof back, "%llu-%llu", (unsigned long long)ms,
                     (unsigned long long)seq);
    uint64_t ms2, seq2;
    if (sortie_event_id_parse(back, (size_t)n, &ms2, &seq2) != 0 || ms2 != ms || seq2 != seq)
      abort();
  }
  sortie_utf8_valid((const unsigned char *)s, size);
  free(s);
  return 0;
}
