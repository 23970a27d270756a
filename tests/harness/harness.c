/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * harness.c - integration-test support (see harness.h).
 *
 * Failures call cmocka's fail_msg, so a test that cannot start its server
 * fails with the reason instead of hanging.  Every server is started with
 * -f so its PID is the master's, and stopped by that PID.
 */
#include "config.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "bench.h"
#include "harness.h"
#include "gopro/client.h"
#include "iowait.h"
#include "stats_format.h"
#ifdef HAVE_TLS
#include "tls_relay.h"
#endif

#define START_TIMEOUT 10.0
#define STOP_TIMEOUT 15.0
#define IO_TIMEOUT 5.0

double
harness_now(void)
{
	return iowait_now();
}

void
harness_sleep(double seconds)
{
	struct timespec ts;

	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *
harness_program(const char *name)
{
	const char *p = getenv(name);

	if (p == NULL || *p == '\0')
		fail_msg("%s is not set: run the tests through make check", name);
	return p;
}

char *
harness_program_copy(const char *name, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s", harness_program(name)) >= (int)len)
		fail_msg("%s: a path over %zu bytes", name, len);
	if (access(buf, X_OK) != 0)
		fail_msg("%s: %s", buf, strerror(errno));
	return buf;
}

/* Can nothing else be listening on 127.0.0.1:port right now? */
static bool
port_is_free(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rc = bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	close(fd);
	return rc == 0;
}

/*
 * Test programs run in parallel and goprod binds with SO_REUSEPORT, so two
 * of them given the same port would share it.  Each test process takes
 * ports from its own block (by pid), below the kernel's ephemeral range so
 * client sockets never take them either.
 */
int
harness_free_port(void)
{
	static unsigned next;
	unsigned block = 10000 + ((unsigned)getpid() % 1000) * 20;

	for (unsigned i = 0; i < 20; i++) {
		int port = (int)(block + next++ % 20);
		if (port_is_free(port))
			return port;
	}
	fail_msg("no free port in 127.0.0.1:%u-%u", block, block + 19);
	return -1;
}

/* The value of option name in extra ("name = value" on a line), or NULL. */
static const char *
extra_value(const char *extra, const char *name)
{
	size_t n = strlen(name), sp;

	for (const char *p = extra; p != NULL && *p != '\0';
	    p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		p += strspn(p, " \t");
		/* The name first: a shorter line ends before p + n. */
		if (strncmp(p, name, n) != 0)
			continue;
		sp = n + strspn(p + n, " \t");
		if (p[sp] == '=')
			return p + sp + 1;
	}
	return NULL;
}

static bool
extra_sets(const char *extra, const char *name)
{
	return extra_value(extra, name) != NULL;
}

bool
harness_over_tls(void)
{
	static int tls = -1;
	const char *t;

	if (tls < 0) {
		t = getenv("GOPRO_TEST_TRANSPORT");
		if (t != NULL && strcmp(t, "tls") != 0 && strcmp(t, "plain") &&
		    *t != '\0')
			fail_msg("GOPRO_TEST_TRANSPORT=%s: plain or tls", t);
		tls = t != NULL && strcmp(t, "tls") == 0;
		/*
		 * A handshake the server refuses gives a closed socket: a
		 * test's write to it is an EPIPE to report, not a death.
		 */
		if (tls)
			signal(SIGPIPE, SIG_IGN);
#ifndef HAVE_TLS
		if (tls)
			fail_msg("GOPRO_TEST_TRANSPORT=tls: built without TLS");
#endif
	}
	return tls == 1;
}

#ifdef HAVE_TLS
static const char *
cert(const char *name)
{
	char err[256];
	const char *path = tls_relay_cert(name, err, sizeof(err));

	if (path == NULL)
		fail_msg("%s", err);
	return path;
}

/*
 * Over TLS every listener of the configuration speaks TLS, with the test
 * certificates; a test that writes its own tls section keeps it.
 */
static void
write_tls_section(FILE *f, const struct goprod *g, const char *extra)
{
	const char *listen = extra_value(extra, "listen");
	int len = listen ? (int)strcspn(listen, "\n") : 0;

	if (!harness_over_tls() || (extra && strstr(extra, "tls {")))
		return;
	fprintf(f, "tls {\n listen = ");
	if (listen != NULL)
		fprintf(f, "%.*s\n", len, listen);
	else
		fprintf(f, "{\"%s\"}\n", g->addr);
	fprintf(f, " certificate = \"%s\"\n", cert("server.pem"));
	fprintf(f, " key = \"%s\"\n}\n", cert("server.key"));
}
#else
static void
write_tls_section(FILE *f, const struct goprod *g, const char *extra)
{
	(void)f, (void)g, (void)extra;
}
#endif

/*
 * Written aside and renamed over the file, as a careful admin would: a
 * master reloading while the file is rewritten in place could read it
 * half written (an empty file is all defaults, another listen address).
 * An option that extra sets is left out of the base lines, since goprod
 * refuses an option set twice.
 */
static void
write_conf(struct goprod *g, const char *extra)
{
	char tmp[sizeof(g->conf_path) + 8], v[5][sizeof(g->conf_path) + 64];
	const char *base[][2] = {
		{ "listen", v[0] }, { "workers", "1" }, { "user", "\"\"" },
		{ "group", "\"\"" }, { "pid_file", v[1] }, { "stats_file", v[2] },
		{ "control_socket", v[3] }, { "log", v[4] },
		{ "log_level", "\"info\"" },
	};
	FILE *f;

	snprintf(v[0], sizeof(v[0]), "{\"%s\"}", g->addr);
	snprintf(v[1], sizeof(v[1]), "\"%s/goprod.pid\"", g->dir);
	snprintf(v[2], sizeof(v[2]), "\"%s\"", g->stats_path);
	snprintf(v[3], sizeof(v[3]), "\"%s/goprod.sock\"", g->dir);
	snprintf(v[4], sizeof(v[4]), "\"file:%s\"", g->log_path);
	snprintf(tmp, sizeof(tmp), "%s.new", g->conf_path);
	if ((f = fopen(tmp, "w")) == NULL)
		fail_msg("cannot write %s: %s", tmp, strerror(errno));
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
		if (!extra_sets(extra, base[i][0]))
			fprintf(f, "%s = %s\n", base[i][0], base[i][1]);
	fprintf(f, "%s\n", extra ? extra : "");
	write_tls_section(f, g, extra);
	if (fclose(f) != 0 || rename(tmp, g->conf_path) != 0)
		fail_msg("cannot write %s: %s", g->conf_path, strerror(errno));
}

void
harness_rewrite_conf(struct goprod *g, const char *extra)
{
	write_conf(g, extra);
}

bool
harness_answers(const struct goprod *g)
{
	return harness_heartbeat(g, 1.0);
}

int
harness_open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

/*
 * A heartbeat round trip on a new connection within timeout seconds,
 * through libgopro's blocking client, as any user's health check would.
 */
bool
harness_heartbeat(const struct goprod *g, double timeout)
{
	struct gopro_client *c;
	bool ok;

#ifdef HAVE_TLS
	if (harness_over_tls())
		return tls_relay_heartbeat(g->addr, timeout);
#endif
	c = gopro_client_new();
	assert_non_null(c);
	ok = gopro_client_connect(c, g->addr, timeout) == GOPRO_OK &&
	    gopro_client_heartbeat(c, NULL, 0, timeout) == GOPRO_OK;
	gopro_client_free(c);
	return ok;
}

void
harness_dump_log(const struct goprod *g)
{
	char line[512];
	FILE *f = fopen(g->log_path, "r");

	if (f == NULL)
		return;
	fprintf(stderr, "---- %s\n", g->log_path);
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fclose(f);
}

void
harness_start(struct goprod *g, const char *extra)
{
	harness_start_port(g, harness_free_port(), extra);
}

void
harness_prepare(struct goprod *g, int port, const char *extra)
{
	memset(g, 0, sizeof(*g));
	snprintf(g->dir, sizeof(g->dir), "/tmp/gopro-test-XXXXXX");
	if (mkdtemp(g->dir) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	g->port = port;
	snprintf(g->addr, sizeof(g->addr), "127.0.0.1:%d", g->port);
	snprintf(g->conf_path, sizeof(g->conf_path), "%s/gopro.conf", g->dir);
	snprintf(g->stats_path, sizeof(g->stats_path), "%s/goprod.stats",
	    g->dir);
	snprintf(g->log_path, sizeof(g->log_path), "%s/goprod.log", g->dir);
	write_conf(g, extra);
}

static bool
our_worker_runs(const struct goprod *g)
{
	pid_t pid;

	return access(g->stats_path, R_OK) == 0 &&
	    harness_worker_pids(g, &pid, 1) == 1;
}

/* harness_start_journal: the log file poses as the journal's stream. */
static bool start_as_journal;

/* Set JOURNAL_STREAM to fd's device and inode, as systemd does. */
static void
pose_as_journal(int fd)
{
	struct stat st;
	char v[64];

	if (fstat(fd, &st) < 0)
		_exit(126);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
}

void
harness_start_journal(struct goprod *g, const char *extra)
{
	start_as_journal = true;
	harness_start(g, extra);
	start_as_journal = false;
}

void
harness_start_port(struct goprod *g, int port, const char *extra)
{
	harness_prepare(g, port, extra);
	harness_launch(g);
}

void
harness_start_unix(struct goprod *g, const char *extra, char *unix_addr,
    size_t len)
{
	char *conf;

	harness_prepare(g, harness_free_port(), NULL);
	snprintf(unix_addr, len, "unix:%s/gopro.sock", g->dir);
	if (asprintf(&conf, "listen = {\"%s\", \"%s\"}\n%s", g->addr,
	    unix_addr, extra ? extra : "") < 0)
		fail_msg("out of memory");
	harness_rewrite_conf(g, conf);
	free(conf);
	harness_launch(g);
}

void
harness_launch(struct goprod *g)
{
	const char *goprod = harness_program("GOPROD");
	double deadline;
	int status;

	g->pid = fork();
	assert_true(g->pid >= 0);
	if (g->pid == 0) {
		/* -f logs to stderr: into the log file, out of the test output. */
		int null = open("/dev/null", O_RDWR);
		int log = open(g->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(log, STDERR_FILENO);
		if (start_as_journal)
			pose_as_journal(STDERR_FILENO);
		else
			unsetenv("JOURNAL_STREAM");
		/* A test that dies must not leave its server behind. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(goprod, "goprod", "-f", "-c", g->conf_path, (char *)NULL);
		_exit(127);
	}
	deadline = harness_now() + START_TIMEOUT;
	while (harness_now() < deadline) {
		if (waitpid(g->pid, &status, WNOHANG) == g->pid) {
			g->pid = 0;
			harness_dump_log(g);
			fail_msg("goprod exited during start-up (status %d)",
			    status);
		}
		/* Answered, and by our own worker, not a stranger on the port. */
		if (harness_answers(g) && our_worker_runs(g))
			return;
		harness_sleep(0.02);
	}
	harness_stop(g);
	fail_msg("goprod did not answer on %s within %.0fs", g->addr,
	    START_TIMEOUT);
}

int
harness_wait_exit(struct goprod *g, double timeout)
{
	double deadline = harness_now() + timeout;
	int status;

	if (g->pid <= 0)
		return -1;
	while (harness_now() < deadline) {
		if (waitpid(g->pid, &status, WNOHANG) == g->pid) {
			g->pid = 0;
			return status;
		}
		harness_sleep(0.01);
	}
	return -1;
}

static void
remove_dir(const char *dir)
{
	char cmd[400];

	if (*dir == '\0' || strncmp(dir, "/tmp/gopro-test-", 16) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/*
 * The sanitizers report on goprod's stderr, which is the log file: a report
 * from any of its processes (a worker that aborted and was respawned, a
 * leak at exit) is a failure even when the master exits 0.
 */
static const char *
sanitizer_report(const struct goprod *g)
{
	static const char *const marks[] = { "ERROR: AddressSanitizer",
		"ERROR: LeakSanitizer", "runtime error:" };
	static char found[64];
	char line[512];
	FILE *f = fopen(g->log_path, "r");

	if (f == NULL)
		return NULL;
	*found = '\0';
	while (*found == '\0' && fgets(line, sizeof(line), f))
		for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
			if (strstr(line, marks[i]) != NULL) {
				snprintf(found, sizeof(found), "%s", marks[i]);
				break;
			}
	fclose(f);
	return *found ? found : NULL;
}

int
harness_stop(struct goprod *g)
{
	const char *report;
	int status = -1;

	if (g->pid > 0) {
		kill(g->pid, SIGTERM);
		status = harness_wait_exit(g, STOP_TIMEOUT);
		if (status == -1 && g->pid > 0) {
			kill(g->pid, SIGKILL);
			waitpid(g->pid, &status, 0);
			g->pid = 0;
		}
	}
	report = sanitizer_report(g);
	/* A failed stop is a finding: show what the server said. */
	if (status != 0 || report != NULL)
		harness_dump_log(g);
	remove_dir(g->dir);
	if (report != NULL)
		fail_msg("goprod's log contains \"%s\" (shown above)", report);
	return status;
}

/* ------------------------------------------------------------ sockets */

int
harness_connect(const struct goprod *g)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)g->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		fail_msg("connect %s: %s", g->addr, strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return harness_secure(fd);
}

int
harness_secure(int fd)
{
#ifdef HAVE_TLS
	char err[512] = "";
	bool refused;

	if (!harness_over_tls())
		return fd;
	fd = tls_relay_start(fd, &refused, err, sizeof(err));
	if (fd < 0)
		fail_msg("%s", err);
	if (refused)
		print_message("(the server refused the TLS handshake: %s)\n",
		    err);
#endif
	return fd;
}

void
harness_reset(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

#ifdef HAVE_TLS
	if (harness_over_tls()) {
		tls_relay_abort(fd);
		return;
	}
#endif
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)),
	    0);
	close(fd);
}

void
harness_write(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail_msg("write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

void
harness_send(int fd, uint8_t cmd, const char *body)
{
	uint8_t buf[GOPRO_HEADER_SIZE + 256];
	size_t n = gopro_frame_write(buf, sizeof(buf), cmd, body, strlen(body));

	assert_true(n > 0);
	harness_write(fd, buf, n);
}

int
harness_read_exact(int fd, void *buf, size_t len, double timeout)
{
	double deadline = harness_now() + timeout;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		double left = deadline - harness_now();
		if (left <= 0 || poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
			return -1;
		n = read(fd, p, len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t
harness_read_frame(int fd, uint8_t *buf, size_t cap, struct gopro_frame *f,
    double timeout)
{
	size_t need;

	assert_true(cap >= GOPRO_HEADER_SIZE);
	if (harness_read_exact(fd, buf, GOPRO_HEADER_SIZE, timeout) < 0)
		return -1;
	if (gopro_decode(buf, GOPRO_HEADER_SIZE, (uint32_t)(cap - 8), f,
	    &need) == GOPRO_DECODE_FRAME)
		return GOPRO_HEADER_SIZE;
	assert_int_equal(gopro_decode(buf, GOPRO_HEADER_SIZE,
	    (uint32_t)(cap - 8), f, &need), GOPRO_DECODE_NEED_MORE);
	if (harness_read_exact(fd, buf + 8, need, timeout) < 0)
		return -1;
	assert_int_equal(gopro_decode(buf, 8 + need, (uint32_t)(cap - 8), f,
	    NULL), GOPRO_DECODE_FRAME);
	return (ssize_t)(8 + need);
}

bool
harness_wait_closed(int fd, double timeout)
{
	double deadline = harness_now() + timeout;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t sink[4096];
	ssize_t n;

	while (harness_now() < deadline) {
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		n = read(fd, sink, sizeof(sink));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return true;
	}
	return false;
}

void
harness_expect_frame(int fd, uint8_t cmd, const void *body, size_t len)
{
	uint8_t *buf = malloc(len + 64);
	struct gopro_frame f;

	assert_non_null(buf);
	if (harness_read_frame(fd, buf, len + 64, &f, IO_TIMEOUT) < 0)
		fail_msg("no %s reply within %.0fs", gopro_command_name(cmd),
		    IO_TIMEOUT);
	assert_int_equal(f.header.version, 1);
	assert_int_equal(f.header.command, cmd);
	assert_int_equal(f.header.length, len);
	if (len)
		assert_memory_equal(f.body, body, len);
	free(buf);
}

void
harness_expect_error(int fd, uint16_t code)
{
	uint8_t buf[GOPRO_STATUS_FRAME_MAX];
	struct gopro_frame f;
	struct gopro_status st;

	if (harness_read_frame(fd, buf, sizeof(buf), &f, IO_TIMEOUT) < 0)
		fail_msg("no ERROR %u within %.0fs", code, IO_TIMEOUT);
	assert_int_equal(f.header.command, GOPRO_CMD_ERROR);
	assert_int_equal(gopro_status_parse(f.body, f.header.length, &st), 0);
	assert_int_equal(st.code, code);
}

void
harness_expect_refused(int fd, uint16_t code)
{
	uint8_t b;

	if (!harness_over_tls())
		harness_expect_error(fd, code);
	else if (harness_read_exact(fd, &b, 1, IO_TIMEOUT) == 0)
		fail_msg("a TLS connection refused (ERROR %u in plain) got "
		    "a byte: 0x%02x", code, b);
	if (!harness_wait_closed(fd, 3))
		fail_msg("a refused connection (ERROR %u) was not closed",
		    code);
}

/* ------------------------------------------------------------ stats */

/* Fails the test when the segment cannot be read. */
void
harness_snapshot(const struct goprod *g, struct stats_snap *snap)
{
	struct stats_segment seg;
	char err[256];

	if (stats_open(&seg, g->stats_path, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(stats_snap_take(&seg, snap), 0);
	stats_close(&seg);
}

void
harness_header(const struct goprod *g, struct stats_header *hdr)
{
	struct stats_snap s;

	harness_snapshot(g, &s);
	*hdr = s.hdr;
	stats_snap_free(&s);
}

/*
 * Wait until the master counts `reloads` reloads and every worker alive
 * runs the current generation: no handover left, nothing queued.
 */
void
harness_wait_settled(const struct goprod *g, uint32_t reloads)
{
	double t0 = harness_now();
	struct stats_snap s;
	bool settled;

	for (;;) {
		harness_snapshot(g, &s);
		settled = s.hdr.reloads == reloads;
		for (unsigned i = 0; i < s.hdr.nentries; i++) {
			const struct stats_entry *e = &s.entries[i];

			if (e->state != STATS_STATE_FREE &&
			    e->state != STATS_STATE_EXITED &&
			    (e->generation != s.hdr.generation ||
			    e->state != STATS_STATE_RUNNING))
				settled = false;
		}
		stats_snap_free(&s);
		if (settled)
			return;
		if (harness_now() - t0 > 10)
			fail_msg("reload %u not settled within 10 s", reloads);
		harness_sleep(0.005);
	}
}

void
harness_totals(const struct goprod *g, struct stats_values *total)
{
	struct stats_snap snap;

	harness_snapshot(g, &snap);
	*total = snap.total;
	stats_snap_free(&snap);
}

uint64_t
harness_counter(const struct goprod *g, enum stats_counter which)
{
	struct stats_values t;

	harness_totals(g, &t);
	return t.counter[which];
}

int
harness_worker_pids(const struct goprod *g, pid_t *pids, int max)
{
	struct stats_snap snap;
	int n = 0;

	harness_snapshot(g, &snap);
	for (unsigned i = 0; i < snap.hdr.nentries && n < max; i++)
		if (snap.entries[i].state == STATS_STATE_RUNNING &&
		    snap.entries[i].pid > 0)
			pids[n++] = snap.entries[i].pid;
	stats_snap_free(&snap);
	return n;
}

long
harness_rss_kib(pid_t pid)
{
	return bench_rss_kib(pid);
}

long
harness_vmsize_kib(pid_t pid)
{
	return bench_status_kib(pid, "VmSize");
}

uint64_t
harness_wait_received(const struct goprod *g, uint64_t total)
{
	double t0 = harness_now();
	struct stats_values t;

	do {
		harness_totals(g, &t);
		if (t.counter[STATS_bytes_received] >= total)
			return t.counter[STATS_bytes_received];
		harness_sleep(0.0001);
	} while (harness_now() - t0 < 10);
	fail_msg("the server read %llu bytes in 10 s, want %llu",
	    (unsigned long long)t.counter[STATS_bytes_received],
	    (unsigned long long)total);
	return 0;
}

void
harness_users_file(char *path, const char *user, const char *password,
    unsigned long rounds)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data = calloc(1, sizeof(*data));
	const char *hash;
	FILE *f;
	int fd;

	assert_non_null(data);
	assert_non_null(crypt_gensalt_rn("$6$", rounds, NULL, 0, salt,
	    sizeof(salt)));
	hash = crypt_r(password, salt, data);
	assert_non_null(hash);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0600), 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "# test users\n%s:%s\n", user, hash);
	fclose(f);
	free(data);
}

bool
harness_recent_client(const struct goprod *g, const char *host, bool proxied)
{
	struct stats_snap snap;
	char text[64];
	size_t len = strlen(host);
	bool found = false;

	harness_snapshot(g, &snap);
	for (unsigned i = 0; i < snap.hdr.nentries && !found; i++)
		for (unsigned k = 0; k < snap.clients[i].n; k++) {
			const struct stats_client *c = &snap.clients[i].c[k];

			stats_client_text(c, text, sizeof(text));
			if (strncmp(text, host, len) == 0 && text[len] == ':' &&
			    (bool)c->proxied == proxied)
				found = true;
		}
	stats_snap_free(&snap);
	return found;
}

pid_t
harness_spawn(char *const *args, int *out_fd)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Not left running when a failed test ends the program. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		execv(args[0], args);
		_exit(127);
	}
	close(p[1]);
	*out_fd = p[0];
	return pid;
}

void
harness_start_auth(struct goprod *g, const char *users_path,
    const char *extra)
{
	char conf[1024];

	snprintf(conf, sizeof(conf), "auth {\n required = true\n"
	    " users_file = \"%s\"\n %s\n}\n", users_path, extra);
	harness_start(g, conf);
}

bool
harness_log_has(const struct goprod *g, const char *text)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(g->log_path, "r");

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

int
harness_run(const char *cmd, char *out, size_t len)
{
	char full[2048];
	size_t n;
	FILE *p;
	int status;

	snprintf(full, sizeof(full), "%s 2>&1 </dev/null", cmd);
	assert_non_null(p = popen(full, "r"));
	n = fread(out, 1, len - 1, p);
	out[n] = '\0';
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
harness_check_conf(const char *text, char *out, size_t len)
{
	char path[] = "/tmp/gopro-check-XXXXXX", cmd[512];
	FILE *f;
	int fd = mkstemp(path), status;

	assert_true(fd >= 0);
	assert_non_null(f = fdopen(fd, "w"));
	fprintf(f, "user = \"\"\ngroup = \"\"\n%s", text);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "'%s' -t -c '%s'",
	    harness_program("GOPROD"), path);
	status = harness_run(cmd, out, len);
	unlink(path);
	return status;
}

char *
harness_collect(pid_t pid, int fd, int *status)
{
	size_t len = 0, cap = 65536;
	char *s = malloc(cap);
	ssize_t n;

	assert_non_null(s);
	while ((n = read(fd, s + len, cap - len - 1)) > 0)
		len += (size_t)n;
	s[len] = '\0';
	close(fd);
	assert_int_equal(waitpid(pid, status, 0), pid);
	return s;
}

unsigned long long
harness_json_number(const char *json, const char *key)
{
	char pat[96];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	if (p == NULL)
		fail_msg("no %s in %s", key, json);
	return strtoull(p + strlen(pat), NULL, 10);
}
