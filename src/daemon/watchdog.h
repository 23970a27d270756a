/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * watchdog.h - a stuck loop.  Each worker writes a heartbeat (monotonic
 * milliseconds) into its stats entry at least once a second and measures
 * how long each loop iteration ran; the master reads the heartbeats once a
 * second and kills a worker that has shown no life for
 * worker_stall_timeout with SIGABRT (a core file), which the usual respawn
 * then replaces.  HAProxy's "blocked traffic" warning and watchdog are the
 * model; the master never waits on a worker.
 */
#ifndef GOPRO_WATCHDOG_H
#define GOPRO_WATCHDOG_H

#include <stdint.h>

#include <ev.h>

struct worker;
struct master;

/* Worker: the heartbeat timer and the iteration clock. */
void watchdog_worker_start(struct worker *w);
void watchdog_worker_stop(struct worker *w);
/* Worker, from the before-sleep hook: the iteration that just ran. */
void watchdog_iteration_done(struct worker *w);

/* Master: check every worker's heartbeat once a second. */
void watchdog_master_init(struct master *m);
void watchdog_master_stop(struct master *m);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t watchdog_now_ms(void);

#endif /* GOPRO_WATCHDOG_H */
