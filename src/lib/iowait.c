/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * iowait.c - deadline waits for blocking clients (see iowait.h).
 */
#include <errno.h>
#include <poll.h>
#include <time.h>

#include "iowait.h"

double
iowait_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
iowait_fd(int fd, short events, double deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		double left = deadline - iowait_now();
		int rc;

		if (left <= 0)
			return 0;
		/* Round up so a deadline in the next millisecond still waits. */
		rc = poll(&p, 1, (int)(left * 1000) + 1);
		if (rc >= 0 || errno != EINTR)
			return rc > 0 ? 1 : rc;
	}
}
