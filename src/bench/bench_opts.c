/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_opts.c - gopro-bench's command line: options, the request mix,
 * sizes, durations, addresses, and the arithmetic of the open-loop
 * schedule.
 *
 * Nothing here prints or exits: a parse error comes back as a message for
 * main to show, so the tests can drive every edge case in-process.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "bench.h"
#include "sock.h"

#define DEFAULT_SERVER "127.0.0.1:8888"
#define DEFAULT_CONNS 50
#define DEFAULT_DURATION 10.0
#define DEFAULT_TIMEOUT 5.0
#define DEFAULT_PREFIX "Server says: "
#define HOLD_CONNECT_RATE 5000.0
#define CONNS_MAX 1000000u
#define DEPTH_MAX 65536u
#define THREADS_MAX 256u
#define BODY_MAX (1024u * 1024u * 1024u)
#define SECONDS_MAX (365.0 * 86400.0)

static const char *const kind_names[BENCH_KINDS] = {
	"heartbeat", "message", "login",
};

const char *
bench_kind_name(enum bench_kind k)
{
	return (unsigned)k < BENCH_KINDS ? kind_names[k] : "unknown";
}

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ numbers */

int
bench_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
bench_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > (max >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int
bench_parse_seconds(const char *s, double min, double max, double *out)
{
	double v;
	char *end;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
bench_parse_duration(const char *s, double min, double max, double *out)
{
	static const struct {
		const char *unit;
		double mult;
	} units[] = { { "", 1 }, { "s", 1 }, { "ms", 0.001 }, { "m", 60 },
	    { "h", 3600 } };
	double v;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || !isfinite(v))
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		v *= units[i].mult;
		if (v < min || v > max)
			return -1;
		*out = v;
		return 0;
	}
	return -1;
}

/* ------------------------------------------------------------ the mix */

static int
kind_by_name(const char *name, size_t len)
{
	static const struct {
		const char *name;
		enum bench_kind kind;
	} names[] = {
		{ "heartbeat", BENCH_HEARTBEAT }, { "hb", BENCH_HEARTBEAT },
		{ "message", BENCH_MESSAGE }, { "msg", BENCH_MESSAGE },
		{ "login", BENCH_LOGIN },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == len &&
		    strncasecmp(names[i].name, name, len) == 0)
			return (int)names[i].kind;
	return -1;
}

/* One "name[:weight]" item of the mix. */
static int
mix_item(const char *item, size_t len, struct bench_mix *mix, char *err,
    size_t errlen)
{
	const char *colon = memchr(item, ':', len);
	size_t nlen = colon ? (size_t)(colon - item) : len;
	uint64_t w = 1;
	char num[16];
	int k;

	k = kind_by_name(item, nlen);
	if (k < 0) {
		set_err(err, errlen, "mix: unknown request type \"%.*s\" "
		    "(heartbeat, message or login)", (int)nlen, item);
		return -1;
	}
	if (colon) {
		size_t wlen = len - nlen - 1;
		if (wlen == 0 || wlen >= sizeof(num)) {
			set_err(err, errlen, "mix: bad weight for %s",
			    kind_names[k]);
			return -1;
		}
		memcpy(num, colon + 1, wlen);
		num[wlen] = '\0';
		if (bench_parse_count(num, 1, BENCH_MIX_WEIGHT_MAX, &w) < 0) {
			set_err(err, errlen, "mix: weight \"%s\" of %s is not "
			    "a number from 1 to %u", num, kind_names[k],
			    BENCH_MIX_WEIGHT_MAX);
			return -1;
		}
	}
	if (mix->weight[k] != 0) {
		set_err(err, errlen, "mix: %s is given twice", kind_names[k]);
		return -1;
	}
	mix->weight[k] = (unsigned)w;
	mix->total += (unsigned)w;
	return 0;
}

int
bench_mix_parse(const char *spec, struct bench_mix *mix, char *err,
    size_t errlen)
{
	const char *p = spec, *comma;
	size_t len;

	memset(mix, 0, sizeof(*mix));
	if (spec == NULL || *spec == '\0') {
		set_err(err, errlen, "mix: empty");
		return -1;
	}
	for (;;) {
		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == 0) {
			set_err(err, errlen, "mix: empty item in \"%s\"", spec);
			return -1;
		}
		if (mix_item(p, len, mix, err, errlen) < 0)
			return -1;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

void
bench_mix_cycle(const struct bench_mix *mix, uint8_t *cycle)
{
	long current[BENCH_KINDS] = { 0 };

	for (unsigned n = 0; n < mix->total; n++) {
		int best = -1;
		for (int k = 0; k < BENCH_KINDS; k++) {
			if (mix->weight[k] == 0)
				continue;
			current[k] += mix->weight[k];
			if (best < 0 || current[k] > current[best])
				best = k;
		}
		current[best] -= (long)mix->total;
		cycle[n] = (uint8_t)best;
	}
}

/* ------------------------------------------------------------ addresses */

static int
parse_ip(const char *s, uint16_t port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

int
bench_parse_sources(const char *list, struct sockaddr_storage *out,
    unsigned max, unsigned *n, char *err, size_t errlen)
{
	char item[INET6_ADDRSTRLEN + 1];
	const char *p = list, *comma;
	socklen_t len;
	size_t ilen;

	*n = 0;
	do {
		comma = strchr(p, ',');
		ilen = comma ? (size_t)(comma - p) : strlen(p);
		if (ilen == 0 || ilen >= sizeof(item)) {
			set_err(err, errlen, "--source: bad item in \"%s\"",
			    list);
			return -1;
		}
		if (*n == max) {
			set_err(err, errlen, "--source: more than %u addresses",
			    max);
			return -1;
		}
		memcpy(item, p, ilen);
		item[ilen] = '\0';
		if (parse_ip(item, 0, &out[*n], &len) < 0) {
			set_err(err, errlen, "--source: \"%s\" is not a numeric "
			    "IPv4 or IPv6 address", item);
			return -1;
		}
		(*n)++;
		p = comma + 1;
	} while (comma != NULL);
	return 0;
}

int
bench_parse_address(const char *hostport, struct sockaddr_storage *ss,
    socklen_t *len, char *err, size_t errlen)
{
	struct addrinfo hints, *res;
	char host[256], port[16];
	uint64_t pnum;
	int rc;

	/* The clients' own parser (libgopro's sock.c), for the same forms. */
	if (sock_split_hostport(hostport, host, sizeof(host), port,
	    sizeof(port)) < 0 ||
	    bench_parse_count(port, 1, 65535, &pnum) < 0) {
		set_err(err, errlen, "server address \"%s\": expected "
		    "HOST:PORT or [IPV6]:PORT with a port from 1 to 65535",
		    hostport);
		return -1;
	}
	if (parse_ip(host, (uint16_t)pnum, ss, len) == 0)
		return 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		set_err(err, errlen, "server address \"%s\": %s", hostport,
		    gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* ------------------------------------------------------------ schedule */

void
bench_sched_init(struct bench_sched *s, uint64_t start_ns, double rate,
    unsigned conns)
{
	s->start_ns = start_ns;
	s->gap_ns = rate > 0 ? 1e9 / rate : 0;
	s->conns = conns ? conns : 1;
}

/*
 * Computed from the start every time, never by adding intervals, so the
 * schedule does not drift however long the run.
 */
uint64_t
bench_sched_intended(const struct bench_sched *s, unsigned conn, uint64_t k)
{
	double slot = (double)conn + (double)k * (double)s->conns;

	return s->start_ns + (uint64_t)(slot * s->gap_ns);
}

uint64_t
bench_sched_due(const struct bench_sched *s, unsigned conn, uint64_t now)
{
	uint64_t k;

	if (s->gap_ns <= 0 || now < bench_sched_intended(s, conn, 0))
		return 0;
	k = (uint64_t)(((double)(now - s->start_ns) / s->gap_ns -
	    (double)conn) / (double)s->conns) + 1;
	/* Correct the rounding of the division at the edges. */
	while (k > 0 && bench_sched_intended(s, conn, k - 1) > now)
		k--;
	while (bench_sched_intended(s, conn, k) <= now)
		k++;
	return k;
}

/* ------------------------------------------------------------ options */

enum {
	OPT_PREFIX = 256,
	OPT_TIMEOUT,
	OPT_CONNECT_RATE,
	OPT_SERVER_PID,
	OPT_ALLOW_LOST,
	OPT_TLS,
	OPT_NO_RESUME,
	OPT_RECONNECT_EVERY,
	OPT_ANY_REPLY,
};

static const struct option longopts[] = {
	{ "server", required_argument, NULL, 's' },
	{ "connections", required_argument, NULL, 'c' },
	{ "pipeline", required_argument, NULL, 'P' },
	{ "threads", required_argument, NULL, 't' },
	{ "duration", required_argument, NULL, 'd' },
	{ "requests", required_argument, NULL, 'n' },
	{ "type", required_argument, NULL, 'T' },
	{ "mix", required_argument, NULL, 'm' },
	{ "body", required_argument, NULL, 'b' },
	{ "rate", required_argument, NULL, 'R' },
	{ "warmup", required_argument, NULL, 'w' },
	{ "source", required_argument, NULL, 'S' },
	{ "user", required_argument, NULL, 'u' },
	{ "password", required_argument, NULL, 'p' },
	{ "hold", required_argument, NULL, 'H' },
	{ "json", no_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "prefix", required_argument, NULL, OPT_PREFIX },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "connect-rate", required_argument, NULL, OPT_CONNECT_RATE },
	{ "server-pid", required_argument, NULL, OPT_SERVER_PID },
	{ "allow-lost", no_argument, NULL, OPT_ALLOW_LOST },
	{ "tls", no_argument, NULL, OPT_TLS },
	{ "no-resume", no_argument, NULL, OPT_NO_RESUME },
	{ "reconnect-every", required_argument, NULL, OPT_RECONNECT_EVERY },
	{ "any-reply", no_argument, NULL, OPT_ANY_REPLY },
	{ NULL, 0, NULL, 0 },
};
#define SHORTOPTS ":s:c:P:t:d:n:T:m:b:R:w:S:u:p:H:jqhV"

void
bench_usage(FILE *f)
{
	fputs("usage: gopro-bench [-hjqV] [-b bytes] [-c connections] "
	    "[-d duration | -n requests]\n"
	    "                   [-H duration] [-m mix | -T type] [-P depth] "
	    "[-p password]\n"
	    "                   [-R rate] [-S address,...] [-s host:port] "
	    "[-t threads]\n"
	    "                   [-u user] [-w duration] [--allow-lost] "
	    "[--any-reply]\n"
	    "                   [--connect-rate n]"
	    " [--prefix text] [--server-pid pid]\n"
	    "                   [--timeout duration]"
	    " [--tls [--no-resume]] [--reconnect-every n]\n",
	    f);
}

/* --help: every option, what it does and its default. */
void
bench_help(FILE *f)
{
	bench_usage(f);
	fputs("\nDurations take the units of gopro.conf (500ms, 10s, 2m, 1h; "
	    "a bare number is seconds),\nsizes the suffixes k, M and G.\n\n"
	    "  -s, --server host:port   server to load (" DEFAULT_SERVER ")\n"
	    "  -c, --connections n      connections (50)\n"
	    "  -t, --threads n          threads, each with its own event loop "
	    "(1)\n"
	    "  -P, --pipeline n         requests in flight per connection "
	    "(1)\n"
	    "  -d, --duration duration  measured length of the run (10s)\n"
	    "  -n, --requests n         send n requests instead of running -d "
	    "(off)\n"
	    "  -w, --warmup duration    load before measuring (0)\n"
	    "  -R, --rate n             open loop: n requests/s in total "
	    "(off: closed loop)\n"
	    "  -T, --type type          heartbeat, message or login "
	    "(heartbeat)\n"
	    "  -m, --mix mix            weighted mix, as message:8,"
	    "heartbeat:2 (off)\n"
	    "  -b, --body size          HEARTBEAT and MESSAGE body size (0)\n"
	    "  -S, --source addr,...    local addresses to connect from, "
	    "round robin (any)\n"
	    "  -u, --user user          log in as user on every connection "
	    "(none)\n"
	    "  -p, --password text      its password ($GOPRO_PASSWORD)\n"
	    "  -H, --hold duration      hold mode: open -c connections, hold "
	    "them idle (off)\n"
	    "      --connect-rate n     new connections per second (no limit; "
	    "5000 with -H)\n"
	    "      --prefix text        MESSAGE reply prefix (\"" DEFAULT_PREFIX
	    "\")\n"
	    "      --timeout duration   a reply later than this is lost (5s)\n"
	    "      --server-pid pid     report the RSS of pid and its children "
	    "(off)\n"
	    "      --allow-lost         exit 0 even when replies were lost "
	    "(off)\n"
	    "      --any-reply          a reply of the right command is good "
	    "whatever its body (off)\n"
	    "      --tls                speak TLS (the certificate is not "
	    "checked) (off)\n"
	    "      --no-resume          --tls: never resume a session, every "
	    "handshake in full (off)\n"
	    "      --reconnect-every n  a new connection after n replies, to "
	    "measure handshakes (off)\n"
	    "  -j, --json               print the summary as JSON (text)\n"
	    "  -q, --quiet              no progress lines on stderr (shown)\n"
	    "  -V, --version            print the version and exit\n"
	    "  -h, --help               this help\n", f);
}

/* State of one parse: what was given, for the checks at the end. */
struct parse_state {
	const char *type;
	const char *mix;
	bool duration_set;
	bool requests_set;
	bool connect_rate_set;
};

static void
opts_defaults(struct bench_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->server = DEFAULT_SERVER;
	o->conns = DEFAULT_CONNS;
	o->depth = 1;
	o->threads = 1;
	o->duration = DEFAULT_DURATION;
	o->timeout = DEFAULT_TIMEOUT;
	o->prefix = DEFAULT_PREFIX;
}

static const char *
opt_name(int ch)
{
	static char buf[4];

	for (const struct option *l = longopts; l->name; l++)
		if (l->val == ch && ch >= 256)
			return l->name;
	buf[0] = '-';
	buf[1] = (char)ch;
	buf[2] = '\0';
	return buf;
}

/* Apply one option; -1 with a message on a bad value. */
static int
opts_apply(struct bench_opts *o, struct parse_state *ps, int ch,
    const char *arg, char *err, size_t errlen)
{
	uint64_t v = 0;
	const char *what = NULL;

	switch (ch) {
	case 's':
		o->server = arg;
		return 0;
	case 'c':
		if (bench_parse_count(arg, 1, CONNS_MAX, &v) < 0)
			what = "a number of connections from 1 to 1000000";
		o->conns = (unsigned)v;
		break;
	case 'P':
		if (bench_parse_count(arg, 1, DEPTH_MAX, &v) < 0)
			what = "a pipeline depth from 1 to 65536";
		o->depth = (unsigned)v;
		break;
	case 't':
		if (bench_parse_count(arg, 1, THREADS_MAX, &v) < 0)
			what = "a number of threads from 1 to 256";
		o->threads = (unsigned)v;
		break;
	case 'd':
		if (bench_parse_duration(arg, 0.001, SECONDS_MAX,
		    &o->duration) < 0)
			what = "a duration such as 10s, 500ms or 2m";
		ps->duration_set = true;
		break;
	case 'n':
		if (bench_parse_count(arg, 1, UINT64_MAX / 2, &o->requests) < 0)
			what = "a positive number of requests";
		ps->requests_set = true;
		break;
	case 'T':
		ps->type = arg;
		return 0;
	case 'm':
		ps->mix = arg;
		return 0;
	case 'b':
		if (bench_parse_size(arg, BODY_MAX, &v) < 0)
			what = "a body size in bytes (suffix k, M or G allowed, "
			    "at most 1G)";
		o->body = (size_t)v;
		break;
	case 'R':
		if (bench_parse_seconds(arg, 0.001, 1e9, &o->rate) < 0)
			what = "a rate in requests per second";
		break;
	case 'w':
		if (bench_parse_duration(arg, 0, SECONDS_MAX, &o->warmup) < 0)
			what = "a warm-up duration such as 1s or 500ms";
		break;
	case 'S':
		return bench_parse_sources(arg, o->source, BENCH_SOURCES_MAX,
		    &o->nsources, err, errlen);
	case 'u':
		o->user = arg;
		return 0;
	case 'p':
		o->password = arg;
		return 0;
	case 'H':
		if (bench_parse_duration(arg, 0.001, SECONDS_MAX, &o->hold) < 0)
			what = "a hold time such as 30s or 2m";
		break;
	case 'j':
		o->json = true;
		return 0;
	case 'q':
		o->quiet = true;
		return 0;
	case OPT_PREFIX:
		o->prefix = arg;
		return 0;
	case OPT_TIMEOUT:
		if (bench_parse_duration(arg, 0.001, SECONDS_MAX,
		    &o->timeout) < 0)
			what = "a timeout such as 5s or 500ms";
		break;
	case OPT_CONNECT_RATE:
		if (bench_parse_seconds(arg, 0.001, 1e9, &o->connect_rate) < 0)
			what = "a rate in connections per second";
		ps->connect_rate_set = true;
		break;
	case OPT_SERVER_PID:
		if (bench_parse_count(arg, 1, INT32_MAX, &v) < 0)
			what = "a process id";
		o->server_pid = (pid_t)v;
		break;
	case OPT_ALLOW_LOST:
		o->allow_lost = true;
		return 0;
	case OPT_ANY_REPLY:
		o->any_reply = true;
		return 0;
	case OPT_TLS:
#ifndef HAVE_TLS
		set_err(err, errlen, "--tls: gopro-bench was built without TLS "
		    "(OpenSSL 3)");
		return -1;
#endif
		o->tls = true;
		return 0;
	case OPT_NO_RESUME:
		o->tls_no_resume = true;
		return 0;
	case OPT_RECONNECT_EVERY:
		if (bench_parse_count(arg, 1, UINT32_MAX, &v) < 0)
			what = "a number of replies of at least 1";
		o->reconnect_every = v;
		break;
	default:
		set_err(err, errlen, "internal: option %d", ch);
		return -1;
	}
	if (what != NULL) {
		set_err(err, errlen, "%s%s \"%s\": expected %s",
		    ch >= 256 ? "--" : "", opt_name(ch), arg, what);
		return -1;
	}
	return 0;
}

static int
opts_mix(struct bench_opts *o, const struct parse_state *ps, char *err,
    size_t errlen)
{
	int k;

	if (ps->type && ps->mix) {
		set_err(err, errlen, "-T and --mix cannot be used together");
		return -1;
	}
	if (ps->mix)
		return bench_mix_parse(ps->mix, &o->mix, err, errlen);
	memset(&o->mix, 0, sizeof(o->mix));
	k = ps->type ? kind_by_name(ps->type, strlen(ps->type)) :
	    BENCH_HEARTBEAT;
	if (k < 0) {
		set_err(err, errlen, "-T \"%s\": expected heartbeat, message "
		    "or login", ps->type);
		return -1;
	}
	o->mix.weight[k] = 1;
	o->mix.total = 1;
	return 0;
}

static int
opts_login(struct bench_opts *o, char *err, size_t errlen)
{
	if (o->password == NULL)
		o->password = getenv("GOPRO_PASSWORD");
	if (o->mix.weight[BENCH_LOGIN] && o->user == NULL) {
		set_err(err, errlen, "LOGIN requests need --user");
		return -1;
	}
	if (o->user == NULL)
		return 0;
	if (*o->user == '\0' || strlen(o->user) > GOPRO_USER_MAX) {
		set_err(err, errlen, "--user: 1 to %u bytes", GOPRO_USER_MAX);
		return -1;
	}
	if (o->password == NULL || *o->password == '\0') {
		set_err(err, errlen, "--user %s: no password (give --password "
		    "or set GOPRO_PASSWORD)", o->user);
		return -1;
	}
	if (strlen(o->password) > GOPRO_PASSWORD_MAX) {
		set_err(err, errlen, "password longer than %u bytes",
		    GOPRO_PASSWORD_MAX);
		return -1;
	}
	return 0;
}

/* Checks that involve several options. */
static int
opts_check(struct bench_opts *o, const struct parse_state *ps, char *err,
    size_t errlen)
{
	if (ps->duration_set && ps->requests_set) {
		set_err(err, errlen, "-d and -n cannot be used together");
		return -1;
	}
	if (ps->requests_set)
		o->duration = 0;
	if (o->hold > 0 && (ps->duration_set || ps->requests_set ||
	    o->rate > 0 || ps->mix || ps->type || o->depth > 1)) {
		set_err(err, errlen, "--hold sends one heartbeat per connection "
		    "before and after: -d, -n, -R, -P, -T and --mix do not "
		    "apply");
		return -1;
	}
	if (o->hold > 0 && !ps->connect_rate_set)
		o->connect_rate = HOLD_CONNECT_RATE;
	if (o->threads > o->conns) {
		set_err(err, errlen, "-t %u: more threads than connections "
		    "(%u)", o->threads, o->conns);
		return -1;
	}
	if (o->prefix != NULL && strlen(o->prefix) > 65536) {
		set_err(err, errlen, "--prefix: longer than 64 KiB");
		return -1;
	}
	if (opts_mix(o, ps, err, errlen) < 0 || opts_login(o, err, errlen) < 0)
		return -1;
	return bench_parse_address(o->server, &o->addr, &o->addrlen, err,
	    errlen);
}

static void
missing_or_unknown(int ch, int argc, char **argv, char *err, size_t errlen)
{
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";

	if (ch == ':')
		set_err(err, errlen, "option %s needs a value", arg);
	else if (optopt != 0)
		set_err(err, errlen, "unknown option -%c", optopt);
	else
		set_err(err, errlen, "unknown option %s", arg);
}

enum bench_opts_result
bench_opts_parse(struct bench_opts *o, int argc, char **argv, char *err,
    size_t errlen)
{
	struct parse_state ps;
	int ch;

	opts_defaults(o);
	memset(&ps, 0, sizeof(ps));
	optind = 0; /* glibc: start afresh, also for repeated calls */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, SHORTOPTS, longopts, NULL)) != -1) {
		if (ch == 'h')
			return BENCH_OPTS_HELP;
		if (ch == 'V')
			return BENCH_OPTS_VERSION;
		if (ch == '?' || ch == ':') {
			missing_or_unknown(ch, argc, argv, err, errlen);
			return BENCH_OPTS_USAGE;
		}
		if (opts_apply(o, &ps, ch, optarg, err, errlen) < 0)
			return BENCH_OPTS_USAGE;
	}
	if (optind != argc) {
		set_err(err, errlen, "unexpected argument \"%s\"", argv[optind]);
		return BENCH_OPTS_USAGE;
	}
	if (opts_check(o, &ps, err, errlen) < 0)
		return BENCH_OPTS_USAGE;
	return BENCH_OPTS_RUN;
}
