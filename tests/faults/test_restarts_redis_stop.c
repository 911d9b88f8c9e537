/* Issue 9, item 4: Redis shut down cleanly (SHUTDOWN) and started again from
 * its AOF in the middle of fires followed by SSE, WebSocket and long-poll
 * clients: every 201 is in Redis afterwards, every fire count reaches every
 * client once, in order. One Test: it stops the world's Redis. */
#include "restarts.h"

SORTIE_WORLD_CONF("history.maxlen = 5000\n");

Test(restarts, redis_shutdown_restart_mid_fires_loses_nothing)
{
  struct rs_run run;
  struct rs_client *cs;
  int n;
  struct rs_counts k = rs_redis_restart("redis-shutdown-restart", 0, &run, &cs, &n);
  rs_assert_nothing_lost(&k, &run, cs, n);
  rs_clients_free(cs, n);
}
