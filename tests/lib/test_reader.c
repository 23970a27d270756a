/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_reader.c - the frame reader of the codec layer: frames fed a byte
 * at a time and many in one feed, reading straight into its space, the
 * limit on a body, a bad header that stays an error, and that a steady
 * stream of small frames does not grow the buffer.
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_many_in_one_feed_and_space),
		cmocka_unit_test(test_limits_and_sticky_errors),
		cmocka_unit_test(test_steady_stream_keeps_its_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
