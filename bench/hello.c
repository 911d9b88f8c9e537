/* bench/hello: the baselines for REST benchmarks, as bare as a FastCGI program
 * gets: a pre-forked pool on one socket (like sortie-api's) answering a fixed
 * JSON body, or (-r) a fixed body after one EVALSHA of a trivial script.
 *
 *   hello -s SOCKET -n WORKERS [-r]     (Redis from SORTIE_CONF with -r) */
#include "cfg.h"

#include <fcgiapp.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char body[] = "{\"hello\":\"world\"}";

static void serve(int sock, int with_redis)
{
  redisContext *rc = NULL;
  char sha[64] = "";
  if (with_redis) {
    struct sortie_cfg cfg;
    char err[256];
    if (sortie_cfg_load(&cfg, NULL, err, sizeof err) < 0)
      _exit(1);
    rc = redisConnect(cfg.redis_host, cfg.redis_port);
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", "return redis.call('INCR', KEYS[1])");
    if (r == NULL || r->type != REDIS_REPLY_STRING)
      _exit(1);
    snprintf(sha, sizeof sha, "%s", r->str);
    freeReplyObject(r);
  }
  FCGX_Request req;
  FCGX_Init();
  FCGX_InitRequest(&req, sock, 0);
  while (FCGX_Accept_r(&req) >= 0) {
    if (rc) {
      redisReply *r = redisCommand(rc, "EVALSHA %s 1 %s", sha, "bench:hello");
      if (r)
        freeReplyObject(r);
    }
    FCGX_FPrintF(req.out, "Status: 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: %d\r\n\r\n%s", (int)strlen(body), body);
    FCGX_Finish_r(&req);
  }
}

int main(int argc, char **argv)
{
  const char *path = NULL;
  int workers = 4, with_redis = 0, opt;
  while ((opt = getopt(argc, argv, "s:n:r")) != -1) {
    switch (opt) {
    case 's': path = optarg; break;
    case 'n': workers = atoi(optarg); break;
    case 'r': with_redis = 1; break;
    default: return 2;
    }
  }
  if (path == NULL)
    return 2;
  unlink(path);
  int sock = FCGX_OpenSocket(path, 1024);
  if (sock < 0)
    return 1;
  chmod(path, 0666);
  for (int i = 0; i < workers; i++)
    if (fork() == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      serve(sock, with_redis);
      _exit(0);
    }
  signal(SIGTERM, SIG_DFL);
  while (wait(NULL) > 0)
    ;
  return 0;
}
