/* sortie-pushd and token lifetime on live connections: SSE ends at exp with a
 * token_expired message and resumes on a fresh token; a long-poll is answered
 * at exp; a WebSocket refreshes in place, is warned, closed with 4001 after
 * the grace, and refused subscribe after exp. The daemon's wall clock is the
 * clock here (it has no other), so the tokens expire a few seconds out: far
 * enough that what must happen before exp does on a machine 5x slower; every
 * wait for what must happen after it is bounded by T_SHORT / T_LONG only. */
#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include "test_pushd_util.h"

/* a warning 2 s before exp, a close 4 s after it: tests stay short, and a
 * subscribe sent just after exp is read well before the close */
SORTIE_WORLD_CONF("push.token_warn_s = 2\n"
                  "push.token_grace_s = 4\n");
#define GRACE_S 4

/* sleeps until wall-clock ms `t` (at most 10 s) */
static void sleep_until_ms(long long t)
{
  long long d = t - now_ms();
  if (d > 10000)
    d = 10000;
  if (d > 0)
    pc_sleep_ms((int)d);
}

static char *user_chan(const char *u)
{
  return strf("user:%s", u);
}

Test(sse, ends_at_exp_with_token_expired_then_resumes_on_a_fresh_token_without_loss)
{
  const char *u0 = uniq("tk");
  char u[64];
  snprintf(u, sizeof u, "%s", u0);
  char *ch = user_chan(u);
  long exp = (long)now_s() + 5; /* the stream opens and one event passes before it */
  char *tok1 = token_custom(u, "user", (long)now_s(), exp);
  struct sse_client *s = sse_ok(ch, tok1, NULL, NULL);
  cr_assert_not_null(sse_wait_idonly(s, T_SHORT), "the stream did not catch up");
  char *before = publish_ok(ch, "trade_executed", "{\"n\":1}");
  cr_assert_geq(sse_read_events(s, 1, T_SHORT), 1, "the event before exp did not come");
  cr_assert_str_eq(sse_event(s, 0)->id, before);

  /* after exp: a private event that the old stream must not carry */
  sleep_until_ms((long long)exp * 1000 + 300);
  char *after1 = publish_ok(ch, "trade_executed", "{\"n\":2}");
  cr_assert(sse_wait_closed(s, T_SHORT), "the stream did not end after its token's exp");
  for (size_t i = 0; i < s->nmsgs; i++)
    cr_assert(s->msgs[i].id == NULL || strcmp(s->msgs[i].id, after1) != 0,
              "the old stream carried an event published after exp");
  /* its last message says why, and moves no cursor */
  cr_assert_geq(s->nmsgs, 1);
  const struct sse_msg *last = &s->msgs[s->nmsgs - 1];
  cr_assert_not_null(last->event, "last message: %s", last->raw);
  cr_assert_str_eq(last->event, "token_expired", "last message: %s", last->raw);
  cr_assert_null(last->id, "token_expired must not carry an id: %s", last->raw);
  json_object *d = json_tokener_parse(last->data ? last->data : "");
  cr_assert_not_null(d, "token_expired data is not JSON: %s", last->raw);
  cr_assert_str_eq(jget_str(d, "type"), "token_expired");
  cr_assert_eq(jget_int(d, "exp"), exp);
  cr_assert_null(jget_str(d, "id"), "token_expired looks like an envelope: %s", last->data);
  json_object_put(d);
  /* the events: exactly the one before exp, then that message */
  cr_assert_eq(s->nevents, 2, "events on the old stream: %zu", s->nevents);
  char *leid = strdup(sse_last_id(s));

  char *after2 = publish_ok(ch, "trade_executed", "{\"n\":3}");
  char *tok2 = token_for(u, "user");
  struct sse_client *r = sse_ok(ch, tok2, NULL, leid);
  char *want[2] = {after1, after2};
  sse_expect_ids(r, want, 2, 0);
  cr_assert_not_null(sse_wait_idonly(r, T_SHORT));
  /* exactly those 2: a marker published now is the next event */
  free(sse_expect_only(r, ch, 2));
  sse_close(r);
  sse_close(s);
  free(leid);
  free(before);
  free(after1);
  free(after2);
  free(tok1);
  free(tok2);
  free(ch);
}

Test(poll, a_waiting_poll_is_answered_at_exp_with_its_cursor)
{
  char u[64];
  snprintf(u, sizeof u, "%s", uniq("tp"));
  char *ch = user_chan(u);
  char *cur = cursor_now(ch);
  long exp = (long)now_s() + 2;
  char *tok = token_custom(u, "user", (long)now_s(), exp);
  /* timeout 25 (the most allowed): an answer at exp, not at the timeout, is
   * told by "token_expired" below; the read's bound only ends a hang */
  char *path = strf("/poll?channels=%s&cursor=%s&timeout=25", ch, cur);
  struct pc_resp r;
  char lk[128];
  snprintf(lk, sizeof lk, "%slastid", kp());
  const char *gv[] = {"GET", lk};
  char *last0 = rstr(2, gv);
  cr_assert_eq(pd_get(path, tok, NULL, &r, T_LONG), 0, "the poll was not answered at exp");
  char *last1 = rstr(2, gv);
  cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
  json_object *o = json_tokener_parse(r.body);
  cr_assert_not_null(o, "%s", r.body);
  /* nothing on the channel: the cursor it gives back is where its history
   * read reached, the global position (lastid) then: exactly, between lastid
   * before the poll and after it (one value when nobody published), and
   * never before its own cursor */
  unsigned long long cm = 0, cs = 0, rm = 0, rs = 0, am = 0, as = 0, bm = 0, bs = 0;
  const char *rc = jget_str(o, "cursor");
  cr_assert(rc && sscanf(rc, "%llu-%llu", &rm, &rs) == 2 && sscanf(cur, "%llu-%llu", &cm, &cs) == 2,
            "%s", r.body);
  cr_assert(last0 && last1 && sscanf(last0, "%llu-%llu", &am, &as) == 2 &&
            sscanf(last1, "%llu-%llu", &bm, &bs) == 2, "lastid %s %s", last0, last1);
  cr_assert(rm > cm || (rm == cm && rs >= cs), "the cursor went back: %s, was %s", rc, cur);
  cr_assert((rm > am || (rm == am && rs >= as)) && (rm < bm || (rm == bm && rs <= bs)),
            "cursor %s is not the position of the poll's read (lastid %s then %s)", rc, last0,
            last1);
  free(last0);
  free(last1);
  cr_assert_eq(json_object_array_length(json_object_object_get(o, "events")), 0, "%s", r.body);
  cr_assert(json_object_get_boolean(json_object_object_get(o, "token_expired")), "%s", r.body);
  /* the contract: at exp, to the second (docs/PUSHD.md "Token lifetime"):
   * never more than 1 s before it; late only by the machine's load */
  cr_assert_geq(now_ms(), (long long)exp * 1000 - 1000, "answered long before exp");
  json_object_put(o);
  pc_resp_free(&r);

  /* what is published after exp waits for the next poll, on a fresh token */
  sleep_until_ms((long long)exp * 1000 + 100);
  char *e = publish_ok(ch, "trade_executed", "{\"n\":1}");
  char *tok2 = token_for(u, "user");
  cr_assert_eq(pd_get(path, tok2, NULL, &r, T_LONG), 0);
  cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
  char **items;
  long n = pc_json_raw_items(r.body, "events", &items);
  cr_assert_eq(n, 1, "%s", r.body);
  char *eid = env_id(items[0]);
  cr_assert_str_eq(eid, e);
  free(eid);
  pc_strv_free(items, n);
  pc_resp_free(&r);

  /* a poll cannot start on a token past exp and the leeway */
  char *old = token_custom(u, "user", (long)now_s() - 200, (long)now_s() - 100);
  cr_assert_eq(pd_get(path, old, NULL, &r, T_SHORT), 0);
  cr_assert_eq(r.status, 401, "%d %s", r.status, r.body);
  pc_resp_free(&r);
  free(old);
  free(e);
  free(tok2);
  free(path);
  free(tok);
  free(cur);
  free(ch);
}

Test(ws, a_refresh_with_the_same_sub_keeps_the_connection_past_the_old_exp)
{
  char u[64];
  snprintf(u, sizeof u, "%s", uniq("tw"));
  char *ch = user_chan(u);
  long exp = (long)now_s() + 5; /* the refresh is answered before it */
  char *tok1 = token_custom(u, "user", (long)now_s(), exp);
  struct ws_client *w = ws_ok(tok1);
  char *chs = strf("[\"%s\"]", ch);
  ws_subscribe(w, chs, NULL);
  char *tok2 = token_custom(u, "user", (long)now_s(), (long)now_s() + 120);
  cr_assert_eq(ws_sendf(w, "{\"action\":\"refresh\",\"token\":\"%s\"}", tok2), 0);
  json_object *a = ws_next_json(w, T_SHORT);
  cr_assert_not_null(a, "no answer to refresh");
  cr_assert_str_eq(jget_str(a, "type"), "refreshed", "%s", json_object_to_json_string(a));
  cr_assert_gt(jget_int(a, "exp"), exp);
  json_object_put(a);

  /* past the old exp and its grace: still open, still served */
  sleep_until_ms((long long)(exp + GRACE_S) * 1000 + 700);
  char *e = publish_ok(ch, "trade_executed", "{\"n\":1}");
  const char *t = ws_next_text(w, T_SHORT);
  cr_assert_not_null(t, "no event after the old token's exp (closed: %d, code %d)", w->closed,
                     w->close_code);
  cr_assert(strstr(t, "token_expiring") == NULL, "warned for a refreshed token: %s", t);
  char *eid = env_id(t);
  cr_assert_str_eq(eid, e);
  free(eid);
  char *chs2 = strf("[\"%s\"]", chan("market"));
  ws_subscribe(w, chs2, NULL);
  cr_assert_eq(w->close_code, -1);
  ws_close(w);
  free(chs2);
  free(e);
  free(chs);
  free(tok1);
  free(tok2);
  free(ch);
}

Test(ws, a_refresh_for_another_sub_or_role_or_with_a_past_exp_is_refused_and_the_old_token_kept)
{
  char u[64];
  snprintf(u, sizeof u, "%s", uniq("tr"));
  /* the five refused refreshes are answered before the warning (exp - 2) */
  long exp = (long)now_s() + 8;
  char *tok1 = token_custom(u, "user", (long)now_s(), exp);
  struct ws_client *w = ws_ok(tok1);
  char *other = token_for(uniq("tro"), "user");
  char *admin = token_for(u, "admin");
  /* within the clock leeway, so valid at connect, but its exp is past */
  char *past = token_custom(u, "user", (long)now_s() - 20, (long)now_s() - 5);
  cr_assert_eq(ws_sendf(w, "{\"action\":\"refresh\",\"token\":\"%s\"}", other), 0);
  ws_expect_error(w, "wrong_sub");
  cr_assert_eq(ws_sendf(w, "{\"action\":\"refresh\",\"token\":\"%s\"}", admin), 0);
  ws_expect_error(w, "wrong_sub");
  cr_assert_eq(ws_sendf(w, "{\"action\":\"refresh\",\"token\":\"%s\"}", past), 0);
  ws_expect_error(w, "bad_token");
  cr_assert_eq(ws_send_text(w, "{\"action\":\"refresh\",\"token\":\"not.a.jwt\"}"), 0);
  ws_expect_error(w, "bad_token");
  cr_assert_eq(ws_send_text(w, "{\"action\":\"refresh\"}"), 0);
  ws_expect_error(w, "bad_request");
  /* the first token still rules: its warning, then its close */
  json_object *x = ws_next_type(w, "token_expiring", T_LONG);
  cr_assert_not_null(x, "no token_expiring for the kept token");
  cr_assert_eq(jget_int(x, "exp"), exp);
  json_object_put(x);
  cr_assert_eq(ws_wait_close(w, T_LONG), 4001, "close code %d", w->close_code);
  ws_close(w);
  free(past);
  free(admin);
  free(other);
  free(tok1);
}

Test(ws, without_a_refresh_a_warning_before_exp_then_close_4001_after_the_grace)
{
  char u[64];
  snprintf(u, sizeof u, "%s", uniq("te"));
  char *ch = user_chan(u);
  long exp = (long)now_s() + 4;
  char *tok = token_custom(u, "user", (long)now_s(), exp);
  struct ws_client *w = ws_ok(tok);
  char *chs = strf("[\"%s\"]", ch);
  ws_subscribe(w, chs, NULL);
  json_object *x = ws_next_type(w, "token_expiring", T_LONG);
  cr_assert_not_null(x, "no token_expiring (closed: %d, code %d)", w->closed, w->close_code);
  cr_assert_eq(jget_int(x, "exp"), exp, "%s", json_object_to_json_string(x));
  cr_assert_eq(jget_int(x, "close_at"), exp + GRACE_S, "%s", json_object_to_json_string(x));
  /* the contract: warned push.token_warn_s (2) before exp; the 2 s are the
   * tolerance for its delivery */
  cr_assert_lt(now_ms(), (long long)exp * 1000, "the warning came after exp");
  json_object_put(x);
  int code = ws_wait_close(w, T_LONG);
  cr_assert_eq(code, 4001, "close code %d", code);
  cr_assert_str_eq(w->close_reason, "token expired");
  /* closed at exp + grace, to the second: never before exp + grace - 1 */
  cr_assert_geq(now_ms(), (long long)(exp + GRACE_S - 1) * 1000, "closed before exp + grace");
  ws_close(w);
  free(chs);
  free(tok);
  free(ch);
}

Test(ws, subscribe_after_exp_is_refused_even_within_the_grace_and_allowed_after_a_refresh)
{
  char u[64];
  snprintf(u, sizeof u, "%s", uniq("ts"));
  char *ch = user_chan(u);
  long exp = (long)now_s() + 2;
  char *tok = token_custom(u, "user", (long)now_s(), exp);
  struct ws_client *w = ws_ok(tok);
  sleep_until_ms((long long)exp * 1000 + 200);
  char *chs = strf("[\"%s\"]", ch);
  cr_assert_eq(ws_sendf(w, "{\"action\":\"subscribe\",\"channels\":%s}", chs), 0);
  json_object *e;
  do { /* the warning may come first */
    e = ws_next_json(w, T_SHORT);
    cr_assert_not_null(e, "no answer to subscribe after exp (closed: %d)", w->closed);
    if (strcmp(jget_str(e, "type"), "token_expiring") != 0)
      break;
    json_object_put(e);
  } while (1);
  cr_assert_str_eq(jget_str(e, "type"), "error", "%s", json_object_to_json_string(e));
  cr_assert_str_eq(jget_str(e, "code"), "token_expired", "%s", json_object_to_json_string(e));
  json_object_put(e);
  char *tok2 = token_for(u, "user");
  cr_assert_eq(ws_sendf(w, "{\"action\":\"refresh\",\"token\":\"%s\"}", tok2), 0);
  json_object *a = ws_next_type(w, "refreshed", T_SHORT);
  cr_assert_not_null(a, "no refreshed (closed: %d, code %d)", w->closed, w->close_code);
  json_object_put(a);
  ws_subscribe(w, chs, NULL);
  ws_close(w);
  free(tok2);
  free(chs);
  free(tok);
  free(ch);
}

/* ---- a token in the query string is written to no log ---- */

/* How many files under dir (not recursive) hold needle; names them in which. */
static int logs_holding(const char *dir, const char *needle, char *which, size_t n)
{
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "no log folder %s", dir);
  int found = 0;
  which[0] = '\0';
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char *path = strf("%s/%s", dir, e->d_name);
    int hit = file_has(path, needle);
    free(path);
    if (hit) {
      found++;
      size_t l = strlen(which);
      snprintf(which + l, n - l, "%s ", e->d_name);
    }
  }
  closedir(d);
  return found;
}

/* PUSHD.md: "the query string is never logged, by the daemon or by Apache".
 * A browser can only give EventSource and WebSocket its token as ?token=, so
 * every kind of request carries one here, directly and through Apache's
 * /push/, good and bad, and then no log of the stack holds it. */
Test(tokens, a_token_in_the_query_string_is_written_to_no_log)
{
  const char *u = uniq("qlog");
  char *tok = token_for(u, "user");
  char *bad = strf("%sx", tok); /* a bad signature: refused, maybe logged as refused */
  const char *sig = strrchr(tok, '.') + 1;
  const char *bases[2] = {world_push_base(), world_base()};
  const char *prefix[2] = {"", "/push"};
  for (int b = 0; b < 2; b++) {
    char *p = strf("%s/events?channels=user:%s&token=%s", prefix[b], u, tok);
    struct sse_client *s = sse_open(bases[b], p, NULL, NULL, NULL, 0, T_SHORT);
    cr_assert_not_null(s);
    cr_assert_eq(s->status, 200, "%s: %d", p, s->status);
    cr_assert_not_null(sse_wait_idonly(s, T_SHORT), "%s did not catch up", p);
    sse_close(s);
    free(p);
    p = strf("%s/ws?token=%s", prefix[b], tok);
    struct ws_client *w = ws_open(bases[b], p, NULL, NULL, 0, T_SHORT);
    cr_assert_not_null(w);
    cr_assert_eq(w->status, 101, "%s: %d", p, w->status);
    ws_close(w);
    free(p);
    p = strf("%s/poll?channels=user:%s&timeout=0&token=%s", prefix[b], u, tok);
    struct pc_resp r;
    cr_assert_eq(pc_get(bases[b], p, NULL, &r, T_SHORT), 0);
    cr_assert_eq(r.status, 200, "%s: %d", p, r.status);
    pc_resp_free(&r);
    free(p);
    p = strf("%s/events?channels=user:%s&token=%s", prefix[b], u, bad);
    s = sse_open(bases[b], p, NULL, NULL, NULL, 0, T_SHORT);
    cr_assert_not_null(s);
    cr_assert_eq(s->status, 401, "%s: %d", p, s->status);
    sse_close(s);
    free(p);
  }
  /* the mission page takes ?token= too (Apache and the FastCGI program) */
  char *mp = strf("/mission/nosuch?token=%s", tok);
  struct http_resp hr;
  cr_assert_eq(http("GET", mp, NULL, NULL, NULL, NULL, &hr), 0);
  http_free(&hr);
  free(mp);
  /* Apache writes a stream's line when the stream ends: wait for the last
   * proxied one, so that the logs are complete before they are read */
  char *logdir = strf("%s/log", world_run());
  char which[512];
  int seen = 0;
  for (int i = 0; i < 100 && !seen; i++) {
    seen = logs_holding(logdir, "/push/events", which, sizeof which) > 0 &&
           logs_holding(logdir, "/mission/nosuch", which, sizeof which) > 0;
    if (!seen)
      pc_sleep_ms(100);
  }
  cr_assert(seen, "Apache logged neither the proxied stream nor the page in 10 s");
  cr_assert_eq(logs_holding(logdir, sig, which, sizeof which), 0,
               "the token's signature is in the log(s): %s", which);
  free(logdir);
  free(bad);
  free(tok);
}
