/* Test clients for sortie-pushd over plain sockets: raw HTTP, SSE and WebSocket. */
/* An SSE reader and a WebSocket client (RFC 6455, masked client frames, plus
 * raw and malformed frames for abuse tests). Every call takes a timeout and
 * uses poll(2), so no call can hang; nothing here asserts (safe in threads). */
#ifndef SORTIE_TEST_PUSHCLIENT_H
#define SORTIE_TEST_PUSHCLIENT_H

#include <json-c/json.h>
#include <stddef.h>

/* milliseconds on a monotonic clock */
long long pc_now(void);
void pc_sleep_ms(int ms);

/* ---- raw HTTP ---- */

/* Connects to the host and port of `base` ("http://HOST:PORT[/...]"); the
 * socket is non-blocking. rcvbuf > 0 sets SO_RCVBUF before connecting.
 * Returns the socket or -1. */
int pc_connect(const char *base, int rcvbuf, int timeout_ms);

struct pc_resp {
  int status;  /* 0 when no status line came */
  char *head;  /* status line and header lines (CRLF-separated), NUL-terminated */
  char *body;  /* de-chunked body, NUL-terminated */
  size_t len;
};
/* value of header `name` in a head (case-insensitive) copied into out, or NULL */
char *pc_header(const char *head, const char *name, char *out, size_t n);

/* Sends "GET path HTTP/1.1" with Host, `headers` (zero or more lines, each
 * ending in CRLF; NULL for none) and Connection: close unless `headers` has a
 * Connection line. Returns the socket, -1. */
int pc_get_send(const char *base, const char *path, const char *headers, int timeout_ms);
/* Reads the whole answer on fd (Content-Length, chunked, or until close) and
 * closes fd. 0, or -1 when no complete head came in time. */
int pc_get_finish(int fd, struct pc_resp *out, int timeout_ms);
/* both at once */
int pc_get(const char *base, const char *path, const char *headers, struct pc_resp *out,
           int timeout_ms);
void pc_resp_free(struct pc_resp *r);

/* The raw text of each element of the array member `member` of the JSON object
 * text `json` (top level only), e.g. the envelopes of {"events":[...]} byte for
 * byte. Returns the count (-1 if there is no such array); free with
 * pc_strv_free. */
long pc_json_raw_items(const char *json, const char *member, char ***out);
void pc_strv_free(char **v, long n);

/* ---- Server-Sent Events ---- */

/* One message: the fields of a block of lines ended by a blank line. */
struct sse_msg {
  char *id;    /* the id: field, NULL when absent */
  char *event; /* the event: field, NULL when absent */
  char *data;  /* data: lines joined with "\n", NULL when there was none */
  long retry;  /* the retry: field, -1 when absent */
  char *raw;   /* the block as it came, comments included */
};

struct sse_client {
  int fd;
  int status;  /* of the response head; 0 when none came */
  char *head;
  char *body;  /* the body of a refused (non-200) answer */
  int closed;  /* the server ended the stream (EOF or reset) */
  /* every message, in order; `events` counts those with data */
  struct sse_msg *msgs;
  size_t nmsgs, capmsgs, nevents;
  size_t ncomments, nheartbeats; /* comment lines; those that are ": hb" */
  long retry;                    /* the last retry: seen, -1 */
  /* internals */
  int chunked, chstate;
  size_t chleft;
  char *raw, *in, *cur_raw;
  size_t rawlen, rawcap, inlen, incap, curlen, curcap;
  char *f_id, *f_event, *f_data;
  long f_retry;
  int f_any;
};

/* Opens GET `path` on `base` (token sent as Authorization: Bearer when not
 * NULL; Last-Event-ID when not NULL; extra header lines ending in CRLF).
 * Returns the client (check ->status), or NULL if it could not connect or no
 * head came within timeout_ms. rcvbuf > 0 sets SO_RCVBUF. */
struct sse_client *sse_open(const char *base, const char *path, const char *token,
                            const char *last_event_id, const char *extra_headers, int rcvbuf,
                            int timeout_ms);
/* Reads until the client holds at least n events (messages with data), the
 * stream ends, or timeout_ms passes. Returns nevents. */
size_t sse_read_events(struct sse_client *c, size_t n, int timeout_ms);
/* Reads until at least n messages of any kind; returns nmsgs. */
size_t sse_read_msgs(struct sse_client *c, size_t n, int timeout_ms);
/* Reads whatever comes for ms milliseconds (to show nothing more arrives). */
void sse_read_for(struct sse_client *c, int ms);
/* Reads until the server ends the stream: 1, or 0 at the timeout. */
int sse_wait_closed(struct sse_client *c, int timeout_ms);
/* Reads until an id-only message (the "caught up" marker) has come; returns
 * its id (owned by the client), or NULL at the timeout. */
const char *sse_wait_idonly(struct sse_client *c, int timeout_ms);
/* the i-th event (message with data), or NULL */
const struct sse_msg *sse_event(const struct sse_client *c, size_t i);
/* the id of the last message that had one, or NULL */
const char *sse_last_id(const struct sse_client *c);
/* Frees the messages read so far (nmsgs and nevents back to 0), for a
 * client that counts them as they come and must not keep thousands. */
void sse_forget(struct sse_client *c);
/* One non-blocking read of what is there: 1 if bytes came, 0 if none, and
 * c->closed set at the end of the stream. */
int sse_read_now(struct sse_client *c);
void sse_close(struct sse_client *c);

/* ---- WebSocket ---- */

struct ws_frame {
  int fin, opcode, masked;
  unsigned char *data; /* payload (unmasked), NUL-terminated */
  size_t len;
};

struct ws_client {
  int fd;
  int status;    /* 101 when upgraded */
  char *head;
  char *body;    /* the body of a refused answer */
  int accept_ok; /* Sec-WebSocket-Accept matched the key */
  int closed;    /* the TCP connection ended */
  int close_code;/* the server's close frame: its code, 1005 if it had none, -1 if none came */
  char close_reason[128];
  size_t npings;
  /* every text message received, in order; `next` is the first not yet taken */
  char **texts;
  size_t ntexts, captexts, next;
  /* internals */
  char *in;
  size_t inlen, incap;
  char *frag;
  size_t fraglen;
  int fragop;
};

/* The handshake on GET `path` (token as Authorization: Bearer unless NULL;
 * extra header lines ending in CRLF). Returns the client (check ->status and
 * ->accept_ok), or NULL if it could not connect or no head came in time. */
struct ws_client *ws_open(const char *base, const char *path, const char *token,
                          const char *extra_headers, int rcvbuf, int timeout_ms);
/* A text message in one masked frame. 0, -1 */
int ws_send_text(struct ws_client *c, const char *text);
/* Any frame, masked or not, payload as given (for abuse tests; `opcode` may
 * carry RSV bits 0x10, 0x20, 0x40, which go into the first byte). While it
 * sends it also reads (so a server that answers and stops reading cannot
 * block it). 0, or -1 when the connection failed before all was sent. */
int ws_send_frame(struct ws_client *c, int fin, int opcode, int masked, const void *p, size_t len,
                  int timeout_ms);
/* Bytes exactly as given. */
int ws_send_raw(struct ws_client *c, const void *p, size_t len, int timeout_ms);
/* The next frame as it came: 1, 0 at the timeout, -1 when the connection
 * ended. Close frames set close_code; pings are answered. */
int ws_recv_frame(struct ws_client *c, struct ws_frame *f, int timeout_ms);
void ws_frame_free(struct ws_frame *f);
/* Reads until ntexts >= n (or close or timeout); returns ntexts. */
size_t ws_read_texts(struct ws_client *c, size_t n, int timeout_ms);
/* The next text message not yet taken (owned by the client), or NULL. */
const char *ws_next_text(struct ws_client *c, int timeout_ms);
/* The next text message parsed (json_object_put it), or NULL. */
json_object *ws_next_json(struct ws_client *c, int timeout_ms);
/* Takes messages until one whose "type" is `type` (the others are taken and
 * skipped); parsed, or NULL at the timeout. */
json_object *ws_next_type(struct ws_client *c, const char *type, int timeout_ms);
/* Reads until the server's close frame or the end of the connection: the
 * close code, 0 if the connection ended without one, -1 at the timeout. */
int ws_wait_close(struct ws_client *c, int timeout_ms);
/* Reads until the TCP connection ends: 1, or 0 at the timeout. */
int ws_wait_eof(struct ws_client *c, int timeout_ms);
void ws_close(struct ws_client *c);

#endif
