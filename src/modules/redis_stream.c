/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * redis_stream.c - the redis_stream module: an ingest gateway.  Every
 * request on its commands (MESSAGE by default) is appended to a Redis
 * stream with XADD key [MAXLEN ~ n] * body <body> client <address>
 * [user <user>], and the reply is the entry id Redis gave it.
 *
 * It uses hiredis's asynchronous API on the worker's own libev loop
 * (hiredis ships the libev adapter): one pipelined connection per worker,
 * no threads.  Every request gets an answer: an entry id, or ERROR 10
 * when Redis is not connected, refuses the command, or the connection is
 * lost before the reply (hiredis calls every pending callback with no
 * reply then).  The connection is made again with a back-off from 100 ms
 * up to the "reconnect" option.  When Redis is slow, requests wait at the
 * module and goprod's max_inflight pushes back on the clients.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libev.h>

#include "gopro/gopro.h"
#include "gopro/module.h"

#define BACKOFF_FIRST 0.1

enum { OPT_HOST, OPT_PORT, OPT_KEY, OPT_MAXLEN, OPT_RECONNECT, NOPTS };

struct rs {
	const struct gopro_module_api *api;
	const char *host;
	int port;
	const char *key;
	long long maxlen;
	double reconnect_max;
	double backoff;
	redisAsyncContext *ac;     /* NULL while disconnected */
	bool connected;
	bool stopping;
	ev_timer retry;
};

static void rs_connect(struct rs *rs);

static void
retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	rs_connect(t->data);
}

static void
schedule_retry(struct rs *rs)
{
	if (rs->stopping)
		return;
	ev_timer_stop(rs->api->loop(), &rs->retry);
	ev_timer_set(&rs->retry, rs->backoff, 0);
	ev_timer_start(rs->api->loop(), &rs->retry);
	rs->backoff *= 2;
	if (rs->backoff > rs->reconnect_max)
		rs->backoff = rs->reconnect_max;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct rs *rs = ac->data;

	if (status != REDIS_OK) {
		rs->api->log(LOG_WARNING, "redis_stream: cannot connect to "
		    "%s:%d: %s", rs->host, rs->port, ac->errstr);
		rs->ac = NULL;	/* hiredis frees it */
		schedule_retry(rs);
		return;
	}
	rs->connected = true;
	rs->backoff = BACKOFF_FIRST;
	rs->api->log(LOG_INFO, "redis_stream: connected to %s:%d", rs->host,
	    rs->port);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rs *rs = ac->data;

	if (status != REDIS_OK)
		rs->api->log(LOG_WARNING, "redis_stream: lost %s:%d: %s",
		    rs->host, rs->port, ac->errstr);
	rs->ac = NULL;
	rs->connected = false;
	schedule_retry(rs);
}

static void
rs_connect(struct rs *rs)
{
	redisAsyncContext *ac = redisAsyncConnect(rs->host, rs->port);

	if (ac == NULL || ac->err) {
		rs->api->log(LOG_WARNING, "redis_stream: cannot connect to "
		    "%s:%d: %s", rs->host, rs->port, ac ? ac->errstr :
		    "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		schedule_retry(rs);
		return;
	}
	ac->data = rs;
	redisLibevAttach(rs->api->loop(), ac);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rs->ac = ac;
}

/* The reply of one XADD: the entry id, or ERROR 10. */
static void
on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rs *rs = ac->data;
	gopro_request_id id = (gopro_request_id)(uintptr_t)privdata;
	redisReply *reply = r;

	if (reply == NULL)
		rs->api->complete_error(id, GOPRO_MODULE_ERR_UNAVAILABLE,
		    "redis connection lost");
	else if (reply->type == REDIS_REPLY_STRING)
		rs->api->complete(id, GOPRO_CMD_MESSAGE, reply->str,
		    (size_t)reply->len);
	else
		rs->api->complete_error(id, GOPRO_MODULE_ERR_UNAVAILABLE,
		    reply->type == REDIS_REPLY_ERROR ? reply->str :
		    "unexpected reply from redis");
}

static void
client_text(const struct rs *rs, const struct gopro_request *req, char *buf,
    size_t len)
{
	const struct sockaddr *sa = rs->api->client_addr(req->conn, NULL);
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%u", ip, port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%u", ip, port);
	}
}

static void
rs_request(void *state, const struct gopro_request *req)
{
	struct rs *rs = state;
	const char *argv[12];
	size_t argl[12];
	char maxlen[24], client[80];
	const char *user = rs->api->user(req->conn);
	int n = 0;

	if (rs->ac == NULL || !rs->connected) {
		rs->api->complete_error(req->id, GOPRO_MODULE_ERR_UNAVAILABLE,
		    "redis unavailable");
		return;
	}
	client_text(rs, req, client, sizeof(client));
#define ARG(s, l) (argv[n] = (s), argl[n] = (l), n++)
	ARG("XADD", 4);
	ARG(rs->key, strlen(rs->key));
	if (rs->maxlen > 0) {
		snprintf(maxlen, sizeof(maxlen), "%lld", rs->maxlen);
		ARG("MAXLEN", 6);
		ARG("~", 1);
		ARG(maxlen, strlen(maxlen));
	}
	ARG("*", 1);
	ARG("body", 4);
	ARG((const char *)req->body, req->len);
	ARG("client", 6);
	ARG(client, strlen(client));
	if (user != NULL) {
		ARG("user", 4);
		ARG(user, strlen(user));
	}
#undef ARG
	if (redisAsyncCommandArgv(rs->ac, on_reply,
	    (void *)(uintptr_t)req->id, n, argv, argl) != REDIS_OK)
		rs->api->complete_error(req->id, GOPRO_MODULE_ERR_UNAVAILABLE,
		    "redis unavailable");
}

static int
rs_init(const struct gopro_module_api *api,
    const union gopro_option_value *opts, void **state, char *err,
    size_t errlen)
{
	struct rs *rs = calloc(1, sizeof(*rs));

	if (rs == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rs->api = api;
	rs->host = opts[OPT_HOST].s;
	rs->port = (int)opts[OPT_PORT].i;
	rs->key = opts[OPT_KEY].s;
	rs->maxlen = opts[OPT_MAXLEN].i;
	rs->reconnect_max = opts[OPT_RECONNECT].seconds;
	rs->backoff = BACKOFF_FIRST;
	ev_init(&rs->retry, retry_cb);
	rs->retry.data = rs;
	rs_connect(rs);
	*state = rs;
	return 0;
}

static void
rs_exit(void *state)
{
	struct rs *rs = state;

	rs->stopping = true;
	ev_timer_stop(rs->api->loop(), &rs->retry);
	/* Pending callbacks run now, with no reply: ERROR 10, dropped. */
	if (rs->ac != NULL)
		redisAsyncFree(rs->ac);
	free(rs);
}

static int
rs_check(const union gopro_option_value *opts, char *err, size_t errlen)
{
	if (*opts[OPT_KEY].s == '\0' || *opts[OPT_HOST].s == '\0') {
		snprintf(err, errlen, "host and key must not be empty");
		return -1;
	}
	return 0;
}

static const uint8_t rs_commands[] = { GOPRO_CMD_MESSAGE };

static const struct gopro_module_option rs_options[NOPTS] = {
	[OPT_HOST] = { "host", GOPRO_OPTION_STRING, "127.0.0.1", 0, 255,
	    "Redis address (name or IP)" },
	[OPT_PORT] = { "port", GOPRO_OPTION_INT, "6379", 1, 65535,
	    "Redis port" },
	[OPT_KEY] = { "key", GOPRO_OPTION_STRING, "gopro", 0, 255,
	    "the stream's key" },
	[OPT_MAXLEN] = { "maxlen", GOPRO_OPTION_INT, "0", 0, 1e12,
	    "XADD MAXLEN ~ n (0: no trimming)" },
	[OPT_RECONNECT] = { "reconnect", GOPRO_OPTION_TIME, "5s", 0.1, 3600,
	    "longest wait between two connection attempts" },
};

GOPRO_MODULE_EXPORT const struct gopro_module gopro_module = {
	GOPRO_MODULE_HEADER,
	.name = "redis_stream",
	.commands = rs_commands,
	.ncommands = 1,
	.options = rs_options,
	.noptions = NOPTS,
	.check = rs_check,
	.worker_init = rs_init,
	.request = rs_request,
	.worker_exit = rs_exit,
};
