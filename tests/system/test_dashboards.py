"""deploy/prometheus/ and deploy/grafana/ against a live stack: Debian's real
`prometheus` scrapes the three services (started by the harness fixtures)
with the shipped scrape config, targets rewritten to the test's ports, and
the shipped alert rules; after representative traffic (payments accepted and
refused, a reservation refused, a delivery retried, one dead-lettered, a
poison record) every query of every Grafana panel returns data and every
alert rule evaluates and uses only metrics that exist. `promtool check
config` / `check rules` pass on the shipped files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest
import requests
import yaml

from harness import payment, post_payment, wait_until
from harness.util import REPO_ROOT, free_port, tail

PROM_DIR = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "orderflow.json"
AUTH = {"Authorization": "Bearer test-admin-token"}

GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "5s", "$__range": "5m"}


def _promtool(*args: str) -> subprocess.CompletedProcess:
    assert shutil.which("promtool"), "promtool not installed (deploy/packages.txt: prometheus)"
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_shipped_files():
    for cfg in ("prometheus.yml", "prometheus-compose.yml"):
        r = _promtool("check", "config", str(PROM_DIR / cfg))
        assert r.returncode == 0, r.stdout + r.stderr
    r = _promtool("check", "rules", str(PROM_DIR / "alerts.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


def _panel_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            expr = t["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            out.append((f'{panel["title"]} [{t["refId"]}]', expr))
    return out


def _alert_rules() -> list[tuple[str, str]]:
    doc = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(orderflow_[a-z0-9_]+)", expr))
    if re.search(r"\bup\{", expr):
        names.add("up")
    return names


class Prometheus:
    def __init__(self, tmp_path, targets: dict[str, str]):
        """Debian's prometheus with deploy/prometheus/prometheus.yml, its
        targets replaced, scraping and evaluating every second."""
        cfg = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
        cfg["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
        cfg["rule_files"] = [str(PROM_DIR / f) for f in cfg["rule_files"]]
        jobs = {j["job_name"] for j in cfg["scrape_configs"]}
        assert jobs == set(targets), f"scrape jobs {jobs} are not the three services"
        for job in cfg["scrape_configs"]:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
        self.config = tmp_path / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(cfg))
        r = _promtool("check", "config", str(self.config))
        assert r.returncode == 0, r.stdout + r.stderr
        assert shutil.which("prometheus"), "prometheus not installed (deploy/packages.txt)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "prometheus.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                ["prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: requests.get(f"{self.url}/-/ready", timeout=1).ok, timeout=30,
                   message=f"prometheus ready ({tail(self.log, 20)})")

    def api(self, path: str, **params) -> dict:
        r = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = r.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def test_dashboards_and_alerts_on_a_live_stack(services, sink, kafka, ns, tmp_path):
    gw = services.start("payment-gw")
    inv = services.start("inventory")
    ntf = services.start("notify")
    prom = Prometheus(tmp_path, {"payment-gw": f"127.0.0.1:{gw.port}",
                                 "inventory": f"127.0.0.1:{inv.port}",
                                 "notify": f"127.0.0.1:{ntf.port}"})
    try:
        # --- traffic: every kind of outcome the dashboard shows ---------------
        assert inv.put("/v1/stock/SKU-DASH", json={"available": 5}, headers=AUTH).status_code == 200
        sink.respond("/email", [500])   # transient: a retry tier
        sink.respond("/sms", [400])     # permanent: notify.dlq
        ok = payment(order_id="ord_dash_ok", items=["SKU-DASH:1"], email="ana@example.com", phone="+491510000000")
        assert post_payment(gw.url, ok).status_code == 202
        assert post_payment(gw.url, payment(order_id="ord_dash_unknown", items=["SKU-NONE:1"])).status_code == 202
        assert post_payment(gw.url, payment(order_id="ord_dash_short", items=["SKU-DASH:99"])).status_code == 202
        assert post_payment(gw.url, {"payment_id": "pay_bad"}).status_code == 400
        assert post_payment(gw.url, payment(), secret="wrong-secret").status_code == 401
        kafka.produce(ns.topic("payment.success"), "ord_dash_poison", b"not json",
                      headers={"ce_specversion": "1.0", "ce_type": "payment.success.v1", "ce_id": "poison-1"})
        needed = {"orderflow_notify_retries_total", "orderflow_notify_dlq_total", "orderflow_inventory_dlq_total"}
        wait_until(lambda: all(m in (inv.metrics() + ntf.metrics()) for m in needed), timeout=30,
                   message=f"the services to count {sorted(needed)}")
        sink.wait_for(2, timeout=30, path="/email")  # the retry delivered

        # --- every panel query returns data ----------------------------------
        wait_until(lambda: len(prom.query('up{job=~"payment-gw|inventory|notify"} == 1')) == 3, timeout=30,
                   message="prometheus to scrape all three services")
        queries = _panel_queries()
        assert len(queries) >= 20

        def empty() -> list[str]:
            return [f"{title}: {expr}" for title, expr in queries if not prom.query(expr)]
        missing: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            missing = empty()
            if not missing:
                break
            time.sleep(1)
        assert not missing, "dashboard queries without data:\n  " + "\n  ".join(missing)

        # --- every alert rule evaluates, on metrics that exist -----------------
        names = set(prom.api("label/__name__/values"))
        for alert, expr in _alert_rules():
            prom.query(expr)  # asserts status success
            absent = _metric_names(expr) - names
            assert not absent, f"{alert} uses metrics no service exposes: {sorted(absent)}"
        panel_metrics = set().union(*(_metric_names(e) for _, e in queries))
        assert not (panel_metrics - names), sorted(panel_metrics - names)

        def rules_evaluated() -> list:
            rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
            return rules if rules and all(r.get("health") != "unknown" for r in rules) else []
        rules = wait_until(rules_evaluated, timeout=20, message="every rule evaluated once")
        assert {r["name"] for r in rules} == {a for a, _ in _alert_rules()}
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not bad, f"rules failing to evaluate: {bad}"
        # the stack is healthy: nothing about readiness, scrapes or lag fires
        firing = {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]}
        assert not firing & {"OrderflowNotReady", "OrderflowDown"}, firing
    finally:
        prom.stop()
