/* JSON helpers. */
#include "json.h"

#include <string.h>

json_object *sortie_json_parse(const char *s, size_t len, const char **why)
{
  if (len > 0x7fffffff) {
    *why = "body too large";
    return NULL;
  }
  struct json_tokener *tok = json_tokener_new_ex(SORTIE_JSON_MAX_DEPTH);
  if (tok == NULL) {
    *why = "out of memory";
    return NULL;
  }
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  json_object *o = json_tokener_parse_ex(tok, s, (int)len);
  enum json_tokener_error e = json_tokener_get_error(tok);
  size_t end = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  if (e != json_tokener_success) {
    if (o)
      json_object_put(o);
    switch (e) {
    case json_tokener_continue:
      *why = "JSON ends too early";
      break;
    case json_tokener_error_depth:
      *why = "JSON nests too deeply";
      break;
    case json_tokener_error_parse_utf8_string:
      *why = "JSON has invalid UTF-8";
      break;
    default:
      *why = "body is not valid JSON";
      break;
    }
    return NULL;
  }
  for (; end < len; end++) {
    char c = s[end];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      if (o)
        json_object_put(o);
      *why = "body has data after the JSON value";
      return NULL;
    }
  }
  if (o == NULL) {
    *why = "body is JSON null";
    return NULL;
  }
  return o;
}

int sortie_json_str(json_object *o, const char *key, const char **s, size_t *len)
{
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || v == NULL)
    return 1;
  if (!json_object_is_type(v, json_type_string))
    return -1;
  *s = json_object_get_string(v);
  if (len)
    *len = (size_t)json_object_get_string_len(v);
  return 0;
}

int sortie_json_int(json_object *o, const char *key, long long *v)
{
  json_object *x;
  if (!json_object_object_get_ex(o, key, &x) || x == NULL)
    return 1;
  if (!json_object_is_type(x, json_type_int))
    return -1;
  *v = (long long)json_object_get_int64(x);
  return 0;
}

int sortie_has_ctl(const char *s, size_t len, int allow_newline)
{
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) {
      if (allow_newline && (c == '\n' || (c == '\r' && i + 1 < len && s[i + 1] == '\n')))
        continue;
      if (allow_newline && c == '\t')
        continue;
      return 1;
    }
  }
  return 0;
}

void sortie_html_escape(struct sortie_buf *b, const char *s, size_t len)
{
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    const char *rep = NULL;
    switch (s[i]) {
    case '&': rep = "&amp;"; break;
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '"': rep = "&quot;"; break;
    case '\'': rep = "&#39;"; break;
    default: break;
    }
    if (rep) {
      sortie_buf_append(b, s + run, i - run);
      sortie_buf_puts(b, rep);
      run = i + 1;
    }
  }
  sortie_buf_append(b, s + run, len - run);
}

void sortie_json_script_escape(struct sortie_buf *b, const char *s, size_t len)
{
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    const char *rep = NULL;
    size_t skip = 1;
    unsigned char c = (unsigned char)s[i];
    if (c == '<')
      rep = "\\u003c";
    else if (c == '>')
      rep = "\\u003e";
    else if (c == '&')
      rep = "\\u0026";
    else if (c == 0xe2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80 &&
             ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
      rep = (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
      skip = 3;
    }
    if (rep) {
      sortie_buf_append(b, s + run, i - run);
      sortie_buf_puts(b, rep);
      i += skip - 1;
      run = i + 1;
    }
  }
  sortie_buf_append(b, s + run, len - run);
}

void sortie_json_quote(struct sortie_buf *b, const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  sortie_buf_putc(b, '"');
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': sortie_buf_puts(b, "\\\""); break;
    case '\\': sortie_buf_puts(b, "\\\\"); break;
    case '/': sortie_buf_puts(b, "\\/"); break;
    case '\n': sortie_buf_puts(b, "\\n"); break;
    case '\r': sortie_buf_puts(b, "\\r"); break;
    case '\t': sortie_buf_puts(b, "\\t"); break;
    default:
      if (c < 0x20 || c == 0x7f) {
        char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
        sortie_buf_puts(b, u);
      } else {
        sortie_buf_putc(b, (char)c);
      }
    }
  }
  sortie_buf_putc(b, '"');
}
