/* The shared-hosting path: a second Apache with mod_fcgid (or mod_cgid) and conf/apache/htaccess serving copies of the one-endpoint programs, on the world's Redis. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "harness.h"

/* The second Apache of this test process: started by a suite's .init, stopped
 * by its .fini (by the pid in its pid file) whatever the test did. It runs in
 * the foreground as our child with PR_SET_PDEATHSIG, so even a test process
 * that crashes or is killed takes it down. */
static struct {
  char dir[512];  /* everything of this Apache: conf, pid, logs, site */
  char site[600]; /* DocumentRoot: cgi-bin/, www/, .htaccess */
  char base[64];  /* http://127.0.0.1:PORT */
  pid_t pid;
  int use_fcgid;
} A;

static void sh(const char *fmt, ...)
{
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "failed: %s", cmd);
}

static int free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &l) == 0);
  int p = ntohs(a.sin_port);
  close(fd);
  return p;
}

static void write_file(const char *path, int mode, const char *text)
{
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "cannot write %s: %s", path, strerror(errno));
  fputs(text, f);
  fclose(f);
  chmod(path, (mode_t)mode);
}

/* as root, Apache's workers (and so the programs) run as www-data */
static int as_root(void) { return geteuid() == 0; }

static void give_to_www(const char *path)
{
  if (!as_root())
    return;
  struct passwd *pw = getpwnam("www-data");
  cr_assert_not_null(pw, "no www-data user");
  cr_assert_eq(chown(path, pw->pw_uid, pw->pw_gid), 0, "chown %s: %s", path, strerror(errno));
}

/* the world's sortie.conf, with the secret, the page templates and the log
 * pointed at the copies next to the programs */
static void write_program_conf(const char *secret, const char *www, const char *log)
{
  char *world = file_text(world_conf());
  char path[700];
  snprintf(path, sizeof path, "%s/cgi-bin/sortie.conf", A.site);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "# the world's sortie.conf, as a shared host would have it beside the programs\n");
  char *save = NULL;
  for (char *line = strtok_r(world, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "jwt.secret_file", 15) == 0 || strncmp(line, "api.www_root", 12) == 0 ||
        strncmp(line, "log.file", 8) == 0)
      continue;
    fprintf(f, "%s\n", line);
  }
  fprintf(f, "jwt.secret_file = %s\napi.www_root = %s\nlog.file = %s\n", secret, www, log);
  fclose(f);
  free(world);
  chmod(path, 0644);
}

static int apache_answers(void)
{
  struct http_resp r;
  char url[128];
  snprintf(url, sizeof url, "%s/www/static/mission.css", A.base);
  int ok = http("GET", url, NULL, NULL, NULL, NULL, &r) == 0 && r.status == 200;
  http_free(&r);
  return ok;
}

static void apache_start(int use_fcgid)
{
  memset(&A, 0, sizeof A);
  A.use_fcgid = use_fcgid;
  snprintf(A.dir, sizeof A.dir, "%s/%s-%d", world_run(), use_fcgid ? "fcgid" : "cgid",
           (int)getpid());
  snprintf(A.site, sizeof A.site, "%s/site", A.dir);
  int port = free_port();
  snprintf(A.base, sizeof A.base, "http://127.0.0.1:%d", port);
  const char *repo = getenv("SORTIE_REPO"), *build = getenv("BUILD");
  cr_assert(repo && build, "SORTIE_REPO and BUILD must be set (tests/run.sh does)");

  sh("rm -rf '%s' && mkdir -p '%s/run/fcgid' '%s/log' '%s/cgi-bin' '%s/prog-log'", A.dir, A.dir,
     A.dir, A.site, A.dir);
  sh("chmod 755 '%s' '%s' '%s/cgi-bin'", A.dir, A.site, A.site);
  sh("cp '%s'/cgi-bin/*.fcgi '%s/cgi-bin/' && chmod 755 '%s'/cgi-bin/*.fcgi", build, A.site,
     A.site);
  sh("cp -R '%s/www' '%s/www' && chmod -R a+rX '%s/www'", repo, A.site, A.site);
  sh("cp '%s/conf/apache/htaccess' '%s/.htaccess' && chmod 644 '%s/.htaccess'", repo, A.site,
     A.site);
  /* the secret: readable by the programs' user only */
  char secret[700], run_secret[700], www[700], plog[700], ipc[700];
  snprintf(run_secret, sizeof run_secret, "%s/jwt.secret", world_run());
  snprintf(secret, sizeof secret, "%s/cgi-bin/jwt.secret", A.site);
  sh("cp '%s' '%s' && chmod 600 '%s'", run_secret, secret, secret);
  give_to_www(secret);
  snprintf(www, sizeof www, "%s/www", A.site);
  snprintf(plog, sizeof plog, "%s/prog-log", A.dir);
  give_to_www(plog);
  snprintf(plog, sizeof plog, "%s/prog-log/sortie.log", A.dir);
  write_program_conf(secret, www, plog);
  snprintf(ipc, sizeof ipc, "%s/run/fcgid", A.dir);
  give_to_www(ipc);

  char conf[8192], path[700];
  snprintf(conf, sizeof conf,
           "# written by tests/integration/test_fcgid.c: a shared host's Apache\n"
           "ServerRoot \"%s\"\n"
           "DefaultRuntimeDir \"%s/run\"\n"
           "PidFile \"%s/run/httpd.pid\"\n"
           "Mutex file:%s/run default\n"
           "Listen 127.0.0.1:%d\n"
           "ServerName 127.0.0.1\n"
           "ErrorLog \"%s/log/error.log\"\n"
           "LogLevel warn\n"
           "LogFormat \"%%h \\\"%%m %%U %%H\\\" %%>s %%b %%D\" short\n"
           "CustomLog \"%s/log/access.log\" short\n"
           "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n"
           "LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n"
           "LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so\n"
           "LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so\n"
           "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n"
           "LoadModule rewrite_module /usr/lib/apache2/modules/mod_rewrite.so\n"
           "%s"
           "%s"
           "StartServers 1\nServerLimit 2\nThreadsPerChild 16\nMaxRequestWorkers 32\n"
           "TypesConfig /etc/mime.types\n"
           "DocumentRoot \"%s\"\n"
           "<Directory />\n  AllowOverride None\n  Require all denied\n</Directory>\n"
           "<Directory \"%s\">\n  AllowOverride All\n  Require all granted\n</Directory>\n",
           A.dir, A.dir, A.dir, A.dir, port, A.dir, A.dir,
           use_fcgid ? "LoadModule fcgid_module /usr/lib/apache2/modules/mod_fcgid.so\n"
                     : "LoadModule cgid_module /usr/lib/apache2/modules/mod_cgid.so\n",
           as_root() ? "User www-data\nGroup www-data\n" : "", A.site, A.site);
  size_t l = strlen(conf);
  if (use_fcgid)
    snprintf(conf + l, sizeof conf - l,
             "FcgidIPCDir \"%s/run/fcgid\"\n"
             "FcgidProcessTableFile \"%s/run/fcgid_shm\"\n"
             "FcgidMaxProcessesPerClass 4\n"
             "FcgidIOTimeout 30\n",
             A.dir, A.dir);
  else
    snprintf(conf + l, sizeof conf - l, "ScriptSock \"%s/run/cgisock\"\n", A.dir);
  snprintf(path, sizeof path, "%s/httpd.conf", A.dir);
  write_file(path, 0644, conf);

  char logp[700];
  snprintf(logp, sizeof logp, "%s/log/stderr.log", A.dir);
  /* no cr_assert between fork and exec: in the child it would talk to
   * Criterion's runner as if it were the test */
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
      dup2(nul, 0);
    /* a shared host sets no SORTIE_* for the programs: they must find the
     * sortie.conf beside them */
    clearenv();
    setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
    setenv("LANG", "C", 1);
    execl("/usr/sbin/apache2", "apache2", "-d", A.dir, "-f", path, "-D", "FOREGROUND",
          (char *)NULL);
    _exit(127);
  }
  cr_assert(pid > 0, "fork: %s", strerror(errno));
  A.pid = pid;
  for (int i = 0; i < 300; i++) { /* up to 30 s */
    if (apache_answers())
      return;
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      A.pid = 0;
      char elog[700];
      snprintf(elog, sizeof elog, "%s/log/error.log", A.dir);
      char *e1 = file_text(logp), *e2 = file_text(elog);
      cr_assert_fail("the second Apache exited at start: %s %s", e1, e2);
    }
    usleep(100000);
  }
  cr_assert_fail("the second Apache does not answer on %s", A.base);
}

/* stops it by the pid in its pid file (the child we started, if there is no
 * pid file yet); waits for it to be gone */
static void apache_stop(void)
{
  if (A.pid <= 0)
    return;
  char pf[700];
  snprintf(pf, sizeof pf, "%s/run/httpd.pid", A.dir);
  char *txt = file_text(pf);
  pid_t p = (pid_t)atoi(txt);
  free(txt);
  if (p != A.pid)
    p = A.pid; /* in the foreground, the pid file holds our child's pid */
  kill(p, SIGTERM);
  for (int i = 0; i < 300; i++) { /* up to 30 s */
    if (waitpid(A.pid, NULL, WNOHANG) == A.pid) {
      A.pid = 0;
      return;
    }
    usleep(100000);
  }
  kill(A.pid, SIGKILL);
  waitpid(A.pid, NULL, 0);
  A.pid = 0;
}

static void start_fcgid(void) { apache_start(1); }
static void start_cgid(void) { apache_start(0); }

/* ---- requests to the second Apache ---- */

static long req2(const char *method, const char *path, const char *token, const char *body,
                 struct http_resp *r)
{
  char url[1024];
  snprintf(url, sizeof url, "%s%s", A.base, path);
  http(method, url, token, body, NULL, NULL, r);
  return r->status;
}

static long long count_at(const char *base, const char *sid)
{
  char url[512];
  snprintf(url, sizeof url, "%s/api/signals/%s/fire-count", base, sid);
  struct http_resp r;
  http("GET", url, NULL, NULL, NULL, NULL, &r);
  cr_assert_eq(r.status, 200, "fire-count at %s: %ld %s", base, r.status, r.body);
  long long c = jget_int(r.json, "count");
  http_free(&r);
  return c;
}

static long fire2(const char *user, const char *sid, struct http_resp *out)
{
  char *tok = token_for(user, "user");
  char body[256];
  snprintf(body, sizeof body, "{\"signal_id\":\"%s\",\"timestamp\":%lld}", sid, now_s());
  long st = req2("POST", "/api/fire", tok, body, out);
  free(tok);
  return st;
}

static void create_signal2(const char *sid)
{
  char *svc = token_for("test-feed", "service");
  char body[512];
  snprintf(body, sizeof body,
           "{\"id\":\"%s\",\"symbol\":\"MSFT\",\"direction\":\"SELL\",\"entry\":\"410.50\","
           "\"stop_loss\":\"420.00\",\"take_profit\":\"390.25\",\"ttl\":3600,"
           "\"title\":\"shared host\"}",
           sid);
  struct http_resp r;
  cr_assert_eq(req2("POST", "/api/signals", svc, body, &r), 201, "create: %ld %s", r.status,
               r.body);
  cr_assert_str_eq(jget_str(r.json, "id"), sid);
  cr_assert_str_eq(jget_str(r.json, "status"), "ACTIVE");
  http_free(&r);
  free(svc);
}

/* the whole API path: health, create, fire, counts, stats, both Apaches agree */
static void api_round_trip(void)
{
  struct http_resp r;
  cr_assert_eq(req2("GET", "/health", NULL, NULL, &r), 200, "/health: %ld %s", r.status, r.body);
  cr_assert_str_eq(jget_str(r.json, "status"), "ok");
  cr_assert_str_eq(jget_str(r.json, "redis"), "ok");
  http_free(&r);

  char sid[96], u1[96], u2[96], path[256];
  snprintf(sid, sizeof sid, "%s", uniq("shared"));
  snprintf(u1, sizeof u1, "%s", uniq("u"));
  snprintf(u2, sizeof u2, "%s", uniq("u"));
  create_signal2(sid);
  snprintf(path, sizeof path, "/api/signals/%s", sid);
  cr_assert_eq(req2("GET", path, NULL, NULL, &r), 200, "%s", r.body);
  cr_assert_str_eq(jget_str(r.json, "symbol"), "MSFT");
  http_free(&r);

  cr_assert_eq(fire2(u1, sid, &r), 201, "fire: %ld %s", r.status, r.body);
  cr_assert_eq(jget_int(r.json, "fire_count"), 1);
  http_free(&r);
  cr_assert_eq(count_at(A.base, sid), 1);
  cr_assert_eq(count_at(world_base(), sid), 1, "the main Apache disagrees");

  /* one through the main world, one more through this one */
  cr_assert_eq(fire(u2, sid, NULL, NULL), 201);
  cr_assert_eq(fire2(u1, sid, &r), 409, "second fire by the same user: %ld %s", r.status, r.body);
  http_free(&r);
  cr_assert_eq(count_at(A.base, sid), 2);
  cr_assert_eq(count_at(world_base(), sid), 2);

  /* an authenticated GET: the token reaches the program (CGIPassAuth) */
  char *tok = token_for(u1, "user");
  snprintf(path, sizeof path, "/api/users/%s/stats", u1);
  cr_assert_eq(req2("GET", path, tok, NULL, &r), 200, "stats: %ld %s", r.status, r.body);
  cr_assert_eq(jget_int(r.json, "stats.total_trades"), 1);
  http_free(&r);
  snprintf(path, sizeof path, "/api/missions/%s", sid);
  cr_assert_eq(req2("GET", path, tok, NULL, &r), 200, "mission: %ld %s", r.status, r.body);
  http_free(&r);
  free(tok);
  /* and a missing one is refused */
  snprintf(path, sizeof path, "/api/users/%s/stats", u1);
  cr_assert_eq(req2("GET", path, NULL, NULL, &r), 401, "%s", r.body);
  http_free(&r);
}

/* processes still running a program from this site's cgi-bin/ */
static int programs_running(void)
{
  int n = 0;
  char prefix[700];
  snprintf(prefix, sizeof prefix, "%s/cgi-bin/", A.site);
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (atoi(e->d_name) <= 0)
      continue;
    char lp[64], exe[1024];
    snprintf(lp, sizeof lp, "/proc/%d/exe", atoi(e->d_name));
    ssize_t l = readlink(lp, exe, sizeof exe - 1);
    if (l <= 0)
      continue;
    exe[l] = '\0';
    n += strncmp(exe, prefix, strlen(prefix)) == 0;
  }
  if (d)
    closedir(d);
  return n;
}

TestSuite(fcgid, .init = start_fcgid, .fini = apache_stop);

Test(fcgid, api_through_htaccess_and_mod_fcgid)
{
  api_round_trip();
}

Test(fcgid, mission_page_and_static_assets)
{
  char sid[96], path[256], ct[128] = "";
  snprintf(sid, sizeof sid, "%s", uniq("page"));
  create_signal2(sid);
  struct http_resp r;
  snprintf(path, sizeof path, "/mission/%s", sid);
  cr_assert_eq(req2("GET", path, NULL, NULL, &r), 200, "%s", r.body);
  cr_assert(http_header(&r, "Content-Type", ct, sizeof ct) && strncmp(ct, "text/html", 9) == 0,
            "Content-Type %s", ct);
  cr_assert(r.body && strstr(r.body, "<html") && strstr(r.body, sid) && strstr(r.body, "MSFT") &&
                strstr(r.body, "410.50"),
            "the page does not show the mission: %.400s", r.body ? r.body : "");
  cr_assert(strstr(r.body, "{{") == NULL, "unrendered placeholders in the page");
  http_free(&r);

  snprintf(path, sizeof path, "/mission/%s", uniq("nosuch"));
  cr_assert_eq(req2("GET", path, NULL, NULL, &r), 404);
  cr_assert(http_header(&r, "Content-Type", ct, sizeof ct) && strncmp(ct, "text/html", 9) == 0,
            "Content-Type %s", ct);
  http_free(&r);

  cr_assert_eq(req2("GET", "/static/mission.css", NULL, NULL, &r), 200);
  cr_assert(http_header(&r, "Content-Type", ct, sizeof ct) && strncmp(ct, "text/css", 8) == 0,
            "Content-Type %s", ct);
  http_free(&r);
}

Test(fcgid, config_and_secret_are_not_served)
{
  char secret_path[700];
  snprintf(secret_path, sizeof secret_path, "%s/jwt.secret", world_run());
  char *secret = file_text(secret_path);
  cr_assert(strlen(secret) >= 32);
  const char *paths[] = {"/cgi-bin/sortie.conf", "/cgi-bin/jwt.secret", "/cgi-bin/%73ortie.conf",
                         "/cgi-bin/sortie.conf?x", "/www/../cgi-bin/sortie.conf"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    struct http_resp r;
    req2("GET", paths[i], NULL, NULL, &r);
    cr_assert(r.status == 403 || r.status == 404, "GET %s: %ld", paths[i], r.status);
    cr_assert(r.body == NULL || strstr(r.body, "redis.port") == NULL, "GET %s served the config",
              paths[i]);
    cr_assert(r.body == NULL || strstr(r.body, secret) == NULL, "GET %s served the secret",
              paths[i]);
    http_free(&r);
  }
  free(secret);
}

Test(fcgid, stopping_apache_leaves_no_program_running)
{
  struct http_resp r;
  cr_assert_eq(req2("GET", "/health", NULL, NULL, &r), 200);
  http_free(&r);
  char sid[96];
  snprintf(sid, sizeof sid, "%s", uniq("stop"));
  create_signal2(sid);
  cr_assert_eq(count_at(A.base, sid), 0);
  cr_assert(programs_running() > 0, "no mod_fcgid process seen while Apache runs");
  apache_stop();
  for (int i = 0; i < 200 && programs_running() > 0; i++) /* up to 20 s */
    usleep(100000);
  cr_assert_eq(programs_running(), 0, "programs outlived the Apache that started them");
}

/* The same .htaccess on a host without mod_fcgid: the programs run as plain
 * CGI under mod_cgid. */
Test(cgid, api_through_htaccess_as_plain_cgi, .init = start_cgid, .fini = apache_stop)
{
  api_round_trip();
}
