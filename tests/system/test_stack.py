"""Self-tests of the system-test harness: real Kafka, real PostgreSQL, the
HTTP sink, the signing helper and the service factory (with a stand-in
binary, so these pass before the C services exist)."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
import requests

from harness import payment, post_payment, sign, wait_until
from harness.services import Services
from harness.sign import encode, signed_headers
from harness.topics import topic_names

# --- kafka -------------------------------------------------------------------


def test_kafka_produce_and_read_all_with_headers(kafka):
    topic = f"selftest.{secrets.token_hex(4)}"
    kafka.create_topics([topic], partitions=3)
    assert kafka.partitions(topic) == 3
    headers = {"ce_specversion": "1.0", "ce_id": "abc", "content-type": "application/json"}
    p, off = kafka.produce(topic, "ord_1", {"hello": "world"}, headers=headers)
    kafka.produce(topic, b"ord_2", b"\x00raw", headers=[("dup", "1"), ("dup", "2")], partition=p)
    recs = kafka.read_all(topic, timeout=15)
    assert len(recs) == 2
    first = next(r for r in recs if r.key == b"ord_1")
    assert (first.partition, first.offset) == (p, off)
    assert first.json() == {"hello": "world"}
    assert first.header("ce_id") == "abc"
    assert first.headers["content-type"] == b"application/json"
    assert first.timestamp > 0
    second = next(r for r in recs if r.key == b"ord_2")
    assert second.value == b"\x00raw"
    assert second.header_list == [("dup", b"1"), ("dup", b"2")]
    assert second.offset == off + 1
    # min_count waits for records that arrive later
    kafka.produce(topic, "ord_3", "late")
    assert len(kafka.read_all(topic, timeout=15, min_count=3)) == 3


def test_kafka_consumer_helper(kafka):
    topic = f"selftest.{secrets.token_hex(4)}"
    kafka.create_topics([topic], partitions=1)
    kafka.produce(topic, "k", "v")
    c = kafka.consumer([topic])
    try:
        msg = wait_until(lambda: c.poll(0.5), timeout=20, message="a record via consumer()")
        assert msg.error() is None and msg.value() == b"v"
    finally:
        c.close()


def test_kafka_create_topics_is_idempotent(kafka):
    topic = f"selftest.{secrets.token_hex(4)}"
    kafka.create_topics([topic], partitions=2)
    kafka.create_topics([topic], partitions=2)
    assert topic in kafka.list_topics()


def test_ns_creates_all_topics(kafka, ns):
    assert re.fullmatch(r"t[0-9a-f]{8}\.", ns)
    names = kafka.list_topics()
    assert set(ns.topics) <= names
    assert ns.topic("payment.success") == f"{ns}payment.success"
    assert ns.topic("notify.retry.3") in names and ns.topic("notify.retry.4") not in names
    assert kafka.partitions(ns.topic("notify.dlq")) == 3


@pytest.mark.notify_retries(2)
def test_ns_retry_tiers_marker(kafka, ns):
    assert ns.retry_tiers == 2
    assert ns.topics == [ns + t for t in topic_names(2)]
    assert ns.topic("notify.retry.3") not in kafka.list_topics()


@pytest.mark.slow
def test_kafka_stop_kill_and_restart_keep_data(kafka):
    topic = f"selftest.{secrets.token_hex(4)}"
    kafka.create_topics([topic], partitions=1)
    kafka.produce(topic, "k", "before")
    kafka.stop()
    assert not kafka.is_running()
    kafka.start()
    kafka.produce(topic, "k", "after-stop")
    kafka.kill()
    assert not kafka.is_running()
    kafka.start()
    kafka.produce(topic, "k", "after-kill")
    values = [r.value for r in kafka.read_all(topic, timeout=20, min_count=3)]
    assert values == [b"before", b"after-stop", b"after-kill"]


@pytest.mark.slow
def test_kafka_cluster_of_three_fails_over(tmp_path):
    """KafkaCluster: three nodes, one quorum; topics get 3 replicas and
    min.insync.replicas=2; the leader of a partition can be found and
    killed, writes (acks=all) go on on the other two, and the node rejoins
    when started alone."""
    from confluent_kafka.admin import ConfigResource

    from harness import KafkaCluster
    cluster = KafkaCluster(tmp_path / "cluster", nodes=3)
    try:
        cluster.fetch()
        cluster.start()
        assert len(cluster.bootstrap.split(",")) == 3
        topic = f"selftest.{secrets.token_hex(4)}"
        cluster.create_topics([topic], partitions=3)
        md = cluster.admin().list_topics(topic, timeout=10).topics[topic]
        assert all(len(p.replicas) == 3 and len(p.isrs) == 3 for p in md.partitions.values())
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        admin = cluster.admin()  # kept: the futures die with their client
        # The request goes to any node, and a node learns of a new topic a
        # moment after the controller: UNKNOWN_TOPIC_OR_PART until then
        # (CI's ASan pass, 2026-12-06).
        conf = wait_until(lambda: admin.describe_configs([res])[res].result(10), timeout=30,
                          interval=0.5, message="a node to describe the new topic")
        assert conf["min.insync.replicas"].value == "2"
        cluster.produce(topic, "k", "before", partition=0)
        leader = cluster.leader(topic, 0)
        assert 0 <= leader < 3 and cluster.most_leader(topic) in range(3)
        cluster.kill_node(leader)
        assert not cluster.nodes[leader].is_running()
        cluster.produce(topic, "k", "during", partition=0, timeout=60)
        assert cluster.leader(topic, 0) not in (leader, -1)
        cluster.start_node(leader)
        wait_until(lambda: cluster.under_replicated([topic]) == 0, timeout=60, message="ISR back to 3")
        cluster.produce(topic, "k", "after", partition=0)
        values = [r.value for r in cluster.read_all(topic, timeout=20, min_count=3)]
        assert values == [b"before", b"during", b"after"]
    finally:
        cluster.close()
    assert not any(n.is_running() for n in cluster.nodes)


# --- postgresql --------------------------------------------------------------


def test_pg_query(pg):
    assert pg.query("postgres", "SELECT 1 + %s", (1,)) == [(2,)]
    assert pg.query("postgres", "SHOW server_version")[0][0].startswith("15")
    assert pg.query("postgres", "SHOW fsync") == [("on",)]


def test_db_fixture_is_fresh_and_owned_by_orderflow(db, pg):
    assert db.name.startswith("t_")
    assert db.dsn == pg.dsn_for(db.name)
    with psycopg.connect(db, autocommit=True) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("orderflow", db.name)
        conn.execute("CREATE TABLE t (id int primary key)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
    assert db.query("SELECT count(*) FROM t") == [(2,)]


def test_pg_crash_and_restart(pg, db):
    db.query("CREATE TABLE kept (v text)")
    db.query("INSERT INTO kept VALUES ('x')")
    pg.stop("immediate")
    assert not pg.is_running()
    pg.start()
    assert db.query("SELECT v FROM kept") == [("x",)]


# --- sink --------------------------------------------------------------------


def test_sink_records_and_follows_script(sink):
    sink.respond("/email", [500, {"status": 429, "headers": {"Retry-After": "1"}}])
    url = sink.url + "/email"
    body = {"delivery_id": "d1"}
    statuses = [requests.post(url, json=body, headers={"Idempotency-Key": "d1"}, timeout=5).status_code
                for _ in range(3)]
    assert statuses == [500, 429, 200]
    assert requests.post(sink.url + "/sms", data=b"not json", timeout=5).status_code == 200
    sink.set_default(503)
    assert requests.post(sink.url + "/webhook", json={}, timeout=5).status_code == 503
    got = sink.wait_for(3, timeout=5, path="/email")
    assert [r.status for r in got] == [500, 429, 200]
    assert got[0].json == body and got[0].header("Idempotency-Key") == "d1"
    assert sink.requests("/sms")[0].body == b"not json" and sink.requests("/sms")[0].json is None
    assert len(sink.requests()) == 5
    with pytest.raises(AssertionError):
        sink.wait_for(6, timeout=0.3)


def test_sink_delay_step(sink):
    sink.respond("/slow", [{"status": 200, "delay": 1.0}])
    with pytest.raises(requests.Timeout):
        requests.post(sink.url + "/slow", json={}, timeout=0.3)
    assert sink.wait_for(1, timeout=5, path="/slow")


# --- signing -----------------------------------------------------------------


def test_sign_matches_openssl():
    body = b'{"a":1}'
    header = sign(body, "test-secret", t=1700000000)
    assert header == "t=1700000000,v1=8cb2c3355fca388e9ac2caec004f4d5d7045d74937ab5faad61dc11682247a9f"
    body2 = encode(payment(order_id="ord_x", payment_id="pay_x"))
    out = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", "another secret", "-r"],
                         input=b"1234." + body2, capture_output=True, check=True).stdout
    assert sign(body2, "another secret", t=1234) == f"t=1234,v1={out.split()[0].decode()}"


def test_sign_defaults_to_now():
    t = int(sign(b"{}", "s").split(",")[0][2:])
    assert abs(t - time.time()) < 5
    h = signed_headers(b"{}", "s")
    assert h["Content-Type"] == "application/json" and h["X-Signature"].startswith("t=")


def test_payment_builder_follows_contract_rules():
    p = payment()
    ident = re.compile(r"[A-Za-z0-9._:-]{1,128}")
    assert ident.fullmatch(p["payment_id"]) and ident.fullmatch(p["order_id"])
    assert p["items"] == [{"sku": "SKU-RED-MUG", "qty": 1}]
    assert re.fullmatch(r"[A-Z]{3}", p["currency"]) and 1 <= p["amount_cents"] <= 10**12
    assert p["customer"] == {"id": "cus_test", "email": "ana@example.com"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", p["occurred_at"])
    q = payment(order_id="o", items=["SKU-A:2", "SKU-B:1"], email=None, phone="+49151",
                webhook_url="http://h/x", occurred_at=None, extra_field=1)
    assert q["items"] == [{"sku": "SKU-A", "qty": 2}, {"sku": "SKU-B", "qty": 1}]
    assert q["customer"] == {"id": "cus_test", "phone": "+49151", "webhook_url": "http://h/x"}
    assert "occurred_at" not in q and q["extra_field"] == 1


# --- services factory, with a stand-in binary ----------------------------------

FAKE_SERVICE = textwrap.dedent('''\
    #!{python}
    # Stand-in for an orderflow service: /readyz 200, /v1/payments echoes the
    # signature header, exits 0 on SIGTERM (or FAKE_EXIT_CODE).
    import json, os, signal, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    if os.environ.get("FAKE_FAIL_AT_START"):
        print("OF_HTTP_PORT: bad value", flush=True)
        sys.exit(2)
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self):
            self.send_response(200); self.end_headers()
            self.wfile.write(json.dumps({{k: v for k, v in os.environ.items()
                                          if k.startswith("OF_")}}).encode())
        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0); body = self.rfile.read(n)
            self.send_response(202); self.end_headers()
            self.wfile.write(json.dumps({{"sig": self.headers.get("X-Signature"),
                                          "len": len(body)}}).encode())
    srv = HTTPServer(("127.0.0.1", int(os.environ["OF_HTTP_PORT"])), H)
    def term(*_):
        if os.environ.get("FAKE_SANITIZER"):
            print("==1==ERROR: LeakSanitizer: detected memory leaks", flush=True)
        sys.exit(int(os.environ.get("FAKE_EXIT_CODE", "0")))
    signal.signal(signal.SIGTERM, term)
    print("fake service ready", flush=True)
    srv.serve_forever()
    ''')


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("payment-gw", "inventory", "notify"):
        f = d / name
        f.write_text(FAKE_SERVICE.format(python=sys.executable))
        f.chmod(0o755)
    monkeypatch.setenv("OF_BIN_DIR", str(d))
    return d


def test_services_factory_lifecycle(fake_bin, services, db, ns, kafka, sink):
    gw = services.start("payment-gw")
    env = gw.get("/readyz").json()
    assert env["OF_HTTP_PORT"] == str(gw.port)
    assert env["OF_PG_DSN"] == str(db) and env["OF_TOPIC_PREFIX"] == ns
    assert env["OF_KAFKA_BROKERS"] == kafka.bootstrap
    assert env["OF_WEBHOOK_SECRETS"] == "test-secret" and env["OF_LOG_LEVEL"] == "debug"
    assert env["OF_NOTIFY_EMAIL_URL"] == f"{sink.url}/email"
    assert env["OF_MIGRATIONS_DIR"].endswith("deploy/sql")
    r = post_payment(gw.url, payment())
    assert r.status_code == 202 and r.json()["sig"].startswith("t=")

    inv = services.start("inventory", env={"OF_LOG_LEVEL": "info", "OF_NOTIFY_SECRET": None})
    env = inv.get("/readyz").json()
    assert env["OF_LOG_LEVEL"] == "info" and "OF_NOTIFY_SECRET" not in env
    assert "fake service ready" in inv.log()

    port = gw.port
    gw.restart()
    assert gw.port == port and gw.get("/healthz").status_code == 200
    assert gw.stop() == 0
    assert gw.log().count("=== harness: starting") == 2


def test_services_teardown_reports_problems(fake_bin, tmp_path):
    factory = Services({"OF_LOG_LEVEL": "debug"}, tmp_path / "svc")
    factory.start("payment-gw", env={"FAKE_EXIT_CODE": "3"})
    factory.start("inventory", env={"FAKE_SANITIZER": "1"})
    ok = factory.start("notify")
    ok.kill()  # SIGKILL is the test's business, not a failure
    problems = factory.teardown()
    assert len(problems) == 2, problems
    assert "payment-gw" in problems[0] and "exited with 3 after SIGTERM" in problems[0]
    assert "inventory" in problems[1] and "LeakSanitizer" in problems[1]


def test_services_expected_start_failure(fake_bin, services):
    svc = services.start("notify", env={"FAKE_FAIL_AT_START": "1"}, wait_ready=False)
    assert svc.wait_exit(10) == 2
    assert "OF_HTTP_PORT" in svc.log()
    with pytest.raises(AssertionError, match="exited with code 2 before it was ready"):
        services.start("notify", env={"FAKE_FAIL_AT_START": "1"})


# --- make up (deploy/up.sh) ------------------------------------------------------

def _up_sandbox(tmp_path):
    """A copy of deploy/ in tmp_path (up.sh finds its root from its own path),
    with fake `make` and `mvn` first on PATH that log their call and fail, and
    every port a free one: whatever up.sh gets to, it touches nothing shared."""
    import shutil

    from harness.util import REPO_ROOT, free_ports
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "deploy", root / "deploy", ignore=shutil.ignore_patterns("sql"))
    fake = tmp_path / "fakebin"
    fake.mkdir()
    calls = tmp_path / "calls.log"
    for tool in ("make", "mvn"):
        f = fake / tool
        f.write_text(f'#!/bin/sh\necho "{tool} $*" >>{calls}\nexit 1\n')
        f.chmod(0o755)
    ports = free_ports(8)
    env = {"PATH": f"{fake}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "OF_SKIP_DEPS": "1",
           "OF_KAFKA_JARS": str(tmp_path / "jars"), "OF_PG_DATA": str(tmp_path / "pg")}
    for var, port in zip(("OF_PG_PORT", "OF_KAFKA_PORT", "OF_KAFKA_CONTROLLER_PORT", "OF_GW_PORT",
                          "OF_INVENTORY_PORT", "OF_NOTIFY_PORT", "OF_SINK_PORT"), ports):
        env[var] = str(port)
    return root, env, calls


def test_up_builds_librdkafka_before_the_services(tmp_path):
    """Issue 15 defect 1: on a machine without var/librdkafka, make up must
    build librdkafka 2.3 before it builds the services (it went straight to
    `make build`, which then linked Debian's 2.0.2). The download is pointed
    at a missing file, so up.sh stops right there."""
    root, env, calls = _up_sandbox(tmp_path)
    env["OF_RDKAFKA_SRC_URL"] = f"file://{tmp_path}/missing.crate"
    r = subprocess.run([str(root / "deploy" / "up.sh")], env=env, capture_output=True, text=True, timeout=60)
    made = calls.read_text() if calls.exists() else ""
    assert "make " not in made, f"up.sh built the services before librdkafka:\n{r.stdout}{r.stderr}"
    assert r.returncode != 0
    assert "librdkafka.sh: download failed" in r.stderr, r.stderr


def test_up_refuses_binaries_linked_to_old_librdkafka(tmp_path):
    """The binaries up.sh starts must load librdkafka >= 2.3: one linked to
    Debian's 2.0.2 (a build configured before var/librdkafka existed) stops
    make up with the way out, before anything starts."""
    root, env, calls = _up_sandbox(tmp_path)
    bindir = root / "build" / "bin"
    bindir.mkdir(parents=True)
    src = tmp_path / "old.c"
    src.write_text("#include <librdkafka/rdkafka.h>\nint main(void) { return rd_kafka_version() == 0; }\n")
    exe = tmp_path / "old"
    subprocess.run(["gcc", "-o", str(exe), str(src), "-lrdkafka"], check=True)  # Debian's librdkafka-dev
    for b in ("payment-gw", "inventory", "notify", "ofctl"):
        (bindir / b).write_bytes(exe.read_bytes())
        (bindir / b).chmod(0o755)
    env["OF_SKIP_BUILD"] = "1"
    r = subprocess.run([str(root / "deploy" / "up.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "links librdkafka 2.0.2" in r.stderr and "needs >= 2.3" in r.stderr, r.stderr
    assert not calls.exists() or "mvn" not in calls.read_text(), "up.sh went on past the check"


# --- Kafka's own tools (var/kafka/bin, written by deploy/kafka.sh fetch) ---------

def _kafka_tool(name: str, *args: str, input: str | None = None, timeout: float = 60):
    import os

    from harness.util import REPO_ROOT
    jars = Path(os.environ.get("OF_KAFKA_JARS", REPO_ROOT / "var" / "kafka" / "lib"))
    tool = (REPO_ROOT / jars).parent / "bin" / name
    assert tool.exists(), f"{tool} missing (deploy/kafka.sh fetch writes it)"
    return subprocess.run([str(tool), *args], capture_output=True, text=True, input=input, timeout=timeout)


def test_kafka_tools_against_a_live_broker(kafka, ns):
    """Issue 15 defect 7: Kafka's own kafka-topics.sh, console producer and
    consumer and kafka-consumer-groups.sh work from var/kafka/bin: they list
    the topics, move a record, and describe the group that read it."""
    b = kafka.bootstrap
    r = _kafka_tool("kafka-topics.sh", "--bootstrap-server", b, "--list")
    assert r.returncode == 0, r.stderr
    assert set(ns.topics) <= set(r.stdout.split())
    topic = ns.topic("payment.success")
    r = _kafka_tool("kafka-topics.sh", "--bootstrap-server", b, "--describe", "--topic", topic)
    assert r.returncode == 0 and f"Topic: {topic}" in r.stdout and "PartitionCount: 3" in r.stdout, r.stdout
    r = _kafka_tool("kafka-console-producer.sh", "--bootstrap-server", b, "--topic", topic,
                    "--property", "parse.key=true", "--property", "key.separator=|", input="ord_tool|hello\n")
    assert r.returncode == 0, r.stderr
    group = ns.group("toolcheck")
    r = _kafka_tool("kafka-console-consumer.sh", "--bootstrap-server", b, "--topic", topic, "--group", group,
                    "--from-beginning", "--max-messages", "1", "--property", "print.key=true",
                    "--timeout-ms", "30000")
    assert r.returncode == 0 and "ord_tool\thello" in r.stdout, r.stdout + r.stderr
    r = _kafka_tool("kafka-consumer-groups.sh", "--bootstrap-server", b, "--describe", "--group", group)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith(group)]
    assert {row[2] for row in rows} == {"0", "1", "2"}, r.stdout  # every partition, committed
    assert sum(int(row[3]) for row in rows) == 1 and all(row[5] == "0" for row in rows), r.stdout


# --- the dev sink of make up (deploy/devsink.py) -----------------------------------

def test_devsink_logs_the_exact_body(tmp_path):
    """Issue 15 defect 10: the dev sink parsed bodies and logged them
    re-serialised (keys sorted, escapes and spacing changed), so a signature
    could not be checked from var/log/sink.log. The logged body must be the
    bytes received: the signature over them verifies."""
    import base64
    import hashlib
    import hmac

    from harness.util import REPO_ROOT, free_port
    port = free_port()
    log = tmp_path / "sink.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-u", str(REPO_ROOT / "deploy" / "devsink.py"),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/ready", timeout=1).ok, timeout=10)
        body = '{"z":1, "a":"caf\\u00e9 ☕","n":1.50,"nested":{"b":[1,2],"a":null}}'.encode()
        sig = sign(body, "dev-notify-secret", t=1700000000)
        r = requests.post(f"http://127.0.0.1:{port}/webhook", data=body,
                          headers={"Content-Type": "application/json", "X-Signature": sig}, timeout=5)
        assert r.status_code == 200
        binary = b"\xff\x00not utf-8"
        assert requests.post(f"http://127.0.0.1:{port}/sms", data=binary, timeout=5).status_code == 200

        def entries():
            return [json.loads(line) for line in log.read_text().splitlines() if '"path"' in line]
        got = wait_until(lambda: len(entries()) == 2 and entries(), timeout=10)
    finally:
        proc.terminate()
        proc.wait(10)
    logged = got[0]["body"].encode("utf-8")
    assert logged == body
    header = got[0]["headers"]["x-signature"]
    t, v1 = (kv.split("=", 1)[1] for kv in header.split(","))
    expected = hmac.new(b"dev-notify-secret", t.encode() + b"." + logged, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, expected)
    assert base64.b64decode(got[1]["body_base64"]) == binary and "body" not in got[1]


# --- make up with a replicated cluster and replicas (issue 16's local stack) -------

def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_block(offsets: list[int], lo: int = 20000, hi: int | None = None) -> int:
    """A base port such that base + every offset is free on 127.0.0.1.

    The block lies below the kernel's ephemeral range: a port in that range
    that is free now can be taken a moment later as the local end of any
    outgoing connection (the three Kafka nodes and the services open many),
    and a service binding 0.0.0.0 on it then fails with "address in use"."""
    import random
    import socket
    if hi is None:
        hi = _ephemeral_low()
    for _ in range(200):
        base = random.randrange(lo, hi - max(offsets))
        socks = []
        try:
            for off in offsets:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + off))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port block")


def _our_pids(var: Path) -> dict[str, int]:
    pids = {f.stem: int(f.read_text()) for f in (var / "run").glob("*.pid")}
    for node in sorted((var / "kafka").glob("node-*")):
        if (node / "kafka.pid").exists():
            pids[f"kafka/{node.name}"] = int((node / "kafka.pid").read_text())
    return pids


@pytest.mark.slow
def test_make_up_three_nodes_and_replicas(tmp_path):
    """`OF_KAFKA_NODES=3 OF_INVENTORY_REPLICAS=2 OF_NOTIFY_REPLICAS=2 make up`
    through deploy/up.sh with its own var dir and free ports: three KRaft
    nodes, every orderflow topic and __consumer_offsets with 3 replicas and
    min.insync.replicas=2, var/env.sh listing every node, two members in
    each consumer group, the services loading librdkafka >= 2.3 from
    var/librdkafka; a payment goes through; a second run after a replica
    is SIGKILLed starts that replica and nothing else; make down stops all.
    Before that, a var/kafka in the old single-node layout is moved to
    node-0 and a different node count is refused."""
    import ctypes
    import tempfile

    from confluent_kafka.admin import AdminClient, ConfigResource

    from harness.services import bin_dir, sanitizer_findings
    from harness.sign import encode, signed_headers
    from harness.util import REPO_ROOT, pid_alive

    var = tmp_path / "var"
    pg_data = Path(tempfile.mkdtemp(prefix="of-pg-stack-", dir="/tmp"))
    # one block of ports, so no two of them can be handed the same one: three
    # Kafka nodes (broker, controller), the services and their replicas
    # (+100), PostgreSQL, the sink
    base = _free_block([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 106, 107, 108])
    kafka_port, gw, inv, ntf = base, base + 6, base + 7, base + 8
    env = {k: v for k, v in os.environ.items() if not k.startswith("OF_")}
    env.update({
        "OF_VAR_DIR": str(var), "OF_PG_DATA": str(pg_data), "OF_BIN_DIR": str(bin_dir()),
        "OF_SKIP_DEPS": "1", "OF_SKIP_BUILD": "1", "OF_SEED_DEMO": "0", "OF_READY_TIMEOUT": "90",
        "OF_PG_PORT": str(base + 9), "OF_SINK_PORT": str(base + 10),
        "OF_KAFKA_PORT": str(kafka_port), "OF_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
        "OF_GW_PORT": str(gw), "OF_INVENTORY_PORT": str(inv), "OF_NOTIFY_PORT": str(ntf),
        "OF_KAFKA_NODES": "3", "OF_INVENTORY_REPLICAS": "2", "OF_NOTIFY_REPLICAS": "2",
        "OF_NOTIFY_RETRY_DELAYS": "1s,2s,3s",
    })
    up = [str(REPO_ROOT / "deploy" / "up.sh")]
    down = [str(REPO_ROOT / "deploy" / "down.sh")]

    def run(cmd, **extra):
        return subprocess.run(cmd, env={**env, **extra}, capture_output=True, text=True, timeout=300)

    # an older make up's single-node layout: moved to node-0, and 3 nodes refused on it
    old = var / "kafka"
    (old / "data").mkdir(parents=True)
    (old / "data" / "meta.properties").write_text("cluster.id=b3JkZXJmbG93LW9sZC0wMDAw\nnode.id=1\n")
    (old / "server.properties").write_text("# old\n")
    try:
        r = run(up)
        assert r.returncode != 0
        assert "moved the single-node Kafka data" in r.stdout + r.stderr
        assert "holds a 1-node Kafka cluster" in r.stderr, r.stderr
        assert (old / "node-0" / "data" / "meta.properties").exists() and not (old / "data").exists()
        for p in old.glob("node-*"):
            subprocess.run(["rm", "-rf", str(p)], check=True)
        (old / "nodes").unlink(missing_ok=True)
        (old / "cluster.id").unlink(missing_ok=True)

        r = run(up)
        assert r.returncode == 0, f"up.sh failed:\n{r.stdout}\n{r.stderr}"
        for url in (f"http://127.0.0.1:{gw}", f"http://127.0.0.1:{inv}", f"http://127.0.0.1:{inv + 100}",
                    f"http://127.0.0.1:{ntf}", f"http://127.0.0.1:{ntf + 100}"):
            assert url in r.stdout, f"{url} not in the printout"
        brokers = ",".join(f"127.0.0.1:{kafka_port + 2 * i}" for i in range(3))
        sourced = subprocess.run(["bash", "-c", f'. {var}/env.sh && echo "$OF_KAFKA_BROKERS" '
                                  '"$OF_INVENTORY_URL" "$OF_NOTIFY_URL"'],
                                 capture_output=True, text=True, env={}).stdout.split()
        assert sourced == [brokers, f"http://127.0.0.1:{inv},http://127.0.0.1:{inv + 100}",
                           f"http://127.0.0.1:{ntf},http://127.0.0.1:{ntf + 100}"]
        pids = _our_pids(var)
        assert set(pids) == {"sink", "payment-gw", "inventory", "inventory-1", "notify", "notify-1",
                             "kafka/node-0", "kafka/node-1", "kafka/node-2"}, pids
        assert (var / "log" / "inventory-1.log").exists() and (var / "log" / "notify-1.log").exists()

        # the stack links librdkafka >= 2.3, from var/librdkafka
        for name in ("payment-gw", "inventory", "notify-1"):
            maps = Path(f"/proc/{pids[name]}/maps").read_text()
            libs = {line.split()[-1] for line in maps.splitlines() if "librdkafka.so" in line}
            assert len(libs) == 1 and str(REPO_ROOT / "var" / "librdkafka") in next(iter(libs)), libs
            lib = ctypes.CDLL(next(iter(libs)))
            lib.rd_kafka_version.restype = ctypes.c_int
            assert lib.rd_kafka_version() >= 0x02030000, hex(lib.rd_kafka_version())

        # a payment through the whole pipeline
        body = encode(payment(order_id="ord_stack_1", items=["SKU-STACK:1"]))
        r2 = requests.put(f"http://127.0.0.1:{inv + 100}/v1/stock/SKU-STACK", json={"available": 3},
                          headers={"Authorization": "Bearer dev-admin-token"}, timeout=10)
        assert r2.status_code == 200, r2.text
        r2 = requests.post(f"http://127.0.0.1:{gw}/v1/payments", data=body,
                           headers=signed_headers(body, "dev-webhook-secret"), timeout=30)
        assert r2.status_code == 202, r2.text
        order = wait_until(lambda: (o := requests.get(f"http://127.0.0.1:{inv}/v1/orders/ord_stack_1",
                                                      timeout=5)).ok and o.json()["status"] == "fulfilled"
                           and o.json(), timeout=60, message="order fulfilled")
        assert order["items"][0]["sku"] == "SKU-STACK"

        # replication: every topic (and the offsets topic) 3 replicas, min.insync.replicas=2
        admin = AdminClient({"bootstrap.servers": brokers})
        md = admin.list_topics(timeout=10)
        topics = ["payment.success", "order.fulfilled", "order.compensation", "payment.success.dlq",
                  "notify.retry.1", "notify.retry.2", "notify.retry.3", "notify.dlq", "__consumer_offsets"]
        for t in topics:
            assert t in md.topics, t
            assert {len(p.replicas) for p in md.topics[t].partitions.values()} == {3}, t
        resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics]
        for res, fut in admin.describe_configs(resources).items():
            assert fut.result(10)["min.insync.replicas"].value == "2", res
        # both replicas of each service join their group; a replica may join
        # a few seconds after the first (its coordinator lookup backs off
        # while __consumer_offsets is still loading: "Coordinator load in
        # progress"), and the order above is decided by whichever came first
        def members(g):
            return len(admin.describe_consumer_groups([g])[g].result(10).members)
        for g in ("inventory", "notify"):
            wait_until(lambda: members(g) == 2, timeout=60, message=f"two members in group {g}")

        # a SIGKILLed replica: the next run starts it and nothing else
        os.kill(pids["inventory-1"], signal.SIGKILL)
        wait_until(lambda: not pid_alive(pids["inventory-1"]), timeout=10)
        r = run(up)
        assert r.returncode == 0, f"second up.sh failed:\n{r.stdout}\n{r.stderr}"
        assert "starting inventory-1" in r.stdout
        assert [line for line in r.stdout.splitlines() if line.startswith("==> starting")] \
            == [f"==> starting inventory-1 on :{inv + 100}"], r.stdout
        again = _our_pids(var)
        assert {k: v for k, v in again.items() if k != "inventory-1"} \
            == {k: v for k, v in pids.items() if k != "inventory-1"}
        assert again["inventory-1"] != pids["inventory-1"] and pid_alive(again["inventory-1"])
    finally:
        r = run(down)
        leftover = [f"{k} {v}" for k, v in _our_pids(var).items() if pid_alive(v)] if var.exists() else []
        subprocess.run(["rm", "-rf", str(pg_data)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert not leftover, f"make down left running: {leftover}"
    for log in (var / "log").glob("*.log"):
        assert not sanitizer_findings(log.read_text()), f"{log.name}: {sanitizer_findings(log.read_text())}"
