/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * metrics.c - the Prometheus endpoint process (see metrics.h).
 *
 * One libev loop, non-blocking sockets, at most METRICS_CLIENTS_MAX
 * clients, a timer per client for reading the head and another bound for
 * writing the answer.  Idle connections cannot lock a scraper out: when
 * every slot is taken, a new connection takes the slot of the oldest one
 * still waiting for its request head (as HAProxy and node_exporter evict
 * idle connections), and one host may hold at most METRICS_PEER_MAX slots,
 * so a flood from one address only ever evicts its own connections.  The response is built in memory (open_memstream)
 * from a fresh snapshot, so the segment is never read while a client is
 * being waited for.  A master that restarts replaces the stats file; the
 * file is re-opened when the path names another inode.
 */
#include "config.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "stats_format.h"

struct mclient {
	struct mserver *server;
	int fd;                        /* -1 when free */
	bool responding;               /* the head was read: not evictable */
	ev_tstamp since;               /* accepted at */
	struct sockaddr_storage peer;
	ev_io io;
	ev_timer timer;
	char in[METRICS_REQUEST_MAX];
	size_t inlen;
	char *out;
	size_t outlen, outoff;
};

struct mserver {
	struct ev_loop *loop;
	const char *stats_path;
	struct stats_segment seg;     /* fd -1 while not open */
	ev_io accept_io;
	ev_signal sigs[3];
	struct mclient clients[METRICS_CLIENTS_MAX];
};

/* ------------------------------------------------------------ requests */

static bool
is_http1(const char *v, size_t len)
{
	return (len == 8 && memcmp(v, "HTTP/1.", 7) == 0 &&
	    (v[7] == '0' || v[7] == '1'));
}

static bool
path_is_metrics(const char *p, size_t len)
{
	return (len == 8 && memcmp(p, "/metrics", 8) == 0) ||
	    (len > 8 && memcmp(p, "/metrics?", 9) == 0);
}

int
metrics_request_status(const char *head, size_t len, bool *head_only)
{
	const char *eol = memchr(head, '\n', len), *sp1, *sp2;
	size_t linelen;

	*head_only = false;
	if (eol == NULL)
		return 400;
	linelen = (size_t)(eol - head);
	if (linelen > 0 && head[linelen - 1] == '\r')
		linelen--;
	sp1 = memchr(head, ' ', linelen);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', linelen - (size_t)(sp1 + 1 - head)) :
	    NULL;
	if (sp1 == NULL || sp2 == NULL || sp1 == head || sp2 == sp1 + 1 ||
	    !is_http1(sp2 + 1, linelen - (size_t)(sp2 + 1 - head)))
		return 400;
	if (!(sp1 - head == 3 && memcmp(head, "GET", 3) == 0) &&
	    !(sp1 - head == 4 && memcmp(head, "HEAD", 4) == 0))
		return 405;
	*head_only = sp1 - head == 4;
	return path_is_metrics(sp1 + 1, (size_t)(sp2 - sp1 - 1)) ? 200 : 404;
}

/* ------------------------------------------------------------ the segment */

static bool
segment_current(const struct mserver *s)
{
	struct stat a, b;

	return s->seg.fd >= 0 && stat(s->stats_path, &a) == 0 &&
	    fstat(s->seg.fd, &b) == 0 && a.st_ino == b.st_ino &&
	    a.st_dev == b.st_dev;
}

/* The Prometheus text in a malloc'ed buffer, or NULL (logged). */
static char *
metrics_body(struct mserver *s, size_t *len)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(60, 1);
	struct stats_snap snap;
	char e[512], *body = NULL;
	FILE *f;

	if (!segment_current(s)) {
		stats_close(&s->seg);
		if (stats_open(&s->seg, s->stats_path, e, sizeof(e)) < 0) {
			log_rl(&rl, LOG_WARNING, "%s", e);
			return NULL;
		}
	}
	if (stats_snap_take(&s->seg, &snap) < 0) {
		log_rl(&rl, LOG_WARNING, "snapshot of %s: %s", s->stats_path,
		    strerror(errno));
		return NULL;
	}
	if ((f = open_memstream(&body, len)) != NULL) {
		if (stats_format_prometheus(f, &snap) < 0) {
			fclose(f);
			free(body);
			body = NULL;
		} else
			fclose(f);
	}
	stats_snap_free(&snap);
	return body;
}

/* ------------------------------------------------------------ responses */

static const char *
status_text(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	default: return "Service Unavailable";
	}
}

static int
build_response(FILE *f, int code, bool head_only, const char *body,
    size_t len)
{
	fprintf(f, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu"
	    "\r\nConnection: close\r\n%s\r\n", code, status_text(code),
	    code == 200 ? "text/plain; version=0.0.4; charset=utf-8" :
	    "text/plain; charset=utf-8", len,
	    code == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head_only)
		fwrite(body, 1, len, f);
	return ferror(f) ? -1 : 0;
}

static void client_close(struct mclient *c);

static void
client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mclient *c = w->data;

	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff,
		    c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0)
			break;
		c->outoff += (size_t)n;
	}
	client_close(c);
}

static void
client_respond(struct mclient *c, int code, bool head_only)
{
	char *body = NULL, msg[64];
	size_t blen = 0;
	FILE *f;

	if (code == 200 && (body = metrics_body(c->server, &blen)) == NULL)
		code = 503;
	if (code != 200)
		blen = (size_t)snprintf(msg, sizeof(msg), "%d %s\n", code,
		    status_text(code));
	f = open_memstream(&c->out, &c->outlen);
	if (f == NULL || build_response(f, code, head_only,
	    body ? body : msg, blen) < 0 || fclose(f) == EOF) {
		free(body);
		client_close(c);
		return;
	}
	free(body);
	c->responding = true;
	ev_io_stop(c->server->loop, &c->io);
	ev_io_init(&c->io, client_write_cb, c->fd, EV_WRITE);
	c->io.data = c;
	ev_io_start(c->server->loop, &c->io);
	ev_timer_stop(c->server->loop, &c->timer);
	ev_timer_set(&c->timer, METRICS_WRITE_TIMEOUT, 0);
	ev_timer_start(c->server->loop, &c->timer);
}

/* ------------------------------------------------------------ clients */

static void
client_close(struct mclient *c)
{
	ev_io_stop(c->server->loop, &c->io);
	ev_timer_stop(c->server->loop, &c->timer);
	close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
}

static bool
head_complete(const struct mclient *c)
{
	return memmem(c->in, c->inlen, "\r\n\r\n", 4) != NULL ||
	    memmem(c->in, c->inlen, "\n\n", 2) != NULL;
}

static void
client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mclient *c = w->data;
	bool head_only = false;
	ssize_t n;

	n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(c);
		return;
	}
	c->inlen += (size_t)n;
	if (head_complete(c)) {
		int code = metrics_request_status(c->in, c->inlen, &head_only);

		client_respond(c, code, head_only);
	} else if (c->inlen == sizeof(c->in))
		client_respond(c, 400, false);
}

static void
client_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	client_close(t->data);
}

/* The same host (port ignored); other families never match. */
static bool
same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in *a4 = (const void *)a, *b4 = (const void *)b;
	const struct sockaddr_in6 *a6 = (const void *)a, *b6 = (const void *)b;

	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0;
	return false;
}

/* The older of two clients waiting for their head (either may be NULL). */
static struct mclient *
older_idle(struct mclient *best, struct mclient *c)
{
	if (c->fd < 0 || c->responding)
		return best;
	return best == NULL || c->since < best->since ? c : best;
}

/*
 * The slot for a new connection from peer: a free one, or the oldest idle
 * one of the same host when it holds METRICS_PEER_MAX already, or the
 * oldest idle one of anyone when all are taken; NULL when every slot is
 * answering a request (those end within METRICS_WRITE_TIMEOUT).
 */
static struct mclient *
client_slot(struct mserver *s, const struct sockaddr_storage *peer)
{
	struct mclient *c, *free_slot = NULL, *idle = NULL, *own = NULL;
	int mine = 0;

	for (int i = 0; i < METRICS_CLIENTS_MAX; i++) {
		c = &s->clients[i];
		if (c->fd < 0) {
			free_slot = free_slot ? free_slot : c;
			continue;
		}
		idle = older_idle(idle, c);
		if (same_host(&c->peer, peer)) {
			mine++;
			own = older_idle(own, c);
		}
	}
	if (mine >= METRICS_PEER_MAX)
		return own;
	return free_slot ? free_slot : idle;
}

static void
client_start(struct mserver *s, int fd, const struct sockaddr_storage *peer)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(60, 3);
	struct mclient *c = client_slot(s, peer);

	if (c == NULL) {
		close(fd);
		return;
	}
	if (c->fd >= 0) {
		log_rl(&rl, LOG_NOTICE, "metrics: all %d connection slots (or "
		    "%d of one host) taken; closing the oldest idle one",
		    METRICS_CLIENTS_MAX, METRICS_PEER_MAX);
		client_close(c);
	}
	c->fd = fd;
	c->peer = *peer;
	c->since = ev_now(s->loop);
	c->responding = false;
	c->inlen = 0;
	c->outlen = c->outoff = 0;
	ev_io_init(&c->io, client_read_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(s->loop, &c->io);
	ev_timer_init(&c->timer, client_timeout_cb, METRICS_READ_TIMEOUT, 0);
	c->timer.data = c;
	ev_timer_start(s->loop, &c->timer);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(60, 3);
	struct mserver *s = w->data;

	for (int i = 0; i < METRICS_CLIENTS_MAX; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(w->fd, (struct sockaddr *)&peer, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			client_start(s, fd, &peer);
			continue;
		}
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_rl(&rl, LOG_WARNING, "metrics: accept: %s",
			    strerror(errno));
		return;
	}
}

/* ------------------------------------------------------------ the loop */

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	if (w->signum == SIGUSR1) {
		log_reopen();
		return;
	}
	ev_break(loop, EVBREAK_ALL);
}

static void
server_signals(struct mserver *s)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGUSR1 };

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	for (int i = 0; i < 3; i++) {
		ev_signal_init(&s->sigs[i], signal_cb, sigs[i]);
		ev_signal_start(s->loop, &s->sigs[i]);
	}
}

static void
server_free(struct mserver *s)
{
	for (int i = 0; i < METRICS_CLIENTS_MAX; i++)
		if (s->clients[i].fd >= 0)
			client_close(&s->clients[i]);
	stats_close(&s->seg);
	ev_loop_destroy(s->loop);
	free(s);
}

int
metrics_serve(int listen_fd, const char *stats_path)
{
	struct mserver *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->loop = ev_loop_new(EVFLAG_AUTO)) == NULL) {
		log_warnx("metrics: cannot set up an event loop");
		free(s);
		return 1;
	}
	s->stats_path = stats_path;
	s->seg.fd = -1;
	for (int i = 0; i < METRICS_CLIENTS_MAX; i++) {
		s->clients[i].fd = -1;
		s->clients[i].server = s;
	}
	fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
	ev_io_init(&s->accept_io, accept_cb, listen_fd, EV_READ);
	s->accept_io.data = s;
	ev_io_start(s->loop, &s->accept_io);
	server_signals(s);
	ev_run(s->loop, 0);
	ev_io_stop(s->loop, &s->accept_io);
	close(listen_fd);
	server_free(s);
	return 0;
}
