/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_proto.c - unit tests of the codec: the byte-exact vectors of the wire
 * contract, round trips of every command, streams split at every offset,
 * coalesced frames, the size limit and the header checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gopro/gopro.h"

static void
test_vector_empty_heartbeat(void **state)
{
	static const uint8_t want[] = { 0x47, 0x4F, 0x01, 0x00, 0, 0, 0, 0 };
	uint8_t out[16];
	struct gopro_frame f;

	assert_int_equal(gopro_frame_write(out, sizeof(out),
	    GOPRO_CMD_HEARTBEAT, NULL, 0), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(gopro_decode(want, sizeof(want), GOPRO_DEFAULT_MAX_BODY,
	    &f, NULL), GOPRO_DECODE_FRAME);
	assert_int_equal(f.header.magic, 0x474F);
	assert_int_equal(f.header.version, 1);
	assert_int_equal(f.header.command, GOPRO_CMD_HEARTBEAT);
	assert_int_equal(f.header.length, 0);
	assert_int_equal(f.size, 8);
}

static void
test_vector_message_hi(void **state)
{
	static const uint8_t want[] = { 0x47, 0x4F, 0x01, 0x01, 0, 0, 0, 2,
		0x68, 0x69 };
	uint8_t out[16];
	struct gopro_frame f;

	assert_int_equal(gopro_frame_write(out, sizeof(out), GOPRO_CMD_MESSAGE,
	    "hi", 2), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(gopro_decode(want, sizeof(want), GOPRO_DEFAULT_MAX_BODY,
	    &f, NULL), GOPRO_DECODE_FRAME);
	assert_int_equal(f.header.length, 2);
	assert_memory_equal(f.body, "hi", 2);
	assert_ptr_equal(f.body, want + 8);
}

static void
test_vector_message_reply(void **state)
{
	static const uint8_t want[] = { 0x47, 0x4F, 0x01, 0x01, 0, 0, 0, 0x0F,
		'S', 'e', 'r', 'v', 'e', 'r', ' ', 's', 'a', 'y', 's', ':', ' ',
		'h', 'i' };
	const char *text = "Server says: hi";
	uint8_t out[64];

	assert_int_equal(gopro_frame_write(out, sizeof(out), GOPRO_CMD_MESSAGE,
	    text, strlen(text)), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

static void
test_error_and_goaway_frames(void **state)
{
	static const uint8_t err_want[] = { 0x47, 0x4F, 0x01, 0x04, 0, 0, 0, 5,
		0x00, 0x04, 'a', 'b', 'c' };
	static const uint8_t goaway_want[] = { 0x47, 0x4F, 0x01, 0x05, 0, 0, 0,
		2, 0x00, 0x02 };
	uint8_t out[GOPRO_STATUS_FRAME_MAX];
	struct gopro_frame f;
	struct gopro_status st;

	assert_int_equal(gopro_error_write(out, sizeof(out), 4, "abc"),
	    sizeof(err_want));
	assert_memory_equal(out, err_want, sizeof(err_want));
	assert_int_equal(gopro_goaway_write(out, sizeof(out),
	    GOPRO_GOAWAY_SHUTDOWN, NULL), sizeof(goaway_want));
	assert_memory_equal(out, goaway_want, sizeof(goaway_want));

	assert_int_equal(gopro_decode(err_want, sizeof(err_want), 100, &f,
	    NULL), GOPRO_DECODE_FRAME);
	assert_int_equal(gopro_status_parse(f.body, f.header.length, &st), 0);
	assert_int_equal(st.code, 4);
	assert_int_equal(st.text_len, 3);
	assert_memory_equal(st.text, "abc", 3);
}

static void
test_status_text_is_capped(void **state)
{
	char text[GOPRO_TEXT_MAX + 50];
	uint8_t out[GOPRO_STATUS_FRAME_MAX];
	struct gopro_status st;

	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = 0;
	assert_int_equal(gopro_error_write(out, sizeof(out), 8, text),
	    GOPRO_STATUS_FRAME_MAX);
	assert_int_equal(gopro_status_parse(out + 8, GOPRO_STATUS_FRAME_MAX - 8,
	    &st), 0);
	assert_int_equal(st.text_len, GOPRO_TEXT_MAX);
	/* Too small a destination writes nothing. */
	assert_int_equal(gopro_error_write(out, 9, 8, NULL), 0);
	/* Malformed status bodies. */
	assert_int_equal(gopro_status_parse(out, 1, &st), -1);
	assert_int_equal(gopro_status_parse(out, 2 + GOPRO_TEXT_MAX + 1, &st),
	    -1);
}

static void
test_login_round_trip(void **state)
{
	static const uint8_t want[] = { 0x47, 0x4F, 0x01, 0x02, 0, 0, 0, 9,
		'a', 'l', 'i', 'c', 'e', 0, 'p', 'w', 'd' };
	uint8_t out[64];
	struct gopro_frame f;
	struct gopro_login l;

	assert_int_equal(gopro_login_write(out, sizeof(out), "alice", 5, "pwd",
	    3), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(gopro_decode(out, sizeof(want), 100, &f, NULL),
	    GOPRO_DECODE_FRAME);
	assert_int_equal(gopro_login_parse(f.body, f.header.length, &l), 0);
	assert_int_equal(l.user_len, 5);
	assert_memory_equal(l.user, "alice", 5);
	assert_int_equal(l.password_len, 3);
	assert_memory_equal(l.password, "pwd", 3);
}

static void
test_login_malformed(void **state)
{
	uint8_t body[GOPRO_LOGIN_BODY_MAX + 2];
	struct gopro_login l;

	assert_int_equal(gopro_login_parse((const uint8_t *)"", 0, &l), -1);
	assert_int_equal(gopro_login_parse((const uint8_t *)"nosep", 5, &l), -1);
	assert_int_equal(gopro_login_parse((const uint8_t *)"\0pw", 3, &l), -1);
	assert_int_equal(gopro_login_parse((const uint8_t *)"u\0", 2, &l), -1);
	assert_int_equal(gopro_login_parse((const uint8_t *)"u\0p\0w", 5, &l),
	    -1);
	/* A user of exactly 64 bytes is fine, 65 is not. */
	memset(body, 'u', sizeof(body));
	body[GOPRO_USER_MAX] = 0;
	assert_int_equal(gopro_login_parse(body, GOPRO_USER_MAX + 2, &l), 0);
	memset(body, 'u', sizeof(body));
	body[GOPRO_USER_MAX + 1] = 0;
	assert_int_equal(gopro_login_parse(body, GOPRO_USER_MAX + 3, &l), -1);
	/* A password of exactly 1024 bytes is fine, 1025 is not. */
	memset(body, 'p', sizeof(body));
	body[1] = 0;
	assert_int_equal(gopro_login_parse(body, 2 + GOPRO_PASSWORD_MAX, &l), 0);
	assert_int_equal(gopro_login_parse(body, 3 + GOPRO_PASSWORD_MAX, &l),
	    -1);
	/* The encoder refuses what the parser would refuse. */
	assert_int_equal(gopro_login_write(body, sizeof(body), "", 0, "p", 1), 0);
	assert_int_equal(gopro_login_write(body, sizeof(body), "u", 1, "", 0), 0);
	assert_int_equal(gopro_login_write(body, sizeof(body), "u\0", 2, "p", 1),
	    0);
	assert_int_equal(gopro_login_write(body, 10, "user", 4, "pass", 4), 0);
}

static void
test_round_trip_every_command(void **state)
{
	uint8_t body[300], out[400];
	struct gopro_frame f;
	size_t n;

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 7);
	for (unsigned cmd = 0; cmd <= 0xFF; cmd++) {
		for (size_t len = 0; len < sizeof(body); len += 37) {
			n = gopro_frame_write(out, sizeof(out), (uint8_t)cmd,
			    body, len);
			assert_int_equal(n, 8 + len);
			assert_int_equal(gopro_decode(out, n, 1000, &f, NULL),
			    GOPRO_DECODE_FRAME);
			assert_int_equal(f.header.command, cmd);
			assert_int_equal(f.header.length, len);
			assert_int_equal(f.size, n);
			if (len)
				assert_memory_equal(f.body, body, len);
		}
	}
}

/* Build a stream of varied frames; return its length. */
static size_t
build_stream(uint8_t *out, size_t cap, size_t *count)
{
	static const char *bodies[] = { "", "a", "hello", "0123456789abcdef" };
	size_t off = 0, n = 0;

	for (unsigned i = 0; i < 24; i++) {
		const char *b = bodies[i % 4];
		size_t w = gopro_frame_write(out + off, cap - off,
		    (uint8_t)(i % GOPRO_CMD_COUNT), b, strlen(b));
		assert_true(w > 0);
		off += w;
		n++;
	}
	*count = n;
	return off;
}

/*
 * Feed stream[0..len) as a connection would receive it when the bytes are
 * split at offset cut: decode what is complete, keep the rest.
 */
static void
decode_split(const uint8_t *stream, size_t len, size_t cut,
    struct gopro_frame *frames, size_t *count)
{
	uint8_t buf[1024];
	size_t have = 0, n = 0, part[2] = { cut, len - cut }, fed = 0;

	for (int p = 0; p < 2; p++) {
		memcpy(buf + have, stream + fed, part[p]);
		have += part[p];
		fed += part[p];
		size_t off = 0;
		for (;;) {
			struct gopro_frame f;
			enum gopro_decode_status st = gopro_decode(buf + off,
			    have - off, 1000, &f, NULL);
			if (st == GOPRO_DECODE_NEED_MORE)
				break;
			assert_int_equal(st, GOPRO_DECODE_FRAME);
			frames[n] = f;
			/* Keep a stable copy of the header for comparison. */
			frames[n].body = NULL;
			n++;
			off += f.size;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	assert_int_equal(have, 0);
	*count = n;
}

static void
test_stream_split_at_every_offset(void **state)
{
	uint8_t stream[1024];
	struct gopro_frame whole[64], split[64];
	size_t len, expected, n_whole, n_split;

	len = build_stream(stream, sizeof(stream), &expected);
	decode_split(stream, len, len, whole, &n_whole);
	assert_int_equal(n_whole, expected);
	for (size_t cut = 0; cut <= len; cut++) {
		decode_split(stream, len, cut, split, &n_split);
		assert_int_equal(n_split, n_whole);
		for (size_t i = 0; i < n_whole; i++) {
			assert_int_equal(split[i].header.command,
			    whole[i].header.command);
			assert_int_equal(split[i].header.length,
			    whole[i].header.length);
		}
	}
}

static void
test_one_byte_at_a_time(void **state)
{
	uint8_t frame[32];
	struct gopro_frame f;
	size_t n, need;

	n = gopro_frame_write(frame, sizeof(frame), GOPRO_CMD_MESSAGE,
	    "abcdefgh", 8);
	for (size_t have = 0; have < n; have++) {
		assert_int_equal(gopro_decode(frame, have, 100, &f, &need),
		    GOPRO_DECODE_NEED_MORE);
		if (have < 8)
			assert_int_equal(need, 8 - have);
		else
			assert_int_equal(need, n - have);
	}
	assert_int_equal(gopro_decode(frame, n, 100, &f, &need),
	    GOPRO_DECODE_FRAME);
}

static void
test_thousand_coalesced_frames(void **state)
{
	size_t cap = 1000 * (8 + 16), off = 0, count = 0;
	uint8_t *buf = malloc(cap);
	struct gopro_frame f;

	assert_non_null(buf);
	for (unsigned i = 0; i < 1000; i++) {
		uint8_t body[16];
		memset(body, (int)(i & 0xFF), sizeof(body));
		off += gopro_frame_write(buf + off, cap - off,
		    GOPRO_CMD_HEARTBEAT, body, i % 17);
	}
	for (size_t pos = 0; pos < off; pos += f.size, count++) {
		assert_int_equal(gopro_decode(buf + pos, off - pos, 100, &f,
		    NULL), GOPRO_DECODE_FRAME);
		assert_int_equal(f.header.length, count % 17);
		if (f.header.length)
			assert_int_equal(f.body[0], count & 0xFF);
	}
	assert_int_equal(count, 1000);
	free(buf);
}

static void
test_size_limit(void **state)
{
	uint8_t hdr[8];
	struct gopro_frame f;
	size_t need;

	gopro_header_write(hdr, GOPRO_CMD_MESSAGE, GOPRO_DEFAULT_MAX_BODY);
	assert_int_equal(gopro_decode(hdr, 8, GOPRO_DEFAULT_MAX_BODY, &f, &need),
	    GOPRO_DECODE_NEED_MORE);
	assert_int_equal(need, GOPRO_DEFAULT_MAX_BODY);
	gopro_header_write(hdr, GOPRO_CMD_MESSAGE, GOPRO_DEFAULT_MAX_BODY + 1);
	/* Rejected from the header alone: no body byte present. */
	assert_int_equal(gopro_decode(hdr, 8, GOPRO_DEFAULT_MAX_BODY, &f, &need),
	    GOPRO_DECODE_TOO_LARGE);
	gopro_header_write(hdr, GOPRO_CMD_MESSAGE, 0xFFFFFFFFu);
	assert_int_equal(gopro_decode(hdr, 8, 0xFFFFFFFFu, &f, &need),
	    GOPRO_DECODE_NEED_MORE);
	assert_int_equal(need, 0xFFFFFFFFu);
	assert_int_equal(gopro_decode(hdr, 8, GOPRO_DEFAULT_MAX_BODY, &f, &need),
	    GOPRO_DECODE_TOO_LARGE);
	assert_int_equal(gopro_decode_error_code(GOPRO_DECODE_TOO_LARGE), 3);
	/* A limit of zero accepts only empty bodies. */
	gopro_header_write(hdr, GOPRO_CMD_HEARTBEAT, 0);
	assert_int_equal(gopro_decode(hdr, 8, 0, &f, NULL), GOPRO_DECODE_FRAME);
}

static void
test_bad_magic_and_version(void **state)
{
	uint8_t hdr[8];
	struct gopro_frame f;

	gopro_header_write(hdr, 0, 0);
	hdr[0] = 0x48;
	/* Reported from the first byte. */
	assert_int_equal(gopro_decode(hdr, 1, 100, &f, NULL),
	    GOPRO_DECODE_BAD_MAGIC);
	hdr[0] = 0x47;
	hdr[1] = 0x50;
	assert_int_equal(gopro_decode(hdr, 1, 100, &f, NULL),
	    GOPRO_DECODE_NEED_MORE);
	assert_int_equal(gopro_decode(hdr, 2, 100, &f, NULL),
	    GOPRO_DECODE_BAD_MAGIC);
	hdr[1] = 0x4F;
	hdr[2] = 2;
	assert_int_equal(gopro_decode(hdr, 3, 100, &f, NULL),
	    GOPRO_DECODE_BAD_VERSION);
	hdr[2] = 0;
	assert_int_equal(gopro_decode(hdr, 8, 100, &f, NULL),
	    GOPRO_DECODE_BAD_VERSION);
	/* Magic is checked before version, version before length. */
	hdr[0] = 0;
	assert_int_equal(gopro_decode(hdr, 8, 100, &f, NULL),
	    GOPRO_DECODE_BAD_MAGIC);
	gopro_header_write(hdr, 0, 1000);
	hdr[2] = 9;
	assert_int_equal(gopro_decode(hdr, 8, 100, &f, NULL),
	    GOPRO_DECODE_BAD_VERSION);
	assert_int_equal(gopro_decode_error_code(GOPRO_DECODE_BAD_MAGIC), 1);
	assert_int_equal(gopro_decode_error_code(GOPRO_DECODE_BAD_VERSION), 2);
	assert_int_equal(gopro_decode_error_code(GOPRO_DECODE_FRAME), 0);
}

static void
test_zero_length_bodies(void **state)
{
	uint8_t buf[8 * 3];
	struct gopro_frame f;
	size_t off = 0;

	for (int i = 0; i < 3; i++)
		off += gopro_frame_write(buf + off, sizeof(buf) - off,
		    (uint8_t)i, NULL, 0);
	assert_int_equal(off, 24);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(gopro_decode(buf + i * 8, off - i * 8, 0, &f,
		    NULL), GOPRO_DECODE_FRAME);
		assert_int_equal(f.header.command, i);
		assert_int_equal(f.size, 8);
	}
	assert_int_equal(gopro_decode(buf, 0, 0, &f, NULL),
	    GOPRO_DECODE_NEED_MORE);
}

static void
test_encoder_refuses_small_buffers(void **state)
{
	uint8_t out[16];

	assert_int_equal(gopro_frame_write(out, 7, 0, NULL, 0), 0);
	assert_int_equal(gopro_frame_write(out, 10, 1, "abc", 3), 0);
	assert_int_equal(gopro_frame_write(out, 11, 1, "abc", 3), 11);
}

static void
test_names(void **state)
{
	assert_string_equal(gopro_command_name(0), "HEARTBEAT");
	assert_string_equal(gopro_command_name(5), "GOAWAY");
	assert_string_equal(gopro_command_name(200), "UNKNOWN");
	assert_string_equal(gopro_error_name(3), "frame too large");
	assert_string_equal(gopro_error_name(77), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_empty_heartbeat),
		cmocka_unit_test(test_vector_message_hi),
		cmocka_unit_test(test_vector_message_reply),
		cmocka_unit_test(test_error_and_goaway_frames),
		cmocka_unit_test(test_status_text_is_capped),
		cmocka_unit_test(test_login_round_trip),
		cmocka_unit_test(test_login_malformed),
		cmocka_unit_test(test_round_trip_every_command),
		cmocka_unit_test(test_stream_split_at_every_offset),
		cmocka_unit_test(test_one_byte_at_a_time),
		cmocka_unit_test(test_thousand_coalesced_frames),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_bad_magic_and_version),
		cmocka_unit_test(test_zero_length_bodies),
		cmocka_unit_test(test_encoder_refuses_small_buffers),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
