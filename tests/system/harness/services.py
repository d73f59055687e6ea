"""Starting orderflow's binaries (payment-gw, inventory, notify, ofctl) in tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from .util import REPO_ROOT, free_port, tail

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer", "ERROR: UndefinedBehaviorSanitizer")

SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

# OF_VALGRIND=1: every service runs under valgrind memcheck (use a build
# without sanitizers, e.g. build/bin). Its report goes into the service log;
# teardown fails the test on any memcheck error or definitely lost block
# (and on the exit code 99 that --error-exitcode gives after SIGTERM).
# Valgrind is ~10-30x slower: the ready/stop timeouts are raised (x4).
VALGRIND = os.environ.get("OF_VALGRIND", "") not in ("", "0")
VALGRIND_CMD = ["valgrind", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                "--num-callers=30"]
VALGRIND_FINDING = re.compile(r"ERROR SUMMARY: [1-9]|definitely lost: [1-9]")
_SLOW = 4.0 if VALGRIND else 1.0

READY_TIMEOUT = float(os.environ.get("OF_TEST_READY_TIMEOUT", str(30 * _SLOW)))
STOP_TIMEOUT = float(os.environ.get("OF_TEST_STOP_TIMEOUT", str(30 * _SLOW)))


def bin_dir() -> Path:
    """$OF_BIN_DIR (relative to the repo root if relative), default build/bin."""
    d = Path(os.environ.get("OF_BIN_DIR", "build/bin"))
    return d if d.is_absolute() else REPO_ROOT / d


def sanitizer_findings(text: str) -> list[str]:
    """Lines of text that carry a sanitizer marker (or a valgrind error or
    definite-leak summary line)."""
    return [line for line in text.splitlines()
            if any(m in line for m in SANITIZER_MARKERS) or VALGRIND_FINDING.search(line)]


class ServiceError(AssertionError):
    pass


class Service:
    """One running (or stopped) service process.

    url ("http://127.0.0.1:PORT"), port, pid, name, env, log_path."""

    def __init__(self, name: str, binary: Path, env: dict[str, str], port: int,
                 log_path: Path, workdir: Path, check_exit: bool = True):
        self.name = name
        self.binary = binary
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.workdir = workdir
        self.check_exit = check_exit
        self.proc: subprocess.Popen | None = None
        # One entry per finished run: {"how": "SIGTERM"|"SIGTERM+SIGKILL"|
        # "SIGKILL"|...|"exited"|"start", "rc": int, "pid": int, "observed": bool}
        self.exit_codes: list[dict[str, Any]] = []
        self._seen_exit = False
        self._stopping = ""

    # --- process control ---

    def start(self) -> "Service":
        """Start the process (not waiting for readiness)."""
        if self.is_running():
            raise ServiceError(f"{self.name} is already running (pid {self.pid})")
        self._reap()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: starting {self.binary} on port {self.port} at "
                      f"{time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            cmd = [*VALGRIND_CMD, str(self.binary)] if VALGRIND else [str(self.binary)]
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._seen_exit = False
        self._stopping = ""
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit code of the last run (negative: killed by that signal), None while running."""
        return self.proc.poll() if self.proc is not None else None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float | None = None) -> "Service":
        """Poll GET /readyz until 200; ServiceError (with the log) if the
        process exits first or the timeout passes."""
        timeout = READY_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            rc = self.returncode
            if rc is not None:
                self._seen_exit = True
                self._record_exit("start", rc)
                raise ServiceError(f"{self.name} exited with code {rc} before it was ready\n"
                                   f"--- {self.log_path} ---\n{self.log(200)}")
            try:
                r = requests.get(self.url + "/readyz", timeout=1)
                if r.status_code == 200:
                    return self
                last = f"HTTP {r.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            if time.monotonic() >= deadline:
                raise ServiceError(f"{self.name} not ready after {timeout:.0f}s (last: {last})\n"
                                   f"--- {self.log_path} ---\n{self.log(200)}")
            time.sleep(0.1)

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM and wait; SIGKILL if still running after timeout.
        Returns the exit code (negative if killed by a signal)."""
        timeout = STOP_TIMEOUT if timeout is None else timeout
        if self.proc is None:
            raise ServiceError(f"{self.name} was never started")
        if self.proc.poll() is not None:
            # It had already exited by itself: recorded as an unexpected exit.
            self._reap()
            return self.proc.returncode
        self._stopping = "SIGTERM"
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._stopping = "SIGTERM+SIGKILL"
            self.proc.kill()
            self.proc.wait(10)
        rc = self.proc.returncode
        self._seen_exit = True
        self._record_exit(self._stopping or "exited", rc)
        return rc

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send sig (default SIGKILL) and wait for the process to end."""
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            self._reap()
            return self.proc.returncode
        self._stopping = signal.Signals(sig).name
        self.proc.send_signal(sig)
        self.proc.wait(STOP_TIMEOUT)
        self._seen_exit = True
        self._record_exit(self._stopping, self.proc.returncode)
        return self.proc.returncode

    def pause(self) -> None:
        if self.is_running():
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.is_running():
            self.proc.send_signal(signal.SIGCONT)

    def wait_exit(self, timeout: float = 30) -> int:
        """Wait for the process to exit by itself and return its code (use
        for expected exits, e.g. a bad config value)."""
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ServiceError(f"{self.name} still running after {timeout}s\n{self.log(50)}") from None
        self._seen_exit = True
        self._record_exit("exited", rc)
        return rc

    def restart(self, env: dict[str, str | None] | None = None, wait_ready: bool = True) -> "Service":
        """stop() (SIGTERM) then start again on the same port, optionally
        with env changes (None removes a variable)."""
        if self.is_running():
            self.stop()
        if env:
            for k, v in env.items():
                if v is None:
                    self.env.pop(k, None)
                else:
                    self.env[k] = str(v)
        self.start()
        if wait_ready:
            self.wait_ready()
        return self

    def _record_exit(self, how: str, rc: int) -> None:
        assert self.proc is not None
        if any(x["pid"] == self.proc.pid for x in self.exit_codes):
            return
        self.exit_codes.append({"how": how, "rc": rc, "pid": self.proc.pid,
                                "observed": self._seen_exit})

    def _reap(self) -> None:
        if self.proc is not None and self.proc.poll() is not None and not self._seen_exit:
            self._record_exit("exited", self.proc.returncode)

    # --- observation ---

    def log(self, lines: int | None = None) -> str:
        """The service's log (stdout+stderr of every run), or its last lines."""
        if lines is not None:
            return tail(self.log_path, lines)
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return requests.request(method, self.url + path, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def metrics(self) -> str:
        r = self.get("/metrics")
        r.raise_for_status()
        return r.text

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the /metrics series called `name` whose labels include
        `labels` (0 when there is none)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not (line.startswith(name + "{") or line.startswith(name + " ")):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def __repr__(self) -> str:
        return f"<Service {self.name} {self.url} pid={self.pid} rc={self.returncode}>"


class Services:
    """Factory of Service objects sharing one generated configuration."""

    def __init__(self, base_env: dict[str, str], workdir: Path):
        self.base_env = dict(base_env)
        self.workdir = Path(workdir)
        self.all: list[Service] = []
        self.ofctl_runs: list[subprocess.CompletedProcess] = []

    @staticmethod
    def bin_path(name: str) -> Path:
        return bin_dir() / name

    def env_for(self, env: dict[str, Any] | None = None) -> dict[str, str]:
        """Process environment: the inherited one minus any OF_* variable,
        plus the generated config, plus `env` (None values remove)."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("OF_")}
        for k, v in SANITIZER_ENV.items():
            e.setdefault(k, v)
        e.update(self.base_env)
        for s in self.all:
            if s.name == "payment-gw":
                e.setdefault("OF_PAYMENT_GW_URL", s.url)
            elif s.name == "inventory":
                e.setdefault("OF_INVENTORY_URL", s.url)
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = str(v)
        return e

    def start(self, name: str, env: dict[str, Any] | None = None, wait_ready: bool = True,
              port: int | None = None, check_exit: bool = True) -> Service:
        """Start $OF_BIN_DIR/<name> on a free (or the given) port.

        check_exit=False: do not fail the test at teardown because of the exit
        code (sanitizer findings still fail it)."""
        binary = self.bin_path(name)
        if not os.access(binary, os.X_OK):
            raise ServiceError(f"{binary} not found or not executable: build first "
                               f"(make build / make asan) or set OF_BIN_DIR")
        if VALGRIND and b"libasan.so" in binary.read_bytes():
            raise ServiceError(f"OF_VALGRIND=1 needs binaries without sanitizers; {binary} "
                               f"uses ASan (set OF_BIN_DIR=build/bin)")
        port = port or free_port()
        same = sum(1 for s in self.all if s.name == name)
        label = name if same == 0 else f"{name}-{same + 1}"
        e = self.env_for({"OF_HTTP_PORT": str(port), **(env or {})})
        svc = Service(name, binary, e, port, self.workdir / f"{label}.log", self.workdir / label,
                      check_exit=check_exit)
        self.all.append(svc)
        svc.start()
        if wait_ready:
            svc.wait_ready()
        return svc

    def get(self, name: str) -> Service:
        """The first started service called name."""
        for s in self.all:
            if s.name == name:
                return s
        raise KeyError(name)

    def ofctl(self, *args: str, env: dict[str, Any] | None = None, timeout: float = 60,
              check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
        """Run $OF_BIN_DIR/ofctl with the same configuration (plus
        OF_PAYMENT_GW_URL / OF_INVENTORY_URL of started services). Returns
        CompletedProcess with text stdout/stderr; check=True raises on a
        non-zero exit. Sanitizer findings in its stderr fail at teardown."""
        binary = self.bin_path("ofctl")
        if not os.access(binary, os.X_OK):
            raise ServiceError(f"{binary} not found or not executable")
        r = subprocess.run([str(binary), *args], env=self.env_for(env), capture_output=True,
                           text=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        self.ofctl_runs.append(r)
        if check and r.returncode != 0:
            raise ServiceError(f"ofctl {' '.join(args)} exited {r.returncode}\n"
                               f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        return r

    def log_sections(self, lines: int = 200) -> list[tuple[str, str]]:
        return [(f"{s.name} log ({s.log_path}, last {lines} lines)", s.log(lines)) for s in self.all]

    def teardown(self) -> list[str]:
        """Stop everything still running (SIGTERM); return the problems found:
        non-zero exit after SIGTERM, unexpected exits, sanitizer findings."""
        problems: list[str] = []
        for s in self.all:
            if s.is_running():
                s.stop()
            s._reap()
            for x in s.exit_codes:
                how, rc, pid = x["how"], x["rc"], x["pid"]
                if not s.check_exit:
                    continue
                if how == "SIGTERM" and rc != 0:
                    problems.append(f"{s.name} (pid {pid}) exited with {rc} after SIGTERM")
                elif how == "SIGTERM+SIGKILL":
                    problems.append(f"{s.name} (pid {pid}) did not exit within "
                                    f"{STOP_TIMEOUT:.0f}s of SIGTERM (killed)")
                elif how == "exited" and rc != 0 and not x["observed"]:
                    what = (f"died of {signal.Signals(-rc).name}" if rc < 0
                            else f"exited by itself with {rc}")
                    problems.append(f"{s.name} (pid {pid}) {what} (not stopped by the test)")
            found = sanitizer_findings(s.log())
            if found:
                problems.append(f"{s.name}: sanitizer report in {s.log_path}: {found[0]}")
        for r in self.ofctl_runs:
            found = sanitizer_findings(r.stderr or "")
            if found:
                problems.append(f"ofctl {' '.join(r.args[1:])}: sanitizer report: {found[0]}\n{r.stderr[-4000:]}")
        return problems
