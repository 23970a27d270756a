/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * stats.h - the shared-memory statistics segment, layout version 9.
 *
 * The master creates a file-backed shared mapping (stats_file, usually
 * /run/goprod/goprod.stats) before it forks.  Every worker process owns one
 * entry and is its only writer; goproctl and the master read without locks.
 * Counters are 64-bit, naturally aligned and accessed with relaxed atomics,
 * so a reader can never see a torn value.  Each entry starts on its own
 * 128-byte boundary so that two workers never write the same cache line (nor
 * the adjacent line the prefetcher pairs with it).
 *
 * When a worker exits, the master adds its counters to the "retired" totals
 * and clears the entry before reuse.  That fold is bracketed by a sequence
 * counter (odd while it runs), so a reader that sums retired + live entries
 * retries instead of seeing a total that went down.
 *
 * The file is:  struct stats_header, then nentries x struct stats_entry.
 * Other tools may read it: everything is in host byte order, and the layout
 * only changes together with STATS_LAYOUT_VERSION.
 */
#ifndef GOPRO_STATS_H
#define GOPRO_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STATS_MAGIC 0x53544F50474F5052ull /* "GOPROPTS" */
#define STATS_LAYOUT_VERSION 9u
#define STATS_ALIGN 128

/*
 * Every monotonic counter, defined once: the struct, the fold into the
 * retired totals and every output format of goproctl expand this list.
 * X(name, help) - name is a C identifier and the metric name stem.
 */
#define STATS_COUNTERS(X)                                                     \
	X(conn_accepted, "Connections accepted")                              \
	X(conn_closed, "Connections closed, for any reason")                  \
	X(conn_refused_limit, "Connections refused at max_connections")       \
	X(conn_idle_timeout, "Connections closed by idle_timeout")            \
	X(conn_frame_timeout, "Connections closed by frame_timeout")          \
	X(conn_send_timeout, "Connections closed by send_timeout")            \
	X(conn_drain_timeout, "Connections closed by drain_timeout")          \
	X(conn_reset, "Connections closed by a read or write error")          \
	X(accept_errors, "accept() failures other than EAGAIN")               \
	X(accept_emfile, "accept() failures for lack of descriptors")         \
	X(bytes_received, "Bytes received from clients")                      \
	X(bytes_sent, "Bytes sent to clients")                                \
	X(frames_received_heartbeat, "HEARTBEAT frames received")             \
	X(frames_received_message, "MESSAGE frames received")                 \
	X(frames_received_login, "LOGIN frames received")                     \
	X(frames_received_other, "Frames received with another command")      \
	X(frames_sent_heartbeat, "HEARTBEAT frames sent")                     \
	X(frames_sent_message, "MESSAGE frames sent")                         \
	X(frames_sent_login_ack, "LOGIN_ACK frames sent")                     \
	X(frames_sent_error, "ERROR frames sent")                             \
	X(frames_sent_goaway, "GOAWAY frames sent")                           \
	X(frames_sent_other, "Frames sent with a module's own command")       \
	X(errors_bad_magic, "ERROR 1 (bad magic) sent")                       \
	X(errors_bad_version, "ERROR 2 (unsupported version) sent")           \
	X(errors_too_large, "ERROR 3 (frame too large) sent")                 \
	X(errors_unknown_command, "ERROR 4 (unknown command) sent")           \
	X(errors_auth_required, "ERROR 5 (authentication required) sent")     \
	X(errors_auth_failed, "ERROR 6 (authentication failed) sent")         \
	X(errors_busy, "ERROR 7 (server busy) sent")                          \
	X(errors_timeout, "ERROR 8 (timeout) sent")                           \
	X(errors_malformed, "ERROR 9 (malformed body) sent")                  \
	X(errors_unavailable, "ERROR 10 (unavailable) sent")                  \
	X(errors_request_timeout, "ERROR 11 (request timeout) sent")          \
	X(logins_ok, "Successful logins")                                     \
	X(logins_failed, "Failed logins")                                     \
	X(logins_rate_limited, "Login attempts refused by login_rate")        \
	X(backpressure, "Times reading paused for output above high water")   \
	X(requests_lost, "Requests read but unanswered when a connection was cut") \
	X(conn_proxied, "Connections whose client address came from a PROXY header") \
	X(proxy_rejected, "PROXY listener connections refused: untrusted source, bad or late header") \
	X(tls_handshakes_full, "TLS handshakes completed in full")          \
	X(tls_handshakes_resumed, "TLS handshakes that resumed a session from a ticket") \
	X(tls_failed_protocol, "TLS handshakes failed: not TLS, no common version or cipher") \
	X(tls_failed_certificate, "TLS handshakes failed: client certificate missing or refused") \
	X(tls_failed_closed, "TLS handshakes the client abandoned")       \
	X(tls_failed_timeout, "TLS handshakes cut by tls.handshake_timeout") \
	X(tls_version_1_2, "TLS connections that negotiated TLS 1.2")     \
	X(tls_version_1_3, "TLS connections that negotiated TLS 1.3")     \
	X(tls_ktls, "TLS connections whose records the kernel handles (kTLS)") \
	X(tls_identity_logins, "TLS connections logged in by their client certificate") \
	X(tls_app_bytes_received, "Bytes received on TLS connections, decrypted") \
	X(tls_app_bytes_sent, "Bytes sent on TLS connections, before encryption") \
	X(tls_wire_bytes_received, "Bytes of TLS records read from the socket, handshakes included") \
	X(tls_wire_bytes_sent, "Bytes of TLS records written to the socket, handshakes included")

enum stats_counter {
#define STATS_ENUM(name, help) STATS_##name,
	STATS_COUNTERS(STATS_ENUM)
#undef STATS_ENUM
	STATS_NCOUNTERS
};

/*
 * Latency of request handling (from the read that completed a request to
 * the write that handed its reply to the kernel), in buckets two to an
 * octave, fine enough to tell 0.3 ms from 0.5 ms: the upper bounds are 1,
 * 1.5, 2, 3, 4, 6, 8, 12, ... microseconds (2^j us for bucket 2j, 1.5 * 2^j
 * for bucket 2j + 1), up to 2^24 us (16.8 s); the last bucket is
 * everything slower (+Inf).
 */
#define STATS_HIST_BUCKETS 50

enum stats_worker_state {
	STATS_STATE_FREE = 0,
	STATS_STATE_STARTING,
	STATS_STATE_RUNNING,
	STATS_STATE_DRAINING,
	STATS_STATE_EXITED,
};

struct stats_values {
	uint64_t counter[STATS_NCOUNTERS];
	uint64_t hist[STATS_HIST_BUCKETS];
	uint64_t hist_sum_ns; /* sum of the observed latencies */
};

/*
 * The most recent clients of a worker, for goproctl stats: behind a load
 * balancer they show that the PROXY header's address is the one in use.
 * Each slot has its own sequence number (odd while the worker writes it);
 * stats_recent_clients() reads them without tearing.
 */
#define STATS_RECENT_CLIENTS 8
/* A verified client certificate's identity, cut to fit, NUL included. */
#define STATS_CLIENT_IDENTITY 64

struct stats_client {
	uint64_t seq;
	uint8_t addr[16];     /* IPv6, or IPv4 as ::ffff:a.b.c.d */
	uint16_t port;
	uint16_t proxied;     /* 1: the address came from a PROXY header */
	uint32_t pad0;
	int64_t when;         /* unix seconds */
	/* tls.identity of its client certificate once verified, else "". */
	char identity[STATS_CLIENT_IDENTITY];
};

/*
 * Per handler module, in every worker entry (index = the module's place in
 * the worker's list) and, folded by name, in the header.  X(name, help).
 */
#define STATS_MODULE_COUNTERS(X)                                              \
	X(requests, "Requests handed to the module")                          \
	X(replies, "Replies the module gave in time")                         \
	X(errors_unavailable, "ERROR 10 (unavailable) replies of the module") \
	X(errors_other, "Other ERROR replies of the module")                  \
	X(timeouts, "Requests answered with ERROR 11 at their deadline")      \
	X(late, "Completions dropped: late, repeated or for a cancelled request") \
	X(cancelled, "Requests cancelled because the client went away")       \
	X(invalid, "Replies refused (reserved command, too large), sent as ERROR 10") \
	X(slow_callbacks, "Callbacks that held the loop longer than block_warn")

enum stats_module_counter {
#define STATS_MOD_ENUM(name, help) STATS_MOD_##name,
	STATS_MODULE_COUNTERS(STATS_MOD_ENUM)
#undef STATS_MOD_ENUM
	STATS_MOD_NCOUNTERS
};

#define STATS_MODULES 9          /* CONF_MAX_MODULES and the default echo */
#define STATS_MODULE_NAME 32

struct stats_module {
	char name[STATS_MODULE_NAME]; /* "" = unused; written once at start */
	uint64_t counter[STATS_MOD_NCOUNTERS];
	uint64_t inflight;            /* gauge: requests at the module */
	uint64_t hist[STATS_HIST_BUCKETS]; /* request to reply */
	uint64_t hist_sum_ns;
};

struct stats_entry {
	/* Identity: written by the master before the fork, read by anyone. */
	int32_t pid;
	uint32_t slot;        /* listening-socket slot */
	uint32_t generation;  /* config generation the worker runs */
	uint32_t state;       /* enum stats_worker_state */
	uint32_t restarts;    /* respawns of this slot so far */
	uint32_t pad0;
	int64_t start_time;   /* unix seconds */
	/* Gauges, written by the worker. */
	uint64_t conn_active;
	uint64_t conn_idle;   /* active connections holding no buffer */
	uint64_t tls_open;    /* of those, on a TLS listener (handshake too) */
	/* CLOCK_MONOTONIC ms of the loop's last sign of life (watchdog.c). */
	uint64_t heartbeat_ms;
	/* Monotonic values, written by the worker. */
	struct stats_values v;
	/* The last STATS_RECENT_CLIENTS clients, written by the worker. */
	uint64_t recent_next;
	struct stats_client recent[STATS_RECENT_CLIENTS];
	/* The worker's modules, written by the worker. */
	struct stats_module mod[STATS_MODULES];
} __attribute__((aligned(STATS_ALIGN)));

/*
 * What the master runs, for goproctl status and the metrics: written by the
 * master only (at start, on each reload and stop) under fold_seq, so a
 * snapshot never sees half a string.
 */
#define STATS_MAX_LISTEN 16     /* CONF_MAX_LISTEN */
#define STATS_MAX_SLOTS 64      /* CONF_MAX_WORKERS */
#define STATS_TEXT_MAX 256

struct stats_listener {
	char text[64];        /* as configured: "0.0.0.0:8888" */
	uint32_t proxy;       /* 1: the listener expects a PROXY header */
	uint32_t pad0;
};

struct stats_info {
	char version[64];                 /* "goprod 0.1.0" */
	char conf_path[STATS_TEXT_MAX];   /* the configuration file read */
	char metrics_listen[64];          /* "" when off */
	uint32_t nlisten;
	uint32_t max_connections;         /* per worker */
	struct stats_listener listen[STATS_MAX_LISTEN];
	int64_t last_reload_time;         /* unix seconds; 0: none yet */
	int64_t last_reload_success_time; /* the start, or the last good reload */
	uint32_t last_reload_ok;          /* 1 when the last attempt succeeded */
	uint32_t stopping;                /* 1 while draining to exit */
	char last_reload_error[STATS_TEXT_MAX];  /* why it failed, or "" */
};

struct stats_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t header_size;  /* sizeof(struct stats_header) */
	uint32_t entry_size;   /* sizeof(struct stats_entry) */
	uint32_t nentries;
	uint64_t file_size;
	int32_t master_pid;
	uint32_t generation;   /* current config generation */
	int64_t start_time;    /* unix seconds the master started */
	uint32_t workers;      /* configured worker count */
	uint32_t reloads;      /* successful reloads */
	uint32_t reloads_failed;
	uint32_t upgrades;     /* binary upgrades in place (was padding) */
	uint64_t fold_seq;     /* odd while the master folds an entry */
	struct stats_values retired; /* exited workers' counters */
	/* Crash-loop rollbacks (master.c): how many, the last one's time
	 * (unix seconds), the generation it rolled back from. */
	uint32_t rollbacks;
	uint32_t rollback_from;
	int64_t rollback_time;
	/* When the TLS certificate of the current generation expires, unix
	 * seconds; 0 without a TLS listener. */
	int64_t tls_cert_expiry;
	struct stats_info info;
	/*
	 * Accept-queue depth of each listening socket, by listener and slot,
	 * sampled by the master once a second (TCP_INFO of a listener:
	 * tcpi_unacked).  A queue that grows on one slot is a stuck worker.
	 */
	uint32_t accept_queue[STATS_MAX_LISTEN][STATS_MAX_SLOTS];
	struct stats_module retired_mod[STATS_MODULES]; /* by module name */
} __attribute__((aligned(STATS_ALIGN)));

/* Master: entries per segment, enough for old and new generations. */
#define STATS_ENTRIES (2 * 64 + 16)

/*
 * The segment as a process sees it.  The master maps the file shared and
 * writes it.  A reader never maps it: whoever can replace or truncate the
 * file could then make it fault (SIGBUS) or lie about its own size.  A
 * reader pread()s the file into memory of its own (hdr, entries) and, for
 * the consistency checks, a second time (recheck); nentries is the count
 * validated against the file's size at open, the bound of every copy.
 */
struct stats_segment {
	struct stats_header *hdr;
	struct stats_entry *entries;
	struct stats_entry *recheck;  /* the master: entries themselves */
	size_t size;
	unsigned nentries;
	int fd;
	bool writable;
};

/* ------------------------------------------------------------ writers */

/*
 * The hot-path update: the entry has one writer, so a relaxed load and
 * store is enough and compiles to a plain add; readers load relaxed too.
 * Building with -DGOPRO_NO_STATS removes every update (for measuring what
 * the stats cost).
 */
#ifdef GOPRO_NO_STATS
#define stats_add(e, which, n) ((void)(e), (void)(which), (void)(n))
#else
static inline void
stats_add(struct stats_entry *e, enum stats_counter which, uint64_t n)
{
	uint64_t *c = &e->v.counter[which];

	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n,
	    __ATOMIC_RELAXED);
}
#endif
#define stats_inc(e, which) stats_add((e), (which), 1)

static inline void
stats_gauge_set(uint64_t *gauge, uint64_t v)
{
	__atomic_store_n(gauge, v, __ATOMIC_RELAXED);
}

/* Record n requests that each took ns nanoseconds. */
void stats_observe(struct stats_entry *e, uint64_t ns, uint64_t n);
/* The bucket for a latency; exposed for tests. */
unsigned stats_bucket(uint64_t ns);
/* Upper bound of bucket i in seconds (+Inf for the last). */
double stats_bucket_le(unsigned i);

struct sockaddr;

/*
 * Worker: remember a new client (not on the hot path: once per connection);
 * returns a ticket for stats_note_identity, 0 when nothing was recorded.
 */
uint64_t stats_note_client(struct stats_entry *e, const struct sockaddr *sa,
    bool proxied, int64_t now);
/*
 * Worker: the client that stats_note_client returned ticket for has this
 * TLS identity (cut to STATS_CLIENT_IDENTITY - 1 bytes).  Nothing happens
 * when ticket is 0 or newer clients have taken its slot since.
 */
void stats_note_identity(struct stats_entry *e, uint64_t ticket,
    const char *identity);
/*
 * Reader: copy the valid recent clients of entry e into out, newest first,
 * skipping a slot being written; returns how many.  recheck is the same
 * entry read again after e was read (e itself when e is the live mapping):
 * a slot counts only when its sequence number did not move in between.
 */
unsigned stats_recent_clients(const struct stats_entry *e,
    const struct stats_entry *recheck, struct stats_client *out,
    unsigned max);
/* "a.b.c.d:port" or "[v6]:port" for a recorded client. */
const char *stats_client_text(const struct stats_client *c, char *buf,
    size_t len);

/*
 * Master: create the file at path with nentries entries, mode 0640 and,
 * when gid is not -1, group gid (the daemon's: its members may read it).
 * A new file is renamed over path: whatever path held is never written.
 */
int stats_create(struct stats_segment *seg, const char *path,
    unsigned nentries, gid_t gid, char *err, size_t errlen);
/*
 * Reader: open an existing file, check magic, layout and size, and read it
 * once into memory of our own (hdr, entries); the file is never mapped.
 */
int stats_open(struct stats_segment *seg, const char *path, char *err,
    size_t errlen);
/*
 * Master after a binary upgrade: map the segment its predecessor created,
 * open as fd, read-write; the layout must be this program's.
 */
int stats_adopt(struct stats_segment *seg, int fd, const char *path,
    char *err, size_t errlen);
void stats_close(struct stats_segment *seg);

/* Master: replace the header's info, under the fold sequence counter. */
void stats_info_publish(struct stats_segment *seg, const struct stats_info *info);

/* Master: a free entry for a new worker (state FREE), or -1. */
int stats_entry_alloc(struct stats_segment *seg);
/*
 * Master: add an exited worker's values to the retired totals and free the
 * entry, under the fold sequence counter.
 */
void stats_entry_retire(struct stats_segment *seg, unsigned idx);

/*
 * Reader: a consistent snapshot of the header and of at most max entries
 * (retrying while a fold is in progress); hdr->nentries is set to the
 * number copied.  A reader's file is read afresh: -1 with errno ESTALE
 * when it no longer holds the segment that was opened (truncated,
 * replaced in place, corrupted), EAGAIN when folds never let up.
 */
int stats_snapshot(const struct stats_segment *seg, struct stats_header *hdr,
    struct stats_entry *entries, unsigned max);
/* Sum retired plus every live entry's values into total. */
void stats_total(const struct stats_header *hdr,
    const struct stats_entry *entries, unsigned n,
    struct stats_values *total);

const char *stats_state_name(uint32_t state);

/*
 * Reader: the modules of a snapshot, retired plus live, one per name
 * (names bounded and NUL-terminated); returns how many.
 */
unsigned stats_module_totals(const struct stats_header *hdr,
    const struct stats_entry *entries, unsigned n, struct stats_module *out,
    unsigned max);
/* Worker: one request of module m took ns nanoseconds. */
void stats_module_observe(struct stats_module *m, uint64_t ns);

#endif /* GOPRO_STATS_H */
