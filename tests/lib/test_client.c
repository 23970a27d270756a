/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_client.c - the blocking client: frames read exactly (a second frame
 * stays in the socket), assembled from byte-by-byte writes, and the
 * distinct results for EOF, timeout, protocol error and a frame too large;
 * LOGIN through a fake server on a socketpair; connecting over loopback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gopro/client.h"
#include "gopro/gopro.h"

static void
sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* A child that writes data to fd one byte at a time, then exits. */
static pid_t
dribble(int fd, const uint8_t *data, size_t len)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	for (size_t i = 0; i < len; i++) {
		if (write(fd, data + i, 1) != 1)
			_exit(1);
		sleep_ms(1);
	}
	_exit(0);
}

static void
reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
}

static void
test_read_partial_and_exact(void **state)
{
	uint8_t wire[64], buf[64];
	struct gopro_frame f;
	size_t n1, n2;
	int sv[2];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	n1 = gopro_frame_write(wire, sizeof(wire), GOPRO_CMD_MESSAGE, "hello",
	    5);
	n2 = gopro_frame_write(wire + n1, sizeof(wire) - n1,
	    GOPRO_CMD_HEARTBEAT, NULL, 0);
	pid = dribble(sv[1], wire, n1 + n2);
	close(sv[1]);
	assert_int_equal(client_read_frame(sv[0], buf, sizeof(buf), &f, 5.0),
	    CLIENT_OK);
	assert_int_equal(f.header.command, GOPRO_CMD_MESSAGE);
	assert_int_equal(f.size, n1);
	assert_memory_equal(f.body, "hello", 5);
	assert_int_equal(client_read_frame(sv[0], buf, sizeof(buf), &f, 5.0),
	    CLIENT_OK);
	assert_int_equal(f.header.command, GOPRO_CMD_HEARTBEAT);
	assert_int_equal(f.size, n2);
	assert_int_equal(client_read_frame(sv[0], buf, sizeof(buf), &f, 5.0),
	    CLIENT_EOF);
	reap(pid);
	close(sv[0]);
}

static void
test_read_exact_leaves_next_frame(void **state)
{
	uint8_t wire[64], buf[64], rest[64];
	struct gopro_frame f;
	size_t n1, n2;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	n1 = gopro_frame_write(wire, sizeof(wire), GOPRO_CMD_MESSAGE, "ab", 2);
	n2 = gopro_frame_write(wire + n1, sizeof(wire) - n1, GOPRO_CMD_MESSAGE,
	    "cd", 2);
	assert_int_equal(write(sv[1], wire, n1 + n2), (ssize_t)(n1 + n2));
	assert_int_equal(client_read_frame(sv[0], buf, sizeof(buf), &f, 1.0),
	    CLIENT_OK);
	/* The second frame is still in the socket, untouched. */
	assert_int_equal(recv(sv[0], rest, sizeof(rest), MSG_DONTWAIT),
	    (ssize_t)n2);
	assert_memory_equal(rest, wire + n1, n2);
	close(sv[0]);
	close(sv[1]);
}

static void
test_read_eof_mid_frame(void **state)
{
	uint8_t wire[64], buf[64];
	struct gopro_frame f;
	size_t n;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	n = gopro_frame_write(wire, sizeof(wire), GOPRO_CMD_MESSAGE, "hello", 5);
	assert_int_equal(write(sv[1], wire, n - 2), (ssize_t)(n - 2));
	close(sv[1]);
	assert_int_equal(client_read_frame(sv[0], buf, sizeof(buf), &f, 1.0),
	    CLIENT_EOF);
	close(sv[0]);
}

static void
test_read_timeout(void **state)
{
	uint8_t buf[64];
	struct gopro_frame f;
	struct timespec a, b;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* Half a header, then silence. */
	assert_int_equal(write(sv[1], "GO", 2), 2);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(client_read_frame(sv[0], buf, sizeof(buf), &f, 0.1),
	    CLIENT_TIMEOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_true((double)(b.tv_sec - a.tv_sec) +
	    (double)(b.tv_nsec - a.tv_nsec) / 1e9 >= 0.09);
	close(sv[0]);
	close(sv[1]);
}

static void
test_read_protocol_errors(void **state)
{
	static const uint8_t bad_magic[] = { 'X', 'O', 1, 0, 0, 0, 0, 0 };
	static const uint8_t bad_version[] = { 'G', 'O', 9, 0, 0, 0, 0, 0 };
	uint8_t wire[64], buf[16];
	struct gopro_frame f;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], bad_magic, 8), 8);
	assert_int_equal(client_read_frame(sv[0], buf, sizeof(buf), &f, 1.0),
	    CLIENT_PROTOCOL);
	close(sv[0]);
	close(sv[1]);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], bad_version, 8), 8);
	assert_int_equal(client_read_frame(sv[0], buf, sizeof(buf), &f, 1.0),
	    CLIENT_PROTOCOL);
	close(sv[0]);
	close(sv[1]);

	/* 9 bytes of body do not fit in 16 bytes with the header. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], wire, gopro_frame_write(wire,
	    sizeof(wire), GOPRO_CMD_MESSAGE, "123456789", 9)), 17);
	assert_int_equal(client_read_frame(sv[0], buf, sizeof(buf), &f, 1.0),
	    CLIENT_TOO_LARGE);
	close(sv[0]);
	close(sv[1]);
}

static void
test_send_frame(void **state)
{
	uint8_t buf[64];
	struct gopro_frame f;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(client_send_frame(sv[0], GOPRO_CMD_MESSAGE, "hi", 2,
	    1.0), CLIENT_OK);
	assert_int_equal(client_read_frame(sv[1], buf, sizeof(buf), &f, 1.0),
	    CLIENT_OK);
	assert_int_equal(f.header.command, GOPRO_CMD_MESSAGE);
	assert_int_equal(f.header.length, 2);
	assert_memory_equal(f.body, "hi", 2);
	close(sv[1]);
	assert_int_equal(client_send_frame(sv[0], GOPRO_CMD_HEARTBEAT, NULL, 0,
	    1.0), CLIENT_ERROR);
	close(sv[0]);
}

static void
test_login(void **state)
{
	uint8_t buf[GOPRO_HEADER_SIZE + GOPRO_LOGIN_BODY_MAX];
	struct gopro_frame f;
	struct gopro_login login;
	int sv[2];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The fake server: check the LOGIN, answer LOGIN_ACK. */
		if (client_read_frame(sv[1], buf, sizeof(buf), &f, 2.0) !=
		    CLIENT_OK || f.header.command != GOPRO_CMD_LOGIN ||
		    gopro_login_parse(f.body, f.header.length, &login) < 0 ||
		    login.user_len != 5 || memcmp(login.user, "alice", 5) ||
		    login.password_len != 6 ||
		    memcmp(login.password, "secret", 6))
			_exit(1);
		_exit(client_send_frame(sv[1], GOPRO_CMD_LOGIN_ACK, NULL, 0,
		    1.0) == CLIENT_OK ? 0 : 1);
	}
	assert_int_equal(client_login(sv[0], "alice", "secret", buf,
	    sizeof(buf), &f, 2.0), CLIENT_OK);
	assert_int_equal(f.header.command, GOPRO_CMD_LOGIN_ACK);
	reap(pid);
	close(sv[0]);
	close(sv[1]);
}

static void
test_connect_loopback(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	char addr[64], err[256];
	int lfd, fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	fd = client_connect(addr, 2.0, err, sizeof(err));
	assert_true(fd >= 0);
	client_close(fd);
	close(lfd);
	/* Nobody listens there now. */
	assert_int_equal(client_connect(addr, 2.0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot connect to 127.0.0.1:"));
	assert_int_equal(client_connect("no-port", 1.0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not HOST:PORT"));
	assert_int_equal(client_connect("::1:80", 1.0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not HOST:PORT"));
	assert_int_equal(client_connect("[::1", 1.0, err, sizeof(err)), -1);
}

static void
test_result_text(void **state)
{
	assert_string_equal(client_result_text(CLIENT_OK), "ok");
	assert_string_equal(client_result_text(CLIENT_TIMEOUT), "timed out");
	assert_non_null(strstr(client_result_text(CLIENT_EOF), "closed"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_partial_and_exact),
		cmocka_unit_test(test_read_exact_leaves_next_frame),
		cmocka_unit_test(test_read_eof_mid_frame),
		cmocka_unit_test(test_read_timeout),
		cmocka_unit_test(test_read_protocol_errors),
		cmocka_unit_test(test_send_frame),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_connect_loopback),
		cmocka_unit_test(test_result_text),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
