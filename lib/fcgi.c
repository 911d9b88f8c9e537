/* FastCGI/CGI front: the request loop over libfcgi, and the pre-forked pool. */
#include "fcgi.h"
#include "redis.h"
#include "master.h"
#include "log.h"

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- transports ---- */

/* CGI: the body is CONTENT_LENGTH bytes of stdin, and not one more (RFC
 * 3875 4.2): the server may leave stdin open after it. */
static long cgi_read(void *ctx, char *buf, size_t n)
{
  long long *left = ctx;
  if (*left <= 0)
    return 0;
  if ((long long)n > *left)
    n = (size_t)*left;
  size_t r = fread(buf, 1, n, stdin);
  if (r == 0 && ferror(stdin))
    return -1;
  *left -= (long long)r;
  return (long)r;
}

static int cgi_write(void *ctx, const char *buf, size_t n)
{
  (void)ctx;
  return fwrite(buf, 1, n, stdout) == n ? 0 : -1;
}

static const char *cgi_param(void *ctx, const char *name)
{
  (void)ctx;
  return getenv(name);
}

static long fcgi_read(void *ctx, char *buf, size_t n)
{
  FCGX_Request *r = ctx;
  int got = FCGX_GetStr(buf, n > 65536 ? 65536 : (int)n, r->in);
  return got < 0 ? -1 : got;
}

static int fcgi_write(void *ctx, const char *buf, size_t n)
{
  FCGX_Request *r = ctx;
  return FCGX_PutStr(buf, (int)n, r->out) == (int)n ? 0 : -1;
}

static const char *fcgi_param(void *ctx, const char *name)
{
  FCGX_Request *r = ctx;
  return FCGX_GetParam(name, r->envp);
}

/* A program whose configuration is broken still answers every request, with
 * a 500 that says so, rather than failing in ways the web server reports as a
 * bare 503. */
static char broken_why[512];

static void serve_broken(struct sortie_io *io)
{
  LOG_ERROR("app", "not serving: %s", broken_why);
  sortie_http_fail(io, 500, "internal", "the server is misconfigured (see its log)");
}

/* ---- loops ---- */

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
  (void)sig;
  stopping = 1;
  FCGX_ShutdownPending();
}

static int fcgi_loop(struct sortie_app *app, int ok, int sock, const struct sortie_route *routes,
                     size_t n)
{
  FCGX_Request req;
  if (FCGX_Init() != 0 || FCGX_InitRequest(&req, sock, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
    LOG_ERROR("fcgi", "FCGX_Init failed");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL); /* mod_fcgid's graceful stop */
  signal(SIGPIPE, SIG_IGN);
  while (!stopping && FCGX_Accept_r(&req) >= 0) {
    struct sortie_io io = {fcgi_read, fcgi_write, fcgi_param, &req};
    if (ok)
      sortie_http_serve(app, routes, n, &io);
    else
      serve_broken(&io);
    FCGX_Finish_r(&req);
  }
  return 0;
}

static int open_listen(const char *spec, int mode)
{
  if (spec[0] == '/' || spec[0] == '.')
    unlink(spec);
  mode_t old = umask(0);
  int fd = FCGX_OpenSocket(spec, 1024);
  umask(old);
  if (fd < 0)
    return -1;
  if (spec[0] == '/' || spec[0] == '.')
    chmod(spec, (mode_t)mode);
  return fd;
}

struct pool_ctx {
  struct sortie_app *app;
  int ok, sock;
  const struct sortie_route *routes;
  size_t n;
};

static int pool_worker(int i, void *ud)
{
  (void)i;
  struct pool_ctx *p = ud;
  return fcgi_loop(p->app, p->ok, p->sock, p->routes, p->n);
}

static int pool(struct sortie_app *app, int ok, const char *spec, int workers, int mode,
                const char *pidfile, const char *name, const struct sortie_route *routes,
                size_t n)
{
  int sock = open_listen(spec, mode);
  if (sock < 0) {
    LOG_ERROR("pool", "cannot listen on %s: %s", spec, strerror(errno));
    return 1;
  }
  if (sortie_pidfile_write(pidfile) < 0)
    LOG_WARN("master", "cannot write %s: %s", pidfile, strerror(errno));
  LOG_INFO("pool", "%s: %d workers on %s", name, workers, spec);
  struct pool_ctx ctx = {app, ok, sock, routes, n};
  /* workers hold no state: SIGHUP replaces them (and so reopens their logs) */
  struct sortie_master m = {workers, "pool", 1, pool_worker, &ctx};
  sortie_master_run(&m);
  close(sock);
  if (spec[0] == '/' || spec[0] == '.')
    unlink(spec);
  if (pidfile)
    unlink(pidfile);
  LOG_INFO("pool", "%s: stopped", name);
  return 0;
}

static void usage(const char *name)
{
  fprintf(stderr,
          "usage: %s [-c CONFIG] [-s SOCKET -n WORKERS [-p PIDFILE] [-m MODE]]\n"
          "  without -s: plain CGI, or FastCGI on fd 0 when started by a FastCGI server\n"
          "  -s SOCKET  run a pool of workers on SOCKET (a path or 127.0.0.1:PORT)\n"
          "  -n WORKERS number of workers in the pool (default 4)\n"
          "  -p PIDFILE write the pool's pid there\n"
          "  -m MODE    permissions of a unix SOCKET (octal, default 660)\n",
          name);
}

int sortie_fcgi_main(int argc, char **argv, const char *name, const struct sortie_route *routes,
                     size_t nroutes)
{
  const char *conf = NULL, *sock = NULL, *pidfile = NULL;
  int workers = 4, mode = 0660, c;
  while ((c = getopt(argc, argv, "c:s:n:p:m:h")) != -1) {
    switch (c) {
    case 'c': conf = optarg; break;
    case 's': sock = optarg; break;
    case 'n': workers = atoi(optarg); break;
    case 'p': pidfile = optarg; break;
    case 'm': mode = (int)strtol(optarg, NULL, 8); break;
    default: usage(name); return c == 'h' ? 0 : 2;
    }
  }
  if (workers < 1 || workers > 1024) {
    usage(name);
    return 2;
  }
  struct sortie_app app;
  int ok = sortie_app_init(&app, conf, broken_why, sizeof broken_why) == 0;
  if (!ok) {
    LOG_ERROR("app", "%s: %s", name, broken_why);
    if (app.redis == NULL)
      app.redis = sortie_redis_new(&app.cfg);
  }
  int rc;
  if (sock) {
    rc = pool(&app, ok, sock, workers, mode, pidfile, name, routes, nroutes);
  } else if (!FCGX_IsCGI()) {
    rc = fcgi_loop(&app, ok, 0, routes, nroutes);
  } else {
    const char *cl = getenv("CONTENT_LENGTH");
    long long left = cl ? strtoll(cl, NULL, 10) : 0;
    struct sortie_io io = {cgi_read, cgi_write, cgi_param, &left};
    if (ok)
      sortie_http_serve(&app, routes, nroutes, &io);
    else
      serve_broken(&io);
    fflush(stdout);
    rc = 0;
  }
  sortie_app_free(&app);
  return rc;
}
