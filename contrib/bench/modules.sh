#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# modules.sh - what the module indirection costs, in one run (not part of
# make check): the built-in MESSAGE of the tree before handler modules
# (BASE, default the parent of the commit that added them) against today's
# MESSAGE through the echo module, at 50 connections and depth 32, 64-byte
# bodies, goprod on CPU 0 and gopro-bench on CPU 1, rounds alternating;
# prints the median of each and their ratio (the target is >= 0.95).
#
# usage: contrib/bench/modules.sh [--base COMMIT] [--head COMMIT]
#            [--duration S] [--repeat N] [--build-dir DIR]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
builddir=$srcdir/_build/bench-modules
duration=5
repeat=5
base=
head=HEAD

while [ $# -gt 0 ]; do
	case $1 in
	--base) base=$2; shift ;;
	--head) head=$2; shift ;;
	--duration) duration=$2; shift ;;
	--repeat) repeat=$2; shift ;;
	--build-dir) builddir=$2; shift ;;
	*) sed -n 's/^# usage: //p; s/^#            //p' "$0" >&2; exit 2 ;;
	esac
	shift
done
if [ -z "$base" ]; then
	first=$(git -C "$srcdir" log --format=%H --reverse \
	    --grep='^modules: the SDK header' | head -1)
	base=$(git -C "$srcdir" rev-parse "$first^")
fi

# build NAME TREE: an -O2 build of TREE under $builddir/NAME.
build() {
	local b=$builddir/$1
	mkdir -p "$b"
	(cd "$2" && [ -x configure ] || ./autogen.sh >/dev/null 2>&1)
	(cd "$b" && "$2/configure" -q CFLAGS='-O2 -g' >/dev/null &&
	    nice make -j2 src/daemon/goprod src/bench/gopro-bench >/dev/null)
}

# Both from commits, so that edits in the work tree cannot mix in.
rm -rf "$builddir/base-src" "$builddir/modules-src" "$builddir/base" \
    "$builddir/modules"
mkdir -p "$builddir"
git -C "$srcdir" archive --prefix=base-src/ "$base" | tar -x -C "$builddir"
git -C "$srcdir" archive --prefix=modules-src/ "$head" | tar -x -C "$builddir"
build base "$builddir/base-src"
build modules "$builddir/modules-src"

port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# run NAME: one round, prints requests per second.
run() {
	# The same load generator (today's) for both.
	local b=$builddir/$1 bench=$builddir/modules/src/bench/gopro-bench
	local dir p pid rps
	dir=$(mktemp -d)
	p=$(port)
	cat >"$dir/gopro.conf" <<CONF
listen = { "127.0.0.1:$p" }
workers = 1
user = ""
group = ""
pid_file = "$dir/goprod.pid"
stats_file = "$dir/goprod.stats"
control_socket = "$dir/goprod.sock"
log = "file:$dir/goprod.log"
idle_timeout = 3600s
CONF
	taskset -c 0 "$b/src/daemon/goprod" -f -c "$dir/gopro.conf" \
	    2>>"$dir/goprod.log" &
	pid=$!
	for _ in $(seq 100); do
		"$bench" -s "127.0.0.1:$p" -c 1 -n 1 -q \
		    >/dev/null 2>&1 && break
		sleep 0.05
	done
	rps=$(taskset -c 1 "$bench" -s "127.0.0.1:$p" -q \
	    -c 50 -P 32 -T message -b 64 -w 1s -d "${duration}s" -j |
	    python3 -c 'import json,sys; print(json.load(sys.stdin)["throughput"])')
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
	echo "$rps"
}

median() {
	sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

: >"$builddir/base.txt"
: >"$builddir/modules.txt"
for _ in $(seq "$repeat"); do
	run base >>"$builddir/base.txt"
	run modules >>"$builddir/modules.txt"
done
b=$(median <"$builddir/base.txt")
m=$(median <"$builddir/modules.txt")
echo "built-in MESSAGE ($(git -C "$srcdir" rev-parse --short "$base")): $b requests/s (rounds: $(tr '\n' ' ' <"$builddir/base.txt"))"
echo "echo module ($(git -C "$srcdir" rev-parse --short "$head")): $m requests/s (rounds: $(tr '\n' ' ' <"$builddir/modules.txt"))"
python3 -c "print('ratio: %.3f (target >= 0.95)' % ($m / $b))"
