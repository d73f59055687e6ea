"""ofctl against real Kafka and PostgreSQL (and the real services where a
command talks to them).

DLQ commands need no service: DLQ-shaped records (with the contract
section 7 headers) are produced straight into <prefix>payment.success.dlq /
<prefix>notify.dlq. `stock`, `pay` and `verify` run against payment-gw and
inventory; the replay-makes-a-notification-succeed test runs notify."""

from __future__ import annotations

import json
import os
import pty
import re
import secrets
import select
import signal
import subprocess
import time
import uuid

import pytest

from harness import bin_dir, sanitizer_findings, wait_until
from harness.services import SANITIZER_ENV
from harness.util import free_port

SECTION7 = ("dlq.original.topic", "dlq.original.partition", "dlq.original.offset",
            "dlq.original.timestamp", "dlq.consumer.group", "dlq.service",
            "dlq.error.class", "dlq.error.message", "dlq.attempts", "dlq.failed.at")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


# --- helpers ------------------------------------------------------------------

def ofctl_bin() -> str:
    b = bin_dir() / "ofctl"
    if not os.access(b, os.X_OK):
        pytest.skip(f"{b} not built")
    return str(b)


def run_bare(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """ofctl without the services fixture (no Kafka/PostgreSQL needed)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("OF_")}
    e.update(SANITIZER_ENV)
    e.update(env or {})
    r = subprocess.run([ofctl_bin(), *args], env=e, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    assert not sanitizer_findings(r.stderr), r.stderr
    return r


def jlines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def rfc3339(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def dlq_headers(original_topic: str, cls: str = "invalid_json", attempts: int = 1,
                failed_ms: int | None = None, service: str = "inventory",
                group: str = "g", orig_partition: int = 0, orig_offset: int = 0,
                extra: list | None = None) -> list[tuple[str, bytes]]:
    failed_ms = failed_ms if failed_ms is not None else int(time.time() * 1000)
    h = list(extra or [])
    h += [("dlq.original.topic", original_topic.encode()),
          ("dlq.original.partition", str(orig_partition).encode()),
          ("dlq.original.offset", str(orig_offset).encode()),
          ("dlq.original.timestamp", str(failed_ms - 1000).encode()),
          ("dlq.consumer.group", group.encode()),
          ("dlq.service", service.encode()),
          ("dlq.error.class", cls.encode()),
          ("dlq.error.message", f"{cls}: something went wrong".encode()),
          ("dlq.attempts", str(attempts).encode()),
          ("dlq.failed.at", rfc3339(failed_ms).encode())]
    return h


def ce_headers(event_id: str, ce_type: str = "order.fulfilled.v1") -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", event_id.encode()),
            ("ce_type", ce_type.encode()), ("ce_source", b"/inventory"),
            ("ce_time", b"2026-11-22T10:00:01Z"), ("content-type", b"application/json"),
            ("traceparent", TRACEPARENT.encode())]


def put_dlq(kafka, ns, dlq: str, original: str, key: str, value: bytes, partition: int | None = None,
            **kw) -> tuple[int, int]:
    eid = str(uuid.uuid4())
    return kafka.produce(ns.topic(dlq), key, value,
                         headers=dlq_headers(ns.topic(original), extra=ce_headers(eid), **kw),
                         partition=partition)


# --- no network -----------------------------------------------------------------

def test_help_version_and_usage_exit_codes():
    r = run_bare("--version")
    assert r.returncode == 0 and re.fullmatch(r"ofctl \d+\.\d+\.\d+\n", r.stdout), r
    r = run_bare("--help")
    assert r.returncode == 0
    for word in ("topics create", "dlq list", "dlq show", "dlq replay", "dlq purge",
                 "dlq stats", "stock get", "stock set", "pay", "verify", "status",
                 "OF_KAFKA_BROKERS", "OF_NOTIFY_URL",
                 "OF_TOPIC_PREFIX", "OF_WEBHOOK_SECRETS", "OF_ADMIN_TOKEN"):
        assert word in r.stdout, word
    for cmd in (["topics", "create"], ["dlq", "list"], ["dlq", "show"], ["dlq", "replay"],
                ["dlq", "purge"], ["dlq", "stats"], ["stock"], ["pay"], ["verify"],
                ["status"]):
        r = run_bare(*cmd, "--help")
        assert r.returncode == 0, (cmd, r)
        assert "usage: ofctl " + cmd[0] in r.stdout, (cmd, r.stdout)
    for args in ([], ["frobnicate"], ["--nope"], ["dlq"], ["dlq", "list"],
                 ["dlq", "replay", "notify.dlq"], ["dlq", "replay", "x", "--all", "0:1"],
                 ["dlq", "purge", "x"], ["dlq", "show", "x", "zero"], ["stock", "get"],
                 ["pay", "--order", "o1"], ["pay", "--order", "o1", "--item", "A:0"],
                 ["verify", "--frob"], ["status", "--watch", "0"], ["status", "x"]):
        r = run_bare(*args)
        assert r.returncode == 2, (args, r)
        assert r.stderr.startswith("ofctl: ") or "usage" in r.stderr, (args, r.stderr)
    # A bad configuration value names the variable and exits 2.
    r = run_bare("topics", "create", env={"OF_TOPIC_PARTITIONS": "many"})
    assert r.returncode == 2 and "OF_TOPIC_PARTITIONS" in r.stderr, r


def test_unreachable_kafka_fails_with_exit_1():
    env = {"OF_KAFKA_BROKERS": f"127.0.0.1:{free_port()}", "OF_OFCTL_TIMEOUT": "2s"}
    for args in (["topics", "create"], ["dlq", "stats"], ["dlq", "list", "notify.dlq"]):
        r = run_bare(*args, env=env, timeout=60)
        assert r.returncode == 1, (args, r)
        assert "Kafka" in r.stderr or "kafka" in r.stderr, (args, r.stderr)


# --- topics ---------------------------------------------------------------------

def test_topics_create_is_idempotent(kafka, services):
    prefix = f"tc{secrets.token_hex(4)}."
    env = {"OF_TOPIC_PREFIX": prefix, "OF_TOPIC_PARTITIONS": "4",
           "OF_NOTIFY_RETRY_DELAYS": "1s,2s"}
    want = [prefix + n for n in ("payment.success", "order.fulfilled", "order.compensation",
                                 "payment.success.dlq", "notify.retry.1", "notify.retry.2",
                                 "notify.dlq")]
    try:
        r = services.ofctl("topics", "create", env=env)
        assert r.returncode == 0, r
        for t in want:
            assert re.search(rf"^created\s+{re.escape(t)}\s+4$", r.stdout, re.M), r.stdout
        assert "7 created, 0 already existed, 0 failed" in r.stdout
        assert set(want) <= kafka.list_topics()
        assert {kafka.partitions(t) for t in want} == {4}
        assert not any(t.startswith(prefix + "notify.retry.3") for t in kafka.list_topics())

        # Again: nothing to do, still success; partition counts are reported.
        r = services.ofctl("--json", "topics", "create", env=env)
        assert r.returncode == 0, r
        rows = jlines(r.stdout)
        assert [x["topic"] for x in rows] == want
        assert all(x["status"] == "exists" and x["partitions"] == 4 for x in rows), rows

        # A different configured count never changes existing topics.
        r = services.ofctl("topics", "create", env={**env, "OF_TOPIC_PARTITIONS": "2"})
        assert r.returncode == 0, r
        assert "configured 2: left as is" in r.stdout
        assert {kafka.partitions(t) for t in want} == {4}
    finally:
        kafka.delete_topics(want)


# --- dlq list / show -----------------------------------------------------------------

def test_dlq_list_and_show(kafka, ns, services):
    now = int(time.time() * 1000)
    # Produced out of time order across partitions: list sorts newest last.
    p2 = put_dlq(kafka, ns, "payment.success.dlq", "payment.success", "ord_b", b"{not json",
                 partition=2, failed_ms=now - 1000, cls="invalid_json")
    p0 = put_dlq(kafka, ns, "payment.success.dlq", "payment.success", "ord_a",
                 json.dumps({"payment_id": "pay_a", "order_id": "ord_a"},
                            separators=(",", ":")).encode(),
                 partition=0, failed_ms=now - 5000, cls="schema_violation", attempts=3)
    p1 = put_dlq(kafka, ns, "payment.success.dlq", "payment.success", "ord_c",
                 b"\x00\xffbinary", partition=1, failed_ms=now, cls="idempotency_conflict")

    r = services.ofctl("dlq", "list", "payment.success.dlq")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["P:O", "FAILED", "AT", "KEY", "ERROR", "CLASS", "ATTEMPTS", "VALUE"]
    body = lines[1:4]
    assert [ln.split()[0] for ln in body] == [f"{p0[0]}:{p0[1]}", f"{p2[0]}:{p2[1]}",
                                              f"{p1[0]}:{p1[1]}"]
    assert "schema_violation" in body[0] and " 3 " in body[0] and "ord_a" in body[0]
    assert '{"payment_id":"pay_a"' in body[0]
    assert "invalid_json" in body[1] and "{not json" in body[1]
    assert "idempotency_conflict" in body[2] and "..binary" in body[2]
    assert f"3 records in {ns.topic('payment.success.dlq')}" in r.stdout

    # --limit keeps the newest; the topic may be named with its prefix too.
    r = services.ofctl("dlq", "list", ns.topic("payment.success.dlq"), "--limit", "2")
    assert r.returncode == 0, r
    assert [ln.split()[0] for ln in r.stdout.splitlines()[1:3]] == [f"{p2[0]}:{p2[1]}",
                                                                    f"{p1[0]}:{p1[1]}"]
    assert "the 2 newest shown" in r.stdout

    r = services.ofctl("dlq", "list", "payment.success.dlq", "--json")
    rows = jlines(r.stdout)
    assert [(x["partition"], x["offset"]) for x in rows] == [p0, p2, p1]
    assert rows[0]["error_class"] == "schema_violation" and rows[0]["attempts"] == 3
    assert rows[0]["original_topic"] == ns.topic("payment.success")
    assert rows[1]["failed_at"] == rfc3339(now - 1000)

    # show: everything about one record.
    r = services.ofctl("dlq", "show", "payment.success.dlq", f"{p0[0]}:{p0[1]}")
    assert r.returncode == 0, r
    out = r.stdout
    assert "key        ord_a" in out
    for h in SECTION7 + ("ce_id", "traceparent"):
        assert f"  {h}: " in out, h
    assert "dlq.error.class: schema_violation" in out
    assert '(41 bytes, JSON)\n{\n\t"payment_id":\t"pay_a",' in out  # pretty
    assert "missing" not in out

    r = services.ofctl("dlq", "show", "payment.success.dlq", f"{p1[0]}:{p1[1]}", "--json")
    rec = jlines(r.stdout)[0]
    assert rec["value_format"] == "raw" and rec["value_hex"] == "00ff62696e617279"
    assert rec["missing_headers"] == []
    assert {h["name"] for h in rec["headers"]} >= set(SECTION7)

    r = services.ofctl("dlq", "show", "payment.success.dlq", f"{p2[0]}:{p2[1]}")
    assert "(9 bytes, raw)\n{not json" in r.stdout

    # No record there / no such topic: exit 1 with a reason.
    r = services.ofctl("dlq", "show", "payment.success.dlq", "0:999")
    assert r.returncode == 1 and "no record at 0:999" in r.stderr, r
    r = services.ofctl("dlq", "show", "payment.success.dlq", "9:0")
    assert r.returncode == 1 and "no partition 9" in r.stderr, r
    r = services.ofctl("dlq", "list", "no.such.dlq")
    assert r.returncode == 1 and "does not exist" in r.stderr, r


# --- dlq replay -----------------------------------------------------------------------

def test_dlq_replay_explicit_all_and_never_twice(kafka, ns, services):
    dlq = "notify.dlq"
    values = [json.dumps({"event_id": str(uuid.uuid4()), "order_id": f"ord_{i}"}).encode()
              for i in range(3)]
    pos = [kafka.produce(ns.topic(dlq), f"ord_{i}", values[i],
                         headers=dlq_headers(ns.topic("order.fulfilled"), cls="permanent_failure",
                                             service="notify",
                                             extra=ce_headers(f"e{i}") + [("notify.channel", b"email")]))
           for i in range(3)]

    # On a terminal, a progress bar on stderr.
    rc, out = _run_in_pty([ofctl_bin(), "dlq", "replay", dlq, "--all", "--dry-run"],
                          services.env_for(), b"")
    assert rc == 0, out
    assert "checking  [" in out and "3/3 100%" in out, out

    # --dry-run publishes nothing and saves no progress; no bar without a terminal.
    r = services.ofctl("dlq", "replay", dlq, "--all", "--dry-run")
    assert "[" not in r.stderr and "%" not in r.stderr, r.stderr
    assert r.returncode == 0, r
    assert r.stdout.count("would replay ") == 4 and "dry run: would replay 3," in r.stdout
    assert kafka.read_all(ns.topic("order.fulfilled"), timeout=2) == []

    # One record by position.
    p, o = pos[1]
    r = services.ofctl("dlq", "replay", dlq, f"{p}:{o}")
    assert r.returncode == 0, r
    assert "replayed 1, skipped 0, failed 0" in r.stdout
    out = kafka.read_all(ns.topic("order.fulfilled"), timeout=10, min_count=1)
    assert len(out) == 1
    rec = out[0]
    assert rec.key == b"ord_1" and rec.value == values[1]
    names = [k for k, _ in rec.header_list]
    assert names[:8] == [k for k, _ in ce_headers("e1")] + ["notify.channel"]
    assert rec.header("ce_id") == "e1" and rec.header("notify.channel") == "email"
    assert not [n for n in names if n.startswith("dlq.") and n not in ("dlq.replayed.at",
                                                                       "dlq.replay.count")]
    assert rec.header("dlq.replay.count") == "1"
    replayed_at = rec.header("dlq.replayed.at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", replayed_at), replayed_at

    # --all replays everything not replayed by an earlier --all (positions do
    # not count), with JSON lines and a summary.
    r = services.ofctl("dlq", "replay", dlq, "--all", "--json")
    assert r.returncode == 0, r
    rows = jlines(r.stdout)
    assert rows[-1]["summary"] == {"topic": ns.topic(dlq), "dry_run": False, "replayed": 3,
                                   "skipped": 0, "failed": 0}
    assert sorted((x["partition"], x["offset"]) for x in rows[:-1]) == sorted(pos)
    assert all(x["status"] == "replayed" and x["target"] == ns.topic("order.fulfilled")
               for x in rows[:-1])
    assert len(kafka.read_all(ns.topic("order.fulfilled"), timeout=10, min_count=4)) == 4

    # Twice: nothing the second time.
    r = services.ofctl("dlq", "replay", dlq, "--all")
    assert r.returncode == 0, r
    assert "replayed 0, skipped 0, failed 0" in r.stdout
    assert "nothing new to replay" in r.stdout
    time.sleep(1)
    assert len(kafka.read_all(ns.topic("order.fulfilled"), timeout=5)) == 4

    # A new dead letter is picked up by the next --all, alone.
    new = kafka.produce(ns.topic(dlq), "ord_9", b'{"order_id":"ord_9"}',
                        headers=dlq_headers(ns.topic("order.fulfilled"), service="notify",
                                            extra=[("dlq.replay.count", b"2")]))
    r = services.ofctl("dlq", "replay", dlq, "--all", "--json")
    rows = jlines(r.stdout)
    assert [(x["partition"], x["offset"]) for x in rows[:-1]] == [new]
    assert rows[0]["replay_count"] == 3  # counted on from the record's own count
    assert rows[-1]["summary"]["replayed"] == 1
    # The progress lives in ofctl's own group under the prefix.
    committed = kafka.committed(ns.group("ofctl.replay"), ns.topic(dlq))
    assert committed[new[0]] == new[1] + 1


def test_dlq_replay_skips_what_cannot_be_replayed(kafka, ns, services):
    dlq = "payment.success.dlq"
    # No dlq.original.topic, and an original topic that does not exist.
    a = kafka.produce(ns.topic(dlq), "k1", b"v1", headers=[("ce_id", b"x")])
    b = kafka.produce(ns.topic(dlq), "k2", b"v2",
                      headers=dlq_headers(ns.topic("gone.topic")))
    c = kafka.produce(ns.topic(dlq), "k3", b"v3", headers=dlq_headers(ns.topic("payment.success")))
    r = services.ofctl("dlq", "replay", dlq, "--all")
    assert r.returncode == 1, r
    assert f"skipped {a[0]}:{a[1]}: no dlq.original.topic header" in r.stdout
    assert f"skipped {b[0]}:{b[1]} -> {ns.topic('gone.topic')}: the original topic does not exist" in r.stdout
    assert "replayed 1, skipped 2, failed 0" in r.stdout
    assert ns.topic("gone.topic") not in kafka.list_topics()  # never auto-created
    recs = kafka.read_all(ns.topic("payment.success"), timeout=10, min_count=1)
    assert [x.value for x in recs] == [b"v3"]
    # The unreplayable ones are not offered again.
    r = services.ofctl("dlq", "replay", dlq, "--all")
    assert r.returncode == 0 and "replayed 0, skipped 0, failed 0" in r.stdout, r
    # Positions that hold nothing fail (exit 1), the others go on.
    r = services.ofctl("dlq", "replay", dlq, f"{c[0]}:{c[1]}", f"{c[0]}:{c[1] + 50}")
    assert r.returncode == 1, r
    assert f"failed {c[0]}:{c[1] + 50}" in r.stdout
    assert "replayed 1, skipped 0, failed 1" in r.stdout


# --- dlq purge / stats ----------------------------------------------------------------

def _run_in_pty(argv: list[str], env: dict, answer: bytes, timeout: float = 60) -> tuple[int, str]:
    """Runs argv with a terminal on stdin/stdout/stderr, answers the prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    out = b""
    answered = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rl, _, _ = select.select([master], [], [], 0.2)
        if rl:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not answered and b"[y/N]" in out:
            os.write(master, answer)
            answered = True
        if proc.poll() is not None and not rl:
            break
    rc = proc.wait(timeout=10)
    os.close(master)
    return rc, out.decode(errors="replace")


def test_dlq_purge_and_stats(kafka, ns, services):
    dlq = "notify.dlq"
    now = int(time.time() * 1000)
    for i in range(5):
        kafka.produce(ns.topic(dlq), f"o{i}", b"x", partition=0,
                      headers=dlq_headers(ns.topic("order.fulfilled"), cls="retries_exhausted",
                                          failed_ms=now - 10_000 + i))
    for i in range(2):
        kafka.produce(ns.topic(dlq), f"p{i}", b"y", partition=1,
                      headers=dlq_headers(ns.topic("order.fulfilled"), cls="permanent_failure",
                                          failed_ms=now + i))
    kafka.produce(ns.topic("payment.success.dlq"), "z", b"z",
                  headers=dlq_headers(ns.topic("payment.success"), cls="invalid_json",
                                      failed_ms=now - 60_000))

    r = services.ofctl("dlq", "stats")
    assert r.returncode == 0, r
    assert re.search(rf"{re.escape(ns.topic(dlq))}\n  records  7\n  oldest   {re.escape(rfc3339(now - 10_000))}\n"
                     rf"  newest   {re.escape(rfc3339(now + 1))}\n  retries_exhausted\s+5\n"
                     rf"  permanent_failure\s+2\n", r.stdout), r.stdout
    r = services.ofctl("dlq", "stats", "--json")
    stats = {x["topic"]: x for x in jlines(r.stdout)}
    assert stats[ns.topic("payment.success.dlq")]["records"] == 1
    assert stats[ns.topic("payment.success.dlq")]["by_error_class"] == {"invalid_json": 1}
    assert stats[ns.topic(dlq)]["by_error_class"] == {"retries_exhausted": 5,
                                                      "permanent_failure": 2}
    assert stats[ns.topic(dlq)]["missing_headers"] == 0

    # --limit smaller than half the records: only the newest are kept.
    r = services.ofctl("dlq", "list", dlq, "--limit", "2")
    assert [ln.split()[0] for ln in r.stdout.splitlines()[1:3]] == ["1:0", "1:1"], r.stdout
    assert f"7 records in {ns.topic(dlq)}, the 2 newest shown" in r.stdout
    r = services.ofctl("dlq", "list", dlq, "--limit", "0", "--json")
    assert len(jlines(r.stdout)) == 7

    # On a terminal, purge asks; "n" deletes nothing and fails.
    env = services.env_for()
    rc, out = _run_in_pty([ofctl_bin(), "dlq", "purge", dlq, "--before", "0:3"], env, b"n\n")
    assert rc == 1, out
    assert "Delete 3 records from" in out and "nothing deleted" in out
    assert len(kafka.read_all(ns.topic(dlq), timeout=5)) == 7
    rc, out = _run_in_pty([ofctl_bin(), "dlq", "purge", dlq, "--before", "0:3"], env, b"y\n")
    assert rc == 0, out
    assert "partition 0: deleted 3 records (offsets 0..2), low watermark now 3" in out
    left = kafka.read_all(ns.topic(dlq), timeout=5)
    assert sorted((x.partition, x.offset) for x in left) == [(0, 3), (0, 4), (1, 0), (1, 1)]

    # --yes (and no terminal): no question asked.
    r = services.ofctl("--json", "dlq", "purge", dlq, "--all", "--yes")
    assert r.returncode == 0, r
    rows = jlines(r.stdout)
    assert rows[-1] == {"summary": {"topic": ns.topic(dlq), "deleted": 4}}
    assert {(x["partition"], x["deleted"], x["low_watermark"]) for x in rows[:-1]} == \
        {(0, 2, 5), (1, 2, 2)}
    assert kafka.read_all(ns.topic(dlq), timeout=5) == []
    r = services.ofctl("dlq", "purge", dlq, "--all", "--yes")
    assert r.returncode == 0 and "nothing to purge" in r.stdout, r

    r = services.ofctl("--json", "dlq", "stats")
    stats = {x["topic"]: x for x in jlines(r.stdout)}
    assert stats[ns.topic(dlq)]["records"] == 0 and stats[ns.topic(dlq)]["oldest"] is None
    # Replay after a purge starts at the new low watermark.
    r = services.ofctl("dlq", "replay", dlq, "--all")
    assert r.returncode == 0 and "replayed 0" in r.stdout, r


def test_dlq_purge_refuses_a_topic_that_is_not_a_dlq(kafka, ns, services):
    """Issue 15, defect 9: `dlq purge payment.success --before 0:1 --yes`
    deleted an accepted payment. Only the DLQ topics unless --force."""
    for i in range(3):
        kafka.produce(ns.topic("payment.success"), f"ord_{i}", b'{"payment_id":"p"}', partition=0)
    for args in (["payment.success", "--before", "0:1", "--yes"],
                 [ns.topic("payment.success"), "--all", "--yes"],
                 ["notify.retry.1", "--all", "--yes"]):
        r = services.ofctl("dlq", "purge", *args)
        assert r.returncode == 2, (args, r)
        topic = args[0] if args[0].startswith(str(ns)) else ns.topic(args[0])
        assert f"{topic} is not a dead-letter topic" in r.stderr and "--force" in r.stderr, r.stderr
        assert r.stdout == "", r.stdout
    assert len(kafka.read_all(ns.topic("payment.success"), timeout=5)) == 3

    # --force: the operator insists.
    r = services.ofctl("dlq", "purge", "payment.success", "--before", "0:1", "--yes", "--force")
    assert r.returncode == 0, r
    assert "partition 0: deleted 1 record (offsets 0..0), low watermark now 1" in r.stdout
    left = kafka.read_all(ns.topic("payment.success"), timeout=5)
    assert sorted(x.offset for x in left) == [1, 2]


# --- stock / pay (services) ------------------------------------------------------------

def test_stock_get_and_set(services):
    inv = services.start("inventory")
    r = services.ofctl("stock", "get", "SKU-OFCTL")
    assert r.returncode == 1 and "unknown sku SKU-OFCTL" in r.stderr, r
    r = services.ofctl("stock", "set", "SKU-OFCTL", "12")
    assert r.returncode == 0, r
    assert re.search(r"available\s+12\nreserved\s+0\nversion\s+1\n", r.stdout), r.stdout
    r = services.ofctl("stock", "get", "SKU-OFCTL", "--json")
    assert r.returncode == 0, r
    row = jlines(r.stdout)[0]
    assert row == {"sku": "SKU-OFCTL", "available": 12, "reserved": 0, "version": 1}
    assert inv.get("/v1/stock/SKU-OFCTL").json()["available"] == 12
    # A sku with ':' in it, and the admin token checked by the service.
    r = services.ofctl("stock", "set", "ns:sku.1", "0")
    assert r.returncode == 0, r
    assert inv.get("/v1/stock/ns:sku.1").json()["available"] == 0
    r = services.ofctl("stock", "set", "SKU-OFCTL", "5", env={"OF_ADMIN_TOKEN": "wrong"})
    assert r.returncode == 1 and "401" in r.stderr, r
    assert inv.get("/v1/stock/SKU-OFCTL").json()["available"] == 12
    r = services.ofctl("stock", "get", "SKU-OFCTL", env={"OF_INVENTORY_URL": f"http://127.0.0.1:{free_port()}"})
    assert r.returncode == 1, r


def test_pay_signs_posts_and_waits(kafka, ns, services):
    services.start("payment-gw")
    services.start("inventory")
    services.ofctl("stock", "set", "SKU-PAY", "3", check=True)

    r = services.ofctl("pay", "--order", "ord_pay_1", "--item", "SKU-PAY:2",
                       "--email", "ana@example.com", "--wait=30")
    assert r.returncode == 0, r
    assert "payment: HTTP 202" in r.stdout and '"status":\t"accepted"' in r.stdout
    assert "order: HTTP 200" in r.stdout and '"status":\t"fulfilled"' in r.stdout
    m = re.search(r"payment (pay_[0-9a-f-]{36}) for order ord_pay_1", r.stdout)
    assert m, r.stdout
    rec = kafka.read_all(ns.topic("payment.success"), timeout=10, min_count=1)[0]
    v = rec.json()
    assert v["payment_id"] == m.group(1) and v["order_id"] == "ord_pay_1"
    assert v["amount_cents"] == 2000 and v["currency"] == "EUR"
    assert v["items"] == [{"sku": "SKU-PAY", "qty": 2}]
    assert v["customer"] == {"id": "cus_ofctl", "email": "ana@example.com"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v["occurred_at"])

    # Every option, --json: the gateway's answer, then the order's outcome
    # (insufficient stock: 1 left).
    r = services.ofctl("--json", "pay", "--order", "ord_pay_2", "--item", "SKU-PAY:2",
                       "--payment", "pay_fixed_2", "--amount", "4599", "--currency", "USD",
                       "--customer", "cus_9", "--phone", "+4915112345678",
                       "--webhook", "https://merchant.example/h", "--wait=30")
    assert r.returncode == 0, r
    ans, order = jlines(r.stdout)
    assert ans["http_status"] == 202 and ans["payment_id"] == "pay_fixed_2"
    assert ans["response"]["payment_id"] == "pay_fixed_2"
    assert order["response"]["status"] == "compensated"
    assert order["response"]["reason"] == "insufficient_stock"
    # Same payment again: same event id (idempotent at the gateway).
    r2 = services.ofctl("--json", "pay", "--order", "ord_pay_2", "--item", "SKU-PAY:2",
                        "--payment", "pay_fixed_2", "--amount", "4599", "--currency", "USD",
                        "--customer", "cus_9", "--phone", "+4915112345678",
                        "--webhook", "https://merchant.example/h")
    assert jlines(r2.stdout)[0]["response"]["event_id"] == ans["response"]["event_id"]

    # A wrong secret: the gateway's 401 is printed, exit 1.
    r = services.ofctl("pay", "--order", "ord_pay_3", "--item", "SKU-PAY:1",
                       env={"OF_WEBHOOK_SECRETS": "not-the-secret"})
    assert r.returncode == 1, r
    assert "payment: HTTP 401" in r.stdout and "did not accept" in r.stderr
    # The second configured secret is not the one that signs.
    r = services.ofctl("pay", "--order", "ord_pay_4", "--item", "SKU-PAY:1",
                       env={"OF_WEBHOOK_SECRETS": "test-secret,other"})
    assert r.returncode == 0, r

    # --wait gives up (exit 1) when no outcome comes in time.
    inv = services.get("inventory")
    inv.stop()
    r = services.ofctl("pay", "--order", "ord_pay_5", "--item", "SKU-PAY:1", "--wait=2")
    assert r.returncode == 1, r
    assert "payment: HTTP 202" in r.stdout and "no outcome for order ord_pay_5 within 2 s" in r.stderr


# --- verify ----------------------------------------------------------------------------

def _verify(services, *extra):
    r = services.ofctl("--json", "verify", *extra, timeout=120)
    rows = jlines(r.stdout)
    return r, {x["check"]: x for x in rows if "check" in x}


def test_verify_passes_then_catches_injected_violations(kafka, ns, db, services):
    services.start("payment-gw")
    services.start("inventory")
    services.ofctl("stock", "set", "SKU-V1", "5", check=True)
    services.ofctl("stock", "set", "SKU-V2", "1", check=True)
    services.ofctl("pay", "--order", "ord_v1", "--item", "SKU-V1:2", "--item", "SKU-V2:1",
                   "--wait=30", check=True)
    services.ofctl("pay", "--order", "ord_v2", "--item", "SKU-V2:1", "--wait=30", check=True)  # short
    services.ofctl("pay", "--order", "ord_v1", "--item", "SKU-V1:1", "--wait=30", check=True)  # dup payment
    services.ofctl("pay", "--order", "ord_v3", "--item", "SKU-NOPE:1", "--wait=30", check=True)
    # The duplicate's refund is published asynchronously: wait for the outbox to drain.
    wait_until(lambda: db.query("SELECT count(*) FROM outbox")[0][0] == 0, timeout=30)
    kafka.produce(ns.topic("payment.success.dlq"), "k", b"{}",
                  headers=dlq_headers(ns.topic("payment.success")))

    r, checks = _verify(services)
    assert r.returncode == 0, r
    assert set(checks) == {"stock_conserved", "no_negative_stock", "one_outcome",
                           "outcomes_published", "dlq_headers"}
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["stock_conserved"]["checked"] == 2
    assert checks["one_outcome"]["checked"] == 3
    assert "3 orders: 3 with one outcome" in checks["one_outcome"]["figure"]
    assert checks["outcomes_published"]["checked"] == 4  # 4 processed payments
    assert checks["dlq_headers"]["checked"] == 1
    r = services.ofctl("verify")
    assert r.returncode == 0 and "all invariants hold: 0 of 5 checks failed" in r.stdout, r
    assert re.search(r"^ok\s+stock conserved per sku\s+2 skus, 0 not conserved$", r.stdout, re.M)

    # 1. stock changed behind the ledger's back.
    db.query("UPDATE stock SET available = available + 5 WHERE sku = 'SKU-V1'")
    r, checks = _verify(services)
    assert r.returncode == 1, r
    assert not checks["stock_conserved"]["ok"] and checks["stock_conserved"]["violations"] == 1
    assert "sku SKU-V1: available 8 reserved 2" in checks["stock_conserved"]["details"][0]
    assert checks["no_negative_stock"]["ok"] and checks["one_outcome"]["ok"]
    r = services.ofctl("verify")
    assert r.returncode == 1
    assert re.search(r"^FAIL\s+stock conserved per sku\s+2 skus, 1 not conserved$", r.stdout, re.M)
    assert "VIOLATIONS: 1 of 5 checks failed" in r.stdout
    db.query("UPDATE stock SET available = available - 5 WHERE sku = 'SKU-V1'")

    # 2. negative stock (the CHECK constraint removed first).
    db.query("ALTER TABLE stock DROP CONSTRAINT stock_available_check")
    db.query("UPDATE stock SET available = -1 WHERE sku = 'SKU-V2'")
    r, checks = _verify(services)
    assert r.returncode == 1
    assert not checks["no_negative_stock"]["ok"]
    assert checks["no_negative_stock"]["details"] == ["sku SKU-V2: available -1 reserved 1"]
    db.query("UPDATE stock SET available = 0 WHERE sku = 'SKU-V2'")

    # 3. a second outcome for an order that already has one.
    kafka.produce(ns.topic("order.compensation"), "ord_v1",
                  json.dumps({"event_id": str(uuid.uuid4()), "order_id": "ord_v1",
                              "reason": "insufficient_stock"}).encode(),
                  headers=ce_headers(str(uuid.uuid4()), "order.compensation.v1"))
    r, checks = _verify(services)
    assert r.returncode == 1
    assert not checks["one_outcome"]["ok"] and checks["one_outcome"]["violations"] == 1
    assert "order ord_v1: several outcomes" in checks["one_outcome"]["details"][0]

    # 4. a processed payment whose outcome was never published, and a stuck
    # outbox row.
    lost = str(uuid.uuid4())
    db.query("INSERT INTO payment_inbox (payment_id, event_id, order_id, content_sha256, result,"
             " reason, outcome_event_id, processed_at) VALUES ('pay_lost', %s, 'ord_v1',"
             " decode(repeat('00', 32), 'hex'), 'compensated', 'duplicate_payment', %s,"
             " now() - interval '1 hour')", (str(uuid.uuid4()), lost))
    # The inventory's relay would publish a fresh outbox row: stop it first.
    services.get("inventory").stop()
    db.query("INSERT INTO outbox (order_id, topic, ce_id, ce_type, ce_time, payment_id,"
             " payment_event_id, items, amount_cents, currency, customer, created_at)"
             " VALUES ('ord_x', 'x', %s, 'order.fulfilled.v1', 'now', 'pay_x', %s, '[]', 1,"
             " 'EUR', '{}', now() - interval '10 minutes')",
             (str(uuid.uuid4()), str(uuid.uuid4())))
    r, checks = _verify(services)
    pub = checks["outcomes_published"]
    assert not pub["ok"] and pub["violations"] == 2, pub
    assert any(f"payment pay_lost (order ord_v1): outcome {lost}" in d for d in pub["details"])
    assert any("1 outbox rows older than 30 s" in d for d in pub["details"])
    # A generous grace period: both are "in flight", not violations.
    r, checks = _verify(services, "--grace", "2h")
    assert checks["outcomes_published"]["ok"], checks["outcomes_published"]

    # 5. a DLQ record without the section 7 headers.
    p = kafka.produce(ns.topic("notify.dlq"), "k", b"v", headers=[("dlq.error.class", b"x")])
    r, checks = _verify(services)
    d = checks["dlq_headers"]
    assert not d["ok"] and d["violations"] == 1 and d["checked"] == 2
    assert d["details"][0].startswith(f"{ns.topic('notify.dlq')} {p[0]}:{p[1]} lacks dlq.original.topic")


def test_verify_reports_unreachable_postgres(kafka, ns, services):
    r = services.ofctl("verify", env={"OF_PG_DSN": f"host=127.0.0.1 port={free_port()} dbname=x",
                                      "OF_OFCTL_TIMEOUT": "5s"})
    assert r.returncode == 1, r
    assert r.stdout.count("could not check") == 4
    assert re.search(r"^ok\s+every DLQ record carries the section 7 headers", r.stdout, re.M)


# --- the replay that makes a dead-lettered notification succeed --------------------------

def test_replay_makes_dead_lettered_notification_succeed(kafka, ns, sink, services):
    if not os.access(bin_dir() / "notify", os.X_OK):
        pytest.skip(f"notify binary not built in {bin_dir()}")
    svc = services.start("notify", env={"OF_NOTIFY_WEBHOOK_URL": ""})
    sink.respond("/email", [400])  # the provider rejects it once, then accepts
    order_id = f"ord_{uuid.uuid4().hex[:10]}"
    event_id = str(uuid.uuid4())
    value = {"event_id": event_id, "order_id": order_id, "payment_id": f"pay_{order_id}",
             "payment_event_id": str(uuid.uuid4()),
             "customer": {"id": "cus_77", "email": "ana@example.com"},
             "items": [{"sku": "SKU-RED-MUG", "qty": 1, "stock_version": 2}],
             "fulfilled_at": "2026-11-22T10:00:01Z"}
    body = json.dumps(value, separators=(",", ":")).encode()
    kafka.produce(ns.topic("order.fulfilled"), order_id, body, headers=ce_headers(event_id))
    dlq = kafka.read_all(ns.topic("notify.dlq"), timeout=30, min_count=1)
    assert len(dlq) == 1 and dlq[0].header("dlq.error.class") == "permanent_failure"
    sink.wait_for(1, path="/email")

    def delivery_status():
        r = svc.get("/v1/deliveries", params={"order_id": order_id})
        return r.json() if r.status_code == 200 else None

    r = services.ofctl("dlq", "list", "notify.dlq")
    assert "permanent_failure" in r.stdout and order_id[:20] in r.stdout

    # The provider accepts now: replay --all makes the notification succeed.
    r = services.ofctl("dlq", "replay", "notify.dlq", "--all")
    assert r.returncode == 0, r
    assert "replayed 1, skipped 0, failed 0" in r.stdout
    reqs = sink.wait_for(2, path="/email", timeout=30)
    assert [x.status for x in reqs] == [400, 200]
    assert reqs[1].json["order_id"] == order_id and reqs[1].json["event_id"] == event_id
    wait_until(lambda: (delivery_status() or {}) and
               "delivered" in json.dumps(delivery_status()), timeout=30)

    # Replayed twice: the second --all replays nothing, nothing is sent again.
    r = services.ofctl("dlq", "replay", "notify.dlq", "--all")
    assert r.returncode == 0 and "replayed 0, skipped 0, failed 0" in r.stdout, r
    time.sleep(3)
    assert len(sink.requests("/email")) == 2
    assert len(kafka.read_all(ns.topic("notify.dlq"), timeout=5)) == 1


# --- status ------------------------------------------------------------------------------


def _status(services, *extra, env=None):
    r = services.ofctl("status", "--json", *extra, env=env)
    assert r.returncode in (0, 1), r
    return r.returncode, json.loads(r.stdout)


def _lag(st, group, topic):
    return next(x for x in st["lag"] if x["group"] == group and x["topic"] == topic)


@pytest.mark.notify_retries(2)
def test_status_on_a_live_stack(kafka, ns, sink, services):
    """A webhook that fails twice leaves its delivery waiting in
    notify.retry.2 (a 10 min delay), a rejected e-mail and a record that is
    not JSON are dead-lettered: `ofctl status` shows every service ready,
    the retry tier's lag (its partition never committed), the DLQ depths
    and classes, the outbox, the breakers; an unreachable notify is shown as
    such with the rest; --watch prints snapshots until Ctrl-C (exit 0)."""
    delays = "1s,10m"
    services.start("payment-gw")
    services.start("inventory")
    ntf = services.start("notify", env={"OF_NOTIFY_RETRY_DELAYS": delays})
    env = {"OF_NOTIFY_URL": ntf.url, "OF_NOTIFY_RETRY_DELAYS": delays}
    sink.respond("/email", [400])
    sink.respond("/webhook", [500, 500, 500])
    order = f"ord_{uuid.uuid4().hex[:10]}"
    r = services.ofctl("pay", "--order", order, "--item", "SKU-STATUS:1",
                       "--email", "ana@example.com", env=env)
    assert r.returncode == 0, r
    kafka.produce(ns.topic("payment.success"), "bad", b"not json")
    kafka.read_all(ns.topic("notify.retry.2"), timeout=30, min_count=1)
    kafka.read_all(ns.topic("notify.dlq"), timeout=30, min_count=1)
    kafka.read_all(ns.topic("payment.success.dlq"), timeout=30, min_count=1)

    def settled():
        rc, st = _status(services, env=env)
        lags = {x["topic"]: x["lag"] for x in st["lag"]}
        want = {ns.topic("payment.success"): 0, ns.topic("order.fulfilled"): 0,
                ns.topic("order.compensation"): 0, ns.topic("notify.retry.1"): 0,
                ns.topic("notify.retry.2"): 1}
        return (rc, st) if lags == want and st["outbox"]["backlog"] == 0 else None

    rc, st = wait_until(settled, timeout=60, message="lag and outbox settle")
    assert rc == 0 and st["ready"] is True and st["not_ready"] is None, st
    assert st["prefix"] == str(ns)
    assert [(x["service"], x["ready"], x["status"]) for x in st["services"]] == [
        ("payment-gw", True, 200), ("inventory", True, 200), ("notify", True, 200)]
    assert st["kafka"] == {"reachable": True}
    # The waiting retry: one record on a partition notify never committed.
    held = _lag(st, ns.group("notify"), ns.topic("notify.retry.2"))
    waiting = [p for p in held["partitions"] if p["lag"]]
    assert len(waiting) == 1 and waiting[0]["committed"] is None, held
    assert waiting[0]["high"] - waiting[0]["low"] == 1
    assert _lag(st, ns.group("inventory"), ns.topic("payment.success"))["lag"] == 0
    dlq = {x["topic"]: x for x in st["dlq"]}
    assert dlq[ns.topic("notify.dlq")]["records"] == 1
    assert [(c["class"], c["count"]) for c in dlq[ns.topic("notify.dlq")]["newest_classes"]] == \
        [("permanent_failure", 1)]
    assert dlq[ns.topic("payment.success.dlq")]["records"] == 1
    assert [c["class"] for c in dlq[ns.topic("payment.success.dlq")]["newest_classes"]] == \
        ["invalid_json"]
    assert st["outbox"]["source"] == "postgresql"
    assert st["breakers"]["source"] in ("orderflow_notify_breakers_open",
                                        "orderflow_notify_breaker_state")
    assert isinstance(st["breakers"]["total_open"], int)

    # The same screen as text.
    r = services.ofctl("status", env=env)
    assert r.returncode == 0, r
    assert re.search(rf"^notify\s+{re.escape(ntf.url)}\s+yes$", r.stdout, re.M), r.stdout
    assert re.search(rf"^{re.escape(ns.group('notify'))}\s+{re.escape(ns.topic('notify.retry.2'))}"
                     rf"\s+1\s+3 \(1 never committed\)$", r.stdout, re.M), r.stdout
    assert re.search(rf"^{re.escape(ns.topic('notify.dlq'))}\s+1\s+permanent_failure x1 \(last ",
                     r.stdout, re.M), r.stdout
    assert "outbox    0 rows waiting  (postgresql)" in r.stdout
    assert r.stdout.rstrip().endswith("all ready")

    # notify unreachable: shown as such, the rest still there, exit 1.
    gone = f"http://127.0.0.1:{free_port()}"
    rc, st = _status(services, env={**env, "OF_NOTIFY_URL": f"{ntf.url},{gone}"})
    assert rc == 1 and st["ready"] is False, st
    assert [(x["url"], x["ready"], x["status"]) for x in st["services"][2:]] == [
        (ntf.url, True, 200), (gone, False, None)]
    assert f"notify at {gone} unreachable" in st["not_ready"]
    assert _lag(st, ns.group("notify"), ns.topic("notify.retry.2"))["lag"] == 1
    assert dlq[ns.topic("notify.dlq")]["records"] == 1

    # --watch: one JSON object per snapshot until SIGINT, then exit 0.
    p = subprocess.Popen([ofctl_bin(), "status", "--watch", "1", "--json"],
                         env=services.env_for(env), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        snaps = [json.loads(p.stdout.readline()) for _ in range(2)]
        assert all(x["ready"] for x in snaps) and snaps[0]["time"] < snaps[1]["time"], snaps
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert not sanitizer_findings(err), err
