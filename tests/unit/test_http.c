/* lib/http.c + lib/log.c: query parameters, If-None-Match, token redaction in logged queries. */
#include <criterion/criterion.h>
#include <string.h>

#include "http.h"
#include "log.h"

static char out[64];

static long q(const char *query, const char *name)
{
  memset(out, 'Z', sizeof out);
  return sortie_query_get(query, name, out, sizeof out);
}

/* ---- sortie_query_get ---- */

Test(query_get, present_anywhere)
{
  cr_assert_eq(q("a=1&b=two&c=3", "b"), 3);
  cr_assert_str_eq(out, "two");
  cr_assert_eq(q("a=1&b=two&c=3", "a"), 1);
  cr_assert_str_eq(out, "1");
  cr_assert_eq(q("a=1&b=two&c=3", "c"), 1);
  cr_assert_str_eq(out, "3");
}

Test(query_get, absent_is_minus_1)
{
  cr_expect_eq(q("a=1&b=2", "c"), -1);
  cr_expect_eq(q("", "a"), -1);
  cr_expect_eq(sortie_query_get(NULL, "a", out, sizeof out), -1);
}

Test(query_get, name_must_match_whole)
{
  cr_expect_eq(q("ab=1&xa=2", "a"), -1);
  cr_expect_eq(q("a=1", "ab"), -1);
  cr_expect_eq(q("cursors=1&cursor=2", "cursor"), 1);
  cr_expect_str_eq(out, "2");
}

Test(query_get, empty_value_is_empty)
{
  cr_assert_eq(q("a=&b=1", "a"), 0);
  cr_assert_str_eq(out, "");
  cr_assert_eq(q("b=1&a", "a"), 0);
  cr_assert_str_eq(out, "");
}

Test(query_get, first_occurrence_wins)
{
  cr_assert_eq(q("a=1&a=2", "a"), 1);
  cr_assert_str_eq(out, "1");
}

Test(query_get, empty_segments_are_skipped)
{
  cr_assert_eq(q("&&a=1&&b=2&", "b"), 1);
  cr_assert_str_eq(out, "2");
}

Test(query_get, percent_escapes_are_decoded)
{
  cr_assert_eq(q("channels=mission%3Asig_1%2cuser%3aalice", "channels"), 24);
  cr_assert_str_eq(out, "mission:sig_1,user:alice");
}

Test(query_get, plus_is_a_space)
{
  cr_assert_eq(q("t=a+b%2Bc", "t"), 5);
  cr_assert_str_eq(out, "a b+c");
}

Test(query_get, bad_escapes_are_refused)
{
  const char *bad[] = {"v=%", "v=%4", "v=%zz", "v=%g1", "v=%1g", "v=abc%", "v=abc%2", "v=%%41"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(q(bad[i], "v"), -2, "'%s' not refused as unreadable", bad[i]);
}

Test(query_get, escape_at_the_very_end_is_decoded)
{
  cr_assert_eq(q("v=ab%41", "v"), 3);
  cr_assert_str_eq(out, "abA");
}

Test(query_get, nul_byte_is_refused)
{
  cr_expect_eq(q("v=a%00b", "v"), -2);
  cr_expect_eq(q("v=%00", "v"), -2);
}

Test(query_get, value_that_does_not_fit_is_refused)
{
  char small[8];
  cr_expect_eq(sortie_query_get("v=12345678", "v", small, sizeof small), -2);
  cr_expect_eq(sortie_query_get("v=1234567", "v", small, sizeof small), 7);
  cr_expect_str_eq(small, "1234567");
  /* the decoded length is what counts */
  cr_expect_eq(sortie_query_get("v=%41%42%43%44%45%46%47", "v", small, sizeof small), 7);
  cr_expect_str_eq(small, "ABCDEFG");
}

/* ---- sortie_etag_match ---- */

Test(etag_match, exact)
{
  cr_expect_eq(sortie_etag_match("\"abc\"", "\"abc\""), 1);
  cr_expect_eq(sortie_etag_match("\"abc\"", "\"abd\""), 0);
}

Test(etag_match, weak_comparison_ignores_w_slash)
{
  cr_expect_eq(sortie_etag_match("W/\"abc\"", "\"abc\""), 1);
  cr_expect_eq(sortie_etag_match("\"abc\"", "W/\"abc\""), 1);
  cr_expect_eq(sortie_etag_match("W/\"abc\"", "W/\"abc\""), 1);
  cr_expect_eq(sortie_etag_match("W/\"abc\"", "W/\"xyz\""), 0);
}

Test(etag_match, any_in_a_list)
{
  cr_expect_eq(sortie_etag_match("\"x\", \"abc\"", "\"abc\""), 1);
  cr_expect_eq(sortie_etag_match("\"x\",W/\"abc\" , \"y\"", "\"abc\""), 1);
  cr_expect_eq(sortie_etag_match("\"abc\" ,\"x\"", "\"abc\""), 1);
  cr_expect_eq(sortie_etag_match("\"x\", \"y\"", "\"abc\""), 0);
}

Test(etag_match, star_matches_anything)
{
  cr_expect_eq(sortie_etag_match("*", "\"abc\""), 1);
}

Test(etag_match, no_match)
{
  cr_expect_eq(sortie_etag_match("\"ab\"", "\"abc\""), 0);
  cr_expect_eq(sortie_etag_match("\"abcd\"", "\"abc\""), 0);
  cr_expect_eq(sortie_etag_match("abc", "\"abc\""), 0);
  cr_expect_eq(sortie_etag_match("", "\"abc\""), 0);
  cr_expect_eq(sortie_etag_match(NULL, "\"abc\""), 0);
  cr_expect_eq(sortie_etag_match("\"abc\"", NULL), 0);
}

/* ---- sortie_log_redact_query ---- */

static const char *redact(const char *qs)
{
  static char buf[256];
  return sortie_log_redact_query(qs, buf, sizeof buf);
}

Test(redact_query, token_alone)
{
  cr_expect_str_eq(redact("token=eyJhbGciOi.eyJzdWIi.sig"), "token=REDACTED");
}

Test(redact_query, token_at_start)
{
  cr_expect_str_eq(redact("token=secret&channels=signals"), "token=REDACTED&channels=signals");
}

Test(redact_query, token_in_the_middle)
{
  cr_expect_str_eq(redact("channels=a,b&token=secret&cursor=1-0"),
                   "channels=a,b&token=REDACTED&cursor=1-0");
}

Test(redact_query, token_at_end)
{
  cr_expect_str_eq(redact("channels=signals&token=secret"), "channels=signals&token=REDACTED");
}

Test(redact_query, every_token_and_any_case)
{
  cr_expect_str_eq(redact("token=a&TOKEN=b&Token=c"), "token=REDACTED&token=REDACTED&token=REDACTED");
}

Test(redact_query, other_parameters_are_kept)
{
  cr_expect_str_eq(redact("channels=mission%3Ax&cursor=1-0&tokens=5&x"),
                   "channels=mission%3Ax&cursor=1-0&tokens=5&x");
  cr_expect_str_eq(redact(""), "");
  cr_expect_str_eq(redact(NULL), "");
}

Test(redact_query, truncation_never_leaks_the_token)
{
  char small[12];
  sortie_log_redact_query("token=SECRETSECRET", small, sizeof small);
  cr_expect_str_eq(small, "token=REDAC");
  cr_expect_null(strstr(small, "SECRET"));
}

Test(redact_query, output_is_always_terminated)
{
  char small[5];
  memset(small, 'Z', sizeof small);
  sortie_log_redact_query("channels=signals", small, sizeof small);
  cr_expect_str_eq(small, "chan");
}
