/* Request serving shared by every FastCGI/CGI program: routing, auth, body
 * limits, problem+json, the response and one log line per request. */
#include "http.h"
#include "json.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char problem_base[256] = "/problems/";

void sortie_problem_base(const char *base)
{
  snprintf(problem_base, sizeof problem_base, "%s", base);
}

static const struct {
  const char *slug;
  const char *title;
} titles[] = {
    {"malformed", "Malformed request"},
    {"unauthorized", "Authentication required"},
    {"forbidden", "Not allowed"},
    {"not-found", "Not found"},
    {"method-not-allowed", "Method not allowed"},
    {"duplicate-fire", "Already fired"},
    {"duplicate-signal", "Signal already exists"},
    {"already-closed", "Trade already closed"},
    {"signal-not-active", "Signal expired or closed"},
    {"body-too-large", "Body too large"},
    {"unsupported-media-type", "Body must be JSON"},
    {"invalid-field", "Invalid field"},
    {"idempotency-key-reused", "Idempotency-Key reused"},
    {"rate-limited", "Too many requests"},
    {"redis-unavailable", "Storage unavailable"},
    {"outcome-unknown", "Outcome unknown"},
    {"internal", "Internal error"},
};

static const char *title_for(const char *slug)
{
  for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++)
    if (strcmp(titles[i].slug, slug) == 0)
      return titles[i].title;
  return "Error";
}

static const char *reason(int status)
{
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Status";
  }
}

void sortie_resp_header(struct sortie_resp *r, const char *name, const char *fmt, ...)
{
  sortie_buf_printf(&r->headers, "%s: ", name);
  va_list ap;
  va_start(ap, fmt);
  sortie_buf_vprintf(&r->headers, fmt, ap);
  va_end(ap);
  sortie_buf_puts(&r->headers, "\r\n");
}

void sortie_resp_json(struct sortie_resp *r, int status, const char *json, size_t len)
{
  r->status = status;
  r->content_type = "application/json";
  sortie_buf_reset(&r->body);
  sortie_buf_append(&r->body, json, len);
}

static void problem_v(struct sortie_resp *r, int status, const char *slug, json_object *extra,
                      const char *fmt, va_list ap)
{
  char detail[1024];
  vsnprintf(detail, sizeof detail, fmt, ap);
  json_object *o = json_object_new_object();
  char type[512];
  snprintf(type, sizeof type, "%s%s", problem_base, slug);
  json_object_object_add(o, "type", json_object_new_string(type));
  json_object_object_add(o, "title", json_object_new_string(title_for(slug)));
  json_object_object_add(o, "status", json_object_new_int(status));
  json_object_object_add(o, "detail", json_object_new_string(detail));
  if (extra) {
    json_object_object_foreach(extra, k, v)
    {
      if (strcmp(k, "type") && strcmp(k, "title") && strcmp(k, "status") && strcmp(k, "detail"))
        json_object_object_add(o, k, json_object_get(v));
    }
    json_object_put(extra);
  }
  size_t len;
  const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  sortie_resp_json(r, status, s, len);
  r->content_type = "application/problem+json";
  json_object_put(o);
}

void sortie_problem(struct sortie_resp *r, int status, const char *slug, json_object *extra,
                    const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  problem_v(r, status, slug, extra, fmt, ap);
  va_end(ap);
}

void sortie_problem_field(struct sortie_resp *r, int status, const char *field, const char *fmt,
                          ...)
{
  json_object *x = json_object_new_object();
  json_object_object_add(x, "field", json_object_new_string(field));
  va_list ap;
  va_start(ap, fmt);
  problem_v(r, status, status == 422 ? "invalid-field" : "malformed", x, fmt, ap);
  va_end(ap);
}

int sortie_etag_match(const char *inm, const char *etag)
{
  if (inm == NULL || etag == NULL)
    return 0;
  if (strcmp(inm, "*") == 0)
    return 1;
  size_t el = strlen(etag);
  const char *p = inm;
  while (*p) {
    while (*p == ' ' || *p == ',')
      p++;
    if (strncmp(p, "W/", 2) == 0)
      p += 2;
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    while (n && p[n - 1] == ' ')
      n--;
    const char *q = etag;
    size_t ql = el;
    if (strncmp(q, "W/", 2) == 0) {
      q += 2;
      ql -= 2;
    }
    if (n == ql && memcmp(p, q, n) == 0)
      return 1;
    if (e == NULL)
      break;
    p = e + 1;
  }
  return 0;
}

/* Percent-decodes `n` bytes into out (size outsz, NUL-terminated). '+' is a space
 * only in query strings. -1 on bad escape, NUL byte or overflow. */
static long pct_decode(const char *s, size_t n, char *out, size_t outsz, int plus)
{
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= n)
        return -1;
      int h = sortie_unhex(s[i + 1]), l = sortie_unhex(s[i + 2]);
      if (h < 0 || l < 0)
        return -1;
      c = (char)(h * 16 + l);
      i += 2;
    } else if (plus && c == '+') {
      c = ' ';
    }
    if (c == '\0' || o + 1 >= outsz)
      return -1;
    out[o++] = c;
  }
  out[o] = '\0';
  return (long)o;
}

long sortie_query_get(const char *query, const char *name, char *out, size_t n)
{
  size_t nl = strlen(name);
  const char *p = query ? query : "";
  while (*p) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    if (len > nl && p[nl] == '=' && memcmp(p, name, nl) == 0) {
      long r = pct_decode(p + nl + 1, len - nl - 1, out, n, 1);
      return r < 0 ? -2 : r;
    }
    if (len == nl && memcmp(p, name, nl) == 0) {
      out[0] = '\0';
      return 0;
    }
    p += len;
    if (*p == '&')
      p++;
  }
  return -1;
}

/* Matches `path` against a route pattern; fills the {} params. */
static int match(const char *pattern, const char *path, struct sortie_req *req)
{
  int np = 0;
  const char *p = pattern, *s = path;
  while (*p) {
    if (p[0] == '{' && p[1] == '*' && p[2] == '}') {
      /* the rest of the path, whatever it is (not checked) */
      size_t n = strlen(s);
      if (n == 0 || np >= SORTIE_MAX_PARAMS)
        return 0;
      if (n > SORTIE_ID_MAX)
        n = SORTIE_ID_MAX; /* kept for the page, shortened */
      memcpy(req->param[np], s, n);
      req->param[np][n] = '\0';
      np++;
      s += strlen(s);
      p += 3;
      continue;
    }
    if (p[0] == '{' && p[1] == '}') {
      const char *end = strchr(s, '/');
      size_t n = end ? (size_t)(end - s) : strlen(s);
      if (!sortie_valid_id(s, n) || np >= SORTIE_MAX_PARAMS)
        return 0;
      memcpy(req->param[np], s, n);
      req->param[np][n] = '\0';
      np++;
      s += n;
      p += 2;
      continue;
    }
    if (*p != *s)
      return 0;
    p++;
    s++;
  }
  if (*s != '\0')
    return 0;
  req->nparam = np;
  return 1;
}

static const char *param(struct sortie_io *io, const char *name)
{
  return io->param(io->ctx, name);
}

static int content_type_is_json(const char *ct)
{
  if (ct == NULL)
    return 0;
  while (*ct == ' ')
    ct++;
  size_t n = strcspn(ct, "; ");
  return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
         (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0 && strncasecmp(ct, "application/", 12) == 0);
}

/* Reads the body, at most `max` bytes. Returns 0, 1 if it is larger, -1 on I/O
 * error. */
static int read_body(struct sortie_io *io, size_t max, struct sortie_buf *b)
{
  for (;;) {
    char *dst = sortie_buf_reserve(b, 4096);
    long n = io->read(io->ctx, dst, 4096);
    if (n < 0)
      return -1;
    if (n == 0)
      return 0;
    b->len += (size_t)n;
    b->base[b->len] = '\0';
    if (b->len > max)
      return 1;
  }
}

static int authenticate(struct sortie_app *app, struct sortie_req *req, struct sortie_resp *resp)
{
  char token[SORTIE_TOKEN_MAX + 1];
  const char *src, *why;
  if (sortie_auth_find_token(param(req->io, "HTTP_AUTHORIZATION"), param(req->io, "HTTP_COOKIE"),
                             NULL, 0, token, sizeof token, &src) < 0) {
    int in_query = sortie_query_get(req->query, "token", token, sizeof token) >= 0;
    sortie_problem(resp, 401, "unauthorized", NULL, "%s",
                   in_query ? "a token in the query string is accepted only by the push daemon; "
                              "send it as 'Authorization: Bearer <token>'"
                            : "send a token as 'Authorization: Bearer <token>' or the "
                              "sortie_token cookie");
    sortie_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"sortie\"");
    return -1;
  }
  if (sortie_auth_verify(&app->cfg, token, (long)time(NULL), &req->who, &why) < 0) {
    sortie_problem(resp, 401, "unauthorized", NULL, "%s", why);
    sortie_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"sortie\", error=\"invalid_token\"");
    return -1;
  }
  req->authed = 1;
  resp->user = req->who.sub;
  return 0;
}

static void dispatch(struct sortie_app *app, const struct sortie_route *routes, size_t n,
                     struct sortie_req *req, struct sortie_resp *resp)
{
  const struct sortie_route *rt = NULL;
  char allow[64] = "";
  for (size_t i = 0; i < n; i++) {
    if (!match(routes[i].pattern, req->path, req))
      continue;
    if (strcmp(routes[i].method, req->method) == 0) {
      rt = &routes[i];
      break;
    }
    if (strstr(allow, routes[i].method) == NULL) {
      size_t l = strlen(allow);
      snprintf(allow + l, sizeof allow - l, "%s%s%s", l ? ", " : "", routes[i].method,
               strcmp(routes[i].method, "GET") == 0 ? ", HEAD" : "");
    }
  }
  if (rt == NULL) {
    if (allow[0]) {
      sortie_problem(resp, 405, "method-not-allowed", NULL, "%s is not allowed on %s; use %s",
                     req->method, req->path, allow);
      sortie_resp_header(resp, "Allow", "%s", allow);
    } else {
      sortie_problem(resp, 404, "not-found", NULL, "no such resource: %s", req->path);
    }
    return;
  }
  if ((rt->flags & SORTIE_ROUTE_AUTH) && authenticate(app, req, resp) < 0)
    return;
  if ((rt->flags & SORTIE_ROUTE_PRIV) && req->who.role == SORTIE_ROLE_USER) {
    sortie_problem(resp, 403, "forbidden", NULL, "this needs a service or admin token");
    return;
  }
  struct sortie_buf body = {0};
  if (rt->flags & SORTIE_ROUTE_JSON) {
    size_t max = (size_t)app->cfg.api_body_max;
    const char *cl = param(req->io, "CONTENT_LENGTH");
    if (!content_type_is_json(req->content_type)) {
      sortie_problem(resp, 415, "unsupported-media-type", NULL,
                     "send the body as Content-Type: application/json");
      return;
    }
    if (cl && strtoull(cl, NULL, 10) > max) {
      json_object *x = json_object_new_object();
      json_object_object_add(x, "max_bytes", json_object_new_int64((int64_t)max));
      sortie_problem(resp, 413, "body-too-large", x, "the body is over %zu bytes", max);
      return;
    }
    int rc = read_body(req->io, max, &body);
    if (rc != 0) {
      if (rc > 0) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "max_bytes", json_object_new_int64((int64_t)max));
        sortie_problem(resp, 413, "body-too-large", x, "the body is over %zu bytes", max);
      } else {
        sortie_problem(resp, 400, "malformed", NULL, "could not read the body");
      }
      sortie_buf_free(&body);
      return;
    }
    const char *why;
    req->json = sortie_json_parse(body.base ? body.base : "", body.len, &why);
    sortie_buf_free(&body);
    if (req->json == NULL) {
      sortie_problem(resp, 400, "malformed", NULL, "%s", why);
      return;
    }
    if (!json_object_is_type(req->json, json_type_object)) {
      sortie_problem(resp, 400, "malformed", NULL, "the body must be a JSON object");
      return;
    }
  }
  rt->handler(app, req, resp);
}

static void send_response(struct sortie_io *io, struct sortie_req *req, struct sortie_resp *resp)
{
  struct sortie_buf h = {0};
  int nobody = req->head || resp->status == 304 || resp->status == 204;
  sortie_buf_printf(&h, "Status: %d %s\r\n", resp->status, reason(resp->status));
  if (resp->status != 304 && resp->status != 204)
    sortie_buf_printf(&h, "Content-Type: %s%s\r\nContent-Length: %zu\r\n",
                      resp->content_type ? resp->content_type : "application/json",
                      resp->content_type && strncmp(resp->content_type, "text/", 5) == 0
                          ? "; charset=utf-8" : "",
                      resp->body.len);
  if (resp->headers.base == NULL || strstr(resp->headers.base, "Cache-Control:") == NULL)
    sortie_buf_puts(&h, "Cache-Control: no-store\r\n");
  sortie_buf_puts(&h, "X-Content-Type-Options: nosniff\r\n");
  if (resp->headers.len)
    sortie_buf_append(&h, resp->headers.base, resp->headers.len);
  sortie_buf_puts(&h, "\r\n");
  if (!nobody && resp->body.len)
    sortie_buf_append(&h, resp->body.base, resp->body.len);
  io->write(io->ctx, h.base, h.len);
  sortie_buf_free(&h);
}

void sortie_http_fail(struct sortie_io *io, int status, const char *slug, const char *detail)
{
  struct sortie_req req;
  struct sortie_resp resp;
  memset(&req, 0, sizeof req);
  memset(&resp, 0, sizeof resp);
  const char *m = param(io, "REQUEST_METHOD");
  req.head = m && strcmp(m, "HEAD") == 0;
  sortie_problem(&resp, status, slug, NULL, "%s", detail);
  send_response(io, &req, &resp);
  sortie_buf_free(&resp.headers);
  sortie_buf_free(&resp.body);
}

void sortie_http_serve(struct sortie_app *app, const struct sortie_route *routes, size_t nroutes,
                       struct sortie_io *io)
{
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct sortie_req req;
  struct sortie_resp resp;
  memset(&req, 0, sizeof req);
  memset(&resp, 0, sizeof resp);
  resp.status = 200;
  resp.user = "-";
  req.io = io;

  const char *method = param(io, "REQUEST_METHOD");
  req.method = method ? method : "GET";
  if (strcmp(req.method, "HEAD") == 0) {
    req.method = "GET";
    req.head = 1;
  }
  req.query = param(io, "QUERY_STRING");
  if (req.query == NULL)
    req.query = "";
  req.content_type = param(io, "CONTENT_TYPE");
  req.if_none_match = param(io, "HTTP_IF_NONE_MATCH");
  req.idempotency_key = param(io, "HTTP_IDEMPOTENCY_KEY");

  /* REQUEST_URI is the path the client asked for, whichever way Apache reached
   * us (mod_proxy_fcgi, mod_fcgid + rewrite, plain CGI). */
  const char *uri = param(io, "REQUEST_URI");
  char raw[1024];
  if (uri == NULL) {
    const char *sn = param(io, "SCRIPT_NAME"), *pi = param(io, "PATH_INFO");
    snprintf(raw, sizeof raw, "%s%s", sn ? sn : "", pi ? pi : "");
  } else {
    size_t n = strcspn(uri, "?");
    if (n >= sizeof raw)
      n = sizeof raw - 1;
    memcpy(raw, uri, n);
    raw[n] = '\0';
  }
  if (pct_decode(raw, strlen(raw), req.path, sizeof req.path, 0) < 0)
    sortie_problem(&resp, 400, "malformed", NULL, "the request path is not valid");
  else
    dispatch(app, routes, nroutes, &req, &resp);

  send_response(io, &req, &resp);

  clock_gettime(CLOCK_MONOTONIC, &t1);
  long us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000L;
  char q[256] = "";
  if (resp.status >= 400 || sortie_log_enabled(SORTIE_LOG_DEBUG))
    sortie_log_redact_query(req.query, q, sizeof q);
  /* Apache logs every request already; here a success is a debug line, and a
   * refusal or failure an info (4xx) or warn (5xx) line with its reason */
  enum sortie_log_level lvl = resp.status >= 500   ? SORTIE_LOG_WARN
                              : resp.status >= 400 ? SORTIE_LOG_INFO
                                                   : SORTIE_LOG_DEBUG;
  if (sortie_log_enabled(lvl))
    sortie_log(lvl, "http", "%s %s%s%s %d %ldus user=%s", method ? method : "-", req.path,
               q[0] ? "?" : "", q, resp.status, us, resp.user);
  if (req.json)
    json_object_put(req.json);
  sortie_buf_free(&resp.headers);
  sortie_buf_free(&resp.body);
}
