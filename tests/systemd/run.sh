#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# run.sh - the Debian package under a real systemd: a Debian 12 root made
# by debootstrap (minbase, plus systemd, systemd-sysv and dbus, cached) is
# booted with systemd-nspawn in a network namespace of its own (only its
# loopback), the built .deb is installed inside, and every step a packaged
# user takes is checked against what systemd itself reports:
#
#   start     the unit is active only once the workers serve; STATUS= shown
#   reload    a new generation; a broken file fails the reload, systemd
#             says so, and goprod still serves
#   upgrade   goproctl upgrade and a package upgrade under pipelined load:
#             the same MainPID, nothing lost, nothing refused
#   stop      drains and exits 0 within TimeoutStopSec
#   kill -9   of the master: Restart=on-failure brings it back
#   journal   priorities right, no timestamp of goprod's own in MESSAGE
#   security  the exposure score of systemd-analyze security, recorded
#   purge     nothing is left but the user gopro
#
#   bash tests/systemd/run.sh DEB...
#
# DEB... are the built packages (tests/packaging/run.sh keeps them with
# GOPRO_KEEP_DEB=DIR, as .ci/run does).  Run as root.  The root file system
# is cached in $GOPRO_SYSTEMD_CACHE (default /var/cache/gopro-systemd);
# making it downloads about 60 MB from $GOPRO_DEBIAN_MIRROR (default
# deb.debian.org) once, which takes a few minutes; a run from the cache
# takes about half a minute.  The container gets a copy of the cached root and
# is powered off (then, by pid, killed) at the end, even on failure.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${GOPRO_SYSTEMD_CACHE:-/var/cache/gopro-systemd}
mirror=${GOPRO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# systemd as PID 1, procps for ps, and the Depends of the packages (the
# container has no network to fetch them): see package_deps.
include=""
base=$cache/$suite-minbase
work=""
nspawn_pid=""
leader=""
t0=$(date +%s)

say() { echo "systemd: [$(( $(date +%s) - t0 ))s] $*"; }
fail() { echo "systemd: FAIL: $*" >&2; exit 1; }

# ------------------------------------------------------------ container

ct() { nsenter -t "$leader" -a --wd -- "$@"; }
prop() { ct systemctl show -P "$2" "$1"; }

poweroff() {
	local i
	[ -n "$nspawn_pid" ] || return 0
	[ -n "$leader" ] && ct systemctl poweroff >/dev/null 2>&1 || true
	for i in $(seq 100); do
		kill -0 "$nspawn_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$nspawn_pid" 2>/dev/null && kill -KILL "$nspawn_pid" 2>/dev/null
	wait "$nspawn_pid" 2>/dev/null || true
	nspawn_pid=""
	leader=""
}

cleanup() {
	local rc=$?
	trap - EXIT
	set +e
	if [ $rc -ne 0 ] && [ -n "$leader" ]; then
		echo "==== journalctl -u goprod (in the container)"
		ct journalctl -u goprod --no-pager | tail -40
	fi
	poweroff
	[ -n "$work" ] && rm -rf "$work"
	[ $rc -eq 0 ] && say "all passed" || echo "systemd: failed" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_tools() {
	local missing=()
	command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	command -v python3 >/dev/null || missing+=(python3)
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# The packages the .debs depend on, without versions, alternatives and the
# .debs themselves, comma-separated.
package_deps() {
	local d own
	own=$(for d in "$@"; do dpkg-deb -f "$d" Package; done)
	for d in "$@"; do dpkg-deb -f "$d" Depends; done | tr ',' '\n' |
		sed 's/|.*//; s/(.*)//; s/:any//; s/ //g' | grep -v '^$' |
		grep -vxF "$own" | sort -u | paste -sd,
}

# Whether the cached root has every package of $include installed.
base_complete() {
	local p
	[ -f "$base/etc/os-release" ] || return 1
	for p in ${include//,/ }; do
		dpkg-query --admindir="$base/var/lib/dpkg" -W -f='${Status}' "$p" \
			2>/dev/null | grep -q 'install ok installed' || return 1
	done
}

# The cached root, made again when a package it needs is not in it.
make_base() {
	if base_complete; then
		say "root file system from the cache ($base)"
		return 0
	fi
	say "debootstrap --variant=minbase $suite into $base (once)"
	mkdir -p "$cache"
	rm -rf "$base" "$base.new"
	debootstrap --variant=minbase --include="$include" "$suite" \
		"$base.new" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
		{ tail -20 "$cache/debootstrap.log"; fail "debootstrap failed"; }
	mv "$base.new" "$base"
	base_complete || fail "the new root lacks some of $include"
}

boot() {
	local i
	cp -a --reflink=auto "$base" "$work/root"
	mkdir -p "$work/root/root/debs"
	cp "$@" "$work/root/root/debs/"
	systemd-nspawn --register=no --keep-unit --private-network \
		-D "$work/root" -b >"$work/console.log" 2>&1 &
	nspawn_pid=$!
	for i in $(seq 100); do
		# The init, not the short-lived helper nspawn forks first.
		leader=$(ps -o pid=,comm= --ppid "$nspawn_pid" 2>/dev/null |
			awk '$2 == "systemd" { print $1; exit }' || true)
		[ -n "$leader" ] && break
		kill -0 "$nspawn_pid" 2>/dev/null || { cat "$work/console.log"; fail "systemd-nspawn exited"; }
		sleep 0.1
	done
	[ -n "$leader" ] || fail "no container init after 10 s"
	# is-system-running needs the bus, which comes up with the boot.
	for i in $(seq 60); do
		ct systemctl is-system-running --wait >/dev/null 2>&1 && break
		[ "$(ct systemctl is-system-running 2>/dev/null)" = degraded ] && break
		sleep 0.5
	done
	say "booted $suite under systemd $(ct systemctl --version | head -1 | cut -d' ' -f2) (init is pid $leader here)"
}

# ------------------------------------------------------------ checks

serves() { ct goproctl ping -n 1 -W 2 "$1" >/dev/null 2>&1; }

expect() {
	local what=$1 pattern=$2 text=$3
	grep -qE -- "$pattern" <<<"$text" || fail "$what: \"$text\" does not match /$pattern/"
}

check_start() {
	local out
	ct env DEBIAN_FRONTEND=noninteractive sh -c 'dpkg -i /root/debs/*.deb' \
		>"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i failed"; }
	[ "$(prop goprod ActiveState)" = active ] ||
		fail "goprod is $(prop goprod ActiveState) after the install"
	# systemctl returns once READY=1 came: every worker serves by then.
	ct systemctl restart goprod
	serves 127.0.0.1:8888 || fail "active, but 127.0.0.1:8888 does not answer"
	serves '[::1]:8888' || fail "active, but [::1]:8888 does not answer"
	out=$(ct goproctl status) || { echo "$out"; fail "goproctl status: not healthy once active"; }
	expect "StatusText" "^generation 1, [0-9]+ workers; started$" "$(prop goprod StatusText)"
	out=$(ct systemctl status goprod --no-pager 2>&1 || true)
	expect "systemctl status" 'Status: "generation 1' "$out"
	say "installed: active only once it serves; Status: \"$(prop goprod StatusText)\""
}

check_reload() {
	local status i
	ct systemctl reload goprod || fail "systemctl reload failed"
	expect "StatusText after reload" "^generation 2, .*; last reload ok$" "$(prop goprod StatusText)"
	cp "$work/root/etc/gopro.conf" "$work/gopro.conf.good"
	sed -i 's/^backlog = 511$/backlog = 0/' "$work/root/etc/gopro.conf"
	grep -q '^backlog = 0$' "$work/root/etc/gopro.conf" || fail "cannot break the file"
	# ExecReload's goproctl refuses the file before asking the master...
	if ct systemctl reload goprod 2>"$work/reload.err"; then
		fail "systemctl reload of a broken file succeeded"
	fi
	expect "journal" "Reload failed for goprod.service" \
		"$(ct journalctl -u goprod --no-pager -n 20)"
	# ... and a SIGHUP makes the master judge it, and say so in STATUS=.
	ct systemctl kill --kill-whom=main -s HUP goprod
	for i in $(seq 50); do
		status=$(prop goprod StatusText)
		[[ $status == *"last reload failed"* ]] && break
		sleep 0.1
	done
	expect "StatusText after a failed reload" \
		"^generation 2, .*; last reload failed: /etc/gopro.conf:[0-9]+: backlog" "$status"
	[ "$(prop goprod ActiveState)" = active ] || fail "not active after the failed reload"
	serves 127.0.0.1:8888 || fail "no longer serves after the failed reload"
	cp "$work/gopro.conf.good" "$work/root/etc/gopro.conf"
	ct systemctl reload goprod || fail "the reload of the repaired file failed"
	say "reload: generation 2; a broken file: systemctl reload failed, SIGHUP too (Status: \"$status\"), still serving"
}

bench_summary() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1]));
k=j["errors_by_kind"]; print(j["requests"], j["lost"], j["errors"], k["connect_failed"], j["goaway"])' "$1"
}

check_upgrade() {
	local main0 out b requests lost errors refused goaway
	main0=$(prop goprod MainPID)
	ct gopro-bench -s 127.0.0.1:8888 -d 8 -c 8 -P 8 -m heartbeat:3,message:1 \
		-b 16 --json --quiet --timeout 3 >"$work/bench.json" 2>"$work/bench.err" &
	b=$!
	sleep 2
	out=$(ct goproctl upgrade) || { echo "$out"; fail "goproctl upgrade failed"; }
	expect "goproctl upgrade" "^upgraded in place: pid $main0," "$out"
	sleep 1
	ct env DEBIAN_FRONTEND=noninteractive sh -c 'dpkg -i /root/debs/*.deb' \
		>"$work/dpkg2.log" 2>&1 || { cat "$work/dpkg2.log"; fail "dpkg -i (upgrade) failed"; }
	grep -q "^upgraded in place: pid $main0," "$work/dpkg2.log" ||
		{ cat "$work/dpkg2.log"; fail "the package upgrade did not upgrade in place"; }
	wait "$b" || { cat "$work/bench.err" "$work/bench.json"; fail "gopro-bench failed"; }
	read -r requests lost errors refused goaway <<<"$(bench_summary "$work/bench.json")"
	[ "$(prop goprod MainPID)" = "$main0" ] ||
		fail "MainPID went from $main0 to $(prop goprod MainPID)"
	[ "$lost" -eq 0 ] && [ "$errors" -eq 0 ] && [ "$refused" -eq 0 ] ||
		fail "under the upgrades: lost $lost, errors $errors, refused $refused"
	say "upgrade (goproctl, then dpkg -i) under load: MainPID $main0 kept; $requests requests, lost 0, refused 0, goaway $goaway"
}

check_stop() {
	local t1 t2 took
	t1=$(date +%s.%N)
	ct systemctl stop goprod
	t2=$(date +%s.%N)
	took=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }')
	[ "$(prop goprod Result)" = success ] || fail "stop: Result=$(prop goprod Result)"
	[ "$(prop goprod ExecMainStatus)" = 0 ] ||
		fail "stop: goprod exited $(prop goprod ExecMainStatus)"
	awk -v t="$took" 'BEGIN { exit !(t < 45) }' || fail "stop took ${took}s, TimeoutStopSec is 45s"
	say "stop: drained and exited 0 in ${took}s"
}

check_kill9() {
	local pid0 pid1 i
	ct systemctl start goprod
	pid0=$(prop goprod MainPID)
	ct kill -KILL "$pid0"
	for i in $(seq 100); do
		pid1=$(prop goprod MainPID)
		[ "$(prop goprod ActiveState)" = active ] && [ "$pid1" != 0 ] &&
			[ "$pid1" != "$pid0" ] && serves 127.0.0.1:8888 && break
		sleep 0.2
	done
	[ "$pid1" != "$pid0" ] && serves 127.0.0.1:8888 ||
		fail "not back within 20 s after kill -9 of $pid0"
	say "kill -9 of the master $pid0: restarted as $pid1 (NRestarts $(prop goprod NRestarts))"
}

# The journal: warnings as 4, notices as 5, info as 6, and MESSAGE without
# a timestamp or name of goprod's own (journald adds both).
check_journal() {
	ct journalctl -u goprod -o json --no-pager >"$work/journal.json"
	python3 - "$work/journal.json" <<'EOF' || fail "the journal of goprod (above)"
import json, re, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
mine = [l for l in lines if l.get("SYSLOG_IDENTIFIER") == "goprod"]
stamp = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
bad = [l["MESSAGE"] for l in mine if isinstance(l.get("MESSAGE"), str) and
       (stamp.match(l["MESSAGE"]) or l["MESSAGE"].startswith("goprod["))]
def prio(text):
    return {l.get("PRIORITY") for l in mine
            if isinstance(l.get("MESSAGE"), str) and text in l["MESSAGE"]}
ok = True
if not mine:
    print("no line from goprod in the journal"); sys.exit(1)
if bad:
    print("MESSAGE with a timestamp of its own:", bad[:3]); ok = False
for text, want in (("reload failed", "4"), ("upgraded in place", "5")):
    if prio(text) != {want}:
        print(f"lines with {text!r} have PRIORITY {prio(text)}, not {want}"); ok = False
counts = {}
for l in mine:
    counts[l.get("PRIORITY")] = counts.get(l.get("PRIORITY"), 0) + 1
print("    journal: %d lines of goprod, by PRIORITY %s" % (len(mine),
      dict(sorted(counts.items()))))
sys.exit(0 if ok else 1)
EOF
	say "journal: priorities right, no doubled timestamp"
}

check_security() {
	local line
	line=$(ct systemd-analyze security goprod --no-pager 2>/dev/null | tail -1)
	expect "systemd-analyze security" "Overall exposure level for goprod.service" "$line"
	say "systemd-analyze security (online): ${line#*: }"
}

check_purge() {
	local f left=()
	ct env DEBIAN_FRONTEND=noninteractive dpkg --purge gopro >"$work/purge.log" 2>&1 ||
		{ cat "$work/purge.log"; fail "dpkg --purge failed"; }
	for f in /etc/gopro.conf /etc/default/goprod /etc/gopro /usr/sbin/goprod \
	    /usr/bin/goproctl /lib/systemd/system/goprod.service /run/goprod \
	    /etc/systemd/system/multi-user.target.wants/goprod.service; do
		ct test -e "$f" && left+=("$f")
	done
	[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
	ct getent passwd gopro >/dev/null || fail "purge removed the user gopro"
	[ "$(prop goprod LoadState)" = not-found ] ||
		fail "systemd still knows goprod.service ($(prop goprod LoadState))"
	say "purged: nothing left but the user gopro"
}

# ------------------------------------------------------------ main

[ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap, systemd-nspawn)"
[ $# -ge 1 ] || fail "usage: $0 DEB... (the packages to install)"
debs=()
for f in "$@"; do
	[ -f "$f" ] || fail "$f: no such package"
	case $f in *-dbgsym_*) continue ;; esac   # debug symbols: not needed
	debs+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
done
need_tools
include="systemd,systemd-sysv,dbus,procps,$(package_deps "${debs[@]}")"
make_base
work=$(mktemp -d /tmp/gopro-systemd.XXXXXX)
boot "${debs[@]}"
check_start
check_reload
check_upgrade
check_stop
check_kill9
check_journal
check_security
check_purge
