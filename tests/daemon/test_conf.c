/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_conf.c - unit tests of conf.c: configuration files written into a
 * temporary directory are loaded and every value checked; the shipped
 * etc/gopro.conf loads; every kind of error names the file, the line and
 * the option, and all errors of a file are reported; the unit parsers on
 * their edge cases; conf_restart_needed.
 *
 * The tests pass as root and as any other user: the user and group are
 * only checked by a root goprod, so the identity tests branch on geteuid().
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <grp.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif

/* Appended to a file so that a root test does not need a "gopro" user. */
#define KEEP_IDENTITY "\nuser = \"\"\ngroup = \"\"\n"

struct fixture {
	char dir[64];
	char path[PATH_MAX];
	char err[CONF_ERR_MAX];
	struct gopro_conf *conf;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *tmp = getenv("TMPDIR");

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "%s/test_conf.XXXXXX",
	    tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/gopro.conf", fx->dir);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	conf_free(fx->conf);
	if ((d = opendir(fx->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", fx->dir,
			    de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

/* Write text as the config file and load it; conf_free of the last one. */
static int
load_raw(struct fixture *fx, const char *text)
{
	conf_free(fx->conf);
	fx->conf = NULL;
	write_file(fx->path, text, 0644);
	return conf_load(fx->path, &fx->conf, fx->err, sizeof(fx->err));
}

static int
load(struct fixture *fx, const char *text)
{
	char buf[8192];

	snprintf(buf, sizeof(buf), "%s%s", text, KEEP_IDENTITY);
	return load_raw(fx, buf);
}

static void
load_ok(struct fixture *fx, const char *text)
{
	if (load(fx, text) < 0)
		fail_msg("conf_load failed:\n%s\nfor:\n%s", fx->err, text);
	assert_non_null(fx->conf);
}

/* The error text holds "path:line: option: " (line 0: "path: option: "). */
static void
assert_error_at(const struct fixture *fx, int line, const char *option)
{
	char want[PATH_MAX + 128];

	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: %s: ", fx->path, line,
		    option);
	else
		snprintf(want, sizeof(want), "%s: %s: ", fx->path, option);
	if (strstr(fx->err, want) == NULL)
		fail_msg("expected \"%s\" in the errors:\n%s", want, fx->err);
}

static size_t
count_lines(const char *s)
{
	size_t n = *s != '\0';

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static bool
gopro_user_missing(void)
{
	return geteuid() == 0 &&
	    (getpwnam("gopro") == NULL || getgrnam("gopro") == NULL);
}

static uint16_t
port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void
assert_ipv4(const struct sockaddr_storage *ss, const char *addr,
    uint16_t port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	char text[INET_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, text,
	    sizeof(text)));
	assert_string_equal(text, addr);
	assert_int_equal(port_of(ss), port);
}

static void
assert_ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	assert_true(n >= t);
	assert_string_equal(s + n - t, tail);
}

/* ------------------------------------------------------------ loading */

static void
assert_defaults(const struct gopro_conf *c)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->listen[0].text, "0.0.0.0:8888");
	assert_ipv4(&c->listen[0].addr, "0.0.0.0", 8888);
	assert_int_equal(c->listen[0].addrlen, sizeof(struct sockaddr_in));
	assert_int_equal(c->backlog, 511);
	assert_true(c->workers_auto);
	assert_int_equal(c->workers, ncpu < 1 ? 1 : ncpu > 64 ? 64 : ncpu);
	assert_false(c->cpu_affinity);
	assert_true(c->pid_file[0] == '/');
	assert_ends_with(c->pid_file, "/goprod/goprod.pid");
	assert_ends_with(c->stats_file, "/goprod/goprod.stats");
	assert_ends_with(c->control_socket, "/goprod/goprod.sock");
	assert_null(c->metrics_listen);
	assert_int_equal(c->log_target, LOG_TARGET_SYSLOG);
	assert_null(c->log_file);
	assert_int_equal(c->log_level, LOG_INFO);
	assert_true(c->idle_timeout == 60 && c->frame_timeout == 30);
	assert_true(c->send_timeout == 60 && c->drain_timeout == 30);
	assert_true(c->goaway_grace == 1);
	assert_int_equal(c->max_body, 10485760);
	assert_int_equal(c->max_connections, 10000);
	assert_int_equal(c->output_high_water, 1048576);
	assert_int_equal(c->output_low_water, 262144);
	assert_string_equal(c->message_prefix, "Server says: ");
	assert_int_equal(c->message_prefix_len, 13);
	assert_false(c->auth.required);
	assert_null(c->auth.users_file);
	assert_int_equal(c->auth.max_attempts, 3);
	assert_true(c->auth.login_rate == 10);
	assert_int_equal(c->auth.login_burst, 20);
	assert_int_equal(c->auth.threads, 2);
	assert_int_equal(c->tls.ticket_rotation, 12 * 3600);
}

static void
test_empty_file_gives_defaults(void **state)
{
	struct fixture *fx = *state;

	if (gopro_user_missing()) {
		/* As root the default user must exist: two errors, no line. */
		assert_int_equal(load_raw(fx, ""), -1);
		assert_null(fx->conf);
		assert_error_at(fx, 0, "user");
		assert_error_at(fx, 0, "group");
		assert_int_equal(count_lines(fx->err), 2);
		load_ok(fx, "");
	} else {
		assert_int_equal(load_raw(fx, ""), 0);
		assert_string_equal(fx->conf->user, "gopro");
		assert_string_equal(fx->conf->group, "gopro");
	}
	assert_string_equal(fx->conf->path, fx->path);
	assert_defaults(fx->conf);
}

static void
test_every_value(void **state)
{
	struct fixture *fx = *state;
	char text[4096], users[128];
	const struct gopro_conf *c;

	snprintf(users, sizeof(users), "%s/users", fx->dir);
	write_file(users, "alice:$6$x$y\n", 0600);
	snprintf(text, sizeof(text),
	    "listen = {\"127.0.0.1:8001\", \"[::1]:8002\",\n"
	    "          \"*:8003\"}\n"
	    "backlog = 1024\nworkers = 4\nworker_cpu_affinity = auto\n"
	    "pid_file = \"/tmp/p\"\nstats_file = \"/tmp/s\"\n"
	    "control_socket = \"/tmp/c\"\nmetrics_listen = \"127.0.0.1:9188\"\n"
	    "log = \"file:/var/log/goprod.log\"\nlog_level = debug\n"
	    "idle_timeout = 1.5s\nframe_timeout = 250ms\nsend_timeout = 5m\n"
	    "drain_timeout = 1h\ngoaway_grace = 0\nmax_body = 512k\n"
	    "max_connections = 1000000\noutput_high_water = 2M\n"
	    "output_low_water = 4096\nmessage_prefix = \"\"\n"
	    "auth {\n required = yes\n users_file = \"%s\"\n"
	    " max_attempts = 1000\n login_rate = 0.5\n login_burst = 1\n"
	    " threads = 64\n}\n", users);
	load_ok(fx, text);
	c = fx->conf;
	assert_int_equal(c->nlisten, 3);
	assert_string_equal(c->listen[1].text, "[::1]:8002");
	assert_ipv4(&c->listen[0].addr, "127.0.0.1", 8001);
	assert_int_equal(c->listen[1].addr.ss_family, AF_INET6);
	assert_int_equal(c->listen[1].addrlen, sizeof(struct sockaddr_in6));
	assert_int_equal(port_of(&c->listen[1].addr), 8002);
	assert_ipv4(&c->listen[2].addr, "0.0.0.0", 8003);
	assert_int_equal(c->backlog, 1024);
	assert_int_equal(c->workers, 4);
	assert_false(c->workers_auto);
	assert_true(c->cpu_affinity);
	assert_string_equal(c->user, "");
	assert_string_equal(c->pid_file, "/tmp/p");
	assert_string_equal(c->stats_file, "/tmp/s");
	assert_string_equal(c->control_socket, "/tmp/c");
	assert_string_equal(c->metrics_listen, "127.0.0.1:9188");
	assert_int_equal(c->log_target, LOG_TARGET_FILE);
	assert_string_equal(c->log_file, "/var/log/goprod.log");
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_true(c->idle_timeout == 1.5 && c->frame_timeout == 0.25);
	assert_true(c->send_timeout == 300 && c->drain_timeout == 3600);
	assert_true(c->goaway_grace == 0);
	assert_int_equal(c->max_body, 524288);
	assert_int_equal(c->max_connections, 1000000);
	assert_int_equal(c->output_high_water, 2097152);
	assert_int_equal(c->output_low_water, 4096);
	assert_string_equal(c->message_prefix, "");
	assert_int_equal(c->message_prefix_len, 0);
	assert_true(c->auth.required);
	assert_string_equal(c->auth.users_file, users);
	assert_int_equal(c->auth.max_attempts, 1000);
	assert_true(c->auth.login_rate == 0.5);
	assert_int_equal(c->auth.login_burst, 1);
	assert_int_equal(c->auth.threads, 64);
}

static void
test_small_forms(void **state)
{
	struct fixture *fx = *state;

	/* workers auto unquoted, "stderr", a level in capitals, 0 = off. */
	load_ok(fx, "workers = auto\nlog = stderr\nlog_level = WARNING\n"
	    "idle_timeout = 0\nmetrics_listen = \"\"\n"
	    "auth {\n login_rate = 0\n}\n");
	assert_true(fx->conf->workers_auto);
	assert_int_equal(fx->conf->log_target, LOG_TARGET_STDERR);
	assert_int_equal(fx->conf->log_level, LOG_WARNING);
	assert_true(fx->conf->idle_timeout == 0);
	assert_null(fx->conf->metrics_listen);
	assert_true(fx->conf->auth.login_rate == 0);
	load_ok(fx, "tls {\n ticket_key_rotation = 2s\n}\n");
	assert_int_equal(fx->conf->tls.ticket_rotation, 2);
	load_ok(fx, "tls {\n ticket_key_rotation = 30m\n}\n");
	assert_int_equal(fx->conf->tls.ticket_rotation, 1800);
}

/* A second assignment of a list replaces the first, addresses included. */
static void
test_listen_reassigned(void **state)
{
	struct fixture *fx = *state;

	load_ok(fx, "listen = {\"127.0.0.1:1001\", \"127.0.0.1:1002\"}\n"
	    "listen = {\"127.0.0.2:1003\"}\n");
	assert_int_equal(fx->conf->nlisten, 1);
	assert_string_equal(fx->conf->listen[0].text, "127.0.0.2:1003");
	assert_ipv4(&fx->conf->listen[0].addr, "127.0.0.2", 1003);
	load_ok(fx, "listen += {\"127.0.0.1:1004\"}\n");
	assert_int_equal(fx->conf->nlisten, 2);
	assert_ipv4(&fx->conf->listen[0].addr, "0.0.0.0", 8888);
	assert_ipv4(&fx->conf->listen[1].addr, "127.0.0.1", 1004);
}

/* Turn the line that starts after "\n" at the first match into a comment. */
static void
comment_out(char *text, const char *line)
{
	char *p = strstr(text, line);

	assert_non_null(p);
	p[1] = '#';
}

/* The shipped file as a string, for tests that edit it. */
static void
read_shipped(char *text, size_t len)
{
	FILE *f = fopen(TOP_SRCDIR "/etc/gopro.conf", "r");
	size_t n;

	assert_non_null(f);
	n = fread(text, 1, len - 1, f);
	fclose(f);
	assert_true(n > 0 && n < len - 1);
	text[n] = '\0';
}

/* The line number of the first line of text that starts with what. */
static int
line_in(const char *text, const char *what)
{
	const char *p = strstr(text, what);
	int line = 1;

	assert_non_null(p);
	for (; text < p; text++)
		line += *text == '\n';
	return line + (*what == '\n');
}

static void
test_shipped_conf_loads(void **state)
{
	struct fixture *fx = *state;
	const char *shipped = TOP_SRCDIR "/etc/gopro.conf";
	struct gopro_conf *c = NULL;
	char text[16384];

	if (conf_load(shipped, &c, fx->err, sizeof(fx->err)) < 0) {
		/* Only the missing gopro user of a root test may fail it. */
		if (!gopro_user_missing())
			fail_msg("%s does not load:\n%s", shipped, fx->err);
		assert_non_null(strstr(fx->err, ": user: no such user"));
		assert_non_null(strstr(fx->err, ": group: no such group"));
		assert_int_equal(count_lines(fx->err), 2);
	} else {
		assert_string_equal(c->user, "gopro");
		conf_free(c);
	}
	/*
	 * Its values, whoever runs the test: the defaults but for the paths
	 * and the listen addresses, loopback only as in Debian's redis.
	 */
	read_shipped(text, sizeof(text));
	comment_out(text, "\nuser = ");	/* load() sets them to "" */
	comment_out(text, "\ngroup = ");
	load_ok(fx, text);
	assert_int_equal(fx->conf->nlisten, 2);
	assert_string_equal(fx->conf->listen[0].text, "127.0.0.1:8888");
	assert_string_equal(fx->conf->listen[1].text, "[::1]:8888");
	comment_out(text, "\nlisten = ");
	load_ok(fx, text);
	assert_string_equal(fx->conf->pid_file, "/run/goprod/goprod.pid");
	assert_string_equal(fx->conf->stats_file, "/run/goprod/goprod.stats");
	assert_string_equal(fx->conf->control_socket,
	    "/run/goprod/goprod.sock");
	assert_defaults(fx->conf);
}

static void
test_unreadable_files(void **state)
{
	struct fixture *fx = *state;
	char missing[PATH_MAX + 16];
	struct gopro_conf *c = (struct gopro_conf *)1;

	snprintf(missing, sizeof(missing), "%s/missing.conf", fx->dir);
	assert_int_equal(conf_load(missing, &c, fx->err, sizeof(fx->err)), -1);
	assert_null(c);
	assert_non_null(strstr(fx->err, missing));
	assert_non_null(strstr(fx->err, strerror(ENOENT)));
	assert_int_equal(conf_load(fx->dir, &c, fx->err, sizeof(fx->err)), -1);
	assert_non_null(strstr(fx->err, fx->dir));
	assert_non_null(strstr(fx->err, "directory"));
	if (geteuid() != 0) {
		write_file(fx->path, "", 0);
		assert_int_equal(conf_load(fx->path, &c, fx->err,
		    sizeof(fx->err)), -1);
		assert_non_null(strstr(fx->err, strerror(EACCES)));
	}
	/* No error buffer at all is allowed. */
	assert_int_equal(conf_load(missing, &c, NULL, 0), -1);
}

/* ------------------------------------------------------------ errors */

struct bad_case {
	const char *text;
	int line;
	const char *option;
	const char *detail;	/* also in the message */
};

static const struct bad_case bad_cases[] = {
	{ "backlog = 5\nbogus = 1\n", 2, "bogus", "unknown option" },
	{ "auth {\n\n nope = 1\n}\n", 3, "auth.nope", "unknown option" },
	{ "max_body = 10MB\n", 1, "max_body", "not a size" },
	{ "max_body = 0\n", 1, "max_body", "out of range" },
	{ "max_body = 2G\n", 1, "max_body", "1073741824" },
	{ "\nidle_timeout = banana\n", 2, "idle_timeout", "not a time" },
	{ "frame_timeout = 86401\n", 1, "frame_timeout", "too long" },
	{ "send_timeout = -1\n", 1, "send_timeout", "not a time" },
	{ "drain_timeout = 0\n", 1, "drain_timeout", "zero" },
	{ "tls {\n ticket_key_rotation = 0\n}\n", 2,
	    "tls.ticket_key_rotation", "out of range" },
	{ "tls {\n ticket_key_rotation = 1.5s\n}\n", 2,
	    "tls.ticket_key_rotation", "not a whole number of seconds" },
	{ "tls {\n ticket_key_rotation = 25h\n}\n", 2,
	    "tls.ticket_key_rotation", "from 1s to 86400s" },
	{ "listen = {\"1.2.3.4\"}\n", 1, "listen", ":port" },
	{ "listen = {\"::1:80\"}\n", 1, "listen", "brackets" },
	{ "listen = {\"127.0.0.1:0\"}\n", 1, "listen", "1 to 65535" },
	{ "listen = {\"127.0.0.1:65536\"}\n", 1, "listen", "1 to 65535" },
	{ "listen = {\"[127.0.0.1]:80\"}\n", 1, "listen", "cannot resolve" },
	{ "listen = {\"127.0.0.1:80\", \"*:80\",\n \"0.0.0.0:80\"}\n", 2,
	    "listen", "same address" },
	{ "\nlisten = {}\n", 2, "listen", "empty" },
	{ "metrics_listen = \"9188\"\n", 1, "metrics_listen", ":port" },
	{ "workers = 0\n", 1, "workers", "auto or" },
	{ "workers = 65\n", 1, "workers", "1 to 64" },
	{ "workers = lots\n", 1, "workers", "lots" },
	{ "backlog = 0\n", 1, "backlog", "out of range" },
	{ "backlog = 65536\n", 1, "backlog", "1 to 65535" },
	{ "backlog = -1\n", 1, "backlog", "not a whole number" },
	{ "max_connections = 1000001\n", 1, "max_connections", "range" },
	{ "worker_cpu_affinity = yes\n", 1, "worker_cpu_affinity",
	    "auto or off" },
	{ "output_high_water = 1k\n", 1, "output_high_water", "4096" },
	{ "output_high_water = 64k\n\noutput_low_water = 64k\n", 3,
	    "output_low_water", "output_high_water" },
	{ "output_high_water = 128k\n", 1, "output_low_water", "below" },
	{ "auth {\n required = true\n}\n", 2, "auth.required",
	    "users_file" },
	{ "auth {\n required = maybe\n}\n", 2, "auth.required",
	    "true or false" },
	{ "auth {\n users_file = \"/nonexistent/users\"\n}\n", 2,
	    "auth.users_file", "No such file" },
	{ "auth {\n users_file = \"/\"\n}\n", 2, "auth.users_file",
	    "not a regular file" },
	{ "auth {\n users_file = \"users\"\n}\n", 2, "auth.users_file",
	    "absolute" },
	{ "auth {\n max_attempts = 0\n}\n", 2, "auth.max_attempts", "1 to" },
	{ "auth {\n login_rate = -1\n}\n", 2, "auth.login_rate", "0 to" },
	{ "auth {\n login_rate = 1e3\n}\n", 2, "auth.login_rate", "1e3" },
	{ "auth {\n login_burst = 0\n}\n", 2, "auth.login_burst", "range" },
	{ "auth {\n threads = 65\n}\n", 2, "auth.threads", "1 to 64" },
	{ "pid_file = \"goprod.pid\"\n", 1, "pid_file", "absolute" },
	{ "stats_file = \"\"\n", 1, "stats_file", "absolute" },
	{ "log = \"file:goprod.log\"\n", 1, "log", "file:/" },
	{ "log = journal\n", 1, "log", "stderr, syslog" },
	{ "log_level = verbose\n", 1, "log_level", "debug" },
};

static void
test_each_error_names_file_line_option(void **state)
{
	struct fixture *fx = *state;
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];

		if (load(fx, bc->text) != -1)
			fail_msg("case %zu loaded:\n%s", i, bc->text);
		assert_null(fx->conf);
		assert_error_at(fx, bc->line, bc->option);
		if (strstr(fx->err, bc->detail) == NULL)
			fail_msg("case %zu: no \"%s\" in:\n%s", i, bc->detail,
			    fx->err);
		if (count_lines(fx->err) != 1)
			fail_msg("case %zu: one error expected:\n%s", i,
			    fx->err);
	}
}

static void
test_long_values(void **state)
{
	struct fixture *fx = *state;
	char text[4096], big[1100];

	memset(big, 'x', 1025);
	big[1025] = '\0';
	snprintf(text, sizeof(text), "message_prefix = \"%s\"\n", big);
	assert_int_equal(load(fx, text), -1);
	assert_error_at(fx, 1, "message_prefix");
	big[1024] = '\0';
	snprintf(text, sizeof(text), "message_prefix = \"%s\"\n", big);
	load_ok(fx, text);
	assert_int_equal(fx->conf->message_prefix_len, 1024);
	memset(big, 'd', 120);
	big[0] = '/';
	big[120] = '\0';
	snprintf(text, sizeof(text), "control_socket = \"%s\"\n", big);
	assert_int_equal(load(fx, text), -1);
	assert_error_at(fx, 1, "control_socket");
	assert_non_null(strstr(fx->err, "unix socket"));
}

static void
test_too_many_listen(void **state)
{
	struct fixture *fx = *state;
	char text[4096];
	size_t n = 0;
	int i;

	n += (size_t)snprintf(text, sizeof(text), "listen = {\n");
	for (i = 0; i < CONF_MAX_LISTEN + 2; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    " \"127.0.0.1:%d\",\n", 2000 + i);
	snprintf(text + n - 2, sizeof(text) - n + 2, "\n}\n");
	assert_int_equal(load(fx, text), -1);
	/* Element 17 is on line 18; reported once. */
	assert_error_at(fx, CONF_MAX_LISTEN + 2, "listen");
	assert_non_null(strstr(fx->err, "more than 16"));
	assert_int_equal(count_lines(fx->err), 1);
}

static void
test_all_errors_reported(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load(fx,
	    "max_body = 10MB\n"
	    "backlog = 511\n"
	    "idle_timeout = soon\n"
	    "auth {\n"
	    " threads = 0\n"
	    "}\n"
	    "workers = 100\n"
	    "typo_option = 1\n"
	    "backlog = nope\n"), -1);
	assert_error_at(fx, 1, "max_body");
	assert_error_at(fx, 3, "idle_timeout");
	assert_error_at(fx, 5, "auth.threads");
	assert_error_at(fx, 7, "workers");
	assert_error_at(fx, 8, "typo_option");
	/* An unknown option ends the parse: line 9 is not reached. */
	assert_int_equal(count_lines(fx->err), 5);
	assert_true(strstr(fx->err, ":1: max_body") <
	    strstr(fx->err, ":7: workers"));
}

static void
test_syntax_error(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load(fx, "backlog = 5\n\nbacklog 6\n"), -1);
	assert_non_null(strstr(fx->err, ":3: "));
	assert_non_null(strstr(fx->err, "backlog"));
	assert_non_null(strstr(fx->err, fx->path));
	assert_int_equal(load(fx, "message_prefix = \"open\n"), -1);
	assert_non_null(strstr(fx->err, fx->path));
}

/*
 * libconfuse 3.3 counts a # or // comment as three lines and a C comment
 * as one line too many: each case has its error on the line given.
 */
static const struct bad_case comment_cases[] = {
	{ "# one\n# two\n#\n##### four\nbacklog = x\n", 5, "backlog", "" },
	{ "// one\n//\n/// three\nbacklog = x\n", 4, "backlog", "" },
	{ "/* one line */\nbacklog = x\n", 2, "backlog", "" },
	{ "/* one\n two\n three */\nbacklog = x\n", 4, "backlog", "" },
	{ "/**\n ** two\n **/ backlog = x\n", 3, "backlog", "" },
	{ "workers = 1 # t\nmax_body = 1 // t\nidle_timeout = 1 /* t */\n"
	    "backlog = x\n", 4, "backlog", "" },
	{ "auth {\n # in a section\n // too\n /* and\n this */\n"
	    " threads = x\n}\n", 6, "auth.threads", "" },
	{ "message_prefix = \"# not // a /* comment\"\nbacklog = x\n", 2,
	    "backlog", "" },
	{ "message_prefix = 'two\nlines # not a comment'\nbacklog = x\n", 3,
	    "backlog", "" },
	{ "message_prefix = \"a \\\" # still\n in\"\nbacklog = x\n", 3,
	    "backlog", "" },
};

static void
test_lines_after_comments(void **state)
{
	struct fixture *fx = *state;
	size_t i;

	for (i = 0; i < sizeof(comment_cases) / sizeof(comment_cases[0]); i++) {
		const struct bad_case *bc = &comment_cases[i];

		if (load(fx, bc->text) != -1)
			fail_msg("case %zu loaded:\n%s", i, bc->text);
		assert_error_at(fx, bc->line, bc->option);
		if (count_lines(fx->err) != 1)
			fail_msg("case %zu: one error expected:\n%s", i,
			    fx->err);
	}
	/* What looks like a comment inside a value stays in the value. */
	load_ok(fx, "message_prefix = \"a#b//c/*d*/\" # comment\n"
	    "log = file:/var/log//goprod.log\n");
	assert_string_equal(fx->conf->message_prefix, "a#b//c/*d*/");
	assert_string_equal(fx->conf->log_file, "/var/log//goprod.log");
}

/* The case: errors in the shipped file, after all its comments. */
static void
test_lines_in_shipped_conf(void **state)
{
	struct fixture *fx = *state;
	char text[16384], *p;

	read_shipped(text, sizeof(text));
	comment_out(text, "\nuser = ");
	comment_out(text, "\ngroup = ");
	assert_non_null(p = strstr(text, "\nbacklog = 511"));
	memcpy(p + strlen("\nbacklog = "), "xyz", 3);
	assert_non_null(p = strstr(text, "\tthreads = 2"));
	p[strlen("\tthreads = ")] = 'y';
	assert_int_equal(load(fx, text), -1);
	assert_error_at(fx, line_in(text, "\nbacklog = "), "backlog");
	assert_error_at(fx, line_in(text, "\n\tthreads = "), "auth.threads");
	assert_int_equal(count_lines(fx->err), 2);
}

/* A file cut in the middle fails, and says where it ended. */
static void
test_unclosed(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load_raw(fx, "user = \"\"\ngroup = \"\"\nauth {"), -1);
	assert_non_null(strstr(fx->err, ":3: the file ends inside the section "
	    "\"auth\" opened on line 3"));
	assert_int_equal(load_raw(fx, "backlog = 5\nauth {\n threads = 2\n\n"),
	    -1);
	assert_non_null(strstr(fx->err, ":4: the file ends inside the section "
	    "\"auth\" opened on line 2"));
	assert_int_equal(load_raw(fx, "listen = {\"127.0.0.1:1\",\n"), -1);
	assert_non_null(strstr(fx->err, ":1: the file ends inside the list "
	    "\"listen\" opened on line 1"));
	assert_int_equal(load_raw(fx, "backlog = 5\n/* a\n\n"), -1);
	assert_non_null(strstr(fx->err, ":2: unterminated comment"));
	assert_int_equal(count_lines(fx->err), 1);
}

/* Strings that are not closed are named by the line where they begin. */
static void
test_unterminated_string(void **state)
{
	struct fixture *fx = *state;

	/* load_raw: the user = "" that load() appends would close them. */
	assert_int_equal(load_raw(fx, "backlog = 5\nmessage_prefix = \"open\n"
	    "backlog = 5\n\nworkers = 2\n"), -1);
	assert_non_null(strstr(fx->err, ":2: unterminated string"));
	assert_int_equal(count_lines(fx->err), 1);
	assert_int_equal(load_raw(fx, "\n\nmessage_prefix = 'open\n\n"), -1);
	assert_non_null(strstr(fx->err, ":3: unterminated string"));
}

/* A scalar option set twice is an error naming both lines. */
static void
test_duplicate_option(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load(fx, "message_prefix = \"a\"\n\n"
	    "message_prefix = \"b\"\n"), -1);
	assert_error_at(fx, 3, "message_prefix");
	assert_non_null(strstr(fx->err, "first set on line 1"));
	assert_int_equal(count_lines(fx->err), 1);
	assert_int_equal(load(fx, "auth {\n threads = 2\n}\nauth {\n"
	    " threads = 3\n}\n"), -1);
	assert_error_at(fx, 5, "auth.threads");
	assert_non_null(strstr(fx->err, "first set on line 2"));
	/* And in a module section. */
	assert_int_equal(load(fx, "module echo {\n timeout = 1s\n"
	    " timeout = 2s\n}\n"), -1);
	assert_error_at(fx, 3, "module.echo.timeout");
	assert_non_null(strstr(fx->err, "first set on line 2"));
	/* Setting the same value again is refused all the same. */
	assert_int_equal(load(fx, "backlog = 5\nbacklog = 5\n"), -1);
	assert_error_at(fx, 2, "backlog");
}

/* ${NAME} of an unset variable is an error; ${NAME:-default} is not. */
static void
test_environment_variables(void **state)
{
	struct fixture *fx = *state;

	setenv("GOPRO_TEST_SET", "from env ", 1);
	unsetenv("GOPRO_TEST_UNSET");
	load_ok(fx, "message_prefix = \"${GOPRO_TEST_SET}"
	    "${GOPRO_TEST_UNSET:-dflt}\"\n");
	assert_string_equal(fx->conf->message_prefix, "from env dflt");
	assert_int_equal(load(fx, "\nmessage_prefix = "
	    "\"x${GOPRO_TEST_UNSET}y\"\n"), -1);
	assert_non_null(strstr(fx->err, ":2: ${GOPRO_TEST_UNSET}: the "
	    "environment variable GOPRO_TEST_UNSET is not set"));
	assert_int_equal(load(fx, "log_level = ${GOPRO_TEST_UNSET}\n"), -1);
	assert_non_null(strstr(fx->err, ":1: ${GOPRO_TEST_UNSET}"));
	/* Single quotes are literal. */
	load_ok(fx, "message_prefix = '${GOPRO_TEST_UNSET}'\n");
	assert_string_equal(fx->conf->message_prefix, "${GOPRO_TEST_UNSET}");
	unsetenv("GOPRO_TEST_SET");
}

static void
test_nul_byte(void **state)
{
	struct fixture *fx = *state;
	static const char text[] = "backlog = 5\n\nworkers\0 = 2\n";
	FILE *f = fopen(fx->path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, sizeof(text) - 1, f),
	    sizeof(text) - 1);
	fclose(f);
	assert_int_equal(conf_load(fx->path, &fx->conf, fx->err,
	    sizeof(fx->err)), -1);
	assert_non_null(strstr(fx->err, ":3: a NUL byte"));
}

/* No two of the files goprod writes or reads by name may be one file. */
static void
test_paths_collide(void **state)
{
	struct fixture *fx = *state;
	char text[3 * PATH_MAX + 256], link[PATH_MAX + 8], users[PATH_MAX + 8];

	snprintf(text, sizeof(text), "pid_file = \"%s/a\"\n\n"
	    "stats_file = \"%s//./a\"\n", fx->dir, fx->dir);
	assert_int_equal(load(fx, text), -1);
	assert_error_at(fx, 3, "stats_file");
	assert_non_null(strstr(fx->err, "same file as pid_file (line 1)"));
	assert_int_equal(count_lines(fx->err), 1);
	/* Through a link to the directory, before either file exists. */
	snprintf(link, sizeof(link), "%s/link", fx->dir);
	assert_int_equal(symlink(fx->dir, link), 0);
	snprintf(text, sizeof(text), "control_socket = \"%s/s\"\n"
	    "log = \"file:%s/s\"\n", link, fx->dir);
	assert_int_equal(load(fx, text), -1);
	assert_error_at(fx, 2, "log");
	assert_non_null(strstr(fx->err, "same file as control_socket"));
	unlink(link);
	/* An existing users file, and the configuration file itself. */
	snprintf(users, sizeof(users), "%s/users", fx->dir);
	write_file(users, "", 0600);
	snprintf(text, sizeof(text), "auth {\n users_file = \"%s\"\n}\n"
	    "stats_file = \"%s\"\npid_file = \"%s\"\n", users, users,
	    fx->path);
	assert_int_equal(load(fx, text), -1);
	assert_error_at(fx, 5, "pid_file");
	assert_non_null(strstr(fx->err, "same file as the configuration file"));
	assert_error_at(fx, 2, "auth.users_file");
	assert_non_null(strstr(fx->err, "same file as stats_file (line 4)"));
	/* A default counts too: stats_file on the default pid_file. */
	load_ok(fx, "");
	snprintf(text, sizeof(text), "stats_file = \"%s\"\n",
	    fx->conf->pid_file);
	assert_int_equal(load(fx, text), -1);
	assert_error_at(fx, 1, "stats_file");
	assert_non_null(strstr(fx->err, "pid_file (its default)"));
	/* Different files are fine. */
	snprintf(text, sizeof(text), "pid_file = \"%s/p\"\nstats_file = "
	    "\"%s/st\"\n", fx->dir, fx->dir);
	load_ok(fx, text);
	unlink(users);
}

/* metrics_listen must not share a port with a listen address. */
static void
test_metrics_overlap(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load(fx, "listen = {\"127.0.0.1:7001\"}\n"
	    "metrics_listen = \"*:7001\"\n"), -1);
	assert_error_at(fx, 2, "metrics_listen");
	assert_non_null(strstr(fx->err, "overlaps the listen address "
	    "\"127.0.0.1:7001\""));
	assert_int_equal(load(fx, "listen = {\"127.0.0.1:7001\", \"[::1]:7002\"}"
	    "\nmetrics_listen = \"[::1]:7002\"\n"), -1);
	assert_error_at(fx, 2, "metrics_listen");
	load_ok(fx, "listen = {\"127.0.0.1:7001\"}\n"
	    "metrics_listen = \"127.0.0.1:7002\"\n");
	load_ok(fx, "listen = {\"127.0.0.1:7001\"}\n"
	    "metrics_listen = \"127.0.0.2:7001\"\n");
}

/* What goproctl still learns from a file that does not load. */
static void
test_where_salvage(void **state)
{
	struct fixture *fx = *state;
	struct conf_where w;

	assert_int_equal(load_raw(fx, "typo = 1\n# control_socket = \"/no\"\n"
	    "control_socket = \"/x/a.sock\" // trailing\n"
	    "stats_file = '/x/s'\npid_file = relative\n"
	    "listen = {\n \"127.0.0.1:9\", \"[::1]:9\"}\n"
	    "auth {\n stats_file = \"/in/a/section\"\n}\n"), -1);
	conf_where_salvage(fx->path, &w);
	assert_string_equal(w.control_socket, "/x/a.sock");
	assert_string_equal(w.stats_file, "/x/s");
	assert_ends_with(w.pid_file, "/goprod/goprod.pid");
	assert_string_equal(w.listen, "127.0.0.1:9");
	conf_where_free(&w);
	/* No file: every default. */
	conf_where_salvage("/nonexistent/gopro.conf", &w);
	assert_ends_with(w.control_socket, "/goprod/goprod.sock");
	assert_ends_with(w.stats_file, "/goprod/goprod.stats");
	assert_string_equal(w.listen, "0.0.0.0:8888");
	conf_where_free(&w);
	/* The last setting wins; a ${NAME} is not guessed at. */
	write_file(fx->path, "stats_file = \"/a\"\nstats_file = \"/b\"\n"
	    "control_socket = \"${RUN}/s\"\n", 0644);
	conf_where_salvage(fx->path, &w);
	assert_string_equal(w.stats_file, "/b");
	assert_ends_with(w.control_socket, "/goprod/goprod.sock");
	conf_where_free(&w);
}

/* Errors beyond the buffer are counted, never cut in the middle. */
static void
test_error_buffer_bounded(void **state)
{
	struct fixture *fx = *state;
	char text[8192], err[300];
	struct gopro_conf *c = NULL;
	size_t n = 0;
	char *line;
	int i;

	for (i = 0; i < 100; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    "backlog = %d\n", 100000 + i);
	write_file(fx->path, text, 0644);
	memset(err, 'Z', sizeof(err));
	assert_int_equal(conf_load(fx->path, &c, err, sizeof(err)), -1);
	assert_null(c);
	assert_true(strlen(err) < sizeof(err));
	assert_non_null(strstr(err, "more errors not shown)"));
	for (line = err; line != NULL; line = strchr(line, '\n')) {
		line += *line == '\n';
		if (strncmp(line, "(", 1) == 0)
			break;
		assert_int_equal(strncmp(line, fx->path, strlen(fx->path)), 0);
		assert_non_null(strstr(line, "backlog: "));
	}
	/* A buffer too small for one line still ends in a NUL. */
	assert_int_equal(conf_load(fx->path, &c, err, 10), -1);
	assert_int_equal(strlen(err), 9);
}

static void
test_identity(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load_raw(fx, "user = \"no-such-user-gopro\"\n"
	    "group = \"no-such-group-gopro\"\n"), geteuid() == 0 ? -1 : 0);
	if (geteuid() == 0) {
		assert_error_at(fx, 1, "user");
		assert_error_at(fx, 2, "group");
		assert_int_equal(count_lines(fx->err), 2);
		assert_int_equal(load_raw(fx, "user = root\ngroup = root\n"), 0);
		assert_string_equal(fx->conf->user, "root");
	} else {
		/* Not root: goprod cannot switch, the names are not looked up. */
		assert_string_equal(fx->conf->user, "no-such-user-gopro");
		assert_string_equal(fx->conf->group, "no-such-group-gopro");
	}
}

/* ------------------------------------------------------------ parsers */

static void
test_parse_size(void **state)
{
	static const char *bad[] = { "", "-1", "+1", "10MB", "10MB?", "1e99",
		"1.5M", " 1", "1 ", "k", "0x10", "1KK", "18446744073709551616",
		"17179869184G", "18014398509481984k" };
	uint64_t v;
	size_t i;

	assert_int_equal(conf_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(conf_parse_size("42", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(conf_parse_size("1k", &v), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(conf_parse_size("512K", &v), 0);
	assert_int_equal(v, 524288);
	assert_int_equal(conf_parse_size("10M", &v), 0);
	assert_int_equal(v, 10485760);
	assert_int_equal(conf_parse_size("1g", &v), 0);
	assert_int_equal(v, 1073741824);
	assert_int_equal(conf_parse_size("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(conf_parse_size("17179869183G", &v), 0);
	assert_true(v == 17179869183ULL << 30);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (conf_parse_size(bad[i], &v) != -1)
			fail_msg("size \"%s\" accepted", bad[i]);
	assert_int_equal(conf_parse_size(NULL, &v), -1);
}

static void
test_parse_time(void **state)
{
	static const struct {
		const char *s;
		double want;
	} good[] = {
		{ "0", 0 }, { "60", 60 }, { "60s", 60 }, { "1.5s", 1.5 },
		{ "250ms", 0.25 }, { "5m", 300 }, { "1h", 3600 },
		{ "0.5h", 1800 }, { "0ms", 0 }, { "007s", 7 },
	};
	static const char *bad[] = { "", "-1", "+1", "1e99", "1e3", "1.",
		".5", "5x", "5 s", " 5", "5S", "1.5.5", "inf", "nan", "s",
		"5sec", "5mss", "99999999999999999999999" };
	double v;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (conf_parse_time(good[i].s, &v) != 0)
			fail_msg("time \"%s\" refused", good[i].s);
		assert_true(v > good[i].want - 1e-9 && v < good[i].want + 1e-9);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (conf_parse_time(bad[i], &v) != -1)
			fail_msg("time \"%s\" accepted", bad[i]);
	assert_int_equal(conf_parse_time(NULL, &v), -1);
}

static void
test_parse_address(void **state)
{
	static const char *bad[] = { "", "127.0.0.1", "127.0.0.1:", ":80",
		"127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:80x",
		"127.0.0.1:+80", "127.0.0.1: 80", "127.0.0.1:000080", "::1:80",
		"[::1]80", "[::1", "[]:80", "[127.0.0.1]:80", "*:" };
	const struct sockaddr_in6 *sin6;
	struct sockaddr_storage ss;
	socklen_t len;
	size_t i;

	assert_int_equal(conf_parse_address("127.0.0.1:8888", &ss, &len), 0);
	assert_ipv4(&ss, "127.0.0.1", 8888);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(conf_parse_address("*:65535", &ss, &len), 0);
	assert_ipv4(&ss, "0.0.0.0", 65535);
	assert_int_equal(conf_parse_address("[::1]:1", &ss, &len), 0);
	sin6 = (const struct sockaddr_in6 *)&ss;
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	assert_int_equal(port_of(&ss), 1);
	assert_int_equal(conf_parse_address("[::]:8888", &ss, &len), 0);
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr));
	/* A name from /etc/hosts: resolved, first result taken. */
	assert_int_equal(conf_parse_address("localhost:80", &ss, &len), 0);
	assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
	assert_int_equal(port_of(&ss), 80);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (conf_parse_address(bad[i], &ss, &len) != -1)
			fail_msg("address \"%s\" accepted", bad[i]);
	assert_int_equal(conf_parse_address(NULL, &ss, &len), -1);
}

/* ------------------------------------------------------------ restart */

static struct gopro_conf *
load_copy(struct fixture *fx, const char *text)
{
	struct gopro_conf *c;

	load_ok(fx, text);
	c = fx->conf;
	fx->conf = NULL;
	return c;
}

static void
test_restart_needed(void **state)
{
	struct fixture *fx = *state;
	struct gopro_conf *a, *b;
	char buf[256];

	a = load_copy(fx, "log = stderr\n");
	b = load_copy(fx, "log = stderr\nidle_timeout = 5s\nworkers = 3\n"
	    "listen = {\"127.0.0.1:1\"}\nmessage_prefix = \"x\"\n"
	    "log_level = debug\nauth {\n threads = 3\n}\n");
	strcpy(buf, "junk");
	conf_restart_needed(a, b, buf, sizeof(buf));
	assert_string_equal(buf, "");
	conf_free(b);
	b = load_copy(fx, "log = \"file:/tmp/x.log\"\n"
	    "pid_file = \"/tmp/x.pid\"\nmetrics_listen = \"127.0.0.1:9\"\n"
	    "stats_file = \"/tmp/x.stats\"\ncontrol_socket = \"/tmp/x.sock\"\n");
	conf_restart_needed(a, b, buf, sizeof(buf));
	assert_string_equal(buf, "pid_file, stats_file, control_socket, "
	    "metrics_listen, log");
	/* A bounded buffer is cut, and terminated. */
	conf_restart_needed(a, b, buf, 12);
	assert_string_equal(buf, "pid_file, s");
	conf_free(a);
	a = load_copy(fx, "log = \"file:/tmp/y.log\"\n"
	    "pid_file = \"/tmp/x.pid\"\nmetrics_listen = \"127.0.0.1:9\"\n"
	    "stats_file = \"/tmp/x.stats\"\ncontrol_socket = \"/tmp/x.sock\"\n");
	conf_restart_needed(a, b, buf, sizeof(buf));
	assert_string_equal(buf, "log");
	conf_free(a);
	a = load_copy(fx, "");
	conf_free(b);
	b = load_copy(fx, "");
	free(b->user);
	b->user = strdup("someone");
	free(b->group);
	b->group = NULL;
	conf_restart_needed(a, b, buf, sizeof(buf));
	assert_string_equal(buf, "user, group");
	conf_restart_needed(NULL, b, buf, sizeof(buf));
	assert_string_equal(buf, "");
	conf_free(a);
	conf_free(b);
	conf_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_empty_file_gives_defaults),
		T(test_every_value),
		T(test_small_forms),
		T(test_listen_reassigned),
		T(test_shipped_conf_loads),
		T(test_unreadable_files),
		T(test_each_error_names_file_line_option),
		T(test_long_values),
		T(test_too_many_listen),
		T(test_all_errors_reported),
		T(test_syntax_error),
		T(test_lines_after_comments),
		T(test_lines_in_shipped_conf),
		T(test_unclosed),
		T(test_unterminated_string),
		T(test_duplicate_option),
		T(test_environment_variables),
		T(test_nul_byte),
		T(test_paths_collide),
		T(test_metrics_overlap),
		T(test_where_salvage),
		T(test_error_buffer_bounded),
		T(test_identity),
		T(test_parse_size),
		T(test_parse_time),
		T(test_parse_address),
		T(test_restart_needed),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
