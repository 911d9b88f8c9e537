/* bench/publish: publishes events at a steady rate through the same Lua script
 * as POST /api/publish (history XADD + PUBLISH), for fan-out benchmarks.
 *
 *   publish -c CHANNEL -r EVENTS_PER_SECOND -d SECONDS [-s DATA_BYTES]
 *
 * Uses SORTIE_CONF for Redis. Prints how many it published. */
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
  const char *channel = "market:BENCH";
  double rate = 10;
  int seconds = 10, size = 20, opt;
  while ((opt = getopt(argc, argv, "c:r:d:s:")) != -1) {
    switch (opt) {
    case 'c': channel = optarg; break;
    case 'r': rate = atof(optarg); break;
    case 'd': seconds = atoi(optarg); break;
    case 's': size = atoi(optarg); break;
    default:
      fprintf(stderr, "usage: publish -c CHANNEL -r RATE -d SECONDS [-s DATA_BYTES]\n");
      return 2;
    }
  }
  struct sortie_cfg cfg;
  char err[256];
  if (sortie_cfg_load(&cfg, NULL, err, sizeof err) < 0) {
    fprintf(stderr, "publish: %s\n", err);
    return 1;
  }
  struct sortie_redis *r = sortie_redis_new(&cfg);
  /* ~45-byte events on the wire as the design's figures use: {"p":"xxx"} */
  char data[4096];
  if (size < 1 || size > 4000)
    size = 20;
  int n = snprintf(data, sizeof data, "{\"p\":\"");
  memset(data + n, 'x', (size_t)size);
  n += size;
  n += snprintf(data + n, sizeof data - (size_t)n, "\"}");
  long total = (long)(rate * seconds), sent = 0;
  double start = now();
  for (long i = 0; i < total; i++) {
    double due = start + (double)i / rate;
    double w = due - now();
    if (w > 0)
      usleep((useconds_t)(w * 1e6));
    const char *av[] = {channel, "tick", data};
    sortie_reply *rep = sortie_redis_script(r, SORTIE_LUA_PUBLISH, 0, 3, av, NULL);
    if (rep && sortie_reply_type(rep) == SORTIE_REPLY_ARRAY)
      sent++;
    sortie_reply_free(rep);
  }
  printf("published=%ld seconds=%.2f\n", sent, now() - start);
  sortie_redis_free(r);
  return 0;
}
