#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test_prometheus.sh - a real Prometheus server scrapes goprod's
# metrics_listen endpoint on loopback, and its query API returns exactly
# the traffic this test sent.
#
# One goprod (one worker, metrics_listen on a free loopback port) gets a
# known load from goproctl: 123 HEARTBEAT frames on one connection ("ping
# -n 123") and 45 MESSAGE frames on 45 connections ("send").  Nothing else
# talks to its listener: start-up is awaited with "goproctl status", which
# reads the stats file and does not connect, so the counters must be exact.
# The endpoint itself is read first, so that a wrong number is blamed on
# goprod and not on Prometheus.  Then Debian's prometheus scrapes it every
# second, with no other target, no rules, no alerting and no remote write,
# listening on 127.0.0.1 only; the test polls its HTTP API until up is 1
# and the counters hold the numbers sent, for at most QUERY_TIMEOUT seconds.
#
# Skips (exit 77) when /usr/bin/prometheus or python3 is missing.  GOPROD,
# GOPROCTL come from make check (AM_TESTS_ENVIRONMENT).
set -u

PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
HEARTBEATS=123
MESSAGES=45
START_TIMEOUT=10
QUERY_TIMEOUT=30

if [ ! -x "$PROMETHEUS" ]; then
	echo "$PROMETHEUS is not installed (Debian: apt-get install" \
	    "prometheus): skipping the Prometheus scrape test"
	exit 77
fi
if ! command -v python3 >/dev/null; then
	echo "python3 is not installed: skipping the Prometheus scrape test"
	exit 77
fi
for v in GOPROD GOPROCTL; do
	if [ -z "${!v:-}" ] || [ ! -x "${!v}" ]; then
		echo "FAIL: $v is not set to a program: run this test through" \
		    "make check" >&2
		exit 1
	fi
done

. "$(dirname "$0")/../harness/harness.sh"
dir=$(mktemp -d /tmp/gopro-prom-XXXXXX) || exit 1
goprod_pid=
prom_pid=

cleanup() {
	[ -n "$prom_pid" ] && harness_stop_pid "$prom_pid"
	[ -n "$goprod_pid" ] && harness_stop_pid "$goprod_pid"
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
	local f

	echo "FAIL: $*" >&2
	for f in "$dir/goprod.log" "$dir/prometheus.log"; do
		[ -s "$f" ] || continue
		echo "---- last lines of $f" >&2
		tail -n 30 "$f" >&2
	done
	exit 1
}

now() {
	date +%s.%N
}

# before START SECONDS: true while now < START + SECONDS.
before() {
	python3 -c 'import sys, time; sys.exit(time.time() >= float(sys.argv[1]) + float(sys.argv[2]))' "$1" "$2"
}

# Three distinct free loopback ports: goprod, its metrics, Prometheus.
read -r port_serve port_metrics port_prom < <(harness_ports 3)
[ -n "${port_prom:-}" ] || fail "cannot pick free loopback ports"

conf=$dir/gopro.conf
{
	harness_conf "$dir" "127.0.0.1:$port_serve"
	echo 'log_level = "info"'
	echo "metrics_listen = \"127.0.0.1:$port_metrics\""
} >"$conf"

# Ready when the master reports all workers running; no frame is sent.
harness_start_goprod "$dir" "$START_TIMEOUT" || fail "goprod start-up"

# The load: every frame must be answered, or the expected numbers are moot.
"$GOPROCTL" -c "$conf" ping -n "$HEARTBEATS" -i 0.001 -W 10 >"$dir/ping.out" ||
    fail "goproctl ping -n $HEARTBEATS: $(tail -n 1 "$dir/ping.out")"
for ((i = 1; i <= MESSAGES; i++)); do
	"$GOPROCTL" -c "$conf" send "prometheus test $i" >/dev/null ||
	    fail "goproctl send, message $i of $MESSAGES"
done
total=$((HEARTBEATS + MESSAGES))
conns=$((1 + MESSAGES))

# metric NAME: the value of an unlabelled sample in the endpoint's body.
endpoint=$dir/endpoint.txt
metric() {
	awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print "none" }' \
	    "$endpoint"
}
fetch_endpoint() {
	python3 - "http://127.0.0.1:$port_metrics/metrics" >"$endpoint" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
EOF
}

# The endpoint first: goprod publishes its counters without delay that
# matters, but poll briefly rather than assume when.
t0=$(now)
while :; do
	fetch_endpoint 2>"$dir/fetch.err"
	hb=$(metric 'gopro_frames_received_total{command="heartbeat"}')
	msg=$(metric 'gopro_frames_received_total{command="message"}')
	[ "$hb" = "$HEARTBEATS" ] && [ "$msg" = "$MESSAGES" ] && break
	before "$t0" "$START_TIMEOUT" ||
	    fail "http://127.0.0.1:$port_metrics/metrics: heartbeats $hb," \
	    "messages $msg; expected $HEARTBEATS and $MESSAGES" \
	    "($(cat "$dir/fetch.err"))"
	sleep 0.1
done

mkdir "$dir/tsdb" || fail "mkdir $dir/tsdb"
cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: gopro
    static_configs:
      - targets: ["127.0.0.1:$port_metrics"]
EOF
"$PROMETHEUS" --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/tsdb" \
    --web.listen-address="127.0.0.1:$port_prom" \
    --log.level=info </dev/null >"$dir/prometheus.log" 2>&1 &
prom_pid=$!

# query EXPR: the value of the single sample EXPR returns, "none" for an
# empty result, "error" when the API cannot be asked (not up yet).
query() {
	python3 - "http://127.0.0.1:$port_prom/api/v1/query" "$1" <<'EOF' 2>/dev/null || echo error
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "?" + urllib.parse.urlencode({"query": sys.argv[2]})
with urllib.request.urlopen(url, timeout=5) as r:
    body = json.load(r)
res = body["data"]["result"]
if body["status"] != "success" or len(res) > 1:
    sys.exit("unexpected answer: " + json.dumps(body))
print(res[0]["value"][1] if res else "none")
EOF
}

# Expected values: up, then the counters; a counter above what was sent is
# a failure at once (the test is the only client).
exprs=('up{job="gopro"}'
    'gopro_frames_received_total{job="gopro",command="heartbeat"}'
    'gopro_frames_received_total{job="gopro",command="message"}'
    'sum(gopro_frames_received_total{job="gopro"})'
    'gopro_connections_accepted_total{job="gopro"}')
want=(1 "$HEARTBEATS" "$MESSAGES" "$total" "$conns")

t0=$(now)
while :; do
	kill -0 "$prom_pid" 2>/dev/null || fail "prometheus exited"
	ok=1
	report=
	for i in "${!exprs[@]}"; do
		got=$(query "${exprs[$i]}")
		report+=" ${exprs[$i]} = $got (want ${want[$i]});"
		[ "$got" = "${want[$i]}" ] && continue
		ok=0
		if [ "$i" -gt 0 ] && [[ "$got" =~ ^[0-9]+$ ]] &&
		    [ "$got" -gt "${want[$i]}" ]; then
			fail "Prometheus:$report"
		fi
	done
	[ "$ok" = 1 ] && break
	before "$t0" "$QUERY_TIMEOUT" ||
	    fail "Prometheus, after ${QUERY_TIMEOUT}s:$report"
	sleep 0.25
done
echo "Prometheus:$report"

# A clean stop: goprod exits 0 on SIGTERM and its log holds no sanitizer
# report (the metrics process logs to the same file).
harness_stop_pid "$prom_pid"
prom_pid=
kill -TERM "$goprod_pid"
t0=$(now)
while kill -0 "$goprod_pid" 2>/dev/null; do
	before "$t0" 10 || fail "goprod still running 10s after SIGTERM"
	sleep 0.05
done
wait "$goprod_pid"
rc=$?
goprod_pid=
[ "$rc" = 0 ] || fail "goprod exited with status $rc after SIGTERM"
if grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
    "$dir/goprod.log" >/dev/null; then
	fail "sanitizer report in the goprod log"
fi
echo "PASS: Prometheus scraped up=1 and exactly $HEARTBEATS heartbeats," \
    "$MESSAGES messages ($total frames, $conns connections)"
exit 0
