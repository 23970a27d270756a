#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test_exports.sh - each shared library of the client side exports exactly
# the symbols its version script lists, each under its version node, and
# its SONAME carries the major version only: libgopro.so.1
# (src/lib/libgopro.map) and, when built with TLS, libgopro-tls.so.1
# (src/lib/libgopro-tls.map).  A function marked GOPRO_API but missing
# from the map, or a map entry without a definition, fails here rather than
# in a user's link.  The libraries' dependencies are checked with readelf
# -d: OpenSSL is on libgopro-tls's link line and never on libgopro's.
set -u

top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
so=${LIBGOPRO_SO:?LIBGOPRO_SO is set by make check}
tls_so=$(dirname "$so")/libgopro-tls.so
fail=0

# check_exports SO MAP SYMBOLS SONAME HEADER...
check_exports() {
	local so=$1 map=$2 symbols=$3 soname_want=$4 want have stray declared
	local mapped debian soname
	shift 4
	# Names in the map's global: sections, "NAME@@NODE", sorted; a node
	# ends with "}" or "} PARENT;" (LIBGOPRO_1.1 inherits 1.0).
	want=$(awk '/^[A-Z0-9_.]+ *\{/ { node = $1 } /^global:/ { g = 1; next }
		/^local:/ || /^\}/ { g = 0 } g && /;/ { gsub(/[ \t;]/, ""); print $0 "@@" node }' \
		"$map" | sort)
	# Defined dynamic symbols with their default version, as readelf shows them.
	have=$(readelf --dyn-syms -W "$so" | awk '$7 != "UND" && $8 ~ /@@LIBGOPRO_/ { print $8 }' | sort)
	if [ "$want" != "$have" ]; then
		echo "FAIL: exported symbols of $so differ from $map (- map, + library):"
		diff <(echo "$want") <(echo "$have") | grep '^[<>]' | sed 's/^</-/; s/^>/+/'
		fail=1
	fi
	# Nothing exported outside a version node (a symbol the map forgot to hide).
	stray=$(readelf --dyn-syms -W "$so" | awk '$7 != "UND" && $5 != "LOCAL" &&
		$1 ~ /^[0-9]+:$/ && $8 != "" && $8 !~ /@/ && $7 != "ABS" && $4 != "SECTION" && $4 != "FILE"')
	if [ -n "$stray" ]; then
		echo "FAIL: unversioned exports in $so:"; echo "$stray"; fail=1
	fi
	# Every GOPRO_API declaration of the library's public headers is in
	# the map (the declaration starts its line with GOPRO_API and names
	# the function there or on the next line).
	declared=$(sed -n '/^GOPRO_API/{/(/!N;s/^GOPRO_API[^(]*[ *\n]\([a-z_0-9]*\)(.*/\1/p}' \
		"$@" | sort -u)
	mapped=$(echo "$want" | sed 's/@@.*//' | sort -u)
	if [ "$declared" != "$mapped" ]; then
		echo "FAIL: GOPRO_API declarations differ from $map (- headers, + map):"
		diff <(echo "$declared") <(echo "$mapped") | grep '^[<>]' | sed 's/^</-/; s/^>/+/'
		fail=1
	fi
	# The Debian symbols file lists the same symbols (dpkg-gensymbols would
	# otherwise only warn at package build time).
	debian=$(sed -n 's/^ \(gopro_[a-z_0-9]*\)@\(LIBGOPRO_[A-Z_]*[0-9.]*\) .*/\1@@\2/p' "$symbols" | sort)
	if [ "$want" != "$debian" ]; then
		echo "FAIL: $symbols differs from $map (- map, + symbols):"
		diff <(echo "$want") <(echo "$debian") | grep '^[<>]' | sed 's/^</-/; s/^>/+/'
		fail=1
	fi
	soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
	if [ "$soname" != "$soname_want" ]; then
		echo "FAIL: SONAME of $so is '$soname', expected $soname_want"; fail=1
	fi
	echo "ok: $(basename "$so"): $(echo "$want" | wc -l) symbols, SONAME $soname"
}

# needed SO: the libraries SO depends on (DT_NEEDED), one a line.
needed() {
	readelf -d "$1" | sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]/\1/p'
}

headers=()
for h in "$top"/src/lib/gopro/*.h; do
	[ "$(basename "$h")" = tls_client.h ] || headers+=("$h")
done
check_exports "$so" "$top/src/lib/libgopro.map" \
	"$top/contrib/debian/libgopro1.symbols" libgopro.so.1 "${headers[@]}"
if needed "$so" | grep -E '^lib(ssl|crypto)\.so'; then
	echo "FAIL: libgopro.so links OpenSSL (above): it belongs to libgopro-tls"
	fail=1
fi
if [ -e "$tls_so" ]; then
	check_exports "$tls_so" "$top/src/lib/libgopro-tls.map" \
		"$top/contrib/debian/libgopro-tls1.symbols" libgopro-tls.so.1 \
		"$top/src/lib/gopro/tls_client.h"
	for lib in libgopro.so.1 libssl.so.3 libcrypto.so.3; do
		if ! needed "$tls_so" | grep -qx "$lib"; then
			echo "FAIL: libgopro-tls.so does not link $lib: $(needed "$tls_so" | tr '\n' ' ')"
			fail=1
		fi
	done
else
	echo "ok: no libgopro-tls.so (built without TLS)"
fi
exit $fail
