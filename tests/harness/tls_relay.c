/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tls_relay.c - the harness's TLS transport (see tls_relay.h).
 *
 * One thread per connection relays between the test's end of a socketpair
 * and the TLS connection, with one poll() over both and non-blocking steps
 * of libgopro-tls, so that neither direction ever waits for the other: a
 * test that writes without reading, or reads without writing, sees the
 * same backpressure as on a plain socket (plus the socketpair's buffer).
 * End of input from the test becomes close_notify and a FIN; the server's
 * end of input becomes end of file for the test; a test that closes its
 * end stops the relay.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "gopro/tls_client.h"
#include "tls_relay.h"

#define HANDSHAKE_TIMEOUT 5.0
#define MAX_FD 65536

struct relay {
	struct gopro_tls *t;
	int app;		/* the relay's end of the socketpair */
	atomic_bool abort;	/* set by tls_relay_abort before it closes */
	struct relay *next;	/* every relay, never freed (tiny) */
};

/* One direction's bytes in flight. */
struct flow {
	uint8_t buf[16384];
	size_t len, off;
};

struct state {
	struct flow down, up;	/* server to test, test to server */
	short rd_want, wr_want;	/* what the TLS socket must become */
	bool srv_eof, srv_dead;	/* no more to read / to write */
	bool app_eof, app_deaf;	/* the test writes / reads no more */
	bool app_shut, sent_close;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct relay *by_fd[MAX_FD], *all;
static struct gopro_tls_ctx *ctx;
static char certs[64];

static void
remove_certs(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certs);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", certs);
}

/*
 * The relay threads are detached and may still be in OpenSSL when the
 * test's main returns: OpenSSL's own atexit cleanup would free what they
 * use (a test program died of SIGSEGV at exit, all its tests passed).
 * Before main, so before anything else in the process initialises
 * OpenSSL, ask it to leave its state for the process's end to reclaim.
 */
__attribute__((constructor)) static void
openssl_no_atexit(void)
{
	(void)OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

/* make_certs.sh into a fresh directory, once. */
static int
make_certs(char *err, size_t errlen)
{
	const char *top = getenv("TOP_SRCDIR");
	char cmd[1024];

	snprintf(certs, sizeof(certs), "/tmp/gopro-certs-XXXXXX");
	if (mkdtemp(certs) == NULL) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		*certs = '\0';
		return -1;
	}
	atexit(remove_certs);
	snprintf(cmd, sizeof(cmd), "sh '%s/tests/harness/make_certs.sh' '%s' "
	    ">'%s/make_certs.log' 2>&1", top ? top : "../..", certs, certs);
	if (system(cmd) != 0) {
		snprintf(err, errlen, "make_certs.sh failed, see %s/"
		    "make_certs.log", certs);
		return -1;
	}
	return 0;
}

const char *
tls_relay_cert(const char *name, char *err, size_t errlen)
{
	static char path[4][128];
	static unsigned next;
	static int made;	/* 0 not yet, 1 made, -1 failed */
	char *p = path[next++ % 4];

	if (made == 0)
		made = make_certs(err, errlen) == 0 ? 1 : -1;
	if (made < 0) {
		snprintf(err, errlen, "no test certificates in %s", certs);
		return NULL;
	}
	snprintf(p, sizeof(path[0]), "%s/%s", certs, name);
	return p;
}

/*
 * One context for the process, without resumption: the relays' threads
 * would store the server's tickets in it while the test thread offers the
 * last one to a new handshake.
 */
static struct gopro_tls_ctx *
context(char *err, size_t errlen)
{
	struct gopro_tls_options o;

	if (ctx != NULL)
		return ctx;
	gopro_tls_options_init(&o);
	o.servername = "localhost";
	o.no_resume = true;
	if ((o.ca_file = tls_relay_cert("ca.pem", err, errlen)) == NULL)
		return NULL;
	ctx = gopro_tls_ctx_new(&o, err, errlen);
	return ctx;
}

static bool
flow_pending(const struct flow *f)
{
	return f->off < f->len;
}

static void
flow_moved(struct flow *f, size_t n)
{
	f->off += n;
	if (f->off == f->len)
		f->off = f->len = 0;
}

/* Server to test: whether anything moved. */
static bool
step_down(struct relay *r, struct state *s)
{
	bool moved = false;
	ssize_t n;

	if (!s->srv_eof && !flow_pending(&s->down)) {
		n = gopro_tls_read_some(r->t, s->down.buf,
		    sizeof(s->down.buf), &s->rd_want);
		if (n > 0) {
			s->down.len = (size_t)n;
			moved = true;
		} else if (n == 0 || errno != EAGAIN)
			s->srv_eof = moved = true;
	}
	if (flow_pending(&s->down)) {
		n = s->app_deaf ? (ssize_t)(s->down.len - s->down.off) :
		    send(r->app, s->down.buf + s->down.off, s->down.len -
		    s->down.off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			flow_moved(&s->down, (size_t)n);
			moved = true;
		} else if (errno != EAGAIN && errno != EINTR)
			s->app_deaf = moved = true;
	}
	if (s->srv_eof && !flow_pending(&s->down) && !s->app_shut) {
		shutdown(r->app, SHUT_WR);
		s->app_shut = moved = true;
	}
	return moved;
}

/* Test to server: whether anything moved. */
static bool
step_up(struct relay *r, struct state *s)
{
	bool moved = false;
	ssize_t n;

	if (!s->app_eof && !flow_pending(&s->up)) {
		n = recv(r->app, s->up.buf, sizeof(s->up.buf), MSG_DONTWAIT);
		if (n > 0) {
			s->up.len = (size_t)n;
			moved = true;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			s->app_eof = moved = true;
	}
	if (flow_pending(&s->up)) {
		n = s->srv_dead ? (ssize_t)(s->up.len - s->up.off) :
		    gopro_tls_write_some(r->t, s->up.buf + s->up.off,
		    s->up.len - s->up.off, &s->wr_want);
		if (n > 0) {
			flow_moved(&s->up, (size_t)n);
			moved = true;
		} else if (errno != EAGAIN)
			s->srv_dead = moved = true;
	}
	if (s->app_eof && !flow_pending(&s->up) && !s->sent_close &&
	    !atomic_load(&r->abort)) {
		if (!s->srv_dead)
			gopro_tls_shutdown_write(r->t);
		s->sent_close = moved = true;
	}
	return moved;
}

/* The test has written all it will and reads no more (or got it all). */
static bool
finished(const struct relay *r, const struct state *s)
{
	if (!s->app_eof || flow_pending(&s->up))
		return false;
	if (atomic_load(&r->abort) || s->app_deaf)
		return true;
	return s->srv_eof && s->app_shut;
}

/*
 * The descriptors to wait for.  A test end that hung up is not polled
 * again while its last bytes wait for the server: POLLHUP would spin.
 */
static void
wait_events(struct relay *r, struct state *s)
{
	struct pollfd p[2] = {
		{ .fd = r->app },
		{ .fd = gopro_tls_fd(r->t) },
	};

	if (!s->app_eof && !flow_pending(&s->up))
		p[0].events |= POLLIN;
	if (flow_pending(&s->down) && !s->app_deaf)
		p[0].events |= POLLOUT;
	if (s->app_deaf && (s->app_eof || flow_pending(&s->up)))
		p[0].fd = -1;
	if (!s->srv_eof && !flow_pending(&s->down))
		p[1].events |= s->rd_want;
	if (flow_pending(&s->up) && !s->srv_dead)
		p[1].events |= s->wr_want;
	if (p[1].events == 0)
		p[1].fd = -1;
	if (poll(p, 2, 1000) > 0 && (p[0].revents & (POLLHUP | POLLERR)))
		s->app_deaf = true;
}

static void *
relay_run(void *arg)
{
	struct relay *r = arg;
	struct state *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		fprintf(stderr, "tls_relay: out of memory\n");
		abort();
	}
	for (;;) {
		while (step_down(r, s) | step_up(r, s))
			;
		if (finished(r, s))
			break;
		wait_events(r, s);
	}
	if (atomic_load(&r->abort))
		gopro_tls_abort(r->t);
	else
		gopro_tls_close(r->t);
	r->t = NULL;
	close(r->app);
	free(s);
	return NULL;
}

static int
spawn(void *(*run)(void *), void *arg, char *err, size_t errlen)
{
	pthread_attr_t attr;
	pthread_t tid;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	rc = pthread_create(&tid, &attr, run, arg);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
	return rc == 0 ? 0 : -1;
}

/* The far end of a refused connection: swallows the test's bytes. */
static void *
sink_run(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t buf[4096];

	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
	close(fd);
	return NULL;
}

/*
 * What a refused client gets: a descriptor that reads end of file and
 * takes the test's writes, as a plain socket the server closed would.
 */
static int
closed_socket(char *err, size_t errlen)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	shutdown(sv[1], SHUT_WR);
	if (spawn(sink_run, (void *)(intptr_t)sv[1], err, errlen) < 0) {
		close(sv[1]);
		close(sv[0]);
		return -1;
	}
	return sv[0];
}

static int
relay_spawn(struct gopro_tls *t, char *err, size_t errlen)
{
	struct relay *r = calloc(1, sizeof(*r));
	int sv[2];

	if (r == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv) < 0 || sv[0] >= MAX_FD) {
		snprintf(err, errlen, "cannot relay: %s", strerror(errno));
		gopro_tls_close(t);
		free(r);
		return -1;
	}
	r->t = t;
	r->app = sv[1];
	pthread_mutex_lock(&lock);
	r->next = all;
	all = by_fd[sv[0]] = r;
	pthread_mutex_unlock(&lock);
	if (spawn(relay_run, r, err, errlen) < 0)
		return -1;
	return sv[0];
}

int
tls_relay_start(int tcp, bool *refused, char *err, size_t errlen)
{
	struct gopro_tls_ctx *c = context(err, errlen);
	struct gopro_tls *t;

	*refused = false;
	if (c == NULL) {
		close(tcp);
		return -1;
	}
	fcntl(tcp, F_SETFL, fcntl(tcp, F_GETFL) | O_NONBLOCK);
	t = gopro_tls_start(c, tcp, HANDSHAKE_TIMEOUT, err, errlen);
	if (t == NULL) {
		*refused = true;
		return closed_socket(err + strlen(err), errlen - strlen(err));
	}
	return relay_spawn(t, err, errlen);
}

void
tls_relay_abort(int fd)
{
	struct relay *r = NULL;

	pthread_mutex_lock(&lock);
	if (fd >= 0 && fd < MAX_FD) {
		r = by_fd[fd];
		by_fd[fd] = NULL;
	}
	pthread_mutex_unlock(&lock);
	if (r != NULL)
		atomic_store(&r->abort, true);
	close(fd);
}

bool
tls_relay_heartbeat(const char *address, double timeout)
{
	uint8_t buf[64];
	struct gopro_frame f;
	struct gopro_tls *t;
	char err[512];
	bool ok;

	if (context(err, sizeof(err)) == NULL)
		return false;
	t = gopro_tls_connect(ctx, address, timeout, err, sizeof(err));
	if (t == NULL)
		return false;
	ok = gopro_tls_send_frame(t, GOPRO_CMD_HEARTBEAT, NULL, 0,
	    timeout) == GOPRO_OK && gopro_tls_read_frame(t, buf, sizeof(buf),
	    &f, timeout) == GOPRO_OK && f.header.command == GOPRO_CMD_HEARTBEAT;
	gopro_tls_close(t);
	return ok;
}
