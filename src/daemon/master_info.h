/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * master_info.h - the master's account of itself in the stats segment
 * (struct stats_info and the accept-queue table of struct stats_header).
 */
#ifndef GOPRO_MASTER_INFO_H
#define GOPRO_MASTER_INFO_H

#include <stdbool.h>

struct master;

/* At start (or after an upgrade took over): everything from the config. */
void master_info_start(struct master *m);
/* After a reload attempt: its time, its result, why it failed. */
void master_info_reload(struct master *m, bool ok, const char *why);
/* A stop (drain or at once) began. */
void master_info_stopping(struct master *m);
/* Start sampling the accept queues once a second. */
void master_info_timer(struct master *m);

#endif /* GOPRO_MASTER_INFO_H */
