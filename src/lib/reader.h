/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * reader.h - the frame reader's layout, for the library's own clients,
 * which embed one per connection instead of allocating it.  Users see the
 * opaque struct gopro_reader of gopro/gopro.h.
 */
#ifndef GOPRO_READER_H
#define GOPRO_READER_H

#include "buf.h"
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

#endif /* GOPRO_READER_H */
