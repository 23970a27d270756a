/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tls.h - TLS for goprod's listeners, on OpenSSL 3; the only file of the
 * daemon that sees OpenSSL.
 *
 * A tls_ctx is the SSL_CTX of one configuration: conf.c builds it while it
 * loads the file (so goprod -t and a reload check the certificate, the key
 * and the CA in the master, before any worker is replaced), and every worker
 * of that generation inherits it through fork.  A reload builds a new one;
 * connections already open keep the one they started with.
 *
 * A tls_conn is the TLS session of one connection.  Its I/O functions follow
 * read(2) and write(2) (see transport.h): EAGAIN for "want read" or "want
 * write", and tls_conn_wants_write says which.
 *
 * Session tickets are encrypted with keys derived from a secret that the
 * master draws once, before it forks the first worker, and from the
 * number of the current period of tls.ticket_key_rotation seconds on the
 * wall clock: every worker of every generation derives the same keys at
 * the same time with no message between processes, so a client resumes
 * whichever worker it reaches, across reloads.  Tickets of the previous
 * period still decrypt (and get a fresh ticket); older ones do not.
 * Neither the secret nor the keys are ever written to a file.
 */
#ifndef GOPRO_TLS_H
#define GOPRO_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct conf_tls;
struct tls_ctx;
struct tls_conn;

/* Longest identity taken from a client certificate, NUL included. */
#define TLS_IDENTITY_MAX 256

enum tls_verify {
	TLS_VERIFY_OFF = 0,	/* no client certificate asked for */
	TLS_VERIFY_OPTIONAL,	/* asked for; if sent, it must verify */
	TLS_VERIFY_REQUIRE,	/* no verified certificate, no connection */
};

/* Which part of a verified client certificate names the client. */
enum tls_identity {
	TLS_IDENTITY_OFF = 0,
	TLS_IDENTITY_CN,	/* the subject's commonName */
	TLS_IDENTITY_DNS,	/* the first DNS subjectAltName */
	TLS_IDENTITY_EMAIL,	/* the first email subjectAltName */
	TLS_IDENTITY_URI,	/* the first URI subjectAltName */
};

enum tls_handshake {
	TLS_HS_DONE,
	TLS_HS_AGAIN,		/* tls_conn_wants_write says which event */
	TLS_HS_FAILED,		/* tls_conn_failure says why */
};

/* Why a handshake failed, for the counters. */
enum tls_failure {
	TLS_FAIL_PROTOCOL,	/* not TLS, no common version or cipher */
	TLS_FAIL_CERTIFICATE,	/* client certificate missing or refused */
	TLS_FAIL_CLOSED,	/* the client went away */
};

/*
 * Build the context of t.  NULL on failure, with the option at fault in
 * *option ("certificate", "key", ...) and what is wrong, OpenSSL's reason
 * included, in why.
 */
struct tls_ctx *tls_ctx_new(const struct conf_tls *t, const char **option,
    char *why, size_t whylen);
void tls_ctx_free(struct tls_ctx *ctx);
/* When the server certificate stops being valid (unix seconds). */
time_t tls_ctx_expiry(const struct tls_ctx *ctx);
/* Its subject, for the log. */
const char *tls_ctx_subject(const struct tls_ctx *ctx);

/* A session for an accepted socket; NULL on ENOMEM. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd);
/*
 * From now on, the bytes of TLS records that the sessions of this process
 * read from and write to their sockets, handshakes and alerts included,
 * are added to wire[0] and wire[1] (a worker's statistics: one writer,
 * relaxed atomics); NULL counts nothing.  With kTLS the kernel frames the
 * records: what is counted then is the clear text the sockets took.
 */
void tls_count_wire(uint64_t *wire);
void tls_conn_free(struct tls_conn *tc);

enum tls_handshake tls_conn_handshake(struct tls_conn *tc);
enum tls_failure tls_conn_failure(const struct tls_conn *tc,
    char *why, size_t whylen);
ssize_t tls_conn_read(struct tls_conn *tc, void *p, size_t n);
ssize_t tls_conn_write(struct tls_conn *tc, const void *p, size_t n);
bool tls_conn_pending(const struct tls_conn *tc);
bool tls_conn_wants_write(const struct tls_conn *tc);
/* Send close_notify (best effort: the socket is non-blocking). */
void tls_conn_shutdown(struct tls_conn *tc);

/* After the handshake. */
bool tls_conn_resumed(const struct tls_conn *tc);
/* 0x0303 for TLS 1.2, 0x0304 for TLS 1.3; as text, "TLSv1.3". */
int tls_conn_version(const struct tls_conn *tc);
const char *tls_conn_version_name(const struct tls_conn *tc);
bool tls_conn_ktls(const struct tls_conn *tc);
/*
 * The identity the verified client certificate gives, as chosen by which,
 * into buf: its length, or -1 when there is no verified certificate or it
 * has no such name (or a name with a NUL or control byte in it).
 */
int tls_conn_identity(const struct tls_conn *tc, enum tls_identity which,
    char *buf, size_t len);

#endif /* GOPRO_TLS_H */
