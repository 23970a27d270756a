/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * goproctl.c - the operator's tool: read the stats segment, drive the master
 * over its control socket (signals as the fallback), check a configuration,
 * talk GoPro to a server (ping, send) and make users-file lines (passwd).
 *
 * Each subcommand is one cmd_* function in the table below.  The
 * configuration (-c) is only read by the subcommands that need a path from
 * it.  Exit status: 0 ok, 1 failure, 2 usage.
 */
#include "config.h"

#include <crypt.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "auth.h"
#include "gopro/client.h"
#include "conf.h"
#include "ctl.h"
#include "daemon.h"
#include "gopro/gopro.h"
#ifdef HAVE_TLS
#include "gopro/tls_client.h"
#endif
#include "stats.h"
#include "stats_format.h"

#define DEFAULT_CONF SYSCONFDIR "/gopro.conf"
#define CTL_TIMEOUT 30.0
#define STOP_TIMEOUT 60.0
#define PASSWORD_MAX 511 /* CRYPT_MAX_PASSPHRASE_SIZE - 1 */

struct ctx {
	const char *conf_path;
	struct gopro_conf *conf;
	const struct command *cmd;      /* the subcommand being run */
	const char *socket_opt;         /* --socket */
	const char *stats_opt;          /* --stats */
	/* Where the daemon is, once located (see locate). */
	bool located, salvaged;
	const char *socket, *stats, *pid_file;
	struct conf_where where;        /* read from a file that did not load */
};

/* The long options of every command that finds the daemon. */
enum { OPT_SOCKET = 0x100, OPT_STATS };

/*
 * The subcommands.  args is the part of the synopsis after the name, as in
 * goproctl(8); conf says whether the subcommand reads the configuration
 * (and so takes -c), daemon whether it finds the running daemon (and so
 * takes --socket and --stats).  The usage text is built from this table.
 */
struct command {
	const char *name;
	int (*fn)(struct ctx *, int, char **);
	const char *args;
	bool conf;
	bool daemon;
};

static const struct command commands[];
static const size_t ncommands;

static void
print_command_usage(FILE *f, const struct command *cmd, const char *lead)
{
	fprintf(f, "%sgoproctl %s%s%s%s%s\n", lead, cmd->conf ? "[-c file] " : "",
	    cmd->daemon ? "[--socket path] [--stats path] " : "", cmd->name,
	    *cmd->args ? " " : "", cmd->args);
}

static void
print_usage(FILE *f)
{
	for (size_t i = 0; i < ncommands; i++)
		print_command_usage(f, &commands[i], i ? "       " : "usage: ");
	fputs("       goproctl -h\n"
	    "       goproctl -V\n", f);
}

/*
 * A usage error: one line that says what was wrong and where to look, as
 * getopt-based tools do; exit 2.
 */
static void __attribute__((noreturn, format(printf, 2, 3)))
usage_error(const struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "goproctl: ");
	if (c->cmd != NULL)
		fprintf(stderr, "%s: ", c->cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try 'goproctl %s%s-h')\n",
	    c->cmd != NULL ? c->cmd->name : "", c->cmd != NULL ? " " : "");
	exit(2);
}

/* The option argv[optind - 1] that getopt just refused, for a message. */
static void __attribute__((noreturn))
bad_option(const struct ctx *c, int ch, char **argv)
{
	if (ch == ':')
		usage_error(c, "option %s needs a value", argv[optind - 1]);
	if (optopt != 0)
		usage_error(c, "unknown option -%c", optopt);
	usage_error(c, "unknown option %s", argv[optind - 1]);
}

/* -c, --socket and --stats, before or after the subcommand's name. */
static void
common_option(struct ctx *c, int ch, const char *arg)
{
	if (ch == 'c')
		c->conf_path = arg;
	else if (*arg != '/')
		usage_error(c, "--%s %s: expected an absolute path",
		    ch == OPT_SOCKET ? "socket" : "stats", arg);
	else if (ch == OPT_SOCKET)
		c->socket_opt = arg;
	else
		c->stats_opt = arg;
}

/*
 * getopt_long for a subcommand: shortopts and longopts are its own, and
 * every subcommand also takes -h/--help (its usage, exit 0) and, when it
 * reads the configuration, -c/--config, --socket and --stats after its
 * name.  Returns the next
 * option of its own, or -1 at the first operand.
 */
static int
sub_getopt(struct ctx *c, int argc, char **argv, const char *shortopts,
    const struct option *longopts)
{
	struct option all[16];
	char shorts[64];
	size_t n = 0;
	int ch;

	snprintf(shorts, sizeof(shorts), "+:h%s%s", c->cmd->conf ? "c:" : "",
	    shortopts);
	for (; longopts != NULL && longopts[n].name != NULL; n++)
		all[n] = longopts[n];
	all[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	if (c->cmd->conf)
		all[n++] = (struct option){ "config", required_argument, NULL,
		    'c' };
	if (c->cmd->daemon) {
		all[n++] = (struct option){ "socket", required_argument, NULL,
		    OPT_SOCKET };
		all[n++] = (struct option){ "stats", required_argument, NULL,
		    OPT_STATS };
	}
	all[n] = (struct option){ NULL, 0, NULL, 0 };
	opterr = 0;
	ch = getopt_long(argc, argv, shorts, all, NULL);
	if (ch == 'h') {
		print_command_usage(stdout, c->cmd, "usage: ");
		exit(0);
	}
	if (ch == 'c' || ch == OPT_SOCKET || ch == OPT_STATS) {
		common_option(c, ch, optarg);
		return sub_getopt(c, argc, argv, shortopts, longopts);
	}
	if (ch == '?' || ch == ':')
		bad_option(c, ch, argv);
	return ch;
}

/* A subcommand that takes no operands: at most the common options. */
static void
no_operands(struct ctx *c, int argc, char **argv)
{
	if (sub_getopt(c, argc, argv, "", NULL) != -1 || optind != argc)
		usage_error(c, "unexpected argument %s", argv[optind]);
}

/*
 * The configuration, loaded on first use; exits when it is broken, saying
 * why (note, when given, says what was therefore not done).
 */
static const struct gopro_conf *
need_conf_note(struct ctx *c, const char *note)
{
	char errs[CONF_ERR_MAX];

	if (c->conf != NULL)
		return c->conf;
	if (conf_load(c->conf_path, &c->conf, errs, sizeof(errs)) < 0) {
		warnx("cannot use the configuration %s%s%s:", c->conf_path,
		    note ? "; " : "", note ? note : "");
		fputs(errs, stderr);
		if (errs[0] != '\0' && errs[strlen(errs) - 1] != '\n')
			fputc('\n', stderr);
		exit(1);
	}
	return c->conf;
}

/* An environment variable, NULL when unset or empty. */
static const char *
env_path(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

/*
 * The configuration, or when the file does not load, what it still says
 * about where the daemon is (conf_where_salvage): a typo left in the file
 * must not make a running daemon unreachable, since the daemon runs the
 * last version of the file that loaded.  The parse errors become a
 * warning, printed once.  Returns the configuration or NULL.
 */
static const struct gopro_conf *
conf_or_salvage(struct ctx *c)
{
	char errs[CONF_ERR_MAX];

	if (c->conf != NULL || c->salvaged)
		return c->conf;
	if (conf_load(c->conf_path, &c->conf, errs, sizeof(errs)) == 0)
		return c->conf;
	c->salvaged = true;
	conf_where_salvage(c->conf_path, &c->where);
	if (c->where.control_socket == NULL || c->where.stats_file == NULL ||
	    c->where.pid_file == NULL || c->where.listen == NULL)
		errx(1, "out of memory");
	warnx("warning: the configuration %s does not load; using the paths "
	    "it names, or the defaults:", c->conf_path);
	fputs(errs, stderr);
	if (errs[0] != '\0' && errs[strlen(errs) - 1] != '\n')
		fputc('\n', stderr);
	return NULL;
}

/*
 * Where the running daemon is: --socket and --stats, else GOPROCTL_SOCKET
 * and GOPROCTL_STATS, else the configuration (conf_or_salvage).  With both
 * paths given, the file is not read at all, and the pid file is unknown.
 */
static void
locate(struct ctx *c)
{
	const struct gopro_conf *conf;

	if (c->located)
		return;
	c->located = true;
	c->socket = c->socket_opt ? c->socket_opt : env_path("GOPROCTL_SOCKET");
	c->stats = c->stats_opt ? c->stats_opt : env_path("GOPROCTL_STATS");
	if (c->socket != NULL && c->stats != NULL)
		return;
	if ((conf = conf_or_salvage(c)) != NULL) {
		c->socket = c->socket ? c->socket : conf->control_socket;
		c->stats = c->stats ? c->stats : conf->stats_file;
		c->pid_file = conf->pid_file;
		return;
	}
	c->socket = c->socket ? c->socket : c->where.control_socket;
	c->stats = c->stats ? c->stats : c->where.stats_file;
	c->pid_file = c->where.pid_file;
	fprintf(stderr, "goproctl: warning: control socket %s, stats file %s\n",
	    c->socket, c->stats);
}

/* A duration with the units of the configuration file: 1s, 250ms, 2m. */
static double
parse_seconds(const struct ctx *c, const char *s, const char *what,
    double min)
{
	double v;

	if (conf_parse_time(s, &v) < 0 || v < min)
		usage_error(c, "%s %s: expected a duration of at least %gs "
		    "(such as 1s, 250ms or 2m)", what, s, min);
	return v;
}

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sleep_seconds(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - floor(s)) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Reset getopt for a subcommand's own argv (glibc: optind 0 re-inits). */
static void
getopt_reset(void)
{
	optind = 0;
}

/* ------------------------------------------------------------ stats */

/*
 * For a permission error on path: the mode and owners of the path, or of
 * its directory when the path itself cannot be looked at, and who asked,
 * so that the operator sees which group to join or which mode to change.
 * An empty string for any other error.
 */
static const char *
access_hint(const char *path, int e)
{
	static char hint[PATH_MAX + 128];
	char dir[PATH_MAX];
	const char *what = path;
	struct passwd *pw;
	struct group *gr;
	struct stat st;

	if (e != EACCES && e != EPERM)
		return "";
	if (stat(path, &st) < 0) {
		snprintf(dir, sizeof(dir), "%s", path);
		what = dirname(dir);
		if (stat(what, &st) < 0)
			return "";
	}
	pw = getpwuid(st.st_uid);
	gr = getgrgid(st.st_gid);
	snprintf(hint, sizeof(hint), " (%s is mode %04o, %s:%s; goproctl runs "
	    "as uid %ld gid %ld)", what, (unsigned)(st.st_mode & 07777),
	    pw ? pw->pw_name : "?", gr ? gr->gr_name : "?", (long)geteuid(),
	    (long)getegid());
	return hint;
}

static void
take_snap(const char *path, struct stats_snap *snap)
{
	struct stats_segment seg;
	char e[512];

	/* Opened afresh each time: a restarted master replaces the file. */
	if (stats_open(&seg, path, e, sizeof(e)) < 0) {
		if (errno == EACCES || errno == EPERM)
			errx(1, "%s%s", e, access_hint(path, errno));
		errx(1, "%s (is goprod running?)", e);
	}
	if (stats_snap_take(&seg, snap) < 0)
		err(1, "cannot read a consistent snapshot of %s", path);
	stats_close(&seg);
}

static void
print_snap(const struct stats_snap *s, int format)
{
	int rc;

	if (format == 'j')
		rc = stats_format_json(stdout, s);
	else if (format == 'p')
		rc = stats_format_prometheus(stdout, s);
	else
		rc = stats_format_text(stdout, s);
	if (rc < 0 || fflush(stdout) == EOF)
		err(1, "cannot write to standard output");
}

/* The header again after this many lines, as vmstat does. */
#define RATE_HEADER_EVERY 20

/* The full table once, then one line of rates per interval. */
static void __attribute__((noreturn))
watch_rates(const char *path, double interval)
{
	struct stats_snap prev, cur;

	take_snap(path, &prev);
	print_snap(&prev, 't');
	fputc('\n', stdout);
	for (unsigned line = 0;; line++) {
		sleep_seconds(interval);
		take_snap(path, &cur);
		if ((line % RATE_HEADER_EVERY == 0 &&
		    stats_format_rate_header(stdout) < 0) ||
		    stats_format_rate_line(stdout, &prev, &cur) < 0 ||
		    fflush(stdout) == EOF)
			err(1, "cannot write to standard output");
		stats_snap_free(&prev);
		prev = cur;
	}
}

static int
cmd_stats(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	struct stats_snap snap;
	double interval = 0;
	int ch, format = 't';

	while ((ch = sub_getopt(c, argc, argv, "w:", longopts)) != -1) {
		if (ch == 'w')
			interval = parse_seconds(c, optarg, "-w", 0.1);
		else if (format == 't')
			format = ch;
		else
			usage_error(c, "--json and --prometheus exclude each "
			    "other");
	}
	if (optind != argc)
		usage_error(c, "unexpected argument %s", argv[optind]);
	if (interval > 0 && format != 't')
		usage_error(c, "-w prints text only");
	locate(c);
	if (interval > 0)
		watch_rates(c->stats, interval);
	take_snap(c->stats, &snap);
	print_snap(&snap, format);
	stats_snap_free(&snap);
	return 0;
}

/* ------------------------------------------------------------ status */

/* A zombie has exited; only its parent has not collected it yet. */
static bool
pid_zombie(pid_t pid)
{
	pid_t ppid;
	char state;

	return daemon_proc_state(pid, &state, &ppid) && state == 'Z';
}

static bool
pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM) &&
	    !pid_zombie(pid);
}

/* Exit statuses of status, as LSB init scripts have them. */
#define STATUS_RUNNING 0
#define STATUS_DEGRADED 1
#define STATUS_NOT_RUNNING 3

static int
status_verdict(const struct stats_snap *s, pid_t file_pid)
{
	unsigned running = stats_running_workers(s);

	if (file_pid != s->hdr.master_pid) {
		warnx("the pid file names pid %ld, the stats file pid %ld",
		    (long)file_pid, (long)s->hdr.master_pid);
		return STATUS_DEGRADED;
	}
	if (s->hdr.info.stopping) {
		printf("stopping: draining, %u workers left\n",
		    stats_live_workers(s));
		return STATUS_DEGRADED;
	}
	if (running != s->hdr.workers) {
		printf("degraded: %u of %u workers running\n", running,
		    s->hdr.workers);
		return STATUS_DEGRADED;
	}
	printf("healthy: all %u workers running\n", running);
	return STATUS_RUNNING;
}

/* No stats file, or the master in it is gone: LSB's "not running". */
static bool
status_not_running(const char *path, struct stats_snap *snap)
{
	struct stats_segment seg;
	char e[512];

	if (stats_open(&seg, path, e, sizeof(e)) < 0) {
		if (errno != ENOENT)
			errx(STATUS_DEGRADED, "%s%s", e, access_hint(path, errno));
		printf("goprod is not running (no %s)\n", path);
		return true;
	}
	if (stats_snap_take(&seg, snap) < 0)
		err(STATUS_DEGRADED, "cannot read a consistent snapshot of %s",
		    path);
	stats_close(&seg);
	if (pid_alive(snap->hdr.master_pid))
		return false;
	printf("goprod is not running: the master (pid %ld) of %s is gone\n",
	    (long)snap->hdr.master_pid, path);
	stats_snap_free(snap);
	return true;
}

static int
cmd_status(struct ctx *c, int argc, char **argv)
{
	struct stats_snap snap;
	int rc;

	no_operands(c, argc, argv);
	locate(c);
	if (status_not_running(c->stats, &snap))
		return STATUS_NOT_RUNNING;
	if (stats_format_status(stdout, &snap) < 0)
		err(1, "cannot write to standard output");
	/* Without a pid file (--socket and --stats), the segment alone. */
	rc = status_verdict(&snap, c->pid_file != NULL ?
	    daemon_read_pidfile(c->pid_file) : snap.hdr.master_pid);
	stats_snap_free(&snap);
	return rc;
}

/* ------------------------------------------------------------ reload, stop */

/* Print the detail lines after the status line to f. */
static void
print_detail(FILE *f, const char *reply)
{
	const char *nl = strchr(reply, '\n');

	if (nl != NULL && nl[1] != '\0')
		fputs(nl + 1, f);
}

/*
 * The uid goprod's master runs as: `user` when we are root (the master
 * drops to it), else our own (a signal could reach no other process).
 */
static uid_t
master_uid(const struct gopro_conf *conf)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return geteuid();
	if (conf->user == NULL || *conf->user == '\0')
		return 0;
	if ((pw = getpwnam(conf->user)) == NULL)
		errx(1, "user %s: no such user, so no master runs as it",
		    conf->user);
	return pw->pw_uid;
}

/* The control socket is not there or nobody listens: use a signal. */
static bool
unreachable(int e)
{
	return e == ENOENT || e == ECONNREFUSED || e == ENOTSOCK ||
	    e == EACCES;
}

static pid_t
signal_master(const struct ctx *c, int sig, int ctl_errno)
{
	pid_t pid = c->pid_file ? daemon_read_pidfile(c->pid_file) : 0;
	char why[128];

	if (pid <= 0)
		errx(1, "goprod is not running: control socket %s: %s%s, and "
		    "no live pid in %s", c->socket, strerror(ctl_errno),
		    access_hint(c->socket, ctl_errno),
		    c->pid_file ? c->pid_file : "a pid file (none known with "
		    "--socket and --stats)");
	/* Root must know whom the master runs as to prove the pid is it. */
	if (c->conf == NULL && geteuid() == 0)
		errx(1, "control socket %s: %s; without a configuration that "
		    "loads, the user of the master is unknown: pid %ld not "
		    "signalled", c->socket, strerror(ctl_errno), (long)pid);
	/* The pid file is in the service account's directory: prove it. */
	if (daemon_signal_master(pid, master_uid(c->conf), sig, why,
	    sizeof(why)) < 0)
		errx(1, "control socket %s: %s%s; the pid file %s names %s: "
		    "not signalled", c->socket, strerror(ctl_errno),
		    access_hint(c->socket, ctl_errno), c->pid_file, why);
	warnx("control socket %s: %s%s; sent SIG%s to the master (pid %ld) "
	    "instead", c->socket, strerror(ctl_errno),
	    access_hint(c->socket, ctl_errno), sigabbrev_np(sig), (long)pid);
	return pid;
}

/*
 * How long `goproctl reload` keeps asking while the master is busy with
 * the previous reload's handover (which ends within HANDOVER_TIMEOUT).
 */
#define RELOAD_BUSY_WAIT 10.0
#define RELOAD_BUSY_STEP 0.02

static bool
reply_busy(const char *reply)
{
	const char *nl = strchr(reply, '\n');

	return nl != NULL && strncmp(nl + 1, CTL_BUSY_PREFIX,
	    strlen(CTL_BUSY_PREFIX)) == 0;
}

/* ctl_call command, asking again while the master answers busy. */
static int
busy_call(const char *path, const char *command, char *reply, size_t len)
{
	double deadline = now_mono() + RELOAD_BUSY_WAIT;
	struct timespec step = { 0, (long)(RELOAD_BUSY_STEP * 1e9) };
	int rc;

	while ((rc = ctl_call(path, command, reply, len, CTL_TIMEOUT)) == 1 &&
	    reply_busy(reply) && now_mono() < deadline)
		nanosleep(&step, NULL);
	return rc;
}

static int
cmd_reload(struct ctx *c, int argc, char **argv)
{
	char reply[CTL_REPLY_MAX];
	int rc, e;

	no_operands(c, argc, argv);
	/* The master would refuse it for the same errors: say so here. */
	need_conf_note(c, "reload not sent, goprod keeps its running "
	    "configuration");
	locate(c);
	rc = busy_call(c->socket, "reload", reply, sizeof(reply));
	e = errno;
	if (rc == 0) {
		printf("reloaded: ");
		print_detail(stdout, reply);
		return 0;
	}
	if (rc == 1) {
		warnx("reload refused, the running configuration is kept:");
		print_detail(stderr, reply);
		return 1;
	}
	if (!unreachable(e)) {
		errno = e;
		err(1, "reload: control socket %s", c->socket);
	}
	/*
	 * Asked, but not confirmed: exit 1, so that a caller such as the
	 * unit's ExecReload does not report a reload it cannot vouch for.
	 */
	signal_master(c, SIGHUP, e);
	warnx("the result of the reload is only in goprod's log");
	return 1;
}

/*
 * The master checks the installed binary, executes it in its own process
 * and answers once the new image serves, or why it did not.  No signal
 * fallback: the verdict would be lost.
 */
static int
cmd_upgrade(struct ctx *c, int argc, char **argv)
{
	char reply[CTL_REPLY_MAX];
	int rc;

	no_operands(c, argc, argv);
	/* The new binary reads the file at its start: it must load. */
	need_conf_note(c, "upgrade not asked for");
	locate(c);
	rc = busy_call(c->socket, "upgrade", reply, sizeof(reply));
	if (rc == 0) {
		print_detail(stdout, reply);
		return 0;
	}
	if (rc == 1) {
		warnx("upgrade failed, goprod keeps serving:");
		print_detail(stderr, reply);
		return 1;
	}
	err(1, "upgrade: control socket %s", c->socket);
}

static int
wait_gone(pid_t pid, double timeout)
{
	double deadline = now_mono() + timeout;

	while (pid_alive(pid)) {
		if (now_mono() >= deadline) {
			warnx("goprod (pid %ld) is still running after %gs",
			    (long)pid, timeout);
			return 1;
		}
		sleep_seconds(0.05);
	}
	printf("goprod (pid %ld) stopped\n", (long)pid);
	return 0;
}

/* The pid in the master's "stopping pid N" answer, else the pid file's. */
static pid_t
stop_pid(const struct ctx *c, const char *reply)
{
	const char *p = strstr(reply, "pid ");
	long pid;

	if (p != NULL && sscanf(p, "pid %ld", &pid) == 1 && pid > 1)
		return (pid_t)pid;
	return c->pid_file ? daemon_read_pidfile(c->pid_file) : 0;
}

static void
stop_options(struct ctx *c, int argc, char **argv, bool *now,
    double *timeout)
{
	static const struct option longopts[] = {
		{ "now", no_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = sub_getopt(c, argc, argv, "t:", longopts)) != -1) {
		if (ch == 't')
			*timeout = parse_seconds(c, optarg, "-t", 0);
		else
			*now = true;
	}
	if (optind != argc)
		usage_error(c, "unexpected argument %s", argv[optind]);
}

static int
cmd_stop(struct ctx *c, int argc, char **argv)
{
	char reply[CTL_REPLY_MAX];
	double timeout = STOP_TIMEOUT;
	bool now = false;
	pid_t pid;
	int rc, e;

	stop_options(c, argc, argv, &now, &timeout);
	locate(c);
	rc = ctl_call(c->socket, now ? "stop now" : "stop", reply,
	    sizeof(reply), CTL_TIMEOUT);
	e = errno;
	if (rc == 1) {
		warnx("stop refused:");
		print_detail(stderr, reply);
		return 1;
	}
	if (rc < 0 && !unreachable(e)) {
		errno = e;
		err(1, "stop: control socket %s", c->socket);
	}
	/* Stopping what does not run succeeds, as systemctl stop does. */
	if (rc < 0 && !pid_alive(c->pid_file != NULL ?
	    daemon_read_pidfile(c->pid_file) : 0)) {
		printf("goprod is not running: nothing to stop\n");
		return 0;
	}
	pid = rc == 0 ? stop_pid(c, reply) :
	    signal_master(c, now ? SIGQUIT : SIGTERM, e);
	if (pid <= 0)
		return 0;
	return wait_gone(pid, timeout);
}

/* ------------------------------------------------------------ check */

static int
cmd_check(struct ctx *c, int argc, char **argv)
{
	struct gopro_conf *conf;
	char errs[CONF_ERR_MAX];
	const char *path;

	if (sub_getopt(c, argc, argv, "", NULL) != -1 || argc - optind > 1)
		usage_error(c, "unexpected argument %s", argv[optind + 1]);
	path = optind < argc ? argv[optind] : c->conf_path;
	/* The same checks as goprod -t: the TLS files must load too. */
	conf_set_load_tls(true);
	if (conf_load(path, &conf, errs, sizeof(errs)) < 0) {
		fputs(errs, stderr);
		if (errs[0] != '\0' && errs[strlen(errs) - 1] != '\n')
			fputc('\n', stderr);
		return 1;
	}
	/* The same checks as goprod -t: the users file must load too. */
	if (conf->auth.users_file != NULL &&
	    auth_users_check(conf->auth.users_file, errs, sizeof(errs)) < 0) {
		fprintf(stderr, "%s\n", errs);
		conf_free(conf);
		return 1;
	}
	conf_free(conf);
	printf("%s: configuration ok\n", path);
	return 0;
}

/* ------------------------------------------------------------ ping, send */

/*
 * The first listen address that speaks what we do (TLS with --tls, plain
 * without, never a PROXY listener, which wants a header from a proxy), with
 * a wildcard turned into loopback.
 */
static const char *
default_address(struct ctx *c, bool tls, char *buf, size_t len)
{
	const struct gopro_conf *conf = conf_or_salvage(c);
	const char *text = NULL;

	/* A file that does not load: the first address it writes. */
	if (conf == NULL)
		text = c->where.listen;
	for (size_t i = 0; conf != NULL && i < conf->nlisten && text == NULL;
	    i++)
		if (!conf->listen[i].proxy && conf->listen[i].tls == tls)
			text = conf->listen[i].text;
	if (text == NULL)
		errx(1, "%s: no %s listen address without PROXY; give "
		    "HOST:PORT", c->conf_path, tls ? "TLS" : "plain");
	if (strncmp(text, "0.0.0.0:", 8) == 0)
		snprintf(buf, len, "127.0.0.1:%s", text + 8);
	else if (strncmp(text, "[::]:", 5) == 0)
		snprintf(buf, len, "[::1]:%s", text + 5);
	else
		snprintf(buf, len, "%s", text);
	return buf;
}

static struct gopro_client *
connect_or_die(const char *addr, double timeout)
{
	struct gopro_client *gc = gopro_client_new();

	if (gc == NULL)
		errx(1, "%s: %s", addr, gopro_strerror(GOPRO_E_NOMEM));
	if (gopro_client_connect(gc, addr, timeout) != GOPRO_OK)
		errx(1, "%s", gopro_client_error(gc));
	return gc;
}

/*
 * ping and send over TLS (--tls, libgopro-tls) or plain TCP (libgopro's
 * blocking client): one connection either way, the same calls.
 */
#define TLS_LONGOPTS							\
	{ "tls", no_argument, NULL, 'T' },				\
	{ "ca", required_argument, NULL, 'A' },				\
	{ "cert", required_argument, NULL, 'E' },			\
	{ "key", required_argument, NULL, 'K' },			\
	{ "servername", required_argument, NULL, 'N' }

struct tls_args {
	bool on;
	const char *ca, *cert, *key, *servername;
};

struct peer {
	const char *addr;
	struct gopro_client *gc;	/* plain */
#ifdef HAVE_TLS
	struct gopro_tls_ctx *ctx;	/* TLS */
	struct gopro_tls *tls;
	uint8_t *buf;
	size_t cap;
#endif
	char err[512];
};

/* A TLS option of ping or send: whether ch was one. */
static bool
tls_arg(struct tls_args *t, int ch)
{
	switch (ch) {
	case 'T':
		t->on = true;
		return true;
	case 'A':
		t->ca = optarg;
		return true;
	case 'E':
		t->cert = optarg;
		return true;
	case 'K':
		t->key = optarg;
		return true;
	case 'N':
		t->servername = optarg;
		return true;
	default:
		return false;
	}
}

#ifdef HAVE_TLS
/* "host:port" or "[v6]:port": the host, for the name the certificate has. */
static void
address_host(const char *addr, char *host, size_t len)
{
	const char *end = addr[0] == '[' ? strchr(addr, ']') :
	    strrchr(addr, ':');
	size_t n = end != NULL ? (size_t)(end - addr) : strlen(addr);

	if (addr[0] == '[' && n > 0)
		addr++, n--;
	snprintf(host, len, "%.*s", (int)n, addr);
}

static void
peer_tls(struct peer *p, const struct tls_args *t, size_t max_reply,
    double timeout)
{
	char host[256];
	struct gopro_tls_options o;

	gopro_tls_options_init(&o);
	o.ca_file = t->ca;
	o.cert_file = t->cert;
	o.key_file = t->key;
	o.servername = t->servername;
	if (o.servername == NULL) {
		address_host(p->addr, host, sizeof(host));
		o.servername = host;
	}
	if ((p->ctx = gopro_tls_ctx_new(&o, p->err, sizeof(p->err))) == NULL)
		errx(1, "%s", p->err);
	if ((p->tls = gopro_tls_connect(p->ctx, p->addr, timeout, p->err,
	    sizeof(p->err))) == NULL)
		errx(1, "%s: %s", p->addr, p->err);
	p->cap = GOPRO_HEADER_SIZE + max_reply;
	if ((p->buf = malloc(p->cap)) == NULL)
		err(1, "%s", p->addr);
}
#endif

static void
peer_connect(struct peer *p, const char *addr, const struct tls_args *t,
    size_t max_reply, double timeout)
{
	memset(p, 0, sizeof(*p));
	p->addr = addr;
	if (!t->on && (t->ca || t->cert || t->key || t->servername))
		errx(2, "--ca, --cert, --key and --servername need --tls");
	if (t->cert != NULL && t->key == NULL)
		errx(2, "--cert needs --key");
	if (!t->on) {
		p->gc = connect_or_die(addr, timeout);
		gopro_client_set_max_reply(p->gc, (uint32_t)max_reply);
		return;
	}
#ifdef HAVE_TLS
	peer_tls(p, t, max_reply, timeout);
#else
	errx(1, "--tls: this goproctl was built without TLS (OpenSSL 3)");
#endif
}

/* One request and its reply, whatever it is. */
static int
peer_request(struct peer *p, uint8_t cmd, const void *body, size_t len,
    struct gopro_frame *f, double timeout)
{
#ifdef HAVE_TLS
	int rc;

	if (p->tls != NULL) {
		rc = gopro_tls_send_frame(p->tls, cmd, body, len, timeout);
		if (rc == GOPRO_OK)
			rc = gopro_tls_read_frame(p->tls, p->buf, p->cap, f,
			    timeout);
		snprintf(p->err, sizeof(p->err), "%s", gopro_strerror(rc));
		return rc;
	}
#endif
	return gopro_client_request(p->gc, cmd, body, len, f, timeout);
}

static const char *
peer_error(const struct peer *p)
{
	return p->gc != NULL ? gopro_client_error(p->gc) : p->err;
}

static void
peer_free(struct peer *p)
{
	gopro_client_free(p->gc);
#ifdef HAVE_TLS
	gopro_tls_close(p->tls);
	gopro_tls_ctx_free(p->ctx);
	free(p->buf);
#endif
}

struct ping {
	const char *addr;
	long count;
	double interval, timeout;
	long sent, received;
	double min, max, sum;
};

static bool
same_heartbeat(const struct gopro_frame *f, const uint8_t *body, size_t len)
{
	return f->header.command == GOPRO_CMD_HEARTBEAT &&
	    f->header.length == len && memcmp(f->body, body, len) == 0;
}

/*
 * One heartbeat whose reply must be the same frame, byte for byte: 1 when
 * it was, 0 for a lost reply (go on), -1 when the connection is unusable.
 */
static int
ping_once(struct peer *gc, struct ping *p, long seq)
{
	uint8_t body[24];
	struct gopro_frame f;
	double t0 = now_mono(), ms;
	int rc;

	/* A body that only this request has, so a stale reply cannot match. */
	memcpy(body, "goproctl", 8);
	memcpy(body + 8, &(int64_t){ seq }, 8);
	memcpy(body + 16, &t0, sizeof(t0));
	p->sent++;
	/* A reply that comes too late is caught by its body next time. */
	rc = peer_request(gc, GOPRO_CMD_HEARTBEAT, body, sizeof(body), &f,
	    p->timeout);
	if (rc != GOPRO_OK) {
		warnx("%s: seq=%ld: %s", p->addr, seq, peer_error(gc));
		return rc == GOPRO_E_TIMEOUT ? 0 : -1;
	}
	if (!same_heartbeat(&f, body, sizeof(body))) {
		warnx("%s: seq=%ld: reply is a %s frame of %u bytes, not the "
		    "heartbeat sent", p->addr, seq,
		    gopro_command_name(f.header.command), f.header.length);
		return -1;
	}
	ms = (now_mono() - t0) * 1e3;
	p->received++;
	p->sum += ms;
	p->min = p->received == 1 || ms < p->min ? ms : p->min;
	p->max = ms > p->max ? ms : p->max;
	printf("%zu bytes from %s: seq=%ld time=%.3f ms\n", f.size, p->addr,
	    seq, ms);
	return 1;
}

static void
ping_summary(const struct ping *p)
{
	printf("--- %s ping statistics ---\n", p->addr);
	printf("%ld heartbeats sent, %ld received, %.0f%% lost", p->sent,
	    p->received, p->sent ? 100.0 * (double)(p->sent - p->received) /
	    (double)p->sent : 0.0);
	if (p->received > 0)
		printf(", rtt min/avg/max = %.3f/%.3f/%.3f ms", p->min,
		    p->sum / (double)p->received, p->max);
	printf("\n");
}

static void
ping_options(struct ctx *c, struct ping *p, struct tls_args *t, int argc,
    char **argv)
{
	static const struct option longopts[] = { TLS_LONGOPTS,
		{ NULL, 0, NULL, 0 } };
	char *end;
	int ch;

	while ((ch = sub_getopt(c, argc, argv, "n:i:W:", longopts)) != -1) {
		if (tls_arg(t, ch))
			continue;
		if (ch == 'n') {
			errno = 0;
			p->count = strtol(optarg, &end, 10);
			if (*end != '\0' || end == optarg || p->count < 1 ||
			    errno != 0)
				usage_error(c, "-n %s: expected a count of at "
				    "least 1", optarg);
		} else if (ch == 'i')
			p->interval = parse_seconds(c, optarg, "-i", 0.001);
		else
			p->timeout = parse_seconds(c, optarg, "-W", 0.001);
	}
}

static int
cmd_ping(struct ctx *c, int argc, char **argv)
{
	struct ping p = { .count = 4, .interval = 1.0, .timeout = 2.0 };
	struct tls_args t = { 0 };
	char addr[300];
	struct peer gc;
	int rc = 1;

	ping_options(c, &p, &t, argc, argv);
	if (argc - optind > 1)
		usage_error(c, "unexpected argument %s", argv[optind + 1]);
	p.addr = optind < argc ? argv[optind] :
	    default_address(c, t.on, addr, sizeof(addr));
	peer_connect(&gc, p.addr, &t, 256, p.timeout);
	printf("PING %s: heartbeats of %zu bytes\n", p.addr,
	    (size_t)GOPRO_HEADER_SIZE + 24);
	for (long seq = 1; seq <= p.count && rc >= 0; seq++) {
		if (seq > 1)
			sleep_seconds(p.interval);
		rc = ping_once(&gc, &p, seq);
	}
	peer_free(&gc);
	ping_summary(&p);
	return p.received == p.count ? 0 : 1;
}

/* Read a line from fd without echo when it is a terminal. */
static int
read_secret(int fd, const char *prompt, char *buf, size_t len)
{
	struct termios old, quiet;
	bool tty = tcgetattr(fd, &old) == 0;
	size_t n = 0;
	char ch;

	if (prompt != NULL && write(fd, prompt, strlen(prompt)) < 0)
		return -1;
	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	while (read(fd, &ch, 1) == 1 && ch != '\n')
		if (n + 1 < len)
			buf[n++] = ch;
	buf[n] = '\0';
	if (tty) {
		tcsetattr(fd, TCSAFLUSH, &old);
		(void)!write(fd, "\n", 1);
	}
	return 0;
}

static void
prompt_password(const char *prompt, char *buf, size_t len)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		err(1, "cannot open /dev/tty to read the password");
	if (read_secret(fd, prompt, buf, len) < 0)
		err(1, "/dev/tty");
	close(fd);
}

/* LOGIN, checked as gopro_client_login checks it. */
static int
peer_login(struct peer *p, const char *user, const char *password)
{
#ifdef HAVE_TLS
	struct gopro_frame f;
	struct gopro_status st = { 0 };
	int rc;

	if (p->tls != NULL) {
		rc = gopro_tls_login(p->tls, user, password, p->buf, p->cap,
		    &f, 10.0);
		if (rc != GOPRO_OK) {
			snprintf(p->err, sizeof(p->err), "%s",
			    gopro_strerror(rc));
			return rc;
		}
		if (f.header.command == GOPRO_CMD_LOGIN_ACK)
			return GOPRO_OK;
		if (gopro_status_parse(f.body, f.header.length, &st) < 0)
			st.text_len = 0;
		snprintf(p->err, sizeof(p->err), "%s %u: %.*s",
		    gopro_command_name(f.header.command), st.code,
		    (int)st.text_len, (const char *)st.text);
		return GOPRO_E_AUTH;
	}
#endif
	return gopro_client_login(p->gc, user, password, 10.0);
}

static void
send_login(struct peer *gc, const char *addr, const char *user)
{
	char password[GOPRO_PASSWORD_MAX + 2];
	const char *env = getenv("GOPRO_PASSWORD");
	int rc;

	if (env != NULL)
		snprintf(password, sizeof(password), "%s", env);
	else
		prompt_password("Password: ", password, sizeof(password));
	rc = peer_login(gc, user, password);
	explicit_bzero(password, sizeof(password));
	if (rc == GOPRO_E_AUTH || rc == GOPRO_E_SERVER)
		errx(1, "%s: login as %s refused: %s", addr, user,
		    peer_error(gc));
	if (rc != GOPRO_OK)
		errx(1, "%s: login: %s", addr, peer_error(gc));
}

static int
print_reply(const char *addr, const struct gopro_frame *f)
{
	struct gopro_status st = { 0 };

	if (f->header.command == GOPRO_CMD_MESSAGE) {
		fwrite(f->body, 1, f->header.length, stdout);
		putchar('\n');
		return fflush(stdout) == EOF ? 1 : 0;
	}
	if (gopro_status_parse(f->body, f->header.length, &st) < 0)
		warnx("%s: unexpected %s frame", addr,
		    gopro_command_name(f->header.command));
	else
		warnx("%s: %s %u (%s): %.*s", addr,
		    gopro_command_name(f->header.command), st.code,
		    f->header.command == GOPRO_CMD_ERROR ?
		    gopro_error_name(st.code) : "goaway", (int)st.text_len,
		    (const char *)st.text);
	return 1;
}

static int
send_message(struct ctx *c, const char *addr, const char *user,
    const struct tls_args *t, const char *msg)
{
	struct peer gc;
	struct gopro_frame f;
	int rc;

	/* A reply may carry the server's prefix on a body of max_body. */
	peer_connect(&gc, addr, t, 2 * GOPRO_DEFAULT_MAX_BODY, 10.0);
	if (user != NULL)
		send_login(&gc, addr, user);
	rc = peer_request(&gc, GOPRO_CMD_MESSAGE, msg, strlen(msg), &f, 10.0);
	if (rc != GOPRO_OK)
		errx(1, "%s: %s", addr, peer_error(&gc));
	rc = print_reply(addr, &f);
	peer_free(&gc);
	return rc;
}

static int
cmd_send(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "user", required_argument, NULL, 'u' },
		TLS_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	const char *user = NULL, *addr;
	struct tls_args t = { 0 };
	char defaddr[300];
	int ch;

	while ((ch = sub_getopt(c, argc, argv, "", longopts)) != -1)
		if (!tls_arg(&t, ch))
			user = optarg;
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage_error(c, "no message to send");
	if (argc > 2)
		usage_error(c, "unexpected argument %s", argv[2]);
	addr = argc == 2 ? argv[0] : default_address(c, t.on, defaddr,
	    sizeof(defaddr));
	return send_message(c, addr, user, &t, argv[argc - 1]);
}

/* ------------------------------------------------------------ passwd */

static void
check_user(const char *user)
{
	size_t n = strlen(user);

	if (n == 0 || n > GOPRO_USER_MAX || strpbrk(user, ":\n\r \t#") != NULL)
		errx(1, "%s: a user name is 1 to %u bytes without ':', '#', "
		    "space or newline", user, GOPRO_USER_MAX);
}

static void
read_new_password(bool from_stdin, char *pw, size_t len)
{
	char again[PASSWORD_MAX + 2];

	if (from_stdin) {
		if (read_secret(STDIN_FILENO, NULL, pw, len) < 0)
			err(1, "standard input");
		return;
	}
	prompt_password("New password: ", pw, len);
	prompt_password("Retype new password: ", again, sizeof(again));
	if (strcmp(pw, again) != 0) {
		explicit_bzero(again, sizeof(again));
		errx(1, "the passwords differ; nothing written");
	}
	explicit_bzero(again, sizeof(again));
}

/*
 * -o: append to the users file, creating it 0640 (owner root, group of
 * goprod: the mode goprod expects) rather than with the umask's 0644.
 */
static FILE *
open_users_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0640);
	struct stat st;
	FILE *f;

	if (fd < 0)
		err(1, "%s", path);
	if (fstat(fd, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH)))
		warnx("%s: mode %04o lets others read the hashes, and goprod "
		    "refuses it; chmod o-rw %s", path,
		    (unsigned)(st.st_mode & 07777), path);
	if ((f = fdopen(fd, "a")) == NULL)
		err(1, "%s", path);
	return f;
}

static int
cmd_passwd(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "stdin", no_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	char pw[PASSWORD_MAX + 2], salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data data;
	const char *output = NULL;
	bool from_stdin = false;
	FILE *out = stdout;
	int ch;

	while ((ch = sub_getopt(c, argc, argv, "o:", longopts)) != -1)
		if (ch == 'o')
			output = optarg;
		else
			from_stdin = true;
	if (optind == argc)
		usage_error(c, "no user name");
	if (optind != argc - 1)
		usage_error(c, "unexpected argument %s", argv[optind + 1]);
	check_user(argv[optind]);
	read_new_password(from_stdin, pw, sizeof(pw));
	if (pw[0] == '\0' || strlen(pw) > PASSWORD_MAX)
		errx(1, "a password is 1 to %d bytes", PASSWORD_MAX);
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL)
		err(1, "crypt_gensalt_rn: yescrypt");
	memset(&data, 0, sizeof(data));
	if (crypt_rn(pw, salt, &data, sizeof(data)) == NULL ||
	    data.output[0] == '*')
		err(1, "crypt_rn: yescrypt");
	explicit_bzero(pw, sizeof(pw));
	if (output != NULL)
		out = open_users_file(output);
	fprintf(out, "%s:%s\n", argv[optind], data.output);
	explicit_bzero(&data, sizeof(data));
	if (fflush(out) == EOF || (out != stdout && fclose(out) == EOF))
		err(1, "%s", output != NULL ? output : "standard output");
	return 0;
}

/* ------------------------------------------------------------ help */

static const struct command *
find_command(const char *name)
{
	for (size_t i = 0; i < ncommands; i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
}

static int
cmd_help(struct ctx *c, int argc, char **argv)
{
	const struct command *cmd;

	if (sub_getopt(c, argc, argv, "", NULL) != -1 || argc - optind > 1)
		usage_error(c, "unexpected argument %s", argv[optind + 1]);
	if (optind == argc) {
		print_usage(stdout);
		return 0;
	}
	if ((cmd = find_command(argv[optind])) == NULL)
		usage_error(c, "unknown command %s", argv[optind]);
	print_command_usage(stdout, cmd, "usage: ");
	return 0;
}

/* ------------------------------------------------------------ main */

static const struct command commands[] = {
	{ "stats", cmd_stats, "[--json | --prometheus] [-w interval]", true,
	    true },
	{ "status", cmd_status, "", true, true },
	{ "reload", cmd_reload, "", true, true },
	{ "upgrade", cmd_upgrade, "", true, true },
	{ "stop", cmd_stop, "[--now] [-t timeout]", true, true },
	{ "check", cmd_check, "[file]", true, false },
	{ "ping", cmd_ping, "[-n count] [-i interval] [-W timeout] "
	    "[--tls [--ca file] [--cert file --key file] [--servername name]] "
	    "[host:port]", true, false },
	{ "send", cmd_send, "[--user user] [--tls [--ca file] [--cert file "
	    "--key file] [--servername name]] [host:port] message", true,
	    false },
	{ "passwd", cmd_passwd, "[--stdin] [-o file] user", false, false },
	{ "help", cmd_help, "[command]", false, false },
};
static const size_t ncommands = sizeof(commands) / sizeof(commands[0]);

/* The options before the subcommand; exits for -h and -V. */
static void
global_options(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "stats", required_argument, NULL, OPT_STATS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:c:hV", longopts, NULL)) != -1)
		switch (ch) {
		case 'c':
		case OPT_SOCKET:
		case OPT_STATS:
			common_option(c, ch, optarg);
			break;
		case 'h':
			print_usage(stdout);
			exit(0);
		case 'V':
			printf("goproctl %s\n", PACKAGE_VERSION);
			exit(0);
		default:
			bad_option(c, ch, argv);
		}
}

int
main(int argc, char *argv[])
{
	struct ctx c = { .conf_path = DEFAULT_CONF };
	int rc;

	/* Paths only: an operator need not be able to read the TLS key. */
	conf_set_load_tls(false);
	global_options(&c, argc, argv);
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage_error(&c, "no command given");
	if ((c.cmd = find_command(argv[0])) == NULL)
		usage_error(&c, "unknown command %s", argv[0]);
	getopt_reset();
	rc = c.cmd->fn(&c, argc, argv);
	if (c.conf != NULL)
		conf_free(c.conf);
	conf_where_free(&c.where);
	return rc;
}
