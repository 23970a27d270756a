#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# run.sh - the interop matrix: every client against every server, so that
# an upgrade of either side never breaks the other.  Run by .ci/run:
#
#   bash tests/interop/run.sh BUILDDIR
#
# Servers (all on 127.0.0.1, free ports, files in a temporary directory):
#   plain     the goprod of BUILDDIR;
#   auth      the same with auth.required and a users file (user alice);
#   haproxy   HAProxy in front of it, speaking PROXY v2 to a proxy_protocol
#             listener (skipped when haproxy is not installed);
#   previous  a goprod built here from the previous release: the last
#             tag, or commit 51ed758 (the state before the client library)
#             when there is no tag, taken with git archive.
# Clients:
#   sync, async  tests/interop/interop_client.c on the shared libgopro.so
#                (HEARTBEAT, MESSAGE, LOGIN when needed, pipelining);
#   goproctl     ping and send (--user on auth);
#   bench        gopro-bench, 2000 pipelined requests on 4 connections;
#   simple       tests/interop/simple_client.py: HEARTBEAT and MESSAGE only,
#                one reply at a time, no library.
# Everything started here is stopped by its pid, on success and on failure.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILDDIR}" && pwd)
GOPROD=$build/src/daemon/goprod
GOPROCTL=$build/src/goproctl/goproctl
BENCH=$build/src/bench/gopro-bench
LIBDIR=$build/src/lib/.libs
PREVIOUS_FALLBACK=51ed758
work=$(mktemp -d /tmp/gopro-interop.XXXXXX)
pids=()
failures=0
t0=$(date +%s)

say() { echo "interop: [$(( $(date +%s) - t0 ))s] $*"; }
fail() { echo "interop: FAIL: $*" >&2; exit 1; }

cleanup() {
	local rc=$? pid i
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------ servers

# goprod BINARY NAME PORT [extra config lines]: started, ready, pid kept.
start_goprod() {
	local bin=$1 name=$2 port=$3 extra=${4:-} d=$work/$2 i
	mkdir -p "$d"
	cat > "$d/gopro.conf" <<-EOF
	listen = {"127.0.0.1:$port"}
	workers = 1
	user = ""
	group = ""
	pid_file = "$d/goprod.pid"
	stats_file = "$d/goprod.stats"
	control_socket = "$d/goprod.sock"
	log = "file:$d/goprod.log"
	$extra
	EOF
	"$bin" -f -c "$d/gopro.conf" >>"$d/goprod.log" 2>&1 &
	pids+=($!)
	for i in $(seq 100); do
		# A PROXY listener answers no bare heartbeat: ask the master.
		if [[ $extra == *proxy_protocol* ]]; then
			"$GOPROCTL" -c "$d/gopro.conf" status >/dev/null 2>&1 && return 0
		else
			"$GOPROCTL" ping -n 1 -W 1 "127.0.0.1:$port" >/dev/null 2>&1 && return 0
		fi
		sleep 0.1
	done
	tail -20 "$d/goprod.log"
	fail "goprod $name did not answer on 127.0.0.1:$port"
}

start_haproxy() {
	local front=$1 back=$2 cfg=$work/haproxy.cfg i
	cat > "$cfg" <<-EOF
	defaults
		mode tcp
		timeout connect 2s
		timeout client 30s
		timeout server 30s
	frontend gopro
		bind 127.0.0.1:$front
		default_backend goprod
	backend goprod
		server s1 127.0.0.1:$back send-proxy-v2
	EOF
	haproxy -db -f "$cfg" >"$work/haproxy.log" 2>&1 &
	pids+=($!)
	for i in $(seq 50); do
		"$GOPROCTL" ping -n 1 -W 1 "127.0.0.1:$front" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	cat "$work/haproxy.log"
	fail "HAProxy on 127.0.0.1:$front does not reach goprod"
}

# The previous release, built from git archive in the work directory.
build_previous() {
	local rev src=$work/previous
	rev=$(git -C "$top" describe --tags --abbrev=0 2>/dev/null || echo "$PREVIOUS_FALLBACK")
	git -C "$top" cat-file -e "$rev^{commit}" 2>/dev/null ||
		fail "cannot find $rev (a shallow clone?) to build the previous goprod"
	mkdir -p "$src"
	git -C "$top" archive "$rev" | tar -x -C "$src"
	say "building goprod of $rev (git archive)"
	(cd "$src" && ./autogen.sh && ./configure -q && make -j"$(nproc)" -s) \
		>"$work/previous-build.log" 2>&1 ||
		{ tail -30 "$work/previous-build.log"; fail "the previous goprod ($rev) does not build"; }
	PREVIOUS_GOPROD=$(find "$src/src" -name goprod -type f -perm -u+x | head -1)
	[ -n "$PREVIOUS_GOPROD" ] || fail "no goprod binary in the build of $rev"
	PREVIOUS_REV=$rev
}

# ------------------------------------------------------------ clients

build_client() {
	${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -I"$top/src/lib" \
		-o "$work/interop_client" "$top/tests/interop/interop_client.c" \
		-L"$LIBDIR" -lgopro -lev ||
		fail "tests/interop/interop_client.c does not build against $LIBDIR"
}

# cell SERVER CLIENT COMMAND...: one cell of the matrix.
cell() {
	local server=$1 client=$2 out
	shift 2
	if out=$(LD_LIBRARY_PATH=$LIBDIR timeout 60 "$@" 2>&1); then
		printf '  %-9s %-9s ok\n' "$server" "$client"
	else
		printf '  %-9s %-9s FAIL\n' "$server" "$client"
		sed 's/^/      /' <<<"$out" | tail -15
		failures=$((failures + 1))
	fi
}

# Every client against one server; user given for an auth server.
row() {
	local server=$1 port=$2 user=${3:-} addr=127.0.0.1:$2
	local login=() bench_login=() send_login=()
	if [ -n "$user" ]; then
		login=(alice secret)
		bench_login=(-u alice -p secret)
		send_login=(--user alice)
	fi
	cell "$server" sync "$work/interop_client" sync "$addr" "${login[@]}"
	cell "$server" async "$work/interop_client" async "$addr" "${login[@]}"
	cell "$server" ping "$GOPROCTL" ping -n 3 -i 0.05 -W 2 "$addr"
	cell "$server" send env GOPRO_PASSWORD=secret "$GOPROCTL" send \
		"${send_login[@]}" "$addr" hello
	cell "$server" bench "$BENCH" -s "$addr" -n 2000 -c 4 -P 8 --quiet \
		"${bench_login[@]}"
	if [ -z "$user" ]; then
		cell "$server" simple python3 "$top/tests/interop/simple_client.py" \
			127.0.0.1 "$2"
	fi
}

# ------------------------------------------------------------ main

for f in "$GOPROD" "$GOPROCTL" "$BENCH" "$LIBDIR/libgopro.so"; do
	[ -e "$f" ] || fail "$f is not built (make in $build first)"
done
command -v python3 >/dev/null || fail "python3 is needed for the simple client"
build_client
build_previous

p_plain=$(free_port); start_goprod "$GOPROD" plain "$p_plain"
printf 'secret\n' | "$GOPROCTL" passwd --stdin alice > "$work/users"
chmod 0600 "$work/users"
p_auth=$(free_port)
start_goprod "$GOPROD" auth "$p_auth" "auth {
	required = true
	users_file = \"$work/users\"
}"
p_prev=$(free_port); start_goprod "$PREVIOUS_GOPROD" previous "$p_prev"

say "matrix (server, client, result):"
row plain "$p_plain"
row auth "$p_auth" alice
if command -v haproxy >/dev/null; then
	p_back=$(free_port)
	start_goprod "$GOPROD" proxied "$p_back" "proxy_protocol = {\"127.0.0.1:$p_back\"}
proxy_protocol_from = {\"127.0.0.1\"}"
	p_front=$(free_port); start_haproxy "$p_front" "$p_back"
	row haproxy "$p_front"
else
	echo "  haproxy   (skipped: haproxy is not installed)"
fi
row previous "$p_prev"

if [ $failures -gt 0 ]; then
	fail "$failures cells of the matrix failed (above); previous = $PREVIOUS_REV"
fi
say "all cells passed (previous release: $PREVIOUS_REV)"
