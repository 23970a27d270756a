/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_reader.c - the frame reader of the codec layer: frames fed a byte
 * at a time and many in one feed, reading straight into its space, the
 * limit on a body, a bad header that stays an error, that a steady
 * stream of small frames does not grow the buffer, and that the inline
 * step of the library's own reply loops (reader_next) agrees with it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gopro/gopro.h"
#include "reader.h"

static void
test_byte_by_byte(void **state)
{
	struct gopro_reader *r = gopro_reader_new(100);
	struct gopro_frame f;
	uint8_t wire[64];
	size_t n = gopro_frame_write(wire, sizeof(wire), GOPRO_CMD_MESSAGE,
	    "hello", 5);

	for (size_t i = 0; i + 1 < n; i++) {
		assert_int_equal(gopro_reader_feed(r, wire + i, 1), GOPRO_OK);
		assert_int_equal(gopro_reader_next(r, &f), 0);
	}
	assert_int_equal(gopro_reader_buffered(r), n - 1);
	assert_int_equal(gopro_reader_feed(r, wire + n - 1, 1), GOPRO_OK);
	assert_int_equal(gopro_reader_next(r, &f), 1);
	assert_int_equal(f.header.command, GOPRO_CMD_MESSAGE);
	assert_int_equal(f.header.length, 5);
	assert_memory_equal(f.body, "hello", 5);
	assert_int_equal(gopro_reader_next(r, &f), 0);
	assert_int_equal(gopro_reader_buffered(r), 0);
	gopro_reader_free(r);
}

static void
test_many_in_one_feed_and_space(void **state)
{
	struct gopro_reader *r = gopro_reader_new(100);
	struct gopro_frame f;
	uint8_t wire[256], *p;
	size_t n = 0, room;

	for (int i = 0; i < 10; i++)
		n += gopro_frame_write(wire + n, sizeof(wire) - n,
		    GOPRO_CMD_HEARTBEAT, &i, sizeof(i));
	p = gopro_reader_space(r, &room);
	assert_non_null(p);
	assert_true(room >= n);
	memcpy(p, wire, n);
	gopro_reader_commit(r, n);
	for (int i = 0; i < 10; i++) {
		int got;

		assert_int_equal(gopro_reader_next(r, &f), 1);
		assert_int_equal(f.header.length, sizeof(int));
		memcpy(&got, f.body, sizeof(got));
		assert_int_equal(got, i);
	}
	assert_int_equal(gopro_reader_next(r, &f), 0);
	gopro_reader_free(r);
}

static void
test_limits_and_sticky_errors(void **state)
{
	static const uint8_t bad[] = { 'G', 'O', 2, 0, 0, 0, 0, 0 };
	struct gopro_reader *r = gopro_reader_new(4);
	struct gopro_frame f;
	uint8_t wire[64];
	size_t n;

	/* A body of exactly max_body is fine, one more byte is not. */
	n = gopro_frame_write(wire, sizeof(wire), GOPRO_CMD_MESSAGE, "1234", 4);
	assert_int_equal(gopro_reader_feed(r, wire, n), GOPRO_OK);
	assert_int_equal(gopro_reader_next(r, &f), 1);
	n = gopro_frame_write(wire, sizeof(wire), GOPRO_CMD_MESSAGE, "12345",
	    5);
	/* Decided from the header alone. */
	assert_int_equal(gopro_reader_feed(r, wire, GOPRO_HEADER_SIZE),
	    GOPRO_OK);
	assert_int_equal(gopro_reader_next(r, &f), GOPRO_E_TOO_LARGE);
	assert_int_equal(gopro_reader_feed(r, wire + 8, n - 8), GOPRO_OK);
	assert_int_equal(gopro_reader_next(r, &f), GOPRO_E_TOO_LARGE);
	gopro_reader_free(r);

	r = gopro_reader_new(4);
	assert_int_equal(gopro_reader_feed(r, bad, 3), GOPRO_OK);
	assert_int_equal(gopro_reader_next(r, &f), GOPRO_E_PROTOCOL);
	gopro_reader_free(r);
	gopro_reader_free(NULL);
}

static void
test_steady_stream_keeps_its_buffer(void **state)
{
	struct gopro_reader r;
	struct gopro_frame f;
	uint8_t wire[64];
	size_t n = gopro_frame_write(wire, sizeof(wire), GOPRO_CMD_HEARTBEAT,
	    "abcdefgh", 8), cap;

	reader_init(&r, 100);
	for (int i = 0; i < 10000; i++) {
		size_t room;
		uint8_t *p = gopro_reader_space(&r, &room);

		memcpy(p, wire, n);
		gopro_reader_commit(&r, n);
		assert_int_equal(gopro_reader_next(&r, &f), 1);
		assert_int_equal(gopro_reader_next(&r, &f), 0);
		if (i == 0)
			cap = r.in.cap;
	}
	assert_int_equal(r.in.cap, cap);
	reader_fini(&r);
}

/*
 * reader_next, the inline step of the library's reply loops, hands out
 * what gopro_reader_next does, for every way a stream can be cut: each
 * prefix of a stream of whole frames, then a body over the limit and a
 * bad version, fed to a reader of each kind.
 */
static void
expect_same(const uint8_t *wire, size_t n, uint32_t max_body)
{
	struct gopro_reader a, b;
	struct gopro_frame fa, fb;
	int ra, rb;

	reader_init(&a, max_body);
	reader_init(&b, max_body);
	assert_int_equal(gopro_reader_feed(&a, wire, n), GOPRO_OK);
	assert_int_equal(gopro_reader_feed(&b, wire, n), GOPRO_OK);
	do {
		ra = reader_next(&a, &fa);
		rb = gopro_reader_next(&b, &fb);
		assert_int_equal(ra, rb);
		if (ra == 1) {
			assert_int_equal(fa.header.command, fb.header.command);
			assert_int_equal(fa.header.length, fb.header.length);
			assert_int_equal(fa.size, fb.size);
			assert_memory_equal(fa.body, fb.body, fa.header.length);
		}
	} while (ra == 1);
	assert_int_equal(gopro_reader_buffered(&a), gopro_reader_buffered(&b));
	/* An error stays, through either call. */
	if (ra < 0) {
		assert_int_equal(reader_next(&a, &fa), ra);
		assert_int_equal(gopro_reader_next(&a, &fa), ra);
	}
	reader_fini(&a);
	reader_fini(&b);
}

static void
test_inline_next_agrees(void **state)
{
	uint8_t wire[256];
	size_t n = 0, third;

	n += gopro_frame_write(wire + n, sizeof(wire) - n, GOPRO_CMD_HEARTBEAT,
	    NULL, 0);
	n += gopro_frame_write(wire + n, sizeof(wire) - n, GOPRO_CMD_MESSAGE,
	    "hello", 5);
	third = n;
	n += gopro_frame_write(wire + n, sizeof(wire) - n, GOPRO_CMD_MESSAGE,
	    "12345678901234567890", 20);
	for (size_t cut = 0; cut <= n; cut++)
		expect_same(wire, cut, 20);
	/* The third body is over a limit of 19: decided from its header. */
	for (size_t cut = third; cut <= n; cut++)
		expect_same(wire, cut, 19);
	wire[third + 2] = 2; /* its version */
	for (size_t cut = third; cut <= n; cut++)
		expect_same(wire, cut, 20);
	wire[third + 2] = GOPRO_VERSION;
	wire[third + 1] = 'X'; /* its magic */
	for (size_t cut = third; cut <= n; cut++)
		expect_same(wire, cut, 20);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_many_in_one_feed_and_space),
		cmocka_unit_test(test_limits_and_sticky_errors),
		cmocka_unit_test(test_steady_stream_keeps_its_buffer),
		cmocka_unit_test(test_inline_next_agrees),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
