"""payment-gw against a real Kafka broker (CONTRACT.md sections 2, 4, 8).

Every rule of section 2 with a failing and a passing case, the signature
vectors, body limits (plain and chunked), the record read back from Kafka
with its key and every header, idempotent event ids, broker outage and
recovery, concurrency, operability endpoints, limits and graceful shutdown.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import socket
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests

from harness import payment, post_payment, sign, wait_until
from harness.config import WEBHOOK_SECRET
from harness.services import Services
from harness.sign import encode, signed_headers

# of_uuid.c: OF_UUID_NS_PAYMENT
NS_PAYMENT = uuid.UUID("743b2e14-4ae8-4d33-af31-19c2d802bb57")
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
LIMIT = 64 * 1024


# --- fixtures ----------------------------------------------------------------


@pytest.fixture
def gw_services(request, kafka, ns, tmp_path):
    """Like conftest's `services` but without PostgreSQL (payment-gw does not
    use it): OF_KAFKA_BROKERS, OF_TOPIC_PREFIX, OF_WEBHOOK_SECRETS=test-secret,
    OF_LOG_LEVEL=debug. Teardown fails the test on a non-zero exit after
    SIGTERM or a sanitizer report."""
    env = {
        "OF_KAFKA_BROKERS": kafka.bootstrap,
        "OF_TOPIC_PREFIX": str(ns),
        "OF_TOPIC_PARTITIONS": "3",
        "OF_LOG_LEVEL": "debug",
        "OF_WEBHOOK_SECRETS": WEBHOOK_SECRET,
    }
    factory = Services(env, tmp_path / "services")
    request.node._of_services = factory
    yield factory
    problems = factory.teardown()
    if problems:
        logs = "\n".join(f"--- {t} ---\n{x}" for t, x in factory.log_sections(200))
        pytest.fail("service teardown found problems:\n  " + "\n  ".join(problems) + "\n" + logs,
                    pytrace=False)


@pytest.fixture
def gw(gw_services):
    return gw_services.start("payment-gw")


def topic(ns) -> str:
    return ns.topic("payment.success")


def event_id_for(payment_id: str) -> str:
    return str(uuid.uuid5(NS_PAYMENT, payment_id))


def post_raw(gw, body: bytes, headers: dict, timeout: float = 30) -> requests.Response:
    return requests.post(gw.url + "/v1/payments", data=body, headers=headers, timeout=timeout)


def records_by_event(kafka, ns, n: int, timeout: float = 20):
    recs = kafka.read_all(topic(ns), timeout=timeout, min_count=n)
    return {r.header("ce_id"): r for r in recs}, recs


def assert_problem(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
    doc = r.json()
    assert doc["status"] == status
    for k in ("type", "title", "detail"):
        assert isinstance(doc.get(k), str) and doc[k], doc
    return doc


def error_fields(r: requests.Response) -> dict[str, str]:
    doc = assert_problem(r, 400)
    assert isinstance(doc.get("errors"), list) and doc["errors"], doc
    return {e["field"]: e["message"] for e in doc["errors"]}


# --- the happy path and the record -------------------------------------------


def test_accepted_record_has_key_headers_and_value(gw, kafka, ns):
    p = payment(phone="+4915112345678", webhook_url="https://merchant.example/hooks/orders",
                occurred_at="2026-11-22T10:00:00Z", unknown_field={"x": 1})
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = post_payment(gw.url, p, headers={"traceparent": incoming})
    assert r.status_code == 202, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body == {"event_id": event_id_for(p["payment_id"]), "payment_id": p["payment_id"],
                    "order_id": p["order_id"], "status": "accepted"}

    # traceparent echoed: the gateway's span, child of the caller's.
    m = TRACEPARENT_RE.match(r.headers["traceparent"])
    assert m, r.headers["traceparent"]
    assert m.group(1) == "0af7651916cd43dd8448eb211c80319c"
    assert m.group(2) != "b7ad6b7169203331"

    byid, recs = records_by_event(kafka, ns, 1)
    assert len(recs) == 1
    rec = byid[body["event_id"]]
    assert rec.key == p["order_id"].encode()
    assert rec.header("ce_specversion") == "1.0"
    assert rec.header("ce_id") == body["event_id"]
    assert rec.header("ce_type") == "payment.success.v1"
    assert rec.header("ce_source") == "/payment-gw"
    assert RFC3339_RE.match(rec.header("ce_time")), rec.header("ce_time")
    assert rec.header("content-type") == "application/json"
    assert rec.header("traceparent") == r.headers["traceparent"]

    v = rec.json()
    assert v["event_id"] == body["event_id"]
    for k in ("payment_id", "order_id", "amount_cents", "currency", "items", "occurred_at"):
        assert v[k] == p[k], k
    assert v["customer"] == p["customer"]
    assert RFC3339_RE.match(v["received_at"]), v["received_at"]
    assert "unknown_field" not in v


def test_traceparent_started_when_absent_or_invalid(gw, kafka, ns):
    r1 = post_payment(gw.url, payment())
    assert r1.status_code == 202
    assert TRACEPARENT_RE.match(r1.headers["traceparent"])
    bad = "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"  # upper case: invalid
    r2 = post_payment(gw.url, payment(), headers={"traceparent": bad})
    assert r2.status_code == 202
    m2 = TRACEPARENT_RE.match(r2.headers["traceparent"])
    assert m2 and m2.group(1) != "0af7651916cd43dd8448eb211c80319c"
    assert m2.group(1) != TRACEPARENT_RE.match(r1.headers["traceparent"]).group(1)
    byid, _ = records_by_event(kafka, ns, 2)
    assert byid[r1.json()["event_id"]].header("traceparent") == r1.headers["traceparent"]
    assert byid[r2.json()["event_id"]].header("traceparent") == r2.headers["traceparent"]
    # Rejections carry the traceparent too.
    r3 = post_raw(gw, b"{}", {"Content-Type": "text/plain"})
    assert r3.status_code == 415 and TRACEPARENT_RE.match(r3.headers["traceparent"])


def _post_with_header_lines(gw, body: bytes, lines: list[tuple[str, str]]) -> tuple[int, dict]:
    """POST with repeated header fields (requests folds them into one)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.putrequest("POST", "/v1/payments")
        for k, v in list(signed_headers(body, WEBHOOK_SECRET).items()) + lines:
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def test_tracestate_travels_with_traceparent(gw, kafka, ns):
    """Issue 15 defect 5 (gateway): the caller's tracestate goes onto the
    payment.success record (and the answer) with the gateway's traceparent,
    by the W3C rules: only with a valid traceparent, several fields joined
    in order, optional whitespace dropped, an invalid list dropped whole,
    long lists cut to 512 characters."""
    tid = "0af7651916cd43dd8448eb211c80319c"
    incoming = f"00-{tid}-b7ad6b7169203331-01"
    cases = {
        "plain": ({"traceparent": incoming, "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
                  "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        "whitespace": ({"traceparent": incoming, "tracestate": "foo=1 \t , \t bar=2,,"},
                       "foo=1,bar=2"),
        "no traceparent": ({"tracestate": "rojo=1"}, None),
        "bad traceparent": ({"traceparent": incoming.upper(), "tracestate": "rojo=1"}, None),
        "duplicate key": ({"traceparent": incoming, "tracestate": "foo=1,foo=2"}, None),
        "bad key": ({"traceparent": incoming, "tracestate": "FOO=1"}, None),
        "33 members": ({"traceparent": incoming,
                        "tracestate": ",".join(f"k{i}=v" for i in range(33))}, None),
    }
    sent = {}
    for name, (headers, want) in cases.items():
        p = payment()
        r = post_payment(gw.url, p, headers=headers)
        assert r.status_code == 202, (name, r.text)
        assert r.headers.get("tracestate") == want, (name, r.headers)
        sent[r.json()["event_id"]] = (name, want, r.headers["traceparent"])
    # Several tracestate fields are one list, in order; two traceparent
    # fields are no valid parent (a new trace, no tracestate).
    body = encode(payment())
    status, h = _post_with_header_lines(gw, body, [("traceparent", incoming), ("tracestate", "foo=1,bar=2"),
                                                   ("tracestate", "rojo=1"), ("tracestate", "baz=3")])
    assert status == 202 and h.get("tracestate") == "foo=1,bar=2,rojo=1,baz=3", h
    sent[event_id_for(json.loads(body)["payment_id"])] = ("joined", "foo=1,bar=2,rojo=1,baz=3", h["traceparent"])
    body = encode(payment())
    status, h = _post_with_header_lines(gw, body, [("traceparent", incoming), ("traceparent", incoming),
                                                   ("tracestate", "rojo=1")])
    assert status == 202 and "tracestate" not in h and tid not in h["traceparent"], h
    sent[event_id_for(json.loads(body)["payment_id"])] = ("two traceparents", None, h["traceparent"])

    byid, _ = records_by_event(kafka, ns, len(sent))
    for eid, (name, want, tp) in sent.items():
        rec = byid[eid]
        assert rec.header("traceparent") == tp, name
        assert rec.header("tracestate") == want, (name, rec.headers)
        if want is not None:
            assert TRACEPARENT_RE.match(tp).group(1) == tid, name


def test_same_payment_twice_gives_one_event_id(gw, kafka, ns):
    p = payment()
    r1 = post_payment(gw.url, p)
    r2 = post_payment(gw.url, p)
    assert r1.status_code == r2.status_code == 202
    assert r1.json()["event_id"] == r2.json()["event_id"] == event_id_for(p["payment_id"])
    _, recs = records_by_event(kafka, ns, 2)
    assert {r.header("ce_id") for r in recs} == {event_id_for(p["payment_id"])}


# --- validation (section 2), each rule failing and passing -------------------

LONG = "a" * 128
CASES = [
    # (name, mutation(payload) -> None, failing field or None when it must pass)
    ("payment_id ok 128", lambda p: p.update(payment_id="P." + "x" * 126), None),
    ("payment_id too long", lambda p: p.update(payment_id="x" * 129), "payment_id"),
    ("payment_id charset", lambda p: p.update(payment_id="pay 1"), "payment_id"),
    ("payment_id missing", lambda p: p.pop("payment_id"), "payment_id"),
    ("order_id ok", lambda p: p.update(order_id="ord_1:A-b.c_" + uuid.uuid4().hex), None),
    ("order_id empty", lambda p: p.update(order_id=""), "order_id"),
    ("order_id not string", lambda p: p.update(order_id=1001), "order_id"),
    ("amount max", lambda p: p.update(amount_cents=10**12), None),
    ("amount min", lambda p: p.update(amount_cents=1), None),
    ("amount zero", lambda p: p.update(amount_cents=0), "amount_cents"),
    ("amount too big", lambda p: p.update(amount_cents=10**12 + 1), "amount_cents"),
    ("amount fraction", lambda p: p.update(amount_cents=45.99), "amount_cents"),
    ("amount string", lambda p: p.update(amount_cents="4599"), "amount_cents"),
    ("currency ok", lambda p: p.update(currency="USD"), None),
    ("currency lower", lambda p: p.update(currency="eur"), "currency"),
    ("currency long", lambda p: p.update(currency="EURO"), "currency"),
    ("items 100", lambda p: p.update(items=[{"sku": f"S{i}", "qty": 1} for i in range(100)]), None),
    ("items 101", lambda p: p.update(items=[{"sku": f"S{i}", "qty": 1} for i in range(101)]), "items"),
    ("items empty", lambda p: p.update(items=[]), "items"),
    ("sku 64", lambda p: p.update(items=[{"sku": "S" * 64, "qty": 1}]), None),
    ("sku 65", lambda p: p.update(items=[{"sku": "S" * 65, "qty": 1}]), "items[0].sku"),
    ("sku charset", lambda p: p.update(items=[{"sku": "RED MUG", "qty": 1}]), "items[0].sku"),
    ("qty 10000", lambda p: p.update(items=[{"sku": "A", "qty": 10000}]), None),
    ("qty 10001", lambda p: p.update(items=[{"sku": "A", "qty": 10001}]), "items[0].qty"),
    ("qty 0", lambda p: p.update(items=[{"sku": "A", "qty": 0}]), "items[0].qty"),
    ("qty fraction", lambda p: p.update(items=[{"sku": "A", "qty": 1.5}]), "items[0].qty"),
    ("sku distinct", lambda p: p.update(items=[{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}]), None),
    ("sku twice", lambda p: p.update(items=[{"sku": "A", "qty": 1}, {"sku": "A", "qty": 1}]),
     "items[1].sku"),
    ("customer id only", lambda p: p.update(customer={"id": "cus_1"}), None),
    ("customer missing", lambda p: p.pop("customer"), "customer"),
    ("customer id missing", lambda p: p.update(customer={"email": "a@b.example"}), "customer.id"),
    ("webhook http", lambda p: p["customer"].update(webhook_url="http://m.example/h"), None),
    ("webhook https", lambda p: p["customer"].update(webhook_url="https://m.example/h"), None),
    ("webhook ftp", lambda p: p["customer"].update(webhook_url="ftp://m.example/h"),
     "customer.webhook_url"),
    ("email bad", lambda p: p["customer"].update(email="not-an-email"), "customer.email"),
    ("phone ok", lambda p: p["customer"].update(phone="+4915112345678"), None),
    ("phone bad", lambda p: p["customer"].update(phone="call me maybe"), "customer.phone"),
    ("occurred_at absent", lambda p: p.pop("occurred_at", None), None),
    ("occurred_at offset", lambda p: p.update(occurred_at="2026-11-22T10:00:00.250+02:00"), None),
    ("occurred_at bad", lambda p: p.update(occurred_at="22/11/2026 10:00"), "occurred_at"),
    ("unknown fields ignored", lambda p: p.update(foo="bar", nested={"a": [1, 2]}), None),
]


@pytest.mark.parametrize("name,mutate,field", CASES, ids=[c[0] for c in CASES])
def test_validation_rule(gw, name, mutate, field):
    p = payment()
    mutate(p)
    r = post_payment(gw.url, p)
    if field is None:
        assert r.status_code == 202, r.text
        assert r.json()["event_id"] == event_id_for(p["payment_id"])
    else:
        errors = error_fields(r)
        assert list(errors) == [field], errors
        assert errors[field]


@pytest.mark.parametrize("field,raw", [
    ("amount_cents", "999999999999.99999999"),   # cJSON rounds it to 10^12
    ("amount_cents", "4599.0"),
    ("amount_cents", "1e3"),
    ("amount_cents", "4.599E3"),
    ("items[0].qty", "1.0000000000000001"),        # cJSON rounds it to 1
    ("items[0].qty", "2.0"),
    ("items[0].qty", "1e0"),
], ids=["amount-rounds-to-max", "amount-dot-zero", "amount-exponent", "amount-E",
        "qty-rounds-to-1", "qty-dot-zero", "qty-exponent"])
def test_integer_fields_reject_a_fraction_or_exponent_in_the_text(gw, kafka, ns, field, raw):
    """The raw JSON token decides, not the double cJSON makes of it."""
    p = payment(items=[{"sku": "SKU-RED-MUG", "qty": 777}], amount_cents=123456)
    body = encode(p)
    body = body.replace(b'"amount_cents":123456', b'"amount_cents":' + raw.encode()) \
        if field == "amount_cents" else body.replace(b'"qty":777', b'"qty":' + raw.encode())
    assert raw.encode() in body
    r = post_raw(gw, body, signed_headers(body, WEBHOOK_SECRET))
    errors = error_fields(r)
    assert list(errors) == [field], errors
    assert "without a fraction or an exponent" in errors[field], errors
    # The integer spelling of the same payment passes.
    ok = post_payment(gw.url, p)
    assert ok.status_code == 202, ok.text
    recs = kafka.read_all(topic(ns), timeout=20, min_count=1)
    assert [json.loads(x.value)["payment_id"] for x in recs] == [p["payment_id"]]


def test_every_failing_field_is_reported(gw):
    p = {"payment_id": "bad id", "amount_cents": 1.5, "currency": "eu",
         "items": [{"sku": "A", "qty": 0}, {"sku": "A", "qty": 20000}, {"qty": 1}],
         "customer": {"email": "x", "webhook_url": "mailto:a@b"}, "occurred_at": "soon"}
    r = post_payment(gw.url, p)
    errors = error_fields(r)
    assert set(errors) == {"payment_id", "order_id", "amount_cents", "currency",
                           "items[0].qty", "items[1].sku", "items[1].qty", "items[2].sku",
                           "customer.id", "customer.email", "customer.webhook_url",
                           "occurred_at"}, errors
    assert errors["items[0].qty"] == "must be an integer between 1 and 10000"
    assert errors["amount_cents"] == "must be an integer between 1 and 1000000000000"
    assert errors["order_id"] == "is required"


@pytest.mark.parametrize("body,expect", [
    (b'{"payment_id": "p", ', "malformed JSON at byte"),
    (b'{"a": 1} trailing', "unexpected data after the value at byte 9"),
    (b'[1, 2, 3]', "must be a JSON object"),
    (b'', "body is empty"),
    (b'{"payment_id": "\xff"}', "not valid UTF-8 (byte 16)"),
    (b'{"payment_id": "p\\u0000q"}', "\\u0000"),
    (b'{"amount_cents": 01}', "invalid number at byte 17"),
], ids=["truncated", "trailing", "array", "empty", "utf8", "nul-escape", "leading-zero"])
def test_malformed_body(gw, body, expect):
    r = post_raw(gw, body, signed_headers(body, WEBHOOK_SECRET))
    errors = error_fields(r)
    assert list(errors) == [""], errors
    assert expect in errors[""], errors


# --- signatures ---------------------------------------------------------------


def _sig_post(gw, body: bytes, sig: str | None):
    h = {"Content-Type": "application/json"}
    if sig is not None:
        h["X-Signature"] = sig
    return post_raw(gw, body, h)


def test_signature_vectors(gw):
    now = int(time.time())
    body = encode(payment())

    def mac(secret, t, b=body):
        return sign(b, secret, t).split(",v1=")[1]

    ok = _sig_post(gw, body, sign(body, WEBHOOK_SECRET, now))
    assert ok.status_code == 202, ok.text

    cases = {
        "tampered body": (body.replace(b"4599", b"4598"), sign(body, WEBHOOK_SECRET, now), "No v1"),
        "wrong secret": (body, sign(body, "not-the-secret", now), "No v1"),
        "missing header": (body, None, "missing"),
        "empty header": (body, "", "missing"),
        "malformed header": (body, "sha256=deadbeef", "malformed"),
        "malformed v1": (body, f"t={now},v1=xyz", "malformed"),
        "no t": (body, f"v1={mac(WEBHOOK_SECRET, now)}", "malformed"),
        "stale": (body, sign(body, WEBHOOK_SECRET, now - 302), "300 seconds"),
        "future": (body, sign(body, WEBHOOK_SECRET, now + 330), "300 seconds"),
    }
    for name, (b, sig, detail) in cases.items():
        r = _sig_post(gw, b, sig)
        doc = assert_problem(r, 401)
        assert detail in doc["detail"], (name, doc)
        # RFC 9110 11.6.1: every 401 carries a challenge.
        assert r.headers.get("WWW-Authenticate") == CHALLENGE % "X-Signature", (name, r.headers)
        assert WEBHOOK_SECRET not in r.text and mac(WEBHOOK_SECRET, now) not in r.text, name

    # Within the window both ways.
    for t in (now - 250, now + 250):
        b = encode(payment())
        r = _sig_post(gw, b, sign(b, WEBHOOK_SECRET, t))
        assert r.status_code == 202, (t, r.text)

    # Several v1 entries: one valid among wrong ones passes.
    b = encode(payment())
    multi = f"t={now},v1={mac('old-secret', now, b)},v1={mac(WEBHOOK_SECRET, now, b)}"
    r = _sig_post(gw, b, multi)
    assert r.status_code == 202, r.text
    multi_bad = f"t={now},v1={mac('a', now, b)},v1={mac('b', now, b)}"
    assert_problem(_sig_post(gw, b, multi_bad), 401)


CHALLENGE = 'HMAC-SHA256 realm="payment-gw", header="%s"'


def test_signature_header_is_configurable(gw_services):
    """OF_GW_SIGNATURE_HEADER names the header: a provider sending
    Stripe-Signature in the same t=,v1= scheme works unchanged; X-Signature
    is then just another header; a value that is not an HTTP token stops
    the gateway (exit 2, naming the variable)."""
    for bad in ("Stripe Signature", "X-Sig:", "", "Sig\"nature", "x" * 201):
        svc = gw_services.start("payment-gw", env={"OF_GW_SIGNATURE_HEADER": bad},
                                wait_ready=False)
        assert svc.wait_exit(30) == 2, bad
        assert "OF_GW_SIGNATURE_HEADER" in svc.log(), (bad, svc.log(20))

    gw = gw_services.start("payment-gw", env={"OF_GW_SIGNATURE_HEADER": "Stripe-Signature"})
    body = encode(payment())
    sig = sign(body, WEBHOOK_SECRET)
    r = post_raw(gw, body, {"Content-Type": "application/json", "Stripe-Signature": sig})
    assert r.status_code == 202, r.text
    # Header names are case-insensitive.
    b2 = encode(payment())
    r = post_raw(gw, b2, {"Content-Type": "application/json",
                          "stripe-signature": sign(b2, WEBHOOK_SECRET)})
    assert r.status_code == 202, r.text

    b3 = encode(payment())
    r = post_raw(gw, b3, {"Content-Type": "application/json", "X-Signature": sign(b3, WEBHOOK_SECRET)})
    doc = assert_problem(r, 401)
    assert doc["detail"] == "The Stripe-Signature header is missing.", doc
    assert r.headers.get("WWW-Authenticate") == CHALLENGE % "Stripe-Signature", r.headers
    r = post_raw(gw, b3, {"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=zz"})
    doc = assert_problem(r, 401)
    assert "Stripe-Signature header is malformed" in doc["detail"], doc
    assert r.headers.get("WWW-Authenticate") == CHALLENGE % "Stripe-Signature", r.headers


def test_signature_secret_rotation(gw_services):
    gw = gw_services.start("payment-gw", env={"OF_WEBHOOK_SECRETS": "new-secret, test-secret"})
    for secret in ("new-secret", "test-secret"):
        r = post_payment(gw.url, payment(), secret=secret)
        assert r.status_code == 202, (secret, r.text)
    r = post_payment(gw.url, payment(), secret="retired-secret")
    assert_problem(r, 401)
    # After the rotation completes, the old secret stops working.
    gw.restart(env={"OF_WEBHOOK_SECRETS": "new-secret"})
    assert post_payment(gw.url, payment(), secret="new-secret").status_code == 202
    assert_problem(post_payment(gw.url, payment(), secret="test-secret"), 401)
    log = gw.log()
    assert "new-secret" not in log and "test-secret" not in log


def test_unsigned_mode_needs_explicit_opt_in(gw_services):
    bad = gw_services.start("payment-gw", env={"OF_WEBHOOK_SECRETS": ""}, wait_ready=False)
    assert bad.wait_exit(30) == 2
    assert "OF_WEBHOOK_SECRETS" in bad.log()

    gw = gw_services.start("payment-gw",
                           env={"OF_WEBHOOK_SECRETS": "", "OF_ALLOW_UNSIGNED": "1"})
    body = encode(payment())
    r = post_raw(gw, body, {"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    assert re.search(r'"level":"warn".*signature checking is OFF', gw.log())


# --- media type, paths, methods, sizes ---------------------------------------


def test_content_type(gw):
    body = encode(payment())
    for ct in ("text/plain", "application/x-www-form-urlencoded", "application/jsonp",
               "application/json; charset=iso-8859-1"):
        doc = assert_problem(post_raw(gw, body, signed_headers(body, WEBHOOK_SECRET, content_type=ct)), 415)
        assert "application/json" in doc["detail"] or "UTF-8" in doc["detail"]
    h = signed_headers(body, WEBHOOK_SECRET)
    del h["Content-Type"]
    assert_problem(post_raw(gw, body, h), 415)
    for ct in ("application/json; charset=utf-8", "Application/JSON;Charset=\"UTF-8\""):
        b = encode(payment())
        r = post_raw(gw, b, signed_headers(b, WEBHOOK_SECRET, content_type=ct))
        assert r.status_code == 202, (ct, r.text)


def test_unknown_path_and_wrong_method(gw):
    assert_problem(requests.get(gw.url + "/v1/nope", timeout=10), 404)
    assert_problem(requests.post(gw.url + "/v1/payments/extra", data=b"{}", timeout=10), 404)
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        r = requests.request(method, gw.url + "/v1/payments", timeout=10)
        assert_problem(r, 405)
        assert "POST" in r.headers["Allow"], r.headers
    r = requests.post(gw.url + "/healthz", timeout=10)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


def _padded_payment(size: int) -> bytes:
    """A valid payment body of exactly `size` bytes (whitespace padding)."""
    b = encode(payment())
    assert len(b) < size
    return b[:-1] + b" " * (size - len(b)) + b"}"


def test_body_limit_plain(gw):
    exact = _padded_payment(LIMIT)
    assert len(exact) == LIMIT
    r = post_raw(gw, exact, signed_headers(exact, WEBHOOK_SECRET))
    assert r.status_code == 202, r.text
    over = _padded_payment(LIMIT + 1)
    r = post_raw(gw, over, signed_headers(over, WEBHOOK_SECRET))
    assert_problem(r, 413)
    # The server still works afterwards.
    assert post_payment(gw.url, payment()).status_code == 202


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_body_limit_chunked(gw):
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=15)
    try:
        s.sendall(b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-Signature: t=1,v1=" + b"0" * 64 + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 8192 + b"x" * 8192 + b"\r\n"
        sent = 0
        for _ in range(32):  # 256 KiB, four times the limit
            s.sendall(chunk)
            sent += 8192
        # The 413 is already there, mid-upload: the limit is enforced while
        # reading, not after the whole body arrived.
        data = b""
        while b"\r\n\r\n" not in data:
            part = s.recv(4096)
            if not part:
                break
            data += part
        assert data.startswith(b"HTTP/1.1 413"), data[:200]
        assert b"connection: close" in data.lower()
        # Whatever the client keeps sending is not buffered by the server.
        before = _rss_kib(gw.pid)
        s.settimeout(5)
        try:
            for _ in range(4096):  # 32 MiB more
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass  # closed or no longer read: fine
        assert _rss_kib(gw.pid) - before < 8 * 1024
    finally:
        s.close()
    # A small chunked upload is fine.
    body = encode(payment())

    def gen():
        yield body[:10]
        yield body[10:]
    r = requests.post(gw.url + "/v1/payments", data=gen(),
                      headers=signed_headers(body, WEBHOOK_SECRET), timeout=30)
    assert r.status_code == 202, r.text
    assert post_payment(gw.url, payment()).status_code == 202


# --- durability ----------------------------------------------------------------


def test_broker_down_503_then_recovers_without_restart(gw_services, kafka, ns):
    gw = gw_services.start("payment-gw", env={"OF_GW_ACK_TIMEOUT": "2s",
                                              "OF_GW_RETRY_AFTER": "3s"})
    assert post_payment(gw.url, payment()).status_code == 202
    kafka.stop()
    try:
        down = [payment() for _ in range(5)]
        with concurrent.futures.ThreadPoolExecutor(5) as ex:
            results = list(ex.map(lambda p: post_payment(gw.url, p, timeout=60), down))
        for r in results:
            doc = assert_problem(r, 503)
            assert r.headers["Retry-After"] == "3"
            assert "2000 ms" in doc["detail"] or "Kafka" in doc["detail"]
        wait_until(lambda: gw.get("/readyz", timeout=5).status_code == 503, timeout=30,
                   message="/readyz to report the broker down")
    finally:
        kafka.start()
    wait_until(lambda: gw.get("/readyz", timeout=5).status_code == 200, timeout=60,
               message="/readyz after the broker came back")

    def accepted():
        return post_payment(gw.url, payment(), timeout=30).status_code == 202
    wait_until(accepted, timeout=60, interval=1, message="a 202 after the broker came back")
    p = payment()
    r = post_payment(gw.url, p)
    assert r.status_code == 202
    byid, _ = records_by_event(kafka, ns, 2, timeout=30)
    assert r.json()["event_id"] in byid
    m = gw.metrics()
    failed = sum(float(x) for x in re.findall(
        r'^orderflow_gw_payments_total\{result="kafka_(?:timeout|error)"\} (\S+)$', m, re.M))
    assert failed >= len(down), m


def test_concurrent_requests_all_answered_correctly(gw, kafka, ns):
    n = 200
    payloads = [payment() for _ in range(n)]
    for i in range(0, n, 10):
        payloads[i]["amount_cents"] = 0  # every 10th is invalid
    barrier = threading.Barrier(n)

    def send(p):
        s = requests.Session()
        barrier.wait(timeout=60)
        return post_payment(gw.url, p, session=s, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        results = list(ex.map(send, payloads))
    accepted = set()
    for p, r in zip(payloads, results):
        if p["amount_cents"] == 0:
            assert list(error_fields(r)) == ["amount_cents"]
        else:
            assert r.status_code == 202, r.text
            assert r.json()["event_id"] == event_id_for(p["payment_id"])
            assert r.json()["order_id"] == p["order_id"]
            accepted.add(r.json()["event_id"])
    assert len(accepted) == n - n // 10
    byid, recs = records_by_event(kafka, ns, len(accepted), timeout=30)
    assert set(byid) == accepted
    for eid, rec in byid.items():
        assert rec.key.decode() == rec.json()["order_id"]


def test_graceful_shutdown_answers_in_flight(gw, kafka, ns):
    n = 60
    payloads = [payment() for _ in range(n)]
    results: list = [None] * n

    def send(i):
        try:
            results[i] = post_payment(gw.url, payloads[i], timeout=60)
        except requests.RequestException as exc:  # refused once stopped: fine
            results[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    wait_until(lambda: any(isinstance(r, requests.Response) for r in results), timeout=30)
    rc = gw.stop()
    for t in threads:
        t.join(60)
    assert rc == 0, gw.log(50)
    answered = [(p, r) for p, r in zip(payloads, results) if isinstance(r, requests.Response)]
    assert answered
    ok = set()
    for p, r in answered:
        assert r.status_code in (202, 503), r.text
        if r.status_code == 202:
            ok.add(r.json()["event_id"])
    byid, _ = records_by_event(kafka, ns, len(ok), timeout=30)
    assert ok <= set(byid), "a 202 was sent for an event that is not in Kafka"
    assert '"msg":"stopped"' in gw.log()


def test_thread_pool_mode_answers_and_drains(gw_services, kafka, ns):
    """OF_HTTP_THREADS=2: the libmicrohttpd pool with a delivery-report
    thread and a deadline thread (the default is one event loop): answers
    from other threads, and a SIGTERM with requests in flight."""
    gw = gw_services.start("payment-gw", env={"OF_HTTP_THREADS": "2"})
    n = 40
    payloads = [payment() for _ in range(n)]
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        results = list(ex.map(lambda p: post_payment(gw.url, p, session=requests.Session()),
                              payloads))
    assert [r.status_code for r in results] == [202] * n
    byid, _ = records_by_event(kafka, ns, n, timeout=30)
    assert {r.json()["event_id"] for r in results} <= set(byid)
    late: list = [None] * 20

    def send(i):
        try:
            late[i] = post_payment(gw.url, payment(), timeout=60)
        except requests.RequestException as exc:  # refused once stopped: fine
            late[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(late))]
    for t in threads:
        t.start()
    rc = gw.stop()
    for t in threads:
        t.join(60)
    assert rc == 0, gw.log(50)
    for r in late:
        assert not isinstance(r, requests.Response) or r.status_code in (202, 503), r.text


# --- operability -----------------------------------------------------------------


def test_health_ready_metrics(gw):
    assert gw.get("/healthz").status_code == 200
    assert gw.get("/readyz").status_code == 200
    assert post_payment(gw.url, payment()).status_code == 202
    assert post_payment(gw.url, payment(amount_cents=0)).status_code == 400
    assert post_payment(gw.url, payment(), secret="nope").status_code == 401
    m = gw.metrics()
    for needle in ('orderflow_http_requests_total{route="/v1/payments",status="202"} 1',
                   'orderflow_http_requests_total{route="/v1/payments",status="400"} 1',
                   'orderflow_http_requests_total{route="/v1/payments",status="401"} 1',
                   'orderflow_http_request_duration_seconds_bucket{route="/v1/payments"',
                   'orderflow_gw_kafka_delivery_seconds_bucket{result="ok"',
                   'orderflow_gw_payments_total{result="accepted"} 1',
                   'orderflow_gw_payments_total{result="invalid"} 1',
                   'orderflow_gw_payments_total{result="unauthorized"} 1',
                   "orderflow_http_inflight",
                   "orderflow_gw_producer_queue_depth",
                   "orderflow_gw_acks_waiting"):
        assert needle in m, needle


def test_one_json_log_line_per_request_without_secrets_or_pii(gw):
    p = payment(email="ana.secret@example.com", phone="+4915112345678")
    assert post_payment(gw.url, p).status_code == 202
    assert post_payment(gw.url, payment(), secret="nope").status_code == 401
    time.sleep(0.5)
    lines = [json.loads(x) for x in gw.log().splitlines() if x.startswith("{")]
    access = [x for x in lines if x.get("msg") == "http request" and x.get("route") == "/v1/payments"]
    assert [x["status"] for x in access] == ["202", "401"], access
    assert all(x.get("trace_id") for x in access)
    text = gw.log()
    assert WEBHOOK_SECRET not in text
    assert "ana.secret@example.com" not in text and "4915112345678" not in text


def test_bad_config_exits_2_naming_the_variable(gw_services):
    for var, val in (("OF_GW_ACK_TIMEOUT", "soon"), ("OF_HTTP_THREADS", "0"),
                     ("OF_HTTP_MAX_CONNECTIONS", "many"), ("OF_HTTP_PORT", "eighty")):
        svc = gw_services.start("payment-gw", env={var: val}, wait_ready=False)
        assert svc.wait_exit(30) == 2, var
        assert var in svc.log(), (var, svc.log(20))


# --- limits ------------------------------------------------------------------------


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_slow_and_idle_clients_do_not_starve_others(gw_services):
    gw = gw_services.start("payment-gw", env={"OF_HTTP_CONN_TIMEOUT": "2s",
                                              "OF_HTTP_MAX_CONNECTIONS": "8"})
    # A slowloris: headers never finished. Others are served meanwhile, and
    # the server closes the slow connection after the timeout.
    slow = socket.create_connection(("127.0.0.1", gw.port), timeout=20)
    slow.sendall(b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Le")
    assert post_payment(gw.url, payment()).status_code == 202
    assert _closed_by_server(slow)
    slow.close()

    # Connection limit: with 8 slow clients holding every slot, a new
    # connection is not served (it waits in the listen backlog)...
    hogs = []
    for _ in range(8):
        c = socket.create_connection(("127.0.0.1", gw.port), timeout=20)
        c.sendall(b"GET /healthz HTTP/1.1\r\n")
        hogs.append(c)
    with pytest.raises(requests.Timeout):
        requests.get(gw.url + "/healthz", timeout=0.5)
    # ...until the connection timeout drops the hogs: then it is.
    assert post_payment(gw.url, payment(), timeout=30).status_code == 202
    for c in hogs:
        assert _closed_by_server(c)
        c.close()
