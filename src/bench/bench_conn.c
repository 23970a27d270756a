/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_conn.c - one gopro-bench thread: its own libev loop driving a
 * slice of the connections, each a libgopro async client (gopro/async.h
 * through the libev adapter), so that the load generator measures the
 * client library its users get.
 *
 * The hot path is a reply callback: verify the reply against its request
 * (bench_reply_check, inline in bench.h), record its latency, and refill
 * the pipeline with new requests, which the client writes in one send
 * when the read is over.  The functions it passes through are static
 * inline, so that a reply and the request that replaces it cost the one
 * call into the client (gopro_async_request_frame, with the thread's copy
 * of the request's frame) rather than a chain of small calls: per request
 * those calls cost as much as the work.
 * Each request in flight holds an entry of the connection's pool (no
 * allocation per request); the entry, not the position, says what the
 * reply must be, because after a GOAWAY the replies of the old and the new
 * connection interleave.  Closed loop keeps -P requests in flight per
 * connection; open loop sends each request when the schedule says it is
 * due and timestamps it with that intended time, so a stalled server shows
 * in the latency instead of silently slowing the client down (no
 * coordinated omission).
 *
 * The client does the rest: the connect (from --source), TLS through
 * libgopro-tls's transport (a resumed session when it can), LOGIN on each
 * connection, the GOAWAY handover, the per-request timeout (--timeout),
 * and the reconnection after a loss.  --reconnect-every closes a context
 * and opens a new one.  A ticker (100 ms) publishes progress, notices the
 * end of the run and SIGINT (through bench_shared.stop), bounds the drain
 * at the end, and in hold mode acts on the phases main drives.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "bench.h"
#include "gopro/async.h"
#include "gopro/libev.h"
#ifdef HAVE_TLS
#include "gopro/tls_client.h"
#endif

#define TICK 0.1
#define OPEN_TICK 0.005
#define RETRY_DELAY 0.1

enum bconn_state {
	BC_CLOSED = 0,  /* no client; may be (re)opened */
	BC_CONNECTING,  /* a client, no connection up yet */
	BC_RUN,
	BC_HOLD_WAIT,   /* hold: verification heartbeat in flight */
	BC_HELD,        /* hold: verified, idle */
	BC_DONE,        /* finished for good */
};

/* A request in flight: what its reply must be. */
struct breq {
	struct bench_pending e;
	struct bconn *c;
	struct breq *next;        /* in the free list */
};

struct bconn {
	struct bench_thread *t;
	unsigned id;              /* global index: schedule slot, source */
	struct gopro_async *a;
	uint8_t state;
	bool up;                  /* a connection is established now */
	bool checked;             /* hold: the second verification ran */
	bool doomed;              /* a closing ERROR came: the server closes */
	bool timing_out;          /* a request expired: the rest are missing */
	bool cancel_missing;      /* freed at the drain deadline: missing */
	ev_timer timer;           /* open loop: next request; else reopen */
	struct breq *pool;
	struct breq *free;
	unsigned inflight;
	uint64_t seq;
	uint64_t k;               /* open loop: next schedule index */
	unsigned cyc;
	uint64_t conn_sent;       /* requests on this connection */
	uint64_t conn_replies;    /* and their replies (--reconnect-every) */
	uint64_t read_ns;         /* when its replies of this iteration came */
	unsigned read_iter;       /* the loop iteration read_ns belongs to */
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
	unsigned live;            /* clients open */
	unsigned established;
	int phase;
	uint64_t activity;        /* last connection established or reply */
	uint64_t held, survived, failed;
	char address[80];         /* the server, numeric: "[::1]:7000" */
	char connect_error[300];  /* why the first connect failed */
	bool connect_failed;
	ev_timer tick;
	ev_timer opener;
	struct bench_stats st;
	struct bench_progress pub;
	/*
	 * The thread's copy of each kind's request frame: a request that
	 * carries its number has it written in place, then the client
	 * copies the frame (one copy of the body per request, as before the
	 * port, not two).
	 */
	uint8_t *frame[BENCH_KINDS];
#ifdef HAVE_TLS
	struct gopro_tls_ctx *tls;
	struct gopro_transport tls_transport; /* libgopro-tls's, counted */
#endif
};

static void bconn_open(struct bconn *c);
static inline void bconn_fill(struct bconn *c, uint64_t now);

/* ------------------------------------------------------------ helpers */

static bool
hold_mode(const struct bench_thread *t)
{
	return t->o->hold > 0;
}

static void
thread_maybe_done(struct bench_thread *t)
{
	if (t->finishing && t->live == 0)
		ev_break(t->loop, EVBREAK_ONE);
}

static void
bconn_down(struct bconn *c)
{
	if (!c->up)
		return;
	c->up = false;
	c->t->established--;
	c->t->st.closed++;
}

/*
 * Free the client (the requests it still holds are called back with
 * GOPRO_E_CANCELLED, now or when the callback in progress returns).
 */
static void
bconn_close(struct bconn *c, enum bconn_state next)
{
	struct bench_thread *t = c->t;

	if (c->a != NULL) {
		struct gopro_async *a = c->a;

		/* Its cancelled requests find it no longer current. */
		c->a = NULL;
		bconn_down(c);
		gopro_async_free(a);
		t->live--;
	}
	ev_timer_stop(t->loop, &c->timer);
	c->state = (uint8_t)next;
	thread_maybe_done(t);
}

/* The connection is over: reopen later, or settle it in hold mode. */
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

/* ------------------------------------------------------------ requests */

static void bconn_reply(struct gopro_async *a, int result,
    const struct gopro_frame *f, void *arg);

/* Send one request; false when it cannot go now. */
static inline bool
bconn_queue(struct bconn *c, enum bench_kind k, uint64_t t0, uint8_t flags)
{
	struct bench_thread *t = c->t;
	const struct bench_plan *p = t->sh->plan;
	uint64_t every = t->o->reconnect_every;
	const struct bench_template *tp = &p->t[k];
	struct breq *r = c->free;
	size_t n = tp->request_len;

	/* --reconnect-every: the rest goes on the next connection. */
	if (r == NULL || (every > 0 && c->conn_sent >= every))
		return false;
	/* A request that carries its number gets it; others go as they are. */
	if (tp->seq_req_at != 0)
		bench_seq_put(t->frame[k] + tp->seq_req_at, c->seq);
	if (gopro_async_request_frame(c->a, t->frame[k], n, 0, bconn_reply,
	    r) != GOPRO_OK)
		return false;
	c->free = r->next;
	r->e = (struct bench_pending){ t0, c->seq, (uint8_t)k, flags };
	c->inflight++;
	c->conn_sent++;
	c->seq++;
	t->st.bytes_out += n;
	return true;
}

static inline enum bench_kind
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
static inline bool
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

/* The request could not go: give it back. */
static void
thread_untake(struct bench_thread *t, uint8_t flags)
{
	if (flags & BENCH_PENDING_MEASURED) {
		t->quota++;
		t->st.sent--;
	}
}

static inline void
bconn_fill_closed(struct bconn *c, uint64_t now)
{
	struct bench_thread *t = c->t;
	unsigned depth = t->o->depth;
	uint8_t flags;

	/* thread_take sets finishing when the run is over. */
	while (c->inflight < depth && !t->finishing) {
		enum bench_kind k = (enum bench_kind)t->sh->cycle[c->cyc];

		if (!thread_take(t, now, &flags))
			break;
		if (!bconn_queue(c, k, now, flags)) {
			thread_untake(t, flags);
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

	while (c->k < due && c->inflight < t->o->depth && !t->finishing) {
		t0 = bench_sched_intended(s, c->id, c->k);
		if (!thread_take(t, t0, &flags))
			break;
		if (!bconn_queue(c, (enum bench_kind)t->sh->cycle[c->cyc], t0,
		    flags)) {
			thread_untake(t, flags);
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

static inline void
bconn_fill(struct bconn *c, uint64_t now)
{
	if (c->state != BC_RUN || c->doomed)
		return;
	if (c->t->o->rate > 0)
		bconn_fill_open(c, now);
	else
		bconn_fill_closed(c, now);
}

/* ------------------------------------------------------------ replies */

static void
bconn_hold_verify(struct bconn *c)
{
	c->state = BC_HOLD_WAIT;
	if (!bconn_queue(c, BENCH_HEARTBEAT, bench_now_ns(),
	    BENCH_PENDING_SETUP))
		bconn_gone(c, false);
}

/* A hold-mode verification answered. */
static void
bconn_hold_result(struct bconn *c, enum bench_reply v)
{
	struct bench_thread *t = c->t;

	if (v != BENCH_REPLY_GOOD) {
		bconn_gone(c, false);
		return;
	}
	c->state = BC_HELD;
	if (c->checked)
		t->survived++;
	else
		t->held++;
}

/* After a reply on a running connection: refill, replace or end it. */
static inline void
bconn_after_reply(struct bconn *c, uint64_t now)
{
	struct bench_thread *t = c->t;
	uint64_t every = t->o->reconnect_every;

	if (c->inflight == 0 && (t->finishing || (every > 0 &&
	    c->conn_replies >= every))) {
		/* Everything owed arrived: replace (or end) the connection. */
		bconn_gone(c, true);
		return;
	}
	bconn_fill(c, now);
}

static inline void
bconn_release(struct bconn *c, struct breq *r)
{
	r->next = c->free;
	c->free = r;
	c->inflight--;
}

/* A request that got no reply, and why (a GOPRO_E_* result). */
static void
bconn_missing(struct bconn *c, struct gopro_async *a, int result,
    const struct bench_pending *e)
{
	struct bench_thread *t = c->t;

	if (result == GOPRO_E_CONNECT) {
		/*
		 * Queued for a replacement (after a GOAWAY) that could not
		 * connect: never sent, so neither sent nor lost.
		 */
		thread_untake(t, e->flags);
		t->st.bytes_out -= t->sh->plan->t[e->kind].request_len;
		return;
	}
	if (result == GOPRO_E_TIMEOUT && a == c->a)
		c->timing_out = true;
	bench_reply_missing(&t->st, result == GOPRO_E_TIMEOUT ||
	    (a == c->a && c->timing_out) ||
	    (result == GOPRO_E_CANCELLED && c->cancel_missing));
}

/*
 * The arrival time of a reply: the clock is read at the first reply of a
 * connection in each loop iteration, so once per read as a batch of
 * pipelined replies comes in one read, not once per reply.
 */
static inline uint64_t
bconn_arrival(struct bconn *c)
{
	unsigned it = ev_iteration(c->t->loop);

	if (c->read_ns == 0 || c->read_iter != it) {
		c->read_ns = bench_now_ns();
		c->read_iter = it;
	}
	return c->read_ns;
}

static void
bconn_reply(struct gopro_async *a, int result, const struct gopro_frame *f,
    void *arg)
{
	struct breq *r = arg;
	struct bconn *c = r->c;
	struct bench_thread *t = c->t;
	struct bench_pending e = r->e;
	enum bench_reply v;
	uint64_t now;

	bconn_release(c, r);
	if (result != GOPRO_OK) {
		bconn_missing(c, a, result, &e);
		return;
	}
	now = bconn_arrival(c);
	t->activity = now;
	v = bench_reply_check(t->sh->plan, &e, f, now, &t->st);
	/* A reply from a client closed already (a late one): counted only. */
	if (a != c->a)
		return;
	if (v == BENCH_REPLY_GOOD && (e.flags & BENCH_PENDING_SETUP) == 0)
		c->conn_replies++;
	if (v == BENCH_REPLY_CLOSING)
		c->doomed = true;
	if (v == BENCH_REPLY_BROKEN) {
		bconn_gone(c, false);
		return;
	}
	if (c->state == BC_HOLD_WAIT && (e.flags & BENCH_PENDING_SETUP))
		bconn_hold_result(c, v);
	else if (c->state == BC_RUN)
		bconn_after_reply(c, now);
}

/* ------------------------------------------------------------ states */

static void
bconn_connected(struct bconn *c)
{
	struct bench_thread *t = c->t;
	uint64_t now = bench_now_ns();

	c->up = true;
	c->doomed = c->timing_out = false;
	c->conn_sent = c->conn_replies = 0;
	t->established++;
	t->st.opened++;
	t->activity = now;
	if (t->o->user != NULL) {
		/* The client's LOGIN, answered with LOGIN_ACK. */
		t->st.setup++;
		t->st.bytes_out += t->sh->plan->t[BENCH_LOGIN].request_len;
	}
	if (hold_mode(t)) {
		if (c->state == BC_CONNECTING)
			bconn_hold_verify(c);
		return;
	}
	c->state = BC_RUN;
	bconn_fill(c, now);
}

/* Lost or not made: a connect failure counts, a loss unannounced too. */
static void
bconn_reconnecting(struct bconn *c, int result)
{
	struct bench_thread *t = c->t;

	if (!c->up) {
		t->st.errors[BENCH_ERR_CONNECT]++;
		if (!t->connect_failed) {
			snprintf(t->connect_error, sizeof(t->connect_error),
			    "%s", gopro_async_error(c->a));
			t->connect_failed = true;
		}
	} else if (result == GOPRO_E_PROTOCOL || result == GOPRO_E_TOO_LARGE) {
		t->st.errors[BENCH_ERR_PROTOCOL]++;
	} else if (result == GOPRO_E_SERVER) {
		t->st.errors[BENCH_ERR_UNEXPECTED]++;
	} else if (result == GOPRO_E_CLOSED && !c->doomed && !c->timing_out) {
		t->st.errors[BENCH_ERR_CLOSED]++;
	}
	bconn_down(c);
	c->timing_out = false;
	/* Hold mode settles a connection once; load mode lets it retry. */
	if (hold_mode(t) || t->finishing)
		bconn_gone(c, false);
}

static void
bconn_state(struct gopro_async *a, enum gopro_state state, int result,
    void *arg)
{
	struct bconn *c = arg;

	(void)a;
	switch (state) {
	case GOPRO_STATE_CONNECTED:
		bconn_connected(c);
		break;
	case GOPRO_STATE_GOAWAY:
		/* The client drains it and opens the replacement. */
		c->t->st.goaways++;
		bconn_down(c);
		if (hold_mode(c->t))
			bconn_gone(c, false);
		break;
	case GOPRO_STATE_RECONNECTING:
		bconn_reconnecting(c, result);
		break;
	case GOPRO_STATE_CLOSED:
		/* A refused LOGIN: the client gave up; try again later. */
		if (result == GOPRO_E_AUTH)
			c->t->st.errors[BENCH_ERR_SERVER]++;
		bconn_down(c);
		bconn_gone(c, false);
		break;
	}
}

/* ------------------------------------------------------------ opening */

#ifdef HAVE_TLS
/* A connection of libgopro-tls's transport, and the thread counting it. */
struct btls {
	struct bench_thread *t;
	struct gopro_tls *s;
};

static void *
bench_tls_open(void *arg, int fd)
{
	struct btls *b = malloc(sizeof(*b));

	if (b == NULL)
		return NULL;
	b->t = arg;
	if ((b->s = gopro_tls_transport()->open(b->t->tls, fd)) == NULL) {
		free(b);
		return NULL;
	}
	return b;
}

/* libgopro-tls's handshake, each one counted as resumed or full. */
static int
bench_tls_handshake(void *p, int *events, char *err, size_t errlen)
{
	struct btls *b = p;
	int rc = gopro_tls_transport()->handshake(b->s, events, err, errlen);

	if (rc == 1 && gopro_tls_resumed(b->s))
		b->t->st.tls_resumed++;
	else if (rc == 1)
		b->t->st.tls_full++;
	return rc;
}

static ssize_t
bench_tls_read(void *p, void *buf, size_t len)
{
	return gopro_tls_transport()->read(((struct btls *)p)->s, buf, len);
}

static ssize_t
bench_tls_write(void *p, const void *buf, size_t len)
{
	return gopro_tls_transport()->write(((struct btls *)p)->s, buf, len);
}

static int
bench_tls_pending(void *p)
{
	return gopro_tls_transport()->pending(((struct btls *)p)->s);
}

static void
bench_tls_close(void *p)
{
	gopro_tls_transport()->close(((struct btls *)p)->s);
	free(p);
}

static int
thread_tls_init(struct bench_thread *t)
{
	struct gopro_tls_options to;
	char err[256];

	/* A load generator: the server's certificate is not checked. */
	gopro_tls_options_init(&to);
	to.no_verify = true;
	to.no_resume = t->o->tls_no_resume;
	if ((t->tls = gopro_tls_ctx_new(&to, err, sizeof(err))) == NULL)
		return -1;
	t->tls_transport = (struct gopro_transport){
		sizeof(struct gopro_transport), bench_tls_open,
		bench_tls_handshake, bench_tls_read, bench_tls_write,
		bench_tls_pending, bench_tls_close,
	};
	return 0;
}
#endif

/* "host:port" of a numeric address; the client resolves nothing then. */
static void
numeric_address(const struct sockaddr_storage *ss, socklen_t len, char *out,
    size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?", port[8] = "0";

	(void)getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host),
	    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(out, outlen, ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
	    host, port);
}

static void
bconn_options(struct bconn *c, struct gopro_async_options *ao,
    const char *const *address, char *source, size_t srclen)
{
	struct bench_thread *t = c->t;
	const struct bench_opts *o = t->o;

	gopro_async_options_init(ao);
	ao->addresses = address;
	ao->naddresses = 1;
	ao->user = o->user;
	ao->password = o->password;
	ao->max_pending = o->depth + 1;
	ao->request_timeout = o->timeout;
	ao->connect_timeout = o->timeout;
	ao->backoff_initial = ao->backoff_max = RETRY_DELAY;
	ao->max_reply = t->sh->plan->max_reply_body;
	ao->on_state = bconn_state;
	ao->state_arg = c;
	if (o->nsources > 0) {
		const struct sockaddr_storage *src =
		    &o->source[c->id % o->nsources];

		(void)getnameinfo((const struct sockaddr *)src, sizeof(*src),
		    source, (socklen_t)srclen, NULL, 0, NI_NUMERICHOST);
		ao->source_address = source;
	}
#ifdef HAVE_TLS
	if (t->tls != NULL) {
		ao->transport = &t->tls_transport;
		ao->transport_arg = t;
	}
#endif
}

static void
bconn_open_failed(struct bconn *c, int rc)
{
	struct bench_thread *t = c->t;

	t->st.errors[BENCH_ERR_CONNECT]++;
	if (!t->connect_failed) {
		snprintf(t->connect_error, sizeof(t->connect_error),
		    "cannot connect to %s: %s", t->address, gopro_strerror(rc));
		t->connect_failed = true;
	}
	bconn_gone(c, false);
}

static void
bconn_open(struct bconn *c)
{
	struct bench_thread *t = c->t;
	const char *address[1] = { t->address };
	struct gopro_async_options ao;
	char source[INET6_ADDRSTRLEN];
	int rc;

	bconn_options(c, &ao, address, source, sizeof(source));
	if ((c->a = gopro_async_new(&ao, &rc)) == NULL) {
		bconn_open_failed(c, rc);
		return;
	}
	t->live++;
	c->state = BC_CONNECTING;
	c->up = c->doomed = c->timing_out = c->cancel_missing = false;
	/* Attaching connects; a failure comes back through bconn_state. */
	if ((rc = gopro_libev_attach(c->a, t->loop)) != GOPRO_OK) {
		bconn_close(c, BC_CLOSED);
		bconn_open_failed(c, rc);
	}
}

/* ------------------------------------------------------------ events */

static void
bconn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bconn *c = w->data;

	(void)loop;
	(void)revents;
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

	(void)revents;
	while (t->next_open < t->n && t->next_open < allowed)
		bconn_open(&t->c[t->next_open++]);
	if (t->next_open == t->n)
		ev_timer_stop(loop, w);
}

/*
 * Finishing: close the connections that owe nothing, and past the drain
 * deadline every one (what they owe counts as missing replies).
 */
static void
thread_close_idle(struct bench_thread *t, uint64_t now)
{
	bool drained = now > t->drain_deadline;

	for (unsigned i = 0; i < t->n; i++) {
		struct bconn *c = &t->c[i];

		if (c->a == NULL)
			continue;
		/* A GOAWAY's replacement may still owe replies: wait. */
		if (drained || c->inflight == 0) {
			c->cancel_missing = drained;
			bconn_close(c, BC_DONE);
		}
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
			if (t->c[i].a != NULL)
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
	/* Written once, then published: main reads the string. */
	if (t->connect_failed)
		__atomic_store_n(&p->connect_error, t->connect_error,
		    __ATOMIC_RELEASE);
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

	(void)loop;
	(void)revents;
	if (hold_mode(t))
		thread_hold_phase(t, __atomic_load_n(&t->sh->phase,
		    __ATOMIC_ACQUIRE));
	else if (__atomic_load_n(&t->sh->stop, __ATOMIC_RELAXED) ||
	    now >= t->sh->end_ns || t->quota == 0)
		thread_finish(t, now);
	else if (t->established == 0 && now > t->activity &&
	    now - t->activity > (uint64_t)(t->o->timeout * 1e9))
		thread_finish(t, now); /* nothing connects: give up */
	if (t->finishing)
		thread_close_idle(t, now);
	thread_publish(t);
	thread_maybe_done(t);
}

/* ------------------------------------------------------------ thread */

static int
bconn_init(struct bench_thread *t, struct bconn *c, unsigned id)
{
	const struct bench_opts *o = t->o;
	/* One more entry for the hold-mode heartbeat. */
	unsigned n = o->depth + 1;

	c->t = t;
	c->id = id;
	c->cyc = id % o->mix.total;
	ev_timer_init(&c->timer, bconn_timer_cb, 0.0, 0.0);
	c->timer.data = c;
	if ((c->pool = calloc(n, sizeof(*c->pool))) == NULL)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		c->pool[i].c = c;
		c->pool[i].next = i + 1 < n ? &c->pool[i + 1] : NULL;
	}
	c->free = c->pool;
	return 0;
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
	numeric_address(&t->o->addr, t->o->addrlen, t->address,
	    sizeof(t->address));
	t->c = calloc(n, sizeof(*t->c));
	t->loop = ev_loop_new(EVFLAG_AUTO);
	if (t->c == NULL || t->loop == NULL)
		goto fail;
	for (int k = 0; k < BENCH_KINDS; k++) {
		const struct bench_template *tp = &sh->plan->t[k];

		if ((t->frame[k] = malloc(tp->request_len)) == NULL)
			goto fail;
		memcpy(t->frame[k], tp->request, tp->request_len);
	}
#ifdef HAVE_TLS
	if (t->o->tls && thread_tls_init(t) < 0)
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
		gopro_async_free(t->c[i].a);
		free(t->c[i].pool);
	}
	free(t->c);
	for (int k = 0; k < BENCH_KINDS; k++)
		free(t->frame[k]);
#ifdef HAVE_TLS
	/* After the clients: their connections use it. */
	gopro_tls_ctx_free(t->tls);
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
	p->connect_error = __atomic_load_n(&t->pub.connect_error,
	    __ATOMIC_ACQUIRE);
	p->held = __atomic_load_n(&t->pub.held, __ATOMIC_RELAXED);
	p->survived = __atomic_load_n(&t->pub.survived, __ATOMIC_RELAXED);
	p->failed = __atomic_load_n(&t->pub.failed, __ATOMIC_RELAXED);
	p->pending = __atomic_load_n(&t->pub.pending, __ATOMIC_RELAXED);
}
