/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * buf.h - a byte buffer for connections.
 *
 * Bytes live in data[start..end); room to append is data[end..cap).  The
 * buffer grows by doubling up to a cap given by the caller (for the read
 * side: one maximum frame), compacts by moving the live bytes to the front
 * when that makes enough room, and can be emptied and handed back without
 * freeing so a per-worker pool can reuse its memory.
 */
#ifndef GOPRO_BUF_H
#define GOPRO_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t start;
	size_t end;
	size_t cap;
};

static inline size_t
buf_len(const struct buf *b)
{
	return b->end - b->start;
}

/*
 * An empty buffer may own no memory (conn.c gives its blocks back while a
 * connection is idle), and NULL + 0 is undefined behaviour in C: such a
 * buffer's head and tail are NULL.
 */
static inline uint8_t *
buf_head(const struct buf *b)
{
	return b->data != NULL ? b->data + b->start : NULL;
}

static inline uint8_t *
buf_tail(const struct buf *b)
{
	return b->data != NULL ? b->data + b->end : NULL;
}

static inline size_t
buf_room(const struct buf *b)
{
	return b->cap - b->end;
}

/* Initialise with an owned block of cap bytes; -1 (ENOMEM) on failure. */
int buf_init(struct buf *b, size_t cap);
/* Free the memory and zero the struct. */
void buf_free(struct buf *b);
/*
 * Make room for at least n more bytes at the tail, compacting first and
 * growing (doubling) only when needed, without ever holding more than max
 * bytes of capacity.  Returns 0, or -1 with errno ENOBUFS when the live bytes
 * plus n exceed max, or ENOMEM.
 */
int buf_reserve(struct buf *b, size_t n, size_t max);
/*
 * Room for the next read into a buffer that collects frames of at most max
 * bytes.  need is what the partial frame at the head still lacks (0 when
 * the head holds no partial frame), min_room the read size worth a
 * syscall.  The room granted:
 *   - grows with what has arrived: it is at most the live bytes (or
 *     min_room when fewer), so the capacity at most doubles per read and a
 *     header alone never reserves the body it declares;
 *   - never goes past max, and min_room is a wish cut to what max leaves:
 *     a partial frame that fits max always gets room, however few bytes
 *     it lacks (a frame of exactly max must never fail for lack of room
 *     past its end).
 * Returns 0 with buf_room >= 1, or -1 with errno ENOBUFS (the live bytes
 * already fill max) or ENOMEM.
 */
int buf_reserve_read(struct buf *b, size_t need, size_t min_room, size_t max);
/* Append n bytes (reserving as above); 0 or -1 with errno. */
int buf_append(struct buf *b, const void *p, size_t n, size_t max);
/* Record that n bytes were written at the tail (n <= buf_room). */
static inline void
buf_commit(struct buf *b, size_t n)
{
	b->end += n;
}

/* Drop n bytes from the head (n <= buf_len); resets offsets when empty. */
static inline void
buf_consume(struct buf *b, size_t n)
{
	b->start += n;
	if (b->start == b->end)
		b->start = b->end = 0;
}
/* Move the live bytes to the front of the block. */
void buf_compact(struct buf *b);
/* Forget the contents, keep the memory. */
void buf_reset(struct buf *b);

#endif /* GOPRO_BUF_H */
