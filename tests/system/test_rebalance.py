"""Rebalances with two replicas (issue 16): only the partitions a replica
gives up stop, a partition that comes back is consumed again, the group
settings (assignor, static membership) behave as documented, and two
processes given one instance id stop with a message that says so."""

from __future__ import annotations

import json
import time

from harness import payment, wait_until
from harness.proxy import TcpProxy, proxied_dsn
from test_inventory import current_partitions, publish_many, put_stock


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
