/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_report.c - gopro-bench's counters and what it prints: the summary
 * as text for people or as one JSON object for scripts, the progress line,
 * and the two numbers a benchmark needs from the system (the server's RSS,
 * the client's own CPU time, read by main).
 */
#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

static const double percentiles[] = { 50.0, 90.0, 99.0, 99.9 };
static const char *const percentile_keys[] = { "p50", "p90", "p99", "p99_9" };
static const char *const percentile_labels[] = { "p50", "p90", "p99", "p99.9" };
#define NPERCENTILES (sizeof(percentiles) / sizeof(percentiles[0]))

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long
bench_status_kib(pid_t pid, const char *field)
{
	char path[64], line[256], name[32];
	long kib = -1, v;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (kib < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, "%31[^:]: %ld kB", name, &v) == 2 &&
		    strcmp(name, field) == 0)
			kib = v;
	fclose(f);
	return kib;
}

long
bench_rss_kib(pid_t pid)
{
	return bench_status_kib(pid, "VmRSS");
}

/* The parent pid in /proc/PID/stat, -1 when unreadable. */
static long
parent_of(const char *pid)
{
	char path[300], buf[512], *paren;
	long ppid = -1;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) S ppid ...": comm may hold spaces and parentheses. */
	if ((paren = strrchr(buf, ')')) == NULL ||
	    sscanf(paren + 1, " %*c %ld", &ppid) != 1)
		return -1;
	return ppid;
}

/*
 * A master's memory is spread over its workers: sum the RSS of pid and of
 * its children.  Shared pages count once per process, as top shows them.
 */
long
bench_rss_tree_kib(pid_t pid)
{
	long total = bench_rss_kib(pid), kib;
	struct dirent *d;
	DIR *dir;

	if (total < 0 || (dir = opendir("/proc")) == NULL)
		return total;
	while ((d = readdir(dir)) != NULL)
		if (isdigit((unsigned char)d->d_name[0]) &&
		    parent_of(d->d_name) == (long)pid &&
		    (kib = bench_rss_kib((pid_t)atol(d->d_name))) > 0)
			total += kib;
	closedir(dir);
	return total;
}

/* ------------------------------------------------------------ counters */

void
bench_stats_init(struct bench_stats *s)
{
	memset(s, 0, sizeof(*s));
	bench_hist_init(&s->hist);
}

void
bench_stats_merge(struct bench_stats *dst, const struct bench_stats *src)
{
	dst->sent += src->sent;
	dst->ok += src->ok;
	dst->warmup += src->warmup;
	dst->setup += src->setup;
	for (int i = 0; i < BENCH_ERR_COUNT; i++)
		dst->errors[i] += src->errors[i];
	for (int i = 0; i < BENCH_SERVER_ERR_SLOTS; i++)
		dst->server_errors[i] += src->server_errors[i];
	dst->lost += src->lost;
	dst->goaways += src->goaways;
	dst->opened += src->opened;
	dst->tls_full += src->tls_full;
	dst->tls_resumed += src->tls_resumed;
	dst->closed += src->closed;
	dst->bytes_out += src->bytes_out;
	dst->bytes_in += src->bytes_in;
	if (src->last_reply_ns > dst->last_reply_ns)
		dst->last_reply_ns = src->last_reply_ns;
	bench_hist_merge(&dst->hist, &src->hist);
}

uint64_t
bench_stats_errors(const struct bench_stats *s)
{
	uint64_t n = 0;

	for (int i = 0; i < BENCH_ERR_COUNT; i++)
		n += s->errors[i];
	return n;
}

int
bench_result_status(const struct bench_result *r)
{
	if (bench_stats_errors(&r->stats) > 0)
		return 1;
	if (r->stats.lost > 0 && !r->opts->allow_lost)
		return 1;
	if (r->opts->hold > 0 && (r->failed > 0 || r->survived < r->held ||
	    r->held < r->opts->conns))
		return 1;
	return 0;
}

/* ------------------------------------------------------------ text */

static void
mix_text(char *out, size_t len, const struct bench_opts *o)
{
	size_t at = 0;

	out[0] = '\0';
	for (int k = 0; k < BENCH_KINDS && at < len; k++) {
		if (o->mix.weight[k] == 0)
			continue;
		at += (size_t)snprintf(out + at, len - at, "%s%s:%u",
		    at ? "," : "", bench_kind_name(k), o->mix.weight[k]);
	}
}

static void
text_latency(FILE *f, const struct bench_hist *h)
{
	fprintf(f, "latency     ");
	for (size_t i = 0; i < NPERCENTILES; i++)
		fprintf(f, "%s %.3f ms  ", percentile_labels[i],
		    (double)bench_hist_percentile(h, percentiles[i]) / 1e6);
	fprintf(f, "max %.3f ms  mean %.3f ms\n", (double)h->max / 1e6,
	    bench_hist_mean(h) / 1e6);
}

static void
text_errors(FILE *f, const struct bench_stats *s)
{
	if (bench_stats_errors(s) == 0)
		return;
	fprintf(f, "errors     ");
	for (int i = 0; i < BENCH_ERR_COUNT; i++)
		if (s->errors[i])
			fprintf(f, " %s %" PRIu64 ";", bench_error_name(i),
			    s->errors[i]);
	fputc('\n', f);
	for (int i = 0; i < BENCH_SERVER_ERR_SLOTS; i++)
		if (s->server_errors[i])
			fprintf(f, "            ERROR %d (%s): %" PRIu64 "\n", i,
			    gopro_error_name((uint16_t)i), s->server_errors[i]);
}

static void
text_hold(FILE *f, const struct bench_result *r)
{
	fprintf(f, "hold        %" PRIu64 " of %u verified, %" PRIu64
	    " survived %.1f s idle, %" PRIu64 " failed\n", r->held,
	    r->opts->conns, r->survived, r->opts->hold, r->failed);
	if (r->rss_before < 0)
		return;
	fprintf(f, "server rss  %ld KiB before, %ld KiB with the connections, "
	    "%ld KiB after", r->rss_before, r->rss_idle, r->rss_after);
	if (r->held > 0 && r->rss_idle >= 0)
		fprintf(f, ": %.2f KiB per connection",
		    (double)(r->rss_idle - r->rss_before) / (double)r->held);
	fputc('\n', f);
}

void
bench_report_text(FILE *f, const struct bench_result *r)
{
	const struct bench_opts *o = r->opts;
	const struct bench_stats *s = &r->stats;
	double secs = r->elapsed > 0 ? r->elapsed : 1e-9;
	char mix[128];

	mix_text(mix, sizeof(mix), o);
	fprintf(f, "gopro-bench %s: %s, body %zu B, %u connections, "
	    "pipeline %u, %u thread%s, %s\n", o->server, o->hold > 0 ?
	    "hold" : mix, o->body, o->conns, o->depth, o->threads,
	    o->threads == 1 ? "" : "s", o->rate > 0 ? "open loop" :
	    "closed loop");
	if (o->hold > 0)
		text_hold(f, r);
	else {
		fprintf(f, "requests    %" PRIu64 " ok, %" PRIu64 " errors, %"
		    PRIu64 " lost in %.3f s (%" PRIu64 " in the warm-up)\n",
		    s->ok, bench_stats_errors(s), s->lost, r->elapsed,
		    s->warmup);
		fprintf(f, "throughput  %.1f req/s", (double)s->ok / secs);
		if (o->rate > 0)
			fprintf(f, " (target %.1f)", o->rate);
		fprintf(f, ", %.2f MB/s out, %.2f MB/s in\n",
		    (double)s->bytes_out / secs / 1e6,
		    (double)s->bytes_in / secs / 1e6);
		text_latency(f, &s->hist);
	}
	fprintf(f, "connections %" PRIu64 " opened, %" PRIu64 " closed, %"
	    PRIu64 " GOAWAY\n", s->opened, s->closed, s->goaways);
	if (o->tls)
		fprintf(f, "tls         %" PRIu64 " full and %" PRIu64 " resumed "
		    "handshakes (%.1f/s)\n", s->tls_full, s->tls_resumed,
		    r->elapsed > 0 ? (double)(s->tls_full + s->tls_resumed) /
		    r->elapsed : 0.0);
	fprintf(f, "bytes       %" PRIu64 " sent, %" PRIu64 " received\n",
	    s->bytes_out, s->bytes_in);
	fprintf(f, "client cpu  user %.3f s, sys %.3f s", r->cpu_user,
	    r->cpu_sys);
	if (r->elapsed > 0 && o->hold <= 0)
		fprintf(f, " (%.0f%% of one core)",
		    100.0 * (r->cpu_user + r->cpu_sys) / r->elapsed);
	fputc('\n', f);
	text_errors(f, s);
}

/* ------------------------------------------------------------ JSON */

static void
json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void
json_latency(FILE *f, const struct bench_hist *h)
{
	fprintf(f, "\"latency_us\":{");
	for (size_t i = 0; i < NPERCENTILES; i++)
		fprintf(f, "\"%s\":%.3f,", percentile_keys[i],
		    (double)bench_hist_percentile(h, percentiles[i]) / 1e3);
	fprintf(f, "\"min\":%.3f,\"max\":%.3f,\"mean\":%.3f}",
	    h->total ? (double)h->min / 1e3 : 0.0, (double)h->max / 1e3,
	    bench_hist_mean(h) / 1e3);
}

static void
json_errors(FILE *f, const struct bench_stats *s)
{
	fprintf(f, "\"errors\":%" PRIu64 ",\"errors_by_kind\":{",
	    bench_stats_errors(s));
	for (int i = 0; i < BENCH_ERR_COUNT; i++)
		fprintf(f, "%s\"%s\":%" PRIu64, i ? "," : "",
		    bench_error_key(i), s->errors[i]);
	fprintf(f, "},\"server_errors\":{");
	for (int i = 1, first = 1; i < BENCH_SERVER_ERR_SLOTS; i++) {
		if (s->server_errors[i] == 0)
			continue;
		fprintf(f, "%s\"%d\":%" PRIu64, first ? "" : ",", i,
		    s->server_errors[i]);
		first = 0;
	}
	fputc('}', f);
}

static void
json_hold(FILE *f, const struct bench_result *r)
{
	fprintf(f, ",\"hold\":{\"seconds\":%.3f,\"verified\":%" PRIu64
	    ",\"survived\":%" PRIu64 ",\"failed\":%" PRIu64, r->opts->hold,
	    r->held, r->survived, r->failed);
	if (r->rss_before >= 0) {
		fprintf(f, ",\"rss_before_kib\":%ld,\"rss_idle_kib\":%ld,"
		    "\"rss_after_kib\":%ld", r->rss_before, r->rss_idle,
		    r->rss_after);
		if (r->held > 0)
			fprintf(f, ",\"kib_per_connection\":%.3f",
			    (double)(r->rss_idle - r->rss_before) /
			    (double)r->held);
	}
	fputc('}', f);
}

void
bench_report_json(FILE *f, const struct bench_result *r)
{
	const struct bench_opts *o = r->opts;
	const struct bench_stats *s = &r->stats;
	char mix[128];

	mix_text(mix, sizeof(mix), o);
	fprintf(f, "{\"server\":");
	json_string(f, o->server);
	fprintf(f, ",\"mode\":\"%s\",\"mix\":", o->hold > 0 ? "hold" :
	    o->rate > 0 ? "open" : "closed");
	json_string(f, mix);
	fprintf(f, ",\"body\":%zu,\"connections\":%u,\"pipeline\":%u,"
	    "\"threads\":%u,\"rate\":%.3f,\"elapsed\":%.6f,"
	    "\"requests\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"warmup\":%" PRIu64
	    ",\"throughput\":%.3f,", o->body, o->conns, o->depth, o->threads,
	    o->rate, r->elapsed, s->ok, s->sent, s->warmup,
	    r->elapsed > 0 ? (double)s->ok / r->elapsed : 0.0);
	json_latency(f, &s->hist);
	fputc(',', f);
	json_errors(f, s);
	fprintf(f, ",\"lost\":%" PRIu64 ",\"goaway\":%" PRIu64
	    ",\"connections_opened\":%" PRIu64 ",\"connections_closed\":%"
	    PRIu64 ",\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64
	    ",\"cpu_user\":%.3f,\"cpu_sys\":%.3f", s->lost, s->goaways,
	    s->opened, s->closed, s->bytes_out, s->bytes_in, r->cpu_user,
	    r->cpu_sys);
	if (o->tls)
		fprintf(f, ",\"tls_handshakes_full\":%" PRIu64
		    ",\"tls_handshakes_resumed\":%" PRIu64, s->tls_full,
		    s->tls_resumed);
	if (o->hold > 0)
		json_hold(f, r);
	fprintf(f, ",\"status\":\"%s\"}\n", bench_result_status(r) ? "fail" :
	    "ok");
}

/* ------------------------------------------------------------ progress */

void
bench_report_progress(FILE *f, double t, const struct bench_progress *p,
    uint64_t prev_ok, double dt, bool hold)
{
	if (hold)
		fprintf(f, "[%6.1fs] %" PRIu64 " open, %" PRIu64 " verified, %"
		    PRIu64 " survived, %" PRIu64 " failed\n", t, p->open,
		    p->held, p->survived, p->failed);
	else
		fprintf(f, "[%6.1fs] %.0f req/s, %" PRIu64 " ok, %" PRIu64
		    " errors, %" PRIu64 " lost, %" PRIu64 " connections\n", t,
		    dt > 0 ? (double)(p->ok - prev_ok) / dt : 0.0, p->ok,
		    p->errors, p->lost, p->open);
}
