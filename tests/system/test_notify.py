"""notify against real Kafka and PostgreSQL with a local HTTP sink.

Outcome events are produced straight into <prefix>order.fulfilled /
<prefix>order.compensation (inventory is not needed); the tests watch the
sink, notify.retry.N, notify.dlq, GET /v1/deliveries and /metrics. One test
(test_pipeline_e2e_latency_from_payment_received_at) runs the whole
pipeline instead: payment-gw, inventory and notify."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections import Counter, defaultdict

import pytest
import requests

from harness import ADMIN_TOKEN, NOTIFY_SECRET, payment, post_payment, wait_until

NS_DELIVERY = uuid.UUID(bytes=bytes([0xce, 0xb0, 0x9c, 0x10, 0xfa, 0xb2, 0x47, 0xee,
                                     0xa5, 0x19, 0xbd, 0xc1, 0xca, 0x59, 0x24, 0x96]))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def delivery_id(event_id: str, channel: str) -> str:
    return str(uuid.uuid5(NS_DELIVERY, f"{event_id}:{channel}"))


def outcome(order_id: str | None = None, email: str | None = "ana@example.com",
            phone: str | None = None, webhook_url: str | None = None,
            compensation: bool = False) -> dict:
    order_id = order_id or f"ord_{uuid.uuid4().hex[:10]}"
    customer = {"id": "cus_77"}
    if email:
        customer["email"] = email
    if phone:
        customer["phone"] = phone
    if webhook_url:
        customer["webhook_url"] = webhook_url
    v = {"event_id": str(uuid.uuid4()), "order_id": order_id,
         "payment_id": f"pay_{order_id}", "payment_event_id": str(uuid.uuid4()),
         "customer": customer, "payment_received_at": "2026-11-22T10:00:00Z"}
    if compensation:
        v.update({"reason": "insufficient_stock", "details": [],
                  "refund": {"amount_cents": 4599, "currency": "EUR"},
                  "compensated_at": "2026-11-22T10:00:01Z"})
    else:
        v.update({"items": [{"sku": "SKU-RED-MUG", "qty": 1, "stock_version": 2}],
                  "fulfilled_at": "2026-11-22T10:00:01Z"})
    return v


def produce_outcome(kafka, ns, value: dict, compensation: bool = False,
                    raw: bytes | None = None) -> bytes:
    topic = ns.topic("order.compensation" if compensation else "order.fulfilled")
    body = raw if raw is not None else json.dumps(value, separators=(",", ":")).encode()
    headers = {"ce_specversion": "1.0", "ce_id": value.get("event_id", "x"),
               "ce_type": "order.compensation.v1" if compensation else "order.fulfilled.v1",
               "ce_source": "/inventory", "ce_time": "2026-11-22T10:00:01Z",
               "content-type": "application/json", "traceparent": TRACEPARENT}
    kafka.produce(topic, value.get("order_id", "k"), body, headers=headers)
    return body


def check_signature(req) -> None:
    sig = req.header("X-Signature")
    m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", sig or "")
    assert m, f"bad X-Signature {sig!r}"
    t = int(m.group(1))
    assert abs(time.time() - t) < 300
    want = hmac.new(NOTIFY_SECRET.encode(), f"{t}.".encode() + req.body,
                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(want, m.group(2)), "X-Signature does not verify"


def deliveries(svc, order_id: str) -> list[dict]:
    r = svc.get("/v1/deliveries", params={"order_id": order_id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["order_id"] == order_id
    return body["deliveries"]


def metric(svc, name: str, **labels) -> float:
    total = 0.0
    for line in svc.metrics().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def ok_ids(sink) -> Counter:
    """Idempotency-Key -> number of 2xx answers the sink gave."""
    return Counter(r.header("Idempotency-Key") for r in sink.requests() if 200 <= r.status < 300)


# ----------------------------------------------------------------------


def test_fanout_three_channels_signed(kafka, ns, sink, services):
    svc = services.start("notify")
    v = outcome(email="ana@example.com", phone="+4915112345678",
                webhook_url=f"{sink.url}/hooks/merchant")
    produce_outcome(kafka, ns, v)
    reqs = sink.wait_for(3, timeout=30)
    time.sleep(1)
    reqs = sink.requests()
    assert len(reqs) == 3
    by_channel = {r.json["channel"]: r for r in reqs}
    assert set(by_channel) == {"email", "sms", "webhook"}
    assert by_channel["email"].path == "/email"
    assert by_channel["sms"].path == "/sms"
    assert by_channel["webhook"].path == "/hooks/merchant"  # the customer's own URL wins
    assert by_channel["email"].json["to"] == "ana@example.com"
    assert by_channel["sms"].json["to"] == "+4915112345678"
    assert by_channel["webhook"].json["to"] == f"{sink.url}/hooks/merchant"
    ids = set()
    for ch, r in by_channel.items():
        assert r.method == "POST"
        assert r.header("Content-Type").startswith("application/json")
        check_signature(r)
        b = r.json
        assert set(b) == {"delivery_id", "event_id", "order_id", "channel", "to", "template", "data"}
        assert b["delivery_id"] == delivery_id(v["event_id"], ch)
        assert r.header("Idempotency-Key") == b["delivery_id"]
        assert b["event_id"] == v["event_id"] and b["order_id"] == v["order_id"]
        assert b["template"] == "order_fulfilled"
        assert b["data"]["payment_id"] == v["payment_id"]
        tp = r.header("traceparent")
        assert tp and tp.split("-")[1] == TRACEPARENT.split("-")[1], tp  # same trace
        ids.add(b["delivery_id"])
    assert len(ids) == 3

    dl = wait_until(lambda: (lambda d: d if len(d) == 3 and all(x["status"] == "delivered" for x in d)
                             else None)(deliveries(svc, v["order_id"])), timeout=10)
    assert {d["delivery_id"] for d in dl} == ids
    assert all(d["attempts"] == 1 for d in dl)
    assert {d["channel"] for d in dl} == {"email", "sms", "webhook"}
    assert metric(svc, "orderflow_notify_deliveries_total", result="delivered") == 3
    assert metric(svc, "orderflow_notify_e2e_latency_seconds_count") == 3
    assert metric(svc, "orderflow_notify_breaker_state", channel="email") == 0


def test_only_email_and_compensation_template(kafka, ns, sink, services):
    svc = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    v = outcome(email="bo@example.com")
    produce_outcome(kafka, ns, v)
    c = outcome(email="cy@example.com", compensation=True)
    produce_outcome(kafka, ns, c, compensation=True)
    sink.wait_for(2, timeout=30)
    time.sleep(1.5)
    reqs = sink.requests()
    assert len(reqs) == 2, [(r.path, r.json) for r in reqs]
    by_order = {r.json["order_id"]: r for r in reqs}
    assert by_order[v["order_id"]].path == "/email"
    assert by_order[v["order_id"]].json["template"] == "order_fulfilled"
    assert by_order[c["order_id"]].json["template"] == "order_compensated"
    wait_until(lambda: len(deliveries(svc, v["order_id"])) == 1, timeout=10)
    # a customer without any channel gets nothing, and nothing breaks
    n = outcome(email=None)
    produce_outcome(kafka, ns, n)
    time.sleep(1.5)
    assert len(sink.requests()) == 2
    assert deliveries(svc, n["order_id"]) == []
    r = svc.get("/v1/deliveries")
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.notify_retries(2)
def test_two_transient_failures_then_success(kafka, ns, sink, services):
    svc = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    sink.respond("/email", [500, 500])
    v = outcome()
    produce_outcome(kafka, ns, v)
    # While the delivery waits out tier 2's 2 s, its record is held (the
    # gauge is refreshed every 100 ms) and the delivery log says it is
    # retrying (the row is written while its retry record is produced);
    # sample until the third request.
    held_seen = 0.0
    rows_seen = set()
    deadline = time.monotonic() + 90
    while len(sink.requests()) < 3 and time.monotonic() < deadline:
        if len(sink.requests()) == 2:
            held_seen = max(held_seen, metric(svc, "orderflow_notify_held_records"))
            rows_seen.update((x["status"], x["attempts"], x["last_error"], x["last_http_status"])
                             for x in deliveries(svc, v["order_id"]))
        time.sleep(0.05)
    reqs = sink.wait_for(3, timeout=1)
    time.sleep(2)
    reqs = sink.requests()
    assert [r.status for r in reqs] == [500, 500, 200]
    assert held_seen == 1
    assert ("retrying", 2, "HTTP 500", 500) in rows_seen, rows_seen
    assert len({r.header("Idempotency-Key") for r in reqs}) == 1
    for r in reqs:
        check_signature(r)
    # the waits between attempts follow the tiers' delays (1s, 2s)
    assert reqs[1].time - reqs[0].time >= 0.9
    assert reqs[2].time - reqs[1].time >= 1.9

    r1 = kafka.read_all(ns.topic("notify.retry.1"), timeout=10, min_count=1)
    r2 = kafka.read_all(ns.topic("notify.retry.2"), timeout=10, min_count=1)
    assert len(r1) == 1 and len(r2) == 1
    for rec, attempt in ((r1[0], "1"), (r2[0], "2")):
        assert rec.key == v["order_id"].encode()
        assert json.loads(rec.value) == v  # the outcome itself travels
        assert rec.header("notify.channel") == "email"
        assert rec.header("notify.attempt") == attempt
        assert int(rec.header("notify.due.ms")) > 1_600_000_000_000
        assert rec.header("notify.last.error") == "HTTP 500"
        assert rec.header("ce_id") == v["event_id"]
        assert rec.header("traceparent") == TRACEPARENT
    assert kafka.read_all(ns.topic("notify.dlq"), timeout=2) == []
    d = wait_until(lambda: (lambda x: x if x and x[0]["status"] == "delivered" else None)(
        deliveries(svc, v["order_id"])), timeout=10)
    assert d[0]["attempts"] == 3
    assert d[0]["last_error"] == "HTTP 500"
    assert metric(svc, "orderflow_notify_retries_total", tier="1") == 1
    assert metric(svc, "orderflow_notify_retries_total", tier="2") == 1
    # every delivery left its stage when done: nothing counted in process
    wait_until(lambda: metric(svc, "orderflow_notify_held_records") == 0 and
               metric(svc, "orderflow_notify_deliveries_in_process") == 0, timeout=5)
    assert metric(svc, "orderflow_notify_deliveries_in_process", stage="producing") == 0
    assert 'orderflow_notify_deliveries_in_process{stage="recording"}' in svc.metrics()


def test_permanent_failure_straight_to_dlq_then_replay_once(kafka, ns, sink, services):
    svc = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    sink.respond("/email", [400])
    v = outcome()
    body = produce_outcome(kafka, ns, v)
    dlq = kafka.read_all(ns.topic("notify.dlq"), timeout=90, min_count=1)
    assert len(dlq) == 1
    d = dlq[0]
    assert d.value == body  # byte for byte
    assert d.key == v["order_id"].encode()
    assert d.header("ce_id") == v["event_id"] and d.header("traceparent") == TRACEPARENT
    assert d.header("dlq.error.class") == "permanent_failure"
    assert d.header("dlq.original.topic") == ns.topic("order.fulfilled")
    assert d.header("dlq.consumer.group") == ns.group("notify")
    assert d.header("dlq.service") == "notify"
    assert d.header("dlq.attempts") == "1"
    assert "400" in d.header("dlq.error.message")
    assert d.header("notify.channel") == "email"
    for h in ("dlq.original.partition", "dlq.original.offset", "dlq.original.timestamp",
              "dlq.failed.at"):
        assert d.header(h), h
    assert len(sink.requests()) == 1
    for t in range(1, ns.retry_tiers + 1):
        assert kafka.read_all(ns.topic(f"notify.retry.{t}"), timeout=1) == []
    wait_until(lambda: deliveries(svc, v["order_id"])[0]["status"] == "dead", timeout=10)
    assert metric(svc, "orderflow_notify_dlq_total", **{"class": "permanent_failure"}) == 1

    # An operator replays the DLQ record (original key, value, headers minus dlq.*):
    # the provider is fixed now, so it is delivered once; a second replay sends nothing.
    replay = [(k, v2) for k, v2 in d.header_list if not k.startswith("dlq.")]
    for _ in range(2):
        kafka.produce(d.header("dlq.original.topic"), d.key, d.value, headers=replay)
    wait_until(lambda: deliveries(svc, v["order_id"])[0]["status"] == "delivered", timeout=30)
    time.sleep(2)
    assert [r.status for r in sink.requests()] == [400, 200]


@pytest.mark.notify_retries(2)
def test_always_503_exhausts_every_tier(kafka, ns, sink, services):
    svc = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    sink.respond("/email", [503] * 10)
    v = outcome()
    body = produce_outcome(kafka, ns, v)
    dlq = kafka.read_all(ns.topic("notify.dlq"), timeout=90, min_count=1)
    assert len(dlq) == 1
    d = dlq[0]
    assert d.header("dlq.error.class") == "retries_exhausted"
    assert d.header("dlq.original.topic") == ns.topic("notify.retry.2")
    assert d.header("dlq.attempts") == "3"
    assert d.header("notify.attempt") == "2"  # the retry record, byte for byte
    assert d.value == body
    assert [r.status for r in sink.requests()] == [503, 503, 503]
    wait_until(lambda: deliveries(svc, v["order_id"])[0]["status"] == "dead", timeout=10)
    x = deliveries(svc, v["order_id"])[0]
    assert x["attempts"] == 3 and x["last_error"] == "HTTP 503" and x["last_http_status"] == 503
    assert metric(svc, "orderflow_notify_dlq_total", **{"class": "retries_exhausted"}) == 1
    assert metric(svc, "orderflow_notify_retries_total", tier="1") == 1
    assert metric(svc, "orderflow_notify_retries_total", tier="2") == 1


def test_unusable_record_and_redelivery(kafka, ns, sink, services):
    svc = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    produce_outcome(kafka, ns, {"order_id": "ord_bad"}, raw=b"{not json")
    dlq = kafka.read_all(ns.topic("notify.dlq"), timeout=90, min_count=1)
    assert dlq[0].header("dlq.error.class") == "invalid_json"
    assert dlq[0].value == b"{not json"
    # the same outcome event delivered twice is sent once
    v = outcome()
    produce_outcome(kafka, ns, v)
    produce_outcome(kafka, ns, v)
    sink.wait_for(1, timeout=30)
    wait_until(lambda: metric(svc, "orderflow_notify_duplicates_skipped_total") >= 1, timeout=15)
    time.sleep(1)
    assert len(sink.requests()) == 1


@pytest.mark.notify_retries(3)
def test_breaker_opens_and_closes(kafka, ns, sink, services):
    svc = services.start("notify", env={
        "OF_NOTIFY_WEBHOOK_URL": "", "OF_NOTIFY_EMAIL_URL": "",
        "OF_NOTIFY_RETRY_DELAYS": "1s,1s,1s", "OF_NOTIFY_CB_WINDOW": "4",
        "OF_NOTIFY_CB_MIN_REQUESTS": "4", "OF_NOTIFY_CB_FAILURE_RATIO": "0.5",
        "OF_NOTIFY_CB_COOLDOWN": "3s", "OF_NOTIFY_MAX_INFLIGHT": "2"})
    sink.set_default(503)
    orders = [outcome(email=None, phone=f"+49151000000{i:02d}") for i in range(12)]
    for o in orders:
        produce_outcome(kafka, ns, o)
    wait_until(lambda: metric(svc, "orderflow_notify_breaker_state", channel="sms") == 1,
               timeout=30, message="breaker to open")
    assert "circuit breaker open" in svc.log()
    # while open, deliveries wait in the retry tiers without using attempts
    wait_until(lambda: metric(svc, "orderflow_notify_deliveries_total", channel="sms",
                              result="deferred") >= 1, timeout=15)
    calls_when_open = len(sink.requests())
    assert calls_when_open <= 4 + 2  # window + requests already in flight
    sink.set_default(200)
    wait_until(lambda: metric(svc, "orderflow_notify_breaker_state", channel="sms") == 0,
               timeout=30, message="breaker to close")
    assert metric(svc, "orderflow_notify_breaker_transitions_total", channel="sms",
                  to="half_open") >= 1
    want = {delivery_id(o["event_id"], "sms") for o in orders}
    wait_until(lambda: set(ok_ids(sink)) >= want, timeout=60, message="every sms delivered")
    time.sleep(1)
    assert all(n == 1 for n in ok_ids(sink).values())
    assert kafka.read_all(ns.topic("notify.dlq"), timeout=2) == []
    deferred = [r for t in (1, 2, 3) for r in kafka.read_all(ns.topic(f"notify.retry.{t}"), timeout=5)
                if r.header("notify.last.error") == "circuit breaker open"]
    assert deferred, "no deferred record in the retry tiers"
    # a deferral keeps the attempt count of the delivery (0 for a fresh one)
    assert any(r.header("notify.attempt") == "0" for r in deferred)


def test_sigkill_during_burst_loses_nothing(kafka, ns, sink, services, db):
    # A short session timeout so the restarted consumer gets the partitions
    # soon; moderate concurrency for the Python sink.
    n = 500
    orders = [outcome(phone="+4915112345678", webhook_url=None) for _ in range(n)]
    for o in orders:
        produce_outcome(kafka, ns, o)
    svc = services.start("notify", env={"OF_LOG_LEVEL": "info",
                                        "OF_RDKAFKA_SESSION_TIMEOUT_MS": "6000",
                                        "OF_NOTIFY_MAX_INFLIGHT": "8"})
    want = {delivery_id(o["event_id"], ch) for o in orders for ch in ("email", "sms", "webhook")}
    sink.wait_for(len(want) // 10, timeout=60)
    svc.kill()
    recorded = {str(r[0]) for r in db.query(
        "SELECT delivery_id FROM notify_deliveries WHERE status = 'delivered'")}
    time.sleep(1)  # requests already on the wire reach the sink
    sent_before = ok_ids(sink)
    svc.restart()
    wait_until(lambda: set(ok_ids(sink)) >= want, timeout=90, message="every delivery after restart")
    time.sleep(2)
    counts = ok_ids(sink)
    assert set(counts) == want
    dups = {k: c for k, c in counts.items() if c > 1}
    print(f"\nSIGKILL burst: {len(want)} deliveries, {sum(sent_before.values())} answered 2xx "
          f"before the kill, {len(recorded)} recorded as delivered; duplicates at the sink: "
          f"{len(dups)} (outcome not yet recorded when killed)")
    # a delivery whose outcome was recorded is never sent again
    assert not (set(dups) & recorded), "a recorded delivery was sent again"
    # every duplicate had been sent but not recorded at the time of the kill
    assert set(dups) <= set(sent_before)
    rows = db.query("SELECT count(*) FROM notify_deliveries WHERE status = 'delivered'")
    assert rows[0][0] == len(want)


def test_bad_config_exits_2_naming_the_variable(services):
    for env, var in (({"OF_NOTIFY_RETRY_DELAYS": "5s,soon"}, "OF_NOTIFY_RETRY_DELAYS"),
                     ({"OF_NOTIFY_SECRET": None}, "OF_NOTIFY_SECRET"),
                     ({"OF_NOTIFY_CB_FAILURE_RATIO": "2"}, "OF_NOTIFY_CB_FAILURE_RATIO")):
        svc = services.start("notify", env=env, wait_ready=False, check_exit=False)
        assert svc.wait_exit(30) == 2
        assert var in svc.log()


def test_postgres_down_nothing_sent_unchecked(kafka, ns, sink, services, pg):
    svc = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    pg.stop("immediate")
    try:
        wait_until(lambda: svc.get("/readyz").status_code == 503, timeout=30,
                   message="readyz 503 while PostgreSQL is down")
        v = outcome()
        produce_outcome(kafka, ns, v)
        time.sleep(3)
        # the delivery log cannot be consulted: nothing goes out
        assert sink.requests() == []
    finally:
        pg.start()
    sink.wait_for(1, timeout=60)
    wait_until(lambda: svc.get("/readyz").status_code == 200, timeout=30)
    wait_until(lambda: (lambda d: d and d[0]["status"] == "delivered")(deliveries(svc, v["order_id"])),
               timeout=30)
    time.sleep(1)
    assert len(sink.requests()) == 1


def test_pipeline_e2e_latency_from_payment_received_at(kafka, ns, sink, services):
    """payment-gw -> inventory -> notify: each outcome carries the
    received_at payment-gw stamped on its payment as payment_received_at
    (inventory's extension field), so notify observes its end-to-end
    latency histogram for every delivery."""
    gw = services.start("payment-gw")
    inv = services.start("inventory")
    ntf = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    r = inv.put("/v1/stock/SKU-E2E", json={"available": 5},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200, r.text
    ful = payment(items=["SKU-E2E:1"], email="ana@example.com")
    comp = payment(items=["SKU-E2E-NOPE:1"], email=None, phone="+4915112345678")  # unknown_sku
    for p in (ful, comp):
        r = post_payment(gw.url, p)
        assert r.status_code == 202, r.text

    reqs = sink.wait_for(2, timeout=60)
    pays = {rec.json()["payment_id"]: rec.json()
            for rec in kafka.read_all(ns.topic("payment.success"), timeout=10, min_count=2)}
    assert set(pays) == {ful["payment_id"], comp["payment_id"]}
    by_payment = {req.json["data"]["payment_id"]: req for req in reqs}
    assert set(by_payment) == set(pays)
    assert by_payment[ful["payment_id"]].json["template"] == "order_fulfilled"
    assert by_payment[ful["payment_id"]].json["channel"] == "email"
    assert by_payment[comp["payment_id"]].json["template"] == "order_compensated"
    assert by_payment[comp["payment_id"]].json["channel"] == "sms"
    for pid, req in by_payment.items():
        # the outcome value travels as `data`
        assert req.json["data"]["payment_received_at"] == pays[pid]["received_at"]

    name = "orderflow_notify_e2e_latency_seconds"
    wait_until(lambda: metric(ntf, name + "_count") == 2, timeout=15,
               message="two end-to-end latency observations")
    assert metric(ntf, name + "_count", channel="email") == 1
    assert metric(ntf, name + "_count", channel="sms") == 1
    assert metric(ntf, name + "_sum") > 0  # received before delivered
    # With their documented defaults the services give librdkafka no
    # property it ignores: the consumer-only ones (prefetch, fetch
    # batching) reach the consumers only, not the producers.
    for svc in (gw, inv, ntf):
        warns = [ln for ln in svc.log().splitlines() if "CONFWARN" in ln]
        assert not warns, f"{svc.name}: {warns}"


def test_held_retry_on_a_never_committed_partition_shows_as_lag(kafka, ns, sink, services):
    """Issue 15 defect 8: a delivery held in a retry tier whose partition
    has never committed (the tier's first record) used to show lag 0 in
    orderflow_kafka_consumer_lag (librdkafka's consumer_lag is -1 before a
    first commit). Now every assigned partition reports its lag, from the
    low watermark until the first commit: the held record counts."""
    svc = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": "",
                                        "OF_NOTIFY_RETRY_DELAYS": "60s,60s,60s"})
    sink.respond("/email", [500])
    v = outcome()
    produce_outcome(kafka, ns, v)
    sink.wait_for(1, timeout=30)
    tier = ns.topic("notify.retry.1")
    kafka.read_all(tier, timeout=10, min_count=1)  # the retry record is there
    wait_until(lambda: metric(svc, "orderflow_notify_held_records") == 1, timeout=20,
               message="the retry to be held")
    wait_until(lambda: metric(svc, "orderflow_kafka_consumer_lag", topic=tier) == 1, timeout=20,
               message=f"lag 1 on {tier}")
    # Every assigned partition of the tier has a series, not only the one
    # with the record.
    series = [ln for ln in svc.metrics().splitlines()
              if ln.startswith("orderflow_kafka_consumer_lag{") and f'topic="{tier}"' in ln]
    assert len(series) == 3, series
    assert len(sink.requests()) == 1  # still waiting: not delivered yet


def test_trace_context_travels_from_payment_to_delivery(kafka, ns, sink, services):
    """Contract section 10, issue 15 defect 5: a payment posted with
    traceparent + tracestate reaches the sink's deliveries with the same
    trace id and the same tracestate, through payment.success, inventory's
    outbox (migration 011) and order.fulfilled; a retried delivery keeps
    it. A delivery of a record without tracestate sends none."""
    gw = services.start("payment-gw")
    services.start("inventory")
    services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    sink.respond("/sms", [503])  # the SMS is delivered on its retry
    r = requests.put(f"{services.get('inventory').url}/v1/stock/SKU-TRACE", json={"available": 5},
                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
    assert r.status_code == 200, r.text
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    p = payment(items=["SKU-TRACE:1"], email="ana@example.com", phone="+4915112345678")
    r = post_payment(gw.url, p, headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01",
                                         "tracestate": "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE"})
    assert r.status_code == 202, r.text
    plain = payment(items=["SKU-TRACE:1"], email="bo@example.com")
    assert post_payment(gw.url, plain).status_code == 202

    reqs = sink.wait_for(4, timeout=60)  # email, sms 503, sms retried, plain's email
    mine = [q for q in reqs if q.json["order_id"] == p["order_id"]]
    assert sorted((q.path, q.status) for q in mine) == [("/email", 200), ("/sms", 200), ("/sms", 503)]
    for q in mine:
        tp = q.header("traceparent")
        assert tp and tp.split("-")[1] == trace_id, (q.path, tp)
        assert q.header("tracestate") == state, (q.path, q.header("tracestate"))
    other = [q for q in reqs if q.json["order_id"] == plain["order_id"]]
    assert other and all(q.header("tracestate") is None for q in other)
    assert other[0].header("traceparent").split("-")[1] != trace_id
    fulfilled = [rec for rec in kafka.read_all(ns.topic("order.fulfilled"), timeout=10, min_count=2)
                 if rec.key == p["order_id"].encode()]
    assert fulfilled[0].header("tracestate") == state
    assert fulfilled[0].header("traceparent").split("-")[1] == trace_id
