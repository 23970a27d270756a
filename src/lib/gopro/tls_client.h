/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * gopro/tls_client.h - the client side of TLS for GoPro: libgopro-tls.
 *
 * libgopro-tls.so.1 is a library of its own beside libgopro.so.1 (as
 * hiredis_ssl is beside hiredis), so that OpenSSL stays out of the core
 * library's link line: a program that speaks TLS links it with
 * "pkg-config --cflags --libs gopro-tls", one that does not never loads
 * OpenSSL.  goproctl ping/send --tls and the tests use it too.
 *
 * A gopro_tls_ctx holds the trust (CA file, or the system's), the client
 * certificate if any, and the last session the server gave: the next
 * connection made with the same context offers it, so a loop of
 * connections makes resumed handshakes.  A gopro_tls is one connection.
 * Both are opaque.  Every call takes a timeout in seconds and never waits
 * longer; the socket stays non-blocking.  The same context also serves
 * the asynchronous client, through gopro_tls_transport.  Replies are positional as in
 * client.h: after a failure in the middle of a frame, close the connection.
 * A context and its connections belong to one thread at a time.  The
 * library never prints, never exits and never raises SIGPIPE.  See
 * libgopro_tls(3).
 */
#ifndef GOPRO_TLS_CLIENT_H
#define GOPRO_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gopro/gopro.h"

/*
 * Options, filled by gopro_tls_options_init and then by the caller.  size
 * is the caller's sizeof, so that fields added later at the end do not
 * break programs built against this version.
 */
struct gopro_tls_options {
	size_t size;
	const char *ca_file;     /* NULL: the system's trusted CAs */
	const char *cert_file;   /* client certificate (PEM), or NULL */
	const char *key_file;    /* its key; NULL: in cert_file */
	const char *servername;  /* SNI and the name checked; NULL: no name check */
	bool no_verify;          /* accept any server certificate (tests only) */
	bool no_resume;          /* never offer a remembered session */
};

struct gopro_tls_ctx;
struct gopro_tls;

/* Defaults: the system's CAs, verification on, resumption on. */
GOPRO_API void gopro_tls_options_init(struct gopro_tls_options *o);
/*
 * A context (the options and strings are copied): NULL with the file at
 * fault and OpenSSL's reason in err.
 */
GOPRO_API struct gopro_tls_ctx *gopro_tls_ctx_new(
    const struct gopro_tls_options *o, char *err, size_t errlen);
/* After its connections are closed; NULL is fine. */
GOPRO_API void gopro_tls_ctx_free(struct gopro_tls_ctx *ctx);

/*
 * Connect to address (as gopro_client_connect takes it: "host:port",
 * "[v6]:port", "unix:/path") and run the handshake, within timeout: NULL
 * with what failed in err.
 */
GOPRO_API struct gopro_tls *gopro_tls_connect(struct gopro_tls_ctx *ctx,
    const char *address, double timeout, char *err, size_t errlen);
/*
 * Run the handshake on a connected non-blocking socket within timeout;
 * the connection owns fd from then on, even on failure (NULL, with the
 * reason in err).
 */
GOPRO_API struct gopro_tls *gopro_tls_start(struct gopro_tls_ctx *ctx,
    int fd, double timeout, char *err, size_t errlen);
/* Whether the handshake resumed a session; "TLSv1.3", ... */
GOPRO_API bool gopro_tls_resumed(const struct gopro_tls *t);
GOPRO_API const char *gopro_tls_version(const struct gopro_tls *t);

/*
 * Frames over TLS: GOPRO_OK or a GOPRO_E_* result, as in client.h.  A
 * frame read is decoded in buf (cap bytes: the header and the largest
 * body accepted; a bigger one is GOPRO_E_TOO_LARGE) and points into it.
 */
GOPRO_API int gopro_tls_send_frame(struct gopro_tls *t, uint8_t command,
    const void *body, size_t len, double timeout);
GOPRO_API int gopro_tls_read_frame(struct gopro_tls *t, uint8_t *buf,
    size_t cap, struct gopro_frame *frame, double timeout);
/* LOGIN and its reply (LOGIN_ACK or an ERROR: look at the command). */
GOPRO_API int gopro_tls_login(struct gopro_tls *t, const char *user,
    const char *password, uint8_t *buf, size_t cap,
    struct gopro_frame *frame, double timeout);
/* Write len bytes as they are (tests: partial frames, garbage). */
GOPRO_API int gopro_tls_write(struct gopro_tls *t, const void *p,
    size_t len, double timeout);
/* Send close_notify (best effort), free, close the socket; NULL is fine. */
GOPRO_API void gopro_tls_close(struct gopro_tls *t);

/*
 * One step without waiting, for a caller with its own poll() over several
 * connections (the test harness's TLS relay): the bytes moved (> 0), 0 when
 * the server closed (close_notify, FIN or a reset), or -1 with errno, which
 * is EAGAIN when *want says what the socket must become (POLLIN or POLLOUT)
 * before the same call can progress.  Poll only after a read said EAGAIN:
 * OpenSSL may hold decrypted bytes that no readiness event announces.
 */
GOPRO_API ssize_t gopro_tls_read_some(struct gopro_tls *t, void *buf,
    size_t cap, short *want);
GOPRO_API ssize_t gopro_tls_write_some(struct gopro_tls *t, const void *buf,
    size_t len, short *want);
/* The connection's socket (non-blocking), for poll(). */
GOPRO_API int gopro_tls_fd(const struct gopro_tls *t);
/* Send close_notify and shut the socket for writing; reading goes on. */
GOPRO_API void gopro_tls_shutdown_write(struct gopro_tls *t);
/* Free and close with a reset (SO_LINGER 0) and no close_notify. */
GOPRO_API void gopro_tls_abort(struct gopro_tls *t);

/*
 * TLS under the asynchronous client (gopro/async.h): set
 * options.transport to this and options.transport_arg to a gopro_tls_ctx,
 * which must outlive the gopro_async.  Each connection's state is a
 * struct gopro_tls (gopro_tls_resumed and gopro_tls_version work on it;
 * gopro_tls_fd is -1: the async client owns the socket); the sessions the
 * server gives are kept in the context and offered by the next connection,
 * as for the blocking calls.  (Since LIBGOPRO_TLS_1.1.)
 */
struct gopro_transport;
GOPRO_API const struct gopro_transport *gopro_tls_transport(void);

#endif /* GOPRO_TLS_CLIENT_H */
