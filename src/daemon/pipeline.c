/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pipeline.c - requests handed to modules, replies released in order,
 * deadlines, cancellation and completions from other threads.  See
 * pipeline.h for the model.
 *
 * A request lives in a slot of a table that only grows (chunks of
 * CHUNK_SLOTS, never moved, so the lists can point into them) and is
 * reused through a free list: no allocation per request once the table
 * is warm.  Only a reply that must wait for an earlier one is copied.
 *
 * A request is unlinked from its queue before its reply is emitted, so an
 * owner that closes the connection from inside emit (no memory for the
 * reply) finds a queue that is still consistent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gopro/gopro.h"
#include "pipeline.h"

#define CHUNK_SHIFT 8
#define CHUNK_SLOTS (1u << CHUNK_SHIFT)
#define MAX_SLOTS (1u << 24)    /* 16M requests in flight per worker */

struct pipeline_post {
	struct pipeline_post *next;
	gopro_request_id id;
	uint8_t command;
	uint16_t code;
	size_t len;
	uint8_t data[];            /* len bytes, then a NUL for ERROR text */
};

/*
 * The pipeline whose loop runs on this thread: pipeline_on_loop is one
 * thread-local read, cheap enough for every completion.
 */
static _Thread_local const struct pipeline *thread_pipeline;

static const char TIMEOUT_TEXT[] = "request timeout";
static const char INVALID_TEXT[] = "invalid reply from module";

/* ------------------------------------------------------------ slots */

static gopro_request_id
req_id(const struct pipeline_req *r)
{
	return (uint64_t)r->seq << 32 | r->idx;
}

int
pipeline_grow(struct pipeline *pl)
{
	struct pipeline_req **chunks, *c;
	size_t base = pl->nchunks * CHUNK_SLOTS;

	if (base + CHUNK_SLOTS > MAX_SLOTS) {
		errno = ENOMEM;
		return -1;
	}
	chunks = realloc(pl->chunks, (pl->nchunks + 1) * sizeof(*chunks));
	if (chunks == NULL)
		return -1;
	pl->chunks = chunks;
	if ((c = calloc(CHUNK_SLOTS, sizeof(*c))) == NULL)
		return -1;
	chunks[pl->nchunks++] = c;
	for (unsigned i = CHUNK_SLOTS; i-- > 0;) {
		c[i].idx = (uint32_t)(base + i);
		c[i].seq = 1;
		c[i].next_free = pl->free_list;
		pl->free_list = &c[i];
	}
	return 0;
}

static struct pipeline_req *
req_alloc(struct pipeline *pl)
{
	struct pipeline_req *r;

	if (pl->free_list == NULL && pipeline_grow(pl) < 0)
		return NULL;
	r = pl->free_list;
	pl->free_list = r->next_free;
	return r;
}

static void
req_free(struct pipeline *pl, struct pipeline_req *r)
{
	/* Only a held reply has a body: no call on the common path. */
	if (r->body != NULL) {
		free(r->body);
		r->body = NULL;
		r->len = 0;
	}
	r->state = PL_REQ_FREE;
	r->q = NULL;
	pipeline_req_retire(r);
	r->next_free = pl->free_list;
	pl->free_list = r;
}

static struct pipeline_req *
req_find(const struct pipeline *pl, gopro_request_id id)
{
	uint32_t idx = (uint32_t)id, seq = (uint32_t)(id >> 32);
	struct pipeline_req *r;

	if ((idx >> CHUNK_SHIFT) >= pl->nchunks)
		return NULL;
	r = &pl->chunks[idx >> CHUNK_SHIFT][idx & (CHUNK_SLOTS - 1)];
	return r->seq == seq && r->state == PL_REQ_PENDING ? r : NULL;
}

/* ------------------------------------------------------------ release */

/* One writer (this worker), readers in other processes: relaxed atomics. */
static void
bump(uint64_t *v, int64_t by)
{
	__atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + (uint64_t)by,
	    __ATOMIC_RELAXED);
}

static void
count(struct pipeline_handler *h, enum stats_module_counter which)
{
	if (h != NULL && h->stats != NULL)
		bump(&h->stats->counter[which], 1);
}

/* r's latency, from its dispatch to its answer, into the histogram. */
static inline void
observe(const struct pipeline_req *r)
{
	struct pipeline_handler *h = r->h;

	stats_module_observe(h->stats, (uint64_t)((ev_now(h->pl->loop) -
	    (r->deadline - h->timeout)) * 1e9));
}

/*
 * An answer from inside the request callback: its latency is 0, since
 * the loop's clock (ev_now) has not moved since the dispatch.
 */
static inline void
observe_now(struct pipeline_handler *h)
{
	if (h->stats != NULL)
		bump(&h->stats->hist[0], 1);
}

/* r has its answer: it leaves the handler's deadline list. */
static void
leave_pending(struct pipeline_req *r)
{
	struct pipeline_handler *h = r->h;

	if (r->in_pending) {
		TAILQ_REMOVE(&h->pending, r, hlink);
		r->in_pending = false;
	}
	if (h != NULL && h->stats != NULL) {
		bump(&h->stats->inflight, -1);
		observe(r);
	}
}

static void
emit_held(struct pipeline *pl, struct pipeline_queue *q,
    struct pipeline_req *r)
{
	struct iovec iov = { r->body, r->len };

	if (r->command == GOPRO_CMD_ERROR)
		pl->ops->emit_error(q->owner, r->code, r->body != NULL ?
		    (const char *)r->body : INVALID_TEXT);
	else
		pl->ops->emit(q->owner, r->command, &iov, r->len > 0 ? 1 : 0,
		    r->len);
}

/* Emit every held reply at the head of q, then tell the owner. */
static void
release_ready(struct pipeline *pl, struct pipeline_queue *q, bool released)
{
	struct pipeline_req *r;

	while ((r = TAILQ_FIRST(&q->reqs)) != NULL && r->state == PL_REQ_DONE) {
		TAILQ_REMOVE(&q->reqs, r, qlink);
		q->n--;
		emit_held(pl, q, r);
		req_free(pl, r);
		released = true;
	}
	if (released)
		pl->ops->released(q->owner);
}

static size_t
iov_total(const struct iovec *iov, int iovcnt)
{
	size_t n = 0;

	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* Keep a copy of the reply until r's turn; on ENOMEM keep an ERROR 10. */
static void
hold_copy(struct pipeline_req *r, uint8_t command, uint16_t code,
    const struct iovec *iov, int iovcnt)
{
	size_t len = iov_total(iov, iovcnt), off = 0;

	r->state = PL_REQ_DONE;
	r->command = command;
	r->code = code;
	if (len == 0 && command != GOPRO_CMD_ERROR)
		return;
	if ((r->body = malloc(len + 1)) == NULL) {
		r->command = GOPRO_CMD_ERROR;
		r->code = GOPRO_MODULE_ERR_UNAVAILABLE;
		return;
	}
	for (int i = 0; i < iovcnt; i++) {
		memcpy(r->body + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	r->body[len] = '\0';
	r->len = len;
}

static inline void
emit_now(struct pipeline *pl, struct pipeline_queue *q, uint8_t command,
    uint16_t code, const struct iovec *iov, int iovcnt)
{
	if (command == GOPRO_CMD_ERROR)
		pl->ops->emit_error(q->owner, code, iovcnt > 0 ?
		    iov[0].iov_base : "");
	else
		pl->ops->emit(q->owner, command, iov, iovcnt,
		    iov_total(iov, iovcnt));
}

/*
 * Answer r: straight to the owner when r is the head of its queue,
 * otherwise held.  For an ERROR, iov holds the text.  The request being
 * dispatched into an empty queue (pl->inline_req) is in no list and
 * counted in no gauge yet: its answer goes out with nothing to undo, and
 * pipeline_dispatch frees it when the callback returns (PL_REQ_DONE tells it
 * that this answer was counted here).
 */
static void
answer(struct pipeline *pl, struct pipeline_req *r, uint8_t command,
    uint16_t code, const struct iovec *iov, int iovcnt)
{
	struct pipeline_queue *q = r->q;

	if (r == pl->inline_req) {
		pl->inline_req = NULL;
		r->state = PL_REQ_DONE;
		observe_now(r->h);
		emit_now(pl, q, command, code, iov, iovcnt);
		return;
	}
	leave_pending(r);
	if (TAILQ_FIRST(&q->reqs) != r) {
		hold_copy(r, command, code, iov, iovcnt);
		return;
	}
	TAILQ_REMOVE(&q->reqs, r, qlink);
	q->n--;
	req_free(pl, r);
	emit_now(pl, q, command, code, iov, iovcnt);
	release_ready(pl, q, true);
}

static void
answer_error(struct pipeline *pl, struct pipeline_req *r, uint16_t code,
    const char *text)
{
	struct iovec iov = { (void *)(uintptr_t)text, strlen(text) };

	answer(pl, r, GOPRO_CMD_ERROR, code, &iov, 1);
}

/* ------------------------------------------------------------ deadlines */

static void
arm(struct pipeline_handler *h)
{
	struct pipeline_req *r = TAILQ_FIRST(&h->pending);
	struct ev_loop *loop = h->pl->loop;
	double after;

	if (r == NULL || ev_is_active(&h->timer))
		return;
	after = r->deadline - ev_now(loop);
	ev_timer_set(&h->timer, after > 0 ? after : 0, 0);
	ev_timer_start(loop, &h->timer);
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct pipeline_handler *h = t->data;
	struct pipeline_req *r;
	gopro_request_id id;

	(void)revents;
	while ((r = TAILQ_FIRST(&h->pending)) != NULL &&
	    r->deadline <= ev_now(loop)) {
		id = req_id(r);
		count(h, STATS_MOD_timeouts);
		answer_error(h->pl, r, GOPRO_MODULE_ERR_REQUEST_TIMEOUT,
		    TIMEOUT_TEXT);
		/* Answered for it: the module may stop working on it. */
		if (h->cancel != NULL)
			h->cancel(h->state, id);
	}
	arm(h);
}

/* ------------------------------------------------------------ public */

static void
wake_cb(struct ev_loop *loop, ev_async *a, int revents);

void
pipeline_init(struct pipeline *pl, struct ev_loop *loop,
    const struct pipeline_ops *ops, uint32_t max_reply)
{
	memset(pl, 0, sizeof(*pl));
	pl->loop = loop;
	pl->ops = ops;
	pl->max_reply = max_reply;
	TAILQ_INIT(&pl->cancelled);
	thread_pipeline = pl;
	pthread_mutex_init(&pl->lock, NULL);
	pl->posted_tail = &pl->posted;
	ev_async_init(&pl->wake, wake_cb);
	pl->wake.data = pl;
	ev_async_start(loop, &pl->wake);
	/* The wakeup alone must not keep a loop alive. */
	ev_unref(loop);
}

void
pipeline_cleanup(struct pipeline *pl)
{
	struct pipeline_post *p, *next;

	pipeline_run_cancels(pl);
	pipeline_flush_stats(pl);
	ev_ref(pl->loop);
	ev_async_stop(pl->loop, &pl->wake);
	for (p = pl->posted; p != NULL; p = next) {
		next = p->next;
		free(p);
	}
	for (size_t c = 0; c < pl->nchunks; c++) {
		for (unsigned i = 0; i < CHUNK_SLOTS; i++)
			free(pl->chunks[c][i].body);
		free(pl->chunks[c]);
	}
	free(pl->chunks);
	pthread_mutex_destroy(&pl->lock);
	if (thread_pipeline == pl)
		thread_pipeline = NULL;
	memset(pl, 0, sizeof(*pl));
}

void
pipeline_handler_init(struct pipeline *pl, struct pipeline_handler *h)
{
	h->pl = pl;
	TAILQ_INIT(&h->pending);
	ev_init(&h->timer, deadline_cb);
	h->timer.data = h;
	h->answered_inline = 0;
	h->next = pl->handlers;
	pl->handlers = h;
}

static void
flush_handler(struct pipeline_handler *h)
{
	uint64_t n = h->answered_inline;

	if (n == 0)
		return;
	h->answered_inline = 0;
	if (h->stats == NULL)
		return;
	bump(&h->stats->counter[STATS_MOD_requests], (int64_t)n);
	bump(&h->stats->counter[STATS_MOD_replies], (int64_t)n);
	bump(&h->stats->hist[0], (int64_t)n);
}

void
pipeline_flush_stats(struct pipeline *pl)
{
	for (struct pipeline_handler *h = pl->handlers; h != NULL; h = h->next)
		flush_handler(h);
}

void
pipeline_handler_cleanup(struct pipeline_handler *h)
{
	struct pipeline_handler **p;

	if (h->pl == NULL)
		return;
	ev_timer_stop(h->pl->loop, &h->timer);
	flush_handler(h);
	for (p = &h->pl->handlers; *p != NULL; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			break;
		}
}

void
pipeline_queue_init(struct pipeline_queue *q, void *owner)
{
	TAILQ_INIT(&q->reqs);
	q->n = 0;
	q->limit = 1;
	q->owner = owner;
}

/* r joins the tail of q and, as pending, the module's in-flight gauge. */
static void
enqueue(struct pipeline_queue *q, struct pipeline_req *r)
{
	TAILQ_INSERT_TAIL(&q->reqs, r, qlink);
	q->n++;
	if (r->h->stats != NULL)
		bump(&r->h->stats->inflight, 1);
}

/* r waits for its answer: the deadline list, and the timer for it. */
static void
make_pending(struct pipeline *pl, struct pipeline_handler *h,
    struct pipeline_req *r)
{
	r->deadline = ev_now(pl->loop) + h->timeout;
	TAILQ_INSERT_TAIL(&h->pending, r, hlink);
	r->in_pending = true;
	arm(h);
}

/* pipeline_dispatch's other case: a request behind others in its queue. */
int
pipeline_dispatch_queued(struct pipeline *pl, struct pipeline_queue *q,
    struct pipeline_handler *h, uint8_t command, const uint8_t *body,
    size_t len, struct gopro_conn *conn)
{
	struct pipeline_req *r = req_alloc(pl);
	struct gopro_request req;

	if (r == NULL)
		return -1;
	r->state = PL_REQ_PENDING;
	r->q = q;
	r->h = h;
	q->limit = h->max_inflight;
	req = (struct gopro_request){ .id = req_id(r), .command = command,
		.body = body, .len = len, .conn = conn };
	count(h, STATS_MOD_requests);
	enqueue(q, r);
	h->request(h->state, &req);
	/* Answered at once (and held): no deadline to keep. */
	if ((uint32_t)(req.id >> 32) == r->seq && r->state == PL_REQ_PENDING)
		make_pending(pl, h, r);
	return 0;
}

void
pipeline_inline_after(struct pipeline *pl, struct pipeline_req *r,
    struct pipeline_req *outer)
{
	struct pipeline_handler *h = r->h;
	bool answered = pl->inline_req != r;

	pl->inline_req = outer;
	count(h, STATS_MOD_requests);
	if (answered) {
		req_free(pl, r);
		return;
	}
	/* Only a queue that holds requests is ever full. */
	r->q->limit = h->max_inflight;
	enqueue(r->q, r);
	make_pending(pl, h, r);
}

static int
hold_core(struct pipeline *pl, struct pipeline_queue *q, uint8_t command,
    uint16_t code, const struct iovec *iov, int iovcnt)
{
	struct pipeline_req *r = req_alloc(pl);

	if (r == NULL)
		return -1;
	r->q = q;
	r->h = NULL;
	hold_copy(r, command, code, iov, iovcnt);
	TAILQ_INSERT_TAIL(&q->reqs, r, qlink);
	q->n++;
	return 0;
}

int
pipeline_hold(struct pipeline *pl, struct pipeline_queue *q,
    uint8_t command, const void *body, size_t len)
{
	struct iovec iov = { (void *)(uintptr_t)body, len };

	return hold_core(pl, q, command, 0, &iov, len > 0 ? 1 : 0);
}

int
pipeline_hold_error(struct pipeline *pl, struct pipeline_queue *q,
    uint16_t code, const char *text)
{
	struct iovec iov = { (void *)(uintptr_t)text, strlen(text) };

	return hold_core(pl, q, GOPRO_CMD_ERROR, code, &iov, 1);
}

/* A module's reply must be MESSAGE or 0x10-0xFF, within max_reply. */
static int
reply_check(const struct pipeline *pl, uint8_t command, size_t len)
{
	if (command != GOPRO_CMD_MESSAGE && command < 0x10) {
		errno = EINVAL;
		return -1;
	}
	if (len > pl->max_reply) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

/* Not pending any more (late, twice, cancelled, unknown): dropped. */
static void
count_late(const struct pipeline *pl, gopro_request_id id)
{
	uint32_t idx = (uint32_t)id;

	if ((idx >> CHUNK_SHIFT) < pl->nchunks)
		count(pl->chunks[idx >> CHUNK_SHIFT][idx &
		    (CHUNK_SLOTS - 1)].h, STATS_MOD_late);
}

/*
 * The common case on its own: the request being dispatched into an empty
 * queue, answered from its callback with a valid reply, goes straight to
 * the owner.  It only marks the request answered (PL_REQ_FREE: no completion
 * finds it again); pipeline_dispatch, which has it at hand, counts the
 * reply and frees it when the callback returns.  False when it is
 * anything else.
 */
static inline bool
complete_inline(struct pipeline *pl, gopro_request_id id, uint8_t command,
    const struct iovec *iov, int iovcnt)
{
	struct pipeline_req *r = pl->inline_req;
	size_t len = 0;

	if (r == NULL || req_id(r) != id || iovcnt < 0 ||
	    (iovcnt > 0 && iov == NULL))
		return false;
	if (command < 0x10 && command != GOPRO_CMD_MESSAGE)
		return false;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (len > pl->max_reply)
		return false;
	pl->inline_req = NULL;
	r->state = PL_REQ_FREE;
	pl->ops->emit(r->q->owner, command, iov, iovcnt, len);
	return true;
}

/* Every other case: held, late, invalid. */
static int
complete_slow(struct pipeline *pl, gopro_request_id id, uint8_t command,
    const struct iovec *iov, int iovcnt)
{
	struct pipeline_req *r;
	int saved;

	if ((r = req_find(pl, id)) == NULL) {
		count_late(pl, id);
		return 0;
	}
	if (iovcnt < 0 || (iovcnt > 0 && iov == NULL) ||
	    reply_check(pl, command, iov_total(iov, iovcnt)) < 0) {
		saved = iovcnt < 0 || (iovcnt > 0 && iov == NULL) ?
		    EINVAL : errno;
		count(r->h, STATS_MOD_invalid);
		answer_error(pl, r, GOPRO_MODULE_ERR_UNAVAILABLE,
		    INVALID_TEXT);
		errno = saved;
		return -1;
	}
	count(r->h, STATS_MOD_replies);
	answer(pl, r, command, 0, iov, iovcnt);
	return 0;
}

/* Inline in both entry points: the fast case must not cost a call. */
static inline int
complete(struct pipeline *pl, gopro_request_id id, uint8_t command,
    const struct iovec *iov, int iovcnt)
{
	if (complete_inline(pl, id, command, iov, iovcnt))
		return 0;
	return complete_slow(pl, id, command, iov, iovcnt);
}

int
pipeline_complete(struct pipeline *pl, gopro_request_id id, uint8_t command,
    const struct iovec *iov, int iovcnt)
{
	return complete(pl, id, command, iov, iovcnt);
}

int
pipeline_complete_error(struct pipeline *pl, gopro_request_id id,
    uint16_t code, const char *text)
{
	struct pipeline_req *r = req_find(pl, id);
	char cut[GOPRO_TEXT_MAX + 1];

	if (r == NULL) {
		count_late(pl, id);
		return 0;
	}
	count(r->h, code == GOPRO_MODULE_ERR_UNAVAILABLE ?
	    STATS_MOD_errors_unavailable : STATS_MOD_errors_other);
	snprintf(cut, sizeof(cut), "%s", text != NULL ? text : "");
	answer_error(pl, r, code, cut);
	return 0;
}

int
pipeline_complete_any(struct pipeline *pl, gopro_request_id id,
    uint8_t command, const struct iovec *iov, int iovcnt)
{
	if (thread_pipeline != pl)
		return pipeline_post(pl, id, command, 0, iov, iovcnt);
	return complete(pl, id, command, iov, iovcnt);
}

bool
pipeline_on_loop(const struct pipeline *pl)
{
	return thread_pipeline == pl;
}

int
pipeline_post(struct pipeline *pl, gopro_request_id id, uint8_t command,
    uint16_t code, const struct iovec *iov, int iovcnt)
{
	size_t len = iov_total(iov, iovcnt), off = 0;
	struct pipeline_post *p;

	/* Checked by the loop; a huge body is not worth copying first. */
	if (len > pl->max_reply)
		len = 0, command = 0, iovcnt = 0;
	if ((p = malloc(sizeof(*p) + len + 1)) == NULL)
		return -1;
	p->next = NULL;
	p->id = id;
	p->command = command;
	p->code = code;
	p->len = len;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(p->data + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	p->data[len] = '\0';
	pthread_mutex_lock(&pl->lock);
	*pl->posted_tail = p;
	pl->posted_tail = &p->next;
	pthread_mutex_unlock(&pl->lock);
	ev_async_send(pl->loop, &pl->wake);
	return 0;
}

static void
apply_post(struct pipeline *pl, const struct pipeline_post *p)
{
	struct iovec iov = { (void *)(uintptr_t)p->data, p->len };

	if (p->command == GOPRO_CMD_ERROR)
		pipeline_complete_error(pl, p->id, p->code,
		    (const char *)p->data);
	else
		pipeline_complete(pl, p->id, p->command, &iov,
		    p->len > 0 ? 1 : 0);
}

static void
wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct pipeline *pl = a->data;
	struct pipeline_post *p, *next;

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&pl->lock);
	p = pl->posted;
	pl->posted = NULL;
	pl->posted_tail = &pl->posted;
	pthread_mutex_unlock(&pl->lock);
	for (; p != NULL; p = next) {
		next = p->next;
		apply_post(pl, p);
		free(p);
	}
}

void
pipeline_queue_cancel(struct pipeline *pl, struct pipeline_queue *q)
{
	struct pipeline_req *r;

	while ((r = TAILQ_FIRST(&q->reqs)) != NULL) {
		TAILQ_REMOVE(&q->reqs, r, qlink);
		q->n--;
		if (r->state != PL_REQ_PENDING) {
			req_free(pl, r);
			continue;
		}
		leave_pending(r);
		count(r->h, STATS_MOD_cancelled);
		r->cancel_id = req_id(r);
		/* From now on a completion of the old id is late. */
		pipeline_req_retire(r);
		r->state = PL_REQ_CANCELLED;
		TAILQ_INSERT_TAIL(&pl->cancelled, r, hlink);
	}
}

void
pipeline_run_cancels(struct pipeline *pl)
{
	struct pipeline_req *r;

	while ((r = TAILQ_FIRST(&pl->cancelled)) != NULL) {
		TAILQ_REMOVE(&pl->cancelled, r, hlink);
		if (r->h->cancel != NULL)
			r->h->cancel(r->h->state, r->cancel_id);
		req_free(pl, r);
	}
}
