/* GET /mission/{id}: the mission page rendered from www/mission.html with the
 * signal's values in it, each escaped for where it lands (HTML text, or JSON in
 * a <script type="application/json"> block). Templates are read from
 * api.www_root once per process. */
#include "api.h"
#include "json.h"
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct tpl {
  char *text;
  size_t len;
  int loaded;
};

static struct tpl mission_tpl, notfound_tpl, unavailable_tpl;

static int load(struct tpl *t, const char *root, const char *name)
{
  if (t->loaded)
    return t->text ? 0 : -1;
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", root, name);
  FILE *f = fopen(path, "rb");
  t->loaded = 1;
  if (f == NULL) {
    LOG_ERROR("page", "cannot read template %s", path);
    return -1;
  }
  struct sortie_buf b = {0};
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    sortie_buf_append(&b, chunk, n);
  fclose(f);
  t->text = sortie_buf_steal(&b, &t->len);
  return 0;
}

struct var {
  const char *name;
  const char *value;
  size_t len;
  int raw; /* already escaped for its place (the JSON block) */
};

/* Replaces each {{name}} with its value, HTML-escaped unless raw. */
static void render(struct sortie_buf *out, const struct tpl *t, const struct var *vars, size_t nv)
{
  const char *p = t->text, *end = t->text + t->len;
  while (p < end) {
    const char *open = strstr(p, "{{");
    if (open == NULL) {
      sortie_buf_append(out, p, (size_t)(end - p));
      break;
    }
    sortie_buf_append(out, p, (size_t)(open - p));
    const char *close = strstr(open + 2, "}}");
    if (close == NULL) {
      sortie_buf_append(out, open, (size_t)(end - open));
      break;
    }
    size_t kl = (size_t)(close - open - 2);
    for (size_t i = 0; i < nv; i++)
      if (strlen(vars[i].name) == kl && memcmp(vars[i].name, open + 2, kl) == 0) {
        if (vars[i].raw)
          sortie_buf_append(out, vars[i].value, vars[i].len);
        else
          sortie_html_escape(out, vars[i].value, vars[i].len);
        break;
      }
    p = close + 2;
  }
}

static const char *jstr(json_object *o, const char *k, size_t *n)
{
  const char *s = "";
  *n = 0;
  json_object *v;
  if (json_object_object_get_ex(o, k, &v) && v) {
    s = json_object_get_string(v);
    *n = strlen(s);
  }
  return s;
}

static void html(struct sortie_resp *resp, int status)
{
  resp->status = status;
  resp->content_type = "text/html";
  sortie_resp_header(resp, "Content-Security-Policy",
                     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' "
                     "data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'");
  sortie_resp_header(resp, "Referrer-Policy", "no-referrer");
}

static void simple_page(struct sortie_app *app, struct sortie_resp *resp, int status,
                        struct tpl *t, const char *name, const char *id)
{
  sortie_buf_reset(&resp->body);
  html(resp, status);
  if (load(t, app->cfg.api_www_root, name) == 0) {
    struct var v[] = {{"id", id, strlen(id), 0}};
    render(&resp->body, t, v, 1);
  } else {
    sortie_buf_puts(&resp->body, status == 404 ? "<!doctype html><title>Not found</title>"
                                                 "<h1>No such mission</h1>"
                                               : "<!doctype html><title>Unavailable</title>"
                                                 "<h1>Temporarily unavailable</h1>");
  }
}

void sortie_page_missing(struct sortie_app *app, struct sortie_req *req, struct sortie_resp *resp)
{
  simple_page(app, resp, 404, &notfound_tpl, "404.html", req->param[0]);
}

void sortie_page_mission(struct sortie_app *app, struct sortie_req *req, struct sortie_resp *resp)
{
  const char *sid = req->param[0];
  /* `watching` in the page's data too, where presence is counted: a
   * visitor who is not signed in (no live connection, no GET
   * /api/missions) still sees it, as of the page's rendering */
  const char *argv[] = {sid, app->cfg.push_presence ? "1" : ""};
  sortie_reply *rep = sortie_redis_script(app->redis, SORTIE_LUA_SIGNAL_GET,
                                          SORTIE_REDIS_IDEMPOTENT, 2, argv, NULL);
  if (rep == NULL) {
    LOG_ERROR("page", "%s", sortie_redis_errstr(app->redis));
    simple_page(app, resp, 503, &unavailable_tpl, "503.html", sid);
    sortie_resp_header(resp, "Retry-After", "1");
    return;
  }
  int status = sortie_resp_from_script(resp, app, rep);
  sortie_reply_free(rep);
  if (status != 200) {
    simple_page(app, resp, status == 404 ? 404 : 503,
                status == 404 ? &notfound_tpl : &unavailable_tpl,
                status == 404 ? "404.html" : "503.html", sid);
    return;
  }
  if (load(&mission_tpl, app->cfg.api_www_root, "mission.html") < 0) {
    sortie_problem(resp, 500, "internal", NULL, "the mission page template is missing");
    return;
  }
  const char *why;
  json_object *o = sortie_json_parse(resp->body.base, resp->body.len, &why);
  if (o == NULL) {
    sortie_problem(resp, 500, "internal", NULL, "unexpected signal data");
    return;
  }
  struct sortie_buf js = {0};
  sortie_json_script_escape(&js, resp->body.base, resp->body.len);
  const char *keys[] = {"id", "symbol", "direction", "entry", "stop_loss", "take_profit",
                        "title", "briefing", "status", "fire_count", "expires_at",
                        "seconds_left"};
  enum { NK = sizeof keys / sizeof keys[0] };
  struct var vars[NK + 3];
  for (size_t i = 0; i < NK; i++) {
    vars[i].name = keys[i];
    vars[i].value = jstr(o, keys[i], &vars[i].len);
    vars[i].raw = 0;
  }
  char iso[32] = "", lower[8] = "";
  json_object *v;
  if (json_object_object_get_ex(o, "expires_at", &v)) {
    time_t t = (time_t)json_object_get_int64(v);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
  const char *d = vars[2].value;
  for (size_t i = 0; i < vars[2].len && i < sizeof lower - 1; i++)
    lower[i] = (char)(d[i] | 0x20);
  vars[NK] = (struct var){"expires_iso", iso, strlen(iso), 0};
  vars[NK + 1] = (struct var){"direction_lower", lower, strlen(lower), 0};
  vars[NK + 2] = (struct var){"mission_json", js.base ? js.base : "{}", js.base ? js.len : 2, 1};
  struct sortie_buf out = {0};
  render(&out, &mission_tpl, vars, NK + 3);
  json_object_put(o);
  sortie_buf_free(&js);
  sortie_buf_reset(&resp->body);
  sortie_buf_append(&resp->body, out.base, out.len);
  sortie_buf_free(&out);
  html(resp, 200);
}
