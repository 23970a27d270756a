/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * gopro.h - the GoPro wire protocol, version 1.
 *
 * This header is the public face of the codec: constants of the wire
 * contract, an incremental decoder that works on whatever bytes a caller has
 * received so far, and encoders that write into caller-provided memory.
 * Nothing here allocates, blocks or touches a file descriptor, so the same
 * code serves the daemon, goproctl, gopro-bench, the tests and any client
 * author who wants to embed it.  See gopro(7) for the protocol itself.
 */
#ifndef GOPRO_H
#define GOPRO_H

#include <stddef.h>
#include <stdint.h>

/*
 * libgopro is built with -fvisibility=hidden: only declarations marked
 * GOPRO_API are exported, and only under the version node LIBGOPRO_1.0 of
 * src/lib/libgopro.map.  Structs a caller does not allocate are opaque, so
 * the library can grow them without breaking the ABI.
 */
#if defined(__GNUC__) || defined(__clang__)
#define GOPRO_API __attribute__((visibility("default")))
#else
#define GOPRO_API
#endif

#define GOPRO_MAGIC 0x474Fu /* "GO" */
#define GOPRO_VERSION 1u
#define GOPRO_HEADER_SIZE 8u
#define GOPRO_DEFAULT_MAX_BODY (10u * 1024u * 1024u)

/* Limits of the structured bodies (LOGIN, ERROR, GOAWAY). */
#define GOPRO_USER_MAX 64u
#define GOPRO_PASSWORD_MAX 1024u
#define GOPRO_TEXT_MAX 256u
/* Largest LOGIN body: user, separator, password. */
#define GOPRO_LOGIN_BODY_MAX (GOPRO_USER_MAX + 1u + GOPRO_PASSWORD_MAX)
/* Largest ERROR or GOAWAY frame: header, 2-byte code, text. */
#define GOPRO_STATUS_FRAME_MAX (GOPRO_HEADER_SIZE + 2u + GOPRO_TEXT_MAX)

enum gopro_command {
	GOPRO_CMD_HEARTBEAT = 0x00,
	GOPRO_CMD_MESSAGE = 0x01,
	GOPRO_CMD_LOGIN = 0x02,
	GOPRO_CMD_LOGIN_ACK = 0x03,
	GOPRO_CMD_ERROR = 0x04,
	GOPRO_CMD_GOAWAY = 0x05,
};
#define GOPRO_CMD_COUNT 6

/* Codes carried by an ERROR frame. */
enum gopro_error_code {
	GOPRO_ERR_BAD_MAGIC = 1,
	GOPRO_ERR_BAD_VERSION = 2,
	GOPRO_ERR_TOO_LARGE = 3,
	GOPRO_ERR_UNKNOWN_COMMAND = 4,
	GOPRO_ERR_AUTH_REQUIRED = 5,
	GOPRO_ERR_AUTH_FAILED = 6,
	GOPRO_ERR_BUSY = 7,
	GOPRO_ERR_TIMEOUT = 8,
	GOPRO_ERR_MALFORMED = 9,
	GOPRO_ERR_UNAVAILABLE = 10,     /* retryable: a module's backend is down */
	GOPRO_ERR_REQUEST_TIMEOUT = 11, /* a module did not answer in time */
};
#define GOPRO_ERR_MAX 11

/* Reasons carried by a GOAWAY frame. */
enum gopro_goaway_reason {
	GOPRO_GOAWAY_RELOAD = 1,
	GOPRO_GOAWAY_SHUTDOWN = 2,
	GOPRO_GOAWAY_OTHER = 3,
};

struct gopro_header {
	uint16_t magic;
	uint8_t version;
	uint8_t command;
	uint32_t length;
};

/* A decoded frame: a view into the caller's buffer, nothing is copied. */
struct gopro_frame {
	struct gopro_header header;
	const uint8_t *body; /* header.length bytes */
	size_t size;         /* header plus body: bytes to consume */
};

enum gopro_decode_status {
	GOPRO_DECODE_FRAME = 0,  /* a complete frame is in *frame */
	GOPRO_DECODE_NEED_MORE,  /* not enough bytes yet; *need says how many more */
	GOPRO_DECODE_BAD_MAGIC,  /* protocol violation: ERROR 1 and close */
	GOPRO_DECODE_BAD_VERSION,/* ERROR 2 and close */
	GOPRO_DECODE_TOO_LARGE,  /* ERROR 3 and close, decided from the header */
};

/*
 * Decode the frame at the start of buf[0..len).  The header is checked in
 * the order magic, version, length, and each field as soon as its bytes are
 * there, so a bad first byte is reported without waiting for the rest.
 * On GOPRO_DECODE_NEED_MORE, *need (when not NULL) is the number of further
 * bytes required, which is the full remainder of the frame once the header
 * is complete, and frame->header is filled when the header is complete.
 * max_body is the largest accepted body; a body of exactly max_body is fine.
 */
GOPRO_API enum gopro_decode_status gopro_decode(const uint8_t *buf, size_t len,
    uint32_t max_body, struct gopro_frame *frame, size_t *need);

/* The ERROR code that answers a decoder failure (0 for FRAME/NEED_MORE). */
GOPRO_API uint16_t gopro_decode_error_code(enum gopro_decode_status status);

/*
 * Write an 8-byte header for a frame of version 1 (inline: once per
 * reply).  On a little-endian GCC or Clang target it is two byte-swapped
 * 32-bit stores instead of eight byte stores.
 */
static inline void
gopro_header_write(uint8_t out[GOPRO_HEADER_SIZE], uint8_t command,
    uint32_t length)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	uint32_t w[2] = {
		__builtin_bswap32((uint32_t)GOPRO_MAGIC << 16 |
		    (uint32_t)GOPRO_VERSION << 8 | command),
		__builtin_bswap32(length),
	};

	__builtin_memcpy(out, w, sizeof(w));
#else
	out[0] = (uint8_t)(GOPRO_MAGIC >> 8);
	out[1] = (uint8_t)(GOPRO_MAGIC & 0xFF);
	out[2] = GOPRO_VERSION;
	out[3] = command;
	out[4] = (uint8_t)(length >> 24);
	out[5] = (uint8_t)(length >> 16);
	out[6] = (uint8_t)(length >> 8);
	out[7] = (uint8_t)length;
#endif
}

/*
 * Frame encoders.  Each writes a complete frame into out[0..cap) and returns
 * its size, or 0 when cap is too small or an argument is out of the
 * protocol's range (nothing useful is written then).
 */
GOPRO_API size_t gopro_frame_write(uint8_t *out, size_t cap, uint8_t command,
    const void *body, size_t len);
GOPRO_API size_t gopro_login_write(uint8_t *out, size_t cap, const char *user,
    size_t user_len, const char *password, size_t password_len);
/* ERROR and GOAWAY: a text longer than GOPRO_TEXT_MAX is cut to fit. */
GOPRO_API size_t gopro_error_write(uint8_t *out, size_t cap, uint16_t code,
    const char *text);
GOPRO_API size_t gopro_goaway_write(uint8_t *out, size_t cap, uint16_t reason,
    const char *text);

/* A parsed LOGIN body: views into the body. */
struct gopro_login {
	const uint8_t *user;
	size_t user_len;
	const uint8_t *password;
	size_t password_len;
};

/* A parsed ERROR or GOAWAY body. */
struct gopro_status {
	uint16_t code;
	const uint8_t *text;
	size_t text_len;
};

/* Return 0 on a well-formed body, -1 otherwise (ERROR 9 for LOGIN). */
GOPRO_API int gopro_login_parse(const uint8_t *body, size_t len,
    struct gopro_login *login);
GOPRO_API int gopro_status_parse(const uint8_t *body, size_t len,
    struct gopro_status *status);

/* ------------------------------------------------------------ results */

/*
 * Every libgopro call that can fail returns GOPRO_OK (0) or one of these
 * negative results; gopro_strerror names them.  A client context also
 * keeps a sentence about its last failure (which address, which system
 * call and why): gopro_client_error, gopro_async_error.
 */
enum gopro_result {
	GOPRO_OK = 0,
	GOPRO_E_SYSTEM = -1,        /* a system call failed (errno is set) */
	GOPRO_E_NOMEM = -2,         /* out of memory */
	GOPRO_E_INVALID = -3,       /* an argument is out of range */
	GOPRO_E_ADDRESS = -4,       /* not an address, or it does not resolve */
	GOPRO_E_CONNECT = -5,       /* no connection could be made */
	GOPRO_E_TIMEOUT = -6,       /* the call's (or request's) time ran out */
	GOPRO_E_CLOSED = -7,        /* the server closed the connection */
	GOPRO_E_PROTOCOL = -8,      /* bad magic or version, or a reply that
	                               does not answer the request */
	GOPRO_E_TOO_LARGE = -9,     /* a frame from the server over the limit */
	GOPRO_E_SERVER = -10,       /* the server answered with ERROR */
	GOPRO_E_AUTH = -11,         /* the server refused the login */
	GOPRO_E_BUSY = -12,         /* max_pending requests are in flight */
	GOPRO_E_NOT_CONNECTED = -13,/* no connection now (async, no buffering) */
	GOPRO_E_CANCELLED = -14,    /* the context was freed first (async) */
};
#define GOPRO_RESULT_MIN (-14)

/* A static sentence for a result, "timed out", ...; never NULL. */
GOPRO_API const char *gopro_strerror(int result);

/* ------------------------------------------------------------ reader */

/*
 * A reader assembles the frames of one byte stream for callers that do
 * their own I/O (bindings, other event loops): feed it bytes as they come,
 * then call gopro_reader_next until it returns 0.  To avoid a copy, read
 * straight into gopro_reader_space and gopro_reader_commit what was read.
 * A frame handed out points into the reader's buffer and stays valid until
 * the next feed, space or free on that reader.
 */
struct gopro_reader;

/* max_body: the largest body accepted; NULL when out of memory. */
GOPRO_API struct gopro_reader *gopro_reader_new(uint32_t max_body);
GOPRO_API void gopro_reader_free(struct gopro_reader *r);
/* Copy len bytes in: GOPRO_OK or GOPRO_E_NOMEM. */
GOPRO_API int gopro_reader_feed(struct gopro_reader *r, const void *data,
    size_t len);
/*
 * Room for at least one read at the tail (*room bytes, enough for the rest
 * of a frame whose header has come); NULL when out of memory.
 */
GOPRO_API void *gopro_reader_space(struct gopro_reader *r, size_t *room);
/* Record that n (<= *room) bytes were written into the space. */
GOPRO_API void gopro_reader_commit(struct gopro_reader *r, size_t n);
/*
 * The next complete frame: 1 and *frame filled, 0 when more bytes are
 * needed, or GOPRO_E_PROTOCOL / GOPRO_E_TOO_LARGE, after which the stream
 * cannot be trusted and every later call says the same.
 */
GOPRO_API int gopro_reader_next(struct gopro_reader *r,
    struct gopro_frame *frame);
/* Bytes held that do not make a whole frame yet. */
GOPRO_API size_t gopro_reader_buffered(const struct gopro_reader *r);

/* Names for logs and tools; never NULL. */
GOPRO_API const char *gopro_command_name(uint8_t command);
GOPRO_API const char *gopro_error_name(uint16_t code);

#endif /* GOPRO_H */
