/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * stats.c - the shared-memory statistics segment (layout in stats.h).
 *
 * The master creates the file and maps it shared before it forks, so every
 * worker inherits the mapping and writes its own entry with relaxed atomic
 * stores.  Readers (goproctl, the metrics process) never map it: the file
 * lives in a directory the service account can write, so its content and
 * its size are hostile, and a mapping of a file truncated under us faults.
 * A reader pread()s the whole file twice, then keeps the first copy if the
 * sequence counters agree with the second: the only multi-word updates a
 * reader must not see half done are the master's fold of an exited worker
 * into the retired totals and a worker's write of a recent client, each
 * bracketed by a sequence counter.  The kernel copies the page cache with
 * aligned word (or wider) accesses, so a 64-bit counter is never torn.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nofollow.h"
#include "stats.h"

_Static_assert(sizeof(struct stats_header) % STATS_ALIGN == 0,
    "the header must end on a 128-byte boundary");
_Static_assert(sizeof(struct stats_entry) % STATS_ALIGN == 0,
    "each entry must start on a 128-byte boundary");
_Static_assert(sizeof(struct stats_values) % sizeof(uint64_t) == 0,
    "values are copied as 64-bit words");

/*
 * Far more than STATS_ENTRIES: a sanity bound for files we did not write
 * (a reader allocates twice the file's size, here at most 8 MiB).
 */
#define STATS_ENTRIES_LIMIT 4096u
/* Snapshot attempts before giving up while the master keeps folding. */
#define SNAPSHOT_TRIES 2000	/* about 2 s at most, with the back-off */

static size_t
segment_size(unsigned nentries)
{
	return sizeof(struct stats_header) +
	    (size_t)nentries * sizeof(struct stats_entry);
}

static void
segment_reset(struct stats_segment *seg)
{
	memset(seg, 0, sizeof(*seg));
	seg->fd = -1;
}

/* ------------------------------------------------------------ create */

/*
 * Refuse to replace the segment of a master that is still alive: a second
 * goprod started by mistake must not take the first one's statistics away.
 */
static int
check_not_in_use(const char *path, char *err, size_t errlen)
{
	struct stats_segment old;
	pid_t pid;
	char e[256];

	if (stats_open(&old, path, e, sizeof(e)) < 0)
		return 0;
	pid = old.hdr->master_pid;	/* our copy, read at open */
	stats_close(&old);
	if (pid <= 1 || pid == getpid() ||
	    (kill(pid, 0) < 0 && errno == ESRCH))
		return 0;
	snprintf(err, errlen, "stats file %s is in use by a running goprod "
	    "master (pid %ld); stop it first, or remove the file if that pid "
	    "is not goprod", path, (long)pid);
	return -1;
}

static void
header_init(struct stats_header *h, unsigned nentries, size_t size)
{
	h->magic = STATS_MAGIC;
	h->layout_version = STATS_LAYOUT_VERSION;
	h->header_size = sizeof(struct stats_header);
	h->entry_size = sizeof(struct stats_entry);
	h->nentries = nentries;
	h->file_size = size;
	h->master_pid = getpid();
	h->start_time = (int64_t)time(NULL);
}

/*
 * Build the new segment in a temporary file and rename it into place, so a
 * process that still maps an old file at path keeps a valid mapping
 * (truncating a mapped file would kill it with SIGBUS), and so that root
 * never writes through a link the service account put at path.  0640:
 * the file holds client addresses; the daemon's group may read them.
 */
static int
create_file(const char *path, size_t size, gid_t gid, char *err,
    size_t errlen)
{
	char tmp[PATH_MAX];
	int fd;

	fd = nofollow_create_beside(path, 0640, gid, tmp, sizeof(tmp));
	if (fd < 0) {
		snprintf(err, errlen, "cannot create stats file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (ftruncate(fd, (off_t)size) < 0 || nofollow_install(tmp, path) < 0) {
		snprintf(err, errlen, "cannot create stats file %s: %s", path,
		    strerror(errno));
		unlink(tmp);
		close(fd);
		return -1;
	}
	return fd;
}

int
stats_create(struct stats_segment *seg, const char *path, unsigned nentries,
    gid_t gid, char *err, size_t errlen)
{
	size_t size = segment_size(nentries);
	void *p;

	segment_reset(seg);
	if (nentries == 0 || nentries > STATS_ENTRIES_LIMIT) {
		snprintf(err, errlen, "stats file %s: %u entries is out of "
		    "range 1..%u", path, nentries, STATS_ENTRIES_LIMIT);
		return -1;
	}
	if (check_not_in_use(path, err, errlen) < 0)
		return -1;
	if ((seg->fd = create_file(path, size, gid, err, errlen)) < 0)
		return -1;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, seg->fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot map stats file %s: %s", path,
		    strerror(errno));
		close(seg->fd);
		segment_reset(seg);
		return -1;
	}
	seg->hdr = p;
	seg->entries = (struct stats_entry *)(seg->hdr + 1);
	seg->recheck = seg->entries;
	seg->size = size;
	seg->nentries = nentries;
	seg->writable = true;
	header_init(seg->hdr, nentries, size);
	return 0;
}

/* ------------------------------------------------------------ open */

static int
header_check(const struct stats_header *h, off_t file_size, const char *path,
    char *err, size_t errlen)
{
	const char *why = NULL;

	if (h->magic != STATS_MAGIC)
		why = "not a goprod stats file (bad magic)";
	else if (h->layout_version != STATS_LAYOUT_VERSION)
		why = "unsupported layout version";
	else if (h->header_size != sizeof(struct stats_header) ||
	    h->entry_size != sizeof(struct stats_entry))
		why = "header or entry size differs from this program's";
	else if (h->nentries == 0 || h->nentries > STATS_ENTRIES_LIMIT)
		why = "entry count out of range";
	else if (h->file_size != segment_size(h->nentries) ||
	    (uint64_t)file_size != h->file_size)
		why = "file size does not match the header (truncated?)";
	if (why == NULL)
		return 0;
	snprintf(err, errlen, "stats file %s: %s (layout %u, expected %u)",
	    path, why, h->layout_version, STATS_LAYOUT_VERSION);
	return -1;
}

static int
read_header(int fd, struct stats_header *h, off_t *size, const char *path,
    char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot stat stats file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "stats file %s: not a regular file", path);
		return -1;
	}
	*size = st.st_size;
	n = pread(fd, h, sizeof(*h), 0);
	if (n < 0) {
		snprintf(err, errlen, "cannot read stats file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if ((size_t)n < sizeof(*h)) {
		snprintf(err, errlen, "stats file %s: too short for a header "
		    "(%lld bytes)", path, (long long)st.st_size);
		return -1;
	}
	return header_check(h, st.st_size, path, err, errlen);
}

/* The whole file into buf; false when it is shorter than it was. */
static bool
read_whole(const struct stats_segment *seg, void *buf)
{
	size_t done = 0;

	while (done < seg->size) {
		ssize_t n = pread(seg->fd, (char *)buf + done,
		    seg->size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

/* Read both copies; false (errno ESTALE) when the file is not ours now. */
static bool
reader_fill(const struct stats_segment *seg)
{
	const struct stats_header *a = seg->hdr;

	if (!read_whole(seg, seg->hdr) ||
	    !read_whole(seg, (struct stats_header *)seg->recheck - 1) ||
	    a->magic != STATS_MAGIC ||
	    a->layout_version != STATS_LAYOUT_VERSION ||
	    a->nentries != seg->nentries || a->file_size != seg->size) {
		errno = ESTALE;
		return false;
	}
	return true;
}

/*
 * The reader's memory: the first copy (hdr, entries), then the second
 * (a header, then recheck), each of the file's size.
 */
static int
reader_alloc(struct stats_segment *seg, size_t size, unsigned nentries)
{
	char *p = aligned_alloc(STATS_ALIGN, 2 * size);

	if (p == NULL)
		return -1;
	seg->hdr = (struct stats_header *)p;
	seg->entries = (struct stats_entry *)(seg->hdr + 1);
	seg->recheck = (struct stats_entry *)((struct stats_header *)
	    (p + size) + 1);
	seg->size = size;
	seg->nentries = nentries;
	return 0;
}

int
stats_open(struct stats_segment *seg, const char *path, char *err,
    size_t errlen)
{
	struct stats_header h;
	off_t size;

	segment_reset(seg);
	/* Never block on a FIFO nor follow a link planted in the directory. */
	seg->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (seg->fd < 0) {
		snprintf(err, errlen, "cannot open stats file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (read_header(seg->fd, &h, &size, path, err, errlen) < 0)
		goto fail;
	if (reader_alloc(seg, (size_t)size, h.nentries) < 0) {
		snprintf(err, errlen, "stats file %s: out of memory", path);
		goto fail;
	}
	if (!reader_fill(seg)) {
		snprintf(err, errlen, "stats file %s: changed while read "
		    "(truncated or replaced in place)", path);
		goto fail;
	}
	return 0;
fail:
	stats_close(seg);
	return -1;
}

/*
 * The master's own file, inherited across an upgrade: mapped shared and
 * writable again, after the same checks as a reader's.
 */
int
stats_adopt(struct stats_segment *seg, int fd, const char *path, char *err,
    size_t errlen)
{
	struct stats_header h;
	off_t size;
	void *p;

	segment_reset(seg);
	seg->fd = fd;
	if (read_header(fd, &h, &size, path, err, errlen) < 0)
		goto fail;
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot map stats file %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	seg->hdr = p;
	seg->entries = (struct stats_entry *)(seg->hdr + 1);
	seg->recheck = seg->entries;
	seg->size = (size_t)size;
	seg->nentries = h.nentries;
	seg->writable = true;
	return 0;
fail:
	segment_reset(seg);
	return -1;
}

void
stats_close(struct stats_segment *seg)
{
	if (seg->writable && seg->hdr != NULL)
		munmap(seg->hdr, seg->size);
	else
		free(seg->hdr);
	if (seg->fd >= 0)
		close(seg->fd);
	segment_reset(seg);
}

/* ------------------------------------------------------------ master */

int
stats_entry_alloc(struct stats_segment *seg)
{
	/* Our own count: a worker could scribble on the header's. */
	for (unsigned i = 0; i < seg->nentries; i++) {
		struct stats_entry *e = &seg->entries[i];

		if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) !=
		    STATS_STATE_FREE)
			continue;
		/* Taken at once, so two calls never hand out one entry. */
		__atomic_store_n(&e->state, STATS_STATE_STARTING,
		    __ATOMIC_RELEASE);
		return (int)i;
	}
	return -1;
}

static void
store64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static void
fold_values(struct stats_values *into, struct stats_values *from)
{
	uint64_t *dst = (uint64_t *)into, *src = (uint64_t *)from;
	size_t n = sizeof(*into) / sizeof(uint64_t);

	for (size_t i = 0; i < n; i++) {
		uint64_t v = __atomic_load_n(&src[i], __ATOMIC_RELAXED);

		store64(&dst[i], __atomic_load_n(&dst[i], __ATOMIC_RELAXED) + v);
		store64(&src[i], 0);
	}
}

/* The name of a module slot, bounded by the mapping, "" when unused. */
static void
module_name(const struct stats_module *m, char out[STATS_MODULE_NAME])
{
	for (unsigned i = 0; i < STATS_MODULE_NAME; i++)
		out[i] = __atomic_load_n(&m->name[i], __ATOMIC_RELAXED);
	out[STATS_MODULE_NAME - 1] = '\0';
}

/* The slot of name in table, or a free one (named then), or NULL. */
static struct stats_module *
module_slot(struct stats_module *table, unsigned n, const char *name)
{
	char have[STATS_MODULE_NAME];

	for (unsigned i = 0; i < n; i++) {
		module_name(&table[i], have);
		if (strcmp(have, name) == 0)
			return &table[i];
		if (have[0] == '\0') {
			memcpy(table[i].name, name, STATS_MODULE_NAME);
			return &table[i];
		}
	}
	return NULL;
}

static void
fold_words(uint64_t *dst, uint64_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t v = __atomic_load_n(&src[i], __ATOMIC_RELAXED);

		store64(&dst[i], __atomic_load_n(&dst[i], __ATOMIC_RELAXED) + v);
		store64(&src[i], 0);
	}
}

/*
 * A worker's module counters go to the header's, by module name.  A worker
 * that exits closes its connections first, which cancels what its modules
 * still hold; an in-flight gauge above zero here means the worker died
 * (kill -9, a crash, the watchdog's SIGABRT) with those requests at the
 * module, and they are counted lost: no one will answer them.
 */
static void
fold_modules(struct stats_header *h, struct stats_entry *e)
{
	uint64_t *lost = &h->retired.counter[STATS_requests_lost];
	char name[STATS_MODULE_NAME];
	struct stats_module *to;

	for (unsigned i = 0; i < STATS_MODULES; i++) {
		struct stats_module *m = &e->mod[i];

		store64(lost, __atomic_load_n(lost, __ATOMIC_RELAXED) +
		    __atomic_load_n(&m->inflight, __ATOMIC_RELAXED));
		module_name(m, name);
		if (name[0] != '\0' &&
		    (to = module_slot(h->retired_mod, STATS_MODULES, name)) != NULL) {
			fold_words(to->counter, m->counter, STATS_MOD_NCOUNTERS);
			fold_words(to->hist, m->hist, STATS_HIST_BUCKETS + 1);
		}
		memset(m, 0, sizeof(*m));
	}
}

static void
identity_clear(struct stats_entry *e)
{
	__atomic_store_n(&e->pid, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->slot, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->generation, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->restarts, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->start_time, 0, __ATOMIC_RELAXED);
	store64(&e->conn_active, 0);
	store64(&e->conn_idle, 0);
	store64(&e->tls_open, 0);
	/* The next worker in this entry starts with no clients to show. */
	store64(&e->recent_next, 0);
	for (unsigned i = 0; i < STATS_RECENT_CLIENTS; i++)
		store64(&e->recent[i].seq, 0);
}

void
stats_entry_retire(struct stats_segment *seg, unsigned idx)
{
	struct stats_header *h = seg->hdr;
	struct stats_entry *e;
	uint64_t seq;

	if (idx >= seg->nentries)
		return;
	e = &seg->entries[idx];
	seq = __atomic_load_n(&h->fold_seq, __ATOMIC_RELAXED);
	/* Odd first, and visible before any value moves. */
	__atomic_store_n(&h->fold_seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	fold_values(&h->retired, &e->v);
	fold_modules(h, e);
	identity_clear(e);
	__atomic_store_n(&e->state, STATS_STATE_FREE, __ATOMIC_RELAXED);
	__atomic_store_n(&h->fold_seq, seq + 2, __ATOMIC_RELEASE);
}

void
stats_info_publish(struct stats_segment *seg, const struct stats_info *info)
{
	struct stats_header *h = seg->hdr;
	uint64_t seq = __atomic_load_n(&h->fold_seq, __ATOMIC_RELAXED);

	/* The same bracket as a fold: readers retry across it. */
	__atomic_store_n(&h->fold_seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(&h->info, info, sizeof(*info));
	__atomic_store_n(&h->fold_seq, seq + 2, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------ readers */

static void
copy_words(void *dst, const void *src, size_t bytes)
{
	uint64_t *d = dst;
	const uint64_t *s = src;

	for (size_t i = 0; i < bytes / sizeof(uint64_t); i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

/* One attempt on the master's live mapping. */
static bool
snapshot_live(const struct stats_segment *seg, struct stats_header *hdr,
    struct stats_entry *entries, unsigned n)
{
	uint64_t before, after;

	before = __atomic_load_n(&seg->hdr->fold_seq, __ATOMIC_ACQUIRE);
	if (before & 1)
		return false;
	copy_words(hdr, seg->hdr, sizeof(*hdr));
	copy_words(entries, seg->entries, (size_t)n * sizeof(*entries));
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	after = __atomic_load_n(&seg->hdr->fold_seq, __ATOMIC_RELAXED);
	return before == after;
}

/*
 * One attempt of a reader: the first copy is consistent when no fold was
 * under way as it began (even) and none began before the second copy read
 * the counter again.  -1 when the file is no longer the one we opened.
 */
static int
snapshot_read(const struct stats_segment *seg, struct stats_header *hdr,
    struct stats_entry *entries, unsigned n)
{
	const struct stats_header *again =
	    (const struct stats_header *)seg->recheck - 1;

	if (!reader_fill(seg))
		return -1;
	if ((seg->hdr->fold_seq & 1) || seg->hdr->fold_seq != again->fold_seq)
		return 0;
	memcpy(hdr, seg->hdr, sizeof(*hdr));
	memcpy(entries, seg->entries, (size_t)n * sizeof(*entries));
	return 1;
}

int
stats_snapshot(const struct stats_segment *seg, struct stats_header *hdr,
    struct stats_entry *entries, unsigned max)
{
	unsigned n = seg->nentries < max ? seg->nentries : max;
	int rc;

	for (int tries = 0; tries < SNAPSHOT_TRIES; tries++) {
		if (seg->writable)
			rc = snapshot_live(seg, hdr, entries, n);
		else if ((rc = snapshot_read(seg, hdr, entries, n)) < 0)
			return -1;
		if (rc) {
			hdr->nentries = n;
			return 0;
		}
		/*
		 * Folds are rare (a worker exits), so one retry is the usual
		 * case; under a storm of them, back off so the reader gets a
		 * window instead of giving up at once.
		 */
		if (tries < 16)
			sched_yield();
		else
			usleep(tries < 64 ? 100 : 1000);
	}
	errno = EAGAIN;
	return -1;
}

static void
values_add(struct stats_values *total, const struct stats_values *v)
{
	for (size_t i = 0; i < STATS_NCOUNTERS; i++)
		total->counter[i] += v->counter[i];
	for (size_t i = 0; i < STATS_HIST_BUCKETS; i++)
		total->hist[i] += v->hist[i];
	total->hist_sum_ns += v->hist_sum_ns;
}

void
stats_total(const struct stats_header *hdr, const struct stats_entry *entries,
    unsigned n, struct stats_values *total)
{
	*total = hdr->retired;
	/* A free entry holds zeros, so summing every entry is exact. */
	for (unsigned i = 0; i < n; i++)
		values_add(total, &entries[i].v);
}

/* ------------------------------------------------------------ histogram */

unsigned
stats_bucket(uint64_t ns)
{
	/*
	 * In half microseconds h every bound is a whole number: 2, 3, 4, 6,
	 * 8, 12, ... (2^(j+1) for bucket 2j, 3 * 2^j for bucket 2j + 1), and
	 * ns < bound <=> floor(ns / 500) < bound.  With k the bit length of
	 * h (2^(k-1) <= h < 2^k), h is below 3 * 2^(k-2) or 2^k.
	 */
	uint64_t h = ns / 500;
	unsigned k, i;

	if (h < 2)
		return 0;
	k = 64u - (unsigned)__builtin_clzll(h);
	i = h < 3ull << (k - 2) ? 2 * k - 3 : 2 * k - 2;
	return i < STATS_HIST_BUCKETS - 1 ? i : STATS_HIST_BUCKETS - 1;
}

double
stats_bucket_le(unsigned i)
{
	if (i >= STATS_HIST_BUCKETS - 1)
		return INFINITY;
	if (i % 2 == 1)
		return 1.5 * ldexp(1.0, (int)(i - 1) / 2) / 1e6;
	return ldexp(1.0, (int)i / 2) / 1e6;
}

void
stats_observe(struct stats_entry *e, uint64_t ns, uint64_t n)
{
#ifdef GOPRO_NO_STATS
	(void)e, (void)ns, (void)n;
#else
	uint64_t *b = &e->v.hist[stats_bucket(ns)];
	uint64_t *sum = &e->v.hist_sum_ns;

	store64(b, __atomic_load_n(b, __ATOMIC_RELAXED) + n);
	store64(sum, __atomic_load_n(sum, __ATOMIC_RELAXED) + ns * n);
#endif
}

const char *
stats_state_name(uint32_t state)
{
	static const char *const names[] = {
		[STATS_STATE_FREE] = "free",
		[STATS_STATE_STARTING] = "starting",
		[STATS_STATE_RUNNING] = "running",
		[STATS_STATE_DRAINING] = "draining",
		[STATS_STATE_EXITED] = "exited",
	};

	if (state >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[state];
}

/* ------------------------------------------------------------ clients */

uint64_t
stats_note_client(struct stats_entry *e, const struct sockaddr *sa,
    bool proxied, int64_t now)
{
	uint64_t next = __atomic_load_n(&e->recent_next, __ATOMIC_RELAXED);
	struct stats_client *c = &e->recent[next % STATS_RECENT_CLIENTS];
	uint64_t seq = __atomic_load_n(&c->seq, __ATOMIC_RELAXED);
	uint8_t addr[16] = { [10] = 0xFF, [11] = 0xFF };
	uint16_t port;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const void *)sa;
		memcpy(addr + 12, &in4->sin_addr, 4);
		port = ntohs(in4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		memcpy(addr, &in6->sin6_addr, 16);
		port = ntohs(in6->sin6_port);
	} else {
		return 0;
	}
	/* Odd while writing; readers skip the slot or retry. */
	__atomic_store_n(&c->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(c->addr, addr, sizeof(addr));
	c->port = port;
	c->proxied = proxied;
	c->when = now;
	memset(c->identity, 0, sizeof(c->identity));
	__atomic_store_n(&c->seq, seq + 2, __ATOMIC_RELEASE);
	__atomic_store_n(&e->recent_next, next + 1, __ATOMIC_RELEASE);
	return next + 1;
}

/*
 * The identity is known only after the handshake, so it is written into
 * the slot the connection's address took at accept, unless the ring has
 * wrapped past it (then the slot is another client's).
 */
void
stats_note_identity(struct stats_entry *e, uint64_t ticket,
    const char *identity)
{
	uint64_t next = __atomic_load_n(&e->recent_next, __ATOMIC_RELAXED);
	struct stats_client *c;
	uint64_t seq;

	if (ticket == 0 || ticket > next ||
	    next - ticket >= STATS_RECENT_CLIENTS)
		return;
	c = &e->recent[(ticket - 1) % STATS_RECENT_CLIENTS];
	seq = __atomic_load_n(&c->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&c->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memset(c->identity, 0, sizeof(c->identity));
	memcpy(c->identity, identity, strnlen(identity,
	    sizeof(c->identity) - 1));
	__atomic_store_n(&c->seq, seq + 2, __ATOMIC_RELEASE);
}

/*
 * One consistent copy of a slot, or false when it is empty or changing:
 * again is the slot as read after c (c itself on the live mapping).
 */
static bool
client_read(const struct stats_client *c, const struct stats_client *again,
    struct stats_client *out)
{
	uint64_t before = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);

	if (before == 0 || (before & 1))
		return false;
	memcpy(out, c, sizeof(*out));
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&again->seq, __ATOMIC_RELAXED) == before;
}

unsigned
stats_recent_clients(const struct stats_entry *e,
    const struct stats_entry *recheck, struct stats_client *out,
    unsigned max)
{
	uint64_t next = __atomic_load_n(&e->recent_next, __ATOMIC_ACQUIRE);
	unsigned n = 0;

	for (unsigned k = 1; k <= STATS_RECENT_CLIENTS && n < max; k++) {
		if (k > next)
			break;
		unsigned i = (unsigned)((next - k) % STATS_RECENT_CLIENTS);

		if (client_read(&e->recent[i], &recheck->recent[i], &out[n]))
			n++;
	}
	return n;
}

const char *
stats_client_text(const struct stats_client *c, char *buf, size_t len)
{
	static const uint8_t mapped[12] = { [10] = 0xFF, [11] = 0xFF };
	char host[INET6_ADDRSTRLEN];

	if (memcmp(c->addr, mapped, sizeof(mapped)) == 0) {
		inet_ntop(AF_INET, c->addr + 12, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, c->port);
	} else {
		inet_ntop(AF_INET6, c->addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, c->port);
	}
	return buf;
}

/* ------------------------------------------------------------ modules */

static void
module_add(struct stats_module *to, const struct stats_module *from)
{
	for (unsigned i = 0; i < STATS_MOD_NCOUNTERS; i++)
		to->counter[i] += __atomic_load_n(&from->counter[i],
		    __ATOMIC_RELAXED);
	to->inflight += __atomic_load_n(&from->inflight, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < STATS_HIST_BUCKETS; i++)
		to->hist[i] += __atomic_load_n(&from->hist[i], __ATOMIC_RELAXED);
	to->hist_sum_ns += __atomic_load_n(&from->hist_sum_ns,
	    __ATOMIC_RELAXED);
}

static void
module_sum(struct stats_module *out, unsigned max, unsigned *n,
    const struct stats_module *m)
{
	char name[STATS_MODULE_NAME];
	unsigned i;

	module_name(m, name);
	if (name[0] == '\0')
		return;
	for (i = 0; i < *n; i++)
		if (strcmp(out[i].name, name) == 0)
			break;
	if (i == *n) {
		if (*n >= max)
			return;
		memset(&out[i], 0, sizeof(out[i]));
		memcpy(out[i].name, name, sizeof(name));
		(*n)++;
	}
	module_add(&out[i], m);
}

unsigned
stats_module_totals(const struct stats_header *hdr,
    const struct stats_entry *entries, unsigned n, struct stats_module *out,
    unsigned max)
{
	unsigned count = 0;

	for (unsigned i = 0; i < STATS_MODULES; i++)
		module_sum(out, max, &count, &hdr->retired_mod[i]);
	for (unsigned e = 0; e < n; e++)
		if (entries[e].state != STATS_STATE_FREE)
			for (unsigned i = 0; i < STATS_MODULES; i++)
				module_sum(out, max, &count, &entries[e].mod[i]);
	return count;
}

void
stats_module_observe(struct stats_module *m, uint64_t ns)
{
	uint64_t *b = &m->hist[stats_bucket(ns)];

	__atomic_store_n(b, __atomic_load_n(b, __ATOMIC_RELAXED) + 1,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&m->hist_sum_ns, __atomic_load_n(&m->hist_sum_ns,
	    __ATOMIC_RELAXED) + ns, __ATOMIC_RELAXED);
}
