/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_pipeline.c - unit tests of the request pipeline (pipeline.c): the
 * in-order release of replies, deadlines, cancellation and exactly-once
 * completion, with a recording owner instead of a connection and a real
 * libev loop.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gopro/gopro.h"
#include "pipeline.h"

/* The owner writes every emitted reply as "cmd:body " or "E<code>:text ". */
struct owner {
	char log[4096];
	unsigned released;
	void (*on_released)(void *arg);  /* what a connection would do next */
	void *arg;
};

static void
owner_emit(void *o, uint8_t command, const struct iovec *iov, int iovcnt,
    size_t len)
{
	struct owner *w = o;
	size_t n = strlen(w->log), total = 0;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	assert_int_equal(len, total);

	n += (size_t)snprintf(w->log + n, sizeof(w->log) - n, "%u:", command);
	for (int i = 0; i < iovcnt; i++)
		n += (size_t)snprintf(w->log + n, sizeof(w->log) - n, "%.*s",
		    (int)iov[i].iov_len, (const char *)iov[i].iov_base);
	snprintf(w->log + n, sizeof(w->log) - n, " ");
}

static void
owner_error(void *o, uint16_t code, const char *text)
{
	struct owner *w = o;
	size_t n = strlen(w->log);

	snprintf(w->log + n, sizeof(w->log) - n, "E%u:%s ", code, text);
}

static void
owner_released(void *o)
{
	struct owner *w = o;

	w->released++;
	if (w->on_released != NULL)
		w->on_released(w->arg);
}

static const struct pipeline_ops ops = {
	owner_emit, owner_error, owner_released,
};

/* A module that remembers its requests and answers only when told. */
struct fake {
	gopro_request_id ids[64];
	unsigned n;
	gopro_request_id cancelled[64];
	unsigned ncancelled;
	bool sync;          /* answer in the request callback */
	bool twice;         /* ... and then once more */
	struct pipeline *pl;
};

static void
fake_request(void *state, const struct gopro_request *req)
{
	struct fake *f = state;
	struct iovec iov = { (void *)(uintptr_t)req->body, req->len };

	f->ids[f->n++] = req->id;
	if (f->sync)
		pipeline_complete(f->pl, req->id, GOPRO_CMD_MESSAGE, &iov, 1);
	if (f->sync && f->twice)
		pipeline_complete(f->pl, req->id, GOPRO_CMD_MESSAGE, &iov, 1);
}

static void
fake_cancel(void *state, gopro_request_id id)
{
	struct fake *f = state;

	f->cancelled[f->ncancelled++] = id;
}

struct fixture {
	struct ev_loop *loop;
	struct pipeline pl;
	struct pipeline_handler h;
	struct pipeline_queue q;
	struct owner owner;
	struct fake fake;
	struct stats_module stats;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	fx->loop = ev_loop_new(EVFLAG_AUTO);
	pipeline_init(&fx->pl, fx->loop, &ops, 1024);
	fx->fake.pl = &fx->pl;
	fx->h = (struct pipeline_handler){ .request = fake_request,
		.cancel = fake_cancel, .state = &fx->fake, .timeout = 5,
		.max_inflight = 4, .stats = &fx->stats };
	pipeline_handler_init(&fx->pl, &fx->h);
	pipeline_queue_init(&fx->q, &fx->owner);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	pipeline_queue_cancel(&fx->pl, &fx->q);
	pipeline_handler_cleanup(&fx->h);
	pipeline_cleanup(&fx->pl);
	ev_loop_destroy(fx->loop);
	free(fx);
	return 0;
}

static void
send_req(struct fixture *fx, const char *body)
{
	assert_int_equal(pipeline_dispatch(&fx->pl, &fx->q, &fx->h,
	    GOPRO_CMD_MESSAGE, (const uint8_t *)body, strlen(body), NULL), 0);
}

static void
reply(struct fixture *fx, unsigned i, const char *body)
{
	struct iovec iov = { (void *)(uintptr_t)body, strlen(body) };

	assert_int_equal(pipeline_complete(&fx->pl, fx->fake.ids[i],
	    GOPRO_CMD_MESSAGE, &iov, 1), 0);
}

static void
test_sync_replies_go_straight_out(void **state)
{
	struct fixture *fx = *state;

	fx->fake.sync = true;
	send_req(fx, "a");
	send_req(fx, "b");
	assert_string_equal(fx->owner.log, "1:a 1:b ");
	assert_true(pipeline_queue_empty(&fx->q));
	/* Counted once per loop iteration, when the loop flushes. */
	pipeline_flush_stats(&fx->pl);
	assert_int_equal(fx->stats.counter[STATS_MOD_requests], 2);
	assert_int_equal(fx->stats.counter[STATS_MOD_replies], 2);
	assert_int_equal(fx->stats.hist[0], 2);
	assert_int_equal(fx->stats.inflight, 0);
	/* A second flush adds nothing. */
	pipeline_flush_stats(&fx->pl);
	assert_int_equal(fx->stats.counter[STATS_MOD_requests], 2);
}

/*
 * The nesting case: the request callback of connection A completes the
 * pending request of connection B, B (released) dispatches its next
 * request, which its module answers at once, and only then does A's
 * callback answer A's request.  Each answer goes to its own connection,
 * nothing is held, lost or counted twice.
 */
struct nest {
	struct fixture *fx;
	struct pipeline_handler ha;
	struct pipeline_queue qb;
	struct owner ob;
	gopro_request_id b1, a1;
	struct stats_module stats_a;
};

static void
nest_b_released(void *arg)
{
	struct nest *n = arg;

	if (!pipeline_queue_empty(&n->qb))
		return;
	n->ob.on_released = NULL;
	n->fx->fake.sync = true;
	assert_int_equal(pipeline_dispatch(&n->fx->pl, &n->qb, &n->fx->h,
	    GOPRO_CMD_MESSAGE, (const uint8_t *)"b2", 2, NULL), 0);
}

static void
nest_a_request(void *state, const struct gopro_request *req)
{
	struct nest *n = state;
	struct iovec b = { "b1", 2 }, a = { "a1", 2 };

	n->a1 = req->id;
	assert_int_equal(pipeline_complete(&n->fx->pl, n->b1,
	    GOPRO_CMD_MESSAGE, &b, 1), 0);
	assert_int_equal(pipeline_complete(&n->fx->pl, req->id,
	    GOPRO_CMD_MESSAGE, &a, 1), 0);
}

static void
test_answer_after_a_nested_dispatch(void **state)
{
	struct fixture *fx = *state;
	struct nest n = { .fx = fx };
	struct iovec again = { "x", 1 };

	n.ha = (struct pipeline_handler){ .request = nest_a_request,
		.state = &n, .timeout = 5, .max_inflight = 4,
		.stats = &n.stats_a };
	pipeline_handler_init(&fx->pl, &n.ha);
	pipeline_queue_init(&n.qb, &n.ob);
	/* B's first request waits at its module. */
	assert_int_equal(pipeline_dispatch(&fx->pl, &n.qb, &fx->h,
	    GOPRO_CMD_MESSAGE, (const uint8_t *)"b", 1, NULL), 0);
	n.b1 = fx->fake.ids[0];
	n.ob.on_released = nest_b_released;
	n.ob.arg = &n;
	assert_int_equal(pipeline_dispatch(&fx->pl, &fx->q, &n.ha,
	    GOPRO_CMD_MESSAGE, (const uint8_t *)"a", 1, NULL), 0);
	assert_string_equal(fx->owner.log, "1:a1 ");
	assert_string_equal(n.ob.log, "1:b1 1:b2 ");
	assert_true(pipeline_queue_empty(&fx->q));
	assert_true(pipeline_queue_empty(&n.qb));
	/* A's id is spent: a second answer is late. */
	assert_int_equal(pipeline_complete(&fx->pl, n.a1, GOPRO_CMD_MESSAGE,
	    &again, 1), 0);
	assert_string_equal(fx->owner.log, "1:a1 ");
	pipeline_flush_stats(&fx->pl);
	assert_int_equal(n.stats_a.counter[STATS_MOD_requests], 1);
	assert_int_equal(n.stats_a.counter[STATS_MOD_replies], 1);
	assert_int_equal(n.stats_a.counter[STATS_MOD_late], 1);
	assert_int_equal(fx->stats.counter[STATS_MOD_requests], 2);
	assert_int_equal(fx->stats.counter[STATS_MOD_replies], 2);
	assert_int_equal(fx->stats.inflight, 0);
	assert_int_equal(n.stats_a.inflight, 0);
	pipeline_handler_cleanup(&n.ha);
}

/*
 * An answer inside the request callback goes straight out only when
 * nothing is before it: behind a pending request it is held, and the
 * gauge and the queue stay right either way.
 */
static void
test_sync_reply_behind_a_pending_one_waits(void **state)
{
	struct fixture *fx = *state;

	send_req(fx, "a");
	assert_int_equal(fx->stats.inflight, 1);
	fx->fake.sync = true;
	send_req(fx, "b");
	assert_string_equal(fx->owner.log, "");
	assert_int_equal(fx->q.n, 2);
	assert_int_equal(fx->stats.inflight, 1);
	reply(fx, 0, "a");
	assert_string_equal(fx->owner.log, "1:a 1:b ");
	assert_true(pipeline_queue_empty(&fx->q));
	assert_int_equal(fx->stats.inflight, 0);
	/* The queue is empty again: straight out, and twice is once. */
	fx->fake.twice = true;
	send_req(fx, "c");
	assert_string_equal(fx->owner.log, "1:a 1:b 1:c ");
	assert_true(pipeline_queue_empty(&fx->q));
	pipeline_flush_stats(&fx->pl);
	assert_int_equal(fx->stats.counter[STATS_MOD_replies], 3);
	assert_int_equal(fx->stats.counter[STATS_MOD_late], 1);
	assert_int_equal(fx->stats.inflight, 0);
	/* An unanswered request after it is pending as usual. */
	fx->fake.sync = false;
	send_req(fx, "d");
	assert_int_equal(fx->q.n, 1);
	assert_int_equal(fx->stats.inflight, 1);
	reply(fx, 3, "d");
	assert_string_equal(fx->owner.log, "1:a 1:b 1:c 1:d ");
	assert_int_equal(fx->stats.inflight, 0);
}

static void
test_replies_leave_in_request_order(void **state)
{
	struct fixture *fx = *state;

	send_req(fx, "1");
	send_req(fx, "2");
	send_req(fx, "3");
	reply(fx, 2, "c");
	reply(fx, 1, "b");
	assert_string_equal(fx->owner.log, "");	/* held behind the first */
	assert_int_equal(fx->q.n, 3);
	reply(fx, 0, "a");
	assert_string_equal(fx->owner.log, "1:a 1:b 1:c ");
	assert_true(pipeline_queue_empty(&fx->q));
	assert_int_equal(fx->stats.inflight, 0);
}

static void
test_core_reply_waits_its_turn(void **state)
{
	struct fixture *fx = *state;

	send_req(fx, "1");
	assert_int_equal(pipeline_hold(&fx->pl, &fx->q, GOPRO_CMD_HEARTBEAT,
	    "hb", 2), 0);
	assert_int_equal(pipeline_hold_error(&fx->pl, &fx->q, 4,
	    "unknown command"), 0);
	assert_string_equal(fx->owner.log, "");
	reply(fx, 0, "a");
	assert_string_equal(fx->owner.log, "1:a 0:hb E4:unknown command ");
}

static void
test_completing_twice_is_counted_once(void **state)
{
	struct fixture *fx = *state;

	send_req(fx, "1");
	reply(fx, 0, "a");
	reply(fx, 0, "again");
	assert_string_equal(fx->owner.log, "1:a ");
	assert_int_equal(fx->stats.counter[STATS_MOD_replies], 1);
	assert_int_equal(fx->stats.counter[STATS_MOD_late], 1);
	/* A reused slot does not take the old id's completion either. */
	send_req(fx, "2");
	reply(fx, 0, "stale");
	assert_string_equal(fx->owner.log, "1:a ");
	reply(fx, 1, "b");
	assert_string_equal(fx->owner.log, "1:a 1:b ");
}

static void
test_deadline_answers_error_11(void **state)
{
	struct fixture *fx = *state;

	fx->h.timeout = 0.01;
	send_req(fx, "1");
	send_req(fx, "2");
	reply(fx, 1, "b");
	ev_run(fx->loop, 0);	/* returns once the deadline timer is done */
	assert_string_equal(fx->owner.log, "E11:request timeout 1:b ");
	assert_int_equal(fx->stats.counter[STATS_MOD_timeouts], 1);
	assert_int_equal(fx->fake.ncancelled, 1);
	assert_true(fx->fake.cancelled[0] == fx->fake.ids[0]);
	/* The module's late answer is dropped and counted. */
	reply(fx, 0, "late");
	assert_string_equal(fx->owner.log, "E11:request timeout 1:b ");
	assert_int_equal(fx->stats.counter[STATS_MOD_late], 1);
}

static void
test_cancel_on_close(void **state)
{
	struct fixture *fx = *state;

	send_req(fx, "1");
	send_req(fx, "2");
	reply(fx, 1, "b");
	pipeline_queue_cancel(&fx->pl, &fx->q);
	assert_true(pipeline_queue_empty(&fx->q));
	/* The module hears of it at the next safe point, not inside close. */
	assert_int_equal(fx->fake.ncancelled, 0);
	pipeline_run_cancels(&fx->pl);
	assert_int_equal(fx->fake.ncancelled, 1);
	assert_true(fx->fake.cancelled[0] == fx->fake.ids[0]);
	reply(fx, 0, "late");
	assert_string_equal(fx->owner.log, "");
	assert_int_equal(fx->stats.counter[STATS_MOD_cancelled], 1);
	assert_int_equal(fx->stats.counter[STATS_MOD_late], 1);
	assert_int_equal(fx->stats.inflight, 0);
}

static void
test_invalid_reply_becomes_error_10(void **state)
{
	struct fixture *fx = *state;
	char big[2048];
	struct iovec iov = { big, sizeof(big) };

	memset(big, 'x', sizeof(big));
	send_req(fx, "1");
	send_req(fx, "2");
	errno = 0;
	assert_int_equal(pipeline_complete(&fx->pl, fx->fake.ids[0],
	    GOPRO_CMD_MESSAGE, &iov, 1), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(pipeline_complete(&fx->pl, fx->fake.ids[1],
	    GOPRO_CMD_GOAWAY, &iov, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_string_equal(fx->owner.log, "E10:invalid reply from module "
	    "E10:invalid reply from module ");
	assert_int_equal(fx->stats.counter[STATS_MOD_invalid], 2);
}

static void
test_full_at_max_inflight(void **state)
{
	struct fixture *fx = *state;

	for (int i = 0; i < 3; i++)
		send_req(fx, "x");
	assert_false(pipeline_queue_full(&fx->q));
	send_req(fx, "x");
	assert_true(pipeline_queue_full(&fx->q));
	reply(fx, 0, "a");
	assert_false(pipeline_queue_full(&fx->q));
	assert_int_equal(fx->owner.released, 1);
}

struct poster {
	struct pipeline *pl;
	gopro_request_id id;
};

static void *
post_thread(void *arg)
{
	struct poster *p = arg;
	struct iovec iov = { "thread", 6 };

	pipeline_post(p->pl, p->id, GOPRO_CMD_MESSAGE, 0, &iov, 1);
	return NULL;
}

static void
test_completion_from_a_thread(void **state)
{
	struct fixture *fx = *state;
	struct poster p;
	pthread_t t;

	send_req(fx, "1");
	p = (struct poster){ &fx->pl, fx->fake.ids[0] };
	assert_false(pthread_create(&t, NULL, post_thread, &p));
	pthread_join(t, NULL);
	assert_string_equal(fx->owner.log, "");	/* applied by the loop */
	ev_run(fx->loop, EVRUN_NOWAIT);
	assert_string_equal(fx->owner.log, "1:thread ");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_sync_replies_go_straight_out),
		T(test_answer_after_a_nested_dispatch),
		T(test_sync_reply_behind_a_pending_one_waits),
		T(test_replies_leave_in_request_order),
		T(test_core_reply_waits_its_turn),
		T(test_completing_twice_is_counted_once),
		T(test_deadline_answers_error_11),
		T(test_cancel_on_close),
		T(test_invalid_reply_becomes_error_10),
		T(test_full_at_max_inflight),
		T(test_completion_from_a_thread),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
