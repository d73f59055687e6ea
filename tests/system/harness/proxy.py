"""A scriptable TCP proxy for connection-fault tests (a small, dependency-free
stand-in for toxiproxy), and a Kafka broker that advertises a proxy.

    proxy = TcpProxy("127.0.0.1", pg.port, name="pg").start()
    dsn = pg.dsn_for(db.name).replace(f"port={pg.port}", f"port={proxy.port}")
    proxy.set_latency(200)      # every chunk, both directions, +200 ms
    proxy.disable()             # cut: live connections closed, new ones refused
    proxy.enable()              # restore (latency kept; set_latency(0) to clear)
    proxy.stop()

The proxy runs an asyncio loop in a daemon thread; the control methods are
thread-safe and synchronous (they return once the change is in effect).
Latency delays each chunk by the configured time without limiting
throughput (a reader queues chunks with their due time, a writer sends them
when due), as toxiproxy's latency toxic does.

Kafka clients connect to the advertised listener, not to the bootstrap
address, so a proxy in front of Kafka only works when the broker advertises
the proxy's port: ProxiedKafkaBroker starts a dedicated broker (via
deploy/kafka.sh with OF_KAFKA_ADVERTISED_PORT) whose clients, the test's
own included, all go through its proxy.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import subprocess
import threading
import time
from typing import Any

from .kafka import KAFKA_SH, KafkaBroker
from .util import free_ports

CHUNK = 64 * 1024


class _Link:
    """One proxied connection: client <-> upstream, two pumps."""

    def __init__(self, proxy: "TcpProxy", cr: asyncio.StreamReader, cw: asyncio.StreamWriter):
        self.proxy = proxy
        self.cr, self.cw = cr, cw
        self.ur: asyncio.StreamReader | None = None
        self.uw: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task] = []
        self.closed = False

    async def run(self) -> None:
        try:
            self.ur, self.uw = await asyncio.wait_for(
                asyncio.open_connection(self.proxy.upstream_host, self.proxy.upstream_port), 10)
        except (OSError, asyncio.TimeoutError):
            self.proxy.upstream_failures += 1
            self.abort()
            return
        if self.closed:  # cut while connecting
            self.abort()
            return
        self.tasks = [asyncio.ensure_future(self._pump(self.cr, self.uw, "up")),
                      asyncio.ensure_future(self._pump(self.ur, self.cw, "down"))]
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.abort()

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, direction: str) -> None:
        q: asyncio.Queue = asyncio.Queue()

        async def writer() -> None:
            while True:
                due, data = await q.get()
                if data is None:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                w.write(data)
                await w.drain()
                self.proxy.bytes[direction] += len(data)

        wt = asyncio.ensure_future(writer())
        try:
            while True:
                data = await r.read(CHUNK)
                if not data:
                    break
                await q.put((time.monotonic() + self.proxy._delay_s(), data))
            await q.put((0.0, None))
            await wt
            # Half-close: pass the EOF on.
            if w.can_write_eof():
                w.write_eof()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            wt.cancel()
            self.abort()

    def abort(self) -> None:
        """Close both sides at once (unsent data is dropped). Idempotent."""
        self.closed = True
        current = asyncio.current_task()
        for t in self.tasks:
            if t is not current:
                t.cancel()
        for w in (self.cw, self.uw):
            if w is not None:
                w.transport.abort()
        self.proxy._links.discard(self)


class TcpProxy:
    """127.0.0.1:<port> -> upstream_host:upstream_port.

    Attributes: port, address ("127.0.0.1:PORT"), upstream_host,
    upstream_port, name, enabled, latency_ms, jitter_ms; counters
    accepted (connections), cuts (connections closed by disable()),
    upstream_failures, bytes {"up": n, "down": n}."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None,
                 name: str = "proxy"):
        self.upstream_host = upstream_host
        self.upstream_port = int(upstream_port)
        self.port = port or free_ports(1)[0]
        self.address = f"127.0.0.1:{self.port}"
        self.name = name
        self.enabled = False
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.accepted = 0
        self.cuts = 0
        self.upstream_failures = 0
        self.bytes = {"up": 0, "down": 0}
        self._links: set[_Link] = set()
        self._server: asyncio.base_events.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy-{name}",
                                        daemon=True)
        self._rng = random.Random(self.port)

    # --- control (any thread) ---------------------------------------------------

    def start(self) -> "TcpProxy":
        """Start the loop and listen."""
        self._thread.start()
        self.enable()
        return self

    def stop(self) -> None:
        """Close everything and end the loop thread."""
        if not self._thread.is_alive():
            return
        try:
            self._call(self._disable())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def enable(self, timeout: float = 15) -> None:
        """Listen again (new connections are accepted and forwarded). The
        port is re-bound; retried for `timeout` s if the OS still holds it."""
        self._call(self._enable(timeout), timeout + 5)

    def disable(self) -> None:
        """Cut: stop listening (new connections are refused) and close every
        live connection on both sides."""
        self._call(self._disable())

    def set_latency(self, ms: float, jitter_ms: float = 0) -> None:
        """Delay every chunk by ms (+- jitter_ms, uniform) in both directions;
        applies to data read from now on."""
        self.latency_ms = float(ms)
        self.jitter_ms = float(jitter_ms)

    @property
    def connections(self) -> int:
        """Live proxied connections."""
        return len(self._links)

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "enabled": self.enabled,
                "latency_ms": self.latency_ms, "connections": self.connections,
                "accepted": self.accepted, "cuts": self.cuts,
                "upstream_failures": self.upstream_failures, "bytes": dict(self.bytes)}

    def __repr__(self) -> str:
        return (f"<TcpProxy {self.name} {self.address} -> {self.upstream_host}:"
                f"{self.upstream_port} {'on' if self.enabled else 'OFF'} "
                f"latency={self.latency_ms:g}ms conns={self.connections}>")

    # --- loop side ----------------------------------------------------------------

    def _call(self, coro, timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _delay_s(self) -> float:
        ms = self.latency_ms
        if self.jitter_ms:
            ms += self._rng.uniform(-self.jitter_ms, self.jitter_ms)
        return max(0.0, ms) / 1000.0

    async def _enable(self, timeout: float) -> None:
        if self._server is not None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port,
                                                          reuse_address=True, backlog=128)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.2)
        self.enabled = True

    async def _disable(self) -> None:
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        links = list(self._links)
        self.cuts += len(links)
        for link in links:
            link.abort()
        await asyncio.sleep(0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.enabled:
            writer.transport.abort()
            return
        self.accepted += 1
        link = _Link(self, reader, writer)
        self._links.add(link)
        try:
            await link.run()
        finally:
            self._links.discard(link)


class ProxiedKafkaBroker(KafkaBroker):
    """A dedicated broker on its own ports that advertises a TcpProxy in
    front of it: `bootstrap` is the proxy's address, so every client (the
    services' and the test's) reaches the broker only through `proxy`.
    `direct_bootstrap` is the broker's own listener (bootstrap only: the
    metadata still points clients at the proxy)."""

    def __init__(self, data_dir: str | os.PathLike):
        port, ctl, proxy_port = free_ports(3)
        super().__init__(data_dir, port=port, controller_port=ctl)
        self.proxy = TcpProxy("127.0.0.1", port, port=proxy_port, name="kafka")
        self.direct_bootstrap = f"127.0.0.1:{port}"
        self.bootstrap = self.proxy.address

    def _sh(self, *args: str, timeout: float = 120) -> str:
        env = dict(os.environ, OF_KAFKA_ADVERTISED_PORT=str(self.proxy.port))
        r = subprocess.run([str(KAFKA_SH), *args], capture_output=True, text=True,
                           timeout=timeout, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"kafka.sh {' '.join(args)} failed ({r.returncode}):\n{r.stderr}{r.stdout}"
                               f"\n--- server.log ---\n{self.log_tail(60)}")
        return r.stdout

    def start(self) -> float:
        if not self.proxy._thread.is_alive():
            self.proxy.start()
        return super().start()

    def close(self) -> None:
        try:
            if not self.proxy.enabled and self.proxy._thread.is_alive():
                self.proxy.enable()  # let the helper clients say goodbye
            super().close()
        finally:
            self.proxy.stop()


def proxied_dsn(dsn: str, proxy: TcpProxy) -> str:
    """A libpq key/value DSN with host/port replaced by the proxy's."""
    parts = [p for p in dsn.split() if not p.startswith(("host=", "port="))]
    return " ".join([f"host=127.0.0.1 port={proxy.port}", *parts])


__all__ = ["TcpProxy", "ProxiedKafkaBroker", "proxied_dsn"]
