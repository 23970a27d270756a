/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * client.h - a small blocking GoPro client on top of the codec, used by
 * goproctl (ping, send) and by the tests.  Every call takes a timeout in
 * seconds and waits with poll(), so a dead or hostile server can delay a
 * caller by that much at most.  No global state.
 */
#ifndef GOPRO_CLIENT_H
#define GOPRO_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "gopro/gopro.h"

enum client_result {
	CLIENT_OK = 0,
	CLIENT_EOF = -1,        /* the server closed the connection */
	CLIENT_TIMEOUT = -2,    /* nothing (or not enough) within the timeout */
	CLIENT_PROTOCOL = -3,   /* bad magic or version from the server */
	CLIENT_TOO_LARGE = -4,  /* the frame does not fit the caller's buffer */
	CLIENT_ERROR = -5,      /* a system call failed: see errno */
};

/*
 * Connect to "host:port", "[v6]:port" (names resolved too) within timeout:
 * a non-blocking socket with TCP_NODELAY, or -1 with a message naming the
 * address in err.
 */
int client_connect(const char *hostport, double timeout, char *err,
    size_t errlen);
/* Write one complete frame: CLIENT_OK, CLIENT_TIMEOUT or CLIENT_ERROR. */
int client_send_frame(int fd, uint8_t command, const void *body, size_t len,
    double timeout);
/*
 * Read exactly one frame into buf[0..cap) (never a byte of the next one)
 * and describe it in *frame.  Partial reads are assembled.
 */
int client_read_frame(int fd, uint8_t *buf, size_t cap,
    struct gopro_frame *frame, double timeout);
/*
 * Send LOGIN and read the server's answer into buf/frame: CLIENT_OK means
 * an answer came (LOGIN_ACK or ERROR: look at frame->header.command).
 */
int client_login(int fd, const char *user, const char *password,
    uint8_t *buf, size_t cap, struct gopro_frame *frame, double timeout);
void client_close(int fd);
/* "ok", "connection closed by the server", ... */
const char *client_result_text(int result);

#endif /* GOPRO_CLIENT_H */
