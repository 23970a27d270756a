/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_dashboard.c - the Grafana dashboard in contrib/grafana/gopro.json
 * only asks for series that goprod's metrics endpoint exports, and the
 * endpoint passes promtool check metrics (the Prometheus naming lint).
 *
 * A real goprod with metrics_listen on a free loopback port serves one
 * heartbeat, its /metrics is fetched over HTTP, and
 * tests/docs/dashboard_series.py checks every query of the dashboard
 * against it (names, and the labels of selectors and by clauses).  Skips
 * without python3; the promtool part is skipped without promtool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "harness.h"

/* GET /metrics from 127.0.0.1:port into path (the body only). */
static void
fetch_metrics(int port, const char *path)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)port) };
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap), *body;
	ssize_t n;
	FILE *f;
	int fd;

	assert_non_null(buf);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	harness_write(fd, req, sizeof(req) - 1);
	/* The endpoint closes after the response. */
	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
	assert_non_null(body = strstr(buf, "\r\n\r\n"));
	assert_non_null(f = fopen(path, "w"));
	fputs(body + 4, f);
	assert_int_equal(fclose(f), 0);
	free(buf);
}

static void
test_dashboard_queries_exported_series(void **state)
{
	const char *top = getenv("TOP_SRCDIR");
	char extra[128], path[400], cmd[1600], out[65536];
	struct goprod g;
	int port = harness_free_port(), fd, rc;

	(void)state;
	if (access("/usr/bin/python3", X_OK) != 0)
		skip();
	assert_non_null(top);
	snprintf(extra, sizeof(extra), "metrics_listen = \"127.0.0.1:%d\"",
	    port);
	harness_start(&g, extra);
	fd = harness_connect(&g);
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, NULL, 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/metrics.txt", g.dir);
	/* The metrics process starts just after the workers: ask again. */
	for (int i = 0; i < 250 && !harness_log_has(&g, "metrics endpoint on");
	    i++)
		harness_sleep(0.02);
	fetch_metrics(port, path);
	snprintf(cmd, sizeof(cmd), "python3 '%s/tests/docs/dashboard_series.py' "
	    "'%s/contrib/grafana/gopro.json' '%s'", top, top, path);
	rc = harness_run(cmd, out, sizeof(out));
	print_message("%s", out);
	assert_int_equal(rc, 0);
	if (access("/usr/bin/promtool", X_OK) == 0) {
		snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'",
		    path);
		rc = harness_run(cmd, out, sizeof(out));
		if (rc != 0)
			print_error("promtool check metrics:\n%s", out);
		assert_int_equal(rc, 0);
	}
	assert_int_equal(harness_stop(&g), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dashboard_queries_exported_series),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
