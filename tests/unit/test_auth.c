/* lib/auth.c: JWT verification (HS256, RS256), finding the token, who may act and read. */
#include <criterion/criterion.h>
#include <jwt.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define NOW 1732212345L

/* 40 bytes: above the 32-byte floor of sortie_cfg_load_secrets */
static unsigned char secret[] = "k3y-for-unit-tests-only-0123456789abcdef";
static unsigned char other_secret[] = "another-key-that-the-server-never-trusts";

static struct sortie_cfg hs_cfg(void)
{
  struct sortie_cfg c;
  memset(&c, 0, sizeof c);
  strcpy(c.jwt_alg, "HS256");
  c.jwt_key = secret;
  c.jwt_key_len = 40;
  c.jwt_leeway_s = 30;
  return c;
}

static char *mint(const char *sub, const char *role, long iat, long exp)
{
  char *t = sortie_auth_mint("HS256", secret, 40, sub, role, iat, exp);
  cr_assert_not_null(t);
  return t;
}

/* Signs any claims (a JSON object) with libjwt, for the tokens sortie_auth_mint
 * cannot make (no exp, nbf, odd types). */
static char *mint_claims(jwt_alg_t alg, const unsigned char *key, size_t keylen,
                         const char *claims)
{
  jwt_t *j = NULL;
  cr_assert_eq(jwt_new(&j), 0);
  cr_assert_eq(jwt_add_grants_json(j, claims), 0, "claims %s", claims);
  cr_assert_eq(jwt_set_alg(j, alg, key, (int)keylen), 0);
  char *t = jwt_encode_str(j);
  jwt_free(j);
  cr_assert_not_null(t);
  return t;
}

static char *mint_hs(const char *claims)
{
  return mint_claims(JWT_ALG_HS256, secret, 40, claims);
}

/* Verifies against `c` at NOW; on refusal checks that a reason was given. */
static int verify(const struct sortie_cfg *c, const char *tok, struct sortie_identity *id)
{
  const char *why = NULL;
  int rc = sortie_auth_verify(c, tok, NOW, id, &why);
  if (rc != 0) {
    cr_expect_not_null(why);
    cr_expect_gt(strlen(why), 0);
  }
  return rc;
}

static int hs_verify(const char *tok)
{
  struct sortie_cfg c = hs_cfg();
  struct sortie_identity id;
  return verify(&c, tok, &id);
}

/* 1 if `c` refuses `tok` with a reason that mentions `word` (so a token is
 * refused for the reason the test is about, not another one). */
static int refused_for(const struct sortie_cfg *c, const char *tok, const char *word)
{
  struct sortie_identity id;
  const char *why = NULL;
  if (sortie_auth_verify(c, tok, NOW, &id, &why) != -1)
    return 0;
  cr_assert_not_null(why);
  cr_expect(strstr(why, word) != NULL, "refused for '%s', expected '%s'", why, word);
  return strstr(why, word) != NULL;
}

static int hs_refused_for(const char *tok, const char *word)
{
  struct sortie_cfg c = hs_cfg();
  return refused_for(&c, tok, word);
}

static void b64url(const char *in, char *out)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t n = strlen(in), o = 0;
  const unsigned char *s = (const unsigned char *)in;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)s[i] << 16;
    if (i + 1 < n)
      v |= (unsigned)s[i + 1] << 8;
    if (i + 2 < n)
      v |= s[i + 2];
    out[o++] = tab[(v >> 18) & 63];
    out[o++] = tab[(v >> 12) & 63];
    if (i + 1 < n)
      out[o++] = tab[(v >> 6) & 63];
    if (i + 2 < n)
      out[o++] = tab[v & 63];
  }
  out[o] = '\0';
}

/* ---- HS256 ---- */

Test(auth_verify, valid_token_gives_sub_and_role)
{
  struct sortie_cfg c = hs_cfg();
  struct sortie_identity id;
  memset(&id, 0, sizeof id);
  char *t = mint("alice", "admin", NOW - 10, NOW + 3600);
  cr_assert_eq(verify(&c, t, &id), 0);
  cr_assert_str_eq(id.sub, "alice");
  cr_assert_eq(id.role, SORTIE_ROLE_ADMIN);
  cr_assert_eq(id.exp, NOW + 3600);
  free(t);
}

Test(auth_verify, role_defaults_to_user)
{
  struct sortie_cfg c = hs_cfg();
  struct sortie_identity id;
  id.role = SORTIE_ROLE_SERVICE;
  char *t = mint("bob", NULL, NOW, NOW + 60);
  cr_assert_eq(verify(&c, t, &id), 0);
  cr_assert_eq(id.role, SORTIE_ROLE_USER);
  free(t);
}

Test(auth_verify, service_role_is_read)
{
  struct sortie_cfg c = hs_cfg();
  struct sortie_identity id;
  char *t = mint("feed-1", "service", NOW, NOW + 60);
  cr_assert_eq(verify(&c, t, &id), 0);
  cr_assert_eq(id.role, SORTIE_ROLE_SERVICE);
  free(t);
}

Test(auth_verify, alg_none_with_trailing_dot_is_refused)
{
  char h[128], p[128], tok[300];
  b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", h);
  b64url("{\"sub\":\"alice\",\"role\":\"admin\",\"exp\":1900000000}", p);
  snprintf(tok, sizeof tok, "%s.%s.", h, p);
  cr_assert_eq(hs_verify(tok), -1);
}

Test(auth_verify, alg_none_without_trailing_dot_is_refused)
{
  char h[128], p[128], tok[300];
  b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", h);
  b64url("{\"sub\":\"alice\",\"role\":\"admin\",\"exp\":1900000000}", p);
  snprintf(tok, sizeof tok, "%s.%s", h, p);
  cr_assert_eq(hs_verify(tok), -1);
}

Test(auth_verify, token_signed_with_another_key_is_refused)
{
  char *t = sortie_auth_mint("HS256", other_secret, 40, "alice", "admin", NOW, NOW + 3600);
  cr_assert_not_null(t);
  cr_assert_eq(hs_verify(t), -1);
  free(t);
}

Test(auth_verify, payload_swapped_under_a_valid_signature_is_refused)
{
  char *t = mint("alice", "user", NOW, NOW + 3600);
  char p[256], tok[1024];
  b64url("{\"sub\":\"alice\",\"role\":\"admin\",\"exp\":1900000000}", p);
  char *dot1 = strchr(t, '.'), *dot2 = strrchr(t, '.');
  cr_assert(dot1 && dot2 && dot1 != dot2);
  snprintf(tok, sizeof tok, "%.*s.%s%s", (int)(dot1 - t), t, p, dot2);
  cr_assert_eq(hs_verify(tok), -1);
  free(t);
}

Test(auth_verify, expired_beyond_leeway_is_refused)
{
  char *t = mint("alice", NULL, NOW - 7200, NOW - 31);
  cr_assert_eq(hs_refused_for(t, "expired"), 1);
  free(t);
}

Test(auth_verify, expired_within_leeway_is_accepted)
{
  char *t = mint("alice", NULL, NOW - 7200, NOW - 29);
  cr_assert_eq(hs_verify(t), 0);
  free(t);
}

Test(auth_verify, nbf_in_the_future_beyond_leeway_is_refused)
{
  char claims[256];
  snprintf(claims, sizeof claims, "{\"sub\":\"alice\",\"exp\":%ld,\"nbf\":%ld}", NOW + 3600,
           NOW + 31);
  char *t = mint_hs(claims);
  cr_assert_eq(hs_refused_for(t, "nbf"), 1);
  free(t);
}

Test(auth_verify, nbf_within_leeway_is_accepted)
{
  char claims[256];
  snprintf(claims, sizeof claims, "{\"sub\":\"alice\",\"exp\":%ld,\"nbf\":%ld}", NOW + 3600,
           NOW + 29);
  char *t = mint_hs(claims);
  cr_assert_eq(hs_verify(t), 0);
  free(t);
}

Test(auth_verify, iat_in_the_future_is_refused)
{
  char *t = mint("alice", NULL, NOW + 600, NOW + 3600);
  cr_assert_eq(hs_refused_for(t, "iat"), 1);
  free(t);
}

Test(auth_verify, iat_within_leeway_is_accepted)
{
  char *t = mint("alice", NULL, NOW + 20, NOW + 3600);
  cr_assert_eq(hs_verify(t), 0);
  free(t);
}

Test(auth_verify, missing_exp_is_refused)
{
  char *t = mint_hs("{\"sub\":\"alice\",\"iat\":1732212345}");
  cr_assert_eq(hs_refused_for(t, "no exp"), 1);
  free(t);
}

Test(auth_verify, exp_that_is_not_a_number_is_refused)
{
  char *t = mint_hs("{\"sub\":\"alice\",\"exp\":\"1900000000\"}");
  cr_assert_eq(hs_verify(t), -1);
  free(t);
}

Test(auth_verify, missing_sub_is_refused)
{
  char *t = mint_hs("{\"exp\":1900000000,\"role\":\"admin\"}");
  cr_assert_eq(hs_refused_for(t, "no sub"), 1);
  free(t);
}

Test(auth_verify, empty_or_numeric_sub_is_refused)
{
  char *t = mint_hs("{\"sub\":\"\",\"exp\":1900000000}");
  cr_expect_eq(hs_verify(t), -1);
  free(t);
  t = mint_hs("{\"sub\":42,\"exp\":1900000000}");
  cr_expect_eq(hs_verify(t), -1);
  free(t);
}

Test(auth_verify, sub_that_is_not_a_valid_id_is_refused)
{
  const char *subs[] = {"a/b", "a b", "a\nb", "<script>", "user:alice"};
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
    char *t = mint(subs[i], NULL, NOW, NOW + 3600);
    cr_expect_eq(hs_refused_for(t, "sub"), 1, "sub '%s'", subs[i]);
    free(t);
  }
}

Test(auth_verify, sub_of_65_chars_is_refused)
{
  char sub[66];
  memset(sub, 'a', 65);
  sub[65] = '\0';
  char *t = mint(sub, NULL, NOW, NOW + 3600);
  cr_assert_eq(hs_refused_for(t, "sub"), 1);
  free(t);
}

Test(auth_verify, unknown_role_is_refused)
{
  const char *roles[] = {"root", "Admin", "", "admin "};
  for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
    char *t = mint("alice", roles[i], NOW, NOW + 3600);
    cr_expect_eq(hs_refused_for(t, "role"), 1, "role '%s'", roles[i]);
    free(t);
  }
}

/* auth.h: `role` absent or one of user/admin/service. A role that is present
 * but not a string is neither. */
Test(auth_verify, role_that_is_not_a_string_is_refused)
{
  char *t = mint_hs("{\"sub\":\"alice\",\"exp\":1900000000,\"role\":[\"admin\"]}");
  int rc = hs_refused_for(t, "role");
  free(t);
  cr_assert_eq(rc, 1, "a non-string role was taken as absent");
}

Test(auth_verify, garbage_is_refused)
{
  const char *bad[] = {"", "abc", "a.b.c", "..", "...", "eyJ.eyJ.", "Bearer x",
                       "eyJhbGciOiJIUzI1NiJ9..", "\xff\xfe", "e30.e30.e30"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(hs_verify(bad[i]), -1, "'%s' accepted", bad[i]);
}

Test(auth_verify, token_over_4096_bytes_is_refused)
{
  char claims[5000];
  int n = snprintf(claims, sizeof claims, "{\"sub\":\"alice\",\"exp\":%ld,\"pad\":\"", NOW + 3600);
  memset(claims + n, 'x', 3200);
  strcpy(claims + n + 3200, "\"}");
  char *t = mint_hs(claims);
  cr_assert_gt(strlen(t), SORTIE_TOKEN_MAX);
  cr_assert_eq(hs_refused_for(t, "too long"), 1);
  free(t);
}

Test(auth_verify, no_key_configured_refuses_everything)
{
  struct sortie_cfg c = hs_cfg();
  c.jwt_key = NULL;
  c.jwt_key_len = 0;
  struct sortie_identity id;
  char *t = mint("alice", NULL, NOW, NOW + 3600);
  cr_assert_eq(verify(&c, t, &id), -1);
  free(t);
}

/* A "never expires" token: exp far in the future must not wrap around. */
Test(auth_verify, exp_far_in_the_future_is_accepted)
{
  char *t = mint("alice", NULL, NOW, LONG_MAX);
  int rc = hs_verify(t);
  free(t);
  cr_assert_eq(rc, 0, "exp = LONG_MAX refused (exp + leeway overflows)");
}

Test(auth_verify, nbf_far_in_the_past_is_accepted)
{
  char claims[256];
  snprintf(claims, sizeof claims, "{\"sub\":\"alice\",\"exp\":%ld,\"nbf\":%ld}", NOW + 3600,
           LONG_MIN);
  char *t = mint_hs(claims);
  int rc = hs_verify(t);
  free(t);
  cr_assert_eq(rc, 0, "nbf = LONG_MIN refused (nbf - leeway overflows)");
}

/* ---- RS256 ---- */

struct rsa_pem {
  char *priv, *pub;
  size_t privlen, publen;
};

static char *bio_string(BIO *b, size_t *len)
{
  char *data = NULL;
  long n = BIO_get_mem_data(b, &data);
  cr_assert_gt(n, 0);
  char *s = malloc((size_t)n + 1);
  cr_assert_not_null(s);
  memcpy(s, data, (size_t)n);
  s[n] = '\0';
  *len = (size_t)n;
  return s;
}

static void rsa_pair(struct rsa_pem *k)
{
  EVP_PKEY *pk = EVP_RSA_gen(2048);
  cr_assert_not_null(pk);
  BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
  cr_assert(priv && pub);
  cr_assert_eq(PEM_write_bio_PrivateKey(priv, pk, NULL, NULL, 0, NULL, NULL), 1);
  cr_assert_eq(PEM_write_bio_PUBKEY(pub, pk), 1);
  k->priv = bio_string(priv, &k->privlen);
  k->pub = bio_string(pub, &k->publen);
  BIO_free(priv);
  BIO_free(pub);
  EVP_PKEY_free(pk);
}

static void rsa_free(struct rsa_pem *k)
{
  free(k->priv);
  free(k->pub);
}

static struct sortie_cfg rs_cfg(struct rsa_pem *k)
{
  struct sortie_cfg c = hs_cfg();
  strcpy(c.jwt_alg, "RS256");
  c.jwt_key = (unsigned char *)k->pub;
  c.jwt_key_len = k->publen;
  return c;
}

Test(auth_rs256, token_signed_with_the_private_key_passes)
{
  struct rsa_pem k;
  rsa_pair(&k);
  char *t = sortie_auth_mint("RS256", (unsigned char *)k.priv, k.privlen, "svc", "service", NOW,
                             NOW + 600);
  cr_assert_not_null(t);
  struct sortie_cfg c = rs_cfg(&k);
  struct sortie_identity id;
  cr_assert_eq(verify(&c, t, &id), 0);
  cr_assert_str_eq(id.sub, "svc");
  cr_assert_eq(id.role, SORTIE_ROLE_SERVICE);
  free(t);
  rsa_free(&k);
}

Test(auth_rs256, token_of_another_key_pair_is_refused)
{
  struct rsa_pem k, other;
  rsa_pair(&k);
  rsa_pair(&other);
  char *t = sortie_auth_mint("RS256", (unsigned char *)other.priv, other.privlen, "svc", NULL, NOW,
                             NOW + 600);
  cr_assert_not_null(t);
  struct sortie_cfg c = rs_cfg(&k);
  struct sortie_identity id;
  cr_assert_eq(verify(&c, t, &id), -1);
  free(t);
  rsa_free(&k);
  rsa_free(&other);
}

/* The classic confusion: HS256 signed with the server's *public* key as the
 * HMAC secret. The signature checks out under that key, so only the alg check
 * stands between this token and an admin session. */
Test(auth_rs256, hs256_token_keyed_with_the_public_pem_is_refused)
{
  struct rsa_pem k;
  rsa_pair(&k);
  char *t = sortie_auth_mint("HS256", (unsigned char *)k.pub, k.publen, "mallory", "admin", NOW,
                             NOW + 600);
  cr_assert_not_null(t);
  struct sortie_cfg c = rs_cfg(&k);
  cr_assert_eq(refused_for(&c, t, "algorithm"), 1);
  free(t);
  rsa_free(&k);
}

Test(auth_rs256, hs256_token_is_refused_when_config_says_rs256)
{
  struct rsa_pem k;
  rsa_pair(&k);
  char *t = mint("alice", NULL, NOW, NOW + 600);
  struct sortie_cfg c = rs_cfg(&k);
  struct sortie_identity id;
  cr_assert_eq(verify(&c, t, &id), -1);
  free(t);
  rsa_free(&k);
}

Test(auth_rs256, rs256_token_is_refused_when_config_says_hs256)
{
  struct rsa_pem k;
  rsa_pair(&k);
  char *t = sortie_auth_mint("RS256", (unsigned char *)k.priv, k.privlen, "svc", NULL, NOW,
                             NOW + 600);
  cr_assert_not_null(t);
  cr_assert_eq(hs_verify(t), -1);
  free(t);
  rsa_free(&k);
}

/* ---- where the token comes from ---- */

static int find(const char *auth, const char *cookie, const char *query, int allow_query,
                char *out, const char **src)
{
  return sortie_auth_find_token(auth, cookie, query, allow_query, out, 256, src);
}

Test(auth_find_token, bearer_header_wins)
{
  char out[256];
  const char *src = NULL;
  cr_assert_eq(find("Bearer hdr.tok.en", "sortie_token=ck", "token=qs", 1, out, &src), 0);
  cr_assert_str_eq(out, "hdr.tok.en");
  cr_assert_str_eq(src, "header");
}

Test(auth_find_token, bearer_scheme_is_case_insensitive)
{
  char out[256];
  const char *src = NULL;
  cr_assert_eq(find("bearer abc", NULL, NULL, 0, out, &src), 0);
  cr_assert_str_eq(out, "abc");
}

Test(auth_find_token, cookie_among_others)
{
  char out[256];
  const char *src = NULL;
  cr_assert_eq(find(NULL, "a=b; sortie_token=XYZ; c=d", NULL, 0, out, &src), 0);
  cr_assert_str_eq(out, "XYZ");
  cr_assert_str_eq(src, "cookie");
}

Test(auth_find_token, cookie_name_must_match_exactly)
{
  char out[256];
  const char *src = NULL;
  cr_assert_eq(find(NULL, "xsortie_token=BAD; sortie_token=GOOD", NULL, 0, out, &src), 0);
  cr_assert_str_eq(out, "GOOD");
  cr_assert_eq(find(NULL, "my_sortie_token=BAD", NULL, 0, out, &src), -1);
}

Test(auth_find_token, quoted_cookie_value_is_unquoted)
{
  char out[256];
  const char *src = NULL;
  cr_assert_eq(find(NULL, "sortie_token=\"XYZ\"", NULL, 0, out, &src), 0);
  cr_assert_str_eq(out, "XYZ");
}

Test(auth_find_token, other_authorization_schemes_fall_back_to_the_cookie)
{
  char out[256];
  const char *src = NULL;
  cr_assert_eq(find("Basic dXNlcjpwYXNz", "sortie_token=ck", NULL, 0, out, &src), 0);
  cr_assert_str_eq(out, "ck");
  cr_assert_str_eq(src, "cookie");
}

Test(auth_find_token, query_token_only_when_allowed)
{
  char out[256];
  const char *src = NULL;
  cr_expect_eq(find(NULL, NULL, "channels=signals&token=abc.def", 0, out, &src), -1);
  cr_assert_eq(find(NULL, NULL, "channels=signals&token=abc.def", 1, out, &src), 0);
  cr_assert_str_eq(out, "abc.def");
  cr_assert_str_eq(src, "query");
}

Test(auth_find_token, query_token_is_percent_decoded)
{
  char out[256];
  const char *src = NULL;
  cr_assert_eq(find(NULL, NULL, "token=abc%2Edef%2d1&x=1", 1, out, &src), 0);
  cr_assert_str_eq(out, "abc.def-1");
}

Test(auth_find_token, query_parameter_name_must_match_exactly)
{
  char out[256];
  const char *src = NULL;
  cr_assert_eq(find(NULL, NULL, "mytoken=abc&tokens=def", 1, out, &src), -1);
}

Test(auth_find_token, header_with_spaces_crlf_or_odd_chars_is_refused)
{
  const char *bad[] = {"Bearer abc def", "Bearer abc\r\nX-Evil: 1", "Bearer abc\n",
                       "Bearer <script>", "Bearer abc;def", "Bearer abc%2e", "Bearer ",
                       "Bearer abc\"", "Bearer ab\tc"};
  char out[256];
  const char *src;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(find(bad[i], NULL, NULL, 0, out, &src), -1, "'%s' accepted", bad[i]);
}

Test(auth_find_token, bad_header_is_not_replaced_by_the_cookie)
{
  char out[256];
  const char *src;
  cr_assert_eq(find("Bearer a b", "sortie_token=ck", NULL, 0, out, &src), -1);
}

Test(auth_find_token, cookie_with_odd_chars_is_refused)
{
  char out[256];
  const char *src;
  cr_assert_eq(find(NULL, "sortie_token=a<b", NULL, 0, out, &src), -1);
}

Test(auth_find_token, token_that_does_not_fit_is_refused)
{
  char out[8];
  const char *src;
  cr_assert_eq(sortie_auth_find_token("Bearer 12345678", NULL, NULL, 0, out, sizeof out, &src),
               -1);
  cr_assert_eq(sortie_auth_find_token("Bearer 1234567", NULL, NULL, 0, out, sizeof out, &src), 0);
  cr_assert_str_eq(out, "1234567");
}

Test(auth_find_token, nothing_given_is_no_token)
{
  char out[256];
  const char *src;
  cr_assert_eq(find(NULL, NULL, NULL, 1, out, &src), -1);
  cr_assert_eq(find(NULL, "a=b", "x=1", 1, out, &src), -1);
}

/* ---- who may act for whom, who may read what ---- */

static struct sortie_identity who(const char *sub, enum sortie_role role)
{
  struct sortie_identity id;
  memset(&id, 0, sizeof id);
  strcpy(id.sub, sub);
  id.role = role;
  return id;
}

static int may_read(const struct sortie_identity *id, const char *ch)
{
  return sortie_auth_may_read(id, ch, strlen(ch));
}

Test(auth_may_act_for, user_only_for_itself)
{
  struct sortie_identity a = who("alice", SORTIE_ROLE_USER);
  cr_expect_eq(sortie_auth_may_act_for(&a, "alice", 5), 1);
  cr_expect_eq(sortie_auth_may_act_for(&a, "bob", 3), 0);
  cr_expect_eq(sortie_auth_may_act_for(&a, "alic", 4), 0);
  cr_expect_eq(sortie_auth_may_act_for(&a, "alice2", 6), 0);
  cr_expect_eq(sortie_auth_may_act_for(&a, "", 0), 0);
}

Test(auth_may_act_for, admin_and_service_for_anyone)
{
  struct sortie_identity adm = who("root", SORTIE_ROLE_ADMIN);
  struct sortie_identity svc = who("feed", SORTIE_ROLE_SERVICE);
  cr_expect_eq(sortie_auth_may_act_for(&adm, "bob", 3), 1);
  cr_expect_eq(sortie_auth_may_act_for(&svc, "bob", 3), 1);
}

Test(auth_may_read, public_channels_for_every_role)
{
  struct sortie_identity ids[] = {who("alice", SORTIE_ROLE_USER), who("root", SORTIE_ROLE_ADMIN),
                                  who("feed", SORTIE_ROLE_SERVICE)};
  const char *chans[] = {"mission:sig_1", "market:AAPL", "signals"};
  for (size_t i = 0; i < 3; i++)
    for (size_t j = 0; j < 3; j++)
      cr_expect_eq(may_read(&ids[i], chans[j]), 1, "%s on %s", ids[i].sub, chans[j]);
}

Test(auth_may_read, user_channel_for_its_user)
{
  struct sortie_identity a = who("alice", SORTIE_ROLE_USER);
  cr_expect_eq(may_read(&a, "user:alice"), 1);
  cr_expect_eq(may_read(&a, "user:bob"), 0);
  cr_expect_eq(may_read(&a, "user:alic"), 0);
  cr_expect_eq(may_read(&a, "user:alice2"), 0);
}

Test(auth_may_read, user_channel_for_admin_and_service)
{
  struct sortie_identity adm = who("root", SORTIE_ROLE_ADMIN);
  struct sortie_identity svc = who("feed", SORTIE_ROLE_SERVICE);
  cr_expect_eq(may_read(&adm, "user:bob"), 1);
  cr_expect_eq(may_read(&svc, "user:bob"), 1);
}

Test(auth_may_read, admin_channel_not_for_users)
{
  struct sortie_identity a = who("admin", SORTIE_ROLE_USER); /* the name grants nothing */
  cr_expect_eq(may_read(&a, "admin"), 0);
  struct sortie_identity adm = who("root", SORTIE_ROLE_ADMIN);
  struct sortie_identity svc = who("feed", SORTIE_ROLE_SERVICE);
  cr_expect_eq(may_read(&adm, "admin"), 1);
  cr_expect_eq(may_read(&svc, "admin"), 1);
}

Test(auth_may_read, invalid_or_unknown_channels_for_nobody)
{
  struct sortie_identity adm = who("root", SORTIE_ROLE_ADMIN);
  const char *bad[] = {"Mission:x", "mission:", "foo", "foo:bar", "market:aapl", "user:a/b", "",
                       "mission", "user"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(may_read(&adm, bad[i]), 0, "'%s' readable", bad[i]);
}

Test(auth_role_name, names_each_role)
{
  cr_expect_str_eq(sortie_role_name(SORTIE_ROLE_USER), "user");
  cr_expect_str_eq(sortie_role_name(SORTIE_ROLE_ADMIN), "admin");
  cr_expect_str_eq(sortie_role_name(SORTIE_ROLE_SERVICE), "service");
}

/* exp, nbf and iat that are not whole seconds (a string, a fraction, a
 * number past the double range, null, an object) refuse the token: libjwt
 * reports them by errno, and they once read as absent (nbf, iat). (An
 * integer past 64 bits is not even JSON to libjwt's parser: such a token is
 * refused as unreadable, and cannot be minted here.) */
Test(auth_verify, time_claims_that_are_not_whole_seconds_are_refused)
{
  static const char *bad[] = {"\"soon\"", "1.5e300", "1795000000.5", "null", "{}"};
  static const char *claim[] = {"exp", "nbf", "iat"};
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      char claims[256];
      if (c == 0)
        snprintf(claims, sizeof claims, "{\"sub\":\"alice\",\"exp\":%s}", bad[i]);
      else
        snprintf(claims, sizeof claims, "{\"sub\":\"alice\",\"exp\":%ld,\"%s\":%s}",
                 NOW + 3600, claim[c], bad[i]);
      char *t = mint_hs(claims);
      cr_expect_eq(hs_refused_for(t, claim[c]), 1, "%s accepted or refused for another reason",
                   claims);
      free(t);
    }
}
