/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * offload.c - the modules' api->offload (offload.h) on a worker thread
 * pool (threadpool.h): no queue limit, no expiry, and every job submitted
 * runs and gets its done callback, even when the pool is freed.
 */
#include <stdlib.h>

#include "offload.h"
#include "threadpool.h"

#define OFFLOAD_THREADS 4

struct offload_job {
	struct tpool_job job;	/* first: the pool hands this back */
	void (*fn)(void *);
	void (*done)(void *);
	void *arg;
};

static void
offload_run(struct tpool_job *job)
{
	struct offload_job *j = (struct offload_job *)job;

	j->fn(j->arg);
}

static void
offload_done(struct tpool_job *job, enum tpool_result result)
{
	struct offload_job *j = (struct offload_job *)job;

	/* Freed with finish: every job ran, so the result is TPOOL_RAN. */
	if (result == TPOOL_RAN && j->done != NULL)
		j->done(j->arg);
	free(j);
}

struct tpool *
offload_new(struct ev_loop *loop)
{
	const struct tpool_limits limits = { .threads = OFFLOAD_THREADS };

	return tpool_new(loop, &limits);
}

int
offload_submit(struct tpool *pool, void (*fn)(void *), void *arg,
    void (*done)(void *))
{
	struct offload_job *j = malloc(sizeof(*j));

	if (j == NULL)
		return -1;
	*j = (struct offload_job){ .job = { .run = offload_run,
		.done = offload_done }, .fn = fn, .done = done, .arg = arg };
	return tpool_submit(pool, &j->job);
}

void
offload_free(struct tpool *pool)
{
	tpool_free(pool, true);
}
