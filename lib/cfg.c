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
  const char *desc; /* one or two sentences for sortie.conf(5) (man/confman.c) */
};

#define S(name, field, def, desc) {name, K_STR, offsetof(struct sortie_cfg, field), \
                                   sizeof(((struct sortie_cfg *)0)->field), def, 0, 0, desc}
#define I(name, field, def, lo, hi, desc) {name, K_INT, offsetof(struct sortie_cfg, field), 0, \
                                           def, lo, hi, desc}

static const struct key keys[] = {
    S("redis.host", redis_host, "127.0.0.1",
      "Host name or address of the Redis primary (7.0 or later)."),
    I("redis.port", redis_port, "6379", 1, 65535,
      "TCP port of the Redis primary."),
    S("redis.socket", redis_socket, "",
      "Path of a Redis unix socket, used instead of redis.host and redis.port; empty: TCP."),
    S("redis.password_file", redis_password_file, "",
      "File holding the password sent with AUTH (a trailing newline is not part of it); "
      "empty: no AUTH."),
    I("redis.db", redis_db, "0", 0, 1024,
      "Redis database number."),
    I("redis.timeout_ms", redis_timeout_ms, "1000", 10, 60000,
      "Connect and command timeout. A write left unanswered past it is answered 503 "
      "outcome-unknown; sortie-pushd drops a link that leaves a call unanswered this long."),
    S("redis.prefix", redis_prefix, "sortie:",
      "Every key Sortie writes starts with this, so that several installs can share one Redis."),
    S("redis.sentinels", redis_sentinels, "",
      "Redis Sentinel addresses (host:port, comma-separated, asked in turn). When set, the "
      "primary is found through them and followed across a failover, and redis.host, "
      "redis.port and redis.socket are not used."),
    S("redis.master_name", redis_master_name, "mymaster",
      "The name the sentinels monitor the primary under."),
    S("jwt.alg", jwt_alg, "HS256",
      "How tokens are signed: HS256 (a shared secret) or RS256 (a key pair); nothing else "
      "is accepted."),
    S("jwt.secret_file", jwt_secret_file, "/etc/sortie/jwt.secret",
      "HS256: the file holding the shared secret, at least 32 bytes (a trailing newline is "
      "not part of it). Keep it readable by the Sortie programs only."),
    S("jwt.public_key_file", jwt_public_key_file, "",
      "RS256: the public key (PEM) that verifies tokens."),
    I("jwt.leeway_s", jwt_leeway_s, "30", 0, 3600,
      "Clock leeway, in seconds, allowed on a token's exp, nbf and iat."),
    I("api.body_max", api_body_max, "16384", 256, 16777216,
      "Largest request body accepted, in bytes; a larger one is answered 413."),
    I("api.fire_rate_per_min", api_fire_rate_per_min, "10", 1, 1000000,
      "Fires per user in any sliding minute; past it 429 with Retry-After."),
    I("api.read_rate_per_min", api_read_rate_per_min, "600", 1, 1000000,
      "GET /api/events reads per user per clock minute; past it 429."),
    I("api.fire_window_s", api_fire_window_s, "300", 1, 86400 * 365,
      "A fire's timestamp must be within this many seconds of the server's clock (422 "
      "otherwise)."),
    I("api.idempotency_ttl_s", api_idempotency_ttl_s, "86400", 60, 86400 * 30,
      "How long, in seconds, the answer to a request with an Idempotency-Key is remembered."),
    I("api.fire_wait_replicas", api_fire_wait_replicas, "0", 0, 100,
      "A write (fire, signal, close, publish) is answered only once this many replicas "
      "have it (Redis WAIT); fewer in time: 503 outcome-unknown. 0: do not wait."),
    I("api.fire_wait_timeout_ms", api_fire_wait_timeout_ms, "1000", 1, 60000,
      "How long a write waits for api.fire_wait_replicas replicas."),
    S("api.problem_base", api_problem_base, "/problems/",
      "Prefix of the type URI of problem+json errors (the problem's slug follows it)."),
    S("api.www_root", api_www_root, "/usr/share/sortie/www",
      "Folder the mission page template, 404.html and 503.html are read from."),
    I("history.maxlen", history_maxlen, "1000", 10, 10000000,
      "Events kept per channel, approximately (Redis trims whole blocks); an older cursor "
      "gets a reset."),
    I("history.max_age_s", history_max_age_s, "86400", 60, 86400 * 365,
      "Events older than this many seconds are trimmed from channel histories by "
      "sortie-expire."),
    I("retention.signal_s", retention_signal_s, "604800", 60, 86400 * 3650,
      "The data of a signal that ended longer ago than this many seconds is dropped by "
      "sortie-expire (trades are kept). Must be at least history.max_age_s."),
    S("trading.equity_start", trading_equity_start, "10000.00",
      "The equity every user starts with; equity is this plus the user's total P/L."),
    S("trading.drawdown_alert_pct", trading_drawdown_alert_pct, "5,10,20",
      "Drawdown percentages from the equity peak, comma-separated; crossing one publishes a "
      "risk_alert."),
    S("log.file", log_file, "",
      "File the log is appended to, one line per event; sortie-pushd and the sortie-api pool "
      "reopen it on SIGHUP. Empty: standard error."),
    S("log.level", log_level, "info",
      "Least severe level logged: debug, info, warn or error."),
    S("push.listen", push_listen, "127.0.0.1",
      "Address sortie-pushd listens on (its -l option overrides it)."),
    I("push.port", push_port, "8081", 1, 65535,
      "TCP port sortie-pushd listens on (its -P option overrides it)."),
    I("push.workers", push_workers, "2", 1, 64,
      "Worker processes of sortie-pushd, all on the same port; one per core (its -w option "
      "overrides it)."),
    S("push.origins", push_origins, "",
      "Browser origins allowed besides the daemon's own, comma-separated "
      "(https://app.example.com); empty: same-origin requests only."),
    I("push.max_channels", push_max_channels, "64", 1, 4096,
      "Channels one client may subscribe to; past it 400 too_many_channels."),
    I("push.max_conn_per_user", push_max_conn_per_user, "10", 1, 100000,
      "Streams and waiting long-polls one user may hold, counted in Redis across every "
      "daemon; past it 429."),
    I("push.max_message", push_max_message, "65536", 128, 16777216,
      "Largest WebSocket message accepted from a client, in bytes; past it close 1009."),
    I("push.outbuf_max", push_outbuf_max, "262144", 4096, 268435456,
      "Bytes a client may leave unsent before it is disconnected as too slow (it resumes "
      "from history when it reconnects)."),
    I("push.heartbeat_s", push_heartbeat_s, "15", 1, 3600,
      "Seconds between the comments that keep an idle SSE stream open through proxies."),
    I("push.ping_s", push_ping_s, "30", 1, 3600,
      "Seconds between WebSocket pings; a peer silent for two intervals is closed."),
    I("push.ws_echo", push_ws_echo, "0", 0, 1,
      "1: serve GET /echo, a WebSocket echo without token or Origin check, for "
      "conformance suites. For testing only; never in production."),
    I("push.poll_timeout_max_s", push_poll_timeout_max_s, "60", 1, 3600,
      "Longest wait, in seconds, a long-poll may ask for."),
    I("push.retry_ms", push_retry_ms, "2000", 100, 600000,
      "The reconnection delay an SSE stream announces to the browser (retry:)."),
    I("push.max_connections", push_max_connections, "100000", 1, 10000000,
      "Streams held at once per worker; past it 503."),
    I("push.max_pending", push_max_pending, "0", 0, 1000000,
      "Requests being read and waiting long-polls held at once per worker; past it new "
      "connections wait in the listen queue. 0: a quarter of the descriptor limit, 64 to "
      "16384."),
    I("push.history_reads", push_history_reads, "4", 1, 1024,
      "History reads out in Redis at once per worker, at most one per client; the others "
      "wait their turn."),
    I("push.max_conn_per_ip", push_max_conn_per_ip, "0", 0, 1000000,
      "Connections held at once from one source address; past it a new one is closed "
      "unanswered. 0: no cap (leave it so behind Apache, where every peer is 127.0.0.1)."),
    I("push.header_timeout_s", push_header_timeout_s, "10", 1, 3600,
      "A connection whose request head stalls, or that stays idle between kept-alive "
      "requests, this many seconds is closed (waiting long-polls and streams are not)."),
    I("push.slot_renew_s", push_slot_renew_s, "60", 1, 60,
      "How often, in seconds, each connection's per-user slot is renewed in Redis (a sixth "
      "at a time); a crashed daemon's slots stop counting 180 s after their last renewal."),
    I("push.presence", push_presence, "1", 0, 1,
      "1: sortie-pushd counts the distinct users watching each mission (its mission:{id} "
      "streams), publishes presence_update events, and the REST API shows watching and "
      "top_watched. 0: no presence work at all, and those members are left out."),
    I("push.presence_ttl_s", push_presence_ttl_s, "60", 3, 3600,
      "A worker renews the users it holds every third of this many seconds; a killed "
      "daemon's or worker's users stop counting at most this long after its last renewal."),
    I("push.presence_debounce_ms", push_presence_debounce_ms, "1000", 100, 60000,
      "At most one presence_update per mission this often, in milliseconds; a change held "
      "back is published when the time comes (the latest count, if it still differs)."),
    I("push.token_warn_s", push_token_warn_s, "30", 0, 3600,
      "Seconds before its token's exp that a WebSocket is sent token_expiring (0: at exp)."),
    I("push.token_grace_s", push_token_grace_s, "10", 0, 3600,
      "Seconds after its token's exp that a WebSocket which sent no refresh is closed with "
      "4001."),
};

#define NKEYS (sizeof keys / sizeof keys[0])

int sortie_cfg_key(size_t i, struct sortie_cfg_keyinfo *out)
{
  if (i >= NKEYS)
    return -1;
  const struct key *k = &keys[i];
  out->name = k->name;
  out->is_int = k->kind == K_INT;
  out->def = k->def;
  out->min = k->min;
  out->max = k->max;
  out->maxlen = k->kind == K_STR ? k->size - 1 : 0;
  out->desc = k->desc;
  return 0;
}

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
