#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# modules.sh - what the module indirection costs, in one run (not part of
# make check): the built-in MESSAGE of the tree before handler modules
# (BASE, default the parent of the commit that added them) against today's
# MESSAGE through the echo module, at 50 connections and depth 32, 64-byte
# bodies, goprod on CPU 0 and gopro-bench on CPU 1, rounds alternating;
# prints the median of each, the spread of the rounds and their ratio (the
# target is >= 0.95).
#
# Then the same load under callgrind: the worker's user-space
# instructions per request for both builds, the slope between a run of
# N1 and one of N2 requests (so that start-up and the drain cancel out):
# a ratio that a loaded machine does not blur.  --callgrind-only skips the
# throughput rounds, --no-callgrind the instruction count.
#
# usage: contrib/bench/modules.sh [--base COMMIT] [--head COMMIT]
#            [--duration S] [--repeat N] [--build-dir DIR]
#            [--callgrind-only | --no-callgrind] [--no-build]
set -eu

. "$(dirname "$0")/lib.sh"
builddir=$srcdir/_build/bench-modules
base=
head=HEAD
rounds=yes
callgrind=yes
n1=100000
n2=300000

while [ $# -gt 0 ]; do
	case $1 in
	--base) base=${2:?}; shift 2 ;;
	--head) head=${2:?}; shift 2 ;;
	--callgrind-only) rounds=no; shift ;;
	--no-callgrind) callgrind=no; shift ;;
	*) bench_option "$@"; shift "$bench_shift" ;;
	esac
done
if [ -z "$base" ]; then
	first=$(git -C "$srcdir" log --format=%H --reverse \
	    --grep='^modules: the SDK header' | head -1)
	base=$(git -C "$srcdir" rev-parse "$first^")
fi

# Both from commits, so that edits in the work tree cannot mix in.
if [ "$rebuild" = yes ]; then
	for v in base:"$base" modules:"$head"; do
		bench_build "$builddir/${v%%:*}" "${v#*:}" src/daemon/goprod \
		    src/bench/gopro-bench
	done
fi
# The same load generator (today's) for both.
bench=$builddir/modules/build/src/bench/gopro-bench
load=(-c 50 -P 32 -T message -b 64 -q)

# run NAME: one round, prints requests per second and the worker's CPU
# microseconds per request.
run() {
	bench_tmpdir
	bench_goprod "$bench_dir" "$builddir/$1/build/src/daemon/goprod" \
	    "$bench" "" taskset -c 0
	bench_cpu_round "$goprod_worker" taskset -c 1 "$bench" \
	    -s "127.0.0.1:$goprod_port" "${load[@]}" -w 1s -d "${duration}s"
	bench_stop "$goprod_pid"
}

# instructions NAME N: the worker's instructions for N requests, in ir.
instructions() {
	bench_tmpdir
	bench_goprod "$bench_dir" "$builddir/$1/build/src/daemon/goprod" "$bench" "" \
	    valgrind -q --tool=callgrind --callgrind-out-file="$bench_dir/cg.%p"
	"$bench" -s "127.0.0.1:$goprod_port" "${load[@]}" -n "$2" >/dev/null
	bench_stop "$goprod_pid"
	cp "$bench_dir/cg.$goprod_worker" "$builddir/cg-$1-$2.out"
	ir=$(bench_instructions "$builddir/cg-$1-$2.out")
}

short() {
	git -C "$srcdir" rev-parse --short "$1"
}

if [ "$rounds" = yes ]; then
	bench_rounds "$builddir" run base modules
	b=$(bench_median 1 <"$builddir/base.txt")
	m=$(bench_median 1 <"$builddir/modules.txt")
	bc=$(bench_median 2 %.3f <"$builddir/base.txt")
	mc=$(bench_median 2 %.3f <"$builddir/modules.txt")
	echo "median (min-max) of $repeat rounds of ${duration}s, c=50 P=32, 64-byte MESSAGE:"
	echo "built-in MESSAGE ($(short "$base")): $b requests/s, worker CPU $bc us/request"
	echo "echo module ($(short "$head")): $m requests/s, worker CPU $mc us/request"
	python3 -c "print('ratio module/built-in: throughput %.3f (target >= 0.95), CPU per request %.3f' % (${m%% *} / ${b%% *}, ${mc%% *} / ${bc%% *}))"
fi

if [ "$callgrind" = yes ]; then
	declare -A per
	for v in base modules; do
		instructions "$v" "$n1"
		a=$ir
		instructions "$v" "$n2"
		z=$ir
		per[$v]=$(python3 -c "print('%.1f' % (($z - $a) / ($n2 - $n1)))")
	done
	echo "worker instructions per request (callgrind, slope $n1..$n2 requests): built-in ${per[base]}, echo module ${per[modules]}"
	python3 -c "print('ratio built-in/module: %.3f (user space only; 1 would be a free indirection)' % (${per[base]} / ${per[modules]}))"
	echo "profiles: callgrind_annotate $builddir/cg-{base,modules}-$n2.out"
fi
