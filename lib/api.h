/* The REST API: one handler per row of the contract (spec/API.md), and the
 * route table that serves them all. The programs in cgi-bin/ are thin mains that
 * serve the whole table or one row of it. */
#ifndef SORTIE_API_H
#define SORTIE_API_H

#include <stddef.h>

#include "http.h"
#include "redis.h"

sortie_handler sortie_api_fire;          /* POST /api/fire */
sortie_handler sortie_api_fire_count;    /* GET  /api/signals/{id}/fire-count */
sortie_handler sortie_api_signal_get;    /* GET  /api/signals/{id} */
sortie_handler sortie_api_signal_create; /* POST /api/signals */
sortie_handler sortie_api_stats;         /* GET  /api/users/{id}/stats */
sortie_handler sortie_api_mission;       /* GET  /api/missions/{id} */
sortie_handler sortie_api_trade_close;   /* POST /api/trades/{id}/close */
sortie_handler sortie_api_publish;       /* POST /api/publish */
sortie_handler sortie_api_events;        /* GET  /api/events */
sortie_handler sortie_api_health;        /* GET  /health */
sortie_handler sortie_api_signal_list;   /* GET  /api/signals */
sortie_handler sortie_api_admin_stats;   /* GET  /api/admin/stats */
sortie_handler sortie_page_mission;      /* GET  /mission/{id} (HTML) */
sortie_handler sortie_page_missing;      /* GET  /mission/<not an id>: the HTML 404 */

/* Route flags as each row of the contract needs them. */
#define SORTIE_R_FIRE          {"POST", "/api/fire", sortie_api_fire, SORTIE_ROUTE_AUTH | SORTIE_ROUTE_JSON}
#define SORTIE_R_FIRE_COUNT    {"GET", "/api/signals/{}/fire-count", sortie_api_fire_count, SORTIE_ROUTE_PUBLIC}
#define SORTIE_R_SIGNAL_GET    {"GET", "/api/signals/{}", sortie_api_signal_get, SORTIE_ROUTE_PUBLIC}
#define SORTIE_R_SIGNAL_CREATE {"POST", "/api/signals", sortie_api_signal_create, SORTIE_ROUTE_AUTH | SORTIE_ROUTE_PRIV | SORTIE_ROUTE_JSON}
#define SORTIE_R_STATS         {"GET", "/api/users/{}/stats", sortie_api_stats, SORTIE_ROUTE_AUTH}
#define SORTIE_R_MISSION       {"GET", "/api/missions/{}", sortie_api_mission, SORTIE_ROUTE_AUTH}
#define SORTIE_R_TRADE_CLOSE   {"POST", "/api/trades/{}/close", sortie_api_trade_close, SORTIE_ROUTE_AUTH | SORTIE_ROUTE_PRIV | SORTIE_ROUTE_JSON}
#define SORTIE_R_PUBLISH       {"POST", "/api/publish", sortie_api_publish, SORTIE_ROUTE_AUTH | SORTIE_ROUTE_PRIV | SORTIE_ROUTE_JSON}
#define SORTIE_R_EVENTS        {"GET", "/api/events", sortie_api_events, SORTIE_ROUTE_AUTH}
#define SORTIE_R_HEALTH        {"GET", "/health", sortie_api_health, SORTIE_ROUTE_PUBLIC}
#define SORTIE_R_SIGNAL_LIST   {"GET", "/api/signals", sortie_api_signal_list, SORTIE_ROUTE_AUTH}
#define SORTIE_R_ADMIN_STATS   {"GET", "/api/admin/stats", sortie_api_admin_stats, SORTIE_ROUTE_AUTH | SORTIE_ROUTE_PRIV}
#define SORTIE_R_PAGE          {"GET", "/mission/{}", sortie_page_mission, SORTIE_ROUTE_PUBLIC}, \
                               {"GET", "/mission/{*}", sortie_page_missing, SORTIE_ROUTE_PUBLIC}

/** 503 after a Redis call returned NULL (api_reply.c): redis-unavailable when
 * the command never reached Redis (nothing was written), outcome-unknown when
 * it was sent and no reply came (see sortie_problem_outcome). */
void sortie_problem_redis(struct sortie_resp *r, struct sortie_app *app);
/** 503 outcome-unknown: a write may or may not have been done (no reply in
 * time, or fewer replicas than api.fire_wait_replicas confirmed it). `why` and
 * `how` (how the client learns the outcome) go into the detail. */
void sortie_problem_outcome(struct sortie_resp *r, const char *why, const char *how);

/** Passes a script's reply on: {status, json[, ...]}. For status >= 400 the
 * json is {slug, detail, extras} and becomes problem+json. Returns the status
 * written (0 if the reply was not of that form: then a 500 was written). The
 * reply stays the caller's. */
int sortie_resp_from_script(struct sortie_resp *r, struct sortie_app *app,
                            const sortie_reply *rep);

/** Every route, for the all-in-one program. */
extern const struct sortie_route sortie_api_routes[];
extern const size_t sortie_api_nroutes;

#endif
