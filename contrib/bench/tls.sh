#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# tls.sh - the TLS figures of issue 13, in one run (not part of make check).
#
# Server on CPU 0, load generator on CPU 1, everything on loopback, as
# run.sh does.  Certificates are made by tests/harness/make_certs.sh
# (ECDSA P-256).  Measures:
#   1. pipelined HEARTBEAT, c=50 P=32: goprod plain, goprod TLS, and Redis
#      answering PING over its own TLS (redis-server --tls-port);
#   2. handshakes per second per core (one HEARTBEAT per connection), full
#      and resumed, goprod against HAProxy terminating TLS in tcp mode
#      (bind ... ssl crt ...) in front of a plain goprod on the client's CPU,
#      in [rounds] alternating rounds: handshakes per CPU second of the
#      server process, and the wall-clock rate;
#   3. 1 MiB MESSAGE bodies, TLS against plain;
#   4. idle connections: RSS per connection at N held connections, goprod
#      TLS and plain (gopro-bench -H), Redis TLS (idle_hold.py --tls);
#   5. where the worker's cycles go under (1) over TLS (perf, by DSO).
# Prints a markdown report on stdout.
#
# usage: contrib/bench/tls.sh BUILDDIR [seconds] [idle-connections] [rounds]
set -eu

build=$(cd "$1" && pwd)
secs=${2:-3}
idle=${3:-10000}
rounds=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
goprod=$build/src/daemon/goprod
bench=$build/src/bench/gopro-bench
work=$(mktemp -d /tmp/gopro-tls-bench.XXXXXX)
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

for tool in taskset redis-server redis-benchmark perf python3 openssl; do
	command -v "$tool" >/dev/null || { echo "tls.sh: missing $tool" >&2; exit 1; }
done
haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
sh "$top/tests/harness/make_certs.sh" "$work/certs" >/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
	for _ in $(seq 100); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" \
		    2>/dev/null && return 0
		sleep 0.1
	done
	echo "tls.sh: nothing listens on $1" >&2
	exit 1
}

# start_goprod NAME PLAINPORT TLSPORT CPU: one worker
start_goprod() {
	local d=$work/$1
	mkdir -p "$d"
	cat > "$d/gopro.conf" <<EOF
listen = { "127.0.0.1:$2", "127.0.0.1:$3" }
workers = 1
user = ""
group = ""
pid_file = "$d/goprod.pid"
stats_file = "$d/goprod.stats"
control_socket = "$d/goprod.sock"
log = "file:$d/goprod.log"
log_level = warning
max_connections = 20000
idle_timeout = 3600s
frame_timeout = 60s
send_timeout = 60s
tls {
	listen = { "127.0.0.1:$3" }
	certificate = "$work/certs/server.pem"
	key = "$work/certs/server.key"
}
EOF
	taskset -c "$4" "$goprod" -f -c "$d/gopro.conf" 2>>"$d/goprod.log" &
	pids+=($!)
	wait_port "$2"
	wait_port "$3"
}

worker_of() { pgrep -P "$1" | head -1; }

# gb ARGS...: gopro-bench on CPU 1, JSON on stdout
gb() { taskset -c 1 "$bench" -q -j --timeout 20 "$@"; }
field() { python3 -c "import json,sys; r=json.load(sys.stdin); print(r$1)"; }

plain=$(port); tls=$(port)
start_goprod main "$plain" "$tls" 0
master=${pids[-1]}
worker=$(worker_of "$master")

echo "# gopro TLS figures"
echo
echo "$(date -u +%FT%TZ), $(nproc) CPUs, $(uname -r), $(openssl version)."
echo "One goprod worker on CPU 0, the load generator on CPU 1; ${secs}s runs"
echo "after a 1 s warm-up (none for the handshakes); ECDSA P-256 certificates, TLS 1.3."
echo

# ---------------------------------------------------------------- 1
echo "## Pipelined HEARTBEAT, c=50 P=32"
echo
hb() { gb -s "127.0.0.1:$1" -c 50 -P 32 -T heartbeat -d "$secs" -w 1 "${@:2}" | field '["throughput"]'; }
p_plain=$(hb "$plain")
p_tls=$(hb "$tls" --tls)
rport=$(port)
taskset -c 0 redis-server --port 0 --tls-port "$rport" --tls-cert-file \
    "$work/certs/server.pem" --tls-key-file "$work/certs/server.key" \
    --tls-ca-cert-file "$work/certs/ca.pem" --tls-auth-clients no \
    --save '' --appendonly no --daemonize no --loglevel warning \
    >"$work/redis.log" 2>&1 &
pids+=($!)
redis_pid=$!
wait_port "$rport"
r_tls=$(taskset -c 1 redis-benchmark -h 127.0.0.1 -p "$rport" --tls \
    --cacert "$work/certs/ca.pem" -c 50 -P 32 -t ping_mbulk \
    -n $((secs * 800000)) -q 2>/dev/null | tr '\r' '\n' |
    sed -n 's/.*PING_MBULK: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
printf '| server | requests/s |\n|---|---:|\n'
printf '| goprod plain | %.0f |\n| goprod TLS | %.0f |\n| Redis 7 TLS (PING) | %.0f |\n' \
    "$p_plain" "$p_tls" "$r_tls"
python3 -c "print('\nTLS/plain %.2f, goprod TLS/Redis TLS %.2f (goal: >= 1.5)\n' % ($p_tls/$p_plain, $p_tls/$r_tls))"

# ---------------------------------------------------------------- 5 (perf, same load)
gb -s "127.0.0.1:$tls" --tls -c 50 -P 32 -d $((secs + 2)) -w 0 >/dev/null &
bpid=$!
sleep 1
perf record -q -o "$work/perf.data" -p "$worker" -- sleep "$secs" >/dev/null 2>&1 || true
wait $bpid || true
echo "## Where the worker's cycles go (TLS, pipelined HEARTBEAT)"
echo
echo '```'
perf report -q -i "$work/perf.data" --sort dso --stdio 2>/dev/null | head -8 || true
echo '```'
echo
echo '```'
perf report -q -i "$work/perf.data" --sort symbol --stdio 2>/dev/null | head -14 || true
echo '```'
echo

# ---------------------------------------------------------------- 2
# The client's full handshake costs more CPU than the server's (OpenSSL 3.0
# decodes the server's certificate and checks its signature: 1.7 times
# the server's instructions), so one client core cannot saturate one
# server core: the rate per second of wall time is the client's.  "Per
# core" is therefore the handshakes over the CPU seconds the server process
# used meanwhile (utime + stime from /proc/PID/stat), which does not depend
# on how much of its CPU a loaded machine left it either.
echo "## Handshakes per second per core (one HEARTBEAT per connection)"
echo
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# hs PORT SERVERPID ARGS: handshakes per server CPU second, per wall
# second, server CPU %, client CPU %
hs() {
	local t0 t1 out
	t0=$(cpu_ticks "$2")
	out=$(gb -s "127.0.0.1:$1" --tls -P 1 --reconnect-every 1 -c 32 \
	    -d "$secs" -w 0 "${@:3}")
	t1=$(cpu_ticks "$2")
	python3 -c 'import json, sys
r = json.loads(sys.argv[1])
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / float(sys.argv[4])
n = r["tls_handshakes_full"] + r["tls_handshakes_resumed"]
e = r["elapsed"]
print("%.0f %.0f %.0f %.0f" % (n / max(cpu, 0.01), n / e, 100 * cpu / e,
      100 * (r["cpu_user"] + r["cpu_sys"]) / e))' \
	    "$out" "$t0" "$t1" "$(getconf CLK_TCK)"
}
hport=$(port)
bplain=$(port); btls=$(port)
start_goprod backend "$bplain" "$btls" 1
cat "$work/certs/server.pem" "$work/certs/server.key" > "$work/haproxy.pem"
cat > "$work/haproxy.cfg" <<EOF
global
	nbthread 1
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend tls
	bind 127.0.0.1:$hport ssl crt $work/haproxy.pem
	default_backend gopro
backend gopro
	server g1 127.0.0.1:$bplain
EOF
taskset -c 0 "$haproxy" -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
haproxy_pid=$!
wait_port "$hport"
printf '| round | handshakes | server | per core | per wall second | server CPU %% | client CPU %% |\n'
printf '|---|---|---|---:|---:|---:|---:|\n'
ratios=()
for r in $(seq "$rounds"); do
	for kind in full resumed; do
		a=()
		[ "$kind" = full ] && a=(--no-resume)
		read -r gc gw gs gk < <(hs "$tls" "$worker" "${a[@]}")
		read -r hc hw hsc hk < <(hs "$hport" "$haproxy_pid" "${a[@]}")
		printf '| %s | %s | goprod | %s | %s | %s | %s |\n' \
		    "$r" "$kind" "$gc" "$gw" "$gs" "$gk"
		printf '| %s | %s | HAProxy 2.6 (tcp, ssl crt) | %s | %s | %s | %s |\n' \
		    "$r" "$kind" "$hc" "$hw" "$hsc" "$hk"
		ratios+=("$kind $gc $hc")
	done
done
echo
printf '%s\n' "${ratios[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
for kind in ("full", "resumed"):
    q = [float(g) / float(h) for k, g, h in rows if k == kind]
    print("goprod/HAProxy per core, %s: median %.2f (rounds: %s; goal >= 1)  " %
          (kind, statistics.median(q), ", ".join("%.2f" % x for x in q)))
'
echo

# ---------------------------------------------------------------- 3
echo "## 1 MiB MESSAGE bodies (c=2, P=4)"
echo
mb() { gb -s "127.0.0.1:$1" -c 2 -P 4 -T message -b 1M -d "$secs" -w 1 "${@:2}" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f" % (r["bytes_received"]/r["elapsed"]/1e6))'; }
m_plain=$(mb "$plain")
m_tls=$(mb "$tls" --tls)
printf '| listener | MB/s received |\n|---|---:|\n| plain | %s |\n| TLS | %s |\n\n' \
    "$m_plain" "$m_tls"

# ---------------------------------------------------------------- 4
echo "## Idle connections: RSS per connection at $idle (hold mode)"
echo
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# hold PLAIN|TLS [args]: a fresh goprod each time, so that what one run
# left in the worker's heap does not hide the other's growth.
hold() {
	local before after b p t w
	p=$(port); t=$(port)
	start_goprod "idle-$1" "$p" "$t" 0
	w=$(worker_of "${pids[-1]}")
	before=$(rss "$w")
	if [ "$1" = tls ]; then p=$t; fi
	gb -s "127.0.0.1:$p" -c "$idle" -H 4 --connect-rate 5000 "${@:2}" >/dev/null &
	b=$!
	sleep $((idle / 5000 + 2))
	after=$(rss "$w")
	wait "$b" || true
	kill "${pids[-1]}"
	python3 -c "print('%.2f' % (($after - $before) / $idle))"
}
# redis_hold: the same number of idle connections over Redis's own TLS,
# held by idle_hold.py --tls (a PING each, then idle), on a fresh Redis.
redis_hold() {
	local before after p r h held
	p=$(port)
	taskset -c 0 redis-server --port 0 --tls-port "$p" --bind 127.0.0.1 \
	    --tls-cert-file "$work/certs/server.pem" --tls-key-file \
	    "$work/certs/server.key" --tls-ca-cert-file "$work/certs/ca.pem" \
	    --tls-auth-clients no --save '' --appendonly no --daemonize no \
	    --maxclients $((idle + 100)) --loglevel warning \
	    >"$work/redis-idle.log" 2>&1 &
	pids+=($!)
	r=$!
	wait_port "$p"
	before=$(rss "$r")
	coproc HOLD { taskset -c 1 python3 "$here/idle_hold.py" --tls \
	    "$work/certs/ca.pem" "$p" "$idle"; }
	h=$HOLD_PID
	read -r _ held <&"${HOLD[0]}"
	sleep 1
	after=$(rss "$r")
	echo done >&"${HOLD[1]}"
	wait "$h" || true
	kill "$r"
	[ "$held" = "$idle" ] || echo "tls.sh: Redis held $held of $idle" >&2
	python3 -c "print('%.2f' % (($after - $before) / $idle))"
}
i_plain=$(hold plain)
i_tls=$(hold tls --tls)
i_redis=$(redis_hold)
printf '| server | KiB per idle connection |\n|---|---:|\n'
printf '| goprod plain | %s |\n| goprod TLS | %s |\n| Redis 7 TLS | %s |\n' \
    "$i_plain" "$i_tls" "$i_redis"
python3 -c "print('\ngoprod TLS/Redis TLS %.2f (goal: <= 0.5)' % ($i_tls / $i_redis))"
