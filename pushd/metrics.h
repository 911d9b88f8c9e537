/* Statistics: one slot per worker in memory shared with the master (made
 * before the fork), each written only by its own worker; /health and
 * /metrics add the slots up, so any worker answers for the whole daemon. */
#ifndef SORTIE_PUSHD_METRICS_H
#define SORTIE_PUSHD_METRICS_H

#include <stdint.h>

#include "buf.h"

#define PD_LAT_BUCKETS 14
#define PD_KINDS 3 /* transports, by their `kind`: sse, ws, poll */

struct pd_stats {
  /* gauges */
  uint32_t conns[PD_KINDS];
  uint32_t subscriptions;
  uint32_t channels;
  uint32_t redis_up;
  uint32_t pid;
  /* counters */
  uint64_t events_in;
  uint64_t deliveries;
  uint64_t slow_disconnects;
  uint64_t redis_reconnects;
  uint64_t refused;
  uint64_t lat_bucket[PD_LAT_BUCKETS];
  uint64_t lat_sum_ms;
  uint64_t lat_count;
};

/** Shared memory for every worker's stats (made by the master before fork). */
int pd_stats_init(int workers);
/** This worker's slot (a private one when pd_stats_init was not called, as
 * in unit tests). */
struct pd_stats *pd_stats_self(void);
void pd_stats_select(int worker);
/** Counts one publish-to-queue latency in the histogram. */
void pd_stats_latency(uint64_t ms);
/** Renders /metrics and /health (appended to out) from all workers' slots. */
void pd_stats_metrics(struct sortie_buf *out);
void pd_stats_health(struct sortie_buf *out, int *ok);
/** {"sse":n,"ws":n,"poll":n} for the whole daemon, appended to out. */
void pd_stats_connections(struct sortie_buf *out);

#endif
