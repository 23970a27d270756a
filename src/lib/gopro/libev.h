/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * gopro/libev.h - the libev adapter of the asynchronous client, header
 * only, so that libgopro itself does not depend on libev: a program that
 * includes it links libev (-lev) itself.
 *
 *	struct gopro_async *a = gopro_async_new(&opts, &rc);
 *	gopro_libev_attach(a, EV_DEFAULT);
 *	ev_run(EV_DEFAULT, 0);
 *
 * Each connection gets an ev_io and the context one ev_timer, allocated
 * here and freed when the connection closes or the context is freed, and
 * an ev_async that gopro_async_post signals from other threads (it does
 * not keep ev_run from returning: the loop is unref'd for it).
 */
#ifndef GOPRO_LIBEV_H
#define GOPRO_LIBEV_H

#include <stdlib.h>

#include <ev.h>

#include "gopro/async.h"

struct gopro_libev {
	struct ev_loop *loop;
	ev_timer timer;
	ev_async wake;
	struct gopro_async *async;
};

struct gopro_libev_io {
	ev_io io;
	struct gopro_io *gio;
};

static inline void
gopro_libev_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct gopro_libev_io *x = (struct gopro_libev_io *)w;

	(void)loop;
	gopro_async_io(x->gio, ((revents & EV_READ) ? GOPRO_EV_READ : 0) |
	    ((revents & EV_WRITE) ? GOPRO_EV_WRITE : 0));
}

static inline void
gopro_libev_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gopro_libev *l = (struct gopro_libev *)w->data;

	(void)loop;
	(void)revents;
	gopro_async_timer(l->async);
}

static inline void
gopro_libev_wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct gopro_libev *l = (struct gopro_libev *)w->data;

	(void)loop;
	(void)revents;
	gopro_async_wakeup(l->async);
}

/* From any thread: ev_async_send is libev's thread-safe call. */
static inline void
gopro_libev_wake(void *data)
{
	struct gopro_libev *l = (struct gopro_libev *)data;

	ev_async_send(l->loop, &l->wake);
}

static inline void *
gopro_libev_io_add(void *data, int fd, struct gopro_io *gio)
{
	struct gopro_libev_io *x = (struct gopro_libev_io *)malloc(sizeof(*x));

	(void)data;
	if (x == NULL)
		return NULL;
	ev_io_init(&x->io, gopro_libev_io_cb, fd, 0);
	x->gio = gio;
	return x;
}

static inline void
gopro_libev_io_set(void *data, void *watcher, int events)
{
	struct gopro_libev *l = (struct gopro_libev *)data;
	struct gopro_libev_io *x = (struct gopro_libev_io *)watcher;

	ev_io_stop(l->loop, &x->io);
	ev_io_set(&x->io, x->io.fd, ((events & GOPRO_EV_READ) ? EV_READ : 0) |
	    ((events & GOPRO_EV_WRITE) ? EV_WRITE : 0));
	if (events != 0)
		ev_io_start(l->loop, &x->io);
}

static inline void
gopro_libev_io_del(void *data, void *watcher)
{
	struct gopro_libev *l = (struct gopro_libev *)data;
	struct gopro_libev_io *x = (struct gopro_libev_io *)watcher;

	ev_io_stop(l->loop, &x->io);
	free(x);
}

static inline void
gopro_libev_timer_set(void *data, double after)
{
	struct gopro_libev *l = (struct gopro_libev *)data;

	ev_timer_stop(l->loop, &l->timer);
	if (after >= 0) {
		ev_timer_set(&l->timer, after, 0.);
		ev_timer_start(l->loop, &l->timer);
	}
}

static inline void
gopro_libev_detach(void *data)
{
	struct gopro_libev *l = (struct gopro_libev *)data;

	ev_timer_stop(l->loop, &l->timer);
	ev_ref(l->loop);
	ev_async_stop(l->loop, &l->wake);
	free(l);
}

/* Drive a by loop: GOPRO_OK, GOPRO_E_NOMEM or GOPRO_E_INVALID. */
static inline int
gopro_libev_attach(struct gopro_async *a, struct ev_loop *loop)
{
	static const struct gopro_loop_ops ops = {
		sizeof(struct gopro_loop_ops), gopro_libev_io_add,
		gopro_libev_io_set, gopro_libev_io_del, gopro_libev_timer_set,
		gopro_libev_detach, gopro_libev_wake,
	};
	struct gopro_libev *l = (struct gopro_libev *)malloc(sizeof(*l));
	int rc;

	if (l == NULL)
		return GOPRO_E_NOMEM;
	l->loop = loop;
	l->async = a;
	ev_timer_init(&l->timer, gopro_libev_timer_cb, 0., 0.);
	l->timer.data = l;
	ev_async_init(&l->wake, gopro_libev_wake_cb);
	l->wake.data = l;
	/* Started before attach: a post may follow attach at once. */
	ev_async_start(loop, &l->wake);
	ev_unref(loop);
	rc = gopro_async_attach(a, &ops, l);
	if (rc != GOPRO_OK) {
		ev_ref(loop);
		ev_async_stop(loop, &l->wake);
		free(l);
	}
	return rc;
}

#endif /* GOPRO_LIBEV_H */
