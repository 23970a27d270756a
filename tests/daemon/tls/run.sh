#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# run.sh tests/daemon/tls/NAME.tls - make check's TLS_LOG_COMPILER: run the
# protocol test program tests/daemon/NAME a second time with every listener
# of its configurations speaking TLS and its connections relayed through
# libgopro-tls (GOPRO_TEST_TRANSPORT=tls, see tests/harness/harness.h).
# The NAME.tls files only name the programs that run so.
set -eu
name=$(basename "$1" .tls)
prog=tests/daemon/$name
[ -x "$prog" ] || { echo "run.sh: no $prog (run from the build directory)" >&2; exit 99; }
command -v openssl >/dev/null || { echo "run.sh: no openssl command for make_certs.sh: skipped" >&2; exit 77; }
GOPRO_TEST_TRANSPORT=tls
export GOPRO_TEST_TRANSPORT
exec "$prog"
