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
#include "bus.h"
#include "channel.h"
#include "clients.h"
#include "http.h"
#include "limit.h"
#include "log.h"
#include "loop.h"
#include "master.h"
#include "metrics.h"
#include "presence.h"
#include "resume.h"
#include "transport.h"

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

static struct sortie_cfg *cfg;
static struct sortie_loop *wloop;
static int worker_id;
static volatile sig_atomic_t stopping, got_hup, drained;

static void on_term(int sig)
{
  (void)sig;
  stopping = 1;
}

static void on_hup(int sig)
{
  (void)sig;
  got_hup = 1;
}

/* End of turn, after every other module's: SIGHUP, and the end of a
 * graceful stop once every client is gone (streams closed, long-polls
 * answered). */
static void end_of_turn(void *ud)
{
  (void)ud;
  if (got_hup) {
    got_hup = 0;
    sortie_log_reopen();
  }
  /* the connection slots given back or renewed this turn, in batches */
  pd_limit_flush();
  if (stopping && pd_clients_count() == 0)
    drained = 1;
}

static struct sortie_timer t_sse, t_ws, t_limits, t_drain, t_trim, t_admin, t_jobs, t_presence;

/* Presence (push.presence): who holds which mission goes to Redis in
 * batches, and the missions whose time came are looked at, every tick. */
static void tick_presence(struct sortie_timer *t)
{
  pd_presence_tick(sortie_loop_now(wloop));
  sortie_timer_arm(t, PD_PRESENCE_TICK_MS);
}

static void tick_jobs(struct sortie_timer *t)
{
  pd_bus_tick();
  pd_resume_tick();
  sortie_timer_arm(t, 1000);
}

/* Worker 0 speaks for the daemon on the admin page every 5 s. */
static void tick_admin(struct sortie_timer *t)
{
  if (pd_bus_cmd_up()) {
    struct sortie_buf b = {0};
    char name[96];
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(name, sizeof name, "%s:%d", host, cfg->push_port);
    pd_stats_connections(&b);
    pd_bus_admin_stats(b.base, name, cfg->push_presence);
    sortie_buf_free(&b);
  }
  sortie_timer_arm(t, 5000);
}

/* Connection set-up borrows memory that is freed right after (libmicrohttpd's
 * per-connection pool, the response head): give it back to the system every
 * few seconds, so what a worker holds is what its open connections need. */
static void tick_trim(struct sortie_timer *t)
{
  malloc_trim(0);
  sortie_timer_arm(t, 5000);
}

static void tick_sse(struct sortie_timer *t)
{
  pd_clients_heartbeat(&pd_sse_transport);
  sortie_timer_arm(t, (uint64_t)cfg->push_heartbeat_s * 1000);
}

static void tick_ws(struct sortie_timer *t)
{
  pd_clients_heartbeat(&pd_ws_transport);
  sortie_timer_arm(t, (uint64_t)cfg->push_ping_s * 1000);
}

/* Every connection's limit slot is renewed once per push.slot_renew_s, a
 * sixth of them at each tick, so that a worker with thousands of streams
 * never sends Redis all its renewals at once. */
#define RENEW_SLICES 6

static void tick_limits(struct sortie_timer *t)
{
  static unsigned slice;
  pd_clients_refresh_limits(slice, RENEW_SLICES);
  slice = (slice + 1) % RENEW_SLICES;
  sortie_timer_arm(t, (uint64_t)cfg->push_slot_renew_s * 1000 / RENEW_SLICES);
}

static void drain_deadline(struct sortie_timer *t)
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

/* The command link is up (again): resume jobs that waited for it go on, and
 * Redis hears again of every user this worker holds (it may have lost
 * them). */
static void on_cmd_up(void)
{
  pd_resume_on_cmd_up();
  pd_presence_on_cmd_up();
}

/* The layers, from the bottom: the loop, the Redis links (bus), the sockets
 * and clients, channels and resume, the transports, HTTP. Redis reports
 * upward through the callbacks wired here and nowhere else. */
static const struct pd_bus_cbs bus_cbs = {
    .message = pd_channels_on_message,
    .subscribed = pd_resume_on_subscribed,
    .unsubscribed = pd_channels_on_unsubscribed,
    .sub_up = pd_resume_on_up,
    .sub_down = pd_resume_on_down,
    .cmd_up = on_cmd_up,
};

static int run_worker(int id, void *ud)
{
  (void)ud;
  worker_id = id;
  pd_stats_select(id);
  pd_stats_self()->pid = (uint32_t)getpid();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  int fd = listen_socket(cfg->push_listen, cfg->push_port);
  if (fd < 0) {
    LOG_ERROR("pushd", "worker %d: cannot listen on %s:%d: %s", id, cfg->push_listen,
              cfg->push_port, strerror(errno));
    return 1;
  }
  struct sortie_loop *loop = sortie_loop_new();
  if (loop == NULL) {
    LOG_ERROR("pushd", "worker %d: no event loop: %s", id, strerror(errno));
    return 1;
  }
  /* end-of-turn hooks run in this order: libmicrohttpd, the sockets'
   * flushes and frees, the Redis batches, then ours */
  if (pd_http_start(loop, cfg, fd) < 0) {
    LOG_ERROR("pushd", "worker %d: cannot start the HTTP side", id);
    return 1;
  }
  wloop = loop;
  pd_clients_init(loop, cfg, id);
  if (cfg->push_presence) {
    /* every mission subscription added or removed is counted */
    pd_presence_init(cfg);
    pd_channels_watch(pd_presence_watch);
  }
  pd_bus_start(loop, cfg, id, &bus_cbs);
  sortie_loop_on_turn_end(loop, end_of_turn, NULL);
  sortie_timer_init(&t_sse, loop, tick_sse);
  sortie_timer_init(&t_ws, loop, tick_ws);
  sortie_timer_init(&t_limits, loop, tick_limits);
  sortie_timer_init(&t_trim, loop, tick_trim);
  sortie_timer_init(&t_jobs, loop, tick_jobs);
  sortie_timer_init(&t_admin, loop, tick_admin);
  sortie_timer_init(&t_drain, loop, drain_deadline);
  sortie_timer_init(&t_presence, loop, tick_presence);
  if (cfg->push_presence)
    sortie_timer_arm(&t_presence, PD_PRESENCE_TICK_MS);
  sortie_timer_arm(&t_sse, (uint64_t)cfg->push_heartbeat_s * 1000);
  sortie_timer_arm(&t_ws, (uint64_t)cfg->push_ping_s * 1000);
  sortie_timer_arm(&t_limits, (uint64_t)cfg->push_slot_renew_s * 1000 / RENEW_SLICES);
  sortie_timer_arm(&t_trim, 5000);
  sortie_timer_arm(&t_jobs, 1000);
  if (id == 0)
    sortie_timer_arm(&t_admin, 1000);
  LOG_INFO("pushd", "worker %d listening on %s:%d", id, cfg->push_listen, cfg->push_port);

  sortie_loop_run(loop, &stopping);

  /* graceful stop: streams told to go, long-polls answered; 2 s to flush */
  LOG_INFO("pushd", "worker %d stopping: %u clients", id, pd_clients_count());
  pd_clients_shutdown();
  sortie_timer_arm(&t_drain, 2000);
  sortie_loop_end_turn(loop);
  sortie_loop_run(loop, &drained);
  /* the users this worker held are let go at once (its clients are gone) */
  sortie_timer_stop(&t_presence);
  pd_presence_stop(sortie_loop_now(loop));
  /* what the closes asked of Redis (the users' connection slots given back)
   * goes out and is answered before the links are dropped: at most 1 s */
  for (int i = 0; i < 20 && pd_bus_pending() > 0; i++)
    sortie_loop_turn(loop, 50);
  pd_http_stop();
  pd_bus_stop();
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
  static struct sortie_cfg conf_;
  char err[512];
  if (sortie_cfg_load(&conf_, conf, err, sizeof err) < 0 ||
      sortie_cfg_load_secrets(&conf_, err, sizeof err) < 0) {
    fprintf(stderr, "sortie-pushd: %s\n", err);
    return 1;
  }
  if (workers > 0)
    conf_.push_workers = workers;
  if (port > 0)
    conf_.push_port = port;
  if (listen_addr)
    snprintf(conf_.push_listen, sizeof conf_.push_listen, "%s", listen_addr);
  cfg = &conf_;
  if (conf_.log_file[0] && sortie_log_open(conf_.log_file) < 0)
    fprintf(stderr, "sortie-pushd: cannot open %s: %s\n", conf_.log_file, strerror(errno));
  int lvl = sortie_log_parse_level(conf_.log_level);
  if (lvl >= 0)
    sortie_log_set_level((enum sortie_log_level)lvl);

  /* many sockets per worker: take all the descriptors the system allows */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  /* check the address once here, so a mistake fails loudly at start */
  int probe = listen_socket(conf_.push_listen, conf_.push_port);
  if (probe < 0) {
    fprintf(stderr, "sortie-pushd: cannot listen on %s:%d: %s\n", conf_.push_listen, conf_.push_port,
            strerror(errno));
    return 1;
  }
  if (pd_stats_init(conf_.push_workers) < 0) {
    fprintf(stderr, "sortie-pushd: cannot map the stats\n");
    return 1;
  }
  if (sortie_pidfile_write(pidfile) < 0)
    LOG_WARN("master", "cannot write %s: %s", pidfile, strerror(errno));
  close(probe);
  LOG_INFO("pushd", "sortie-pushd %s: %d workers on %s:%d", SORTIE_VERSION, conf_.push_workers,
           conf_.push_listen, conf_.push_port);
  /* workers hold connections: SIGHUP is passed on (they reopen their logs) */
  struct sortie_master master = {conf_.push_workers, "pushd", 0, run_worker, NULL};
  sortie_master_run(&master);
  if (pidfile)
    unlink(pidfile);
  LOG_INFO("pushd", "stopped");
  sortie_cfg_free(&conf_);
  return 0;
}
