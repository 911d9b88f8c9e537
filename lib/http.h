/* The request side of the FastCGI/CGI programs: one request in, one response
 * out, routed by a table. Transport (FastCGI stream or CGI stdio) is hidden
 * behind `struct sortie_io`; handlers only see `sortie_req` and `sortie_resp`. */
#ifndef SORTIE_HTTP_H
#define SORTIE_HTTP_H

#include <json-c/json.h>
#include <stddef.h>

#include "auth.h"
#include "buf.h"
#include "cfg.h"

struct sortie_redis;

/* Everything a handler may use that outlives one request: owned by the
 * program's main loop. */
struct sortie_app {
  struct sortie_cfg cfg;
  struct sortie_redis *redis;
};

/* How a request's bytes come and go: FastCGI streams or CGI stdio. */
struct sortie_io {
  /* reads up to n body bytes; returns count, 0 at end, -1 on error */
  long (*read)(void *ctx, char *buf, size_t n);
  /* writes n bytes; returns 0 or -1 */
  int (*write)(void *ctx, const char *buf, size_t n);
  /* CGI/FastCGI parameter (environment) by name, or NULL */
  const char *(*param)(void *ctx, const char *name);
  void *ctx;
};

#define SORTIE_MAX_PARAMS 2

struct sortie_req {
  const char *method;      /* "GET", "POST", ... (HEAD is served as GET) */
  int head;                /* 1 if the method was HEAD: no body is sent */
  char path[512];          /* the request path, without the query */
  const char *query;       /* raw query string, "" if none */
  const char *content_type;
  const char *if_none_match;
  const char *idempotency_key;
  /* path parameters ({} segments of the route), NUL-terminated copies */
  char param[SORTIE_MAX_PARAMS][SORTIE_ID_MAX + 1];
  int nparam;
  /* set when the route asks for it */
  struct sortie_identity who;
  int authed;
  json_object *json;       /* the parsed body (routes with SORTIE_ROUTE_JSON) */
  struct sortie_io *io;
};

struct sortie_resp {
  int status;
  const char *content_type; /* static string */
  struct sortie_buf headers;/* extra header lines, each ending in \r\n */
  struct sortie_buf body;
  const char *user;         /* for the log line; points into sortie_req.who */
};

typedef void sortie_handler(struct sortie_app *app, struct sortie_req *req,
                            struct sortie_resp *resp);

enum {
  SORTIE_ROUTE_PUBLIC = 0,
  SORTIE_ROUTE_AUTH = 1,  /* a valid token is required (401 otherwise) */
  SORTIE_ROUTE_JSON = 2,  /* a JSON object body is required (413/415/400) */
  SORTIE_ROUTE_PRIV = 4,  /* role admin or service only (403) */
};

/* A route: method + path pattern. In the pattern, "{}" stands for one path
 * segment that must be a valid id (^[A-Za-z0-9_.-]{1,64}$), "{*}" for the rest
 * of the path, whatever it is (routes are tried in order: put it last). */
struct sortie_route {
  const char *method;
  const char *pattern;
  sortie_handler *handler;
  int flags;
};

/** Serves one request from `io`: routing (404/405 with Allow), auth, body
 * limits and parsing, the handler, the response and the log line. */
void sortie_http_serve(struct sortie_app *app, const struct sortie_route *routes, size_t nroutes,
                       struct sortie_io *io);

/** Answers the request on `io` with a problem+json error, without routing
 * (a program that cannot serve at all). */
void sortie_http_fail(struct sortie_io *io, int status, const char *slug, const char *detail);

/** Adds a header line to the response (`name: value`). */
void sortie_resp_header(struct sortie_resp *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Sets status and a JSON body (copied). */
void sortie_resp_json(struct sortie_resp *r, int status, const char *json, size_t len);

/** Turns the response into problem+json (RFC 9457) with the title for `slug`.
 * `extra` (taken, may be NULL) is a JSON object whose members are added. */
void sortie_problem(struct sortie_resp *r, int status, const char *slug, json_object *extra,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/** Same, naming the invalid body field (422 by default) in `field`. */
void sortie_problem_field(struct sortie_resp *r, int status, const char *field, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));
/** Sets the base URI of problem types (api.problem_base). */
void sortie_problem_base(const char *base);

/** Gets query parameter `name` percent-decoded into `out` (size n). Returns its
 * length, -1 if absent, or -2 if present but too long for `out`, badly
 * encoded, or holding a NUL (a caller answers 400 for it: a bad value is
 * never taken for a missing one). */
long sortie_query_get(const char *query, const char *name, char *out, size_t n);

/** Weak comparison of an If-None-Match header with an ETag: 1 if it matches. */
int sortie_etag_match(const char *if_none_match, const char *etag);

#endif
