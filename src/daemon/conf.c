/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf.c - read gopro.conf with libconfuse and copy it into the plain
 * struct gopro_conf of conf.h, so that no other file sees libconfuse.
 *
 * Every option is declared once, in OPTIONS below: where it lives, its name,
 * what kind of value it takes, its default as it would be written in the
 * file, and its range.  libconfuse sees every value as a string.  The checks
 * are ours because then they can say what was expected, and because a
 * libconfuse number that does not parse stops the whole parse: ours record
 * the error and let the parse go on, so that one "goprod -t" reports every
 * bad value of a file.  A syntax error or an unknown option still stops
 * libconfuse, which cannot tell where the next option begins.
 *
 * The file is read into memory and goes through conf_lex.c first, which
 * blanks its comments (libconfuse 3.3 miscounts their lines) and reports
 * unclosed strings, comments and sections and unset ${NAME}s; libconfuse
 * then parses the copy through fmemopen.
 *
 * A validator registered per option (cfg_set_validate_func) checks a value
 * right after libconfuse has read it, while cfg->line is still the line of
 * the value, and refuses a second setting of the option.  "listen" is a
 * list, and libconfuse calls a list's validator once per element and once
 * more at the closing brace (never for an empty list), so its elements are
 * checked by its value parsing callback instead, which runs exactly once
 * per element, and its line comes from conf_lex.  Checks that involve two options (the water marks,
 * auth.required without auth.users_file, whether the user exists) run after
 * the parse with the lines the validators recorded.  libconfuse callbacks
 * have no user argument, hence the one file-level pointer to the load in
 * progress; conf_load is not reentrant (neither is libconfuse's lexer).
 *
 * Which changes need a restart, as conf_restart_needed reports them:
 *
 *   option           applied by  why
 *   user, group      restart     the master drops privileges once, at start
 *   pid_file         restart     written at start, removed at exit
 *   stats_file       restart     the shared segment is created at start
 *   control_socket   restart     bound once, at start, before dropping root
 *   metrics_listen   restart     the metrics process is started once
 *   log              restart     target and file are opened at start
 *   everything else  reload      listen, backlog (of new sockets),
 *                                unix_mode and unix_group (of new socket
 *                                files), workers,
 *                                worker_cpu_affinity, the timeouts, limits,
 *                                water marks, message_prefix, log_level,
 *                                proxy_protocol, proxy_protocol_from and
 *                                the auth section go to the new workers
 *
 * proxy_protocol and proxy_protocol_from are lists like "listen", checked by
 * their own value callbacks; whether each proxy_protocol address is also a
 * listen address is checked after the parse.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include <confuse.h>

#include "config.h"
#include "conf.h"
#include "conf_lex.h"
#include "listen.h"
#include "conf_module.h"
#include "proxy.h"
#include "readable.h"
#include "tls.h"

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif

#define SIZE_MAX_SENSIBLE	(1ULL << 30)	/* 1G: bodies and buffers */
#define TIME_MAX		86400.0		/* one day, in seconds */
#define PREFIX_MAX		1024
#define WATER_MIN		4096
#define QUOTE_MAX		64		/* of a bad value, in a message */
#define CONF_FILE_MAX		(1 << 20)	/* bytes of gopro.conf */
#define TRUNC_RESERVE		48		/* for the "N more errors" line */

enum kind {
	KIND_LISTEN,		/* list of host:port */
	KIND_INT,		/* whole number in [min, max] */
	KIND_RATE,		/* decimal number in [min, max] */
	KIND_BOOL,
	KIND_TIME,		/* 0 .. TIME_MAX */
	KIND_TIME_NONZERO,	/* > 0 .. TIME_MAX */
	KIND_SECONDS,		/* whole seconds in [min, max] */
	KIND_SIZE,		/* bytes in [min, max] */
	KIND_WORKERS,		/* "auto" or 1 .. CONF_MAX_WORKERS */
	KIND_AFFINITY,		/* "auto" or "off" */
	KIND_IDENTITY,		/* user or group name, checked after the parse */
	KIND_PATH,		/* absolute path */
	KIND_SOCKET_PATH,	/* absolute path that fits in sun_path */
	KIND_MODE,		/* file mode in octal, up to max */
	KIND_ADDRESS,		/* host:port, "" = off */
	KIND_LOG,		/* stderr, syslog or file:/path */
	KIND_LEVEL,		/* error .. debug */
	KIND_PREFIX,		/* any string up to PREFIX_MAX bytes */
	KIND_USERS_FILE,	/* existing regular file, "" = none */
	KIND_PROXY_LISTEN,	/* list of listen addresses */
	KIND_NETS,		/* list of address/prefix */
	KIND_TLS_LISTEN,	/* list of listen addresses */
	KIND_PEM_FILE,		/* existing regular file, "" = none */
	KIND_VERIFY,		/* off, optional or require */
	KIND_TLS_IDENTITY,	/* off, cn, dns, email or uri */
	KIND_PROTOCOLS,		/* TLSv1.2 and/or TLSv1.3 */
	KIND_STRING,		/* any string, checked by its user */
};

/*
 * The options: id, name, kind, default as written in the file (NULL =
 * unset), min, max.  T is an option at the top level, A one in the auth
 * section, S one in the tls section.
 */
#define OPTIONS(T, A, S)						\
	T(LISTEN, "listen", KIND_LISTEN, "{\"0.0.0.0:8888\"}", 0, 0)	\
	T(BACKLOG, "backlog", KIND_INT, "511", 1, 65535)		\
	T(WORKERS, "workers", KIND_WORKERS, "auto", 1, CONF_MAX_WORKERS) \
	T(AFFINITY, "worker_cpu_affinity", KIND_AFFINITY, "off", 0, 0)	\
	T(USER, "user", KIND_IDENTITY, "gopro", 0, 0)			\
	T(GROUP, "group", KIND_IDENTITY, "gopro", 0, 0)			\
	T(PID_FILE, "pid_file", KIND_PATH,				\
	    RUNSTATEDIR "/goprod/goprod.pid", 0, 0)			\
	T(STATS_FILE, "stats_file", KIND_PATH,				\
	    RUNSTATEDIR "/goprod/goprod.stats", 0, 0)			\
	T(CONTROL_SOCKET, "control_socket", KIND_SOCKET_PATH,		\
	    RUNSTATEDIR "/goprod/goprod.sock", 0, 0)			\
	T(UNIX_MODE, "unix_mode", KIND_MODE, "0660", 0, 0777)		\
	T(UNIX_GROUP, "unix_group", KIND_IDENTITY, "", 0, 0)		\
	T(METRICS_LISTEN, "metrics_listen", KIND_ADDRESS, NULL, 0, 0)	\
	T(LOG, "log", KIND_LOG, "syslog", 0, 0)				\
	T(LOG_LEVEL, "log_level", KIND_LEVEL, "info", 0, 0)		\
	T(LOG_CONNECTIONS, "log_connections", KIND_BOOL, "off", 0, 0)	\
	T(IDLE_TIMEOUT, "idle_timeout", KIND_TIME, "60s", 0, 0)		\
	T(FRAME_TIMEOUT, "frame_timeout", KIND_TIME, "30s", 0, 0)	\
	T(SEND_TIMEOUT, "send_timeout", KIND_TIME, "60s", 0, 0)		\
	T(DRAIN_TIMEOUT, "drain_timeout", KIND_TIME_NONZERO, "30s", 0, 0) \
	T(GOAWAY_GRACE, "goaway_grace", KIND_TIME, "1s", 0, 0)		\
	T(BLOCK_WARN, "block_warn", KIND_TIME, "100ms", 0, 0)		\
	T(STALL_TIMEOUT, "worker_stall_timeout", KIND_TIME, "30s", 0, 0) \
	T(ROLLBACK_CRASHES, "rollback_crashes", KIND_INT, "3", 0, 1000) \
	T(ROLLBACK_WINDOW, "rollback_window", KIND_TIME, "60s", 0, 0)	\
	T(MAX_BODY, "max_body", KIND_SIZE, "10M", 1, SIZE_MAX_SENSIBLE)	\
	T(MAX_CONNECTIONS, "max_connections", KIND_INT, "10000", 1, 1000000) \
	T(HIGH_WATER, "output_high_water", KIND_SIZE, "1M", WATER_MIN,	\
	    SIZE_MAX_SENSIBLE)						\
	T(LOW_WATER, "output_low_water", KIND_SIZE, "256k", 0,		\
	    SIZE_MAX_SENSIBLE)						\
	T(MESSAGE_PREFIX, "message_prefix", KIND_PREFIX, "Server says: ", \
	    0, 0)							\
	T(PROXY_PROTOCOL, "proxy_protocol", KIND_PROXY_LISTEN, NULL, 0, 0) \
	T(PROXY_FROM, "proxy_protocol_from", KIND_NETS, NULL, 0, 0)	\
	A(AUTH_REQUIRED, "required", KIND_BOOL, "false", 0, 0)		\
	A(AUTH_USERS_FILE, "users_file", KIND_USERS_FILE, NULL, 0, 0)	\
	A(AUTH_MAX_ATTEMPTS, "max_attempts", KIND_INT, "3", 1, 1000)	\
	A(AUTH_LOGIN_RATE, "login_rate", KIND_RATE, "10", 0, 1e6)	\
	A(AUTH_LOGIN_BURST, "login_burst", KIND_INT, "20", 1, 1e6)	\
	A(AUTH_THREADS, "threads", KIND_INT, "2", 1, 64)		\
	A(AUTH_QUEUE_TIMEOUT, "queue_timeout", KIND_TIME_NONZERO, "2s", \
	    0, 0)							\
	S(TLS_LISTEN, "listen", KIND_TLS_LISTEN, NULL, 0, 0)		\
	S(TLS_CERTIFICATE, "certificate", KIND_PEM_FILE, NULL, 0, 0)	\
	S(TLS_KEY, "key", KIND_PEM_FILE, NULL, 0, 0)			\
	S(TLS_CLIENT_CA, "client_ca", KIND_PEM_FILE, NULL, 0, 0)	\
	S(TLS_CRL, "crl", KIND_PEM_FILE, NULL, 0, 0)			\
	S(TLS_VERIFY, "verify_client", KIND_VERIFY, "off", 0, 0)	\
	S(TLS_IDENTITY, "identity", KIND_TLS_IDENTITY, "off", 0, 0)	\
	S(TLS_PROTOCOLS, "protocols", KIND_PROTOCOLS, "TLSv1.2 TLSv1.3", \
	    0, 0)							\
	S(TLS_CIPHERS, "ciphers", KIND_STRING, NULL, 0, 0)		\
	S(TLS_CIPHERSUITES, "ciphersuites", KIND_STRING, NULL, 0, 0)	\
	S(TLS_HANDSHAKE_TIMEOUT, "handshake_timeout", KIND_TIME_NONZERO, \
	    "10s", 0, 0)						\
	S(TLS_KTLS, "ktls", KIND_BOOL, "off", 0, 0)			\
	S(TLS_TICKET_ROTATION, "ticket_key_rotation", KIND_SECONDS, "12h", \
	    1, 86400)

#define OPTION_ID(id, name, kind, def, min, max) OPT_##id,
enum option_id {
	OPTIONS(OPTION_ID, OPTION_ID, OPTION_ID)
	OPT_COUNT
};

struct option_spec {
	const char *section;	/* NULL at the top level */
	const char *name;	/* as in the file */
	const char *path;	/* for cfg_getstr: "auth|required" */
	const char *shown;	/* in messages: "auth.required" */
	enum kind kind;
	const char *def;
	double min, max;
};

#define OPTION_TOP(id, nm, kd, df, mn, mx)				\
	{ NULL, nm, nm, nm, kd, df, mn, mx },
#define OPTION_AUTH(id, nm, kd, df, mn, mx)				\
	{ "auth", nm, "auth|" nm, "auth." nm, kd, df, mn, mx },
#define OPTION_TLS(id, nm, kd, df, mn, mx)				\
	{ "tls", nm, "tls|" nm, "tls." nm, kd, df, mn, mx },
static const struct option_spec options[OPT_COUNT] = {
	OPTIONS(OPTION_TOP, OPTION_AUTH, OPTION_TLS)
};

/* One conf_load in progress: where errors go, and what the parse saw. */
struct load {
	const char *path;
	char *err;
	size_t errlen;
	size_t used;
	unsigned nerrors;
	unsigned dropped;		/* errors that did not fit in err */
	int line[OPT_COUNT];		/* where each option was set; 0 = default */
	char source[PATH_MAX];		/* the file read, links resolved */
	bool listen_ok[CONF_MAX_LISTEN];
	struct sockaddr_storage listen_addr[CONF_MAX_LISTEN];
	socklen_t listen_len[CONF_MAX_LISTEN];
	bool proxy_ok[CONF_MAX_LISTEN];
	struct sockaddr_storage proxy_addr[CONF_MAX_LISTEN];
	socklen_t proxy_len[CONF_MAX_LISTEN];
	struct proxy_net proxy_from[CONF_MAX_PROXY_FROM];
	bool tls_ok[CONF_MAX_LISTEN];
	struct sockaddr_storage tls_addr[CONF_MAX_LISTEN];
	socklen_t tls_len[CONF_MAX_LISTEN];
};

static struct load *current;
static bool load_tls = true;

struct keyword {
	const char *word;
	int value;
};

static const struct keyword bool_words[] = {
	{ "true", 1 }, { "yes", 1 }, { "on", 1 },
	{ "false", 0 }, { "no", 0 }, { "off", 0 },
	{ NULL, 0 }
};

static const struct keyword level_words[] = {
	{ "error", LOG_ERR }, { "warning", LOG_WARNING },
	{ "notice", LOG_NOTICE }, { "info", LOG_INFO }, { "debug", LOG_DEBUG },
	{ NULL, 0 }
};

static const struct keyword affinity_words[] = {
	{ "auto", 1 }, { "off", 0 }, { NULL, 0 }
};

static const struct keyword verify_words[] = {
	{ "off", TLS_VERIFY_OFF }, { "optional", TLS_VERIFY_OPTIONAL },
	{ "require", TLS_VERIFY_REQUIRE }, { NULL, 0 }
};

static const struct keyword tls_identity_words[] = {
	{ "off", TLS_IDENTITY_OFF }, { "cn", TLS_IDENTITY_CN },
	{ "dns", TLS_IDENTITY_DNS }, { "email", TLS_IDENTITY_EMAIL },
	{ "uri", TLS_IDENTITY_URI }, { NULL, 0 }
};

static int
keyword_find(const struct keyword *k, const char *word, int *value)
{
	for (; k->word != NULL; k++) {
		if (strcasecmp(k->word, word) == 0) {
			*value = k->value;
			return 0;
		}
	}
	return -1;
}

/* ------------------------------------------------------------ messages */

/* A value as shown in a message: bounded, with control bytes as '?'. */
static const char *
quote(const char *v, char *buf, size_t len)
{
	size_t i;

	for (i = 0; v[i] != '\0' && i + 1 < len && i < QUOTE_MAX; i++)
		buf[i] = isprint((unsigned char)v[i]) ? v[i] : '?';
	buf[i] = '\0';
	if (v[i] != '\0' && i >= 3)
		memcpy(buf + i - 3, "...", 3);
	return buf;
}

/*
 * Append one error line to the caller's buffer.  A line that does not fit
 * whole is dropped and counted, so the buffer ends with complete lines and
 * room for the count of what was dropped.
 */
static void
append_error(struct load *ld, const char *line)
{
	size_t n = strlen(line);

	ld->nerrors++;
	if (ld->errlen == 0)
		return;
	if (ld->used == 0) {
		snprintf(ld->err, ld->errlen, "%s", line);
		ld->used = n < ld->errlen ? n : ld->errlen - 1;
		return;
	}
	if (ld->used + 1 + n + TRUNC_RESERVE >= ld->errlen) {
		ld->dropped++;
		return;
	}
	ld->err[ld->used++] = '\n';
	memcpy(ld->err + ld->used, line, n + 1);
	ld->used += n;
}

static void
finish_errors(struct load *ld)
{
	size_t room;
	int n;

	if (ld->dropped == 0 || ld->errlen == 0)
		return;
	room = ld->errlen - ld->used;
	n = snprintf(ld->err + ld->used, room, "\n(%u more errors not shown)",
	    ld->dropped);
	if (n < 0 || (size_t)n >= room)
		ld->err[ld->used] = '\0';
}

/* "file:line: option: message"; line 0 means no line, name NULL no option. */
static void report(struct load *ld, int line, const char *name,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
report(struct load *ld, int line, const char *name, const char *fmt, ...)
{
	char msg[512], out[1024 + 512];
	char where[32] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof(where), ":%d", line);
	snprintf(out, sizeof(out), "%s%s: %s%s%s", ld->path, where,
	    name ? name : "", name ? ": " : "", msg);
	append_error(ld, out);
}

/* The reporter of conf_module.c, on the load in progress. */
static void module_report(int line, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
module_report(int line, const char *name, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (current != NULL)
		report(current, line, name, "%s", msg);
}

/*
 * libconfuse's own errors: syntax errors and unknown options.  An unknown
 * option is rewritten to lead with its name, like every other message.
 */
static void cfg_error_cb(cfg_t *cfg, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
cfg_error_cb(cfg_t *cfg, const char *fmt, va_list ap)
{
	struct load *ld = current;
	const char *sec = cfg->name;
	char name[128], msg[512];

	if (ld == NULL)
		return;
	if (strcmp(fmt, "no such option '%s'") == 0) {
		va_list mod;

		/* In a module section it is the module's own option. */
		va_copy(mod, ap);
		if (conf_module_unknown(cfg, va_arg(mod, char *))) {
			va_end(mod);
			return;
		}
		va_end(mod);
		if (sec == NULL || strcmp(sec, "root") == 0)
			snprintf(name, sizeof(name), "%s", va_arg(ap, char *));
		else
			snprintf(name, sizeof(name), "%s.%s", sec,
			    va_arg(ap, char *));
		report(ld, cfg->line, name, "unknown option (expected one of "
		    "the options of gopro.conf(5))");
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	report(ld, cfg->line, NULL, "syntax error: %s", msg);
}

/* ------------------------------------------------------------ unit parsers */

/* At least one decimal digit, no sign; *end is the first byte after them. */
static int
parse_digits(const char *s, const char **end, uint64_t *v)
{
	uint64_t n = 0;
	const char *p;

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return -1;
	*end = p;
	*v = n;
	return 0;
}

static int
parse_uint(const char *s, uint64_t *v)
{
	const char *end;

	if (parse_digits(s, &end, v) < 0 || *end != '\0')
		return -1;
	return 0;
}

/*
 * "12" or "1.25": digits, then optionally a point and more digits.  Done by
 * hand rather than with strtod, which would also take signs, exponents, hex,
 * "inf", leading blanks, and the locale's decimal point.
 */
static int
parse_decimal(const char *s, const char **end, double *v)
{
	uint64_t whole;
	const char *p;
	double frac = 0, scale = 0.1;

	if (parse_digits(s, &p, &whole) < 0)
		return -1;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return -1;
		for (p++; *p >= '0' && *p <= '9'; p++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	}
	*end = p;
	*v = (double)whole + frac;
	return 0;
}

int
conf_parse_size(const char *s, uint64_t *bytes)
{
	const char *end;
	uint64_t v, mult = 1;

	if (s == NULL || parse_digits(s, &end, &v) < 0)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		mult = 1ULL << 10;
		end++;
		break;
	case 'm': case 'M':
		mult = 1ULL << 20;
		end++;
		break;
	case 'g': case 'G':
		mult = 1ULL << 30;
		end++;
		break;
	default:
		return -1;
	}
	if (*end != '\0' || v > UINT64_MAX / mult)
		return -1;
	*bytes = v * mult;
	return 0;
}

int
conf_parse_time(const char *s, double *seconds)
{
	const char *unit;
	double v, mult;

	if (s == NULL || parse_decimal(s, &unit, &v) < 0)
		return -1;
	if (*unit == '\0' || strcmp(unit, "s") == 0)
		mult = 1;
	else if (strcmp(unit, "ms") == 0)
		mult = 0.001;
	else if (strcmp(unit, "m") == 0)
		mult = 60;
	else if (strcmp(unit, "h") == 0)
		mult = 3600;
	else
		return -1;
	v *= mult;
	if (!isfinite(v))
		return -1;
	*seconds = v;
	return 0;
}

static int
parse_port(const char *s)
{
	uint64_t v;

	if (strlen(s) > 5 || parse_uint(s, &v) < 0 || v < 1 || v > 65535)
		return -1;
	return (int)v;
}

/* Split "host:port", "[v6]:port" or "*:port"; host gets the bare host. */
static int
split_address(const char *s, char *host, size_t hostlen, const char **port,
    bool *bracketed, char *why, size_t whylen)
{
	const char *colon, *h = s;
	size_t n;

	*bracketed = s[0] == '[';
	if (*bracketed) {
		colon = strchr(s, ']');
		if (colon == NULL || colon[1] != ':') {
			snprintf(why, whylen, "expected [ipv6-address]:port");
			return -1;
		}
		h = s + 1;
		n = (size_t)(colon - h);
		colon++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(why, whylen, "missing \":port\"");
			return -1;
		}
		n = (size_t)(colon - s);
		if (memchr(s, ':', n) != NULL) {
			snprintf(why, whylen, "an IPv6 address must be in "
			    "brackets, as in [::1]:8888");
			return -1;
		}
	}
	if (n == 0 || n >= hostlen) {
		snprintf(why, whylen, n == 0 ? "missing host" : "host too long");
		return -1;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	*port = colon + 1;
	return 0;
}

static int
parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len,
    char *why, size_t whylen)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *port;
	bool bracketed;
	int rc;

	if (split_address(s, host, sizeof(host), &port, &bracketed, why,
	    whylen) < 0)
		return -1;
	if (parse_port(port) < 0) {
		snprintf(why, whylen, "the port must be a number from 1 to 65535");
		return -1;
	}
	if (!bracketed && strcmp(host, "*") == 0)
		snprintf(host, sizeof(host), "0.0.0.0");
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = bracketed ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (bracketed ? AI_NUMERICHOST : 0);
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(why, whylen, "cannot resolve %.64s: %s", host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/*
 * A listen address: what parse_address takes, or "unix:/path" for a unix
 * stream socket (an absolute path that fits in sun_path).
 */
static int
parse_listen_address(const char *s, struct sockaddr_storage *ss,
    socklen_t *len, char *why, size_t whylen)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)ss;
	const char *path = s + strlen(CONF_UNIX_PREFIX);

	if (strncmp(s, CONF_UNIX_PREFIX, strlen(CONF_UNIX_PREFIX)) != 0)
		return parse_address(s, ss, len, why, whylen);
	if (path[0] != '/') {
		snprintf(why, whylen, "the socket path must be absolute");
		return -1;
	}
	if (strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(why, whylen, "the socket path is longer than %zu bytes",
		    sizeof(sun->sun_path) - 1);
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	sun->sun_family = AF_UNIX;
	strcpy(sun->sun_path, path);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path) + 1);
	return 0;
}

int
conf_parse_listen_address(const char *s, struct sockaddr_storage *ss,
    socklen_t *len)
{
	char why[256];

	return s == NULL ? -1 : parse_listen_address(s, ss, len, why,
	    sizeof(why));
}

int
conf_parse_address(const char *s, struct sockaddr_storage *ss,
    socklen_t *len)
{
	char why[256];

	return s == NULL ? -1 : parse_address(s, ss, len, why, sizeof(why));
}

static bool
same_address(const struct sockaddr_storage *a, socklen_t alen,
    const struct sockaddr_storage *b, socklen_t blen)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
	const struct sockaddr_in *b4 = (const struct sockaddr_in *)b;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in6 *b6 = (const struct sockaddr_in6 *)b;

	if (alen != blen || a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		    a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return a6->sin6_port == b6->sin6_port &&
		    a6->sin6_scope_id == b6->sin6_scope_id &&
		    memcmp(&a6->sin6_addr, &b6->sin6_addr,
		    sizeof(a6->sin6_addr)) == 0;
	return memcmp(a, b, alen) == 0;
}

/* ------------------------------------------------------------ value checks */

/*
 * Each check writes "what is wrong (expected ...)" into why and returns -1,
 * or returns 0 for a good value.
 */
static int
check_int(const struct option_spec *sp, const char *v, char *why, size_t n)
{
	uint64_t x;
	char q[QUOTE_MAX + 1];

	if (parse_uint(v, &x) == 0 && x >= sp->min && x <= sp->max)
		return 0;
	snprintf(why, n, "\"%s\" is %s (expected a whole number from %.0f "
	    "to %.0f)", quote(v, q, sizeof(q)),
	    parse_uint(v, &x) == 0 ? "out of range" : "not a whole number",
	    sp->min, sp->max);
	return -1;
}

static int
check_rate(const struct option_spec *sp, const char *v, char *why, size_t n)
{
	const char *end;
	double x;
	char q[QUOTE_MAX + 1];

	if (parse_decimal(v, &end, &x) == 0 && *end == '\0' &&
	    x >= sp->min && x <= sp->max)
		return 0;
	snprintf(why, n, "\"%s\" is not a number in range (expected a number "
	    "such as 10 or 0.5, from %.0f to %.0f; 0 = off)",
	    quote(v, q, sizeof(q)), sp->min, sp->max);
	return -1;
}

static int
check_time(const struct option_spec *sp, const char *v, char *why, size_t n)
{
	double x;
	char q[QUOTE_MAX + 1];
	const char *wrong;

	if (conf_parse_time(v, &x) < 0)
		wrong = "not a time";
	else if (x > TIME_MAX)
		wrong = "too long";
	else if (x == 0 && sp->kind == KIND_TIME_NONZERO)
		wrong = "zero, which is not allowed here";
	else
		return 0;
	snprintf(why, n, "\"%s\" is %s (expected a number with an optional "
	    "unit ms, s, m or h, such as 30s, 1.5s or 250ms, %s 86400s)",
	    quote(v, q, sizeof(q)), wrong,
	    sp->kind == KIND_TIME_NONZERO ? "above 0 and at most" :
	    "from 0 (off) to");
	return -1;
}

/* A time that is a whole number of seconds, from min to max. */
static int
check_seconds(const struct option_spec *sp, const char *v, char *why,
    size_t n)
{
	double x;
	char q[QUOTE_MAX + 1];
	const char *wrong;

	if (conf_parse_time(v, &x) < 0)
		wrong = "not a time";
	else if (x != (double)(uint64_t)x)
		wrong = "not a whole number of seconds";
	else if (x < sp->min || x > sp->max)
		wrong = "out of range";
	else
		return 0;
	snprintf(why, n, "\"%s\" is %s (expected whole seconds with an "
	    "optional unit s, m or h, such as 12h or 30m, from %.0fs to "
	    "%.0fs)", quote(v, q, sizeof(q)), wrong, sp->min, sp->max);
	return -1;
}

static int
check_size(const struct option_spec *sp, const char *v, char *why, size_t n)
{
	uint64_t x;
	char q[QUOTE_MAX + 1];

	if (conf_parse_size(v, &x) == 0 && x >= sp->min && x <= sp->max)
		return 0;
	snprintf(why, n, "\"%s\" is %s (expected a number of bytes with an "
	    "optional suffix k, M or G, from %.0f to %.0f)",
	    quote(v, q, sizeof(q)), conf_parse_size(v, &x) == 0 ?
	    "out of range" : "not a size", sp->min, sp->max);
	return -1;
}

static int
check_keyword(const struct option_spec *sp, const char *v, char *why,
    size_t n)
{
	const struct keyword *k = sp->kind == KIND_BOOL ? bool_words :
	    sp->kind == KIND_LEVEL ? level_words :
	    sp->kind == KIND_VERIFY ? verify_words :
	    sp->kind == KIND_TLS_IDENTITY ? tls_identity_words : affinity_words;
	const char *expected = sp->kind == KIND_BOOL ? "true or false" :
	    sp->kind == KIND_LEVEL ? "error, warning, notice, info or debug" :
	    sp->kind == KIND_VERIFY ? "off, optional or require" :
	    sp->kind == KIND_TLS_IDENTITY ? "off, cn, dns, email or uri" :
	    "auto or off";
	char q[QUOTE_MAX + 1];
	int value;

	if (keyword_find(k, v, &value) == 0)
		return 0;
	snprintf(why, n, "\"%s\" is not a valid value (expected %s)",
	    quote(v, q, sizeof(q)), expected);
	return -1;
}

static int
check_workers(const struct option_spec *sp, const char *v, char *why,
    size_t n)
{
	uint64_t x;
	char q[QUOTE_MAX + 1];

	if (strcasecmp(v, "auto") == 0 ||
	    (parse_uint(v, &x) == 0 && x >= 1 && x <= CONF_MAX_WORKERS))
		return 0;
	snprintf(why, n, "\"%s\" is not a worker count (expected auto or a "
	    "whole number from 1 to %d)", quote(v, q, sizeof(q)),
	    CONF_MAX_WORKERS);
	return -1;
}

static int
check_path(const struct option_spec *sp, const char *v, char *why, size_t n)
{
	struct sockaddr_un sun;
	char q[QUOTE_MAX + 1];

	if (v[0] != '/') {
		snprintf(why, n, "\"%s\" is not an absolute path (expected a "
		    "path starting with /)", quote(v, q, sizeof(q)));
		return -1;
	}
	if (sp->kind == KIND_SOCKET_PATH && strlen(v) >= sizeof(sun.sun_path)) {
		snprintf(why, n, "\"%s\" is too long for a unix socket (expected "
		    "at most %zu bytes)", quote(v, q, sizeof(q)),
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	return 0;
}

/* An octal mode: "0660", "660"; nothing but octal digits, up to max. */
static int
parse_mode(const char *v, unsigned *mode)
{
	unsigned long x;
	char *end;

	if (*v == '\0' || strspn(v, "01234567") != strlen(v) || strlen(v) > 4)
		return -1;
	x = strtoul(v, &end, 8);
	*mode = (unsigned)x;
	return 0;
}

static int
check_mode(const struct option_spec *sp, const char *v, char *why, size_t n)
{
	unsigned mode;
	char q[QUOTE_MAX + 1];

	if (parse_mode(v, &mode) == 0 && mode <= sp->max)
		return 0;
	snprintf(why, n, "\"%s\" is not a file mode (expected octal digits "
	    "up to %04o, as in 0660)", quote(v, q, sizeof(q)),
	    (unsigned)sp->max);
	return -1;
}

static int
check_address(const struct option_spec *sp, const char *v, char *why,
    size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char q[QUOTE_MAX + 1], detail[256];

	if (*v == '\0' ||
	    parse_address(v, &ss, &len, detail, sizeof(detail)) == 0)
		return 0;
	snprintf(why, n, "\"%s\": %s (expected host:port, [ipv6]:port or "
	    "*:port, port 1-65535)", quote(v, q, sizeof(q)), detail);
	return -1;
}

static int
check_log(const struct option_spec *sp, const char *v, char *why, size_t n)
{
	char q[QUOTE_MAX + 1];

	if (strcmp(v, "stderr") == 0 || strcmp(v, "syslog") == 0 ||
	    (strncmp(v, "file:", 5) == 0 && v[5] == '/'))
		return 0;
	snprintf(why, n, "\"%s\" is not a log target (expected stderr, syslog "
	    "or file:/absolute/path)", quote(v, q, sizeof(q)));
	return -1;
}

static int
check_prefix(const struct option_spec *sp, const char *v, char *why,
    size_t n)
{
	if (strlen(v) <= PREFIX_MAX)
		return 0;
	snprintf(why, n, "%zu bytes is too long (expected at most %d bytes)",
	    strlen(v), PREFIX_MAX);
	return -1;
}

/*
 * auth.c parses the users file, tls.c the PEM files; here only that they
 * are there, as early as -t.
 */
static int
check_users_file(const struct option_spec *sp, const char *v, char *why,
    size_t n)
{
	const char *what = sp->kind == KIND_PEM_FILE ? "PEM file" :
	    "users file";
	struct stat st;
	char q[QUOTE_MAX + 1];

	if (*v == '\0')
		return 0;
	if (v[0] != '/') {
		snprintf(why, n, "\"%s\" is not an absolute path (expected a "
		    "path starting with /: goprod runs in /)",
		    quote(v, q, sizeof(q)));
		return -1;
	}
	if (stat(v, &st) < 0) {
		snprintf(why, n, "%s: %s (expected an existing %s)",
		    quote(v, q, sizeof(q)), strerror(errno), what);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, n, "%s is not a regular file (expected a %s)",
		    quote(v, q, sizeof(q)), what);
		return -1;
	}
	return 0;
}

/* "TLSv1.2 TLSv1.3": the lowest and highest versions named, 0 for none. */
static int
parse_protocols(const char *v, int *min, int *max)
{
	char word[16];
	int n, version;

	*min = *max = 0;
	while (*v != '\0') {
		n = 0;
		while (*v == ' ' || *v == ',')
			v++;
		while (*v != '\0' && *v != ' ' && *v != ',' && n < 15)
			word[n++] = *v++;
		word[n] = '\0';
		if (n == 0)
			break;
		if (strcasecmp(word, "TLSv1.2") == 0)
			version = 0x0303;
		else if (strcasecmp(word, "TLSv1.3") == 0)
			version = 0x0304;
		else
			return -1;
		if (*min == 0 || version < *min)
			*min = version;
		if (version > *max)
			*max = version;
	}
	return *min == 0 ? -1 : 0;
}

static int
check_protocols(const struct option_spec *sp, const char *v, char *why,
    size_t n)
{
	char q[QUOTE_MAX + 1];
	int min, max;

	if (parse_protocols(v, &min, &max) == 0)
		return 0;
	snprintf(why, n, "\"%s\" is not a list of protocols (expected "
	    "TLSv1.2, TLSv1.3 or both, separated by a space)",
	    quote(v, q, sizeof(q)));
	return -1;
}

static int
check_value(const struct option_spec *sp, const char *v, char *why, size_t n)
{
	switch (sp->kind) {
	case KIND_INT:
		return check_int(sp, v, why, n);
	case KIND_RATE:
		return check_rate(sp, v, why, n);
	case KIND_TIME:
	case KIND_TIME_NONZERO:
		return check_time(sp, v, why, n);
	case KIND_SECONDS:
		return check_seconds(sp, v, why, n);
	case KIND_SIZE:
		return check_size(sp, v, why, n);
	case KIND_BOOL:
	case KIND_LEVEL:
	case KIND_AFFINITY:
	case KIND_VERIFY:
	case KIND_TLS_IDENTITY:
		return check_keyword(sp, v, why, n);
	case KIND_PROTOCOLS:
		return check_protocols(sp, v, why, n);
	case KIND_WORKERS:
		return check_workers(sp, v, why, n);
	case KIND_PATH:
	case KIND_SOCKET_PATH:
		return check_path(sp, v, why, n);
	case KIND_ADDRESS:
		return check_address(sp, v, why, n);
	case KIND_MODE:
		return check_mode(sp, v, why, n);
	case KIND_LOG:
		return check_log(sp, v, why, n);
	case KIND_PREFIX:
		return check_prefix(sp, v, why, n);
	case KIND_USERS_FILE:
	case KIND_PEM_FILE:
		return check_users_file(sp, v, why, n);
	case KIND_LISTEN:	/* checked by listen_parse */
	case KIND_PROXY_LISTEN:	/* by proxy_listen_parse */
	case KIND_NETS:		/* by proxy_from_parse */
	case KIND_TLS_LISTEN:	/* by tls_listen_parse */
	case KIND_IDENTITY:	/* checked after the parse */
	case KIND_STRING:	/* by OpenSSL, when tls.c builds the context */
		break;
	}
	return 0;
}

/* ------------------------------------------------------------ callbacks */

static const struct option_spec *
spec_of(const cfg_t *cfg, const cfg_opt_t *opt)
{
	bool top = cfg->name == NULL || strcmp(cfg->name, "root") == 0;
	size_t i;

	for (i = 0; i < OPT_COUNT; i++) {
		if (strcmp(options[i].name, opt->name) != 0)
			continue;
		if (top ? options[i].section == NULL :
		    options[i].section != NULL &&
		    strcmp(options[i].section, cfg->name) == 0)
			return &options[i];
	}
	return NULL;
}

/*
 * The validator of every single-valued option.  It returns 0 even for a bad
 * value: the error is recorded, and libconfuse would otherwise stop at the
 * first one.
 */
static int
validate_option(cfg_t *cfg, cfg_opt_t *opt)
{
	const struct option_spec *sp = spec_of(cfg, opt);
	const char *v = cfg_opt_getnstr(opt, 0);
	char why[512];

	if (sp == NULL || current == NULL)
		return 0;
	if (current->line[sp - options] > 0) {
		report(current, cfg->line, sp->shown, "set again, first set on "
		    "line %d (expected each option once)",
		    current->line[sp - options]);
		return 0;
	}
	current->line[sp - options] = cfg->line;
	if (v != NULL && check_value(sp, v, why, sizeof(why)) < 0)
		report(current, cfg->line, sp->shown, "%s", why);
	return 0;
}

/*
 * Called by libconfuse once per element of "listen", the default included,
 * with the element's index nvalues - 1.  The resolved address is kept, so
 * that a name is resolved once and the duplicates compare addresses:
 * "*:8888" and "0.0.0.0:8888" are the same socket.
 */
static int
listen_parse(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct load *ld = current;
	unsigned i = cfg_opt_size(opt) - 1, j;
	char why[256], q[QUOTE_MAX + 1];

	*(const char **)result = value;
	if (ld == NULL)
		return 0;
	ld->line[OPT_LISTEN] = cfg->line;
	if (i >= CONF_MAX_LISTEN) {
		if (i == CONF_MAX_LISTEN)
			report(ld, cfg->line, "listen", "more than %d addresses "
			    "(expected at most %d)", CONF_MAX_LISTEN,
			    CONF_MAX_LISTEN);
		return 0;
	}
	ld->listen_ok[i] = false;
	if (parse_listen_address(value, &ld->listen_addr[i],
	    &ld->listen_len[i], why, sizeof(why)) < 0) {
		report(ld, cfg->line, "listen", "\"%s\": %s (expected host:port, "
		    "[ipv6]:port or *:port, port 1-65535, or unix:/path)",
		    quote(value, q, sizeof(q)), why);
		return 0;
	}
	for (j = 0; j < i; j++) {
		if (ld->listen_ok[j] && same_address(&ld->listen_addr[j],
		    ld->listen_len[j], &ld->listen_addr[i], ld->listen_len[i])) {
			report(ld, cfg->line, "listen", "\"%s\" is the same "
			    "address as \"%s\" (expected each address once)",
			    quote(value, q, sizeof(q)),
			    cfg_opt_getnstr(opt, j));
			return 0;
		}
	}
	ld->listen_ok[i] = true;
	return 0;
}

/*
 * Called once per element of "proxy_protocol" or "tls.listen", which name
 * some of the listen addresses: the address must parse; that it is also a
 * listen address is checked after the parse, when the lists are complete.
 */
static int
listen_subset_parse(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    enum option_id id, bool *ok, struct sockaddr_storage *addr,
    socklen_t *len)
{
	struct load *ld = current;
	unsigned i = cfg_opt_size(opt) - 1;
	const char *name = options[id].shown;
	char why[256], q[QUOTE_MAX + 1];

	if (ld == NULL)
		return 0;
	ld->line[id] = cfg->line;
	if (i >= CONF_MAX_LISTEN) {
		if (i == CONF_MAX_LISTEN)
			report(ld, cfg->line, name, "more than %d "
			    "addresses (expected at most one per listen "
			    "address)", CONF_MAX_LISTEN);
		return 0;
	}
	ok[i] = parse_listen_address(value, &addr[i], &len[i], why,
	    sizeof(why)) == 0;
	if (!ok[i])
		report(ld, cfg->line, name, "\"%s\": %s (expected "
		    "one of the listen addresses)", quote(value, q, sizeof(q)),
		    why);
	return 0;
}

static int
proxy_listen_parse(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	*(const char **)result = value;
	return current == NULL ? 0 : listen_subset_parse(cfg, opt, value,
	    OPT_PROXY_PROTOCOL, current->proxy_ok, current->proxy_addr,
	    current->proxy_len);
}

static int
tls_listen_parse(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	*(const char **)result = value;
	return current == NULL ? 0 : listen_subset_parse(cfg, opt, value,
	    OPT_TLS_LISTEN, current->tls_ok, current->tls_addr,
	    current->tls_len);
}

/* Called once per element of "proxy_protocol_from". */
static int
proxy_from_parse(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct load *ld = current;
	unsigned i = cfg_opt_size(opt) - 1;
	char why[256], q[QUOTE_MAX + 1];

	*(const char **)result = value;
	if (ld == NULL)
		return 0;
	ld->line[OPT_PROXY_FROM] = cfg->line;
	if (i >= CONF_MAX_PROXY_FROM) {
		if (i == CONF_MAX_PROXY_FROM)
			report(ld, cfg->line, "proxy_protocol_from", "more than "
			    "%d networks (expected at most %d)",
			    CONF_MAX_PROXY_FROM, CONF_MAX_PROXY_FROM);
		return 0;
	}
	if (proxy_net_parse(value, &ld->proxy_from[i], why, sizeof(why)) < 0)
		report(ld, cfg->line, "proxy_protocol_from", "\"%s\": %s "
		    "(expected an address such as 198.51.100.7 or a network "
		    "such as 198.51.100.0/24 or 2001:db8::/32)",
		    quote(value, q, sizeof(q)), why);
	return 0;
}

/* ------------------------------------------------------------ the parse */

static bool
kind_is_list(enum kind k)
{
	return k == KIND_LISTEN || k == KIND_PROXY_LISTEN || k == KIND_NETS ||
	    k == KIND_TLS_LISTEN;
}

static cfg_opt_t
list_opt(enum kind k)
{
	cfg_opt_t listen = CFG_STR_LIST_CB(NULL, NULL, CFGF_NONE, listen_parse);
	cfg_opt_t proxy = CFG_STR_LIST_CB(NULL, NULL, CFGF_NONE,
	    proxy_listen_parse);
	cfg_opt_t nets = CFG_STR_LIST_CB(NULL, NULL, CFGF_NONE,
	    proxy_from_parse);
	cfg_opt_t tls = CFG_STR_LIST_CB(NULL, NULL, CFGF_NONE,
	    tls_listen_parse);

	return k == KIND_LISTEN ? listen : k == KIND_PROXY_LISTEN ? proxy :
	    k == KIND_TLS_LISTEN ? tls : nets;
}

static cfg_opt_t *
build_opts(const char *section, cfg_opt_t *out)
{
	cfg_opt_t str = CFG_STR(NULL, NULL, CFGF_NONE);
	cfg_opt_t end = CFG_END();
	size_t i, n = 0;

	for (i = 0; i < OPT_COUNT; i++) {
		const struct option_spec *sp = &options[i];

		if ((sp->section == NULL) != (section == NULL) ||
		    (section != NULL && strcmp(sp->section, section) != 0))
			continue;
		out[n] = kind_is_list(sp->kind) ? list_opt(sp->kind) : str;
		out[n].name = sp->name;
		if (kind_is_list(sp->kind))
			out[n].def.parsed = (char *)(uintptr_t)sp->def;
		else
			out[n].def.string = sp->def;
		n++;
	}
	out[n] = end;
	return out;
}

static cfg_t *
cfg_new(struct load *ld)
{
	static cfg_opt_t top[OPT_COUNT + 4], auth[OPT_COUNT + 1],
	    tls[OPT_COUNT + 1];
	cfg_opt_t sec = CFG_SEC("auth", NULL, CFGF_NONE);
	cfg_opt_t tsec = CFG_SEC("tls", NULL, CFGF_NONE);
	cfg_t *cfg;
	size_t i, n;

	/* cfg_init copies the tables, so static ones are only a template. */
	build_opts("auth", auth);
	build_opts("tls", tls);
	build_opts(NULL, top);
	for (n = 0; top[n].name != NULL; n++)
		;
	top[n + 3] = top[n];
	top[n] = sec;
	top[n].subopts = auth;
	top[n + 1] = conf_module_section();
	top[n + 2] = tsec;
	top[n + 2].subopts = tls;
	if ((cfg = cfg_init(top, CFGF_NONE)) == NULL) {
		report(ld, 0, NULL, "cannot set up the parser: %s",
		    strerror(errno));
		return NULL;
	}
	cfg_set_error_function(cfg, cfg_error_cb);
	conf_module_validators(cfg);
	for (i = 0; i < OPT_COUNT; i++)
		if (!kind_is_list(options[i].kind))
			cfg_set_validate_func(cfg, options[i].path,
			    validate_option);
	return cfg;
}

/*
 * The file an open descriptor reads, links resolved, for the logs: which
 * file a reload read when path is a link that may have been swapped.
 */
static void
source_of(int fd, const char *path, char *buf, size_t len)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if ((n = readlink(proc, buf, len - 1)) > 0 && (size_t)n < len - 1)
		buf[n] = '\0';
	else
		snprintf(buf, len, "%s", path);
}

/*
 * The whole file, read into memory for conf_lex and given to libconfuse
 * through fmemopen; messages keep naming the file by ld->path.
 */
static char *
read_conf(struct load *ld, const char *path, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		report(ld, 0, NULL, "cannot open: %s", strerror(errno));
		return NULL;
	}
	source_of(fd, path, ld->source, sizeof(ld->source));
	if (fstat(fd, &st) < 0)
		report(ld, 0, NULL, "cannot read: %s", strerror(errno));
	else if (!S_ISREG(st.st_mode))
		report(ld, 0, NULL, "cannot read: %s", S_ISDIR(st.st_mode) ?
		    "is a directory" : "not a regular file");
	else if (st.st_size > CONF_FILE_MAX)
		report(ld, 0, NULL, "cannot read: larger than %d bytes "
		    "(expected a configuration file)", CONF_FILE_MAX);
	else if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		report(ld, 0, NULL, "out of memory");
	else if ((n = read(fd, buf, (size_t)st.st_size + 1)) < 0 ||
	    n > st.st_size) {
		report(ld, 0, NULL, "cannot read: %s", n < 0 ? strerror(errno) :
		    "the file grew while it was read");
		free(buf);
		buf = NULL;
	}
	close(fd);
	*len = buf != NULL ? (size_t)n : 0;
	return buf;
}

static void
lex_error(void *arg, int line, const char *msg)
{
	report(arg, line, NULL, "%s", msg);
}

/* Where a list was last assigned, which an empty list cannot tell. */
static void
lex_assign(void *arg, const char *section, const char *name, int line,
    const char *value)
{
	struct load *ld = arg;

	(void)value;
	for (size_t i = 0; i < OPT_COUNT; i++)
		if (kind_is_list(options[i].kind) &&
		    strcmp(options[i].name, name) == 0 &&
		    (section == NULL) == (options[i].section == NULL) &&
		    (section == NULL ||
		    strcmp(section, options[i].section) == 0))
			ld->line[i] = line;
}

/* conf_lex, then libconfuse on what it left; CFG_SUCCESS or an error. */
static int
parse_text(struct load *ld, cfg_t *cfg, char *text, size_t len)
{
	const struct conf_lex_calls calls = { lex_error, lex_assign, ld };
	FILE *fp;
	int rc;

	if (conf_lex(text, len, &calls) > 0)
		return CFG_PARSE_ERROR;
	if (len == 0)			/* fmemopen may refuse a size of 0 */
		return CFG_SUCCESS;
	if ((fp = fmemopen(text, len, "r")) == NULL) {
		report(ld, 0, NULL, "cannot parse: %s", strerror(errno));
		return CFG_PARSE_ERROR;
	}
	rc = cfg_parse_fp(cfg, fp);
	fclose(fp);
	if (rc != CFG_SUCCESS && ld->nerrors == 0)
		report(ld, 0, NULL, "cannot parse: %s", strerror(errno));
	return rc;
}

static const char *
value_of(cfg_t *cfg, enum option_id id)
{
	return cfg_getstr(cfg, options[id].path);
}

static int
line_of(const struct load *ld, enum option_id a, enum option_id b)
{
	return ld->line[a] > 0 ? ld->line[a] : ld->line[b];
}

static void
check_water(struct load *ld, cfg_t *cfg)
{
	const char *hv = value_of(cfg, OPT_HIGH_WATER);
	const char *lv = value_of(cfg, OPT_LOW_WATER);
	uint64_t high, low;
	char why[512];

	/* A value already reported as bad is not compared. */
	if (check_value(&options[OPT_HIGH_WATER], hv, why, sizeof(why)) < 0 ||
	    check_value(&options[OPT_LOW_WATER], lv, why, sizeof(why)) < 0 ||
	    conf_parse_size(hv, &high) < 0 || conf_parse_size(lv, &low) < 0 ||
	    low < high)
		return;
	report(ld, line_of(ld, OPT_LOW_WATER, OPT_HIGH_WATER),
	    options[OPT_LOW_WATER].shown, "%llu bytes is not below "
	    "output_high_water, %llu bytes (expected low < high)",
	    (unsigned long long)low, (unsigned long long)high);
}

static void
check_auth(struct load *ld, cfg_t *cfg)
{
	const char *file = value_of(cfg, OPT_AUTH_USERS_FILE);
	int required;

	if (keyword_find(bool_words, value_of(cfg, OPT_AUTH_REQUIRED),
	    &required) < 0 || !required || (file != NULL && *file != '\0'))
		return;
	report(ld, line_of(ld, OPT_AUTH_REQUIRED, OPT_AUTH_USERS_FILE),
	    options[OPT_AUTH_REQUIRED].shown, "true without a users file "
	    "(expected users_file = \"/path\" in the auth section)");
}

/*
 * Only root can change identity, so only root needs the user and group to
 * exist: a goprod started by another user runs as that user whatever
 * these say, and its tests and its -t must not depend on /etc/passwd.
 */
static void
check_identity(struct load *ld, cfg_t *cfg)
{
	const char *user = value_of(cfg, OPT_USER);
	const char *group = value_of(cfg, OPT_GROUP);
	char q[QUOTE_MAX + 1];

	if (geteuid() != 0)
		return;
	if (user != NULL && *user != '\0' && getpwnam(user) == NULL)
		report(ld, ld->line[OPT_USER], "user", "no such user \"%s\"%s "
		    "(expected an existing user, or \"\" to keep running as "
		    "root)", quote(user, q, sizeof(q)),
		    ld->line[OPT_USER] > 0 ? "" : ", the default");
	if (group != NULL && *group != '\0' && getgrnam(group) == NULL)
		report(ld, ld->line[OPT_GROUP], "group", "no such group \"%s\"%s "
		    "(expected an existing group, or \"\" for the user's "
		    "group)", quote(group, q, sizeof(q)),
		    ld->line[OPT_GROUP] > 0 ? "" : ", the default");
	group = value_of(cfg, OPT_UNIX_GROUP);
	if (group != NULL && *group != '\0' && getgrnam(group) == NULL)
		report(ld, ld->line[OPT_UNIX_GROUP], "unix_group", "no such "
		    "group \"%s\" (expected an existing group, or \"\" for "
		    "group)", quote(group, q, sizeof(q)));
}

/* Each address of proxy_protocol or tls.listen must be a listen address. */
static void
check_in_listen(struct load *ld, cfg_t *cfg, enum option_id id,
    const bool *ok, const struct sockaddr_storage *addr,
    const socklen_t *len)
{
	const char *path = options[id].path;
	unsigned n = cfg_size(cfg, path), i, j, nl;
	char q[QUOTE_MAX + 1];

	nl = cfg_size(cfg, "listen");
	for (i = 0; i < n && i < CONF_MAX_LISTEN; i++) {
		if (!ok[i])
			continue;
		for (j = 0; j < nl && j < CONF_MAX_LISTEN; j++)
			if (ld->listen_ok[j] && same_address(&ld->listen_addr[j],
			    ld->listen_len[j], &addr[i], len[i]))
				break;
		if (j == nl || j == CONF_MAX_LISTEN)
			report(ld, ld->line[id], options[id].shown, "\"%s\" is "
			    "not a listen address (expected each address also "
			    "in listen)", quote(cfg_getnstr(cfg, path, i), q,
			    sizeof(q)));
	}
}

static void
check_proxy(struct load *ld, cfg_t *cfg)
{
	unsigned n = cfg_size(cfg, "proxy_protocol"), tcp = 0;

	check_in_listen(ld, cfg, OPT_PROXY_PROTOCOL, ld->proxy_ok,
	    ld->proxy_addr, ld->proxy_len);
	/* A unix listener trusts its peers: the file's mode says who. */
	for (unsigned i = 0; i < n && i < CONF_MAX_LISTEN; i++)
		tcp += ld->proxy_ok[i] && ld->proxy_addr[i].ss_family != AF_UNIX;
	if (tcp > 0 && cfg_size(cfg, "proxy_protocol_from") == 0)
		report(ld, ld->line[OPT_PROXY_PROTOCOL], "proxy_protocol",
		    "set without proxy_protocol_from, so every connection "
		    "would be refused (expected proxy_protocol_from = "
		    "{\"address of the load balancer\"})");
}

/* ------------------------------------------------------------ collisions */

/*
 * What a path names: the file when it exists, otherwise its parent
 * directory and its last component, so that /var/run/x and /run/x are one
 * file where /var/run is a link to /run, before either exists.
 */
struct file_key {
	dev_t dev;
	ino_t ino;
	const char *base;	/* NULL when the file itself exists */
};

static int
file_key(const char *path, struct file_key *k)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;

	k->base = NULL;
	if (stat(path, &st) == 0) {
		k->dev = st.st_dev;
		k->ino = st.st_ino;
		return 0;
	}
	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir))
		return -1;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if (stat(slash == path ? "/" : dir, &st) < 0)
		return -1;
	k->dev = st.st_dev;
	k->ino = st.st_ino;
	k->base = slash + 1;
	return 0;
}

/* Without a file or a parent to stat: "//" and "/./" make no difference. */
static bool
same_text(const char *a, const char *b)
{
	for (;;) {
		while (a[0] == '/' && (a[1] == '/' || (a[1] == '.' &&
		    (a[2] == '/' || a[2] == '\0'))))
			a += a[1] == '/' ? 1 : 2;
		while (b[0] == '/' && (b[1] == '/' || (b[1] == '.' &&
		    (b[2] == '/' || b[2] == '\0'))))
			b += b[1] == '/' ? 1 : 2;
		if (*a != *b)
			return (*a == '\0' && strcmp(b, "/") == 0) ||
			    (*b == '\0' && strcmp(a, "/") == 0);
		if (*a == '\0')
			return true;
		a++;
		b++;
	}
}

static bool
same_file(const char *a, const char *b)
{
	struct file_key ka, kb;

	if (file_key(a, &ka) < 0 || file_key(b, &kb) < 0)
		return same_text(a, b);
	if (ka.dev != kb.dev || ka.ino != kb.ino ||
	    (ka.base == NULL) != (kb.base == NULL))
		return false;
	return ka.base == NULL || strcmp(ka.base, kb.base) == 0;
}

struct named_path {
	const char *shown;	/* the option, or "the configuration file" */
	int line;
	const char *path;	/* NULL = not used */
};

/* The value of an option, NULL when unset, "" or already reported bad. */
static const char *
good_value(cfg_t *cfg, enum option_id id)
{
	const char *v = value_of(cfg, id);
	char why[512];

	if (v == NULL || *v == '\0' ||
	    check_value(&options[id], v, why, sizeof(why)) < 0)
		return NULL;
	if (id == OPT_LOG)
		return strncmp(v, "file:", 5) == 0 ? v + 5 : NULL;
	return v;
}

/*
 * Every file goprod creates, writes or reads by name must be a file of its
 * own: with stats_file = pid_file the pid overwrote the stats segment, no
 * worker could take an entry in it, and the start still said it was done.
 */
static void
check_paths(struct load *ld, cfg_t *cfg)
{
	static const enum option_id ids[] = { OPT_PID_FILE, OPT_STATS_FILE,
		OPT_CONTROL_SOCKET, OPT_LOG, OPT_AUTH_USERS_FILE };
	struct named_path p[1 + sizeof(ids) / sizeof(ids[0]) + CONF_MAX_LISTEN];
	char q[QUOTE_MAX + 1], where[32];
	size_t n = 0, i, j;

	p[n++] = (struct named_path){ "the configuration file", 0, ld->path };
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		p[n++] = (struct named_path){ options[ids[i]].shown,
			ld->line[ids[i]], good_value(cfg, ids[i]) };
	/* The socket files of unix listeners are files of goprod's too. */
	for (i = 0; i < cfg_size(cfg, "listen") && i < CONF_MAX_LISTEN; i++)
		if (ld->listen_ok[i] && ld->listen_addr[i].ss_family == AF_UNIX)
			p[n++] = (struct named_path){ "listen",
				ld->line[OPT_LISTEN], ((struct sockaddr_un *)
				&ld->listen_addr[i])->sun_path };
	for (j = 1; j < n; j++)
		for (i = 0; i < j && p[j].path != NULL; i++) {
			if (p[i].path == NULL || !same_file(p[i].path,
			    p[j].path))
				continue;
			snprintf(where, sizeof(where), p[i].line > 0 ?
			    " (line %d)" : i > 0 ? " (its default)" : "",
			    p[i].line);
			report(ld, p[j].line > 0 ? p[j].line : p[i].line,
			    p[j].shown, "\"%s\" is the same file as %s%s "
			    "(expected a file of its own)", quote(p[j].path, q,
			    sizeof(q)), p[i].shown, where);
			break;
		}
}

/*
 * metrics_listen on a listen address would join the workers' SO_REUSEPORT
 * group, and the kernel would share the connections between them.
 */
static void
check_metrics(struct load *ld, cfg_t *cfg)
{
	const char *v = good_value(cfg, OPT_METRICS_LISTEN);
	struct conf_listen metrics, each;
	char why[256], q[QUOTE_MAX + 1];
	unsigned i, nl = cfg_size(cfg, "listen");

	memset(&metrics, 0, sizeof(metrics));
	if (v == NULL || parse_address(v, &metrics.addr, &metrics.addrlen, why,
	    sizeof(why)) < 0)
		return;
	for (i = 0; i < nl && i < CONF_MAX_LISTEN; i++) {
		if (!ld->listen_ok[i])
			continue;
		memset(&each, 0, sizeof(each));
		each.addr = ld->listen_addr[i];
		each.addrlen = ld->listen_len[i];
		if (!listen_overlap(&metrics, &each))
			continue;
		report(ld, ld->line[OPT_METRICS_LISTEN], "metrics_listen",
		    "\"%s\" overlaps the listen address \"%s\" (expected an "
		    "address and port that no listen address uses)",
		    quote(v, q, sizeof(q)), cfg_getnstr(cfg, "listen", i));
		return;
	}
}

static bool
is_set(cfg_t *cfg, enum option_id id)
{
	const char *v = value_of(cfg, id);

	return v != NULL && *v != '\0';
}

static int keyword_of(cfg_t *cfg, enum option_id id,
    const struct keyword *k);

/* What a TLS listener needs: a certificate, its key, a CA to verify with. */
static void
check_tls(struct load *ld, cfg_t *cfg)
{
	int verify = keyword_of(cfg, OPT_TLS_VERIFY, verify_words);
	int identity = keyword_of(cfg, OPT_TLS_IDENTITY, tls_identity_words);

	check_in_listen(ld, cfg, OPT_TLS_LISTEN, ld->tls_ok, ld->tls_addr,
	    ld->tls_len);
	if (cfg_size(cfg, options[OPT_TLS_LISTEN].path) == 0)
		return;
#ifndef HAVE_TLS
	report(ld, ld->line[OPT_TLS_LISTEN], options[OPT_TLS_LISTEN].shown,
	    "this goprod was built without TLS (expected no TLS listener, or "
	    "goprod built with OpenSSL 3: configure --with-tls)");
#endif
	if (!is_set(cfg, OPT_TLS_CERTIFICATE) || !is_set(cfg, OPT_TLS_KEY))
		report(ld, ld->line[OPT_TLS_LISTEN],
		    options[OPT_TLS_LISTEN].shown, "set without %s (expected "
		    "certificate = \"/path/cert.pem\" and key = "
		    "\"/path/key.pem\" in the tls section)",
		    is_set(cfg, OPT_TLS_CERTIFICATE) ? "key" : "certificate");
	if (verify != TLS_VERIFY_OFF && !is_set(cfg, OPT_TLS_CLIENT_CA))
		report(ld, ld->line[OPT_TLS_VERIFY],
		    options[OPT_TLS_VERIFY].shown, "set without client_ca "
		    "(expected client_ca = \"/path/ca.pem\", the CA that "
		    "signs the client certificates)");
	if (identity != TLS_IDENTITY_OFF && verify == TLS_VERIFY_OFF)
		report(ld, ld->line[OPT_TLS_IDENTITY],
		    options[OPT_TLS_IDENTITY].shown, "set with verify_client "
		    "off, so no client certificate is asked for (expected "
		    "verify_client = optional or require)");
}

static void
check_relations(struct load *ld, cfg_t *cfg)
{
	if (cfg_size(cfg, "listen") == 0)
		report(ld, ld->line[OPT_LISTEN], "listen", "empty list "
		    "(expected at least one host:port)");
	check_water(ld, cfg);
	check_auth(ld, cfg);
	check_identity(ld, cfg);
	check_proxy(ld, cfg);
	check_paths(ld, cfg);
	check_metrics(ld, cfg);
	check_tls(ld, cfg);
}

/* ------------------------------------------------------------ the copy */

/* After the parse every value is known good: these cannot fail. */
static uint64_t
uint_of(cfg_t *cfg, enum option_id id)
{
	uint64_t v = 0;

	if (options[id].kind == KIND_SIZE)
		conf_parse_size(value_of(cfg, id), &v);
	else
		parse_uint(value_of(cfg, id), &v);
	return v;
}

static double
double_of(cfg_t *cfg, enum option_id id)
{
	const char *end;
	double v = 0;

	if (options[id].kind == KIND_RATE)
		parse_decimal(value_of(cfg, id), &end, &v);
	else
		conf_parse_time(value_of(cfg, id), &v);
	return v;
}

static int
keyword_of(cfg_t *cfg, enum option_id id, const struct keyword *k)
{
	int v = 0;

	keyword_find(k, value_of(cfg, id), &v);
	return v;
}

/* strdup that keeps NULL; "" becomes NULL when empty_is_null. */
static int
dup_value(char **dst, const char *s, bool empty_is_null)
{
	*dst = NULL;
	if (s == NULL || (empty_is_null && *s == '\0'))
		return 0;
	return (*dst = strdup(s)) == NULL ? -1 : 0;
}

static unsigned
workers_of(cfg_t *cfg, bool *is_auto)
{
	long n;

	*is_auto = strcasecmp(value_of(cfg, OPT_WORKERS), "auto") == 0;
	if (!*is_auto)
		return (unsigned)uint_of(cfg, OPT_WORKERS);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > CONF_MAX_WORKERS ? CONF_MAX_WORKERS : (unsigned)n;
}

static int
copy_listen(const struct load *ld, cfg_t *cfg, struct gopro_conf *c)
{
	size_t i;

	c->nlisten = cfg_size(cfg, "listen");
	for (i = 0; i < c->nlisten; i++) {
		c->listen[i].addr = ld->listen_addr[i];
		c->listen[i].addrlen = ld->listen_len[i];
		if (dup_value(&c->listen[i].text, cfg_getnstr(cfg, "listen",
		    (unsigned)i), false) < 0)
			return -1;
	}
	return 0;
}

/* Mark the PROXY listeners and take the trusted networks. */
static void
copy_proxy(const struct load *ld, cfg_t *cfg, struct gopro_conf *c)
{
	size_t n = cfg_size(cfg, "proxy_protocol");

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < c->nlisten; j++)
			if (same_address(&c->listen[j].addr, c->listen[j].addrlen,
			    &ld->proxy_addr[i], ld->proxy_len[i]))
				c->listen[j].proxy = true;
	c->nproxy_from = cfg_size(cfg, "proxy_protocol_from");
	memcpy(c->proxy_from, ld->proxy_from,
	    c->nproxy_from * sizeof(c->proxy_from[0]));
}

/* Mark the TLS listeners and take the section's values. */
static int
copy_tls(const struct load *ld, cfg_t *cfg, struct gopro_conf *c)
{
	struct conf_tls *t = &c->tls;
	size_t n = cfg_size(cfg, options[OPT_TLS_LISTEN].path);

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < c->nlisten; j++)
			if (same_address(&c->listen[j].addr, c->listen[j].addrlen,
			    &ld->tls_addr[i], ld->tls_len[i]))
				c->listen[j].tls = true;
	parse_protocols(value_of(cfg, OPT_TLS_PROTOCOLS), &t->min_version,
	    &t->max_version);
	t->verify_client = keyword_of(cfg, OPT_TLS_VERIFY, verify_words);
	t->identity = keyword_of(cfg, OPT_TLS_IDENTITY, tls_identity_words);
	t->handshake_timeout = double_of(cfg, OPT_TLS_HANDSHAKE_TIMEOUT);
	t->ktls = keyword_of(cfg, OPT_TLS_KTLS, bool_words);
	t->ticket_rotation = (unsigned)double_of(cfg, OPT_TLS_TICKET_ROTATION);
	return dup_value(&t->certificate, value_of(cfg, OPT_TLS_CERTIFICATE),
	    true) < 0 ||
	    dup_value(&t->key, value_of(cfg, OPT_TLS_KEY), true) < 0 ||
	    dup_value(&t->client_ca, value_of(cfg, OPT_TLS_CLIENT_CA),
	    true) < 0 ||
	    dup_value(&t->crl, value_of(cfg, OPT_TLS_CRL), true) < 0 ||
	    dup_value(&t->ciphers, value_of(cfg, OPT_TLS_CIPHERS), true) < 0 ||
	    dup_value(&t->ciphersuites, value_of(cfg, OPT_TLS_CIPHERSUITES),
	    true) < 0 ? -1 : 0;
}

#ifdef HAVE_TLS
/*
 * Load the certificate, key, CA and CRL now, in the process that reads the
 * file (the master, or goprod -t): a file that does not load, or a key that
 * does not match, is a configuration error like any other.
 */
/*
 * Each file of the tls section that tls_ctx_new will read must open for
 * reading as as: every one that does not is an error at its option's line.
 */
static int
tls_files_readable(struct load *ld, const struct gopro_conf *c,
    const struct readable_as *as)
{
	static const enum option_id file[] = { OPT_TLS_CERTIFICATE,
		OPT_TLS_KEY, OPT_TLS_CLIENT_CA, OPT_TLS_CRL };
	const char *path[] = { c->tls.certificate, c->tls.key,
		c->tls.verify_client != TLS_VERIFY_OFF ? c->tls.client_ca : NULL,
		c->tls.crl };
	char why[512];
	int rc = 0;

	for (size_t i = 0; i < sizeof(file) / sizeof(file[0]); i++)
		if (path[i] != NULL &&
		    readable_try(as, path[i], why, sizeof(why)) < 0) {
			report(ld, ld->line[file[i]], options[file[i]].shown,
			    "%s: %s", path[i], why);
			rc = -1;
		}
	return rc;
}

static int
build_tls(struct load *ld, struct gopro_conf *c)
{
	struct readable_as as;
	const char *opt = NULL;
	char why[512];

	if (c->tls.certificate == NULL || !load_tls)
		return 0;
	/* As root, with the identity of every reload (see readable.h). */
	if (readable_become(c, &as, why, sizeof(why)) < 0) {
		report(ld, ld->line[OPT_USER], "user", "%s", why);
		return -1;
	}
	if (tls_files_readable(ld, c, &as) < 0) {
		readable_unbecome(&as);
		return -1;
	}
	c->tls.ctx = tls_ctx_new(&c->tls, &opt, why, sizeof(why));
	readable_unbecome(&as);
	if (c->tls.ctx != NULL) {
		c->tls.expiry = (int64_t)tls_ctx_expiry(c->tls.ctx);
		return 0;
	}
	for (size_t i = 0; i < OPT_COUNT; i++)
		if (options[i].section != NULL &&
		    strcmp(options[i].section, "tls") == 0 &&
		    strcmp(options[i].name, opt) == 0) {
			report(ld, ld->line[i], options[i].shown, "%s", why);
			return -1;
		}
	report(ld, 0, "tls", "%s", why);
	return -1;
}
#endif

static int
copy_log(cfg_t *cfg, struct gopro_conf *c)
{
	const char *log = value_of(cfg, OPT_LOG);

	c->log_level = keyword_of(cfg, OPT_LOG_LEVEL, level_words);
	if (strcmp(log, "stderr") == 0)
		c->log_target = LOG_TARGET_STDERR;
	else if (strcmp(log, "syslog") == 0)
		c->log_target = LOG_TARGET_SYSLOG;
	else {
		c->log_target = LOG_TARGET_FILE;
		return dup_value(&c->log_file, log + strlen("file:"), false);
	}
	return 0;
}

static void
copy_numbers(cfg_t *cfg, struct gopro_conf *c)
{
	c->backlog = (int)uint_of(cfg, OPT_BACKLOG);
	c->workers = workers_of(cfg, &c->workers_auto);
	c->cpu_affinity = keyword_of(cfg, OPT_AFFINITY, affinity_words);
	c->log_connections = keyword_of(cfg, OPT_LOG_CONNECTIONS, bool_words);
	c->idle_timeout = double_of(cfg, OPT_IDLE_TIMEOUT);
	c->frame_timeout = double_of(cfg, OPT_FRAME_TIMEOUT);
	c->send_timeout = double_of(cfg, OPT_SEND_TIMEOUT);
	c->drain_timeout = double_of(cfg, OPT_DRAIN_TIMEOUT);
	c->goaway_grace = double_of(cfg, OPT_GOAWAY_GRACE);
	c->block_warn = double_of(cfg, OPT_BLOCK_WARN);
	c->worker_stall_timeout = double_of(cfg, OPT_STALL_TIMEOUT);
	c->rollback_crashes = (unsigned)uint_of(cfg, OPT_ROLLBACK_CRASHES);
	c->rollback_window = double_of(cfg, OPT_ROLLBACK_WINDOW);
	c->max_body = (uint32_t)uint_of(cfg, OPT_MAX_BODY);
	c->max_connections = (unsigned)uint_of(cfg, OPT_MAX_CONNECTIONS);
	c->output_high_water = (size_t)uint_of(cfg, OPT_HIGH_WATER);
	c->output_low_water = (size_t)uint_of(cfg, OPT_LOW_WATER);
	c->auth.required = keyword_of(cfg, OPT_AUTH_REQUIRED, bool_words);
	c->auth.max_attempts = (unsigned)uint_of(cfg, OPT_AUTH_MAX_ATTEMPTS);
	c->auth.login_rate = double_of(cfg, OPT_AUTH_LOGIN_RATE);
	c->auth.login_burst = (unsigned)uint_of(cfg, OPT_AUTH_LOGIN_BURST);
	c->auth.threads = (unsigned)uint_of(cfg, OPT_AUTH_THREADS);
	c->auth.queue_timeout = double_of(cfg, OPT_AUTH_QUEUE_TIMEOUT);
	parse_mode(value_of(cfg, OPT_UNIX_MODE), &c->unix_mode);
}

static int
copy_strings(cfg_t *cfg, struct gopro_conf *c)
{
	if (dup_value(&c->user, value_of(cfg, OPT_USER), false) < 0 ||
	    dup_value(&c->group, value_of(cfg, OPT_GROUP), false) < 0 ||
	    dup_value(&c->pid_file, value_of(cfg, OPT_PID_FILE), false) < 0 ||
	    dup_value(&c->stats_file, value_of(cfg, OPT_STATS_FILE),
	    false) < 0 ||
	    dup_value(&c->control_socket, value_of(cfg, OPT_CONTROL_SOCKET),
	    false) < 0 ||
	    dup_value(&c->unix_group, value_of(cfg, OPT_UNIX_GROUP),
	    true) < 0 ||
	    dup_value(&c->metrics_listen, value_of(cfg, OPT_METRICS_LISTEN),
	    true) < 0 ||
	    dup_value(&c->auth.users_file, value_of(cfg, OPT_AUTH_USERS_FILE),
	    true) < 0 ||
	    dup_value(&c->message_prefix, value_of(cfg, OPT_MESSAGE_PREFIX),
	    false) < 0)
		return -1;
	c->message_prefix_len = strlen(c->message_prefix);
	return 0;
}

static struct gopro_conf *
copy_conf(struct load *ld, cfg_t *cfg, const char *path)
{
	struct gopro_conf *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto oom;
	copy_numbers(cfg, c);
	if (dup_value(&c->path, path, false) < 0 ||
	    dup_value(&c->source, ld->source, false) < 0 ||
	    copy_listen(ld, cfg, c) < 0 || copy_log(cfg, c) < 0 ||
	    copy_strings(cfg, c) < 0)
		goto oom;
	copy_proxy(ld, cfg, c);
	if (copy_tls(ld, cfg, c) < 0)
		goto oom;
#ifdef HAVE_TLS
	if (build_tls(ld, c) < 0) {
		conf_free(c);
		return NULL;
	}
#endif
	return c;
oom:
	report(ld, 0, NULL, "out of memory");
	conf_free(c);
	return NULL;
}

/* The whole parsed tree as text, defaults filled in: -T, reload diffs. */
static int
keep_effective(struct load *ld, cfg_t *cfg, struct gopro_conf *conf)
{
	size_t len;
	FILE *f = open_memstream(&conf->effective, &len);
	bool printed;

	if (f == NULL)
		goto fail;
	printed = cfg_print(cfg, f) == CFG_SUCCESS;
	if (fclose(f) != 0 || !printed)
		goto fail;
	return 0;
fail:
	report(ld, 0, NULL, "cannot print the configuration: %s",
	    strerror(errno));
	return -1;
}

/*
 * Parse and check path into *out; with dump, also print the whole parsed
 * tree, defaults filled in, in the file's own syntax (goprod -T).
 */
static int
load_file(const char *path, FILE *dump, struct gopro_conf **out, char *err,
    size_t errlen)
{
	struct load ld;
	struct gopro_conf *conf = NULL;
	cfg_t *cfg = NULL;
	char *text = NULL;
	size_t len;

	*out = NULL;
	memset(&ld, 0, sizeof(ld));
	ld.path = path != NULL ? path : "(null)";
	ld.err = err;
	ld.errlen = err != NULL ? errlen : 0;
	if (ld.errlen > 0)
		err[0] = '\0';
	current = &ld;
	conf_module_begin(module_report);
	if (path == NULL || (text = read_conf(&ld, path, &len)) == NULL ||
	    (cfg = cfg_new(&ld)) == NULL)
		goto done;
	if ((cfg->filename = strdup(path)) == NULL) {
		report(&ld, 0, NULL, "out of memory");
		goto done;
	}
	if (parse_text(&ld, cfg, text, len) == CFG_SUCCESS)
		check_relations(&ld, cfg);
	if (ld.nerrors == 0)
		conf = copy_conf(&ld, cfg, path);
	if (conf != NULL && conf_module_copy(cfg, conf) < 0) {
		if (ld.nerrors == 0)
			report(&ld, 0, NULL, "out of memory");
		conf_free(conf);
		conf = NULL;
	}
	if (conf != NULL && keep_effective(&ld, cfg, conf) < 0) {
		conf_free(conf);
		conf = NULL;
	}
	if (conf != NULL && dump != NULL)
		fputs(conf->effective, dump);
done:
	finish_errors(&ld);
	current = NULL;
	if (cfg != NULL)
		cfg_free(cfg);
	free(text);
	*out = conf;
	return conf != NULL ? 0 : -1;
}

int
conf_load(const char *path, struct gopro_conf **out, char *err,
    size_t errlen)
{
	return load_file(path, NULL, out, err, errlen);
}

int
conf_load_print(const char *path, FILE *dump, struct gopro_conf **out,
    char *err, size_t errlen)
{
	return load_file(path, dump, out, err, errlen);
}

void
conf_set_load_tls(bool load)
{
	load_tls = load;
}

void
conf_free(struct gopro_conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nlisten; i++)
		free(c->listen[i].text);
	free(c->path);
	free(c->source);
	free(c->user);
	free(c->group);
	free(c->pid_file);
	free(c->stats_file);
	free(c->control_socket);
	free(c->unix_group);
	free(c->metrics_listen);
	free(c->log_file);
	free(c->message_prefix);
	free(c->auth.users_file);
	free(c->effective);
	conf_module_free(c);
	free(c->tls.certificate);
	free(c->tls.key);
	free(c->tls.client_ca);
	free(c->tls.crl);
	free(c->tls.ciphers);
	free(c->tls.ciphersuites);
#ifdef HAVE_TLS
	tls_ctx_free(c->tls.ctx);
#endif
	free(c);
}

/* ------------------------------------------------------------ salvage */

static void
salvage_error(void *arg, int line, const char *msg)
{
	(void)arg;
	(void)line;
	(void)msg;
}

/* The last top-level setting of each path counts, as in libconfuse. */
static void
salvage_assign(void *arg, const char *section, const char *name, int line,
    const char *value)
{
	struct conf_where *w = arg;
	char **slot = NULL;

	(void)line;
	if (section != NULL || *value == '\0' || strstr(value, "${") != NULL)
		return;
	if (strcmp(name, "control_socket") == 0)
		slot = &w->control_socket;
	else if (strcmp(name, "stats_file") == 0)
		slot = &w->stats_file;
	else if (strcmp(name, "pid_file") == 0)
		slot = &w->pid_file;
	else if (strcmp(name, "listen") == 0)
		slot = &w->listen;
	if (slot == NULL || (slot != &w->listen && *value != '/'))
		return;
	free(*slot);
	*slot = strdup(value);
}

/* A default as the option table writes it: a path, or {"host:port"}. */
static char *
default_of(enum option_id id)
{
	const char *d = options[id].def;
	size_t n;

	if (!kind_is_list(options[id].kind))
		return strdup(d);
	d += strspn(d, "{\"");
	n = strcspn(d, "\"");
	return strndup(d, n);
}

void
conf_where_salvage(const char *path, struct conf_where *w)
{
	struct conf_lex_calls calls = { salvage_error, salvage_assign, w };
	struct load ld;
	char *text;
	size_t len;

	memset(w, 0, sizeof(*w));
	memset(&ld, 0, sizeof(ld));
	ld.path = path;
	if (path != NULL && (text = read_conf(&ld, path, &len)) != NULL) {
		conf_lex(text, len, &calls);
		free(text);
	}
	if (w->control_socket == NULL)
		w->control_socket = default_of(OPT_CONTROL_SOCKET);
	if (w->stats_file == NULL)
		w->stats_file = default_of(OPT_STATS_FILE);
	if (w->pid_file == NULL)
		w->pid_file = default_of(OPT_PID_FILE);
	if (w->listen == NULL)
		w->listen = default_of(OPT_LISTEN);
}

void
conf_where_free(struct conf_where *w)
{
	free(w->control_socket);
	free(w->stats_file);
	free(w->pid_file);
	free(w->listen);
	memset(w, 0, sizeof(*w));
}

/* ------------------------------------------------------------ restart */

static bool
differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

static void
add_name(char *buf, size_t len, const char *name)
{
	size_t used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
}

void
conf_restart_needed(const struct gopro_conf *a, const struct gopro_conf *b,
    char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return;
	buf[0] = '\0';
	if (a == NULL || b == NULL)
		return;
	if (differs(a->user, b->user))
		add_name(buf, len, "user");
	if (differs(a->group, b->group))
		add_name(buf, len, "group");
	if (differs(a->pid_file, b->pid_file))
		add_name(buf, len, "pid_file");
	if (differs(a->stats_file, b->stats_file))
		add_name(buf, len, "stats_file");
	if (differs(a->control_socket, b->control_socket))
		add_name(buf, len, "control_socket");
	if (differs(a->metrics_listen, b->metrics_listen))
		add_name(buf, len, "metrics_listen");
	if (a->log_target != b->log_target ||
	    (a->log_target == LOG_TARGET_FILE &&
	    differs(a->log_file, b->log_file)))
		add_name(buf, len, "log");
}

/* ------------------------------------------------------------ option names */

/*
 * The names of every option, read from OPTIONS itself so that a new option
 * cannot be left out of the list: "listen", ..., "auth.required", ....
 * tests/docs/test_docs.c checks each against gopro.conf(5) and etc/gopro.conf.
 */
const char *const *
conf_option_names(void)
{
	static const char *names[OPT_COUNT + CONF_MODULE_OPTIONS + 1];
	const char *const *mod = conf_module_option_names();

	if (names[0] == NULL) {
		for (size_t i = 0; i < OPT_COUNT; i++)
			names[i] = options[i].shown;
		for (size_t i = 0; mod[i] != NULL; i++)
			names[OPT_COUNT + i] = mod[i];
	}
	return names;
}
