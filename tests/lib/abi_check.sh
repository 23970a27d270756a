#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# abi_check.sh - compare the ABI of the built libgopro.so, and of
# libgopro-tls.so when it was built (--with-tls), with the committed
# baselines src/lib/libgopro.abi and src/lib/libgopro-tls.abi
# (abidw/abidiff from abigail-tools).  Run by .ci/run on the quickstart
# build:
#
#   bash tests/lib/abi_check.sh BUILDDIR            # check
#   bash tests/lib/abi_check.sh --update BUILDDIR   # rewrite the baseline
#
# Any change to what the baseline has (a symbol removed, a type or a
# signature changed) fails unless the SONAME changed too (a bump of
# -version-info in configure.ac); a change reviewed as compatible can be
# suppressed in src/lib/NAME.abignore (abidiff's suppression format).
# Additions (a new function) pass with a reminder to update the baseline,
# so that the next change is compared with what was released.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
update=no
if [ "${1:-}" = --update ]; then update=yes; shift; fi
build=${1:?usage: abi_check.sh [--update] BUILDDIR}
headers=$top/src/lib/gopro

command -v abidw >/dev/null || { echo "abi_check: abidw missing (apt-get install abigail-tools)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# check NAME: the library src/lib/.libs/NAME.so against src/lib/NAME.abi.
check() {
	local name=$1
	local so=$build/src/lib/.libs/$name.so
	local baseline=$top/src/lib/$name.abi
	local rc soname_old soname_new supp=()
	[ -e "$so" ] || { echo "abi_check: $so not built" >&2; exit 1; }

	# Only what the public headers define is ABI (--drop-private-types: the
	# layout of an opaque struct, defined in a .c file, is not); no paths.
	abidw --no-corpus-path --no-comp-dir-path --headers-dir "$headers" --drop-private-types \
		--out-file "$work/new.abi" "$so"
	if [ "$update" = yes ]; then
		cp "$work/new.abi" "$baseline"
		echo "abi_check: wrote $baseline"
		return 0
	fi
	[ -e "$baseline" ] || { echo "abi_check: no baseline $baseline (run with --update)" >&2; exit 1; }

	[ -e "$top/src/lib/$name.abignore" ] && supp=(--suppressions "$top/src/lib/$name.abignore")
	rc=0
	# Without the added symbols: what remains is a change to what was there.
	abidiff --no-added-syms "${supp[@]}" "$baseline" "$work/new.abi" >"$work/diff" 2>&1 || rc=$?
	soname_old=$(sed -n "1s/.*soname='\([^']*\)'.*/\1/p" "$baseline")
	soname_new=$(sed -n "1s/.*soname='\([^']*\)'.*/\1/p" "$work/new.abi")
	if (( rc & 1 || rc & 2 )); then
		cat "$work/diff"; echo "abi_check: abidiff failed (exit $rc)" >&2; exit 1
	fi
	if (( rc & 4 || rc & 8 )); then
		cat "$work/diff"
		if [ "$soname_old" = "$soname_new" ]; then
			echo "abi_check: FAIL: the ABI of $soname_new changed (above) without a new SONAME:" \
			    "keep the old ABI, or bump -version-info in configure.ac (and the package" \
			    "name); a reviewed compatible change (a field added at the end of" \
			    "gopro_async_options) goes into src/lib/$name.abignore" >&2
			exit 1
		fi
		echo "abi_check: changes with a new SONAME ($soname_old -> $soname_new): update the baseline"
		return 0
	fi
	rc=0
	abidiff "${supp[@]}" "$baseline" "$work/new.abi" >"$work/diff-all" 2>&1 || rc=$?
	if (( rc & 4 )); then
		cat "$work/diff-all"
		echo "abi_check: only additions (above); refresh the baseline with --update when they are released"
		return 0
	fi
	echo "abi_check: ABI of $soname_new unchanged against $baseline"
}

check libgopro
# libgopro-tls exists only in a build with TLS; CI's quickstart build has it.
if [ -e "$build/src/lib/.libs/libgopro-tls.so" ]; then
	check libgopro-tls
else
	echo "abi_check: no libgopro-tls.so in $build (built without TLS): not checked"
fi
