/* Integration-test world: each test program starts its own Redis, FastCGI pool
 * and Apache (tools/stack.sh, the same way `make start` does) in a temp folder
 * on free ports before its first test, and stops them after the last, or from
 * tests/run.sh if it dies. Tests talk to it over real HTTP (libcurl) and check
 * state in the real Redis. Use a unique id per test (uniq()) so tests running
 * in parallel never share a signal, user or channel. */
#ifndef SORTIE_TEST_HARNESS_H
#define SORTIE_TEST_HARNESS_H

#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stddef.h>

#include "redis.h"

/* The world starts before a program's first test and stops after its last
 * (Criterion report hooks in harness.c). A program that needs more settings in
 * its world's sortie.conf says so once, at file scope:
 *   SORTIE_WORLD_CONF("api.fire_rate_per_min = 1000\n"); */
#define SORTIE_WORLD_CONF(text) const char *sortie_world_extra_conf = (text)

/* A program whose world needs more than fixed lines: servers of its own beside
 * the stack, or settings known only at run time (Sentinel: a replica and the
 * sentinels on free ports). world_start calls `fn` once the run folder and the
 * ports are chosen (world_run(), world_redis_port() and world_free_port()
 * work) and before it starts the stack; the text `fn` returns (static, or
 * NULL) goes into sortie.conf after SORTIE_WORLD_CONF's. Servers `fn` starts
 * write their pid files into world_run()/extra/ (NAME.pid): stopping the world
 * (also from tests/run.sh after a crash) stops them.
 *   SORTIE_WORLD_PREPARE(start_sentinels); */
#define SORTIE_WORLD_PREPARE(fn) const char *(*sortie_world_prepare)(void) = (fn)

void world_start(const char *extra_conf);
void world_stop(void);
/* a free TCP port on 127.0.0.1 */
int world_free_port(void);

/* the world, read from the environment world_start() set */
const char *world_base(void);      /* http://127.0.0.1:PORT */
const char *world_push_base(void); /* http://127.0.0.1:PUSH_PORT */
const char *world_run(void);       /* runtime folder */
const char *world_conf(void);      /* path of its sortie.conf */
int world_redis_port(void);
/* runs `tools/stack.sh` verb-like helpers on the world: "redis-stop",
 * "redis-start", "pushd-stop", "pushd-start", "apache-restart" */
int world_ctl(const char *what);
/* Stops process `pid` (a server of the world) with SIGSTOP. It gets SIGCONT
 * from world_stall_end() (call it from the test's .fini too), or from a guard
 * process when the test's process dies or after max_s seconds, so that no
 * stopped server outlives a failed test. One stall at a time per process. */
void world_stall(int pid, int max_s);
void world_stall_end(void);

struct http_resp {
  long status;
  char *body;
  size_t len;
  char *headers; /* all response header lines */
  json_object *json; /* parsed body, or NULL */
};

/* One HTTP request against the world's Apache (path starts with '/') or an
 * absolute URL. token: Bearer token or NULL. body: NULL for none; content type
 * defaults to application/json when a body is given. extra: one more header
 * line ("Name: value") or NULL. Returns 0, -1 on transport failure. */
int http(const char *method, const char *path, const char *token, const char *body,
         const char *content_type, const char *extra, struct http_resp *out);
void http_free(struct http_resp *r);
/* Sends `len` bytes exactly as given to the world's Apache (for requests libcurl
 * will not build: raw bytes in the path, hand-made chunked bodies) and reads the
 * answer until the server closes, so send "Connection: close". Fills `out` like
 * http() (a chunked answer is de-chunked; headers include the status line; an
 * answer without a status line, as to an HTTP/0.9 request, is all body with
 * status 0). Returns 0, -1 if nothing could be read. */
int http_raw(const char *request, size_t len, struct http_resp *out);
/* value of header `name` (case-insensitive) copied into out, or NULL */
char *http_header(const struct http_resp *r, const char *name, char *out, size_t n);

/* a JSON member as string/int (NULL / -1 if absent); path like "stats.total_trades" */
const char *jget_str(json_object *o, const char *path);
long long jget_int(json_object *o, const char *path);

/* a token for `sub` with `role` ("user", "admin", "service"), valid `ttl` s (free it) */
char *token_for(const char *sub, const char *role);
char *token_custom(const char *sub, const char *role, long iat, long exp);

/* a token with exactly these claims (a JSON object's text), signed with the
 * world's HS256 secret: for claims token_custom() cannot express (nbf, no sub).
 * NULL on error; free it */
char *token_claims(const char *claims_json);

/* a unique id for this test: prefix_<pid>_<n> (static buffer ring; copy it to keep) */
const char *uniq(const char *prefix);

/* a direct Redis command to the world's Redis; caller frees the reply */
sortie_reply *rcmd(int argc, const char **argv);
/* convenience: string result of a command (malloc'd) or NULL */
char *rstr(int argc, const char **argv);
long long rinteger(int argc, const char **argv);
/* the history of `channel` straight from Redis (XRANGE <prefix>h:<channel> - +):
 * a JSON array of {"id","type","data"} (data parsed, null if it is not JSON),
 * oldest first; an empty array when there is none. Put it with json_object_put */
json_object *rstream(const char *channel);
/* the key prefix the world uses ("sortie:") */
const char *kp(void);

/* creates signal `id` through the API as a service, expiring in ttl s; returns
 * the HTTP status */
long make_signal(const char *id, long ttl);
/* fires as `user`, returns status (body in out if non-NULL) */
long fire(const char *user, const char *signal_id, const char *idem_key, struct http_resp *out);

long long now_s(void);
long long now_ms(void);

/* the pid written in file RUN/NAME of the world's runtime folder, 0 when none */
long world_pid(const char *name);
/* the whole of a file as text ("" when it cannot be read); free it */
char *file_text(const char *path);
/* 1 when the file holds needle (0 when it does not, or cannot be read) */
int file_has(const char *path, const char *needle);

#endif
