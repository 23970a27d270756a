/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * nofollow.h - opening and creating files as root in a directory that the
 * service account can write (the runtime directory, the log directory).
 *
 * Whoever can write a directory decides what its names point to: a
 * symbolic link or a hard link planted there would make root truncate,
 * append to, chmod or chown a file of root's choosing.  These helpers
 * never follow a link in the last component, never open anything but a
 * regular file with a single link, and create new files under a fresh
 * name (O_EXCL) that is renamed into place, so an existing file is never
 * rewritten.  Modes and owners are set on the descriptor.
 */
#ifndef GOPRO_NOFOLLOW_H
#define GOPRO_NOFOLLOW_H

#include <stddef.h>
#include <sys/types.h>

/*
 * open(2) with O_NOFOLLOW and O_CLOEXEC added; refuses (closes, -1) what
 * is not a regular file (errno EPERM; a FIFO does not block the open) or
 * has another hard link (errno EMLINK).  A symbolic link fails with ELOOP.
 */
int nofollow_open(const char *path, int flags, mode_t mode);
/*
 * Create a new, empty file beside path (path.XXXXXX, never an existing
 * name) with mode and, when gid is not -1, group gid.  Returns its
 * descriptor and its name in tmp, or -1 with errno.  The caller fills it
 * and moves it into place with nofollow_install().
 */
int nofollow_create_beside(const char *path, mode_t mode, gid_t gid,
    char *tmp, size_t tmplen);
/* rename(2) tmp over path (replacing a link, never following it); on failure tmp is removed. */
int nofollow_install(const char *tmp, const char *path);

#endif /* GOPRO_NOFOLLOW_H */
