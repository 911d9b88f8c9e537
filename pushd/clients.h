/* The worker's clients (clients.c): making one, closing it (its
 * subscriptions and resumes end, its limit slot goes back), the list of them
 * for heartbeats, shutdown and counts. Above channel.h and resume.h, which
 * it calls when a client closes or its queue drains. */
#ifndef SORTIE_PUSHD_CLIENTS_H
#define SORTIE_PUSHD_CLIENTS_H

#include <stdint.h>

#include "cfg.h"
#include "client.h"
#include "loop.h"

/** Sets up the client layer: the loop, the configuration (kept, must
 * outlive it) and this worker's number. */
void pd_clients_init(struct sortie_loop *l, const struct sortie_cfg *cfg, int worker);
const struct sortie_cfg *pd_clients_cfg(void);
int pd_clients_worker(void);

/** A new client of `tp` on socket `fd` (-1: none; owned from now on), on
 * the worker's list; `who` is copied. The client is the worker's: it is
 * freed at the end of the turn after pd_client_close. */
struct pd_client *pd_client_new(const struct pd_transport *tp, int fd,
                                const struct sortie_identity *who, uint64_t serial, int counted);
/** Starts the teardown (see pd_conn_close): subscriptions and resumes end,
 * the limit slot is given back; freed at the end of the turn. */
void pd_client_close(struct pd_client *c, const char *why);
/** Sets c's one deadline: at unix second `at` (wall clock; 0: none) its
 * transport's expire() is called, once (it may set the next). Replaces an
 * earlier one; a closed client has none. pd_client_new sets the first at the
 * token's exp. All the worker's deadlines share one timer: a min-heap of
 * clients keyed on the time, so setting one is O(log n) and a tick touches
 * only the clients that are due. Costs 8 bytes in the client and a pointer
 * in the heap. */
void pd_client_deadline(struct pd_client *c, long at);
/** Clients of every transport now. */
uint32_t pd_clients_count(void);
/** Calls tp's heartbeat (or shutdown) for each of its live clients. */
void pd_clients_heartbeat(const struct pd_transport *tp);
void pd_clients_shutdown(void);
/** Renews the limit slots in Redis of the counted connections whose serial
 * is `slice` modulo `nslices` (all of them over nslices calls), in batches. */
void pd_clients_refresh_limits(unsigned slice, unsigned nslices);

#endif
