/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * upgrade.h - what a master hands the next image of itself across
 * execve(2) in a binary upgrade: its descriptors (listening sockets, stats
 * segment, control socket, the goproctl client waiting for the verdict),
 * its live workers, which stay its children, and the part of the running
 * configuration that a reload keeps (paths, identity, logging).
 *
 * The state travels as text in a memfd whose number is in the environment
 * variable UPGRADE_ENV, as systemd passes LISTEN_FDS.  The reader trusts
 * nothing: every line is checked, every number bounded, every descriptor
 * must be open.  master.c turns a master into this state and back.
 */
#ifndef GOPRO_UPGRADE_H
#define GOPRO_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf.h"
#include "stats.h"

#define UPGRADE_ENV "GOPRO_UPGRADE_FD"
/* Set for `goprod -t` run as the pre-upgrade check: it prints UPGRADE_BANNER. */
#define UPGRADE_CHECK_ENV "GOPRO_UPGRADE_CHECK"
#define UPGRADE_PROTOCOL 1
#define UPGRADE_BANNER "goprod: upgrade protocol 1"
#define UPGRADE_STATE_MAX (256 * 1024)

struct upgrade_proc {
	unsigned idx;         /* stats entry */
	pid_t pid;
	unsigned slot;
	unsigned generation;
	bool draining;
};

struct upgrade_state {
	char *exe;            /* the installed binary the master runs */
	int old_exe_fd;       /* the image that wrote the state; -1 = none */
	bool foreground;
	bool debug;
	unsigned generation;
	int stats_fd;
	int ctl_fd;
	int client_fd;        /* goproctl waiting for the verdict; -1 = none */
	int metrics_fd;       /* -1 = none */
	/*
	 * The running configuration as far as the next image needs it before
	 * it reloads: path, listen, workers, and the options a reload keeps.
	 */
	struct gopro_conf *conf;
	int fds[CONF_MAX_LISTEN][CONF_MAX_WORKERS];
	struct upgrade_proc procs[STATS_ENTRIES];
	unsigned nprocs;
	unsigned restarts[CONF_MAX_WORKERS];
	char error[512];      /* set by an image that gave up: why */
};

/* An empty state: every descriptor -1, no strings. */
void upgrade_state_init(struct upgrade_state *st);
/* Free the strings and the configuration (not the descriptors). */
void upgrade_state_free(struct upgrade_state *st);
/* Write st as text to fd (from offset 0); 0, or -1 + err. */
int upgrade_state_write(int fd, const struct upgrade_state *st, char *err,
    size_t errlen);
/* Parse a state from fd (from offset 0) into st; 0, or -1 + err. */
int upgrade_state_read(int fd, struct upgrade_state *st, char *err,
    size_t errlen);
/* The same from text, for the tests. */
int upgrade_state_parse(char *text, struct upgrade_state *st, char *err,
    size_t errlen);

#endif /* GOPRO_UPGRADE_H */
