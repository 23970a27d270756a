#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# compare_bench.sh - throughput of two gopro-bench builds against the same
# goprod in one run (not part of make check): the runs alternate, A B A B
# ..., so that both see the same machine, and the ratio of the medians is
# printed.  Used to check that a change to gopro-bench's engine or to
# libgopro (which gopro-bench links) keeps its throughput.
#
# usage: contrib/bench/compare_bench.sh GOPROD BENCH_A BENCH_B
#            [ROUNDS (5)] [SECONDS (3)] [CONNECTIONS (50)] [DEPTH (32)]
#
# With COUNT_INSTRUCTIONS=N in the environment, each build also sends N
# requests under callgrind and its instructions per request are printed:
# a figure that a loaded machine does not blur, unlike req/s.  The
# client's CPU time per request (user and system, from --json) is printed
# too, and the spread of the per-round ratios next to the medians.
#
# goprod runs one worker on CPU 0 and the load generator on CPU 1 (when
# the machine has two), both started and stopped here by pid.
set -eu

goprod=${1:?usage: compare_bench.sh GOPROD BENCH_A BENCH_B [ROUNDS] [SECONDS] [C] [P]}
bench_a=${2:?BENCH_A}
bench_b=${3:?BENCH_B}
rounds=${4:-5}
secs=${5:-3}
conns=${6:-50}
depth=${7:-32}
work=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/gopro.conf" <<CONF
listen = {"127.0.0.1:$port"}
workers = 1
user = ""
group = ""
pid_file = "$work/goprod.pid"
stats_file = "$work/goprod.stats"
control_socket = "$work/goprod.sock"
log = "file:$work/goprod.log"
log_level = "warning"
CONF
pin_server="" pin_client=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	pin_server="taskset -c 0" pin_client="taskset -c 1"
fi
$pin_server "$goprod" -f -c "$work/gopro.conf" 2>>"$work/goprod.log" &
pid=$!
for _ in $(seq 50); do
	"$bench_a" -s "127.0.0.1:$port" -n 10 -c 1 --quiet >/dev/null 2>&1 && break
	sleep 0.1
done

run() {
	$pin_client "$1" -s "127.0.0.1:$port" -c "$conns" -P "$depth" -d "$secs" \
		-w 0.5 --json --quiet | python3 -c 'import json, sys
d = json.load(sys.stdin)
# Throughput, and the client'"'"'s own CPU (user + system) per request in ns.
print(d["throughput"], (d["cpu_user"] + d["cpu_sys"]) * 1e9 / max(d["requests"], 1))'
}

echo "gopro-bench -c $conns -P $depth -d $secs, $rounds rounds, alternating"
for r in $(seq "$rounds"); do
	read -r a ca <<<"$(run "$bench_a")"; read -r b cb <<<"$(run "$bench_b")"
	echo "$a $ca" >>"$work/a"; echo "$b $cb" >>"$work/b"
	printf 'round %d: A %.0f req/s  B %.0f req/s  (client CPU A %.0f, B %.0f ns/request)\n' \
		"$r" "$a" "$b" "$ca" "$cb"
done
if [ -n "${COUNT_INSTRUCTIONS:-}" ]; then
	for v in a b; do
		eval bin=\$bench_$v
		valgrind -q --tool=callgrind --callgrind-out-file="$work/cg.$v" \
			"$bin" -s "127.0.0.1:$port" -c "$conns" -P "$depth" \
			-n "$COUNT_INSTRUCTIONS" --quiet >/dev/null
		ir=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$work/cg.$v")
		echo "$v $ir" >>"$work/ir"
	done
	python3 - "$work/ir" "$COUNT_INSTRUCTIONS" <<'PY'
import sys
ir = dict(line.split() for line in open(sys.argv[1]))
n = int(sys.argv[2])
a, b = int(ir["a"]) / n, int(ir["b"]) / n
print("instructions per request (client, callgrind): A %.0f, B %.0f, B/A = %.3f" % (a, b, b / a))
PY
fi
python3 - "$work/a" "$work/b" <<'PY'
import statistics, sys
rows_a = [[float(v) for v in line.split()] for line in open(sys.argv[1])]
rows_b = [[float(v) for v in line.split()] for line in open(sys.argv[2])]
a, b = [r[0] for r in rows_a], [r[0] for r in rows_b]
ma, mb = statistics.median(a), statistics.median(b)
pairs = sorted(y / x for x, y in zip(a, b))
print("median A %.0f req/s, B %.0f req/s, B/A = %.3f" % (ma, mb, mb / ma))
print("round ratios B/A: median %.3f, min %.3f, max %.3f" %
      (statistics.median(pairs), pairs[0], pairs[-1]))
ca = statistics.median(r[1] for r in rows_a)
cb = statistics.median(r[1] for r in rows_b)
print("client CPU per request (user + sys): A %.0f ns, B %.0f ns, B/A = %.3f" %
      (ca, cb, cb / ca))
PY
