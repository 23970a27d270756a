/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sock.h - addresses and non-blocking connects, shared by the blocking and
 * the asynchronous client.  An address is "host:port", "[v6]:port",
 * "unix:/path" or "/path"; host names are resolved with getaddrinfo, which
 * blocks (numeric addresses do not).
 */
#ifndef GOPRO_SOCK_H
#define GOPRO_SOCK_H

#include <stddef.h>
#include <sys/socket.h>

#define SOCK_ADDRS_MAX 8

/* What one address resolved to, tried in order. */
struct sock_addrs {
	size_t n;
	struct sockaddr_storage addr[SOCK_ADDRS_MAX];
	socklen_t len[SOCK_ADDRS_MAX];
};

/*
 * "host:port" or "[v6]:port" into its two strings (the brackets dropped):
 * 0, or -1 when s is neither or a part does not fit.
 */
int sock_split_hostport(const char *s, char *host, size_t hostlen,
    char *port, size_t portlen);
/* Resolve address: GOPRO_OK, or GOPRO_E_ADDRESS with a sentence in err. */
int sock_resolve(const char *address, struct sock_addrs *out, char *err,
    size_t errlen);
/*
 * Open a non-blocking, close-on-exec socket (TCP_NODELAY for TCP) and start
 * connecting it, from the source address src if not NULL (its port 0: the
 * kernel picks the port at connect, from the whole 4-tuple): the
 * descriptor, with *done set when the connection is already made, or -1
 * with errno (nothing left open).
 */
int sock_connect_start(const struct sockaddr_storage *addr, socklen_t len,
    const struct sockaddr_storage *src, int *done);
/* A numeric IPv4 or IPv6 address, port 0: 0, or -1 when it is not one. */
int sock_parse_ip(const char *s, struct sockaddr_storage *out);
/* After the socket became writable: 0, or the errno of the failed connect. */
int sock_connect_error(int fd);
/* "127.0.0.1:8888", "[::1]:8888", "/run/x.sock" for messages. */
void sock_name(const struct sockaddr_storage *addr, char *out, size_t outlen);

#endif /* GOPRO_SOCK_H */
