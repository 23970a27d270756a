/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * proxy.h - the PROXY protocol header (versions 1 and 2) that a load
 * balancer such as HAProxy sends at the start of a connection to tell the
 * server who the client is, and the trusted-network list that decides who
 * may send one.
 *
 * Like the codec (proto.c) the parser is pure: bytes in, a result out, no
 * descriptor, no allocation.  It is incremental: the caller keeps the bytes
 * received so far and calls again when more arrive, until the header is
 * complete or known to be invalid.  Both versions are bounded (v1: 107
 * bytes, v2: 16 bytes plus at most PROXY_V2_MAX_PAYLOAD).
 *
 * Reference: HAProxy's doc/proxy-protocol.txt.
 */
#ifndef GOPRO_PROXY_H
#define GOPRO_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Longest v1 line, "\r\n" included (the specification's worst case). */
#define PROXY_V1_MAX 107
/* Fixed part of a v2 header: signature, ver/cmd, family, length. */
#define PROXY_V2_HEADER 16
/*
 * Most v2 payload (addresses and TLVs) accepted.  The field allows 65535;
 * HAProxy's own TLVs (ALPN, authority, SSL, unique id) fit easily in this.
 */
#define PROXY_V2_MAX_PAYLOAD 2048
/* Longest address text of proxy_addr_format: "[v6]:port" plus NUL. */
#define PROXY_ADDR_TEXT 56

enum proxy_status {
	PROXY_NEED_MORE,	/* a valid prefix of a header: read more */
	PROXY_DONE,		/* a complete header of r->size bytes */
	PROXY_INVALID,		/* not a valid header: r->error says why */
};

union proxy_addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

struct proxy_result {
	size_t size;		/* header bytes, to consume */
	uint8_t version;	/* 1 or 2 */
	/*
	 * true when the header carries a client address (v1 TCP4/TCP6, v2
	 * PROXY over TCP4/TCP6); false for v1 UNKNOWN, v2 LOCAL (health
	 * checks) and v2 UNSPEC or UNIX, where the real peer stays.
	 */
	bool has_addr;
	union proxy_addr src;	/* the client, when has_addr */
	union proxy_addr dst;	/* the address the client connected to */
	const char *error;	/* static text, for PROXY_INVALID */
};

/*
 * Parse the header at the start of p[0..len).  Never reads past len; on
 * PROXY_NEED_MORE nothing in r is meaningful.
 */
enum proxy_status proxy_parse(const uint8_t *p, size_t len,
    struct proxy_result *r);

/* A trusted network: family AF_INET or AF_INET6, first bits of addr. */
struct proxy_net {
	sa_family_t family;
	uint8_t bits;
	uint8_t addr[16];
};

/*
 * "198.51.100.0/24", "2001:db8::/32", or a bare address (/32 or /128).
 * Host bits set below the prefix are an error (a typo more often than not).
 * 0, or -1 with a reason in why.
 */
int proxy_net_parse(const char *s, struct proxy_net *net, char *why,
    size_t whylen);
/* Whether sa is in one of nets[0..n); an IPv4-mapped IPv6 address counts
 * as its IPv4 address.  Other families never match. */
bool proxy_net_match(const struct proxy_net *nets, size_t n,
    const struct sockaddr *sa);

/* "198.51.100.7:40000" or "[2001:db8::7]:40000" into buf (>= PROXY_ADDR_TEXT). */
const char *proxy_addr_format(const struct sockaddr *sa, char *buf,
    size_t len);

#endif /* GOPRO_PROXY_H */
