/* A master process that keeps a fixed number of worker processes running: the
 * FastCGI pool (sortie-api -s) and sortie-pushd both use it. */
#ifndef SORTIE_MASTER_H
#define SORTIE_MASTER_H

struct sortie_master {
  int workers;
  const char *tag;      /* log tag */
  /* SIGHUP: the master reopens its log, then either replaces every worker
   * (1: the pool, whose workers are stateless) or passes SIGHUP on (0) */
  int hup_replaces;
  /* the body of worker i, in the child; its return value is the exit status */
  int (*run)(int i, void *ud);
  void *ud;
};

/** Starts the workers and restarts any that ends (after 1 s if it died at
 * once, so a broken start does not spin). SIGTERM or SIGINT: every worker gets
 * SIGTERM, then SIGKILL if still there after 5 s. Returns when all are gone.
 * A worker starts with default signal handling (SIGINT ignored: the master
 * decides), nothing blocked, and dies with its master (PR_SET_PDEATHSIG). */
int sortie_master_run(const struct sortie_master *m);

/** Writes this process's pid into `path` (NULL: nothing). 0, or -1. */
int sortie_pidfile_write(const char *path);

#endif
