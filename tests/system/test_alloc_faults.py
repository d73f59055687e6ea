"""Out of memory is fatal, everywhere (issue 13; common/include/of_oom.h).

Every service runs under tests/faultinject's libof_failalloc.so, which fails
the N-th allocation after start-up as the C library does when memory runs
out. A supervisor thread plays systemd's Restart=always: whenever a service
exits it starts it again, with the next injection point of its schedule, or
without injection once the schedule is used up. Meanwhile a provider-like
driver posts payments at a steady rate and retries 503s and connection
failures with the same payment_id. At the end, with no injection left, every
acknowledged payment must have exactly one outcome and its notifications,
nothing may be dead-lettered, and `ofctl verify` must pass: an allocation
failure may stop a process, never lose, skip or dead-letter a record.

Needs binaries without ASan (whose allocator is its own): skipped in the
ASan pass.
"""

from __future__ import annotations

import random
from collections import Counter
import threading
import time
import uuid

import pytest

from harness.chaos import (SERVICES, Faults, PaymentDriver, Stack, collect_figures, format_table,
                           is_asan_build, make_catalogue, make_payments, run_verify, wait_quiescent)
from harness.services import bin_dir

N_PAYMENTS = 600  # at most; BATCH at a time until the schedules are used up
BATCH = 50
RATE = 15.0
# The N-th allocation (counted from OF_FAILALLOC_AFTER_MS after start) that
# fails, per start of each service; then no more injection.
SCHEDULE = {
    "payment-gw": [1500, 6000, 15000],
    "inventory": [1000, 5000, 12000],
    "notify": [1000, 5000, 12000],
}
AFTER_MS = "700"


def _lib():
    lib = bin_dir().parent / "lib" / "libof_failalloc.so"
    if is_asan_build():
        return None, "allocation-failure injection needs binaries without ASan"
    if not lib.exists():
        return None, f"{lib} not built"
    return lib, ""


def _injection(lib, nth: int | None) -> dict[str, str | None]:
    if nth is None:
        return {"LD_PRELOAD": None, "OF_FAILALLOC_NTH": None}
    return {"LD_PRELOAD": str(lib), "OF_FAILALLOC_NTH": str(nth),
            "OF_FAILALLOC_AFTER_MS": AFTER_MS, "OF_FAILALLOC_VERBOSE": "2"}


class Supervisor:
    """Moves each service through its schedule of injection points, as a
    process supervisor with Restart=always would restart it: a service that
    exited is started again with its next point; one that absorbed its
    failed allocation (still running ABSORB_S after the failure was logged)
    is restarted (SIGTERM, must exit 0) with its next point, so that every
    point is reached. Every end is classified:
      oom       exit 1 with "out of memory" logged (of_oom),
      abort     SIGABRT from an assertion in a library (librdkafka's
                rd_malloc & co. assert when out of memory),
      absorbed  the failure was handled in place; clean exit on SIGTERM,
      unreached the run ended (SIGTERM, clean) before its N-th allocation,
      other     anything else (a crash, a hang at SIGTERM): a defect."""

    ABSORB_S = 3.0

    def __init__(self, stack: Stack, lib, faults: Faults):
        self.stack, self.lib, self.faults = stack, lib, faults
        self.left = {name: list(s) for name, s in SCHEDULE.items()}
        self.ends: list[tuple[str, str, int | None]] = []  # (service, kind, rc)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="supervisor")
        self._mark = {}   # service -> log length at its current start
        self._seen_at = {}  # service -> monotonic time its failure was first seen

    def start_all(self) -> None:
        for name in SERVICES:
            self._next(name, self.stack.svc(name))
        self.thread.start()

    def _since_start(self, name: str) -> str:
        return self.stack.svc(name).log()[self._mark.get(name, 0):]

    def _next(self, name: str, svc) -> None:
        nxt = self.left[name].pop(0) if self.left[name] else None
        if svc.is_running():
            svc.stop()
        self._mark[name] = len(svc.log())
        self._seen_at.pop(name, None)
        svc.restart(env=_injection(self.lib, nxt), wait_ready=False)

    def _classify_exit(self, name: str, rc: int | None) -> str:
        text = self._since_start(name)
        if rc == 1 and "out of memory" in text:
            return "oom"
        if rc == -6 and "Assertion" in text:
            return "abort"
        return "other"

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            for name in SERVICES:
                svc = self.stack.svc(name)
                if not svc.is_running():
                    rc = svc.returncode
                    self.ends.append((name, self._classify_exit(name, rc), rc))
                    if name == "notify":  # its crash window explains a repeated delivery
                        self.faults._record("sigkill_notify", time.time(), 0.0, 0.0, rc=rc)
                    self._next(name, svc)
                elif "failalloc: failing" in self._since_start(name):
                    first = self._seen_at.setdefault(name, time.monotonic())
                    if time.monotonic() - first >= self.ABSORB_S and self.left[name]:
                        self._end_running(name, svc)
                        self._next(name, svc)

    def _end_running(self, name: str, svc) -> None:
        """SIGTERM a run that is still going (it may be exiting by itself
        right now: then its own exit is what counts)."""
        hit = "failalloc: failing" in self._since_start(name)
        rc = svc.stop()
        if rc != 0:
            kind = self._classify_exit(name, rc)
        else:
            kind = "absorbed" if hit else "unreached"
        self.ends.append((name, kind, rc))

    def exhausted(self) -> bool:
        """Every injection point used, and the last one reached."""
        return all(not self.left[name] and
                   ("LD_PRELOAD" not in self.stack.svc(name).env or
                    "failalloc: failing" in self._since_start(name))
                   for name in SERVICES)

    def finish(self) -> None:
        """No more injection: restart whatever still carries some."""
        self.stop.set()
        self.thread.join()
        for name in SERVICES:
            self.left[name] = []
            svc = self.stack.svc(name)
            if svc.is_running() and "LD_PRELOAD" not in svc.env:
                continue
            if svc.is_running():
                self._end_running(name, svc)
            else:
                rc = svc.returncode
                self.ends.append((name, self._classify_exit(name, rc), rc))
            self._next(name, svc)
        self.stack.wait_all_ready(120)


@pytest.mark.timeout(420)
def test_allocation_failures_lose_no_payment(tmp_path, kafka, pg, capsys):
    lib, why = _lib()
    if lib is None:
        pytest.skip(why)
    stack = Stack.create(tmp_path / "stack", kafka=kafka, pg=pg,
                         extra_env={"OF_RDKAFKA_SESSION_TIMEOUT_MS": "6000"})
    driver = None
    problems: list[str] = []
    try:
        for name in SERVICES:  # exits are expected and checked below
            stack.services.start(name, check_exit=False)
        rng = random.Random(13)
        cat = make_catalogue(rng, N_PAYMENTS, n_skus=20)
        stack.set_stock(cat.stock)
        payments = make_payments(rng, N_PAYMENTS, cat, uuid.uuid4().hex[:6])

        faults = Faults(stack, log=lambda m: None)
        sup = Supervisor(stack, lib, faults)
        sup.start_all()

        # Payments in batches until every service has been through its
        # whole schedule (how many allocations a payment costs differs per
        # service and per machine).
        driver = PaymentDriver(stack.svc("payment-gw").url, workers=32)
        for i in range(0, len(payments), BATCH):
            driver.run(payments[i:i + BATCH], RATE, phase="alloc")
            if sup.exhausted():
                break
        drained = driver.drain(timeout=150)
        sup.finish()
        quiet = wait_quiescent(stack, driver, timeout=150, log=print)
        fig = collect_figures(stack, driver, cat, faults)
        verify = run_verify(stack)

        injected = {name: stack.svc(name).log().count("failalloc: failing") for name in SERVICES}
        kinds = {name: dict(Counter(k for n, k, _ in sup.ends if n == name)) for name in SERVICES}
        text = format_table(fig, "allocation failures")
        text += f"\n  injected allocation failures {injected}\n  how each injected run ended {kinds}\n  {sup.ends}"
        print(text)
        with capsys.disabled():
            print("\n" + text, flush=True)

        # Every injection point was reached, and no failure crashed a
        # service or hung it (only of_oom exits, library aborts, or failures
        # handled in place).
        assert all(injected[name] >= len(SCHEDULE[name]) for name in SERVICES), injected
        assert not [e for e in sup.ends if e[1] == "other"], sup.ends
        assert sum(1 for e in sup.ends if e[1] == "oom") >= 3, sup.ends
        # Nothing lost, doubled or dead-lettered.
        assert drained and fig["unacknowledged"] == 0, fig
        assert fig["rejected"] == 0, fig["responses"]
        assert fig["lost"] == 0, fig["lost_order_ids"]
        assert fig["multi_outcome_orders"] == 0, fig["multi_outcome_examples"]
        assert fig["missing_notifications"] == 0, fig["missing_notification_examples"]
        assert fig["duplicate_notifications_outside_crash_windows"] == 0, fig["duplicate_examples"]
        assert fig["payment_dlq_records"] == 0 and fig["notify_dlq_records"] == 0, fig
        assert fig["unconserved_skus"] == 0 and fig["oversold_units"] == 0
        assert verify["rc"] == 0, verify["stdout"] + verify["stderr"]
        assert quiet
    finally:
        if driver is not None:
            driver.close()
        problems = stack.close()
    # Only the expected exits: any sanitizer report or a hang at SIGTERM is a problem.
    assert not problems, "\n".join(problems)
