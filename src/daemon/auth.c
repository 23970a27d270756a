/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * auth.c - LOGIN support (see auth.h): the users file, password checks, the
 * hashing thread pool of a worker and the per-address login rate limit.
 *
 * Password hashes are slow on purpose, so a worker never computes one on its
 * event loop: conn.c hands each LOGIN to the pool, whose threads run
 * auth_verify and report back through an ev_async, and the callback runs on
 * the loop thread like every other event.  The users object is reference
 * counted so that a reload can swap files while checks against the old one
 * are still running.  The rate limiter is a plain fixed-size table consulted
 * on the loop thread before anything is queued.
 */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "auth.h"
#include "threadpool.h"
#include "gopro/gopro.h"
#include "log.h"

/* ------------------------------------------------------------ users file */

struct auth_user {
	char name[GOPRO_USER_MAX];
	size_t name_len;
	char *hash;
	unsigned line;
};

struct auth_users {
	atomic_uint refs;
	struct auth_user *v;	/* sorted by name for bsearch */
	size_t n, cap;
	/* Unknown users are checked against this, at the costliest real cost. */
	char *dummy;
	unsigned dummy_line;	/* the line whose method and cost it copies */
	char *warning;		/* hashes of different methods or costs */
};

/* Every crypt_rn call, so the tests can see the unknown-user path hash. */
static atomic_ulong auth_hashes;

static void auth_say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
auth_say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void
users_destroy(struct auth_users *users)
{
	for (size_t i = 0; i < users->n; i++)
		free(users->v[i].hash);
	free(users->v);
	free(users->dummy);
	free(users->warning);
	free(users);
}

/*
 * Open the file and check what it is through the descriptor, so the checks
 * apply to the file actually read.  Group access is allowed (root:goprod
 * 0640 is the expected setup); access by others is not, as the hashes can
 * be attacked offline and a writable file lets anyone add a user.
 */
static FILE *
users_open(const char *path, char *err, size_t errlen)
{
	struct stat st;
	FILE *f;
	int fd;

	/* O_NONBLOCK: a FIFO in place of the file must not hang the open. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) <
	    0) {
		auth_say(err, errlen, "%s: cannot open: %s", path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		auth_say(err, errlen, "%s: cannot stat: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		auth_say(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		auth_say(err, errlen, "%s: readable or writable by others "
		    "(mode %04o); chmod o-rw it", path,
		    (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		auth_say(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	return f;
fail:
	close(fd);
	return NULL;
}

/* A name: 1..GOPRO_USER_MAX printable bytes other than ':' and space. */
static const char *
check_name(const char *name, size_t len)
{
	if (len == 0)
		return "empty user name";
	if (len > GOPRO_USER_MAX)
		return "user name longer than 64 bytes";
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch <= ' ' || ch == 0x7f)
			return "user name contains whitespace or a control "
			    "character";
	}
	return NULL;
}

/*
 * A hash crypt(3) can use.  crypt_checksalt only looks at the method and
 * its parameters, so also require the "$method$...$checksum" shape, which
 * catches a hash cut down to its setting (that would never match).  A full
 * trial crypt of every hash would cost a login's worth of CPU per user at
 * each start and reload; only the first hash of each method and cost gets
 * one (users_dummy).
 */
static const char *
check_hash(const char *hash, size_t len)
{
	const char *last;

	if (len == 0)
		return "empty password hash";
	if (len >= CRYPT_OUTPUT_SIZE)
		return "password hash too long";
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)hash[i];

		if (ch <= ' ' || ch == 0x7f)
			return "password hash contains whitespace or a "
			    "control character";
	}
	/*
	 * Anything but "$id$...", 13 characters of DES or a locked account
	 * ("*", "!...") is no hash at all: most likely a password in clear.
	 */
	if (strchr("$*!", hash[0]) == NULL && (len != 13 || strspn(hash,
	    "./0123456789"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != 13))
		return "not a crypt(3) hash (a password in clear? make the "
		    "line with goproctl passwd)";
	switch (crypt_checksalt(hash)) {
	case CRYPT_SALT_OK:
		break;
	case CRYPT_SALT_METHOD_LEGACY:
		return "password hash uses an obsolete method; rehash it "
		    "with yescrypt ($y$) or sha512-crypt ($6$)";
	default:
		return "password hash method not supported by crypt(3)";
	}
	last = strrchr(hash, '$');
	if (hash[0] != '$' || last == NULL || last[1] == '\0' ||
	    memchr(hash + 1, '$', (size_t)(last - hash - 1)) == NULL)
		return "password hash has no checksum after its setting";
	return NULL;
}

/* Parse "name:hash" into u; returns NULL or why the line is refused. */
static const char *
parse_line(char *line, size_t len, struct auth_user *u)
{
	const char *why;
	char *colon, *hash;
	size_t name_len;

	if (memchr(line, '\0', len) != NULL)
		return "NUL byte in line";
	if ((colon = memchr(line, ':', len)) == NULL)
		return "no ':' between user name and password hash";
	name_len = (size_t)(colon - line);
	if ((why = check_name(line, name_len)) != NULL)
		return why;
	hash = colon + 1;
	if ((why = check_hash(hash, len - name_len - 1)) != NULL)
		return why;
	if ((u->hash = strdup(hash)) == NULL)
		return strerror(errno);
	memcpy(u->name, line, name_len);
	u->name_len = name_len;
	return NULL;
}

static bool
line_is_blank(const char *line)
{
	line += strspn(line, " \t");
	return *line == '\0' || *line == '#';
}

static int
users_append(struct auth_users *users, const struct auth_user *u)
{
	struct auth_user *v;
	size_t cap;

	if (users->n == users->cap) {
		cap = users->cap ? users->cap * 2 : 16;
		if ((v = reallocarray(users->v, cap, sizeof(*v))) == NULL)
			return -1;
		users->v = v;
		users->cap = cap;
	}
	users->v[users->n++] = *u;
	return 0;
}

/* Read every line; returns 0 or -1 with the reason in err. */
static int
users_read(struct auth_users *users, FILE *f, const char *path, char *err,
    size_t errlen)
{
	struct auth_user u;
	char *line = NULL;
	size_t size = 0;
	ssize_t len;
	unsigned lineno = 0;
	const char *why;
	int rc = -1;

	while ((len = getline(&line, &size, f)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (line_is_blank(line))
			continue;
		memset(&u, 0, sizeof(u));
		u.line = lineno;
		if ((why = parse_line(line, (size_t)len, &u)) != NULL) {
			auth_say(err, errlen, "%s:%u: %s", path, lineno, why);
			goto out;
		}
		if (users_append(users, &u) < 0) {
			free(u.hash);
			auth_say(err, errlen, "%s:%u: %s", path, lineno,
			    strerror(errno));
			goto out;
		}
	}
	if (ferror(f)) {
		auth_say(err, errlen, "%s: read error: %s", path,
		    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(line);
	return rc;
}

static int
name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

static int
user_cmp(const void *pa, const void *pb)
{
	const struct auth_user *a = pa, *b = pb;

	return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

/* Sort for bsearch; a name met twice is an error, named with both lines. */
static int
users_sort(struct auth_users *users, const char *path, char *err,
    size_t errlen)
{
	const struct auth_user *a, *b;

	if (users->n == 0)
		return 0;
	qsort(users->v, users->n, sizeof(users->v[0]), user_cmp);
	for (size_t i = 1; i < users->n; i++) {
		a = &users->v[i - 1];
		b = &users->v[i];
		if (user_cmp(a, b) != 0)
			continue;
		if (a->line > b->line) {
			a = b;
			b = &users->v[i - 1];
		}
		auth_say(err, errlen, "%s:%u: duplicate user \"%.*s\" "
		    "(first on line %u)", path, b->line, (int)b->name_len,
		    b->name, a->line);
		return -1;
	}
	return 0;
}

/* Fill buf with a NUL-terminated random phrase that no one can guess. */
static int
random_phrase(char *buf, size_t size)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned char rnd[32];

	if (size > sizeof(rnd) + 1)
		size = sizeof(rnd) + 1;
	if (getrandom(rnd, size - 1, 0) != (ssize_t)(size - 1))
		return -1;
	for (size_t i = 0; i + 1 < size; i++)
		buf[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
	buf[size - 1] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
	return 0;
}

/*
 * The length of a hash's method and cost, the text before its salt:
 * "$6$rounds=5000$", "$y$j9T$", "$2b$12$".  Hashes with the same prefix
 * cost the same to check.  bcrypt puts no '$' between its salt and its
 * checksum, scrypt ($7$) encodes its parameters in the 11 characters in
 * front of the salt; every other method ends its parameters with the '$'
 * before the salt.
 */
static size_t
hash_cost_len(const char *hash)
{
	const char *last = strrchr(hash, '$');
	size_t n = 0;

	if (strncmp(hash, "$2", 2) == 0)
		return (size_t)(last - hash) + 1;
	if (strncmp(hash, "$7$", 3) == 0)
		return strnlen(hash, 14);
	for (const char *p = hash; p < last; p++)
		if (*p == '$')
			n = (size_t)(p - hash) + 1;
	return n;
}

static bool
same_cost(const char *a, const char *b)
{
	size_t n = hash_cost_len(a);

	return n == hash_cost_len(b) && memcmp(a, b, n) == 0;
}

static int
line_cmp(const void *pa, const void *pb)
{
	const struct auth_user *a = *(const struct auth_user *const *)pa;
	const struct auth_user *b = *(const struct auth_user *const *)pb;

	return (a->line > b->line) - (a->line < b->line);
}

/* The users in file order; NULL when there are none or on ENOMEM. */
static const struct auth_user **
users_by_line(const struct auth_users *users)
{
	const struct auth_user **by;

	if (users->n == 0 ||
	    (by = calloc(users->n, sizeof(*by))) == NULL)
		return NULL;
	for (size_t i = 0; i < users->n; i++)
		by[i] = &users->v[i];
	qsort(by, users->n, sizeof(*by), line_cmp);
	return by;
}

/*
 * The first user of each method and cost, in file order, into kinds (room
 * for n); returns how many.
 */
static size_t
users_kinds(const struct auth_user **by, size_t n,
    const struct auth_user **kinds)
{
	size_t k = 0, j;

	for (size_t i = 0; i < n; i++) {
		for (j = 0; j < k && !same_cost(kinds[j]->hash, by[i]->hash);
		    j++)
			;
		if (j == k)
			kinds[k++] = by[i];
	}
	return k;
}

static double
thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * One check with setting as the salt and cost and a random phrase: the
 * CPU seconds it took, its output in out (CRYPT_OUTPUT_SIZE bytes), or -1
 * when crypt(3) cannot use the setting.
 */
static double
trial_crypt(const char *setting, char *out)
{
	struct crypt_data *cd;
	char phrase[33];
	const char *res;
	double t0, cpu = -1;

	if ((cd = calloc(1, sizeof(*cd))) == NULL ||
	    random_phrase(phrase, sizeof(phrase)) < 0) {
		free(cd);
		return -1;
	}
	t0 = thread_cpu();
	res = crypt_rn(phrase, setting, cd, sizeof(*cd));
	atomic_fetch_add_explicit(&auth_hashes, 1, memory_order_relaxed);
	if (res != NULL && res[0] != '*') {
		cpu = thread_cpu() - t0;
		memcpy(out, cd->output, CRYPT_OUTPUT_SIZE);
	}
	explicit_bzero(cd, sizeof(*cd));
	explicit_bzero(phrase, sizeof(phrase));
	free(cd);
	return cpu;
}

/* Append to a growing message; the first failure leaves it NULL. */
static void
say_more(char **msg, size_t *len, FILE **f, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
say_more(char **msg, size_t *len, FILE **f, const char *fmt, ...)
{
	va_list ap;

	if (*f == NULL && (*f = open_memstream(msg, len)) == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(*f, fmt, ap);
	va_end(ap);
}

/* "line 3" or "lines 3, 7, 12" of the users hashed like u, 8 at most. */
static void
say_lines(char **msg, size_t *len, FILE **f, const struct auth_user **by,
    size_t n, const struct auth_user *u)
{
	unsigned count = 0, shown = 0;

	for (size_t i = 0; i < n; i++)
		count += same_cost(by[i]->hash, u->hash);
	say_more(msg, len, f, "line%s ", count > 1 ? "s" : "");
	for (size_t i = 0; i < n && shown < 8; i++)
		if (same_cost(by[i]->hash, u->hash))
			say_more(msg, len, f, "%s%u", shown++ ? ", " : "",
			    by[i]->line);
	if (count > shown)
		say_more(msg, len, f, " and %u more", count - shown);
}

/*
 * The warning for a file whose hashes differ in method or cost: a failed
 * login of a user hashed cheaper than the dummy is answered faster than an
 * unknown user's, which tells that the user exists.
 */
static void
users_warn_mixed(struct auth_users *users, const char *path,
    const struct auth_user **by, const struct auth_user **kinds, size_t k,
    const struct auth_user *costly)
{
	size_t len = 0;
	FILE *f = NULL;

	say_more(&users->warning, &len, &f, "%s: password hashes differ in "
	    "method or cost, so a failed login's time tells whether the user "
	    "exists; rehash every user like line %u (%.*s), the costliest, "
	    "which unknown users are checked at:", path, costly->line,
	    (int)hash_cost_len(costly->hash), costly->hash);
	for (size_t i = 0; i < k; i++) {
		say_more(&users->warning, &len, &f, "%s %.*s on ",
		    i ? ";" : "", (int)hash_cost_len(kinds[i]->hash),
		    kinds[i]->hash);
		say_lines(&users->warning, &len, &f, by, users->n, kinds[i]);
	}
	if (f != NULL && fclose(f) != 0) {
		free(users->warning);
		users->warning = NULL;
	}
}

/*
 * The dummy hash for unknown users.  libxcrypt has no call that reads the
 * cost back out of a hash, so the first hash of each method and cost is
 * tried once (that also proves it usable) and the one that took the most
 * CPU time serves as the setting: an unknown user costs what the costliest
 * real user costs, never less.  Its checksum is that of a random phrase,
 * so it matches no password of the real user.  An empty file gets a fresh
 * yescrypt setting at the default cost.
 */
/* The dummy from the costliest kind (*costly), into users; 0 or -1. */
static int
users_dummy_of(struct auth_users *users, const char *path,
    const struct auth_user **kinds, size_t k,
    const struct auth_user **costly, char *err, size_t errlen)
{
	char out[CRYPT_OUTPUT_SIZE];
	double cpu, most = -1;

	for (size_t i = 0; i < k; i++) {
		if ((cpu = trial_crypt(kinds[i]->hash, out)) < 0) {
			auth_say(err, errlen, "%s:%u: crypt(3) cannot use this "
			    "password hash (bad parameters or salt)", path,
			    kinds[i]->line);
			return -1;
		}
		if (cpu > most) {
			most = cpu;
			*costly = kinds[i];
			users->dummy_line = kinds[i]->line;
			free(users->dummy);
			users->dummy = strdup(out);
		}
	}
	explicit_bzero(out, sizeof(out));
	return 0;
}

/* The dummy of an empty file: yescrypt, or crypt(3)'s default method. */
static void
users_dummy_default(struct auth_users *users)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE], out[CRYPT_OUTPUT_SIZE];

	if ((crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) !=
	    NULL || crypt_gensalt_rn(NULL, 0, NULL, 0, setting,
	    sizeof(setting)) != NULL) && trial_crypt(setting, out) >= 0)
		users->dummy = strdup(out);
	explicit_bzero(out, sizeof(out));
}

/*
 * The dummy hash for unknown users.  libxcrypt has no call that reads the
 * cost back out of a hash, so the first hash of each method and cost is
 * tried once (that also proves it usable) and the one that took the most
 * CPU time serves as the setting: an unknown user costs what the costliest
 * real user costs, never less.  Its checksum is that of a random phrase,
 * so it matches no password of the real user.
 */
static int
users_dummy(struct auth_users *users, const char *path, char *err,
    size_t errlen)
{
	const struct auth_user **by = users_by_line(users), **kinds = NULL;
	const struct auth_user *costly = NULL;
	size_t k;
	int rc = -1;

	if (users->n > 0 && (by == NULL ||
	    (kinds = calloc(users->n, sizeof(*kinds))) == NULL)) {
		auth_say(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	k = users->n > 0 ? users_kinds(by, users->n, kinds) : 0;
	if (k == 0)
		users_dummy_default(users);
	else if (users_dummy_of(users, path, kinds, k, &costly, err,
	    errlen) < 0)
		goto out;
	if (users->dummy == NULL) {
		auth_say(err, errlen, "%s: cannot compute a dummy hash: %s",
		    path, strerror(errno));
		goto out;
	}
	if (k > 1)
		users_warn_mixed(users, path, by, kinds, k, costly);
	rc = 0;
out:
	free(kinds);
	free(by);
	return rc;
}

struct auth_users *
auth_users_load(const char *path, char *err, size_t errlen)
{
	struct auth_users *users;
	FILE *f;

	if ((f = users_open(path, err, errlen)) == NULL)
		return NULL;
	if ((users = calloc(1, sizeof(*users))) == NULL) {
		auth_say(err, errlen, "%s: %s", path, strerror(errno));
		fclose(f);
		return NULL;
	}
	atomic_init(&users->refs, 1);
	if (users_read(users, f, path, err, errlen) < 0 ||
	    users_sort(users, path, err, errlen) < 0 ||
	    users_dummy(users, path, err, errlen) < 0) {
		fclose(f);
		users_destroy(users);
		return NULL;
	}
	fclose(f);
	if (users->warning != NULL)
		log_warnx("%s", users->warning);
	return users;
}

size_t
auth_users_count(const struct auth_users *users)
{
	return users->n;
}

unsigned
auth_users_dummy_line(const struct auth_users *users)
{
	return users->dummy_line;
}

const char *
auth_users_warning(const struct auth_users *users)
{
	return users->warning;
}

struct auth_users *
auth_users_ref(struct auth_users *users)
{
	atomic_fetch_add_explicit(&users->refs, 1, memory_order_relaxed);
	return users;
}

/* acq_rel: the last owner must see every write made under other refs. */
void
auth_users_unref(struct auth_users *users)
{
	if (users != NULL &&
	    atomic_fetch_sub_explicit(&users->refs, 1, memory_order_acq_rel) == 1)
		users_destroy(users);
}

void
auth_users_free(struct auth_users *users)
{
	auth_users_unref(users);
}

/* ------------------------------------------------------------ verify */

static const struct auth_user *
users_find(const struct auth_users *users, const uint8_t *user, size_t len)
{
	size_t lo = 0, hi = users->n, mid;
	int c;

	if (len == 0 || len > GOPRO_USER_MAX)
		return NULL;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = name_cmp((const char *)user, len, users->v[mid].name,
		    users->v[mid].name_len);
		if (c == 0)
			return &users->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/*
 * The state crypt_rn needs is about 32 kB: too much for the stack of a
 * small thread, so it lives on the heap with the NUL-terminated copy of the
 * password, and both are wiped before they are freed.
 */
struct verify_state {
	struct crypt_data cd;
	char phrase[CRYPT_MAX_PASSPHRASE_SIZE];
};

/* Compare the whole output with the hash in time independent of content. */
static bool
hash_equal(const char *out, const char *hash)
{
	size_t len = strlen(hash);
	volatile unsigned char diff = 0;

	/* out lives in a CRYPT_OUTPUT_SIZE buffer and len is below that. */
	for (size_t i = 0; i <= len; i++)
		diff |= (unsigned char)out[i] ^ (unsigned char)hash[i];
	return diff == 0;
}

static bool
hash_matches(const char *hash, const uint8_t *password, size_t len)
{
	struct verify_state *vs;
	const char *out;
	bool ok;

	if ((vs = calloc(1, sizeof(*vs))) == NULL)
		return false;
	memcpy(vs->phrase, password, len);
	out = crypt_rn(vs->phrase, hash, &vs->cd, sizeof(vs->cd));
	atomic_fetch_add_explicit(&auth_hashes, 1, memory_order_relaxed);
	ok = out != NULL && hash_equal(vs->cd.output, hash);
	explicit_bzero(vs, sizeof(*vs));
	free(vs);
	return ok;
}

bool
auth_verify(const struct auth_users *users, const uint8_t *user,
    size_t user_len, const uint8_t *password, size_t password_len)
{
	const struct auth_user *u;
	bool ok;

	/* These answers do not depend on the user, so they leak nothing. */
	if (users == NULL || password_len == 0 ||
	    password_len >= CRYPT_MAX_PASSPHRASE_SIZE ||
	    memchr(password, '\0', password_len) != NULL)
		return false;
	u = users_find(users, user, user_len);
	ok = hash_matches(u != NULL ? u->hash : users->dummy, password,
	    password_len);
	return ok && u != NULL;
}

unsigned long
auth_hash_calls(void)
{
	return atomic_load_explicit(&auth_hashes, memory_order_relaxed);
}

/* ------------------------------------------------------------ thread pool */

/*
 * The hashing pool is a worker thread pool (threadpool.h) with the login
 * limits: at most AUTH_POOL_QUEUE_MAX checks held, and a check that no
 * thread started within max_wait leaves the queue unchecked, AUTH_BUSY.
 * Freeing it drops the checks not yet delivered without their callback.
 */
struct auth_job {
	struct tpool_job job;		/* first: the pool hands this back */
	struct auth_users *users;	/* a reference held by the job */
	auth_done_cb cb;
	void *ctx;
	enum auth_result result;
	size_t user_len, password_len;
	uint8_t user[GOPRO_USER_MAX];
	uint8_t password[GOPRO_PASSWORD_MAX];
};

struct auth_pool {
	struct tpool *tp;
};

static void
job_free(struct auth_job *job)
{
	auth_users_unref(job->users);
	explicit_bzero(job, sizeof(*job));
	free(job);
}

/* On a pool thread. */
static void
job_run(struct tpool_job *tj)
{
	struct auth_job *job = (struct auth_job *)tj;

	job->result = auth_verify(job->users, job->user, job->user_len,
	    job->password, job->password_len) ? AUTH_OK : AUTH_FAILED;
	explicit_bzero(job->password, sizeof(job->password));
}

/* On the loop thread: the callback, unless the pool is being freed. */
static void
job_done(struct tpool_job *tj, enum tpool_result r)
{
	struct auth_job *job = (struct auth_job *)tj;

	if (r == TPOOL_EXPIRED) {
		explicit_bzero(job->password, sizeof(job->password));
		job->result = AUTH_BUSY;
	}
	if (r != TPOOL_DROPPED)
		job->cb(job->ctx, job->result, job->user, job->user_len);
	job_free(job);
}

struct auth_pool *
auth_pool_new(struct ev_loop *loop, unsigned threads, double max_wait)
{
	const struct tpool_limits limits = { .threads = threads,
		.queue_max = AUTH_POOL_QUEUE_MAX, .max_wait = max_wait,
		.keep_loop = true };
	struct auth_pool *pool;
	int saved;

	if (threads == 0 || threads > AUTH_POOL_THREADS_MAX ||
	    !(max_wait > 0)) {
		errno = EINVAL;
		return NULL;
	}
	if ((pool = calloc(1, sizeof(*pool))) == NULL)
		return NULL;
	if ((pool->tp = tpool_new(loop, &limits)) == NULL) {
		saved = errno;
		free(pool);
		errno = saved;
		return NULL;
	}
	return pool;
}

int
auth_pool_submit(struct auth_pool *pool, struct auth_users *users,
    const uint8_t *user, size_t user_len, const uint8_t *password,
    size_t password_len, auth_done_cb cb, void *ctx)
{
	struct auth_job *job;

	if (users == NULL || cb == NULL || user_len > GOPRO_USER_MAX ||
	    password_len > GOPRO_PASSWORD_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (tpool_pending(pool->tp) >= AUTH_POOL_QUEUE_MAX) {
		errno = EAGAIN;
		return -1;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return -1;
	job->job.run = job_run;
	job->job.done = job_done;
	job->users = auth_users_ref(users);
	job->cb = cb;
	job->ctx = ctx;
	if (user_len > 0)
		memcpy(job->user, user, user_len);
	if (password_len > 0)
		memcpy(job->password, password, password_len);
	job->user_len = user_len;
	job->password_len = password_len;
	/* Cannot fail: the limit was checked above. */
	return tpool_submit(pool->tp, &job->job);
}

unsigned
auth_pool_pending(const struct auth_pool *pool)
{
	return tpool_pending(pool->tp);
}

void
auth_pool_free(struct auth_pool *pool)
{
	if (pool == NULL)
		return;
	tpool_free(pool->tp, false);
	free(pool);
}

/* ------------------------------------------------------------ rate limit */

/*
 * Open addressing with a short probe window: an address lives in one of
 * RL_PROBE slots after its hash, and a newcomer takes a free slot there or
 * evicts the least recently seen one, so memory is fixed and a flood of
 * addresses only pushes out stale entries.  The hash is SipHash keyed with a
 * random seed per table, so no one can aim addresses at one window to evict
 * a victim's bucket.
 */
#define RL_PROBE 8

struct rl_entry {
	uint8_t addr[16];	/* IPv6, or IPv4 as ::ffff:a.b.c.d */
	bool used;
	double tokens;
	double seen;		/* last attempt, also the refill time */
};

struct auth_ratelimit {
	double rate;
	double burst;
	size_t n;
	uint8_t seed[16];
	struct rl_entry *v;
};

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void
sip_round(uint64_t v[4])
{
	v[0] += v[1]; v[1] = ROTL64(v[1], 13); v[1] ^= v[0];
	v[0] = ROTL64(v[0], 32);
	v[2] += v[3]; v[3] = ROTL64(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = ROTL64(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = ROTL64(v[1], 17); v[1] ^= v[2];
	v[2] = ROTL64(v[2], 32);
}

static uint64_t
load64(const uint8_t *p)
{
	uint64_t x = 0;

	for (int i = 7; i >= 0; i--)
		x = x << 8 | p[i];
	return x;
}

/* SipHash-2-4 of a 16-byte message. */
static uint64_t
siphash16(const uint8_t key[16], const uint8_t msg[16])
{
	uint64_t k0 = load64(key), k1 = load64(key + 8), m;
	uint64_t v[4] = { k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
	    k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL };

	for (int i = 0; i < 3; i++) {
		/* Two message words, then the length block (16 << 56). */
		m = i < 2 ? load64(msg + 8 * i) : (uint64_t)16 << 56;
		v[3] ^= m;
		sip_round(v);
		sip_round(v);
		v[0] ^= m;
	}
	v[2] ^= 0xff;
	for (int i = 0; i < 4; i++)
		sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* The 16-byte key of an address; -1 for a family that is not limited. */
static int
rl_key(const struct sockaddr *sa, uint8_t key[16])
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	if (sa == NULL)
		return -1;
	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		memset(key, 0, 10);
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &sin->sin_addr, 4);
		return 0;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(key, &sin6->sin6_addr, 16);
		return 0;
	default:
		return -1;
	}
}

/* The entry of key, taking over a free or the stalest slot if needed. */
static struct rl_entry *
rl_lookup(struct auth_ratelimit *rl, const uint8_t key[16], double now)
{
	size_t start = siphash16(rl->seed, key) % rl->n;
	size_t probe = rl->n < RL_PROBE ? rl->n : RL_PROBE;
	struct rl_entry *e, *victim = &rl->v[start];

	for (size_t i = 0; i < probe; i++) {
		e = &rl->v[(start + i) % rl->n];
		if (e->used && memcmp(e->addr, key, 16) == 0)
			return e;
		if (victim->used && (!e->used || e->seen < victim->seen))
			victim = e;
	}
	memcpy(victim->addr, key, 16);
	victim->used = true;
	victim->tokens = rl->burst;
	victim->seen = now;
	return victim;
}

struct auth_ratelimit *
auth_ratelimit_new(double rate, unsigned burst, size_t entries)
{
	struct auth_ratelimit *rl;

	if (!(rate >= 0) || burst == 0 || entries == 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((rl = calloc(1, sizeof(*rl))) == NULL)
		return NULL;
	rl->rate = rate;
	rl->burst = burst;
	rl->n = entries;
	if (rate > 0 && (getrandom(rl->seed, sizeof(rl->seed), 0) !=
	    (ssize_t)sizeof(rl->seed) ||
	    (rl->v = calloc(entries, sizeof(*rl->v))) == NULL)) {
		free(rl);
		return NULL;
	}
	return rl;
}

bool
auth_ratelimit_allow(struct auth_ratelimit *rl, const struct sockaddr *addr,
    double now)
{
	struct rl_entry *e;
	uint8_t key[16];

	if (rl->rate == 0 || rl_key(addr, key) < 0)
		return true;
	e = rl_lookup(rl, key, now);
	/* A clock that went back gives no tokens; it only restarts the count. */
	if (now > e->seen)
		e->tokens = fmin(rl->burst, e->tokens + (now - e->seen) *
		    rl->rate);
	e->seen = now;
	if (e->tokens < 1)
		return false;
	e->tokens -= 1;
	return true;
}

void
auth_ratelimit_free(struct auth_ratelimit *rl)
{
	if (rl == NULL)
		return;
	free(rl->v);
	free(rl);
}

int
auth_users_check(const char *path, char *err, size_t errlen)
{
	struct auth_users *users = auth_users_load(path, err, errlen);

	if (users == NULL)
		return -1;
	auth_users_unref(users);
	return 0;
}
