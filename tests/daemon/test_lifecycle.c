/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_lifecycle.c - integration tests of the process lifecycle: a worker
 * killed with SIGKILL is replaced, a reload changes behaviour while
 * existing clients are served until their GOAWAY, a broken config keeps the
 * old one, SIGTERM drains and exits 0, and goprod -t judges config files.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

static void
expect_goaway(int fd, uint16_t reason)
{
	uint8_t buf[GOPRO_STATUS_FRAME_MAX];
	struct gopro_frame f;
	struct gopro_status st;

	assert_true(harness_read_frame(fd, buf, sizeof(buf), &f, 5) > 0);
	assert_int_equal(f.header.command, GOPRO_CMD_GOAWAY);
	assert_int_equal(gopro_status_parse(f.body, f.header.length, &st), 0);
	assert_int_equal(st.code, reason);
}

/* Wait until a worker other than old serves; returns its pid. */
static pid_t
wait_new_worker(const struct goprod *g, pid_t old, double timeout)
{
	double t0 = harness_now();
	pid_t pid;

	while (harness_now() - t0 < timeout) {
		if (harness_worker_pids(g, &pid, 1) == 1 && pid != old)
			return pid;
		harness_sleep(0.01);
	}
	return 0;
}

static void
test_kill9_worker_is_replaced(void **state)
{
	struct stats_values before, after;
	struct goprod g;
	pid_t worker, replacement;
	char line[96];
	double t0;
	int fd;

	harness_start(&g, NULL);
	fd = harness_connect(&g);
	for (int i = 0; i < 10; i++) {
		harness_send(fd, GOPRO_CMD_HEARTBEAT, "x");
		harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "x", 1);
	}
	harness_totals(&g, &before);
	assert_int_equal(harness_worker_pids(&g, &worker, 1), 1);
	assert_int_equal(kill(worker, SIGKILL), 0);
	t0 = harness_now();
	/* Its connections are cut... */
	assert_true(harness_wait_closed(fd, 2));
	close(fd);
	/*
	 * ...a new connection is served, and the master replaced the worker
	 * at once (no back-off for a first crash): its log says so, which a
	 * slow machine cannot change, unlike a bound on the time it took.
	 */
	fd = harness_connect(&g);
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "y");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "y", 1);
	print_message("replaced and served %.3f s after the kill\n",
	    harness_now() - t0);
	replacement = wait_new_worker(&g, worker, 2);
	assert_true(replacement > 0 && replacement != worker);
	/* The master logs before it forks the replacement. */
	snprintf(line, sizeof(line), "(pid %ld) killed by signal 9",
	    (long)worker);
	assert_true(harness_log_has(&g, line));
	assert_true(harness_log_has(&g, "; respawning in 0.0s"));
	/* Counters never go down across the respawn. */
	harness_totals(&g, &after);
	assert_true(after.counter[STATS_frames_received_heartbeat] >=
	    before.counter[STATS_frames_received_heartbeat] + 1);
	close(fd);
	assert_int_equal(harness_stop(&g), 0);
}

static void
test_reload_changes_prefix_and_drains_old(void **state)
{
	struct goprod g;
	int old_fd, new_fd;

	harness_start(&g, "message_prefix = \"v1: \"\ngoaway_grace = 2s\n");
	old_fd = harness_connect(&g);
	harness_send(old_fd, GOPRO_CMD_MESSAGE, "a");
	harness_expect_frame(old_fd, GOPRO_CMD_MESSAGE, "v1: a", 5);
	harness_rewrite_conf(&g, "message_prefix = \"v2: \"\n"
	    "goaway_grace = 2s\n");
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	/* The old connection is told to go away (reason 1, reload)... */
	expect_goaway(old_fd, GOPRO_GOAWAY_RELOAD);
	/* ...and is still served by the old generation until it goes. */
	harness_send(old_fd, GOPRO_CMD_MESSAGE, "b");
	harness_expect_frame(old_fd, GOPRO_CMD_MESSAGE, "v1: b", 5);
	new_fd = harness_connect(&g);
	harness_send(new_fd, GOPRO_CMD_MESSAGE, "c");
	harness_expect_frame(new_fd, GOPRO_CMD_MESSAGE, "v2: c", 5);
	/* With nothing pending, goaway_grace closes the old connection. */
	assert_true(harness_wait_closed(old_fd, 5));
	close(old_fd);
	close(new_fd);
	assert_int_equal(harness_stop(&g), 0);
}

static void
test_reload_with_broken_config_keeps_old(void **state)
{
	struct goprod g;
	pid_t before, after;
	int fd;

	harness_start(&g, "message_prefix = \"v1: \"\n");
	assert_int_equal(harness_worker_pids(&g, &before, 1), 1);
	harness_rewrite_conf(&g, "message_prefix = \"v2: \"\nno_such_option = 1\n");
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	harness_sleep(0.5);
	assert_int_equal(harness_worker_pids(&g, &after, 1), 1);
	assert_int_equal(before, after);
	fd = harness_connect(&g);
	harness_send(fd, GOPRO_CMD_MESSAGE, "a");
	harness_expect_frame(fd, GOPRO_CMD_MESSAGE, "v1: a", 5);
	close(fd);
	assert_int_equal(harness_stop(&g), 0);
}

/* SIGTERM: GOAWAY 2 after the replies already owed, then exit 0. */
static void
test_sigterm_drains_and_exits_zero(void **state)
{
	struct stats_values before, now;
	uint8_t buf[1024];
	struct goprod g;
	size_t n = 0;
	int fd, status;

	harness_start(&g, "goaway_grace = 5s\n");
	fd = harness_connect(&g);
	for (int i = 0; i < 20; i++)
		n += gopro_frame_write(buf + n, sizeof(buf) - n,
		    GOPRO_CMD_HEARTBEAT, "z", 1);
	harness_totals(&g, &before);
	harness_write(fd, buf, n);
	/*
	 * Signal only once the worker has read them: a SIGTERM handled before
	 * the read puts the GOAWAY first (the requests are still answered,
	 * after it), which is not the order this test checks.
	 */
	do {
		harness_sleep(0.005);
		harness_totals(&g, &now);
	} while (now.counter[STATS_frames_received_heartbeat] <
	    before.counter[STATS_frames_received_heartbeat] + 20);
	assert_int_equal(kill(g.pid, SIGTERM), 0);
	for (int i = 0; i < 20; i++)
		harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "z", 1);
	expect_goaway(fd, GOPRO_GOAWAY_SHUTDOWN);
	/* Still answered during the drain. */
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "late");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "late", 4);
	close(fd);
	status = harness_wait_exit(&g, 10);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	harness_stop(&g);
}

static void
test_check_mode(void **state)
{
	char out[4096];

	assert_int_equal(harness_check_conf("listen = {\"127.0.0.1:1\"}\n",
	    out, sizeof(out)), 0);
	assert_non_null(strstr(out, "ok"));
	/* After the harness's two lines: on line 4. */
	assert_int_equal(harness_check_conf("listen = {\"127.0.0.1:1\"}\n"
	    "idle_timeout = banana\n", out, sizeof(out)), 1);
	/* The error names the file, the line and the option. */
	assert_non_null(strstr(out, "/tmp/gopro-check-"));
	assert_non_null(strstr(out, ":4"));
	assert_non_null(strstr(out, "idle_timeout"));
}

/* Does a new connection get a MESSAGE reply with this prefix? */
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

/* The generation the master last started (its reload has read the file). */
static uint32_t
generation(const struct goprod *g)
{
	struct stats_header h;

	harness_header(g, &h);
	return h.generation;
}

/*
 * A SIGHUP during a reload's handover is queued, not lost.  The second
 * SIGHUP is sent once the first reload has read the file (generation 2
 * exists), usually while its worker is still starting; had the two
 * signals been pending together they would have counted as one.
 */
static void
test_sighup_during_handover_is_queued(void **state)
{
	struct goprod g;
	double t0;

	harness_start(&g, "message_prefix = \"v1: \"\n");
	harness_rewrite_conf(&g, "message_prefix = \"v2: \"\n");
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	for (t0 = harness_now(); generation(&g) != 2; harness_sleep(0.001))
		if (harness_now() - t0 > 10)
			fail_msg("the first SIGHUP was not taken within 10 s");
	harness_rewrite_conf(&g, "message_prefix = \"v3: \"\n");
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	harness_wait_settled(&g, 2);
	assert_true(prefix_is(&g, "v3: "));
	print_message("the second SIGHUP %s\n", harness_log_has(&g,
	    "reload queued") ? "was queued during the handover" :
	    "came after the handover (not queued this time)");
	assert_int_equal(harness_stop(&g), 0);
}

/* Count RUNNING workers until want is reached or timeout; returns count. */
static int
wait_workers(const struct goprod *g, int want, double timeout)
{
	double t0 = harness_now();
	pid_t pids[8];
	int n;

	do {
		n = harness_worker_pids(g, pids, 8);
		if (n == want)
			return n;
		harness_sleep(0.02);
	} while (harness_now() - t0 < timeout);
	return n;
}

/* SIGTTIN adds a worker on a new slot, SIGTTOU drains the last one. */
static void
test_ttin_ttou_change_worker_count(void **state)
{
	struct goprod g;
	int fd;

	harness_start(&g, NULL);
	assert_int_equal(kill(g.pid, SIGTTIN), 0);
	assert_int_equal(wait_workers(&g, 2, 3), 2);
	assert_int_equal(kill(g.pid, SIGTTOU), 0);
	assert_int_equal(wait_workers(&g, 1, 3), 1);
	fd = harness_connect(&g);
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "n");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "n", 1);
	close(fd);
	assert_int_equal(harness_stop(&g), 0);
}

/* Several listen addresses, IPv4 and IPv6, served by the same workers. */
static void
test_ipv4_and_ipv6_listeners(void **state)
{
	struct sockaddr_in6 sin6;
	char extra[128];
	struct goprod g;
	int port = harness_free_port(), fd;

	snprintf(extra, sizeof(extra), "listen = {\"127.0.0.1:%d\", "
	    "\"[::1]:%d\"}\n", port, port);
	harness_start_port(&g, port, extra);
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons((uint16_t)port);
	sin6.sin6_addr = in6addr_loopback;
	assert_int_equal(connect(fd, (struct sockaddr *)&sin6, sizeof(sin6)), 0);
	fd = harness_secure(fd);
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "six");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "six", 3);
	close(fd);
	fd = harness_connect(&g);
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "four");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "four", 4);
	close(fd);
	assert_int_equal(harness_stop(&g), 0);
}

/* Gone, or a zombie that nobody reaped (the daemon is not our child). */
static bool
process_gone(long pid)
{
	char path[64], stat[256];
	FILE *f;
	bool zombie = false;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return true;
	if (fgets(stat, sizeof(stat), f) && strstr(stat, ") Z "))
		zombie = true;
	fclose(f);
	return zombie;
}

/* Without -f: detach, write the pid file, serve, exit on SIGTERM. */
static void
test_daemon_mode(void **state)
{
	char cmd[512], pidfile[400];
	struct goprod g;
	long pid = 0;
	double t0;
	FILE *f;

	harness_prepare(&g, harness_free_port(), NULL);
	snprintf(cmd, sizeof(cmd), "'%s' -c '%s' </dev/null >/dev/null 2>&1",
	    harness_program("GOPROD"), g.conf_path);
	assert_int_equal(system(cmd), 0);
	snprintf(pidfile, sizeof(pidfile), "%s/goprod.pid", g.dir);
	for (t0 = harness_now(); harness_now() - t0 < 5; harness_sleep(0.02))
		if ((f = fopen(pidfile, "r")) != NULL) {
			if (fscanf(f, "%ld", &pid) != 1)
				pid = 0;
			fclose(f);
			if (pid > 0 && harness_answers(&g))
				break;
		}
	assert_true(pid > 1);
	assert_true(harness_answers(&g));
	assert_int_equal(kill((pid_t)pid, SIGTERM), 0);
	for (t0 = harness_now(); harness_now() - t0 < 10; harness_sleep(0.02))
		if (process_gone(pid))
			break;
	assert_true(process_gone(pid));
	/* The master removed its pid file on the way out. */
	assert_true(access(pidfile, F_OK) < 0);
	harness_stop(&g);
}

/*
 * A second goprod on the port of a running one: SO_REUSEPORT would let it
 * join the first one's group and take half its connections, so it refuses
 * to start and says why; a reload that adds an address another goprod
 * listens on is refused the same way.  The first one serves on.
 */
static void
test_address_of_another_goprod_refused(void **state)
{
	char cmd[1024], out[2048], conf[256];
	struct stats_values total;
	struct goprod a, b, c;
	int rc;

	harness_start(&a, NULL);
	harness_prepare(&b, a.port, NULL);
	/* Bounded: with the defect it would start and serve. */
	snprintf(cmd, sizeof(cmd), "timeout 5 '%s' -f -c '%s'",
	    harness_program("GOPROD"), b.conf_path);
	rc = harness_run(cmd, out, sizeof(out));
	print_message("second goprod on %s: exit %d: %s", a.addr, rc, out);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, a.addr));
	assert_non_null(strstr(out, "Address already in use"));
	for (int i = 0; i < 20; i++)
		assert_true(harness_heartbeat(&a, 3));
	harness_totals(&a, &total);
	assert_true(total.counter[STATS_conn_accepted] >= 20);
	harness_stop(&b);

	harness_start(&c, NULL);
	snprintf(conf, sizeof(conf), "listen = {\"%s\", \"%s\"}\n", a.addr,
	    c.addr);
	harness_rewrite_conf(&a, conf);
	snprintf(cmd, sizeof(cmd), "'%s' -c '%s' reload",
	    harness_program("GOPROCTL"), a.conf_path);
	rc = harness_run(cmd, out, sizeof(out));
	print_message("reload adding %s: exit %d: %s", c.addr, rc, out);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "Address already in use"));
	assert_true(harness_heartbeat(&a, 3));
	assert_true(harness_heartbeat(&c, 3));
	assert_int_equal(harness_stop(&c), 0);
	assert_int_equal(harness_stop(&a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9_worker_is_replaced),
		cmocka_unit_test(test_reload_changes_prefix_and_drains_old),
		cmocka_unit_test(test_reload_with_broken_config_keeps_old),
		cmocka_unit_test(test_sigterm_drains_and_exits_zero),
		cmocka_unit_test(test_check_mode),
		cmocka_unit_test(test_ttin_ttou_change_worker_count),
		cmocka_unit_test(test_ipv4_and_ipv6_listeners),
		cmocka_unit_test(test_daemon_mode),
		cmocka_unit_test(test_sighup_during_handover_is_queued),
		cmocka_unit_test(test_address_of_another_goprod_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
