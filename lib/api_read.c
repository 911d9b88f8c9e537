/* The reading endpoints: fire count, signal, stats, mission, event polling and
 * health. Reads are idempotent, so a Redis connection lost mid-call is retried
 * once on a new one. */
#include "api.h"
#include "json.h"
#include "log.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Runs a read script; writes its answer (503 if unreachable) and returns the
 * reply for extra elements (caller frees) or NULL. */
static sortie_reply *read_script(struct sortie_app *app, struct sortie_resp *resp,
                                 enum sortie_lua s, int argc, const char **argv)
{
  sortie_reply *rep = sortie_redis_script(app->redis, s, SORTIE_REDIS_IDEMPOTENT, argc, argv, NULL);
  if (rep == NULL) {
    sortie_problem_redis(resp, app);
    return NULL;
  }
  sortie_resp_from_script(resp, app, rep);
  return rep;
}

/* ETag + If-None-Match: 304 with an empty body when the client has it. */
static void etag(struct sortie_req *req, struct sortie_resp *resp, const char *tag)
{
  sortie_resp_header(resp, "ETag", "%s", tag);
  sortie_resp_header(resp, "Cache-Control", "no-cache");
  if (resp->status == 200 && sortie_etag_match(req->if_none_match, tag)) {
    resp->status = 304;
    sortie_buf_reset(&resp->body);
  }
}

void sortie_api_fire_count(struct sortie_app *app, struct sortie_req *req,
                           struct sortie_resp *resp)
{
  const char *sid = req->param[0];
  char key[256];
  snprintf(key, sizeof key, "%ssignal:%s", app->cfg.redis_prefix, sid);
  const char *av[] = {"HMGET", key, "fire_count", "id"};
  sortie_reply *rep = sortie_redis_cmd(app->redis, SORTIE_REDIS_IDEMPOTENT, 4, av, NULL);
  if (rep == NULL) {
    sortie_problem_redis(resp, app);
    return;
  }
  const sortie_reply *c = sortie_reply_at(rep, 0), *id = sortie_reply_at(rep, 1);
  size_t n = 0;
  const char *count = c ? sortie_reply_str(c, &n) : NULL;
  if (id == NULL || sortie_reply_type(id) != SORTIE_REPLY_STRING) {
    sortie_reply_free(rep);
    sortie_problem(resp, 404, "not-found", NULL, "no signal %s", sid);
    return;
  }
  char cnt[24] = "0", tag[48];
  if (count && n < sizeof cnt) {
    memcpy(cnt, count, n);
    cnt[n] = '\0';
  }
  sortie_reply_free(rep);
  resp->status = 200;
  resp->content_type = "application/json";
  sortie_buf_puts(&resp->body, "{\"signal_id\":");
  sortie_json_quote(&resp->body, sid, strlen(sid));
  sortie_buf_printf(&resp->body, ",\"count\":%s,\"timestamp\":%lld}", cnt, (long long)time(NULL));
  snprintf(tag, sizeof tag, "\"fc%s\"", cnt);
  etag(req, resp, tag);
}

void sortie_api_signal_get(struct sortie_app *app, struct sortie_req *req,
                           struct sortie_resp *resp)
{
  /* `watching` only where presence is counted (push.presence) */
  const char *argv[] = {req->param[0], app->cfg.push_presence ? "1" : ""};
  sortie_reply_free(read_script(app, resp, SORTIE_LUA_SIGNAL_GET, 2, argv));
}

void sortie_api_stats(struct sortie_app *app, struct sortie_req *req, struct sortie_resp *resp)
{
  const char *uid = req->param[0];
  if (!sortie_auth_may_act_for(&req->who, uid, strlen(uid))) {
    sortie_problem(resp, 403, "forbidden", NULL, "user %s may not read the stats of user %s",
                   req->who.sub, uid);
    return;
  }
  const char *argv[] = {uid};
  sortie_reply *rep = read_script(app, resp, SORTIE_LUA_STATS, 1, argv);
  if (rep == NULL)
    return;
  sortie_reply_free(rep);
  if (resp->status == 200) {
    /* the stats change with the user's own writes, the UTC day and everyone
     * else's P/L (rank): the ETag is a digest of what is sent */
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)resp->body.base, resp->body.len, md);
    char tag[24] = "\"";
    for (int i = 0; i < 8; i++)
      snprintf(tag + 1 + 2 * i, 3, "%02x", md[i]);
    tag[17] = '"';
    tag[18] = '\0';
    etag(req, resp, tag);
  }
}

void sortie_api_mission(struct sortie_app *app, struct sortie_req *req, struct sortie_resp *resp)
{
  const char *argv[] = {req->param[0], req->who.sub, app->cfg.push_presence ? "1" : ""};
  sortie_reply_free(read_script(app, resp, SORTIE_LUA_MISSION, 3, argv));
}

#define EVENTS_MAX_CHANNELS 64

void sortie_api_events(struct sortie_app *app, struct sortie_req *req, struct sortie_resp *resp)
{
  char chans[EVENTS_MAX_CHANNELS * (SORTIE_CHANNEL_MAX + 1) + 1];
  char cur[SORTIE_EVENT_ID_MAX + 1] = "", lim[8], maxage[16];
  long cn = sortie_query_get(req->query, "channels", chans, sizeof chans);
  if (cn <= 0) {
    sortie_problem_field(resp, 400, "channels", "channels is required: a comma-separated list "
                                                "of at most %d channels", EVENTS_MAX_CHANNELS);
    return;
  }
  long limit = 100;
  long ln = sortie_query_get(req->query, "limit", lim, sizeof lim);
  if (ln != -1) {
    char *end;
    limit = ln > 0 ? strtol(lim, &end, 10) : 0;
    if (ln <= 0 || *end || limit < 1 || limit > 100) {
      sortie_problem_field(resp, 400, "limit", "limit must be from 1 to 100");
      return;
    }
  }
  /* the cursor is the id of the last event the client has (see events.lua) */
  char curbuf[128];
  long kn = sortie_query_get(req->query, "cursor", curbuf, sizeof curbuf);
  uint64_t ms, seq;
  if (kn == -2) {
    sortie_problem_field(resp, 400, "cursor", "cursor is not one this server gave out");
    return;
  }
  if (kn > 0) {
    if ((size_t)kn > SORTIE_EVENT_ID_MAX || sortie_event_id_parse(curbuf, (size_t)kn, &ms, &seq) < 0) {
      sortie_problem_field(resp, 400, "cursor", "cursor is not one this server gave out");
      return;
    }
    memcpy(cur, curbuf, (size_t)kn + 1);
  }

  const char *argv[5 + EVENTS_MAX_CHANNELS];
  char limbuf[8], ratebuf[16];
  snprintf(maxage, sizeof maxage, "%d", app->cfg.history_max_age_s);
  snprintf(ratebuf, sizeof ratebuf, "%d", app->cfg.api_read_rate_per_min);
  int argc = 0;
  argv[argc++] = limbuf; /* filled below, once the channels are counted */
  argv[argc++] = cur;
  argv[argc++] = maxage;
  argv[argc++] = req->who.sub; /* counted: api.read_rate_per_min */
  argv[argc++] = ratebuf;
  for (char *ch = chans, *next; ch; ch = next) {
    next = strchr(ch, ',');
    if (next)
      *next++ = '\0';
    size_t l = strlen(ch);
    enum sortie_chan_kind k = sortie_channel_parse(ch, l, NULL, NULL);
    if (k <= SORTIE_CHAN_UNKNOWN) {
      sortie_problem_field(resp, 400, "channels", "'%.80s' is not a channel", ch);
      return;
    }
    if (!sortie_auth_may_read(&req->who, ch, l)) {
      sortie_problem(resp, 403, "forbidden", NULL, "user %s may not read channel %s",
                     req->who.sub, ch);
      return;
    }
    for (int i = 5; i < argc; i++)
      if (strcmp(argv[i], ch) == 0) {
        sortie_problem_field(resp, 400, "channels", "channel %s is listed twice", ch);
        return;
      }
    if (argc - 5 >= EVENTS_MAX_CHANNELS) {
      sortie_problem_field(resp, 400, "channels", "at most %d channels", EVENTS_MAX_CHANNELS);
      return;
    }
    argv[argc++] = ch;
  }
  /* the script looks at up to limit + 1 entries of each channel: many
   * channels get a smaller page (about 2,000 entries a read, as
   * sortie-pushd's), and the client follows the cursor for the rest */
  snprintf(limbuf, sizeof limbuf, "%u", sortie_history_page((uint32_t)(argc - 5), (uint32_t)limit));
  sortie_reply *rep = sortie_redis_script(app->redis, SORTIE_LUA_EVENTS, SORTIE_REDIS_IDEMPOTENT,
                                          argc, argv, NULL);
  if (rep == NULL) {
    sortie_problem_redis(resp, app);
    return;
  }
  const sortie_reply *c = sortie_reply_at(rep, 1), *resets = sortie_reply_at(rep, 2),
                     *evs = sortie_reply_at(rep, 3);
  size_t clen;
  const char *cs = c ? sortie_reply_str(c, &clen) : NULL;
  if (cs == NULL || resets == NULL || evs == NULL) {
    sortie_resp_from_script(resp, app, rep); /* an error reply, or a 500 */
    sortie_reply_free(rep);
    return;
  }
  /* {"events":[...],"cursor":"id"}: resets first, then the envelopes the script
   * built, byte for byte what the push daemon sends */
  struct sortie_buf b = {0};
  sortie_buf_puts(&b, "{\"events\":[");
  int first = 1;
  for (size_t i = 0; i < sortie_reply_len(resets); i++) {
    size_t l;
    const char *ch = sortie_reply_str(sortie_reply_at(resets, i), &l);
    if (ch == NULL)
      continue;
    sortie_buf_printf(&b, "%s{\"type\":\"reset\",\"channel\":\"%.*s\"}", first ? "" : ",",
                      (int)l, ch);
    first = 0;
  }
  for (size_t i = 3; i < sortie_reply_len(evs); i += 4) {
    size_t l;
    const char *env = sortie_reply_str(sortie_reply_at(evs, i), &l);
    if (env == NULL)
      continue;
    if (!first)
      sortie_buf_putc(&b, ',');
    sortie_buf_append(&b, env, l);
    first = 0;
  }
  sortie_buf_printf(&b, "],\"cursor\":\"%.*s\"}", (int)clen, cs);
  sortie_resp_json(resp, 200, b.base, b.len);
  sortie_buf_free(&b);
  sortie_reply_free(rep);
}

void sortie_api_signal_list(struct sortie_app *app, struct sortie_req *req,
                            struct sortie_resp *resp)
{
  char which[16] = "active", lim[8] = "100";
  long n = sortie_query_get(req->query, "status", which, sizeof which);
  if (n == -2 || (n >= 0 && strcmp(which, "active") != 0 && strcmp(which, "all") != 0)) {
    sortie_problem_field(resp, 400, "status", "status must be active or all");
    return;
  }
  if (n < 0)
    strcpy(which, "active");
  n = sortie_query_get(req->query, "limit", lim, sizeof lim);
  char *end;
  long limit = n > 0 ? strtol(lim, &end, 10) : 100;
  if (n == 0 || n == -2 || (n > 0 && (*end || limit < 1 || limit > 200))) {
    sortie_problem_field(resp, 400, "limit", "limit must be from 1 to 200");
    return;
  }
  char lb[8];
  snprintf(lb, sizeof lb, "%ld", limit);
  const char *argv[] = {which, lb};
  sortie_reply_free(read_script(app, resp, SORTIE_LUA_SIGNALS_LIST, 2, argv));
}

void sortie_api_admin_stats(struct sortie_app *app, struct sortie_req *req,
                            struct sortie_resp *resp)
{
  (void)req;
  const char *argv[] = {"", "", "", app->cfg.push_presence ? "1" : ""};
  sortie_reply_free(read_script(app, resp, SORTIE_LUA_ADMIN_STATS, 4, argv));
}

void sortie_api_health(struct sortie_app *app, struct sortie_req *req, struct sortie_resp *resp)
{
  (void)req;
  const char *av[] = {"PING"};
  sortie_reply *rep = sortie_redis_cmd(app->redis, SORTIE_REDIS_IDEMPOTENT, 1, av, NULL);
  int ok = rep && sortie_reply_type(rep) == SORTIE_REPLY_STATUS;
  sortie_reply_free(rep);
  char body[128];
  int n = snprintf(body, sizeof body, "{\"status\":\"%s\",\"redis\":\"%s\",\"version\":\"%s\"}",
                   ok ? "ok" : "degraded", ok ? "ok" : "down", SORTIE_VERSION);
  sortie_resp_json(resp, ok ? 200 : 503, body, (size_t)n);
  if (!ok) {
    LOG_WARN("health", "redis down: %s", sortie_redis_errstr(app->redis));
    sortie_resp_header(resp, "Retry-After", "1");
  }
}
