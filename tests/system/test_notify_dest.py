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


def _listener():
    """A loopback TCP listener nobody answers on: shows whether anything
    tried to connect."""
    import socket
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    lst.setblocking(False)
    return lst


def _connected(lst) -> bool:
    import select
    return bool(select.select([lst], [], [], 0)[0])


def test_customer_webhook_resolving_to_loopback_is_refused_unless_allowed(kafka, ns, sink, services):
    """SECURITY.md F10: the destination policy is checked on the address
    libcurl connects to, after name resolution. A customer's URL naming a
    host that resolves (OF_NOTIFY_TEST_RESOLVE, test-only) to 127.0.0.1 is
    refused when OF_NOTIFY_WEBHOOK_ALLOW is empty: at once to notify.dlq as
    destination_forbidden, without a connection attempt (a listener on that
    port sees none), while the operator's own URLs on 127.0.0.1 (e-mail,
    the default webhook) are trusted. With OF_NOTIFY_WEBHOOK_ALLOW=
    127.0.0.0/8 the same URL is delivered. Only loopback is ever used."""
    lst = _listener()
    lport = lst.getsockname()[1]
    host = "hooks.customer.test"
    resolve = f"{host}:{lport}:127.0.0.1,{host}:{sink.port}:127.0.0.1"
    env = {"OF_NOTIFY_WEBHOOK_ALLOW": "", "OF_NOTIFY_TEST_RESOLVE": resolve,
           "OF_NOTIFY_SMS_URL": ""}
    svc = services.start("notify", env=env)
    v = outcome(email="ana@example.com", webhook_url=f"http://{host}:{lport}/hooks/x")
    produce_outcome(kafka, ns, v)
    plain = outcome(email=None)  # the operator's default webhook, on 127.0.0.1
    produce_outcome(kafka, ns, plain)
    dlq = kafka.read_all(ns.topic("notify.dlq"), timeout=30, min_count=1)
    assert len(dlq) == 1
    d = dlq[0]
    assert d.header("dlq.error.class") == "destination_forbidden"
    assert d.header("notify.channel") == "webhook"
    assert d.header("dlq.attempts") == "0"
    assert d.header("dlq.error.message") == "destination_forbidden (loopback address)"
    assert d.key == v["order_id"].encode()
    for t in range(1, ns.retry_tiers + 1):  # at once: no retry tier
        assert kafka.read_all(ns.topic(f"notify.retry.{t}"), timeout=1) == []
    sink.wait_for(1, timeout=30, path="/email")
    sink.wait_for(1, timeout=30, path="/webhook")
    time.sleep(0.5)
    assert not _connected(lst), "notify connected to a refused address"
    rows = wait_until(lambda: (lambda x: x if len(x) == 2 and all(
        r["status"] in ("dead", "delivered") for r in x) else None)(deliveries(svc, v["order_id"])),
        timeout=15)
    by = {r["channel"]: r for r in rows}
    assert by["email"]["status"] == "delivered"
    assert by["webhook"]["status"] == "dead"
    assert by["webhook"]["attempts"] == 0
    assert by["webhook"]["last_error"] == "destination_forbidden (loopback address)"
    assert metric(svc, "orderflow_notify_deliveries_total", channel="webhook", result="forbidden") == 1
    assert metric(svc, "orderflow_notify_dlq_total", **{"class": "destination_forbidden"}) == 1
    log = svc.log()
    assert "destination policy" in log and host not in log

    # Allowed: the same kind of URL, now delivered (to the sink's port).
    svc.restart(env={"OF_NOTIFY_WEBHOOK_ALLOW": "127.0.0.0/8"})
    w = outcome(email=None, webhook_url=f"http://{host}:{sink.port}/hooks/allowed")
    produce_outcome(kafka, ns, w)
    req = sink.wait_for(1, timeout=30, path="/hooks/allowed")[0]
    assert req.json["order_id"] == w["order_id"]
    assert len(kafka.read_all(ns.topic("notify.dlq"), timeout=2)) == 1
    lst.close()


def test_bad_webhook_allow_list_stops_notify_at_start(services):
    for value in ("localhost", "10.0.0.1/8", "127.0.0.1/33", "1.2.3.4,,5.6.7.8"):
        svc = services.start("notify", env={"OF_NOTIFY_WEBHOOK_ALLOW": value},
                             wait_ready=False, check_exit=False)
        assert svc.wait_exit(30) == 2
        assert "OF_NOTIFY_WEBHOOK_ALLOW" in svc.log()


def test_failure_details_stay_inside(kafka, ns, sink, services):
    """Issue 14 defect 3: libcurl's text ("Failed to connect to 127.0.0.1
    port 1 ...") was logged at info and returned by GET /v1/deliveries and
    in the retry headers. Outward there is now an error class or the HTTP
    status; libcurl's text goes to debug only, and the webhook URL is in no
    log line above debug."""
    svc = services.start("notify", env={**NO_PROVIDERS, "OF_LOG_LEVEL": "info"})
    url = "http://127.0.0.1:1/hooks/private-path?token=t0ps3cret"
    v = outcome(email=None, webhook_url=url)
    produce_outcome(kafka, ns, v)
    sink.respond("/hooks/busy", [503] * 10)
    u = outcome(email=None, webhook_url=f"{sink.url}/hooks/busy")
    produce_outcome(kafka, ns, u)
    rows = wait_until(lambda: (lambda x: x if x and x[0]["attempts"] >= 1 else None)(
        deliveries(svc, v["order_id"])), timeout=30)
    assert rows[0]["last_error"] == "connect_failed"
    assert rows[0]["last_http_status"] is None
    rows = wait_until(lambda: (lambda x: x if x and x[0]["attempts"] >= 1 else None)(
        deliveries(svc, u["order_id"])), timeout=30)
    assert rows[0]["last_error"] == "HTTP 503" and rows[0]["last_http_status"] == 503
    r1 = kafka.read_all(ns.topic("notify.retry.1"), timeout=10, min_count=2)
    assert {r.header("notify.last.error") for r in r1} == {"connect_failed", "HTTP 503"}
    log = svc.log()
    assert "attempt 1 failed (transient): connect_failed" in log
    for leak in ("127.0.0.1:1", "port 1", "Failed to connect", "private-path", "t0ps3cret",
                 sink.url):
        assert leak not in log, leak
    # At debug level the transfer's own text is there, for operators.
    svc.restart(env={"OF_LOG_LEVEL": "debug"})
    produce_outcome(kafka, ns, outcome(email=None, webhook_url=url))
    wait_until(lambda: "transfer error" in svc.log(), timeout=30)
    above_debug = [ln for ln in svc.log().splitlines() if '"level":"debug"' not in ln]
    assert not [ln for ln in above_debug if "private-path" in ln or "127.0.0.1:1" in ln]
