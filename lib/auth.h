/* Identity: JWT verification and minting (libjwt), where a request's token comes
 * from, and the rules of who may act for whom and read which channel. */
#ifndef SORTIE_AUTH_H
#define SORTIE_AUTH_H

#include <stddef.h>

#include "cfg.h"
#include "valid.h"

#define SORTIE_TOKEN_MAX 4096

enum sortie_role {
  SORTIE_ROLE_USER = 0,
  SORTIE_ROLE_ADMIN,
  SORTIE_ROLE_SERVICE,
};

struct sortie_identity {
  char sub[SORTIE_ID_MAX + 1];
  enum sortie_role role;
  long exp;
};

/** Verifies `token` (NUL-terminated) with the configured algorithm and key:
 * the signature, `alg` equal to jwt.alg (so `none` and algorithm swaps fail),
 * `exp` required and not past, `nbf`/`iat` not in the future (both with
 * jwt.leeway_s), `sub` required and a valid id, `role` absent or one of
 * user/admin/service. `now` is unix seconds. Returns 0 and fills `out`, or -1
 * with `*why` set to a short static reason fit for a 401 detail. */
int sortie_auth_verify(const struct sortie_cfg *c, const char *token, long now,
                       struct sortie_identity *out, const char **why);

/** Finds the request's token: `Authorization: Bearer …` first, then the
 * `sortie_token` cookie, then (only if allow_query) the `token` query parameter,
 * percent-decoded. Any argument may be NULL. Copies the token into `out` (size
 * `outsz`) and returns 0 with `*source` naming where it came from ("header",
 * "cookie", "query"); -1 if there is none (or it does not fit). */
int sortie_auth_find_token(const char *authorization, const char *cookie, const char *query,
                           int allow_query, char *out, size_t outsz, const char **source);

/** Mints a token signed with `key` (HS256 secret, or RS256 private key PEM).
 * Returns a malloc'd NUL-terminated string the caller frees, or NULL on error. */
char *sortie_auth_mint(const char *alg, const unsigned char *key, size_t keylen, const char *sub,
                       const char *role, long iat, long exp);

const char *sortie_role_name(enum sortie_role r);

/** 1 if `id` may act as user `user_id` (itself; admin and service for anyone). */
int sortie_auth_may_act_for(const struct sortie_identity *id, const char *user_id, size_t len);

/** 1 if `id` may read channel `ch` (its events over REST or the push daemon):
 * mission:*, market:*, signals for anyone authenticated; user:X for X and admin
 * (and service); admin for admin (and service). 0 otherwise, also for an invalid
 * or unknown channel. */
int sortie_auth_may_read(const struct sortie_identity *id, const char *ch, size_t len);

#endif
