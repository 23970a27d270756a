/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mod_test.c - the module the integration tests load (test_modules).  Its
 * "mode" option picks a behaviour, good or bad, so that each promise of the
 * host can be checked against a real shared object:
 *
 *   sync      answer in the request callback: "<version>:<body>"
 *   thread    answer from a new thread
 *   thread_late  answer from a new thread after "delay"
 *   offload   answer from api->offload's done callback
 *   late      answer on the loop after "delay" (past the timeout)
 *   never     never answer
 *   twice     answer twice at once
 *   big       answer with a body of "size" bytes
 *   reserved  answer with the reserved command GOAWAY
 *   whoami    answer with the client address and the logged-in user
 *   tlsid     answer with the TLS client certificate's identity, or "-"
 *   crash     abort() on every request
 *   block     block the loop for "delay" in the callback, then answer
 *   crash_init  abort() in worker_init (the probe's check passes)
 *   drain     like sync, but ERROR 10 once the worker drains (drain_left)
 *   echo_offload  MESSAGE's echo ("Server says: " and the body), answered
 *             from api->offload's done callback: the same replies from
 *             either version, for reloads under gopro-bench's load
 *
 * MOD_VERSION (1 or 2) is compiled in, so that a test can swap the code
 * behind a path and see which file a generation runs.  MOD_BAD_ABI builds
 * a module for an ABI this host does not have.
 *
 * It keeps the rule of gopro_module(3) that no module code runs after
 * worker_exit: every request it still holds (a thread that has not
 * finished, a timer of "late") is on the state's list, and worker_exit
 * joins the threads and stops the timers before it frees the state.
 */
#include <arpa/inet.h>
#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gopro/module.h"

#ifndef MOD_VERSION
#define MOD_VERSION 1
#endif

struct pending;

struct test_state {
	const struct gopro_module_api *api;
	const char *mode;
	double delay;
	uint64_t size;
	/* The requests held by a thread or a timer, joined or stopped at
	 * worker_exit; lock guards "finished", which threads set. */
	pthread_mutex_t lock;
	struct pending *held;
};

struct pending {
	struct test_state *st;
	struct pending *prev, *next;	/* in st->held */
	double delay;
	gopro_request_id id;
	char body[300];
	size_t len;
	ev_timer timer;
	pthread_t thread;
	bool has_thread;
	bool finished;			/* its thread is done: join it */
};

static const char *
version_tag(void)
{
	return MOD_VERSION == 1 ? "v1" : "v2";
}

/* "<version>:<body>" into p->body-sized buffers. */
static void
reply_text(struct test_state *st, gopro_request_id id, const char *body)
{
	char out[400];
	int n = snprintf(out, sizeof(out), "%s:%s", version_tag(), body);

	st->api->complete(id, 0x10, out, (size_t)n);
}

static struct pending *
pending_new(struct test_state *st, const struct gopro_request *req)
{
	struct pending *p = calloc(1, sizeof(*p));
	size_t n = req->len < sizeof(p->body) - 1 ? req->len :
	    sizeof(p->body) - 1;

	if (p == NULL)
		abort();
	p->st = st;
	p->id = req->id;
	memcpy(p->body, req->body, n);
	p->len = n;
	return p;
}

static void *
thread_main(void *arg)
{
	struct pending *p = arg;

	if (p->delay > 0)
		usleep((useconds_t)(p->delay * 1e6));
	reply_text(p->st, p->id, p->body);
	pthread_mutex_lock(&p->st->lock);
	p->finished = true;
	pthread_mutex_unlock(&p->st->lock);
	return NULL;
}

static void
held_add(struct test_state *st, struct pending *p)
{
	p->next = st->held;
	if (st->held != NULL)
		st->held->prev = p;
	st->held = p;
}

static void
held_remove(struct test_state *st, struct pending *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		st->held = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	free(p);
}

/* Join the threads that are done (loop thread), so none piles up. */
static void
reap_threads(struct test_state *st)
{
	struct pending *p, *next;
	bool done;

	for (p = st->held; p != NULL; p = next) {
		next = p->next;
		pthread_mutex_lock(&st->lock);
		done = p->has_thread && p->finished;
		pthread_mutex_unlock(&st->lock);
		if (done) {
			pthread_join(p->thread, NULL);
			held_remove(st, p);
		}
	}
}

static void
offload_work(void *arg)
{
	struct pending *p = arg;

	usleep(1000);	/* the blocking work */
	strcat(p->body, "+work");
}

static void
offload_done(void *arg)
{
	struct pending *p = arg;

	reply_text(p->st, p->id, p->body);
	free(p);
}

static void
echo_done(void *arg)
{
	struct pending *p = arg;
	struct iovec iov[2] = { { "Server says: ", 13 },
		{ p->body, p->len } };

	p->st->api->completev(p->id, 0x01, iov, 2);
	free(p);
}

static void
nothing(void *arg)
{
	(void)arg;
}

static void
late_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct pending *p = t->data;

	(void)revents;
	ev_timer_stop(loop, t);
	reply_text(p->st, p->id, p->body);
	held_remove(p->st, p);
}

static void
whoami(struct test_state *st, const struct gopro_request *req)
{
	char addr[64] = "?", out[200];
	const struct sockaddr *sa = st->api->client_addr(req->conn, NULL);
	const char *user = st->api->user(req->conn);
	int n;

	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    addr, sizeof(addr));
	n = snprintf(out, sizeof(out), "%s %s", addr, user ? user : "-");
	st->api->complete(req->id, 0x10, out, (size_t)n);
}

static void
tlsid(struct test_state *st, const struct gopro_request *req)
{
	const char *id = NULL;

	if (st->api->size >= offsetof(struct gopro_module_api, tls_identity) +
	    sizeof(st->api->tls_identity))
		id = st->api->tls_identity(req->conn);
	reply_text(st, req->id, id != NULL ? id : "-");
}

/* What a module whose work could outlast the drain does. */
static void
drain(struct test_state *st, const struct gopro_request *req)
{
	char body[300];
	size_t n = req->len < sizeof(body) - 1 ? req->len : sizeof(body) - 1;

	if (st->api->drain_left() >= 0) {
		st->api->complete_error(req->id, GOPRO_MODULE_ERR_UNAVAILABLE,
		    "draining: send it again on a new connection");
		return;
	}
	memcpy(body, req->body, n);
	body[n] = '\0';
	reply_text(st, req->id, body);
}

static void
test_request(void *state, const struct gopro_request *req)
{
	struct test_state *st = state;
	const char *m = st->mode;
	struct pending *p;

	reap_threads(st);
	if (strcmp(m, "sync") == 0 || strcmp(m, "twice") == 0 ||
	    strcmp(m, "block") == 0) {
		char body[300];
		size_t n = req->len < sizeof(body) - 1 ? req->len :
		    sizeof(body) - 1;

		if (strcmp(m, "block") == 0)
			usleep((useconds_t)(st->delay * 1e6));
		memcpy(body, req->body, n);
		body[n] = '\0';
		reply_text(st, req->id, body);
		if (strcmp(m, "twice") == 0)
			reply_text(st, req->id, "again");
	} else if (strcmp(m, "thread") == 0 ||
	    strcmp(m, "thread_late") == 0) {
		p = pending_new(st, req);
		if (strcmp(m, "thread_late") == 0)
			p->delay = st->delay;
		if (pthread_create(&p->thread, NULL, thread_main, p) != 0)
			abort();
		p->has_thread = true;
		held_add(st, p);
	} else if (strcmp(m, "offload") == 0) {
		p = pending_new(st, req);
		if (st->api->offload(offload_work, p, offload_done) < 0)
			abort();
	} else if (strcmp(m, "echo_offload") == 0) {
		p = pending_new(st, req);
		if (st->api->offload(nothing, p, echo_done) < 0)
			abort();
	} else if (strcmp(m, "late") == 0) {
		p = pending_new(st, req);
		ev_timer_init(&p->timer, late_cb, st->delay, 0);
		p->timer.data = p;
		ev_timer_start(st->api->loop(), &p->timer);
		held_add(st, p);
	} else if (strcmp(m, "big") == 0) {
		char *big = calloc(1, st->size);

		st->api->complete(req->id, 0x10, big, st->size);
		free(big);
	} else if (strcmp(m, "reserved") == 0) {
		st->api->complete(req->id, 0x05, "x", 1);
	} else if (strcmp(m, "whoami") == 0) {
		whoami(st, req);
	} else if (strcmp(m, "tlsid") == 0) {
		tlsid(st, req);
	} else if (strcmp(m, "drain") == 0) {
		drain(st, req);
	} else if (strcmp(m, "crash") == 0) {
		abort();
	}
	/* "never": nothing. */
}

static int
test_check(const union gopro_option_value *opts, char *err, size_t errlen)
{
	static const char *const modes[] = { "sync", "thread", "offload",
		"late", "never", "twice", "big", "reserved", "whoami", "crash",
		"block", "echo_offload", "crash_init", "thread_late", "tlsid", "drain" };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(opts[0].s, modes[i]) == 0)
			return 0;
	snprintf(err, errlen, "mode \"%s\" is not one of sync, thread, ...",
	    opts[0].s);
	return -1;
}

static int
test_init(const struct gopro_module_api *api,
    const union gopro_option_value *opts, void **state, char *err,
    size_t errlen)
{
	struct test_state *st = calloc(1, sizeof(*st));

	(void)err;
	(void)errlen;
	if (st == NULL || api->size < sizeof(*api))
		return -1;
	if (strcmp(opts[0].s, "crash_init") == 0)
		abort();
	st->api = api;
	st->mode = opts[0].s;
	st->delay = opts[1].seconds;
	st->size = opts[2].bytes;
	pthread_mutex_init(&st->lock, NULL);
	*state = st;
	return 0;
}

/* No code of this module may run once this returns: join, stop, free. */
static void
test_exit(void *state)
{
	struct test_state *st = state;

	while (st->held != NULL) {
		struct pending *p = st->held;

		if (p->has_thread)
			pthread_join(p->thread, NULL);
		else
			ev_timer_stop(st->api->loop(), &p->timer);
		held_remove(st, p);
	}
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static const uint8_t test_commands[] = { 0x10 };

static const struct gopro_module_option test_options[] = {
	{ "mode", GOPRO_OPTION_STRING, "sync", 0, 16, "what to do" },
	{ "delay", GOPRO_OPTION_TIME, "0", 0, 60, "for late, thread_late and block" },
	{ "size", GOPRO_OPTION_SIZE, "0", 0, 1 << 30, "for big" },
};

GOPRO_MODULE_EXPORT const struct gopro_module gopro_module = {
#ifdef MOD_BAD_ABI
	.size = sizeof(struct gopro_module),
	.abi_major = GOPRO_MODULE_ABI_MAJOR + 1,
#else
	GOPRO_MODULE_HEADER,
#endif
	.name = "test",
	.commands = test_commands,
	.ncommands = 1,
	.options = test_options,
	.noptions = 3,
	.check = test_check,
	.worker_init = test_init,
	.request = test_request,
	.worker_exit = test_exit,
};
