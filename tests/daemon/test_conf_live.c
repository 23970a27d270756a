/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_conf_live.c - integration tests of the configuration as a running
 * goprod uses it: a reload that cannot give every new worker its stats
 * entry fails instead of leaving slots without a worker, and goprod -t
 * and the start refuse paths that collide and a metrics_listen on a
 * listen address; a reload reads the configuration by the path given, a
 * link swapped to a new file included; as root, -t and the start refuse
 * files that the unprivileged user could not read again on a reload; a
 * start in the background that fails after detaching exits 1.  (test_conf.c tests the parsing itself.)
 */
#include <errno.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

/* Enough connections that every one of 64 workers holds some. */
#define HELD_CONNECTIONS 400

/* goproctl -c conf args; its exit status, its output in out. */
static int
goproctl(const struct goprod *g, const char *args, char *out, size_t len)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "'%s' -c '%s' %s 2>&1",
	    harness_program("GOPROCTL"), g->conf_path, args);
	return harness_run(cmd, out, len);
}

static uint32_t
reloads_failed(const struct goprod *g)
{
	struct stats_header h;

	harness_header(g, &h);
	return h.reloads_failed;
}

/*
 * The segment holds entries for two generations of 64 workers and a few
 * more.  While generation 1 drains its clients, generation 2 runs: a third
 * generation of 64 does not fit.  The reload must fail and say why (it
 * used to report success and leave most slots without a worker, their
 * connections queued for nobody).
 */
static void
test_reload_without_stats_entries_fails(void **state)
{
	static const char conf[] = "workers = 64\ndrain_timeout = 60s\n"
	    "goaway_grace = 60s\nidle_timeout = 120s\n";
	static int fds[HELD_CONNECTIONS];
	struct goprod g;
	char out[4096];

	harness_start(&g, conf);
	for (int i = 0; i < HELD_CONNECTIONS; i++)
		fds[i] = harness_connect(&g);
	assert_int_equal(goproctl(&g, "reload", out, sizeof(out)), 0);
	if (goproctl(&g, "reload", out, sizeof(out)) == 0)
		fail_msg("the second reload succeeded:\n%s", out);
	assert_non_null(strstr(out, "free worker entries"));
	assert_int_equal(reloads_failed(&g), 1);
	assert_true(harness_answers(&g));
	assert_false(harness_log_has(&g, "no free stats entry"));
	for (int i = 0; i < HELD_CONNECTIONS; i++)
		close(fds[i]);
	assert_int_equal(harness_stop(&g), 0);
}

/* stats_file = pid_file used to pass -t and start "successfully". */
static void
test_colliding_paths_refused(void **state)
{
	char out[4096];

	assert_int_equal(harness_check_conf(
	    "pid_file = \"/tmp/gopro-x/same\"\n"
	    "stats_file = \"/tmp/gopro-x/same\"\n", out, sizeof(out)), 1);
	assert_non_null(strstr(out, ":4: stats_file: \"/tmp/gopro-x/same\" "
	    "is the same file as pid_file (line 3)"));
	assert_int_equal(harness_check_conf(
	    "control_socket = \"/tmp/gopro-x/s\"\n"
	    "log = \"file:/tmp/gopro-x//s\"\n", out, sizeof(out)), 1);
	assert_non_null(strstr(out, ":4: log: "));
	assert_non_null(strstr(out, "same file as control_socket (line 3)"));
}

/* The kernel would share the port between the workers and metrics. */
static void
test_metrics_on_listen_address_refused(void **state)
{
	char out[4096], text[256];
	int port = harness_free_port();

	snprintf(text, sizeof(text), "listen = {\"127.0.0.1:%d\"}\n"
	    "metrics_listen = \"127.0.0.1:%d\"\n", port, port);
	assert_int_equal(harness_check_conf(text, out, sizeof(out)), 1);
	assert_non_null(strstr(out, ":4: metrics_listen: "));
	assert_non_null(strstr(out, "overlaps the listen address"));
	snprintf(text, sizeof(text), "listen = {\"127.0.0.1:%d\"}\n"
	    "metrics_listen = \"*:%d\"\n", port, port);
	assert_int_equal(harness_check_conf(text, out, sizeof(out)), 1);
	snprintf(text, sizeof(text), "listen = {\"*:%d\"}\n"
	    "metrics_listen = \"127.0.0.1:%d\"\n", port, port);
	assert_int_equal(harness_check_conf(text, out, sizeof(out)), 1);
	snprintf(text, sizeof(text), "listen = {\"127.0.0.1:%d\"}\n"
	    "metrics_listen = \"127.0.0.1:%d\"\n", port, port == 65535 ?
	    port - 1 : port + 1);
	assert_int_equal(harness_check_conf(text, out, sizeof(out)), 0);
}

/* The prefix a new connection's MESSAGE reply starts with is prefix. */
static bool
prefix_is(const struct goprod *g, const char *prefix)
{
	uint8_t buf[128];
	struct gopro_frame f;
	size_t len = strlen(prefix);
	int fd = harness_connect(g);
	bool ok;

	harness_send(fd, GOPRO_CMD_MESSAGE, "q");
	ok = harness_read_frame(fd, buf, sizeof(buf), &f, 5) > 0 &&
	    f.header.length == len + 1 && memcmp(f.body, prefix, len) == 0;
	close(fd);
	return ok;
}

/* Point the link path at target, atomically, as config tools do. */
static void
swap_link(const char *path, const char *target)
{
	char tmp[400];

	snprintf(tmp, sizeof(tmp), "%s.link", path);
	assert_int_equal(symlink(target, tmp), 0);
	assert_int_equal(rename(tmp, path), 0);
}

/*
 * -c live.conf, a link swapped to a new file, then a reload: the master
 * must read the new file (it used to resolve the link once at start and
 * read the old target on every reload, while goproctl said "reloaded").
 */
static void
test_symlinked_config_reread(void **state)
{
	struct goprod g;
	char v1[400], v2[400], out[4096];

	harness_prepare(&g, harness_free_port(), "message_prefix = \"v1: \"\n");
	snprintf(v1, sizeof(v1), "%s/v1.conf", g.dir);
	snprintf(v2, sizeof(v2), "%s/v2.conf", g.dir);
	assert_int_equal(rename(g.conf_path, v1), 0);
	harness_rewrite_conf(&g, "message_prefix = \"v2: \"\n");
	assert_int_equal(rename(g.conf_path, v2), 0);
	swap_link(g.conf_path, "v1.conf");
	harness_launch(&g);
	assert_true(prefix_is(&g, "v1: "));
	assert_true(harness_log_has(&g, "gopro.conf (read "));
	swap_link(g.conf_path, "v2.conf");
	assert_int_equal(goproctl(&g, "reload", out, sizeof(out)), 0);
	harness_wait_settled(&g, 1);
	assert_true(prefix_is(&g, "v2: "));
	/* The log names the link and the file it read. */
	snprintf(out, sizeof(out), "reloaded %s (read %s)", g.conf_path, v2);
	assert_true(harness_log_has(&g, out));
	assert_int_equal(harness_stop(&g), 0);
}

/*
 * As root with user = "nobody": a users file only root can read used to
 * pass -t and the start, and then fail every reload.  -t and the start
 * must refuse it, and the configuration file likewise.
 */
static void
test_unreadable_by_user_refused(void **state)
{
	char users[400], extra[600], cmd[1024], out[4096];
	struct passwd *pw = getpwnam("nobody");
	struct goprod g;

	if (geteuid() != 0 || pw == NULL)
		skip();
	/* In the harness's directory, removed by harness_stop. */
	harness_prepare(&g, harness_free_port(), NULL);
	assert_int_equal(chmod(g.dir, 0755), 0);
	snprintf(users, sizeof(users), "%s/users.XXXXXX", g.dir);
	harness_users_file(users, "alice", "secret", 1000);
	snprintf(extra, sizeof(extra), "user = \"nobody\"\nauth {\n"
	    " users_file = \"%s\"\n}\n", users);
	harness_rewrite_conf(&g, extra);
	assert_int_equal(chmod(g.conf_path, 0644), 0);
	snprintf(cmd, sizeof(cmd), "'%s' -t -c '%s'",
	    harness_program("GOPROD"), g.conf_path);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "auth.users_file"));
	assert_non_null(strstr(out, "not readable by user nobody"));
	/* The start fails at once; timeout stops an old goprod that runs. */
	snprintf(cmd, sizeof(cmd), "timeout -s TERM 10 '%s' -f -c '%s'",
	    harness_program("GOPROD"), g.conf_path);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "not readable by user nobody"));
	/* Readable through the group: fine. */
	assert_int_equal(chown(users, 0, pw->pw_gid), 0);
	assert_int_equal(chmod(users, 0640), 0);
	snprintf(cmd, sizeof(cmd), "'%s' -t -c '%s'",
	    harness_program("GOPROD"), g.conf_path);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 0);
	/* The configuration file itself. */
	assert_int_equal(chmod(g.conf_path, 0600), 0);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "the configuration file"));
	harness_stop(&g);
}

/*
 * Without -f, goprod used to exit 0 as soon as it had detached, so a start
 * that failed after that (here: the pid file names a live process, this
 * test) looked like a success.  The start's status must be the daemon's.
 */
static void
test_background_start_status(void **state)
{
	char cmd[1024], out[4096], pidfile[400];
	struct goprod g;
	FILE *f;

	harness_prepare(&g, harness_free_port(), NULL);
	snprintf(pidfile, sizeof(pidfile), "%s/goprod.pid", g.dir);
	assert_non_null(f = fopen(pidfile, "w"));
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	snprintf(cmd, sizeof(cmd), "'%s' -c '%s'", harness_program("GOPROD"),
	    g.conf_path);
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "the start failed after detaching"));
	assert_true(harness_log_has(&g, "already running"));
	assert_false(harness_answers(&g));
	unlink(pidfile);
	/* A start that succeeds exits 0 once the daemon serves. */
	assert_int_equal(harness_run(cmd, out, sizeof(out)), 0);
	assert_true(harness_answers(&g));
	assert_int_equal(goproctl(&g, "stop -t 20", out, sizeof(out)), 0);
	harness_stop(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_colliding_paths_refused),
		cmocka_unit_test(test_metrics_on_listen_address_refused),
		cmocka_unit_test(test_reload_without_stats_entries_fails),
		cmocka_unit_test(test_symlinked_config_reread),
		cmocka_unit_test(test_unreadable_by_user_refused),
		cmocka_unit_test(test_background_start_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
