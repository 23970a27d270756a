/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_decode.c - libFuzzer target for the decoder and the byte buffer.
 *
 * The input is treated as a byte stream arriving at a connection in chunks
 * whose sizes come from the input itself.  Every decoded frame must lie
 * inside what was received, and the structured body parsers run on every
 * frame so their bounds are exercised too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "gopro/gopro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode every complete frame at the head of b; 0 to go on, -1 to stop. */
static int
drain_frames(struct buf *b, uint32_t max_body)
{
	struct gopro_frame f;
	struct gopro_login login;
	struct gopro_status status;
	enum gopro_decode_status st;
	size_t need;

	for (;;) {
		st = gopro_decode(buf_head(b), buf_len(b), max_body, &f, &need);
		if (st == GOPRO_DECODE_NEED_MORE)
			return 0;
		if (st != GOPRO_DECODE_FRAME)
			return -1;
		if (f.size > buf_len(b) || f.header.length > max_body ||
		    f.body + f.header.length > buf_head(b) + buf_len(b))
			abort();
		(void)gopro_login_parse(f.body, f.header.length, &login);
		(void)gopro_status_parse(f.body, f.header.length, &status);
		buf_consume(b, f.size);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Small limits so that both the too-large and complete paths run. */
	uint32_t max_body = size > 0 ? data[0] * 4u : 64;
	size_t off = 1, cap = 8 + (size_t)max_body;
	struct buf b;

	if (buf_init(&b, 16) < 0)
		return 0;
	while (off < size) {
		size_t chunk = 1 + data[off - 1] % 97;
		if (chunk > size - off)
			chunk = size - off;
		if (buf_append(&b, data + off, chunk, cap) < 0)
			break;
		off += chunk;
		if (drain_frames(&b, max_body) < 0)
			break;
	}
	buf_free(&b);
	return 0;
}
