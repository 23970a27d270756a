/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * worker.h - a worker process: one libev loop that accepts on its slot's
 * listening sockets and serves connections until it is told to drain.
 *
 * The master forks a worker with the sockets of its slot and the config;
 * the worker builds its own loop (the master's default loop is destroyed in
 * the child), and is driven by signals: SIGTERM drains for shutdown
 * (GOAWAY reason 2), SIGUSR2 drains for a reload (reason 1), SIGQUIT exits
 * at once, SIGUSR1 reopens the log file.
 */
#ifndef GOPRO_WORKER_H
#define GOPRO_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <ev.h>

#include "conf.h"
#include "module.h"
#include "pipeline.h"
#include "stats.h"

struct conn;
struct auth_pool;
struct auth_users;
struct auth_ratelimit;

TAILQ_HEAD(conn_list, conn);

/* glibc's <sys/queue.h> lacks the BSD _SAFE iterator. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                            \
	for ((var) = TAILQ_FIRST(head);                                       \
	    (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

/*
 * The timeout lists of a worker.  Each holds connections in the order they
 * entered it, and every member of one list has the same timeout, so the
 * head is always the next to expire: keeping time is O(1) per event with
 * one ev_timer for the whole worker (libev manual, "Be smart about
 * timeouts").
 */
enum conn_clock {
	CLOCK_NONE = 0,
	CLOCK_IDLE,    /* nothing buffered, waiting for a request */
	CLOCK_FRAME,   /* a partial frame is buffered */
	CLOCK_GRACE,   /* GOAWAY sent, nothing pending either way */
	CLOCK_LINGER,  /* half-closed by us, waiting for the client's FIN */
	CLOCK_HANDSHAKE, /* TLS handshake under way */
	CLOCK_NCLOCKS
};

struct listener {
	ev_io io;
	int fd;
	bool proxy;	/* in proxy_protocol: trusted peers, PROXY header first */
	bool tls;	/* in tls.listen: a TLS handshake first */
};

/* Free read/write blocks of WORKER_BLOCK_SIZE bytes, reused across connections. */
struct block_pool {
	void **blocks;
	unsigned count;
	unsigned max;
};

#define WORKER_BLOCK_SIZE (16 * 1024)

struct worker {
	struct ev_loop *loop;
	const struct gopro_conf *conf;
	struct stats_entry *stats;
	unsigned slot;
	unsigned generation;

	struct listener listeners[CONF_MAX_LISTEN];
	size_t nlisteners;
	ev_timer accept_retry;     /* accepting paused after EMFILE */
	int spare_fd;              /* released to accept-and-refuse at EMFILE */

	unsigned nconns;
	unsigned ntls;             /* of nconns, on a TLS listener */
	struct conn_list all;      /* every open connection */
	struct conn_list clocks[CLOCK_NCLOCKS];
	ev_tstamp clock_timeout[CLOCK_NCLOCKS];
	struct conn_list sending;  /* output pending, ordered by last progress */
	struct conn_list flushing; /* output to write before the loop sleeps */
	struct conn_list closed;   /* to free at the next safe point */
	/*
	 * TLS connections with decrypted bytes inside OpenSSL, which no
	 * readiness event will report: read before the loop sleeps, and the
	 * idle watcher keeps it from sleeping while some remain.
	 */
	struct conn_list tls_pending;
	ev_idle tls_pending_idle;
	ev_timer clock_timer;
	ev_prepare before_sleep;

	struct block_pool pool;

	struct pipeline pl;        /* requests at modules */
	struct modules mods;
	ev_timer heartbeat;        /* watchdog.c */
	ev_check woke;
	uint64_t iteration_start_ns;

	struct auth_users *users;
	struct auth_pool *auth_pool;
	struct auth_ratelimit *login_limit;

	bool draining;
	uint16_t goaway_reason;
	ev_timer drain_timer;

	ev_signal sigs[4];
};

/* What the master hands a new worker. */
struct worker_params {
	const struct gopro_conf *conf;
	struct stats_entry *stats;
	unsigned slot;
	unsigned generation;
	const int *listen_fds;   /* this slot's socket for every listen address */
	size_t nlisten;
	struct auth_users *users;/* loaded by the master, NULL when none */
};

/* Run the worker in the child process; never returns. */
void worker_main(const struct worker_params *params)
    __attribute__((noreturn));

/*
 * For tests and fuzz targets: a worker with its loop, lists, pool and
 * clocks, but no signals, listeners or login threads, in this process.
 * Connections are added with conn_new; cleanup closes and frees them.
 */
void worker_init_for_test(struct worker *w, const struct gopro_conf *conf,
    struct stats_entry *stats);
void worker_cleanup_for_test(struct worker *w);

/* Block pool, used by conn.c. */
void *worker_block_get(struct worker *w);
void worker_block_put(struct worker *w, void *block, size_t cap);

/* Re-arm the timeout timer when a list head may have changed. */
void worker_clock_changed(struct worker *w);
/* A connection went away: resume accepting if it was paused. */
void worker_conn_gone(struct worker *w);

#endif /* GOPRO_WORKER_H */
