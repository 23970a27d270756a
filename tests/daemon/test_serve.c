/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_serve.c - integration tests of serving: a real goprod on loopback
 * answering heartbeats and messages byte for byte, pipelined, dribbled,
 * large, and the framing errors that end a connection or not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

static struct goprod server;

static int
setup(void **state)
{
	harness_start(&server, "idle_timeout = 30s\n");
	return 0;
}

static int
teardown(void **state)
{
	assert_int_equal(harness_stop(&server), 0);
	return 0;
}

static void
test_heartbeat_vector(void **state)
{
	static const uint8_t hb[] = { 0x47, 0x4F, 0x01, 0x00, 0, 0, 0, 0 };
	uint8_t reply[8];
	int fd = harness_connect(&server);

	harness_write(fd, hb, sizeof(hb));
	assert_int_equal(harness_read_exact(fd, reply, 8, 5), 0);
	assert_memory_equal(reply, hb, 8);
	close(fd);
}

static void
test_message_vector(void **state)
{
	static const uint8_t msg[] = { 0x47, 0x4F, 0x01, 0x01, 0, 0, 0, 2,
		0x68, 0x69 };
	static const uint8_t want[] = { 0x47, 0x4F, 0x01, 0x01, 0, 0, 0, 0x0F,
		'S', 'e', 'r', 'v', 'e', 'r', ' ', 's', 'a', 'y', 's', ':', ' ',
		'h', 'i' };
	uint8_t reply[sizeof(want)];
	int fd = harness_connect(&server);

	harness_write(fd, msg, sizeof(msg));
	assert_int_equal(harness_read_exact(fd, reply, sizeof(reply), 5), 0);
	assert_memory_equal(reply, want, sizeof(want));
	close(fd);
}

static void
test_heartbeat_echoes_body(void **state)
{
	uint8_t frame[64];
	int fd = harness_connect(&server);
	size_t n = gopro_frame_write(frame, sizeof(frame), GOPRO_CMD_HEARTBEAT,
	    "ping-42", 7);

	harness_write(fd, frame, n);
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "ping-42", 7);
	close(fd);
}

/* 1,000 frames in one write: 1,000 replies, in request order. */
static void
test_thousand_pipelined(void **state)
{
	size_t cap = 1000 * 32, off = 0;
	uint8_t *buf = malloc(cap);
	char body[16], want[32];
	int fd = harness_connect(&server);

	assert_non_null(buf);
	for (int i = 0; i < 1000; i++) {
		int len = snprintf(body, sizeof(body), "m%d", i);
		off += gopro_frame_write(buf + off, cap - off,
		    i % 2 ? GOPRO_CMD_MESSAGE : GOPRO_CMD_HEARTBEAT, body,
		    (size_t)len);
	}
	harness_write(fd, buf, off);
	for (int i = 0; i < 1000; i++) {
		int len = snprintf(body, sizeof(body), "m%d", i);
		if (i % 2) {
			int wl = snprintf(want, sizeof(want), "Server says: %s",
			    body);
			harness_expect_frame(fd, GOPRO_CMD_MESSAGE, want,
			    (size_t)wl);
		} else {
			harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, body,
			    (size_t)len);
		}
	}
	free(buf);
	close(fd);
}

/* A frame sent one byte at a time is answered once, correctly. */
static void
test_one_byte_at_a_time(void **state)
{
	uint8_t frame[32];
	size_t n = gopro_frame_write(frame, sizeof(frame), GOPRO_CMD_MESSAGE,
	    "slow", 4);
	int fd = harness_connect(&server);

	for (size_t i = 0; i < n; i++) {
		harness_write(fd, frame + i, 1);
		harness_sleep(0.005);
	}
	harness_expect_frame(fd, GOPRO_CMD_MESSAGE, "Server says: slow", 17);
	close(fd);
}

/* A body of exactly the maximum (10 MiB) is served. */
static void
test_ten_mib_body(void **state)
{
	size_t len = GOPRO_DEFAULT_MAX_BODY, prefix = 13;
	uint8_t *req = malloc(8 + len), *want = malloc(prefix + len);
	int fd = harness_connect(&server);
	pid_t writer;

	assert_non_null(req);
	assert_non_null(want);
	for (size_t i = 0; i < len; i++)
		req[8 + i] = (uint8_t)(i * 31 + 7);
	gopro_header_write(req, GOPRO_CMD_MESSAGE, (uint32_t)len);
	memcpy(want, "Server says: ", prefix);
	memcpy(want + prefix, req + 8, len);
	/* Write from a child: the reply flows back while we still send. */
	writer = fork();
	assert_true(writer >= 0);
	if (writer == 0) {
		harness_write(fd, req, 8 + len);
		_exit(0);
	}
	harness_expect_frame(fd, GOPRO_CMD_MESSAGE, want, prefix + len);
	waitpid(writer, NULL, 0);
	free(req);
	free(want);
	close(fd);
}

/* One byte over the maximum: ERROR 3 from the header alone, then close. */
static void
test_too_large(void **state)
{
	uint8_t hdr[8];
	int fd = harness_connect(&server);

	gopro_header_write(hdr, GOPRO_CMD_MESSAGE, GOPRO_DEFAULT_MAX_BODY + 1);
	harness_write(fd, hdr, 8);
	harness_expect_error(fd, GOPRO_ERR_TOO_LARGE);
	assert_true(harness_wait_closed(fd, 5));
	close(fd);
}

static void
test_bad_magic_closes(void **state)
{
	static const uint8_t bad[] = { 0x48, 0x54, 0x54, 0x50, 0, 0, 0, 0 };
	int fd = harness_connect(&server);

	harness_write(fd, bad, sizeof(bad));
	harness_expect_error(fd, GOPRO_ERR_BAD_MAGIC);
	assert_true(harness_wait_closed(fd, 5));
	close(fd);
}

static void
test_bad_version_closes(void **state)
{
	uint8_t hdr[8];
	int fd = harness_connect(&server);

	gopro_header_write(hdr, GOPRO_CMD_HEARTBEAT, 0);
	hdr[2] = 2;
	harness_write(fd, hdr, 8);
	harness_expect_error(fd, GOPRO_ERR_BAD_VERSION);
	assert_true(harness_wait_closed(fd, 5));
	close(fd);
}

/* Good frames before a bad magic are answered first, in order. */
static void
test_bad_magic_after_good_frames(void **state)
{
	uint8_t buf[64];
	size_t n = 0;
	int fd = harness_connect(&server);

	n += gopro_frame_write(buf, sizeof(buf), GOPRO_CMD_HEARTBEAT, "a", 1);
	n += gopro_frame_write(buf + n, sizeof(buf) - n, GOPRO_CMD_HEARTBEAT,
	    "b", 1);
	memcpy(buf + n, "XXXXXXXX", 8);
	harness_write(fd, buf, n + 8);
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "a", 1);
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "b", 1);
	harness_expect_error(fd, GOPRO_ERR_BAD_MAGIC);
	assert_true(harness_wait_closed(fd, 5));
	close(fd);
}

/* Unknown and server-only commands: ERROR 4, the connection stays. */
static void
test_unknown_command_keeps_connection(void **state)
{
	static const uint8_t cmds[] = { GOPRO_CMD_LOGIN_ACK, GOPRO_CMD_ERROR,
		GOPRO_CMD_GOAWAY, 0x06, 0x7F, 0xFF };
	uint8_t frame[32];
	int fd = harness_connect(&server);

	for (size_t i = 0; i < sizeof(cmds); i++) {
		size_t n = gopro_frame_write(frame, sizeof(frame), cmds[i],
		    "x", 1);
		harness_write(fd, frame, n);
		harness_expect_error(fd, GOPRO_ERR_UNKNOWN_COMMAND);
	}
	harness_write(fd, frame, gopro_frame_write(frame, sizeof(frame),
	    GOPRO_CMD_HEARTBEAT, NULL, 0));
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, NULL, 0);
	close(fd);
}

/* LOGIN without users file: well-formed gets LOGIN_ACK, malformed ERROR 9. */
static void
test_login_without_users_file(void **state)
{
	uint8_t frame[64];
	int fd = harness_connect(&server);
	size_t n = gopro_login_write(frame, sizeof(frame), "alice", 5, "pw", 2);

	harness_write(fd, frame, n);
	harness_expect_frame(fd, GOPRO_CMD_LOGIN_ACK, "OK", 2);
	n = gopro_frame_write(frame, sizeof(frame), GOPRO_CMD_LOGIN, "nosep", 5);
	harness_write(fd, frame, n);
	harness_expect_error(fd, GOPRO_ERR_MALFORMED);
	harness_write(fd, frame, gopro_frame_write(frame, sizeof(frame),
	    GOPRO_CMD_MESSAGE, "x", 1));
	harness_expect_frame(fd, GOPRO_CMD_MESSAGE, "Server says: x", 14);
	close(fd);
}

/*
 * The reference Go client's way: one request, then read its reply, over
 * and over on one connection, HEARTBEAT and MESSAGE only.
 */
static void
test_reference_client_style(void **state)
{
	uint8_t frame[64];
	int fd = harness_connect(&server);

	for (int i = 0; i < 50; i++) {
		harness_write(fd, frame, gopro_frame_write(frame, sizeof(frame),
		    GOPRO_CMD_HEARTBEAT, NULL, 0));
		harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, NULL, 0);
		harness_write(fd, frame, gopro_frame_write(frame, sizeof(frame),
		    GOPRO_CMD_MESSAGE, "Hello TCP World!", 16));
		harness_expect_frame(fd, GOPRO_CMD_MESSAGE,
		    "Server says: Hello TCP World!", 29);
	}
	close(fd);
}

/* A client that half-closes after its requests still gets every reply. */
static void
test_half_close_gets_replies(void **state)
{
	uint8_t buf[128];
	size_t n = 0;
	int fd = harness_connect(&server);

	for (int i = 0; i < 5; i++)
		n += gopro_frame_write(buf + n, sizeof(buf) - n,
		    GOPRO_CMD_HEARTBEAT, "h", 1);
	harness_write(fd, buf, n);
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 5; i++)
		harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "h", 1);
	assert_true(harness_wait_closed(fd, 5));
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heartbeat_vector),
		cmocka_unit_test(test_message_vector),
		cmocka_unit_test(test_heartbeat_echoes_body),
		cmocka_unit_test(test_thousand_pipelined),
		cmocka_unit_test(test_one_byte_at_a_time),
		cmocka_unit_test(test_ten_mib_body),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_bad_magic_closes),
		cmocka_unit_test(test_bad_version_closes),
		cmocka_unit_test(test_bad_magic_after_good_frames),
		cmocka_unit_test(test_unknown_command_keeps_connection),
		cmocka_unit_test(test_login_without_users_file),
		cmocka_unit_test(test_reference_client_style),
		cmocka_unit_test(test_half_close_gets_replies),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
