/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_notify.c - what goprod tells systemd through sd_notify(3), read
 * from a NOTIFY_SOCKET of the test's own, as systemd would: READY=1, a
 * STATUS= line with the generation and the
 * verdict of the last reload (a broken file's names file:line), RELOADING=1
 * around reloads and upgrades, STOPPING=1 at a stop.  Skipped (77) when
 * goprod is built without libsystemd.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

struct notify {
	int fd;
	char path[108];
	char seen[16384];     /* every message so far, one per line */
};

static void
notify_open(struct notify *n)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(n->path, sizeof(n->path), "/tmp/gopro-notify-%ld.sock",
	    (long)getpid());
	unlink(n->path);
	n->seen[0] = '\0';
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", n->path);
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(n->fd >= 0);
	assert_int_equal(bind(n->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	setenv("NOTIFY_SOCKET", n->path, 1);
}

static void
notify_close(struct notify *n)
{
	close(n->fd);
	unlink(n->path);
}

/* Read messages until one holds text (after mark); fail after 10 s. */
static const char *
notify_wait(struct notify *n, size_t mark, const char *text)
{
	double t0 = harness_now();
	struct pollfd p = { .fd = n->fd, .events = POLLIN };

	for (;;) {
		char msg[1024];
		ssize_t len;
		size_t used = strlen(n->seen);
		const char *hit = strstr(n->seen + mark, text);

		if (hit != NULL)
			return hit;
		if (harness_now() - t0 > 10)
			fail_msg("no \"%s\" from goprod in 10 s; it said:\n%s",
			    text, n->seen);
		if (poll(&p, 1, 100) <= 0)
			continue;
		len = recv(n->fd, msg, sizeof(msg) - 1, 0);
		if (len <= 0)
			continue;
		msg[len] = '\0';
		snprintf(n->seen + used, sizeof(n->seen) - used, "%s\n", msg);
	}
}

static void
test_ready_status_reload(void **state)
{
	struct notify n;
	struct goprod g;
	size_t mark;
	const char *hit;

	notify_open(&n);
	harness_start(&g, "workers = 2\n");
	unsetenv("NOTIFY_SOCKET");
	notify_wait(&n, 0, "READY=1");
	notify_wait(&n, 0, "STATUS=generation 1, 2 workers; started");

	mark = strlen(n.seen);
	harness_rewrite_conf(&g, "workers = 2\nbacklog = 0\n");
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	notify_wait(&n, mark, "RELOADING=1");
	hit = notify_wait(&n, mark, "STATUS=generation 1, 2 workers; last "
	    "reload failed: ");
	if (strstr(hit, "gopro.conf:") == NULL || strstr(hit, "backlog") == NULL)
		fail_msg("the STATUS of a failed reload names no file:line "
		    "and option: %s", hit);
	notify_wait(&n, mark, "READY=1");

	mark = strlen(n.seen);
	harness_rewrite_conf(&g, "workers = 3\n");
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	notify_wait(&n, mark, "STATUS=generation 2, 3 workers; last reload ok");

	mark = strlen(n.seen);
	assert_int_equal(harness_stop(&g), 0);
	notify_wait(&n, mark, "STOPPING=1");
	notify_close(&n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_status_reload),
	};

#ifndef HAVE_SYSTEMD
	puts("goprod is built without libsystemd: nothing to test");
	return 77;
#endif
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
