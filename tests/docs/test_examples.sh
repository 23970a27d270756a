#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test_examples.sh - the example programs of libgopro(3) and
# libgopro-tls(3) (each literal block after a '.\" EXAMPLE name.c' line;
# the TLS one only when libgopro-tls.so was built) and the one of the README's
# "Client library" section are extracted, compiled with -Werror against the
# public headers only, linked against the built libgopro.so (so an example
# that needs an unexported symbol fails here), and run against a port that
# nothing listens on, where each must fail cleanly with a message.
set -u

top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
so=${LIBGOPRO_SO:?LIBGOPRO_SO is set by make check}
cc=${CC:-cc}
libdir=$(dirname "$so")
work=$(mktemp -d) || exit 99
trap 'rm -rf "$work"' EXIT
fail=0

# The man page's blocks: mdoc escapes \e (backslash) and \& (nothing).
awk -v dir="$work" '
	/^\.\\" EXAMPLE / { name = $3; next }
	name != "" && /^\.Bd -literal/ { out = dir "/" name; next }
	out != "" && /^\.Ed/ { close(out); out = ""; name = ""; next }
	out != "" { gsub(/\\e/, "\\"); gsub(/\\&/, ""); print > out }
' "$top/man/libgopro.3" "$top/man/libgopro-tls.3"
# The README's: the first ```c block of its "Client library" section.
awk -v out="$work/readme.c" '
	/^## / { in_sec = ($0 == "## Client library") }
	in_sec && /^```c$/ && !done { copy = 1; next }
	copy && /^```$/ { copy = 0; done = 1; next }
	copy { print > out }
' "$top/README.md"

port=1
while :; do
	port=$(( (RANDOM % 20000) + 40000 ))
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
done
n=0
for src in "$work"/*.c; do
	[ -e "$src" ] || break
	name=$(basename "$src" .c)
	libs="-L$libdir -lgopro"
	grep -q 'gopro/libev.h' "$src" && libs="$libs -lev"
	if grep -q 'gopro/tls_client.h' "$src"; then
		if [ ! -e "$libdir/libgopro-tls.so" ]; then
			echo "ok: $name.c skipped (built without TLS)"
			continue
		fi
		libs="-L$libdir -lgopro-tls $libs"
	fi
	n=$((n + 1))
	if ! $cc -std=gnu11 -Wall -Wextra -Werror -I"$top/src/lib" -o "$work/$name" \
	    "$src" $libs 2>"$work/$name.err"; then
		echo "FAIL: the example $name.c does not compile:"
		cat -n "$src"; cat "$work/$name.err"; fail=1; continue
	fi
	out=$(LD_LIBRARY_PATH=$libdir timeout 20 "$work/$name" \
	    "127.0.0.1:$port" 2>&1)
	rc=$?
	if [ $rc != 1 ] || ! grep -qi "connect" <<<"$out"; then
		echo "FAIL: $name against a closed port: exit $rc, output: $out"
		fail=1
	else
		echo "ok: $name.c builds and fails cleanly: $(head -1 <<<"$out")"
	fi
done
wanted="sync async readme"
[ -e "$libdir/libgopro-tls.so" ] && wanted="$wanted tls"
for want in $wanted; do
	[ -e "$work/$want.c" ] || { echo "FAIL: no $want example found"; fail=1; }
done
exit $fail
