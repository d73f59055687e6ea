"""System tests of inventory (contract sections 3, 4, 5 and 7) against a real
Kafka broker and a real PostgreSQL: reservations, exactly one outcome per
order, idempotency, the DLQ, the HTTP API, concurrency across two instances,
PostgreSQL outages and crashes."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest
import requests

from harness import ADMIN_TOKEN, REPO_ROOT, payment, wait_until

OUTCOME_NS = uuid.UUID("9ec18149-b93d-4fe6-b287-c05ccf16105f")   # OF_UUID_NS_OUTCOME
PAYMENT_NS = uuid.UUID("743b2e14-4ae8-4d33-af31-19c2d802bb57")   # OF_UUID_NS_PAYMENT
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

DLQ_HEADERS = ("dlq.original.topic", "dlq.original.partition", "dlq.original.offset",
               "dlq.original.timestamp", "dlq.consumer.group", "dlq.service",
               "dlq.error.class", "dlq.error.message", "dlq.attempts", "dlq.failed.at")


# --- helpers -----------------------------------------------------------------------

def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event_id_of(payment_id: str) -> str:
    return str(uuid.uuid5(PAYMENT_NS, payment_id))


def outcome_id_of(payment_id: str) -> str:
    return str(uuid.uuid5(OUTCOME_NS, event_id_of(payment_id)))


def record_value(p: dict, received_at: str | None = None) -> dict:
    """The payment.success value payment-gw would produce for p."""
    v = dict(p)
    v["event_id"] = event_id_of(p["payment_id"])
    v["received_at"] = received_at or now_rfc3339()
    return v


def record_headers(p: dict) -> dict:
    return {"ce_specversion": "1.0", "ce_id": event_id_of(p["payment_id"]),
            "ce_type": "payment.success.v1", "ce_source": "/payment-gw",
            "ce_time": now_rfc3339(), "content-type": "application/json",
            "traceparent": TRACEPARENT}


def publish(kafka, ns, p: dict, received_at: str | None = None, partition=None):
    """Produces p to payment.success as payment-gw would (key order_id)."""
    return kafka.produce(ns.topic("payment.success"), p["order_id"], record_value(p, received_at),
                         headers=record_headers(p), partition=partition)


def publish_many(kafka, ns, payments: list[dict]) -> None:
    """Produces many payments quickly (one flush)."""
    prod = kafka.producer()
    errors = []

    def dr(err, msg):
        if err is not None:
            errors.append(err)

    topic = ns.topic("payment.success")
    for p in payments:
        hdrs = [(k, v.encode()) for k, v in record_headers(p).items()]
        prod.produce(topic, key=p["order_id"].encode(),
                     value=json.dumps(record_value(p), separators=(",", ":")).encode(),
                     headers=hdrs, on_delivery=dr)
        prod.poll(0)
    assert prod.flush(60) == 0
    assert not errors, errors


def put_stock(svc, sku: str, n: int) -> dict:
    r = svc.put(f"/v1/stock/{sku}", json={"available": n}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def get_stock(svc, sku: str) -> dict:
    r = svc.get(f"/v1/stock/{sku}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_order(svc, order_id: str, timeout: float = 30) -> dict:
    def get():
        r = svc.get(f"/v1/orders/{order_id}", params={"wait": "5"}, timeout=10)
        return r.json() if r.status_code == 200 else None
    return wait_until(get, timeout=timeout, message=f"outcome of {order_id}")


def outcomes(kafka, ns, min_count: int = 0, timeout: float = 30):
    """Every record of order.fulfilled and order.compensation."""
    deadline = time.monotonic() + timeout
    while True:
        recs = (kafka.read_all(ns.topic("order.fulfilled"), timeout=5)
                + kafka.read_all(ns.topic("order.compensation"), timeout=5))
        if len(recs) >= min_count or time.monotonic() >= deadline:
            return recs
        time.sleep(0.3)


def dlq_records(kafka, ns, min_count: int = 0, timeout: float = 30):
    return kafka.read_all(ns.topic("payment.success.dlq"), timeout=timeout, min_count=min_count)


def metric(svc, name: str, labels: dict | None = None) -> float:
    """The value of one series in /metrics (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in (labels or {}).items())
    total = 0.0
    for line in svc.metrics().splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        if labels and want not in (m.group(3) or ""):
            continue
        total += float(m.group(4))
    return total


def consumed_all(kafka, ns, count: int) -> bool:
    """True once group <prefix>inventory committed `count` records in total."""
    offs = kafka.committed(ns.group("inventory"), ns.topic("payment.success"))
    return sum(o for o in offs.values() if o >= 0) >= count


def check_ce_headers(rec, ce_type: str):
    assert rec.header("ce_specversion") == "1.0"
    assert rec.header("ce_type") == ce_type
    assert rec.header("ce_source") == "/inventory"
    assert rec.header("content-type") == "application/json"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", rec.header("ce_time") or "")
    tp = rec.header("traceparent") or ""
    assert re.match(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$", tp), tp
    return tp


def conservation(db) -> list[tuple]:
    return db.query("SELECT sku, available, reserved, ledger_available, ledger_reserved, "
                    "adjusted, order_reserved, ok FROM stock_conservation ORDER BY sku")


@pytest.fixture
def inv(services):
    return services.start("inventory")


# --- section 5: the reservation semantics -------------------------------------------

def test_fulfilled_reserves_every_item(kafka, ns, db, inv):
    put_stock(inv, "SKU-A", 5)
    put_stock(inv, "SKU-B", 3)
    p = payment(items=[{"sku": "SKU-B", "qty": 1}, {"sku": "SKU-A", "qty": 2}],
                email="ana@example.com", phone="+4915112345678")
    publish(kafka, ns, p)

    order = wait_order(inv, p["order_id"])
    assert order["status"] == "fulfilled"
    assert order["payment_id"] == p["payment_id"]
    assert order["event_id"] == event_id_of(p["payment_id"])
    assert "reason" not in order
    assert sorted((i["sku"], i["qty"]) for i in order["items"]) == [("SKU-A", 2), ("SKU-B", 1)]
    assert re.match(r"^\d{4}-\d\d-\d\dT", order["updated_at"])

    a, b = get_stock(inv, "SKU-A"), get_stock(inv, "SKU-B")
    assert (a["available"], a["reserved"], a["version"]) == (3, 2, 2)
    assert (b["available"], b["reserved"], b["version"]) == (2, 1, 2)

    recs = outcomes(kafka, ns, 1)
    assert len(recs) == 1
    rec = recs[0]
    assert rec.topic == ns.topic("order.fulfilled")
    assert rec.key == p["order_id"].encode()
    tp = check_ce_headers(rec, "order.fulfilled.v1")
    assert tp.split("-")[1] == TRACE_ID            # carried on: same trace
    assert tp.split("-")[2] != TRACEPARENT.split("-")[2]  # a child span
    v = rec.json()
    assert rec.header("ce_id") == v["event_id"] == outcome_id_of(p["payment_id"])
    assert v["order_id"] == p["order_id"]
    assert v["payment_id"] == p["payment_id"]
    assert v["payment_event_id"] == event_id_of(p["payment_id"])
    assert v["items"] == [{"sku": "SKU-B", "qty": 1, "stock_version": 2},
                          {"sku": "SKU-A", "qty": 2, "stock_version": 2}]
    assert v["customer"] == p["customer"]
    assert re.match(r"^\d{4}-\d\d-\d\dT", v["fulfilled_at"])
    assert all(row[-1] for row in conservation(db))
    assert metric(inv, "orderflow_inventory_reservations_total", {"result": "fulfilled"}) == 1


def test_all_or_nothing_with_one_short_item(kafka, ns, db, inv):
    put_stock(inv, "SKU-A", 5)
    put_stock(inv, "SKU-B", 1)
    put_stock(inv, "SKU-C", 5)
    p = payment(items=["SKU-A:2", "SKU-B:2", "SKU-C:1"], amount_cents=1234, currency="USD")
    publish(kafka, ns, p)

    order = wait_order(inv, p["order_id"])
    assert order["status"] == "compensated"
    assert order["reason"] == "insufficient_stock"
    for sku, avail in (("SKU-A", 5), ("SKU-B", 1), ("SKU-C", 5)):
        s = get_stock(inv, sku)
        assert (s["available"], s["reserved"], s["version"]) == (avail, 0, 1), s

    recs = outcomes(kafka, ns, 1)
    assert len(recs) == 1
    rec = recs[0]
    assert rec.topic == ns.topic("order.compensation")
    check_ce_headers(rec, "order.compensation.v1")
    v = rec.json()
    assert v["event_id"] == rec.header("ce_id") == outcome_id_of(p["payment_id"])
    assert v["reason"] == "insufficient_stock"
    assert v["details"] == [{"sku": "SKU-B", "requested": 2, "available": 1,
                             "problem": "insufficient_stock"}]
    assert v["refund"] == {"amount_cents": 1234, "currency": "USD"}
    assert v["customer"] == p["customer"]
    assert v["payment_event_id"] == event_id_of(p["payment_id"])
    assert re.match(r"^\d{4}-\d\d-\d\dT", v["compensated_at"])
    assert db.query("SELECT count(*) FROM stock_ledger WHERE kind = 'reserve'") == [(0,)]


def test_unknown_sku_is_compensated(kafka, ns, db, inv):
    put_stock(inv, "SKU-A", 5)
    p = payment(items=["SKU-A:1", "SKU-NOPE:1"])
    publish(kafka, ns, p)
    order = wait_order(inv, p["order_id"])
    assert (order["status"], order["reason"]) == ("compensated", "unknown_sku")
    v = outcomes(kafka, ns, 1)[0].json()
    assert v["reason"] == "unknown_sku"
    assert {"sku": "SKU-NOPE", "requested": 1, "available": 0, "problem": "unknown_sku"} in v["details"]
    assert get_stock(inv, "SKU-A") == {"sku": "SKU-A", "available": 5, "reserved": 0, "version": 1}
    assert inv.get("/v1/stock/SKU-NOPE").status_code == 404


def test_same_payment_redelivered_has_no_effect(kafka, ns, db, inv):
    put_stock(inv, "SKU-A", 5)
    p = payment(items=["SKU-A:2"])
    publish(kafka, ns, p, received_at="2026-11-22T10:00:01Z")
    wait_order(inv, p["order_id"])
    # The same payment posted again: new received_at, same content.
    publish(kafka, ns, p, received_at="2026-11-22T10:05:00Z")
    publish(kafka, ns, p)
    wait_until(lambda: metric(inv, "orderflow_inventory_reservations_total",
                              {"result": "redelivered"}) == 2, timeout=30)
    assert get_stock(inv, "SKU-A")["reserved"] == 2
    time.sleep(1.5)  # give the relay time to publish anything it (wrongly) would
    recs = outcomes(kafka, ns, 1)
    assert len(recs) == 1
    assert len(dlq_records(kafka, ns, timeout=3)) == 0
    assert db.query("SELECT count(*) FROM payment_inbox") == [(1,)]


def test_same_payment_id_other_content_is_idempotency_conflict(kafka, ns, db, inv):
    put_stock(inv, "SKU-A", 5)
    p = payment(items=["SKU-A:2"])
    publish(kafka, ns, p)
    wait_order(inv, p["order_id"])
    changed = dict(p, items=[{"sku": "SKU-A", "qty": 3}])
    value = record_value(changed)
    hdrs = record_headers(changed)
    part, off = kafka.produce(ns.topic("payment.success"), changed["order_id"], value, headers=hdrs)

    dlq = dlq_records(kafka, ns, 1)
    assert len(dlq) == 1
    d = dlq[0]
    assert d.key == p["order_id"].encode()
    assert d.value == json.dumps(value, separators=(",", ":")).encode()  # byte for byte
    for k, v in hdrs.items():
        assert d.header(k) == v
    for h in DLQ_HEADERS:
        assert d.header(h) is not None, h
    assert d.header("dlq.error.class") == "idempotency_conflict"
    assert d.header("dlq.original.topic") == ns.topic("payment.success")
    assert int(d.header("dlq.original.partition")) == part
    assert int(d.header("dlq.original.offset")) == off
    assert d.header("dlq.consumer.group") == ns.group("inventory")
    assert d.header("dlq.service") == "inventory"
    assert len(d.headers["dlq.error.message"]) <= 1024
    # nothing else happened
    time.sleep(1.5)
    assert len(outcomes(kafka, ns, 1)) == 1
    assert get_stock(inv, "SKU-A")["reserved"] == 2
    assert db.query("SELECT count(*) FROM payment_inbox") == [(1,)]
    assert metric(inv, "orderflow_inventory_dlq_total", {"error_class": "idempotency_conflict"}) == 1


def test_second_payment_for_an_order_is_refunded_as_duplicate(kafka, ns, db, inv):
    put_stock(inv, "SKU-A", 5)
    first = payment(items=["SKU-A:2"])
    publish(kafka, ns, first)
    wait_order(inv, first["order_id"])
    second = payment(order_id=first["order_id"], items=["SKU-A:1"], amount_cents=777)
    publish(kafka, ns, second)

    recs = outcomes(kafka, ns, 2)
    assert len(recs) == 2
    comp = [r for r in recs if r.topic == ns.topic("order.compensation")]
    assert len(comp) == 1
    v = comp[0].json()
    assert v["reason"] == "duplicate_payment"
    assert v["payment_id"] == second["payment_id"]
    assert v["order_id"] == first["order_id"]
    assert v["refund"] == {"amount_cents": 777, "currency": "EUR"}
    assert v["event_id"] == outcome_id_of(second["payment_id"])
    assert comp[0].key == first["order_id"].encode()
    # no stock touched; the order keeps its one outcome
    s = get_stock(inv, "SKU-A")
    assert (s["available"], s["reserved"], s["version"]) == (3, 2, 2)
    order = inv.get(f"/v1/orders/{first['order_id']}").json()
    assert order["status"] == "fulfilled" and order["payment_id"] == first["payment_id"]
    assert db.query("SELECT count(*) FROM orders") == [(1,)]


def test_poison_record_then_valid_one_on_the_same_partition(kafka, ns, db, inv):
    put_stock(inv, "SKU-A", 5)
    p = payment(items=["SKU-A:1"])
    topic = ns.topic("payment.success")
    part, off_bad = kafka.produce(topic, p["order_id"], b"{not json", partition=0,
                                  headers={"traceparent": TRACEPARENT})
    bad_schema = dict(record_value(payment(order_id=p["order_id"])), items=[{"sku": "SKU-A", "qty": 0}])
    _, off_schema = kafka.produce(topic, p["order_id"], bad_schema, partition=0)
    _, off_good = publish(kafka, ns, p, partition=0)
    assert off_bad < off_schema < off_good

    order = wait_order(inv, p["order_id"])
    assert order["status"] == "fulfilled"
    dlq = dlq_records(kafka, ns, 2)
    assert [int(d.header("dlq.original.offset")) for d in dlq] == [off_bad, off_schema]
    assert dlq[0].value == b"{not json"
    assert dlq[0].header("traceparent") == TRACEPARENT
    assert dlq[0].header("dlq.error.class") == "invalid_json"
    assert dlq[1].header("dlq.error.class") == "schema_violation"
    assert "items[0].qty" in dlq[1].header("dlq.error.message")
    for d in dlq:
        assert d.key == p["order_id"].encode()
        assert int(d.header("dlq.original.partition")) == 0
        assert d.header("dlq.attempts") == "1"
    wait_until(lambda: consumed_all(kafka, ns, 3), timeout=20, message="offsets committed")
    assert metric(inv, "orderflow_inventory_dlq_total", {"error_class": "invalid_json"}) == 1


def test_batch_with_a_record_postgres_refuses_is_split(kafka, ns, db, services):
    """A record PostgreSQL refuses for good (here: a CHECK constraint added by
    the test) is dead-lettered alone; the rest of its batch is applied."""
    inv = services.start("inventory")
    put_stock(inv, "SKU-A", 10)
    inv.stop()
    db.query("ALTER TABLE orders ADD CONSTRAINT test_no_poison CHECK (order_id <> 'ord_poison')")
    pays = [payment(items=["SKU-A:1"]) for _ in range(2)]
    pays.append(payment(order_id="ord_poison", items=["SKU-A:1"]))
    pays += [payment(items=["SKU-A:1"]) for _ in range(2)]
    for p in pays:  # one partition, so the restarted consumer sees them in one batch
        publish(kafka, ns, p, partition=1)
    inv.start().wait_ready()

    for p in pays[:2] + pays[3:]:
        assert wait_order(inv, p["order_id"])["status"] == "fulfilled"
    dlq = dlq_records(kafka, ns, 1)
    assert len(dlq) == 1
    assert dlq[0].key == b"ord_poison"
    assert dlq[0].header("dlq.error.class") == "permanent_failure"
    assert "23514" in dlq[0].header("dlq.error.message")
    assert int(dlq[0].header("dlq.attempts")) >= 2  # in the batch, then alone
    assert get_stock(inv, "SKU-A")["reserved"] == 4
    assert inv.get("/v1/orders/ord_poison").status_code == 404
    assert metric(inv, "orderflow_inventory_transaction_failures_total", {"class": "permanent"}) >= 1
    recs = outcomes(kafka, ns, 4)
    assert sorted(r.key for r in recs) == sorted(p["order_id"].encode() for p in pays if p["order_id"] != "ord_poison")
    wait_until(lambda: consumed_all(kafka, ns, 5), timeout=20, message="offsets committed")


# --- extension: outcome events carry the payment's received_at ---------------------

def produce_payment_value(kafka, ns, p: dict, received_at=..., partition=None):
    """Produces p like publish(), but received_at may also be left out (...)
    or be any JSON value (None -> null)."""
    v = record_value(p)
    if received_at is ...:
        del v["received_at"]
    else:
        v["received_at"] = received_at
    return kafka.produce(ns.topic("payment.success"), p["order_id"], v,
                         headers=record_headers(p), partition=partition)


def outcomes_by_payment(kafka, ns, count: int) -> dict:
    recs = outcomes(kafka, ns, count)
    assert len(recs) == count, [r.json() for r in recs]
    by = {r.json()["payment_id"]: r for r in recs}
    assert len(by) == count
    return by


def test_outcomes_carry_payment_received_at(kafka, ns, db, services):
    """Every outcome value has `payment_received_at` = the received_at of the
    payment.success value that caused it, verbatim (fulfilled, and each kind
    of compensation, through the set-based and the sequential SQL path);
    without received_at in the payment the field is left out; a malformed
    one is a schema violation."""
    inv = services.start("inventory")
    put_stock(inv, "SKU-A", 10)
    put_stock(inv, "SKU-C", 1)
    want = {}

    # Set-based path (no order, payment or over-asked sku twice in a batch):
    # fulfilled, unknown_sku, no received_at at all.
    ful = payment(items=["SKU-A:2"])
    unk = payment(items=["SKU-A:1", "SKU-NOPE:1"])
    bare = payment(items=["SKU-A:1"])
    publish(kafka, ns, ful, received_at="2026-11-22T10:00:00.125Z")
    publish(kafka, ns, unk, received_at="2026-11-22T11:00:01.5+01:00")  # kept as is
    produce_payment_value(kafka, ns, bare)
    want.update({ful["payment_id"]: "2026-11-22T10:00:00.125Z",
                 unk["payment_id"]: "2026-11-22T11:00:01.5+01:00",
                 bare["payment_id"]: None})
    for p in (ful, unk, bare):
        wait_order(inv, p["order_id"])
    # A second payment for a decided order, alone: duplicate_payment.
    dup = payment(order_id=ful["order_id"], items=["SKU-A:1"])
    publish(kafka, ns, dup, received_at="2026-11-22T10:00:02Z")
    want[dup["payment_id"]] = "2026-11-22T10:00:02Z"
    wait_until(lambda: db.query("SELECT count(*) FROM payment_inbox")[0][0] == 4, timeout=30,
               message="duplicate payment decided")

    # Sequential path: one partition while inventory is stopped, so the
    # restarted consumer takes them as one batch, with SKU-C asked for twice
    # its stock (and an order twice): fulfilled, insufficient_stock,
    # duplicate_payment, a null received_at, and a malformed one (DLQ).
    inv.stop()
    seq_ok = payment(items=["SKU-C:1"])
    seq_short = payment(items=["SKU-C:1"])
    seq_dup = payment(order_id=seq_ok["order_id"], items=["SKU-A:1"])
    seq_null = payment(items=["SKU-A:1"])
    seq_bad = payment(items=["SKU-A:1"])
    publish(kafka, ns, seq_ok, received_at="2026-11-22T10:01:00.000Z", partition=1)
    publish(kafka, ns, seq_short, received_at="2026-11-22T10:01:00.001Z", partition=1)
    publish(kafka, ns, seq_dup, received_at="2026-11-22T10:01:00.002Z", partition=1)
    produce_payment_value(kafka, ns, seq_null, received_at=None, partition=1)
    produce_payment_value(kafka, ns, seq_bad, received_at="yesterday", partition=1)
    want.update({seq_ok["payment_id"]: "2026-11-22T10:01:00.000Z",
                 seq_short["payment_id"]: "2026-11-22T10:01:00.001Z",
                 seq_dup["payment_id"]: "2026-11-22T10:01:00.002Z",
                 seq_null["payment_id"]: None})
    inv.start().wait_ready()

    by = outcomes_by_payment(kafka, ns, len(want))
    kinds = {pid: (r.topic, r.json().get("reason")) for pid, r in by.items()}
    fulfilled, compensation = ns.topic("order.fulfilled"), ns.topic("order.compensation")
    assert kinds == {
        ful["payment_id"]: (fulfilled, None),
        unk["payment_id"]: (compensation, "unknown_sku"),
        bare["payment_id"]: (fulfilled, None),
        dup["payment_id"]: (compensation, "duplicate_payment"),
        seq_ok["payment_id"]: (fulfilled, None),
        seq_short["payment_id"]: (compensation, "insufficient_stock"),
        seq_dup["payment_id"]: (compensation, "duplicate_payment"),
        seq_null["payment_id"]: (fulfilled, None),
    }
    for pid, rec in by.items():
        v = rec.json()
        if want[pid] is None:
            assert "payment_received_at" not in v, v
        else:
            assert v["payment_received_at"] == want[pid], v
        # the contract's fields are all still there
        common = {"event_id", "order_id", "payment_id", "payment_event_id", "customer"}
        extra = ({"items", "fulfilled_at"} if rec.topic == fulfilled
                 else {"reason", "details", "refund", "compensated_at"})
        assert set(v) - {"payment_received_at"} == common | extra, v
    # every row published, then deleted
    wait_until(lambda: db.query("SELECT count(*) FROM outbox") == [(0,)], timeout=20,
               message="outbox drained")

    dlq = dlq_records(kafka, ns, 1)
    assert len(dlq) == 1
    assert dlq[0].key == seq_bad["order_id"].encode()
    assert dlq[0].header("dlq.error.class") == "schema_violation"
    assert dlq[0].header("dlq.error.message").startswith("received_at: ")
    assert all(row[-1] for row in conservation(db))


def test_upgrade_to_008_publishes_old_outbox_rows_without_the_field(kafka, ns, db, services):
    """A database at 001-007 (+ notify's 010), as users have it, with an
    outcome still in the outbox: inventory applies 008 and 011 at start, the
    old row goes out without payment_received_at and without tracestate,
    new ones carry them."""
    sql_dir = REPO_ROOT / "deploy" / "sql"
    old = sorted(f for f in sql_dir.glob("*.sql") if f.name[:3] <= "007" or f.name[:3] == "010")
    assert [f.name[:3] for f in old] == ["001", "002", "003", "004", "005", "006", "007", "010"]

    def as_owner(sql, params=None):  # the services' role owns the schema
        return db.pg.query(db.name, sql, params, user="orderflow")

    as_owner("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
             "applied_at timestamptz NOT NULL DEFAULT now())")
    for f in old:
        as_owner(f.read_text())
        as_owner("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                 (int(f.name[:3]), f.name))
    # The pre-upgrade inventory decided a payment; its outcome is not published yet.
    as_owner("SELECT * FROM inv_set_stock('SKU-U', 5, 'test')")
    pre = payment(items=["SKU-U:1"])
    elem = {"i": 0, "payment_id": pre["payment_id"], "event_id": event_id_of(pre["payment_id"]),
            "outcome_event_id": outcome_id_of(pre["payment_id"]), "order_id": pre["order_id"],
            "sha256": "00" * 32, "amount_cents": pre["amount_cents"], "currency": "EUR",
            "items": pre["items"], "customer": pre["customer"], "traceparent": TRACEPARENT,
            "part": 0, "off": 0,
            "received_at": "2026-11-22T09:00:00Z"}  # the old function ignores it
    rows = as_owner("SELECT out_result FROM inv_reserve_batch(%s::jsonb, %s, %s, %s)",
                    (json.dumps([elem]), now_rfc3339(), ns.topic("order.fulfilled"),
                     ns.topic("order.compensation")))
    assert rows == [("fulfilled",)]
    assert as_owner("SELECT count(*) FROM outbox") == [(1,)]

    inv = services.start("inventory")
    applied = [json.loads(line).get("migration") for line in inv.log().splitlines()
               if '"migration applied"' in line]
    assert applied == ["008_outbox_payment_received_at.sql", "011_outbox_tracestate.sql"]
    assert db.query("SELECT max(version), count(*) FROM schema_migrations") == [(11, 10)]

    put_stock(inv, "SKU-U", 5)
    post = payment(items=["SKU-U:1"])
    publish_with(kafka, ns, post, {**record_headers(post), "tracestate": "rojo=1"},
                 json.dumps(record_value(post, "2026-11-22T10:00:00.5Z"), separators=(",", ":")).encode())
    by = outcomes_by_payment(kafka, ns, 2)
    old_v, new_v = by[pre["payment_id"]].json(), by[post["payment_id"]].json()
    assert by[pre["payment_id"]].header("ce_id") == outcome_id_of(pre["payment_id"])
    assert "payment_received_at" not in old_v, old_v
    assert old_v["items"] == [{"sku": "SKU-U", "qty": 1, "stock_version": 2}]
    assert new_v["payment_received_at"] == "2026-11-22T10:00:00.5Z"
    assert by[pre["payment_id"]].header("tracestate") is None
    assert by[post["payment_id"]].header("tracestate") == "rojo=1"
    wait_until(lambda: db.query("SELECT count(*) FROM outbox") == [(0,)], timeout=20,
               message="outbox drained")


# --- section 3: the HTTP API -------------------------------------------------------

def test_stock_api(inv, db):
    assert inv.get("/v1/stock/SKU-X").status_code == 404
    r = inv.put("/v1/stock/SKU-X", json={"available": 7})
    assert r.status_code == 401
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert inv.put("/v1/stock/SKU-X", json={"available": 7},
                   headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert inv.put("/v1/stock/SKU-X", json={"available": 7},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"}).status_code == 401
    assert inv.put("/v1/stock/SKU-X", json={"available": 7},
                   headers={"Authorization": f"Basic {ADMIN_TOKEN}"}).status_code == 401
    assert inv.get("/v1/stock/SKU-X").status_code == 404  # nothing created

    assert put_stock(inv, "SKU-X", 7) == {"sku": "SKU-X", "available": 7, "reserved": 0, "version": 1}
    assert put_stock(inv, "SKU-X", 3) == {"sku": "SKU-X", "available": 3, "reserved": 0, "version": 2}
    assert get_stock(inv, "SKU-X") == {"sku": "SKU-X", "available": 3, "reserved": 0, "version": 2}
    assert put_stock(inv, "SKU-X", 0)["version"] == 3

    for body in ({"available": -1}, {"available": 1.5}, {"available": "3"}, {}, [1]):
        r = inv.put("/v1/stock/SKU-X", json=body, headers=AUTH)
        assert r.status_code == 400, body
        assert r.headers["Content-Type"].startswith("application/problem+json")
    assert inv.put("/v1/stock/SKU-X", data=b"{nope", headers=AUTH).status_code == 400
    # Integral values written with a fraction or an exponent (cJSON would
    # round 1.0000000000000001 to 1): the text decides.
    for raw in (b"1.0000000000000001", b"5.0", b"1e3", b"5E0", b"999999999999999.99"):
        r = inv.put("/v1/stock/SKU-X", data=b'{"available": ' + raw + b"}", headers=AUTH)
        assert r.status_code == 400, (raw, r.text)
        doc = r.json()
        assert doc["errors"][0]["field"] == "available", doc
        assert "without a fraction or an exponent" in doc["errors"][0]["message"], doc
    assert inv.put("/v1/stock/bad%20sku", json={"available": 1}, headers=AUTH).status_code == 400
    assert inv.get("/v1/stock/SKU-X").json()["available"] == 0
    assert inv.request("DELETE", "/v1/stock/SKU-X").status_code == 405
    # conservation holds over adjustments: ledger records each delta
    rows = conservation(db)
    assert rows == [("SKU-X", 0, 0, 0, 0, 0, 0, True)]
    assert db.query("SELECT delta_available FROM stock_ledger ORDER BY id") == [(7,), (-4,), (-3,)]
    # The largest stock prints as an integer, not 1e+15 (SECURITY.md F6).
    r = inv.put("/v1/stock/SKU-MAX", json={"available": 10**15}, headers=AUTH)
    assert r.status_code == 200 and '"available":1000000000000000' in r.text, r.text
    r = inv.get("/v1/stock/SKU-MAX")
    assert '"available":1000000000000000' in r.text and r.json()["available"] == 10**15, r.text
    assert type(r.json()["available"]) is int


def test_order_status_long_poll(kafka, ns, inv):
    put_stock(inv, "SKU-A", 5)
    p = payment(items=["SKU-A:1"])
    r = inv.get(f"/v1/orders/{p['order_id']}")
    assert r.status_code == 404
    t0 = time.monotonic()
    assert inv.get(f"/v1/orders/{p['order_id']}", params={"wait": "1"}).status_code == 404
    assert time.monotonic() - t0 >= 0.9
    assert inv.get(f"/v1/orders/{p['order_id']}", params={"wait": "soon"}).status_code == 400
    # Above the maximum (30 s): a 400 naming wait, not a wait silently cut
    # to 30 s and then a 404 (issue 15 defect 10).
    for wait in ("31", "30.5", "3600"):
        r = inv.get(f"/v1/orders/{p['order_id']}", params={"wait": wait}, timeout=40)
        assert r.status_code == 400, (wait, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
        doc = r.json()
        assert doc["status"] == 400 and [e["field"] for e in doc["errors"]] == ["wait"], doc
        assert "at most 30" in doc["errors"][0]["message"], doc

    result = {}

    def poll():
        result["r"] = inv.get(f"/v1/orders/{p['order_id']}", params={"wait": "30"}, timeout=40)

    # Several long-polls in flight at once must not block the API.
    threads = [threading.Thread(target=poll) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert inv.get("/v1/stock/SKU-A").status_code == 200
    assert inv.get("/healthz").status_code == 200
    publish(kafka, ns, p)
    for t in threads:
        t.join(40)
    r = result["r"]
    assert r.status_code == 200
    assert r.json()["status"] == "fulfilled"
    assert r.json()["order_id"] == p["order_id"]


def test_health_ready_metrics(inv):
    assert inv.get("/healthz").status_code == 200
    assert inv.get("/readyz").status_code == 200
    text = inv.metrics()
    for name in ("orderflow_inventory_records_consumed_total",
                 "orderflow_inventory_batch_size", "orderflow_inventory_outbox_backlog",
                 "orderflow_inventory_transaction_duration_seconds"):
        assert name in text, name


# --- concurrency, outages, crashes ---------------------------------------------------

def test_hot_sku_two_instances_no_oversell(kafka, ns, db, services):
    a = services.start("inventory")
    b = services.start("inventory")
    put_stock(a, "HOT", 50)
    # both members hold partitions before the flood
    wait_until(lambda: both_assigned(a, b), timeout=60,
               message="both instances assigned partitions")
    pays = [payment(items=["HOT:1"]) for _ in range(200)]
    publish_many(kafka, ns, pays)

    def decided():
        return db.query("SELECT count(*) FROM orders")[0][0] == 200
    wait_until(decided, timeout=90, message="200 orders decided")
    recs = outcomes(kafka, ns, 200, timeout=60)
    by_type = Counter(r.topic for r in recs)
    assert by_type[ns.topic("order.fulfilled")] == 50
    assert by_type[ns.topic("order.compensation")] == 150
    assert len({r.header("ce_id") for r in recs}) == 200
    assert all(r.json()["reason"] == "insufficient_stock"
               for r in recs if r.topic == ns.topic("order.compensation"))
    s = get_stock(b, "HOT")
    assert (s["available"], s["reserved"]) == (0, 50)
    assert s["version"] == 51
    assert db.query("SELECT status, count(*) FROM orders GROUP BY 1 ORDER BY 1") == [
        ("compensated", 150), ("fulfilled", 50)]
    assert all(row[-1] for row in conservation(db))
    versions = sorted(r.json()["items"][0]["stock_version"]
                      for r in recs if r.topic == ns.topic("order.fulfilled"))
    assert versions == list(range(2, 52))  # each reservation its own version
    # both instances did work
    assert metric(a, "orderflow_inventory_records_consumed_total") > 0
    assert metric(b, "orderflow_inventory_records_consumed_total") > 0


def current_partitions(svc) -> set[str]:
    """The partitions the instance holds, from its last rebalance log line."""
    held: set[str] = set()
    for line in svc.log().splitlines():
        if "kafka partitions" not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        parts = set(filter(None, entry.get("partitions", "").split(",")))
        if entry.get("msg") == "kafka partitions assigned":
            held |= parts
        elif entry.get("msg") in ("kafka partitions revoked", "kafka partitions lost"):
            held -= parts
    return held


def both_assigned(a, b) -> bool:
    pa, pb = current_partitions(a), current_partitions(b)
    return bool(pa) and bool(pb) and not (pa & pb) and len(pa | pb) == 3


def _exactly_one_outcome_each(kafka, ns, pays, timeout=90):
    """Every payment has exactly one outcome ce_id (duplicates only with the same
    ce_id); returns (records, duplicates)."""
    recs = outcomes(kafka, ns, len(pays), timeout=timeout)
    by_order = defaultdict(set)
    for r in recs:
        by_order[r.json()["order_id"]].add(r.header("ce_id"))
    missing = [p["order_id"] for p in pays if p["order_id"] not in by_order]
    assert not missing, f"{len(missing)} orders without an outcome, e.g. {missing[:3]}"
    for p in pays:
        assert by_order[p["order_id"]] == {outcome_id_of(p["payment_id"])}
    dups = len(recs) - len({r.header("ce_id") for r in recs})
    return recs, dups


def test_postgres_stopped_mid_stream(kafka, ns, db, pg, inv):
    for i in range(10):
        put_stock(inv, f"SKU-{i}", 1000)
    pays = [payment(items=[f"SKU-{i % 10}:1"]) for i in range(600)]
    publish_many(kafka, ns, pays[:200])
    wait_until(lambda: db.query("SELECT count(*) FROM orders")[0][0] >= 50, timeout=60)

    stopper = threading.Thread(target=lambda: publish_many(kafka, ns, pays[200:400]))
    stopper.start()
    pg.stop("fast")
    try:
        stopper.join(60)
        wait_until(lambda: inv.get("/readyz", timeout=5).status_code == 503, timeout=15,
                   message="/readyz 503 while PostgreSQL is down")
        assert inv.get("/v1/stock/SKU-0").status_code == 503
        time.sleep(10)
        publish_many(kafka, ns, pays[400:])
    finally:
        pg.start()
    wait_until(lambda: inv.get("/readyz", timeout=5).status_code == 200, timeout=30,
               message="/readyz 200 after PostgreSQL is back")
    wait_until(lambda: db.query("SELECT count(*) FROM orders")[0][0] == 600, timeout=90,
               message="all 600 orders decided")
    recs, dups = _exactly_one_outcome_each(kafka, ns, pays)
    assert dups == 0, f"{dups} duplicate outcome records without a crash"
    assert len(recs) == 600
    assert all(r.topic == ns.topic("order.fulfilled") for r in recs)
    assert len(dlq_records(kafka, ns, timeout=3)) == 0
    assert all(row[-1] for row in conservation(db))
    assert sum(row[2] for row in conservation(db)) == 600
    assert inv.is_running()


def test_sigkill_mid_batch_and_restart(kafka, ns, db, services):
    inv = services.start("inventory", env={"OF_INV_BATCH_MAX": "50"})
    for i in range(20):
        put_stock(inv, f"K-{i}", 80)
    # 2000 payments over 20 skus with 80 units each: some will be compensated
    pays = [payment(items=[f"K-{i % 20}:1", f"K-{(i * 7 + 3) % 20}:1"] if i % 7 != 0
                    else [f"K-{i % 20}:1"]) for i in range(2000)]
    # a few duplicate payments for existing orders too
    pays += [payment(order_id=pays[i]["order_id"], items=["K-1:1"]) for i in range(0, 100, 10)]
    publish_many(kafka, ns, pays)

    wait_until(lambda: db.query("SELECT count(*) FROM payment_inbox")[0][0] >= 300, timeout=60,
               interval=0.02)
    inv.kill()  # SIGKILL mid-stream
    inv.start().wait_ready()
    wait_until(lambda: db.query("SELECT count(*) FROM payment_inbox")[0][0] == len(pays),
               timeout=120, message="every payment decided")
    wait_until(lambda: db.query("SELECT count(*) FROM outbox")[0][0] == 0, timeout=60,
               message="outbox drained")

    recs = outcomes(kafka, ns, len(pays), timeout=60)
    by_payment = defaultdict(set)
    for r in recs:
        by_payment[r.json()["payment_id"]].add(r.header("ce_id"))
    for p in pays:
        assert by_payment[p["payment_id"]] == {outcome_id_of(p["payment_id"])}, p["payment_id"]
    # one outcome record set per payment: duplicates (if any) repeat the same ce_id
    # and the same value
    values = defaultdict(set)
    for r in recs:
        values[r.header("ce_id")].add(r.value)
    assert all(len(v) == 1 for v in values.values())
    reasons = Counter(r.json().get("reason") for r in recs
                      if r.topic == ns.topic("order.compensation"))
    assert reasons["duplicate_payment"] == 10
    # stock conserved
    rows = conservation(db)
    assert len(rows) == 20 and all(row[-1] for row in rows), rows
    assert sum(row[1] + row[2] for row in rows) == 20 * 80
    assert db.query("SELECT count(*) FROM orders")[0][0] == 2000
    assert len(dlq_records(kafka, ns, timeout=3)) == 0


# --- events: what a payment.success record says about itself (contract section 10) ---

CE_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CE_TRACEPARENT = f"00-{CE_TRACE_ID}-b7ad6b7169203331-01"


def publish_with(kafka, ns, p: dict, headers: dict | list, value: bytes | None = None) -> None:
    body = value if value is not None else json.dumps(record_value(p), separators=(",", ":")).encode()
    kafka.produce(ns.topic("payment.success"), p["order_id"], body, headers=headers)


def outcome_of(kafka, ns, order_id: str, timeout: float = 30):
    def find():
        for rec in outcomes(kafka, ns, timeout=2):
            if rec.key == order_id.encode():
                return rec
        return None
    return wait_until(find, timeout=timeout, message=f"the outcome record of {order_id}")


def test_cloudevents_tracing_extension_is_read(kafka, ns, inv):
    """Issue 15 defect 5 (inventory): ce_traceparent / ce_tracestate (the
    CloudEvents distributed tracing extension in the Kafka binding) are
    taken as the record's trace context when it has no valid traceparent
    header; with both, the traceparent header wins."""
    put_stock(inv, "SKU-A", 10)
    base = {k: v for k, v in record_headers(payment()).items() if k != "traceparent"}
    only_ce = payment(items=["SKU-A:1"])
    both = payment(items=["SKU-A:1"])
    publish_with(kafka, ns, only_ce, {**base, "ce_id": event_id_of(only_ce["payment_id"]),
                                      "ce_traceparent": CE_TRACEPARENT, "ce_tracestate": "congo=1"})
    publish_with(kafka, ns, both, {**base, "ce_id": event_id_of(both["payment_id"]),
                                   "ce_traceparent": CE_TRACEPARENT, "traceparent": TRACEPARENT})
    for p, trace in ((only_ce, CE_TRACE_ID), (both, TRACE_ID)):
        assert wait_order(inv, p["order_id"])["status"] == "fulfilled"
        tp = check_ce_headers(outcome_of(kafka, ns, p["order_id"]), "order.fulfilled.v1")
        assert tp.split("-")[1] == trace, (p["order_id"], tp)


def test_records_of_another_event_type_are_dead_lettered(kafka, ns, db, inv):
    """Issue 15 defect 3: a record on payment.success whose ce_type is not
    payment.success.v1 (or whose ce_specversion is not 1.0) is dead-lettered
    as unexpected_event_type with its payment untouched; it used to be
    fulfilled. A plain record without CloudEvents headers is still read as
    a payment (the topic says what it is)."""
    put_stock(inv, "SKU-A", 10)
    topic = ns.topic("payment.success")
    cases = [
        ("ce_type", {"ce_type": "com.example.payment.failed.v1"}, "com.example.payment.failed.v1"),
        ("ce_specversion", {"ce_specversion": "0.3"}, "'0.3' is not 1.0"),
        ("no ce_type", {"ce_type": None}, "ce_type: missing"),
    ]
    refused = []
    for name, change, message in cases:
        p = payment(items=["SKU-A:1"])
        h = {k: v for k, v in {**record_headers(p), **change}.items() if v is not None}
        _, off = kafka.produce(topic, p["order_id"], record_value(p), headers=h, partition=0)
        refused.append((name, p, off, message))
    plain = payment(items=["SKU-A:2"])
    _, off_plain = kafka.produce(topic, plain["order_id"], record_value(plain), partition=0)

    order = wait_order(inv, plain["order_id"])
    assert order["status"] == "fulfilled" and order["event_id"] == event_id_of(plain["payment_id"])
    dlq = sorted(dlq_records(kafka, ns, len(refused)), key=lambda d: int(d.header("dlq.original.offset")))
    assert [int(d.header("dlq.original.offset")) for d in dlq] == [off for _, _, off, _ in refused]
    for d, (name, p, _, message) in zip(dlq, refused):
        assert d.header("dlq.error.class") == "unexpected_event_type", name
        assert message in d.header("dlq.error.message"), (name, d.header("dlq.error.message"))
        assert d.key == p["order_id"].encode() and d.json()["payment_id"] == p["payment_id"], name
        assert inv.get(f"/v1/orders/{p['order_id']}").status_code == 404, name
    # Only the plain payment touched the stock.
    assert get_stock(inv, "SKU-A")["reserved"] == 2
    wait_until(lambda: consumed_all(kafka, ns, len(refused) + 1), timeout=20, message="offsets committed")
    assert metric(inv, "orderflow_inventory_dlq_total", {"error_class": "unexpected_event_type"}) == 3


def test_cloudevents_sdk_records_structured_and_binary(kafka, ns, inv):
    """Issue 15 defect 4 and contract section 10, with the CloudEvents
    Python SDK producing through confluent-kafka (the harness producer):
    structured mode (application/cloudevents+json) is read, not dead-lettered
    as "payment_id: is required"; the event's id (binary: ce_id) is the
    event id; type, specversion and the tracing extension are read as in
    binary mode. Also the SDK's older binding (cloudevents.v1.kafka), which
    writes the structured envelope without its content type."""
    from cloudevents.core.bindings import kafka as ce_kafka
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent
    from cloudevents.v1.http import CloudEvent as LegacyCloudEvent
    from cloudevents.v1.kafka import to_structured as legacy_to_structured

    put_stock(inv, "SKU-A", 10)
    topic = ns.topic("payment.success")

    def event(p: dict, ce_type: str = "payment.success.v1") -> tuple[CloudEvent, str]:
        eid = str(uuid.uuid4())  # not the id payment-gw would derive
        attrs = {"type": ce_type, "source": "/shop", "id": eid, "partitionkey": p["order_id"],
                 "datacontenttype": "application/json", "traceparent": CE_TRACEPARENT,
                 "tracestate": "congo=t61rcWkgMzE"}
        return CloudEvent(attributes=attrs, data=p), eid

    def send(msg) -> None:
        kafka.produce(topic, msg.key, msg.value, headers=list(msg.headers.items()))

    structured, binary, legacy = (payment(items=["SKU-A:1"]) for _ in range(3))
    ev_s, eid_s = event(structured)
    msg = ce_kafka.to_structured(ev_s, JSONFormat())
    assert msg.headers["content-type"] == b"application/cloudevents+json"
    send(msg)
    ev_b, eid_b = event(binary)
    msg = ce_kafka.to_binary(ev_b, JSONFormat())
    assert msg.headers["ce_id"] == eid_b.encode() and b"ce_traceparent" not in msg.value
    send(msg)
    eid_l = str(uuid.uuid4())
    msg = legacy_to_structured(LegacyCloudEvent(
        {"type": "payment.success.v1", "source": "/shop", "id": eid_l,
         "partitionkey": legacy["order_id"], "traceparent": CE_TRACEPARENT}, legacy))
    assert "content-type" not in msg.headers
    send(msg)
    other = payment(items=["SKU-A:1"])
    send(ce_kafka.to_structured(event(other, "com.example.payment.failed.v1")[0], JSONFormat()))

    for p, eid in ((structured, eid_s), (binary, eid_b), (legacy, eid_l)):
        order = wait_order(inv, p["order_id"])
        assert order["status"] == "fulfilled", (p["order_id"], order)
        assert order["event_id"] == eid, (p["order_id"], order)
        rec = outcome_of(kafka, ns, p["order_id"])
        tp = check_ce_headers(rec, "order.fulfilled.v1")
        assert tp.split("-")[1] == CE_TRACE_ID, (p["order_id"], tp)
        v = rec.json()
        assert v["payment_event_id"] == eid
        assert rec.header("ce_id") == v["event_id"] == str(uuid.uuid5(OUTCOME_NS, eid))
    dlq = dlq_records(kafka, ns, 1)
    assert [d.header("dlq.error.class") for d in dlq] == ["unexpected_event_type"]
    assert dlq[0].key == other["order_id"].encode()
    assert "com.example.payment.failed.v1" in dlq[0].header("dlq.error.message")
    assert inv.get(f"/v1/orders/{other['order_id']}").status_code == 404
    assert get_stock(inv, "SKU-A")["reserved"] == 3
