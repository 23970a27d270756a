/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * reader.h - the frame reader's layout, for the library's own clients,
 * which embed one per connection instead of allocating it, and the inline
 * step their reply loops take per frame.  Users see the opaque struct
 * gopro_reader of gopro/gopro.h.
 */
#ifndef GOPRO_READER_H
#define GOPRO_READER_H

#include "buf.h"
#include "decode.h"
#include "gopro/gopro.h"

struct gopro_reader {
	struct buf in;
	uint32_t max_body;
	size_t need;              /* bytes the next frame still lacks */
	size_t chunk;             /* the least room a read is given */
	int error;                /* sticky result once the stream is bad */
};

/* Set up r in place (no memory yet); reader_fini frees what it holds. */
void reader_init(struct gopro_reader *r, uint32_t max_body);
void reader_fini(struct gopro_reader *r);
/* Forget the stream (a new connection), keep the memory. */
void reader_reset(struct gopro_reader *r);

/*
 * gopro_reader_next, with the common case inline (gopro_decode_whole of
 * decode.h): a whole frame at the head is handed out here, two calls
 * fewer per reply (gopro_reader_next, gopro_decode); anything else (a
 * partial or bad frame, a sticky error) goes through gopro_reader_next,
 * which decides it as it always does.
 */
static inline int
reader_next(struct gopro_reader *r, struct gopro_frame *frame)
{
	size_t len = buf_len(&r->in);

	/* len > 0: the block exists. */
	if (len >= GOPRO_HEADER_SIZE && r->error == 0 &&
	    gopro_decode_whole(r->in.data + r->in.start, len, r->max_body,
	    frame)) {
		buf_consume(&r->in, frame->size);
		r->need = 0;
		return 1;
	}
	return gopro_reader_next(r, frame);
}

#endif /* GOPRO_READER_H */
