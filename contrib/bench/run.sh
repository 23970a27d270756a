#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# run.sh - the gopro benchmark suite, in one command (not part of make check).
#
# Builds goprod with optimisation in its own build directories (once with
# the stats, once with -DGOPRO_NO_STATS), then runs suite.py, which starts
# goprod, redis-server and iperf3 one at a time on loopback (server on CPU 0,
# load generator on CPU 1), measures, and writes the report (markdown), its
# data (JSON) and a PNG plot.  About 12 minutes; see contrib/bench/README.md.
#
# usage: contrib/bench/run.sh [--out FILE.md] [--build-dir DIR] [--no-build]
#            [--cflags FLAGS] [--duration S] [--repeat N] [--sections LIST]
#            [--update]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
out=$here/report.md
builddir=$srcdir/_build/bench
cflags='-O2 -g'
build=yes
duration=3
repeat=3
sections=matrix,idle,iperf,stats,workers,profile
update=

usage() {
	sed -n 's/^# usage: //p; s/^#            //p' "$0" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--out) out=$2; shift ;;
	--build-dir) builddir=$2; shift ;;
	--no-build) build=no ;;
	--cflags) cflags=$2; shift ;;
	--duration) duration=$2; shift ;;
	--repeat) repeat=$2; shift ;;
	--sections) sections=$2; shift ;;
	--update) update=--update ;;
	-h|--help) usage ;;
	*) echo "run.sh: unknown option $1" >&2; usage ;;
	esac
	shift
done
case $out in /*) ;; *) out=$(pwd)/$out ;; esac

missing=
for tool in taskset python3 redis-server redis-benchmark iperf3 gnuplot \
    perf strace valgrind callgrind_annotate; do
	command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
	echo "run.sh: missing:$missing" >&2
	echo "run.sh: on Debian: apt-get install util-linux python3" \
	    "redis-server redis-tools iperf3 gnuplot-nox linux-perf strace" \
	    "valgrind" >&2
	exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
	echo "run.sh: needs 2 CPUs (server on CPU 0, client on CPU 1)" >&2
	exit 1
fi

# Two builds outside the source tree: stats in, stats out.  The stats-out
# build is not -Werror: the compiled-out stats leave a table unused.
build_one() {
	dir=$1; shift
	mkdir -p "$dir"
	(cd "$dir" &&
	    { [ -f Makefile ] || "$srcdir/configure" -q "$@" >/dev/null; } &&
	    make -j"$(nproc)" src/daemon/goprod src/goproctl/goproctl src/bench/gopro-bench \
	    >build.log 2>&1) ||
	    { echo "run.sh: build in $dir failed, see $dir/build.log" >&2;
	      exit 1; }
}
if [ $build = yes ]; then
	[ -x "$srcdir/configure" ] || (cd "$srcdir" && ./autogen.sh)
	echo "run.sh: building in $builddir (CFLAGS='$cflags')" >&2
	build_one "$builddir/stats" CFLAGS="$cflags"
	build_one "$builddir/nostats" CFLAGS="$cflags" \
	    CPPFLAGS=-DGOPRO_NO_STATS
fi

# 10,000 idle connections need descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

suite=
cleanup() {
	# suite.py stops what it started on SIGTERM; this stops suite.py.
	if [ -n "$suite" ] && kill -0 "$suite" 2>/dev/null; then
		kill -TERM "$suite" 2>/dev/null || true
		wait "$suite" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

python3 "$here/suite.py" \
    --goprod "$builddir/stats/src/daemon/goprod" \
    --goprod-nostats "$builddir/nostats/src/daemon/goprod" \
    --goproctl "$builddir/stats/src/goproctl/goproctl" \
    --bench "$builddir/stats/src/bench/gopro-bench" \
    --cflags "$cflags" --out "$out" --duration "$duration" \
    --repeat "$repeat" --sections "$sections" $update &
suite=$!
status=0
wait "$suite" || status=$?
suite=
exit $status
