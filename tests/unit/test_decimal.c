/* lib/decimal.c: exact decimals for money. */
#include <criterion/criterion.h>
#include <string.h>

#include "decimal.h"

static struct sortie_dec D(const char *s)
{
  struct sortie_dec d;
  cr_assert_eq(sortie_dec_parse(s, strlen(s), &d), 0, "parse %s", s);
  return d;
}

static void roundtrip(const char *in, const char *out)
{
  char buf[SORTIE_DEC_STRLEN];
  sortie_dec_format(D(in), buf);
  cr_assert_str_eq(buf, out);
}

Test(decimal, parse_and_format_keep_the_scale)
{
  roundtrip("145.75", "145.75");
  roundtrip("1.10", "1.10");
  roundtrip("0", "0");
  roundtrip("-0.5", "-0.5");
  roundtrip("007.50", "7.50");
  roundtrip("0.00000001", "0.00000001");
  roundtrip("999999999999999999", "999999999999999999");
  roundtrip("-9999999999.99999999", "-9999999999.99999999");
}

Test(decimal, rejects_what_is_not_a_plain_decimal)
{
  const char *bad[] = {"", "-", ".5", "5.", "+1", "1e5", "1.2.3", " 1", "1 ", "0x10", "1,5",
                       "1.123456789", "1234567890123456789", "NaN", "--1", "1-"};
  struct sortie_dec d;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(sortie_dec_parse(bad[i], strlen(bad[i]), &d), -1, "'%s' accepted", bad[i]);
}

Test(decimal, subtraction_is_exact_across_scales)
{
  struct sortie_dec r;
  char buf[SORTIE_DEC_STRLEN];
  cr_assert_eq(sortie_dec_sub(D("150.10"), D("145.75"), &r), 0);
  sortie_dec_format(r, buf);
  cr_assert_str_eq(buf, "4.35");
  /* 0.1 + 0.2 is 0.3 here, unlike in binary floating point */
  cr_assert_eq(sortie_dec_add(D("0.1"), D("0.2"), &r), 0);
  sortie_dec_format(r, buf);
  cr_assert_str_eq(buf, "0.3");
  cr_assert_eq(sortie_dec_sub(D("1.5"), D("1.12345678"), &r), 0);
  sortie_dec_format(r, buf);
  cr_assert_str_eq(buf, "0.37654322");
}

Test(decimal, overflow_is_refused_not_wrapped)
{
  struct sortie_dec r;
  cr_assert_eq(sortie_dec_add(D("999999999999999999"), D("1"), &r), -1);
  cr_assert_eq(sortie_dec_rescale(D("99999999999"), 8, &r), -1);
  cr_assert_eq(sortie_dec_rescale(D("9999999999"), 8, &r), 0);
  cr_assert_eq(r.units, 999999999900000000LL);
}

Test(decimal, compare)
{
  cr_assert_lt(sortie_dec_cmp(D("1.2"), D("1.25")), 0);
  cr_assert_eq(sortie_dec_cmp(D("1.20"), D("1.2")), 0);
  cr_assert_gt(sortie_dec_cmp(D("-1.2"), D("-1.25")), 0);
  cr_assert_lt(sortie_dec_cmp(D("-0.5"), D("0.2")), 0);
  cr_assert_gt(sortie_dec_cmp(D("999999999999999999"), D("0.00000001")), 0);
  cr_assert_eq(sortie_dec_sign(D("-0.00000001")), -1);
  cr_assert_eq(sortie_dec_sign(D("0.000")), 0);
}
