/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * goprod.c - the daemon's entry point: options, the configuration check
 * (-t), foreground or background, then the master.
 */
#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "log.h"
#include "master.h"

#define DEFAULT_CONF SYSCONFDIR "/gopro.conf"

static void __attribute__((noreturn))
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: goprod [-dfhtV] [-c file]\n"
	    "  -c file   configuration file (default %s)\n"
	    "  -d        log at debug level\n"
	    "  -f        stay in the foreground, log to stderr\n"
	    "  -t        check the configuration and exit\n"
	    "  -V        print the version and exit\n"
	    "  -h        this help\n", DEFAULT_CONF);
	exit(code);
}

struct options {
	const char *conf_path;
	bool check;
	bool foreground;
	bool debug;
};

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 't' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->conf_path = DEFAULT_CONF;
	while ((ch = getopt_long(argc, argv, "c:dfhtV", longopts, NULL)) != -1)
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
		case 'V':
			printf("goprod %s\n", PACKAGE_VERSION);
			exit(0);
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	if (optind != argc)
		usage(2);
}

/* -t: everything a start would check, without binding a socket. */
static int
check_config(const char *path, const struct gopro_conf *conf)
{
	char err[CONF_ERR_MAX];

	if (conf->auth.users_file != NULL &&
	    auth_users_check(conf->auth.users_file, err, sizeof(err)) < 0) {
		fprintf(stderr, "goprod: %s\n", err);
		return 1;
	}
	printf("goprod: configuration file %s is ok\n", path);
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
	/* Reloads re-read the file after chdir("/"): keep an absolute path. */
	if ((abs_path = realpath(o.conf_path, NULL)) != NULL)
		o.conf_path = abs_path;
	if (conf_load(o.conf_path, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "goprod: configuration errors:\n%s", err);
		if (*err && err[strlen(err) - 1] != '\n')
			fputc('\n', stderr);
		goto done;
	}
	if (o.check) {
		rc = check_config(o.conf_path, conf);
		conf_free(conf);
		goto done;
	}
	start_logging(&o, conf);
	master_init(&m, conf, o.foreground, o.debug);
	rc = master_run(&m);
done:
	free(abs_path);
	return rc;
}
