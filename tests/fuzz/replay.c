/* A main() for the libFuzzer targets without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every file of the folders (or files) named
 * on the command line, so `make test` replays the committed corpora with the
 * normal compiler, and `make san` under ASan + UBSan.
 *   fuzz_json tests/fuzz/corpus/json [MORE...]
 * Folders are read recursively, in name order; names starting with '.' are
 * left out. Each input is passed in a heap buffer of exactly its size, as
 * libFuzzer does, so a sanitizer sees any read past its end.
 * Exit 0 when at least one input ran and none failed; 1 when nothing could be
 * read; a crash or an abort() of a target's property check ends the process
 * (its signal, or the sanitizer's exit code) after naming the input on stderr. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* optional in a target: called once before the first input, as libFuzzer does */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define REPLAY_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define REPLAY_SANITIZED 1
#endif
#ifdef REPLAY_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

static const char *prog = "replay";
/* the input being run, named if the process dies in it */
static char current[4096];

static size_t replay_total;
static int replay_errors;

/* async-signal-safe: write(2) only */
static void say_current(void)
{
  static const char pre[] = ": died on input ";
  if (current[0] == '\0')
    return;
  ssize_t r = write(2, prog, strlen(prog));
  r = write(2, pre, sizeof pre - 1);
  r = write(2, current, strlen(current));
  r = write(2, "\n", 1);
  (void)r;
}

static void on_fatal(int sig)
{
  say_current();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Reads the whole file at path into a malloc'd buffer of exactly its size
 * (the caller frees it); -1 with errno set on failure. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return -1;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf != NULL) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap)
      break;
    uint8_t *bigger = realloc(buf, cap * 2);
    if (bigger == NULL) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = bigger;
    cap *= 2;
  }
  int bad = buf == NULL || ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    errno = buf == NULL ? ENOMEM : EIO;
    return -1;
  }
  /* a copy of exactly n bytes: the slack of buf would hide an over-read */
  uint8_t *exact = malloc(n ? n : 1);
  if (exact == NULL) {
    free(buf);
    errno = ENOMEM;
    return -1;
  }
  memcpy(exact, buf, n);
  free(buf);
  *out = exact;
  *len = n;
  return 0;
}

static void run_file(const char *path)
{
  uint8_t *data;
  size_t len;
  if (read_file(path, &data, &len) != 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
    replay_errors++;
    return;
  }
  snprintf(current, sizeof current, "%s", path);
  int rc = LLVMFuzzerTestOneInput(data, len);
  current[0] = '\0';
  free(data);
  /* libFuzzer reserves every value but 0 and -1 (-1: keep out of the corpus) */
  if (rc != 0 && rc != -1) {
    fprintf(stderr, "%s: %s: the target returned %d\n", prog, path, rc);
    replay_errors++;
  }
  replay_total++;
}

static int skip_entry(const struct dirent *e)
{
  return e->d_name[0] != '.';
}

static void run_path(const char *path)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
    replay_errors++;
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    run_file(path);
    return;
  }
  struct dirent **list;
  int n = scandir(path, &list, skip_entry, alphasort);
  if (n < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
    replay_errors++;
    return;
  }
  for (int i = 0; i < n; i++) {
    char sub[4096];
    int w = snprintf(sub, sizeof sub, "%s/%s", path, list[i]->d_name);
    if (w < 0 || (size_t)w >= sizeof sub) {
      fprintf(stderr, "%s: %s/%s: name too long\n", prog, path, list[i]->d_name);
      replay_errors++;
    } else {
      run_path(sub);
    }
    free(list[i]);
  }
  free(list);
}

int main(int argc, char **argv)
{
  const char *slash = strrchr(argv[0], '/');
  prog = slash ? slash + 1 : argv[0];
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR-OR-FILE...\n", prog);
    return 2;
  }
  signal(SIGABRT, on_fatal);
  signal(SIGSEGV, on_fatal);
  signal(SIGBUS, on_fatal);
  signal(SIGFPE, on_fatal);
  signal(SIGILL, on_fatal);
#ifdef REPLAY_SANITIZED
  /* a sanitizer report ends the process without a signal */
  __sanitizer_set_death_callback(say_current);
#endif
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 1; i < argc; i++)
    run_path(argv[i]);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

  printf("%s: %zu inputs replayed in %.2f s, %d errors\n", prog, replay_total, s, replay_errors);
  if (replay_total == 0) {
    fprintf(stderr, "%s: no input to replay\n", prog);
    return 1;
  }
  return replay_errors ? 1 : 0;
}
