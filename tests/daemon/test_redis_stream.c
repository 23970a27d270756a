/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_redis_stream.c - the redis_stream module against a real
 * redis-server (Debian's), which the test starts on a free loopback port
 * and stops by pid: every MESSAGE becomes a stream entry whose id is the
 * reply, the entry carries the body and the client, ERROR 10 answers while
 * Redis is down, and the module reconnects when it is back.  Skipped
 * without redis-server or without the module (no hiredis at build time).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static pid_t redis_pid;

static void
redis_start(int port)
{
	char portarg[16];

	snprintf(portarg, sizeof(portarg), "%d", port);
	redis_pid = fork();
	assert_true(redis_pid >= 0);
	if (redis_pid == 0) {
		execlp("redis-server", "redis-server", "--port", portarg,
		    "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		    "--loglevel", "warning", (char *)NULL);
		_exit(127);
	}
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

static int
teardown(void **state)
{
	(void)state;
	redis_kill();
	return 0;
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
	const char *so = getenv("GOPRO_REDIS_STREAM");
	char conf[1024], id[128], out[4096];
	int port = harness_free_port(), fd, got = -1;
	struct goprod g;

	(void)state;
	if (so == NULL || access(so, R_OK) != 0 ||
	    system("command -v redis-server >/dev/null") != 0)
		skip();
	redis_start(port);
	redis_wait_up(port);
	snprintf(conf, sizeof(conf), "module ingest {\n  path = \"%s\"\n"
	    "  port = %d\n  key = \"telemetry\"\n  maxlen = 1000\n"
	    "  reconnect = 200ms\n}\n", so, port);
	harness_start(&g, conf);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_ingest, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
