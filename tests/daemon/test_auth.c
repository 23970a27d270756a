/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_auth.c - unit tests of auth.c: loading and refusing users files,
 * password checks (right, wrong, unknown user, prefixes, the dummy hash of
 * unknown users), the hashing thread pool on a real libev loop, and the
 * per-address login rate limiter driven by a simulated clock.
 *
 * Hashes are made here with sha512-crypt at 1000 rounds (fast enough for a
 * test) plus one cheap yescrypt hash; users files go to a mkdtemp directory
 * that the fixture removes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "auth.h"
#include "gopro/gopro.h"

/* ------------------------------------------------------------ helpers */

struct hashes {
	char carol[CRYPT_OUTPUT_SIZE];	/* "costly", $6$ at 200000 rounds */
	char alice[CRYPT_OUTPUT_SIZE];	/* "wonderland", $6$ */
	char bob[CRYPT_OUTPUT_SIZE];	/* "builder", $6$ */
	char bobby[CRYPT_OUTPUT_SIZE];	/* "tables", $6$ */
	char yuki[CRYPT_OUTPUT_SIZE];	/* "snow", yescrypt */
};

static struct hashes H;
static char tmpdir[64];

static void
make_hash(char *out, const char *prefix, unsigned long cost,
    const char *password)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;

	assert_non_null(crypt_gensalt_rn(prefix, cost, NULL, 0, setting,
	    sizeof(setting)));
	cd = calloc(1, sizeof(*cd));
	assert_non_null(cd);
	h = crypt_rn(password, setting, cd, sizeof(*cd));
	assert_non_null(h);
	assert_true(strlen(h) < CRYPT_OUTPUT_SIZE);
	strcpy(out, h);
	free(cd);
}

static int
group_setup(void **state)
{
	make_hash(H.carol, "$6$", 200000, "costly");
	make_hash(H.alice, "$6$", 1000, "wonderland");
	make_hash(H.bob, "$6$", 1000, "builder");
	make_hash(H.bobby, "$6$", 1000, "tables");
	make_hash(H.yuki, "$y$", 1, "snow");
	return 0;
}

static int
dir_setup(void **state)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_auth.XXXXXX",
	    base && strlen(base) < 40 ? base : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
dir_teardown(void **state)
{
	struct dirent *de;
	DIR *d;

	assert_non_null(d = opendir(tmpdir));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		assert_int_equal(unlinkat(dirfd(d), de->d_name, 0), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(tmpdir), 0);
	return 0;
}

/* Write a users file with exactly the given mode; returns its path. */
static const char *
write_users(const char *name, mode_t mode, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const char *
write_users(const char *name, mode_t mode, const char *fmt, ...)
{
	static char path[128];
	va_list ap;
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_non_null(f = fdopen(fd, "w"));
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	assert_int_equal(fclose(f), 0);
	return path;
}

static bool
check(const struct auth_users *u, const char *user, const char *password)
{
	return auth_verify(u, (const uint8_t *)user, strlen(user),
	    (const uint8_t *)password, strlen(password));
}

/* The standard file: four users, comments and blank lines. */
static struct auth_users *
load_standard(void)
{
	char err[256] = "";
	const char *path;
	struct auth_users *u;

	path = write_users("users", 0600,
	    "# gopro users\n\nalice:%s\n   \nbob:%s\n#bob:nothing\n"
	    "bobby:%s\n\t\nyuki:%s", H.alice, H.bob, H.bobby, H.yuki);
	u = auth_users_load(path, err, sizeof(err));
	if (u == NULL)
		fail_msg("load failed: %s", err);
	return u;
}

/* Load must fail with a message holding each of the given fragments. */
static void
expect_refused(const char *path, const char *frag1, const char *frag2)
{
	char err[512] = "";

	assert_null(auth_users_load(path, err, sizeof(err)));
	if (strstr(err, frag1) == NULL || (frag2 && !strstr(err, frag2)))
		fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err, frag1,
		    frag2 ? frag2 : "");
}

/* ------------------------------------------------------------ users file */

static void
test_load_and_verify(void **state)
{
	struct auth_users *u = load_standard();

	assert_int_equal(auth_users_count(u), 4);
	assert_true(check(u, "alice", "wonderland"));
	assert_true(check(u, "bob", "builder"));
	assert_true(check(u, "bobby", "tables"));
	assert_true(check(u, "yuki", "snow"));
	assert_false(check(u, "alice", "wonderlan"));
	assert_false(check(u, "alice", "wonderland2"));
	assert_false(check(u, "alice", "builder"));
	assert_false(check(u, "carol", "wonderland"));
	assert_false(check(u, "yuki", "SNOW"));
	auth_users_unref(u);
}

static void
test_prefix_and_empty(void **state)
{
	struct auth_users *u = load_standard();

	/* "bob" is a prefix of "bobby": neither takes the other's password. */
	assert_false(check(u, "bob", "tables"));
	assert_false(check(u, "bobby", "builder"));
	assert_false(check(u, "bo", "builder"));
	assert_false(check(u, "alic", "wonderland"));
	assert_false(check(u, "alicee", "wonderland"));
	assert_false(check(u, "", "wonderland"));
	assert_false(check(u, "alice", ""));
	/* A NUL inside must not cut the password to a valid one. */
	assert_false(auth_verify(u, (const uint8_t *)"bob", 3,
	    (const uint8_t *)"builder\0x", 9));
	auth_users_unref(u);
}

static void
test_long_inputs(void **state)
{
	struct auth_users *u = load_standard();
	uint8_t big[GOPRO_PASSWORD_MAX];

	memset(big, 'a', sizeof(big));
	assert_false(auth_verify(u, big, GOPRO_USER_MAX + 1,
	    (const uint8_t *)"x", 1));
	assert_false(auth_verify(u, (const uint8_t *)"alice", 5, big,
	    sizeof(big)));
	auth_users_unref(u);
}

static void
test_user_name_limits(void **state)
{
	char name[GOPRO_USER_MAX + 2], err[256] = "";
	struct auth_users *u;
	const char *path;

	memset(name, 'n', GOPRO_USER_MAX);
	name[GOPRO_USER_MAX] = '\0';
	path = write_users("max", 0600, "%s:%s\n", name, H.alice);
	u = auth_users_load(path, err, sizeof(err));
	assert_non_null(u);
	assert_true(check(u, name, "wonderland"));
	auth_users_unref(u);

	strcat(name, "n");
	expect_refused(write_users("long", 0600, "%s:%s\n", name, H.alice),
	    ":1: ", "64");
}

static void
test_empty_file(void **state)
{
	char err[256] = "";
	struct auth_users *u;

	u = auth_users_load(write_users("empty", 0600, "# nobody\n\n"), err,
	    sizeof(err));
	assert_non_null(u);
	assert_int_equal(auth_users_count(u), 0);
	assert_false(check(u, "alice", "wonderland"));
	auth_users_unref(u);
}

static void
test_refuse_mode(void **state)
{
	const char *path;

	path = write_users("open", 0644, "alice:%s\n", H.alice);
	expect_refused(path, path, "others");
	expect_refused(write_users("w", 0602, "alice:%s\n", H.alice),
	    "/w: ", "others");
}

static void
test_group_read_allowed(void **state)
{
	char err[256] = "";
	struct auth_users *u;

	u = auth_users_load(write_users("grp", 0640, "alice:%s\n", H.alice),
	    err, sizeof(err));
	assert_non_null(u);
	auth_users_unref(u);
}

static void
test_refuse_not_regular(void **state)
{
	char path[128];

	expect_refused(tmpdir, tmpdir, "not a regular file");
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	assert_int_equal(mkfifo(path, 0600), 0);
	expect_refused(path, path, "not a regular file");
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	expect_refused(path, path, "cannot open");
}

static void
test_refuse_malformed(void **state)
{
	const char *path;

	path = write_users("bad", 0600, "alice:%s\n# ok\n\njunk\n", H.alice);
	expect_refused(path, path, ":4: ");
	expect_refused(write_users("b2", 0600, ":%s\n", H.alice), ":1: ",
	    "empty user name");
	expect_refused(write_users("b3", 0600, "al ice:%s\n", H.alice), ":1: ",
	    "whitespace");
	expect_refused(write_users("b4", 0600, "alice:\n"), ":1: ", "empty");
	/* A CRLF file: the CR would be part of the hash, never matching. */
	expect_refused(write_users("b5", 0600, "alice:%s\r\n", H.alice),
	    ":1: ", "control");
	expect_refused(write_users("b6", 0600, "x:y\n:%s\n", H.alice), ":1: ",
	    NULL);
}

static void
test_refuse_duplicate(void **state)
{
	const char *path;

	path = write_users("dup", 0600, "alice:%s\nbob:%s\nalice:%s\n",
	    H.alice, H.bob, H.bob);
	expect_refused(path, ":3: duplicate user \"alice\"", "line 1");
}

static void
test_refuse_bad_hash(void **state)
{
	expect_refused(write_users("h1", 0600, "alice:%s\nbob:*\n", H.alice),
	    ":2: ", "not supported");
	expect_refused(write_users("h2", 0600, "bob:!%s\n", H.bob), ":1: ",
	    "not supported");
	/* Legacy DES and md5-crypt are refused as obsolete. */
	expect_refused(write_users("h3", 0600, "bob:abJnggxhB/yWI\n"), ":1: ",
	    "obsolete");
	expect_refused(write_users("h4", 0600,
	    "bob:$1$abc$Kb85XxsXB.VXinPhbS4431\n"), ":1: ", "obsolete");
	/* A password in clear is named as such, not as an old method. */
	expect_refused(write_users("h7", 0600, "bob:plaintext\n"), ":1: ",
	    "not a crypt(3) hash");
	/* A hash cut down to its setting would never match. */
	expect_refused(write_users("h5", 0600, "bob:$6$abcdefgh$\n"), ":1: ",
	    "checksum");
	/* Parameters crypt(3) rejects, found by the trial on the first hash. */
	expect_refused(write_users("h6", 0600, "bob:$6$rounds=1$abc$def\n"),
	    ":1: ", "cannot use");
}

static void
test_refcount(void **state)
{
	struct auth_users *u = load_standard();

	assert_ptr_equal(auth_users_ref(u), u);
	auth_users_unref(u);
	/* Still alive: one reference left. */
	assert_true(check(u, "bob", "builder"));
	auth_users_free(u);
	auth_users_unref(NULL);
}

/*
 * The unknown-user path must cost a hash like a wrong password, or timing
 * tells which user names exist.  Counted, not timed, to stay deterministic.
 */
static void
test_unknown_user_hashes(void **state)
{
	struct auth_users *u = load_standard();
	unsigned long before;

	before = auth_hash_calls();
	assert_false(check(u, "mallory", "wonderland"));
	assert_int_equal(auth_hash_calls() - before, 1);
	before = auth_hash_calls();
	assert_false(check(u, "alice", "nope"));
	assert_int_equal(auth_hash_calls() - before, 1);
	before = auth_hash_calls();
	assert_false(check(u, "alice", ""));
	assert_int_equal(auth_hash_calls() - before, 0);
	auth_users_unref(u);
}

/* CPU seconds of one check on this thread (the pool is not involved). */
static double
check_cpu(const struct auth_users *u, const char *user, const char *password)
{
	struct timespec a, b;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	assert_false(check(u, user, password));
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) /
	    1e9;
}

/*
 * A file that mixes methods and costs, the costliest user last: unknown
 * users are checked at the cost of line 4 (sha512 at 200000 rounds), not
 * at that of the first line (1000 rounds, 200 times cheaper), and the load
 * warns, naming the lines of each method and cost.  The CPU time of the
 * checks (this thread's, not the clock) differs 200-fold between the
 * two choices; the bound asks for a quarter.
 */
static void
test_dummy_is_the_costliest(void **state)
{
	char err[256] = "";
	struct auth_users *u;
	const char *w;
	double unknown, costly;

	u = auth_users_load(write_users("mixed", 0600, "alice:%s\nyuki:%s\n"
	    "bob:%s\ncarol:%s\n", H.alice, H.yuki, H.bob, H.carol), err,
	    sizeof(err));
	if (u == NULL)
		fail_msg("load failed: %s", err);
	assert_int_equal(auth_users_dummy_line(u), 4);
	assert_non_null(w = auth_users_warning(u));
	if (strstr(w, "/mixed: password hashes differ in method or cost") ==
	    NULL || strstr(w, "like line 4 ($6$rounds=200000$)") == NULL ||
	    strstr(w, "$6$rounds=1000$ on lines 1, 3") == NULL ||
	    strstr(w, "$y$") == NULL || strstr(w, "on line 2;") == NULL ||
	    strstr(w, "$6$rounds=200000$ on line 4") == NULL)
		fail_msg("warning: %s", w);
	assert_true(check(u, "carol", "costly"));
	unknown = check_cpu(u, "mallory", "costly");
	costly = check_cpu(u, "carol", "wrong");
	print_message("unknown user %.1f ms, wrong password of line 4 %.1f ms "
	    "of CPU\n", unknown * 1e3, costly * 1e3);
	assert_true(unknown > costly / 4);
	auth_users_unref(u);
}

/* One method and cost: no warning, the dummy copies the first line. */
static void
test_uniform_file_no_warning(void **state)
{
	char err[256] = "";
	struct auth_users *u;

	u = auth_users_load(write_users("same", 0600, "\nalice:%s\nbob:%s\n",
	    H.alice, H.bob), err, sizeof(err));
	assert_non_null(u);
	assert_null(auth_users_warning(u));
	assert_int_equal(auth_users_dummy_line(u), 2);
	auth_users_unref(u);
	u = auth_users_load(write_users("none", 0600, "# nobody\n"), err,
	    sizeof(err));
	assert_non_null(u);
	assert_null(auth_users_warning(u));
	assert_int_equal(auth_users_dummy_line(u), 0);
	auth_users_unref(u);
}

/* ------------------------------------------------------------ thread pool */

#define NJOBS 12

struct job_result {
	struct pool_run *run;
	bool expect;
	int calls;
	bool ok;
	bool busy;
};

struct pool_run {
	struct ev_loop *loop;
	struct auth_pool *pool;
	pthread_t loop_thread;
	struct job_result r[NJOBS];
	int delivered;
	bool wrong_thread;
	bool bad_pending;
	bool timed_out;
};

static void
job_done(void *ctx, enum auth_result result, const uint8_t *user,
    size_t user_len)
{
	struct job_result *r = ctx;

	if (!pthread_equal(pthread_self(), r->run->loop_thread))
		r->run->wrong_thread = true;
	r->calls++;
	r->ok = result == AUTH_OK;
	r->busy = result == AUTH_BUSY;
	/* The worker's drain waits for zero from inside a callback. */
	if (auth_pool_pending(r->run->pool) !=
	    (unsigned)(NJOBS - ++r->run->delivered))
		r->run->bad_pending = true;
	if (r->run->delivered == NJOBS)
		ev_break(r->run->loop, EVBREAK_ALL);
}

static void
safety_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct pool_run *run = t->data;

	run->timed_out = true;
	ev_break(loop, EVBREAK_ALL);
}

static void
submit(struct auth_pool *pool, struct auth_users *u, const char *user,
    const char *password, struct job_result *r)
{
	assert_int_equal(auth_pool_submit(pool, u, (const uint8_t *)user,
	    strlen(user), (const uint8_t *)password, strlen(password),
	    job_done, r), 0);
}

static void
test_pool_results(void **state)
{
	static const struct { const char *user, *password; bool ok; } creds[] = {
		{ "alice", "wonderland", true }, { "alice", "x", false },
		{ "bob", "builder", true }, { "bobby", "builder", false },
		{ "bobby", "tables", true }, { "nobody", "tables", false },
		{ "yuki", "snow", true }, { "yuki", "", false },
	};
	struct pool_run run = { .delivered = 0 };
	struct auth_users *u = load_standard();
	struct auth_pool *pool;
	ev_timer timer;

	run.loop = ev_loop_new(0);
	assert_non_null(run.loop);
	run.loop_thread = pthread_self();
	pool = run.pool = auth_pool_new(run.loop, 3, 60);
	assert_non_null(pool);
	for (int i = 0; i < NJOBS; i++) {
		size_t k = (size_t)i % (sizeof(creds) / sizeof(creds[0]));

		run.r[i].run = &run;
		run.r[i].expect = creds[k].ok;
		submit(pool, u, creds[k].user, creds[k].password, &run.r[i]);
	}
	/* The pool holds references: the caller may drop its own. */
	auth_users_unref(u);
	assert_int_equal(auth_pool_pending(pool), NJOBS);

	ev_timer_init(&timer, safety_timeout, 10.0, 0.0);
	timer.data = &run;
	ev_timer_start(run.loop, &timer);
	ev_run(run.loop, 0);
	ev_timer_stop(run.loop, &timer);

	assert_false(run.timed_out);
	assert_false(run.wrong_thread);
	assert_false(run.bad_pending);
	assert_int_equal(run.delivered, NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(run.r[i].calls, 1);
		assert_int_equal(run.r[i].ok, run.r[i].expect);
		assert_false(run.r[i].busy);
	}
	assert_int_equal(auth_pool_pending(pool), 0);
	auth_pool_free(pool);
	ev_loop_destroy(run.loop);
}

/*
 * One thread, a 20 ms bound on the wait: the first check (200000 rounds,
 * about 100 ms) holds the thread while the 11 behind it wait, and those a
 * thread has not started when their 20 ms are up are answered AUTH_BUSY
 * without being checked, however correct their password.  At most a few
 * may be started first on a loaded machine: the bound asks for 8 of 11.
 */
static void
test_pool_queue_timeout(void **state)
{
	struct pool_run run = { .delivered = 0 };
	struct auth_users *u;
	char err[256] = "";
	ev_timer timer;
	int busy = 0;
	unsigned long hashes;

	u = auth_users_load(write_users("slow", 0600, "alice:%s\ncarol:%s\n",
	    H.alice, H.carol), err, sizeof(err));
	assert_non_null(u);
	run.loop = ev_loop_new(0);
	run.loop_thread = pthread_self();
	run.pool = auth_pool_new(run.loop, 1, 0.02);
	assert_non_null(run.pool);
	ev_now_update(run.loop);
	hashes = auth_hash_calls();
	for (int i = 0; i < NJOBS; i++) {
		run.r[i].run = &run;
		submit(run.pool, u, i == 0 ? "carol" : "alice", i == 0 ? "no" :
		    "wonderland", &run.r[i]);
	}
	ev_timer_init(&timer, safety_timeout, 30.0, 0.0);
	timer.data = &run;
	ev_timer_start(run.loop, &timer);
	ev_run(run.loop, 0);
	ev_timer_stop(run.loop, &timer);
	assert_false(run.timed_out);
	assert_int_equal(run.delivered, NJOBS);
	/*
	 * The first check is refused either way; on a loaded machine its
	 * thread may not start it within 20 ms, and then it is busy too.
	 */
	assert_false(run.r[0].ok);
	assert_int_equal(run.r[0].calls, 1);
	for (int i = 1; i < NJOBS; i++) {
		assert_int_equal(run.r[i].calls, 1);
		busy += run.r[i].busy;
		/* A busy check was never computed, so never accepted. */
		assert_false(run.r[i].busy && run.r[i].ok);
	}
	print_message("%d of %d checks answered busy (the first: %s), %lu "
	    "hashes\n", busy, NJOBS - 1, run.r[0].busy ? "busy" : "checked",
	    auth_hash_calls() - hashes);
	assert_true(busy >= 8);
	assert_int_equal(auth_hash_calls() - hashes, (unsigned long)(NJOBS -
	    busy - (run.r[0].busy ? 1 : 0)));
	auth_pool_free(run.pool);
	auth_users_unref(u);
	ev_loop_destroy(run.loop);
}

static void
never_called(void *ctx, enum auth_result result, const uint8_t *user,
    size_t user_len)
{
	fail_msg("callback ran after auth_pool_free");
}

static void
test_pool_free_with_queued_jobs(void **state)
{
	struct auth_users *u = load_standard();
	struct ev_loop *loop = ev_loop_new(0);
	struct auth_pool *pool;
	unsigned n = 0;

	assert_non_null(loop);
	assert_non_null(pool = auth_pool_new(loop, 1, 60));
	/* Fill the queue: the loop never runs, so nothing is delivered. */
	while (auth_pool_submit(pool, u, (const uint8_t *)"alice", 5,
	    (const uint8_t *)"wonderland", 10, never_called, NULL) == 0)
		n++;
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(n, AUTH_POOL_QUEUE_MAX);
	assert_int_equal(auth_pool_pending(pool), AUTH_POOL_QUEUE_MAX);
	auth_pool_free(pool);
	/* Every job's reference is gone: this frees u (ASan sees a leak if
	 * one remains). */
	auth_users_unref(u);
	/* The async watcher was stopped: the loop has nothing left to run. */
	ev_run(loop, EVRUN_NOWAIT);
	ev_loop_destroy(loop);
}

static void
test_pool_bad_args(void **state)
{
	struct auth_users *u = load_standard();
	struct ev_loop *loop = ev_loop_new(0);
	struct auth_pool *pool;
	uint8_t big[GOPRO_PASSWORD_MAX + 1] = { 0 };

	assert_non_null(loop);
	errno = 0;
	assert_null(auth_pool_new(loop, 0, 60));
	assert_int_equal(errno, EINVAL);
	assert_null(auth_pool_new(loop, AUTH_POOL_THREADS_MAX + 1, 60));
	assert_null(auth_pool_new(loop, 2, 0));
	assert_non_null(pool = auth_pool_new(loop, 2, 60));
	assert_int_equal(auth_pool_submit(pool, u, big, GOPRO_USER_MAX + 1,
	    big, 1, never_called, NULL), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(auth_pool_submit(pool, u, big, 1, big, sizeof(big),
	    never_called, NULL), -1);
	assert_int_equal(auth_pool_submit(pool, NULL, big, 1, big, 1,
	    never_called, NULL), -1);
	assert_int_equal(auth_pool_pending(pool), 0);
	auth_pool_free(pool);
	auth_users_unref(u);
	ev_loop_destroy(loop);
}

/* ------------------------------------------------------------ rate limit */

static struct sockaddr_storage
addr4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage
addr6(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	return ss;
}

static bool
allow(struct auth_ratelimit *rl, const struct sockaddr_storage *ss,
    double now)
{
	return auth_ratelimit_allow(rl, (const struct sockaddr *)ss, now);
}

static void
test_rl_burst_and_refill(void **state)
{
	struct auth_ratelimit *rl = auth_ratelimit_new(0.5, 3, 64);
	struct sockaddr_storage a = addr4("192.0.2.1", 1000);
	struct sockaddr_storage a2 = addr4("192.0.2.1", 2000);

	assert_non_null(rl);
	assert_true(allow(rl, &a, 100.0));
	assert_true(allow(rl, &a2, 100.0));	/* the port does not matter */
	assert_true(allow(rl, &a, 100.0));
	assert_false(allow(rl, &a, 100.0));
	assert_false(allow(rl, &a, 101.0));	/* half a token so far */
	assert_true(allow(rl, &a, 102.0));	/* one token after 2 s */
	assert_false(allow(rl, &a, 102.0));
	/* A long pause refills up to the burst, not beyond. */
	assert_true(allow(rl, &a, 1000.0));
	assert_true(allow(rl, &a, 1000.0));
	assert_true(allow(rl, &a, 1000.0));
	assert_false(allow(rl, &a, 1000.0));
	/* A clock going back gives nothing. */
	assert_false(allow(rl, &a, 500.0));
	auth_ratelimit_free(rl);
}

static void
test_rl_addresses_independent(void **state)
{
	struct auth_ratelimit *rl = auth_ratelimit_new(1, 2, 64);
	struct sockaddr_storage a = addr4("192.0.2.1", 1);
	struct sockaddr_storage b = addr4("192.0.2.2", 1);
	struct sockaddr_storage c = addr6("2001:db8::1", 1);
	struct sockaddr_storage d = addr6("2001:db8::2", 1);

	assert_non_null(rl);
	for (int i = 0; i < 2; i++) {
		assert_true(allow(rl, &a, 10));
		assert_true(allow(rl, &c, 10));
	}
	assert_false(allow(rl, &a, 10));
	assert_false(allow(rl, &c, 10));
	assert_true(allow(rl, &b, 10));
	assert_true(allow(rl, &d, 10));
	auth_ratelimit_free(rl);
}

static void
test_rl_v4_mapped(void **state)
{
	struct auth_ratelimit *rl = auth_ratelimit_new(1, 2, 64);
	struct sockaddr_storage v4 = addr4("198.51.100.7", 1);
	struct sockaddr_storage mapped = addr6("::ffff:198.51.100.7", 2);
	struct sockaddr_storage other = addr6("::ffff:198.51.100.8", 2);

	assert_non_null(rl);
	assert_true(allow(rl, &v4, 0));
	assert_true(allow(rl, &mapped, 0));
	assert_false(allow(rl, &v4, 0));
	assert_false(allow(rl, &mapped, 0));
	assert_true(allow(rl, &other, 0));
	auth_ratelimit_free(rl);
}

/*
 * Far more addresses than slots: the table keeps its size (ASan would see
 * an overflow), newcomers are still served, and a fresh address still gets
 * a full burst and is then limited.
 */
static void
test_rl_overflow(void **state)
{
	struct auth_ratelimit *rl = auth_ratelimit_new(1, 2, 16);
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_storage a = addr4("203.0.113.9", 1);

	assert_non_null(rl);
	ss = addr6("2001:db8::", 1);
	for (unsigned i = 0; i < 10000; i++) {
		memcpy(&sin6->sin6_addr.s6_addr[12], &i, sizeof(i));
		assert_true(allow(rl, &ss, 5.0));
	}
	assert_true(allow(rl, &a, 6.0));
	assert_true(allow(rl, &a, 6.0));
	assert_false(allow(rl, &a, 6.0));
	auth_ratelimit_free(rl);
}

/*
 * The least recently seen address gives way: with a single slot, a second
 * address evicts the first, which then starts again with a full burst.
 */
static void
test_rl_eviction(void **state)
{
	struct auth_ratelimit *rl = auth_ratelimit_new(0.001, 1, 1);
	struct sockaddr_storage a = addr4("192.0.2.1", 1);
	struct sockaddr_storage b = addr4("192.0.2.2", 1);

	assert_non_null(rl);
	assert_true(allow(rl, &a, 1));
	assert_false(allow(rl, &a, 2));
	assert_true(allow(rl, &b, 3));
	assert_true(allow(rl, &a, 4));
	auth_ratelimit_free(rl);
}

/*
 * With 4 slots every address's probe window covers the whole table, so a
 * newcomer must evict exactly the least recently seen resident.  The test
 * keeps its own model of the table and checks, round after round, that every
 * resident the model keeps is still limited (not evicted and reset).
 */
static void
test_rl_lru_eviction(void **state)
{
	struct auth_ratelimit *rl = auth_ratelimit_new(1e-6, 1, 4);
	struct sockaddr_storage a[16];
	double seen[16], t = 1;
	int resident[4], n = 0, victim;
	char ip[32];

	assert_non_null(rl);
	for (int i = 0; i < 16; i++) {
		snprintf(ip, sizeof(ip), "10.0.0.%d", i + 1);
		a[i] = addr4(ip, 1);
	}
	for (int i = 0; i < 16; i++) {
		assert_true(allow(rl, &a[i], t));	/* new: full burst */
		seen[i] = t++;
		if (n == 4) {
			victim = 0;
			for (int k = 1; k < n; k++)
				if (seen[resident[k]] < seen[resident[victim]])
					victim = k;
			resident[victim] = resident[--n];
		}
		/* Check the older residents in a varying order. */
		for (int k = 0; k < n; k++) {
			int r = resident[(k + i) % n];

			assert_false(allow(rl, &a[r], t));
			seen[r] = t++;
		}
		resident[n++] = i;
	}
	auth_ratelimit_free(rl);
}

static void
test_rl_zero_rate_and_args(void **state)
{
	struct auth_ratelimit *rl = auth_ratelimit_new(0, 1, 4);
	struct sockaddr_storage a = addr4("192.0.2.1", 1);
	struct sockaddr_storage un = { .ss_family = AF_UNIX };

	assert_non_null(rl);
	for (int i = 0; i < 1000; i++)
		assert_true(allow(rl, &a, 1.0));
	auth_ratelimit_free(rl);

	assert_non_null(rl = auth_ratelimit_new(1, 1, 4));
	assert_true(allow(rl, &un, 1.0));
	assert_true(allow(rl, &un, 1.0));
	auth_ratelimit_free(rl);

	errno = 0;
	assert_null(auth_ratelimit_new(-1, 1, 4));
	assert_int_equal(errno, EINVAL);
	assert_null(auth_ratelimit_new(1, 0, 4));
	assert_null(auth_ratelimit_new(1, 1, 0));
	assert_null(auth_ratelimit_new(NAN, 1, 4));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_load_and_verify,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_prefix_and_empty,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_long_inputs,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_user_name_limits,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_empty_file,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_refuse_mode,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_group_read_allowed,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_refuse_not_regular,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_refuse_malformed,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_refuse_duplicate,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_refuse_bad_hash,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_refcount,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_user_hashes,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_dummy_is_the_costliest,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_uniform_file_no_warning,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_pool_results,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_pool_queue_timeout,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_pool_free_with_queued_jobs,
		    dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_pool_bad_args,
		    dir_setup, dir_teardown),
		cmocka_unit_test(test_rl_burst_and_refill),
		cmocka_unit_test(test_rl_addresses_independent),
		cmocka_unit_test(test_rl_v4_mapped),
		cmocka_unit_test(test_rl_overflow),
		cmocka_unit_test(test_rl_eviction),
		cmocka_unit_test(test_rl_lru_eviction),
		cmocka_unit_test(test_rl_zero_rate_and_args),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
