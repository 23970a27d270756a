/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_faults.c - faults under load: gopro-bench keeps pipelined traffic
 * running against a real goprod while it is reloaded 20 times in a row,
 * while a worker is killed with SIGKILL, while it is stopped with SIGTERM,
 * while a reload changes the number of workers or the listen addresses,
 * and while the binary is upgraded in place ten times.  Every request gopro-bench sent is either answered correctly
 * or counted as lost (its --json summary); the figure asserted is "lost".
 *
 * These are the short versions for make check; tests/stress/run.sh runs
 * the same scenarios for longer.  gopro-bench is found next to $GOPROD.
 *
 * The scenarios are driven by events, not by the clock: gopro-bench runs
 * with a long -d and is stopped with SIGINT (it then collects the replies
 * it is owed and reports) once the scenario is over, and each step waits
 * for what it needs (load flowing, a reload handed over, connections
 * gone) to show in the stats segment.  A slow or busy machine makes the
 * test slower, not wrong.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "harness.h"
#include "stats_format.h"

static char bench_path[512];
/* gopro-bench processes started and not yet collected, for teardown. */
static pid_t benches[4];

/* An upper bound only: every scenario stops its gopro-bench itself. */
#define BENCH_SECONDS "60"
/* How long a step may wait for what it expects to show in the stats. */
#define STEP_TIMEOUT 10.0

static int
setup(void **state)
{
	harness_program_copy("GOPRO_BENCH", bench_path, sizeof(bench_path));
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* A failed scenario leaves its gopro-bench behind: end it. */
static int
teardown(void **state)
{
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
		if (benches[i] > 0) {
			kill(benches[i], SIGKILL);
			waitpid(benches[i], NULL, 0);
			benches[i] = 0;
		}
	return 0;
}

/* ------------------------------------------------------------ gopro-bench */

struct bench {
	pid_t pid;
	int fd;
	char *out;
};

static void
bench_track(pid_t pid, pid_t was)
{
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
		if (benches[i] == was) {
			benches[i] = pid;
			return;
		}
}

/* gopro-bench -s addr -c conns -P depth --json, until bench_stop. */
static void
bench_start(struct bench *b, char *addr, char *conns, char *depth,
    bool allow_lost)
{
	char *args[] = { bench_path, "-s", addr, "-d", BENCH_SECONDS, "-c",
		conns, "-P", depth, "-m", "heartbeat:3,message:1", "-b", "16",
		"--json", "--quiet", "--timeout", "3",
		allow_lost ? "--allow-lost" : NULL, NULL };

	b->pid = harness_spawn(args, &b->fd);
	b->out = NULL;
	bench_track(b->pid, 0);
}

/*
 * Stop gopro-bench as a user would (SIGINT: it stops sending, collects
 * the replies it is owed, then reports); returns its exit code, the JSON
 * in b->out.
 */
static int
bench_stop(struct bench *b)
{
	int status;

	assert_int_equal(kill(b->pid, SIGINT), 0);
	b->out = harness_collect(b->pid, b->fd, &status);
	bench_track(0, b->pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The unsigned number after "key": in the JSON summary. */
static unsigned long long
bench_num(const struct bench *b, const char *key)
{
	return harness_json_number(b->out, key);
}

static void
bench_print(const struct bench *b, const char *what)
{
	print_message("%s: requests %llu, lost %llu, errors %llu (connect "
	    "failed %llu, closed by server %llu, timeout %llu), goaway %llu, "
	    "connections %llu\n", what, bench_num(b, "requests"),
	    bench_num(b, "lost"), bench_num(b, "errors"),
	    bench_num(b, "connect_failed"), bench_num(b, "closed_by_server"),
	    bench_num(b, "timeout"), bench_num(b, "goaway"),
	    bench_num(b, "connections_opened"));
}

/* ------------------------------------------------------------ stats */

static void
snap(const struct goprod *g, struct stats_snap *s)
{
	harness_snapshot(g, s);
}

/* Every counter of now is at least the one of before. */
static void
check_monotonic(const struct stats_values *before,
    const struct stats_values *now, const char *when)
{
	for (int i = 0; i < STATS_NCOUNTERS; i++)
		if (now->counter[i] < before->counter[i])
			fail_msg("%s: counter %d went down from %llu to %llu",
			    when, i, (unsigned long long)before->counter[i],
			    (unsigned long long)now->counter[i]);
}

/* RUNNING workers of the current generation, by slot; returns how many. */
static int
running(const struct goprod *g, pid_t by_slot[8])
{
	struct stats_snap s;
	int n = 0;

	snap(g, &s);
	memset(by_slot, 0, 8 * sizeof(pid_t));
	for (unsigned i = 0; i < s.hdr.nentries; i++) {
		const struct stats_entry *e = &s.entries[i];

		if (e->state == STATS_STATE_RUNNING && e->pid > 0 &&
		    e->generation == s.hdr.generation && e->slot < 8) {
			by_slot[e->slot] = e->pid;
			n++;
		}
	}
	stats_snap_free(&s);
	return n;
}

/* The live entry of pid in a snapshot, NULL when gone. */
static const struct stats_entry *
entry_of(const struct stats_snap *s, pid_t pid)
{
	for (unsigned i = 0; i < s->hdr.nentries; i++)
		if (s->entries[i].pid == pid &&
		    s->entries[i].state != STATS_STATE_FREE)
			return &s->entries[i];
	return NULL;
}

/* Requests answered so far, all workers and generations together. */
static uint64_t
answered(const struct goprod *g)
{
	struct stats_values t;

	harness_totals(g, &t);
	return t.counter[STATS_frames_sent_heartbeat] +
	    t.counter[STATS_frames_sent_message];
}

/* A worker process that is there (a killed one leaves its gauges). */
static bool
alive(const struct stats_entry *e)
{
	return e->state == STATS_STATE_STARTING ||
	    e->state == STATS_STATE_RUNNING || e->state == STATS_STATE_DRAINING;
}

/* Open connections over every worker, old generations included. */
static uint64_t
live_conns(const struct goprod *g)
{
	struct stats_snap s;
	uint64_t n = 0;

	snap(g, &s);
	for (unsigned i = 0; i < s.hdr.nentries; i++)
		if (alive(&s.entries[i]))
			n += s.entries[i].conn_active;
	stats_snap_free(&s);
	return n;
}

/*
 * The load is flowing: at least conns connections open and another
 * 100000 requests answered since the call.
 */
static void
wait_load(const struct goprod *g, uint64_t conns, const char *when)
{
	uint64_t base = answered(g);
	double t0 = harness_now();

	while (live_conns(g) < conns || answered(g) < base + 100000) {
		if (harness_now() - t0 > STEP_TIMEOUT)
			fail_msg("%s: no load (%llu connections, %llu "
			    "requests answered) after %.0f s", when,
			    (unsigned long long)live_conns(g),
			    (unsigned long long)(answered(g) - base),
			    STEP_TIMEOUT);
		harness_sleep(0.01);
	}
}

/* Exactly conns connections open, and no worker of an old generation. */
static void
wait_conns(const struct goprod *g, uint64_t conns, const char *when)
{
	double t0 = harness_now();
	struct stats_snap s;
	bool old;

	for (;;) {
		snap(g, &s);
		old = false;
		for (unsigned i = 0; i < s.hdr.nentries; i++)
			old |= alive(&s.entries[i]) &&
			    s.entries[i].generation != s.hdr.generation;
		stats_snap_free(&s);
		if (!old && live_conns(g) == conns)
			return;
		if (harness_now() - t0 > STEP_TIMEOUT)
			fail_msg("%s: %llu connections open%s after %.0f s, "
			    "expected %llu", when,
			    (unsigned long long)live_conns(g),
			    old ? " and old workers still running" : "",
			    STEP_TIMEOUT, (unsigned long long)conns);
		harness_sleep(0.01);
	}
}

/* ------------------------------------------------------------ control */

static int
goproctl(const struct goprod *g, const char *command, char *out, size_t len)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s -c %s %s", harness_program("GOPROCTL"),
	    g->conf_path, command);
	return harness_run(cmd, out, len);
}

/*
 * The reload numbered n (from 1) is done: counted by the master and every
 * worker of its generation serving.  Totals are checked on the way.
 */
static void
wait_reloaded(const struct goprod *g, uint32_t n, unsigned workers,
    struct stats_values *last)
{
	double t0 = harness_now();
	struct stats_snap s;
	pid_t pids[8];

	for (;;) {
		snap(g, &s);
		check_monotonic(last, &s.total, "during the reloads");
		*last = s.total;
		if (s.hdr.reloads_failed != 0)
			fail_msg("reload %u failed", n);
		if (s.hdr.reloads == n && running(g, pids) == (int)workers) {
			stats_snap_free(&s);
			return;
		}
		stats_snap_free(&s);
		if (harness_now() - t0 > 5)
			fail_msg("reload %u not done within 5 s", n);
		harness_sleep(0.01);
	}
}

/* ------------------------------------------------------------ reloads */

/*
 * 20 reloads in a row, SIGHUP and `goproctl reload` in turn, under 16
 * pipelined connections: no connection refused, no request lost, no
 * error, and no stats total ever goes down.
 */
static void
test_twenty_reloads(void **state)
{
	struct stats_values last;
	struct stats_snap s;
	struct bench b;
	struct goprod g;
	char out[512];
	int rc;

	harness_start(&g, "workers = 2\ngoaway_grace = 0.5s\n");
	snap(&g, &s);
	last = s.total;
	stats_snap_free(&s);
	bench_start(&b, g.addr, "16", "8", false);
	wait_load(&g, 16, "before the reloads");
	for (uint32_t i = 1; i <= 20; i++) {
		if (i % 2)
			assert_int_equal(kill(g.pid, SIGHUP), 0);
		else if ((rc = goproctl(&g, "reload", out, sizeof(out))) != 0)
			fail_msg("goproctl reload %u: exit %d: %s", i, rc, out);
		wait_reloaded(&g, i, 2, &last);
		harness_sleep(0.1);
	}
	wait_load(&g, 16, "after the reloads");
	rc = bench_stop(&b);
	bench_print(&b, "20 reloads");
	if (rc != 0)
		fail_msg("gopro-bench failed (exit %d): %s", rc, b.out);
	assert_int_equal(bench_num(&b, "lost"), 0);
	assert_int_equal(bench_num(&b, "errors"), 0);
	assert_int_equal(bench_num(&b, "connect_failed"), 0);
	assert_true(bench_num(&b, "goaway") >= 20);
	snap(&g, &s);
	check_monotonic(&last, &s.total, "after the reloads");
	assert_int_equal(s.hdr.reloads, 20);
	assert_int_equal(s.hdr.reloads_failed, 0);
	assert_int_equal(s.total.counter[STATS_requests_lost], 0);
	stats_snap_free(&s);
	free(b.out);
	assert_int_equal(harness_stop(&g), 0);
}

/* Install a test module (tests/modules) as dir/current.so, as a deploy does. */
static void
install_module(const char *dir, const char *name)
{
	char cmd[1024], out[256];

	snprintf(cmd, sizeof(cmd), "cp %s/%s %s/next.so && mv %s/next.so "
	    "%s/current.so", getenv("GOPRO_TEST_MODULES"), name, dir, dir,
	    dir);
	if (harness_run(cmd, out, sizeof(out)) != 0)
		fail_msg("%s: %s", cmd, out);
}

/*
 * A module deploy is a reload: 20 reloads, each after a new build of the
 * module (v1 and v2 in turn) was installed at its path, under 16 pipelined
 * connections whose MESSAGEs the module answers from a thread: no
 * connection refused, no request lost, no error.
 */
static void
test_twenty_module_deploys(void **state)
{
	char dir[] = "/tmp/gopro-deploy-XXXXXX", conf[512], cmd[600], out[256];
	struct stats_values last;
	struct stats_snap s;
	struct bench b;
	struct goprod g;
	int rc;

	(void)state;
	assert_non_null(mkdtemp(dir));
	install_module(dir, "mod_v1.so");
	snprintf(conf, sizeof(conf), "workers = 2\ngoaway_grace = 0.5s\n"
	    "module t {\n  path = \"%s/current.so\"\n"
	    "  commands = { \"MESSAGE\" }\n  mode = \"echo_offload\"\n}\n",
	    dir);
	harness_start(&g, conf);
	snap(&g, &s);
	last = s.total;
	stats_snap_free(&s);
	bench_start(&b, g.addr, "16", "8", false);
	wait_load(&g, 16, "before the deploys");
	for (uint32_t i = 1; i <= 20; i++) {
		install_module(dir, i % 2 ? "mod_v2.so" : "mod_v1.so");
		if ((rc = goproctl(&g, "reload", out, sizeof(out))) != 0)
			fail_msg("goproctl reload %u: exit %d: %s", i, rc, out);
		wait_reloaded(&g, i, 2, &last);
		harness_sleep(0.1);
	}
	wait_load(&g, 16, "after the deploys");
	rc = bench_stop(&b);
	bench_print(&b, "20 module deploys");
	if (rc != 0)
		fail_msg("gopro-bench failed (exit %d): %s", rc, b.out);
	assert_int_equal(bench_num(&b, "lost"), 0);
	assert_int_equal(bench_num(&b, "errors"), 0);
	assert_int_equal(bench_num(&b, "connect_failed"), 0);
	snap(&g, &s);
	assert_int_equal(s.hdr.reloads, 20);
	assert_int_equal(s.total.counter[STATS_requests_lost], 0);
	stats_snap_free(&s);
	free(b.out);
	assert_int_equal(harness_stop(&g), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)harness_run(cmd, out, sizeof(out));
}

/*
 * `goproctl reload` twice at once: the second one arrives while the first
 * is being handed over, is told "busy", asks again, and takes effect.
 * Both exit 0 and nothing counts as a failed reload.
 */
static void
test_reload_while_reloading(void **state)
{
	char cmd[1024], out[2][512];
	struct stats_values last;
	struct stats_snap s;
	struct goprod g;
	FILE *p[2];

	harness_start(&g, "workers = 2\n");
	snap(&g, &s);
	last = s.total;
	stats_snap_free(&s);
	snprintf(cmd, sizeof(cmd), "%s -c %s reload 2>&1",
	    harness_program("GOPROCTL"), g.conf_path);
	for (int i = 0; i < 2; i++)
		assert_non_null(p[i] = popen(cmd, "r"));
	for (int i = 0; i < 2; i++) {
		size_t n = fread(out[i], 1, sizeof(out[i]) - 1, p[i]);
		int status = pclose(p[i]);

		out[i][n] = '\0';
		print_message("reload %d: %s", i + 1, out[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("goproctl reload %d failed: %s", i + 1, out[i]);
	}
	wait_reloaded(&g, 2, 2, &last);
	assert_true(harness_heartbeat(&g, 3));
	assert_int_equal(harness_stop(&g), 0);
}

/* ------------------------------------------------------------ kill -9 */

/* Connections cut by the server: resets, timeouts, drains. */
static uint64_t
cuts(const struct stats_entry *e)
{
	return e->v.counter[STATS_conn_reset] +
	    e->v.counter[STATS_conn_idle_timeout] +
	    e->v.counter[STATS_conn_frame_timeout] +
	    e->v.counter[STATS_conn_send_timeout] +
	    e->v.counter[STATS_conn_drain_timeout];
}

/*
 * Connection attempts, one after another, for a second after the kill,
 * each answered or not within 3 s; how many of *attempts were served, and
 * in *back how long slot 0 took to run a new worker (-1: not seen).
 */
static int
attempts_during_respawn(const struct goprod *g, pid_t victim,
    int *attempts, double *back)
{
	double t0 = harness_now();
	pid_t now[8];
	int ok = 0;

	*attempts = 0;
	*back = -1;
	while (harness_now() - t0 < 1.0) {
		++*attempts;
		ok += harness_heartbeat(g, 3);
		if (*back < 0 && running(g, now) == 2 && now[0] != victim)
			*back = harness_now() - t0;
		harness_sleep(0.01);
	}
	return ok;
}

/*
 * workers = 2, one killed with SIGKILL under load: the survivor cuts no
 * connection, every connection attempt during the respawn is served (the
 * slot's socket and its queue outlive the worker), the slot serves again
 * within a second, gopro-bench sees at most the killed worker's
 * connections closed, and loses at most what was in flight on them
 * (depth 4 each).
 */
static void
test_kill9_under_load(void **state)
{
	const struct stats_entry *e;
	struct stats_snap s0, s1;
	pid_t before[8];
	uint64_t victim_conns, cuts0;
	double back;
	int attempts, ok, rc;
	struct bench b;
	struct goprod g;

	harness_start(&g, "workers = 2\n");
	bench_start(&b, g.addr, "16", "4", true);
	wait_load(&g, 16, "before the kill");
	assert_int_equal(running(&g, before), 2);
	snap(&g, &s0);
	if ((e = entry_of(&s0, before[0])) == NULL) {
		fail_msg("no stats entry for worker %ld", (long)before[0]);
		return;
	}
	victim_conns = e->conn_active;
	if ((e = entry_of(&s0, before[1])) == NULL) {
		fail_msg("no stats entry for worker %ld", (long)before[1]);
		return;
	}
	cuts0 = cuts(e);
	assert_int_equal(kill(before[0], SIGKILL), 0);
	ok = attempts_during_respawn(&g, before[0], &attempts, &back);
	wait_load(&g, 16, "after the respawn");
	snap(&g, &s1);
	rc = bench_stop(&b);
	if ((e = entry_of(&s1, before[1])) == NULL) {
		fail_msg("worker %ld is gone", (long)before[1]);
		return;
	}
	print_message("kill -9: the victim had %llu connections; slot 0 back "
	    "after %.3f s; %d of %d connection attempts during the respawn "
	    "served; the survivor cut %llu connections\n",
	    (unsigned long long)victim_conns, back, ok, attempts,
	    (unsigned long long)(cuts(e) - cuts0));
	bench_print(&b, "kill -9 of one of 2 workers");
	/* The survivor's connections are untouched... */
	assert_int_equal(cuts(e), cuts0);
	stats_snap_free(&s0);
	stats_snap_free(&s1);
	/* ...no attempt is refused, and the slot is back within a second. */
	assert_int_equal(ok, attempts);
	assert_true(back >= 0 && back < 1.0);
	/* Exit 1: the cut connections count as errors. */
	if (rc != 0 && rc != 1)
		fail_msg("gopro-bench failed (exit %d): %s", rc, b.out);
	assert_int_equal(bench_num(&b, "connect_failed"), 0);
	assert_true(bench_num(&b, "closed_by_server") <= victim_conns);
	assert_true(bench_num(&b, "lost") <= 4 * victim_conns);
	free(b.out);
	assert_int_equal(harness_stop(&g), 0);
}

/* ------------------------------------------------------------ SIGTERM */

/*
 * SIGTERM under load (drain_timeout = 3 s): every request the server read
 * is answered (its requests_lost stays 0, and gopro-bench, which honours
 * GOAWAY, loses nothing), and the master exits 0 within drain_timeout.
 * After the drain the clients' reconnects are refused: that is the only
 * error allowed.
 */
static void
test_sigterm_under_load(void **state)
{
	struct stats_segment seg;
	struct stats_snap s;
	struct bench b;
	struct goprod g;
	char err[256];
	double t0, took;
	int status, rc;

	harness_start(&g, "workers = 2\ndrain_timeout = 3s\n"
	    "goaway_grace = 0.5s\n");
	/* Keep the segment mapped: the master unlinks it when it exits. */
	if (stats_open(&seg, g.stats_path, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	bench_start(&b, g.addr, "16", "8", true);
	wait_load(&g, 16, "before SIGTERM");
	assert_int_equal(kill(g.pid, SIGTERM), 0);
	t0 = harness_now();
	status = harness_wait_exit(&g, 10);
	took = harness_now() - t0;
	assert_int_equal(stats_snap_take(&seg, &s), 0);
	stats_close(&seg);
	rc = bench_stop(&b);
	bench_print(&b, "SIGTERM under load");
	print_message("SIGTERM: master exited with status %d after %.3f s "
	    "(drain_timeout 3 s); server requests_lost %llu, drain_timeout "
	    "cuts %llu\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1, took,
	    (unsigned long long)s.total.counter[STATS_requests_lost],
	    (unsigned long long)s.total.counter[STATS_conn_drain_timeout]);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/*
	 * No connection needed drain_timeout: the drain ended before it.  The
	 * counter says so on any machine; the time it took is printed.
	 */
	assert_int_equal(s.total.counter[STATS_conn_drain_timeout], 0);
	assert_int_equal(s.total.counter[STATS_requests_lost], 0);
	stats_snap_free(&s);
	/* Exit 1 for the refused reconnects is expected; the JSON decides. */
	if (rc != 0 && rc != 1)
		fail_msg("gopro-bench failed (exit %d): %s", rc, b.out);
	assert_int_equal(bench_num(&b, "lost"), 0);
	assert_int_equal(bench_num(&b, "errors"),
	    bench_num(&b, "connect_failed"));
	free(b.out);
	harness_stop(&g);
}

/* ------------------------------------------------------------ topology */

/*
 * Reloads that change the number of workers, 2 -> 1 -> 2, under load.
 * What a client sees: GOAWAY on every connection at each reload (all
 * workers are replaced), the replies it is owed, then a new connection.
 * Nothing it sent on an accepted connection is lost; a connection that
 * was still queued on slot 1's socket when its last holder closed it is
 * reset by Linux unless net.ipv4.tcp_migrate_req = 1 moves it to another
 * socket of the group, so gopro-bench may see such a reset (counted as
 * closed by server, with the requests it had already sent on it as
 * lost).  The counts are printed; tests/stress/run.sh compares both
 * settings of tcp_migrate_req.
 */
static void
test_reload_worker_count(void **state)
{
	struct stats_values last;
	struct stats_snap s;
	struct bench b;
	struct goprod g;
	int rc;

	harness_start(&g, "workers = 2\ngoaway_grace = 0.5s\n");
	snap(&g, &s);
	last = s.total;
	stats_snap_free(&s);
	bench_start(&b, g.addr, "16", "8", true);
	wait_load(&g, 16, "before the reloads");
	harness_rewrite_conf(&g, "workers = 1\ngoaway_grace = 0.5s\n");
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	wait_reloaded(&g, 1, 1, &last);
	wait_load(&g, 16, "with 1 worker");
	harness_rewrite_conf(&g, "workers = 2\ngoaway_grace = 0.5s\n");
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	wait_reloaded(&g, 2, 2, &last);
	wait_load(&g, 16, "with 2 workers again");
	rc = bench_stop(&b);
	bench_print(&b, "reloads 2 -> 1 -> 2 workers");
	if (rc != 0)
		fail_msg("gopro-bench failed (exit %d): %s", rc, b.out);
	snap(&g, &s);
	print_message("workers 2 -> 1 -> 2: server requests_lost %llu\n",
	    (unsigned long long)s.total.counter[STATS_requests_lost]);
	assert_int_equal(s.total.counter[STATS_requests_lost], 0);
	stats_snap_free(&s);
	assert_int_equal(bench_num(&b, "connect_failed"), 0);
	/* Only resets of never-accepted connections may lose requests. */
	assert_int_equal(bench_num(&b, "errors"),
	    bench_num(&b, "closed_by_server"));
	assert_true(bench_num(&b, "lost") <= 8 * bench_num(&b,
	    "closed_by_server"));
	free(b.out);
	assert_int_equal(harness_stop(&g), 0);
}

/*
 * Reloads that change the listen addresses under load: {A} -> {A, B} ->
 * {B}.  A client of B (started once B exists) sees nothing at all but
 * GOAWAYs; a client of A gets GOAWAY when A is removed, its owed replies,
 * and then "connection refused" on A: it loses nothing it sent.
 */
static void
test_reload_listen_change(void **state)
{
	char conf[256], addr_b[64];
	struct stats_values last;
	struct stats_snap s;
	struct bench a, b;
	struct goprod g;
	int port_b = harness_free_port(), rc;

	harness_start(&g, "goaway_grace = 0.5s\n");
	snprintf(addr_b, sizeof(addr_b), "127.0.0.1:%d", port_b);
	snap(&g, &s);
	last = s.total;
	stats_snap_free(&s);
	bench_start(&a, g.addr, "8", "8", true);
	wait_load(&g, 8, "client of A");
	snprintf(conf, sizeof(conf), "listen = {\"%s\", \"%s\"}\n"
	    "goaway_grace = 0.5s\n", g.addr, addr_b);
	harness_rewrite_conf(&g, conf);
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	wait_reloaded(&g, 1, 1, &last);
	bench_start(&b, addr_b, "8", "8", false);
	wait_load(&g, 16, "clients of A and B");
	snprintf(conf, sizeof(conf), "listen = {\"%s\"}\n"
	    "goaway_grace = 0.5s\n", addr_b);
	harness_rewrite_conf(&g, conf);
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	wait_reloaded(&g, 2, 1, &last);
	/* A's clients are gone (refused when they came back), B's are back. */
	wait_conns(&g, 8, "after removing A");
	wait_load(&g, 8, "client of B after removing A");
	rc = bench_stop(&b);
	bench_print(&b, "client of B across adding B and removing A");
	if (rc != 0)
		fail_msg("gopro-bench on B failed (exit %d): %s", rc, b.out);
	assert_int_equal(bench_num(&b, "lost"), 0);
	assert_int_equal(bench_num(&b, "errors"), 0);
	rc = bench_stop(&a);
	bench_print(&a, "client of A across the removal of A");
	if (rc != 0 && rc != 1)
		fail_msg("gopro-bench on A failed (exit %d): %s", rc, a.out);
	assert_int_equal(bench_num(&a, "lost"), 0);
	assert_int_equal(bench_num(&a, "errors"),
	    bench_num(&a, "connect_failed"));
	assert_true(bench_num(&a, "goaway") >= 8);
	assert_true(bench_num(&a, "connect_failed") >= 1);
	free(a.out);
	free(b.out);
	assert_int_equal(harness_stop(&g), 0);
}

/* ------------------------------------------------------------ upgrades */

/*
 * An installed binary the way a package manager installs one: copied
 * beside it, then renamed over it (the running image keeps its inode).
 */
static void
install_binary(const char *from, const char *to)
{
	char cmd[1536], out[512];
	int rc;

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s.new' && chmod 0755 '%s.new' "
	    "&& mv -f '%s.new' '%s'", from, to, to, to, to);
	if ((rc = harness_run(cmd, out, sizeof(out))) != 0)
		fail_msg("installing %s as %s: exit %d: %s", from, to, rc, out);
}

/* A goprod started from a copy of $GOPROD in its own directory. */
static void
start_installed(struct goprod *g, char *bindir, size_t len, char *exe,
    size_t exelen, const char *extra)
{
	char *saved = strdup(harness_program("GOPROD"));

	snprintf(bindir, len, "/tmp/gopro-bin-XXXXXX");
	if (saved == NULL || mkdtemp(bindir) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	snprintf(exe, exelen, "%s/goprod", bindir);
	install_binary(saved, exe);
	setenv("GOPROD", exe, 1);
	harness_start(g, extra);
	setenv("GOPROD", saved, 1);
	free(saved);
}

static void
remove_installed(const char *bindir)
{
	char cmd[512], out[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", bindir);
	(void)harness_run(cmd, out, sizeof(out));
}

/*
 * The upgrade numbered n is done: counted, every worker of its generation
 * serving, the master still pid; totals are checked on the way.
 */
static void
wait_upgraded(const struct goprod *g, uint32_t n, struct stats_values *last)
{
	double t0 = harness_now();
	struct stats_snap s;
	pid_t pids[8];

	for (;;) {
		snap(g, &s);
		check_monotonic(last, &s.total, "during the upgrades");
		*last = s.total;
		if (s.hdr.master_pid != g->pid)
			fail_msg("upgrade %u: the master is pid %ld, not %ld", n,
			    (long)s.hdr.master_pid, (long)g->pid);
		if (s.hdr.upgrades == n && s.hdr.generation == n + 1 &&
		    running(g, pids) == 2) {
			stats_snap_free(&s);
			return;
		}
		stats_snap_free(&s);
		if (harness_now() - t0 > STEP_TIMEOUT)
			fail_msg("upgrade %u not done within %.0f s", n,
			    STEP_TIMEOUT);
		harness_sleep(0.01);
	}
}

/*
 * 10 binary upgrades in a row under 16 pipelined connections, the
 * installed binary replaced before each by one of two builds that differ
 * in goprod -V, `goproctl upgrade` and SIGUSR2 in turn: the master keeps
 * its pid, each upgrade runs the build just installed, no connection is
 * refused, no request lost, and no stats total ever goes down.
 */
static void
test_ten_upgrades(void **state)
{
	char bindir[64], exe[96], out[1024], want[256], main_bin[512];
	struct stats_values last;
	struct stats_snap s;
	struct bench b;
	struct goprod g;
	int rc;

	snprintf(main_bin, sizeof(main_bin), "%s", harness_program("GOPROD"));
	start_installed(&g, bindir, sizeof(bindir), exe, sizeof(exe),
	    "workers = 2\ngoaway_grace = 0.5s\n");
	snap(&g, &s);
	last = s.total;
	stats_snap_free(&s);
	bench_start(&b, g.addr, "16", "8", false);
	wait_load(&g, 16, "before the upgrades");
	for (uint32_t i = 1; i <= 10; i++) {
		bool alt = i % 2;

		install_binary(alt ? harness_program("GOPROD_ALT") : main_bin,
		    exe);
		snprintf(want, sizeof(want), "upgraded in place: pid %ld, "
		    "goprod %s%s, generation %u", (long)g.pid, PACKAGE_VERSION,
		    alt ? " (alt)" : "", i + 1);
		if (alt && (rc = goproctl(&g, "upgrade", out, sizeof(out))) != 0)
			fail_msg("goproctl upgrade %u: exit %d: %s", i, rc, out);
		if (alt && strstr(out, want) == NULL)
			fail_msg("goproctl upgrade %u said \"%s\", not \"%s\"", i,
			    out, want);
		if (!alt)
			assert_int_equal(kill(g.pid, SIGUSR2), 0);
		wait_upgraded(&g, i, &last);
		if (!harness_log_has(&g, want))
			fail_msg("upgrade %u: no \"%s\" in the log", i, want);
		wait_load(&g, 16, "between the upgrades");
	}
	rc = bench_stop(&b);
	bench_print(&b, "10 upgrades");
	if (rc != 0)
		fail_msg("gopro-bench failed (exit %d): %s", rc, b.out);
	assert_int_equal(bench_num(&b, "lost"), 0);
	assert_int_equal(bench_num(&b, "errors"), 0);
	assert_int_equal(bench_num(&b, "connect_failed"), 0);
	assert_true(bench_num(&b, "goaway") >= 10);
	snap(&g, &s);
	check_monotonic(&last, &s.total, "after the upgrades");
	assert_int_equal(s.hdr.upgrades, 10);
	assert_int_equal(s.hdr.reloads_failed, 0);
	assert_int_equal(s.total.counter[STATS_requests_lost], 0);
	stats_snap_free(&s);
	free(b.out);
	assert_int_equal(harness_stop(&g), 0);
	remove_installed(bindir);
}

/*
 * Upgrades to binaries that must be refused: one whose -t fails, one that
 * is not a program, one that passes -t but cannot take over (it does not
 * speak the upgrade protocol).  Each time goproctl upgrade exits 1 saying
 * why, and the same master and the same workers keep serving.
 */
static void
test_upgrade_refused(void **state)
{
	static const char *const bad[][2] = {
		{ "#!/bin/sh\necho 'gopro.conf:1: listen: broken' >&2\nexit 1\n",
		  "listen: broken" },
		{ "not a program\n", "-t exited with status" },
		{ "#!/bin/sh\necho 'goprod: configuration file ok'\n",
		  "cannot take over a running goprod" },
	};
	char bindir[64], exe[96], src[128], out[1024];
	pid_t before[8], after[8];
	struct stats_snap s;
	struct goprod g;
	FILE *f;

	double t0;

	start_installed(&g, bindir, sizeof(bindir), exe, sizeof(exe),
	    "workers = 2\n");
	for (t0 = harness_now(); running(&g, before) != 2; harness_sleep(0.01))
		if (harness_now() - t0 > STEP_TIMEOUT)
			fail_msg("2 workers not running after %.0f s",
			    STEP_TIMEOUT);
	snprintf(src, sizeof(src), "%s/bad", bindir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_non_null(f = fopen(src, "w"));
		fputs(bad[i][0], f);
		fclose(f);
		install_binary(src, exe);
		assert_int_equal(goproctl(&g, "upgrade", out, sizeof(out)), 1);
		if (strstr(out, bad[i][1]) == NULL ||
		    strstr(out, "keeps running") == NULL)
			fail_msg("upgrade to bad binary %zu said: %s", i, out);
		assert_true(harness_answers(&g));
		assert_int_equal(running(&g, after), 2);
		assert_memory_equal(before, after, sizeof(before));
	}
	snap(&g, &s);
	assert_int_equal(s.hdr.master_pid, g.pid);
	assert_int_equal(s.hdr.upgrades, 0);
	assert_int_equal(s.hdr.generation, 1);
	stats_snap_free(&s);
	assert_int_equal(harness_stop(&g), 0);
	remove_installed(bindir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_twenty_reloads, teardown),
		cmocka_unit_test_teardown(test_twenty_module_deploys, teardown),
		cmocka_unit_test_teardown(test_reload_while_reloading, teardown),
		cmocka_unit_test_teardown(test_kill9_under_load, teardown),
		cmocka_unit_test_teardown(test_sigterm_under_load, teardown),
		cmocka_unit_test_teardown(test_reload_worker_count, teardown),
		cmocka_unit_test_teardown(test_reload_listen_change, teardown),
		cmocka_unit_test_teardown(test_ten_upgrades, teardown),
		cmocka_unit_test_teardown(test_upgrade_refused, teardown),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
