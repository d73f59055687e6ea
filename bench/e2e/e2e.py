"""End-to-end benchmark: payment-gw -> Kafka -> inventory (PostgreSQL) ->
Kafka -> notify -> a local C sink (e2e_sink.c), on one fresh Kafka and one
fresh PostgreSQL.

An open-loop, constant-rate load generator (OpenLoop) posts signed payments:
order i is *scheduled* at t0 + i/rate and its latency is measured from that
scheduled time, so a slow server delays the clock of nobody (no coordinated
omission). Latency of an order = last of its 3 notifications (email, sms,
webhook) arriving at the sink - scheduled POST time; the sink stamps
CLOCK_MONOTONIC, the same clock as time.monotonic().

run(...) finds the sustained rate (a ramp of constant-rate steps: a step
passes when the generator kept up, >= 99.5 % of orders completed within a
short drain, and latency did not grow from the first to the last quarter of
the step), then measures latency percentiles at fractions of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "system"))
sys.path.insert(0, str(ROOT / "bench" / "lib"))

from benchlib import RssSampler, log, machine_busy_seconds, percentile  # noqa: E402
from harness.kafka import KafkaBroker  # noqa: E402
from harness.pg import Postgres  # noqa: E402
from harness.topics import topic_names  # noqa: E402
from harness.util import free_port, wait_until  # noqa: E402

SECRET = "bench-secret"
ADMIN = "bench-admin"
SKUS = 200
CHANNELS = 3
PARTITIONS = 6


# --- sink -------------------------------------------------------------------------


class Sink:
    def __init__(self, work: Path):
        binary = work / "e2e_sink"
        subprocess.run(["cc", "-O2", "-std=c17", "-D_GNU_SOURCE", str(HERE / "e2e_sink.c"), "-o",
                        str(binary), "-lmicrohttpd", "-lpthread"], check=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "sink.log"
        self.proc = subprocess.Popen([str(binary), str(self.port), str(self.log_path)],
                                     stderr=subprocess.DEVNULL)
        self.offset = 0
        wait_until(lambda: self.requests() is not None, timeout=10)

    def requests(self) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.url}/stats", timeout=2) as r:
                return json.loads(r.read())["requests"]
        except OSError:
            return None

    def read_new(self) -> dict[str, list[float]]:
        """Arrivals (monotonic seconds) per order id since the last call."""
        self.requests()  # flushes the sink's buffer
        out: dict[str, list[float]] = {}
        with open(self.log_path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].decode().splitlines():
            ns, _path, oid = line.split(" ", 2)
            out.setdefault(oid, []).append(int(ns) / 1e9)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# --- load generator ----------------------------------------------------------------


def signed_bodies(n: int, tag: str, sink_url: str) -> list[tuple[str, bytes, str]]:
    """n fresh signed payments: (order_id, body, X-Signature)."""
    t = int(time.time())
    rnd = random.Random()
    out = []
    for i in range(n):
        oid = f"e2e_{tag}_{i}"
        body = json.dumps({
            "payment_id": f"pay_{tag}_{i}_{uuid.uuid4().hex[:8]}",
            "order_id": oid,
            "amount_cents": 1000 + i % 9000,
            "currency": "EUR",
            "items": [{"sku": f"SKU-{rnd.randrange(SKUS):04d}", "qty": 1}],
            "customer": {"id": f"cus_{i % 1000}", "email": f"user{i % 1000}@example.com",
                         "phone": "+4915112345678", "webhook_url": f"{sink_url}/webhook"},
            "occurred_at": "2026-11-22T10:00:00Z",
        }, separators=(",", ":")).encode()
        mac = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        out.append((oid, body, f"t={t},v1={mac}"))
    return out


LOADER: Path | None = None  # the compiled e2e_load.c (Stack.start builds it)


def build_loader(work: Path) -> Path:
    """Compiles e2e_load.c into work/ (once per process)."""
    global LOADER
    if LOADER is None or not LOADER.exists():
        binary = work / "e2e_load"
        subprocess.run(["cc", "-O2", "-std=c17", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
                        str(HERE / "e2e_load.c"),
                        "-o", str(binary)], check=True)
        LOADER = binary
    return LOADER


class OpenLoop:
    """Posts bodies at a constant rate from `workers` keep-alive connections
    (e2e_load.c: one epoll thread; the Python threads it replaced cost 0.25
    ms of CPU per order, most of a core at 3 000 orders/s, on the two cores
    the pipeline runs on). sched[i] is the scheduled time of body i,
    status[i] its HTTP status (-1: no answer), done[i] the monotonic time
    of the answer; filled by run()."""

    def __init__(self, port: int, bodies, rate: float, workers: int = 48):
        self.port, self.bodies, self.rate, self.workers = port, bodies, rate, workers
        n = len(bodies)
        self.sched = [0.0] * n
        self.status = [0] * n
        self.done = [0.0] * n
        self.late_max = 0.0
        self.cpu_s = 0.0

    def run(self) -> float:
        """Blocks until every body is sent and answered; returns the achieved
        send rate (bodies / time between first and last dispatch)."""
        loader = LOADER or build_loader(Path(tempfile.mkdtemp(prefix="of-bench-load-")))
        with tempfile.TemporaryDirectory(prefix="of-bench-load-") as d:
            inp, outp = Path(d) / "in", Path(d) / "out"
            with open(inp, "wb") as f:
                for _oid, body, sig in self.bodies:
                    f.write(sig.encode() + b"\t" + body + b"\n")
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            r = subprocess.run([str(loader), str(self.port), repr(float(self.rate)),
                                str(self.workers), str(inp), str(outp)],
                               capture_output=True, text=True, check=True)
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            # the generator's own CPU seconds
            self.cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            summary = json.loads(r.stdout.strip().splitlines()[-1])
            with open(outp) as f:
                for line in f:
                    i, sched, done, status = line.split()
                    i = int(i)
                    self.sched[i] = int(sched) / 1e9
                    self.done[i] = int(done) / 1e9
                    self.status[i] = int(status)
        self.late_max = summary["late_max_s"]
        return summary["achieved_rate"]


# --- the stack -----------------------------------------------------------------------


class Stack:
    def __init__(self, bin_dir: Path, work: Path):
        self.bin_dir, self.work = bin_dir, work
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.kafka_dir = Path(tempfile.mkdtemp(prefix="of-bench-e2e-kafka-", dir=base))
        self.kafka = KafkaBroker(self.kafka_dir)
        self.pg: Postgres | None = None
        self.sink: Sink | None = None
        self.prefix = f"e2e{uuid.uuid4().hex[:6]}."

    def start(self) -> None:
        log("e2e: starting Kafka and PostgreSQL")
        self.pg = Postgres()
        self.pg.start()
        self.kafka.fetch()
        self.kafka.start()
        self.kafka.create_topics([self.prefix + t for t in topic_names(3)], partitions=PARTITIONS)
        self.db = self.pg.create_database("e2e_bench")
        self.sink = Sink(self.work)
        build_loader(self.work)
        common = {"OF_KAFKA_BROKERS": self.kafka.bootstrap, "OF_TOPIC_PREFIX": self.prefix,
                  "OF_LOG_LEVEL": "warn", "OF_MIGRATIONS_DIR": str(ROOT / "deploy" / "sql"),
                  "OF_PG_DSN": self.pg.dsn_for(self.db), "OF_ADMIN_TOKEN": ADMIN,
                  "OF_WEBHOOK_SECRETS": SECRET, "OF_NOTIFY_SECRET": "bench-notify-secret",
                  "OF_TOPIC_PARTITIONS": str(PARTITIONS)}
        extra = {
            "inventory": {},
            "notify": {"OF_NOTIFY_EMAIL_URL": f"{self.sink.url}/email",
                       "OF_NOTIFY_SMS_URL": f"{self.sink.url}/sms",
                       "OF_NOTIFY_WEBHOOK_URL": f"{self.sink.url}/webhook",
                       # customers' webhook_url point at the loopback sink
                       "OF_NOTIFY_WEBHOOK_ALLOW": "127.0.0.1/32",
                       "OF_NOTIFY_RETRY_DELAYS": "1s,1s,1s"},
            "payment-gw": {},
        }
        self.envs: dict[str, dict[str, str]] = {}
        for name in ("inventory", "notify", "payment-gw"):
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("OF_")}
            env.update(common)
            env.update(extra[name])
            env["OF_HTTP_PORT"] = str(port)
            self.envs[name] = env
            self.ports[name] = port
            self.start_service(name, wait=False)
        for name in self.ports:
            self.wait_ready(name)
        inv = f"http://127.0.0.1:{self.ports['inventory']}"
        for i in range(SKUS):
            req = urllib.request.Request(f"{inv}/v1/stock/SKU-{i:04d}", method="PUT",
                                         data=json.dumps({"available": 100_000_000}).encode(),
                                         headers={"Authorization": f"Bearer {ADMIN}",
                                                  "Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).read()
        log(f"e2e: stack up (gw :{self.ports['payment-gw']}, inventory :{self.ports['inventory']}, "
            f"notify :{self.ports['notify']}, sink :{self.sink.port})")

    def start_service(self, name: str, wait: bool = True) -> None:
        logf = open(self.work / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([str(self.bin_dir / name)], env=self.envs[name],
                                            stdout=logf, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready(name)

    def wait_ready(self, name: str) -> None:
        port = self.ports[name]
        wait_until(lambda: _http_ok(f"http://127.0.0.1:{port}/readyz"), timeout=90,
                   message=f"{name} ready")

    def stop_service(self, name: str) -> int | None:
        p = self.procs[name]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def caught_up(self, group: str, topic: str) -> bool:
        """True when consumer group `group` (without the prefix) has committed
        the end of every partition of `topic`."""
        from confluent_kafka import Consumer, TopicPartition
        end = self.ends(topic)
        c = Consumer({"bootstrap.servers": self.kafka.bootstrap,
                      "group.id": self.prefix + group, "enable.auto.commit": False})
        try:
            tps = [TopicPartition(self.prefix + topic, i) for i in range(PARTITIONS)]
            return all(end[tp.partition] == 0 or tp.offset >= end[tp.partition]
                       for tp in c.committed(tps, timeout=10))
        finally:
            c.close()

    def ends(self, topic: str) -> dict[int, int]:
        """partition -> end offset of `topic` (without the prefix) now."""
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.kafka.bootstrap, "group.id": "e2e-ends"})
        try:
            return {p: c.get_watermark_offsets(TopicPartition(self.prefix + topic, p),
                                               timeout=10, cached=False)[1]
                    for p in range(PARTITIONS)}
        finally:
            c.close()

    def read_keys(self, topic: str, since: dict[int, int], want: set[str],
                  timeout: float) -> dict[str, float]:
        """key -> record timestamp (unix s) of the records of `topic` (without
        the prefix) written after the offsets `since` whose key is in `want`;
        returns when every wanted key was seen or after `timeout` s. Reads
        only the new part: a topic holding a whole run's records cannot be
        read from its start within a step's time."""
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.kafka.bootstrap, "group.id": "e2e-read",
                      "enable.auto.commit": False, "enable.auto.offset.store": False})
        got: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        try:
            c.assign([TopicPartition(self.prefix + topic, p, o) for p, o in since.items()])
            while len(got) < len(want) and time.monotonic() < deadline:
                for m in c.consume(num_messages=5000, timeout=0.5):
                    if m.error():
                        continue
                    k = m.key().decode() if m.key() is not None else None
                    if k in want:
                        got[k] = m.timestamp()[1] / 1000.0
        finally:
            c.close()
        return got

    def pids(self) -> dict[str, int]:
        return {k: p.pid for k, p in self.procs.items()}

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs.values())

    def stop(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for name in ("payment-gw", "inventory", "notify"):
            p = self.procs.get(name)
            if p is None:
                continue
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                codes[name] = p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        if self.sink:
            self.sink.stop()
        try:
            self.kafka.close()
        except Exception as e:  # noqa: BLE001
            log(f"e2e: kafka close: {e}")
        import shutil
        shutil.rmtree(self.kafka_dir, ignore_errors=True)
        if self.pg:
            self.pg.destroy()
        return codes


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


# --- clocks ------------------------------------------------------------------------------


class ClockMap(threading.Thread):
    """Maps wall-clock stamps (Kafka CreateTime, PostgreSQL now()) onto the
    monotonic clock of the load generator and the sink. The offset between
    the two is not always constant: on the benchmark machine (a VM) the
    wall clock gained 5 ms per second on the monotonic one at times, so one
    offset taken after a 20 s step put stages off by up to 100 ms (at other
    times it holds still). It is sampled every 0.2 s
    while the step runs, and each stamp uses the sample nearest to it."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []  # (wall, wall - mono)
        self._halt = threading.Event()
        self._sample()

    def _sample(self) -> None:
        m0 = time.monotonic()
        w = time.time()
        m1 = time.monotonic()
        self.samples.append((w, w - (m0 + m1) / 2))

    def run(self) -> None:
        while not self._halt.wait(0.2):
            self._sample()

    def finish(self) -> "ClockMap":
        self._halt.set()
        self.join(2)
        self._sample()
        return self

    def to_mono(self, wall: float) -> float:
        import bisect
        i = bisect.bisect_left(self.samples, (wall,))
        near = [self.samples[j] for j in (i - 1, i) if 0 <= j < len(self.samples)]
        _, off = min(near, key=lambda s: abs(s[0] - wall))
        return wall - off


# --- one constant-rate step ---------------------------------------------------------------


def step(stack: Stack, rate: float, seconds: float, tag: str, drain: float,
         settle: float = 0.0) -> dict:
    """Offers `rate` orders/s for `seconds`, waits up to `drain` s after the
    last response for the notifications, returns figures of the step. With
    `settle`, then keeps waiting up to that many more seconds until every
    order is complete (not counted in the figures): the next step starts
    on an empty pipeline instead of inheriting this step's backlog."""
    n = max(20, int(rate * seconds))
    bodies = signed_bodies(n, tag, stack.sink.url)
    gen = OpenLoop(stack.ports["payment-gw"], bodies, rate)
    stack.sink.read_new()  # skip whatever earlier steps left
    since = {t: stack.ends(t) for t in ("payment.success", "order.fulfilled")}
    pg0 = pg_activity(stack)
    clock = ClockMap()
    clock.start()
    busy0, t_busy0 = machine_busy_seconds(), time.monotonic()
    achieved = gen.run()
    t_sent = time.monotonic()
    # share of the machine's CPU time busy while the load ran (everything:
    # services, Kafka, PostgreSQL, the sink and this load generator)
    machine_busy = (machine_busy_seconds() - busy0) / (
        max(1e-6, t_sent - t_busy0) * (os.cpu_count() or 1))
    oid_index = {b[0]: i for i, b in enumerate(bodies)}
    accepted = [i for i in range(n) if gen.status[i] == 202]
    arrivals: dict[int, list[float]] = {}
    deadline = t_sent + drain
    while True:
        for oid, ts in stack.sink.read_new().items():
            i = oid_index.get(oid)
            if i is not None:
                arrivals.setdefault(i, []).extend(ts)
        complete = sum(1 for i in accepted if len(arrivals.get(i, ())) >= CHANNELS)
        if complete >= len(accepted) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    t_drained = time.monotonic()
    clock.finish()
    if settle > 0 and complete < len(accepted):
        left = {i for i in accepted if len(arrivals.get(i, ())) < CHANNELS}
        done_at: dict[int, int] = {}
        t_end = t_drained + settle
        while left and time.monotonic() < t_end:
            time.sleep(0.5)
            for oid, ts in stack.sink.read_new().items():
                i = oid_index.get(oid)
                if i in left:
                    done_at[i] = done_at.get(i, len(arrivals.get(i, ()))) + len(ts)
                    if done_at[i] >= CHANNELS:
                        left.discard(i)
        log(f"e2e:   backlog {'drained' if not left else 'NOT drained'} "
            f"{time.monotonic() - t_drained:.0f} s after the drain wait")
    pg1 = pg_activity(stack)
    lat = {i: max(arrivals[i][:CHANNELS]) - gen.sched[i] for i in accepted
           if len(arrivals.get(i, ())) >= CHANNELS}
    lats = sorted(lat.values())
    q = max(1, n // 4)
    first = sorted(v for i, v in lat.items() if i < q)
    last = sorted(v for i, v in lat.items() if i >= n - q)
    p50_first, p50_last = percentile(first, 50), percentile(last, 50)
    gw_lat = sorted(gen.done[i] - gen.sched[i] for i in accepted)
    last_arrival = max((max(v) for v in arrivals.values()), default=t_sent)
    span = last_arrival - gen.sched[0]
    res = {
        "offered_rate": rate, "seconds": seconds, "orders": n, "achieved_send_rate": achieved,
        "generator_late_max_s": gen.late_max, "generator_cpu_s": gen.cpu_s,
        "accepted": len(accepted), "non_202": n - len(accepted), "complete": len(lat),
        "completion_rate": len(lat) / span if span > 0 else 0.0,
        "drain_wait_s": t_drained - t_sent,
        "p50_s": percentile(lats, 50), "p90_s": percentile(lats, 90),
        "p99_s": percentile(lats, 99), "p999_s": percentile(lats, 99.9),
        "max_s": lats[-1] if lats else float("nan"),
        "p50_first_quarter_s": p50_first, "p50_last_quarter_s": p50_last,
        "gw_p99_s": percentile(gw_lat, 99), "gw_p50_s": percentile(gw_lat, 50),
        "machine_busy": machine_busy,
        # PostgreSQL work that may stall every stage at once (None: unknown)
        "pg_checkpoints": (pg1[0] - pg0[0]) if pg0 and pg1 else None,
        "pg_autovacuums": (pg1[1] - pg0[1]) if pg0 and pg1 else None,
    }
    res.update(tail_spread({i: gen.sched[i] - gen.sched[0] for i in lat}, lat))
    res["_since"] = since
    res["_clock"] = clock
    res["_sched"] = {bodies[i][0]: gen.sched[i] for i in accepted}
    res["_arrivals"] = {bodies[i][0]: max(arrivals[i][:CHANNELS]) for i in lat}
    res["_gw_done"] = {bodies[i][0]: gen.done[i] for i in accepted}
    return res


def tail_spread(when: dict[int, float], lat: dict[int, float]) -> dict:
    """Where in the step the slowest 1 % of the orders were scheduled: the
    number of distinct seconds they fall in, and the share of them in the
    busiest second. A few seconds holding most of them is a stall (all
    stages at once: autovacuum, a JVM pause); spread out, it is queueing."""
    if not lat:
        return {}
    cut = percentile(sorted(lat.values()), 99)
    secs = [int(when[i]) for i, v in lat.items() if v >= cut]
    counts: dict[int, int] = {}
    for s in secs:
        counts[s] = counts.get(s, 0) + 1
    worst = max(counts, key=counts.get)
    return {"tail_orders": len(secs), "tail_seconds": len(counts),
            "tail_worst_second": worst, "tail_worst_second_share": counts[worst] / len(secs)}


def pg_activity(stack: Stack) -> tuple[int, int] | None:
    """(checkpoints so far, autovacuum and autoanalyze runs so far on the
    benchmark database's tables), or None when PostgreSQL cannot say."""
    try:
        ck = stack.pg.query("postgres", "SELECT checkpoints_timed + checkpoints_req"
                            " FROM pg_stat_bgwriter")[0][0]
        av = stack.pg.query(stack.db, "SELECT coalesce(sum(autovacuum_count +"
                            " autoanalyze_count), 0) FROM pg_stat_user_tables")[0][0]
        return int(ck), int(av)
    except Exception:  # noqa: BLE001
        return None


def passed(r: dict) -> tuple[bool, str]:
    if r["achieved_send_rate"] < 0.95 * r["offered_rate"]:
        return False, f"generator reached only {r['achieved_send_rate']:.0f}/s"
    if r["accepted"] < 0.995 * r["orders"]:
        return False, f"{r['non_202']} non-202 answers"
    if r["complete"] < 0.995 * r["accepted"]:
        return False, f"only {r['complete']}/{r['accepted']} complete after the drain wait"
    f, l = r["p50_first_quarter_s"], r["p50_last_quarter_s"]
    if l > 2.0 * f + 0.5:
        return False, f"lag grows (p50 {f * 1000:.0f} ms -> {l * 1000:.0f} ms)"
    return True, "ok"


def orders_created(stack: Stack, keys) -> dict[str, float]:
    """order_id -> orders.created_at (unix s): now() of the batch
    transaction that decided the order."""
    return {k: v[0] for k, v in orders_times(stack, keys).items()}


def orders_times(stack: Stack, keys) -> dict[str, tuple[float, float | None]]:
    """order_id -> (orders.created_at, commit time) in unix s: now() of the
    batch transaction that decided the order (its start) and, when the
    cluster tracks commit timestamps (track_commit_timestamp, which
    bench/e2e/ab.py turns on), the time it committed (else None)."""
    sql = ("SELECT order_id, extract(epoch FROM created_at), {} FROM orders"
           " WHERE order_id = ANY(%s)")
    for commit in ("extract(epoch FROM pg_xact_commit_timestamp(xmin))", "NULL"):
        try:
            return {oid: (float(at), float(c) if c is not None else None)
                    for oid, at, c in stack.pg.query(stack.db, sql.format(commit),
                                                     (list(keys),))}
        except Exception as e:  # noqa: BLE001
            why = e
    log(f"e2e:   orders.created_at unavailable: {why}")
    return {}


# The stages of an order, a partition of its end-to-end latency (each is
# the difference of two consecutive stamps, so their sum is the whole):
STAGES = (
    # POST scheduled -> payment.success CreateTime: the load generator's
    # queue, HTTP, payment-gw's checks (its produce() call stamps the record)
    ("gw_in", "payment-gw until its produce call"),
    # payment.success CreateTime -> orders.created_at (now() at BEGIN of the
    # batch transaction): the producer's linger and request, the consumer's
    # fetch (fetch.wait.max.ms / fetch.min.bytes), the worker's queue and
    # its batch wait (OF_INV_BATCH_MS)
    ("to_tx", "Kafka, inventory's fetch, queue and batch wait"),
    # orders.created_at -> commit (only with commit timestamps)
    ("tx", "inventory's transaction until its commit"),
    # commit (or BEGIN) -> order.fulfilled CreateTime: NOTIFY, the relay's
    # round (read, render, produce call)
    ("relay", "the relay until its produce call"),
    # order.fulfilled CreateTime -> last of the 3 notifications at the sink:
    # the relay producer's linger and request, notify's fetch, lookup and
    # the HTTP requests
    ("notify", "Kafka, notify's fetch, lookup and requests"),
)


def stage_p99s(stack: Stack, r: dict) -> dict:
    """Per-stage figures of the orders of step r from Kafka record
    timestamps (CreateTime, ms) and the orders' transaction times:
    gw = POST answered - scheduled; inventory = order.fulfilled -
    payment.success; notify = last notification - order.fulfilled (p99s),
    and `split`: p50 and p99 of each of STAGES. Wall-clock stamps are
    mapped onto the monotonic clock."""
    mono = r["_clock"].to_mono
    want = set(r["_sched"])
    ts = {t: {k: mono(v) for k, v in stack.read_keys(t, r["_since"][t], want, 60).items()}
          for t in ("payment.success", "order.fulfilled")}
    gw = sorted(r["_gw_done"][k] - r["_sched"][k] for k in want)
    inv = sorted(ts["order.fulfilled"][k] - ts["payment.success"][k] for k in want
                 if k in ts["order.fulfilled"] and k in ts["payment.success"])
    ntf = sorted(r["_arrivals"][k] - ts["order.fulfilled"][k] for k in r["_arrivals"]
                 if k in ts["order.fulfilled"])
    # inventory's stage in two: until its batch transaction began (orders.
    # created_at = now() of that transaction: consume, queue for a worker,
    # batch wait) and from then to order.fulfilled (the transaction, the
    # relay's round and its produce call)
    times = {k: (mono(a), None if c is None else mono(c))
             for k, (a, c) in orders_times(stack, want).items()}
    created = {k: v[0] for k, v in times.items()}
    inv_in = sorted(created[k] - ts["payment.success"][k] for k in created
                    if k in ts["payment.success"])
    inv_out = sorted(ts["order.fulfilled"][k] - created[k] for k in created
                     if k in ts["order.fulfilled"])
    # the partition of each complete order's latency into STAGES
    per: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    for k, last in r["_arrivals"].items():
        if k not in times or k not in ts["payment.success"] or k not in ts["order.fulfilled"]:
            continue
        began, committed = times[k]
        ps, of = ts["payment.success"][k], ts["order.fulfilled"][k]
        per["gw_in"].append(ps - r["_sched"][k])
        per["to_tx"].append(began - ps)
        if committed is not None:
            per["tx"].append(committed - began)
            per["relay"].append(of - committed)
        else:
            per["relay"].append(of - began)
        per["notify"].append(last - of)
    split = {name: {"p50_s": percentile(sorted(v), 50), "p99_s": percentile(sorted(v), 99),
                    "n": len(v)} for name, v in per.items() if v}
    # the slowest 1 % of the orders end to end: the median time each spent
    # in each stage (which stage a stall holds them in)
    e2e_lat = {k: r["_arrivals"][k] - r["_sched"][k] for k in r["_arrivals"]}
    cut = percentile(sorted(e2e_lat.values()), 99) if e2e_lat else float("nan")
    slow = [k for k, v in e2e_lat.items() if v >= cut and k in created
            and k in ts["payment.success"] and k in ts["order.fulfilled"]]

    def med(vals) -> float:
        return percentile(sorted(vals), 50)
    slowest = {"orders": len(slow),
               "gw_s": med(r["_gw_done"][k] - r["_sched"][k] for k in slow),
               "inventory_to_tx_s": med(created[k] - ts["payment.success"][k] for k in slow),
               "inventory_tx_to_out_s": med(ts["order.fulfilled"][k] - created[k] for k in slow),
               "notify_s": med(r["_arrivals"][k] - ts["order.fulfilled"][k] for k in slow)}
    return {"gw_p99_s": percentile(gw, 99), "inventory_p99_s": percentile(inv, 99),
            "slowest_1pct_medians": slowest, "split": split,
            "notify_p99_s": percentile(ntf, 99), "n": [len(gw), len(inv), len(ntf)],
            "inventory_to_tx_p99_s": percentile(inv_in, 99),
            "inventory_tx_to_out_p99_s": percentile(inv_out, 99),
            "inventory_p50_s": percentile(inv, 50)}


def split_text(split: dict) -> str:
    """One line: each stage's p50 / p99 in ms."""
    return ", ".join(f"{name} {v['p50_s'] * 1000:.1f} / {v['p99_s'] * 1000:.1f}"
                     for name, v in split.items())


# --- each component alone -------------------------------------------------------------


def produce_open_loop(bootstrap: str, topic: str, records, rate: float) -> dict[str, float]:
    """Produces records [(key, value bytes, headers)] at a constant rate
    (record i at t0 + i/rate, never catching up in bursts is not needed: the
    records carry their own CreateTime). Returns key -> CreateTime (unix s)
    as the broker acknowledged it."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": "all",
                  "enable.idempotence": True})
    created: dict[str, float] = {}

    def dr(err, msg) -> None:
        if err is None:
            created[msg.key().decode()] = msg.timestamp()[1] / 1000.0

    t0 = time.monotonic() + 0.05
    for i, (key, value, hdrs) in enumerate(records):
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        while True:
            try:
                p.produce(topic, key=key, value=value, headers=hdrs, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(60)
    return created


def payment_records(n: int, tag: str, sink_url: str):
    """payment.success records as payment-gw writes them (gw_event.c)."""
    out = []
    rnd = random.Random()
    for i in range(n):
        ev = str(uuid.uuid4())
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        oid = f"e2e_{tag}_{i}"
        v = {"event_id": ev, "payment_id": f"pay_{tag}_{i}_{uuid.uuid4().hex[:8]}",
             "order_id": oid, "amount_cents": 1000 + i % 9000, "currency": "EUR",
             "items": [{"sku": f"SKU-{rnd.randrange(SKUS):04d}", "qty": 1}],
             "customer": {"id": f"cus_{i % 1000}", "email": f"user{i % 1000}@example.com",
                          "phone": "+4915112345678", "webhook_url": f"{sink_url}/webhook"},
             "occurred_at": "2026-11-22T10:00:00Z", "received_at": now}
        hdrs = [("ce_specversion", b"1.0"), ("ce_id", ev.encode()),
                ("ce_type", b"payment.success.v1"), ("ce_source", b"/payment-gw"),
                ("ce_time", now.encode()), ("content-type", b"application/json")]
        out.append((oid, json.dumps(v, separators=(",", ":")).encode(), hdrs))
    return out


def fulfilled_records(n: int, tag: str, sink_url: str):
    """order.fulfilled records as inventory writes them (inv_event.c)."""
    out = []
    for i in range(n):
        ev = str(uuid.uuid4())
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        oid = f"e2e_{tag}_{i}"
        v = {"event_id": ev, "order_id": oid, "payment_id": f"pay_{tag}_{i}",
             "payment_event_id": str(uuid.uuid4()),
             "items": [{"sku": f"SKU-{i % SKUS:04d}", "qty": 1, "stock_version": i + 1}],
             "customer": {"id": f"cus_{i % 1000}", "email": f"user{i % 1000}@example.com",
                          "phone": "+4915112345678", "webhook_url": f"{sink_url}/webhook"},
             "fulfilled_at": now, "payment_received_at": now}
        hdrs = [("ce_specversion", b"1.0"), ("ce_id", ev.encode()),
                ("ce_type", b"order.fulfilled.v1"), ("ce_source", b"/inventory"),
                ("ce_time", now.encode()), ("content-type", b"application/json")]
        out.append((oid, json.dumps(v, separators=(",", ":")).encode(), hdrs))
    return out


def alone_p99s(stack: Stack, rate: float, seconds: float) -> dict:
    """The issue's baseline for the end-to-end p99: each component's p99
    measured alone at the same open-loop rate, the others stopped.
      payment-gw: POST scheduled -> 202, inventory and notify stopped;
      inventory:  payment.success CreateTime -> order.fulfilled CreateTime,
                  fed by a Kafka producer (payment-gw's record format),
                  payment-gw and notify stopped;
      notify:     order.fulfilled CreateTime -> last of the 3 notifications
                  at the sink, fed by a Kafka producer (inventory's format),
                  payment-gw and inventory stopped.
    Every service is running again when this returns."""
    n = max(20, int(rate * seconds))
    out: dict = {"rate": rate, "seconds": seconds, "orders": n}

    # payment-gw alone
    stack.stop_service("inventory")
    stack.stop_service("notify")
    bodies = signed_bodies(n, "agw", stack.sink.url)
    gen = OpenLoop(stack.ports["payment-gw"], bodies, rate)
    gen.run()
    gw = sorted(gen.done[i] - gen.sched[i] for i in range(n) if gen.status[i] == 202)
    out["gw_p99_s"], out["gw_ok"] = percentile(gw, 99), len(gw)
    log(f"e2e:   payment-gw alone: p99 {out['gw_p99_s'] * 1000:.1f} ms ({len(gw)}/{n} accepted)")

    # inventory alone (first it catches up with what payment-gw just queued)
    stack.stop_service("payment-gw")
    stack.start_service("inventory")
    wait_until(lambda: stack.caught_up("inventory", "payment.success"), timeout=120,
               interval=1.0, message="inventory caught up")
    recs = payment_records(n, "ainv", stack.sink.url)
    since = stack.ends("order.fulfilled")
    sent = produce_open_loop(stack.kafka.bootstrap, stack.prefix + "payment.success", recs, rate)
    got = stack.read_keys("order.fulfilled", since, set(sent), 60)
    inv = sorted(got[k] - sent[k] for k in got)
    out["inventory_p99_s"], out["inventory_ok"] = percentile(inv, 99), len(inv)
    created = orders_created(stack, got)
    out["inventory_to_tx_p99_s"] = percentile(sorted(created[k] - sent[k] for k in created), 99)
    out["inventory_tx_to_out_p99_s"] = percentile(
        sorted(got[k] - created[k] for k in created), 99)
    log(f"e2e:   inventory alone: p99 {out['inventory_p99_s'] * 1000:.1f} ms "
        f"({len(inv)}/{n} fulfilled)")

    # notify alone (first it catches up with what inventory just emitted)
    stack.stop_service("inventory")
    stack.start_service("notify")
    wait_until(lambda: stack.caught_up("notify", "order.fulfilled"), timeout=120,
               interval=1.0, message="notify caught up")
    stack.sink.read_new()
    recs = fulfilled_records(n, "antf", stack.sink.url)
    clock = ClockMap()
    clock.start()
    sent = produce_open_loop(stack.kafka.bootstrap, stack.prefix + "order.fulfilled", recs, rate)
    arrivals: dict[str, list[float]] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for oid, ts in stack.sink.read_new().items():
            if oid in sent:
                arrivals.setdefault(oid, []).extend(ts)
        if sum(1 for v in arrivals.values() if len(v) >= CHANNELS) >= len(sent):
            break
        time.sleep(0.25)
    clock.finish()
    ntf = sorted(max(v[:CHANNELS]) - clock.to_mono(sent[k]) for k, v in arrivals.items()
                 if len(v) >= CHANNELS and k in sent)
    out["notify_p99_s"], out["notify_ok"] = percentile(ntf, 99), len(ntf)
    log(f"e2e:   notify alone: p99 {out['notify_p99_s'] * 1000:.1f} ms ({len(ntf)}/{n} complete)")

    stack.start_service("inventory")
    stack.start_service("payment-gw")
    out["sum_p99_s"] = out["gw_p99_s"] + out["inventory_p99_s"] + out["notify_p99_s"]
    return out


def run(bin_dir: Path, quick: bool, start_rate: float, max_rate: float | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="of-bench-e2e-"))
    stack = Stack(bin_dir, work)
    out: dict = {"ramp": [], "latency": [], "work_dir": str(work)}
    sampler = None
    try:
        stack.start()
        sampler = RssSampler(stack.pids())
        sampler.start()
        step_s = 8.0 if quick else 15.0
        lat_s = 8.0 if quick else 20.0
        # The figure's step (half the sustained rate) and the components
        # alone run longer: the tail comes from episodes of 1-5 s, every
        # 10-20 s, in which one stage or another slows down (two shared
        # cores; autovacuum wakes once a minute); inside a 20 s step one
        # episode more or less moved the p99 by a factor of two. 60 s
        # hold several, and one autovacuum pass, as any minute does.
        fig_s = 20.0 if quick else 60.0
        drain = 10.0
        # warm-up: connections, producer ids, consumer group joins
        log("e2e: warm-up (20 orders/s for 3 s, then 100 orders/s for 5 s)")
        step(stack, 20, 3, "warm0", 30)
        step(stack, 100, 5, "warm1", 30)
        rate = max(10.0, start_rate)
        best = None
        failed_at = None
        max_steps = 5 if quick else 9
        for k in range(max_steps):
            log(f"e2e: ramp step {k + 1}: {rate:.0f} orders/s for {step_s:.0f}s")
            # a failed step's backlog is drained before the next step (up
            # to 180 s): the first version started the next, lower step on
            # top of it, and after one failure every following step failed
            # (3 200/s failed, then 2 263, 1 903 and 1 745/s in one run)
            r = step(stack, rate, step_s, f"r{k}", drain, settle=180)
            ok, why = passed(r)
            log(f"e2e:   completed {r['complete']}/{r['orders']}, p50 {r['p50_s'] * 1000:.0f} ms, "
                f"p99 {r['p99_s'] * 1000:.0f} ms -> {'sustained' if ok else 'not sustained: ' + why}")
            out["ramp"].append({**{k2: v for k2, v in r.items() if not k2.startswith("_")},
                                "sustained": ok, "why": why})
            if not stack.alive():
                raise RuntimeError("a service died during the ramp")
            if ok:
                best = r
                if max_rate is not None and rate >= max_rate:
                    break
                if failed_at is not None:
                    if failed_at / rate < 1.15:
                        break
                    rate = (rate * failed_at) ** 0.5
                else:
                    rate *= 2.0
            else:
                if best is not None:
                    # bisection (geometric) between the best sustained and
                    # the lowest failing rate, down to 15 % apart
                    failed_at = rate if failed_at is None else min(failed_at, rate)
                    if failed_at / best["offered_rate"] < 1.15:
                        break
                    rate = (best["offered_rate"] * failed_at) ** 0.5
                else:
                    rate /= 2
            time.sleep(2)  # let the tail of the previous step settle
        if best is None:
            raise RuntimeError("no ramp step was sustained")
        sustained = best["offered_rate"]
        out["sustained_rate"] = sustained
        # A failed ramp step leaves a backlog, dead outbox/inbox tuples
        # (autovacuum) and a busy JVM behind; let them settle so the
        # low-load latency steps do not measure the ramp's aftermath.
        log("e2e: settling 15 s after the ramp")
        time.sleep(15)
        out["sustained_completion_rate"] = best["completion_rate"]
        fracs = [0.1, 0.5] if quick else [0.1, 0.25, 0.5, 0.75]
        for fr in fracs:
            rt = sustained * fr
            secs = fig_s if fr == 0.5 else lat_s
            log(f"e2e: open-loop latency at {int(fr * 100)}% = {rt:.0f} orders/s for {secs:.0f}s")
            r = step(stack, rt, secs, f"l{int(fr * 100)}", 30)
            log(f"e2e:   p50 {r['p50_s'] * 1000:.1f} ms, p90 {r['p90_s'] * 1000:.1f} ms, "
                f"p99 {r['p99_s'] * 1000:.1f} ms, p99.9 {r['p999_s'] * 1000:.1f} ms "
                f"({r['complete']}/{r['orders']} complete; PostgreSQL checkpoints "
                f"{r['pg_checkpoints']}, autovacuum/analyze runs {r['pg_autovacuums']}; "
                f"machine CPU {r['machine_busy'] * 100:.0f} % busy)")
            if r.get("tail_orders"):
                log(f"e2e:   slowest 1 % ({r['tail_orders']} orders) in {r['tail_seconds']} "
                    f"distinct seconds, {r['tail_worst_second_share'] * 100:.0f} % of them in "
                    f"second {r['tail_worst_second']} of the step")
            row = {k2: v for k2, v in r.items() if not k2.startswith("_")}
            row["fraction"] = fr
            # where the time goes: at 10 % (what an order costs when the
            # pipeline is nearly idle) and at the figure's 50 %
            if fr in (0.1, 0.5):
                try:
                    row["stages"] = stage_p99s(stack, r)
                    log(f"e2e:   stages p50 / p99 ms: {split_text(row['stages']['split'])}")
                except Exception as e:  # noqa: BLE001
                    log(f"e2e:   stage split unavailable: {e}")
            out["latency"].append(row)
            time.sleep(2)
        out["rss_peak_kib"] = sampler.finish()  # of the end-to-end run only
        sampler = None
        half = sustained * 0.5
        log(f"e2e: each component alone at {half:.0f} orders/s for {fig_s:.0f}s "
            "(the baseline of the p99 figure)")
        try:
            out["alone"] = alone_p99s(stack, half, fig_s)
        except Exception as e:  # noqa: BLE001
            log(f"e2e:   components alone unavailable: {e}")
            out["alone_error"] = str(e)
    finally:
        try:
            if sampler is not None:
                out["rss_peak_kib"] = sampler.finish()
        finally:
            out["exit_codes"] = stack.stop()
    return out
