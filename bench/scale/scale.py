"""Scale-out: the rate the pipeline sustains with 1, 2 and 3 replicas of
inventory and of notify (payment-gw stays one process: it is far from the
limit), on this machine.

The method is bench/e2e's, reused from it: a fresh Kafka broker and
PostgreSQL per replica count, topics of 6 partitions, the C sink, and an
open-loop generator (order i scheduled at t0 + i/rate, latency from the
scheduled time: no coordinated omission). A ramp of constant-rate steps
doubles the rate until a step fails, then bisects between the best
sustained and the lowest failing rate until they are less than 15 % apart;
a step is sustained when the generator kept its rate, >= 99.5 % of the
POSTs got 202, >= 99.5 % of the orders got their 3 notifications within
10 s, and latency did not grow across the step (e2e.passed). A failed
step's backlog is drained before the next. Then the latency of a 20 s step
at half the sustained rate.

  .venv/bin/python bench/scale/scale.py [--replicas 1,2,3] [--quick]
      [--bin-dir build-bench/bin] [--json out.json]

A benchmark: it prints the table and exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "bench" / "e2e"))
sys.path.insert(0, str(ROOT / "bench" / "lib"))

import e2e  # noqa: E402
from benchlib import RssSampler, log, machine_busy_seconds  # noqa: E402
from harness.util import free_port  # noqa: E402  (e2e put tests/system on the path)


class ReplicaStack(e2e.Stack):
    """e2e's stack with `n` replicas of inventory and of notify (one
    consumer group each, static members with their own ids) and one
    payment-gw."""

    def __init__(self, bin_dir: Path, work: Path, n: int):
        super().__init__(bin_dir, work)
        self.n = n

    def start(self) -> None:
        super().start()  # payment-gw, inventory and notify: replica 0
        for name in ("inventory", "notify"):
            for k in range(1, self.n):
                key = f"{name}-{k}"
                env = dict(self.envs[name])
                port = free_port()
                env["OF_HTTP_PORT"] = str(port)
                self.envs[key] = env
                self.ports[key] = port
                logf = open(self.work / f"{key}.log", "ab")
                self.procs[key] = e2e.subprocess.Popen([str(self.bin_dir / name)], env=env,
                                                       stdout=logf, stderr=e2e.subprocess.STDOUT)
        for key in list(self.ports):
            self.wait_ready(key)
        log(f"scale: {self.n} replica(s) of inventory and notify ready")

    def stop(self) -> dict:
        codes = {}
        for key, p in self.procs.items():
            if key in ("payment-gw", "inventory", "notify"):
                continue
            if p.poll() is None:
                p.send_signal(e2e.signal.SIGTERM)
            try:
                codes[key] = p.wait(60)
            except e2e.subprocess.TimeoutExpired:
                p.kill()
                codes[key] = p.wait()
        codes.update(super().stop())
        return codes


def ramp(stack: ReplicaStack, start: float, step_s: float, max_steps: int) -> tuple[dict | None, list]:
    rate, best, failed_at, rows = start, None, None, []
    for k in range(max_steps):
        log(f"scale[{stack.n}]: step {k + 1}: {rate:.0f} orders/s for {step_s:.0f}s")
        r = e2e.step(stack, rate, step_s, f"s{stack.n}r{k}", 10.0, settle=180)
        ok, why = e2e.passed(r)
        log(f"scale[{stack.n}]:   completed {r['complete']}/{r['orders']}, p50 "
            f"{r['p50_s'] * 1000:.0f} ms, p99 {r['p99_s'] * 1000:.0f} ms, machine "
            f"{r['machine_busy'] * 100:.0f} % busy -> {'sustained' if ok else why}")
        rows.append({**{k2: v for k2, v in r.items() if not k2.startswith("_")},
                     "sustained": ok, "why": why})
        if not stack.alive():
            raise RuntimeError("a service died during the ramp")
        if ok:
            best = r
            if failed_at is not None:
                if failed_at / rate < 1.15:
                    break
                rate = (rate * failed_at) ** 0.5
            else:
                rate *= 2.0
        else:
            failed_at = rate if failed_at is None else min(failed_at, rate)
            if best is None:
                rate /= 2
            elif failed_at / best["offered_rate"] < 1.15:
                break
            else:
                rate = (best["offered_rate"] * failed_at) ** 0.5
        time.sleep(2)
    return best, rows


def run_one(bin_dir: Path, n: int, start: float, quick: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"of-bench-scale{n}-"))
    stack = ReplicaStack(bin_dir, work, n)
    out: dict = {"replicas": n, "work_dir": str(work)}
    sampler = None
    try:
        stack.start()
        sampler = RssSampler(stack.pids())
        sampler.start()
        log(f"scale[{n}]: warm-up")
        e2e.step(stack, 20, 3, f"w{n}a", 30)
        e2e.step(stack, 100, 5, f"w{n}b", 30)
        best, rows = ramp(stack, start, 8.0 if quick else 15.0, 6 if quick else 9)
        out["ramp"] = rows
        if best is None:
            out["sustained_rate"] = 0.0
            return out
        out["sustained_rate"] = best["offered_rate"]
        out["sustained_machine_busy"] = best["machine_busy"]
        time.sleep(10)
        half = best["offered_rate"] / 2
        log(f"scale[{n}]: latency at half the sustained rate, {half:.0f} orders/s")
        r = e2e.step(stack, half, 10.0 if quick else 20.0, f"l{n}", 30)
        out["half_rate"] = {k: v for k, v in r.items() if not k.startswith("_")}
        out["rss_peak_kib"] = sampler.finish()
        sampler = None
    finally:
        try:
            if sampler is not None:
                sampler.finish()
        finally:
            out["exit_codes"] = stack.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicas", default="1,2,3")
    ap.add_argument("--start-rate", type=float, default=800.0)
    ap.add_argument("--quick", action="store_true")
    default_bin = ROOT / "build-bench" / "bin"
    if not (default_bin / "inventory").exists():
        default_bin = ROOT / "build" / "bin"
    ap.add_argument("--bin-dir", default=str(default_bin))
    ap.add_argument("--json")
    args = ap.parse_args()
    bin_dir = Path(args.bin_dir).resolve()
    results = []
    t0 = time.monotonic()
    busy0 = machine_busy_seconds()
    for n in (int(x) for x in args.replicas.split(",")):
        try:
            results.append(run_one(bin_dir, n, args.start_rate, args.quick))
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, never fails
            log(f"scale[{n}]: failed: {exc}")
            results.append({"replicas": n, "error": str(exc)})
    wall = time.monotonic() - t0
    load = os.getloadavg()
    print(f"\nscale-out on {os.cpu_count()} cores ({platform.node()}), {bin_dir}, "
          f"{wall / 60:.1f} min, load average at the end {load[0]:.1f}, machine "
          f"{(machine_busy_seconds() - busy0) / (wall * (os.cpu_count() or 1)) * 100:.0f} % busy")
    print(f"{'replicas':>8} {'sustained/s':>12} {'busy':>6} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'inventory RSS':>14} {'notify RSS':>11}  exit codes")
    for r in results:
        if "error" in r:
            print(f"{r['replicas']:>8}  failed: {r['error']}")
            continue
        h = r.get("half_rate", {})
        rss = r.get("rss_peak_kib", {})
        inv = max((v for k, v in rss.items() if k.startswith("inventory")), default=0) / 1024
        ntf = max((v for k, v in rss.items() if k.startswith("notify")), default=0) / 1024
        print(f"{r['replicas']:>8} {r['sustained_rate']:>12.0f} "
              f"{r.get('sustained_machine_busy', 0) * 100:>5.0f}% "
              f"{h.get('p50_s', float('nan')) * 1000:>8.1f} {h.get('p99_s', float('nan')) * 1000:>8.1f} "
              f"{inv:>11.1f} MiB {ntf:>7.1f} MiB  {r.get('exit_codes')}")
    print("(latency: POST scheduled -> last of 3 notifications, at half the sustained rate; "
          "busy: the machine's CPU during the sustained step)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
