/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tls_client.h - the client side of TLS for the blocking GoPro client
 * (client.h): goproctl ping/send --tls and the tests use it, and so can
 * any program of the library's users.  It lives in its own library,
 * libgopro-tls, so that OpenSSL stays out of the core libgopro's link line.
 *
 * A client_tls_ctx holds the trust (CA file, or the system's), the client
 * certificate if any, and the last session the server gave: the next
 * connection made with the same context offers it, so a loop of
 * connections measures or uses resumed handshakes.  Every call takes a
 * timeout in seconds; the socket stays non-blocking.
 */
#ifndef GOPRO_TLS_CLIENT_H
#define GOPRO_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gopro/gopro.h"

struct client_tls_options {
	const char *ca_file;     /* NULL: the system's trusted CAs */
	const char *cert_file;   /* client certificate (PEM), or NULL */
	const char *key_file;    /* its key; NULL: in cert_file */
	const char *servername;  /* SNI and the name checked; NULL: no name check */
	bool no_verify;          /* accept any server certificate (tests only) */
	bool no_resume;          /* never offer a remembered session */
};

struct client_tls_ctx;
struct client_tls;

/* NULL with the file at fault and OpenSSL's reason in err. */
struct client_tls_ctx *client_tls_ctx_new(const struct client_tls_options *o,
    char *err, size_t errlen);
void client_tls_ctx_free(struct client_tls_ctx *ctx);

/*
 * Connect to address ("host:port", "[v6]:port") and run the handshake,
 * within timeout: NULL with what failed in err.
 */
struct client_tls *client_tls_connect(struct client_tls_ctx *ctx,
    const char *address, double timeout, char *err, size_t errlen);
/*
 * Run the handshake on a connected non-blocking socket within timeout;
 * the connection owns fd from then on, even on failure (NULL, with the
 * reason in err).
 */
struct client_tls *client_tls_start(struct client_tls_ctx *ctx, int fd,
    double timeout, char *err, size_t errlen);
/* Whether the handshake resumed a session; "TLSv1.3", ... */
bool client_tls_resumed(const struct client_tls *t);
const char *client_tls_version(const struct client_tls *t);

/* Frames over TLS: GOPRO_OK or a GOPRO_E_* result, as in client.h. */
int client_tls_send_frame(struct client_tls *t, uint8_t command,
    const void *body, size_t len, double timeout);
int client_tls_read_frame(struct client_tls *t, uint8_t *buf, size_t cap,
    struct gopro_frame *frame, double timeout);
int client_tls_login(struct client_tls *t, const char *user,
    const char *password, uint8_t *buf, size_t cap,
    struct gopro_frame *frame, double timeout);
/* Write len bytes as they are (tests: partial frames, garbage). */
int client_tls_write(struct client_tls *t, const void *p, size_t len,
    double timeout);
/* Send close_notify (best effort), free, close the socket. */
void client_tls_close(struct client_tls *t);

/*
 * One step without waiting, for a caller with its own poll() over several
 * connections (the test harness's TLS relay): the bytes moved (> 0), 0 when
 * the server closed (close_notify, FIN or a reset), or -1 with errno, which
 * is EAGAIN when *want says what the socket must become (POLLIN or POLLOUT)
 * before the same call can progress.  Poll only after a read said EAGAIN:
 * OpenSSL may hold decrypted bytes that no readiness event announces.
 */
ssize_t client_tls_read_some(struct client_tls *t, void *buf, size_t cap,
    short *want);
ssize_t client_tls_write_some(struct client_tls *t, const void *buf,
    size_t len, short *want);
int client_tls_fd(const struct client_tls *t);
/* Send close_notify and shut the socket for writing; reading goes on. */
void client_tls_shutdown_write(struct client_tls *t);
/* Free and close with a reset (SO_LINGER 0) and no close_notify. */
void client_tls_abort(struct client_tls *t);

#endif /* GOPRO_TLS_CLIENT_H */
