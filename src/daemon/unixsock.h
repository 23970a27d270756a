/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * unixsock.h - the socket files of the master's unix stream sockets: the
 * control socket (ctl.c) and unix listeners (listen.c).
 *
 * Their directory may be the service account's (the runtime directory),
 * and whoever writes a directory decides what its names are, so: a file
 * that is not a socket is never removed; a socket is replaced only when
 * nothing answers on it (a dead daemon's), never when something does;
 * the file bind() made is chowned through a descriptor that did not
 * follow the name; and a socket file is removed at the end only if it is
 * still the one this process bound (device and inode), never a
 * successor's.
 */
#ifndef GOPRO_UNIXSOCK_H
#define GOPRO_UNIXSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

/* The socket file a bind made, or a zeroed one when unknown. */
struct unixsock_file {
	dev_t dev;
	ino_t ino;
};

/*
 * sun for path; -1 with "WHAT PATH: path longer than N bytes" in err.
 * what names the option in messages ("control socket", "listen unix:").
 */
int unixsock_addr(struct sockaddr_un *sun, const char *path,
    const char *what, char *err, size_t errlen);
/*
 * Whether a socket can be bound at sun: 0 when nothing is there or a
 * socket nobody answers on (removed when remove is set); -1 with a message
 * when a file that is not a socket is there (never removed) or something
 * answers (live says what: "another goprod master is answering on it").
 */
int unixsock_clear_stale(const struct sockaddr_un *sun, bool remove,
    const char *what, const char *live, char *err, size_t errlen);
/*
 * Bind fd at sun with mode (through the umask, so the file never has
 * more), give the new file to uid:gid (-1: keep), listen with backlog and
 * record the file.  -1 with a message; the file bind() made is removed.
 */
int unixsock_bind(int fd, const struct sockaddr_un *sun, mode_t mode,
    uid_t uid, gid_t gid, int backlog, struct unixsock_file *file,
    const char *what, char *err, size_t errlen);
/* The socket file at path now (an adopted socket's); zeroed when none. */
void unixsock_file_of(const char *path, struct unixsock_file *file);
/*
 * Unlink path when it still is file: 0 (also when it no longer is, or is
 * gone), -1 with errno when the unlink failed.
 */
int unixsock_remove(const char *path, const struct unixsock_file *file);

#endif /* GOPRO_UNIXSOCK_H */
