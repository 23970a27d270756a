/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * listen.c - creating the listening sockets (see listen.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "unixsock.h"

#define UNIX_LIVE "another process listens on it (a second goprod?)"

static int
set_int(int fd, int level, int opt, int value)
{
	return setsockopt(fd, level, opt, &value, sizeof(value));
}

int
listen_is_unix(const struct conf_listen *addr)
{
	return addr->addr.ss_family == AF_UNIX;
}

static const struct sockaddr_un *
sun_of(const struct conf_listen *addr)
{
	return (const struct sockaddr_un *)(const void *)&addr->addr;
}

/* One socket for every slot: replace a stale file, bind, chown, listen. */
static int
open_unix(struct conf_listen *addr, int backlog,
    const struct listen_owner *own, char *err, size_t errlen)
{
	int fd;

	if (unixsock_clear_stale(sun_of(addr), true, "listen", UNIX_LIVE,
	    err, errlen) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", addr->text,
		    strerror(errno));
		return -1;
	}
	if (unixsock_bind(fd, sun_of(addr), own->mode, own->uid, own->gid,
	    backlog, &addr->file, "listen", err, errlen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void
listen_remove(const struct conf_listen *addr)
{
	if (listen_is_unix(addr) &&
	    unixsock_remove(sun_of(addr)->sun_path, &addr->file) < 0)
		log_warn("cannot remove the socket file of listen %s",
		    addr->text);
}

int
listen_open(struct conf_listen *addr, int backlog,
    const struct listen_owner *own, char *err, size_t errlen)
{
	int family = addr->addr.ss_family, fd;
	const char *what;

	if (family == AF_UNIX)
		return open_unix(addr, backlog, own, err, errlen);
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

	/* A unix path: nothing but a stale socket may be there. */
	if (family == AF_UNIX)
		return unixsock_clear_stale(sun_of(addr), false, "listen",
		    UNIX_LIVE, err, errlen);
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

/* The parts of a configured address that bind(2) compares. */
struct endpoint {
	int family;
	const void *ip;
	size_t iplen;
	uint16_t port;
	uint32_t scope;
	bool any;      /* the wildcard address */
};

static struct endpoint
endpoint_of(const struct conf_listen *l)
{
	const struct sockaddr_in *v4 = (const void *)&l->addr;
	const struct sockaddr_in6 *v6 = (const void *)&l->addr;

	if (l->addr.ss_family == AF_INET)
		return (struct endpoint){ AF_INET, &v4->sin_addr,
		    sizeof(v4->sin_addr), v4->sin_port, 0,
		    v4->sin_addr.s_addr == htonl(INADDR_ANY) };
	return (struct endpoint){ AF_INET6, &v6->sin6_addr,
	    sizeof(v6->sin6_addr), v6->sin6_port, v6->sin6_scope_id,
	    IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr) };
}

static bool
same_port(const struct endpoint *a, const struct endpoint *b)
{
	return a->family == b->family && a->port == b->port;
}

static bool
same_ip(const struct endpoint *a, const struct endpoint *b)
{
	return a->scope == b->scope && memcmp(a->ip, b->ip, a->iplen) == 0;
}

/* Two unix listeners are the same socket when their paths are. */
static int
same_unix(const struct conf_listen *a, const struct conf_listen *b)
{
	return listen_is_unix(a) && listen_is_unix(b) &&
	    strcmp(sun_of(a)->sun_path, sun_of(b)->sun_path) == 0;
}

int
listen_overlap(const struct conf_listen *a, const struct conf_listen *b)
{
	struct endpoint ea, eb;

	if (listen_is_unix(a) || listen_is_unix(b))
		return same_unix(a, b);
	ea = endpoint_of(a);
	eb = endpoint_of(b);
	return same_port(&ea, &eb) && (same_ip(&ea, &eb) || ea.any || eb.any);
}

int
listen_same(const struct conf_listen *a, const struct conf_listen *b)
{
	struct endpoint ea, eb;

	if (listen_is_unix(a) || listen_is_unix(b))
		return same_unix(a, b);
	ea = endpoint_of(a);
	eb = endpoint_of(b);
	return same_port(&ea, &eb) && same_ip(&ea, &eb);
}

void
listen_describe(const struct gopro_conf *c, char *buf, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < c->nlisten && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s%s",
		    i ? ", " : "", c->listen[i].text,
		    c->listen[i].proxy ? " (PROXY)" : "");
}
