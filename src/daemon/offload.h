/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * offload.h - a small thread pool for the blocking work of modules
 * (api->offload): fn runs on a pool thread, done on the loop's thread,
 * woken through an ev_async like the login pool (nginx's thread pools,
 * Redis's module pipe).  Started on first use, so a worker whose modules
 * never block has no threads.
 */
#ifndef GOPRO_OFFLOAD_H
#define GOPRO_OFFLOAD_H

#include <ev.h>

struct offload;

struct offload *offload_new(struct ev_loop *loop);
/* 0, or -1 (ENOMEM) and nothing runs.  Loop thread only. */
int offload_submit(struct offload *o, void (*fn)(void *), void *arg,
    void (*done)(void *));
/* Waits for the running jobs; queued ones still get their done. */
void offload_free(struct offload *o);

#endif /* GOPRO_OFFLOAD_H */
