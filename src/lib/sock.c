/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sock.c - address parsing, resolution and non-blocking connects for the
 * clients (see sock.h).  Nothing here blocks but getaddrinfo on a name.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "gopro/gopro.h"
#include "sock.h"

int
sock_split_hostport(const char *s, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	const char *colon, *h = s;
	size_t n;

	if (*s == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':')
			return -1;
		h = s + 1;
		n = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)))
			return -1;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= hostlen || strlen(colon + 1) == 0 ||
	    strlen(colon + 1) >= portlen)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

static int
resolve_unix(const char *path, struct sock_addrs *out, char *err,
    size_t errlen)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&out->addr[0];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(un->sun_path)) {
		snprintf(err, errlen, "%s: not a unix socket path (1 to %zu "
		    "bytes)", path, sizeof(un->sun_path) - 1);
		return GOPRO_E_ADDRESS;
	}
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, n);
	out->len[0] = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	out->n = 1;
	return GOPRO_OK;
}

int
sock_resolve(const char *address, struct sock_addrs *out, char *err,
    size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV }, *res, *ai;
	char host[256], port[16];
	int rc;

	out->n = 0;
	if (strncmp(address, "unix:", 5) == 0)
		return resolve_unix(address + 5, out, err, errlen);
	if (address[0] == '/')
		return resolve_unix(address, out, err, errlen);
	if (sock_split_hostport(address, host, sizeof(host), port,
	    sizeof(port)) < 0) {
		snprintf(err, errlen, "%s: not HOST:PORT, [IPv6]:PORT or "
		    "unix:PATH", address);
		return GOPRO_E_ADDRESS;
	}
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", address, gai_strerror(rc));
		return GOPRO_E_ADDRESS;
	}
	for (ai = res; ai != NULL && out->n < SOCK_ADDRS_MAX; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(out->addr[0]))
			continue;
		memcpy(&out->addr[out->n], ai->ai_addr, ai->ai_addrlen);
		out->len[out->n++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	if (out->n == 0) {
		snprintf(err, errlen, "%s: no usable address", address);
		return GOPRO_E_ADDRESS;
	}
	return GOPRO_OK;
}

int
sock_parse_ip(const char *s, struct sockaddr_storage *out)
{
	struct sockaddr_in *in = (struct sockaddr_in *)out;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

static int
bind_source(int fd, const struct sockaddr_storage *src)
{
	int one = 1;

#ifdef IP_BIND_ADDRESS_NO_PORT
	/* Keep the port free until connect: the 4-tuple decides, not bind. */
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
	    sizeof(one));
#else
	(void)one;
#endif
	return bind(fd, (const struct sockaddr *)src, src->ss_family ==
	    AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}

int
sock_connect_start(const struct sockaddr_storage *addr, socklen_t len,
    const struct sockaddr_storage *src, int *done)
{
	int fd, one = 1, saved;

	*done = 0;
	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0)
		return -1;
	if (addr->ss_family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	if (src != NULL && addr->ss_family != AF_UNIX &&
	    bind_source(fd, src) < 0)
		goto fail;
	if (connect(fd, (const struct sockaddr *)addr, len) == 0) {
		*done = 1;
		return fd;
	}
	if (errno == EINPROGRESS)
		return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
sock_connect_error(int fd)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return errno;
	return soerr;
}

void
sock_name(const struct sockaddr_storage *addr, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	switch (addr->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const void *)addr;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, outlen, "%s:%u", ip, ntohs(in->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const void *)addr;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(out, outlen, "[%s]:%u", ip, ntohs(in6->sin6_port));
		break;
	}
	case AF_UNIX:
		snprintf(out, outlen, "%s",
		    ((const struct sockaddr_un *)(const void *)addr)->sun_path);
		break;
	default:
		snprintf(out, outlen, "(family %d)", addr->ss_family);
	}
}
