/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * gopro-bench.c - the load generator's entry point.
 *
 * main parses the options, builds the request frames once, splits the
 * connections (and a -n budget) over -t threads that each run their own
 * libev loop (bench_conn.c), and then only watches: it prints a progress
 * line every second, turns SIGINT/SIGTERM into an orderly stop, and in
 * hold mode drives the phases (open, idle, check, finish) and reads the
 * server's RSS between them.  At the end it merges the threads' counters
 * and histograms and prints the summary.
 *
 * Exit status: 0 when every reply was right and none was lost (--allow-lost
 * tolerates lost ones), 1 otherwise, 2 on a usage error.
 */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include "bench.h"

#define WATCH_STEP 0.05
#define FD_RESERVE 32

struct run {
	struct bench_opts opts;
	struct bench_plan plan;
	uint8_t cycle[BENCH_MIX_CYCLE_MAX];
	struct bench_shared sh;
	struct bench_thread **threads;
	pthread_t *tids;
	sigset_t signals;
	uint64_t stop_ns;
	uint64_t last_progress_ns;
	uint64_t last_ok;
	bool interrupted;
};

/* ------------------------------------------------------------ set-up */

static void
raise_fd_limit(unsigned conns)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)conns + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		err(1, "getrlimit(RLIMIT_NOFILE)");
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		err(1, "setrlimit(RLIMIT_NOFILE, %llu)",
		    (unsigned long long)rl.rlim_cur);
	if (rl.rlim_cur < want)
		errx(2, "-c %u needs %llu descriptors but the hard limit is "
		    "%llu (raise it with ulimit -Hn or LimitNOFILE)", conns,
		    (unsigned long long)want, (unsigned long long)rl.rlim_max);
}

static void
parse_or_exit(struct run *r, int argc, char **argv)
{
	char msg[512];

	switch (bench_opts_parse(&r->opts, argc, argv, msg, sizeof(msg))) {
	case BENCH_OPTS_RUN:
		return;
	case BENCH_OPTS_HELP:
		bench_help(stdout);
		exit(0);
	case BENCH_OPTS_VERSION:
		printf("gopro-bench %s\n", PACKAGE_VERSION);
		exit(0);
	case BENCH_OPTS_USAGE:
		fprintf(stderr, "gopro-bench: %s (try 'gopro-bench -h')\n", msg);
		exit(2);
	}
}

static void
build_plan(struct run *r)
{
	struct bench_plan_conf pc = {
		.body = r->opts.body,
		.prefix = r->opts.prefix,
		.user = r->opts.user,
		.password = r->opts.password,
		.any_body = r->opts.any_reply,
	};
	char msg[256];

	if (bench_plan_init(&r->plan, &pc, msg, sizeof(msg)) < 0)
		errx(1, "%s", msg);
	bench_mix_cycle(&r->opts.mix, r->cycle);
}

static void
start_threads(struct run *r)
{
	const struct bench_opts *o = &r->opts;
	unsigned first = 0, nt = o->threads;
	uint64_t now = bench_now_ns();
	int rc;

	r->sh.opts = o;
	r->sh.plan = &r->plan;
	r->sh.cycle = r->cycle;
	r->sh.start_ns = now;
	r->sh.measure_ns = now + (uint64_t)(o->warmup * 1e9);
	r->sh.end_ns = o->duration > 0 && o->hold <= 0 ?
	    r->sh.measure_ns + (uint64_t)(o->duration * 1e9) : UINT64_MAX;
	bench_sched_init(&r->sh.sched, now, o->rate, o->conns);
	r->threads = calloc(nt, sizeof(*r->threads));
	r->tids = calloc(nt, sizeof(*r->tids));
	if (r->threads == NULL || r->tids == NULL)
		err(1, "threads");
	for (unsigned i = 0; i < nt; i++) {
		unsigned n = o->conns / nt + (i < o->conns % nt);
		uint64_t quota = o->requests == 0 ? UINT64_MAX :
		    o->requests / nt + (i < o->requests % nt);
		r->threads[i] = bench_thread_new(&r->sh, i, first, n, quota);
		if (r->threads[i] == NULL)
			errx(1, "thread %u: no memory for %u connections", i, n);
		first += n;
	}
	for (unsigned i = 0; i < nt; i++)
		if ((rc = pthread_create(&r->tids[i], NULL, bench_thread_run,
		    r->threads[i])) != 0) {
			errno = rc;
			err(1, "pthread_create (thread %u of %u)", i, nt);
		}
}

/* ------------------------------------------------------------ watching */

static void
progress_sum(const struct run *r, struct bench_progress *sum, int *min_phase,
    unsigned *done)
{
	struct bench_progress p;

	memset(sum, 0, sizeof(*sum));
	*min_phase = BENCH_PHASE_FINISH;
	*done = 0;
	for (unsigned i = 0; i < r->opts.threads; i++) {
		bench_thread_progress(r->threads[i], &p);
		sum->ok += p.ok;
		sum->errors += p.errors;
		sum->lost += p.lost;
		sum->open += p.open;
		sum->opened += p.opened;
		if (sum->connect_error == NULL)
			sum->connect_error = p.connect_error;
		sum->held += p.held;
		sum->survived += p.survived;
		sum->failed += p.failed;
		sum->pending += p.pending;
		if (p.phase < *min_phase)
			*min_phase = p.phase;
		*done += p.done != 0;
	}
}

static void
stop_on_signal(struct run *r, int sig)
{
	if (r->interrupted)
		errx(1, "interrupted twice by signal %d: exiting at once", sig);
	r->interrupted = true;
	r->stop_ns = bench_now_ns();
	__atomic_store_n(&r->sh.stop, 1, __ATOMIC_RELAXED);
	if (r->opts.hold > 0)
		__atomic_store_n(&r->sh.phase, BENCH_PHASE_FINISH,
		    __ATOMIC_RELEASE);
	if (!r->opts.quiet)
		fprintf(stderr, "gopro-bench: signal %d, stopping\n", sig);
}

/*
 * Wait WATCH_STEP for a signal, print a progress line when a second has
 * passed, and return the threads' progress.
 */
static void
watch_step(struct run *r, struct bench_progress *sum, int *min_phase,
    unsigned *done)
{
	struct timespec ts = { 0, (long)(WATCH_STEP * 1e9) };
	uint64_t now;
	int sig;

	sig = sigtimedwait(&r->signals, NULL, &ts);
	if (sig > 0)
		stop_on_signal(r, sig);
	progress_sum(r, sum, min_phase, done);
	/* Nothing listens (or the route is wrong): say so now, as wrk does. */
	if (sum->opened == 0 && sum->connect_error != NULL)
		errx(1, "%s", sum->connect_error);
	now = bench_now_ns();
	if (r->last_progress_ns == 0)
		r->last_progress_ns = now;
	if (now - r->last_progress_ns < 1000000000u)
		return;
	if (!r->opts.quiet)
		bench_report_progress(stderr,
		    (double)(now - r->sh.start_ns) / 1e9, sum, r->last_ok,
		    (double)(now - r->last_progress_ns) / 1e9,
		    r->opts.hold > 0);
	r->last_ok = sum->ok;
	r->last_progress_ns = now;
}

static void
wait_all_done(struct run *r)
{
	struct bench_progress sum;
	unsigned done = 0;
	int phase;

	while (done < r->opts.threads)
		watch_step(r, &sum, &phase, &done);
}

/* Hold: wait until every thread acted on phase and settled its connections. */
static bool
hold_settle(struct run *r, int phase)
{
	struct bench_progress sum;
	unsigned done;
	int seen;

	for (;;) {
		watch_step(r, &sum, &seen, &done);
		if (r->interrupted)
			return false;
		if (seen >= phase && sum.pending == 0)
			return true;
	}
}

static void
hold_drive(struct run *r, struct bench_result *res)
{
	struct bench_progress sum;
	unsigned done;
	uint64_t until;
	int seen;

	if (hold_settle(r, BENCH_PHASE_OPEN)) {
		if (r->opts.server_pid > 0)
			res->rss_idle = bench_rss_tree_kib(r->opts.server_pid);
		__atomic_store_n(&r->sh.phase, BENCH_PHASE_IDLE,
		    __ATOMIC_RELEASE);
		until = bench_now_ns() + (uint64_t)(r->opts.hold * 1e9);
		while (!r->interrupted && bench_now_ns() < until)
			watch_step(r, &sum, &seen, &done);
	}
	if (!r->interrupted) {
		__atomic_store_n(&r->sh.phase, BENCH_PHASE_CHECK,
		    __ATOMIC_RELEASE);
		if (hold_settle(r, BENCH_PHASE_CHECK) &&
		    r->opts.server_pid > 0)
			res->rss_after = bench_rss_tree_kib(r->opts.server_pid);
	}
	__atomic_store_n(&r->sh.phase, BENCH_PHASE_FINISH, __ATOMIC_RELEASE);
	wait_all_done(r);
}

/* ------------------------------------------------------------ results */

static double
measured_seconds(const struct run *r, const struct bench_stats *st)
{
	uint64_t end;

	if (r->opts.duration > 0) {
		end = r->sh.end_ns;
		if (r->interrupted && r->stop_ns < end)
			end = r->stop_ns;
	} else
		end = st->last_reply_ns;
	return end > r->sh.measure_ns ?
	    (double)(end - r->sh.measure_ns) / 1e9 : 0.0;
}

static void
collect(struct run *r, struct bench_result *res)
{
	struct bench_progress p;
	struct rusage ru;

	bench_stats_init(&res->stats);
	for (unsigned i = 0; i < r->opts.threads; i++) {
		pthread_join(r->tids[i], NULL);
		bench_stats_merge(&res->stats, bench_thread_stats(r->threads[i]));
		bench_thread_progress(r->threads[i], &p);
		res->held += p.held;
		res->survived += p.survived;
		res->failed += p.failed;
	}
	res->elapsed = measured_seconds(r, &res->stats);
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		res->cpu_user = (double)ru.ru_utime.tv_sec +
		    (double)ru.ru_utime.tv_usec / 1e6;
		res->cpu_sys = (double)ru.ru_stime.tv_sec +
		    (double)ru.ru_stime.tv_usec / 1e6;
	}
}

int
main(int argc, char **argv)
{
	static struct run r;
	static struct bench_result res;
	int status;

	parse_or_exit(&r, argc, argv);
	raise_fd_limit(r.opts.conns);
	build_plan(&r);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&r.signals);
	sigaddset(&r.signals, SIGINT);
	sigaddset(&r.signals, SIGTERM);
	/* Blocked before the threads start, so they inherit the mask. */
	pthread_sigmask(SIG_BLOCK, &r.signals, NULL);
	res.opts = &r.opts;
	res.rss_before = res.rss_idle = res.rss_after = -1;
	if (r.opts.server_pid > 0 &&
	    (res.rss_before = bench_rss_tree_kib(r.opts.server_pid)) < 0)
		warnx("--server-pid %ld: cannot read /proc/%ld/status",
		    (long)r.opts.server_pid, (long)r.opts.server_pid);
	start_threads(&r);
	if (r.opts.hold > 0)
		hold_drive(&r, &res);
	else
		wait_all_done(&r);
	collect(&r, &res);
	if (r.opts.hold <= 0 && r.opts.server_pid > 0)
		res.rss_after = bench_rss_tree_kib(r.opts.server_pid);
	if (r.opts.json)
		bench_report_json(stdout, &res);
	else
		bench_report_text(stdout, &res);
	status = bench_result_status(&res);
	for (unsigned i = 0; i < r.opts.threads; i++)
		bench_thread_free(r.threads[i]);
	free(r.threads);
	free(r.tids);
	bench_plan_free(&r.plan);
	return status;
}
