/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_buf.c - unit tests of the connection byte buffer: growth up to a
 * cap, compaction, consume and reset, refusal past the cap, and the room
 * for a read of frames.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"

static int
setup(void **state)
{
	static struct buf b;

	if (buf_init(&b, 16) < 0)
		return -1;
	*state = &b;
	return 0;
}

static int
teardown(void **state)
{
	buf_free(*state);
	return 0;
}

static void
test_append_and_consume(void **state)
{
	struct buf *b = *state;

	assert_int_equal(buf_append(b, "hello", 5, 64), 0);
	assert_int_equal(buf_len(b), 5);
	assert_memory_equal(buf_head(b), "hello", 5);
	buf_consume(b, 2);
	assert_int_equal(buf_len(b), 3);
	assert_memory_equal(buf_head(b), "llo", 3);
	buf_consume(b, 3);
	/* Empty again: offsets go back to the front. */
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(b->start, 0);
	assert_int_equal(b->end, 0);
}

static void
test_compacts_before_growing(void **state)
{
	struct buf *b = *state;
	uint8_t *block = b->data;

	assert_int_equal(buf_append(b, "0123456789abcd", 14, 64), 0);
	buf_consume(b, 10);
	/* 4 live bytes, 2 free at the tail: 10 more fit after a move. */
	assert_int_equal(buf_reserve(b, 10, 64), 0);
	assert_int_equal(b->cap, 16);
	assert_int_equal(b->start, 0);
	assert_ptr_equal(b->data, block);
	assert_memory_equal(buf_head(b), "abcd", 4);
}

static void
test_grows_to_cap_and_refuses_past_it(void **state)
{
	struct buf *b = *state;
	uint8_t chunk[40];

	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(buf_append(b, chunk, 40, 100), 0);
	assert_true(b->cap >= 40 && b->cap <= 100);
	assert_int_equal(buf_append(b, chunk, 40, 100), 0);
	assert_int_equal(buf_len(b), 80);
	assert_true(b->cap <= 100);
	errno = 0;
	assert_int_equal(buf_append(b, chunk, 21, 100), -1);
	assert_int_equal(errno, ENOBUFS);
	/* Nothing was lost by the refusal. */
	assert_int_equal(buf_len(b), 80);
	assert_int_equal(buf_append(b, chunk, 20, 100), 0);
	assert_int_equal(buf_len(b), 100);
	assert_int_equal(b->cap, 100);
	/* A request larger than the cap itself is refused. */
	buf_reset(b);
	assert_int_equal(buf_reserve(b, 101, 100), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_reserve(b, (size_t)-1, 100), -1);
}

static void
test_commit_after_direct_write(void **state)
{
	struct buf *b = *state;

	assert_int_equal(buf_reserve(b, 8, 64), 0);
	assert_true(buf_room(b) >= 8);
	memcpy(buf_tail(b), "direct", 6);
	buf_commit(b, 6);
	assert_int_equal(buf_len(b), 6);
	assert_memory_equal(buf_head(b), "direct", 6);
}

static void
test_empty_buffer_grows_from_nothing(void **state)
{
	struct buf b;

	assert_int_equal(buf_init(&b, 0), 0);
	assert_null(b.data);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(buf_append(&b, "x", 1, 10), 0);
	assert_non_null(b.data);
	assert_int_equal(buf_len(&b), 1);
	assert_int_equal(buf_append(&b, NULL, 0, 10), 0);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
}

static void
test_reset_keeps_memory(void **state)
{
	struct buf *b = *state;
	uint8_t *block;

	assert_int_equal(buf_append(b, "abc", 3, 64), 0);
	block = b->data;
	buf_reset(b);
	assert_int_equal(buf_len(b), 0);
	assert_ptr_equal(b->data, block);
	assert_int_equal(b->cap, 16);
	buf_compact(b);
	assert_int_equal(buf_len(b), 0);
}

/*
 * A buffer that owns no memory (a connection's, between requests) has a
 * NULL head and tail, never NULL + offset: conn.c decodes and counts from
 * buf_head of such a buffer when a drain or send timeout cuts an idle
 * connection (found by tests/fuzz/fuzz_conn under clang's UBSan).
 */
static void
test_memoryless_buffer_has_null_ends(void **state)
{
	struct buf b;

	memset(&b, 0, sizeof(b));
	assert_null(buf_head(&b));
	assert_null(buf_tail(&b));
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(buf_room(&b), 0);
}

/*
 * The read reserve near the cap: a frame of exactly max bytes whose last
 * byte is missing gets that byte of room, though the read would like more
 * (conn.c asked for 2 KiB past the frame's end and cut the connection).
 */
static void
test_read_reserve_never_refuses_a_fitting_frame(void **state)
{
	struct buf b;
	uint8_t chunk[1000];

	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(buf_init(&b, 256), 0);
	for (size_t need = 1; need <= 600; need++) {
		buf_reset(&b);
		for (size_t len = 0; len < 1000 - need; len += 100)
			assert_int_equal(buf_append(&b, chunk,
			    len + 100 <= 1000 - need ? 100 : 1000 - need - len,
			    1000), 0);
		assert_int_equal(buf_len(&b), 1000 - need);
		assert_int_equal(buf_reserve_read(&b, need, 512, 1000), 0);
		assert_true(buf_room(&b) >= need);
		assert_true(buf_len(&b) + buf_room(&b) <= 1000);
	}
	/* Full to the cap: no room can be made. */
	assert_int_equal(buf_append(&b, chunk, buf_room(&b), 1000), 0);
	assert_int_equal(buf_reserve_read(&b, 0, 512, 1000), -1);
	assert_int_equal(errno, ENOBUFS);
	buf_free(&b);
}

/*
 * A header alone does not reserve the body it declares: the room grows
 * with what has arrived, at most doubling the capacity per read.
 */
static void
test_read_reserve_grows_with_what_arrived(void **state)
{
	const size_t max = 10u << 20;
	struct buf b;
	size_t cap;

	assert_int_equal(buf_init(&b, 256), 0);
	assert_int_equal(buf_append(&b, "12345678", 8, max), 0);
	assert_int_equal(buf_reserve_read(&b, max - 8, 64, max), 0);
	assert_int_equal(b.cap, 256);
	while (buf_len(&b) < max) {
		cap = b.cap;
		assert_int_equal(buf_reserve_read(&b, max - buf_len(&b), 64,
		    max), 0);
		assert_true(b.cap <= 2 * cap || b.cap <= 4 * buf_len(&b));
		assert_true(b.cap <= max);
		memset(buf_tail(&b), 'y', buf_room(&b));
		buf_commit(&b, buf_room(&b));
	}
	assert_int_equal(b.cap, max);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_and_consume, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_compacts_before_growing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_grows_to_cap_and_refuses_past_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_after_direct_write,
		    setup, teardown),
		cmocka_unit_test(test_empty_buffer_grows_from_nothing),
		cmocka_unit_test(test_memoryless_buffer_has_null_ends),
		cmocka_unit_test_setup_teardown(test_reset_keeps_memory, setup,
		    teardown),
		cmocka_unit_test(
		    test_read_reserve_never_refuses_a_fitting_frame),
		cmocka_unit_test(test_read_reserve_grows_with_what_arrived),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
