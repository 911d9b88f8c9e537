/* One-line, tagged logging for every Sortie program.
 *
 * A line is: `2026-11-21T21:40:07.123Z info [fire] pid=1234 message`. Lines go to
 * the file opened by sortie_log_open() (appended, reopened on SIGHUP by callers)
 * or to stderr. Tokens never reach a log: callers pass query strings through
 * sortie_log_redact_query() before logging them. */
#ifndef SORTIE_LOG_H
#define SORTIE_LOG_H

#include <stddef.h>

enum sortie_log_level {
  SORTIE_LOG_DEBUG = 0,
  SORTIE_LOG_INFO = 1,
  SORTIE_LOG_WARN = 2,
  SORTIE_LOG_ERROR = 3,
};

/** Sends log lines to `path` (appended; NULL or "" or "-" means stderr).
 * Returns 0, or -1 with errno set when the file cannot be opened (logging then
 * stays on stderr). */
int sortie_log_open(const char *path);
/** Reopens the current log file (for SIGHUP after rotation). Async-signal-unsafe:
 * call it from the main loop, not from the handler. */
int sortie_log_reopen(void);
/** Lines below `level` are dropped. */
void sortie_log_set_level(enum sortie_log_level level);
/** Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int sortie_log_parse_level(const char *s);
int sortie_log_enabled(enum sortie_log_level level);

void sortie_log(enum sortie_log_level level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_DEBUG(tag, ...) \
  do { if (sortie_log_enabled(SORTIE_LOG_DEBUG)) sortie_log(SORTIE_LOG_DEBUG, tag, __VA_ARGS__); } while (0)
#define LOG_INFO(tag, ...) sortie_log(SORTIE_LOG_INFO, tag, __VA_ARGS__)
#define LOG_WARN(tag, ...) sortie_log(SORTIE_LOG_WARN, tag, __VA_ARGS__)
#define LOG_ERROR(tag, ...) sortie_log(SORTIE_LOG_ERROR, tag, __VA_ARGS__)

/** Copies query string `qs` into `out` (size `n`, always NUL-terminated, truncated
 * if needed) with the value of every `token` parameter replaced by `REDACTED`.
 * Returns `out`. */
char *sortie_log_redact_query(const char *qs, char *out, size_t n);

#endif
