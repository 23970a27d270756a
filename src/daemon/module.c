/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * module.c - loading, checking and running handler modules (module.h).
 *
 * Loading a module: dlopen("/proc/self/fd/N", RTLD_NOW | RTLD_LOCAL) on
 * the descriptor the master opened when it validated the generation, so
 * that replacing the file at its path (a deploy) never changes what an
 * already validated generation runs, and a fresh process never reuses a
 * handle of an older file (the resident-handle trap).  Then the checks, in
 * the order a module author would fix them: the symbol, the ABI (major
 * equal, host minor at least the module's), the descriptor's size, the
 * options (the module's table against the section's keys, each value
 * against its type and range), the commands, and the module's own check.
 *
 * The API table handed to modules lives here.  Its functions find the
 * worker's pipeline through one file-level pointer: a worker is one
 * process with one loop.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conn.h"
#include "gopro/gopro.h"
#include "log.h"
#include "module.h"
#include "offload.h"
#include "worker.h"

/* How long a probe child may take to load and check every module. */
#define PROBE_TIMEOUT_MS 10000
#define STRING_MAX_DEFAULT 1024

extern const struct gopro_module module_echo;

const struct gopro_module *
module_builtin(const char *name)
{
	return strcmp(name, "echo") == 0 ? &module_echo : NULL;
}

/* ------------------------------------------------------------ errors */

struct errbuf {
	char *buf;
	size_t len, used;
	const char *path;    /* the config file */
	int rc;
};

static void eprintf(struct errbuf *e, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One "file:line: message" line. */
static void
eprintf(struct errbuf *e, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	e->rc = -1;
	if (e->used + 1 >= e->len)
		return;
	if (e->used > 0)
		e->buf[e->used++] = '\n';
	n = snprintf(e->buf + e->used, e->len - e->used, "%s:%d: ", e->path,
	    line);
	if (n > 0 && (size_t)n < e->len - e->used)
		e->used += (size_t)n;
	va_start(ap, fmt);
	n = vsnprintf(e->buf + e->used, e->len - e->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		e->used += (size_t)n < e->len - e->used ? (size_t)n :
		    e->len - e->used - 1;
}

/* ------------------------------------------------------------ opening */

int
modules_open(struct gopro_conf *conf, char *err, size_t errlen)
{
	struct errbuf e = { err, errlen, 0, conf->path, 0 };

	if (errlen > 0)
		err[0] = '\0';
	for (size_t i = 0; i < conf->nmodules; i++) {
		struct conf_module *m = &conf->modules[i];

		if (m->path == NULL || m->fd >= 0)
			continue;
		/* Kept across fork (workers load it), closed by exec. */
		m->fd = open(m->path, O_RDONLY | O_CLOEXEC);
		if (m->fd < 0)
			eprintf(&e, m->line, "module.%s.path: cannot open %s: "
			    "%s", m->name, m->path, strerror(errno));
	}
	return e.rc;
}

/* ------------------------------------------------------------ options */

static const struct conf_module_opt *
find_opt(const struct conf_module *cm, const char *key)
{
	for (size_t i = 0; cm != NULL && i < cm->nopts; i++)
		if (strcmp(cm->opts[i].key, key) == 0)
			return &cm->opts[i];
	return NULL;
}

static int
in_range(const struct gopro_module_option *o, double v)
{
	return (o->min == 0 && o->max == 0) || (v >= o->min && v <= o->max);
}

/* Convert s to o's type; NULL on success, else what was expected. */
static const char *
parse_value(const struct gopro_module_option *o, const char *s,
    union gopro_option_value *v)
{
	char *end;
	size_t max;

	switch (o->type) {
	case GOPRO_OPTION_STRING:
		max = o->max > 0 ? (size_t)o->max : STRING_MAX_DEFAULT;
		v->s = s;
		return strlen(s) <= max ? NULL : "a shorter text";
	case GOPRO_OPTION_INT:
		errno = 0;
		v->i = strtoll(s, &end, 10);
		return errno == 0 && end != s && *end == '\0' &&
		    in_range(o, (double)v->i) ? NULL : "a whole number in range";
	case GOPRO_OPTION_BOOL:
		v->b = strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 ||
		    strcasecmp(s, "on") == 0;
		return v->b || strcasecmp(s, "false") == 0 ||
		    strcasecmp(s, "no") == 0 || strcasecmp(s, "off") == 0 ?
		    NULL : "true or false";
	case GOPRO_OPTION_TIME:
		return conf_parse_time(s, &v->seconds) == 0 &&
		    in_range(o, v->seconds) ? NULL : "a time in range";
	case GOPRO_OPTION_SIZE:
		return conf_parse_size(s, &v->bytes) == 0 &&
		    in_range(o, (double)v->bytes) ? NULL : "a size in range";
	}
	return "a known option type";
}

static void
range_text(const struct gopro_module_option *o, char *buf, size_t len)
{
	if (o->type == GOPRO_OPTION_STRING || o->type == GOPRO_OPTION_BOOL ||
	    (o->min == 0 && o->max == 0))
		buf[0] = '\0';
	else
		snprintf(buf, len, " from %g to %g", o->min, o->max);
}

/* The built-in echo takes the top-level message_prefix as its default. */
static const char *
default_of(const struct module_inst *mi, const struct gopro_conf *conf,
    const struct gopro_module_option *o)
{
	if (mi->dl == NULL && strcmp(mi->desc.name, "echo") == 0 &&
	    strcmp(o->name, "prefix") == 0)
		return conf->message_prefix;
	return o->def;
}

static void
load_options(struct module_inst *mi, const struct gopro_conf *conf,
    struct errbuf *e)
{
	const struct conf_module *cm = mi->conf;
	int line = cm != NULL ? cm->line : 0;
	char range[64];

	if (mi->desc.noptions > CONF_MAX_MODULE_OPTIONS) {
		eprintf(e, line, "module %s: declares %zu options, more than "
		    "%d", mi->name, mi->desc.noptions, CONF_MAX_MODULE_OPTIONS);
		return;
	}
	for (size_t i = 0; i < mi->desc.noptions; i++) {
		const struct gopro_module_option *o = &mi->desc.options[i];
		const struct conf_module_opt *set = find_opt(cm, o->name);
		const char *s = set != NULL ? set->value :
		    default_of(mi, conf, o), *why;

		if (s == NULL) {
			eprintf(e, line, "module.%s.%s: required (%s)",
			    mi->name, o->name, o->help ? o->help : "no help");
			continue;
		}
		if ((why = parse_value(o, s, &mi->values[i])) != NULL) {
			range_text(o, range, sizeof(range));
			eprintf(e, set != NULL ? set->line : line,
			    "module.%s.%s: \"%s\" is not valid (expected %s%s: "
			    "%s)", mi->name, o->name, s, why, range,
			    o->help ? o->help : "");
		}
	}
	for (size_t j = 0; cm != NULL && j < cm->nopts; j++) {
		size_t i;

		for (i = 0; i < mi->desc.noptions; i++)
			if (strcmp(mi->desc.options[i].name, cm->opts[j].key) == 0)
				break;
		if (i == mi->desc.noptions)
			eprintf(e, cm->opts[j].line, "module.%s.%s: unknown "
			    "option (the module %s takes %zu options, see its "
			    "documentation)", mi->name, cm->opts[j].key,
			    mi->desc.name, mi->desc.noptions);
	}
}

/* ------------------------------------------------------------ loading */

/* The descriptor as far as the module's size says, the rest zero. */
static int
take_descriptor(struct module_inst *mi, const struct gopro_module *d,
    struct errbuf *e, int line)
{
	size_t min = offsetof(struct gopro_module, worker_exit) +
	    sizeof(d->worker_exit);

	if (d->abi_major != GOPRO_MODULE_ABI_MAJOR ||
	    d->abi_minor > GOPRO_MODULE_ABI_MINOR) {
		eprintf(e, line, "module %s: built for module ABI %u.%u, "
		    "goprod has %u.%u (rebuild it against this goprod's "
		    "gopro/module.h)", mi->name, d->abi_major, d->abi_minor,
		    GOPRO_MODULE_ABI_MAJOR, GOPRO_MODULE_ABI_MINOR);
		return -1;
	}
	if (d->size < min) {
		eprintf(e, line, "module %s: descriptor of %zu bytes, ABI %u "
		    "needs at least %zu", mi->name, d->size, d->abi_major, min);
		return -1;
	}
	memcpy(&mi->desc, d, d->size < sizeof(mi->desc) ? d->size :
	    sizeof(mi->desc));
	if (mi->desc.name == NULL || mi->desc.request == NULL) {
		eprintf(e, line, "module %s: the descriptor has no %s",
		    mi->name, mi->desc.name == NULL ? "name" :
		    "request callback");
		return -1;
	}
	return 0;
}

static const struct gopro_module *
open_shared(struct module_inst *mi, struct errbuf *e)
{
	const struct conf_module *cm = mi->conf;
	const struct gopro_module *d;
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", cm->fd);
	if (cm->fd < 0 || (mi->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) ==
	    NULL) {
		eprintf(e, cm->line, "module.%s.path: cannot load %s: %s",
		    mi->name, cm->path, cm->fd < 0 ? "not opened" : dlerror());
		return NULL;
	}
	if ((d = dlsym(mi->dl, GOPRO_MODULE_SYMBOL)) == NULL)
		eprintf(e, cm->line, "module.%s.path: %s exports no symbol %s "
		    "(is it a gopro module built with GOPRO_MODULE_EXPORT?)",
		    mi->name, cm->path, GOPRO_MODULE_SYMBOL);
	return d;
}

static void
load_commands(struct module_inst *mi, struct errbuf *e)
{
	const struct conf_module *cm = mi->conf;
	int line = cm != NULL ? cm->line : 0;

	if (cm != NULL && cm->ncommands > 0) {
		memcpy(mi->commands, cm->commands, cm->ncommands);
		mi->ncommands = cm->ncommands;
		return;
	}
	for (size_t i = 0; i < mi->desc.ncommands && i < 256; i++) {
		uint8_t k = mi->desc.commands[i];

		if (k != GOPRO_CMD_MESSAGE && k < 0x10) {
			eprintf(e, line, "module %s: claims command 0x%02X, "
			    "reserved for the protocol", mi->name, k);
			continue;
		}
		mi->commands[mi->ncommands++] = k;
	}
	if (mi->ncommands == 0)
		eprintf(e, line, "module %s: serves no command (set commands "
		    "= { ... } in its section)", mi->name);
}

static void
load_one(struct module_inst *mi, const struct gopro_conf *conf,
    struct errbuf *e)
{
	const struct conf_module *cm = mi->conf;
	const struct gopro_module *d;
	int line = cm != NULL ? cm->line : 0;
	int before = e->rc;
	char why[512] = "";

	e->rc = 0;
	if (cm == NULL || cm->path == NULL) {
		if ((d = module_builtin(mi->name)) == NULL)
			eprintf(e, line, "module %s: no built-in module of that "
			    "name (expected path = \"/path/to/%s.so\")",
			    mi->name, mi->name);
	} else
		d = open_shared(mi, e);
	if (e->rc == 0 && take_descriptor(mi, d, e, line) == 0) {
		load_options(mi, conf, e);
		load_commands(mi, e);
	}
	if (e->rc == 0 && mi->desc.check != NULL &&
	    mi->desc.check(mi->values, why, sizeof(why)) < 0)
		eprintf(e, line, "module %s: %s", mi->name, *why ? why :
		    "its check of the options failed");
	if (before < 0)
		e->rc = -1;
}

/* Two modules cannot serve one command; who serves what is recorded. */
static void
assign_commands(struct modules *m, struct errbuf *e)
{
	for (size_t i = 0; i < m->n; i++) {
		struct module_inst *mi = &m->inst[i];

		for (unsigned j = 0; j < mi->ncommands; j++) {
			uint8_t k = mi->commands[j];

			if (m->by_command[k] != NULL && m->by_command[k] != mi)
				eprintf(e, mi->conf ? mi->conf->line : 0,
				    "module %s: command 0x%02X is already "
				    "served by module %s", mi->name, k,
				    m->by_command[k]->name);
			else
				m->by_command[k] = mi;
		}
	}
}

int
modules_load(struct modules *m, const struct gopro_conf *conf, char *err,
    size_t errlen)
{
	struct errbuf e = { err, errlen, 0, conf->path, 0 };

	if (errlen > 0)
		err[0] = '\0';
	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < conf->nmodules; i++) {
		m->inst[m->n].conf = &conf->modules[i];
		m->inst[m->n].name = conf->modules[i].name;
		load_one(&m->inst[m->n++], conf, &e);
	}
	assign_commands(m, &e);
	if (e.rc == 0 && m->by_command[GOPRO_CMD_MESSAGE] == NULL) {
		/* Nobody serves MESSAGE: the seed's echo does. */
		struct module_inst *mi = &m->inst[m->n++];

		mi->name = "echo";
		load_one(mi, conf, &e);
		m->by_command[GOPRO_CMD_MESSAGE] = mi;
	}
	if (e.rc < 0)
		modules_unload(m);
	return e.rc;
}

void
modules_unload(struct modules *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->inst[i].dl != NULL)
			dlclose(m->inst[i].dl);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------ probe */

static void
probe_child(const struct gopro_conf *conf, int fd)
{
	static struct modules m;
	char err[CONF_ERR_MAX];
	size_t n;

	if (modules_load(&m, conf, err, sizeof(err)) == 0)
		err[0] = '\0';
	else if (err[0] == '\0')
		snprintf(err, sizeof(err), "%s: the modules failed to load",
		    conf->path);
	n = strlen(err);
	/* One byte of status first, so a crash is told from a pass. */
	if (write(fd, err[0] ? "F" : "P", 1) == 1 && n > 0)
		(void)write(fd, err, n);
	_exit(0);
}

/* Read the probe's verdict until EOF, within PROBE_TIMEOUT_MS. */
static ssize_t
probe_read(int fd, char *buf, size_t len)
{
	struct pollfd p = { fd, POLLIN, 0 };
	size_t used = 0;
	ssize_t n;

	while (used + 1 < len) {
		if (poll(&p, 1, PROBE_TIMEOUT_MS) <= 0)
			return -1;
		if ((n = read(fd, buf + used, len - 1 - used)) < 0 &&
		    errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	return (ssize_t)used;
}

int
modules_probe(const struct gopro_conf *conf, char *err, size_t errlen)
{
	char out[CONF_ERR_MAX + 2];
	int p[2], status;
	ssize_t n;
	pid_t pid;

	if (conf->nmodules == 0)
		return 0;	/* the built-in echo cannot fail */
	if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		snprintf(err, errlen, "%s: cannot start the module probe: %s",
		    conf->path, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		probe_child(conf, p[1]);
	}
	close(p[1]);
	n = probe_read(p[0], out, sizeof(out));
	close(p[0]);
	if (n < 0)
		kill(pid, SIGKILL);
	/* The loop is not running here: libev cannot reap it first. */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n > 0 && out[0] == 'P')
		return 0;
	if (n > 1 && out[0] == 'F')
		snprintf(err, errlen, "%s", out + 1);
	else
		snprintf(err, errlen, "%s: the module probe %s", conf->path,
		    n < 0 ? "did not finish within 10 s" :
		    WIFSIGNALED(status) ? "crashed while loading the modules" :
		    "failed");
	return -1;
}

int
modules_ready(struct gopro_conf *conf, char *err, size_t errlen)
{
	if (modules_open(conf, err, errlen) < 0)
		return -1;
	return modules_probe(conf, err, errlen);
}

/* ------------------------------------------------------------ the API */

static struct {
	struct worker *w;
	struct pipeline *pl;
	struct ev_loop *loop;
	struct tpool *offload;
} host;

static struct ev_loop *
api_loop(void)
{
	return host.loop;
}

static int
api_completev(gopro_request_id id, uint8_t command, const struct iovec *iov,
    int iovcnt)
{
	return pipeline_complete_any(host.pl, id, command, iov, iovcnt);
}

static int
api_complete(gopro_request_id id, uint8_t command, const void *body,
    size_t len)
{
	struct iovec iov = { (void *)(uintptr_t)body, len };

	return api_completev(id, command, &iov, len > 0 ? 1 : 0);
}

static int
api_complete_error(gopro_request_id id, uint16_t code, const char *text)
{
	struct iovec iov = { (void *)(uintptr_t)(text ? text : ""),
		text ? strlen(text) : 0 };

	if (!pipeline_on_loop(host.pl))
		return pipeline_post(host.pl, id, GOPRO_CMD_ERROR, code, &iov,
		    1);
	return pipeline_complete_error(host.pl, id, code, text);
}

static int
api_offload(void (*fn)(void *), void *arg, void (*done)(void *))
{
	if (host.offload == NULL &&
	    (host.offload = offload_new(host.loop)) == NULL)
		return -1;
	return offload_submit(host.offload, fn, arg, done);
}

static const struct sockaddr *
api_client_addr(const struct gopro_conn *conn, socklen_t *len)
{
	return conn_client_addr((const struct conn *)conn, len);
}

static const char *
api_user(const struct gopro_conn *conn)
{
	return conn_user((const struct conn *)conn);
}

static const char *
api_tls_identity(const struct gopro_conn *conn)
{
	return conn_tls_identity((const struct conn *)conn);
}

/* The drain timer runs from the drain's start until it cuts (worker.c). */
static double
api_drain_left(void)
{
	struct worker *w = host.w;

	if (w == NULL || !w->draining)
		return -1;
	if (!ev_is_active(&w->drain_timer))
		return 0;
	return ev_timer_remaining(w->loop, &w->drain_timer);
}

static void api_log(int priority, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
api_log(int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(priority, fmt, ap);
	va_end(ap);
}

static const struct gopro_module_api api = {
	.size = sizeof(struct gopro_module_api),
	.abi_major = GOPRO_MODULE_ABI_MAJOR,
	.abi_minor = GOPRO_MODULE_ABI_MINOR,
	.loop = api_loop,
	.complete = api_complete,
	.completev = api_completev,
	.complete_error = api_complete_error,
	.offload = api_offload,
	.client_addr = api_client_addr,
	.user = api_user,
	.log = api_log,
	.tls_identity = api_tls_identity,
	.drain_left = api_drain_left,
};

/* ------------------------------------------------------------ workers */

static int
start_one(struct module_inst *mi, struct worker *w, struct stats_module *st,
    char *err, size_t errlen)
{
	char why[512] = "";

	/* Named before any count, so that a fold can place the counters. */
	snprintf(st->name, sizeof(st->name), "%s", mi->name);
	mi->h = (struct pipeline_handler){ .request = mi->desc.request,
		.cancel = mi->desc.cancel,
		.timeout = mi->conf ? mi->conf->timeout : 5.0,
		.max_inflight = mi->conf ? mi->conf->max_inflight : 64,
		.stats = st };
	pipeline_handler_init(&w->pl, &mi->h);
	if (mi->desc.worker_init != NULL && mi->desc.worker_init(&api,
	    mi->values, &mi->state, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "module %s: worker init failed: %s",
		    mi->name, *why ? why : "no reason given");
		return -1;
	}
	mi->h.state = mi->state;
	mi->started = true;
	return 0;
}

int
modules_start(struct modules *m, struct worker *w, char *err, size_t errlen)
{
	host.w = w;
	host.pl = &w->pl;
	host.loop = w->loop;
	if (modules_load(m, w->conf, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < m->n && i < STATS_MODULES; i++)
		if (start_one(&m->inst[i], w, &w->stats->mod[i], err,
		    errlen) < 0)
			return -1;
	return 0;
}

void
modules_stop(struct modules *m)
{
	/* Module code (an offload fn, its done) runs before worker_exit,
	 * never after: the pool finishes every job it holds first. */
	if (host.offload != NULL)
		offload_free(host.offload);
	host.offload = NULL;
	for (size_t i = m->n; i-- > 0;) {
		struct module_inst *mi = &m->inst[i];

		if (mi->started && mi->desc.worker_exit != NULL)
			mi->desc.worker_exit(mi->state);
		pipeline_handler_cleanup(&mi->h);
		mi->started = false;
	}
	host.w = NULL;
	/* No dlclose: the worker is exiting, and a module that breaks the
	 * rule of gopro_module(3) by leaving a thread running past
	 * worker_exit must not turn the exit into a SEGV at a module address
	 * (ASan saw one).  The process's exit unmaps the files. */
	memset(m, 0, sizeof(*m));
}

void
modules_conn_open(struct modules *m, struct conn *c)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->inst[i].started && m->inst[i].desc.conn_open != NULL)
			m->inst[i].desc.conn_open(m->inst[i].state,
			    (struct gopro_conn *)c);
}

void
modules_conn_close(struct modules *m, struct conn *c)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->inst[i].started && m->inst[i].desc.conn_close != NULL)
			m->inst[i].desc.conn_close(m->inst[i].state,
			    (struct gopro_conn *)c);
}
