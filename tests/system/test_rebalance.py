"""Rebalances with two replicas (issue 16): only the partitions a replica
gives up stop, a partition that comes back is consumed again, the group
settings (assignor, static membership) behave as documented, and two
processes given one instance id stop with a message that says so."""

from __future__ import annotations

import json
import threading
import time

import pytest

from harness import payment, wait_until
from harness.proxy import TcpProxy, proxied_dsn
from test_inventory import (_exactly_one_outcome_each, conservation, current_partitions, metric,
                            publish_many, put_stock)
from test_notify import delivery_id, ok_ids, outcome, produce_outcome
from test_notify import metric as ntf_metric


def _decided(db) -> int:
    return db.query("SELECT count(*) FROM orders")[0][0]


def _paused(svc) -> float:
    return svc.metric("orderflow_inventory_consumer_paused")


def test_partition_revoked_while_paused_is_consumed_when_it_comes_back(kafka, ns, db, pg, services):
    """Replica A waits out a PostgreSQL outage (its partitions paused); B
    joins and takes some of them; the outage ends and A resumes the ones it
    kept; B stops and its partitions come back to A. They must be consumed:
    a pause is the consumer's own state, and librdkafka keeps it on a
    partition across a revoke and a later assign."""
    proxy = TcpProxy("127.0.0.1", pg.port, name="postgresql-a").start()
    try:
        a = services.start("inventory", env={"OF_PG_DSN": proxied_dsn(str(db), proxy),
                                             "OF_KAFKA_INSTANCE_ID": "none"})
        put_stock(a, "SKU-R", 100000)
        first = [payment(items=["SKU-R:1"]) for _ in range(30)]
        publish_many(kafka, ns, first)
        wait_until(lambda: _decided(db) == 30, timeout=60, message="30 orders decided by A")
        wait_until(lambda: len(current_partitions(a)) == 3, timeout=30, message="A holds all 3")

        proxy.disable()  # A's PostgreSQL link is cut: its workers wait, partitions paused
        second = [payment(items=["SKU-R:1"]) for _ in range(30)]
        publish_many(kafka, ns, second)
        wait_until(lambda: _paused(a) == 1, timeout=30, message="A pauses its partitions")
        # every partition had a record waiting, so every worker pauses its own
        time.sleep(2)

        b = services.start("inventory", env={"OF_KAFKA_INSTANCE_ID": "none"})
        wait_until(lambda: current_partitions(b) and len(current_partitions(a)) < 3
                   and not (current_partitions(a) & current_partitions(b)), timeout=60,
                   message="B takes some partitions from A")
        moved = current_partitions(b)
        proxy.enable()
        wait_until(lambda: _decided(db) == 60, timeout=90, message="60 orders decided")
        wait_until(lambda: _paused(a) == 0, timeout=30, message="A resumes")

        b.stop()  # dynamic membership: B leaves the group, A gets everything back
        wait_until(lambda: len(current_partitions(a)) == 3, timeout=60,
                   message=f"A holds all 3 again (B had {sorted(moved)})")
        third = [payment(items=["SKU-R:1"]) for _ in range(60)]
        publish_many(kafka, ns, third)
        wait_until(lambda: _decided(db) == 120, timeout=60,
                   message=f"120 orders decided: the partitions that came back "
                           f"from B ({sorted(moved)}) are consumed")
    finally:
        proxy.stop()


# --- helpers ---------------------------------------------------------------------

def _partition_events(svc, since: int = 0) -> list[tuple[str, set[str]]]:
    """("assigned" | "revoked" | "lost", partitions) for every rebalance
    log line of the service from log line `since` on."""
    out = []
    for line in svc.log().splitlines()[since:]:
        if "kafka partitions" not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        what = entry.get("msg", "").rsplit(" ", 1)[-1]
        out.append((what, set(filter(None, entry.get("partitions", "").split(",")))))
    return out


def _log_lines(svc) -> int:
    return len(svc.log().splitlines())


def _publish_steadily(kafka, ns, pays: list[dict], rate: float) -> threading.Thread:
    def run():
        t0 = time.monotonic()
        for i in range(0, len(pays), 5):
            time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            publish_many(kafka, ns, pays[i:i + 5])
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


# --- inventory ---------------------------------------------------------------------

def test_inventory_replica_joining_stops_only_the_partitions_it_takes(kafka, ns, db, services):
    """cooperative-sticky: while payments flow, a second replica joins and
    takes one partition; the first gives up that one only (the others are
    never revoked, so never stop). Then the second restarts with its
    static instance id: it gets the same partition back and the first sees
    no rebalance at all. Every payment gets exactly one outcome."""
    a = services.start("inventory")
    put_stock(a, "SKU-C", 100000)
    wait_until(lambda: len(current_partitions(a)) == 3, timeout=30, message="A holds all 3")
    held_before = current_partitions(a)
    pays = [payment(items=["SKU-C:1"]) for _ in range(450)]
    feeder = _publish_steadily(kafka, ns, pays, rate=30)
    time.sleep(3)

    mark_a = _log_lines(a)
    b = services.start("inventory")
    wait_until(lambda: current_partitions(b) and current_partitions(a)
               and len(current_partitions(a) | current_partitions(b)) == 3, timeout=60,
               message="A and B share the 3 partitions")
    time.sleep(3)
    ev_a = _partition_events(a, mark_a)
    revoked = set().union(*(p for w, p in ev_a if w in ("revoked", "lost")))
    assert revoked == current_partitions(b), (ev_a, current_partitions(b))
    kept = held_before - revoked
    assert kept and kept == current_partitions(a), (held_before, ev_a)

    # static membership: B restarts within its session, nobody rebalances
    mark_a = _log_lines(a)
    b_parts = current_partitions(b)
    b.restart()
    wait_until(lambda: current_partitions(b) == b_parts, timeout=30,
               message="B gets its partition back")
    time.sleep(4)  # a rebalance would reach A within a heartbeat (3 s)
    assert _partition_events(a, mark_a) == []
    assert current_partitions(a) == kept

    feeder.join(60)
    wait_until(lambda: _decided(db) == len(pays), timeout=90, message="every payment decided")
    _recs, dups = _exactly_one_outcome_each(kafka, ns, pays)
    assert all(row[-1] for row in conservation(db))
    assert metric(a, "orderflow_inventory_records_consumed_total") > 0
    assert metric(b, "orderflow_inventory_records_consumed_total") > 0


# --- notify ------------------------------------------------------------------------

def test_notify_replicas_share_every_outcome_topic(kafka, ns, sink, services):
    """Two notify replicas each consume part of order.fulfilled and of
    order.compensation, whatever the retry tiers. (cooperative-sticky
    balances the count of partitions over all topics: it gave the second
    replica the 9 idle retry-tier partitions and left every outcome
    partition on the first, so the second did no work.)"""
    a = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    wait_until(lambda: len(current_partitions(a)) == 15, timeout=30, message="A holds all 15")
    b = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    wait_until(lambda: current_partitions(b) and not (current_partitions(a) & current_partitions(b))
               and len(current_partitions(a) | current_partitions(b)) == 15, timeout=60,
               message="A and B share the 15 partitions")
    for topic in ("order.fulfilled", "order.compensation"):
        for svc, who in ((a, "A"), (b, "B")):
            assert any(p.startswith(ns.topic(topic) + "[") for p in current_partitions(svc)), \
                f"{who} holds no partition of {topic}: {sorted(current_partitions(svc))}"
    values = [outcome(order_id=f"ord_{i:03d}_{time.time_ns()}") for i in range(60)]
    for v in values:
        produce_outcome(kafka, ns, v)
    wait_until(lambda: len(ok_ids(sink)) == 60, timeout=60, message="60 e-mails delivered")
    for svc, who in ((a, "A"), (b, "B")):
        assert ntf_metric(svc, "orderflow_notify_deliveries_total", channel="email",
                          result="delivered") > 0, f"{who} delivered nothing"


@pytest.mark.notify_retries(1)
def test_notify_replica_joining_leaves_the_held_retries_of_kept_partitions(kafka, ns, sink,
                                                                           services):
    """With the cooperative-sticky assignor (inventory's; notify's when an
    operator chooses it): retry records wait in notify A's memory (not due
    for 15 s) when B joins: A gives up only the partitions B takes (their
    held records are dropped and B consumes them again); the held records
    of the partitions A keeps stay held and are delivered by A. Every
    notification is delivered exactly once."""
    env = {"OF_NOTIFY_RETRY_DELAYS": "15s", "OF_NOTIFY_WEBHOOK_URL": "",
           "OF_RDKAFKA_PARTITION_ASSIGNMENT_STRATEGY": "cooperative-sticky",
           # the breaker stays closed: every first attempt reaches the sink
           "OF_NOTIFY_CB_WINDOW": "1000", "OF_NOTIFY_CB_MIN_REQUESTS": "1000"}
    a = services.start("notify", env=env)
    wait_until(lambda: len(current_partitions(a)) == 9, timeout=30,
               message="A holds the 9 partitions (2 outcome topics, 1 retry tier)")
    held_before = current_partitions(a)
    n = 45
    sink.respond("/email", [503] * n)
    values = [outcome(email=f"c{i}@example.com") for i in range(n)]
    for v in values:
        produce_outcome(kafka, ns, v)
    wait_until(lambda: ntf_metric(a, "orderflow_notify_held_records") == n, timeout=30,
               message=f"{n} retry records held by A")
    retry_parts_a = {p for p in held_before if ".notify.retry.1[" in p}

    mark_a = _log_lines(a)
    b = services.start("notify", env=env)
    wait_until(lambda: current_partitions(b) and
               len(current_partitions(a) | current_partitions(b)) == 9, timeout=60,
               message="A and B share the partitions")
    ev_a = _partition_events(a, mark_a)
    revoked = set().union(*(p for w, p in ev_a if w in ("revoked", "lost")))
    assert revoked == current_partitions(b), (ev_a, current_partitions(b))
    assert current_partitions(a) == held_before - revoked
    kept_retry = retry_parts_a - revoked
    # A still holds the retry records of the retry partitions it kept
    held_a = ntf_metric(a, "orderflow_notify_held_records")
    if kept_retry:
        assert held_a > 0

    wait_until(lambda: len(ok_ids(sink)) == n, timeout=60,
               message=f"{n} e-mails delivered")
    time.sleep(2)
    counts = ok_ids(sink)
    assert len(counts) == n and set(counts.values()) == {1}, counts
    assert {delivery_id(v["event_id"], "email") for v in values} == set(counts)
    assert kafka.read_all(ns.topic("notify.dlq"), timeout=2) == []
    sent_a = ntf_metric(a, "orderflow_notify_deliveries_total", channel="email", result="delivered")
    sent_b = ntf_metric(b, "orderflow_notify_deliveries_total", channel="email", result="delivered")
    if kept_retry:
        assert sent_a > 0, "A delivered the retries it kept"
    assert sent_a + sent_b == n


# --- static membership: one id, two processes ---------------------------------------

def test_two_processes_with_one_instance_id_the_fenced_one_stops_saying_why(kafka, ns, db, sink,
                                                                           services):
    """Two replicas given the same OF_KAFKA_INSTANCE_ID by mistake: the one
    that joined first is fenced by the broker (a fatal error for
    librdkafka). It stops with exit 1 and a message naming the setting;
    the other goes on consuming."""
    first = {}
    for name in ("inventory", "notify"):
        env = {"OF_KAFKA_INSTANCE_ID": f"{name}-same"}
        first[name] = services.start(name, env=env, check_exit=False)
        wait_until(lambda s=first[name]: current_partitions(s), timeout=30,
                   message=f"the first {name} holds partitions")
    second = {name: services.start(name, env={"OF_KAFKA_INSTANCE_ID": f"{name}-same"})
              for name in ("inventory", "notify")}
    for name, svc in first.items():
        rc = svc.wait_exit(60)
        assert rc == 1, f"{name} exited {rc}"
        fatal = [json.loads(line) for line in svc.log().splitlines()
                 if '"level":"fatal"' in line]
        text = " ".join(e.get("msg", "") for e in fatal)
        assert "OF_KAFKA_INSTANCE_ID" in text and f"'{name}-same'" in text \
            and "fenced" in text, fatal
    put_stock(second["inventory"], "SKU-F", 100)
    pays = [payment(items=["SKU-F:1"]) for _ in range(10)]
    publish_many(kafka, ns, pays)
    wait_until(lambda: _decided(db) == 10, timeout=60, message="the second inventory decides")
    assert all(s.is_running() for s in second.values())
