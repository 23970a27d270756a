/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_conn.c - one gopro-bench thread: its own libev loop driving a
 * slice of the connections.
 *
 * The hot path is read, verify, refill, write: every readable event reads
 * as much as the socket holds, verifies every complete reply against the
 * pre-built templates, appends as many requests as the pipeline allows to
 * the output block (a memcpy each, no allocation) and writes them in one
 * call.  Closed loop keeps -P requests in flight per connection; open loop
 * sends each request when the schedule says it is due and timestamps it
 * with that intended time, so a stalled server shows in the latency
 * instead of silently slowing the client down (no coordinated omission).
 *
 * A GOAWAY stops sending on its connection; the replies still owed are
 * collected and the connection is replaced.  Whatever was still owed when
 * a connection closes is lost.  A ticker (100 ms) publishes progress,
 * notices the end of the run, SIGINT (through bench_shared.stop), requests
 * without a reply for --timeout, and in hold mode the phases main drives.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ev.h>

#include "config.h"
#include "bench.h"

#define TICK 0.1
#define OPEN_TICK 0.005
#define RETRY_DELAY 0.1
#define READS_PER_EVENT 16
/* Queue no more than this much output ahead of the socket. */
#define OUT_SOFT_MAX (256u * 1024u)

enum bconn_state {
	BC_CLOSED = 0,  /* not open; may be (re)opened */
	BC_CONNECTING,
	BC_HANDSHAKE,   /* --tls: connected, TLS handshake under way */
	BC_SETUP,       /* set-up LOGIN sent, waiting for LOGIN_ACK */
	BC_RUN,
	BC_HOLD_WAIT,   /* hold: verification heartbeat in flight */
	BC_HELD,        /* hold: verified, idle */
	BC_DONE,        /* finished for good */
};

struct bconn {
	struct bench_thread *t;
	unsigned id;              /* global index: schedule slot, source */
	int fd;
	struct ssl_st *ssl;       /* --tls */
	uint8_t state;
	bool writing;
	bool checked;             /* hold: the second verification ran */
	ev_io io;
	ev_timer timer;           /* open loop: next request; else retry */
	struct bench_stream rx;
	struct buf out;
	uint64_t seq;
	uint64_t k;               /* open loop: next schedule index */
	unsigned cyc;
	uint64_t since;           /* connect start, or last reply progress */
	uint64_t conn_sent;       /* requests on this connection */
	uint64_t conn_replies;    /* and their replies (--reconnect-every) */
};

struct bench_thread {
	const struct bench_shared *sh;
	const struct bench_opts *o;
	struct ev_loop *loop;
	struct bconn *c;
	unsigned index;
	unsigned first;
	unsigned n;
	unsigned next_open;       /* connections not opened yet: [next, n) */
	uint64_t open_start;
	uint64_t quota;           /* measured requests left (-n) */
	bool finishing;           /* send nothing more, close when answered */
	uint64_t drain_deadline;
	unsigned live;            /* descriptors open */
	unsigned established;
	int phase;
	uint64_t activity;        /* last connection established or read */
	uint64_t held, survived, failed;
	int connect_errno;        /* why the first connect failed, or 0 */
	ev_timer tick;
	ev_timer opener;
	struct bench_stats st;
	struct bench_progress pub;
	struct bench_tls *tls;    /* --tls: this thread's client context */
};

static void bconn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void bconn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void bconn_open(struct bconn *c);
static void bconn_fill(struct bconn *c, uint64_t now);
static void bconn_connect_failed(struct bconn *c, int e);

/* ------------------------------------------------------------ helpers */

static bool
hold_mode(const struct bench_thread *t)
{
	return t->o->hold > 0;
}

static void
bconn_set_writing(struct bconn *c, bool on)
{
	if (c->writing == on)
		return;
	c->writing = on;
	ev_io_stop(c->t->loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_READ | (on ? EV_WRITE : 0));
	ev_io_start(c->t->loop, &c->io);
}

static void
thread_maybe_done(struct bench_thread *t)
{
	if (t->finishing && t->live == 0)
		ev_break(t->loop, EVBREAK_ONE);
}

/* Close the descriptor; what was owed is counted by the caller first. */
static void
bconn_close(struct bconn *c, enum bconn_state next)
{
	struct bench_thread *t = c->t;

	if (c->fd >= 0) {
		ev_io_stop(t->loop, &c->io);
#ifdef HAVE_TLS
		bench_tls_close(c->ssl);
		c->ssl = NULL;
#endif
		close(c->fd);
		c->fd = -1;
		t->live--;
		if (c->state != BC_CONNECTING && c->state != BC_HANDSHAKE) {
			t->established--;
			t->st.closed++;
		}
	}
	ev_timer_stop(t->loop, &c->timer);
	c->writing = false;
	buf_reset(&c->out);
	bench_stream_reset(&c->rx);
	c->state = (uint8_t)next;
	thread_maybe_done(t);
}

/* The connection is over: retry later, or settle it in hold mode. */
static void
bconn_gone(struct bconn *c, bool soon)
{
	struct bench_thread *t = c->t;

	if (hold_mode(t)) {
		t->failed++;
		bconn_close(c, BC_DONE);
		return;
	}
	bconn_close(c, t->finishing ? BC_DONE : BC_CLOSED);
	if (t->finishing)
		return;
	ev_timer_set(&c->timer, soon ? 0.0 : RETRY_DELAY, 0.0);
	ev_timer_start(t->loop, &c->timer);
}

/* The server closed, reset, or broke the stream: what was owed is lost. */
static void
bconn_lost(struct bconn *c, bool server_said)
{
	if (!server_said && c->state != BC_CONNECTING)
		c->t->st.errors[BENCH_ERR_CLOSED]++;
	bench_stream_abandon(&c->rx, &c->t->st, false);
	bconn_gone(c, server_said);
}

/* ------------------------------------------------------------ writing */

static void
bconn_flush(struct bconn *c)
{
	size_t len = buf_len(&c->out);
	ssize_t n;

	if (len == 0)
		return;
#ifdef HAVE_TLS
	if (c->ssl != NULL)
		n = bench_tls_write(c->ssl, buf_head(&c->out), len);
	else
#endif
		n = write(c->fd, buf_head(&c->out), len);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR) {
			bconn_set_writing(c, true);
			return;
		}
		bconn_lost(c, c->rx.goaway || c->rx.doomed);
		return;
	}
	buf_consume(&c->out, (size_t)n);
	c->t->st.bytes_out += (uint64_t)n;
	bconn_set_writing(c, buf_len(&c->out) > 0);
}

/* Queue one request; false when the output is full for now. */
static bool
bconn_queue(struct bconn *c, enum bench_kind k, uint64_t t0, uint8_t flags)
{
	uint64_t every = c->t->o->reconnect_every;

	/* --reconnect-every: the rest goes on the next connection. */
	if (every > 0 && c->conn_sent >= every)
		return false;
	c->conn_sent++;
	const struct bench_plan *p = c->t->sh->plan;
	size_t size = p->t[k].request_len;

	if (buf_len(&c->out) > 0 && buf_len(&c->out) + size > OUT_SOFT_MAX)
		return false;
	if (buf_reserve(&c->out, size, SIZE_MAX / 2) < 0)
		return false;
	if (c->rx.qlen == 0)
		c->since = bench_now_ns();
	buf_commit(&c->out, bench_plan_write(p, k, c->seq, buf_tail(&c->out)));
	bench_stream_push(&c->rx, k, c->seq, t0, flags);
	c->seq++;
	return true;
}

static enum bench_kind
bconn_next_kind(struct bconn *c)
{
	const struct bench_shared *sh = c->t->sh;
	enum bench_kind k = (enum bench_kind)sh->cycle[c->cyc];

	if (++c->cyc == sh->opts->mix.total)
		c->cyc = 0;
	return k;
}

static void
thread_finish(struct bench_thread *t, uint64_t now)
{
	if (t->finishing)
		return;
	t->finishing = true;
	t->drain_deadline = now + (uint64_t)(t->o->timeout * 1e9);
	for (unsigned i = 0; i < t->n; i++)
		ev_timer_stop(t->loop, &t->c[i].timer);
	ev_timer_stop(t->loop, &t->opener);
	t->next_open = t->n;
}

/* Account one request sent at t0; false when the run is over. */
static bool
thread_take(struct bench_thread *t, uint64_t t0, uint8_t *flags)
{
	const struct bench_shared *sh = t->sh;

	if (t0 >= sh->end_ns || t->quota == 0) {
		thread_finish(t, t0);
		return false;
	}
	*flags = 0;
	if (t0 >= sh->measure_ns) {
		*flags = BENCH_PENDING_MEASURED;
		t->quota--;
		t->st.sent++;
	}
	return true;
}

static void
bconn_fill_closed(struct bconn *c, uint64_t now)
{
	struct bench_thread *t = c->t;
	uint8_t flags;

	while (c->rx.qlen < t->o->depth && !t->finishing) {
		enum bench_kind k = (enum bench_kind)t->sh->cycle[c->cyc];
		if (!thread_take(t, now, &flags))
			break;
		if (!bconn_queue(c, k, now, flags)) {
			/* Output full: give the request back. */
			if (flags) {
				t->quota++;
				t->st.sent--;
			}
			break;
		}
		bconn_next_kind(c);
	}
}

static void
bconn_fill_open(struct bconn *c, uint64_t now)
{
	struct bench_thread *t = c->t;
	const struct bench_sched *s = &t->sh->sched;
	uint64_t due = bench_sched_due(s, c->id, now), t0, next;
	uint8_t flags;

	while (c->k < due && c->rx.qlen < t->o->depth && !t->finishing) {
		t0 = bench_sched_intended(s, c->id, c->k);
		if (!thread_take(t, t0, &flags))
			break;
		if (!bconn_queue(c, (enum bench_kind)t->sh->cycle[c->cyc], t0,
		    flags)) {
			if (flags) {
				t->quota++;
				t->st.sent--;
			}
			break;
		}
		bconn_next_kind(c);
		c->k++;
	}
	if (t->finishing || c->k < due)
		return; /* the pipeline is full: replies will refill it */
	next = bench_sched_intended(s, c->id, c->k);
	ev_timer_stop(t->loop, &c->timer);
	ev_timer_set(&c->timer, next > now ? (double)(next - now) / 1e9 : 0.0,
	    0.0);
	ev_timer_start(t->loop, &c->timer);
}

static void
bconn_fill(struct bconn *c, uint64_t now)
{
	if (c->state != BC_RUN || c->rx.goaway || c->rx.doomed)
		return;
	if (c->t->o->rate > 0)
		bconn_fill_open(c, now);
	else
		bconn_fill_closed(c, now);
	bconn_flush(c);
}

/* ------------------------------------------------------------ replies */

static void
bconn_hold_verify(struct bconn *c)
{
	c->state = BC_HOLD_WAIT;
	if (bconn_queue(c, BENCH_HEARTBEAT, bench_now_ns(),
	    BENCH_PENDING_SETUP))
		bconn_flush(c);
}

/* Set-up replies: the login on connect, the hold heartbeats. */
static void
bconn_setup_result(struct bconn *c, uint64_t now)
{
	struct bench_thread *t = c->t;

	if (c->rx.setup_failed) {
		bench_stream_abandon(&c->rx, &t->st, false);
		bconn_gone(c, false);
		return;
	}
	if (c->rx.setup_done == 0)
		return;
	c->rx.setup_done = 0;
	if (c->state == BC_SETUP) {
		c->state = BC_RUN;
		bconn_fill(c, now);
	} else if (c->state == BC_HOLD_WAIT) {
		c->state = BC_HELD;
		if (c->checked)
			t->survived++;
		else
			t->held++;
	}
}

/* After a batch of replies: act on what the stream saw. */
static void
bconn_after_replies(struct bconn *c, uint64_t now)
{
	struct bench_thread *t = c->t;

	if (c->rx.broken) {
		bconn_lost(c, false);
		return;
	}
	if (c->rx.setup_done || c->rx.setup_failed) {
		bconn_setup_result(c, now);
		if (c->fd < 0)
			return;
	}
	if ((c->rx.goaway || t->finishing || (t->o->reconnect_every > 0 &&
	    c->conn_replies >= t->o->reconnect_every)) && c->rx.qlen == 0 &&
	    c->state == BC_RUN) {
		/* Everything owed arrived: replace (or end) the connection. */
		bconn_gone(c, true);
		return;
	}
	bconn_fill(c, now);
	if (t->finishing && c->fd >= 0 && c->rx.qlen == 0 &&
	    c->state == BC_RUN)
		bconn_gone(c, true);
}

/* Decrypted bytes held inside OpenSSL, which no event will report. */
static bool
bconn_pending(const struct bconn *c)
{
#ifdef HAVE_TLS
	return c->ssl != NULL && bench_tls_pending(c->ssl);
#else
	return false;
#endif
}

static void
bconn_read(struct bconn *c)
{
	struct bench_thread *t = c->t;
	uint64_t now = 0, before = t->st.ok + t->st.warmup;
	size_t room;
	uint8_t *p;
	ssize_t n;

	for (int i = 0; i < READS_PER_EVENT; i++) {
		if ((p = bench_stream_room(&c->rx, &room)) == NULL) {
			t->st.errors[BENCH_ERR_PROTOCOL]++;
			bconn_lost(c, false);
			return;
		}
#ifdef HAVE_TLS
		if (c->ssl != NULL)
			n = bench_tls_read(c->ssl, p, room);
		else
#endif
			n = read(c->fd, p, room);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			/* A GOAWAY or an ERROR frame announced the close. */
			bconn_lost(c, c->rx.goaway || c->rx.doomed ||
			    c->rx.last_error != 0);
			return;
		}
		if (n < 0)
			break;
		now = bench_now_ns();
		c->since = t->activity = now;
		t->st.bytes_in += (uint64_t)n;
		bench_stream_commit(&c->rx, (size_t)n);
		bench_stream_process(&c->rx, t->sh->plan, now, &t->st);
		if (c->rx.broken || ((size_t)n < room && !bconn_pending(c)))
			break;
	}
	c->conn_replies += t->st.ok + t->st.warmup - before;
	if (now != 0)
		bconn_after_replies(c, now);
}

/* ------------------------------------------------------------ connecting */

static void bconn_established(struct bconn *c);

#ifdef HAVE_TLS
/* One step of the TLS handshake; established when it is done. */
static void
bconn_handshake(struct bconn *c)
{
	bool want_write = false;
	int rc = bench_tls_handshake(c->ssl, &want_write);

	if (rc < 0) {
		bconn_connect_failed(c, EPROTO);
		return;
	}
	if (rc == 0) {
		c->writing = !want_write;	/* force the watcher's reset */
		bconn_set_writing(c, want_write);
		return;
	}
	if (bench_tls_resumed(c->ssl))
		c->t->st.tls_resumed++;
	else
		c->t->st.tls_full++;
	bconn_established(c);
}

static bool
bconn_start_tls(struct bconn *c)
{
	if (c->t->tls == NULL || c->ssl != NULL)
		return false;
	if ((c->ssl = bench_tls_conn(c->t->tls, c->fd)) == NULL) {
		bconn_connect_failed(c, ENOMEM);
		return true;
	}
	c->state = BC_HANDSHAKE;
	bconn_handshake(c);
	return true;
}
#endif

static void
bconn_established(struct bconn *c)
{
	struct bench_thread *t = c->t;
	uint64_t now;

#ifdef HAVE_TLS
	if (bconn_start_tls(c))
		return;
#endif
	now = bench_now_ns();
	c->conn_sent = c->conn_replies = 0;
	t->established++;
	t->st.opened++;
	c->since = t->activity = now;
	c->writing = true; /* force the watcher to be reset to EV_READ */
	bconn_set_writing(c, false);
	if (hold_mode(t)) {
		bconn_hold_verify(c);
		return;
	}
	if (t->o->user != NULL) {
		c->state = BC_SETUP;
		if (bconn_queue(c, BENCH_LOGIN, now, BENCH_PENDING_SETUP))
			bconn_flush(c);
		return;
	}
	c->state = BC_RUN;
	bconn_fill(c, now);
}

/* e: why (an errno); the first one is published for a fail-fast exit. */
static void
bconn_connect_failed(struct bconn *c, int e)
{
	if (c->t->connect_errno == 0)
		c->t->connect_errno = e;
	c->t->st.errors[BENCH_ERR_CONNECT]++;
	bconn_gone(c, false);
}

static void
bconn_connected_cb(struct bconn *c)
{
	int e = 0;
	socklen_t len = sizeof(e);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0 || e != 0) {
		bconn_connect_failed(c, e != 0 ? e : errno);
		return;
	}
	bconn_established(c);
}

static int
bconn_socket(struct bconn *c)
{
	const struct bench_opts *o = c->t->o;
	int fd, one = 1;

	fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->nsources > 0) {
		const struct sockaddr_storage *src =
		    &o->source[c->id % o->nsources];
		/* Pick the port at connect(): the 4-tuple decides, not bind. */
#ifdef IP_BIND_ADDRESS_NO_PORT
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
#endif
		if (bind(fd, (const struct sockaddr *)src,
		    src->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
		    sizeof(struct sockaddr_in6)) < 0) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void
bconn_open(struct bconn *c)
{
	struct bench_thread *t = c->t;

	c->fd = bconn_socket(c);
	if (c->fd < 0) {
		bconn_connect_failed(c, errno);
		return;
	}
	t->live++;
	c->state = BC_CONNECTING;
	c->since = bench_now_ns();
	ev_io_init(&c->io, bconn_io_cb, c->fd, EV_WRITE);
	c->io.data = c;
	c->writing = true;
	if (connect(c->fd, (const struct sockaddr *)&t->o->addr,
	    t->o->addrlen) == 0) {
		ev_io_start(t->loop, &c->io);
		bconn_established(c);
		return;
	}
	if (errno != EINPROGRESS) {
		bconn_connect_failed(c, errno);
		return;
	}
	ev_io_start(t->loop, &c->io);
}

/* ------------------------------------------------------------ events */

static void
bconn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct bconn *c = w->data;

	if (c->state == BC_CONNECTING) {
		bconn_connected_cb(c);
		return;
	}
#ifdef HAVE_TLS
	if (c->state == BC_HANDSHAKE) {
		bconn_handshake(c);
		return;
	}
#endif
	if (revents & EV_READ)
		bconn_read(c);
	if (c->fd >= 0 && (revents & EV_WRITE))
		bconn_flush(c);
}

static void
bconn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bconn *c = w->data;

	if (c->state == BC_CLOSED)
		bconn_open(c);
	else if (c->state == BC_RUN)
		bconn_fill(c, bench_now_ns());
}

/* Open the connections not opened yet, at --connect-rate. */
static void
thread_opener_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bench_thread *t = w->data;
	double rate = t->o->connect_rate / (double)t->o->threads;
	double secs = (double)(bench_now_ns() - t->open_start) / 1e9;
	uint64_t allowed = (uint64_t)(secs * rate) + 1;

	while (t->next_open < t->n && t->next_open < allowed)
		bconn_open(&t->c[t->next_open++]);
	if (t->next_open == t->n)
		ev_timer_stop(loop, w);
}

/*
 * No progress for --timeout: the replies owed are missing.  While
 * finishing, the drain deadline bounds the wait for slow connections too.
 */
static void
thread_check_timeouts(struct bench_thread *t, uint64_t now)
{
	uint64_t limit = (uint64_t)(t->o->timeout * 1e9);
	bool drained = t->finishing && now > t->drain_deadline;

	for (unsigned i = 0; i < t->n; i++) {
		struct bconn *c = &t->c[i];
		if (c->fd < 0 || (!drained && (now <= c->since ||
		    now - c->since <= limit)))
			continue;
		if (c->state == BC_CONNECTING)
			bconn_connect_failed(c, ETIMEDOUT);
		else if (c->rx.qlen > 0) {
			bench_stream_abandon(&c->rx, &t->st, true);
			bconn_gone(c, false);
		} else if (t->finishing)
			bconn_close(c, BC_DONE);
	}
}

/* Finishing: close the connections that owe nothing. */
static void
thread_close_idle(struct bench_thread *t)
{
	for (unsigned i = 0; i < t->n; i++) {
		struct bconn *c = &t->c[i];
		if (c->fd >= 0 && (c->rx.qlen == 0 ||
		    c->state == BC_CONNECTING))
			bconn_close(c, BC_DONE);
	}
}

static void
thread_hold_phase(struct bench_thread *t, int phase)
{
	if (phase == t->phase)
		return;
	t->phase = phase;
	if (phase == BENCH_PHASE_CHECK) {
		for (unsigned i = 0; i < t->n; i++)
			if (t->c[i].state == BC_HELD) {
				t->c[i].checked = true;
				bconn_hold_verify(&t->c[i]);
			}
	} else if (phase == BENCH_PHASE_FINISH) {
		thread_finish(t, bench_now_ns());
		for (unsigned i = 0; i < t->n; i++)
			if (t->c[i].fd >= 0)
				bconn_close(&t->c[i], BC_DONE);
		ev_break(t->loop, EVBREAK_ONE);
	}
}

/* Hold mode: connections not opened, connecting or being verified. */
static uint64_t
thread_pending(const struct bench_thread *t)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < t->n; i++) {
		uint8_t s = t->c[i].state;
		if (s == BC_CLOSED || s == BC_CONNECTING || s == BC_HOLD_WAIT)
			n++;
	}
	return n;
}

static void
thread_publish(struct bench_thread *t)
{
	struct bench_progress *p = &t->pub;

	__atomic_store_n(&p->ok, t->st.ok, __ATOMIC_RELAXED);
	__atomic_store_n(&p->errors, bench_stats_errors(&t->st),
	    __ATOMIC_RELAXED);
	__atomic_store_n(&p->lost, t->st.lost, __ATOMIC_RELAXED);
	__atomic_store_n(&p->open, t->established, __ATOMIC_RELAXED);
	__atomic_store_n(&p->opened, t->st.opened, __ATOMIC_RELAXED);
	__atomic_store_n(&p->connect_errno, t->connect_errno,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&p->held, t->held, __ATOMIC_RELAXED);
	__atomic_store_n(&p->survived, t->survived, __ATOMIC_RELAXED);
	__atomic_store_n(&p->failed, t->failed, __ATOMIC_RELAXED);
	if (hold_mode(t))
		__atomic_store_n(&p->pending, thread_pending(t),
		    __ATOMIC_RELAXED);
	__atomic_store_n(&p->phase, t->phase, __ATOMIC_RELEASE);
}

static void
thread_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bench_thread *t = w->data;
	uint64_t now = bench_now_ns();

	if (hold_mode(t))
		thread_hold_phase(t, __atomic_load_n(&t->sh->phase,
		    __ATOMIC_ACQUIRE));
	else if (__atomic_load_n(&t->sh->stop, __ATOMIC_RELAXED) ||
	    now >= t->sh->end_ns || t->quota == 0)
		thread_finish(t, now);
	else if (t->established == 0 && now > t->activity &&
	    now - t->activity > (uint64_t)(t->o->timeout * 1e9))
		thread_finish(t, now); /* nothing connects: give up */
	thread_check_timeouts(t, now);
	if (t->finishing)
		thread_close_idle(t);
	thread_publish(t);
	thread_maybe_done(t);
}

/* ------------------------------------------------------------ thread */

static int
bconn_init(struct bench_thread *t, struct bconn *c, unsigned id)
{
	const struct bench_plan *p = t->sh->plan;
	const struct bench_opts *o = t->o;
	size_t in_cap = hold_mode(t) ? 512 : 65536;
	size_t out_cap = (size_t)o->depth * p->max_request;

	if (out_cap > OUT_SOFT_MAX)
		out_cap = OUT_SOFT_MAX;
	if (hold_mode(t) || o->user != NULL)
		out_cap += p->max_request;
	c->t = t;
	c->id = id;
	c->fd = -1;
	c->cyc = id % o->mix.total;
	ev_timer_init(&c->timer, bconn_timer_cb, 0.0, 0.0);
	c->timer.data = c;
	if (buf_init(&c->out, out_cap) < 0)
		return -1;
	/* One more slot for the set-up LOGIN or heartbeat. */
	return bench_stream_init(&c->rx, o->depth + 1, in_cap);
}

struct bench_thread *
bench_thread_new(const struct bench_shared *sh, unsigned index,
    unsigned first, unsigned n, uint64_t quota)
{
	struct bench_thread *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->sh = sh;
	t->o = sh->opts;
	t->index = index;
	t->first = first;
	t->n = n;
	t->quota = quota;
	t->pub.pending = n; /* nothing is settled before the first tick */
	bench_stats_init(&t->st);
	t->c = calloc(n, sizeof(*t->c));
	t->loop = ev_loop_new(EVFLAG_AUTO);
	if (t->c == NULL || t->loop == NULL)
		goto fail;
#ifdef HAVE_TLS
	if (t->o->tls && (t->tls = bench_tls_new(!t->o->tls_no_resume)) ==
	    NULL)
		goto fail;
#endif
	for (unsigned i = 0; i < n; i++)
		if (bconn_init(t, &t->c[i], first + i) < 0)
			goto fail;
	return t;
fail:
	bench_thread_free(t);
	return NULL;
}

void
bench_thread_free(struct bench_thread *t)
{
	if (t == NULL)
		return;
	for (unsigned i = 0; t->c != NULL && i < t->n; i++) {
#ifdef HAVE_TLS
		bench_tls_close(t->c[i].ssl);
#endif
		if (t->c[i].fd >= 0 && t->c[i].t != NULL)
			close(t->c[i].fd);
		buf_free(&t->c[i].out);
		bench_stream_free(&t->c[i].rx);
	}
	free(t->c);
#ifdef HAVE_TLS
	bench_tls_free(t->tls);
#endif
	if (t->loop != NULL)
		ev_loop_destroy(t->loop);
	free(t);
}

void *
bench_thread_run(void *arg)
{
	struct bench_thread *t = arg;

	ev_timer_init(&t->tick, thread_tick_cb, TICK, TICK);
	t->tick.data = t;
	ev_timer_start(t->loop, &t->tick);
	t->open_start = t->activity = bench_now_ns();
	if (t->o->connect_rate > 0) {
		ev_timer_init(&t->opener, thread_opener_cb, 0.0, OPEN_TICK);
		t->opener.data = t;
		ev_timer_start(t->loop, &t->opener);
	} else {
		while (t->next_open < t->n)
			bconn_open(&t->c[t->next_open++]);
	}
	ev_run(t->loop, 0);
	thread_publish(t);
	__atomic_store_n(&t->pub.done, 1, __ATOMIC_RELEASE);
	return NULL;
}

const struct bench_stats *
bench_thread_stats(const struct bench_thread *t)
{
	return &t->st;
}

void
bench_thread_progress(const struct bench_thread *t, struct bench_progress *p)
{
	/* Acquire first: what follows is at least as new as the phase. */
	p->done = __atomic_load_n(&t->pub.done, __ATOMIC_ACQUIRE);
	p->phase = __atomic_load_n(&t->pub.phase, __ATOMIC_ACQUIRE);
	p->ok = __atomic_load_n(&t->pub.ok, __ATOMIC_RELAXED);
	p->errors = __atomic_load_n(&t->pub.errors, __ATOMIC_RELAXED);
	p->lost = __atomic_load_n(&t->pub.lost, __ATOMIC_RELAXED);
	p->open = __atomic_load_n(&t->pub.open, __ATOMIC_RELAXED);
	p->opened = __atomic_load_n(&t->pub.opened, __ATOMIC_RELAXED);
	p->connect_errno = __atomic_load_n(&t->pub.connect_errno,
	    __ATOMIC_RELAXED);
	p->held = __atomic_load_n(&t->pub.held, __ATOMIC_RELAXED);
	p->survived = __atomic_load_n(&t->pub.survived, __ATOMIC_RELAXED);
	p->failed = __atomic_load_n(&t->pub.failed, __ATOMIC_RELAXED);
	p->pending = __atomic_load_n(&t->pub.pending, __ATOMIC_RELAXED);
}
