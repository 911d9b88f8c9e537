/* sortie-token: mints a JWT with the configured key, for tests, demos and the
 * README's curl tour.  sortie-token [-c CONF] [-r ROLE] [-t TTL] [-k KEYFILE] SUB */
#include "auth.h"
#include "buf.h"
#include "cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
  fprintf(stderr,
          "usage: sortie-token [-c CONFIG] [-r user|admin|service] [-t TTL_SECONDS] [-k KEYFILE] SUB\n"
          "  Prints a token for user SUB signed with jwt.secret_file (HS256), or with the\n"
          "  private key KEYFILE when jwt.alg is RS256. Default role user, TTL 3600 s.\n");
}

int main(int argc, char **argv)
{
  const char *conf = NULL, *role = "user", *keyfile = NULL;
  long ttl = 3600;
  int c;
  while ((c = getopt(argc, argv, "c:r:t:k:h")) != -1) {
    switch (c) {
    case 'c': conf = optarg; break;
    case 'r': role = optarg; break;
    case 't': ttl = atol(optarg); break;
    case 'k': keyfile = optarg; break;
    default: usage(); return c == 'h' ? 0 : 2;
    }
  }
  if (optind != argc - 1 || ttl < 1 ||
      (strcmp(role, "user") && strcmp(role, "admin") && strcmp(role, "service"))) {
    usage();
    return 2;
  }
  const char *sub = argv[optind];
  if (!sortie_valid_id(sub, strlen(sub))) {
    fprintf(stderr, "sortie-token: '%s' is not a valid user id\n", sub);
    return 2;
  }
  struct sortie_cfg cfg;
  char err[512];
  if (sortie_cfg_load(&cfg, conf, err, sizeof err) < 0) {
    fprintf(stderr, "sortie-token: %s\n", err);
    return 1;
  }
  unsigned char *key = NULL;
  size_t keylen = 0;
  if (strcmp(cfg.jwt_alg, "RS256") == 0) {
    if (keyfile == NULL) {
      fprintf(stderr, "sortie-token: jwt.alg is RS256: give the private key with -k\n");
      return 2;
    }
    FILE *f = fopen(keyfile, "rb");
    if (f == NULL) {
      perror(keyfile);
      return 1;
    }
    struct sortie_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
      sortie_buf_append(&b, chunk, n);
    fclose(f);
    key = (unsigned char *)sortie_buf_steal(&b, &keylen);
  } else {
    if (keyfile)
      snprintf(cfg.jwt_secret_file, sizeof cfg.jwt_secret_file, "%s", keyfile);
    if (sortie_cfg_load_secrets(&cfg, err, sizeof err) < 0) {
      fprintf(stderr, "sortie-token: %s\n", err);
      return 1;
    }
    key = cfg.jwt_key;
    keylen = cfg.jwt_key_len;
    cfg.jwt_key = NULL;
  }
  long now = (long)time(NULL);
  char *tok = sortie_auth_mint(cfg.jwt_alg, key, keylen, sub, role, now, now + ttl);
  free(key);
  sortie_cfg_free(&cfg);
  if (tok == NULL) {
    fprintf(stderr, "sortie-token: could not sign the token (bad key?)\n");
    return 1;
  }
  printf("%s\n", tok);
  free(tok);
  return 0;
}
