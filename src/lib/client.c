/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * client.c - the blocking GoPro client (see gopro/client.h).
 *
 * The socket is non-blocking and every send and recv is followed, when it
 * would block, by a poll() against the call's deadline, so one timeout
 * bounds a whole call.  Replies are assembled by an embedded reader, which
 * may hold bytes of the next reply between calls (pipelining).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gopro/client.h"
#include "iowait.h"
#include "reader.h"
#include "sock.h"

/* Room above max_body for the server's message_prefix on MESSAGE replies. */
#define CLIENT_REPLY_SLACK 4096u

struct gopro_client {
	int fd;
	int goaway;
	struct gopro_reader in;
	char err[512];
};

static int
fail(struct gopro_client *c, int result, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return result;
}

struct gopro_client *
gopro_client_new(void)
{
	struct gopro_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->fd = -1;
	reader_init(&c->in, GOPRO_DEFAULT_MAX_BODY + CLIENT_REPLY_SLACK);
	return c;
}

static void
disconnect(struct gopro_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->goaway = 0;
	/* Bytes of the old stream must not leak into the new one. */
	reader_reset(&c->in);
}

void
gopro_client_free(struct gopro_client *c)
{
	if (c == NULL)
		return;
	disconnect(c);
	reader_fini(&c->in);
	free(c);
}

int
gopro_client_fd(const struct gopro_client *c)
{
	return c->fd;
}

const char *
gopro_client_error(const struct gopro_client *c)
{
	return c->err;
}

void
gopro_client_set_max_reply(struct gopro_client *c, uint32_t max_body)
{
	c->in.max_body = max_body;
}

int
gopro_client_goaway(const struct gopro_client *c)
{
	return c->goaway;
}

/* ------------------------------------------------------------ connect */

/* One resolved address: GOPRO_OK with c->fd, or a failure with errno. */
static int
connect_one(struct gopro_client *c, const struct sockaddr_storage *addr,
    socklen_t len, double deadline)
{
	int done, rc, fd = sock_connect_start(addr, len, NULL, &done);

	if (fd < 0)
		return GOPRO_E_CONNECT;
	if (!done) {
		rc = iowait_fd(fd, POLLOUT, deadline);
		errno = rc == 0 ? ETIMEDOUT : rc < 0 ? errno :
		    sock_connect_error(fd);
		if (errno != 0) {
			int saved = errno;

			close(fd);
			errno = saved;
			return rc == 0 ? GOPRO_E_TIMEOUT : GOPRO_E_CONNECT;
		}
	}
	c->fd = fd;
	return GOPRO_OK;
}

int
gopro_client_connect(struct gopro_client *c, const char *address,
    double timeout)
{
	double deadline = iowait_now() + timeout;
	struct sock_addrs addrs;
	char name[300];
	int rc = GOPRO_E_CONNECT;

	disconnect(c);
	c->err[0] = '\0';
	if ((rc = sock_resolve(address, &addrs, c->err, sizeof(c->err))) != 0)
		return rc;
	for (size_t i = 0; i < addrs.n; i++) {
		rc = connect_one(c, &addrs.addr[i], addrs.len[i], deadline);
		if (rc == GOPRO_OK)
			return GOPRO_OK;
		int saved = errno;

		sock_name(&addrs.addr[i], name, sizeof(name));
		if (strcmp(name, address) == 0)
			fail(c, rc, "cannot connect to %s: %s", address,
			    strerror(saved));
		else
			fail(c, rc, "cannot connect to %s (%s): %s", address,
			    name, strerror(saved));
		if (rc == GOPRO_E_TIMEOUT)
			break;
	}
	return rc;
}

/* ------------------------------------------------------------ frames */

static int
not_connected(struct gopro_client *c)
{
	return fail(c, GOPRO_E_NOT_CONNECTED, "not connected");
}

static int
write_all(struct gopro_client *c, const uint8_t *p, size_t len,
    double deadline)
{
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		int rc;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return fail(c, GOPRO_E_CLOSED, "send: %s",
			    strerror(errno));
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			return fail(c, GOPRO_E_SYSTEM, "send: %s",
			    strerror(errno));
		else if ((rc = iowait_fd(c->fd, POLLOUT, deadline)) <= 0)
			return rc == 0 ?
			    fail(c, GOPRO_E_TIMEOUT, "send: timed out") :
			    fail(c, GOPRO_E_SYSTEM, "poll: %s",
			    strerror(errno));
	}
	return GOPRO_OK;
}

static int
send_frame(struct gopro_client *c, uint8_t command, const void *body,
    size_t len, double deadline)
{
	uint8_t hdr[GOPRO_HEADER_SIZE];
	int rc;

	if (c->fd < 0)
		return not_connected(c);
	if (len > UINT32_MAX || (len > 0 && body == NULL))
		return fail(c, GOPRO_E_INVALID, "a body of %zu bytes", len);
	gopro_header_write(hdr, command, (uint32_t)len);
	rc = write_all(c, hdr, sizeof(hdr), deadline);
	if (rc == GOPRO_OK && len > 0)
		rc = write_all(c, body, len, deadline);
	return rc;
}

int
gopro_client_send(struct gopro_client *c, uint8_t command, const void *body,
    size_t len, double timeout)
{
	return send_frame(c, command, body, len, iowait_now() + timeout);
}

/* Read once more into the reader, waiting up to the deadline. */
static int
fill(struct gopro_client *c, double deadline)
{
	for (;;) {
		size_t room;
		void *p = gopro_reader_space(&c->in, &room);
		ssize_t n;
		int rc;

		if (p == NULL)
			return fail(c, GOPRO_E_NOMEM, "out of memory for a "
			    "reply");
		n = recv(c->fd, p, room, MSG_DONTWAIT);
		if (n > 0) {
			gopro_reader_commit(&c->in, (size_t)n);
			return GOPRO_OK;
		}
		if (n == 0 || errno == ECONNRESET)
			return fail(c, GOPRO_E_CLOSED, "connection closed by "
			    "the server");
		if (errno != EAGAIN && errno != EINTR)
			return fail(c, GOPRO_E_SYSTEM, "recv: %s",
			    strerror(errno));
		if ((rc = iowait_fd(c->fd, POLLIN, deadline)) <= 0)
			return rc == 0 ?
			    fail(c, GOPRO_E_TIMEOUT, "no reply in time") :
			    fail(c, GOPRO_E_SYSTEM, "poll: %s",
			    strerror(errno));
	}
}

static int
recv_frame(struct gopro_client *c, struct gopro_frame *reply,
    double deadline)
{
	struct gopro_status st;
	int rc;

	if (c->fd < 0)
		return not_connected(c);
	for (;;) {
		rc = gopro_reader_next(&c->in, reply);
		if (rc < 0)
			return fail(c, rc, "%s", rc == GOPRO_E_TOO_LARGE ?
			    "a reply larger than the limit" :
			    "bad magic or version in a reply");
		if (rc == 0) {
			if ((rc = fill(c, deadline)) != GOPRO_OK)
				return rc;
			continue;
		}
		if (reply->header.command != GOPRO_CMD_GOAWAY)
			return GOPRO_OK;
		/* Not a reply: note it and read on. */
		c->goaway = gopro_status_parse(reply->body,
		    reply->header.length, &st) == 0 && st.code != 0 ?
		    st.code : GOPRO_GOAWAY_OTHER;
	}
}

int
gopro_client_recv(struct gopro_client *c, struct gopro_frame *reply,
    double timeout)
{
	return recv_frame(c, reply, iowait_now() + timeout);
}

int
gopro_client_request(struct gopro_client *c, uint8_t command,
    const void *body, size_t len, struct gopro_frame *reply, double timeout)
{
	double deadline = iowait_now() + timeout;
	int rc = send_frame(c, command, body, len, deadline);

	return rc != GOPRO_OK ? rc : recv_frame(c, reply, deadline);
}

/* ------------------------------------------------------------ checked */

/* An ERROR reply: its code and text into c->err. */
static int
server_error(struct gopro_client *c, const struct gopro_frame *f, int rc)
{
	struct gopro_status st = { 0 };

	if (gopro_status_parse(f->body, f->header.length, &st) < 0)
		return fail(c, GOPRO_E_PROTOCOL, "a malformed ERROR reply");
	return fail(c, rc, "ERROR %u (%s): %.*s", st.code,
	    gopro_error_name(st.code), (int)st.text_len,
	    (const char *)st.text);
}

/* Check the reply of a request that wants command back. */
static int
expect(struct gopro_client *c, const struct gopro_frame *f, uint8_t command)
{
	if (f->header.command == command)
		return GOPRO_OK;
	if (f->header.command == GOPRO_CMD_ERROR)
		return server_error(c, f, GOPRO_E_SERVER);
	return fail(c, GOPRO_E_PROTOCOL, "a %s reply where %s was expected",
	    gopro_command_name(f->header.command),
	    gopro_command_name(command));
}

int
gopro_client_heartbeat(struct gopro_client *c, const void *body, size_t len,
    double timeout)
{
	struct gopro_frame f;
	int rc = gopro_client_request(c, GOPRO_CMD_HEARTBEAT, body, len, &f,
	    timeout);

	if (rc == GOPRO_OK)
		rc = expect(c, &f, GOPRO_CMD_HEARTBEAT);
	if (rc == GOPRO_OK && (f.header.length != len ||
	    (len > 0 && memcmp(f.body, body, len) != 0)))
		rc = fail(c, GOPRO_E_PROTOCOL, "a HEARTBEAT reply with "
		    "another body");
	return rc;
}

int
gopro_client_message(struct gopro_client *c, const void *body, size_t len,
    struct gopro_frame *reply, double timeout)
{
	struct gopro_frame f;
	int rc = gopro_client_request(c, GOPRO_CMD_MESSAGE, body, len, &f,
	    timeout);

	if (rc == GOPRO_OK || rc == GOPRO_E_SERVER) {
		if (reply != NULL)
			*reply = f;
	}
	return rc == GOPRO_OK ? expect(c, &f, GOPRO_CMD_MESSAGE) : rc;
}

int
gopro_client_login(struct gopro_client *c, const char *user,
    const char *password, double timeout)
{
	uint8_t out[GOPRO_HEADER_SIZE + GOPRO_LOGIN_BODY_MAX];
	struct gopro_frame f;
	size_t n;
	int rc;

	n = gopro_login_write(out, sizeof(out), user, strlen(user), password,
	    strlen(password));
	if (n == 0)
		return fail(c, GOPRO_E_INVALID, "a user of 1 to %u and a "
		    "password of 1 to %u bytes are needed", GOPRO_USER_MAX,
		    GOPRO_PASSWORD_MAX);
	rc = gopro_client_request(c, GOPRO_CMD_LOGIN, out + GOPRO_HEADER_SIZE,
	    n - GOPRO_HEADER_SIZE, &f, timeout);
	explicit_bzero(out, sizeof(out));
	if (rc != GOPRO_OK)
		return rc;
	if (f.header.command == GOPRO_CMD_ERROR)
		return server_error(c, &f, GOPRO_E_AUTH);
	return expect(c, &f, GOPRO_CMD_LOGIN_ACK);
}
