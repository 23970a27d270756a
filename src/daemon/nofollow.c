/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * nofollow.c - files that root opens or creates where the service account
 * can write (see nofollow.h).  The pid file, the stats segment and the log
 * file go through here.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nofollow.h"

int
nofollow_open(const char *path, int flags, mode_t mode)
{
	struct stat st;
	int fd, e;

	/* O_NONBLOCK: opening a FIFO planted at path must not hang root. */
	fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	errno = !S_ISREG(st.st_mode) ? EPERM : st.st_nlink != 1 ? EMLINK : 0;
	if (errno != 0)
		goto fail;
	if (!(flags & O_NONBLOCK) &&
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		goto fail;
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

int
nofollow_create_beside(const char *path, mode_t mode, gid_t gid, char *tmp,
    size_t tmplen)
{
	int fd, e;

	if ((size_t)snprintf(tmp, tmplen, "%s.XXXXXX", path) >= tmplen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* mkostemp creates with O_EXCL: a link at the name is never followed. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		return -1;
	if (fchmod(fd, mode) == 0 &&
	    (gid == (gid_t)-1 || fchown(fd, (uid_t)-1, gid) == 0))
		return fd;
	e = errno;
	unlink(tmp);
	close(fd);
	errno = e;
	return -1;
}

int
nofollow_install(const char *tmp, const char *path)
{
	int e;

	if (rename(tmp, path) == 0)
		return 0;
	e = errno;
	unlink(tmp);
	errno = e;
	return -1;
}
