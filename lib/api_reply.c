/* A script's answer as an HTTP answer: what every API handler does with
 * what Redis said. Beside the handlers (not in http.c), so that the HTTP layer
 * knows nothing of Redis. */
#include "api.h"
#include "json.h"
#include "log.h"

#include <string.h>

void sortie_problem_outcome(struct sortie_resp *r, const char *why, const char *how)
{
  json_object *x = json_object_new_object();
  json_object_object_add(x, "retry_after", json_object_new_int(1));
  sortie_problem(r, 503, "outcome-unknown", x, "%s: the outcome is unknown; %s", why, how);
  sortie_resp_header(r, "Retry-After", "1");
}

void sortie_problem_redis(struct sortie_resp *r, struct sortie_app *app)
{
  LOG_ERROR("redis", "%s", sortie_redis_errstr(app->redis));
  if (sortie_redis_outcome_unknown(app->redis)) {
    sortie_problem_outcome(r, "the event store took the request but did not answer in time, so "
                           "it may or may not have been done", "send the same request again to "
                           "learn it");
    return;
  }
  json_object *x = json_object_new_object();
  json_object_object_add(x, "retry_after", json_object_new_int(1));
  sortie_problem(r, 503, "redis-unavailable", x, "the event store is unreachable; nothing was "
                                                 "written, try again");
  sortie_resp_header(r, "Retry-After", "1");
}

int sortie_resp_from_script(struct sortie_resp *r, struct sortie_app *app,
                            const sortie_reply *rep)
{
  (void)app;
  const sortie_reply *st = sortie_reply_at(rep, 0), *body = sortie_reply_at(rep, 1);
  size_t blen;
  const char *b = body ? sortie_reply_str(body, &blen) : NULL;
  if (st == NULL || sortie_reply_type(st) != SORTIE_REPLY_INTEGER || b == NULL) {
    if (sortie_reply_type(rep) == SORTIE_REPLY_ERROR)
      sortie_problem(r, 500, "internal", NULL, "the store refused the operation");
    else
      sortie_problem(r, 500, "internal", NULL, "unexpected reply from the store");
    return 0;
  }
  int status = (int)sortie_reply_int(st);
  if (status < 400) {
    sortie_resp_json(r, status, b, blen);
    return status;
  }
  const char *why;
  json_object *o = sortie_json_parse(b, blen, &why);
  const char *slug = "internal", *detail = "";
  size_t n;
  json_object *extra = json_object_new_object();
  if (o) {
    sortie_json_str(o, "slug", &slug, &n);
    sortie_json_str(o, "detail", &detail, &n);
    json_object_object_foreach(o, k, v)
    {
      if (strcmp(k, "slug") && strcmp(k, "detail"))
        json_object_object_add(extra, k, json_object_get(v));
    }
  }
  long long retry = 0;
  if (sortie_json_int(extra, "retry_after", &retry) == 0 && retry > 0)
    sortie_resp_header(r, "Retry-After", "%lld", retry);
  if (status >= 500) {
    /* a script's own 500 names Redis keys (stored data it cannot use): that
     * is for the operator's log, not for the client */
    LOG_ERROR("redis", "%s", detail);
    if (strncmp(detail, "nothing was changed", 19) == 0)
      detail = "nothing was changed: stored data could not be used (the server log says which)";
    else
      detail = "the server log says what went wrong";
  }
  sortie_problem(r, status, slug, extra, "%s", detail);
  if (o)
    json_object_put(o);
  return status;
}
