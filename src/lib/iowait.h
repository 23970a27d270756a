/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * iowait.h - waiting for a blocking client's socket with a deadline, for
 * the small synchronous clients (goproctl's control channel and its GoPro
 * client).  Deadlines are CLOCK_MONOTONIC seconds.
 */
#ifndef GOPRO_IOWAIT_H
#define GOPRO_IOWAIT_H

/* Seconds on the monotonic clock. */
double iowait_now(void);
/* Wait for events (POLLIN/POLLOUT) on fd: 1 ready, 0 deadline passed, -1 error. */
int iowait_fd(int fd, short events, double deadline);

#endif /* GOPRO_IOWAIT_H */
