/* Redis goes away and comes back under the running stack: 503s that write nothing, recovery in the same FastCGI processes, acknowledged fires survive. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "harness.h"

/* Every test here stops Redis, and Criterion runs tests two at a time: each
 * test holds this lock for its whole length, so no test ever sees another's
 * outage, whatever the order. */
static void outage_lock(void)
{
  char path[600];
  snprintf(path, sizeof path, "%s/redis_down.lock", world_run());
  int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  cr_assert(fd >= 0, "cannot open %s", path);
  cr_assert_eq(flock(fd, LOCK_EX), 0); /* released when the test's process ends */
}

static int redis_up(void)
{
  char cmd[128];
  snprintf(cmd, sizeof cmd, "redis-cli -p %d ping 2>/dev/null | grep -q PONG", world_redis_port());
  return system(cmd) == 0;
}

/* .fini: whatever happened in the test, Redis runs again afterwards */
static void redis_back(void)
{
  if (!redis_up())
    world_ctl("redis-start");
}

static long get_json(const char *path, const char *token, struct http_resp *r)
{
  http("GET", path, token, NULL, NULL, NULL, r);
  return r->status;
}

static long long fire_count(const char *sid)
{
  char path[256];
  struct http_resp r;
  snprintf(path, sizeof path, "/api/signals/%s/fire-count", sid);
  cr_assert_eq(get_json(path, NULL, &r), 200, "fire-count of %s: %ld %s", sid, r.status, r.body);
  long long c = jget_int(r.json, "count");
  http_free(&r);
  return c;
}

/* the user's stats object as the API shows it (caller puts it) */
static json_object *stats_of(const char *user)
{
  char path[256];
  char *tok = token_for(user, "user");
  struct http_resp r;
  snprintf(path, sizeof path, "/api/users/%s/stats", user);
  cr_assert_eq(get_json(path, tok, &r), 200, "stats of %s: %ld %s", user, r.status, r.body);
  free(tok);
  json_object *s = NULL;
  cr_assert(json_object_object_get_ex(r.json, "stats", &s), "no stats in %s", r.body);
  json_object_get(s);
  http_free(&r);
  return s;
}

/* pids of the FastCGI pool's workers (children of the pool's master) */
static int pool_workers(int *pids, int max)
{
  int master = (int)world_pid("api.pid");
  cr_assert_gt(master, 0, "no pid in %s/api.pid", world_run());
  int n = 0;
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL && n < max) {
    int pid = atoi(e->d_name);
    if (pid <= 0)
      continue;
    char sp[64], buf[512];
    snprintf(sp, sizeof sp, "/proc/%d/stat", pid);
    FILE *s = fopen(sp, "r");
    if (s == NULL)
      continue;
    size_t got = fread(buf, 1, sizeof buf - 1, s);
    fclose(s);
    buf[got] = '\0';
    const char *rp = strrchr(buf, ')'); /* "pid (comm) state ppid ..." */
    int ppid = 0;
    char state;
    if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == master)
      pids[n++] = pid;
  }
  if (d)
    closedir(d);
  return n;
}

static int cmp_int(const void *a, const void *b)
{
  return *(const int *)a - *(const int *)b;
}

static void expect_problem_503(struct http_resp *r, const char *what)
{
  char ct[128] = "", ra[32] = "";
  cr_assert_eq(r->status, 503, "%s: %ld %s", what, r->status, r->body);
  cr_assert_not_null(http_header(r, "Content-Type", ct, sizeof ct), "%s: no Content-Type", what);
  cr_assert(strncmp(ct, "application/problem+json", 24) == 0, "%s: Content-Type %s", what, ct);
  cr_assert_not_null(http_header(r, "Retry-After", ra, sizeof ra), "%s: no Retry-After", what);
  cr_assert(atoi(ra) >= 1, "%s: Retry-After %s", what, ra);
  cr_assert_not_null(r->json, "%s: body is not JSON: %s", what, r->body);
  cr_assert_eq(jget_int(r->json, "status"), 503, "%s", what);
  const char *type = jget_str(r->json, "type");
  cr_assert(type && strstr(type, "redis-unavailable"), "%s: type %s", what, type ? type : "-");
  cr_assert_not_null(jget_str(r->json, "title"), "%s", what);
}

Test(redis_down, outage_answers_503_writes_nothing_and_recovers_in_place, .fini = redis_back)
{
  outage_lock();
  char sid[96], sid2[96], user[96], other[96], newsig[96];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  snprintf(sid2, sizeof sid2, "%s", uniq("sig"));
  snprintf(user, sizeof user, "%s", uniq("u"));
  snprintf(other, sizeof other, "%s", uniq("v"));
  snprintf(newsig, sizeof newsig, "%s", uniq("new"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  cr_assert_eq(make_signal(sid2, 3600), 201);
  cr_assert_eq(fire(user, sid, NULL, NULL), 201);

  /* before */
  long long count_before = fire_count(sid);
  cr_assert_eq(count_before, 1);
  json_object *stats_before = stats_of(user);
  json_object *other_before = stats_of(other);
  int w_before[64], w_after[64];
  int nw = pool_workers(w_before, 64);
  cr_assert(nw > 0, "no pool workers found");
  qsort(w_before, (size_t)nw, sizeof w_before[0], cmp_int);

  cr_assert_eq(world_ctl("redis-stop"), 0);
  cr_assert(!redis_up(), "Redis still answers after redis-stop");

  /* writes: 503 problem+json with Retry-After */
  struct http_resp r;
  fire(user, sid2, NULL, &r);
  expect_problem_503(&r, "POST /api/fire");
  http_free(&r);
  fire(other, sid, uniq("idem"), &r);
  expect_problem_503(&r, "POST /api/fire (other user, Idempotency-Key)");
  http_free(&r);
  char *svc = token_for("test-feed", "service");
  char body[512];
  snprintf(body, sizeof body,
           "{\"id\":\"%s\",\"symbol\":\"AAPL\",\"direction\":\"BUY\",\"entry\":\"145.75\","
           "\"stop_loss\":\"140.00\",\"take_profit\":\"160.00\",\"ttl\":3600}", newsig);
  http("POST", "/api/signals", svc, body, NULL, NULL, &r);
  expect_problem_503(&r, "POST /api/signals");
  http_free(&r);

  /* reads */
  http("GET", "/health", NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 503, "/health with Redis down: %ld %s", r.status, r.body);
  cr_assert_not_null(r.json, "/health body: %s", r.body);
  cr_assert_str_eq(jget_str(r.json, "status"), "degraded");
  cr_assert_str_eq(jget_str(r.json, "redis"), "down");
  http_free(&r);
  char path[256];
  snprintf(path, sizeof path, "/api/signals/%s/fire-count", sid);
  get_json(path, NULL, &r);
  expect_problem_503(&r, "GET fire-count");
  http_free(&r);
  snprintf(path, sizeof path, "/api/signals/%s", sid);
  get_json(path, NULL, &r);
  expect_problem_503(&r, "GET /api/signals/{id}");
  http_free(&r);
  char *utok = token_for(user, "user");
  snprintf(path, sizeof path, "/api/users/%s/stats", user);
  get_json(path, utok, &r);
  expect_problem_503(&r, "GET stats");
  http_free(&r);
  snprintf(path, sizeof path, "/api/missions/%s", sid);
  get_json(path, utok, &r);
  expect_problem_503(&r, "GET /api/missions/{id}");
  http_free(&r);
  snprintf(path, sizeof path, "/mission/%s", sid);
  http("GET", path, NULL, NULL, NULL, NULL, &r);
  char ct[128] = "", ra[32] = "";
  cr_assert_eq(r.status, 503, "mission page: %ld", r.status);
  cr_assert(http_header(&r, "Content-Type", ct, sizeof ct) && strncmp(ct, "text/html", 9) == 0,
            "mission page Content-Type: %s", ct);
  cr_assert_not_null(http_header(&r, "Retry-After", ra, sizeof ra), "mission page: no Retry-After");
  cr_assert(r.body && strstr(r.body, "<html") && strstr(r.body, sid),
            "mission page body: %s", r.body ? r.body : "");
  http_free(&r);

  /* back: the same processes answer, on the very next request */
  cr_assert_eq(world_ctl("redis-start"), 0);
  for (int i = 0; i < 2 * nw; i++) {
    http("GET", "/health", NULL, NULL, NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "/health #%d after the restart: %ld %s", i, r.status, r.body);
    cr_assert_str_eq(jget_str(r.json, "status"), "ok");
    cr_assert_str_eq(jget_str(r.json, "redis"), "ok");
    http_free(&r);
  }

  /* nothing the outage refused was written */
  cr_assert_eq(fire_count(sid), count_before);
  cr_assert_eq(fire_count(sid2), 0);
  json_object *stats_after = stats_of(user), *other_after = stats_of(other);
  cr_assert(json_object_equal(stats_before, stats_after), "stats changed: %s -> %s",
            json_object_to_json_string(stats_before), json_object_to_json_string(stats_after));
  cr_assert(json_object_equal(other_before, other_after), "stats changed: %s -> %s",
            json_object_to_json_string(other_before), json_object_to_json_string(other_after));
  json_object_put(stats_before);
  json_object_put(stats_after);
  json_object_put(other_before);
  json_object_put(other_after);
  snprintf(path, sizeof path, "/api/signals/%s", newsig);
  get_json(path, NULL, &r);
  cr_assert_eq(r.status, 404, "a signal refused with 503 exists: %s", r.body);
  http_free(&r);

  /* and writes work again, in the same worker processes */
  struct http_resp f;
  cr_assert_eq(fire(user, sid2, NULL, &f), 201, "%s", f.body);
  http_free(&f);
  cr_assert_eq(fire(other, sid, NULL, &f), 201, "%s", f.body);
  cr_assert_eq(jget_int(f.json, "fire_count"), 2);
  http_free(&f);
  cr_assert_eq(make_signal(newsig, 3600), 201);
  int na = pool_workers(w_after, 64);
  qsort(w_after, (size_t)na, sizeof w_after[0], cmp_int);
  cr_assert_eq(na, nw, "the pool had %d workers, now %d", nw, na);
  for (int i = 0; i < nw; i++)
    cr_assert_eq(w_after[i], w_before[i], "pool workers were replaced during the outage");
  free(utok);
  free(svc);
}

Test(redis_down, fires_acknowledged_before_a_restart_are_kept, .fini = redis_back)
{
  outage_lock();
  enum { N = 40 };
  char sid[96], k[256];
  static char users[N][96], trades[N][64];
  snprintf(sid, sizeof sid, "%s", uniq("dur"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  for (int i = 0; i < N; i++) {
    struct http_resp f;
    snprintf(users[i], sizeof users[i], "%s", uniq("d"));
    cr_assert_eq(fire(users[i], sid, NULL, &f), 201, "%s", f.body);
    snprintf(trades[i], sizeof trades[i], "%s", jget_str(f.json, "trade_id"));
    http_free(&f);
  }
  /* straight after the last 201 */
  cr_assert_eq(world_ctl("redis-stop"), 0);
  cr_assert_eq(world_ctl("redis-start"), 0);

  cr_assert_eq(fire_count(sid), N);
  snprintf(k, sizeof k, "%ssignal:%s:fired", kp(), sid);
  const char *hl[] = {"HLEN", k};
  cr_assert_eq(rinteger(2, hl), N);
  for (int i = 0; i < N; i++) {
    char tk[256];
    snprintf(tk, sizeof tk, "%strade:%.60s", kp(), trades[i]);
    const char *hg[] = {"HGET", tk, "user_id"};
    char *u = rstr(3, hg);
    cr_assert_str_eq(u ? u : "(none)", users[i], "trade %s", trades[i]);
    free(u);
    json_object *s = stats_of(users[i]);
    cr_assert_eq(jget_int(s, "total_trades"), 1, "user %s", users[i]);
    json_object_put(s);
  }
  snprintf(k, sizeof k, "%sh:mission:%s", kp(), sid);
  const char *xl[] = {"XLEN", k};
  cr_assert_eq(rinteger(2, xl), N, "the mission's history lost events");
  /* a second fire is still a duplicate: the :fired record survived too */
  cr_assert_eq(fire(users[0], sid, NULL, NULL), 409);
}
