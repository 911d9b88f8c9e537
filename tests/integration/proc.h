/* Child processes for the integration tests that run Sortie's programs
 * directly (sortie-expire, the endpoint programs as plain CGI): start one with
 * a given environment and stdin, collect its stdout/stderr and exit status,
 * with a time limit. Header-only (static functions) so that only the programs
 * that include it carry it. */
#ifndef SORTIE_TEST_PROC_H
#define SORTIE_TEST_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct proc_spec {
  const char *const *argv; /* argv[0] is the program's path */
  const char *const *env;  /* "NAME=value" entries set in the child (NULL-terminated) */
  int clear_env;           /* start from an empty environment (PATH kept) */
  const char *in;          /* bytes written to stdin (may be NULL) */
  size_t in_len;
  int keep_stdin_open;     /* do not close stdin after `in` (a server that keeps it open) */
  int timeout_ms;          /* the child is killed (SIGKILL) past this; 0: 30 s */
  const int *barrier;      /* a pipe: the child waits for EOF on [0] before exec */
};

struct proc {
  pid_t pid;
  int in, out, err; /* parent's ends, -1 once closed */
  const struct proc_spec *spec;
  size_t in_off;
};

struct proc_result {
  int exited;    /* 1 if it exited normally */
  int code;      /* exit code when exited */
  int signal;    /* signal that ended it, or 0 */
  int timed_out; /* killed by us at the time limit */
  char *out, *err; /* NUL-terminated (free them) */
  size_t out_len, err_len;
};

static __attribute__((unused)) long long proc_now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Starts the child; returns 0, or -1 if fork/pipe failed. */
static __attribute__((unused)) int proc_start(const struct proc_spec *s, struct proc *p)
{
  int in[2], out[2], err[2];
  memset(p, 0, sizeof *p);
  p->spec = s;
  if (pipe2(in, O_CLOEXEC) < 0)
    return -1;
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    signal(SIGPIPE, SIG_DFL);
    if (s->clear_env) {
      const char *path = getenv("PATH");
      char *keep = strdup(path ? path : "/usr/bin:/bin");
      clearenv();
      setenv("PATH", keep, 1);
    }
    for (const char *const *e = s->env; e && *e; e++) {
      const char *eq = strchr(*e, '=');
      if (eq == NULL) {
        unsetenv(*e);
        continue;
      }
      char name[256];
      snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
      setenv(name, eq + 1, 1);
    }
    if (s->barrier) {
      char c;
      close(s->barrier[1]);
      while (read(s->barrier[0], &c, 1) > 0)
        ;
    }
    execv(s->argv[0], (char *const *)s->argv);
    _exit(127);
  }
  signal(SIGPIPE, SIG_IGN); /* a child that exits before reading its stdin is not our death */
  close(in[0]);
  close(out[1]);
  close(err[1]);
  p->pid = pid;
  p->in = in[1];
  p->out = out[0];
  p->err = err[0];
  fcntl(p->in, F_SETFL, O_NONBLOCK);
  if (s->in_len == 0 && !s->keep_stdin_open) {
    close(p->in);
    p->in = -1;
  }
  return 0;
}

static __attribute__((unused)) void proc_append(char **buf, size_t *len, const char *src, size_t n)
{
  char *b = realloc(*buf, *len + n + 1);
  if (b == NULL)
    abort();
  memcpy(b + *len, src, n);
  *len += n;
  b[*len] = '\0';
  *buf = b;
}

/* Feeds stdin, collects output until the child closes both, then reaps it.
 * Returns 0 (see r for how it ended). */
static __attribute__((unused)) int proc_finish(struct proc *p, struct proc_result *r)
{
  const struct proc_spec *s = p->spec;
  memset(r, 0, sizeof *r);
  r->out = calloc(1, 1);
  r->err = calloc(1, 1);
  long long deadline = proc_now_ms() + (s->timeout_ms > 0 ? s->timeout_ms : 30000);
  while (p->out >= 0 || p->err >= 0) {
    struct pollfd fds[3];
    int n = 0, iin = -1, iout = -1, ierr = -1;
    if (p->in >= 0 && p->in_off < s->in_len) {
      iin = n;
      fds[n++] = (struct pollfd){.fd = p->in, .events = POLLOUT};
    }
    if (p->out >= 0) {
      iout = n;
      fds[n++] = (struct pollfd){.fd = p->out, .events = POLLIN};
    }
    if (p->err >= 0) {
      ierr = n;
      fds[n++] = (struct pollfd){.fd = p->err, .events = POLLIN};
    }
    long long left = deadline - proc_now_ms();
    if (left <= 0) {
      r->timed_out = 1;
      kill(p->pid, SIGKILL);
      break;
    }
    int rc = poll(fds, (nfds_t)n, (int)(left > 200 ? 200 : left));
    if (rc < 0 && errno != EINTR)
      break;
    if (rc <= 0)
      continue;
    if (iin >= 0 && (fds[iin].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(p->in, s->in + p->in_off, s->in_len - p->in_off);
      if (w > 0)
        p->in_off += (size_t)w;
      if (w < 0 && errno != EAGAIN) {
        close(p->in);
        p->in = -1;
      } else if (p->in_off == s->in_len && !s->keep_stdin_open) {
        close(p->in);
        p->in = -1;
      }
    }
    char buf[8192];
    int *fdp[2] = {&p->out, &p->err};
    int idx[2] = {iout, ierr};
    char **dst[2] = {&r->out, &r->err};
    size_t *dl[2] = {&r->out_len, &r->err_len};
    for (int k = 0; k < 2; k++) {
      if (idx[k] < 0 || !(fds[idx[k]].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t got = read(*fdp[k], buf, sizeof buf);
      if (got > 0) {
        proc_append(dst[k], dl[k], buf, (size_t)got);
      } else if (got == 0 || errno != EAGAIN) {
        close(*fdp[k]);
        *fdp[k] = -1;
      }
    }
  }
  int st = 0;
  waitpid(p->pid, &st, 0);
  if (p->in >= 0)
    close(p->in);
  if (p->out >= 0)
    close(p->out);
  if (p->err >= 0)
    close(p->err);
  p->in = p->out = p->err = -1;
  r->exited = WIFEXITED(st);
  r->code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  return 0;
}

static __attribute__((unused)) int proc_run(const struct proc_spec *s, struct proc_result *r)
{
  struct proc p;
  if (proc_start(s, &p) < 0) {
    memset(r, 0, sizeof *r);
    return -1;
  }
  return proc_finish(&p, r);
}

static __attribute__((unused)) void proc_result_free(struct proc_result *r)
{
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

#endif
