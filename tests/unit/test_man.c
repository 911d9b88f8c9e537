/* The man pages (man/, built into $BUILD/man by man/confman): sortie.conf(5)
 * lists every key of lib/cfg.c's table with its description, default, range
 * and environment variable; each command page documents every option its
 * program's getopt string accepts, and no other; every page renders without a
 * groff warning; `make install` puts the five pages in place. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"

static const char *repo(void)
{
  const char *r = getenv("SORTIE_REPO");
  cr_assert(r && *r, "SORTIE_REPO must be set (tests/run.sh does)");
  return r;
}

static const char *build(void)
{
  const char *b = getenv("BUILD");
  cr_assert(b && *b && b[0] == '/', "BUILD must be set to an absolute path (tests/run.sh does)");
  return b;
}

/* The whole file, NUL-terminated (the caller frees it). */
static char *slurp(const char *path)
{
  FILE *f = fopen(path, "rb");
  cr_assert(f != NULL, "cannot open %s", path);
  char *s = NULL;
  size_t len = 0, cap = 0, n;
  char chunk[4096];
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      s = realloc(s, cap);
      cr_assert(s != NULL);
    }
    memcpy(s + len, chunk, n);
    len += n;
  }
  fclose(f);
  if (s == NULL)
    s = calloc(1, 1);
  s[len] = '\0';
  return s;
}

static char *page(const char *name)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/man/%s", build(), name);
  return slurp(path);
}

/* The section of a roff page that starts with the line ".SH NAME" up to the
 * next ".SH" (a copy; the caller frees it), or NULL. */
static char *section(const char *roff, const char *name)
{
  char head[64];
  snprintf(head, sizeof head, "\n.SH %s\n", name);
  const char *a = strstr(roff, head);
  if (a == NULL)
    return NULL;
  a += strlen(head);
  const char *b = strstr(a, "\n.SH ");
  size_t n = b ? (size_t)(b - a) + 1 : strlen(a);
  char *s = malloc(n + 1);
  cr_assert(s != NULL);
  memcpy(s, a, n);
  s[n] = '\0';
  return s;
}

/* Roff text lines as plain text: requests (lines starting with '.') left
 * out, font changes and \& \% dropped, \e and \- made \ and -, lines joined
 * with one space. Writes into out (size outlen). */
static void plain(const char *roff, char *out, size_t outlen)
{
  size_t o = 0;
  const char *line = roff;
  while (*line) {
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) : strlen(line);
    if (n > 0 && line[0] != '.') {
      if (o && o + 1 < outlen)
        out[o++] = ' ';
      for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        if (line[i] == '\\' && i + 1 < n) {
          char c = line[i + 1];
          if (c == 'f' && i + 2 < n) {
            i += 2;
            continue;
          }
          if (c == '&' || c == '%') {
            i++;
            continue;
          }
          if (c == 'e' || c == '-') {
            out[o++] = c == 'e' ? '\\' : '-';
            i++;
            continue;
          }
        }
        out[o++] = line[i];
      }
    }
    if (end == NULL)
      break;
    line = end + 1;
  }
  out[o] = '\0';
}

Test(man, conf_page_lists_every_key_with_its_default_and_range)
{
  char *roff = page("sortie.conf.5");
  char *keys = section(roff, "KEYS");
  cr_assert(keys != NULL, "sortie.conf.5 has no KEYS section");

  struct sortie_cfg_keyinfo k;
  size_t nkeys = 0;
  for (size_t i = 0; sortie_cfg_key(i, &k) == 0; i++, nkeys++) {
    /* the entry: ".TP", ".B name", then its text up to the next entry */
    char head[160];
    snprintf(head, sizeof head, "\n.TP\n.B %s\n", k.name);
    const char *a = strstr(keys, head);
    cr_assert(a != NULL, "sortie.conf.5 does not list %s", k.name);
    cr_assert(strstr(a + 1, head) == NULL, "sortie.conf.5 lists %s twice", k.name);
    a += strlen(head);
    const char *b = a;
    while (*b && !(b[0] == '.' && (strncmp(b, ".TP", 3) == 0 || strncmp(b, ".SS", 3) == 0) &&
                   b[-1] == '\n'))
      b++;
    char raw[4096], text[4096];
    size_t n = (size_t)(b - a) < sizeof raw - 1 ? (size_t)(b - a) : sizeof raw - 1;
    memcpy(raw, a, n);
    raw[n] = '\0';
    plain(raw, text, sizeof text);

    cr_assert(k.desc && *k.desc, "%s has no description in lib/cfg.c", k.name);
    cr_assert(strstr(text, k.desc) != NULL, "%s: the description is not in the page: %s",
              k.name, text);
    char want[512];
    if (k.def[0])
      snprintf(want, sizeof want, "Default: %s;", k.def);
    else
      snprintf(want, sizeof want, "Default: empty;");
    cr_assert(strstr(text, want) != NULL, "%s: no '%s' in: %s", k.name, want, text);
    if (k.is_int)
      snprintf(want, sizeof want, "a whole number from %ld to %ld.", k.min, k.max);
    else
      snprintf(want, sizeof want, "a string of at most %zu bytes.", k.maxlen);
    cr_assert(strstr(text, want) != NULL, "%s: no '%s' in: %s", k.name, want, text);
    char env[128] = "Environment: SORTIE_";
    size_t o = strlen(env);
    for (const char *p = k.name; *p && o + 2 < sizeof env; p++)
      env[o++] = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    env[o++] = '.';
    env[o] = '\0';
    cr_assert(strstr(text, env) != NULL, "%s: no '%s' in: %s", k.name, env, text);

    /* and the value the page gives as the default is one the code accepts */
    struct sortie_cfg c;
    char err[256];
    memset(&c, 0, sizeof c);
    cr_assert_eq(sortie_cfg_set(&c, k.name, k.def, err, sizeof err), 0, "%s", err);
  }
  cr_assert_gt(nkeys, 40, "the key table has only %zu keys", nkeys);

  /* no entry for a key the code does not read */
  size_t entries = 0;
  for (const char *p = keys; (p = strstr(p, "\n.TP\n")) != NULL; p++)
    entries++;
  if (strncmp(keys, ".TP\n", 4) == 0)
    entries++;
  cr_assert_eq(entries, nkeys, "KEYS has %zu entries for %zu keys", entries, nkeys);
  free(keys);
  free(roff);
}

/* The option letters of the one getopt() call in `src` (repo-relative). */
static void getopt_letters(const char *src, char *letters, size_t len)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", repo(), src);
  char *s = slurp(path);
  const char *call = strstr(s, "getopt(argc, argv, \"");
  cr_assert(call != NULL, "%s: no getopt(argc, argv, \"...\") call", src);
  cr_assert(strstr(call + 1, "getopt(argc, argv, \"") == NULL, "%s: two getopt calls", src);
  call += strlen("getopt(argc, argv, \"");
  size_t o = 0;
  for (; *call && *call != '"' && o + 1 < len; call++)
    if (*call != ':')
      letters[o++] = *call;
  letters[o] = '\0';
  free(s);
  cr_assert_gt(o, 0, "%s: an empty getopt string", src);
}

static const struct {
  const char *page, *src;
} commands[] = {
    {"sortie-token.1", "tools/sortie-token.c"},
    {"sortie-expire.8", "tools/sortie-expire.c"},
    {"sortie-pushd.8", "pushd/main.c"},
    {"sortie-api.8", "lib/fcgi.c"}, /* sortie_fcgi_main(), for sortie-api and every *.fcgi */
};

Test(man, each_command_page_documents_exactly_the_options_of_its_getopt_string)
{
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    char letters[64];
    getopt_letters(commands[i].src, letters, sizeof letters);
    char *roff = page(commands[i].page);
    char *opts = section(roff, "OPTIONS");
    char *syn = section(roff, "SYNOPSIS");
    cr_assert(opts != NULL, "%s has no OPTIONS section", commands[i].page);
    cr_assert(syn != NULL, "%s has no SYNOPSIS section", commands[i].page);
    for (const char *l = letters; *l; l++) {
      /* an OPTIONS entry: ".TP" then ".B \-x" or ".BI \-x ..." */
      char b[16], bi[16];
      snprintf(b, sizeof b, ".TP\n.B \\-%c\n", *l);
      snprintf(bi, sizeof bi, ".TP\n.BI \\-%c ", *l);
      cr_assert(strstr(opts, b) || strstr(opts, bi), "%s: option -%c (getopt \"%s\" in %s) is not in OPTIONS",
                commands[i].page, *l, letters, commands[i].src);
      if (*l != 'h') {
        char in_syn[8];
        snprintf(in_syn, sizeof in_syn, "\\-%c", *l);
        cr_assert(strstr(syn, in_syn) != NULL, "%s: option -%c is not in SYNOPSIS",
                  commands[i].page, *l);
      }
    }
    /* and every option OPTIONS documents is one the program takes */
    for (const char *p = opts; (p = strstr(p, ".TP\n.B")) != NULL; p++) {
      const char *q = p + strlen(".TP\n.B");
      if (*q == 'I')
        q++;
      if (strncmp(q, " \\-", 3) != 0)
        continue;
      char l = q[3];
      cr_assert(strchr(letters, l) != NULL, "%s documents -%c, which %s does not take",
                commands[i].page, l, commands[i].src);
    }
    free(syn);
    free(opts);
    free(roff);
  }
}

static const char *const pages[] = {"sortie-token.1", "sortie.conf.5", "sortie-api.8",
                                    "sortie-pushd.8", "sortie-expire.8"};

/* groff-base comes with tools/deps.sh */
Test(man, every_page_renders_without_a_groff_warning)
{
  for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "groff -t -man -Tutf8 -ww -z '%s/man/%s' 2>&1", build(), pages[i]);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    char out[1024];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    cr_assert(rc == 0 && n == 0, "%s: groff says (status %d): %s", pages[i], rc, out);
  }
}

Test(man, make_install_puts_the_five_pages_in_place, .timeout = 300)
{
  const char *tmp = getenv("SORTIE_TEST_TMP");
  char dest[1024];
  snprintf(dest, sizeof dest, "%s/man-install-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  cr_assert(mkdtemp(dest) != NULL);
  char cmd[4096];
  /* make's own variables from an outer `make test` are not passed on */
  snprintf(cmd, sizeof cmd,
           "env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -C '%s' BUILD='%s' DESTDIR='%s' "
           "PREFIX=/usr install >'%s/log' 2>&1",
           repo(), build(), dest, dest);
  int rc = system(cmd);
  char log[1100];
  snprintf(log, sizeof log, "%s/log", dest);
  char *out = slurp(log);
  cr_assert_eq(rc, 0, "make install failed: %s", out);
  free(out);
  for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
    const char *name = pages[i];
    char path[1400];
    snprintf(path, sizeof path, "%s/usr/share/man/man%c/%s", dest, name[strlen(name) - 1], name);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "make install did not install %s", path);
    cr_assert_eq(st.st_mode & 0777, 0644, "%s has mode %o", path, (unsigned)(st.st_mode & 0777));
    char *got = slurp(path), *built = page(name);
    cr_assert_str_eq(got, built, "%s differs from %s/man/%s", path, build(), name);
    free(got);
    free(built);
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dest);
  cr_assert_eq(system(cmd), 0);
}
