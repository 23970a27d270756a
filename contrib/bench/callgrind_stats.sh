#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# callgrind_stats.sh - what the shared-memory stats cost on the hot path,
# counted in instructions (repeatable on a noisy machine, unlike req/s).
#
# Builds goprod twice (stats in, and -DGOPRO_NO_STATS), runs each worker
# under callgrind while gopro-bench sends 200,000 pipelined (P=32) and
# 200,000 unpipelined (P=1) HEARTBEATs over 50 connections, and prints the
# worker's instructions per request for both builds and their ratio.
# Usage: contrib/bench/callgrind_stats.sh [WORKDIR]   (needs valgrind)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d /tmp/gopro-cg-XXXXXX)}
cd "$top"
[ -x configure ] || ./autogen.sh >/dev/null
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

measure() {	# variant extra-cppflags
	local v=$1 b="$top/_build/cg-$1" d="$work/$1" port
	mkdir -p "$b" "$d"
	(cd "$b" && "$top/configure" -q CFLAGS='-O2 -g' CPPFLAGS="$2" >/dev/null &&
		make -j"$(nproc)" src/daemon/goprod src/bench/gopro-bench >/dev/null)
	port=$(free_port)
	cat > "$d/gopro.conf" <<CONF
listen = {"127.0.0.1:$port"}
workers = 1
user = ""
group = ""
pid_file = "$d/goprod.pid"
stats_file = "$d/goprod.stats"
control_socket = "$d/goprod.sock"
log = "stderr"
idle_timeout = 300s
CONF
	valgrind --tool=callgrind --trace-children=yes \
		--callgrind-out-file="$d/cg.%p" "$b/src/daemon/goprod" -f \
		-c "$d/gopro.conf" 2>"$d/valgrind.log" &
	pids+=($!)
	for _ in $(seq 100); do
		"$b/src/goproctl/goproctl" -c "$d/gopro.conf" ping -n 1 -W 1 >/dev/null 2>&1 && break
		sleep 0.2
	done
	for p in 32 1; do
		"$b/src/bench/gopro-bench" -s "127.0.0.1:$port" -c 50 -P "$p" -n 200000 -q
	done >/dev/null
	kill "${pids[-1]}"; wait "${pids[-1]}" || true
	# The worker is the process with the most instructions.
	grep -h '^totals:' "$d"/cg.* | awk '{print $2}' | sort -n | tail -1
}

with=$(measure stats "")
without=$(measure nostats "-DGOPRO_NO_STATS")
python3 - "$with" "$without" <<'PY'
import sys
w, wo = (int(x) for x in sys.argv[1:3])
n = 400000 + 1  # requests, plus the start-up ping
print(f"worker instructions per request: stats in {w/n:.1f}, out {wo/n:.1f}; "
      f"in/out = {w/wo:.3f} (user space only; the kernel's share is not counted)")
PY
