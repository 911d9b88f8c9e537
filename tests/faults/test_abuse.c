/* Abuse of a 1-worker sortie-pushd, with figures: eleven abuses, each run
 * beside 100 well-behaved SSE clients (distinct users, one channel) that a
 * publisher feeds at a steady pace while the abuse goes on. For each abuse
 * one line on stderr,
 *   COUNTS abuse NAME: abuser sent=... got=... | bystanders k/100 complete,
 *   dup=.. lost=.. out_of_order=.., p99 .. ms | worker RSS before .., peak ..
 *   | health longest gap .. ms
 * and the expectations: every bystander got every event once and in order,
 * the abuser got the documented refusal, the worker's RSS stayed under a
 * stated bound, /health answered at the end. Speeds (latency, gaps,
 * durations) are printed, never asserted.
 *
 * The abuses share one daemon, so they take turns (a lock file in the
 * world's folder: Criterion runs two tests at once). The worker's VmHWM is
 * its lifetime peak, so each abuse samples VmRSS every 50 ms instead. A
 * bystander's latency runs from its event's id (the Redis clock at publish,
 * the same host's clock) to its receipt. The worker's pid is the same before
 * and after each abuse (the master restarts a worker that died).
 *
 * Scaled down, and said so in their lines: the slowloris sockets when the
 * descriptor limit is under 2,600; the events per channel of the 50
 * concurrent 64-channel history reads (see HIST_WIDE_PER). forged_tokens
 * found that a non-integer nbf or iat was let in (libjwt reads it as 0);
 * lib/auth.c reads time claims from their JSON since. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../integration/test_pushd_util.h"
#include "auth.h"
#include "cfg.h"

SORTIE_WORLD_CONF("push.workers = 1\n"
                  "push.max_pending = 1000\n"
                  "push.max_conn_per_user = 10\n"
                  "push.max_message = 65536\n"
                  "push.outbuf_max = 262144\n"
                  "push.ping_s = 2\n"
                  "history.maxlen = 1000\n");

#define MAX_PENDING 1000
#define PER_USER 10
#define PING_S 2
#define HIST_PER_CHAN 1000 /* history.maxlen */

#define NBY 100          /* bystanders */
#define PUB_EVERY_MS 50  /* the publisher's pace */
#define MAXEV 1200       /* at most this many events per abuse */
#define BY_MIN_MS 1000   /* the bystanders run at least this long */
/* the worker's peak RSS during any abuse stays under this (generous: it
 * idles at a few MB; 1,000 pending requests of libmicrohttpd at 16 KiB each
 * and 300 unfinished 60 KiB WebSocket messages are the big ones) */
#define RSS_BOUND_KIB (128 * 1024)
/* under AddressSanitizer (SORTIE_SAN=1: tests/run.sh) the worker's RSS is
 * its quarantine and shadow memory (350-520 MB seen), not its own: there the
 * bound only catches a runaway */
#define RSS_BOUND_SAN_KIB (2048 * 1024)

static long rss_bound(void)
{
  const char *san = getenv("SORTIE_SAN");
  return san && strcmp(san, "1") == 0 ? RSS_BOUND_SAN_KIB : RSS_BOUND_KIB;
}

/* ------------------------------------------------------------------ */
/* taking turns, descriptors                                           */

static void serial(void)
{
  char p[600];
  snprintf(p, sizeof p, "%s/abuse.lock", world_run());
  int fd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    flock(fd, LOCK_EX); /* held until this test's process ends */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static long fd_budget(void)
{
  struct rlimit rl;
  return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long)rl.rlim_cur : 1024;
}

static long long real_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}


static int parse_id(const char *s, long long *ms, long long *seq)
{
  return s && sscanf(s, "%lld-%lld", ms, seq) == 2 ? 0 : -1;
}

static int cmp_ll(const void *a, const void *b)
{
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

static long long p99_of(long long *v, size_t n)
{
  if (n == 0)
    return -1;
  qsort(v, n, sizeof *v, cmp_ll);
  size_t k = (n * 99) / 100;
  return v[k < n ? k : n - 1];
}

static int health_ok(int timeout_ms)
{
  struct pc_resp r;
  int ok = pc_get(world_push_base(), "/health", NULL, &r, timeout_ms) == 0 && r.status == 200;
  pc_resp_free(&r);
  return ok;
}

/* ------------------------------------------------------------------ */
/* the bystanders                                                      */

struct evid {
  long long ms, seq;
};

struct by {
  char channel[128];
  struct sse_client *c[NBY];
  long worker;
  int stop_pub, stop_all; /* __atomic */
  /* the marker published after the last event: a client that has it has
   * everything it will get (its reader thread sets this; __atomic) */
  int marked[NBY];
  pthread_t tpub, trd, thl, trss;
  /* publisher (its thread only, read after the join) */
  struct evid pub[MAXEV];
  int npub, pubfail;
  long long publat[MAXEV];
  /* reader (its thread only; ngot read with __atomic) */
  struct evid *got[NBY];
  int ngot[NBY], capgot[NBY], closed[NBY];
  long long *lat;
  size_t nlat, caplat;
  /* /health, every 100 ms */
  long long hl_start, hl_last_ok, hl_gap;
  int hl_ok, hl_fail;
  /* worker RSS, every 50 ms */
  long rss_before, rss_peak;
  long long t_start;
};

static void *by_publisher(void *ud)
{
  struct by *b = ud;
  long long t0 = pc_now();
  for (int k = 0; k < MAXEV && !__atomic_load_n(&b->stop_pub, __ATOMIC_ACQUIRE); k++) {
    char d[32];
    snprintf(d, sizeof d, "{\"k\":%d}", k);
    long long s = pc_now();
    char *id = publish_id(b->channel, "market_update", d);
    long long took = pc_now() - s;
    struct evid e;
    if (id && parse_id(id, &e.ms, &e.seq) == 0) {
      b->publat[b->npub] = took;
      b->pub[b->npub++] = e;
    } else {
      b->pubfail++;
    }
    free(id);
    long long next = t0 + (long long)(k + 1) * PUB_EVERY_MS;
    long long wait = next - pc_now();
    if (wait > 0)
      pc_sleep_ms((int)wait);
  }
  return NULL;
}

static void by_take(struct by *b, int i)
{
  struct sse_client *c = b->c[i];
  for (size_t k = 0; k < c->nmsgs; k++) {
    const struct sse_msg *m = &c->msgs[k];
    if (m->data == NULL)
      continue;
    if (strstr(m->data, "\"by_marker\":1")) {
      __atomic_store_n(&b->marked[i], 1, __ATOMIC_RELEASE);
      continue;
    }
    struct evid e = {-1, -1};
    parse_id(m->id, &e.ms, &e.seq);
    if (b->ngot[i] == b->capgot[i]) {
      b->capgot[i] = b->capgot[i] ? 2 * b->capgot[i] : 256;
      b->got[i] = realloc(b->got[i], (size_t)b->capgot[i] * sizeof *b->got[i]);
    }
    b->got[i][b->ngot[i]] = e;
    __atomic_store_n(&b->ngot[i], b->ngot[i] + 1, __ATOMIC_RELEASE);
    if (b->nlat == b->caplat) {
      b->caplat = b->caplat ? 2 * b->caplat : 4096;
      b->lat = realloc(b->lat, b->caplat * sizeof *b->lat);
    }
    b->lat[b->nlat++] = e.ms >= 0 ? real_ms() - e.ms : -1;
  }
  sse_forget(c);
}

static void *by_reader(void *ud)
{
  struct by *b = ud;
  struct pollfd p[NBY];
  while (!__atomic_load_n(&b->stop_all, __ATOMIC_ACQUIRE)) {
    for (int i = 0; i < NBY; i++)
      p[i] = (struct pollfd){.fd = b->closed[i] ? -1 : b->c[i]->fd, .events = POLLIN};
    if (poll(p, NBY, 50) <= 0)
      continue;
    for (int i = 0; i < NBY; i++) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      while (sse_read_now(b->c[i]) > 0)
        ;
      by_take(b, i);
      if (b->c[i]->closed)
        __atomic_store_n(&b->closed[i], 1, __ATOMIC_RELEASE);
    }
  }
  return NULL;
}

static void *by_health(void *ud)
{
  struct by *b = ud;
  while (!__atomic_load_n(&b->stop_all, __ATOMIC_ACQUIRE)) {
    long long s = pc_now();
    if (health_ok(1000)) {
      long long now = pc_now();
      if (now - b->hl_last_ok > b->hl_gap)
        b->hl_gap = now - b->hl_last_ok;
      b->hl_last_ok = now;
      b->hl_ok++;
    } else {
      b->hl_fail++;
    }
    long long w = 100 - (pc_now() - s);
    if (w > 0)
      pc_sleep_ms((int)w);
  }
  long long now = pc_now(); /* unanswered until the end counts too */
  if (now - b->hl_last_ok > b->hl_gap)
    b->hl_gap = now - b->hl_last_ok;
  return NULL;
}

static void *by_rss(void *ud)
{
  struct by *b = ud;
  while (!__atomic_load_n(&b->stop_all, __ATOMIC_ACQUIRE)) {
    long k = pid_kib(b->worker, "VmRSS:");
    if (k > b->rss_peak)
      b->rss_peak = k;
    pc_sleep_ms(50);
  }
  return NULL;
}

/* 100 SSE clients on a fresh channel, each caught up; then the publisher,
 * the reader, the /health poller and the RSS sampler start */
static struct by *by_start(void)
{
  struct by *b = calloc(1, sizeof *b);
  snprintf(b->channel, sizeof b->channel, "%s", chan("market"));
  b->worker = pushd_worker_pid();
  for (int i = 0; i < NBY; i++) {
    char *tok = token_for(uniq("by"), "user");
    b->c[i] = sse_ok(b->channel, tok, NULL, NULL);
    free(tok);
  }
  for (int i = 0; i < NBY; i++) {
    cr_assert_not_null(sse_wait_idonly(b->c[i], T_SHORT), "bystander %d never caught up", i);
    sse_forget(b->c[i]);
  }
  b->rss_before = pid_kib(b->worker, "VmRSS:");
  b->rss_peak = b->rss_before;
  b->hl_start = b->hl_last_ok = b->t_start = pc_now();
  pthread_create(&b->trss, NULL, by_rss, b);
  pthread_create(&b->thl, NULL, by_health, b);
  pthread_create(&b->trd, NULL, by_reader, b);
  pthread_create(&b->tpub, NULL, by_publisher, b);
  return b;
}

static int cmp_evid(struct evid a, struct evid b)
{
  if (a.ms != b.ms)
    return a.ms < b.ms ? -1 : 1;
  return a.seq < b.seq ? -1 : a.seq > b.seq;
}

/* Ends the abuse's bystander side: stops publishing, publishes a marker and
 * waits until every client still open has it (30 s at most: only a bound
 * against a hang), so a duplicate or a stray however late is counted, stops
 * the threads, prints the COUNTS line with
 * `abuser` (what the abuser sent and got) and checks what every abuse must
 * keep. Frees b. */
static void by_stop(struct by *b, const char *name, const char *abuser)
{
  long long ran = pc_now() - b->t_start; /* a quick abuse: the bystanders' figures span 1 s */
  if (ran < BY_MIN_MS)
    pc_sleep_ms((int)(BY_MIN_MS - ran));
  __atomic_store_n(&b->stop_pub, 1, __ATOMIC_RELEASE);
  pthread_join(b->tpub, NULL);
  /* events on one channel come in order: what a client gets before the
   * marker is all it gets of the run's events */
  char *mark = publish_id(b->channel, "market_update", "{\"by_marker\":1}");
  cr_expect_not_null(mark, "%s: the marker could not be published", name);
  free(mark);
  long long end = pc_now() + 30000;
  for (;;) {
    int behind = 0;
    for (int i = 0; i < NBY; i++)
      behind += !__atomic_load_n(&b->closed[i], __ATOMIC_ACQUIRE) &&
                !__atomic_load_n(&b->marked[i], __ATOMIC_ACQUIRE);
    if (behind == 0 || pc_now() > end)
      break;
    pc_sleep_ms(20);
  }
  __atomic_store_n(&b->stop_all, 1, __ATOMIC_RELEASE);
  pthread_join(b->trd, NULL);
  pthread_join(b->thl, NULL);
  pthread_join(b->trss, NULL);

  int complete = 0;
  long dup = 0, lost = 0, ooo = 0, stray = 0;
  int *seen = calloc((size_t)b->npub + 1, sizeof *seen);
  for (int i = 0; i < NBY; i++) {
    memset(seen, 0, ((size_t)b->npub + 1) * sizeof *seen);
    long d = 0, l = 0, o = 0, s = 0;
    int last = -1;
    for (int k = 0; k < b->ngot[i]; k++) {
      int lo = 0, hi = b->npub - 1, at = -1;
      while (lo <= hi) {
        int mid = (lo + hi) / 2, c = cmp_evid(b->got[i][k], b->pub[mid]);
        if (c == 0) {
          at = mid;
          break;
        }
        if (c < 0)
          hi = mid - 1;
        else
          lo = mid + 1;
      }
      if (at < 0) {
        s++;
        continue;
      }
      if (seen[at]++)
        d++;
      if (at < last)
        o++;
      last = at;
    }
    for (int k = 0; k < b->npub; k++)
      l += seen[k] == 0;
    /* and it had the marker: nothing of the run can still be on its way */
    complete += d == 0 && l == 0 && o == 0 && s == 0 && b->marked[i];
    dup += d;
    lost += l;
    ooo += o;
    stray += s;
  }
  free(seen);
  long long p99 = p99_of(b->lat, b->nlat);
  long long pubp99 = p99_of(b->publat, (size_t)b->npub);
  fprintf(stderr,
          "COUNTS abuse %s: %s | bystanders %d/%d complete, dup=%ld lost=%ld out_of_order=%ld, "
          "p99 %lld ms (%d events each, %d publish failures, publish p99 %lld ms) | worker RSS "
          "before %ld KiB, peak %ld KiB (bound %ld) | health longest gap %lld ms (%d answered, %d not)\n",
          name, abuser, complete, NBY, dup, lost, ooo, p99, b->npub, b->pubfail, pubp99,
          b->rss_before, b->rss_peak, rss_bound(), b->hl_gap, b->hl_ok, b->hl_fail);
  long worker_now = pushd_worker_pid();
  cr_expect_eq(worker_now, b->worker, "%s: the worker died (pid %ld, now %ld)", name, b->worker,
               worker_now);
  cr_expect_gt(b->npub, 0, "%s: nothing was published", name);
  cr_expect_eq(complete, NBY, "%s: %d of %d bystanders got every event once, in order "
               "(dup %ld, lost %ld, out of order %ld, stray %ld)",
               name, complete, NBY, dup, lost, ooo, stray);
  cr_expect_lt(b->rss_peak, rss_bound(), "%s: the worker's RSS reached %ld KiB (bound %ld)", name,
               b->rss_peak, rss_bound());
  int healthy = 0;
  for (long long t = pc_now(); !healthy && pc_now() - t < 30000;)
    healthy = health_ok(T_SHORT);
  cr_expect(healthy, "%s: /health does not answer after the abuse", name);
  for (int i = 0; i < NBY; i++) {
    sse_close(b->c[i]);
    free(b->got[i]);
  }
  free(b->lat);
  free(b);
}

/* ------------------------------------------------------------------ */
/* many requests at once, each on its own connection                   */

struct tally {
  int n;
  int st[600];    /* answers by status */
  int closed;     /* ended (or reset) without an answer */
  int timeout;    /* no answer in 5 s */
  int problem;    /* non-2xx answers that were problem+json with that status */
  int streams;    /* 200 or 101: a stream was opened */
};

static struct sockaddr_in push_addr(void)
{
  int port = 0;
  sscanf(world_push_base(), "http://127.0.0.1:%d", &port);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  return a;
}

static int nb_connect(void)
{
  struct sockaddr_in a = push_addr();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

/* the request number i (malloc'd) */
typedef char *(*mkreq_fn)(int i, void *ud);

struct slot {
  int fd, i;
  char *req;
  size_t len, off;
  char *in;
  size_t inlen, incap;
  long long t0;
};

static void slot_done(struct slot *s, struct tally *t, int eof, int *kept, int *nkept, int maxkept)
{
  char *he = s->in ? strstr(s->in, "\r\n\r\n") : NULL;
  int status = 0;
  if (he && sscanf(s->in, "HTTP/1.%*d %d", &status) == 1 && status > 0 && status < 600) {
    t->st[status]++;
    if (status == 200 || status == 101) {
      t->streams++;
      if (kept && *nkept < maxkept) {
        kept[(*nkept)++] = s->fd;
        s->fd = -1;
      }
    } else {
      char ct[128];
      json_object *o = json_tokener_parse(he + 4);
      if (pc_header(s->in, "Content-Type", ct, sizeof ct) &&
          strstr(ct, "application/problem+json") && o && jget_int(o, "status") == status)
        t->problem++;
      json_object_put(o);
    }
  } else if (eof) {
    t->closed++;
  } else {
    t->timeout++;
  }
  if (s->fd >= 0)
    close(s->fd);
  free(s->req);
  free(s->in);
  memset(s, 0, sizeof *s);
  s->fd = -1;
}

/* is the answer in s->in whole? (a stream's head is enough) */
static int slot_whole(const struct slot *s)
{
  char *he = s->in ? strstr(s->in, "\r\n\r\n") : NULL;
  if (he == NULL)
    return 0;
  int status = 0;
  sscanf(s->in, "HTTP/1.%*d %d", &status);
  if (status == 200 || status == 101)
    return 1;
  char cl[32];
  if (pc_header(s->in, "Content-Length", cl, sizeof cl))
    return (size_t)(s->in + s->inlen - (he + 4)) >= (size_t)atol(cl);
  return 0;
}

/* Sends n requests made by mk, conc at a time, each on a new connection,
 * and tallies the answers. The sockets of streams (200, 101) are kept in
 * kept[] (up to maxkept) when kept is not NULL, else closed. */
static void burst(int n, int conc, mkreq_fn mk, void *ud, struct tally *t, int *kept, int *nkept,
                  int maxkept)
{
  struct slot *s = calloc((size_t)conc, sizeof *s);
  struct pollfd *p = calloc((size_t)conc, sizeof *p);
  for (int k = 0; k < conc; k++)
    s[k].fd = -1;
  int next = 0, active = 0;
  while (next < n || active > 0) {
    for (int k = 0; k < conc && next < n; k++) {
      if (s[k].fd >= 0)
        continue;
      s[k].fd = nb_connect();
      s[k].i = next;
      s[k].req = mk(next, ud);
      s[k].len = strlen(s[k].req);
      s[k].t0 = pc_now();
      next++;
      t->n++;
      if (s[k].fd < 0) {
        t->closed++;
        free(s[k].req);
        s[k].req = NULL;
        continue;
      }
      active++;
    }
    for (int k = 0; k < conc; k++)
      p[k] = (struct pollfd){.fd = s[k].fd,
                             .events = POLLIN | (s[k].off < s[k].len ? POLLOUT : 0)};
    poll(p, (nfds_t)conc, 100);
    for (int k = 0; k < conc; k++) {
      struct slot *x = &s[k];
      if (x->fd < 0)
        continue;
      int eof = 0;
      if ((p[k].revents & POLLOUT) && x->off < x->len) {
        ssize_t w = send(x->fd, x->req + x->off, x->len - x->off, MSG_NOSIGNAL);
        if (w > 0)
          x->off += (size_t)w;
        else if (w < 0 && errno != EAGAIN)
          x->off = x->len; /* the server stopped taking it: read what it said */
      }
      if (p[k].revents & (POLLIN | POLLHUP | POLLERR)) {
        for (;;) {
          if (x->incap - x->inlen < 4097) {
            x->incap = x->incap ? 2 * x->incap : 8192;
            x->in = realloc(x->in, x->incap);
          }
          ssize_t r = recv(x->fd, x->in + x->inlen, x->incap - x->inlen - 1, 0);
          if (r > 0) {
            x->inlen += (size_t)r;
            x->in[x->inlen] = '\0';
            continue;
          }
          if (r == 0 || (errno != EAGAIN && errno != EINTR))
            eof = 1;
          break;
        }
      }
      if (eof || slot_whole(x) || pc_now() - x->t0 > 5000) {
        slot_done(x, t, eof, kept, nkept, maxkept);
        active--;
      }
    }
  }
  free(s);
  free(p);
}

static void tally_str(const struct tally *t, char *out, size_t n)
{
  int o = snprintf(out, n, "sent=%d got=", t->n);
  for (int k = 0; k < 600 && (size_t)o < n; k++)
    if (t->st[k])
      o += snprintf(out + o, n - (size_t)o, "%d:%d ", k, t->st[k]);
  if ((size_t)o < n)
    snprintf(out + o, n - (size_t)o, "closed-without-answer:%d timeout:%d (problem+json %d)",
             t->closed, t->timeout, t->problem);
}

/* ------------------------------------------------------------------ */
/* 1. slowloris                                                        */

#define SLOW_N 2000
#define SLOW_HOLD_MS 12500 /* past push.header_timeout_s (10): it is an idle timeout */
#define SLOW_BYTE_MS 2500

Test(abuse, slowloris, .init = serial, .timeout = 200)
{
  long budget = fd_budget() - 600; /* bystanders, the world's own, a margin */
  int n = SLOW_N < budget ? SLOW_N : (int)budget;
  struct by *b = by_start();
  int *fd = malloc((size_t)n * sizeof *fd);
  static const char part[] = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  int connected = 0, closed = 0, answered = 0;
  for (int i = 0; i < n; i++)
    fd[i] = nb_connect();
  long long t0 = pc_now();
  for (int i = 0; i < n; i++) { /* each connected (the listen queue is 4096) */
    if (fd[i] < 0)
      continue;
    struct pollfd pf = {.fd = fd[i], .events = POLLOUT};
    int err = 0;
    socklen_t el = sizeof err;
    if (poll(&pf, 1, (int)(t0 + 20000 > pc_now() ? t0 + 20000 - pc_now() : 0)) != 1 ||
        getsockopt(fd[i], SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0 ||
        send(fd[i], part, sizeof part - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof part - 1)) {
      close(fd[i]);
      fd[i] = -1;
      continue;
    }
    connected++;
  }
  /* held: one more byte each every SLOW_BYTE_MS; what did the daemon do? */
  long long start = pc_now();
  while (pc_now() - start < SLOW_HOLD_MS) {
    pc_sleep_ms(SLOW_BYTE_MS);
    for (int i = 0; i < n; i++) {
      if (fd[i] < 0)
        continue;
      char buf[512];
      ssize_t r = recv(fd[i], buf, sizeof buf - 1, MSG_DONTWAIT);
      if (r > 0 || r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        answered += r > 0;
        closed++;
        close(fd[i]);
        fd[i] = -1;
        continue;
      }
      if (send(fd[i], "a", 1, MSG_NOSIGNAL) != 1) {
        closed++;
        close(fd[i]);
        fd[i] = -1;
      }
    }
  }
  /* /health while they are held (the cap is reached: it may wait) */
  int during = health_ok(1000);
  for (int i = 0; i < n; i++)
    if (fd[i] >= 0)
      close(fd[i]);
  free(fd);
  /* gone: new connections are taken again */
  long long r0 = pc_now();
  int after = 0;
  while (!after && pc_now() - r0 < 30000)
    after = health_ok(T_SHORT);
  long long took = pc_now() - r0;
  char *tok = token_for(uniq("after-slow"), "user");
  struct sse_client *fresh =
      sse_open(world_push_base(), "/events?channels=signals", tok, NULL, NULL, 0, T_LONG);
  int fresh_st = fresh ? fresh->status : -1;
  sse_close(fresh);
  free(tok);
  char ab[512];
  snprintf(ab, sizeof ab,
           "abuser sent=%d slowloris sockets%s (cap push.max_pending=%d), one byte each every "
           "%d ms for %d ms got=connected:%d closed-by-daemon:%d (answered:%d) /health while "
           "held:%s; after release /health in %lld ms, new SSE stream %d",
           n, n < SLOW_N ? " (scaled down: descriptor limit)" : "", MAX_PENDING, SLOW_BYTE_MS,
           SLOW_HOLD_MS, connected, closed, answered, during ? "answered" : "unanswered", took,
           fresh_st);
  by_stop(b, "slowloris", ab);
  cr_expect_eq(connected, n, "only %d of %d slowloris sockets connected", connected, n);
  cr_expect(after, "the worker never took a connection again after the slowloris");
  cr_expect_eq(fresh_st, 200, "a new SSE stream after the slowloris: %d", fresh_st);
}

/* ------------------------------------------------------------------ */
/* 2. 10,000 connection attempts of one user                           */

struct sse_req {
  const char *path;
  const char *token;
  int query_token; /* odd requests carry ?token= instead of the header */
  const char *kind; /* "sse", "ws", "poll" */
};

static char *mk_stream_req(int i, void *ud)
{
  const struct sse_req *q = ud;
  int qt = q->query_token && (i & 1);
  char *target = qt ? strf("%s%stoken=%s", q->path, strchr(q->path, '?') ? "&" : "?", q->token)
                    : strdup(q->path);
  char *auth = qt ? strdup("") : strf("Authorization: Bearer %s\r\n", q->token);
  char *r;
  if (strcmp(q->kind, "ws") == 0)
    r = strf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n%s\r\n",
             target, auth);
  else
    r = strf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
             "%sConnection: close\r\n\r\n",
             target, auth);
  free(target);
  free(auth);
  return r;
}

#define ATTEMPTS 10000

Test(abuse, connection_attempts_of_one_user, .init = serial, .timeout = 200)
{
  struct by *b = by_start();
  char *tok = token_for(uniq("many"), "user");
  char *path = strf("/events?channels=%s", chan("market"));
  struct sse_req q = {path, tok, 0, "sse"};
  struct tally t = {0};
  int kept[64], nkept = 0;
  long long t0 = pc_now();
  burst(ATTEMPTS, 50, mk_stream_req, &q, &t, kept, &nkept, 64);
  long long took = pc_now() - t0;
  char ts[512], ab[700];
  tally_str(&t, ts, sizeof ts);
  snprintf(ab, sizeof ab, "abuser (one user, SSE, 50 at a time, %lld ms) %s", took, ts);
  for (int i = 0; i < nkept; i++)
    close(kept[i]);
  by_stop(b, "connection-attempts", ab);
  cr_expect_eq(t.streams, PER_USER, "%d streams opened for one user (limit %d)", t.streams,
               PER_USER);
  cr_expect_eq(t.st[429] + t.st[503], ATTEMPTS - PER_USER, "refused with 429/503: %d of %d",
               t.st[429] + t.st[503], ATTEMPTS - PER_USER);
  cr_expect_eq(t.problem, t.st[429] + t.st[503], "refusals that were problem+json: %d",
               t.problem);
  free(path);
  free(tok);
}

/* ------------------------------------------------------------------ */
/* 3. 1 MiB WebSocket messages                                         */

#define BIG_EACH 10

Test(abuse, one_mib_websocket_messages, .init = serial, .timeout = 200)
{
  struct by *b = by_start();
  size_t n = 1u << 20;
  char *m = malloc(n);
  memset(m, ' ', n);
  m[0] = '{';
  m[n - 1] = '}';
  int codes[2][5000 + 1];
  memset(codes, 0, sizeof codes);
  int other = 0;
  for (int kind = 0; kind < 2; kind++)
    for (int i = 0; i < BIG_EACH; i++) {
      char *tok = token_for(uniq("big"), "user");
      struct ws_client *ws = ws_ok(tok);
      if (kind == 0) {
        ws_send_frame(ws, 1, 1, 1, m, n, T_LONG); /* the server stops reading: no check */
      } else {
        const size_t fr = 64 * 1024;
        for (size_t off = 0; off < n; off += fr)
          if (ws_send_frame(ws, off + fr >= n, off == 0 ? 1 : 0, 1, m + off, fr, T_LONG) < 0)
            break;
      }
      int code = ws_wait_close(ws, T_LONG);
      if (code >= 0 && code <= 5000)
        codes[kind][code]++;
      else
        other++;
      ws_close(ws);
      free(tok);
    }
  free(m);
  char ab[400];
  snprintf(ab, sizeof ab,
           "abuser sent=%d single-frame + %d fragmented (16 x 64 KiB) 1 MiB messages got=close "
           "1009: %d + %d, no close frame: %d + %d, other: %d",
           BIG_EACH, BIG_EACH, codes[0][1009], codes[1][1009], codes[0][0], codes[1][0],
           2 * BIG_EACH - codes[0][1009] - codes[1][1009] - codes[0][0] - codes[1][0]);
  by_stop(b, "1MiB-ws-messages", ab);
  cr_expect_eq(codes[0][1009], BIG_EACH, "single frame: %d of %d closed 1009", codes[0][1009],
               BIG_EACH);
  cr_expect_eq(codes[1][1009], BIG_EACH, "fragmented: %d of %d closed 1009", codes[1][1009],
               BIG_EACH);
}

/* ------------------------------------------------------------------ */
/* 4. fragmented messages never finished                               */

#define UNFIN_N 300
#define UNFIN_BYTES (60 * 1024)

Test(abuse, unfinished_fragmented_messages, .init = serial, .timeout = 200)
{
  struct by *b = by_start();
  char *frag = malloc(UNFIN_BYTES);
  memset(frag, ' ', UNFIN_BYTES);
  frag[0] = '{';
  struct ws_client *ws[UNFIN_N];
  int sent = 0;
  for (int i = 0; i < UNFIN_N; i++) {
    char *tok = token_for(uniq("unfin"), "user");
    ws[i] = ws_ok(tok);
    free(tok);
    sent += ws_send_frame(ws[i], 0, 1, 1, frag, UNFIN_BYTES, T_SHORT) == 0;
  }
  free(frag);
  long long t0 = pc_now();
  long rss_held = pid_kib(b->worker, "VmRSS:");
  /* then silence: they never answer the server's pings (every push.ping_s);
   * the bytes are read here without answering, to see the end */
  long long closed_at[UNFIN_N];
  int nclosed = 0, closeframes = 0;
  for (int i = 0; i < UNFIN_N; i++)
    closed_at[i] = -1;
  /* the contract is two ping intervals; 15 is only a bound against a hang */
  while (nclosed < UNFIN_N && pc_now() - t0 < 15 * PING_S * 1000) {
    struct pollfd p[UNFIN_N];
    for (int i = 0; i < UNFIN_N; i++)
      p[i] = (struct pollfd){.fd = closed_at[i] < 0 ? ws[i]->fd : -1, .events = POLLIN};
    if (poll(p, UNFIN_N, 100) <= 0)
      continue;
    for (int i = 0; i < UNFIN_N; i++) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      unsigned char buf[4096];
      ssize_t r = recv(ws[i]->fd, buf, sizeof buf, MSG_DONTWAIT);
      for (ssize_t k = 0; k + 1 < r; k++)
        closeframes += buf[k] == 0x88 && buf[k + 1] <= 125; /* roughly: a close frame */
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        closed_at[i] = pc_now() - t0;
        nclosed++;
      }
    }
  }
  long long first = -1, last = -1;
  for (int i = 0; i < UNFIN_N; i++)
    if (closed_at[i] >= 0) {
      if (first < 0 || closed_at[i] < first)
        first = closed_at[i];
      if (closed_at[i] > last)
        last = closed_at[i];
    }
  for (int i = 0; i < UNFIN_N; i++)
    ws_close(ws[i]);
  char ab[600];
  snprintf(ab, sizeof ab,
           "abuser sent=%d connections, each a first fragment of %d KiB then silence (pings "
           "unanswered, push.ping_s=%d) got=closed by the daemon: %d of %d (close frames seen "
           "~%d), first after %lld ms, last after %lld ms; worker RSS while all held %ld KiB",
           sent, UNFIN_BYTES / 1024, PING_S, nclosed, UNFIN_N, closeframes, first, last,
           rss_held);
  by_stop(b, "unfinished-fragments", ab);
  /* a client that sends nothing for two ping intervals is closed (PUSHD.md) */
  cr_expect_eq(nclosed, UNFIN_N, "%d of %d silent half-messages closed within %d s", nclosed,
               UNFIN_N, 15 * PING_S);
}

/* ------------------------------------------------------------------ */
/* 5. ping flood                                                       */

struct flooder {
  int fd;
  long long sent;
  int closed;
};

static void *flood_run(void *ud)
{
  struct flooder *f = ud;
  static const unsigned char ping[6] = {0x89, 0x80, 9, 8, 7, 6}; /* masked, empty */
  unsigned char burst_[6 * 512];
  for (size_t i = 0; i < sizeof burst_; i += 6)
    memcpy(burst_ + i, ping, 6);
  long long t0 = pc_now();
  while (pc_now() - t0 < 3000) {
    ssize_t n = send(f->fd, burst_, sizeof burst_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0)
      f->sent += n / 6;
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      f->closed = 1;
      break;
    }
    if (n <= 0)
      pc_sleep_ms(1);
  }
  for (long long end = pc_now() + 3000; !f->closed && pc_now() < end;) {
    char sink[65536];
    ssize_t r = recv(f->fd, sink, sizeof sink, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
      f->closed = 1;
    else if (r < 0)
      pc_sleep_ms(20);
  }
  return NULL;
}

Test(abuse, ping_flood, .init = serial, .timeout = 200)
{
  struct by *b = by_start();
  char *tok = token_for(uniq("flooder"), "user");
  struct ws_client *ws = ws_ok(tok);
  struct flooder f = {.fd = ws->fd};
  pthread_t th;
  pthread_create(&th, NULL, flood_run, &f);
  pthread_join(th, NULL);
  char ab[300];
  snprintf(ab, sizeof ab, "abuser sent=%lld pings in 3 s, never reading got=%s", f.sent,
           f.closed ? "closed" : "still open");
  ws_close(ws);
  free(tok);
  by_stop(b, "ping-flood", ab);
  cr_expect(f.closed, "the ping flooder was never closed");
}

/* ------------------------------------------------------------------ */
/* 6. subscribe/unsubscribe storm                                      */

static int ws_raw_text(int fd, const char *text)
{
  size_t len = strlen(text);
  unsigned char f[512];
  if (len > 125 + 200)
    return -1;
  size_t o = 0;
  f[o++] = 0x81;
  if (len <= 125) {
    f[o++] = (unsigned char)(0x80 | len);
  } else {
    f[o++] = 0x80 | 126;
    f[o++] = (unsigned char)(len >> 8);
    f[o++] = (unsigned char)len;
  }
  static const unsigned char mk[4] = {0x11, 0x22, 0x33, 0x44};
  memcpy(f + o, mk, 4);
  o += 4;
  for (size_t i = 0; i < len; i++)
    f[o + i] = (unsigned char)text[i] ^ mk[i % 4];
  o += len;
  size_t off = 0;
  while (off < o) {
    ssize_t w = send(fd, f + off, o - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += (size_t)w;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      if (poll(&p, 1, 1000) != 1)
        return -1;
    } else {
      return -1;
    }
  }
  return 0;
}

struct rx {
  unsigned char *in;
  size_t len, cap;
  long texts, subscribed, unsubscribed, limited, others, pings;
  int eof, close_code;
};

/* reads what is there; counts the server's frames by kind */
static void rx_pump(struct rx *x, int fd, int timeout_ms)
{
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (x->eof || poll(&p, 1, timeout_ms) != 1)
    return;
  for (;;) {
    if (x->cap - x->len < 65536) {
      x->cap = x->cap ? 2 * x->cap : 262144;
      x->in = realloc(x->in, x->cap);
    }
    ssize_t r = recv(fd, x->in + x->len, x->cap - x->len, MSG_DONTWAIT);
    if (r > 0) {
      x->len += (size_t)r;
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
      x->eof = 1;
    break;
  }
  size_t o = 0;
  while (x->len - o >= 2) {
    unsigned char *f = x->in + o;
    size_t hl = 2, pl = f[1] & 0x7f;
    if (pl == 126) {
      if (x->len - o < 4)
        break;
      pl = ((size_t)f[2] << 8) | f[3];
      hl = 4;
    } else if (pl == 127) {
      if (x->len - o < 10)
        break;
      pl = 0;
      for (int i = 0; i < 8; i++)
        pl = (pl << 8) | f[2 + i];
      hl = 10;
    }
    if (x->len - o < hl + pl)
      break;
    int op = f[0] & 0x0f;
    if (op == 1) {
      x->texts++;
      char *t = strndup((char *)f + hl, pl);
      if (strstr(t, "\"rate_limited\""))
        x->limited++;
      else if (strstr(t, "\"type\":\"subscribed\""))
        x->subscribed++;
      else if (strstr(t, "\"type\":\"unsubscribed\""))
        x->unsubscribed++;
      else
        x->others++;
      free(t);
    } else if (op == 9) {
      x->pings++; /* answered: this client is not a silent one */
      static const unsigned char pong[6] = {0x8a, 0x80, 1, 2, 3, 4};
      if (send(fd, pong, sizeof pong, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof pong)
        x->eof = x->eof || errno != EAGAIN;
    } else if (op == 8) {
      x->close_code = pl >= 2 ? (f[hl] << 8) | f[hl + 1] : 1005;
    }
    o += hl + pl;
  }
  memmove(x->in, x->in + o, x->len - o);
  x->len -= o;
}

#define STORM_PER_S 10000
#define STORM_S 3

Test(abuse, subscribe_storm, .init = serial, .timeout = 200)
{
  struct by *b = by_start();
  char *tok = token_for(uniq("storm"), "user");
  struct ws_client *ws = ws_ok(tok);
  const char *ch = chan("market");
  char *sub = strf("{\"action\":\"subscribe\",\"channels\":[\"%s\"]}", ch);
  char *unsub = strf("{\"action\":\"unsubscribe\",\"channels\":[\"%s\"]}", ch);
  struct rx x = {0};
  long sent = 0;
  int send_failed = 0;
  long long t0 = pc_now();
  while (pc_now() - t0 < STORM_S * 1000 && !send_failed) {
    /* 10 messages a millisecond, on the clock */
    long due = (long)((pc_now() - t0) * STORM_PER_S / 1000);
    while (sent < due && sent < (long)STORM_PER_S * STORM_S) {
      if (ws_raw_text(ws->fd, sent & 1 ? unsub : sub) < 0) {
        send_failed = 1;
        break;
      }
      sent++;
    }
    rx_pump(&x, ws->fd, 0);
    pc_sleep_ms(1);
  }
  long long took = pc_now() - t0;
  /* One connection's messages are answered in order, so the pong to a ping
   * sent after the storm is the marker after every answer to it (no quiet
   * window). A ping counts against the limit too: one goes every 1.1 s (the
   * limit's one-second window, the contract) until one is answered with a
   * pong; those before it may be refused. 30 s bound only a hang. */
  int alive = 1, npings = 0;
  long long end = pc_now() + 30000, next_ping = pc_now() + 1100;
  while (x.others == 0 && !x.eof && pc_now() < end) {
    if (pc_now() >= next_ping) {
      alive = alive && ws_raw_text(ws->fd, "{\"action\":\"ping\"}") == 0;
      npings++;
      next_ping = pc_now() + 1100;
    }
    rx_pump(&x, ws->fd, 100);
  }
  long long span = pc_now() - t0; /* from the first message to the pong */
  alive = alive && x.others > 0 && !x.eof;
  /* at the pong: every storm message answered; of the pings, at most
   * npings - 1 refused before it (and none answered after it yet counted) */
  long answers = x.texts - npings, limited = x.limited, others = x.others;
  char ab[500];
  snprintf(ab, sizeof ab,
           "abuser sent=%ld subscribe/unsubscribe in %lld ms (one WebSocket) got=answers:%ld "
           "subscribed:%ld unsubscribed:%ld rate_limited:%ld other:%ld; connection %s, close "
           "code %d",
           sent, took, answers, x.subscribed, x.unsubscribed, limited, others,
           alive ? "stays (ping answered)" : "lost", x.close_code);
  ws_close(ws);
  free(x.in);
  free(sub);
  free(unsub);
  free(tok);
  by_stop(b, "subscribe-storm", ab);
  cr_expect(alive, "the storming connection was lost");
  /* every message past 50 in a clock second is refused, one answer each; a
   * handled subscribe whose unsubscribe came before Redis confirmed it gets
   * no "subscribed" (its job is dropped): only those may go unanswered */
  long handled = sent - (limited - (npings - 1)); /* an upper bound: pings refused at most */
  long windows = (long)(span / 1000) + 2; /* the seconds the run spans, and the partial ones */
  cr_expect_leq(handled, 50 * windows, "%ld messages handled in %lld ms (%ld windows)", handled,
                span, windows);
  cr_expect_geq(answers, sent - handled / 2 - 1, "%ld answers to %ld messages", answers, sent);
  cr_expect_eq(others, 1, "unexpected messages: %ld", others - 1);
}

/* ------------------------------------------------------------------ */
/* 7. history reads over 64 channels from an hour back                 */

/* A page of a history read over 64 channels is 31 events, and each costs a
 * script that looks at 32 entries of each channel (pushd/resume.c,
 * page_for): 64 channels of 1,000 events are about 2,000 scripts per
 * reader, 1 to 2 minutes each here. So the 50 readers read channels of
 * HIST_WIDE_PER events (scaled down for time, said in the line); the deep
 * history (HIST_PER_CHAN = history.maxlen events on each channel) is read
 * by one reader for HIST_DEEP_MS, for its figures only. */
#define HIST_CH 64
#define HIST_READERS 50
#define HIST_WIDE_PER 20
#define HIST_DEEP_MS 5000

struct rping {
  struct sortie_redis *r;
  int stop;
  long long max_ms, n;
};

static void *redis_pinger(void *ud)
{
  struct rping *p = ud;
  while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
    const char *av[] = {"PING"};
    long long s = pc_now();
    sortie_reply_free(sortie_redis_cmd(p->r, SORTIE_REDIS_IDEMPOTENT, 1, av, NULL));
    long long d = pc_now() - s;
    if (d > p->max_ms)
      p->max_ms = d;
    p->n++;
    pc_sleep_ms(20);
  }
  return NULL;
}

/* 64 fresh market channels, "a,b,..." in *list (malloc'd), each with `per`
 * events published through the script POST /api/publish runs, round by
 * round (ids are Redis time: now). Returns how many were published. */
static int hist_fill(struct sortie_redis *r, char chs[HIST_CH][64], char **list, int per)
{
  size_t listlen = 0;
  for (int k = 0; k < HIST_CH; k++) {
    snprintf(chs[k], sizeof chs[k], "market:%s", uniq("HIST"));
    listlen += strlen(chs[k]) + 1;
  }
  *list = calloc(1, listlen + 1);
  for (int k = 0; k < HIST_CH; k++) {
    if (k)
      strcat(*list, ",");
    strcat(*list, chs[k]);
  }
  int filled = 0;
  for (int j = 0; j < per; j++)
    for (int k = 0; k < HIST_CH; k++) {
      char d[32];
      snprintf(d, sizeof d, "{\"j\":%d}", j);
      const char *av[] = {chs[k], "market_update", d};
      sortie_reply *rep = sortie_redis_script(r, SORTIE_LUA_PUBLISH, 0, 3, av, NULL);
      const sortie_reply *st = rep ? sortie_reply_at(rep, 0) : NULL;
      filled += st && sortie_reply_int(st) == 201;
      sortie_reply_free(rep);
    }
  return filled;
}

struct hread {
  struct sse_client *c;
  long got, resets, disorder;
  int done;
  struct evid last;
};

/* Reads the streams until each has `want` events, says it is caught up, or
 * ends; or until max_ms. Returns the time taken. */
static long long hist_read(struct hread *h, int n, long want, int max_ms)
{
  long long t0 = pc_now();
  int ndone = 0;
  for (int i = 0; i < n; i++)
    ndone += h[i].done;
  struct pollfd p[HIST_READERS];
  while (ndone < n && pc_now() - t0 < max_ms) {
    for (int i = 0; i < n; i++)
      p[i] = (struct pollfd){.fd = h[i].done ? -1 : h[i].c->fd, .events = POLLIN};
    if (poll(p, (nfds_t)n, 100) <= 0)
      continue;
    for (int i = 0; i < n; i++) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      struct sse_client *c = h[i].c;
      sse_read_now(c);
      int caught_up = 0;
      for (size_t k = 0; k < c->nmsgs; k++) {
        const struct sse_msg *m = &c->msgs[k];
        if (m->data == NULL) {
          caught_up |= m->id != NULL && m->event == NULL;
          continue;
        }
        if (m->event && strcmp(m->event, "reset") == 0) {
          h[i].resets++;
          continue;
        }
        struct evid e = {0, 0};
        parse_id(m->id, &e.ms, &e.seq);
        h[i].disorder += cmp_evid(e, h[i].last) <= 0;
        h[i].last = e;
        h[i].got++;
      }
      sse_forget(c);
      if (caught_up || h[i].got >= want || c->closed) {
        h[i].done = 1;
        ndone++;
      }
    }
  }
  return pc_now() - t0;
}

Test(abuse, history_reads_over_64_channels, .init = serial, .timeout = 200)
{
  static struct sortie_cfg cfg;
  char err[512];
  cr_assert_eq(sortie_cfg_load(&cfg, world_conf(), err, sizeof err), 0, "%s", err);
  cr_assert_eq(sortie_cfg_load_secrets(&cfg, err, sizeof err), 0, "%s", err);
  struct sortie_redis *r = sortie_redis_new(&cfg);
  char deep[HIST_CH][64], wide[HIST_CH][64];
  char *deep_list, *wide_list;
  long long f0 = pc_now();
  int filled = hist_fill(r, deep, &deep_list, HIST_PER_CHAN);
  filled += hist_fill(r, wide, &wide_list, HIST_WIDE_PER);
  long long fill_ms = pc_now() - f0;
  cr_assert_eq(filled, HIST_CH * (HIST_PER_CHAN + HIST_WIDE_PER), "only %d events filled",
               filled);
  /* a cursor an hour back: older than every event, younger than
   * history.max_age_s, so each read starts at its channel's beginning */
  char cursor[48];
  snprintf(cursor, sizeof cursor, "%lld-0", real_ms() - 3600 * 1000LL);
  char *toks[HIST_READERS / PER_USER + 1];
  for (int u = 0; u <= HIST_READERS / PER_USER; u++)
    toks[u] = token_for(uniq("hist"), "user");

  struct by *b = by_start();
  struct rping rp = {.r = sortie_redis_new(&cfg)};
  pthread_t tp;
  pthread_create(&tp, NULL, redis_pinger, &rp);
  /* the deep history, one reader, for its figures */
  char *path = strf("/events?channels=%s&cursor=%s", deep_list, cursor);
  struct hread dh = {.c = sse_open(world_push_base(), path, toks[HIST_READERS / PER_USER], NULL,
                                   NULL, 0, T_LONG)};
  free(path);
  dh.done = !(dh.c && dh.c->status == 200);
  hist_read(&dh, 1, (long)HIST_CH * HIST_PER_CHAN, HIST_DEEP_MS);
  long long deep_ping = rp.max_ms;
  sse_close(dh.c);
  /* 50 readers at once over the wide channels */
  path = strf("/events?channels=%s&cursor=%s", wide_list, cursor);
  struct hread h[HIST_READERS];
  memset(h, 0, sizeof h);
  int opened = 0;
  for (int i = 0; i < HIST_READERS; i++) {
    h[i].c = sse_open(world_push_base(), path, toks[i / PER_USER], NULL, NULL, 0, T_LONG);
    h[i].done = !(h[i].c && h[i].c->status == 200);
    opened += !h[i].done;
  }
  free(path);
  const long want = (long)HIST_CH * HIST_WIDE_PER;
  long long took = hist_read(h, HIST_READERS, want, 45000);
  __atomic_store_n(&rp.stop, 1, __ATOMIC_RELEASE);
  pthread_join(tp, NULL);
  long total = 0, resets = 0, disorder = 0;
  int complete = 0;
  for (int i = 0; i < HIST_READERS; i++) {
    total += h[i].got;
    resets += h[i].resets;
    disorder += h[i].disorder;
    complete += h[i].got == want;
    sse_close(h[i].c);
  }
  for (int u = 0; u <= HIST_READERS / PER_USER; u++)
    free(toks[u]);
  char ab[900];
  snprintf(ab, sizeof ab,
           "abuser sent=%d SSE streams at once (%d users) each on %d channels from %s (%d events "
           "per channel: scaled down from %d for time) got=opened:%d complete:%d events:%ld of "
           "%ld resets:%ld out-of-order:%ld in %lld ms; Redis PING longest %lld ms (%lld pings); "
           "one reader of %d channels x %d events: %ld events in %d ms (Redis PING longest %lld "
           "ms then); fill of %d events %lld ms",
           HIST_READERS, HIST_READERS / PER_USER, HIST_CH, cursor, HIST_WIDE_PER, HIST_PER_CHAN,
           opened, complete, total, want * HIST_READERS, resets + dh.resets, disorder + dh.disorder,
           took, rp.max_ms, rp.n, HIST_CH, HIST_PER_CHAN, dh.got, HIST_DEEP_MS, deep_ping, filled,
           fill_ms);
  by_stop(b, "history-64-channels", ab);
  sortie_redis_free(rp.r);
  sortie_redis_free(r);
  free(deep_list);
  free(wide_list);
  cr_expect_eq(opened, HIST_READERS, "%d of %d history streams opened", opened, HIST_READERS);
  cr_expect_eq(complete, HIST_READERS, "%d of %d history reads complete (%ld events of %ld)",
               complete, HIST_READERS, total, want * HIST_READERS);
  cr_expect_eq(resets + dh.resets, 0, "resets");
  cr_expect_eq(disorder + dh.disorder, 0, "events out of order");
}

/* ------------------------------------------------------------------ */
/* 8. forged tokens                                                    */

static void b64url(const char *in, char *out)
{
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t n = strlen(in), o = 0;
  const unsigned char *s = (const unsigned char *)in;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                 (i + 2 < n ? s[i + 2] : 0);
    out[o++] = t[(v >> 18) & 63];
    out[o++] = t[(v >> 12) & 63];
    if (i + 1 < n)
      out[o++] = t[(v >> 6) & 63];
    if (i + 2 < n)
      out[o++] = t[v & 63];
  }
  out[o] = '\0';
}

#define FORGED_EACH 1000

Test(abuse, forged_tokens, .init = serial, .timeout = 200)
{
  struct by *b = by_start();
  long now = (long)now_s();
  char *forged[6];
  const char *kinds[6] = {"expired", "alg-none", "other-key", "garbage", "nbf-not-integer",
                          "iat-not-integer"};
  char subs[6][96];
  for (int k = 0; k < 6; k++) /* one user per kind: a kind let in takes no slot of another */
    snprintf(subs[k], sizeof subs[k], "%s", uniq("forger"));
  const char *sub = subs[0];
  forged[0] = token_custom(sub, "user", now - 7200, now - 120);
  char h[128], p[256];
  b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", h);
  char *claims = strf("{\"sub\":\"%s\",\"role\":\"admin\",\"exp\":%ld}", sub, now + 3600);
  b64url(claims, p);
  free(claims);
  forged[1] = strf("%s.%s.", h, p);
  sub = subs[2];
  static const unsigned char other[40] = "another key, not the world's own secret";
  forged[2] = sortie_auth_mint("HS256", other, sizeof other, sub, "user", now, now + 3600);
  forged[3] = strdup("garbage.not-a-token.at_all");
  sub = subs[4];
  claims = strf("{\"sub\":\"%s\",\"exp\":%ld,\"nbf\":\"soon\"}", sub, now + 3600);
  forged[4] = token_claims(claims);
  free(claims);
  sub = subs[5];
  claims = strf("{\"sub\":\"%s\",\"exp\":%ld,\"iat\":1.5e300}", sub, now + 3600);
  forged[5] = token_claims(claims);
  free(claims);
  for (int k = 0; k < 6; k++)
    cr_assert_not_null(forged[k], "token %s", kinds[k]);
  const char *ch = chan("market");
  char *sse_path = strf("/events?channels=%s", ch);
  char *poll_path = strf("/poll?channels=%s&timeout=0", ch);
  struct {
    const char *kind, *path;
  } tr[3] = {{"sse", sse_path}, {"ws", "/ws"}, {"poll", poll_path}};
  char ab[4000];
  int o = snprintf(ab, sizeof ab, "abuser sent=%d per token kind and transport (half with "
                   "?token=) got=", FORGED_EACH);
  struct tally all = {0};
  int bad[6][3];
  int kept[64], nkept = 0;
  for (int k = 0; k < 6; k++)
    for (int x = 0; x < 3; x++) {
      struct sse_req q = {tr[x].path, forged[k], 1, tr[x].kind};
      struct tally t = {0};
      burst(FORGED_EACH, 50, mk_stream_req, &q, &t, kept, &nkept, 64);
      for (int i = 0; i < nkept; i++)
        close(kept[i]);
      nkept = 0;
      bad[k][x] = t.n - t.st[401];
      all.n += t.n;
      all.st[401] += t.st[401];
      all.streams += t.streams;
      all.problem += t.problem;
      if (t.st[401] != t.n || t.problem != t.n) {
        char ts[300];
        tally_str(&t, ts, sizeof ts);
        o += snprintf(ab + o, sizeof ab - (size_t)o, "[%s/%s: %s] ", kinds[k], tr[x].kind, ts);
      }
    }
  for (int i = 0; i < nkept; i++)
    close(kept[i]);
  snprintf(ab + o, sizeof ab - (size_t)o, "401:%d of %d, problem+json:%d, streams:%d", all.st[401],
           all.n, all.problem, all.streams);
  by_stop(b, "forged-tokens", ab);
  /* a non-integer nbf or iat ("soon", 1.5e300) was let in: libjwt's
   * jwt_get_grant_int reads it as 0, a time long past (lib/auth.c) */
  for (int k = 0; k < 6; k++)
    for (int x = 0; x < 3; x++)
      cr_expect_eq(bad[k][x], 0, "%s token on %s: %d of %d not 401", kinds[k], tr[x].kind,
                   bad[k][x], FORGED_EACH);
  cr_expect_eq(all.problem, all.n, "%d of %d refusals were problem+json", all.problem, all.n);
  cr_expect_eq(all.streams, 0, "%d forged tokens got a stream", all.streams);
  for (int k = 0; k < 6; k++)
    free(forged[k]);
  free(sse_path);
  free(poll_path);
}

/* ------------------------------------------------------------------ */
/* 9. another user's channels on every transport                       */

#define OTHER_EACH 20

Test(abuse, another_users_channels, .init = serial, .timeout = 200)
{
  struct by *b = by_start();
  const char *victim = uniq("victim");
  char *tok = token_for(uniq("snoop"), "user");
  char *vtok = token_for(victim, "user");
  char *lists[3] = {strf("user:%s", victim), strf("%s,user:%s", chan("market"), victim),
                    strdup("admin")};
  int expect = 0, got403 = 0, streams = 0, ws_forbidden = 0, ws_other = 0, api403 = 0;
  int kept[8], nkept = 0;
  char detail[600] = "";
  int o = 0;
  for (int v = 0; v < 3; v++) {
    /* SSE and /poll on the daemon */
    for (int x = 0; x < 2; x++) {
      char *path = strf(x ? "/poll?channels=%s&timeout=0" : "/events?channels=%s", lists[v]);
      struct sse_req q = {path, tok, 1, x ? "poll" : "sse"};
      struct tally t = {0};
      burst(OTHER_EACH, 10, mk_stream_req, &q, &t, kept, &nkept, 8);
      expect += t.n;
      got403 += t.st[403];
      streams += t.streams;
      if (t.st[403] != t.n)
        o += snprintf(detail + o, sizeof detail - (size_t)o, "[%s %s: %d of %d 403] ",
                      x ? "poll" : "sse", lists[v], t.st[403], t.n);
      free(path);
    }
    /* /api/events through Apache */
    for (int i = 0; i < OTHER_EACH; i++) {
      char *path = strf("/api/events?channels=%s", lists[v]);
      struct http_resp r;
      http("GET", path, tok, NULL, NULL, NULL, &r);
      api403 += r.status == 403;
      http_free(&r);
      free(path);
    }
  }
  for (int i = 0; i < nkept; i++)
    close(kept[i]);
  /* WebSocket subscribes: OTHER_EACH per channel list, one connection each
   * (under the 50 messages a second) */
  struct ws_client *ws[3];
  for (int v = 0; v < 3; v++) {
    ws[v] = ws_ok(tok);
    char *arr = strdup(lists[v]);
    char js[512];
    int jo = snprintf(js, sizeof js, "[");
    for (char *s = strtok(arr, ","); s; s = strtok(NULL, ","))
      jo += snprintf(js + jo, sizeof js - (size_t)jo, "%s\"%s\"", jo > 1 ? "," : "", s);
    snprintf(js + jo, sizeof js - (size_t)jo, "]");
    free(arr);
    for (int i = 0; i < OTHER_EACH; i++)
      ws_sendf(ws[v], "{\"action\":\"subscribe\",\"channels\":%s}", js);
    for (int i = 0; i < OTHER_EACH; i++) {
      json_object *e = ws_next_json(ws[v], T_SHORT);
      const char *ty = e ? jget_str(e, "type") : NULL, *code = e ? jget_str(e, "code") : NULL;
      if (ty && strcmp(ty, "error") == 0 && code && strcmp(code, "forbidden") == 0)
        ws_forbidden++;
      else
        ws_other++;
      json_object_put(e);
    }
  }
  /* the victim's own events: none reaches the snoop */
  char *vch = strf("user:%s", victim);
  free(publish_id(vch, "notification", "{\"secret\":1}"));
  int leaked = 0;
  for (int v = 0; v < 3; v++) {
    const char *t = ws_next_text(ws[v], 500);
    leaked += t != NULL;
    ws_close(ws[v]);
  }
  char ab[1000];
  snprintf(ab, sizeof ab,
           "abuser sent=%d SSE+poll requests, %d /api/events, %d WS subscribes (user:VICTIM, "
           "a market and user:VICTIM, admin) got=SSE/poll 403:%d streams:%d, /api/events "
           "403:%d, WS forbidden:%d other:%d, victim's event delivered to the snoop:%d %s",
           expect, 3 * OTHER_EACH, 3 * OTHER_EACH, got403, streams, api403, ws_forbidden,
           ws_other, leaked, detail);
  by_stop(b, "another-users-channels", ab);
  cr_expect_eq(got403, expect, "SSE/poll: %d of %d were 403", got403, expect);
  cr_expect_eq(streams, 0);
  cr_expect_eq(api403, 3 * OTHER_EACH, "/api/events: %d of %d were 403", api403,
               3 * OTHER_EACH);
  cr_expect_eq(ws_forbidden, 3 * OTHER_EACH, "WS: %d of %d forbidden", ws_forbidden,
               3 * OTHER_EACH);
  cr_expect_eq(leaked, 0, "the snoop received %d messages", leaked);
  for (int v = 0; v < 3; v++)
    free(lists[v]);
  free(vch);
  free(vtok);
  free(tok);
}

/* ------------------------------------------------------------------ */
/* 10. oversized heads and query strings                               */

struct big_req {
  int kind;
  const char *token, *channel;
};

static char *mk_big_req(int i, void *ud)
{
  (void)i;
  const struct big_req *q = ud;
  size_t big = 100 * 1024;
  char *pad = malloc(big + 1);
  memset(pad, 'a', big);
  pad[big] = '\0';
  char *r;
  if (q->kind == 0) {
    r = strf("GET /events?channels=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
             "%s\r\nX-Big: %s\r\nConnection: close\r\n\r\n",
             q->channel, q->token, pad);
  } else if (q->kind == 1) {
    size_t cap = 1000 * 32, o = 0;
    char *hs = malloc(cap);
    for (int k = 0; k < 1000; k++)
      o += (size_t)snprintf(hs + o, cap - o, "X-H%d: v%d\r\n", k, k);
    r = strf("GET /events?channels=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
             "%s\r\n%sConnection: close\r\n\r\n",
             q->channel, q->token, hs);
    free(hs);
  } else {
    r = strf("GET /events?channels=%s&pad=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
             "Bearer %s\r\nConnection: close\r\n\r\n",
             q->channel, pad, q->token);
  }
  free(pad);
  return r;
}

#define BIG_REQS 30

Test(abuse, oversized_heads, .init = serial, .timeout = 200)
{
  struct by *b = by_start();
  char *tok = token_for(uniq("bighead"), "user");
  const char *names[3] = {"one 100 KiB header", "1,000 headers", "100 KiB query string"};
  struct tally t[3];
  char ab[1200];
  int o = snprintf(ab, sizeof ab, "abuser sent=%d of each ", BIG_REQS);
  int kept[8], nkept = 0, streams = 0;
  for (int k = 0; k < 3; k++) {
    struct big_req q = {k, tok, chan("market")};
    memset(&t[k], 0, sizeof t[k]);
    burst(BIG_REQS, 10, mk_big_req, &q, &t[k], kept, &nkept, 8);
    char ts[300];
    tally_str(&t[k], ts, sizeof ts);
    o += snprintf(ab + o, sizeof ab - (size_t)o, "[%s: %s] ", names[k], ts);
    streams += t[k].streams;
  }
  for (int i = 0; i < nkept; i++)
    close(kept[i]);
  by_stop(b, "oversized-heads", ab);
  for (int k = 0; k < 3; k++) {
    int refused = t[k].st[400] + t[k].st[413] + t[k].st[414] + t[k].st[431] + t[k].closed;
    cr_expect_eq(refused, BIG_REQS, "%s: %d of %d refused (400/413/414/431 or closed)",
                 names[k], refused, BIG_REQS);
  }
  cr_expect_eq(streams, 0, "%d oversized requests got a stream", streams);
  free(tok);
}

/* ------------------------------------------------------------------ */
/* 11. bad cursors on /api/events                                      */

Test(abuse, bad_cursors_on_api_events, .init = serial, .timeout = 200)
{
  struct by *b = by_start();
  char *tok = token_for(uniq("cursor"), "user");
  char c200[201];
  memset(c200, '7', 200);
  c200[200] = '\0';
  const char *bad[] = {"abc", "1-", "-1", "99999999999999999999999-0", c200};
  const int nbad = (int)(sizeof bad / sizeof bad[0]);
  int ok400 = 0, n = 0;
  char detail[600] = "";
  int o = 0;
  for (int k = 0; k < nbad; k++)
    for (int rep = 0; rep < 3; rep++) {
      char *path = strf("/api/events?channels=%s&cursor=%s", b->channel, bad[k]);
      struct http_resp r;
      http("GET", path, tok, NULL, NULL, NULL, &r);
      char ct[128];
      int good = r.status == 400 && http_header(&r, "Content-Type", ct, sizeof ct) &&
                 strstr(ct, "application/problem+json") && r.json &&
                 jget_int(r.json, "status") == 400;
      ok400 += good;
      n++;
      if (!good && rep == 0)
        o += snprintf(detail + o, sizeof detail - (size_t)o, "[%.30s: %ld] ", bad[k], r.status);
      http_free(&r);
      free(path);
    }
  char ab[800];
  snprintf(ab, sizeof ab, "abuser sent=%d /api/events with %d malformed cursors got=400 "
           "problem+json:%d %s",
           n, nbad, ok400, detail);
  by_stop(b, "bad-cursors", ab);
  cr_expect_eq(ok400, n, "%d of %d bad cursors answered 400 problem+json", ok400, n);
  free(tok);
}
