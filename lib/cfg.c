/* Table-driven configuration: each key is a row (name, type, offset, default), so
 * the file, the environment and the defaults go through one code path. */
#include "cfg.h"
#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum kind { K_STR, K_INT };

struct key {
  const char *name;
  enum kind kind;
  size_t off;
  size_t size; /* strings: buffer size */
  const char *def;
  long min, max; /* ints */
};

#define S(name, field, def) {name, K_STR, offsetof(struct sortie_cfg, field), \
                             sizeof(((struct sortie_cfg *)0)->field), def, 0, 0}
#define I(name, field, def, lo, hi) {name, K_INT, offsetof(struct sortie_cfg, field), 0, def, lo, hi}

static const struct key keys[] = {
    S("redis.host", redis_host, "127.0.0.1"),
    I("redis.port", redis_port, "6379", 1, 65535),
    S("redis.socket", redis_socket, ""),
    S("redis.password_file", redis_password_file, ""),
    I("redis.db", redis_db, "0", 0, 1024),
    I("redis.timeout_ms", redis_timeout_ms, "1000", 10, 60000),
    S("redis.prefix", redis_prefix, "sortie:"),
    S("redis.sentinels", redis_sentinels, ""),
    S("redis.master_name", redis_master_name, "mymaster"),
    S("jwt.alg", jwt_alg, "HS256"),
    S("jwt.secret_file", jwt_secret_file, "/etc/sortie/jwt.secret"),
    S("jwt.public_key_file", jwt_public_key_file, ""),
    I("jwt.leeway_s", jwt_leeway_s, "30", 0, 3600),
    I("api.body_max", api_body_max, "16384", 256, 16777216),
    I("api.fire_rate_per_min", api_fire_rate_per_min, "10", 1, 1000000),
    I("api.read_rate_per_min", api_read_rate_per_min, "600", 1, 1000000),
    I("api.fire_window_s", api_fire_window_s, "300", 1, 86400 * 365),
    I("api.idempotency_ttl_s", api_idempotency_ttl_s, "86400", 60, 86400 * 30),
    I("api.fire_wait_replicas", api_fire_wait_replicas, "0", 0, 100),
    I("api.fire_wait_timeout_ms", api_fire_wait_timeout_ms, "1000", 1, 60000),
    S("api.problem_base", api_problem_base, "/problems/"),
    S("api.www_root", api_www_root, "/usr/share/sortie/www"),
    I("history.maxlen", history_maxlen, "1000", 10, 10000000),
    I("history.max_age_s", history_max_age_s, "86400", 60, 86400 * 365),
    I("retention.signal_s", retention_signal_s, "604800", 60, 86400 * 3650),
    S("trading.equity_start", trading_equity_start, "10000.00"),
    S("trading.drawdown_alert_pct", trading_drawdown_alert_pct, "5,10,20"),
    S("log.file", log_file, ""),
    S("log.level", log_level, "info"),
    S("push.listen", push_listen, "127.0.0.1"),
    I("push.port", push_port, "8081", 1, 65535),
    I("push.workers", push_workers, "2", 1, 64),
    S("push.origins", push_origins, ""),
    I("push.max_channels", push_max_channels, "64", 1, 4096),
    I("push.max_conn_per_user", push_max_conn_per_user, "10", 1, 100000),
    I("push.max_message", push_max_message, "65536", 128, 16777216),
    I("push.outbuf_max", push_outbuf_max, "262144", 4096, 268435456),
    I("push.heartbeat_s", push_heartbeat_s, "15", 1, 3600),
    I("push.ping_s", push_ping_s, "30", 1, 3600),
    I("push.ws_echo", push_ws_echo, "0", 0, 1),
    I("push.poll_timeout_max_s", push_poll_timeout_max_s, "60", 1, 3600),
    I("push.retry_ms", push_retry_ms, "2000", 100, 600000),
    I("push.max_connections", push_max_connections, "100000", 1, 10000000),
    I("push.max_pending", push_max_pending, "0", 0, 1000000),
    I("push.history_reads", push_history_reads, "4", 1, 1024),
    I("push.max_conn_per_ip", push_max_conn_per_ip, "0", 0, 1000000),
    I("push.header_timeout_s", push_header_timeout_s, "10", 1, 3600),
    I("push.slot_renew_s", push_slot_renew_s, "60", 1, 60),
    I("push.token_warn_s", push_token_warn_s, "30", 0, 3600),
    I("push.token_grace_s", push_token_grace_s, "10", 0, 3600),
};

#define NKEYS (sizeof keys / sizeof keys[0])

static const struct key *find(const char *name)
{
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(keys[i].name, name) == 0)
      return &keys[i];
  return NULL;
}

static int apply(struct sortie_cfg *c, const struct key *k, const char *v, char *err, size_t errlen)
{
  char *dst = (char *)c + k->off;
  if (k->kind == K_STR) {
    size_t n = strlen(v);
    if (n >= k->size) {
      snprintf(err, errlen, "%s: value longer than %zu bytes", k->name, k->size - 1);
      return -1;
    }
    memcpy(dst, v, n + 1);
    return 0;
  }
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end != '\0' || x < k->min || x > k->max) {
    snprintf(err, errlen, "%s: '%s' is not a whole number from %ld to %ld", k->name, v, k->min,
             k->max);
    return -1;
  }
  *(int *)(void *)dst = (int)x;
  return 0;
}

int sortie_cfg_set(struct sortie_cfg *c, const char *key, const char *value, char *err,
                   size_t errlen)
{
  const struct key *k = find(key);
  if (k == NULL) {
    snprintf(err, errlen, "unknown key '%s'", key);
    return -1;
  }
  return apply(c, k, value, err, errlen);
}

static char *trim(char *s)
{
  while (isspace((unsigned char)*s))
    s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1]))
    s[--n] = '\0';
  return s;
}

static int read_file(struct sortie_cfg *c, const char *path, char *err, size_t errlen)
{
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0, rc = 0;
  while (getline(&line, &cap, f) >= 0) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    char *s = trim(line);
    if (*s == '\0')
      continue;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
      snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
      rc = -1;
      break;
    }
    *eq = '\0';
    char *k = trim(s), *v = trim(eq + 1);
    char sub[512];
    if (sortie_cfg_set(c, k, v, sub, sizeof sub) < 0) {
      snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
      rc = -1;
      break;
    }
  }
  free(line);
  fclose(f);
  return rc;
}

int sortie_cfg_load(struct sortie_cfg *c, const char *path, char *err, size_t errlen)
{
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < NKEYS; i++)
    if (apply(c, &keys[i], keys[i].def, err, errlen) < 0)
      return -1;

  const char *env = getenv("SORTIE_CONF");
  if (path == NULL && env && *env)
    path = env;
  char beside[600];
  if (path == NULL) {
    /* beside the program: how a shared host without server config (only
     * .htaccess, so no way to set the environment of mod_fcgid's processes)
     * points the programs at their config */
    struct stat st;
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
      exe[n] = '\0';
      char *slash = strrchr(exe, '/');
      if (slash) {
        *slash = '\0';
        snprintf(beside, sizeof beside, "%s/sortie.conf", exe);
        if (stat(beside, &st) == 0)
          path = beside;
      }
    }
    if (path == NULL && stat(SORTIE_DEFAULT_CONF, &st) == 0)
      path = SORTIE_DEFAULT_CONF;
  }
  if (path) {
    if (read_file(c, path, err, errlen) < 0)
      return -1;
    snprintf(c->path, sizeof c->path, "%s", path);
  }

  for (size_t i = 0; i < NKEYS; i++) {
    char name[96] = "SORTIE_";
    size_t o = 7;
    for (const char *p = keys[i].name; *p && o + 1 < sizeof name; p++)
      name[o++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    name[o] = '\0';
    const char *v = getenv(name);
    if (v == NULL)
      continue;
    char sub[512];
    if (apply(c, &keys[i], v, sub, sizeof sub) < 0) {
      snprintf(err, errlen, "environment %s: %s", name, sub);
      return -1;
    }
  }
  if (c->retention_signal_s < c->history_max_age_s) {
    /* a mission history dropped with its signal must be older than any cursor
     * the history could still serve, or a client could miss it silently */
    snprintf(err, errlen, "retention.signal_s (%d) must be at least history.max_age_s (%d)",
             c->retention_signal_s, c->history_max_age_s);
    return -1;
  }
  if (strcmp(c->jwt_alg, "HS256") != 0 && strcmp(c->jwt_alg, "RS256") != 0) {
    snprintf(err, errlen, "jwt.alg: '%s' is not HS256 or RS256", c->jwt_alg);
    return -1;
  }
  return 0;
}

/* Reads a whole small file (secrets, keys: at most 64 KiB). */
static int slurp(const char *path, unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  struct sortie_buf b = {0};
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    sortie_buf_append(&b, chunk, n);
    if (b.len > 65536) {
      fclose(f);
      sortie_buf_free(&b);
      snprintf(err, errlen, "%s: larger than 64 KiB", path);
      return -1;
    }
  }
  fclose(f);
  *out = (unsigned char *)sortie_buf_steal(&b, outlen);
  return 0;
}

int sortie_cfg_load_secrets(struct sortie_cfg *c, char *err, size_t errlen)
{
  sortie_cfg_free(c);
  const char *kf = strcmp(c->jwt_alg, "RS256") == 0 ? c->jwt_public_key_file : c->jwt_secret_file;
  if (kf[0] == '\0') {
    snprintf(err, errlen, "no key file configured for %s (jwt.%s)", c->jwt_alg,
             strcmp(c->jwt_alg, "RS256") == 0 ? "public_key_file" : "secret_file");
    return -1;
  }
  if (slurp(kf, &c->jwt_key, &c->jwt_key_len, err, errlen) < 0)
    return -1;
  if (strcmp(c->jwt_alg, "HS256") == 0) {
    /* a secret file usually ends with a newline that is not part of the secret */
    while (c->jwt_key_len && (c->jwt_key[c->jwt_key_len - 1] == '\n' ||
                              c->jwt_key[c->jwt_key_len - 1] == '\r'))
      c->jwt_key[--c->jwt_key_len] = '\0';
    if (c->jwt_key_len < 32) {
      snprintf(err, errlen, "%s: an HS256 secret needs at least 32 bytes", kf);
      sortie_cfg_free(c);
      return -1;
    }
  }
  if (c->redis_password_file[0]) {
    unsigned char *pw;
    size_t n;
    if (slurp(c->redis_password_file, &pw, &n, err, errlen) < 0) {
      sortie_cfg_free(c);
      return -1;
    }
    while (n && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
      pw[--n] = '\0';
    c->redis_password = (char *)pw;
  }
  return 0;
}

void sortie_cfg_free(struct sortie_cfg *c)
{
  free(c->jwt_key);
  c->jwt_key = NULL;
  c->jwt_key_len = 0;
  free(c->redis_password);
  c->redis_password = NULL;
}
