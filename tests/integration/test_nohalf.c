/* No script half-writes, for the scripts whose failure points are keys every
 * request shares (the signals and admin histories, lastid, the id sequences):
 * each test spoils one such key the way a later redis.call would fail on it,
 * and checks that the script answers a clear error and wrote nothing. The
 * per-user and per-signal cases are in test_fire.c, test_trades.c and
 * test_expire.c. Tests here hold one lock each, so they never see each
 * other's spoiled keys. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "harness.h"

/* one test at a time in this world (Criterion runs two at once) */
static void world_lock(void)
{
  static int fd = -1;
  char path[600];
  snprintf(path, sizeof path, "%s/test_nohalf.lock", world_run());
  if (fd < 0)
    fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  cr_assert(fd >= 0, "cannot open %s", path);
  cr_assert_eq(flock(fd, LOCK_EX), 0);
}

static const char *key(char *buf, size_t n, const char *fmt, ...)
{
  size_t l = (size_t)snprintf(buf, n, "%s", kp());
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + l, n - l, fmt, ap);
  va_end(ap);
  return buf;
}

static void must(int argc, const char **argv)
{
  sortie_reply *r = rcmd(argc, argv);
  cr_assert(r && sortie_reply_type(r) != SORTIE_REPLY_ERROR, "%s: %s", argv[0],
            r ? sortie_reply_str(r, NULL) : "unreachable");
  sortie_reply_free(r);
}

/* the value of a string key (or "(nil)"), malloc'd */
static char *get(const char *k)
{
  const char *av[] = {"GET", k};
  char *v = rstr(2, av);
  return v ? v : strdup("(nil)");
}

/* Puts history `channel` aside and a string in its place; undo() puts it back. */
struct spoiled {
  char k[256], aside[300];
  int had;
};

static void spoil(struct spoiled *s, const char *channel)
{
  key(s->k, sizeof s->k, "h:%s", channel);
  snprintf(s->aside, sizeof s->aside, "%.256s.aside", s->k);
  const char *ex[] = {"EXISTS", s->k};
  s->had = rinteger(2, ex) == 1;
  if (s->had) {
    const char *ren[] = {"RENAME", s->k, s->aside};
    must(3, ren);
  }
  const char *set[] = {"SET", s->k, "not a stream"};
  must(3, set);
}

static void undo(struct spoiled *s)
{
  const char *del[] = {"DEL", s->k};
  must(2, del);
  if (s->had) {
    const char *ren[] = {"RENAME", s->aside, s->k};
    must(3, ren);
  }
}

/* an answer is a problem+json 500 with a detail that says nothing changed
 * and does not name Redis keys (those go to the server's log) */
static void assert_500(const struct http_resp *r)
{
  cr_assert_eq(r->status, 500, "%ld %s", r->status, r->body);
  char ct[128];
  cr_assert(http_header(r, "Content-Type", ct, sizeof ct) && strstr(ct, "problem+json"));
  const char *d = jget_str(r->json, "detail");
  cr_assert(d && strstr(d, "nothing was changed"), "detail: %s", r->body);
  cr_assert(strstr(r->body, kp()) == NULL, "a Redis key in the answer: %s", r->body);
  cr_log_info("%s", r->body);
}

static long create(const char *id, struct http_resp *r)
{
  char body[512];
  snprintf(body, sizeof body,
           "{%s%s%s\"symbol\":\"AAPL\",\"direction\":\"BUY\",\"entry\":\"145.75\","
           "\"stop_loss\":\"140.00\",\"take_profit\":\"160.00\",\"ttl\":3600}",
           id ? "\"id\":\"" : "", id ? id : "", id ? "\"," : "");
  char *svc = token_for("test-feed", "service");
  http("POST", "/api/signals", svc, body, NULL, NULL, r);
  free(svc);
  return r->status;
}

/* Creating a signal writes the signal and two sets, then announces it on
 * `signals` and logs it on `admin`: either history unusable is a 500 with no
 * signal, no set entry and the id sequence untouched. */
Test(nohalf, signal_create_with_an_unusable_history_writes_nothing)
{
  world_lock();
  const char *channels[] = {"signals", "admin"};
  for (int c = 0; c < 2; c++) {
    for (int named = 0; named < 2; named++) {
      char id[96], k[256], seqk[256];
      snprintf(id, sizeof id, "%s", uniq("spoil"));
      key(seqk, sizeof seqk, "seq:signal");
      char *seq0 = get(seqk);
      struct spoiled s;
      spoil(&s, channels[c]);
      struct http_resp r;
      create(named ? id : NULL, &r);
      undo(&s);
      char *seq1 = get(seqk);
      cr_assert_str_eq(seq1, seq0, "%s spoiled: seq:signal moved", channels[c]);
      /* the id it would have made, or the one given: nothing there */
      char next[96];
      snprintf(next, sizeof next, "sig_%lld", atoll(seq0) + 1);
      const char *sid = named ? id : next;
      const char *ex[] = {"EXISTS", key(k, sizeof k, "signal:%s", sid)};
      cr_assert_eq(rinteger(2, ex), 0, "%s spoiled: signal %s was written", channels[c], sid);
      const char *za[] = {"ZSCORE", key(k, sizeof k, "active"), sid};
      const char *zs[] = {"ZSCORE", key(k, sizeof k, "signals"), sid};
      char *a = rstr(3, za), *z = rstr(3, zs);
      cr_assert(a == NULL && z == NULL, "%s spoiled: %s put in the sets", channels[c], sid);
      assert_500(&r);
      http_free(&r);
      free(seq0);
      free(seq1);
      /* and with the history back, the same request works */
      cr_assert_eq(create(named ? id : NULL, &r), 201, "%s", r.body);
      http_free(&r);
    }
  }
}

/* publish wrote lastid before the XADD that failed on a spoiled history */
Test(nohalf, publish_on_an_unusable_history_writes_nothing)
{
  world_lock();
  char ch[128], lk[256], body[256];
  snprintf(ch, sizeof ch, "market:%s", uniq("SPOIL"));
  key(lk, sizeof lk, "lastid");
  struct spoiled s;
  spoil(&s, ch);
  char *before = get(lk);
  snprintf(body, sizeof body, "{\"channel\":\"%s\",\"type\":\"market_update\",\"data\":{}}", ch);
  char *svc = token_for("test-feed", "service");
  struct http_resp r;
  http("POST", "/api/publish", svc, body, NULL, NULL, &r);
  char *after = get(lk);
  undo(&s);
  cr_assert_str_eq(after, before, "lastid moved");
  assert_500(&r);
  http_free(&r);
  free(before);
  free(after);
  http("POST", "/api/publish", svc, body, NULL, NULL, &r);
  cr_assert_eq(r.status, 201, "%s", r.body);
  http_free(&r);
  free(svc);
}

/* The events read sets lastid when there is none; it used to do that before
 * reading histories that could fail */
Test(nohalf, events_read_that_fails_writes_no_lastid)
{
  world_lock();
  char ch[128], lk[256], aside[300], path[512];
  snprintf(ch, sizeof ch, "market:%s", uniq("SPOIL"));
  key(lk, sizeof lk, "lastid");
  snprintf(aside, sizeof aside, "%.256s.aside", lk);
  const char *ex[] = {"EXISTS", lk};
  int had = rinteger(2, ex) == 1;
  if (had) {
    const char *ren[] = {"RENAME", lk, aside};
    must(3, ren);
  }
  struct spoiled s;
  spoil(&s, ch);
  snprintf(path, sizeof path, "/api/events?channels=%s&cursor=%lld-0", ch, now_ms() - 1000);
  char *tok = token_for(uniq("u"), "user");
  struct http_resp r;
  http("GET", path, tok, NULL, NULL, NULL, &r);
  long long lastid_written = rinteger(2, ex);
  undo(&s);
  if (had) {
    const char *del[] = {"DEL", lk}, *ren[] = {"RENAME", aside, lk};
    must(2, del);
    must(3, ren);
  }
  /* a read that fails is a plain 500 ("the store refused"): it wrote nothing */
  cr_assert_eq(r.status, 500, "%ld %s", r.status, r.body);
  http_free(&r);
  free(tok);
  cr_assert_eq(lastid_written, 0, "a failed read wrote lastid");
}

/* A trade id sequence behind the trades (restored from an older backup) must
 * not make a fire overwrite an existing trade */
Test(nohalf, fire_never_overwrites_a_trade_when_the_sequence_is_behind)
{
  world_lock();
  char sid[96], a[96], b[96], k[256], seqk[256];
  snprintf(sid, sizeof sid, "%s", uniq("sig"));
  snprintf(a, sizeof a, "%s", uniq("u"));
  snprintf(b, sizeof b, "%s", uniq("u"));
  cr_assert_eq(make_signal(sid, 3600), 201);
  struct http_resp r;
  cr_assert_eq(fire(a, sid, NULL, &r), 201, "%s", r.body);
  char first[64];
  snprintf(first, sizeof first, "%s", jget_str(r.json, "trade_id"));
  http_free(&r);
  /* the sequence goes back one: the next id would be `first` again */
  key(seqk, sizeof seqk, "seq:trade");
  char back[32];
  snprintf(back, sizeof back, "%lld", atoll(first + 4) - 1);
  const char *set[] = {"SET", seqk, back};
  must(3, set);
  cr_assert_eq(fire(b, sid, NULL, &r), 201, "%s", r.body);
  const char *second = jget_str(r.json, "trade_id");
  cr_assert_str_neq(second, first, "the second fire took the first one's trade id");
  http_free(&r);
  const char *hg[] = {"HGET", key(k, sizeof k, "trade:%s", first), "user_id"};
  char *owner = rstr(3, hg);
  cr_assert_str_eq(owner ? owner : "(none)", a, "trade %s was overwritten", first);
  free(owner);
}
