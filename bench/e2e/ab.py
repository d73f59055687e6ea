#!/usr/bin/env python3
"""Interleaved A/B of service settings on one end-to-end stack.

    bench/e2e/ab.py --bin-dir build-bench/bin --rates 300,1500 --seconds 20 \\
        --pairs 3 --variant base: \\
        --variant nowait:inventory.OF_INV_BATCH_MS=0,notify.OF_RDKAFKA_FETCH_WAIT_MAX_MS=2

One Kafka, PostgreSQL (with track_commit_timestamp, so an order's
transaction splits into its wait, its run and the relay) and sink, as in
bench/e2e/e2e.py; then, `--pairs` times, for each variant in turn (the
order alternates between rounds): the three services restarted with the
variant's environment on top of the benchmark's, a warm-up, and one
open-loop step per rate. Each step prints the end-to-end p50/p90/p99, the
per-stage p50/p99 (e2e.STAGES), inventory's transactions (count, mean batch,
mean duration) and the CPU seconds per 1 000 orders of every process from
the step's start until its last order completed (services, Kafka,
PostgreSQL, sink, this script), with the load average: on a shared machine
CPU per order is a steadier measure of the cost of a setting than a
sustained rate. A variant is `name:` followed by comma-separated
`service.VARIABLE=value` (service: payment-gw, inventory, notify). Writes
every figure as JSON with --json. A diagnostic tool, not part of make bench.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[0] / "lib"))

import e2e  # noqa: E402
from benchlib import cpu_seconds, log, tree_cpu_seconds  # noqa: E402

SERVICES = ("payment-gw", "inventory", "notify")


def parse_variant(text: str) -> tuple[str, dict[str, dict[str, str]]]:
    name, _, rest = text.partition(":")
    env: dict[str, dict[str, str]] = {s: {} for s in SERVICES}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        svc, _, var = key.partition(".")
        if svc not in env or not var:
            raise SystemExit(f"ab.py: bad variant item {item!r} (service.VARIABLE=value)")
        env[svc][var] = value
    return name, env


def inv_metrics(stack: e2e.Stack) -> dict[str, float]:
    """inventory's transaction count, batch-size sum and duration sum."""
    out = {"txn": 0.0, "batch_sum": 0.0, "txn_s": 0.0}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.ports['inventory']}/metrics",
                                    timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return out
    for key, pat in (("txn", r"^orderflow_inventory_batch_size_count(?:\{\})? (\S+)"),
                     ("batch_sum", r"^orderflow_inventory_batch_size_sum(?:\{\})? (\S+)"),
                     ("txn_s", r"^orderflow_inventory_transaction_duration_seconds_sum"
                               r"(?:\{\})? (\S+)")):
        m = re.search(pat, text, re.M)
        if m:
            out[key] = float(m.group(1))
    return out


def pg_backends(stack: e2e.Stack) -> dict[str, float]:
    """CPU seconds of PostgreSQL's backends by application_name (inventory's
    workers together, its relay, notify, ...)."""
    out: dict[str, float] = {}
    try:
        rows = stack.pg.query("postgres", "SELECT pid, application_name FROM pg_stat_activity"
                              " WHERE backend_type = 'client backend'")
    except Exception:  # noqa: BLE001
        return out
    for pid, app in rows:
        app = re.sub(r"-\d+$", "", app or "other")
        out["pg:" + app] = out.get("pg:" + app, 0.0) + cpu_seconds(pid)
    return out


def cpu(stack: e2e.Stack) -> dict[str, float]:
    out = {name: cpu_seconds(p.pid) for name, p in stack.procs.items()}
    out["kafka"] = tree_cpu_seconds(stack.kafka.pid)
    out["postgres"] = tree_cpu_seconds(getattr(stack.pg, "_postmaster_pid", None))
    out["sink"] = cpu_seconds(stack.sink.proc.pid)
    out["loadgen"] = cpu_seconds(os.getpid())
    return out


def boost(stack: e2e.Stack, nice: int) -> None:
    """Raises the scheduling priority of the stack's processes (services,
    sink, Kafka, PostgreSQL, this script): their autogroups' nice value
    (with kernel.sched_autogroup_enabled a process's nice counts only
    against its own session's processes) and their own. On a machine
    shared with other work this measures what the pipeline does when it
    has the cores, not how other people's load delays it."""
    if nice == 0:
        return
    pids = [p.pid for p in stack.procs.values()] + [stack.sink.proc.pid, os.getpid()]
    for root in (stack.kafka.pid, getattr(stack.pg, "_postmaster_pid", None)):
        if root:
            pids.append(root)
            pids += [int(c) for c in Path(f"/proc/{root}/task/{root}/children").read_text().split()
                     if Path(f"/proc/{root}/task/{root}/children").exists()]
    for pid in pids:
        try:
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        except OSError:
            pass
        try:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
        except OSError:
            pass


def restart(stack: e2e.Stack, base: dict[str, dict[str, str]], env: dict[str, dict[str, str]]):
    for name in SERVICES:
        stack.stop_service(name)
    for name in SERVICES:
        stack.envs[name] = {**base[name], **env[name]}
        stack.start_service(name, wait=False)
    for name in SERVICES:
        stack.wait_ready(name)


def measure(stack: e2e.Stack, rate: float, seconds: float, tag: str) -> dict:
    m0, c0, b0 = inv_metrics(stack), cpu(stack), pg_backends(stack)
    load = os.getloadavg()[0]
    r = e2e.step(stack, rate, seconds, tag, 30)
    m1, c1, b1 = inv_metrics(stack), cpu(stack), pg_backends(stack)
    done = max(1, r["complete"])
    out = {k: v for k, v in r.items() if not k.startswith("_")}
    out["load_avg"] = load
    c1["loadgen"] += r["generator_cpu_s"]
    out["cpu_ms_per_order"] = {k: 1000 * (c1[k] - c0.get(k, 0.0)) / done for k in c1}
    out["cpu_ms_per_order"]["all"] = sum(out["cpu_ms_per_order"].values())
    out["pg_ms_per_order"] = {k: 1000 * (b1[k] - b0.get(k, 0.0)) / done for k in b1}
    txn = m1["txn"] - m0["txn"]
    out["inventory"] = {"transactions": txn,
                        "mean_batch": (m1["batch_sum"] - m0["batch_sum"]) / txn if txn else None,
                        "mean_txn_ms": 1000 * (m1["txn_s"] - m0["txn_s"]) / txn if txn else None}
    try:
        out["stages"] = e2e.stage_p99s(stack, r)
    except Exception as ex:  # noqa: BLE001
        log(f"ab: stage split unavailable: {ex}")
    return out


def measure_idle(stack: e2e.Stack, seconds: float) -> dict:
    """No load: the CPU each process spends per second of idling."""
    c0, load, t0 = cpu(stack), os.getloadavg()[0], time.monotonic()
    time.sleep(seconds)
    c1, dt = cpu(stack), time.monotonic() - t0
    per = {k: 1000 * (c1[k] - c0.get(k, 0.0)) / dt for k in c1}
    per["all"] = sum(per.values())
    return {"load_avg": load, "idle_cpu_ms_per_s": per}


def show(name: str, rate: float, x: dict) -> None:
    if rate == 0:
        per = x["idle_cpu_ms_per_s"]
        log(f"ab: {name} idle: CPU ms/s {per['all']:.1f} (" + ", ".join(
            f"{k} {v:.1f}" for k, v in per.items() if k != "all") + f"), load {x['load_avg']:.1f}")
        return
    inv = x["inventory"]
    cpu_all = x["cpu_ms_per_order"]
    parts = ", ".join(f"{k} {v:.2f}" for k, v in cpu_all.items() if k != "all")
    log(f"ab: {name} @ {rate:.0f}/s: p50 {x['p50_s'] * 1000:.1f} p90 {x['p90_s'] * 1000:.1f} "
        f"p99 {x['p99_s'] * 1000:.1f} ms ({x['complete']}/{x['orders']}), load {x['load_avg']:.1f}, "
        f"busy {x['machine_busy'] * 100:.0f} %")
    if x.get("stages"):
        log(f"ab:   stages p50 / p99 ms: {e2e.split_text(x['stages']['split'])}")
    mb = f"{inv['mean_batch']:.1f}" if inv["mean_batch"] else "n/a"
    mt = f"{inv['mean_txn_ms']:.2f}" if inv["mean_txn_ms"] else "n/a"
    log(f"ab:   inventory {inv['transactions']:.0f} transactions, mean batch {mb}, "
        f"mean {mt} ms; CPU ms/order {cpu_all['all']:.2f} ({parts})")
    log("ab:   PostgreSQL backends ms/order: " + ", ".join(
        f"{k[3:]} {v:.2f}" for k, v in sorted(x.get("pg_ms_per_order", {}).items())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default=str(e2e.ROOT / "build-bench" / "bin"))
    ap.add_argument("--rates", default="300,1500")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--json", default=None)
    ap.add_argument("--boost", type=int, default=0,
                    help="nice value (e.g. -10) for the stack's processes and their "
                         "autogroups (see boost()); 0: leave them alone")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    rates = [float(x) for x in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="of-bench-ab-"))
    stack = e2e.Stack(Path(args.bin_dir), work)
    results: list[dict] = []
    try:
        stack.start()
        # commit timestamps: the transaction's own duration in the split
        stack.pg.query("postgres", "ALTER SYSTEM SET track_commit_timestamp = on")
        stack.pg.stop()
        stack.pg.start()
        base = {k: dict(v) for k, v in stack.envs.items()}
        for rnd in range(args.pairs):
            order = variants if rnd % 2 == 0 else list(reversed(variants))
            for name, env in order:
                log(f"ab: round {rnd + 1}, variant {name}: restarting the services")
                restart(stack, base, env)
                boost(stack, args.boost)
                e2e.step(stack, 100, 4, f"w{rnd}{name}", 30)
                for rate in rates:
                    x = (measure_idle(stack, args.seconds) if rate == 0 else
                         measure(stack, rate, args.seconds, f"{name}{rnd}r{int(rate)}"))
                    x.update({"variant": name, "round": rnd, "rate": rate})
                    show(name, rate, x)
                    results.append(x)
                    time.sleep(2)
    finally:
        stack.stop()
    log("ab: medians over the rounds")
    for rate in rates:
        for name, _ in variants:
            xs = [x for x in results if x["variant"] == name and x["rate"] == rate]
            if not xs:
                continue
            if rate == 0:
                log(f"ab: {name} idle: CPU ms/s " + ", ".join(
                    f"{k} {statistics.median(x['idle_cpu_ms_per_s'][k] for x in xs):.1f}"
                    for k in xs[0]["idle_cpu_ms_per_s"]))
                continue
            med = lambda f: statistics.median(f(x) for x in xs)  # noqa: E731
            log(f"ab: {name} @ {rate:.0f}/s: p50 {med(lambda x: x['p50_s']) * 1000:.1f} "
                f"p99 {med(lambda x: x['p99_s']) * 1000:.1f} ms, CPU ms/order "
                f"{med(lambda x: x['cpu_ms_per_order']['all']):.2f} (kafka "
                f"{med(lambda x: x['cpu_ms_per_order']['kafka']):.2f}, postgres "
                f"{med(lambda x: x['cpu_ms_per_order']['postgres']):.2f}), load "
                f"{med(lambda x: x['load_avg']):.1f}, n={len(xs)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
