/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * gopro/client.h - the blocking GoPro client of libgopro.
 *
 * A struct gopro_client is one connection.  Every call that waits takes a
 * timeout in seconds and never waits longer, however the server dribbles
 * its bytes.  Replies are matched to requests by position, so after a
 * call fails with GOPRO_E_TIMEOUT, GOPRO_E_CLOSED or GOPRO_E_PROTOCOL in
 * the middle of a frame the connection cannot be used again: connect
 * again or free it.  A frame handed out points into the context and stays
 * valid until the next call on it.  A context belongs to one thread at a
 * time; different contexts are independent.  The library never prints,
 * never exits, and writes with MSG_NOSIGNAL, so a closed connection is
 * GOPRO_E_CLOSED, not SIGPIPE.  See libgopro(3).
 */
#ifndef GOPRO_CLIENT_H
#define GOPRO_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "gopro/gopro.h"

struct gopro_client;

/* A context without a connection; NULL when out of memory. */
GOPRO_API struct gopro_client *gopro_client_new(void);
/* Close the connection (if any) and free the context; NULL is fine. */
GOPRO_API void gopro_client_free(struct gopro_client *c);
/*
 * Connect to "host:port", "[v6]:port", "unix:/path" or "/path" within
 * timeout, trying each address a name resolves to.  A previous connection
 * of c is closed first.  GOPRO_OK, GOPRO_E_ADDRESS, GOPRO_E_CONNECT or
 * GOPRO_E_TIMEOUT; gopro_client_error says which address and why.
 */
GOPRO_API int gopro_client_connect(struct gopro_client *c,
    const char *address, double timeout);
/* The connected socket (non-blocking), -1 when there is none. */
GOPRO_API int gopro_client_fd(const struct gopro_client *c);
/* A sentence about the last failure of a call on c ("" if none). */
GOPRO_API const char *gopro_client_error(const struct gopro_client *c);
/*
 * The largest reply body accepted (default: GOPRO_DEFAULT_MAX_BODY plus
 * room for the server's message prefix); a bigger one is GOPRO_E_TOO_LARGE.
 */
GOPRO_API void gopro_client_set_max_reply(struct gopro_client *c,
    uint32_t max_body);
/* The reason of the last GOAWAY the server sent, 0 when none came. */
GOPRO_API int gopro_client_goaway(const struct gopro_client *c);

/*
 * Pipelining: send requests without waiting, then receive their replies in
 * the same order.  gopro_client_recv hands out the next reply; a GOAWAY
 * on the way is recorded (gopro_client_goaway) and skipped, since it
 * answers no request.  ERROR replies are returned as frames: look at
 * reply->header.command.
 */
GOPRO_API int gopro_client_send(struct gopro_client *c, uint8_t command,
    const void *body, size_t len, double timeout);
GOPRO_API int gopro_client_recv(struct gopro_client *c,
    struct gopro_frame *reply, double timeout);
/* One request and its reply, whatever the reply is. */
GOPRO_API int gopro_client_request(struct gopro_client *c, uint8_t command,
    const void *body, size_t len, struct gopro_frame *reply,
    double timeout);

/*
 * The usual requests, with the reply checked: GOPRO_OK when it is the
 * expected answer (HEARTBEAT with the same body, MESSAGE, LOGIN_ACK),
 * GOPRO_E_SERVER for an ERROR (GOPRO_E_AUTH for a refused login; its code
 * and text are in gopro_client_error), GOPRO_E_PROTOCOL for anything else.
 * reply may be NULL.
 */
GOPRO_API int gopro_client_heartbeat(struct gopro_client *c,
    const void *body, size_t len, double timeout);
GOPRO_API int gopro_client_message(struct gopro_client *c, const void *body,
    size_t len, struct gopro_frame *reply, double timeout);
GOPRO_API int gopro_client_login(struct gopro_client *c, const char *user,
    const char *password, double timeout);

#endif /* GOPRO_CLIENT_H */
