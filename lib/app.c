/* What every program and tool sets up first: configuration, secrets, logging,
 * problem base and the Redis connection. */
#include "app.h"
#include "redis.h"
#include "log.h"

#include <errno.h>
#include <string.h>

int sortie_app_init(struct sortie_app *app, const char *conf_path, char *err, size_t errlen)
{
  memset(app, 0, sizeof *app);
  if (sortie_cfg_load(&app->cfg, conf_path, err, errlen) < 0)
    return -1;
  if (app->cfg.log_file[0] && sortie_log_open(app->cfg.log_file) < 0)
    LOG_WARN("app", "cannot open log file %s: %s", app->cfg.log_file, strerror(errno));
  int lvl = sortie_log_parse_level(app->cfg.log_level);
  if (lvl >= 0)
    sortie_log_set_level((enum sortie_log_level)lvl);
  sortie_problem_base(app->cfg.api_problem_base);
  if (sortie_cfg_load_secrets(&app->cfg, err, errlen) < 0)
    return -1;
  app->redis = sortie_redis_new(&app->cfg);
  return 0;
}

void sortie_app_free(struct sortie_app *app)
{
  sortie_redis_free(app->redis);
  app->redis = NULL;
  sortie_cfg_free(&app->cfg);
}
