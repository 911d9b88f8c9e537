/* Program set-up shared by the FastCGI programs and the tools. */
#ifndef SORTIE_APP_H
#define SORTIE_APP_H

#include <stddef.h>

#include "http.h"

/** Loads configuration, secrets, logging and Redis into `app` (what every
 * program and tool needs). -1 with a message in `err` on failure; `app` can be
 * freed either way. */
int sortie_app_init(struct sortie_app *app, const char *conf_path, char *err, size_t errlen);
void sortie_app_free(struct sortie_app *app);

#endif
