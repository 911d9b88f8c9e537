/* The main() of every FastCGI program. One binary runs three ways:
 *   - plain CGI, one request, when started by a web server without FastCGI;
 *   - FastCGI on the socket it inherits as fd 0 (mod_fcgid, spawn-fcgi);
 *   - a pre-started pool: `-s SOCKET -n N` binds SOCKET (a path, or
 *     127.0.0.1:PORT), forks N workers that accept on it, restarts any that die,
 *     and stops them all on SIGTERM. This is what mod_proxy_fcgi talks to: the
 *     kernel queues requests on the socket, so a burst waits in line instead of
 *     failing over like mod_fcgid does when all its processes are busy.
 * Flags: -c CONFIG, -s SOCKET, -n WORKERS, -p PIDFILE, -m SOCKET_MODE (octal). */
#ifndef SORTIE_FCGI_H
#define SORTIE_FCGI_H

#include <stddef.h>

#include "app.h"
#include "http.h"

/** Runs the program `name` serving `routes`; returns the exit status. */
int sortie_fcgi_main(int argc, char **argv, const char *name, const struct sortie_route *routes,
                     size_t nroutes);

#endif
