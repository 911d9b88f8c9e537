/* libFuzzer target for lib/decimal.c: parse, format, parse again gives the same value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s = malloc(size ? size : 1); /* exactly `size` bytes: ASan catches over-reads */
  if (s == NULL)
    return 0;
  memcpy(s, data, size);

  struct sortie_dec d, e;
  if (sortie_dec_parse(s, size, &d) == 0) {
    if (d.scale < 0 || d.scale > SORTIE_DEC_MAX_SCALE || d.units >= 1000000000000000000LL ||
        d.units <= -1000000000000000000LL)
      abort();
    char buf[SORTIE_DEC_STRLEN];
    size_t n = sortie_dec_format(d, buf);
    if (n != strlen(buf) || n >= SORTIE_DEC_STRLEN)
      abort();
    if (sortie_dec_parse(buf, n, &e) != 0 || e.units != d.units || e.scale != d.scale)
      abort();
    if (sortie_dec_cmp(d, e) != 0)
      abort();
    /* the value compares equal to itself at the largest scale, when that fits */
    struct sortie_dec r;
    if (sortie_dec_rescale(d, SORTIE_DEC_MAX_SCALE, &r) == 0 && sortie_dec_cmp(d, r) != 0)
      abort();
    /* d - d is zero */
    if (sortie_dec_sub(d, d, &r) != 0 || sortie_dec_sign(r) != 0)
      abort();
  }
  free(s);
  return 0;
}
