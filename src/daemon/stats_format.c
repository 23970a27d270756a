/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * stats_format.c - text, JSON, Prometheus and rate output of a stats
 * snapshot.  Every format walks the same tables (the STATS_COUNTERS list,
 * the counter groups, the gauges), so a counter added to stats.h shows up
 * everywhere with one name.  Nothing here reads the segment itself: callers
 * take a stats_snap first, which also makes the formats easy to test.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "stats_format.h"

static const char *const counter_name[STATS_NCOUNTERS] = {
#define NAME(name, help) #name,
	STATS_COUNTERS(NAME)
#undef NAME
};

/* Sums shown as one column in tables. */
enum group { GROUP_FRAMES_IN, GROUP_FRAMES_OUT, GROUP_ERRORS, GROUP_COUNT };
static const struct {
	enum stats_counter first, last;
} group_range[GROUP_COUNT] = {
	[GROUP_FRAMES_IN] = { STATS_frames_received_heartbeat,
		STATS_frames_received_other },
	[GROUP_FRAMES_OUT] = { STATS_frames_sent_heartbeat,
		STATS_frames_sent_goaway },
	[GROUP_ERRORS] = { STATS_errors_bad_magic, STATS_errors_malformed },
};

static uint64_t
group_sum(const struct stats_values *v, enum group g)
{
	uint64_t sum = 0;

	for (int i = group_range[g].first; i <= (int)group_range[g].last; i++)
		sum += v->counter[i];
	return sum;
}

static uint64_t
hist_count(const struct stats_values *v)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < STATS_HIST_BUCKETS; i++)
		n += v->hist[i];
	return n;
}

const char *
stats_format_le(unsigned i, char buf[32])
{
	char *end;

	if (i >= STATS_HIST_BUCKETS - 1)
		return "+Inf";
	snprintf(buf, 32, "%.7f", stats_bucket_le(i));
	end = buf + strlen(buf) - 1;
	while (*end == '0')
		*end-- = '\0';
	if (*end == '.')
		*end = '\0';
	return buf;
}

static bool
entry_live(const struct stats_entry *e)
{
	return e->state != STATS_STATE_FREE;
}

static int64_t
age(time_t now, int64_t since)
{
	return since > 0 && now > since ? (int64_t)now - since : 0;
}

static int
finish(FILE *out)
{
	return ferror(out) ? -1 : 0;
}

/* ------------------------------------------------------------ snapshot */

int
stats_snap_take(const struct stats_segment *seg, struct stats_snap *snap)
{
	unsigned n = seg->nentries;
	struct timespec ts;

	memset(snap, 0, sizeof(*snap));
	snap->entries = aligned_alloc(STATS_ALIGN,
	    (size_t)n * sizeof(struct stats_entry));
	if (snap->entries == NULL)
		return -1;
	if (stats_snapshot(seg, &snap->hdr, snap->entries, n) < 0) {
		stats_snap_free(snap);
		return -1;
	}
	stats_total(&snap->hdr, snap->entries, snap->hdr.nentries,
	    &snap->total);
	/* The client rings have per-slot sequence numbers: read them live. */
	snap->clients = calloc(snap->hdr.nentries ? snap->hdr.nentries : 1,
	    sizeof(*snap->clients));
	if (snap->clients == NULL) {
		stats_snap_free(snap);
		return -1;
	}
	for (unsigned i = 0; i < snap->hdr.nentries; i++)
		snap->clients[i].n = stats_recent_clients(&seg->entries[i],
		    &seg->recheck[i], snap->clients[i].c, STATS_RECENT_CLIENTS);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snap->taken = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	snap->now = time(NULL);
	return 0;
}

void
stats_snap_free(struct stats_snap *snap)
{
	free(snap->entries);
	snap->entries = NULL;
	free(snap->clients);
	snap->clients = NULL;
}

unsigned
stats_live_workers(const struct stats_snap *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->hdr.nentries; i++)
		n += entry_live(&s->entries[i]) &&
		    s->entries[i].state != STATS_STATE_EXITED;
	return n;
}

unsigned
stats_running_workers(const struct stats_snap *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->hdr.nentries; i++)
		if (s->entries[i].state == STATS_STATE_RUNNING &&
		    s->entries[i].generation == s->hdr.generation)
			n++;
	return n;
}

uint64_t
stats_conn_open(const struct stats_snap *s)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < s->hdr.nentries; i++)
		n += s->entries[i].conn_active;
	return n;
}

uint64_t
stats_tls_open(const struct stats_snap *s)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < s->hdr.nentries; i++)
		n += s->entries[i].tls_open;
	return n;
}

/* ------------------------------------------------------------ text */

static void
format_duration(char *buf, size_t len, int64_t t)
{
	if (t >= 86400)
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", t / 86400,
		    t % 86400 / 3600);
	else if (t >= 3600)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", t / 3600,
		    t % 3600 / 60);
	else if (t >= 60)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", t / 60, t % 60);
	else
		snprintf(buf, len, "%" PRId64 "s", t);
}

/* Upper bound of the bucket holding quantile q, in seconds. */
static double
latency_quantile(const struct stats_values *v, double q)
{
	uint64_t n = hist_count(v), seen = 0;

	for (unsigned i = 0; i < STATS_HIST_BUCKETS; i++) {
		seen += v->hist[i];
		if (n > 0 && (double)seen >= q * (double)n)
			return stats_bucket_le(i);
	}
	return 0;
}

const char *
stats_verdict(const struct stats_snap *s)
{
	if (s->hdr.info.stopping)
		return "stopping";
	return stats_running_workers(s) == s->hdr.workers ? "running" :
	    "degraded";
}

/* The addresses on one line, PROXY listeners marked. */
static void
text_listeners(FILE *out, const struct stats_info *in)
{
	fprintf(out, "  %-15s", "listening on");
	for (uint32_t a = 0; a < in->nlisten && a < STATS_MAX_LISTEN; a++)
		fprintf(out, "%s%.64s%s", a ? ", " : " ", in->listen[a].text,
		    in->listen[a].proxy ? " (PROXY)" : "");
	fprintf(out, "\n  %-15s %s\n", "metrics on", *in->metrics_listen ?
	    in->metrics_listen : "off (metrics_listen is not set)");
}

/* "2026-12-01 19:34:56 UTC (12s ago)". */
static void
format_when(char *buf, size_t len, time_t now, int64_t when)
{
	char ago[32], date[32];
	struct tm tm;
	time_t t = (time_t)when;

	/* The time comes from the file: it may be beyond any calendar. */
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(date, sizeof(date), "?");
	format_duration(ago, sizeof(ago), age(now, when));
	snprintf(buf, len, "%.32s UTC (%.32s ago)", date, ago);
}

/* "3 ok, 2 failed", then when the last one was and why it failed. */
static void
text_reloads(FILE *out, const struct stats_snap *s)
{
	const struct stats_info *in = &s->hdr.info;
	const char *end = in->last_reload_error + STATS_TEXT_MAX;
	char when[96];

	fprintf(out, "  %-15s %" PRIu32 " ok, %" PRIu32 " failed\n", "reloads",
	    s->hdr.reloads, s->hdr.reloads_failed);
	if (s->hdr.rollbacks > 0) {
		format_when(when, sizeof(when), s->now, s->hdr.rollback_time);
		fprintf(out, "  %-15s %" PRIu32 ", the last %s: generation %"
		    PRIu32 " crashed, back to the previous configuration and "
		    "modules\n", "rollbacks", s->hdr.rollbacks, when,
		    s->hdr.rollback_from);
	}
	if (in->last_reload_time == 0)
		return;
	format_when(when, sizeof(when), s->now, in->last_reload_time);
	fprintf(out, "  %-15s %s: %s\n", "last reload", when,
	    in->last_reload_ok ? "ok" : "failed, the running configuration "
	    "stays");
	if (in->last_reload_ok || !*in->last_reload_error)
		return;
	/* A list of file:line errors, one per line, indented. */
	fputs("    ", out);
	for (const char *p = in->last_reload_error; p < end && *p; p++)
		if (*p != '\n')
			fputc(*p, out);
		else if (p + 1 < end && p[1] != '\0')
			fputs("\n    ", out);
	fputc('\n', out);
}

static void
text_master(FILE *out, const struct stats_snap *s)
{
	const struct stats_header *h = &s->hdr;
	const struct stats_info *in = &h->info;
	char up[32];

	format_duration(up, sizeof(up), age(s->now, h->start_time));
	fprintf(out, "%.64s, master pid %" PRId32 ", up %s, generation %"
	    PRIu32 ": %s\n", *in->version ? in->version : "goprod",
	    h->master_pid, up, h->generation, stats_verdict(s));
	fprintf(out, "  %-15s %.256s\n", "configuration", in->conf_path);
	text_listeners(out, in);
	fprintf(out, "  %-15s %u/%" PRIu32 " running, max_connections %" PRIu32
	    " each\n", "workers", stats_running_workers(s), h->workers,
	    in->max_connections);
	text_reloads(out, s);
}

static void
text_latency(FILE *out, const struct stats_values *v)
{
	uint64_t n = hist_count(v);

	fprintf(out, "  %-28s %" PRIu64 "\n", "requests", n);
	/* No request, no latency: not a 0 that reads as "fast". */
	if (n == 0) {
		fprintf(out, "  %-28s n/a\n  %-28s n/a\n", "latency_mean",
		    "latency_p50_p99");
		return;
	}
	fprintf(out, "  %-28s %.3f ms\n", "latency_mean",
	    (double)v->hist_sum_ns / (double)n / 1e6);
	fprintf(out, "  %-28s < %g ms / < %g ms\n", "latency_p50_p99",
	    latency_quantile(v, 0.5) * 1e3, latency_quantile(v, 0.99) * 1e3);
}

static void
text_totals(FILE *out, const struct stats_snap *s)
{
	fprintf(out, "\ntotals (retired and live workers)\n");
	for (int i = 0; i < STATS_NCOUNTERS; i++)
		fprintf(out, "  %-28s %" PRIu64 "\n", counter_name[i],
		    s->total.counter[i]);
	fprintf(out, "  %-28s %" PRIu64 "\n", "conn_active",
	    stats_conn_open(s));
	fprintf(out, "  %-28s %" PRIu64 "\n", "tls_open", stats_tls_open(s));
	text_latency(out, &s->total);
}

/* The accept queue of a slot: its sockets of every listener. */
static uint64_t
slot_queue(const struct stats_snap *s, uint32_t slot)
{
	uint64_t n = 0;

	for (uint32_t a = 0; a < s->hdr.info.nlisten && a < STATS_MAX_LISTEN &&
	    slot < STATS_MAX_SLOTS; a++)
		n += s->hdr.accept_queue[a][slot];
	return n;
}

/* At most 100 columns: the bytes per worker are in --json. */
static void
text_worker(FILE *out, const struct stats_snap *s, const struct stats_entry *e)
{
	char up[32], open[32];

	format_duration(up, sizeof(up), age(s->now, e->start_time));
	snprintf(open, sizeof(open), "%" PRIu64 "/%" PRIu32, e->conn_active,
	    s->hdr.info.max_connections);
	fprintf(out, "%4" PRIu32 " %7" PRId32 " %3" PRIu32 " %-8s %7s %8" PRIu32
	    " %12s %5" PRIu64 " %5" PRIu64 " %11" PRIu64 " %11" PRIu64 " %7"
	    PRIu64 "\n", e->slot, e->pid, e->generation,
	    stats_state_name(e->state), up, e->restarts, open, e->tls_open,
	    slot_queue(s, e->slot),
	    group_sum(&e->v, GROUP_FRAMES_IN), group_sum(&e->v, GROUP_FRAMES_OUT),
	    group_sum(&e->v, GROUP_ERRORS));
}

static void
text_workers(FILE *out, const struct stats_snap *s)
{
	fprintf(out, "%4s %7s %3s %-8s %7s %8s %12s %5s %5s %11s %11s %7s\n",
	    "slot", "pid", "gen", "state", "uptime", "restarts", "open/max",
	    "tls", "queue", "frames_in", "frames_out", "errors");
	/* By slot, then in the order of the entries (older generations first). */
	for (uint32_t slot = 0; slot < STATS_MAX_SLOTS; slot++)
		for (unsigned i = 0; i < s->hdr.nentries; i++)
			if (entry_live(&s->entries[i]) &&
			    s->entries[i].slot == slot)
				text_worker(out, s, &s->entries[i]);
}

/*
 * One client: its address, "(proxy)" when a PROXY header gave it, and the
 * identity of its verified TLS client certificate in quotes.  The writer
 * refuses control bytes in an identity; a bad segment is still printed
 * no further than the field.
 */
static void
text_client(FILE *out, const struct stats_client *c)
{
	char addr[64];
	int idlen = (int)strnlen(c->identity, sizeof(c->identity));

	fprintf(out, " %s%s", stats_client_text(c, addr, sizeof(addr)),
	    c->proxied ? " (proxy)" : "");
	if (idlen > 0)
		fprintf(out, " \"%.*s\"", idlen, c->identity);
}

/* Behind a load balancer this shows the addresses from PROXY headers. */
static void
text_clients(FILE *out, const struct stats_snap *s)
{
	bool title = false;

	for (unsigned i = 0; s->clients != NULL && i < s->hdr.nentries; i++) {
		const struct stats_snap_clients *sc = &s->clients[i];

		if (!entry_live(&s->entries[i]) || sc->n == 0)
			continue;
		if (!title)
			fprintf(out, "\nrecent clients (newest first):\n");
		title = true;
		fprintf(out, "%4" PRIu32 " %8" PRId32 " ", s->entries[i].slot,
		    s->entries[i].pid);
		for (unsigned k = 0; k < sc->n; k++)
			text_client(out, &sc->c[k]);
		fputc('\n', out);
	}
}

int
stats_format_text(FILE *out, const struct stats_snap *s)
{
	text_master(out, s);
	text_totals(out, s);
	fputc('\n', out);
	text_workers(out, s);
	text_clients(out, s);
	stats_format_modules_text(out, s);
	return finish(out);
}

int
stats_format_status(FILE *out, const struct stats_snap *s)
{
	text_master(out, s);
	text_workers(out, s);
	return finish(out);
}

/* ------------------------------------------------------------ JSON */

static void
json_counters(FILE *out, const struct stats_values *v, const char *indent)
{
	fprintf(out, "%s\"counters\": {", indent);
	for (int i = 0; i < STATS_NCOUNTERS; i++)
		fprintf(out, "%s\n%s  \"%s\": %" PRIu64, i ? "," : "", indent,
		    counter_name[i], v->counter[i]);
	fprintf(out, "\n%s},\n", indent);
}

static void
json_latency(FILE *out, const struct stats_values *v, const char *indent)
{
	char le[32];

	fprintf(out, "%s\"latency\": {\"count\": %" PRIu64 ", \"sum_seconds\": "
	    "%.9f, \"buckets\": [", indent, hist_count(v),
	    (double)v->hist_sum_ns / 1e9);
	for (unsigned i = 0; i < STATS_HIST_BUCKETS; i++)
		fprintf(out, "%s{\"le\": \"%s\", \"count\": %" PRIu64 "}",
		    i ? ", " : "", stats_format_le(i, le), v->hist[i]);
	fprintf(out, "]}\n");
}

/* A string of the segment as JSON: quotes, backslashes, controls escaped. */
static void
json_string(FILE *out, const char *v, size_t max)
{
	fputc('"', out);
	for (size_t i = 0; i < max && v[i]; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

/* What the master runs: "info" beside "master". */
static void
json_info(FILE *out, const struct stats_info *in)
{
	fprintf(out, "  \"info\": {\"version\": ");
	json_string(out, in->version, sizeof(in->version));
	fprintf(out, ", \"configuration\": ");
	json_string(out, in->conf_path, sizeof(in->conf_path));
	fprintf(out, ", \"metrics_listen\": ");
	json_string(out, in->metrics_listen, sizeof(in->metrics_listen));
	fprintf(out, ", \"max_connections\": %" PRIu32 ", \"listen\": [",
	    in->max_connections);
	for (uint32_t a = 0; a < in->nlisten && a < STATS_MAX_LISTEN; a++) {
		fprintf(out, "%s{\"address\": ", a ? ", " : "");
		json_string(out, in->listen[a].text, sizeof(in->listen[a].text));
		fprintf(out, ", \"proxy\": %s}", in->listen[a].proxy ? "true" :
		    "false");
	}
	fprintf(out, "], \"last_reload_time\": %" PRId64 ", \"last_reload_ok\": "
	    "%s, \"last_reload_success_time\": %" PRId64 ", \"last_reload_error"
	    "\": ", in->last_reload_time, in->last_reload_ok ? "true" : "false",
	    in->last_reload_success_time);
	json_string(out, in->last_reload_error, sizeof(in->last_reload_error));
	fprintf(out, ", \"stopping\": %s},\n", in->stopping ? "true" : "false");
}

static void
json_master(FILE *out, const struct stats_snap *s)
{
	const struct stats_header *h = &s->hdr;

	json_info(out, &h->info);
	fprintf(out, "  \"master\": {\"pid\": %" PRId32 ", \"start_time\": %"
	    PRId64 ", \"uptime_seconds\": %" PRId64 ", \"generation\": %" PRIu32
	    ", \"workers\": %" PRIu32 ", \"reloads\": %" PRIu32
	    ", \"reloads_failed\": %" PRIu32 ", \"layout_version\": %" PRIu32
	    ", \"entries\": %" PRIu32 "},\n", h->master_pid, h->start_time,
	    age(s->now, h->start_time), h->generation, h->workers, h->reloads,
	    h->reloads_failed, h->layout_version, h->nentries);
}

static void
json_totals(FILE *out, const struct stats_snap *s)
{
	fprintf(out, "  \"totals\": {\n    \"conn_active\": %" PRIu64
	    ",\n    \"tls_open\": %" PRIu64 ",\n    \"workers_running\": %u,\n",
	    stats_conn_open(s), stats_tls_open(s), stats_running_workers(s));
	json_counters(out, &s->total, "    ");
	json_latency(out, &s->total, "    ");
	fprintf(out, "  },\n");
}

static void
json_clients(FILE *out, const struct stats_snap_clients *sc)
{
	char addr[64];

	fprintf(out, "      \"recent_clients\": [");
	for (unsigned k = 0; k < sc->n; k++) {
		fprintf(out, "%s{\"address\": \"%s\", \"proxied\": %s, "
		    "\"time\": %" PRId64 ", \"identity\": ", k ? ", " : "",
		    stats_client_text(&sc->c[k], addr, sizeof(addr)),
		    sc->c[k].proxied ? "true" : "false", sc->c[k].when);
		if (sc->c[k].identity[0] != '\0')
			json_string(out, sc->c[k].identity,
			    sizeof(sc->c[k].identity));
		else
			fputs("null", out);
		fputc('}', out);
	}
	fprintf(out, "],\n");
}

static void
json_worker(FILE *out, const struct stats_snap *s, const struct stats_entry *e)
{
	fprintf(out, "    {\"slot\": %" PRIu32 ", \"pid\": %" PRId32
	    ", \"generation\": %" PRIu32 ", \"state\": \"%s\", \"start_time\": %"
	    PRId64 ", \"uptime_seconds\": %" PRId64 ", \"restarts\": %" PRIu32
	    ", \"conn_active\": %" PRIu64 ", \"conn_idle\": %" PRIu64
	    ", \"tls_open\": %" PRIu64 ",\n",
	    e->slot, e->pid, e->generation, stats_state_name(e->state),
	    e->start_time, age(s->now, e->start_time), e->restarts,
	    e->conn_active, e->conn_idle, e->tls_open);
	if (s->clients != NULL)
		json_clients(out, &s->clients[e - s->entries]);
	json_counters(out, &e->v, "      ");
	json_latency(out, &e->v, "      ");
	fprintf(out, "    }");
}

int
stats_format_json(FILE *out, const struct stats_snap *s)
{
	bool first = true;

	fprintf(out, "{\n");
	json_master(out, s);
	json_totals(out, s);
	stats_format_modules_json(out, s);
	fprintf(out, "  \"workers\": [");
	for (unsigned i = 0; i < s->hdr.nentries; i++) {
		if (!entry_live(&s->entries[i]))
			continue;
		fprintf(out, "%s\n", first ? "" : ",");
		json_worker(out, s, &s->entries[i]);
		first = false;
	}
	fprintf(out, "\n  ]\n}\n");
	return finish(out);
}

/* ------------------------------------------------------------ rates */

/* A counter of a new master starts again from zero. */
static uint64_t
delta(uint64_t prev, uint64_t cur)
{
	return cur >= prev ? cur - prev : cur;
}

/* "12.3k", "4.5M": a rate in a narrow column. */
static const char *
human(char *buf, size_t len, double v)
{
	static const char unit[] = " kMGT";
	int u = 0;

	while (v >= 10000 && u < 4) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%.1f%c", v, unit[u]);
	return buf;
}

/* The latency mean over the interval, "n/a" without a request. */
static const char *
interval_latency(char *buf, size_t len, const struct stats_values *p,
    const struct stats_values *c)
{
	uint64_t n = delta(hist_count(p), hist_count(c));

	if (n == 0)
		return "n/a";
	snprintf(buf, len, "%.3f", (double)delta(p->hist_sum_ns,
	    c->hist_sum_ns) / (double)n / 1e6);
	return buf;
}

int
stats_format_rate_header(FILE *out)
{
	fprintf(out, "%-8s %9s %9s %9s %9s %8s %8s %7s %8s %10s\n", "time",
	    "frames/s", "replies/s", "rx_B/s", "tx_B/s", "conns/s", "closed/s",
	    "open", "errors/s", "latency_ms");
	return finish(out);
}

int
stats_format_rate_line(FILE *out, const struct stats_snap *prev,
    const struct stats_snap *cur)
{
	const struct stats_values *p = &prev->total, *c = &cur->total;
	double dt = cur->taken - prev->taken;
	char t[16], a[5][16], lat[32];
	struct tm tm;

	if (dt <= 0)
		dt = 1e-9;
	localtime_r(&cur->now, &tm);
	strftime(t, sizeof(t), "%H:%M:%S", &tm);
#define RATE(i, x) human(a[i], sizeof(a[i]), (double)(x) / dt)
	fprintf(out, "%-8s %9s %9s %9s %9s %8.1f %8.1f %7" PRIu64 " %8s %10s\n",
	    t, RATE(0, delta(group_sum(p, GROUP_FRAMES_IN),
	    group_sum(c, GROUP_FRAMES_IN))),
	    RATE(1, delta(group_sum(p, GROUP_FRAMES_OUT),
	    group_sum(c, GROUP_FRAMES_OUT))),
	    RATE(2, delta(p->counter[STATS_bytes_received],
	    c->counter[STATS_bytes_received])),
	    RATE(3, delta(p->counter[STATS_bytes_sent],
	    c->counter[STATS_bytes_sent])),
	    (double)delta(p->counter[STATS_conn_accepted],
	    c->counter[STATS_conn_accepted]) / dt,
	    (double)delta(p->counter[STATS_conn_closed],
	    c->counter[STATS_conn_closed]) / dt, stats_conn_open(cur),
	    RATE(4, delta(group_sum(p, GROUP_ERRORS), group_sum(c, GROUP_ERRORS))),
	    interval_latency(lat, sizeof(lat), p, c));
#undef RATE
	return finish(out);
}
