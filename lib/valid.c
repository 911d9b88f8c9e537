/* Hand-written matchers for the few fixed grammars of the contract: simpler and
 * faster than a regex engine, and each one fuzzed (tests/fuzz). */
#include "valid.h"

#include <string.h>

static int idchar(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

int sortie_valid_id(const char *s, size_t len)
{
  if (len < 1 || len > SORTIE_ID_MAX)
    return 0;
  /* "." and ".." would be path segments that clients and proxies rewrite */
  if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
    return 0;
  for (size_t i = 0; i < len; i++)
    if (!idchar(s[i]))
      return 0;
  return 1;
}

int sortie_valid_symbol(const char *s, size_t len)
{
  if (len < 1 || len > SORTIE_SYMBOL_MAX)
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return 1;
}

int sortie_valid_event_type(const char *s, size_t len)
{
  if (len < 1 || len > 64 || s[0] < 'a' || s[0] > 'z')
    return 0;
  for (size_t i = 1; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

int sortie_reserved_event_type(const char *s, size_t len)
{
  static const char *const reserved[] = {"reset", "subscribed", "unsubscribed", "pong",
                                         "error", "connection_status"};
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strlen(reserved[i]) == len && memcmp(reserved[i], s, len) == 0)
      return 1;
  return 0;
}

enum sortie_chan_kind sortie_channel_parse(const char *s, size_t len, const char **arg,
                                           size_t *arglen)
{
  size_t k = 0;
  while (k < len && s[k] >= 'a' && s[k] <= 'z')
    k++;
  if (k == 0 || k > 16)
    return SORTIE_CHAN_INVALID;
  const char *a = s + len;
  size_t alen = 0;
  if (k < len) {
    if (s[k] != ':' || !sortie_valid_id(s + k + 1, len - k - 1))
      return SORTIE_CHAN_INVALID;
    a = s + k + 1;
    alen = len - k - 1;
  }
  if (arg)
    *arg = a;
  if (arglen)
    *arglen = alen;
#define IS(lit) (k == sizeof(lit) - 1 && memcmp(s, lit, k) == 0)
  if (alen == 0) {
    if (IS("signals"))
      return SORTIE_CHAN_SIGNALS;
    if (IS("admin"))
      return SORTIE_CHAN_ADMIN;
    return SORTIE_CHAN_UNKNOWN;
  }
  if (IS("mission"))
    return SORTIE_CHAN_MISSION;
  if (IS("user"))
    return SORTIE_CHAN_USER;
  if (IS("market"))
    return sortie_valid_symbol(a, alen) ? SORTIE_CHAN_MARKET : SORTIE_CHAN_UNKNOWN;
  return SORTIE_CHAN_UNKNOWN;
#undef IS
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
  if (len < 1 || len > 20)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
      return -1;
  }
  *out = v;
  return 0;
}

int sortie_event_id_parse(const char *s, size_t len, uint64_t *ms, uint64_t *seq)
{
  if (len == 1 && s[0] == '0') {
    *ms = *seq = 0;
    return 0;
  }
  const char *dash = memchr(s, '-', len);
  if (dash == NULL)
    return -1;
  size_t a = (size_t)(dash - s);
  if (parse_u64(s, a, ms) < 0 || parse_u64(dash + 1, len - a - 1, seq) < 0)
    return -1;
  return 0;
}

int sortie_event_id_cmp(const char *a, const char *b)
{
  uint64_t am = 0, as = 0, bm = 0, bs = 0;
  if (sortie_event_id_parse(a, strlen(a), &am, &as) < 0)
    am = as = 0;
  if (sortie_event_id_parse(b, strlen(b), &bm, &bs) < 0)
    bm = bs = 0;
  if (am != bm)
    return am < bm ? -1 : 1;
  return as < bs ? -1 : as > bs;
}

int sortie_unhex(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int sortie_utf8_valid(const unsigned char *s, size_t len)
{
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + n >= len)
      return 0;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    /* overlong forms, surrogates and beyond U+10FFFF are not UTF-8 */
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return 0;
    i += n + 1;
  }
  return 1;
}

size_t sortie_utf8_prefix(const char *s, size_t len, size_t max)
{
  size_t n = len < max ? len : max;
  /* never end inside a character: back off to its first byte */
  while (n > 0 && n < len && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return sortie_utf8_valid((const unsigned char *)s, n) ? n : 0;
}
