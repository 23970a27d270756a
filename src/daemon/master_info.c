/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * master_info.c - what the master tells goproctl status and the metrics
 * through the stats segment: the version, the configuration file, the
 * listen addresses, the limits, the last reload and its result, a stop in
 * progress, and the accept-queue depth of every listening socket.
 *
 * The queue depth is sampled here, in the master, because a stuck worker is
 * exactly the process that would stop reporting its own: the master holds
 * every slot's socket, and TCP_INFO on a listener gives the queue length in
 * tcpi_unacked (and its limit in tcpi_sacked).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "master.h"
#include "master_info.h"

#define QUEUE_SAMPLE 1.0

_Static_assert(STATS_MAX_LISTEN == CONF_MAX_LISTEN, "listener table");
_Static_assert(STATS_MAX_SLOTS == CONF_MAX_WORKERS, "slot table");

static void
copy_text(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src != NULL ? src : "");
}

/* The parts that come from the configuration, for start and reload. */
static void
info_from_conf(struct stats_info *info, const struct gopro_conf *c)
{
	copy_text(info->version, sizeof(info->version), master_get_version());
	copy_text(info->conf_path, sizeof(info->conf_path), c->path);
	copy_text(info->metrics_listen, sizeof(info->metrics_listen),
	    c->metrics_listen);
	info->max_connections = c->max_connections;
	info->nlisten = (uint32_t)c->nlisten;
	memset(info->listen, 0, sizeof(info->listen));
	for (size_t i = 0; i < c->nlisten && i < STATS_MAX_LISTEN; i++) {
		copy_text(info->listen[i].text, sizeof(info->listen[i].text),
		    c->listen[i].text);
		info->listen[i].proxy = c->listen[i].proxy;
	}
}

static void
publish(struct master *m)
{
	if (m->stats.hdr != NULL)
		stats_info_publish(&m->stats, &m->info);
}

void
master_info_start(struct master *m)
{
	memset(&m->info, 0, sizeof(m->info));
	info_from_conf(&m->info, m->conf);
	m->info.last_reload_ok = 1;
	m->info.last_reload_success_time = (int64_t)time(NULL);
	publish(m);
}

void
master_info_reload(struct master *m, bool ok, const char *why)
{
	int64_t now = (int64_t)time(NULL);

	info_from_conf(&m->info, m->conf);
	m->info.last_reload_time = now;
	m->info.last_reload_ok = ok;
	if (ok)
		m->info.last_reload_success_time = now;
	copy_text(m->info.last_reload_error,
	    sizeof(m->info.last_reload_error), ok ? "" : why);
	publish(m);
}

void
master_info_stopping(struct master *m)
{
	m->info.stopping = 1;
	publish(m);
}

/* The length of a listener's accept queue, 0 when it cannot be read. */
static uint32_t
queue_depth(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return 0;
	return ti.tcpi_unacked;
}

static void
queue_sample_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct master *m = t->data;

	if (m->stats.hdr == NULL)
		return;
	for (size_t a = 0; a < STATS_MAX_LISTEN; a++)
		for (unsigned s = 0; s < STATS_MAX_SLOTS; s++)
			__atomic_store_n(&m->stats.hdr->accept_queue[a][s],
			    a < m->nlisten && s < m->nslots ?
			    queue_depth(m->fds[a][s]) : 0, __ATOMIC_RELAXED);
}

void
master_info_timer(struct master *m)
{
	ev_timer_init(&m->queue_timer, queue_sample_cb, 0.0, QUEUE_SAMPLE);
	m->queue_timer.data = m;
	ev_timer_start(m->loop, &m->queue_timer);
}
