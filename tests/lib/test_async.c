/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_async.c - the asynchronous client on libev (gopro/libev.h) against
 * real goprod processes: pipelined requests answered in order (framed by
 * the client, or whole frames given by the caller), LOGIN on
 * connect (accepted and refused), a GOAWAY during a reload handed over to
 * a new connection without a failed request, the per-request timeout that
 * closes the connection (against a listener that never answers), the
 * address list, reconnection after a restart with and without buffering,
 * max_pending, freeing the context from inside a callback,
 * gopro_async_post from other threads (requests handed to the loop thread
 * in order, a full ring, posts cancelled by a free), and goprod's unix
 * listener (pipelining and a GOAWAY handover over it).
 *
 * Every wait runs the loop until a condition holds or a bound of seconds
 * passes; the bounds are failure limits, never the thing measured.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gopro/async.h"
#include "gopro/libev.h"
#include "harness.h"

static char users_path[] = "/tmp/gopro-async-users-XXXXXX";

/* What the callbacks saw. */
struct seen {
	unsigned replies;             /* GOPRO_OK */
	unsigned failed[16];          /* by -result */
	unsigned out_of_order;
	unsigned next;                /* the number the next reply must carry */
	unsigned states[8];
	int last_state_result;
	char prefix[16];              /* expected MESSAGE prefix, "" any */
	unsigned v2;                  /* replies with prefix "v2: " */
	struct gopro_async *free_in_cb;
};

static struct seen seen;

static void
on_state(struct gopro_async *a, enum gopro_state st, int result, void *arg)
{
	seen.states[st]++;
	seen.last_state_result = result;
}

/* Replies carry the request's number in their last 4 bytes. */
static void
on_reply(struct gopro_async *a, int result, const struct gopro_frame *f,
    void *arg)
{
	unsigned n = (unsigned)(uintptr_t)arg, got;

	if (result != GOPRO_OK) {
		seen.failed[-result]++;
		return;
	}
	seen.replies++;
	if (f->header.length < 4) {
		seen.out_of_order++;
		return;
	}
	memcpy(&got, f->body + f->header.length - 4, 4);
	if (got != n || n != seen.next)
		seen.out_of_order++;
	if (f->header.command == GOPRO_CMD_MESSAGE &&
	    f->header.length >= 4 && memcmp(f->body, "v2: ", 4) == 0)
		seen.v2++;
	seen.next = n + 1;
	if (seen.free_in_cb == a) {
		seen.free_in_cb = NULL;
		gopro_async_free(a);
	}
}

static int
request(struct gopro_async *a, uint8_t cmd, unsigned n, double timeout)
{
	return gopro_async_request(a, cmd, &n, sizeof(n), timeout, on_reply,
	    (void *)(uintptr_t)n);
}

/*
 * The same request as a whole frame built here (gopro_async_request_frame):
 * pad filler bytes, then the number, so that frames of every size class
 * (8 to 16 bytes, and longer) are sent.  The buffer is overwritten after
 * the call, which must have copied it.
 */
static int
request_frame(struct gopro_async *a, uint8_t cmd, unsigned n, size_t pad)
{
	uint8_t frame[GOPRO_HEADER_SIZE + 64], body[64];
	size_t size;
	int rc;

	assert_true(pad + sizeof(n) <= sizeof(body));
	memset(body, 'x', pad);
	memcpy(body + pad, &n, sizeof(n));
	size = gopro_frame_write(frame, sizeof(frame), cmd, body,
	    pad + sizeof(n));
	assert_int_not_equal(size, 0);
	rc = gopro_async_request_frame(a, frame, size, 0, on_reply,
	    (void *)(uintptr_t)n);
	memset(frame, 0, sizeof(frame));
	return rc;
}

/* Run the loop until *count reaches want or seconds pass. */
static bool
run_until(unsigned *count, unsigned want, double seconds)
{
	double deadline = harness_now() + seconds;

	/* The tick timer wakes the loop every 50 ms to look at the clock. */
	while (*count < want && harness_now() < deadline)
		ev_run(EV_DEFAULT, EVRUN_ONCE);
	return *count >= want;
}

/* A periodic wake-up so run_until sees its deadline. */
static ev_timer tick;

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
}

static struct gopro_async *
client(const char *const *addrs, size_t n, const char *user,
    const char *password, bool buffering)
{
	struct gopro_async_options o;
	struct gopro_async *a;
	int rc;

	gopro_async_options_init(&o);
	o.addresses = addrs;
	o.naddresses = n;
	o.user = user;
	o.password = password;
	o.buffer_while_reconnecting = buffering;
	o.backoff_initial = 0.05;
	o.backoff_max = 0.2;
	o.on_state = on_state;
	a = gopro_async_new(&o, &rc);
	assert_int_equal(rc, GOPRO_OK);
	assert_non_null(a);
	assert_int_equal(gopro_libev_attach(a, EV_DEFAULT), GOPRO_OK);
	return a;
}

static int
setup(void **state)
{
	memset(&seen, 0, sizeof(seen));
	ev_timer_init(&tick, tick_cb, 0.05, 0.05);
	ev_timer_start(EV_DEFAULT, &tick);
	return 0;
}

static int
teardown(void **state)
{
	ev_timer_stop(EV_DEFAULT, &tick);
	return 0;
}

static void
test_pipelined_in_order(void **state)
{
	struct goprod g;
	const char *addrs[1];
	struct gopro_async *a;

	harness_start(&g, "");
	addrs[0] = g.addr;
	a = client(addrs, 1, NULL, NULL, false);
	/* Queued while connecting: they wait for the connection. */
	for (unsigned i = 0; i < 200; i++)
		assert_int_equal(request(a, i % 3 ? GOPRO_CMD_HEARTBEAT :
		    GOPRO_CMD_MESSAGE, i, 0), GOPRO_OK);
	assert_int_equal(gopro_async_pending(a), 200);
	assert_true(run_until(&seen.replies, 200, 10));
	assert_int_equal(seen.out_of_order, 0);
	assert_int_equal(seen.states[GOPRO_STATE_CONNECTED], 1);
	assert_int_equal(gopro_async_pending(a), 0);
	/* More from inside the loop, as a program would. */
	for (unsigned i = 200; i < 300; i++)
		assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, i, 0), GOPRO_OK);
	assert_true(run_until(&seen.replies, 300, 10));
	assert_int_equal(seen.out_of_order, 0);
	gopro_async_free(a);
	assert_int_equal(harness_stop(&g), 0);
}

/*
 * Requests given as whole frames, mixed with requests the client frames,
 * answered in order, before and after the connection is up; a frame that
 * is not one well-formed frame of its size is refused and never called
 * back.
 */
static void
test_request_frame(void **state)
{
	static const size_t pads[] = { 0, 4, 5, 40 };
	struct goprod g;
	const char *addrs[1];
	struct gopro_async *a;
	uint8_t frame[GOPRO_HEADER_SIZE + 8];
	size_t size;

	harness_start(&g, "");
	addrs[0] = g.addr;
	a = client(addrs, 1, NULL, NULL, false);
	/* Queued while connecting, then from inside the loop. */
	for (unsigned i = 0; i < 100; i++)
		assert_int_equal(i % 5 == 4 ? request(a, GOPRO_CMD_MESSAGE, i,
		    0) : request_frame(a, i % 2 ? GOPRO_CMD_MESSAGE :
		    GOPRO_CMD_HEARTBEAT, i, pads[i % 4]), GOPRO_OK);
	assert_true(run_until(&seen.replies, 100, 10));
	for (unsigned i = 100; i < 200; i++)
		assert_int_equal(request_frame(a, GOPRO_CMD_HEARTBEAT, i,
		    pads[i % 4]), GOPRO_OK);
	assert_true(run_until(&seen.replies, 200, 10));
	assert_int_equal(seen.out_of_order, 0);

	/* Not one frame of size bytes: refused, nothing queued. */
	size = gopro_frame_write(frame, sizeof(frame), GOPRO_CMD_HEARTBEAT,
	    "abcd", 4);
	assert_int_equal(gopro_async_request_frame(a, frame, size - 1, 0,
	    on_reply, NULL), GOPRO_E_INVALID);
	assert_int_equal(gopro_async_request_frame(a, frame, size + 1, 0,
	    on_reply, NULL), GOPRO_E_INVALID);
	assert_int_equal(gopro_async_request_frame(a, frame,
	    GOPRO_HEADER_SIZE - 1, 0, on_reply, NULL), GOPRO_E_INVALID);
	assert_int_equal(gopro_async_request_frame(a, NULL, size, 0,
	    on_reply, NULL), GOPRO_E_INVALID);
	assert_int_equal(gopro_async_request_frame(a, frame, size, 0, NULL,
	    NULL), GOPRO_E_INVALID);
	frame[2] = GOPRO_VERSION + 1;
	assert_int_equal(gopro_async_request_frame(a, frame, size, 0,
	    on_reply, NULL), GOPRO_E_INVALID);
	frame[2] = GOPRO_VERSION;
	frame[1] = 'X';
	assert_int_equal(gopro_async_request_frame(a, frame, size, 0,
	    on_reply, NULL), GOPRO_E_INVALID);
	assert_int_equal(gopro_async_pending(a), 0);
	gopro_async_free(a);
	assert_int_equal(seen.replies, 200);
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(seen.failed[i], 0);
	assert_int_equal(harness_stop(&g), 0);
}

static void
test_login_on_connect(void **state)
{
	struct goprod g;
	const char *addrs[1];
	struct gopro_async *a;

	harness_users_file(users_path, "alice", "wonderland", 5000);
	harness_start_auth(&g, users_path, "login_rate = 0");
	addrs[0] = g.addr;
	a = client(addrs, 1, "alice", "wonderland", false);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(request(a, GOPRO_CMD_MESSAGE, i, 0), GOPRO_OK);
	assert_true(run_until(&seen.replies, 10, 10));
	/* MESSAGE needs a login here: all answered, so LOGIN went first. */
	assert_int_equal(seen.out_of_order, 0);
	assert_int_equal(seen.states[GOPRO_STATE_CONNECTED], 1);
	gopro_async_free(a);

	memset(&seen, 0, sizeof(seen));
	a = client(addrs, 1, "alice", "wrong", false);
	assert_int_equal(request(a, GOPRO_CMD_MESSAGE, 0, 0), GOPRO_OK);
	assert_true(run_until(&seen.states[GOPRO_STATE_CLOSED], 1, 10));
	assert_int_equal(seen.last_state_result, GOPRO_E_AUTH);
	assert_int_equal(seen.failed[-GOPRO_E_AUTH], 1);
	assert_non_null(strstr(gopro_async_error(a), "login as alice refused"));
	assert_int_equal(request(a, GOPRO_CMD_MESSAGE, 1, 0), GOPRO_E_CLOSED);
	gopro_async_free(a);
	unlink(users_path);
	assert_int_equal(harness_stop(&g), 0);
}

/*
 * Reload g on conf (message_prefix "v2: ") and keep requests flowing until
 * 20 replies of the new generation came: every request is answered, over
 * a connection per GOAWAY and one more, with no reconnection.
 */
static void
reload_under_traffic(struct goprod *g, struct gopro_async *a,
    const char *conf, unsigned sent, unsigned old_workers)
{
	harness_rewrite_conf(g, conf);
	assert_int_equal(kill(g->pid, SIGHUP), 0);
	for (double end = harness_now() + 15; seen.v2 < 20 &&
	    harness_now() < end;) {
		int rc = request(a, GOPRO_CMD_MESSAGE, sent, 0);

		assert_true(rc == GOPRO_OK || rc == GOPRO_E_BUSY);
		if (rc == GOPRO_OK)
			sent++;
		ev_run(EV_DEFAULT, EVRUN_ONCE);
	}
	assert_true(run_until(&seen.replies, sent, 10));
	/*
	 * One GOAWAY, or with two old workers a second when the replacement
	 * reached the other before its own signal did: a connection for each,
	 * and never a reconnection after a loss.
	 */
	assert_true(seen.states[GOPRO_STATE_GOAWAY] >= 1);
	assert_true(seen.states[GOPRO_STATE_GOAWAY] <= old_workers);
	assert_int_equal(seen.states[GOPRO_STATE_CONNECTED],
	    seen.states[GOPRO_STATE_GOAWAY] + 1);
	assert_int_equal(seen.states[GOPRO_STATE_RECONNECTING], 0);
	assert_true(seen.v2 >= 20);
	/* Nothing lost; order is per connection, so only count here. */
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(seen.failed[i], 0);
}

static void
test_goaway_handover(void **state)
{
	struct goprod g;
	const char *addrs[1];
	struct gopro_async *a;
	unsigned sent = 0;

	harness_start(&g, "message_prefix = \"v1: \"\ngoaway_grace = 2s\n");
	addrs[0] = g.addr;
	a = client(addrs, 1, NULL, NULL, false);
	for (; sent < 20; sent++)
		assert_int_equal(request(a, GOPRO_CMD_MESSAGE, sent, 0),
		    GOPRO_OK);
	assert_true(run_until(&seen.replies, sent, 10));
	reload_under_traffic(&g, a, "message_prefix = \"v2: \"\n"
	    "goaway_grace = 2s\n", sent, 1);
	gopro_async_free(a);
	assert_int_equal(harness_stop(&g), 0);
}

/*
 * Over goprod's unix listener, shared by two workers: pipelined requests
 * in order, then a reload whose GOAWAY makes the client open its
 * replacement connection on the same socket, with no request failed.
 */
static void
test_unix_socket(void **state)
{
	struct goprod g;
	char unix_addr[320], conf[512];
	const char *addrs[1] = { unix_addr };
	struct gopro_async *a;
	unsigned sent = 0;

	harness_start_unix(&g, "workers = 2\nmessage_prefix = \"v1: \"\n"
	    "goaway_grace = 2s\n", unix_addr, sizeof(unix_addr));
	a = client(addrs, 1, NULL, NULL, false);
	for (; sent < 200; sent++)
		assert_int_equal(request(a, sent % 3 ? GOPRO_CMD_HEARTBEAT :
		    GOPRO_CMD_MESSAGE, sent, 0), GOPRO_OK);
	assert_true(run_until(&seen.replies, sent, 10));
	assert_int_equal(seen.out_of_order, 0);
	assert_int_equal(seen.states[GOPRO_STATE_CONNECTED], 1);
	snprintf(conf, sizeof(conf), "listen = {\"%s\", \"%s\"}\n"
	    "workers = 2\nmessage_prefix = \"v2: \"\ngoaway_grace = 2s\n",
	    g.addr, unix_addr);
	reload_under_traffic(&g, a, conf, sent, 2);
	gopro_async_free(a);
	assert_int_equal(harness_stop(&g), 0);
}

/* A listener that accepts (through its backlog) and never answers. */
static int
silent_listener(char *addr, size_t len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	snprintf(addr, len, "127.0.0.1:%u", ntohs(sin.sin_port));
	return fd;
}

static void
test_timeout_closes_connection(void **state)
{
	char addr[64];
	const char *addrs[1] = { addr };
	int lfd = silent_listener(addr, sizeof(addr));
	struct gopro_async *a = client(addrs, 1, NULL, NULL, false);

	assert_true(run_until(&seen.states[GOPRO_STATE_CONNECTED], 1, 5));
	assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, 0, 0.2), GOPRO_OK);
	assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, 1, 30), GOPRO_OK);
	assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, 2, 30), GOPRO_OK);
	assert_true(run_until(&seen.failed[-GOPRO_E_TIMEOUT], 1, 5));
	/* The others on that connection cannot be matched any more. */
	assert_int_equal(seen.failed[-GOPRO_E_CLOSED], 2);
	assert_int_equal(seen.states[GOPRO_STATE_RECONNECTING], 1);
	assert_int_equal(seen.last_state_result, GOPRO_E_CLOSED);
	assert_non_null(strstr(gopro_async_error(a), "timed out"));
	/* Reconnected (the backlog takes it): usable again. */
	assert_true(run_until(&seen.states[GOPRO_STATE_CONNECTED], 2, 5));
	gopro_async_free(a);
	close(lfd);
}

static void
test_address_list_and_reconnect(void **state)
{
	struct goprod g;
	char dead[64];
	const char *addrs[2] = { dead, NULL };
	struct gopro_async *a;
	int port, fds;

	snprintf(dead, sizeof(dead), "127.0.0.1:%d", harness_free_port());
	harness_start(&g, "");
	port = g.port;
	addrs[1] = g.addr;
	a = client(addrs, 2, NULL, NULL, false);
	assert_true(run_until(&seen.states[GOPRO_STATE_CONNECTED], 1, 5));
	assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, 0, 0), GOPRO_OK);
	assert_true(run_until(&seen.replies, 1, 5));
	/* The server goes away: RECONNECTING, requests refused meanwhile. */
	assert_int_equal(harness_stop(&g), 0);
	assert_true(run_until(&seen.states[GOPRO_STATE_RECONNECTING], 1, 5));
	assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, 1, 0),
	    GOPRO_E_NOT_CONNECTED);
	/* Failed rounds against both addresses leave no descriptor behind. */
	fds = harness_open_fds();
	seen.states[GOPRO_STATE_RECONNECTING] = 0;
	assert_true(run_until(&seen.states[GOPRO_STATE_RECONNECTING], 3, 5));
	assert_int_equal(harness_open_fds(), fds);
	/* Back on the same port: the client finds it by itself. */
	harness_start_port(&g, port, "");
	assert_true(run_until(&seen.states[GOPRO_STATE_CONNECTED], 2, 10));
	seen.next = 1;
	assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, 1, 0), GOPRO_OK);
	assert_true(run_until(&seen.replies, 2, 5));
	assert_int_equal(seen.out_of_order, 0);
	gopro_async_free(a);
	assert_int_equal(harness_stop(&g), 0);
}

static void
test_buffering_while_reconnecting(void **state)
{
	struct goprod g;
	const char *addrs[1];
	struct gopro_async *a;
	int port;

	harness_start(&g, "");
	port = g.port;
	addrs[0] = g.addr;
	a = client(addrs, 1, NULL, NULL, true);
	assert_true(run_until(&seen.states[GOPRO_STATE_CONNECTED], 1, 5));
	assert_int_equal(harness_stop(&g), 0);
	assert_true(run_until(&seen.states[GOPRO_STATE_RECONNECTING], 1, 5));
	/* Held while down, each still bound by its own timeout. */
	assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, 0, 30), GOPRO_OK);
	assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, 99, 0.1), GOPRO_OK);
	assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, 1, 30), GOPRO_OK);
	assert_true(run_until(&seen.failed[-GOPRO_E_TIMEOUT], 1, 5));
	harness_start_port(&g, port, "");
	assert_true(run_until(&seen.replies, 2, 10));
	assert_int_equal(seen.out_of_order, 0);
	gopro_async_free(a);
	assert_int_equal(harness_stop(&g), 0);
}

static void
test_max_pending_and_free_in_callback(void **state)
{
	struct goprod g;
	const char *addrs[1];
	struct gopro_async_options o;
	struct gopro_async *a;
	int rc;

	harness_start(&g, "");
	addrs[0] = g.addr;
	gopro_async_options_init(&o);
	o.addresses = addrs;
	o.naddresses = 1;
	o.max_pending = 4;
	a = gopro_async_new(&o, &rc);
	assert_non_null(a);
	assert_int_equal(gopro_libev_attach(a, EV_DEFAULT), GOPRO_OK);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, i, 0), GOPRO_OK);
	assert_int_equal(request(a, GOPRO_CMD_HEARTBEAT, 4, 0), GOPRO_E_BUSY);
	assert_int_equal(request_frame(a, GOPRO_CMD_HEARTBEAT, 4, 0),
	    GOPRO_E_BUSY);
	/* The first reply frees the context; the other three are cancelled. */
	seen.free_in_cb = a;
	assert_true(run_until(&seen.failed[-GOPRO_E_CANCELLED], 3, 5));
	assert_int_equal(seen.replies, 1);
	/* Bad options. */
	o.naddresses = 0;
	assert_null(gopro_async_new(&o, &rc));
	assert_int_equal(rc, GOPRO_E_INVALID);
	assert_int_equal(harness_stop(&g), 0);
}

/* ------------------------------------------------------------ posts */

#define POSTERS 4
#define POSTS 250

/* A post: which thread made it and its number there. */
struct post_job {
	unsigned thread, n;
};

static struct post_job jobs[POSTERS][POSTS];
static unsigned post_next[POSTERS];   /* loop thread only */
static unsigned post_out_of_order, post_cancelled, post_ran;

/* The replies to the requests the posts made. */
static void
on_post_reply(struct gopro_async *a, int result, const struct gopro_frame *f,
    void *arg)
{
	if (result == GOPRO_OK)
		seen.replies++;
	else
		seen.failed[-result]++;
}

static void
on_post(struct gopro_async *a, int result, void *arg)
{
	struct post_job *j = arg;

	if (result != GOPRO_OK) {
		post_cancelled++;
		return;
	}
	post_ran++;
	/* In the loop thread, so a request is allowed here. */
	if (j->n != post_next[j->thread]++)
		post_out_of_order++;
	assert_int_equal(gopro_async_request(a, GOPRO_CMD_HEARTBEAT, j,
	    sizeof(*j), 0, on_post_reply, NULL), GOPRO_OK);
}

struct poster {
	struct gopro_async *a;
	unsigned thread;
	unsigned busy;
	int failed;
};

static void *
poster_run(void *arg)
{
	struct poster *p = arg;

	for (unsigned i = 0; i < POSTS; i++) {
		int rc;

		jobs[p->thread][i] = (struct post_job){ p->thread, i };
		/* A full ring: the loop thread drains it, try again. */
		while ((rc = gopro_async_post(p->a, on_post,
		    &jobs[p->thread][i])) == GOPRO_E_BUSY) {
			p->busy++;
			sched_yield();
		}
		if (rc != GOPRO_OK) {
			p->failed = rc;
			break;
		}
	}
	return NULL;
}

static void
test_post_from_threads(void **state)
{
	struct poster posters[POSTERS];
	pthread_t tids[POSTERS];
	const char *addrs[1];
	struct gopro_async *a;
	struct goprod g;

	harness_start(&g, "");
	addrs[0] = g.addr;
	memset(post_next, 0, sizeof(post_next));
	post_out_of_order = post_cancelled = post_ran = 0;
	a = client(addrs, 1, NULL, NULL, false);
	for (unsigned i = 0; i < POSTERS; i++) {
		posters[i] = (struct poster){ a, i, 0, 0 };
		assert_int_equal(pthread_create(&tids[i], NULL, poster_run,
		    &posters[i]), 0);
	}
	assert_true(run_until(&post_ran, POSTERS * POSTS, 20));
	for (unsigned i = 0; i < POSTERS; i++) {
		assert_int_equal(pthread_join(tids[i], NULL), 0);
		assert_int_equal(posters[i].failed, 0);
	}
	assert_int_equal(post_out_of_order, 0);
	assert_int_equal(post_cancelled, 0);
	/* Every post made a request, and every request got its reply. */
	assert_true(run_until(&seen.replies, POSTERS * POSTS, 20));
	gopro_async_free(a);
	assert_int_equal(harness_stop(&g), 0);
}

static void
test_post_busy_and_cancelled(void **state)
{
	struct gopro_async_options o;
	struct gopro_async *a;
	const char *addrs[1];
	struct goprod g;
	int rc;

	harness_start(&g, "");
	addrs[0] = g.addr;
	post_cancelled = post_ran = 0;
	gopro_async_options_init(&o);
	o.addresses = addrs;
	o.naddresses = 1;
	o.max_pending = 4;
	assert_non_null(a = gopro_async_new(&o, &rc));
	/* Not attached: no loop to hand the function to. */
	assert_int_equal(gopro_async_post(a, on_post, &jobs[0][0]),
	    GOPRO_E_INVALID);
	assert_int_equal(gopro_libev_attach(a, EV_DEFAULT), GOPRO_OK);
	/* The loop does not run: the ring (64 at least) fills up. */
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(gopro_async_post(a, on_post, &jobs[0][0]),
		    GOPRO_OK);
	assert_int_equal(gopro_async_post(a, on_post, &jobs[0][0]),
	    GOPRO_E_BUSY);
	/* Freed first: every post is called back, cancelled, none runs. */
	gopro_async_free(a);
	assert_int_equal(post_cancelled, 64);
	assert_int_equal(post_ran, 0);
	assert_int_equal(harness_stop(&g), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_request_frame, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_login_on_connect, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_goaway_handover, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout_closes_connection,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_list_and_reconnect,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_buffering_while_reconnecting, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_max_pending_and_free_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_from_threads, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_post_busy_and_cancelled,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix_socket, setup,
		    teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
