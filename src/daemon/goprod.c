/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * goprod.c - the daemon's entry point: options, the configuration check
 * (-t), foreground or background, then the master; or, when a master
 * executed this binary in a binary upgrade (UPGRADE_ENV is set), the
 * master again, taking over its predecessor's state.
 */
#include "config.h"

#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "conf.h"
#include "daemon.h"
#include "log.h"
#include "master.h"
#include "proctitle.h"
#include "readable.h"
#include "upgrade.h"
#include "module.h"

#define DEFAULT_CONF SYSCONFDIR "/gopro.conf"
/* A build may carry a tag (-DGOPRO_BUILD_TAG='"..."'): the tests' second build. */
#ifdef GOPRO_BUILD_TAG
#define VERSION_TEXT "goprod " PACKAGE_VERSION " (" GOPRO_BUILD_TAG ")"
#else
#define VERSION_TEXT "goprod " PACKAGE_VERSION
#endif

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: goprod [-dfhqTtV] [-c file]\n"
	    "  -c, --config file  configuration file (default %s)\n"
	    "  -d, --debug        log at debug level\n"
	    "  -f, --foreground   stay in the foreground, log to stderr\n"
	    "  -t, --check        check the configuration and exit\n"
	    "  -T, --dump         check it, then print it with every default "
	    "filled in\n"
	    "  -q, --quiet        with -t, print errors only\n"
	    "  -V, --version      print the version and build options, exit\n"
	    "  -h, --help         this help\n", DEFAULT_CONF);
}

/* One line that says what was wrong (getopt's own), then where to look. */
static void __attribute__((noreturn))
usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "goprod: %s%s (try 'goprod -h')\n", what, arg);
	exit(2);
}

/* -V: the version, then what this binary was built with (nginx -V). */
static void __attribute__((noreturn))
print_version(void)
{
	printf("%s\n", VERSION_TEXT);
	printf("built with: systemd notify %s, TLS no, sanitizers %s\n",
#ifdef HAVE_SYSTEMD
	    "yes",
#else
	    "no",
#endif
#if defined(__SANITIZE_ADDRESS__)
	    "address,undefined"
#else
	    "no"
#endif
	    );
	printf("default configuration file: %s\n", DEFAULT_CONF);
	printf("compiler: %s\n", __VERSION__);
	exit(0);
}

struct options {
	const char *conf_path;
	bool check;
	bool dump;
	bool quiet;
	bool foreground;
	bool debug;
};

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 't' },
		{ "dump", no_argument, NULL, 'T' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char opt[3] = "-?";
	int ch;

	memset(o, 0, sizeof(*o));
	o->conf_path = DEFAULT_CONF;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:dfhqTtV", longopts,
	    NULL)) != -1)
		switch (ch) {
		case 'c':
			o->conf_path = optarg;
			break;
		case 'd':
			o->debug = true;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 't':
			o->check = true;
			break;
		case 'T':
			o->dump = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'V':
			print_version();
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			usage_error("option needs a value: ",
			    argv[optind - 1]);
		default:
			opt[1] = (char)optopt;
			usage_error("unknown option ",
			    optopt ? opt : argv[optind - 1]);
		}
	if (optind != argc)
		usage_error("unexpected argument ", argv[optind]);
	if (o->quiet && !o->check)
		usage_error("-q goes with -t", "");
}

/*
 * Reloads re-read the file after chdir("/"), so a relative path is made
 * absolute, but links are not resolved: a reload must open the path as
 * given, so that a link swapped to a new file (config management, a
 * Kubernetes ConfigMap) is followed to it.
 */
static char *
absolute_path(const char *path)
{
	char cwd[PATH_MAX], *abs;

	if (path[0] == '/')
		return strdup(path);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	if (asprintf(&abs, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "",
	    path) < 0)
		return NULL;
	return abs;
}

/* -t: everything a start would check, without binding a socket. */
static int
check_config(const char *path, struct gopro_conf *conf, bool quiet)
{
	char err[CONF_ERR_MAX];

	uid_t uid;
	gid_t gid;

	if (conf->auth.users_file != NULL &&
	    auth_users_check(conf->auth.users_file, err, sizeof(err)) < 0) {
		fprintf(stderr, "goprod: %s\n", err);
		return 1;
	}
	if (modules_ready(conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "goprod: module errors:\n%s\n", err);
		return 1;
	}
	if (daemon_lookup_ids(conf->user, conf->group, &uid, &gid, err,
	    sizeof(err)) < 0 || readable_check(conf, uid, gid, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "goprod: %s\n", err);
		return 1;
	}
	if (!quiet)
		printf("goprod: configuration file %s is ok\n", path);
	/* The master checking this binary before an upgrade asks for this. */
	if (getenv(UPGRADE_CHECK_ENV) != NULL)
		printf("%s (%s)\n", UPGRADE_BANNER, VERSION_TEXT);
	return 0;
}

static void
start_logging(const struct options *o, const struct gopro_conf *conf)
{
	int level = o->debug ? LOG_DEBUG : conf->log_level;

	if (o->foreground) {
		log_open(LOG_TARGET_STDERR, NULL, level);
		return;
	}
	if (log_open(conf->log_target, conf->log_file, level) < 0)
		fatal("cannot open log file %s", conf->log_file);
}

/* This image was executed by a master upgrading itself: take over. */
static int
resume_upgrade(const struct options *o, char **argv, const char *env)
{
	struct upgrade_state st;
	struct master m;
	char err[CONF_ERR_MAX];
	int fd = -1, old = -1;

	if (sscanf(env, "%d %d", &fd, &old) != 2)
		fatalx("upgrade: %s=\"%s\" is not \"fd fd\"", UPGRADE_ENV, env);
	if (upgrade_state_read(fd, &st, err, sizeof(err)) < 0)
		master_upgrade_fallback(fd, old, argv, err);
	start_logging(o, st.conf);
	return master_resume(&m, &st, fd, old, argv);
}

int
main(int argc, char **argv)
{
	struct options o;
	struct gopro_conf *conf;
	struct master m;
	char err[CONF_ERR_MAX], *abs_path;
	int rc = 1;

	parse_options(argc, argv, &o);
	log_init("goprod");
	master_set_version(VERSION_TEXT);
	if (getenv(UPGRADE_ENV) != NULL) {
		/* Taken out of the environment before proctitle_init copies
		 * it, so that no copy of the variable is dropped by unsetenv
		 * (LeakSanitizer reported the dropped string). */
		char state[64];

		snprintf(state, sizeof(state), "%s", getenv(UPGRADE_ENV));
		unsetenv(UPGRADE_ENV);
		return resume_upgrade(&o, proctitle_init(argc, argv), state);
	}
	if ((abs_path = absolute_path(o.conf_path)) == NULL)
		fatal("%s", o.conf_path);
	o.conf_path = abs_path;
	if (conf_load_print(o.conf_path, o.dump ? stdout : NULL, &conf, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "goprod: configuration errors:\n%s", err);
		if (*err && err[strlen(err) - 1] != '\n')
			fputc('\n', stderr);
		goto done;
	}
	if (o.check || o.dump) {
		rc = check_config(o.conf_path, conf, o.quiet || o.dump);
		conf_free(conf);
		goto done;
	}
	if (modules_ready(conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "goprod: module errors:\n%s\n", err);
		conf_free(conf);
		goto done;
	}
	/* From here on nothing points into argv: it becomes the title. */
	(void)proctitle_init(argc, argv);
	start_logging(&o, conf);
	master_init(&m, conf, o.foreground, o.debug);
	rc = master_run(&m);
done:
	free(abs_path);
	return rc;
}
