/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_verify.c - what gopro-bench sends and how it checks what comes
 * back.
 *
 * Requests are built once, before the run (the plan); sending one is a
 * memcpy and an 8-byte patch of its number.  libgopro's async client
 * matches each reply with its request (they come in order); the reply is
 * compared with the template of that request, byte for byte, by the
 * inline bench_reply_check of bench.h (it runs in every reply callback),
 * and an ERROR in its place is counted by code here, with the verdict the
 * connection acts on (the server closes after some codes).  Nothing here
 * touches a socket, so the tests can hand it any frame.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* The largest reply body taken when bodies are not compared. */
#define ANY_BODY_MAX 65536u

static const char *const error_names[BENCH_ERR_COUNT] = {
#define BENCH_ERR_NAME(name, text) text,
	BENCH_ERRORS(BENCH_ERR_NAME)
#undef BENCH_ERR_NAME
};

static const char *const error_keys[BENCH_ERR_COUNT] = {
	"wrong_command", "wrong_length", "wrong_body", "out_of_order",
	"error_reply", "unexpected_frame", "bad_frame", "timeout",
	"connect_failed", "closed_by_server",
};

const char *
bench_error_name(enum bench_error e)
{
	return (unsigned)e < BENCH_ERR_COUNT ? error_names[e] : "unknown";
}

const char *
bench_error_key(enum bench_error e)
{
	return (unsigned)e < BENCH_ERR_COUNT ? error_keys[e] : "unknown";
}

/* ------------------------------------------------------------ the plan */

/* A recognisable, printable body: "abcd...zabc...". */
static void
fill_body(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)('a' + i % 26);
}

static int
template_alloc(struct bench_template *t, size_t req, size_t reply)
{
	t->request = malloc(req);
	t->reply = malloc(reply);
	if (t->request == NULL || t->reply == NULL)
		return -1;
	t->request_len = req;
	t->reply_len = reply;
	return 0;
}

/* HEARTBEAT (prefix empty) or MESSAGE: reply = prefix + request body. */
static int
plan_echo(struct bench_template *t, uint8_t cmd, size_t body,
    const char *prefix)
{
	size_t plen = prefix ? strlen(prefix) : 0;

	if (body + plen > UINT32_MAX - GOPRO_HEADER_SIZE ||
	    template_alloc(t, GOPRO_HEADER_SIZE + body,
	    GOPRO_HEADER_SIZE + plen + body) < 0)
		return -1;
	gopro_header_write(t->request, cmd, (uint32_t)body);
	fill_body(t->request + GOPRO_HEADER_SIZE, body);
	gopro_header_write(t->reply, cmd, (uint32_t)(plen + body));
	memcpy(t->reply + GOPRO_HEADER_SIZE, prefix ? prefix : "", plen);
	fill_body(t->reply + GOPRO_HEADER_SIZE + plen, body);
	if (body >= BENCH_SEQ_SIZE) {
		t->seq_req_at = GOPRO_HEADER_SIZE;
		t->seq_reply_at = GOPRO_HEADER_SIZE + plen;
	}
	return 0;
}

static int
plan_login(struct bench_template *t, const char *user, const char *password)
{
	size_t ulen = strlen(user), plen = strlen(password);
	size_t len = GOPRO_HEADER_SIZE + ulen + 1 + plen;

	if (template_alloc(t, len, GOPRO_HEADER_SIZE + 2) < 0)
		return -1;
	if (gopro_login_write(t->request, len, user, ulen, password, plen) !=
	    len) {
		errno = EINVAL;
		return -1;
	}
	gopro_frame_write(t->reply, t->reply_len, GOPRO_CMD_LOGIN_ACK, "OK", 2);
	return 0;
}

static void
plan_limits(struct bench_plan *p)
{
	p->max_reply_body = 2 + GOPRO_TEXT_MAX;
	for (int k = 0; k < BENCH_KINDS; k++) {
		const struct bench_template *t = &p->t[k];
		if (t->reply_len - GOPRO_HEADER_SIZE > p->max_reply_body)
			p->max_reply_body =
			    (uint32_t)(t->reply_len - GOPRO_HEADER_SIZE);
		if (t->request_len > p->max_request)
			p->max_request = t->request_len;
		if (t->reply_len > p->max_reply)
			p->max_reply = t->reply_len;
	}
}

int
bench_plan_init(struct bench_plan *p, const struct bench_plan_conf *conf,
    char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (plan_echo(&p->t[BENCH_HEARTBEAT], GOPRO_CMD_HEARTBEAT, conf->body,
	    NULL) < 0 ||
	    plan_echo(&p->t[BENCH_MESSAGE], GOPRO_CMD_MESSAGE, conf->body,
	    conf->prefix) < 0)
		goto fail;
	if (conf->user != NULL) {
		if (plan_login(&p->t[BENCH_LOGIN], conf->user,
		    conf->password ? conf->password : "") < 0)
			goto fail;
	} else if (template_alloc(&p->t[BENCH_LOGIN], GOPRO_HEADER_SIZE,
	    GOPRO_HEADER_SIZE) == 0) {
		/* Never sent: a harmless placeholder keeps the table full. */
		gopro_header_write(p->t[BENCH_LOGIN].request, GOPRO_CMD_LOGIN, 0);
		gopro_header_write(p->t[BENCH_LOGIN].reply, GOPRO_CMD_LOGIN_ACK,
		    0);
	} else
		goto fail;
	p->any_body = conf->any_body;
	plan_limits(p);
	if (p->any_body && p->max_reply_body < ANY_BODY_MAX)
		p->max_reply_body = ANY_BODY_MAX;
	return 0;
fail:
	snprintf(err, errlen, "cannot build the requests (body %zu bytes): %s",
	    conf->body, strerror(errno ? errno : ENOMEM));
	bench_plan_free(p);
	return -1;
}

void
bench_plan_free(struct bench_plan *p)
{
	for (int k = 0; k < BENCH_KINDS; k++) {
		free(p->t[k].request);
		free(p->t[k].reply);
	}
	memset(p, 0, sizeof(*p));
}

size_t
bench_plan_write(const struct bench_plan *p, enum bench_kind k, uint64_t seq,
    uint8_t *out)
{
	const struct bench_template *t = &p->t[k];

	memcpy(out, t->request, t->request_len);
	if (t->seq_req_at)
		bench_seq_put(out + t->seq_req_at, seq);
	return t->request_len;
}

/* ------------------------------------------------------------ replies */

/*
 * Error codes after which the server closes the connection.  A busy
 * answer to a LOGIN (its check could not be queued) leaves it open.
 */
static bool
error_closes(uint16_t code, const struct bench_pending *e)
{
	if (code == GOPRO_ERR_BUSY)
		return e->kind != BENCH_LOGIN;
	return code == GOPRO_ERR_BAD_MAGIC || code == GOPRO_ERR_BAD_VERSION ||
	    code == GOPRO_ERR_TOO_LARGE || code == GOPRO_ERR_TIMEOUT;
}

enum bench_reply
bench_reply_error(const struct bench_pending *e, const struct gopro_frame *f,
    struct bench_stats *st)
{
	struct gopro_status status;

	if (gopro_status_parse(f->body, f->header.length, &status) != 0) {
		st->errors[BENCH_ERR_PROTOCOL]++;
		return BENCH_REPLY_BROKEN;
	}
	st->server_errors[status.code <= GOPRO_ERR_MAX ? status.code :
	    BENCH_SERVER_ERR_SLOTS - 1]++;
	st->errors[BENCH_ERR_SERVER]++;
	return error_closes(status.code, e) ? BENCH_REPLY_CLOSING :
	    BENCH_REPLY_WRONG;
}

void
bench_reply_missing(struct bench_stats *st, bool timeout)
{
	if (timeout)
		st->errors[BENCH_ERR_TIMEOUT]++;
	else
		st->lost++;
}
