/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log.c - logging to syslog, stderr or a file (see log.h).
 *
 * Each line carries the process role ("master", "worker 1/g3") so the
 * interleaved output of the master and its workers reads as one story.  A
 * file target is opened O_APPEND so that every process can write to the
 * same file without tearing lines, and is reopened on SIGUSR1 for logrotate.
 *
 * When standard error is the journal (systemd sets JOURNAL_STREAM to the
 * device and inode of the stream it connected), lines carry the "<N>"
 * priority prefix of sd-daemon(3) and neither a timestamp nor the program
 * name and pid, which journald records by itself; the role stays.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "log.h"
#include "nofollow.h"

static const char *log_ident = "goprod";
static char log_procname[32] = "";
static enum log_target log_target = LOG_TARGET_STDERR;
static int log_level = LOG_INFO;
static int log_fd = -1;
static char *log_path;
static bool log_journal;        /* stderr is the journal: "<N>" prefixes */

/* Is fd the stream that JOURNAL_STREAM ("DEV:INO") names? */
static bool
is_journal_stream(int fd)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	if (env == NULL || sscanf(env, "%llu:%llu%c", &dev, &ino, &end) != 2 ||
	    fstat(fd, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *ident)
{
	log_ident = ident;
	log_target = LOG_TARGET_STDERR;
	log_level = LOG_INFO;
	log_journal = is_journal_stream(STDERR_FILENO);
}

/*
 * Root opens the file at start, in a directory the service account must be
 * able to write (to create the file again after rotation): never follow a
 * link planted there, nor append to a file that has another name.
 */
static int
open_file(const char *path)
{
	return nofollow_open(path, O_WRONLY | O_CREAT | O_APPEND, 0640);
}

int
log_open(enum log_target target, const char *file, int level)
{
	int fd = -1;

	if (target == LOG_TARGET_FILE) {
		fd = open_file(file);
		if (fd < 0)
			return -1;
	}
	log_close();
	if (target == LOG_TARGET_FILE) {
		log_fd = fd;
		log_path = strdup(file);
	} else if (target == LOG_TARGET_SYSLOG) {
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
	log_target = target;
	log_level = level;
	log_journal = target == LOG_TARGET_STDERR &&
	    is_journal_stream(STDERR_FILENO);
	return 0;
}

void
log_reopen(void)
{
	int fd;

	if (log_target != LOG_TARGET_FILE || log_path == NULL)
		return;
	fd = open_file(log_path);
	if (fd < 0) {
		log_warn("cannot reopen log file %s", log_path);
		return;
	}
	dup2(fd, log_fd);
	close(fd);
}

void
log_close(void)
{
	if (log_target == LOG_TARGET_SYSLOG)
		closelog();
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	free(log_path);
	log_path = NULL;
	log_target = LOG_TARGET_STDERR;
}

void
log_set_procname(const char *name)
{
	snprintf(log_procname, sizeof(log_procname), "%s", name);
}

void
log_set_level(int level)
{
	log_level = level;
}

int
log_get_level(void)
{
	return log_level;
}

static const char *
level_name(int pri)
{
	switch (pri) {
	case LOG_CRIT:
		return "fatal";
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

/* Local time in ISO 8601 with milliseconds and the UTC offset. */
static void
format_stamp(char *buf, size_t len)
{
	char date[32], zone[8];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	/* "+0100" becomes "+01:00", the form of RFC 3339. */
	snprintf(buf, len, "%s.%03ld%.3s:%.2s", date, ts.tv_nsec / 1000000,
	    zone, zone + 3);
}

/* One write per line so lines from several processes never interleave. */
static void
write_line(int fd, int pri, const char *msg)
{
	char line[1200], stamp[64];
	int n;

	if (log_journal && fd == STDERR_FILENO) {
		n = snprintf(line, sizeof(line), "<%d>%s%s%s\n", pri,
		    log_procname, *log_procname ? ": " : "", msg);
	} else {
		format_stamp(stamp, sizeof(stamp));
		n = snprintf(line, sizeof(line), "%s %s[%d] %s%s%s: %s\n",
		    stamp, log_ident, (int)getpid(), log_procname,
		    *log_procname ? " " : "", level_name(pri), msg);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	(void)!write(fd, line, (size_t)n);
}

void
log_vmsg(int pri, const char *fmt, va_list ap)
{
	char msg[1024];
	int saved = errno;

	if (pri > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	switch (log_target) {
	case LOG_TARGET_SYSLOG:
		if (*log_procname)
			syslog(pri, "%s: %s", log_procname, msg);
		else
			syslog(pri, "%s", msg);
		break;
	case LOG_TARGET_FILE:
		write_line(log_fd, pri, msg);
		break;
	default:
		write_line(STDERR_FILENO, pri, msg);
		break;
	}
	errno = saved;
}

/* Log fmt with ": strerror(errno)" appended. */
static void __attribute__((format(printf, 2, 0)))
log_errno(int pri, const char *fmt, va_list ap)
{
	char msg[1024];
	int saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_rl(NULL, pri, "%s: %s", msg, strerror(saved));
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_errno(LOG_WARNING, fmt, ap);
	va_end(ap);
}

#define LOG_AT(fn, pri)                                                       \
	void fn(const char *fmt, ...)                                         \
	{                                                                     \
		va_list ap;                                                   \
		va_start(ap, fmt);                                            \
		log_vmsg(pri, fmt, ap);                                       \
		va_end(ap);                                                   \
	}
LOG_AT(log_warnx, LOG_WARNING)
LOG_AT(log_notice, LOG_NOTICE)
LOG_AT(log_info, LOG_INFO)
LOG_AT(log_debug, LOG_DEBUG)
#undef LOG_AT

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_errno(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

static void
log_suppressed(int pri, unsigned long n, unsigned period)
{
	log_rl(NULL, pri, "(%lu more suppressed in the last %us)", n,
	    period);
}

/*
 * With rl == NULL this is a plain log call.  Otherwise at most rl->burst
 * lines per rl->period seconds get through; the count of the others is
 * reported once the next period begins.
 */
void
log_rl(struct log_ratelimit *rl, int pri, const char *fmt, ...)
{
	va_list ap;
	time_t now;

	if (rl != NULL) {
		now = time(NULL);
		if (now - rl->period_start >= (time_t)rl->period) {
			if (rl->suppressed > 0)
				log_suppressed(pri, rl->suppressed, rl->period);
			rl->period_start = now;
			rl->printed = 0;
			rl->suppressed = 0;
		}
		if (rl->printed >= rl->burst) {
			rl->suppressed++;
			return;
		}
		rl->printed++;
	}
	va_start(ap, fmt);
	log_vmsg(pri, fmt, ap);
	va_end(ap);
}
