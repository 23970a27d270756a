/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * auth.h - LOGIN support: the users file, password verification, a small
 * per-worker thread pool so that slow hashing never stalls the event loop,
 * and a per-client-address rate limit of login attempts.
 */
#ifndef GOPRO_AUTH_H
#define GOPRO_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ev_loop;

/* ------------------------------------------------------------ users file */

struct auth_users;

/*
 * Load a users file: one "name:hash" per line, hash in crypt(3) format
 * (yescrypt "$y$", sha512-crypt "$6$", ...); blank lines and lines starting
 * with '#' are ignored.  Refuses a file that others can read or write, a
 * malformed line, a duplicate user or a hash crypt(3) does not support.
 * Returns NULL and a message naming file and line in err on failure.  A
 * file whose hashes differ in method or cost loads, with a warning that
 * names the lines of each (logged, and kept for auth_users_warning).
 */
struct auth_users *auth_users_load(const char *path, char *err,
    size_t errlen);
/* The same as auth_users_unref: a users object is only ever freed by its
 * last reference, so a job still running keeps it alive. */
void auth_users_free(struct auth_users *users);
/* Load and drop path, for configuration checks; 0, or -1 with err. */
int auth_users_check(const char *path, char *err, size_t errlen);
size_t auth_users_count(const struct auth_users *users);
/*
 * The line whose method and cost the dummy hash of unknown users copies:
 * the one that took the most CPU time to check at load (0 for an empty
 * file, whose dummy is yescrypt at its default cost).
 */
unsigned auth_users_dummy_line(const struct auth_users *users);
/* The mixed methods or costs warning of the load, or NULL. */
const char *auth_users_warning(const struct auth_users *users);

/*
 * Check a password (thread-safe, slow on purpose).  An unknown user is
 * verified against a dummy hash at the cost of the costliest user, so an
 * unknown user and a wrong password take the same time (when the file
 * uses one method and cost, as the load warning asks) and give the same
 * answer.  An empty
 * password, one holding a NUL byte or one longer than crypt(3) accepts
 * (CRYPT_MAX_PASSPHRASE_SIZE - 1 = 511 bytes) is refused at once, whoever
 * the user is.
 */
bool auth_verify(const struct auth_users *users, const uint8_t *user,
    size_t user_len, const uint8_t *password, size_t password_len);
/* Number of password hashes computed by this process (for the tests). */
unsigned long auth_hash_calls(void);

/* ------------------------------------------------------------ thread pool */

struct auth_pool;

/* What became of one submitted check. */
enum auth_result {
	AUTH_OK,
	AUTH_FAILED,	/* wrong password or unknown user */
	AUTH_BUSY,	/* waited max_wait in the queue: never checked */
};

/*
 * Called on the loop's thread with the result of one submitted check and
 * the user it was for (user_len bytes, not NUL-terminated), for the log.
 */
typedef void (*auth_done_cb)(void *ctx, enum auth_result result,
    const uint8_t *user, size_t user_len);

/* Checks a pool holds at once (queued, running, not yet delivered). */
#define AUTH_POOL_QUEUE_MAX 1024u
/* Most threads a pool may start. */
#define AUTH_POOL_THREADS_MAX 64u

/*
 * Start threads hashing threads (1 .. AUTH_POOL_THREADS_MAX) that report to
 * loop through an ev_async.  A check that no thread has started max_wait
 * seconds (> 0) after it was submitted leaves the queue unchecked and is
 * reported AUTH_BUSY, so a flood of logins cannot make a correct one wait
 * for ever.  Every auth_pool_* function must be called on the loop's
 * thread.  Returns NULL with errno (EINVAL, ENOMEM, EAGAIN).
 */
struct auth_pool *auth_pool_new(struct ev_loop *loop, unsigned threads,
    double max_wait);
/*
 * Queue one check.  The credentials are copied (and wiped after use); the
 * job holds its own reference on users until it is delivered or dropped, so
 * the caller may unref its users at any time.  Returns 0, or -1 with errno
 * (EINVAL for a user or password over the protocol limits, ENOMEM, EAGAIN
 * when AUTH_POOL_QUEUE_MAX checks are pending).
 */
int auth_pool_submit(struct auth_pool *pool, struct auth_users *users,
    const uint8_t *user, size_t user_len, const uint8_t *password,
    size_t password_len, auth_done_cb cb, void *ctx);
/*
 * Checks queued, running or finished but not yet delivered; the worker waits
 * for zero before it exits.  A callback already sees its own check gone.
 */
unsigned auth_pool_pending(const struct auth_pool *pool);
/*
 * Stop the threads (a running check is finished first); checks not yet
 * started or not yet delivered are dropped without callback.  Must not be
 * called from a callback.
 */
void auth_pool_free(struct auth_pool *pool);

/* Reference counting so a reload can swap users files under running jobs. */
struct auth_users *auth_users_ref(struct auth_users *users);
void auth_users_unref(struct auth_users *users);

/* ------------------------------------------------------------ rate limit */

struct auth_ratelimit;

/*
 * A token bucket per client address (port ignored), rate tokens per second
 * up to burst, in a fixed-size table of entries slots: memory is bounded
 * whatever the number of addresses, and the least recently seen address
 * gives way to a new one.  Returns NULL with errno EINVAL for a negative
 * or NaN rate, a burst of 0 or no entries; rate 0 makes a limiter that
 * allows everything.
 */
struct auth_ratelimit *auth_ratelimit_new(double rate, unsigned burst,
    size_t entries);
/*
 * True when an attempt from addr at time now (seconds) is allowed.  An
 * IPv4-mapped IPv6 address counts as the IPv4 address; addresses of other
 * families (AF_UNIX) are not limited.
 */
bool auth_ratelimit_allow(struct auth_ratelimit *rl,
    const struct sockaddr *addr, double now);
void auth_ratelimit_free(struct auth_ratelimit *rl);

#endif /* GOPRO_AUTH_H */
