/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tls.c - the SSL_CTX of a configuration and the TLS session of a
 * connection, on OpenSSL 3 (see tls.h for the design).
 *
 * Every session is non-blocking: the socket stays O_NONBLOCK from accept to
 * close, OpenSSL's "want read" and "want write" become EAGAIN, and conn.c
 * waits for the event SSL_want() names.  Renegotiation is off; buffers are
 * released while a connection is idle (SSL_MODE_RELEASE_BUFFERS); writes may
 * be partial and the output block may move between two attempts, as the
 * plain path allows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "log.h"
#include "tls.h"

#define TICKET_SECRET 32
#define SESSION_CONTEXT "goprod"

struct tls_ctx {
	SSL_CTX *ssl;
	time_t expiry;
	uint64_t ticket_rotation;	/* seconds, >= 1 */
	char subject[256];
};

/* The name and keys of one ticket period, derived from the secret. */
struct ticket_keys {
	uint64_t length;	/* seconds; 0: not derived yet */
	uint64_t period;
	uint8_t name[16];
	uint8_t aes[32];
	uint8_t mac[32];
};

/*
 * The ticket secret: drawn by the first tls_ctx_new, which runs in the
 * master before it forks, so every worker inherits the same bytes.  Next
 * to it, the keys of the current and the previous period, derived the
 * first time a process needs them instead of by three or four HMACs per
 * ticket (each worker fills its own copy).  Kept out of core dumps.
 */
static struct ticket_store {
	uint8_t secret[TICKET_SECRET];
	struct ticket_keys keys[2];	/* by the period's parity */
} *tickets;
static EVP_CIPHER *ticket_cipher;	/* fetched once, not per ticket */

/* ------------------------------------------------------------ errors */

/* OpenSSL's last reason on the error queue, and the queue emptied. */
static const char *
ssl_reason(char *buf, size_t len)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		snprintf(buf, len, "%s", errno ? strerror(errno) : "unknown error");
	else
		ERR_error_string_n(last, buf, len);
	return buf;
}

static struct tls_ctx *
fail(struct tls_ctx *c, const char **option, const char *opt, char *why,
    size_t whylen, const char *what, const char *path)
{
	char reason[256];

	*option = opt;
	snprintf(why, whylen, "%s%s%s: %s", what, path ? " " : "",
	    path ? path : "", ssl_reason(reason, sizeof(reason)));
	tls_ctx_free(c);
	return NULL;
}

/* ------------------------------------------------------------ tickets */

static int
ticket_secret_init(void)
{
	void *p;

	if (tickets != NULL)
		return 0;
	if (ticket_cipher == NULL && (ticket_cipher = EVP_CIPHER_fetch(NULL,
	    "AES-256-CBC", NULL)) == NULL)
		return -1;
	p = mmap(NULL, sizeof(*tickets), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	madvise(p, sizeof(*tickets), MADV_DONTDUMP);
	if (RAND_bytes(p, TICKET_SECRET) != 1) {
		munmap(p, sizeof(*tickets));
		return -1;
	}
	tickets = p;
	return 0;
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/*
 * 32 bytes of the key material labelled label for period number period
 * of length seconds: a generation with another tls.ticket_key_rotation
 * derives other keys, never the keys of another period.
 */
static void
ticket_derive(uint64_t length, uint64_t period, const char *label,
    uint8_t out[32])
{
	uint8_t msg[16 + 8 + 8];
	unsigned int len = 32;

	memset(msg, 0, sizeof(msg));
	memcpy(msg, label, strlen(label) < 16 ? strlen(label) : 16);
	put64(msg + 16, length);
	put64(msg + 24, period);
	HMAC(EVP_sha256(), tickets->secret, TICKET_SECRET, msg, sizeof(msg),
	    out, &len);
}

/* The name and keys of period number period of length seconds. */
static const struct ticket_keys *
ticket_keys(uint64_t length, uint64_t period)
{
	struct ticket_keys *k = &tickets->keys[period & 1];
	uint8_t name[32];

	if (k->length == length && k->period == period)
		return k;
	ticket_derive(length, period, "gopro name", name);
	memcpy(k->name, name, sizeof(k->name));
	ticket_derive(length, period, "gopro aes", k->aes);
	ticket_derive(length, period, "gopro mac", k->mac);
	k->length = length;
	k->period = period;
	return k;
}

static int
ticket_mac_init(EVP_MAC_CTX *hctx, const uint8_t mac[32])
{
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	return EVP_MAC_init(hctx, mac, 32, params);
}

/*
 * OpenSSL's ticket callback: enc 1 seals a new ticket with this period's
 * keys; enc 0 finds the keys of the ticket's period by its name (this one
 * or the previous).  A good ticket returns 2, "renew": a TLS 1.3 server
 * sends no new ticket after a resumption otherwise, and clients use a
 * TLS 1.3 ticket once, so every other connection would be a full handshake.
 */
static int
ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv,
    EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
	const struct tls_ctx *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
	uint64_t length = c->ticket_rotation;
	uint64_t now = (uint64_t)time(NULL) / length;
	const struct ticket_keys *k = ticket_keys(length, now);

	if (enc) {
		memcpy(name, k->name, 16);
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(ticket_cipher)) != 1)
			return -1;
		return EVP_EncryptInit_ex(ectx, ticket_cipher, NULL, k->aes,
		    iv) == 1 && ticket_mac_init(hctx, k->mac) == 1 ? 1 : -1;
	}
	if (CRYPTO_memcmp(name, k->name, 16) != 0) {
		k = ticket_keys(length, now - 1);
		if (CRYPTO_memcmp(name, k->name, 16) != 0)
			return 0;	/* unknown or too old: a full handshake */
	}
	return EVP_DecryptInit_ex(ectx, ticket_cipher, NULL, k->aes, iv) == 1 &&
	    ticket_mac_init(hctx, k->mac) == 1 ? 2 : -1;
}

/* ------------------------------------------------------------ context */

static void
note_certificate(struct tls_ctx *c)
{
	X509 *x = SSL_CTX_get0_certificate(c->ssl);
	struct tm tm;

	if (x == NULL)
		return;
	X509_NAME_oneline(X509_get_subject_name(x), c->subject,
	    sizeof(c->subject));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		c->expiry = timegm(&tm);
}

static const char *
expiry_text(time_t t)
{
	static char buf[32];
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL)
		return "at an unknown time";
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

/* Whether the kernel offers the "tls" upper-layer protocol. */
static bool
kernel_has_ktls(void)
{
	char line[256] = "";
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");

	if (f == NULL)
		return false;
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	for (char *w = strtok(line, " \n"); w != NULL; w = strtok(NULL, " \n"))
		if (strcmp(w, "tls") == 0)
			return true;
	return false;
}

static int
load_crl(SSL_CTX *ssl, const char *path)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ssl);
	X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());

	/* The store is this context's own: a reload builds a new one. */
	if (lookup == NULL ||
	    X509_load_crl_file(lookup, path, X509_FILETYPE_PEM) <= 0)
		return -1;
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK |
	    X509_V_FLAG_CRL_CHECK_ALL);
	return 0;
}

/* Never ask for a passphrase on a terminal: an encrypted key is an error. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

/*
 * Load the key and check it against the certificate loaded last.  OpenSSL's
 * own check would look at the key's slot only: an RSA key next to an ECDSA
 * certificate would be reported as "no certificate assigned".  NULL, or
 * what went wrong (OpenSSL's reason is on its error queue).
 */
static const char *
use_key(SSL_CTX *ssl, const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	EVP_PKEY *key = NULL;
	const char *what = NULL;

	if (b == NULL || (key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase,
	    NULL)) == NULL)
		what = "cannot load the private key (PEM, unencrypted)";
	else if (X509_check_private_key(SSL_CTX_get0_certificate(ssl),
	    key) != 1)
		what = "the key does not match the certificate";
	else if (SSL_CTX_use_PrivateKey(ssl, key) != 1)
		what = "cannot use the private key";
	EVP_PKEY_free(key);
	BIO_free(b);
	return what;
}

static int
set_verify(SSL_CTX *ssl, const struct conf_tls *t)
{
	STACK_OF(X509_NAME) *names;
	int mode = SSL_VERIFY_PEER;

	if (t->verify_client == TLS_VERIFY_OFF)
		return 0;
	if (SSL_CTX_load_verify_locations(ssl, t->client_ca, NULL) != 1 ||
	    (names = SSL_load_client_CA_file(t->client_ca)) == NULL)
		return -1;
	SSL_CTX_set_client_CA_list(ssl, names);
	if (t->verify_client == TLS_VERIFY_REQUIRE)
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(ssl, mode, NULL);
	return 0;
}

static void
set_options(SSL_CTX *ssl, const struct conf_tls *t)
{
	uint64_t op = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF;

	if (t->ktls)
		op |= SSL_OP_ENABLE_KTLS;
	SSL_CTX_set_options(ssl, op);
	SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_id_context(ssl, (const unsigned char *)
	    SESSION_CONTEXT, sizeof(SESSION_CONTEXT) - 1);
	/* Stateless tickets only: no session cache to share between workers. */
	SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ssl, ticket_cb);
}

struct tls_ctx *
tls_ctx_new(const struct conf_tls *t, const char **option, char *why,
    size_t whylen)
{
	struct tls_ctx *c;
	const char *what;

	ERR_clear_error();
	errno = 0;
	if ((c = calloc(1, sizeof(*c))) == NULL || ticket_secret_init() < 0 ||
	    (c->ssl = SSL_CTX_new(TLS_server_method())) == NULL)
		return fail(c, option, "listen", why, whylen,
		    "cannot set up TLS", NULL);
	/* For ticket_cb; 0 is a conf_tls made by hand (the fuzzer's). */
	c->ticket_rotation = t->ticket_rotation > 0 ? t->ticket_rotation :
	    12 * 3600;
	SSL_CTX_set_app_data(c->ssl, c);
	set_options(c->ssl, t);
	if (SSL_CTX_set_min_proto_version(c->ssl, t->min_version) != 1 ||
	    SSL_CTX_set_max_proto_version(c->ssl, t->max_version) != 1)
		return fail(c, option, "protocols", why, whylen,
		    "unsupported protocol range", NULL);
	if (t->ciphers != NULL && SSL_CTX_set_cipher_list(c->ssl,
	    t->ciphers) != 1)
		return fail(c, option, "ciphers", why, whylen,
		    "no usable cipher in", t->ciphers);
	if (t->ciphersuites != NULL && SSL_CTX_set_ciphersuites(c->ssl,
	    t->ciphersuites) != 1)
		return fail(c, option, "ciphersuites", why, whylen,
		    "no usable suite in", t->ciphersuites);
	if (SSL_CTX_use_certificate_chain_file(c->ssl, t->certificate) != 1)
		return fail(c, option, "certificate", why, whylen,
		    "cannot load the certificate chain", t->certificate);
	if ((what = use_key(c->ssl, t->key)) != NULL)
		return fail(c, option, "key", why, whylen, what, t->key);
	if (set_verify(c->ssl, t) < 0)
		return fail(c, option, "client_ca", why, whylen,
		    "cannot load the CA certificates", t->client_ca);
	if (t->crl != NULL && load_crl(c->ssl, t->crl) < 0)
		return fail(c, option, "crl", why, whylen,
		    "cannot load the revocation list", t->crl);
	note_certificate(c);
	log_info("TLS certificate %s: %s, expires %s", t->certificate,
	    c->subject, expiry_text(c->expiry));
	if (t->ktls && !kernel_has_ktls())
		log_warnx("tls.ktls = on, but this kernel offers no kTLS "
		    "(no \"tls\" in /proc/sys/net/ipv4/tcp_available_ulp: "
		    "modprobe tls); TLS stays in OpenSSL");
	return c;
}

void
tls_ctx_free(struct tls_ctx *c)
{
	if (c == NULL)
		return;
	SSL_CTX_free(c->ssl);
	free(c);
}

time_t
tls_ctx_expiry(const struct tls_ctx *c)
{
	return c->expiry;
}

const char *
tls_ctx_subject(const struct tls_ctx *c)
{
	return c->subject;
}

/* ------------------------------------------------------------ sessions */

/*
 * Where this process adds the bytes of TLS records (tls_count_wire).  The
 * socket BIO counts what its read(2) and write(2) moved anyway: each
 * operation of a session adds the difference, a few loads per SSL_read or
 * SSL_write.  (A BIO callback would run twice for every BIO_ctrl OpenSSL
 * makes as well: 4% of a worker's instructions under pipelined load.)
 */
static uint64_t *wire;

void
tls_count_wire(uint64_t *counters)
{
	wire = counters;
}

struct wire_mark {
	uint64_t in, out;
};

static void
wire_mark(SSL *s, struct wire_mark *m)
{
	m->in = BIO_number_read(SSL_get_rbio(s));
	m->out = BIO_number_written(SSL_get_wbio(s));
}

static void
wire_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n,
	    __ATOMIC_RELAXED);
}

/* Count what the socket moved since m, in both directions. */
static void
wire_count(SSL *s, const struct wire_mark *m)
{
	if (wire == NULL)
		return;
	wire_add(&wire[0], BIO_number_read(SSL_get_rbio(s)) - m->in);
	wire_add(&wire[1], BIO_number_written(SSL_get_wbio(s)) - m->out);
}

/* The session is the SSL object itself: no allocation of our own. */
struct tls_conn *
tls_conn_new(struct tls_ctx *ctx, int fd)
{
	SSL *s = SSL_new(ctx->ssl);

	if (s == NULL)
		return NULL;
	if (SSL_set_fd(s, fd) != 1) {
		SSL_free(s);
		return NULL;
	}
	SSL_set_accept_state(s);
	return (struct tls_conn *)s;
}

static SSL *
ssl_of(const struct tls_conn *tc)
{
	return (SSL *)(uintptr_t)tc;
}

void
tls_conn_free(struct tls_conn *tc)
{
	SSL_free(ssl_of(tc));
}

enum tls_handshake
tls_conn_handshake(struct tls_conn *tc)
{
	SSL *s = ssl_of(tc);
	struct wire_mark m;
	int rc;

	ERR_clear_error();
	wire_mark(s, &m);
	rc = SSL_do_handshake(s);
	wire_count(s, &m);
	if (rc == 1)
		return TLS_HS_DONE;
	switch (SSL_get_error(s, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return TLS_HS_AGAIN;
	default:
		return TLS_HS_FAILED;
	}
}

enum tls_failure
tls_conn_failure(const struct tls_conn *tc, char *why, size_t whylen)
{
	SSL *s = ssl_of(tc);
	unsigned long e = ERR_peek_last_error();
	long v = SSL_get_verify_result(s);
	int reason = ERR_GET_REASON(e);

	if (e == 0) {
		snprintf(why, whylen, "connection closed during the handshake");
		ERR_clear_error();
		return TLS_FAIL_CLOSED;
	}
	ssl_reason(why, whylen);
	if (v != X509_V_OK) {
		snprintf(why, whylen, "client certificate refused: %s",
		    X509_verify_cert_error_string(v));
		return TLS_FAIL_CERTIFICATE;
	}
	if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE ||
	    reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
		return TLS_FAIL_CERTIFICATE;
	return TLS_FAIL_PROTOCOL;
}

/* An SSL_read or SSL_write result in the manner of read(2). */
static ssize_t
io_result(SSL *s, int rc, size_t done)
{
	if (rc == 1)
		return (ssize_t)done;
	switch (SSL_get_error(s, rc)) {
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 || errno == EAGAIN)
			errno = ECONNRESET;
		ERR_clear_error();
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

ssize_t
tls_conn_read(struct tls_conn *tc, void *p, size_t n)
{
	SSL *s = ssl_of(tc);
	struct wire_mark m;
	size_t got = 0;
	int rc;

	errno = 0;
	wire_mark(s, &m);
	rc = SSL_read_ex(s, p, n, &got);
	wire_count(s, &m);
	return io_result(s, rc, got);
}

/*
 * Partial writes return after each record: keep writing until everything
 * is out or the socket is full, so one call sends what the plain path
 * would send with one write(2).
 */
ssize_t
tls_conn_write(struct tls_conn *tc, const void *p, size_t n)
{
	SSL *s = ssl_of(tc);
	struct wire_mark m;
	size_t done = 0, w;
	ssize_t r = 1;
	int rc;

	wire_mark(s, &m);
	while (done < n && r > 0) {
		errno = 0;
		w = 0;
		rc = SSL_write_ex(s, (const char *)p + done, n - done, &w);
		if ((r = io_result(s, rc, w)) > 0)
			done += (size_t)r;
	}
	wire_count(s, &m);
	return done > 0 || n == 0 ? (ssize_t)done : -1;
}

/*
 * Plaintext or records OpenSSL holds, which no readiness event will
 * report.  After a read that stopped for the socket (SSL_want_read), what
 * it still holds is the start of a record whose rest has not arrived: the
 * socket says when it does, and coming back for it before that would spin
 * the worker's loop for as long as the client keeps the record unfinished.
 */
bool
tls_conn_pending(const struct tls_conn *tc)
{
	SSL *s = ssl_of(tc);

	return SSL_has_pending(s) == 1 && (SSL_pending(s) > 0 ||
	    !SSL_want_read(s));
}

bool
tls_conn_wants_write(const struct tls_conn *tc)
{
	return SSL_want_write(ssl_of(tc));
}

void
tls_conn_shutdown(struct tls_conn *tc)
{
	SSL *s = ssl_of(tc);
	struct wire_mark m;

	ERR_clear_error();
	wire_mark(s, &m);
	if (SSL_is_init_finished(s))
		SSL_shutdown(s);
	wire_count(s, &m);
	ERR_clear_error();
}

bool
tls_conn_resumed(const struct tls_conn *tc)
{
	return SSL_session_reused(ssl_of(tc)) == 1;
}

int
tls_conn_version(const struct tls_conn *tc)
{
	return SSL_version(ssl_of(tc));
}

const char *
tls_conn_version_name(const struct tls_conn *tc)
{
	return SSL_get_version(ssl_of(tc));
}

bool
tls_conn_ktls(const struct tls_conn *tc)
{
	SSL *s = ssl_of(tc);

	return BIO_get_ktls_send(SSL_get_wbio(s)) > 0 ||
	    BIO_get_ktls_recv(SSL_get_rbio(s)) > 0;
}

/* A name fit to be a user name: printable, no NUL inside. */
static int
copy_name(const unsigned char *p, int n, char *buf, size_t len)
{
	if (n <= 0 || (size_t)n >= len)
		return -1;
	for (int i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return -1;
	memcpy(buf, p, (size_t)n);
	buf[n] = '\0';
	return n;
}

static int
san_identity(X509 *x, int type, char *buf, size_t len)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
	    NULL);
	int rc = -1;

	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		if (g->type != type)
			continue;
		rc = copy_name(ASN1_STRING_get0_data(g->d.ia5),
		    ASN1_STRING_length(g->d.ia5), buf, len);
		break;
	}
	GENERAL_NAMES_free(names);
	return rc;
}

static int
cn_identity(X509 *x, char *buf, size_t len)
{
	X509_NAME *subj = X509_get_subject_name(x);
	int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	ASN1_STRING *d;
	unsigned char *utf8 = NULL;
	int n, rc;

	if (i < 0)
		return -1;
	d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
	if ((n = ASN1_STRING_to_UTF8(&utf8, d)) < 0)
		return -1;
	rc = copy_name(utf8, n, buf, len);
	OPENSSL_free(utf8);
	return rc;
}

int
tls_conn_identity(const struct tls_conn *tc, enum tls_identity which,
    char *buf, size_t len)
{
	SSL *s = ssl_of(tc);
	X509 *x = SSL_get0_peer_certificate(s);

	if (x == NULL || SSL_get_verify_result(s) != X509_V_OK)
		return -1;
	switch (which) {
	case TLS_IDENTITY_CN:
		return cn_identity(x, buf, len);
	case TLS_IDENTITY_DNS:
		return san_identity(x, GEN_DNS, buf, len);
	case TLS_IDENTITY_EMAIL:
		return san_identity(x, GEN_EMAIL, buf, len);
	case TLS_IDENTITY_URI:
		return san_identity(x, GEN_URI, buf, len);
	default:
		return -1;
	}
}
