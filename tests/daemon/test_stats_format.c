/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_stats_format.c - unit tests of the output formats on a snapshot
 * built by hand: exact lines of the text and Prometheus output, JSON that
 * a real parser accepts (python3), Prometheus text that promtool accepts
 * (both skipped with a message when the tool is missing), cumulative
 * histogram buckets, and rates.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats_format.h"

#define NENT 4

static void
snap_init(struct stats_snap *s)
{
	memset(s, 0, sizeof(*s));
	s->entries = aligned_alloc(STATS_ALIGN, NENT * sizeof(*s->entries));
	assert_non_null(s->entries);
	memset(s->entries, 0, NENT * sizeof(*s->entries));
	s->hdr.magic = STATS_MAGIC;
	s->hdr.layout_version = STATS_LAYOUT_VERSION;
	s->hdr.nentries = NENT;
	s->hdr.master_pid = 4242;
	s->hdr.generation = 2;
	s->hdr.workers = 2;
	s->hdr.start_time = 1700000000;
	s->now = 1700003723;
	s->taken = 100.0;
}

/* Two running workers of generation 2, one retired worker's counters. */
static void
snap_fill(struct stats_snap *s)
{
	struct stats_entry *e;

	snap_init(s);
	e = s->entries;
	for (int i = 0; i < 2; i++) {
		e[i].pid = 5000 + i;
		e[i].slot = (uint32_t)i;
		e[i].generation = 2;
		e[i].state = STATS_STATE_RUNNING;
		e[i].start_time = 1700003000;
		e[i].conn_active = (uint64_t)i + 1;
		e[i].v.counter[STATS_frames_received_heartbeat] = 2;
		e[i].v.counter[STATS_bytes_received] = 100;
	}
	e[0].v.hist[0] = 3;   /* < 1 us */
	e[0].v.hist[2] = 1;   /* < 2 us */
	e[0].v.hist_sum_ns = 5000;
	s->hdr.retired.counter[STATS_frames_received_heartbeat] = 1;
	s->hdr.retired.hist[STATS_HIST_BUCKETS - 1] = 1;
	snprintf(s->hdr.info.version, sizeof(s->hdr.info.version),
	    "goprod 9.9 \"q\"");
	s->hdr.info.max_connections = 500;
	s->hdr.info.nlisten = 1;
	snprintf(s->hdr.info.listen[0].text, sizeof(s->hdr.info.listen[0].text),
	    "127.0.0.1:8888");
	s->hdr.accept_queue[0][1] = 7;
	s->hdr.reloads_failed = 1;
	s->hdr.info.last_reload_ok = 0;
	s->hdr.info.listen[0].proxy = 1;
	s->hdr.info.last_reload_time = 1700000200;
	snprintf(s->hdr.info.last_reload_error,
	    sizeof(s->hdr.info.last_reload_error), "a.conf:3: bad\na.conf:4: "
	    "worse\n");
	s->hdr.info.last_reload_success_time = 1700000100;
	stats_total(&s->hdr, s->entries, NENT, &s->total);
}

/* The output of fn as a NUL-terminated string (caller frees). */
static char *
render(int (*fn)(FILE *, const struct stats_snap *),
    const struct stats_snap *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(fn(f, s), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void
assert_line(const char *text, const char *line)
{
	const char *p = text;
	size_t n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || !p[n]))
			return;
		p += n;
	}
	fail_msg("line \"%s\" not found in:\n%s", line, text);
}

/* Feed text to a shell command; its exit status, or -1 if it is absent. */
static int
pipe_to(const char *cmd, const char *text)
{
	FILE *p = popen(cmd, "w");
	int status;

	assert_non_null(p);
	fputs(text, p);
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * Run the python statements check on the JSON text json, parsed as d
 * (skipped with a message without python3).
 */
static void
json_asserts(const char *json, const char *check)
{
	char cmd[2048];
	int rc;

	snprintf(cmd, sizeof(cmd), "python3 -c 'import json,sys; "
	    "d=json.load(sys.stdin); %s' 2>&1", check);
	rc = pipe_to(cmd, json);
	if (rc == 127 || access("/usr/bin/python3", X_OK) != 0)
		print_message("python3 not found: JSON parse check skipped\n");
	else
		assert_int_equal(rc, 0);
}

static void
test_text(void **state)
{
	struct stats_snap s;
	char *out;

	snap_fill(&s);
	out = render(stats_format_text, &s);
	assert_non_null(strstr(out, "goprod 9.9 \"q\", master pid 4242, up "
	    "1h02m, generation 2: running\n"));
	assert_non_null(strstr(out, "  listening on    127.0.0.1:8888 (PROXY)\n"));
	assert_non_null(strstr(out, "  workers         2/2 running, "
	    "max_connections 500 each\n"));
	assert_non_null(strstr(out, "  reloads         0 ok, 1 failed\n"));
	assert_non_null(strstr(out, "  last reload     2023-11-14 22:16:40 UTC "
	    "(58m43s ago): failed, the running configuration stays\n"
	    "    a.conf:3: bad\n    a.conf:4: worse\n"));
	assert_non_null(strstr(out, "slot     pid gen state     uptime restarts"
	    "     open/max   tls queue   frames_in  frames_out  errors\n"));
	assert_non_null(strstr(out, "   1    5001   2 running   12m03s        0"
	    "        2/500     0     7           2           0       0\n"));
	/* 100 columns at most. */
	for (const char *l = out; *l; l = strchr(l, '\n') + 1)
		assert_true(strcspn(l, "\n") <= 100);
	assert_non_null(strstr(out, "  frames_received_heartbeat    5\n"));
	assert_non_null(strstr(out, "  conn_active                  3\n"));
	assert_non_null(strstr(out, "  requests                     5\n"));
	assert_null(strstr(out, " free "));
	free(out);
	stats_snap_free(&s);
}

static void
test_json(void **state)
{
	struct stats_snap s;
	char *out;

	snap_fill(&s);
	out = render(stats_format_json, &s);
	assert_non_null(strstr(out, "\"frames_received_heartbeat\": 5"));
	assert_non_null(strstr(out, "\"state\": \"running\""));
	assert_non_null(strstr(out, "{\"le\": \"+Inf\", \"count\": 1}"));
	assert_non_null(strstr(out, "{\"le\": \"0.000002\", \"count\": 1}"));
	json_asserts(out,
	    "assert d[\"totals\"][\"counters\"][\"frames_received_heartbeat\"]"
	    " == 5; assert len(d[\"workers\"]) == 2; "
	    "assert d[\"master\"][\"pid\"] == 4242");
	free(out);
	stats_snap_free(&s);
}

/*
 * Recent clients with a TLS client certificate's identity: noted after the
 * address (the handshake ends after the accept), shown in the text as
 * "device-1" in quotes and in the JSON as "identity" (null without one).
 * A ticket whose slot newer clients took leaves that slot alone.
 */
static void
test_client_identity(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_port = htons(40001) };
	struct stats_snap s;
	uint64_t ticket, old;
	char *out;

	snap_fill(&s);
	s.clients = calloc(NENT, sizeof(*s.clients));
	assert_non_null(s.clients);
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	old = stats_note_client(&s.entries[0], (struct sockaddr *)&sin, false,
	    1700003700);
	assert_int_not_equal(old, 0);
	for (int i = 0; i < STATS_RECENT_CLIENTS - 1; i++)
		stats_note_client(&s.entries[0], (struct sockaddr *)&sin,
		    false, 1700003700);
	sin.sin_port = htons(40002);
	ticket = stats_note_client(&s.entries[0], (struct sockaddr *)&sin,
	    false, 1700003710);
	stats_note_identity(&s.entries[0], old, "overwritten");
	stats_note_identity(&s.entries[0], ticket, "device-\"1\"");
	s.clients[0].n = stats_recent_clients(&s.entries[0], &s.entries[0],
	    s.clients[0].c, STATS_RECENT_CLIENTS);
	assert_int_equal(s.clients[0].n, STATS_RECENT_CLIENTS);
	out = render(stats_format_text, &s);
	assert_non_null(strstr(out, "recent clients (newest first):\n"
	    "   0     5000  192.0.2.7:40002 \"device-\"1\"\" 192.0.2.7:40001 "));
	assert_null(strstr(out, "overwritten"));
	free(out);
	out = render(stats_format_json, &s);
	assert_non_null(strstr(out, "{\"address\": \"192.0.2.7:40002\", "
	    "\"proxied\": false, \"time\": 1700003710, \"identity\": "
	    "\"device-\\\"1\\\"\"}, {\"address\": \"192.0.2.7:40001\", "
	    "\"proxied\": false, \"time\": 1700003700, \"identity\": null}"));
	assert_null(strstr(out, "overwritten"));
	json_asserts(out,
	    "c=d[\"workers\"][0][\"recent_clients\"]; "
	    "assert c[0][\"identity\"] == \"device-\\\"1\\\"\", c; "
	    "assert c[1][\"identity\"] is None, c");
	free(out);
	stats_snap_free(&s);
}

static void
test_json_no_workers(void **state)
{
	struct stats_snap s;
	char *out;

	snap_init(&s);
	stats_total(&s.hdr, s.entries, NENT, &s.total);
	out = render(stats_format_json, &s);
	assert_non_null(strstr(out, "\"workers\": [\n  ]"));
	if (access("/usr/bin/python3", X_OK) == 0)
		assert_int_equal(pipe_to("python3 -c 'import json,sys; "
		    "json.load(sys.stdin)'", out), 0);
	free(out);
	stats_snap_free(&s);
}

/*
 * The gauge of open TLS connections: per worker in Prometheus and JSON,
 * summed in the text's totals.
 */
static void
test_tls_open_gauge(void **state)
{
	struct stats_snap s;
	char *out;

	snap_fill(&s);
	s.entries[0].tls_open = 1;
	s.entries[1].tls_open = 2;
	out = render(stats_format_text, &s);
	assert_line(out, "  tls_open                     3");
	free(out);
	out = render(stats_format_json, &s);
	assert_non_null(strstr(out, "\"tls_open\": 3,"));
	json_asserts(out,
	    "assert d[\"totals\"][\"tls_open\"] == 3; "
	    "assert [w[\"tls_open\"] for w in d[\"workers\"]] == [1, 2]");
	free(out);
	out = render(stats_format_prometheus, &s);
	assert_line(out, "# TYPE gopro_tls_connections_open gauge");
	assert_line(out, "gopro_tls_connections_open{slot=\"0\","
	    "generation=\"2\"} 1");
	assert_line(out, "gopro_tls_connections_open{slot=\"1\","
	    "generation=\"2\"} 2");
	free(out);
	stats_snap_free(&s);
}

/*
 * The bytes of TLS connections before and after encryption: summed in the
 * text's totals and the JSON, per worker (slot, generation, layer) in
 * Prometheus and never as a total there; the worker table names each
 * worker's open TLS connections.
 */
static void
test_tls_bytes(void **state)
{
	static const char *const name[] = { "tls_app_bytes_received",
		"tls_app_bytes_sent", "tls_wire_bytes_received",
		"tls_wire_bytes_sent" };
	struct stats_snap s;
	char *out, line[160];
	const char *p;

	snap_fill(&s);
	for (int i = 0; i < 2; i++) {
		struct stats_entry *e = &s.entries[i];

		e->tls_open = (uint64_t)i + 1;
		e->v.counter[STATS_tls_app_bytes_received] = 10 + (uint64_t)i;
		e->v.counter[STATS_tls_app_bytes_sent] = 20 + (uint64_t)i;
		e->v.counter[STATS_tls_wire_bytes_received] = 300 + (uint64_t)i;
		e->v.counter[STATS_tls_wire_bytes_sent] = 400 + (uint64_t)i;
	}
	/* A retired worker's bytes stay in the totals. */
	s.hdr.retired.counter[STATS_tls_wire_bytes_sent] = 1000;
	stats_total(&s.hdr, s.entries, NENT, &s.total);
	out = render(stats_format_text, &s);
	assert_line(out, "  tls_app_bytes_received       21");
	assert_line(out, "  tls_app_bytes_sent           41");
	assert_line(out, "  tls_wire_bytes_received      601");
	assert_line(out, "  tls_wire_bytes_sent          1801");
	assert_line(out, "   1    5001   2 running   12m03s        0"
	    "        2/500     2     7           2           0       0");
	free(out);
	out = render(stats_format_json, &s);
	json_asserts(out,
	    "t = d[\"totals\"][\"counters\"]; "
	    "assert t[\"tls_wire_bytes_sent\"] == 1801, t; "
	    "assert [w[\"counters\"][\"tls_app_bytes_received\"] "
	    "for w in d[\"workers\"]] == [10, 11]");
	free(out);
	out = render(stats_format_prometheus, &s);
	assert_line(out, "# HELP gopro_tls_received_bytes_total Bytes a worker "
	    "received on TLS connections: decrypted (application) and as TLS "
	    "records (wire)");
	assert_line(out, "# TYPE gopro_tls_received_bytes_total counter");
	assert_line(out, "# TYPE gopro_tls_sent_bytes_total counter");
	assert_line(out, "gopro_tls_received_bytes_total{slot=\"0\","
	    "generation=\"2\",layer=\"application\"} 10");
	assert_line(out, "gopro_tls_received_bytes_total{slot=\"1\","
	    "generation=\"2\",layer=\"wire\"} 301");
	assert_line(out, "gopro_tls_sent_bytes_total{slot=\"1\","
	    "generation=\"2\",layer=\"application\"} 21");
	assert_line(out, "gopro_tls_sent_bytes_total{slot=\"0\","
	    "generation=\"2\",layer=\"wire\"} 400");
	/* Per worker only: no series without a slot, the family once. */
	assert_null(strstr(out, "gopro_tls_sent_bytes_total{layer="));
	assert_null(strstr(out, "\ngopro_tls_sent_bytes_total "));
	p = strstr(out, "# TYPE gopro_tls_sent_bytes_total");
	assert_null(strstr(p + 1, "# TYPE gopro_tls_sent_bytes_total"));
	for (size_t i = 0; i < sizeof(name) / sizeof(name[0]); i++) {
		snprintf(line, sizeof(line), "# TYPE gopro_%s", name[i]);
		assert_null(strstr(out, line));
	}
	free(out);
	stats_snap_free(&s);
}

static void
test_prometheus_lines(void **state)
{
	struct stats_snap s;
	char *out;

	snap_fill(&s);
	out = render(stats_format_prometheus, &s);
	/* One family per concept, the kinds as labels (issue 15). */
	assert_line(out, "# HELP gopro_frames_received_total Frames received, "
	    "by command");
	assert_line(out, "# TYPE gopro_frames_received_total counter");
	assert_line(out, "gopro_frames_received_total{command=\"heartbeat\"} 5");
	assert_line(out, "gopro_frames_received_total{command=\"other\"} 0");
	assert_line(out, "gopro_errors_sent_total{code=\"bad_magic\"} 0");
	assert_line(out, "gopro_connections_cut_total{reason=\"idle_timeout\"} 0");
	assert_line(out, "gopro_received_bytes_total 200");
	assert_line(out, "gopro_connections_open 3");
	assert_line(out, "gopro_workers 2");
	assert_line(out, "gopro_workers_running 2");
	assert_line(out, "gopro_generation 2");
	assert_line(out, "gopro_build_info{version=\"goprod 9.9 \\\"q\\\"\"} 1");
	assert_line(out, "gopro_max_connections 500");
	assert_line(out, "gopro_config_reloads_total{result=\"failed\"} 1");
	assert_line(out, "gopro_config_last_reload_successful 0");
	assert_line(out, "gopro_config_last_reload_success_timestamp_seconds "
	    "1700000100");
	assert_line(out, "# TYPE gopro_request_duration_seconds histogram");
	assert_line(out, "gopro_request_duration_seconds_bucket{le=\"0.000001\"} 3");
	assert_line(out, "gopro_request_duration_seconds_bucket{le=\"0.0000015\"} 3");
	assert_line(out, "gopro_request_duration_seconds_bucket{le=\"0.000002\"} 4");
	assert_line(out, "gopro_request_duration_seconds_bucket{le=\"0.000004\"} 4");
	assert_line(out, "gopro_request_duration_seconds_bucket{le=\"16.777216\"} 4");
	assert_line(out, "gopro_request_duration_seconds_bucket{le=\"+Inf\"} 5");
	assert_line(out, "gopro_request_duration_seconds_sum 0.000005000");
	assert_line(out, "gopro_request_duration_seconds_count 5");
	/* Workers by slot and generation, never by pid. */
	assert_line(out, "gopro_worker_connections_open{slot=\"1\","
	    "generation=\"2\"} 2");
	assert_line(out, "gopro_worker_restarts_total{slot=\"0\","
	    "generation=\"2\"} 0");
	assert_null(strstr(out, "pid=\""));
	assert_line(out, "gopro_listen_accept_queue{listener=\"127.0.0.1:8888\","
	    "slot=\"1\"} 7");
	assert_true(stats_prom_maps_every_counter());
	/* +Inf is the last bucket, and _count follows the buckets. */
	assert_true(strstr(out, "le=\"+Inf\"") <
	    strstr(out, "gopro_request_duration_seconds_sum"));
	free(out);
	stats_snap_free(&s);
}

static void
test_prometheus_promtool(void **state)
{
	struct stats_snap s;
	char *out;

	if (access("/usr/bin/promtool", X_OK) != 0) {
		print_message("/usr/bin/promtool not found (Debian package "
		    "prometheus): promtool check skipped\n");
		skip();
	}
	snap_fill(&s);
	out = render(stats_format_prometheus, &s);
	assert_int_equal(pipe_to("/usr/bin/promtool check metrics", out), 0);
	free(out);
	stats_snap_free(&s);
}

static void
test_rates(void **state)
{
	struct stats_snap a, b;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	snap_fill(&a);
	snap_fill(&b);
	b.taken = a.taken + 2.0;
	b.entries[0].v.counter[STATS_bytes_received] += 40000;
	b.entries[0].v.counter[STATS_frames_received_heartbeat] += 10;
	stats_total(&b.hdr, b.entries, NENT, &b.total);
	f = open_memstream(&buf, &len);
	assert_int_equal(stats_format_rate_header(f), 0);
	assert_int_equal(stats_format_rate_line(f, &a, &b), 0);
	/* No request in the interval: the latency is n/a, not 0. */
	assert_int_equal(stats_format_rate_line(f, &b, &b), 0);
	fclose(f);
	assert_non_null(strstr(buf, "time      frames/s replies/s    rx_B/s"));
	assert_non_null(strstr(buf, "       5.0       0.0     20.0k       0.0"
	    "      0.0      0.0       3      0.0        n/a\n"));
	for (const char *l = buf; *l; l = strchr(l, '\n') + 1)
		assert_true(strcspn(l, "\n") <= 100);
	free(buf);
	stats_snap_free(&a);
	stats_snap_free(&b);
}

static void
test_running_workers(void **state)
{
	struct stats_snap s;

	snap_fill(&s);
	assert_int_equal(stats_running_workers(&s), 2);
	s.entries[1].generation = 1; /* an old generation does not count */
	assert_int_equal(stats_running_workers(&s), 1);
	s.entries[0].state = STATS_STATE_DRAINING;
	assert_int_equal(stats_running_workers(&s), 0);
	stats_snap_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_no_workers),
		cmocka_unit_test(test_client_identity),
		cmocka_unit_test(test_tls_open_gauge),
		cmocka_unit_test(test_tls_bytes),
		cmocka_unit_test(test_prometheus_lines),
		cmocka_unit_test(test_prometheus_promtool),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_running_workers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
