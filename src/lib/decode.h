/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * decode.h - the common case of gopro_decode, inline: a whole, valid frame
 * at the start of the buffer.  Readers call it once per frame, so the
 * magic, version and length are checked with two 32-bit loads instead of
 * a call and a byte at a time; anything else (too short, a bad or partial
 * header, a body too large) returns false and gopro_decode says what it
 * is.
 */
#ifndef GOPRO_DECODE_H
#define GOPRO_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gopro/gopro.h"

static inline uint32_t
decode_be32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	return v;
}

static inline bool
gopro_decode_whole(const uint8_t *buf, size_t len, uint32_t max_body,
    struct gopro_frame *frame)
{
	uint32_t head, length;

	if (len < GOPRO_HEADER_SIZE)
		return false;
	head = decode_be32(buf);
	length = decode_be32(buf + 4);
	if (head >> 8 != ((uint32_t)GOPRO_MAGIC << 8 | GOPRO_VERSION) ||
	    length > max_body || len - GOPRO_HEADER_SIZE < length)
		return false;
	frame->header = (struct gopro_header){ GOPRO_MAGIC, GOPRO_VERSION,
		(uint8_t)head, length };
	frame->body = buf + GOPRO_HEADER_SIZE;
	frame->size = GOPRO_HEADER_SIZE + (size_t)length;
	return true;
}

#endif /* GOPRO_DECODE_H */
