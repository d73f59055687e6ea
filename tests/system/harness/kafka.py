"""Real Kafka for the system tests (via deploy/kafka.sh): KafkaBroker, one
node (the session fixture's); KafkaCluster, N nodes forming one replicated
cluster (KRaft combined mode, one quorum), with per-node stop/kill/start and
partition leadership. Both offer the same client helpers (admin, topics,
produce, read_all, ...)."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import signal
import subprocess
import threading
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


class _KafkaClients:
    """Client helpers over `self.bootstrap`; new topics get
    `self.replication` replicas."""

    bootstrap: str
    replication: int = 1

    def _init_clients(self) -> None:
        self._producer: Producer | None = None
        self._clients: list[Consumer] = []

    def _close_clients(self) -> None:
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients.clear()
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None

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
            [NewTopic(n, num_partitions=partitions, replication_factor=self.replication, config=config or {})
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
                marks = {tp.partition: _watermarks(c, tp, deadline) for tp in tps}
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

    def end_offsets(self, topic: str, timeout: float = 10.0) -> dict[int, int]:
        """The high watermark of each partition of `topic` (asked again while
        a partition's leader moves, up to `timeout`)."""
        deadline = time.monotonic() + timeout
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "harness-watermarks",
                      "enable.auto.commit": False})
        try:
            return {p: _watermarks(c, TopicPartition(topic, p), deadline)[1]
                    for p in range(self.partitions(topic))}
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


# Errors a partition's leader gives while it moves (a broker just restarted
# or failed over): asked again until the caller's deadline.
_MOVING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
           KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
           KafkaError._ALL_BROKERS_DOWN}


def _watermarks(c: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """(low, high) of tp from its leader, retried while the leader moves."""
    while True:
        try:
            return c.get_watermark_offsets(tp, timeout=5, cached=False)
        except KafkaException as exc:
            code = exc.args[0].code() if exc.args and hasattr(exc.args[0], "code") else None
            if code not in _MOVING or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


class KafkaBroker(_KafkaClients):
    """A Kafka node in `data_dir`, started and stopped with deploy/kafka.sh;
    alone, a single-node cluster (the session fixture). As a node of a
    KafkaCluster: node_id, the quorum's voters, the shared cluster_id and
    the replication of the internal and new topics.

    Attributes: bootstrap ("127.0.0.1:PORT"), port, controller_port,
    data_dir, node_id.
    """

    def __init__(self, data_dir: str | os.PathLike, port: int | None = None,
                 controller_port: int | None = None, *, node_id: int = 1,
                 voters: str | None = None, cluster_id: str | None = None, replication: int = 1):
        self.data_dir = Path(data_dir)
        if port is None or controller_port is None:
            port, controller_port = free_ports(2)
        self.port = port
        self.controller_port = controller_port
        self.bootstrap = f"127.0.0.1:{port}"
        self.node_id = node_id
        self.voters = voters
        self.cluster_id = cluster_id
        self.replication = replication
        self._init_clients()
        atexit.register(self._atexit)

    # --- lifecycle -------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, OF_KAFKA_NODE_ID=str(self.node_id), OF_KAFKA_REPLICATION=str(self.replication))
        if self.voters:
            env["OF_KAFKA_VOTERS"] = self.voters
        if self.cluster_id:
            env["OF_KAFKA_CLUSTER_ID"] = self.cluster_id
        return env

    def _sh(self, *args: str, timeout: float = 120) -> str:
        r = subprocess.run([str(KAFKA_SH), *args], capture_output=True, text=True, timeout=timeout,
                           env=self._env())
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
        self._close_clients()
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


class KafkaCluster(_KafkaClients):
    """N Kafka nodes on free ports forming one cluster (KRaft combined mode:
    every node a broker and a controller, one quorum), as `OF_KAFKA_NODES=N
    make up` runs them: node i in `base_dir/node-i` with node.id i+1;
    replication factor min(N, 3) for new and internal topics, and
    min.insync.replicas=2 from 3 nodes on.

    `bootstrap` lists every node. `nodes[i]` is a KafkaBroker: its
    stop() / kill() / start() / pause() / resume() act on that node alone
    (a node restarted alone rejoins the running cluster). `stop_node(i)`,
    `kill_node(i)`, `start_node(i)` say the same by index.
    """

    def __init__(self, base_dir: str | os.PathLike, nodes: int = 3):
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.base_dir = Path(base_dir)
        ports = free_ports(2 * nodes)
        voters = ",".join(f"{i + 1}@127.0.0.1:{ports[2 * i + 1]}" for i in range(nodes))
        # 16 random bytes, URL-safe base64 without padding: a KRaft cluster id
        # (re-drawn while it starts with '-', which kafka-storage takes for an option)
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = secrets.token_urlsafe(16)[:22]
        self.cluster_id = cluster_id
        self.replication = min(nodes, 3)
        self.nodes = [KafkaBroker(self.base_dir / f"node-{i}", port=ports[2 * i],
                                  controller_port=ports[2 * i + 1], node_id=i + 1, voters=voters,
                                  cluster_id=cluster_id, replication=self.replication)
                      for i in range(nodes)]
        self.bootstrap = ",".join(n.bootstrap for n in self.nodes)
        self._init_clients()

    # --- lifecycle -------------------------------------------------------

    def fetch(self) -> None:
        self.nodes[0].fetch()

    def start(self, nodes: Iterable[int] | None = None) -> float:
        """Start the given nodes (default: all) at once and wait until each
        is ready (a node is ready only once a majority of the quorum runs);
        returns the wall time in seconds."""
        which = list(range(len(self.nodes)) if nodes is None else nodes)
        t0 = time.monotonic()
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                self.nodes[i].start()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)
        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in which]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return time.monotonic() - t0

    def start_node(self, i: int) -> float:
        return self.nodes[i].start()

    def stop_node(self, i: int) -> None:
        self.nodes[i].stop()

    def kill_node(self, i: int) -> None:
        self.nodes[i].kill()

    def stop(self) -> None:
        """SIGTERM every running node at once (a node shuts down cleanly
        only while a majority of the quorum runs) and wait."""
        running = [n for n in self.nodes if n.is_running()]
        threads = [threading.Thread(target=n.stop, daemon=True) for n in running]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def close(self) -> None:
        """Close the helper clients and stop every node."""
        self._close_clients()
        for n in self.nodes:
            n.resume()
            n._close_clients()
        self.stop()
        for n in self.nodes:
            n._atexit()

    # --- leadership ---------------------------------------------------------

    def node_index(self, broker_id: int) -> int:
        """The index in `nodes` of the node with that node.id (-1 if none)."""
        return next((i for i, n in enumerate(self.nodes) if n.node_id == broker_id), -1)

    def leaders(self, topic: str) -> dict[int, int]:
        """partition -> index of the node leading it (-1 while leaderless)."""
        t = self.admin().list_topics(topic, timeout=10).topics[topic]
        if t.error is not None:
            raise KafkaException(t.error)
        return {p: self.node_index(m.leader) for p, m in t.partitions.items()}

    def leader(self, topic: str, partition: int) -> int:
        """Index of the node leading `partition` of `topic` (-1 if none)."""
        return self.leaders(topic)[partition]

    def most_leader(self, topic: str) -> int:
        """Index of the node leading the most partitions of `topic`."""
        counts: dict[int, int] = {}
        for node in self.leaders(topic).values():
            if node >= 0:
                counts[node] = counts.get(node, 0) + 1
        return max(counts, key=lambda n: (counts[n], -n))

    def under_replicated(self, topics: Iterable[str] | None = None) -> int:
        """Partitions (of `topics`, default every topic) whose in-sync
        replicas are fewer than their replicas."""
        md = self.admin().list_topics(timeout=10)
        names = set(md.topics) if topics is None else set(topics)
        return sum(1 for name in names if name in md.topics
                   for p in md.topics[name].partitions.values() if len(p.isrs) < len(p.replicas))

    def log_tail(self, lines: int = 200) -> str:
        return "\n".join(f"--- node-{i} ---\n{n.log_tail(lines)}" for i, n in enumerate(self.nodes))
