/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctl.c - the control channel (see ctl.h): the master's side, a unix socket
 * served from its libev loop, and goproctl's side, a blocking call with a
 * deadline.
 *
 * The master must never wait for a client: every client socket is
 * non-blocking, a request is one line of at most CTL_REQUEST_MAX bytes that
 * must arrive, and its reply leave, within CTL_CLIENT_TIMEOUT, and only
 * CTL_CLIENTS_MAX clients are served at once (more are closed at once).
 */
#include "config.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "iowait.h"
#include "log.h"
#include "unixsock.h"

#define CTL_CLIENTS_MAX 16
#define CTL_CLIENT_TIMEOUT 2.0
#define CTL_BACKLOG 16

struct ctl_client {
	struct ctl_server *server;
	int fd;                       /* -1 when the slot is free */
	ev_io io;
	ev_timer timer;
	char in[CTL_REQUEST_MAX + 1];
	size_t inlen;
	char *out;                    /* status line and reply */
	size_t outlen, outoff;
};

struct ctl_server {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct unixsock_file file;    /* the one we bound: stop never */
	                              /* unlinks a successor's */
	ctl_handler handler;
	void *arg;
	struct ctl_client *current;   /* the client whose command runs */
	struct ctl_client clients[CTL_CLIENTS_MAX];
};

/* ------------------------------------------------------------ clients */

static void
peer_close(struct ctl_client *c)
{
	struct ev_loop *loop = c->server->loop;

	ev_io_stop(loop, &c->io);
	ev_timer_stop(loop, &c->timer);
	close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
}

/* Send what the socket takes now: true when done (or failed for good). */
static bool
client_flush(struct ctl_client *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff,
		    c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return false;
		if (n < 0) {
			log_debug("control client: write: %s", strerror(errno));
			return true;
		}
		c->outoff += (size_t)n;
	}
	return true;
}

static void
client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_client *c = w->data;

	if (client_flush(c))
		peer_close(c);
}

/* Queue "ok\n" or "error\n", then the detail text ending in a newline. */
static void
client_reply(struct ctl_client *c, bool ok, const char *detail)
{
	size_t dlen = strlen(detail);
	bool nl = dlen > 0 && detail[dlen - 1] != '\n';
	const char *status = ok ? "ok\n" : "error\n";
	size_t slen = strlen(status);

	c->out = malloc(slen + dlen + 2);
	if (c->out == NULL) {
		log_warn("control client: no memory for the reply");
		peer_close(c);
		return;
	}
	memcpy(c->out, status, slen);
	memcpy(c->out + slen, detail, dlen);
	c->outlen = slen + dlen;
	if (nl)
		c->out[c->outlen++] = '\n';
	c->outoff = 0;
	/*
	 * Written at once: the reply nearly always fits the socket buffer,
	 * and a handler that stops the loop ("stop now" with no worker left)
	 * must still have its answer delivered.
	 */
	if (client_flush(c)) {
		peer_close(c);
		return;
	}
	ev_io_stop(c->server->loop, &c->io);
	ev_io_init(&c->io, client_write_cb, c->fd, EV_WRITE);
	c->io.data = c;
	ev_io_start(c->server->loop, &c->io);
}

static void
client_run(struct ctl_client *c, char *command)
{
	struct ctl_server *s = c->server;
	char *reply;
	int rc;

	if (strlen(command) > 0 && command[strlen(command) - 1] == '\r')
		command[strlen(command) - 1] = '\0';
	reply = calloc(1, CTL_REPLY_MAX);
	if (reply == NULL) {
		client_reply(c, false, "out of memory");
		return;
	}
	s->current = c;
	rc = s->handler(command, reply, CTL_REPLY_MAX, s->arg);
	s->current = NULL;
	reply[CTL_REPLY_MAX - 1] = '\0';
	/* A handler that took the client answers it later itself. */
	if (c->fd >= 0)
		client_reply(c, rc == 0, reply);
	free(reply);
}

/* The request is complete at a newline, or at EOF after some bytes. */
static void
client_parse(struct ctl_client *c, bool eof)
{
	char *nl = memchr(c->in, '\n', c->inlen);

	if (memchr(c->in, '\0', c->inlen) != NULL) {
		client_reply(c, false, "request holds a NUL byte");
		return;
	}
	if (nl != NULL || (eof && c->inlen > 0)) {
		if (nl != NULL)
			*nl = '\0';
		c->in[c->inlen] = '\0';
		client_run(c, c->in);
	} else if (eof)
		peer_close(c);
	else if (c->inlen == CTL_REQUEST_MAX)
		client_reply(c, false, "request too long");
}

static void
client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_client *c = w->data;
	ssize_t n;

	n = recv(c->fd, c->in + c->inlen, CTL_REQUEST_MAX - c->inlen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		log_debug("control client: read: %s", strerror(errno));
		peer_close(c);
		return;
	}
	c->inlen += (size_t)n;
	client_parse(c, n == 0);
}

static void
client_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ctl_client *c = t->data;

	log_debug("control client timed out after %.0fs", CTL_CLIENT_TIMEOUT);
	peer_close(c);
}

static struct ctl_client *
client_slot(struct ctl_server *s)
{
	for (int i = 0; i < CTL_CLIENTS_MAX; i++)
		if (s->clients[i].fd < 0)
			return &s->clients[i];
	return NULL;
}

static void
client_start(struct ctl_server *s, int fd)
{
	struct ctl_client *c = client_slot(s);

	if (c == NULL) {
		log_warnx("control socket %s: %d clients already, closing a new "
		    "one", s->path, CTL_CLIENTS_MAX);
		close(fd);
		return;
	}
	c->fd = fd;
	c->inlen = 0;
	ev_io_init(&c->io, client_read_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(s->loop, &c->io);
	ev_timer_init(&c->timer, client_timeout_cb, CTL_CLIENT_TIMEOUT, 0);
	c->timer.data = c;
	ev_timer_start(s->loop, &c->timer);
}

static void
server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_server *s = w->data;

	for (;;) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("control socket %s: accept", s->path);
			return;
		}
		client_start(s, fd);
	}
}

/* ------------------------------------------------------------ server */

#define CTL_WHAT "control socket"
#define CTL_LIVE "another goprod master is answering on it"

static struct ctl_server *
server_new(struct ev_loop *loop, const char *path, ctl_handler handler,
    void *arg)
{
	struct ctl_server *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->loop = loop;
	s->fd = -1;
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->handler = handler;
	s->arg = arg;
	for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
		s->clients[i].fd = -1;
		s->clients[i].server = s;
	}
	return s;
}

struct ctl_server *
ctl_server_start(struct ev_loop *loop, const char *path, uid_t uid,
    gid_t gid, ctl_handler handler, void *arg, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct ctl_server *s;

	if (unixsock_addr(&sun, path, CTL_WHAT, err, errlen) < 0 ||
	    unixsock_clear_stale(&sun, true, CTL_WHAT, CTL_LIVE, err,
	    errlen) < 0)
		return NULL;
	if ((s = server_new(loop, path, handler, arg)) == NULL) {
		snprintf(err, errlen, "control socket %s: out of memory", path);
		return NULL;
	}
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		snprintf(err, errlen, "control socket %s: %s", path,
		    strerror(errno));
		free(s);
		return NULL;
	}
	/* 0660: goproctl must be in the group to talk to the master. */
	if (unixsock_bind(s->fd, &sun, 0660, uid, gid, CTL_BACKLOG, &s->file,
	    CTL_WHAT, err, errlen) < 0) {
		close(s->fd);
		free(s);
		return NULL;
	}
	ev_io_init(&s->io, server_accept_cb, s->fd, EV_READ);
	s->io.data = s;
	ev_io_start(loop, &s->io);
	return s;
}

void
ctl_server_stop(struct ctl_server *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
		if (s->clients[i].fd < 0)
			continue;
		(void)client_flush(&s->clients[i]);
		peer_close(&s->clients[i]);
	}
	ev_io_stop(s->loop, &s->io);
	close(s->fd);
	if (unixsock_remove(s->path, &s->file) < 0)
		log_warn("cannot remove control socket %s", s->path);
	free(s);
}

struct ctl_server *
ctl_server_adopt(struct ev_loop *loop, int fd, const char *path,
    ctl_handler handler, void *arg, char *err, size_t errlen)
{
	struct ctl_server *s;

	if ((s = server_new(loop, path, handler, arg)) == NULL) {
		snprintf(err, errlen, "control socket %s: out of memory", path);
		return NULL;
	}
	/* The file is our predecessor's: stop may unlink it if it still is. */
	unixsock_file_of(path, &s->file);
	s->fd = fd;
	ev_io_init(&s->io, server_accept_cb, s->fd, EV_READ);
	s->io.data = s;
	ev_io_start(loop, &s->io);
	return s;
}

int
ctl_server_fd(const struct ctl_server *s)
{
	return s == NULL ? -1 : s->fd;
}

int
ctl_server_take_client(struct ctl_server *s)
{
	struct ctl_client *c = s->current;
	int fd;

	if (c == NULL || c->fd < 0)
		return -1;
	fd = c->fd;
	ev_io_stop(s->loop, &c->io);
	ev_timer_stop(s->loop, &c->timer);
	c->fd = -1;
	return fd;
}

void
ctl_reply_fd(int fd, bool ok, const char *detail)
{
	char buf[CTL_REPLY_MAX + 8];
	size_t len, off = 0;

	len = (size_t)snprintf(buf, sizeof(buf), "%s\n%s%s", ok ? "ok" :
	    "error", detail, *detail && detail[strlen(detail) - 1] != '\n' ?
	    "\n" : "");
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	/* A reply this small fits an idle socket buffer: never wait for it. */
	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_debug("control client: write: %s", strerror(errno));
			break;
		}
		off += (size_t)n;
	}
	close(fd);
}

void
ctl_server_close_fds(struct ctl_server *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
		if (s->clients[i].fd >= 0)
			close(s->clients[i].fd);
		s->clients[i].fd = -1;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* ------------------------------------------------------------ client */

static int
call_connect(const char *path)
{
	struct sockaddr_un sun;
	char e[512];
	int fd, err;

	if (unixsock_addr(&sun, path, CTL_WHAT, e, sizeof(e)) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	/* A full backlog gives EAGAIN on a unix socket: the master is busy. */
	err = errno == EAGAIN ? ETIMEDOUT : errno;
	close(fd);
	errno = err;
	return -1;
}

static int
call_send(int fd, const char *command, double deadline)
{
	char line[CTL_REQUEST_MAX + 1]; /* the server's limit, newline included */
	size_t len, off = 0;

	len = (size_t)snprintf(line, sizeof(line), "%s\n", command);
	if (len >= sizeof(line)) {
		errno = EMSGSIZE;
		return -1;
	}
	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (n >= 0)
			off += (size_t)n;
		else if (errno != EAGAIN && errno != EINTR)
			return -1;
		else if (iowait_fd(fd, POLLOUT, deadline) <= 0)
			return errno = ETIMEDOUT, -1;
	}
	return 0;
}

/* Read until EOF; what does not fit in reply is read and dropped. */
static int
call_receive(int fd, char *reply, size_t len, double deadline)
{
	size_t have = 0;
	char sink[512];

	for (;;) {
		bool room = have + 1 < len;
		ssize_t n = recv(fd, room ? reply + have : sink,
		    room ? len - 1 - have : sizeof(sink), 0);

		if (n == 0)
			break;
		if (n > 0 && room)
			have += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		else if (n < 0 && iowait_fd(fd, POLLIN, deadline) <= 0)
			return errno = ETIMEDOUT, -1;
	}
	reply[have] = '\0';
	return 0;
}

static int
call_status(const char *reply)
{
	if (strncmp(reply, "ok\n", 3) == 0)
		return 0;
	if (strncmp(reply, "error\n", 6) == 0)
		return 1;
	errno = EPROTO;
	return -1;
}

int
ctl_call(const char *path, const char *command, char *reply, size_t len,
    double timeout)
{
	double deadline = iowait_now() + timeout;
	int fd, rc = -1, saved;

	if (len == 0) {
		errno = EINVAL;
		return -1;
	}
	reply[0] = '\0';
	if ((fd = call_connect(path)) < 0)
		return -1;
	if (call_send(fd, command, deadline) == 0 &&
	    call_receive(fd, reply, len, deadline) == 0)
		rc = call_status(reply);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}
