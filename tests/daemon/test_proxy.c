/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_proxy.c - unit tests of the PROXY protocol parser and the trusted
 * networks: the examples of HAProxy's proxy-protocol.txt byte for byte, a
 * v2 header as HAProxy sends it (captured), LOCAL health checks, every
 * prefix of a valid header (incremental parsing), a table of invalid
 * headers with their reasons, CIDR parsing and matching; then the options
 * in conf_load, and a real goprod with a PROXY listener: the client address
 * in stats, log and login rate limit, header and frames in one write, a
 * header in pieces, LOCAL, untrusted peers, bad and late headers, and a
 * reload that turns the PROXY mode of a kept socket off and on.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "conf.h"
#include "harness.h"
#include "proxy.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static void
assert_v4(const union proxy_addr *a, const char *host, unsigned port)
{
	char text[INET_ADDRSTRLEN];

	assert_int_equal(a->sa.sa_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &a->in4.sin_addr, text,
	    sizeof(text)));
	assert_string_equal(text, host);
	assert_int_equal(ntohs(a->in4.sin_port), port);
}

static void
assert_v6(const union proxy_addr *a, const char *host, unsigned port)
{
	char text[INET6_ADDRSTRLEN];

	assert_int_equal(a->sa.sa_family, AF_INET6);
	assert_non_null(inet_ntop(AF_INET6, &a->in6.sin6_addr, text,
	    sizeof(text)));
	assert_string_equal(text, host);
	assert_int_equal(ntohs(a->in6.sin6_port), port);
}

/* Every strict prefix of a valid header asks for more. */
static void
assert_prefixes_need_more(const uint8_t *p, size_t len)
{
	struct proxy_result r;

	for (size_t n = 0; n < len; n++)
		assert_int_equal(proxy_parse(p, n, &r), PROXY_NEED_MORE);
}

/* ------------------------------------------------------------ version 1 */

/* proxy-protocol.txt section 2.1, the example with an HTTP request after. */
static void
test_v1_spec_tcp4(void **state)
{
	static const char in[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443"
	    "\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
	struct proxy_result r;

	assert_int_equal(proxy_parse(S(in), &r), PROXY_DONE);
	assert_int_equal(r.version, 1);
	assert_int_equal(r.size, 47);
	assert_memory_equal(in + r.size, "GET ", 4);
	assert_true(r.has_addr);
	assert_v4(&r.src, "192.168.0.1", 56324);
	assert_v4(&r.dst, "192.168.0.11", 443);
	assert_prefixes_need_more((const uint8_t *)in, r.size);
}

/* The spec's longest TCP4 and TCP6 lines: 56 and 104 bytes. */
static void
test_v1_spec_longest(void **state)
{
	static const char v4[] =
	    "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
	static const char v6[] = "PROXY TCP6 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	struct proxy_result r;

	assert_int_equal(sizeof(v4) - 1, 56);
	assert_int_equal(proxy_parse(S(v4), &r), PROXY_DONE);
	assert_int_equal(r.size, 56);
	assert_v4(&r.src, "255.255.255.255", 65535);
	assert_int_equal(sizeof(v6) - 1, 104);
	assert_int_equal(proxy_parse(S(v6), &r), PROXY_DONE);
	assert_int_equal(r.size, 104);
	assert_v6(&r.src, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	assert_v6(&r.dst, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	assert_prefixes_need_more((const uint8_t *)v6, sizeof(v6) - 1);
}

static void
test_v1_tcp6_short_forms(void **state)
{
	struct proxy_result r;

	assert_int_equal(proxy_parse(S("PROXY TCP6 2001:db8::7 2001:db8::1 "
	    "40000 8889\r\n"), &r), PROXY_DONE);
	assert_v6(&r.src, "2001:db8::7", 40000);
	assert_v6(&r.dst, "2001:db8::1", 8889);
	assert_int_equal(proxy_parse(S("PROXY TCP4 198.51.100.7 198.51.100.1 "
	    "0 1\r\n"), &r), PROXY_DONE);
	assert_v4(&r.src, "198.51.100.7", 0);
}

/* "PROXY UNKNOWN\r\n" (15 bytes) and the 107-byte worst case. */
static void
test_v1_spec_unknown(void **state)
{
	static const char worst[] = "PROXY UNKNOWN "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	struct proxy_result r;

	assert_int_equal(proxy_parse(S("PROXY UNKNOWN\r\n"), &r), PROXY_DONE);
	assert_int_equal(r.size, 15);
	assert_false(r.has_addr);
	assert_int_equal(sizeof(worst) - 1, PROXY_V1_MAX);
	assert_int_equal(proxy_parse(S(worst), &r), PROXY_DONE);
	assert_int_equal(r.size, PROXY_V1_MAX);
	assert_false(r.has_addr);
	assert_prefixes_need_more((const uint8_t *)worst, sizeof(worst) - 1);
}

static void
test_v1_invalid(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 198.51.100.7 198.51.100.1 40000 8889\n",
		"PROXY TCP4 198.51.100.7 198.51.100.1 40000 8889\r\r\n",
		"PROXY TCP4  198.51.100.7 198.51.100.1 40000 8889\r\n",
		"PROXY TCP4 198.51.100.7 198.51.100.1 40000 8889 \r\n",
		"PROXY TCP4 198.51.100.7 198.51.100.1 40000\r\n",
		"PROXY TCP4 198.51.100.7 198.51.100.1 40000 8889 1\r\n",
		"PROXY TCP4 198.51.100 198.51.100.1 40000 8889\r\n",
		"PROXY TCP4 198.51.100.07 198.51.100.1 40000 8889\r\n",
		"PROXY TCP4 2001:db8::7 198.51.100.1 40000 8889\r\n",
		"PROXY TCP6 198.51.100.7 198.51.100.1 40000 8889\r\n",
		"PROXY TCP4 198.51.100.7 198.51.100.1 65536 8889\r\n",
		"PROXY TCP4 198.51.100.7 198.51.100.1 040000 8889\r\n",
		"PROXY TCP4 198.51.100.7 198.51.100.1 +4000 8889\r\n",
		"PROXY TCP4 198.51.100.7 198.51.100.1 -1 8889\r\n",
		"PROXY TCP5 198.51.100.7 198.51.100.1 40000 8889\r\n",
		"PROXY tcp4 198.51.100.7 198.51.100.1 40000 8889\r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"proxy TCP4 198.51.100.7 198.51.100.1 40000 8889\r\n",
		"PROXY TCP4 198.51.100.7\t198.51.100.1 40000 8889\r\n",
	};
	struct proxy_result r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (proxy_parse((const uint8_t *)bad[i], strlen(bad[i]), &r) !=
		    PROXY_INVALID)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(r.error);
	}
}

/* Without "\r\n" in 107 bytes the line is refused, not waited for. */
static void
test_v1_too_long(void **state)
{
	uint8_t in[200];
	struct proxy_result r;

	memcpy(in, "PROXY UNKNOWN ", 14);
	memset(in + 14, 'a', sizeof(in) - 14);
	assert_int_equal(proxy_parse(in, PROXY_V1_MAX - 1, &r), PROXY_NEED_MORE);
	assert_int_equal(proxy_parse(in, PROXY_V1_MAX, &r), PROXY_INVALID);
	assert_int_equal(proxy_parse(in, sizeof(in), &r), PROXY_INVALID);
	/* "\r\n" as bytes 108 and 109: one byte too late. */
	in[PROXY_V1_MAX] = '\r';
	in[PROXY_V1_MAX + 1] = '\n';
	assert_int_equal(proxy_parse(in, PROXY_V1_MAX + 2, &r), PROXY_INVALID);
}

/* A control byte is refused as soon as it arrives. */
static void
test_v1_fails_early(void **state)
{
	struct proxy_result r;

	assert_int_equal(proxy_parse(S("PROXY TCP4 1\001"), &r), PROXY_INVALID);
	assert_int_equal(proxy_parse(S("PROXY TCP4 1\r2"), &r), PROXY_INVALID);
	assert_int_equal(proxy_parse(S("PROXI"), &r), PROXY_INVALID);
	assert_int_equal(proxy_parse(S("PROXY TCP4 1\r"), &r), PROXY_NEED_MORE);
}

/* ------------------------------------------------------------ version 2 */

/*
 * What HAProxy sent for a TCP/IPv4 connection from 172.19.0.1:42578 to
 * 172.19.0.3:80, followed by the client's first bytes (a public capture).
 */
static const uint8_t v2_haproxy_tcp4[] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51,
	0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c,
	0xac, 0x13, 0x00, 0x01, 0xac, 0x13, 0x00, 0x03,
	0xa6, 0x52, 0x00, 0x50, 0x47, 0x45, 0x54, 0x20,
};

static void
test_v2_haproxy_tcp4(void **state)
{
	struct proxy_result r;

	assert_int_equal(proxy_parse(v2_haproxy_tcp4, sizeof(v2_haproxy_tcp4),
	    &r), PROXY_DONE);
	assert_int_equal(r.version, 2);
	assert_int_equal(r.size, 28);
	assert_true(r.has_addr);
	assert_v4(&r.src, "172.19.0.1", 42578);
	assert_v4(&r.dst, "172.19.0.3", 80);
	assert_memory_equal(v2_haproxy_tcp4 + r.size, "GET ", 4);
	assert_prefixes_need_more(v2_haproxy_tcp4, 28);
}

/* The fixed part: signature, ver/cmd, family, big-endian length. */
static size_t
v2_header(uint8_t *p, uint8_t cmd, uint8_t fam, uint16_t len)
{
	static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
		0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

	memcpy(p, sig, sizeof(sig));
	p[12] = cmd;
	p[13] = fam;
	p[14] = (uint8_t)(len >> 8);
	p[15] = (uint8_t)len;
	return PROXY_V2_HEADER;
}

/* TCP6 with TLVs after the addresses (ALPN, unique id): skipped. */
static void
test_v2_tcp6_with_tlvs(void **state)
{
	static const uint8_t addrs[36] = {
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07,
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
		0x9c, 0x40, 0x22, 0xb1,
	};
	static const uint8_t tlvs[] = { 0x01, 0x00, 0x02, 'h', '2',
		0x05, 0x00, 0x03, 'a', 'b', 'c' };
	uint8_t in[128];
	size_t n = v2_header(in, 0x21, 0x21, sizeof(addrs) + sizeof(tlvs));
	struct proxy_result r;

	memcpy(in + n, addrs, sizeof(addrs));
	n += sizeof(addrs);
	memcpy(in + n, tlvs, sizeof(tlvs));
	n += sizeof(tlvs);
	in[n] = 'G';
	assert_int_equal(proxy_parse(in, n + 1, &r), PROXY_DONE);
	assert_int_equal(r.size, n);
	assert_v6(&r.src, "2001:db8::7", 40000);
	assert_v6(&r.dst, "2001:db8::1", 8881);
	assert_prefixes_need_more(in, n);
}

/* HAProxy's health checks send LOCAL: the real peer stays. */
static void
test_v2_local(void **state)
{
	uint8_t in[64];
	struct proxy_result r;

	v2_header(in, 0x20, 0x00, 0);
	assert_int_equal(proxy_parse(in, PROXY_V2_HEADER, &r), PROXY_DONE);
	assert_int_equal(r.size, 16);
	assert_false(r.has_addr);
	/* LOCAL with an address block: still skipped, still the real peer. */
	v2_header(in, 0x20, 0x11, 12);
	memset(in + 16, 0x7f, 12);
	assert_int_equal(proxy_parse(in, 28, &r), PROXY_DONE);
	assert_int_equal(r.size, 28);
	assert_false(r.has_addr);
}

static void
test_v2_unspec_and_unix(void **state)
{
	uint8_t in[300];
	struct proxy_result r;

	v2_header(in, 0x21, 0x00, 0);
	assert_int_equal(proxy_parse(in, 16, &r), PROXY_DONE);
	assert_false(r.has_addr);
	v2_header(in, 0x21, 0x31, 216);
	memset(in + 16, 0, 216);
	assert_int_equal(proxy_parse(in, 16 + 216, &r), PROXY_DONE);
	assert_int_equal(r.size, 16 + 216);
	assert_false(r.has_addr);
}

static void
test_v2_invalid(void **state)
{
	static const struct {
		uint8_t cmd, fam;
		uint16_t len;
	} bad[] = {
		{ 0x11, 0x11, 12 },	/* version 1 */
		{ 0x31, 0x11, 12 },	/* version 3 */
		{ 0x22, 0x11, 12 },	/* command 2 */
		{ 0x21, 0x11, 8 },	/* TCP4 block too short */
		{ 0x21, 0x21, 12 },	/* TCP6 block too short */
		{ 0x21, 0x12, 12 },	/* UDP4 */
		{ 0x21, 0x22, 36 },	/* UDP6 */
		{ 0x21, 0x41, 12 },	/* no such family */
		{ 0x21, 0x11, PROXY_V2_MAX_PAYLOAD + 1 },
	};
	uint8_t in[PROXY_V2_HEADER + PROXY_V2_MAX_PAYLOAD + 8];
	struct proxy_result r;

	memset(in, 0, sizeof(in));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v2_header(in, bad[i].cmd, bad[i].fam, bad[i].len);
		if (proxy_parse(in, sizeof(in), &r) != PROXY_INVALID)
			fail_msg("accepted case %zu", i);
		assert_non_null(r.error);
	}
	/* The length is refused from the fixed part alone. */
	v2_header(in, 0x21, 0x11, 0xffff);
	assert_int_equal(proxy_parse(in, 16, &r), PROXY_INVALID);
	/* A bad version is refused at byte 13, before the rest. */
	assert_int_equal(proxy_parse(in, 12, &r), PROXY_NEED_MORE);
	in[12] = 0x11;
	assert_int_equal(proxy_parse(in, 13, &r), PROXY_INVALID);
	/* A signature that breaks off. */
	v2_header(in, 0x21, 0x11, 12);
	in[7] = 'q';
	assert_int_equal(proxy_parse(in, 6, &r), PROXY_NEED_MORE);
	assert_int_equal(proxy_parse(in, 8, &r), PROXY_INVALID);
}

/* A GoPro frame where a PROXY header belongs: refused at once. */
static void
test_not_proxy(void **state)
{
	static const uint8_t heartbeat[] = { 0x47, 0x4F, 0x01, 0x00, 0, 0, 0, 0 };
	struct proxy_result r;

	assert_int_equal(proxy_parse(heartbeat, 1, &r), PROXY_INVALID);
	assert_non_null(strstr(r.error, "not a PROXY header"));
	assert_int_equal(proxy_parse(heartbeat, 0, &r), PROXY_NEED_MORE);
	assert_int_equal(proxy_parse(S("\r\n\r\n\r"), &r), PROXY_INVALID);
}

/* ------------------------------------------------------------ networks */

static void
sa4(struct sockaddr_in *s, const char *host)
{
	memset(s, 0, sizeof(*s));
	s->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, host, &s->sin_addr), 1);
}

static void
sa6(struct sockaddr_in6 *s, const char *host)
{
	memset(s, 0, sizeof(*s));
	s->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, host, &s->sin6_addr), 1);
}

static void
test_net_parse(void **state)
{
	struct proxy_net n;
	char why[128];

	assert_int_equal(proxy_net_parse("198.51.100.0/24", &n, why,
	    sizeof(why)), 0);
	assert_int_equal(n.family, AF_INET);
	assert_int_equal(n.bits, 24);
	assert_int_equal(proxy_net_parse("198.51.100.7", &n, why, sizeof(why)),
	    0);
	assert_int_equal(n.bits, 32);
	assert_int_equal(proxy_net_parse("2001:db8::/32", &n, why, sizeof(why)),
	    0);
	assert_int_equal(n.family, AF_INET6);
	assert_int_equal(n.bits, 32);
	assert_int_equal(proxy_net_parse("::1", &n, why, sizeof(why)), 0);
	assert_int_equal(n.bits, 128);
	assert_int_equal(proxy_net_parse("0.0.0.0/0", &n, why, sizeof(why)), 0);
	assert_int_equal(n.bits, 0);

	assert_int_equal(proxy_net_parse("198.51.100.7/24", &n, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "beyond the /24"));
	assert_int_equal(proxy_net_parse("198.51.100.0/33", &n, why,
	    sizeof(why)), -1);
	assert_int_equal(proxy_net_parse("198.51.100.0/", &n, why,
	    sizeof(why)), -1);
	assert_int_equal(proxy_net_parse("198.51.100.0/024", &n, why,
	    sizeof(why)), -1);
	assert_int_equal(proxy_net_parse("2001:db8::/129", &n, why,
	    sizeof(why)), -1);
	assert_int_equal(proxy_net_parse("localhost", &n, why, sizeof(why)),
	    -1);
	assert_int_equal(proxy_net_parse("", &n, why, sizeof(why)), -1);
	assert_int_equal(proxy_net_parse("198.51.100.0/2x", &n, why,
	    sizeof(why)), -1);
}

static void
test_net_match(void **state)
{
	struct proxy_net nets[3];
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	struct sockaddr sun = { .sa_family = AF_UNIX };
	char why[128];

	assert_int_equal(proxy_net_parse("198.51.100.128/25", &nets[0], why,
	    sizeof(why)), 0);
	assert_int_equal(proxy_net_parse("2001:db8::/33", &nets[1], why,
	    sizeof(why)), 0);
	assert_int_equal(proxy_net_parse("127.0.0.1", &nets[2], why,
	    sizeof(why)), 0);
	sa4(&s4, "198.51.100.200");
	assert_true(proxy_net_match(nets, 3, (struct sockaddr *)&s4));
	sa4(&s4, "198.51.100.127");
	assert_false(proxy_net_match(nets, 3, (struct sockaddr *)&s4));
	sa4(&s4, "127.0.0.1");
	assert_true(proxy_net_match(nets, 3, (struct sockaddr *)&s4));
	assert_false(proxy_net_match(nets, 2, (struct sockaddr *)&s4));
	sa4(&s4, "127.0.0.2");
	assert_false(proxy_net_match(nets, 3, (struct sockaddr *)&s4));
	sa6(&s6, "2001:db8:7fff::1");
	assert_true(proxy_net_match(nets, 3, (struct sockaddr *)&s6));
	sa6(&s6, "2001:db8:8000::1");
	assert_false(proxy_net_match(nets, 3, (struct sockaddr *)&s6));
	sa6(&s6, "::ffff:198.51.100.129");
	assert_true(proxy_net_match(nets, 3, (struct sockaddr *)&s6));
	sa6(&s6, "::ffff:198.51.100.1");
	assert_false(proxy_net_match(nets, 3, (struct sockaddr *)&s6));
	assert_false(proxy_net_match(nets, 3, &sun));
	assert_false(proxy_net_match(nets, 0, (struct sockaddr *)&s4));
	/* /0 trusts every address of its family, only of its family. */
	assert_int_equal(proxy_net_parse("0.0.0.0/0", &nets[0], why,
	    sizeof(why)), 0);
	sa4(&s4, "203.0.113.9");
	assert_true(proxy_net_match(nets, 1, (struct sockaddr *)&s4));
	sa6(&s6, "2001:db8::1");
	assert_false(proxy_net_match(nets, 1, (struct sockaddr *)&s6));
}

static void
test_addr_format(void **state)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	char buf[PROXY_ADDR_TEXT];

	sa4(&s4, "198.51.100.7");
	s4.sin_port = htons(40000);
	assert_string_equal(proxy_addr_format((struct sockaddr *)&s4, buf,
	    sizeof(buf)), "198.51.100.7:40000");
	sa6(&s6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	s6.sin6_port = htons(65535);
	assert_string_equal(proxy_addr_format((struct sockaddr *)&s6, buf,
	    sizeof(buf)), "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

/* ------------------------------------------------------------ options */

/* conf_load on text; returns its result, errors in err. */
static int
load_text(const char *text, struct gopro_conf **conf, char *err, size_t len)
{
	char path[] = "/tmp/gopro-proxy-conf-XXXXXX";
	int fd = mkstemp(path), rc;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	rc = conf_load(path, conf, err, len);
	unlink(path);
	return rc;
}

static void
test_conf_options(void **state)
{
	struct gopro_conf *c;
	char err[CONF_ERR_MAX];

	assert_int_equal(load_text("user = \"\"\ngroup = \"\"\n"
	    "listen = {\"127.0.0.1:8888\", \"127.0.0.1:8889\"}\n"
	    "proxy_protocol = {\"127.0.0.1:8889\"}\n"
	    "proxy_protocol_from = {\"198.51.100.0/24\", \"2001:db8::/32\", "
	    "\"127.0.0.1\"}\n", &c, err, sizeof(err)), 0);
	assert_false(c->listen[0].proxy);
	assert_true(c->listen[1].proxy);
	assert_int_equal(c->nproxy_from, 3);
	assert_int_equal(c->proxy_from[1].family, AF_INET6);
	assert_int_equal(c->proxy_from[2].bits, 32);
	conf_free(c);

	/* Defaults: nothing expects a header. */
	assert_int_equal(load_text("user = \"\"\ngroup = \"\"\n", &c, err,
	    sizeof(err)), 0);
	assert_false(c->listen[0].proxy);
	assert_int_equal(c->nproxy_from, 0);
	conf_free(c);
}

static void
test_conf_errors(void **state)
{
	struct gopro_conf *c;
	char err[CONF_ERR_MAX];

	/* Every error, each with file:line and the option. */
	assert_int_equal(load_text("user = \"\"\ngroup = \"\"\n"
	    "listen = {\"127.0.0.1:8888\"}\n"
	    "proxy_protocol = {\"127.0.0.1:8889\"}\n"
	    "proxy_protocol_from = {\"198.51.100.1/24\", \"example.org\"}\n",
	    &c, err, sizeof(err)), -1);
	assert_null(c);
	assert_non_null(strstr(err, ":4: proxy_protocol: \"127.0.0.1:8889\" "
	    "is not a listen address"));
	assert_non_null(strstr(err, ":5: proxy_protocol_from: "
	    "\"198.51.100.1/24\": address bits set beyond the /24"));
	assert_non_null(strstr(err, ":5: proxy_protocol_from: \"example.org\": "
	    "not a numeric"));
	assert_int_equal(load_text("user = \"\"\ngroup = \"\"\n"
	    "proxy_protocol = {\"0.0.0.0:8888\"}\n", &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":3: proxy_protocol: set without "
	    "proxy_protocol_from"));
	assert_int_equal(load_text("user = \"\"\ngroup = \"\"\n"
	    "proxy_protocol = {\"nowhere\"}\nproxy_protocol_from = {\"::1\"}\n",
	    &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":3: proxy_protocol: \"nowhere\": missing "
	    "\":port\""));
}

/* ------------------------------------------------------------ goprod */

struct proxied {
	struct goprod g;
	int pport;		/* the PROXY listener */
};

/* goprod on a free port, and a PROXY listener on another; extra after. */
static void
start_proxied(struct proxied *p, const char *from, const char *extra)
{
	char conf[1024];
	int port = harness_free_port();

	do
		p->pport = harness_free_port();
	while (p->pport == port);
	snprintf(conf, sizeof(conf), "listen = {\"127.0.0.1:%d\", "
	    "\"127.0.0.1:%d\"}\nproxy_protocol = {\"127.0.0.1:%d\"}\n"
	    "proxy_protocol_from = {%s}\nlog_level = debug\n%s\n", port,
	    p->pport, p->pport, from, extra ? extra : "");
	harness_start_port(&p->g, port, conf);
}

static int
connect_port(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		fail_msg("connect to port %d: %s", port, strerror(errno));
	return fd;
}

/*
 * Send a PROXY header of hlen bytes and the frames after it in one write;
 * over TLS the header goes first, in clear, then the handshake, then the
 * frames.  The descriptor to use from then on.
 */
static int
write_proxied(int fd, const uint8_t *in, size_t hlen, size_t len)
{
	if (!harness_over_tls()) {
		harness_write(fd, in, len);
		return fd;
	}
	harness_write(fd, in, hlen);
	fd = harness_secure(fd);
	harness_write(fd, in + hlen, len - hlen);
	return fd;
}

/* A v2 PROXY TCP4 header for client a.b.c.d:port to 198.51.100.1:8888. */
static size_t
v2_tcp4(uint8_t *p, const char *client, uint16_t port)
{
	size_t n = v2_header(p, 0x21, 0x11, 12);

	assert_int_equal(inet_pton(AF_INET, client, p + n), 1);
	assert_int_equal(inet_pton(AF_INET, "198.51.100.1", p + n + 4), 1);
	p[n + 8] = (uint8_t)(port >> 8);
	p[n + 9] = (uint8_t)port;
	p[n + 10] = 8888 >> 8;
	p[n + 11] = 8888 & 0xff;
	return n + 12;
}

/* Header and two frames in one write: all answered, the client counted. */
static void
test_serve_header_and_frames_at_once(void **state)
{
	struct proxied p;
	uint8_t in[128];
	size_t n, hlen;
	int fd;

	start_proxied(&p, "\"127.0.0.1\"", NULL);
	fd = connect_port(p.pport);
	n = hlen = v2_tcp4(in, "198.51.100.77", 40001);
	n += gopro_frame_write(in + n, sizeof(in) - n, GOPRO_CMD_HEARTBEAT,
	    "hi", 2);
	n += gopro_frame_write(in + n, sizeof(in) - n, GOPRO_CMD_HEARTBEAT,
	    "yo", 2);
	fd = write_proxied(fd, in, hlen, n);
	{
		uint8_t reply[64];
		struct gopro_frame f;

		assert_true(harness_read_frame(fd, reply, sizeof(reply), &f,
		    2.0) > 0);
		assert_int_equal(f.header.command, GOPRO_CMD_HEARTBEAT);
		assert_memory_equal(f.body, "hi", 2);
		assert_true(harness_read_frame(fd, reply, sizeof(reply), &f,
		    2.0) > 0);
		assert_memory_equal(f.body, "yo", 2);
	}
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "more");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "more", 4);
	close(fd);
	assert_int_equal(harness_counter(&p.g, STATS_conn_proxied), 1);
	assert_int_equal(harness_counter(&p.g, STATS_proxy_rejected), 0);
	harness_sleep(0.2);
	assert_true(harness_log_has(&p.g, "client 198.51.100.77:40001 via proxy "
	    "127.0.0.1:"));
	/* goproctl stats shows the client from the header, not the proxy. */
	assert_true(harness_recent_client(&p.g, "198.51.100.77", true));
	assert_false(harness_recent_client(&p.g, "127.0.0.1", true));
	/* The plain listener is unchanged, its clients shown as direct. */
	assert_true(harness_answers(&p.g));
	assert_true(harness_recent_client(&p.g, "127.0.0.1", false));
	assert_int_equal(harness_stop(&p.g), 0);
}

/* A v1 header a few bytes at a time, then frames; v2 LOCAL keeps the peer. */
static void
test_serve_header_in_pieces_and_local(void **state)
{
	static const char v1[] = "PROXY TCP6 2001:db8::7 2001:db8::1 40002 "
	    "8888\r\n";
	struct proxied p;
	uint8_t local[16];
	int fd;

	start_proxied(&p, "\"127.0.0.0/8\"", NULL);
	fd = connect_port(p.pport);
	for (size_t i = 0; i < sizeof(v1) - 1; i += 7) {
		size_t k = sizeof(v1) - 1 - i < 7 ? sizeof(v1) - 1 - i : 7;

		harness_write(fd, v1 + i, k);
		harness_sleep(0.01);
	}
	fd = harness_secure(fd);
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "ok");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "ok", 2);
	close(fd);
	fd = connect_port(p.pport);
	v2_header(local, 0x20, 0x00, 0);
	harness_write(fd, local, sizeof(local));
	fd = harness_secure(fd);
	harness_send(fd, GOPRO_CMD_HEARTBEAT, "hc");
	harness_expect_frame(fd, GOPRO_CMD_HEARTBEAT, "hc", 2);
	close(fd);
	assert_int_equal(harness_counter(&p.g, STATS_conn_proxied), 1);
	harness_sleep(0.2);
	assert_true(harness_log_has(&p.g, "client [2001:db8::7]:40002 via proxy"));
	assert_int_equal(harness_stop(&p.g), 0);
}

/* Untrusted peer, no header, bad header, late header: all closed. */
static void
test_serve_rejections(void **state)
{
	static const uint8_t hb[8] = { 0x47, 0x4F, 0x01, 0x00, 0, 0, 0, 0 };
	struct proxied p, q;
	uint8_t reply[64];
	struct gopro_frame f;
	uint64_t accepted;
	int fd;

	start_proxied(&p, "\"198.51.100.10\"", NULL);
	/* The start-up probes (one, or more on a slow machine). */
	accepted = harness_counter(&p.g, STATS_conn_accepted);
	fd = connect_port(p.pport);
	assert_true(harness_wait_closed(fd, 2.0));
	close(fd);
	assert_int_equal(harness_counter(&p.g, STATS_proxy_rejected), 1);
	assert_int_equal(harness_counter(&p.g, STATS_conn_accepted), accepted);
	harness_sleep(0.2);
	assert_true(harness_log_has(&p.g, "connection from 127.0.0.1:"));
	assert_true(harness_log_has(&p.g, "not in proxy_protocol_from"));
	assert_int_equal(harness_stop(&p.g), 0);

	start_proxied(&q, "\"127.0.0.1\"", "frame_timeout = 300ms");
	/* A frame where the header belongs: closed without a reply. */
	fd = connect_port(q.pport);
	harness_write(fd, hb, sizeof(hb));
	assert_int_equal(harness_read_frame(fd, reply, sizeof(reply), &f, 2.0),
	    -1);
	close(fd);
	/*
	 * Half a header, then nothing: closed by frame_timeout, as counted
	 * (3 s is a safety limit, not the property).
	 */
	uint64_t late = harness_counter(&q.g, STATS_conn_frame_timeout);
	fd = connect_port(q.pport);
	harness_write(fd, "PROXY TCP4 198.51", 17);
	assert_true(harness_wait_closed(fd, 3.0));
	assert_int_equal(harness_counter(&q.g, STATS_conn_frame_timeout),
	    late + 1);
	close(fd);
	/* A connection that sends nothing is held by frame_timeout too. */
	fd = connect_port(q.pport);
	assert_true(harness_wait_closed(fd, 3.0));
	close(fd);
	assert_int_equal(harness_counter(&q.g, STATS_proxy_rejected), 3);
	assert_int_equal(harness_counter(&q.g, STATS_conn_proxied), 0);
	harness_sleep(0.2);
	assert_true(harness_log_has(&q.g, "invalid PROXY header: not a PROXY "
	    "header"));
	assert_true(harness_log_has(&q.g, "no complete PROXY header"));
	/* A PROXY header on the plain listener is bad magic, as before. */
	fd = harness_connect(&q.g);
	harness_write(fd, "PROXY UNKNOWN\r\n", 15);
	harness_expect_error(fd, GOPRO_ERR_BAD_MAGIC);
	close(fd);
	assert_int_equal(harness_stop(&q.g), 0);
}

/* login_rate counts per client address from the header, not per proxy. */
static void
test_serve_login_rate_per_client(void **state)
{
	struct proxied p;
	uint8_t in[128], reply[64];
	struct gopro_frame f;
	const char *clients[3] = { "198.51.100.21", "198.51.100.21",
		"198.51.100.22" };
	const uint8_t want[3] = { GOPRO_CMD_LOGIN_ACK, GOPRO_CMD_ERROR,
		GOPRO_CMD_LOGIN_ACK };
	size_t n, hlen;
	int fd;

	start_proxied(&p, "\"127.0.0.1\"", "auth {\nlogin_rate = 0.001\n"
	    "login_burst = 1\n}");
	for (int i = 0; i < 3; i++) {
		fd = connect_port(p.pport);
		n = hlen = v2_tcp4(in, clients[i], (uint16_t)(41000 + i));
		n += gopro_login_write(in + n, sizeof(in) - n, "u", 1, "pw", 2);
		fd = write_proxied(fd, in, hlen, n);
		assert_true(harness_read_frame(fd, reply, sizeof(reply), &f,
		    2.0) > 0);
		if (f.header.command != want[i])
			fail_msg("login %d from %s: command %u", i, clients[i],
			    f.header.command);
		close(fd);
	}
	assert_int_equal(harness_counter(&p.g, STATS_logins_rate_limited), 1);
	assert_int_equal(harness_stop(&p.g), 0);
}

/* A heartbeat without a header on port: answered within 0.5s? */
static bool
plain_answers(int port)
{
	static const uint8_t hb[8] = { 0x47, 0x4F, 0x01, 0x00, 0, 0, 0, 0 };
	uint8_t reply[8];
	int fd = harness_secure(connect_port(port));
	bool ok;

	harness_write(fd, hb, sizeof(hb));
	ok = harness_read_exact(fd, reply, sizeof(reply), 0.5) == 0 &&
	    memcmp(reply, hb, sizeof(hb)) == 0;
	close(fd);
	return ok;
}

/* Wait (bounded) until a plain heartbeat on port is answered, or not. */
static void
wait_plain(int port, bool want)
{
	double deadline = harness_now() + 5;

	while (plain_answers(port) != want)
		if (harness_now() > deadline)
			fail_msg("port %d: plain heartbeat still %s after a reload",
			    port, want ? "refused" : "answered");
}

/* Both options apply on a reload: the same socket changes its mode. */
static void
test_serve_reload_toggles(void **state)
{
	struct proxied p;
	char conf[512];

	start_proxied(&p, "\"127.0.0.1\"", NULL);
	assert_false(plain_answers(p.pport));
	snprintf(conf, sizeof(conf), "listen = {\"127.0.0.1:%d\", "
	    "\"127.0.0.1:%d\"}\n", p.g.port, p.pport);
	harness_rewrite_conf(&p.g, conf);
	assert_int_equal(kill(p.g.pid, SIGHUP), 0);
	harness_wait_settled(&p.g, 1);
	wait_plain(p.pport, true);
	snprintf(conf, sizeof(conf), "listen = {\"127.0.0.1:%d\", "
	    "\"127.0.0.1:%d\"}\nproxy_protocol = {\"127.0.0.1:%d\"}\n"
	    "proxy_protocol_from = {\"127.0.0.1\"}\n", p.g.port, p.pport,
	    p.pport);
	harness_rewrite_conf(&p.g, conf);
	assert_int_equal(kill(p.g.pid, SIGHUP), 0);
	harness_wait_settled(&p.g, 2);
	wait_plain(p.pport, false);
	assert_true(harness_answers(&p.g));
	assert_int_equal(harness_stop(&p.g), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_spec_tcp4),
		cmocka_unit_test(test_v1_spec_longest),
		cmocka_unit_test(test_v1_tcp6_short_forms),
		cmocka_unit_test(test_v1_spec_unknown),
		cmocka_unit_test(test_v1_invalid),
		cmocka_unit_test(test_v1_too_long),
		cmocka_unit_test(test_v1_fails_early),
		cmocka_unit_test(test_v2_haproxy_tcp4),
		cmocka_unit_test(test_v2_tcp6_with_tlvs),
		cmocka_unit_test(test_v2_local),
		cmocka_unit_test(test_v2_unspec_and_unix),
		cmocka_unit_test(test_v2_invalid),
		cmocka_unit_test(test_not_proxy),
		cmocka_unit_test(test_net_parse),
		cmocka_unit_test(test_net_match),
		cmocka_unit_test(test_addr_format),
		cmocka_unit_test(test_conf_options),
		cmocka_unit_test(test_conf_errors),
		cmocka_unit_test(test_serve_header_and_frames_at_once),
		cmocka_unit_test(test_serve_header_in_pieces_and_local),
		cmocka_unit_test(test_serve_rejections),
		cmocka_unit_test(test_serve_login_rate_per_client),
		cmocka_unit_test(test_serve_reload_toggles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
