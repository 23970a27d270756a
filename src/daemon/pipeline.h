/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pipeline.h - the request pipeline of a worker: requests handed to a
 * module, and their replies released in request order.
 *
 * The protocol has no request ids, so a connection's replies must leave in
 * the order of its requests.  Each connection has a queue of the requests
 * it dispatched and whose reply has not been released yet.  A module
 * completes a request whenever it likes (at once, later on the loop, or
 * from a thread through pipeline_post); the reply of the queue's head goes
 * straight to the connection, a later one is held (copied) until every
 * request before it is answered.  The core's own replies (HEARTBEAT,
 * LOGIN_ACK, ERROR) take their turn the same way while the queue is not
 * empty.
 *
 * Every request has a deadline (the handler's timeout): when it passes,
 * the host answers ERROR 11 in its place and tells the module to cancel.
 * Requests are named by a 64-bit id (slot index and a sequence number
 * bumped every time the slot is reused), so a completion that comes late,
 * twice or for a cancelled request finds no match and is dropped and
 * counted: nothing is answered twice, nothing is used after free.
 *
 * Nothing here knows struct conn: a queue's owner is told through the ops
 * (emit a reply, the queue shrank), which the unit tests provide too.
 * Every function runs on the loop's thread but pipeline_post.
 */
#ifndef GOPRO_PIPELINE_H
#define GOPRO_PIPELINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include <ev.h>

#include "gopro/module.h"
#include "stats.h"

struct pipeline;
struct pipeline_req;

TAILQ_HEAD(pipeline_req_list, pipeline_req);

enum pipeline_req_state {
	PL_REQ_FREE = 0,
	PL_REQ_PENDING,    /* handed to a module, no reply yet */
	PL_REQ_DONE,       /* reply held until its turn */
	PL_REQ_CANCELLED,  /* client gone, module's cancel still due */
};

/*
 * A request in the table of a worker (private to pipeline.c; here for
 * the inline pipeline_dispatch).
 */
struct pipeline_req {
	uint32_t idx;
	uint32_t seq;              /* bumped on every release */
	uint8_t state;             /* enum pipeline_req_state */
	uint8_t command;           /* of the held reply */
	uint16_t code;             /* of a held ERROR */
	bool in_pending;           /* in h->pending */
	struct pipeline_queue *q;
	struct pipeline_handler *h;/* NULL for a core reply */
	TAILQ_ENTRY(pipeline_req) qlink;
	TAILQ_ENTRY(pipeline_req) hlink;  /* h->pending or pl->cancelled */
	ev_tstamp deadline;
	gopro_request_id cancel_id;
	uint8_t *body;             /* held reply, or ERROR text (NUL-ended) */
	size_t len;
	struct pipeline_req *next_free;
};

/* Its old id never matches again (0 is skipped: no id is 0). */
static inline void
pipeline_req_retire(struct pipeline_req *r)
{
	if (++r->seq == 0)
		r->seq = 1;
}

/* A module as the pipeline of one worker sees it. */
struct pipeline_handler {
	void (*request)(void *state, const struct gopro_request *req);
	void (*cancel)(void *state, gopro_request_id id);
	void *state;
	double timeout;             /* seconds, > 0 */
	unsigned max_inflight;      /* per connection, >= 1 */
	struct stats_module *stats; /* its counters, in the shared segment */

	/* Private: the handler's pending requests, oldest first. */
	struct pipeline *pl;
	struct pipeline_req_list pending;
	ev_timer timer;
	/*
	 * Requests answered inside their request callback since the last
	 * pipeline_flush_stats: counted in the shared segment (requests,
	 * replies, the histogram's first bucket) before the replies are
	 * written, instead of three times per request.
	 */
	uint64_t answered_inline;
	struct pipeline_handler *next;  /* in pl->handlers */
};

/* How the pipeline reaches a queue's owner (the connection). */
struct pipeline_ops {
	/* Append one reply frame (a body of len bytes) to the owner's output. */
	void (*emit)(void *owner, uint8_t command, const struct iovec *iov,
	    int iovcnt, size_t len);
	void (*emit_error)(void *owner, uint16_t code, const char *text);
	/*
	 * The queue shrank (a reply was released); it may now be empty.  A
	 * request answered inside its own request callback while nothing was
	 * before it never entered the queue: its reply is emitted at once and
	 * released is not called.
	 */
	void (*released)(void *owner);
};

/* The requests of one connection, in order. */
struct pipeline_queue {
	struct pipeline_req_list reqs;
	unsigned n;                 /* requests not yet released */
	unsigned limit;             /* max_inflight of the last handler */
	void *owner;
};

struct pipeline {
	struct ev_loop *loop;
	const struct pipeline_ops *ops;
	uint32_t max_reply;         /* largest reply body accepted */

	struct pipeline_req **chunks;
	size_t nchunks;
	struct pipeline_req *free_list;
	struct pipeline_req_list cancelled; /* cancel callbacks still due */
	struct pipeline_handler *handlers;
	/*
	 * The request being dispatched into an empty queue: in no list, so
	 * that its answer from inside the request callback (the common case)
	 * goes straight to the owner.  Saved and restored around the callback,
	 * since a callback that completes another connection's request can
	 * make that connection dispatch its next one.
	 */
	struct pipeline_req *inline_req;

	/* Completions from other threads. */
	pthread_mutex_t lock;
	struct pipeline_post *posted, **posted_tail;
	ev_async wake;
};

void pipeline_init(struct pipeline *pl, struct ev_loop *loop,
    const struct pipeline_ops *ops, uint32_t max_reply);
/* Frees every request; queues must have been cancelled first. */
void pipeline_cleanup(struct pipeline *pl);

void pipeline_handler_init(struct pipeline *pl, struct pipeline_handler *h);
void pipeline_handler_cleanup(struct pipeline_handler *h);
/*
 * Bring the handlers' shared counters up to date (the owner calls it
 * before it writes replies, and once per loop iteration before it sleeps).
 */
void pipeline_flush_stats(struct pipeline *pl);

void pipeline_queue_init(struct pipeline_queue *q, void *owner);
static inline bool
pipeline_queue_empty(const struct pipeline_queue *q)
{
	return q->n == 0;
}
/* Dispatching another request would pass max_inflight. */
static inline bool
pipeline_queue_full(const struct pipeline_queue *q)
{
	return q->n > 0 && q->n >= q->limit;
}

int pipeline_dispatch_queued(struct pipeline *pl, struct pipeline_queue *q,
    struct pipeline_handler *h, uint8_t command, const uint8_t *body,
    size_t len, struct gopro_conn *conn);
/* Grow the slot table: pl->free_list is not empty after 0; -1 (ENOMEM). */
int pipeline_grow(struct pipeline *pl);
/*
 * After the request callback of r, dispatched into an empty queue, when
 * complete_inline did not answer it: answered otherwise, or pending.
 */
void pipeline_inline_after(struct pipeline *pl, struct pipeline_req *r,
    struct pipeline_req *outer);

/*
 * Hand a request to h.  conn is what the module sees as the connection.
 * Returns 0, or -1 (ENOMEM) and nothing was queued.
 *
 * Inline for its common case: into an empty queue, the request waits in
 * no list while the module runs (pl->inline_req); answered at once (the
 * echo module's way, through complete_inline), it went straight out, and
 * all that is left is to count it and give its slot back.  The outer
 * inline request is restored: a callback that completes another
 * connection's request can make that connection dispatch its next one.
 */
static inline int
pipeline_dispatch(struct pipeline *pl, struct pipeline_queue *q,
    struct pipeline_handler *h, uint8_t command, const uint8_t *body,
    size_t len, struct gopro_conn *conn)
{
	struct pipeline_req *r, *outer = pl->inline_req;
	struct gopro_request req;

	if (q->n > 0)
		return pipeline_dispatch_queued(pl, q, h, command, body, len,
		    conn);
	if (pl->free_list == NULL && pipeline_grow(pl) < 0)
		return -1;
	r = pl->free_list;
	pl->free_list = r->next_free;
	r->state = PL_REQ_PENDING;
	r->q = q;
	r->h = h;
	req = (struct gopro_request){ .id = (uint64_t)r->seq << 32 | r->idx,
		.command = command, .body = body, .len = len, .conn = conn };
	pl->inline_req = r;
	h->request(h->state, &req);
	if (pl->inline_req == r || r->state != PL_REQ_FREE) {
		pipeline_inline_after(pl, r, outer);
		return 0;
	}
	pl->inline_req = outer;
	h->answered_inline++;
	/* As req_free, but it held no copy and is marked free already. */
	pipeline_req_retire(r);
	r->next_free = pl->free_list;
	pl->free_list = r;
	return 0;
}

/*
 * The core's own reply, behind the requests still pending in q (call only
 * when q is not empty).  Returns 0 or -1 (ENOMEM).
 */
int pipeline_hold(struct pipeline *pl, struct pipeline_queue *q,
    uint8_t command, const void *body, size_t len);
int pipeline_hold_error(struct pipeline *pl, struct pipeline_queue *q,
    uint16_t code, const char *text);

/*
 * A module's reply (loop thread).  command 0x04 is an ERROR with code and
 * text.  Returns 0 when taken or dropped as late, -1 when it was refused
 * and ERROR 10 sent instead (errno EINVAL or EMSGSIZE).
 */
int pipeline_complete(struct pipeline *pl, gopro_request_id id,
    uint8_t command, const struct iovec *iov, int iovcnt);
int pipeline_complete_error(struct pipeline *pl, gopro_request_id id,
    uint16_t code, const char *text);

/*
 * pipeline_complete on the loop's thread, pipeline_post from any other:
 * the module API's completev.
 */
int pipeline_complete_any(struct pipeline *pl, gopro_request_id id,
    uint8_t command, const struct iovec *iov, int iovcnt);

/* The same from any thread: copied and queued, applied on the loop. */
int pipeline_post(struct pipeline *pl, gopro_request_id id, uint8_t command,
    uint16_t code, const struct iovec *iov, int iovcnt);
/* Is the caller on the loop's thread? */
bool pipeline_on_loop(const struct pipeline *pl);

/*
 * The connection is going away: every request of q is dropped, the
 * pending ones are counted as cancelled and their modules told at the
 * next pipeline_run_cancels (a safe point, not inside a callback chain).
 */
void pipeline_queue_cancel(struct pipeline *pl, struct pipeline_queue *q);
void pipeline_run_cancels(struct pipeline *pl);

#endif /* GOPRO_PIPELINE_H */
