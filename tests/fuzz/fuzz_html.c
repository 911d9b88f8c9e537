/* libFuzzer target for the escapers of the mission page (lib/json.c, used by
 * lib/page.c): sortie_html_escape must leave no raw < > " ' and no & that does
 * not start one of its five entities, and must read back as the input once
 * unescaped; sortie_json_script_escape must leave no < > & and no raw U+2028 /
 * U+2029, and a JSON text escaped by it must still parse to the same value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
  const char *ent;
  char c;
} ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}};

/* Decodes the five entities into out; aborts on a raw special character or a
 * stray '&'. */
static void html_unescape(const char *s, size_t n, struct sortie_buf *out)
{
  for (size_t i = 0; i < n;) {
    char c = s[i];
    if (c == '<' || c == '>' || c == '"' || c == '\'')
      abort();
    if (c != '&') {
      sortie_buf_putc(out, c);
      i++;
      continue;
    }
    size_t k = 0, nents = sizeof ents / sizeof ents[0];
    while (k < nents &&
           (n - i < strlen(ents[k].ent) || memcmp(s + i, ents[k].ent, strlen(ents[k].ent)) != 0))
      k++;
    if (k == nents)
      abort(); /* an '&' that starts no entity */
    sortie_buf_putc(out, ents[k].c);
    i += strlen(ents[k].ent);
  }
}

static void check_script(const char *s, size_t size)
{
  struct sortie_buf b = {0};
  sortie_json_script_escape(&b, s, size);
  if (b.len < size || memchr(b.base, '<', b.len) || memchr(b.base, '>', b.len) ||
      memchr(b.base, '&', b.len) || memmem(b.base, b.len, "\xe2\x80\xa8", 3) ||
      memmem(b.base, b.len, "\xe2\x80\xa9", 3))
    abort();
  const char *why;
  json_object *a = sortie_json_parse(s, size, &why);
  if (a) {
    json_object *e = sortie_json_parse(b.base, b.len, &why);
    if (e == NULL || !json_object_equal(a, e))
      abort(); /* escaping changed a valid JSON text */
    json_object_put(e);
    json_object_put(a);
  }
  sortie_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* an exact-size copy: ASan sees any read past the end of the slice */
  char *s = malloc(size ? size : 1);
  if (s == NULL)
    return 0;
  memcpy(s, data, size);

  struct sortie_buf b = {0}, back = {0};
  sortie_html_escape(&b, s, size);
  html_unescape(b.base, b.len, &back);
  if (back.len != size || (size && memcmp(back.base, s, size) != 0))
    abort();
  sortie_buf_free(&back);
  sortie_buf_free(&b);

  /* the page's JSON block: the input as a JSON text, and as a string quoted
   * by sortie_json_quote (what page.c's values become) */
  check_script(s, size);
  sortie_json_quote(&b, s, size);
  check_script(b.base, b.len);
  sortie_buf_free(&b);
  free(s);
  return 0;
}
