/* JSON helpers over json-c: strict parsing of untrusted bodies, typed field
 * access, and escaping for HTML text and for JSON placed inside <script>. */
#ifndef SORTIE_JSON_H
#define SORTIE_JSON_H

#include <json-c/json.h>
#include <stddef.h>

#include "buf.h"

#define SORTIE_JSON_MAX_DEPTH 16

/** Parses exactly one JSON value from `len` bytes: strict syntax, valid UTF-8,
 * nesting at most SORTIE_JSON_MAX_DEPTH, nothing after it but white space.
 * Returns a new object (caller puts it with json_object_put) or NULL with a
 * static reason in `*why`. A JSON `null` document is refused too. */
json_object *sortie_json_parse(const char *s, size_t len, const char **why);

/** Typed getters on an object's member. Return 0 when present with the type, 1
 * when absent (or JSON null), -1 when present with another type. Strings are
 * borrowed from `o`. */
int sortie_json_str(json_object *o, const char *key, const char **s, size_t *len);
int sortie_json_int(json_object *o, const char *key, long long *v);

/** 1 if `s` has a control character (< 0x20 or 0x7f); with allow_newline,
 * '\n' (and '\r' before it) and '\t' are allowed. */
int sortie_has_ctl(const char *s, size_t len, int allow_newline);

/** Appends `s` with & < > " ' escaped as HTML entities. */
void sortie_html_escape(struct sortie_buf *b, const char *s, size_t len);
/** Appends JSON text made safe inside an HTML <script> element: < > & and
 * U+2028/U+2029 become \u escapes (still the same JSON value). */
void sortie_json_script_escape(struct sortie_buf *b, const char *json, size_t len);
/** Appends `s` as a JSON string literal (with quotes), escaping as JSON needs
 * plus '/' so "</script>" cannot appear. */
void sortie_json_quote(struct sortie_buf *b, const char *s, size_t len);

#endif
