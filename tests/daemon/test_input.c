/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_input.c - integration tests of how a connection's input buffer
 * follows the bytes that arrive: a frame of exactly max_body is served
 * however its last bytes are segmented, and a header alone does not make
 * the worker reserve the body it declares.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

/* Small, so every body size near the limit can be tried quickly. */
#define SMALL_MAX_BODY 65536u
/* The sizes tried: max_body - NEAR .. max_body. */
#define NEAR 2100u

/* The connections of the header-alone test, and its bound (gopro.conf(5)). */
#define HEADER_CONNS 200
#define HEADER_BODY (10u << 20)
#define HEADER_VMSIZE_KIB_PER_CONN 64

/* Expect the echo of a heartbeat whose body is body[0..len). */
static void
expect_echo(int fd, uint8_t *reply, const uint8_t *body, size_t len,
    size_t tail)
{
	struct gopro_frame f;

	if (harness_read_frame(fd, reply, len + 64, &f, 5) < 0)
		fail_msg("body %zu, tail %zu in a later segment: no reply (the "
		    "connection was cut)", len, tail);
	assert_int_equal(f.header.command, GOPRO_CMD_HEARTBEAT);
	assert_int_equal(f.header.length, len);
	assert_memory_equal(f.body, body, len);
}

/*
 * One frame of len body bytes whose last tail bytes arrive in a later read
 * of the server, with a small heartbeat pipelined behind them.
 */
static void
send_split(const struct goprod *g, uint64_t *sent, int fd, uint8_t *frame,
    size_t len, size_t tail, uint8_t *reply)
{
	uint8_t next[16];
	size_t total, n;

	gopro_header_write(frame, GOPRO_CMD_HEARTBEAT, (uint32_t)len);
	total = GOPRO_HEADER_SIZE + len;
	harness_write(fd, frame, total - tail);
	*sent += total - tail;
	harness_wait_received(g, *sent);
	/* The tail and the next frame in one write, right after it. */
	n = gopro_frame_write(next, sizeof(next), GOPRO_CMD_HEARTBEAT, "next",
	    4);
	memcpy(frame + total, next, n);
	harness_write(fd, frame + total - tail, tail + n);
	*sent += tail + n;
	expect_echo(fd, reply, frame + GOPRO_HEADER_SIZE, len, tail);
	expect_echo(fd, reply, (const uint8_t *)"next", 4, tail);
}

/*
 * Every body size from max_body - 2100 to max_body, with its last 1, 700
 * or 2000 bytes in a later segment: served, and so is the frame behind it.
 * The server used to want 2 KiB of room past the frame's end for the read
 * of the tail and cut the connection when max_body left less.
 */
static void
test_max_body_any_segmentation(void **state)
{
	static const size_t tails[] = { 1, 700, 2000 };
	size_t cap = GOPRO_HEADER_SIZE + SMALL_MAX_BODY + 64;
	uint8_t *frame = malloc(cap), *reply = malloc(cap);
	struct stats_values t;
	struct goprod g;
	uint64_t sent;
	char conf[64];
	int fd;

	assert_non_null(frame);
	assert_non_null(reply);
	for (size_t i = GOPRO_HEADER_SIZE; i < cap; i++)
		frame[i] = (uint8_t)(i * 7 + i / 251);
	snprintf(conf, sizeof(conf), "max_body = %u\n", SMALL_MAX_BODY);
	harness_start(&g, conf);
	fd = harness_connect(&g);
	sent = harness_wait_received(&g, 0);
	for (size_t k = 0; k < sizeof(tails) / sizeof(tails[0]); k++)
		for (size_t len = SMALL_MAX_BODY - NEAR; len <= SMALL_MAX_BODY;
		    len++)
			send_split(&g, &sent, fd, frame, len, tails[k],
			    reply);
	close(fd);
	harness_totals(&g, &t);
	assert_int_equal(t.counter[STATS_conn_reset], 0);
	free(frame);
	free(reply);
	assert_int_equal(harness_stop(&g), 0);
}

/*
 * 200 connections each send a 10 MiB header and one byte of its body:
 * the worker's address space grows by one small block per connection
 * (gopro.conf(5), max_body), not by the 2 GB the bodies declare.
 */
static void
test_header_alone_reserves_little(void **state)
{
	uint8_t head[GOPRO_HEADER_SIZE + 1];
	int fds[HEADER_CONNS];
	long before, after;
	struct goprod g;
	uint64_t sent;
	pid_t worker;

	harness_start(&g, "max_body = 10M\nframe_timeout = 60s\n");
	assert_int_equal(harness_worker_pids(&g, &worker, 1), 1);
	before = harness_vmsize_kib(worker);
	assert_true(before > 0);
	gopro_header_write(head, GOPRO_CMD_MESSAGE, HEADER_BODY);
	head[GOPRO_HEADER_SIZE] = 'x';
	sent = harness_wait_received(&g, 0);
	/* The byte after the header arrives in a later read of it. */
	for (int i = 0; i < HEADER_CONNS; i++) {
		fds[i] = harness_connect(&g);
		harness_write(fds[i], head, GOPRO_HEADER_SIZE);
		harness_wait_received(&g, sent += GOPRO_HEADER_SIZE);
		harness_write(fds[i], head + GOPRO_HEADER_SIZE, 1);
		harness_wait_received(&g, sent += 1);
	}
	after = harness_vmsize_kib(worker);
	print_message("worker VmSize %ld KiB -> %ld KiB with %d headers of "
	    "%u-byte bodies\n", before, after, HEADER_CONNS, HEADER_BODY);
	if (after - before > HEADER_CONNS * HEADER_VMSIZE_KIB_PER_CONN)
		fail_msg("VmSize grew by %ld KiB, more than %d KiB per "
		    "connection", after - before, HEADER_VMSIZE_KIB_PER_CONN);
	/* Each is still a valid partial frame: the server kept them all. */
	assert_true(harness_answers(&g));
	for (int i = 0; i < HEADER_CONNS; i++)
		close(fds[i]);
	assert_int_equal(harness_stop(&g), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max_body_any_segmentation),
		cmocka_unit_test(test_header_alone_reserves_little),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
