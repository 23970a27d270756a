#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# module_thread.sh - what completing from a thread costs (not part of make
# check): the thread_echo module (tests/modules/thread_echo.c: every
# MESSAGE queued to a thread of its own, which completes it with
# api->completev; the host copies the reply and wakes the loop with
# ev_async_send) against the built-in echo module answering on the loop.
#
# Both at 50 connections and depth 32, 64-byte bodies, goprod (one worker)
# on CPU 0 and gopro-bench on CPU 1, rounds alternating: the median
# requests/s and the spread of the rounds.  Then, for each, a profile
# round: perf stat on the worker (all its threads) for a few seconds under
# the same load, divided by the MESSAGE frames goproctl counted over that
# window: system calls per request (all, futex, read, write, epoll_wait),
# context switches and CPU microseconds per request.  The wakeup is an
# eventfd write on the module's thread and a read on the loop; libev
# skips the write while the loop is awake and one is already due, so at
# depth it is paid once per batch, not per request.
#
# usage: contrib/bench/module_thread.sh [--commit COMMIT] [--duration S]
#            [--repeat N] [--profile S] [--build-dir DIR] [--no-build]
set -eu

. "$(dirname "$0")/lib.sh"
builddir=$srcdir/_build/bench-thread

while [ $# -gt 0 ]; do
	bench_option "$@"
	shift "$bench_shift"
done

[ "$rebuild" = no ] || bench_build "$builddir" "$commit" src/daemon/goprod \
    src/bench/gopro-bench src/goproctl/goproctl tests/modules/thread_echo.la
b=$builddir/build
goprod=$b/src/daemon/goprod
bench=$b/src/bench/gopro-bench
goproctl=$b/src/goproctl/goproctl
load=(-c 50 -P 32 -T message -b 64 -q)

declare -A conf
conf[loop]=""
conf[thread]="module thread_echo {
	path = \"$b/tests/modules/.libs/thread_echo.so\"
}"

# start NAME: goprod on CPU 0 with that variant's configuration.
start() {
	bench_tmpdir
	bench_goprod "$bench_dir" "$goprod" "$bench" "${conf[$1]}" taskset -c 0
}

# run NAME: one round, prints requests per second.
run() {
	local rps
	start "$1"
	rps=$(bench_throughput taskset -c 1 "$bench" \
	    -s "127.0.0.1:$goprod_port" "${load[@]}" -w 1s -d "${duration}s")
	bench_stop "$goprod_pid"
	echo "$rps"
}

# profile NAME: the worker's perf counts per request under the load.
profile() {
	local lp f0 f1 sc fx rd wr ep cs ms
	start "$1"
	bench_bg taskset -c 1 "$bench" -s "127.0.0.1:$goprod_port" \
	    "${load[@]}" -w 0 -d 1h >/dev/null
	lp=$bench_bg_pid
	sleep 1
	f0=$(bench_frames "$bench_dir/gopro.conf")
	read -r sc fx rd wr ep cs ms < <(bench_syscalls "$goprod_worker" \
	    "$profile")
	f1=$(bench_frames "$bench_dir/gopro.conf")
	# SIGINT: gopro-bench stops sending, collects its replies and exits.
	kill -INT "$lp"
	bench_wait "$lp"
	bench_stop "$goprod_pid"
	python3 -c "
n = $f1 - $f0
print('%-6s %9.3f %7.3f %7.3f %7.3f %10.3f %7.3f %7.2f  (%d requests)' % (
    '$1', $sc / n, $fx / n, $rd / n, $wr / n, $ep / n, $cs / n,
    $ms * 1000 / n, n))"
}

bench_rounds "$builddir" run loop thread
l=$(bench_median <"$builddir/loop.txt")
t=$(bench_median <"$builddir/thread.txt")
echo "c=50 P=32, 64-byte MESSAGE, median (min-max) of $repeat rounds of ${duration}s, $(git -C "$srcdir" rev-parse --short "$commit")"
echo "echo module on the loop:      $l requests/s"
echo "thread_echo, from a thread:   $t requests/s"
python3 -c "print('thread/loop: %.3f' % (${t%% *} / ${l%% *}))"
echo
echo "per request, perf stat on the worker for ${profile}s:"
echo "module syscalls   futex    read   write epoll_wait  ctx-sw  cpu-us"
for v in loop thread; do
	profile "$v"
done
