/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daemon.h - the chores of a Unix daemon: detach from the terminal, the pid
 * file, the runtime directory, the descriptor limit, dropping privileges,
 * and telling systemd about our state.
 */
#ifndef GOPRO_DAEMON_H
#define GOPRO_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * Fork into the background, new session, stdio on /dev/null; 0 or -1.
 * The process that called it exits only when the daemon calls
 * daemon_ready (status 0) or exits first (status 1).
 */
int daemon_detach(void);
/* The start is complete: let the process that ran goprod exit 0. */
void daemon_ready(void);
/*
 * Create path's directory (mode 0755) when missing and hand it to uid:gid
 * when they are not -1; 0, or -1 with a message in err.
 */
int daemon_make_parent(const char *path, uid_t uid, gid_t gid, char *err,
    size_t errlen);
/* Refuse when path names a live process; write our pid; 0 or -1 + err. */
int daemon_write_pidfile(const char *path, char *err, size_t errlen);
/* The pid recorded in path when that process is alive, else 0. */
pid_t daemon_read_pidfile(const char *path);
/* Raise RLIMIT_NOFILE to want (or the hard limit); returns the new soft limit. */
long daemon_raise_nofile(long want);
/* Look up user and group ("" or NULL: keep ours); 0 or -1 + err. */
int daemon_lookup_ids(const char *user, const char *group, uid_t *uid,
    gid_t *gid, char *err, size_t errlen);
/* Switch to uid:gid for good (only when root); 0 or -1 + err. */
int daemon_drop_privileges(uid_t uid, gid_t gid, const char *user,
    char *err, size_t errlen);
/*
 * The state letter ('R', 'S', 'Z'...) and parent of pid from /proc; false
 * when there is no such process.
 */
bool daemon_proc_state(pid_t pid, char *state, pid_t *ppid);
/*
 * /proc/PID/stat read into buf (len bytes); the fields after "(comm)", from
 * the state on, or NULL when the process or its file is gone.
 */
const char *daemon_proc_stat(pid_t pid, char *buf, size_t len);
/*
 * Send sig to pid only once it is proven to be a goprod master of ours: a
 * process of the goprod binary whose real, effective, saved and file
 * system uids are all uid.  The pid comes from a file the service account
 * can write; with uid the service account's, the signal can reach no
 * process that the service account could not signal itself.  The process
 * is held by a pidfd while it is checked, so a pid reused meanwhile gets
 * nothing.  0 when sent; -1 with the reason in why (errno set).
 */
int daemon_signal_master(pid_t pid, uid_t uid, int sig, char *why,
    size_t whylen);
/* sd_notify when built with systemd and run under it; a no-op otherwise. */
void daemon_notify(const char *state);

#endif /* GOPRO_DAEMON_H */
