/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_client.c - the blocking client against a fake server on a unix
 * socket: replies assembled from byte-by-byte writes and pipelined ones
 * read in order, GOAWAY skipped and recorded, the distinct results for
 * EOF, timeout, protocol error and a frame too large, the checked
 * heartbeat/message/login calls; connecting over loopback and the address
 * forms; and against a real goprod over its unix listener.
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
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gopro/client.h"
#include "gopro/gopro.h"
#include "harness.h"

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

/* A client connected to the returned server end of a unix socket. */
static int
pair(struct gopro_client **cp)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/test_client.XXXXXX", addr[128];
	int lfd, sfd;

	assert_non_null(mkdtemp(dir));
	snprintf(un.sun_path, sizeof(un.sun_path), "%s/s", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&un, sizeof(un)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	*cp = gopro_client_new();
	assert_non_null(*cp);
	snprintf(addr, sizeof(addr), "unix:%s", un.sun_path);
	assert_int_equal(gopro_client_connect(*cp, addr, 2.0), GOPRO_OK);
	sfd = accept(lfd, NULL, NULL);
	assert_true(sfd >= 0);
	close(lfd);
	unlink(un.sun_path);
	rmdir(dir);
	return sfd;
}

static size_t
frame(uint8_t *out, size_t cap, uint8_t cmd, const char *body)
{
	return gopro_frame_write(out, cap, cmd, body, body ? strlen(body) : 0);
}

static void
test_recv_partial_and_pipelined(void **state)
{
	struct gopro_client *c;
	uint8_t wire[64];
	struct gopro_frame f;
	size_t n1, n2;
	int sfd = pair(&c);
	pid_t pid;

	n1 = frame(wire, sizeof(wire), GOPRO_CMD_MESSAGE, "hello");
	n2 = frame(wire + n1, sizeof(wire) - n1, GOPRO_CMD_HEARTBEAT, NULL);
	pid = dribble(sfd, wire, n1 + n2);
	close(sfd);
	assert_int_equal(gopro_client_recv(c, &f, 5.0), GOPRO_OK);
	assert_int_equal(f.header.command, GOPRO_CMD_MESSAGE);
	assert_int_equal(f.size, n1);
	assert_memory_equal(f.body, "hello", 5);
	assert_int_equal(gopro_client_recv(c, &f, 5.0), GOPRO_OK);
	assert_int_equal(f.header.command, GOPRO_CMD_HEARTBEAT);
	assert_int_equal(f.size, n2);
	assert_int_equal(gopro_client_recv(c, &f, 5.0), GOPRO_E_CLOSED);
	reap(pid);
	gopro_client_free(c);
}

static void
test_goaway_is_skipped(void **state)
{
	struct gopro_client *c;
	uint8_t wire[128];
	struct gopro_frame f;
	size_t n;
	int sfd = pair(&c);

	n = gopro_goaway_write(wire, sizeof(wire), GOPRO_GOAWAY_RELOAD, "bye");
	n += frame(wire + n, sizeof(wire) - n, GOPRO_CMD_MESSAGE, "ab");
	assert_int_equal(write(sfd, wire, n), (ssize_t)n);
	assert_int_equal(gopro_client_goaway(c), 0);
	assert_int_equal(gopro_client_recv(c, &f, 1.0), GOPRO_OK);
	assert_int_equal(f.header.command, GOPRO_CMD_MESSAGE);
	assert_int_equal(gopro_client_goaway(c), GOPRO_GOAWAY_RELOAD);
	close(sfd);
	gopro_client_free(c);
}

static void
test_recv_eof_mid_frame(void **state)
{
	struct gopro_client *c;
	uint8_t wire[64];
	struct gopro_frame f;
	size_t n;
	int sfd = pair(&c);

	n = frame(wire, sizeof(wire), GOPRO_CMD_MESSAGE, "hello");
	assert_int_equal(write(sfd, wire, n - 2), (ssize_t)(n - 2));
	close(sfd);
	assert_int_equal(gopro_client_recv(c, &f, 1.0), GOPRO_E_CLOSED);
	assert_non_null(strstr(gopro_client_error(c), "closed"));
	gopro_client_free(c);
}

static void
test_recv_timeout(void **state)
{
	struct gopro_client *c;
	struct gopro_frame f;
	struct timespec a, b;
	int sfd = pair(&c);

	/* Half a header, then silence. */
	assert_int_equal(write(sfd, "GO", 2), 2);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(gopro_client_recv(c, &f, 0.1), GOPRO_E_TIMEOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_true((double)(b.tv_sec - a.tv_sec) +
	    (double)(b.tv_nsec - a.tv_nsec) / 1e9 >= 0.09);
	close(sfd);
	gopro_client_free(c);
}

static void
expect_recv(const uint8_t *wire, size_t n, uint32_t max_reply, int want)
{
	struct gopro_client *c;
	struct gopro_frame f;
	int sfd = pair(&c);

	gopro_client_set_max_reply(c, max_reply);
	assert_int_equal(write(sfd, wire, n), (ssize_t)n);
	assert_int_equal(gopro_client_recv(c, &f, 1.0), want);
	/* The stream cannot be trusted any more. */
	assert_int_equal(gopro_client_recv(c, &f, 1.0), want);
	close(sfd);
	gopro_client_free(c);
}

static void
test_recv_protocol_errors(void **state)
{
	static const uint8_t bad_magic[] = { 'X', 'O', 1, 0, 0, 0, 0, 0 };
	static const uint8_t bad_version[] = { 'G', 'O', 9, 0, 0, 0, 0, 0 };
	uint8_t wire[64];

	expect_recv(bad_magic, 8, 100, GOPRO_E_PROTOCOL);
	expect_recv(bad_version, 8, 100, GOPRO_E_PROTOCOL);
	/* 9 bytes of body over a limit of 8. */
	expect_recv(wire, frame(wire, sizeof(wire), GOPRO_CMD_MESSAGE,
	    "123456789"), 8, GOPRO_E_TOO_LARGE);
}

static void
test_send_and_closed_peer(void **state)
{
	struct gopro_client *c;
	struct gopro_reader *r = gopro_reader_new(64);
	uint8_t buf[64];
	struct gopro_frame f;
	int sfd = pair(&c);
	ssize_t n;

	assert_int_equal(gopro_client_send(c, GOPRO_CMD_MESSAGE, "hi", 2,
	    1.0), GOPRO_OK);
	n = read(sfd, buf, sizeof(buf));
	assert_int_equal(n, 10);
	assert_int_equal(gopro_reader_feed(r, buf, (size_t)n), GOPRO_OK);
	assert_int_equal(gopro_reader_next(r, &f), 1);
	assert_int_equal(f.header.command, GOPRO_CMD_MESSAGE);
	assert_memory_equal(f.body, "hi", 2);
	gopro_reader_free(r);
	close(sfd);
	/* No SIGPIPE (the test does not ignore it): a result. */
	signal(SIGPIPE, SIG_DFL);
	n = 0;
	for (int i = 0; i < 100 && n == 0; i++)
		n = gopro_client_send(c, GOPRO_CMD_HEARTBEAT, NULL, 0, 1.0);
	assert_int_equal(n, GOPRO_E_CLOSED);
	signal(SIGPIPE, SIG_IGN);
	gopro_client_free(c);
}

/* A fake server in a child: read one frame, check it, send reply. */
static pid_t
serve_one(int sfd, uint8_t want_cmd, const uint8_t *reply, size_t n)
{
	pid_t pid = fork();
	struct gopro_reader *r;
	struct gopro_frame f;
	uint8_t buf[2048];
	ssize_t got;

	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	r = gopro_reader_new(sizeof(buf));
	while (gopro_reader_next(r, &f) == 0) {
		if ((got = read(sfd, buf, sizeof(buf))) <= 0)
			_exit(1);
		(void)gopro_reader_feed(r, buf, (size_t)got);
	}
	if (f.header.command != want_cmd)
		_exit(2);
	if (want_cmd == GOPRO_CMD_LOGIN) {
		struct gopro_login l;

		if (gopro_login_parse(f.body, f.header.length, &l) < 0 ||
		    l.user_len != 5 || memcmp(l.user, "alice", 5))
			_exit(3);
	}
	_exit(write(sfd, reply, n) == (ssize_t)n ? 0 : 4);
}

static void
checked(uint8_t cmd, const uint8_t *reply, size_t n, int want)
{
	struct gopro_client *c;
	struct gopro_frame f;
	int sfd = pair(&c), rc = -100;
	pid_t pid = serve_one(sfd, cmd, reply, n);

	if (cmd == GOPRO_CMD_HEARTBEAT)
		rc = gopro_client_heartbeat(c, "ping", 4, 2.0);
	else if (cmd == GOPRO_CMD_MESSAGE)
		rc = gopro_client_message(c, "hi", 2, &f, 2.0);
	else if (cmd == GOPRO_CMD_LOGIN)
		rc = gopro_client_login(c, "alice", "secret", 2.0);
	assert_int_equal(rc, want);
	reap(pid);
	close(sfd);
	gopro_client_free(c);
}

static void
test_checked_calls(void **state)
{
	uint8_t w[128];

	checked(GOPRO_CMD_HEARTBEAT, w, frame(w, sizeof(w),
	    GOPRO_CMD_HEARTBEAT, "ping"), GOPRO_OK);
	checked(GOPRO_CMD_HEARTBEAT, w, frame(w, sizeof(w),
	    GOPRO_CMD_HEARTBEAT, "pong"), GOPRO_E_PROTOCOL);
	checked(GOPRO_CMD_MESSAGE, w, frame(w, sizeof(w), GOPRO_CMD_MESSAGE,
	    "Server says: hi"), GOPRO_OK);
	checked(GOPRO_CMD_MESSAGE, w, gopro_error_write(w, sizeof(w),
	    GOPRO_ERR_AUTH_REQUIRED, "log in"), GOPRO_E_SERVER);
	checked(GOPRO_CMD_LOGIN, w, frame(w, sizeof(w), GOPRO_CMD_LOGIN_ACK,
	    "OK"), GOPRO_OK);
	checked(GOPRO_CMD_LOGIN, w, gopro_error_write(w, sizeof(w),
	    GOPRO_ERR_AUTH_FAILED, "no"), GOPRO_E_AUTH);
}

static void
test_connect_addresses(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct gopro_client *c = gopro_client_new();
	socklen_t len = sizeof(sin);
	char addr[64];
	int lfd, fds;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(gopro_client_connect(c, addr, 2.0), GOPRO_OK);
	assert_true(gopro_client_fd(c) >= 0);
	close(lfd);
	/* Nobody listens there now; the old connection is closed first. */
	assert_int_equal(gopro_client_connect(c, addr, 2.0), GOPRO_E_CONNECT);
	assert_int_equal(gopro_client_fd(c), -1);
	assert_non_null(strstr(gopro_client_error(c),
	    "cannot connect to 127.0.0.1:"));
	assert_int_equal(gopro_client_connect(c, "no-port", 1.0),
	    GOPRO_E_ADDRESS);
	assert_non_null(strstr(gopro_client_error(c), "not HOST:PORT"));
	assert_int_equal(gopro_client_connect(c, "::1:80", 1.0),
	    GOPRO_E_ADDRESS);
	assert_int_equal(gopro_client_connect(c, "[::1", 1.0),
	    GOPRO_E_ADDRESS);
	assert_int_equal(gopro_client_connect(c, "unix:", 1.0),
	    GOPRO_E_ADDRESS);
	assert_int_equal(gopro_client_connect(c, "/nonexistent/sock", 1.0),
	    GOPRO_E_CONNECT);
	assert_int_equal(gopro_client_recv(c, &(struct gopro_frame){ 0 }, 1.0),
	    GOPRO_E_NOT_CONNECTED);
	/* No descriptor is left behind by a failed connect. */
	fds = harness_open_fds();
	for (int i = 0; i < 20; i++)
		assert_int_equal(gopro_client_connect(c, addr, 1.0),
		    GOPRO_E_CONNECT);
	assert_int_equal(harness_open_fds(), fds);
	gopro_client_free(c);
}

/* goprod's unix listener: the checked calls and pipelining over it. */
static void
test_goprod_unix_listener(void **state)
{
	struct goprod g;
	struct gopro_client *c = gopro_client_new();
	struct gopro_frame f;
	char addr[320], want[16];

	harness_start_unix(&g, "workers = 2\n", addr, sizeof(addr));
	assert_int_equal(gopro_client_connect(c, addr, 5.0), GOPRO_OK);
	assert_int_equal(gopro_client_heartbeat(c, "unix", 4, 5.0), GOPRO_OK);
	assert_int_equal(gopro_client_message(c, "hello", 5, &f, 5.0),
	    GOPRO_OK);
	assert_int_equal(f.header.length, strlen("Server says: hello"));
	assert_memory_equal(f.body, "Server says: hello", f.header.length);
	for (int i = 0; i < 50; i++) {
		snprintf(want, sizeof(want), "m%d", i);
		assert_int_equal(gopro_client_send(c, GOPRO_CMD_MESSAGE, want,
		    strlen(want), 5.0), GOPRO_OK);
	}
	for (int i = 0; i < 50; i++) {
		snprintf(want, sizeof(want), "m%d", i);
		assert_int_equal(gopro_client_recv(c, &f, 5.0), GOPRO_OK);
		assert_int_equal(f.header.command, GOPRO_CMD_MESSAGE);
		assert_true(f.header.length > strlen(want));
		assert_memory_equal(f.body + f.header.length - strlen(want),
		    want, strlen(want));
	}
	gopro_client_free(c);
	assert_int_equal(harness_stop(&g), 0);
}

static void
test_strerror(void **state)
{
	assert_string_equal(gopro_strerror(GOPRO_OK), "ok");
	assert_string_equal(gopro_strerror(GOPRO_E_TIMEOUT), "timed out");
	assert_non_null(strstr(gopro_strerror(GOPRO_E_CLOSED), "closed"));
	for (int r = GOPRO_RESULT_MIN; r <= 0; r++)
		assert_string_not_equal(gopro_strerror(r), "unknown result");
	assert_string_equal(gopro_strerror(GOPRO_RESULT_MIN - 1),
	    "unknown result");
	assert_string_equal(gopro_strerror(1), "unknown result");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recv_partial_and_pipelined),
		cmocka_unit_test(test_goaway_is_skipped),
		cmocka_unit_test(test_recv_eof_mid_frame),
		cmocka_unit_test(test_recv_timeout),
		cmocka_unit_test(test_recv_protocol_errors),
		cmocka_unit_test(test_send_and_closed_peer),
		cmocka_unit_test(test_checked_calls),
		cmocka_unit_test(test_connect_addresses),
		cmocka_unit_test(test_goprod_unix_listener),
		cmocka_unit_test(test_strerror),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
