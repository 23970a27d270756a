#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test_tls_haproxy.sh - HAProxy as a TLS client of goprod: its backend
# server line has "ssl verify required ca-file", its health check is a
# binary tcp-check (a HEARTBEAT sent, the same frame expected back) over
# TLS, and a plain frontend relays a client's frames to goprod's TLS
# listener with send-proxy-v2, so the PROXY header comes before the
# handshake as goprod expects.
#
# The test waits (bounded) for HAProxy's stats socket to report the server
# UP, then sends a HEARTBEAT and a MESSAGE through the frontend with
# goproctl, and checks goprod's counters: TLS handshakes done, no failure,
# and the client address from the PROXY header among the recent clients.
#
# Skips (exit 77) without haproxy, openssl or python3.  GOPROD, GOPROCTL and
# TOP_SRCDIR come from make check.
set -u

HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
UP_TIMEOUT=20

for tool in "$HAPROXY" openssl python3; do
	if ! command -v "$tool" >/dev/null; then
		echo "$tool is not installed: skipping the HAProxy TLS test"
		exit 77
	fi
done
for v in GOPROD GOPROCTL TOP_SRCDIR; do
	if [ -z "${!v:-}" ]; then
		echo "FAIL: $v is not set: run this test through make check" >&2
		exit 1
	fi
done

. "$(dirname "$0")/../harness/harness.sh"
dir=$(mktemp -d /tmp/gopro-haproxy-tls-XXXXXX) || exit 1
goprod_pid=
haproxy_pid=

cleanup() {
	[ -n "$haproxy_pid" ] && harness_stop_pid "$haproxy_pid"
	[ -n "$goprod_pid" ] && harness_stop_pid "$goprod_pid"
	rm -rf "$dir"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	echo "---- goprod log" >&2
	cat "$dir/goprod.log" >&2
	echo "---- haproxy log" >&2
	cat "$dir/haproxy.log" >&2
	exit 1
}

sh "$TOP_SRCDIR/tests/harness/make_certs.sh" "$dir/certs" >/dev/null ||
    fail "make_certs.sh"
read -r plain tls front < <(harness_ports 3)
[ -n "${front:-}" ] || fail "cannot pick free loopback ports"
{
	harness_conf "$dir" "127.0.0.1:$plain" "127.0.0.1:$tls"
	cat <<EOF
log_level = debug
proxy_protocol = { "127.0.0.1:$tls" }
proxy_protocol_from = { "127.0.0.1" }
tls {
	listen = { "127.0.0.1:$tls" }
	certificate = "$dir/certs/server.pem"
	key = "$dir/certs/server.key"
}
EOF
} >"$dir/gopro.conf"
harness_start_goprod "$dir" || fail "goprod start-up"

# The health check: a HEARTBEAT with body "hc", expected back byte for byte.
cat > "$dir/haproxy.cfg" <<EOF
global
	stats socket $dir/haproxy.sock mode 600 level admin
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend plain_in
	bind 127.0.0.1:$front
	default_backend gopro_tls
backend gopro_tls
	option tcp-check
	tcp-check send-binary 474f0100000000026863
	tcp-check expect binary 474f0100000000026863
	server g1 127.0.0.1:$tls ssl verify required ca-file $dir/certs/ca.pem sni str(localhost) send-proxy-v2 check-send-proxy check inter 500ms
EOF
"$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 ||
    fail "haproxy -c refused the configuration"
"$HAPROXY" -db -f "$dir/haproxy.cfg" >>"$dir/haproxy.log" 2>&1 &
haproxy_pid=$!

status=
deadline=$((SECONDS + UP_TIMEOUT))
while ((SECONDS < deadline)); do
	status=$(python3 - "$dir/haproxy.sock" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
for line in data.decode().splitlines():
    f = line.split(",")
    if len(f) > 17 and f[0] == "gopro_tls" and f[1] == "g1":
        print(f[17])
EOF
)
	[ "$status" = UP ] && break
	sleep 0.2
done
[ "$status" = UP ] || fail "HAProxy never saw goprod's TLS listener UP " \
    "(last status: ${status:-none})"

"$GOPROCTL" ping -n 3 -i 0.1 "127.0.0.1:$front" >/dev/null ||
    fail "goproctl ping through HAProxy"
reply=$("$GOPROCTL" send "127.0.0.1:$front" "through haproxy") ||
    fail "goproctl send through HAProxy"
[ "$reply" = "Server says: through haproxy" ] ||
    fail "goproctl send got \"$reply\""

stats=$("$GOPROCTL" -c "$dir/gopro.conf" stats --json) ||
    fail "goproctl stats"
num() {
	python3 -c 'import json,sys
def find(o, k):
    if isinstance(o, dict):
        if k in o and not isinstance(o[k], (dict, list)):
            return o[k]
        for v in o.values():
            r = find(v, k)
            if r is not None:
                return r
    elif isinstance(o, list):
        for v in o:
            r = find(v, k)
            if r is not None:
                return r
    return None
print(find(json.load(sys.stdin), sys.argv[1]) or 0)' "$1" <<<"$stats"
}
full=$(num tls_handshakes_full)
failed=$(( $(num tls_failed_protocol) + $(num tls_failed_certificate) ))
[ "$full" -ge 2 ] || fail "expected TLS handshakes from HAProxy, got $full"
[ "$failed" -eq 0 ] || fail "$failed TLS handshakes failed"
echo "PASS: HAProxy checked goprod over TLS (status UP) and relayed frames;" \
    "$full handshakes, none failed"
exit 0
