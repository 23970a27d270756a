/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_unix_listen.c - goprod's unix listeners ("unix:/path" in listen)
 * with real goprod processes: one socket shared by the workers, its file
 * made with unix_mode (and unix_group) and removed at stop; a stale
 * socket file replaced, while a file that is not a socket, a symbolic
 * link and a socket that something listens on are refused without being
 * touched; reloads that add and drop the listener; a PROXY header on it;
 * and the configuration errors goprod -t reports.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gopro/client.h"
#include "harness.h"

/* A directory of the test's own for the socket, so stop's removal shows. */
struct sockdir {
	char dir[64];
	char path[100];   /* dir/gopro.sock, fits in sun_path */
	char addr[160];   /* unix:path */
};

static void
sockdir_make(struct sockdir *d)
{
	snprintf(d->dir, sizeof(d->dir), "/tmp/gopro-unixsock-XXXXXX");
	assert_non_null(mkdtemp(d->dir));
	snprintf(d->path, sizeof(d->path), "%s/gopro.sock", d->dir);
	snprintf(d->addr, sizeof(d->addr), "unix:%s", d->path);
}

static void
sockdir_remove(struct sockdir *d)
{
	unlink(d->path);
	assert_int_equal(rmdir(d->dir), 0);
}

/* The config lines of a goprod listening on g's port and on d. */
static void
listen_lines(const struct goprod *g, const struct sockdir *d,
    const char *extra, char *buf, size_t len)
{
	snprintf(buf, len, "listen = {\"%s\", \"%s\"}\n%s", g->addr, d->addr,
	    extra ? extra : "");
}

static void
start_on(struct goprod *g, const struct sockdir *d, const char *extra)
{
	char conf[1024];

	harness_prepare(g, harness_free_port(), NULL);
	listen_lines(g, d, extra, conf, sizeof(conf));
	harness_rewrite_conf(g, conf);
	harness_launch(g);
}

/* A goprod that must refuse to start: its exit status, its output. */
static int
start_refused(struct goprod *g, const struct sockdir *d, char *out,
    size_t len)
{
	char conf[1024], cmd[1024];

	harness_prepare(g, harness_free_port(), NULL);
	listen_lines(g, d, NULL, conf, sizeof(conf));
	harness_rewrite_conf(g, conf);
	/* timeout: a goprod that started after all is stopped, not left. */
	snprintf(cmd, sizeof(cmd), "timeout 20 '%s' -f -c '%s'",
	    harness_program("GOPROD"), g->conf_path);
	return harness_run(cmd, out, len);
}

static bool
heartbeat_at(const char *addr)
{
	struct gopro_client *c = gopro_client_new();
	bool ok = c != NULL && gopro_client_connect(c, addr, 5.0) == GOPRO_OK &&
	    gopro_client_heartbeat(c, "u", 1, 5.0) == GOPRO_OK;

	gopro_client_free(c);
	return ok;
}

static bool
gone(const char *path)
{
	struct stat st;

	return lstat(path, &st) < 0 && errno == ENOENT;
}

/* goprod -t of text must fail with a line that contains want. */
static void
refused(const char *text, const char *want)
{
	char out[4096];

	assert_int_equal(harness_check_conf(text, out, sizeof(out)), 1);
	if (strstr(out, want) == NULL)
		fail_msg("goprod -t said \"%s\", not \"%s\"", out, want);
}

/*
 * Two workers share the one socket: 20 connections at once are all
 * served; the file has unix_mode; stop removes it.
 */
static void
test_served_with_mode_and_removed(void **state)
{
	struct goprod g;
	struct sockdir d;
	struct gopro_client *c[20];
	struct stat st;

	sockdir_make(&d);
	start_on(&g, &d, "workers = 2\nunix_mode = 0640\n");
	assert_int_equal(lstat(d.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0640);
	for (int i = 0; i < 20; i++) {
		assert_non_null(c[i] = gopro_client_new());
		assert_int_equal(gopro_client_connect(c[i], d.addr, 5.0),
		    GOPRO_OK);
	}
	for (int i = 0; i < 20; i++) {
		assert_int_equal(gopro_client_heartbeat(c[i], &i, sizeof(i),
		    5.0), GOPRO_OK);
		gopro_client_free(c[i]);
	}
	assert_true(harness_log_has(&g, d.addr));
	assert_int_equal(harness_stop(&g), 0);
	assert_true(gone(d.path));
	sockdir_remove(&d);
}

/* unix_group gives the file to another group (root only can). */
static void
test_unix_group(void **state)
{
	struct goprod g;
	struct sockdir d;
	const struct group *gr = getgrnam("daemon");
	char extra[128];
	struct stat st;

	if (geteuid() != 0 || gr == NULL)
		skip();
	sockdir_make(&d);
	snprintf(extra, sizeof(extra), "unix_group = \"%s\"\n", gr->gr_name);
	start_on(&g, &d, extra);
	assert_int_equal(lstat(d.path, &st), 0);
	assert_int_equal(st.st_gid, gr->gr_gid);
	assert_true(heartbeat_at(d.addr));
	assert_int_equal(harness_stop(&g), 0);
	sockdir_remove(&d);
	refused("unix_group = \"no-such-group-x\"\n",
	    "unix_group: no such group \"no-such-group-x\"");
}

/* A socket file that a dead server left is replaced. */
static void
test_stale_socket_replaced(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct goprod g;
	struct sockdir d;
	int fd;

	sockdir_make(&d);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", d.path);
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	start_on(&g, &d, NULL);
	assert_true(heartbeat_at(d.addr));
	assert_int_equal(harness_stop(&g), 0);
	assert_true(gone(d.path));
	sockdir_remove(&d);
}

/* A regular file, and a symbolic link to one, are refused and kept. */
static void
test_not_a_socket_refused(void **state)
{
	struct goprod g;
	struct sockdir d;
	char out[4096], target[160], buf[16] = "";
	FILE *f;

	sockdir_make(&d);
	snprintf(target, sizeof(target), "%s/precious", d.dir);
	assert_non_null(f = fopen(target, "w"));
	fputs("keep me", f);
	fclose(f);
	assert_int_equal(link(target, d.path), 0);
	assert_int_equal(start_refused(&g, &d, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "exists and is not a socket"));
	assert_non_null(strstr(out, d.path));
	harness_stop(&g);
	assert_int_equal(unlink(d.path), 0);
	assert_int_equal(symlink(target, d.path), 0);
	assert_int_equal(start_refused(&g, &d, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "exists and is not a socket"));
	harness_stop(&g);
	assert_non_null(f = fopen(target, "r"));
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "keep me");
	unlink(target);
	sockdir_remove(&d);
}

/* A socket something listens on is not taken over. */
static void
test_live_socket_refused(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct goprod g;
	struct sockdir d;
	char out[4096];
	int lfd, cfd;

	sockdir_make(&d);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", d.path);
	assert_true((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(start_refused(&g, &d, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "another process listens on it"));
	harness_stop(&g);
	/* Still the test's socket. */
	assert_true((cfd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	close(cfd);
	close(lfd);
	sockdir_remove(&d);
}

/* Reloads: the listener is added, then dropped (its file removed). */
static void
test_reload_adds_and_drops(void **state)
{
	struct goprod g;
	struct sockdir d;
	char conf[1024];

	sockdir_make(&d);
	harness_start(&g, "workers = 2\n");
	assert_false(heartbeat_at(d.addr));
	listen_lines(&g, &d, "workers = 2\n", conf, sizeof(conf));
	harness_rewrite_conf(&g, conf);
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	harness_wait_settled(&g, 1);
	assert_true(heartbeat_at(d.addr));
	harness_rewrite_conf(&g, "workers = 2\n");
	assert_int_equal(kill(g.pid, SIGHUP), 0);
	harness_wait_settled(&g, 2);
	assert_true(gone(d.path));
	assert_false(heartbeat_at(d.addr));
	assert_true(harness_heartbeat(&g, 5.0));
	assert_int_equal(harness_stop(&g), 0);
	sockdir_remove(&d);
}

/*
 * A unix listener in proxy_protocol trusts its peers (the file's mode says
 * who connects): the header's client address is the client's.
 */
static void
test_proxy_header(void **state)
{
	static const char hdr[] = "PROXY TCP4 198.51.100.7 192.0.2.1 40000 "
	    "8888\r\n";
	struct goprod g;
	struct sockdir d;
	struct gopro_client *c;
	char extra[256];
	int fd;

	sockdir_make(&d);
	snprintf(extra, sizeof(extra), "proxy_protocol = {\"%s\"}\n", d.addr);
	start_on(&g, &d, extra);
	assert_non_null(c = gopro_client_new());
	assert_int_equal(gopro_client_connect(c, d.addr, 5.0), GOPRO_OK);
	fd = gopro_client_fd(c);
	assert_int_equal(send(fd, hdr, strlen(hdr), MSG_NOSIGNAL),
	    (ssize_t)strlen(hdr));
	assert_int_equal(gopro_client_heartbeat(c, "p", 1, 5.0), GOPRO_OK);
	assert_true(harness_recent_client(&g, "198.51.100.7", true));
	gopro_client_free(c);
	/* Without the header the listener still wants one. */
	assert_false(heartbeat_at(d.addr));
	assert_int_equal(harness_stop(&g), 0);
	sockdir_remove(&d);
}


static void
test_conf_errors(void **state)
{
	char out[4096];

	refused("listen = {\"unix:gopro.sock\"}\n", ":3: listen: "
	    "\"unix:gopro.sock\": the socket path must be absolute");
	refused("listen = {\"unix:/tmp/a.sock\", \"unix:/tmp/a.sock\"}\n",
	    "is the same address as");
	refused("listen = {\"unix:/tmp/gopro-x.sock\"}\n"
	    "control_socket = \"/tmp/gopro-x.sock\"\n", "is the same file as");
	refused("unix_mode = 0968\n", "unix_mode: \"0968\" is not a file mode");
	refused("unix_mode = 01777\n", "unix_mode: \"01777\" is not a file mode");
	/* A check binds nothing. */
	assert_int_equal(harness_check_conf("listen = "
	    "{\"unix:/tmp/gopro-t-never.sock\"}\n", out, sizeof(out)), 0);
	assert_true(gone("/tmp/gopro-t-never.sock"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_served_with_mode_and_removed),
		cmocka_unit_test(test_unix_group),
		cmocka_unit_test(test_stale_socket_replaced),
		cmocka_unit_test(test_not_a_socket_refused),
		cmocka_unit_test(test_live_socket_refused),
		cmocka_unit_test(test_reload_adds_and_drops),
		cmocka_unit_test(test_proxy_header),
		cmocka_unit_test(test_conf_errors),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
