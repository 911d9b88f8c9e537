/* A WebSocket ping flood on a 1-worker daemon, beside 20 well-behaved SSE
 * clients receiving 40 events: the flooder (one that never reads, then one
 * that reads everything) must be closed, the others must get every event,
 * and the daemon's memory must stay bounded. Before, one flooder took the
 * worker to more than 1 GB and held everyone's events for seconds. One line
 * on stderr, "COUNTS flood: ...", carries the figures. */
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../integration/test_pushd_util.h"

SORTIE_WORLD_CONF("push.workers = 1\n");

#define NOK 20
#define NEV 40
#define FLOOD_MS 3000

struct flood {
  struct ws_client *ws;
  int reads;          /* the flooder reads what it is sent */
  long long sent;     /* ping frames */
  int closed;         /* the daemon ended the connection */
  long long closed_ms;
  int code;           /* the close code it saw, if it read one */
  unsigned char tail[4];
};

static void *flooder(void *ud)
{
  struct flood *fl = ud;
  static const unsigned char ping[6] = {0x89, 0x80, 1, 2, 3, 4}; /* masked, empty */
  unsigned char burst[6 * 512];
  for (size_t i = 0; i < sizeof burst; i += 6)
    memcpy(burst + i, ping, 6);
  long long t0 = pc_now();
  char sink[65536];
  while (pc_now() - t0 < FLOOD_MS) {
    ssize_t n = send(fl->ws->fd, burst, sizeof burst, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0)
      fl->sent += n / 6;
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      fl->closed = 1;
      break;
    }
    if (fl->reads) {
      ssize_t r = recv(fl->ws->fd, sink, sizeof sink, MSG_DONTWAIT);
      if (r == 0) {
        fl->closed = 1;
        break;
      }
      /* a close frame (0x88, length, code) may straddle two reads: the
       * last three bytes of each read are kept in front of the next */
      for (ssize_t i = 0; i < r && fl->code == 0; i++) {
        fl->tail[0] = fl->tail[1];
        fl->tail[1] = fl->tail[2];
        fl->tail[2] = fl->tail[3];
        fl->tail[3] = (unsigned char)sink[i];
        if (fl->tail[0] == 0x88 && (fl->tail[1] & 0x7f) >= 2)
          fl->code = (fl->tail[2] << 8) | fl->tail[3];
      }
    } else {
      /* not reading; the connection's end still shows as an error on send */
      pc_sleep_ms(0);
    }
  }
  fl->closed_ms = pc_now() - t0;
  if (!fl->closed) { /* did the daemon end it? drain and look for EOF (20 s: a hang bound) */
    long long end = pc_now() + 20000;
    while (pc_now() < end) {
      ssize_t r = recv(fl->ws->fd, sink, sizeof sink, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        fl->closed = 1;
        break;
      }
      if (r < 0)
        pc_sleep_ms(20);
    }
  }
  return NULL;
}

static void run_flood(int reads, long *rss_before, long *hwm_after, struct flood *fl,
                      int *ok_complete, long long *p99_ms)
{
  const char *ch = chan("market");
  struct sse_client *ok[NOK];
  for (int i = 0; i < NOK; i++) {
    char *u = strf("flood-ok-%d-%d", reads, i);
    char *tok = token_for(u, "user");
    ok[i] = sse_ok(ch, tok, NULL, NULL);
    cr_assert_not_null(sse_wait_idonly(ok[i], T_SHORT));
    sse_forget(ok[i]);
    free(tok);
    free(u);
  }
  char *ftok = token_for(reads ? "flooder-reads" : "flooder", "user");
  memset(fl, 0, sizeof *fl);
  fl->ws = ws_ok(ftok);
  fl->reads = reads;
  *rss_before = pushd_worker_kib("VmRSS:");
  pthread_t th;
  pthread_create(&th, NULL, flooder, fl);
  /* the others' events while the flood goes on: latency from publish to receipt */
  static long long lat[NOK * NEV];
  int nlat = 0;
  for (int k = 0; k < NEV; k++) {
    char d[32];
    snprintf(d, sizeof d, "{\"k\":%d}", k);
    char *id = publish_ok(ch, "market_update", d);
    long long t0 = pc_now();
    for (int i = 0; i < NOK; i++) {
      size_t before = ok[i]->nevents;
      sse_read_events(ok[i], before + 1, T_LONG);
      if (ok[i]->nevents > before)
        lat[nlat++] = pc_now() - t0;
    }
    free(id);
    pc_sleep_ms(FLOOD_MS / NEV);
  }
  pthread_join(th, NULL);
  *hwm_after = pushd_worker_kib("VmHWM:");
  /* complete: every event once, nothing more: a marker published now is
   * each one's next event (no quiet window) */
  char *mark = publish_ok(ch, "market_update", "{\"marker\":1}");
  *ok_complete = 0;
  for (int i = 0; i < NOK; i++) {
    sse_read_events(ok[i], NEV + 1, T_LONG);
    const struct sse_msg *m = sse_event(ok[i], NEV);
    *ok_complete += ok[i]->nevents == NEV + 1 && m && m->id && strcmp(m->id, mark) == 0;
    sse_close(ok[i]);
  }
  free(mark);
  for (int i = 1; i < nlat; i++) /* insertion sort: small */
    for (int j = i; j > 0 && lat[j] < lat[j - 1]; j--) {
      long long t = lat[j];
      lat[j] = lat[j - 1];
      lat[j - 1] = t;
    }
  *p99_ms = nlat ? lat[(nlat * 99) / 100 < nlat ? (nlat * 99) / 100 : nlat - 1] : -1;
  ws_close(fl->ws);
  free(ftok);
}

Test(flood, a_ping_flooder_is_closed_and_the_others_are_served, .timeout = 90)
{
  for (int reads = 0; reads < 2; reads++) {
    struct flood fl;
    long before, hwm;
    int complete;
    long long p99;
    run_flood(reads, &before, &hwm, &fl, &complete, &p99);
    fprintf(stderr,
            "COUNTS flood: flooder %s: pings sent=%lld closed=%d (close code %d) | %d of %d "
            "well-behaved SSE clients got all %d events, p99 publish-to-receipt %lld ms | "
            "worker RSS before %ld KiB, peak %ld KiB\n",
            reads ? "reading its socket" : "never reading", fl.sent, fl.closed, fl.code, complete,
            NOK, NEV, p99, before, hwm);
    cr_expect(fl.closed, "the flooder (%s) was never closed", reads ? "reading" : "not reading");
    /* closed for what it did: a 1008, or cut off as a slow consumer when its
     * pongs outran its reading (never the 1002 of a daemon that choked) */
    if (reads)
      cr_expect(fl.code == 1008 || fl.code == 0, "the reading flooder saw close code %d",
                fl.code);
    cr_expect_eq(complete, NOK, "%d of %d others got every event", complete, NOK);
    /* bounded: a few MB here; the daemon before this bound grew to 68-75 MB */
    cr_expect_lt(hwm, 40 * 1024, "the worker's peak RSS reached %ld KiB", hwm);
  }
}
