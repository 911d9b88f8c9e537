/* libFuzzer target for lib/json.c: sortie_json_parse on any bytes, and the escapers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data, *why = NULL;

  /* the parser takes a slice: no NUL terminator, so ASan sees any over-read */
  json_object *o = sortie_json_parse(s, size, &why);
  if (o == NULL) {
    if (why == NULL || why[0] == '\0')
      abort(); /* every refusal has a reason */
  } else {
    if (json_object_is_type(o, json_type_null))
      abort(); /* a null document is refused */
    const char *str;
    size_t len;
    long long v;
    if (sortie_json_str(o, "signal_id", &str, &len) == 0 && str[len] != '\0')
      abort(); /* borrowed strings end at their length */
    sortie_json_int(o, "timestamp", &v);
    json_object_put(o);
  }

  /* a JSON string made by sortie_json_quote, if accepted, reads back as the input */
  struct sortie_buf b = {0};
  sortie_json_quote(&b, s, size);
  json_object *q = sortie_json_parse(b.base, b.len, &why);
  if (q) {
    if (!json_object_is_type(q, json_type_string) ||
        (size_t)json_object_get_string_len(q) != size ||
        memcmp(json_object_get_string(q), s, size) != 0)
      abort();
    json_object_put(q);
  }
  if (memmem(b.base, b.len, "</", 2) != NULL)
    abort();
  sortie_buf_reset(&b);

  sortie_json_script_escape(&b, s, size);
  if (memchr(b.base, '<', b.len) || memchr(b.base, '>', b.len))
    abort();
  sortie_buf_reset(&b);

  sortie_html_escape(&b, s, size);
  if (memchr(b.base, '<', b.len) || memchr(b.base, '"', b.len) || memchr(b.base, '\'', b.len))
    abort();
  sortie_buf_free(&b);

  sortie_has_ctl(s, size, 0);
  sortie_has_ctl(s, size, 1);
  return 0;
}
