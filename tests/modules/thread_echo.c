/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * thread_echo.c - MESSAGE's echo ("Server says: " and the body), every
 * reply completed from a thread of the module's own: the shape of a
 * module whose work runs off the loop (a blocking client library, a
 * computation).  contrib/bench/module_thread.sh measures what that costs
 * against the echo module answering on the loop; test_modules checks
 * that its replies are right and in order under pipelined load.
 *
 * The loop thread copies each request into a job and appends it to a
 * queue under a mutex; the module's thread takes the whole queue at once
 * and completes every job with api->completev(), which copies the reply
 * and wakes the loop with ev_async_send().  The thread is signalled only
 * when it sleeps, and jobs are recycled through a free list, so that a
 * busy worker pays neither a futex call nor a malloc of ours per request.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gopro/gopro.h"
#include "gopro/module.h"

struct job {
	struct job *next;
	gopro_request_id id;
	size_t len, cap;
	uint8_t *body;
};

struct thread_echo {
	const struct gopro_module_api *api;
	const char *prefix;
	size_t prefix_len;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *queue, **queue_tail;  /* under lock */
	struct job *free_jobs;            /* under lock */
	bool sleeping, stopping;          /* under lock */
};

/* A job from the free list, or a new one (called with the lock held). */
static struct job *
job_get(struct thread_echo *te, size_t len)
{
	struct job *j = te->free_jobs;
	uint8_t *body;

	if (j != NULL)
		te->free_jobs = j->next;
	else if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	if (j->cap < len) {
		if ((body = realloc(j->body, len)) == NULL) {
			j->next = te->free_jobs;
			te->free_jobs = j;
			return NULL;
		}
		j->body = body;
		j->cap = len;
	}
	return j;
}

static void
jobs_free(struct job *j)
{
	struct job *next;

	for (; j != NULL; j = next) {
		next = j->next;
		free(j->body);
		free(j);
	}
}

/* Complete a batch outside the lock, then give its jobs back. */
static void
complete_batch(struct thread_echo *te, struct job *batch)
{
	struct job *j, *last = NULL;

	for (j = batch; j != NULL; last = j, j = j->next) {
		struct iovec iov[2] = {
			{ (void *)(uintptr_t)te->prefix, te->prefix_len },
			{ j->body, j->len },
		};

		te->api->completev(j->id, GOPRO_CMD_MESSAGE, iov, 2);
	}
	if (last == NULL)
		return;
	pthread_mutex_lock(&te->lock);
	last->next = te->free_jobs;
	te->free_jobs = batch;
	pthread_mutex_unlock(&te->lock);
}

static void *
thread_main(void *arg)
{
	struct thread_echo *te = arg;
	struct job *batch;

	pthread_mutex_lock(&te->lock);
	while (!te->stopping) {
		if (te->queue == NULL) {
			te->sleeping = true;
			pthread_cond_wait(&te->wake, &te->lock);
			te->sleeping = false;
			continue;
		}
		batch = te->queue;
		te->queue = NULL;
		te->queue_tail = &te->queue;
		pthread_mutex_unlock(&te->lock);
		complete_batch(te, batch);
		pthread_mutex_lock(&te->lock);
	}
	pthread_mutex_unlock(&te->lock);
	return NULL;
}

static void
te_request(void *state, const struct gopro_request *req)
{
	struct thread_echo *te = state;
	struct job *j;

	pthread_mutex_lock(&te->lock);
	if ((j = job_get(te, req->len)) == NULL) {
		pthread_mutex_unlock(&te->lock);
		te->api->complete_error(req->id, GOPRO_MODULE_ERR_UNAVAILABLE,
		    "out of memory");
		return;
	}
	j->next = NULL;
	j->id = req->id;
	j->len = req->len;
	if (req->len > 0)
		memcpy(j->body, req->body, req->len);
	*te->queue_tail = j;
	te->queue_tail = &j->next;
	if (te->sleeping)
		pthread_cond_signal(&te->wake);
	pthread_mutex_unlock(&te->lock);
}

static int
te_init(const struct gopro_module_api *api,
    const union gopro_option_value *opts, void **state, char *err,
    size_t errlen)
{
	struct thread_echo *te = calloc(1, sizeof(*te));

	if (te == NULL)
		return -1;
	te->api = api;
	te->prefix = opts[0].s;
	te->prefix_len = strlen(te->prefix);
	te->queue_tail = &te->queue;
	pthread_mutex_init(&te->lock, NULL);
	pthread_cond_init(&te->wake, NULL);
	if (pthread_create(&te->thread, NULL, thread_main, te) != 0) {
		snprintf(err, errlen, "cannot start its thread");
		free(te);
		return -1;
	}
	*state = te;
	return 0;
}

/* Requests still queued get no reply from us: the host answers them. */
static void
te_exit(void *state)
{
	struct thread_echo *te = state;

	pthread_mutex_lock(&te->lock);
	te->stopping = true;
	pthread_cond_signal(&te->wake);
	pthread_mutex_unlock(&te->lock);
	pthread_join(te->thread, NULL);
	jobs_free(te->queue);
	jobs_free(te->free_jobs);
	pthread_mutex_destroy(&te->lock);
	pthread_cond_destroy(&te->wake);
	free(te);
}

static const uint8_t te_commands[] = { GOPRO_CMD_MESSAGE };

static const struct gopro_module_option te_options[] = {
	{ "prefix", GOPRO_OPTION_STRING, "Server says: ", 0, 1024,
	    "text put before the body of every reply" },
};

GOPRO_MODULE_EXPORT const struct gopro_module gopro_module = {
	GOPRO_MODULE_HEADER,
	.name = "thread_echo",
	.commands = te_commands,
	.ncommands = 1,
	.options = te_options,
	.noptions = 1,
	.worker_init = te_init,
	.request = te_request,
	.worker_exit = te_exit,
};
