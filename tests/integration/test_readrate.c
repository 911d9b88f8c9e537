/* GET /api/events is counted per reader (api.read_rate_per_min, here 5): the
 * reads past it are a 429 problem with Retry-After that reads and writes
 * nothing, and other readers go on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

SORTIE_WORLD_CONF("api.read_rate_per_min = 5\n");

static long read_events(const char *tok, struct http_resp *r)
{
  http("GET", "/api/events?channels=market:RATE&cursor=0", tok, NULL, NULL, NULL, r);
  return r->status;
}

/* Six reads in one clock minute: the first five answered, the sixth
 * refused. A minute may turn between two reads (the count starts again):
 * then the run is tried once more, from the start of the new minute. */
Test(readrate, reads_past_the_rate_are_429_and_others_go_on)
{
  char sub[128];
  snprintf(sub, sizeof sub, "%s", uniq("reader"));
  char *tok = token_for(sub, "user");
  long codes[6];
  long long minute = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    minute = now_ms() / 60000;
    for (int i = 0; i < 6; i++) {
      struct http_resp r;
      codes[i] = read_events(tok, &r);
      if (i == 5 && codes[i] == 429) {
        char ct[128], ra[32];
        cr_expect(http_header(&r, "Content-Type", ct, sizeof ct) &&
                      strstr(ct, "application/problem+json"),
                  "the refusal is not problem+json: %s", r.body);
        cr_expect(r.json && strstr(jget_str(r.json, "type"), "rate-limited"), "%s", r.body);
        cr_expect(http_header(&r, "Retry-After", ra, sizeof ra) && atoi(ra) >= 1 &&
                      atoi(ra) <= 60,
                  "Retry-After missing or out of range");
      }
      http_free(&r);
    }
    if (now_ms() / 60000 == minute)
      break;
  }
  for (int i = 0; i < 5; i++)
    cr_expect_eq(codes[i], 200, "read %d answered %ld", i + 1, codes[i]);
  cr_expect_eq(codes[5], 429, "the sixth read in a minute answered %ld", codes[5]);
  /* the refusal counted nothing more: the minute's count stays at 5 */
  char key[256], count[32];
  snprintf(key, sizeof key, "%srate:read:%s:%lld", kp(), sub, minute);
  const char *get[] = {"GET", key};
  char *v = rstr(2, get);
  snprintf(count, sizeof count, "%s", v ? v : "(none)");
  free(v);
  cr_expect_str_eq(count, "5", "the count of reads is %s", count);
  /* another reader is not held back */
  char *other = token_for(uniq("reader"), "user");
  struct http_resp r;
  cr_expect_eq(read_events(other, &r), 200, "another reader got %ld: %s", r.status, r.body);
  http_free(&r);
  free(other);
  free(tok);
}
