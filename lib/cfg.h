/* Configuration: one `sortie.conf` shared by the FastCGI programs, the tools and
 * sortie-pushd, overridable key by key from the environment.
 *
 * File syntax: `key = value` per line, `#` starts a comment, blank lines ignored.
 * Every key has a default; an unknown key or a bad value is an error naming the
 * line. The environment variable SORTIE_<KEY> (key upper-cased, '.' -> '_', e.g.
 * SORTIE_REDIS_PORT) overrides the file. The file is the one given by the
 * program's -c flag, else $SORTIE_CONF, else sortie.conf in the program's own
 * folder, else /etc/sortie/sortie.conf (if present). */
#ifndef SORTIE_CFG_H
#define SORTIE_CFG_H

#include <stddef.h>

#define SORTIE_VERSION "0.1.0"
#define SORTIE_DEFAULT_CONF "/etc/sortie/sortie.conf"

struct sortie_cfg {
  /* redis */
  char redis_host[256];
  int redis_port;
  char redis_socket[512];
  char redis_password_file[512];
  int redis_db;
  int redis_timeout_ms;
  char redis_prefix[64];
  char redis_sentinels[512];   /* "host:port,host:port": find the primary through Sentinel */
  char redis_master_name[64];  /* the name the sentinels monitor it under */
  /* identity */
  char jwt_alg[8];              /* HS256 or RS256 */
  char jwt_secret_file[512];    /* HS256 shared secret */
  char jwt_public_key_file[512];/* RS256 public key (PEM) */
  int jwt_leeway_s;
  /* REST API */
  int api_body_max;
  int api_fire_rate_per_min;
  int api_read_rate_per_min; /* GET /api/events per user (events.lua) */
  int api_fire_window_s;
  int api_idempotency_ttl_s;
  int api_fire_wait_replicas;   /* WAIT for this many replicas before a 2xx write (0: off) */
  int api_fire_wait_timeout_ms;
  char api_problem_base[256];
  char api_www_root[512];
  /* history and retention */
  int history_maxlen;
  int history_max_age_s;
  int retention_signal_s;
  /* trading */
  char trading_equity_start[32];
  char trading_drawdown_alert_pct[64];
  /* logging */
  char log_file[512];
  char log_level[16];
  /* push daemon */
  char push_listen[64];
  int push_port;
  int push_workers;
  char push_origins[1024];
  int push_max_channels;
  int push_max_conn_per_user;
  int push_max_message;
  int push_outbuf_max;
  int push_heartbeat_s;
  int push_ping_s;
  int push_ws_echo; /* 1: GET /echo, a WebSocket echo for conformance suites (ws.c) */
  int push_poll_timeout_max_s;
  int push_retry_ms;
  int push_max_connections;
  int push_max_pending; /* 0: from the descriptor limit (pushd/http.c) */
  int push_history_reads; /* history reads out at once per worker (resume.c) */
  int push_max_conn_per_ip; /* libmicrohttpd's per-address cap (0: none) */
  int push_header_timeout_s; /* a silent request head or idle keep-alive */
  int push_token_warn_s;
  int push_token_grace_s;
  int push_slot_renew_s; /* per-user limit slots renewed this often (limit.h) */
  int push_presence; /* 1: count who watches each mission (pushd/presence.h) */
  int push_presence_ttl_s; /* a worker's presence lapses this long after its last renewal */
  int push_presence_debounce_ms; /* at most one presence_update per mission this often */

  /* Loaded by sortie_cfg_load_secrets(); owned by the struct, freed by
   * sortie_cfg_free(). The secret (HS256) or public key PEM (RS256). */
  unsigned char *jwt_key;
  size_t jwt_key_len;
  char *redis_password;
  /* Path of the file that was read ("" when none). */
  char path[1024];
};

/** Fills `c` with defaults, then the file (if any), then the environment.
 * `path` may be NULL. On error returns -1 and writes a message into `err`. */
int sortie_cfg_load(struct sortie_cfg *c, const char *path, char *err, size_t errlen);
/** Reads the files named by jwt.* and redis.password_file. -1 + message on error. */
int sortie_cfg_load_secrets(struct sortie_cfg *c, char *err, size_t errlen);
/** Sets one key from text, as the file would. -1 + message on error. */
int sortie_cfg_set(struct sortie_cfg *c, const char *key, const char *value, char *err,
                   size_t errlen);
/** Releases what sortie_cfg_load_secrets() allocated. */
void sortie_cfg_free(struct sortie_cfg *c);

/* One row of the key table, as sortie.conf(5) documents it (man/confman.c
 * writes the page from these, tests/unit/test_man.c checks it). */
struct sortie_cfg_keyinfo {
  const char *name; /* "redis.port" */
  int is_int;       /* 1: a whole number from min to max; 0: a string */
  const char *def;  /* the default, as text ("" for none) */
  long min, max;    /* whole numbers */
  size_t maxlen;    /* strings: the longest value, in bytes */
  const char *desc; /* one or two sentences, plain text */
};
/** Fills `out` with the i-th key (0-based, in the table's order); -1 past the
 * last one. */
int sortie_cfg_key(size_t i, struct sortie_cfg_keyinfo *out);

#endif
