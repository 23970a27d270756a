/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_hist.c - a latency histogram in the manner of HdrHistogram.
 *
 * Recording must cost a few instructions on the hot path and the memory
 * must not depend on the values seen, so the buckets are fixed: one per
 * value below 256 ns, then 128 linear sub-buckets per power of two.  That
 * keeps every bucket within 1/128 of its value (two significant digits),
 * covers the whole uint64_t range in 7,424 counters (58 KiB per thread),
 * and makes merging the threads' histograms a plain sum.  Recording is
 * inline in bench.h.
 */
#include <string.h>

#include "bench.h"

void
bench_hist_init(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

uint64_t
bench_hist_bucket_low(size_t i)
{
	unsigned shift;

	if (i < 2 * BENCH_HIST_SUB)
		return (uint64_t)i;
	shift = (unsigned)((i - 256u) / BENCH_HIST_SUB) + 1u;
	return ((uint64_t)((i - 256u) % BENCH_HIST_SUB) + BENCH_HIST_SUB) <<
	    shift;
}

uint64_t
bench_hist_bucket_width(size_t i)
{
	if (i < 2 * BENCH_HIST_SUB)
		return 1;
	return (uint64_t)1 << ((i - 256u) / BENCH_HIST_SUB + 1u);
}

void
bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	if (src->total == 0)
		return;
	for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

/*
 * The bucket holding the rank-th smallest value, reported as its midpoint
 * and clamped to the exact extremes, so p100 is the true maximum and a
 * single-valued histogram reports that value.
 */
uint64_t
bench_hist_percentile(const struct bench_hist *h, double p)
{
	uint64_t rank, seen = 0, mid;
	size_t i;

	if (h->total == 0)
		return 0;
	if (p >= 100.0)
		return h->max;
	if (p < 0.0)
		p = 0.0;
	rank = (uint64_t)((p / 100.0) * (double)h->total + 0.5);
	if (rank < 1)
		rank = 1;
	if (rank > h->total)
		rank = h->total;
	for (i = 0; i < BENCH_HIST_BUCKETS - 1; i++) {
		seen += h->counts[i];
		if (seen >= rank)
			break;
	}
	mid = bench_hist_bucket_low(i) + bench_hist_bucket_width(i) / 2;
	if (mid > h->max)
		mid = h->max;
	if (mid < h->min)
		mid = h->min;
	return mid;
}

double
bench_hist_mean(const struct bench_hist *h)
{
	return h->total ? h->sum / (double)h->total : 0.0;
}
