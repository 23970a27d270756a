#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test_exports.sh - libgopro.so exports exactly the symbols that the version
# script src/lib/libgopro.map lists, each under its version node, and its
# SONAME carries the major version only.  A function marked GOPRO_API but
# missing from the map, or a map entry without a definition, fails here
# rather than in a user's link.
set -u

top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
so=${LIBGOPRO_SO:?LIBGOPRO_SO is set by make check}
map=$top/src/lib/libgopro.map
fail=0

# Names in the map's global: sections, "NAME NODE", sorted.
want=$(awk '/^[A-Z0-9_.]+ *\{/ { node = $1 } /^global:/ { g = 1; next }
	/^local:/ { g = 0 } g && /;/ { gsub(/[ \t;]/, ""); print $0 "@@" node }' \
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
# Every GOPRO_API declaration of the public headers is in the map (the
# declaration starts its line with GOPRO_API and names the function there).
declared=$(sed -n 's/^GOPRO_API[^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' \
	"$top"/src/lib/gopro/*.h | sort -u)
mapped=$(echo "$want" | sed 's/@@.*//' | sort -u)
if [ "$declared" != "$mapped" ]; then
	echo "FAIL: GOPRO_API declarations differ from $map (- headers, + map):"
	diff <(echo "$declared") <(echo "$mapped") | grep '^[<>]' | sed 's/^</-/; s/^>/+/'
	fail=1
fi
# The Debian symbols file lists the same symbols (dpkg-gensymbols would
# otherwise only warn at package build time).
symbols=$top/contrib/debian/libgopro1.symbols
debian=$(sed -n 's/^ \(gopro_[a-z_0-9]*\)@\(LIBGOPRO_[0-9.]*\) .*/\1@@\2/p' "$symbols" | sort)
if [ "$want" != "$debian" ]; then
	echo "FAIL: $symbols differs from $map (- map, + symbols):"
	diff <(echo "$want") <(echo "$debian") | grep '^[<>]' | sed 's/^</-/; s/^>/+/'
	fail=1
fi
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" != "libgopro.so.1" ]; then
	echo "FAIL: SONAME is '$soname', expected libgopro.so.1"; fail=1
fi
[ $fail = 0 ] && echo "ok: $(echo "$want" | wc -l) symbols, SONAME $soname"
exit $fail
