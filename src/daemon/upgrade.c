/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * upgrade.c - the binary-upgrade state as text (see upgrade.h).
 *
 * One item per line, "key value...", in any order after the first line
 * "gopro-upgrade 1".  String values run to the end of the line, so a
 * string holding a newline cannot be written (the writer refuses it).
 * Unknown keys are errors: two images that do not speak the same
 * protocol must not guess.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "upgrade.h"

void
upgrade_state_init(struct upgrade_state *st)
{
	memset(st, 0, sizeof(*st));
	st->old_exe_fd = st->stats_fd = st->ctl_fd = -1;
	st->client_fd = st->metrics_fd = -1;
	for (int a = 0; a < CONF_MAX_LISTEN; a++)
		for (int s = 0; s < CONF_MAX_WORKERS; s++)
			st->fds[a][s] = -1;
}

void
upgrade_state_free(struct upgrade_state *st)
{
	free(st->exe);
	st->exe = NULL;
	conf_free(st->conf);
	st->conf = NULL;
}

/* ------------------------------------------------------------ writing */

/* The string options carried over, by offset in struct gopro_conf. */
static const struct {
	const char *key;
	size_t off;
} conf_strings[] = {
	{ "conf", offsetof(struct gopro_conf, path) },
	{ "user", offsetof(struct gopro_conf, user) },
	{ "group", offsetof(struct gopro_conf, group) },
	{ "pid_file", offsetof(struct gopro_conf, pid_file) },
	{ "stats_file", offsetof(struct gopro_conf, stats_file) },
	{ "control_socket", offsetof(struct gopro_conf, control_socket) },
	{ "metrics_listen", offsetof(struct gopro_conf, metrics_listen) },
	{ "log_file", offsetof(struct gopro_conf, log_file) },
};
#define NSTRINGS (sizeof(conf_strings) / sizeof(conf_strings[0]))

static char **
conf_string(struct gopro_conf *c, size_t i)
{
	return (char **)(void *)((char *)c + conf_strings[i].off);
}

static int
put_string(FILE *f, const char *key, const char *v)
{
	if (v == NULL)
		return 0;
	if (strchr(v, '\n') != NULL)
		return -1;
	fprintf(f, "%s %s\n", key, v);
	return 0;
}

static int
put_conf(FILE *f, const struct upgrade_state *st)
{
	struct gopro_conf *c = st->conf;

	for (size_t i = 0; i < NSTRINGS; i++)
		if (put_string(f, conf_strings[i].key, *conf_string(c, i)) < 0)
			return -1;
	fprintf(f, "workers %u\nlog %d %d\ndrain_timeout %.6f\n", c->workers,
	    (int)c->log_target, c->log_level, c->drain_timeout);
	for (size_t a = 0; a < c->nlisten; a++) {
		if (strchr(c->listen[a].text, '\n') != NULL)
			return -1;
		fprintf(f, "listen %zu %d %s\n", a, c->listen[a].proxy ? 1 : 0,
		    c->listen[a].text);
	}
	return 0;
}

static void
put_tables(FILE *f, const struct upgrade_state *st)
{
	for (int a = 0; a < CONF_MAX_LISTEN; a++)
		for (int s = 0; s < CONF_MAX_WORKERS; s++)
			if (st->fds[a][s] >= 0)
				fprintf(f, "sock %d %d %d\n", a, s, st->fds[a][s]);
	for (unsigned i = 0; i < st->nprocs; i++)
		fprintf(f, "proc %u %ld %u %u %d\n", st->procs[i].idx,
		    (long)st->procs[i].pid, st->procs[i].slot,
		    st->procs[i].generation, st->procs[i].draining ? 1 : 0);
	for (int s = 0; s < CONF_MAX_WORKERS; s++)
		if (st->restarts[s] > 0)
			fprintf(f, "restarts %d %u\n", s, st->restarts[s]);
}

static int
write_all(int fd, const char *buf, size_t len)
{
	size_t off = 0;

	if (lseek(fd, 0, SEEK_SET) < 0 || ftruncate(fd, 0) < 0)
		return -1;
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return lseek(fd, 0, SEEK_SET) < 0 ? -1 : 0;
}

int
upgrade_state_write(int fd, const struct upgrade_state *st, char *err,
    size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int rc = -1;

	if (f == NULL) {
		snprintf(err, errlen, "upgrade state: %s", strerror(errno));
		return -1;
	}
	fprintf(f, "gopro-upgrade %d\nexe %s\nold_exe_fd %d\nflags %d %d\n"
	    "generation %u\nstats_fd %d\nctl_fd %d\nclient_fd %d\n"
	    "metrics_fd %d\n", UPGRADE_PROTOCOL, st->exe, st->old_exe_fd,
	    st->foreground, st->debug, st->generation, st->stats_fd,
	    st->ctl_fd, st->client_fd, st->metrics_fd);
	if (strchr(st->exe, '\n') != NULL || put_conf(f, st) < 0 ||
	    put_string(f, "error", *st->error ? st->error : NULL) < 0) {
		fclose(f);
		snprintf(err, errlen, "upgrade state: a path or address holds "
		    "a newline");
		goto done;
	}
	put_tables(f, st);
	if (fclose(f) != 0 || write_all(fd, buf, len) < 0)
		snprintf(err, errlen, "upgrade state: cannot write it: %s",
		    strerror(errno));
	else
		rc = 0;
done:
	free(buf);
	return rc;
}

/* ------------------------------------------------------------ reading */

/* The next number in *p within [min, max]; 0, or -1 when there is none. */
static int
get_num(char **p, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	while (**p == ' ')
		(*p)++;
	if (**p == '\0')
		return -1;
	errno = 0;
	v = strtoll(*p, &end, 10);
	if (errno != 0 || end == *p || (*end != ' ' && *end != '\0') ||
	    v < min || v > max)
		return -1;
	*p = end;
	*out = v;
	return 0;
}

/* A value that must end the line. */
static int
get_last(char **p, long long min, long long max, long long *out)
{
	if (get_num(p, min, max, out) < 0)
		return -1;
	while (**p == ' ')
		(*p)++;
	return **p == '\0' ? 0 : -1;
}

static int
get_fd(char *v, int *fd)
{
	long long n;

	if (get_last(&v, -1, INT_MAX, &n) < 0)
		return -1;
	*fd = (int)n;
	return 0;
}

static int
set_string(char **field, const char *v)
{
	if (*field != NULL)
		return -1;       /* twice */
	return (*field = strdup(v)) == NULL ? -1 : 0;
}

static int
parse_listen(struct gopro_conf *c, char *v)
{
	long long a, proxy;
	struct conf_listen *l;

	if (get_num(&v, 0, CONF_MAX_LISTEN - 1, &a) < 0 ||
	    get_num(&v, 0, 1, &proxy) < 0 || (size_t)a != c->nlisten ||
	    *v++ != ' ')
		return -1;
	l = &c->listen[a];
	if (conf_parse_listen_address(v, &l->addr, &l->addrlen) < 0 ||
	    (l->text = strdup(v)) == NULL)
		return -1;
	/* A unix listener's file is the predecessor's: removed at the end. */
	if (l->addr.ss_family == AF_UNIX)
		unixsock_file_of(((struct sockaddr_un *)&l->addr)->sun_path,
		    &l->file);
	l->proxy = proxy != 0;
	c->nlisten++;
	return 0;
}

static int
parse_sock(struct upgrade_state *st, char *v)
{
	long long a, s, fd;

	if (get_num(&v, 0, CONF_MAX_LISTEN - 1, &a) < 0 ||
	    get_num(&v, 0, CONF_MAX_WORKERS - 1, &s) < 0 ||
	    get_last(&v, 0, INT_MAX, &fd) < 0 || st->fds[a][s] >= 0)
		return -1;
	st->fds[a][s] = (int)fd;
	return 0;
}

static int
parse_proc(struct upgrade_state *st, char *v)
{
	long long idx, pid, slot, gen, draining;
	struct upgrade_proc *p;

	if (st->nprocs >= STATS_ENTRIES ||
	    get_num(&v, 0, STATS_ENTRIES - 1, &idx) < 0 ||
	    get_num(&v, 2, INT_MAX, &pid) < 0 ||
	    get_num(&v, 0, CONF_MAX_WORKERS - 1, &slot) < 0 ||
	    get_num(&v, 0, UINT_MAX, &gen) < 0 ||
	    get_last(&v, 0, 1, &draining) < 0)
		return -1;
	p = &st->procs[st->nprocs++];
	*p = (struct upgrade_proc){ .idx = (unsigned)idx, .pid = (pid_t)pid,
		.slot = (unsigned)slot, .generation = (unsigned)gen,
		.draining = draining != 0 };
	return 0;
}

static int
parse_misc(struct upgrade_state *st, const char *key, char *v)
{
	struct gopro_conf *c = st->conf;
	long long a, b;

	if (strcmp(key, "flags") == 0) {
		if (get_num(&v, 0, 1, &a) < 0 || get_last(&v, 0, 1, &b) < 0)
			return -1;
		st->foreground = a != 0;
		st->debug = b != 0;
	} else if (strcmp(key, "generation") == 0) {
		if (get_last(&v, 1, UINT_MAX - 1, &a) < 0)
			return -1;
		st->generation = (unsigned)a;
	} else if (strcmp(key, "workers") == 0) {
		if (get_last(&v, 1, CONF_MAX_WORKERS, &a) < 0)
			return -1;
		c->workers = (unsigned)a;
	} else if (strcmp(key, "log") == 0) {
		if (get_num(&v, 0, 16, &a) < 0 || get_last(&v, 0, 7, &b) < 0)
			return -1;
		c->log_target = (enum log_target)a;
		c->log_level = (int)b;
	} else if (strcmp(key, "restarts") == 0) {
		if (get_num(&v, 0, CONF_MAX_WORKERS - 1, &a) < 0 ||
		    get_last(&v, 0, UINT_MAX, &b) < 0)
			return -1;
		st->restarts[a] = (unsigned)b;
	} else if (strcmp(key, "drain_timeout") == 0) {
		char *end;

		c->drain_timeout = strtod(v, &end);
		return *end != '\0' || !(c->drain_timeout >= 0) ? -1 : 0;
	} else
		return 1;
	return 0;
}

static int
parse_fd_key(struct upgrade_state *st, const char *key, char *v)
{
	static const struct {
		const char *key;
		size_t off;
	} fds[] = {
		{ "old_exe_fd", offsetof(struct upgrade_state, old_exe_fd) },
		{ "stats_fd", offsetof(struct upgrade_state, stats_fd) },
		{ "ctl_fd", offsetof(struct upgrade_state, ctl_fd) },
		{ "client_fd", offsetof(struct upgrade_state, client_fd) },
		{ "metrics_fd", offsetof(struct upgrade_state, metrics_fd) },
	};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (strcmp(key, fds[i].key) == 0)
			return get_fd(v, (int *)(void *)((char *)st +
			    fds[i].off));
	return 1;
}

/* One "key value" line; -1 when it is wrong. */
static int
parse_line(struct upgrade_state *st, char *line)
{
	char *v = strchr(line, ' ');
	int rc;

	if (v == NULL)
		return -1;
	*v++ = '\0';
	for (size_t i = 0; i < NSTRINGS; i++)
		if (strcmp(line, conf_strings[i].key) == 0)
			return set_string(conf_string(st->conf, i), v);
	if (strcmp(line, "exe") == 0)
		return set_string(&st->exe, v);
	if (strcmp(line, "error") == 0)
		return snprintf(st->error, sizeof(st->error), "%s", v) < 0 ? -1 : 0;
	if (strcmp(line, "listen") == 0)
		return parse_listen(st->conf, v);
	if (strcmp(line, "sock") == 0)
		return parse_sock(st, v);
	if (strcmp(line, "proc") == 0)
		return parse_proc(st, v);
	if ((rc = parse_fd_key(st, line, v)) <= 0)
		return rc;
	return parse_misc(st, line, v) == 0 ? 0 : -1;
}

/* What every state must hold. */
static const char *
state_incomplete(const struct upgrade_state *st)
{
	if (st->exe == NULL || st->conf->path == NULL)
		return "no binary or configuration path";
	if (st->generation == 0 || st->conf->workers == 0 ||
	    st->conf->nlisten == 0)
		return "no generation, workers or listen address";
	if (st->stats_fd < 0 || st->ctl_fd < 0 ||
	    st->conf->pid_file == NULL || st->conf->stats_file == NULL ||
	    st->conf->control_socket == NULL)
		return "no stats segment, control socket or pid file";
	return NULL;
}

int
upgrade_state_parse(char *text, struct upgrade_state *st, char *err,
    size_t errlen)
{
	const char *why;
	char *line, *save = NULL;
	unsigned n = 0;

	upgrade_state_init(st);
	if ((st->conf = calloc(1, sizeof(*st->conf))) == NULL) {
		snprintf(err, errlen, "upgrade state: out of memory");
		return -1;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		n++;
		if (n == 1 ? strcmp(line, "gopro-upgrade 1") != 0 :
		    parse_line(st, line) < 0) {
			snprintf(err, errlen, "upgrade state: line %u is not "
			    "understood by this goprod (protocol %d)", n,
			    UPGRADE_PROTOCOL);
			goto fail;
		}
	}
	/* The file the path named when it was read is not known: the path. */
	if ((why = state_incomplete(st)) == NULL &&
	    (st->conf->source = strdup(st->conf->path)) != NULL)
		return 0;
	if (why == NULL)
		why = "out of memory";
	snprintf(err, errlen, "upgrade state: incomplete: %s", why);
fail:
	upgrade_state_free(st);
	return -1;
}

int
upgrade_state_read(int fd, struct upgrade_state *st, char *err,
    size_t errlen)
{
	char *buf = malloc(UPGRADE_STATE_MAX + 1);
	ssize_t n;
	int rc;

	if (buf == NULL) {
		snprintf(err, errlen, "upgrade state: out of memory");
		return -1;
	}
	n = pread(fd, buf, UPGRADE_STATE_MAX + 1, 0);
	if (n < 0 || n > UPGRADE_STATE_MAX) {
		snprintf(err, errlen, "upgrade state (fd %d): %s", fd,
		    n < 0 ? strerror(errno) : "too large");
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	if (memchr(buf, '\0', (size_t)n) != NULL) {
		snprintf(err, errlen, "upgrade state (fd %d): holds a NUL", fd);
		free(buf);
		return -1;
	}
	rc = upgrade_state_parse(buf, st, err, errlen);
	free(buf);
	return rc;
}
