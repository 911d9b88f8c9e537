/* sortie-pushd: streams the events Redis publishes to browsers over
 * WebSocket, Server-Sent Events and long-poll.
 *
 *   sortie-pushd [-c CONFIG] [-p PIDFILE] [-w WORKERS] [-l ADDRESS] [-P PORT]
 *
 * A master process starts push.workers workers and restarts any that dies.
 * Each worker is a whole daemon sharing nothing with the others: its own
 * listening socket on the same port (SO_REUSEPORT: the kernel spreads
 * connections), its own event loop and Redis connections. SIGTERM: streams are
 * told to go (WebSocket 1001, SSE "retry") and the workers exit; SIGHUP: logs
 * are reopened. */
#include "pushd.h"
#include "master.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct sortie_cfg *pd_cfg;
int pd_worker_id;
volatile sig_atomic_t pd_stopping;
static volatile sig_atomic_t got_hup, drained;

static void on_term(int sig)
{
  (void)sig;
  pd_stopping = 1;
}

static void on_hup(int sig)
{
  (void)sig;
  got_hup = 1;
}

void pd_end_of_turn(void)
{
  if (got_hup) {
    got_hup = 0;
    sortie_log_reopen();
  }
  pd_http_run();
  pd_redis_end_of_turn();
  pd_clients_end_of_turn();
  if (pd_stopping && pd_nclients[PD_SSE] + pd_nclients[PD_WS] == 0)
    drained = 1;
}

static struct pd_timer t_sse, t_ws, t_limits, t_drain, t_trim, t_admin, t_jobs;

static void tick_jobs(struct pd_timer *t)
{
  pd_jobs_tick();
  pd_timer_arm(t, 1000);
}

/* Worker 0 speaks for the daemon on the admin page every 5 s. */
static void tick_admin(struct pd_timer *t)
{
  if (pd_redis_cmd_up()) {
    struct sortie_buf b = {0};
    char name[96];
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(name, sizeof name, "%s:%d", host, pd_cfg->push_port);
    pd_stats_connections(&b);
    pd_redis_admin_stats(b.base, name);
    sortie_buf_free(&b);
  }
  pd_timer_arm(t, 5000);
}

/* Connection set-up borrows memory that is freed right after (libmicrohttpd's
 * per-connection pool, the response head): give it back to the system every
 * few seconds, so what a worker holds is what its open connections need. */
static void tick_trim(struct pd_timer *t)
{
  malloc_trim(0);
  pd_timer_arm(t, 5000);
}

static void tick_sse(struct pd_timer *t)
{
  pd_sse_heartbeat();
  pd_timer_arm(t, (uint64_t)pd_cfg->push_heartbeat_s * 1000);
}

static void tick_ws(struct pd_timer *t)
{
  pd_ws_heartbeat();
  pd_timer_arm(t, (uint64_t)pd_cfg->push_ping_s * 1000);
}

static void tick_limits(struct pd_timer *t)
{
  pd_clients_refresh_limits();
  pd_timer_arm(t, 60000);
}

static void drain_deadline(struct pd_timer *t)
{
  (void)t;
  drained = 1;
}

static int listen_socket(const char *addr, int port)
{
  int fd = socket(strchr(addr, ':') ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  int rc;
  if (strchr(addr, ':')) {
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET6, addr, &a6.sin6_addr) != 1) {
      close(fd);
      errno = EINVAL;
      return -1;
    }
    rc = bind(fd, (struct sockaddr *)&a6, sizeof a6);
  } else {
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &a4.sin_addr) != 1) {
      close(fd);
      errno = EINVAL;
      return -1;
    }
    rc = bind(fd, (struct sockaddr *)&a4, sizeof a4);
  }
  if (rc < 0 || listen(fd, 4096) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int run_worker(int id, void *ud)
{
  (void)ud;
  pd_worker_id = id;
  pd_stats_select(id);
  pd_stats_self()->pid = (uint32_t)getpid();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  int fd = listen_socket(pd_cfg->push_listen, pd_cfg->push_port);
  if (fd < 0) {
    LOG_ERROR("pushd", "worker %d: cannot listen on %s:%d: %s", id, pd_cfg->push_listen,
              pd_cfg->push_port, strerror(errno));
    return 1;
  }
  if (pd_loop_init() < 0 || pd_http_start(pd_cfg, fd) < 0) {
    LOG_ERROR("pushd", "worker %d: cannot start the HTTP side", id);
    return 1;
  }
  pd_redis_start(pd_cfg);
  t_sse.cb = tick_sse;
  t_ws.cb = tick_ws;
  t_limits.cb = tick_limits;
  pd_timer_arm(&t_sse, (uint64_t)pd_cfg->push_heartbeat_s * 1000);
  pd_timer_arm(&t_ws, (uint64_t)pd_cfg->push_ping_s * 1000);
  pd_timer_arm(&t_limits, 60000);
  t_trim.cb = tick_trim;
  pd_timer_arm(&t_trim, 5000);
  t_jobs.cb = tick_jobs;
  pd_timer_arm(&t_jobs, 1000);
  if (id == 0) {
    t_admin.cb = tick_admin;
    pd_timer_arm(&t_admin, 1000);
  }
  LOG_INFO("pushd", "worker %d listening on %s:%d", id, pd_cfg->push_listen, pd_cfg->push_port);

  pd_loop_run(&pd_stopping);

  /* graceful stop: no new connections; streams told to go; 2 s to flush */
  LOG_INFO("pushd", "worker %d stopping: %u sse, %u ws, %u poll", id, pd_nclients[PD_SSE],
           pd_nclients[PD_WS], pd_nclients[PD_POLL]);
  pd_streams_shutdown();
  t_drain.cb = drain_deadline;
  pd_timer_arm(&t_drain, 2000);
  pd_end_of_turn();
  pd_loop_run(&drained);
  pd_http_stop();
  pd_redis_stop();
  pd_stats_self()->pid = 0;
  return 0;
}

static void usage(void)
{
  fprintf(stderr, "usage: sortie-pushd [-c CONFIG] [-p PIDFILE] [-w WORKERS] [-l ADDRESS] "
                  "[-P PORT]\n"
                  "  Options override push.workers, push.listen and push.port of the config.\n");
}

int main(int argc, char **argv)
{
  const char *conf = NULL, *pidfile = NULL;
  int workers = 0, port = 0, c;
  const char *listen_addr = NULL;
  while ((c = getopt(argc, argv, "c:p:w:l:P:h")) != -1) {
    switch (c) {
    case 'c': conf = optarg; break;
    case 'p': pidfile = optarg; break;
    case 'w': workers = atoi(optarg); break;
    case 'l': listen_addr = optarg; break;
    case 'P': port = atoi(optarg); break;
    default: usage(); return c == 'h' ? 0 : 2;
    }
  }
  static struct sortie_cfg cfg;
  char err[512];
  if (sortie_cfg_load(&cfg, conf, err, sizeof err) < 0 ||
      sortie_cfg_load_secrets(&cfg, err, sizeof err) < 0) {
    fprintf(stderr, "sortie-pushd: %s\n", err);
    return 1;
  }
  if (workers > 0)
    cfg.push_workers = workers;
  if (port > 0)
    cfg.push_port = port;
  if (listen_addr)
    snprintf(cfg.push_listen, sizeof cfg.push_listen, "%s", listen_addr);
  pd_cfg = &cfg;
  if (cfg.log_file[0] && sortie_log_open(cfg.log_file) < 0)
    fprintf(stderr, "sortie-pushd: cannot open %s: %s\n", cfg.log_file, strerror(errno));
  int lvl = sortie_log_parse_level(cfg.log_level);
  if (lvl >= 0)
    sortie_log_set_level((enum sortie_log_level)lvl);

  /* many sockets per worker: take all the descriptors the system allows */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  /* check the address once here, so a mistake fails loudly at start */
  int probe = listen_socket(cfg.push_listen, cfg.push_port);
  if (probe < 0) {
    fprintf(stderr, "sortie-pushd: cannot listen on %s:%d: %s\n", cfg.push_listen, cfg.push_port,
            strerror(errno));
    return 1;
  }
  if (pd_stats_init(cfg.push_workers) < 0) {
    fprintf(stderr, "sortie-pushd: cannot map the stats\n");
    return 1;
  }
  if (sortie_pidfile_write(pidfile) < 0)
    LOG_WARN("master", "cannot write %s: %s", pidfile, strerror(errno));
  close(probe);
  LOG_INFO("pushd", "sortie-pushd %s: %d workers on %s:%d", SORTIE_VERSION, cfg.push_workers,
           cfg.push_listen, cfg.push_port);
  /* workers hold connections: SIGHUP is passed on (they reopen their logs) */
  struct sortie_master master = {cfg.push_workers, "pushd", 0, run_worker, NULL};
  sortie_master_run(&master);
  if (pidfile)
    unlink(pidfile);
  LOG_INFO("pushd", "stopped");
  sortie_cfg_free(&cfg);
  return 0;
}
