#!/usr/bin/env python3
"""bench/gw/run.py - payment-gw against its Go peer and a null libmicrohttpd handler.

In one run, on this machine, with wrk (64 connections, 20 s by default):
  (a) bench/gw/null_server.c: libmicrohttpd with the flags and thread pool
      of of_http.c's pool mode, reads the body, answers 202; no work at all;
  (b) payment-gw (Release build) with real signed bodies, validation and
      real Kafka acknowledgements (acks=all, idempotent producer);
  (c) the Go peer of payment-gw (net/http + franz-go, the same contract byte
      for byte; built with `go build` from ../shared/peers/go-gw, see
      --go-gw-dir) against the same broker, with the same OF_RDKAFKA_*
      producer settings, on a topic of its own.
--rounds N runs N rounds; each round measures (a), then (b) and (c) as an
interleaved pair, in alternating order ((b) first in odd rounds, (c) first
in even ones). Every figure is summarised with the median over the rounds,
and the C / Go ratios with the median of the per-round pair ratios: accepted
payments/s, gateway CPU per accepted payment (utime+stime of the process
over the requests wrk saw answered 2xx), p99 latency, and peak RSS (the max
of VmHWM and of VmRSS samples every 0.5 s; both gateways get the same
warm-up and the same rounds). The machine's load average is printed with
every measurement. Nothing is asserted.

Usage (from anywhere; needs wrk, cmake, gcc, go, java+mvn for the broker and
confluent-kafka, e.g. the repo's .venv):
  .venv/bin/python bench/gw/run.py [--duration 20] [--connections 64] [--rounds 1]
        [--http-threads N] [--bodies 20000] [--brokers HOST:PORT]
        [--go-gw-dir DIR | --no-go]

--brokers uses an existing broker instead of starting one (the topics are
created under unique prefixes either way); the started one keeps its data on
/dev/shm. Each server first gets --warmup seconds of unmeasured load. The Go
peer's binary is built into --build-dir (git-ignored); its source is never
copied into this repository. Without Go or without the peer's source, (c) is
skipped and the summary says why. The last line is `RESULT_JSON {...}` with
every figure, for bench/run.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench" / "lib"))
from benchlib import cpu_seconds, machine_busy_seconds  # noqa: E402
SECRET = "bench-secret"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# --- building ------------------------------------------------------------------


def build(build_dir: Path) -> tuple[Path, Path]:
    log(f"building payment-gw (Release) in {build_dir}")
    run(["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"],
        stdout=subprocess.DEVNULL)
    run(["cmake", "--build", str(build_dir), "-j2", "--target", "payment-gw"],
        stdout=subprocess.DEVNULL)
    null_bin = build_dir / "bench-null-server"
    cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "libmicrohttpd"], check=True,
                            capture_output=True, text=True).stdout.split()
    run(["gcc", "-std=c17", "-O2", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
         str(HERE / "null_server.c"), "-o", str(null_bin), *cflags])
    return build_dir / "bin" / "payment-gw", null_bin


def go_peer_dir(arg: str | None) -> tuple[Path | None, str]:
    """Where the Go peer's source is: --go-gw-dir, $OF_BENCH_GO_GW_DIR, the
    project's ../shared/peers/go-gw, or the same beside the repository this
    one was cloned from (a local path in remote.origin.url)."""
    cands = [arg, os.environ.get("OF_BENCH_GO_GW_DIR"),
             str(ROOT.parent / "shared" / "peers" / "go-gw")]
    try:
        url = subprocess.run(["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        if url.startswith("file://"):
            url = url[len("file://"):]
        if url.startswith("/"):
            cands.append(str(Path(url).resolve().parent / "shared" / "peers" / "go-gw"))
    except (OSError, subprocess.SubprocessError):
        pass
    tried = []
    for c in cands:
        if not c:
            continue
        p = Path(c)
        if (p / "go.mod").is_file() and (p / "main.go").is_file():
            return p, ""
        tried.append(str(p))
    return None, "Go peer source not found (tried " + ", ".join(tried) + \
        "; set OF_BENCH_GO_GW_DIR or --go-gw-dir)"


def build_go(src: Path, out: Path) -> str | None:
    """go build of the peer into out (outside the repository's tracked
    files); modules come from the Go module proxy. Returns an error text or
    None."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK)
                                else None)
    if go is None:
        return "go not found (deploy/install-deps.sh does not install it; see docs/PERFORMANCE.md)"
    out = out.resolve()  # go build runs in src: never write there
    log(f"building the Go peer from {src} into {out}")
    env = dict(os.environ, GOFLAGS=os.environ.get("GOFLAGS", "") + " -buildvcs=false")
    r = subprocess.run([go, "build", "-trimpath", "-o", str(out), "."], cwd=src, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"go build failed: {(r.stdout + r.stderr).strip()[-300:]}"
    return None


# --- kafka -----------------------------------------------------------------------


class Broker:
    def __init__(self, brokers: str | None):
        self.external = brokers is not None
        self.dir: Path | None = None
        self.bootstrap = brokers or ""

    def __enter__(self) -> "Broker":
        if self.external:
            return self
        # On tmpfs when there is one: the broker's page-cache writes then
        # never wait behind other processes' disk I/O (fsyncs of a
        # PostgreSQL next door), which would measure the disk, not the
        # gateway.
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
            else None
        self.dir = Path(tempfile.mkdtemp(prefix="bench-gw-kafka-", dir=base))
        port, ctl = free_port(), free_port()
        log("starting Kafka with deploy/kafka.sh")
        run([str(ROOT / "deploy" / "kafka.sh"), "fetch"], stdout=subprocess.DEVNULL)
        run([str(ROOT / "deploy" / "kafka.sh"), "start", str(self.dir), str(port), str(ctl)],
            stdout=subprocess.DEVNULL)
        self.bootstrap = f"127.0.0.1:{port}"
        pid = subprocess.run([str(ROOT / "deploy" / "kafka.sh"), "pid", str(self.dir)],
                             capture_output=True, text=True).stdout.strip()
        self.pid = int(pid) if pid.isdigit() else None
        return self

    def __exit__(self, *exc) -> None:
        if self.dir is not None:
            log("stopping Kafka")
            subprocess.run([str(ROOT / "deploy" / "kafka.sh"), "stop", str(self.dir)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(self.dir, ignore_errors=True)

    def create_topic(self, name: str, partitions: int = 6) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            f.result(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            md = admin.list_topics(name, timeout=5).topics.get(name)
            if md and md.error is None and len(md.partitions) == partitions and \
                    all(p.leader >= 0 for p in md.partitions.values()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"topic {name} has no leaders")

    def delete_topic(self, name: str) -> None:
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        try:
            for f in admin.delete_topics([name]).values():
                f.result(30)
        except Exception as exc:  # noqa: BLE001 - best effort
            log(f"could not delete {name}: {exc}")


# --- load ----------------------------------------------------------------------------


def write_bodies(path: Path, n: int) -> None:
    """n distinct valid payments, each signed with a fresh t."""
    t = int(time.time())
    with open(path, "w") as f:
        for i in range(n):
            body = json.dumps({
                "payment_id": f"pay_bench_{uuid.uuid4().hex[:16]}",
                "order_id": f"ord_bench_{i}_{uuid.uuid4().hex[:8]}",
                "amount_cents": 1000 + i % 9000,
                "currency": "EUR",
                "items": [{"sku": f"SKU-{i % 50}", "qty": 1 + i % 3},
                          {"sku": "SKU-RED-MUG", "qty": 1}],
                "customer": {"id": f"cus_{i % 1000}", "email": f"user{i}@example.com",
                             "webhook_url": "https://merchant.example/hooks/orders"},
                "occurred_at": "2026-11-22T10:00:00Z",
            }, separators=(",", ":"))
            mac = hmac.new(SECRET.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
            f.write(f"t={t},v1={mac}\t{body}\n")


def wrk(port: int, bodies: Path, duration: int, connections: int, threads: int) -> dict:
    env = dict(os.environ, BENCH_BODIES=str(bodies))
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
           "-s", str(HERE / "post.lua"), f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    m = re.search(r"^RESULT (.*)$", out, re.M)
    if not m:
        raise RuntimeError(f"no RESULT line from wrk:\n{out}")
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:  # noqa: BLE001
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready")
        time.sleep(0.2)


def cpu_during(fn, pids: dict[str, int | None]):
    """Runs fn() and returns (its result, CPU seconds used meanwhile: the
    whole machine ('busy'), each of pids, and the wall time ('wall'))."""
    t0, m0 = time.monotonic(), machine_busy_seconds()
    p0 = {k: cpu_seconds(v) for k, v in pids.items()}
    res = fn()
    use = {k: cpu_seconds(v) - p0[k] for k, v in pids.items()}
    use["busy"] = machine_busy_seconds() - m0
    use["wall"] = time.monotonic() - t0
    return res, use


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "Threads"):
                out[k] = int(v.split()[0])
    except FileNotFoundError:
        pass
    return out


class RssSampler(threading.Thread):
    """Samples VmRSS while the load runs (VmHWM gives the peak anyway)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            s = proc_status(self.pid)
            if "VmRSS" in s:
                self.samples.append(s["VmRSS"])


def metric(text: str, name: str, labels: str | None = None) -> float:
    """Sum of the samples of `name` with exactly these labels (None: any)."""
    lab = r"(?:\{[^}]*\})?" if labels is None else r"\{" + re.escape(labels) + r"\}"
    pat = re.escape(name) + lab + r" (\S+)$"
    return sum(float(x) for x in re.findall("^" + pat, text, re.M))


def post_one(port: int) -> int:
    tmp = Path(tempfile.mkstemp(prefix="bench-one-")[1])
    write_bodies(tmp, 1)
    sig, body = tmp.read_text().rstrip("\n").split("\t", 1)
    tmp.unlink()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/payments", data=body.encode(),
                                 headers={"Content-Type": "application/json", "X-Signature": sig})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# --- main ------------------------------------------------------------------------------


def median(vals: list[float]) -> float:
    v = sorted(x for x in vals if x is not None)
    if not v:
        return float("nan")
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


class Server:
    """One server under test: its process, port, label and measurements."""

    def __init__(self, key: str, label: str, proc: subprocess.Popen, port: int,
                 log_file=None, gateway: bool = True):
        self.key, self.label, self.proc, self.port = key, label, proc, port
        self.log_file, self.gateway = log_file, gateway
        self.runs: list[dict] = []
        self.sampler: RssSampler | None = None
        self.info: dict = {}
        self.topic = ""

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
        if self.log_file:
            self.log_file.close()
        return rc


def measure(srv: Server, bodies: Path, args, broker: "Broker", rnd: int) -> dict:
    write_bodies(bodies, args.bodies)  # fresh t, fresh ids
    before = loadavg()
    log(f"round {rnd}: {srv.label}, wrk -c{args.connections} -d{args.duration}s "
        f"(load average {before})")
    r, cpu = cpu_during(
        lambda: wrk(srv.port, bodies, args.duration, args.connections, args.wrk_threads),
        {"server": srv.proc.pid, "kafka": getattr(broker, "pid", None)})
    r["cpu"] = cpu
    r["load_before"], r["load_after"] = before, loadavg()
    r["round"] = rnd
    ok = max(0.0, r["requests"] - r["non2xx"])
    r["accepted"] = ok
    r["accepted_per_s"] = ok / r["duration_s"] if r["duration_s"] else 0.0
    n = max(1.0, ok)
    r["server_us"] = 1e6 * cpu["server"] / n
    r["kafka_us"] = 1e6 * cpu["kafka"] / n
    r["all_us"] = 1e6 * cpu["busy"] / n
    r["server_cores"] = cpu["server"] / cpu["wall"] if cpu["wall"] else 0.0
    srv.runs.append(r)
    return r


def fmt(name: str, r: dict) -> str:
    errs = int(r["connect_err"] + r["read_err"] + r["write_err"] + r["timeouts"])
    return (f"{name}: {r['rps']:10.1f} req/s   p50 {r['p50_ms']:7.2f} ms   "
            f"p99 {r['p99_ms']:7.2f} ms   non-2xx {int(r['non2xx'])}   errors {errs}")


def fmt_cpu(name: str, r: dict) -> str:
    c = r["cpu"]
    cap = (os.cpu_count() or 1) * c["wall"]
    rest = c["busy"] - c["server"] - c["kafka"]
    return (f"CPU {name}: all cores busy {c['busy']:.1f} of {cap:.1f} s "
            f"({100 * c['busy'] / cap:.0f} %): server {c['server']:.1f} s "
            f"({100 * r['server_cores']:.0f} % of a core), "
            f"Kafka {c['kafka']:.1f} s, rest (wrk, kernel, others) {rest:.1f} s; "
            f"per request: server {r['server_us']:.0f} us, "
            f"Kafka {r['kafka_us']:.0f} us, all {r['all_us']:.0f} us; "
            f"load average {r['load_before']} -> {r['load_after']}")


def gateway_info(srv: Server) -> None:
    st = proc_status(srv.proc.pid)
    srv.info["hwm_kib"] = st.get("VmHWM", 0)
    srv.info["rss_max_sampled_kib"] = max(srv.sampler.samples or [0]) if srv.sampler else 0
    srv.info["peak_rss_kib"] = max(srv.info["hwm_kib"], srv.info["rss_max_sampled_kib"])
    srv.info["threads"] = st.get("Threads", 0)
    if not srv.gateway:
        return
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/metrics", timeout=10) as r:
            m = r.read().decode()
    except Exception as exc:  # noqa: BLE001
        srv.info["metrics_error"] = str(exc)
        return
    srv.info["accepted"] = metric(m, "orderflow_gw_payments_total", 'result="accepted"')
    srv.info["other"] = metric(m, "orderflow_gw_payments_total") - srv.info["accepted"]
    cnt = metric(m, "orderflow_gw_kafka_delivery_seconds_count", 'result="ok"')
    tot = metric(m, "orderflow_gw_kafka_delivery_seconds_sum", 'result="ok"')
    srv.info["mean_ack_ms"] = tot / cnt * 1000 if cnt else 0.0


def summary(srv: Server) -> dict:
    runs = srv.runs
    out = {k: median([r[k] for r in runs]) for k in
           ("rps", "accepted_per_s", "p50_ms", "p99_ms", "server_us", "kafka_us", "all_us",
            "server_cores")}
    out["busy_pct"] = median([100 * r["cpu"]["busy"] / ((os.cpu_count() or 1) * r["cpu"]["wall"])
                              for r in runs])
    out["rounds"] = len(runs)
    out.update(srv.info)
    if "peak_rss_kib" in srv.info:
        out["rss_mib"] = srv.info["peak_rss_kib"] / 1024
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--http-threads", type=int,
                    default=int(os.environ["OF_HTTP_THREADS"]) if os.environ.get("OF_HTTP_THREADS")
                    else None,
                    help="payment-gw's OF_HTTP_THREADS (default: its own, 1 = the event loop) and "
                         "the null handler's thread pool (default 2)")
    ap.add_argument("--bodies", type=int, default=20000)
    ap.add_argument("--conn-memory", type=int,
                    default=int(os.environ.get("OF_HTTP_CONN_MEMORY_LIMIT", "32768")),
                    help="per-connection memory limit for both servers")
    ap.add_argument("--warmup", type=int, default=5,
                    help="seconds of unmeasured wrk load on each server first (JIT of the "
                         "broker's JVM, connections, caches)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds of (a) then the (b)/(c) pair; the summary uses medians")
    ap.add_argument("--brokers", default=None)
    ap.add_argument("--build-dir", default=str(ROOT / "build-gw" / "release"))
    ap.add_argument("--log-level", default="info",
                    help="OF_LOG_LEVEL of both gateways (default info)")
    ap.add_argument("--go-gw-dir", default=None,
                    help="source of the Go peer (default $OF_BENCH_GO_GW_DIR or "
                         "../shared/peers/go-gw)")
    ap.add_argument("--no-go", action="store_true", help="skip the Go peer")
    ap.add_argument("--no-null", action="store_true", help="skip the null handler")
    args = ap.parse_args()

    for tool in ("wrk", "cmake", "gcc"):
        if shutil.which(tool) is None:
            log(f"{tool} not found (deploy/install-deps.sh installs it)")
            return 2

    build_dir = Path(args.build_dir).resolve()
    gw_bin, null_bin = build(build_dir)
    go_bin: Path | None = None
    go_skip = "--no-go" if args.no_go else ""
    if not args.no_go:
        src, why = go_peer_dir(args.go_gw_dir)
        if src is None:
            go_skip = why
        else:
            go_bin = build_dir / "go-gw-peer"
            err = build_go(src, go_bin)
            if err:
                go_skip, go_bin = err, None
    if go_skip and not args.no_go:
        log(f"Go peer skipped: {go_skip}")

    work = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    bodies = work / "bodies.txt"
    servers: dict[str, Server] = {}
    load_start = loadavg()

    with Broker(args.brokers) as broker:
        topics = []
        # Operator overrides pass through to both gateways alike.
        passthru = {k: v for k, v in os.environ.items()
                    if k.startswith(("OF_RDKAFKA_", "OF_GW_", "OF_HTTP_CONN_TIMEOUT"))}
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("OF_")}
        try:
            if not args.no_null:
                port = free_port()
                p = subprocess.Popen([str(null_bin), str(port), str(args.http_threads or 2),
                                      str(args.conn_memory)], stderr=subprocess.DEVNULL)
                servers["null"] = Server("null", "(a) null MHD handler", p, port, gateway=False)
            gws = [("c", "(b) payment-gw+Kafka", gw_bin)]
            if go_bin is not None:
                gws.append(("go", "(c) Go peer+Kafka", go_bin))
            for key, label, binary in gws:
                prefix = f"bench{uuid.uuid4().hex[:6]}.{key}."
                topic = prefix + "payment.success"
                broker.create_topic(topic)
                topics.append(topic)
                port = free_port()
                env = dict(base_env)
                env.update({"OF_KAFKA_BROKERS": broker.bootstrap, "OF_TOPIC_PREFIX": prefix,
                            "OF_HTTP_PORT": str(port), "OF_WEBHOOK_SECRETS": SECRET,
                            "OF_LOG_LEVEL": args.log_level,
                            "OF_HTTP_CONN_MEMORY_LIMIT": str(args.conn_memory)})
                if args.http_threads:
                    env["OF_HTTP_THREADS"] = str(args.http_threads)
                env.update(passthru)
                lf = open(work / f"{key}.log", "wb")
                p = subprocess.Popen([str(binary)], env=env, stdout=lf, stderr=subprocess.STDOUT)
                servers[key] = Server(key, label, p, port, lf)
                servers[key].topic = topic
            for srv in servers.values():
                if srv.gateway:
                    wait_http(f"http://127.0.0.1:{srv.port}/readyz")
                    for _ in range(20):  # warm-up: producer id, metadata, connections
                        if post_one(srv.port) != 202:
                            raise RuntimeError(f"{srv.label}: warm-up payment not accepted")
            if args.warmup > 0:
                log(f"warm-up: {args.warmup}s of load on each server (not measured)")
                write_bodies(bodies, args.bodies)
                for srv in servers.values():
                    wrk(srv.port, bodies, args.warmup, args.connections, args.wrk_threads)
            for srv in servers.values():
                srv.sampler = RssSampler(srv.proc.pid)
                srv.sampler.start()
            pair = [k for k in ("c", "go") if k in servers]
            for rnd in range(1, args.rounds + 1):
                if "null" in servers:
                    measure(servers["null"], bodies, args, broker, rnd)
                for key in (pair if rnd % 2 else pair[::-1]):
                    measure(servers[key], bodies, args, broker, rnd)
            for srv in servers.values():
                srv.sampler.stop.set()
                srv.sampler.join()
                gateway_info(srv)
        finally:
            for srv in servers.values():
                srv.info["exit"] = srv.stop()
            for t in topics:
                broker.delete_topic(t)
    shutil.rmtree(work, ignore_errors=True)

    res: dict = {"rounds": args.rounds, "duration_s": args.duration,
                 "connections": args.connections, "http_threads": args.http_threads,
                 "cpus": os.cpu_count(), "load_start": load_start, "load_end": loadavg(),
                 "go_skipped": go_skip or None,
                 "servers": {k: {"summary": summary(s), "runs": s.runs}
                             for k, s in servers.items()}}
    print()
    print(f"payment-gw benchmark: wrk -t{args.wrk_threads} -c{args.connections} "
          f"-d{args.duration}s, {args.rounds} round(s), OF_HTTP_THREADS="
          f"{args.http_threads or 'default'}, "
          f"{os.cpu_count()} CPUs, conn memory {args.conn_memory} B, OF_LOG_LEVEL="
          f"{args.log_level}, load average {load_start} at the start, {res['load_end']} "
          f"at the end")
    for rnd in range(1, args.rounds + 1):
        print(f"  round {rnd}")
        for s in servers.values():
            r = next(x for x in s.runs if x["round"] == rnd)
            print("    " + fmt(f"{s.label:<22}", r))
        for s in servers.values():
            r = next(x for x in s.runs if x["round"] == rnd)
            print("      " + fmt_cpu(s.label.split()[0], r))
    c, g, a = servers.get("c"), servers.get("go"), servers.get("null")
    pairs: dict[str, float] = {}
    if c and g:
        by = {x["round"]: x for x in g.runs}
        pr = [(x, by[x["round"]]) for x in c.runs]
        pairs = {"rate": median([x["accepted_per_s"] / y["accepted_per_s"] for x, y in pr
                                 if y["accepted_per_s"]]),
                 "cpu": median([x["server_us"] / y["server_us"] for x, y in pr if y["server_us"]]),
                 "p99": median([x["p99_ms"] / y["p99_ms"] for x, y in pr if y["p99_ms"]])}
    if c and a:
        by = {x["round"]: x for x in a.runs}
        res["null_ratio"] = median([x["accepted_per_s"] / by[x["round"]]["rps"] for x in c.runs])
    print(f"  medians of {args.rounds} round(s):")
    for s in servers.values():
        m = res["servers"][s.key]["summary"]
        line = (f"    {s.label:<22}: {m['accepted_per_s']:10.1f} accepted/s   p50 "
                f"{m['p50_ms']:.2f} ms   p99 {m['p99_ms']:.2f} ms   CPU per request "
                f"{m['server_us']:.1f} us ({100 * m['server_cores']:.0f} % of a core), Kafka "
                f"{m['kafka_us']:.1f} us, machine {m['all_us']:.1f} us ({m['busy_pct']:.0f} % "
                f"busy)   peak RSS {m.get('rss_mib', 0):.1f} MiB ({m.get('threads', 0)} threads)")
        if s.gateway:
            line += (f"   answers: {int(m.get('accepted', 0))} accepted, "
                     f"{int(m.get('other', 0))} other; mean ack {m.get('mean_ack_ms', 0):.2f} ms;"
                     f" exit {m.get('exit')}")
        print(line)
    if c and g:
        cs, gs = res["servers"]["c"]["summary"], res["servers"]["go"]["summary"]
        res["c_vs_go"] = {
            "rate": pairs["rate"], "cpu_per_payment": pairs["cpu"], "p99": pairs["p99"],
            "rss": cs.get("rss_mib", 0) / gs["rss_mib"] if gs.get("rss_mib") else None}
        cg = res["c_vs_go"]
        print(f"  C / Go (median of {args.rounds} pair ratios): accepted/s {cg['rate']:.2f} "
              f"(goal >= 1.4), CPU per accepted payment {cg['cpu_per_payment']:.2f} (goal <= 0.4), "
              f"p99 {cg['p99']:.2f} (goal <= 1), peak RSS "
              f"{cs.get('rss_mib', 0):.1f} / {gs.get('rss_mib', 0):.1f} MiB = "
              f"{cg['rss'] or float('nan'):.2f} (goal <= 1)")
    elif go_skip:
        print(f"  C / Go: n/a ({go_skip})")
    if "null_ratio" in res:
        print(f"  ratio (b)/(a)        : {res['null_ratio']:.3f} (median of {args.rounds}; "
              f"payment-gw accepted/s over the null handler's req/s)")
    print("RESULT_JSON " + json.dumps(res, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
