"""Static checks of docker-compose.yml and deploy/Dockerfile (no Docker needed):
the services, images, ports, healthchecks and start order the contract
promises, only documented OF_* variables, and the image's package list in
step with deploy/packages.txt. Also: the docs' paths to other docs exist."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.util import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
CLUSTER = REPO_ROOT / "docker-compose.cluster.yml"
EDGE_CONF = REPO_ROOT / "deploy" / "nginx" / "edge.conf"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
PACKAGES = REPO_ROOT / "deploy" / "packages.txt"

# CONTRACT.md section 8.
CONTRACT_VARS = {
    "OF_KAFKA_BROKERS", "OF_PG_DSN", "OF_HTTP_PORT", "OF_LOG_LEVEL", "OF_WEBHOOK_SECRETS",
    "OF_ALLOW_UNSIGNED", "OF_ADMIN_TOKEN", "OF_NOTIFY_SECRET", "OF_NOTIFY_EMAIL_URL",
    "OF_NOTIFY_SMS_URL", "OF_NOTIFY_WEBHOOK_URL", "OF_NOTIFY_RETRY_DELAYS", "OF_TOPIC_PARTITIONS",
}
# Section 10's additions (2026-12-06).
CONTRACT_VARS_10 = {"OF_NOTIFY_WEBHOOK_ALLOW", "OF_GW_SIGNATURE_HEADER"}
# orderflow's documented extensions: topic/group prefix, where the services find
# their migrations, the URLs ofctl talks to, and the demo-stock switch of
# make up / the compose seed job.
EXTENSION_VARS = {
    "OF_TOPIC_PREFIX", "OF_MIGRATIONS_DIR", "OF_INVENTORY_URL", "OF_PAYMENT_GW_URL", "OF_SEED_DEMO",
    "OF_TOPIC_REPLICATION",
    # make up's cluster and replica switches (CONTRACT.md section 10), named in comments
    "OF_KAFKA_NODES", "OF_GW_REPLICAS", "OF_INVENTORY_REPLICAS", "OF_NOTIFY_REPLICAS",
    # the consumers' group.instance.id (README, configuration)
    "OF_KAFKA_INSTANCE_ID",
}
# deploy/packages.txt entries the container image does not need: they run the
# local stack (make up), the tests and the benchmarks on the host.
HOST_ONLY_PACKAGES = {
    "postgresql", "default-jdk-headless", "maven", "python3-venv", "kcat", "wrk", "clang", "libclang-rt-14-dev", "valgrind",
    "uuid-runtime", "socat", "procps", "docker-compose", "prometheus",
}

SERVICE_PORTS = {"payment-gw": 8080, "inventory": 8081, "notify": 8082}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _env(svc: dict) -> dict:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env


def _depends(svc: dict) -> dict:
    dep = svc.get("depends_on") or {}
    return {d: {"condition": "service_started"} for d in dep} if isinstance(dep, list) else dep


def test_contract_vars_match_contract_text():
    """Our list of section 8's variables matches the contract: the shared
    one beside the checkout when present, else the copy in docs/."""
    for candidate in (REPO_ROOT.parent / "shared" / "CONTRACT.md",
                      REPO_ROOT / "docs" / "CONTRACT.md"):
        if candidate.exists():
            text = candidate.read_text()
            section = text.split("## 8.", 1)[1].split("\n## ", 1)[0]
            assert set(re.findall(r"\bOF_[A-Z_]+\b", section)) == CONTRACT_VARS
            return
    pytest.skip("CONTRACT.md not found beside the checkout")


def _compose_clis() -> list[list[str]]:
    """The Compose CLIs to check the files with: Debian's docker-compose 1.29
    (deploy/packages.txt) always, the Compose v2 plugin when this docker
    client has it."""
    clis = [["docker-compose"]]
    try:
        if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20).returncode == 0:
            clis.append(["docker", "compose"])
    except (OSError, subprocess.TimeoutExpired):
        pass
    return clis


def compose_config(files: list[Path], *args: str, profiles: str = "") -> list[str]:
    """Run `<cli> -f F... config ARGS` with every available Compose CLI (no
    engine needed); returns each one's stdout, asserting exit 0."""
    assert shutil.which("docker-compose"), "docker-compose not installed (deploy/install-deps.sh)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OF_", "COMPOSE_", "DOCKER_"))}
    if profiles:
        env["COMPOSE_PROFILES"] = profiles
    outs = []
    for cli in _compose_clis():
        cmd = [*cli, *(a for f in files for a in ("-f", str(f))), "config", *args]
        r = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"{' '.join(cmd)} rejected the file(s):\n{r.stderr}{r.stdout}"
        outs.append(r.stdout)
    return outs


def test_compose_cli_accepts_the_file():
    """Issue 15 defect 2: Debian bookworm's docker-compose 1.29 rejected the
    file (top-level `name:` is Compose v2 only). The real tool must accept
    it, and resolve the same services as the YAML."""
    out = compose_config([COMPOSE], "--services")
    for o in out:
        assert {"kafka", "postgres", "init", "seed", "edge", *SERVICE_PORTS} <= set(o.split())
    for o in compose_config([COMPOSE, CLUSTER], "--services"):
        assert {"kafka", "kafka-2", "kafka-3", *SERVICE_PORTS} <= set(o.split())


def test_services_present(compose):
    services = compose["services"]
    for name in ("kafka", "postgres", "init", "seed", "edge", *SERVICE_PORTS):
        assert name in services, f"compose service {name} missing"


def test_images(compose):
    s = compose["services"]
    assert s["kafka"]["image"] == "apache/kafka:3.9.1"
    assert s["postgres"]["image"] == "postgres:15"
    for name in ("init", "seed", *SERVICE_PORTS):
        assert s[name]["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert s[name]["build"]["context"] == "."
        assert s[name]["image"] == "orderflow:dev"


def test_kafka_is_single_node_kraft(compose):
    env = _env(compose["services"]["kafka"])
    assert str(env["KAFKA_NODE_ID"]) == "1"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith("1@")
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    for k in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
              "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert str(env[k]) == "1"
    assert len(env["CLUSTER_ID"]) == 22
    brokers = _env(compose["services"]["payment-gw"])["OF_KAFKA_BROKERS"]
    assert f"INTERNAL://{brokers}" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_healthchecks(compose):
    s = compose["services"]
    assert "kafka-broker-api-versions.sh" in " ".join(s["kafka"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"])
    for name, port in SERVICE_PORTS.items():
        test = " ".join(s[name]["healthcheck"]["test"])
        assert "curl" in test and f":{port}/readyz" in test, name


def test_ports_and_http_port(compose):
    """The services publish no host port and have no container name (so
    `--scale` works); `edge` publishes 8080-8082 and proxies each to its
    service by name (every replica, through Docker's DNS)."""
    s = compose["services"]
    edge_conf = EDGE_CONF.read_text()
    servers = re.findall(r"listen (\d+);.*?proxy_pass http://\$(\w+);", edge_conf, re.S)
    upstreams = dict(re.findall(r"set \$(\w+) ([\w.-]+:\d+);", edge_conf))
    routed = {int(port): upstreams[var] for port, var in servers}
    for name, port in SERVICE_PORTS.items():
        assert "ports" not in s[name] and "container_name" not in s[name], name
        assert str(_env(s[name])["OF_HTTP_PORT"]) == str(port), name
        assert f"{port}:{port}" in [str(p) for p in s["edge"]["ports"]], name
        assert routed[port] == f"{name}:{port}", name
        assert _depends(s["edge"])[name]["condition"] == "service_healthy"
    assert "./deploy/nginx/edge.conf:/etc/nginx/conf.d/default.conf:ro" in s["edge"]["volumes"]
    assert "resolver 127.0.0.11" in edge_conf  # Docker's DNS, re-resolved: scaled replicas join


def test_edge_conf_accepted_by_nginx(tmp_path):
    """nginx -t on deploy/nginx/edge.conf, included the way the nginx image
    includes conf.d/ (only where nginx is installed; it is not in
    deploy/packages.txt)."""
    if not shutil.which("nginx"):
        pytest.skip("nginx not installed")
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
                    f"http {{ access_log off; include {EDGE_CONF}; }}\n")
    r = subprocess.run(["nginx", "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_cluster_override():
    """docker-compose.cluster.yml on top of docker-compose.yml, as the real
    Compose CLI merges them: three KRaft nodes in one quorum, replication
    factor 3 and min.insync.replicas=2 for every topic (internal ones too),
    every orderflow container pointed at all three, topics created with 3
    replicas."""
    for merged_text in compose_config([COMPOSE, CLUSTER]):
        merged = yaml.safe_load(merged_text)
        s = merged["services"]
        nodes = ["kafka", "kafka-2", "kafka-3"]
        voters = "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
        for i, name in enumerate(nodes):
            env = _env(s[name])
            assert s[name]["image"] == "apache/kafka:3.9.1" and "container_name" not in s[name]
            assert str(env["KAFKA_NODE_ID"]) == str(i + 1)
            assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
            assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
            assert env["CLUSTER_ID"] == _env(s["kafka"])["CLUSTER_ID"]
            for k in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                      "KAFKA_DEFAULT_REPLICATION_FACTOR"):
                assert str(env[k]) == "3", (name, k)
            assert str(env["KAFKA_MIN_INSYNC_REPLICAS"]) == "2"
            assert str(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == "2"
            assert f"INTERNAL://{name}:19092" in env["KAFKA_ADVERTISED_LISTENERS"]
            assert f"EXTERNAL://localhost:{9092 + 2 * i}" in env["KAFKA_ADVERTISED_LISTENERS"]
            assert {(int(p["published"]), int(p["target"])) for p in s[name]["ports"]} == {(9092 + 2 * i, 9092)}
        for name in ("init", "seed", *SERVICE_PORTS):
            assert _env(s[name])["OF_KAFKA_BROKERS"] == "kafka:19092,kafka-2:19092,kafka-3:19092", name
        for name in ("init", *SERVICE_PORTS):
            assert {n: c["condition"] for n, c in _depends(s[name]).items() if n in nodes} \
                == dict.fromkeys(nodes, "service_healthy"), name
        assert str(_env(s["init"])["OF_TOPIC_REPLICATION"]) == "3"
        assert {"kafka-2-data", "kafka-3-data"} <= set(merged["volumes"])
    used = set(re.findall(r"\bOF_[A-Z_]+\b", CLUSTER.read_text()))
    assert not used - CONTRACT_VARS - EXTENSION_VARS


def test_start_order(compose):
    s = compose["services"]
    assert _depends(s["init"])["kafka"]["condition"] == "service_healthy"
    for name in SERVICE_PORTS:
        dep = _depends(s[name])
        assert dep["kafka"]["condition"] == "service_healthy", name
        assert dep["init"]["condition"] == "service_completed_successfully", name
    for name in ("inventory", "notify"):
        assert _depends(s[name])["postgres"]["condition"] == "service_healthy", name
    assert _depends(s["seed"])["inventory"]["condition"] == "service_healthy"
    assert s["init"]["command"] == ["ofctl", "topics", "create"]
    assert "ofctl stock set" in " ".join(s["seed"]["command"])


def test_only_documented_of_vars(compose):
    text = COMPOSE.read_text()
    used = set(re.findall(r"\bOF_[A-Z_]+\b", text))
    undocumented = used - CONTRACT_VARS - CONTRACT_VARS_10 - EXTENSION_VARS
    assert not undocumented, f"undocumented variables in docker-compose.yml: {sorted(undocumented)}"
    for name in SERVICE_PORTS:
        env = _env(compose["services"][name])
        for var in ("OF_KAFKA_BROKERS", "OF_PG_DSN", "OF_WEBHOOK_SECRETS", "OF_ADMIN_TOKEN",
                    "OF_NOTIFY_SECRET", "OF_LOG_LEVEL"):
            assert var in env, f"{name} lacks {var}"


def test_dev_defaults(compose):
    env = _env(compose["services"]["payment-gw"])
    assert env["OF_WEBHOOK_SECRETS"].endswith("dev-webhook-secret}")
    assert env["OF_ADMIN_TOKEN"].endswith("dev-admin-token}")
    assert env["OF_NOTIFY_SECRET"].endswith("dev-notify-secret}")


def _packages_txt() -> set[str]:
    names = set()
    for line in PACKAGES.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line)
    return names


def _dockerfile_stages() -> dict[str, str]:
    """Stage name -> its text (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"\s*FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            current = m.group(1) or f"stage{len(stages)}"
            stages[current] = ""
        elif current is not None:
            stages[current] += line + "\n"
    return stages


def _apt_installs(stage_text: str) -> set[str]:
    names: set[str] = set()
    for m in re.finditer(r"apt-get install ([^&;\n]*)", stage_text):
        names |= {w for w in m.group(1).split() if not w.startswith("-")}
    return names


def test_dockerfile_packages_match_packages_txt():
    listed = _packages_txt()
    assert HOST_ONLY_PACKAGES <= listed, f"host-only packages not in packages.txt: {HOST_ONLY_PACKAGES - listed}"
    build = _apt_installs(_dockerfile_stages()["build"])
    assert build == listed - HOST_ONLY_PACKAGES, (
        f"Dockerfile build stage vs deploy/packages.txt: only in Dockerfile {sorted(build - listed)}, "
        f"missing from Dockerfile {sorted(listed - HOST_ONLY_PACKAGES - build)}")


def test_dockerfile_runtime_stage():
    stages = _dockerfile_stages()
    runtime = stages["runtime"]
    pkgs = _apt_installs(runtime)
    assert "curl" in pkgs  # the compose healthchecks use it
    assert {"librdkafka1", "libmicrohttpd12", "libpq5", "libcjson1", "libcurl4", "libssl3"} <= pkgs
    users = re.findall(r"^\s*USER\s+(\S+)", runtime, re.M)
    assert users and users[-1] not in ("root", "0"), "services must not run as root"
    for b in ("payment-gw", "inventory", "notify", "ofctl"):
        assert b in stages["build"], f"{b} not copied out of the build stage"
    # the binaries' RPATH points at the librdkafka built from source: it is
    # built with that prefix, handed to CMake, and copied to the same path
    assert "deploy/librdkafka.sh build /opt/librdkafka" in stages["build"]
    assert "-DOF_RDKAFKA_PREFIX=/opt/librdkafka" in stages["build"]
    assert re.search(r"COPY --from=build /opt/librdkafka/lib/librdkafka\.so\.1 /opt/librdkafka/lib/",
                     runtime), "librdkafka.so.1 not copied into the runtime image"
    assert "OF_MIGRATIONS_DIR=/usr/share/orderflow/sql" in runtime
    assert DOCKERFILE.read_text().startswith("#") and "FROM debian:bookworm" in DOCKERFILE.read_text()


def test_packages_txt_has_the_c_build_deps():
    need = {"build-essential", "cmake", "pkg-config", "librdkafka-dev", "libmicrohttpd-dev", "libpq-dev",
            "libcjson-dev", "libcurl4-openssl-dev", "libssl-dev", "libcmocka-dev"}
    assert need <= _packages_txt()


def test_compose_sink_uses_devsink(compose):
    sink = compose["services"]["sink"]
    assert any("deploy/devsink.py" in v for v in sink["volumes"])
    assert Path(REPO_ROOT / "deploy" / "devsink.py").exists()


def test_docs_name_only_paths_that_exist():
    """Issue 15 defect 10: docs/ARCHITECTURE.md sent readers to
    ../shared/CONTRACT.md, which is not in the repository. Every markdown
    link to a .md file, and every `path/to/file.md` in backticks, in README.md
    and docs/ resolves to a file inside the repository (from the doc's folder
    or the repository root)."""
    root = REPO_ROOT.resolve()
    missing = []
    for doc in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        for m in re.finditer(r"`([\w./-]+/[\w.-]+\.md)`|\]\(([^)\s#]+\.md)(?:#[^)]*)?\)", doc.read_text()):
            path = m.group(1) or m.group(2)
            if not any((base / path).resolve().is_file() and root in (base / path).resolve().parents
                       for base in (doc.parent, REPO_ROOT)):
                missing.append(f"{doc.relative_to(REPO_ROOT)}: {path}")
    assert not missing, f"docs name files that are not in the repository: {missing}"


def test_monitoring_profile(compose):
    """Prometheus and Grafana run only in the `monitoring` profile, with the
    shipped config, rules, datasource and dashboard mounted; the dashboard
    uses the Prometheus datasource the provisioning defines (or a variable
    of that type), and `docker-compose config` accepts the profile."""
    s = compose["services"]
    for name in ("prometheus", "grafana"):
        assert s[name].get("profiles") == ["monitoring"], name
    assert "./deploy/prometheus:/etc/prometheus:ro" in s["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus-compose.yml" in s["prometheus"]["command"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in s["grafana"]["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in s["grafana"]["volumes"]
    prov = yaml.safe_load((REPO_ROOT / "deploy/grafana/provisioning/dashboards/orderflow.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    ds = yaml.safe_load((REPO_ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    [source] = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dash = json.loads((REPO_ROOT / "deploy/grafana/dashboards/orderflow.json").read_text())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        uid = panel["datasource"]["uid"]
        assert panel["datasource"]["type"] == "prometheus", panel["title"]
        assert uid == source["uid"] or (uid.startswith("${") and variables[uid[2:-1]]["type"] == "datasource"
                                        and variables[uid[2:-1]]["query"] == "prometheus"), panel["title"]
        assert panel["targets"], panel["title"]
    compose_config([COMPOSE], "-q", profiles="monitoring")
