"""deploy/ stays true to the code, with no Docker: compose, topics, settings, metric names, rules.

Docker cannot run here, so every name the deployment uses is checked against the code
instead: ARSCORE_* variables are Settings fields, topic names and partitions are the
Settings defaults, and every metric in a dashboard or rule is registered by the worker's
metrics (a fresh registry, not a grep of the source).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.health import HealthExporter
from streams.metrics import Metrics
from streams.settings import PREFIX, Settings

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
METRIC = re.compile(r"\barscore_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = load_yaml(COMPOSE)
    assert isinstance(doc, dict) and "services" in doc
    return doc


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command_text(service: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        parts += [value] if isinstance(value, str) else [str(v) for v in value]
    return "\n".join(parts)


# --- compose ----------------------------------------------------------------------------


def test_compose_has_every_part(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "topics", "worker", "simulator", "prometheus", "grafana"} <= services.keys()
    assert services["kafka"]["image"] == "apache/kafka:3.8.0"
    assert services["topics"]["image"] == "apache/kafka:3.8.0"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_images_are_pinned_or_built_here(compose: dict[str, Any]) -> None:
    built = {s["image"] for s in compose["services"].values() if "build" in s and "image" in s}
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image"
        if image in built:
            continue
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
    worker = compose["services"]["worker"]
    assert (COMPOSE.parent / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()


def test_kafka_runs_kraft_single_node(compose: dict[str, Any]) -> None:
    env = _env(compose["services"]["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_every_arscore_variable_is_a_setting(compose: dict[str, Any]) -> None:
    from streams.worklist.config import WEB_VARIABLES

    settings_names = {PREFIX + f.name.upper() for f in fields(Settings)}
    known = settings_names | set(WEB_VARIABLES)  # `arscore web` reads a few of its own
    used: dict[str, dict[str, str]] = {}
    for name, service in compose["services"].items():
        env = _env(service)
        used[name] = {k: v for k, v in env.items() if k.startswith(PREFIX)}
        in_commands = set(re.findall(r"ARSCORE_[A-Z_]+", _command_text(service)))
        assert in_commands <= known, f"{name}: unknown {in_commands - known}"
    dockerfile = set(re.findall(r"ARSCORE_[A-Z_]+", (DEPLOY / "Dockerfile").read_text()))
    assert dockerfile <= known, f"Dockerfile: unknown {dockerfile - known}"
    for name, env in used.items():
        assert env.keys() <= known, f"{name}: not Settings fields: {sorted(env.keys() - known)}"
        assert env.keys() & set(WEB_VARIABLES) == set() or name == "web", f"{name}: web-only"
        Settings.from_env(env)  # and every value parses
    worker = Settings.from_env(used["worker"])
    assert worker.web_host == "0.0.0.0", "metrics must listen on all interfaces in a container"
    assert worker.broker_url == "kafka:9092"
    assert Settings.from_env(used["simulator"]).broker_url == worker.broker_url


def test_topics_match_the_settings(compose: dict[str, Any]) -> None:
    s = Settings.from_env(_env(compose["services"]["worker"]))
    d = Settings()
    assert (s.invoices_topic, s.payments_topic, s.scores_topic, s.alerts_topic,
            s.deadletter_topic) == (d.invoices_topic, d.payments_topic, d.scores_topic,
                                    d.alerts_topic, d.deadletter_topic)
    text = _command_text(compose["services"]["topics"])
    created: dict[str, tuple[int, str]] = {}
    for m in re.finditer(r"--topic (\S+) --partitions (\d+)((?: --config \S+)*)", text):
        created[m.group(1)] = (int(m.group(2)), m.group(3).strip())
    compact = "--config cleanup.policy=compact"
    assert created == {
        s.invoices_topic: (s.partitions, ""),
        s.payments_topic: (s.partitions, ""),
        s.scores_topic: (s.partitions, compact),
        s.alerts_topic: (s.partitions, ""),
        s.deadletter_topic: (1, ""),  # as streams.broker.ensure_topics creates it
    }
    assert "--replication-factor 1" in text and s.replication_factor == 1


def test_workers_share_one_group_and_prometheus_scrapes_their_port(compose: dict[str, Any]) -> None:
    s = Settings.from_env(_env(compose["services"]["worker"]))
    assert s.app_id == "arscore"
    config = load_yaml(PROM_CONFIG)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    sd = jobs["arscore"]["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["port"] == s.metrics_port
    assert str(s.metrics_port) in " ".join(compose["services"]["worker"]["healthcheck"]["test"])
    assert config["rule_files"] == ["rules.yml"]


def test_grafana_provisioning_matches_compose(compose: dict[str, Any]) -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    datasource = load_yaml(prov / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    provider = load_yaml(prov / "dashboards" / "arscore.yml")["providers"][0]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert len(DASHBOARDS) == 4
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        for panel in dash["panels"]:
            assert panel["datasource"]["uid"] == datasource["uid"], (path.name, panel["title"])


# --- metric names -------------------------------------------------------------------------


def exported_names() -> set[str]:
    """Every name a worker registers (family names and sample names), from a fresh registry."""
    registry = CollectorRegistry()
    Metrics(registry)
    HealthExporter(registry)
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        names.update(sample.name for sample in family.samples)
    return names


def _exprs() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for group in load_yaml(RULES)["groups"]:
        out += [(f"rules.yml:{rule['alert']}", rule["expr"]) for rule in group["rules"]]
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            out += [(f"{path.name}:{panel['title']}", t["expr"]) for t in panel["targets"]]
    return out


def test_every_metric_in_rules_and_dashboards_is_exported() -> None:
    exported = exported_names()
    assert "arscore_events_total" in exported and "arscore_score_psi" in exported
    missing = []
    for where, expr in _exprs():
        for name in METRIC.findall(expr):
            base = name
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix):
                    base = name[: -len(suffix)]
            if name not in exported and base not in exported:
                missing.append((where, name))
    assert not missing, missing


def test_rules_have_summary_and_runbook() -> None:
    alerts = []
    for group in load_yaml(RULES)["groups"]:
        for rule in group["rules"]:
            alerts.append(rule["alert"])
            assert rule["annotations"].get("summary"), rule["alert"]
            assert rule["annotations"].get("runbook"), rule["alert"]
            assert rule["labels"]["severity"] in ("page", "warn", "info")
    for wanted in ("ArscoreRiskSpike", "ArscoreScoreDrift", "ArscoreModelDegradation",
                   "ArscoreConsumerLag", "ArscoreDeadLettersRising", "ArscoreWorkerDown"):
        assert wanted in alerts
    drift = next(r for g in load_yaml(RULES)["groups"] for r in g["rules"]
                 if r["alert"] == "ArscoreScoreDrift")
    assert "arscore_score_psi" in drift["expr"] and "> 0.2" in drift["expr"]


def test_readme_describes_every_panel() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert f"**{dash['title']}**" in readme, dash["title"]
        for panel in dash["panels"]:
            assert f"*{panel['title']}*:" in readme, f"{path.name}: {panel['title']}"
    assert "127.0.0.1" in readme and "ARSCORE_WEB_HOST=0.0.0.0" in readme


# --- promtool ---------------------------------------------------------------------------------


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus; .ci/run does it)")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config() -> None:
    result = _promtool("check", "config", str(PROM_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_web_service_uses_postgres_and_needs_a_token(compose: dict[str, Any]) -> None:
    from streams.settings import Secret
    from streams.worklist.config import web_config

    services = compose["services"]
    env = _env(services["web"])
    config = web_config(Settings.from_env(env), {**env, "ARSCORE_WEB_TOKEN": "t"})
    assert config.dialect == "postgresql"
    pg = _env(services["postgres"])
    assert config.database_url == Secret(f"postgresql://{pg['POSTGRES_USER']}:"
                                         f"{pg['POSTGRES_PASSWORD']}@postgres:5432/"
                                         f"{pg['POSTGRES_DB']}")
    assert env["ARSCORE_WEB_TOKEN"].startswith("${ARSCORE_WEB_TOKEN:?")  # no default token
    assert services["web"]["ports"] == [f"127.0.0.1:{config.port}:{config.port}"]
    assert services["web"]["command"][0] == "web"
