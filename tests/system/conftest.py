"""Fixtures for orderflow's system tests.

Session: kafka (a real broker), pg (a real PostgreSQL 15).
Per test: db (fresh database, its DSN), ns (topic prefix + all topics),
sink (scriptable HTTP server), services (starts the binaries).
The harness package next to this file holds the implementations.
"""

from __future__ import annotations

import secrets

import pytest

from harness import config
from harness.kafka import KafkaBroker
from harness.pg import Database, Postgres
from harness.services import Services
from harness.sink import Sink
from harness.topics import Namespace
from harness.util import REPO_ROOT


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item (item.rep_setup / rep_call /
    rep_teardown) and, when setup or the test failed, attach the last 200
    lines of every service log to the failure report."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    svcs = getattr(item, "_of_services", None)
    if svcs is not None and rep.failed and rep.when in ("setup", "call"):
        for title, text in svcs.log_sections(200):
            rep.sections.append((title, text))
    return rep


@pytest.fixture(scope="session")
def kafka(tmp_path_factory) -> KafkaBroker:
    """A real single-node Kafka broker (KRaft) on free ports for the whole
    session; see harness/kafka.py for the API."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    broker.fetch()
    broker.start()
    yield broker
    broker.close()


@pytest.fixture(scope="session")
def pg() -> Postgres:
    """A real PostgreSQL 15 cluster on a free port for the whole session."""
    server = Postgres()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def db(pg: Postgres) -> Database:
    """A fresh database owned by role orderflow; the value is its DSN."""
    name = pg.create_database()
    yield Database(pg, name)
    try:
        pg.drop_database(name)
    except Exception:  # noqa: BLE001 - best effort (pg may be down after a fault test)
        pass


@pytest.fixture
def ns(request, kafka: KafkaBroker) -> Namespace:
    """A unique topic prefix ("t<hex>.") with every orderflow topic created
    under it (3 partitions). Retry tiers: @pytest.mark.notify_retries(n) or
    indirect parametrization, default 3."""
    tiers = 3
    marker = request.node.get_closest_marker("notify_retries")
    if marker is not None:
        tiers = int(marker.args[0])
    if hasattr(request, "param"):
        tiers = int(request.param)
    namespace = Namespace(f"t{secrets.token_hex(4)}.", retry_tiers=tiers)
    kafka.create_topics(namespace.topics, partitions=config.TOPIC_PARTITIONS)
    yield namespace
    try:
        kafka.delete_topics(namespace.topics)
    except Exception:  # noqa: BLE001 - best effort (broker may be down after a fault test)
        pass


@pytest.fixture
def sink() -> Sink:
    """A local HTTP server recording requests; answers 200 unless scripted."""
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture
def services(request, kafka: KafkaBroker, db: Database, ns: Namespace, tmp_path) -> Services:
    """Factory: services.start(name, env=None, wait_ready=True, port=None,
    check_exit=True) -> Service. Generated config: OF_KAFKA_BROKERS,
    OF_PG_DSN (db), OF_HTTP_PORT (free port), OF_TOPIC_PREFIX (ns),
    OF_TOPIC_PARTITIONS=3, OF_LOG_LEVEL=debug, OF_WEBHOOK_SECRETS=test-secret,
    OF_ADMIN_TOKEN=test-admin-token, OF_NOTIFY_SECRET=test-notify-secret,
    OF_MIGRATIONS_DIR=<repo>/deploy/sql, OF_NOTIFY_RETRY_DELAYS=1s,2s,..,
    OF_NOTIFY_WEBHOOK_ALLOW=127.0.0.1/32;
    with the sink fixture also OF_NOTIFY_{EMAIL,SMS,WEBHOOK}_URL =
    <sink>/email, /sms, /webhook. Teardown stops everything with SIGTERM and
    fails the test on a non-zero exit or a sanitizer report."""
    env = {
        "OF_KAFKA_BROKERS": kafka.bootstrap,
        "OF_PG_DSN": str(db),
        "OF_TOPIC_PREFIX": str(ns),
        "OF_TOPIC_PARTITIONS": str(config.TOPIC_PARTITIONS),
        "OF_LOG_LEVEL": "debug",
        "OF_WEBHOOK_SECRETS": config.WEBHOOK_SECRET,
        "OF_ADMIN_TOKEN": config.ADMIN_TOKEN,
        "OF_NOTIFY_SECRET": config.NOTIFY_SECRET,
        "OF_MIGRATIONS_DIR": str(REPO_ROOT / "deploy" / "sql"),
        "OF_NOTIFY_RETRY_DELAYS": config.retry_delays(ns.retry_tiers),
        # Customers' webhook_url in tests point at the loopback sink, which
        # notify's destination policy refuses unless allow-listed.
        "OF_NOTIFY_WEBHOOK_ALLOW": "127.0.0.1/32",
    }
    if "sink" in request.fixturenames:
        s = request.getfixturevalue("sink")
        env.update({"OF_NOTIFY_EMAIL_URL": f"{s.url}/email",
                    "OF_NOTIFY_SMS_URL": f"{s.url}/sms",
                    "OF_NOTIFY_WEBHOOK_URL": f"{s.url}/webhook"})
    factory = Services(env, tmp_path / "services")
    request.node._of_services = factory
    yield factory
    problems = factory.teardown()
    if problems:
        logs = "\n".join(f"--- {title} ---\n{text}" for title, text in factory.log_sections(200))
        pytest.fail("service teardown found problems:\n  " + "\n  ".join(problems) + "\n" + logs,
                    pytrace=False)
