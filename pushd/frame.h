/* The wire formats the daemon writes by hand (frame.c), apart from the
 * transports so that they can be fuzzed alone (tests/fuzz/fuzz_frame.c). */
#ifndef SORTIE_PUSHD_FRAME_H
#define SORTIE_PUSHD_FRAME_H

#include <stddef.h>

#include "buf.h"

/** Appends one SSE message to `out`: optional `id:` and `event:` lines, then
 * `data` (borrowed) split into one `data:` line per line (CR, LF or CRLF),
 * then a blank line. A NULL or empty id or event is left out. */
void pd_sse_frame(struct sortie_buf *out, const char *id, const char *event, const char *data,
                  size_t len);

/** Appends a server-to-client WebSocket frame (FIN set, unmasked). */
void pd_ws_frame(struct sortie_buf *out, int opcode, const void *payload, size_t len);
/** Sec-WebSocket-Accept for a client key: 28 characters and a NUL into out;
 * 0, or -1 for an empty or oversized key. */
int pd_ws_accept_key(const char *key, char out[29]);

#endif
