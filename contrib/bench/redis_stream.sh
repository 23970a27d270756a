#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# redis_stream.sh - the redis_stream gateway against Redis itself (not
# part of make check).  One redis-server of our own (no persistence, a
# free port) serves both, in alternating rounds:
#
#   direct   redis-benchmark -c 50 -P 32 straight at it, in its
#            arbitrary-command form: XADD KEY MAXLEN ~ N * body <64 bytes>
#            client 127.0.0.1:PORT, the very entry the module writes;
#   gateway  gopro-bench -c 50 -P 32 with 64-byte MESSAGEs (--any-reply:
#            the replies are entry ids) at goprod, one worker, whose
#            redis_stream module turns each into that XADD on its one
#            pipelined hiredis connection.
#
# CPUs, on a machine with two: Redis always on CPU 1 (--redis-cpu), so
# that it is the same Redis on the same CPU in both; the gateway's goprod
# on CPU 0 and gopro-bench on CPU 1 beside Redis; redis-benchmark on CPU
# 0.  Three busy processes on two CPUs: goprod gets a CPU of its own
# because it is what is measured, and the report says how busy each
# process was, so that what limits the gateway can be read off it.
#
# Prints the median requests/s of each and the spread of the rounds, the
# ratio gateway/direct, then a profile round of each: the CPU share of the
# worker, of Redis and of the load generator (perf stat task-clock), the
# system calls per request of the worker and of Redis, and their top
# symbols (perf record).
#
# usage: contrib/bench/redis_stream.sh [--commit COMMIT] [--duration S]
#            [--repeat N] [--profile S] [--maxlen N] [--redis-cpu N]
#            [--build-dir DIR] [--no-build]
set -eu

. "$(dirname "$0")/lib.sh"
builddir=$srcdir/_build/bench-redis
maxlen=100000
redis_cpu=1

while [ $# -gt 0 ]; do
	case $1 in
	--maxlen) maxlen=${2:?}; shift 2 ;;
	--redis-cpu) redis_cpu=${2:?}; shift 2 ;;
	*) bench_option "$@"; shift "$bench_shift" ;;
	esac
done
for t in redis-server redis-benchmark redis-cli perf taskset; do
	command -v "$t" >/dev/null ||
	    { echo "redis_stream.sh: $t is needed (see README.md)" >&2; exit 1; }
done
other_cpu=$((1 - redis_cpu))

[ "$rebuild" = no ] || bench_build "$builddir" "$commit" src/daemon/goprod \
    src/bench/gopro-bench src/goproctl/goproctl src/modules/redis_stream.la
b=$builddir/build
goprod=$b/src/daemon/goprod
bench=$b/src/bench/gopro-bench
goproctl=$b/src/goproctl/goproctl
so=$b/src/modules/.libs/redis_stream.so
[ -f "$so" ] || { echo "redis_stream.sh: no $so (built without libhiredis-dev?)" >&2; exit 1; }

bench_tmpdir
rdir=$bench_dir
bench_redis "$rdir" taskset -c "$redis_cpu"
bench_tmpdir
gdir=$bench_dir
bench_goprod "$gdir" "$goprod" "$bench" "module redis_stream {
	path = \"$so\"
	port = $redis_port
	key = \"gateway\"
	maxlen = $maxlen
}" taskset -c "$other_cpu"
# The body gopro-bench sends (16 bytes of number then the alphabet), and a
# client field as long as the module's.
body=$(python3 -c 'print("".join(chr(97 + i % 26) for i in range(64)))')
xadd=(XADD direct MAXLEN '~' "$maxlen" '*' body "$body" client
    127.0.0.1:54321)
load=(-c 50 -P 32 -T message -b 64 --any-reply -q)

# gateway [ARGS]: gopro-bench at the gateway; prints requests/s.
gateway() {
	local j
	j=$(taskset -c "$redis_cpu" "$bench" -s "127.0.0.1:$goprod_port" \
	    "${load[@]}" -j "$@")
	python3 -c 'import json,sys; j = json.loads(sys.argv[1])
if j["errors"]: sys.exit("gateway: %d errors: %s" % (j["errors"], j["server_errors"]))
print(j["throughput"])' "$j"
}

# direct N: redis-benchmark, N requests; prints requests/s.
direct() {
	taskset -c "$other_cpu" redis-benchmark -h 127.0.0.1 -p "$redis_port" \
	    -c 50 -P 32 -n "$1" -q --csv "${xadd[@]}" |
	    awk -F'"' 'NR == 2 { print $4 }'
}

# round NAME: one round of direct or gateway; prints requests/s.
# redis-benchmark has no duration: a direct round of n requests sizes the
# next from its rate.
round() {
	local rps
	case $1 in
	direct)
		rps=$(direct "$n")
		n=$(( ${rps%.*} * duration ))
		echo "$rps" ;;
	gateway)
		gateway -w 1s -d "${duration}s" ;;
	esac
}

n=$(( $(direct 100000 | cut -d. -f1) * duration ))
bench_rounds "$builddir" round direct gateway
dm=$(bench_median <"$builddir/direct.txt")
gm=$(bench_median <"$builddir/gateway.txt")
echo "c=50 P=32, XADD MAXLEN ~ $maxlen with a 64-byte body, median (min-max) of $repeat rounds of ${duration}s, $(git -C "$srcdir" rev-parse --short "$commit"), $(redis-server --version | cut -d' ' -f3)"
echo "redis-benchmark XADD straight at Redis: $dm requests/s"
echo "gopro-bench through goprod + redis_stream: $gm requests/s"
python3 -c "print('gateway/direct: %.3f' % (${gm%% *} / ${dm%% *}))"
echo "entries: direct stream $(redis-cli -p "$redis_port" xlen direct), gateway stream $(redis-cli -p "$redis_port" xlen gateway) (trimmed at ~$maxlen)"

# top_symbols DATA: the top symbols of a perf record.
top_symbols() {
	perf report -i "$1" --stdio --no-children --sort dso,sym \
	    --percent-limit 2 2>/dev/null | grep -v '^#' | grep -v '^$' |
	    head -12
}

# stat_bg PID OUT: perf stat of PID for the profile window, in the
# background; its pid in stat_pid.
stat_bg() {
	bench_bg perf stat -x, -e task-clock,raw_syscalls:sys_enter -p "$1" \
	    -o "$2" -- sleep "$profile" 2>/dev/null
	stat_pid=$bench_bg_pid
}

# record_bg PID OUT: perf record of PID for the profile window, in the
# background; its pid in record_pid.
record_bg() {
	bench_bg perf record -q -e cpu-clock -F 999 -o "$2" -p "$1" \
	    -- sleep "$profile" 2>/dev/null
	record_pid=$bench_bg_pid
}

# commands: the commands Redis has processed so far.
commands() {
	redis-cli -p "$redis_port" info stats |
	    awk -F: '/^total_commands_processed/ { print $2 + 0 }'
}

# field OUT EVENT: a count from a perf stat -x, file.
field() {
	awk -F, -v e="$2" '$3 == e { print $1 + 0 }' "$1"
}

echo
echo "profile, ${profile}s under load (CPU: share of one CPU over the window):"
# The gateway: goprod's worker, Redis and gopro-bench, side by side.
bench_bg taskset -c "$redis_cpu" "$bench" -s "127.0.0.1:$goprod_port" \
    "${load[@]}" -w 0 -d 1h >/dev/null
lp=$bench_bg_pid
sleep 1
f0=$(bench_frames "$gdir/gopro.conf")
stat_bg "$goprod_worker" "$gdir/worker.stat"
s1=$stat_pid
stat_bg "$redis_pid" "$gdir/redis.stat"
s2=$stat_pid
stat_bg "$lp" "$gdir/bench.stat"
s3=$stat_pid
bench_wait "$s1"
bench_wait "$s2"
bench_wait "$s3"
f1=$(bench_frames "$gdir/gopro.conf")
record_bg "$goprod_worker" "$gdir/worker.data"
r1=$record_pid
record_bg "$redis_pid" "$gdir/redis.data"
r2=$record_pid
bench_wait "$r1"
bench_wait "$r2"
# SIGINT: gopro-bench stops sending, collects what it is owed and exits.
kill -INT "$lp"
bench_wait "$lp"
python3 - "$((f1 - f0))" "$profile" \
    "$(field "$gdir/worker.stat" task-clock)" \
    "$(field "$gdir/worker.stat" raw_syscalls:sys_enter)" \
    "$(field "$gdir/redis.stat" task-clock)" \
    "$(field "$gdir/redis.stat" raw_syscalls:sys_enter)" \
    "$(field "$gdir/bench.stat" task-clock)" <<'PY'
import sys
n, secs, wms, wsc, rms, rsc, bms = (float(x) for x in sys.argv[1:8])
print("gateway: %.0f requests/s; worker CPU %.0f%%, %.2f us and %.3f syscalls"
      " per request; Redis CPU %.0f%%, %.2f us and %.3f syscalls per request;"
      " gopro-bench CPU %.0f%%" % (n / secs, wms / secs / 10, wms * 1e3 / n,
      wsc / n, rms / secs / 10, rms * 1e3 / n, rsc / n, bms / secs / 10))
PY
echo "worker, top symbols:"
top_symbols "$gdir/worker.data"
echo "redis-server (gateway load), top symbols:"
top_symbols "$gdir/redis.data"

# The direct run: how busy Redis is when redis-benchmark drives it (sized
# for far longer than the window, stopped after it).
bench_bg taskset -c "$other_cpu" redis-benchmark -h 127.0.0.1 \
    -p "$redis_port" -c 50 -P 32 -n 2000000000 -q "${xadd[@]}" \
    >/dev/null 2>&1
lp=$bench_bg_pid
sleep 1
x0=$(commands)
stat_bg "$redis_pid" "$rdir/redis.stat"
s1=$stat_pid
stat_bg "$lp" "$rdir/bench.stat"
s2=$stat_pid
bench_wait "$s1"
bench_wait "$s2"
x1=$(commands)
record_bg "$redis_pid" "$rdir/redis.data"
bench_wait "$record_pid"
kill "$lp"
bench_wait "$lp" || true
python3 - "$((x1 - x0))" "$profile" \
    "$(field "$rdir/redis.stat" task-clock)" \
    "$(field "$rdir/redis.stat" raw_syscalls:sys_enter)" \
    "$(field "$rdir/bench.stat" task-clock)" <<'PY'
import sys
n, secs, rms, rsc, bms = (float(x) for x in sys.argv[1:6])
print("direct: %.0f commands/s; Redis CPU %.0f%%, %.2f us and %.3f syscalls"
      " per command; redis-benchmark CPU %.0f%%" % (n / secs,
      rms / secs / 10, rms * 1e3 / n, rsc / n, bms / secs / 10))
PY
echo "redis-server (direct load), top symbols:"
top_symbols "$rdir/redis.data"
