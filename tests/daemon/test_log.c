/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_log.c - what goprod's log says and how it says it.
 *
 * In-process, log.c writes into a temporary file that stands for standard
 * error: with JOURNAL_STREAM naming that file, every line is "<N>role: msg"
 * with the priority of sd-daemon(3) and no timestamp; without, a line has
 * an ISO 8601 timestamp with its UTC offset, the name, pid, role and
 * level; a flood through a rate limit ends in a "N more suppressed" line.
 * conf_diff says which options a reload changed.
 *
 * Against a real goprod started as under systemd (harness_start_journal):
 * the start line names the version, the configuration file, the listen
 * addresses, the workers and the pid; a refused connection, a failed
 * login and a protocol error are logged at notice with the client's
 * address (and the user); a reload logs what changed; and every line of
 * the journal stream has a priority prefix and no timestamp.
 */
#include "config.h"

#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>


#include "conf.h"
#include "harness.h"
#include "log.h"

/* ------------------------------------------------------------ in-process */

struct captured {
	char path[64];
	int saved_stderr;
};

/* Point stderr at a fresh file; as the journal when journal is true. */
static void
capture_start(struct captured *c, bool journal)
{
	struct stat st;
	char v[64];
	int fd;

	snprintf(c->path, sizeof(c->path), "/tmp/gopro-log-XXXXXX");
	fd = mkstemp(c->path);
	assert_true(fd >= 0);
	fflush(stderr);
	c->saved_stderr = dup(STDERR_FILENO);
	assert_true(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	close(fd);
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino + (journal ? 0 : 1));
	setenv("JOURNAL_STREAM", v, 1);
	log_init("goprod");
	assert_int_equal(log_open(LOG_TARGET_STDERR, NULL, LOG_DEBUG), 0);
	log_set_procname("master");
}

/* Restore stderr; the captured text, malloc'd. */
static char *
capture_end(struct captured *c)
{
	char *text = malloc(65536);
	FILE *f;
	size_t n;

	dup2(c->saved_stderr, STDERR_FILENO);
	close(c->saved_stderr);
	unsetenv("JOURNAL_STREAM");
	assert_non_null(text);
	f = fopen(c->path, "r");
	assert_non_null(f);
	n = fread(text, 1, 65535, f);
	text[n] = '\0';
	fclose(f);
	unlink(c->path);
	return text;
}

static bool
matches(const char *text, const char *pattern)
{
	regex_t re;
	bool m;

	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE |
	    REG_NOSUB), 0);
	m = regexec(&re, text, 0, NULL, 0) == 0;
	regfree(&re);
	if (!m)
		print_error("no line matches /%s/ in:\n%s", pattern, text);
	return m;
}

static void
log_every_level(void)
{
	log_warnx("a warning");
	log_notice("a notice");
	log_info("an info");
	log_debug("a debug");
	errno = ENOENT;
	log_warn("with errno");
}

static void
test_journal_priorities(void **state)
{
	struct captured c;
	char *text;

	(void)state;
	capture_start(&c, true);
	log_every_level();
	text = capture_end(&c);
	assert_string_equal(text,
	    "<4>master: a warning\n"
	    "<5>master: a notice\n"
	    "<6>master: an info\n"
	    "<7>master: a debug\n"
	    "<4>master: with errno: No such file or directory\n");
	free(text);
}

static void
test_plain_lines_carry_the_offset(void **state)
{
	struct captured c;
	char *text;

	(void)state;
	/* JOURNAL_STREAM names another file: stderr is not the journal. */
	capture_start(&c, false);
	log_every_level();
	text = capture_end(&c);
	assert_true(matches(text, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:"
	    "[0-9]{2}:[0-9]{2}\\.[0-9]{3}[+-][0-9]{2}:[0-9]{2} goprod\\["
	    "[0-9]+\\] master warning: a warning$"));
	assert_true(matches(text, " master notice: a notice$"));
	assert_true(matches(text, " master debug: a debug$"));
	assert_null(strchr(text, '<'));
	free(text);
}

static void
test_rate_limit_summary(void **state)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 2);
	struct captured c;
	char *text;

	(void)state;
	capture_start(&c, true);
	for (int i = 0; i < 5; i++)
		log_rl(&rl, LOG_NOTICE, "refused %d", i);
	/* The next period, without waiting for it. */
	rl.period_start -= 10;
	log_rl(&rl, LOG_NOTICE, "refused again");
	text = capture_end(&c);
	assert_string_equal(text,
	    "<5>master: refused 0\n"
	    "<5>master: refused 1\n"
	    "<5>master: (3 more suppressed in the last 10s)\n"
	    "<5>master: refused again\n");
	free(text);
}

static void
test_conf_diff(void **state)
{
	static const char old[] =
	    "listen = {\"127.0.0.1:1\"}\n"
	    "workers=\"2\"\n"
	    "# metrics_listen=\"\"\n"
	    "idle_timeout=\"60s\"\n"
	    "auth {\n"
	    "  max_attempts=\"3\"\n"
	    "}\n";
	static const char new[] =
	    "listen = {\"127.0.0.1:1\", \"127.0.0.1:2\"}\n"
	    "workers=\"3\"\n"
	    "metrics_listen=\"127.0.0.1:9\"\n"
	    "idle_timeout=\"60s\"\n"
	    "auth {\n"
	    "  max_attempts=\"5\"\n"
	    "}\n";
	char buf[512];

	(void)state;
	conf_diff(old, new, buf, sizeof(buf));
	assert_string_equal(buf, "listen {\"127.0.0.1:1\"} -> {\"127.0.0.1:1\", "
	    "\"127.0.0.1:2\"}, workers \"2\" -> \"3\", metrics_listen (unset) "
	    "-> \"127.0.0.1:9\", auth.max_attempts \"3\" -> \"5\"");
	conf_diff(old, old, buf, sizeof(buf));
	assert_string_equal(buf, "");
	/* Cut, never overrun. */
	conf_diff(old, new, buf, 16);
	assert_int_equal(strlen(buf), 15);
}

/* ------------------------------------------------------------ goprod */

/* Every line of the journal stream: "<N>role: text", N a priority. */
static void
assert_journal_lines(const struct goprod *g)
{
	char line[2048];
	FILE *f = fopen(g->log_path, "r");
	regex_t re;
	int n = 0;

	assert_non_null(f);
	assert_int_equal(regcomp(&re, "^<[0-7]>(master|metrics|worker "
	    "[0-9]+/g[0-9]+): ", REG_EXTENDED | REG_NOSUB), 0);
	while (fgets(line, sizeof(line), f) != NULL) {
		n++;
		if (regexec(&re, line, 0, NULL, 0) != 0)
			fail_msg("not a journal line: %s", line);
	}
	regfree(&re);
	fclose(f);
	assert_true(n > 3);
}

/* Wait (bounded) for a line of g's log that contains text. */
static void
expect_log(const struct goprod *g, const char *text)
{
	for (int i = 0; i < 500; i++) {
		if (harness_log_has(g, text))
			return;
		harness_sleep(0.02);
	}
	harness_dump_log(g);
	fail_msg("goprod never logged \"%s\"", text);
}

/*
 * A connection that got its heartbeat answered: the harness's own probe
 * may still count against max_connections = 1 for a moment.
 */
static int
connect_alone(const struct goprod *g)
{
	uint8_t buf[64];
	struct gopro_frame f;
	int fd;

	for (int i = 0; i < 250; i++) {
		fd = harness_connect(g);
		harness_send(fd, GOPRO_CMD_HEARTBEAT, "");
		if (harness_read_frame(fd, buf, sizeof(buf), &f, 5.0) > 0 &&
		    f.header.command == GOPRO_CMD_HEARTBEAT)
			return fd;
		close(fd);
		harness_sleep(0.02);
	}
	fail_msg("max_connections = 1 never let a connection in");
	return -1;
}

static void
test_goprod_under_journald(void **state)
{
	struct goprod g;
	char text[512];
	int fd, fd2;

	(void)state;
	harness_start_journal(&g, "max_connections = 1\nidle_timeout = 60s");
	snprintf(text, sizeof(text), "<5>master: goprod %s started: pid %ld, "
	    "configuration %s, listening on 127.0.0.1:%d, 1 workers",
	    PACKAGE_VERSION, (long)g.pid, g.conf_path, g.port);
	expect_log(&g, text);
	expect_log(&g, "<6>master: worker 0 started as pid ");
	/* One connection is the limit: the second is refused, and logged. */
	fd = connect_alone(&g);
	fd2 = harness_connect(&g);
	harness_expect_error(fd2, GOPRO_ERR_BUSY);
	close(fd2);
	expect_log(&g, "<5>worker 0/g1: connection from 127.0.0.1:");
	expect_log(&g, "refused: max_connections (1) reached");
	/* A protocol error closes the connection, with the address. */
	harness_write(fd, "GARBAGE-GARBAGE-GARBAGE", 23);
	harness_expect_error(fd, GOPRO_ERR_BAD_MAGIC);
	close(fd);
	expect_log(&g, "closed: protocol error: bad magic");
	/* A reload says what changed. */
	harness_rewrite_conf(&g, "max_connections = 1\nidle_timeout = 30s");
	kill(g.pid, SIGHUP);
	expect_log(&g, "<5>master: reload: changed idle_timeout \"60s\" -> "
	    "\"30s\"");
	harness_wait_settled(&g, 1);
	assert_journal_lines(&g);
	assert_int_equal(harness_stop(&g), 0);
}

static void
test_failed_login_is_a_notice(void **state)
{
	char users[] = "/tmp/gopro-users-XXXXXX";
	uint8_t buf[GOPRO_HEADER_SIZE + GOPRO_LOGIN_BODY_MAX];
	struct goprod g;
	size_t n;
	int fd;

	(void)state;
	harness_users_file(users, "alice", "wonderland", 5000);
	harness_start_auth(&g, users, "login_rate = 0");
	fd = harness_connect(&g);
	n = gopro_login_write(buf, sizeof(buf), "alice", 5, "wrong", 5);
	harness_write(fd, buf, n);
	harness_expect_error(fd, GOPRO_ERR_AUTH_FAILED);
	close(fd);
	expect_log(&g, "notice: failed login for user \"alice\" from "
	    "127.0.0.1:");
	assert_int_equal(harness_stop(&g), 0);
	unlink(users);
}

/* log_connections: one line at the close, with what a tcplog line has. */
static void
test_log_connections(void **state)
{
	struct goprod g;
	int fd;

	(void)state;
	harness_start(&g, "log_connections = on");
	fd = harness_connect(&g);
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "ping");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "ping", 4);
	close(fd);
	expect_log(&g, "info: connection from 127.0.0.1:");
	expect_log(&g, ": 1 frames, 12 bytes in; 1 frames, 12 bytes out; "
	    "client closed");
	assert_int_equal(harness_stop(&g), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal_priorities),
		cmocka_unit_test(test_plain_lines_carry_the_offset),
		cmocka_unit_test(test_rate_limit_summary),
		cmocka_unit_test(test_conf_diff),
		cmocka_unit_test(test_goprod_under_journald),
		cmocka_unit_test(test_failed_login_is_a_notice),
		cmocka_unit_test(test_log_connections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
