"""Clean shutdown under load while Kafka is slow or down (issue 13).

A dedicated broker behind a TCP proxy (harness/proxy.py), so the test can
make Kafka slow (latency on every chunk) or take it away (connections cut,
new ones refused) without touching the session broker. Payments flow, a
webhook fails so notify holds retries, then Kafka turns slow or goes away
with work in flight (payments waiting for their acks at the gateway,
records in process, retry records to produce), and every service gets
SIGTERM. Each must exit 0 within its own shutdown timeout (plus a margin for
a loaded machine), and the harness fails the test on any sanitizer report
(this test runs in the ASan pass).

The bounds, per service (what each documents):
- payment-gw: the requests in flight get their answer (a Kafka ack or the
  503 at OF_GW_ACK_TIMEOUT, 5 s) + 1 s, the HTTP server stops (2 s), then
  the producer's final flush (OF_GW_SHUTDOWN_TIMEOUT);
- inventory: leaving the group (at most session.timeout.ms, 10 s, when the
  coordinator is away: of_kafka_consumer_destroy), HTTP drain (3 s), then
  the relay's records in flight and the producer's flush (5 s together);
- notify: OF_NOTIFY_SHUTDOWN_TIMEOUT (records in process, then the
  producer's final flush) + leaving the group (session.timeout.ms).

Leaving the group is bounded by session.timeout.ms because librdkafka lets
commits that wait for an absent coordinator expire only then. The test runs
the consumers as dynamic members (OF_KAFKA_INSTANCE_ID=none: a 10 s
session); static members (the default) have a 30 s session, and so a
shutdown with Kafka away may take that long (docs/RELIABILITY.md).
"""

from __future__ import annotations

import threading
import time

import pytest

from harness.chaos import SERVICES, PaymentDriver, Stack, make_catalogue, make_payments
from harness.proxy import ProxiedKafkaBroker

GW_TIMEOUT_S = 5
NOTIFY_TIMEOUT_S = 5
CLOSE_S = 10  # leaving the group: session.timeout.ms of a dynamic member
BOUND = {
    "payment-gw": 5 + 1 + 2 + GW_TIMEOUT_S,  # OF_GW_ACK_TIMEOUT default 5 s
    "inventory": CLOSE_S + 3 + 5,
    "notify": NOTIFY_TIMEOUT_S + CLOSE_S,
}
MARGIN_S = 5  # a loaded two-core machine, ASan


def _say(capsys, text: str) -> None:
    print(text)
    with capsys.disabled():
        print(text, flush=True)


def _sigterm_all(stack: Stack) -> dict[str, tuple[int, float]]:
    """SIGTERM every service at once; (exit code, seconds) of each."""
    out: dict[str, tuple[int, float]] = {}

    def stop(name: str) -> None:
        t = time.monotonic()
        rc = stack.svc(name).stop(timeout=BOUND[name] + 60)  # SIGKILL only far past the bound
        out[name] = (rc, time.monotonic() - t)

    threads = [threading.Thread(target=stop, args=(n,)) for n in SERVICES]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return out


def _load(stack: Stack, driver: PaymentDriver, payments: list[dict]) -> threading.Thread:
    """Payments at 20/s in the background (first attempts only matter)."""
    return driver.start(payments, 20.0, phase="load")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_sigterm_while_kafka_is_slow_or_down_exits_0_in_time(request, tmp_path, pg, capsys):
    broker = ProxiedKafkaBroker(tmp_path / "kafka")
    stack = Stack.create(tmp_path / "stack", kafka=broker, own_kafka=True, pg=pg,
                         extra_env={"OF_GW_SHUTDOWN_TIMEOUT": f"{GW_TIMEOUT_S}s",
                                    "OF_NOTIFY_SHUTDOWN_TIMEOUT": f"{NOTIFY_TIMEOUT_S}s",
                                    "OF_KAFKA_INSTANCE_ID": "none"})
    request.node._of_services = stack.services
    problems: list[str] = []
    rows = []
    try:
        import random
        import uuid
        rng = random.Random(5)
        cat = make_catalogue(rng, 400, n_skus=10)
        payments = make_payments(rng, 400, cat, uuid.uuid4().hex[:6])
        for phase, fault in (("slow", lambda: broker.proxy.set_latency(1500)),
                             ("down", broker.proxy.disable)):
            broker.proxy.set_latency(0)
            if not broker.proxy.enabled:
                broker.proxy.enable()
            if phase == "slow":
                stack.start_services()
                stack.set_stock(cat.stock)
            else:
                for name in SERVICES:
                    stack.svc(name).start()
                stack.wait_all_ready(120)
            # Every third webhook fails: notify holds retries to produce.
            stack.sink.respond("/webhook", [503, 200, 200] * 200)
            batch, payments = payments[:150], payments[150:]
            driver = PaymentDriver(stack.svc("payment-gw").url, workers=32, timeout=10)
            try:
                poster = _load(stack, driver, batch)
                time.sleep(4)  # records in every stage
                fault()
                time.sleep(2)  # work piles up behind the fault
                res = _sigterm_all(stack)
                poster.join(30)
            finally:
                driver.close()
            for name, (rc, secs) in res.items():
                rows.append((phase, name, rc, secs))
            _say(capsys, f"  kafka {phase}: " + ", ".join(
                f"{n} exit {rc} in {s:.1f}s (bound {BOUND[n]}s)" for n, (rc, s) in res.items()))
        broker.proxy.set_latency(0)
        if not broker.proxy.enabled:
            broker.proxy.enable()
        for phase, name, rc, secs in rows:
            assert rc == 0, (phase, name, rc, stack.svc(name).log(60))
            assert secs <= BOUND[name] + MARGIN_S, (phase, name, secs)
    finally:
        problems = stack.close()
    assert not problems, "\n".join(problems)
