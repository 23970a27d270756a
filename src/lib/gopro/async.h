/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * gopro/async.h - the asynchronous GoPro client of libgopro.
 *
 * A struct gopro_async is a logical connection to a service given as a
 * list of addresses.  It is driven by the caller's event loop through an
 * adapter (gopro/libev.h for libev; any loop with descriptor watchers and
 * a timer can have one, see struct gopro_loop_ops) and never blocks,
 * except in getaddrinfo when an address is a host name.
 *
 *  - Requests are pipelined: each has a callback, called with its reply.
 *    Replies come in request order, so they are matched by position; at
 *    most max_pending requests wait for a reply on a connection
 *    (GOPRO_E_BUSY beyond).
 *  - Each request has a timeout.  Because replies are positional, a
 *    request that expires cannot be skipped: its callback gets
 *    GOPRO_E_TIMEOUT and the connection is closed, every other request
 *    pending on it gets GOPRO_E_CLOSED, and the client reconnects.
 *  - On GOAWAY the client stops sending on that connection, still collects
 *    the replies it owes, and at once opens a replacement to which new
 *    requests go.  Callbacks keep the order of each connection; replies of
 *    the old connection may come after the first ones of the new.
 *  - When a connection is lost, the requests pending on it fail with
 *    GOPRO_E_CLOSED (they may or may not have been executed) and the client
 *    reconnects over the address list, each address in turn, waiting a
 *    jittered, exponentially growing delay after every round that failed.
 *    It logs in again when a user was given.
 *  - Requests made before the first connection is up wait for it.  From
 *    the loss of a connection until the next one is up, new requests fail
 *    with GOPRO_E_NOT_CONNECTED, unless buffer_while_reconnecting is set: then
 *    they wait (up to max_pending, each still bound by its timeout) and go
 *    out on the next connection.  It is off by default because a request
 *    sent late, such as a stale order, is often worse than an error.
 *
 * Threads: a context, its callbacks and its adapter belong to the thread
 * that runs its loop.  The one call that another thread may make is
 * gopro_async_post: it hands a function to the loop thread, which calls
 * it there (the function may then make requests).  Every other call on a
 * context comes from the loop thread.  gopro_strerror and the codec are
 * pure and safe from any thread.  The library never prints, never exits
 * and never raises SIGPIPE.
 *
 * Transports: a connection speaks plain TCP (or a unix socket) unless a
 * struct gopro_transport is given; libgopro-tls provides one for TLS
 * (gopro/tls_client.h, client_tls_transport), with session resumption.
 */
#ifndef GOPRO_ASYNC_H
#define GOPRO_ASYNC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gopro/gopro.h"

struct gopro_async;
/* One connection's descriptor, as an adapter sees it. */
struct gopro_io;

enum gopro_state {
	GOPRO_STATE_CONNECTED = 1,    /* a connection is up (and logged in) */
	GOPRO_STATE_GOAWAY,           /* the server drains it: replacing it */
	GOPRO_STATE_RECONNECTING,     /* lost or failed: waiting to retry */
	GOPRO_STATE_CLOSED,           /* given up (result says why) */
};

/*
 * A reply: result GOPRO_OK and the frame (which may be an ERROR: look at
 * reply->header.command), or a failure and NULL.  The frame is valid only
 * during the call.  A callback may make new requests and may free the
 * context.
 */
typedef void gopro_reply_cb(struct gopro_async *a, int result,
    const struct gopro_frame *reply, void *arg);
/* A change of state; result is the cause for RECONNECTING and CLOSED. */
typedef void gopro_state_cb(struct gopro_async *a, enum gopro_state state,
    int result, void *arg);

/*
 * Options, filled by gopro_async_options_init and then by the caller.
 * size is the caller's sizeof, so that later fields can be added at the
 * end without breaking programs built against this version.
 */
struct gopro_async_options {
	size_t size;
	const char *const *addresses; /* "host:port", "[v6]:port", "unix:/p" */
	size_t naddresses;
	const char *user;             /* LOGIN on each connection, or NULL */
	const char *password;
	unsigned max_pending;         /* requests awaiting a reply (1024) */
	double request_timeout;       /* default per request, seconds (10) */
	double connect_timeout;       /* per attempt, seconds (5) */
	double backoff_initial;       /* first delay before a retry (0.1) */
	double backoff_max;           /* the delay doubles up to this (10) */
	unsigned max_retries;         /* rounds before CLOSED, 0: forever */
	int buffer_while_reconnecting;/* 0 (default) or 1, see above */
	uint32_t max_reply;           /* largest reply body accepted */
	gopro_state_cb *on_state;     /* may be NULL */
	void *state_arg;
	/* Since LIBGOPRO_1.1; a caller built before sets a smaller size. */
	const char *source_address;   /* numeric IP bound before connect */
	const struct gopro_transport *transport; /* NULL: plain */
	void *transport_arg;          /* handed to transport->open */
};

/*
 * A transport under each connection (TLS, say).  The client makes the
 * socket and connects it; open gets the connected descriptor (the client
 * closes it later, after close), then handshake is called until it
 * returns 1 (done), whenever the events it asked for in *events
 * (GOPRO_EV_READ, GOPRO_EV_WRITE) are ready, within connect_timeout.
 * read and write are recv(2) and send(2): -1 with errno EAGAIN when the
 * transport waits for the socket.  pending says whether it holds input
 * that no readiness event will announce (decrypted and not read yet).
 */
struct gopro_transport {
	size_t size;                  /* sizeof(struct gopro_transport) */
	void *(*open)(void *arg, int fd);
	/* 1 done, 0 call again, -1 failed (why in err). */
	int (*handshake)(void *t, int *events, char *err, size_t errlen);
	ssize_t (*read)(void *t, void *p, size_t len);
	ssize_t (*write)(void *t, const void *p, size_t len);
	int (*pending)(void *t);
	void (*close)(void *t);
};

GOPRO_API void gopro_async_options_init(struct gopro_async_options *o);
/*
 * A context (nothing is connected until it is attached to a loop): NULL
 * with *result GOPRO_E_INVALID (no address, bad option) or GOPRO_E_NOMEM.
 * The options and the strings they point to are copied.
 */
GOPRO_API struct gopro_async *gopro_async_new(
    const struct gopro_async_options *o, int *result);
/*
 * Free the context: every request still pending gets GOPRO_E_CANCELLED,
 * the connections are closed and the adapter is detached.  From inside a
 * callback, this happens when the callback returns.
 */
GOPRO_API void gopro_async_free(struct gopro_async *a);
/*
 * Queue a request; timeout 0 means request_timeout.  GOPRO_OK (cb will be
 * called exactly once), GOPRO_E_BUSY, GOPRO_E_NOT_CONNECTED, GOPRO_E_CLOSED
 * (the context gave up), GOPRO_E_INVALID or GOPRO_E_NOMEM (cb is not called
 * then).  Frames are written when the loop finds the socket writable, so
 * requests made together leave in one send.
 */
GOPRO_API int gopro_async_request(struct gopro_async *a, uint8_t command,
    const void *body, size_t len, double timeout, gopro_reply_cb *cb,
    void *arg);
/*
 * The same request given as one whole frame, header and body, as
 * gopro_frame_write makes it (a template built once and sent many times):
 * it is copied once and its header is not rebuilt.  GOPRO_E_INVALID also
 * when frame is not one frame of size bytes (magic, version, and a length
 * that is size minus the header).  (Since LIBGOPRO_1.2.)
 */
GOPRO_API int gopro_async_request_frame(struct gopro_async *a,
    const void *frame, size_t size, double timeout, gopro_reply_cb *cb,
    void *arg);
/*
 * The one call safe from any thread: fn(a, GOPRO_OK, arg) will be called
 * in the loop thread, soon, in the order of the posts; fn(a,
 * GOPRO_E_CANCELLED, arg) instead when the context is freed first.
 * GOPRO_OK, GOPRO_E_BUSY (max_pending posts are waiting already),
 * GOPRO_E_INVALID (not attached, or the adapter has no wake hook) or
 * GOPRO_E_CANCELLED (being freed).  The context must outlive the call:
 * stop the posting threads before gopro_async_free.  (Since LIBGOPRO_1.1.)
 */
typedef void gopro_post_cb(struct gopro_async *a, int result, void *arg);
GOPRO_API int gopro_async_post(struct gopro_async *a, gopro_post_cb *fn,
    void *arg);
/* Requests awaiting a reply, over all connections. */
GOPRO_API unsigned gopro_async_pending(const struct gopro_async *a);
/* A sentence about the last failure ("" if none). */
GOPRO_API const char *gopro_async_error(const struct gopro_async *a);

/* ------------------------------------------------------------ adapters */

#define GOPRO_EV_READ 0x1
#define GOPRO_EV_WRITE 0x2

/*
 * What an adapter provides.  The client watches one descriptor per
 * connection (two during a GOAWAY handover) and needs one timer.
 */
struct gopro_loop_ops {
	size_t size;                  /* sizeof(struct gopro_loop_ops) */
	/* Watch fd for io (no events yet); the adapter's watcher or NULL. */
	void *(*io_add)(void *loop, int fd, struct gopro_io *io);
	/* Change the events watched: GOPRO_EV_READ | GOPRO_EV_WRITE, or 0. */
	void (*io_set)(void *loop, void *watcher, int events);
	/* Stop and free a watcher (its descriptor is closed after). */
	void (*io_del)(void *loop, void *watcher);
	/* Fire gopro_async_timer in after seconds (restart); < 0: stop. */
	void (*timer_set)(void *loop, double after);
	/* The context is being freed: release the adapter's state. */
	void (*detach)(void *loop);
	/*
	 * Since LIBGOPRO_1.1, may be NULL: called from any thread, make the
	 * loop thread call gopro_async_wakeup soon (libev: ev_async_send).
	 */
	void (*wake)(void *loop);
};

/* Attach to a loop and start connecting: GOPRO_OK or GOPRO_E_INVALID. */
GOPRO_API int gopro_async_attach(struct gopro_async *a,
    const struct gopro_loop_ops *ops, void *loop);
/* The adapter's calls: fd of io is ready, the timer has fired. */
GOPRO_API void gopro_async_io(struct gopro_io *io, int events);
GOPRO_API void gopro_async_timer(struct gopro_async *a);
/* The adapter's call, in the loop thread, after wake: run the posts. */
GOPRO_API void gopro_async_wakeup(struct gopro_async *a);

#endif /* GOPRO_ASYNC_H */
