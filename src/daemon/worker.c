/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * worker.c - the worker process: its loop, accepting, the timeout lists,
 * the block pool, and draining.
 *
 * A worker is forked by the master with its slot's listening sockets.  It
 * accepts in batches, hands each socket to conn.c, and once per loop
 * iteration (before the loop sleeps) writes the output of every connection
 * that has some and frees the connections closed during the iteration.
 * One ev_timer serves every timeout of every connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "conn.h"
#include "gopro/gopro.h"
#include "log.h"
#include "proxy.h"
#include "watchdog.h"
#include "proctitle.h"
#include "worker.h"

#define ACCEPTS_PER_EVENT 64
/* How long accepting pauses when the process is out of descriptors. */
#define ACCEPT_RETRY_DELAY 0.1
/* How long a half-closed connection waits for the client's FIN. */
#define LINGER_TIMEOUT 2.0
/* Login rate-limit table size per worker (addresses tracked at once). */
#define LOGIN_LIMIT_ENTRIES 4096
/* Free blocks kept per worker: beyond that they go back to malloc. */
#define POOL_MAX_BLOCKS 1024

static struct worker the_worker;

/* ------------------------------------------------------------ block pool */

void *
worker_block_get(struct worker *w)
{
	if (w->pool.count > 0)
		return w->pool.blocks[--w->pool.count];
	return malloc(WORKER_BLOCK_SIZE);
}

void
worker_block_put(struct worker *w, void *block, size_t cap)
{
	/* Blocks grown for a large frame are not worth keeping. */
	if (cap == WORKER_BLOCK_SIZE && w->pool.count < w->pool.max) {
		w->pool.blocks[w->pool.count++] = block;
		return;
	}
	free(block);
}

static void
pool_free(struct block_pool *pool)
{
	while (pool->count > 0)
		free(pool->blocks[--pool->count]);
	free(pool->blocks);
	pool->blocks = NULL;
}

/* ------------------------------------------------------------ clocks */

static ev_tstamp
clock_due(struct worker *w)
{
	ev_tstamp due = 0;
	struct conn *c;

	for (int k = 1; k < CLOCK_NCLOCKS; k++) {
		c = TAILQ_FIRST(&w->clocks[k]);
		if (c && (due == 0 || c->clock_since + w->clock_timeout[k] < due))
			due = c->clock_since + w->clock_timeout[k];
	}
	c = TAILQ_FIRST(&w->sending);
	if (c && (due == 0 || c->send_since + w->conf->send_timeout < due))
		due = c->send_since + w->conf->send_timeout;
	return due;
}

static void
clock_arm(struct worker *w)
{
	ev_tstamp due = clock_due(w), delay;

	ev_timer_stop(w->loop, &w->clock_timer);
	if (due == 0)
		return;
	delay = due - ev_now(w->loop);
	ev_timer_set(&w->clock_timer, delay > 0 ? delay : 0, 0);
	ev_timer_start(w->loop, &w->clock_timer);
}

void
worker_clock_changed(struct worker *w)
{
	/* Only an insertion into an empty list can bring the due time forward. */
	if (!ev_is_active(&w->clock_timer) ||
	    ev_timer_remaining(w->loop, &w->clock_timer) >
	    clock_due(w) - ev_now(w->loop))
		clock_arm(w);
}

static void
clock_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	ev_tstamp now = ev_now(loop);
	struct conn *c;

	for (int k = 1; k < CLOCK_NCLOCKS; k++)
		while ((c = TAILQ_FIRST(&w->clocks[k])) != NULL &&
		    c->clock_since + w->clock_timeout[k] <= now)
			conn_clock_expired(c);
	while ((c = TAILQ_FIRST(&w->sending)) != NULL &&
	    c->send_since + w->conf->send_timeout <= now)
		conn_send_expired(c);
	clock_arm(w);
}

/* ------------------------------------------------------------ accepting */

static void
listeners_set(struct worker *w, bool on)
{
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].fd < 0)
			continue;
		if (on)
			ev_io_start(w->loop, &w->listeners[i].io);
		else
			ev_io_stop(w->loop, &w->listeners[i].io);
	}
}

/* Refused connections, one limit for all causes: a flood is one story. */
static struct log_ratelimit refused_rl = LOG_RATELIMIT_INIT(10, 10);

/*
 * Refuse a connection accepted past a limit: ERROR 7, or on a TLS listener
 * a close, since a TLS client could not read a clear-text ERROR frame.
 */
static void
accept_refuse(struct worker *w, const struct listener *l, int fd)
{
	if (l->tls)
		close(fd);
	else
		conn_refuse(w, fd, GOPRO_ERR_BUSY, "server busy");
}

/*
 * Out of descriptors: the pending connection would make the listener
 * readable forever.  Use the spare descriptor to accept and refuse it, and
 * pause accepting briefly so the loop cannot spin.
 */
static void
accept_emfile(struct worker *w, const struct listener *l)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 1);
	struct sockaddr_storage ss;
	char from[PROXY_ADDR_TEXT];
	socklen_t len;
	int fd;

	stats_inc(w->stats, STATS_accept_emfile);
	log_rl(&rl, LOG_WARNING, "accept: out of file descriptors "
	    "(%u connections open); refusing new connections for now",
	    w->nconns);
	if (w->spare_fd >= 0) {
		close(w->spare_fd);
		len = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			log_rl(&refused_rl, LOG_NOTICE, "connection from %s "
			    "refused: out of file descriptors",
			    proxy_addr_format((struct sockaddr *)&ss, from,
			    sizeof(from)));
			accept_refuse(w, l, fd);
		}
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	listeners_set(w, false);
	ev_timer_set(&w->accept_retry, ACCEPT_RETRY_DELAY, 0);
	ev_timer_start(w->loop, &w->accept_retry);
}

static void
accept_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	if (!w->draining)
		listeners_set(w, true);
}

void
worker_conn_gone(struct worker *w)
{
	/* Descriptors were freed: no need to wait for the retry timer. */
	if (ev_is_active(&w->accept_retry) && !w->draining) {
		ev_timer_stop(w->loop, &w->accept_retry);
		listeners_set(w, true);
	}
}

/*
 * A PROXY listener only takes connections from proxy_protocol_from: anyone
 * else could claim any client address.
 */
static void
accept_untrusted(struct worker *w, int fd, const struct sockaddr *sa)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 5);
	char from[PROXY_ADDR_TEXT];

	stats_inc(w->stats, STATS_proxy_rejected);
	log_rl(&rl, LOG_NOTICE, "connection from %s to a PROXY listener: not "
	    "in proxy_protocol_from; closing",
	    proxy_addr_format(sa, from, sizeof(from)));
	close(fd);
}

static void
accept_one(struct worker *w, const struct listener *l, int fd,
    struct sockaddr *sa, socklen_t len)
{
	char from[PROXY_ADDR_TEXT];
	int one = 1;

	/*
	 * On a unix listener the socket file's mode and owners say who may
	 * connect, so its peers are trusted to send a PROXY header.
	 */
	if (l->proxy && sa->sa_family != AF_UNIX &&
	    !proxy_net_match(w->conf->proxy_from, w->conf->nproxy_from, sa)) {
		accept_untrusted(w, fd, sa);
		return;
	}
	if (w->nconns >= w->conf->max_connections) {
		stats_inc(w->stats, STATS_conn_refused_limit);
		log_rl(&refused_rl, LOG_NOTICE, "connection from %s refused: "
		    "max_connections (%u) reached", proxy_addr_format(sa, from,
		    sizeof(from)), w->conf->max_connections);
		accept_refuse(w, l, fd);
		return;
	}
	if (sa->sa_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (conn_new(w, fd, sa, len, l->proxy, l->tls ? w->conf->tls.ctx :
	    NULL) == NULL)
		log_warnx("out of memory for a new connection");
}

/* Accept until the queue is empty (or a batch is done); 0 when empty. */
static int
accept_batch(struct worker *w, const struct listener *l, int max)
{
	int lfd = l->fd;
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 5);
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	for (int i = 0; i < max; i++) {
		len = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_one(w, l, fd, (struct sockaddr *)&ss, len);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			accept_emfile(w, l);
			return -1;
		}
		if (errno != EINTR && errno != ECONNABORTED) {
			stats_inc(w->stats, STATS_accept_errors);
			log_rl(&rl, LOG_WARNING, "accept: %s", strerror(errno));
			return -1;
		}
	}
	return 1;
}

static void
accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	const struct listener *l = (const struct listener *)
	    ((const char *)io - offsetof(struct listener, io));

	accept_batch(io->data, l, ACCEPTS_PER_EVENT);
}

/* ------------------------------------------------------------ draining */

static void
worker_maybe_exit(struct worker *w)
{
	if (w->draining && w->nconns == 0 &&
	    (w->auth_pool == NULL || auth_pool_pending(w->auth_pool) == 0))
		ev_break(w->loop, EVBREAK_ALL);
}

static void
drain_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	struct conn *c, *next;

	log_notice("drain timeout: cutting %u remaining connections",
	    w->nconns);
	TAILQ_FOREACH_SAFE(c, &w->all, all_link, next)
		conn_drain_expired(c);
}

static void
worker_set_state(struct worker *w, enum stats_worker_state state)
{
	__atomic_store_n(&w->stats->state, (uint32_t)state, __ATOMIC_RELEASE);
}

static void
worker_drain(struct worker *w, uint16_t reason)
{
	struct conn *c, *next;

	if (w->draining)
		return;
	/*
	 * Take whatever already waits in the accept queue: those clients get
	 * GOAWAY rather than a reset if this was the socket's last holder
	 * (shutdown, or a slot or address that a reload removed).
	 */
	for (size_t i = 0; i < w->nlisteners; i++)
		while (accept_batch(w, &w->listeners[i], 1024) > 0)
			;
	w->draining = true;
	w->goaway_reason = reason;
	worker_set_state(w, STATS_STATE_DRAINING);
	listeners_set(w, false);
	ev_timer_stop(w->loop, &w->accept_retry);
	for (size_t i = 0; i < w->nlisteners; i++) {
		close(w->listeners[i].fd);
		w->listeners[i].fd = -1;
	}
	/* SIGUSR2 retires a worker for a reload or for SIGTTOU alike. */
	log_info("draining %u connections (%s)", w->nconns,
	    reason == GOPRO_GOAWAY_RELOAD ? "retired by the master" :
	    "shutdown");
	TAILQ_FOREACH_SAFE(c, &w->all, all_link, next)
		conn_goaway(c);
	ev_timer_set(&w->drain_timer, w->conf->drain_timeout, 0);
	ev_timer_start(w->loop, &w->drain_timer);
}

/* ------------------------------------------------------------ the loop */

/*
 * Runs once per loop iteration, after every callback: write what the
 * iteration produced (one write per connection), then free what it closed.
 * Writing can produce more output (a resumed connection answers buffered
 * requests), so the list is consumed until empty.
 */
/*
 * Read once more every TLS connection whose decrypted bytes wait inside
 * OpenSSL.  Only those on the list at the start: one that still has some
 * after its bounded read goes back at the tail for the next iteration, so
 * it cannot hold the loop.
 */
static void
read_tls_pending(struct worker *w)
{
	struct conn *c, *last = TAILQ_LAST(&w->tls_pending, conn_list);

	while (last != NULL && (c = TAILQ_FIRST(&w->tls_pending)) != NULL) {
		if (c == last)
			last = NULL;
		conn_read_pending(c);
	}
}

static void
tls_pending_idle_cb(struct ev_loop *loop, ev_idle *idle, int revents)
{
	/* Nothing to do: being active keeps the loop from sleeping. */
}

static void
before_sleep_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
	struct worker *w = p->data;
	struct conn *c;

	/* Before the writes of the iteration, which are not a module's. */
	watchdog_iteration_done(w);
	read_tls_pending(w);
	while ((c = TAILQ_FIRST(&w->flushing)) != NULL) {
		TAILQ_REMOVE(&w->flushing, c, flush_link);
		conn_flush(c);
	}
	while ((c = TAILQ_FIRST(&w->closed)) != NULL) {
		TAILQ_REMOVE(&w->closed, c, clock_link);
		conn_free(c);
	}
	/* Modules hear of cancelled requests here, never inside a close. */
	pipeline_run_cancels(&w->pl);
	pipeline_flush_stats(&w->pl);
	if (TAILQ_EMPTY(&w->tls_pending))
		ev_idle_stop(loop, &w->tls_pending_idle);
	else
		ev_idle_start(loop, &w->tls_pending_idle);
	worker_maybe_exit(w);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct worker *w = s->data;

	switch (s->signum) {
	case SIGTERM:
		worker_drain(w, GOPRO_GOAWAY_SHUTDOWN);
		break;
	case SIGUSR2:
		worker_drain(w, GOPRO_GOAWAY_RELOAD);
		break;
	case SIGUSR1:
		log_reopen();
		break;
	default:
		log_info("exiting at once on signal %d", s->signum);
		_exit(0);
	}
	worker_maybe_exit(w);
}

static void
worker_signals(struct worker *w)
{
	static const int sigs[] = { SIGTERM, SIGUSR2, SIGUSR1, SIGQUIT };
	sigset_t none;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	/* The terminal's ^C reaches the whole group: the master decides. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		ev_signal_init(&w->sigs[i], signal_cb, sigs[i]);
		w->sigs[i].data = w;
		ev_signal_start(w->loop, &w->sigs[i]);
	}
	/* The master forked us with every signal blocked; handlers are set. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void
worker_pin_cpu(const struct worker *w)
{
	cpu_set_t set;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (!w->conf->cpu_affinity || ncpu < 1)
		return;
	CPU_ZERO(&set);
	CPU_SET(w->slot % (unsigned)ncpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		log_warn("cannot pin worker %u to CPU %u", w->slot,
		    w->slot % (unsigned)ncpu);
}

static void
worker_setup_clocks(struct worker *w)
{
	const struct gopro_conf *conf = w->conf;

	for (int k = 0; k < CLOCK_NCLOCKS; k++)
		TAILQ_INIT(&w->clocks[k]);
	w->clock_timeout[CLOCK_IDLE] = conf->idle_timeout;
	w->clock_timeout[CLOCK_FRAME] = conf->frame_timeout;
	w->clock_timeout[CLOCK_GRACE] = conf->goaway_grace;
	w->clock_timeout[CLOCK_LINGER] = LINGER_TIMEOUT;
	w->clock_timeout[CLOCK_HANDSHAKE] = conf->tls.handshake_timeout;
	ev_init(&w->clock_timer, clock_cb);
	w->clock_timer.data = w;
}

static void
worker_setup_auth(struct worker *w, struct auth_users *users)
{
	const struct conf_auth *a = &w->conf->auth;

	w->users = users;
	if (users != NULL) {
		w->auth_pool = auth_pool_new(w->loop, a->threads,
		    a->queue_timeout);
		if (w->auth_pool == NULL)
			fatal("cannot start %u login threads", a->threads);
	}
	if (a->login_rate > 0) {
		w->login_limit = auth_ratelimit_new(a->login_rate,
		    a->login_burst, LOGIN_LIMIT_ENTRIES);
		if (w->login_limit == NULL)
			fatal("cannot allocate the login rate limiter");
	}
}

static void
worker_setup_listeners(struct worker *w, const int *fds, size_t n)
{
	w->nlisteners = n;
	for (size_t i = 0; i < n; i++) {
		w->listeners[i].fd = fds[i];
		w->listeners[i].proxy = w->conf->listen[i].proxy;
		w->listeners[i].tls = w->conf->listen[i].tls;
		ev_io_init(&w->listeners[i].io, accept_cb, fds[i], EV_READ);
		w->listeners[i].io.data = w;
	}
	listeners_set(w, true);
	ev_init(&w->accept_retry, accept_retry_cb);
	w->accept_retry.data = w;
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* The loop, the lists, the block pool and the timers. */
static void
worker_init_loop(struct worker *w)
{
	w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
	if (w->loop == NULL)
		fatalx("cannot create the event loop");
	TAILQ_INIT(&w->all);
	TAILQ_INIT(&w->sending);
	TAILQ_INIT(&w->flushing);
	TAILQ_INIT(&w->closed);
	TAILQ_INIT(&w->tls_pending);
	ev_idle_init(&w->tls_pending_idle, tls_pending_idle_cb);
	w->pool.max = POOL_MAX_BLOCKS;
	w->pool.blocks = calloc(w->pool.max, sizeof(void *));
	if (w->pool.blocks == NULL)
		fatalx("out of memory");
	worker_setup_clocks(w);
	ev_prepare_init(&w->before_sleep, before_sleep_cb);
	w->before_sleep.data = w;
	ev_prepare_start(w->loop, &w->before_sleep);
	ev_init(&w->drain_timer, drain_timeout_cb);
	w->drain_timer.data = w;
	/* A reply may add up to 1 KiB to a request (echo's prefix). */
	pipeline_init(&w->pl, w->loop, &conn_pipeline_ops,
	    w->conf->max_body + MODULE_REPLY_EXTRA);
}

/* Modules run in workers only; one that cannot start stops the worker. */
static void
worker_start_modules(struct worker *w)
{
	char err[CONF_ERR_MAX];

	if (modules_start(&w->mods, w, err, sizeof(err)) < 0)
		fatalx("%s", err);
}

static void
worker_init(struct worker *w, const struct worker_params *p)
{
	char name[32];

	memset(w, 0, sizeof(*w));
	w->conf = p->conf;
	w->stats = p->stats;
	w->slot = p->slot;
	w->generation = p->generation;
	snprintf(name, sizeof(name), "worker %u/g%u", p->slot, p->generation);
	log_set_procname(name);
	proctitle_set("goprod: worker %u (generation %u)", p->slot,
	    p->generation);
	/* The master's default loop must not be touched from here. */
	ev_loop_destroy(EV_DEFAULT);
	worker_init_loop(w);
	worker_signals(w);
	worker_pin_cpu(w);
	worker_setup_auth(w, p->users);
	worker_start_modules(w);
	watchdog_worker_start(w);
	worker_setup_listeners(w, p->listen_fds, p->nlisten);
}

static void
worker_cleanup(struct worker *w)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&w->all)) != NULL)
		conn_close_now(c);
	while ((c = TAILQ_FIRST(&w->closed)) != NULL) {
		TAILQ_REMOVE(&w->closed, c, clock_link);
		conn_free(c);
	}
	pipeline_run_cancels(&w->pl);
	watchdog_worker_stop(w);
	modules_stop(&w->mods);
	pipeline_cleanup(&w->pl);
	if (w->auth_pool)
		auth_pool_free(w->auth_pool);
	if (w->login_limit)
		auth_ratelimit_free(w->login_limit);
	if (w->spare_fd >= 0)
		close(w->spare_fd);
	pool_free(&w->pool);
	ev_loop_destroy(w->loop);
}

void
worker_init_for_test(struct worker *w, const struct gopro_conf *conf,
    struct stats_entry *stats)
{
	memset(w, 0, sizeof(*w));
	w->conf = conf;
	w->stats = stats;
	w->spare_fd = -1;
	worker_init_loop(w);
	worker_start_modules(w);
	ev_init(&w->accept_retry, accept_retry_cb);
	w->accept_retry.data = w;
}

void
worker_cleanup_for_test(struct worker *w)
{
	worker_cleanup(w);
}

void
worker_main(const struct worker_params *p)
{
	struct worker *w = &the_worker;

	worker_init(w, p);
	worker_set_state(w, STATS_STATE_RUNNING);
	log_debug("serving");
	ev_run(w->loop, 0);
	log_debug("drained, exiting");
	worker_set_state(w, STATS_STATE_EXITED);
	worker_cleanup(w);
	exit(0);
}
