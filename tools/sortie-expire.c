/* sortie-expire: the cron job. Marks every ACTIVE signal past expires_at as
 * EXPIRED (publishing mission_status_update), drops signals that ended longer
 * ago than retention.signal_s, and trims channel histories older than
 * history.max_age_s. Each step on one signal or channel is one atomic script,
 * so two runs at once, or a run killed halfway, never expire a signal twice or
 * lose anything. Exits 1 if Redis went away, or if stored data kept a signal
 * from being expired or purged (each is named on stderr; nothing of it was
 * written, and the next run tries again).   sortie-expire [-c CONFIG] [-q] */
#include "app.h"
#include "log.h"
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH "500"

/* Runs `s` for each member of sorted set `set` with a score up to `max`, in
 * batches; returns how many times the script answered {1}, or -1 if Redis went
 * away. The scripts take a member off the set when they are done with it ({1},
 * or {2} for a stale one); only those answering {0} (not due) or {3, why}
 * (stored data it could not use, nothing written) stay, and the next batch
 * starts past them. Each {3}, and each error reply, is said on stderr and in
 * the log and counted in *refused. */
static long each_member(struct sortie_app *app, const char *set, const char *max,
                        enum sortie_lua s, const char *extra, long *refused)
{
  char key[256];
  snprintf(key, sizeof key, "%s%s", app->cfg.redis_prefix, set);
  long done = 0;
  char offset[24] = "0";
  for (;;) {
    const char *av[] = {"ZRANGEBYSCORE", key, "-inf", max, "LIMIT", offset, BATCH};
    sortie_reply *rep = sortie_redis_cmd(app->redis, SORTIE_REDIS_IDEMPOTENT, 7, av, NULL);
    if (rep == NULL)
      return -1;
    size_t n = sortie_reply_len(rep);
    long kept = 0;
    for (size_t i = 0; i < n; i++) {
      size_t l;
      const char *id = sortie_reply_str(sortie_reply_at(rep, i), &l);
      char idb[128];
      if (id == NULL || l >= sizeof idb)
        continue;
      memcpy(idb, id, l);
      idb[l] = '\0';
      const char *argv[] = {idb, extra};
      sortie_reply *r = sortie_redis_script(app->redis, s, 0, extra ? 2 : 1, argv, NULL);
      if (r == NULL) {
        sortie_reply_free(rep);
        return -1;
      }
      const sortie_reply *x = sortie_reply_at(r, 0);
      long long v = x && sortie_reply_type(x) == SORTIE_REPLY_INTEGER ? sortie_reply_int(x) : 3;
      if (v == 1) {
        done++;
      } else if (v == 0 || v == 3) {
        kept++; /* still in the set: step over it next batch */
      }
      if (v == 3) {
        size_t wl = 0;
        const sortie_reply *w = sortie_reply_type(r) == SORTIE_REPLY_ERROR ? r : sortie_reply_at(r, 1);
        const char *why = w ? sortie_reply_str(w, &wl) : NULL;
        if (why == NULL) {
          why = "unexpected reply";
          wl = strlen(why);
        }
        fprintf(stderr, "sortie-expire: %s %s left as it is: %.*s\n", set, idb, (int)wl, why);
        LOG_ERROR("expire", "%s %s left as it is: %.*s", set, idb, (int)wl, why);
        (*refused)++;
      }
      sortie_reply_free(r);
    }
    sortie_reply_free(rep);
    if (n < (size_t)atoi(BATCH))
      break;
    snprintf(offset, sizeof offset, "%ld", kept + atol(offset));
  }
  return done;
}

/* Trims every channel's history by age. The histories are found with SCAN
 * (no index of them is kept: that would cost every publish a write). */
static long trim_channels(struct sortie_app *app, long long min_ms, long *dropped)
{
  char match[160], minb[32], cursor[32] = "0";
  size_t plen = strlen(app->cfg.redis_prefix) + 2; /* "<prefix>h:" */
  snprintf(match, sizeof match, "%sh:*", app->cfg.redis_prefix);
  snprintf(minb, sizeof minb, "%lld", min_ms);
  long trimmed = 0;
  *dropped = 0;
  do {
    const char *av[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000", "TYPE", "stream"};
    sortie_reply *rep = sortie_redis_cmd(app->redis, SORTIE_REDIS_IDEMPOTENT, 8, av, NULL);
    if (rep == NULL)
      return -1;
    size_t cl;
    const char *next = sortie_reply_str(sortie_reply_at(rep, 0), &cl);
    const sortie_reply *keys = sortie_reply_at(rep, 1);
    if (next == NULL || keys == NULL || cl >= sizeof cursor) {
      sortie_reply_free(rep);
      return -1;
    }
    memcpy(cursor, next, cl);
    cursor[cl] = '\0';
    for (size_t i = 0; i < sortie_reply_len(keys); i++) {
      size_t l;
      const char *k = sortie_reply_str(sortie_reply_at(keys, i), &l);
      char ch[128];
      if (k == NULL || l <= plen || l - plen >= sizeof ch)
        continue;
      memcpy(ch, k + plen, l - plen);
      ch[l - plen] = '\0';
      const char *argv[] = {ch, minb};
      sortie_reply *r = sortie_redis_script(app->redis, SORTIE_LUA_TRIM, 0, 2, argv, NULL);
      if (r == NULL) {
        sortie_reply_free(rep);
        return -1;
      }
      const sortie_reply *a = sortie_reply_at(r, 0), *b = sortie_reply_at(r, 1);
      if (a && sortie_reply_type(a) == SORTIE_REPLY_INTEGER)
        trimmed += (long)sortie_reply_int(a);
      if (b && sortie_reply_type(b) == SORTIE_REPLY_INTEGER && sortie_reply_int(b) == 1)
        (*dropped)++;
      sortie_reply_free(r);
    }
    sortie_reply_free(rep);
  } while (strcmp(cursor, "0") != 0);
  return trimmed;
}

int main(int argc, char **argv)
{
  const char *conf = NULL;
  int quiet = 0, c;
  while ((c = getopt(argc, argv, "c:qh")) != -1) {
    switch (c) {
    case 'c': conf = optarg; break;
    case 'q': quiet = 1; break;
    default:
      fprintf(stderr, "usage: sortie-expire [-c CONFIG] [-q]\n");
      return c == 'h' ? 0 : 2;
    }
  }
  struct sortie_app app;
  char err[512];
  if (sortie_app_init(&app, conf, err, sizeof err) < 0) {
    fprintf(stderr, "sortie-expire: %s\n", err);
    return 1;
  }
  time_t now = time(NULL);
  char nowb[24], keepb[24];
  snprintf(nowb, sizeof nowb, "%lld", (long long)now);
  snprintf(keepb, sizeof keepb, "%d", app.cfg.retention_signal_s);
  char purge_max[24];
  snprintf(purge_max, sizeof purge_max, "%lld", (long long)now - app.cfg.retention_signal_s);

  long refused = 0;
  long expired = each_member(&app, "active", nowb, SORTIE_LUA_EXPIRE, NULL, &refused);
  long purged = expired < 0 ? -1
                            : each_member(&app, "ended", purge_max, SORTIE_LUA_PURGE, keepb,
                                          &refused);
  long dropped = 0;
  long trimmed = purged < 0 ? -1
                            : trim_channels(&app, ((long long)now - app.cfg.history_max_age_s) * 1000,
                                            &dropped);
  int rc = 0;
  if (trimmed < 0) {
    fprintf(stderr, "sortie-expire: %s\n", sortie_redis_errstr(app.redis));
    LOG_ERROR("expire", "stopped: %s", sortie_redis_errstr(app.redis));
    rc = 1;
  } else {
    LOG_INFO("expire", "expired=%ld purged=%ld trimmed_events=%ld dropped_channels=%ld", expired,
             purged, trimmed, dropped);
    if (!quiet)
      printf("expired %ld signal(s), purged %ld, trimmed %ld event(s), dropped %ld idle "
             "channel(s)\n", expired, purged, trimmed, dropped);
    if (refused > 0) /* said one by one above; a later run tries them again */
      rc = 1;
  }
  sortie_app_free(&app);
  return rc;
}
