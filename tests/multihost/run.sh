#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# tests/multihost/run.sh - three goprod hosts behind HAProxy, each in its
# own network namespace, with gopro-bench as the client from another one.
#
#   usage: tests/multihost/run.sh [builddir]     (root; default _build/quickstart)
#
# Network (198.51.100.0/24 only, on a bridge in a namespace of its own; the
# root namespace gets no address, no link, no route):
#   client 198.51.100.100 -> HAProxy 198.51.100.1:8888 (send-proxy-v2,
#   contrib/haproxy/haproxy.cfg as shipped) -> goprod 198.51.100.11-13:8888
#   (proxy_protocol on its listener, proxy_protocol_from = HAProxy).
#
# Checks, in order:
#   1. the load is spread over the three hosts, each goprod counts the
#      client's connections as proxied, and its log names the client's
#      address (198.51.100.100), never HAProxy's;
#   2. a direct connection from the client to a goprod (not through
#      HAProxy) is refused and counted in proxy_rejected;
#   3. kill -9 of one goprod (master and workers) under load: tcp-check
#      marks it DOWN within inter x fall (+ one interval), the requests go
#      on through the other two; the requests lost in the switch are
#      reported (those in flight on the killed host's connections);
#   4. "goproctl stop" of another host under load: it gets no new
#      connection after the drain starts and no request is lost.
# Everything it creates (namespaces, links, processes, files) is removed on
# exit, also on failure or timeout; the whole run is capped at 170 seconds.
set -euo pipefail

if [ -z "${GOPRO_MH_TIMED:-}" ]; then
	export GOPRO_MH_TIMED=1
	exec timeout -k 10 170 "$0" "$@"
fi

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/_build/quickstart}" && pwd)
GOPROD=$build/src/daemon/goprod
GOPROCTL=$build/src/goproctl/goproctl
BENCH=$build/src/bench/gopro-bench
CFG=$top/contrib/haproxy/haproxy.cfg

P=gpmh$$                        # prefix of every name this run creates
NETS="sw lb cl h1 h2 h3"
LB=198.51.100.1
CL=198.51.100.100
declare -A ADDR=([lb]=$LB [cl]=$CL [h1]=198.51.100.11 [h2]=198.51.100.12
	[h3]=198.51.100.13)
work=
declare -A PID=()

say() { echo "multihost: $*"; }
fail() { echo "multihost: FAIL: $*" >&2; exit 1; }
ns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

cleanup() {
	local rc=$? n p
	trap - EXIT INT TERM
	for p in "${PID[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	# Anything still running in our namespaces was started by this run.
	for n in $NETS; do
		for p in $(ip netns pids "$P-$n" 2>/dev/null); do
			kill -9 "$p" 2>/dev/null || true
		done
	done
	for n in $NETS; do
		ip netns del "$P-$n" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ] && [ -n "$work" ]; then
		for f in "$work"/*.log; do
			[ -f "$f" ] || continue
			echo "---- $f (last 30 lines)" >&2
			tail -n 30 "$f" >&2
		done
	fi
	[ -n "$work" ] && rm -rf "$work"
	ip netns list | grep -q "^$P-" && echo "multihost: namespaces left" >&2
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 124' INT TERM

preflight() {
	[ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces)"
	command -v ip >/dev/null || fail "needs ip (iproute2)"
	for f in "$GOPROD" "$GOPROCTL" "$BENCH"; do
		[ -x "$f" ] || fail "$f not built (give the build directory)"
	done
	if ! command -v haproxy >/dev/null; then
		say "installing haproxy"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy \
		    >/dev/null || fail "cannot install haproxy"
	fi
	# The admin stats socket of haproxy.cfg lives here (Debian's haproxy
	# package makes it; a bare haproxy binary does not).
	mkdir -p /run/haproxy
	haproxy -c -q -f "$CFG" || fail "$CFG does not parse"
}

# A bridge in namespace sw; every other namespace hangs on it by a veth pair
# created inside the namespaces, so the root namespace never sees a link.
build_network() {
	local n
	for n in $NETS; do
		ip netns add "$P-$n"
		ip -n "$P-$n" link set lo up
	done
	ip -n "$P-sw" link add br0 type bridge
	ip -n "$P-sw" link set br0 up
	for n in lb cl h1 h2 h3; do
		ip -n "$P-sw" link add "$n" type veth peer name eth0 \
		    netns "$P-$n"
		ip -n "$P-sw" link set "$n" master br0 up
		ip -n "$P-$n" addr add "${ADDR[$n]}/24" dev eth0
		ip -n "$P-$n" link set eth0 up
	done
}

# goprod on host h: PROXY listener, trusting HAProxy only, debug log.
start_goprod() {
	local h=$1 d=$work/$1 i
	mkdir -p "$d"
	cat > "$d/gopro.conf" <<-EOF
	listen = {"${ADDR[$h]}:8888"}
	proxy_protocol = {"${ADDR[$h]}:8888"}
	proxy_protocol_from = {"$LB"}
	workers = 2
	user = ""
	group = ""
	pid_file = "$d/goprod.pid"
	stats_file = "$d/goprod.stats"
	control_socket = "$d/goprod.sock"
	log = "file:$work/$h.log"
	log_level = debug
	drain_timeout = 10s
	EOF
	ns "$h" "$GOPROD" -f -c "$d/gopro.conf" 2>>"$work/$h.log" &
	PID[$h]=$!
	disown
	for i in $(seq 50); do
		"$GOPROCTL" -c "$d/gopro.conf" status >/dev/null 2>&1 && return
		sleep 0.1
	done
	fail "goprod on $h did not start"
}

# A counter of host h, from its stats segment (the totals come first).
counter() {
	"$GOPROCTL" -c "$work/$1/gopro.conf" stats --json |
	    grep -o "\"$2\": [0-9]*" | head -n 1 | cut -d' ' -f2
}

# A number from gopro-bench's JSON summary.
json() { grep -o "\"$2\":[0-9.]*" "$1" | head -1 | cut -d: -f2; }

bench() {
	local out=$1; shift
	ns cl timeout 60 "$BENCH" -s "$LB:8888" -q -j --allow-lost \
	    --timeout 2 "$@" > "$out"
}

# Seconds (with decimals) since the epoch.
now() { date +%s.%N; }

wait_log() {
	local file=$1 pattern=$2 limit=$3 start i
	start=$(now)
	for i in $(seq $(( limit * 20 ))); do
		if grep -q "$pattern" "$file"; then
			awk -v a="$(now)" -v b="$start" \
			    'BEGIN { printf "%.2f\n", a - b }'
			return
		fi
		sleep 0.05
	done
	echo never
}

check_spread() {
	local h c total=0 n
	bench "$work/spread.json" -c 30 -d 3 -w 0.5
	n=$(json "$work/spread.json" requests)
	say "spread: $n requests, lost $(json "$work/spread.json" lost)," \
	    "errors $(json "$work/spread.json" errors)"
	[ "$(json "$work/spread.json" lost)" = 0 ] || fail "requests lost"
	[ "$(json "$work/spread.json" errors)" = 0 ] || fail "errors"
	for h in h1 h2 h3; do
		c=$(counter "$h" conn_proxied)
		total=$((total + c))
		say "  $h: conn_proxied $c, heartbeats" \
		    "$(counter "$h" frames_received_heartbeat)"
		[ "$c" -ge 5 ] || fail "$h got $c of the 30 connections"
		grep -q "client $CL:[0-9]* via proxy $LB:" "$work/$h.log" ||
		    fail "$h log does not name the client $CL"
		! grep -q "client $LB:" "$work/$h.log" ||
		    fail "$h log names HAProxy as a client"
		# goproctl stats lists recent clients: the real one, as proxied.
		"$GOPROCTL" -c "$work/$h/gopro.conf" stats |
		    grep -A8 '^recent clients' >"$work/$h.clients" || true
		grep -q " $CL:[0-9]* (proxy)" "$work/$h.clients" ||
		    fail "$h: goproctl stats does not show the client $CL"
		! grep -q " $LB:[0-9]* (proxy)" "$work/$h.clients" ||
		    fail "$h: goproctl stats shows HAProxy as a proxied client"
	done
	[ "$total" -ge 30 ] || fail "only $total proxied connections"
	say "  goproctl stats on h1:"
	"$GOPROCTL" -c "$work/h1/gopro.conf" stats |
	    grep -E 'conn_proxied|proxy_rejected' | sed 's/^/    /'
	sed 's/^/    /' "$work/h1.clients"
	say "  the goprod logs name the client $CL (from PROXY v2):"
	grep -m1 "client $CL" "$work/h1.log" | sed 's/^/    /'
}

check_untrusted() {
	local before after
	before=$(counter h1 proxy_rejected)
	ns cl timeout 10 "$BENCH" -s "${ADDR[h1]}:8888" -q -j -c 1 -n 1 \
	    --timeout 1 > "$work/direct.json" 2>/dev/null || true
	after=$(counter h1 proxy_rejected)
	[ "$after" -gt "$before" ] ||
	    fail "a direct connection to h1 was not refused"
	[ "$(json "$work/direct.json" requests)" = 0 ] ||
	    fail "a direct connection to h1 was served"
	say "untrusted: direct connection to h1 refused (proxy_rejected" \
	    "$before -> $after)"
	grep -m1 "not in proxy_protocol_from" "$work/h1.log" | sed 's/^/    /'
}

check_kill() {
	local pids took h1a h3a
	h1a=$(counter h1 frames_received_heartbeat)
	h3a=$(counter h3 frames_received_heartbeat)
	bench "$work/kill.json" -c 30 -d 6 &
	local b=$!
	sleep 2
	pids="$(cat "$work/h2/goprod.pid") $(pgrep -P "$(cat "$work/h2/goprod.pid")" | tr '\n' ' ')"
	say "kill: kill -9 of h2 (pids $pids)"
	# Stopped first, so that no worker drains on its master's death
	# (PR_SET_PDEATHSIG): a crash, not a shutdown.
	kill -STOP $pids
	kill -9 $pids
	unset "PID[h2]"
	took=$(wait_log "$work/haproxy.log" "goprod/h2 is DOWN" 5)
	# Its exit status is 1 for the errors of the switch: judged below.
	wait "$b" || true
	grep -q '"requests"' "$work/kill.json" || fail "no gopro-bench summary"
	say "kill: HAProxy marked h2 DOWN after ${took}s (inter 1s, fastinter 250ms, fall 2)"
	[ "$took" != never ] || fail "h2 never marked down"
	awk -v t="$took" 'BEGIN { exit !(t < 2.0) }' ||
	    fail "h2 marked down after ${took}s, more than 2s"
	echo "    gopro-bench: $(cat "$work/kill.json")"
	KILL_LOST=$(json "$work/kill.json" lost)
	KILL_ERR=$(json "$work/kill.json" errors)
	say "kill: $(json "$work/kill.json" requests) requests verified," \
	    "lost $KILL_LOST, errors $KILL_ERR," \
	    "connections opened $(json "$work/kill.json" connections_opened)"
	[ "$(counter h1 frames_received_heartbeat)" -gt "$h1a" ] &&
	    [ "$(counter h3 frames_received_heartbeat)" -gt "$h3a" ] ||
	    fail "h1 and h3 did not go on serving"
	# Only the requests in flight on h2's connections can be lost.
	[ "$KILL_LOST" -le 30 ] || fail "$KILL_LOST lost: more than in flight"
	[ "$KILL_ERR" -le 30 ] || fail "$KILL_ERR errors during the kill"
}

check_drain() {
	local took h1a
	h1a=$(counter h1 conn_proxied)
	bench "$work/drain.json" -c 30 -d 6 &
	local b=$!
	sleep 2
	say "drain: goproctl stop on h3"
	"$GOPROCTL" -c "$work/h3/gopro.conf" stop -t 20 |
	    sed 's/^/    /' || fail "goproctl stop failed"
	unset "PID[h3]"
	took=$(wait_log "$work/haproxy.log" "goprod/h3 is DOWN" 5)
	wait "$b" || true
	grep -q '"requests"' "$work/drain.json" || fail "no gopro-bench summary"
	echo "    gopro-bench: $(cat "$work/drain.json")"
	DRAIN_LOST=$(json "$work/drain.json" lost)
	DRAIN_ERR=$(json "$work/drain.json" errors)
	say "drain: HAProxy marked h3 DOWN after ${took}s;" \
	    "$(json "$work/drain.json" requests) requests verified," \
	    "lost $DRAIN_LOST, errors $DRAIN_ERR," \
	    "GOAWAY $(json "$work/drain.json" goaway)"
	[ "$DRAIN_LOST" = 0 ] || fail "requests lost during the drain"
	[ "$DRAIN_ERR" = 0 ] || fail "errors during the drain"
	[ "$(json "$work/drain.json" goaway)" -gt 0 ] ||
	    fail "no GOAWAY seen: the drain did not reach the clients"
	# No new connection once the drain began.  The worker first accepts
	# what already waits in its queue (those get GOAWAY at once), then
	# closes its listener; their PROXY headers are read just after the
	# "draining" line, so only a client seen more than 0.5 s later would
	# be a connection the closed listener took.
	awk 'function t(s) { split(substr(s, 12), a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
	    /draining/ && !d { d = t($1) }
	    d && /via proxy/ && t($1) > d + 0.5 { n++ }
	    END { exit n > 0 }' \
	    "$work/h3.log" || fail "h3 accepted connections while draining"
	[ "$(counter h1 conn_proxied)" -gt "$h1a" ] ||
	    fail "the drained clients did not reconnect to h1"
}

preflight
work=$(mktemp -d /tmp/gopro-multihost.XXXXXX)
build_network
for h in h1 h2 h3; do
	start_goprod "$h"
done
ns lb haproxy -db -f "$CFG" > "$work/haproxy.log" 2>&1 &
PID[lb]=$!
disown
sleep 1.5        # every server checked at least once (inter 1s)
kill -0 "${PID[lb]}" 2>/dev/null || fail "haproxy did not start"
! grep -q "is DOWN" "$work/haproxy.log" || fail "a goprod failed its check"
say "3 goprod hosts and HAProxy up ($(haproxy -v | head -1 | cut -d' ' -f1-3))"

check_spread
check_untrusted
check_kill
check_drain
! grep -l "Sanitizer\|runtime error" "$work"/h?.log ||
    fail "a sanitizer report in the goprod log above"
say "PASS: failed requests during the kill of a host: lost $KILL_LOST," \
    "errors $KILL_ERR; during the drain: lost $DRAIN_LOST, errors $DRAIN_ERR"
