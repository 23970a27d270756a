#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# show_failures.sh BUILD - print the log of each failed test of a make
# check run in BUILD: its tail, then cmocka's failure lines, so that the
# end of a CI log (all a CI excerpt may show) names what failed and why.
set -u
build=${1:?usage: show_failures.sh BUILD}
for trs in "$build"/tests/*/*.trs; do
	[ -f "$trs" ] || continue
	grep -q -E '^:test-result: (FAIL|ERROR)' "$trs" || continue
	log=${trs%.trs}.log
	echo "==== $log: its tail, then cmocka's failure lines"
	tail -20 "$log"
	echo "----"
	grep -E '^\[ *(ERROR|LINE|FAILED) *\]|Sanitizer|^not ok' "$log" | head -15
done
