#!/usr/bin/env python3
"""notify benchmark (printed, not asserted).

In one run, on this machine:
  (a) wrk's maximum request rate against the local C sink (sink.c);
  (b) notify draining a pre-filled order.fulfilled backlog of N events with
      3 channels each (email, sms, webhook) into the same sink, clean;
  (c) the same with the sink failing 10% of requests with 503 (transient):
      goodput = deliveries that ended 2xx per second until all are done.
Prints rates, the ratios (b)/(a) and (c)/(b), and notify's RSS.

Starts its own Kafka broker and PostgreSQL through the system-test harness
(tests/system/harness) and stops them at the end.

  .venv/bin/python bench/notify/bench.py [--events 50000] [--bin-dir DIR]

--bin-dir (or OF_BIN_DIR) selects the notify binary; by default a Release
build is made in build-bench/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "system"))
sys.path.insert(0, str(REPO / "bench" / "lib"))

from confluent_kafka import Producer  # noqa: E402

from benchlib import cpu_seconds, machine_busy_seconds, tree_cpu_seconds  # noqa: E402
from harness.kafka import KafkaBroker  # noqa: E402
from harness.pg import Postgres  # noqa: E402
from harness.util import free_port, free_ports, wait_until  # noqa: E402

PARTITIONS = 6
CHANNELS = 3
EXTRA_ENV: dict[str, str] = {}
DSN_EXTRA = ""
RETRY_DELAYS = "250ms,250ms,250ms"
# notify's orderflow_notify_deliveries_in_process stages, in the timeline
STAGES = ("check", "waiting", "queued", "sending", "producing", "recording")


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def build(bin_dir: str | None, work: Path) -> tuple[Path, Path]:
    """Returns (notify binary, sink binary)."""
    if bin_dir:
        notify = Path(bin_dir) / "notify"
    else:
        bdir = REPO / "build-bench"
        sh("cmake", "-S", str(REPO), "-B", str(bdir), "-DCMAKE_BUILD_TYPE=Release",
           stdout=subprocess.DEVNULL)
        sh("cmake", "--build", str(bdir), "-j2", "--target", "notify", stdout=subprocess.DEVNULL)
        notify = bdir / "bin" / "notify"
    sink = work / "sink"
    sh("cc", "-O2", "-std=c17", "-D_GNU_SOURCE", str(HERE / "sink.c"), "-o", str(sink),
       "-lmicrohttpd")
    return notify, sink


class Sink:
    def __init__(self, binary: Path, fail_pct: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(binary), str(self.port), str(fail_pct)],
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: self.stats() is not None, timeout=10)

    def stats(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"{self.url}/stats", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def wrk_max_rate(sink: Sink, seconds: int) -> float:
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", "-s", str(HERE / "post.lua"),
                          f"{sink.url}/email"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return float(m.group(1))


def produce_event(p: Producer, topic: str, oid: str, v: dict) -> None:
    """Produces one order.fulfilled outcome event with its CloudEvents
    headers, waiting while the producer's queue is full."""
    hdrs = [("ce_specversion", b"1.0"), ("ce_id", v["event_id"].encode()),
            ("ce_type", b"order.fulfilled.v1"), ("ce_source", b"/inventory"),
            ("ce_time", b"2026-11-22T10:00:01Z"), ("content-type", b"application/json")]
    while True:
        try:
            p.produce(topic, key=oid, value=json.dumps(v, separators=(",", ":")), headers=hdrs)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)


def prefill(bootstrap: str, topic: str, n: int, webhook: str) -> float:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 200000, "compression.type": "lz4",
                  "enable.idempotence": True, "acks": "all"})
    t0 = time.monotonic()
    for i in range(n):
        oid = f"ord_bench_{i:07d}"
        ev = str(uuid.uuid4())
        v = {"event_id": ev, "order_id": oid, "payment_id": f"pay_{i:07d}",
             "payment_event_id": str(uuid.uuid4()),
             "items": [{"sku": "SKU-RED-MUG", "qty": 2, "stock_version": i + 1}],
             "customer": {"id": f"cus_{i % 1000}", "email": f"c{i}@example.com",
                          "phone": "+4915112345678", "webhook_url": webhook},
             "fulfilled_at": "2026-11-22T10:00:01Z",
             "payment_received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        produce_event(p, topic, oid, v)
    left = p.flush(60)
    if left:
        raise RuntimeError(f"prefill: {left} records not acknowledged")
    return time.monotonic() - t0


def notify_gauges(port: int) -> dict[str, float]:
    """From notify's /metrics: dead-lettered deliveries (dlq), records in
    process (pending) and HTTP requests in flight (inflight)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {"dlq": 0.0, "pending": 0.0, "inflight": 0.0, "held": 0.0}
    for line in text.splitlines():
        if line.startswith("orderflow_notify_deliveries_in_process{"):
            stage = line.split('stage="', 1)[1].split('"', 1)[0]
            out["st_" + stage] = float(line.rsplit(" ", 1)[1])
            continue
        if line.startswith("orderflow_notify_held_records "):
            out["held"] = float(line.rsplit(" ", 1)[1])
            continue
        for key, prefix in (("dlq", "orderflow_notify_dlq_total{"),
                            ("pending", "orderflow_notify_pending_records"),
                            ("inflight", "orderflow_notify_inflight_requests{")):
            if line.startswith(prefix):
                out[key] += float(line.rsplit(" ", 1)[1])
    return out


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])  # KiB
    except OSError:
        pass
    return out


def notify_env(kafka: KafkaBroker, pg: Postgres, db: str, port: int, prefix: str,
               extra: dict[str, str]) -> dict[str, str]:
    """notify's environment: the inherited one without OF_*, the stack's
    settings, `extra`, then the command line's --env (EXTRA_ENV)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OF_")}
    env.update({
        "OF_KAFKA_BROKERS": kafka.bootstrap, "OF_PG_DSN": (pg.dsn_for(db) + " " + DSN_EXTRA).strip(),
        "OF_HTTP_PORT": str(port), "OF_TOPIC_PREFIX": prefix,
        "OF_NOTIFY_SECRET": "bench-secret",
        "OF_MIGRATIONS_DIR": str(REPO / "deploy" / "sql"),
    })
    env.update(extra)
    env.update(EXTRA_ENV)
    return env


def run_notify(notify: Path, kafka: KafkaBroker, pg: Postgres, sink_bin: Path, fail_pct: int,
               events: int, work: Path, label: str) -> dict:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    tiers = 3
    topics = [f"{prefix}{t}" for t in ("order.fulfilled", "order.compensation", "notify.dlq")] + \
             [f"{prefix}notify.retry.{i}" for i in range(1, tiers + 1)]
    kafka.create_topics(topics, partitions=PARTITIONS)
    db = pg.create_database()
    sink = Sink(sink_bin, fail_pct)
    want = events * CHANNELS

    def cpu_split() -> dict[str, float]:
        """CPU seconds so far of each process the drain keeps busy."""
        return {"notify": cpu_seconds(proc.pid), "kafka": tree_cpu_seconds(kafka.pid),
                "postgres": tree_cpu_seconds(pg.postmaster_pid),
                "sink": cpu_seconds(sink.proc.pid)}

    try:
        t_fill = prefill(kafka.bootstrap, f"{prefix}order.fulfilled", events, f"{sink.url}/webhook")
        port = free_port()
        env = notify_env(kafka, pg, db, port, prefix, {
            "OF_NOTIFY_EMAIL_URL": f"{sink.url}/email", "OF_NOTIFY_SMS_URL": f"{sink.url}/sms",
            "OF_NOTIFY_WEBHOOK_URL": f"{sink.url}/webhook",
            "OF_NOTIFY_RETRY_DELAYS": RETRY_DELAYS,
            # the events' customer.webhook_url is the loopback sink
            "OF_NOTIFY_WEBHOOK_ALLOW": "127.0.0.1/32",
        })
        log = open(work / f"notify-{label}.log", "w")
        t_start = time.monotonic()
        proc = subprocess.Popen([str(notify)], env=env, stdout=log, stderr=subprocess.STDOUT)
        first = None
        rss_max = 0
        rss_start = 0
        deadline = time.monotonic() + 900
        ok = 0
        dead = 0
        timeline = []  # (s since start, 2xx at the sink, sink requests, dead-lettered)
        while time.monotonic() < deadline:
            st = sink.stats() or {}
            ok = st.get("ok", 0)
            g = notify_gauges(port)
            dead = int(g.get("dlq", dead))
            now = time.monotonic()
            timeline.append((round(now - t_start, 2), ok, st.get("requests", 0), dead,
                             int(g.get("pending", 0)), int(g.get("inflight", 0)),
                             int(g.get("held", 0)))
                            + tuple(int(g.get("st_" + x, 0)) for x in STAGES))
            if first is None and ok > 0:
                first = now
                busy0 = machine_busy_seconds()
                cpu0 = cpu_split()
                first_ok = ok
                rss_start = proc_status(proc.pid).get("VmRSS", 0)
            rss_max = max(rss_max, proc_status(proc.pid).get("VmRSS", 0))
            if ok + dead >= want:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"notify exited with {proc.returncode}; see {log.name}")
            time.sleep(0.2)
        t_end = time.monotonic()
        busy = machine_busy_seconds() - busy0
        cpu1 = cpu_split()
        cpu = cpu1["notify"]
        hwm = proc_status(proc.pid).get("VmHWM", 0)
        st = sink.stats() or {}
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                (work / f"metrics-{label}.txt").write_bytes(r.read())
        except OSError:
            pass
        opens = 0
        try:
            text = (work / f"metrics-{label}.txt").read_text()
            opens = int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                            if line.startswith("orderflow_notify_breaker_transitions_total{")
                            and 'to="open"' in line))
        except (OSError, ValueError):
            pass
        (work / f"timeline-{label}.txt").write_text(
            "t_s ok requests dead pending inflight held " + " ".join(STAGES) + "\n" +
            "".join(" ".join(str(x) for x in row) + "\n" for row in timeline))
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        if ok + dead < want:
            raise RuntimeError(f"{label}: only {ok} of {want} deliveries within the deadline")
        drain = t_end - first
        return {"label": label, "events": events, "deliveries": want,
                "prefill_s": t_fill, "prefill_rate": events / t_fill,
                "startup_s": first - t_start, "drain_s": drain,
                "rate": (ok - first_ok) / drain if drain > 0 else float("inf"),
                "delivered": ok, "dead": dead,
                "requests": st.get("requests"), "failed": st.get("failed"),
                "breaker_opens": opens, "machine_busy_s": busy, "rss_max_kib": rss_max, "rss_start_kib": rss_start, "hwm_kib": hwm, "cpu_s": cpu, "exit": rc,
                # CPU seconds of each process from the first delivery to the last
                "drain_cpu_s": {k: cpu1[k] - cpu0[k] for k in cpu1}}
    finally:
        sink.stop()
        try:
            kafka.delete_topics(topics)
            pg.drop_database(db)
        except Exception:  # noqa: BLE001
            pass


# --- destinations: 1,000 customers, some of whose webhooks are broken -------

CUSTOMERS = 1000
REFUSED_URL = "http://127.0.0.253:1"  # nothing listens: connection refused
SLOW_HOST = "127.0.0.254"             # a sink answering after 5 s


def customer_url(i: int, faulty: bool, healthy_port: int, slow_port: int, kind: str,
                 t_ms: int) -> str:
    """Customer i's webhook. 90 % (i % 100 < 90) are the measured customers,
    spread over 225 destinations 127.0.0.2-226 of the healthy sink (path
    /g/ or /h/ by phase); in the faulty run 5 % point at REFUSED_URL and
    5 % at the slow sink, in the healthy run at the healthy sink (/x/)."""
    c = i % CUSTOMERS
    if c % 100 < 90:
        return f"http://127.0.0.{2 + c % 225}:{healthy_port}/{kind}/c{c}?t={t_ms}"
    if not faulty:
        return f"http://127.0.0.{2 + c % 225}:{healthy_port}/x/c{c}?t={t_ms}"
    if c % 100 < 95:
        return f"{REFUSED_URL}/x/c{c}"
    return f"http://{SLOW_HOST}:{slow_port}/x/c{c}"


def dest_events(p: Producer, topic: str, first: int, n: int, url_of) -> None:
    for i in range(first, first + n):
        oid = f"ord_d_{i:07d}"
        ev = str(uuid.uuid4())
        now = int(time.time() * 1000)
        v = {"event_id": ev, "order_id": oid, "payment_id": f"pay_{i:07d}",
             "payment_event_id": str(uuid.uuid4()),
             "items": [{"sku": "SKU-RED-MUG", "qty": 1, "stock_version": i + 1}],
             "customer": {"id": f"cus_{i % CUSTOMERS}", "webhook_url": url_of(i, now)},
             "fulfilled_at": "2026-11-22T10:00:01Z",
             "payment_received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        produce_event(p, topic, oid, v)


def run_destinations(notify: Path, kafka: KafkaBroker, pg: Postgres, sink_bin: Path,
                     work: Path, faulty: bool, backlog: int, rate: int, seconds: int) -> dict:
    """(d) goodput of the measured customers draining a backlog, then
    (e) their delivery latency (sink arrival - produce time) at `rate`
    events/s for `seconds`, with or without the broken destinations."""
    label = "dest-faulty" if faulty else "dest-healthy"
    prefix = f"b{uuid.uuid4().hex[:8]}."
    topics = [f"{prefix}{t}" for t in ("order.fulfilled", "order.compensation", "notify.dlq")] + \
             [f"{prefix}notify.retry.{i}" for i in range(1, 4)]
    kafka.create_topics(topics, partitions=PARTITIONS)
    db = pg.create_database()
    healthy = Sink(sink_bin, 0)
    slow = None
    slow_port = 0
    if faulty:
        slow_port = free_port()
        slow = subprocess.Popen([str(sink_bin), str(slow_port), "0", "5000"],
                                stderr=subprocess.DEVNULL)
    topic = f"{prefix}order.fulfilled"
    measured = lambda n: sum(1 for i in range(n) if i % CUSTOMERS % 100 < 90)  # noqa: E731
    p = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5,
                  "enable.idempotence": True, "acks": "all"})
    dest_events(p, topic, 0, backlog,
                lambda i, t: customer_url(i, faulty, healthy.port, slow_port, "g", t))
    p.flush(60)
    port = free_port()
    env = notify_env(kafka, pg, db, port, prefix, {
        "OF_NOTIFY_RETRY_DELAYS": "1s,5s,30s",
        "OF_NOTIFY_WEBHOOK_ALLOW": "127.0.0.0/8",
    })
    log = open(work / f"notify-{label}.log", "w")
    proc = subprocess.Popen([str(notify)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        want_g = measured(backlog)
        first = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            st = healthy.stats() or {}
            g = st.get("ok_g", 0)
            if first is None and g > 0:
                first, first_g, busy0, cpu0 = (time.monotonic(), g, machine_busy_seconds(),
                                               cpu_seconds(proc.pid))
            if g >= want_g:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"notify exited with {proc.returncode}; see {log.name}")
            time.sleep(0.1)
        drain = time.monotonic() - first
        goodput = (want_g - first_g) / drain
        cpu_drain = cpu_seconds(proc.pid) - cpu0
        busy_drain = machine_busy_seconds() - busy0
        # (e) open loop: `rate` events/s for `seconds`
        n = rate * seconds
        t0 = time.monotonic()
        for k in range(seconds * 10):
            dest_events(p, topic, backlog + k * rate // 10, rate // 10,
                        lambda i, t: customer_url(i, faulty, healthy.port, slow_port, "h", t))
            p.flush(5)
            sleep = t0 + (k + 1) / 10 - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
        want_h = measured(backlog + n) - measured(backlog)
        wait_until(lambda: (healthy.stats() or {}).get("lat_n", 0) >= want_h, timeout=300)
        st = healthy.stats() or {}
        metrics = ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                metrics = r.read().decode()
        except OSError:
            pass
        (work / f"metrics-{label}.txt").write_text(metrics)

        def m(name: str, **labels) -> float:
            tot = 0.0
            for line in metrics.splitlines():
                if (line.startswith(name + "{") or line.startswith(name + " ")) and \
                        all(f'{k}="{v}"' in line for k, v in labels.items()):
                    tot += float(line.rsplit(" ", 1)[1])
            return tot
        return {"label": label, "backlog": backlog, "measured": want_g, "goodput": goodput,
                "drain_s": drain, "cpu_s": cpu_drain, "busy_s": busy_drain,
                "lat_n": st.get("lat_n"), "p50": st.get("lat_p50_ms"), "p99": st.get("lat_p99_ms"),
                "max": st.get("lat_max_ms"), "rate": rate, "seconds": seconds,
                "opens": m("orderflow_notify_breaker_transitions_total", to="open"),
                "deferred": m("orderflow_notify_deliveries_total", result="deferred"),
                "tracked": m("orderflow_notify_destinations_tracked"),
                "dlq": m("orderflow_notify_dlq_total")}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        healthy.stop()
        if slow is not None:
            slow.send_signal(signal.SIGTERM)
            slow.wait(10)
        try:
            kafka.delete_topics(topics)
            pg.drop_database(db)
        except Exception:  # noqa: BLE001
            pass


def print_destinations(h: dict, f: dict) -> None:
    for r in (h, f):
        print(f"({'d' if r is h else 'e'}) {r['label']}: measured customers' goodput "
              f"{r['goodput']:,.0f}/s ({r['measured']:,} deliveries of a {r['backlog']:,}-event "
              f"backlog in {r['drain_s']:.1f} s; notify CPU {r['cpu_s']:.1f} s, all cores "
              f"{r['busy_s']:.1f} s); latency at {r['rate']}/s for {r['seconds']} s: "
              f"p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms, max {r['max']:.0f} ms "
              f"({r['lat_n']:,} deliveries); breaker opens {r['opens']:.0f}, deferred "
              f"{r['deferred']:,.0f}, destinations tracked {r['tracked']:.0f}, DLQ {r['dlq']:,.0f}")
    print(f"ratio goodput healthy/faulty = {h['goodput'] / f['goodput']:.2f}  (goal <= 1.5)")
    print(f"ratio p99 faulty/healthy = {f['p99'] / max(h['p99'], 1):.2f}  (goal <= 1.5)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--bin-dir", default=os.environ.get("OF_BIN_DIR"))
    ap.add_argument("--dsn-extra", default="",
                    help="appended to notify's OF_PG_DSN, e.g. \"options='-c synchronous_commit=off'\"")
    ap.add_argument("--retry-delays", default="250ms,250ms,250ms",
                    help="OF_NOTIFY_RETRY_DELAYS for notify (the last retries "
                         "of the failing run wait these out: a fixed tail)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    ap.add_argument("--destinations", action="store_true",
                    help="only the isolation runs: 1,000 customers' webhooks, 5 %% to a "
                         "destination refusing connections and 5 %% to one answering "
                         "after 5 s, against all healthy")
    ap.add_argument("--dest-backlog", type=int, default=40000)
    ap.add_argument("--dest-rate", type=int, default=200)
    ap.add_argument("--dest-seconds", type=int, default=30)
    ap.add_argument("--log-level", default="warn", help="notify's OF_LOG_LEVEL")
    ap.add_argument("--env", action="append", default=[],
                    help="extra NAME=VALUE for notify (repeatable)")
    args = ap.parse_args()
    global EXTRA_ENV, DSN_EXTRA, RETRY_DELAYS
    DSN_EXTRA = args.dsn_extra
    RETRY_DELAYS = args.retry_delays
    EXTRA_ENV = dict(e.split("=", 1) for e in args.env)
    EXTRA_ENV.setdefault("OF_LOG_LEVEL", args.log_level)
    work = Path(tempfile.mkdtemp(prefix="ntf-bench-"))
    notify, sink_bin = build(args.bin_dir, work)
    kafka = KafkaBroker(work / "kafka")
    pg = Postgres()
    try:
        kafka.fetch()
        kafka.start()
        pg.start()
        if args.destinations:
            dh = run_destinations(notify, kafka, pg, sink_bin, work, False, args.dest_backlog,
                                  args.dest_rate, args.dest_seconds)
            df = run_destinations(notify, kafka, pg, sink_bin, work, True, args.dest_backlog,
                                  args.dest_rate, args.dest_seconds)
            print_destinations(dh, df)
            print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
            if args.keep:
                print(f"work dir (logs): {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
            return 0
        s = Sink(sink_bin, 0)
        try:
            wrk_rate = wrk_max_rate(s, args.wrk_seconds)
        finally:
            s.stop()
        print(f"(a) wrk max rate against the sink: {wrk_rate:,.0f} req/s", flush=True)
        clean = run_notify(notify, kafka, pg, sink_bin, 0, args.events, work, "clean")
        faulty = run_notify(notify, kafka, pg, sink_bin, 10, args.events, work, "fail10")
    finally:
        kafka.close()
        pg.destroy()
    for r in (clean, faulty):
        print(f"({'b' if r is clean else 'c'}) notify {r['label']}: {r['deliveries']:,} deliveries "
              f"({r['events']:,} events x {CHANNELS}) in {r['drain_s']:.1f} s = {r['rate']:,.0f}/s "
              f"[2xx {r['delivered']:,}, dead-lettered {r['dead']:,}; sink requests {r['requests']:,}, "
              f"503s {r['failed']:,}; breaker opened {r['breaker_opens']}x; startup {r['startup_s']:.1f} s; "
              f"notify CPU {r['cpu_s']:.1f} s, all cores busy {r['machine_busy_s']:.1f} s of {(os.cpu_count() or 1) * r['drain_s']:.1f}; RSS at first delivery {r['rss_start_kib'] / 1024:.1f} MiB, max {r['rss_max_kib'] / 1024:.1f} MiB, "
              f"peak (VmHWM) {r['hwm_kib'] / 1024:.1f} MiB; exit {r['exit']}]")
        split = ", ".join(f"{k} {v:.1f} s ({v / r['deliveries'] * 1e6:.0f} us)"
                          for k, v in r["drain_cpu_s"].items())
        print(f"    CPU from the first delivery to the last (per delivery): {split}; "
              f"all cores {r['machine_busy_s']:.1f} s "
              f"({r['machine_busy_s'] / r['deliveries'] * 1e6:.0f} us)")
        print(f"    prefill: {r['events']:,} events in {r['prefill_s']:.1f} s "
              f"({r['prefill_rate']:,.0f}/s)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          f"at the end (other work shares the cores)")
    print(f"ratio (b)/(a) = {clean['rate'] / wrk_rate:.2f}  (goal >= 0.70)")
    print(f"ratio (c)/(b) = {faulty['rate'] / clean['rate']:.2f}  (goal >= 0.85)")
    worst = max(clean["hwm_kib"], faulty["hwm_kib"]) / 1024
    print(f"notify peak RSS = {worst:.1f} MiB  (goal < 32 MiB)")
    if args.keep:
        print(f"work dir (logs): {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
