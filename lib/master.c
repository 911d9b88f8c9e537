/* The master/worker supervision shared by the FastCGI pool and sortie-pushd. */
#include "master.h"
#include "buf.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping, got_hup;

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

static void on_child(int sig)
{
  (void)sig;
}

static pid_t spawn(const struct sortie_master *m, int i)
{
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGTERM, SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  signal(SIGINT, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  _exit(m->run(i, m->ud));
}

int sortie_pidfile_write(const char *path)
{
  if (path == NULL)
    return 0;
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return -1;
  fprintf(f, "%d\n", (int)getpid());
  return fclose(f) == 0 ? 0 : -1;
}

int sortie_master_run(const struct sortie_master *m)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_child;
  sigaction(SIGCHLD, &sa, NULL);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* the signals arrive only inside sigsuspend(), between two looks at the
   * flags: none is lost */
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGCHLD);
  sigaddset(&block, SIGHUP);
  sigprocmask(SIG_BLOCK, &block, &old);

  int n = m->workers;
  pid_t *pids = sortie_xcalloc((size_t)n, sizeof *pids);
  time_t *born = sortie_xcalloc((size_t)n, sizeof *born);
  for (int i = 0; i < n; i++) {
    pids[i] = spawn(m, i);
    born[i] = time(NULL);
  }
  while (!stopping) {
    sigsuspend(&old);
    if (got_hup) {
      got_hup = 0;
      sortie_log_reopen();
      for (int i = 0; i < n; i++)
        if (pids[i] > 0)
          kill(pids[i], m->hup_replaces ? SIGTERM : SIGHUP);
    }
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
      for (int i = 0; i < n; i++) {
        if (pids[i] != p)
          continue;
        pids[i] = 0;
        if (stopping)
          break;
        int by_term = WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM;
        if (!by_term)
          LOG_ERROR(m->tag, "worker %d (pid %d) ended (%s %d); starting it again", i, (int)p,
                    WIFSIGNALED(st) ? "signal" : "status",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        if (!by_term && time(NULL) - born[i] < 1)
          sleep(1);
        pids[i] = spawn(m, i);
        born[i] = time(NULL);
      }
    }
  }
  for (int i = 0; i < n; i++)
    if (pids[i] > 0)
      kill(pids[i], SIGTERM);
  /* time to finish what they are doing, then insist */
  for (int waited = 0; waited < 50; waited++) {
    int alive = 0;
    for (int i = 0; i < n; i++) {
      if (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == pids[i])
        pids[i] = 0;
      alive += pids[i] > 0;
    }
    if (!alive)
      break;
    usleep(100000);
  }
  for (int i = 0; i < n; i++)
    if (pids[i] > 0) {
      kill(pids[i], SIGKILL);
      waitpid(pids[i], NULL, 0);
    }
  free(pids);
  free(born);
  sigprocmask(SIG_SETMASK, &old, NULL);
  return 0;
}
