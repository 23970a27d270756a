/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_goproctl.c - integration tests of goproctl against a real goprod:
 * exact counters in `stats --json` for traffic of known size, totals that
 * do not go down when a worker is killed or on reload, `status`, `reload`
 * with a good and a broken configuration, `--prometheus` through promtool,
 * `stop`, and `ping` against a stopped server; status, stats, ping and
 * stop with a typo in the configuration, and with --socket and --stats;
 * ping and send to a unix listener.
 */
#include "config.h"

#include <signal.h>
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

#include "harness.h"

/* Run goproctl -c conf ARGS; output (stdout and stderr) in *out. */
static int
ctl(const struct goprod *g, char **out, const char *fmt, ...)
{
	char args[512], cmd[1024];
	size_t cap = 1 << 20;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s -c %s %s", harness_program("GOPROCTL"),
	    g->conf_path, args);
	*out = malloc(cap);
	assert_non_null(*out);
	return harness_run(cmd, *out, cap);
}

/* A counter of the "totals" object (the first occurrence of the name). */
static uint64_t
json_total(const char *json, const char *name)
{
	return harness_json_number(json, name);
}

static uint64_t
total_now(const struct goprod *g, const char *name)
{
	char *out;
	uint64_t v;

	assert_int_equal(ctl(g, &out, "stats --json"), 0);
	v = json_total(out, name);
	free(out);
	return v;
}

static void
heartbeat(int fd)
{
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, NULL, 0);
}

/* A goprod per test, stopped by the teardown even when the test fails. */
static int
setup(void **state)
{
	struct goprod *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	harness_start(g, NULL);
	*state = g;
	return 0;
}

static int
teardown(void **state)
{
	struct goprod *g = *state;

	harness_stop(g);
	free(g);
	return 0;
}

static void
test_exact_counters(void **state)
{
	struct goprod g = *(struct goprod *)*state;
	uint8_t buf[256];
	struct gopro_frame f;
	uint64_t hb0, msg0, bytes0, bad0;
	int fd;

	hb0 = total_now(&g, "frames_received_heartbeat");
	msg0 = total_now(&g, "frames_received_message");
	bytes0 = total_now(&g, "bytes_received");
	bad0 = total_now(&g, "errors_bad_magic");
	fd = harness_connect(&g);
	for (int i = 0; i < 3; i++)
		heartbeat(fd);
	harness_send(fd, GOPRO_CMD_MESSAGE, "hello");
	assert_true(harness_read_frame(fd, buf, sizeof(buf), &f, 5) > 0);
	assert_int_equal(f.header.command, GOPRO_CMD_MESSAGE);
	harness_write(fd, "XXXXXXXX", 8);
	harness_expect_error(fd, GOPRO_ERR_BAD_MAGIC);
	close(fd);
	harness_sleep(0.2);
	assert_int_equal(total_now(&g, "frames_received_heartbeat"), hb0 + 3);
	assert_int_equal(total_now(&g, "frames_received_message"), msg0 + 1);
	assert_int_equal(total_now(&g, "errors_bad_magic"), bad0 + 1);
	/* 3 x 8 header bytes, 8 + 5 for the message, 8 bad bytes. */
	assert_int_equal(total_now(&g, "bytes_received"), bytes0 + 24 + 13 + 8);
}

static void
test_kill9_and_reload_keep_totals(void **state)
{
	struct goprod g = *(struct goprod *)*state;
	uint64_t before;
	pid_t pid, fresh = 0;
	char *out;
	int fd;

	fd = harness_connect(&g);
	for (int i = 0; i < 5; i++)
		heartbeat(fd);
	close(fd);
	before = total_now(&g, "frames_received_heartbeat");
	assert_int_equal(harness_worker_pids(&g, &pid, 1), 1);
	kill(pid, SIGKILL);
	for (double t0 = harness_now(); harness_now() - t0 < 5 && fresh == 0;
	    harness_sleep(0.02))
		if (harness_worker_pids(&g, &fresh, 1) != 1 || fresh == pid)
			fresh = 0;
	assert_true(fresh > 0);
	assert_true(total_now(&g, "frames_received_heartbeat") >= before);
	assert_int_equal(ctl(&g, &out, "stats --json"), 0);
	assert_non_null(strstr(out, "\"restarts\": 1"));
	free(out);

	assert_int_equal(ctl(&g, &out, "reload"), 0);
	assert_non_null(strstr(out, "reloaded: generation 2"));
	free(out);
	assert_true(total_now(&g, "frames_received_heartbeat") >= before);
}

static void
test_status_reload_broken_stop_ping(void **state)
{
	struct goprod *gp = *state, g = *gp;
	char *out;

	assert_int_equal(ctl(&g, &out, "status"), 0);
	assert_non_null(strstr(out, "healthy: all 1 workers running"));
	free(out);
	assert_int_equal(ctl(&g, &out, "ping -n 2 -i 0.01"), 0);
	assert_non_null(strstr(out, "2 heartbeats sent, 2 received"));
	free(out);

	harness_rewrite_conf(&g, "workers = banana");
	assert_int_equal(ctl(&g, &out, "reload"), 1);
	assert_non_null(strstr(out, "workers"));
	assert_non_null(strstr(out, g.conf_path));
	free(out);
	harness_rewrite_conf(&g, NULL);

	if (access("/usr/bin/promtool", X_OK) == 0) {
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "%s -c %s stats --prometheus | "
		    "/usr/bin/promtool check metrics", harness_program("GOPROCTL"),
		    g.conf_path);
		assert_int_equal(system(cmd), 0);
	} else
		print_message("promtool not found: Prometheus check skipped\n");

	assert_int_equal(ctl(&g, &out, "stop -t 20"), 0);
	assert_non_null(strstr(out, "stopped"));
	free(out);
	assert_int_equal(harness_wait_exit(gp, 5), 0);
	assert_int_not_equal(ctl(&g, &out, "ping -n 1 -W 1"), 0);
	free(out);
	/* LSB: 3 is "not running"; stopping what is stopped succeeds. */
	assert_int_equal(ctl(&g, &out, "status"), 3);
	assert_non_null(strstr(out, "goprod is not running"));
	free(out);
	assert_int_equal(ctl(&g, &out, "stop"), 0);
	assert_non_null(strstr(out, "goprod is not running: nothing to stop"));
	free(out);
}

/* What an operator on call asks first, answered by status alone. */
static void
test_status_answers(void **state)
{
	struct goprod g = *(struct goprod *)*state;
	char *out, want[512];

	assert_int_equal(ctl(&g, &out, "status"), 0);
	snprintf(want, sizeof(want), "goprod %s, master pid %ld, up ",
	    PACKAGE_VERSION, (long)g.pid);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "generation 1: running\n"));
	snprintf(want, sizeof(want), "  configuration   %s\n", g.conf_path);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "  listening on    %s\n", g.addr);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "  metrics on      off"));
	assert_non_null(strstr(out, "  workers         1/1 running, "
	    "max_connections 10000 each\n"));
	assert_non_null(strstr(out, "  reloads         0 ok, 0 failed\n"));
	if (strstr(out, "   0/10000 ") == NULL)
		fail_msg("no worker line in:\n%s", out);
	free(out);
	/* A refused reload: when, the result and why. */
	harness_rewrite_conf(&g, "idle_timeout = forever");
	assert_int_equal(ctl(&g, &out, "reload"), 1);
	free(out);
	kill(g.pid, SIGHUP);
	/* goproctl itself needs a file it can read: back once refused. */
	for (int i = 0; i < 500 && !harness_log_has(&g, "reload failed"); i++)
		harness_sleep(0.02);
	harness_rewrite_conf(&g, NULL);
	for (int i = 0; i < 250; i++) {
		assert_int_equal(ctl(&g, &out, "status"), 0);
		if (strstr(out, "0 ok, 1 failed\n") != NULL)
			break;
		free(out);
		out = NULL;
		harness_sleep(0.02);
	}
	assert_non_null(out);
	assert_non_null(strstr(out, ": failed, the running configuration "
	    "stays\n"));
	assert_non_null(strstr(out, "idle_timeout"));
	free(out);
}

/*
 * passwd -o creates the users file 0640 whatever the umask lets through,
 * and goprod accepts the file it makes.
 */
static void
test_passwd_output_file(void **state)
{
	char dir[] = "/tmp/gopro-passwd-XXXXXX", path[128], cmd[512], out[4096];
	struct goprod g;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/users", dir);
	/* In a subshell: harness_run gives the command /dev/null as input. */
	snprintf(cmd, sizeof(cmd), "(umask 022; echo wonderland | %s passwd "
	    "--stdin -o %s alice)", harness_program("GOPROCTL"), path);
	if (harness_run(cmd, out, sizeof(out)) != 0)
		fail_msg("%s: %s", cmd, out);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	harness_start_auth(&g, path, "login_rate = 0");
	assert_int_equal(harness_stop(&g), 0);
	unlink(path);
	rmdir(dir);
}

/* reload prints what changed and the master's warnings, not only errors. */
static void
test_reload_prints_warnings(void **state)
{
	struct goprod g = *(struct goprod *)*state;
	char extra[128], *out;

	snprintf(extra, sizeof(extra), "idle_timeout = 30s\nmetrics_listen = "
	    "\"127.0.0.1:%d\"", harness_free_port());
	harness_rewrite_conf(&g, extra);
	assert_int_equal(ctl(&g, &out, "reload"), 0);
	assert_non_null(strstr(out, "reloaded: generation 2\n"));
	assert_non_null(strstr(out, "changed: "));
	assert_non_null(strstr(out, "idle_timeout \"60s\" -> \"30s\""));
	assert_non_null(strstr(out, "warning: metrics_listen changed; these "
	    "take effect only after a restart\n"));
	free(out);
	harness_rewrite_conf(&g, NULL);
}

/* ping with no address skips a PROXY listener listed first. */
static void
test_ping_skips_proxy_listeners(void **state)
{
	int proxied = harness_free_port(), plain = harness_free_port();
	char extra[512], *out;
	struct goprod g;

	(void)state;
	snprintf(extra, sizeof(extra), "listen = {\"127.0.0.1:%d\", "
	    "\"127.0.0.1:%d\"}\nproxy_protocol = {\"127.0.0.1:%d\"}\n"
	    "proxy_protocol_from = {\"127.0.0.1/32\"}", proxied, plain, proxied);
	harness_start_port(&g, plain, extra);
	assert_int_equal(ctl(&g, &out, "ping -n 1 -W 2s"), 0);
	assert_non_null(strstr(out, g.addr));
	free(out);
	assert_int_equal(harness_stop(&g), 0);
}

/* ping and send to goprod's unix listener, named or found in the file. */
static void
test_ping_unix_listener(void **state)
{
	char unix_addr[320], *out;
	struct goprod g;

	(void)state;
	harness_start_unix(&g, "workers = 2\n", unix_addr, sizeof(unix_addr));
	assert_int_equal(ctl(&g, &out, "ping -n 3 -i 0.01 -W 2s %s",
	    unix_addr), 0);
	assert_non_null(strstr(out, "3 heartbeats sent, 3 received, 0% lost"));
	free(out);
	assert_int_equal(ctl(&g, &out, "send %s hello", unix_addr), 0);
	assert_non_null(strstr(out, "Server says: hello"));
	free(out);
	assert_int_equal(harness_stop(&g), 0);
}

/*
 * A stopped worker does not accept: its queue grows, and the master, which
 * holds the listening socket, shows it per slot.
 */
static void
test_accept_queue_of_a_stuck_worker(void **state)
{
	struct goprod g = *(struct goprod *)*state;
	char *out, want[256];
	pid_t worker;
	int fds[3];
	bool seen = false;

	assert_int_equal(harness_worker_pids(&g, &worker, 1), 1);
	assert_int_equal(kill(worker, SIGSTOP), 0);
	for (int i = 0; i < 3; i++)
		fds[i] = harness_connect(&g);
	snprintf(want, sizeof(want), "gopro_listen_accept_queue{listener=\"%s\","
	    "slot=\"0\"} 3\n", g.addr);
	/* The master samples once a second. */
	for (int i = 0; i < 150 && !seen; i++) {
		assert_int_equal(ctl(&g, &out, "stats --prometheus"), 0);
		seen = strstr(out, want) != NULL;
		free(out);
		if (!seen)
			harness_sleep(0.02);
	}
	assert_int_equal(ctl(&g, &out, "status"), 0);
	kill(worker, SIGCONT);
	assert_non_null(strstr(out, "/10000     0     3 "));
	free(out);
	assert_true(seen);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

/* Put a line at the top of g's configuration, which then does not load. */
static void
prepend_typo(const struct goprod *g)
{
	char text[8192], tmp[400];
	size_t n;
	FILE *f;

	assert_non_null(f = fopen(g->conf_path, "r"));
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	snprintf(tmp, sizeof(tmp), "%s.typo", g->conf_path);
	assert_non_null(f = fopen(tmp, "w"));
	fprintf(f, "wrokers = 2\n%s", text);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, g->conf_path), 0);
}

/*
 * A typo left in the file while goprod runs fine: status, stats, ping and
 * stop still reach it through the paths the file names (the typo comes
 * before all of them, where libconfuse stops), and print the parse error
 * as a warning; --socket/--stats and GOPROCTL_SOCKET/GOPROCTL_STATS reach
 * it without any file.  status used to exit 1, which a health check reads
 * as an outage.
 */
static void
test_typo_in_config(void **state)
{
	struct goprod *gp = *state, g = *gp;
	char *out, cmd[1024], sock[400];

	prepend_typo(&g);
	assert_int_equal(ctl(&g, &out, "status"), 0);
	assert_non_null(strstr(out, "healthy: all 1 workers running"));
	assert_non_null(strstr(out, "warning"));
	assert_non_null(strstr(out, ":1: wrokers: unknown option"));
	free(out);
	assert_int_equal(ctl(&g, &out, "stats --json"), 0);
	free(out);
	assert_int_equal(ctl(&g, &out, "ping -n 1"), 0);
	free(out);
	/* A reload would be refused by the master for the same typo. */
	assert_int_equal(ctl(&g, &out, "reload"), 1);
	free(out);

	snprintf(sock, sizeof(sock), "%s/goprod.sock", g.dir);
	out = malloc(1 << 16);
	assert_non_null(out);
	snprintf(cmd, sizeof(cmd), "%s -c /nonexistent status --socket %s "
	    "--stats %s", harness_program("GOPROCTL"), sock, g.stats_path);
	assert_int_equal(harness_run(cmd, out, 1 << 16), 0);
	assert_non_null(strstr(out, "healthy"));
	assert_null(strstr(out, "warning"));
	snprintf(cmd, sizeof(cmd), "GOPROCTL_SOCKET=%s GOPROCTL_STATS=%s "
	    "%s -c /nonexistent stats", sock, g.stats_path,
	    harness_program("GOPROCTL"));
	assert_int_equal(harness_run(cmd, out, 1 << 16), 0);
	assert_non_null(strstr(out, "totals"));
	snprintf(cmd, sizeof(cmd), "%s --socket relative status",
	    harness_program("GOPROCTL"));
	assert_int_equal(harness_run(cmd, out, 1 << 16), 2);
	free(out);

	assert_int_equal(ctl(&g, &out, "stop -t 20"), 0);
	assert_non_null(strstr(out, "stopped"));
	free(out);
	assert_int_equal(harness_wait_exit(gp, 5), 0);
}

/*
 * A permission problem names the file (or the directory that hides it), its
 * mode and owners, and who asked: the operator sees which group to join.
 * Needs root to play another user.
 */
static void
test_permission_names_mode(void **state)
{
	struct goprod *g = *state;
	char *out, cmd[1024], sock[400];

	if (geteuid() != 0)
		skip();
	snprintf(sock, sizeof(sock), "%s/goprod.sock", g->dir);
	snprintf(cmd, sizeof(cmd), "setpriv --reuid=nobody --regid=nogroup "
	    "--clear-groups %s --socket %s --stats %s stats",
	    harness_program("GOPROCTL"), sock, g->stats_path);
	out = malloc(1 << 16);
	assert_non_null(out);
	assert_int_equal(harness_run(cmd, out, 1 << 16), 1);
	assert_non_null(strstr(out, "Permission denied"));
	assert_non_null(strstr(out, " is mode 0"));
	assert_non_null(strstr(out, "goproctl runs as uid"));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exact_counters, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_kill9_and_reload_keep_totals, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_status_reload_broken_stop_ping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_answers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_accept_queue_of_a_stuck_worker, setup, teardown),
		cmocka_unit_test(test_ping_skips_proxy_listeners),
		cmocka_unit_test(test_ping_unix_listener),
		cmocka_unit_test_setup_teardown(test_typo_in_config, setup,
		    teardown),
		cmocka_unit_test(test_passwd_output_file),
		cmocka_unit_test_setup_teardown(test_reload_prints_warnings,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_permission_names_mode,
		    setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
