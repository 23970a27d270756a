/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * harness.h - integration-test support: start a real goprod on a free
 * loopback port from a temporary configuration, talk to it over real
 * sockets, and stop what was started, by PID, within bounded time.
 */
#ifndef GOPRO_HARNESS_H
#define GOPRO_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gopro/gopro.h"
#include "stats.h"
#include "stats_format.h"

struct goprod {
	pid_t pid;
	int port;
	char dir[256];         /* temporary directory, removed at stop */
	char conf_path[320];
	char addr[64];         /* "127.0.0.1:port" */
	char stats_path[320];
	char log_path[320];
};

/* A TCP port on 127.0.0.1 that nothing listens on right now. */
int harness_free_port(void);
/*
 * Write a config (listen on a free port, files in a temp dir, no user
 * switch, log to a file, one worker) followed by the lines in extra, which
 * override the defaults; start goprod -f on it and wait until it answers a
 * heartbeat.  Fails the test on error.
 */
void harness_start(struct goprod *g, const char *extra);
/*
 * harness_start with JOURNAL_STREAM naming the log file, so that goprod
 * writes it as it would write to the journal ("<N>" prefixes).
 */
void harness_start_journal(struct goprod *g, const char *extra);
/* The same on a given port (for configs that list several addresses). */
void harness_start_port(struct goprod *g, int port, const char *extra);
/*
 * harness_start with a unix listener beside the loopback port (which the
 * harness's own checks use): "unix:DIR/gopro.sock" in g's directory, its
 * address written to unix_addr.
 */
void harness_start_unix(struct goprod *g, const char *extra, char *unix_addr,
    size_t len);
/* Create the temp dir and write the config only (nothing is started). */
void harness_prepare(struct goprod *g, int port, const char *extra);
/* Start goprod -f on g->conf_path as it is, and wait as harness_start. */
void harness_launch(struct goprod *g);
/* True when a heartbeat round trip succeeds right now (within 1 s). */
bool harness_answers(const struct goprod *g);
/* The same with a given timeout in seconds. */
bool harness_heartbeat(const struct goprod *g, double timeout);
/* Rewrite the config file (same port and paths) with new extra lines. */
void harness_rewrite_conf(struct goprod *g, const char *extra);
/* SIGTERM, wait (bounded), SIGKILL if needed; returns the exit status. */
int harness_stop(struct goprod *g);
/* Wait for the master to exit by itself; -1 on timeout. */
int harness_wait_exit(struct goprod *g, double timeout);
/* How many descriptors this process has open (to check for leaks). */
int harness_open_fds(void);
/* Path of a built program: $GOPROD / $GOPROCTL from the environment. */
const char *harness_program(const char *name);
/*
 * That program copied into buf (an argv wants char *); fails the test
 * unless it is executable.  buf.
 */
char *harness_program_copy(const char *name, char *buf, size_t len);

/*
 * The transport of the protocol tests: GOPRO_TEST_TRANSPORT=tls (the
 * tests/daemon/tls/ wrappers of make check) runs them over TLS.  Then every
 * listener of the configurations the harness writes speaks TLS with the
 * certificates of make_certs.sh, and the descriptors harness_connect and
 * harness_secure return are relayed through libgopro-tls (tls_relay.h), so
 * the tests' own reads, writes, polls and shutdowns go through TLS.
 */
bool harness_over_tls(void);

/* Connect to the server; fails the test on error. */
int harness_connect(const struct goprod *g);
/*
 * A socket the test connected itself (after a PROXY header, from another
 * source address): the descriptor to use from then on, over TLS the relay's
 * after the handshake (one the server refused reads end of file).
 */
int harness_secure(int fd);
/* Close fd with a TCP reset (SO_LINGER 0), over TLS without close_notify. */
void harness_reset(int fd);
/* Write all of buf; fails the test on error. */
void harness_write(int fd, const void *buf, size_t len);
/* Send one frame whose body is a short string (up to 256 bytes). */
void harness_send(int fd, uint8_t cmd, const char *body);
/* Read exactly len bytes within timeout seconds: 0, or -1 on EOF/timeout. */
int harness_read_exact(int fd, void *buf, size_t len, double timeout);
/* Read one frame into buf (cap bytes); returns its size, -1 on EOF/timeout. */
ssize_t harness_read_frame(int fd, uint8_t *buf, size_t cap,
    struct gopro_frame *f, double timeout);
/* True when the peer closed (EOF or reset) within timeout seconds. */
bool harness_wait_closed(int fd, double timeout);
/* Send a frame; expect a reply frame with command cmd and body. */
void harness_expect_frame(int fd, uint8_t cmd, const void *body, size_t len);
/* Expect an ERROR frame with code. */
void harness_expect_error(int fd, uint16_t code);
/*
 * Expect the server to refuse the connection before serving it: ERROR code
 * and a close; over TLS a close with no byte at all, since a TLS listener
 * refuses without a handshake (gopro.conf(5) max_connections).
 */
void harness_expect_refused(int fd, uint16_t code);
/*
 * Create a users file from the mkstemp template path (mode 0600) with one
 * user whose password is hashed as sha512-crypt with the given rounds.
 */
void harness_users_file(char *path, const char *user, const char *password,
    unsigned long rounds);
/* harness_start with auth required against users_path, plus extra. */
void harness_start_auth(struct goprod *g, const char *users_path,
    const char *extra);
/* Is host ("a.b.c.d" or "[v6]") among the recent clients of a worker? */
bool harness_recent_client(const struct goprod *g, const char *host,
    bool proxied);
/* Print g's log to the test output (for a failure's context). */
void harness_dump_log(const struct goprod *g);
/* Whether a line of g's log contains text. */
bool harness_log_has(const struct goprod *g, const char *text);
/*
 * Run the shell command cmd (stdin /dev/null) to its end; its standard
 * output and error in out (cut to len - 1 bytes), its exit status as the
 * return value (-1 when a signal ended it).
 */
int harness_run(const char *cmd, char *out, size_t len);
/*
 * goprod -t on a configuration of text (after user = "" and group = "",
 * so that it does not depend on /etc/passwd): its exit status, its
 * output in out.
 */
int harness_check_conf(const char *text, char *out, size_t len);
/* Run args[0] with args, its standard output into a pipe (*out_fd). */
pid_t harness_spawn(char *const *args, int *out_fd);
/* Read fd to the end (up to 64 KiB), wait for pid; the output, malloc'd. */
char *harness_collect(pid_t pid, int fd, int *status);
/* The unsigned number after "key": (its first occurrence) in JSON text. */
unsigned long long harness_json_number(const char *json, const char *key);
/* A consistent snapshot of g's stats segment; free with stats_snap_free. */
void harness_snapshot(const struct goprod *g, struct stats_snap *snap);
/* The header of such a snapshot: generation, reloads, ... */
void harness_header(const struct goprod *g, struct stats_header *hdr);
/*
 * Wait (up to 10 s, else fail) until the master counts `reloads` reloads
 * and every live worker runs the current generation: no handover left.
 */
void harness_wait_settled(const struct goprod *g, uint32_t reloads);
/* Snapshot the stats totals of a running goprod. */
void harness_totals(const struct goprod *g, struct stats_values *total);
/* One counter of those totals. */
uint64_t harness_counter(const struct goprod *g, enum stats_counter which);
/* Pids of the live workers; returns how many. */
int harness_worker_pids(const struct goprod *g, pid_t *pids, int max);
/* VmRSS of a process in KiB, -1 when unknown. */
long harness_rss_kib(pid_t pid);
/* VmSize (address space) of a process in KiB, -1 when unknown. */
long harness_vmsize_kib(pid_t pid);
/*
 * Wait (up to 10 s, else fail) until g's workers have read total bytes
 * (the bytes_received counter; returns it).  A test that counts what it
 * writes can make its next bytes arrive in a later read of the server.
 */
uint64_t harness_wait_received(const struct goprod *g, uint64_t total);
/* Monotonic seconds. */
double harness_now(void);
/* Sleep for seconds. */
void harness_sleep(double seconds);

#endif /* GOPRO_HARNESS_H */
