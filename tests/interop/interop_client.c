/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * interop_client.c - one libgopro client for the interop matrix
 * (tests/interop/run.sh), linked against the shared libgopro.so:
 *
 *   interop_client sync|async HOST:PORT [USER PASSWORD]
 *
 * sync: LOGIN when a user is given, a HEARTBEAT whose echo is checked, a
 * MESSAGE whose reply must end with the body sent, then 20 pipelined
 * MESSAGEs read back in order.  async: 200 pipelined requests (HEARTBEAT
 * and MESSAGE in turn) on libev, each reply checked for its number, with
 * LOGIN on connect when a user is given.  Exit 0 when every reply was right;
 * otherwise a line on stderr says what was wrong.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gopro/async.h"
#include "gopro/client.h"
#include "gopro/libev.h"

#define ASYNC_REQUESTS 200

/* The reply's last bytes are the body sent (MESSAGE adds a prefix). */
static int
ends_with(const struct gopro_frame *f, const void *body, size_t len)
{
	return f->header.length >= len &&
	    memcmp(f->body + f->header.length - len, body, len) == 0;
}

static int
run_sync(const char *addr, const char *user, const char *password)
{
	struct gopro_client *c = gopro_client_new();
	struct gopro_frame f;
	int rc = c ? gopro_client_connect(c, addr, 5) : GOPRO_E_NOMEM;

	if (rc == GOPRO_OK && user != NULL)
		rc = gopro_client_login(c, user, password, 5);
	if (rc == GOPRO_OK)
		rc = gopro_client_heartbeat(c, "interop", 7, 5);
	if (rc == GOPRO_OK)
		rc = gopro_client_message(c, "interop", 7, &f, 5);
	if (rc == GOPRO_OK && !ends_with(&f, "interop", 7))
		rc = GOPRO_E_PROTOCOL;
	for (uint32_t i = 0; i < 20 && rc == GOPRO_OK; i++)
		rc = gopro_client_send(c, GOPRO_CMD_MESSAGE, &i, sizeof(i), 5);
	for (uint32_t i = 0; i < 20 && rc == GOPRO_OK; i++) {
		rc = gopro_client_recv(c, &f, 5);
		if (rc == GOPRO_OK && (f.header.command != GOPRO_CMD_MESSAGE ||
		    !ends_with(&f, &i, sizeof(i))))
			rc = GOPRO_E_PROTOCOL;
	}
	if (rc != GOPRO_OK)
		fprintf(stderr, "sync %s: %s: %s\n", addr, gopro_strerror(rc),
		    c ? gopro_client_error(c) : "");
	gopro_client_free(c);
	return rc == GOPRO_OK ? 0 : 1;
}

struct tally {
	unsigned left, bad;
	int first_error;
};

static struct tally tally = { ASYNC_REQUESTS, 0, 0 };

static void
on_reply(struct gopro_async *a, int result, const struct gopro_frame *f,
    void *arg)
{
	uint32_t n = (uint32_t)(uintptr_t)arg;

	if (result != GOPRO_OK || f->header.command !=
	    (n % 2 ? GOPRO_CMD_MESSAGE : GOPRO_CMD_HEARTBEAT) ||
	    !ends_with(f, &n, sizeof(n))) {
		if (tally.bad++ == 0)
			tally.first_error = result != GOPRO_OK ? result :
			    GOPRO_E_PROTOCOL;
	}
	if (--tally.left == 0)
		gopro_async_free(a);
}

static int
run_async(const char *addr, const char *user, const char *password)
{
	const char *addrs[] = { addr };
	struct gopro_async_options o;
	struct gopro_async *a;
	int rc;

	gopro_async_options_init(&o);
	o.addresses = addrs;
	o.naddresses = 1;
	o.user = user;
	o.password = password;
	o.max_retries = 2;
	if ((a = gopro_async_new(&o, &rc)) == NULL ||
	    (rc = gopro_libev_attach(a, EV_DEFAULT)) != GOPRO_OK) {
		fprintf(stderr, "async %s: %s\n", addr, gopro_strerror(rc));
		return 1;
	}
	for (uint32_t i = 0; i < ASYNC_REQUESTS; i++)
		if ((rc = gopro_async_request(a, i % 2 ? GOPRO_CMD_MESSAGE :
		    GOPRO_CMD_HEARTBEAT, &i, sizeof(i), 0, on_reply,
		    (void *)(uintptr_t)i)) != GOPRO_OK) {
			fprintf(stderr, "async %s: request %u: %s\n", addr, i,
			    gopro_strerror(rc));
			return 1;
		}
	ev_run(EV_DEFAULT, 0);
	if (tally.bad > 0)
		fprintf(stderr, "async %s: %u bad replies, the first: %s\n",
		    addr, tally.bad, gopro_strerror(tally.first_error));
	return tally.bad == 0 ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	const char *user = argc > 4 ? argv[3] : NULL;
	const char *password = argc > 4 ? argv[4] : NULL;

	if (argc != 3 && argc != 5) {
		fprintf(stderr, "usage: interop_client sync|async HOST:PORT "
		    "[USER PASSWORD]\n");
		return 2;
	}
	if (strcmp(argv[1], "sync") == 0)
		return run_sync(argv[2], user, password);
	if (strcmp(argv[1], "async") == 0)
		return run_async(argv[2], user, password);
	fprintf(stderr, "interop_client: %s: not sync or async\n", argv[1]);
	return 2;
}
