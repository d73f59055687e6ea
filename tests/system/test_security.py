"""Security review checks (docs/SECURITY.md): the admin token, secrets and
personal data kept out of logs, TLS/SASL settings reaching librdkafka,
PostgreSQL over verified TLS with a SCRAM password, SQL only through
parameters, and containers not running as root.

The PostgreSQL TLS test starts its own cluster (deploy/pg.sh +
deploy/pg-tls.sh: a private CA, a server certificate, pg_hba with
`hostssl ... scram-sha-256` only).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import time
import uuid

import psycopg
import pytest
import requests
import yaml

from harness import config, payment, post_payment, sign, wait_until
from harness.pg import Postgres
from harness.util import REPO_ROOT, free_ports

TOKEN = {"Authorization": f"Bearer {config.ADMIN_TOKEN}"}
PG_TLS_SH = REPO_ROOT / "deploy" / "pg-tls.sh"
C_DIRS = [REPO_ROOT / "common", REPO_ROOT / "services", REPO_ROOT / "tools"]


def stock(svc, sku: str) -> int | None:
    r = svc.get(f"/v1/stock/{sku}")
    return r.json()["available"] if r.status_code == 200 else None


# --- admin token -------------------------------------------------------------------


def test_stock_put_needs_the_admin_token(services):
    inv = services.start("inventory")
    sku = f"SKU-SEC-{uuid.uuid4().hex[:8]}"
    url = f"{inv.url}/v1/stock/{sku}"
    body = {"available": 5}
    tok = config.ADMIN_TOKEN
    wrong = {
        "no header": {},
        "empty": {"Authorization": ""},
        "scheme only": {"Authorization": "Bearer"},
        "empty token": {"Authorization": "Bearer "},
        "wrong token": {"Authorization": "Bearer nope"},
        "same length": {"Authorization": "Bearer " + "x" * len(tok)},
        "last char differs": {"Authorization": "Bearer " + tok[:-1] + chr(ord(tok[-1]) ^ 1)},
        "prefix": {"Authorization": "Bearer " + tok[:-1]},
        "token + suffix": {"Authorization": "Bearer " + tok + "x"},
        "token twice": {"Authorization": "Bearer " + tok + tok},
        "other scheme": {"Authorization": "Basic " + tok},
        "no scheme": {"Authorization": tok},
        "token in another header": {"X-Admin-Token": tok},
        "token in the query": {},
    }
    for name, hdrs in wrong.items():
        u = url + (f"?token={tok}&access_token={tok}" if name == "token in the query" else "")
        r = requests.put(u, json=body, headers=hdrs, timeout=30)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json"), name
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), name
        assert tok not in r.text
    assert inv.get(f"/v1/stock/{sku}").status_code == 404, "a refused PUT created the sku"
    # The right token (the scheme is case-insensitive, RFC 9110).
    r = requests.put(url, json=body, headers=TOKEN, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["available"] == 5
    r = requests.put(url, json={"available": 6}, headers={"Authorization": f"bearer {tok}"}, timeout=30)
    assert r.status_code == 200, r.text
    # A refused PUT on an existing sku changes nothing.
    r = requests.put(url, json={"available": 0}, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert r.status_code == 401
    assert stock(inv, sku) == 6
    # Reads need no token (CONTRACT section 3).
    assert inv.get(f"/v1/stock/{sku}").status_code == 200
    # ofctl with a wrong token fails clearly, with the right one works.
    r = services.ofctl("stock", "set", sku, "9", env={"OF_ADMIN_TOKEN": "nope"})
    assert r.returncode == 1 and "401" in r.stderr, r
    assert "nope" not in r.stderr
    r = services.ofctl("stock", "set", sku, "9")
    assert r.returncode == 0, r.stderr
    assert stock(inv, sku) == 9


def test_empty_admin_token_refuses_every_put(services):
    inv = services.start("inventory", env={"OF_ADMIN_TOKEN": ""})
    sku = f"SKU-SEC-{uuid.uuid4().hex[:8]}"
    for hdrs in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer  "}, TOKEN):
        r = requests.put(f"{inv.url}/v1/stock/{sku}", json={"available": 1}, headers=hdrs, timeout=30)
        assert r.status_code == 401, (hdrs, r.status_code)
    assert inv.get(f"/v1/stock/{sku}").status_code == 404


SECRET_COMPARE = re.compile(
    r"\b(strcmp|strncmp|strcasecmp|strncasecmp|memcmp|bcmp)\s*\([^;]*"
    r"(token|secret|signature|passw|mac\b|hmac|digest)", re.I)


def test_secrets_are_compared_in_constant_time():
    """Static: no secret, token or MAC goes through an early-exit compare;
    the admin token and signatures use of_ct_equal / CRYPTO_memcmp."""
    offenders = []
    for d in C_DIRS:
        for f in d.rglob("*.c"):
            text = f.read_text(errors="replace")
            for m in SECRET_COMPARE.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                offenders.append(f"{f.relative_to(REPO_ROOT)}:{line}: {m.group(0)[:100]}")
    assert not offenders, "early-exit compare of a secret:\n" + "\n".join(offenders)
    inv = (REPO_ROOT / "services" / "inventory" / "inv_http.c").read_text()
    assert "of_ct_equal(" in inv, "inventory's admin token check does not use of_ct_equal"
    sig = (REPO_ROOT / "common" / "src" / "of_sig.c").read_text()
    assert "CRYPTO_memcmp(mac" in sig
    # SECURITY.md F12: of_ct_equal hides the lengths too: digests of both
    # sides, no early return on a length mismatch.
    body = sig[sig.index("int of_ct_equal("):]
    body = body[:body.index("\n}\n")]
    assert "EVP_Digest(" in body and "CRYPTO_memcmp(" in body, body
    assert not re.search(r"alen\s*!=\s*blen|blen\s*!=\s*alen", body), body


# --- no secrets, no personal data in logs ---------------------------------------------------


PHONES = ["+49 1517 3920864", "+49-170-5831-927", "+491606284193", "(0171) 4490-3386",
          "+1 (415) 555-0143", "+44.7700.900461"]
EMAILS = ["ana.quintessa@example.com", "First.Last+orders@sub.example.co.uk", "UPPER.CASEY@EXAMPLE.ORG",
          "o'brienz@example.net", "x7@example.io", "zoe_marlowe@mail.example"]


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def test_no_secrets_or_personal_data_in_logs(kafka, ns, db, sink, services):
    """A full flow at OF_LOG_LEVEL=debug with unique secrets: payments with
    e-mails and phones through all three services (fulfilled, compensated,
    duplicate, refused, poison records, failing and retried deliveries),
    plus ofctl. No log line (and no ofctl stderr, no /metrics) holds a
    secret, a full e-mail address or a phone number's digits."""
    sec = {
        "webhook secret": f"whsec-{secrets.token_hex(8)}",
        "admin token": f"adm-{secrets.token_hex(8)}",
        "notify secret": f"ntfsec-{secrets.token_hex(8)}",
        "pg password": f"pgpw-{secrets.token_hex(8)}",
        "kafka sasl password": f"saslpw-{secrets.token_hex(8)}",
    }
    env = {
        "OF_WEBHOOK_SECRETS": f"old-{secrets.token_hex(4)},{sec['webhook secret']}",
        "OF_ADMIN_TOKEN": sec["admin token"],
        "OF_NOTIFY_SECRET": sec["notify secret"],
        # Trust auth ignores the password, but anything logging the DSN leaks it.
        "OF_PG_DSN": f"{db.dsn} password={sec['pg password']}",
        # Plaintext listener: librdkafka ignores (and warns about) these.
        "OF_RDKAFKA_SASL_USERNAME": "orderflow",
        "OF_RDKAFKA_SASL_PASSWORD": sec["kafka sasl password"],
        "OF_LOG_LEVEL": "debug",
    }
    admin = {"Authorization": f"Bearer {sec['admin token']}"}
    hook_token = f"hooktok-{secrets.token_hex(6)}"
    needles_extra = {"customer webhook URL token": hook_token}
    sink.respond("/email", [500, 503])        # retried, then delivered
    sink.respond("/sms", [400])               # permanent: notify.dlq
    sink.respond("/webhook", [502])           # retried with the URL in hand
    gw = services.start("payment-gw", env=env)
    inv = services.start("inventory", env=env)
    ntf = services.start("notify", env=env)
    for sku in ("SKU-SEC-A", "SKU-SEC-B"):
        assert inv.put(f"/v1/stock/{sku}", json={"available": 100}, headers=admin).status_code == 200

    orders = []
    for i, (phone, email) in enumerate(zip(PHONES, EMAILS)):
        items = ["SKU-SEC-A:1"] if i % 3 else ["SKU-UNKNOWN:1"]      # some compensated
        p = payment(email=email, phone=phone, items=items,
                    webhook_url=f"{sink.url}/webhook?token={hook_token}")
        r = post_payment(gw.url, p, secret=sec["webhook secret"])
        assert r.status_code == 202, r.text
        orders.append(p)
    # A second payment for an order: compensated as duplicate_payment.
    dup = payment(order_id=orders[1]["order_id"], email=EMAILS[0], phone=PHONES[0], items=["SKU-SEC-B:1"])
    assert post_payment(gw.url, dup, secret=sec["webhook secret"]).status_code == 202
    # Refused at the gateway: bad signature, bad fields (PII in them), bad JSON.
    p = payment(email=EMAILS[2], phone=PHONES[2])
    assert post_payment(gw.url, p, secret="wrong").status_code == 401
    p = payment(email="not an email " + EMAILS[3], phone=PHONES[3] + "x")
    assert post_payment(gw.url, p, secret=sec["webhook secret"]).status_code == 400
    bad = b'{"customer":{"email":"' + EMAILS[4].encode() + b'","phone":"' + PHONES[4].encode() + b'"} oops'
    assert post_payment(gw.url, bad, secret=sec["webhook secret"]).status_code == 400
    # A 401 never reveals the signature the server expected.
    body = json.dumps(payment(email=EMAILS[5])).encode()
    r = requests.post(gw.url + "/v1/payments", data=body, timeout=30,
                      headers={"Content-Type": "application/json", "X-Signature": sign(body, "wrong")})
    assert r.status_code == 401
    right = sign(body, sec["webhook secret"]).split("v1=")[1]
    assert right not in r.text and sec["webhook secret"] not in r.text
    # Poison records with personal data: payment.success.dlq and notify.dlq.
    kafka.produce(ns.topic("payment.success"), "ord_poison",
                  b'{"payment_id":"pay_poison","customer":{"email":"' + EMAILS[5].encode()
                  + b'","phone":"' + PHONES[5].encode() + b'"}, broken')
    kafka.produce(ns.topic("payment.success"), "ord_poison2",
                  {"event_id": str(uuid.uuid4()), "payment_id": f"pay {PHONES[0]}", "order_id": "o",
                   "amount_cents": 1, "currency": "EUR", "items": [{"sku": EMAILS[0], "qty": 1}],
                   "customer": {"id": EMAILS[1], "email": EMAILS[1], "phone": PHONES[1]}})
    kafka.produce(ns.topic("order.fulfilled"), "ord_poison3",
                  b'{"event_id":"e","customer":{"email":"' + EMAILS[2].encode() + b'"}} trailing')
    # ofctl: a signed payment with PII, stock, DLQ inspection, verify.
    octl_env = {**env, "OF_PAYMENT_GW_URL": gw.url, "OF_INVENTORY_URL": inv.url}
    runs = [services.ofctl("pay", "--order", f"ord_ofctl_{uuid.uuid4().hex[:8]}", "--item", "SKU-SEC-A:1",
                           "--email", EMAILS[3], "--phone", PHONES[3], env=octl_env),
            services.ofctl("stock", "set", "SKU-SEC-B", "50", env=octl_env),
            services.ofctl("stock", "get", "SKU-SEC-B", env=octl_env)]
    for r in runs:
        assert r.returncode == 0, (r.args, r.stderr)

    # Let everything flow: outcomes, deliveries (retries, DLQ).
    n_fulfilled = sum(1 for i in range(len(orders)) if i % 3)
    want_min = len(orders) * 2  # email + sms per outcome at least
    sink.wait_for(want_min, timeout=60)
    wait_until(lambda: len(kafka.read_all(ns.topic("payment.success.dlq"), timeout=2)) >= 2, timeout=30,
               message="poison payments in payment.success.dlq")
    wait_until(lambda: len(kafka.read_all(ns.topic("notify.dlq"), timeout=2)) >= 1, timeout=30,
               message="a delivery in notify.dlq")
    assert n_fulfilled > 0
    time.sleep(4)  # the email retries (tiers 1 s, 2 s)
    runs += [services.ofctl("dlq", "list", "payment.success.dlq", env=octl_env),
             services.ofctl("dlq", "list", "notify.dlq", env=octl_env),
             services.ofctl("dlq", "stats", env=octl_env),
             services.ofctl("verify", env=octl_env, timeout=120)]
    metrics = {s.name: s.metrics() for s in (gw, inv, ntf)}
    for s in (gw, inv, ntf):
        assert s.stop() == 0, s.name

    texts = {s.name: s.log() for s in (gw, inv, ntf)}
    for r in runs:
        texts[f"ofctl {' '.join(r.args[1:3])} (stderr)"] = r.stderr
    for name, m in metrics.items():
        texts[f"{name} /metrics"] = m
    needles = {**sec, **needles_extra}
    for e in EMAILS:
        needles[f"e-mail {e}"] = e
        needles[f"e-mail {e} (lower case)"] = e.lower()
    for ph in PHONES:
        needles[f"phone {ph}"] = ph
        needles[f"phone digits {ph}"] = _digits(ph)
        needles[f"phone digits {ph} (last 8)"] = _digits(ph)[-8:]
    hits = []
    for where, text in texts.items():
        low = text.lower()
        for what, needle in needles.items():
            if needle.lower() in low:
                i = low.index(needle.lower())
                hits.append(f"{where}: {what}: ...{text[max(0, i - 120):i + 60]!r}")
        # Digits of a phone across separators that the masking might miss.
        squeezed = re.sub(r"[ \-.()]", "", text)
        for ph in PHONES:
            if _digits(ph) in squeezed and f"phone digits {ph}" not in " ".join(hits):
                hits.append(f"{where}: phone digits {ph} (across separators)")
    # Proof that the flow really ran and logged at debug level.
    assert sum(len(t.splitlines()) for t in texts.values()) > 100
    assert '"level":"debug"' in texts["notify"]
    print(f"\nscanned {sum(len(t) for t in texts.values())} bytes of logs for {len(needles)} needles; "
          f"{len(sink.requests())} deliveries")
    assert not hits, "secrets or personal data in logs:\n" + "\n".join(hits)


# --- Kafka TLS / SASL settings --------------------------------------------------------------


def test_kafka_security_settings_reach_librdkafka(services):
    """OF_RDKAFKA_* properties reach every Kafka client: a bad
    security.protocol stops each service (exit 2, naming the variable); TLS
    towards a plaintext listener keeps payment-gw not ready; secret values
    are never echoed."""
    secret = f"keypw-{secrets.token_hex(6)}"
    codes = {}
    for name in ("payment-gw", "inventory", "notify"):
        svc = services.start(name, env={"OF_RDKAFKA_SECURITY_PROTOCOL": "bogus"}, wait_ready=False)
        codes[name] = svc.wait_exit(30)
        assert "OF_RDKAFKA_SECURITY_PROTOCOL" in svc.log(), (name, svc.log(20))
    r = services.ofctl("dlq", "stats", env={"OF_RDKAFKA_SECURITY_PROTOCOL": "bogus"})
    codes["ofctl"] = r.returncode
    assert "OF_RDKAFKA_SECURITY_PROTOCOL" in r.stderr, r
    # TLS with a missing CA file / key: refused at start, secret not shown.
    svc = services.start("payment-gw", wait_ready=False, env={
        "OF_RDKAFKA_SECURITY_PROTOCOL": "ssl", "OF_RDKAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem",
        "OF_RDKAFKA_SSL_KEY_PASSWORD": secret})
    assert svc.wait_exit(30) != 0
    assert "ssl.ca.location" in svc.log() and secret not in svc.log()
    # TLS towards the plaintext broker: up, never ready, clear log line.
    svc = services.start("payment-gw", wait_ready=False, env={
        "OF_RDKAFKA_SECURITY_PROTOCOL": "sasl_ssl", "OF_RDKAFKA_SASL_MECHANISMS": "SCRAM-SHA-512",
        "OF_RDKAFKA_SASL_USERNAME": "orderflow", "OF_RDKAFKA_SASL_PASSWORD": secret})
    wait_until(lambda: "SSL handshake failed" in svc.log(), timeout=30, message="an SSL handshake error logged")
    r = svc.get("/readyz", timeout=10)
    assert r.status_code == 503, r.text
    assert secret not in svc.log()
    assert svc.stop() == 0
    # Bad configuration is exit status 2 (project convention, like every
    # other bad OF_* value).
    assert all(c == 2 for c in codes.values()), f"exit status on a bad OF_RDKAFKA_* value: {codes}"


KAFKA_TLS = os.environ.get("OF_SECURITY_KAFKA_TLS", "") not in ("", "0") or \
    os.environ.get("OF_ABUSE_FULL", "") not in ("", "0")


@pytest.fixture
def sasl_ssl_kafka(tmp_path):
    """A second single-node Kafka 3.9.1 whose client listener only offers
    SASL_SSL (SCRAM-SHA-512, server certificate from a private CA made by
    deploy/pg-tls.sh certs); a PLAINTEXT listener for the broker itself."""
    jars = REPO_ROOT / "var" / "kafka" / "lib"
    if not list(jars.glob("kafka_2.13-*.jar")):
        pytest.skip("Kafka jars not fetched (deploy/kafka.sh fetch)")
    certs = tmp_path / "certs"
    subprocess.run([str(PG_TLS_SH), "certs", str(certs)], check=True, capture_output=True, timeout=60)
    (certs / "keystore.pem").write_text((certs / "server.key").read_text() + (certs / "server.crt").read_text())
    internal, secure, ctl = free_ports(3)
    data = tmp_path / "data"
    props = tmp_path / "server.properties"
    props.write_text(f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{ctl}
listeners=INTERNAL://127.0.0.1:{internal},SECURE://127.0.0.1:{secure},CONTROLLER://127.0.0.1:{ctl}
advertised.listeners=INTERNAL://127.0.0.1:{internal},SECURE://localhost:{secure}
controller.listener.names=CONTROLLER
listener.security.protocol.map=INTERNAL:PLAINTEXT,SECURE:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.secure.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.secure.ssl.keystore.type=PEM
listener.name.secure.ssl.keystore.location={certs / "keystore.pem"}
log.dirs={data}
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
""")
    password = f"kpw-{secrets.token_hex(8)}"
    java = ["java", "-Xmx384m", "-XX:+UseG1GC", "-Dlog4j.configuration=file:/dev/null", "-cp", f"{jars}/*"]
    cluster = secrets.token_urlsafe(16)[:22].replace("-", "A")
    subprocess.run([*java, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props),
                    "--add-scram", f"SCRAM-SHA-512=[name=orderflow,password={password}]"],
                   check=True, capture_output=True, timeout=120)
    log = open(tmp_path / "console.log", "wb")
    proc = subprocess.Popen([*java, "kafka.Kafka", str(props)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "console.log").read_text()[-2000:]
            with socket.socket() as so:
                return so.connect_ex(("127.0.0.1", secure)) == 0
        wait_until(up, timeout=120, interval=0.5, message="the SASL_SSL broker to listen")
        yield {"bootstrap": f"localhost:{secure}", "ca": certs / "ca.crt", "user": "orderflow",
               "password": password}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.mark.skipif(not KAFKA_TLS, reason="OF_SECURITY_KAFKA_TLS=1: starts a second (SASL_SSL) Kafka broker")
def test_kafka_sasl_ssl_end_to_end(sasl_ssl_kafka, services, sink):
    """docs/SECURITY.md's example configuration, for real: ofctl creates the
    topics and a payment goes gateway -> inventory -> notify, every client
    over SASL_SSL (SCRAM-SHA-512, verified broker certificate). A wrong
    password keeps a service not ready with a clear log line."""
    k = sasl_ssl_kafka
    prefix = f"tls{secrets.token_hex(3)}."
    env = {"OF_KAFKA_BROKERS": k["bootstrap"], "OF_TOPIC_PREFIX": prefix,
           "OF_RDKAFKA_SECURITY_PROTOCOL": "sasl_ssl", "OF_RDKAFKA_SSL_CA_LOCATION": str(k["ca"]),
           "OF_RDKAFKA_SASL_MECHANISMS": "SCRAM-SHA-512", "OF_RDKAFKA_SASL_USERNAME": k["user"],
           "OF_RDKAFKA_SASL_PASSWORD": k["password"]}
    r = services.ofctl("topics", "create", env=env)
    assert r.returncode == 0, r.stderr
    gw = services.start("payment-gw", env=env)
    inv = services.start("inventory", env=env)
    ntf = services.start("notify", env=env)
    assert inv.put("/v1/stock/SKU-TLS", json={"available": 3}, headers=TOKEN).status_code == 200
    p = payment(items=["SKU-TLS:1"], email="tls@example.com")
    assert post_payment(gw.url, p).status_code == 202
    r = inv.get(f"/v1/orders/{p['order_id']}", params={"wait": 30}, timeout=40)
    assert r.status_code == 200 and r.json()["status"] == "fulfilled", r.text
    reqs = sink.wait_for(1, timeout=30, path="/email")
    assert reqs[0].json["order_id"] == p["order_id"]
    bad = services.start("payment-gw", wait_ready=False, env={**env, "OF_RDKAFKA_SASL_PASSWORD": "wrong"})
    wait_until(lambda: "Authentication failed" in bad.log() or "SASL authentication error" in bad.log(),
               timeout=30, message="an authentication error in the log")
    assert bad.get("/readyz", timeout=10).status_code == 503
    for s in (gw, inv, ntf, bad):
        assert k["password"] not in s.log(), s.name


# --- PostgreSQL over TLS --------------------------------------------------------------------


@pytest.fixture
def tls_pg(tmp_path):
    """A PostgreSQL cluster of its own with TLS and SCRAM only
    (deploy/pg-tls.sh), a password role and a database. Yields a dict."""
    server = Postgres()
    try:
        server.start()
        user, dbname, password = "of_tls", "of_tls_db", f"pw-{secrets.token_hex(8)}"
        server.query("postgres", f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        server.query("postgres", f"CREATE DATABASE {dbname} OWNER {user}")
        certs, other = tmp_path / "certs", tmp_path / "other-ca"
        for d in (certs, other):
            subprocess.run([str(PG_TLS_SH), "certs", str(d)], check=True, capture_output=True, timeout=60)
        r = subprocess.run([str(PG_TLS_SH), "enable", str(server.data_dir), str(certs)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        hba = (server.data_dir / "pg_hba.conf").read_text()
        rules = [ln.split() for ln in hba.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        assert rules and all(x[0] in ("hostssl", "local") for x in rules), hba
        assert ["hostssl", "all", "all", "127.0.0.1/32", "scram-sha-256"] in rules, hba
        base = f"host=localhost port={server.port} dbname={dbname} user={user}"
        yield {"server": server, "base": base, "password": password, "ca": certs / "ca.crt",
               "other_ca": other / "ca.crt"}
    finally:
        server.destroy()


def test_postgres_over_verified_tls(tls_pg, kafka, ns, services):
    t = tls_pg
    good = f"{t['base']} password={t['password']} sslmode=verify-full sslrootcert={t['ca']}"
    # The cluster itself: TLS + SCRAM only.
    with psycopg.connect(good, connect_timeout=10) as c:
        ssl_on, version = c.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert ssl_on and version.startswith("TLSv1."), version
    for dsn, why in ((f"{t['base']} password={t['password']} sslmode=disable", "no encryption"),
                     (f"{t['base']} password=wrong sslmode=require", "password authentication failed")):
        with pytest.raises(psycopg.OperationalError, match=why):
            psycopg.connect(dsn, connect_timeout=10).close()

    # inventory over verified TLS: ready, and the stock API works.
    inv = services.start("inventory", env={"OF_PG_DSN": good})
    sku = f"SKU-TLS-{uuid.uuid4().hex[:6]}"
    r = inv.put(f"/v1/stock/{sku}", json={"available": 42}, headers=TOKEN)
    assert r.status_code == 200, r.text
    assert inv.get(f"/v1/stock/{sku}").json()["available"] == 42
    with psycopg.connect(good, connect_timeout=10) as c:
        rows = c.execute("SELECT a.application_name, s.ssl FROM pg_stat_activity a "
                         "JOIN pg_stat_ssl s USING (pid) WHERE a.usename = current_user "
                         "AND a.pid <> pg_backend_pid()").fetchall()
        assert rows and all(ssl for _, ssl in rows), rows
        assert c.execute("SELECT available FROM stock WHERE sku = %s", (sku,)).fetchone() == (42,)
    # notify too (its delivery log).
    ntf = services.start("notify", env={"OF_PG_DSN": good})
    assert ntf.get("/v1/deliveries", params={"order_id": "ord_tls"}).status_code == 200

    # The wrong CA: not ready, a clear log line, and still no secret in it.
    bad_ca = services.start("inventory", wait_ready=False, env={
        "OF_PG_DSN": f"{t['base']} password={t['password']} sslmode=verify-full sslrootcert={t['other_ca']}"})
    wait_until(lambda: "certificate verify failed" in bad_ca.log(), timeout=30,
               message="inventory to log the certificate failure")
    r = bad_ca.get("/readyz", timeout=10)
    assert r.status_code == 503, r.text
    # Without TLS: refused by pg_hba.
    plain = services.start("inventory", wait_ready=False, env={
        "OF_PG_DSN": f"{t['base']} password={t['password']} sslmode=disable"})
    wait_until(lambda: "no encryption" in plain.log(), timeout=30,
               message="inventory to log the pg_hba refusal")
    assert plain.get("/readyz", timeout=10).status_code == 503
    for s in (inv, ntf, bad_ca, plain):
        assert t["password"] not in s.log(), f"{s.name} logged the PostgreSQL password"
    line = next(ln for ln in bad_ca.log().splitlines() if "certificate verify failed" in ln)
    print(f"\nwrong CA -> {line[:300]}")
    for s in (bad_ca, plain):
        assert s.stop() == 0


def test_malformed_pg_dsn_is_a_config_error_without_echoing_it(services, db):
    """A syntactically broken OF_PG_DSN (here a password with an unquoted
    space) is a configuration error: exit 2 naming OF_PG_DSN, like every
    bad value, and without copying the DSN's text (libpq's parse error
    quotes the fragment after the space: part of the password) into the
    log. Today both services treat it as "PostgreSQL unreachable" and
    retry forever, logging the fragment (docs/SECURITY.md F20)."""
    fragment = f"pwtail{secrets.token_hex(4)}"
    dsn = f"{db.dsn} password=pwhead {fragment}"
    svcs = [services.start(n, env={"OF_PG_DSN": dsn}, wait_ready=False, check_exit=False)
            for n in ("inventory", "notify")]
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and any(s.is_running() for s in svcs):
        time.sleep(0.2)
    result = {s.name: (s.returncode, fragment in s.log()) for s in svcs}
    for s in svcs:
        if s.is_running():
            s.stop()
    print(f"\nmalformed OF_PG_DSN: (exit status or None while still running, fragment logged): {result}")
    assert all(rc == 2 for rc, _ in result.values()), f"not a configuration error (exit 2): {result}"
    assert not any(leak for _, leak in result.values()), f"DSN text in the log: {result}"


# --- SQL only through parameters -------------------------------------------------------------


SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|VALUES|LISTEN|NOTIFY|CREATE|DROP|ALTER|"
                       r"TRUNCATE|GRANT|COPY|SET\s+\w+\s*=)\b")
# Calls that run SQL text without parameters / with parameters.
NO_PARAM_CALLS = re.compile(r"\b(PQexec|PQsendQuery)\s*\(")
PARAM_CALLS = re.compile(r"\b(PQexecParams|PQsendQueryParams|PQprepare|PQsendPrepare|of_pg_exec)\s*\(")
BUILDERS = re.compile(r"\b(v?snprintf|v?sprintf|strcat|strncat|asprintf|strcpy)\s*\(")

# Reviewed: non-literal SQL arguments that are not built from data.
REVIEWED = {
    "common/src/of_pg.c:run": "sql is a migration file from OF_MIGRATIONS_DIR (operator-controlled) "
                              "or one of of_pg.c's own literals",
    "common/src/of_pg.c:exec_on": "the wrappers' one call (of_pg_exec, of_pg_exec_in): passes its "
                                  "caller's SQL with PQexecParams",
    "services/inventory/inv_db.c:pipe_run": "q[i].sql are the static const SQL_* strings of inv_db.c",
    "services/inventory/inv_relay.c:query_bool": "called with string literals only",
}


def _calls(text: str, pattern: re.Pattern) -> list[tuple[int, str, str]]:
    """(line, function called, first argument) for each call matching pattern."""
    out = []
    for m in pattern.finditer(text):
        i, depth, arg = m.end(), 1, ""
        start = i
        while i < len(text) and depth:
            ch = text[i]
            if ch == '"':
                j = i + 1
                while j < len(text) and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                i = j
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            elif ch == "," and depth == 1 and not arg:
                arg = text[start:i]
            i += 1
        args = text[start:i - 1]
        out.append((text.count("\n", 0, m.start()) + 1, m.group(1), args))
    return out


def _enclosing_function(text: str, pos_line: int) -> str:
    lines = text.splitlines()[:pos_line]
    for ln in reversed(lines):
        m = re.match(r"^(?:static\s+)?[\w\s\*]+?\b(\w+)\s*\([^;]*$", ln)
        if m and not ln.startswith((" ", "\t", "}")):
            return m.group(1)
    return "?"


def _sql_arg(func: str, args: str) -> str:
    """The SQL argument's text: 2nd argument of of_pg_exec/PQexec*/PQsend*
    (the connection is first), 3rd of PQprepare (after the name)."""
    parts, depth, cur, i = [], 0, "", 0
    while i < len(args):
        ch = args[i]
        if ch == '"':
            j = i + 1
            while j < len(args) and args[j] != '"':
                j += 2 if args[j] == "\\" else 1
            cur += args[i:j + 1]
            i = j + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur.strip())
    idx = 2 if func in ("PQprepare", "PQsendPrepare") else 1
    return parts[idx] if len(parts) > idx else ""


def _is_literal(arg: str) -> bool:
    """String literals, possibly concatenated with UPPER_CASE macros (which
    the preprocessor pastes as literals) and comments."""
    a = re.sub(r"/\*.*?\*/", "", arg, flags=re.S)
    a = re.sub(r'"(?:[^"\\]|\\.)*"', "", a)
    a = re.sub(r"\b[A-Z][A-Z0-9_]*\b(\([^)]*\))?", "", a)
    return a.strip() == "" and '"' in arg or re.fullmatch(r"\s*[A-Z][A-Z0-9_]*\s*", arg) is not None


def test_sql_only_through_parameters():
    """Static review of every C source: (1) no SQL text is built with
    snprintf/strcat & co., (2) every PQexec/PQsendQuery/PQexecParams/
    of_pg_exec gets a string literal (or a static const SQL string), the
    reviewed exceptions listed with their reason. Prints the inventory."""
    findings, inventory = [], []
    for d in C_DIRS:
        for f in sorted(d.rglob("*.c")):
            rel = str(f.relative_to(REPO_ROOT))
            text = f.read_text(errors="replace")
            static_sql = set(re.findall(r"static\s+const\s+char\s+(\w+)\s*\[\]\s*=", text))
            for line, func, args in _calls(text, BUILDERS):
                fmt = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
                if any(SQL_WORDS.search(s) for s in fmt):
                    findings.append(f"{rel}:{line}: {func} builds SQL text: {args[:120]!r}")
            for pattern, kind in ((NO_PARAM_CALLS, "no parameters"), (PARAM_CALLS, "parameters")):
                for line, func, args in _calls(text, pattern):
                    if re.match(r"\s*(of_status|PGresult|int)\s", args) or "const char *sql" in args:
                        continue  # a declaration/definition, not a call
                    sql = _sql_arg(func, args)
                    where = f"{rel}:{_enclosing_function(text, line)}"
                    if _is_literal(sql) or sql in static_sql:
                        inventory.append(f"{rel}:{line} {func} ({kind}): literal")
                    elif where in REVIEWED:
                        inventory.append(f"{rel}:{line} {func} ({kind}): `{sql}` reviewed: {REVIEWED[where]}")
                    else:
                        findings.append(f"{rel}:{line}: {func} with non-literal SQL `{sql}` in {where}")
    print("\nSQL call sites:\n  " + "\n  ".join(inventory))
    assert len(inventory) >= 10, inventory
    assert not findings, "SQL not through parameters:\n" + "\n".join(findings)


# --- containers ----------------------------------------------------------------------------


def test_containers_do_not_run_as_root():
    """The image's runtime user is not root and no compose service using it
    overrides that or adds privileges."""
    dockerfile = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    runtime = dockerfile.rsplit("FROM ", 1)[1]
    users = re.findall(r"^\s*USER\s+(\S+)", runtime, re.M)
    assert users and users[-1] not in ("root", "0", "0:0"), users
    m = re.search(r"useradd\b[^\n]*--uid\s+(\d+)", runtime)
    assert m and int(m.group(1)) != 0
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    ours = {n: s for n, s in compose["services"].items() if str(s.get("image", "")).startswith("orderflow")}
    assert {"payment-gw", "inventory", "notify"} <= set(ours), sorted(ours)
    for name, svc in ours.items():
        user = str(svc.get("user", "")).split(":")[0]
        assert user not in ("root", "0"), f"{name} runs as {user}"
        assert not svc.get("privileged"), name
        assert not svc.get("cap_add"), name
        assert "network_mode" not in svc or svc["network_mode"] != "host", name
