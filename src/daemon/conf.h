/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf.h - the configuration of goprod, read from gopro.conf with
 * libconfuse by conf.c and copied into this plain struct, so nothing else in
 * the program sees libconfuse.  Every value here is already validated and in
 * its final unit (seconds as double, sizes in bytes).
 */
#ifndef GOPRO_CONF_H
#define GOPRO_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "log.h"
#include "proxy.h"
#include "unixsock.h"

struct tls_ctx;

#define CONF_MAX_LISTEN 16
#define CONF_MAX_PROXY_FROM 64
#define CONF_MAX_WORKERS 64
#define CONF_ERR_MAX 2048
#define CONF_MAX_MODULES 8
#define CONF_MAX_MODULE_OPTIONS 32
/* A listen address "unix:/path" is a unix stream socket at /path. */
#define CONF_UNIX_PREFIX "unix:"

struct conf_listen {
	char *text;                   /* as written: "0.0.0.0:8888", "[::]:8888" */
	struct sockaddr_storage addr; /* resolved, numeric; AF_UNIX for unix: */
	socklen_t addrlen;
	bool proxy;                   /* in proxy_protocol: PROXY header first */
	bool tls;                     /* in tls.listen: a TLS handshake first */
	struct unixsock_file file;    /* unix: the file the master bound */
};

struct conf_auth {
	bool required;
	char *users_file;      /* NULL when not configured */
	unsigned max_attempts; /* consecutive failures before close, >= 1 */
	double login_rate;     /* attempts per second per address; 0 = off */
	unsigned login_burst;
	unsigned threads;      /* hashing threads per worker */
	double queue_timeout;  /* seconds a LOGIN may wait for a thread */
};

/* One "key = value" of a module section that is the module's own option. */
struct conf_module_opt {
	char *key;
	char *value;
	int line;
};

/* A module NAME { ... } section; the module's own options are checked by
 * module.c once the module's descriptor is known. */
struct conf_module {
	char *name;
	char *path;                   /* NULL: the built-in module NAME */
	int line;                     /* of the section */
	uint8_t commands[256];        /* claimed codes; ncommands 0: the module's */
	unsigned ncommands;
	double timeout;               /* seconds, > 0 */
	unsigned max_inflight;        /* per connection */
	struct conf_module_opt opts[CONF_MAX_MODULE_OPTIONS];
	size_t nopts;
	int fd;                       /* the file validated (master), -1 */
};

/* The tls section; ctx is built from the rest by conf_load (tls.c). */
struct conf_tls {
	char *certificate;     /* PEM chain, server certificate first */
	char *key;
	char *client_ca;       /* NULL when not configured */
	char *crl;
	char *ciphers;         /* TLS 1.2 cipher list; NULL = OpenSSL's */
	char *ciphersuites;    /* TLS 1.3 suites; NULL = OpenSSL's */
	int min_version;       /* 0x0303 = TLS 1.2, 0x0304 = TLS 1.3 */
	int max_version;
	int verify_client;     /* enum tls_verify */
	int identity;          /* enum tls_identity */
	double handshake_timeout;
	bool ktls;
	unsigned ticket_rotation; /* seconds between two ticket keys, >= 1 */
	struct tls_ctx *ctx;   /* NULL when no listener speaks TLS */
	int64_t expiry;        /* of the certificate, unix seconds; 0 = none */
};

struct gopro_conf {
	char *path;                   /* the file this was read from */
	char *source;                 /* the same with links resolved, as read */
	struct conf_listen listen[CONF_MAX_LISTEN];
	size_t nlisten;
	int backlog;
	unsigned workers;             /* resolved: "auto" becomes the CPU count */
	bool workers_auto;
	bool cpu_affinity;            /* worker_cpu_affinity = auto */
	char *user;                   /* NULL or "" = do not change */
	char *group;
	char *pid_file;
	char *stats_file;
	char *control_socket;
	unsigned unix_mode;           /* of the unix listeners' socket files */
	char *unix_group;             /* their group; NULL or "" = group */
	char *metrics_listen;         /* NULL = off */
	enum log_target log_target;
	char *log_file;               /* for LOG_TARGET_FILE */
	int log_level;                /* syslog priority */
	bool log_connections;         /* one line per connection at its close */
	double idle_timeout;          /* seconds, 0 = off */
	double frame_timeout;
	double send_timeout;
	double drain_timeout;
	double goaway_grace;
	double block_warn;            /* a loop iteration this long is logged */
	double worker_stall_timeout;  /* no loop progress: SIGABRT; 0 = off */
	unsigned rollback_crashes;    /* crashes after a reload: roll back; 0 off */
	double rollback_window;       /* ... within this long of the reload */
	uint32_t max_body;            /* bytes */
	unsigned max_connections;     /* per worker */
	size_t output_high_water;     /* bytes */
	size_t output_low_water;
	char *message_prefix;
	size_t message_prefix_len;
	struct conf_auth auth;
	/* Every option as "name=value" lines, defaults filled in (goprod -T). */
	char *effective;
	struct conf_tls tls;
	/* proxy_protocol_from: who may send a PROXY header. */
	struct proxy_net proxy_from[CONF_MAX_PROXY_FROM];
	size_t nproxy_from;
	struct conf_module modules[CONF_MAX_MODULES];
	size_t nmodules;
};

/*
 * Read and validate path.  On success return 0 and a new config in *out.
 * On failure return -1 and put every error found, one per line, each as
 * "file:line: option: what is wrong, what is expected", in err[0..errlen).
 */
int conf_load(const char *path, struct gopro_conf **out, char *err,
    size_t errlen);
void conf_free(struct gopro_conf *conf);

/*
 * Where a daemon started from path would be, for goproctl when path does
 * not load: a typo elsewhere in the file must not hide a running daemon.
 * The last top-level control_socket, stats_file and pid_file and the first
 * listen address as written in the file (paths only when absolute), the
 * defaults for the rest; malloc'd strings (NULL only when out of memory),
 * freed by conf_where_free.
 */
struct conf_where {
	char *control_socket;
	char *stats_file;
	char *pid_file;
	char *listen;
};
void conf_where_salvage(const char *path, struct conf_where *w);
void conf_where_free(struct conf_where *w);
/*
 * Whether conf_load loads the TLS certificate, key, CA and CRL (and builds
 * tls.ctx): yes by default, as goprod and goproctl check need; goproctl's
 * other commands only want paths, and may not be allowed to read the key.
 */
void conf_set_load_tls(bool load);
/*
 * conf_load, and when it succeeds print the effective configuration to
 * dump: every option with its value, defaults filled in (goprod -T).
 */
int conf_load_print(const char *path, FILE *dump, struct gopro_conf **out,
    char *err, size_t errlen);

/*
 * The names of the options whose change only takes effect after a restart,
 * which differ between a and b: written comma-separated into buf (empty when
 * none).  Used to warn on reload.
 */
void conf_restart_needed(const struct gopro_conf *a,
    const struct gopro_conf *b, char *buf, size_t len);

/*
 * What changed from the effective text old_text to new_text, written into
 * buf as "workers 2 -> 3, auth.max_attempts 3 -> 5" (empty when nothing
 * did).  conf_diff.c; used to log a reload.
 */
void conf_diff(const char *old_text, const char *new_text, char *buf,
    size_t len);

/*
 * Every option the parser accepts, NULL-terminated, as shown in messages:
 * "listen", ..., "auth.required" for the options of the auth section.
 */
const char *const *conf_option_names(void);

/* Unit parsers, exposed for the tests: 0 on success, -1 on bad input. */
int conf_parse_size(const char *s, uint64_t *bytes);   /* "10M", "512k", "42" */
int conf_parse_time(const char *s, double *seconds);   /* "60s", "5m", "250ms", "0" */
int conf_parse_address(const char *s, struct sockaddr_storage *ss,
    socklen_t *len);                                   /* "host:port", "[v6]:port" */
/* A listen address: the same, or "unix:/path". */
int conf_parse_listen_address(const char *s, struct sockaddr_storage *ss,
    socklen_t *len);

#endif /* GOPRO_CONF_H */
