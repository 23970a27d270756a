/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_tls.c - a real goprod with a TLS listener next to a plain one,
 * driven by libgopro-tls (the client goproctl uses), by openssl s_client
 * and by Python's ssl module.  The certificates are made at test time by
 * make_certs.sh (a CA, ECDSA and RSA server certificates, client
 * certificates good, expired, revoked and from another CA): no key is
 * committed.
 *
 * What is checked: the wire contract over TLS (frames, errors, GOAWAY on
 * drain followed by close_notify, backpressure with a client that stops
 * reading), session resumption across workers and across a reload, ticket
 * keys that rotate (tls.ticket_key_rotation) and that every generation
 * shares, TLS 1.2 renegotiation refused and a TLS 1.3 KeyUpdate served, the
 * bytes before and after encryption in the statistics, mutual
 * TLS (require refuses each bad client during the handshake, identity =
 * cn logs a device in without a password), the PROXY header before the
 * handshake, hostile clients (plain GoPro bytes and garbage on the TLS
 * port, a ClientHello dribbled a byte at a time cut by handshake_timeout
 * while others are served, many half-open handshakes), and configuration
 * errors naming file:line:option with OpenSSL's reason, on goprod -t and on
 * a reload that keeps the old generation serving.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gopro/tls_client.h"
#include "harness.h"

static char certs[256];	/* made once by the group setup */
/* The server's certificate and key in the next configuration written. */
static const char *server_cert = "server.pem", *server_key = "server.key";

struct tlsd {
	struct goprod g;
	int tport;		/* the TLS listener; g.port is plain */
	char taddr[64];
};

static const char *
cert(const char *name)
{
	static char path[8][320];
	static unsigned next;
	char *p = path[next++ % 8];

	snprintf(p, sizeof(path[0]), "%s/%s", certs, name);
	return p;
}

static int
group_setup(void **state)
{
	char cmd[1024], out[4096];
	const char *top = getenv("TOP_SRCDIR");

	snprintf(certs, sizeof(certs), "/tmp/gopro-certs-XXXXXX");
	if (mkdtemp(certs) == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), "sh '%s/tests/harness/make_certs.sh' '%s'",
	    top ? top : "../..", certs);
	if (harness_run(cmd, out, sizeof(out)) != 0) {
		fprintf(stderr, "make_certs.sh failed: %s\n", out);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[512], out[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certs);
	harness_run(cmd, out, sizeof(out));
	return 0;
}

/* The tls section for the TLS port, with extra lines inside it. */
static void
tls_conf(char *buf, size_t len, int port, int tport, const char *tls_extra,
    const char *extra)
{
	snprintf(buf, len,
	    "listen = {\"127.0.0.1:%d\", \"127.0.0.1:%d\"}\n"
	    "log_level = debug\n%s\n"
	    "tls {\n"
	    "\tlisten = {\"127.0.0.1:%d\"}\n"
	    "\tcertificate = \"%s\"\n"
	    "\tkey = \"%s\"\n"
	    "%s\n}\n",
	    port, tport, extra ? extra : "", tport, cert(server_cert),
	    cert(server_key), tls_extra ? tls_extra : "");
}

/* A free port for d's TLS listener, other than the plain port. */
static void
pick_tport(struct tlsd *d, int port)
{
	do
		d->tport = harness_free_port();
	while (d->tport == port);
	snprintf(d->taddr, sizeof(d->taddr), "127.0.0.1:%d", d->tport);
}

/* proxy: the TLS listener is also a PROXY listener (from 127.0.0.1). */
static void
start_tls_proxy(struct tlsd *d, const char *tls_extra, const char *extra,
    bool proxy)
{
	char conf[4096], more[1024];
	int port = harness_free_port();

	pick_tport(d, port);
	snprintf(more, sizeof(more), "%s\n%s", extra ? extra : "", !proxy ?
	    "" : "proxy_protocol_from = {\"127.0.0.1\"}\n");
	if (proxy)
		snprintf(more + strlen(more), sizeof(more) - strlen(more),
		    "proxy_protocol = {\"%s\"}\n", d->taddr);
	tls_conf(conf, sizeof(conf), port, d->tport, tls_extra, more);
	harness_start_port(&d->g, port, conf);
}

static void
start_tls(struct tlsd *d, const char *tls_extra, const char *extra)
{
	start_tls_proxy(d, tls_extra, extra, false);
}

static void
restart_conf(struct tlsd *d, const char *tls_extra, const char *extra)
{
	char conf[4096];

	tls_conf(conf, sizeof(conf), d->g.port, d->tport, tls_extra, extra);
	harness_rewrite_conf(&d->g, conf);
}

/*
 * The counter once it reaches want (or what it is after 10 s): the client
 * may see the server's alert before the worker counts the failure.
 */
static uint64_t
counter_reaches(const struct goprod *g, enum stats_counter which,
    uint64_t want)
{
	double t0 = harness_now();
	uint64_t v;

	while ((v = harness_counter(g, which)) < want &&
	    harness_now() - t0 < 10)
		harness_sleep(0.02);
	return v;
}

static struct gopro_tls_ctx *
ctx_with(const char *cert_name, const char *key_name)
{
	struct gopro_tls_options o;
	char err[512];
	struct gopro_tls_ctx *ctx;

	gopro_tls_options_init(&o);
	o.ca_file = cert("ca.pem");
	o.servername = "localhost";
	o.cert_file = cert_name ? cert(cert_name) : NULL;
	o.key_file = key_name ? cert(key_name) : NULL;
	if ((ctx = gopro_tls_ctx_new(&o, err, sizeof(err))) == NULL)
		fail_msg("gopro_tls_ctx_new: %s", err);
	return ctx;
}

/* A TCP connection to port on 127.0.0.1, non-blocking. */
static int
tcp_connect(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		fail_msg("connect to port %d: %s", port, strerror(errno));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* A TLS connection to d, or NULL when the handshake fails. */
static struct gopro_tls *
try_tls(const struct tlsd *d, struct gopro_tls_ctx *ctx, char *err,
    size_t errlen)
{
	return gopro_tls_connect(ctx, d->taddr, 5, err, errlen);
}

static struct gopro_tls *
connect_tls(const struct tlsd *d, struct gopro_tls_ctx *ctx)
{
	char err[512];
	struct gopro_tls *t = try_tls(d, ctx, err, sizeof(err));

	if (t == NULL) {
		harness_dump_log(&d->g);
		fail_msg("%s", err);
	}
	return t;
}

/* Send a frame and return the command of the answer (-1: none). */
static int
round_trip(struct gopro_tls *t, uint8_t cmd, const char *body,
    struct gopro_frame *f, uint8_t *buf, size_t cap)
{
	if (gopro_tls_send_frame(t, cmd, body, strlen(body), 5) != GOPRO_OK)
		return -1;
	if (gopro_tls_read_frame(t, buf, cap, f, 5) != GOPRO_OK)
		return -1;
	return f->header.command;
}

static void
expect_echo(struct gopro_tls *t, const char *body)
{
	uint8_t buf[1024];
	struct gopro_frame f;

	assert_int_equal(round_trip(t, GOPRO_CMD_HEARTBEAT, body, &f, buf,
	    sizeof(buf)), GOPRO_CMD_HEARTBEAT);
	assert_int_equal(f.header.length, strlen(body));
	assert_memory_equal(f.body, body, strlen(body));
}

static uint16_t
error_code(const struct gopro_frame *f)
{
	return (uint16_t)(f->body[0] << 8 | f->body[1]);
}

/*
 * goproctl CMD --tls against d, with the certificate NAME.pem/.key when
 * name is set; send sends "hi".  Its exit status.
 */
static int
goproctl_tls(const struct tlsd *d, const char *cmd, const char *name)
{
	char line[2048], certs_arg[700] = "", out[4096];
	int rc;

	if (name != NULL)
		snprintf(certs_arg, sizeof(certs_arg), "--cert %s/%s.pem "
		    "--key %s/%s.key", certs, name, certs, name);
	snprintf(line, sizeof(line), "'%s' %s --tls --ca '%s' %s %s%s",
	    harness_program("GOPROCTL"), cmd, cert("ca.pem"), certs_arg,
	    d->taddr, strcmp(cmd, "send") == 0 ? " hi" : "");
	rc = harness_run(line, out, sizeof(out));
	print_message("%s: exit %d: %s", cmd, rc, out);
	return rc;
}

/* ------------------------------------------------------------ wire */

/* Frames over TLS, next to a plain listener that is unchanged. */
static void
test_tls_serves_frames(void **state)
{
	struct gopro_tls_ctx *ctx;
	struct gopro_tls *t;
	struct tlsd d;
	uint8_t buf[1024];
	struct gopro_frame f;

	start_tls(&d, NULL, NULL);
	ctx = ctx_with(NULL, NULL);
	t = connect_tls(&d, ctx);
	assert_string_equal(gopro_tls_version(t), "TLSv1.3");
	expect_echo(t, "over tls");
	assert_int_equal(round_trip(t, GOPRO_CMD_MESSAGE, "hello", &f, buf,
	    sizeof(buf)), GOPRO_CMD_MESSAGE);
	assert_memory_equal(f.body, "Server says: hello", 18);
	/* Unknown command: ERROR 4, the connection stays. */
	assert_int_equal(round_trip(t, 0x7e, "", &f, buf, sizeof(buf)),
	    GOPRO_CMD_ERROR);
	assert_int_equal(error_code(&f), GOPRO_ERR_UNKNOWN_COMMAND);
	expect_echo(t, "still here");
	/* Bad magic inside TLS: ERROR 1, then the close. */
	assert_int_equal(gopro_tls_write(t, "XXXXXXXX", 8, 5), GOPRO_OK);
	assert_int_equal(gopro_tls_read_frame(t, buf, sizeof(buf), &f, 5),
	    GOPRO_OK);
	assert_int_equal(error_code(&f), GOPRO_ERR_BAD_MAGIC);
	assert_int_equal(gopro_tls_read_frame(t, buf, sizeof(buf), &f, 5),
	    GOPRO_E_CLOSED);
	gopro_tls_close(t);
	assert_true(harness_answers(&d.g));
	assert_int_equal(harness_counter(&d.g, STATS_tls_handshakes_full), 1);
	assert_int_equal(harness_counter(&d.g, STATS_tls_version_1_3), 1);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* Frame too large, and many pipelined frames in one TLS write. */
static void
test_tls_limits_and_pipelining(void **state)
{
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	uint8_t out[64 * 16], buf[256];
	struct gopro_tls *t;
	struct gopro_frame f;
	struct tlsd d;
	size_t n = 0;

	start_tls(&d, NULL, "max_body = 1k\n");
	t = connect_tls(&d, ctx);
	for (int i = 0; i < 64; i++)
		n += gopro_frame_write(out + n, sizeof(out) - n,
		    GOPRO_CMD_HEARTBEAT, "12345678", 8);
	assert_int_equal(gopro_tls_write(t, out, n, 5), GOPRO_OK);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(gopro_tls_read_frame(t, buf, sizeof(buf), &f,
		    5), GOPRO_OK);
		assert_memory_equal(f.body, "12345678", 8);
	}
	gopro_header_write(out, GOPRO_CMD_MESSAGE, 4096);
	assert_int_equal(gopro_tls_write(t, out, GOPRO_HEADER_SIZE, 5),
	    GOPRO_OK);
	assert_int_equal(gopro_tls_read_frame(t, buf, sizeof(buf), &f, 5),
	    GOPRO_OK);
	assert_int_equal(error_code(&f), GOPRO_ERR_TOO_LARGE);
	gopro_tls_close(t);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/*
 * A client that sends and stops reading: the server pauses at the
 * high-water mark (the client's writes then block), and every request is
 * answered once the client reads again.
 */
static void
test_tls_backpressure(void **state)
{
	enum { BODY = 1000, MAX = 100000 };
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	uint8_t frame[GOPRO_HEADER_SIZE + BODY], buf[2048];
	struct gopro_tls *t;
	struct gopro_frame f;
	struct tlsd d;
	int sent = 0, rc = GOPRO_OK;
	double t0;

	memset(frame, 'b', sizeof(frame));
	gopro_header_write(frame, GOPRO_CMD_HEARTBEAT, BODY);
	start_tls(&d, NULL, "output_high_water = 64k\noutput_low_water = 16k\n"
	    "send_timeout = 60s\n");
	t = connect_tls(&d, ctx);
	t0 = harness_now();
	/*
	 * Whole frames, until a write blocks because the worker paused
	 * (bounded in count and time).  A write that times out before the
	 * worker paused met a worker that is only slow (a loaded machine):
	 * the same frame again, the retry OpenSSL asks for.
	 */
	while (sent < MAX && harness_now() - t0 < 30) {
		rc = gopro_tls_write(t, frame, sizeof(frame), 0.5);
		if (rc == GOPRO_OK)
			sent++;
		else if (rc != GOPRO_E_TIMEOUT ||
		    harness_counter(&d.g, STATS_backpressure) > 0)
			break;
	}
	assert_int_equal(rc, GOPRO_E_TIMEOUT);
	assert_true(harness_counter(&d.g, STATS_backpressure) > 0);
	for (int i = 0; i < sent; i++) {
		assert_int_equal(gopro_tls_read_frame(t, buf, sizeof(buf), &f,
		    10), GOPRO_OK);
		assert_int_equal(f.header.length, BODY);
	}
	/* The blocked frame goes out now (the same bytes, as OpenSSL wants). */
	assert_int_equal(gopro_tls_write(t, frame, sizeof(frame), 10),
	    GOPRO_OK);
	assert_int_equal(gopro_tls_read_frame(t, buf, sizeof(buf), &f, 10),
	    GOPRO_OK);
	expect_echo(t, "after the flood");
	print_message("%d frames before the client's write blocked\n", sent);
	gopro_tls_close(t);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* Drain: GOAWAY over TLS, then close_notify (a clean EOF). */
static void
test_tls_goaway(void **state)
{
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	struct gopro_tls *t;
	struct gopro_frame f;
	uint8_t buf[256];
	struct tlsd d;

	start_tls(&d, NULL, "goaway_grace = 0\n");
	t = connect_tls(&d, ctx);
	expect_echo(t, "before");
	kill(d.g.pid, SIGTERM);
	assert_int_equal(gopro_tls_read_frame(t, buf, sizeof(buf), &f, 10),
	    GOPRO_OK);
	assert_int_equal(f.header.command, GOPRO_CMD_GOAWAY);
	assert_int_equal(gopro_tls_read_frame(t, buf, sizeof(buf), &f, 10),
	    GOPRO_E_CLOSED);
	gopro_tls_close(t);
	gopro_tls_ctx_free(ctx);
	assert_int_equal(harness_wait_exit(&d.g, 20), 0);
	harness_stop(&d.g);
}

/* ------------------------------------------------------------ resumption */

/* Tickets from one worker resume on the other, and after a reload. */
static void
test_tls_resumption(void **state)
{
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	struct gopro_tls *t;
	struct tlsd d;
	int resumed = 0;

	start_tls(&d, NULL, "workers = 2\n");
	for (int i = 0; i < 20; i++) {
		t = connect_tls(&d, ctx);
		expect_echo(t, "resume?");	/* the ticket comes with it */
		resumed += gopro_tls_resumed(t);
		gopro_tls_close(t);
	}
	assert_int_equal(resumed, 19);
	assert_int_equal(harness_counter(&d.g, STATS_tls_handshakes_resumed),
	    19);
	/* Both workers took some: the tickets are shared. */
	{
		struct stats_snap s;
		int with = 0;

		harness_snapshot(&d.g, &s);
		for (unsigned i = 0; i < s.hdr.nentries; i++)
			if (s.entries[i].state == STATS_STATE_RUNNING &&
			    s.entries[i].v.counter[STATS_tls_handshakes_resumed])
				with++;
		stats_snap_free(&s);
		if (with < 2)
			print_message("note: SO_REUSEPORT gave every resumed "
			    "connection to one worker\n");
	}
	kill(d.g.pid, SIGHUP);
	harness_wait_settled(&d.g, 1);
	t = connect_tls(&d, ctx);
	expect_echo(t, "after reload");
	assert_true(gopro_tls_resumed(t));
	gopro_tls_close(t);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/*
 * 20 reloads under TLS load, the tenth swapping the certificate for the
 * RSA one: gopro-bench --tls loses nothing and counts no error (a GOAWAY
 * makes it reconnect: a resumed handshake on the new generation).
 */
static void
test_tls_reloads_under_load(void **state)
{
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	struct gopro_tls *t;
	struct tlsd d;
	char *args[24], *out, prog[512];
	int fd, status, n = 0;
	pid_t pid;

	signal(SIGPIPE, SIG_IGN);
	start_tls(&d, NULL, "workers = 2\n");
	harness_program_copy("GOPRO_BENCH", prog, sizeof(prog));
	args[n++] = prog;
	args[n++] = "-s";
	args[n++] = d.taddr;
	args[n++] = "--tls";
	args[n++] = "-d";
	args[n++] = "120";
	args[n++] = "-c";
	args[n++] = "8";
	args[n++] = "-P";
	args[n++] = "4";
	args[n++] = "-m";
	args[n++] = "heartbeat:3,message:1";
	args[n++] = "--json";
	args[n++] = "--quiet";
	args[n++] = "--timeout";
	args[n++] = "10";
	args[n] = NULL;
	pid = harness_spawn(args, &fd);
	assert_true(counter_reaches(&d.g, STATS_frames_received_heartbeat,
	    1000) >= 1000);
	for (uint32_t i = 1; i <= 20; i++) {
		if (i == 10) {
			server_cert = "server-rsa.pem";
			server_key = "server-rsa.key";
			restart_conf(&d, NULL, "workers = 2\n");
			server_cert = "server.pem";
			server_key = "server.key";
		}
		kill(d.g.pid, SIGHUP);
		harness_wait_settled(&d.g, i);
	}
	/* A ticket from the last generation (it comes with the reply) resumes. */
	t = connect_tls(&d, ctx);
	expect_echo(t, "ticket");
	gopro_tls_close(t);
	t = connect_tls(&d, ctx);
	assert_true(gopro_tls_resumed(t));
	expect_echo(t, "after 20 reloads");
	gopro_tls_close(t);
	kill(pid, SIGINT);
	out = harness_collect(pid, fd, &status);
	print_message("gopro-bench: %s", out);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(harness_json_number(out, "lost"), 0);
	assert_int_equal(harness_json_number(out, "errors"), 0);
	assert_true(harness_json_number(out, "tls_handshakes_resumed") > 0);
	assert_true(harness_json_number(out, "goaway") > 0);
	free(out);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* tls.ktls = on on a kernel without the tls module: one line, and TLS. */
static void
test_tls_ktls_degrades(void **state)
{
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	struct gopro_tls *t;
	char out[256];
	struct tlsd d;
	bool ulp = harness_run("grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp",
	    out, sizeof(out)) == 0;

	start_tls(&d, "\tktls = on\n", NULL);
	t = connect_tls(&d, ctx);
	expect_echo(t, "ktls or not");
	gopro_tls_close(t);
	harness_sleep(0.2);
	if (!ulp) {
		assert_true(harness_log_has(&d.g, "offers no kTLS"));
		assert_int_equal(harness_counter(&d.g, STATS_tls_ktls), 0);
	}
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* ------------------------------------------------------------ mutual TLS */

/* The client's handshake ends before the server's verdict: read it. */
static bool
refused(const struct tlsd *d, const char *crt, const char *key)
{
	struct gopro_tls_ctx *ctx = ctx_with(crt, key);
	char err[512];
	struct gopro_tls *t = try_tls(d, ctx, err, sizeof(err));
	uint8_t buf[64];
	struct gopro_frame f;
	bool no = t == NULL;

	if (t != NULL) {
		no = gopro_tls_send_frame(t, GOPRO_CMD_HEARTBEAT, "x", 1, 5) !=
		    GOPRO_OK || gopro_tls_read_frame(t, buf, sizeof(buf), &f,
		    5) != GOPRO_OK;
		gopro_tls_close(t);
	}
	gopro_tls_ctx_free(ctx);
	return no;
}

static void
test_tls_verify_require(void **state)
{
	char extra[1024];
	struct tlsd d;

	snprintf(extra, sizeof(extra), "\tverify_client = require\n"
	    "\tclient_ca = \"%s\"\n\tcrl = \"%s\"\n", cert("ca.pem"),
	    cert("crl.pem"));
	start_tls(&d, extra, NULL);
	assert_false(refused(&d, "client.pem", "client.key"));
	assert_true(refused(&d, NULL, NULL));
	assert_true(refused(&d, "expired.pem", "expired.key"));
	assert_true(refused(&d, "revoked.pem", "revoked.key"));
	assert_true(refused(&d, "other.pem", "other.key"));
	assert_int_equal(counter_reaches(&d.g, STATS_tls_failed_certificate,
	    4), 4);
	assert_int_equal(harness_counter(&d.g, STATS_tls_handshakes_full), 1);
	/* goproctl ping --tls, with and without the device's certificate. */
	assert_int_equal(goproctl_tls(&d, "ping -n 1", "client"), 0);
	assert_int_equal(goproctl_tls(&d, "ping -n 1", NULL), 1);
	harness_sleep(0.2);
	assert_true(harness_log_has(&d.g, "TLS handshake failed"));
	assert_true(harness_log_has(&d.g, "certificate has expired"));
	assert_true(harness_log_has(&d.g, "certificate revoked"));
	assert_true(harness_answers(&d.g));
	harness_stop(&d.g);
}

/* identity = cn: the device is logged in by its certificate alone. */
static void
test_tls_identity_login(void **state)
{
	char users[] = "/tmp/gopro-users-XXXXXX", extra[1024], top[512];
	struct gopro_tls_ctx *dev = ctx_with("client.pem", "client.key");
	struct gopro_tls_ctx *anon = ctx_with(NULL, NULL);
	struct gopro_tls *t;
	struct gopro_frame f;
	uint8_t buf[256];
	struct tlsd d;

	harness_users_file(users, "alice", "secret", 1000);
	snprintf(extra, sizeof(extra), "\tverify_client = optional\n"
	    "\tclient_ca = \"%s\"\n\tidentity = cn\n", cert("ca.pem"));
	snprintf(top, sizeof(top), "auth {\n\trequired = true\n"
	    "\tusers_file = \"%s\"\n}\nlog_connections = on\n", users);
	start_tls(&d, extra, top);
	t = connect_tls(&d, dev);
	assert_int_equal(round_trip(t, GOPRO_CMD_MESSAGE, "from device-1", &f,
	    buf, sizeof(buf)), GOPRO_CMD_MESSAGE);
	gopro_tls_close(t);
	/* Without a certificate: a LOGIN is needed as usual, over TLS. */
	t = connect_tls(&d, anon);
	assert_int_equal(round_trip(t, GOPRO_CMD_MESSAGE, "anon", &f, buf,
	    sizeof(buf)), GOPRO_CMD_ERROR);
	assert_int_equal(error_code(&f), GOPRO_ERR_AUTH_REQUIRED);
	assert_int_equal(gopro_tls_login(t, "alice", "secret", buf,
	    sizeof(buf), &f, 10), GOPRO_OK);
	assert_int_equal(f.header.command, GOPRO_CMD_LOGIN_ACK);
	assert_int_equal(round_trip(t, GOPRO_CMD_MESSAGE, "alice", &f, buf,
	    sizeof(buf)), GOPRO_CMD_MESSAGE);
	gopro_tls_close(t);
	assert_int_equal(goproctl_tls(&d, "send", "client"), 0);
	assert_int_equal(harness_counter(&d.g, STATS_tls_identity_logins), 2);
	harness_sleep(0.2);
	assert_true(harness_log_has(&d.g, "logs in \"device-1\""));
	/* log_connections: the TLS version and the client's certificate. */
	assert_true(harness_log_has(&d.g, "; TLSv1.3, client certificate "
	    "\"device-1\""));
	gopro_tls_ctx_free(dev);
	gopro_tls_ctx_free(anon);
	harness_stop(&d.g);
	unlink(users);
}

/* goproctl -c conf ARGS into out (stdout and stderr); its exit status. */
static int
goproctl_local(const struct tlsd *d, const char *args, char *out,
    size_t len)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "'%s' -c '%s' %s",
	    harness_program("GOPROCTL"), d->g.conf_path, args);
	return harness_run(cmd, out, len);
}

/*
 * The verified certificate's identity reaches goproctl stats (text and
 * JSON recent clients) and a module (api->tls_identity); a client without
 * a certificate has none.  Module t answers command 0x10 with the identity.
 */
static void
test_tls_identity_stats_and_module(void **state)
{
	struct gopro_tls_ctx *dev = ctx_with("client.pem", "client.key");
	struct gopro_tls_ctx *anon = ctx_with(NULL, NULL);
	const char *dir = getenv("GOPRO_TEST_MODULES");
	char extra[1024], top[1024];
	static char out[1 << 16];
	struct gopro_tls *t;
	struct gopro_frame f;
	uint8_t buf[256];
	struct tlsd d;

	assert_non_null(dir);
	snprintf(extra, sizeof(extra), "\tverify_client = optional\n"
	    "\tclient_ca = \"%s\"\n\tidentity = cn\n", cert("ca.pem"));
	snprintf(top, sizeof(top), "module t {\n\tpath = \"%s/mod_v1.so\"\n"
	    "\tmode = \"tlsid\"\n}\n", dir);
	start_tls(&d, extra, top);
	t = connect_tls(&d, dev);
	assert_int_equal(round_trip(t, 0x10, "who", &f, buf, sizeof(buf)),
	    0x10);
	assert_int_equal(f.header.length, strlen("v1:device-1"));
	assert_memory_equal(f.body, "v1:device-1", f.header.length);
	gopro_tls_close(t);
	t = connect_tls(&d, anon);
	assert_int_equal(round_trip(t, 0x10, "who", &f, buf, sizeof(buf)),
	    0x10);
	assert_int_equal(f.header.length, strlen("v1:-"));
	assert_memory_equal(f.body, "v1:-", f.header.length);
	gopro_tls_close(t);
	assert_int_equal(goproctl_local(&d, "stats", out, sizeof(out)), 0);
	if (strstr(out, "127.0.0.1:") == NULL ||
	    strstr(out, " \"device-1\"") == NULL)
		fail_msg("no identity in goproctl stats:\n%s", out);
	assert_int_equal(goproctl_local(&d, "stats --json", out, sizeof(out)),
	    0);
	if (strstr(out, "\"identity\": \"device-1\"}") == NULL ||
	    strstr(out, "\"identity\": null}") == NULL)
		fail_msg("no identity in goproctl stats --json:\n%s", out);
	gopro_tls_ctx_free(dev);
	gopro_tls_ctx_free(anon);
	harness_stop(&d.g);
}

/*
 * The sum of the samples of goproctl stats --prometheus on the lines that
 * match the awk pattern.
 */
static long long
prometheus_sum(const struct tlsd *d, const char *pattern)
{
	char cmd[1024], out[64];

	/* In a subshell: harness_run redirects the last command's stdin. */
	snprintf(cmd, sizeof(cmd), "('%s' -c '%s' stats --prometheus | "
	    "awk '%s { n += $2 } END { printf \"%%d\\n\", n }')",
	    harness_program("GOPROCTL"), d->g.conf_path, pattern);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 0);
	return strtoll(out, NULL, 10);
}

/* The workers' gauge of open TLS connections, summed. */
static uint64_t
tls_open(const struct goprod *g)
{
	struct stats_snap snap;
	uint64_t n = 0;

	harness_snapshot(g, &snap);
	for (unsigned i = 0; i < snap.hdr.nentries; i++)
		n += snap.entries[i].tls_open;
	stats_snap_free(&snap);
	return n;
}

/* The gauge once it is want (or what it is after 10 s): closes are async. */
static uint64_t
tls_open_reaches(const struct goprod *g, uint64_t want)
{
	double t0 = harness_now();
	uint64_t v;

	while ((v = tls_open(g)) != want && harness_now() - t0 < 10)
		harness_sleep(0.02);
	return v;
}

/*
 * tls_open counts the connections on the TLS listener, not the plain one,
 * and goes back down when they close; goproctl stats and /metrics' format
 * show it (gopro_tls_connections_open).
 */
static void
test_tls_open_gauge(void **state)
{
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	struct gopro_tls *t1, *t2;
	static char out[1 << 16];
	struct tlsd d;
	int plain;

	start_tls(&d, NULL, NULL);
	plain = harness_connect(&d.g);
	harness_send(plain, GOPRO_CMD_HEARTBEAT, "p");
	harness_expect_frame(plain, GOPRO_CMD_HEARTBEAT, "p", 1);
	t1 = connect_tls(&d, ctx);
	expect_echo(t1, "one");
	t2 = connect_tls(&d, ctx);
	expect_echo(t2, "two");
	/* Both replies came back: both connections are counted already. */
	assert_int_equal(tls_open(&d.g), 2);
	assert_int_equal(goproctl_local(&d, "stats", out, sizeof(out)), 0);
	if (strstr(out, "\n  tls_open                     2\n") == NULL)
		fail_msg("no tls_open 2 in goproctl stats:\n%s", out);
	assert_int_equal(prometheus_sum(&d, "/^gopro_tls_connections_open[{]/"),
	    2);
	gopro_tls_close(t1);
	assert_int_equal(tls_open_reaches(&d.g, 1), 1);
	gopro_tls_close(t2);
	assert_int_equal(tls_open_reaches(&d.g, 0), 0);
	close(plain);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* The four TLS byte counters of the totals: app in, app out, wire in, out. */
static void
tls_bytes(const struct goprod *g, uint64_t b[4])
{
	struct stats_values t;

	harness_totals(g, &t);
	b[0] = t.counter[STATS_tls_app_bytes_received];
	b[1] = t.counter[STATS_tls_app_bytes_sent];
	b[2] = t.counter[STATS_tls_wire_bytes_received];
	b[3] = t.counter[STATS_tls_wire_bytes_sent];
}

/* tls_bytes once the application bytes sent reach want (at most 10 s). */
static void
tls_bytes_reach(const struct goprod *g, uint64_t b[4], uint64_t want)
{
	double t0 = harness_now();

	do {
		tls_bytes(g, b);
		if (b[1] >= want)
			return;
		harness_sleep(0.001);
	} while (harness_now() - t0 < 10);
}

/*
 * Bytes before and after encryption: the application bytes are exactly
 * the frames the client sent and got back, the TLS records on the wire
 * are more (headers, tags, the handshake); a plain connection adds to
 * neither; the counts survive the worker's death (the master folds them)
 * and reach goproctl stats and its Prometheus output per worker.
 */
static void
test_tls_bytes_counted(void **state)
{
	enum { N = 40, BODY = 300, FRAME = GOPRO_HEADER_SIZE + BODY };
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	static uint8_t out[N * FRAME], buf[FRAME];
	static char text[1 << 16];
	uint64_t b[4], after[4];
	struct gopro_tls *t;
	struct gopro_frame f;
	char body[BODY], cmd[1024];
	pid_t worker, now;
	struct tlsd d;
	size_t n = 0;
	int plain;

	memset(body, 'x', sizeof(body));
	start_tls(&d, NULL, NULL);
	plain = harness_connect(&d.g);
	harness_send(plain, GOPRO_CMD_HEARTBEAT, "plain bytes");
	harness_expect_frame(plain, GOPRO_CMD_HEARTBEAT, "plain bytes", 11);
	close(plain);
	t = connect_tls(&d, ctx);
	for (int i = 0; i < N; i++)
		n += gopro_frame_write(out + n, sizeof(out) - n,
		    GOPRO_CMD_HEARTBEAT, body, BODY);
	assert_int_equal(n, N * FRAME);
	assert_int_equal(gopro_tls_write(t, out, n, 5), GOPRO_OK);
	for (int i = 0; i < N; i++)
		assert_int_equal(gopro_tls_read_frame(t, buf, sizeof(buf), &f,
		    5), GOPRO_OK);
	/*
	 * Every reply is in, but the worker adds what it sent once its write
	 * returns, which can be after the client has read it: wait for it.
	 */
	tls_bytes_reach(&d.g, b, N * FRAME);
	print_message("app %llu in, %llu out; wire %llu in, %llu out\n",
	    (unsigned long long)b[0], (unsigned long long)b[1],
	    (unsigned long long)b[2], (unsigned long long)b[3]);
	assert_int_equal(b[0], N * FRAME);
	assert_int_equal(b[1], N * FRAME);
	assert_true(b[2] > b[0]);
	assert_true(b[3] > b[1]);
	assert_int_equal(goproctl_local(&d, "stats", text, sizeof(text)), 0);
	snprintf(cmd, sizeof(cmd), "\n  %-28s %d\n", "tls_app_bytes_received",
	    N * FRAME);
	if (strstr(text, cmd) == NULL)
		fail_msg("no%s in goproctl stats:\n%s", cmd, text);
	assert_int_equal(prometheus_sum(&d, "/^gopro_tls_sent_bytes_total[{]"
	    ".*layer=\"application\"/"), N * FRAME);
	/* The worker dies with the connection open: the totals stay. */
	assert_int_equal(harness_worker_pids(&d.g, &worker, 1), 1);
	now = worker;
	kill(worker, SIGKILL);
	for (int i = 0; i < 500 && (harness_worker_pids(&d.g, &now, 1) != 1 ||
	    now == worker); i++)
		harness_sleep(0.02);
	assert_true(now != worker);
	tls_bytes(&d.g, after);
	assert_memory_equal(after, b, sizeof(b));
	gopro_tls_close(t);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* ------------------------------------------------------------ OpenSSL */

/*
 * A client on OpenSSL directly, for what libgopro-tls does not do on
 * purpose: pin TLS 1.2, renegotiate, send a KeyUpdate, keep a session
 * object to offer again.  Blocking, with 10 s socket timeouts.
 */
static SSL_CTX *
ossl_ctx(int version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, version), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(ctx, version), 1);
	assert_int_equal(SSL_CTX_load_verify_locations(ctx, cert("ca.pem"),
	    NULL), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

/* A session to d offering sess (NULL: none); NULL if the handshake fails. */
static SSL *
ossl_connect(const struct tlsd *d, SSL_CTX *ctx, SSL_SESSION *sess)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)d->tport),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	SSL *s;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		fail_msg("connect to port %d: %s", d->tport, strerror(errno));
	assert_non_null(s = SSL_new(ctx));
	assert_int_equal(SSL_set_fd(s, fd), 1);
	SSL_set_tlsext_host_name(s, "localhost");
	assert_int_equal(SSL_set1_host(s, "localhost"), 1);
	if (sess != NULL)
		assert_int_equal(SSL_set_session(s, sess), 1);
	if (SSL_connect(s) == 1)
		return s;
	SSL_free(s);
	close(fd);
	return NULL;
}

/* A heartbeat and its echo; false when either fails. */
static bool
ossl_echo(SSL *s, const char *body)
{
	uint8_t out[256], in[256];
	size_t n = gopro_frame_write(out, sizeof(out), GOPRO_CMD_HEARTBEAT,
	    body, strlen(body)), got = 0, r;

	if (SSL_write_ex(s, out, n, &r) != 1 || r != n)
		return false;
	while (got < n && SSL_read_ex(s, in + got, n - got, &r) == 1)
		got += r;
	return got == n && memcmp(in, out, n) == 0;
}

static void
ossl_close(SSL *s)
{
	int fd = SSL_get_fd(s);

	SSL_shutdown(s);
	SSL_free(s);
	close(fd);
}

/*
 * TLS 1.2 renegotiation asked by the client is refused: the server
 * answers the new ClientHello with a no_renegotiation alert, the client's
 * handshake fails and the connection is over; other clients are served.
 * A TLS 1.3 KeyUpdate (not a renegotiation) works, the other side's
 * update requested too.  With renegotiation allowed (SSL_OP_NO_
 * RENEGOTIATION taken out of tls.c and SSL_OP_ALLOW_CLIENT_RENEGOTIATION
 * put in) the renegotiation succeeds and this test fails.
 */
static void
test_tls_renegotiation_refused(void **state)
{
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	SSL_CTX *tls12 = ossl_ctx(TLS1_2_VERSION), *tls13 =
	    ossl_ctx(TLS1_3_VERSION);
	struct gopro_tls *t;
	unsigned long e;
	struct tlsd d;
	SSL *s;

	start_tls(&d, NULL, NULL);
	assert_non_null(s = ossl_connect(&d, tls12, NULL));
	assert_string_equal(SSL_get_version(s), "TLSv1.2");
	assert_true(ossl_echo(s, "before"));
	ERR_clear_error();
	assert_int_equal(SSL_renegotiate(s), 1);
	assert_int_not_equal(SSL_do_handshake(s), 1);
	e = ERR_peek_last_error();
	print_message("renegotiation: %s\n", ERR_reason_error_string(e));
	assert_int_equal(ERR_GET_REASON(e), SSL_R_NO_RENEGOTIATION);
	ERR_clear_error();
	assert_false(ossl_echo(s, "after"));
	ossl_close(s);
	ERR_clear_error();
	t = connect_tls(&d, ctx);
	expect_echo(t, "unaffected");
	gopro_tls_close(t);
	/* TLS 1.3: a KeyUpdate, and the server's own in answer. */
	assert_non_null(s = ossl_connect(&d, tls13, NULL));
	assert_true(ossl_echo(s, "before the update"));
	assert_int_equal(SSL_key_update(s, SSL_KEY_UPDATE_REQUESTED), 1);
	assert_true(ossl_echo(s, "with new keys"));
	assert_true(ossl_echo(s, "and again"));
	ossl_close(s);
	assert_true(harness_answers(&d.g));
	SSL_CTX_free(tls12);
	SSL_CTX_free(tls13);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* ------------------------------------------------------------ rotation */

#define ROTATION 2	/* tls.ticket_key_rotation of the tests, seconds */

static double
wall_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The rotation period the server's time(NULL) falls in at t. */
static long
period_at(double t)
{
	return (long)(t / ROTATION);
}

/* Wait for period p to begin (bounded: p is at most two periods away). */
static void
wait_period(long p)
{
	double t;

	while ((t = wall_clock()) < (double)p * ROTATION)
		harness_sleep((double)p * ROTATION - t + 0.01);
}

/*
 * A connection that offers sess (NULL: none) and exchanges a heartbeat,
 * whose handshake began and ended in one period, that period in *period:
 * 1 resumed, 0 full handshake, -1 when the handshake straddled two
 * periods (the caller tries again).  *out, if asked, gets the session
 * with the server's ticket.
 */
static int
resume_in_one_period(const struct tlsd *d, SSL_CTX *ctx, SSL_SESSION *sess,
    SSL_SESSION **out, long *period)
{
	double a = wall_clock(), b;
	SSL *s = ossl_connect(d, ctx, sess);
	int reused;

	b = wall_clock();
	assert_non_null(s);
	reused = SSL_session_reused(s);
	assert_true(ossl_echo(s, "ticket"));	/* the ticket came before it */
	if (out != NULL)
		assert_non_null(*out = SSL_get1_session(s));
	ossl_close(s);
	*period = period_at(a);
	return period_at(b) == *period ? reused : -1;
}

/*
 * The steps of a round after its first session, which the round took in
 * period k: true when each fell in the period it is meant for.
 */
typedef bool (*rotation_steps)(struct tlsd *d, SSL_CTX *ctx,
    SSL_SESSION *sess, long k, void *arg);

#define ROTATION_ROUNDS 10	/* rounds a test may start before it fails */

/*
 * The rounds of a test that times its handshakes to the rotation periods
 * of d (tls.ticket_key_rotation = 2s): each takes a session in one period
 * k, then runs steps; a round that a slow machine pushed over a period
 * boundary starts again, at most ROTATION_ROUNDS times.  True when a round
 * ran to its end, *rounds the rounds taken.
 */
static bool
rotation_rounds(struct tlsd *d, rotation_steps steps, void *arg,
    int *rounds)
{
	SSL_CTX *ctx = ossl_ctx(TLS1_3_VERSION);
	SSL_SESSION *sess = NULL;
	bool done = false;
	int round;
	long k;

	for (round = 0; !done && round < ROTATION_ROUNDS; round++) {
		SSL_SESSION_free(sess);
		sess = NULL;
		done = resume_in_one_period(d, ctx, NULL, &sess, &k) >= 0 &&
		    steps(d, ctx, sess, k, arg);
	}
	*rounds = round;
	SSL_SESSION_free(sess);
	SSL_CTX_free(ctx);
	return done;
}

/* One rotation later, then two: how the session fared each time. */
struct rotation_fate {
	int one, two;
};

static bool
offer_after_rotations(struct tlsd *d, SSL_CTX *ctx, SSL_SESSION *sess,
    long k, void *arg)
{
	struct rotation_fate *r = arg;
	long p;

	wait_period(k + 1);
	r->one = resume_in_one_period(d, ctx, sess, NULL, &p);
	if (r->one < 0 || p != k + 1)
		return false;
	wait_period(k + 2);
	r->two = resume_in_one_period(d, ctx, sess, NULL, &p);
	return r->two >= 0 && p == k + 2;
}

/*
 * tls.ticket_key_rotation = 2s: a session from the period before still
 * resumes, one from two periods before makes a full handshake (and is
 * served).
 */
static void
test_tls_ticket_key_rotation(void **state)
{
	struct rotation_fate r = { -1, -1 };
	struct tlsd d;
	bool done;
	int rounds;

	start_tls(&d, "\tticket_key_rotation = 2s\n", "workers = 2\n");
	done = rotation_rounds(&d, offer_after_rotations, &r, &rounds);
	print_message("%d rounds; one rotation later: %s, two: %s\n",
	    rounds, r.one == 1 ? "resumed" : "full", r.two == 1 ? "resumed" :
	    "full");
	assert_true(done);
	assert_int_equal(r.one, 1);
	assert_int_equal(r.two, 0);
	harness_stop(&d.g);
}

/* The reloads so far, and whether the session resumed after the last. */
struct reload_fate {
	uint32_t reloads;
	int resumed;
};

static bool
offer_after_reload(struct tlsd *d, SSL_CTX *ctx, SSL_SESSION *sess, long k,
    void *arg)
{
	struct reload_fate *r = arg;
	long p;

	kill(d->g.pid, SIGHUP);
	harness_wait_settled(&d->g, ++r->reloads);
	r->resumed = resume_in_one_period(d, ctx, sess, NULL, &p);
	return r->resumed >= 0 && p <= k + 1;
}

/*
 * The generations agree on the keys: a session the first generation gave
 * resumes on the workers of the next, reloaded in the same or the next
 * period (a reload that takes longer starts again).
 */
static void
test_tls_ticket_keys_across_generations(void **state)
{
	struct reload_fate r = { 0, -1 };
	struct tlsd d;
	bool done;
	int rounds;

	start_tls(&d, "\tticket_key_rotation = 2s\n", "workers = 2\n");
	done = rotation_rounds(&d, offer_after_reload, &r, &rounds);
	print_message("%d rounds, %u reloads\n", rounds, r.reloads);
	assert_true(done);
	assert_int_equal(r.resumed, 1);
	/* A round started again may have resumed too. */
	assert_true(harness_counter(&d.g, STATS_tls_handshakes_resumed) >= 1);
	harness_stop(&d.g);
}

/* ------------------------------------------------------------ readable */

/* The line of the configuration file path that starts with text, or 0. */
static int
conf_line_of(const char *path, const char *text)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	int n = 0, found = 0;

	assert_non_null(f);
	while (found == 0 && fgets(line, sizeof(line), f) != NULL)
		if (++n > 0 && strncmp(line, text, strlen(text)) == 0)
			found = n;
	fclose(f);
	return found;
}

/* goprod -t and a start in the foreground: their exit status and output. */
static int
goprod_check(const struct tlsd *d, bool start, char *out, size_t len)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), start ? "timeout -s TERM 10 '%s' -f -c '%s'" :
	    "'%s' -t -c '%s'", harness_program("GOPROD"), d->g.conf_path);
	return harness_run(cmd, out, len);
}

static void
expect_refused_key(const struct tlsd *d, const char *want, bool start)
{
	char out[4096];

	assert_int_equal(goprod_check(d, start, out, sizeof(out)), 1);
	print_message("%s: %s", start ? "start" : "goprod -t", out);
	if (strstr(out, want) == NULL || strstr(out, "Permission denied") ==
	    NULL)
		fail_msg("no \"%s\" in: %s", want, out);
}

/*
 * As root with user = "nobody", whom every reload reads the TLS files as:
 * a key only root can read is refused by goprod -t, by the start and by a
 * reload (the old generation serves on) with file:line: tls.key and the
 * reason; a symbolic link that nobody plants in a directory of its own,
 * to a key only root can read, is refused the same way: root reads the
 * files with nobody's rights, never its own.
 */
static void
test_tls_files_readable_by_user(void **state)
{
	struct passwd *pw = getpwnam("nobody");
	char conf[2048], dir[400], key[450], secret[450], want[1024];
	static char cmd[4096], out[4096];
	struct gopro_tls_ctx *ctx;
	struct gopro_tls *t;
	struct stats_header h;
	struct tlsd d;
	int port = harness_free_port(), line;

	if (geteuid() != 0 || pw == NULL)
		skip();
	pick_tport(&d, port);
	harness_prepare(&d.g, port, "");
	snprintf(dir, sizeof(dir), "%s/tls", d.g.dir);
	snprintf(key, sizeof(key), "%s/server.key", dir);
	snprintf(secret, sizeof(secret), "%s/root-only.key", d.g.dir);
	snprintf(conf, sizeof(conf), "listen = {\"127.0.0.1:%d\", "
	    "\"127.0.0.1:%d\"}\nuser = \"nobody\"\nlog_level = debug\n"
	    "tls {\n\tlisten = {\"127.0.0.1:%d\"}\n"
	    "\tcertificate = \"%s/server.pem\"\n\tkey = \"%s\"\n}\n",
	    port, d.tport, d.tport, dir, key);
	harness_rewrite_conf(&d.g, conf);
	/* The service account's own directory, the key readable by its group. */
	snprintf(cmd, sizeof(cmd), "chmod 0755 '%s' && chmod 0644 '%s' && "
	    "mkdir -m 0755 '%s' && cp '%s' '%s' '%s/' && cp '%s' '%s' && "
	    "chmod 0600 '%s' && chown root:%ld '%s' && chmod 0640 '%s' && "
	    "chown nobody '%s'", d.g.dir, d.g.conf_path, dir,
	    cert("server.pem"), cert("server.key"), dir, cert("server.key"),
	    secret, secret, (long)pw->pw_gid, key, key, dir);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 0);
	assert_int_equal(goprod_check(&d, false, out, sizeof(out)), 0);
	line = conf_line_of(d.g.conf_path, "\tkey = ");
	snprintf(want, sizeof(want), "%s:%d: tls.key: %s: not readable by "
	    "user nobody", d.g.conf_path, line, key);
	assert_int_equal(chmod(key, 0600), 0);
	expect_refused_key(&d, want, false);
	expect_refused_key(&d, want, true);
	/* A link that nobody could plant, to a key only root reads. */
	assert_int_equal(unlink(key), 0);
	assert_int_equal(symlink(secret, key), 0);
	expect_refused_key(&d, want, false);
	/* Readable again: it serves; then a reload meets the root-only key. */
	snprintf(cmd, sizeof(cmd), "rm -f '%s' && cp '%s' '%s' && chown "
	    "root:%ld '%s' && chmod 0640 '%s'", key, cert("server.key"), key,
	    (long)pw->pw_gid, key, key);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 0);
	harness_launch(&d.g);
	assert_int_equal(chmod(key, 0600), 0);
	kill(d.g.pid, SIGHUP);
	for (int i = 0; i < 500; i++) {
		harness_header(&d.g, &h);
		if (h.reloads_failed > 0)
			break;
		harness_sleep(0.02);
	}
	assert_int_equal(h.reloads_failed, 1);
	assert_int_equal(h.generation, 1);
	assert_true(harness_log_has(&d.g, want));
	ctx = ctx_with(NULL, NULL);
	t = connect_tls(&d, ctx);
	expect_echo(t, "old generation");
	gopro_tls_close(t);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* ------------------------------------------------------------ PROXY */

static void
test_tls_after_proxy_header(void **state)
{
	static const char hdr[] =
	    "PROXY TCP4 198.51.100.77 198.51.100.1 40001 8443\r\n";
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	struct gopro_tls *t;
	char err[512];
	struct tlsd d;
	int fd;

	start_tls_proxy(&d, NULL, NULL, true);
	fd = tcp_connect(d.tport);
	/* Header in two pieces, the second with nothing after it. */
	harness_write(fd, hdr, 10);
	harness_sleep(0.1);
	harness_write(fd, hdr + 10, sizeof(hdr) - 1 - 10);
	t = gopro_tls_start(ctx, fd, 5, err, sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	expect_echo(t, "proxied tls");
	gopro_tls_close(t);
	assert_true(harness_recent_client(&d.g, "198.51.100.77", true));
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* ------------------------------------------------------------ hostile */

static int
raw_connect(const struct tlsd *d)
{
	return tcp_connect(d->tport);
}

/* Plain GoPro bytes and garbage on the TLS port: closed, others served. */
static void
test_tls_plain_and_garbage(void **state)
{
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	uint8_t frame[16], junk[512];
	struct gopro_tls *t;
	struct tlsd d;
	int fd;

	start_tls(&d, NULL, NULL);
	fd = raw_connect(&d);
	harness_write(fd, frame, gopro_frame_write(frame, sizeof(frame),
	    GOPRO_CMD_HEARTBEAT, "hi", 2));
	assert_true(harness_wait_closed(fd, 10));
	close(fd);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	fd = raw_connect(&d);
	harness_write(fd, junk, sizeof(junk));
	assert_true(harness_wait_closed(fd, 10));
	close(fd);
	assert_int_equal(counter_reaches(&d.g, STATS_tls_failed_protocol, 2),
	    2);
	t = connect_tls(&d, ctx);
	expect_echo(t, "unaffected");
	gopro_tls_close(t);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/*
 * A ClientHello dribbled a byte at a time: the bytes do not restart
 * handshake_timeout, which closes it; a normal client is served meanwhile.
 */
static void
test_tls_dribble_cut_by_timeout(void **state)
{
	/* The start of a TLS 1.2 ClientHello record. */
	static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x01, 0x00, 0x01,
	    0x00, 0x00, 0xfc, 0x03, 0x03, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
	    11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
	    27, 28, 29, 30, 31 };
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	struct gopro_tls *t;
	struct tlsd d;
	bool closed = false;
	size_t i;
	int fd;

	start_tls(&d, "\thandshake_timeout = 1s\n", NULL);
	fd = raw_connect(&d);
	for (i = 0; i < sizeof(hello) && !closed; i++) {
		if (send(fd, hello + i, 1, MSG_NOSIGNAL) != 1)
			break;
		closed = harness_wait_closed(fd, 0.2);
		if (i == 3) {
			t = connect_tls(&d, ctx);
			expect_echo(t, "served meanwhile");
			gopro_tls_close(t);
		}
	}
	/* 43 bytes at 0.2 s would take 8.6 s: the 1 s clock cut it. */
	assert_true(closed || harness_wait_closed(fd, 10));
	assert_true(i < sizeof(hello));
	close(fd);
	assert_int_equal(counter_reaches(&d.g, STATS_tls_failed_timeout, 1),
	    1);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* Many half-open handshakes count against max_connections, and go. */
static void
test_tls_half_open_handshakes(void **state)
{
	enum { N = 1000 };
	struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
	static int fds[N];
	struct gopro_tls *t;
	struct rlimit rl;
	struct stats_snap s;
	uint64_t active = 0;
	struct tlsd d;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < N + 64) {
		rl.rlim_cur = rl.rlim_max < N + 64 ? rl.rlim_max : N + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < N + 64)
		skip();
	start_tls(&d, "\thandshake_timeout = 60s\n", "max_connections = 2000\n"
	    "idle_timeout = 60s\n");
	for (int i = 0; i < N; i++) {
		fds[i] = tcp_connect(d.tport);
		/* Half a record header: the handshake cannot progress. */
		harness_write(fds[i], "\x16\x03", 2);
	}
	for (int tries = 0; tries < 100 && active < N; tries++) {
		harness_snapshot(&d.g, &s);
		active = 0;
		for (unsigned i = 0; i < s.hdr.nentries; i++)
			active += s.entries[i].conn_active;
		stats_snap_free(&s);
		if (active < N)
			harness_sleep(0.1);
	}
	assert_true(active >= N);
	t = connect_tls(&d, ctx);
	expect_echo(t, "among the half-open");
	gopro_tls_close(t);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	gopro_tls_ctx_free(ctx);
	harness_stop(&d.g);
}

/* ------------------------------------------------------------ interop */

static void
test_tls_interop_openssl_and_python(void **state)
{
	char cmd[2048], out[8192];
	struct tlsd d;

	start_tls(&d, NULL, NULL);
	/* s_client: TLS 1.2 too, with the heartbeat frame on its stdin. */
	/* In a subshell: harness_run redirects the last command's stdin. */
	snprintf(cmd, sizeof(cmd), "(printf 'GO\\001\\000\\000\\000\\000\\002hi' "
	    "| (cat; sleep 1) | timeout 10 openssl s_client -quiet -no_ign_eof "
	    "-tls1_2 -verify_return_error -CAfile '%s' -servername localhost "
	    "-connect %s 2>/dev/null | od -An -c | tr -d ' \\n')",
	    cert("ca.pem"), d.taddr);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 0);
	if (strcmp(out, "GO001\\0\\0\\0\\0002hi") != 0) {
		harness_dump_log(&d.g);
		fail_msg("openssl s_client: \"%s\" from %s", out, cmd);
	}
	snprintf(cmd, sizeof(cmd), "timeout 10 python3 -c '\n"
	    "import socket, ssl\n"
	    "c = ssl.create_default_context(cafile=\"%s\")\n"
	    "s = c.wrap_socket(socket.create_connection((\"127.0.0.1\", %d)),"
	    " server_hostname=\"localhost\")\n"
	    "s.sendall(b\"GO\\x01\\x00\\x00\\x00\\x00\\x02py\")\n"
	    "r = b\"\"\n"
	    "while len(r) < 10: r += s.recv(10 - len(r))\n"
	    "print(s.version(), r[8:].decode())\n'", cert("ca.pem"), d.tport);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 0);
	assert_string_equal(out, "TLSv1.3 py\n");
	assert_int_equal(harness_counter(&d.g, STATS_tls_version_1_2), 1);
	harness_stop(&d.g);
}

/* ------------------------------------------------------------ config */

/* A key that does not match: file:line: tls.key: and OpenSSL's reason. */
static void
test_tls_bad_key_refused(void **state)
{
	char conf[4096], cmd[1024], out[4096];
	struct goprod g;
	struct tlsd d;

	/* Another ECDSA key: the same type, other values. */
	server_key = "client.key";
	tls_conf(conf, sizeof(conf), 1, 2, NULL, NULL);
	harness_prepare(&g, harness_free_port(), conf);
	snprintf(cmd, sizeof(cmd), "'%s' -t -c '%s'", harness_program("GOPROD"),
	    g.conf_path);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 1);
	if (strstr(out, "gopro.conf:") == NULL ||
	    strstr(out, ": tls.key: the key does not match the certificate")
	    == NULL || strstr(out, "key values mismatch") == NULL)
		fail_msg("unexpected: %s", out);
	/* A reload to it is refused, the old generation serves on. */
	server_key = "server.key";
	start_tls(&d, NULL, NULL);
	server_key = "client.key";
	restart_conf(&d, NULL, NULL);
	kill(d.g.pid, SIGHUP);
	harness_sleep(0.5);
	assert_true(harness_answers(&d.g));
	{
		struct gopro_tls_ctx *ctx = ctx_with(NULL, NULL);
		struct gopro_tls *t = connect_tls(&d, ctx);

		expect_echo(t, "old generation");
		gopro_tls_close(t);
		gopro_tls_ctx_free(ctx);
	}
	assert_true(harness_log_has(&d.g, "tls.key: the key does not match"));
	/* The RSA certificate with its key: the new generation uses it. */
	server_cert = "server-rsa.pem";
	server_key = "server-rsa.key";
	restart_conf(&d, NULL, NULL);
	server_cert = "server.pem";
	server_key = "server.key";
	kill(d.g.pid, SIGHUP);
	harness_wait_settled(&d.g, 1);
	snprintf(cmd, sizeof(cmd), "(timeout 10 openssl s_client -CAfile '%s' "
	    "-connect %s </dev/null 2>&1 | grep -c 'Server public key is 2048 "
	    "bit')", cert("ca.pem"), d.taddr);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 0);
	harness_stop(&d.g);
	harness_stop(&g);	/* nothing runs: removes its directory */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_serves_frames),
		cmocka_unit_test(test_tls_limits_and_pipelining),
		cmocka_unit_test(test_tls_backpressure),
		cmocka_unit_test(test_tls_goaway),
		cmocka_unit_test(test_tls_resumption),
		cmocka_unit_test(test_tls_reloads_under_load),
		cmocka_unit_test(test_tls_ktls_degrades),
		cmocka_unit_test(test_tls_verify_require),
		cmocka_unit_test(test_tls_identity_login),
		cmocka_unit_test(test_tls_identity_stats_and_module),
		cmocka_unit_test(test_tls_open_gauge),
		cmocka_unit_test(test_tls_bytes_counted),
		cmocka_unit_test(test_tls_renegotiation_refused),
		cmocka_unit_test(test_tls_ticket_key_rotation),
		cmocka_unit_test(test_tls_ticket_keys_across_generations),
		cmocka_unit_test(test_tls_files_readable_by_user),
		cmocka_unit_test(test_tls_after_proxy_header),
		cmocka_unit_test(test_tls_plain_and_garbage),
		cmocka_unit_test(test_tls_dribble_cut_by_timeout),
		cmocka_unit_test(test_tls_half_open_handshakes),
		cmocka_unit_test(test_tls_interop_openssl_and_python),
		cmocka_unit_test(test_tls_bad_key_refused),
	};

	/* TEST_FILTER=test_tls_goaway runs one (cmocka's pattern). */
	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
