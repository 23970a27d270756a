#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""suite.py - the gopro benchmark suite (run it through run.sh).

run.sh builds goprod twice (stats compiled in and out) and hands the
binaries to this script, which starts every server itself, one at a time,
on loopback, pinned with taskset, runs the measurements, and writes a
markdown report, the raw data as JSON and a gnuplot PNG.

Every figure is compared with a baseline measured in the same run, because
the machine is shared and noisy: the matrix runs in rounds (all gopro
points, then all Redis points, repeated), and the median of the rounds is
reported.  Every process started here is stopped by its PID, on success,
on error and on SIGINT/SIGTERM.
"""
import argparse
import csv
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SERVER_CPU = "0"
CLIENT_CPU = "1"
MIB = 1024 * 1024
IDLE_CONNS = 10000
IDLE_SOURCES = "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5"
CONNS = (1, 50, 1000)
DEPTHS = (1, 32)
BODIES = (0, 64, 4096, MIB)
# Points left out of the matrix, with the reason given in the report.
SKIPPED = {
    (MIB, 1000, 1): "1,000 x 1 MiB in flight: about 1 GiB of requests and "
                    "1 GiB of replies buffered at once",
    (MIB, 1000, 32): "32 GiB in flight",
    (MIB, 50, 32): "1.6 GiB in flight (and as much again in replies)",
}


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg),
          file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b):
    return a / b if a and b else None


# ------------------------------------------------------------ processes

class Procs:
    """Every process the suite starts, so that each is stopped by PID."""

    def __init__(self):
        self.live = {}

    def start(self, argv, cpus=None, **kw):
        if cpus is not None:
            argv = ["taskset", "-c", cpus] + list(argv)
        p = subprocess.Popen(argv, **kw)
        self.live[p.pid] = p
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=15):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.live.pop(p.pid, None)

    def run(self, argv, cpus=None, timeout=120):
        """Run to completion; returns (stdout, rusage cpu seconds, wall)."""
        t0 = time.monotonic()
        p = self.start(argv, cpus, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p, signal.SIGKILL)
            raise RuntimeError("timed out after %ds: %s" %
                               (timeout, " ".join(argv)))
        self.live.pop(p.pid, None)
        return p.returncode, out.decode(), err.decode(), \
            time.monotonic() - t0

    def stop_all(self):
        for p in list(self.live.values()):
            self.stop(p, timeout=5)


PROCS = Procs()


def child_cpu(fn):
    """CPU seconds (user + sys) the children used while fn ran."""
    before = os.times()
    result = fn()
    after = os.times()
    cpu = (after.children_user - before.children_user +
           after.children_system - before.children_system)
    return result, cpu


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for %s" % what)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# ------------------------------------------------------------ servers

class Goprod:
    def __init__(self, goprod, workdir, workers=1, cpus=SERVER_CPU,
                 affinity="off", wrapper=()):
        self.dir = tempfile.mkdtemp(prefix="goprod-", dir=workdir)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "gopro.conf")
        self.workers = workers
        with open(self.conf, "w") as f:
            f.write(GOPROD_CONF % dict(port=self.port, dir=self.dir,
                                       workers=workers, affinity=affinity))
        self.logf = open(os.path.join(self.dir, "goprod.log"), "w")
        self.proc = PROCS.start(list(wrapper) + [goprod, "-f", "-c",
                                                 self.conf], cpus,
                                stdout=self.logf, stderr=self.logf)
        wait_until(lambda: len(children(self.proc.pid)) >= workers and
                   heartbeat_ok(self.port), 60 if wrapper else 10,
                   "goprod on port %d" % self.port)
        self.worker_pids = children(self.proc.pid)

    @property
    def worker(self):
        return self.worker_pids[0]

    def stop(self):
        PROCS.stop(self.proc, timeout=60)
        # Workers get SIGTERM from the master; never leave one behind.
        for pid in self.worker_pids:
            try:
                os.kill(pid, 0)
            except OSError:
                continue
            time.sleep(1)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.logf.close()


GOPROD_CONF = """listen = {"127.0.0.1:%(port)d"}
workers = %(workers)d
worker_cpu_affinity = %(affinity)s
user = ""
group = ""
pid_file = "%(dir)s/goprod.pid"
stats_file = "%(dir)s/goprod.stats"
control_socket = "%(dir)s/goprod.sock"
log = "stderr"
log_level = "warning"
idle_timeout = 3600s
frame_timeout = 60s
send_timeout = 60s
max_connections = 20000
"""


def heartbeat_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"GO\x01\x00\x00\x00\x00\x00")
            return s.recv(8) == b"GO\x01\x00\x00\x00\x00\x00"
    except OSError:
        return False


class Redis:
    def __init__(self, workdir):
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=workdir)
        self.port = free_port()
        self.proc = PROCS.start(
            ["redis-server", "--save", "", "--appendonly", "no",
             "--port", str(self.port), "--bind", "127.0.0.1",
             # Protected mode refuses 127.0.0.2 and up (the idle holder's
             # extra source addresses); the bind keeps it on loopback.
             "--protected-mode", "no",
             "--maxclients", "20000", "--daemonize", "no",
             "--dir", self.dir, "--logfile",
             os.path.join(self.dir, "redis.log")], SERVER_CPU,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.ping(), 10, "redis on port %d" % self.port)
        self.worker = self.proc.pid

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16) == b"+PONG\r\n"
        except OSError:
            return False

    def stop(self):
        PROCS.stop(self.proc)


# ------------------------------------------------------------ clients

def gopro_bench(cfg, port, conns, depth, body, extra=(), cpus=CLIENT_CPU,
                duration=None, warmup=None):
    duration = cfg.duration if duration is None else duration
    warmup = cfg.warmup if warmup is None else warmup
    kind = "heartbeat" if body == 0 else "message"
    argv = [cfg.bench, "-s", "127.0.0.1:%d" % port, "-c", str(conns), "-q",
            "-j", "--timeout", "20"] + list(extra)
    if "-H" not in extra:
        argv += ["-P", str(depth), "-T", kind, "-b", str(body)]
    if "-H" not in extra and "-n" not in extra:
        argv += ["-d", str(duration), "-w", str(warmup)]
    (rc, out, err, wall), cpu = child_cpu(
        lambda: PROCS.run(argv, cpus, timeout=int(duration + warmup) + 120))
    try:
        r = json.loads(out)
    except ValueError:
        raise RuntimeError("gopro-bench failed (%d): %s" % (rc, err.strip()))
    if rc != 0 or r["errors"] or r["lost"]:
        log("gopro-bench exit %d, %d errors, %d lost: %s" %
            (rc, r["errors"], r["lost"], " ".join(argv[1:])))
    lat = r["latency_us"]
    return dict(tput=r["throughput"], p50=lat["p50"], p99=lat["p99"],
                mbs_in=r["bytes_received"] / r["elapsed"] / 1e6
                if r["elapsed"] else 0, errors=r["errors"] + r["lost"],
                client_cpu=cpu / wall, requests=r["requests"], raw=r)


RB_RATE = {}


def redis_bench(cfg, port, conns, depth):
    """redis-benchmark has no duration: size -n from the last rate seen."""
    key = (conns, depth)
    if key not in RB_RATE:
        RB_RATE[key] = redis_bench_once(port, conns, depth,
                                        max(20000, conns * depth * 20))["tput"]
    n = int(max(RB_RATE[key] * cfg.duration, conns * depth * 10, 10000))
    r = redis_bench_once(port, conns, depth, n)
    RB_RATE[key] = r["tput"]
    return r


def redis_bench_once(port, conns, depth, n):
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port),
            "-t", "ping_mbulk", "-c", str(conns), "-P", str(depth),
            "-n", str(n), "--csv"]
    (rc, out, err, wall), cpu = child_cpu(
        lambda: PROCS.run(argv, CLIENT_CPU, timeout=300))
    rows = [r for r in csv.DictReader(io.StringIO(out))]
    if rc != 0 or not rows:
        raise RuntimeError("redis-benchmark failed (%d): %s" % (rc, err))
    r = rows[0]
    return dict(tput=float(r["rps"]), p50=float(r["p50_latency_ms"]) * 1000,
                p99=float(r["p99_latency_ms"]) * 1000, errors=0,
                client_cpu=cpu / wall, requests=n)


# ------------------------------------------------------------ sections

def matrix_points():
    pts = []
    for body in BODIES:
        for conns in CONNS:
            for depth in DEPTHS:
                if (body, conns, depth) not in SKIPPED:
                    pts.append((body, conns, depth))
    return pts


def run_matrix(cfg, data):
    gop, red = {}, {}
    for rnd in range(cfg.repeat):
        log("matrix round %d/%d: gopro" % (rnd + 1, cfg.repeat))
        srv = Goprod(cfg.goprod, cfg.work)
        try:
            for body, conns, depth in matrix_points():
                gop.setdefault("%d/%d/%d" % (body, conns, depth), []).append(
                    gopro_bench(cfg, srv.port, conns, depth, body))
        finally:
            srv.stop()
        log("matrix round %d/%d: redis" % (rnd + 1, cfg.repeat))
        srv = Redis(cfg.work)
        try:
            for conns in CONNS:
                for depth in DEPTHS:
                    red.setdefault("%d/%d" % (conns, depth), []).append(
                        redis_bench(cfg, srv.port, conns, depth))
        finally:
            srv.stop()
    data["gopro"] = {k: summarise(v) for k, v in gop.items()}
    data["redis"] = {k: summarise(v) for k, v in red.items()}


def summarise(runs):
    s = {}
    for field in ("tput", "p50", "p99", "mbs_in", "client_cpu"):
        vals = [r[field] for r in runs if field in r]
        if vals:
            s[field] = median(vals)
            s[field + "_all"] = vals
    s["errors"] = sum(r["errors"] for r in runs)
    return s


def run_idle(cfg, data):
    log("idle: %d connections to goprod" % IDLE_CONNS)
    srv = Goprod(cfg.goprod, cfg.work)
    try:
        r = gopro_bench(cfg, srv.port, IDLE_CONNS, 1, 0,
                        extra=["-H", "5", "-S", IDLE_SOURCES,
                               "--server-pid", str(srv.worker)])
        h = r["raw"]["hold"]
        data["idle_gopro"] = dict(
            conns=IDLE_CONNS, survived=h["survived"],
            before=h["rss_before_kib"], held=h["rss_idle_kib"],
            after=h["rss_after_kib"],
            per_conn=(h["rss_idle_kib"] - h["rss_before_kib"]) /
            max(1, h["survived"]))
    finally:
        srv.stop()
    log("idle: %d connections to redis" % IDLE_CONNS)
    srv = Redis(cfg.work)
    try:
        before = rss_kib(srv.worker)
        p = PROCS.start([sys.executable, cfg.holder, str(srv.port),
                         str(IDLE_CONNS), IDLE_SOURCES], CLIENT_CPU,
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = p.stdout.readline().decode().split()
        ok = int(line[1]) if len(line) == 2 else 0
        time.sleep(1)
        held = rss_kib(srv.worker)
        p.stdin.write(b"done\n")
        p.stdin.flush()
        p.wait(60)
        PROCS.stop(p)
        time.sleep(1)
        data["idle_redis"] = dict(conns=IDLE_CONNS, survived=ok,
                                  before=before, held=held,
                                  after=rss_kib(srv.worker),
                                  per_conn=(held - before) / max(1, ok))
    finally:
        srv.stop()


def run_iperf(cfg, data):
    log("iperf3 TCP copy on loopback")
    port = free_port()
    srv = PROCS.start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
                      SERVER_CPU, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    vals = []
    try:
        time.sleep(0.5)
        for _ in range(cfg.repeat):
            rc, out, err, wall = PROCS.run(
                ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t",
                 str(cfg.duration), "-J"], CLIENT_CPU, timeout=60)
            j = json.loads(out)
            vals.append(j["end"]["sum_received"]["bits_per_second"] / 8e6)
    finally:
        PROCS.stop(srv)
    data["iperf"] = dict(mbs=median(vals), all=vals)


def run_alternating(cfg, variants, points, cpus=CLIENT_CPU, threads=1):
    """
    variants: name -> (goprod path, workers, server cpus, affinity).  Both
    servers run at once (an idle goprod costs nothing) and each point is
    measured on one right after the other, so that a pair sees the same
    machine; the report gives the median of the per-pair ratios.
    """
    res, srvs = {}, {}
    try:
        for name, (binary, workers, scpus, aff) in variants.items():
            srvs[name] = Goprod(binary, cfg.work, workers, scpus, aff)
        for rnd in range(cfg.repeat):
            log("%s, round %d/%d" % (" vs ".join(variants), rnd + 1,
                                     cfg.repeat))
            for body, conns, depth in points:
                for name, srv in srvs.items():
                    r = gopro_bench(cfg, srv.port, conns, depth, body,
                                    extra=["-t", str(threads)], cpus=cpus)
                    res.setdefault(name, {}).setdefault(
                        "%d/%d/%d" % (body, conns, depth), []).append(r)
    finally:
        for srv in srvs.values():
            srv.stop()
    out = {n: {k: summarise(v) for k, v in d.items()}
           for n, d in res.items()}
    a, b = list(variants)
    for k in out[a]:
        pairs = [y["tput"] / x["tput"] for x, y in zip(res[a][k], res[b][k])]
        out[b][k]["pair_ratio"] = median(pairs)
        out[b][k]["pair_ratio_all"] = pairs
    return out


def run_stats_cost(cfg, data):
    data["stats"] = run_alternating(cfg, {
        "stats in": (cfg.goprod, 1, SERVER_CPU, "off"),
        "stats out": (cfg.goprod_nostats, 1, SERVER_CPU, "off"),
    }, [(0, 50, 32), (0, 50, 1), (64, 50, 32)])


def run_two_workers(cfg, data):
    data["workers"] = run_alternating(cfg, {
        "1 worker": (cfg.goprod, 1, "0,1", "auto"),
        "2 workers": (cfg.goprod, 2, "0,1", "auto"),
    }, [(0, 50, 32), (0, 50, 1)], cpus="0,1", threads=2)


# ------------------------------------------------------------ profiling

def goproctl_frames(cfg, srv):
    rc, out, err, wall = PROCS.run([cfg.goproctl, "-c", srv.conf, "stats",
                                    "--json"], timeout=30)
    j = json.loads(out)
    t = j.get("totals", j)
    c = t.get("counters", t)
    return c["frames_received_heartbeat"] + c["frames_received_message"]


def perf_stat(pid, seconds):
    rc, out, err, wall = PROCS.run(
        ["perf", "stat", "-x", ",", "-e",
         "raw_syscalls:sys_enter,task-clock,context-switches", "-p",
         str(pid), "--", "sleep", str(seconds)], timeout=seconds + 30)
    vals = {}
    for line in err.splitlines():
        f = line.split(",")
        if len(f) > 3 and f[0].replace(".", "").isdigit():
            vals[f[2]] = float(f[0])
    return vals


def strace_counts(pid, seconds):
    rc, out, err, wall = PROCS.run(
        ["timeout", "-s", "INT", str(seconds), "strace", "-c", "-f", "-p",
         str(pid)], timeout=seconds + 30)
    calls = {}
    for line in err.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
    return calls


def perf_top(pid, seconds, path):
    PROCS.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000",
               "-o", path, "-p", str(pid), "--", "sleep", str(seconds)],
              timeout=seconds + 60)
    top = []
    rc, out, err, wall = PROCS.run(
        ["perf", "report", "-i", path, "--stdio", "--no-children",
         "--sort", "dso,sym", "--percent-limit", "1"], timeout=120)
    for line in out.splitlines():
        if line.strip() and not line.startswith("#"):
            top.append(" ".join(line.split()))
    rc, out, err, wall = PROCS.run(
        ["perf", "report", "-i", path, "--stdio", "--no-children",
         "--sort", "dso"], timeout=120)
    dso = [" ".join(l.split()) for l in out.splitlines()
           if l.strip() and not l.startswith("#")]
    return top[:20], dso[:6]


def run_profile(cfg, data):
    prof = {}
    for depth in (32, 1):
        log("profile: perf stat, strace, perf record at P=%d" % depth)
        srv = Goprod(cfg.goprod, cfg.work)
        p = {}
        try:
            secs = 3
            for what in ("perf", "strace", "record"):
                bench = PROCS.start(
                    [cfg.bench, "-s", "127.0.0.1:%d" % srv.port, "-c", "50",
                     "-P", str(depth), "-d", str(secs + 2), "-w", "0", "-q",
                     "-j"], CLIENT_CPU, stdout=subprocess.DEVNULL)
                time.sleep(1)
                f0 = goproctl_frames(cfg, srv)
                if what == "perf":
                    p["perf"] = perf_stat(srv.worker, secs)
                elif what == "strace":
                    p["strace"] = strace_counts(srv.worker, secs)
                else:
                    p["top"], p["dso"] = perf_top(
                        srv.worker, secs,
                        os.path.join(cfg.work, "perf-P%d.data" % depth))
                p["frames_" + what] = goproctl_frames(cfg, srv) - f0
                bench.wait(60)
                PROCS.stop(bench)
        finally:
            srv.stop()
        p["callgrind"] = callgrind(cfg, depth)
        prof["P%d" % depth] = p
    data["profile"] = prof


def callgrind_run(cfg, depth, n, tag):
    out = os.path.join(cfg.work, "cg-%s.%%p" % tag)
    srv = Goprod(cfg.goprod, cfg.work, wrapper=[
        "valgrind", "-q", "--tool=callgrind", "--callgrind-out-file=" + out])
    try:
        gopro_bench(cfg, srv.port, 50, depth, 0, extra=["-n", str(n)])
        worker = srv.worker
    finally:
        srv.stop()
    path = out.replace("%p", str(worker))
    with open(path) as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1]), path
    raise RuntimeError("no summary in %s" % path)


def callgrind(cfg, depth):
    """User-space instructions per request: the slope between two runs."""
    n1, n2 = (100000, 400000) if depth == 32 else (20000, 80000)
    ir1, _ = callgrind_run(cfg, depth, n1, "P%d-a" % depth)
    ir2, path = callgrind_run(cfg, depth, n2, "P%d-b" % depth)
    rc, out, err, wall = PROCS.run(["callgrind_annotate", path], timeout=60)
    top = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*([\d.]+%)\)\s+(\S+)", line)
        if m and "PROGRAM" not in line:
            top.append((m.group(1), m.group(2), m.group(3).split("/")[-1]))
    return dict(n1=n1, n2=n2, ir1=ir1, ir2=ir2,
                per_request=(ir2 - ir1) / (n2 - n1), top=top[:12],
                total_n2=ir2)


# ------------------------------------------------------------ main

def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    rv = subprocess.run(["redis-server", "--version"], capture_output=True,
                        text=True).stdout.strip()
    return dict(nproc=os.cpu_count(), cpu=model, kernel=platform.release(),
                redis=rv, date=time.strftime("%Y-%m-%d %H:%M %Z"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--goprod", required=True)
    ap.add_argument("--goprod-nostats", required=True)
    ap.add_argument("--goproctl", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--cflags", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--update", action="store_true",
                    help="keep the other sections of an existing report")
    ap.add_argument("--sections", default="matrix,idle,iperf,stats,workers,"
                    "profile")
    cfg = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    cfg.holder = os.path.join(here, "idle_hold.py")
    cfg.work = tempfile.mkdtemp(prefix="gopro-bench-suite-")

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    base = os.path.splitext(cfg.out)[0]
    old = {}
    if cfg.update and os.path.exists(base + ".json"):
        with open(base + ".json") as f:
            old = json.load(f)
    data = dict(machine=machine(), cflags=cfg.cflags,
                duration=cfg.duration, warmup=cfg.warmup,
                repeat=cfg.repeat, skipped={"%d/%d/%d" % k: v
                                            for k, v in SKIPPED.items()})
    t0 = time.monotonic()
    sections = dict(matrix=run_matrix, idle=run_idle, iperf=run_iperf,
                    stats=run_stats_cost, workers=run_two_workers,
                    profile=run_profile)
    try:
        for name in cfg.sections.split(","):
            try:
                sections[name](cfg, data)
            except (RuntimeError, OSError, ValueError, KeyError) as e:
                # Report what failed rather than lose the other sections.
                log("section %s failed: %s" % (name, e))
                data.setdefault("failed", {})[name] = str(e)
                PROCS.stop_all()
    finally:
        PROCS.stop_all()
        shutil.rmtree(cfg.work, ignore_errors=True)
    data["suite_seconds"] = time.monotonic() - t0
    if old:
        data["updated"] = "%s (%s)" % (data["machine"]["date"],
                                       cfg.sections)
        old.update({k: v for k, v in data.items() if k != "machine"})
        data = old
    os.makedirs(os.path.dirname(cfg.out) or ".", exist_ok=True)
    with open(base + ".json", "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    import report
    report.write(data, cfg.out, here)
    log("done in %.0f s: %s" % (data["suite_seconds"], cfg.out))


if __name__ == "__main__":
    main()
