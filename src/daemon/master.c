/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * master.c - the master process (see master.h).
 *
 * Sockets: for every listen address the master binds one SO_REUSEPORT
 * socket per worker slot and keeps it for as long as the slot exists, so a
 * respawned or reloaded worker takes over a socket whose accept queue was
 * never closed: no connection attempt is refused while it restarts.
 *
 * Reload: parse and validate the new file; on any error keep everything as
 * it is and report why.  Otherwise bind what is new, fork a new generation
 * of workers on the same sockets, wait (briefly) until they run, then tell
 * the old generation to drain (GOAWAY reason 1) and close the sockets of
 * removed addresses and slots.
 *
 * Every event (signal, child exit, control command) is handled in the
 * default libev loop, never in signal context; libev reaps the children.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "ctl.h"
#include "daemon.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "master_info.h"
#include "module.h"
#include "watchdog.h"
#include "metrics.h"
#include "proctitle.h"
#include "readable.h"
#include "upgrade.h"
#include "worker.h"

/* How long a reload waits for the new workers before draining the old. */
#define HANDOVER_TIMEOUT 2.0
#define HANDOVER_POLL 0.005
/* A worker that dies sooner than this after its start counts as a crash loop. */
#define CRASH_WINDOW 1.0
#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 30.0
/* Extra time after drain_timeout before stragglers are killed. */
#define STOP_GRACE 5.0

/* " (read /the/target)" after a configuration path that is a link. */
#define READ_FROM(c)							\
	strcmp((c)->path, (c)->source) ? " (read " : "",		\
	strcmp((c)->path, (c)->source) ? (c)->source : "",		\
	strcmp((c)->path, (c)->source) ? ")" : ""

/* How long the new binary's `goprod -t` may take before the upgrade gives up. */
#define CHECK_TIMEOUT 10.0

static struct master *the_master;
static const char *master_version = "goprod " PACKAGE_VERSION;

static int master_spawn(struct master *m, unsigned slot);
static void master_begin_stop(struct master *m, bool now);
static void metrics_child_exited(struct master *m, int status);
static void metrics_child_stop(struct master *m);
static int master_reload(struct master *m, char *err, size_t errlen);
static bool rollback_on_crash(struct master *m, const struct worker_proc *p);
static void upgrade_checked(struct master *m, int status);
static int master_ctl(const char *command, char *reply, size_t len, void *arg);
static void upgrade_handed_over(struct master *m);

/* ------------------------------------------------------------ sockets */

static void
sockets_clear(int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS])
{
	for (int a = 0; a < CONF_MAX_LISTEN; a++)
		for (int s = 0; s < CONF_MAX_WORKERS; s++)
			fds[a][s] = -1;
}

static void
sockets_close(int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS])
{
	for (int a = 0; a < CONF_MAX_LISTEN; a++)
		for (int s = 0; s < CONF_MAX_WORKERS; s++)
			if (fds[a][s] >= 0) {
				close(fds[a][s]);
				fds[a][s] = -1;
			}
}

/*
 * Mode and owners of the socket files of conf's unix listeners: the
 * service account's, in unix_group when one is set.
 */
static int
unix_owner(const struct master *m, const struct gopro_conf *conf,
    struct listen_owner *own, char *err, size_t errlen)
{
	const struct group *gr;
	bool any = false;

	own->mode = (mode_t)conf->unix_mode;
	own->uid = m->uid;
	own->gid = m->gid;
	for (size_t a = 0; a < conf->nlisten; a++)
		any |= listen_is_unix(&conf->listen[a]);
	if (!any || conf->unix_group == NULL || *conf->unix_group == '\0')
		return 0;
	if ((gr = getgrnam(conf->unix_group)) == NULL) {
		snprintf(err, errlen, "unix_group: no group \"%s\"",
		    conf->unix_group);
		return -1;
	}
	own->gid = gr->gr_gid;
	return 0;
}

/* The socket of a unix listener that some slot holds, -1 when none yet. */
static int
unix_shared(int fds[CONF_MAX_WORKERS])
{
	for (unsigned s = 0; s < CONF_MAX_WORKERS; s++)
		if (fds[s] >= 0)
			return fds[s];
	return -1;
}

/*
 * A slot's socket for address a: a new SO_REUSEPORT socket, or for a
 * unix listener a duplicate of the one socket every slot shares.
 */
static int
slot_socket(struct gopro_conf *conf, size_t a,
    int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS],
    const struct listen_owner *own, char *err, size_t errlen)
{
	int shared;

	if (!listen_is_unix(&conf->listen[a]) ||
	    (shared = unix_shared(fds[a])) < 0)
		return listen_open(&conf->listen[a], conf->backlog, own, err,
		    errlen);
	if ((shared = fcntl(shared, F_DUPFD_CLOEXEC, 0)) < 0)
		snprintf(err, errlen, "listen %s: dup: %s",
		    conf->listen[a].text, strerror(errno));
	return shared;
}

/* Bind every address of conf for slots [from, to) into fds; 0 or -1 + err. */
static int
sockets_bind(const struct master *m, struct gopro_conf *conf,
    int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS], unsigned from, unsigned to,
    char *err, size_t errlen)
{
	struct listen_owner own;

	if (unix_owner(m, conf, &own, err, errlen) < 0)
		return -1;
	for (size_t a = 0; a < conf->nlisten; a++)
		for (unsigned s = from; s < to; s++) {
			if (fds[a][s] >= 0)
				continue;
			fds[a][s] = slot_socket(conf, a, fds, &own, err,
			    errlen);
			if (fds[a][s] < 0)
				return -1;
		}
	return 0;
}

/*
 * The socket files of conf's unix listeners that nc does not have (NULL:
 * all of them): nobody connects to a socket that only draining workers
 * still hold.
 */
static void
sockets_remove_files(const struct gopro_conf *conf,
    const struct gopro_conf *nc)
{
	for (size_t a = 0; a < conf->nlisten; a++) {
		bool kept = false;

		for (size_t b = 0; nc != NULL && b < nc->nlisten; b++)
			kept |= listen_same(&conf->listen[a], &nc->listen[b]);
		if (!kept)
			listen_remove(&conf->listen[a]);
	}
}

/*
 * Nobody else may listen on an address of conf that this master does not
 * hold yet (old: the running configuration, NULL at start): with
 * SO_REUSEPORT our sockets would silently join the other's group.
 */
static int
sockets_probe(const struct gopro_conf *conf, const struct gopro_conf *old,
    char *err, size_t errlen)
{
	for (size_t a = 0; a < conf->nlisten; a++) {
		bool ours = false;

		for (size_t o = 0; old != NULL && o < old->nlisten; o++)
			ours |= listen_overlap(&conf->listen[a], &old->listen[o]);
		if (!ours && listen_probe(&conf->listen[a], err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ workers */

static unsigned
live_workers(const struct master *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < STATS_ENTRIES; i++)
		n += m->procs[i].pid > 0;
	return n;
}

/*
 * In a new child: stop the master's watchers so that the child may attach
 * the same signals to a loop of its own (libev refuses a signal on two
 * loops), without ever touching the kernel state the master still uses.
 */
static void
child_forget_master_watchers(struct master *m)
{
	for (size_t i = 0; i < sizeof(m->sigs) / sizeof(m->sigs[0]); i++)
		ev_signal_stop(m->loop, &m->sigs[i]);
	ev_child_stop(m->loop, &m->child);
	ev_timer_stop(m->loop, &m->handover_timer);
	ev_timer_stop(m->loop, &m->ready_timer);
	ev_timer_stop(m->loop, &m->stop_timer);
	ev_timer_stop(m->loop, &m->metrics_restart);
	ev_timer_stop(m->loop, &m->check_timer);
	watchdog_master_stop(m);
	for (unsigned s = 0; s < CONF_MAX_WORKERS; s++)
		ev_timer_stop(m->loop, &m->slots[s].respawn);
}

static void
close_if_open(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* In the child: close what belongs to the master, keep the slot's sockets. */
static void
child_close_master_fds(struct master *m, unsigned slot)
{
	child_forget_master_watchers(m);
	for (size_t a = 0; a < CONF_MAX_LISTEN; a++)
		for (unsigned s = 0; s < CONF_MAX_WORKERS; s++)
			if (s != slot && m->fds[a][s] >= 0)
				close(m->fds[a][s]);
	for (size_t a = 0; a < CONF_MAX_LISTEN; a++)
		for (unsigned s = 0; s < CONF_MAX_WORKERS; s++)
			if (m->retired_fds[a][s] >= 0)
				close(m->retired_fds[a][s]);
	if (m->ctl != NULL)
		ctl_server_close_fds(m->ctl);
	if (m->metrics_fd >= 0)
		close(m->metrics_fd);
	if (m->stats.fd >= 0)
		close(m->stats.fd);
	close_if_open(&m->check_fd);
	close_if_open(&m->upgrade_client);
	close_if_open(&m->upgrade_fd);
	close_if_open(&m->old_exe_fd);
}

static void
child_run_worker(struct master *m, unsigned slot, unsigned idx)
{
	struct worker_params p;
	int fds[CONF_MAX_LISTEN];

	child_close_master_fds(m, slot);
	for (size_t a = 0; a < m->nlisten; a++)
		fds[a] = m->fds[a][slot];
	memset(&p, 0, sizeof(p));
	p.conf = m->conf;
	p.stats = &m->stats.entries[idx];
	p.slot = slot;
	p.generation = m->generation;
	p.listen_fds = fds;
	p.nlisten = m->nlisten;
	p.users = m->users;
	worker_main(&p);
}

static void
entry_init(struct master *m, unsigned idx, unsigned slot)
{
	struct stats_entry *e = &m->stats.entries[idx];

	e->slot = slot;
	e->generation = m->generation;
	e->restarts = m->slots[slot].restarts;
	e->start_time = (int64_t)time(NULL);
	__atomic_store_n(&e->state, STATS_STATE_STARTING, __ATOMIC_RELEASE);
}

/*
 * A child must not outlive the master: an orphaned worker would keep
 * serving an old configuration, an orphaned metrics process would keep its
 * port.  SIGTERM makes either drain and exit.  The master may have died
 * between fork() and prctl(), in which case no signal will ever come: the
 * parent is then no longer the one we were forked by, so leave at once.
 */
static void
child_die_with(pid_t master)
{
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != master)
		_exit(1);
}

/*
 * fork() with every signal blocked: the child keeps them blocked until its
 * own loop has handlers, so no signal reaches the master's handlers there.
 * Every child of the master is forked here, so every one dies with it.
 */
static pid_t
fork_blocked(void)
{
	pid_t master = getpid(), pid;
	sigset_t all, old;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_die_with(master);
	else
		sigprocmask(SIG_SETMASK, &old, NULL);
	return pid;
}

/* 0, or -1 when the worker could not be started (logged). */
static int
master_spawn(struct master *m, unsigned slot)
{
	int idx = stats_entry_alloc(&m->stats);
	pid_t pid;

	if (idx < 0) {
		log_warnx("no free stats entry in %s for a worker in slot %u",
		    m->conf->stats_file, slot);
		return -1;
	}
	entry_init(m, (unsigned)idx, slot);
	pid = fork_blocked();
	if (pid < 0) {
		log_warn("cannot fork a worker for slot %u", slot);
		stats_entry_retire(&m->stats, (unsigned)idx);
		return -1;
	}
	if (pid == 0)
		child_run_worker(m, slot, (unsigned)idx);
	m->stats.entries[idx].pid = pid;
	m->procs[idx] = (struct worker_proc){ .pid = pid, .slot = slot,
		.generation = m->generation, .started = ev_time() };
	log_info("worker %u started as pid %ld (generation %u)", slot,
	    (long)pid, m->generation);
	return 0;
}

/*
 * The entries of the stats segment that new workers can take.  The count
 * in the header is bounded by what this master created: it is the file's
 * content, which something else may have written.
 */
static unsigned
free_entries(const struct master *m)
{
	unsigned n = 0, max = m->stats.nentries;

	if (max > STATS_ENTRIES)
		max = STATS_ENTRIES;
	for (unsigned i = 0; i < max; i++)
		n += __atomic_load_n(&m->stats.entries[i].state,
		    __ATOMIC_ACQUIRE) == STATS_STATE_FREE;
	return n;
}

static void
respawn_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct master *m = the_master;
	unsigned slot = (unsigned)(uintptr_t)t->data;

	if (!m->stopping && slot < m->conf->workers)
		master_spawn(m, slot);
}

static void
describe_status(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s",
		    WTERMSIG(status), strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
}

/* An unexpected exit: replace at once, or after a back-off in a crash loop. */
static void
schedule_respawn(struct master *m, const struct worker_proc *p, int status)
{
	struct slot_state *s = &m->slots[p->slot];
	char why[96];
	double delay = 0;

	if (rollback_on_crash(m, p))
		return;
	describe_status(status, why, sizeof(why));
	s->restarts++;
	if (ev_now(m->loop) - p->started < CRASH_WINDOW)
		s->fast_crashes++;
	else
		s->fast_crashes = 0;
	/* The first crash is replaced at once; a crash loop backs off. */
	if (s->fast_crashes > 1) {
		delay = BACKOFF_FIRST * (double)(1u << (s->fast_crashes < 12 ?
		    s->fast_crashes - 2 : 10));
		if (delay > BACKOFF_MAX)
			delay = BACKOFF_MAX;
	}
	log_warnx("worker %u (pid %ld) %s; respawning %s%.1fs", p->slot,
	    (long)p->pid, why, delay > 0 ? "after " : "in ", delay);
	if (delay == 0) {
		master_spawn(m, p->slot);
		return;
	}
	ev_timer_stop(m->loop, &s->respawn);
	ev_timer_set(&s->respawn, delay, 0);
	ev_timer_start(m->loop, &s->respawn);
}

static int
find_proc(const struct master *m, pid_t pid)
{
	for (int i = 0; i < STATS_ENTRIES; i++)
		if (m->procs[i].pid == pid)
			return i;
	return -1;
}

static void
master_exit_if_done(struct master *m)
{
	if (m->stopping && live_workers(m) == 0)
		ev_break(m->loop, EVBREAK_ALL);
}

/* Why a worker that was told to go went: the words for its exit line. */
static const char *
expected_exit(const struct master *m, const struct worker_proc *p)
{
	if (m->stopping_now)
		return "(stop at once)";
	if (m->stopping)
		return "after its drain (stop)";
	if (p->generation != m->generation)
		return "after its drain (reload)";
	if (p->slot >= m->conf->workers)
		return "after its drain (one worker fewer)";
	return "after its drain";
}

static void
child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct master *m = w->data;
	int idx = find_proc(m, w->rpid);
	struct worker_proc p;
	char why[96];

	if (w->rpid == m->metrics_pid && m->metrics_pid > 0) {
		metrics_child_exited(m, w->rstatus);
		return;
	}
	if (w->rpid == m->check_pid && m->check_pid > 0) {
		upgrade_checked(m, w->rstatus);
		return;
	}
	if (idx < 0)
		return;
	p = m->procs[idx];
	m->procs[idx].pid = 0;
	stats_entry_retire(&m->stats, (unsigned)idx);
	if (m->stopping || p.draining || p.generation != m->generation ||
	    p.slot >= m->conf->workers) {
		describe_status(w->rstatus, why, sizeof(why));
		log_info("worker %u (pid %ld, generation %u) %s %s", p.slot,
		    (long)p.pid, p.generation, why, expected_exit(m, &p));
		master_exit_if_done(m);
		return;
	}
	schedule_respawn(m, &p, w->rstatus);
}

static void
signal_procs(struct master *m, int sig, bool (*which)(const struct master *,
    const struct worker_proc *))
{
	for (int i = 0; i < STATS_ENTRIES; i++) {
		struct worker_proc *p = &m->procs[i];

		if (p->pid <= 0 || (which && !which(m, p)))
			continue;
		if (sig == SIGTERM || sig == SIGUSR2)
			p->draining = true;
		kill(p->pid, sig);
	}
}

static bool
is_old_generation(const struct master *m, const struct worker_proc *p)
{
	return p->generation != m->generation && !p->draining;
}

/* ------------------------------------------------------------ reload */

/*
 * What a reload changed, option by option, in the master's log and in
 * notes, the lines goproctl reload prints after its result.
 */
static void
log_changes(const struct gopro_conf *old, const struct gopro_conf *nc,
    char *notes, size_t len)
{
	char changes[2048];

	conf_diff(old->effective, nc->effective, changes, sizeof(changes));
	if (*changes)
		log_notice("reload: changed %s", changes);
	else
		log_notice("reload: no option changed");
	/* Cut to what the reply holds: the log line above has it all. */
	snprintf(notes, len, "changed: %.900s\n", *changes ? changes :
	    "nothing");
}

/* The options that need a restart keep their running values. */
static void
keep_restart_options(struct gopro_conf *old, struct gopro_conf *nc,
    char *notes, size_t len)
{
	char names[256];
	size_t used;
	char *tmp;

	log_changes(old, nc, notes, len);
	conf_restart_needed(old, nc, names, sizeof(names));
	used = strlen(notes);
	if (*names) {
		log_warnx("reload: %s changed; these take effect only after "
		    "a restart", names);
		snprintf(notes + used, len - used, "warning: %s changed; these "
		    "take effect only after a restart\n", names);
	}
#define KEEP(field) do { tmp = nc->field; nc->field = old->field; \
	old->field = tmp; } while (0)
	KEEP(user);
	KEEP(group);
	KEEP(pid_file);
	KEEP(stats_file);
	KEEP(control_socket);
	KEEP(metrics_listen);
	KEEP(log_file);
#undef KEEP
	nc->log_target = old->log_target;
}

/*
 * New socket table for nc: reuse the sockets of unchanged addresses for
 * the slots both configurations have, bind the rest.
 */
static int
reload_sockets(struct master *m, struct gopro_conf *nc,
    int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS], char *err, size_t errlen)
{
	sockets_clear(fds);
	for (size_t a = 0; a < nc->nlisten; a++)
		for (size_t o = 0; o < m->nlisten; o++) {
			if (!listen_same(&nc->listen[a], &m->conf->listen[o]))
				continue;
			nc->listen[a].file = m->conf->listen[o].file;
			for (unsigned s = 0; s < nc->workers && s < m->nslots; s++) {
				fds[a][s] = m->fds[o][s];
				m->fds[o][s] = -1;
			}
		}
	return sockets_bind(m, nc, fds, 0, nc->workers, err, errlen);
}

/* Give reused sockets back after a failed reload. */
static void
reload_undo_sockets(struct master *m, const struct gopro_conf *nc,
    int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS])
{
	for (size_t a = 0; a < nc->nlisten; a++)
		for (size_t o = 0; o < m->nlisten; o++) {
			if (!listen_same(&nc->listen[a], &m->conf->listen[o]))
				continue;
			for (unsigned s = 0; s < nc->workers && s < m->nslots; s++) {
				m->fds[o][s] = fds[a][s];
				fds[a][s] = -1;
			}
		}
	sockets_close(fds);
	/* The unix listeners the failed reload bound: not left behind. */
	sockets_remove_files(nc, m->conf);
}

static struct auth_users *
reload_users(const struct gopro_conf *nc, char *err, size_t errlen)
{
	if (nc->auth.users_file == NULL)
		return NULL;
	return auth_users_load(nc->auth.users_file, err, errlen);
}

/*
 * The STATUS= line that "systemctl status goprod" shows: the generation,
 * the workers, and the verdict of the last reload or upgrade (its first
 * line, which names file:line for a broken file).
 */
static void __attribute__((format(printf, 2, 3)))
master_status(const struct master *m, const char *fmt, ...)
{
	char verdict[256], line[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(verdict, sizeof(verdict), fmt, ap);
	va_end(ap);
	verdict[strcspn(verdict, "\n")] = '\0';
	snprintf(line, sizeof(line), "STATUS=generation %u, %u workers; %s",
	    m->generation, m->conf->workers, verdict);
	daemon_notify(line);
}

static void
handover_finish(struct master *m)
{
	ev_timer_stop(m->loop, &m->handover_timer);
	m->handover = false;
	/* Sockets the new generation dropped: the old workers hold the last copies. */
	sockets_close(m->retired_fds);
	signal_procs(m, SIGUSR2, is_old_generation);
	daemon_notify("READY=1");
	master_status(m, "last reload ok");
	upgrade_handed_over(m);
	if (m->reload_queued && !m->stopping) {
		char err[CONF_ERR_MAX];

		m->reload_queued = false;
		log_notice("reloading %s (queued SIGHUP)", m->conf->path);
		(void)master_reload(m, err, sizeof(err));
	}
}

/* Are all workers of the new generation serving? */
static bool
handover_ready(const struct master *m)
{
	for (int i = 0; i < STATS_ENTRIES; i++)
		if (m->procs[i].pid > 0 &&
		    m->procs[i].generation == m->generation &&
		    __atomic_load_n(&m->stats.entries[i].state,
		    __ATOMIC_ACQUIRE) == STATS_STATE_STARTING)
			return false;
	return true;
}

static void
handover_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct master *m = t->data;

	if (handover_ready(m) ||
	    ev_now(loop) - m->handover_started > HANDOVER_TIMEOUT)
		handover_finish(m);
}

/*
 * At start: READY=1 once every worker serves (at most HANDOVER_TIMEOUT),
 * so that systemd calls the unit active only then.  Unlike a reload's
 * handover it refuses nothing meanwhile.
 */
static void
ready_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct master *m = t->data;

	if (!handover_ready(m) &&
	    ev_now(loop) - m->ready_started <= HANDOVER_TIMEOUT)
		return;
	ev_timer_stop(loop, t);
	daemon_notify("READY=1");
	daemon_ready();
	master_status(m, "started");
}

/* Wait (polling, at most HANDOVER_TIMEOUT) until the new workers serve. */
static void
handover_begin(struct master *m)
{
	m->handover = true;
	m->handover_started = ev_now(m->loop);
	ev_timer_set(&m->handover_timer, HANDOVER_POLL, HANDOVER_POLL);
	ev_timer_start(m->loop, &m->handover_timer);
}

/* Adopt nc: the socket table, the users, the generation, the workers. */
static void
reload_apply(struct master *m, struct gopro_conf *nc,
    int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS], struct auth_users *users)
{
	/* What the new table did not take is closed after the handover. */
	memcpy(m->retired_fds, m->fds, sizeof(m->fds));
	memcpy(m->fds, fds, sizeof(m->fds));
	sockets_remove_files(m->conf, nc);
	keep_restart_options(m->conf, nc, m->reload_notes,
	    sizeof(m->reload_notes));
	if (!m->log_level_fixed)
		log_set_level(nc->log_level);
	/*
	 * The configuration (and module descriptors) of the generation that
	 * works is kept for a rollback; the one a rollback leaves is not.
	 */
	conf_free(m->prev_conf);
	m->prev_conf = m->rolling_back ? NULL : m->conf;
	if (m->rolling_back)
		conf_free(m->conf);
	m->reloaded_at = ev_now(m->loop);
	m->reload_crashes = 0;
	m->conf = nc;
	m->nlisten = nc->nlisten;
	m->nslots = nc->workers;
	if (m->users)
		auth_users_unref(m->users);
	m->users = users;
	m->generation++;
	proctitle_set("goprod: master (generation %u)", m->generation);
	m->stats.hdr->generation = m->generation;
	m->stats.hdr->workers = nc->workers;
	m->stats.hdr->tls_cert_expiry = nc->tls.expiry;
	m->stats.hdr->reloads++;
	for (unsigned s = 0; s < nc->workers; s++) {
		ev_timer_stop(m->loop, &m->slots[s].respawn);
		master_spawn(m, s);
	}
	handover_begin(m);
}

/* Returns 0 and the new generation, or -1 with the reason in err. */
static int
master_reload(struct master *m, char *err, size_t errlen)
{
	int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS];
	struct gopro_conf *nc = NULL;
	struct auth_users *users = NULL;

	if (m->stopping || m->handover || m->upgrading) {
		/*
		 * Refused, not queued, and not counted as failed: the caller
		 * can ask again.  "busy:" tells goproctl to retry, which it
		 * does until the handover (bounded by HANDOVER_TIMEOUT) ends.
		 */
		snprintf(err, errlen, "%s", m->stopping ?
		    "goprod is shutting down" : m->upgrading ?
		    CTL_BUSY_PREFIX " a binary upgrade is in progress" :
		    CTL_BUSY_PREFIX " a reload is already in progress");
		/* goproctl asks again while busy: no warning for each ask. */
		log_rl(NULL, m->stopping ? LOG_WARNING : LOG_DEBUG,
		    "reload refused: %s", err);
		return -1;
	}
	daemon_notify("RELOADING=1");
	if (conf_load(m->conf->path, &nc, err, errlen) < 0)
		goto fail;
	/* The new generation's modules, loaded and checked off the master. */
	if (modules_ready(nc, err, errlen) < 0)
		goto fail;
	if (nc->auth.users_file && (users = reload_users(nc, err, errlen)) == NULL)
		goto fail;
	if (sockets_probe(nc, m->conf, err, errlen) < 0)
		goto fail;
	if (free_entries(m) < nc->workers) {
		snprintf(err, errlen, "%s has %u free worker entries for %u new "
		    "workers (the old generations still drain: wait, or stop "
		    "them with goproctl stop)", m->conf->stats_file,
		    free_entries(m), nc->workers);
		goto fail;
	}
	if (reload_sockets(m, nc, fds, err, errlen) < 0) {
		reload_undo_sockets(m, nc, fds);
		goto fail;
	}
	reload_apply(m, nc, fds, users);
	log_notice("reloaded %s%s%s%s: generation %u with %u workers",
	    m->conf->path, READ_FROM(m->conf), m->generation,
	    m->conf->workers);
	master_info_reload(m, true, NULL);
	return 0;
fail:
	m->stats.hdr->reloads_failed++;
	master_info_reload(m, false, err);
	if (users)
		auth_users_unref(users);
	conf_free(nc);
	log_warnx("reload failed, keeping the running configuration: %s", err);
	daemon_notify("READY=1");
	master_status(m, "last reload failed: %s", err);
	return -1;
}

/* ------------------------------------------------------------ rollback */

/*
 * Go back to the previous generation's configuration and modules (their
 * descriptors are still open): a new generation from them replaces the
 * one whose workers crash.  No reference daemon does this; nginx and
 * HAProxy keep respawning a crashing build.
 */
static void
rollback(struct master *m, const char *why)
{
	int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS];
	struct gopro_conf *nc = m->prev_conf;
	struct auth_users *users = NULL;
	unsigned from = m->generation;
	char err[CONF_ERR_MAX];

	m->prev_conf = NULL;
	if (nc->auth.users_file != NULL &&
	    (users = reload_users(nc, err, sizeof(err))) == NULL)
		goto fail;
	if (reload_sockets(m, nc, fds, err, sizeof(err)) < 0) {
		reload_undo_sockets(m, nc, fds);
		goto fail;
	}
	/* The crashing generation's handover is over: it is replaced. */
	ev_timer_stop(m->loop, &m->handover_timer);
	m->handover = false;
	m->rolling_back = true;
	reload_apply(m, nc, fds, users);
	m->rolling_back = false;
	m->stats.hdr->rollbacks++;
	m->stats.hdr->rollback_from = from;
	m->stats.hdr->rollback_time = (int64_t)time(NULL);
	log_warnx("rolled back from generation %u to the previous "
	    "configuration and modules (now generation %u): %s", from,
	    m->generation, why);
	return;
fail:
	if (users)
		auth_users_unref(users);
	conf_free(nc);
	log_warnx("cannot roll back from generation %u (%s): %s", from, why,
	    err);
}

/*
 * A worker of the current generation exited unexpectedly: within
 * rollback_window of a reload, the rollback_crashes-th such crash rolls
 * back.  True when it did (no respawn then).
 */
static bool
rollback_on_crash(struct master *m, const struct worker_proc *p)
{
	char why[160];

	if (m->prev_conf == NULL || m->conf->rollback_crashes == 0 ||
	    p->generation != m->generation || m->stopping || m->upgrading ||
	    ev_now(m->loop) - m->reloaded_at > m->conf->rollback_window)
		return false;
	if (++m->reload_crashes < m->conf->rollback_crashes)
		return false;
	snprintf(why, sizeof(why), "%u worker crashes within %.0f s of the "
	    "reload (rollback_crashes, rollback_window)", m->reload_crashes,
	    m->conf->rollback_window);
	rollback(m, why);
	return true;
}

/* ------------------------------------------------------------ workers +/- */

static void
master_add_worker(struct master *m)
{
	char err[CONF_ERR_MAX];
	unsigned slot = m->conf->workers;

	if (m->stopping || m->handover || m->upgrading ||
	    slot >= CONF_MAX_WORKERS) {
		log_warnx("SIGTTIN: cannot add a worker now");
		return;
	}
	if (sockets_bind(m, m->conf, m->fds, slot, slot + 1, err,
	    sizeof(err)) < 0) {
		log_warnx("SIGTTIN: %s", err);
		return;
	}
	m->conf->workers = m->nslots = slot + 1;
	m->stats.hdr->workers = m->conf->workers;
	master_spawn(m, slot);
}

static bool
is_last_slot(const struct master *m, const struct worker_proc *p)
{
	return p->slot == m->conf->workers && !p->draining;
}

static void
master_remove_worker(struct master *m)
{
	unsigned slot;

	if (m->stopping || m->handover || m->upgrading ||
	    m->conf->workers <= 1) {
		log_warnx("SIGTTOU: cannot remove a worker now");
		return;
	}
	slot = --m->conf->workers;
	log_notice("SIGTTOU: retiring worker %u; %u workers from now on", slot,
	    slot);
	m->nslots = slot;
	m->stats.hdr->workers = m->conf->workers;
	ev_timer_stop(m->loop, &m->slots[slot].respawn);
	/*
	 * Close our copy first: the worker then holds the last reference, and
	 * the socket disappears the moment it has accepted its queue.
	 */
	for (size_t a = 0; a < m->nlisten; a++) {
		close(m->fds[a][slot]);
		m->fds[a][slot] = -1;
	}
	signal_procs(m, SIGUSR2, is_last_slot);
}

/* ------------------------------------------------------------ stopping */

static void
stop_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct master *m = t->data;

	log_warnx("%u workers still running after the drain; killing them",
	    live_workers(m));
	signal_procs(m, SIGKILL, NULL);
}

static void
master_begin_stop(struct master *m, bool now)
{
	if (m->stopping && !now)
		return;
	m->stopping = true;
	m->stopping_now = m->stopping_now || now;
	master_info_stopping(m);
	ev_timer_stop(m->loop, &m->ready_timer);
	daemon_notify("STOPPING=1");
	log_notice("%s", now ? "stopping at once" :
	    "draining all workers, then exiting");
	ev_timer_stop(m->loop, &m->handover_timer);
	m->handover = false;
	/*
	 * Close our copies of the sockets first: each worker then holds the
	 * last reference to its socket, accepts what is queued and closes it,
	 * which leaves the smallest window in which a connection can be reset.
	 */
	sockets_close(m->fds);
	sockets_close(m->retired_fds);
	for (unsigned s = 0; s < CONF_MAX_WORKERS; s++)
		ev_timer_stop(m->loop, &m->slots[s].respawn);
	if (m->check_pid > 0)
		kill(m->check_pid, SIGKILL);
	signal_procs(m, now ? SIGQUIT : SIGTERM, NULL);
	metrics_child_stop(m);
	ev_timer_set(&m->stop_timer, now ? 1.0 :
	    m->conf->drain_timeout + STOP_GRACE, 0);
	ev_timer_start(m->loop, &m->stop_timer);
	master_exit_if_done(m);
}

/* ------------------------------------------------------------ upgrade */

/*
 * Binary upgrade in place: run the installed binary's `goprod -t` in a
 * child; when it passes, execve(2) the binary in this process.  The PID
 * stays, so systemd, the pid file and goproctl see the same master, and
 * the workers stay our children.  The state of upgrade.h goes along; the
 * new image reloads the configuration as a reload does, drains the old
 * workers, and answers the goproctl that asked.  An image that cannot take
 * over executes the previous one again (it still has it open), which does
 * the same with the state and reports the failure.
 */

static void
fd_cloexec(int fd, bool on)
{
	int flags;

	if (fd < 0 || (flags = fcntl(fd, F_GETFD)) < 0)
		return;
	(void)fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

/* The descriptors the next image takes over: inherited, or closed on exec. */
static void
upgrade_fds_inherit(struct master *m, bool inherit)
{
	for (int a = 0; a < CONF_MAX_LISTEN; a++)
		for (int s = 0; s < CONF_MAX_WORKERS; s++)
			fd_cloexec(m->fds[a][s], !inherit);
	fd_cloexec(m->stats.fd, !inherit);
	fd_cloexec(ctl_server_fd(m->ctl), !inherit);
	fd_cloexec(m->metrics_fd, !inherit);
	fd_cloexec(m->upgrade_client, !inherit);
}

/* The end of an upgrade: tell the log and whoever asked. */
static void __attribute__((format(printf, 3, 4)))
upgrade_verdict(struct master *m, bool ok, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ok)
		log_notice("%s", msg);
	else
		log_warnx("%s", msg);
	master_status(m, "last upgrade %s: %s", ok ? "ok" : "failed", msg);
	if (m->upgrade_client >= 0)
		ctl_reply_fd(m->upgrade_client, ok, msg);
	m->upgrade_client = -1;
	m->upgrading = false;
}

static void __attribute__((noreturn))
check_child(const struct master *m, int out)
{
	sigset_t none;

	dup2(out, STDOUT_FILENO);
	dup2(out, STDERR_FILENO);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setenv(UPGRADE_CHECK_ENV, "1", 1);
	execl(m->exe_path, m->exe_path, "-t", "-c", m->conf->path,
	    (char *)NULL);
	fprintf(stderr, "cannot execute %s: %s\n", m->exe_path,
	    strerror(errno));
	_exit(127);
}

/* Start an upgrade: fork the check of the new binary; 0 or -1 + err. */
static int
master_upgrade(struct master *m, int client, char *err, size_t errlen)
{
	int pfd[2];
	pid_t pid;

	if (m->stopping || m->handover || m->upgrading) {
		snprintf(err, errlen, "%s", m->stopping ?
		    "goprod is shutting down" : CTL_BUSY_PREFIX
		    " a reload or an upgrade is in progress");
		return -1;
	}
	if (m->exe_path == NULL) {
		snprintf(err, errlen, "the path of the running binary is unknown");
		return -1;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "cannot check %s: %s", m->exe_path,
		    strerror(errno));
		return -1;
	}
	if ((pid = fork_blocked()) < 0) {
		snprintf(err, errlen, "cannot check %s: fork: %s",
		    m->exe_path, strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0)
		check_child(m, pfd[1]);
	close(pfd[1]);
	(void)fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	m->check_pid = pid;
	m->check_fd = pfd[0];
	m->check_timed_out = false;
	m->upgrading = true;
	m->upgrade_client = client;
	ev_timer_set(&m->check_timer, CHECK_TIMEOUT, 0);
	ev_timer_start(m->loop, &m->check_timer);
	log_notice("upgrade: checking %s -t -c %s", m->exe_path, m->conf->path);
	return 0;
}

static int
master_ctl_upgrade(struct master *m, char *reply, size_t len)
{
	if (master_upgrade(m, -1, reply, len) < 0)
		return -1;
	/* Answered by whichever image finishes the upgrade. */
	m->upgrade_client = ctl_server_take_client(m->ctl);
	snprintf(reply, len, "upgrade started\n");
	return 0;
}

static void
check_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct master *m = t->data;

	if (m->check_pid > 0) {
		m->check_timed_out = true;
		kill(m->check_pid, SIGKILL);
	}
}

static void
upgrade_state_of(const struct master *m, struct upgrade_state *st, int old)
{
	upgrade_state_init(st);
	st->exe = m->exe_path;
	st->conf = m->conf;
	st->old_exe_fd = old;
	st->foreground = m->foreground;
	st->debug = m->log_level_fixed;
	st->generation = m->generation;
	st->stats_fd = m->stats.fd;
	st->ctl_fd = ctl_server_fd(m->ctl);
	st->client_fd = m->upgrade_client;
	st->metrics_fd = m->metrics_fd;
	memcpy(st->fds, m->fds, sizeof(st->fds));
	for (unsigned i = 0; i < STATS_ENTRIES; i++)
		if (m->procs[i].pid > 0)
			st->procs[st->nprocs++] = (struct upgrade_proc){
				.idx = i, .pid = m->procs[i].pid,
				.slot = m->procs[i].slot,
				.generation = m->procs[i].generation,
				.draining = m->procs[i].draining };
	for (unsigned s = 0; s < CONF_MAX_WORKERS; s++)
		st->restarts[s] = m->slots[s].restarts;
}

static void
upgrade_argv(char *exe, char *conf, bool foreground, bool debug,
    char *argv[6])
{
	static char c[] = "-c", f[] = "-f", d[] = "-d";
	int n = 0;

	argv[n++] = exe;
	argv[n++] = c;
	argv[n++] = conf;
	if (foreground)
		argv[n++] = f;
	if (debug)
		argv[n++] = d;
	argv[n] = NULL;
}

/* The state in a memfd, and the running image open for a fallback. */
static int
upgrade_prepare(struct master *m, int *fd, int *old, char *err,
    size_t errlen)
{
	struct upgrade_state st;

	*fd = memfd_create("goprod-upgrade", 0);
	*old = open("/proc/self/exe", O_RDONLY);
	if (*fd < 0 || *old < 0) {
		snprintf(err, errlen, "cannot keep the state or the running "
		    "image: %s", strerror(errno));
		return -1;
	}
	upgrade_state_of(m, &st, *old);
	return upgrade_state_write(*fd, &st, err, errlen);
}

static void
upgrade_exec(struct master *m)
{
	char err[512], env[32], *argv[6];
	int fd = -1, old = -1, e;

	if (upgrade_prepare(m, &fd, &old, err, sizeof(err)) < 0) {
		close_if_open(&fd);
		close_if_open(&old);
		upgrade_verdict(m, false, "upgrade failed, %s keeps running: "
		    "%s", master_version, err);
		return;
	}
	snprintf(env, sizeof(env), "%d %d", fd, old);
	upgrade_argv(m->exe_path, m->conf->path, m->foreground,
	    m->log_level_fixed, argv);
	/* The next image starts its own metrics process. */
	metrics_child_stop(m);
	upgrade_fds_inherit(m, true);
	setenv(UPGRADE_ENV, env, 1);
	daemon_notify("RELOADING=1");
	log_notice("upgrade: executing %s in place of %s (pid %ld, generation "
	    "%u)", m->exe_path, master_version, (long)getpid(), m->generation);
	execv(m->exe_path, argv);
	e = errno;
	unsetenv(UPGRADE_ENV);
	upgrade_fds_inherit(m, false);
	close(fd);
	close(old);
	daemon_notify("READY=1");
	upgrade_verdict(m, false, "upgrade failed, %s keeps running: cannot "
	    "execute %s: %s", master_version, m->exe_path, strerror(e));
}

/*
 * The new image will bind the addresses the file adds: refuse now the ones
 * somebody else holds, while this image can still say so.  When this
 * image's parser rejects the file (an option only the new binary knows),
 * the new binary's -t, which passed, is the judge.
 */
static int
upgrade_probe(struct master *m, char *err, size_t errlen)
{
	struct gopro_conf *nc;
	char e[CONF_ERR_MAX];
	int rc;

	if (conf_load(m->conf->path, &nc, e, sizeof(e)) < 0)
		return 0;
	rc = sockets_probe(nc, m->conf, err, errlen);
	conf_free(nc);
	return rc;
}

/* `goprod -t` of the new binary is over: go on, or say why not. */
static void
upgrade_checked(struct master *m, int status)
{
	char out[1024], why[96];
	bool banner;
	ssize_t n;

	m->check_pid = 0;
	ev_timer_stop(m->loop, &m->check_timer);
	n = read(m->check_fd, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	banner = strstr(out, UPGRADE_BANNER) != NULL;
	out[strcspn(out, "\n")] = '\0';   /* the first error says enough */
	close_if_open(&m->check_fd);
	describe_status(status, why, sizeof(why));
	if (m->stopping)
		upgrade_verdict(m, false, "upgrade abandoned: goprod is "
		    "shutting down");
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		upgrade_verdict(m, false, "upgrade refused, %s keeps running: "
		    "%s -t %s%s: %s", master_version, m->exe_path,
		    m->check_timed_out ? "timed out and was " : "", why, out);
	else if (!banner)
		upgrade_verdict(m, false, "upgrade refused, %s keeps running: "
		    "%s cannot take over a running goprod (its -t does not "
		    "say \"%s\")", master_version, m->exe_path, UPGRADE_BANNER);
	else if (upgrade_probe(m, out, sizeof(out)) < 0)
		upgrade_verdict(m, false, "upgrade refused, %s keeps running: "
		    "%s", master_version, out);
	else
		upgrade_exec(m);
}

/* The image that took over has handed over to its new workers. */
static void
upgrade_handed_over(struct master *m)
{
	if (!m->resumed)
		return;
	m->resumed = false;
	if (*m->upgrade_error) {
		upgrade_verdict(m, false, "upgrade failed: %s; %s was executed "
		    "again in place (pid %ld, generation %u)", m->upgrade_error,
		    master_version, (long)getpid(), m->generation);
		return;
	}
	m->stats.hdr->upgrades++;
	upgrade_verdict(m, true, "upgraded in place: pid %ld, %s, generation "
	    "%u", (long)getpid(), master_version, m->generation);
}

const char *
master_get_version(void)
{
	return master_version;
}

void
master_set_version(const char *version)
{
	master_version = version;
}

void
master_upgrade_fallback(int fd, int old_exe, char *const *argv,
    const char *why)
{
	char line[600], env[32];
	int len;

	if (fd < 0 || old_exe < 0)
		fatalx("upgrade: %s; there is no previous image to go back to",
		    why);
	log_warnx("upgrade: %s; executing the previous image again", why);
	len = snprintf(line, sizeof(line), "\nold_exe_fd -1\nerror %.500s",
	    why);
	for (char *p = line + 22; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (lseek(fd, 0, SEEK_END) < 0 || write(fd, line, (size_t)len) != len ||
	    write(fd, "\n", 1) != 1)
		fatal("upgrade: cannot record why in the state");
	snprintf(env, sizeof(env), "%d -1", fd);
	setenv(UPGRADE_ENV, env, 1);
	fd_cloexec(old_exe, true);
	fexecve(old_exe, argv, environ);
	fatal("upgrade: %s; cannot execute the previous image again", why);
}

/* Every descriptor of the state must be open, and the table in range. */
static int
adopt_check_fds(const struct master *m, const struct upgrade_state *st,
    char *err, size_t errlen)
{
	int bad = -1;

	for (int a = 0; a < CONF_MAX_LISTEN; a++)
		for (int s = 0; s < CONF_MAX_WORKERS; s++)
			if (st->fds[a][s] >= 0 && ((size_t)a >= m->nlisten ||
			    (unsigned)s >= m->nslots ||
			    fcntl(st->fds[a][s], F_GETFD) < 0))
				bad = st->fds[a][s];
	if (fcntl(st->ctl_fd, F_GETFD) < 0)
		bad = st->ctl_fd;
	if (st->metrics_fd >= 0 && fcntl(st->metrics_fd, F_GETFD) < 0)
		bad = st->metrics_fd;
	if (bad < 0)
		return 0;
	snprintf(err, errlen, "upgrade state: descriptor %d is not open or "
	    "out of the socket table", bad);
	return -1;
}

static void
adopt_procs(struct master *m, const struct upgrade_state *st)
{
	for (unsigned i = 0; i < st->nprocs; i++) {
		const struct upgrade_proc *p = &st->procs[i];

		if (p->idx >= m->stats.nentries ||
		    m->stats.entries[p->idx].pid != p->pid) {
			log_warnx("upgrade: worker pid %ld is not in the stats "
			    "segment; it is not adopted", (long)p->pid);
			continue;
		}
		m->procs[p->idx] = (struct worker_proc){ .pid = p->pid,
			.slot = p->slot, .generation = p->generation,
			.draining = p->draining, .started = ev_time() };
	}
	for (unsigned s = 0; s < CONF_MAX_WORKERS; s++)
		m->slots[s].restarts = st->restarts[s];
}

static int
master_adopt(struct master *m, struct upgrade_state *st, int fd,
    int old_exe, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	the_master = m;
	m->loop = EV_DEFAULT;
	m->conf = st->conf;
	st->conf = NULL;
	m->exe_path = st->exe;
	st->exe = NULL;
	m->foreground = st->foreground;
	m->log_level_fixed = st->debug;
	m->generation = st->generation;
	m->nlisten = m->conf->nlisten;
	m->nslots = m->conf->workers;
	m->stats.fd = m->check_fd = -1;
	m->upgrade_fd = fd;
	m->old_exe_fd = old_exe;
	m->upgrade_client = st->client_fd;
	m->metrics_fd = st->metrics_fd;
	snprintf(m->upgrade_error, sizeof(m->upgrade_error), "%s", st->error);
	memcpy(m->fds, st->fds, sizeof(m->fds));
	sockets_clear(m->retired_fds);
	if (adopt_check_fds(m, st, err, errlen) < 0 ||
	    daemon_lookup_ids(m->conf->user, m->conf->group, &m->uid, &m->gid,
	    err, errlen) < 0 ||
	    stats_adopt(&m->stats, st->stats_fd, m->conf->stats_file, err,
	    errlen) < 0)
		return -1;
	/* m->procs has STATS_ENTRIES places: a bigger segment would overrun it. */
	if (m->stats.nentries > STATS_ENTRIES) {
		snprintf(err, errlen, "stats file %s has %u entries, this goprod "
		    "keeps at most %u", m->conf->stats_file, m->stats.nentries,
		    STATS_ENTRIES);
		return -1;
	}
	adopt_procs(m, st);
	m->ctl = ctl_server_adopt(m->loop, st->ctl_fd, m->conf->control_socket,
	    master_ctl, m, err, errlen);
	return m->ctl == NULL ? -1 : 0;
}

/* ------------------------------------------------------------ signals */

static void
master_signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct master *m = s->data;
	char err[CONF_ERR_MAX];

	switch (s->signum) {
	case SIGHUP:
		/*
		 * A SIGHUP during a handover is kept for its end rather than
		 * refused: the file may have changed again since, and a signal
		 * cannot carry the refusal back to whoever sent it.
		 */
		if (m->handover) {
			log_notice("SIGHUP: reload queued until the running "
			    "one completes");
			m->reload_queued = true;
			break;
		}
		if (m->upgrading) {
			log_notice("SIGHUP: the binary upgrade in progress "
			    "reloads %s", m->conf->path);
			break;
		}
		log_notice("SIGHUP: reloading %s", m->conf->path);
		(void)master_reload(m, err, sizeof(err));
		break;
	case SIGTERM:
	case SIGINT:
		master_begin_stop(m, false);
		break;
	case SIGQUIT:
		master_begin_stop(m, true);
		break;
	case SIGUSR1:
		log_reopen();
		signal_procs(m, SIGUSR1, NULL);
		break;
	case SIGTTIN:
		master_add_worker(m);
		break;
	case SIGTTOU:
		master_remove_worker(m);
		break;
	case SIGUSR2:
		if (master_upgrade(m, -1, err, sizeof(err)) < 0)
			log_warnx("SIGUSR2: no upgrade: %s", err);
		break;
	default:
		break;
	}
}

static void
master_signals(struct master *m)
{
	static const int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1,
		SIGTTIN, SIGTTOU, SIGUSR2 };

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		ev_signal_init(&m->sigs[i], master_signal_cb, sigs[i]);
		m->sigs[i].data = m;
		ev_signal_start(m->loop, &m->sigs[i]);
	}
	ev_child_init(&m->child, child_cb, 0, 0);
	m->child.data = m;
	ev_child_start(m->loop, &m->child);
}

/* ------------------------------------------------------------ control */

static int
ctl_status(struct master *m, char *reply, size_t len)
{
	snprintf(reply, len, "pid %ld\ngeneration %u\nworkers %u\nlive %u\n"
	    "stopping %s\n", (long)getpid(), m->generation, m->conf->workers,
	    live_workers(m), m->stopping ? "yes" : "no");
	return 0;
}

static int
master_ctl(const char *command, char *reply, size_t len, void *arg)
{
	struct master *m = arg;

	if (strcmp(command, "reload") == 0) {
		if (master_reload(m, reply, len) < 0)
			return -1;
		/* The warnings too, not only the errors of a refusal. */
		snprintf(reply, len, "generation %u\n%s", m->generation,
		    m->reload_notes);
		return 0;
	}
	if (strcmp(command, "stop") == 0 || strcmp(command, "stop now") == 0) {
		master_begin_stop(m, command[4] != '\0');
		snprintf(reply, len, "stopping pid %ld\n", (long)getpid());
		return 0;
	}
	if (strcmp(command, "upgrade") == 0)
		return master_ctl_upgrade(m, reply, len);
	if (strcmp(command, "ping") == 0)
		return snprintf(reply, len, "pong\n") < 0 ? -1 : 0;
	if (strcmp(command, "status") == 0)
		return ctl_status(m, reply, len);
	snprintf(reply, len, "unknown command: %.64s\n", command);
	return -1;
}

/* ------------------------------------------------------------ metrics */

static void
metrics_child_start(struct master *m)
{
	pid_t pid;

	if (m->metrics_fd < 0 || m->stopping)
		return;
	pid = fork_blocked();
	if (pid < 0) {
		log_warn("cannot fork the metrics process");
		return;
	}
	if (pid == 0) {
		int fd = m->metrics_fd;
		sigset_t none;

		m->metrics_fd = -1;
		child_close_master_fds(m, CONF_MAX_WORKERS);
		log_set_procname("metrics");
		proctitle_set("goprod: metrics");
		ev_loop_destroy(EV_DEFAULT);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		_exit(metrics_serve(fd, m->conf->stats_file));
	}
	m->metrics_pid = pid;
	log_info("metrics endpoint on %s served by pid %ld",
	    m->conf->metrics_listen, (long)pid);
}

static void
metrics_restart_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	metrics_child_start(t->data);
}

static void
metrics_child_exited(struct master *m, int status)
{
	char why[96];

	m->metrics_pid = 0;
	if (m->stopping)
		return;
	describe_status(status, why, sizeof(why));
	log_warnx("metrics process %s; restarting in 1s", why);
	ev_timer_set(&m->metrics_restart, 1.0, 0);
	ev_timer_start(m->loop, &m->metrics_restart);
}

static void
metrics_child_stop(struct master *m)
{
	ev_timer_stop(m->loop, &m->metrics_restart);
	if (m->metrics_pid > 0)
		kill(m->metrics_pid, SIGTERM);
}

static int
metrics_open(struct master *m, char *err, size_t errlen)
{
	struct conf_listen addr;
	int fd;

	m->metrics_fd = -1;
	if (m->conf->metrics_listen == NULL)
		return 0;
	memset(&addr, 0, sizeof(addr));
	addr.text = m->conf->metrics_listen;
	if (conf_parse_address(addr.text, &addr.addr, &addr.addrlen) < 0) {
		snprintf(err, errlen, "metrics_listen %s: bad address",
		    addr.text);
		return -1;
	}
	/* A TCP address: no owner for a socket file. */
	fd = listen_open(&addr, 64, NULL, err, errlen);
	if (fd < 0)
		return -1;
	m->metrics_fd = fd;
	return 0;
}

/* ------------------------------------------------------------ start-up */

/* The line an operator looks for first: what runs, from which file, where. */
static void
log_started(const struct master *m)
{
	char addrs[1024];

	listen_describe(m->conf, addrs, sizeof(addrs));
	log_notice("%s started: pid %ld, configuration %s%s%s%s, listening "
	    "on %s, %u workers%s%s", master_version, (long)getpid(),
	    m->conf->path, READ_FROM(m->conf), addrs, m->conf->workers,
	    m->conf->metrics_listen ? ", metrics on " : "",
	    m->conf->metrics_listen ? m->conf->metrics_listen : "");
}

static void
init_or_die(int rc, const char *err)
{
	if (rc < 0)
		fatalx("%s", err);
}

static void
master_check_nofile(const struct gopro_conf *conf)
{
	/* Each worker is a process: the limit applies to each separately. */
	long want = (long)conf->max_connections + 64 +
	    (long)conf->nlisten * CONF_MAX_WORKERS;
	long have = daemon_raise_nofile(want);

	if (have < want)
		log_warnx("the descriptor limit is %ld but max_connections = %u "
		    "needs about %ld per worker: raise LimitNOFILE/ulimit -n, "
		    "or expect refused connections", have,
		    conf->max_connections, want);
}

static void
master_make_dirs(struct master *m)
{
	const char *paths[3 + CONF_MAX_LISTEN] = { m->conf->pid_file,
		m->conf->stats_file, m->conf->control_socket };
	size_t n = 3;
	char err[512];

	for (size_t a = 0; a < m->conf->nlisten; a++)
		if (listen_is_unix(&m->conf->listen[a]))
			paths[n++] = ((const struct sockaddr_un *)(const void *)
			    &m->conf->listen[a].addr)->sun_path;
	for (size_t i = 0; i < n; i++)
		init_or_die(daemon_make_parent(paths[i], m->uid, m->gid, err,
		    sizeof(err)), err);
}

void
master_init(struct master *m, struct gopro_conf *conf, bool foreground,
    bool debug)
{
	char err[CONF_ERR_MAX];

	memset(m, 0, sizeof(*m));
	the_master = m;
	m->loop = EV_DEFAULT;
	m->conf = conf;
	m->foreground = foreground;
	m->log_level_fixed = debug;
	m->generation = 1;
	m->nlisten = conf->nlisten;
	m->nslots = conf->workers;
	m->stats.fd = -1;
	m->check_fd = m->upgrade_client = m->upgrade_fd = m->old_exe_fd = -1;
	/* Resolved now: an upgrade replaces the file, not this process. */
	m->exe_path = realpath("/proc/self/exe", NULL);
	sockets_clear(m->fds);
	sockets_clear(m->retired_fds);
	master_check_nofile(conf);
	init_or_die(daemon_lookup_ids(conf->user, conf->group, &m->uid, &m->gid,
	    err, sizeof(err)), err);
	init_or_die(readable_check(conf, m->uid, m->gid, err, sizeof(err)),
	    err);
	/* Before the sockets: a unix listener may live in the runtime dir. */
	master_make_dirs(m);
	init_or_die(sockets_probe(conf, NULL, err, sizeof(err)), err);
	init_or_die(sockets_bind(m, conf, m->fds, 0, conf->workers, err,
	    sizeof(err)), err);
	if (conf->auth.users_file != NULL &&
	    (m->users = auth_users_load(conf->auth.users_file, err,
	    sizeof(err))) == NULL)
		fatalx("%s", err);
	init_or_die(stats_create(&m->stats, conf->stats_file, STATS_ENTRIES,
	    m->gid, err, sizeof(err)), err);
	init_or_die(metrics_open(m, err, sizeof(err)), err);
	m->ctl = ctl_server_start(m->loop, conf->control_socket, m->uid, m->gid,
	    master_ctl, m, err, sizeof(err));
	if (m->ctl == NULL)
		fatalx("%s", err);
}

static void
master_timers(struct master *m)
{
	ev_init(&m->handover_timer, handover_cb);
	m->handover_timer.data = m;
	ev_init(&m->ready_timer, ready_cb);
	m->ready_timer.data = m;
	ev_init(&m->stop_timer, stop_timer_cb);
	m->stop_timer.data = m;
	ev_init(&m->metrics_restart, metrics_restart_cb);
	m->metrics_restart.data = m;
	ev_init(&m->check_timer, check_timer_cb);
	m->check_timer.data = m;
	for (unsigned s = 0; s < CONF_MAX_WORKERS; s++) {
		ev_init(&m->slots[s].respawn, respawn_cb);
		m->slots[s].respawn.data = (void *)(uintptr_t)s;
	}
	master_info_timer(m);
	watchdog_master_init(m);
}

static void
master_cleanup(struct master *m)
{
	if (m->ctl)
		ctl_server_stop(m->ctl);
	if (unlink(m->conf->pid_file) < 0 && errno != ENOENT)
		log_warn("cannot remove %s", m->conf->pid_file);
	if (unlink(m->conf->stats_file) < 0 && errno != ENOENT)
		log_warn("cannot remove %s", m->conf->stats_file);
	stats_close(&m->stats);
	conf_free(m->prev_conf);
	m->prev_conf = NULL;
	sockets_close(m->fds);
	sockets_close(m->retired_fds);
	sockets_remove_files(m->conf, NULL);
	if (m->metrics_fd >= 0)
		close(m->metrics_fd);
	if (m->users)
		auth_users_unref(m->users);
	close_if_open(&m->upgrade_client);
	free(m->exe_path);
	conf_free(m->conf);
}

/*
 * Every worker of the configuration, or -1: a start with fewer workers
 * than configured is no start, since the kernel would queue connections on
 * the sockets of the missing ones that nobody accepts.
 */
static int
master_start_workers(struct master *m)
{
	if (free_entries(m) < m->conf->workers)
		fatalx("%s has %u free worker entries for %u workers: goprod "
		    "does not start", m->conf->stats_file, free_entries(m),
		    m->conf->workers);
	for (unsigned s = 0; s < m->conf->workers; s++)
		if (master_spawn(m, s) < 0) {
			log_warnx("worker %u of %u could not start: goprod does "
			    "not start", s, m->conf->workers);
			return -1;
		}
	return 0;
}

static int
master_loop(struct master *m)
{
	/* With no worker at all, the break of master_begin_stop came early. */
	if (!m->stopping || live_workers(m) > 0)
		ev_run(m->loop, 0);
	log_notice("all workers gone; exiting");
	master_cleanup(m);
	return m->exit_code;
}

int
master_run(struct master *m)
{
	char err[512];

	if (!m->foreground) {
		if (daemon_detach() < 0)
			fatal("cannot detach into the background");
		ev_loop_fork(m->loop);
	}
	m->stats.hdr->master_pid = getpid();
	m->stats.hdr->generation = m->generation;
	m->stats.hdr->workers = m->conf->workers;
	m->stats.hdr->tls_cert_expiry = m->conf->tls.expiry;
	init_or_die(daemon_write_pidfile(m->conf->pid_file, err, sizeof(err)),
	    err);
	init_or_die(daemon_drop_privileges(m->uid, m->gid, m->conf->user, err,
	    sizeof(err)), err);
	log_set_procname("master");
	proctitle_set("goprod: master (generation %u)", m->generation);
	master_signals(m);
	master_timers(m);
	master_info_start(m);
	if (master_start_workers(m) < 0) {
		/* Never READY: the start fails, and says so by its status. */
		m->exit_code = 1;
		master_begin_stop(m, true);
	} else {
		metrics_child_start(m);
		log_started(m);
		/* READY=1 once every worker serves, as after a reload. */
		m->ready_started = ev_now(m->loop);
		ev_timer_set(&m->ready_timer, HANDOVER_POLL, HANDOVER_POLL);
		ev_timer_start(m->loop, &m->ready_timer);
	}
	return master_loop(m);
}

int
master_resume(struct master *m, struct upgrade_state *st, int fd,
    int old_exe, char *const *argv)
{
	char err[CONF_ERR_MAX];

	if (master_adopt(m, st, fd, old_exe, err, sizeof(err)) < 0)
		master_upgrade_fallback(fd, old_exe, argv, err);
	log_set_procname("master");
	proctitle_set("goprod: master (generation %u)", m->generation);
	master_signals(m);
	master_timers(m);
	master_info_start(m);
	/* Workers that exited while no image watched are reaped now. */
	ev_feed_signal_event(m->loop, SIGCHLD);
	if (master_reload(m, err, sizeof(err)) < 0)
		master_upgrade_fallback(fd, old_exe, argv, err);
	/* Taken over for good: nothing more goes to another image. */
	upgrade_fds_inherit(m, false);
	close_if_open(&m->upgrade_fd);
	close_if_open(&m->old_exe_fd);
	m->upgrading = m->resumed = true;
	metrics_child_start(m);
	log_notice("upgrade: %s took over pid %ld from the previous image",
	    master_version, (long)getpid());
	return master_loop(m);
}
