"""notify under faults of its own process: shutdown while delivery reports
are due, allocation failures, a delivery-log row PostgreSQL refuses.

Real Kafka and PostgreSQL, a local HTTP sink (see test_notify.py for the
helpers shared with it)."""

from __future__ import annotations

import time

import pytest

from harness import wait_until
from test_notify import deliveries, outcome, produce_outcome


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
