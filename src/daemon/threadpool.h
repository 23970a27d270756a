/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * threadpool.h - the one thread pool of a worker's blocking work: password
 * hashing for LOGIN (auth.c) and the modules' api->offload (offload.c)
 * each have one, with their own limits.
 *
 * A job runs on a pool thread, then its done callback on the loop's thread,
 * woken through an ev_async that coalesces wakeups (nginx's thread pools
 * report back the same way).  The caller embeds a struct tpool_job in its
 * own job and gets it back in both callbacks.  Every tpool_* function is
 * called on the loop's thread.
 */
#ifndef GOPRO_THREADPOOL_H
#define GOPRO_THREADPOOL_H

#include <stdbool.h>
#include <sys/queue.h>

#include <ev.h>

/* Most threads one pool may start. */
#define TPOOL_THREADS_MAX 64u

/* How a job ended, as its done callback is told. */
enum tpool_result {
	TPOOL_RAN,      /* run() ran on a pool thread */
	TPOOL_EXPIRED,  /* no thread started it within max_wait: not run */
	TPOOL_DROPPED,  /* tpool_free without finish: not run or not delivered */
};

struct tpool_job {
	void (*run)(struct tpool_job *job);       /* on a pool thread */
	void (*done)(struct tpool_job *job, enum tpool_result result);
	/* Private. */
	TAILQ_ENTRY(tpool_job) link;
	ev_tstamp queued;
};

struct tpool_limits {
	unsigned threads;       /* 1 .. TPOOL_THREADS_MAX */
	unsigned queue_max;     /* jobs held at once (queued, running, not
				   delivered); 0: no limit */
	double max_wait;        /* seconds a job may wait for a thread before
				   it expires; 0: for ever */
	bool keep_loop;         /* the wakeup keeps the loop running */
};

struct tpool;

/*
 * Start the threads (every signal blocked in them: signals belong to the
 * loop thread).  NULL with errno EINVAL (limits), ENOMEM or EAGAIN.
 */
struct tpool *tpool_new(struct ev_loop *loop, const struct tpool_limits *l);
/* Queue job: 0, or -1 with errno EAGAIN when queue_max jobs are held. */
int tpool_submit(struct tpool *p, struct tpool_job *job);
/* Jobs held: queued, running, or finished and not yet delivered.  A done
 * callback already sees its own job gone. */
unsigned tpool_pending(const struct tpool *p);
/*
 * Stop and join the threads; a running job finishes first.  finish: every
 * queued job runs too, and every job gets its done (TPOOL_RAN); otherwise
 * the jobs not started or not delivered get done with TPOOL_DROPPED.
 * Not from a done callback.
 */
void tpool_free(struct tpool *p, bool finish);

#endif /* GOPRO_THREADPOOL_H */
