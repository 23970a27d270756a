/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * stats_prom.c - the Prometheus text exposition (format 0.0.4) of a stats
 * snapshot, for goproctl stats --prometheus and the metrics endpoint.
 *
 * Names follow the Prometheus naming guide: one family per concept with
 * labels for its kinds (frames by command, errors by code, cut connections
 * by reason), base units in the name (_bytes, _seconds), counters ending in
 * _total, and worker series labelled by slot and generation, both bounded,
 * instead of by pid, which made a new series at every respawn.  The
 * counters keep their STATS_COUNTERS names everywhere else (text, JSON);
 * the table below maps each of them to its family and label (test_stats_format
 * checks that none is missing).  NEWS lists the old names.
 *
 * The process_* series are the master's, read from /proc like the client
 * libraries do for their own process.
 */
#include "config.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "stats_format.h"

struct family {
	const char *name;        /* without "gopro_" */
	const char *help;
	const char *label;       /* NULL: no label */
};

static const struct family f_frames_in = { "frames_received_total",
	"Frames received, by command", "command" };
static const struct family f_frames_out = { "frames_sent_total",
	"Frames sent, by command", "command" };
static const struct family f_errors = { "errors_sent_total",
	"ERROR frames sent, by error code", "code" };
static const struct family f_cut = { "connections_cut_total",
	"Connections the server closed for a limit or an error, by reason",
	"reason" };
static const struct family f_refused = { "connections_refused_total",
	"Connections refused without being served, by reason", "reason" };
static const struct family f_accept_err = { "accept_errors_total",
	"accept() failures other than EAGAIN, by reason", "reason" };
static const struct family f_logins = { "logins_total",
	"LOGIN attempts, by result", "result" };
static const struct family f_accepted = { "connections_accepted_total",
	"Connections accepted", NULL };
static const struct family f_closed = { "connections_closed_total",
	"Connections closed, for any reason", NULL };
static const struct family f_rx = { "received_bytes_total",
	"Bytes received from clients", NULL };
static const struct family f_tx = { "sent_bytes_total",
	"Bytes sent to clients", NULL };
static const struct family f_rate = { "logins_rate_limited_total",
	"Failed LOGIN attempts refused by login_rate (also counted as failed)",
	NULL };
static const struct family f_pause = { "backpressure_pauses_total",
	"Times reading paused for output above output_high_water", NULL };
static const struct family f_lost = { "requests_lost_total",
	"Requests read but unanswered when a connection was cut", NULL };
static const struct family f_proxied = { "connections_proxied_total",
	"Connections whose client address came from a PROXY header", NULL };
static const struct family f_tls_hs = { "tls_handshakes_total",
	"TLS handshakes completed, full or resumed from a ticket", "kind" };
static const struct family f_tls_fail = { "tls_handshake_failures_total",
	"TLS handshakes that failed, by reason", "reason" };
static const struct family f_tls_ver = { "tls_connections_total",
	"TLS connections, by negotiated version", "version" };
static const struct family f_ktls = { "tls_ktls_connections_total",
	"TLS connections whose records the kernel handles (kTLS)", NULL };
static const struct family f_tls_id = { "tls_identity_logins_total",
	"TLS connections logged in by their client certificate", NULL };
/*
 * The bytes of TLS connections before and after encryption, per worker:
 * "application" is what SSL_read gave and SSL_write took, "wire" the TLS
 * records the socket moved (handshakes included).
 */
static const struct family f_tls_rx = { "tls_received_bytes_total",
	"Bytes a worker received on TLS connections: decrypted (application) "
	"and as TLS records (wire)", "layer" };
static const struct family f_tls_tx = { "tls_sent_bytes_total",
	"Bytes a worker sent on TLS connections: before encryption "
	"(application) and as TLS records (wire)", "layer" };

/* The families exported per worker (slot, generation), not as a total. */
static bool
per_worker(const struct family *f)
{
	return f == &f_tls_rx || f == &f_tls_tx;
}
static const struct family f_proxy_rej = { "proxy_rejected_total",
	"PROXY listener connections refused: untrusted source, bad or late "
	"header", NULL };

/* Each counter: its family and, for labelled families, its label value. */
static const struct {
	const struct family *f;
	const char *value;
} counter_family[STATS_NCOUNTERS] = {
	[STATS_conn_accepted] = { &f_accepted, NULL },
	[STATS_conn_closed] = { &f_closed, NULL },
	[STATS_conn_refused_limit] = { &f_refused, "max_connections" },
	[STATS_conn_idle_timeout] = { &f_cut, "idle_timeout" },
	[STATS_conn_frame_timeout] = { &f_cut, "frame_timeout" },
	[STATS_conn_send_timeout] = { &f_cut, "send_timeout" },
	[STATS_conn_drain_timeout] = { &f_cut, "drain_timeout" },
	[STATS_conn_reset] = { &f_cut, "reset" },
	[STATS_accept_errors] = { &f_accept_err, "other" },
	[STATS_accept_emfile] = { &f_accept_err, "out_of_descriptors" },
	[STATS_bytes_received] = { &f_rx, NULL },
	[STATS_bytes_sent] = { &f_tx, NULL },
	[STATS_frames_received_heartbeat] = { &f_frames_in, "heartbeat" },
	[STATS_frames_received_message] = { &f_frames_in, "message" },
	[STATS_frames_received_login] = { &f_frames_in, "login" },
	[STATS_frames_received_other] = { &f_frames_in, "other" },
	[STATS_frames_sent_heartbeat] = { &f_frames_out, "heartbeat" },
	[STATS_frames_sent_message] = { &f_frames_out, "message" },
	[STATS_frames_sent_login_ack] = { &f_frames_out, "login_ack" },
	[STATS_frames_sent_error] = { &f_frames_out, "error" },
	[STATS_frames_sent_goaway] = { &f_frames_out, "goaway" },
	[STATS_frames_sent_other] = { &f_frames_out, "other" },
	[STATS_errors_bad_magic] = { &f_errors, "bad_magic" },
	[STATS_errors_bad_version] = { &f_errors, "bad_version" },
	[STATS_errors_too_large] = { &f_errors, "too_large" },
	[STATS_errors_unknown_command] = { &f_errors, "unknown_command" },
	[STATS_errors_auth_required] = { &f_errors, "auth_required" },
	[STATS_errors_auth_failed] = { &f_errors, "auth_failed" },
	[STATS_errors_busy] = { &f_errors, "busy" },
	[STATS_errors_timeout] = { &f_errors, "timeout" },
	[STATS_errors_malformed] = { &f_errors, "malformed" },
	[STATS_errors_unavailable] = { &f_errors, "unavailable" },
	[STATS_errors_request_timeout] = { &f_errors, "request_timeout" },
	[STATS_logins_ok] = { &f_logins, "ok" },
	[STATS_logins_failed] = { &f_logins, "failed" },
	[STATS_logins_rate_limited] = { &f_rate, NULL },
	[STATS_backpressure] = { &f_pause, NULL },
	[STATS_requests_lost] = { &f_lost, NULL },
	[STATS_conn_proxied] = { &f_proxied, NULL },
	[STATS_proxy_rejected] = { &f_proxy_rej, NULL },
	[STATS_tls_handshakes_full] = { &f_tls_hs, "full" },
	[STATS_tls_handshakes_resumed] = { &f_tls_hs, "resumed" },
	[STATS_tls_failed_protocol] = { &f_tls_fail, "protocol" },
	[STATS_tls_failed_certificate] = { &f_tls_fail, "certificate" },
	[STATS_tls_failed_closed] = { &f_tls_fail, "closed" },
	[STATS_tls_failed_timeout] = { &f_tls_fail, "timeout" },
	[STATS_tls_version_1_2] = { &f_tls_ver, "1.2" },
	[STATS_tls_version_1_3] = { &f_tls_ver, "1.3" },
	[STATS_tls_ktls] = { &f_ktls, NULL },
	[STATS_tls_identity_logins] = { &f_tls_id, NULL },
	[STATS_tls_app_bytes_received] = { &f_tls_rx, "application" },
	[STATS_tls_app_bytes_sent] = { &f_tls_tx, "application" },
	[STATS_tls_wire_bytes_received] = { &f_tls_rx, "wire" },
	[STATS_tls_wire_bytes_sent] = { &f_tls_tx, "wire" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

bool
stats_prom_maps_every_counter(void)
{
	for (int i = 0; i < STATS_NCOUNTERS; i++)
		if (counter_family[i].f == NULL || (counter_family[i].f->label !=
		    NULL) != (counter_family[i].value != NULL))
			return false;
	return true;
}

static void
header(FILE *out, const char *name, const char *help, const char *type)
{
	/* The help strings are ours and hold no backslash or newline. */
	fprintf(out, "# HELP gopro_%s %s\n# TYPE gopro_%s %s\n", name, help,
	    name, type);
}

/* A label value from the segment: escaped as the format requires. */
static void
label_value(FILE *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', out);
		if (*v == '\n')
			fputs("\\n", out);
		else
			fputc(*v, out);
	}
}

/* Every counter of family f, in the order of STATS_COUNTERS. */
static void
counters_of(FILE *out, const struct family *f, const struct stats_values *v)
{
	header(out, f->name, f->help, "counter");
	for (int i = 0; i < STATS_NCOUNTERS; i++) {
		if (counter_family[i].f != f)
			continue;
		if (f->label != NULL)
			fprintf(out, "gopro_%s{%s=\"%s\"} %" PRIu64 "\n",
			    f->name, f->label, counter_family[i].value,
			    v->counter[i]);
		else
			fprintf(out, "gopro_%s %" PRIu64 "\n", f->name,
			    v->counter[i]);
	}
}

static void
prom_counters(FILE *out, const struct stats_values *v)
{
	for (int i = 0; i < STATS_NCOUNTERS; i++) {
		bool first = true;

		/* Each family once, where its first counter is. */
		for (int k = 0; k < i && first; k++)
			first = counter_family[k].f != counter_family[i].f;
		if (first && counter_family[i].f != NULL &&
		    !per_worker(counter_family[i].f))
			counters_of(out, counter_family[i].f, v);
	}
}

static void
gauge(FILE *out, const char *name, const char *help, double v)
{
	header(out, name, help, "gauge");
	fprintf(out, "gopro_%s %.17g\n", name, v);
}

static void
prom_master(FILE *out, const struct stats_snap *s)
{
	const struct stats_header *h = &s->hdr;
	const struct stats_info *in = &h->info;

	header(out, "build_info", "The version of the running goprod", "gauge");
	fprintf(out, "gopro_build_info{version=\"");
	label_value(out, in->version);
	fprintf(out, "\"} 1\n");
	gauge(out, "workers", "Configured worker processes", h->workers);
	gauge(out, "workers_running", "Workers running the current generation",
	    stats_running_workers(s));
	gauge(out, "generation", "Configuration generation", h->generation);
	gauge(out, "max_connections", "Open connections a worker may have "
	    "(max_connections)", in->max_connections);
	gauge(out, "connections_open", "Open client connections of all "
	    "workers", (double)stats_conn_open(s));
	header(out, "config_reloads_total", "Reloads, by result", "counter");
	fprintf(out, "gopro_config_reloads_total{result=\"ok\"} %" PRIu32 "\n"
	    "gopro_config_reloads_total{result=\"failed\"} %" PRIu32 "\n",
	    h->reloads, h->reloads_failed);
	gauge(out, "config_last_reload_successful", "1 when the last reload "
	    "succeeded (or none was tried), else 0", in->last_reload_ok);
	gauge(out, "config_last_reload_success_timestamp_seconds", "When the "
	    "running configuration was loaded, unix time",
	    (double)in->last_reload_success_time);
	gauge(out, "stopping", "1 while goprod drains to exit",
	    in->stopping);
	/* Only with a TLS listener: an alert on it must not fire without. */
	if (h->tls_cert_expiry > 0)
		gauge(out, "tls_certificate_expiry_timestamp_seconds", "When the "
		    "TLS server certificate expires, unix time",
		    (double)h->tls_cert_expiry);
}

/* ------------------------------------------------------------ workers */

/* Worker series: the live entries, labelled by slot and generation. */
static void
worker_labels(FILE *out, const char *name, const struct stats_entry *e)
{
	fprintf(out, "gopro_%s{slot=\"%" PRIu32 "\",generation=\"%" PRIu32
	    "\"}", name, e->slot, e->generation);
}

static uint64_t
w_open(const struct stats_entry *e)
{
	return e->conn_active;
}

static uint64_t
w_tls_open(const struct stats_entry *e)
{
	return e->tls_open;
}

static uint64_t
w_restarts(const struct stats_entry *e)
{
	return e->restarts;
}

static uint64_t
w_accepted(const struct stats_entry *e)
{
	return e->v.counter[STATS_conn_accepted];
}

static uint64_t
w_rx(const struct stats_entry *e)
{
	return e->v.counter[STATS_bytes_received];
}

static uint64_t
w_tx(const struct stats_entry *e)
{
	return e->v.counter[STATS_bytes_sent];
}

static uint64_t
w_start(const struct stats_entry *e)
{
	return (uint64_t)e->start_time;
}

static const struct {
	const char *name, *help, *type;
	uint64_t (*get)(const struct stats_entry *);
} worker_series[] = {
	{ "worker_connections_open", "Open connections of a worker", "gauge",
	    w_open },
	{ "tls_connections_open", "Open connections of a worker on TLS "
	    "listeners, handshakes included", "gauge", w_tls_open },
	{ "worker_start_time_seconds", "Start time of a worker, unix time",
	    "gauge", w_start },
	{ "worker_restarts_total", "Unexpected exits of the slot's workers "
	    "that were replaced", "counter", w_restarts },
	{ "worker_connections_accepted_total", "Connections a worker "
	    "accepted", "counter", w_accepted },
	{ "worker_received_bytes_total", "Bytes a worker received", "counter",
	    w_rx },
	{ "worker_sent_bytes_total", "Bytes a worker sent", "counter", w_tx },
};

/* The counters of family f, per live worker and label value. */
static void
worker_counters_of(FILE *out, const struct family *f,
    const struct stats_snap *s)
{
	header(out, f->name, f->help, "counter");
	for (unsigned i = 0; i < s->hdr.nentries; i++) {
		const struct stats_entry *e = &s->entries[i];

		if (e->state == STATS_STATE_FREE)
			continue;
		for (int k = 0; k < STATS_NCOUNTERS; k++)
			if (counter_family[k].f == f)
				fprintf(out, "gopro_%s{slot=\"%" PRIu32 "\","
				    "generation=\"%" PRIu32 "\",%s=\"%s\"} %"
				    PRIu64 "\n", f->name, e->slot,
				    e->generation, f->label,
				    counter_family[k].value, e->v.counter[k]);
	}
}

static void
prom_workers(FILE *out, const struct stats_snap *s)
{
	for (size_t m = 0; m < NELEM(worker_series); m++) {
		header(out, worker_series[m].name, worker_series[m].help,
		    worker_series[m].type);
		for (unsigned i = 0; i < s->hdr.nentries; i++) {
			const struct stats_entry *e = &s->entries[i];

			if (e->state == STATS_STATE_FREE)
				continue;
			worker_labels(out, worker_series[m].name, e);
			fprintf(out, " %" PRIu64 "\n", worker_series[m].get(e));
		}
	}
	worker_counters_of(out, &f_tls_rx, s);
	worker_counters_of(out, &f_tls_tx, s);
}

/* Accept-queue depth by listener and slot, as the master sampled it. */
static void
prom_queues(FILE *out, const struct stats_snap *s)
{
	const struct stats_info *in = &s->hdr.info;

	header(out, "listen_accept_queue", "Connections waiting in a "
	    "listening socket's accept queue, by listener and slot", "gauge");
	for (unsigned a = 0; a < in->nlisten && a < STATS_MAX_LISTEN; a++)
		for (unsigned k = 0; k < s->hdr.workers && k < STATS_MAX_SLOTS;
		    k++) {
			fprintf(out, "gopro_listen_accept_queue{listener=\"");
			label_value(out, in->listen[a].text);
			fprintf(out, "\",slot=\"%u\"} %" PRIu32 "\n", k,
			    s->hdr.accept_queue[a][k]);
		}
}

static void
prom_histogram(FILE *out, const struct stats_values *v)
{
	const char *name = "request_duration_seconds";
	uint64_t cumulative = 0;
	char le[32];

	header(out, name, "Time from the read that completed a request to the "
	    "write of its reply", "histogram");
	for (unsigned i = 0; i < STATS_HIST_BUCKETS; i++) {
		cumulative += v->hist[i];
		fprintf(out, "gopro_%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
		    stats_format_le(i, le), cumulative);
	}
	fprintf(out, "gopro_%s_sum %.9f\n", name, (double)v->hist_sum_ns / 1e9);
	fprintf(out, "gopro_%s_count %" PRIu64 "\n", name, cumulative);
}

/* ------------------------------------------------------------ process */

struct proc_sample {
	double start_time, cpu_seconds, rss_bytes;
	long open_fds, max_fds;
};

/* Start time, CPU and RSS from /proc/PID/stat; false when unreadable. */
static bool
proc_stat(pid_t pid, struct proc_sample *p)
{
	unsigned long long utime, stime, start;
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE), rss;
	char buf[1024];
	const char *fields;
	double boot = 0;
	FILE *f;

	/* Fields 14, 15, 22 and 24, counted after the "(comm)" field. */
	if ((fields = daemon_proc_stat(pid, buf, sizeof(buf))) == NULL ||
	    sscanf(fields + 1,
	    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
	    "%*d %*d %*d %*d %llu %*u %ld", &utime, &stime, &start, &rss) != 4)
		return false;
	if ((f = fopen("/proc/stat", "r")) != NULL) {
		while (fgets(buf, sizeof(buf), f) != NULL)
			if (sscanf(buf, "btime %lf", &boot) == 1)
				break;
		fclose(f);
	}
	p->cpu_seconds = (double)(utime + stime) / (double)ticks;
	p->start_time = boot + (double)start / (double)ticks;
	p->rss_bytes = (double)rss * (double)page;
	return true;
}

/* Open descriptors and their soft limit, -1 each when unreadable. */
static void
proc_fds(pid_t pid, struct proc_sample *p)
{
	char path[64], line[256];
	struct dirent *d;
	DIR *dir;
	FILE *f;

	p->open_fds = p->max_fds = -1;
	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if ((dir = opendir(path)) != NULL) {
		p->open_fds = 0;
		while ((d = readdir(dir)) != NULL)
			p->open_fds += d->d_name[0] != '.';
		closedir(dir);
	}
	snprintf(path, sizeof(path), "/proc/%ld/limits", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Max open files %ld", &p->max_fds) == 1)
			break;
	fclose(f);
}

static void
process_gauge(FILE *out, const char *name, const char *help,
    const char *type, double v)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help,
	    name, type, name, v);
}

static void
prom_process(FILE *out, const struct stats_snap *s)
{
	struct proc_sample p;

	if (!proc_stat(s->hdr.master_pid, &p))
		return;
	proc_fds(s->hdr.master_pid, &p);
	process_gauge(out, "process_start_time_seconds", "Start time of the "
	    "goprod master since the epoch", "gauge", p.start_time);
	process_gauge(out, "process_cpu_seconds_total", "User and system CPU "
	    "time of the master", "counter", p.cpu_seconds);
	process_gauge(out, "process_resident_memory_bytes", "Resident memory "
	    "of the master", "gauge", p.rss_bytes);
	/* The master may run as another user: its fds may not be readable. */
	if (p.open_fds >= 0)
		process_gauge(out, "process_open_fds", "Open descriptors of the "
		    "master", "gauge", (double)p.open_fds);
	if (p.max_fds >= 0)
		process_gauge(out, "process_max_fds", "Descriptor limit of the "
		    "master", "gauge", (double)p.max_fds);
}

int
stats_format_prometheus(FILE *out, const struct stats_snap *s)
{
	prom_counters(out, &s->total);
	prom_master(out, s);
	prom_histogram(out, &s->total);
	prom_workers(out, s);
	prom_queues(out, s);
	prom_process(out, s);
	stats_format_modules_prometheus(out, s);
	return ferror(out) ? -1 : 0;
}
