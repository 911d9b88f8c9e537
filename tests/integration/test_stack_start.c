/* `make start` (tools/stack.sh start) that fails half-way: what it had started
 * is stopped, by pid; $RUN/start-failed names the step, why, and the log lines
 * that explain it; `stack.sh stop` afterwards exits 0 quietly; and the next
 * start works. Each test runs stack.sh in a runtime folder and on ports of its
 * own (beside the world the harness starts), and makes one step fail: the
 * pool refusing its size, sortie-pushd refusing the config, sortie-pushd's
 * port or Apache's port held by a socket the test keeps listening. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

struct stack {
  char run[512];
  int port, push_port, redis_port;
  const char *extra_conf; /* SORTIE_EXTRA_CONF, or NULL */
  int workers;            /* WORKERS (the pool's size) */
};

static void stack_init(struct stack *s)
{
  memset(s, 0, sizeof *s);
  const char *root = getenv("SORTIE_TEST_TMP");
  /* named world-* so that tests/run.sh stops it if this program dies */
  snprintf(s->run, sizeof s->run, "%s/world-stackstart-XXXXXX", root && *root ? root : "/tmp");
  cr_assert_not_null(mkdtemp(s->run), "mkdtemp: %s", strerror(errno));
  chmod(s->run, 0755);
  s->port = world_free_port();
  do s->push_port = world_free_port(); while (s->push_port == s->port);
  do s->redis_port = world_free_port();
  while (s->redis_port == s->port || s->redis_port == s->push_port);
  s->workers = 2;
}

/* runs `tools/stack.sh VERB` on the stack; its stdout and stderr land in
 * RUN/VERB.out and RUN/VERB.err; returns its exit status */
static int stack_sh(const struct stack *s, const char *verb)
{
  char *cmd = NULL;
  const char *repo = getenv("SORTIE_REPO") ? getenv("SORTIE_REPO") : ".";
  if (s->extra_conf)
    setenv("SORTIE_STACK_TEST_EXTRA", s->extra_conf, 1);
  else
    unsetenv("SORTIE_STACK_TEST_EXTRA");
  /* the harness's own world is in SORTIE_RUN, PORT...: every one is replaced */
  cr_assert_geq(asprintf(&cmd,
                         "SORTIE_EXTRA_CONF=\"${SORTIE_STACK_TEST_EXTRA:-}\" SORTIE_RUN='%s' "
                         "PORT=%d PUSH_PORT=%d REDIS_PORT=%d SORTIE_CONF='%s/sortie.conf' "
                         "SORTIE_QUIET=1 SORTIE_NO_DEMO=1 WORKERS=%d "
                         "sh '%s/tools/stack.sh' %s >'%s/%s.out' 2>'%s/%s.err'",
                         s->run, s->port, s->push_port, s->redis_port, s->run, s->workers, repo, verb, s->run,
                         verb, s->run, verb),
                0);
  int st = system(cmd);
  free(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* the whole of file RUN/NAME ("" when missing); free it */
static char *slurp(const struct stack *s, const char *name)
{
  char path[700];
  snprintf(path, sizeof path, "%s/%s", s->run, name);
  return file_text(path);
}

/* a socket listening on 127.0.0.1:port that never accepts: the port is taken */
static int hold_port(int port)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_geq(fd, 0);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind %d: %s", port, strerror(errno));
  cr_assert_eq(listen(fd, 4), 0);
  return fd;
}

/* 1 if process pid is gone (no such process, or a zombie waiting for init) */
static int pid_gone(int pid)
{
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return 1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 1;
  buf[n] = 0;
  const char *p = strrchr(buf, ')');
  return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* a live process of this stack, found without its pid files: its command line
 * names the runtime folder (the pool, sortie-pushd, Apache), or it is a
 * redis-server on the stack's Redis port; 0 when there is none */
static int leftover(const struct stack *s)
{
  char redis[64];
  snprintf(redis, sizeof redis, ":%d", s->redis_port);
  DIR *d = opendir("/proc");
  cr_assert_not_null(d);
  struct dirent *e;
  int found = 0;
  while (!found && (e = readdir(d)) != NULL) {
    if (!isdigit((unsigned char)e->d_name[0]))
      continue;
    char path[300], cmd[4096];
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
      continue;
    ssize_t n = read(fd, cmd, sizeof cmd - 1);
    close(fd);
    if (n <= 0)
      continue;
    for (ssize_t i = 0; i < n; i++)
      if (cmd[i] == 0)
        cmd[i] = ' ';
    cmd[n] = 0;
    int pid = atoi(e->d_name);
    if (pid == getpid())
      continue;
    if (strstr(cmd, s->run) || (strstr(cmd, "redis-server") && strstr(cmd, redis)))
      found = pid_gone(pid) ? 0 : pid;
  }
  closedir(d);
  return found;
}

/* what start-failed says was stopped: asserts each of those pids is gone and
 * none is "still running"; returns how many it names, and whether `name` is
 * one of them in *named */
static int check_stopped(const char *reason, const char *name, int *named)
{
  int count = 0;
  *named = 0;
  cr_assert_null(strstr(reason, "still running:"), "start-failed:\n%s", reason);
  for (const char *p = reason; (p = strstr(p, "stopped: ")) != NULL; p++) {
    char who[32];
    int pid;
    cr_assert_eq(sscanf(p, "stopped: %31s %d", who, &pid), 2, "start-failed:\n%s", reason);
    cr_assert(pid_gone(pid), "%s (pid %d) still runs after the failed start", who, pid);
    if (strcmp(who, name) == 0)
      *named = 1;
    count++;
  }
  return count;
}

/* the start fails at `step`; `started` lists (space-separated) the servers it
 * had started and must name as stopped; `because` is a log line fragment the
 * reason must quote. Then stop is harmless, and `fix` (if any) makes the next
 * start work. */
static void failed_start(struct stack *s, const char *step, const char *started,
                         const char *because, int held)
{
  int rc = stack_sh(s, "start");
  char *out = slurp(s, "start.out");
  cr_assert_neq(rc, 0, "the start succeeded; its output:\n%s", out);
  free(out);

  char *reason = slurp(s, "start-failed");
  char *err = slurp(s, "start.err");
  char want[64];
  snprintf(want, sizeof want, "step: %s\n", step);
  cr_assert(strncmp(reason, want, strlen(want)) == 0, "start-failed does not start with %s:\n%s",
            want, reason);
  cr_assert_not_null(strstr(reason, because), "start-failed does not quote the log (%s):\n%s",
                     because, reason);
  cr_assert_not_null(strstr(err, want), "the reason is not printed:\n%s", err);

  char list[128];
  snprintf(list, sizeof list, "%s", started);
  int named;
  for (char *save = NULL, *w = strtok_r(list, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
    check_stopped(reason, w, &named);
    cr_assert(named, "start-failed does not say %s was stopped:\n%s", w, reason);
  }
  int left = leftover(s);
  cr_assert_eq(left, 0, "pid %d of the failed stack still runs; start-failed:\n%s", left, reason);

  /* stop after a failed start: exit 0, nothing on stderr */
  cr_assert_eq(stack_sh(s, "stop"), 0);
  char *stop_err = slurp(s, "stop.err");
  cr_assert_str_empty(stop_err, "stop after a failed start printed: %s", stop_err);
  free(stop_err);

  /* the cause gone, the next start works, and its stop stops everything */
  if (held >= 0)
    close(held);
  s->extra_conf = NULL;
  s->workers = 2;
  int again = stack_sh(s, "start");
  char *again_err = slurp(s, "start.err");
  cr_assert_eq(again, 0, "the start after the failed one failed:\n%s", again_err);
  free(again_err);
  char *after = slurp(s, "start-failed");
  cr_assert_str_empty(after, "start-failed survived a good start");
  free(after);
  char *pushd_pid = slurp(s, "pushd.pid");
  char *api_pid = slurp(s, "api.pid");
  cr_assert(atoi(pushd_pid) > 0 && atoi(api_pid) > 0);
  cr_assert_eq(stack_sh(s, "stop"), 0);
  cr_assert(pid_gone(atoi(pushd_pid)) && pid_gone(atoi(api_pid)));
  left = leftover(s);
  cr_assert_eq(left, 0, "pid %d still runs after stop", left);
  free(pushd_pid);
  free(api_pid);
  free(reason);
  free(err);
  if (!getenv("SORTIE_KEEP")) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->run);
    cr_assert_eq(system(cmd), 0);
  }
}

Test(stack_start, a_pool_that_does_not_start_stops_redis_and_says_why)
{
  struct stack s;
  stack_init(&s);
  s.workers = 0; /* sortie-api -n 0: usage, exit 2 */
  failed_start(&s, "api", "redis api", "usage:", -1);
}

Test(stack_start, a_config_pushd_refuses_stops_redis_and_the_pool_and_says_why)
{
  struct stack s;
  stack_init(&s);
  s.extra_conf = "no.such_key = 1";
  failed_start(&s, "pushd", "redis api pushd", "unknown key 'no.such_key'", -1);
}

Test(stack_start, a_taken_pushd_port_stops_redis_and_the_pool_and_says_why)
{
  struct stack s;
  stack_init(&s);
  int held = hold_port(s.push_port);
  failed_start(&s, "pushd", "redis api pushd", "Address already in use", held);
}

Test(stack_start, a_taken_apache_port_stops_redis_the_pool_and_pushd_and_says_why)
{
  struct stack s;
  stack_init(&s);
  int held = hold_port(s.port);
  failed_start(&s, "apache", "redis api pushd", "Address already in use", held);
}
