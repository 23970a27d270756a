/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctl.h - the control channel between goproctl and the master: a unix
 * stream socket owned by the master (mode 0660).  A client sends one
 * command line ("reload", "stop", "stop now", "status"), the master answers
 * with "ok" or "error" on the first line, optional detail lines after it,
 * and closes.  Requests are bounded in size and time so a stuck client
 * cannot hold the master.
 */
#ifndef GOPRO_CTL_H
#define GOPRO_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ev_loop;
struct ctl_server;

#define CTL_REQUEST_MAX 256
/*
 * An "error" reply whose detail starts with this is transient (a reload
 * while another one is being handed over): the client may ask again.
 */
#define CTL_BUSY_PREFIX "busy:"
#define CTL_REPLY_MAX 8192

/*
 * Handle one command (NUL-terminated, without newline).  Write the reply
 * text after the status line into reply[0..len) and return 0 for "ok" or -1
 * for "error".
 */
typedef int (*ctl_handler)(const char *command, char *reply, size_t len,
    void *arg);

/*
 * Listen on path (replacing a stale socket, refusing to replace a live one)
 * in loop, owned by uid:gid when not -1, mode 0660.  NULL and a message in
 * err on failure.
 */
struct ctl_server *ctl_server_start(struct ev_loop *loop, const char *path,
    uid_t uid, gid_t gid, ctl_handler handler, void *arg, char *err,
    size_t errlen);
/* Close the socket and every client, unlink path. */
void ctl_server_stop(struct ctl_server *server);
/*
 * In a freshly forked child: close the listening socket and every client
 * socket without touching the loop or the path (they belong to the master).
 */
void ctl_server_close_fds(struct ctl_server *server);

/*
 * A binary upgrade hands the listening socket fd (bound to path by a
 * predecessor in this process) to the new image, which serves it again.
 */
struct ctl_server *ctl_server_adopt(struct ev_loop *loop, int fd,
    const char *path, ctl_handler handler, void *arg, char *err,
    size_t errlen);
int ctl_server_fd(const struct ctl_server *server);
/*
 * Called by a handler: take over the socket of the client whose command
 * runs (-1 when none), to answer it later with ctl_reply_fd; the server
 * then sends nothing itself.
 */
int ctl_server_take_client(struct ctl_server *server);
/* Send "ok"/"error" and detail on a taken client socket, then close it. */
void ctl_reply_fd(int fd, bool ok, const char *detail);

/*
 * Client side: send command to the master at path and read the whole
 * reply (status line included) into reply, waiting at most timeout
 * seconds.  Returns 0 when the master answered "ok", 1 when it answered
 * "error", -1 with errno when it could not be reached.
 */
int ctl_call(const char *path, const char *command, char *reply, size_t len,
    double timeout);

#endif /* GOPRO_CTL_H */
