/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * watchdog.c - heartbeats, blocked iterations and stalled workers (see
 * watchdog.h).
 *
 * The worker's side costs two clock reads per loop iteration (not per
 * request): an ev_check watcher notes when the loop woke, the before-sleep
 * hook (ev_prepare) sees how long the iteration ran.  A timer makes an
 * idle loop beat too.  An iteration longer than block_warn names the
 * module called last, which in a loop that blocks is the one that blocks.
 */
#include <signal.h>
#include <time.h>

#include "log.h"
#include "master.h"
#include "module.h"
#include "watchdog.h"
#include "worker.h"

#define BEAT_INTERVAL 1.0	/* seconds, worker and master */

uint64_t
watchdog_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ worker */

static void
beat(struct worker *w)
{
	__atomic_store_n(&w->stats->heartbeat_ms, watchdog_now_ms(),
	    __ATOMIC_RELAXED);
}

static void
beat_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	beat(t->data);
}

static void
woke_cb(struct ev_loop *loop, ev_check *c, int revents)
{
	struct worker *w = c->data;

	(void)loop;
	(void)revents;
	w->iteration_start_ns = now_ns();
}

void
watchdog_worker_start(struct worker *w)
{
	beat(w);
	ev_timer_init(&w->heartbeat, beat_cb, BEAT_INTERVAL, BEAT_INTERVAL);
	w->heartbeat.data = w;
	ev_timer_start(w->loop, &w->heartbeat);
	/* The heartbeat alone must not keep a draining worker alive. */
	ev_unref(w->loop);
	ev_check_init(&w->woke, woke_cb);
	w->woke.data = w;
	ev_check_start(w->loop, &w->woke);
}

void
watchdog_worker_stop(struct worker *w)
{
	if (!ev_is_active(&w->heartbeat))
		return;
	ev_ref(w->loop);
	ev_timer_stop(w->loop, &w->heartbeat);
	ev_check_stop(w->loop, &w->woke);
}

void
watchdog_iteration_done(struct worker *w)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 5);
	struct module_inst *mi = w->mods.last;
	double took;

	if (w->iteration_start_ns == 0 || w->conf->block_warn <= 0)
		return;
	took = (double)(now_ns() - w->iteration_start_ns) / 1e9;
	w->iteration_start_ns = 0;
	if (took < w->conf->block_warn)
		return;
	beat(w);
	if (mi != NULL && mi->h.stats != NULL)
		__atomic_store_n(&mi->h.stats->counter[STATS_MOD_slow_callbacks],
		    __atomic_load_n(&mi->h.stats->counter[
		    STATS_MOD_slow_callbacks], __ATOMIC_RELAXED) + 1,
		    __ATOMIC_RELAXED);
	log_rl(&rl, LOG_WARNING, "the loop was blocked for %.0f ms (over "
	    "block_warn); module %s was called last", took * 1e3,
	    mi != NULL ? mi->name : "(none)");
}

/* ------------------------------------------------------------ master */

static void
check_worker(struct master *m, unsigned idx, uint64_t now)
{
	struct worker_proc *p = &m->procs[idx];
	const struct stats_entry *e = &m->stats.entries[idx];
	uint64_t hb = __atomic_load_n(&e->heartbeat_ms, __ATOMIC_RELAXED);
	double limit = m->conf->worker_stall_timeout;

	if (p->pid <= 0 || p->abort_sent || hb == 0 || hb > now ||
	    (double)(now - hb) / 1e3 < limit)
		return;
	log_warnx("worker %u (pid %ld) made no progress for %.1f s "
	    "(worker_stall_timeout): SIGABRT, its %llu connections are lost",
	    p->slot, (long)p->pid, (double)(now - hb) / 1e3,
	    (unsigned long long)__atomic_load_n(&e->conn_active,
	    __ATOMIC_RELAXED));
	p->abort_sent = true;
	(void)kill(p->pid, SIGABRT);
}

static void
watch_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct master *m = t->data;
	uint64_t now = watchdog_now_ms();

	(void)loop;
	(void)revents;
	if (m->conf->worker_stall_timeout <= 0)
		return;
	for (unsigned i = 0; i < STATS_ENTRIES && i < m->stats.nentries; i++)
		check_worker(m, i, now);
}

void
watchdog_master_init(struct master *m)
{
	ev_timer_init(&m->watchdog, watch_cb, BEAT_INTERVAL, BEAT_INTERVAL);
	m->watchdog.data = m;
	ev_timer_start(m->loop, &m->watchdog);
	ev_unref(m->loop);
}

void
watchdog_master_stop(struct master *m)
{
	if (!ev_is_active(&m->watchdog))
		return;
	ev_ref(m->loop);
	ev_timer_stop(m->loop, &m->watchdog);
}
