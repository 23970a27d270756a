/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * async.c - the asynchronous GoPro client (see gopro/async.h).
 *
 * A context owns its current connection (cur: where new requests go),
 * the connections draining after a GOAWAY, and the dead ones waiting to be
 * freed.  Each connection has an output buffer of frames not yet written,
 * a reader for its replies and a ring of the requests owed a reply, oldest
 * first; a reply pops the head.  Nothing is freed in the middle of a
 * callback chain: a connection that dies moves to the dead list and the
 * context is freed, if asked, when the outermost entry point returns.
 *
 * One timer serves everything (connect deadlines, request deadlines, the
 * retry delay).  It is armed for the earliest deadline known when a
 * request is made, so the hot path only compares two numbers; when it
 * fires, the deadlines are scanned and the timer armed again.
 *
 * A transport (TLS) sits between the socket and the buffers when one is
 * given: its handshake runs after the TCP connect, under the same
 * deadline, and its read and write replace recv and send.
 *
 * gopro_async_post is the only entry point for other threads: a ring of
 * posts under a mutex, and the adapter's wake hook when the ring was
 * empty, so that a burst of posts costs the loop one wake-up.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "gopro/async.h"
#include "iowait.h"
#include "reader.h"
#include "sock.h"

#define ASYNC_READS_PER_EVENT 16

struct pend {
	gopro_reply_cb *cb;
	void *arg;
	double deadline;          /* 0: none */
	size_t size;              /* bytes of its frame in out, until sent */
};

enum conn_state {
	CONN_WAITING = 0,         /* no socket: before a (re)connect */
	CONN_CONNECTING,
	CONN_HANDSHAKE,           /* connected, the transport's handshake */
	CONN_UP,
	CONN_DRAINING,            /* GOAWAY seen: collect replies, send no new */
	CONN_DEAD,
};

struct gopro_io {
	struct gopro_async *a;
	struct gopro_io *next;    /* in a->draining or a->dead */
	enum conn_state state;
	int fd;
	void *tr;                 /* the transport's state, or NULL */
	void *watcher;
	int events;
	bool in_read;             /* flushed when the read ends */
	bool login_pending;
	struct sock_addrs addrs;  /* what the address being tried resolved to */
	size_t ai;                /* next of addrs to try */
	double connect_deadline;
	struct buf out;
	struct gopro_reader in;
	struct pend *q;
	unsigned qhead, qlen, qcap;
};

struct post {
	gopro_post_cb *fn;
	void *arg;
};

struct gopro_async {
	char **addresses;
	size_t naddresses;
	size_t addr_next;
	char *user, *password;
	unsigned max_pending;
	double request_timeout, connect_timeout;
	double backoff_initial, backoff_max;
	unsigned max_retries;
	bool buffering;
	uint32_t max_reply;
	gopro_state_cb *on_state;
	void *state_arg;
	bool has_source;
	struct sockaddr_storage source;
	struct gopro_transport tops;  /* tops.open NULL: plain */
	void *transport_arg;
	struct gopro_loop_ops ops;
	void *loop;
	struct gopro_io *cur;     /* NULL before attach and once CLOSED */
	struct gopro_io *draining;
	struct gopro_io *dead;
	size_t tried;             /* addresses tried in this round */
	unsigned rounds;          /* failed rounds in a row */
	int last;                 /* result of the last failure */
	double retry_at;          /* 0: no retry scheduled */
	double timer_at;          /* the armed timer, 0: none */
	unsigned depth;           /* entry points in progress */
	double now;               /* the clock when the outermost one began */
	bool freeing;
	bool closed;
	bool reconnecting;        /* between a loss and the next connection */
	uint64_t rng;
	/* Posts from other threads: everything below under post_lock. */
	pthread_mutex_t post_lock;
	struct post *posts;
	unsigned post_head, post_len, post_cap;
	bool post_closed;
	char err[512];
};

/* A caller's struct may predate a field: read it only if size covers it. */
#define HAS_FIELD(p, type, field) ((p)->size >= offsetof(type, field) + \
	sizeof(((type *)0)->field))

static void conn_start(struct gopro_async *a, struct gopro_io *c);
static void conn_connected(struct gopro_async *a, struct gopro_io *c);

static void
set_error(struct gopro_async *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
}

static void
notify(struct gopro_async *a, enum gopro_state state, int result)
{
	if (a->on_state != NULL && !a->freeing)
		a->on_state(a, state, result, a->state_arg);
}

/* ------------------------------------------------------------ timer */

static void
arm(struct gopro_async *a, double when, double now)
{
	if (when <= 0 || (a->timer_at != 0 && a->timer_at <= when))
		return;
	a->timer_at = when;
	a->ops.timer_set(a->loop, when > now ? when - now : 0);
}

static double
earlier(double a, double b)
{
	return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

static double
conn_next_deadline(const struct gopro_io *c)
{
	double t = c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKE ?
	    c->connect_deadline : 0;

	for (unsigned i = 0; i < c->qlen; i++)
		t = earlier(t, c->q[(c->qhead + i) % c->qcap].deadline);
	return t;
}

static void
rearm(struct gopro_async *a, double now)
{
	double t = a->retry_at;

	if (a->cur != NULL)
		t = earlier(t, conn_next_deadline(a->cur));
	for (struct gopro_io *c = a->draining; c != NULL; c = c->next)
		t = earlier(t, conn_next_deadline(c));
	a->timer_at = 0;
	if (t != 0)
		arm(a, t, now);
	else
		a->ops.timer_set(a->loop, -1);
}

/* Equal jitter: half the exponential delay plus a random half. */
static double
backoff_delay(struct gopro_async *a)
{
	double d = a->backoff_initial;

	for (unsigned i = 1; i < a->rounds && d < a->backoff_max; i++)
		d *= 2;
	if (d > a->backoff_max)
		d = a->backoff_max;
	a->rng ^= a->rng << 13;
	a->rng ^= a->rng >> 7;
	a->rng ^= a->rng << 17;
	return d * (0.5 + 0.5 * (double)(a->rng >> 11) / 9007199254740992.0);
}

/* ------------------------------------------------------------ queue */

static int
queue_frame(struct gopro_io *c, uint8_t command, const void *body,
    size_t len, gopro_reply_cb *cb, void *arg, double deadline)
{
	struct pend *p;
	unsigned i;
	uint8_t *w;

	if (c->qlen == c->qcap)
		return GOPRO_E_BUSY;
	/* The call only when the block is short (rarely, once it has grown). */
	if (buf_room(&c->out) < GOPRO_HEADER_SIZE + len &&
	    buf_reserve(&c->out, GOPRO_HEADER_SIZE + len, SIZE_MAX) < 0)
		return GOPRO_E_NOMEM;
	/* Reserved above, so the block exists (buf_tail could be NULL). */
	w = c->out.data + c->out.end;
	gopro_header_write(w, command, (uint32_t)len);
	if (len > 0)
		memcpy(w + GOPRO_HEADER_SIZE, body, len);
	buf_commit(&c->out, GOPRO_HEADER_SIZE + len);
	i = c->qhead + c->qlen++;
	/* No division on the hot path: i < 2 * qcap. */
	p = &c->q[i >= c->qcap ? i - c->qcap : i];
	*p = (struct pend){ cb, arg, deadline, GOPRO_HEADER_SIZE + len };
	return GOPRO_OK;
}

static struct pend
queue_pop(struct gopro_io *c)
{
	struct pend p = c->q[c->qhead];

	if (++c->qhead == c->qcap)
		c->qhead = 0;
	c->qlen--;
	return p;
}

static void login_reply(struct gopro_async *a, int result,
    const struct gopro_frame *f, void *arg);

/* LOGIN goes first on every connection when a user is set. */
static int
queue_login(struct gopro_async *a, struct gopro_io *c)
{
	uint8_t body[GOPRO_HEADER_SIZE + GOPRO_LOGIN_BODY_MAX];
	size_t n;
	int rc;

	if (a->user == NULL)
		return GOPRO_OK;
	n = gopro_login_write(body, sizeof(body), a->user, strlen(a->user),
	    a->password, strlen(a->password));
	rc = queue_frame(c, GOPRO_CMD_LOGIN, body + GOPRO_HEADER_SIZE,
	    n - GOPRO_HEADER_SIZE, login_reply, c, 0);
	explicit_bzero(body, sizeof(body));
	c->login_pending = rc == GOPRO_OK;
	return rc;
}

/* ------------------------------------------------------------ connections */

static struct gopro_io *
conn_new(struct gopro_async *a)
{
	struct gopro_io *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->a = a;
	c->fd = -1;
	reader_init(&c->in, a->max_reply);
	c->qcap = a->max_pending + 1;
	c->q = calloc(c->qcap, sizeof(*c->q));
	if (c->q == NULL || queue_login(a, c) != GOPRO_OK) {
		free(c->q);
		free(c);
		return NULL;
	}
	return c;
}

static void
conn_free(struct gopro_io *c)
{
	buf_free(&c->out);
	reader_fini(&c->in);
	free(c->q);
	free(c);
}

static void
want(struct gopro_io *c, int events)
{
	if (c->watcher != NULL && events != c->events)
		c->a->ops.io_set(c->a->loop, c->watcher, events);
	c->events = events;
}

static void
close_socket(struct gopro_io *c)
{
	if (c->tr != NULL)
		c->a->tops.close(c->tr);
	c->tr = NULL;
	if (c->watcher != NULL)
		c->a->ops.io_del(c->a->loop, c->watcher);
	if (c->fd >= 0)
		close(c->fd);
	c->watcher = NULL;
	c->fd = -1;
	c->events = 0;
}

static void
unlink_draining(struct gopro_async *a, struct gopro_io *c)
{
	for (struct gopro_io **p = &a->draining; *p != NULL; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			return;
		}
}

/*
 * Close c and fail what it owes: the request at index expired (if any)
 * with GOPRO_E_TIMEOUT, the others with result.  c is freed later.
 */
static void
conn_kill(struct gopro_async *a, struct gopro_io *c, int result, int expired)
{
	close_socket(c);
	if (a->cur == c)
		a->cur = NULL;
	else
		unlink_draining(a, c);
	c->state = CONN_DEAD;
	c->next = a->dead;
	a->dead = c;
	for (int i = 0; c->qlen > 0; i++) {
		struct pend p = queue_pop(c);

		p.cb(a, i == expired ? GOPRO_E_TIMEOUT : result, NULL, p.arg);
	}
}

static void
give_up(struct gopro_async *a, int result)
{
	a->closed = true;
	a->retry_at = 0;
	if (a->cur != NULL)
		conn_kill(a, a->cur, result, -1);
	while (a->draining != NULL)
		conn_kill(a, a->draining, result, -1);
	notify(a, GOPRO_STATE_CLOSED, result);
}

static void
schedule_retry(struct gopro_async *a, int result)
{
	double now = iowait_now();

	a->last = result;
	if (a->max_retries != 0 && a->rounds > a->max_retries) {
		give_up(a, result);
		return;
	}
	a->reconnecting = true;
	a->retry_at = now + backoff_delay(a);
	arm(a, a->retry_at, now);
	notify(a, GOPRO_STATE_RECONNECTING, result);
}

/*
 * A connection that was up is lost: fail what it owed and, when it was
 * the current one, put a fresh one in its place and retry after a delay.
 */
static void
conn_lost(struct gopro_async *a, struct gopro_io *c, int result, int expired)
{
	bool was_cur = a->cur == c;

	if (was_cur && !a->freeing && !a->closed) {
		a->cur = conn_new(a);
		if (a->cur == NULL) {
			conn_kill(a, c, result, expired);
			give_up(a, GOPRO_E_NOMEM);
			return;
		}
	}
	conn_kill(a, c, result, expired);
	if (was_cur && !a->freeing && !a->closed) {
		a->rounds = 1;
		a->tried = 0;
		schedule_retry(a, result);
	}
}

/* Every address of this round failed; buffered requests may stay. */
static void
round_failed(struct gopro_async *a, struct gopro_io *c)
{
	a->rounds++;
	c->state = CONN_WAITING;
	if (!a->buffering) {
		unsigned n = c->qlen;

		/* Nothing was sent: start again from an empty buffer. */
		buf_reset(&c->out);
		for (unsigned i = 0; i < n; i++) {
			struct pend p = queue_pop(c);

			if (p.cb != login_reply)
				p.cb(a, GOPRO_E_CONNECT, NULL, p.arg);
		}
		if (a->cur != c || a->freeing)
			return;
		if (queue_login(a, c) != GOPRO_OK) {
			give_up(a, GOPRO_E_NOMEM);
			return;
		}
	}
	if (a->cur == c && !a->freeing && !a->closed)
		schedule_retry(a, a->last);
}

static void
conn_up(struct gopro_async *a, struct gopro_io *c)
{
	double now = iowait_now();

	c->state = CONN_UP;
	a->tried = 0;
	a->rounds = 0;
	a->reconnecting = false;
	want(c, GOPRO_EV_READ | (buf_len(&c->out) > 0 ? GOPRO_EV_WRITE : 0));
	if (c->login_pending) {
		/* The LOGIN is at the head; its time starts now. */
		c->q[c->qhead].deadline = now + (a->request_timeout > 0 ?
		    a->request_timeout : a->connect_timeout);
		arm(a, c->q[c->qhead].deadline, now);
		return;
	}
	notify(a, GOPRO_STATE_CONNECTED, GOPRO_OK);
}

static void
connect_failed(struct gopro_async *a, struct gopro_io *c, int err)
{
	char name[300];

	sock_name(&c->addrs.addr[c->ai - 1], name, sizeof(name));
	set_error(a, "cannot connect to %s: %s", name, strerror(err));
	a->last = err == ETIMEDOUT ? GOPRO_E_TIMEOUT : GOPRO_E_CONNECT;
	close_socket(c);
	c->state = CONN_WAITING;
	conn_start(a, c);
}

/* One step of the transport's handshake; up when it is done. */
static void
conn_handshake(struct gopro_async *a, struct gopro_io *c)
{
	char why[256] = "", name[300];
	int events = 0, rc = a->tops.handshake(c->tr, &events, why,
	    sizeof(why));

	if (rc == 0) {
		want(c, events != 0 ? events : GOPRO_EV_READ);
		return;
	}
	if (rc == 1) {
		conn_up(a, c);
		return;
	}
	sock_name(&c->addrs.addr[c->ai - 1], name, sizeof(name));
	set_error(a, "handshake with %s failed: %s", name, why[0] != '\0' ?
	    why : "no reason given");
	a->last = GOPRO_E_CONNECT;
	close_socket(c);
	c->state = CONN_WAITING;
	conn_start(a, c);
}

/* The TCP connection is made: the transport's handshake, or up. */
static void
conn_connected(struct gopro_async *a, struct gopro_io *c)
{
	if (a->tops.open == NULL) {
		conn_up(a, c);
		return;
	}
	if ((c->tr = a->tops.open(a->transport_arg, c->fd)) == NULL) {
		set_error(a, "the transport cannot take a connection: out of "
		    "memory");
		a->last = GOPRO_E_NOMEM;
		close_socket(c);
		c->state = CONN_WAITING;
		conn_start(a, c);
		return;
	}
	c->state = CONN_HANDSHAKE;
	arm(a, c->connect_deadline, iowait_now());
	conn_handshake(a, c);
}

/* The next resolved address of the round, resolving the next name. */
static bool
next_target(struct gopro_async *a, struct gopro_io *c)
{
	while (c->ai >= c->addrs.n) {
		const char *address;

		if (a->tried >= a->naddresses)
			return false;
		address = a->addresses[a->addr_next];
		a->addr_next = (a->addr_next + 1) % a->naddresses;
		a->tried++;
		c->ai = 0;
		if (sock_resolve(address, &c->addrs, a->err, sizeof(a->err)) !=
		    GOPRO_OK)
			a->last = GOPRO_E_ADDRESS;
	}
	return true;
}

static void
conn_start(struct gopro_async *a, struct gopro_io *c)
{
	while (next_target(a, c)) {
		int done, fd;

		fd = sock_connect_start(&c->addrs.addr[c->ai],
		    c->addrs.len[c->ai], a->has_source ? &a->source : NULL,
		    &done);
		c->ai++;
		if (fd < 0) {
			int saved = errno;
			char name[300];

			sock_name(&c->addrs.addr[c->ai - 1], name, sizeof(name));
			set_error(a, "cannot connect to %s: %s", name,
			    strerror(saved));
			a->last = GOPRO_E_CONNECT;
			continue;
		}
		c->fd = fd;
		c->watcher = a->ops.io_add(a->loop, fd, c);
		if (c->watcher == NULL) {
			close_socket(c);
			set_error(a, "the event loop adapter cannot watch a "
			    "descriptor");
			a->last = GOPRO_E_NOMEM;
			continue;
		}
		c->state = CONN_CONNECTING;
		c->connect_deadline = iowait_now() + a->connect_timeout;
		if (done) {
			conn_connected(a, c);
			return;
		}
		arm(a, c->connect_deadline, iowait_now());
		want(c, GOPRO_EV_WRITE);
		return;
	}
	round_failed(a, c);
}

/* ------------------------------------------------------------ replies */

static void
login_reply(struct gopro_async *a, int result, const struct gopro_frame *f,
    void *arg)
{
	struct gopro_io *c = arg;
	struct gopro_status st = { 0 };

	c->login_pending = false;
	if (result != GOPRO_OK)
		return;
	if (f->header.command == GOPRO_CMD_LOGIN_ACK) {
		if (c == a->cur)
			notify(a, GOPRO_STATE_CONNECTED, GOPRO_OK);
		return;
	}
	(void)gopro_status_parse(f->body, f->header.length, &st);
	set_error(a, "login as %s refused: %s %u (%s): %.*s", a->user,
	    gopro_command_name(f->header.command), st.code,
	    gopro_error_name(st.code), (int)st.text_len, (const char *)st.text);
	/* Retrying the same credentials would be refused again. */
	give_up(a, GOPRO_E_AUTH);
}

static void
conn_goaway(struct gopro_async *a, struct gopro_io *c,
    const struct gopro_frame *f)
{
	struct gopro_status st = { 0 };
	struct gopro_io *n;

	if (c != a->cur || c->state != CONN_UP)
		return;
	(void)gopro_status_parse(f->body, f->header.length, &st);
	set_error(a, "GOAWAY %u from the server: %.*s", st.code,
	    (int)st.text_len, (const char *)st.text);
	n = conn_new(a);
	if (n == NULL) {
		give_up(a, GOPRO_E_NOMEM);
		return;
	}
	c->state = CONN_DRAINING;
	c->next = a->draining;
	a->draining = c;
	a->cur = n;
	a->tried = 0;
	notify(a, GOPRO_STATE_GOAWAY, GOPRO_OK);
	if (a->cur == n && !a->freeing)
		conn_start(a, n);
}

/* A frame no request is waiting for: the server is closing. */
static void
conn_unsolicited(struct gopro_async *a, struct gopro_io *c,
    const struct gopro_frame *f)
{
	struct gopro_status st = { 0 };

	if (f->header.command == GOPRO_CMD_ERROR &&
	    gopro_status_parse(f->body, f->header.length, &st) == 0) {
		set_error(a, "ERROR %u (%s) from the server: %.*s", st.code,
		    gopro_error_name(st.code), (int)st.text_len,
		    (const char *)st.text);
		conn_lost(a, c, GOPRO_E_SERVER, -1);
		return;
	}
	set_error(a, "an unexpected %s frame from the server",
	    gopro_command_name(f->header.command));
	conn_lost(a, c, GOPRO_E_PROTOCOL, -1);
}

/* Hand out every complete reply: false when c is gone. */
static bool
conn_frames(struct gopro_async *a, struct gopro_io *c)
{
	struct gopro_frame f;
	int rc;

	while ((rc = reader_next(&c->in, &f)) == 1) {
		struct pend p;

		if (f.header.command == GOPRO_CMD_GOAWAY) {
			conn_goaway(a, c, &f);
			if (c->state == CONN_DEAD)
				return false;
			continue;
		}
		if (c->qlen == 0) {
			conn_unsolicited(a, c, &f);
			return false;
		}
		p = queue_pop(c);
		p.cb(a, GOPRO_OK, &f, p.arg);
		if (c->state == CONN_DEAD || a->freeing)
			return false;
	}
	if (rc < 0) {
		set_error(a, "%s from the server", rc == GOPRO_E_TOO_LARGE ?
		    "a reply larger than max_reply" : "bad magic or version");
		conn_lost(a, c, rc, -1);
		return false;
	}
	if (c->state == CONN_DRAINING && c->qlen == 0) {
		conn_kill(a, c, GOPRO_E_CLOSED, -1);
		return false;
	}
	return true;
}

static void
conn_closed_by_peer(struct gopro_async *a, struct gopro_io *c, int err)
{
	if (err == 0 || err == ECONNRESET || err == EPIPE) {
		set_error(a, "connection closed by the server");
		conn_lost(a, c, GOPRO_E_CLOSED, -1);
	} else {
		set_error(a, "socket: %s", strerror(err));
		conn_lost(a, c, GOPRO_E_SYSTEM, -1);
	}
}

static void
conn_read(struct gopro_async *a, struct gopro_io *c)
{
	for (int i = 0; i < ASYNC_READS_PER_EVENT; i++) {
		size_t room;
		void *p = gopro_reader_space(&c->in, &room);
		ssize_t n;

		if (p == NULL) {
			set_error(a, "out of memory for a reply");
			conn_lost(a, c, GOPRO_E_NOMEM, -1);
			return;
		}
		n = c->tr != NULL ? a->tops.read(c->tr, p, room) :
		    recv(c->fd, p, room, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			conn_closed_by_peer(a, c, n == 0 ? 0 : errno);
			return;
		}
		gopro_reader_commit(&c->in, (size_t)n);
		if (!conn_frames(a, c))
			return;
		/* A short read emptied the socket, not always the transport. */
		if ((size_t)n < room && (c->tr == NULL || !a->tops.pending(c->tr)))
			return;
	}
}

static void
conn_write(struct gopro_async *a, struct gopro_io *c)
{
	while (buf_len(&c->out) > 0) {
		ssize_t n = c->tr != NULL ? a->tops.write(c->tr,
		    buf_head(&c->out), buf_len(&c->out)) : send(c->fd,
		    buf_head(&c->out), buf_len(&c->out), MSG_NOSIGNAL |
		    MSG_DONTWAIT);

		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		conn_closed_by_peer(a, c, n == 0 ? 0 : errno);
		return;
	}
	want(c, GOPRO_EV_READ | (buf_len(&c->out) > 0 ? GOPRO_EV_WRITE : 0));
}

/* ------------------------------------------------------------ deadlines */

/* Drop entry k of a connection that has sent nothing yet. */
static struct pend
remove_unsent(struct gopro_io *c, unsigned k)
{
	struct pend p = c->q[(c->qhead + k) % c->qcap];
	uint8_t *base = buf_head(&c->out);
	size_t off = 0;

	for (unsigned i = 0; i < k; i++)
		off += c->q[(c->qhead + i) % c->qcap].size;
	memmove(base + off, base + off + p.size,
	    buf_len(&c->out) - off - p.size);
	c->out.end -= p.size;
	for (unsigned i = k; i + 1 < c->qlen; i++)
		c->q[(c->qhead + i) % c->qcap] =
		    c->q[(c->qhead + i + 1) % c->qcap];
	c->qlen--;
	return p;
}

static int
first_expired(const struct gopro_io *c, double now)
{
	for (unsigned i = 0; i < c->qlen; i++) {
		double d = c->q[(c->qhead + i) % c->qcap].deadline;

		if (d != 0 && d <= now)
			return (int)i;
	}
	return -1;
}

static void
conn_expire(struct gopro_async *a, struct gopro_io *c, double now)
{
	int k;

	if ((c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKE) &&
	    c->connect_deadline <= now) {
		connect_failed(a, c, ETIMEDOUT);
		return;
	}
	while ((k = first_expired(c, now)) >= 0) {
		if (c->state == CONN_UP || c->state == CONN_DRAINING) {
			set_error(a, "a request timed out: its connection is "
			    "closed, since replies are matched by position");
			conn_lost(a, c, GOPRO_E_CLOSED, k);
			return;
		}
		/* Never sent (connecting or buffered): only it goes. */
		struct pend p = remove_unsent(c, (unsigned)k);

		p.cb(a, GOPRO_E_TIMEOUT, NULL, p.arg);
		if (c->state == CONN_DEAD || a->freeing || a->cur != c)
			return;
	}
}

/* ------------------------------------------------------------ entry points */

/* Take the posts waiting (all, or none once closed) out of the ring. */
static unsigned
posts_take(struct gopro_async *a, struct post *out, unsigned max, bool close)
{
	unsigned n = 0;

	pthread_mutex_lock(&a->post_lock);
	while (n < max && a->post_len > 0) {
		out[n++] = a->posts[a->post_head];
		a->post_head = (a->post_head + 1) % a->post_cap;
		a->post_len--;
	}
	if (close && a->post_len == 0)
		a->post_closed = true;
	pthread_mutex_unlock(&a->post_lock);
	return n;
}

/* Run (or cancel) the posts in batches, none under the lock. */
static void
posts_run(struct gopro_async *a, bool cancel)
{
	struct post batch[32];
	unsigned n;

	do {
		n = posts_take(a, batch, 32, cancel);
		for (unsigned i = 0; i < n; i++)
			batch[i].fn(a, cancel || a->freeing ? GOPRO_E_CANCELLED :
			    GOPRO_OK, batch[i].arg);
	} while (n == 32 || (cancel && !a->post_closed));
}

static void
teardown(struct gopro_async *a)
{
	a->depth++;
	if (a->posts != NULL)
		posts_run(a, true);
	if (a->cur != NULL)
		conn_kill(a, a->cur, GOPRO_E_CANCELLED, -1);
	while (a->draining != NULL)
		conn_kill(a, a->draining, GOPRO_E_CANCELLED, -1);
	if (a->ops.detach != NULL)
		a->ops.detach(a->loop);
	while (a->dead != NULL) {
		struct gopro_io *c = a->dead;

		a->dead = c->next;
		conn_free(c);
	}
	for (size_t i = 0; i < a->naddresses; i++)
		free(a->addresses[i]);
	free(a->addresses);
	free(a->user);
	if (a->password != NULL) {
		explicit_bzero(a->password, strlen(a->password));
		free(a->password);
	}
	if (a->posts != NULL) {
		pthread_mutex_destroy(&a->post_lock);
		free(a->posts);
	}
	free(a);
}

/*
 * The clock is read once per event: requests made by the callbacks of a
 * batch of replies take their deadlines from it, a few microseconds early
 * at most, instead of a clock read each.
 */
static void
enter(struct gopro_async *a)
{
	if (a->depth++ == 0)
		a->now = iowait_now();
}

static void
leave(struct gopro_async *a)
{
	if (--a->depth > 0)
		return;
	if (a->freeing) {
		teardown(a);
		return;
	}
	while (a->dead != NULL) {
		struct gopro_io *c = a->dead;

		a->dead = c->next;
		conn_free(c);
	}
}

/*
 * A connection that owes nothing and holds no partial reply gives its
 * input block back, so that thousands of idle connections cost no
 * READER_CHUNK each.  A pipeline refilled by its callbacks is not idle,
 * so a loaded connection keeps its block.
 */
static void
conn_idle_input(struct gopro_io *c)
{
	if (c->state == CONN_UP && c->qlen == 0 &&
	    gopro_reader_buffered(&c->in) == 0)
		buf_free(&c->in.in);
}

void
gopro_async_io(struct gopro_io *c, int events)
{
	struct gopro_async *a = c->a;

	enter(a);
	if (c->state == CONN_CONNECTING) {
		int err = sock_connect_error(c->fd);

		if (err != 0)
			connect_failed(a, c, err);
		else
			conn_connected(a, c);
	} else if (c->state == CONN_HANDSHAKE) {
		conn_handshake(a, c);
	} else if (c->state == CONN_UP || c->state == CONN_DRAINING) {
		if (events & GOPRO_EV_READ) {
			c->in_read = true;
			conn_read(a, c);
			c->in_read = false;
			conn_idle_input(c);
		}
		/* Requests made by the callbacks leave in one send, now. */
		if (c->state != CONN_DEAD && !a->freeing &&
		    ((events & GOPRO_EV_WRITE) || buf_len(&c->out) > 0))
			conn_write(a, c);
	}
	leave(a);
}

void
gopro_async_timer(struct gopro_async *a)
{
	double now = iowait_now();
	struct gopro_io *c, *next;

	enter(a);
	a->timer_at = 0;
	if (a->retry_at != 0 && a->retry_at <= now && a->cur != NULL) {
		a->retry_at = 0;
		a->tried = 0;
		if (a->cur->state == CONN_WAITING)
			conn_start(a, a->cur);
	}
	for (c = a->draining; c != NULL && !a->freeing; c = next) {
		next = c->next;
		conn_expire(a, c, now);
	}
	if (a->cur != NULL && !a->freeing)
		conn_expire(a, a->cur, now);
	if (!a->freeing)
		rearm(a, iowait_now());
	leave(a);
}

void
gopro_async_wakeup(struct gopro_async *a)
{
	enter(a);
	if (!a->freeing)
		posts_run(a, false);
	leave(a);
}

int
gopro_async_post(struct gopro_async *a, gopro_post_cb *fn, void *arg)
{
	bool was_empty;

	if (a == NULL || fn == NULL || a->posts == NULL)
		return GOPRO_E_INVALID;
	pthread_mutex_lock(&a->post_lock);
	if (a->post_closed) {
		pthread_mutex_unlock(&a->post_lock);
		return GOPRO_E_CANCELLED;
	}
	if (a->post_len == a->post_cap) {
		pthread_mutex_unlock(&a->post_lock);
		return GOPRO_E_BUSY;
	}
	a->posts[(a->post_head + a->post_len++) % a->post_cap] =
	    (struct post){ fn, arg };
	was_empty = a->post_len == 1;
	pthread_mutex_unlock(&a->post_lock);
	/* One wake-up per burst: the loop takes every post when it runs. */
	if (was_empty)
		a->ops.wake(a->loop);
	return GOPRO_OK;
}

/*
 * The checks and the room of a request of size bytes on the current
 * connection: GOPRO_OK and in *w where its frame goes in the output
 * block, or why not.  Inline in both request calls, as is request_commit:
 * they are the hot path of every client, a few dozen instructions each.
 */
static inline int
request_room(struct gopro_async *a, size_t size, uint8_t **w)
{
	struct gopro_io *c = a->cur;

	if (a->freeing)
		return GOPRO_E_CANCELLED;
	if (a->closed)
		return GOPRO_E_CLOSED;
	/*
	 * Requests wait for the first connection and for the replacement of
	 * a draining one; after a loss, only when buffering is asked for.
	 */
	if (c == NULL || (c->state != CONN_UP && a->reconnecting &&
	    !a->buffering))
		return GOPRO_E_NOT_CONNECTED;
	/* The ring has max_pending + 1 entries: one for the LOGIN. */
	if (c->qlen >= a->max_pending + (c->login_pending ? 1u : 0u))
		return GOPRO_E_BUSY;
	/* The call only when the block is short (rarely, once it has grown). */
	if (buf_room(&c->out) < size &&
	    buf_reserve(&c->out, size, SIZE_MAX) < 0)
		return GOPRO_E_NOMEM;
	/* Reserved above, so the block exists (buf_tail could be NULL). */
	*w = c->out.data + c->out.end;
	return GOPRO_OK;
}

/* The frame of size bytes is written at request_room: queue it. */
static inline void
request_commit(struct gopro_async *a, size_t size, double timeout,
    gopro_reply_cb *cb, void *arg)
{
	struct gopro_io *c = a->cur;
	double now = 0, deadline = 0;
	unsigned i;

	if (timeout == 0)
		timeout = a->request_timeout;
	if (timeout > 0) {
		now = a->depth > 0 ? a->now : iowait_now();
		deadline = now + timeout;
	}
	buf_commit(&c->out, size);
	i = c->qhead + c->qlen++;
	/* No division on the hot path: i < 2 * qcap. */
	c->q[i >= c->qcap ? i - c->qcap : i] =
	    (struct pend){ cb, arg, deadline, size };
	if (deadline != 0)
		arm(a, deadline, now);
	/* Inside a read of c the write follows at once; else ask the loop. */
	if (c->state == CONN_UP && !c->in_read && !(c->events & GOPRO_EV_WRITE))
		want(c, c->events | GOPRO_EV_WRITE);
}

int
gopro_async_request(struct gopro_async *a, uint8_t command, const void *body,
    size_t len, double timeout, gopro_reply_cb *cb, void *arg)
{
	uint8_t *w;
	int rc;

	if (cb == NULL || len > UINT32_MAX || (len > 0 && body == NULL))
		return GOPRO_E_INVALID;
	if ((rc = request_room(a, GOPRO_HEADER_SIZE + len, &w)) != GOPRO_OK)
		return rc;
	gopro_header_write(w, command, (uint32_t)len);
	if (len > 0)
		memcpy(w + GOPRO_HEADER_SIZE, body, len);
	request_commit(a, GOPRO_HEADER_SIZE + len, timeout, cb, arg);
	return GOPRO_OK;
}

int
gopro_async_request_frame(struct gopro_async *a, const void *frame,
    size_t size, double timeout, gopro_reply_cb *cb, void *arg)
{
	const uint8_t *f = frame;
	struct gopro_frame d;
	uint8_t *w;
	int rc;

	/* One whole frame, as the decoder sees it, and nothing after it. */
	if (cb == NULL || f == NULL ||
	    !gopro_decode_whole(f, size, UINT32_MAX, &d) || d.size != size)
		return GOPRO_E_INVALID;
	if ((rc = request_room(a, size, &w)) != GOPRO_OK)
		return rc;
	/* Two fixed moves for a small frame (8 to 16 bytes), no call. */
	if (size <= 2 * GOPRO_HEADER_SIZE) {
		memcpy(w, f, GOPRO_HEADER_SIZE);
		memcpy(w + size - GOPRO_HEADER_SIZE, f + size -
		    GOPRO_HEADER_SIZE, GOPRO_HEADER_SIZE);
	} else {
		memcpy(w, f, size);
	}
	request_commit(a, size, timeout, cb, arg);
	return GOPRO_OK;
}

/* ------------------------------------------------------------ set-up */

void
gopro_async_options_init(struct gopro_async_options *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->max_pending = 1024;
	o->request_timeout = 10.0;
	o->connect_timeout = 5.0;
	o->backoff_initial = 0.1;
	o->backoff_max = 10.0;
	o->max_reply = GOPRO_DEFAULT_MAX_BODY + 4096u;
}

/* The fields added in LIBGOPRO_1.1, when the caller's struct has them. */
static int
copy_options_1_1(struct gopro_async *a, const struct gopro_async_options *o)
{
	const struct gopro_transport *t;

	if (HAS_FIELD(o, struct gopro_async_options, source_address) &&
	    o->source_address != NULL) {
		if (sock_parse_ip(o->source_address, &a->source) < 0)
			return GOPRO_E_INVALID;
		a->has_source = true;
	}
	if (!HAS_FIELD(o, struct gopro_async_options, transport_arg) ||
	    (t = o->transport) == NULL)
		return GOPRO_OK;
	if (t->size < sizeof(*t) || t->open == NULL || t->handshake == NULL ||
	    t->read == NULL || t->write == NULL || t->pending == NULL ||
	    t->close == NULL)
		return GOPRO_E_INVALID;
	a->tops = *t;
	a->transport_arg = o->transport_arg;
	return GOPRO_OK;
}

static int
copy_options(struct gopro_async *a, const struct gopro_async_options *o)
{
	a->addresses = calloc(o->naddresses, sizeof(*a->addresses));
	if (a->addresses == NULL)
		return GOPRO_E_NOMEM;
	for (size_t i = 0; i < o->naddresses; i++) {
		if (o->addresses[i] == NULL)
			return GOPRO_E_INVALID;
		if ((a->addresses[i] = strdup(o->addresses[i])) == NULL)
			return GOPRO_E_NOMEM;
		a->naddresses++;
	}
	if (o->user != NULL) {
		uint8_t probe[GOPRO_HEADER_SIZE + GOPRO_LOGIN_BODY_MAX];

		if (o->password == NULL || gopro_login_write(probe,
		    sizeof(probe), o->user, strlen(o->user), o->password,
		    strlen(o->password)) == 0)
			return GOPRO_E_INVALID;
		explicit_bzero(probe, sizeof(probe));
		a->user = strdup(o->user);
		a->password = strdup(o->password);
		if (a->user == NULL || a->password == NULL)
			return GOPRO_E_NOMEM;
	}
	return copy_options_1_1(a, o);
}

struct gopro_async *
gopro_async_new(const struct gopro_async_options *o, int *result)
{
	struct gopro_async *a;
	int rc;

	/* Callers built against 1.0 pass the 1.0 size: accept it. */
	if (o == NULL || o->size < offsetof(struct gopro_async_options,
	    source_address) || o->naddresses == 0 ||
	    o->addresses == NULL || o->max_pending == 0 ||
	    o->connect_timeout <= 0 || o->backoff_initial <= 0 ||
	    o->backoff_max < o->backoff_initial) {
		*result = GOPRO_E_INVALID;
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		*result = GOPRO_E_NOMEM;
		return NULL;
	}
	a->max_pending = o->max_pending;
	a->request_timeout = o->request_timeout;
	a->connect_timeout = o->connect_timeout;
	a->backoff_initial = o->backoff_initial;
	a->backoff_max = o->backoff_max;
	a->max_retries = o->max_retries;
	a->buffering = o->buffer_while_reconnecting != 0;
	a->max_reply = o->max_reply;
	a->on_state = o->on_state;
	a->state_arg = o->state_arg;
	a->rng = (uint64_t)(iowait_now() * 1e9) ^ (uint64_t)(uintptr_t)a;
	a->rng |= 1;
	if ((rc = copy_options(a, o)) != GOPRO_OK) {
		teardown(a);
		*result = rc;
		return NULL;
	}
	*result = GOPRO_OK;
	return a;
}

/* The ring of posts, sized like the request pipeline. */
static int
posts_init(struct gopro_async *a)
{
	if (a->posts != NULL)
		return GOPRO_OK;
	a->post_cap = a->max_pending < 64 ? 64 : a->max_pending;
	if ((a->posts = calloc(a->post_cap, sizeof(*a->posts))) == NULL)
		return GOPRO_E_NOMEM;
	if (pthread_mutex_init(&a->post_lock, NULL) != 0) {
		free(a->posts);
		a->posts = NULL;
		return GOPRO_E_NOMEM;
	}
	return GOPRO_OK;
}

int
gopro_async_attach(struct gopro_async *a, const struct gopro_loop_ops *ops,
    void *loop)
{
	if (a->ops.io_add != NULL || ops == NULL ||
	    ops->size < offsetof(struct gopro_loop_ops, wake) ||
	    ops->io_add == NULL || ops->io_set == NULL || ops->io_del == NULL ||
	    ops->timer_set == NULL)
		return GOPRO_E_INVALID;
	if (HAS_FIELD(ops, struct gopro_loop_ops, wake) && ops->wake != NULL &&
	    posts_init(a) != GOPRO_OK)
		return GOPRO_E_NOMEM;
	if ((a->cur = conn_new(a)) == NULL)
		return GOPRO_E_NOMEM;
	/* An adapter built against 1.0 has a shorter table: copy what it has. */
	memcpy(&a->ops, ops, ops->size < sizeof(a->ops) ? ops->size :
	    sizeof(a->ops));
	a->loop = loop;
	enter(a);
	conn_start(a, a->cur);
	leave(a);
	return GOPRO_OK;
}

void
gopro_async_free(struct gopro_async *a)
{
	if (a == NULL || a->freeing)
		return;
	a->freeing = true;
	if (a->depth == 0)
		teardown(a);
}

unsigned
gopro_async_pending(const struct gopro_async *a)
{
	unsigned n = 0;

	if (a->cur != NULL)
		n += a->cur->qlen - (a->cur->login_pending ? 1u : 0u);
	for (const struct gopro_io *c = a->draining; c != NULL; c = c->next)
		n += c->qlen - (c->login_pending ? 1u : 0u);
	return n;
}

const char *
gopro_async_error(const struct gopro_async *a)
{
	return a->err;
}
