/* libFuzzer target for sortie_query_get (lib/http.c) and sortie_log_redact_query (lib/log.c). */
/* Input: "name\nquery"; without a newline the name is "token". */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *buf = malloc(size + 1);
  if (buf == NULL)
    return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  const char *name = "token", *query = buf;
  char *nl = memchr(buf, '\n', size);
  if (nl) {
    *nl = '\0';
    name = buf;
    query = nl + 1;
  }

  static const size_t sizes[] = {1, 8, 256};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *out = malloc(sizes[i]); /* exactly n bytes: ASan catches overflows */
    if (out == NULL)
      break;
    long r = sortie_query_get(query, name, out, sizes[i]);
    if (r < -2 || (r >= 0 && ((size_t)r >= sizes[i] || strlen(out) != (size_t)r)))
      abort();
    free(out);
  }

  char red[64];
  sortie_log_redact_query(query, red, sizeof red);
  if (memchr(red, '\0', sizeof red) == NULL)
    abort();
  sortie_etag_match(query, name);
  free(buf);
  return 0;
}
