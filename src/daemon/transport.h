/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * transport.h - how conn.c moves bytes: the layer below the connection.
 *
 * conn.c keeps the limits and the life cycle of a connection and calls
 * read, write, shutdown and close through these functions; they go to the
 * socket directly for a plain connection, or through OpenSSL (tls.c) when
 * the connection has a TLS session (Redis's connection.h is the model).
 * They are inline so the plain path costs one predictable branch and no
 * indirect call.
 *
 * The contract is the one of read(2) and write(2): > 0 bytes moved, 0 end
 * of stream (read only), -1 with errno.  EAGAIN also covers TLS's "want
 * read" and "want write": transport_wants_write() tells conn.c which
 * readiness event the operation waits for, since a TLS read may need the
 * socket to be writable (and a write readable).
 */
#ifndef GOPRO_TRANSPORT_H
#define GOPRO_TRANSPORT_H

#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#ifdef HAVE_TLS
#include "tls.h"
#endif

static inline ssize_t
transport_read(struct conn *c, void *p, size_t n)
{
#ifdef HAVE_TLS
	if (c->tls != NULL)
		return tls_conn_read(c->tls, p, n);
#endif
	return read(c->fd, p, n);
}

static inline ssize_t
transport_write(struct conn *c, const void *p, size_t n)
{
#ifdef HAVE_TLS
	if (c->tls != NULL)
		return tls_conn_write(c->tls, p, n);
#endif
	return write(c->fd, p, n);
}

/*
 * Bytes the transport holds that the socket's readiness will not report
 * (records OpenSSL already read and decrypted): conn.c must come back for
 * them without waiting for an event.
 */
static inline bool
transport_pending(const struct conn *c)
{
#ifdef HAVE_TLS
	if (c->tls != NULL)
		return tls_conn_pending(c->tls);
#endif
	return false;
}

/* After an EAGAIN: whether the operation waits for writability. */
static inline bool
transport_wants_write(const struct conn *c, bool writing)
{
#ifdef HAVE_TLS
	if (c->tls != NULL)
		return tls_conn_wants_write(c->tls);
#endif
	return writing;
}

/* No more output: TLS sends close_notify first, then the FIN. */
static inline void
transport_shutdown(struct conn *c)
{
#ifdef HAVE_TLS
	if (c->tls != NULL)
		tls_conn_shutdown(c->tls);
#endif
	shutdown(c->fd, SHUT_WR);
}

static inline void
transport_close(struct conn *c)
{
#ifdef HAVE_TLS
	if (c->tls != NULL) {
		tls_conn_free(c->tls);
		c->tls = NULL;
	}
#endif
	close(c->fd);
}

#endif /* GOPRO_TRANSPORT_H */
