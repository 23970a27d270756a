#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# tests/stress/run.sh - the faults-under-load scenarios of tests/test_faults.c,
# run for longer, with the lost/refused figures printed per scenario:
#   reloads   60 s of pipelined load, 20 reloads (SIGHUP and goproctl)
#   kill9     30 s of load, a worker (of 2) killed with SIGKILL every 2 s
#   sigterm   load, then SIGTERM: lost requests, exit status, drain time
#   workers   workers 2 -> 1 -> 2, 5 times, under load; as root, once with
#             net.ipv4.tcp_migrate_req = 0 and once with 1 (restored after)
#   listen    listen {A} -> {A,B} -> {B} with clients on A and on B
#   upgrades  60 s of pipelined load, 20 binary upgrades in place alternating
#             between goprod and tests/daemon/goprod-alt (goproctl upgrade
#             and SIGUSR2): same master pid, nothing lost or refused
# Not part of make check.  Usage: tests/stress/run.sh [BUILDDIR] [SCENARIO...]
# BUILDDIR holds src/daemon/goprod, src/goproctl/goproctl and src/bench/gopro-bench (default ".").
# Exit status 1 when a scenario that must lose nothing lost something.
set -uo pipefail

build=$(cd "${1:-.}" && pwd)
shift || true
scenarios=${*:-reloads kill9 sigterm workers listen upgrades}
goprod=$build/src/daemon/goprod
goproctl=$build/src/goproctl/goproctl
bench=$build/src/bench/gopro-bench
for p in "$goprod" "$goproctl" "$bench"; do
	[ -x "$p" ] || { echo "stress: $p is missing" >&2; exit 2; }
done

dir=$(mktemp -d /tmp/gopro-stress-XXXXXX)
gpid=
status=0
migrate_saved=
cleanup() {
	[ -n "$gpid" ] && kill -9 "$gpid" 2>/dev/null
	[ -n "$migrate_saved" ] && sysctl -q -w net.ipv4.tcp_migrate_req="$migrate_saved"
	rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# write_conf LISTEN_LIST EXTRA...
write_conf() {
	local listen=$1
	shift
	cat >"$dir/gopro.conf" <<EOF
listen = {$listen}
user = ""
group = ""
pid_file = "$dir/goprod.pid"
stats_file = "$dir/goprod.stats"
control_socket = "$dir/goprod.sock"
log = "file:$dir/goprod.log"
goaway_grace = 0.5s
$(printf '%s\n' "$@")
EOF
}

start_server() {
	"$goprod" -f -c "$dir/gopro.conf" 2>>"$dir/goprod.log" &
	gpid=$!
	for _ in $(seq 1 100); do
		"$goproctl" -c "$dir/gopro.conf" ping >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "stress: goprod did not start" >&2
	cat "$dir/goprod.log" >&2
	exit 2
}

stop_server() {
	[ -n "$gpid" ] || return 0
	kill -TERM "$gpid" 2>/dev/null
	wait "$gpid" 2>/dev/null
	gpid=
	rm -f "$dir/goprod.log"
}

# run_bench NAME ADDR SECONDS CONNS DEPTH: in the background, JSON to $dir/NAME.json
run_bench() {
	"$bench" -s "$2" -d "$3" -c "$4" -P "$5" -m heartbeat:3,message:1 -b 16 \
		--json --quiet --allow-lost --timeout 3 >"$dir/$1.json" 2>"$dir/$1.err" &
}

# report LABEL NAME MUST_BE_ZERO(yes/no): print the figures of NAME.json
report() {
	python3 - "$1" "$dir/$2.json" "$3" <<'EOF'
import json, sys
label, path, strict = sys.argv[1], sys.argv[2], sys.argv[3] == "yes"
try:
    j = json.load(open(path))
except Exception as e:
    print(f"{label:44s} no JSON from gopro-bench ({e})"); sys.exit(1)
k = j["errors_by_kind"]
print(f"{label:44s} requests {j['requests']:>10}  lost {j['lost']:>4}  "
      f"refused {k['connect_failed']:>4}  reset {k['closed_by_server']:>3}  "
      f"other errors {j['errors'] - k['connect_failed'] - k['closed_by_server']:>3}  "
      f"goaway {j['goaway']:>5}")
bad = j["lost"] or j["errors"]
sys.exit(1 if strict and bad else 0)
EOF
	[ $? -eq 0 ] || status=1
}

stats_json() { "$goproctl" -c "$dir/gopro.conf" stats --json 2>/dev/null; }

# totals_never_down N: the totals in $dir/stats.1.json .. stats.N.json
totals_never_down() {
	python3 - "$dir" "$1" <<'EOF'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
prev = None
for i in range(1, n + 1):
    s = json.load(open(f"{d}/stats.{i}.json"))
    flat = s["totals"]["counters"]
    if prev:
        down = [k for k in flat if flat[k] < prev.get(k, 0)]
        if down:
            print(f"  stats totals went down at sample {i}: {down}"); sys.exit(1)
    prev = flat
print(f"  stats totals never went down over {n} samples ({len(prev or {})} counters)")
EOF
	[ $? -eq 0 ] || status=1
}

scenario_reloads() {
	local port
	port=$(free_port)
	write_conf "\"127.0.0.1:$port\"" "workers = 2"
	start_server
	run_bench reloads "127.0.0.1:$port" 60 32 8
	local b=$!
	sleep 1
	for i in $(seq 1 20); do
		if [ $((i % 2)) -eq 1 ]; then
			kill -HUP "$gpid"
		else
			until "$goproctl" -c "$dir/gopro.conf" reload >/dev/null 2>&1; do sleep 0.1; done
		fi
		sleep 2.8
		stats_json >"$dir/stats.$i.json"
	done
	wait "$b"
	totals_never_down 20
	report "60 s, 20 reloads (SIGHUP + goproctl)" reloads yes
	stop_server
}

scenario_kill9() {
	local port
	port=$(free_port)
	write_conf "\"127.0.0.1:$port\"" "workers = 2"
	start_server
	run_bench kill9 "127.0.0.1:$port" 30 32 4
	local b=$! kills=0
	sleep 1
	for i in $(seq 1 12); do
		w=$(python3 -c "
import json,sys
s=json.load(open(sys.argv[1]))
ws=[w for w in s.get('workers',[]) if w.get('state')=='running']
print(ws[$i % 2 if len(ws)>1 else 0]['pid'] if ws else '')" <(stats_json) 2>/dev/null)
		[ -n "$w" ] && kill -9 "$w" && kills=$((kills + 1))
		sleep 2
	done
	wait "$b"
	report "30 s, $kills x kill -9 of a worker (of 2)" kill9 no
	echo "  (lost must stay within what was in flight on the killed workers: 16 conns x depth 4 each)"
	stop_server
}

scenario_sigterm() {
	local port t0 t1 rc
	port=$(free_port)
	write_conf "\"127.0.0.1:$port\"" "workers = 2" "drain_timeout = 5s"
	start_server
	run_bench sigterm "127.0.0.1:$port" 8 32 8
	local b=$!
	sleep 4
	t0=$(date +%s.%N)
	kill -TERM "$gpid"
	wait "$gpid"
	rc=$?
	t1=$(date +%s.%N)
	gpid=
	wait "$b"
	report "SIGTERM after 4 s of load" sigterm no
	python3 -c "import sys; print(f'  master exit status {sys.argv[1]} after {float(sys.argv[3])-float(sys.argv[2]):.3f} s (drain_timeout 5 s)')" "$rc" "$t0" "$t1"
	python3 -c "import json,sys; sys.exit(json.load(open(sys.argv[1]))['lost'] != 0)" "$dir/sigterm.json" || status=1
	[ "$rc" -eq 0 ] || status=1
}

workers_round() {
	local label=$1 port
	port=$(free_port)
	write_conf "\"127.0.0.1:$port\"" "workers = 2"
	start_server
	run_bench workers "127.0.0.1:$port" 25 32 8
	local b=$!
	sleep 1
	for _ in 1 2 3 4 5; do
		write_conf "\"127.0.0.1:$port\"" "workers = 1"
		kill -HUP "$gpid"
		sleep 2.2
		write_conf "\"127.0.0.1:$port\"" "workers = 2"
		kill -HUP "$gpid"
		sleep 2.2
	done
	wait "$b"
	report "workers 2->1->2 x5, $label" workers no
	stop_server
}

scenario_workers() {
	if [ "$(id -u)" -eq 0 ] && [ -e /proc/sys/net/ipv4/tcp_migrate_req ]; then
		migrate_saved=$(sysctl -n net.ipv4.tcp_migrate_req)
		for v in 0 1; do
			sysctl -q -w net.ipv4.tcp_migrate_req=$v
			workers_round "tcp_migrate_req=$v"
		done
		sysctl -q -w net.ipv4.tcp_migrate_req="$migrate_saved"
		migrate_saved=
	else
		workers_round "tcp_migrate_req=$(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || echo '?') (not root: unchanged)"
	fi
}

scenario_listen() {
	local pa pb
	pa=$(free_port)
	pb=$(free_port)
	write_conf "\"127.0.0.1:$pa\"" "workers = 2"
	start_server
	run_bench listen_a "127.0.0.1:$pa" 8 16 8
	local a=$!
	sleep 2
	write_conf "\"127.0.0.1:$pa\", \"127.0.0.1:$pb\"" "workers = 2"
	kill -HUP "$gpid"
	sleep 1
	run_bench listen_b "127.0.0.1:$pb" 6 16 8
	local b=$!
	sleep 2
	write_conf "\"127.0.0.1:$pb\"" "workers = 2"
	kill -HUP "$gpid"
	wait "$a" "$b"
	report "client of A across removing A" listen_a no
	report "client of B across adding B, removing A" listen_b yes
	python3 -c "import json,sys; sys.exit(json.load(open(sys.argv[1]))['lost'] != 0)" "$dir/listen_a.json" || status=1
	stop_server
}

# install_goprod FROM: as a package manager does, a copy renamed over $dir/bin/goprod
install_goprod() {
	cp "$1" "$dir/bin/goprod.new" && mv -f "$dir/bin/goprod.new" "$dir/bin/goprod"
}

scenario_upgrades() {
	local port alt=$build/tests/daemon/goprod-alt main=$goprod pid0 i out
	[ -x "$alt" ] || { echo "  $alt is missing (make check builds it)"; status=1; return; }
	port=$(free_port)
	mkdir -p "$dir/bin"
	install_goprod "$main"
	write_conf "\"127.0.0.1:$port\"" "workers = 2"
	goprod=$dir/bin/goprod
	start_server
	goprod=$main
	pid0=$gpid
	run_bench upgrades "127.0.0.1:$port" 60 32 8
	local b=$!
	sleep 1
	for i in $(seq 1 20); do
		if [ $((i % 2)) -eq 1 ]; then
			install_goprod "$alt"
			out=$("$goproctl" -c "$dir/gopro.conf" upgrade 2>&1) || { echo "  upgrade $i: $out"; status=1; }
			case $out in *"(alt)"*) ;; *) echo "  upgrade $i ran the wrong build: $out"; status=1 ;; esac
		else
			install_goprod "$main"
			kill -USR2 "$gpid"
		fi
		sleep 2.8
		stats_json >"$dir/stats.$i.json"
		python3 -c "import json,sys; sys.exit(json.load(open(sys.argv[1]))['master']['pid'] != int(sys.argv[2]))" \
			"$dir/stats.$i.json" "$pid0" 2>/dev/null || { echo "  upgrade $i: the master pid changed"; status=1; }
	done
	wait "$b"
	totals_never_down 20
	report "60 s, 20 upgrades (goproctl + SIGUSR2)" upgrades yes
	stop_server
}

echo "gopro stress: $(nproc) CPUs, $(uname -r), build $build"
for s in $scenarios; do
	echo "== $s"
	"scenario_$s"
done
exit $status
