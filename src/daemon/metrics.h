/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * metrics.h - the optional Prometheus endpoint (metrics_listen): a small
 * HTTP/1.x server in a process of its own, forked by the master, that maps
 * the stats segment read-only and answers GET /metrics.  Being a separate
 * process, a slow or hostile HTTP client can stall neither the master nor a
 * worker; requests are bounded in size, time and number, and idle
 * connections give way to new ones, so a scrape always gets a slot.
 */
#ifndef GOPRO_METRICS_H
#define GOPRO_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define METRICS_CLIENTS_MAX 64
/* Slots one host may hold; its next connection evicts its oldest idle one. */
#define METRICS_PEER_MAX 8
#define METRICS_REQUEST_MAX 4096
#define METRICS_READ_TIMEOUT 5.0
#define METRICS_WRITE_TIMEOUT 10.0

/*
 * Serve listen_fd (a listening TCP socket) until SIGTERM or SIGINT, then
 * return 0; 1 when the loop cannot be set up.  Call in a freshly forked
 * child after the default loop is gone: it builds its own loop.
 */
int metrics_serve(int listen_fd, const char *stats_path);

/*
 * Judge one request head (request line and headers, up to the blank line;
 * exposed for the tests): 200 for GET or HEAD of /metrics (*head_only set
 * for HEAD), 404 for another path, 405 for another method, 400 for anything
 * that is not HTTP/1.x.
 */
int metrics_request_status(const char *head, size_t len, bool *head_only);

#endif /* GOPRO_METRICS_H */
