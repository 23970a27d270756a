/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_redis_stream.c - the redis_stream module against a real
 * redis-server (Debian's), which the test starts on a free loopback port
 * and stops by pid: every MESSAGE becomes a stream entry whose id is the
 * reply, the entry carries the body and the client, ERROR 10 answers while
 * Redis is down, and the module reconnects when it is back.  Killed
 * mid-load, every request sent gets an entry id or ERROR 10, and every id
 * replied is in the stream that Redis (appendfsync always) reloads.
 * Stopped (SIGSTOP, Redis slow for real), the module holds max_inflight
 * requests and goprod stops reading the client until Redis runs again.
 * Skipped without redis-server or without the module (no hiredis at build
 * time).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static pid_t redis_pid;

/* redis-server on port; with dir, an AOF there fsynced before replies. */
static void
redis_start_dir(int port, const char *dir)
{
	char portarg[16];

	snprintf(portarg, sizeof(portarg), "%d", port);
	redis_pid = fork();
	assert_true(redis_pid >= 0);
	if (redis_pid == 0 && dir == NULL) {
		execlp("redis-server", "redis-server", "--port", portarg,
		    "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		    "--loglevel", "warning", (char *)NULL);
		_exit(127);
	}
	if (redis_pid == 0) {
		execlp("redis-server", "redis-server", "--port", portarg,
		    "--bind", "127.0.0.1", "--save", "", "--dir", dir,
		    "--appendonly", "yes", "--appendfsync", "always",
		    "--loglevel", "warning", (char *)NULL);
		_exit(127);
	}
}

static void
redis_start(int port)
{
	redis_start_dir(port, NULL);
}

/* redis-cli -p port ARGS, its output in out; the exit status. */
static int
redis_cli(int port, const char *args, char *out, size_t len)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "redis-cli -p %d %s", port, args);
	return harness_run(cmd, out, len);
}

static void
redis_wait_up(int port)
{
	char out[64];

	for (int i = 0; i < 250; i++) {
		if (redis_cli(port, "ping", out, sizeof(out)) == 0 &&
		    strstr(out, "PONG") != NULL)
			return;
		harness_sleep(0.02);
	}
	fail_msg("redis-server on port %d did not start", port);
}

static void
redis_kill(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
		redis_pid = 0;
	}
}

/* Nothing pipelined is left: a heartbeat is answered next. */
static void
expect_heartbeat_after(int fd)
{
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "end");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "end", 3);
}

static int
teardown(void **state)
{
	(void)state;
	if (redis_pid > 0)
		kill(redis_pid, SIGCONT);
	redis_kill();
	return 0;
}

/* The module's file; the test is skipped without it or redis-server. */
static const char *
redis_stream_or_skip(void)
{
	const char *so = getenv("GOPRO_REDIS_STREAM");

	if (so == NULL || access(so, R_OK) != 0 ||
	    system("command -v redis-server >/dev/null") != 0)
		skip();
	return so;
}

/* goprod with module ingest (so) on the Redis of port, then options. */
static void
start_ingest(struct goprod *g, const char *so, int port, const char *options)
{
	char conf[1024];

	snprintf(conf, sizeof(conf), "module ingest {\n  path = \"%s\"\n"
	    "  port = %d\n%s}\n", so, port, options);
	harness_start(g, conf);
}

/* One MESSAGE reply: an entry id "ms-seq" into id, or ERROR 10 (-1). */
static int
read_id(int fd, char *id, size_t len)
{
	uint8_t buf[512];
	struct gopro_frame f;
	struct gopro_status st;

	assert_true(harness_read_frame(fd, buf, sizeof(buf), &f, 5) > 0);
	if (f.header.command == GOPRO_CMD_ERROR) {
		assert_int_equal(gopro_status_parse(f.body, f.header.length,
		    &st), 0);
		assert_int_equal(st.code, GOPRO_ERR_UNAVAILABLE);
		return -1;
	}
	assert_int_equal(f.header.command, GOPRO_CMD_MESSAGE);
	assert_true(f.header.length < len);
	memcpy(id, f.body, f.header.length);
	id[f.header.length] = '\0';
	assert_non_null(strchr(id, '-'));
	return 0;
}

static void
test_ingest(void **state)
{
	const char *so = redis_stream_or_skip();
	char id[128], out[4096];
	int port = harness_free_port(), fd, got = -1;
	struct goprod g;

	(void)state;
	redis_start(port);
	redis_wait_up(port);
	start_ingest(&g, so, port, "  key = \"telemetry\"\n  maxlen = 1000\n"
	    "  reconnect = 200ms\n");
	fd = harness_connect(&g);
	for (int i = 0; i < 20; i++)
		harness_send(fd, GOPRO_CMD_MESSAGE, "reading");
	for (int i = 0; i < 20; i++)
		assert_int_equal(read_id(fd, id, sizeof(id)), 0);
	assert_int_equal(redis_cli(port, "XLEN telemetry", out, sizeof(out)), 0);
	assert_int_equal(atoi(out), 20);
	assert_int_equal(redis_cli(port, "XRANGE telemetry - + COUNT 1", out,
	    sizeof(out)), 0);
	assert_non_null(strstr(out, "reading"));
	assert_non_null(strstr(out, "127.0.0.1:"));
	/* Redis down: ERROR 10 at once, never silence. */
	redis_kill();
	harness_sleep(0.1);
	harness_send(fd, GOPRO_CMD_MESSAGE, "lost");
	assert_int_equal(read_id(fd, id, sizeof(id)), -1);
	/* Back: the module reconnects by itself. */
	redis_start(port);
	redis_wait_up(port);
	for (int i = 0; i < 100 && got != 0; i++) {
		harness_sleep(0.05);
		harness_send(fd, GOPRO_CMD_MESSAGE, "again");
		got = read_id(fd, id, sizeof(id));
	}
	assert_int_equal(got, 0);
	close(fd);
	harness_stop(&g);
	redis_kill();
}

#define LOAD_CONNS 4
#define LOAD_HALF 1000
#define LOAD_SENT (LOAD_CONNS * 2 * LOAD_HALF)

/* What each request ("c-i" body) got: its entry id, "" for ERROR 10. */
static char load_reply[LOAD_CONNS][2 * LOAD_HALF][32];

static void
load_send(int fd, int c, int from, int to)
{
	char body[32];

	for (int i = from; i < to; i++) {
		snprintf(body, sizeof(body), "%d-%d", c, i);
		harness_send(fd, GOPRO_CMD_MESSAGE, body);
	}
}

/* The reply to request i of connection c, NULL for a body not sent. */
static const char *
load_lookup(const char *body)
{
	int c, i;

	if (sscanf(body, "%d-%d", &c, &i) != 2 || c < 0 || c >= LOAD_CONNS ||
	    i < 0 || i >= 2 * LOAD_HALF)
		return NULL;
	return load_reply[c][i];
}

/*
 * Every entry of the stream (XRANGE, raw: an id line, then field and value
 * lines) against the replies: an entry whose request got an id has that
 * id; one whose request got ERROR 10 is a write Redis made durable but
 * whose reply died with it.  Returns the entries with a matching id;
 * *unacked counts the others, *entries all.
 */
static int
load_check_stream(int port, int *unacked, int *entries)
{
	size_t cap = 4 << 20;
	char *out = malloc(cap), *line, *save = NULL, id[32] = "";
	const char *want;
	int acked = 0;
	bool body_next = false;

	assert_non_null(out);
	*unacked = *entries = 0;
	assert_int_equal(redis_cli(port, "--raw XRANGE load - +", out, cap), 0);
	assert_true(strlen(out) < cap - 1);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		unsigned long long ms, seq;
		char end;

		if (body_next) {
			want = load_lookup(line);
			if (want == NULL)
				fail_msg("entry %s: a body never sent: %s", id,
				    line);
			else if (want[0] == '\0')
				(*unacked)++;
			else {
				assert_string_equal(want, id);
				acked++;
			}
			body_next = false;
		} else if (sscanf(line, "%llu-%llu%c", &ms, &seq, &end) == 2) {
			snprintf(id, sizeof(id), "%s", line);
			(*entries)++;
		} else if (strcmp(line, "body") == 0)
			body_next = true;
	}
	free(out);
	return acked;
}

/*
 * Redis killed with -9 under pipelined load: every request sent gets an
 * entry id or ERROR 10, and the ids replied are exactly the stream's
 * acknowledged entries.  XLEN can exceed the ids by writes that Redis
 * made durable (the AOF is fsynced before the reply is written) but whose
 * replies it never sent; each of those was answered ERROR 10 ("retry"),
 * which the test checks entry by entry through the bodies.
 */
static void
test_kill_mid_load(void **state)
{
	const char *so = redis_stream_or_skip();
	char dir[] = "/tmp/gopro-redis-XXXXXX", out[4096];
	char cmd[256];
	int port = harness_free_port(), fd[LOAD_CONNS];
	int ids = 0, errors = 0, acked, unacked, entries;
	struct goprod g;

	(void)state;
	assert_non_null(mkdtemp(dir));
	redis_start_dir(port, dir);
	redis_wait_up(port);
	start_ingest(&g, so, port, "  key = \"load\"\n  reconnect = 200ms\n"
	    "  timeout = 30s\n");
	for (int c = 0; c < LOAD_CONNS; c++) {
		fd[c] = harness_connect(&g);
		load_send(fd[c], c, 0, LOAD_HALF);
	}
	/* Load is flowing (one reply has come back): kill Redis, and send
	 * the second half while it is down. */
	assert_int_equal(read_id(fd[0], load_reply[0][0], 32), 0);
	redis_kill();
	for (int c = 0; c < LOAD_CONNS; c++)
		load_send(fd[c], c, LOAD_HALF, 2 * LOAD_HALF);
	for (int c = 0; c < LOAD_CONNS; c++) {
		for (int i = c == 0 ? 1 : 0; i < 2 * LOAD_HALF; i++)
			if (read_id(fd[c], load_reply[c][i], 32) < 0)
				load_reply[c][i][0] = '\0';
		close(fd[c]);
	}
	for (int c = 0; c < LOAD_CONNS; c++)
		for (int i = 0; i < 2 * LOAD_HALF; i++) {
			if (load_reply[c][i][0] != '\0')
				ids++;
			else
				errors++;
		}
	harness_stop(&g);
	/* The same data directory: the AOF replays what Redis fsynced. */
	redis_start_dir(port, dir);
	redis_wait_up(port);
	assert_int_equal(redis_cli(port, "XLEN load", out, sizeof(out)), 0);
	acked = load_check_stream(port, &unacked, &entries);
	fprintf(stderr, "# %d sent: %d ids, %d ERROR 10; XLEN %d, %d entries "
	    "durable without an id (answered ERROR 10)\n", LOAD_SENT, ids,
	    errors, atoi(out), unacked);
	assert_int_equal(ids + errors, LOAD_SENT);
	assert_true(errors >= LOAD_CONNS * LOAD_HALF);
	assert_int_equal(entries, atoi(out));
	assert_int_equal(acked, ids);
	assert_int_equal(atoi(out), ids + unacked);
	redis_kill();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)harness_run(cmd, out, sizeof(out));
}

#define SLOW_INFLIGHT 4
#define SLOW_BODY 200
#define SLOW_MAX_REQUESTS 200000  /* 40 MB: far past any socket buffer */

/* Module ingest's in-flight gauge, summed over the running workers. */
static uint64_t
ingest_inflight(const struct goprod *g)
{
	struct stats_snap snap;
	uint64_t n = 0;

	harness_snapshot(g, &snap);
	for (unsigned i = 0; i < snap.hdr.nentries; i++)
		for (unsigned j = 0; j < STATS_MODULES; j++)
			if (snap.entries[i].state == STATS_STATE_RUNNING &&
			    strcmp(snap.entries[i].mod[j].name, "ingest") == 0)
				n += snap.entries[i].mod[j].inflight;
	stats_snap_free(&snap);
	return n;
}

/* The part of the last frame that did not fit, sent after SIGCONT. */
static uint8_t slow_rest[GOPRO_HEADER_SIZE + SLOW_BODY];
static size_t slow_rest_len;

/*
 * Pipeline requests without reading until the socket takes no more: the
 * host must have stopped reading (the kernel buffers are full), else the
 * writes would go on for SLOW_MAX_REQUESTS.  Returns the requests sent,
 * the last one perhaps in part (slow_rest holds the rest).
 */
static int
slow_fill(int fd)
{
	uint8_t frame[GOPRO_HEADER_SIZE + SLOW_BODY];
	char body[SLOW_BODY + 1];
	int sent = 0, small = 64 * 1024, flags = fcntl(fd, F_GETFL);
	size_t n;
	ssize_t w = 0;

	/* A fixed send buffer, so that "full" comes soon. */
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small,
	    sizeof(small)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
	slow_rest_len = 0;
	while (sent < SLOW_MAX_REQUESTS) {
		snprintf(body, sizeof(body), "%-*d", SLOW_BODY, sent);
		n = gopro_frame_write(frame, sizeof(frame), GOPRO_CMD_MESSAGE,
		    body, SLOW_BODY);
		assert_true(n > 0);
		if ((w = send(fd, frame, n, MSG_NOSIGNAL)) < 0)
			break;
		sent++;
		if ((size_t)w < n) {
			slow_rest_len = n - (size_t)w;
			memcpy(slow_rest, frame + w, slow_rest_len);
			break;
		}
	}
	assert_true(w >= 0 || errno == EAGAIN);
	assert_true(sent < SLOW_MAX_REQUESTS);
	assert_int_equal(fcntl(fd, F_SETFL, flags), 0);
	return sent;
}

/*
 * When Redis is slow, max_inflight pushes back on the clients: with
 * redis-server stopped (SIGSTOP), the module holds at most max_inflight
 * requests of a connection that pipelines thousands, goprod stops reading
 * it (the client's writes block), and once Redis runs again (SIGCONT)
 * every request gets its reply in order: an entry id, each larger than
 * the one before, and as many ids as the stream has entries.
 */
static void
test_slow_redis_pushes_back(void **state)
{
	const char *so = redis_stream_or_skip();
	char opts[128], id[128], prev[128] = "", out[64];
	int port = harness_free_port(), fd, sent, ids = 0, tail = 0;
	unsigned long long ms, seq, pms = 0, pseq = 0;
	uint64_t most = 0, now;
	struct goprod g;

	(void)state;
	redis_start(port);
	redis_wait_up(port);
	snprintf(opts, sizeof(opts), "  key = \"slow\"\n  timeout = 60s\n"
	    "  max_inflight = %d\n", SLOW_INFLIGHT);
	start_ingest(&g, so, port, opts);
	fd = harness_connect(&g);
	harness_send(fd, GOPRO_CMD_MESSAGE, "warm");
	assert_int_equal(read_id(fd, id, sizeof(id)), 0);
	/* Redis slow for real: it stops answering until SIGCONT. */
	assert_int_equal(kill(redis_pid, SIGSTOP), 0);
	sent = slow_fill(fd);
	/* The module holds max_inflight, never more, however long we look. */
	for (int i = 0; i < 2000 && most < SLOW_INFLIGHT; i++) {
		now = ingest_inflight(&g);
		most = now > most ? now : most;
		harness_sleep(0.01);
	}
	for (int i = 0; i < 20; i++) {
		now = ingest_inflight(&g);
		most = now > most ? now : most;
		harness_sleep(0.01);
	}
	fprintf(stderr, "# Redis stopped: %d requests pipelined before the "
	    "socket was full, %llu in flight at the module (max_inflight "
	    "%d)\n", sent, (unsigned long long)most, SLOW_INFLIGHT);
	assert_int_equal(most, SLOW_INFLIGHT);
	assert_true(sent > 10 * SLOW_INFLIGHT);
	assert_int_equal(kill(redis_pid, SIGCONT), 0);
	if (slow_rest_len > 0)
		harness_write(fd, slow_rest, slow_rest_len);
	for (int i = 0; i < sent; i++) {
		if (read_id(fd, id, sizeof(id)) < 0) {
			tail++;
			continue;
		}
		/* Replies in request order: the ids grow. */
		assert_int_equal(sscanf(id, "%llu-%llu", &ms, &seq), 2);
		assert_true(ms > pms || (ms == pms && seq > pseq));
		pms = ms;
		pseq = seq;
		snprintf(prev, sizeof(prev), "%s", id);
		ids++;
	}
	expect_heartbeat_after(fd);
	fprintf(stderr, "# after SIGCONT: %d ids (last %s), %d ERROR 10\n",
	    ids, prev, tail);
	assert_int_equal(ids + tail, sent);
	assert_int_equal(redis_cli(port, "XLEN slow", out, sizeof(out)), 0);
	/* The warm-up request is in the stream too. */
	assert_int_equal(atoi(out), ids + 1);
	close(fd);
	harness_stop(&g);
	redis_kill();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_ingest, teardown),
		cmocka_unit_test_teardown(test_kill_mid_load, teardown),
		cmocka_unit_test_teardown(test_slow_redis_pushes_back,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
