/* Redis Sentinel failover (issue 9, item 10). The world's Redis is the primary;
 * beside it this program starts a replica and three sentinels on 127.0.0.1,
 * and the world's sortie.conf names the sentinels, not the primary: the
 * FastCGI pool, sortie-pushd, sortie-expire and the test's own Redis helpers
 * all find the primary through them. Each phase fires one signal from 300
 * users (4 threads, Idempotency-Keys, 503s retried with the same key) while
 * two SSE and two WebSocket clients follow its mission channel, kills the
 * primary with SIGKILL once 150 fires are acknowledged, and counts: fires
 * acknowledged vs present in the new primary; events in the new primary's
 * history vs what each client got (once, in order, resuming with its cursor
 * whenever its connection ends). Phase 1 with api.fire_wait_replicas = 0
 * (what is lost is reported, not asserted: replication is asynchronous), then
 * the old primary comes back as a replica, and phase 2 with
 * api.fire_wait_replicas = 1, where no acknowledged fire may be lost.
 * One Test: it kills the primary twice. */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "cfg.h"
#include "integration/proc.h"
#include "integration/test_pushd_util.h"

#define MASTER "sortie-test"
#define NFIRES 300
#define KILL_AT 150
#define NTHREADS 4
#define NCLIENTS 4 /* two SSE, two WebSocket */

static int sentinel_port[3], replica_port;

/* runs a shell command made with printf; its exit status */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *cmd = NULL;
  int rc = vasprintf(&cmd, fmt, ap);
  va_end(ap);
  if (rc < 0)
    return -1;
  int st = system(cmd);
  free(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int port_taken(int p)
{
  const char *env[] = {"PORT", "PUSH_PORT", "REDIS_PORT"};
  for (int i = 0; i < 3; i++)
    if (getenv(env[i]) && atoi(getenv(env[i])) == p)
      return 1;
  for (int i = 0; i < 3; i++)
    if (sentinel_port[i] == p)
      return 1;
  return replica_port == p;
}

static int new_port(void)
{
  int p;
  do
    p = world_free_port();
  while (port_taken(p));
  return p;
}

/* A Redis of this program, under the run folder: the world's primary once it
 * comes back, and the replica. Each runs on its own copy of the shipped
 * config: Sentinel rewrites the config file of every server it reconfigures
 * (CONFIG REWRITE). */
struct server {
  const char *name, *dir, *pidfile; /* dir and pidfile relative to the run folder */
  int port;
};
static struct server server_a = {"the world's Redis", "redis", "redis/redis.pid", 0};
static struct server server_b = {"the replica", "replica", "extra/replica.pid", 0};

/* starts `s` as a replica of the server on port `of`; 0, -1 */
static int start_replica(const struct server *s, int of)
{
  const char *run = world_run(), *repo = getenv("SORTIE_REPO") ? getenv("SORTIE_REPO") : ".";
  return sh("mkdir -p '%s/%s' && cp '%s/conf/redis.conf' '%s/%s/own.conf' && redis-server "
            "'%s/%s/own.conf' --port %d --dir '%s/%s' --replicaof 127.0.0.1 %d --pidfile '%s/%s' "
            "--logfile '%s/log/%s.log' --daemonize yes >/dev/null",
            run, s->dir, repo, run, s->dir, run, s->dir, s->port, run, s->dir, of, run, s->pidfile,
            run, s->dir) == 0 ? 0 : -1;
}

/* The world's hook (harness.h): before the stack starts, the replica (it
 * waits for its primary by itself) and, once the primary has it online, the
 * sentinels (one that found no primary at first would count it down and try
 * a failover; one that found it without its replica would learn of the
 * replica only at its next INFO, 10 s later). Every pid file in <run>/extra:
 * the world's stop ends them. */
static const char *start_sentinels(void)
{
  static char conf[512];
  const char *run = world_run();
  int primary = world_redis_port();
  replica_port = new_port();
  for (int i = 0; i < 3; i++)
    sentinel_port[i] = new_port();
  if (sh("mkdir -p '%s/extra' '%s/log'", run, run) != 0)
    return NULL;
  server_a.port = primary;
  server_b.port = replica_port;
  if (start_replica(&server_b, primary) < 0)
    fprintf(stderr, "sentinel test: the replica did not start\n");
  for (int i = 0; i < 3; i++) {
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/sentinel-%d", run, i + 1);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/sentinel.conf", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
      return NULL;
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndaemonize yes\npidfile %s/extra/sentinel-%d.pid\n"
            "logfile %s/log/sentinel-%d.log\ndir %s\n"
            "sentinel monitor " MASTER " 127.0.0.1 %d 2\n"
            "sentinel down-after-milliseconds " MASTER " 1000\n"
            "sentinel failover-timeout " MASTER " 5000\n"
            "sentinel parallel-syncs " MASTER " 1\n",
            sentinel_port[i], run, i + 1, run, i + 1, dir, primary);
    fclose(f);
  }
  sh("(for i in $(seq 200); do redis-cli -p %d info replication 2>/dev/null | "
     "grep -q 'port=%d,state=online' && break; sleep 0.05; done; "
     "for c in '%s'/sentinel-*/sentinel.conf; do redis-server \"$c\" --sentinel; done) "
     "</dev/null >/dev/null 2>&1 &",
     primary, replica_port, run);
  /* the test runs in another process (Criterion's): it reads them from here */
  char ports[64];
  snprintf(ports, sizeof ports, "%d %d %d %d", replica_port, sentinel_port[0], sentinel_port[1],
           sentinel_port[2]);
  setenv("SORTIE_TEST_SENTINEL_PORTS", ports, 1);
  snprintf(conf, sizeof conf,
           "redis.sentinels = 127.0.0.1:%d, 127.0.0.1:%d,127.0.0.1:%d\n"
           "redis.master_name = " MASTER "\n",
           sentinel_port[0], sentinel_port[1], sentinel_port[2]);
  return conf;
}
SORTIE_WORLD_PREPARE(start_sentinels);

/* ---- asking one server directly (a sentinel, a Redis by its port) ---- */

static sortie_reply *at_port(int port, int argc, const char **argv)
{
  static struct sortie_cfg c;
  char err[512];
  if (sortie_cfg_load(&c, world_conf(), err, sizeof err) < 0)
    return NULL;
  c.redis_sentinels[0] = '\0';
  snprintf(c.redis_host, sizeof c.redis_host, "127.0.0.1");
  c.redis_port = port;
  c.redis_timeout_ms = 500;
  struct sortie_redis *r = sortie_redis_new(&c);
  sortie_reply *rep = sortie_redis_cmd(r, SORTIE_REDIS_IDEMPOTENT, argc, argv, NULL);
  sortie_redis_free(r);
  return rep;
}

/* the value of `field` in a flat [k, v, k, v...] reply, copied into out */
static const char *field_of(const sortie_reply *flat, const char *field, char *out, size_t n)
{
  for (size_t i = 0; i + 1 < sortie_reply_len(flat); i += 2) {
    size_t kl, vl;
    const char *k = sortie_reply_str(sortie_reply_at(flat, i), &kl);
    const char *v = sortie_reply_str(sortie_reply_at(flat, i + 1), &vl);
    if (k && v && kl == strlen(field) && memcmp(k, field, kl) == 0 && vl < n) {
      memcpy(out, v, vl);
      out[vl] = '\0';
      return out;
    }
  }
  return NULL;
}

/* the primary's port that sentinel i names, -1 */
static int named_primary(int i)
{
  const char *av[] = {"SENTINEL", "get-master-addr-by-name", MASTER};
  sortie_reply *r = at_port(sentinel_port[i], 3, av);
  int port = -1;
  if (r && sortie_reply_len(r) == 2) {
    size_t n;
    const char *p = sortie_reply_str(sortie_reply_at(r, 1), &n);
    port = p ? atoi(p) : -1;
  }
  sortie_reply_free(r);
  return port;
}

/* sentinel i names `primary`, knows the two other sentinels, and sees the
 * replica on `replica` as a healthy one */
static int sentinel_ready(int i, int primary, int replica)
{
  if (named_primary(i) != primary)
    return 0;
  const char *am[] = {"SENTINEL", "master", MASTER};
  sortie_reply *m = at_port(sentinel_port[i], 3, am);
  char v[64];
  int ok = m && field_of(m, "num-other-sentinels", v, sizeof v) && atoi(v) == 2 &&
           field_of(m, "flags", v, sizeof v) && strcmp(v, "master") == 0;
  sortie_reply_free(m);
  if (!ok)
    return 0;
  const char *ar[] = {"SENTINEL", "replicas", MASTER};
  sortie_reply *rs = at_port(sentinel_port[i], 3, ar);
  ok = 0;
  for (size_t k = 0; rs && k < sortie_reply_len(rs); k++) {
    const sortie_reply *e = sortie_reply_at(rs, k);
    char port[16], flags[64];
    if (field_of(e, "port", port, sizeof port) && atoi(port) == replica &&
        field_of(e, "flags", flags, sizeof flags) && strcmp(flags, "slave") == 0)
      ok = 1;
  }
  sortie_reply_free(rs);
  return ok;
}

/* the primary on `primary` has its replica on `replica` online */
static int replica_online(int primary, int replica)
{
  const char *av[] = {"INFO", "replication"};
  sortie_reply *r = at_port(primary, 2, av);
  size_t n = 0;
  const char *t = r ? sortie_reply_str(r, &n) : NULL;
  char want[64];
  snprintf(want, sizeof want, "port=%d,state=online", replica);
  int ok = t && memmem(t, n, want, strlen(want)) != NULL;
  sortie_reply_free(r);
  return ok;
}

/* waits (at most 30 s) until every sentinel agrees on the topology; ms taken */
static long long wait_topology(int primary, int replica)
{
  long long t0 = pc_now();
  while (pc_now() - t0 < 30000) {
    int ready = replica_online(primary, replica);
    for (int i = 0; ready && i < 3; i++)
      ready = sentinel_ready(i, primary, replica);
    if (ready)
      return pc_now() - t0;
    pc_sleep_ms(200);
  }
  cr_assert_fail("the sentinels did not agree on primary %d with replica %d in 30 s (logs in %s/log)",
                 primary, replica, world_run());
  return -1;
}

/* ---- the clients: one thread each, never asserting ---- */

struct ev {
  long long ms, seq;
};

struct client {
  int ws;
  char *token;
  const char *channel, *cursor0;
  char cursor[64];
  struct ev *ev;
  size_t nev, cap;
  int connects, resets, bad;
  atomic_int marked; /* the marker after the run's events came */
  atomic_int *stop;
  pthread_t th;
};

static int id_parse(const char *id, struct ev *e)
{
  char *end;
  e->ms = strtoll(id, &end, 10);
  if (*end != '-')
    return -1;
  e->seq = strtoll(end + 1, &end, 10);
  return *end ? -1 : 0;
}

static int ev_cmp(const struct ev *a, const struct ev *b)
{
  return a->ms != b->ms ? (a->ms < b->ms ? -1 : 1) : a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void take(struct client *c, const char *text)
{
  json_object *o = json_tokener_parse(text);
  const char *type = jget_str(o, "type"), *id = jget_str(o, "id");
  struct ev e;
  if (type && strcmp(type, "fire_count_update") == 0 && id && id_parse(id, &e) == 0) {
    if (c->nev == c->cap) {
      c->cap = c->cap ? c->cap * 2 : 512;
      c->ev = realloc(c->ev, c->cap * sizeof *c->ev);
    }
    c->ev[c->nev++] = e;
    snprintf(c->cursor, sizeof c->cursor, "%s", id);
  } else if (type && strcmp(type, "test_marker") == 0) {
    atomic_store(&c->marked, 1);
  } else if (type && strcmp(type, "reset") == 0) {
    c->resets++;
  } else if (type && strcmp(type, "presence_update") == 0) {
    /* the mission's watching count (push.presence): expected, never negative */
    if (jget_int(o, "data.watching") < 0)
      c->bad++;
  } else if (!type || (strcmp(type, "subscribed") && strcmp(type, "connection_status"))) {
    c->bad++;
  }
  json_object_put(o);
}

static void *client_main(void *arg)
{
  struct client *c = arg;
  char *path = c->ws ? strf("/ws") : strf("/events?channels=%s&cursor=%s", c->channel, c->cursor0);
  while (!atomic_load(c->stop)) {
    if (c->ws) {
      struct ws_client *w = ws_open(world_push_base(), path, c->token, NULL, 0, T_SHORT);
      char *sub = strf("{\"action\":\"subscribe\",\"channels\":[\"%s\"],\"since\":\"%s\"}",
                       c->channel, c->cursor[0] ? c->cursor : c->cursor0);
      if (w && w->status == 101 && ws_send_text(w, sub) == 0) {
        c->connects++;
        while (!atomic_load(c->stop)) {
          const char *t = ws_next_text(w, 200);
          if (t)
            take(c, t);
          else if (w->closed || w->close_code >= 0)
            break;
        }
      }
      free(sub);
      ws_close(w);
    } else {
      /* like a browser: the same URL again, with Last-Event-ID once it has one */
      struct sse_client *s = sse_open(world_push_base(), path, c->token,
                                      c->cursor[0] ? c->cursor : NULL, NULL, 0, T_SHORT);
      if (s && s->status == 200) {
        c->connects++;
        size_t seen = 0;
        while (!atomic_load(c->stop) && !s->closed) {
          sse_read_msgs(s, seen + 1, 200);
          for (; seen < s->nmsgs; seen++) {
            if (s->msgs[seen].data)
              take(c, s->msgs[seen].data);
            if (s->msgs[seen].id)
              snprintf(c->cursor, sizeof c->cursor, "%s", s->msgs[seen].id);
          }
        }
      }
      sse_close(s);
    }
    if (!atomic_load(c->stop))
      pc_sleep_ms(150);
  }
  free(path);
  return NULL;
}

/* ---- the fires: NTHREADS threads, each user fired until a final answer ---- */

struct phase {
  const char *name;
  char sid[96], channel[128];
  atomic_int next, acked, st503, unknown503, other;
  int status[NFIRES]; /* final status of user i's fire */
  long long first_503_ms, last_503_ms, kill_ms;
  atomic_llong longest_fire_ms;
};

static void *fire_main(void *arg)
{
  struct phase *p = arg;
  for (;;) {
    int i = atomic_fetch_add(&p->next, 1);
    if (i >= NFIRES)
      break;
    char user[128], key[128];
    snprintf(user, sizeof user, "%s_u%03d", p->sid, i);
    snprintf(key, sizeof key, "k-%s-%d", p->sid, i);
    long long t0 = pc_now();
    long st = 0;
    while (pc_now() - t0 < 20000) {
      struct http_resp r;
      st = fire(user, p->sid, key, &r);
      if (st == 503) {
        atomic_fetch_add(&p->st503, 1);
        const char *type = jget_str(r.json, "type");
        if (type && strstr(type, "outcome-unknown"))
          atomic_fetch_add(&p->unknown503, 1);
        if (atomic_load(&p->st503) <= 3 || getenv("SORTIE_TEST_VERBOSE"))
          fprintf(stderr, "sentinel %s: fire %d: 503 %.300s\n", p->name, i, r.body ? r.body : "");
      } else if (st != 201) {
        atomic_fetch_add(&p->other, 1);
        fprintf(stderr, "sentinel %s: fire %d answered %ld: %.200s\n", p->name, i, st,
                r.body ? r.body : "");
      }
      http_free(&r);
      if (st == 201)
        break;
      pc_sleep_ms(100);
    }
    long long took = pc_now() - t0;
    long long prev = atomic_load(&p->longest_fire_ms);
    while (took > prev && !atomic_compare_exchange_weak(&p->longest_fire_ms, &prev, took))
      ;
    p->status[i] = (int)st;
    if (st == 201)
      atomic_fetch_add(&p->acked, 1);
  }
  return NULL;
}

/* a user's fire is in the primary the world's config leads to now */
static int fire_present(const char *sid, int i)
{
  char key[256], user[128];
  snprintf(key, sizeof key, "%ssignal:%s:fired", kp(), sid);
  snprintf(user, sizeof user, "%s_u%03d", sid, i);
  const char *av[] = {"HGET", key, user};
  char *v = rstr(3, av);
  int ok = v != NULL;
  free(v);
  return ok;
}

static long long last_kill_ms;

/* One phase: fires, the kill of the primary `victim` once KILL_AT are
 * acknowledged, its return (as a supervisor would start it again) as a
 * replica once the sentinels name `new_primary`, and the counts. Returns how
 * many acknowledged fires the new primary lacks. */
static int run_phase(const char *name, const struct server *victim_srv, int new_primary)
{
  static struct phase p; /* large; one phase at a time */
  memset(&p, 0, sizeof p);
  p.name = name;
  snprintf(p.sid, sizeof p.sid, "%s", uniq("sen"));
  snprintf(p.channel, sizeof p.channel, "mission:%s", p.sid);
  cr_assert_eq(make_signal(p.sid, 3600), 201, "%s: could not create the signal", name);
  char *cursor0 = cursor_now(p.channel);

  atomic_int stop = 0;
  struct client cl[NCLIENTS];
  memset(cl, 0, sizeof cl);
  for (int i = 0; i < NCLIENTS; i++) {
    cl[i].ws = i % 2;
    cl[i].token = token_for(uniq("watcher"), "user");
    cl[i].channel = p.channel;
    cl[i].cursor0 = cursor0;
    cl[i].stop = &stop;
    cr_assert_eq(pthread_create(&cl[i].th, NULL, client_main, &cl[i]), 0);
  }
  pc_sleep_ms(300);

  pid_t victim = (pid_t)world_pid(victim_srv->pidfile);
  cr_assert(victim > 0, "%s: no pid in %s", name, victim_srv->pidfile);
  pthread_t th[NTHREADS];
  long long t0 = pc_now();
  for (int i = 0; i < NTHREADS; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, fire_main, &p), 0);
  while (atomic_load(&p.acked) < KILL_AT && pc_now() - t0 < 60000)
    pc_sleep_ms(2);
  cr_assert_eq(kill(victim, SIGKILL), 0, "%s: could not kill the primary (pid %d)", name,
               (int)victim);
  long long kill_at = last_kill_ms = pc_now();
  int acked_before_kill = atomic_load(&p.acked);

  /* the failover is over once every sentinel names the new primary */
  int agreed = 0;
  while (!agreed && pc_now() - kill_at < 20000) {
    agreed = 1;
    for (int i = 0; i < 3; i++)
      agreed &= named_primary(i) == new_primary;
    if (!agreed)
      pc_sleep_ms(50);
  }
  long long failover_ms = pc_now() - kill_at;
  cr_assert(agreed, "%s: the sentinels did not all name %d as the primary", name, new_primary);
  /* the killed server comes back as a replica (with the WAIT option on, no
   * fire is acknowledged until a replica has it) */
  cr_assert_eq(start_replica(victim_srv, new_primary), 0, "%s: %s did not start again", name,
               victim_srv->name);
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(th[i], NULL);
  long long fires_ms = pc_now() - t0;

  /* fires: acknowledged vs in the new primary */
  int acked = 0, lost = 0;
  for (int i = 0; i < NFIRES; i++) {
    if (p.status[i] != 201)
      continue;
    acked++;
    if (!fire_present(p.sid, i)) {
      lost++;
      fprintf(stderr, "sentinel %s: user %d's fire was acknowledged and is not in the new primary\n",
              name, i);
    }
  }
  char skey[256];
  snprintf(skey, sizeof skey, "%ssignal:%s", kp(), p.sid);
  const char *avc[] = {"HGET", skey, "fire_count"};
  char *count = rstr(3, avc);

  /* events: the new primary's history vs every client */
  json_object *hist = rstream(p.channel);
  size_t nh = 0;
  struct ev *h = calloc(json_object_array_length(hist) + 1, sizeof *h);
  for (size_t i = 0; i < json_object_array_length(hist); i++) {
    json_object *e = json_object_array_get_idx(hist, i);
    if (jget_str(e, "type") && strcmp(jget_str(e, "type"), "fire_count_update") == 0 &&
        id_parse(jget_str(e, "id"), &h[nh]) == 0)
      nh++;
  }
  /* every client reads up to a marker published after the history was
   * read: what it got before it is all it gets, a late duplicate included
   * (no quiet window); 30 s only bounds a hang */
  char *mark = publish_id(p.channel, "test_marker", "{\"marker\":1}");
  int have_mark = mark != NULL;
  cr_expect(have_mark, "%s: the marker could not be published", name);
  free(mark);
  long long t2 = pc_now();
  for (int all = 0; !all && have_mark && pc_now() - t2 < 30000;) {
    all = 1;
    for (int i = 0; i < NCLIENTS; i++)
      all &= atomic_load(&cl[i].marked);
    if (!all)
      pc_sleep_ms(100);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < NCLIENTS; i++)
    pthread_join(cl[i].th, NULL);

  fprintf(stderr,
          "COUNTS sentinel %s: fires %d, acknowledged %d (%d before the kill), in the new primary "
          "%d, lost %d; fire_count %s; 503s %d (outcome-unknown %d), other answers %d; the "
          "sentinels named the new primary %lld ms after the kill; fires took %lld ms, the "
          "longest fire %lld ms; history events %zu\n",
          name, NFIRES, acked, acked_before_kill, acked - lost, lost, count ? count : "?",
          atomic_load(&p.st503), atomic_load(&p.unknown503), atomic_load(&p.other), failover_ms,
          fires_ms, (long long)atomic_load(&p.longest_fire_ms), nh);
  int bad_clients = 0;
  for (int i = 0; i < NCLIENTS; i++) {
    struct client *c = &cl[i];
    size_t dup_or_disorder = 0, missing = 0, extra = 0, k = 0;
    for (size_t j = 1; j < c->nev; j++)
      if (ev_cmp(&c->ev[j - 1], &c->ev[j]) >= 0)
        dup_or_disorder++;
    /* both in order: walk them side by side */
    for (size_t j = 0; j < nh; j++) {
      while (k < c->nev && ev_cmp(&c->ev[k], &h[j]) < 0) {
        extra++;
        k++;
      }
      if (k < c->nev && ev_cmp(&c->ev[k], &h[j]) == 0)
        k++;
      else
        missing++;
    }
    extra += c->nev - k;
    fprintf(stderr,
            "COUNTS sentinel %s: client %d (%s): delivered %zu of %zu published, missing %zu, "
            "duplicated or out of order %zu, not in the new primary %zu, resets %d, connections "
            "%d, unexpected messages %d\n",
            name, i, c->ws ? "ws" : "sse", c->nev - extra, nh, missing, dup_or_disorder, extra,
            c->resets, c->connects, c->bad);
    if (missing || dup_or_disorder || c->bad)
      bad_clients++;
  }
  cr_assert_eq(acked, NFIRES, "%s: %d of %d fires never got a 201", name, NFIRES - acked, NFIRES);
  cr_assert_eq(atomic_load(&p.other), 0, "%s: answers other than 201 and 503 (see above)", name);
  cr_assert_eq(bad_clients, 0, "%s: %d clients missed, repeated or reordered events (see above)",
               name, bad_clients);
  cr_assert(count && atoi(count) == (int)nh, "%s: fire_count %s, %zu events in the history", name,
            count ? count : "?", nh);
  for (int i = 0; i < NCLIENTS; i++) {
    free(cl[i].ev);
    free(cl[i].token);
  }
  free(h);
  json_object_put(hist);
  free(count);
  free(cursor0);
  return lost;
}

/* sortie-expire, which finds the primary through the sentinels too */
static void expire_after_failover(void)
{
  const char *sid = uniq("senexp");
  cr_assert_eq(make_signal(sid, 1), 201);
  pc_sleep_ms(1300);
  char bin[600];
  snprintf(bin, sizeof bin, "%s/bin/sortie-expire", getenv("BUILD"));
  const char *argv[] = {bin, NULL};
  struct proc_spec s = {.argv = argv, .timeout_ms = 30000};
  struct proc_result r;
  cr_assert_eq(proc_run(&s, &r), 0);
  cr_assert(r.exited && r.code == 0, "sortie-expire: exit %d; stderr: %s", r.code, r.err);
  proc_result_free(&r);
  char key[256];
  snprintf(key, sizeof key, "%ssignal:%s", kp(), sid);
  const char *av[] = {"HGET", key, "status"};
  char *st = rstr(3, av);
  cr_assert(st && strcmp(st, "EXPIRED") == 0, "after sortie-expire the signal is %s",
            st ? st : "(absent)");
  fprintf(stderr, "COUNTS sentinel: sortie-expire through the sentinels expired the signal\n");
  free(st);
}

Test(sentinel, fires_and_streams_follow_a_failover, .timeout = 150)
{
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_ALL);
  free(token_for("warmup", "user"));
  const char *ports = getenv("SORTIE_TEST_SENTINEL_PORTS");
  cr_assert(ports && sscanf(ports, "%d %d %d %d", &replica_port, &sentinel_port[0],
                            &sentinel_port[1], &sentinel_port[2]) == 4,
            "the world started no sentinels");
  int primary = world_redis_port();
  server_a.port = primary;
  server_b.port = replica_port;
  long long t = wait_topology(primary, replica_port);
  fprintf(stderr, "sentinel: topology ready in %lld ms (primary %d, replica %d)\n", t, primary,
          replica_port);

  /* a write that reaches a replica (as on a demoted primary) is refused
   * whole, and the blocking client says so and lets the connection go */
  {
    static struct sortie_cfg c;
    char err[512];
    cr_assert_eq(sortie_cfg_load(&c, world_conf(), err, sizeof err), 0, "%s", err);
    c.redis_sentinels[0] = '\0';
    c.redis_port = replica_port;
    struct sortie_redis *r = sortie_redis_new(&c);
    const char *av[] = {"market:SENTINEL_RO", "market_update", "{}"};
    sortie_reply *rep = sortie_redis_script(r, SORTIE_LUA_PUBLISH, 0, 3, av, NULL);
    cr_assert_null(rep, "a replica ran a publish");
    cr_assert(strstr(sortie_redis_errstr(r), "READONLY"), "%s", sortie_redis_errstr(r));
    sortie_redis_free(r);
  }

  /* phase 1: replication as it comes */
  int lost1 = run_phase("wait-off", &server_a, replica_port);
  fprintf(stderr, "sentinel: with api.fire_wait_replicas = 0, %d acknowledged fires lost\n", lost1);
  expire_after_failover();
  t = wait_topology(replica_port, primary);
  fprintf(stderr, "sentinel: the old primary is a replica again in %lld ms\n", t);

  /* phase 2: a fire answers 201 only once a replica has it */
  cr_assert_eq(sh("printf 'api.fire_wait_replicas = 1\\n' >> '%s'", world_conf()), 0);
  cr_assert_eq(world_ctl("api-restart"), 0, "the FastCGI pool did not start again");
  /* Sentinel starts no second failover of one master within 2 x failover-timeout */
  while (pc_now() - last_kill_ms < 11000)
    pc_sleep_ms(100);
  int lost2 = run_phase("wait-on", &server_b, primary);
  cr_assert_eq(lost2, 0, "with api.fire_wait_replicas = 1, %d acknowledged fires were lost", lost2);
}
