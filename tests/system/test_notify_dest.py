"""notify's webhook destinations: isolation per destination (breaker,
in-flight limit, deferrals), the destination policy for customer URLs
(SECURITY.md F10) and what a failure tells the outside.

Real Kafka and PostgreSQL; every request goes to loopback (the sink, or
127.0.0.1:1 where nothing listens)."""

from __future__ import annotations

import time

import pytest

from harness import wait_until
from test_notify import deliveries, metric, outcome, produce_outcome

NO_PROVIDERS = {"OF_NOTIFY_EMAIL_URL": "", "OF_NOTIFY_SMS_URL": "", "OF_NOTIFY_WEBHOOK_URL": ""}
DOWN = "http://127.0.0.1:1/"  # connection refused at once


def test_broken_webhook_destination_does_not_hold_up_other_customers(kafka, ns, sink, services):
    """Issue 14 defect 1: 22 payments whose webhook_url refuses connections
    open that destination's breaker (20 results at least); another
    customer's webhook is delivered within 2 s all the same (it waited 27 s
    and more behind the channel-wide breaker). Deliveries to the broken
    destination are deferred (counted in notify.deferrals), not sent."""
    svc = services.start("notify", env=NO_PROVIDERS)
    for _ in range(22):
        produce_outcome(kafka, ns, outcome(email=None, webhook_url=DOWN))
    wait_until(lambda: metric(svc, "orderflow_notify_deliveries_total", channel="webhook",
                              result="transient") >= 20, timeout=30,
               message="20 failed requests to the broken destination")
    for _ in range(10):  # more for the broken destination, queued in front
        produce_outcome(kafka, ns, outcome(email=None, webhook_url=DOWN))
    good = outcome(email=None, webhook_url=f"{sink.url}/hooks/healthy")
    t0 = time.time()
    produce_outcome(kafka, ns, good)
    req = sink.wait_for(1, timeout=30, path="/hooks/healthy")[0]
    print(f"\nhealthy webhook delivered {req.time - t0:.3f} s after it was produced")
    assert req.time - t0 < 2.0
    assert req.json["order_id"] == good["order_id"]
    wait_until(lambda: metric(svc, "orderflow_notify_breakers_open", channel="webhook") == 1,
               timeout=10)
    assert metric(svc, "orderflow_notify_breakers_open", channel="email") == 0
    assert metric(svc, "orderflow_notify_destinations_tracked") == 2
    wait_until(lambda: metric(svc, "orderflow_notify_deliveries_total", channel="webhook",
                              result="deferred") >= 1, timeout=10)
    deferred = [r for t in (1, 2, 3) for r in kafka.read_all(ns.topic(f"notify.retry.{t}"), timeout=2)
                if r.header("notify.last.error") == "circuit breaker open"]
    assert deferred and all(int(r.header("notify.deferrals") or 0) >= 1 for r in deferred), \
        [r.header("notify.deferrals") for r in deferred]
    # a deferral burns no attempt: fresh ones stay at 0, once-failed at 1
    assert {r.header("notify.attempt") for r in deferred} <= {"0", "1"}
    assert any(r.header("notify.attempt") == "0" for r in deferred)
    # paced by the breaker's 30 s cooldown: the last tier, not the first
    assert all(r.topic == ns.topic("notify.retry.3") for r in deferred)
    assert "circuit breaker open" in svc.log()
    assert DOWN not in svc.log() and "127.0.0.1:1" not in "".join(
        ln for ln in svc.log().splitlines() if '"level":"debug"' not in ln)
