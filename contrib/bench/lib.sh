# SPDX-License-Identifier: BSD-2-Clause
# lib.sh - what the module benchmarks (modules.sh, module_thread.sh,
# redis_stream.sh) share; sourced, not run.  Free loopback ports, a goprod
# started from a temporary configuration and stopped by pid, its worker's
# pid, a Redis of our own, the rounds that alternate the variants compared,
# the worker's instructions per request under callgrind, its system calls
# per request under perf, and medians.
#
# Everything started here is recorded in bench_pids and stopped, by pid,
# when the script exits for any reason (the EXIT trap); temporary
# directories are in bench_dirs and removed then.

bench_pids=()
bench_dirs=()
# The tree, and the defaults of the options of bench_option.
srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
commit=HEAD
duration=5
repeat=5
profile=3
rebuild=yes

bench_cleanup() {
	local p
	for p in "${bench_pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${bench_pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	bench_pids=()
	[ ${#bench_dirs[@]} -eq 0 ] || rm -rf "${bench_dirs[@]}"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP

# bench_option ARGS...: one of the options the module benchmarks share
# (--commit C, --duration S, --repeat N, --profile S, --build-dir DIR,
# --no-build) into commit, duration, repeat, profile, builddir or rebuild;
# bench_shift says how many words it took.  Anything else prints the
# script's usage and exits 2.
bench_option() {
	bench_shift=2
	case $1 in
	--commit) commit=${2:?$1 needs a value} ;;
	--duration) duration=${2:?$1 needs a value} ;;
	--repeat) repeat=${2:?$1 needs a value} ;;
	--profile) profile=${2:?$1 needs a value} ;;
	--build-dir) builddir=${2:?$1 needs a value} ;;
	--no-build) rebuild=no; bench_shift=1 ;;
	*) sed -n 's/^# usage: //p; s/^#            //p' "$0" >&2; exit 2 ;;
	esac
}

# bench_tmpdir: a new directory in bench_dir, removed at exit (a
# variable, not output: a $(...) subshell would forget it).
bench_tmpdir() {
	bench_dir=$(mktemp -d /tmp/gopro-bench-XXXXXX)
	bench_dirs+=("$bench_dir")
}

# bench_build DIR COMMIT TARGET...: an -O2 build of COMMIT's tree (from
# git, so that edits in the work tree cannot mix in) under DIR/build, its
# sources in DIR/src.
bench_build() {
	local dir commit=$2
	mkdir -p "$1"
	dir=$(cd "$1" && pwd)	# configure runs in another directory
	shift 2
	rm -rf "$dir/src" "$dir/build"
	mkdir -p "$dir/src" "$dir/build"
	git -C "$srcdir" archive "$commit" | tar -x -C "$dir/src"
	(cd "$dir/src" && ./autogen.sh >/dev/null 2>&1)
	(cd "$dir/build" && "$dir/src/configure" -q CFLAGS='-O2 -g' \
	    >/dev/null && nice make -j2 "$@" >/dev/null)
}

bench_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_wait PID: wait for a process started here to end by itself, and
# forget it (its pid may be reused: the cleanup must not signal it).
bench_wait() {
	local p keep=() rc=0
	wait "$1" || rc=$?
	for p in "${bench_pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	bench_pids=("${keep[@]}")
	return $rc
}

# bench_bg CMD...: CMD in the background (redirections on the call apply
# to it), recorded in bench_pids for the cleanup; its pid in bench_bg_pid
# (a variable, not output: a $(...) subshell would not be its parent).
bench_bg() {
	"$@" &
	bench_bg_pid=$!
	bench_pids+=("$bench_bg_pid")
}

# bench_stop PID: SIGTERM, wait for it, forget it.
bench_stop() {
	kill "$1" 2>/dev/null || true
	bench_wait "$1" 2>/dev/null || true
}

# bench_goprod DIR GOPROD BENCH [CONF_EXTRA [WRAPPER...]]: start GOPROD
# (one worker) on a free port with a configuration in DIR, CONF_EXTRA
# appended to it, under WRAPPER (a taskset, valgrind...) and wait until it
# answers a heartbeat.  Sets goprod_pid (the master), goprod_port and
# goprod_worker (the worker's pid).
bench_goprod() {
	local dir=$1 goprod=$2 bench=$3 extra=${4:-} i
	shift 4 || shift $#
	goprod_port=$(bench_port)
	cat >"$dir/gopro.conf" <<CONF
listen = { "127.0.0.1:$goprod_port" }
workers = 1
user = ""
group = ""
pid_file = "$dir/goprod.pid"
stats_file = "$dir/goprod.stats"
control_socket = "$dir/goprod.sock"
log = "file:$dir/goprod.log"
log_level = "warning"
idle_timeout = 3600s
$extra
CONF
	bench_bg "$@" "$goprod" -f -c "$dir/gopro.conf" 2>>"$dir/goprod.log"
	goprod_pid=$bench_bg_pid
	# Bounded: valgrind takes seconds to start a worker.
	for i in $(seq 600); do
		"$bench" -s "127.0.0.1:$goprod_port" -c 1 -n 1 -q \
		    >/dev/null 2>&1 && break
		kill -0 "$goprod_pid" 2>/dev/null || break
		sleep 0.1
	done
	goprod_worker=$(ps -o pid= --ppid "$goprod_pid" | tr -d ' ' | head -1)
	if [ "$i" = 600 ] || [ -z "$goprod_worker" ]; then
		echo "goprod did not start; its log ($dir/goprod.log):" >&2
		tail -20 "$dir/goprod.log" >&2
		return 1
	fi
}

# bench_redis DIR [WRAPPER...]: a redis-server without persistence on a
# free port; sets redis_pid and redis_port.
bench_redis() {
	local dir=$1 i
	shift
	redis_port=$(bench_port)
	bench_bg "$@" redis-server --port "$redis_port" --bind 127.0.0.1 \
	    --save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log"
	redis_pid=$bench_bg_pid
	for i in $(seq 100); do
		redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "redis-server did not start: $(tail -5 "$dir/redis.log")" >&2
	return 1
}

# bench_rounds DIR CMD NAME...: the rounds of a benchmark that compares
# NAMEs: repeat times, "CMD NAME" for each NAME in turn (alternating, so
# that a change of the machine's load falls on all of them alike), its
# output appended to DIR/NAME.txt, emptied first.  CMD runs in this shell:
# what it sets stays for the next round.
bench_rounds() {
	local dir=$1 cmd=$2 name i
	shift 2
	for name in "$@"; do
		: >"$dir/$name.txt"
	done
	for ((i = 0; i < repeat; i++)); do
		for name in "$@"; do
			"$cmd" "$name" >>"$dir/$name.txt"
		done
	done
}

# bench_throughput ARGS...: gopro-bench's requests per second (its JSON).
bench_throughput() {
	"$@" -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["throughput"])'
}

# bench_cpu_round PID ARGS...: runs gopro-bench ARGS and prints its
# requests per second and the CPU time (user and system) that the process
# PID spent per request, in microseconds, warm-up included: the cost of a
# request, which a loaded machine blurs less than the rate.
bench_cpu_round() {
	local pid=$1 t0 t1
	shift
	t0=$(bench_cpu_ticks "$pid")
	"$@" -j >"$bench_dir/bench.json"
	t1=$(bench_cpu_ticks "$pid")
	python3 - "$bench_dir/bench.json" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
t0, t1, hz = (int(x) for x in sys.argv[2:5])
print("%.0f %.3f" % (j["throughput"],
    (t1 - t0) / hz * 1e6 / (j["requests"] + j["warmup"])))
PY
}

# bench_cpu_ticks PID: user and system clock ticks of PID so far.
bench_cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# bench_frames CONF: MESSAGE frames the workers received so far.
bench_frames() {
	"$goproctl" -c "$1" stats --json | python3 -c \
	    'import json,sys; print(json.load(sys.stdin)["totals"]["counters"]["frames_received_message"])'
}

# bench_syscalls PID SECONDS: what the process PID (all its threads)
# does in SECONDS, by perf stat: prints "syscalls futex read write
# epoll_wait context-switches cpu-ms" (syscalls from the tracepoint of the
# kernel's syscall entry, cpu-ms the task clock).
bench_syscalls() {
	perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_futex \
	    -e syscalls:sys_enter_read,syscalls:sys_enter_write \
	    -e syscalls:sys_enter_epoll_wait,context-switches,task-clock \
	    -p "$1" -- sleep "$2" 2>&1 |
	    awk -F, '$1 ~ /^[0-9.]+$/ { v[$3] = $1 }
		END { print v["raw_syscalls:sys_enter"]+0,
		    v["syscalls:sys_enter_futex"]+0,
		    v["syscalls:sys_enter_read"]+0,
		    v["syscalls:sys_enter_write"]+0,
		    v["syscalls:sys_enter_epoll_wait"]+0,
		    v["context-switches"]+0, v["task-clock"]+0 }'
}

# bench_instructions FILE: the user-space instructions of a callgrind
# output file (its summary line).
bench_instructions() {
	awk '$1 == "summary:" { print $2 }' "$1"
}

# bench_median [COLUMN [FORMAT]]: the median of a column (default 1) of
# numbers on stdin, and their spread: "median (min-max)".
bench_median() {
	local f=${2:-%.0f}
	awk -v c="${1:-1}" '{ print $c }' | sort -g | awk -v f="$f" '
	    { a[NR] = $1 } END {
		printf f " (" f "-" f ")\n", a[int((NR + 1) / 2)], a[1], a[NR] }'
}
