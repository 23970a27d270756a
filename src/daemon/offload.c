/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * offload.c - the module thread pool (offload.h).  Jobs wait in one FIFO
 * under a mutex and condition variable; a finished job moves to the done
 * list and the loop is woken with ev_async_send, which coalesces wakeups,
 * so a burst of jobs costs one wakeup.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "offload.h"

#define OFFLOAD_THREADS 4

struct job {
	struct job *next;
	void (*fn)(void *);
	void (*done)(void *);
	void *arg;
};

struct offload {
	struct ev_loop *loop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *todo, **todo_tail;
	struct job *finished, **finished_tail;
	bool stop;
	pthread_t threads[OFFLOAD_THREADS];
	unsigned nthreads;
	ev_async wake;
};

static void *
offload_thread(void *arg)
{
	struct offload *o = arg;
	struct job *j;

	pthread_mutex_lock(&o->lock);
	for (;;) {
		while (o->todo == NULL && !o->stop)
			pthread_cond_wait(&o->cond, &o->lock);
		if ((j = o->todo) == NULL)
			break;
		if ((o->todo = j->next) == NULL)
			o->todo_tail = &o->todo;
		pthread_mutex_unlock(&o->lock);
		j->fn(j->arg);
		j->next = NULL;
		pthread_mutex_lock(&o->lock);
		*o->finished_tail = j;
		o->finished_tail = &j->next;
		ev_async_send(o->loop, &o->wake);
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

static void
offload_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct offload *o = a->data;
	struct job *j, *next;

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&o->lock);
	j = o->finished;
	o->finished = NULL;
	o->finished_tail = &o->finished;
	pthread_mutex_unlock(&o->lock);
	for (; j != NULL; j = next) {
		next = j->next;
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

struct offload *
offload_new(struct ev_loop *loop)
{
	struct offload *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return NULL;
	o->loop = loop;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	o->todo_tail = &o->todo;
	o->finished_tail = &o->finished;
	ev_async_init(&o->wake, offload_wake_cb);
	o->wake.data = o;
	ev_async_start(loop, &o->wake);
	ev_unref(loop);
	for (; o->nthreads < OFFLOAD_THREADS; o->nthreads++)
		if (pthread_create(&o->threads[o->nthreads], NULL,
		    offload_thread, o) != 0)
			break;
	if (o->nthreads == 0) {
		offload_free(o);
		errno = EAGAIN;
		return NULL;
	}
	return o;
}

int
offload_submit(struct offload *o, void (*fn)(void *), void *arg,
    void (*done)(void *))
{
	struct job *j = malloc(sizeof(*j));

	if (j == NULL)
		return -1;
	*j = (struct job){ NULL, fn, done, arg };
	pthread_mutex_lock(&o->lock);
	*o->todo_tail = j;
	o->todo_tail = &j->next;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
	return 0;
}

void
offload_free(struct offload *o)
{
	pthread_mutex_lock(&o->lock);
	o->stop = true;
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
	for (unsigned i = 0; i < o->nthreads; i++)
		pthread_join(o->threads[i], NULL);
	offload_wake_cb(o->loop, &o->wake, 0);
	ev_ref(o->loop);
	ev_async_stop(o->loop, &o->wake);
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
	free(o);
}
