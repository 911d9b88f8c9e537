/* libFuzzer target for pd_ws_accept_key (pushd/frame.c), which turns the
 * client's Sec-WebSocket-Key header into Sec-WebSocket-Accept: the answer is
 * checked against base64(SHA-1(key + GUID)) made here with a base64 encoder of
 * our own (RFC 6455 section 4.2.2); empty and oversized keys are refused. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static void b64(const unsigned char *in, size_t n, char *out)
{
  static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    out[o++] = a[v >> 18 & 63];
    out[o++] = a[v >> 12 & 63];
    out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? a[v & 63] : '=';
  }
  out[o] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int once;
  char out[29];
  if (!once) { /* the example of RFC 6455 section 1.3 */
    once = 1;
    if (pd_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out) != 0 ||
        strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0)
      abort();
  }
  /* a header value is a C string: the key ends at the first NUL */
  char *key = malloc(size + 1);
  if (key == NULL)
    return 0;
  memcpy(key, data, size);
  key[size] = '\0';
  size_t kl = strlen(key);

  memset(out, 'X', sizeof out);
  int r = pd_ws_accept_key(key, out);
  if (kl == 0 || kl + sizeof guid > 128) {
    if (r != -1)
      abort();
  } else {
    unsigned char *cat = malloc(kl + sizeof guid), md[SHA_DIGEST_LENGTH];
    if (cat == NULL)
      abort();
    memcpy(cat, key, kl);
    memcpy(cat + kl, guid, sizeof guid - 1);
    SHA1(cat, kl + sizeof guid - 1, md);
    char want[29];
    b64(md, sizeof md, want);
    if (r != 0 || memcmp(out, want, sizeof want) != 0)
      abort();
    free(cat);
  }
  free(key);
  return 0;
}
