/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_login.c - integration tests of LOGIN against a real goprod with a
 * users file: required login, wrong and right passwords, the attempt limit,
 * the per-address rate limit, that hashing never stalls other clients, the
 * warning for a users file that mixes hash costs, and a full login queue.
 */
#include <crypt.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"
#include "harness.h"

static char users_path[] = "/tmp/gopro-users-XXXXXX";

/* A users file with alice:wonderland hashed as sha512-crypt. */
static int
setup(void **state)
{
	harness_users_file(users_path, "alice", "wonderland", 5000);
	return 0;
}

static int
teardown(void **state)
{
	unlink(users_path);
	return 0;
}

static void
send_login(int fd, const char *user, const char *password)
{
	uint8_t buf[GOPRO_HEADER_SIZE + GOPRO_LOGIN_BODY_MAX];
	size_t n = gopro_login_write(buf, sizeof(buf), user, strlen(user),
	    password, strlen(password));

	assert_true(n > 0);
	harness_write(fd, buf, n);
}

static void
test_required_login_flow(void **state)
{
	struct goprod g;
	int fd;

	harness_start_auth(&g, users_path, "login_rate = 0");
	fd = harness_connect(&g);
	/* Before login: MESSAGE refused, HEARTBEAT fine. */
	harness_send(fd, GOPRO_CMD_MESSAGE, "hi");
	harness_expect_error(fd, GOPRO_ERR_AUTH_REQUIRED);
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, NULL, 0);
	/* Wrong password and unknown user: the same ERROR 6. */
	send_login(fd, "alice", "wrong");
	harness_expect_error(fd, GOPRO_ERR_AUTH_FAILED);
	send_login(fd, "bob", "wonderland");
	harness_expect_error(fd, GOPRO_ERR_AUTH_FAILED);
	/* Right password: LOGIN_ACK "OK", then MESSAGE works. */
	send_login(fd, "alice", "wonderland");
	harness_expect_frame(fd, GOPRO_CMD_LOGIN_ACK, "OK", 2);
	harness_send(fd, GOPRO_CMD_MESSAGE, "hi");
	harness_expect_frame(fd, GOPRO_CMD_MESSAGE, "Server says: hi", 15);
	/* A failed re-login logs the connection out. */
	send_login(fd, "alice", "nope");
	harness_expect_error(fd, GOPRO_ERR_AUTH_FAILED);
	harness_send(fd, GOPRO_CMD_MESSAGE, "hi");
	harness_expect_error(fd, GOPRO_ERR_AUTH_REQUIRED);
	close(fd);
	assert_int_equal(harness_stop(&g), 0);
}

/* Pipelined requests behind a LOGIN keep their order. */
static void
test_pipelined_login_keeps_order(void **state)
{
	uint8_t buf[512];
	struct goprod g;
	size_t n = 0;
	int fd;

	harness_start_auth(&g, users_path, "login_rate = 0");
	fd = harness_connect(&g);
	n += gopro_frame_write(buf + n, sizeof(buf) - n, GOPRO_CMD_HEARTBEAT,
	    "1", 1);
	n += gopro_login_write(buf + n, sizeof(buf) - n, "alice", 5,
	    "wonderland", 10);
	n += gopro_frame_write(buf + n, sizeof(buf) - n, GOPRO_CMD_MESSAGE,
	    "2", 1);
	harness_write(fd, buf, n);
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "1", 1);
	harness_expect_frame(fd, GOPRO_CMD_LOGIN_ACK, "OK", 2);
	harness_expect_frame(fd, GOPRO_CMD_MESSAGE, "Server says: 2", 14);
	close(fd);
	assert_int_equal(harness_stop(&g), 0);
}

/* The max_attempts-th consecutive failure closes the connection. */
static void
test_attempt_limit_closes(void **state)
{
	struct goprod g;
	int fd;

	harness_start_auth(&g, users_path, "login_rate = 0\n max_attempts = 3");
	fd = harness_connect(&g);
	send_login(fd, "alice", "one");
	harness_expect_error(fd, GOPRO_ERR_AUTH_FAILED);
	harness_send(fd, GOPRO_CMD_LOGIN, "malformed");
	harness_expect_error(fd, GOPRO_ERR_MALFORMED);
	send_login(fd, "alice", "three");
	harness_expect_error(fd, GOPRO_ERR_AUTH_FAILED);
	assert_true(harness_wait_closed(fd, 3));
	close(fd);
	assert_int_equal(harness_stop(&g), 0);
}

/* Over login_rate: ERROR 6 at once, without hashing, counted. */
static void
test_rate_limit(void **state)
{
	struct stats_values total;
	struct goprod g;
	int fd;

	harness_start_auth(&g, users_path,
	    "login_rate = 0.1\n login_burst = 2\n max_attempts = 100");
	fd = harness_connect(&g);
	for (int i = 0; i < 6; i++) {
		send_login(fd, "alice", "wrong");
		harness_expect_error(fd, GOPRO_ERR_AUTH_FAILED);
	}
	/* Even the right password is refused while over the rate. */
	send_login(fd, "alice", "wonderland");
	harness_expect_error(fd, GOPRO_ERR_AUTH_FAILED);
	harness_totals(&g, &total);
	assert_true(total.counter[STATS_logins_rate_limited] >= 4);
	assert_int_equal(total.counter[STATS_logins_ok], 0);
	close(fd);
	assert_int_equal(harness_stop(&g), 0);
}

/*
 * While logins hash, another client's heartbeats stay fast: hashing runs
 * off the event loop.  Bound: every heartbeat round trip under 100 ms
 * while ten slow logins are in flight (each hash takes a few ms to tens of ms).
 */
/*
 * One LOGIN against a slow hash (sha512-crypt at 500,000 rounds, a quarter
 * of a second or more) keeps the only hashing thread busy.  A loop that waited for
 * it would answer nothing meanwhile, so every heartbeat on another
 * connection must be answered while that LOGIN's reply is still owed: an
 * order of events, not a time limit.
 */
static void
test_hashing_does_not_stall_loop(void **state)
{
	char slow_users[] = "/tmp/gopro-users-slow-XXXXXX";
	struct goprod g;
	struct pollfd pending;
	int busy, fd;

	harness_users_file(slow_users, "alice", "wonderland", 500000);
	harness_start_auth(&g, slow_users,
	    "login_rate = 0\n max_attempts = 1000\n threads = 1");
	busy = harness_connect(&g);
	fd = harness_connect(&g);
	send_login(busy, "alice", "wrong-password");
	for (int i = 0; i < 10; i++) {
		harness_send(fd, GOPRO_CMD_HEARTBEAT, "");
		harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, NULL, 0);
	}
	pending = (struct pollfd){ .fd = busy, .events = POLLIN };
	assert_int_equal(poll(&pending, 1, 0), 0);
	harness_expect_error(busy, GOPRO_ERR_AUTH_FAILED);
	close(busy);
	close(fd);
	assert_int_equal(harness_stop(&g), 0);
	unlink(slow_users);
}

/* Lines of g's log holding text. */
static int
log_count(const struct goprod *g, const char *text)
{
	char line[1024];
	FILE *f = fopen(g->log_path, "r");
	int n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/* The code of the ERROR frame that answers a request on fd. */
static uint16_t
error_code(int fd)
{
	uint8_t buf[GOPRO_STATUS_FRAME_MAX];
	struct gopro_status st;
	struct gopro_frame f;

	if (harness_read_frame(fd, buf, sizeof(buf), &f, 30) < 0)
		fail_msg("no answer to a LOGIN within 30 s");
	assert_int_equal(f.header.command, GOPRO_CMD_ERROR);
	assert_int_equal(gopro_status_parse(f.body, f.header.length, &st), 0);
	return st.code;
}

#define LOGIN_FLOOD ((int)AUTH_POOL_QUEUE_MAX + 16)

/*
 * More LOGINs than the hashing queue holds (one thread, 200000 rounds,
 * about 0.1 s a hash): those that find the queue full, and those that wait
 * auth.queue_timeout (3 s) in it, get ERROR 7, unchecked, on a connection
 * that stays open although max_attempts is 1; the same connection then
 * logs in.  The refusals' warnings are rate-limited.  Before, each got
 * ERROR 6 and counted as a failed attempt, the queue had no time bound
 * and every refusal logged a line.
 */
static void
test_login_queue_full_is_busy(void **state)
{
	static int fds[LOGIN_FLOOD];
	char slow[] = "/tmp/gopro-users-XXXXXX";
	struct rlimit rl;
	struct goprod g;
	int busy = 0, failed = 0, open_fd = -1, lines;
	uint16_t code;
	double t0;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < LOGIN_FLOOD + 100)
		skip();
	if (rl.rlim_cur < LOGIN_FLOOD + 100) {
		rl.rlim_cur = LOGIN_FLOOD + 100;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	harness_users_file(slow, "alice", "wonderland", 200000);
	harness_start_auth(&g, slow, "threads = 1\n queue_timeout = 3s\n "
	    "login_rate = 0\n max_attempts = 1");
	t0 = harness_now();
	for (int i = 0; i < LOGIN_FLOOD; i++) {
		fds[i] = harness_connect(&g);
		send_login(fds[i], "alice", "wrong");
	}
	for (int i = 0; i < LOGIN_FLOOD; i++) {
		code = error_code(fds[i]);
		if (code == GOPRO_ERR_BUSY && open_fd < 0)
			open_fd = fds[i];
		busy += code == GOPRO_ERR_BUSY;
		failed += code == GOPRO_ERR_AUTH_FAILED;
	}
	lines = log_count(&g, "not checked");
	print_message("%d LOGINs: %d busy, %d checked and failed; %d warning "
	    "lines in %.1f s\n", LOGIN_FLOOD, busy, failed, lines,
	    harness_now() - t0);
	assert_int_equal(busy + failed, LOGIN_FLOOD);
	assert_true(busy >= LOGIN_FLOOD / 2);
	/*
	 * At most 5 lines per 10 s (conn.c), in each period the flood
	 * touched: a flood over TLS under the sanitizers lasts longer.
	 */
	assert_true(lines <= 5 * ((int)((harness_now() - t0) / 10) + 2));
	/* Still open, not counted as a failure: it can log in now. */
	harness_send(open_fd, GOPRO_CMD_HEARTBEAT, "open");
	harness_expect_frame(open_fd, GOPRO_CMD_HEARTBEAT, "open", 4);
	send_login(open_fd, "alice", "wonderland");
	harness_expect_frame(open_fd, GOPRO_CMD_LOGIN_ACK, "OK", 2);
	for (int i = 0; i < LOGIN_FLOOD; i++)
		close(fds[i]);
	assert_int_equal(harness_stop(&g), 0);
	unlink(slow);
}

/* goprod -t on a config with users as its users file; output in out. */
static int
check_with_users(const char *users, char *out, size_t len)
{
	char text[600];

	snprintf(text, sizeof(text), "auth {\n users_file = \"%s\"\n}\n",
	    users);
	return harness_check_conf(text, out, len);
}

static void
test_world_readable_users_file_refused(void **state)
{
	char out[2048];
	int rc;

	chmod(users_path, 0644);
	rc = check_with_users(users_path, out, sizeof(out));
	chmod(users_path, 0600);
	assert_non_null(strstr(out, users_path));
	assert_int_equal(rc, 1);
}

/*
 * A users file that mixes costs (5000 rounds on line 2, 1000 on line 3)
 * is accepted with a warning naming the lines, by goprod -t and at start.
 */
static void
test_mixed_costs_warned(void **state)
{
	char out[4096], mixed[] = "/tmp/gopro-users-XXXXXX";
	struct crypt_data data;
	struct goprod g;
	FILE *f;

	harness_users_file(mixed, "alice", "wonderland", 5000);
	assert_non_null(f = fopen(mixed, "a"));
	memset(&data, 0, sizeof(data));
	fprintf(f, "bob:%s\n", crypt_r("builder", "$6$rounds=1000$salt",
	    &data));
	fclose(f);
	assert_int_equal(check_with_users(mixed, out, sizeof(out)), 0);
	/* 5000 is sha512-crypt's default: its hash names no rounds. */
	if (strstr(out, "differ in method or cost") == NULL ||
	    strstr(out, "like line 2 ($6$)") == NULL ||
	    strstr(out, "$6$rounds=1000$ on line 3") == NULL)
		fail_msg("goprod -t said: %s", out);
	harness_start_auth(&g, mixed, "");
	if (!harness_log_has(&g, "$6$rounds=1000$ on line 3")) {
		harness_dump_log(&g);
		fail_msg("no warning in the log");
	}
	assert_int_equal(harness_stop(&g), 0);
	unlink(mixed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_required_login_flow),
		cmocka_unit_test(test_pipelined_login_keeps_order),
		cmocka_unit_test(test_attempt_limit_closes),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_hashing_does_not_stall_loop),
		cmocka_unit_test(test_world_readable_users_file_refused),
		cmocka_unit_test(test_mixed_costs_warned),
		cmocka_unit_test(test_login_queue_full_is_busy),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
