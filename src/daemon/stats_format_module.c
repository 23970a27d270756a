/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * stats_format_module.c - the per-module part of goproctl stats: the
 * counters of each handler module (retired workers' plus live ones, by
 * module name) in text, in JSON and as Prometheus families with a
 * module="NAME" label.  Module names are [A-Za-z0-9_-] (conf_module.c),
 * so they need no escaping in either format.
 */
#include <inttypes.h>
#include <stdio.h>

#include "stats_format.h"

static const char *const mod_name[STATS_MOD_NCOUNTERS] = {
#define MOD_NAME(name, help) #name,
	STATS_MODULE_COUNTERS(MOD_NAME)
#undef MOD_NAME
};

static const char *const mod_help[STATS_MOD_NCOUNTERS] = {
#define MOD_HELP(name, help) help,
	STATS_MODULE_COUNTERS(MOD_HELP)
#undef MOD_HELP
};

static unsigned
totals(const struct stats_snap *s, struct stats_module *out)
{
	return stats_module_totals(&s->hdr, s->entries, s->hdr.nentries, out,
	    STATS_MODULES);
}

void
stats_format_modules_text(FILE *out, const struct stats_snap *s)
{
	struct stats_module m[STATS_MODULES];
	unsigned n = totals(s, m);

	if (n == 0)
		return;
	fprintf(out, "\nmodules:\n");
	for (unsigned i = 0; i < n; i++) {
		fprintf(out, "  %s: in flight %" PRIu64, m[i].name, m[i].inflight);
		for (unsigned c = 0; c < STATS_MOD_NCOUNTERS; c++)
			fprintf(out, ", %s %" PRIu64, mod_name[c], m[i].counter[c]);
		fputc('\n', out);
	}
}

static void
json_module(FILE *out, const struct stats_module *m)
{
	fprintf(out, "    {\"name\": \"%s\", \"inflight\": %" PRIu64, m->name,
	    m->inflight);
	for (unsigned c = 0; c < STATS_MOD_NCOUNTERS; c++)
		fprintf(out, ", \"%s\": %" PRIu64, mod_name[c], m->counter[c]);
	fprintf(out, ", \"latency_buckets\": [");
	for (unsigned b = 0; b < STATS_HIST_BUCKETS; b++)
		fprintf(out, "%s%" PRIu64, b ? ", " : "", m->hist[b]);
	fprintf(out, "], \"latency_sum_seconds\": %.9f}",
	    (double)m->hist_sum_ns / 1e9);
}

/* "  \"modules\": [...],\n", written before the workers. */
void
stats_format_modules_json(FILE *out, const struct stats_snap *s)
{
	struct stats_module m[STATS_MODULES];
	unsigned n = totals(s, m);

	fprintf(out, "  \"modules\": [");
	for (unsigned i = 0; i < n; i++) {
		fprintf(out, "%s\n", i ? "," : "");
		json_module(out, &m[i]);
	}
	fprintf(out, "%s],\n", n ? "\n  " : "");
}

static void
prom_latency(FILE *out, const struct stats_module *m, unsigned n)
{
	const char *name = "gopro_module_request_duration_seconds";
	char le[32];

	fprintf(out, "# HELP %s Time from handing a request to the module to "
	    "its reply\n# TYPE %s histogram\n", name, name);
	for (unsigned i = 0; i < n; i++) {
		uint64_t cumulative = 0;

		for (unsigned b = 0; b < STATS_HIST_BUCKETS; b++) {
			double bound = stats_bucket_le(b);

			cumulative += m[i].hist[b];
			if (b + 1 == STATS_HIST_BUCKETS)
				snprintf(le, sizeof(le), "+Inf");
			else
				snprintf(le, sizeof(le), "%g", bound);
			fprintf(out, "%s_bucket{module=\"%s\",le=\"%s\"} %" PRIu64
			    "\n", name, m[i].name, le, cumulative);
		}
		fprintf(out, "%s_sum{module=\"%s\"} %.9f\n", name, m[i].name,
		    (double)m[i].hist_sum_ns / 1e9);
		fprintf(out, "%s_count{module=\"%s\"} %" PRIu64 "\n", name,
		    m[i].name, cumulative);
	}
}

void
stats_format_modules_prometheus(FILE *out, const struct stats_snap *s)
{
	struct stats_module m[STATS_MODULES];
	unsigned n = totals(s, m);

	if (n == 0)
		return;
	for (unsigned c = 0; c < STATS_MOD_NCOUNTERS; c++) {
		fprintf(out, "# HELP gopro_module_%s_total %s\n"
		    "# TYPE gopro_module_%s_total counter\n", mod_name[c],
		    mod_help[c], mod_name[c]);
		for (unsigned i = 0; i < n; i++)
			fprintf(out, "gopro_module_%s_total{module=\"%s\"} %"
			    PRIu64 "\n", mod_name[c], m[i].name,
			    m[i].counter[c]);
	}
	fprintf(out, "# HELP gopro_module_inflight Requests at the module "
	    "now\n# TYPE gopro_module_inflight gauge\n");
	for (unsigned i = 0; i < n; i++)
		fprintf(out, "gopro_module_inflight{module=\"%s\"} %" PRIu64 "\n",
		    m[i].name, m[i].inflight);
	prom_latency(out, m, n);
}
