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

/* What the master knows of one worker process; index = stats entry. */
struct worker_proc {
	pid_t pid;          /* 0 when the entry is free */
	unsigned slot;
	unsigned generation;
	bool draining;      /* told to drain: its exit is expected */
	ev_tstamp started;
};

struct slot_state {
	unsigned restarts;      /* unexpected exits replaced so far */
	unsigned fast_crashes;  /* consecutive exits within a second of start */
	ev_timer respawn;       /* pending respawn after back-off */
};

struct master {
	struct ev_loop *loop;
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
	struct ctl_server *ctl;
	struct auth_users *users;

	bool stopping;
	bool handover;          /* a reload waits for its new workers */
	bool reload_queued;     /* SIGHUP during a handover: reload after it */
	unsigned handover_generation;
	ev_timer handover_timer;
	ev_tstamp handover_started;
	ev_timer stop_timer;
	ev_child child;
	ev_signal sigs[9];
	int exit_code;

	pid_t metrics_pid;
	int metrics_fd;         /* metrics_listen socket, -1 when off */
	ev_timer metrics_restart;
	uid_t uid;              /* identity to drop to, -1 = keep */
	gid_t gid;
};

/*
 * Set up everything that can fail before daemonizing: sockets, stats,
 * control socket.  Exits with a message on failure.
 */
void master_init(struct master *m, struct gopro_conf *conf, bool foreground,
    bool debug);
/* Write the pid file, drop privileges, fork the workers, run; returns the exit code. */
int master_run(struct master *m);

#endif /* GOPRO_MASTER_H */
