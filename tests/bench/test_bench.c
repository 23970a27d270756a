/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_bench.c - unit tests of gopro-bench's modules: the histogram
 * (bucket arithmetic, percentiles within 1%, merge, extremes), the reply
 * verifier (every way a reply can be wrong, ERROR frames and the codes
 * after which the server closes, replies lost or missing), the request
 * mix, the numbers and options of the command line, and the open-loop
 * schedule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "bench.h"

#define PREFIX "Server says: "

/* ------------------------------------------------------------ histogram */

static struct bench_hist *
hist_new(void)
{
	struct bench_hist *h = malloc(sizeof(*h));

	assert_non_null(h);
	bench_hist_init(h);
	return h;
}

static void
assert_within(uint64_t got, double want, double rel)
{
	double diff = (double)got - want;

	if (diff < 0)
		diff = -diff;
	if (diff > want * rel)
		fail_msg("%llu is not within %.2f%% of %.1f",
		    (unsigned long long)got, rel * 100, want);
}

static void
test_hist_buckets(void **state)
{
	uint64_t v;

	for (v = 0; v < 256; v++) {
		assert_int_equal(bench_hist_index(v), v);
		assert_int_equal(bench_hist_bucket_low(v), v);
	}
	/* Every value lies in its bucket, and buckets are narrow. */
	for (v = 256; v < (1ull << 62); v = v * 3 / 2 + 7) {
		size_t i = bench_hist_index(v);
		uint64_t low = bench_hist_bucket_low(i);
		uint64_t w = bench_hist_bucket_width(i);
		assert_true(i < BENCH_HIST_BUCKETS);
		assert_true(low <= v && v - low < w);
		assert_true(w * 128 <= low);
		assert_int_equal(bench_hist_index(low), i);
		assert_int_equal(bench_hist_index(low + w - 1), i);
		assert_int_equal(bench_hist_index(low + w), i + 1);
	}
	assert_int_equal(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
}

static void
test_hist_single_values(void **state)
{
	struct bench_hist *h = hist_new();

	for (uint64_t v = 1; v < 1000000000000ull; v = v * 7 / 3 + 1) {
		bench_hist_init(h);
		bench_hist_record(h, v, 3);
		assert_int_equal(h->total, 3);
		assert_int_equal(h->min, v);
		assert_int_equal(h->max, v);
		/* Clamped to the exact extremes: exact for one value. */
		assert_int_equal(bench_hist_percentile(h, 50), v);
		assert_int_equal(bench_hist_percentile(h, 100), v);
	}
	free(h);
}

static void
test_hist_percentiles(void **state)
{
	struct bench_hist *h = hist_new();

	/* 1 us .. 100 ms in 1 us steps: percentiles known exactly. */
	for (uint64_t v = 1; v <= 100000; v++)
		bench_hist_record(h, v * 1000, 1);
	assert_int_equal(h->total, 100000);
	assert_int_equal(h->min, 1000);
	assert_int_equal(h->max, 100000000);
	assert_within(bench_hist_percentile(h, 50), 50e6, 0.01);
	assert_within(bench_hist_percentile(h, 90), 90e6, 0.01);
	assert_within(bench_hist_percentile(h, 99), 99e6, 0.01);
	assert_within(bench_hist_percentile(h, 99.9), 99.9e6, 0.01);
	assert_within(bench_hist_percentile(h, 1), 1e6, 0.01);
	assert_int_equal(bench_hist_percentile(h, 100), 100000000);
	assert_within((uint64_t)bench_hist_mean(h), 50.0005e6, 0.0001);
	free(h);
}

static void
test_hist_skewed(void **state)
{
	struct bench_hist *h = hist_new();

	/* 999 fast replies and one very slow one: only p99.9+ sees it. */
	bench_hist_record(h, 20000, 999);
	bench_hist_record(h, 5000000000ull, 1);
	assert_within(bench_hist_percentile(h, 50), 20000, 0.01);
	assert_within(bench_hist_percentile(h, 99.9), 20000, 0.01);
	assert_int_equal(bench_hist_percentile(h, 99.95), 5000000000ull);
	assert_int_equal(bench_hist_percentile(h, 100), 5000000000ull);
	free(h);
}

static void
test_hist_merge(void **state)
{
	struct bench_hist *a = hist_new(), *b = hist_new(), *all = hist_new();

	for (uint64_t v = 1; v < 50000; v += 3) {
		bench_hist_record(v % 2 ? a : b, v * 997, 1);
		bench_hist_record(all, v * 997, 1);
	}
	bench_hist_record(b, 7, 1);
	bench_hist_record(all, 7, 1);
	bench_hist_merge(a, b);
	assert_int_equal(a->total, all->total);
	assert_int_equal(a->min, 7);
	assert_int_equal(a->max, all->max);
	assert_memory_equal(a->counts, all->counts, sizeof(a->counts));
	assert_int_equal(bench_hist_percentile(a, 99),
	    bench_hist_percentile(all, 99));
	/* Merging an empty histogram changes nothing, min included. */
	bench_hist_init(b);
	bench_hist_merge(a, b);
	assert_int_equal(a->min, 7);
	assert_int_equal(a->total, all->total);
	free(a);
	free(b);
	free(all);
}

static void
test_hist_huge_and_empty(void **state)
{
	struct bench_hist *h = hist_new();

	assert_int_equal(bench_hist_percentile(h, 50), 0);
	assert_true(bench_hist_mean(h) == 0.0);
	bench_hist_record(h, UINT64_MAX, 1);
	bench_hist_record(h, 1ull << 63, 1);
	bench_hist_record(h, 0, 1);
	bench_hist_record(h, 12345, 0); /* a count of 0 records nothing */
	assert_int_equal(h->total, 3);
	assert_int_equal(h->min, 0);
	assert_int_equal(h->max, UINT64_MAX);
	assert_int_equal(bench_hist_percentile(h, 10), 0);
	assert_within(bench_hist_percentile(h, 60), 9223372036854775808.0,
	    0.01);
	assert_int_equal(bench_hist_percentile(h, 100), UINT64_MAX);
	free(h);
}

/* ------------------------------------------------------------ verifier */

/*
 * The verifier sees one frame with the request it answers, as libgopro's
 * async client hands them out; here a libgopro reader cuts the bytes into
 * frames and a ring stands for the client's matching by position.
 */
struct vfix {
	struct bench_plan plan;
	struct gopro_reader *in;
	struct bench_pending q[8];
	unsigned qhead, qlen;
	enum bench_reply last;
	unsigned verdicts[4];
	struct bench_stats st;
};

static int
vfix_setup(void **state)
{
	struct bench_plan_conf pc = {
		.body = 16, .prefix = PREFIX, .user = "alice",
		.password = "secret",
	};
	struct vfix *v = calloc(1, sizeof(*v));
	char err[128];

	assert_non_null(v);
	assert_int_equal(bench_plan_init(&v->plan, &pc, err, sizeof(err)), 0);
	assert_non_null(v->in = gopro_reader_new(v->plan.max_reply_body));
	bench_stats_init(&v->st);
	*state = v;
	return 0;
}

static int
vfix_teardown(void **state)
{
	struct vfix *v = *state;

	gopro_reader_free(v->in);
	bench_plan_free(&v->plan);
	free(v);
	return 0;
}

static void
push(struct vfix *v, enum bench_kind k, uint64_t seq, uint64_t t0,
    uint8_t flags)
{
	assert_true(v->qlen < 8);
	v->q[(v->qhead + v->qlen++) % 8] = (struct bench_pending){ t0, seq,
	    (uint8_t)k, flags };
}

static void
reset(struct vfix *v)
{
	bench_stats_init(&v->st);
	v->qhead = v->qlen = 0;
	memset(v->verdicts, 0, sizeof(v->verdicts));
}

/* Hand every complete frame to the verifier with the oldest request. */
static void
feed(struct vfix *v, const void *p, size_t len, uint64_t now)
{
	struct gopro_frame f;

	assert_int_equal(gopro_reader_feed(v->in, p, len), GOPRO_OK);
	while (gopro_reader_next(v->in, &f) == 1) {
		assert_true(v->qlen > 0);
		v->last = bench_reply_check(&v->plan, &v->q[v->qhead], &f, now,
		    &v->st);
		v->verdicts[v->last]++;
		v->qhead = (v->qhead + 1) % 8;
		v->qlen--;
	}
}

/* The exact reply a correct server sends to request (k, seq). */
static size_t
good_reply(struct vfix *v, enum bench_kind k, uint64_t seq, uint8_t *out)
{
	uint8_t req[256], body[256];
	size_t n = bench_plan_write(&v->plan, k, seq, req), len;

	if (k == BENCH_HEARTBEAT) {
		memcpy(out, req, n);
		return n;
	}
	if (k == BENCH_LOGIN)
		return gopro_frame_write(out, 64, GOPRO_CMD_LOGIN_ACK, "OK", 2);
	len = strlen(PREFIX);
	memcpy(body, PREFIX, len);
	memcpy(body + len, req + GOPRO_HEADER_SIZE, n - GOPRO_HEADER_SIZE);
	return gopro_frame_write(out, 256, GOPRO_CMD_MESSAGE, body,
	    len + n - GOPRO_HEADER_SIZE);
}

static void
test_plan_requests(void **state)
{
	struct vfix *v = *state;
	uint8_t req[256], want[256];
	size_t n;

	n = bench_plan_write(&v->plan, BENCH_HEARTBEAT, 0x0102030405060708ull,
	    req);
	assert_int_equal(n, 8 + 16);
	assert_int_equal(req[3], GOPRO_CMD_HEARTBEAT);
	assert_int_equal(req[7], 16);
	/* The request number, big-endian, then the fill pattern. */
	assert_int_equal(req[8], 1);
	assert_int_equal(req[15], 8);
	assert_int_equal(req[16], 'a' + 8);
	n = bench_plan_write(&v->plan, BENCH_LOGIN, 0, req);
	assert_int_equal(n, gopro_login_write(want, sizeof(want), "alice", 5,
	    "secret", 6));
	assert_memory_equal(req, want, n);
	assert_int_equal(v->plan.max_reply, 8 + strlen(PREFIX) + 16);
	assert_int_equal(v->plan.max_reply_body, 2 + GOPRO_TEXT_MAX);
}

static void
test_verify_correct_replies(void **state)
{
	struct vfix *v = *state;
	uint8_t r[256];
	size_t n, bytes = 0;

	for (int k = 0; k < BENCH_KINDS; k++) {
		push(v, k, 40 + k, 1000, BENCH_PENDING_MEASURED);
		n = good_reply(v, k, 40 + k, r);
		bytes += n;
		feed(v, r, n, 1500 + k);
	}
	assert_int_equal(v->st.ok, 3);
	assert_int_equal(v->verdicts[BENCH_REPLY_GOOD], 3);
	assert_int_equal(bench_stats_errors(&v->st), 0);
	assert_int_equal(v->st.hist.total, 3);
	assert_int_equal(v->st.hist.min, 500);
	assert_int_equal(v->st.hist.max, 502);
	assert_int_equal(v->st.last_reply_ns, 1502);
	assert_int_equal(v->st.bytes_in, bytes);
}

/* One request, one reply mutated by fn: expect error kind want. */
static void
expect_wrong(struct vfix *v, enum bench_kind k, void (*fn)(uint8_t *, size_t *),
    int want)
{
	uint8_t r[256];
	size_t n;

	reset(v);
	push(v, k, 9, 0, BENCH_PENDING_MEASURED);
	n = good_reply(v, k, 9, r);
	fn(r, &n);
	feed(v, r, n, 1);
	assert_int_equal(v->st.ok, 0);
	assert_int_equal(bench_stats_errors(&v->st), 1);
	assert_int_equal(v->st.errors[want], 1);
	assert_int_equal(v->last, BENCH_REPLY_WRONG);
}

static void flip_last(uint8_t *r, size_t *n) { r[*n - 1] ^= 1; }
static void flip_seq(uint8_t *r, size_t *n) { r[15] ^= 1; }
static void flip_prefix(uint8_t *r, size_t *n) { r[8 + 7] = 'a'; }
static void to_heartbeat(uint8_t *r, size_t *n) { r[3] = GOPRO_CMD_HEARTBEAT; }
static void to_login_ack(uint8_t *r, size_t *n) { r[3] = GOPRO_CMD_LOGIN_ACK; }

static void
drop_last(uint8_t *r, size_t *n)
{
	(*n)--;
	r[7]--;
}

static void
login_not_ok(uint8_t *r, size_t *n)
{
	r[9] = 'k';
}

static void
test_verify_wrong_replies(void **state)
{
	struct vfix *v = *state;

	expect_wrong(v, BENCH_HEARTBEAT, flip_last, BENCH_ERR_BODY);
	expect_wrong(v, BENCH_HEARTBEAT, flip_seq, BENCH_ERR_ORDER);
	expect_wrong(v, BENCH_HEARTBEAT, drop_last, BENCH_ERR_LENGTH);
	expect_wrong(v, BENCH_HEARTBEAT, to_login_ack, BENCH_ERR_COMMAND);
	expect_wrong(v, BENCH_MESSAGE, flip_prefix, BENCH_ERR_BODY);
	expect_wrong(v, BENCH_MESSAGE, flip_last, BENCH_ERR_BODY);
	expect_wrong(v, BENCH_MESSAGE, to_heartbeat, BENCH_ERR_COMMAND);
	expect_wrong(v, BENCH_LOGIN, login_not_ok, BENCH_ERR_BODY);
}

/* --any-reply: an entry id in place of the echo is good, a wrong command
 * is still wrong. */
static void
test_verify_any_reply(void **state)
{
	struct vfix *v = *state;
	struct bench_plan_conf pc = { .body = 16, .prefix = PREFIX,
		.any_body = true };
	uint8_t r[256];
	char err[128];
	size_t n;

	bench_plan_free(&v->plan);
	assert_int_equal(bench_plan_init(&v->plan, &pc, err, sizeof(err)), 0);
	assert_int_equal(v->plan.max_reply_body, 65536);
	push(v, BENCH_MESSAGE, 1, 0, BENCH_PENDING_MEASURED);
	n = gopro_frame_write(r, sizeof(r), GOPRO_CMD_MESSAGE,
	    "1796164004123-0", 15);
	feed(v, r, n, 1);
	assert_int_equal(v->st.ok, 1);
	push(v, BENCH_MESSAGE, 2, 0, BENCH_PENDING_MEASURED);
	n = gopro_frame_write(r, sizeof(r), GOPRO_CMD_HEARTBEAT, "x", 1);
	feed(v, r, n, 2);
	assert_int_equal(v->st.ok, 1);
	assert_int_equal(v->st.errors[BENCH_ERR_COMMAND], 1);
	assert_int_equal(v->qlen, 0);
}

static void
test_verify_error_frames(void **state)
{
	struct vfix *v = *state;
	uint8_t r[GOPRO_STATUS_FRAME_MAX], ok[256];
	size_t n;

	/* ERROR 4 answers the oldest request; the next one is still owed. */
	push(v, BENCH_HEARTBEAT, 1, 0, BENCH_PENDING_MEASURED);
	push(v, BENCH_HEARTBEAT, 2, 0, BENCH_PENDING_MEASURED);
	n = gopro_error_write(r, sizeof(r), GOPRO_ERR_UNKNOWN_COMMAND, "x");
	feed(v, r, n, 1);
	assert_int_equal(v->st.errors[BENCH_ERR_SERVER], 1);
	assert_int_equal(v->st.server_errors[GOPRO_ERR_UNKNOWN_COMMAND], 1);
	assert_int_equal(v->last, BENCH_REPLY_WRONG);
	n = good_reply(v, BENCH_HEARTBEAT, 2, ok);
	feed(v, ok, n, 2);
	assert_int_equal(v->st.ok, 1);
	/* A closing code: the server will close, stop sending. */
	push(v, BENCH_MESSAGE, 3, 0, BENCH_PENDING_MEASURED);
	n = gopro_error_write(r, sizeof(r), GOPRO_ERR_BUSY, "busy");
	feed(v, r, n, 3);
	assert_int_equal(v->last, BENCH_REPLY_CLOSING);
	assert_int_equal(v->st.server_errors[GOPRO_ERR_BUSY], 1);
	/* Busy in answer to a LOGIN leaves the connection open. */
	push(v, BENCH_LOGIN, 4, 0, BENCH_PENDING_MEASURED);
	feed(v, r, n, 3);
	assert_int_equal(v->last, BENCH_REPLY_WRONG);
	/* An unknown code is counted in the last slot. */
	push(v, BENCH_HEARTBEAT, 5, 0, 0);
	n = gopro_error_write(r, sizeof(r), 999, NULL);
	feed(v, r, n, 4);
	assert_int_equal(v->st.server_errors[BENCH_SERVER_ERR_SLOTS - 1], 1);
	/* A malformed ERROR body (one byte) breaks the stream. */
	push(v, BENCH_HEARTBEAT, 6, 0, 0);
	gopro_header_write(r, GOPRO_CMD_ERROR, 1);
	r[8] = 0;
	feed(v, r, 9, 5);
	assert_int_equal(v->last, BENCH_REPLY_BROKEN);
	assert_int_equal(v->st.errors[BENCH_ERR_PROTOCOL], 1);
}

static void
test_verify_missing(void **state)
{
	struct vfix *v = *state;

	/* Lost (the server closed), or missing (a timeout): an error. */
	bench_reply_missing(&v->st, false);
	assert_int_equal(v->st.lost, 1);
	assert_int_equal(bench_stats_errors(&v->st), 0);
	bench_reply_missing(&v->st, true);
	assert_int_equal(v->st.errors[BENCH_ERR_TIMEOUT], 1);
	assert_int_equal(v->st.lost, 1);
}

static void
test_verify_setup_and_warmup(void **state)
{
	struct vfix *v = *state;
	uint8_t r[512], e[64];
	size_t n;

	push(v, BENCH_HEARTBEAT, 0, 0, BENCH_PENDING_SETUP);
	push(v, BENCH_HEARTBEAT, 1, 0, 0);
	n = good_reply(v, BENCH_HEARTBEAT, 0, r);
	n += good_reply(v, BENCH_HEARTBEAT, 1, r + n);
	feed(v, r, n, 5);
	assert_int_equal(v->verdicts[BENCH_REPLY_GOOD], 2);
	assert_int_equal(v->st.setup, 1);
	assert_int_equal(v->st.warmup, 1);
	assert_int_equal(v->st.ok, 0);
	assert_int_equal(v->st.hist.total, 0);
	/* A refused set-up request is an error, not a set-up. */
	push(v, BENCH_LOGIN, 2, 0, BENCH_PENDING_SETUP);
	n = gopro_error_write(e, sizeof(e), GOPRO_ERR_AUTH_FAILED, "no");
	feed(v, e, n, 6);
	assert_int_equal(v->last, BENCH_REPLY_WRONG);
	assert_int_equal(v->st.setup, 1);
	assert_int_equal(v->st.server_errors[GOPRO_ERR_AUTH_FAILED], 1);
}

static void
test_verify_large_body(void **state)
{
	struct bench_plan_conf pc = { .body = 300000, .prefix = PREFIX };
	struct bench_plan plan;
	struct bench_pending e = { 0, 77, BENCH_MESSAGE,
	    BENCH_PENDING_MEASURED };
	struct bench_stats *st = malloc(sizeof(*st));
	struct gopro_frame f;
	uint8_t *req, *rep;
	size_t n, plen = strlen(PREFIX), need;
	char err[128];

	assert_non_null(st);
	bench_stats_init(st);
	assert_int_equal(bench_plan_init(&plan, &pc, err, sizeof(err)), 0);
	req = malloc(plan.max_request);
	rep = malloc(plan.max_reply);
	n = bench_plan_write(&plan, BENCH_MESSAGE, 77, req);
	gopro_header_write(rep, GOPRO_CMD_MESSAGE, (uint32_t)(plen + 300000));
	memcpy(rep + 8, PREFIX, plen);
	memcpy(rep + 8 + plen, req + 8, n - 8);
	assert_int_equal(gopro_decode(rep, plan.max_reply, plan.max_reply_body,
	    &f, &need), GOPRO_DECODE_FRAME);
	assert_int_equal(bench_reply_check(&plan, &e, &f, 1, st),
	    BENCH_REPLY_GOOD);
	assert_int_equal(st->ok, 1);
	assert_int_equal(bench_stats_errors(st), 0);
	/* One byte off at the end of 300 kB is seen. */
	rep[plan.max_reply - 1] ^= 1;
	assert_int_equal(bench_reply_check(&plan, &e, &f, 1, st),
	    BENCH_REPLY_WRONG);
	assert_int_equal(st->errors[BENCH_ERR_BODY], 1);
	free(req);
	free(rep);
	free(st);
	bench_plan_free(&plan);
}

/*
 * Bodies at the edges of the number: none (0 bytes), only the number (8),
 * the number and one byte (9); HEARTBEAT echoes, MESSAGE has the prefix
 * before it.  Each byte of the reply is flipped in turn and seen, as a
 * wrong body, or out of order when it is in the number.
 */
static void
test_verify_number_edges(void **state)
{
	static const size_t bodies[] = { 0, 8, 9 };
	struct bench_stats *st = malloc(sizeof(*st));
	uint8_t req[64], rep[64];
	char err[128];

	assert_non_null(st);
	for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++)
	for (int k = BENCH_HEARTBEAT; k <= BENCH_MESSAGE; k++) {
		struct bench_plan_conf pc = { .body = bodies[b],
			.prefix = PREFIX };
		struct bench_pending e = { 0, 0x0102030405060708ull,
		    (uint8_t)k, BENCH_PENDING_MEASURED };
		const char *pre = k == BENCH_MESSAGE ? PREFIX : "";
		struct bench_plan plan;
		struct gopro_frame f;
		size_t n, m, at;

		assert_int_equal(bench_plan_init(&plan, &pc, err, sizeof(err)),
		    0);
		n = bench_plan_write(&plan, k, e.seq, req);
		gopro_header_write(rep, req[3], (uint32_t)(strlen(pre) + n - 8));
		memcpy(rep + 8, pre, strlen(pre));
		memcpy(rep + 8 + strlen(pre), req + 8, n - 8);
		m = 8 + strlen(pre) + n - 8;
		assert_int_equal(gopro_decode(rep, m, plan.max_reply_body, &f,
		    NULL), GOPRO_DECODE_FRAME);
		bench_stats_init(st);
		assert_int_equal(bench_reply_check(&plan, &e, &f, 1, st),
		    BENCH_REPLY_GOOD);
		at = 8 + strlen(pre);
		for (size_t i = 8; i < m; i++) {
			bool in_seq = bodies[b] >= 8 && i >= at && i < at + 8;

			rep[i] ^= 1;
			bench_stats_init(st);
			assert_int_equal(bench_reply_check(&plan, &e, &f, 1, st),
			    BENCH_REPLY_WRONG);
			assert_int_equal(st->errors[in_seq ? BENCH_ERR_ORDER :
			    BENCH_ERR_BODY], 1);
			rep[i] ^= 1;
		}
		bench_plan_free(&plan);
	}
	free(st);
}

static void
test_mix_parse(void **state)
{
	struct bench_mix m;
	uint8_t cycle[BENCH_MIX_CYCLE_MAX];
	char err[128];
	int count[BENCH_KINDS] = { 0 };

	assert_int_equal(bench_mix_parse("heartbeat:3,message:1", &m, err,
	    sizeof(err)), 0);
	assert_int_equal(m.weight[BENCH_HEARTBEAT], 3);
	assert_int_equal(m.weight[BENCH_MESSAGE], 1);
	assert_int_equal(m.weight[BENCH_LOGIN], 0);
	assert_int_equal(m.total, 4);
	bench_mix_cycle(&m, cycle);
	for (unsigned i = 0; i < m.total; i++)
		count[cycle[i]]++;
	assert_int_equal(count[BENCH_HEARTBEAT], 3);
	assert_int_equal(count[BENCH_MESSAGE], 1);

	/* Spread evenly, not in runs. */
	assert_int_equal(bench_mix_parse("hb:2,MSG", &m, err, sizeof(err)), 0);
	bench_mix_cycle(&m, cycle);
	assert_int_equal(cycle[0], BENCH_HEARTBEAT);
	assert_int_equal(cycle[1], BENCH_MESSAGE);
	assert_int_equal(cycle[2], BENCH_HEARTBEAT);

	assert_int_equal(bench_mix_parse("login:1000,message:1000,heartbeat:1000",
	    &m, err, sizeof(err)), 0);
	assert_int_equal(m.total, BENCH_MIX_CYCLE_MAX);
	bench_mix_cycle(&m, cycle);
}

static void
test_mix_errors(void **state)
{
	static const char *const bad[] = {
		"", "foo", "heartbeat:0", "heartbeat:x", "heartbeat:",
		"heartbeat,heartbeat:2", "heartbeat,", ",message", ":3",
		"heartbeat:1001", "heartbeat:-1", "heartbeat:1:2",
		"heartbeat:99999999999999999999",
	};
	struct bench_mix m;
	char err[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (bench_mix_parse(bad[i], &m, err, sizeof(err)) != -1)
			fail_msg("mix \"%s\" was accepted", bad[i]);
		assert_true(strncmp(err, "mix: ", 5) == 0);
	}
}

/* ------------------------------------------------------------ numbers */

static void
test_parse_numbers(void **state)
{
	uint64_t v;
	double d;

	assert_int_equal(bench_parse_size("64", 1u << 30, &v), 0);
	assert_int_equal(v, 64);
	assert_int_equal(bench_parse_size("4k", 1u << 30, &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(bench_parse_size("1M", 1u << 30, &v), 0);
	assert_int_equal(v, 1048576);
	assert_int_equal(bench_parse_size("1G", 1u << 30, &v), 0);
	assert_int_equal(v, 1u << 30);
	assert_int_equal(bench_parse_size("2G", 1u << 30, &v), -1);
	assert_int_equal(bench_parse_size("1.5k", 1u << 30, &v), -1);
	assert_int_equal(bench_parse_size("k", 1u << 30, &v), -1);
	assert_int_equal(bench_parse_size("-1", 1u << 30, &v), -1);
	assert_int_equal(bench_parse_size("4kb", 1u << 30, &v), -1);
	assert_int_equal(bench_parse_size("", 1u << 30, &v), -1);
	assert_int_equal(bench_parse_size("99999999999999999999k", UINT64_MAX,
	    &v), -1);
	assert_int_equal(bench_parse_count("0", 1, 10, &v), -1);
	assert_int_equal(bench_parse_count("10", 1, 10, &v), 0);
	assert_int_equal(bench_parse_count("11", 1, 10, &v), -1);
	assert_int_equal(bench_parse_count(" 5", 1, 10, &v), -1);
	assert_int_equal(bench_parse_count("+5", 1, 10, &v), -1);
	assert_int_equal(bench_parse_seconds("0.5", 0, 10, &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(bench_parse_seconds("abc", 0, 10, &d), -1);
	assert_int_equal(bench_parse_seconds("", 0, 10, &d), -1);
	assert_int_equal(bench_parse_seconds("1e400", 0, 1e9, &d), -1);
	assert_int_equal(bench_parse_seconds("nan", 0, 1e9, &d), -1);
	assert_int_equal(bench_parse_seconds("-1", 0, 10, &d), -1);
	assert_int_equal(bench_parse_seconds("5s", 0, 10, &d), -1);
}

/*
 * --server-pid: a master's RSS counts its workers too.  A child that holds
 * 8 MiB it has touched stands for a worker; it exits when the pipe closes.
 */
static void
test_rss_of_children(void **state)
{
	long self, tree;
	int p[2];
	pid_t pid;
	char c;

	(void)state;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* volatile: the compiler must not drop stores never read. */
		volatile char *mem = malloc(8 << 20);

		close(p[1]);
		for (size_t i = 0; mem != NULL && i < (8u << 20); i += 4096)
			mem[i] = 1;
		(void)!read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	/* Until the child has touched its memory (bounded: 5 s). */
	for (int i = 0; i < 500; i++) {
		self = bench_rss_kib(getpid());
		tree = bench_rss_tree_kib(getpid());
		if (tree - self >= 8 * 1024)
			break;
		usleep(10000);
	}
	close(p[1]);
	waitpid(pid, NULL, 0);
	assert_true(self > 0);
	assert_true(tree - self >= 8 * 1024);
	assert_int_equal(bench_rss_tree_kib(-1), -1);
}

/* -d, -w, -H and --timeout take the units of gopro.conf. */
static void
test_parse_durations(void **state)
{
	double d;

	(void)state;
	assert_int_equal(bench_parse_duration("10", 0, 100, &d), 0);
	assert_true(d == 10);
	assert_int_equal(bench_parse_duration("10s", 0, 100, &d), 0);
	assert_true(d == 10);
	assert_int_equal(bench_parse_duration("250ms", 0, 100, &d), 0);
	assert_true(d == 0.25);
	assert_int_equal(bench_parse_duration("1.5m", 0, 100, &d), 0);
	assert_true(d == 90);
	assert_int_equal(bench_parse_duration("1h", 0, 1e6, &d), 0);
	assert_true(d == 3600);
	assert_int_equal(bench_parse_duration("2h", 0, 3600, &d), -1);
	assert_int_equal(bench_parse_duration("1ms", 0.01, 10, &d), -1);
	assert_int_equal(bench_parse_duration("5x", 0, 10, &d), -1);
	assert_int_equal(bench_parse_duration("5 s", 0, 10, &d), -1);
	assert_int_equal(bench_parse_duration("s", 0, 10, &d), -1);
	assert_int_equal(bench_parse_duration("-1s", 0, 10, &d), -1);
	assert_int_equal(bench_parse_duration(" 1s", 0, 10, &d), -1);
	assert_int_equal(bench_parse_duration("1e400", 0, 1e9, &d), -1);
	assert_int_equal(bench_parse_duration("", 0, 10, &d), -1);
}

static void
test_parse_addresses(void **state)
{
	struct sockaddr_storage ss[4];
	socklen_t len;
	unsigned n;
	char err[128];

	assert_int_equal(bench_parse_address("127.0.0.1:8888", &ss[0], &len,
	    err, sizeof(err)), 0);
	assert_int_equal(ss[0].ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss[0])->sin_port), 8888);
	assert_int_equal(bench_parse_address("[::1]:9", &ss[0], &len, err,
	    sizeof(err)), 0);
	assert_int_equal(ss[0].ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(bench_parse_address("127.0.0.1", &ss[0], &len, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "HOST:PORT"));
	assert_int_equal(bench_parse_address("127.0.0.1:0", &ss[0], &len, err,
	    sizeof(err)), -1);
	assert_int_equal(bench_parse_address("127.0.0.1:65536", &ss[0], &len,
	    err, sizeof(err)), -1);
	assert_int_equal(bench_parse_address("::1:80", &ss[0], &len, err,
	    sizeof(err)), -1);
	assert_int_equal(bench_parse_address(":80", &ss[0], &len, err,
	    sizeof(err)), -1);

	assert_int_equal(bench_parse_sources("127.0.0.2,127.0.0.3,::1", ss, 4,
	    &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ss[2].ss_family, AF_INET6);
	assert_int_equal(bench_parse_sources("127.0.0.2,,127.0.0.3", ss, 4, &n,
	    err, sizeof(err)), -1);
	assert_int_equal(bench_parse_sources("localhost", ss, 4, &n, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "numeric"));
	assert_int_equal(bench_parse_sources("1.1.1.1,1.1.1.2,1.1.1.3", ss, 2,
	    &n, err, sizeof(err)), -1);
}

/* ------------------------------------------------------------ options */

static enum bench_opts_result
parse(struct bench_opts *o, char *err, size_t errlen, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = (char *)"gopro-bench";
	va_start(ap, errlen);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	err[0] = '\0';
	return bench_opts_parse(o, argc, argv, err, errlen);
}

#define PARSE(...) parse(&o, err, sizeof(err), __VA_ARGS__, (char *)NULL)

static void
test_opts_defaults_and_values(void **state)
{
	struct bench_opts o;
	char err[256];

	unsetenv("GOPRO_PASSWORD");
	assert_int_equal(parse(&o, err, sizeof(err), (char *)NULL),
	    BENCH_OPTS_RUN);
	assert_string_equal(o.server, "127.0.0.1:8888");
	assert_int_equal(o.conns, 50);
	assert_int_equal(o.depth, 1);
	assert_int_equal(o.threads, 1);
	assert_true(o.duration == 10.0);
	assert_int_equal(o.requests, 0);
	assert_int_equal(o.mix.weight[BENCH_HEARTBEAT], 1);
	assert_string_equal(o.prefix, "Server says: ");
	assert_false(o.json);

	assert_int_equal(PARSE("-s", "127.0.0.1:9", "-c", "4", "-P", "32",
	    "-t", "2", "-n", "2000", "-T", "message", "-b", "64", "--json",
	    "--quiet", "--allow-lost", "-w", "0.5", "--timeout", "2",
	    "-S", "127.0.0.2,127.0.0.3", "--prefix", "Hi: "), BENCH_OPTS_RUN);
	assert_int_equal(o.conns, 4);
	assert_int_equal(o.depth, 32);
	assert_int_equal(o.threads, 2);
	assert_int_equal(o.requests, 2000);
	assert_true(o.duration == 0);
	assert_int_equal(o.mix.weight[BENCH_MESSAGE], 1);
	assert_int_equal(o.mix.weight[BENCH_HEARTBEAT], 0);
	assert_int_equal(o.body, 64);
	assert_true(o.json && o.quiet && o.allow_lost);
	assert_true(o.warmup == 0.5 && o.timeout == 2.0);
	assert_int_equal(o.nsources, 2);
	assert_string_equal(o.prefix, "Hi: ");

	assert_int_equal(PARSE("-R", "1000", "--mix", "heartbeat:3,message:1"),
	    BENCH_OPTS_RUN);
	assert_true(o.rate == 1000.0);
	assert_int_equal(o.mix.total, 4);

	assert_int_equal(PARSE("-h"), BENCH_OPTS_HELP);
	assert_int_equal(PARSE("--version"), BENCH_OPTS_VERSION);
}

static void
test_opts_login(void **state)
{
	struct bench_opts o;
	char err[256];

	unsetenv("GOPRO_PASSWORD");
	assert_int_equal(PARSE("-T", "login"), BENCH_OPTS_USAGE);
	assert_non_null(strstr(err, "--user"));
	assert_int_equal(PARSE("--user", "alice"), BENCH_OPTS_USAGE);
	assert_non_null(strstr(err, "GOPRO_PASSWORD"));
	assert_int_equal(PARSE("--user", "alice", "--password", "pw", "-T",
	    "login"), BENCH_OPTS_RUN);
	assert_string_equal(o.password, "pw");
	setenv("GOPRO_PASSWORD", "from-env", 1);
	assert_int_equal(PARSE("-u", "alice"), BENCH_OPTS_RUN);
	assert_string_equal(o.password, "from-env");
	/* The command line wins over the environment. */
	assert_int_equal(PARSE("-u", "alice", "-p", "cli"), BENCH_OPTS_RUN);
	assert_string_equal(o.password, "cli");
	unsetenv("GOPRO_PASSWORD");
}

static void
test_opts_errors(void **state)
{
	static char *cases[][6] = {
		{ "-d", "1", "-n", "10" },
		{ "-T", "heartbeat", "--mix", "message" },
		{ "-T", "ping" },
		{ "-c", "0" },
		{ "-c", "x" },
		{ "-P", "0" },
		{ "-P", "65537" },
		{ "-t", "3", "-c", "2" },
		{ "-t", "0" },
		{ "-d", "0" },
		{ "-d", "-1" },
		{ "-n", "0" },
		{ "-b", "2G" },
		{ "-R", "0" },
		{ "--hold", "5", "-P", "2" },
		{ "--hold", "5", "-d", "3" },
		{ "--hold", "5", "-R", "10" },
		{ "-s", "localhost" },
		{ "-s", "127.0.0.1:99999" },
		{ "-S", "not-an-ip" },
		{ "--bogus" },
		{ "-x" },
		{ "-c" },
		{ "extra" },
		{ "--server-pid", "0" },
		{ "--timeout", "0" },
	};
	struct bench_opts o;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[8] = { (char *)"gopro-bench" };
		int argc = 1;
		while (argc < 7 && cases[i][argc - 1] != NULL) {
			argv[argc] = cases[i][argc - 1];
			argc++;
		}
		err[0] = '\0';
		if (bench_opts_parse(&o, argc, argv, err, sizeof(err)) !=
		    BENCH_OPTS_USAGE)
			fail_msg("case %zu (%s ...) was accepted", i,
			    cases[i][0]);
		assert_true(err[0] != '\0');
	}
}

static void
test_opts_hold(void **state)
{
	struct bench_opts o;
	char err[256];

	assert_int_equal(PARSE("--hold", "2", "-c", "100", "--server-pid",
	    "1234"), BENCH_OPTS_RUN);
	assert_true(o.hold == 2.0);
	assert_true(o.connect_rate > 0); /* opening is rate-limited */
	assert_int_equal(o.server_pid, 1234);
	assert_int_equal(PARSE("--hold", "2", "--connect-rate", "100"),
	    BENCH_OPTS_RUN);
	assert_true(o.connect_rate == 100.0);
}

/* ------------------------------------------------------------ schedule */

static void
test_sched(void **state)
{
	struct bench_sched s;
	const uint64_t t0 = 1000000000ull;

	/* 1000 req/s over 4 connections: 1 ms apart, 4 ms per connection. */
	bench_sched_init(&s, t0, 1000, 4);
	assert_int_equal(bench_sched_intended(&s, 0, 0), t0);
	assert_int_equal(bench_sched_intended(&s, 1, 0), t0 + 1000000);
	assert_int_equal(bench_sched_intended(&s, 0, 1), t0 + 4000000);
	assert_int_equal(bench_sched_intended(&s, 3, 2), t0 + 11000000);
	assert_int_equal(bench_sched_due(&s, 0, t0 - 1), 0);
	assert_int_equal(bench_sched_due(&s, 0, t0), 1);
	assert_int_equal(bench_sched_due(&s, 1, t0), 0);
	assert_int_equal(bench_sched_due(&s, 1, t0 + 999999), 0);
	assert_int_equal(bench_sched_due(&s, 1, t0 + 1000000), 1);
	assert_int_equal(bench_sched_due(&s, 0, t0 + 4000000), 2);
	assert_int_equal(bench_sched_due(&s, 0, t0 + 3999999), 1);
	/* One second: 1000 requests in all, 250 per connection. */
	for (unsigned c = 0; c < 4; c++)
		assert_int_equal(bench_sched_due(&s, c, t0 + 999999999), 250);
	/* No drift: an hour later the count is still exact. */
	assert_int_equal(bench_sched_due(&s, 2, t0 + 3600000000000ull - 1),
	    900000);
	assert_int_equal(bench_sched_intended(&s, 2, 900000),
	    t0 + 3600000000000ull + 2000000);

	/* An awkward rate: due counts agree with the intended times. */
	bench_sched_init(&s, 0, 3, 7);
	for (uint64_t now = 0; now < 20000000000ull; now += 123456789) {
		for (unsigned c = 0; c < 7; c++) {
			uint64_t k = bench_sched_due(&s, c, now);
			if (k > 0)
				assert_true(bench_sched_intended(&s, c, k - 1) <=
				    now);
			assert_true(bench_sched_intended(&s, c, k) > now);
		}
	}
	/* Closed loop: nothing is ever due. */
	bench_sched_init(&s, t0, 0, 4);
	assert_int_equal(bench_sched_due(&s, 0, t0 * 5), 0);
}

/* ------------------------------------------------------------ report */

static void
test_report(void **state)
{
	static struct bench_result r;
	struct bench_opts o;
	char err[256], *text = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(PARSE("-c", "4", "-n", "10"), BENCH_OPTS_RUN);
	memset(&r, 0, sizeof(r));
	r.opts = &o;
	bench_stats_init(&r.stats);
	r.stats.ok = 10;
	r.elapsed = 0.5;
	bench_hist_record(&r.stats.hist, 20000, 10);
	assert_int_equal(bench_result_status(&r), 0);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	bench_report_json(f, &r);
	fclose(f);
	assert_non_null(strstr(text, "\"requests\":10,"));
	assert_non_null(strstr(text, "\"throughput\":20.000"));
	assert_non_null(strstr(text, "\"p99\":20.000"));
	assert_non_null(strstr(text, "\"status\":\"ok\""));
	assert_int_equal(text[len - 1], '\n');
	free(text);

	r.stats.lost = 1;
	assert_int_equal(bench_result_status(&r), 1);
	o.allow_lost = true;
	assert_int_equal(bench_result_status(&r), 0);
	r.stats.errors[BENCH_ERR_ORDER] = 1;
	assert_int_equal(bench_result_status(&r), 1);
	assert_string_equal(bench_error_name(BENCH_ERR_ORDER), "out of order");
	assert_string_equal(bench_error_key(BENCH_ERR_CLOSED),
	    "closed_by_server");
	text = NULL;
	f = open_memstream(&text, &len);
	bench_report_text(f, &r);
	fclose(f);
	assert_non_null(strstr(text, "out of order 1"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hist_buckets),
		cmocka_unit_test(test_hist_single_values),
		cmocka_unit_test(test_hist_percentiles),
		cmocka_unit_test(test_hist_skewed),
		cmocka_unit_test(test_hist_merge),
		cmocka_unit_test(test_hist_huge_and_empty),
		cmocka_unit_test_setup_teardown(test_plan_requests, vfix_setup,
		    vfix_teardown),
		cmocka_unit_test_setup_teardown(test_verify_correct_replies,
		    vfix_setup, vfix_teardown),
		cmocka_unit_test_setup_teardown(test_verify_wrong_replies,
		    vfix_setup, vfix_teardown),
		cmocka_unit_test_setup_teardown(test_verify_any_reply,
		    vfix_setup, vfix_teardown),
		cmocka_unit_test_setup_teardown(test_verify_error_frames,
		    vfix_setup, vfix_teardown),
		cmocka_unit_test_setup_teardown(test_verify_missing, vfix_setup,
		    vfix_teardown),
		cmocka_unit_test_setup_teardown(test_verify_setup_and_warmup,
		    vfix_setup, vfix_teardown),
		cmocka_unit_test(test_verify_large_body),
		cmocka_unit_test(test_verify_number_edges),
		cmocka_unit_test(test_mix_parse),
		cmocka_unit_test(test_mix_errors),
		cmocka_unit_test(test_parse_numbers),
		cmocka_unit_test(test_parse_durations),
		cmocka_unit_test(test_rss_of_children),
		cmocka_unit_test(test_parse_addresses),
		cmocka_unit_test(test_opts_defaults_and_values),
		cmocka_unit_test(test_opts_login),
		cmocka_unit_test(test_opts_errors),
		cmocka_unit_test(test_opts_hold),
		cmocka_unit_test(test_sched),
		cmocka_unit_test(test_report),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
