#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# quickstart.sh - set up a fresh Debian 12 machine (as root) and either run
# goprod on the shipped configuration or build and pass every test.
#
#   bash contrib/quickstart.sh run    install, build, run goprod -f on etc/gopro.conf
#   bash contrib/quickstart.sh test   install, build, make check
#
# The build goes to _build/quickstart so the source tree stays clean.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/_build/quickstart"

# Debian packages needed to build and run gopro ("run" installs only these).
RUN_PACKAGES=(build-essential autoconf automake libtool pkg-config
	libev-dev libconfuse-dev libcrypt-dev libsystemd-dev)
RUN_PACKAGES+=(libssl-dev)  # TLS listeners (a build without it has none)
# ... and to test it ("test" installs these too; add test needs below).
PACKAGES=("${RUN_PACKAGES[@]}" libcmocka-dev
	mandoc clang python3 python3-prometheus-client prometheus)
PACKAGES+=(openssl)  # the TLS tests make certificates with openssl
PACKAGES+=(libhiredis-dev redis-server)  # the redis_stream module and its test
PACKAGES+=(haproxy)  # tests/daemon/test_tls_haproxy.sh: HAProxy as a TLS client (skipped without)

# install_packages NAME...: the ones not installed yet.
install_packages() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "quickstart: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
}

configure_build() {
	cd "$top"
	[ -x configure ] || ./autogen.sh
	mkdir -p "$build"
	cd "$build"
	[ -f Makefile ] || "$top/configure" --enable-werror "$@"
	make -j"$(nproc)"
}

# A build that "run" configured before the test packages were installed
# has no tests (cmocka) and no redis_stream module (hiredis): configure it
# again, with the same options, now that they are there.
reconfigure_for_tests() {
	local status="$build/config.status"

	[ -f "$status" ] || return 0
	grep -q '^S\["HAVE_CMOCKA_TRUE"\]="#"' "$status" ||
		grep -q '^S\["HAVE_HIREDIS_TRUE"\]="#"' "$status" || return 0
	echo "quickstart: configuring $build again for the tests"
	(cd "$build" && ./config.status --recheck >/dev/null &&
		./config.status >/dev/null)
}

# Print the plain closing line from the automake test summary.
summarize() {
	local log="$build/test-suite.log" pass fail skip
	pass=$(sed -n 's/^# PASS: *//p' "$log")
	fail=$(( $(sed -n 's/^# FAIL: *//p' "$log") + $(sed -n 's/^# ERROR: *//p' "$log") ))
	skip=$(sed -n 's/^# SKIP: *//p' "$log")
	echo "tests: ${pass:-0} passed, ${fail} failed, ${skip:-0} skipped"
}

cmd_test() {
	install_packages "${PACKAGES[@]}"
	reconfigure_for_tests
	configure_build
	local rc=0
	make -j"$(nproc)" check || rc=$?
	[ $rc -eq 0 ] || bash "$top/tests/show_failures.sh" "$build"
	summarize
	return $rc
}

cmd_run() {
	install_packages "${RUN_PACKAGES[@]}"
	configure_build
	getent group gopro >/dev/null || groupadd --system gopro
	getent passwd gopro >/dev/null ||
		useradd --system --gid gopro --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin gopro
	echo "quickstart: goprod -f on $top/etc/gopro.conf (127.0.0.1:8888, [::1]:8888);"
	echo "quickstart: in another shell: $build/src/goproctl/goproctl -c $top/etc/gopro.conf status"
	exec "$build/src/daemon/goprod" -f -c "$top/etc/gopro.conf"
}

case "${1:-}" in
test) cmd_test ;;
run) cmd_run ;;
*) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
