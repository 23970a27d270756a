/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * gopro/module.h - the SDK of goprod handler modules, ABI 1.
 *
 * A module is a shared object that goprod's workers load (never the
 * master).  It exports one symbol, GOPRO_MODULE_SYMBOL, a struct
 * gopro_module that says which ABI it was built for, which commands it
 * serves, which options it takes and which callbacks it has.  The host
 * hands it a struct gopro_module_api, the only way back into goprod.
 *
 * The promises, so that an upgrade never breaks a module silently:
 *  - abi_major must equal the host's GOPRO_MODULE_ABI_MAJOR, and the host's
 *    minor must be at least the module's abi_minor;
 *  - struct gopro_module and struct gopro_module_api carry their size
 *    first and only ever grow at their end: a module built against an older
 *    minor sees a prefix of today's table, the host reads only the part of a
 *    descriptor that the module's size covers.
 *
 * The host, not the module, owns the order of replies, the deadlines and
 * cancellation: every request gets exactly one reply, in request order,
 * whatever the module does.  See gopro_module(3).
 *
 * Build a module with
 *   cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags gopro-module)
 */
#ifndef GOPRO_MODULE_H
#define GOPRO_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define GOPRO_MODULE_ABI_MAJOR 1u
#define GOPRO_MODULE_ABI_MINOR 2u

/* The one symbol a module exports, and how to export it. */
#define GOPRO_MODULE_SYMBOL "gopro_module"
#define GOPRO_MODULE_EXPORT __attribute__((visibility("default")))

/* The two error codes meant for modules (gopro(7)). */
#define GOPRO_MODULE_ERR_UNAVAILABLE 10u  /* retryable: backend down, busy */
#define GOPRO_MODULE_ERR_REQUEST_TIMEOUT 11u /* sent by the host only */

struct ev_loop;
struct gopro_conn;	/* opaque: one client connection */

/*
 * A request's handle.  It stays valid as a number forever: completing a
 * request that was cancelled, timed out or already answered is a safe
 * no-op that the host counts, never a use after free.
 */
typedef uint64_t gopro_request_id;

struct gopro_request {
	gopro_request_id id;
	uint8_t command;
	const uint8_t *body;	/* len bytes, valid only during the callback */
	size_t len;
	struct gopro_conn *conn;/* valid until conn_close */
};

enum gopro_option_type {
	GOPRO_OPTION_STRING,	/* any text; max = longest length (0: 1024) */
	GOPRO_OPTION_INT,	/* whole number in [min, max] */
	GOPRO_OPTION_BOOL,	/* true/false, yes/no, on/off */
	GOPRO_OPTION_TIME,	/* "250ms", "5s", "2m": seconds in [min, max] */
	GOPRO_OPTION_SIZE,	/* "512", "64k", "10M": bytes in [min, max] */
};

/* One option of the module's section in gopro.conf. */
struct gopro_module_option {
	const char *name;
	enum gopro_option_type type;
	const char *def;	/* default as written in the file; NULL: required */
	double min, max;	/* range (both 0: no range) */
	const char *help;	/* one line, for messages */
};

/* A checked option value, in the order of the module's options. */
union gopro_option_value {
	const char *s;
	long long i;
	bool b;
	double seconds;
	uint64_t bytes;
};

struct gopro_module_api {
	size_t size;		/* sizeof this table as the host knows it */
	uint32_t abi_major;
	uint32_t abi_minor;

	/* The worker's libev loop, for watchers and libev adapters. */
	struct ev_loop *(*loop)(void);

	/*
	 * Answer a request with one frame.  The only calls safe from any
	 * thread: off the loop's thread the reply is copied, queued and the
	 * loop woken (ev_async).  command is MESSAGE (0x01) or 0x10-0xFF
	 * (complete_error for ERROR).  A body above the host's max_body, or
	 * a reserved command, is replaced by ERROR 10 and counted.  Return 0
	 * when the reply was taken or queued, -1 (errno EINVAL, EMSGSIZE or
	 * ENOMEM) when the request was answered with ERROR 10 instead.
	 */
	int (*complete)(gopro_request_id id, uint8_t command, const void *body,
	    size_t len);
	int (*completev)(gopro_request_id id, uint8_t command,
	    const struct iovec *iov, int iovcnt);
	int (*complete_error)(gopro_request_id id, uint16_t code,
	    const char *text);

	/*
	 * Run fn(arg) on a host thread, then done(arg) on the loop's thread.
	 * For blocking work (files, DNS, a blocking client library).
	 * Return 0, or -1 (ENOMEM) and nothing runs.
	 */
	int (*offload)(void (*fn)(void *arg), void *arg,
	    void (*done)(void *arg));

	/* The client: the PROXY header's address when there is one. */
	const struct sockaddr *(*client_addr)(const struct gopro_conn *conn,
	    socklen_t *len);
	/* The user that logged in with LOGIN, or NULL. */
	const char *(*user)(const struct gopro_conn *conn);

	/* goprod's log, with syslog priorities (LOG_WARNING, ...). */
	void (*log)(int priority, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

	/*
	 * ABI 1.1.  The identity of the client's verified TLS certificate
	 * (the name tls.identity picks, the CN when it is off), or NULL on a
	 * plain connection or without a verified certificate.  Valid until
	 * conn_close.  Check api->size covers it before the call.
	 */
	const char *(*tls_identity)(const struct gopro_conn *conn);

	/*
	 * ABI 1.2.  -1 while the worker serves; once it drains (a reload or
	 * a shutdown: its connections get GOAWAY), the seconds left before
	 * drain_timeout cuts the connections still open, 0 at the end.  The
	 * host still hands the module every request it reads while draining
	 * (a client may have sent it before it saw the GOAWAY); a module
	 * whose work could outlast the drain answers such a request
	 * complete_error(id, GOPRO_MODULE_ERR_UNAVAILABLE, ...) without
	 * carrying it out, and the client sends it again on a new
	 * connection, to the new generation.  Loop thread only.
	 */
	double (*drain_left)(void);
};

struct gopro_module {
	size_t size;		/* sizeof(struct gopro_module) when built */
	uint32_t abi_major;	/* GOPRO_MODULE_ABI_MAJOR when built */
	uint32_t abi_minor;	/* the lowest host minor it needs */
	const char *name;

	/* The commands it serves unless gopro.conf says otherwise. */
	const uint8_t *commands;
	size_t ncommands;
	const struct gopro_module_option *options;
	size_t noptions;

	/*
	 * Every callback may be NULL but request.  All run on the worker's
	 * loop thread; none may block (use offload or the loop).
	 *
	 * check: the options make sense together (goprod -t, start and reload
	 * call it in a probe process).  0, or -1 with a message in err.
	 * worker_init: once per worker, before any request; *state is passed
	 * to every later callback.  0, or -1 with a message in err: the
	 * worker then stops.
	 * request: answer with api->complete* now or later.
	 * cancel: the client went away before the reply; completing it later
	 * is harmless, but work may stop.
	 * conn_open, conn_close: a connection's life; after conn_close, the
	 * struct gopro_conn pointer is gone.
	 * worker_exit: the worker stops; release everything.  A module that
	 * started threads must stop and join them here, and stop its
	 * watchers on the loop: after worker_exit returns, no code of the
	 * module may run (a thread left running may find the module's code
	 * unmapped under it).  The host's offload jobs have all run, and
	 * their done callbacks been called, before worker_exit.
	 */
	int (*check)(const union gopro_option_value *opts, char *err,
	    size_t errlen);
	int (*worker_init)(const struct gopro_module_api *api,
	    const union gopro_option_value *opts, void **state, char *err,
	    size_t errlen);
	void (*request)(void *state, const struct gopro_request *req);
	void (*cancel)(void *state, gopro_request_id id);
	void (*conn_open)(void *state, struct gopro_conn *conn);
	void (*conn_close)(void *state, struct gopro_conn *conn);
	void (*worker_exit)(void *state);
};

/* The first fields of every descriptor. */
#define GOPRO_MODULE_HEADER                                                   \
	.size = sizeof(struct gopro_module),                                  \
	.abi_major = GOPRO_MODULE_ABI_MAJOR,                                  \
	.abi_minor = GOPRO_MODULE_ABI_MINOR

#endif /* GOPRO_MODULE_H */
