/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_modules.c - integration tests of handler modules: real goprod
 * processes loading the shared objects of tests/modules (mod_test.c) and
 * the echo module, over real sockets.  Each test names the promise of
 * gopro_module(3) it checks: replies in request order whoever answers and
 * when, ERROR 11 at the deadline, ERROR 10 for a bad reply, one reply per
 * request, backpressure, identity, refusals by goprod -t and by a reload,
 * and a deploy by reload that runs the new file while the old generation
 * keeps the file it was validated with.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define CMD_TEST 0x10

/* Output of commands the tests do not look at. */
static char out_ignored[1024];

static const char *
module_path(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("GOPRO_TEST_MODULES");

	assert_non_null(dir);
	snprintf(buf, len, "%s/%s", dir, name);
	return buf;
}

/*
 * Into buf, the section of module name loaded from file (a test module),
 * lines inside it, then top (lines = NULL, top = NULL: none); buf.
 */
static const char *
module_conf(char *buf, size_t len, const char *name, const char *file,
    const char *lines, const char *top)
{
	char so[512];

	if (snprintf(buf, len, "module %s {\n  path = \"%s\"\n%s}\n%s", name,
	    module_path(file, so, sizeof(so)), lines != NULL ? lines : "",
	    top != NULL ? top : "") >= (int)len)
		fail_msg("module %s: the configuration is over %zu bytes", name,
		    len);
	return buf;
}

/* Module t (mod_v1.so) in mode, extra lines in its section, top after. */
static void
start_mode_top(struct goprod *g, const char *mode, const char *extra,
    const char *top)
{
	char conf[2048], lines[1024];

	snprintf(lines, sizeof(lines), "  mode = \"%s\"\n%s", mode,
	    extra != NULL ? extra : "");
	harness_start(g, module_conf(conf, sizeof(conf), "t", "mod_v1.so",
	    lines, top));
}

static void
start_mode(struct goprod *g, const char *mode, const char *extra)
{
	start_mode_top(g, mode, extra, NULL);
}

static void
expect_reply(int fd, const char *body)
{
	uint8_t buf[1024];
	struct gopro_frame f;

	assert_true(harness_read_frame(fd, buf, sizeof(buf), &f, 5) > 0);
	if (f.header.command != CMD_TEST)
		fprintf(stderr, "got command %u\n", f.header.command);
	assert_int_equal(f.header.command, CMD_TEST);
	assert_int_equal(f.header.length, strlen(body));
	assert_memory_equal(f.body, body, f.header.length);
}

static void
expect_heartbeat(int fd, const char *body)
{
	harness_send(fd, GOPRO_CMD_HEARTBEAT, body);
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, body, strlen(body));
}

static void
test_sync_module_and_default_echo(void **state)
{
	struct goprod g;
	int fd;

	(void)state;
	start_mode(&g, "sync", NULL);
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	expect_reply(fd, "v1:a");
	/* MESSAGE still has the seed's echo, through the echo module. */
	harness_send(fd, GOPRO_CMD_MESSAGE, "hi");
	harness_expect_frame(fd, GOPRO_CMD_MESSAGE, "Server says: hi", 15);
	/* A code nobody serves keeps ERROR 4. */
	harness_send(fd, 0x11, "x");
	harness_expect_error(fd, GOPRO_ERR_UNKNOWN_COMMAND);
	close(fd);
	harness_stop(&g);
}

/* Pipelined requests answered from threads come back in request order. */
static void
test_thread_replies_in_order(void **state)
{
	char body[16], want[32];
	struct goprod g;
	int fd;

	(void)state;
	start_mode(&g, "thread", NULL);
	fd = harness_connect(&g);
	for (int i = 0; i < 50; i++) {
		snprintf(body, sizeof(body), "%d", i);
		harness_send(fd, CMD_TEST, body);
		if (i == 25)	/* the core's reply waits its turn too */
			harness_send(fd, GOPRO_CMD_HEARTBEAT, "hb");
	}
	for (int i = 0; i < 50; i++) {
		snprintf(want, sizeof(want), "v1:%d", i);
		expect_reply(fd, want);
		if (i == 25)
			harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "hb", 2);
	}
	close(fd);
	harness_stop(&g);
}

static void
test_offload(void **state)
{
	struct goprod g;
	int fd;

	(void)state;
	start_mode(&g, "offload", NULL);
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	harness_send(fd, CMD_TEST, "b");
	expect_reply(fd, "v1:a+work");
	expect_reply(fd, "v1:b+work");
	close(fd);
	harness_stop(&g);
}

/* No answer: ERROR 11 at the deadline, and the connection goes on. */
static void
test_never_gets_error_11(void **state)
{
	struct goprod g;
	int fd;

	(void)state;
	start_mode(&g, "never", "  timeout = 100ms\n");
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	harness_expect_error(fd, GOPRO_ERR_REQUEST_TIMEOUT);
	expect_heartbeat(fd, "still here");
	close(fd);
	harness_stop(&g);
}

/* An answer after the deadline is dropped: the next reply is the next one. */
static void
test_late_answer_is_dropped(void **state)
{
	struct goprod g;
	int fd;

	(void)state;
	start_mode(&g, "late", "  timeout = 50ms\n  delay = 200ms\n");
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	harness_expect_error(fd, GOPRO_ERR_REQUEST_TIMEOUT);
	harness_sleep(0.3);	/* the late answer has come and gone */
	expect_heartbeat(fd, "next");
	close(fd);
	harness_stop(&g);
}

static void
test_twice_is_answered_once(void **state)
{
	struct goprod g;
	int fd;

	(void)state;
	start_mode(&g, "twice", NULL);
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	expect_reply(fd, "v1:a");
	expect_heartbeat(fd, "next");
	close(fd);
	harness_stop(&g);
}

static void
test_bad_replies_get_error_10(void **state)
{
	struct goprod g;
	int fd;

	(void)state;
	/* max_body 4k: a reply may be 1k more, so 8k is too large. */
	start_mode_top(&g, "big", "  size = 8k\n", "max_body = 4k\n");
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	harness_expect_error(fd, GOPRO_ERR_UNAVAILABLE);
	expect_heartbeat(fd, "open");
	close(fd);
	harness_stop(&g);
	start_mode(&g, "reserved", NULL);
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	harness_expect_error(fd, GOPRO_ERR_UNAVAILABLE);
	close(fd);
	harness_stop(&g);
}

/* max_inflight 2: the third request is not read before the first reply. */
static void
test_max_inflight_stops_reading(void **state)
{
	struct goprod g;
	int fd;

	(void)state;
	start_mode(&g, "never", "  timeout = 300ms\n  max_inflight = 2\n");
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "1");
	harness_send(fd, CMD_TEST, "2");
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "3");
	/* The heartbeat is answered only after both deadlines, in order. */
	harness_expect_error(fd, GOPRO_ERR_REQUEST_TIMEOUT);
	harness_expect_error(fd, GOPRO_ERR_REQUEST_TIMEOUT);
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "3", 1);
	close(fd);
	harness_stop(&g);
}

static void
test_identity(void **state)
{
	char users[] = "/tmp/gopro-users-XXXXXX", top[1024];
	uint8_t buf[256];
	struct gopro_frame f;
	struct goprod g;
	int fd;

	(void)state;
	harness_users_file(users, "alice", "secret", 1000);
	snprintf(top, sizeof(top), "auth {\n  required = true\n"
	    "  users_file = \"%s\"\n}\n", users);
	start_mode_top(&g, "whoami", NULL, top);
	fd = harness_connect(&g);
	/* auth.required: a module never sees a request before LOGIN. */
	harness_send(fd, CMD_TEST, "x");
	harness_expect_error(fd, GOPRO_ERR_AUTH_REQUIRED);
	assert_int_equal(gopro_login_write(buf, sizeof(buf), "alice", 5,
	    "secret", 6) > 0, 1);
	harness_write(fd, buf, gopro_login_write(buf, sizeof(buf), "alice", 5,
	    "secret", 6));
	assert_true(harness_read_frame(fd, buf, sizeof(buf), &f, 5) > 0);
	assert_int_equal(f.header.command, GOPRO_CMD_LOGIN_ACK);
	harness_send(fd, CMD_TEST, "x");
	expect_reply(fd, "127.0.0.1 alice");
	close(fd);
	harness_stop(&g);
	unlink(users);
}

/* goprod -t on a config; its output in out. */
static int
check_conf(const char *extra, char *out, size_t len)
{
	struct goprod g;
	char cmd[1024];
	int rc;

	harness_prepare(&g, harness_free_port(), extra);
	snprintf(cmd, sizeof(cmd), "%s -t -c %s", harness_program("GOPROD"),
	    g.conf_path);
	rc = harness_run(cmd, out, len);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", g.dir);
	(void)harness_run(cmd, out_ignored, sizeof(out_ignored));
	return rc;
}

static void
expect_refused(const char *extra, const char *text)
{
	char out[4096];

	assert_int_equal(check_conf(extra, out, sizeof(out)), 1);
	if (strstr(out, text) == NULL)
		fprintf(stderr, "goprod -t said:\n%s\n(expected \"%s\")\n", out,
		    text);
	assert_non_null(strstr(out, text));
}

static void
test_check_refuses_bad_modules(void **state)
{
	char conf[1024];

	(void)state;
	/* The harness writes 9 lines first: the option is on line 12. */
	expect_refused(module_conf(conf, sizeof(conf), "t", "mod_v1.so",
	    "  nosuch = 1\n", NULL),
	    "gopro.conf:12: module.t.nosuch: unknown option");
	expect_refused(module_conf(conf, sizeof(conf), "t", "mod_v1.so",
	    "  delay = \"soon\"\n", NULL),
	    "gopro.conf:12: module.t.delay: \"soon\" is not valid");
	expect_refused(module_conf(conf, sizeof(conf), "t", "mod_v1.so",
	    "  mode = \"dance\"\n", NULL),
	    "module t: mode \"dance\" is not one of");
	expect_refused(module_conf(conf, sizeof(conf), "t", "mod_badabi.so",
	    NULL, NULL), "module t: built for module ABI 2.0");
	expect_refused("module t {\n  path = \"/nonexistent/t.so\"\n}\n",
	    "module.t.path: cannot open /nonexistent/t.so");
	/* A file that is not a shared object. */
	expect_refused("module t {\n  path = \"/etc/passwd\"\n}\n",
	    "module.t.path: cannot load /etc/passwd");
	expect_refused(module_conf(conf, sizeof(conf), "t", "mod_v1.so",
	    "  commands = { \"0x02\" }\n", NULL),
	    "module.t.commands: \"0x02\" cannot be given");
	expect_refused("module nosuch {\n}\n", "no built-in module");
	expect_refused(module_conf(conf, sizeof(conf), "t", "mod_v1.so", NULL,
	    "module echo {\n  commands = { \"0x10\" }\n}\n"),
	    "is already served by");
}

/* Install version (a built module) as dir/current.so, as a deploy does. */
static void
install_current(const char *dir, const char *version)
{
	char cmd[1200], so[512];

	snprintf(cmd, sizeof(cmd), "cp %s %s/next.so && mv %s/next.so "
	    "%s/current.so", module_path(version, so, sizeof(so)), dir, dir,
	    dir);
	assert_int_equal(harness_run(cmd, out_ignored, sizeof(out_ignored)), 0);
}

/*
 * A deploy: the new file at the same path is not run by the running
 * generation, not even by a respawned worker (the generation was validated
 * with the old file); a reload runs it.
 */
static void
test_deploy_by_reload(void **state)
{
	char dir[] = "/tmp/gopro-mod-XXXXXX", conf[1024], cmd[1024];
	struct goprod g;
	pid_t pid;
	int fd, fd2;

	(void)state;
	assert_non_null(mkdtemp(dir));
	install_current(dir, "mod_v1.so");
	snprintf(conf, sizeof(conf), "module t {\n  path = \"%s/current.so\"\n"
	    "}\n", dir);
	harness_start(&g, conf);
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	expect_reply(fd, "v1:a");
	install_current(dir, "mod_v2.so");
	assert_int_equal(harness_worker_pids(&g, &pid, 1), 1);
	kill(pid, SIGKILL);
	assert_true(harness_wait_closed(fd, 5));
	close(fd);
	for (int i = 0; i < 100 && !harness_answers(&g); i++)
		harness_sleep(0.02);
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "b");
	expect_reply(fd, "v1:b");
	kill(g.pid, SIGHUP);
	harness_wait_settled(&g, 1);
	fd2 = harness_connect(&g);
	harness_send(fd2, CMD_TEST, "c");
	expect_reply(fd2, "v2:c");
	close(fd);
	close(fd2);
	harness_stop(&g);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)harness_run(cmd, out_ignored, sizeof(out_ignored));
}

/*
 * While its worker drains, a module learns it from api->drain_left and
 * may answer ERROR 10 instead of starting work that could outlast the
 * drain: the request sent after the GOAWAY on the old connection gets
 * ERROR 10 (the connection stays open), and the same request on a new
 * connection is served by the new generation.
 */
static void
test_drain_left_lets_a_module_refuse(void **state)
{
	uint8_t buf[GOPRO_STATUS_FRAME_MAX];
	struct gopro_frame f;
	struct goprod g;
	int fd, fd2;

	(void)state;
	start_mode_top(&g, "drain", NULL, "goaway_grace = 10s\n");
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	expect_reply(fd, "v1:a");
	kill(g.pid, SIGHUP);
	assert_true(harness_read_frame(fd, buf, sizeof(buf), &f, 10) > 0);
	assert_int_equal(f.header.command, GOPRO_CMD_GOAWAY);
	harness_send(fd, CMD_TEST, "b");
	harness_expect_error(fd, GOPRO_ERR_UNAVAILABLE);
	expect_heartbeat(fd, "still open");
	fd2 = harness_connect(&g);
	harness_send(fd2, CMD_TEST, "b");
	expect_reply(fd2, "v1:b");
	close(fd);
	close(fd2);
	harness_stop(&g);
}

/* The example of gopro_module(3), cut out of the page by the build. */
static void
test_example_from_the_manual(void **state)
{
	char conf[1024];
	struct goprod g;
	int fd;

	(void)state;
	harness_start(&g, module_conf(conf, sizeof(conf), "upper",
	    "example_upper.so", "  prefix = \"> \"\n", NULL));
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "hello");
	expect_reply(fd, "> HELLO");
	close(fd);
	harness_stop(&g);
}

/* The echo module loaded from a file behaves as the built-in one. */
static void
test_echo_as_a_file(void **state)
{
	char conf[1024];
	struct goprod g;
	int fd;

	(void)state;
	harness_start(&g, module_conf(conf, sizeof(conf), "echo", "echo.so",
	    "  prefix = \"file: \"\n", NULL));
	fd = harness_connect(&g);
	harness_send(fd, GOPRO_CMD_MESSAGE, "x");
	harness_expect_frame(fd, GOPRO_CMD_MESSAGE, "file: x", 7);
	close(fd);
	harness_stop(&g);
}

/*
 * The bench module that completes every request from its own thread
 * (contrib/bench/module_thread.sh): pipelined MESSAGEs on two connections
 * get the echo, each connection's in its order.
 */
static void
test_thread_echo_module(void **state)
{
	char conf[1024], body[16], want[32];
	struct goprod g;
	int fd[2];

	(void)state;
	harness_start(&g, module_conf(conf, sizeof(conf), "thread_echo",
	    "thread_echo.so", "  max_inflight = 256\n", NULL));
	fd[0] = harness_connect(&g);
	fd[1] = harness_connect(&g);
	for (int i = 0; i < 200; i++) {
		snprintf(body, sizeof(body), "%d", i);
		harness_send(fd[i % 2], GOPRO_CMD_MESSAGE, body);
	}
	for (int i = 0; i < 200; i++) {
		snprintf(want, sizeof(want), "Server says: %d", i);
		harness_expect_frame(fd[i % 2], GOPRO_CMD_MESSAGE, want,
		    strlen(want));
	}
	close(fd[0]);
	close(fd[1]);
	harness_stop(&g);
}

/* The module totals of g's stats segment for module name. */
static struct stats_module
module_totals(const struct goprod *g, const char *name)
{
	struct stats_module m[STATS_MODULES], found;
	struct stats_snap snap;
	unsigned n;

	memset(&found, 0, sizeof(found));
	harness_snapshot(g, &snap);
	n = stats_module_totals(&snap.hdr, snap.entries, snap.hdr.nentries, m,
	    STATS_MODULES);
	for (unsigned i = 0; i < n; i++)
		if (strcmp(m[i].name, name) == 0)
			found = m[i];
	stats_snap_free(&snap);
	return found;
}

/* Per-module counters in the shared segment survive a worker's death. */
static void
test_module_stats(void **state)
{
	struct stats_module m;
	struct stats_snap snap;
	struct goprod g;
	char *text = NULL;
	size_t len = 0;
	FILE *mem;
	pid_t pid;
	int fd;

	(void)state;
	start_mode(&g, "never", "  timeout = 50ms\n");
	fd = harness_connect(&g);
	for (int i = 0; i < 3; i++) {
		harness_send(fd, CMD_TEST, "x");
		harness_expect_error(fd, GOPRO_ERR_REQUEST_TIMEOUT);
	}
	harness_send(fd, GOPRO_CMD_MESSAGE, "y");
	harness_expect_frame(fd, GOPRO_CMD_MESSAGE, "Server says: y", 14);
	m = module_totals(&g, "t");
	assert_int_equal(m.counter[STATS_MOD_requests], 3);
	assert_int_equal(m.counter[STATS_MOD_timeouts], 3);
	assert_int_equal(m.inflight, 0);
	assert_int_equal(module_totals(&g, "echo").counter[STATS_MOD_replies], 1);
	/* A request in flight when the worker dies, then the fold. */
	harness_send(fd, CMD_TEST, "z");
	assert_int_equal(harness_worker_pids(&g, &pid, 1), 1);
	kill(pid, SIGKILL);
	assert_true(harness_wait_closed(fd, 5));
	close(fd);
	for (int i = 0; i < 100 && !harness_answers(&g); i++)
		harness_sleep(0.02);
	m = module_totals(&g, "t");
	assert_true(m.counter[STATS_MOD_requests] >= 3);
	assert_true(m.counter[STATS_MOD_timeouts] >= 3);
	/* And /metrics has them with a module label. */
	harness_snapshot(&g, &snap);
	mem = open_memstream(&text, &len);
	assert_non_null(mem);
	stats_format_prometheus(mem, &snap);
	fclose(mem);
	stats_snap_free(&snap);
	assert_non_null(strstr(text, "gopro_module_timeouts_total{module=\"t\"} "));
	assert_non_null(strstr(text, "gopro_module_replies_total{module=\"echo\"} 1\n"));
	free(text);
	harness_stop(&g);
}

/* A callback that holds the loop past block_warn is logged and counted. */
static void
test_block_warn(void **state)
{
	struct goprod g;
	int fd;

	(void)state;
	start_mode_top(&g, "block", "  delay = 300ms\n", "block_warn = 100ms\n");
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	expect_reply(fd, "v1:a");
	close(fd);
	for (int i = 0; i < 100 && !harness_log_has(&g, "was blocked"); i++)
		harness_sleep(0.02);
	assert_true(harness_log_has(&g, "module t was called last"));
	assert_true(module_totals(&g, "t").counter[STATS_MOD_slow_callbacks] >=
	    1);
	harness_stop(&g);
}

#define KILL_CONNS 12
#define KILL_REQS 8

/* Module t's in-flight gauge in the worker pid's entry, all if pid is 0. */
static uint64_t
worker_inflight(const struct goprod *g, pid_t pid)
{
	struct stats_snap snap;
	uint64_t n = 0;

	harness_snapshot(g, &snap);
	for (unsigned i = 0; i < snap.hdr.nentries; i++) {
		const struct stats_entry *e = &snap.entries[i];

		if (e->state != STATS_STATE_RUNNING ||
		    (pid != 0 && e->pid != pid))
			continue;
		for (unsigned j = 0; j < STATS_MODULES; j++)
			if (strcmp(e->mod[j].name, "t") == 0)
				n += e->mod[j].inflight;
	}
	stats_snap_free(&snap);
	return n;
}

/* Replies read in order on fd until it closes or want arrive. */
static int
read_until_closed(int fd, int want)
{
	uint8_t buf[1024];
	struct gopro_frame f;
	char body[32];
	int got = 0;

	while (got < want &&
	    harness_read_frame(fd, buf, sizeof(buf), &f, 30) > 0) {
		snprintf(body, sizeof(body), "v1:%d", got);
		assert_int_equal(f.header.command, CMD_TEST);
		assert_int_equal(f.header.length, strlen(body));
		assert_memory_equal(f.body, body, f.header.length);
		got++;
	}
	return got;
}

/*
 * kill -9 of a worker in the middle of async requests (a module that
 * answers from a thread after a delay) loses only what was in flight on
 * it: every connection of the other worker gets every reply, and the
 * requests counted lost are the killed worker's in-flight ones, no more.
 */
static void
test_kill_worker_loses_only_its_inflight(void **state)
{
	int fd[KILL_CONNS], got, closed = 0, whole = 0;
	uint64_t inflight, lost_before, lost;
	bool other_busy;
	struct stats_values total;
	pid_t pids[2];
	char body[32];
	struct goprod g;

	(void)state;
	start_mode_top(&g, "thread_late", "  delay = 1s\n  timeout = 60s\n",
	    "workers = 2\n");
	for (int i = 0; i < 100 && harness_worker_pids(&g, pids, 2) < 2; i++)
		harness_sleep(0.02);
	assert_int_equal(harness_worker_pids(&g, pids, 2), 2);
	for (int c = 0; c < KILL_CONNS; c++) {
		fd[c] = harness_connect(&g);
		for (int r = 0; r < KILL_REQS; r++) {
			snprintf(body, sizeof(body), "%d", r);
			harness_send(fd[c], CMD_TEST, body);
		}
	}
	/* Every request at the module (or some answered already: the
	 * delay is not what the test relies on). */
	harness_totals(&g, &total);
	lost_before = total.counter[STATS_requests_lost];
	for (int i = 0; i < 500 &&
	    worker_inflight(&g, 0) < KILL_CONNS * KILL_REQS; i++)
		harness_sleep(0.002);
	/* The victim is a worker that holds requests; whether the other one
	 * holds any too depends on how SO_REUSEPORT spread the 12
	 * connections (all on one worker: a chance of 1 in 2048). */
	if (worker_inflight(&g, pids[0]) == 0) {
		pid_t t = pids[0];

		pids[0] = pids[1];
		pids[1] = t;
	}
	other_busy = worker_inflight(&g, pids[1]) > 0;
	inflight = worker_inflight(&g, pids[0]);
	kill(pids[0], SIGKILL);
	/* A connection that still answers a heartbeat after its replies is
	 * the other worker's; one that closed was the killed worker's. */
	for (int c = 0; c < KILL_CONNS; c++) {
		uint8_t buf[256];
		struct gopro_frame f;

		got = read_until_closed(fd[c], KILL_REQS);
		if (got == KILL_REQS) {
			harness_send(fd[c], GOPRO_CMD_HEARTBEAT, "hb");
			if (harness_read_frame(fd[c], buf, sizeof(buf), &f, 10) >
			    0) {
				assert_int_equal(f.header.command,
				    GOPRO_CMD_HEARTBEAT);
				whole++;
				close(fd[c]);
				continue;
			}
		}
		/* Short of replies only because the worker died. */
		assert_true(harness_wait_closed(fd[c], 5));
		closed++;
		close(fd[c]);
	}
	for (int i = 0; i < 250 && harness_worker_pids(&g, pids, 2) < 2; i++)
		harness_sleep(0.02);
	harness_totals(&g, &total);
	lost = total.counter[STATS_requests_lost] - lost_before;
	fprintf(stderr, "# killed worker: %llu in flight, %llu counted lost; "
	    "%d connections whole, %d cut\n", (unsigned long long)inflight,
	    (unsigned long long)lost, whole, closed);
	/* The other worker's connections got every reply. */
	if (other_busy)
		assert_true(whole > 0);
	assert_true(closed > 0);
	assert_true(lost <= inflight);
	/* What was in flight on the dead worker is counted, not forgotten. */
	assert_true(lost > 0 || inflight == 0);
	harness_stop(&g);
}

/*
 * A loop stuck past worker_stall_timeout: the master sends SIGABRT and a
 * new worker serves.
 */
static void
test_stalled_worker_is_killed(void **state)
{
	struct rlimit no_core = { 0, 0 };
	struct goprod g;
	pid_t before, after = 0;
	int fd;

	(void)state;
	/* The abort would leave a core file in the test's directory. */
	assert_int_equal(setrlimit(RLIMIT_CORE, &no_core), 0);
	start_mode_top(&g, "block", "  delay = 30s\n  timeout = 60s\n",
	    "worker_stall_timeout = 1s\n");
	assert_int_equal(harness_worker_pids(&g, &before, 1), 1);
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "stuck");
	assert_true(harness_wait_closed(fd, 10));
	close(fd);
	for (int i = 0; i < 250; i++) {
		if (harness_worker_pids(&g, &after, 1) == 1 && after != before)
			break;
		harness_sleep(0.02);
	}
	assert_true(after != before);
	assert_true(harness_log_has(&g, "made no progress"));
	assert_true(harness_log_has(&g, "Aborted"));
	assert_true(harness_answers(&g));
	harness_stop(&g);
}

/*
 * A reload to a module whose workers crash: after rollback_crashes crashes
 * the master goes back to the previous configuration and modules.
 */
static void
test_crash_loop_rolls_back(void **state)
{
	struct rlimit no_core = { 0, 0 };
	char conf[1024], out[4096], cmd[1024];
	struct stats_snap snap;
	struct goprod g;
	int fd;

	(void)state;
	assert_int_equal(setrlimit(RLIMIT_CORE, &no_core), 0);
	start_mode(&g, "sync", NULL);
	harness_rewrite_conf(&g, module_conf(conf, sizeof(conf), "t",
	    "mod_v2.so", "  mode = \"crash_init\"\n",
	    "rollback_crashes = 3\n"));
	kill(g.pid, SIGHUP);
	for (int i = 0; i < 500 && !harness_log_has(&g, "rolled back"); i++)
		harness_sleep(0.02);
	assert_true(harness_log_has(&g, "rolled back from generation 2"));
	harness_wait_settled(&g, 2);
	harness_snapshot(&g, &snap);
	assert_int_equal(snap.hdr.rollbacks, 1);
	assert_int_equal(snap.hdr.rollback_from, 2);
	stats_snap_free(&snap);
	/* The previous module serves again. */
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	expect_reply(fd, "v1:a");
	close(fd);
	snprintf(cmd, sizeof(cmd), "%s -c %s status", harness_program("GOPROCTL"),
	    g.conf_path);
	(void)harness_run(cmd, out, sizeof(out));
	if (strstr(out, "rollbacks") == NULL)
		fprintf(stderr, "goproctl status said:\n%s\n", out);
	assert_non_null(strstr(out, "generation 2 crashed"));
	harness_stop(&g);
}

/* A reload whose module does not load changes nothing. */
static void
test_reload_refuses_broken_module(void **state)
{
	char conf[1024];
	struct goprod g;
	int fd;

	(void)state;
	start_mode(&g, "sync", NULL);
	harness_rewrite_conf(&g, module_conf(conf, sizeof(conf), "t",
	    "mod_badabi.so", NULL, NULL));
	kill(g.pid, SIGHUP);
	for (int i = 0; i < 200 && !harness_log_has(&g, "reload failed"); i++)
		harness_sleep(0.02);
	assert_true(harness_log_has(&g, "built for module ABI 2.0"));
	fd = harness_connect(&g);
	harness_send(fd, CMD_TEST, "a");
	expect_reply(fd, "v1:a");
	close(fd);
	harness_stop(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_module_and_default_echo),
		cmocka_unit_test(test_thread_replies_in_order),
		cmocka_unit_test(test_offload),
		cmocka_unit_test(test_never_gets_error_11),
		cmocka_unit_test(test_late_answer_is_dropped),
		cmocka_unit_test(test_twice_is_answered_once),
		cmocka_unit_test(test_bad_replies_get_error_10),
		cmocka_unit_test(test_max_inflight_stops_reading),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_check_refuses_bad_modules),
		cmocka_unit_test(test_deploy_by_reload),
		cmocka_unit_test(test_reload_refuses_broken_module),
		cmocka_unit_test(test_drain_left_lets_a_module_refuse),
		cmocka_unit_test(test_example_from_the_manual),
		cmocka_unit_test(test_echo_as_a_file),
		cmocka_unit_test(test_thread_echo_module),
		cmocka_unit_test(test_module_stats),
		cmocka_unit_test(test_block_warn),
		cmocka_unit_test(test_stalled_worker_is_killed),
		cmocka_unit_test(test_kill_worker_loses_only_its_inflight),
		cmocka_unit_test(test_crash_loop_rolls_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
