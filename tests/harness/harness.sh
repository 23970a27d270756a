# SPDX-License-Identifier: BSD-2-Clause
# harness.sh - what the shell tests of make check (test_prometheus.sh,
# test_tls_haproxy.sh) share; sourced, not run: free loopback ports, the
# configuration of a goprod of their own, its start, and the stop of a
# process they started, by pid.  The C tests have the same in harness.c.

# harness_ports N: N distinct free loopback ports on one line.  Taken below
# the kernel's ephemeral range (30000 up to its start; the C tests' harness
# uses 10000-29999): a port from bind(0) is one that any concurrent
# connect() may take as its local port before goprod binds it, and make
# check runs thousands of those in parallel.  The search starts at a place
# of this process's own, so that tests started together do not all try the
# same ports first.
harness_ports() {
	python3 - "$1" "$$" <<'PICK'
import socket, sys
n, pid = int(sys.argv[1]), int(sys.argv[2])
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    eph_lo = int(f.read().split()[0])
lo, hi = 30000, eph_lo - 1
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
picked = []
if hi - lo >= n:
    start = lo + (pid * 7) % (hi - lo + 1)
    for i in range(hi - lo + 1):
        port = lo + (start - lo + i) % (hi - lo + 1)
        if free(port):
            picked.append(port)
            if len(picked) == n:
                break
if len(picked) < n:  # no room below the ephemeral range: bind(0)
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    picked = [s.getsockname()[1] for s in socks]
print(*picked)
PICK
}

# harness_conf DIR ADDRESS...: the head of a configuration for a goprod of
# the test's own, listening on the loopback ADDRESSes (host:port), one
# worker, no change of user, its pid, stats, control socket and log files
# in DIR.  The test appends its own lines.
harness_conf() {
	local dir=$1 listen
	shift
	listen=$(printf '"%s", ' "$@")
	cat <<EOF
listen = { ${listen%, } }
workers = 1
user = ""
group = ""
pid_file = "$dir/goprod.pid"
stats_file = "$dir/goprod.stats"
control_socket = "$dir/goprod.sock"
log = "file:$dir/goprod.log"
EOF
}

# harness_start_goprod DIR [TIMEOUT]: $GOPROD -f on DIR/gopro.conf in the
# background, its stderr to DIR/goprod.log; goprod_pid is the master's pid.
# Ready when "goproctl status" says every worker runs: it reads the stats
# file and does not connect, so no counter moves.  Returns 1, with the
# reason on stderr, when goprod exits or is not ready within TIMEOUT
# seconds (default 10).
harness_start_goprod() {
	local dir=$1 deadline=$((SECONDS + ${2:-10}))
	"$GOPROD" -f -c "$dir/gopro.conf" </dev/null >/dev/null \
	    2>>"$dir/goprod.log" &
	goprod_pid=$!
	until "$GOPROCTL" -c "$dir/gopro.conf" status >/dev/null 2>&1; do
		if ! kill -0 "$goprod_pid" 2>/dev/null; then
			echo "goprod exited during start-up" >&2
			return 1
		fi
		if ((SECONDS >= deadline)); then
			echo "goprod not healthy within ${2:-10}s" \
			    "(goproctl status)" >&2
			return 1
		fi
		sleep 0.05
	done
}

# harness_stop_pid PID: stop a process the test started: SIGTERM, then
# SIGKILL after 10 s, and reap it.
harness_stop_pid() {
	local pid=$1 i

	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}
