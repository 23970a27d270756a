/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * reader.c - frames from a byte stream (see gopro/gopro.h, "reader").
 *
 * The bytes live in one buffer that grows to the size of the largest frame
 * seen and is compacted rather than grown when the consumed prefix is long
 * enough, so a steady stream of small frames costs no allocation.  Each
 * length from the wire goes through gopro_decode, which checks it against
 * max_body before the buffer is asked for room.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"

/* A read asks for at least this much room. */
#define READER_CHUNK 16384u

void
reader_init(struct gopro_reader *r, uint32_t max_body)
{
	memset(r, 0, sizeof(*r));
	r->max_body = max_body;
	r->chunk = READER_CHUNK;
}

void
reader_reset(struct gopro_reader *r)
{
	buf_reset(&r->in);
	r->need = 0;
	r->error = 0;
}

void
reader_fini(struct gopro_reader *r)
{
	buf_free(&r->in);
}

struct gopro_reader *
gopro_reader_new(uint32_t max_body)
{
	struct gopro_reader *r = malloc(sizeof(*r));

	if (r != NULL)
		reader_init(r, max_body);
	return r;
}

void
gopro_reader_free(struct gopro_reader *r)
{
	if (r == NULL)
		return;
	reader_fini(r);
	free(r);
}

int
gopro_reader_feed(struct gopro_reader *r, const void *data, size_t len)
{
	if (buf_append(&r->in, data, len, SIZE_MAX) < 0)
		return GOPRO_E_NOMEM;
	return GOPRO_OK;
}

void *
gopro_reader_space(struct gopro_reader *r, size_t *room)
{
	size_t want = r->need > r->chunk ? r->need : r->chunk;

	if (buf_reserve(&r->in, want, SIZE_MAX) < 0)
		return NULL;
	*room = buf_room(&r->in);
	return buf_tail(&r->in);
}

void
gopro_reader_commit(struct gopro_reader *r, size_t n)
{
	buf_commit(&r->in, n);
}

int
gopro_reader_next(struct gopro_reader *r, struct gopro_frame *frame)
{
	enum gopro_decode_status st;
	size_t need = 0;

	if (r->error != 0)
		return r->error;
	if (buf_len(&r->in) == 0) {
		r->need = 0;
		return 0;
	}
	st = gopro_decode(buf_head(&r->in), buf_len(&r->in), r->max_body,
	    frame, &need);
	switch (st) {
	case GOPRO_DECODE_FRAME:
		/* The bytes stay where they are until the next feed or space. */
		buf_consume(&r->in, frame->size);
		r->need = 0;
		return 1;
	case GOPRO_DECODE_NEED_MORE:
		r->need = need;
		return 0;
	case GOPRO_DECODE_TOO_LARGE:
		r->error = GOPRO_E_TOO_LARGE;
		return r->error;
	default:
		r->error = GOPRO_E_PROTOCOL;
		return r->error;
	}
}

size_t
gopro_reader_buffered(const struct gopro_reader *r)
{
	return buf_len(&r->in);
}
