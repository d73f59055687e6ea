#!/usr/bin/env python3
"""inventory benchmark: reservations per second against pgbench -N.

In one run, on a private PostgreSQL 15 cluster and a private Kafka broker:
  (a) pgbench -i, then pgbench -N -c 8 -j 2 -T 20 (the baseline TPS);
  (b) inventory draining a pre-filled payment.success of N single-item
      payments over S skus (default 100000 over 200, 6 partitions).
Prints (b)'s reservations per second, the ratio (b)/(a) (goal >= 2), the
PostgreSQL commits per reservation (pg_stat_database.xact_commit delta of
inventory's database while draining) and inventory's peak RSS (VmHWM; goal
< 32 MiB). Figures are printed, not asserted.

Usage: bench/inventory/run.sh [--payments N] [--skus S] [--pgbench-seconds T]
       [--batch-max B] [--workers W] [--concurrent]
  --concurrent  run pgbench at the same time as the drain instead of before
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "system"))

from confluent_kafka import Producer  # noqa: E402

from harness.kafka import KafkaBroker  # noqa: E402
from harness.pg import Postgres  # noqa: E402
from harness.util import free_port, wait_until  # noqa: E402

import requests  # noqa: E402

PAYMENT_NS = uuid.UUID("743b2e14-4ae8-4d33-af31-19c2d802bb57")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pgbench(pg: Postgres, db: str, seconds: int, init: bool = True) -> float:
    env = dict(os.environ, PGHOST=pg.host, PGPORT=str(pg.port), PGUSER="postgres")
    if init:
        subprocess.run(["pgbench", "-i", "-q", "-s", "10", db], env=env, check=True,
                       capture_output=True, text=True)
    r = subprocess.run(["pgbench", "-N", "-c", "8", "-j", "2", "-T", str(seconds), db],
                       env=env, check=True, capture_output=True, text=True)
    tps = None
    for line in r.stdout.splitlines():
        if line.startswith("tps ="):
            tps = float(line.split("=")[1].split()[0])
    if tps is None:
        raise RuntimeError("no tps in pgbench output:\n" + r.stdout)
    return tps


def produce_payments(bootstrap: str, topic: str, n: int, skus: int) -> float:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 20, "batch.size": 1000000, "compression.type": "none",
                  "queue.buffering.max.messages": 200000})
    errors = []

    def dr(err, _msg):
        if err is not None:
            errors.append(err)

    rnd = random.Random(42)
    t0 = time.monotonic()
    for i in range(n):
        pid = f"pay_b{i:07d}"
        oid = f"ord_b{i:07d}"
        v = {"payment_id": pid, "order_id": oid, "amount_cents": 1000 + i % 5000,
             "currency": "EUR", "items": [{"sku": f"SKU-{rnd.randrange(skus):04d}", "qty": 1}],
             "customer": {"id": f"cus_{i % 997}", "email": f"user{i % 997}@example.com"},
             "occurred_at": "2026-11-22T10:00:00Z",
             "event_id": str(uuid.uuid5(PAYMENT_NS, pid)),
             "received_at": "2026-11-22T10:00:01.000Z"}
        hdrs = [("ce_specversion", b"1.0"), ("ce_id", v["event_id"].encode()),
                ("ce_type", b"payment.success.v1"), ("ce_source", b"/payment-gw"),
                ("ce_time", b"2026-11-22T10:00:01.000Z"), ("content-type", b"application/json"),
                ("traceparent", f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01".encode())]
        while True:
            try:
                p.produce(topic, key=oid.encode(), value=json.dumps(v, separators=(",", ":")).encode(),
                          headers=hdrs, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(120) == 0
    if errors:
        raise RuntimeError(f"{len(errors)} produce errors, e.g. {errors[0]}")
    return time.monotonic() - t0


def query1(pg: Postgres, db: str, sql: str):
    return pg.query(db, sql)[0][0]


def vm_hwm_kib(pid: int, field: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def cpu_seconds(pids) -> float:
    """utime + stime of the given processes (seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def pg_pids(pg: Postgres) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"postgres.*{pg.data_dir}"], capture_output=True,
                         text=True).stdout.split()
    main_pids = [int(p) for p in out]
    kids = []
    for m in main_pids:
        kids += [int(p) for p in subprocess.run(["pgrep", "-P", str(m)], capture_output=True,
                                                text=True).stdout.split()]
    return main_pids + kids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--payments", type=int, default=100000)
    ap.add_argument("--skus", type=int, default=200)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--pgbench-seconds", type=int, default=20)
    ap.add_argument("--batch-max", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None, help="OF_INV_WORKERS (default: inventory's)")
    ap.add_argument("--concurrent", action="store_true")
    ap.add_argument("--bin", default=os.environ.get("OF_BIN_DIR", str(ROOT / "build" / "bin")))
    args = ap.parse_args()
    binary = Path(args.bin) / "inventory"
    if not os.access(binary, os.X_OK):
        print(f"bench: {binary} not found (build first, or set OF_BIN_DIR)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="of-bench-inv-"))
    kafka = KafkaBroker(work / "kafka")
    pg = Postgres()
    inv = None
    try:
        log("starting PostgreSQL and Kafka")
        pg.start()
        kafka.fetch()
        kafka.start()
        prefix = "bench."
        topics = [prefix + t for t in ("payment.success", "order.fulfilled",
                                       "order.compensation", "payment.success.dlq")]
        kafka.create_topics(topics, partitions=args.partitions)
        db = pg.create_database("inventory_bench")
        pg.create_database("pgbench", owner="postgres")

        port = free_port()
        # OF_* from the caller's environment are dropped, except librdkafka
        # overrides (OF_RDKAFKA_*), which are how one tunes the consumer.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OF_") or k.startswith("OF_RDKAFKA_")}
        env.update({"OF_KAFKA_BROKERS": kafka.bootstrap, "OF_PG_DSN": pg.dsn_for(db),
                    "OF_HTTP_PORT": str(port), "OF_TOPIC_PREFIX": prefix,
                    "OF_ADMIN_TOKEN": "bench-token", "OF_LOG_LEVEL": "warn",
                    "OF_MIGRATIONS_DIR": str(ROOT / "deploy" / "sql"),
                    "OF_INV_BATCH_MAX": str(args.batch_max)})
        if args.workers is not None:
            env["OF_INV_WORKERS"] = str(args.workers)
        url = f"http://127.0.0.1:{port}"
        inv_log = open(work / "inventory.log", "ab")

        def start_inventory():
            proc = subprocess.Popen([str(binary)], env=env, stdout=inv_log, stderr=subprocess.STDOUT,
                                    cwd=work)
            wait_until(lambda: requests.get(url + "/readyz", timeout=1).status_code == 200,
                       timeout=60, message="inventory ready")
            return proc

        log("first start of inventory: migrations and stock")
        inv = start_inventory()
        per_sku = args.payments  # plenty: every payment is fulfilled
        for i in range(args.skus):
            r = requests.put(f"{url}/v1/stock/SKU-{i:04d}", json={"available": per_sku},
                             headers={"Authorization": "Bearer bench-token"}, timeout=10)
            r.raise_for_status()
        inv.terminate()
        inv.wait(30)
        inv = None

        log(f"producing {args.payments} payments over {args.skus} skus")
        secs = produce_payments(kafka.bootstrap, prefix + "payment.success", args.payments, args.skus)
        log(f"produced in {secs:.1f}s ({args.payments / secs:.0f}/s)")

        tps_a = None
        bench_thread = None
        if not args.concurrent:
            log(f"(a) pgbench -N -c 8 -j 2 -T {args.pgbench_seconds}")
            tps_a = pgbench(pg, "pgbench", args.pgbench_seconds)
            log(f"(a) {tps_a:.0f} tps")
        else:
            result = {}
            subprocess.run(["pgbench", "-i", "-q", "-s", "10", "-h", pg.host, "-p", str(pg.port),
                            "-U", "postgres", "pgbench"], check=True, capture_output=True)
            bench_thread = threading.Thread(
                target=lambda: result.update(tps=pgbench(pg, "pgbench", args.pgbench_seconds,
                                                         init=False)))

        commits0 = query1(pg, "postgres",
                          f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'")
        log("(b) inventory draining")
        t0 = time.monotonic()
        kafka_cpu0 = cpu_seconds([kafka.pid])
        pg_cpu0 = cpu_seconds(pg_pids(pg))
        inv = start_inventory()
        if bench_thread:
            bench_thread.start()
        t_ready = time.monotonic() - t0
        first = None
        samples = []
        rss_samples = []
        while True:
            n = query1(pg, db, "SELECT count(*) FROM payment_inbox")
            now = time.monotonic() - t0
            if n > 0 and first is None:
                first = now
            samples.append((now, n))
            rss_samples.append((now, n, vm_hwm_kib(inv.pid, "VmRSS")))
            if n >= args.payments:
                break
            if now > 900:
                raise RuntimeError(f"drain too slow: {n} after {now:.0f}s")
            time.sleep(0.25)
        t_done = time.monotonic() - t0
        wait_until(lambda: query1(pg, db, "SELECT count(*) FROM outbox") == 0, timeout=300,
                   interval=0.25, message="outbox drained")
        t_published = time.monotonic() - t0
        time.sleep(1.5)  # statistics are flushed about every second
        commits1 = query1(pg, "postgres",
                          f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'")
        hwm = vm_hwm_kib(inv.pid)
        if os.environ.get("BENCH_RSS"):
            for t, n, kb in rss_samples[::4]:
                print(f"  rss t={t:5.1f}s reserved={n:6d} rss={kb / 1024:5.1f} MiB")
        if os.environ.get("BENCH_SMAPS"):
            maps, cur = [], None
            for line in Path(f"/proc/{inv.pid}/smaps").read_text().splitlines():
                if "-" in line.split(" ")[0] and not line.endswith("kB"):
                    cur = line
                elif line.startswith("Rss:"):
                    maps.append((int(line.split()[1]), cur))
            for kb, m in sorted(maps, reverse=True)[:12]:
                print(f"  smaps {kb:7d} kB  {m[:110]}")
        inv_cpu = cpu_seconds([inv.pid])
        kafka_cpu = cpu_seconds([kafka.pid]) - kafka_cpu0
        pg_cpu = cpu_seconds(pg_pids(pg)) - pg_cpu0  # backends that ended are not counted
        metrics = requests.get(url + "/metrics", timeout=10).text
        inv.terminate()
        rc = inv.wait(60)
        inv = None
        if bench_thread:
            bench_thread.join()
            tps_a = result["tps"]
            log(f"(a) {tps_a:.0f} tps (concurrently)")

        fulfilled = query1(pg, db, "SELECT count(*) FROM orders WHERE status = 'fulfilled'")
        conserved = query1(pg, db, "SELECT bool_and(ok) FROM stock_conservation")
        # steady state: between 10% and 90% of the payments
        lo = next(t for t, n in samples if n >= args.payments * 0.1)
        hi = next(t for t, n in samples if n >= args.payments * 0.9)
        steady = args.payments * 0.8 / (hi - lo) if hi > lo else float("nan")
        rate = args.payments / (t_done - first) if first is not None else float("nan")
        series = {}
        for line in metrics.splitlines():
            if line and not line.startswith("#") and "{" not in line.split(" ")[0]:
                name, _, val = line.rpartition(" ")
                series[name] = float(val)
        bcount = series.get("orderflow_inventory_batch_size_count", 0)
        bsum = series.get("orderflow_inventory_batch_size_sum", 0)
        tcount = series.get("orderflow_inventory_transaction_duration_seconds_count", 0)
        tsum = series.get("orderflow_inventory_transaction_duration_seconds_sum", 0)
        commits = commits1 - commits0

        print()
        print("=== inventory benchmark ===")
        print(f"payments                      {args.payments} single-item over {args.skus} skus, "
              f"{args.partitions} partitions, OF_INV_BATCH_MAX={args.batch_max}"
              f"{'' if args.workers is None else f', OF_INV_WORKERS={args.workers}'}")
        print(f"(a) pgbench -N -c 8 -j 2      {tps_a:.0f} tps"
              f"{' (concurrently with b)' if args.concurrent else ''}")
        print(f"(b) reservations/s            {rate:.0f}  (first reservation to last; "
              f"steady 10-90%: {steady:.0f}/s)")
        print(f"    ready after               {t_ready:.2f}s, drained after {t_done:.1f}s, "
              f"outbox published after {t_published:.1f}s")
        print(f"ratio (b)/(a)                 {rate / tps_a:.2f}  (goal >= 2)")
        print(f"commits per reservation       {commits / args.payments:.4f}  "
              f"({commits} xact_commit in inventory's database, "
              f"{bcount:.0f} batch transactions, mean batch {bsum / bcount if bcount else 0:.1f})")
        print(f"mean transaction              {1000 * tsum / tcount if tcount else 0:.1f} ms "
              f"({tsum:.1f}s of {t_done - (first or 0):.1f}s draining in batch transactions)")
        print(f"CPU while draining            inventory {inv_cpu:.1f}s, PostgreSQL {pg_cpu:.1f}s "
              f"(live processes), Kafka {kafka_cpu:.1f}s; load average {os.getloadavg()[0]:.1f}")
        print(f"peak RSS (VmHWM)              {hwm / 1024:.1f} MiB  (goal < 32 MiB)")
        print(f"fulfilled / conserved / exit  {fulfilled} / {conserved} / {rc}")
        return 0
    finally:
        if inv is not None:
            inv.kill()
        kafka.close()
        pg.destroy()
        if os.environ.get("BENCH_KEEP"):
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
