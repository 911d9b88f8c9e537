/* bench/fanout: many subscribers on one channel, for measuring a push server
 * (sortie-pushd, or a peer: nchan, bench/bare.c).
 *
 *   fanout -h HOST -p PORT -t sse|ws -n SUBSCRIBERS -c CHANNEL -k TOKEN
 *          [-s sortie|nchan|bare] [-d SECONDS] [-i] [-q PATH_PREFIX] [-b SOURCE_ADDRESS]
 *          [-K TOKENS_FILE]
 *          [-S STEPS [-L P99_LIMIT_MS] [-T RETRIES] [-C PIDS] [-R PIDS] -- PUBLISHER ARGS...]
 *
 * Opens n connections, waits until all are subscribed, then counts every
 * event received for -d seconds and the latency of each: receipt time minus
 * the publish time that bench/publish puts at the start of the event's data
 * ("p":"<ms>-xxx", the time the event was due by the publisher's schedule,
 * wall clock, same machine), read the same way whatever the server. Output: one line of key=value pairs.
 *
 * Servers (-s): sortie (default) is GET /events?channels=C, or GET /ws and a
 * subscribe message, with the token in an Authorization header; a stream is
 * live at the id-only message (SSE) or the "subscribed" answer (WS). nchan
 * and bare are one URL per channel, GET /sub?c=C, as SSE or WebSocket; an SSE
 * stream is live at its first comment line, a WebSocket at its 101.
 *
 * -K: a file of tokens, one a line; connection i uses line i modulo their
 * number (instead of -k's one token for all): distinct users, for the
 * presence bench (bench/run.sh presence).
 *
 * With -i it only holds the connections (idle) until stdin closes, printing
 * "ready" once all are open. -b binds the client side to another loopback
 * address (127.0.0.2, ...): one source address has only about 28,000 ports
 * towards one server port.
 *
 * Sweep (-S 20000,50000,...: deliveries per second): once subscribed, runs
 * the publisher given after "--" once per step, with "-r RATE -d SECONDS"
 * added (RATE = the step's deliveries / n events a second), and stops at the
 * first step that fails: an event lost or repeated, a subscriber dropped, p99
 * at or over -L ms, or a publisher that could not keep its schedule. With
 * -T N a step that failed on p99 alone, under 1.5 times the limit, is run again,
 * up to N more times, before it counts as failed (this machine is shared:
 * one other process's burst can put a single step's p99 over the limit). One "step" line per run of a step (with the CPU that the processes of -C (the server),
 * -R (Redis), this client and the publisher used, in % of one core), then
 * one "sweep" line: the last rate that passed.
 *
 * One epoll loop, non-blocking sockets; connections are opened in bursts so
 * the server's listen queue is not overrun. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "streamclient.h"

enum server { SRV_SORTIE, SRV_NCHAN, SRV_BARE };
static const char *const server_names[] = {"sortie", "nchan", "bare"};

static int nsubs, duration = 10, idle;
static enum server server = SRV_SORTIE;
static const char *host = "127.0.0.1", *source;
static int port = 8081;
static struct sc_target target = {.prefix = "", .channel = "market:BENCH", .token = ""};
static struct sc_conn *conns;
static char **tokens; /* -K: one per user */
static int ntokens;
static int epfd;
static long long received, bytes_in;
static long long last_expect; /* the deliveries the last sweep step expected */
static int nsubscribed, ndead;
static int nlost; /* of the dead, those that had subscribed first */
static uint64_t *hist; /* latency histogram, 1 ms buckets */
#define HMAX 60000

static uint64_t wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* an event: its data holds "p":"<publish ms>-..." (bench/publish) */
static int record(const char *msg, size_t len)
{
  const char *p = memmem(msg, len, "\"p\":\"", 5);
  if (p == NULL)
    return 0;
  unsigned long long ms = strtoull(p + 5, NULL, 10);
  if (ms == 0)
    return 0;
  uint64_t now = wall_ms();
  uint64_t lat = now > ms ? now - ms : 0;
  if (lat >= HMAX)
    lat = HMAX - 1;
  hist[lat]++;
  received++;
  return 1;
}

static void subscribed(struct sc_conn *c)
{
  c->live = 1;
  nsubscribed++;
}

/* an SSE message: an event, or what says the stream is live: sortie-pushd's
 * id-only message (caught up), a peer's first comment */
static void sse_message(void *ctx, const char *msg, size_t len)
{
  struct sc_conn *c = ctx;
  if (record(msg, len) || c->live)
    return;
  if (server == SRV_SORTIE ? len > 4 && memcmp(msg, "id: ", 4) == 0 : len > 0 && msg[0] == ':')
    subscribed(c);
}

static void ws_message(void *ctx, const char *p, size_t len)
{
  struct sc_conn *c = ctx;
  if (!record(p, len) && !c->live && server == SRV_SORTIE && memmem(p, len, "\"subscribed\"", 12))
    subscribed(c);
}

static void on_readable(struct sc_conn *c)
{
  int open = sc_read(c, 65536, &bytes_in);
  if (sc_parse(c, &target, "fanout", target.ws ? ws_message : sse_message, c) < 0 || !open) {
    ndead++;
    if (c->live)
      nlost++;
    return;
  }
  /* a peer's WebSocket is subscribed by its URL: live once upgraded */
  if (!c->live && target.ws && target.url && c->state == SC_STREAMING)
    subscribed(c);
  /* keep idle memory small in the client too */
  if (c->len == 0 && c->cap > 131072) {
    free(c->buf);
    c->buf = NULL;
    c->cap = 0;
  }
}

/* handles what epoll has ready (waiting up to ms); returns how many */
static int pump(int ms)
{
  struct epoll_event evs[512];
  int n = epoll_wait(epfd, evs, 512, ms);
  for (int i = 0; i < n; i++) {
    struct sc_conn *c = evs[i].data.ptr;
    if (c->state == SC_CONNECTING && (evs[i].events & EPOLLOUT)) {
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
      epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
      if (ntokens)
        target.token = tokens[(c - conns) % ntokens];
      sc_send_head(c, &target);
    }
    if (c->state != SC_DEAD && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
      on_readable(c);
  }
  return n;
}

static void pump_for(uint64_t ms)
{
  uint64_t t = wall_ms();
  while (wall_ms() - t < ms)
    pump(20);
}

static uint64_t pct(double p)
{
  uint64_t want = (uint64_t)(p * (double)received), acc = 0;
  for (uint64_t i = 0; i < HMAX; i++) {
    acc += hist[i];
    if (acc > want)
      return i;
  }
  return HMAX;
}

static void stats_reset(void)
{
  received = 0;
  bytes_in = 0;
  memset(hist, 0, HMAX * sizeof *hist);
}

/* -K: the tokens of a file, one a line */
static int load_tokens(const char *path)
{
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    if (len == 0)
      continue;
    tokens = realloc(tokens, (size_t)(ntokens + 1) * sizeof *tokens);
    tokens[ntokens++] = strdup(line);
  }
  free(line);
  fclose(f);
  return ntokens > 0 ? 0 : -1;
}

/* ---- the sweep ---- */

/* CPU time (clock ticks) that the processes of a comma-separated pid list
 * have used so far; 0 for a NULL list */
static long long cpu_ticks(const char *pids)
{
  long long sum = 0;
  for (const char *p = pids; p && *p;) {
    long pid = strtol(p, NULL, 10);
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f) {
      if (fgets(line, sizeof line, f)) {
        /* after the ")" that ends the name: fields 3..; utime and stime are 14 and 15 */
        const char *q = strrchr(line, ')');
        unsigned long long ut = 0, st = 0;
        if (q && sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
          sum += (long long)(ut + st);
      }
      fclose(f);
    }
    p = strchr(p, ',');
    if (p)
      p++;
  }
  return sum;
}

/* The machine's loopback packets dropped so far (the second column of
 * /proc/net/softnet_stat, every CPU: a CPU's input backlog was full) and TCP
 * segments retransmitted (/proc/net/snmp): a dropped segment is resent after
 * 200 ms or more, which shows as a p99 step. Machine-wide: another process's
 * traffic counts too. */
static void net_counters(long long *drops, long long *retrans)
{
  char line[1024];
  *drops = *retrans = 0;
  FILE *f = fopen("/proc/net/softnet_stat", "r");
  if (f) {
    while (fgets(line, sizeof line, f)) {
      unsigned int processed, dropped;
      if (sscanf(line, "%x %x", &processed, &dropped) == 2)
        *drops += dropped;
    }
    fclose(f);
  }
  f = fopen("/proc/net/snmp", "r");
  if (f) {
    int col = -1;
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "Tcp: ", 5) != 0)
        continue;
      char *save = NULL, *tok = strtok_r(line + 5, " \n", &save);
      for (int i = 0; tok; i++, tok = strtok_r(NULL, " \n", &save)) {
        if (col < 0 && strcmp(tok, "RetransSegs") == 0) {
          col = i;
          break;
        }
        if (col >= 0 && i == col)
          *retrans = strtoll(tok, NULL, 10);
      }
    }
    fclose(f);
  }
}

static double tv_s(struct timeval tv)
{
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double self_cpu_s(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

/* One step: the publisher at `rate` events a second for `duration` s, then
 * until every event is in (2 s at most). Prints the step's line; returns 1
 * when it passed. */
static int sweep_step(double rate, long long deliveries, char **pub, int npub, int limit_ms,
                      const char *srv_pids, const char *redis_pids)
{
  char rate_s[32], secs_s[16];
  snprintf(rate_s, sizeof rate_s, "%g", rate);
  snprintf(secs_s, sizeof secs_s, "%d", duration);
  char **av = calloc((size_t)npub + 5, sizeof *av);
  memcpy(av, pub, (size_t)npub * sizeof *av);
  av[npub] = "-r";
  av[npub + 1] = rate_s;
  av[npub + 2] = "-d";
  av[npub + 3] = secs_s;
  int pfd[2];
  if (pipe(pfd) < 0) {
    perror("fanout: pipe");
    exit(1);
  }
  int dead0 = ndead, live0 = nsubscribed - ndead;
  stats_reset();
  long long srv0 = cpu_ticks(srv_pids), red0 = cpu_ticks(redis_pids), drop0, retr0, drop1, retr1;
  net_counters(&drop0, &retr0);
  double self0 = self_cpu_s();
  uint64_t t0 = wall_ms();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pfd[1], 1);
    close(pfd[0]);
    close(pfd[1]);
    execv(av[0], av);
    _exit(127);
  }
  close(pfd[1]);
  fcntl(pfd[0], F_SETFL, O_NONBLOCK);
  char out[512];
  size_t olen = 0;
  struct rusage pru = {0};
  int status = 0;
  for (;;) {
    pump(20);
    ssize_t r = read(pfd[0], out + olen, sizeof out - 1 - olen);
    if (r > 0)
      olen += (size_t)r;
    if (wait4(pid, &status, WNOHANG, &pru) == pid)
      break;
    if (wall_ms() - t0 > (uint64_t)duration * 1000 + 30000) {
      kill(pid, SIGKILL);
    }
  }
  ssize_t r;
  while ((r = read(pfd[0], out + olen, sizeof out - 1 - olen)) > 0)
    olen += (size_t)r;
  close(pfd[0]);
  free(av);
  out[olen] = 0;
  long published = 0;
  double pub_secs = 0;
  const char *o = strstr(out, "published=");
  if (o)
    sscanf(o, "published=%ld seconds=%lf", &published, &pub_secs);
  long long expect = (long long)published * live0;
  last_expect = published ? expect : -1;
  uint64_t g = wall_ms();
  while (received < expect && wall_ms() - g < 2000)
    pump(10);
  pump(20); /* anything repeated */
  double wall = (double)(wall_ms() - t0) / 1000;
  net_counters(&drop1, &retr1);
  double tck = (double)sysconf(_SC_CLK_TCK);
  double srv = (double)(cpu_ticks(srv_pids) - srv0) / tck / wall * 100;
  double red = (double)(cpu_ticks(redis_pids) - red0) / tck / wall * 100;
  double cli = (self_cpu_s() - self0) / wall * 100;
  double pcpu = (tv_s(pru.ru_utime) + tv_s(pru.ru_stime)) / wall * 100;
  uint64_t p99 = pct(0.99);
  const char *why = "";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || published == 0)
    why = "publisher_failed";
  else if (pub_secs > duration + 0.5)
    why = "publisher_late";
  else if (ndead != dead0)
    why = "subscriber_dropped";
  else if (received < expect)
    why = "loss";
  else if (received > expect)
    why = "repeated";
  else if (p99 >= (uint64_t)limit_ms)
    why = "p99";
  printf("step server=%s transport=%s subscribers=%d rate=%g deliveries_target=%lld published=%ld "
         "expected=%lld received=%lld dead=%d p50_ms=%llu p99_ms=%llu max_ms=%llu "
         "bytes_per_delivery=%.0f server_cpu=%.0f%% redis_cpu=%.0f%% client_cpu=%.0f%% "
         "publisher_cpu=%.0f%% net_drops=%lld tcp_retrans=%lld pass=%d%s%s\n",
         server_names[server], target.ws ? "ws" : "sse", nsubs, rate, deliveries, published, expect,
         received, ndead - dead0, (unsigned long long)pct(0.50), (unsigned long long)p99,
         (unsigned long long)pct(0.99999), received ? (double)bytes_in / (double)received : 0.0, srv,
         red, cli, pcpu, drop1 - drop0, retr1 - retr0, why[0] == 0, why[0] ? " failed=" : "", why);
  fflush(stdout);
  return why[0] == 0;
}

static void sweep(const char *steps, char **pub, int npub, int limit_ms, int retries,
                  const char *srv_pids, const char *redis_pids)
{
  uint64_t t0 = wall_ms();
  double best_rate = 0;
  long long best = 0;
  int n = 0;
  pump_for(1000); /* a peer may still be registering its last subscribers */
  for (const char *s = steps; s && *s;) {
    long long d = strtoll(s, NULL, 10);
    double rate = (double)d / nsubs;
    n++;
    int ok = 0;
    uint64_t p99 = 0;
    for (int t = 0; t <= retries && !ok; t++) {
      /* only a near miss is run again: a dropped subscriber or a loss is
       * not noise, nor a p99 of twice the limit */
      if (t > 0 && (ndead > 0 || received != last_expect || p99 >= (uint64_t)limit_ms * 3 / 2))
        break;
      if (t > 0)
        pump_for(500);
      ok = sweep_step(rate, d, pub, npub, limit_ms, srv_pids, redis_pids);
      p99 = pct(0.99);
    }
    if (!ok)
      break;
    best_rate = rate;
    best = d;
    s = strchr(s, ',');
    if (s)
      s++;
    pump_for(300);
  }
  printf("sweep server=%s transport=%s subscribers=%d best_rate=%g best_deliveries=%lld steps=%d "
         "seconds=%.1f\n",
         server_names[server], target.ws ? "ws" : "sse", nsubs, best_rate, best, n,
         (double)(wall_ms() - t0) / 1000);
}

int main(int argc, char **argv)
{
  int opt, limit_ms = 100, retries = 0;
  const char *steps = NULL, *srv_pids = NULL, *redis_pids = NULL;
  while ((opt = getopt(argc, argv, "h:p:t:n:c:k:K:d:iq:b:s:S:L:T:C:R:")) != -1) {
    switch (opt) {
    case 'h': host = optarg; break;
    case 'p': port = atoi(optarg); break;
    case 't': target.ws = strcmp(optarg, "ws") == 0; break;
    case 'n': nsubs = atoi(optarg); break;
    case 'c': target.channel = optarg; break;
    case 'k': target.token = optarg; break;
    case 'K':
      if (load_tokens(optarg) < 0) {
        fprintf(stderr, "fanout: no tokens in %s\n", optarg);
        return 2;
      }
      break;
    case 'd': duration = atoi(optarg); break;
    case 'i': idle = 1; break;
    case 'q': target.prefix = optarg; break;
    case 'b': source = optarg; break;
    case 's':
      server = strcmp(optarg, "nchan") == 0 ? SRV_NCHAN : strcmp(optarg, "bare") == 0 ? SRV_BARE : SRV_SORTIE;
      break;
    case 'S': steps = optarg; break;
    case 'L': limit_ms = atoi(optarg); break;
    case 'T': retries = atoi(optarg); break;
    case 'C': srv_pids = optarg; break;
    case 'R': redis_pids = optarg; break;
    default:
      fprintf(stderr, "usage: fanout -h HOST -p PORT -t sse|ws -n N -c CHANNEL -k TOKEN "
                      "[-s sortie|nchan|bare] [-d S] [-i] [-q PREFIX] [-b SOURCE] [-K TOKENS] "
                      "[-S STEPS [-L MS] [-T RETRIES] [-C PIDS] [-R PIDS] -- PUBLISHER ARGS...]\n");
      return 2;
    }
  }
  if (steps && optind >= argc) {
    fprintf(stderr, "fanout: -S needs the publisher's command after --\n");
    return 2;
  }
  if (nsubs < 1) {
    fprintf(stderr, "fanout: -n must be at least 1\n");
    return 2;
  }
  char url[512];
  if (server != SRV_SORTIE) {
    snprintf(url, sizeof url, "/sub?c=%s", target.channel);
    target.url = url;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  hist = calloc(HMAX, sizeof *hist);
  conns = calloc((size_t)nsubs, sizeof *conns);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  struct sockaddr_in from = {.sin_family = AF_INET};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
      (source && inet_pton(AF_INET, source, &from.sin_addr) != 1)) {
    fprintf(stderr, "fanout: bad address\n");
    return 2;
  }
  char host_port[300];
  snprintf(host_port, sizeof host_port, "%s:%d", host, port);
  target.host = host_port;
  uint64_t t0 = wall_ms();
  for (int i = 0; i < nsubs; i++) {
    if (sc_connect(&conns[i], &a, source ? &from : NULL) < 0) {
      fprintf(stderr, "fanout: connect %d: %s\n", i, strerror(errno));
      return 1;
    }
    /* the publisher of a sweep must not inherit 10,000 sockets */
    fcntl(conns[i].fd, F_SETFD, FD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &conns[i]};
    epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev);
    /* between bursts, everything ready: a connection is sent its request
     * head as soon as it is up, as a browser would. Left for later, a head
     * could wait past the daemon's push.header_timeout_s while this process
     * opens thousands more, and the daemon rightly closes the connection. */
    if (i % 200 == 199)
      while (pump(1) == 512)
        ;
  }
  while (nsubscribed + ndead < nsubs && wall_ms() - t0 < 120000)
    pump(100);
  uint64_t t_sub = wall_ms() - t0;
  printf("ready subscribed=%d dead=%d connect_ms=%llu lost=%d\n", nsubscribed, ndead,
         (unsigned long long)t_sub, nlost);
  fflush(stdout);
  if (idle) {
    struct pollfd pf = {0, POLLIN, 0};
    for (;;) {
      pump(50);
      if (poll(&pf, 1, 0) > 0) {
        char b[64];
        if (read(0, b, sizeof b) <= 0)
          break;
      }
    }
    return 0;
  }
  if (steps) {
    if (nsubscribed < nsubs) {
      printf("sweep server=%s transport=%s subscribers=%d best_rate=0 best_deliveries=0 steps=0 "
             "seconds=0 failed=subscribe (%d of %d)\n",
             server_names[server], target.ws ? "ws" : "sse", nsubs, nsubscribed, nsubs);
      return 1;
    }
    sweep(steps, argv + optind, argc - optind, limit_ms, retries, srv_pids, redis_pids);
    return 0;
  }
  stats_reset();
  uint64_t start = wall_ms();
  while (wall_ms() - start < (uint64_t)duration * 1000)
    pump(50);
  /* a short grace period for events published at the very end */
  pump_for(1000);
  printf("transport=%s subscribers=%d subscribed=%d dead=%d received=%lld rate=%.0f/s "
         "p50_ms=%llu p90_ms=%llu p99_ms=%llu max_ms=%llu\n",
         target.ws ? "ws" : "sse", nsubs, nsubscribed, ndead, received,
         (double)received / (double)duration, (unsigned long long)pct(0.50), (unsigned long long)pct(0.90),
         (unsigned long long)pct(0.99), (unsigned long long)pct(0.99999));
  return 0;
}
