#!/usr/bin/env python3
"""bench/gw/run.py - payment-gw throughput against a null libmicrohttpd handler.

In one run, on this machine, with wrk (64 connections, 20 s by default):
  (a) bench/gw/null_server.c: same libmicrohttpd flags and thread pool as
      of_http.c, reads the body, answers 202; no work at all;
  (b) payment-gw (Release build) with real signed bodies, validation and
      real Kafka acknowledgements (acks=all, idempotent producer) from a
      broker started with deploy/kafka.sh.
Prints both rates, the ratio (b)/(a) (goal >= 0.6), p50/p99 latency, and
payment-gw's peak RSS (VmHWM, goal < 32 MiB). Nothing is asserted.

Usage (from anywhere; needs wrk, cmake, gcc, java+mvn for the broker and
confluent-kafka, e.g. the repo's .venv):
  .venv/bin/python bench/gw/run.py [--duration 20] [--connections 64] [--rounds 1]
        [--http-threads 2] [--bodies 20000] [--brokers HOST:PORT]

--brokers uses an existing broker instead of starting one (the topic is
created under a unique prefix either way); the started one keeps its data on
/dev/shm. --rounds N alternates (a) and (b) N times and summarises with the
median, which helps on a machine shared with other work. Each server first
gets --warmup seconds of unmeasured load.
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


def fmt(name: str, r: dict) -> str:
    errs = int(r["connect_err"] + r["read_err"] + r["write_err"] + r["timeouts"])
    return (f"{name}: {r['rps']:10.1f} req/s   p50 {r['p50_ms']:7.2f} ms   "
            f"p99 {r['p99_ms']:7.2f} ms   non-2xx {int(r['non2xx'])}   errors {errs}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--http-threads", type=int, default=int(os.environ.get("OF_HTTP_THREADS", "2")))
    ap.add_argument("--bodies", type=int, default=20000)
    ap.add_argument("--conn-memory", type=int,
                    default=int(os.environ.get("OF_HTTP_CONN_MEMORY_LIMIT", "32768")),
                    help="per-connection memory limit for both servers")
    ap.add_argument("--warmup", type=int, default=5,
                    help="seconds of unmeasured wrk load on each server first (JIT of the "
                         "broker's JVM, connections, caches)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate (a) and (b) this many times; the summary uses the median")
    ap.add_argument("--brokers", default=None)
    ap.add_argument("--build-dir", default=str(ROOT / "build-gw" / "release"))
    ap.add_argument("--log-level", default="info", help="payment-gw OF_LOG_LEVEL (default info)")
    args = ap.parse_args()

    for tool in ("wrk", "cmake", "gcc"):
        if shutil.which(tool) is None:
            log(f"{tool} not found (deploy/install-deps.sh installs it)")
            return 2

    gw_bin, null_bin = build(Path(args.build_dir))
    work = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    bodies = work / "bodies.txt"
    rounds: list[tuple[dict, dict]] = []
    gwinfo: dict = {}
    null_hwm = 0

    with Broker(args.brokers) as broker:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        topic = prefix + "payment.success"
        broker.create_topic(topic)
        null_port, gw_port = free_port(), free_port()
        null = subprocess.Popen([str(null_bin), str(null_port), str(args.http_threads),
                                 str(args.conn_memory)],
                                stderr=subprocess.DEVNULL)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OF_")}
        env.update({"OF_KAFKA_BROKERS": broker.bootstrap, "OF_TOPIC_PREFIX": prefix,
                    "OF_HTTP_PORT": str(gw_port), "OF_WEBHOOK_SECRETS": SECRET,
                    "OF_HTTP_THREADS": str(args.http_threads), "OF_LOG_LEVEL": args.log_level,
                    "OF_HTTP_CONN_MEMORY_LIMIT": str(args.conn_memory)})
        # Operator overrides for the gateway pass through (OF_RDKAFKA_*, OF_GW_*).
        env.update({k: v for k, v in os.environ.items()
                    if k.startswith(("OF_RDKAFKA_", "OF_GW_", "OF_HTTP_CONN_TIMEOUT"))})
        gw_log = open(work / "payment-gw.log", "wb")
        gw = subprocess.Popen([str(gw_bin)], env=env, stdout=gw_log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{gw_port}/readyz")
            for _ in range(20):  # warm-up: producer id, metadata, connections
                if post_one(gw_port) != 202:
                    raise RuntimeError("warm-up payment not accepted")
            if args.warmup > 0:
                log(f"warm-up: {args.warmup}s of load on each server (not measured)")
                write_bodies(bodies, args.bodies)
                wrk(null_port, bodies, args.warmup, args.connections, args.wrk_threads)
                wrk(gw_port, bodies, args.warmup, args.connections, args.wrk_threads)
            sampler = RssSampler(gw.pid)
            sampler.start()
            for rnd in range(args.rounds):
                write_bodies(bodies, args.bodies)
                log(f"round {rnd + 1}/{args.rounds}: (a) null handler, "
                    f"wrk -c{args.connections} -d{args.duration}s")
                a, cpu_a = cpu_during(
                    lambda: wrk(null_port, bodies, args.duration, args.connections,
                                args.wrk_threads),
                    {"server": null.pid, "kafka": getattr(broker, "pid", None)})
                a["cpu"] = cpu_a
                write_bodies(bodies, args.bodies)  # fresh t
                log(f"round {rnd + 1}/{args.rounds}: (b) payment-gw, "
                    f"wrk -c{args.connections} -d{args.duration}s")
                b, cpu_b = cpu_during(
                    lambda: wrk(gw_port, bodies, args.duration, args.connections,
                                args.wrk_threads),
                    {"server": gw.pid, "kafka": getattr(broker, "pid", None)})
                b["cpu"] = cpu_b
                rounds.append((a, b))
            sampler.stop.set()
            sampler.join()
            null_hwm = proc_status(null.pid).get("VmHWM", 0)
            st = proc_status(gw.pid)
            gwinfo["hwm_kib"] = st.get("VmHWM", 0)
            gwinfo["rss_max_sampled_kib"] = max(sampler.samples or [0])
            gwinfo["threads"] = st.get("Threads", 0)
            with urllib.request.urlopen(f"http://127.0.0.1:{gw_port}/metrics", timeout=10) as r:
                m = r.read().decode()
            gwinfo["accepted"] = metric(m, "orderflow_gw_payments_total", 'result="accepted"')
            gwinfo["other"] = metric(m, "orderflow_gw_payments_total") - gwinfo["accepted"]
            gwinfo["kafka_ok"] = metric(m, "orderflow_kafka_produced_total",
                                        f'topic="{topic}",result="ok"')
            cnt = metric(m, "orderflow_gw_kafka_delivery_seconds_count", 'result="ok"')
            tot = metric(m, "orderflow_gw_kafka_delivery_seconds_sum", 'result="ok"')
            gwinfo["mean_ack_ms"] = tot / cnt * 1000 if cnt else 0.0
        finally:
            null.send_signal(signal.SIGTERM)
            null.wait(10)
            gw.send_signal(signal.SIGTERM)
            gwinfo["exit"] = gw.wait(60)
            gw_log.close()
            broker.delete_topic(topic)
    shutil.rmtree(work, ignore_errors=True)

    def median(vals: list[float]) -> float:
        v = sorted(vals)
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

    print()
    print(f"payment-gw benchmark: wrk -t{args.wrk_threads} -c{args.connections} "
          f"-d{args.duration}s, OF_HTTP_THREADS={args.http_threads}, {os.cpu_count()} CPUs, "
          f"conn memory {args.conn_memory} B, payment-gw OF_LOG_LEVEL={args.log_level}, load average before: "
          f"{os.getloadavg()[0]:.2f}")
    for i, (a, b) in enumerate(rounds, 1):
        print(f"  round {i}")
        print("  " + fmt("  (a) null MHD handler ", a))
        print("  " + fmt("  (b) payment-gw+Kafka ", b))
        print(f"      ratio (b)/(a)       : {b['rps'] / a['rps']:.3f}")
        for name, r in (("(a)", a), ("(b)", b)):
            c = r["cpu"]
            cap = (os.cpu_count() or 1) * c["wall"]
            rest = c["busy"] - c["server"] - c["kafka"]
            print(f"      CPU {name}: all cores busy {c['busy']:.1f} of {cap:.1f} s "
                  f"({100 * c['busy'] / cap:.0f} %): server {c['server']:.1f} s, "
                  f"Kafka {c['kafka']:.1f} s, rest (wrk, kernel, others) {rest:.1f} s; "
                  f"per request: server {1e6 * c['server'] / max(1, r['requests']):.0f} us, "
                  f"Kafka {1e6 * c['kafka'] / max(1, r['requests']):.0f} us, "
                  f"all {1e6 * c['busy'] / max(1, r['requests']):.0f} us")
    ratios = [b["rps"] / a["rps"] for a, b in rounds]
    print(f"  ratio (b)/(a)        : {median(ratios):.3f} (median of {len(rounds)}; goal >= 0.6)")
    print(f"  p99 latency (b)      : {median([b['p99_ms'] for _, b in rounds]):.2f} ms "
          f"(null handler {median([a['p99_ms'] for a, _ in rounds]):.2f} ms)")
    print(f"  payment-gw RSS peak  : {gwinfo['hwm_kib'] / 1024:.1f} MiB VmHWM (goal < 32 MiB; "
          f"max sampled VmRSS {gwinfo['rss_max_sampled_kib'] / 1024:.1f} MiB, "
          f"{gwinfo['threads']} threads); null handler {null_hwm / 1024:.1f} MiB")
    total_b = sum(int(b["requests"]) for _, b in rounds)
    print(f"  answers              : {int(gwinfo['accepted'])} accepted (202) and "
          f"{int(gwinfo['other'])} other for {total_b} measured wrk requests (plus warm-up "
          f"and the requests still in flight when wrk stopped counting); Kafka "
          f"delivery reports ok {int(gwinfo['kafka_ok'])}; mean ack latency "
          f"{gwinfo['mean_ack_ms']:.2f} ms")
    print(f"  payment-gw exit code : {gwinfo['exit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
