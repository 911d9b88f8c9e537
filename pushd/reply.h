/* Short HTTP answers through libmicrohttpd, with the headers every answer of
 * the daemon carries; problem+json errors (RFC 9457). */
#ifndef SORTIE_PUSHD_REPLY_H
#define SORTIE_PUSHD_REPLY_H

#include <stddef.h>

struct MHD_Connection;

/** Sets the base URI of problem types (api.problem_base; kept). */
void pd_reply_init(const char *problem_base);
/** Queues a response (`body` is copied) with the usual headers, and CORS
 * headers for an allowed `origin` (NULL or "" for none). MHD_YES / MHD_NO. */
int pd_reply(struct MHD_Connection *conn, unsigned status, const char *ctype, const char *body,
             size_t len, const char *origin);
/** A problem+json answer; counts it in sortie_pushd_refused_total. */
int pd_reply_problem(struct MHD_Connection *conn, unsigned status, const char *slug,
                     const char *title, const char *detail, const char *origin);

#endif
