/* Exact decimals for money and prices. No binary floating point anywhere.
 *
 * A value is `units / 10^scale` with 0 <= scale <= 8 and |units| < 10^18.
 * Text form: optional '-', one or more digits, optionally '.' and 1..8 digits
 * ("145.75", "-0.5", "1.10"). No '+', no exponent, no spaces. The scale the text
 * was written with is kept, so "1.10" prints back as "1.10". */
#ifndef SORTIE_DECIMAL_H
#define SORTIE_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#define SORTIE_DEC_MAX_SCALE 8
/** Longest text form plus NUL: sign + 18 digits + point + leading "0." padding. */
#define SORTIE_DEC_STRLEN 32

struct sortie_dec {
  int64_t units;
  int scale;
};

/** Parses `len` bytes at `s`. Returns 0, or -1 if the text is not a decimal of
 * the form above or does not fit (more than 18 digits, more than 8 decimals). */
int sortie_dec_parse(const char *s, size_t len, struct sortie_dec *out);
/** Writes the text form with the value's own scale into `buf` (at least
 * SORTIE_DEC_STRLEN bytes). Returns the length written. */
size_t sortie_dec_format(struct sortie_dec d, char *buf);
/** Same value at a larger scale (exact). -1 if it would overflow or if `scale`
 * is smaller than d.scale or above SORTIE_DEC_MAX_SCALE. */
int sortie_dec_rescale(struct sortie_dec d, int scale, struct sortie_dec *out);
/** out = a + b / a - b at the larger of the two scales. -1 on overflow. */
int sortie_dec_add(struct sortie_dec a, struct sortie_dec b, struct sortie_dec *out);
int sortie_dec_sub(struct sortie_dec a, struct sortie_dec b, struct sortie_dec *out);
/** <0, 0, >0 as a is less than, equal to, greater than b (exact, any scales). */
int sortie_dec_cmp(struct sortie_dec a, struct sortie_dec b);
/** -1, 0 or 1. */
int sortie_dec_sign(struct sortie_dec d);

#endif
