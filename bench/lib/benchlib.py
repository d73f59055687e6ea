"""Shared helpers for bench/run: progress output, /proc sampling, percentiles,
running the per-component benchmark scripts, and the result table."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress line on stderr with the elapsed time of the whole run."""
    el = time.monotonic() - T0
    print(f"[bench {int(el // 60):02d}:{int(el % 60):02d}] {msg}", file=sys.stderr, flush=True)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (KiB) and Threads of a process; {} when it is gone."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a live process (0 when unknown or gone)."""
    if not pid:
        return 0.0
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu_seconds(pid: int | None) -> float:
    """CPU seconds of a process and all its descendants, live and exited
    (utime + stime + cutime + cstime of each live process of the tree):
    PostgreSQL's postmaster with its backends, a JVM. 0 when unknown."""
    if not pid:
        return 0.0
    stats: dict[int, tuple[int, float]] = {}  # pid -> (ppid, cpu incl. reaped children)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            stats[int(d.name)] = (int(f[1]), sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK"))
        except (OSError, IndexError, ValueError):
            continue
    if pid not in stats:
        return 0.0
    kids: dict[int, list[int]] = {}
    for p, (pp, _) in stats.items():
        kids.setdefault(pp, []).append(p)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats[p][1]
        todo.extend(kids.get(p, ()))
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle or iowait) since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Samples VmRSS of some processes every `interval` s; .peak_kib() is the
    max of the samples and of VmHWM read at the end (call .finish())."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5):
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.rss = {k: 0 for k in pids}
        self.hwm = {k: 0 for k in pids}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for k, pid in self.pids.items():
            st = proc_status(pid)
            self.rss[k] = max(self.rss[k], st.get("VmRSS", 0))
            self.hwm[k] = max(self.hwm[k], st.get("VmHWM", 0))

    def finish(self) -> dict[str, int]:
        self._sample()
        self._halt.set()
        self.join(5)
        return {k: max(self.rss[k], self.hwm[k]) for k in self.pids}


def percentile(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (nan if empty)."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def run_streaming(cmd: list[str], label: str, timeout: float, env: dict | None = None) -> tuple[int, str]:
    """Runs cmd, echoing each output line to stderr as "  <label>| ...", and
    returns (exit code, combined output). A timeout kills it (code -9)."""
    log(f"{label}: {' '.join(str(c) for c in cmd)}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=ROOT, start_new_session=True)
    lines: list[str] = []
    killer = threading.Timer(timeout, lambda: _kill_group(proc))
    killer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            print(f"    {label}| {line.rstrip()}", file=sys.stderr, flush=True)
        rc = proc.wait()
    finally:
        killer.cancel()
    return rc, "".join(lines)


def _kill_group(proc: subprocess.Popen) -> None:
    import signal
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(10)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def grab(pattern: str, text: str, flags: int = re.M) -> float | None:
    """First group of the last match of pattern in text as a float (commas
    dropped), None if absent."""
    ms = re.findall(pattern, text, flags)
    if not ms:
        return None
    v = ms[-1]
    if isinstance(v, tuple):
        v = v[0]
    try:
        return float(v.replace(",", ""))
    except ValueError:
        return None


# --- the table ------------------------------------------------------------------


def fmt_num(v, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, str):
        return v
    return f"{v:,.{digits}f}"


def table_rows(figures: list[dict]) -> list[list[str]]:
    rows = [["figure", "value", "baseline", "ratio", "goal", "met"]]
    for f in figures:
        ratio = f.get("ratio")
        met = f.get("met")
        rows.append([
            f["figure"],
            fmt_num(f.get("value"), f.get("digits", 0)) + (f" {f['unit']}" if f.get("value") is not None and f.get("unit") else ""),
            "-" if f.get("baseline_label") == "none" else
            f"{fmt_num(f.get('baseline'), f.get('digits', 0))} ({f['baseline_label']})",
            fmt_num(ratio, 2) if ratio is not None else ("n/a" if f.get("baseline_label") != "none" else "-"),
            f["goal"],
            "n/a" if met is None else ("yes" if met else "NO"),
        ])
    return rows


def render_text(figures: list[dict]) -> str:
    rows = table_rows(figures)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    notes = [f"  [{i + 1}] {f['figure']}: {f['note']}" for i, f in enumerate(figures) if f.get("note")]
    return "\n".join(out + ([""] + notes if notes else []))


def render_md(figures: list[dict]) -> str:
    rows = table_rows(figures)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    notes = [f"- **{f['figure']}**: {f['note']}" for f in figures if f.get("note")]
    return "\n".join(out + ([""] + notes if notes else [])) + "\n"


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
