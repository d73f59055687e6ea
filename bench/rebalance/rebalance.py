"""The pause a service restart causes, per consumer-group setting.

Payments flow at a steady rate (open loop: harness.chaos.PaymentDriver
posts payment i at t0 + i/rate whatever the answers) through payment-gw,
two inventory replicas and two notify replicas, on one fresh broker and one
fresh PostgreSQL. Each replica is restarted in turn as a rolling deploy
does it (SIGTERM, start, wait for /readyz), a few seconds apart. Then, per
restart, from the records themselves (tests/system/harness/flow.py):

  pause  = the largest latency of a record started during the restart
           (from 2 s before SIGTERM to ready) less the median latency of the
           quiet period before the first restart;
  gap    = the longest stretch in that window with no record completed;

for the stage of the restarted service: payments (POST -> outcome record)
for inventory, notifications (outcome record -> sink) for notify.

Settings compared (every consumer of both services, through OF_RDKAFKA_*
or OF_KAFKA_INSTANCE_ID):
  eager-dynamic   partition.assignment.strategy=range, no group.instance.id
  coop-dynamic    cooperative-sticky, no group.instance.id
  eager-static    range, group.instance.id per replica, session 30 s
  coop-static     cooperative-sticky, group.instance.id per replica

  .venv/bin/python bench/rebalance/rebalance.py [--rate 40] [--rounds 1]
      [--settings eager-dynamic,coop-dynamic,eager-static,coop-static]
      [--bin-dir build/bin] [--json out.json] [--keep DIR]

A benchmark: it prints figures and exits 0 whatever they are.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "system"))

from harness import flow  # noqa: E402
from harness.chaos import (PaymentDriver, Stack, machine_info, make_catalogue,  # noqa: E402
                           make_payments, wait_quiescent)
from harness.kafka import KafkaBroker  # noqa: E402
from harness.pg import Postgres  # noqa: E402

STRATEGY = {"eager": "range", "coop": "cooperative-sticky"}


def log(msg: str) -> None:
    print(f"[rebalance {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def setting_env(setting: str, session_ms: int) -> dict[str, str]:
    """The environment of every consumer for a setting. A static setting
    also needs the replica's own id (see replica_env)."""
    proto, membership = setting.split("-")
    env = {"OF_RDKAFKA_PARTITION_ASSIGNMENT_STRATEGY": STRATEGY[proto],
           "OF_RDKAFKA_SESSION_TIMEOUT_MS": str(session_ms if membership == "static" else 10000)}
    if membership != "static":
        # dynamic membership, whatever the services' default is
        env["OF_KAFKA_INSTANCE_ID"] = "none"
    return env


def replica_env(setting: str, service: str, k: int, session_ms: int) -> dict[str, str]:
    env = setting_env(setting, session_ms)
    if setting.endswith("static"):
        env["OF_KAFKA_INSTANCE_ID"] = f"{service}-{k}"
    return env


def run_setting(setting: str, kafka: KafkaBroker, pg: Postgres, work: Path, rate: float,
                spacing: float, partitions: int, session_ms: int, seed: int) -> dict:
    stack = Stack.create(work / setting, kafka=kafka, pg=pg, partitions=partitions)
    driver = None
    try:
        svcs = stack.services
        gw = svcs.start("payment-gw")
        replicas = []
        for name in ("inventory", "notify"):
            for k in range(2):
                replicas.append((name, k, svcs.start(name, env=replica_env(setting, name, k, session_ms))))
        rng = random.Random(seed)
        events_planned = len(replicas)
        duration = spacing * (events_planned + 1) + 5
        n = int(rate * duration)
        cat = make_catalogue(rng, n, n_skus=60, scarce_ratio=0.0)
        stack.set_stock(cat.stock)
        payments = make_payments(rng, n, cat, uuid.uuid4().hex[:6], unknown_ratio=0.0)
        driver = PaymentDriver(gw.url, workers=64)
        t0 = time.time()
        poster = driver.start(payments, rate, phase=setting)
        events = []
        for i, (name, k, svc) in enumerate(replicas):
            at = t0 + spacing * (i + 1)
            time.sleep(max(0.0, at - time.time()))
            leader = None
            if name == "inventory":
                try:
                    leader = int(svc.metric("orderflow_inventory_outbox_relay_leader"))
                except Exception:  # noqa: BLE001
                    pass
            a = time.time()
            svc.stop()
            stopped = time.time()
            svc.start()
            svc.wait_ready(60)
            b = time.time()
            events.append({"service": name, "replica": k, "a": a, "b": b,
                           "stop_s": round(stopped - a, 2), "restart_s": round(b - a, 2),
                           "relay_leader": leader})
            log(f"{setting}: {name}-{k} restarted in {b - a:.1f}s "
                f"(stop {stopped - a:.1f}s){' [relay leader]' if leader else ''}")
        poster.join()
        driver.drain(60)
        quiet = wait_quiescent(stack, driver, timeout=120, log=log)
        outcomes = flow.first_outcomes(flow.outcome_records(stack.kafka, stack.ns))
        pay = flow.payment_samples(driver, outcomes)
        note = flow.notification_samples(stack.sink, outcomes)
        first = events[0]["a"]
        base = {"payments": flow.quiet_figures(pay, first, t0 + 3),
                "notifications": flow.quiet_figures(note, first, t0 + 3)}
        for ev in events:
            stage = "payments" if ev["service"] == "inventory" else "notifications"
            samples = pay if stage == "payments" else note
            ev.update(flow.window_figures(samples, ev["a"], ev["b"], base[stage]["p50_ms"]))
            ev["stage"] = stage
        summ = driver.summary()
        return {"setting": setting, "quiescent": quiet, "baseline": base, "events": events,
                "acknowledged": summ["acknowledged_202"], "responses_503": summ["responses_503"],
                "lost": sum(1 for s in driver.acked_states() if s.payload["order_id"] not in outcomes)}
    finally:
        if driver is not None:
            driver.close()
        problems = stack.close()
        if problems:
            log(f"{setting}: teardown problems: {problems}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=40.0, help="payments per second")
    ap.add_argument("--spacing", type=float, default=14.0, help="seconds between restarts")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--session-ms", type=int, default=30000,
                    help="session.timeout.ms of the static settings")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--settings", default="eager-dynamic,coop-dynamic,eager-static,coop-static")
    ap.add_argument("--bin-dir", default=os.environ.get("OF_BIN_DIR", "build/bin"))
    ap.add_argument("--json", help="write every figure there")
    ap.add_argument("--keep", help="work in this directory and keep it (service logs)")
    args = ap.parse_args()
    os.environ["OF_BIN_DIR"] = args.bin_dir
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="of-rebalance-") as tmp:
        work = Path(args.keep or tmp)
        kafka = KafkaBroker(work / "kafka")
        pg = Postgres()
        results = []
        try:
            kafka.fetch()
            kafka.start()
            pg.start()
            for rnd in range(args.rounds):
                for s in settings:
                    log(f"round {rnd + 1}: {s}")
                    results.append(run_setting(s, kafka, pg, work / f"r{rnd}", args.rate,
                                               args.spacing, args.partitions, args.session_ms,
                                               seed=20261207 + rnd))
        finally:
            kafka.close()
            pg.destroy()
    print(f"\nrestart pauses at {args.rate:g} payments/s, {args.partitions} partitions, "
          f"2 replicas each of inventory and notify ({args.bin_dir})")
    print(f"{'setting':<14} {'restarted':<12} {'restart s':>9} {'pause ms':>9} {'gap ms':>8} "
          f"{'max ms':>8} {'quiet p50':>9}")
    for r in results:
        for ev in r["events"]:
            p50 = r["baseline"][ev["stage"]]["p50_ms"]
            lead = "*" if ev.get("relay_leader") else ""
            print(f"{r['setting']:<14} {ev['service'] + '-' + str(ev['replica']) + lead:<12} "
                  f"{ev['restart_s']:>9.1f} {ev['pause_ms']:>9.0f} {ev['gap_ms']:>8.0f} "
                  f"{ev['max_latency_ms']:>8.0f} {p50:>9.0f}")
        print(f"{'':<14} lost {r['lost']}, 503s {r['responses_503']}, quiescent {r['quiescent']}")
    print("(* the outbox relay's leader; pause = worst latency in the window - quiet median)")
    by: dict[str, list[float]] = {}
    for r in results:
        for ev in r["events"]:
            by.setdefault(f"{r['setting']} {ev['service']}", []).append(ev["pause_ms"])
    print("\nmedian / worst pause per setting and service (ms)")
    for k, v in by.items():
        print(f"  {k:<26} {statistics.median(v):>7.0f} {max(v):>7.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(), "args": vars(args),
                                               "results": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
