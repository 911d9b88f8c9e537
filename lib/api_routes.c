/* The whole REST route table (the all-in-one program serves it). */
#include "api.h"

const struct sortie_route sortie_api_routes[] = {
    SORTIE_R_FIRE,   SORTIE_R_FIRE_COUNT,  SORTIE_R_SIGNAL_GET, SORTIE_R_SIGNAL_CREATE,
    SORTIE_R_STATS,  SORTIE_R_MISSION,     SORTIE_R_TRADE_CLOSE, SORTIE_R_PUBLISH,
    SORTIE_R_EVENTS, SORTIE_R_HEALTH,      SORTIE_R_SIGNAL_LIST, SORTIE_R_ADMIN_STATS,
    SORTIE_R_PAGE,
};
const size_t sortie_api_nroutes = sizeof sortie_api_routes / sizeof sortie_api_routes[0];
