/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_proxy.c - libFuzzer target for the PROXY protocol parser and the
 * trusted-network parser.
 *
 * The input is parsed as a header arriving one byte more at a time, the way
 * a connection sees it.  The answers must be consistent: a header found
 * complete lies inside what was received and stays the same header when
 * more bytes arrive; an invalid prefix stays invalid; nothing waits for
 * more than the largest header.  The input is also read as a network
 * ("198.51.100.0/24") and matched against the addresses the header gave.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The status for every prefix of data, checked against the whole input. */
static void
check_prefixes(const uint8_t *data, size_t size)
{
	struct proxy_result r, first;
	enum proxy_status st, seen = PROXY_NEED_MORE;

	memset(&first, 0, sizeof(first));

	for (size_t n = 0; n <= size; n++) {
		st = proxy_parse(data, n, &r);
		if (seen == PROXY_NEED_MORE) {
			seen = st;
			first = r;
		} else if (st != seen ||
		    (st == PROXY_DONE && r.size != first.size))
			abort();
		if (st == PROXY_DONE && (r.size > n || r.size == 0 ||
		    (r.version != 1 && r.version != 2)))
			abort();
		if (st == PROXY_INVALID && r.error == NULL)
			abort();
		if (st == PROXY_NEED_MORE &&
		    n >= PROXY_V2_HEADER + PROXY_V2_MAX_PAYLOAD)
			abort();
	}
}

static void
check_net(const uint8_t *data, size_t size, const struct proxy_result *r)
{
	char text[64], why[128], addr[PROXY_ADDR_TEXT];
	struct proxy_net net;
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;

	memcpy(text, data, n);
	text[n] = '\0';
	if (proxy_net_parse(text, &net, why, sizeof(why)) < 0)
		return;
	if ((net.family != AF_INET && net.family != AF_INET6) ||
	    net.bits > (net.family == AF_INET ? 32 : 128))
		abort();
	if (r->has_addr) {
		(void)proxy_net_match(&net, 1, &r->src.sa);
		proxy_addr_format(&r->src.sa, addr, sizeof(addr));
		if (strlen(addr) >= sizeof(addr) - 1)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_result r;

	check_prefixes(data, size);
	(void)proxy_parse(data, size, &r);
	check_net(data, size, &r);
	return 0;
}
