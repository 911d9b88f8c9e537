/* Issue 9, item 4: Redis killed (SIGKILL) and started again from its AOF
 * (appendfsync everysec) in the middle of fires followed by SSE, WebSocket and
 * long-poll clients. Redis writes the AOF before it answers, so a killed
 * process (not a lost machine) should lose no acknowledged fire; the counts
 * say what happened (a LOST line when a 201 is missing). One Test: it kills
 * the world's Redis. */
#include "restarts.h"

SORTIE_WORLD_CONF("history.maxlen = 5000\n");

Test(restarts, redis_kill9_restart_mid_fires)
{
  struct rs_run run;
  struct rs_client *cs;
  int n;
  struct rs_counts k = rs_redis_restart("redis-kill9-restart", 1, &run, &cs, &n);
  rs_assert_nothing_lost(&k, &run, cs, n);
  rs_clients_free(cs, n);
}
