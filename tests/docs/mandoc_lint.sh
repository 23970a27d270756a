#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# mandoc_lint.sh - every manual page under man/ must be clean under
# "mandoc -Tlint", STYLE messages included.  Skips (exit 77) when mandoc is
# not installed.
#
# The pages are linted from inside man/ so that their references to each
# other resolve.  Two kinds of output depend on the machine rather than on
# the pages, and only those are ignored: a reference to another package's
# manual that is not installed here ("referenced manual not found" for a
# page that is not one of ours; minimal images ship no manuals at all), and
# mandoc's note that the host's mandoc.db is missing or outdated.
set -u

mandoc=$(command -v mandoc) || {
	echo "mandoc is not installed: skipping the manual page lint"
	exit 77
}
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}

# From inside man/, mandoc finds the pages we refer to by their file names.
cd "$top/man" || exit 1
shopt -s nullglob
pages=(*.[0-9])
if [ ${#pages[@]} -eq 0 ]; then
	echo "FAIL: no manual pages under $top/man" >&2
	exit 1
fi

# Our own pages, as "name section", e.g. "goprod 8".
ours=()
for p in "${pages[@]}"; do
	ours+=("${p%.*} ${p##*.}")
done

is_ours() {
	local want=$1 o
	for o in "${ours[@]}"; do
		[ "$o" = "$want" ] && return 0
	done
	return 1
}

errfile=$(mktemp) || exit 99
trap 'rm -f "$errfile"' EXIT

# Lint messages go to standard output, mandoc's own notes to standard error.
out=$("$mandoc" -Tlint "${pages[@]}" 2>"$errfile")
rc=$?
if [ $rc -ge 5 ]; then
	echo "FAIL: mandoc -Tlint exited $rc" >&2
	cat "$errfile" >&2
	exit 1
fi

bad=()
re='referenced manual not found: Xr ([^ ]+) ([^ ]+)'
while IFS= read -r line; do
	[ -z "$line" ] && continue
	if [[ $line =~ $re ]] && ! is_ours "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"; then
		echo "ignored (not installed on this host): $line"
		continue
	fi
	bad+=("$line")
done <<<"$out"
while IFS= read -r line; do
	[ -z "$line" ] && continue
	case $line in
	*"mandoc.db lacks"*) continue ;;
	esac
	bad+=("$line")
done <"$errfile"

if [ ${#bad[@]} -gt 0 ]; then
	echo "FAIL: mandoc -Tlint reports ${#bad[@]} problem(s):" >&2
	printf '  %s\n' "${bad[@]}" >&2
	exit 1
fi
echo "ok: ${#pages[@]} manual pages are mandoc -Tlint clean"
exit 0
