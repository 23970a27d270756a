/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log.h - logging in the OpenBSD manner: log_warn adds strerror(errno),
 * log_warnx does not; fatal/fatalx log and exit.  Messages go to syslog, to
 * stderr or to a file, filtered by level.  A rate limit keeps a flood of
 * bad clients from filling the disk.
 */
#ifndef GOPRO_LOG_H
#define GOPRO_LOG_H

#include <stdarg.h>
#include <syslog.h>
#include <time.h>

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
	LOG_TARGET_FILE,
};

/* Start logging to stderr at LOG_INFO; ident names the program. */
void log_init(const char *ident);
/*
 * Switch to target at level (a syslog priority, LOG_ERR .. LOG_DEBUG); file
 * is the path for LOG_TARGET_FILE.  Returns 0, or -1 with errno when the
 * file cannot be opened (logging stays where it was).
 */
int log_open(enum log_target target, const char *file, int level);
/* Reopen the log file after rotation (SIGUSR1); no-op for other targets. */
void log_reopen(void);
/* Name of this process in every line: "master", "worker 2/g1", ... */
void log_set_procname(const char *name);
int log_get_level(void);
/* Change the level of the current target (a reload). */
void log_set_level(int level);
void log_close(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void log_vmsg(int pri, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/*
 * A rate limit for one kind of message: at most burst messages per period
 * seconds; the rest are counted and reported in one line when the next
 * period starts.
 */
struct log_ratelimit {
	time_t period_start;
	unsigned period;
	unsigned burst;
	unsigned printed;
	unsigned long suppressed;
};
#define LOG_RATELIMIT_INIT(period, burst) { 0, (period), (burst), 0, 0 }

void log_rl(struct log_ratelimit *rl, int pri, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* GOPRO_LOG_H */
