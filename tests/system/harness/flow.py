"""How long an event (a restart, a rebalance, a broker failover) held up the
pipeline, measured from the records themselves. Tests and benchmarks print
these figures; nothing here asserts a speed.

Two stages, each a list of samples (start, latency) in seconds:
- payments (inventory): start = when the POST that got the 202 was sent,
  end = the timestamp of the order's outcome record (the outbox relay's
  CreateTime; same machine, same clock);
- notifications (notify): start = the outcome record's timestamp, end = the
  first 2xx-answered notification of that outcome at the sink.

For an event window [a, b] (say SIGTERM to ready), `window_figures` gives
the largest latency of the samples started in [a - before, b] (a record
caught by the event waits for it to pass), that latency less the median of
the quiet period before the first event (the pause the event caused), and
the longest gap between consecutive completions in the window (0 when
records kept completing).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Iterable

from .kafka import Record
from .sink import Sink

OUTCOME_TOPICS = ("order.fulfilled", "order.compensation")


@dataclass
class Sample:
    start: float
    latency: float

    @property
    def end(self) -> float:
        return self.start + self.latency


def outcome_records(kafka: Any, ns: Any, timeout: float = 30) -> list[Record]:
    recs: list[Record] = []
    for t in OUTCOME_TOPICS:
        recs += kafka.read_all(ns.topic(t), timeout=timeout)
    return recs


def first_outcomes(recs: Iterable[Record]) -> dict[str, Record]:
    """order_id -> its earliest outcome record."""
    out: dict[str, Record] = {}
    for r in recs:
        oid = (r.json() or {}).get("order_id")
        if oid is None:
            continue
        if oid not in out or r.timestamp < out[oid].timestamp:
            out[oid] = r
    return out


def payment_samples(driver: Any, outcomes: dict[str, Record]) -> list[Sample]:
    """One sample per acknowledged payment with an outcome (harness.chaos.
    PaymentDriver states): from the sending of the POST answered 202 to
    the outcome record's timestamp."""
    out = []
    for st in driver.acked_states():
        rec = outcomes.get(st.payload["order_id"])
        sent = next((t for t, status in reversed(st.attempts) if status == 202), None)
        if rec is None or sent is None:
            continue
        out.append(Sample(sent, max(0.0, rec.timestamp / 1000.0 - sent)))
    return out


def notification_samples(sink: Sink, outcomes: dict[str, Record]) -> list[Sample]:
    """One sample per outcome with a 2xx notification at the sink: from the
    outcome record's timestamp to its first delivered notification."""
    first: dict[str, float] = {}
    for r in sink.requests():
        if not 200 <= r.status < 300 or not isinstance(r.json, dict):
            continue
        oid = r.json.get("order_id")
        if oid is not None and (oid not in first or r.time < first[oid]):
            first[oid] = r.time
    out = []
    for oid, rec in outcomes.items():
        if oid in first:
            t0 = rec.timestamp / 1000.0
            out.append(Sample(t0, max(0.0, first[oid] - t0)))
    return out


def quiet_figures(samples: list[Sample], until: float, since: float = 0.0) -> dict[str, float]:
    """Median and p99 latency (ms) of the samples started in [since, until)."""
    lat = sorted(s.latency for s in samples if since <= s.start < until)
    if not lat:
        return {"n": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    return {"n": len(lat), "p50_ms": round(statistics.median(lat) * 1000, 1),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1),
            "max_ms": round(lat[-1] * 1000, 1)}


def window_figures(samples: list[Sample], a: float, b: float, baseline_p50_ms: float,
                   before: float = 2.0) -> dict[str, float]:
    """Figures (ms) of the event window [a, b]: max_latency of the samples
    started in [a - before, b], pause = max_latency - baseline median, and
    gap = the longest time in [a, b'] without a completion, where b' is
    the completion of the last sample started by b."""
    inside = [s for s in samples if a - before <= s.start <= b]
    if not inside:
        return {"n": 0, "max_latency_ms": 0.0, "pause_ms": 0.0, "gap_ms": 0.0}
    worst = max(s.latency for s in inside)
    end = max(s.end for s in inside)
    ends = sorted(s.end for s in samples if a <= s.end <= end)
    marks = [a, *ends, end]
    gap = max(y - x for x, y in zip(marks, marks[1:]))
    return {"n": len(inside), "max_latency_ms": round(worst * 1000, 1),
            "pause_ms": round(max(0.0, worst * 1000 - baseline_p50_ms), 1),
            "gap_ms": round(gap * 1000, 1)}


def longest_gap(times: Iterable[float], a: float, b: float) -> float:
    """The longest stretch (s) of [a, b] without any of `times` in it."""
    marks = [a, *sorted(t for t in times if a <= t <= b), b]
    return max(y - x for x, y in zip(marks, marks[1:]))
