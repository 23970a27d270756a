/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conn.h - one client connection: its buffers, its place in the worker's
 * timeout lists, its login state, and every limit that applies to it.
 *
 * A connection is freed only at a safe point (the worker's before-sleep
 * hook), never inside a callback chain that may still use it: closing marks
 * it dead and queues it.
 */
#ifndef GOPRO_CONN_H
#define GOPRO_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <ev.h>

#include "buf.h"
#include "gopro/gopro.h"
#include "pipeline.h"
#include "worker.h"

union conn_addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

struct tls_ctx;

struct conn {
	struct worker *w;
	int fd;
	struct tls_conn *tls;     /* the TLS session; NULL for plain TCP */
	ev_io rio;
	ev_io wio;
	struct buf in;
	struct buf out;
	size_t in_need;           /* bytes still missing from the partial frame */

	TAILQ_ENTRY(conn) all_link;   /* in w->all while open */
	TAILQ_ENTRY(conn) clock_link; /* in w->clocks[clock], or w->closed */
	ev_tstamp clock_since;
	TAILQ_ENTRY(conn) send_link;  /* in w->sending */
	ev_tstamp send_since;
	TAILQ_ENTRY(conn) flush_link; /* in w->flushing */
	TAILQ_ENTRY(conn) pending_link; /* in w->tls_pending */

	uint64_t batch_start_ns;  /* when the current batch of requests was read */
	uint32_t batch_frames;    /* requests read and not yet written */
	uint32_t out_replies;     /* replies in out since it was last empty */
	uint16_t failed_logins;
	uint8_t clock;            /* enum conn_clock */

	/* Requests at modules whose replies are not released yet. */
	struct pipeline_queue q;

	bool reading : 1;         /* rio is started */
	bool writing : 1;         /* wio is started */
	bool sending : 1;         /* in w->sending */
	bool flushing : 1;        /* in w->flushing */
	bool paused : 1;          /* backpressure: output above high water */
	bool auth_pending : 1;    /* a LOGIN is being verified */
	bool logged_in : 1;
	bool eof : 1;             /* the client closed its side */
	bool closing : 1;         /* close once the output is written */
	bool lingering : 1;       /* we half-closed; discarding until EOF */
	bool goaway_wanted : 1;
	bool goaway_sent : 1;
	bool dead : 1;            /* fd closed, waiting to be freed */
	bool proxy_wait : 1;      /* a PROXY header must come before any frame */
	bool inflight_full : 1;   /* max_inflight requests at modules: not reading */
	bool in_process : 1;      /* conn_process is on the stack */
	bool handshaking : 1;     /* TLS handshake not finished */
	bool read_wants_write : 1;  /* the last TLS read waits for POLLOUT */
	bool write_wants_read : 1;  /* the last TLS write waits for POLLIN */
	bool tls_pending : 1;     /* in w->tls_pending */

	/* For log_connections: its life in one line at the close. */
	ev_tstamp opened;
	uint64_t frames_in, frames_out, bytes_in, bytes_out;
	const char *close_reason;     /* a static text; NULL: "closed" */

	/* The client: the socket's peer, or the address a PROXY header gave. */
	union conn_addr peer;
	/* The user of the last successful LOGIN, "" when none. */
	char user[GOPRO_USER_MAX + 1];
	/* Its entry in the stats segment's recent clients (stats_note_client). */
	uint64_t recent_ticket;
	/*
	 * The verified client certificate's identity (tls.identity, or the CN
	 * when that is off), NULL without one: allocated only then, so that
	 * a plain or anonymous connection carries no TLS_IDENTITY_MAX bytes.
	 */
	char *tls_identity;
};

/* How the pipeline hands a connection its replies (conn.c). */
extern const struct pipeline_ops conn_pipeline_ops;

/* For modules: the client's address, the logged-in user or NULL. */
const struct sockaddr *conn_client_addr(const struct conn *c, socklen_t *len);
const char *conn_user(const struct conn *c);
/* The verified TLS client certificate's identity, or NULL. */
const char *conn_tls_identity(const struct conn *c);

/*
 * Take over an accepted, non-blocking socket; NULL (fd closed) on ENOMEM.
 * proxy: the listener expects a PROXY header first (the peer is trusted).
 * tls: the listener speaks TLS: the handshake runs first (after the PROXY
 * header, if any) under tls.handshake_timeout; NULL for plain TCP.
 */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *peer,
    socklen_t peerlen, bool proxy, struct tls_ctx *tls);
/* Decrypted bytes wait inside OpenSSL: read them now (w->tls_pending). */
void conn_read_pending(struct conn *c);
/* Refuse an accepted socket with ERROR code (limit, descriptors) and close. */
void conn_refuse(struct worker *w, int fd, uint16_t code, const char *text);
/* Drain: send GOAWAY at the next frame boundary. */
void conn_goaway(struct conn *c);
/* A timeout list's clock ran out for c. */
void conn_clock_expired(struct conn *c);
/* send_timeout ran out: output made no progress. */
void conn_send_expired(struct conn *c);
/* drain_timeout ran out: cut the connection, counting what is lost. */
void conn_drain_expired(struct conn *c);
/* Write pending output; called once per loop iteration for w->flushing. */
void conn_flush(struct conn *c);
/* Release the memory of a dead connection. */
void conn_free(struct conn *c);
/* Close at once (worker exit). */
void conn_close_now(struct conn *c);

#endif /* GOPRO_CONN_H */
