/* lib/valid.c: ids, symbols, event types, channel names, stream ids (cursors) and UTF-8. */
#include <criterion/criterion.h>
#include <string.h>

#include "valid.h"

static int id_ok(const char *s)
{
  return sortie_valid_id(s, strlen(s));
}

/* A string of `n` copies of `c` (n < 128). */
static const char *rep(char c, size_t n)
{
  static char buf[128];
  cr_assert_lt(n, sizeof buf);
  memset(buf, c, n);
  buf[n] = '\0';
  return buf;
}

static enum sortie_chan_kind chan(const char *s)
{
  return sortie_channel_parse(s, strlen(s), NULL, NULL);
}

/* ---- ids ---- */

Test(valid_id, accepts_the_id_alphabet)
{
  cr_expect_eq(id_ok("a"), 1);
  cr_expect_eq(id_ok("sig_456"), 1);
  cr_expect_eq(id_ok("A.b-C_9"), 1);
  cr_expect_eq(id_ok("..."), 1);
  cr_expect_eq(id_ok(rep('x', 64)), 1);
}

Test(valid_id, rejects_empty_and_65_chars)
{
  cr_expect_eq(sortie_valid_id("", 0), 0);
  cr_expect_eq(id_ok(rep('x', 65)), 0);
}

Test(valid_id, rejects_characters_outside_the_alphabet)
{
  const char *bad[] = {"a/b", "a b", "a\rb", "a\nb", "<a>", "a%2f", "caf\xc3\xa9", "a:b",
                       "a?b", "a\"b", "a\\b", "a\tb", "a+b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(id_ok(bad[i]), 0, "'%s' accepted", bad[i]);
}

Test(valid_id, rejects_an_embedded_nul)
{
  cr_expect_eq(sortie_valid_id("ab\0c", 4), 0);
}

Test(valid_id, reads_only_len_bytes)
{
  cr_expect_eq(sortie_valid_id("abc/def", 3), 1);
  cr_expect_eq(sortie_valid_id("abc/def", 4), 0);
}

/* ---- symbols and event types ---- */

Test(valid_symbol, accepts_upper_case_symbols)
{
  const char *good[] = {"AAPL", "BRK.B", "EUR-USD", "BTC_USDT", "X", "7203"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    cr_expect_eq(sortie_valid_symbol(good[i], strlen(good[i])), 1, "'%s' refused", good[i]);
  cr_expect_eq(sortie_valid_symbol(rep('A', 32), 32), 1);
}

Test(valid_symbol, rejects_lower_case_long_and_odd_symbols)
{
  const char *bad[] = {"", "aapl", "Aapl", "AA PL", "AAPL:", "AAPL/USD", "\xc3\x84PL"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(sortie_valid_symbol(bad[i], strlen(bad[i])), 0, "'%s' accepted", bad[i]);
  cr_expect_eq(sortie_valid_symbol(rep('A', 33), 33), 0);
}

Test(valid_event_type, accepts_snake_case_from_a_letter)
{
  const char *good[] = {"a", "fire_count_update", "x1", "risk_alert_2"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    cr_expect_eq(sortie_valid_event_type(good[i], strlen(good[i])), 1, "'%s' refused", good[i]);
  cr_expect_eq(sortie_valid_event_type(rep('e', 64), 64), 1);
}

Test(valid_event_type, rejects_other_shapes)
{
  const char *bad[] = {"", "Fire", "fireCount", "1abc", "_x", "a-b", "a.b", "fire count", "a\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(sortie_valid_event_type(bad[i], strlen(bad[i])), 0, "'%s' accepted", bad[i]);
  cr_expect_eq(sortie_valid_event_type(rep('e', 65), 65), 0);
}

Test(reserved_event_type, names_the_control_messages)
{
  const char *res[] = {"reset", "subscribed", "pong", "error", "connection_status"};
  for (size_t i = 0; i < sizeof res / sizeof res[0]; i++)
    cr_expect_eq(sortie_reserved_event_type(res[i], strlen(res[i])), 1, "'%s' not reserved",
                 res[i]);
}

Test(reserved_event_type, leaves_ordinary_types_and_near_misses_alone)
{
  const char *ok[] = {"signal_created", "resets", "rese", "Reset", "", "pong_", "errors"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    cr_expect_eq(sortie_reserved_event_type(ok[i], strlen(ok[i])), 0, "'%s' reserved", ok[i]);
}

/* ---- channels ---- */

Test(channel, mission_gives_its_signal_id)
{
  const char *arg = NULL;
  size_t alen = 99;
  const char *s = "mission:sig_456";
  cr_assert_eq(sortie_channel_parse(s, strlen(s), &arg, &alen), SORTIE_CHAN_MISSION);
  cr_assert_eq(alen, 7);
  cr_assert_eq(arg, s + 8);
}

Test(channel, user_gives_its_user_id)
{
  const char *arg = NULL;
  size_t alen = 0;
  const char *s = "user:alice";
  cr_assert_eq(sortie_channel_parse(s, strlen(s), &arg, &alen), SORTIE_CHAN_USER);
  cr_assert_eq(alen, 5);
  cr_assert_eq(memcmp(arg, "alice", 5), 0);
}

Test(channel, market_needs_an_upper_case_symbol)
{
  const char *arg = NULL;
  size_t alen = 0;
  cr_assert_eq(sortie_channel_parse("market:AAPL", 11, &arg, &alen), SORTIE_CHAN_MARKET);
  cr_assert_eq(alen, 4);
  cr_assert_eq(memcmp(arg, "AAPL", 4), 0);
  cr_expect_eq(chan("market:aapl"), SORTIE_CHAN_UNKNOWN);
  cr_expect_eq(chan("market:Aapl"), SORTIE_CHAN_UNKNOWN);
}

Test(channel, market_symbol_over_32_chars_is_no_market)
{
  char s[80] = "market:";
  strcat(s, rep('A', 33));
  cr_expect_eq(chan(s), SORTIE_CHAN_UNKNOWN);
}

Test(channel, signals_and_admin_take_no_suffix)
{
  size_t alen = 99;
  cr_assert_eq(sortie_channel_parse("signals", 7, NULL, &alen), SORTIE_CHAN_SIGNALS);
  cr_assert_eq(alen, 0);
  alen = 99;
  cr_assert_eq(sortie_channel_parse("admin", 5, NULL, &alen), SORTIE_CHAN_ADMIN);
  cr_assert_eq(alen, 0);
  cr_expect_eq(chan("signals:x"), SORTIE_CHAN_UNKNOWN);
  cr_expect_eq(chan("admin:x"), SORTIE_CHAN_UNKNOWN);
}

Test(channel, mission_user_market_need_a_suffix)
{
  cr_expect_eq(chan("mission"), SORTIE_CHAN_UNKNOWN);
  cr_expect_eq(chan("user"), SORTIE_CHAN_UNKNOWN);
  cr_expect_eq(chan("market"), SORTIE_CHAN_UNKNOWN);
}

Test(channel, unknown_kinds_are_well_formed_but_unknown)
{
  cr_expect_eq(chan("foo"), SORTIE_CHAN_UNKNOWN);
  cr_expect_eq(chan("foo:bar"), SORTIE_CHAN_UNKNOWN);
  cr_expect_eq(chan(rep('a', 16)), SORTIE_CHAN_UNKNOWN);
}

Test(channel, malformed_names_are_invalid)
{
  const char *bad[] = {"",          "Mission:x",        "MISSION:x",     "mission:",
                       "mission:a:b", "mission:<script>", "mission:a/b",   ":x",
                       "mission x", "mission:sig\n",    "mission::x",    "mission:a b",
                       "user:%41",  "signals ",         " signals",      "mi-ssion:x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(chan(bad[i]), SORTIE_CHAN_INVALID, "'%s' not invalid", bad[i]);
}

Test(channel, kind_of_17_letters_is_invalid)
{
  cr_expect_eq(chan(rep('a', 17)), SORTIE_CHAN_INVALID);
}

Test(channel, suffix_of_65_chars_is_invalid)
{
  char s[100] = "mission:";
  strcat(s, rep('x', 65));
  cr_expect_eq(chan(s), SORTIE_CHAN_INVALID);
  s[8 + 64] = '\0';
  cr_expect_eq(chan(s), SORTIE_CHAN_MISSION);
}

/* ---- stream ids ---- */

Test(stream_id, parses_ms_and_seq)
{
  uint64_t ms = 1, seq = 1;
  cr_assert_eq(sortie_event_id_parse("1732212345678-7", 15, &ms, &seq), 0);
  cr_assert_eq(ms, 1732212345678ULL);
  cr_assert_eq(seq, 7);
}

Test(stream_id, zero_alone_is_zero_zero)
{
  uint64_t ms = 1, seq = 1;
  cr_assert_eq(sortie_event_id_parse("0", 1, &ms, &seq), 0);
  cr_assert_eq(ms, 0);
  cr_assert_eq(seq, 0);
}

Test(stream_id, accepts_uint64_max)
{
  const char *s = "18446744073709551615-18446744073709551615";
  uint64_t ms = 0, seq = 0;
  cr_assert_eq(sortie_event_id_parse(s, strlen(s), &ms, &seq), 0);
  cr_assert_eq(ms, UINT64_MAX);
  cr_assert_eq(seq, UINT64_MAX);
}

Test(stream_id, refuses_overflow_beyond_uint64)
{
  const char *bad[] = {"18446744073709551616-0", "0-18446744073709551616",
                       "99999999999999999999-0", "000000000000000000001-0"};
  uint64_t ms, seq;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(sortie_event_id_parse(bad[i], strlen(bad[i]), &ms, &seq), -1, "'%s' accepted",
                 bad[i]);
}

Test(stream_id, refuses_malformed_ids)
{
  const char *bad[] = {"", "1-", "-1", "-", "1", "00", "1-2-3", "a-1", "1-b",
                       " 1-1", "1-1 ", "+1-1", "1--1", "1_1", "0x1-0"};
  uint64_t ms, seq;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(sortie_event_id_parse(bad[i], strlen(bad[i]), &ms, &seq), -1, "'%s' accepted",
                 bad[i]);
}

Test(stream_id, reads_only_len_bytes)
{
  uint64_t ms = 0, seq = 0;
  cr_assert_eq(sortie_event_id_parse("5-6xyz", 3, &ms, &seq), 0);
  cr_assert_eq(ms, 5);
  cr_assert_eq(seq, 6);
}

Test(stream_id, compares_numerically_not_lexically)
{
  cr_expect_lt(sortie_event_id_cmp("9-0", "10-0"), 0);
  cr_expect_lt(sortie_event_id_cmp("1-9", "1-10"), 0);
  cr_expect_gt(sortie_event_id_cmp("2-0", "1-99"), 0);
  cr_expect_lt(sortie_event_id_cmp("1-1", "1-2"), 0);
  cr_expect_eq(sortie_event_id_cmp("5-5", "5-5"), 0);
  cr_expect_eq(sortie_event_id_cmp("0", "0-0"), 0);
  cr_expect_eq(sortie_event_id_cmp("007-1", "7-1"), 0);
}

Test(stream_id, invalid_ids_compare_as_zero)
{
  cr_expect_eq(sortie_event_id_cmp("junk", "0-0"), 0);
  cr_expect_lt(sortie_event_id_cmp("junk", "0-1"), 0);
  cr_expect_gt(sortie_event_id_cmp("1-0", "1-"), 0);
}

/* ---- UTF-8 ---- */

static int utf8(const char *s)
{
  return sortie_utf8_valid((const unsigned char *)s, strlen(s));
}

Test(utf8, accepts_well_formed_text)
{
  cr_expect(utf8(""));
  cr_expect(utf8("plain ascii"));
  cr_expect(utf8("caf\xc3\xa9"));              /* é, 2 bytes */
  cr_expect(utf8("\xe2\x82\xac"));             /* €, 3 bytes */
  cr_expect(utf8("\xf0\x9f\x9a\x80"));         /* 🚀, 4 bytes */
  cr_expect(utf8("\xf4\x8f\xbf\xbf"));         /* U+10FFFF, the last one */
}

Test(utf8, refuses_ill_formed_text)
{
  const char *bad[] = {
      "\xc0\xaf",         /* overlong '/' */
      "\xe0\x80\xaf",     /* overlong, 3 bytes */
      "\xed\xa0\x80",     /* a surrogate */
      "\xf4\x90\x80\x80", /* above U+10FFFF */
      "\xff",             /* never in UTF-8 */
      "\xc3",             /* cut short */
      "\xe2\x82",         /* cut short */
      "\x80",             /* a lone continuation byte */
      "a\xc3(b",          /* not a continuation byte */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect(!utf8(bad[i]), "case %zu accepted", i);
}

Test(id, refuses_the_dot_segments)
{
  cr_expect(!sortie_valid_id(".", 1));
  cr_expect(!sortie_valid_id("..", 2));
  cr_expect(sortie_valid_id("...", 3));
  cr_expect(sortie_valid_id(".a", 2));
}

/* ---- sortie_utf8_prefix ---- */

Test(utf8_prefix, never_cuts_inside_a_character)
{
  const char *s = "ab\xc3\xa9z"; /* a b é z */
  cr_expect_eq(sortie_utf8_prefix(s, 5, 10), 5);
  cr_expect_eq(sortie_utf8_prefix(s, 5, 4), 4);
  cr_expect_eq(sortie_utf8_prefix(s, 5, 3), 2, "the cut would split é");
  cr_expect_eq(sortie_utf8_prefix("\xe2\x82\xac", 3, 2), 0);
  cr_expect_eq(sortie_utf8_prefix("\xff\xfe", 2, 80), 0, "not UTF-8 at all");
}
