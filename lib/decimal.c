/* Exact decimal arithmetic on int64 mantissas with overflow checks. */
#include "decimal.h"

#include <string.h>

#define DEC_LIMIT 1000000000000000000LL /* 10^18: |units| must stay below */

static const int64_t pow10_tab[] = {1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL,
                                    10000000LL, 100000000LL};

int sortie_dec_parse(const char *s, size_t len, struct sortie_dec *out)
{
  size_t i = 0;
  int neg = 0, digits = 0, scale = 0, seen_point = 0, int_digits = 0;
  int64_t u = 0;
  if (len && s[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i >= len)
    return -1;
  for (; i < len; i++) {
    char c = s[i];
    if (c == '.') {
      if (seen_point || int_digits == 0)
        return -1;
      seen_point = 1;
      continue;
    }
    if (c < '0' || c > '9')
      return -1;
    if (seen_point) {
      if (++scale > SORTIE_DEC_MAX_SCALE)
        return -1;
    } else {
      int_digits++;
    }
    if (u == 0 && c == '0' && !seen_point)
      continue; /* leading zeros carry no digits */
    if (++digits > 18)
      return -1;
    u = u * 10 + (c - '0');
  }
  if (int_digits == 0 || (seen_point && scale == 0))
    return -1;
  out->units = neg ? -u : u;
  out->scale = scale;
  return 0;
}

size_t sortie_dec_format(struct sortie_dec d, char *buf)
{
  char tmp[SORTIE_DEC_STRLEN];
  uint64_t u = d.units < 0 ? (uint64_t)0 - (uint64_t)d.units : (uint64_t)d.units;
  int n = 0;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  while (n <= d.scale)
    tmp[n++] = '0'; /* at least one digit before the point */
  size_t o = 0;
  if (d.units < 0)
    buf[o++] = '-';
  for (int i = n - 1; i >= 0; i--) {
    buf[o++] = tmp[i];
    if (i == d.scale && d.scale > 0)
      buf[o++] = '.';
  }
  buf[o] = '\0';
  return o;
}

int sortie_dec_rescale(struct sortie_dec d, int scale, struct sortie_dec *out)
{
  if (scale < d.scale || scale > SORTIE_DEC_MAX_SCALE)
    return -1;
  int64_t r;
  if (__builtin_mul_overflow(d.units, pow10_tab[scale - d.scale], &r) || r >= DEC_LIMIT ||
      r <= -DEC_LIMIT)
    return -1;
  out->units = r;
  out->scale = scale;
  return 0;
}

static int align(struct sortie_dec *a, struct sortie_dec *b)
{
  int s = a->scale > b->scale ? a->scale : b->scale;
  if (sortie_dec_rescale(*a, s, a) < 0 || sortie_dec_rescale(*b, s, b) < 0)
    return -1;
  return 0;
}

int sortie_dec_add(struct sortie_dec a, struct sortie_dec b, struct sortie_dec *out)
{
  if (align(&a, &b) < 0)
    return -1;
  int64_t r;
  if (__builtin_add_overflow(a.units, b.units, &r) || r >= DEC_LIMIT || r <= -DEC_LIMIT)
    return -1;
  out->units = r;
  out->scale = a.scale;
  return 0;
}

int sortie_dec_sub(struct sortie_dec a, struct sortie_dec b, struct sortie_dec *out)
{
  b.units = -b.units; /* |units| < 10^18, so negation cannot overflow */
  return sortie_dec_add(a, b, out);
}

int sortie_dec_cmp(struct sortie_dec a, struct sortie_dec b)
{
  /* compare integer parts first, then the fractions at a common scale: no
   * rescaling of the whole value, so no overflow is possible */
  int64_t ai = a.units / pow10_tab[a.scale], bi = b.units / pow10_tab[b.scale];
  if (ai != bi)
    return ai < bi ? -1 : 1;
  int64_t af = (a.units % pow10_tab[a.scale]) * pow10_tab[SORTIE_DEC_MAX_SCALE - a.scale];
  int64_t bf = (b.units % pow10_tab[b.scale]) * pow10_tab[SORTIE_DEC_MAX_SCALE - b.scale];
  return af < bf ? -1 : af > bf;
}

int sortie_dec_sign(struct sortie_dec d)
{
  return d.units < 0 ? -1 : d.units > 0;
}
