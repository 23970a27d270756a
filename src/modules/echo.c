/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * echo.c - the echo module: MESSAGE is answered with a prefix and the
 * body, the seed's semantics, written against the module API so that the
 * default configuration exercises it.  goprod has it built in (used when
 * no module claims MESSAGE, with message_prefix as its prefix); built with
 * -DGOPRO_MODULE_SHARED it is also a loadable module like any other.
 *
 * It answers inside the request callback, which the host turns into a
 * write straight into the connection's output: nothing is copied, nothing
 * allocated.
 */
#include <stdlib.h>
#include <string.h>

#include "gopro/gopro.h"
#include "gopro/module.h"

struct echo {
	const struct gopro_module_api *api;
	const char *prefix;
	size_t prefix_len;
};

static int
echo_init(const struct gopro_module_api *api,
    const union gopro_option_value *opts, void **state, char *err,
    size_t errlen)
{
	struct echo *e = calloc(1, sizeof(*e));

	(void)err;
	(void)errlen;
	if (e == NULL)
		return -1;
	e->api = api;
	e->prefix = opts[0].s;
	e->prefix_len = strlen(e->prefix);
	*state = e;
	return 0;
}

static void
echo_request(void *state, const struct gopro_request *req)
{
	struct echo *e = state;
	struct iovec iov[2] = {
		{ (void *)(uintptr_t)e->prefix, e->prefix_len },
		{ (void *)(uintptr_t)req->body, req->len },
	};

	e->api->completev(req->id, GOPRO_CMD_MESSAGE, iov, 2);
}

static void
echo_exit(void *state)
{
	free(state);
}

static const uint8_t echo_commands[] = { GOPRO_CMD_MESSAGE };

static const struct gopro_module_option echo_options[] = {
	{ "prefix", GOPRO_OPTION_STRING, "Server says: ", 0, 1024,
	    "text put before the body of every reply" },
};

#ifdef GOPRO_MODULE_SHARED
GOPRO_MODULE_EXPORT const struct gopro_module gopro_module = {
#else
const struct gopro_module module_echo = {
#endif
	GOPRO_MODULE_HEADER,
	.name = "echo",
	.commands = echo_commands,
	.ncommands = 1,
	.options = echo_options,
	.noptions = 1,
	.worker_init = echo_init,
	.request = echo_request,
	.worker_exit = echo_exit,
};
