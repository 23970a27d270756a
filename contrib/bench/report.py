#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""report.py - the markdown report and the plot of the benchmark suite.

suite.py calls write() with the data it measured; the data is also saved
as JSON next to the report, so the report can be rebuilt from it without
measuring again:  report.py report.json report.md
"""
import json
import os
import subprocess
import sys

MIB = 1024 * 1024
# Targets of issue 7 (and the stats cost of issue 4).
PIPE_RATIO = 1.5      # pipelined HEARTBEAT and MESSAGE 64 B vs Redis PING
IDLE_KIB = 1.0        # server RSS per idle connection
COPY_RATIO = 0.5      # 1 MiB MESSAGE replies vs a plain TCP copy
STATS_MIN = 0.97      # stats in / stats out: "nothing measurable"


def fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return "%.2f M" % (x / 1e6)
    return "%.0f k" % (x / 1e3)


def fmt_x(x):
    return "-" if x is None else "%.2fx" % x


def fmt_us(x):
    return "-" if x is None else ("%.0f" % x if x >= 100 else "%.1f" % x)


def body_name(b):
    return {0: "0 (HEARTBEAT)", 64: "64 B", 4096: "4 KiB",
            MIB: "1 MiB"}.get(b, str(b))


def get(d, *keys):
    for k in keys:
        if d is None:
            return None
        d = d.get(k)
    return d


def ratio(a, b):
    return a / b if a and b else None


def verdict(ok):
    return "-" if ok is None else ("**PASS**" if ok else "**FAIL**")


class Report:
    def __init__(self, data):
        self.d = data
        self.lines = []

    def p(self, s=""):
        self.lines.append(s)

    def table(self, head, rows):
        self.p("| " + " | ".join(head) + " |")
        self.p("|" + "---|" * len(head))
        for r in rows:
            self.p("| " + " | ".join(str(c) for c in r) + " |")
        self.p()

    # -------------------------------------------------------- sections

    def targets(self):
        d, t = self.d, []
        red32 = get(d, "redis", "50/32", "tput")
        red1 = get(d, "redis", "50/1", "tput")
        hb32 = get(d, "gopro", "0/50/32", "tput")
        m32 = get(d, "gopro", "64/50/32", "tput")
        hb1 = get(d, "gopro", "0/50/1", "tput")
        best32 = max(get(d, "redis", "50/32", "tput_all") or [0]) or None
        best1 = max(get(d, "redis", "50/1", "tput_all") or [0]) or None
        for what, tput in (("pipelined HEARTBEAT", hb32),
                           ("MESSAGE 64 B", m32)):
            r = ratio(tput, red32)
            t.append(("%s, 50 conns, P=32 vs Redis PING" % what,
                      ">= %.1fx" % PIPE_RATIO, "%s vs %s req/s = %s (%s of "
                      "Redis's best round)" %
                      (fmt_rate(tput), fmt_rate(red32), fmt_x(r),
                       fmt_x(ratio(tput, best32))),
                      verdict(r and r >= PIPE_RATIO)))
        r = ratio(hb1, red1)
        t.append(("unpipelined HEARTBEAT, 50 conns, P=1 vs Redis PING",
                  ">= 1.0x", "%s vs %s req/s = %s (%s of Redis's best "
                  "round; client CPU %s vs %s)" %
                  (fmt_rate(hb1), fmt_rate(red1), fmt_x(r),
                   fmt_x(ratio(hb1, best1)),
                   pct(get(d, "gopro", "0/50/1", "client_cpu")),
                   pct(get(d, "redis", "50/1", "client_cpu"))),
                  verdict(r and r >= 1.0)))
        gp99 = get(d, "gopro", "0/50/1", "p99")
        rp99 = get(d, "redis", "50/1", "p99")
        t.append(("p99 latency, 50 conns, P=1", "<= Redis",
                  "%s us vs %s us = %s" % (fmt_us(gp99), fmt_us(rp99),
                                           fmt_x(ratio(gp99, rp99))),
                  verdict(gp99 and rp99 and gp99 <= rp99)))
        ig = get(d, "idle_gopro", "per_conn")
        ir = get(d, "idle_redis", "per_conn")
        t.append(("RSS per idle connection at 10,000", "<= %.0f KiB" %
                  IDLE_KIB, "%s KiB (Redis %s KiB, %s of Redis)" %
                  (f2(ig), f2(ir), fmt_x(ratio(ig, ir))),
                  verdict(None if ig is None else ig <= IDLE_KIB)))
        best = self.best_mib()
        cp = get(d, "iperf", "mbs")
        r = ratio(best[1], cp) if best else None
        t.append(("1 MiB MESSAGE replies vs iperf3 TCP copy",
                  ">= %.1fx" % COPY_RATIO,
                  "%s MB/s (%s) vs %s MB/s = %s" %
                  (f0(best[1]) if best else "-", best[0] if best else "-",
                   f0(cp), fmt_x(r)), verdict(r and r >= COPY_RATIO)))
        w1 = get(d, "workers", "1 worker", "0/50/32", "tput")
        w2 = get(d, "workers", "2 workers", "0/50/32", "tput")
        wr = get(d, "workers", "2 workers", "0/50/32", "pair_ratio")
        t.append(("2 workers on 2 cores vs 1 (P=32, client on the same "
                  "cores)", "report", "%s vs %s req/s; median of paired "
                  "ratios %s" % (fmt_rate(w2), fmt_rate(w1), fmt_x(wr)),
                  "see below"))
        for point, label in (("0/50/32", "HEARTBEAT P=32"),
                             ("0/50/1", "HEARTBEAT P=1"),
                             ("64/50/32", "MESSAGE 64 B P=32")):
            si = get(d, "stats", "stats in", point, "tput")
            so = get(d, "stats", "stats out", point, "tput")
            pr = get(d, "stats", "stats out", point, "pair_ratio")
            r = 1 / pr if pr else None
            noisy = any(noisy_rounds(get(d, "stats", n, point, "tput_all"))
                        for n in ("stats in", "stats out"))
            t.append(("stats compiled in / out (issue 4), 50 conns, " +
                      label, ">= %.2fx" % STATS_MIN,
                      "%s vs %s req/s; median of paired ratios %s" %
                      (fmt_rate(si), fmt_rate(so), fmt_x(r)),
                      "inconclusive: rounds vary more than 1.5x, the "
                      "machine was busy" if noisy else
                      verdict(None if r is None else r >= STATS_MIN)))
        self.p("## Targets (issue 7)")
        self.p()
        self.table(("target", "wanted", "measured (medians)", "result"), t)

    def best_mib(self):
        best = None
        for k, v in (self.d.get("gopro") or {}).items():
            b, c, p = (int(x) for x in k.split("/"))
            if b == MIB and (best is None or v["mbs_in"] > best[1]):
                best = ("%d conn%s, P=%d" % (c, "" if c == 1 else "s", p),
                        v["mbs_in"])
        return best

    def matrix(self):
        d = self.d
        if "gopro" not in d:
            return
        self.p("## The matrix")
        self.p()
        self.p("Server on CPU 0, client (one thread) on CPU 1; median of %d "
               "rounds of %g s (after %g s of warm-up for gopro-bench). "
               "Body 0 is HEARTBEAT, the others MESSAGE (the reply is the "
               "13-byte prefix plus the body). \"vs Redis\" divides by "
               "Redis PING at the same connections and depth. Client CPU is "
               "the load generator's user+system time over its wall time "
               "(warm-up and connection set-up included): near 100%% means "
               "the client, not the server, was the limit. \"vs Redis\" "
               "is left out for 4 KiB and 1 MiB: a PING is not a baseline "
               "for them." %
               (len(get(d, "gopro", "0/50/32", "tput_all") or []),
                d["duration"], d["warmup"]))
        self.p()
        rows = []
        for k, v in d["gopro"].items():
            b, c, p = (int(x) for x in k.split("/"))
            # Redis PING is the baseline for the bodies the targets name.
            red = get(d, "redis", "%d/%d" % (c, p), "tput") \
                if b in (0, 64) else None
            rows.append(((b, c, p), [body_name(b), c, p, fmt_rate(v["tput"]),
                         fmt_x(ratio(v["tput"], red)), "%.1f" % v["mbs_in"],
                         fmt_us(v["p50"]), fmt_us(v["p99"]),
                         pct(v["client_cpu"]), spread(v["tput_all"]),
                         v["errors"]]))
        rows.sort()
        self.p("### gopro (goprod, 1 worker)")
        self.p()
        self.table(("body", "conns", "P", "req/s", "vs Redis",
                    "MB/s replies", "p50 us", "p99 us", "client CPU",
                    "spread of rounds", "errors"), [r[1] for r in rows])
        rows = []
        for k, v in d.get("redis", {}).items():
            c, p = (int(x) for x in k.split("/"))
            rows.append(((c, p), [c, p, fmt_rate(v["tput"]), fmt_us(v["p50"]),
                                  fmt_us(v["p99"]), pct(v["client_cpu"]),
                                  spread(v["tput_all"])]))
        rows.sort()
        self.p("### Redis %s, PING (redis-benchmark -t ping_mbulk)" %
               d["machine"]["redis"].split()[2])
        self.p()
        self.table(("conns", "P", "req/s", "p50 us", "p99 us", "client CPU",
                    "spread of rounds"), [r[1] for r in rows])
        self.p("Skipped combinations (memory, not the hot path, would be "
               "measured):")
        self.p()
        for k, why in sorted(d["skipped"].items()):
            b, c, p = (int(x) for x in k.split("/"))
            self.p("- %s x %d connections x P=%d: %s." %
                   (body_name(b), c, p, why))
        self.p()
        self.p("![throughput and p99](%s)" % self.png_name)
        self.p()

    def idle(self):
        g, r = self.d.get("idle_gopro"), self.d.get("idle_redis")
        if not g:
            return
        self.p("## Idle connections")
        self.p()
        self.p("10,000 connections from 4 loopback source addresses, each "
               "verified with one request and then left idle; RSS "
               "(VmRSS of /proc/PID/status) of the serving process before "
               "and while they are held. gopro: `gopro-bench -H 5 "
               "--server-pid WORKER`; Redis: `contrib/bench/idle_hold.py` "
               "(PING on each). One run each (memory does not vary like "
               "throughput).")
        self.p()
        rows = []
        for name, v in (("goprod worker", g), ("redis-server", r)):
            if v:
                rows.append((name, v["survived"], v["before"], v["held"],
                             v["after"], f2(v["per_conn"]),
                             f2((v["after"] - v["before"]) /
                                max(1, v["survived"]))))
        self.table(("server", "connections verified", "RSS before KiB",
                    "RSS held KiB", "RSS after KiB", "KiB per connection",
                    "KiB per connection after"), rows)
        self.p("\"After\" is read once the connections have all been "
               "verified a second time, at once (gopro-bench sends the "
               "10,000 heartbeats together; idle_hold.py closes its "
               "connections first, so for Redis it is the RSS left after "
               "they closed). For goprod it includes the buffer blocks that "
               "burst took from malloc: the worker's pool keeps at most "
               "1,024 of them and frees the rest, but freed heap memory is "
               "not necessarily returned to the system.")
        self.p()

    def copy(self):
        ip = self.d.get("iperf")
        if not ip:
            return
        best = self.best_mib()
        self.p("## 1 MiB bodies vs a plain TCP copy")
        self.p()
        self.p("`iperf3` (one stream, server on CPU 0, client on CPU 1, "
               "%g s) moves %s MB/s on loopback (rounds: %s). gopro's best "
               "1 MiB MESSAGE point (%s) returns %s MB/s of replies, %s of "
               "the copy. Note that goprod moves every byte twice (it reads "
               "the 1 MiB request and writes the reply), while iperf3's "
               "server only reads: counted both ways gopro handles %s MB/s." %
               (self.d["duration"], f0(ip["mbs"]),
                ", ".join(f0(x) for x in ip["all"]),
                best[0] if best else "-", f0(best[1]) if best else "-",
                fmt_x(ratio(best[1], ip["mbs"]) if best else None),
                f0(2 * best[1]) if best else "-"))
        self.p()

    def alternating(self, key, title, text):
        v = self.d.get(key)
        if not v:
            return
        names = list(v.keys())
        self.p("## " + title)
        self.p()
        self.p(text + " Median of %d pairs; each pair is measured back to "
               "back on the same machine, both servers running." %
               len(list(v[names[0]].values())[0]["tput_all"]))
        self.p()
        rows = []
        for point in v[names[0]]:
            b, c, p = (int(x) for x in point.split("/"))
            a = v[names[0]][point]
            z = v[names[1]][point]
            rows.append(("%s, %d conns, P=%d" % (body_name(b), c, p),
                         fmt_rate(a["tput"]), spread(a["tput_all"]),
                         fmt_rate(z["tput"]), spread(z["tput_all"]),
                         fmt_x(z.get("pair_ratio")),
                         pct(a["client_cpu"]), pct(z["client_cpu"])))
        self.table(("point", names[0] + " req/s", "rounds",
                    names[1] + " req/s", "rounds",
                    "%s / %s (median of pairs)" % (names[1], names[0]),
                    "client CPU (" + names[0] + ")",
                    "client CPU (" + names[1] + ")"), rows)

    def profile(self):
        pr = self.d.get("profile")
        if not pr:
            return
        self.p("## Where the time goes (hot path cost per request)")
        self.p()
        self.p("Method, for P=32 and P=1 at 50 connections of HEARTBEAT, one "
               "worker on CPU 0, gopro-bench on CPU 1. Requests in each "
               "window are the worker's own frame counters "
               "(`goproctl stats --json`) read before and after it.")
        self.p()
        self.p("- Syscalls: `perf stat -e raw_syscalls:sys_enter -p WORKER` "
               "(a tracepoint: the worker is not slowed down) over 3 s; the "
               "breakdown by call comes from a separate `strace -c -f -p "
               "WORKER` window (strace slows the worker, so more requests "
               "arrive per read there: its per-request figures are a lower "
               "bound, the perf figure is the real one).")
        self.p("- Instructions: this VM exposes no hardware counters "
               "(`perf stat -e instructions` is `<not supported>`), so "
               "user-space instructions come from callgrind: two runs of "
               "goprod under `valgrind --tool=callgrind` with N1 and N2 "
               "requests, and (Ir2 - Ir1) / (N2 - N1), which cancels start-up "
               "and connection set-up. Kernel instructions are not counted; "
               "the worker's CPU time per request (perf task-clock) covers "
               "both.")
        self.p("- Cycles: `perf record -e cpu-clock -F 2000 -p WORKER` "
               "(software sampling, kernel included), `perf report "
               "--no-children --sort dso,sym`.")
        self.p()
        rows = []
        for k in ("P32", "P1"):
            p = pr.get(k)
            if not p:
                continue
            ps = p.get("perf", {})
            n = p.get("frames_perf") or 0
            sc = ps.get("raw_syscalls:sys_enter")
            tc = ps.get("task-clock")
            st = p.get("strace", {})
            ns = p.get("frames_strace") or 0
            cg = p.get("callgrind", {})
            rows.append((k.replace("P", "P="), fmt_rate(n / 3.0),
                         "%.3f" % (sc / n) if sc and n else "-",
                         "%.0f ns" % (tc * 1e6 / n) if tc and n else "-",
                         ", ".join("%s %.3f" % (s, c / ns) for s, c in
                                   sorted(st.items(), key=lambda x: -x[1]))
                         if ns else "-",
                         "%.0f" % cg["per_request"] if cg else "-"))
        self.table(("depth", "req/s in the perf window", "syscalls/request (perf)",
                    "worker CPU/request", "per request under strace",
                    "user instructions/request (callgrind)"), rows)
        for k in ("P32", "P1"):
            p = pr.get(k)
            if not p:
                continue
            self.p("### %s: top symbols (perf, %% of the worker's samples)" %
                   k.replace("P", "P="))
            self.p()
            self.p("```")
            for line in p.get("dso", []):
                self.p(line)
            self.p()
            for line in p.get("top", []):
                self.p(line)
            self.p("```")
            self.p()
            cg = p.get("callgrind")
            if cg:
                self.p("Callgrind, user space only, the %d-request run "
                       "(start-up included), top functions by "
                       "instructions:" % cg["n2"])
                self.p()
                self.p("```")
                for ir, share, fn in cg["top"]:
                    self.p("%14s %9s  %s" % (ir, share, fn))
                self.p("```")
                self.p()

    def header(self):
        m = self.d["machine"]
        self.p("# gopro benchmark report")
        self.p()
        self.p("Generated by `contrib/bench/run.sh` on %s in %.0f s. Do not "
               "edit by hand: run the suite again." %
               (m["date"], self.d.get("suite_seconds", 0)))
        self.p()
        self.p("- Machine: %d CPUs, %s, Linux %s (a shared VM: figures are "
               "only meaningful as ratios within this run)." %
               (m["nproc"], m["cpu"], m["kernel"]))
        self.p("- gopro built with `CFLAGS='%s'`; the stats-out build adds "
               "`CPPFLAGS=-DGOPRO_NO_STATS`." % self.d["cflags"])
        self.p("- Baseline: %s, `--save '' --appendonly no`." % m["redis"])
        self.p("- Pinning: server on CPU 0, load generator on CPU 1 "
               "(`taskset`), one server at a time; all traffic on "
               "127.0.0.0/8.")
        self.p()

    def build(self, png_name):
        self.png_name = png_name
        self.header()
        for name, why in sorted(self.d.get("failed", {}).items()):
            self.p("**Section %s failed**: %s" % (name, why))
            self.p()
        self.targets()
        self.matrix()
        self.idle()
        self.copy()
        self.alternating(
            "stats", "Stats compiled in vs out (issue 4)",
            "The same goprod built twice, stats updates compiled out with "
            "`-DGOPRO_NO_STATS` (src/daemon/stats.h), alternating builds in each "
            "round, server on CPU 0 and client on CPU 1.")
        self.alternating(
            "workers", "Two workers on two cores",
            "`workers = 2` with `worker_cpu_affinity = auto` (worker i on "
            "CPU i) against `workers = 1` (on CPU 0); in both cases "
            "gopro-bench runs 2 threads on CPUs 0-1, because this machine "
            "has only 2 CPUs. What this can show: whether a second worker "
            "turns the otherwise idle share of CPU 1 into throughput "
            "(SO_REUSEPORT spreads the 50 connections over both workers). "
            "What it cannot show: scaling to more cores, because the load "
            "generator competes with the workers for the same two CPUs, so "
            "2x is out of reach by construction; a fair scaling test needs "
            "the client on other cores or another machine.")
        self.profile()
        return "\n".join(self.lines) + "\n"


def pct(x):
    return "-" if x is None else "%.0f%%" % (100 * x)


def f0(x):
    return "-" if x is None else "%.0f" % x


def f2(x):
    return "-" if x is None else "%.2f" % x


def noisy_rounds(vals):
    """Rounds too far apart for a few-percent comparison to mean much."""
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 1.5


def spread(vals):
    if not vals:
        return "-"
    if len(vals) == 1:
        return "1 round"
    return "%s-%s" % (fmt_rate(min(vals)).strip(), fmt_rate(max(vals)))


def plot_data(d, path):
    """One row per connection count: tput and p99 columns per series."""
    series = [("gopro", "0/%d/1"), ("gopro", "0/%d/32"),
              ("gopro", "64/%d/1"), ("gopro", "64/%d/32"),
              ("redis", "%d/1"), ("redis", "%d/32")]
    with open(path, "w") as f:
        f.write("# conns, then tput and p99 (us) for: gopro HB P1, HB P32, "
                "MSG64 P1, MSG64 P32, redis P1, redis P32\n")
        for c in (1, 50, 1000):
            cols = [str(c)]
            for src, pat in series:
                v = get(d, src, pat % c) or {}
                cols += ["%g" % v["tput"] if "tput" in v else "NaN",
                         "%g" % v["p99"] if "p99" in v else "NaN"]
            f.write(" ".join(cols) + "\n")


def write(data, out, here):
    png = os.path.splitext(out)[0] + ".png"
    text = Report(data).build(os.path.basename(png))
    if "gopro" in data:
        dat = os.path.splitext(out)[0] + ".dat"
        plot_data(data, dat)
        r = subprocess.run(["gnuplot", "-e", "datafile='%s'; outfile='%s'" %
                            (dat, png), os.path.join(here, "plot.gp")],
                           capture_output=True, text=True)
        os.unlink(dat)
        if r.returncode != 0:
            print("gnuplot failed: %s" % r.stderr, file=sys.stderr)
    with open(out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: report.py DATA.json REPORT.md")
    with open(sys.argv[1]) as fp:
        write(json.load(fp), sys.argv[2],
              os.path.dirname(os.path.abspath(__file__)))
