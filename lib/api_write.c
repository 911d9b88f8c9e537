/* The writing endpoints: fire, create a signal, close a trade, publish. Each
 * checks the request's shape here and leaves every check and write that touches
 * state to one Lua script (lib/lua/), so nothing is ever half-done. */
#include "api.h"
#include "decimal.h"
#include "json.h"
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define ARG(s) (s), strlen(s)

/* How a client learns the outcome of each write after a 503 outcome-unknown
 * (docs/API.md says the same) */
#define HOW_FIRE "retry with the same Idempotency-Key to learn it: the answer is the fire's " \
                 "real result (without a key, a fire that was written answers 409 " \
                 "duplicate-fire with its trade_id)"
#define HOW_SIGNAL "send the same request again to learn it: with an id, 409 duplicate-signal " \
                   "means it was created (without an id it cannot be told: give one)"
#define HOW_CLOSE "send the same request again to learn it: 409 already-closed means the " \
                  "trade is closed"
#define HOW_PUBLISH "a publish is not idempotent: read the channel with GET /api/events from a " \
                    "cursor taken before publishing to see whether the event is there, before " \
                    "publishing it again"

/* Runs a write's script and writes its answer. When Redis does not answer, the
 * 503 says whether the write may have been done (outcome-unknown, with `how`:
 * how the client learns the outcome) or surely was not (redis-unavailable).
 * With api.fire_wait_replicas on, a 2xx is given only once that many replicas
 * have acknowledged the write (WAIT); else the outcome is unknown too: the
 * write may be lost with the primary in a failover. */
static const char *run(struct sortie_app *app, struct sortie_resp *resp, const char *how,
                       enum sortie_lua s, int argc, const char **argv, const size_t *lens,
                       int *status)
{
  sortie_reply *rep = sortie_redis_script(app->redis, s, 0, argc, argv, lens);
  *status = 0;
  if (rep == NULL) {
    if (sortie_redis_outcome_unknown(app->redis)) {
      LOG_ERROR("redis", "%s", sortie_redis_errstr(app->redis));
      sortie_problem_outcome(resp, "the event store took the request but did not answer in "
                             "time, so it may or may not have been done", how);
    } else {
      sortie_problem_redis(resp, app);
    }
    return NULL;
  }
  const sortie_reply *st = sortie_reply_at(rep, 0), *extra = sortie_reply_at(rep, 2);
  int want = app->cfg.api_fire_wait_replicas, ms = app->cfg.api_fire_wait_timeout_ms;
  if (want > 0 && st && sortie_reply_type(st) == SORTIE_REPLY_INTEGER &&
      sortie_reply_int(st) >= 200 && sortie_reply_int(st) < 300) {
    int got = 0;
    if (extra) {
      /* a replay wrote nothing, and WAIT covers only what this connection
       * wrote: a PUBLISH (replicated, no key) moves its mark past the
       * replayed write */
      char ch[128];
      snprintf(ch, sizeof ch, "%swait", app->cfg.redis_prefix);
      const char *av[] = {"PUBLISH", ch, ""};
      sortie_reply *p = sortie_redis_cmd(app->redis, 0, 3, av, NULL);
      if (p == NULL || sortie_reply_type(p) == SORTIE_REPLY_ERROR)
        got = -1;
      sortie_reply_free(p);
    }
    if (got == 0)
      got = sortie_redis_wait(app->redis, want, ms);
    if (got < want) {
      char why[200];
      if (got < 0) {
        LOG_ERROR("redis", "%s", sortie_redis_errstr(app->redis));
        snprintf(why, sizeof why, "done on the primary, but whether %d replica(s) have it "
                 "could not be learnt", want);
      } else {
        LOG_WARN("redis", "WAIT: %d of %d replicas acknowledged within %d ms", got, want, ms);
        snprintf(why, sizeof why, "done on the primary, but only %d of %d replica(s) confirmed "
                 "it within %d ms, so a failover may lose it", got, want, ms);
      }
      sortie_problem_outcome(resp, why, how);
      sortie_reply_free(rep);
      return NULL;
    }
  }
  *status = sortie_resp_from_script(resp, app, rep);
  const char *x = NULL;
  if (extra && sortie_reply_type(extra) == SORTIE_REPLY_STRING) {
    size_t n;
    const char *p = sortie_reply_str(extra, &n);
    if (n == 8 && memcmp(p, "replayed", 8) == 0)
      x = "replayed";
  }
  sortie_reply_free(rep);
  return x;
}

/* A required (or optional) id field. Returns 0 ok, 1 absent (optional), -1 after
 * writing the error. */
static int id_field(struct sortie_req *req, struct sortie_resp *resp, const char *name,
                    int required, const char **out)
{
  size_t n;
  int rc = sortie_json_str(req->json, name, out, &n);
  if (rc == 1) {
    if (!required)
      return 1;
    sortie_problem_field(resp, 422, name, "%s is required", name);
    return -1;
  }
  if (rc < 0 || !sortie_valid_id(*out, n)) {
    sortie_problem_field(resp, 422, name, "%s must be a string of 1 to 64 letters, digits, "
                                          "'_', '.' or '-'", name);
    return -1;
  }
  return 0;
}

/* A decimal field given as a JSON string. */
static int dec_field(struct sortie_req *req, struct sortie_resp *resp, const char *name,
                     int required, struct sortie_dec *out, const char **text)
{
  const char *s;
  size_t n;
  int rc = sortie_json_str(req->json, name, &s, &n);
  if (rc == 1) {
    if (required)
      sortie_problem_field(resp, 422, name, "%s is required", name);
    return required ? -1 : 1;
  }
  if (rc < 0) {
    sortie_problem_field(resp, 422, name, "%s must be a decimal in a string, such as \"145.75\" "
                                          "(numbers would lose precision)", name);
    return -1;
  }
  if (sortie_dec_parse(s, n, out) < 0) {
    sortie_problem_field(resp, 422, name, "%s must be a decimal such as \"145.75\": digits, at "
                                          "most 8 after the point, at most 18 in all", name);
    return -1;
  }
  if (text)
    *text = s;
  return 0;
}

void sortie_api_fire(struct sortie_app *app, struct sortie_req *req, struct sortie_resp *resp)
{
  const char *sid, *uid = req->who.sub;
  if (id_field(req, resp, "signal_id", 1, &sid) < 0)
    return;
  long long ts;
  int rc = sortie_json_int(req->json, "timestamp", &ts);
  if (rc != 0) {
    sortie_problem_field(resp, 422, "timestamp", "timestamp is %s: unix seconds, as an integer",
                         rc > 0 ? "required" : "not an integer");
    return;
  }
  const char *body_uid;
  rc = id_field(req, resp, "user_id", 0, &body_uid);
  if (rc < 0)
    return;
  if (rc == 0) {
    if (!sortie_auth_may_act_for(&req->who, body_uid, strlen(body_uid))) {
      sortie_problem(resp, 403, "forbidden", NULL, "user %s may not fire for user %s",
                     req->who.sub, body_uid);
      return;
    }
    uid = body_uid;
  }
  const char *idem = req->idempotency_key ? req->idempotency_key : "";
  size_t il = strlen(idem);
  if (req->idempotency_key) {
    int okk = il >= 1 && il <= 128;
    for (size_t i = 0; okk && i < il; i++)
      okk = idem[i] > 0x20 && idem[i] < 0x7f;
    if (!okk) {
      sortie_problem_field(resp, 400, "Idempotency-Key",
                           "Idempotency-Key must be 1 to 128 visible ASCII characters");
      return;
    }
  }
  char tsbuf[32], window[16], rate[16], ttl[16];
  snprintf(tsbuf, sizeof tsbuf, "%lld", ts);
  snprintf(window, sizeof window, "%d", app->cfg.api_fire_window_s);
  snprintf(rate, sizeof rate, "%d", app->cfg.api_fire_rate_per_min);
  snprintf(ttl, sizeof ttl, "%d", app->cfg.api_idempotency_ttl_s);
  const char *argv[] = {sid, uid, tsbuf, window, rate, idem, ttl};
  int status;
  if (run(app, resp, HOW_FIRE, SORTIE_LUA_FIRE, 7, argv, NULL, &status))
    sortie_resp_header(resp, "Idempotent-Replayed", "true");
}

void sortie_api_signal_create(struct sortie_app *app, struct sortie_req *req,
                              struct sortie_resp *resp)
{
  const char *id = "", *sym, *dir, *title = "", *briefing = "";
  size_t symlen, dirlen, tlen = 0, blen = 0;
  int rc = id_field(req, resp, "id", 0, &id);
  if (rc < 0)
    return;
  if (rc == 1)
    id = "";

  char symbol[SORTIE_SYMBOL_MAX + 1];
  rc = sortie_json_str(req->json, "symbol", &sym, &symlen);
  if (rc != 0 || symlen > SORTIE_SYMBOL_MAX) {
    sortie_problem_field(resp, 422, "symbol", "symbol is %s", rc == 1 ? "required" :
                         "not a string of 1 to 32 letters, digits, '_', '.' or '-'");
    return;
  }
  for (size_t i = 0; i < symlen; i++)
    symbol[i] = (char)toupper((unsigned char)sym[i]);
  symbol[symlen] = '\0';
  if (!sortie_valid_symbol(symbol, symlen)) {
    sortie_problem_field(resp, 422, "symbol",
                         "symbol must be 1 to 32 letters, digits, '_', '.' or '-'");
    return;
  }

  rc = sortie_json_str(req->json, "direction", &dir, &dirlen);
  char direction[5] = "";
  if (rc == 0 && dirlen <= 4) {
    for (size_t i = 0; i < dirlen; i++)
      direction[i] = (char)toupper((unsigned char)dir[i]);
    direction[dirlen] = '\0';
  }
  if (strcmp(direction, "BUY") != 0 && strcmp(direction, "SELL") != 0) {
    sortie_problem_field(resp, 422, "direction", "direction must be \"BUY\" or \"SELL\"");
    return;
  }
  int buy = direction[0] == 'B';

  struct sortie_dec entry, sl, tp;
  char es[SORTIE_DEC_STRLEN], sls[SORTIE_DEC_STRLEN], tps[SORTIE_DEC_STRLEN];
  if (dec_field(req, resp, "entry", 1, &entry, NULL) < 0 ||
      dec_field(req, resp, "stop_loss", 1, &sl, NULL) < 0 ||
      dec_field(req, resp, "take_profit", 1, &tp, NULL) < 0)
    return;
  struct {
    const char *name;
    struct sortie_dec *v;
  } prices[] = {{"entry", &entry}, {"stop_loss", &sl}, {"take_profit", &tp}};
  for (int i = 0; i < 3; i++)
    if (sortie_dec_sign(*prices[i].v) <= 0) {
      sortie_problem_field(resp, 422, prices[i].name, "%s must be greater than 0",
                           prices[i].name);
      return;
    }
  if (buy ? sortie_dec_cmp(sl, entry) >= 0 : sortie_dec_cmp(sl, entry) <= 0) {
    sortie_problem_field(resp, 422, "stop_loss", "for a %s, stop_loss must be %s entry",
                         direction, buy ? "below" : "above");
    return;
  }
  if (buy ? sortie_dec_cmp(tp, entry) <= 0 : sortie_dec_cmp(tp, entry) >= 0) {
    sortie_problem_field(resp, 422, "take_profit", "for a %s, take_profit must be %s entry",
                         direction, buy ? "above" : "below");
    return;
  }
  sortie_dec_format(entry, es);
  sortie_dec_format(sl, sls);
  sortie_dec_format(tp, tps);

  long long exp_at = 0, ttl = 0;
  int has_exp = sortie_json_int(req->json, "expires_at", &exp_at);
  int has_ttl = sortie_json_int(req->json, "ttl", &ttl);
  if (has_exp < 0 || has_ttl < 0) {
    sortie_problem_field(resp, 422, has_exp < 0 ? "expires_at" : "ttl",
                         "%s must be an integer number of seconds",
                         has_exp < 0 ? "expires_at" : "ttl");
    return;
  }
  if ((has_exp == 0) == (has_ttl == 0)) {
    sortie_problem_field(resp, 422, "expires_at",
                         "give exactly one of expires_at (unix seconds) or ttl (seconds)");
    return;
  }
  if (has_ttl == 0 && (ttl < 1 || ttl > 86400LL * 365)) {
    sortie_problem_field(resp, 422, "ttl", "ttl must be from 1 second to 365 days");
    return;
  }
  if (has_exp == 0 && (exp_at < 1 || exp_at > 253402300799LL)) {
    sortie_problem_field(resp, 422, "expires_at", "expires_at is out of range");
    return;
  }

  rc = sortie_json_str(req->json, "title", &title, &tlen);
  if (rc < 0 || tlen > 200 || (rc == 0 && sortie_has_ctl(title, tlen, 0))) {
    sortie_problem_field(resp, 422, "title", "title must be a string of at most 200 bytes on "
                                             "one line (no control characters)");
    return;
  }
  rc = sortie_json_str(req->json, "briefing", &briefing, &blen);
  if (rc < 0 || blen > 4000 || (rc == 0 && sortie_has_ctl(briefing, blen, 1))) {
    sortie_problem_field(resp, 422, "briefing", "briefing must be a string of at most 4000 "
                                                "bytes (line breaks and tabs allowed, no other "
                                                "control characters)");
    return;
  }

  char exps[32] = "", ttls[32] = "";
  if (has_exp == 0)
    snprintf(exps, sizeof exps, "%lld", exp_at);
  else
    snprintf(ttls, sizeof ttls, "%lld", ttl);
  const char *argv[] = {id, symbol, direction, es, sls, tps, exps, ttls, title, briefing,
                        req->who.sub};
  size_t lens[] = {strlen(id), symlen, strlen(direction), strlen(es), strlen(sls), strlen(tps),
                   strlen(exps), strlen(ttls), tlen, blen, strlen(req->who.sub)};
  int status;
  run(app, resp, HOW_SIGNAL, SORTIE_LUA_SIGNAL_CREATE, 11, argv, lens, &status);
  if (status == 201) {
    json_object *o = json_tokener_parse(resp->body.base);
    json_object *v;
    if (o && json_object_object_get_ex(o, "id", &v))
      sortie_resp_header(resp, "Location", "/api/signals/%s", json_object_get_string(v));
    if (o)
      json_object_put(o);
  }
}

void sortie_api_trade_close(struct sortie_app *app, struct sortie_req *req,
                            struct sortie_resp *resp)
{
  const char *tid = req->param[0];
  struct sortie_dec exitp, pnl;
  int has_exit = dec_field(req, resp, "exit_price", 0, &exitp, NULL);
  if (has_exit < 0)
    return;
  int has_pnl = dec_field(req, resp, "pnl", 0, &pnl, NULL);
  if (has_pnl < 0)
    return;
  if ((has_exit == 0) == (has_pnl == 0)) {
    sortie_problem_field(resp, 422, "exit_price", "give exactly one of exit_price or pnl");
    return;
  }
  char exit_text[SORTIE_DEC_STRLEN] = "";
  if (has_exit == 0) {
    if (sortie_dec_sign(exitp) <= 0) {
      sortie_problem_field(resp, 422, "exit_price", "exit_price must be greater than 0");
      return;
    }
    sortie_dec_format(exitp, exit_text);
    /* P/L per unit = exit - entry for a BUY, entry - exit for a SELL. The entry
     * of a trade never changes, so reading it first is safe; the script checks
     * again that the trade is still open. */
    char key[256];
    snprintf(key, sizeof key, "%strade:%s", app->cfg.redis_prefix, tid);
    const char *av[] = {"HMGET", key, "entry", "direction"};
    sortie_reply *rep = sortie_redis_cmd(app->redis, SORTIE_REDIS_IDEMPOTENT, 4, av, NULL);
    if (rep == NULL) {
      sortie_problem_redis(resp, app);
      return;
    }
    size_t el = 0, dl = 0;
    const sortie_reply *e = sortie_reply_at(rep, 0), *d = sortie_reply_at(rep, 1);
    const char *es = e ? sortie_reply_str(e, &el) : NULL, *ds = d ? sortie_reply_str(d, &dl) : NULL;
    struct sortie_dec entry;
    if (es == NULL || ds == NULL) {
      sortie_reply_free(rep);
      sortie_problem(resp, 404, "not-found", NULL, "no trade %s", tid);
      return;
    }
    int bad = sortie_dec_parse(es, el, &entry) < 0;
    int buy = dl == 3 && memcmp(ds, "BUY", 3) == 0;
    sortie_reply_free(rep);
    if (bad || (buy ? sortie_dec_sub(exitp, entry, &pnl) : sortie_dec_sub(entry, exitp, &pnl)) < 0) {
      sortie_problem(resp, 500, "internal", NULL, "cannot compute the P/L of trade %s", tid);
      return;
    }
  }
  struct sortie_dec units;
  if (sortie_dec_rescale(pnl, SORTIE_DEC_MAX_SCALE, &units) < 0) {
    sortie_problem_field(resp, 422, has_pnl == 0 ? "pnl" : "exit_price", "the P/L is too large");
    return;
  }
  char pnl_text[SORTIE_DEC_STRLEN], units_text[32], th[sizeof app->cfg.trading_drawdown_alert_pct];
  sortie_dec_format(pnl, pnl_text);
  snprintf(units_text, sizeof units_text, "%lld", (long long)units.units);
  snprintf(th, sizeof th, "%s", app->cfg.trading_drawdown_alert_pct);
  const char *argv[] = {tid, units_text, pnl_text, exit_text, th};
  int status;
  run(app, resp, HOW_CLOSE, SORTIE_LUA_TRADE_CLOSE, 5, argv, NULL, &status);
}

void sortie_api_publish(struct sortie_app *app, struct sortie_req *req, struct sortie_resp *resp)
{
  const char *ch, *type;
  size_t chl, tl;
  int rc = sortie_json_str(req->json, "channel", &ch, &chl);
  if (rc != 0) {
    sortie_problem_field(resp, rc > 0 ? 422 : 400, "channel", "channel is %s",
                         rc > 0 ? "required" : "not a string");
    return;
  }
  enum sortie_chan_kind k = sortie_channel_parse(ch, chl, NULL, NULL);
  if (k == SORTIE_CHAN_INVALID || chl > SORTIE_CHANNEL_MAX) {
    sortie_problem_field(resp, 400, "channel",
                         "channel must match ^[a-z]+(:[A-Za-z0-9_.-]{1,64})?$");
    return;
  }
  if (k == SORTIE_CHAN_UNKNOWN) {
    sortie_problem_field(resp, 400, "channel", "no such channel kind; use mission:{id}, "
                                               "user:{id}, market:{SYMBOL}, signals or admin");
    return;
  }
  rc = sortie_json_str(req->json, "type", &type, &tl);
  if (rc != 0 || !sortie_valid_event_type(type, tl)) {
    sortie_problem_field(resp, 422, "type", "type must match ^[a-z][a-z0-9_]{0,63}$");
    return;
  }
  if (sortie_reserved_event_type(type, tl)) {
    sortie_problem_field(resp, 422, "type", "type '%s' is reserved for the push daemon's own "
                                            "messages", type);
    return;
  }
  json_object *data;
  if (!json_object_object_get_ex(req->json, "data", &data)) {
    sortie_problem_field(resp, 422, "data", "data is required (any JSON value)");
    return;
  }
  /* re-serialized by json-c: one line, '/' escaped, so the stored text can go
   * into SSE and HTML as is */
  size_t dl;
  const char *ds = json_object_to_json_string_length(data, JSON_C_TO_STRING_PLAIN, &dl);
  const char *argv[] = {ch, type, ds};
  size_t lens[] = {chl, tl, dl};
  int status;
  run(app, resp, HOW_PUBLISH, SORTIE_LUA_PUBLISH, 3, argv, lens, &status);
}
