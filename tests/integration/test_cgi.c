/* The one-endpoint programs ($BUILD/cgi-bin/NAME.fcgi) run as plain CGI: a CGI environment and the body on stdin in, "Status:" + headers + body out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "harness.h"
#include "proc.h"

struct cgi_resp {
  int status;          /* from the "Status:" line, 0 if none */
  char *headers;       /* the header block, lines joined by \n */
  const char *body;    /* points into raw */
  size_t body_len;
  json_object *json;
  struct proc_result run;
};

struct cgi_req {
  const char *method;
  const char *uri;          /* path and query */
  const char *token;        /* Bearer token or NULL */
  const char *body;         /* NULL: none */
  size_t body_len;          /* bytes of body sent on stdin (default strlen) */
  const char *content_length; /* CONTENT_LENGTH value (default: strlen(body)) */
  const char *conf;         /* SORTIE_CONF (default: the world's) */
  const char *extra_env;    /* one more "NAME=value" or NULL */
  int keep_stdin_open;
  int timeout_ms;
};

static const char *cgi_path(const char *prog)
{
  static char path[4][600];
  static int n;
  char *p = path[n++ % 4];
  snprintf(p, sizeof path[0], "%s/cgi-bin/%s", getenv("BUILD"), prog);
  return p;
}

/* runs $BUILD/cgi-bin/<prog> as a CGI program and parses its answer */
static void cgi(const char *prog, const struct cgi_req *q, struct cgi_resp *out)
{
  memset(out, 0, sizeof *out);
  char e_method[64], e_uri[1200], e_query[1200], e_script[256], e_auth[4200], e_ct[64],
      e_cl[64], e_conf[700];
  const char *query = strchr(q->uri, '?');
  snprintf(e_method, sizeof e_method, "REQUEST_METHOD=%s", q->method);
  snprintf(e_uri, sizeof e_uri, "REQUEST_URI=%s", q->uri);
  snprintf(e_query, sizeof e_query, "QUERY_STRING=%s", query ? query + 1 : "");
  snprintf(e_script, sizeof e_script, "SCRIPT_NAME=/cgi-bin/%s", prog);
  snprintf(e_conf, sizeof e_conf, "SORTIE_CONF=%s", q->conf ? q->conf : world_conf());
  const char *env[16];
  int n = 0;
  env[n++] = "GATEWAY_INTERFACE=CGI/1.1";
  env[n++] = "SERVER_PROTOCOL=HTTP/1.1";
  env[n++] = "SERVER_SOFTWARE=sortie-test";
  env[n++] = "REMOTE_ADDR=127.0.0.1";
  env[n++] = e_method;
  env[n++] = e_uri;
  env[n++] = e_query;
  env[n++] = e_script;
  env[n++] = e_conf;
  if (q->token) {
    snprintf(e_auth, sizeof e_auth, "HTTP_AUTHORIZATION=Bearer %s", q->token);
    env[n++] = e_auth;
  }
  if (q->body) {
    snprintf(e_ct, sizeof e_ct, "CONTENT_TYPE=application/json");
    if (q->content_length)
      snprintf(e_cl, sizeof e_cl, "CONTENT_LENGTH=%s", q->content_length);
    else
      snprintf(e_cl, sizeof e_cl, "CONTENT_LENGTH=%zu", strlen(q->body));
    env[n++] = e_ct;
    env[n++] = e_cl;
  }
  if (q->extra_env)
    env[n++] = q->extra_env;
  env[n] = NULL;
  const char *argv[] = {cgi_path(prog), NULL};
  struct proc_spec s = {.argv = argv,
                        .env = env,
                        .clear_env = 1,
                        .in = q->body,
                        .in_len = q->body ? (q->body_len ? q->body_len : strlen(q->body)) : 0,
                        .keep_stdin_open = q->keep_stdin_open,
                        .timeout_ms = q->timeout_ms ? q->timeout_ms : 20000};
  cr_assert_eq(proc_run(&s, &out->run), 0, "could not start %s", argv[0]);

  /* "Name: value\r\n" lines, an empty line, the body */
  char *raw = out->run.out;
  char *sep = strstr(raw, "\r\n\r\n");
  size_t hl = sep ? (size_t)(sep - raw) : 0;
  if (sep == NULL && (sep = strstr(raw, "\n\n")) != NULL)
    hl = (size_t)(sep - raw);
  out->headers = strndup(raw, hl);
  if (sep) {
    out->body = sep + (sep[0] == '\r' ? 4 : 2);
    out->body_len = out->run.out_len - (size_t)(out->body - raw);
  } else {
    out->body = "";
  }
  const char *st = strncasecmp(raw, "Status:", 7) == 0 ? raw : strstr(out->headers, "\nStatus:");
  if (st)
    out->status = atoi(st + (st[0] == '\n' ? 8 : 7));
  if (out->body_len)
    out->json = json_tokener_parse(out->body);
}

static void cgi_free(struct cgi_resp *r)
{
  free(r->headers);
  if (r->json)
    json_object_put(r->json);
  proc_result_free(&r->run);
  memset(r, 0, sizeof *r);
}

/* value of a header in the CGI answer, or NULL */
static char *cgi_header(const struct cgi_resp *r, const char *name, char *out, size_t n)
{
  size_t nl = strlen(name);
  for (const char *p = r->headers; p && *p;) {
    const char *eol = strchr(p, '\n');
    size_t l = eol ? (size_t)(eol - p) : strlen(p);
    if (l > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ')
        v++;
      size_t vl = l - (size_t)(v - p);
      while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
        vl--;
      snprintf(out, n, "%.*s", (int)vl, v);
      return out;
    }
    if (!eol)
      break;
    p = eol + 1;
  }
  return NULL;
}

/* the program ended normally, with 0, and said something */
static void ran_cleanly(const struct cgi_resp *r, const char *what)
{
  cr_assert(!r->run.timed_out, "%s: no answer in time (killed); stdout so far: '%s'", what,
            r->run.out);
  cr_assert(r->run.signal == 0, "%s: killed by signal %d; stderr: %s", what, r->run.signal,
            r->run.err);
  cr_assert(r->run.exited && r->run.code == 0, "%s: exit %d; stderr: %s", what, r->run.code,
            r->run.err);
  cr_assert(r->status >= 100, "%s: no Status line in: '%s'", what, r->run.out);
}

static void is_problem(const struct cgi_resp *r, int status, const char *what)
{
  char ct[128] = "";
  cr_assert_eq(r->status, status, "%s: %d %s", what, r->status, r->body);
  cr_assert(cgi_header(r, "Content-Type", ct, sizeof ct) &&
                strncmp(ct, "application/problem+json", 24) == 0,
            "%s: Content-Type '%s'", what, ct);
  cr_assert_not_null(r->json, "%s: body is not JSON: %s", what, r->body);
  cr_assert_eq(jget_int(r->json, "status"), status, "%s: %s", what, r->body);
  cr_assert_not_null(jget_str(r->json, "type"), "%s", what);
  cr_assert_not_null(jget_str(r->json, "title"), "%s", what);
}

static long long fire_count_apache(const char *sid)
{
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s/fire-count", sid);
  struct http_resp r;
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "%s", r.body);
  long long c = jget_int(r.json, "count");
  http_free(&r);
  return c;
}

static char *fire_body(const char *sid)
{
  char *b = malloc(256);
  snprintf(b, 256, "{\"signal_id\":\"%s\",\"timestamp\":%lld}", sid, now_s());
  return b;
}

/* ---- the endpoints ---- */

Test(cgi, health)
{
  struct cgi_resp r;
  cgi("health.fcgi", &(struct cgi_req){.method = "GET", .uri = "/health"}, &r);
  ran_cleanly(&r, "health.fcgi");
  cr_assert_eq(r.status, 200, "%s", r.run.out);
  char ct[128] = "";
  cr_assert(cgi_header(&r, "Content-Type", ct, sizeof ct) && strncmp(ct, "application/json", 16) == 0,
            "Content-Type '%s'", ct);
  cr_assert_not_null(r.json, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "status"), "ok");
  cr_assert_str_eq(jget_str(r.json, "redis"), "ok");
  cr_assert_not_null(jget_str(r.json, "version"));
  char cl[32];
  cr_assert(cgi_header(&r, "Content-Length", cl, sizeof cl) && (size_t)atoi(cl) == r.body_len,
            "Content-Length %s for a body of %zu", cl, r.body_len);
  cgi_free(&r);
}

Test(cgi, fire_through_cgi_is_counted_everywhere)
{
  char sid[96], user[96];
  snprintf(sid, sizeof sid, "%s", uniq("cgi"));
  snprintf(user, sizeof user, "%s", uniq("u"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  char *tok = token_for(user, "user");
  char *body = fire_body(sid);
  struct cgi_resp r;
  cgi("fire.fcgi", &(struct cgi_req){.method = "POST", .uri = "/api/fire", .token = tok, .body = body},
      &r);
  ran_cleanly(&r, "fire.fcgi");
  cr_assert_eq(r.status, 201, "%s", r.run.out);
  cr_assert_eq(jget_int(r.json, "fire_count"), 1);
  cr_assert_str_eq(jget_str(r.json, "signal_id"), sid);
  cr_assert(jget_str(r.json, "trade_id") && strncmp(jget_str(r.json, "trade_id"), "trd_", 4) == 0);
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 1);
  cgi_free(&r);

  /* Apache (the FastCGI pool) sees it */
  cr_assert_eq(fire_count_apache(sid), 1);

  /* and so does fire-count.fcgi, with an ETag that answers If-None-Match */
  char uri[256], etag[64] = "", inm[128];
  snprintf(uri, sizeof uri, "/api/signals/%s/fire-count", sid);
  cgi("fire-count.fcgi", &(struct cgi_req){.method = "GET", .uri = uri}, &r);
  ran_cleanly(&r, "fire-count.fcgi");
  cr_assert_eq(r.status, 200, "%s", r.run.out);
  cr_assert_eq(jget_int(r.json, "count"), 1);
  cr_assert_str_eq(jget_str(r.json, "signal_id"), sid);
  cr_assert_not_null(cgi_header(&r, "ETag", etag, sizeof etag));
  cgi_free(&r);
  snprintf(inm, sizeof inm, "HTTP_IF_NONE_MATCH=%s", etag);
  cgi("fire-count.fcgi", &(struct cgi_req){.method = "GET", .uri = uri, .extra_env = inm}, &r);
  ran_cleanly(&r, "fire-count.fcgi If-None-Match");
  cr_assert_eq(r.status, 304, "%s", r.run.out);
  cr_assert_eq(r.body_len, 0);
  cgi_free(&r);

  /* the same user again: 409, nothing written */
  free(body);
  body = fire_body(sid);
  cgi("fire.fcgi", &(struct cgi_req){.method = "POST", .uri = "/api/fire", .token = tok, .body = body},
      &r);
  ran_cleanly(&r, "fire.fcgi again");
  is_problem(&r, 409, "second fire");
  cgi_free(&r);
  cr_assert_eq(fire_count_apache(sid), 1);

  /* without a token: 401 */
  cgi("fire.fcgi", &(struct cgi_req){.method = "POST", .uri = "/api/fire", .body = body}, &r);
  ran_cleanly(&r, "fire.fcgi without a token");
  is_problem(&r, 401, "no token");
  cgi_free(&r);
  free(body);
  free(tok);
}

Test(cgi, wrong_route_for_a_one_endpoint_program_is_404_or_405)
{
  struct cgi_resp r;
  char allow[64] = "";
  cgi("fire.fcgi", &(struct cgi_req){.method = "GET", .uri = "/api/fire"}, &r);
  ran_cleanly(&r, "GET fire.fcgi");
  is_problem(&r, 405, "GET /api/fire");
  cr_assert(cgi_header(&r, "Allow", allow, sizeof allow) && strstr(allow, "POST"), "Allow '%s'", allow);
  cgi_free(&r);

  cgi("fire.fcgi", &(struct cgi_req){.method = "GET", .uri = "/api/signals/x/fire-count"}, &r);
  ran_cleanly(&r, "fire.fcgi on another route");
  is_problem(&r, 404, "fire.fcgi, fire-count route");
  cgi_free(&r);

  cgi("health.fcgi", &(struct cgi_req){.method = "POST", .uri = "/health", .body = "{}"}, &r);
  ran_cleanly(&r, "POST health.fcgi");
  is_problem(&r, 405, "POST /health");
  cr_assert(cgi_header(&r, "Allow", allow, sizeof allow) && strstr(allow, "GET"), "Allow '%s'", allow);
  cgi_free(&r);

  cgi("fire-count.fcgi", &(struct cgi_req){.method = "GET", .uri = "/health"}, &r);
  ran_cleanly(&r, "fire-count.fcgi on /health");
  is_problem(&r, 404, "fire-count.fcgi, /health");
  cgi_free(&r);
}

/* ---- a broken configuration ---- */

static void expect_500(const char *prog, const struct cgi_req *q, const char *what)
{
  struct cgi_resp r;
  cgi(prog, q, &r);
  ran_cleanly(&r, what);
  is_problem(&r, 500, what);
  cgi_free(&r);
}

Test(cgi, missing_config_answers_500_problem)
{
  const char *no = "/nonexistent/sortie.conf";
  char *tok = token_for(uniq("u"), "user");
  char *body = fire_body(uniq("sig"));
  expect_500("health.fcgi", &(struct cgi_req){.method = "GET", .uri = "/health", .conf = no},
             "health.fcgi, no config");
  expect_500("fire.fcgi",
             &(struct cgi_req){.method = "POST", .uri = "/api/fire", .token = tok, .body = body, .conf = no},
             "fire.fcgi, no config");
  expect_500("fire-count.fcgi",
             &(struct cgi_req){.method = "GET", .uri = "/api/signals/sig_1/fire-count", .conf = no},
             "fire-count.fcgi, no config");
  expect_500("fire-count.fcgi",
             &(struct cgi_req){.method = "GET", .uri = "/api/signals/sig_1/fire-count?x=1", .conf = no},
             "fire-count.fcgi with a query, no config");
  expect_500("fire.fcgi", &(struct cgi_req){.method = "DELETE", .uri = "/api/fire", .conf = no},
             "DELETE fire.fcgi, no config");
  free(body);
  free(tok);
}

/* The same request with its path percent-encoded ('_' as %5F: the same
 * resource to any HTTP client) must get the same 500 from a program that has
 * no configuration, not a 404 that says the signal does not exist. */
Test(cgi, missing_config_answers_500_for_a_percent_encoded_path)
{
  expect_500("fire-count.fcgi",
             &(struct cgi_req){.method = "GET", .uri = "/api/signals/sig%5F1/fire-count",
                               .conf = "/nonexistent/sortie.conf"},
             "fire-count.fcgi, encoded path, no config");
}

Test(cgi, unreadable_or_invalid_config_answers_500_problem)
{
  char bad[700], nosecret[700];
  snprintf(bad, sizeof bad, "%s/cgi-bad-%d.conf", world_run(), (int)getpid());
  snprintf(nosecret, sizeof nosecret, "%s/cgi-nosecret-%d.conf", world_run(), (int)getpid());
  FILE *f = fopen(bad, "w");
  cr_assert_not_null(f);
  fprintf(f, "redis.port = banana\n");
  fclose(f);
  f = fopen(nosecret, "w");
  cr_assert_not_null(f);
  fprintf(f, "redis.port = %d\njwt.secret_file = /nonexistent/jwt.secret\n", world_redis_port());
  fclose(f);
  expect_500("health.fcgi", &(struct cgi_req){.method = "GET", .uri = "/health", .conf = bad},
             "health.fcgi, invalid config");
  expect_500("fire-count.fcgi",
             &(struct cgi_req){.method = "GET", .uri = "/api/signals/x/fire-count", .conf = nosecret},
             "fire-count.fcgi, missing secret");
  unlink(bad);
  unlink(nosecret);
}

/* ---- the body: CONTENT_LENGTH bytes, no more (RFC 3875, 4.2) ---- */

Test(cgi, body_is_read_up_to_content_length_only)
{
  char sid[96];
  snprintf(sid, sizeof sid, "%s", uniq("cl"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  char *tok = token_for(uniq("u"), "user");
  char *body = fire_body(sid), len[32], padded[512];
  snprintf(len, sizeof len, "%zu", strlen(body));
  /* a server may leave more bytes on stdin than CONTENT_LENGTH says */
  snprintf(padded, sizeof padded, "%sGARBAGE-AFTER-THE-BODY", body);
  struct cgi_resp r;
  cgi("fire.fcgi",
      &(struct cgi_req){.method = "POST", .uri = "/api/fire", .token = tok, .body = padded,
                        .content_length = len},
      &r);
  ran_cleanly(&r, "fire.fcgi, bytes after CONTENT_LENGTH");
  cr_assert_eq(r.status, 201, "CONTENT_LENGTH=%s, %zu bytes on stdin: %s", len, strlen(padded),
               r.run.out);
  cgi_free(&r);
  free(body);
  free(tok);
}

Test(cgi, answers_without_waiting_for_the_end_of_stdin)
{
  char sid[96];
  snprintf(sid, sizeof sid, "%s", uniq("eof"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  char *tok = token_for(uniq("u"), "user");
  char *body = fire_body(sid);
  struct cgi_resp r;
  /* the whole body is there, but stdin stays open (as with a server that
   * hands the script the connection) */
  cgi("fire.fcgi",
      &(struct cgi_req){.method = "POST", .uri = "/api/fire", .token = tok, .body = body,
                        .keep_stdin_open = 1, .timeout_ms = 5000},
      &r);
  ran_cleanly(&r, "fire.fcgi with stdin left open");
  cr_assert_eq(r.status, 201, "%s", r.run.out);
  cgi_free(&r);
  free(body);
  free(tok);
}
