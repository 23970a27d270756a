/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tls_relay.h - the TLS transport of the test harness.  With
 * GOPRO_TEST_TRANSPORT=tls the protocol tests run over TLS unchanged: the
 * descriptor a test gets is one end of a socketpair, and a thread relays it
 * to the server through libgopro-tls, so a test's write, read, poll,
 * shutdown and close behave as they do on a plain socket (only the
 * application data crosses; session tickets and alerts stay in the relay).
 */
#ifndef GOPRO_TLS_RELAY_H
#define GOPRO_TLS_RELAY_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The test certificates (make_certs.sh), made once per process in a
 * temporary directory removed at exit: the path of one of them, or NULL
 * with the reason in err.
 */
const char *tls_relay_cert(const char *name, char *err, size_t errlen);
/*
 * Run the handshake on the connected socket tcp (which the relay owns from
 * then on) and start relaying: the test's descriptor.  A handshake the
 * server refuses gives a descriptor that reads end of file, as a plain
 * connection the server closed at once would; *refused says so and err
 * why.  -1 with err only when the harness itself fails.
 */
int tls_relay_start(int tcp, bool *refused, char *err, size_t errlen);
/* Close fd (from tls_relay_start) with a TCP reset and no close_notify. */
void tls_relay_abort(int fd);
/* A heartbeat round trip over TLS to address within timeout seconds. */
bool tls_relay_heartbeat(const char *address, double timeout);

#endif /* GOPRO_TLS_RELAY_H */
