#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# tests/valgrind.sh - run goprod under valgrind memcheck (master and its one
# worker, --trace-children=yes) in the foreground, play a short scripted
# session with goproctl (heartbeats, messages, a login, an error, a large
# body), stop it with SIGTERM, and fail unless every process's valgrind log
# reports no error and no leak.
#
# Usage: tests/valgrind.sh [BUILDDIR]   (default: the current directory,
# which must hold src/daemon/goprod and src/goproctl/goproctl).  Not part of make check: it
# takes about a minute.  Exit 0 clean, 1 on findings, 77 without valgrind.
set -euo pipefail

build=$(cd "${1:-.}" && pwd)
goprod=$build/src/daemon/goprod
goproctl=$build/src/goproctl/goproctl
command -v valgrind >/dev/null || { echo "valgrind.sh: no valgrind" >&2; exit 77; }
[ -x "$goprod" ] && [ -x "$goproctl" ] ||
	{ echo "valgrind.sh: no goprod/goproctl in $build/src" >&2; exit 1; }

dir=$(mktemp -d /tmp/gopro-vg-XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hash=$(python3 -c 'import crypt; print(crypt.crypt("wonderland", crypt.mksalt(crypt.METHOD_SHA512)))' 2>/dev/null ||
	openssl passwd -6 wonderland)
printf 'alice:%s\n' "$hash" >"$dir/users"
chmod 600 "$dir/users"
cat >"$dir/gopro.conf" <<EOF
listen = {"127.0.0.1:$port"}
workers = 1
user = ""
group = ""
pid_file = "$dir/goprod.pid"
stats_file = "$dir/goprod.stats"
control_socket = "$dir/goprod.sock"
log = "file:$dir/goprod.log"
drain_timeout = 10s
auth {
  users_file = "$dir/users"
  login_rate = 0
}
EOF

valgrind --trace-children=yes --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
	--child-silent-after-fork=no --log-file="$dir/vg.%p.log" \
	"$goprod" -f -c "$dir/gopro.conf" 2>"$dir/stderr" &
pid=$!

ctl() { "$goproctl" -c "$dir/gopro.conf" "$@"; }
for _ in $(seq 1 300); do
	ctl ping >/dev/null 2>&1 && break
	sleep 0.1
done
ctl ping >/dev/null || { echo "valgrind.sh: goprod did not start" >&2; cat "$dir"/*.log >&2; exit 1; }

# The session, from a small Python client.
python3 - "$port" <<'EOF'
import socket, struct, sys
port, big = int(sys.argv[1]), b"b" * 300000
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
ctl stats >/dev/null
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
echo "valgrind.sh: goprod exited with status $rc"

fail=0
nlogs=0
for log in "$dir"/vg.*.log; do
	nlogs=$((nlogs + 1))
	summary=$(grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost" "$log" || true)
	echo "== $(basename "$log"): $(grep -m1 -oE 'Command: .*' "$log" || echo '?')"
	echo "$summary" | sed 's/^==[0-9]*== /   /'
	if ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
		fail=1
		cat "$log"
	fi
done
# Master and worker at least (the metrics process is off).
[ "$nlogs" -ge 2 ] || { echo "valgrind.sh: only $nlogs valgrind logs" >&2; fail=1; }
[ "$rc" -eq 0 ] || { echo "valgrind.sh: goprod exit status $rc" >&2; fail=1; }
[ "$fail" -eq 0 ] && echo "valgrind.sh: no errors, no leaks"
exit "$fail"
