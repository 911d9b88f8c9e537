/* confman: writes a man page from its source in man/, at build time (never
 * installed).  confman PAGE.in > PAGE
 *
 * Copies PAGE.in, replacing @VERSION@ with Sortie's version and a line that
 * is exactly @KEYS@ with one entry per configuration key, taken from the same
 * table lib/cfg.c reads the file with (sortie_cfg_key()): its name, its
 * description, its default, its range and its environment variable. So
 * sortie.conf(5) lists what the programs accept, and nothing else. */
#include "cfg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* text for roff: a backslash is written \e, and a line that would start
 * with a control character is protected with \&. With `sentences`, each
 * sentence after the first starts a new input line, as roff wants (it then
 * spaces sentences as it should). */
static void put_text(FILE *out, const char *s, int line_start, int sentences)
{
  for (; *s; s++) {
    if (line_start && (*s == '.' || *s == '\''))
      fputs("\\&", out);
    line_start = 0;
    if (*s == '\\')
      fputs("\\e", out);
    else
      fputc(*s, out);
    if (sentences && *s == '.' && s[1] == ' ' &&
        (isupper((unsigned char)s[2]) || isdigit((unsigned char)s[2]))) {
      fputc('\n', out);
      s++; /* the space */
      line_start = 1;
    }
  }
}

static void put_number(FILE *out, long x)
{
  if (x < 0)
    fprintf(out, "\\-%ld", -x);
  else
    fprintf(out, "%ld", x);
}

static const char *group_title(const char *name)
{
  static const struct { const char *prefix, *title; } groups[] = {
      {"redis.", "Redis"},
      {"jwt.", "Identity (JWT)"},
      {"api.", "REST API"},
      {"history.", "History and retention"},
      {"retention.", "History and retention"},
      {"trading.", "Trading"},
      {"log.", "Logging"},
      {"push.", "Push daemon (sortie-pushd)"},
  };
  for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
    if (strncmp(name, groups[i].prefix, strlen(groups[i].prefix)) == 0)
      return groups[i].title;
  return "Other keys";
}

static void put_keys(FILE *out)
{
  struct sortie_cfg_keyinfo k;
  const char *group = NULL;
  for (size_t i = 0; sortie_cfg_key(i, &k) == 0; i++) {
    const char *g = group_title(k.name);
    if (group == NULL || strcmp(g, group) != 0) {
      fprintf(out, ".SS %s\n", g);
      group = g;
    }
    fputs(".TP\n.B ", out);
    put_text(out, k.name, 0, 0);
    fputc('\n', out);
    put_text(out, k.desc, 1, 1);
    fputs("\n.br\nDefault: ", out);
    if (k.def[0]) {
      fputs("\\fB", out);
      put_text(out, k.def, 0, 0);
      fputs("\\fR", out);
    } else {
      fputs("empty", out);
    }
    if (k.is_int) {
      fputs("; a whole number from ", out);
      put_number(out, k.min);
      fputs(" to ", out);
      put_number(out, k.max);
    } else {
      fprintf(out, "; a string of at most %zu bytes", k.maxlen);
    }
    fputs(".\nEnvironment: \\fB\\%SORTIE_", out);
    for (const char *p = k.name; *p; p++)
      fputc(*p == '.' ? '_' : toupper((unsigned char)*p), out);
    fputs("\\fR.\n", out);
  }
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: confman PAGE.in > PAGE\n");
    return 2;
  }
  FILE *in = fopen(argv[1], "r");
  if (in == NULL) {
    perror(argv[1]);
    return 1;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, in)) >= 0) {
    if (strcmp(line, "@KEYS@\n") == 0 || strcmp(line, "@KEYS@") == 0) {
      put_keys(stdout);
      continue;
    }
    for (char *p = line; *p;) {
      char *at = strstr(p, "@VERSION@");
      if (at == NULL) {
        fputs(p, stdout);
        break;
      }
      fwrite(p, 1, (size_t)(at - p), stdout);
      fputs(SORTIE_VERSION, stdout);
      p = at + strlen("@VERSION@");
    }
  }
  free(line);
  fclose(in);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    perror("confman");
    return 1;
  }
  return 0;
}
