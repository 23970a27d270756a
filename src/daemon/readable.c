/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * readable.c - can the daemon's unprivileged identity read again what a
 * reload reads (see readable.h)?
 *
 * The question is answered by asking the kernel: a child process drops
 * root exactly as the master will (daemon_drop_privileges) and opens each
 * file.  Mode bits, ACLs, the search bits of every directory on the way
 * and a file system mounted without access for others all count as they
 * will count on the first reload, which access(2) as root or a look at
 * st_mode would get wrong.  The child reports the first failure through
 * a pipe and exits; nothing else runs in it.
 *
 * The TLS files are not only checked but loaded at start, and root must
 * not load what the service account could not (the workers run as that
 * account: whatever root loads, it can read in their memory), nor follow
 * a link the account can plant: conf.c loads them between
 * readable_become and readable_unbecome, with the account's effective
 * identity.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "readable.h"

#define REREAD_MAX (4 + CONF_MAX_MODULES)
#define EXPECTED "expected it readable by that user or group, e.g. chgrp " \
	"and chmod 0640"

struct reread {
	char what[96];		/* the option, as in messages */
	const char *path;
};

static void
add(struct reread *out, size_t *n, const char *what, const char *path)
{
	if (path == NULL || *n >= REREAD_MAX)
		return;
	snprintf(out[*n].what, sizeof(out[*n].what), "%s", what);
	out[(*n)++].path = path;
}

/* Everything a reload opens by name, as the user goprod drops to. */
static size_t
rereads_of(const struct gopro_conf *c, struct reread *out)
{
	char what[96];
	size_t n = 0;

	add(out, &n, "the configuration file", c->path);
	add(out, &n, "auth.users_file", c->auth.users_file);
	for (size_t i = 0; i < c->nmodules; i++) {
		snprintf(what, sizeof(what), "module %.64s path",
		    c->modules[i].name);
		add(out, &n, what, c->modules[i].path);
	}
	return n;
}

/* What the child tells: the index of the file that failed, and errno. */
struct verdict {
	int index;		/* -1: the privilege drop itself failed */
	int error;
};

static void __attribute__((noreturn))
child_try(int fd, const struct reread *r, size_t n, uid_t uid, gid_t gid,
    const char *user)
{
	struct verdict v = { -1, 0 };
	char err[256];
	int f;

	if (daemon_drop_privileges(uid, gid, user, err, sizeof(err)) < 0) {
		v.error = errno;
		goto tell;
	}
	for (size_t i = 0; i < n; i++) {
		if ((f = open(r[i].path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
			v = (struct verdict){ (int)i, errno };
			goto tell;
		}
		close(f);
	}
	_exit(0);
tell:
	if (write(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		_exit(2);
	_exit(1);
}

/* The child's verdict: 0 all readable, 1 with v filled, -1 on failure. */
static int
ask_child(const struct reread *r, size_t n, uid_t uid, gid_t gid,
    const char *user, struct verdict *v)
{
	int fds[2], status;
	ssize_t got;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		child_try(fds[1], r, n, uid, gid, user);
	}
	close(fds[1]);
	while ((got = read(fds[0], v, sizeof(*v))) < 0 && errno == EINTR)
		;
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (got == (ssize_t)sizeof(*v))
		return 1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static const char *
who(const struct gopro_conf *conf)
{
	return conf->user != NULL && *conf->user != '\0' ? conf->user :
	    "root";
}

int
readable_check(const struct gopro_conf *conf, uid_t uid, gid_t gid,
    char *err, size_t errlen)
{
	struct reread r[REREAD_MAX];
	struct verdict v;
	size_t n;
	int rc;

	if (geteuid() != 0 || (uid == (uid_t)-1 && gid == (gid_t)-1))
		return 0;
	n = rereads_of(conf, r);
	if ((rc = ask_child(r, n, uid, gid, conf->user, &v)) == 0)
		return 0;
	if (rc < 0)
		snprintf(err, errlen, "cannot check what user %s can read: %s",
		    who(conf), strerror(errno));
	else if (v.index < 0)
		snprintf(err, errlen, "cannot switch to user %s (uid %ld, gid "
		    "%ld) to check what it can read: %s", conf->user ?
		    conf->user : "?", (long)uid, (long)gid, strerror(v.error));
	else
		snprintf(err, errlen, "%s %s: not readable by user %s (uid %ld, "
		    "gid %ld), as whom every reload reads it: %s (" EXPECTED
		    ")", r[v.index].what, r[v.index].path, conf->user ?
		    conf->user : "?", (long)uid, (long)gid,
		    strerror(v.error));
	return -1;
}

/* ------------------------------------------------------------ in place */

static void
name_identity(struct readable_as *as, const char *user)
{
	struct passwd *pw = user == NULL ? getpwuid(as->uid) : NULL;

	if (user == NULL && pw != NULL)
		user = pw->pw_name;
	snprintf(as->who, sizeof(as->who), "user %.64s (uid %ld, gid %ld)",
	    user != NULL ? user : "?", (long)as->uid, (long)as->gid);
}

/* Root's groups, to be given back by readable_unbecome. */
static int
save_groups(struct readable_as *as)
{
	int n = getgroups(0, NULL);

	if (n < 0 || (as->groups = calloc((size_t)n + 1,
	    sizeof(gid_t))) == NULL)
		return -1;
	as->ngroups = getgroups(n, as->groups);
	return as->ngroups < 0 ? -1 : 0;
}

int
readable_become(const struct gopro_conf *conf, struct readable_as *as,
    char *err, size_t errlen)
{
	memset(as, 0, sizeof(*as));
	as->uid = geteuid();
	as->gid = getegid();
	if (as->uid != 0 || conf->user == NULL || *conf->user == '\0') {
		name_identity(as, NULL);
		return 0;
	}
	if (daemon_lookup_ids(conf->user, conf->group, &as->uid, &as->gid,
	    err, errlen) < 0)
		return -1;
	name_identity(as, conf->user);
	as->egid = getegid();
	/* As daemon_drop_privileges will: the group alone, no other. */
	if (save_groups(as) < 0 || setgroups(1, &as->gid) < 0 ||
	    setegid(as->gid) < 0 || seteuid(as->uid) < 0) {
		snprintf(err, errlen, "cannot read files as %s: %s", as->who,
		    strerror(errno));
		as->switched = true;
		readable_unbecome(as);
		return -1;
	}
	as->switched = true;
	return 0;
}

void
readable_unbecome(struct readable_as *as)
{
	if (as->switched && (seteuid(0) < 0 || setegid(as->egid) < 0 ||
	    setgroups((size_t)as->ngroups, as->groups) < 0))
		fatal("cannot become root again after reading files as %s",
		    as->who);
	as->switched = false;
	free(as->groups);
	as->groups = NULL;
}

int
readable_try(const struct readable_as *as, const char *path, char *why,
    size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	snprintf(why, whylen, "not readable by %s, as whom every reload "
	    "reads it: %s (" EXPECTED ")", as->who, strerror(errno));
	return -1;
}
