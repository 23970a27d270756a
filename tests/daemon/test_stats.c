/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_stats.c - unit tests of the stats segment: the layout other tools
 * rely on, create/open and the checks of open, entry allocation, the fold
 * of an exited worker into the retired totals, the latency buckets, the
 * consistency of snapshots taken while the master folds, and readers that
 * survive any content and any size of the file (corrupted after open,
 * random bytes, truncated while being read).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats.h"
#include "stats_format.h"

struct fixture {
	char dir[64];
	char path[128];
	struct stats_segment seg;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[512];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_stats.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/goprod.stats", f->dir);
	assert_int_equal(stats_create(&f->seg, f->path, 8, (gid_t)-1, err, sizeof(err)),
	    0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	stats_close(&f->seg);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
test_layout(void **state)
{
	assert_int_equal(sizeof(struct stats_header) % STATS_ALIGN, 0);
	assert_int_equal(sizeof(struct stats_entry) % STATS_ALIGN, 0);
	assert_int_equal(_Alignof(struct stats_entry), STATS_ALIGN);
	assert_int_equal(offsetof(struct stats_header, magic), 0);
	assert_int_equal(offsetof(struct stats_header, layout_version), 8);
	assert_int_equal(offsetof(struct stats_header, header_size), 12);
	assert_int_equal(offsetof(struct stats_header, file_size), 24);
	assert_int_equal(offsetof(struct stats_header, fold_seq) % 8, 0);
	assert_int_equal(offsetof(struct stats_header, retired) % 8, 0);
	assert_int_equal(offsetof(struct stats_entry, pid), 0);
	assert_int_equal(offsetof(struct stats_entry, start_time), 24);
	assert_int_equal(offsetof(struct stats_entry, conn_active), 32);
	assert_int_equal(offsetof(struct stats_entry, v) % 8, 0);
	assert_int_equal(sizeof(struct stats_values) % 8, 0);
}

static void
test_create_open_round_trip(void **state)
{
	struct fixture *f = *state;
	struct stats_segment r;
	struct stat st;
	char err[512];

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal((size_t)st.st_size, sizeof(struct stats_header) +
	    8 * sizeof(struct stats_entry));
	assert_int_equal(f->seg.hdr->master_pid, getpid());
	assert_true(f->seg.hdr->start_time > 0);
	f->seg.hdr->generation = 7;
	f->seg.entries[3].v.counter[STATS_bytes_sent] = 42;

	assert_int_equal(stats_open(&r, f->path, err, sizeof(err)), 0);
	assert_false(r.writable);
	assert_int_equal(r.hdr->nentries, 8);
	assert_int_equal(r.hdr->generation, 7);
	assert_int_equal(r.entries[3].v.counter[STATS_bytes_sent], 42);
	stats_close(&r);
	assert_int_equal(r.fd, -1);
}

/* Patch one field of the file, expect open to fail naming the problem. */
static void
expect_open_fails(const char *path, off_t off, const void *val, size_t len,
    const char *why)
{
	struct stats_segment r;
	char err[512] = "";
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, val, len, off), (ssize_t)len);
	close(fd);
	assert_int_equal(stats_open(&r, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, why));
	assert_null(r.hdr);
}

static void
test_open_bad_magic(void **state)
{
	struct fixture *f = *state;
	uint64_t bad = 0x1234;

	expect_open_fails(f->path, offsetof(struct stats_header, magic), &bad,
	    sizeof(bad), "bad magic");
}

static void
test_open_bad_version(void **state)
{
	struct fixture *f = *state;
	uint32_t v = STATS_LAYOUT_VERSION + 1;

	expect_open_fails(f->path, offsetof(struct stats_header,
	    layout_version), &v, sizeof(v), "layout version");
}

static void
test_open_bad_entry_size(void **state)
{
	struct fixture *f = *state;
	uint32_t v = 64;

	expect_open_fails(f->path, offsetof(struct stats_header, entry_size),
	    &v, sizeof(v), "size");
}

static void
test_open_truncated(void **state)
{
	struct fixture *f = *state;
	struct stats_segment r;
	char err[512];

	assert_int_equal(truncate(f->path, (off_t)f->seg.size - 128), 0);
	assert_int_equal(stats_open(&r, f->path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "truncated"));
	assert_int_equal(truncate(f->path, 10), 0);
	assert_int_equal(stats_open(&r, f->path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too short"));
	unlink(f->path);
	assert_int_equal(stats_open(&r, f->path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
}

/* A file whose master is alive (us, seen from a child) is not replaced. */
static void
test_create_refuses_live_master(void **state)
{
	struct fixture *f = *state;
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct stats_segment s;
		char err[512] = "";

		_exit(stats_create(&s, f->path, 4, (gid_t)-1, err, sizeof(err)) == -1 &&
		    strstr(err, "in use") != NULL ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(f->seg.hdr->magic, STATS_MAGIC);
}

static void
test_alloc_and_reuse(void **state)
{
	struct fixture *f = *state;
	int idx[8];

	for (int i = 0; i < 8; i++) {
		idx[i] = stats_entry_alloc(&f->seg);
		assert_int_equal(idx[i], i);
		assert_int_equal(f->seg.entries[i].state, STATS_STATE_STARTING);
	}
	assert_int_equal(stats_entry_alloc(&f->seg), -1);
	f->seg.entries[5].pid = 555;
	stats_entry_retire(&f->seg, 5);
	assert_int_equal(f->seg.entries[5].state, STATS_STATE_FREE);
	assert_int_equal(f->seg.entries[5].pid, 0);
	assert_int_equal(stats_entry_alloc(&f->seg), 5);
	assert_int_equal(stats_entry_alloc(&f->seg), -1);
	stats_entry_retire(&f->seg, 100); /* out of range: ignored */
}

static void
snapshot_total(const struct stats_segment *seg, struct stats_values *t)
{
	struct stats_header h;
	struct stats_entry e[8];

	assert_int_equal(stats_snapshot(seg, &h, e, 8), 0);
	assert_int_equal(h.fold_seq % 2, 0);
	stats_total(&h, e, h.nentries, t);
}

static void
test_retire_folds_totals(void **state)
{
	struct fixture *f = *state;
	struct stats_values before, after;
	int a = stats_entry_alloc(&f->seg), b = stats_entry_alloc(&f->seg);
	struct stats_entry *ea = &f->seg.entries[a], *eb = &f->seg.entries[b];

	ea->pid = 100;
	ea->conn_active = 3;
	stats_add(ea, STATS_frames_received_message, 10);
	stats_inc(eb, STATS_frames_received_message);
	stats_observe(ea, 1500, 2);
	snapshot_total(&f->seg, &before);
	assert_int_equal(before.counter[STATS_frames_received_message], 11);
	assert_int_equal(before.hist[stats_bucket(1500)], 2);
	assert_int_equal(before.hist_sum_ns, 3000);

	stats_entry_retire(&f->seg, (unsigned)a);
	snapshot_total(&f->seg, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(f->seg.hdr->retired.counter
	    [STATS_frames_received_message], 10);
	assert_int_equal(ea->v.counter[STATS_frames_received_message], 0);
	assert_int_equal(ea->conn_active, 0);
	assert_int_equal(ea->pid, 0);

	/* The reused entry starts at zero and totals keep growing. */
	assert_int_equal(stats_entry_alloc(&f->seg), a);
	stats_inc(ea, STATS_frames_received_message);
	snapshot_total(&f->seg, &after);
	assert_int_equal(after.counter[STATS_frames_received_message], 12);
}

static void
test_buckets(void **state)
{
	assert_int_equal(stats_bucket(0), 0);
	assert_int_equal(stats_bucket(999), 0);
	assert_int_equal(stats_bucket(1000), 1);
	assert_int_equal(stats_bucket(1499), 1);
	assert_int_equal(stats_bucket(1500), 2);
	assert_int_equal(stats_bucket(1999), 2);
	assert_int_equal(stats_bucket(2000), 3);
	for (unsigned k = 0; k < STATS_HIST_BUCKETS - 1; k++) {
		uint64_t edge = (uint64_t)(stats_bucket_le(k) * 1e9 + 0.5);

		/* bucket k counts < its bound: the edge itself is the next one. */
		assert_int_equal(stats_bucket(edge - 1), k);
		assert_int_equal(stats_bucket(edge), k + 1);
	}
	/* 0.3 ms and 0.5 ms are told apart (issue 15). */
	assert_int_not_equal(stats_bucket(300000), stats_bucket(500000));
	assert_int_equal(stats_bucket(UINT64_MAX), STATS_HIST_BUCKETS - 1);
	assert_int_equal(stats_bucket(3600ull * 1000000000), STATS_HIST_BUCKETS - 1);
	assert_true(stats_bucket_le(0) == 1e-6);
	assert_true(stats_bucket_le(1) == 1.5e-6);
	assert_true(stats_bucket_le(20) == 1024e-6);
	assert_true(stats_bucket_le(STATS_HIST_BUCKETS - 2) == 16.777216);
	assert_true(isinf(stats_bucket_le(STATS_HIST_BUCKETS - 1)));
	for (unsigned i = 0; i + 1 < STATS_HIST_BUCKETS - 1; i++)
		assert_true(stats_bucket_le(i) < stats_bucket_le(i + 1));
}

static void
test_state_names(void **state)
{
	assert_string_equal(stats_state_name(STATS_STATE_FREE), "free");
	assert_string_equal(stats_state_name(STATS_STATE_RUNNING), "running");
	assert_string_equal(stats_state_name(STATS_STATE_DRAINING), "draining");
	assert_string_equal(stats_state_name(99), "unknown");
}

/*
 * A child folds entries in a loop while the parent snapshots: every total
 * must be exact (the sum stays the same across a fold) and never be seen
 * half folded.
 */
static void
test_snapshot_consistent_under_folds(void **state)
{
	struct fixture *f = *state;
	struct stats_values t;
	pid_t pid;
	int status;

	for (int i = 0; i < 8; i++) {
		assert_int_equal(stats_entry_alloc(&f->seg), i);
		stats_add(&f->seg.entries[i], STATS_bytes_received, 1000);
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int round = 0; round < 20000; round++) {
			unsigned i = (unsigned)round % 8;

			stats_entry_retire(&f->seg, i);
			(void)stats_entry_alloc(&f->seg);
		}
		_exit(0);
	}
	for (int n = 0; n < 2000; n++) {
		snapshot_total(&f->seg, &t);
		assert_int_equal(t.counter[STATS_bytes_received], 8000);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snapshot_total(&f->seg, &t);
	assert_int_equal(t.counter[STATS_bytes_received], 8000);
}

static void
note_v4(struct stats_entry *e, const char *ip, uint16_t port, bool proxied)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	stats_note_client(e, (struct sockaddr *)&sin, proxied, 1000 + port);
}

/* The ring keeps the newest clients, reads skip a slot being written. */
static void
test_recent_clients(void **state)
{
	struct stats_entry *e = aligned_alloc(STATS_ALIGN, sizeof(*e));
	struct stats_client out[STATS_RECENT_CLIENTS];
	struct sockaddr_in6 sin6;
	char text[64];

	assert_non_null(e);
	memset(e, 0, sizeof(*e));
	assert_int_equal(stats_recent_clients(e, e, out, STATS_RECENT_CLIENTS), 0);
	note_v4(e, "198.51.100.1", 1, true);
	assert_int_equal(stats_recent_clients(e, e, out, STATS_RECENT_CLIENTS), 1);
	assert_string_equal(stats_client_text(&out[0], text, sizeof(text)),
	    "198.51.100.1:1");
	assert_int_equal(out[0].proxied, 1);
	assert_int_equal(out[0].when, 1001);
	for (uint16_t p = 2; p <= 10; p++)
		note_v4(e, "198.51.100.2", p, false);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::5", &sin6.sin6_addr), 1);
	stats_note_client(e, (struct sockaddr *)&sin6, true, 7);
	/* Newest first, and only the last STATS_RECENT_CLIENTS remain. */
	assert_int_equal(stats_recent_clients(e, e, out, STATS_RECENT_CLIENTS),
	    STATS_RECENT_CLIENTS);
	assert_string_equal(stats_client_text(&out[0], text, sizeof(text)),
	    "[2001:db8::5]:443");
	assert_string_equal(stats_client_text(&out[1], text, sizeof(text)),
	    "198.51.100.2:10");
	assert_string_equal(stats_client_text(&out[7], text, sizeof(text)),
	    "198.51.100.2:4");
	/* A slot whose sequence is odd is being written: skipped. */
	e->recent[(e->recent_next - 1) % STATS_RECENT_CLIENTS].seq++;
	assert_int_equal(stats_recent_clients(e, e, out, STATS_RECENT_CLIENTS),
	    STATS_RECENT_CLIENTS - 1);
	assert_string_equal(stats_client_text(&out[0], text, sizeof(text)),
	    "198.51.100.2:10");
	free(e);
}

/* ------------------------------------------------------------ hostile files */

/* Every output format of a snapshot, into /dev/null. */
static void
format_all(const struct stats_snap *s)
{
	FILE *null = fopen("/dev/null", "w");

	assert_non_null(null);
	assert_int_equal(stats_format_text(null, s), 0);
	assert_int_equal(stats_format_json(null, s), 0);
	assert_int_equal(stats_format_prometheus(null, s), 0);
	stats_format_status(null, s);
	fclose(null);
}

/*
 * What goproctl and the metrics process do with whatever path holds now:
 * open, snapshot, format.  Each step may refuse; none may fault.  Returns
 * 0 when a snapshot was taken, -1 when refused.
 */
static int
read_any(const char *path)
{
	struct stats_segment r;
	struct stats_snap snap;
	char err[512];
	int rc = -1;

	if (stats_open(&r, path, err, sizeof(err)) < 0)
		return -1;
	assert_true(r.nentries >= 1 && r.nentries <= 4096);
	if (stats_snap_take(&r, &snap) == 0) {
		assert_true(snap.hdr.nentries <= r.nentries);
		format_all(&snap);
		stats_snap_free(&snap);
		rc = 0;
	} else {
		assert_true(errno == ESTALE || errno == EAGAIN ||
		    errno == ENOMEM);
	}
	stats_close(&r);
	return rc;
}

static void
patch(const char *path, off_t off, const void *val, size_t len)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, val, len, off), (ssize_t)len);
	close(fd);
}

/* An entry count raised after open must not widen what a reader copies. */
static void
test_reader_header_corrupted_after_open(void **state)
{
	struct fixture *f = *state;
	uint32_t huge = 0x7fffffff;
	struct stats_segment r;
	struct stats_snap snap;
	char err[512];

	assert_int_equal(stats_open(&r, f->path, err, sizeof(err)), 0);
	assert_int_equal(stats_snap_take(&r, &snap), 0);
	stats_snap_free(&snap);
	patch(f->path, offsetof(struct stats_header, nentries), &huge,
	    sizeof(huge));
	assert_int_equal(stats_snap_take(&r, &snap), -1);
	assert_int_equal(errno, ESTALE);
	stats_close(&r);
	/* A fresh open refuses it too. */
	assert_int_equal(read_any(f->path), -1);
}

/* A file truncated under an open reader: refused, no SIGBUS. */
static void
test_reader_truncated_after_open(void **state)
{
	struct fixture *f = *state;
	struct stats_segment r;
	struct stats_snap snap;
	char err[512];

	assert_int_equal(stats_open(&r, f->path, err, sizeof(err)), 0);
	assert_int_equal(truncate(f->path, 100), 0);
	assert_int_equal(stats_snap_take(&r, &snap), -1);
	assert_int_equal(errno, ESTALE);
	stats_close(&r);
}

/* A plausible header (or not) over random bytes, of a random size. */
static void
write_random_file(const char *path, size_t full)
{
	uint32_t nentries = 1 + (uint32_t)(random() % 8);
	size_t size = (size_t)random() % (full + 1024);
	uint8_t *buf;
	struct stats_header h;
	int fd;

	/* Half the time, the size a header with nentries entries claims. */
	if (random() % 2)
		size = sizeof(h) + nentries * sizeof(struct stats_entry);
	buf = malloc(size + 1);

	assert_non_null(buf);
	for (size_t i = 0; i < size; i++)
		buf[i] = (uint8_t)random();
	if (random() % 4 != 0 && size >= sizeof(h)) {
		memcpy(&h, buf, sizeof(h));
		h.magic = STATS_MAGIC;
		h.layout_version = STATS_LAYOUT_VERSION;
		h.header_size = sizeof(struct stats_header);
		h.entry_size = sizeof(struct stats_entry);
		if (random() % 8 != 0) {
			h.nentries = nentries;
			h.file_size = size;
		}
		/* An odd one would only make the reader retry for 2 s. */
		h.fold_seq &= ~1ull;
		memcpy(buf, &h, sizeof(h));
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
}

static void
test_reader_random_files(void **state)
{
	struct fixture *f = *state;
	int taken = 0;

	srandom(11);
	for (int i = 0; i < 2000; i++) {
		write_random_file(f->path, f->seg.size);
		taken += read_any(f->path) == 0;
	}
	/* Some had a right header and size: those were read. */
	print_message("random files: %d of 2000 read\n", taken);
	assert_true(taken > 0);
}

/* Truncate and restore the file, rounds times (a child's job). */
static void
flap_file(const char *path, const void *image, size_t size, int rounds)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		_exit(2);
	for (int i = 0; i < rounds; i++)
		if (ftruncate(fd, (off_t)(random() % (off_t)size)) < 0 ||
		    pwrite(fd, image, size, 0) != (ssize_t)size)
			_exit(3);
	_exit(0);
}

static void
test_reader_survives_truncation_while_reading(void **state)
{
	struct fixture *f = *state;
	void *image = malloc(f->seg.size);
	int status, reads = 0, taken = 0;
	pid_t pid;

	assert_non_null(image);
	memcpy(image, f->seg.hdr, f->seg.size);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		flap_file(f->path, image, f->seg.size, 20000);
	/* Read for as long as the child flaps the file: its 20000 rounds
	 * end by themselves, and a reader that faults ends the test.  (A cap
	 * on the reads killed the child when the reader was the faster one.) */
	while (waitpid(pid, &status, WNOHANG) == 0) {
		taken += read_any(f->path) == 0;
		reads++;
	}
	free(image);
	print_message("%d reads while truncated 20000 times, %d taken\n",
	    reads, taken);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_recent_clients),
		cmocka_unit_test_setup_teardown(test_create_open_round_trip,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_bad_magic, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_bad_version, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_bad_entry_size, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_reader_header_corrupted_after_open, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reader_truncated_after_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_random_files,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reader_survives_truncation_while_reading, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_truncated, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_create_refuses_live_master,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_and_reuse, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_retire_folds_totals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_snapshot_consistent_under_folds, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
