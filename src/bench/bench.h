/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench.h - gopro-bench, the load generator: its modules and their
 * interfaces.
 *
 *   bench_hist.c    a log-bucketed latency histogram (HdrHistogram-style)
 *   bench_opts.c    command line, request mix, numbers, addresses, the
 *                   open-loop schedule arithmetic
 *   bench_verify.c  pre-built request frames, and every reply checked
 *                   byte for byte against its request (the check itself,
 *                   bench_reply_check, is inline here: once per reply)
 *   bench_conn.c    one thread: a libev loop driving many connections,
 *                   each a libgopro async client (TLS: libgopro-tls)
 *   bench_report.c  the summary (text or JSON), progress lines, RSS, CPU
 *   gopro-bench.c   main: threads, signals, the hold-mode phases
 *
 * Everything but bench_conn.c and gopro-bench.c is pure enough to be unit
 * tested without a server (tests/bench/test_bench.c).
 */
#ifndef GOPRO_BENCH_H
#define GOPRO_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "gopro/gopro.h"

/* ------------------------------------------------------------ histogram */

/*
 * Values (nanoseconds) below 256 have a bucket each; above, every power of
 * two is split into 128 linear sub-buckets, so a bucket is never wider than
 * 1/128 of its lowest value and its midpoint is within 0.4% of any value
 * in it.  The whole uint64_t range fits in BENCH_HIST_BUCKETS counters.
 */
#define BENCH_HIST_SUB 128u
#define BENCH_HIST_BUCKETS (256u + 56u * BENCH_HIST_SUB)

struct bench_hist {
	uint64_t total;
	uint64_t min;
	uint64_t max;
	double sum;
	uint64_t counts[BENCH_HIST_BUCKETS];
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* The value at percentile p (0..100], within 0.4%; 0 when empty. */
uint64_t bench_hist_percentile(const struct bench_hist *h, double p);
double bench_hist_mean(const struct bench_hist *h);
/* Bucket arithmetic, exposed for the tests. */
uint64_t bench_hist_bucket_low(size_t index);
uint64_t bench_hist_bucket_width(size_t index);

/* The bucket of a value (inline, as is recording: once per reply). */
static inline size_t
bench_hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * BENCH_HIST_SUB)
		return (size_t)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - 7u; /* v >> shift lands in [128, 256) */
	return 256u + (size_t)(shift - 1u) * BENCH_HIST_SUB +
	    (size_t)((v >> shift) - BENCH_HIST_SUB);
}

/* Record count values of value (a count of 0 records nothing). */
static inline void
bench_hist_record(struct bench_hist *h, uint64_t v, uint64_t count)
{
	if (count == 0)
		return;
	h->counts[bench_hist_index(v)] += count;
	h->total += count;
	h->sum += (double)v * (double)count;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* ------------------------------------------------------------ requests */

enum bench_kind {
	BENCH_HEARTBEAT = 0,
	BENCH_MESSAGE,
	BENCH_LOGIN,
};
#define BENCH_KINDS 3

/* A request mix: kinds with weights, expanded into a repeating cycle. */
#define BENCH_MIX_WEIGHT_MAX 1000u
#define BENCH_MIX_CYCLE_MAX (BENCH_KINDS * BENCH_MIX_WEIGHT_MAX)
struct bench_mix {
	unsigned weight[BENCH_KINDS];
	unsigned total;
};

const char *bench_kind_name(enum bench_kind k);
/* "heartbeat:3,message:1", a weight of 1 may be left out; 0 or -1 + err. */
int bench_mix_parse(const char *spec, struct bench_mix *mix, char *err,
    size_t errlen);
/*
 * Fill cycle[0..mix->total) with the kinds spread evenly (smooth weighted
 * round robin: heartbeat:2,message:1 gives H M H, not H H M).
 */
void bench_mix_cycle(const struct bench_mix *mix, uint8_t *cycle);

/* ------------------------------------------------------------ errors */

/* Every way a reply can be wrong; see bench_error_name. */
#define BENCH_ERRORS(X)                                                       \
	X(COMMAND, "wrong command")                                           \
	X(LENGTH, "wrong length")                                             \
	X(BODY, "wrong body")                                                 \
	X(ORDER, "out of order")                                              \
	X(SERVER, "ERROR reply")                                              \
	X(UNEXPECTED, "unexpected frame")                                     \
	X(PROTOCOL, "bad frame")                                              \
	X(TIMEOUT, "missing reply (timeout)")                                 \
	X(CONNECT, "connect failed")                                          \
	X(CLOSED, "closed by server")
enum bench_error {
#define BENCH_ERR_ENUM(name, text) BENCH_ERR_##name,
	BENCH_ERRORS(BENCH_ERR_ENUM)
#undef BENCH_ERR_ENUM
	BENCH_ERR_COUNT
};
const char *bench_error_name(enum bench_error e);
/* Short identifier for JSON keys: "wrong_command", ... */
const char *bench_error_key(enum bench_error e);

/* Counters of one thread, merged into the totals at the end. */
#define BENCH_SERVER_ERR_SLOTS (GOPRO_ERR_MAX + 2) /* last: unknown code */
struct bench_stats {
	uint64_t sent;            /* measured requests sent */
	uint64_t ok;              /* measured replies verified */
	uint64_t warmup;          /* replies verified during the warm-up */
	uint64_t setup;           /* set-up LOGINs and hold-mode heartbeats */
	uint64_t errors[BENCH_ERR_COUNT];
	uint64_t server_errors[BENCH_SERVER_ERR_SLOTS];
	uint64_t lost;
	uint64_t goaways;
	uint64_t opened;
	uint64_t closed;
	uint64_t tls_full;        /* --tls: full handshakes */
	uint64_t tls_resumed;     /* --tls: resumed handshakes */
	uint64_t bytes_out;
	uint64_t bytes_in;
	uint64_t last_reply_ns;   /* monotonic time of the last measured reply */
	struct bench_hist hist;
};

void bench_stats_init(struct bench_stats *s);
void bench_stats_merge(struct bench_stats *dst, const struct bench_stats *src);
uint64_t bench_stats_errors(const struct bench_stats *s);

/* ------------------------------------------------------------ verifier */

/*
 * The pre-built frames: one request and its exact expected reply per kind.
 * Bodies of HEARTBEAT and MESSAGE carry the connection's request number in
 * their first 8 bytes (when the body is that long), so a reply answered out
 * of order or twice is caught, not only a corrupted one.
 */
#define BENCH_SEQ_SIZE 8u
struct bench_template {
	uint8_t *request;
	size_t request_len;
	uint8_t *reply;
	size_t reply_len;
	size_t seq_req_at;        /* offset of the number in the request */
	size_t seq_reply_at;      /* ... in the reply; 0 when not carried */
};

struct bench_plan {
	struct bench_template t[BENCH_KINDS];
	uint32_t max_reply_body;  /* the decoder's limit */
	size_t max_request;
	size_t max_reply;
	bool any_body;            /* --any-reply: only the command is checked */
};

struct bench_plan_conf {
	size_t body;              /* HEARTBEAT and MESSAGE body size */
	const char *prefix;       /* expected MESSAGE prefix */
	const char *user;         /* NULL: no LOGIN */
	const char *password;
	bool any_body;            /* a reply's body is not compared */
};

/* 0, or -1 with a message in err (no memory, LOGIN out of range). */
int bench_plan_init(struct bench_plan *p, const struct bench_plan_conf *conf,
    char *err, size_t errlen);
void bench_plan_free(struct bench_plan *p);
/* Append the request of kind k numbered seq to out (reserved by caller). */
size_t bench_plan_write(const struct bench_plan *p, enum bench_kind k,
    uint64_t seq, uint8_t *out);

/*
 * The request number carried at p, big-endian, written and read: spelt
 * out byte by byte, which compilers turn into one load or store and a
 * byte swap.
 */
static inline void
bench_seq_put(uint8_t *p, uint64_t seq)
{
	p[0] = (uint8_t)(seq >> 56);
	p[1] = (uint8_t)(seq >> 48);
	p[2] = (uint8_t)(seq >> 40);
	p[3] = (uint8_t)(seq >> 32);
	p[4] = (uint8_t)(seq >> 24);
	p[5] = (uint8_t)(seq >> 16);
	p[6] = (uint8_t)(seq >> 8);
	p[7] = (uint8_t)seq;
}

static inline uint64_t
bench_seq_get(const uint8_t *p)
{
	return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 |
	    (uint64_t)p[2] << 40 | (uint64_t)p[3] << 32 |
	    (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
	    (uint64_t)p[6] << 8 | (uint64_t)p[7];
}

/*
 * Compare a reply frame with what the request (kind, seq) must get back:
 * -1 when it is exactly right, or the bench_error describing the first
 * difference (command, then length, then bytes).  Inline, as is
 * bench_reply_check: they run once per reply, in the reply callback.
 */
static inline int
bench_plan_check(const struct bench_plan *p, enum bench_kind k, uint64_t seq,
    const struct gopro_frame *f)
{
	const struct bench_template *t = &p->t[k];
	const uint8_t *want = t->reply + GOPRO_HEADER_SIZE;
	size_t at, len = f->header.length;

	if (f->header.command != t->reply[3])
		return BENCH_ERR_COMMAND;
	if (p->any_body)
		return -1;
	if (len != t->reply_len - GOPRO_HEADER_SIZE)
		return BENCH_ERR_LENGTH;
	/* No call to memcmp for the empty parts (a HEARTBEAT's body). */
	if (t->seq_reply_at == 0)
		return len == 0 || memcmp(f->body, want, len) == 0 ? -1 :
		    BENCH_ERR_BODY;
	/* The bytes around the number, then the number. */
	at = t->seq_reply_at - GOPRO_HEADER_SIZE;
	if ((at > 0 && memcmp(f->body, want, at) != 0) ||
	    (len - at > BENCH_SEQ_SIZE && memcmp(f->body + at + BENCH_SEQ_SIZE,
	    want + at + BENCH_SEQ_SIZE, len - at - BENCH_SEQ_SIZE) != 0))
		return BENCH_ERR_BODY;
	if (bench_seq_get(f->body + at) != seq)
		return BENCH_ERR_ORDER;
	return -1;
}

/* One request on the wire, waiting for its reply. */
struct bench_pending {
	uint64_t t0;              /* send time, or intended time (open loop) */
	uint64_t seq;
	uint8_t kind;
	uint8_t flags;
};
#define BENCH_PENDING_MEASURED 0x01 /* counts in the histogram */
#define BENCH_PENDING_SETUP 0x02    /* a hold-mode heartbeat */

/* What a reply means for its connection. */
enum bench_reply {
	BENCH_REPLY_GOOD = 0,     /* exactly what the request must get */
	BENCH_REPLY_WRONG,        /* counted as an error; the stream goes on */
	BENCH_REPLY_CLOSING,      /* an ERROR after which the server closes */
	BENCH_REPLY_BROKEN,       /* a malformed ERROR: close the connection */
};

/* An ERROR in place of the reply to e: counted by code in st. */
enum bench_reply bench_reply_error(const struct bench_pending *e,
    const struct gopro_frame *f, struct bench_stats *st);

/*
 * Check the reply f to the request e, arrived at now, and count it in st
 * (ok and the latency, warm-up, set-up, or the error, with the server's
 * code for an ERROR; bytes_in in every case).
 */
static inline enum bench_reply
bench_reply_check(const struct bench_plan *p, const struct bench_pending *e,
    const struct gopro_frame *f, uint64_t now, struct bench_stats *st)
{
	int bad;

	st->bytes_in += f->size;
	if (f->header.command == GOPRO_CMD_ERROR)
		return bench_reply_error(e, f, st);
	bad = bench_plan_check(p, (enum bench_kind)e->kind, e->seq, f);
	if (bad >= 0) {
		st->errors[bad]++;
		return BENCH_REPLY_WRONG;
	}
	if (e->flags & BENCH_PENDING_SETUP) {
		st->setup++;
	} else if (e->flags & BENCH_PENDING_MEASURED) {
		st->ok++;
		bench_hist_record(&st->hist, now > e->t0 ? now - e->t0 : 0, 1);
		st->last_reply_ns = now;
	} else
		st->warmup++;
	return BENCH_REPLY_GOOD;
}
/* A request that got no reply: a missing-reply error, or lost. */
void bench_reply_missing(struct bench_stats *st, bool timeout);

/* ------------------------------------------------------------ schedule */

/*
 * The open-loop schedule: R requests/s in total over n connections, the
 * connections staggered evenly, so request k of connection i is due at
 * start + (i + k * n) / R seconds.  Latency is measured from that time.
 */
struct bench_sched {
	uint64_t start_ns;
	double gap_ns;            /* 1e9 / R */
	unsigned conns;
};

void bench_sched_init(struct bench_sched *s, uint64_t start_ns, double rate,
    unsigned conns);
uint64_t bench_sched_intended(const struct bench_sched *s, unsigned conn,
    uint64_t k);
/* How many requests of conn are due at now (k = 0 .. result - 1). */
uint64_t bench_sched_due(const struct bench_sched *s, unsigned conn,
    uint64_t now);

/* ------------------------------------------------------------ options */

#define BENCH_SOURCES_MAX 64
struct bench_opts {
	const char *server;       /* "host:port" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct sockaddr_storage source[BENCH_SOURCES_MAX];
	unsigned nsources;
	struct bench_mix mix;
	size_t body;
	unsigned conns;
	unsigned depth;
	unsigned threads;
	double duration;          /* 0 with -n */
	uint64_t requests;        /* 0 with -d */
	double warmup;
	double rate;              /* 0: closed loop */
	double timeout;
	double hold;              /* 0: load mode */
	double connect_rate;      /* connections/s, 0: at once */
	pid_t server_pid;
	const char *prefix;
	const char *user;
	const char *password;
	bool json;
	bool quiet;
	bool allow_lost;
	bool any_reply;           /* --any-reply */
	bool tls;                 /* --tls */
	bool tls_no_resume;       /* --no-resume: every handshake in full */
	uint64_t reconnect_every; /* a new connection after n replies; 0 off */
};

enum bench_opts_result {
	BENCH_OPTS_RUN = 0,
	BENCH_OPTS_HELP,
	BENCH_OPTS_VERSION,
	BENCH_OPTS_USAGE,         /* bad usage: message in err */
};

enum bench_opts_result bench_opts_parse(struct bench_opts *o, int argc,
    char **argv, char *err, size_t errlen);
void bench_usage(FILE *f);
/* bench_usage, then every option with its default (--help). */
void bench_help(FILE *f);
/* "64", "4k", "1M" (KiB, MiB, GiB); 0 or -1. */
int bench_parse_size(const char *s, uint64_t max, uint64_t *out);
/* A decimal count within [min, max]; 0 or -1. */
int bench_parse_count(const char *s, uint64_t min, uint64_t max,
    uint64_t *out);
/* Seconds, "1.5"; within [min, max]; 0 or -1. */
int bench_parse_seconds(const char *s, double min, double max, double *out);
/* A duration with gopro.conf's units: "1.5", "10s", "250ms", "2m", "1h". */
int bench_parse_duration(const char *s, double min, double max, double *out);
/* "127.0.0.2,::1": numeric addresses; 0 or -1 + err. */
int bench_parse_sources(const char *list, struct sockaddr_storage *out,
    unsigned max, unsigned *n, char *err, size_t errlen);
/* "host:port" or "[v6]:port", names resolved; 0 or -1 + err. */
int bench_parse_address(const char *hostport, struct sockaddr_storage *ss,
    socklen_t *len, char *err, size_t errlen);

/* ------------------------------------------------------------ threads */

/* Phases of the hold mode, driven by main through bench_shared.phase. */
enum bench_phase {
	BENCH_PHASE_OPEN = 0,     /* open and verify each connection */
	BENCH_PHASE_IDLE,         /* keep them open, send nothing */
	BENCH_PHASE_CHECK,        /* verify each survivor again */
	BENCH_PHASE_FINISH,       /* close everything and stop */
};

/* What every thread reads; written by main before the threads start. */
struct bench_shared {
	const struct bench_opts *opts;
	const struct bench_plan *plan;
	const uint8_t *cycle;     /* the mix, mix.total entries */
	uint64_t start_ns;        /* load starts (connections open) */
	uint64_t measure_ns;      /* warm-up over */
	uint64_t end_ns;          /* no request sent after this (-d) */
	struct bench_sched sched;
	int stop;                 /* atomic: SIGINT, stop sending */
	int phase;                /* atomic: enum bench_phase */
};

/* Published by a thread several times a second, read with atomics. */
struct bench_progress {
	uint64_t ok;
	uint64_t errors;
	uint64_t lost;
	uint64_t open;            /* connections established now */
	uint64_t opened;          /* connections established so far */
	const char *connect_error; /* why the first connect failed, or NULL */
	uint64_t held;            /* hold: verified once */
	uint64_t survived;        /* hold: verified twice */
	uint64_t failed;          /* hold: failed or closed */
	uint64_t pending;         /* hold: connections not settled yet */
	int phase;                /* hold: the last phase acted upon */
	int done;
};

struct bench_thread;
/* A thread for connections [first, first + n) with its share of -n. */
struct bench_thread *bench_thread_new(const struct bench_shared *sh,
    unsigned index, unsigned first, unsigned n, uint64_t quota);
void bench_thread_free(struct bench_thread *t);
/* pthread entry point. */
void *bench_thread_run(void *arg);
const struct bench_stats *bench_thread_stats(const struct bench_thread *t);
void bench_thread_progress(const struct bench_thread *t,
    struct bench_progress *p);

/* ------------------------------------------------------------ report */

struct bench_result {
	const struct bench_opts *opts;
	struct bench_stats stats;
	double elapsed;           /* measured seconds */
	double cpu_user;
	double cpu_sys;
	/* hold mode */
	uint64_t held;
	uint64_t survived;
	uint64_t failed;
	long rss_before;          /* KiB, -1 when unknown */
	long rss_idle;
	long rss_after;
};

/* Monotonic nanoseconds. */
uint64_t bench_now_ns(void);
/* A "kB" field of /proc/PID/status (VmRSS, VmSize...), -1 when unreadable. */
long bench_status_kib(pid_t pid, const char *field);
/* VmRSS of pid in KiB, -1 when unreadable. */
long bench_rss_kib(pid_t pid);
/* VmRSS of pid and of its children (a master and its workers), -1 likewise. */
long bench_rss_tree_kib(pid_t pid);
void bench_report_text(FILE *f, const struct bench_result *r);
void bench_report_json(FILE *f, const struct bench_result *r);
void bench_report_progress(FILE *f, double t, const struct bench_progress *p,
    uint64_t prev_ok, double dt, bool hold);
/* 0 when the run passed, 1 otherwise (errors, lost, failed holds). */
int bench_result_status(const struct bench_result *r);

#endif /* GOPRO_BENCH_H */
