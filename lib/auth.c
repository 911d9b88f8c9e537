/* JWT with libjwt. libjwt 1.x accepts `alg: none` tokens even when a key is given,
 * so the algorithm is always compared with the configured one after decoding. */
#include "auth.h"

#include <errno.h>
#include <jwt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static jwt_alg_t cfg_alg(const char *alg)
{
  return strcmp(alg, "RS256") == 0 ? JWT_ALG_RS256 : JWT_ALG_HS256;
}

/* A time claim: 1 and *out when it is a JSON integer that fits a long, 0 when
 * absent, -1 otherwise (its JSON text is read, since jwt_get_grant_int
 * cannot tell "absent", "not an integer" and 0 apart). */
static int time_claim(jwt_t *jwt, const char *name, long *out)
{
  char *js = jwt_get_grants_json(jwt, name);
  if (js == NULL)
    return 0;
  char *end = NULL;
  errno = 0;
  long v = strtol(js, &end, 10);
  int ok = (js[0] == '-' || (js[0] >= '0' && js[0] <= '9')) && end != js && *end == '\0' &&
           errno == 0;
  free(js);
  if (!ok)
    return -1;
  *out = v;
  return 1;
}

int sortie_auth_verify(const struct sortie_cfg *c, const char *token, long now,
                       struct sortie_identity *out, const char **why)
{
  jwt_t *jwt = NULL;
  size_t tlen = strlen(token);
  if (tlen == 0 || tlen > SORTIE_TOKEN_MAX) {
    *why = "token is empty or too long";
    return -1;
  }
  if (c->jwt_key == NULL) {
    *why = "server has no verification key";
    return -1;
  }
  if (jwt_decode(&jwt, token, c->jwt_key, (int)c->jwt_key_len) != 0 || jwt == NULL) {
    *why = "token signature or format is invalid";
    return -1;
  }
  int rc = -1;
  if (jwt_get_alg(jwt) != cfg_alg(c->jwt_alg)) {
    *why = "token algorithm is not the one this server accepts";
    goto done;
  }
  long leeway = c->jwt_leeway_s;
  /* exp, nbf and iat are whole seconds: a claim of another type (a string,
   * a fraction, null, an object) refuses the token. libjwt's
   * jwt_get_grant_int reads such a claim as 0 without saying so (a time
   * long past, so an "nbf": "soon" passed), so each is read from its JSON. */
  long exp, nbf, iat;
  int has = time_claim(jwt, "exp", &exp);
  if (has == 0) {
    *why = "token has no exp";
    goto done;
  }
  if (has < 0) {
    *why = "token exp is not a whole number of seconds";
    goto done;
  }
  /* written so that no sum can overflow, whatever the token claims */
  if (exp <= now - leeway) {
    *why = "token has expired";
    goto done;
  }
  has = time_claim(jwt, "nbf", &nbf);
  if (has < 0) {
    *why = "token nbf is not a whole number of seconds";
    goto done;
  }
  if (has && nbf > now + leeway) {
    *why = "token is not valid yet (nbf)";
    goto done;
  }
  has = time_claim(jwt, "iat", &iat);
  if (has < 0) {
    *why = "token iat is not a whole number of seconds";
    goto done;
  }
  if (has && iat > now + leeway) {
    *why = "token is issued in the future (iat)";
    goto done;
  }
  const char *sub = jwt_get_grant(jwt, "sub");
  if (sub == NULL || sub[0] == '\0') {
    *why = "token has no sub";
    goto done;
  }
  size_t sublen = strlen(sub);
  if (!sortie_valid_id(sub, sublen)) {
    *why = "token sub is not a valid user id";
    goto done;
  }
  const char *role = jwt_get_grant(jwt, "role");
  enum sortie_role r = SORTIE_ROLE_USER;
  if (role == NULL) {
    /* absent, or present but not a string (libjwt says NULL for both) */
    char *any = jwt_get_grants_json(jwt, "role");
    if (any != NULL) {
      free(any);
      *why = "token role is not user, admin or service";
      goto done;
    }
  } else {
    if (strcmp(role, "user") == 0)
      r = SORTIE_ROLE_USER;
    else if (strcmp(role, "admin") == 0)
      r = SORTIE_ROLE_ADMIN;
    else if (strcmp(role, "service") == 0)
      r = SORTIE_ROLE_SERVICE;
    else {
      *why = "token role is not user, admin or service";
      goto done;
    }
  }
  memcpy(out->sub, sub, sublen + 1);
  out->role = r;
  out->exp = exp;
  rc = 0;
done:
  jwt_free(jwt);
  return rc;
}

/* Copies a token of `n` bytes, refusing anything but the base64url alphabet and
 * '.', so no header or log injection can ride along. */
static int copy_token(const char *s, size_t n, char *out, size_t outsz, int pct_decode)
{
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (pct_decode && ch == '%' && i + 2 < n && sortie_unhex(s[i + 1]) >= 0 && sortie_unhex(s[i + 2]) >= 0) {
      ch = (char)(sortie_unhex(s[i + 1]) * 16 + sortie_unhex(s[i + 2]));
      i += 2;
    }
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.'))
      return -1;
    if (o + 1 >= outsz)
      return -1;
    out[o++] = ch;
  }
  if (o == 0)
    return -1;
  out[o] = '\0';
  return 0;
}

int sortie_auth_find_token(const char *authorization, const char *cookie, const char *query,
                           int allow_query, char *out, size_t outsz, const char **source)
{
  if (authorization && strncasecmp(authorization, "Bearer ", 7) == 0) {
    const char *t = authorization + 7;
    while (*t == ' ')
      t++;
    size_t n = strlen(t);
    while (n && t[n - 1] == ' ')
      n--;
    if (copy_token(t, n, out, outsz, 0) == 0) {
      *source = "header";
      return 0;
    }
    return -1; /* a malformed header is not silently replaced by a cookie */
  }
  if (cookie) {
    const char *p = cookie;
    while (*p) {
      while (*p == ' ' || *p == ';')
        p++;
      const char *end = strchr(p, ';');
      size_t n = end ? (size_t)(end - p) : strlen(p);
      if (n > 13 && memcmp(p, "sortie_token=", 13) == 0) {
        const char *v = p + 13;
        size_t vn = n - 13;
        if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
          v++;
          vn -= 2;
        }
        if (copy_token(v, vn, out, outsz, 0) == 0) {
          *source = "cookie";
          return 0;
        }
      }
      p += n;
    }
  }
  if (allow_query && query) {
    const char *p = query;
    while (*p) {
      const char *end = strchr(p, '&');
      size_t n = end ? (size_t)(end - p) : strlen(p);
      if (n > 6 && memcmp(p, "token=", 6) == 0) {
        if (copy_token(p + 6, n - 6, out, outsz, 1) == 0) {
          *source = "query";
          return 0;
        }
        return -1;
      }
      p += n;
      if (*p == '&')
        p++;
    }
  }
  return -1;
}

char *sortie_auth_mint(const char *alg, const unsigned char *key, size_t keylen, const char *sub,
                       const char *role, long iat, long exp)
{
  jwt_t *jwt = NULL;
  char *tok = NULL;
  if (jwt_new(&jwt) != 0)
    return NULL;
  if (jwt_add_grant(jwt, "sub", sub) != 0 || (role && jwt_add_grant(jwt, "role", role) != 0) ||
      jwt_add_grant_int(jwt, "iat", iat) != 0 || jwt_add_grant_int(jwt, "exp", exp) != 0 ||
      jwt_set_alg(jwt, cfg_alg(alg), key, (int)keylen) != 0)
    goto done;
  tok = jwt_encode_str(jwt);
done:
  jwt_free(jwt);
  return tok;
}

const char *sortie_role_name(enum sortie_role r)
{
  switch (r) {
  case SORTIE_ROLE_ADMIN:
    return "admin";
  case SORTIE_ROLE_SERVICE:
    return "service";
  default:
    return "user";
  }
}

int sortie_auth_may_act_for(const struct sortie_identity *id, const char *user_id, size_t len)
{
  if (id->role == SORTIE_ROLE_ADMIN || id->role == SORTIE_ROLE_SERVICE)
    return 1;
  return strlen(id->sub) == len && memcmp(id->sub, user_id, len) == 0;
}

int sortie_auth_may_read(const struct sortie_identity *id, const char *ch, size_t len)
{
  const char *arg;
  size_t alen;
  int privileged = id->role == SORTIE_ROLE_ADMIN || id->role == SORTIE_ROLE_SERVICE;
  switch (sortie_channel_parse(ch, len, &arg, &alen)) {
  case SORTIE_CHAN_MISSION:
  case SORTIE_CHAN_MARKET:
  case SORTIE_CHAN_SIGNALS:
    return 1;
  case SORTIE_CHAN_USER:
    return privileged || (strlen(id->sub) == alen && memcmp(id->sub, arg, alen) == 0);
  case SORTIE_CHAN_ADMIN:
    return privileged;
  default:
    return 0;
  }
}
