/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_orphans.c - every child of the master dies with it.  A master
 * killed with SIGKILL cannot stop its children; the kernel must (parent
 * death signal), or an orphaned metrics process keeps its port and an
 * orphaned worker keeps serving beside the next goprod.  The test starts
 * every kind of child (workers, the metrics process, the check child of a
 * binary upgrade), kills the master with SIGKILL and waits, bounded, until
 * no child is left.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon.h"
#include "harness.h"

#define CHILDREN_MAX 16
#define GONE_TIMEOUT 10.0

/* The processes whose parent is pid, at most max of them. */
static int
children_of(pid_t parent, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while (n < max && (de = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atol(de->d_name), ppid;
		char state;

		if (pid > 0 && daemon_proc_state(pid, &state, &ppid) &&
		    ppid == parent && state != 'Z')
			out[n++] = pid;
	}
	closedir(d);
	return n;
}

/* Gone: no such process, or a zombie nobody has reaped yet. */
static bool
gone(pid_t pid)
{
	pid_t ppid;
	char state;

	return !daemon_proc_state(pid, &state, &ppid) || state == 'Z';
}

static int
wait_children(pid_t master, pid_t *out, int want, double timeout)
{
	double deadline = harness_now() + timeout;
	int n;

	while ((n = children_of(master, out, CHILDREN_MAX)) < want &&
	    harness_now() < deadline)
		harness_sleep(0.02);
	return n;
}

/* Kill the master with SIGKILL; every child in kids must be gone soon. */
static void
kill_master_expect_orphans_gone(struct goprod *g, pid_t *kids, int n)
{
	double deadline;
	int left;

	assert_int_equal(kill(g->pid, SIGKILL), 0);
	assert_int_equal(waitpid(g->pid, NULL, 0), g->pid);
	g->pid = 0;
	deadline = harness_now() + GONE_TIMEOUT;
	do {
		left = 0;
		for (int i = 0; i < n; i++)
			left += !gone(kids[i]);
		if (left > 0)
			harness_sleep(0.05);
	} while (left > 0 && harness_now() < deadline);
	for (int i = 0; i < n; i++)
		if (!gone(kids[i])) {
			print_error("child pid %ld outlived its master\n",
			    (long)kids[i]);
			kill(kids[i], SIGKILL);
		}
	harness_stop(g);
	assert_int_equal(left, 0);
}

static void
test_kill9_master_leaves_no_child(void **state)
{
	pid_t kids[CHILDREN_MAX];
	struct goprod g;
	char extra[128];
	int n;

	(void)state;
	snprintf(extra, sizeof(extra), "workers = 2\nmetrics_listen = "
	    "\"127.0.0.1:%d\"\ndrain_timeout = 2s\n", harness_free_port());
	harness_start(&g, extra);
	/* Two workers and the metrics process. */
	n = wait_children(g.pid, kids, 3, 10.0);
	assert_int_equal(n, 3);
	kill_master_expect_orphans_gone(&g, kids, n);
}

/*
 * The check child of a binary upgrade (goprod -t of the new binary) too:
 * the "new binary" here hangs, so the check is still running when the
 * master is killed.
 */
static void
test_kill9_master_during_upgrade_check(void **state)
{
	char dir[] = "/tmp/gopro-orphans-XXXXXX", bin[64], tmp[80], cmd[256];
	const char *goprod = harness_program("GOPROD");
	pid_t kids[CHILDREN_MAX];
	struct goprod g;
	FILE *f;
	int n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(bin, sizeof(bin), "%s/goprod", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", goprod, bin);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(setenv("GOPROD", bin, 1), 0);
	harness_start(&g, "workers = 1\n");
	assert_int_equal(setenv("GOPROD", goprod, 1), 0);
	/* The new binary: its check never ends. */
	snprintf(tmp, sizeof(tmp), "%s.new", bin);
	assert_non_null(f = fopen(tmp, "w"));
	fputs("#!/bin/sh\nexec sleep 30\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(tmp, 0755), 0);
	assert_int_equal(rename(tmp, bin), 0);
	assert_int_equal(kill(g.pid, SIGUSR2), 0);
	/* The worker and the check child. */
	n = wait_children(g.pid, kids, 2, 10.0);
	assert_int_equal(n, 2);
	kill_master_expect_orphans_gone(&g, kids, n);
	unlink(bin);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9_master_leaves_no_child),
		cmocka_unit_test(test_kill9_master_during_upgrade_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
