/* sortie-api: every REST endpoint in one FastCGI program. This is what the
 * shipped Apache config runs, as a pre-started pool behind mod_proxy_fcgi
 * (`sortie-api -s SOCKET -n WORKERS`). */
#include "api.h"
#include "fcgi.h"

int main(int argc, char **argv)
{
  return sortie_fcgi_main(argc, argv, "sortie-api", sortie_api_routes, sortie_api_nroutes);
}
