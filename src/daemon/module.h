/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * module.h - handler modules on the host side: opening the files a
 * generation will run, loading and checking them in a probe process, and
 * running them in the workers behind the request pipeline.
 *
 * Modules never run in the master.  The master only opens each module's
 * file (modules_open) and keeps the descriptor with the generation's
 * config; a probe child loads them all through /proc/self/fd/N and checks
 * ABI, options and the module's own check (modules_probe), and the
 * generation's workers load the same descriptors (modules_start), so a
 * worker runs exactly the file that was validated, whatever was installed
 * at the path since.
 */
#ifndef GOPRO_MODULE_HOST_H
#define GOPRO_MODULE_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "gopro/module.h"
#include "pipeline.h"

struct worker;
struct conn;

/* A module's reply body may be this much larger than max_body. */
#define MODULE_REPLY_EXTRA 1024u

/* One module in this process. */
struct module_inst {
	const struct conf_module *conf;  /* NULL: the default echo */
	const char *name;
	struct gopro_module desc;        /* the module's, zero-extended */
	void *dl;                        /* NULL for a built-in */
	union gopro_option_value values[CONF_MAX_MODULE_OPTIONS];
	uint8_t commands[256];
	unsigned ncommands;
	void *state;
	bool started;
	struct pipeline_handler h;
};

struct modules {
	struct module_inst inst[CONF_MAX_MODULES + 1];
	size_t n;
	struct module_inst *by_command[256];
	struct module_inst *last;        /* called last (watchdog.c) */
};

/* Master: open every module file of conf (conf_free closes them). */
int modules_open(struct gopro_conf *conf, char *err, size_t errlen);
/*
 * Load and check every module of conf in a short-lived child: 0, or -1
 * with "file:line: module.NAME: why" lines in err.
 */
int modules_probe(const struct gopro_conf *conf, char *err, size_t errlen);
/* Both, as goprod -t, a start and a reload do before a new generation. */
int modules_ready(struct gopro_conf *conf, char *err, size_t errlen);
/* The same in this process (the probe child, tests). */
int modules_load(struct modules *m, const struct gopro_conf *conf, char *err,
    size_t errlen);
void modules_unload(struct modules *m);

/* Worker: load, then init every module on w's loop and pipeline. */
int modules_start(struct modules *m, struct worker *w, char *err,
    size_t errlen);
void modules_stop(struct modules *m);
void modules_conn_open(struct modules *m, struct conn *c);
void modules_conn_close(struct modules *m, struct conn *c);

/* The built-in modules, by name (echo.c). */
const struct gopro_module *module_builtin(const char *name);

#endif /* GOPRO_MODULE_HOST_H */
