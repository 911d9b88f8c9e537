/* Logging: one write(2) per line so concurrent processes appending to one file
 * never interleave inside a line. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static char log_path[1024];
static enum sortie_log_level log_level = SORTIE_LOG_INFO;

int sortie_log_open(const char *path)
{
  if (path == NULL || path[0] == '\0' || strcmp(path, "-") == 0) {
    if (log_fd > 2)
      close(log_fd);
    log_fd = 2;
    log_path[0] = '\0';
    return 0;
  }
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0)
    return -1;
  if (log_fd > 2)
    close(log_fd);
  log_fd = fd;
  snprintf(log_path, sizeof log_path, "%s", path);
  return 0;
}

int sortie_log_reopen(void)
{
  if (log_path[0] == '\0')
    return 0;
  char path[sizeof log_path];
  memcpy(path, log_path, sizeof path);
  return sortie_log_open(path);
}

void sortie_log_set_level(enum sortie_log_level level)
{
  log_level = level;
}

int sortie_log_parse_level(const char *s)
{
  static const char *const names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (strcasecmp(s, names[i]) == 0)
      return i;
  return -1;
}

int sortie_log_enabled(enum sortie_log_level level)
{
  return level >= log_level;
}

void sortie_log(enum sortie_log_level level, const char *tag, const char *fmt, ...)
{
  static const char *const names[] = {"debug", "info", "warn", "error"};
  if (level < log_level)
    return;
  int saved = errno;
  char line[2048];
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  int k = snprintf(line + n, sizeof line - n, ".%03dZ %s [%s] pid=%d ", (int)(tv.tv_usec / 1000),
                   names[level & 3], tag, (int)getpid());
  if (k > 0)
    n += (size_t)k;
  va_list ap;
  va_start(ap, fmt);
  k = vsnprintf(line + n, sizeof line - n, fmt, ap);
  va_end(ap);
  if (k > 0)
    n += (size_t)k < sizeof line - n ? (size_t)k : sizeof line - n - 1;
  /* one line per event: fold any newline a caller let through */
  for (size_t i = 0; i < n; i++)
    if (line[i] == '\n' || line[i] == '\r')
      line[i] = ' ';
  if (n >= sizeof line - 1)
    n = sizeof line - 2;
  line[n++] = '\n';
  ssize_t w = write(log_fd, line, n);
  (void)w;
  errno = saved;
}

char *sortie_log_redact_query(const char *qs, char *out, size_t n)
{
  size_t o = 0;
  if (n == 0)
    return out;
  const char *p = qs ? qs : "";
  while (*p && o + 1 < n) {
    const char *amp = strchr(p, '&');
    size_t plen = amp ? (size_t)(amp - p) : strlen(p);
    const char *src = p;
    size_t slen = plen;
    if (plen >= 6 && strncasecmp(p, "token=", 6) == 0) {
      src = "token=REDACTED";
      slen = 14;
    }
    for (size_t i = 0; i < slen && o + 1 < n; i++)
      out[o++] = src[i];
    p += plen;
    if (*p == '&') {
      if (o + 1 < n)
        out[o++] = '&';
      p++;
    }
  }
  out[o] = '\0';
  return out;
}
