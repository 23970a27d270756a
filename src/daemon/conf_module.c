/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_module.c - the module sections of gopro.conf (see conf_module.h).
 *
 *   module NAME {
 *       path = "/usr/lib/gopro/modules/NAME.so"   # absent: built-in NAME
 *       commands = { "MESSAGE", "0x10" }           # absent: the module's
 *       timeout = 5s
 *       max_inflight = 64
 *       any_option_of_the_module = "value"
 *   }
 *
 * The section is parsed with CFGF_KEYSTRVAL, so libconfuse keeps the keys
 * it does not know as strings; it still reports each through the error
 * callback, with the line, which is how the lines of the module's options
 * are learnt (conf_module_unknown).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf_module.h"
#include "gopro/gopro.h"

#define KEYS_MAX (CONF_MAX_MODULES * (CONF_MAX_MODULE_OPTIONS + 4))
#define MAX_INFLIGHT_MAX 65535
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

/* A key seen in a module section, with its line. */
struct seen_key {
	char title[64];
	char key[64];
	int line;
	bool unknown;    /* the module's own option */
};

static struct {
	conf_module_report_fn *report;
	struct seen_key keys[KEYS_MAX];
	unsigned nkeys;
} ld;

cfg_opt_t
conf_module_section(void)
{
	static cfg_opt_t opts[] = {
		CFG_STR("path", NULL, CFGF_NONE),
		CFG_STR_LIST("commands", NULL, CFGF_NONE),
		CFG_STR("timeout", "5s", CFGF_NONE),
		CFG_STR("max_inflight", "64", CFGF_NONE),
		CFG_END()
	};
	cfg_opt_t sec = CFG_SEC("module", opts, CFGF_MULTI | CFGF_TITLE |
	    CFGF_NO_TITLE_DUPES | CFGF_KEYSTRVAL);

	return sec;
}

const char *const *
conf_module_option_names(void)
{
	static const char *const names[CONF_MODULE_OPTIONS + 1] = {
		"module.path", "module.commands", "module.timeout",
		"module.max_inflight", NULL,
	};

	return names;
}

void
conf_module_begin(conf_module_report_fn *rep)
{
	memset(&ld, 0, sizeof(ld));
	ld.report = rep;
}

static void
remember(cfg_t *sec, const char *key, bool unknown)
{
	struct seen_key *k;

	if (ld.nkeys >= KEYS_MAX || sec->title == NULL)
		return;
	k = &ld.keys[ld.nkeys++];
	snprintf(k->title, sizeof(k->title), "%s", sec->title);
	snprintf(k->key, sizeof(k->key), "%s", key);
	k->line = sec->line;
	k->unknown = unknown;
}

static bool
is_list(const cfg_opt_t *opt)
{
	return (opt->flags & CFGF_LIST) != 0;
}

static int
line_of(const char *title, const char *key)
{
	for (unsigned i = 0; i < ld.nkeys; i++)
		if (strcmp(ld.keys[i].title, title) == 0 &&
		    (key == NULL || strcmp(ld.keys[i].key, key) == 0))
			return ld.keys[i].line;
	return 0;
}

/* A key set twice in one section: both lines, as for the top level. */
static void
report_again(cfg_t *sec, const char *key, int first)
{
	char name[160];

	snprintf(name, sizeof(name), "module.%s.%s", sec->title, key);
	ld.report(sec->line, name, "set again, first set on line %d "
	    "(expected each option once)", first);
}

static int
note_line(cfg_t *sec, cfg_opt_t *opt)
{
	int first;

	if (sec->title == NULL)
		return 0;
	/* A list's validator runs once per element: keep the first. */
	if ((first = line_of(sec->title, opt->name)) == 0)
		remember(sec, opt->name, false);
	else if (!is_list(opt))
		report_again(sec, opt->name, first);
	return 0;
}

void
conf_module_validators(cfg_t *cfg)
{
	cfg_set_validate_func(cfg, "module|path", note_line);
	cfg_set_validate_func(cfg, "module|commands", note_line);
	cfg_set_validate_func(cfg, "module|timeout", note_line);
	cfg_set_validate_func(cfg, "module|max_inflight", note_line);
}

bool
conf_module_unknown(cfg_t *sec, const char *key)
{
	int first;

	if (sec->name == NULL || strcmp(sec->name, "module") != 0)
		return false;
	if (sec->title != NULL && (first = line_of(sec->title, key)) > 0)
		report_again(sec, key, first);
	else
		remember(sec, key, true);
	return true;
}

/* ------------------------------------------------------------ checks */

static void report_opt(const struct conf_module *m, const char *key,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
report_opt(const struct conf_module *m, const char *key, const char *fmt,
    ...)
{
	char name[160], msg[512];
	int line = line_of(m->name, key);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(name, sizeof(name), "module.%s.%s", m->name, key);
	ld.report(line > 0 ? line : m->line, name, "%s", msg);
}

/* "MESSAGE" or a number 0x10..0xFF (or 1): the codes a module may claim. */
static int
parse_command(const char *s, uint8_t *code)
{
	unsigned long v;
	char *end;

	if (strcasecmp(s, "MESSAGE") == 0) {
		*code = GOPRO_CMD_MESSAGE;
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || v > 0xFF ||
	    (v != GOPRO_CMD_MESSAGE && v < 0x10))
		return -1;
	*code = (uint8_t)v;
	return 0;
}

static int
copy_commands(cfg_t *sec, struct conf_module *m)
{
	unsigned n = cfg_size(sec, "commands");
	int rc = 0;

	for (unsigned i = 0; i < n && i < 256; i++) {
		const char *s = cfg_getnstr(sec, "commands", i);

		if (parse_command(s, &m->commands[m->ncommands]) < 0) {
			report_opt(m, "commands", "\"%s\" cannot be given to a "
			    "module (expected \"MESSAGE\" or a code from 0x10 "
			    "to 0xFF)", s);
			rc = -1;
			continue;
		}
		m->ncommands++;
	}
	return rc;
}

static int
copy_numbers(cfg_t *sec, struct conf_module *m)
{
	const char *t = cfg_getstr(sec, "timeout");
	const char *mi = cfg_getstr(sec, "max_inflight");
	uint64_t n = 0;
	int rc = 0;

	if (conf_parse_time(t, &m->timeout) < 0 || m->timeout <= 0 ||
	    m->timeout > 86400) {
		report_opt(m, "timeout", "\"%s\" is not a time from 1ms to 1d "
		    "(expected e.g. 250ms, 5s, 1m)", t);
		rc = -1;
	}
	if (conf_parse_size(mi, &n) < 0 || n < 1 || n > MAX_INFLIGHT_MAX ||
	    strspn(mi, "0123456789") != strlen(mi)) {
		report_opt(m, "max_inflight", "\"%s\" is not a whole number "
		    "from 1 to 65535", mi);
		rc = -1;
	}
	m->max_inflight = (unsigned)n;
	return rc;
}

static int
copy_path(cfg_t *sec, struct conf_module *m)
{
	const char *p = cfg_getstr(sec, "path");

	if (p == NULL || *p == '\0')
		return 0;
	if (*p != '/') {
		report_opt(m, "path", "\"%s\" is not an absolute path "
		    "(expected /path/to/module.so)", p);
		return -1;
	}
	return (m->path = strdup(p)) == NULL ? -1 : 0;
}

/* The module's own options: every key the host does not know. */
static int
copy_own_options(cfg_t *sec, struct conf_module *m)
{
	for (unsigned i = 0; i < ld.nkeys; i++) {
		const struct seen_key *k = &ld.keys[i];
		struct conf_module_opt *o;
		const char *v;

		if (!k->unknown || strcmp(k->title, m->name) != 0)
			continue;
		if (m->nopts >= CONF_MAX_MODULE_OPTIONS) {
			report_opt(m, k->key, "%s: too many options in one "
			    "module section", "over 32");
			return -1;
		}
		v = cfg_getstr(sec, k->key);
		o = &m->opts[m->nopts++];
		o->line = k->line;
		if ((o->key = strdup(k->key)) == NULL ||
		    (o->value = strdup(v != NULL ? v : "")) == NULL)
			return -1;
	}
	return 0;
}

static int
copy_one(cfg_t *sec, struct conf_module *m)
{
	int rc = 0;

	m->fd = -1;
	if ((m->name = strdup(cfg_title(sec))) == NULL)
		return -1;
	m->line = line_of(m->name, NULL);
	if (m->line == 0)
		m->line = sec->line;
	/* The name is a label in stats and metrics: keep it plain. */
	if (*m->name == '\0' || strlen(m->name) >= 32 ||
	    strspn(m->name, NAME_CHARS) != strlen(m->name)) {
		ld.report(m->line, "module", "\"%s\" is not a module name "
		    "(expected 1 to 31 of A-Z a-z 0-9 _ -)", m->name);
		rc = -1;
	}
	if (copy_path(sec, m) < 0)
		rc = -1;
	if (copy_commands(sec, m) < 0 || copy_numbers(sec, m) < 0)
		rc = -1;
	if (copy_own_options(sec, m) < 0)
		rc = -1;
	return rc;
}

/* Two modules may not claim the same command. */
static int
check_claims(const struct gopro_conf *c)
{
	const struct conf_module *owner[256] = { NULL };
	char code[8];
	int rc = 0;

	for (size_t i = 0; i < c->nmodules; i++)
		for (unsigned j = 0; j < c->modules[i].ncommands; j++) {
			uint8_t k = c->modules[i].commands[j];

			if (owner[k] != NULL && owner[k] != &c->modules[i]) {
				snprintf(code, sizeof(code), "0x%02X", k);
				report_opt(&c->modules[i], "commands", "%s is "
				    "already served by another module", code);
				rc = -1;
			}
			owner[k] = &c->modules[i];
		}
	return rc;
}

int
conf_module_copy(cfg_t *cfg, struct gopro_conf *c)
{
	unsigned n = cfg_size(cfg, "module");
	int rc = 0;

	if (n > CONF_MAX_MODULES) {
		ld.report(cfg_getnsec(cfg, "module", CONF_MAX_MODULES)->line,
		    "module", "more than %d module sections", CONF_MAX_MODULES);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		if (copy_one(cfg_getnsec(cfg, "module", i),
		    &c->modules[i]) < 0)
			rc = -1;
		c->nmodules++;
	}
	if (rc == 0)
		rc = check_claims(c);
	return rc;
}

void
conf_module_free(struct gopro_conf *c)
{
	for (size_t i = 0; i < c->nmodules; i++) {
		struct conf_module *m = &c->modules[i];

		free(m->name);
		free(m->path);
		for (size_t j = 0; j < m->nopts; j++) {
			free(m->opts[j].key);
			free(m->opts[j].value);
		}
		if (m->fd >= 0)
			close(m->fd);
	}
	c->nmodules = 0;
}
