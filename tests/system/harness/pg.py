"""A real PostgreSQL 15 cluster for the system tests (via deploy/pg.sh)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import psycopg

from .util import REPO_ROOT, free_port, pid_alive, tail

PG_SH = REPO_ROOT / "deploy" / "pg.sh"


class Postgres:
    """A cluster in a fresh directory under /tmp.

    As root the server runs as the `postgres` user, which cannot enter
    pytest's 0700 tmp dirs, hence /tmp (override with OF_TEST_PG_TMP).
    Roles: `postgres` (superuser, used by query()) and `orderflow` (LOGIN
    CREATEDB, owner of the per-test databases, used in dsn_for()). Trust auth.
    """

    host = "127.0.0.1"

    def __init__(self, port: int | None = None, base_dir: str | None = None):
        base = base_dir or os.environ.get("OF_TEST_PG_TMP") or "/tmp"
        self.data_dir = Path(tempfile.mkdtemp(prefix="of-pg-", dir=base))
        os.chmod(self.data_dir, 0o700)
        self.port = port or free_port()
        self._sh("init", str(self.data_dir), str(self.port))
        atexit.register(self._atexit)

    def _sh(self, *args: str, timeout: float = 120) -> str:
        r = subprocess.run([str(PG_SH), *args], capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"pg.sh {' '.join(args)} failed ({r.returncode}):\n{r.stderr}{r.stdout}"
                               f"\n--- server.log ---\n{self.log_tail(40)}")
        return r.stdout

    def start(self) -> float:
        """Start (no-op if running), wait until ready; returns seconds taken."""
        out = self._sh("start", str(self.data_dir))
        try:
            self._postmaster_pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        try:
            return float(out.strip().rsplit(" in ", 1)[1].rstrip("s"))
        except (IndexError, ValueError):
            return 0.0

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m fast|immediate|smart ("immediate" is a crash)."""
        self._sh("stop", str(self.data_dir), mode)

    def is_running(self) -> bool:
        return subprocess.run([str(PG_SH), "status", str(self.data_dir)],
                              capture_output=True).returncode == 0

    def dsn_for(self, dbname: str, user: str = "orderflow") -> str:
        """libpq key/value DSN for `dbname` over TCP."""
        return f"host={self.host} port={self.port} dbname={dbname} user={user}"

    def connect(self, dbname: str = "postgres", user: str = "postgres") -> psycopg.Connection:
        """An autocommit psycopg connection (caller closes it)."""
        return psycopg.connect(self.dsn_for(dbname, user), autocommit=True, connect_timeout=10)

    def query(self, dbname: str, sql: str, params: Sequence[Any] | dict | None = None,
              user: str = "postgres") -> list[tuple]:
        """Run one statement (autocommit, %s placeholders); returns the rows
        (an empty list for statements without a result)."""
        with self.connect(dbname, user) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def create_database(self, name: str | None = None, owner: str = "orderflow") -> str:
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.query("postgres", f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    def drop_database(self, name: str) -> None:
        self.query("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, lines: int = 200) -> str:
        return tail(self.data_dir / "server.log", lines)

    def destroy(self) -> None:
        """Stop (fast) and remove the data directory."""
        try:
            if self.is_running():
                self.stop("fast")
        finally:
            self._signal_postmaster()
            shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def postmaster_pid(self) -> int | None:
        """The pid of the postmaster this object started (None before)."""
        return getattr(self, "_postmaster_pid", None)

    def _signal_postmaster(self) -> None:
        """Last resort when pg_ctl cannot stop the server (e.g. its data dir
        vanished): SIGINT (fast shutdown) to the postmaster we started, then
        SIGKILL."""
        pid = self.postmaster_pid
        if pid is None or not pid_alive(pid):
            return
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(self.data_dir).encode() not in f.read():
                    return  # pid reused by someone else's process
            os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass

    def _atexit(self) -> None:
        if self.data_dir.exists() and self.is_running():
            subprocess.run([str(PG_SH), "stop", str(self.data_dir), "immediate"], capture_output=True)
        self._signal_postmaster()


class Database(str):
    """A per-test database: the string is its DSN (user orderflow);
    `.name` is the database name and `.query()` runs SQL in it as superuser."""

    name: str
    pg: Postgres

    def __new__(cls, pg: Postgres, name: str) -> "Database":
        obj = super().__new__(cls, pg.dsn_for(name))
        obj.name = name
        obj.pg = pg
        return obj

    @property
    def dsn(self) -> str:
        return str(self)

    def query(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[tuple]:
        return self.pg.query(self.name, sql, params)
