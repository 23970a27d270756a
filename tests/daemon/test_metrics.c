/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_metrics.c - the Prometheus endpoint: the request judgement (200,
 * 404, 405, 400) and a real metrics_serve process on loopback, answering
 * GET /metrics from a stats file, the error statuses, an oversized head,
 * a stats file replaced under it, a scrape among 500 idle connections, and
 * a clean exit on SIGTERM.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"
#include "stats.h"

static int
status_of(const char *head)
{
	bool head_only;

	return metrics_request_status(head, strlen(head), &head_only);
}

static void
test_request_status(void **state)
{
	bool head_only;

	assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
	    200);
	assert_int_equal(status_of("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), 200);
	assert_int_equal(status_of("GET /metrics HTTP/1.1\n\n"), 200);
	assert_int_equal(metrics_request_status("HEAD /metrics HTTP/1.1\r\n\r\n",
	    27, &head_only), 200);
	assert_true(head_only);
	assert_int_equal(status_of("GET / HTTP/1.1\r\n\r\n"), 404);
	assert_int_equal(status_of("GET /metricsx HTTP/1.1\r\n\r\n"), 404);
	assert_int_equal(status_of("POST /metrics HTTP/1.1\r\n\r\n"), 405);
	assert_int_equal(status_of("DELETE / HTTP/1.1\r\n\r\n"), 405);
	assert_int_equal(status_of("GET /metrics HTTP/2.0\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /metrics\r\n\r\n"), 400);
	assert_int_equal(status_of("GET  HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(status_of("\x16\x03\x01 garbage"), 400);
	assert_int_equal(status_of(""), 400);
}

struct fixture {
	char dir[64], path[128];
	struct stats_segment seg;
	int port;
	pid_t pid;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	char err[512];
	int lfd;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_metrics.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/goprod.stats", f->dir);
	assert_int_equal(stats_create(&f->seg, f->path, 4, (gid_t)-1, err, sizeof(err)),
	    0);
	stats_add(&f->seg.entries[0], STATS_frames_received_heartbeat, 5);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	/* Room for the idle flood's handshakes while the server accepts. */
	assert_int_equal(listen(lfd, 1024), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	f->port = ntohs(sin.sin_port);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0)
		_exit(metrics_serve(lfd, f->path));
	close(lfd);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	int status;

	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, &status, 0);
	}
	stats_close(&f->seg);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A connection to the server from the loopback address from (host order). */
static int
connect_from(const struct fixture *f, uint32_t from)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(from);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)f->port);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* Send req, return the whole response (caller frees). */
static char *
http(const struct fixture *f, const char *req, size_t len)
{
	struct pollfd p;
	size_t have = 0, cap = 1 << 20;
	char *out = malloc(cap);
	ssize_t n;
	int fd = connect_from(f, INADDR_LOOPBACK);

	assert_non_null(out);
	assert_int_equal(write(fd, req, len), (ssize_t)len);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	while (have + 1 < cap && poll(&p, 1, 5000) == 1 &&
	    (n = read(fd, out + have, cap - 1 - have)) > 0)
		have += (size_t)n;
	out[have] = '\0';
	close(fd);
	return out;
}

static void
expect(const struct fixture *f, const char *req, const char *status,
    const char *contains)
{
	char *r = http(f, req, strlen(req));

	if (strncmp(r, status, strlen(status)) != 0 ||
	    (contains && strstr(r, contains) == NULL))
		fail_msg("request %s: got\n%s", req, r);
	free(r);
}

static void
test_serve(void **state)
{
	struct fixture *f = *state;
	char big[METRICS_REQUEST_MAX], *r;

	expect(f, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK",
	    "\ngopro_frames_received_total{command=\"heartbeat\"} 5\n");
	expect(f, "GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK",
	    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
	expect(f, "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404", NULL);
	expect(f, "PUT /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405",
	    "Allow: GET, HEAD");
	expect(f, "nonsense\r\n\r\n", "HTTP/1.1 400", NULL);
	/* Exactly the limit, so no unread byte turns the close into a reset. */
	memset(big, 'a', sizeof(big));
	r = http(f, big, sizeof(big));
	assert_non_null(strstr(r, "HTTP/1.1 400"));
	free(r);
	r = http(f, "HEAD /metrics HTTP/1.1\r\n\r\n", 26);
	assert_non_null(strstr(r, "HTTP/1.1 200 OK"));
	assert_null(strstr(r, "gopro_"));
	free(r);
}

/* Content-Length must be the body's exact size. */
static void
test_content_length(void **state)
{
	struct fixture *f = *state;
	char *r = http(f, "GET /metrics HTTP/1.0\r\n\r\n", 25);
	char *cl = strstr(r, "Content-Length: "), *body = strstr(r, "\r\n\r\n");

	assert_non_null(cl);
	assert_non_null(body);
	assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body + 4));
	free(r);
}

#define IDLE_CONNS 500

/*
 * 500 connections that never send a request, from one other host and then
 * from 250 hosts, open while a scrape arrives: the scrape is answered.
 * Today's server held a slot for 5 s from accept whatever the client did,
 * and closed every connection beyond 64 at once.
 */
static void
test_scrape_among_idle_connections(void **state)
{
	struct fixture *f = *state;
	int idle[IDLE_CONNS];

	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < IDLE_CONNS; i++)
			idle[i] = connect_from(f, round == 0 ? 0x7f000002u :
			    0x7f000100u + 1 + (uint32_t)i / 2);
		expect(f, "GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK",
		    "\ngopro_frames_received_total{command=\"heartbeat\"} 5\n");
		for (int i = 0; i < IDLE_CONNS; i++)
			close(idle[i]);
	}
}

static void
test_replaced_file_reopened(void **state)
{
	struct fixture *f = *state;
	struct stats_segment seg2;
	char err[512];
	int status;

	expect(f, "GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200",
	    "\ngopro_frames_received_total{command=\"heartbeat\"} 5\n");
	/* A new master: a new file renamed over the path. */
	assert_int_equal(stats_create(&seg2, f->path, 4, (gid_t)-1, err, sizeof(err)), 0);
	stats_add(&seg2.entries[1], STATS_frames_received_heartbeat, 9);
	expect(f, "GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200",
	    "\ngopro_frames_received_total{command=\"heartbeat\"} 9\n");
	stats_close(&seg2);
	unlink(f->path);
	expect(f, "GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 503", NULL);
	/* SIGTERM ends the process with status 0. */
	assert_int_equal(kill(f->pid, SIGTERM), 0);
	assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	f->pid = 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_status),
		cmocka_unit_test_setup_teardown(test_serve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_content_length, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_scrape_among_idle_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_file_reopened,
		    setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
