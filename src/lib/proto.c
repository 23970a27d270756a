/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * proto.c - the GoPro codec: pure functions from bytes to frames and back.
 *
 * The decoder is incremental: it is handed whatever a connection has read
 * so far and never looks past len.  Every length from the wire is checked
 * against the caller's limit before anything is derived from it, so a
 * hostile header cannot make a caller allocate or read more than it allows.
 */
#include <string.h>

#include "decode.h"
#include "gopro/gopro.h"

static uint16_t
get_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static void
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Check the header fields present in buf[0..len), in wire order. */
static enum gopro_decode_status
check_partial_header(const uint8_t *buf, size_t len)
{
	if (len >= 1 && buf[0] != (GOPRO_MAGIC >> 8))
		return GOPRO_DECODE_BAD_MAGIC;
	if (len >= 2 && buf[1] != (GOPRO_MAGIC & 0xFF))
		return GOPRO_DECODE_BAD_MAGIC;
	if (len >= 3 && buf[2] != GOPRO_VERSION)
		return GOPRO_DECODE_BAD_VERSION;
	return GOPRO_DECODE_NEED_MORE;
}

enum gopro_decode_status
gopro_decode(const uint8_t *buf, size_t len, uint32_t max_body,
    struct gopro_frame *frame, size_t *need)
{
	enum gopro_decode_status st;
	uint64_t total;

	if (gopro_decode_whole(buf, len, max_body, frame))
		return GOPRO_DECODE_FRAME;
	st = check_partial_header(buf, len);
	if (st != GOPRO_DECODE_NEED_MORE)
		return st;
	if (len < GOPRO_HEADER_SIZE) {
		if (need)
			*need = GOPRO_HEADER_SIZE - len;
		return GOPRO_DECODE_NEED_MORE;
	}
	frame->header.magic = get_be16(buf);
	frame->header.version = buf[2];
	frame->header.command = buf[3];
	frame->header.length = decode_be32(buf + 4);
	if (frame->header.length > max_body)
		return GOPRO_DECODE_TOO_LARGE;
	total = (uint64_t)GOPRO_HEADER_SIZE + frame->header.length;
	if (len < total) {
		if (need)
			*need = (size_t)(total - len);
		return GOPRO_DECODE_NEED_MORE;
	}
	frame->body = buf + GOPRO_HEADER_SIZE;
	frame->size = (size_t)total;
	return GOPRO_DECODE_FRAME;
}

uint16_t
gopro_decode_error_code(enum gopro_decode_status status)
{
	switch (status) {
	case GOPRO_DECODE_BAD_MAGIC:
		return GOPRO_ERR_BAD_MAGIC;
	case GOPRO_DECODE_BAD_VERSION:
		return GOPRO_ERR_BAD_VERSION;
	case GOPRO_DECODE_TOO_LARGE:
		return GOPRO_ERR_TOO_LARGE;
	default:
		return 0;
	}
}

size_t
gopro_frame_write(uint8_t *out, size_t cap, uint8_t command,
    const void *body, size_t len)
{
	if (len > UINT32_MAX || cap < GOPRO_HEADER_SIZE ||
	    cap - GOPRO_HEADER_SIZE < len)
		return 0;
	gopro_header_write(out, command, (uint32_t)len);
	if (len > 0)
		memcpy(out + GOPRO_HEADER_SIZE, body, len);
	return GOPRO_HEADER_SIZE + len;
}

size_t
gopro_login_write(uint8_t *out, size_t cap, const char *user,
    size_t user_len, const char *password, size_t password_len)
{
	size_t body = user_len + 1 + password_len;

	if (user_len == 0 || user_len > GOPRO_USER_MAX ||
	    password_len == 0 || password_len > GOPRO_PASSWORD_MAX ||
	    memchr(user, 0, user_len) || memchr(password, 0, password_len))
		return 0;
	if (cap < GOPRO_HEADER_SIZE + body)
		return 0;
	gopro_header_write(out, GOPRO_CMD_LOGIN, (uint32_t)body);
	memcpy(out + GOPRO_HEADER_SIZE, user, user_len);
	out[GOPRO_HEADER_SIZE + user_len] = 0;
	memcpy(out + GOPRO_HEADER_SIZE + user_len + 1, password, password_len);
	return GOPRO_HEADER_SIZE + body;
}

static size_t
status_write(uint8_t *out, size_t cap, uint8_t command, uint16_t code,
    const char *text)
{
	size_t text_len = text ? strnlen(text, GOPRO_TEXT_MAX) : 0;
	size_t body = 2 + text_len;

	if (cap < GOPRO_HEADER_SIZE + body)
		return 0;
	gopro_header_write(out, command, (uint32_t)body);
	put_be16(out + GOPRO_HEADER_SIZE, code);
	if (text_len > 0)
		memcpy(out + GOPRO_HEADER_SIZE + 2, text, text_len);
	return GOPRO_HEADER_SIZE + body;
}

size_t
gopro_error_write(uint8_t *out, size_t cap, uint16_t code, const char *text)
{
	return status_write(out, cap, GOPRO_CMD_ERROR, code, text);
}

size_t
gopro_goaway_write(uint8_t *out, size_t cap, uint16_t reason,
    const char *text)
{
	return status_write(out, cap, GOPRO_CMD_GOAWAY, reason, text);
}

int
gopro_login_parse(const uint8_t *body, size_t len, struct gopro_login *login)
{
	const uint8_t *sep;
	size_t user_len;

	if (len == 0)
		return -1;
	sep = memchr(body, 0, len);
	if (sep == NULL)
		return -1;
	user_len = (size_t)(sep - body);
	login->user = body;
	login->user_len = user_len;
	login->password = sep + 1;
	login->password_len = len - user_len - 1;
	if (user_len == 0 || user_len > GOPRO_USER_MAX)
		return -1;
	if (login->password_len == 0 ||
	    login->password_len > GOPRO_PASSWORD_MAX)
		return -1;
	/* Exactly one separator: the password may not contain another. */
	if (memchr(login->password, 0, login->password_len))
		return -1;
	return 0;
}

int
gopro_status_parse(const uint8_t *body, size_t len,
    struct gopro_status *status)
{
	if (len < 2 || len - 2 > GOPRO_TEXT_MAX)
		return -1;
	status->code = get_be16(body);
	status->text = body + 2;
	status->text_len = len - 2;
	return 0;
}

const char *
gopro_command_name(uint8_t command)
{
	static const char *const names[GOPRO_CMD_COUNT] = {
		"HEARTBEAT", "MESSAGE", "LOGIN", "LOGIN_ACK", "ERROR", "GOAWAY",
	};

	return command < GOPRO_CMD_COUNT ? names[command] : "UNKNOWN";
}

const char *
gopro_error_name(uint16_t code)
{
	static const char *const names[GOPRO_ERR_MAX + 1] = {
		"none", "bad magic", "unsupported version", "frame too large",
		"unknown command", "authentication required",
		"authentication failed", "server busy", "timeout",
		"malformed body", "unavailable", "request timeout",
	};

	return code <= GOPRO_ERR_MAX ? names[code] : "unknown error";
}
