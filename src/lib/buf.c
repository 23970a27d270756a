/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * buf.c - the connection byte buffer (see buf.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int
buf_init(struct buf *b, size_t cap)
{
	b->start = b->end = 0;
	b->cap = cap;
	b->data = cap ? malloc(cap) : NULL;
	if (cap && b->data == NULL) {
		b->cap = 0;
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void
buf_compact(struct buf *b)
{
	size_t len = buf_len(b);

	if (b->start == 0)
		return;
	if (len > 0)
		memmove(b->data, b->data + b->start, len);
	b->start = 0;
	b->end = len;
}

static int
buf_grow(struct buf *b, size_t want, size_t max)
{
	size_t cap = b->cap ? b->cap : 64;
	uint8_t *p;

	while (cap < want)
		cap = cap > max / 2 ? max : cap * 2;
	if (cap > max)
		cap = max;
	p = realloc(b->data, cap);
	if (p == NULL) {
		errno = ENOMEM;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int
buf_reserve(struct buf *b, size_t n, size_t max)
{
	size_t len = buf_len(b);

	if (buf_room(b) >= n)
		return 0;
	if (n > max || len > max - n) {
		errno = ENOBUFS;
		return -1;
	}
	/* Moving is cheaper than growing when the dead prefix is enough. */
	if (b->cap - len >= n) {
		buf_compact(b);
		return 0;
	}
	buf_compact(b);
	return buf_grow(b, len + n, max);
}

int
buf_reserve_read(struct buf *b, size_t need, size_t min_room, size_t max)
{
	size_t len = buf_len(b), step, want;

	if (len >= max) {
		errno = ENOBUFS;
		return -1;
	}
	/* Geometric growth: never ask for more than what has arrived. */
	step = len > min_room ? len : min_room;
	want = need > 0 && need < step ? need : step;
	if (want < min_room)
		want = min_room;
	/* The frame limit bounds the wish, never the frame. */
	if (want > max - len)
		want = max - len;
	if (buf_room(b) >= want)
		return 0;
	return buf_reserve(b, want, max);
}

int
buf_append(struct buf *b, const void *p, size_t n, size_t max)
{
	if (buf_reserve(b, n, max) < 0)
		return -1;
	if (n > 0)
		memcpy(buf_tail(b), p, n);
	b->end += n;
	return 0;
}

void
buf_reset(struct buf *b)
{
	b->start = b->end = 0;
}
