/* The wire formats the daemon writes by hand, kept apart from the transports
 * so they can be fuzzed alone (tests/fuzz/fuzz_frame.c): SSE messages, server
 * WebSocket frames, and the handshake's accept key. These are a few lines each;
 * wslay reads what clients send, and writes close/pong frames itself. */
#include "frame.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

void pd_sse_frame(struct sortie_buf *out, const char *id, const char *event, const char *data,
                  size_t len)
{
  if (id && *id) {
    sortie_buf_puts(out, "id: ");
    sortie_buf_puts(out, id);
    sortie_buf_putc(out, '\n');
  }
  if (event && *event) {
    sortie_buf_puts(out, "event: ");
    sortie_buf_puts(out, event);
    sortie_buf_putc(out, '\n');
  }
  /* one data: line per line of the payload; CR, LF and CRLF all end a line in
   * SSE, so a payload carrying any of them cannot end the message early */
  const char *p = data, *end = data + len;
  for (;;) {
    const char *q = p;
    while (q < end && *q != '\n' && *q != '\r')
      q++;
    sortie_buf_puts(out, "data: ");
    sortie_buf_append(out, p, (size_t)(q - p));
    sortie_buf_putc(out, '\n');
    if (q == end)
      break;
    if (*q == '\r' && q + 1 < end && q[1] == '\n')
      q++;
    p = q + 1;
  }
  sortie_buf_putc(out, '\n');
}

void pd_ws_frame(struct sortie_buf *out, int opcode, const void *payload, size_t len)
{
  unsigned char h[10];
  size_t hl;
  h[0] = (unsigned char)(0x80 | (opcode & 0x0f));
  if (len < 126) {
    h[1] = (unsigned char)len;
    hl = 2;
  } else if (len < 65536) {
    h[1] = 126;
    h[2] = (unsigned char)(len >> 8);
    h[3] = (unsigned char)len;
    hl = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++)
      h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    hl = 10;
  }
  sortie_buf_append(out, h, hl);
  sortie_buf_append(out, payload, len);
}

int pd_ws_accept_key(const char *key, char out[29])
{
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  char buf[128];
  size_t kl = strlen(key);
  if (kl == 0 || kl + sizeof guid > sizeof buf)
    return -1;
  memcpy(buf, key, kl);
  memcpy(buf + kl, guid, sizeof guid - 1);
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)buf, kl + sizeof guid - 1, md);
  EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
  return 0;
}

