/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * listen.h - listening sockets: one SO_REUSEPORT socket per address and
 * worker slot, created and kept by the master.  A unix listener
 * ("unix:/path") is one socket that every slot shares (SO_REUSEPORT does
 * not apply to AF_UNIX): the master binds it once and gives each slot a
 * duplicate of the descriptor.
 */
#ifndef GOPRO_LISTEN_H
#define GOPRO_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "conf.h"

/* Mode and owners of a unix listener's socket file (-1: keep). */
struct listen_owner {
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

/*
 * A non-blocking listening socket on addr with SO_REUSEPORT (and
 * IPV6_V6ONLY for IPv6, so "[::]:p" and "0.0.0.0:p" can coexist).  For a
 * unix address: a stale socket file is replaced, anything else at the
 * path is refused, and the new file gets own's mode and owners and is
 * recorded in addr->file.  Returns the fd, or -1 with a message naming the
 * address in err.
 */
int listen_open(struct conf_listen *addr, int backlog,
    const struct listen_owner *own, char *err, size_t errlen);
/* Whether addr is a unix listener. */
int listen_is_unix(const struct conf_listen *addr);
/*
 * Remove a unix listener's socket file if it still is the one recorded
 * (never a successor's); logs a failure.  Nothing for other addresses.
 */
void listen_remove(const struct conf_listen *addr);
/*
 * 0 when nobody listens on addr yet; -1 with a message naming the address
 * in err when somebody does (EADDRINUSE) or it cannot be bound at all.
 * Run before the first SO_REUSEPORT socket of an address, which would
 * otherwise join another daemon's group without a word.
 */
int listen_probe(const struct conf_listen *addr, char *err, size_t errlen);
/* Whether a and b bind the same port and one covers the other's address. */
int listen_overlap(const struct conf_listen *a, const struct conf_listen *b);
/* Whether two configured addresses are the same socket address. */
int listen_same(const struct conf_listen *a, const struct conf_listen *b);
/* "127.0.0.1:8888, 127.0.0.1:8889 (PROXY)": the addresses, for logs. */
void listen_describe(const struct gopro_conf *c, char *buf, size_t len);

#endif /* GOPRO_LISTEN_H */
