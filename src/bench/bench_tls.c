/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_tls.c - TLS for gopro-bench (--tls): one client SSL_CTX per
 * thread, non-blocking handshakes driven by the thread's loop, and the
 * newest session the server sent kept for the next connection, so that
 * --reconnect-every measures resumed handshakes (--no-resume: full ones).
 * The server certificate is not verified: this is a load generator.
 */
#include <errno.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"

struct bench_tls {
	SSL_CTX *ctx;
	SSL_SESSION *last;
	bool resume;
};

/*
 * SSL_VERIFY_NONE still builds and checks the server's chain, then ignores
 * the result; a load generator that trusts any certificate skips the work
 * (X509_verify_cert was 3% of the client's full handshake).
 */
static int
accept_any_chain(X509_STORE_CTX *x, void *arg)
{
	(void)x;
	(void)arg;
	return 1;
}

static int
new_session_cb(SSL *s, SSL_SESSION *sess)
{
	struct bench_tls *bt = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));

	if (!bt->resume || sess == bt->last)
		return 0;
	SSL_SESSION_free(bt->last);
	bt->last = sess;
	return 1;
}

struct bench_tls *
bench_tls_new(bool resume)
{
	struct bench_tls *bt = calloc(1, sizeof(*bt));

	if (bt == NULL || (bt->ctx = SSL_CTX_new(TLS_client_method())) ==
	    NULL) {
		free(bt);
		return NULL;
	}
	bt->resume = resume;
	SSL_CTX_set_app_data(bt->ctx, bt);
	SSL_CTX_set_verify(bt->ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_cert_verify_callback(bt->ctx, accept_any_chain, NULL);
	SSL_CTX_set_mode(bt->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(bt->ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(bt->ctx, new_session_cb);
	return bt;
}

void
bench_tls_free(struct bench_tls *bt)
{
	if (bt == NULL)
		return;
	SSL_SESSION_free(bt->last);
	SSL_CTX_free(bt->ctx);
	free(bt);
}

struct ssl_st *
bench_tls_conn(struct bench_tls *bt, int fd)
{
	SSL *s = SSL_new(bt->ctx);

	if (s == NULL)
		return NULL;
	if (SSL_set_fd(s, fd) != 1) {
		SSL_free(s);
		return NULL;
	}
	SSL_set_connect_state(s);
	if (bt->resume && bt->last != NULL)
		SSL_set_session(s, bt->last);
	return s;
}

int
bench_tls_handshake(struct ssl_st *s, bool *want_write)
{
	int rc;

	ERR_clear_error();
	if ((rc = SSL_do_handshake(s)) == 1)
		return 1;
	switch (SSL_get_error(s, rc)) {
	case SSL_ERROR_WANT_READ:
		*want_write = false;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*want_write = true;
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

bool
bench_tls_resumed(const struct ssl_st *s)
{
	return SSL_session_reused((SSL *)(uintptr_t)s) == 1;
}

/* An SSL_read_ex or SSL_write_ex result in the manner of read(2). */
static ssize_t
io_result(SSL *s, int rc, size_t n)
{
	if (rc == 1)
		return (ssize_t)n;
	switch (SSL_get_error(s, rc)) {
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	default:
		ERR_clear_error();
		if (errno == 0 || errno == EAGAIN)
			errno = EPROTO;
		return -1;
	}
}

ssize_t
bench_tls_read(struct ssl_st *s, void *p, size_t len)
{
	size_t n = 0;
	int rc;

	errno = 0;
	rc = SSL_read_ex(s, p, len, &n);
	return io_result(s, rc, n);
}

ssize_t
bench_tls_write(struct ssl_st *s, const void *p, size_t len)
{
	size_t done = 0, n;
	ssize_t r;
	int rc;

	/* Partial writes stop after each record: write all that fits. */
	while (done < len) {
		errno = 0;
		n = 0;
		rc = SSL_write_ex(s, (const char *)p + done, len - done, &n);
		if ((r = io_result(s, rc, n)) <= 0)
			return done > 0 ? (ssize_t)done : r;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

bool
bench_tls_pending(const struct ssl_st *s)
{
	return SSL_has_pending(s) == 1;
}

void
bench_tls_close(struct ssl_st *s)
{
	if (s == NULL)
		return;
	if (SSL_is_init_finished(s))
		SSL_shutdown(s);
	ERR_clear_error();
	SSL_free(s);
}
