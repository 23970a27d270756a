/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * threadpool.c - the worker's thread pools (threadpool.h).
 *
 * A pool is created by a worker after fork, so no thread ever exists in a
 * process that forks, and fork-after-threads hazards (locks held by a
 * thread that does not exist in the child) cannot arise.
 *
 * A job moves from the queue to a thread, then to the done list, then to
 * the loop thread, all under one mutex; only the loop thread touches
 * "pending", so it needs no lock.  The queue is in submission order, so a
 * timer on the loop thread at the head's deadline finds every job that
 * waited too long for a thread at the front of the queue.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "threadpool.h"

TAILQ_HEAD(tpool_jobs, tpool_job);

struct tpool {
	struct ev_loop *loop;
	struct tpool_limits limits;
	ev_async wakeup;
	ev_timer expire;		/* the deadline of the queue's head */
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct tpool_jobs queue;	/* submitted, not started */
	struct tpool_jobs done;		/* finished, not delivered */
	bool stop, finish;
	unsigned pending;		/* loop thread only */
	pthread_t *threads;
};

static void *
tpool_thread(void *arg)
{
	struct tpool *p = arg;
	struct tpool_job *job;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && TAILQ_EMPTY(&p->queue))
			pthread_cond_wait(&p->work, &p->lock);
		if (TAILQ_EMPTY(&p->queue) || (p->stop && !p->finish))
			break;
		job = TAILQ_FIRST(&p->queue);
		TAILQ_REMOVE(&p->queue, job, link);
		pthread_mutex_unlock(&p->lock);
		job->run(job);
		pthread_mutex_lock(&p->lock);
		TAILQ_INSERT_TAIL(&p->done, job, link);
		ev_async_send(p->loop, &p->wakeup);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* On the loop thread: hand each job of a list to its done callback. */
static void
hand_over(struct tpool *p, struct tpool_jobs *jobs, enum tpool_result r)
{
	struct tpool_job *job;

	while ((job = TAILQ_FIRST(jobs)) != NULL) {
		TAILQ_REMOVE(jobs, job, link);
		/* Before the callback, which may wait for zero to exit. */
		p->pending--;
		job->done(job, r);
	}
}

static void
deliver_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct tpool *p = w->data;
	struct tpool_jobs done = TAILQ_HEAD_INITIALIZER(done);

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&p->lock);
	TAILQ_CONCAT(&done, &p->done, link);
	pthread_mutex_unlock(&p->lock);
	hand_over(p, &done, TPOOL_RAN);
}

/* Arm the timer for the head's deadline (lock held). */
static void
arm_locked(struct tpool *p)
{
	struct tpool_job *head = TAILQ_FIRST(&p->queue);
	ev_tstamp left;

	if (p->limits.max_wait <= 0 || head == NULL ||
	    ev_is_active(&p->expire))
		return;
	left = head->queued + p->limits.max_wait - ev_now(p->loop);
	ev_timer_set(&p->expire, left > 0 ? left : 0, 0);
	ev_timer_start(p->loop, &p->expire);
}

/* The jobs no thread started within max_wait leave the queue unrun. */
static void
expire_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tpool *p = w->data;
	struct tpool_jobs late = TAILQ_HEAD_INITIALIZER(late);
	struct tpool_job *job;

	(void)revents;
	pthread_mutex_lock(&p->lock);
	while ((job = TAILQ_FIRST(&p->queue)) != NULL &&
	    job->queued + p->limits.max_wait <= ev_now(loop)) {
		TAILQ_REMOVE(&p->queue, job, link);
		TAILQ_INSERT_TAIL(&late, job, link);
	}
	arm_locked(p);
	pthread_mutex_unlock(&p->lock);
	hand_over(p, &late, TPOOL_EXPIRED);
}

/* Tell the threads to stop and join the first n of them. */
static void
join_threads(struct tpool *p, unsigned n, bool finish)
{
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	p->finish = finish;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < n; i++)
		pthread_join(p->threads[i], NULL);
}

/* Threads inherit the creator's mask: block all before, restore after. */
static int
start_threads(struct tpool *p)
{
	sigset_t all, old;
	int error = 0;
	unsigned i;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < p->limits.threads; i++)
		if ((error = pthread_create(&p->threads[i], NULL,
		    tpool_thread, p)) != 0)
			break;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (error != 0) {
		join_threads(p, i, false);
		errno = error;
		return -1;
	}
	return 0;
}

static void
destroy(struct tpool *p)
{
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

struct tpool *
tpool_new(struct ev_loop *loop, const struct tpool_limits *l)
{
	struct tpool *p;
	int saved;

	if (l->threads == 0 || l->threads > TPOOL_THREADS_MAX ||
	    !(l->max_wait >= 0)) {
		errno = EINVAL;
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if ((p->threads = calloc(l->threads, sizeof(pthread_t))) == NULL) {
		free(p);
		return NULL;
	}
	p->loop = loop;
	p->limits = *l;
	TAILQ_INIT(&p->queue);
	TAILQ_INIT(&p->done);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	/* Before the threads start: the first job may finish at once. */
	ev_async_init(&p->wakeup, deliver_cb);
	p->wakeup.data = p;
	ev_async_start(loop, &p->wakeup);
	if (!l->keep_loop)
		ev_unref(loop);
	ev_timer_init(&p->expire, expire_cb, 0, 0);
	p->expire.data = p;
	if (start_threads(p) < 0) {
		saved = errno;
		if (!l->keep_loop)
			ev_ref(loop);
		ev_async_stop(loop, &p->wakeup);
		destroy(p);
		errno = saved;
		return NULL;
	}
	return p;
}

int
tpool_submit(struct tpool *p, struct tpool_job *job)
{
	if (p->limits.queue_max > 0 && p->pending >= p->limits.queue_max) {
		errno = EAGAIN;
		return -1;
	}
	job->queued = ev_now(p->loop);
	p->pending++;
	pthread_mutex_lock(&p->lock);
	TAILQ_INSERT_TAIL(&p->queue, job, link);
	arm_locked(p);
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

unsigned
tpool_pending(const struct tpool *p)
{
	return p->pending;
}

void
tpool_free(struct tpool *p, bool finish)
{
	if (p == NULL)
		return;
	join_threads(p, p->limits.threads, finish);
	ev_timer_stop(p->loop, &p->expire);
	if (!p->limits.keep_loop)
		ev_ref(p->loop);
	ev_async_stop(p->loop, &p->wakeup);
	/* The threads are gone: no lock is needed any more. */
	hand_over(p, &p->done, finish ? TPOOL_RAN : TPOOL_DROPPED);
	hand_over(p, &p->queue, TPOOL_DROPPED);
	destroy(p);
}
