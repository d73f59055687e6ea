"""Helpers for the reliability tests (test_chaos.py, test_faults.py).

- `Stack`: Kafka + PostgreSQL + topics + sink + the three services, wired
  like the `services` fixture does, but on brokers/clusters the test may
  own (so it can kill them) and optionally behind TCP proxies.
- `Catalogue` / `make_payments`: many skus, enough stock for most but not
  all, deterministic from a seed.
- `PaymentDriver`: posts signed payments at a steady rate from a thread
  pool; a 503 or a connection failure is retried later with the same
  payment_id and the same body (re-signed), like a provider would.
- `Faults`: SIGKILL / crash / restart helpers that record when each fault
  happened and how long the stack took to be ready again.
- `wait_quiescent` and `collect_figures`: the end-to-end invariants, counted
  directly from the topics, PostgreSQL and the sink, plus `ofctl verify`.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from . import config
from .kafka import KafkaBroker
from .pg import Postgres
from .services import Service, Services, bin_dir
from .sign import encode, signed_headers
from .sink import Sink
from .topics import Namespace
from .util import REPO_ROOT

NS_PAYMENT = uuid.UUID("743b2e14-4ae8-4d33-af31-19c2d802bb57")
NS_OUTCOME = uuid.UUID("9ec18149-b93d-4fe6-b287-c05ccf16105f")
NS_DELIVERY = uuid.UUID("ceb09c10-fab2-47ee-a519-bdc1ca592496")

SERVICES = ("payment-gw", "inventory", "notify")


def event_id_of(payment_id: str) -> str:
    return str(uuid.uuid5(NS_PAYMENT, payment_id))


def outcome_id_of(payment_id: str) -> str:
    return str(uuid.uuid5(NS_OUTCOME, event_id_of(payment_id)))


def delivery_id_of(event_id: str, channel: str) -> str:
    return str(uuid.uuid5(NS_DELIVERY, f"{event_id}:{channel}"))


def is_asan_build() -> bool:
    """True when $OF_BIN_DIR's payment-gw is built with AddressSanitizer."""
    try:
        with open(bin_dir() / "payment-gw", "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# --- the stack ------------------------------------------------------------------------

class Stack:
    """Kafka, PostgreSQL, a topic namespace, a sink and a Services factory.

    `kafka`/`pg` are owned (closed/destroyed by close()) when own_kafka /
    own_pg say so. `pg_dsn` is what the services get (possibly through a
    proxy); `db_name` is queried directly (`query()`)."""

    def __init__(self, workdir: Path, kafka: KafkaBroker, pg: Postgres, db_name: str,
                 ns: Namespace, sink: Sink, pg_dsn: str | None = None,
                 own_kafka: bool = False, own_pg: bool = False, log_level: str = "info",
                 extra_env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.kafka = kafka
        self.pg = pg
        self.db_name = db_name
        self.ns = ns
        self.sink = sink
        self.pg_dsn = pg_dsn or pg.dsn_for(db_name)
        self.own_kafka = own_kafka
        self.own_pg = own_pg
        env = {
            "OF_KAFKA_BROKERS": kafka.bootstrap,
            "OF_PG_DSN": self.pg_dsn,
            "OF_TOPIC_PREFIX": str(ns),
            "OF_TOPIC_PARTITIONS": str(config.TOPIC_PARTITIONS),
            "OF_LOG_LEVEL": log_level,
            "OF_WEBHOOK_SECRETS": config.WEBHOOK_SECRET,
            "OF_ADMIN_TOKEN": config.ADMIN_TOKEN,
            "OF_NOTIFY_SECRET": config.NOTIFY_SECRET,
            "OF_MIGRATIONS_DIR": str(REPO_ROOT / "deploy" / "sql"),
            "OF_NOTIFY_RETRY_DELAYS": config.retry_delays(ns.retry_tiers),
            "OF_NOTIFY_EMAIL_URL": f"{sink.url}/email",
            "OF_NOTIFY_SMS_URL": f"{sink.url}/sms",
            "OF_NOTIFY_WEBHOOK_URL": f"{sink.url}/webhook",
        }
        env.update(extra_env or {})
        self.services = Services(env, self.workdir / "services")
        self.closed = False

    @classmethod
    def create(cls, workdir: Path, kafka: KafkaBroker | None = None, pg: Postgres | None = None,
               db_name: str | None = None, pg_dsn_of: Callable[[str], str] | None = None,
               own_kafka: bool = False, partitions: int = config.TOPIC_PARTITIONS,
               **kw: Any) -> "Stack":
        """Start what is not given: a dedicated broker (data in workdir/kafka)
        and/or a dedicated PostgreSQL cluster, a fresh database, the topics
        under a new prefix, and a sink. A broker given with own_kafka=True
        is not started yet: the stack starts it and closes it (a
        KafkaCluster too). pg_dsn_of(dsn) may rewrite the services' DSN
        (e.g. through a proxy). Topics get `partitions` partitions."""
        workdir = Path(workdir)
        own_kafka = kafka is None or own_kafka
        own_pg = pg is None
        started: list[Callable[[], None]] = []
        try:
            if kafka is None:
                kafka = KafkaBroker(workdir / "kafka")
            if own_pg:
                pg = Postgres()
                started.append(pg.destroy)
                # initdb and start while the broker's JVM starts
                pg_up = threading.Thread(target=pg.start, daemon=True)
                pg_up.start()
            if own_kafka:
                started.append(kafka.close)
                kafka.fetch()
                kafka.start()
            if own_pg:
                pg_up.join(120)
                assert pg.is_running(), f"PostgreSQL did not start:\n{pg.log_tail(40)}"
            if db_name is None:
                db_name = pg.create_database()
            ns = Namespace(f"c{uuid.uuid4().hex[:8]}.", retry_tiers=3)
            kafka.create_topics(ns.topics, partitions=partitions, timeout=60)
            sink = Sink().start()
            dsn = pg.dsn_for(db_name)
            return cls(workdir, kafka, pg, db_name, ns, sink,
                       pg_dsn=pg_dsn_of(dsn) if pg_dsn_of else dsn,
                       own_kafka=own_kafka, own_pg=own_pg, **kw)
        except BaseException:
            for undo in reversed(started):
                try:
                    undo()
                except Exception:  # noqa: BLE001
                    pass
            raise

    # --- services ---

    def start_services(self, env: dict[str, dict[str, str]] | None = None) -> dict[str, Service]:
        """Start payment-gw, inventory, notify (in that order), ready."""
        env = env or {}
        out = {}
        for name in SERVICES:
            out[name] = self.services.start(name, env=env.get(name))
        return out

    def svc(self, name: str) -> Service:
        return self.services.get(name)

    def wait_all_ready(self, timeout: float = 60) -> float:
        """Wait until every started service answers /readyz 200; returns
        the seconds it took. ServiceError if one died meanwhile."""
        t0 = time.monotonic()
        for s in self.services.all:
            left = max(1.0, timeout - (time.monotonic() - t0))
            s.wait_ready(left)
        return time.monotonic() - t0

    def readyz(self) -> dict[str, int | str]:
        """Current /readyz status code of every service (or the error name)."""
        out: dict[str, int | str] = {}
        for s in self.services.all:
            try:
                out[s.name] = s.get("/readyz", timeout=3).status_code
            except requests.RequestException as exc:
                out[s.name] = type(exc).__name__
        return out

    # --- data ---

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        return self.pg.query(self.db_name, sql, params)

    def set_stock(self, stock: dict[str, int]) -> None:
        inv = self.svc("inventory")
        with requests.Session() as http:
            for sku, n in stock.items():
                r = http.put(f"{inv.url}/v1/stock/{sku}", json={"available": n},
                             headers={"Authorization": f"Bearer {config.ADMIN_TOKEN}"}, timeout=30)
                assert r.status_code == 200, (sku, r.status_code, r.text)

    def close(self) -> list[str]:
        """Stop the services (the harness's teardown checks: exit codes,
        sanitizer reports), the sink, and what the stack owns. Returns the
        problems found."""
        if self.closed:
            return []
        self.closed = True
        problems: list[str] = []
        try:
            problems = self.services.teardown()
        finally:
            self.sink.stop()
            if self.own_kafka:
                try:
                    self.kafka.close()
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"closing the broker: {exc}")
            else:
                try:
                    self.kafka.delete_topics(self.ns.topics)
                except Exception:  # noqa: BLE001
                    pass
            if self.own_pg:
                self.pg.destroy()
            else:
                try:
                    self.pg.drop_database(self.db_name)
                except Exception:  # noqa: BLE001
                    pass
        return problems


# --- the payments ---------------------------------------------------------------------

@dataclass
class Catalogue:
    """skus with their initial stock; `scarce` ones run out during the run."""

    stock: dict[str, int]
    scarce: set[str]


def make_catalogue(rng: random.Random, n_payments: int, n_skus: int = 40,
                   scarce_ratio: float = 0.15) -> Catalogue:
    """n_skus skus; about scarce_ratio of them get roughly 40% of their
    expected demand (so they sell out and later orders are compensated),
    the others plenty."""
    skus = [f"SKU-C{i:03d}" for i in range(n_skus)]
    # a payment has 1-3 items (avg 2) of qty 1-3 (avg 2)
    demand = max(1, n_payments * 2 * 2 // n_skus)
    n_scarce = max(1, round(n_skus * scarce_ratio))
    scarce = set(rng.sample(skus, n_scarce))
    stock = {s: (max(3, int(demand * 0.4)) if s in scarce else demand * 20 + 1000) for s in skus}
    return Catalogue(stock, scarce)


def make_payments(rng: random.Random, n: int, cat: Catalogue, tag: str,
                  unknown_ratio: float = 0.01) -> list[dict]:
    """n distinct payments (one per order); about unknown_ratio of them name
    an unknown sku; a third of the customers have a phone (sms channel)."""
    skus = sorted(cat.stock)
    out = []
    for i in range(n):
        k = rng.randint(1, 3)
        items = [{"sku": s, "qty": rng.randint(1, 3)} for s in rng.sample(skus, k)]
        if rng.random() < unknown_ratio:
            items.append({"sku": f"SKU-NOPE-{tag}-{i}", "qty": 1})
        customer = {"id": f"cus_{i % 97}", "email": f"buyer{i}@example.com"}
        if i % 3 == 0:
            customer["phone"] = f"+49151{i:08d}"
        out.append({
            "payment_id": f"pay_{tag}_{i:05d}",
            "order_id": f"ord_{tag}_{i:05d}",
            "amount_cents": 100 * sum(it["qty"] for it in items) + 99,
            "currency": "EUR",
            "items": items,
            "customer": customer,
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
    return out


def expected_channels(payment: dict) -> set[str]:
    """Channels notify must deliver for this payment's outcome (the webhook
    goes to the configured default URL)."""
    ch = {"webhook"}
    c = payment.get("customer", {})
    if c.get("email"):
        ch.add("email")
    if c.get("phone"):
        ch.add("sms")
    return ch


@dataclass
class PaymentState:
    payload: dict
    body: bytes
    phase: str = ""
    attempts: list[tuple[float, Any]] = field(default_factory=list)  # (time, status|error)
    acked_at: float | None = None
    event_id: str | None = None
    rejected: int | None = None  # a final non-retryable status (4xx)
    index: int = 0               # order of submission (spreads over gateways)

    @property
    def acked(self) -> bool:
        return self.acked_at is not None


class PaymentDriver:
    """Posts payments at a steady rate (first attempts in order, retries
    when due) from a pool of `workers` threads, each with a keep-alive
    session. 503 and connection failures are retried after Retry-After
    (default 2 s, doubling up to 10 s) with the same body, re-signed.
    Several gateway URLs: payments spread over them, and each retry of a
    payment goes to the next one (as through a load balancer)."""

    def __init__(self, gw_url: str | list[str], workers: int = 64, timeout: float = 30):
        urls = [gw_url] if isinstance(gw_url, str) else list(gw_url)
        self.gw_urls = [u.rstrip("/") for u in urls]
        self.gw_url = self.gw_urls[0]
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pay")
        self.local = threading.local()
        self.lock = threading.Lock()
        self.states: dict[str, PaymentState] = {}
        self.order: list[str] = []
        self.retry_heap: list[tuple[float, int, str]] = []
        self.inflight = 0
        self.seq = 0
        self.responses: Counter = Counter()
        self.closed = False

    # --- posting ---

    def _session(self) -> requests.Session:
        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = requests.Session()
        return s

    def _attempt(self, pid: str) -> None:
        st = self.states[pid]
        t = time.time()
        retry_after = None
        event_id = None
        outcome: Any
        try:
            url = self.gw_urls[(st.index + len(st.attempts)) % len(self.gw_urls)]
            r = self._session().post(url + "/v1/payments", data=st.body,
                                     headers=signed_headers(st.body, config.WEBHOOK_SECRET),
                                     timeout=self.timeout)
            outcome = r.status_code
            if r.status_code == 202:
                event_id = r.json().get("event_id")
            elif r.status_code == 503:
                try:
                    retry_after = float(r.headers.get("Retry-After", "2"))
                except ValueError:
                    retry_after = 2.0
        except Exception as exc:  # noqa: BLE001 - connection failure, timeout, bad body
            outcome = type(exc).__name__
            self.local.s = None  # a fresh connection next time
        with self.lock:
            self.inflight -= 1
            st.attempts.append((t, outcome))
            self.responses[outcome] += 1
            if outcome == 202:
                st.acked_at = time.time()
                st.event_id = event_id
            elif outcome == 503 or isinstance(outcome, str):
                n = len(st.attempts)
                delay = retry_after if retry_after is not None else 2.0
                if n > 1:
                    delay = min(10.0, delay * 2 ** (n - 1))
                self.seq += 1
                heapq.heappush(self.retry_heap, (time.monotonic() + delay, self.seq, pid))
            else:
                st.rejected = outcome

    def submit(self, payload: dict, phase: str = "") -> None:
        pid = payload["payment_id"]
        with self.lock:
            if pid not in self.states:
                self.states[pid] = PaymentState(payload, encode(payload), phase,
                                                index=len(self.order))
                self.order.append(pid)
            self.inflight += 1
        self.pool.submit(self._attempt, pid)

    def _submit_due_retries(self) -> int:
        now = time.monotonic()
        due = []
        with self.lock:
            while self.retry_heap and self.retry_heap[0][0] <= now:
                due.append(heapq.heappop(self.retry_heap)[2])
            self.inflight += len(due)
        for pid in due:
            self.pool.submit(self._attempt, pid)
        return len(due)

    def run(self, payloads: list[dict], rate: float, phase: str = "",
            stop: threading.Event | None = None) -> None:
        """Post payloads at `rate` per second (blocking; retries due meanwhile
        are sent too). Returns when every payload had its first attempt
        submitted (or `stop` was set)."""
        t0 = time.monotonic()
        for i, p in enumerate(payloads):
            if stop is not None and stop.is_set():
                return
            at = t0 + i / rate
            while True:
                self._submit_due_retries()
                left = at - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, 0.05))
            self.submit(p, phase)

    def start(self, payloads: list[dict], rate: float, phase: str = "") -> threading.Thread:
        """run() in a background thread (returned; join it)."""
        th = threading.Thread(target=self.run, args=(payloads, rate, phase), daemon=True,
                              name="payment-driver")
        th.start()
        return th

    def drain(self, timeout: float = 90) -> bool:
        """Keep retrying until every payment is acknowledged (or rejected)
        and nothing is in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._submit_due_retries()
            with self.lock:
                if self.inflight == 0 and not self.retry_heap:
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.shutdown(wait=True, cancel_futures=True)

    # --- figures ---

    def acked_states(self) -> list[PaymentState]:
        with self.lock:
            return [s for s in self.states.values() if s.acked]

    def summary(self) -> dict[str, Any]:
        with self.lock:
            states = list(self.states.values())
            responses = dict(self.responses)
        s503 = [s for s in states if any(a[1] == 503 for a in s.attempts)]
        serr = [s for s in states if any(isinstance(a[1], str) for a in s.attempts)]
        return {
            "attempted": len(states),
            "acknowledged_202": sum(1 for s in states if s.acked),
            "first_try_202": sum(1 for s in states if s.attempts and s.attempts[0][1] == 202),
            "responses_503": responses.get(503, 0),
            "payments_with_503": len(s503),
            "payments_with_503_later_202": sum(1 for s in s503 if s.acked),
            "connection_errors": sum(v for k, v in responses.items() if isinstance(k, str)),
            "payments_with_connection_errors": len(serr),
            "rejected": sum(1 for s in states if s.rejected is not None),
            "unacknowledged": sum(1 for s in states if not s.acked),
            "http_attempts": sum(len(s.attempts) for s in states),
            "responses": {str(k): v for k, v in sorted(responses.items(), key=lambda kv: str(kv[0]))},
        }


# --- faults ---------------------------------------------------------------------------

class Faults:
    """Injects faults into a Stack and records them:
    events = [{"kind", "at" (time.time), "down_s", "ready_after_s"}]."""

    def __init__(self, stack: Stack, log: Callable[[str], None] = print):
        self.stack = stack
        self.events: list[dict[str, Any]] = []
        self.log = log

    def _record(self, kind: str, at: float, down: float, ready_after: float, **extra: Any) -> None:
        ev = {"kind": kind, "at": at, "down_s": round(down, 1),
              "ready_after_s": round(ready_after, 1), **extra}
        self.events.append(ev)
        self.log(f"  fault {kind}: down {down:.1f}s, stack ready {ready_after:.1f}s after restart")

    def kill_service(self, name: str, down: float = 1.5, ready_timeout: float = 90) -> None:
        svc = self.stack.svc(name)
        at = time.time()
        svc.kill()
        time.sleep(down)
        t = time.monotonic()
        svc.start()
        self.stack.wait_all_ready(ready_timeout)
        self._record(f"sigkill_{name}", at, down, time.monotonic() - t)

    def kill_kafka(self, down: float = 4.0, ready_timeout: float = 120) -> None:
        broker = self.stack.kafka
        at = time.time()
        broker.kill()
        time.sleep(down)
        t = time.monotonic()
        start_s = broker.start()
        self.stack.wait_all_ready(ready_timeout)
        self._record("sigkill_kafka", at, down, time.monotonic() - t, broker_start_s=start_s)

    def crash_pg(self, down: float = 3.0, ready_timeout: float = 120) -> None:
        pg = self.stack.pg
        at = time.time()
        pg.stop("immediate")
        time.sleep(down)
        t = time.monotonic()
        pg.start()
        self.stack.wait_all_ready(ready_timeout)
        self._record("crash_postgresql", at, down, time.monotonic() - t)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e["kind"] == kind)

    def times(self, kind: str) -> list[float]:
        return [e["at"] for e in self.events if e["kind"] == kind]


# --- quiescence and figures --------------------------------------------------------------

def _outcomes(stack: Stack, timeout: float = 30) -> list:
    recs = []
    for t in ("order.fulfilled", "order.compensation"):
        recs += stack.kafka.read_all(stack.ns.topic(t), timeout=timeout)
    return recs


def _delivered(sink: Sink) -> dict[tuple[str, str], int]:
    """(event_id, channel) -> number of 2xx-answered requests."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for r in sink.requests():
        if 200 <= r.status < 300 and isinstance(r.json, dict):
            out[(r.json.get("event_id"), r.json.get("channel"))] += 1
    return out


def wait_quiescent(stack: Stack, driver: PaymentDriver, timeout: float = 120,
                   stable_s: float = 3.0, log: Callable[[str], None] = print) -> bool:
    """Wait until every acknowledged payment has an outcome in the topics,
    the outbox is empty, every outcome's notifications reached the sink,
    and nothing changed at the sink for stable_s. False on timeout (the
    figures then show what is missing)."""
    deadline = time.monotonic() + timeout
    acked = {s.payload["order_id"]: s.payload for s in driver.acked_states()}
    last_sig = None
    stable_since = None
    what = "start"
    while time.monotonic() < deadline:
        try:
            outbox = stack.query("SELECT count(*) FROM outbox")[0][0]
            recs = _outcomes(stack, timeout=20)
        except Exception as exc:  # noqa: BLE001 - not reachable yet: try again
            what = f"error {exc!r}"
            time.sleep(1)
            continue
        have = {r.key.decode() if r.key else None for r in recs}
        missing_outcomes = sum(1 for o in acked if o not in have)
        events = {}
        for r in recs:
            v = r.json()
            events[r.header("ce_id")] = v.get("order_id")
        delivered = _delivered(stack.sink)
        missing_notes = 0
        for eid, oid in events.items():
            p = acked.get(oid)
            if p is None:
                continue
            missing_notes += sum(1 for ch in expected_channels(p) if delivered.get((eid, ch), 0) == 0)
        sig = (outbox, len(recs), len(stack.sink.requests()))
        what = (f"outbox {outbox}, outcome records {len(recs)}, acked orders without outcome "
                f"{missing_outcomes}, notifications missing {missing_notes}")
        if outbox == 0 and missing_outcomes == 0 and missing_notes == 0:
            if sig == last_sig and stable_since is not None:
                if time.monotonic() - stable_since >= stable_s:
                    log(f"quiescent: {what}")
                    return True
            else:
                stable_since = time.monotonic()
        else:
            stable_since = None
        last_sig = sig
        time.sleep(1)
    log(f"NOT quiescent after {timeout:.0f}s: {what}")
    return False


def collect_figures(stack: Stack, driver: PaymentDriver, catalogue: Catalogue,
                    faults: Faults | None = None) -> dict[str, Any]:
    """Every invariant as a figure (0 is good for the violation counts)."""
    fig: dict[str, Any] = dict(driver.summary())
    acked = {s.payload["order_id"]: s for s in driver.acked_states()}
    all_payments = {s.payload["order_id"]: s.payload for s in driver.states.values()}

    # -- outcomes, from the topics
    recs = _outcomes(stack, timeout=30)
    by_order: dict[str, set[str]] = defaultdict(set)
    ce_seen: Counter = Counter()
    event_of: dict[str, dict] = {}
    foreign = 0
    for r in recs:
        v = r.json()
        oid = v.get("order_id")
        ce = r.header("ce_id")
        ce_seen[ce] += 1
        if oid not in all_payments:
            foreign += 1
        by_order[oid].add(ce)
        event_of[ce] = {"type": r.header("ce_type"), "value": v}
    fig["outcome_records"] = len(recs)
    fig["outcome_events"] = len(event_of)
    fig["outcome_republished"] = sum(n - 1 for n in ce_seen.values() if n > 1)
    fig["outcomes_for_unknown_orders"] = foreign
    fig["lost"] = sum(1 for o in acked if o not in by_order)
    phases: dict[str, dict[str, int]] = {}
    for st in driver.states.values():
        ph = phases.setdefault(st.phase or "-", {"attempted": 0, "acknowledged_202": 0,
                                                 "with_503": 0, "lost": 0, "outcomes": 0})
        ph["attempted"] += 1
        ph["acknowledged_202"] += st.acked
        ph["with_503"] += any(a[1] == 503 for a in st.attempts)
        oid = st.payload["order_id"]
        ph["outcomes"] += len(by_order.get(oid, ()))
        ph["lost"] += st.acked and oid not in by_order
    fig["phases"] = phases
    fig["lost_order_ids"] = sorted(o for o in acked if o not in by_order)[:20]
    multi = {o: sorted(ids) for o, ids in by_order.items() if len(ids) > 1}
    fig["multi_outcome_orders"] = len(multi)
    fig["multi_outcome_examples"] = dict(list(multi.items())[:10])
    wrong_id = [o for o, ids in by_order.items()
                if o in all_payments and ids != {outcome_id_of(all_payments[o]["payment_id"])}]
    fig["outcome_id_mismatch"] = len(wrong_id)
    reasons = Counter()
    fulfilled_qty: Counter = Counter()
    for ce, ev in event_of.items():
        v = ev["value"]
        if ev["type"] == "order.fulfilled.v1":
            reasons["fulfilled"] += 1
            for it in v.get("items", []):
                fulfilled_qty[it["sku"]] += int(it["qty"])
        else:
            reasons[f"compensated:{v.get('reason')}"] += 1
    fig["outcomes_by_kind"] = dict(sorted(reasons.items()))

    # -- the orders table agrees with the topics
    rows = stack.query("SELECT order_id, status, outcome_event_id::text FROM orders")
    table = {o: (st, ce) for o, st, ce in rows}
    mismatch = 0
    for o, ids in by_order.items():
        if o not in all_payments:
            continue
        t = table.get(o)
        if t is None or t[1] not in ids:
            mismatch += 1
    mismatch += sum(1 for o in table if o not in by_order)
    fig["orders_table_mismatch"] = mismatch

    # -- stock: conservation and oversell
    stock = {sku: (a, r) for sku, a, r in stack.query("SELECT sku, available, reserved FROM stock")}
    unconserved = []
    oversold = 0
    for sku, initial in catalogue.stock.items():
        a, r = stock.get(sku, (None, None))
        if a is None or a + r != initial or r != fulfilled_qty.get(sku, 0):
            unconserved.append(f"{sku}: initial {initial} available {a} reserved {r} "
                               f"fulfilled {fulfilled_qty.get(sku, 0)}")
        oversold += max(0, fulfilled_qty.get(sku, 0) - initial)
        if a is not None and a < 0:
            oversold += -a
    fig["skus"] = len(catalogue.stock)
    fig["skus_sold_out"] = sum(1 for s in catalogue.stock if stock.get(s, (1, 0))[0] == 0)
    fig["unconserved_skus"] = len(unconserved)
    fig["unconserved_examples"] = unconserved[:10]
    fig["oversold_units"] = oversold
    # the ledger view (migration 007): stock = ledger sums = fulfilled orders
    fig["ledger_unconserved_skus"] = stack.query(
        "SELECT count(*) FROM stock_conservation WHERE NOT ok")[0][0]

    # -- notifications
    reqs = stack.sink.requests()
    by_key: dict[str, list] = defaultdict(list)
    bad_key = 0
    for r in reqs:
        key = r.header("idempotency-key")
        by_key[key].append(r)
        j = r.json if isinstance(r.json, dict) else {}
        if key != delivery_id_of(str(j.get("event_id")), str(j.get("channel"))):
            bad_key += 1
    delivered = _delivered(stack.sink)
    missing_events = 0
    missing_deliveries = 0
    examples = []
    for ce, ev in event_of.items():
        p = all_payments.get(ev["value"].get("order_id"))
        if p is None:
            continue
        miss = [ch for ch in sorted(expected_channels(p)) if delivered.get((ce, ch), 0) == 0]
        if miss:
            missing_events += 1
            missing_deliveries += len(miss)
            if len(examples) < 10:
                examples.append(f"{ev['value'].get('order_id')} {ce}: {','.join(miss)}")
    # A duplicate is a second 2xx-answered request with the same
    # Idempotency-Key. Explained when notify was SIGKILLed between the two
    # (the crash window between the provider's 2xx and the delivery log).
    dup = 0
    unexplained = 0
    dup_examples = []
    kills = sorted(faults.times("sigkill_notify")) if faults else []
    t_first = min((r.time for r in reqs), default=0.0)
    for key, rs in by_key.items():
        ok = sorted((r for r in rs if 200 <= r.status < 300), key=lambda r: r.time)
        if len(ok) > 1:
            dup += len(ok) - 1
            for prev, nxt in zip(ok, ok[1:]):
                explained = any(prev.time - 1.0 <= k <= nxt.time for k in kills)
                if not explained:
                    unexplained += 1
                if len(dup_examples) < 10 or not explained:
                    j = prev.json if isinstance(prev.json, dict) else {}
                    dup_examples.append(
                        f"{j.get('order_id')} {j.get('channel')} at +{prev.time - t_first:.1f}s and "
                        f"+{nxt.time - t_first:.1f}s ({'notify crash between' if explained else 'NO crash between'})")
    fig["duplicate_examples"] = dup_examples[:20]
    fig["sink_requests"] = len(reqs)
    fig["sink_non_2xx"] = sum(1 for r in reqs if not 200 <= r.status < 300)
    fig["idempotency_key_mismatch"] = bad_key
    fig["missing_notifications"] = missing_events
    fig["missing_deliveries"] = missing_deliveries
    fig["missing_notification_examples"] = examples
    fig["duplicate_notifications"] = dup
    fig["duplicate_notifications_outside_crash_windows"] = unexplained

    # -- dead letters (nothing here should need one)
    fig["payment_dlq_records"] = len(stack.kafka.read_all(stack.ns.topic("payment.success.dlq"),
                                                          timeout=10))
    fig["notify_dlq_records"] = len(stack.kafka.read_all(stack.ns.topic("notify.dlq"), timeout=10))
    fig["outbox_rows_left"] = stack.query("SELECT count(*) FROM outbox")[0][0]

    if faults is not None:
        fig["faults"] = dict(Counter(e["kind"] for e in faults.events))
        fig["fault_events"] = [{k: v for k, v in e.items() if k != "at"} for e in faults.events]
    return fig


def run_verify(stack: Stack) -> dict[str, Any]:
    """`ofctl --json verify`: {"rc", "checks": {name: row}, "failed": [...]}."""
    r = stack.services.ofctl("--json", "verify", timeout=180)
    checks = {}
    for line in r.stdout.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "check" in row:
            checks[row["check"]] = row
    failed = [k for k, v in checks.items() if not v.get("ok")]
    return {"rc": r.returncode, "checks": checks, "failed": failed,
            "stderr": r.stderr[-2000:], "stdout": r.stdout[-4000:]}


TABLE_ROWS = (
    ("attempted", "payments attempted"),
    ("acknowledged_202", "acknowledged (202)"),
    ("first_try_202", "  of which at the first try"),
    ("responses_503", "503 responses"),
    ("payments_with_503", "payments that got a 503"),
    ("payments_with_503_later_202", "  of which later acknowledged (retried)"),
    ("connection_errors", "connection errors at the gateway"),
    ("rejected", "rejected (4xx)"),
    ("unacknowledged", "never acknowledged"),
    ("lost", "LOST: acknowledged, no outcome"),
    ("multi_outcome_orders", "orders with more than one outcome"),
    ("outcome_id_mismatch", "outcome ids not derived from the payment"),
    ("orders_table_mismatch", "orders table vs topics mismatches"),
    ("unconserved_skus", "skus with stock not conserved"),
    ("ledger_unconserved_skus", "skus not conserved per the ledger view"),
    ("oversold_units", "oversold units"),
    ("missing_notifications", "outcome events missing notifications"),
    ("duplicate_notifications", "duplicate notifications at the sink"),
    ("duplicate_notifications_outside_crash_windows", "  of which outside notify crash windows"),
    ("outcome_republished", "outcome records republished (same ce_id)"),
    ("payment_dlq_records", "payment.success.dlq records"),
    ("notify_dlq_records", "notify.dlq records"),
    ("outcome_events", "outcome events"),
    ("sink_requests", "notification requests at the sink"),
    ("skus", "skus"),
    ("skus_sold_out", "skus sold out"),
)


def format_table(fig: dict[str, Any], title: str = "figures") -> str:
    w = max(len(label) for _, label in TABLE_ROWS)
    lines = [f"=== {title} ==="]
    for key, label in TABLE_ROWS:
        if key in fig:
            lines.append(f"  {label:<{w}}  {fig[key]}")
    for key in ("outcomes_by_kind", "faults", "phases", "ofctl_verify"):
        if key in fig:
            lines.append(f"  {key:<{w}}  {fig[key]}")
    return "\n".join(lines)


def write_json(fig: dict[str, Any], *paths: Path) -> None:
    data = json.dumps(fig, indent=2, sort_keys=True, default=str) + "\n"
    for p in paths:
        p = Path(p)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(data)
        os.replace(tmp, p)


def machine_info() -> dict[str, Any]:
    import platform
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu": model,
            "kernel": platform.release(), "bin_dir": str(bin_dir()), "asan": is_asan_build()}
