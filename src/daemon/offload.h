/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * offload.h - the blocking work of modules (api->offload): fn runs on a
 * thread of a worker pool (threadpool.h, the kind that hashes passwords),
 * done on the loop's thread.  Started on first use, so a worker whose
 * modules never block has no threads.
 */
#ifndef GOPRO_OFFLOAD_H
#define GOPRO_OFFLOAD_H

#include <ev.h>

struct tpool;

/* NULL with errno (ENOMEM, EAGAIN). */
struct tpool *offload_new(struct ev_loop *loop);
/* 0, or -1 (ENOMEM) and nothing runs.  Loop thread only. */
int offload_submit(struct tpool *pool, void (*fn)(void *), void *arg,
    void (*done)(void *));
/* Every job submitted runs and gets its done before this returns. */
void offload_free(struct tpool *pool);

#endif /* GOPRO_OFFLOAD_H */
