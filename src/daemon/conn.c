/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conn.c - serving one connection.
 *
 * Reading: bytes go straight into the connection's input block (taken from
 * the worker's pool only while something is buffered), every complete frame
 * in it is answered in one pass, and the replies are appended to the output
 * block.  Writing: the worker calls conn_flush once per loop iteration for
 * every connection with new output, so a batch of pipelined requests costs
 * one read and one write.
 *
 * This file owns every limit of a connection: the maximum frame, the output
 * water marks (backpressure), the idle, frame, send and GOAWAY clocks, the
 * login attempt limit, and how a connection is closed: after its last reply
 * is written, with a half-close and a short linger so the reply is not
 * destroyed by a reset.
 *
 * Bytes move through transport.h, the layer below: plain read and write on
 * the socket, or TLS.  A TLS connection first runs its handshake (the
 * "tls" section below) under its own clock; after that the only
 * differences are that a read may wait for the socket to be writable (and
 * a write for it to be readable), and that OpenSSL may hold decrypted bytes
 * that no readiness event reports: such a connection goes on the worker's
 * tls_pending list and is read again before the loop sleeps.
 *
 * On a listener in proxy_protocol the connection first waits for the PROXY
 * header of the load balancer (proxy.c parses it), under the frame_timeout
 * clock; the client address it gives replaces the peer for everything after
 * (login rate limit, logs), and the bytes behind it are frames as usual.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "auth.h"
#include "conn.h"
#include "decode.h"
#include "gopro/gopro.h"
#include "log.h"
#include "module.h"
#include "proxy.h"
#include "transport.h"

/* Reads per readiness event: bounded so one client cannot starve others. */
#define READS_PER_EVENT 8
/* Smallest room worth a read() when the input block is almost full. */
#define READ_MIN_ROOM 2048

static void conn_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void conn_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void conn_process(struct conn *c);
static void conn_finish(struct conn *c);
/* Room for conn_tls_text, the TLS part of a connection's log line. */
#define TLS_TEXT_MAX 320
static const char *conn_tls_text(const struct conn *c, char *buf,
    size_t len);

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ watchers */

/* Come back for bytes OpenSSL holds before the loop sleeps. */
static void
conn_note_pending(struct conn *c)
{
	if (c->tls_pending || !c->reading || !transport_pending(c))
		return;
	c->tls_pending = true;
	TAILQ_INSERT_TAIL(&c->w->tls_pending, c, pending_link);
}

static void
conn_unnote_pending(struct conn *c)
{
	if (!c->tls_pending)
		return;
	c->tls_pending = false;
	TAILQ_REMOVE(&c->w->tls_pending, c, pending_link);
}

static void
conn_set_reading(struct conn *c, bool on)
{
	if (on == c->reading)
		return;
	c->reading = on;
	if (on) {
		ev_io_start(c->w->loop, &c->rio);
		conn_note_pending(c);
	} else {
		ev_io_stop(c->w->loop, &c->rio);
		conn_unnote_pending(c);
	}
}

static void
conn_set_writing(struct conn *c, bool on)
{
	if (on == c->writing)
		return;
	c->writing = on;
	if (on)
		ev_io_start(c->w->loop, &c->wio);
	else
		ev_io_stop(c->w->loop, &c->wio);
}

/*
 * Read only when nothing holds the connection back.  A TLS read that waits
 * for writability is retried from the write watcher instead; a TLS write
 * that waits for readability needs the read watcher whatever else holds.
 */
static void
conn_update_reading(struct conn *c)
{
	conn_set_reading(c, !c->dead && (c->lingering || c->write_wants_read ||
	    (!c->read_wants_write && !c->paused && !c->auth_pending &&
	    !c->closing && !c->eof && !c->inflight_full)));
}

/* ------------------------------------------------------------ clocks */

static void
conn_set_clock(struct conn *c, enum conn_clock k)
{
	struct worker *w = c->w;

	/*
	 * Restarting the running clock moves c to the tail of its list, which
	 * cannot bring the timer's due time forward: no need to re-arm it.
	 */
	if (k == c->clock && k != CLOCK_NONE) {
		c->clock_since = ev_now(w->loop);
		if (TAILQ_NEXT(c, clock_link) != NULL) {
			TAILQ_REMOVE(&w->clocks[k], c, clock_link);
			TAILQ_INSERT_TAIL(&w->clocks[k], c, clock_link);
		}
		return;
	}
	if (c->clock != CLOCK_NONE)
		TAILQ_REMOVE(&w->clocks[c->clock], c, clock_link);
	c->clock = CLOCK_NONE;
	if (k == CLOCK_NONE || w->clock_timeout[k] <= 0)
		return;
	c->clock = (uint8_t)k;
	c->clock_since = ev_now(w->loop);
	TAILQ_INSERT_TAIL(&w->clocks[k], c, clock_link);
	worker_clock_changed(w);
}

/*
 * Choose the clock that runs for c now.  activity says that bytes arrived
 * (the idle clock restarts), frame_done that a frame completed (a partial
 * frame now in the buffer is a new one, its clock restarts).
 */
static void
conn_update_clock(struct conn *c, bool activity, bool frame_done)
{
	enum conn_clock k;

	if (c->dead || c->lingering)
		return;
	/* While a module works, the request's deadline is the clock. */
	if (c->paused || c->auth_pending || c->closing || c->eof ||
	    !pipeline_queue_empty(&c->q))
		k = CLOCK_NONE;
	else if (buf_len(&c->in) > 0 || c->proxy_wait)
		k = CLOCK_FRAME;
	else if (c->handshaking)
		k = CLOCK_HANDSHAKE;	/* never restarted by activity */
	else if (c->goaway_sent)
		k = buf_len(&c->out) == 0 ? CLOCK_GRACE : CLOCK_NONE;
	else
		k = CLOCK_IDLE;
	if (k == c->clock && (k == CLOCK_HANDSHAKE ||
	    !(k == CLOCK_FRAME ? frame_done : activity)))
		return;
	if (k == CLOCK_GRACE && c->w->clock_timeout[CLOCK_GRACE] <= 0) {
		/* goaway_grace 0: close as soon as the GOAWAY is written. */
		c->closing = true;
		conn_finish(c);
		return;
	}
	conn_set_clock(c, k);
}

static void
conn_set_sending(struct conn *c, bool on, bool progress)
{
	struct worker *w = c->w;

	if (c->sending && (!on || progress)) {
		TAILQ_REMOVE(&w->sending, c, send_link);
		c->sending = false;
	}
	if (on && !c->sending && w->conf->send_timeout > 0) {
		c->send_since = ev_now(w->loop);
		TAILQ_INSERT_TAIL(&w->sending, c, send_link);
		c->sending = true;
		worker_clock_changed(w);
	}
}

/* ------------------------------------------------------------ buffers */

static void
conn_release_buffers(struct conn *c)
{
	if (buf_len(&c->in) == 0 && c->in.data != NULL) {
		worker_block_put(c->w, c->in.data, c->in.cap);
		memset(&c->in, 0, sizeof(c->in));
		c->in_need = 0;
	}
	if (buf_len(&c->out) == 0 && c->out.data != NULL) {
		worker_block_put(c->w, c->out.data, c->out.cap);
		memset(&c->out, 0, sizeof(c->out));
	}
}

static int
conn_take_block(struct conn *c, struct buf *b)
{
	if (b->data != NULL)
		return 0;
	b->data = worker_block_get(c->w);
	if (b->data == NULL)
		return -1;
	b->cap = WORKER_BLOCK_SIZE;
	b->start = b->end = 0;
	return 0;
}

/*
 * Room for the next read.  buf_reserve_read grows the block in step with
 * what has arrived (a header alone holds one pool block, not the body it
 * declares) and never lets the wish for READ_MIN_ROOM past a frame's end
 * refuse a valid frame near max_body.
 */
static int
conn_reserve_input(struct conn *c)
{
	size_t max = GOPRO_HEADER_SIZE + (size_t)c->w->conf->max_body;

	if (max < WORKER_BLOCK_SIZE)
		max = WORKER_BLOCK_SIZE;
	if (conn_take_block(c, &c->in) < 0)
		return -1;
	return buf_reserve_read(&c->in, c->in_need, READ_MIN_ROOM, max);
}

/* Room for a reply of n bytes at the tail of the output; NULL on ENOMEM. */
static uint8_t *
conn_out_grow(struct conn *c, size_t n)
{
	if (conn_take_block(c, &c->out) < 0 ||
	    buf_reserve(&c->out, n, SIZE_MAX / 2) < 0)
		return NULL;
	return buf_tail(&c->out);
}

/* Room for n more bytes of output; inline, the common case is a test. */
static inline uint8_t *
conn_out_reserve(struct conn *c, size_t n)
{
	if (c->out.data != NULL && buf_room(&c->out) >= n)
		return buf_tail(&c->out);
	return conn_out_grow(c, n);
}

static inline void
conn_out_commit(struct conn *c, size_t n, enum stats_counter sent)
{
	buf_commit(&c->out, n);
	c->out_replies++;
	c->frames_out++;
	stats_inc(c->w->stats, sent);
	if (!c->flushing) {
		c->flushing = true;
		TAILQ_INSERT_TAIL(&c->w->flushing, c, flush_link);
	}
}

/* ------------------------------------------------------------ replies */

static void conn_abort(struct conn *c, enum stats_counter why);

/*
 * Append a reply frame (len: the bytes of iov) to the output now: its
 * turn has come.  Inline: the module path (conn_pl_emit) is the hot one.
 */
static inline void
conn_put_frame(struct conn *c, uint8_t cmd, const struct iovec *iov,
    int iovcnt, size_t len, enum stats_counter sent)
{
	size_t total = GOPRO_HEADER_SIZE + len;
	uint8_t *p;

	if ((p = conn_out_reserve(c, total)) == NULL) {
		log_warn("connection %d: no memory for a %zu-byte reply", c->fd,
		    total);
		conn_abort(c, STATS_conn_reset);
		return;
	}
	gopro_header_write(p, cmd, (uint32_t)len);
	p += GOPRO_HEADER_SIZE;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	conn_out_commit(c, total, sent);
}

/*
 * The core's reply: straight out, or behind the requests still at a
 * module (replies leave in request order).
 */
static void
conn_reply_frame(struct conn *c, uint8_t cmd, const uint8_t *body,
    size_t len, enum stats_counter sent)
{
	struct iovec iov = { (void *)(uintptr_t)body, len };

	if (pipeline_queue_empty(&c->q)) {
		conn_put_frame(c, cmd, &iov, 1, len, sent);
		return;
	}
	if (pipeline_hold(&c->w->pl, &c->q, cmd, body, len) < 0) {
		log_warn("connection %d: no memory to hold a reply", c->fd);
		conn_abort(c, STATS_conn_reset);
	}
}

static const enum stats_counter error_counter[GOPRO_ERR_MAX + 1] = {
	[GOPRO_ERR_BAD_MAGIC] = STATS_errors_bad_magic,
	[GOPRO_ERR_BAD_VERSION] = STATS_errors_bad_version,
	[GOPRO_ERR_TOO_LARGE] = STATS_errors_too_large,
	[GOPRO_ERR_UNKNOWN_COMMAND] = STATS_errors_unknown_command,
	[GOPRO_ERR_AUTH_REQUIRED] = STATS_errors_auth_required,
	[GOPRO_ERR_AUTH_FAILED] = STATS_errors_auth_failed,
	[GOPRO_ERR_BUSY] = STATS_errors_busy,
	[GOPRO_ERR_TIMEOUT] = STATS_errors_timeout,
	[GOPRO_ERR_MALFORMED] = STATS_errors_malformed,
	[GOPRO_ERR_UNAVAILABLE] = STATS_errors_unavailable,
	[GOPRO_ERR_REQUEST_TIMEOUT] = STATS_errors_request_timeout,
};

/* Append an ERROR frame to the output now; the connection stays open. */
static void
conn_put_error(struct conn *c, uint16_t code, const char *text)
{
	uint8_t *p = conn_out_reserve(c, GOPRO_STATUS_FRAME_MAX);
	size_t n;

	if (p == NULL) {
		conn_abort(c, STATS_conn_reset);
		return;
	}
	n = gopro_error_write(p, GOPRO_STATUS_FRAME_MAX, code, text);
	if (code <= GOPRO_ERR_MAX && code > 0)
		stats_inc(c->w->stats, error_counter[code]);
	conn_out_commit(c, n, STATS_frames_sent_error);
}

/* Queue an ERROR frame in its turn; the connection stays open. */
static void
conn_reply_error(struct conn *c, uint16_t code, const char *text)
{
	if (pipeline_queue_empty(&c->q)) {
		conn_put_error(c, code, text);
		return;
	}
	if (pipeline_hold_error(&c->w->pl, &c->q, code, text) < 0) {
		log_warn("connection %d: no memory to hold a reply", c->fd);
		conn_abort(c, STATS_conn_reset);
	}
}

/* Queue an ERROR frame, then close once it is written. */
static void
conn_fail(struct conn *c, uint16_t code, const char *text)
{
	log_debug("connection %d: %s, closing", c->fd, text);
	conn_reply_error(c, code, text);
	c->close_reason = text;
	c->closing = true;
	conn_update_reading(c);
}

/* ------------------------------------------------------------ login */

static void
conn_login_ok(struct conn *c)
{
	c->logged_in = true;
	c->failed_logins = 0;
	stats_inc(c->w->stats, STATS_logins_ok);
	conn_reply_frame(c, GOPRO_CMD_LOGIN_ACK, (const uint8_t *)"OK", 2,
	    STATS_frames_sent_login_ack);
}

/*
 * The line fail2ban and an operator look for: who tried which user from
 * where.  The user comes from the network, so only printable ASCII of it
 * is shown.
 */
static void
conn_log_login_failure(const struct conn *c, const uint8_t *user,
    size_t user_len, const char *why)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 20);
	char from[PROXY_ADDR_TEXT], name[GOPRO_USER_MAX + 1];
	size_t i;

	for (i = 0; i < user_len && i < GOPRO_USER_MAX; i++)
		name[i] = user[i] >= 0x20 && user[i] < 0x7f && user[i] != '"' ?
		    (char)user[i] : '?';
	name[i] = '\0';
	log_rl(&rl, LOG_NOTICE, "failed login for user \"%s\" from %s: %s",
	    name, proxy_addr_format(&c->peer.sa, from, sizeof(from)), why);
}

/* A failed login: code is 6, or 9 for a malformed body. */
static void
conn_login_failed(struct conn *c, uint16_t code)
{
	c->logged_in = false;
	c->user[0] = '\0';
	if (c->failed_logins < UINT16_MAX)
		c->failed_logins++;
	stats_inc(c->w->stats, STATS_logins_failed);
	if (c->failed_logins >= c->w->conf->auth.max_attempts)
		conn_fail(c, GOPRO_ERR_AUTH_FAILED, "too many failed logins");
	else if (code == GOPRO_ERR_MALFORMED)
		conn_reply_error(c, code, "malformed LOGIN body");
	else
		conn_reply_error(c, code, "authentication failed");
}

/*
 * A LOGIN the server could not check (the hashing queue was full, or the
 * check waited auth.queue_timeout in it): a busy server, not a wrong
 * password.  ERROR 7, the connection stays open for a later LOGIN, and the
 * attempt does not count against max_attempts.
 */
static void
conn_login_busy(struct conn *c, const char *why)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 5);
	char from[PROXY_ADDR_TEXT];

	c->logged_in = false;
	log_rl(&rl, LOG_WARNING, "login from %s not checked: %s; answered "
	    "ERROR 7 (server busy)", proxy_addr_format(&c->peer.sa, from,
	    sizeof(from)), why);
	conn_reply_error(c, GOPRO_ERR_BUSY, "server busy: login not checked, "
	    "retry later");
}

static void
conn_login_done(void *ctx, enum auth_result result, const uint8_t *user,
    size_t user_len)
{
	struct conn *c = ctx;

	c->auth_pending = false;
	if (c->dead) {
		/* Closed while the hash ran: free it now. */
		TAILQ_INSERT_TAIL(&c->w->closed, c, clock_link);
		return;
	}
	if (result == AUTH_OK)
		conn_login_ok(c);
	else if (result == AUTH_BUSY)
		conn_login_busy(c, "it waited auth.queue_timeout for a hashing "
		    "thread");
	else {
		conn_log_login_failure(c, user, user_len, "wrong user or "
		    "password");
		conn_login_failed(c, GOPRO_ERR_AUTH_FAILED);
	}
	conn_update_reading(c);
	conn_process(c);
}

static void
conn_login(struct conn *c, const struct gopro_frame *f)
{
	struct worker *w = c->w;
	struct gopro_login l;

	if (gopro_login_parse(f->body, f->header.length, &l) < 0) {
		conn_log_login_failure(c, NULL, 0, "malformed LOGIN body");
		conn_login_failed(c, GOPRO_ERR_MALFORMED);
		return;
	}
	/* Whose login it is, for modules once it succeeds. */
	memcpy(c->user, l.user, l.user_len);
	c->user[l.user_len] = '\0';
	if (w->login_limit != NULL &&
	    !auth_ratelimit_allow(w->login_limit, &c->peer.sa, ev_now(w->loop))) {
		stats_inc(w->stats, STATS_logins_rate_limited);
		conn_log_login_failure(c, l.user, l.user_len, "login rate "
		    "limit of the address");
		conn_login_failed(c, GOPRO_ERR_AUTH_FAILED);
		return;
	}
	if (w->users == NULL) {
		conn_login_ok(c);
		return;
	}
	if (auth_pool_submit(w->auth_pool, w->users, l.user, l.user_len,
	    l.password, l.password_len, conn_login_done, c) < 0) {
		conn_login_busy(c, errno == EAGAIN ? "the hashing queue is "
		    "full" : strerror(errno));
		return;
	}
	c->auth_pending = true;
	conn_update_reading(c);
}

/* ------------------------------------------------------------ requests */

/*
 * MESSAGE and every other command go to the module that serves them (the
 * echo module serves MESSAGE by default); HEARTBEAT and LOGIN never do.
 */
static void
conn_to_module(struct conn *c, const struct gopro_frame *f)
{
	struct worker *w = c->w;
	uint8_t cmd = f->header.command;
	struct module_inst *mi = w->mods.by_command[cmd];

	stats_inc(w->stats, cmd == GOPRO_CMD_MESSAGE ?
	    STATS_frames_received_message : STATS_frames_received_other);
	if (mi == NULL) {
		conn_reply_error(c, GOPRO_ERR_UNKNOWN_COMMAND,
		    "unknown command");
		return;
	}
	if (w->conf->auth.required && !c->logged_in) {
		conn_reply_error(c, GOPRO_ERR_AUTH_REQUIRED, "login required");
		return;
	}
	w->mods.last = mi;
	if (pipeline_dispatch(&w->pl, &c->q, &mi->h, cmd, f->body,
	    f->header.length, (struct gopro_conn *)c) < 0) {
		conn_reply_error(c, GOPRO_ERR_UNAVAILABLE, "out of memory");
		return;
	}
	/*
	 * max_inflight at the modules: stop reading (backpressure) until
	 * conn_pl_released sees room again.  Not full before the dispatch,
	 * or conn_process would not have read the frame.
	 */
	if (pipeline_queue_full(&c->q)) {
		c->inflight_full = true;
		conn_update_reading(c);
	}
}

static void
conn_dispatch(struct conn *c, const struct gopro_frame *f)
{
	struct stats_entry *st = c->w->stats;

	switch (f->header.command) {
	case GOPRO_CMD_HEARTBEAT:
		stats_inc(st, STATS_frames_received_heartbeat);
		conn_reply_frame(c, GOPRO_CMD_HEARTBEAT, f->body,
		    f->header.length, STATS_frames_sent_heartbeat);
		break;
	case GOPRO_CMD_LOGIN:
		stats_inc(st, STATS_frames_received_login);
		conn_login(c, f);
		break;
	default:
		conn_to_module(c, f);
		break;
	}
}

static const char *
decode_error_text(enum gopro_decode_status st)
{
	switch (st) {
	case GOPRO_DECODE_BAD_MAGIC:
		return "bad magic";
	case GOPRO_DECODE_BAD_VERSION:
		return "unsupported version";
	default:
		return "frame too large";
	}
}

/* A frame the codec refused: the connection closes, and the log says who. */
static void
conn_protocol_error(struct conn *c, uint16_t code, const char *text)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 10);
	char from[PROXY_ADDR_TEXT];

	log_rl(&rl, LOG_NOTICE, "connection from %s closed: protocol error: "
	    "%s", proxy_addr_format(&c->peer.sa, from, sizeof(from)), text);
	conn_fail(c, code, text);
}

static void
conn_queue_goaway(struct conn *c)
{
	uint8_t *p = conn_out_reserve(c, GOPRO_STATUS_FRAME_MAX);
	const char *text = c->w->goaway_reason == GOPRO_GOAWAY_RELOAD ?
	    "server reloading" : "server shutting down";

	if (p == NULL) {
		conn_abort(c, STATS_conn_reset);
		return;
	}
	c->goaway_sent = true;
	conn_out_commit(c, gopro_goaway_write(p, GOPRO_STATUS_FRAME_MAX,
	    c->w->goaway_reason, text), STATS_frames_sent_goaway);
}

/* Stop reading when the output passes the high-water mark. */
static bool
conn_check_backpressure(struct conn *c)
{
	if (buf_len(&c->out) <= c->w->conf->output_high_water)
		return false;
	c->paused = true;
	stats_inc(c->w->stats, STATS_backpressure);
	conn_update_reading(c);
	return true;
}

/* The client address the header gave becomes the peer. */
static void
conn_proxy_adopt(struct conn *c, const struct proxy_result *r)
{
	char client[PROXY_ADDR_TEXT], via[PROXY_ADDR_TEXT];

	if (!r->has_addr)
		return;	/* LOCAL (health check) or UNKNOWN: the proxy itself */
	stats_inc(c->w->stats, STATS_conn_proxied);
	if (log_get_level() >= LOG_DEBUG)
		log_debug("connection %d: client %s via proxy %s (PROXY v%u)",
		    c->fd, proxy_addr_format(&r->src.sa, client, sizeof(client)),
		    proxy_addr_format(&c->peer.sa, via, sizeof(via)),
		    r->version);
	memset(&c->peer, 0, sizeof(c->peer));
	if (r->src.sa.sa_family == AF_INET)
		c->peer.in4 = r->src.in4;
	else
		c->peer.in6 = r->src.in6;
	c->recent_ticket = stats_note_client(c->w->stats, &c->peer.sa, true,
	    (int64_t)ev_now(c->w->loop));
}

/*
 * The PROXY header that opens a connection on a PROXY listener: 0 once it
 * is consumed, -1 while it is incomplete or when it was invalid (then the
 * connection is closed: what follows cannot be trusted to be frames).
 */
static int
conn_proxy_header(struct conn *c)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 5);
	struct proxy_result r;
	char via[PROXY_ADDR_TEXT];

	switch (proxy_parse(buf_head(&c->in), buf_len(&c->in), &r)) {
	case PROXY_NEED_MORE:
		return -1;
	case PROXY_INVALID:
		stats_inc(c->w->stats, STATS_proxy_rejected);
		log_rl(&rl, LOG_NOTICE, "connection from %s: invalid PROXY "
		    "header: %s; closing", proxy_addr_format(&c->peer.sa, via,
		    sizeof(via)), r.error);
		conn_close_now(c);
		return -1;
	case PROXY_DONE:
		break;
	}
	buf_consume(&c->in, r.size);
	c->proxy_wait = false;
	conn_proxy_adopt(c, &r);
	return 0;
}

/*
 * Answer every complete frame in the input, in order, until the input is
 * exhausted or something holds the connection back (backpressure, a login
 * being verified, a protocol error).
 */
static void
conn_process(struct conn *c)
{
	const uint32_t max_body = c->w->conf->max_body;
	enum gopro_decode_status st = GOPRO_DECODE_NEED_MORE;
	struct gopro_frame f;
	bool frame_done = false;
	size_t need = 0;

	if (c->proxy_wait && conn_proxy_header(c) < 0)
		return;
	if (c->handshaking)
		return;
	c->in_process = true;
	while (!c->paused && !c->auth_pending && !c->closing && !c->dead &&
	    !c->inflight_full) {
		/* The whole frame is there (the common case), or ask why not. */
		if (!gopro_decode_whole(buf_head(&c->in), buf_len(&c->in),
		    max_body, &f) && (st = gopro_decode(buf_head(&c->in),
		    buf_len(&c->in), max_body, &f, &need)) != GOPRO_DECODE_FRAME)
			break;
		st = GOPRO_DECODE_FRAME;
		c->batch_frames++;
		c->frames_in++;
		conn_dispatch(c, &f);
		buf_consume(&c->in, f.size);
		frame_done = true;
		if (conn_check_backpressure(c))
			break;
	}
	c->in_process = false;
	if (c->dead)
		return;
	if (st == GOPRO_DECODE_NEED_MORE)
		c->in_need = buf_len(&c->in) > 0 ? need : 0;
	else if (st != GOPRO_DECODE_FRAME && !c->closing)
		conn_protocol_error(c, gopro_decode_error_code(st),
		    decode_error_text(st));
	if (c->goaway_wanted && !c->goaway_sent && st == GOPRO_DECODE_NEED_MORE &&
	    !c->paused && !c->auth_pending && !c->closing &&
	    pipeline_queue_empty(&c->q))
		conn_queue_goaway(c);
	conn_update_clock(c, false, frame_done);
}

/* ------------------------------------------------------------ reading */

/* After the client's FIN: answer what is complete, then close. */
static void
conn_on_eof(struct conn *c)
{
	c->eof = true;
	if (c->close_reason == NULL)
		c->close_reason = "client closed";
	conn_update_reading(c);
	conn_set_clock(c, CLOCK_NONE);
	if (!c->auth_pending && pipeline_queue_empty(&c->q) &&
	    buf_len(&c->out) == 0 && !c->flushing)
		conn_close_now(c);
}

/* Lingering: read and drop whatever the client still sends. */
static void
conn_discard(struct conn *c)
{
	static uint8_t sink[16384];
	ssize_t n;
	int i = 0;

	/*
	 * Bounded like a normal read: a client that floods us while we
	 * linger must not hold the loop; the linger clock ends it anyway.
	 */
	do
		n = read(c->fd, sink, sizeof(sink));
	while (n > 0 && ++i < READS_PER_EVENT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		conn_close_now(c);
}

static void
conn_read_error(struct conn *c)
{
	log_debug("connection %d: read: %s", c->fd, strerror(errno));
	conn_abort(c, STATS_conn_reset);
}

/* A TLS read needs the socket writable first: wait for that instead. */
static void
conn_read_wait_write(struct conn *c)
{
	c->read_wants_write = true;
	conn_set_writing(c, true);
	conn_update_reading(c);
}

static void
conn_read(struct conn *c)
{
	bool got = false;
	size_t room;
	ssize_t n;

	for (int i = 0; i < READS_PER_EVENT && c->reading; i++) {
		if (conn_reserve_input(c) < 0) {
			log_warn("connection %d: no room for input", c->fd);
			conn_abort(c, STATS_conn_reset);
			return;
		}
		room = buf_room(&c->in);
		n = transport_read(c, buf_tail(&c->in), room);
		if (n == 0) {
			conn_on_eof(c);
			break;
		}
		if (n < 0) {
			if (errno == EAGAIN && transport_wants_write(c, false))
				conn_read_wait_write(c);
			else if (errno != EAGAIN && errno != EINTR)
				conn_read_error(c);
			break;
		}
		if (!got && c->batch_frames == 0)
			c->batch_start_ns = now_ns();
		got = true;
		buf_commit(&c->in, (size_t)n);
		c->bytes_in += (uint64_t)n;
		stats_add(c->w->stats, STATS_bytes_received, (uint64_t)n);
		if (c->tls != NULL)
			stats_add(c->w->stats, STATS_tls_app_bytes_received,
			    (uint64_t)n);
		conn_process(c);
		if ((size_t)n < room)
			break;
	}
	if (c->dead)
		return;
	if (got)
		conn_update_clock(c, true, false);
	if (buf_len(&c->out) == 0)
		conn_release_buffers(c);
	conn_note_pending(c);
}

static void conn_tls_input(struct conn *c);

static void
conn_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = io->data;

	if (c->lingering) {
		conn_discard(c);
		return;
	}
	if (c->write_wants_read) {
		/* The TLS write that waited for this goes first. */
		c->write_wants_read = false;
		conn_update_reading(c);
		conn_flush(c);
		if (c->dead || !c->reading)
			return;
	}
	if (c->handshaking)
		conn_tls_input(c);
	else
		conn_read(c);
}

void
conn_read_pending(struct conn *c)
{
	conn_unnote_pending(c);
	if (!c->dead && c->reading && !c->handshaking)
		conn_read(c);
}

/* ------------------------------------------------------------ writing */

static void
conn_observe_batch(struct conn *c)
{
	if (c->batch_frames == 0)
		return;
	stats_observe(c->w->stats, now_ns() - c->batch_start_ns,
	    c->batch_frames);
	c->batch_frames = 0;
}

/* Output fell below the low-water mark: read and answer again. */
static void
conn_resume(struct conn *c)
{
	c->paused = false;
	conn_update_reading(c);
	conn_process(c);
}

static void
conn_after_write(struct conn *c)
{
	if (buf_len(&c->out) > 0)
		return;
	c->out_replies = 0;
	conn_set_writing(c, false);
	conn_set_sending(c, false, false);
	if (c->closing || c->eof) {
		/* The requests still at modules get their replies first. */
		if (!c->auth_pending && pipeline_queue_empty(&c->q))
			conn_finish(c);
		return;
	}
	conn_update_clock(c, false, false);
	conn_release_buffers(c);
}

void
conn_flush(struct conn *c)
{
	size_t len = buf_len(&c->out);
	ssize_t n;

	c->flushing = false;
	if (c->dead || len == 0)
		return;
	/*
	 * The counters of requests answered inline reach the shared segment
	 * before their replies reach the client: one who reads the stats
	 * after a reply sees it counted.
	 */
	pipeline_flush_stats(&c->w->pl);
	n = transport_write(c, buf_head(&c->out), len);
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		log_debug("connection %d: write: %s", c->fd, strerror(errno));
		conn_abort(c, STATS_conn_reset);
		return;
	}
	conn_observe_batch(c);
	if (n > 0) {
		buf_consume(&c->out, (size_t)n);
		c->bytes_out += (uint64_t)n;
		stats_add(c->w->stats, STATS_bytes_sent, (uint64_t)n);
		if (c->tls != NULL)
			stats_add(c->w->stats, STATS_tls_app_bytes_sent,
			    (uint64_t)n);
	}
	if (buf_len(&c->out) > 0) {
		if (n < 0 && !transport_wants_write(c, true)) {
			/* A TLS write that must read first. */
			c->write_wants_read = true;
			conn_update_reading(c);
		} else
			conn_set_writing(c, true);
		conn_set_sending(c, true, n > 0);
	}
	if (c->paused && buf_len(&c->out) <= c->w->conf->output_low_water)
		conn_resume(c);
	conn_after_write(c);
}

static void conn_handshake(struct conn *c);

static void
conn_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = io->data;

	if (c->handshaking) {
		conn_handshake(c);
		return;
	}
	if (c->read_wants_write) {
		/* The TLS read that waited for this goes first. */
		c->read_wants_write = false;
		conn_set_writing(c, false);
		conn_update_reading(c);
		conn_read(c);
		if (c->dead)
			return;
	}
	if (!c->flushing)
		conn_flush(c);
}

/* ------------------------------------------------------------ closing */

/*
 * Everything is written.  If the client already closed its side, close;
 * otherwise half-close and linger so our last bytes are not destroyed by a
 * reset if the client still sends.
 */
static void
conn_finish(struct conn *c)
{
	if (c->eof || c->dead) {
		conn_close_now(c);
		return;
	}
	if (c->lingering)
		return;
	transport_shutdown(c);
	c->lingering = true;
	c->closing = true;
	conn_set_clock(c, CLOCK_LINGER);
	conn_release_buffers(c);
	conn_update_reading(c);
}

/* Requests read whose replies never fully left: counted as lost. */
static uint64_t
conn_count_unanswered(const struct conn *c)
{
	const uint8_t *p = buf_head(&c->in);
	size_t left = buf_len(&c->in);
	struct gopro_frame f;
	uint64_t n = (c->auth_pending ? 1 : 0) + c->q.n;

	if (buf_len(&c->out) > 0)
		n += c->out_replies;
	while (gopro_decode(p, left, c->w->conf->max_body, &f, NULL) ==
	    GOPRO_DECODE_FRAME) {
		n++;
		p += f.size;
		left -= f.size;
	}
	return n;
}

static void
conn_abort(struct conn *c, enum stats_counter why)
{
	if (c->dead)
		return;
	stats_inc(c->w->stats, why);
	stats_add(c->w->stats, STATS_requests_lost, conn_count_unanswered(c));
	c->close_reason = why == STATS_conn_send_timeout ? "send timeout" :
	    why == STATS_conn_drain_timeout ? "drain timeout" : "reset";
	conn_close_now(c);
}

/*
 * log_connections: the connection's life in one line, as HAProxy's tcplog
 * gives it: the client (the PROXY header's address behind a proxy), how
 * long, frames and bytes each way, and why it closed.
 */
static void
conn_log_close(const struct conn *c)
{
	char from[PROXY_ADDR_TEXT], tls[TLS_TEXT_MAX];

	log_info("connection from %s closed after %.3fs: %" PRIu64 " frames, %"
	    PRIu64 " bytes in; %" PRIu64 " frames, %" PRIu64 " bytes out; %s%s",
	    proxy_addr_format(&c->peer.sa, from, sizeof(from)),
	    ev_now(c->w->loop) - c->opened, c->frames_in, c->bytes_in,
	    c->frames_out, c->bytes_out, c->close_reason != NULL ?
	    c->close_reason : c->goaway_sent ? "drained after GOAWAY" :
	    "closed", conn_tls_text(c, tls, sizeof(tls)));
}

void
conn_close_now(struct conn *c)
{
	struct worker *w = c->w;

	if (c->dead)
		return;
	c->dead = true;
	conn_set_reading(c, false);
	conn_set_writing(c, false);
	conn_set_clock(c, CLOCK_NONE);
	conn_set_sending(c, false, false);
	if (c->flushing) {
		TAILQ_REMOVE(&w->flushing, c, flush_link);
		c->flushing = false;
	}
	/* Its requests at modules are cancelled; late replies are dropped. */
	pipeline_queue_cancel(&w->pl, &c->q);
	modules_conn_close(&w->mods, c);
	conn_unnote_pending(c);
	/* Before the TLS session goes: the line names its version and client. */
	if (w->conf->log_connections)
		conn_log_close(c);
	if (c->tls != NULL)
		stats_gauge_set(&w->stats->tls_open, --w->ntls);
	transport_close(c);
	log_debug("connection %d closed", c->fd);
	c->fd = -1;
	TAILQ_REMOVE(&w->all, c, all_link);
	w->nconns--;
	stats_inc(w->stats, STATS_conn_closed);
	stats_gauge_set(&w->stats->conn_active, w->nconns);
	/* A pending login callback still points at c: it frees c later. */
	if (!c->auth_pending)
		TAILQ_INSERT_TAIL(&w->closed, c, clock_link);
	worker_conn_gone(w);
}

void
conn_free(struct conn *c)
{
	buf_reset(&c->in);
	buf_reset(&c->out);
	conn_release_buffers(c);
	free(c->tls_identity);
	free(c);
}

/* ------------------------------------------------------------ tls */
#ifdef HAVE_TLS

/*
 * The PROXY header on a TLS listener.  The bytes after it are the TLS
 * stream, which OpenSSL reads from the socket itself, so only the header's
 * bytes may be taken: peek, parse what is held plus what was peeked, and
 * read no further than the header's end.
 */
static ssize_t
conn_proxy_read_exact(struct conn *c)
{
	size_t held = buf_len(&c->in), room;
	struct proxy_result r;
	ssize_t n;

	if (conn_reserve_input(c) < 0) {
		errno = ENOMEM;
		return -1;
	}
	room = PROXY_V2_HEADER + PROXY_V2_MAX_PAYLOAD - held;
	if (room > buf_room(&c->in))
		room = buf_room(&c->in);
	n = recv(c->fd, buf_tail(&c->in), room, MSG_PEEK);
	if (n <= 0)
		return n;
	if (proxy_parse(buf_head(&c->in), held + (size_t)n, &r) == PROXY_DONE)
		n = (ssize_t)(r.size - held);
	return read(c->fd, buf_tail(&c->in), (size_t)n);
}

static void
conn_tls_counters(struct conn *c)
{
	struct stats_entry *st = c->w->stats;

	stats_inc(st, tls_conn_resumed(c->tls) ? STATS_tls_handshakes_resumed :
	    STATS_tls_handshakes_full);
	stats_inc(st, tls_conn_version(c->tls) >= 0x0304 ?
	    STATS_tls_version_1_3 : STATS_tls_version_1_2);
	if (c->w->conf->tls.ktls && tls_conn_ktls(c->tls))
		stats_inc(st, STATS_tls_ktls);
}

/*
 * The verified certificate's name, for goproctl stats and modules: the one
 * tls.identity picks, or the CN (as the log line names it) when that is
 * off.  Without memory, the connection simply has no identity to show.
 */
static void
conn_tls_note_identity(struct conn *c)
{
	enum tls_identity which = c->w->conf->tls.identity;
	char id[TLS_IDENTITY_MAX];

	if (which == TLS_IDENTITY_OFF)
		which = TLS_IDENTITY_CN;
	if (tls_conn_identity(c->tls, which, id, sizeof(id)) < 0)
		return;
	stats_note_identity(c->w->stats, c->recent_ticket, id);
	c->tls_identity = strdup(id);
}

/* The handshake is done: count it, and log in by certificate if asked. */
static void
conn_tls_established(struct conn *c)
{
	const struct conf_tls *t = &c->w->conf->tls;
	char id[TLS_IDENTITY_MAX];

	conn_tls_counters(c);
	conn_tls_note_identity(c);
	if (t->identity == TLS_IDENTITY_OFF ||
	    tls_conn_identity(c->tls, t->identity, id, sizeof(id)) < 0) {
		log_debug("connection %d: TLS established", c->fd);
		return;
	}
	c->logged_in = true;
	stats_inc(c->w->stats, STATS_tls_identity_logins);
	log_debug("connection %d: TLS client certificate logs in \"%s\"",
	    c->fd, id);
}

static void
conn_tls_failed(struct conn *c)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 5);
	static const enum stats_counter counter[] = {
		[TLS_FAIL_PROTOCOL] = STATS_tls_failed_protocol,
		[TLS_FAIL_CERTIFICATE] = STATS_tls_failed_certificate,
		[TLS_FAIL_CLOSED] = STATS_tls_failed_closed,
	};
	char why[256], from[PROXY_ADDR_TEXT];
	enum tls_failure f = tls_conn_failure(c->tls, why, sizeof(why));

	stats_inc(c->w->stats, counter[f]);
	/* A client that connects and leaves (a health check) is no news. */
	log_rl(&rl, f == TLS_FAIL_CLOSED ? LOG_DEBUG : LOG_NOTICE,
	    "connection from %s: TLS handshake failed: %s; closing",
	    proxy_addr_format(&c->peer.sa, from, sizeof(from)), why);
	conn_close_now(c);
}

/* No complete handshake within tls.handshake_timeout. */
static void
conn_tls_late(struct conn *c)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 5);
	char from[PROXY_ADDR_TEXT];

	stats_inc(c->w->stats, STATS_tls_failed_timeout);
	log_rl(&rl, LOG_NOTICE, "connection from %s: no TLS handshake within "
	    "tls.handshake_timeout; closing", proxy_addr_format(&c->peer.sa,
	    from, sizeof(from)));
	conn_close_now(c);
}

/*
 * One step of the handshake, from either watcher.  It waits for the one
 * event OpenSSL asks for, so neither watcher can spin.
 */
static void
conn_handshake(struct conn *c)
{
	switch (tls_conn_handshake(c->tls)) {
	case TLS_HS_AGAIN:
		c->read_wants_write = transport_wants_write(c, false);
		conn_set_writing(c, c->read_wants_write);
		conn_update_reading(c);
		return;
	case TLS_HS_FAILED:
		conn_tls_failed(c);
		return;
	case TLS_HS_DONE:
		break;
	}
	c->handshaking = false;
	c->read_wants_write = false;
	conn_set_writing(c, false);
	conn_tls_established(c);
	conn_update_reading(c);
	conn_update_clock(c, true, false);
	/* A drain that began during the handshake sends its GOAWAY now. */
	conn_process(c);
	conn_note_pending(c);
}

/* Readable while handshaking: the PROXY header first, if any. */
static void
conn_tls_input(struct conn *c)
{
	ssize_t n;

	if (!c->proxy_wait) {
		conn_handshake(c);
		return;
	}
	n = conn_proxy_read_exact(c);
	if (n == 0) {
		conn_close_now(c);
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_read_error(c);
		return;
	}
	buf_commit(&c->in, (size_t)n);
	c->bytes_in += (uint64_t)n;
	stats_add(c->w->stats, STATS_bytes_received, (uint64_t)n);
	if (conn_proxy_header(c) < 0)
		return;	/* incomplete, or invalid and closed */
	conn_release_buffers(c);
	conn_update_clock(c, true, false);
	conn_handshake(c);
}

/*
 * For the connection's log line: "; TLSv1.3 resumed, client certificate
 * \"device-1\"" (the CN of a verified client certificate), "" for plain.
 */
static const char *
conn_tls_text(const struct conn *c, char *buf, size_t len)
{
	char id[TLS_IDENTITY_MAX];

	buf[0] = '\0';
	if (c->tls == NULL || c->handshaking)
		return buf;
	if (tls_conn_identity(c->tls, TLS_IDENTITY_CN, id, sizeof(id)) < 0)
		id[0] = '\0';
	snprintf(buf, len, "; %s%s%s%s%s", tls_conn_version_name(c->tls),
	    tls_conn_resumed(c->tls) ? " resumed" : "", id[0] ?
	    ", client certificate \"" : "", id, id[0] ? "\"" : "");
	return buf;
}

/*
 * Where tls.c adds the record bytes of the worker's sessions: its two wire
 * counters, received then sent (NULL when the stats are compiled out).
 */
static uint64_t *
conn_tls_wire(struct conn *c)
{
	_Static_assert(STATS_tls_wire_bytes_sent ==
	    STATS_tls_wire_bytes_received + 1, "tls.c's wire[0], wire[1]");
#ifdef GOPRO_NO_STATS
	return NULL;
#else
	return &c->w->stats->v.counter[STATS_tls_wire_bytes_received];
#endif
}

static int
conn_tls_start(struct conn *c, struct tls_ctx *ctx)
{
	/* The same counters for every connection of the worker. */
	tls_count_wire(conn_tls_wire(c));
	if ((c->tls = tls_conn_new(ctx, c->fd)) == NULL) {
		log_warnx("connection %d: no memory for a TLS session", c->fd);
		conn_close_now(c);
		return -1;
	}
	stats_gauge_set(&c->w->stats->tls_open, ++c->w->ntls);
	c->handshaking = true;
	return 0;
}
#else /* !HAVE_TLS: no listener is a TLS listener (conf.c refuses them) */
static const char *
conn_tls_text(const struct conn *c, char *buf, size_t len)
{
	buf[0] = '\0';
	return buf;
}

static int
conn_tls_start(struct conn *c, struct tls_ctx *ctx)
{
	conn_close_now(c);
	return -1;
}

static void
conn_tls_input(struct conn *c)
{
}

static void
conn_handshake(struct conn *c)
{
}

static void
conn_tls_late(struct conn *c)
{
	conn_close_now(c);
}
#endif /* HAVE_TLS */

/* ------------------------------------------------------------ events */

/* No complete PROXY header within frame_timeout. */
static void
conn_proxy_late(struct conn *c)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 5);
	char via[PROXY_ADDR_TEXT];

	stats_inc(c->w->stats, STATS_conn_frame_timeout);
	stats_inc(c->w->stats, STATS_proxy_rejected);
	log_rl(&rl, LOG_NOTICE, "connection from %s: no complete PROXY header "
	    "within frame_timeout; closing", proxy_addr_format(&c->peer.sa, via,
	    sizeof(via)));
	conn_close_now(c);
}

void
conn_clock_expired(struct conn *c)
{
	switch (c->clock) {
	case CLOCK_IDLE:
		stats_inc(c->w->stats, STATS_conn_idle_timeout);
		conn_set_clock(c, CLOCK_NONE);
		conn_fail(c, GOPRO_ERR_TIMEOUT, "idle timeout");
		break;
	case CLOCK_FRAME:
		if (c->proxy_wait) {
			conn_proxy_late(c);
			break;
		}
		stats_inc(c->w->stats, STATS_conn_frame_timeout);
		conn_set_clock(c, CLOCK_NONE);
		conn_fail(c, GOPRO_ERR_TIMEOUT, "incomplete frame timeout");
		break;
	case CLOCK_GRACE:
		conn_set_clock(c, CLOCK_NONE);
		c->closing = true;
		conn_finish(c);
		break;
	case CLOCK_HANDSHAKE:
		conn_tls_late(c);
		break;
	default:
		conn_close_now(c);
		break;
	}
}

void
conn_send_expired(struct conn *c)
{
	log_debug("connection %d: send timeout", c->fd);
	conn_abort(c, STATS_conn_send_timeout);
}

void
conn_drain_expired(struct conn *c)
{
	conn_abort(c, STATS_conn_drain_timeout);
}

void
conn_goaway(struct conn *c)
{
	if (c->dead || c->goaway_wanted)
		return;
	c->goaway_wanted = true;
	if (c->lingering || c->closing || c->eof)
		return;
	conn_process(c);
}

struct conn *
conn_new(struct worker *w, int fd, const struct sockaddr *peer,
    socklen_t peerlen, bool proxy, struct tls_ctx *tls)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		close(fd);
		return NULL;
	}
	c->w = w;
	c->fd = fd;
	c->opened = ev_now(w->loop);
	if (peerlen > sizeof(c->peer))
		peerlen = sizeof(c->peer);
	memcpy(&c->peer, peer, peerlen);
	c->proxy_wait = proxy;
	/* On a PROXY listener the peer is the balancer: wait for the header. */
	if (!proxy)
		c->recent_ticket = stats_note_client(w->stats, peer, false,
		    (int64_t)ev_now(w->loop));
	ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	pipeline_queue_init(&c->q, c);
	modules_conn_open(&w->mods, c);
	w->nconns++;
	TAILQ_INSERT_TAIL(&w->all, c, all_link);
	stats_inc(w->stats, STATS_conn_accepted);
	stats_gauge_set(&w->stats->conn_active, w->nconns);
	if (tls != NULL && conn_tls_start(c, tls) < 0)
		return NULL;
	conn_update_reading(c);
	conn_update_clock(c, true, false);
	if (w->draining)
		conn_goaway(c);
	return c;
}

void
conn_refuse(struct worker *w, int fd, uint16_t code, const char *text)
{
	uint8_t frame[GOPRO_STATUS_FRAME_MAX];
	size_t n = gopro_error_write(frame, sizeof(frame), code, text);

	/* Best effort: a fresh socket has room for one small frame. */
	if (write(fd, frame, n) == (ssize_t)n) {
		stats_add(w->stats, STATS_bytes_sent, n);
		stats_inc(w->stats, STATS_frames_sent_error);
		if (code <= GOPRO_ERR_MAX)
			stats_inc(w->stats, error_counter[code]);
	}
	shutdown(fd, SHUT_WR);
	close(fd);
}

/* ------------------------------------------------------------ modules */

static void
conn_pl_emit(void *owner, uint8_t command, const struct iovec *iov,
    int iovcnt, size_t len)
{
	struct conn *c = owner;

	if (!c->dead)
		conn_put_frame(c, command, iov, iovcnt, len,
		    command == GOPRO_CMD_MESSAGE ? STATS_frames_sent_message :
		    STATS_frames_sent_other);
}

static void
conn_pl_emit_error(void *owner, uint16_t code, const char *text)
{
	struct conn *c = owner;

	if (!c->dead)
		conn_put_error(c, code, text);
}

/*
 * A reply left the queue.  Inside conn_process (a module that answered at
 * once) the loop there goes on by itself; otherwise read and answer what
 * is buffered again, and send a pending GOAWAY once the queue is empty.
 */
static void
conn_pl_released(void *owner)
{
	struct conn *c = owner;

	if (c->dead || c->in_process)
		return;
	if (c->inflight_full && !pipeline_queue_full(&c->q)) {
		c->inflight_full = false;
		conn_update_reading(c);
	}
	if (!c->lingering)
		conn_process(c);
}

const struct pipeline_ops conn_pipeline_ops = {
	conn_pl_emit, conn_pl_emit_error, conn_pl_released,
};

const struct sockaddr *
conn_client_addr(const struct conn *c, socklen_t *len)
{
	if (len != NULL)
		*len = c->peer.sa.sa_family == AF_INET6 ?
		    sizeof(c->peer.in6) : sizeof(c->peer.in4);
	return &c->peer.sa;
}

const char *
conn_user(const struct conn *c)
{
	return c->logged_in ? c->user : NULL;
}

const char *
conn_tls_identity(const struct conn *c)
{
	return c->tls_identity;
}
