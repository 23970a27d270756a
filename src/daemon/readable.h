/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * readable.h - whether the identity goprod runs as once it has dropped
 * root can read every file a reload reads again.  Checked at start and by
 * goprod -t, so that a start does not succeed only for every reload to
 * fail with "Permission denied".
 */
#ifndef GOPRO_READABLE_H
#define GOPRO_READABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf.h"

/*
 * 0 when uid:gid (as daemon_drop_privileges will set them; -1 = keep) can
 * open for reading each file of conf that a reload reads: the
 * configuration file by the path given, the users file and the modules
 * (conf.c loads the TLS files as that user, see below).  Otherwise -1 and
 * "what path: not readable by ...: why" in err for the first that is not.
 * Does nothing unless running as root with an identity to switch to.
 */
int readable_check(const struct gopro_conf *conf, uid_t uid, gid_t gid,
    char *err, size_t errlen);

/*
 * Reading files as the user every reload reads them as, in this process:
 * as root with a user to drop to, readable_become switches the effective
 * uid, gid and groups to the ones daemon_drop_privileges will set, and
 * readable_unbecome switches back to root.  Whatever the paths lead to
 * (a symbolic link the service account planted included) is then opened
 * with the service account's rights, never root's, and a file it cannot
 * read fails now rather than at the first reload.  Otherwise (not root,
 * or no user) both do nothing and the files are read as the process is.
 * Only for a process with a single thread (the master before it forks,
 * goprod -t, goproctl).
 */
struct readable_as {
	bool switched;
	uid_t uid;		/* whom the files are read as */
	gid_t gid;
	gid_t egid;		/* root's, to switch back to */
	int ngroups;
	gid_t *groups;
	char who[128];		/* "user nobody (uid 65534, gid 65534)" */
};

int readable_become(const struct gopro_conf *conf, struct readable_as *as,
    char *err, size_t errlen);
void readable_unbecome(struct readable_as *as);
/*
 * 0 when path opens for reading as *as; otherwise -1 and why in why:
 * "not readable by user nobody (...), as whom every reload reads it:
 * Permission denied (expected ...)".
 */
int readable_try(const struct readable_as *as, const char *path, char *why,
    size_t whylen);

#endif /* GOPRO_READABLE_H */
