/* libFuzzer target for lib/auth.c: sortie_auth_find_token, then sortie_auth_verify (HS256). */
/* Input: "authorization\ncookie\nquery"; a missing part is absent (NULL). What
 * find_token returns is verified with a fixed HS256 config, and so is the whole
 * input taken as a token. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1732212345L

static unsigned char key[] = "k3y-for-fuzzing-only-0123456789abcdefghi"; /* 40 bytes */

static int token_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.';
}

static void check_verify(const struct sortie_cfg *c, const char *tok)
{
  struct sortie_identity id;
  const char *why = NULL;
  if (sortie_auth_verify(c, tok, NOW, &id, &why) == 0) {
    if (!sortie_valid_id(id.sub, strlen(id.sub)) || id.role < SORTIE_ROLE_USER ||
        id.role > SORTIE_ROLE_SERVICE || id.exp <= NOW - c->jwt_leeway_s)
      abort();
  } else if (why == NULL || why[0] == '\0') {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *buf = malloc(size + 1);
  if (buf == NULL)
    return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *part[3] = {buf, NULL, NULL};
  for (int i = 1; i < 3 && part[i - 1]; i++) {
    char *nl = strchr(part[i - 1], '\n');
    if (nl) {
      *nl = '\0';
      part[i] = nl + 1;
    }
  }

  struct sortie_cfg c;
  memset(&c, 0, sizeof c);
  strcpy(c.jwt_alg, "HS256");
  c.jwt_key = key;
  c.jwt_key_len = 40;
  c.jwt_leeway_s = 30;

  char with[SORTIE_TOKEN_MAX + 1], without[SORTIE_TOKEN_MAX + 1];
  const char *src_with = NULL, *src_without = NULL;
  int rw = sortie_auth_find_token(part[0], part[1], part[2], 1, with, sizeof with, &src_with);
  int ro = sortie_auth_find_token(part[0], part[1], part[2], 0, without, sizeof without,
                                  &src_without);
  /* the query is only a fallback: allowing it never changes a header/cookie find */
  if (ro == 0 && (rw != 0 || strcmp(with, without) != 0 || strcmp(src_with, src_without) != 0))
    abort();
  if (ro == 0 && strcmp(src_without, "query") == 0)
    abort();
  if (rw == 0) {
    size_t n = strlen(with);
    if (n == 0 || n > SORTIE_TOKEN_MAX)
      abort();
    for (size_t i = 0; i < n; i++)
      if (!token_char(with[i]))
        abort(); /* nothing that could inject into a header or a log */
    check_verify(&c, with);
  }
  /* the whole input as a token, too (up to its first NUL) */
  check_verify(&c, buf);
  free(buf);
  return 0;
}
