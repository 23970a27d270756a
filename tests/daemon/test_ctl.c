/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_ctl.c - the control channel end to end: a ctl server in a libev loop
 * in a child process on a temporary socket, called with ctl_call and with
 * raw sockets.  Covers ok and error replies with detail lines, the request
 * size limit, a NUL in a request, socket mode 0660, refusing a live socket
 * and a file that is not a socket, replacing a stale socket, and unlinking
 * the path on stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

struct fixture {
	char dir[64];
	char path[128];
	pid_t server;
};

static int
handler(const char *command, char *reply, size_t len, void *arg)
{
	struct ev_loop *loop = arg;

	if (strcmp(command, "hello") == 0) {
		snprintf(reply, len, "world");
		return 0;
	}
	if (strcmp(command, "bad") == 0) {
		snprintf(reply, len, "a.conf:3: listen: bad address\n"
		    "a.conf:9: workers: not a number");
		return -1;
	}
	if (strcmp(command, "quit") == 0) {
		ev_break(loop, EVBREAK_ALL);
		return 0;
	}
	if (strcmp(command, "silent") == 0)
		return 0;
	snprintf(reply, len, "unknown command: %s", command);
	return -1;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void __attribute__((noreturn))
serve(const char *path)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ctl_server *s;
	char err[512];

	s = ctl_server_start(loop, path, (uid_t)-1, (gid_t)-1, handler, loop,
	    err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "%s\n", err);
		_exit(1);
	}
	ev_run(loop, 0);
	ctl_server_stop(s);
	ev_loop_destroy(loop);
	_exit(0);
}

static void
wait_ready(const char *path)
{
	char reply[64];

	for (int i = 0; i < 200; i++) {
		if (ctl_call(path, "hello", reply, sizeof(reply), 1.0) == 0)
			return;
		sleep_ms(10);
	}
	fail_msg("the control server on %s did not come up", path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_ctl.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/ctl.sock", f->dir);
	f->server = fork();
	assert_true(f->server >= 0);
	if (f->server == 0)
		serve(f->path);
	wait_ready(f->path);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char reply[64];
	int status;

	if (ctl_call(f->path, "quit", reply, sizeof(reply), 2.0) != 0)
		kill(f->server, SIGKILL);
	assert_int_equal(waitpid(f->server, &status, 0), f->server);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
test_ok_reply(void **state)
{
	struct fixture *f = *state;
	char reply[CTL_REPLY_MAX];

	assert_int_equal(ctl_call(f->path, "hello", reply, sizeof(reply), 2.0),
	    0);
	assert_string_equal(reply, "ok\nworld\n");
	assert_int_equal(ctl_call(f->path, "silent", reply, sizeof(reply),
	    2.0), 0);
	assert_string_equal(reply, "ok\n");
}

static void
test_error_reply(void **state)
{
	struct fixture *f = *state;
	char reply[CTL_REPLY_MAX];

	assert_int_equal(ctl_call(f->path, "bad", reply, sizeof(reply), 2.0),
	    1);
	assert_string_equal(reply, "error\na.conf:3: listen: bad address\n"
	    "a.conf:9: workers: not a number\n");
	assert_int_equal(ctl_call(f->path, "nope", reply, sizeof(reply), 2.0),
	    1);
	assert_string_equal(reply, "error\nunknown command: nope\n");
}

/* A reply larger than the buffer is cut, still NUL-terminated. */
static void
test_small_reply_buffer(void **state)
{
	struct fixture *f = *state;
	char reply[6];

	assert_int_equal(ctl_call(f->path, "hello", reply, sizeof(reply), 2.0),
	    0);
	assert_string_equal(reply, "ok\nwo");
}

/* Send raw bytes, return what the server answered before closing. */
static void
raw_call(const char *path, const void *req, size_t len, char *out,
    size_t cap)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct pollfd p;
	size_t have = 0;
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(write(fd, req, len), (ssize_t)len);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	while (have + 1 < cap && poll(&p, 1, 3000) == 1 &&
	    (n = read(fd, out + have, cap - 1 - have)) > 0)
		have += (size_t)n;
	out[have] = '\0';
	close(fd);
}

static void
test_oversized_request(void **state)
{
	struct fixture *f = *state;
	char req[CTL_REQUEST_MAX + 50], out[256];

	memset(req, 'a', sizeof(req));
	raw_call(f->path, req, sizeof(req), out, sizeof(out));
	assert_string_equal(out, "error\nrequest too long\n");
	/* The client-side limit matches: ctl_call refuses before sending. */
	req[CTL_REQUEST_MAX] = '\0';
	assert_int_equal(ctl_call(f->path, req, out, sizeof(out), 2.0), -1);
	assert_int_equal(errno, EMSGSIZE);
	/* The server still serves. */
	assert_int_equal(ctl_call(f->path, "hello", out, sizeof(out), 2.0), 0);
}

static void
test_raw_requests(void **state)
{
	struct fixture *f = *state;
	char out[256];

	raw_call(f->path, "hello\r\n", 7, out, sizeof(out));
	assert_string_equal(out, "ok\nworld\n");
	raw_call(f->path, "hel\0lo\n", 7, out, sizeof(out));
	assert_string_equal(out, "error\nrequest holds a NUL byte\n");
}

static void
test_mode_0660(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);
}

static void
test_refuses_live_socket(void **state)
{
	struct fixture *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char err[512] = "";

	assert_null(ctl_server_start(loop, f->path, (uid_t)-1, (gid_t)-1,
	    handler, loop, err, sizeof(err)));
	assert_non_null(strstr(err, "another goprod master"));
	assert_non_null(strstr(err, f->path));
	ev_loop_destroy(loop);
	/* The live server is untouched. */
	assert_int_equal(ctl_call(f->path, "hello", err, sizeof(err), 2.0), 0);
}

static void
test_stop_unlinks(void **state)
{
	struct fixture *f = *state;
	char reply[64];
	int status;

	assert_int_equal(ctl_call(f->path, "quit", reply, sizeof(reply), 2.0),
	    0);
	assert_int_equal(waitpid(f->server, &status, 0), f->server);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(ctl_call(f->path, "hello", reply, sizeof(reply), 1.0),
	    -1);
	assert_int_equal(errno, ENOENT);
	/* Restart for the teardown. */
	f->server = fork();
	assert_true(f->server >= 0);
	if (f->server == 0)
		serve(f->path);
	wait_ready(f->path);
}

/* Tests without the fixture server. */
static void
test_stale_socket_replaced(void **state)
{
	char dir[] = "/tmp/test_ctl.XXXXXX", path[64];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ctl_server *s;
	char err[512];
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	/* A socket file nobody listens on: what a crashed master leaves. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	assert_int_equal(ctl_call(path, "hello", err, sizeof(err), 1.0), -1);
	assert_int_equal(errno, ECONNREFUSED);
	s = ctl_server_start(loop, path, (uid_t)-1, (gid_t)-1, handler, loop,
	    err, sizeof(err));
	assert_non_null(s);
	ctl_server_stop(s);
	assert_int_equal(access(path, F_OK), -1);

	/* A regular file is never removed. */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_null(ctl_server_start(loop, path, (uid_t)-1, (gid_t)-1, handler,
	    loop, err, sizeof(err)));
	assert_non_null(strstr(err, "not a socket"));
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	rmdir(dir);
	ev_loop_destroy(loop);
}

static void
test_path_too_long(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char path[200], err[512], reply[16];

	memset(path, 'x', sizeof(path));
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_null(ctl_server_start(loop, path, (uid_t)-1, (gid_t)-1, handler,
	    loop, err, sizeof(err)));
	assert_non_null(strstr(err, "path longer than"));
	assert_int_equal(ctl_call(path, "hello", reply, sizeof(reply), 1.0), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ok_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_small_reply_buffer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_oversized_request, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_raw_requests, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mode_0660, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_live_socket, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop_unlinks, setup,
		    teardown),
		cmocka_unit_test(test_stale_socket_replaced),
		cmocka_unit_test(test_path_too_long),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
