"""Abuse of the three HTTP surfaces (payment-gw, inventory, notify; all on
common/src/of_http.c over libmicrohttpd 0.9.75).

What an unfriendly client can throw at them: bodies from 1 KiB to 10 MiB
(Content-Length and chunked), slow and idle clients, a thousand idle
connections, pathological JSON (deep nesting, huge numbers, invalid UTF-8,
NUL bytes), header floods, and query/path abuse of inventory's stock API and
notify's GET /v1/deliveries. After every test each service must still run,
answer /healthz and serve normal requests; sanitizer reports (ASan build)
fail the test as everywhere else.

One stack (payment-gw, inventory, notify, a sink) is shared by the module to
keep the run short. payment-gw gets OF_HTTP_CONN_TIMEOUT=3s; inventory and
notify keep the default (30 s). The per-client limit and the HTTP limits of
every service have their own services (test_per_client_...).

OF_ABUSE_FULL=1 adds the heavy variants: many concurrent 10 MiB uploads
sent in full, a thousand idle connections to each service beyond the
limit, and the 30 s idle timeout of inventory and notify.

Latency: test_latency_under_abuse prints the p50/p99 of normal signed
payments with and without abuse running (figures, not asserted).
"""

from __future__ import annotations

import os
import resource
import secrets
import select
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import requests

from harness import config, payment, post_payment, sanitizer_findings, wait_until
from harness.services import Service, Services
from harness.sign import encode, signed_headers
from harness.sink import Sink
from harness.topics import Namespace
from harness.util import REPO_ROOT

FULL = os.environ.get("OF_ABUSE_FULL", "") not in ("", "0")
KiB = 1024
MiB = 1024 * KiB
GW_LIMIT = 64 * KiB          # CONTRACT section 2
INV_LIMIT = 4096             # inventory: PUT /v1/stock/{sku} body limit (inv_http.c)
GW_CONN_TIMEOUT_S = 3        # what the module's payment-gw gets
MHD_DEFAULT_CONN_LIMIT = 1024
ADMIN = {"Authorization": f"Bearer {config.ADMIN_TOKEN}"}
SKU = "SKU-ABUSE-MUG"


# --- the shared stack ----------------------------------------------------------


@dataclass
class Stack:
    factory: Services
    gw: Service
    inv: Service
    ntf: Service
    sink: Sink
    ns: Namespace

    @property
    def all(self) -> list[Service]:
        return [self.gw, self.inv, self.ntf]


def _raise_fd_limit(want: int = 8192) -> None:
    """This process opens thousands of sockets; the services (started after,
    they inherit it) must accept that many too, as they would under Docker
    or systemd whose default limits are far above 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@pytest.fixture(scope="module")
def stack(kafka, pg, tmp_path_factory):
    _raise_fd_limit()
    dbname = pg.create_database()
    ns = Namespace(f"t{secrets.token_hex(4)}.", retry_tiers=3)
    kafka.create_topics(ns.topics, partitions=config.TOPIC_PARTITIONS)
    sink = Sink().start()
    env = {
        "OF_KAFKA_BROKERS": kafka.bootstrap,
        "OF_PG_DSN": pg.dsn_for(dbname),
        "OF_TOPIC_PREFIX": str(ns),
        "OF_TOPIC_PARTITIONS": str(config.TOPIC_PARTITIONS),
        "OF_LOG_LEVEL": "debug",
        "OF_WEBHOOK_SECRETS": config.WEBHOOK_SECRET,
        "OF_ADMIN_TOKEN": config.ADMIN_TOKEN,
        "OF_NOTIFY_SECRET": config.NOTIFY_SECRET,
        "OF_MIGRATIONS_DIR": str(REPO_ROOT / "deploy" / "sql"),
        "OF_NOTIFY_RETRY_DELAYS": config.retry_delays(ns.retry_tiers),
        "OF_NOTIFY_EMAIL_URL": f"{sink.url}/email",
        "OF_NOTIFY_SMS_URL": f"{sink.url}/sms",
        "OF_NOTIFY_WEBHOOK_URL": f"{sink.url}/webhook",
    }
    factory = Services(env, tmp_path_factory.mktemp("abuse") / "services")
    try:
        gw = factory.start("payment-gw", env={"OF_HTTP_CONN_TIMEOUT": f"{GW_CONN_TIMEOUT_S}s"})
        inv = factory.start("inventory")
        ntf = factory.start("notify")
        r = inv.put(f"/v1/stock/{SKU}", json={"available": 1_000_000}, headers=ADMIN)
        assert r.status_code == 200, r.text
        yield Stack(factory, gw, inv, ntf, sink, ns)
    finally:
        problems = factory.teardown()
        sink.stop()
        try:
            kafka.delete_topics(ns.topics)
            pg.drop_database(dbname)
        except Exception:  # noqa: BLE001 - best effort
            pass
    if problems:
        logs = "\n".join(f"--- {t} ---\n{x}" for t, x in factory.log_sections(100))
        pytest.fail("service teardown found problems:\n  " + "\n  ".join(problems) + "\n" + logs,
                    pytrace=False)


@pytest.fixture(autouse=True)
def _watch(request, stack):
    """Attach the service logs to a failing test's report; after the test,
    fail it if a service died or logged a sanitizer report meanwhile."""
    request.node._of_services = stack.factory
    sizes = {s.name: len(s.log()) for s in stack.all}
    yield
    for s in stack.all:
        assert s.is_running(), f"{s.name} died (rc {s.returncode}):\n{s.log(80)}"
        found = sanitizer_findings(s.log()[sizes[s.name]:])
        assert not found, f"{s.name}: {found[0]}"


def assert_serving(st: Stack) -> None:
    """Every service is up and serves a normal request."""
    for s in st.all:
        assert s.is_running(), f"{s.name} is not running:\n{s.log(80)}"
        r = requests.get(s.url + "/healthz", timeout=10)
        assert r.status_code == 200, (s.name, r.status_code)
    r = post_payment(st.gw.url, payment(items=[f"{SKU}:1"]), timeout=20)
    assert r.status_code == 202, r.text
    r = st.inv.get(f"/v1/stock/{SKU}", timeout=20)
    assert r.status_code == 200, r.text
    r = st.ntf.get("/v1/deliveries", params={"order_id": "ord_probe"}, timeout=20)
    assert r.status_code == 200, r.text


# --- raw HTTP helpers ------------------------------------------------------------


def _status_of(data: bytes) -> int | None:
    if not data.startswith(b"HTTP/1."):
        return None
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def _recv_response(s: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Reads until the headers and Content-Length body are in, or the peer
    closes, or timeout. Returns (data, closed_by_peer)."""
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            part = s.recv(65536)
            if not part:
                return data, True
            data += part
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                cl = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        cl = int(v.strip() or 0)
                if len(body) >= cl:
                    return data, False
    except (ConnectionResetError, BrokenPipeError):
        return data, True
    except socket.timeout:
        pass
    return data, False


def raw_exchange(port: int, request: bytes, timeout: float = 15.0) -> tuple[int | None, bytes, bool]:
    """Sends request bytes (ignoring a reset while sending) and reads the
    answer. Returns (status or None, data, closed_by_peer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, closed = _recv_response(s, timeout)
        return _status_of(data), data, closed
    finally:
        s.close()


def upload(port: int, path: str, headers: dict[str, str], body_size: int, chunked: bool,
           method: str = "POST", chunk: int = 64 * KiB, send_body_first: bool = True,
           fill: bytes = b" ", stop_early: bool = True) -> dict:
    """Uploads a body of body_size bytes (Content-Length or chunked) and
    watches for an early answer between chunks: sending stops as soon as
    the server answers. Returns {"status", "sent", "seconds", "early"}
    where early means the answer came before the whole body was sent.

    send_body_first=False (Content-Length only): send the headers alone and
    wait for the answer before any body byte (a 413 by Content-Length must
    come without the body). stop_early=False: keep sending the whole body
    regardless of an answer (until the server closes)."""
    hdrs = {"Host": "x", **headers}
    if chunked:
        hdrs["Transfer-Encoding"] = "chunked"
    else:
        hdrs["Content-Length"] = str(body_size)
    head = f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in hdrs.items()) + b"\r\n"
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0
    early = False
    try:
        s.sendall(head)
        if not chunked and not send_body_first:
            data, _ = _recv_response(s, 15)
            return {"status": _status_of(data), "sent": 0, "seconds": time.monotonic() - t0,
                    "early": True, "data": data}
        piece = fill * chunk
        try:
            while sent < body_size:
                n = min(chunk, body_size - sent)
                buf = piece[:n]
                s.sendall((b"%x\r\n" % n + buf + b"\r\n") if chunked else buf)
                sent += n
                if stop_early and sent < body_size and select.select([s], [], [], 0.02)[0]:
                    early = True
                    break
            if chunked and not early:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            early = True
        data, _ = _recv_response(s, 30)
        return {"status": _status_of(data), "sent": sent, "seconds": time.monotonic() - t0,
                "early": early and sent < body_size, "data": data}
    finally:
        s.close()


def _padded_payment(size: int) -> bytes:
    """A valid payment padded with blanks to exactly size bytes."""
    b = encode(payment(items=[f"{SKU}:1"]))
    assert len(b) < size
    return b[:-1] + b" " * (size - len(b)) + b"}"


# --- bodies -------------------------------------------------------------------------


def test_payment_body_sizes_plain_and_chunked(stack):
    gw = stack.gw
    rows = []
    # Up to the limit: a signed valid payment is accepted, signed junk is a 400.
    for size in (1 * KiB, 16 * KiB, GW_LIMIT):
        for chunked in (False, True):
            good = _padded_payment(size)
            r = requests.post(gw.url + "/v1/payments", headers=signed_headers(good, config.WEBHOOK_SECRET),
                              data=iter([good[:size // 2], good[size // 2:]]) if chunked else good,
                              timeout=30)
            assert r.status_code == 202, (size, chunked, r.text)
            junk = b"{" + b"x" * (size - 1)
            r = requests.post(gw.url + "/v1/payments", headers=signed_headers(junk, config.WEBHOOK_SECRET),
                              data=iter([junk]) if chunked else junk, timeout=30)
            assert r.status_code == 400, (size, chunked, r.text)
            rows.append((size, chunked, 202, 400))
    # Over the limit: 413, by Content-Length before any body byte is read...
    hdrs = {"Content-Type": "application/json", "X-Signature": f"t={int(time.time())},v1={'0' * 64}"}
    for size in (GW_LIMIT + 1, 1 * MiB, 10 * MiB):
        res = upload(gw.port, "/v1/payments", hdrs, size, chunked=False, send_body_first=False)
        assert res["status"] == 413, (size, res["data"][:200])
        rows.append((size, False, 413, f"{res['seconds'] * 1000:.1f} ms, no body sent"))
    # ...and while counting a chunked upload: the answer comes long before
    # the client is done sending.
    for size in (GW_LIMIT + 1, 1 * MiB, 10 * MiB):
        res = upload(gw.port, "/v1/payments", hdrs, size, chunked=True, chunk=16 * KiB)
        assert res["status"] == 413, (size, res["data"][:200])
        if size >= 1 * MiB:
            assert res["early"], f"413 only after the whole {size}-byte chunked body was sent: {res}"
        rows.append((size, True, 413, f"{res['seconds'] * 1000:.1f} ms after {res['sent']} bytes"))
    # A Content-Length body over the limit sent in full anyway (clients that
    # do not wait for an interim answer) also ends in a 413.
    res = upload(gw.port, "/v1/payments", hdrs, 1 * MiB, chunked=False)
    assert res["status"] in (413, None), res
    print("\npayment-gw bodies (size, chunked, result):")
    for row in rows:
        print("  ", *row)
    assert_serving(stack)


def test_stock_put_and_deliveries_body_sizes(stack):
    inv, ntf = stack.inv, stack.ntf
    sku = f"SKU-BODY-{uuid.uuid4().hex[:8]}"
    for size in (64, 1 * KiB, INV_LIMIT):
        body = b'{"available": 7' + b" " * (size - 16) + b"}"
        assert len(body) == size
        for chunked in (False, True):
            r = requests.put(f"{inv.url}/v1/stock/{sku}", headers=ADMIN,
                             data=iter([body]) if chunked else body, timeout=30)
            assert r.status_code == 200, (size, chunked, r.text)
            assert r.json()["available"] == 7
    for size in (INV_LIMIT + 1, 64 * KiB, 10 * MiB):
        res = upload(inv.port, f"/v1/stock/{sku}", ADMIN, size, chunked=False, method="PUT",
                     send_body_first=False)
        assert res["status"] == 413, (size, res["data"][:200])
        res = upload(inv.port, f"/v1/stock/{sku}", ADMIN, size, chunked=True, method="PUT", chunk=4 * KiB)
        assert res["status"] == 413, (size, res["data"][:200])
        if size >= 64 * KiB:
            assert res["early"], res
    # Without the token a large body is refused too (413 before auth, or 401).
    res = upload(inv.port, f"/v1/stock/{sku}", {}, 1 * MiB, chunked=True, method="PUT")
    assert res["status"] in (401, 413), res
    assert inv.get(f"/v1/stock/{sku}").json()["available"] == 7
    # notify's only API route takes no body: any body is a 413.
    for size, chunked in ((1, False), (1 * KiB, True), (10 * MiB, False), (10 * MiB, True)):
        res = upload(ntf.port, "/v1/deliveries?order_id=o1", {}, size, chunked=chunked, method="GET",
                     send_body_first=chunked)
        assert res["status"] == 413, (size, chunked, res["data"][:200])
    assert_serving(stack)


@pytest.mark.skipif(not FULL, reason="OF_ABUSE_FULL=1: many concurrent 10 MiB uploads sent in full")
def test_many_concurrent_10mib_uploads(stack):
    """24 clients at once push 10 MiB each, all the way (the server has
    answered 413 and drains or drops the rest); everything stays up."""
    targets = [(stack.gw.port, "/v1/payments", "POST", {"Content-Type": "application/json"}),
               (stack.inv.port, f"/v1/stock/{SKU}", "PUT", ADMIN),
               (stack.ntf.port, "/v1/deliveries?order_id=o", "GET", {})]
    results: list[dict] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        port, path, method, hdrs = targets[i % 3]
        try:
            res = upload(port, path, hdrs, 10 * MiB, chunked=bool(i % 2), method=method,
                         chunk=256 * KiB, stop_early=False)
        except OSError as exc:
            res = {"status": None, "error": repr(exc)}
        with lock:
            results.append(res)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    statuses = [r.get("status") for r in results]
    sent = sum(r.get("sent", 0) for r in results)
    print(f"\n24 x 10 MiB uploads: statuses {sorted(statuses, key=str)}; {sent / MiB:.0f} MiB sent in all")
    assert all(s in (413, None) for s in statuses), statuses
    assert statuses.count(413) >= len(statuses) // 2, statuses
    assert_serving(stack)


# --- slow and idle clients -------------------------------------------------------------


def _closed_within(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closed sock (None if still open after timeout)."""
    t0 = time.monotonic()
    sock.settimeout(timeout)
    try:
        while True:
            part = sock.recv(4096)
            if not part:
                return time.monotonic() - t0
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - t0
    except socket.timeout:
        return None


def test_stalled_clients_are_dropped_by_the_connection_timeout(stack):
    gw = stack.gw
    kinds = {
        "connected, silent": b"",
        "headers unfinished": b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Le",
        "body unfinished": (b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 1000\r\n\r\n{\"payment_id\":"),
        "idle keep-alive": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    socks = {}
    opened = {}
    for name, data in kinds.items():
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        opened[name] = time.monotonic()
        if data:
            s.sendall(data)
        socks[name] = s
    # Others are served meanwhile.
    for _ in range(5):
        assert post_payment(gw.url, payment(items=[f"{SKU}:1"]), timeout=10).status_code == 202
    closed = {}
    for name, s in socks.items():
        if name == "idle keep-alive":
            data, _ = _recv_response(s, 10)
            assert _status_of(data) == 200, data
        took = _closed_within(s, 6 * GW_CONN_TIMEOUT_S + 10)
        closed[name] = None if took is None else time.monotonic() - opened[name]
        s.close()
    print(f"\npayment-gw (OF_HTTP_CONN_TIMEOUT={GW_CONN_TIMEOUT_S}s) closed stalled clients after:",
          {k: (f"{v:.1f}s" if v is not None else "never") for k, v in closed.items()})
    assert all(v is not None for v in closed.values()), closed
    assert_serving(stack)


def _trickle(port: int, stop: threading.Event, interval: float, out: list, body: bool = False) -> None:
    """A slowloris: one header byte (or, with body=True, one body byte
    after complete headers) every `interval` seconds, never done."""
    if body:
        head = (b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 60000\r\n\r\n")
        data = b" " * 60000
    else:
        head = b""
        data = b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100000
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if head:
            s.sendall(head)
    except OSError:
        out.append("connect failed")
        return
    t0 = time.monotonic()
    i = 0
    try:
        while not stop.is_set():
            try:
                s.sendall(data[i:i + 1])
                i += 1
            except OSError:
                out.append(f"dropped after {time.monotonic() - t0:.1f}s")
                return
            r, _, _ = select.select([s], [], [], interval)
            if r:
                try:
                    if s.recv(4096) == b"":
                        out.append(f"dropped after {time.monotonic() - t0:.1f}s")
                        return
                except OSError:
                    out.append(f"dropped after {time.monotonic() - t0:.1f}s")
                    return
        out.append(f"still open after {time.monotonic() - t0:.1f}s ({i} bytes)")
    finally:
        s.close()


def test_trickling_slowloris_cannot_hold_every_connection_slot(stack):
    """Clients that send one header (or body) byte per second never go idle, so an
    idle timeout alone never drops them. With every connection slot held
    by such clients, a normal payment must still get through within five
    connection timeouts (of_http.h and payment-gw's README promise that
    slow clients are dropped). docs/SECURITY.md finding F1: fails today."""
    gw = stack.factory.start("payment-gw", env={"OF_HTTP_CONN_TIMEOUT": "2s",
                                                "OF_HTTP_MAX_CONNECTIONS": "4"})
    stop = threading.Event()
    out: list[str] = []
    threads = [threading.Thread(target=_trickle, args=(gw.port, stop, 1.0, out, i % 2 == 1), daemon=True)
               for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    try:
        try:
            r = post_payment(gw.url, payment(items=[f"{SKU}:1"]), timeout=10)
            result = f"HTTP {r.status_code} after {time.monotonic() - t0:.1f}s"
        except requests.RequestException as exc:
            r = None
            result = f"{type(exc).__name__} after {time.monotonic() - t0:.1f}s"
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    print(f"\nslowloris (2 header + 2 body tricklers, 4 slots, 2 s timeout): normal payment: {result}; "
          f"tricklers: {out}")
    assert r is not None and r.status_code == 202, (
        f"a normal payment was not served while 4 clients trickling one byte per second "
        f"held all 4 connection slots ({result}; tricklers: {out})")
    assert gw.stop() == 0


def _open_idle(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    return socks


def _count_closed(socks: list[socket.socket]) -> int:
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def test_thousand_idle_connections_per_service(stack):
    """1,000 idle connections to each service at once (limit 1024 each):
    normal requests keep being served meanwhile."""
    n = 1000
    socks = {s.name: _open_idle(s.port, n) for s in stack.all}
    try:
        t0 = time.monotonic()
        assert_serving(stack)
        print(f"\n{n} idle connections on each service: normal requests served in "
              f"{time.monotonic() - t0:.2f}s")
        # payment-gw drops its idle ones after its 3 s timeout.
        wait_until(lambda: _count_closed(socks["payment-gw"]) == n, timeout=6 * GW_CONN_TIMEOUT_S + 10,
                   message="payment-gw to close its idle connections")
    finally:
        for lst in socks.values():
            for s in lst:
                s.close()
    assert_serving(stack)


def test_beyond_the_connection_limit(stack):
    """More idle connections than the limit (1024): libmicrohttpd stops
    accepting, new connections wait in the listen backlog (they are not
    refused) and are served once the idle timeout frees slots. Documents
    the behaviour with payment-gw's 3 s timeout; prints the wait."""
    gw = stack.gw
    socks = _open_idle(gw.port, MHD_DEFAULT_CONN_LIMIT + 76)
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        r = post_payment(gw.url, payment(items=[f"{SKU}:1"]), timeout=6 * GW_CONN_TIMEOUT_S + 10)
        waited = time.monotonic() - t0
        assert r.status_code == 202, r.text
        closed = _count_closed(socks)
        print(f"\n{len(socks)} idle connections (limit {MHD_DEFAULT_CONN_LIMIT}): a new payment "
              f"waited {waited:.1f}s (idle timeout {GW_CONN_TIMEOUT_S}s); {closed} idle ones "
              f"closed by then")
    finally:
        for s in socks:
            s.close()
    assert_serving(stack)


def _refused_at_once(port: int, source: str = "127.0.0.1") -> bool:
    """True when the server closes a new connection from source without
    answering a request on it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    try:
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return True
        return _closed_within(s, 5) is not None
    finally:
        s.close()


def _healthz_raw(port: int, source: str) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _read_all(s)
    finally:
        s.close()


def _read_all(s: socket.socket) -> bytes:
    out = b""
    s.settimeout(10)
    try:
        while True:
            part = s.recv(65536)
            if not part:
                return out
            out += part
    except (ConnectionResetError, socket.timeout):
        return out


def _hold_connections(port: int, n: int, source: str) -> list[socket.socket]:
    """n idle connections from source (a loopback address of its own, so
    that no other client of the test process, such as a readiness probe's
    connection still waiting for the garbage collector, counts against
    the per-address limit), each accepted and kept by the server."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(source, 0)) for _ in range(n)]
    time.sleep(0.5)
    assert _count_closed(socks) == 0, "the server closed a connection below the limit"
    return socks


def _nofile_of(pid: int) -> tuple[int, int]:
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit")


def test_services_raise_their_open_file_limit(services):
    """SECURITY.md F13: started with a soft RLIMIT_NOFILE of 256 (below the
    1024-connection limit), each service raises it to the hard limit at
    start and says so; the connection limit then fits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"hard open-file limit {hard}: nothing to raise to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        started = [services.start(name, wait_ready=False)
                   for name in ("payment-gw", "inventory", "notify")]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for svc in started:
        svc.wait_ready()
        got_soft, got_hard = _nofile_of(svc.pid)
        assert got_soft == got_hard == hard, (svc.name, got_soft, got_hard, hard)
        assert "raised the open-file limit (RLIMIT_NOFILE) from 256 to" in svc.log(), svc.name


HTTP_LIMIT_VARS = {
    "OF_HTTP_MAX_CONNECTIONS_PER_IP": "-1",
    "OF_HTTP_MAX_CONNECTIONS": "0",
    "OF_HTTP_CONN_TIMEOUT": "soon",
    "OF_HTTP_CONN_MEMORY_LIMIT": "1k",
}


def test_per_client_connection_limit_and_http_limits_in_every_service(services):
    """SECURITY.md F2: every service reads OF_HTTP_MAX_CONNECTIONS,
    OF_HTTP_MAX_CONNECTIONS_PER_IP, OF_HTTP_CONN_TIMEOUT and
    OF_HTTP_CONN_MEMORY_LIMIT (a bad value stops it, exit 2, naming the
    variable). With a per-client limit of 4, a fifth connection from the
    same address is closed at once while another address (127.0.0.2) is
    served; the memory limit bounds the headers (431)."""
    names = ("payment-gw", "inventory", "notify")
    for name in names:
        for var, val in HTTP_LIMIT_VARS.items():
            svc = services.start(name, env={var: val}, wait_ready=False)
            assert svc.wait_exit(30) == 2, (name, var)
            assert var in svc.log(), (name, var, svc.log(20))
    env = {"OF_HTTP_MAX_CONNECTIONS_PER_IP": "4", "OF_HTTP_CONN_MEMORY_LIMIT": "16384"}
    for name in names:
        svc = services.start(name, env=env)
        idle = _hold_connections(svc.port, 4, "127.0.0.3")
        try:
            assert _refused_at_once(svc.port, "127.0.0.3"), \
                f"{name}: a fifth connection from 127.0.0.3 was served"
            assert _healthz_raw(svc.port, "127.0.0.2").startswith(b"HTTP/1.1 200"), name
        finally:
            for s in idle:
                s.close()
        wait_until(lambda: _healthz_raw(svc.port, "127.0.0.3").startswith(b"HTTP/1.1 200"),
                   timeout=10, message=f"{name} to serve 127.0.0.3 again")
        # 20 KiB of headers do not fit in 16 KiB of connection memory.
        big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n"
        s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
        try:
            s.sendall(big)
            assert _read_all(s).startswith(b"HTTP/1.1 431"), name
        finally:
            s.close()
        assert "per client address" in svc.log(), name
        svc.stop()


@pytest.mark.skipif(not FULL, reason="OF_ABUSE_FULL=1: 30 s idle timeout of inventory and notify")
def test_inventory_and_notify_drop_idle_connections_after_30s(stack):
    t0 = time.monotonic()
    socks = {s.name: socket.create_connection(("127.0.0.1", s.port), timeout=10)
             for s in (stack.inv, stack.ntf)}
    for name, s in socks.items():
        took = _closed_within(s, 50)
        s.close()
        print(f"\n{name}: idle connection closed after "
              f"{'never' if took is None else f'{time.monotonic() - t0:.1f}s'}")
        assert took is not None, f"{name} kept an idle connection open for 50 s"


@pytest.mark.skipif(not FULL, reason="OF_ABUSE_FULL=1: beyond the limit on inventory and notify")
def test_beyond_the_limit_on_inventory_and_notify(stack):
    for svc in (stack.inv, stack.ntf):
        socks = _open_idle(svc.port, MHD_DEFAULT_CONN_LIMIT + 20)
        try:
            t0 = time.monotonic()
            r = requests.get(svc.url + "/healthz", timeout=60)
            print(f"\n{svc.name}: beyond the limit, /healthz {r.status_code} after "
                  f"{time.monotonic() - t0:.1f}s")
            assert r.status_code == 200
        finally:
            for s in socks:
                s.close()
    assert_serving(stack)


# --- pathological JSON --------------------------------------------------------------


def _signed_post(gw: Service, body: bytes) -> requests.Response:
    return requests.post(gw.url + "/v1/payments", data=body,
                         headers=signed_headers(body, config.WEBHOOK_SECRET), timeout=30)


def test_pathological_json_to_payment_gw(stack):
    gw = stack.gw
    p = encode(payment(items=[f"{SKU}:1"]))
    amount = b'"amount_cents":4599'
    assert amount in p and b'"cus_test"' in p
    cases = {
        "100k '[' (over the limit)": (b"[" * 100_000, 413),
        "65k '['": (b"[" * 65_000, 400),
        "21k '{\"a\":'": (b'{"a":' * 13_000, 400),
        "deep array in an unknown field": (p[:-1] + b',"x":' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400),
        "amount 1e999999": (p.replace(amount, b'"amount_cents":1e999999'), 400),
        "amount -1e999999": (p.replace(amount, b'"amount_cents":-1e999999'), 400),
        "amount 30 digits": (p.replace(amount, b'"amount_cents":123456789012345678901234567890'), 400),
        "amount 1e-999999": (p.replace(amount, b'"amount_cents":1e-999999'), 400),
        "amount 4 KiB of digits": (p.replace(amount, b'"amount_cents":' + b"9" * 4096), 400),
        "amount NaN": (p.replace(amount, b'"amount_cents":NaN'), 400),
        "amount Infinity": (p.replace(amount, b'"amount_cents":Infinity'), 400),
        "amount 0x10": (p.replace(amount, b'"amount_cents":0x10'), 400),
        "invalid UTF-8": (p.replace(b'"cus_test"', b'"cus_\xff\xfe"'), 400),
        "overlong UTF-8": (p.replace(b'"cus_test"', b'"cus_\xc0\xaf"'), 400),
        "UTF-8 surrogate": (p.replace(b'"cus_test"', b'"cus_\xed\xa0\x80"'), 400),
        "truncated UTF-8 at the end": (p[:-1] + b',"x":"\xe2\x82"}', 400),
        "escaped lone surrogate": (p.replace(b'"cus_test"', b'"cus_\\ud800"'), 400),
        "raw NUL in a string": (p.replace(b'"cus_test"', b'"cus_\x00x"'), 400),
        "escaped NUL": (p.replace(b'"cus_test"', b'"cus_\\u0000x"'), 400),
        "NUL after the value": (p + b"\x00", 400),
        "NUL before the value": (b"\x00" + p, 400),
        "only NULs": (b"\x00" * 1000, 400),
        "trailing garbage": (p + b"{}", 400),
        "empty": (b"", 400),
        "30k members": (b"{" + b",".join(b'"k%d":1' % i for i in range(6_000)) + b"}", 400),
        "2000 items": (p.replace(f'"items":[{{"sku":"{SKU}","qty":1}}]'.encode(), b'"items":['
                       + b",".join(b'{"sku":"S%d","qty":1}' % i for i in range(2000)) + b"]"), 400),
        "duplicate payment_id": (p[:-1] + b',"payment_id":"other"}', 400),
    }
    got = {}
    for name, (body, want) in cases.items():
        r = _signed_post(gw, body)
        got[name] = r.status_code
        assert r.status_code == want, (name, r.status_code, r.text[:300])
        if want != 413:
            assert r.headers["Content-Type"].startswith("application/problem+json"), name
            assert r.json()["status"] == want
    # Pathological values in unknown members: ignored (202) or refused (400), never more.
    for name, extra in (("unknown 1e999999", b'1e999999'), ("unknown 30 digits", b"1" * 30),
                        ("unknown deep 900", b"[" * 900 + b"]" * 900)):
        r = _signed_post(gw, encode(payment(items=[f"{SKU}:1"]))[:-1] + b',"x":' + extra + b"}")
        got[name] = r.status_code
        assert r.status_code in (202, 400), (name, r.text)
    print("\npathological JSON -> payment-gw:", got)
    assert_serving(stack)


def test_pathological_stock_put(stack):
    inv = stack.inv
    sku = f"SKU-PUT-{uuid.uuid4().hex[:8]}"
    assert inv.put(f"/v1/stock/{sku}", json={"available": 11}, headers=ADMIN).status_code == 200
    bad_bodies = {
        "1e999999": b'{"available": 1e999999}',
        "-1e999999": b'{"available": -1e999999}',
        "30 digits": b'{"available": 123456789012345678901234567890}',
        "2^63": b'{"available": 9223372036854775808}',
        "over 10^15": b'{"available": 1000000000000001}',
        "negative": b'{"available": -1}',
        "fraction": b'{"available": 1.5}',
        "string": b'{"available": "5"}',
        "null": b'{"available": null}',
        "missing": b'{"avail": 5}',
        "array": b"[5]",
        "4000 '['": b"[" * 4000,
        "deep object": b'{"available": 5, "x": ' + b"[" * 1500 + b"]" * 1500 + b"}",
        "invalid UTF-8": b'{"available": 5, "x": "\xff"}',
        "only NULs": b"\x00" * 100,
        "empty": b"",
    }
    got = {}
    for name, body in bad_bodies.items():
        r = requests.put(f"{inv.url}/v1/stock/{sku}", data=body, headers=ADMIN, timeout=30)
        got[name] = r.status_code
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert inv.get(f"/v1/stock/{sku}").json()["available"] == 11, name
    # Garbage around a valid {"available": 12}: refused like the gateway
    # refuses it (SECURITY.md F5, fixed; cJSON alone accepted all five).
    lax = {
        "raw NUL in an ignored member": b'{"available": 12, "x": "a\x00b"}',
        "raw control characters in an ignored member": b'{"available": 12, "x": "\x01\x1f"}',
        "NUL after the value": b'{"available": 12}\x00',
        "trailing garbage": b'{"available": 12} {"available": 13}',
        "duplicate member": b'{"available": 12, "available": 13}',
    }
    for name, body in lax.items():
        r = requests.put(f"{inv.url}/v1/stock/{sku}", data=body, headers=ADMIN, timeout=30)
        got[name] = r.status_code
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json"), name
        assert inv.get(f"/v1/stock/{sku}").json()["available"] == 11, name
    # Path abuse: never a 5xx, never a stock row for a bad sku.
    for bad in ("a" * 65, "a" * 5000, "%00", "x%27%20OR%201%3D1--", "..%2F..%2Fetc%2Fpasswd",
                "%ff%fe", "sku%2Fslash", "x%0d%0aSet-Cookie:%20a=1", "%F0%9F%92%A9"):
        r = requests.put(f"{inv.url}/v1/stock/{bad}", json={"available": 1}, headers=ADMIN, timeout=30)
        assert r.status_code in (400, 404), (bad, r.status_code, r.text)
        assert "Set-Cookie" not in r.headers
        r = requests.get(f"{inv.url}/v1/stock/{bad}", timeout=30)
        assert r.status_code in (400, 404), (bad, r.status_code)
    for wait in ("1e999", "nan", "inf", "-1", "9" * 400, "%00", "0x10", "1,5", "+1"):
        r = requests.get(f"{inv.url}/v1/orders/ord_x?wait={wait}", timeout=40)
        assert r.status_code == 400, (wait, r.status_code, r.text)
    print("\npathological PUT /v1/stock bodies:", got)
    assert inv.get(f"/v1/stock/{sku}").json()["available"] == 11
    assert_serving(stack)


def test_deliveries_query_abuse(stack):
    ntf = stack.ntf
    base = f"{ntf.url}/v1/deliveries"
    cases = {
        "129 chars": ("a" * 129, 400),
        "7 KiB": ("a" * 7000, 400),
        "60 KiB": ("a" * 60000, None),      # 400, or 414/431 by the server's limits
        "NUL": ("%00", 400),
        "SQL": ("'%20OR%20'1'%3D'1", 400),
        "SQL comment": ("x';DROP%20TABLE%20notify_deliveries;--", 400),
        "invalid UTF-8": ("%ff%fe", 400),
        "CRLF": ("a%0d%0aX-Injected:%201", 400),
        "percent garbage": ("%zz%", 400),
        "empty": ("", 400),
        "128 chars": ("a" * 128, 200),
    }
    got = {}
    for name, (oid, want) in cases.items():
        try:
            r = requests.get(f"{base}?order_id={oid}", timeout=30)
            status = r.status_code
        except requests.ConnectionError:
            status = None  # closed by the server: acceptable for the oversized one only
        got[name] = status
        if want is None:
            assert status in (400, 414, 431, None), (name, status)
        else:
            assert status == want, (name, status)
            assert "X-Injected" not in r.headers
    # Many / repeated arguments (5000 arguments: see test_header_floods).
    r = requests.get(base + "?" + "&".join(f"order_id=o{i}" for i in range(200)), timeout=30)
    assert r.status_code in (200, 400, 414, 431), r.status_code
    got["200 order_id arguments"] = r.status_code
    print("\nGET /v1/deliveries?order_id=<abuse>:", got)
    assert_serving(stack)


def test_encoded_nul_in_ids_is_rejected_not_truncated(stack):
    """A %00 inside a path or query id must make the id invalid. The
    services get ids as C strings from of_http (libmicrohttpd decodes %00
    into a NUL), so "SKU-A%00junk" is read as "SKU-A" and acted upon:
    PUT /v1/stock/SKU-A%00junk sets the stock of SKU-A."""
    inv, ntf = stack.inv, stack.ntf
    sku = f"SKU-NUL-{uuid.uuid4().hex[:8]}"
    assert inv.put(f"/v1/stock/{sku}", json={"available": 1}, headers=ADMIN).status_code == 200
    results = {
        "PUT /v1/stock/<sku>%00junk": requests.put(f"{inv.url}/v1/stock/{sku}%00junk", json={"available": 99},
                                                   headers=ADMIN, timeout=30).status_code,
        "GET /v1/stock/<sku>%00junk": requests.get(f"{inv.url}/v1/stock/{sku}%00junk", timeout=30).status_code,
        "GET /v1/deliveries?order_id=ord_x%00junk": requests.get(
            f"{ntf.url}/v1/deliveries?order_id=ord_x%00junk", timeout=30).status_code,
        "GET /v1/orders/ord_x?wait=0%00junk": requests.get(
            f"{inv.url}/v1/orders/ord_x?wait=0%00junk", timeout=30).status_code,
    }
    after = inv.get(f"/v1/stock/{sku}").json()["available"]
    print(f"\nencoded NUL in ids: {results}; stock of {sku} afterwards: {after}")
    assert after == 1, f"PUT /v1/stock/{sku}%00junk changed the stock of {sku} to {after}: {results}"
    assert results["GET /v1/orders/ord_x?wait=0%00junk"] == 400, results
    assert all(code in (400, 404) for code in results.values()), results
    assert_serving(stack)


def test_abusive_paths_do_not_reach_metrics_or_logs_verbatim(stack):
    """Unknown paths are counted under one route label ("unmatched"), so
    scanning cannot grow the metrics without bound, and the access log
    names the route, not the raw path."""
    marker = f"zz{uuid.uuid4().hex[:10]}"
    sess = requests.Session()
    for s in stack.all:
        before = len(s.metrics())
        for i in range(100):
            r = sess.get(f"{s.url}/{marker}/{i}%0a%22x", timeout=30)
            assert r.status_code == 404, r.status_code
        text = s.metrics()
        assert marker not in text, s.name
        assert len(text) - before < 4096, (s.name, before, len(text))
        assert 'route="unmatched"' in text, s.name
        assert marker not in s.log(), f"{s.name} logged a raw request path"
    assert_serving(stack)


# --- header floods ---------------------------------------------------------------------


def test_header_floods(stack):
    targets = {
        "payment-gw": (stack.gw.port, "POST /v1/payments"),
        "inventory": (stack.inv.port, f"PUT /v1/stock/{SKU}"),
        "notify": (stack.ntf.port, "GET /v1/deliveries?order_id=o"),
    }
    # name -> (extra header bytes, too big for the 32 KiB per-connection
    # memory: must be refused (431) or closed)
    floods = {
        "20k headers": (b"".join(b"X-H%d: v\r\n" % i for i in range(20_000)), True),
        "1 MiB of headers": (b"".join(b"X-%d: " % i + b"b" * 1000 + b"\r\n" for i in range(1024)), True),
        "one 200 KiB header": (b"X-Big: " + b"a" * 200 * KiB + b"\r\n", True),
        "one 60 KiB header": (b"X-Big: " + b"a" * 60 * KiB + b"\r\n", False),
        "5000 cookies": (b"Cookie: " + b"; ".join(b"c%d=1" % i for i in range(5000)) + b"\r\n", False),
        "NUL in a header": (b"X-N: a\x00b\r\n", False),
        "obs-fold": (b"X-A: a\r\n b\r\n", False),
        "header without colon": (b"NoColonHere\r\n", False),
    }
    got: dict[str, dict[str, object]] = {}
    for svc, (port, line) in targets.items():
        got[svc] = {}
        for name, (extra, too_big) in floods.items():
            req = line.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"Content-Length: 0\r\n\r\n"
            status, data, closed = raw_exchange(port, req, timeout=20)
            got[svc][name] = status if status is not None else ("closed" if closed else "no answer")
            # A normal answer or a 4xx; never a 5xx, never a hang.
            assert status is not None or closed, (svc, name, "no answer and not closed")
            assert status is None or 400 <= status < 500 or status in (200, 202), (svc, name, data[:200])
            if too_big:
                assert status in (None, 413, 414, 431), (svc, name, data[:200])
        # A huge URL, another HTTP version.
        for name, req in (("200 KiB URL", b"GET /" + b"a" * 200 * KiB + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
                          ("HTTP/9.9", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n")):
            status, data, closed = raw_exchange(port, req, timeout=20)
            got[svc][name] = status if status is not None else ("closed" if closed else "no answer")
            assert status in (400, 414, 431, 505) or (status is None and closed), (svc, name, data[:200])
        # HTTP/1.1 without Host: libmicrohttpd 0.9.75 serves it (RFC 9112
        # wants a 400); harmless without a proxy in front. Never a 5xx.
        status, data, closed = raw_exchange(port, b"GET /healthz HTTP/1.1\r\n\r\n", timeout=20)
        got[svc]["no Host"] = status
        assert status is None or status < 500, (svc, data[:200])
    # These get no answer from libmicrohttpd 0.9.75: the connection is
    # held like an idle one until the connection timeout (counts against
    # the connection limit; docs/SECURITY.md). Sent to every service at
    # once; the answer is waited for 2 s.
    held = {"garbage request line": b"\x00\xff\xfe GARBAGE\r\n\r\n",
            "5000 query arguments": b"GET /healthz?" + b"&".join(b"a%d=1" % i for i in range(5000))
            + b" HTTP/1.1\r\nHost: x\r\n\r\n"}
    jobs = [(svc, name, port, req) for svc, (port, _) in targets.items() for name, req in held.items()]
    answers: dict[tuple[str, str], tuple] = {}

    def run(job) -> None:
        svc, name, port, req = job
        answers[(svc, name)] = raw_exchange(port, req, timeout=2)

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for (svc, name), (status, data, closed) in answers.items():
        got[svc][name] = status if status is not None else ("closed" if closed else "held, no answer")
        assert status is None or 400 <= status < 500, (svc, name, data[:200])
    assert len(answers) == len(jobs)
    # Signature and token headers stuffed with junk.
    body = encode(payment(items=[f"{SKU}:1"]))
    t = int(time.time())
    for sig in (f"t={t}," + ",".join(["v1=" + "0" * 64] * 600),
                f"t={t},v1=" + "0" * 40000,
                f"t={'9' * 5000},v1={'0' * 64}",
                "t=" + ",t=".join(str(t) for _ in range(3000)),
                "\x7f" * 1000):
        r = requests.post(stack.gw.url + "/v1/payments", data=body, timeout=30,
                          headers={"Content-Type": "application/json", "X-Signature": sig})
        assert r.status_code in (401, 431), (sig[:40], r.status_code, r.text)
    for auth in ("Bearer " + "A" * 40000, "Basic " + "=" * 3000, "Bearer",
                 "Bearer " + config.ADMIN_TOKEN[:-1] + "\x00"):
        r = requests.put(f"{stack.inv.url}/v1/stock/{SKU}", json={"available": 1}, timeout=30,
                         headers={"Authorization": auth})
        assert r.status_code in (400, 401, 431), (auth[:40], r.status_code)
    print("\nheader floods:")
    for svc, res in got.items():
        print(f"  {svc}: {res}")
    assert_serving(stack)


def test_malformed_requests_are_counted_not_logged_as_warnings(stack):
    """SECURITY.md F9: what libmicrohttpd refuses before routing (431 header
    floods, 414 URLs, 400 chunked garbage) is logged at debug, never warn,
    and counted in orderflow_http_rejected_total{reason}."""
    floods = {
        "headers_too_large": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40 * KiB
                              + b"\r\n\r\n", 431, 30),
        "uri_too_long": (b"GET /" + b"a" * 40 * KiB + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, 20),
        "malformed": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nabc\r\n0\r\n\r\n", 400, 20),
    }
    for svc in stack.all:
        start = len(svc.log())
        before = {reason: svc.metric("orderflow_http_rejected_total", reason=reason) for reason in floods}
        for reason, (req, status, n) in floods.items():
            for _ in range(n):
                got, data, closed = raw_exchange(svc.port, req, timeout=10)
                assert got in (status, None), (svc.name, reason, data[:200])
        for reason, (_, _, n) in floods.items():
            after = svc.metric("orderflow_http_rejected_total", reason=reason)
            assert after - before[reason] >= n, (svc.name, reason, before[reason], after)
        lines = svc.log()[start:].splitlines()
        warned = [x for x in lines if '"level":"warn"' in x and "microhttpd" in x]
        assert not warned, (svc.name, warned[:3])
        assert any('"level":"debug"' in x and "microhttpd" in x for x in lines), svc.name
    assert_serving(stack)


# --- latency of normal payments while under abuse -----------------------------------------------


def _payment_latencies(url: str, n: int, workers: int = 4) -> tuple[list[float], list[int]]:
    lat: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    per = n // workers

    def worker() -> None:
        sess = requests.Session()
        for _ in range(per):
            t0 = time.monotonic()
            try:
                code = post_payment(url, payment(items=[f"{SKU}:1"]), session=sess, timeout=30).status_code
            except requests.RequestException:
                code = 0
            dt = time.monotonic() - t0
            with lock:
                lat.append(dt)
                statuses.append(code)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return lat, statuses


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))] * 1000.0


class _Abuse:
    """Background abuse while latency is measured: idle connections to
    every service, trickling slowloris clients, chunked 10 MiB uploads,
    64 KiB junk bodies, header floods and malformed JSON."""

    def __init__(self, st: Stack):
        self.st = st
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.idle: list[socket.socket] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def _loop(self, what: str, fn) -> None:
        while not self.stop.is_set():
            try:
                fn()
            except OSError:
                pass
            self._count(what)

    def start(self) -> "_Abuse":
        st = self.st
        for s in st.all:
            self.idle += _open_idle(s.port, 200)
        trickle_out: list[str] = []
        for _ in range(20):
            self.threads.append(threading.Thread(target=_trickle, args=(st.gw.port, self.stop, 0.5, trickle_out),
                                                 daemon=True))
        hdrs = {"Content-Type": "application/json"}
        junk = b"[" * 60_000
        flood = b"POST /v1/payments HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n"
        jobs = {
            "10 MiB chunked upload": lambda: upload(st.gw.port, "/v1/payments", hdrs, 10 * MiB, chunked=True,
                                                    chunk=64 * KiB),
            "64 KiB nested JSON": lambda: _signed_post(st.gw, junk),
            "header flood": lambda: raw_exchange(st.gw.port, flood, timeout=10),
            "1 MiB PUT": lambda: upload(st.inv.port, f"/v1/stock/{SKU}", ADMIN, 1 * MiB, chunked=True,
                                        method="PUT"),
            "bad deliveries query": lambda: requests.get(st.ntf.url + "/v1/deliveries?order_id=%ff", timeout=10),
        }
        for what, fn in jobs.items():
            self.threads.append(threading.Thread(target=self._loop, args=(what, fn), daemon=True))
        for t in self.threads:
            t.start()
        return self

    def finish(self) -> dict[str, int]:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        for s in self.idle:
            s.close()
        return dict(self.counts)


def test_latency_under_abuse(stack):
    """Normal signed payments keep being accepted while the gateway (and
    the other services) are abused; p50/p99 printed, not asserted."""
    n = 200 if not FULL else 1000
    _payment_latencies(stack.gw.url, 20)  # warm-up
    base, base_codes = _payment_latencies(stack.gw.url, n)
    assert set(base_codes) == {202}, base_codes
    abuse = _Abuse(stack).start()
    try:
        time.sleep(1.0)
        under, under_codes = _payment_latencies(stack.gw.url, n)
    finally:
        counts = abuse.finish()
    print(f"\nnormal signed payments, {n} per run, 4 clients (ms):")
    print(f"  without abuse: p50 {_pct(base, 50):7.1f}  p99 {_pct(base, 99):7.1f}  max {max(base) * 1000:7.1f}")
    print(f"  under abuse:   p50 {_pct(under, 50):7.1f}  p99 {_pct(under, 99):7.1f}  max {max(under) * 1000:7.1f}")
    print(f"  abuse meanwhile: 600 idle connections, 20 trickling clients, {counts}")
    assert set(under_codes) == {202}, {c: under_codes.count(c) for c in set(under_codes)}
    assert_serving(stack)
