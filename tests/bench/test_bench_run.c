/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_bench_run.c - gopro-bench against a real goprod: a pipelined run
 * with a request budget must verify every reply (2000 ok, no error, none
 * lost, in the JSON summary), and a run across a reload must see the
 * GOAWAY, collect what it is owed, reconnect and still lose nothing.
 *
 * gopro-bench is found next to $GOPROD (both are built in src/).
 */
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
	harness_program_copy("GOPRO_BENCH", bench_path, sizeof(bench_path));
	return 0;
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
	pid = harness_spawn(args, &fd);
	out = harness_collect(pid, fd, &status);
	harness_stop(&g);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("gopro-bench failed (status %d): %s", status, out);
	assert_int_equal(harness_json_number(out, "requests"), 2000);
	assert_int_equal(harness_json_number(out, "errors"), 0);
	assert_int_equal(harness_json_number(out, "lost"), 0);
	assert_int_equal(harness_json_number(out, "connections_opened"), 4);
	assert_int_equal(harness_json_number(out, "bytes_sent"), 2000 * (8 + 64));
	assert_non_null(strstr(out, "\"status\":\"ok\""));
	free(out);
}

static void
test_reload_goaway(void **state)
{
	struct goprod g;
	char *args[] = { bench_path, (char *)"-s", NULL, (char *)"-d",
		(char *)"30", (char *)"-c", (char *)"8", (char *)"-P",
		(char *)"4", (char *)"--json", (char *)"--quiet", NULL };
	int fd, status;
	char *out;
	pid_t pid;

	harness_start(&g, "goaway_grace = 1s\n");
	args[2] = g.addr;
	pid = harness_spawn(args, &fd);
	harness_sleep(0.5);
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	/* The old worker is gone: its clients had their GOAWAY and left. */
	harness_wait_settled(&g, 1);
	harness_sleep(0.3);
	assert_int_equal(kill(pid, SIGINT), 0);
	out = harness_collect(pid, fd, &status);
	harness_stop(&g);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("gopro-bench failed across a reload (status %d): %s",
		    status, out);
	assert_int_equal(harness_json_number(out, "errors"), 0);
	assert_int_equal(harness_json_number(out, "lost"), 0);
	assert_true(harness_json_number(out, "goaway") >= 1);
	/* Connections that got a GOAWAY were replaced. */
	assert_true(harness_json_number(out, "connections_opened") > 8);
	assert_true(harness_json_number(out, "requests") > 0);
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
