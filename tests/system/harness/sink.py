"""A local HTTP server standing in for the notification providers."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit


@dataclass
class SinkRequest:
    method: str
    path: str                 # without the query string
    query: str
    headers: dict[str, str]   # names lower-cased
    body: bytes
    json: Any                 # parsed body, None if not JSON
    time: float               # time.time() at arrival
    status: int = 0           # status the sink answered

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of concurrent
    # provider calls (notify catching up after an outage) overflowed it and
    # some connections waited out the client's timeout.
    request_queue_size = 1024


@dataclass
class _Script:
    prefix: str
    steps: list = field(default_factory=list)


class Sink:
    """Records every request and answers from a script.

    respond(path_prefix, [500, 500, 200]): the next requests whose path starts
    with path_prefix get these answers in turn, then the default. A step is a
    status code or a dict {"status": 500, "delay": 2.0, "body": ..., "headers":
    {...}} (delay before answering, e.g. to provoke client timeouts). The most
    recently added matching script wins. set_default(status) changes the
    default (200 at start)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests: list[SinkRequest] = []
        self._scripts: list[_Script] = []
        self._default: Any = 200
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                body = self._read_body()
                url = urlsplit(self.path)
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = None
                req = SinkRequest(method=self.command, path=url.path, query=url.query,
                                  headers={k.lower(): v for k, v in self.headers.items()},
                                  body=body, json=parsed, time=time.time())
                step = sink._next_step(url.path)
                if callable(step):
                    step = step(req)
                if isinstance(step, dict):
                    status = int(step.get("status", 200))
                    delay = float(step.get("delay", 0))
                    resp_body = step.get("body")
                    extra_headers = step.get("headers", {})
                else:
                    status, delay, resp_body, extra_headers = int(step), 0.0, None, {}
                req.status = status
                sink._record(req)
                if delay:
                    time.sleep(delay)
                if resp_body is None:
                    resp_body = {"ok": 200 <= status < 300}
                data = resp_body if isinstance(resp_body, bytes) else (
                    resp_body.encode() if isinstance(resp_body, str) else json.dumps(resp_body).encode())
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in extra_headers.items():
                        self.send_header(k, str(v))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = _Server((host, port), Handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> "Sink":
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- script ---

    def respond(self, path_prefix: str, statuses: list) -> None:
        with self._lock:
            self._scripts.append(_Script(path_prefix, list(statuses)))

    def set_default(self, status: int | dict | Callable[[SinkRequest], int | dict]) -> None:
        """The answer when no script applies: a status, a step dict, or a
        function of the request returning either."""
        with self._lock:
            self._default = status

    def _next_step(self, path: str) -> Any:
        with self._lock:
            for s in reversed(self._scripts):
                if path.startswith(s.prefix) and s.steps:
                    return s.steps.pop(0)
            return self._default

    # --- observations ---

    def _record(self, req: SinkRequest) -> None:
        with self._cond:
            self._requests.append(req)
            self._cond.notify_all()

    def requests(self, path: str | None = None) -> list[SinkRequest]:
        """Requests so far, oldest first; path filters by prefix."""
        with self._lock:
            return [r for r in self._requests if path is None or r.path.startswith(path)]

    def wait_for(self, n: int, timeout: float = 10.0, path: str | None = None) -> list[SinkRequest]:
        """Wait until at least n requests (matching path prefix) arrived and
        return them all; AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self._requests if path is None or r.path.startswith(path)]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"sink: expected {n} request(s){' on ' + path if path else ''} within "
                        f"{timeout}s, got {len(got)}: {[(r.method, r.path, r.status) for r in got]}")
                self._cond.wait(min(left, 0.5))

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
