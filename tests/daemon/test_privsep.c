/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_privsep.c - the service account must not be able to hurt root.
 *
 * goprod starts as root and hands its runtime directory to `user`; root
 * then creates the pid file, the stats segment and the control socket in
 * it, and opens the log file in a directory that `user` can write.  Each
 * test here plays the service account (a child that switches to nobody,
 * the owner of the directory) planting links, FIFOs or hostile files
 * where root is about to work, then runs root's code and checks that a
 * root-only file elsewhere (the victim) is untouched.  Runs as root only
 * (CI does); skipped otherwise.
 *
 * The control socket race (a link put at the name between bind() and the
 * chown that follows) is made certain with -Wl,--wrap=bind: the attacker
 * moves its link in right after the real bind().
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ev.h>
#include <cmocka.h>

#include "ctl.h"
#include "daemon.h"
#include "harness.h"
#include "log.h"
#include "stats.h"
#include "stats_format.h"

#define VICTIM_TEXT "root's own file\n"
/* A test that would hang (root opening a FIFO) fails instead. */
#define TEST_ALARM 20

struct fx {
	char run[64];        /* the runtime directory, nobody's */
	char vdir[64];       /* root-only, holds the victim */
	char victim[96];
	char path[128];      /* the name under attack, in run */
	uid_t uid;           /* nobody */
	gid_t gid;           /* nogroup (nobody's group) */
};

static struct fx *the_fx;

/* ------------------------------------------------------------ fixture */

static int
setup(void **state)
{
	struct passwd *pw = getpwnam("nobody");
	struct fx *f;
	int fd;

	if (geteuid() != 0 || pw == NULL)
		return 0;	/* each test skips */
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->uid = pw->pw_uid;
	f->gid = pw->pw_gid;
	snprintf(f->run, sizeof(f->run), "/tmp/gopro-privsep-XXXXXX");
	snprintf(f->vdir, sizeof(f->vdir), "/tmp/gopro-victim-XXXXXX");
	assert_non_null(mkdtemp(f->run));
	assert_non_null(mkdtemp(f->vdir));
	assert_int_equal(chmod(f->run, 0755), 0);
	assert_int_equal(chown(f->run, f->uid, f->gid), 0);
	snprintf(f->victim, sizeof(f->victim), "%s/victim", f->vdir);
	fd = open(f->victim, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, VICTIM_TEXT, strlen(VICTIM_TEXT)),
	    (ssize_t)strlen(VICTIM_TEXT));
	close(fd);
	the_fx = f;
	*state = f;
	alarm(TEST_ALARM);
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[256];

	alarm(0);
	if (f == NULL)
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", f->run, f->vdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s, %s\n", f->run, f->vdir);
	free(f);
	the_fx = NULL;
	return 0;
}

static struct fx *
need_root(void **state)
{
	if (*state == NULL)
		skip();
	return *state;
}

/* The victim still holds its text, mode 0600, owned by root:root. */
static void
assert_victim_untouched(const struct fx *f)
{
	char buf[64] = "";
	struct stat st;
	int fd;

	assert_int_equal(stat(f->victim, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_gid, 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	fd = open(f->victim, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
	close(fd);
	assert_string_equal(buf, VICTIM_TEXT);
}

/* ------------------------------------------------------------ the attacker */

enum plant { PLANT_SYMLINK, PLANT_FIFO, PLANT_HUGE_STATS };

static void
become_nobody(const struct fx *f)
{
	if (setgroups(0, NULL) < 0 || setgid(f->gid) < 0 ||
	    setuid(f->uid) < 0)
		_exit(90);
}

/* What the service account puts at name, replacing what was there. */
static int
plant(const struct fx *f, const char *name, enum plant what)
{
	char tmp[160];
	struct stats_header h;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.planted", name);
	unlink(tmp);
	switch (what) {
	case PLANT_SYMLINK:
		if (symlink(f->victim, tmp) < 0)
			return -1;
		break;
	case PLANT_FIFO:
		if (mkfifo(tmp, 0666) < 0)
			return -1;
		break;
	case PLANT_HUGE_STATS:
		memset(&h, 0, sizeof(h));
		h.magic = STATS_MAGIC;
		h.layout_version = STATS_LAYOUT_VERSION;
		h.header_size = sizeof(h);
		h.entry_size = sizeof(struct stats_entry);
		h.nentries = 4000000;
		h.file_size = sizeof(h);
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644)) < 0 ||
		    write(fd, &h, sizeof(h)) != (ssize_t)sizeof(h))
			return -1;
		close(fd);
		break;
	}
	return rename(tmp, name);
}

/* Run plant() as nobody in a child; fails the test if it could not. */
static void
as_service_account(const struct fx *f, const char *name, enum plant what)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		become_nobody(f);
		_exit(plant(f, name, what) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ------------------------------------------------------------ 6: pid file */

static void
test_pid_file_symlink(void **state)
{
	struct fx *f = need_root(state);
	char err[512] = "";
	struct stat st;

	snprintf(f->path, sizeof(f->path), "%s/goprod.pid", f->run);
	as_service_account(f, f->path, PLANT_SYMLINK);
	assert_int_equal(daemon_write_pidfile(f->path, err, sizeof(err)), 0);
	assert_victim_untouched(f);
	/* Ours replaced the link: a regular file with our pid. */
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(daemon_read_pidfile(f->path), getpid());
}

static void
test_pid_file_fifo_does_not_hang_root(void **state)
{
	struct fx *f = need_root(state);

	snprintf(f->path, sizeof(f->path), "%s/goprod.pid", f->run);
	as_service_account(f, f->path, PLANT_FIFO);
	assert_int_equal(daemon_read_pidfile(f->path), 0);
	as_service_account(f, f->path, PLANT_SYMLINK);
	assert_int_equal(daemon_read_pidfile(f->path), 0);
}

/* The runtime directory goprod makes is given over by descriptor. */
static void
test_runtime_dir_made_for_user(void **state)
{
	struct fx *f = need_root(state);
	char path[160], err[512] = "";
	struct stat st;

	snprintf(path, sizeof(path), "%s/sub/goprod.pid", f->run);
	assert_int_equal(daemon_make_parent(path, f->uid, f->gid, err,
	    sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/sub", f->run);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, f->uid);
}

/* ------------------------------------------------------------ 7: log file */

static void
test_log_file_symlink(void **state)
{
	struct fx *f = need_root(state);

	snprintf(f->path, sizeof(f->path), "%s/goprod.log", f->run);
	as_service_account(f, f->path, PLANT_SYMLINK);
	assert_int_equal(log_open(LOG_TARGET_FILE, f->path, LOG_INFO), -1);
	assert_int_equal(errno, ELOOP);
	log_warnx("a line that must not reach the victim");
	assert_victim_untouched(f);
}

/* A hard link to root's file (possible where fs.protected_hardlinks=0). */
static void
test_log_file_hard_link(void **state)
{
	struct fx *f = need_root(state);

	snprintf(f->path, sizeof(f->path), "%s/goprod.log", f->run);
	assert_int_equal(link(f->victim, f->path), 0);
	assert_int_equal(log_open(LOG_TARGET_FILE, f->path, LOG_INFO), -1);
	assert_int_equal(errno, EMLINK);
	assert_int_equal(unlink(f->path), 0);
	assert_victim_untouched(f);
}

/* logrotate's SIGUSR1: the name was swapped for a link meanwhile. */
static void
test_log_reopen_symlink(void **state)
{
	struct fx *f = need_root(state);

	snprintf(f->path, sizeof(f->path), "%s/goprod.log", f->run);
	assert_int_equal(log_open(LOG_TARGET_FILE, f->path, LOG_INFO), 0);
	log_info("before the rotation");
	as_service_account(f, f->path, PLANT_SYMLINK);
	log_reopen();
	log_info("after the rotation");
	log_close();
	assert_victim_untouched(f);
}

/* ------------------------------------------------------------ 9, 10: stats */

static void
test_stats_file_mode_and_group(void **state)
{
	struct fx *f = need_root(state);
	struct stats_segment seg;
	char err[512];
	struct stat st;

	snprintf(f->path, sizeof(f->path), "%s/goprod.stats", f->run);
	as_service_account(f, f->path, PLANT_SYMLINK);
	assert_int_equal(stats_create(&seg, f->path, 4, f->gid, err,
	    sizeof(err)), 0);
	assert_victim_untouched(f);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_gid, f->gid);
	stats_close(&seg);
}

/* Only root and the daemon's group read the clients' addresses. */
static void
test_stats_file_unreadable_by_others(void **state)
{
	struct fx *f = need_root(state);
	struct stats_segment seg;
	struct passwd *other = getpwnam("daemon");
	char err[512];
	int status;
	pid_t pid;

	if (other == NULL || other->pw_gid == f->gid)
		skip();
	snprintf(f->path, sizeof(f->path), "%s/goprod.stats", f->run);
	assert_int_equal(stats_create(&seg, f->path, 4, f->gid, err,
	    sizeof(err)), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stats_segment r;

		if (setgroups(0, NULL) < 0 || setgid(other->pw_gid) < 0 ||
		    setuid(other->pw_uid) < 0)
			_exit(90);
		_exit(stats_open(&r, f->path, err, sizeof(err)) == -1 &&
		    strstr(err, "Permission denied") != NULL ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	stats_close(&seg);
}

/* Root's goproctl reads whatever the service account left: no hang. */
static void
test_stats_reader_hostile_files(void **state)
{
	static const enum plant plants[] = { PLANT_FIFO, PLANT_SYMLINK,
		PLANT_HUGE_STATS };
	struct fx *f = need_root(state);
	struct stats_segment r;
	char err[512];

	snprintf(f->path, sizeof(f->path), "%s/goprod.stats", f->run);
	for (size_t i = 0; i < sizeof(plants) / sizeof(plants[0]); i++) {
		as_service_account(f, f->path, plants[i]);
		assert_int_equal(stats_open(&r, f->path, err, sizeof(err)),
		    -1);
		assert_non_null(strstr(err, f->path));
	}
	assert_victim_untouched(f);
}

/* ------------------------------------------------------------ 11: socket */

/* Set while the next bind() is to be followed by the attacker's move. */
static bool bind_attack;

int __real_bind(int fd, const struct sockaddr *sa, socklen_t len);
int __wrap_bind(int fd, const struct sockaddr *sa, socklen_t len);

int
__wrap_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int rc = __real_bind(fd, sa, len);

	if (rc == 0 && bind_attack && the_fx != NULL) {
		bind_attack = false;
		as_service_account(the_fx, the_fx->path, PLANT_SYMLINK);
	}
	return rc;
}

static int
no_command(const char *command, char *reply, size_t len, void *arg)
{
	(void)command, (void)arg;
	snprintf(reply, len, "no\n");
	return -1;
}

/* Root's start of the control socket in the runtime directory. */
static struct ctl_server *
socket_start(struct fx *f, struct ev_loop *loop, char *err, size_t errlen)
{
	assert_non_null(loop);
	snprintf(f->path, sizeof(f->path), "%s/goprod.sock", f->run);
	return ctl_server_start(loop, f->path, f->uid, f->gid, no_command,
	    NULL, err, errlen);
}

static void
test_control_socket_swapped_after_bind(void **state)
{
	struct fx *f = need_root(state);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ctl_server *s;
	char err[512] = "";

	bind_attack = true;
	s = socket_start(f, loop, err, sizeof(err));
	assert_false(bind_attack);
	assert_victim_untouched(f);
	assert_null(s);
	assert_non_null(strstr(err, f->path));
	ev_loop_destroy(loop);
}

/* Without an attacker, the socket is 0660 and the service account's. */
static void
test_control_socket_given_to_user(void **state)
{
	struct fx *f = need_root(state);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ctl_server *s;
	char err[512] = "";
	struct stat st;

	s = socket_start(f, loop, err, sizeof(err));
	if (s == NULL)
		fail_msg("%s", err);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);
	assert_int_equal(st.st_uid, f->uid);
	assert_int_equal(st.st_gid, f->gid);
	ctl_server_stop(s);
	ev_loop_destroy(loop);
}

/* ------------------------------------------------------------ 8: goproctl */

/* A config for a daemon that runs as nobody with its files in run. */
static void
write_conf(struct fx *f, char *conf, size_t len)
{
	FILE *c;

	snprintf(conf, len, "%s/gopro.conf", f->run);
	c = fopen(conf, "w");
	assert_non_null(c);
	fprintf(c, "listen = {\"127.0.0.1:%d\"}\nworkers = 1\n"
	    "user = \"nobody\"\ngroup = \"%s\"\n"
	    "pid_file = \"%s/goprod.pid\"\nstats_file = \"%s/goprod.stats\"\n"
	    "control_socket = \"%s/goprod.sock\"\nlog = \"stderr\"\n",
	    harness_free_port(), getgrgid(f->gid)->gr_name, f->run, f->run,
	    f->run);
	assert_int_equal(fclose(c), 0);
}

enum sleeper { ROOT_SLEEP, NOBODY_SLEEP, ROOT_GOPROD };

/*
 * A sleep(1) running as root, or as nobody, or as root from a copy named
 * goprod (another goprod of root's, as far as /proc/PID/exe tells).
 */
static pid_t
start_sleeper(const struct fx *f, enum sleeper kind)
{
	char copy[160];
	pid_t pid;

	snprintf(copy, sizeof(copy), "%s/goprod", f->vdir);
	if (kind == ROOT_GOPROD) {
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "cp /bin/sleep '%s'", copy);
		assert_int_equal(system(cmd), 0);
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (kind == NOBODY_SLEEP)
			become_nobody(f);
		execl(kind == ROOT_GOPROD ? copy : "/bin/sleep", "sleep", "30",
		    (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* The service account writes pid into the pid file. */
static void
plant_pid(const struct fx *f, pid_t pid)
{
	pid_t child = fork();
	int status;

	assert_true(child >= 0);
	if (child == 0) {
		char path[160], line[32];
		FILE *p;

		become_nobody(f);
		snprintf(path, sizeof(path), "%s/goprod.pid", f->run);
		snprintf(line, sizeof(line), "%ld\n", (long)pid);
		unlink(path);
		p = fopen(path, "w");
		_exit(p != NULL && fputs(line, p) >= 0 && fclose(p) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Root's goproctl -c conf command; its exit status. */
static int
goproctl(const char *conf, const char *command)
{
	char prog[256], c[160], cmd[32], opt[] = "-c";
	char *args[] = { prog, opt, c, cmd, NULL };
	int fd, status;
	pid_t pid;

	snprintf(prog, sizeof(prog), "%s", harness_program("GOPROCTL"));
	snprintf(c, sizeof(c), "%s", conf);
	snprintf(cmd, sizeof(cmd), "%s", command);
	pid = harness_spawn(args, &fd);

	free(harness_collect(pid, fd, &status));
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool
still_running(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == 0;
}

static void
stop_sleeper(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/*
 * A pid file naming a root process, a process of nobody's that is not
 * goprod, and a root process of a binary named goprod.
 */
static void
test_goproctl_signals_no_stranger(void **state)
{
	struct fx *f = need_root(state);
	char conf[160];

	write_conf(f, conf, sizeof(conf));
	for (int kind = ROOT_SLEEP; kind <= ROOT_GOPROD; kind++) {
		pid_t sleeper = start_sleeper(f, kind);

		plant_pid(f, sleeper);
		assert_int_equal(goproctl(conf, "reload"), 1);
		assert_int_equal(goproctl(conf, "stop"), 1);
		assert_true(still_running(sleeper));
		stop_sleeper(sleeper);
	}
}

/* The real master, its socket gone: the fallback still signals it. */
/* Whether the file at path holds text (read whole, up to 64 KiB). */
static bool
file_has(const char *path, const char *text)
{
	char buf[65536];
	FILE *fp = fopen(path, "r");
	size_t n;

	if (fp == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

static void
test_goproctl_signals_the_master(void **state)
{
	struct fx *f = need_root(state);
	char conf[160], sock[160], log[160];
	double deadline;
	pid_t pid;

	write_conf(f, conf, sizeof(conf));
	snprintf(sock, sizeof(sock), "%s/goprod.sock", f->run);
	snprintf(log, sizeof(log), "%s/goprod.log", f->run);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(fd, STDERR_FILENO);
		execl(harness_program("GOPROD"), "goprod", "-f", "-c", conf,
		    (char *)NULL);
		_exit(127);
	}
	snprintf(f->path, sizeof(f->path), "%s/goprod.pid", f->run);
	deadline = harness_now() + 10;
	while (daemon_read_pidfile(f->path) != pid &&
	    harness_now() < deadline && still_running(pid))
		harness_sleep(0.02);
	assert_int_equal(daemon_read_pidfile(f->path), pid);
	assert_int_equal(unlink(sock), 0);
	/*
	 * The fallback signals the master but cannot confirm the reload, so
	 * it exits 1 (a unit's ExecReload must not report it done); the
	 * master's log shows that the signal arrived.
	 */
	assert_int_equal(goproctl(conf, "reload"), 1);
	deadline = harness_now() + 10;
	while (!file_has(log, "SIGHUP: reloading") && harness_now() < deadline)
		harness_sleep(0.02);
	assert_true(file_has(log, "SIGHUP: reloading"));
	/* stop waits until the master is gone, which only we can reap. */
	assert_int_equal(goproctl(conf, "stop"), 0);
	deadline = harness_now() + 10;
	while (still_running(pid) && harness_now() < deadline)
		harness_sleep(0.02);
	if (still_running(pid))
		stop_sleeper(pid);
	assert_false(still_running(pid));
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_pid_file_symlink),
		T(test_pid_file_fifo_does_not_hang_root),
		T(test_runtime_dir_made_for_user),
		T(test_log_file_symlink),
		T(test_log_file_hard_link),
		T(test_log_reopen_symlink),
		T(test_stats_file_mode_and_group),
		T(test_stats_file_unreadable_by_others),
		T(test_stats_reader_hostile_files),
		T(test_control_socket_swapped_after_bind),
		T(test_control_socket_given_to_user),
		T(test_goproctl_signals_no_stranger),
		T(test_goproctl_signals_the_master),
	};
#undef T

	log_init("test_privsep");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
