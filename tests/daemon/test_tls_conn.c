/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_tls_conn.c - unit tests of tls.c's sessions, without a daemon: a
 * tls_conn on one end of a socketpair and an OpenSSL client on memory BIOs
 * whose bytes the test hands to the socket itself, so that it decides
 * exactly which part of a record the server has seen.
 *
 * What is checked: tls_conn_pending says "come back" for plaintext or whole
 * records OpenSSL holds, and not for the start of a record whose rest has
 * not arrived (conn.c would spin the worker's loop until it did); and a
 * session ticket from one connection resumes the next, again and again
 * (each resumption brings a fresh ticket).  The certificates come from
 * make_certs.sh at test time.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/ssl.h>

#include "conf.h"
#include "tls.h"

static char certs[256];
static struct tls_ctx *server_ctx;
static SSL_CTX *client_ctx;
static SSL_SESSION *last_session;

/* A client that resumes: keep the newest ticket. */
static int
keep_session(SSL *s, SSL_SESSION *sess)
{
	(void)s;
	SSL_SESSION_free(last_session);
	last_session = sess;
	return 1;
}

static int
group_setup(void **state)
{
	char cmd[1024], cert[320], key[320];
	const char *top = getenv("TOP_SRCDIR"), *option = NULL;
	struct conf_tls t;
	char why[512];

	(void)state;
	snprintf(certs, sizeof(certs), "/tmp/gopro-tlsconn-XXXXXX");
	if (mkdtemp(certs) == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), "sh '%s/tests/harness/make_certs.sh' '%s' "
	    ">/dev/null 2>&1", top ? top : "../..", certs);
	if (system(cmd) != 0)
		return -1;
	snprintf(cert, sizeof(cert), "%s/server.pem", certs);
	snprintf(key, sizeof(key), "%s/server.key", certs);
	memset(&t, 0, sizeof(t));
	t.certificate = cert;
	t.key = key;
	t.min_version = TLS1_2_VERSION;
	t.max_version = TLS1_3_VERSION;
	if ((server_ctx = tls_ctx_new(&t, &option, why, sizeof(why))) == NULL) {
		fprintf(stderr, "tls_ctx_new: %s: %s\n", option, why);
		return -1;
	}
	client_ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(client_ctx, keep_session);
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[512];

	(void)state;
	SSL_SESSION_free(last_session);
	SSL_CTX_free(client_ctx);
	tls_ctx_free(server_ctx);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certs);
	return system(cmd) == 0 ? 0 : -1;
}

/* One connection: the server's session on sv[0], the client on memory. */
struct pair {
	int sv[2];
	struct tls_conn *server;
	SSL *client;
	BIO *in, *out;		/* the client's: what it reads, what it wrote */
};

static void
pair_open(struct pair *p)
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    p->sv), 0);
	assert_non_null(p->server = tls_conn_new(server_ctx, p->sv[0]));
	assert_non_null(p->client = SSL_new(client_ctx));
	p->in = BIO_new(BIO_s_mem());
	p->out = BIO_new(BIO_s_mem());
	SSL_set_bio(p->client, p->in, p->out);
	SSL_set_connect_state(p->client);
	if (last_session != NULL)
		SSL_set_session(p->client, last_session);
}

static void
pair_close(struct pair *p)
{
	/* Without close_notify, OpenSSL marks the session not resumable. */
	SSL_shutdown(p->client);
	tls_conn_free(p->server);
	SSL_free(p->client);
	close(p->sv[0]);
	close(p->sv[1]);
}

/* Up to len of the bytes the client wrote go to the server's socket. */
static size_t
client_send(struct pair *p, size_t len)
{
	uint8_t buf[16384];
	int n;

	if (len > sizeof(buf))
		len = sizeof(buf);
	if ((n = BIO_read(p->out, buf, (int)len)) <= 0)
		return 0;
	assert_int_equal(write(p->sv[1], buf, (size_t)n), n);
	return (size_t)n;
}

/* What the server wrote goes to the client. */
static void
client_receive(struct pair *p)
{
	uint8_t buf[16384];
	ssize_t n;

	while ((n = read(p->sv[1], buf, sizeof(buf))) > 0)
		assert_int_equal(BIO_write(p->in, buf, (int)n), n);
}

static void
pair_handshake(struct pair *p)
{
	enum tls_handshake hs = TLS_HS_AGAIN;
	int done = 0;

	for (int i = 0; i < 20 && (hs != TLS_HS_DONE || done != 1); i++) {
		if (done != 1)
			done = SSL_do_handshake(p->client);
		while (client_send(p, SIZE_MAX) > 0)
			;
		if (hs != TLS_HS_DONE)
			hs = tls_conn_handshake(p->server);
		assert_int_not_equal(hs, TLS_HS_FAILED);
		client_receive(p);
	}
	assert_int_equal(hs, TLS_HS_DONE);
	assert_int_equal(done, 1);
	/* The tickets the server sent after the handshake. */
	assert_int_equal(SSL_read(p->client, (char[1]){0}, 1), -1);
}

static void
test_pending_ignores_a_partial_record(void **state)
{
	struct pair p;
	char buf[64];

	(void)state;
	pair_open(&p);
	pair_handshake(&p);
	assert_false(tls_conn_pending(p.server));

	/* One record of 40 bytes, of which the server sees the first 10. */
	assert_int_equal(SSL_write(p.client, "0123456789012345678901234567890"
	    "123456789", 40), 40);
	assert_int_equal(client_send(&p, 10), 10);
	errno = 0;
	assert_int_equal(tls_conn_read(p.server, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_false(tls_conn_wants_write(p.server));
	/* Only the socket can complete it: no reason to come back before. */
	assert_false(tls_conn_pending(p.server));

	/* The rest arrives: read in two parts, the second one held. */
	assert_true(client_send(&p, SIZE_MAX) > 0);
	assert_int_equal(tls_conn_read(p.server, buf, 15), 15);
	assert_true(tls_conn_pending(p.server));
	assert_int_equal(tls_conn_read(p.server, buf, sizeof(buf)), 25);
	assert_false(tls_conn_pending(p.server));
	pair_close(&p);
}

static void
test_tickets_resume_again_and_again(void **state)
{
	struct pair p;

	(void)state;
	SSL_SESSION_free(last_session);
	last_session = NULL;
	for (int i = 0; i < 4; i++) {
		pair_open(&p);
		pair_handshake(&p);
		assert_int_equal(tls_conn_resumed(p.server), i > 0);
		assert_int_equal(SSL_session_reused(p.client), i > 0);
		pair_close(&p);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pending_ignores_a_partial_record),
		cmocka_unit_test(test_tickets_resume_again_and_again),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
