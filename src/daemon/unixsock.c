/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * unixsock.c - socket files of the master's unix sockets (see unixsock.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unixsock.h"

int
unixsock_addr(struct sockaddr_un *sun, const char *path, const char *what,
    char *err, size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "%s %s: path longer than %zu bytes", what,
		    path, sizeof(sun->sun_path) - 1);
		return -1;
	}
	strcpy(sun->sun_path, path);
	return 0;
}

int
unixsock_clear_stale(const struct sockaddr_un *sun, bool remove,
    const char *what, const char *live, char *err, size_t errlen)
{
	struct stat st;
	int fd, rc;

	if (lstat(sun->sun_path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s %s: exists and is not a socket; "
		    "remove it or choose another path", what, sun->sun_path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, sun->sun_path,
		    strerror(errno));
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "%s %s: %s", what, sun->sun_path, live);
		return -1;
	}
	if (errno == ECONNREFUSED && (!remove || unlink(sun->sun_path) == 0))
		return 0;
	snprintf(err, errlen, "%s %s: cannot replace it: %s", what,
	    sun->sun_path, strerror(errno));
	return -1;
}

/*
 * Hand the socket file bind() just made to uid:gid: chown only what a
 * descriptor opened without following the name shows to be a socket with
 * a single link.  -1 with errno, or EEXIST when the name no longer holds
 * a socket of ours.
 */
static int
file_give(const char *path, uid_t uid, gid_t gid, struct stat *st)
{
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC), rc = -1, e;

	if (fd < 0)
		return -1;
	if (fstat(fd, st) == 0) {
		if (!S_ISSOCK(st->st_mode) || st->st_nlink != 1)
			errno = EEXIST;
		else if ((uid == (uid_t)-1 && gid == (gid_t)-1) ||
		    fchownat(fd, "", uid, gid, AT_EMPTY_PATH) == 0)
			rc = 0;
	}
	e = errno;
	close(fd);
	errno = e;
	return rc;
}

int
unixsock_bind(int fd, const struct sockaddr_un *sun, mode_t mode,
    uid_t uid, gid_t gid, int backlog, struct unixsock_file *file,
    const char *what, char *err, size_t errlen)
{
	struct stat st;
	mode_t old;
	int rc;

	/* The umask gives the file its mode as bind() creates it: no chmod. */
	old = umask(~mode & 0777);
	rc = bind(fd, (const struct sockaddr *)sun, sizeof(*sun));
	umask(old);
	if (rc == 0 && file_give(sun->sun_path, uid, gid, &st) == 0 &&
	    listen(fd, backlog) == 0) {
		file->dev = st.st_dev;
		file->ino = st.st_ino;
		return 0;
	}
	snprintf(err, errlen, "%s %s: %s", what, sun->sun_path,
	    errno == EEXIST ? "replaced by another file right after bind "
	    "(who else writes its directory?)" : strerror(errno));
	if (rc == 0 && errno != EEXIST)
		unlink(sun->sun_path);
	return -1;
}

void
unixsock_file_of(const char *path, struct unixsock_file *file)
{
	struct stat st;

	memset(file, 0, sizeof(*file));
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		file->dev = st.st_dev;
		file->ino = st.st_ino;
	}
}

int
unixsock_remove(const char *path, const struct unixsock_file *file)
{
	struct stat st;

	if (file->ino == 0 || lstat(path, &st) < 0 || st.st_dev != file->dev ||
	    st.st_ino != file->ino)
		return 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}
