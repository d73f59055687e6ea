"""Test harness for orderflow's system tests: real Kafka, real PostgreSQL,
the real service binaries, a scriptable HTTP sink. See conftest.py for the
fixtures (kafka, pg, db, ns, sink, services)."""

from .config import ADMIN_TOKEN, NOTIFY_SECRET, WEBHOOK_SECRET
from .kafka import KafkaBroker, KafkaCluster, Record
from .pg import Database, Postgres
from .services import Service, ServiceError, Services, bin_dir, sanitizer_findings
from .sign import encode, payment, post_payment, sign, signed_headers
from .sink import Sink, SinkRequest
from .topics import Namespace, topic_names
from .util import REPO_ROOT, free_port, free_ports, tail, wait_until

__all__ = [
    "ADMIN_TOKEN", "NOTIFY_SECRET", "WEBHOOK_SECRET",
    "KafkaBroker", "KafkaCluster", "Record", "Database", "Postgres", "Service", "ServiceError", "Services",
    "bin_dir", "sanitizer_findings", "encode", "payment", "post_payment", "sign",
    "signed_headers", "Sink", "SinkRequest", "Namespace", "topic_names", "REPO_ROOT",
    "free_port", "free_ports", "tail", "wait_until",
]
