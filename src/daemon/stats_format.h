/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * stats_format.h - output formats of a stats snapshot, shared by goproctl
 * (text, JSON, Prometheus, rates) and the metrics endpoint (Prometheus), so
 * that every consumer names and counts the same way.
 *
 * JSON document (one object):
 *   "info":    version, configuration, metrics_listen, max_connections,
 *              listen [{address, proxy}], last_reload_time, last_reload_ok,
 *              last_reload_success_time, last_reload_error, stopping
 *   "master":  pid, start_time, uptime_seconds, generation, workers,
 *              reloads, reloads_failed, layout_version, entries
 *   "totals":  "counters" {every STATS_COUNTERS name: value} (retired plus
 *              live workers), "conn_active", "workers_running", "latency"
 *   "workers": [ {slot, pid, generation, state, start_time, uptime_seconds,
 *              restarts, conn_active, conn_idle, "counters", "latency"} ]
 *   "latency" = {"count", "sum_seconds", "buckets": [{"le": "0.000001",
 *              "count": n}, ..., {"le": "+Inf", "count": n}]} with counts
 *              per bucket (not cumulative).
 */
#ifndef GOPRO_STATS_FORMAT_H
#define GOPRO_STATS_FORMAT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "stats.h"

/* A consistent copy of a segment, taken at one time. */
/* The recent clients of one entry, read consistently, newest first. */
struct stats_snap_clients {
	unsigned n;
	struct stats_client c[STATS_RECENT_CLIENTS];
};

struct stats_snap {
	struct stats_header hdr;
	struct stats_entry *entries; /* hdr.nentries, 128-byte aligned */
	struct stats_snap_clients *clients; /* one per entry */
	struct stats_values total;   /* retired + live */
	double taken;                /* CLOCK_MONOTONIC seconds */
	time_t now;                  /* wall clock at the copy */
};

/* Copy seg into snap (allocates); 0, or -1 with errno. */
int stats_snap_take(const struct stats_segment *seg, struct stats_snap *snap);
void stats_snap_free(struct stats_snap *snap);

/*
 * Each writes one complete document to out and returns 0, or -1 when out
 * reported an error.
 */
int stats_format_text(FILE *out, const struct stats_snap *s);
/* The master line and the worker table, without the totals. */
int stats_format_status(FILE *out, const struct stats_snap *s);
int stats_format_json(FILE *out, const struct stats_snap *s);
/* Prometheus text exposition format 0.0.4. */
int stats_format_prometheus(FILE *out, const struct stats_snap *s);
/*
 * goproctl stats -w, as vmstat does: a header, then one line of per-second
 * rates between two snapshots per interval (at most 100 columns).
 */
int stats_format_rate_header(FILE *out);
int stats_format_rate_line(FILE *out, const struct stats_snap *prev,
    const struct stats_snap *cur);
/* "running", "degraded" (a worker is missing) or "stopping" (a drain). */
const char *stats_verdict(const struct stats_snap *s);

/* "0.000001" .. "16.777216", "+Inf": exact decimal bounds of the buckets. */
const char *stats_format_le(unsigned bucket, char buf[32]);
/* Open connections of every live worker. */
uint64_t stats_conn_open(const struct stats_snap *s);
/* Of those, the connections on TLS listeners. */
uint64_t stats_tls_open(const struct stats_snap *s);
/* Whether stats_prom.c maps every counter to a family (for the tests). */
bool stats_prom_maps_every_counter(void);

/* Worker processes alive in any state and generation. */
unsigned stats_live_workers(const struct stats_snap *s);
/* Workers in state RUNNING of the current generation. */
unsigned stats_running_workers(const struct stats_snap *s);

/* The handler modules' part of each format (stats_format_module.c). */
void stats_format_modules_text(FILE *out, const struct stats_snap *s);
void stats_format_modules_json(FILE *out, const struct stats_snap *s);
void stats_format_modules_prometheus(FILE *out, const struct stats_snap *s);

#endif /* GOPRO_STATS_FORMAT_H */
