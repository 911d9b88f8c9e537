/* WebSocket conformance (RFC 6455), in the spirit of Autobahn|Testsuite's
 * categories, against sortie-pushd's echo endpoint (GET /echo, on here with
 * push.ws_echo = 1): a table of rows, each the frames to send and the frames
 * expected back. A row that expects no close ends with a close 1000 of ours,
 * which must be answered 1000 and nothing else first; every close from the
 * server must be followed by the end of the TCP connection. Failing rows are
 * named, all of them, in their category's failure message.
 *
 * Also here: the echo's caps (push.max_connections, push.outbuf_max, no
 * message-rate limit), and the close handshake of the normal /ws endpoint,
 * which shares the echo's code. test_ws_echo_off.c checks that /echo is a
 * 404 when push.ws_echo is unset. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_pushd_util.h"

SORTIE_WORLD_CONF("push.ws_echo = 1\n"
                  "push.workers = 1\n"
                  "push.max_connections = 8\n");

/* a wait for one expected frame, only a bound against a hang: no row waits
 * it out to show that nothing comes (our close frame is the marker after
 * the expected frames); a failing row costs about this much */
#define T_FRAME T_SHORT

/* ---- the table ---- */

/* bytes: a literal, or (s NULL) n bytes of an ASCII pattern */
struct bytes {
  const char *s;
  size_t n;
};
#define B(lit) {lit, sizeof lit - 1}
#define PAT(k) {NULL, k}

/* a frame to send. b0 is the first byte (FIN 0x80, RSV 0x70, opcode), with
 * 0x100 marking the entry as used */
struct snd {
  unsigned b0;
  uint8_t unmasked;
  uint8_t lenform; /* 0 minimal; 16 or 64 force that length field; 65: 64 with its top bit */
  uint16_t split;  /* > 0: the first `split` bytes, a pause, then the rest */
  struct bytes p;
};
#define FIN 0x80
#define F(b, ...) {.b0 = 0x100 | (b), .p = __VA_ARGS__}
#define TEXT(...) F(FIN | 1, __VA_ARGS__)
#define BIN(...) F(FIN | 2, __VA_ARGS__)

/* a frame expected back: op 1/2 an echo, 10 a pong, 8 a close with `code`
 * (NOCODE: an empty payload; NONE_OR_1000: either) and, when p is given, that
 * reason; op 0 ends the list */
struct exp {
  int op;
  int code;
  struct bytes p;
};
#define NOCODE 1005
#define NONE_OR_1000 (-1)
#define E(o, ...) {.op = o, .p = __VA_ARGS__}
#define CLOSE(c) {.op = 8, .code = c}
#define CLOSER(c, ...) {.op = 8, .code = c, .p = __VA_ARGS__}

struct row {
  const char *cat;
  const char *name;
  struct snd send[8];
  struct exp want[8];
};

static const struct row rows[] = {
    /* framing: lengths at each encoding's edges, echoed with the same opcode */
    {"framing", "text of 0 bytes", {TEXT(PAT(0))}, {E(1, PAT(0))}},
    {"framing", "text of 125 bytes (7-bit length)", {TEXT(PAT(125))}, {E(1, PAT(125))}},
    {"framing", "text of 126 bytes (16-bit length)", {TEXT(PAT(126))}, {E(1, PAT(126))}},
    {"framing", "text of 65535 bytes (16-bit length)", {TEXT(PAT(65535))}, {E(1, PAT(65535))}},
    {"framing", "text of 65536 bytes (64-bit length)", {TEXT(PAT(65536))}, {E(1, PAT(65536))}},
    {"framing", "binary of 0 bytes", {BIN(PAT(0))}, {E(2, PAT(0))}},
    {"framing", "binary of 125 bytes", {BIN(PAT(125))}, {E(2, PAT(125))}},
    {"framing", "binary of 126 bytes", {BIN(PAT(126))}, {E(2, PAT(126))}},
    {"framing", "binary of 65535 bytes", {BIN(PAT(65535))}, {E(2, PAT(65535))}},
    {"framing", "binary of 65536 bytes", {BIN(PAT(65536))}, {E(2, PAT(65536))}},
    {"framing", "binary with every kind of byte",
     {BIN(B("\x00\x01\x7f\x80\xfe\xff\x00"))}, {E(2, B("\x00\x01\x7f\x80\xfe\xff\x00"))}},
    {"framing", "two messages in one write, echoed in order",
     {TEXT(B("one")), BIN(B("two"))}, {E(1, B("one")), E(2, B("two"))}},
    {"framing", "a frame whose header comes in two writes",
     {{.b0 = 0x100 | FIN | 1, .split = 1, .p = B("split header")}}, {E(1, B("split header"))}},
    {"framing", "a 16-bit length for 5 bytes (not minimal) -> 1002",
     {{.b0 = 0x100 | FIN | 1, .lenform = 16, .p = B("hello")}}, {CLOSE(1002)}},
    {"framing", "a 64-bit length for 200 bytes (not minimal) -> 1002",
     {{.b0 = 0x100 | FIN | 1, .lenform = 64, .p = PAT(200)}}, {CLOSE(1002)}},
    {"framing", "a 64-bit length with its top bit set -> 1002",
     {{.b0 = 0x100 | FIN | 1, .lenform = 65, .p = PAT(70000)}}, {CLOSE(1002)}},
    {"framing", "an unmasked client frame -> 1002",
     {{.b0 = 0x100 | FIN | 1, .unmasked = 1, .p = B("hi")}}, {CLOSE(1002)}},
    {"framing", "a subscribe request is echoed, not handled",
     {TEXT(B("{\"action\":\"subscribe\",\"channels\":[\"signals\"]}"))},
     {E(1, B("{\"action\":\"subscribe\",\"channels\":[\"signals\"]}"))}},

    /* reserved bits: no extension is negotiated */
    {"reserved", "RSV1 on a text frame -> 1002", {F(FIN | 0x40 | 1, B("x"))}, {CLOSE(1002)}},
    {"reserved", "RSV2 on a text frame -> 1002", {F(FIN | 0x20 | 1, B("x"))}, {CLOSE(1002)}},
    {"reserved", "RSV3 on a text frame -> 1002", {F(FIN | 0x10 | 1, B("x"))}, {CLOSE(1002)}},
    {"reserved", "all RSV bits on a binary frame -> 1002", {F(FIN | 0x70 | 2, B("x"))},
     {CLOSE(1002)}},
    {"reserved", "RSV1 on a ping -> 1002", {F(FIN | 0x40 | 9, B("p"))}, {CLOSE(1002)}},
    {"reserved", "RSV2 on a close -> 1002", {F(FIN | 0x20 | 8, B("\x03\xe8"))}, {CLOSE(1002)}},
    {"reserved", "an echo, then RSV3: the echo comes, then 1002",
     {TEXT(B("first")), F(FIN | 0x10 | 1, B("x")), F(FIN | 9, B("late"))},
     {E(1, B("first")), CLOSE(1002)}},

    /* opcodes: 3-7 and 11-15 are reserved */
    {"opcodes", "opcode 3 -> 1002", {F(FIN | 3, B(""))}, {CLOSE(1002)}},
    {"opcodes", "opcode 4 -> 1002", {F(FIN | 4, B("x"))}, {CLOSE(1002)}},
    {"opcodes", "opcode 5 -> 1002", {F(FIN | 5, B("x"))}, {CLOSE(1002)}},
    {"opcodes", "opcode 6 -> 1002", {F(FIN | 6, B("x"))}, {CLOSE(1002)}},
    {"opcodes", "opcode 7 -> 1002", {F(FIN | 7, B("x"))}, {CLOSE(1002)}},
    {"opcodes", "opcode 11 -> 1002", {F(FIN | 11, B(""))}, {CLOSE(1002)}},
    {"opcodes", "opcode 12 -> 1002", {F(FIN | 12, B("x"))}, {CLOSE(1002)}},
    {"opcodes", "opcode 13 -> 1002", {F(FIN | 13, B("x"))}, {CLOSE(1002)}},
    {"opcodes", "opcode 14 -> 1002", {F(FIN | 14, B("x"))}, {CLOSE(1002)}},
    {"opcodes", "opcode 15 -> 1002", {F(FIN | 15, B("x"))}, {CLOSE(1002)}},
    {"opcodes", "an echo, then opcode 5, then a ping: the echo, then 1002",
     {TEXT(B("Hello")), F(FIN | 5, B("")), F(FIN | 9, B("p"))}, {E(1, B("Hello")), CLOSE(1002)}},

    /* ping and pong */
    {"ping", "an empty ping gets an empty pong", {F(FIN | 9, B(""))}, {E(10, B(""))}},
    {"ping", "a ping's payload comes back in the pong", {F(FIN | 9, B("Hello, world!"))},
     {E(10, B("Hello, world!"))}},
    {"ping", "a binary ping payload comes back", {F(FIN | 9, B("\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))},
     {E(10, B("\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))}},
    {"ping", "a ping of 125 bytes is answered", {F(FIN | 9, PAT(125))}, {E(10, PAT(125))}},
    {"ping", "a ping of 126 bytes -> 1002", {F(FIN | 9, PAT(126))}, {CLOSE(1002)}},
    {"ping", "an unsolicited pong is ignored", {F(FIN | 10, B("unasked")), TEXT(B("after"))},
     {E(1, B("after"))}},
    {"ping", "an unsolicited empty pong is ignored", {F(FIN | 10, B("")), TEXT(B("after"))},
     {E(1, B("after"))}},
    {"ping", "eight pings, eight pongs in order",
     {F(FIN | 9, B("0")), F(FIN | 9, B("1")), F(FIN | 9, B("2")), F(FIN | 9, B("3")),
      F(FIN | 9, B("4")), F(FIN | 9, B("5")), F(FIN | 9, B("6")), F(FIN | 9, B("7"))},
     {E(10, B("0")), E(10, B("1")), E(10, B("2")), E(10, B("3")), E(10, B("4")), E(10, B("5")),
      E(10, B("6")), E(10, B("7"))}},

    /* fragmentation */
    {"fragments", "text in two fragments is echoed whole",
     {F(1, B("Hello, ")), F(FIN | 0, B("world"))}, {E(1, B("Hello, world"))}},
    {"fragments", "text in 1-byte fragments is echoed whole",
     {F(1, B("f")), F(0, B("r")), F(0, B("a")), F(0, B("g")), F(0, B("m")), F(0, B("e")),
      F(0, B("n")), F(FIN | 0, B("t"))},
     {E(1, B("fragment"))}},
    {"fragments", "binary in fragments is echoed whole as binary",
     {F(2, B("\x00\x01")), F(0, B("\x02")), F(FIN | 0, B("\x03\xff"))},
     {E(2, B("\x00\x01\x02\x03\xff"))}},
    {"fragments", "empty fragments make an empty message",
     {F(1, B("")), F(0, B("")), F(FIN | 0, B(""))}, {E(1, B(""))}},
    {"fragments", "a ping between fragments is answered, then the message",
     {F(1, B("frag")), F(FIN | 9, B("between")), F(FIN | 0, B("ments"))},
     {E(10, B("between")), E(1, B("fragments"))}},
    {"fragments", "an unsolicited pong between fragments is ignored",
     {F(1, B("frag")), F(FIN | 10, B("pong")), F(FIN | 0, B("ments"))}, {E(1, B("fragments"))}},
    {"fragments", "a fragmented ping -> 1002", {F(9, B("ab")), F(FIN | 0, B("cd"))},
     {CLOSE(1002)}},
    {"fragments", "a fragmented pong -> 1002", {F(10, B("ab")), F(FIN | 0, B("cd"))},
     {CLOSE(1002)}},
    {"fragments", "a fragmented close -> 1002", {F(8, B("\x03")), F(FIN | 0, B("\xe8"))},
     {CLOSE(1002)}},
    {"fragments", "a continuation with no message started -> 1002", {F(FIN | 0, B("orphan"))},
     {CLOSE(1002)}},
    {"fragments", "a non-final continuation with no message started -> 1002",
     {F(0, B("orphan")), F(FIN | 0, B("x"))}, {CLOSE(1002)}},
    {"fragments", "a new text frame while a message is open -> 1002",
     {F(1, B("open")), TEXT(B("new"))}, {CLOSE(1002)}},
    {"fragments", "a new binary frame while a message is open -> 1002",
     {F(1, B("open")), F(2, B("new")), F(FIN | 0, B("x"))}, {CLOSE(1002)}},
    {"fragments", "a message, then a continuation after its end -> 1002",
     {F(1, B("a")), F(FIN | 0, B("b")), F(FIN | 0, B("c"))}, {E(1, B("ab")), CLOSE(1002)}},

    /* UTF-8 in text messages */
    {"utf8", "valid two-, three- and four-byte text is echoed",
     {TEXT(B("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xe2\x82\xac \xf0\x9f\x9a\x80"))},
     {E(1, B("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xe2\x82\xac \xf0\x9f\x9a\x80"))}},
    {"utf8", "U+10FFFF, the last code point, is echoed", {TEXT(B("\xf4\x8f\xbf\xbf"))},
     {E(1, B("\xf4\x8f\xbf\xbf"))}},
    {"utf8", "U+FFFF (a noncharacter, still UTF-8) is echoed", {TEXT(B("\xef\xbf\xbf"))},
     {E(1, B("\xef\xbf\xbf"))}},
    {"utf8", "a code point split over two fragments is echoed whole",
     {F(1, B("\xe2\x82")), F(FIN | 0, B("\xac"))}, {E(1, B("\xe2\x82\xac"))}},
    {"utf8", "a four-byte code point split over four fragments",
     {F(1, B("\xf0")), F(0, B("\x9f")), F(0, B("\x9a")), F(FIN | 0, B("\x80"))},
     {E(1, B("\xf0\x9f\x9a\x80"))}},
    {"utf8", "a lone 0xff -> 1007", {TEXT(B("a\xff" "b"))}, {CLOSE(1007)}},
    {"utf8", "a lone continuation byte -> 1007", {TEXT(B("\x80"))}, {CLOSE(1007)}},
    {"utf8", "an overlong '/' (c0 af) -> 1007", {TEXT(B("\xc0\xaf"))}, {CLOSE(1007)}},
    {"utf8", "an overlong three-byte NUL (e0 80 80) -> 1007", {TEXT(B("\xe0\x80\x80"))},
     {CLOSE(1007)}},
    {"utf8", "a surrogate (U+D800) -> 1007", {TEXT(B("\xed\xa0\x80"))}, {CLOSE(1007)}},
    {"utf8", "a surrogate (U+DFFF) -> 1007", {TEXT(B("\xed\xbf\xbf"))}, {CLOSE(1007)}},
    {"utf8", "above U+10FFFF (f4 90 80 80) -> 1007", {TEXT(B("\xf4\x90\x80\x80"))},
     {CLOSE(1007)}},
    {"utf8", "a five-byte form (f8 88 80 80 80) -> 1007", {TEXT(B("\xf8\x88\x80\x80\x80"))},
     {CLOSE(1007)}},
    {"utf8", "a sequence cut short at the end of the message -> 1007", {TEXT(B("ok\xe2\x82"))},
     {CLOSE(1007)}},
    {"utf8", "an invalid sequence across a fragment boundary -> 1007",
     {F(1, B("\xe2\x82")), F(FIN | 0, B("\x28"))}, {CLOSE(1007)}},
    {"utf8", "a sequence cut short at the last fragment's end -> 1007",
     {F(1, B("a\xe2")), F(FIN | 0, B(""))}, {CLOSE(1007)}},
    {"utf8", "invalid in a first fragment fails at once (no final fragment sent)",
     {F(1, B("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"))}, {CLOSE(1007)}},
    {"utf8", "binary messages are not checked", {BIN(B("\xff\xc0\xaf\xed\xa0\x80"))},
     {E(2, B("\xff\xc0\xaf\xed\xa0\x80"))}},

    /* limits: push.max_message is 65536 here (the default) */
    {"limits", "a single frame over push.max_message -> 1009", {TEXT(PAT(65537))},
     {CLOSE(1009)}},
    {"limits", "fragments adding up to over push.max_message -> 1009",
     {F(2, PAT(40000)), F(FIN | 0, PAT(40000))}, {CLOSE(1009)}},
    {"limits", "fragments adding up to exactly push.max_message are echoed",
     {F(2, PAT(32768)), F(FIN | 0, PAT(32768))}, {E(2, PAT(65536))}},

    /* the close handshake (close codes one by one: the close_codes test) */
    {"close", "close 1000 with a reason: code and reason echoed",
     {F(FIN | 8, B("\x03\xe8" "bye now"))}, {CLOSER(1000, B("bye now"))}},
    {"close", "close 1000 with a UTF-8 reason echoed",
     {F(FIN | 8, B("\x03\xe8" "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"))},
     {CLOSER(1000, B("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"))}},
    {"close", "close with a reason of 123 bytes (the most) echoed",
     {F(FIN | 8, B("\x03\xe8" "0123456789012345678901234567890123456789012345678901234567890123456"
                   "7890123456789012345678901234567890123456789012345678901"))},
     {CLOSER(1000, B("0123456789012345678901234567890123456789012345678901234567890123456"
                     "7890123456789012345678901234567890123456789012345678901"))}},
    {"close", "close with 126 bytes of payload (over a control frame's 125) -> 1002",
     {F(FIN | 8, PAT(126))}, {CLOSE(1002)}},
    {"close", "close with no payload: a close without a code (or 1000)", {F(FIN | 8, B(""))},
     {CLOSE(NONE_OR_1000)}},
    {"close", "close with a 1-byte payload -> 1002", {F(FIN | 8, B("\x03"))}, {CLOSE(1002)}},
    {"close", "close with a reason that is not UTF-8 -> 1007",
     {F(FIN | 8, B("\x03\xe8" "a\xff" "b"))}, {CLOSE(1007)}},
    {"close", "close with a reason cut short in a sequence -> 1007",
     {F(FIN | 8, B("\x03\xe8" "ab\xe2\x82"))}, {CLOSE(1007)}},
    {"close", "close whose reason arrives in two writes (inside the code) is echoed",
     {{.b0 = 0x100 | FIN | 8, .split = 7, .p = B("\x03\xe8" "\xc3\xa9t\xc3\xa9")}},
     {CLOSER(1000, B("\xc3\xa9t\xc3\xa9"))}},
    {"close", "close whose reason arrives in two writes (inside a code point) is echoed",
     {{.b0 = 0x100 | FIN | 8, .split = 9, .p = B("\x03\xe8" "\xc3\xa9t\xc3\xa9")}},
     {CLOSER(1000, B("\xc3\xa9t\xc3\xa9"))}},
    {"close", "close whose header arrives in two writes is echoed",
     {{.b0 = 0x100 | FIN | 8, .split = 1, .p = B("\x03\xe8" "ok")}}, {CLOSER(1000, B("ok"))}},
    {"close", "nothing is echoed after a close",
     {F(FIN | 8, B("\x03\xe8")), TEXT(B("after the close")), F(FIN | 9, B("p"))},
     {CLOSE(1000)}},
    {"close", "a message before the close is echoed first",
     {TEXT(B("last words")), F(FIN | 8, B("\x03\xe8"))}, {E(1, B("last words")), CLOSE(1000)}},
    {"close", "a ping between fragments, then a close: pong, then the close",
     {F(1, B("never")), F(FIN | 9, B("p")), F(FIN | 8, B("\x03\xe9"))},
     {E(10, B("p")), CLOSE(1001)}},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* ---- sending and checking ---- */

static unsigned char pattern_at(size_t i)
{
  return (unsigned char)"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_"[i % 64];
}

static const unsigned char *bytes_of(struct bytes b, unsigned char **owned)
{
  *owned = NULL;
  if (b.s)
    return (const unsigned char *)b.s;
  *owned = malloc(b.n + 1);
  for (size_t i = 0; i < b.n; i++)
    (*owned)[i] = pattern_at(i);
  return *owned;
}

/* the frame `s` as bytes (malloc'd), masked with a fixed key unless unmasked */
static unsigned char *build(const struct snd *s, size_t *outlen)
{
  unsigned char *own;
  const unsigned char *p = bytes_of(s->p, &own);
  size_t n = s->p.n;
  unsigned char *f = malloc(n + 14), mask = s->unmasked ? 0 : 0x80;
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t o = 0;
  f[o++] = (unsigned char)(s->b0 & 0xff);
  if (s->lenform == 0 && n < 126) {
    f[o++] = mask | (unsigned char)n;
  } else if (s->lenform == 16 || (s->lenform == 0 && n < 65536)) {
    f[o++] = mask | 126;
    f[o++] = (unsigned char)(n >> 8);
    f[o++] = (unsigned char)n;
  } else {
    uint64_t len = n;
    if (s->lenform == 65)
      len |= 1ull << 63;
    f[o++] = mask | 127;
    for (int i = 7; i >= 0; i--)
      f[o++] = (unsigned char)(len >> (8 * i));
  }
  if (mask) {
    memcpy(f + o, key, 4);
    o += 4;
  }
  for (size_t i = 0; i < n; i++)
    f[o + i] = mask ? p[i] ^ key[i % 4] : p[i];
  *outlen = o + n;
  free(own);
  return f;
}

/* failures of the current category, one line per row */
static char fails[16384];
static int nfails;

static void row_fail(const struct row *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void row_fail(const struct row *r, const char *fmt, ...)
{
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  size_t l = strlen(fails);
  snprintf(fails + l, sizeof fails - l, "\n  [%s / %s] %s", r->cat, r->name, what);
  nfails++;
}

/* the next frame that is not one of the server's own pings: 1, 0 (timeout),
 * -1 (the connection ended) */
static int next_frame(struct ws_client *c, struct ws_frame *f, int ms)
{
  for (;;) {
    int r = ws_recv_frame(c, f, ms);
    if (r != 1 || f->opcode != 9)
      return r;
    ws_frame_free(f);
  }
}

static const char *op_name(int op)
{
  switch (op) {
  case 1: return "text";
  case 2: return "binary";
  case 8: return "close";
  case 9: return "ping";
  case 10: return "pong";
  default: return "other";
  }
}

/* Opens the endpoint: /echo with no token, or /ws with one (past its
 * connection_status message). A 503 (another test holding the few
 * connections this world allows) is tried again for up to 20 s. */
static struct ws_client *open_ws(const char *path, const char *token)
{
  long long end = pc_now() + 20000;
  for (;;) {
    struct ws_client *c = ws_open(world_push_base(), path, token, NULL, 0, T_SHORT);
    if (c && c->status == 503 && pc_now() < end) {
      ws_close(c);
      pc_sleep_ms(50);
      continue;
    }
    if (c && c->status == 101 && token) {
      const char *hello = ws_next_text(c, T_SHORT);
      if (hello == NULL || strstr(hello, "connection_status") == NULL) {
        ws_close(c);
        return NULL;
      }
    }
    return c;
  }
}

/* Runs one row on a fresh connection; a failure is recorded, not asserted. */
static void run_row(const struct row *r, const char *path, const char *token)
{
  struct ws_client *c = open_ws(path, token);
  if (c == NULL || c->status != 101 || !c->accept_ok) {
    row_fail(r, "no WebSocket: status %d", c ? c->status : 0);
    ws_close(c);
    return;
  }
  for (size_t i = 0; i < 8 && r->send[i].b0; i++) {
    size_t n;
    unsigned char *f = build(&r->send[i], &n);
    size_t cut = r->send[i].split && r->send[i].split < n ? r->send[i].split : 0;
    /* the server may close before all is sent: failures to send are not checked */
    if (cut) {
      ws_send_raw(c, f, cut, T_SHORT);
      pc_sleep_ms(100);
    }
    ws_send_raw(c, f + cut, n - cut, T_SHORT);
    free(f);
  }
  int closed = 0;
  for (size_t i = 0; i < 8 && r->want[i].op && !closed; i++) {
    const struct exp *w = &r->want[i];
    struct ws_frame f;
    int got = next_frame(c, &f, T_FRAME);
    if (got != 1) {
      row_fail(r, "expected %s #%zu, got %s", op_name(w->op), i,
               got == 0 ? "nothing in time" : "the end of the connection");
      ws_close(c);
      return;
    }
    unsigned char *own;
    const unsigned char *want = bytes_of(w->p, &own);
    if (f.opcode != w->op) {
      if (f.opcode == 8)
        row_fail(r, "expected %s #%zu, got close %d '%s'", op_name(w->op), i, c->close_code,
                 c->close_reason);
      else
        row_fail(r, "expected %s #%zu, got %s (%zu bytes)", op_name(w->op), i,
                 op_name(f.opcode), f.len);
    } else if (w->op == 8) {
      closed = 1;
      int code = c->close_code;
      if (w->code == NONE_OR_1000 ? (code != NOCODE && code != 1000) : code != w->code)
        row_fail(r, "close %d ('%s'), expected %d", code, c->close_reason, w->code);
      else if (w->p.s && (f.len != w->p.n + 2 || memcmp(f.data + 2, want, w->p.n) != 0))
        row_fail(r, "close reason '%s', expected '%.*s'", c->close_reason, (int)w->p.n, w->p.s);
    } else if (f.len != w->p.n || memcmp(f.data, want, f.len) != 0) {
      row_fail(r, "%s #%zu: %zu bytes that differ, expected %zu", op_name(w->op), i, f.len,
               w->p.n);
    } else if (f.masked || !f.fin) {
      row_fail(r, "%s #%zu: masked %d, fin %d (a server frame is whole and unmasked)",
               op_name(w->op), i, f.masked, f.fin);
    }
    free(own);
    int was_close = f.opcode == 8;
    ws_frame_free(&f);
    if (was_close && !closed) {
      ws_close(c);
      return; /* an unexpected close: already recorded */
    }
  }
  if (!closed) {
    /* still open: it must take a close of ours and answer it, nothing first */
    ws_send_frame(c, 1, 8, 1, "\x03\xe8" "done", 6, T_SHORT);
    struct ws_frame f;
    int got = next_frame(c, &f, T_FRAME);
    if (got != 1 || f.opcode != 8 || c->close_code != 1000) {
      row_fail(r, "after the expected frames: %s, expected only the close 1000 reply",
               got != 1 ? "no frame" : op_name(f.opcode));
      if (got == 1)
        ws_frame_free(&f);
      ws_close(c);
      return;
    }
    ws_frame_free(&f);
  }
  if (!ws_wait_eof(c, T_FRAME))
    row_fail(r, "the server did not end the TCP connection after the close");
  ws_close(c);
}

static void run_category(const char *cat)
{
  fails[0] = '\0';
  nfails = 0;
  int n = 0;
  for (size_t i = 0; i < NROWS; i++) {
    if (strcmp(rows[i].cat, cat) != 0)
      continue;
    run_row(&rows[i], "/echo", NULL);
    n++;
  }
  cr_assert_gt(n, 0, "no rows in %s", cat);
  cr_assert_eq(nfails, 0, "%d of %d rows of '%s' failed:%s", nfails, n, cat, fails);
  cr_log_info("%s: %d rows passed", cat, n);
}

Test(conformance, framing) { run_category("framing"); }
Test(conformance, reserved_bits) { run_category("reserved"); }
Test(conformance, opcodes) { run_category("opcodes"); }
Test(conformance, ping_pong) { run_category("ping"); }
Test(conformance, fragmentation) { run_category("fragments"); }
Test(conformance, utf8) { run_category("utf8"); }
Test(conformance, limits) { run_category("limits"); }
Test(conformance, close_handshake) { run_category("close"); }

/* ---- close codes, one row each ---- */

/* RFC 6455 7.4 and the IANA registry: what a peer may send */
static const struct {
  int code;
  int valid;
} codes[] = {{0, 0},    {999, 0},  {1000, 1}, {1001, 1}, {1002, 1}, {1003, 1}, {1004, 0},
             {1005, 0}, {1006, 0}, {1007, 1}, {1008, 1}, {1009, 1}, {1010, 1}, {1011, 1},
             {1012, 1}, {1013, 1}, {1014, 1}, {1015, 0}, {1016, 0}, {1100, 0}, {2000, 0},
             {2999, 0}, {3000, 1}, {3999, 1}, {4000, 1}, {4999, 1}, {5000, 0}, {65535, 0}};

/* each code on `path`: a valid one echoed (with its reason), any other 1002 */
static void run_codes(const char *path, const char *token, const char *cat)
{
  fails[0] = '\0';
  nfails = 0;
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++) {
    char payload[16], name[64];
    payload[0] = (char)(codes[i].code >> 8);
    payload[1] = (char)(codes[i].code & 0xff);
    memcpy(payload + 2, "why", 3);
    snprintf(name, sizeof name, "close %d -> %s", codes[i].code,
             codes[i].valid ? "echoed" : "1002");
    struct row r = {.cat = cat, .name = name};
    r.send[0] = (struct snd){.b0 = 0x100 | FIN | 8, .p = {payload, 5}};
    r.want[0] = codes[i].valid ? (struct exp)CLOSER(codes[i].code, B("why")) : (struct exp)CLOSE(1002);
    run_row(&r, path, token);
  }
  cr_assert_eq(nfails, 0, "%d of %zu close codes on %s failed:%s", nfails, n, path, fails);
}

Test(conformance, close_codes) { run_codes("/echo", NULL, "close codes"); }

/* ---- the normal endpoint: the same close handshake ---- */

/* /ws shares the echo's close handling (ws.c): every code, the 1-byte
 * payload, a reason that is not UTF-8, a reason split over two writes */
Test(conformance, ws_endpoint_close_handshake)
{
  char *tok = token_for(uniq("u"), "user");
  run_codes("/ws", tok, "/ws close codes");
  static const struct row ws_rows[] = {
      {"/ws close", "close with no payload", {F(FIN | 8, B(""))}, {CLOSE(NONE_OR_1000)}},
      {"/ws close", "close with a 1-byte payload -> 1002", {F(FIN | 8, B("\x03"))}, {CLOSE(1002)}},
      {"/ws close", "close with a reason that is not UTF-8 -> 1007",
       {F(FIN | 8, B("\x03\xe8" "a\xff"))}, {CLOSE(1007)}},
      {"/ws close", "close whose reason arrives in two writes is echoed",
       {{.b0 = 0x100 | FIN | 8, .split = 9, .p = B("\x03\xe8" "\xc3\xa9t\xc3\xa9")}},
       {CLOSER(1000, B("\xc3\xa9t\xc3\xa9"))}},
  };
  for (size_t i = 0; i < sizeof ws_rows / sizeof ws_rows[0]; i++)
    run_row(&ws_rows[i], "/ws", tok);
  free(tok);
  cr_assert_eq(nfails, 0, "%d rows on /ws failed:%s", nfails, fails);
}

/* ---- the echo's caps ---- */

/* The message-rate limit of /ws (50 a second) is not applied to the echo:
 * 500 messages at once all come back, in order. */
Test(conformance, echo_has_no_message_rate_limit)
{
  struct ws_client *c = open_ws("/echo", NULL);
  cr_assert(c && c->status == 101);
  for (int i = 0; i < 500; i++) {
    char m[16];
    snprintf(m, sizeof m, "m%d", i);
    cr_assert_eq(ws_send_text(c, m), 0);
  }
  for (int i = 0; i < 500; i++) {
    char m[16];
    snprintf(m, sizeof m, "m%d", i);
    const char *t = ws_next_text(c, T_SHORT);
    cr_assert_not_null(t, "echo %d of 500 missing", i);
    cr_assert_str_eq(t, m);
  }
  ws_close(c);
}

/* An echo client counts against push.max_connections (8 in this world, one
 * worker): with the echoes open, the next is refused with 503. */
Test(conformance, echo_counts_against_max_connections)
{
  struct ws_client *c[12] = {0};
  int open = 0, refused = 0;
  for (int i = 0; i < 12 && !refused; i++) {
    c[i] = ws_open(world_push_base(), "/echo", NULL, NULL, 0, T_SHORT);
    cr_assert_not_null(c[i]);
    if (c[i]->status == 101)
      open++;
    else if (c[i]->status == 503)
      refused = 1;
  }
  /* another test of this program may hold one or two of the 8 */
  cr_assert(refused, "12 echo connections and no 503");
  cr_assert(open >= 6 && open <= 8, "%d echo connections before the 503", open);
  for (int i = 0; i < 12; i++)
    ws_close(c[i]);
}

/* A client that sends and never reads what comes back is cut off at
 * push.outbuf_max, as a slow consumer, like any other. */
Test(conformance, echo_client_that_does_not_read_is_cut_off)
{
  double slow0 = metric("sortie_pushd_slow_consumer_disconnects_total");
  struct ws_client *c = ws_open(world_push_base(), "/echo", NULL, NULL, 4096, T_SHORT);
  cr_assert(c && c->status == 101);
  struct snd s = {.b0 = FIN | 2, .p = PAT(60000)};
  size_t n;
  unsigned char *f = build(&s, &n);
  /* written without reading (ws_send_raw would read), for up to 64 MB */
  size_t sent = 0;
  int cut = 0;
  long long end = pc_now() + T_LONG;
  while (!cut && sent < (64u << 20) && pc_now() < end) {
    struct pollfd p = {.fd = c->fd, .events = POLLOUT};
    if (poll(&p, 1, 200) <= 0)
      continue;
    for (size_t o = 0; o < n;) {
      ssize_t w = send(c->fd, f + o, n - o, MSG_NOSIGNAL);
      if (w > 0) {
        o += (size_t)w;
        sent += (size_t)w;
      } else if (w < 0 && errno == EAGAIN) {
        struct pollfd q = {.fd = c->fd, .events = POLLOUT};
        if (poll(&q, 1, 200) <= 0 && pc_now() >= end)
          break;
      } else {
        cut = 1;
        break;
      }
    }
  }
  free(f);
  double slow1 = -1;
  for (int i = 0; i < 200 && slow1 <= slow0; i++) { /* up to 20 s */
    slow1 = metric("sortie_pushd_slow_consumer_disconnects_total");
    if (slow1 <= slow0)
      pc_sleep_ms(100);
  }
  cr_assert_gt(slow1, slow0, "not cut off after %zu bytes sent (slow consumers %g -> %g)", sent,
               slow0, slow1);
  ws_close(c);
}
