/*
 * test_bench_run.c - gopro-bench against a real goprod: a pipelined run
 * with a request budget must verify every reply (2000 ok, no error, none
 * lost, in the JSON summary), and a run across a reload must see the
 * GOAWAY, collect what it is owed, reconnect and still lose nothing.
 *
 * gopro-bench is found next to $GOPROD (both are built in src/).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

static char bench_path[512];

static int
setup(void **state)
{
	snprintf(bench_path, sizeof(bench_path), "%s",
	    harness_program("GOPRO_BENCH"));
	if (access(bench_path, X_OK) != 0)
		fail_msg("%s: %s", bench_path, strerror(errno));
	return 0;
}

/* Start gopro-bench with args; its stdout comes back through *out_fd. */
static pid_t
bench_start(char *const *args, int *out_fd)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		execv(bench_path, args);
		_exit(127);
	}
	close(p[1]);
	*out_fd = p[0];
	return pid;
}

/* Read everything, wait for the exit status. */
static char *
bench_finish(pid_t pid, int fd, int *status)
{
	size_t len = 0, cap = 65536;
	char *s = malloc(cap);
	ssize_t n;

	assert_non_null(s);
	while ((n = read(fd, s + len, cap - len - 1)) > 0)
		len += (size_t)n;
	s[len] = '\0';
	close(fd);
	assert_int_equal(waitpid(pid, status, 0), pid);
	return s;
}

/* The unsigned number after "key": in a flat JSON object. */
static unsigned long long
json_number(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	if (p == NULL)
		fail_msg("no %s in %s", key, json);
	return strtoull(p + strlen(pat), NULL, 10);
}

static void
test_pipelined_budget(void **state)
{
	struct goprod g;
	char *args[] = { bench_path, (char *)"-s", NULL, (char *)"-n",
		(char *)"2000", (char *)"-c", (char *)"4", (char *)"-P",
		(char *)"8", (char *)"-T", (char *)"message", (char *)"-b",
		(char *)"64", (char *)"--json", (char *)"--quiet", NULL };
	int fd, status;
	char *out;
	pid_t pid;

	harness_start(&g, NULL);
	args[2] = g.addr;
	pid = bench_start(args, &fd);
	out = bench_finish(pid, fd, &status);
	harness_stop(&g);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("gopro-bench failed (status %d): %s", status, out);
	assert_int_equal(json_number(out, "requests"), 2000);
	assert_int_equal(json_number(out, "errors"), 0);
	assert_int_equal(json_number(out, "lost"), 0);
	assert_int_equal(json_number(out, "connections_opened"), 4);
	assert_int_equal(json_number(out, "bytes_sent"), 2000 * (8 + 64));
	assert_non_null(strstr(out, "\"status\":\"ok\""));
	free(out);
}

static void
test_reload_goaway(void **state)
{
	struct goprod g;
	char *args[] = { bench_path, (char *)"-s", NULL, (char *)"-d",
		(char *)"1.5", (char *)"-c", (char *)"8", (char *)"-P",
		(char *)"4", (char *)"--json", (char *)"--quiet", NULL };
	int fd, status;
	char *out;
	pid_t pid;

	harness_start(&g, "goaway_grace = 1s\n");
	args[2] = g.addr;
	pid = bench_start(args, &fd);
	harness_sleep(0.5);
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	out = bench_finish(pid, fd, &status);
	harness_stop(&g);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("gopro-bench failed across a reload (status %d): %s",
		    status, out);
	assert_int_equal(json_number(out, "errors"), 0);
	assert_int_equal(json_number(out, "lost"), 0);
	assert_true(json_number(out, "goaway") >= 1);
	/* Connections that got a GOAWAY were replaced. */
	assert_true(json_number(out, "connections_opened") > 8);
	assert_true(json_number(out, "requests") > 0);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_budget),
		cmocka_unit_test(test_reload_goaway),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
