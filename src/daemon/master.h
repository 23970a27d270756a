/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * master.h - the master process: it owns the listening sockets, the stats
 * segment and the control socket, forks and watches the workers, and turns
 * signals and control commands into reloads, drains and respawns.  It never
 * serves a client.
 */
#ifndef GOPRO_MASTER_H
#define GOPRO_MASTER_H

#include <stdbool.h>
#include <sys/types.h>

#include <ev.h>

#include "conf.h"
#include "stats.h"

struct ctl_server;
struct auth_users;
struct upgrade_state;

/* What the master knows of one worker process; index = stats entry. */
struct worker_proc {
	pid_t pid;          /* 0 when the entry is free */
	unsigned slot;
	unsigned generation;
	bool draining;      /* told to drain: its exit is expected */
	bool abort_sent;    /* stalled: SIGABRT sent by the watchdog */
	ev_tstamp started;
};

struct slot_state {
	unsigned restarts;      /* unexpected exits replaced so far */
	unsigned fast_crashes;  /* consecutive exits within a second of start */
	ev_timer respawn;       /* pending respawn after back-off */
};

struct master {
	struct ev_loop *loop;
	/* The generation before the last reload, for a crash-loop rollback. */
	struct gopro_conf *prev_conf;
	ev_tstamp reloaded_at;
	unsigned reload_crashes;    /* of the current generation's workers */
	bool rolling_back;
	ev_timer watchdog;      /* workers' heartbeats (watchdog.c) */
	struct gopro_conf *conf;
	unsigned generation;
	bool foreground;
	bool log_level_fixed;   /* -d given: reloads keep debug logging */

	/* fds[a][s]: the socket of listen address a for worker slot s. */
	int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS];
	/* The previous generation's sockets that a reload did not keep. */
	int retired_fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS];
	size_t nlisten;
	unsigned nslots;        /* slots with sockets */

	struct worker_proc procs[STATS_ENTRIES];
	struct slot_state slots[CONF_MAX_WORKERS];
	struct stats_segment stats;
	struct stats_info info;     /* the last published (master_info.c) */
	char reload_notes[1024];    /* what the last reload changed, warned */
	ev_timer queue_timer;       /* samples the accept queues */
	struct ctl_server *ctl;
	struct auth_users *users;

	bool stopping;
	bool stopping_now;      /* stop --now / SIGQUIT: no drain */
	bool handover;          /* a reload waits for its new workers */
	bool reload_queued;     /* SIGHUP during a handover: reload after it */
	unsigned handover_generation;
	ev_timer handover_timer;
	ev_tstamp handover_started;
	ev_timer ready_timer;   /* at start: READY=1 once the workers serve */
	ev_tstamp ready_started;
	ev_timer stop_timer;
	ev_child child;
	ev_signal sigs[9];
	int exit_code;

	pid_t metrics_pid;
	int metrics_fd;         /* metrics_listen socket, -1 when off */
	ev_timer metrics_restart;
	uid_t uid;              /* identity to drop to, -1 = keep */
	gid_t gid;

	/* Binary upgrade in place (upgrade.h). */
	char *exe_path;         /* the installed binary this master runs */
	bool upgrading;         /* checking the new binary, or handing over */
	bool resumed;           /* this image took over: answer after the handover */
	bool check_timed_out;
	pid_t check_pid;        /* `goprod -t` of the new binary */
	int check_fd;           /* its output */
	ev_timer check_timer;
	int upgrade_client;     /* goproctl waiting for the verdict, -1 */
	int upgrade_fd;         /* after exec: the state, kept for a fallback */
	int old_exe_fd;         /* after exec: the previous image, -1 = none */
	char upgrade_error[512];/* after a fallback: why the new image failed */
};

/*
 * Set up everything that can fail before daemonizing: sockets, stats,
 * control socket.  Exits with a message on failure.
 */
void master_init(struct master *m, struct gopro_conf *conf, bool foreground,
    bool debug);
/* Write the pid file, drop privileges, fork the workers, run; returns the exit code. */
int master_run(struct master *m);
/* What `goproctl upgrade` reports the new image as: "goprod 1.2". */
void master_set_version(const char *version);
/* "goprod 0.1.0", as set (the start line, the stats segment). */
const char *master_get_version(void);
/*
 * In the image a binary upgrade executed: take over the state (its
 * descriptors stay inheritable until the reload succeeded, for a fallback),
 * reload the configuration as a reload does, drain the old workers, run;
 * returns the exit code.  On failure re-executes the previous image with
 * the state, or exits when there is none.  fd is the state's memfd,
 * old_exe the previous image (-1 = none), argv the one to execute it with.
 */
int master_resume(struct master *m, struct upgrade_state *st, int fd,
    int old_exe, char *const *argv);
/*
 * Give up an upgrade before the master runs: re-execute old_exe with the
 * state in fd and why, or exit when there is no old image.
 */
void master_upgrade_fallback(int fd, int old_exe, char *const *argv,
    const char *why)
    __attribute__((noreturn));

#endif /* GOPRO_MASTER_H */
