"""notify under faults of its own process: shutdown while delivery reports
are due, allocation failures, a delivery-log row PostgreSQL refuses.

Real Kafka and PostgreSQL, a local HTTP sink (see test_notify.py for the
helpers shared with it)."""

from __future__ import annotations

import time

import pytest

from harness import wait_until
from test_notify import deliveries, delivery_id, metric, outcome, produce_outcome


@pytest.mark.notify_retries(1)
def test_sigterm_while_delivery_reports_are_due_exits_0(kafka, ns, sink, services):
    """Issue 13 defect 3: the retry record of a failed delivery lingers in
    the producer (20 s linger); SIGTERM with a 1 s shutdown timeout leaves
    it to the final flush, whose delivery report arrives while the engine
    is torn down. notify must exit 0 (it died of SIGSEGV) and the record
    must reach the retry tier."""
    svc = services.start("notify", env={
        "OF_RDKAFKA_LINGER_MS": "20000", "OF_NOTIFY_SHUTDOWN_TIMEOUT": "1s",
        "OF_NOTIFY_EMAIL_URL": "", "OF_NOTIFY_SMS_URL": ""})
    sink.respond("/webhook", [503])
    v = outcome(email=None)  # only the default webhook applies
    produce_outcome(kafka, ns, v)
    sink.wait_for(1, timeout=30)
    time.sleep(0.5)  # the retry record is produced and lingering now
    assert svc.stop() == 0
    rec = kafka.read_all(ns.topic("notify.retry.1"), timeout=10, min_count=1)
    assert len(rec) == 1 and rec[0].header("notify.attempt") == "1"
    assert "ERROR: AddressSanitizer" not in svc.log()


def _failalloc_lib():
    """The LD_PRELOAD shim (tests/faultinject) next to the binaries, or a
    reason to skip."""
    from harness.services import bin_dir
    binary = bin_dir() / "notify"
    if b"libasan.so" in binary.read_bytes():
        return None, "allocation-failure injection needs binaries without ASan"
    lib = bin_dir().parent / "lib" / "libof_failalloc.so"
    if not lib.exists():
        return None, f"{lib} not built"
    return lib, ""


@pytest.mark.notify_retries(2)
def test_allocation_failures_lose_no_delivery(kafka, ns, sink, services, db):
    """Issue 13 defect 4: an allocation that fails while notify processes a
    record (the record copy, the hold, the record itself, the offset
    queue, cJSON, a body, curl) must never drop that record: notify exits
    and the restart consumes it again. Each round produces 20 outcomes
    (email, sms, webhook: 60 deliveries; the sink fails one request in
    eight with a 503 so retry tiers are used too), starts notify with
    libof_failalloc.so failing the N-th allocation after start-up, and
    lets it run until it exits or 8 s pass. Then notify runs without
    injection until everything is decided: every delivery must be
    delivered and recorded, nothing dead-lettered."""
    lib, why = _failalloc_lib()
    if lib is None:
        pytest.skip(why)
    import hashlib
    import threading
    failed_once: set[str] = set()
    lock = threading.Lock()

    def flaky(req):
        """503 for the first attempt of one delivery in eight (chosen by
        its Idempotency-Key), 200 otherwise: retry tiers are used, and no
        delivery can run out of attempts whatever the timing (a rotating
        one-in-eight could hit the same delivery three times in a row on a
        loaded machine and dead-letter it)."""
        key = req.headers.get("idempotency-key", "")
        with lock:
            if hashlib.sha256(key.encode()).digest()[0] % 8 == 7 and key not in failed_once:
                failed_once.add(key)
                return 503
        return 200
    sink.set_default(flaky)
    # Every round is a restart of one replica: the same instance id (static
    # membership), so each new process takes over its predecessor's
    # partitions at once instead of waiting out a departed member.
    env = {"OF_LOG_LEVEL": "info", "OF_NOTIFY_RETRY_DELAYS": "1s,1s",
           "OF_RDKAFKA_SESSION_TIMEOUT_MS": "6000", "OF_KAFKA_INSTANCE_ID": "notify-failalloc"}
    want: set[str] = set()
    rounds = []
    for i, nth in enumerate((300, 1500, 4000, 9000, 20000, 45000)):
        batch = [outcome(phone="+4915112345678") for _ in range(20)]
        for v in batch:
            produce_outcome(kafka, ns, v)
            want.update(delivery_id(v["event_id"], ch) for ch in ("email", "sms", "webhook"))
        svc = services.start("notify", env={**env, "LD_PRELOAD": str(lib),
                                             "OF_FAILALLOC_NTH": str(nth),
                                             "OF_FAILALLOC_AFTER_MS": "1000",
                                             "OF_FAILALLOC_VERBOSE": "1"},
                             wait_ready=False, check_exit=False)
        deadline = time.monotonic() + 8
        while svc.is_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        rc = svc.wait_exit(0.1) if not svc.is_running() else svc.stop()
        log = svc.log()
        rounds.append((nth, rc, "out of memory" in log, "failalloc: failing" in log))
    svc = services.start("notify", env=env)
    def done():
        rows = db.query("SELECT delivery_id::text FROM notify_deliveries WHERE status = 'delivered'")
        return {r[0] for r in rows} >= want
    wait_until(done, timeout=90, message="every delivery recorded as delivered")
    delivered = {r[0] for r in db.query(
        "SELECT delivery_id::text FROM notify_deliveries WHERE status = 'delivered'")}
    ok = {r.header("Idempotency-Key") for r in sink.requests() if r.status == 200}
    dlq = kafka.read_all(ns.topic("notify.dlq"), timeout=2)
    print("\nallocation failure rounds (N-th allocation after 1 s, exit code, "
          "notify's own out-of-memory exit, a call failed):")
    for r in rounds:
        print(f"  N={r[0]:>6}  rc={r[1]:>4}  oom_exit={r[2]}  injected={r[3]}")
    print(f"deliveries {len(want)}, delivered and recorded {len(want & delivered)}, "
          f"2xx at the sink {len(want & ok)}, DLQ records {len(dlq)}")
    assert want <= ok, f"{len(want - ok)} deliveries never reached the sink"
    assert want <= delivered
    assert dlq == [], [r.header("dlq.error.class") for r in dlq]
    assert any(r[3] for r in rounds), "no allocation failure was injected"


def test_delivery_log_row_refused_for_good_does_not_stall_offsets(kafka, ns, sink, services, db):
    """Issue 13 suspected 7, confirmed: a delivery-log row PostgreSQL
    refuses for good (here: a CHECK constraint added by the test) made the
    writer retry its whole batch in front forever, so no later delivery
    was recorded and the partition's offset never moved. Now the batch is
    split and only that row is left unrecorded (counted and logged)."""
    svc = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": "", "OF_NOTIFY_SMS_URL": ""})
    db.query("ALTER TABLE notify_deliveries ADD CONSTRAINT test_no_poison "
             "CHECK (order_id <> 'ord_poison')")
    vals = [outcome() for _ in range(3)] + [outcome(order_id="ord_poison")] + \
           [outcome() for _ in range(4)]
    topic = ns.topic("order.fulfilled")
    for v in vals:  # one partition: the poison row holds back those behind it
        kafka.produce(topic, v["order_id"], v, partition=0,
                      headers={"ce_type": "order.fulfilled.v1", "ce_id": v["event_id"]})
    sink.wait_for(len(vals), timeout=30)
    good = [v for v in vals if v["order_id"] != "ord_poison"]
    wait_until(lambda: all(deliveries(svc, v["order_id"]) and
                           deliveries(svc, v["order_id"])[0]["status"] == "delivered"
                           for v in good), timeout=30, message="the other rows recorded")
    assert deliveries(svc, "ord_poison") == []
    wait_until(lambda: kafka.committed(ns.group("notify"), topic).get(0) == len(vals),
               timeout=30, message="offset committed past the refused row")
    assert metric(svc, "orderflow_notify_store_rows_refused_total") == 1
    assert "delivery log row refused" in svc.log()
    assert len(sink.requests()) == len(vals)  # each sent once
