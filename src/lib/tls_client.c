/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tls_client.c - libgopro-tls, the client side of TLS (see
 * gopro/tls_client.h), on OpenSSL 3.  It is built into libgopro-tls.so.1,
 * which links libgopro.so.1 for the connection itself and OpenSSL for the
 * rest; iowait.c is linked into both libraries, hidden in each.  The socket stays non-blocking: every OpenSSL call that wants
 * to read or write waits for that with poll() against the call's deadline,
 * so a silent server delays a caller by the timeout at most.
 *
 * gopro_tls_transport is the same TLS for the asynchronous client: the
 * handshake, reads and writes never wait, they say what they wait for and
 * the client's event loop calls again (struct gopro_transport).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "gopro/async.h"
#include "gopro/client.h"
#include "gopro/gopro.h"
#include "gopro/tls_client.h"
#include "iowait.h"

struct gopro_tls_ctx {
	SSL_CTX *ssl;
	SSL_SESSION *last;	/* the newest session the server sent */
	char *servername;
	bool resume;
};

struct gopro_tls {
	SSL *ssl;
	int fd;                 /* -1 under the async client, which owns it */
};

static const char *
reason(char *buf, size_t len)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		snprintf(buf, len, "%s", errno ? strerror(errno) :
		    "connection closed");
	else
		ERR_error_string_n(last, buf, len);
	return buf;
}

/*
 * SSL_VERIFY_NONE still builds and checks the server's chain, then ignores
 * the result; with no_verify nothing is checked, so nothing is built
 * (X509_verify_cert was 3% of gopro-bench's full handshake).
 */
static int
accept_any_chain(X509_STORE_CTX *x, void *arg)
{
	(void)x;
	(void)arg;
	return 1;
}

/* Keep the newest session for the next connection of this context. */
static int
new_session_cb(SSL *s, SSL_SESSION *sess)
{
	struct gopro_tls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));

	if (!ctx->resume || sess == ctx->last)
		return 0;
	SSL_SESSION_free(ctx->last);
	ctx->last = sess;
	return 1;	/* we keep the reference */
}

static int
ctx_load(struct gopro_tls_ctx *ctx, const struct gopro_tls_options *o,
    char *err, size_t errlen)
{
	char why[256];
	const char *file = NULL;

	if (o->ca_file != NULL ? SSL_CTX_load_verify_locations(ctx->ssl,
	    o->ca_file, NULL) != 1 : SSL_CTX_set_default_verify_paths(
	    ctx->ssl) != 1)
		file = o->ca_file != NULL ? o->ca_file : "the system's CAs";
	else if (o->cert_file != NULL && (SSL_CTX_use_certificate_chain_file(
	    ctx->ssl, o->cert_file) != 1))
		file = o->cert_file;
	else if (o->cert_file != NULL && (SSL_CTX_use_PrivateKey_file(ctx->ssl,
	    o->key_file ? o->key_file : o->cert_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx->ssl) != 1))
		file = o->key_file ? o->key_file : o->cert_file;
	if (file == NULL)
		return 0;
	snprintf(err, errlen, "%s: %s", file, reason(why, sizeof(why)));
	return -1;
}

/* What the first version of the options holds: the least a caller has. */
#define OPTIONS_V1_SIZE (offsetof(struct gopro_tls_options, no_resume) + \
	sizeof(bool))

void
gopro_tls_options_init(struct gopro_tls_options *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
}

/*
 * The caller's options as this version of the library knows them: fields
 * a program built against an older header lacks keep their defaults.
 */
static int
options_copy(struct gopro_tls_options *dst,
    const struct gopro_tls_options *o, char *err, size_t errlen)
{
	gopro_tls_options_init(dst);
	if (o == NULL || o->size < OPTIONS_V1_SIZE) {
		snprintf(err, errlen, "TLS options not set up with "
		    "gopro_tls_options_init (size %zu)", o ? o->size : 0);
		return -1;
	}
	memcpy(dst, o, o->size < sizeof(*dst) ? o->size : sizeof(*dst));
	dst->size = sizeof(*dst);
	return 0;
}

struct gopro_tls_ctx *
gopro_tls_ctx_new(const struct gopro_tls_options *opts, char *err,
    size_t errlen)
{
	struct gopro_tls_options copy, *o = &copy;
	struct gopro_tls_ctx *ctx;
	char why[256];

	if (options_copy(&copy, opts, err, errlen) < 0)
		return NULL;
	ctx = calloc(1, sizeof(*ctx));
	ERR_clear_error();
	errno = 0;
	if (ctx == NULL || (ctx->ssl = SSL_CTX_new(TLS_client_method())) ==
	    NULL || (o->servername != NULL &&
	    (ctx->servername = strdup(o->servername)) == NULL)) {
		snprintf(err, errlen, "cannot set up TLS: %s",
		    reason(why, sizeof(why)));
		gopro_tls_ctx_free(ctx);
		return NULL;
	}
	ctx->resume = !o->no_resume;
	SSL_CTX_set_app_data(ctx->ssl, ctx);
	SSL_CTX_set_min_proto_version(ctx->ssl, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx->ssl, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx->ssl, new_session_cb);
	SSL_CTX_set_verify(ctx->ssl, o->no_verify ? SSL_VERIFY_NONE :
	    SSL_VERIFY_PEER, NULL);
	if (o->no_verify)
		SSL_CTX_set_cert_verify_callback(ctx->ssl, accept_any_chain,
		    NULL);
	if (ctx_load(ctx, o, err, errlen) < 0) {
		gopro_tls_ctx_free(ctx);
		return NULL;
	}
	return ctx;
}

void
gopro_tls_ctx_free(struct gopro_tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_SESSION_free(ctx->last);
	SSL_CTX_free(ctx->ssl);
	free(ctx->servername);
	free(ctx);
}

/*
 * After an OpenSSL call returned rc: GOPRO_OK to call it again (it waited
 * for what it wanted), or the result to give up with.
 */
static int
ssl_wait(struct gopro_tls *t, int rc, double deadline)
{
	int w;

	switch (SSL_get_error(t->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		w = iowait_fd(t->fd, POLLIN, deadline);
		break;
	case SSL_ERROR_WANT_WRITE:
		w = iowait_fd(t->fd, POLLOUT, deadline);
		break;
	case SSL_ERROR_ZERO_RETURN:
		return GOPRO_E_CLOSED;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == 0 || errno == ECONNRESET || errno == EPIPE)
			return GOPRO_E_CLOSED;
		return GOPRO_E_SYSTEM;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return GOPRO_E_SYSTEM;
	}
	return w > 0 ? GOPRO_OK : w == 0 ? GOPRO_E_TIMEOUT : GOPRO_E_SYSTEM;
}

/*
 * The name the certificate must carry (SSL_set1_host checks an IP address
 * literal against the IP SANs), also sent as SNI unless it is an address,
 * which SNI cannot carry.
 */
static int
set_names(struct gopro_tls_ctx *ctx, SSL *s)
{
	struct in6_addr a;

	if (ctx->servername == NULL)
		return 0;
	if (SSL_set1_host(s, ctx->servername) != 1)
		return -1;
	if (inet_pton(AF_INET, ctx->servername, &a) == 1 ||
	    inet_pton(AF_INET6, ctx->servername, &a) == 1)
		return 0;
	return SSL_set_tlsext_host_name(s, ctx->servername) == 1 ? 0 : -1;
}

/*
 * OpenSSL's socket BIO writes with write(2): a server that closes during
 * the handshake or a reply would kill the caller with SIGPIPE, which the
 * plain client (MSG_NOSIGNAL) promises never to do.  This BIO is the socket
 * BIO with send(MSG_NOSIGNAL) for its writes.
 */
static int
nosignal_write(BIO *b, const char *p, int len)
{
	int fd = -1;
	ssize_t n;

	BIO_get_fd(b, &fd);
	errno = 0;
	n = send(fd, p, (size_t)len, MSG_NOSIGNAL);
	BIO_clear_retry_flags(b);
	if (n <= 0 && BIO_sock_should_retry((int)n))
		BIO_set_retry_write(b);
	return (int)n;
}

static BIO_METHOD *nosignal_method;

static void
nosignal_method_init(void)
{
	const BIO_METHOD *sock = BIO_s_socket();
	BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOCKET, "socket, MSG_NOSIGNAL");

	if (m == NULL || BIO_meth_set_write(m, nosignal_write) != 1 ||
	    BIO_meth_set_read(m, BIO_meth_get_read(sock)) != 1 ||
	    BIO_meth_set_puts(m, BIO_meth_get_puts(sock)) != 1 ||
	    BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock)) != 1 ||
	    BIO_meth_set_create(m, BIO_meth_get_create(sock)) != 1 ||
	    BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock)) != 1) {
		BIO_meth_free(m);
		m = NULL;
	}
	nosignal_method = m;
}

/* SSL_set_fd with the BIO above. */
static int
set_socket(SSL *s, int fd)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	BIO *b;

	pthread_once(&once, nosignal_method_init);
	if (nosignal_method == NULL || (b = BIO_new(nosignal_method)) == NULL)
		return -1;
	BIO_set_fd(b, fd, BIO_NOCLOSE);
	SSL_set_bio(s, b, b);
	return 0;
}

static struct gopro_tls *
start_failed(struct gopro_tls *t, const char *what, char *err, size_t len)
{
	char why[256];

	snprintf(err, len, "TLS handshake: %s", what != NULL ? what :
	    reason(why, sizeof(why)));
	gopro_tls_close(t);
	return NULL;
}

struct gopro_tls *
gopro_tls_start(struct gopro_tls_ctx *ctx, int fd, double timeout,
    char *err, size_t errlen)
{
	double deadline = iowait_now() + timeout;
	struct gopro_tls *t = calloc(1, sizeof(*t));
	long verify;
	int rc;

	ERR_clear_error();
	if (t == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->fd = fd;
	if ((t->ssl = SSL_new(ctx->ssl)) == NULL || set_socket(t->ssl,
	    fd) < 0 || set_names(ctx, t->ssl) < 0)
		return start_failed(t, NULL, err, errlen);
	if (ctx->resume && ctx->last != NULL)
		SSL_set_session(t->ssl, ctx->last);
	while ((rc = SSL_connect(t->ssl)) != 1) {
		errno = 0;
		verify = SSL_get_verify_result(t->ssl);
		if (verify != X509_V_OK)
			return start_failed(t, X509_verify_cert_error_string(
			    verify), err, errlen);
		if ((rc = ssl_wait(t, rc, deadline)) != GOPRO_OK)
			return start_failed(t, rc == GOPRO_E_TIMEOUT ?
			    "timed out" : rc == GOPRO_E_CLOSED ?
			    "connection closed by the server" : NULL, err,
			    errlen);
	}
	return t;
}

/*
 * The blocking client's connect (resolution, each address in turn, one
 * deadline) makes the socket; the TLS connection takes a copy of it.
 */
struct gopro_tls *
gopro_tls_connect(struct gopro_tls_ctx *ctx, const char *address,
    double timeout, char *err, size_t errlen)
{
	double deadline = iowait_now() + timeout;
	struct gopro_client *c = gopro_client_new();
	int fd = -1;

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (gopro_client_connect(c, address, timeout) != GOPRO_OK)
		snprintf(err, errlen, "%s", gopro_client_error(c));
	else if ((fd = fcntl(gopro_client_fd(c), F_DUPFD_CLOEXEC, 0)) < 0)
		snprintf(err, errlen, "%s: %s", address, strerror(errno));
	gopro_client_free(c);
	if (fd < 0)
		return NULL;
	return gopro_tls_start(ctx, fd, deadline - iowait_now(), err, errlen);
}

bool
gopro_tls_resumed(const struct gopro_tls *t)
{
	return SSL_session_reused(t->ssl) == 1;
}

const char *
gopro_tls_version(const struct gopro_tls *t)
{
	return SSL_get_version(t->ssl);
}

int
gopro_tls_write(struct gopro_tls *t, const void *p, size_t len,
    double timeout)
{
	double deadline = iowait_now() + timeout;
	size_t done = 0, n;
	int rc;

	while (done < len) {
		errno = 0;
		if (SSL_write_ex(t->ssl, (const uint8_t *)p + done, len - done,
		    &n) == 1) {
			done += n;
			continue;
		}
		if ((rc = ssl_wait(t, 0, deadline)) != GOPRO_OK)
			return rc;
	}
	return GOPRO_OK;
}

/* Read exactly len bytes: OpenSSL keeps what follows for the next call. */
static int
read_exact(struct gopro_tls *t, uint8_t *p, size_t len, double deadline)
{
	size_t n;
	int rc;

	while (len > 0) {
		errno = 0;
		if (SSL_read_ex(t->ssl, p, len, &n) == 1) {
			p += n;
			len -= n;
			continue;
		}
		if ((rc = ssl_wait(t, 0, deadline)) != GOPRO_OK)
			return rc;
	}
	return GOPRO_OK;
}

int
gopro_tls_send_frame(struct gopro_tls *t, uint8_t command,
    const void *body, size_t len, double timeout)
{
	uint8_t hdr[GOPRO_HEADER_SIZE];
	double deadline = iowait_now() + timeout;
	int rc;

	if (len > UINT32_MAX) {
		errno = EMSGSIZE;
		return GOPRO_E_SYSTEM;
	}
	gopro_header_write(hdr, command, (uint32_t)len);
	rc = gopro_tls_write(t, hdr, sizeof(hdr), timeout);
	if (rc == GOPRO_OK && len > 0)
		rc = gopro_tls_write(t, body, len, deadline - iowait_now());
	return rc;
}

int
gopro_tls_read_frame(struct gopro_tls *t, uint8_t *buf, size_t cap,
    struct gopro_frame *frame, double timeout)
{
	double deadline = iowait_now() + timeout;
	size_t need;
	enum gopro_decode_status st;
	int rc;

	if (cap < GOPRO_HEADER_SIZE)
		return GOPRO_E_TOO_LARGE;
	if ((rc = read_exact(t, buf, GOPRO_HEADER_SIZE, deadline)) != GOPRO_OK)
		return rc;
	st = gopro_decode(buf, GOPRO_HEADER_SIZE, cap - GOPRO_HEADER_SIZE >
	    UINT32_MAX ? UINT32_MAX : (uint32_t)(cap - GOPRO_HEADER_SIZE),
	    frame, &need);
	if (st == GOPRO_DECODE_NEED_MORE) {
		if ((rc = read_exact(t, buf + GOPRO_HEADER_SIZE, need,
		    deadline)) != GOPRO_OK)
			return rc;
		st = gopro_decode(buf, GOPRO_HEADER_SIZE + need, UINT32_MAX,
		    frame, &need);
	}
	return st == GOPRO_DECODE_FRAME ? GOPRO_OK :
	    st == GOPRO_DECODE_TOO_LARGE ? GOPRO_E_TOO_LARGE : GOPRO_E_PROTOCOL;
}

int
gopro_tls_login(struct gopro_tls *t, const char *user,
    const char *password, uint8_t *buf, size_t cap,
    struct gopro_frame *frame, double timeout)
{
	uint8_t out[GOPRO_HEADER_SIZE + GOPRO_LOGIN_BODY_MAX];
	size_t n;
	int rc;

	n = gopro_login_write(out, sizeof(out), user, strlen(user), password,
	    strlen(password));
	if (n == 0) {
		errno = EINVAL;
		return GOPRO_E_SYSTEM;
	}
	rc = gopro_tls_write(t, out, n, timeout);
	explicit_bzero(out, sizeof(out));
	if (rc != GOPRO_OK)
		return rc;
	return gopro_tls_read_frame(t, buf, cap, frame, timeout);
}

void
gopro_tls_close(struct gopro_tls *t)
{
	if (t == NULL)
		return;
	if (t->ssl != NULL) {
		if (SSL_is_init_finished(t->ssl))
			SSL_shutdown(t->ssl);
		SSL_free(t->ssl);
	}
	ERR_clear_error();
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

/*
 * After a non-blocking step failed with rc: -1 with errno EAGAIN and *want
 * set, 0 for a closed connection, or -1 with errno for anything else.
 */
static ssize_t
step_failed(struct gopro_tls *t, int rc, short *want)
{
	switch (SSL_get_error(t->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		*want = POLLIN;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		*want = POLLOUT;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == 0 || errno == ECONNRESET)
			return 0;
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

ssize_t
gopro_tls_read_some(struct gopro_tls *t, void *buf, size_t cap,
    short *want)
{
	size_t n;

	errno = 0;
	if (SSL_read_ex(t->ssl, buf, cap, &n) == 1)
		return (ssize_t)n;
	return step_failed(t, 0, want);
}

ssize_t
gopro_tls_write_some(struct gopro_tls *t, const void *buf, size_t len,
    short *want)
{
	size_t n;

	errno = 0;
	if (SSL_write_ex(t->ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	/* A write to a closed connection is an error, not end of input. */
	if (step_failed(t, 0, want) == 0 && errno == 0)
		errno = EPIPE;
	return -1;
}

int
gopro_tls_fd(const struct gopro_tls *t)
{
	return t->fd;
}

void
gopro_tls_shutdown_write(struct gopro_tls *t)
{
	if (SSL_is_init_finished(t->ssl))
		SSL_shutdown(t->ssl);
	ERR_clear_error();
	shutdown(t->fd, SHUT_WR);
}

void
gopro_tls_abort(struct gopro_tls *t)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	if (t == NULL)
		return;
	setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	SSL_free(t->ssl);
	t->ssl = NULL;
	gopro_tls_close(t);
}

/* ------------------------------------------------------------ transport */

static void *
tr_open(void *arg, int fd)
{
	struct gopro_tls_ctx *ctx = arg;
	struct gopro_tls *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->fd = -1;
	ERR_clear_error();
	if ((t->ssl = SSL_new(ctx->ssl)) == NULL || set_socket(t->ssl,
	    fd) < 0 || set_names(ctx, t->ssl) < 0) {
		gopro_tls_close(t);
		return NULL;
	}
	if (ctx->resume && ctx->last != NULL)
		SSL_set_session(t->ssl, ctx->last);
	SSL_set_connect_state(t->ssl);
	return t;
}

static int
tr_handshake(void *p, int *events, char *err, size_t errlen)
{
	struct gopro_tls *t = p;
	long verify;
	int rc;

	ERR_clear_error();
	errno = 0;
	if ((rc = SSL_do_handshake(t->ssl)) == 1)
		return 1;
	switch (SSL_get_error(t->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		*events = GOPRO_EV_READ;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*events = GOPRO_EV_WRITE;
		return 0;
	default:
		verify = SSL_get_verify_result(t->ssl);
		if (verify != X509_V_OK)
			snprintf(err, errlen, "%s",
			    X509_verify_cert_error_string(verify));
		else
			reason(err, errlen);
		ERR_clear_error();
		return -1;
	}
}

static ssize_t
tr_read(void *p, void *buf, size_t len)
{
	short want;

	/* SSL_get_error needs an empty queue before the call. */
	ERR_clear_error();
	return gopro_tls_read_some(p, buf, len, &want);
}

static ssize_t
tr_write(void *p, const void *buf, size_t len)
{
	size_t done = 0;
	ssize_t r;
	short want;

	/* Partial writes stop after each record: write all that fits. */
	ERR_clear_error();
	while (done < len) {
		r = gopro_tls_write_some(p, (const uint8_t *)buf + done,
		    len - done, &want);
		if (r <= 0)
			return done > 0 ? (ssize_t)done : r;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static int
tr_pending(void *p)
{
	return SSL_has_pending(((struct gopro_tls *)p)->ssl);
}

static void
tr_close(void *p)
{
	gopro_tls_close(p);
}

const struct gopro_transport *
gopro_tls_transport(void)
{
	static const struct gopro_transport tr = {
		sizeof(struct gopro_transport), tr_open, tr_handshake,
		tr_read, tr_write, tr_pending, tr_close,
	};

	return &tr;
}
