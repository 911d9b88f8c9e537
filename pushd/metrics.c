/* Statistics (metrics.h): the shared slots, /health and /metrics. */
#include "metrics.h"
#include "loop.h"
#include "cfg.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static struct pd_stats *slots;
static int nslots;
static int self;
static struct pd_stats fallback;
static uint64_t started_ms;

/* latency bucket upper bounds, ms */
static const uint64_t bounds[PD_LAT_BUCKETS - 1] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000,
                                                    2500, 5000, 10000};

int pd_stats_init(int workers)
{
  size_t sz = (size_t)workers * sizeof *slots;
  slots = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (slots == MAP_FAILED) {
    slots = NULL;
    return -1;
  }
  memset(slots, 0, sz);
  nslots = workers;
  started_ms = sortie_wall_ms();
  return 0;
}

void pd_stats_select(int worker)
{
  self = worker;
}

struct pd_stats *pd_stats_self(void)
{
  return slots ? &slots[self] : &fallback;
}

void pd_stats_latency(uint64_t ms)
{
  struct pd_stats *s = pd_stats_self();
  int b = 0;
  while (b < PD_LAT_BUCKETS - 1 && ms > bounds[b])
    b++;
  s->lat_bucket[b]++;
  s->lat_sum_ms += ms;
  s->lat_count++;
}

static void total(struct pd_stats *t, int *all_up)
{
  memset(t, 0, sizeof *t);
  *all_up = 1;
  int n = slots ? nslots : 1;
  for (int i = 0; i < n; i++) {
    const struct pd_stats *s = slots ? &slots[i] : &fallback;
    if (s->pid == 0)
      continue; /* a worker slot not (yet) in use */
    for (int k = 0; k < PD_KINDS; k++)
      t->conns[k] += s->conns[k];
    t->subscriptions += s->subscriptions;
    t->channels += s->channels;
    t->events_in += s->events_in;
    t->deliveries += s->deliveries;
    t->slow_disconnects += s->slow_disconnects;
    t->redis_reconnects += s->redis_reconnects;
    t->refused += s->refused;
    for (int k = 0; k < PD_LAT_BUCKETS; k++)
      t->lat_bucket[k] += s->lat_bucket[k];
    t->lat_sum_ms += s->lat_sum_ms;
    t->lat_count += s->lat_count;
    if (!s->redis_up)
      *all_up = 0;
  }
}

void pd_stats_health(struct sortie_buf *out, int *ok)
{
  struct pd_stats t;
  total(&t, ok);
  sortie_buf_printf(out,
                    "{\"status\":\"%s\",\"redis\":\"%s\",\"connections\":{\"sse\":%u,\"ws\":%u,"
                    "\"poll\":%u},\"channels\":%u,\"uptime_s\":%llu,\"version\":\"%s\"}",
                    *ok ? "ok" : "degraded", *ok ? "ok" : "down", t.conns[0], t.conns[1], t.conns[2], t.channels,
                    (unsigned long long)((sortie_wall_ms() - started_ms) / 1000), SORTIE_VERSION);
}

void pd_stats_connections(struct sortie_buf *out)
{
  struct pd_stats t;
  int up;
  total(&t, &up);
  sortie_buf_printf(out, "{\"sse\":%u,\"ws\":%u,\"poll\":%u}", t.conns[0], t.conns[1], t.conns[2]);
}

void pd_stats_metrics(struct sortie_buf *o)
{
  struct pd_stats t;
  int up;
  total(&t, &up);
  static const char *kinds[] = {"sse", "ws", "poll"};
  sortie_buf_puts(o, "# HELP sortie_pushd_connections Open client connections by transport.\n"
                     "# TYPE sortie_pushd_connections gauge\n");
  for (int k = 0; k < PD_KINDS; k++)
    sortie_buf_printf(o, "sortie_pushd_connections{transport=\"%s\"} %u\n", kinds[k], t.conns[k]);
  sortie_buf_printf(o,
                    "# HELP sortie_pushd_subscriptions Client subscriptions to channels.\n"
                    "# TYPE sortie_pushd_subscriptions gauge\n"
                    "sortie_pushd_subscriptions %u\n"
                    "# HELP sortie_pushd_channels Channels subscribed in Redis (summed over workers).\n"
                    "# TYPE sortie_pushd_channels gauge\n"
                    "sortie_pushd_channels %u\n"
                    "# HELP sortie_pushd_redis_up 1 when every worker has its Redis connections.\n"
                    "# TYPE sortie_pushd_redis_up gauge\n"
                    "sortie_pushd_redis_up %d\n"
                    "# HELP sortie_pushd_events_in_total Events received from Redis.\n"
                    "# TYPE sortie_pushd_events_in_total counter\n"
                    "sortie_pushd_events_in_total %llu\n"
                    "# HELP sortie_pushd_events_out_total Events delivered to clients.\n"
                    "# TYPE sortie_pushd_events_out_total counter\n"
                    "sortie_pushd_events_out_total %llu\n"
                    "# HELP sortie_pushd_slow_consumer_disconnects_total Clients cut off for not "
                    "keeping up.\n"
                    "# TYPE sortie_pushd_slow_consumer_disconnects_total counter\n"
                    "sortie_pushd_slow_consumer_disconnects_total %llu\n"
                    "# HELP sortie_pushd_redis_reconnects_total Redis connections made again.\n"
                    "# TYPE sortie_pushd_redis_reconnects_total counter\n"
                    "sortie_pushd_redis_reconnects_total %llu\n"
                    "# HELP sortie_pushd_refused_total Requests refused (auth, limits, bad input).\n"
                    "# TYPE sortie_pushd_refused_total counter\n"
                    "sortie_pushd_refused_total %llu\n",
                    t.subscriptions, t.channels, up, (unsigned long long)t.events_in,
                    (unsigned long long)t.deliveries, (unsigned long long)t.slow_disconnects,
                    (unsigned long long)t.redis_reconnects, (unsigned long long)t.refused);
  sortie_buf_puts(o, "# HELP sortie_pushd_delivery_latency_ms From publish (event id time) to "
                     "queued for the client.\n"
                     "# TYPE sortie_pushd_delivery_latency_ms histogram\n");
  uint64_t cum = 0;
  for (int k = 0; k < PD_LAT_BUCKETS; k++) {
    cum += t.lat_bucket[k];
    if (k < PD_LAT_BUCKETS - 1)
      sortie_buf_printf(o, "sortie_pushd_delivery_latency_ms_bucket{le=\"%llu\"} %llu\n",
                        (unsigned long long)bounds[k], (unsigned long long)cum);
    else
      sortie_buf_printf(o, "sortie_pushd_delivery_latency_ms_bucket{le=\"+Inf\"} %llu\n",
                        (unsigned long long)cum);
  }
  sortie_buf_printf(o, "sortie_pushd_delivery_latency_ms_sum %llu\n"
                       "sortie_pushd_delivery_latency_ms_count %llu\n",
                    (unsigned long long)t.lat_sum_ms, (unsigned long long)t.lat_count);
}
