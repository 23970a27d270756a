/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * proxy.c - the PROXY protocol parser and the trusted-network list (see
 * proxy.h).
 *
 * The first byte tells the versions apart: 'P' starts the v1 text line,
 * 0x0D the v2 binary signature; anything else is not a PROXY header.  Each
 * call looks at everything received so far, so a header split over many
 * reads is parsed once it is whole; a prefix that can no longer become a
 * valid header is rejected as soon as it is seen, so a client that sends
 * something else is not kept waiting for bytes that would not help.
 *
 * v1 is parsed strictly: single spaces, dotted-quad IPv4 and RFC 4291 IPv6
 * as inet_pton(3) reads them, the address family matching TCP4 or TCP6,
 * decimal ports without leading zeros.  v2 is bounded by its own length
 * field, itself capped at PROXY_V2_MAX_PAYLOAD; TLVs are skipped.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "proxy.h"

static const uint8_t v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)
static const uint8_t v2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

/* v2 byte 13: version 2 in the high nibble, the command in the low one. */
#define V2_CMD_LOCAL 0x20
#define V2_CMD_PROXY 0x21
/* v2 byte 14: address family (high nibble) and transport (low nibble). */
#define V2_FAM_UNSPEC 0x00
#define V2_FAM_TCP4 0x11
#define V2_FAM_TCP6 0x21
#define V2_FAM_UNIX_STREAM 0x31
#define V2_TCP4_LEN 12	/* two IPv4 addresses, two ports */
#define V2_TCP6_LEN 36	/* two IPv6 addresses, two ports */

static enum proxy_status
invalid(struct proxy_result *r, const char *why)
{
	r->error = why;
	return PROXY_INVALID;
}

/* ------------------------------------------------------------ version 1 */

/* A port: "0", or 1-5 digits without a leading zero, at most 65535. */
static int
v1_port(const char *s, size_t n, uint16_t *port)
{
	uint32_t v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* An address of family af, the token s[0..n), into a (port left alone). */
static int
v1_address(int af, const char *s, size_t n, union proxy_addr *a)
{
	char text[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(text))
		return -1;
	memcpy(text, s, n);
	text[n] = '\0';
	memset(a, 0, sizeof(*a));
	if (af == AF_INET) {
		a->in4.sin_family = AF_INET;
		return inet_pton(AF_INET, text, &a->in4.sin_addr) == 1 ? 0 : -1;
	}
	a->in6.sin6_family = AF_INET6;
	return inet_pton(AF_INET6, text, &a->in6.sin6_addr) == 1 ? 0 : -1;
}

static void
set_port(union proxy_addr *a, uint16_t port)
{
	if (a->sa.sa_family == AF_INET)
		a->in4.sin_port = htons(port);
	else
		a->in6.sin6_port = htons(port);
}

/*
 * Split line[0..n) at single spaces into at most max tokens; -1 on an
 * empty token (two spaces, a leading or trailing one) or too many.
 */
static int
v1_split(const char *line, size_t n, const char **tok, size_t *toklen,
    int max)
{
	int count = 0;
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && line[i] != ' ')
			continue;
		if (i == start || count == max)
			return -1;
		tok[count] = line + start;
		toklen[count++] = i - start;
		start = i + 1;
	}
	return count;
}

static bool
token_is(const char *t, size_t n, const char *word)
{
	return n == strlen(word) && memcmp(t, word, n) == 0;
}

/* The line after "PROXY ", without its "\r\n". */
static enum proxy_status
v1_fields(const char *line, size_t n, struct proxy_result *r)
{
	const char *tok[5];
	size_t len[5];
	uint16_t sport, dport;
	int count, af;

	/* "UNKNOWN" may be followed by anything, which is ignored. */
	if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 &&
	    (n == 7 || line[7] == ' '))
		return PROXY_DONE;
	if ((count = v1_split(line, n, tok, len, 5)) < 0)
		return invalid(r, "v1: malformed line (expected single spaces "
		    "between five fields)");
	if (token_is(tok[0], len[0], "TCP4"))
		af = AF_INET;
	else if (token_is(tok[0], len[0], "TCP6"))
		af = AF_INET6;
	else
		return invalid(r, "v1: unknown protocol (expected TCP4, TCP6 "
		    "or UNKNOWN)");
	if (count != 5)
		return invalid(r, "v1: missing fields (expected protocol, two "
		    "addresses and two ports)");
	if (v1_address(af, tok[1], len[1], &r->src) < 0 ||
	    v1_address(af, tok[2], len[2], &r->dst) < 0)
		return invalid(r, "v1: bad address (expected a numeric address "
		    "of the family TCP4 or TCP6 names)");
	if (v1_port(tok[3], len[3], &sport) < 0 ||
	    v1_port(tok[4], len[4], &dport) < 0)
		return invalid(r, "v1: bad port (expected 0 to 65535, no "
		    "leading zeros)");
	set_port(&r->src, sport);
	set_port(&r->dst, dport);
	r->has_addr = true;
	return PROXY_DONE;
}

static enum proxy_status
parse_v1(const uint8_t *p, size_t len, struct proxy_result *r)
{
	size_t n = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
	size_t i;

	if (memcmp(p, v1_sig, n < V1_SIG_LEN ? n : V1_SIG_LEN) != 0)
		return invalid(r, "not a PROXY header (expected \"PROXY \" or "
		    "the v2 signature)");
	for (i = 0; i < n; i++) {
		if (p[i] == '\n')
			break;
		/* Only printable ASCII before the "\r\n": fail early. */
		if ((p[i] < 0x20 || p[i] > 0x7e) &&
		    !(p[i] == '\r' && (i + 1 == n || p[i + 1] == '\n')))
			return invalid(r, "v1: control or non-ASCII byte in the "
			    "line");
	}
	if (i == n)
		return len >= PROXY_V1_MAX ? invalid(r, "v1: no \"\\r\\n\" "
		    "within 107 bytes") : PROXY_NEED_MORE;
	if (i == 0 || p[i - 1] != '\r' || i < V1_SIG_LEN + 1)
		return invalid(r, "v1: the line must end with \"\\r\\n\"");
	r->version = 1;
	r->size = i + 1;
	return v1_fields((const char *)p + V1_SIG_LEN, i - 1 - V1_SIG_LEN, r);
}

/* ------------------------------------------------------------ version 2 */

static void
v2_addresses(const uint8_t *a, int af, struct proxy_result *r)
{
	size_t alen = af == AF_INET ? 4 : 16;
	uint16_t sport = (uint16_t)(a[2 * alen] << 8 | a[2 * alen + 1]);
	uint16_t dport = (uint16_t)(a[2 * alen + 2] << 8 | a[2 * alen + 3]);

	memset(&r->src, 0, sizeof(r->src));
	memset(&r->dst, 0, sizeof(r->dst));
	if (af == AF_INET) {
		r->src.in4.sin_family = r->dst.in4.sin_family = AF_INET;
		memcpy(&r->src.in4.sin_addr, a, 4);
		memcpy(&r->dst.in4.sin_addr, a + 4, 4);
	} else {
		r->src.in6.sin6_family = r->dst.in6.sin6_family = AF_INET6;
		memcpy(&r->src.in6.sin6_addr, a, 16);
		memcpy(&r->dst.in6.sin6_addr, a + 16, 16);
	}
	set_port(&r->src, sport);
	set_port(&r->dst, dport);
	r->has_addr = true;
}

/* A PROXY command: what the family says about the client's address. */
static enum proxy_status
v2_proxy(const uint8_t *p, size_t plen, struct proxy_result *r)
{
	const uint8_t *a = p + PROXY_V2_HEADER;

	switch (p[13]) {
	case V2_FAM_UNSPEC:
	case V2_FAM_UNIX_STREAM:
		/* No IP address to use: the connection's own stays. */
		return PROXY_DONE;
	case V2_FAM_TCP4:
		if (plen < V2_TCP4_LEN)
			return invalid(r, "v2: TCP4 address block shorter than "
			    "12 bytes");
		v2_addresses(a, AF_INET, r);
		return PROXY_DONE;
	case V2_FAM_TCP6:
		if (plen < V2_TCP6_LEN)
			return invalid(r, "v2: TCP6 address block shorter than "
			    "36 bytes");
		v2_addresses(a, AF_INET6, r);
		return PROXY_DONE;
	default:
		return invalid(r, "v2: unsupported family or transport "
		    "(expected TCP over IPv4 or IPv6, UNSPEC or UNIX stream)");
	}
}

static enum proxy_status
parse_v2(const uint8_t *p, size_t len, struct proxy_result *r)
{
	size_t plen;

	if (memcmp(p, v2_sig, len < sizeof(v2_sig) ? len : sizeof(v2_sig)) != 0)
		return invalid(r, "not a PROXY header (expected \"PROXY \" or "
		    "the v2 signature)");
	if (len > sizeof(v2_sig) && p[12] != V2_CMD_LOCAL &&
	    p[12] != V2_CMD_PROXY)
		return invalid(r, (p[12] >> 4) != 2 ? "v2: version is not 2" :
		    "v2: unknown command (expected LOCAL or PROXY)");
	if (len < PROXY_V2_HEADER)
		return PROXY_NEED_MORE;
	plen = (size_t)p[14] << 8 | p[15];
	if (plen > PROXY_V2_MAX_PAYLOAD)
		return invalid(r, "v2: length above 2048 bytes");
	if (len < PROXY_V2_HEADER + plen)
		return PROXY_NEED_MORE;
	r->version = 2;
	r->size = PROXY_V2_HEADER + plen;
	if (p[12] == V2_CMD_LOCAL)
		return PROXY_DONE;	/* health check: the proxy itself */
	return v2_proxy(p, plen, r);
}

/* ------------------------------------------------------------ parse */

enum proxy_status
proxy_parse(const uint8_t *p, size_t len, struct proxy_result *r)
{
	memset(r, 0, sizeof(*r));
	if (len == 0)
		return PROXY_NEED_MORE;
	if (p[0] == v1_sig[0])
		return parse_v1(p, len, r);
	if (p[0] == v2_sig[0])
		return parse_v2(p, len, r);
	return invalid(r, "not a PROXY header (expected \"PROXY \" or the v2 "
	    "signature)");
}

/* ------------------------------------------------------------ networks */

static int
parse_bits(const char *s, unsigned max, uint8_t *bits)
{
	unsigned v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*bits = (uint8_t)v;
	return 0;
}

/* Whether the bits of addr[0..alen) beyond the first bits are all zero. */
static bool
host_bits_clear(const uint8_t *addr, size_t alen, unsigned bits)
{
	for (size_t i = bits / 8; i < alen; i++) {
		uint8_t mask = i == bits / 8 ? (uint8_t)(0xff >> (bits % 8)) : 0xff;

		if (addr[i] & mask)
			return false;
	}
	return true;
}

int
proxy_net_parse(const char *s, struct proxy_net *net, char *why,
    size_t whylen)
{
	char text[INET6_ADDRSTRLEN + 8];
	char *slash;
	unsigned max;

	if (strlen(s) >= sizeof(text)) {
		snprintf(why, whylen, "too long for an address");
		return -1;
	}
	memcpy(text, s, strlen(s) + 1);
	if ((slash = strchr(text, '/')) != NULL)
		*slash++ = '\0';
	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, text, net->addr) == 1) {
		net->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, text, net->addr) == 1) {
		net->family = AF_INET6;
		max = 128;
	} else {
		snprintf(why, whylen, "not a numeric IPv4 or IPv6 address");
		return -1;
	}
	net->bits = (uint8_t)max;
	if (slash != NULL && parse_bits(slash, max, &net->bits) < 0) {
		snprintf(why, whylen, "bad prefix length (expected /0 to /%u)",
		    max);
		return -1;
	}
	if (!host_bits_clear(net->addr, max / 8, net->bits)) {
		snprintf(why, whylen, "address bits set beyond the /%u prefix",
		    net->bits);
		return -1;
	}
	return 0;
}

static bool
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	size_t whole = bits / 8;
	uint8_t mask;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (bits % 8 == 0)
		return true;
	mask = (uint8_t)(0xff00 >> (bits % 8));
	return ((a[whole] ^ b[whole]) & mask) == 0;
}

bool
proxy_net_match(const struct proxy_net *nets, size_t n,
    const struct sockaddr *sa)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	const uint8_t *addr;
	sa_family_t af = sa->sa_family;

	if (af == AF_INET)
		addr = (const uint8_t *)&s4->sin_addr;
	else if (af == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		af = AF_INET;
		addr = (const uint8_t *)&s6->sin6_addr + 12;
	} else if (af == AF_INET6)
		addr = (const uint8_t *)&s6->sin6_addr;
	else
		return false;
	for (size_t i = 0; i < n; i++)
		if (nets[i].family == af &&
		    prefix_equal(nets[i].addr, addr, nets[i].bits))
			return true;
	return false;
}

const char *
proxy_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET &&
	    inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host)) != NULL)
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	else if (sa->sa_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host)) != NULL)
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	else if (sa->sa_family == AF_UNIX)
		snprintf(buf, len, "a unix socket peer");
	else
		snprintf(buf, len, "(family %d)", sa->sa_family);
	return buf;
}
