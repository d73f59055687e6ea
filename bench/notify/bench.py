#!/usr/bin/env python3
"""notify benchmark (printed, not asserted).

In one run, on this machine:
  (a) wrk's maximum request rate against the local C sink (sink.c);
  (b) notify draining a pre-filled order.fulfilled backlog of N events with
      3 channels each (email, sms, webhook) into the same sink, clean;
  (c) the same with the sink failing 10% of requests with 503 (transient):
      goodput = deliveries that ended 2xx per second until all are done.
(b) and (c) run for notify (C) and for its Go peer (go-notify, built with
`go build` from ../shared/peers/go-notify or --peer-dir, into the work
dir) on the same broker and PostgreSQL, in interleaved pairs (C Go, Go C,
...), each on the same event backlog, fresh topics and database.
Prints rates, CPU per delivery (machine, process, PostgreSQL, Kafka, sink)
and peak RSS of both, the C/Go ratios (medians over the pairs), the
ratios (b)/(a) and (c)/(b), and notify's RSS.

Starts its own Kafka broker and PostgreSQL through the system-test harness
(tests/system/harness) and stops them at the end.

  .venv/bin/python bench/notify/bench.py [--events 50000] [--bin-dir DIR]

--bin-dir (or OF_BIN_DIR) selects the notify binary; by default a Release
build is made in build-bench/. --peer-dir (or OF_BENCH_GO_NOTIFY_DIR) the Go
peer's source; --no-peer runs C only.
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
WRAP: list[str] = []  # --wrap: a command line prefix for notify (profilers)
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


def make_backlog(n: int) -> list[tuple[str, dict]]:
    """n order.fulfilled events (key, value), 3 channels each; generated
    once per benchmark so that every run drains the same backlog."""
    out = []
    for i in range(n):
        oid = f"ord_bench_{i:07d}"
        v = {"event_id": str(uuid.uuid4()), "order_id": oid, "payment_id": f"pay_{i:07d}",
             "payment_event_id": str(uuid.uuid4()),
             "items": [{"sku": "SKU-RED-MUG", "qty": 2, "stock_version": i + 1}],
             "customer": {"id": f"cus_{i % 1000}", "email": f"c{i}@example.com",
                          "phone": "+4915112345678", "webhook_url": ""},
             "fulfilled_at": "2026-11-22T10:00:01Z",
             "payment_received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        out.append((oid, v))
    return out


def prefill(bootstrap: str, topic: str, backlog: list[tuple[str, dict]], webhook: str) -> float:
    """Produces the backlog, each event's customer webhook_url set to this
    run's sink."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 200000, "compression.type": "lz4",
                  "enable.idempotence": True, "acks": "all"})
    t0 = time.monotonic()
    for oid, v in backlog:
        v["customer"]["webhook_url"] = webhook
        produce_event(p, topic, oid, v)
    left = p.flush(60)
    if left:
        raise RuntimeError(f"prefill: {left} records not acknowledged")
    return time.monotonic() - t0


def build_peer(peer_dir: Path, work: Path) -> Path:
    """go build of the Go peer into the work dir (a temporary directory,
    never the peer's read-only source or this repository); its modules come
    from the Go module proxy."""
    out = work / "go-notify"
    go = shutil.which("go") or "/usr/local/go/bin/go"
    env = dict(os.environ, GOFLAGS=(os.environ.get("GOFLAGS", "") + " -buildvcs=false").strip())
    r = subprocess.run([go, "build", "-trimpath", "-o", str(out), "."], cwd=peer_dir, env=env,
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"go build in {peer_dir} failed: {(r.stdout + r.stderr)[-500:]}")
    return out


def default_peer_dir() -> Path | None:
    """$OF_BENCH_GO_NOTIFY_DIR, else shared/peers/go-notify beside this
    checkout or beside the repository it was cloned from (bench/run in a
    fresh clone of /work/main finds /work/shared/peers/go-notify)."""
    roots = [REPO.parent]
    origin = subprocess.run(["git", "-C", str(REPO), "remote", "get-url", "origin"],
                            capture_output=True, text=True).stdout.strip().removeprefix("file://")
    if origin.startswith("/"):
        roots.append(Path(origin).resolve().parent)
    for d in [os.environ.get("OF_BENCH_GO_NOTIFY_DIR")] + \
             [str(r / "shared" / "peers" / "go-notify") for r in roots]:
        if d and (Path(d) / "go.mod").is_file():
            return Path(d)
    return None


def apply_migrations(pg: Postgres, db: str) -> None:
    """The Go peer applies no migrations: deploy/sql/*.sql, in order, as
    the C services do at start."""
    import psycopg
    with psycopg.connect(pg.dsn_for(db), autocommit=True) as c:
        for f in sorted((REPO / "deploy" / "sql").glob("*.sql")):
            c.execute(f.read_text())


class DlqCounter:
    """Records in the run's DLQ topic (sum of its partitions' high
    watermarks), for both implementations (the Go peer has no /metrics).
    One client for the whole run: a new one per query cost the broker a
    connection, a metadata request and six ListOffsets each time."""

    def __init__(self, bootstrap: str, topic: str):
        from confluent_kafka import Consumer, TopicPartition
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-dlq-count"})
        self.tps = [TopicPartition(topic, i) for i in range(PARTITIONS)]

    def count(self) -> int:
        return sum(self.c.get_watermark_offsets(tp, timeout=5)[1] for tp in self.tps)

    def close(self) -> None:
        self.c.close()


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


def run_notify(impl: str, binary: Path, kafka: KafkaBroker, pg: Postgres, sink_bin: Path,
               fail_pct: int, backlog: list[tuple[str, dict]], work: Path, label: str) -> dict:
    """One drain of the backlog by impl ("c": notify, "go": the Go peer)
    into a fresh sink failing fail_pct % of requests."""
    prefix = f"b{uuid.uuid4().hex[:8]}."
    tiers = 3
    events = len(backlog)
    topics = [f"{prefix}{t}" for t in ("order.fulfilled", "order.compensation", "notify.dlq")] + \
             [f"{prefix}notify.retry.{i}" for i in range(1, tiers + 1)]
    kafka.create_topics(topics, partitions=PARTITIONS)
    db = pg.create_database()
    if impl == "go":
        apply_migrations(pg, db)
    sink = Sink(sink_bin, fail_pct)
    want = events * CHANNELS

    def cpu_split() -> dict[str, float]:
        """CPU seconds so far of each process the drain keeps busy."""
        return {"notify": cpu_seconds(svc_pid()), "kafka": tree_cpu_seconds(kafka.pid),
                "postgres": tree_cpu_seconds(pg.postmaster_pid),
                "sink": cpu_seconds(sink.proc.pid)}

    try:
        t_fill = prefill(kafka.bootstrap, f"{prefix}order.fulfilled", backlog, f"{sink.url}/webhook")
        port = free_port()
        env = notify_env(kafka, pg, db, port, prefix, {
            "OF_NOTIFY_EMAIL_URL": f"{sink.url}/email", "OF_NOTIFY_SMS_URL": f"{sink.url}/sms",
            "OF_NOTIFY_WEBHOOK_URL": f"{sink.url}/webhook",
            "OF_NOTIFY_RETRY_DELAYS": RETRY_DELAYS,
            # the events' customer.webhook_url is the loopback sink
            "OF_NOTIFY_WEBHOOK_ALLOW": "127.0.0.1/32",
            # Every customer's webhook here is the one sink: with the
            # per-destination defaults (8 in flight, 64 queued) a third of
            # the deliveries were deferred to notify.retry.1 as "destination
            # busy" in a clean run (32,137 of 60,000). The Go peer has only
            # the per-channel limit (32), so both get the same concurrency.
            "OF_NOTIFY_DEST_MAX_INFLIGHT": "32",
            "OF_NOTIFY_DEST_MAX_QUEUED": "100000",
        })
        log = open(work / f"notify-{label}.log", "w")
        t_start = time.monotonic()
        wrap = WRAP if impl in ("c", "b") and label != "warmup" else []
        cg_out = next((w.split("=", 1)[1] for w in wrap
                       if w.startswith("--callgrind-out-file=")), None)
        proc = subprocess.Popen(wrap + [str(binary)], env=env, stdout=log, stderr=subprocess.STDOUT)

        def svc_pid() -> int:
            """The service's pid: the wrapper's child when wrapped (perf,
            strace), else the process started."""
            if wrap:
                try:
                    kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                    if kids:
                        return int(kids[0])
                except OSError:
                    pass
            return proc.pid

        first = None
        rss_max = 0
        rss_start = 0
        deadline = time.monotonic() + 900
        ok = 0
        dead = 0
        dead_at = 0.0
        dlq = None
        timeline = []  # (s since start, 2xx at the sink, sink requests, dead-lettered)
        while time.monotonic() < deadline:
            st = sink.stats() or {}
            ok = st.get("ok", 0)
            g = notify_gauges(port) if impl != "go" else {}
            now = time.monotonic()
            if fail_pct and (now - dead_at >= 2.0 or ok + dead >= want - 200):
                if dlq is None:
                    dlq = DlqCounter(kafka.bootstrap, f"{prefix}notify.dlq")
                dead = dlq.count()
                dead_at = now
            timeline.append((round(now - t_start, 2), ok, st.get("requests", 0), dead,
                             int(g.get("pending", 0)), int(g.get("inflight", 0)),
                             int(g.get("held", 0)))
                            + tuple(int(g.get("st_" + x, 0)) for x in STAGES)
                            + (round(cpu_seconds(svc_pid()), 2),
                               round(tree_cpu_seconds(kafka.pid), 2),
                               round(tree_cpu_seconds(pg.postmaster_pid), 2)))
            if first is None and ok > 0:
                first = now
                busy0 = machine_busy_seconds()
                cpu0 = cpu_split()
                first_ok = ok
                rss_start = proc_status(svc_pid()).get("VmRSS", 0)
                if cg_out:
                    subprocess.run(["callgrind_control", "-z", str(svc_pid())],
                                   capture_output=True, timeout=60)
            rss_max = max(rss_max, proc_status(svc_pid()).get("VmRSS", 0))
            if ok + dead >= want:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{label} exited with {proc.returncode}; see {log.name}")
            time.sleep(0.2)
        t_end = time.monotonic()
        ir = None
        if cg_out:
            # instructions from the first delivery to the last
            subprocess.run(["callgrind_control", "-d", str(svc_pid())], capture_output=True,
                           timeout=120)
            dumps = sorted(Path(cg_out).parent.glob(Path(cg_out.replace("%p", str(svc_pid()))).name
                                                    + "*"), key=lambda f: f.stat().st_mtime)
            for line in (dumps[-1].read_text().splitlines() if dumps else []):
                if line.startswith(("summary:", "totals:")):
                    ir = int(line.split()[1])
        busy = machine_busy_seconds() - busy0
        cpu1 = cpu_split()
        cpu = cpu1["notify"]
        hwm = proc_status(svc_pid()).get("VmHWM", 0)
        st = sink.stats() or {}
        opens = 0
        if impl != "go":
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    (work / f"metrics-{label}.txt").write_bytes(r.read())
            except OSError:
                pass
            try:
                text = (work / f"metrics-{label}.txt").read_text()
                opens = int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                if line.startswith("orderflow_notify_breaker_transitions_total{")
                                and 'to="open"' in line))
            except (OSError, ValueError):
                pass
        (work / f"timeline-{label}.txt").write_text(
            "t_s ok requests dead pending inflight held " + " ".join(STAGES) +
            " cpu_service cpu_kafka cpu_pg\n" +
            "".join(" ".join(str(x) for x in row) + "\n" for row in timeline))
        if dlq is not None:
            dlq.close()
        os.kill(svc_pid(), signal.SIGTERM)
        rc = proc.wait(120)
        if ok + dead < want:
            raise RuntimeError(f"{label}: only {ok} of {want} deliveries within the deadline")
        drain = t_end - first
        return {"label": label, "impl": impl, "fail_pct": fail_pct, "events": events,
                "deliveries": want, "prefill_s": t_fill, "prefill_rate": events / t_fill,
                "startup_s": first - t_start, "drain_s": drain,
                "rate": (ok - first_ok) / drain if drain > 0 else float("inf"),
                "delivered": ok, "dead": dead,
                "requests": st.get("requests"), "failed": st.get("failed"),
                "ir_per_delivery": ir / (ok - first_ok) if ir and ok > first_ok else None,
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
    ap.add_argument("--pairs", type=int, default=3,
                    help="interleaved clean C/Go pairs (ABBA order)")
    ap.add_argument("--fail-pairs", type=int, default=2,
                    help="interleaved pairs with 10 %% transient failures")
    ap.add_argument("--peer-dir", default=None,
                    help="the Go peer's source (default: $OF_BENCH_GO_NOTIFY_DIR, or "
                         "shared/peers/go-notify beside this checkout or its origin)")
    ap.add_argument("--no-peer", action="store_true", help="C only")
    ap.add_argument("--ab-bin", default=None,
                    help="A/B: a second notify binary run in the Go peer's place "
                         "(interleaved pairs, same settings)")
    ap.add_argument("--warmup-events", type=int, default=5000,
                    help="an unmeasured drain of this many events first (0: none)")
    ap.add_argument("--wrap", default="",
                    help="run notify (C, measured runs) under this command, e.g. "
                         "\"perf record -g -o /tmp/p.data --\" or \"strace -c -f -o /tmp/s.txt\" "
                         "(the process CPU figures are then the wrapper's)")
    ap.add_argument("--log-level", default="warn", help="notify's OF_LOG_LEVEL")
    ap.add_argument("--env", action="append", default=[],
                    help="extra NAME=VALUE for notify (repeatable)")
    args = ap.parse_args()
    global EXTRA_ENV, DSN_EXTRA, RETRY_DELAYS, WRAP
    WRAP = args.wrap.split()
    DSN_EXTRA = args.dsn_extra
    RETRY_DELAYS = args.retry_delays
    EXTRA_ENV = dict(e.split("=", 1) for e in args.env)
    EXTRA_ENV.setdefault("OF_LOG_LEVEL", args.log_level)
    work = Path(tempfile.mkdtemp(prefix="ntf-bench-"))
    notify, sink_bin = build(args.bin_dir, work)
    peer, peer_error = None, None
    if not args.destinations and not args.no_peer and not args.ab_bin:
        pdir = Path(args.peer_dir) if args.peer_dir else default_peer_dir()
        if pdir is None:
            peer_error = ("no Go peer source (--peer-dir, $OF_BENCH_GO_NOTIFY_DIR, "
                          "../shared/peers/go-notify)")
        else:
            try:
                peer = build_peer(pdir, work)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                peer_error = str(e)
        if peer_error:
            print(f"go-notify: not run: {peer_error}", flush=True)
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
        backlog = make_backlog(args.events)
        if args.warmup_events:
            # not measured: the broker's JIT, PostgreSQL's caches, the first
            # group coordinator load
            run_notify("c", notify, kafka, pg, sink_bin, 0, backlog[:args.warmup_events], work,
                       "warmup")
        runs: list[dict] = []
        # interleaved pairs, ABBA: C Go, Go C, C Go, ...
        for fail_pct, npairs in ((0, args.pairs), (10, args.fail_pairs)):
            for k in range(npairs):
                other = "b" if args.ab_bin else "go"
                order = ["c", other] if k % 2 == 0 else [other, "c"]
                for impl in order:
                    if impl == "go" and not peer:
                        continue
                    label = f"{'clean' if fail_pct == 0 else 'fail10'}-{impl}-{k + 1}"
                    binary = {"c": notify, "go": peer, "b": Path(args.ab_bin or "-")}[impl]
                    r = run_notify(impl, binary, kafka, pg, sink_bin,
                                   fail_pct, backlog, work, label)
                    runs.append(r)
                    print_run(r)
    finally:
        kafka.close()
        pg.destroy()
    summary = summarize(runs, wrk_rate, peer_error)
    print_summary(summary)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          f"at the end (other work shares the cores)")
    print("summary-json: " + json.dumps(summary, separators=(",", ":")))
    if args.keep:
        print(f"work dir (logs): {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


IMPL_NAME = {"c": "notify", "go": "go-notify", "b": "notify-B"}


def per_dlv_us(r: dict) -> dict[str, float]:
    """CPU per delivery (us) from the first delivery to the last: machine
    (all cores, whatever ran), stack (the benchmark's processes: the
    service, PostgreSQL, Kafka, the sink), and each of them."""
    n = r["deliveries"]
    c = r["drain_cpu_s"]
    out = {"machine": r["machine_busy_s"] / n * 1e6, "stack": sum(c.values()) / n * 1e6}
    out.update({("process" if k == "notify" else k): v / n * 1e6 for k, v in c.items()})
    return out


def print_run(r: dict) -> None:
    name = IMPL_NAME[r["impl"]]
    print(f"run {r['label']}: {name} {r['deliveries']:,} deliveries "
          f"({r['events']:,} events x {CHANNELS}) in {r['drain_s']:.1f} s = {r['rate']:,.0f}/s "
          f"[2xx {r['delivered']:,}, dead-lettered {r['dead']:,}; sink requests {r['requests']:,}, "
          f"503s {r['failed']:,}; breaker opened {r['breaker_opens']}x; startup {r['startup_s']:.1f} s; "
          f"process CPU {r['cpu_s']:.1f} s, all cores busy {r['machine_busy_s']:.1f} s of "
          f"{(os.cpu_count() or 1) * r['drain_s']:.1f}; RSS at first delivery "
          f"{r['rss_start_kib'] / 1024:.1f} MiB, max {r['rss_max_kib'] / 1024:.1f} MiB, "
          f"peak (VmHWM) {r['hwm_kib'] / 1024:.1f} MiB; exit {r['exit']}; "
          f"prefill {r['prefill_rate']:,.0f} events/s]", flush=True)
    u = per_dlv_us(r)
    print("    CPU per delivery: " + ", ".join(f"{k} {v:.1f} us" for k, v in u.items())
          + (f"; instructions per delivery (callgrind, notify) {r['ir_per_delivery']:,.0f}"
             if r.get("ir_per_delivery") else ""), flush=True)


def median(xs: list[float]) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def summarize(runs: list[dict], wrk_rate: float, peer_error: str | None) -> dict:
    """Medians per (implementation, run kind) and the C/Go ratios."""
    out: dict = {"wrk_rps": wrk_rate, "peer_error": peer_error, "runs": []}
    for r in runs:
        out["runs"].append({"label": r["label"], "impl": r["impl"], "fail_pct": r["fail_pct"],
                            "rate": r["rate"], "hwm_mib": r["hwm_kib"] / 1024,
                            "breaker_opens": r["breaker_opens"], "dead": r["dead"],
                            "us": per_dlv_us(r)})
    for kind, fp in (("clean", 0), ("fail10", 10)):
        for impl in ("c", "go", "b"):
            rs = [x for x in out["runs"] if x["impl"] == impl and x["fail_pct"] == fp]
            if not rs:
                continue
            keys = rs[0]["us"].keys()
            out[f"{kind}_{impl}"] = {
                "n": len(rs), "rate": median([x["rate"] for x in rs]),
                "hwm_mib": max(x["hwm_mib"] for x in rs),
                "us": {k: median([x["us"][k] for x in rs]) for k in keys}}
    other = "b" if any(x["impl"] == "b" for x in out["runs"]) else "go"
    c, g = out.get("clean_c"), out.get(f"clean_{other}")

    def q(a, b):
        return a / b if a is not None and b else None
    if c and g:
        out["ratio_rate"] = q(c["rate"], g["rate"])
        for k in c["us"]:
            out[f"ratio_us_{k}"] = q(c["us"][k], g["us"][k])
        out["ratio_rss"] = q(c["hwm_mib"], g["hwm_mib"])
        pairs = [(x, y) for x in out["runs"] for y in out["runs"]
                 if x["fail_pct"] == 0 == y["fail_pct"] and x["impl"] == "c" and y["impl"] == other
                 and x["label"].rsplit("-", 1)[1] == y["label"].rsplit("-", 1)[1]]
        out["pair_ratio_rate"] = [x["rate"] / y["rate"] for x, y in pairs]
        out["pair_ratio_machine_us"] = [x["us"]["machine"] / y["us"]["machine"] for x, y in pairs]
    if c:
        out["ratio_wrk"] = q(c["rate"], wrk_rate)
    f = out.get("fail10_c")
    if c and f:
        out["ratio_goodput"] = q(f["rate"], c["rate"])
    fg = out.get(f"fail10_{other}")
    if g and fg:
        out["ratio_goodput_go"] = q(fg["rate"], g["rate"])
    out["rss_mib"] = max([x["hwm_mib"] for x in out["runs"] if x["impl"] == "c"], default=None)
    return out


def print_summary(s: dict) -> None:
    def f(v, d=0):
        return "n/a" if v is None else f"{v:,.{d}f}"
    print(f"summary (medians over the runs of each kind; CPU in us per delivery, from the first "
          f"delivery to the last):")
    print(f"    {'':24} {'deliveries/s':>12} {'machine':>8} {'stack':>8} {'process':>8} "
          f"{'postgres':>8} {'kafka':>8} {'sink':>8} {'peak RSS':>9}")
    for kind in ("clean", "fail10"):
        for impl in ("c", "go", "b"):
            x = s.get(f"{kind}_{impl}")
            if not x:
                continue
            u = x["us"]
            print(f"    {IMPL_NAME[impl] + ' ' + kind + ' (' + str(x['n']) + ')':24} "
                  f"{f(x['rate']):>12} {f(u['machine'], 1):>8} {f(u['stack'], 1):>8} "
                  f"{f(u['process'], 1):>8} {f(u['postgres'], 1):>8} {f(u['kafka'], 1):>8} "
                  f"{f(u['sink'], 1):>8} {f(x['hwm_mib'], 1):>5} MiB")
    c = s.get("clean_c") or {}
    f10 = s.get("fail10_c") or {}
    if c:
        print(f"(b) notify clean: {f(c['rate'])}/s (median of {c['n']})")
    if s.get("clean_go"):
        print(f"(b') go-notify clean: {f(s['clean_go']['rate'])}/s (median of {s['clean_go']['n']})")
    elif s.get("peer_error"):
        print(f"(b') go-notify: not run: {s['peer_error']}")
    if f10:
        print(f"(c) notify fail10: {f(f10['rate'])}/s (median of {f10['n']})")
    if s.get("fail10_go"):
        print(f"(c') go-notify fail10: {f(s['fail10_go']['rate'])}/s")
    if s.get("ratio_rate") is not None:
        if s.get("clean_b"):
            print("(A = notify, B = notify-B: the ratios below are A/B)")
        print(f"ratio C/Go deliveries/s = {s['ratio_rate']:.2f}  (goal >= 1.5; pairs: "
              + ", ".join(f"{x:.2f}" for x in s["pair_ratio_rate"]) + ")")
        print(f"ratio C/Go machine CPU per delivery = {s['ratio_us_machine']:.2f}  (goal <= 0.6; "
              f"pairs: " + ", ".join(f"{x:.2f}" for x in s["pair_ratio_machine_us"]) + ")")
        print(f"ratio C/Go stack CPU per delivery = {s['ratio_us_stack']:.2f}")
        print(f"ratio C/Go process CPU per delivery = {s['ratio_us_process']:.2f}")
        print(f"ratio C/Go PostgreSQL CPU per delivery = {s['ratio_us_postgres']:.2f}")
        print(f"ratio C/Go peak RSS = {s['ratio_rss']:.2f}")
    if s.get("ratio_wrk") is not None:
        print(f"ratio (b)/(a) = {s['ratio_wrk']:.2f}  (goal >= 0.70)")
    if s.get("ratio_goodput") is not None:
        print(f"ratio (c)/(b) = {s['ratio_goodput']:.2f}  (goal >= 0.85)")
    if s.get("ratio_goodput_go") is not None:
        print(f"ratio (c')/(b') = {s['ratio_goodput_go']:.2f}  (the Go peer's)")
    if s.get("rss_mib") is not None:
        print(f"notify peak RSS = {s['rss_mib']:.1f} MiB  (goal < 32 MiB)")

if __name__ == "__main__":
    sys.exit(main())
