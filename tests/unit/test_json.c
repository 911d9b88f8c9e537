/* lib/json.c: strict parsing of untrusted JSON, typed getters, HTML and <script> escaping. */
#include <criterion/criterion.h>
#include <string.h>

#include "json.h"

static json_object *parse(const char *s)
{
  const char *why = NULL;
  json_object *o = sortie_json_parse(s, strlen(s), &why);
  if (o == NULL) {
    cr_expect_not_null(why);
    cr_expect_gt(strlen(why), 0);
  }
  return o;
}

/* 1 if `len` bytes at `s` are refused. */
static int refused(const char *s, size_t len)
{
  const char *why = NULL;
  json_object *o = sortie_json_parse(s, len, &why);
  if (o) {
    json_object_put(o);
    return 0;
  }
  cr_expect_not_null(why);
  return 1;
}

static int refused_str(const char *s)
{
  return refused(s, strlen(s));
}

/* A JSON document of `depth` nested arrays. */
static const char *nested(int depth)
{
  static char buf[256];
  cr_assert_lt((size_t)depth * 2, sizeof buf);
  for (int i = 0; i < depth; i++) {
    buf[i] = '[';
    buf[depth + i] = ']';
  }
  buf[2 * depth] = '\0';
  return buf;
}

/* ---- parsing ---- */

Test(json_parse, valid_object)
{
  json_object *o = parse("{\"signal_id\":\"sig_1\",\"timestamp\":1732212345,\"ok\":true}");
  cr_assert_not_null(o);
  cr_assert(json_object_is_type(o, json_type_object));
  cr_assert_eq(json_object_object_length(o), 3);
  json_object_put(o);
}

Test(json_parse, leading_and_trailing_whitespace_is_fine)
{
  json_object *o = parse(" \r\n\t{\"a\":1} \n\t\r ");
  cr_assert_not_null(o);
  json_object_put(o);
}

Test(json_parse, trailing_garbage_is_refused)
{
  const char *bad[] = {"{\"a\":1}x", "{\"a\":1}{}", "{\"a\":1} 1", "{\"a\":1},", "[1]]",
                       "{\"a\":1} /* */"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(refused_str(bad[i]), 1, "'%s' accepted", bad[i]);
}

Test(json_parse, nul_byte_after_the_value_is_refused)
{
  cr_assert_eq(refused("{\"a\":1}\0", 8), 1);
}

Test(json_parse, only_len_bytes_are_read)
{
  const char *why;
  json_object *o = sortie_json_parse("{\"a\":1}garbage", 7, &why);
  cr_assert_not_null(o);
  json_object_put(o);
}

Test(json_parse, invalid_utf8_is_refused)
{
  const char *bad[] = {"{\"a\":\"\xff\"}", "{\"a\":\"\xe2\x82\"}", "{\"a\":\"\x80\"}",
                       "{\"a\":\"caf\xc3\"}", "{\"\xfe\":1}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(refused_str(bad[i]), 1, "invalid UTF-8 #%zu accepted", i);
}

Test(json_parse, valid_utf8_is_kept)
{
  json_object *o = parse("{\"a\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80\"}");
  cr_assert_not_null(o);
  const char *s;
  size_t n;
  cr_assert_eq(sortie_json_str(o, "a", &s, &n), 0);
  cr_assert_str_eq(s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80");
  json_object_put(o);
}

/* Overlong forms ("\xc0\xaf" is '/'), UTF-16 surrogates and code points past
 * U+10FFFF are not UTF-8 (RFC 3629). */
Test(json_parse, overlong_and_surrogate_utf8_is_refused)
{
  const char *bad[] = {"{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xe0\x80\xaf\"}",
                       "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(refused_str(bad[i]), 1, "ill-formed UTF-8 #%zu accepted", i);
}

Test(json_parse, nesting_up_to_the_limit_is_fine)
{
  json_object *o = parse(nested(SORTIE_JSON_MAX_DEPTH));
  cr_assert_not_null(o);
  json_object_put(o);
}

Test(json_parse, nesting_deeper_than_the_limit_is_refused)
{
  cr_assert_eq(refused_str(nested(SORTIE_JSON_MAX_DEPTH + 1)), 1);
  cr_assert_eq(refused_str(nested(100)), 1);
}

Test(json_parse, null_document_is_refused)
{
  cr_expect_eq(refused_str("null"), 1);
  cr_expect_eq(refused_str(" null \n"), 1);
}

Test(json_parse, truncated_documents_are_refused)
{
  const char *bad[] = {"", " ", "{", "{\"a\"", "{\"a\":", "{\"a\":\"x", "{\"a\":1", "[1,2",
                       "\"abc", "{\"a\":\"\\u00"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(refused_str(bad[i]), 1, "'%s' accepted", bad[i]);
}

Test(json_parse, non_strict_syntax_is_refused)
{
  const char *bad[] = {"{a:1}", "{\"a\":'x'}", "{\"a\":1,}", "[1,]", "{\"a\":01}",
                       "{\"a\":1 /* c */}", "{\"a\":.5}", "{\"a\":+1}", "{\"a\":1e}",
                       "{\"a\":\"\\x41\"}", "{\"a\":TRUE}", "{\"a\":1 \"b\":2}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(refused_str(bad[i]), 1, "'%s' accepted", bad[i]);
}

Test(json_parse, single_quoted_member_name_is_refused)
{
  cr_expect_eq(refused_str("{'a':1}"), 1, "{'a':1} accepted");
}

/* None of these is a JSON number, and json-c writes them back out verbatim, so
 * a published event carrying one is unparsable by every client. */
Test(json_parse, non_json_numbers_are_refused)
{
  const char *bad[] = {"{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":-Infinity}", "{\"a\":1.}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(refused_str(bad[i]), 1, "'%s' accepted", bad[i]);
}

/* RFC 8259 section 7: control characters in a string must be escaped. */
Test(json_parse, raw_control_character_in_a_string_is_refused)
{
  cr_expect_eq(refused_str("{\"a\":\"x\x01y\"}"), 1, "raw U+0001 accepted");
  cr_expect_eq(refused_str("{\"a\":\"x\ny\"}"), 1, "raw newline accepted");
}

/* json.h: "Parses exactly one JSON value"; a number or literal at the very end
 * of the bytes is a whole value too. */
Test(json_parse, bare_scalar_document_is_one_value)
{
  json_object *o = parse("123");
  cr_assert_not_null(o, "'123' refused");
  cr_assert_eq(json_object_get_int(o), 123);
  json_object_put(o);
  o = parse("true");
  cr_assert_not_null(o, "'true' refused");
  json_object_put(o);
}

/* ---- typed getters ---- */

static json_object *sample(void)
{
  json_object *o = parse("{\"s\":\"hello\",\"i\":-42,\"big\":9007199254740993,\"d\":1.5,"
                         "\"b\":true,\"n\":null,\"o\":{},\"a\":[1],\"si\":\"5\",\"z\":\"\"}");
  cr_assert_not_null(o);
  return o;
}

Test(json_getters, str_present)
{
  json_object *o = sample();
  const char *s = NULL;
  size_t n = 0;
  cr_assert_eq(sortie_json_str(o, "s", &s, &n), 0);
  cr_assert_str_eq(s, "hello");
  cr_assert_eq(n, 5);
  cr_assert_eq(sortie_json_str(o, "z", &s, &n), 0);
  cr_assert_eq(n, 0);
  json_object_put(o);
}

Test(json_getters, str_len_may_be_null)
{
  json_object *o = sample();
  const char *s = NULL;
  cr_assert_eq(sortie_json_str(o, "s", &s, NULL), 0);
  cr_assert_str_eq(s, "hello");
  json_object_put(o);
}

Test(json_getters, str_absent_or_null_is_1)
{
  json_object *o = sample();
  const char *s = "untouched";
  size_t n = 7;
  cr_expect_eq(sortie_json_str(o, "missing", &s, &n), 1);
  cr_expect_eq(sortie_json_str(o, "n", &s, &n), 1);
  cr_expect_str_eq(s, "untouched");
  json_object_put(o);
}

Test(json_getters, str_of_another_type_is_minus_1)
{
  json_object *o = sample();
  const char *s;
  size_t n;
  const char *keys[] = {"i", "d", "b", "o", "a"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    cr_expect_eq(sortie_json_str(o, keys[i], &s, &n), -1, "key %s", keys[i]);
  json_object_put(o);
}

Test(json_getters, int_present)
{
  json_object *o = sample();
  long long v = 0;
  cr_assert_eq(sortie_json_int(o, "i", &v), 0);
  cr_assert_eq(v, -42);
  cr_assert_eq(sortie_json_int(o, "big", &v), 0);
  cr_assert_eq(v, 9007199254740993LL);
  json_object_put(o);
}

Test(json_getters, int_absent_or_null_is_1)
{
  json_object *o = sample();
  long long v = 77;
  cr_expect_eq(sortie_json_int(o, "missing", &v), 1);
  cr_expect_eq(sortie_json_int(o, "n", &v), 1);
  cr_expect_eq(v, 77);
  json_object_put(o);
}

Test(json_getters, int_of_another_type_is_minus_1)
{
  json_object *o = sample();
  long long v;
  const char *keys[] = {"s", "si", "d", "b", "o", "a"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    cr_expect_eq(sortie_json_int(o, keys[i], &v), -1, "key %s", keys[i]);
  json_object_put(o);
}

/* ---- control characters ---- */

static int ctl(const char *s, int allow_newline)
{
  return sortie_has_ctl(s, strlen(s), allow_newline);
}

Test(has_ctl, plain_text_and_utf8_have_none)
{
  cr_expect_eq(ctl("Buy AAPL at 145.75 <now>", 0), 0);
  cr_expect_eq(ctl("caf\xc3\xa9 \xe2\x80\xa8", 0), 0);
  cr_expect_eq(ctl("", 0), 0);
}

Test(has_ctl, control_bytes_are_found)
{
  cr_expect_eq(ctl("a\x01" "b", 0), 1);
  cr_expect_eq(ctl("a\x1f", 1), 1);
  cr_expect_eq(ctl("\x7f", 0), 1);
  cr_expect_eq(ctl("\x1b[31m", 1), 1);
  cr_expect_eq(sortie_has_ctl("a\0b", 3, 1), 1);
}

Test(has_ctl, newlines_only_when_allowed)
{
  cr_expect_eq(ctl("line1\nline2", 0), 1);
  cr_expect_eq(ctl("line1\nline2", 1), 0);
  cr_expect_eq(ctl("line1\r\nline2", 0), 1);
  cr_expect_eq(ctl("line1\r\nline2", 1), 0);
}

Test(has_ctl, bare_carriage_return_is_never_allowed)
{
  cr_expect_eq(ctl("a\rb", 1), 1);
  cr_expect_eq(ctl("a\r", 1), 1);
  cr_expect_eq(sortie_has_ctl("a\r\n", 2, 1), 1); /* the \n is past len */
}

Test(has_ctl, reads_only_len_bytes)
{
  cr_expect_eq(sortie_has_ctl("ab\x01", 2, 0), 0);
}

/* ---- escaping ---- */

Test(html_escape, escapes_the_five_characters)
{
  struct sortie_buf b = {0};
  const char *s = "<a href=\"x\" title='y'>Tom & Jerry</a>";
  sortie_html_escape(&b, s, strlen(s));
  cr_assert_str_eq(b.base,
                   "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry&lt;/a&gt;");
  sortie_buf_free(&b);
}

Test(html_escape, plain_text_is_unchanged_and_appended)
{
  struct sortie_buf b = {0};
  sortie_buf_puts(&b, "pre:");
  sortie_html_escape(&b, "caf\xc3\xa9 123", 9);
  cr_assert_str_eq(b.base, "pre:caf\xc3\xa9 123");
  cr_assert_eq(b.len, 13);
  sortie_buf_free(&b);
}

Test(html_escape, escapes_at_both_ends)
{
  struct sortie_buf b = {0};
  sortie_html_escape(&b, "&x<", 3);
  cr_assert_str_eq(b.base, "&amp;x&lt;");
  sortie_buf_free(&b);
}

/* JSON text with a string that tries to leave the <script> element. */
static const char script_json[] =
    "{\"t\":\"</script><script>alert(1)</script><!-- & \xe2\x80\xa8 \xe2\x80\xa9 \\u003c\"}";

Test(json_script_escape, script_end_tag_does_not_survive)
{
  struct sortie_buf b = {0};
  sortie_json_script_escape(&b, script_json, strlen(script_json));
  cr_assert_null(strstr(b.base, "</script"));
  cr_assert_null(strchr(b.base, '<'));
  cr_assert_null(strchr(b.base, '>'));
  cr_assert_null(strchr(b.base, '&'));
  cr_assert_not_null(strstr(b.base, "\\u003c/script\\u003e"));
  sortie_buf_free(&b);
}

Test(json_script_escape, line_and_paragraph_separators_are_escaped)
{
  struct sortie_buf b = {0};
  sortie_json_script_escape(&b, script_json, strlen(script_json));
  cr_assert_null(strstr(b.base, "\xe2\x80\xa8"));
  cr_assert_null(strstr(b.base, "\xe2\x80\xa9"));
  cr_assert_not_null(strstr(b.base, "\\u2028"));
  cr_assert_not_null(strstr(b.base, "\\u2029"));
  sortie_buf_free(&b);
}

Test(json_script_escape, result_parses_to_the_same_value)
{
  struct sortie_buf b = {0};
  sortie_json_script_escape(&b, script_json, strlen(script_json));
  json_object *before = parse(script_json), *after = parse(b.base);
  cr_assert_not_null(before);
  cr_assert_not_null(after);
  cr_assert(json_object_equal(before, after), "escaped: %s", b.base);
  json_object_put(before);
  json_object_put(after);
  sortie_buf_free(&b);
}

Test(json_script_escape, other_utf8_is_left_alone)
{
  struct sortie_buf b = {0};
  const char *s = "[\"\xe2\x80\xa7\xe2\x82\xac\"]"; /* U+2027, U+20AC */
  sortie_json_script_escape(&b, s, strlen(s));
  cr_assert_str_eq(b.base, s);
  sortie_buf_free(&b);
}

Test(json_quote, escapes_what_json_needs_and_the_slash)
{
  struct sortie_buf b = {0};
  const char *s = "a\"b\\c/d\ne\rf\tg\x01h\x7f";
  sortie_json_quote(&b, s, strlen(s));
  cr_assert_str_eq(b.base, "\"a\\\"b\\\\c\\/d\\ne\\rf\\tg\\u0001h\\u007f\"");
  sortie_buf_free(&b);
}

Test(json_quote, script_end_tag_cannot_appear)
{
  struct sortie_buf b = {0};
  sortie_json_quote(&b, "</script>", 9);
  cr_assert_str_eq(b.base, "\"<\\/script>\"");
  sortie_buf_free(&b);
}

Test(json_quote, result_parses_back_to_the_input)
{
  struct sortie_buf b = {0};
  const char s[] = "caf\xc3\xa9 \"q\" \\ / \n\x01\x1f\x7f </x> \xe2\x80\xa8";
  sortie_json_quote(&b, s, sizeof s - 1);
  json_object *o = parse(b.base);
  cr_assert_not_null(o, "quoted: %s", b.base);
  cr_assert(json_object_is_type(o, json_type_string));
  cr_assert_eq((size_t)json_object_get_string_len(o), sizeof s - 1);
  cr_assert_eq(memcmp(json_object_get_string(o), s, sizeof s - 1), 0);
  json_object_put(o);
  sortie_buf_free(&b);
}

Test(json_quote, embedded_nul_is_escaped)
{
  struct sortie_buf b = {0};
  sortie_json_quote(&b, "a\0b", 3);
  cr_assert_str_eq(b.base, "\"a\\u0000b\"");
  sortie_buf_free(&b);
}

/* ---- numbers json-c would change ---- */

Test(json_parse, integers_beyond_64_bits_are_refused_not_clamped)
{
  cr_expect(refused_str("{\"v\":123456789012345678901234567890}"));
  cr_expect(refused_str("{\"v\":18446744073709551616}"));
  cr_expect(refused_str("{\"v\":-9223372036854775809}"));
  json_object *o = parse("{\"a\":18446744073709551615,\"b\":-9223372036854775808}");
  cr_assert_not_null(o);
  json_object_put(o);
}

Test(json_parse, fractions_keep_their_text)
{
  json_object *o = parse("{\"a\":0.1,\"b\":1.50,\"c\":1e400}");
  cr_assert_not_null(o);
  cr_expect_str_eq(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                   "{\"a\":0.1,\"b\":1.50,\"c\":1e400}");
  json_object_put(o);
}
