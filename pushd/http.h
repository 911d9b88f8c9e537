/* The HTTP side of the daemon (http.c): libmicrohttpd in the worker's loop,
 * the checks of a stream request, and the takeover of its socket. */
#ifndef SORTIE_PUSHD_HTTP_H
#define SORTIE_PUSHD_HTTP_H

#include "cfg.h"
#include "loop.h"

/** Serves on listen_fd (owned by libmicrohttpd from now on) in loop l; cfg
 * is kept. 0 or -1. */
int pd_http_start(struct sortie_loop *l, const struct sortie_cfg *cfg, int listen_fd);
/** Stops serving (new connections are refused). */
void pd_http_stop(void);

#endif
