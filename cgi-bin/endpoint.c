/* One row of the REST contract as its own FastCGI/CGI program, for hosts that
 * map each URL to a script (mod_fcgid or CGI with .htaccess). The Makefile
 * builds this file once per endpoint with -DSORTIE_NAME and -DSORTIE_ROUTES
 * (one or more SORTIE_R_* rows from lib/api.h). */
#include "api.h"
#include "fcgi.h"

static const struct sortie_route routes[] = {SORTIE_ROUTES};

int main(int argc, char **argv)
{
  return sortie_fcgi_main(argc, argv, SORTIE_NAME, routes, sizeof routes / sizeof routes[0]);
}
