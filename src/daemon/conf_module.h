/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_module.h - the module NAME { ... } sections of gopro.conf, private
 * to conf.c: the host's options of a module (path, commands, timeout,
 * max_inflight) are checked here; every other key is the module's own
 * option, kept as text with its line for module.c, which knows the
 * module's option table.
 */
#ifndef GOPRO_CONF_MODULE_H
#define GOPRO_CONF_MODULE_H

#include <stdbool.h>

#include <confuse.h>

#include "conf.h"

/* conf.c's "file:line: option: message" reporter. */
typedef void conf_module_report_fn(int line, const char *option,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The section for cfg_init's option table. */
cfg_opt_t conf_module_section(void);
/* Before a parse: forget the previous one, report through rep. */
void conf_module_begin(conf_module_report_fn *rep);
/* After cfg_init: the validators of the host's options. */
void conf_module_validators(cfg_t *cfg);
/* From libconfuse's error callback: true when key is a module's option. */
bool conf_module_unknown(cfg_t *sec, const char *key);
/* After a clean parse: check and copy the sections into c; -1 on error. */
int conf_module_copy(cfg_t *cfg, struct gopro_conf *c);
void conf_module_free(struct gopro_conf *c);

/* "module.path", ...: the host's options of a module section. */
#define CONF_MODULE_OPTIONS 4
const char *const *conf_module_option_names(void);

#endif /* GOPRO_CONF_MODULE_H */
