#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# run.sh - build the Debian packages from a clean copy of the tree, install
# them, run the installed goprod on the installed /etc/gopro.conf, drive it
# with the installed goproctl, build two small programs outside the tree
# with nothing but "pkg-config --cflags --libs gopro" against the installed
# libgopro1 and libgopro-dev and have them talk to that goprod, and a third
# with "pkg-config --cflags --libs gopro-tls" (libgopro-tls1,
# libgopro-tls-dev) that pings a second installed goprod over TLS, install
# them again (an upgrade for postinst, which must hand the running goprod
# the binary in place), purge the packages and check that nothing is left;
# then build the RPMs from the
# "make dist" tarball.  Run by .ci/run as
# root on Debian 12; takes two to three minutes.
#
#   bash tests/packaging/run.sh
#
# GOPRO_KEEP_DEB=DIR copies the built .deb files to DIR (for
# tests/systemd/run.sh).  PACKAGING_CHECK=1 also runs "make check" inside
# both package builds; by
# default they skip it (DEB_BUILD_OPTIONS=nocheck, rpmbuild --nocheck)
# because CI has just run the suite twice on the same tree.
#
# No systemd runs on the CI machines, so goprod is started directly, as
# root, the way the package's documentation allows: it must create
# /run/goprod and drop to the user gopro that the package created.  It
# listens where the shipped configuration says (port 8888); the test checks
# that the port is free first rather than edit the installed file.  A
# second run starts it the way goprod.service does (user gopro from the
# start, only CAP_NET_BIND_SERVICE, no_new_privs; setpriv(1) stands in for
# systemd) and reloads it through the unit's ExecReload command.
#
# The machine is left as it was found, even on failure: the package is
# purged, the goprod started here (and only it, by pid, with its workers)
# is stopped, and the user and group gopro are deleted if the package
# created them.  The package itself keeps them on purge, as Debian does
# with system users; the test checks that.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
port=$(sed -n 's/^listen *= *{ *"[^"]*:\([0-9]*\)".*/\1/p' "$top/etc/gopro.conf")
work=""
goprod_pid=""
tls_pid=""
tls_dir=""
installed=no
lib_installed=no
had_user=yes
had_group=yes
t0=$(date +%s)

say() { echo "packaging: [$(( $(date +%s) - t0 ))s] $*"; }
fail() { echo "packaging: FAIL: $*" >&2; exit 1; }

# ------------------------------------------------------------ cleanup

# True while the process runs (a zombie child of ours counts as gone).
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# Stop the goprod this script started and its workers, by pid only.
stop_goprod() {
	local pid=$goprod_pid kids i
	[ -n "$pid" ] || return 0
	goprod_pid=""
	kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 50); do alive "$pid" || break; sleep 0.2; done
		alive "$pid" && kill -KILL "$pid" 2>/dev/null
	fi
	for i in $kids; do
		alive "$i" && kill -KILL "$i" 2>/dev/null
	done
	wait "$pid" 2>/dev/null || true
}

remove_user_if_ours() {
	if [ "$had_user" = no ] && getent passwd gopro >/dev/null; then
		userdel gopro 2>/dev/null || true
	fi
	if [ "$had_group" = no ] && getent group gopro >/dev/null; then
		groupdel gopro 2>/dev/null || true
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT
	set +e
	stop_goprod
	stop_tls_goprod
	if [ "$installed" = yes ] && dpkg-query -W gopro >/dev/null 2>&1; then
		dpkg --purge gopro >/dev/null 2>&1
	fi
	if [ "$lib_installed" = yes ]; then
		dpkg --purge libgopro-tls-dev libgopro-tls1 libgopro-dev \
		    libgopro1 >/dev/null 2>&1
	fi
	remove_user_if_ours
	[ -n "$tls_dir" ] && rm -rf "$tls_dir"
	if [ $rc -ne 0 ] && [ -s "$work/goprod.log" ]; then
		echo "==== the log of the installed goprod"
		tail -40 "$work/goprod.log"
	fi
	[ -n "$work" ] && rm -rf "$work"
	[ $rc -eq 0 ] && say "all passed" || echo "packaging: failed" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ preconditions

port_busy() {
	if command -v ss >/dev/null; then
		[ -n "$(ss -Hltn "sport = :$1")" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# True when dpkg has any state for gopro (installed, half-installed,
# config-files); pipes into grep -q are avoided because of pipefail.
known_to_dpkg() {
	local st
	st=$(dpkg-query -W -f='${db:Status-Status}' gopro 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != not-installed ]
}

preconditions() {
	local f pid
	[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs a package)"
	[ -n "$port" ] || fail "cannot find the port of listen in $top/etc/gopro.conf"
	if known_to_dpkg; then
		fail "the package gopro is already installed here; this test" \
		    "installs and purges it: run 'dpkg --purge gopro' first"
	fi
	for f in /etc/gopro.conf /usr/sbin/goprod /usr/bin/goproctl; do
		[ ! -e "$f" ] || fail "$f exists outside a package; the test" \
		    "would overwrite and then remove it"
	done
	pid=$(cat /run/goprod/goprod.pid 2>/dev/null || true)
	if [ -n "$pid" ] && alive "$pid"; then
		fail "a goprod (pid $pid) runs from /run/goprod; stop it first"
	fi
	if port_busy "$port"; then
		fail "port $port, where the shipped /etc/gopro.conf listens, is" \
		    "in use on this machine (see: ss -ltnp 'sport = :$port');" \
		    "free it and run again"
	fi
}

# Installs what is missing of the given Debian packages.
need_packages() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# A copy of the tree as a clean clone would have it (tracked and new files,
# nothing ignored, so no build products), with local changes.
copy_tree() {
	local dest=$1
	mkdir -p "$dest"
	if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$top" && git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do
				[ -e "$f" ] && printf '%s\0' "$f"
			done | tar -cf - --null -T -) | tar -xf - -C "$dest"
	else
		tar -C "$top" --exclude=./_build --exclude=./.git \
			--exclude=./debian -cf - . | tar -xf - -C "$dest"
	fi
}

# ------------------------------------------------------------ the .deb

build_deb() {
	local src=$work/deb/gopro opts="parallel=$(nproc)"
	[ "${PACKAGING_CHECK:-0}" = 1 ] || opts="nocheck $opts"
	copy_tree "$src"
	cp -a "$src/contrib/debian" "$src/debian"
	if ! (cd "$src" && dpkg-checkbuilddeps) >/dev/null 2>&1; then
		say "installing the build dependencies"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >/dev/null
		apt-get build-dep -y -q --no-install-recommends "$src" >/dev/null
	fi
	say "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=$opts)"
	if ! (cd "$src" && DEB_BUILD_OPTIONS="$opts" \
	    timeout 600 dpkg-buildpackage -us -uc -b) >"$work/deb.log" 2>&1; then
		tail -60 "$work/deb.log"
		fail "dpkg-buildpackage failed (the end of its log is above)"
	fi
	deb=$(ls "$work"/deb/gopro_*_"$(dpkg --print-architecture)".deb)
	libdebs=$(ls "$work"/deb/libgopro1_*.deb "$work"/deb/libgopro-dev_*.deb \
	    "$work"/deb/libgopro-tls1_*.deb "$work"/deb/libgopro-tls-dev_*.deb) ||
		fail "the library packages libgopro1, libgopro-dev, libgopro-tls1 and" \
		    "libgopro-tls-dev were not built"
	say "built $(basename "$deb") $(echo $libdebs | xargs -n1 basename | tr '\n' ' ')"
	# tests/systemd/run.sh installs the same packages under systemd.
	if [ -n "${GOPRO_KEEP_DEB:-}" ]; then
		mkdir -p "$GOPRO_KEEP_DEB"
		cp "$work"/deb/*.deb "$GOPRO_KEEP_DEB"/
		say "kept the packages in $GOPRO_KEEP_DEB"
	fi
}

run_lintian() {
	local out
	out=$(lintian --display-info --pedantic "$work"/deb/gopro_*.changes 2>&1 |
		grep -v 'running with root privileges' || true)
	if [ -z "$out" ]; then
		say "lintian: no tags"
	else
		say "lintian (errors fail the test; warnings are listed in README.md):"
		echo "$out" | sed 's/^/    /'
	fi
	! grep -q '^E:' <<<"$out" || fail "lintian reports errors (above)"
}

install_deb() {
	getent passwd gopro >/dev/null || had_user=no
	getent group gopro >/dev/null || had_group=no
	local conffiles
	installed=yes
	dpkg -i "$deb" >"$work/dpkg.log" 2>&1 ||
		{ cat "$work/dpkg.log"; fail "dpkg -i $(basename "$deb") failed"; }
	say "installed; user gopro $( [ $had_user = yes ] && echo 'existed' ||
	    echo 'created by the package')"
	getent passwd gopro >/dev/null || fail "the package did not create user gopro"
	conffiles=$(dpkg-query -W -f='${Conffiles}\n' gopro)
	grep -q '^ /etc/gopro.conf ' <<<"$conffiles" ||
		fail "/etc/gopro.conf is not a conffile of the package"
	grep -q '^ /etc/default/goprod ' <<<"$conffiles" ||
		fail "/etc/default/goprod is not a conffile of the package"
	[ "$(stat -c %U:%G:%a /etc/gopro)" = root:gopro:750 ] ||
		fail "/etc/gopro is $(stat -c %U:%G:%a /etc/gopro), not root:gopro:750"
	grep -q '^listen = {"127.0.0.1:8888", "\[::1\]:8888"}' /etc/gopro.conf ||
		fail "the installed /etc/gopro.conf does not listen on loopback only"
	# A machine booted with systemd has started the unit: use it, then stop
	# it so that the installed goprod can be started by hand below.
	if [ -d /run/systemd/system ]; then
		systemctl is-active --quiet goprod.service ||
			fail "goprod.service did not start (systemctl status goprod)"
		systemctl stop goprod.service
	fi
}

check_unit() {
	local unit=/lib/systemd/system/goprod.service score
	[ -f "$unit" ] || fail "the package did not install $unit"
	if ! command -v systemd-analyze >/dev/null; then
		say "systemd-analyze missing: unit not verified"
		return 0
	fi
	systemd-analyze verify "$unit" ||
		fail "systemd-analyze verify $unit reports problems (above)"
	# --offline reads the file itself, so no running systemd is needed.
	score=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null |
		sed -n 's/.*Overall exposure level for goprod.service: \([0-9.]*\).*/\1/p')
	[ -n "$score" ] || fail "systemd-analyze security gave no score for $unit"
	say "unit verified; systemd-analyze security exposure $score (of 10, lower is safer)"
	awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' ||
		fail "the unit's exposure $score is above 2.0: a sandboxing line was lost"
}

# ------------------------------------------------------------ running it

expect_output() {
	local what=$1 pattern=$2 out=$3
	grep -qE -- "$pattern" <<<"$out" ||
		{ echo "$out"; fail "$what: no line matching '$pattern' (output above)"; }
}

start_goprod() {
	say "starting /usr/sbin/goprod -f -c /etc/gopro.conf as root"
	/usr/sbin/goprod -f -c /etc/gopro.conf >"$work/goprod.log" 2>&1 &
	goprod_pid=$!
	wait_ready
}

wait_ready() {
	local i
	for i in $(seq 100); do
		alive "$goprod_pid" || fail "goprod exited at start (its log is below)"
		goproctl status >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	fail "goprod (pid $goprod_pid) did not answer goproctl status within 20s"
}

check_identity() {
	local kids k
	[ "$(stat -c %U:%G /run/goprod)" = gopro:gopro ] ||
		fail "/run/goprod is $(stat -c %U:%G /run/goprod), not gopro:gopro"
	[ "$(cat /run/goprod/goprod.pid)" = "$goprod_pid" ] ||
		fail "/run/goprod/goprod.pid does not hold $goprod_pid"
	[ -S /run/goprod/goprod.sock ] || fail "no control socket /run/goprod/goprod.sock"
	[ -f /run/goprod/goprod.stats ] || fail "no statistics file /run/goprod/goprod.stats"
	[ "$(ps -o user= -p "$goprod_pid")" = gopro ] ||
		fail "the master runs as $(ps -o user= -p "$goprod_pid"), not gopro"
	kids=$(ps -o pid= --ppid "$goprod_pid")
	[ -n "$kids" ] || fail "the master has no workers"
	for k in $kids; do
		[ "$(ps -o user= -p "$k")" = gopro ] || fail "worker $k does not run as gopro"
	done
	say "master $goprod_pid and $(wc -w <<<"$kids") workers run as gopro; /run/goprod is gopro's"
}

check_goproctl() {
	local out
	out=$(goproctl status) || fail "goproctl status failed"
	expect_output "goproctl status" "master pid $goprod_pid," "$out"
	out=$(goproctl ping -n 3 -i 0.1 -W 2 "127.0.0.1:$port") ||
		{ echo "$out"; fail "goproctl ping 127.0.0.1:$port failed"; }
	expect_output "goproctl ping" " 0% lost" "$out"
	out=$(goproctl send "127.0.0.1:$port" hello) || fail "goproctl send failed"
	expect_output "goproctl send" "Server says: hello" "$out"
	out=$(goproctl stats) || fail "goproctl stats failed"
	[ -n "$out" ] || fail "goproctl stats printed nothing"
	if command -v python3 >/dev/null; then
		goproctl stats --json | python3 -m json.tool >/dev/null ||
			fail "goproctl stats --json is not JSON"
	fi
	# The reload of the unit's ExecReload, done by the unprivileged master.
	out=$(goproctl reload) || { echo "$out"; fail "goproctl reload failed"; }
	expect_output "goproctl reload" "^reloaded" "$out"
	say "goproctl status, ping, send, stats and reload work"
}

# Reinstalling the package is an upgrade for its postinst: the running
# goprod must take the "new" binary in place, keeping its pid.
upgrade_by_dpkg() {
	local gen0 gen1 out
	gen0=$(goproctl stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["master"]["generation"])')
	dpkg -i "$deb" >"$work/dpkg-upgrade.log" 2>&1 ||
		{ cat "$work/dpkg-upgrade.log"; fail "dpkg -i over the installed package failed"; }
	grep -q "^upgraded in place: pid $goprod_pid," "$work/dpkg-upgrade.log" ||
		{ cat "$work/dpkg-upgrade.log"; fail "postinst did not upgrade goprod $goprod_pid in place"; }
	alive "$goprod_pid" || fail "the master $goprod_pid is gone after the package upgrade"
	gen1=$(goproctl stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["master"]["generation"])')
	[ "$gen1" -gt "$gen0" ] || fail "no new generation after the upgrade ($gen0 -> $gen1)"
	out=$(goproctl ping -n 1 -W 2 "127.0.0.1:$port") ||
		{ echo "$out"; fail "no heartbeat after the package upgrade"; }
	say "dpkg -i again: postinst upgraded goprod in place (pid $goprod_pid, generation $gen0 -> $gen1)"
}

stop_it() {
	local pid=$goprod_pid rc=0
	goproctl stop >/dev/null || fail "goproctl stop failed"
	wait "$pid" || rc=$?
	goprod_pid=""
	[ $rc -eq 0 ] || fail "goprod exited with status $rc after goproctl stop"
	[ -z "$(ls -A /run/goprod)" ] ||
		fail "goprod left files in /run/goprod: $(ls -A /run/goprod)"
	say "goproctl stop: goprod exited 0 and removed its files"
}

# The unit's way, without systemd: as user gopro from the start, holding
# only CAP_NET_BIND_SERVICE (ambient), with no_new_privs, in a /run/goprod
# made for gopro as RuntimeDirectory= does.  The shipped configuration
# names user gopro, which goprod ignores when it does not start as root.
unit_way() {
	local priv=(setpriv --reuid=gopro --regid=gopro --init-groups
		--bounding-set=-all,+net_bind_service
		--inh-caps=-all,+net_bind_service
		--ambient-caps=-all,+net_bind_service --no-new-privs)
	local out
	command -v setpriv >/dev/null || { say "setpriv missing: unit's way not run"; return 0; }
	install -d -m 0755 -o gopro -g gopro /run/goprod
	"${priv[@]}" /usr/sbin/goprod -t -c /etc/gopro.conf >/dev/null ||
		fail "ExecStartPre (goprod -t) fails as user gopro"
	say "starting goprod as user gopro with CAP_NET_BIND_SERVICE, as the unit does"
	"${priv[@]}" /usr/sbin/goprod -f -c /etc/gopro.conf >"$work/goprod.log" 2>&1 &
	goprod_pid=$!
	wait_ready
	[ "$(ps -o user= -p "$goprod_pid")" = gopro ] || fail "not running as gopro"
	out=$("${priv[@]}" /usr/bin/goproctl -c /etc/gopro.conf reload) ||
		{ echo "$out"; fail "ExecReload (goproctl reload) fails as user gopro"; }
	goproctl ping -n 1 -W 2 "127.0.0.1:$port" >/dev/null ||
		fail "no heartbeat after the reload"
	stop_it
	rmdir /run/goprod
}

# ------------------------------------------------------------ the library

# A client program that knows nothing of the tree: the blocking client
# (connect, MESSAGE, HEARTBEAT, two pipelined requests) and the
# asynchronous one on libev (100 pipelined heartbeats).
write_consumers() {
	cat >"$1/sync.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <gopro/client.h>

int
main(int argc, char *argv[])
{
	struct gopro_client *c = gopro_client_new();
	struct gopro_frame f;

	(void)argc;
	if (c == NULL || gopro_client_connect(c, argv[1], 5) != GOPRO_OK ||
	    gopro_client_heartbeat(c, "x", 1, 5) != GOPRO_OK ||
	    gopro_client_message(c, "hello", 5, &f, 5) != GOPRO_OK)
		goto fail;
	printf("%.*s\n", (int)f.header.length, (const char *)f.body);
	if (gopro_client_send(c, GOPRO_CMD_MESSAGE, "a", 1, 5) != GOPRO_OK ||
	    gopro_client_send(c, GOPRO_CMD_MESSAGE, "b", 1, 5) != GOPRO_OK ||
	    gopro_client_recv(c, &f, 5) != GOPRO_OK ||
	    f.body[f.header.length - 1] != 'a' ||
	    gopro_client_recv(c, &f, 5) != GOPRO_OK ||
	    f.body[f.header.length - 1] != 'b')
		goto fail;
	puts("pipelined ok");
	gopro_client_free(c);
	return 0;
fail:
	fprintf(stderr, "%s\n", c ? gopro_client_error(c) : "no memory");
	return 1;
}
C
	cat >"$1/async.c" <<'C'
#include <stdio.h>
#include <gopro/async.h>
#include <gopro/libev.h>

static int left = 100, ok;

static void
done(struct gopro_async *a, int result, const struct gopro_frame *f,
    void *arg)
{
	(void)arg;
	ok += result == GOPRO_OK && f->header.command == GOPRO_CMD_HEARTBEAT;
	if (--left == 0)
		gopro_async_free(a);
}

int
main(int argc, char *argv[])
{
	const char *addrs[] = { argv[1] };
	struct gopro_async_options o;
	struct gopro_async *a;
	int rc;

	(void)argc;
	gopro_async_options_init(&o);
	o.addresses = addrs;
	o.naddresses = 1;
	o.max_retries = 2;
	if ((a = gopro_async_new(&o, &rc)) == NULL ||
	    gopro_libev_attach(a, EV_DEFAULT) != GOPRO_OK)
		return 1;
	for (int i = 0; i < 100; i++)
		gopro_async_request(a, GOPRO_CMD_HEARTBEAT, &i, sizeof(i), 0,
		    done, NULL);
	ev_run(EV_DEFAULT, 0);
	printf("%d heartbeats answered\n", ok);
	return ok == 100 ? 0 : 1;
}
C
}

check_library() {
	local dir=$work/consumer out flags multiarch used
	multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
	lib_installed=yes
	# shellcheck disable=SC2086
	dpkg -i $libdebs >"$work/dpkg-lib.log" 2>&1 ||
		{ cat "$work/dpkg-lib.log"; fail "dpkg -i of the library packages failed"; }
	[ -e "/usr/lib/$multiarch/libgopro.so.1" ] || fail "no /usr/lib/$multiarch/libgopro.so.1"
	[ -e /usr/include/gopro/async.h ] || fail "no /usr/include/gopro/async.h"
	[ "$(pkg-config --modversion gopro)" = "$(dpkg-query -W -f='${Version}' libgopro1)" ] ||
		fail "pkg-config --modversion gopro is not the package's version"
	mkdir -p "$dir"
	write_consumers "$dir"
	flags=$(pkg-config --cflags --libs gopro)
	# shellcheck disable=SC2086
	(cd "$dir" && cc -std=c11 -Wall -Wextra -Werror -o sync sync.c $flags &&
		cc -std=c11 -Wall -Wextra -Werror -o async async.c $flags -lev) \
		>"$work/consumer.log" 2>&1 ||
		{ cat "$work/consumer.log"; fail "the consumers do not build with pkg-config --cflags --libs gopro"; }
	# /lib may be a link to /usr/lib (merged /usr): compare real paths.
	used=$(ldd "$dir/sync" | sed -n 's/.*libgopro\.so\.1 => \([^ ]*\).*/\1/p')
	[ -n "$used" ] && [ "$(readlink -f "$used")" = \
	    "$(readlink -f "/usr/lib/$multiarch/libgopro.so.1")" ] ||
		fail "the consumer does not use the installed libgopro.so.1: $(ldd "$dir/sync")"
	out=$("$dir/sync" "127.0.0.1:$port" 2>&1) || { echo "$out"; fail "the blocking consumer failed"; }
	expect_output "blocking consumer" "^Server says: hello$" "$out"
	expect_output "blocking consumer" "^pipelined ok$" "$out"
	out=$("$dir/async" "127.0.0.1:$port" 2>&1) || { echo "$out"; fail "the asynchronous consumer failed"; }
	say "consumers built with pkg-config against the installed libgopro: $(tail -1 <<<"$out")"
	# OpenSSL stays off libgopro's link line: only libgopro-tls loads it.
	! readelf -d "/usr/lib/$multiarch/libgopro.so.1" | grep -qE 'NEEDED.*lib(ssl|crypto)' ||
		fail "the installed libgopro.so.1 links OpenSSL: $(readelf -d "/usr/lib/$multiarch/libgopro.so.1" | grep NEEDED)"
	! ldd "$dir/sync" | grep -qE 'lib(ssl|crypto)\.so' ||
		fail "a libgopro program loads OpenSSL: $(ldd "$dir/sync")"
}

# ------------------------------------------------------------ libgopro-tls

# A TLS client outside the tree: two connections with one context, a
# HEARTBEAT on each; the second must resume the first one's session.
write_tls_consumer() {
	cat >"$1/tls.c" <<'C'
#include <stdio.h>
#include <gopro/tls_client.h>

static int
ping(struct gopro_tls_ctx *ctx, const char *addr)
{
	struct gopro_tls *t;
	struct gopro_frame f;
	uint8_t buf[GOPRO_HEADER_SIZE + 64];
	char err[512];
	int rc;

	if ((t = gopro_tls_connect(ctx, addr, 5, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s: %s\n", addr, err);
		return -1;
	}
	rc = gopro_tls_send_frame(t, GOPRO_CMD_HEARTBEAT, "tls", 3, 5);
	if (rc == GOPRO_OK)
		rc = gopro_tls_read_frame(t, buf, sizeof(buf), &f, 5);
	if (rc == GOPRO_OK && f.header.command != GOPRO_CMD_HEARTBEAT)
		rc = GOPRO_E_PROTOCOL;
	if (rc != GOPRO_OK)
		fprintf(stderr, "%s: %s\n", addr, gopro_strerror(rc));
	else
		printf("heartbeat over %s%s\n", gopro_tls_version(t),
		    gopro_tls_resumed(t) ? ", resumed" : "");
	gopro_tls_close(t);
	return rc == GOPRO_OK ? 0 : -1;
}

int
main(int argc, char *argv[])
{
	struct gopro_tls_options o;
	struct gopro_tls_ctx *ctx;
	char err[512];
	int rc;

	(void)argc;
	gopro_tls_options_init(&o);
	o.ca_file = argv[2];
	o.servername = "localhost";
	if ((ctx = gopro_tls_ctx_new(&o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	rc = ping(ctx, argv[1]) == 0 && ping(ctx, argv[1]) == 0;
	gopro_tls_ctx_free(ctx);
	return rc ? 0 : 1;
}
C
}

stop_tls_goprod() {
	local pid=$tls_pid i
	[ -n "$pid" ] || return 0
	tls_pid=""
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 50); do alive "$pid" || break; sleep 0.2; done
	alive "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}

# The installed goprod with a TLS listener on a free port, as user gopro,
# its certificates made by tests/harness/make_certs.sh in a directory of
# its own (gopro cannot enter $work, which is root's).
start_tls_goprod() {
	local tport=$1 i
	tls_dir=$(mktemp -d /tmp/gopro-packaging-tls.XXXXXX)
	sh "$top/tests/harness/make_certs.sh" "$tls_dir/certs" >"$work/certs.log" 2>&1 ||
		{ cat "$work/certs.log"; fail "make_certs.sh failed"; }
	cat >"$tls_dir/gopro.conf" <<CONF
listen = {"127.0.0.1:$tport"}
workers = 2
pid_file = "$tls_dir/goprod.pid"
stats_file = "$tls_dir/goprod.stats"
control_socket = "$tls_dir/goprod.sock"
log = "stderr"
tls {
	listen = {"127.0.0.1:$tport"}
	certificate = "$tls_dir/certs/server.pem"
	key = "$tls_dir/certs/server.key"
}
CONF
	chown -R gopro:gopro "$tls_dir"
	chmod 0755 "$tls_dir"
	setpriv --reuid=gopro --regid=gopro --init-groups --no-new-privs \
		/usr/sbin/goprod -f -c "$tls_dir/gopro.conf" >"$work/goprod-tls.log" 2>&1 &
	tls_pid=$!
	for i in $(seq 100); do
		alive "$tls_pid" || { cat "$work/goprod-tls.log"; fail "the TLS goprod exited at start"; }
		goproctl -c "$tls_dir/gopro.conf" status >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	fail "the TLS goprod (pid $tls_pid) did not answer goproctl status within 20s"
}

check_tls_library() {
	local dir=$work/consumer tport out flags multiarch
	multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
	[ -e "/usr/lib/$multiarch/libgopro-tls.so.1" ] || fail "no /usr/lib/$multiarch/libgopro-tls.so.1"
	[ -e /usr/include/gopro/tls_client.h ] || fail "no /usr/include/gopro/tls_client.h"
	command -v setpriv >/dev/null || { say "setpriv missing: libgopro-tls not run"; return 0; }
	tport=$(( port + 1 ))
	while port_busy "$tport"; do tport=$(( tport + 1 )); done
	start_tls_goprod "$tport"
	write_tls_consumer "$dir"
	flags=$(pkg-config --cflags --libs gopro-tls) ||
		fail "pkg-config gopro-tls failed"
	# shellcheck disable=SC2086
	(cd "$dir" && cc -std=c11 -Wall -Wextra -Werror -o tls tls.c $flags) \
		>"$work/consumer-tls.log" 2>&1 ||
		{ cat "$work/consumer-tls.log"; fail "the TLS consumer does not build with pkg-config --cflags --libs gopro-tls"; }
	ldd "$dir/tls" | grep -q "libgopro-tls\.so\.1 => /" ||
		fail "the TLS consumer does not use the installed libgopro-tls.so.1: $(ldd "$dir/tls")"
	out=$("$dir/tls" "127.0.0.1:$tport" "$tls_dir/certs/ca.pem" 2>&1) ||
		{ echo "$out"; cat "$work/goprod-tls.log"; fail "the TLS consumer failed"; }
	expect_output "TLS consumer" "^heartbeat over TLSv1\.3$" "$out"
	expect_output "TLS consumer" "^heartbeat over TLSv1\.3, resumed$" "$out"
	goproctl ping --tls --ca "$tls_dir/certs/ca.pem" -n 1 -W 2 "localhost:$tport" >/dev/null ||
		fail "goproctl ping --tls localhost:$tport failed"
	stop_tls_goprod
	say "TLS consumer built with pkg-config gopro-tls: $(paste -sd ';' <<<"$out"); goproctl ping --tls works"
}

# ------------------------------------------------------------ purge

purge_deb() {
	local f left=()
	dpkg --purge libgopro-tls-dev libgopro-tls1 libgopro-dev libgopro1 \
	    >"$work/purge.log" 2>&1 ||
		{ cat "$work/purge.log"; fail "dpkg --purge of the library packages failed"; }
	lib_installed=no
	for f in /usr/include/gopro /usr/lib/*/libgopro.so* /usr/lib/*/libgopro-tls.so* \
	    /usr/lib/*/pkgconfig/gopro.pc /usr/lib/*/pkgconfig/gopro-tls.pc; do
		[ -e "$f" ] && left+=("$f")
	done
	dpkg --purge gopro >"$work/purge.log" 2>&1 ||
		{ cat "$work/purge.log"; fail "dpkg --purge gopro failed"; }
	installed=no
	! known_to_dpkg || fail "gopro is still known to dpkg"
	for f in /etc/gopro.conf /usr/sbin/goprod /usr/bin/goproctl \
	    /usr/bin/gopro-bench /lib/systemd/system/goprod.service \
	    /usr/lib/sysusers.d/gopro.conf /usr/lib/tmpfiles.d/gopro.conf \
	    /usr/share/doc/gopro /usr/share/man/man8/goprod.8.gz /run/goprod \
	    /etc/default/goprod /etc/gopro \
	    /etc/systemd/system/multi-user.target.wants/goprod.service \
	    /var/lib/systemd/deb-systemd-helper-enabled/goprod.service.dsh-also; do
		[ -e "$f" ] || [ -L "$f" ] && left+=("$f")
	done
	[ ${#left[@]} -eq 0 ] || fail "left behind after purge: ${left[*]}"
	getent passwd gopro >/dev/null ||
		fail "purge removed the user gopro (Debian keeps system users)"
	say "purged: no file left; user gopro kept, as Debian does"
	remove_user_if_ours
}

# ------------------------------------------------------------ the RPM

build_rpm() {
	local src=$work/dist top_rpm=$work/rpm nocheck=--nocheck rpm files
	[ "${PACKAGING_CHECK:-0}" = 1 ] && nocheck=""
	copy_tree "$src"
	say "make dist"
	(cd "$src" && ./autogen.sh && ./configure -q && make -s dist) \
		>"$work/dist.log" 2>&1 || { tail -40 "$work/dist.log"; fail "make dist failed"; }
	mkdir -p "$top_rpm/SOURCES"
	cp "$src"/gopro-*.tar.gz "$top/contrib/systemd/goprod.service" \
		"$top/contrib/systemd/gopro.sysusers" \
		"$top/contrib/systemd/gopro.tmpfiles" \
		"$top/contrib/systemd/goprod.default" "$top_rpm/SOURCES/"
	# --nodeps: the BuildRequires are Debian packages here, unknown to rpm.
	say "rpmbuild -ba --nodeps $nocheck contrib/rpm/gopro.spec"
	timeout 600 rpmbuild --define "_topdir $top_rpm" -ba --nodeps $nocheck \
		"$top/contrib/rpm/gopro.spec" >"$work/rpm.log" 2>&1 ||
		{ tail -60 "$work/rpm.log"; fail "rpmbuild failed (the end of its log is above)"; }
	rpm=$(ls "$top_rpm"/RPMS/*/gopro-[0-9]*.rpm)
	ls "$top_rpm"/SRPMS/gopro-*.src.rpm >/dev/null || fail "no source RPM"
	files=$(rpm -qlp "$rpm")
	grep -qx /usr/sbin/goprod <<<"$files" || fail "the RPM lacks /usr/sbin/goprod"
	grep -q '/systemd/system/goprod.service$' <<<"$files" ||
		fail "the RPM lacks the unit"
	grep -qx /etc/gopro.conf <<<"$(rpm -qcp "$rpm")" ||
		fail "/etc/gopro.conf is not a %config file of the RPM"
	files=$(rpm -qlp "$top_rpm"/RPMS/*/libgopro-[0-9]*.rpm) ||
		fail "no libgopro RPM"
	grep -q '/libgopro\.so\.1$' <<<"$files" || fail "the libgopro RPM lacks libgopro.so.1"
	files=$(rpm -qlp "$top_rpm"/RPMS/*/libgopro-devel-[0-9]*.rpm) ||
		fail "no libgopro-devel RPM"
	grep -q '/pkgconfig/gopro\.pc$' <<<"$files" || fail "libgopro-devel lacks gopro.pc"
	files=$(rpm -qlp "$top_rpm"/RPMS/*/libgopro-tls-[0-9]*.rpm) ||
		fail "no libgopro-tls RPM"
	grep -q '/libgopro-tls\.so\.1$' <<<"$files" || fail "the libgopro-tls RPM lacks libgopro-tls.so.1"
	files=$(rpm -qlp "$top_rpm"/RPMS/*/libgopro-tls-devel-[0-9]*.rpm) ||
		fail "no libgopro-tls-devel RPM"
	grep -q '/pkgconfig/gopro-tls\.pc$' <<<"$files" || fail "libgopro-tls-devel lacks gopro-tls.pc"
	say "built $(basename "$rpm") and its source RPM"
}

# ------------------------------------------------------------ main

preconditions
# debhelper and lintian for the .deb, rpm for rpmbuild, systemd for
# systemd-analyze, adduser (the package depends on it) and procps (ps)
# which minimal images lack.
need_packages dpkg-dev debhelper lintian rpm systemd adduser procps
work=$(mktemp -d /tmp/gopro-packaging.XXXXXX)
build_deb
run_lintian
install_deb
check_unit
start_goprod
check_identity
check_goproctl
check_library
check_tls_library
upgrade_by_dpkg
stop_it
unit_way
purge_deb
build_rpm
