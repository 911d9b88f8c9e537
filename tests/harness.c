/* The integration-test world and its helpers (see harness.h). */
#include "harness.h"

#include <criterion/hooks.h>

#include "auth.h"
#include "buf.h"
#include "cfg.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jwt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* the program's extra configuration, if it set one with SORTIE_WORLD_CONF */
__attribute__((weak)) const char *sortie_world_extra_conf = NULL;
/* and its hook, if it set one with SORTIE_WORLD_PREPARE */
__attribute__((weak)) const char *(*sortie_world_prepare)(void) = NULL;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
  (void)set;
  world_start(sortie_world_extra_conf);
}

ReportHook(POST_ALL)(struct criterion_global_stats *st)
{
  (void)st;
  world_stop();
}

int world_free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
    perror("free_port");
    exit(2);
  }
  int p = ntohs(a.sin_port);
  close(fd);
  return p;
}

static const char *repo_dir(void)
{
  const char *r = getenv("SORTIE_REPO");
  return r ? r : ".";
}

/* runs tools/stack.sh VERB with the world's environment */
static int stack(const char *verb)
{
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "SORTIE_QUIET=1 SORTIE_NO_DEMO=1 WORKERS=%s sh %s/tools/stack.sh %s",
           getenv("WORKERS") ? getenv("WORKERS") : "4", repo_dir(), verb);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void world_start(const char *extra_conf)
{
  char tmpl[512];
  const char *root = getenv("SORTIE_TEST_TMP");
  snprintf(tmpl, sizeof tmpl, "%s/world-XXXXXX", root && *root ? root : "/tmp");
  if (mkdtemp(tmpl) == NULL) {
    perror("mkdtemp");
    exit(2);
  }
  chmod(tmpl, 0755);
  char port[16], push[16], redis[16], base[64], pbase[64], conf[600];
  int p1 = world_free_port(), p2, p3;
  do p2 = world_free_port(); while (p2 == p1);
  do p3 = world_free_port(); while (p3 == p1 || p3 == p2);
  snprintf(port, sizeof port, "%d", p1);
  snprintf(push, sizeof push, "%d", p2);
  snprintf(redis, sizeof redis, "%d", p3);
  snprintf(base, sizeof base, "http://127.0.0.1:%d", p1);
  snprintf(pbase, sizeof pbase, "http://127.0.0.1:%d", p2);
  snprintf(conf, sizeof conf, "%s/sortie.conf", tmpl);
  setenv("SORTIE_RUN", tmpl, 1);
  setenv("PORT", port, 1);
  setenv("PUSH_PORT", push, 1);
  setenv("REDIS_PORT", redis, 1);
  setenv("SORTIE_TEST_BASE", base, 1);
  setenv("SORTIE_TEST_PUSH_BASE", pbase, 1);
  setenv("SORTIE_CONF", conf, 1);
  if (extra_conf)
    setenv("SORTIE_EXTRA_CONF", extra_conf, 1);
  if (sortie_world_prepare) {
    const char *more = sortie_world_prepare();
    if (more) {
      char *all = NULL;
      if (asprintf(&all, "%s\n%s", extra_conf ? extra_conf : "", more) < 0) {
        perror("asprintf");
        exit(2);
      }
      setenv("SORTIE_EXTRA_CONF", all, 1);
      free(all);
    }
  }
  if (stack("start") != 0) {
    fprintf(stderr, "harness: the stack did not start; logs in %s/log\n", tmpl);
    stack("stop");
    exit(2);
  }
}

void world_stop(void)
{
  stack("stop");
  /* under sanitizers, a report in a server's log is a failure the tests may
   * not see (the server restarts): keep it for tests/run.sh to count */
  if (getenv("SORTIE_SAN") && getenv("SORTIE_TEST_TMP")) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "if grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' %s/log/*.log "
             ">/dev/null 2>&1; then mkdir -p %s/san-reports && cp -r %s/log %s/san-reports/$(basename %s); fi",
             world_run(), getenv("SORTIE_TEST_TMP"), world_run(), getenv("SORTIE_TEST_TMP"),
             world_run());
    if (system(cmd) != 0)
      fprintf(stderr, "harness: could not check the sanitizer logs\n");
  }
  if (!getenv("SORTIE_KEEP"))
  {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", world_run());
    if (system(cmd) != 0)
      fprintf(stderr, "harness: could not remove %s\n", world_run());
  }
}

const char *world_base(void) { return getenv("SORTIE_TEST_BASE"); }
const char *world_push_base(void) { return getenv("SORTIE_TEST_PUSH_BASE"); }
const char *world_run(void) { return getenv("SORTIE_RUN"); }
const char *world_conf(void) { return getenv("SORTIE_CONF"); }
int world_redis_port(void) { return atoi(getenv("REDIS_PORT")); }

int world_ctl(const char *what)
{
  char cmd[1024];
  int rp = world_redis_port();
  if (strcmp(what, "redis-stop") == 0) {
    /* SHUTDOWN keeps the AOF: what was acknowledged stays */
    snprintf(cmd, sizeof cmd, "redis-cli -p %d shutdown >/dev/null 2>&1; "
             "while redis-cli -p %d ping >/dev/null 2>&1; do sleep 0.05; done", rp, rp);
  } else if (strcmp(what, "redis-start") == 0) {
    snprintf(cmd, sizeof cmd,
             "redis-server %s/conf/redis.conf --port %d --dir %s/redis --pidfile %s/redis/redis.pid "
             "--logfile %s/log/redis.log --daemonize yes >/dev/null && "
             "for i in $(seq 100); do redis-cli -p %d ping 2>/dev/null | grep -q PONG && break; "
             "sleep 0.1; done",
             repo_dir(), rp, world_run(), world_run(), world_run(), rp);
  } else {
    return stack(what);
  }
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- HTTP ---- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
  sortie_buf_append(ud, p, sz * n);
  return sz * n;
}

int http(const char *method, const char *path, const char *token, const char *body,
         const char *content_type, const char *extra, struct http_resp *out)
{
  memset(out, 0, sizeof *out);
  CURL *c = curl_easy_init();
  if (c == NULL)
    return -1;
  char url[4096], auth[5000], ct[256];
  if (strncmp(path, "http", 4) == 0)
    snprintf(url, sizeof url, "%s", path);
  else
    snprintf(url, sizeof url, "%s%s", world_base(), path);
  struct curl_slist *h = NULL;
  if (token) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    h = curl_slist_append(h, auth);
  }
  if (body || content_type) {
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type ? content_type : "application/json");
    h = curl_slist_append(h, ct);
  }
  if (extra)
    h = curl_slist_append(h, extra);
  h = curl_slist_append(h, "Expect:");
  struct sortie_buf b = {0}, hd = {0};
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &hd);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  out->body = sortie_buf_steal(&b, &out->len);
  out->headers = sortie_buf_steal(&hd, NULL);
  if (out->len)
    out->json = json_tokener_parse(out->body);
  return rc == CURLE_OK ? 0 : -1;
}

void http_free(struct http_resp *r)
{
  free(r->body);
  free(r->headers);
  if (r->json)
    json_object_put(r->json);
  memset(r, 0, sizeof *r);
}

char *http_header(const struct http_resp *r, const char *name, char *out, size_t n)
{
  size_t nl = strlen(name);
  for (const char *p = r->headers; p && *p;) {
    const char *eol = strstr(p, "\r\n");
    size_t l = eol ? (size_t)(eol - p) : strlen(p);
    if (l > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ')
        v++;
      size_t vl = l - (size_t)(v - p);
      if (vl >= n)
        vl = n - 1;
      memcpy(out, v, vl);
      out[vl] = '\0';
      return out;
    }
    if (!eol)
      break;
    p = eol + 2;
  }
  return NULL;
}

/* de-chunks a chunked body in place; returns the new length */
static size_t dechunk(char *b, size_t n)
{
  size_t in = 0, out = 0;
  while (in < n) {
    char *end;
    unsigned long sz = strtoul(b + in, &end, 16);
    char *eol = memmem(b + in, n - in, "\r\n", 2);
    if (eol == NULL || end == b + in)
      break;
    in = (size_t)(eol - b) + 2;
    if (sz == 0 || sz > n - in)
      break;
    memmove(b + out, b + in, sz);
    out += sz;
    in += sz + 2;
  }
  b[out] = '\0';
  return out;
}

int http_raw(const char *request, size_t len, struct http_resp *out)
{
  memset(out, 0, sizeof *out);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  const char *port = strrchr(world_base(), ':');
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                          .sin_port = htons((unsigned short)atoi(port + 1))};
  struct timeval tv = {.tv_sec = 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  /* the server may answer (413) and stop reading early: stop sending then */
  for (size_t off = 0; off < len;) {
    ssize_t w = send(fd, request + off, len - off, MSG_NOSIGNAL);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  struct sortie_buf b = {0};
  for (;;) {
    char *dst = sortie_buf_reserve(&b, 8192);
    ssize_t r = recv(fd, dst, 8192, 0);
    if (r <= 0)
      break;
    b.len += (size_t)r;
    b.base[b.len] = '\0';
  }
  close(fd);
  size_t n;
  char *all = sortie_buf_steal(&b, &n);
  if (all == NULL || n == 0) {
    free(all);
    return -1;
  }
  char *sep = strstr(all, "\r\n\r\n");
  if (strncmp(all, "HTTP/", 5) != 0 || sep == NULL) {
    /* no status line: an HTTP/0.9 answer, all body */
    out->headers = strdup("");
    out->body = all;
    out->len = n;
    out->json = json_tokener_parse(all);
    return 0;
  }
  size_t hl = (size_t)(sep - all) + 4;
  out->headers = strndup(all, hl);
  sscanf(all, "HTTP/%*s %ld", &out->status);
  out->len = n - hl;
  out->body = malloc(out->len + 1);
  memcpy(out->body, all + hl, out->len);
  out->body[out->len] = '\0';
  free(all);
  char te[64];
  if (http_header(out, "Transfer-Encoding", te, sizeof te) && strcasecmp(te, "chunked") == 0)
    out->len = dechunk(out->body, out->len);
  if (out->len)
    out->json = json_tokener_parse(out->body);
  return 0;
}

static json_object *jpath(json_object *o, const char *path)
{
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  char *save = NULL;
  for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, k, &v))
      return NULL;
    o = v;
  }
  return o;
}

const char *jget_str(json_object *o, const char *path)
{
  json_object *v = o ? jpath(o, path) : NULL;
  return v ? json_object_get_string(v) : NULL;
}

long long jget_int(json_object *o, const char *path)
{
  json_object *v = o ? jpath(o, path) : NULL;
  return v ? (long long)json_object_get_int64(v) : -1;
}

/* ---- tokens, ids, Redis ---- */

static struct sortie_cfg *cfg(void)
{
  static struct sortie_cfg c;
  static int loaded;
  if (!loaded) {
    char err[512];
    if (sortie_cfg_load(&c, world_conf(), err, sizeof err) < 0 ||
        sortie_cfg_load_secrets(&c, err, sizeof err) < 0) {
      fprintf(stderr, "harness: %s\n", err);
      exit(2);
    }
    loaded = 1;
  }
  return &c;
}

char *token_custom(const char *sub, const char *role, long iat, long exp)
{
  struct sortie_cfg *c = cfg();
  return sortie_auth_mint(c->jwt_alg, c->jwt_key, c->jwt_key_len, sub, role, iat, exp);
}

char *token_for(const char *sub, const char *role)
{
  long now = (long)now_s();
  return token_custom(sub, role, now, now + 3600);
}

char *token_claims(const char *claims_json)
{
  struct sortie_cfg *c = cfg();
  jwt_t *jwt = NULL;
  char *tok = NULL;
  if (jwt_new(&jwt) != 0)
    return NULL;
  if (jwt_add_grants_json(jwt, claims_json) == 0 &&
      jwt_set_alg(jwt, JWT_ALG_HS256, c->jwt_key, (int)c->jwt_key_len) == 0)
    tok = jwt_encode_str(jwt);
  jwt_free(jwt);
  return tok;
}

const char *uniq(const char *prefix)
{
  static char ring[16][96];
  static int n;
  char *o = ring[n % 16];
  snprintf(o, sizeof ring[0], "%s_%d_%d", prefix, (int)getpid(), n);
  n++;
  return o;
}

static struct sortie_redis *redis(void)
{
  static struct sortie_redis *r;
  if (r == NULL)
    r = sortie_redis_new(cfg());
  return r;
}

sortie_reply *rcmd(int argc, const char **argv)
{
  return sortie_redis_cmd(redis(), SORTIE_REDIS_IDEMPOTENT, argc, argv, NULL);
}

char *rstr(int argc, const char **argv)
{
  sortie_reply *r = rcmd(argc, argv);
  char *s = NULL;
  size_t n;
  const char *p = r ? sortie_reply_str(r, &n) : NULL;
  if (p && sortie_reply_type(r) == SORTIE_REPLY_STRING)
    s = strndup(p, n);
  sortie_reply_free(r);
  return s;
}

long long rinteger(int argc, const char **argv)
{
  sortie_reply *r = rcmd(argc, argv);
  long long v = r && sortie_reply_type(r) == SORTIE_REPLY_INTEGER ? sortie_reply_int(r) : -1;
  sortie_reply_free(r);
  return v;
}

json_object *rstream(const char *channel)
{
  char key[512];
  snprintf(key, sizeof key, "%.200sh:%.300s", kp(), channel);
  const char *av[] = {"XRANGE", key, "-", "+"};
  sortie_reply *r = rcmd(4, av);
  json_object *arr = json_object_new_array();
  for (size_t i = 0; r && i < sortie_reply_len(r); i++) {
    const sortie_reply *e = sortie_reply_at(r, i);
    if (e == NULL || sortie_reply_len(e) < 2)
      continue;
    const sortie_reply *f = sortie_reply_at(e, 1);
    size_t n;
    const char *id = sortie_reply_str(sortie_reply_at(e, 0), &n);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string_len(id ? id : "", id ? (int)n : 0));
    for (size_t j = 0; j + 1 < sortie_reply_len(f); j += 2) {
      size_t kl, vl;
      const char *k = sortie_reply_str(sortie_reply_at(f, j), &kl);
      const char *v = sortie_reply_str(sortie_reply_at(f, j + 1), &vl);
      if (k == NULL || v == NULL)
        continue;
      if (kl == 1 && k[0] == 't')
        json_object_object_add(o, "type", json_object_new_string_len(v, (int)vl));
      else if (kl == 1 && k[0] == 'd')
        json_object_object_add(o, "data", json_tokener_parse(v));
    }
    json_object_array_add(arr, o);
  }
  sortie_reply_free(r);
  return arr;
}

const char *kp(void)
{
  return cfg()->redis_prefix;
}

long make_signal(const char *id, long ttl)
{
  char *svc = token_for("test-feed", "service");
  char body[1024];
  snprintf(body, sizeof body,
           "{\"id\":\"%s\",\"symbol\":\"AAPL\",\"direction\":\"BUY\",\"entry\":\"145.75\","
           "\"stop_loss\":\"140.00\",\"take_profit\":\"160.00\",\"ttl\":%ld,"
           "\"title\":\"test signal\"}",
           id, ttl);
  struct http_resp r;
  http("POST", "/api/signals", svc, body, NULL, NULL, &r);
  long st = r.status;
  http_free(&r);
  free(svc);
  return st;
}

long fire(const char *user, const char *signal_id, const char *idem_key, struct http_resp *out)
{
  char *tok = token_for(user, "user");
  char body[512], idem[300];
  snprintf(body, sizeof body, "{\"signal_id\":\"%s\",\"timestamp\":%lld}", signal_id, now_s());
  if (idem_key)
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", idem_key);
  struct http_resp r;
  http("POST", "/api/fire", tok, body, NULL, idem_key ? idem : NULL, &r);
  free(tok);
  long st = r.status;
  if (out)
    *out = r;
  else
    http_free(&r);
  return st;
}

long long now_ms(void)
{
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

long long now_s(void)
{
  return now_ms() / 1000;
}

long world_pid(const char *name)
{
  char path[700];
  snprintf(path, sizeof path, "%s/%s", world_run(), name);
  FILE *f = fopen(path, "r");
  long pid = 0;
  if (f) {
    if (fscanf(f, "%ld", &pid) != 1 || pid < 0)
      pid = 0;
    fclose(f);
  }
  return pid;
}

char *file_text(const char *path)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  FILE *f = fopen(path, "r");
  if (f) {
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
      fwrite(chunk, 1, n, m);
    fclose(f);
  }
  fclose(m);
  return buf;
}

int file_has(const char *path, const char *needle)
{
  char *t = file_text(path);
  int hit = strstr(t, needle) != NULL;
  free(t);
  return hit;
}

static int stalled;
static pid_t stall_guard;

void world_stall(int pid, int max_s)
{
  pid_t parent = getpid();
  stall_guard = fork();
  if (stall_guard == 0) { /* no Criterion here: even a passing cr_assert talks to the runner */
    long long end = now_ms() + max_s * 1000LL;
    while (getppid() == parent && now_ms() < end)
      usleep(50000);
    kill(pid, SIGCONT);
    _exit(0);
  }
  cr_assert(stall_guard > 0, "fork");
  stalled = pid;
  cr_assert_eq(kill(pid, SIGSTOP), 0, "SIGSTOP %d", pid);
}

void world_stall_end(void)
{
  if (stalled > 0)
    kill(stalled, SIGCONT);
  stalled = 0;
  if (stall_guard > 0) {
    kill(stall_guard, SIGKILL); /* SIGKILL: no handler of Criterion's runs in it */
    waitpid(stall_guard, NULL, 0);
  }
  stall_guard = 0;
}
