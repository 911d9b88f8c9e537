/* JSON helpers. */
#include "json.h"
#include "valid.h"

#include <string.h>

/* json-c, even in strict mode, lets through what JSON (RFC 8259) is not:
 * NaN/Infinity and "1." as numbers, single quotes, raw control characters in
 * strings, ill-formed UTF-8. Bodies from the network are checked token by token
 * here first; json-c then builds the value (and checks the nesting). Returns
 * NULL when the text is lexically JSON, else a reason. */
static const char *lex_check(const char *s, size_t len)
{
  if (!sortie_utf8_valid((const unsigned char *)s, len))
    return "JSON has invalid UTF-8";
  size_t i = 0;
  while (i < len) {
    char c = s[i];
    if (c == '"') {
      for (i++;; i++) {
        if (i >= len)
          return "JSON ends too early";
        unsigned char d = (unsigned char)s[i];
        if (d == '"')
          break;
        if (d < 0x20)
          return "a JSON string holds a raw control character";
        if (d == '\\') {
          if (++i >= len)
            return "JSON ends too early";
          if (s[i] == 'u') {
            for (int k = 1; k <= 4; k++)
              if (i + (size_t)k >= len || !strchr("0123456789abcdefABCDEF", s[i + (size_t)k]) ||
                  s[i + (size_t)k] == '\0')
                return "body is not valid JSON";
            i += 4;
          } else if (s[i] == '\0' || !strchr("\"\\/bfnrt", s[i])) {
            return "body is not valid JSON";
          }
        }
      }
      i++;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '{' || c == '}' ||
               c == '[' || c == ']' || c == ',' || c == ':') {
      i++;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      /* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
      if (c == '-' && ++i >= len)
        return "body is not valid JSON";
      size_t d0 = i;
      if (s[i] == '0')
        i++;
      else if (s[i] >= '1' && s[i] <= '9')
        while (i < len && s[i] >= '0' && s[i] <= '9')
          i++;
      else
        return "body is not valid JSON";
      /* json-c holds integers in 64 bits and would clamp a longer one: refuse
       * it rather than change it */
      if (i == len || (s[i] != '.' && s[i] != 'e' && s[i] != 'E')) {
        size_t nd = i - d0;
        const char *lim = c == '-' ? "9223372036854775808" : "18446744073709551615";
        size_t ll = strlen(lim);
        if (nd > ll || (nd == ll && memcmp(s + d0, lim, ll) > 0))
          return "a number is too large to carry exactly; send it as a string";
      }
      if (i < len && s[i] == '.') {
        size_t f0 = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
          i++;
        if (i == f0)
          return "body is not valid JSON";
      }
      if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
          i++;
        size_t e0 = i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
          i++;
        if (i == e0)
          return "body is not valid JSON";
      }
    } else {
      static const char *const words[] = {"true", "false", "null"};
      size_t k;
      for (k = 0; k < 3; k++) {
        size_t wl = strlen(words[k]);
        if (len - i >= wl && memcmp(s + i, words[k], wl) == 0) {
          i += wl;
          break;
        }
      }
      if (k == 3)
        return "body is not valid JSON";
    }
  }
  return NULL;
}

json_object *sortie_json_parse(const char *s, size_t len, const char **why)
{
  if (len > 0x7fffffff) {
    *why = "body too large";
    return NULL;
  }
  const char *lex = lex_check(s, len);
  if (lex) {
    *why = lex;
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
  if (e == json_tokener_continue && end == len) {
    /* a bare number at the very end ("123") waits for more digits: end it */
    o = json_tokener_parse_ex(tok, " ", 1);
    e = json_tokener_get_error(tok);
    end = len;
  }
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
