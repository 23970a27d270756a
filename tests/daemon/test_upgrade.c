/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_upgrade.c - the binary-upgrade state (upgrade.c): what a master
 * writes reads back the same, and the reader refuses a state that is
 * damaged, incomplete or from another protocol instead of guessing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "upgrade.h"

static struct gopro_conf *
sample_conf(void)
{
	struct gopro_conf *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->path = strdup("/etc/gopro.conf");
	c->user = strdup("");
	c->pid_file = strdup("/run/goprod/goprod.pid");
	c->stats_file = strdup("/run/goprod/goprod.stats");
	c->control_socket = strdup("/run/goprod/goprod.sock");
	c->workers = 2;
	c->log_target = LOG_TARGET_SYSLOG;
	c->log_level = 6;
	c->drain_timeout = 30;
	c->listen[0].text = strdup("127.0.0.1:8888");
	c->listen[1].text = strdup("[::1]:8888");
	c->listen[1].proxy = true;
	c->nlisten = 2;
	return c;
}

static void
sample_state(struct upgrade_state *st)
{
	upgrade_state_init(st);
	st->exe = strdup("/usr/sbin/goprod");
	st->conf = sample_conf();
	st->old_exe_fd = 9;
	st->generation = 7;
	st->stats_fd = 5;
	st->ctl_fd = 6;
	st->client_fd = 8;
	st->debug = true;
	st->fds[0][0] = 10;
	st->fds[0][1] = 11;
	st->fds[1][0] = 12;
	st->fds[1][1] = 13;
	st->procs[0] = (struct upgrade_proc){ 3, 1234, 1, 7, false };
	st->procs[1] = (struct upgrade_proc){ 4, 1235, 0, 6, true };
	st->nprocs = 2;
	st->restarts[1] = 3;
}

static void
test_round_trip(void **state)
{
	struct upgrade_state a, b;
	char err[512];
	int fd = memfd_create("test", 0);

	assert_true(fd >= 0);
	sample_state(&a);
	assert_int_equal(upgrade_state_write(fd, &a, err, sizeof(err)), 0);
	if (upgrade_state_read(fd, &b, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_string_equal(b.exe, "/usr/sbin/goprod");
	assert_string_equal(b.conf->path, "/etc/gopro.conf");
	assert_string_equal(b.conf->user, "");
	assert_null(b.conf->group);
	assert_string_equal(b.conf->control_socket, "/run/goprod/goprod.sock");
	assert_int_equal(b.conf->nlisten, 2);
	assert_string_equal(b.conf->listen[1].text, "[::1]:8888");
	assert_true(b.conf->listen[1].proxy);
	assert_int_equal(b.conf->workers, 2);
	assert_int_equal(b.conf->log_target, LOG_TARGET_SYSLOG);
	assert_int_equal(b.generation, 7);
	assert_int_equal(b.old_exe_fd, 9);
	assert_int_equal(b.client_fd, 8);
	assert_int_equal(b.metrics_fd, -1);
	assert_true(b.debug);
	assert_false(b.foreground);
	assert_memory_equal(a.fds, b.fds, sizeof(a.fds));
	assert_int_equal(b.nprocs, 2);
	assert_memory_equal(&a.procs[1], &b.procs[1], sizeof(a.procs[1]));
	assert_int_equal(b.restarts[1], 3);
	upgrade_state_free(&a);
	upgrade_state_free(&b);
	close(fd);
}

/* A newline in a path would start a line of the reader's choosing. */
static void
test_newline_refused(void **state)
{
	struct upgrade_state a;
	char err[512];
	int fd = memfd_create("test", 0);

	sample_state(&a);
	free(a.conf->pid_file);
	a.conf->pid_file = strdup("/tmp/x\nctl_fd 0");
	assert_int_equal(upgrade_state_write(fd, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "newline"));
	upgrade_state_free(&a);
	close(fd);
}

/* The state with one line appended (or replacing the first, when first). */
static int
parse_with(const char *line, bool first, char *err, size_t errlen)
{
	struct upgrade_state a, b;
	char *text = NULL;
	size_t len;
	FILE *f;
	int fd = memfd_create("test", 0), rc;
	char *buf;

	sample_state(&a);
	assert_int_equal(upgrade_state_write(fd, &a, err, errlen), 0);
	upgrade_state_free(&a);
	buf = calloc(1, UPGRADE_STATE_MAX);
	assert_true(pread(fd, buf, UPGRADE_STATE_MAX - 1, 0) > 0);
	f = open_memstream(&text, &len);
	if (first)
		fprintf(f, "%s\n%s", line, strchr(buf, '\n') + 1);
	else
		fprintf(f, "%s%s\n", buf, line);
	fclose(f);
	rc = upgrade_state_parse(text, &b, err, errlen);
	if (rc == 0)
		upgrade_state_free(&b);
	free(text);
	free(buf);
	close(fd);
	return rc;
}

static void
test_hostile_lines(void **state)
{
	static const char *const bad[] = {
		"sock 16 0 3",            /* address index out of range */
		"sock 0 64 3",            /* slot out of range */
		"sock 0 0 10",            /* that entry is taken already */
		"proc 144 99 0 1 0",      /* stats entry out of range */
		"proc 1 1 0 1 0",         /* pid 1 is never a worker */
		"proc 1 99 0 1 2",        /* draining is 0 or 1 */
		"workers 65",
		"generation 0",
		"stats_fd x",
		"ctl_fd 5 6",
		"listen 3 0 127.0.0.1:1", /* not the next index */
		"listen 2 0 nowhere",     /* not an address */
		"exe /bin/sh",            /* twice */
		"frobnicate 1",
		"nospace",
	};
	char err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_with(bad[i], false, err, sizeof(err)) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_equal(parse_with("listen 2 1 127.0.0.2:1", false, err,
	    sizeof(err)), 0);
	assert_int_equal(parse_with("gopro-upgrade 2", true, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "line 1"));
}

static void
test_incomplete(void **state)
{
	struct upgrade_state st;
	char text[] = "gopro-upgrade 1\nexe /usr/sbin/goprod\n";
	char err[512];

	assert_int_equal(upgrade_state_parse(text, &st, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "incomplete"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_newline_refused),
		cmocka_unit_test(test_hostile_lines),
		cmocka_unit_test(test_incomplete),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
