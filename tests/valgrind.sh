#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# tests/valgrind.sh - run goprod under valgrind memcheck (master and its
# workers, --trace-children=yes) in the foreground, play short scripted
# sessions against it, stop it with SIGTERM, and fail unless every
# process's valgrind log reports no error and no leak.  Each run is one
# function with its own directory:
#   run_basic    heartbeats, messages, a login, an error, a large body;
#   run_modules  handler modules loaded from files: the echo module, the
#                threaded test module and redis_stream (when it is built
#                and redis-server is installed) serve requests, then a
#                reload swaps the test module's file while requests are in
#                flight on its threads, and the new generation serves;
#   run_tls      a TLS listener with verify_client = require (certificates
#                from tests/harness/make_certs.sh): full and resumed
#                handshakes with a good client certificate, clients without
#                one or from another CA refused, traffic, then a reload
#                that swaps the certificate (ECDSA to RSA) while a
#                connection stays open on the old one.  OpenSSL runs as it
#                comes, without allocation hooks.
#
# Usage: tests/valgrind.sh [BUILDDIR]   (default: the current directory,
# which must hold src/daemon/goprod and src/goproctl/goproctl).  Not part of make check: it
# takes a few minutes.  Exit 0 clean, 1 on findings, 77 without valgrind.
set -euo pipefail

build=$(cd "${1:-.}" && pwd)
goprod=$build/src/daemon/goprod
goproctl=$build/src/goproctl/goproctl
command -v valgrind >/dev/null || { echo "valgrind.sh: no valgrind" >&2; exit 77; }
[ -x "$goprod" ] && [ -x "$goproctl" ] ||
	{ echo "valgrind.sh: no goprod/goproctl in $build/src" >&2; exit 1; }

top=$(mktemp -d /tmp/gopro-vg-XXXXXX)
pid=
redis_pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	[ -n "$redis_pid" ] && kill -9 "$redis_pid" 2>/dev/null || true
	rm -rf "$top"
}
trap cleanup EXIT
fail=0

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The top of a config for DIR listening on PORT, one worker.
conf_head() {
	cat <<EOF
listen = {"127.0.0.1:$2"}
workers = 1
user = ""
group = ""
pid_file = "$1/goprod.pid"
stats_file = "$1/goprod.stats"
control_socket = "$1/goprod.sock"
log = "file:$1/goprod.log"
drain_timeout = 10s
EOF
}

ctl() { "$goproctl" -c "$dir/gopro.conf" "$@"; }

# The frames of the Python clients (from vgframes import frame, recv_frame).
cat >"$top/vgframes.py" <<'EOF'
import struct
def frame(cmd, body=b""):
    return b"GO\x01" + bytes([cmd]) + struct.pack(">I", len(body)) + body
def recv_frame(s):
    h = b""
    while len(h) < 8:
        c = s.recv(8 - len(h)); assert c, "closed"; h += c
    n = struct.unpack(">I", h[4:])[0]; b = b""
    while len(b) < n:
        c = s.recv(n - len(b)); assert c, "closed"; b += c
    return h[3], b
EOF

# goprod -f on $dir/gopro.conf under memcheck, until it answers goproctl.
vg_start() {
	valgrind --trace-children=yes --leak-check=full --show-leak-kinds=definite,indirect,possible \
		--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
		--child-silent-after-fork=no --log-file="$dir/vg.%p.log" \
		"$goprod" -f -c "$dir/gopro.conf" 2>"$dir/stderr" &
	pid=$!
	for _ in $(seq 1 300); do
		ctl ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	ctl ping >/dev/null || { echo "valgrind.sh: goprod did not start" >&2; cat "$dir"/*.log >&2; exit 1; }
}

# SIGTERM, then every valgrind log of $dir clean and at least $1 of them.
vg_stop_and_check() {
	local rc=0 nlogs=0 log summary
	ctl stats >/dev/null
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	pid=
	echo "valgrind.sh: $run: goprod exited with status $rc"
	for log in "$dir"/vg.*.log; do
		nlogs=$((nlogs + 1))
		summary=$(grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost" "$log" || true)
		echo "== $run $(basename "$log"): $(grep -m1 -oE 'Command: .*' "$log" || echo '?')"
		echo "$summary" | sed 's/^==[0-9]*== /   /'
		if ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
			fail=1
			cat "$log"
		fi
	done
	[ "$nlogs" -ge "$1" ] || { echo "valgrind.sh: $run: only $nlogs valgrind logs" >&2; fail=1; }
	[ "$rc" -eq 0 ] || { echo "valgrind.sh: $run: goprod exit status $rc" >&2; fail=1; }
}

# ------------------------------------------------------------ run_basic
run_basic() {
	run=basic
	dir=$top/basic
	mkdir -p "$dir"
	local port hash
	port=$(free_port)
	hash=$(python3 -c 'import crypt; print(crypt.crypt("wonderland", crypt.mksalt(crypt.METHOD_SHA512)))' 2>/dev/null ||
		openssl passwd -6 wonderland)
	printf 'alice:%s\n' "$hash" >"$dir/users"
	chmod 600 "$dir/users"
	{ conf_head "$dir" "$port"; cat <<EOF
auth {
  users_file = "$dir/users"
  login_rate = 0
}
EOF
	} >"$dir/gopro.conf"
	vg_start

	# The session, from a small Python client.
	PYTHONPATH=$top python3 - "$port" <<'EOF'
import socket, sys
from vgframes import frame, recv_frame
port, big = int(sys.argv[1]), b"b" * 300000
s = socket.create_connection(("127.0.0.1", port))
for i in range(5):
    s.sendall(frame(0, b"hb%d" % i)); assert recv_frame(s) == (0, b"hb%d" % i)
    s.sendall(frame(1, b"m%d" % i)); assert recv_frame(s) == (1, b"Server says: m%d" % i)
s.sendall(frame(2, b"alice\x00wrong")); assert recv_frame(s)[0] == 4
s.sendall(frame(2, b"alice\x00wonderland")); assert recv_frame(s) == (3, b"OK")
s.sendall(frame(0x42, b"?")); assert recv_frame(s)[0] == 4
s.sendall(frame(1, big)); assert recv_frame(s) == (1, b"Server says: " + big)
s.sendall(b"GO\x01\x00\x00\x00"); s.close()          # truncated, then gone
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"XXXXXXXX"); assert recv_frame(s)[0] == 4  # bad magic: ERROR 1, close
s.close()
EOF
	# Master and worker at least (the metrics process is off).
	vg_stop_and_check 2
}

# ------------------------------------------------------------ run_modules
run_modules() {
	run=modules
	dir=$top/modules
	mkdir -p "$dir"
	local port rport=0 mods=$build/tests/modules/.libs
	local rs=$build/src/modules/.libs/redis_stream.so
	# The test modules are check libraries: build them if make check has not.
	[ -e "$mods/mod_v2.so" ] && [ -e "$mods/echo.so" ] ||
		make -C "$build" -s tests/modules/mod_v1.la tests/modules/mod_v2.la \
			tests/modules/echo.la >/dev/null
	port=$(free_port)
	cp "$mods/mod_v1.so" "$dir/current.so"
	{ conf_head "$dir" "$port"; cat <<EOF
goaway_grace = 0.2s
module t {
  path = "$dir/current.so"
  mode = "thread_late"
  delay = 0.3s
  timeout = 30s
}
module echo {
  path = "$mods/echo.so"
  prefix = "file: "
}
EOF
	} >"$dir/gopro.conf"
	if [ -e "$rs" ] && command -v redis-server >/dev/null; then
		rport=$(free_port)
		redis-server --port "$rport" --bind 127.0.0.1 --save "" \
			--appendonly no --loglevel warning >"$dir/redis.out" 2>&1 &
		redis_pid=$!
		for _ in $(seq 1 100); do
			redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break
			sleep 0.1
		done
		cat >>"$dir/gopro.conf" <<EOF
module ingest {
  path = "$rs"
  port = $rport
  key = "vg"
  commands = { "0x11" }
  timeout = 30s
}
EOF
	else
		echo "valgrind.sh: modules: no redis_stream module or no redis-server: not loaded"
	fi
	vg_start

	# Serve on every module, then install v2 and reload while five
	# requests are on the old worker's threads; the new one serves v2.
	PYTHONPATH=$top python3 - "$port" "$rport" "$pid" "$mods/mod_v2.so" "$dir" <<'EOF'
import os, shutil, signal, socket, sys, time
from vgframes import frame, recv_frame
port, rport, master = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
v2, d = sys.argv[4], sys.argv[5]
def serve_all(s, tag):
    s.sendall(frame(1, b"x")); assert recv_frame(s) == (1, b"file: x")
    s.sendall(b"".join(frame(0x10, b"%d" % i) for i in range(20)))
    for i in range(20):
        assert recv_frame(s) == (0x10, b"%s:%d" % (tag, i))
    if rport:
        s.sendall(b"".join(frame(0x11, b"r%d" % i) for i in range(5)))
        for i in range(5):
            cmd, body = recv_frame(s); assert cmd == 1 and b"-" in body, body
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(60)
serve_all(s, b"v1")
s.sendall(b"".join(frame(0x10, b"f%d" % i) for i in range(5)))
shutil.copy(v2, d + "/next.so"); os.rename(d + "/next.so", d + "/current.so")
os.kill(master, signal.SIGHUP)
for i in range(5):
    assert recv_frame(s) == (0x10, b"v1:f%d" % i)
assert recv_frame(s)[0] == 5                          # GOAWAY
s.close()
deadline = time.time() + 120                         # valgrind is slow
while True:
    n = socket.create_connection(("127.0.0.1", port)); n.settimeout(60)
    n.sendall(frame(0x10, b"new")); got = recv_frame(n)
    if got[0] == 5:                                  # a draining worker's
        got = recv_frame(n)
    if got == (0x10, b"v2:new"):
        break
    assert got == (0x10, b"v1:new") and time.time() < deadline, got
    n.close(); time.sleep(0.2)
serve_all(n, b"v2")
n.close()
EOF
	# Master, the first worker, the probes of start and reload, the new
	# worker.
	vg_stop_and_check 5
	if [ -n "$redis_pid" ]; then
		kill "$redis_pid"
		wait "$redis_pid" 2>/dev/null || true
		redis_pid=
	fi
}

# ------------------------------------------------------------ run_tls
run_tls() {
	run=tls
	dir=$top/tls
	mkdir -p "$dir"
	local port tport here
	here=$(cd "$(dirname "$0")" && pwd)
	command -v openssl >/dev/null || { echo "valgrind.sh: tls: no openssl command: not run"; return; }
	grep -q '^#define HAVE_TLS 1' "$build/config.h" ||
		{ echo "valgrind.sh: tls: goprod built without TLS: not run"; return; }
	sh "$here/harness/make_certs.sh" "$dir/certs" >/dev/null
	cp "$dir/certs/server.pem" "$dir/current.pem"
	cp "$dir/certs/server.key" "$dir/current.key"
	port=$(free_port)
	tport=$(free_port)
	{ conf_head "$dir" "$port" |
		sed "s|^listen = .*|listen = {\"127.0.0.1:$port\", \"127.0.0.1:$tport\"}|"
	cat <<EOF
goaway_grace = 0.5s
tls {
  listen = {"127.0.0.1:$tport"}
  certificate = "$dir/current.pem"
  key = "$dir/current.key"
  client_ca = "$dir/certs/ca.pem"
  verify_client = require
}
EOF
	} >"$dir/gopro.conf"
	vg_start

	PYTHONPATH=$top python3 - "$tport" "$pid" "$dir" <<'EOF'
import os, shutil, signal, socket, ssl, sys, time
from vgframes import frame, recv_frame
port, master, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
certs = d + "/certs/"
def context(name=None):
    c = ssl.create_default_context(cafile=certs + "ca.pem")
    if name:
        c.load_cert_chain(certs + name + ".pem", certs + name + ".key")
    return c
def connect(ctx, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=60)
    return ctx.wrap_socket(raw, server_hostname="localhost", session=session)
def serve(s, tag, big=b""):
    s.sendall(frame(0, tag)); assert recv_frame(s) == (0, tag)
    s.sendall(frame(1, tag + big))
    assert recv_frame(s) == (1, b"Server says: " + tag + big)
def refused(ctx, what):
    try:
        s = connect(ctx)
        s.sendall(frame(0, b"in?"))
        got = s.recv(8)                   # TLS 1.3: the alert comes now
    except (ssl.SSLError, OSError):
        return
    assert not got, "%s: served %r" % (what, got)
good = context("client")
s = connect(good)                         # a full handshake
serve(s, b"full", b"b" * 100000)
assert s.version() in ("TLSv1.3", "TLSv1.2"), s.version()
r = connect(good, s.session)              # resumed
assert r.session_reused, "the session was not resumed"
serve(r, b"resumed")
r.close()
refused(context(), "no client certificate")
refused(context("other"), "a certificate from another CA")
# Swap the certificate (ECDSA P-256 to RSA-2048) and reload; s stays on
# the old generation's SSL_CTX until its GOAWAY.
ecdsa = s.getpeercert(binary_form=True)
shutil.copy(certs + "server-rsa.pem", d + "/next.pem")
shutil.copy(certs + "server-rsa.key", d + "/next.key")
os.rename(d + "/next.key", d + "/current.key")
os.rename(d + "/next.pem", d + "/current.pem")
os.kill(master, signal.SIGHUP)
deadline = time.time() + 120              # valgrind is slow
while True:
    n = connect(good)
    if n.getpeercert(binary_form=True) != ecdsa:
        break
    assert time.time() < deadline, "the certificate was not swapped"
    n.close(); time.sleep(0.2)
serve(n, b"swapped", b"c" * 100000)
n.close()
s.close()
EOF
	# The server saw what the client did: resumed, and two refusals.
	ctl stats --json | python3 -c '
import json, sys
t = json.load(sys.stdin)["totals"]["counters"]
assert t["tls_handshakes_resumed"] >= 1 and t["tls_failed_certificate"] >= 2, t' ||
		{ echo "valgrind.sh: tls: the counters disagree" >&2; fail=1; }
	# Master, the worker of each generation.
	vg_stop_and_check 3
}

run_basic
run_modules
run_tls
[ "$fail" -eq 0 ] && echo "valgrind.sh: no errors, no leaks"
exit "$fail"
