"""A real single-node Kafka broker for the system tests (via deploy/kafka.sh)."""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .util import REPO_ROOT, free_ports, pid_alive, wait_until

KAFKA_SH = REPO_ROOT / "deploy" / "kafka.sh"


def _bytes(v: Any) -> bytes | None:
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":")).encode()
    raise TypeError(f"cannot encode {type(v).__name__} as a Kafka key/value")


@dataclass
class Record:
    """One consumed record. `headers` maps name -> bytes (last one wins);
    `header_list` keeps every header in order, duplicates included."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)
    header_list: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int = 0

    def json(self) -> Any:
        """The value parsed as JSON."""
        return json.loads(self.value) if self.value is not None else None

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header decoded as UTF-8 (default if absent)."""
        v = self.headers.get(name)
        return v.decode("utf-8", errors="replace") if v is not None else default

    @classmethod
    def from_message(cls, m) -> "Record":
        hl = [(k, v if v is not None else b"") for k, v in (m.headers() or [])]
        return cls(topic=m.topic(), partition=m.partition(), offset=m.offset(),
                   key=m.key(), value=m.value(), headers=dict(hl), header_list=hl,
                   timestamp=m.timestamp()[1])


class KafkaBroker:
    """A broker in `data_dir`, started and stopped with deploy/kafka.sh.

    Attributes: bootstrap ("127.0.0.1:PORT"), port, controller_port, data_dir.
    """

    def __init__(self, data_dir: str | os.PathLike, port: int | None = None,
                 controller_port: int | None = None):
        self.data_dir = Path(data_dir)
        if port is None or controller_port is None:
            port, controller_port = free_ports(2)
        self.port = port
        self.controller_port = controller_port
        self.bootstrap = f"127.0.0.1:{port}"
        self._producer: Producer | None = None
        self._clients: list[Consumer] = []
        atexit.register(self._atexit)

    # --- lifecycle -------------------------------------------------------

    def _sh(self, *args: str, timeout: float = 120) -> str:
        r = subprocess.run([str(KAFKA_SH), *args], capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"kafka.sh {' '.join(args)} failed ({r.returncode}):\n{r.stderr}{r.stdout}"
                               f"\n--- server.log ---\n{self.log_tail(60)}")
        return r.stdout

    def fetch(self) -> None:
        """Make sure the broker jars are present (fast when they are)."""
        self._sh("fetch", timeout=600)

    def start(self) -> float:
        """Start (or restart on the same data) and wait until ready; returns
        the start time in seconds as reported by kafka.sh."""
        out = self._sh("start", str(self.data_dir), str(self.port), str(self.controller_port))
        self._last_pid = self.pid
        try:
            return float(out.rsplit(" in ", 1)[1].rstrip("s\n"))
        except (IndexError, ValueError):
            return 0.0

    @property
    def pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "kafka.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def stop(self) -> None:
        """SIGTERM and wait for a clean shutdown (SIGKILL after 30 s)."""
        self._sh("stop", str(self.data_dir))

    def kill(self) -> None:
        """SIGKILL the broker (a crash) and wait until it is gone."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), timeout=10, message=f"kafka pid {pid} to die")

    def pause(self) -> None:
        """SIGSTOP the broker (it hangs; connections stay open)."""
        if self.pid:
            os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after pause()."""
        if self.pid:
            os.kill(self.pid, signal.SIGCONT)

    def close(self) -> None:
        """Close the helper clients and stop the broker."""
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients.clear()
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
        if self.pid is not None:
            self.resume()
            self.stop()
        self._atexit()  # last resort if the pid file vanished

    def _atexit(self) -> None:
        pid = self.pid or getattr(self, "_last_pid", None)
        if pid is not None and pid_alive(pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f"{self.data_dir}/server.properties".encode() not in f.read():
                        return  # pid reused by another process
            except FileNotFoundError:
                return
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log_tail(self, lines: int = 200) -> str:
        from .util import tail
        return tail(self.data_dir / "logs" / "server.log", lines)

    # --- admin -------------------------------------------------------------

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topics(self, names: Iterable[str], partitions: int = 3,
                      config: dict[str, str] | None = None, timeout: float = 30) -> None:
        """Create topics (existing ones are fine) and wait until every
        partition has a leader."""
        names = list(names)
        if not names:
            return
        admin = self.admin()
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1, config=config or {})
             for n in names],
            operation_timeout=timeout, request_timeout=timeout)
        for name, fut in futures.items():
            try:
                fut.result(timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise

        def all_led() -> bool:
            md = admin.list_topics(timeout=5)
            for n in names:
                t = md.topics.get(n)
                if t is None or t.error is not None or not t.partitions:
                    return False
                if any(p.leader < 0 for p in t.partitions.values()):
                    return False
            return True

        wait_until(all_led, timeout=timeout, interval=0.1, message=f"topics {names} to have leaders")

    def delete_topics(self, names: Iterable[str], wait: bool = False, timeout: float = 30) -> None:
        names = list(names)
        if not names:
            return
        futures = self.admin().delete_topics(names, operation_timeout=timeout, request_timeout=timeout)
        if wait:
            for fut in futures.values():
                try:
                    fut.result(timeout)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise

    def list_topics(self) -> set[str]:
        return set(self.admin().list_topics(timeout=10).topics)

    def partitions(self, topic: str) -> int:
        t = self.admin().list_topics(topic, timeout=10).topics[topic]
        if t.error is not None:
            raise KafkaException(t.error)
        return len(t.partitions)

    # --- clients -----------------------------------------------------------

    def consumer(self, topics: str | Iterable[str], group: str | None = None, **conf: Any) -> Consumer:
        """A subscribed Consumer reading from the earliest offset; closed at
        session end if the test does not close it (extra librdkafka
        properties as keyword args, dots as underscores or a `conf` dict)."""
        cfg = {"bootstrap.servers": self.bootstrap,
               "group.id": group or f"harness-{uuid.uuid4().hex[:12]}",
               "auto.offset.reset": "earliest",
               "enable.auto.commit": True}
        extra = conf.pop("conf", {}) or {}
        cfg.update({k.replace("_", "."): v for k, v in conf.items()})
        cfg.update(extra)
        c = Consumer(cfg)
        c.subscribe([topics] if isinstance(topics, str) else list(topics))
        self._clients.append(c)
        return c

    def producer(self) -> Producer:
        """The shared idempotent producer used by produce()."""
        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.bootstrap,
                                       "enable.idempotence": True, "acks": "all",
                                       "linger.ms": 0})
        return self._producer

    def produce(self, topic: str, key: Any, value: Any,
                headers: dict[str, Any] | list[tuple[str, Any]] | None = None,
                partition: int | None = None, timeout: float = 30) -> tuple[int, int]:
        """Produce one record synchronously; returns (partition, offset).
        key/value may be bytes, str, dict/list (JSON) or None; header values
        bytes or str."""
        result: dict[str, Any] = {}

        def on_delivery(err, msg):
            result["err"] = err
            result["msg"] = msg

        hdrs = None
        if headers is not None:
            items = headers.items() if isinstance(headers, dict) else headers
            hdrs = [(k, _bytes(v)) for k, v in items]
        kwargs: dict[str, Any] = {"key": _bytes(key), "value": _bytes(value),
                                  "on_delivery": on_delivery}
        if hdrs is not None:
            kwargs["headers"] = hdrs
        if partition is not None:
            kwargs["partition"] = partition
        p = self.producer()
        p.produce(topic, **kwargs)
        deadline = time.monotonic() + timeout
        while "err" not in result and time.monotonic() < deadline:
            p.poll(0.1)
        if "err" not in result:
            raise TimeoutError(f"produce to {topic} not acknowledged within {timeout}s")
        if result["err"] is not None:
            raise KafkaException(result["err"])
        return result["msg"].partition(), result["msg"].offset()

    def read_all(self, topic: str, timeout: float = 10.0, min_count: int = 0) -> list[Record]:
        """Every record currently in `topic` (all partitions, from the start),
        ordered by (partition, offset). With min_count, keeps waiting (up to
        `timeout`) until at least that many records exist. Uses no consumer
        group offsets (manual assignment)."""
        deadline = time.monotonic() + timeout
        c = Consumer({"bootstrap.servers": self.bootstrap,
                      "group.id": f"harness-read-{uuid.uuid4().hex[:12]}",
                      "enable.auto.commit": False,
                      "enable.auto.offset.store": False,
                      "auto.offset.reset": "earliest"})
        try:
            md = c.list_topics(topic, timeout=max(1.0, timeout))
            t = md.topics.get(topic)
            if t is None or t.error is not None:
                raise KafkaException(t.error if t is not None else f"unknown topic {topic}")
            tps = [TopicPartition(topic, p, -2) for p in sorted(t.partitions)]  # -2: beginning
            c.assign(tps)
            records: list[Record] = []
            while True:
                marks = {tp.partition: c.get_watermark_offsets(tp, timeout=5, cached=False)
                         for tp in tps}
                while True:
                    pos = {tp.partition: tp.offset for tp in c.position(tps)}
                    if all(hi <= lo or pos[p] >= hi for p, (lo, hi) in marks.items()):
                        break
                    if time.monotonic() >= deadline:
                        break
                    for m in c.consume(num_messages=1000, timeout=0.2):
                        if m.error():
                            if m.error().code() == KafkaError._PARTITION_EOF:
                                continue
                            raise KafkaException(m.error())
                        records.append(Record.from_message(m))
                if len(records) >= min_count or time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
            records.sort(key=lambda r: (r.partition, r.offset))
            return records
        finally:
            c.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Committed offsets of `group` on `topic` by partition (-1001 when none)."""
        n = self.partitions(topic)
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                      "enable.auto.commit": False})
        try:
            return {tp.partition: tp.offset
                    for tp in c.committed([TopicPartition(topic, p) for p in range(n)], timeout=10)}
        finally:
            c.close()
