/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * client.c - the blocking GoPro client (see client.h).  Every send and
 * recv is MSG_DONTWAIT and every wait a poll() against a deadline, so one
 * timeout bounds a whole call however the server dribbles its bytes, even
 * on a descriptor the caller left blocking.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gopro/client.h"
#include "iowait.h"

/* iowait_fd's answer as a client result. */
static int
wait_result(int rc)
{
	return rc > 0 ? CLIENT_OK : rc == 0 ? CLIENT_TIMEOUT : CLIENT_ERROR;
}


/* ------------------------------------------------------------ connect */

static int
split_hostport(const char *s, char *host, size_t hostlen, char *port,
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
connect_one(const struct addrinfo *ai, double deadline)
{
	int fd, one = 1, soerr = 0, saved;
	socklen_t len = sizeof(soerr);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno == EINPROGRESS) {
		int rc = wait_result(iowait_fd(fd, POLLOUT, deadline));

		if (rc == CLIENT_TIMEOUT)
			soerr = ETIMEDOUT;
		else if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
		    &len) < 0)
			soerr = errno;
		if (soerr == 0)
			return fd;
		errno = soerr;
	}
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
client_connect(const char *hostport, double timeout, char *err,
    size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV }, *res, *ai;
	double deadline = iowait_now() + timeout;
	char host[256], port[16];
	int rc, fd = -1;

	if (split_hostport(hostport, host, sizeof(host), port,
	    sizeof(port)) < 0) {
		snprintf(err, errlen, "%s: not HOST:PORT or [IPv6]:PORT",
		    hostport);
		return -1;
	}
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", hostport, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
		fd = connect_one(ai, deadline);
	if (fd < 0)
		snprintf(err, errlen, "cannot connect to %s: %s", hostport,
		    strerror(errno));
	freeaddrinfo(res);
	return fd;
}

void
client_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* ------------------------------------------------------------ frames */

static int
write_all(int fd, const uint8_t *p, size_t len, double deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		int rc;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR)
			return CLIENT_ERROR;
		else if ((rc = wait_result(iowait_fd(fd, POLLOUT,
		    deadline))) != CLIENT_OK)
			return rc;
	}
	return CLIENT_OK;
}

int
client_send_frame(int fd, uint8_t command, const void *body, size_t len,
    double timeout)
{
	double deadline = iowait_now() + timeout;
	uint8_t hdr[GOPRO_HEADER_SIZE];
	int rc;

	if (len > UINT32_MAX) {
		errno = EMSGSIZE;
		return CLIENT_ERROR;
	}
	gopro_header_write(hdr, command, (uint32_t)len);
	rc = write_all(fd, hdr, sizeof(hdr), deadline);
	if (rc == CLIENT_OK && len > 0)
		rc = write_all(fd, body, len, deadline);
	return rc;
}

/* Read exactly len bytes into p. */
static int
read_exact(int fd, uint8_t *p, size_t len, double deadline)
{
	while (len > 0) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
		int rc;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n == 0)
			return CLIENT_EOF;
		else if (errno == ECONNRESET)
			return CLIENT_EOF;
		else if (errno != EAGAIN && errno != EINTR)
			return CLIENT_ERROR;
		else if ((rc = wait_result(iowait_fd(fd, POLLIN,
		    deadline))) != CLIENT_OK)
			return rc;
	}
	return CLIENT_OK;
}

static int
decode_result(enum gopro_decode_status st)
{
	switch (st) {
	case GOPRO_DECODE_FRAME:
		return CLIENT_OK;
	case GOPRO_DECODE_TOO_LARGE:
		return CLIENT_TOO_LARGE;
	default:
		return CLIENT_PROTOCOL;
	}
}

int
client_read_frame(int fd, uint8_t *buf, size_t cap, struct gopro_frame *frame,
    double timeout)
{
	double deadline = iowait_now() + timeout;
	uint32_t max_body;
	size_t have = 0, need = GOPRO_HEADER_SIZE;
	enum gopro_decode_status st;
	int rc;

	if (cap < GOPRO_HEADER_SIZE)
		return CLIENT_TOO_LARGE;
	max_body = cap - GOPRO_HEADER_SIZE > UINT32_MAX ? UINT32_MAX :
	    (uint32_t)(cap - GOPRO_HEADER_SIZE);
	for (;;) {
		/* The decoder checked need against max_body, so it fits. */
		if ((rc = read_exact(fd, buf + have, need, deadline)) != CLIENT_OK)
			return rc;
		have += need;
		st = gopro_decode(buf, have, max_body, frame, &need);
		if (st != GOPRO_DECODE_NEED_MORE)
			return decode_result(st);
		if (need == 0 || have + need > cap)
			return CLIENT_TOO_LARGE;
	}
}

int
client_login(int fd, const char *user, const char *password, uint8_t *buf,
    size_t cap, struct gopro_frame *frame, double timeout)
{
	uint8_t out[GOPRO_HEADER_SIZE + GOPRO_LOGIN_BODY_MAX];
	size_t n;
	int rc;

	n = gopro_login_write(out, sizeof(out), user, strlen(user), password,
	    strlen(password));
	if (n == 0) {
		errno = EINVAL;
		return CLIENT_ERROR;
	}
	rc = client_send_frame(fd, GOPRO_CMD_LOGIN, out + GOPRO_HEADER_SIZE,
	    n - GOPRO_HEADER_SIZE, timeout);
	explicit_bzero(out, sizeof(out));
	if (rc != CLIENT_OK)
		return rc;
	return client_read_frame(fd, buf, cap, frame, timeout);
}

const char *
client_result_text(int result)
{
	switch (result) {
	case CLIENT_OK:
		return "ok";
	case CLIENT_EOF:
		return "connection closed by the server";
	case CLIENT_TIMEOUT:
		return "timed out";
	case CLIENT_PROTOCOL:
		return "protocol error (bad magic or version) from the server";
	case CLIENT_TOO_LARGE:
		return "frame from the server too large";
	default:
		return strerror(errno);
	}
}
