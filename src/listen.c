/*
 * listen.c - creating the listening sockets (see listen.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"

static int
set_int(int fd, int level, int opt, int value)
{
	return setsockopt(fd, level, opt, &value, sizeof(value));
}

int
listen_open(const struct conf_listen *addr, int backlog, char *err,
    size_t errlen)
{
	int family = addr->addr.ss_family, fd;
	const char *what;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		what = "socket";
		goto fail;
	}
	what = "setsockopt SO_REUSEADDR/SO_REUSEPORT";
	if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0 ||
	    set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
		goto fail;
	what = "setsockopt IPV6_V6ONLY";
	if (family == AF_INET6 && set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) < 0)
		goto fail;
	what = "bind";
	if (bind(fd, (const struct sockaddr *)&addr->addr, addr->addrlen) < 0)
		goto fail;
	what = "listen";
	if (listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "listen %s: %s: %s", addr->text, what,
	    strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/*
 * SO_REUSEPORT lets any process of the same user join the group, and the
 * kernel would then share the connections between two daemons.  A socket
 * without it (SO_REUSEADDR only, which TIME_WAIT leftovers do not block)
 * cannot bind where someone listens, so it tells whether anybody does.
 */
int
listen_probe(const struct conf_listen *addr, char *err, size_t errlen)
{
	int family = addr->addr.ss_family, fd, e;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0 ||
	    (family == AF_INET6 &&
	    set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) < 0)) {
		snprintf(err, errlen, "listen %s: probe socket: %s",
		    addr->text, strerror(errno));
		goto fail;
	}
	if (bind(fd, (const struct sockaddr *)&addr->addr, addr->addrlen) < 0) {
		e = errno;
		snprintf(err, errlen, "listen %s: %s%s", addr->text, strerror(e),
		    e == EADDRINUSE ? " (another process listens there: a "
		    "second goprod or another server; with SO_REUSEPORT the "
		    "two would share its connections)" : "");
		goto fail;
	}
	close(fd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Whether a and b bind the same port and one covers the other's address. */
int
listen_overlap(const struct conf_listen *a, const struct conf_listen *b)
{
	const struct sockaddr_in *a4 = (const void *)&a->addr;
	const struct sockaddr_in *b4 = (const void *)&b->addr;
	const struct sockaddr_in6 *a6 = (const void *)&a->addr;
	const struct sockaddr_in6 *b6 = (const void *)&b->addr;

	if (a->addr.ss_family != b->addr.ss_family)
		return 0;
	if (a->addr.ss_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		    (a4->sin_addr.s_addr == b4->sin_addr.s_addr ||
		    a4->sin_addr.s_addr == htonl(INADDR_ANY) ||
		    b4->sin_addr.s_addr == htonl(INADDR_ANY));
	return a6->sin6_port == b6->sin6_port &&
	    (memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0 ||
	    IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) ||
	    IN6_IS_ADDR_UNSPECIFIED(&b6->sin6_addr));
}

int
listen_same(const struct conf_listen *a, const struct conf_listen *b)
{
	const struct sockaddr_in *a4 = (const void *)&a->addr;
	const struct sockaddr_in *b4 = (const void *)&b->addr;
	const struct sockaddr_in6 *a6 = (const void *)&a->addr;
	const struct sockaddr_in6 *b6 = (const void *)&b->addr;

	if (a->addr.ss_family != b->addr.ss_family)
		return 0;
	if (a->addr.ss_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		    a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	return a6->sin6_port == b6->sin6_port &&
	    a6->sin6_scope_id == b6->sin6_scope_id &&
	    memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0;
}
