/* The three transports, as tables (client.h's struct pd_transport): the
 * HTTP side picks one by path and calls its start(); nobody else names
 * them. */
#ifndef SORTIE_PUSHD_TRANSPORT_H
#define SORTIE_PUSHD_TRANSPORT_H

#include "clients.h"

extern const struct pd_transport pd_sse_transport;  /* GET /events */
extern const struct pd_transport pd_ws_transport;   /* GET /ws */
extern const struct pd_transport pd_poll_transport; /* GET /poll */

/** The MHD handler's second call for a long-poll (c from poll's start):
 * queues its answer once it has one (the body is copied by MHD; `origin` is
 * borrowed). MHD_YES / MHD_NO. */
int pd_poll_respond(struct pd_client *c, struct MHD_Connection *conn, const char *origin);
/** The MHD request of a long-poll ended (answered or dropped). */
void pd_poll_finished(struct pd_client *c);

#endif
