/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * readable.h - whether the identity goprod runs as once it has dropped
 * root can read every file a reload reads again.  Checked at start and by
 * goprod -t, so that a start does not succeed only for every reload to
 * fail with "Permission denied".
 */
#ifndef GOPRO_READABLE_H
#define GOPRO_READABLE_H

#include <stddef.h>
#include <sys/types.h>

#include "conf.h"

/*
 * 0 when uid:gid (as daemon_drop_privileges will set them; -1 = keep) can
 * open for reading each file of conf that a reload reads: the
 * configuration file by the path given, the users file, the TLS files and
 * the modules.  Otherwise -1 and
 * "what path: not readable by ...: why" in err for the first that is not.
 * Does nothing unless running as root with an identity to switch to.
 */
int readable_check(const struct gopro_conf *conf, uid_t uid, gid_t gid,
    char *err, size_t errlen);

#endif /* GOPRO_READABLE_H */
