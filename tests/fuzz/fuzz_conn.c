/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_conn.c - libFuzzer target for the connection state machine.
 *
 * A real struct conn (conn.c) on a real worker loop (worker.c) serves one
 * end of a socketpair, as if accepted on a plain listener or (by the first
 * input byte) on a PROXY-protocol one; the rest of the input is a script
 * of operations on the other
 * end: write a chunk of the following bytes, stop or resume reading the
 * replies (so backpressure engages), half-close, and the events a worker
 * delivers (drain with GOAWAY, a clock or the send timeout running out,
 * the drain timeout), and the moves of a handler module that serves code
 * 0x10: complete one of its pending requests (at once, twice, with an
 * error, with an invalid reply, or from a thread), or let the deadlines
 * pass.  Between operations the loop runs once without blocking.  Every byte the server sends must decode as valid frames, and
 * everything is closed and freed at the end (LeakSanitizer checks).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>
#include <netinet/in.h>

#include "conf.h"
#include "conn.h"
#include "gopro/gopro.h"
#include "log.h"
#include "stats.h"
#include "worker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The client's view of the server's output: decoded as it arrives. */
struct replies {
	uint8_t buf[2 * (GOPRO_HEADER_SIZE + 4096 + 64)];
	size_t len;
	size_t skip;     /* body bytes of a large frame still to drop */
	uint32_t max_body;
};

static struct stats_entry stats __attribute__((aligned(STATS_ALIGN)));

/*
 * The fuzz module: it answers nothing by itself; the input decides when
 * and how each pending request is completed.
 */
#define FUZZ_PENDING 16
static gopro_request_id pending[FUZZ_PENDING];
static unsigned npending;
static struct pipeline *fuzz_pl;

static void
fuzz_request(void *state, const struct gopro_request *req)
{
	(void)state;
	pending[npending++ % FUZZ_PENDING] = req->id;
}

static const struct gopro_module fuzz_module = {
	GOPRO_MODULE_HEADER,
	.name = "fuzz",
	.request = fuzz_request,
};

/* Serve 0x10 with the fuzz module, next to the built-in echo. */
static void
add_fuzz_module(struct worker *w, uint8_t knob)
{
	struct module_inst *mi = &w->mods.inst[w->mods.n++];

	mi->name = "fuzz";
	mi->desc = fuzz_module;
	mi->h = (struct pipeline_handler){ .request = fuzz_request,
		.timeout = 1000, .max_inflight = 1u + (knob & 3),
		.stats = &stats.mod[1] };
	pipeline_handler_init(&w->pl, &mi->h);
	mi->started = true;
	w->mods.by_command[0x10] = mi;
	fuzz_pl = &w->pl;
	npending = 0;
}

static void *
complete_thread(void *arg)
{
	struct iovec iov = { "t", 1 };

	pipeline_post(fuzz_pl, *(gopro_request_id *)arg, 0x10, 0, &iov, 1);
	return NULL;
}

/* What the module does with pending request op % FUZZ_PENDING. */
static void
module_move(struct worker *w, uint8_t op)
{
	gopro_request_id id = pending[op % FUZZ_PENDING];
	struct iovec iov = { "reply", 5 };
	pthread_t t;

	switch ((op >> 4) % 6) {
	case 0:
		pipeline_complete(&w->pl, id, 0x10, &iov, 1);
		break;
	case 1:	/* twice */
		pipeline_complete(&w->pl, id, 0x11, &iov, 1);
		pipeline_complete(&w->pl, id, 0x11, &iov, 1);
		break;
	case 2:
		pipeline_complete_error(&w->pl, id, 10, "unavailable");
		break;
	case 3:	/* a reserved command: ERROR 10 instead */
		pipeline_complete(&w->pl, id, GOPRO_CMD_GOAWAY, &iov, 1);
		break;
	case 4:
		if (pthread_create(&t, NULL, complete_thread, &id) == 0)
			pthread_join(t, NULL);
		break;
	default: /* every deadline passes */
		for (unsigned i = 0; i < w->mods.n; i++)
			if (ev_is_active(&w->mods.inst[i].h.timer))
				ev_feed_event(w->loop, &w->mods.inst[i].h.timer,
				    EV_TIMER);
		break;
	}
}

/* Check and drop every complete frame at the head of r. */
static void
replies_decode(struct replies *r)
{
	struct gopro_frame f;
	enum gopro_decode_status st;
	size_t need, off = 0;

	for (;;) {
		st = gopro_decode(r->buf + off, r->len - off, UINT32_MAX, &f,
		    &need);
		if (st == GOPRO_DECODE_NEED_MORE) {
			/* A large echo: keep the header, skip its body. */
			if (r->len - off >= GOPRO_HEADER_SIZE &&
			    need > sizeof(r->buf) - GOPRO_HEADER_SIZE) {
				r->skip = need;
				off = r->len;
			}
			break;
		}
		if (st != GOPRO_DECODE_FRAME)
			abort();    /* the server sent a broken frame */
		if ((f.header.command > GOPRO_CMD_GOAWAY &&
		    f.header.command != 0x10 && f.header.command != 0x11) ||
		    f.header.length > r->max_body + 64)
			abort();
		off += f.size;
	}
	memmove(r->buf, r->buf + off, r->len - off);
	r->len -= off;
}

static void
replies_read(struct replies *r, int fd)
{
	uint8_t sink[4096];
	ssize_t n;

	for (;;) {
		if (r->skip > 0) {
			n = read(fd, sink, r->skip < sizeof(sink) ? r->skip :
			    sizeof(sink));
			if (n <= 0)
				return;
			r->skip -= (size_t)n;
			continue;
		}
		n = read(fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n <= 0)
			return;
		r->len += (size_t)n;
		replies_decode(r);
	}
}

static void
conf_for(struct gopro_conf *conf, uint8_t knob)
{
	static char prefix[] = "Server says: ";

	memset(conf, 0, sizeof(*conf));
	conf->max_body = 16u << (knob & 7);           /* 16 .. 2048 */
	conf->output_high_water = 512u << ((knob >> 3) & 3);
	conf->output_low_water = conf->output_high_water / 4;
	/* Long clocks: they run, but expire only when the input says so. */
	conf->idle_timeout = 1000;
	conf->frame_timeout = 1000;
	conf->send_timeout = 1000;
	conf->drain_timeout = 1000;
	conf->goaway_grace = (knob & 0x20) ? 1000 : 0;
	conf->max_connections = 16;
	conf->message_prefix = prefix;
	conf->message_prefix_len = sizeof(prefix) - 1;
	conf->auth.required = (knob & 0x40) != 0;
	conf->auth.max_attempts = 3;
}

/* The only connection, or NULL once it is closed. */
static struct conn *
live(struct worker *w)
{
	struct conn *c = TAILQ_FIRST(&w->all);

	return c != NULL && !c->dead ? c : NULL;
}

/* A worker event chosen by op, delivered if the connection is in a state
 * where the worker could deliver it. */
static void
worker_event(struct worker *w, uint8_t op)
{
	struct conn *c = live(w);

	if (c == NULL)
		return;
	switch (op % 4) {
	case 0:
		w->draining = true;
		w->goaway_reason = GOPRO_GOAWAY_SHUTDOWN;
		conn_goaway(c);
		break;
	case 1:
		if (c->clock != CLOCK_NONE)
			conn_clock_expired(c);
		break;
	case 2:
		if (c->sending)
			conn_send_expired(c);
		break;
	default:
		if (w->draining)
			conn_drain_expired(c);
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in peer = { .sin_family = AF_INET };
	struct gopro_conf conf;
	struct replies r;
	struct worker w;
	size_t off = 1, len;
	bool reading = true, wr_open = true;
	int sv[2];

	if (size < 1)
		return 0;
	/* As in a worker: a write to a closed peer is an error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_CRIT);
	conf_for(&conf, data[0]);
	memset(&r, 0, sizeof(r));
	r.max_body = conf.max_body + (uint32_t)conf.message_prefix_len;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	worker_init_for_test(&w, &conf, &stats);
	add_fuzz_module(&w, data[0]);
	if (conn_new(&w, sv[0], (struct sockaddr *)&peer, sizeof(peer),
	    (data[0] & 0x80) != 0, NULL) == NULL)
		abort();
	while (off < size) {
		uint8_t op = data[off++];

		if (op < 0xC0 && wr_open) {
			/* Write the next 1..192 input bytes (fewer if full). */
			len = (size_t)op + 1;
			if (len > size - off)
				len = size - off;
			ssize_t n = write(sv[1], data + off, len);
			off += n > 0 ? (size_t)n : len;
		} else if (op < 0xD0) {
			worker_event(&w, op);
		} else if (op < 0xE0) {
			module_move(&w, data[off - 1] ^ (off < size ?
			    data[off] : 0));
		} else if (op < 0xF0) {
			reading = !reading;
		} else if (wr_open) {
			shutdown(sv[1], SHUT_WR);
			wr_open = false;
		}
		ev_run(w.loop, EVRUN_NOWAIT);
		if (reading)
			replies_read(&r, sv[1]);
	}
	/* The client goes away: whatever is left is closed and freed. */
	shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < 4; i++) {
		ev_run(w.loop, EVRUN_NOWAIT);
		replies_read(&r, sv[1]);
	}
	close(sv[1]);
	ev_run(w.loop, EVRUN_NOWAIT);
	worker_cleanup_for_test(&w);
	return 0;
}
