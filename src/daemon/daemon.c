/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daemon.c - daemon chores (see daemon.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "daemon.h"
#include "nofollow.h"

/* The write end of the pipe the process that ran goprod waits on. */
static int ready_fd = -1;

/* Fork; the parent exits at once, the child returns 0 (-1 on failure). */
static int
fork_away(void)
{
	pid_t pid = fork();

	if (pid > 0)
		_exit(0);
	return pid < 0 ? -1 : 0;
}

static ssize_t
read_full(int fd, void *buf, size_t len)
{
	ssize_t n;

	while ((n = read(fd, buf, len)) < 0 && errno == EINTR)
		;
	return n;
}

/*
 * The process that ran goprod waits until the daemon is ready: its exit
 * status is the start's.  The daemon sends its pid, then a byte when it is
 * ready; the end of the pipe without that byte means it exited before
 * (its own error is in its log).  Then it is waited for until it is gone
 * (a zombie still counts as a live master for the next start), for a
 * bounded time.
 */
static void __attribute__((noreturn))
wait_ready(int fd)
{
	pid_t pid = 0;
	char c;

	if (read_full(fd, &pid, sizeof(pid)) == (ssize_t)sizeof(pid) &&
	    read_full(fd, &c, 1) == 1)
		_exit(0);
	fprintf(stderr, "goprod: the start failed after detaching; the "
	    "reason is in the log\n");
	for (int i = 0; pid > 1 && i < 500 && kill(pid, 0) == 0; i++)
		usleep(10000);
	_exit(1);
}

int
daemon_detach(void)
{
	int fd, fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0)
		return -1;
	if (pid > 0) {
		close(fds[1]);
		wait_ready(fds[0]);
	}
	close(fds[0]);
	ready_fd = fds[1];
	if (setsid() < 0)
		return -1;
	/* A second fork: never reacquire a controlling terminal. */
	if (fork_away() < 0)
		return -1;
	pid = getpid();
	if (write(ready_fd, &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
		return -1;
	if (chdir("/") < 0)
		return -1;
	fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return -1;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	return 0;
}

void
daemon_ready(void)
{
	if (ready_fd < 0)
		return;
	if (write(ready_fd, "", 1) != 1) {
		/* The waiting process is gone: nobody to tell. */
	}
	close(ready_fd);
	ready_fd = -1;
}

/* chown the directory we just made, through a descriptor of it. */
static int
give_dir(const char *dir, uid_t uid, gid_t gid)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fchown(fd, uid, gid);
	close(fd);
	return rc;
}

int
daemon_make_parent(const char *path, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	char *copy = strdup(path), *dir;
	int rc = 0;

	if (copy == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	dir = dirname(copy);
	if (mkdir(dir, 0755) == 0) {
		if (uid != (uid_t)-1 && give_dir(dir, uid, gid) < 0) {
			snprintf(err, errlen, "chown %s: %s", dir,
			    strerror(errno));
			rc = -1;
		}
	} else if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create directory %s: %s", dir,
		    strerror(errno));
		rc = -1;
	}
	free(copy);
	return rc;
}

pid_t
daemon_read_pidfile(const char *path)
{
	int fd = nofollow_open(path, O_RDONLY, 0);
	long pid = 0;
	FILE *f;

	if (fd < 0 || (f = fdopen(fd, "r")) == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (fscanf(f, "%ld", &pid) != 1 || pid <= 1)
		pid = 0;
	fclose(f);
	if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		pid = 0;
	return (pid_t)pid;
}

int
daemon_write_pidfile(const char *path, char *err, size_t errlen)
{
	pid_t other = daemon_read_pidfile(path);
	char line[32], tmp[PATH_MAX];
	int fd, n;

	if (other > 0 && other != getpid()) {
		snprintf(err, errlen, "%s: goprod is already running as pid %ld",
		    path, (long)other);
		return -1;
	}
	/*
	 * A new file renamed over path: the directory may be the service
	 * account's, and whatever it left at path is never opened by root.
	 */
	fd = nofollow_create_beside(path, 0644, (gid_t)-1, tmp, sizeof(tmp));
	if (fd < 0) {
		snprintf(err, errlen, "cannot write pid file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (write(fd, line, (size_t)n) != n || nofollow_install(tmp, path) < 0) {
		snprintf(err, errlen, "cannot write pid file %s: %s", path,
		    strerror(errno));
		unlink(tmp);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

long
daemon_raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ||
		    (long)rl.rlim_max > want ? (rlim_t)want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? want : (long)rl.rlim_cur;
}

int
daemon_lookup_ids(const char *user, const char *group, uid_t *uid,
    gid_t *gid, char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (geteuid() != 0)
		return 0;
	if (user != NULL && *user != '\0') {
		if ((pw = getpwnam(user)) == NULL) {
			snprintf(err, errlen, "user %s: no such user", user);
			return -1;
		}
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
	if (group != NULL && *group != '\0') {
		if ((gr = getgrnam(group)) == NULL) {
			snprintf(err, errlen, "group %s: no such group", group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

int
daemon_drop_privileges(uid_t uid, gid_t gid, const char *user, char *err,
    size_t errlen)
{
	if (geteuid() != 0 || (uid == (uid_t)-1 && gid == (gid_t)-1))
		return 0;
	if (gid != (gid_t)-1 && (setgroups(1, &gid) < 0 || setgid(gid) < 0)) {
		snprintf(err, errlen, "cannot switch to group %ld: %s",
		    (long)gid, strerror(errno));
		return -1;
	}
	if (uid != (uid_t)-1 && setuid(uid) < 0) {
		snprintf(err, errlen, "cannot switch to user %s: %s",
		    user ? user : "?", strerror(errno));
		return -1;
	}
	/*
	 * setuid made the process non-dumpable, which also gives /proc/self
	 * to root: the workers could neither load their modules through
	 * /proc/self/fd/N nor leave a core file when a stalled loop is
	 * aborted.  Nothing is lost: the process is the service user's.
	 */
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	return 0;
}

const char *
daemon_proc_stat(pid_t pid, char *buf, size_t len)
{
	char path[64], *paren;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (len == 0 || (f = fopen(path, "r")) == NULL)
		return NULL;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) S ppid ...": comm may hold spaces and parentheses. */
	if ((paren = strrchr(buf, ')')) == NULL)
		return NULL;
	return paren + 1;
}

bool
daemon_proc_state(pid_t pid, char *state, pid_t *ppid)
{
	const char *fields;
	char buf[512];
	long pp;

	if ((fields = daemon_proc_stat(pid, buf, sizeof(buf))) == NULL ||
	    sscanf(fields, " %c %ld", state, &pp) != 2)
		return false;
	*ppid = (pid_t)pp;
	return true;
}

/* The four uids of pid (real, effective, saved, fs) all equal uid. */
static bool
proc_runs_as(pid_t pid, uid_t uid)
{
	char path[64], line[256];
	unsigned long r, e, s, fs;
	bool ok = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Uid: %lu %lu %lu %lu", &r, &e, &s, &fs) == 4) {
			ok = r == uid && e == uid && s == uid && fs == uid;
			break;
		}
	fclose(f);
	return ok;
}

/* pid runs the goprod binary (also once it was replaced on disk). */
static bool
proc_is_goprod(pid_t pid)
{
	char path[64], exe[PATH_MAX], *base;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
	if ((n = readlink(path, exe, sizeof(exe) - 1)) <= 0)
		return false;
	exe[n] = '\0';
	if (n > 10 && strcmp(exe + n - 10, " (deleted)") == 0)
		exe[n - 10] = '\0';
	base = strrchr(exe, '/');
	base = base != NULL ? base + 1 : exe;
	return strcmp(base, "goprod") == 0 || strcmp(base, "lt-goprod") == 0;
}

static int
pidfd_signal(int pidfd, pid_t pid, int sig)
{
	if (pidfd < 0)
		return kill(pid, sig);
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int
daemon_signal_master(pid_t pid, uid_t uid, int sig, char *why,
    size_t whylen)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), rc = -1, e;

	if (pidfd < 0 && errno != ENOSYS) {
		snprintf(why, whylen, "pid %ld: %s", (long)pid, strerror(errno));
		return -1;
	}
	if (!proc_is_goprod(pid)) {
		snprintf(why, whylen, "pid %ld, which is not goprod", (long)pid);
		errno = EPERM;
	} else if (!proc_runs_as(pid, uid)) {
		snprintf(why, whylen, "pid %ld, which does not run as uid %lu "
		    "as goprod's master does", (long)pid, (unsigned long)uid);
		errno = EPERM;
	} else if ((rc = pidfd_signal(pidfd, pid, sig)) < 0) {
		snprintf(why, whylen, "pid %ld: %s", (long)pid, strerror(errno));
	}
	e = errno;
	if (pidfd >= 0)
		close(pidfd);
	errno = e;
	return rc;
}

void
daemon_notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}
