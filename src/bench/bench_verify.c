/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_verify.c - what gopro-bench sends and how it checks what comes
 * back.
 *
 * Requests are built once, before the run (the plan); sending one is a
 * memcpy and an 8-byte patch of its number.  Each connection keeps a
 * stream: the bytes read so far and a ring of the requests still owed a
 * reply.  Replies come in request order, so every complete frame is
 * compared with the template of the oldest request owed, byte for byte.
 * ERROR and GOAWAY frames are the server speaking for itself: they are
 * counted and turned into flags (stop sending, the server will close, the
 * stream is broken) that the connection acts on.  Nothing here touches a
 * socket, so the tests can feed a stream any bytes split anywhere.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Smallest read worth making; large frames get their whole rest at once. */
#define READ_MIN 4096u
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

static void
put_seq(uint8_t *p, uint64_t seq)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)seq;
		seq >>= 8;
	}
}

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
		put_seq(out + t->seq_req_at, seq);
	return t->request_len;
}

int
bench_plan_check(const struct bench_plan *p, enum bench_kind k, uint64_t seq,
    const struct gopro_frame *f)
{
	const struct bench_template *t = &p->t[k];
	const uint8_t *want = t->reply + GOPRO_HEADER_SIZE;
	size_t at, len = f->header.length;
	uint8_t num[BENCH_SEQ_SIZE];

	if (f->header.command != t->reply[3])
		return BENCH_ERR_COMMAND;
	if (p->any_body)
		return -1;
	if (len != t->reply_len - GOPRO_HEADER_SIZE)
		return BENCH_ERR_LENGTH;
	if (t->seq_reply_at == 0)
		return memcmp(f->body, want, len) == 0 ? -1 : BENCH_ERR_BODY;
	at = t->seq_reply_at - GOPRO_HEADER_SIZE;
	at += BENCH_SEQ_SIZE;
	if (memcmp(f->body, want, at - BENCH_SEQ_SIZE) != 0 ||
	    memcmp(f->body + at, want + at, len - at) != 0)
		return BENCH_ERR_BODY;
	put_seq(num, seq);
	if (memcmp(f->body + at - BENCH_SEQ_SIZE, num, BENCH_SEQ_SIZE) != 0)
		return BENCH_ERR_ORDER;
	return -1;
}

/* ------------------------------------------------------------ streams */

int
bench_stream_init(struct bench_stream *s, unsigned depth, size_t in_cap)
{
	memset(s, 0, sizeof(*s));
	s->qcap = depth;
	s->q = calloc(depth, sizeof(*s->q));
	if (s->q == NULL)
		return -1;
	/* The limit on a reply body is the plan's, set when replies come. */
	reader_init(&s->in, 0);
	s->in.chunk = READ_MIN;
	if (buf_init(&s->in.in, in_cap) < 0) {
		free(s->q);
		s->q = NULL;
		return -1;
	}
	return 0;
}

void
bench_stream_free(struct bench_stream *s)
{
	reader_fini(&s->in);
	free(s->q);
	memset(s, 0, sizeof(*s));
}

void
bench_stream_reset(struct bench_stream *s)
{
	reader_reset(&s->in);
	s->qhead = s->qlen = 0;
	s->goaway = s->doomed = s->broken = false;
	s->last_error = 0;
	s->setup_done = s->setup_failed = 0;
}

void
bench_stream_push(struct bench_stream *s, enum bench_kind k, uint64_t seq,
    uint64_t t0, uint8_t flags)
{
	unsigned i = s->qhead + s->qlen;
	struct bench_pending *e;

	if (i >= s->qcap)
		i -= s->qcap;
	e = &s->q[i];
	e->t0 = t0;
	e->seq = seq;
	e->kind = (uint8_t)k;
	e->flags = flags;
	s->qlen++;
}

static struct bench_pending
stream_pop(struct bench_stream *s)
{
	struct bench_pending e = s->q[s->qhead];

	if (++s->qhead == s->qcap)
		s->qhead = 0;
	s->qlen--;
	return e;
}

uint64_t
bench_stream_oldest(const struct bench_stream *s)
{
	return s->qlen ? s->q[s->qhead].t0 : 0;
}

uint8_t *
bench_stream_room(struct bench_stream *s, size_t *room)
{
	return gopro_reader_space(&s->in, room);
}

void
bench_stream_commit(struct bench_stream *s, size_t n)
{
	gopro_reader_commit(&s->in, n);
}

/*
 * Error codes after which the server closes the connection.  A busy
 * answer to a LOGIN (its check could not be queued) leaves it open.
 */
static bool
error_closes(uint16_t code, const struct bench_stream *s)
{
	if (code == GOPRO_ERR_BUSY)
		return s->qlen == 0 || s->q[s->qhead].kind != BENCH_LOGIN;
	return code == GOPRO_ERR_BAD_MAGIC || code == GOPRO_ERR_BAD_VERSION ||
	    code == GOPRO_ERR_TOO_LARGE || code == GOPRO_ERR_TIMEOUT;
}

/* Parse an ERROR or GOAWAY body; a malformed one breaks the stream. */
static bool
stream_status(struct bench_stream *s, const struct gopro_frame *f,
    struct bench_stats *st, struct gopro_status *status)
{
	if (gopro_status_parse(f->body, f->header.length, status) == 0)
		return true;
	st->errors[BENCH_ERR_PROTOCOL]++;
	s->broken = true;
	return false;
}

static void
stream_error_frame(struct bench_stream *s, const struct gopro_frame *f,
    struct bench_stats *st)
{
	struct gopro_status status;

	if (!stream_status(s, f, st, &status))
		return;
	st->server_errors[status.code <= GOPRO_ERR_MAX ? status.code :
	    BENCH_SERVER_ERR_SLOTS - 1]++;
	st->errors[BENCH_ERR_SERVER]++;
	s->last_error = status.code;
	if (error_closes(status.code, s))
		s->doomed = true;
	/* An ERROR in place of a reply answers the oldest request. */
	if (s->qlen > 0 && stream_pop(s).flags & BENCH_PENDING_SETUP)
		s->setup_failed++;
}

static void
stream_goaway(struct bench_stream *s, const struct gopro_frame *f,
    struct bench_stats *st)
{
	struct gopro_status status;

	if (!stream_status(s, f, st, &status))
		return;
	if (!s->goaway)
		st->goaways++;
	s->goaway = true;
}

static void
stream_reply(struct bench_stream *s, const struct bench_plan *p,
    const struct gopro_frame *f, uint64_t now, struct bench_stats *st)
{
	struct bench_pending e;
	int bad;

	if (s->qlen == 0) {
		/* Nothing owed: the stream is out of step for good. */
		st->errors[BENCH_ERR_UNEXPECTED]++;
		s->broken = true;
		return;
	}
	e = stream_pop(s);
	bad = bench_plan_check(p, (enum bench_kind)e.kind, e.seq, f);
	if (bad >= 0) {
		st->errors[bad]++;
		if (e.flags & BENCH_PENDING_SETUP)
			s->setup_failed++;
		return;
	}
	if (e.flags & BENCH_PENDING_SETUP) {
		s->setup_done++;
		st->setup++;
	} else if (e.flags & BENCH_PENDING_MEASURED) {
		st->ok++;
		bench_hist_record(&st->hist, now > e.t0 ? now - e.t0 : 0, 1);
		st->last_reply_ns = now;
	} else
		st->warmup++;
}

void
bench_stream_process(struct bench_stream *s, const struct bench_plan *p,
    uint64_t now, struct bench_stats *st)
{
	struct gopro_frame f;
	int rc;

	s->in.max_body = p->max_reply_body;
	while (!s->broken) {
		rc = gopro_reader_next(&s->in, &f);
		if (rc == 0)
			return;
		if (rc < 0) {
			st->errors[BENCH_ERR_PROTOCOL]++;
			s->broken = true;
			return;
		}
		if (f.header.command == GOPRO_CMD_GOAWAY)
			stream_goaway(s, &f, st);
		else if (f.header.command == GOPRO_CMD_ERROR)
			stream_error_frame(s, &f, st);
		else
			stream_reply(s, p, &f, now, st);
	}
}

unsigned
bench_stream_abandon(struct bench_stream *s, struct bench_stats *st,
    bool timeout)
{
	unsigned n = s->qlen;

	if (timeout)
		st->errors[BENCH_ERR_TIMEOUT] += n;
	else
		st->lost += n;
	bench_stream_reset(s);
	return n;
}
