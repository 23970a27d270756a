#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test_cmdline.sh - the command-line conventions of goprod, goproctl and
# gopro-bench, as operators expect them from nginx, HAProxy and Redis.
#
# Every program and every goproctl subcommand (the list comes from
# "goproctl -h", so a new one is covered) is run with -h, --help, -V,
# --version and one bad option:
#   -h/--help      exit 0, a usage on standard output, nothing on stderr;
#   -V/--version   exit 0, "PROGRAM VERSION" first on standard output;
#   a bad option   exit 2, exactly one line on stderr that says what was
#                  wrong and "try '... -h'", nothing on standard output.
# Then the options that take units take those of gopro.conf (1s, 250ms),
# goproctl takes -c after the subcommand, goprod -T prints a configuration
# with the defaults filled in that goprod -t accepts, -t -q is silent, and
# gopro-bench fails fast with the errno when nothing listens.
#
# GOPROD, GOPROCTL and GOPRO_BENCH come from make check.
set -u

fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# run NAME ARGS...: status in $rc, outputs in $tmp/out and $tmp/err.
run() {
	"$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

lines() {
	wc -l <"$1" | tr -d ' '
}

expect_help() {
	local what="$*"

	run "$@"
	[ "$rc" -eq 0 ] || fail "$what: exit $rc, not 0"
	grep -q '^usage: ' "$tmp/out" || fail "$what: no usage on stdout"
	[ -s "$tmp/err" ] && fail "$what: wrote to stderr: $(cat "$tmp/err")"
}

expect_version() {
	local name=$1

	shift
	run "$@"
	[ "$rc" -eq 0 ] || fail "$* : exit $rc, not 0"
	head -n 1 "$tmp/out" | grep -Eq "^$name [0-9]" ||
	    fail "$*: first line is not \"$name VERSION\": $(head -n 1 "$tmp/out")"
}

expect_usage_error() {
	local what="$*"

	run "$@"
	[ "$rc" -eq 2 ] || fail "$what: exit $rc, not 2"
	[ "$(lines "$tmp/err")" -eq 1 ] ||
	    fail "$what: $(lines "$tmp/err") lines on stderr, not one"
	grep -q "try '.* -h'" "$tmp/err" ||
	    fail "$what: no \"try ... -h\" in: $(cat "$tmp/err")"
	[ -s "$tmp/out" ] && fail "$what: wrote to stdout"
}

for p in "$GOPROD" "$GOPROCTL" "$GOPRO_BENCH"; do
	name=${p##*/}
	expect_help "$p" -h
	expect_help "$p" --help
	expect_version "$name" "$p" -V
	expect_version "$name" "$p" --version
	expect_usage_error "$p" --no-such-option
	expect_usage_error "$p" -Z
done

# Every subcommand in goproctl's usage.
subs=$("$GOPROCTL" -h | sed -n 's/.*goproctl \(\[[^]]*\] \)*\([a-z]\{1,\}\).*/\2/p')
[ "$(echo "$subs" | wc -w)" -ge 9 ] || fail "goproctl -h lists only: $subs"
for s in $subs; do
	expect_help "$GOPROCTL" "$s" -h
	grep -q "goproctl .*$s" "$tmp/out" || fail "goproctl $s -h: not its usage"
	expect_help "$GOPROCTL" "$s" --help
	expect_usage_error "$GOPROCTL" "$s" --no-such-option
done
expect_help "$GOPROCTL" help
expect_help "$GOPROCTL" help ping
expect_usage_error "$GOPROCTL" no-such-command
expect_usage_error "$GOPROCTL"
expect_usage_error "$GOPROCTL" stats -w
expect_usage_error "$GOPROCTL" ping -i 1q 127.0.0.1:1
expect_usage_error "$GOPRO_BENCH" -d 10x
expect_usage_error "$GOPROD" -q

# A configuration with defaults everywhere but the account and the port.
cat >"$tmp/a.conf" <<EOF
listen = "127.0.0.1:1"
user = ""
group = ""
workers = 3
EOF

# Durations in the units of the configuration file; -c after the command.
# Port 1 on loopback is closed: the ping fails (1), the options did not (2).
run "$GOPROCTL" ping -c "$tmp/a.conf" -n 1 -i 250ms -W 1s
[ "$rc" -eq 1 ] || fail "goproctl ping -c FILE -i 250ms -W 1s: exit $rc"
grep -q "127.0.0.1:1" "$tmp/err" ||
    fail "goproctl ping -c FILE did not use the file's address: $(cat "$tmp/err")"

# gopro-bench fails at once, with the errno, when nothing listens.
run timeout 5 "$GOPRO_BENCH" -q -s 127.0.0.1:1 -d 30s -w 1s --timeout 2s
[ "$rc" -eq 1 ] || fail "gopro-bench against a closed port: exit $rc, not 1"
grep -q "Connection refused" "$tmp/err" ||
    fail "gopro-bench against a closed port: $(cat "$tmp/err")"

# goprod -T: the effective configuration, every default filled in.
run "$GOPROD" -T -c "$tmp/a.conf"
[ "$rc" -eq 0 ] || fail "goprod -T: exit $rc: $(cat "$tmp/err")"
for opt in listen workers backlog idle_timeout max_connections log_level \
    max_attempts; do
	grep -Eq "^ *$opt *=" "$tmp/out" || fail "goprod -T prints no $opt"
done
grep -Eq '^workers *= *"?3"?' "$tmp/out" || fail "goprod -T: workers is not 3"
cp "$tmp/out" "$tmp/b.conf"
run "$GOPROD" -t -c "$tmp/b.conf"
[ "$rc" -eq 0 ] || fail "goprod -t rejects the output of -T: $(cat "$tmp/err")"
run "$GOPROD" -t -q -c "$tmp/a.conf"
[ "$rc" -eq 0 ] && [ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ] ||
    fail "goprod -t -q on a good file: exit $rc, output: $(cat "$tmp/out" "$tmp/err")"
echo 'workers = "many"' >>"$tmp/a.conf"
run "$GOPROD" -t -q -c "$tmp/a.conf"
[ "$rc" -eq 1 ] && grep -q "workers" "$tmp/err" ||
    fail "goprod -t -q on a bad file: exit $rc, stderr: $(cat "$tmp/err")"

# goprod -V names the build options.
run "$GOPROD" -V
grep -q "^built with: .*systemd" "$tmp/out" || fail "goprod -V: no build options"

if [ "$fails" -gt 0 ]; then
	echo "$fails failures"
	exit 1
fi
echo "all command-line conventions hold"
