"""Fast checks of the Docker deployment files, without Docker.

* docker-compose.yml parses; the five services, Kafka, MongoDB, the one-shot ``topics`` service,
  Prometheus and Grafana are wired as deploy/README.md describes;
* every ``HOTLINE_*`` name in docker-compose.yml, Dockerfile and deploy/README.md is a field of
  :class:`hotline.settings.Settings` (``HOTLINE_A__B`` -> field ``a``, sub-field ``b``), and the
  compose environment really loads into Settings;
* the Grafana dashboard parses and every panel/query uses the provisioned datasource uid;
* every metric name used in dashboard queries and alert rules is one the services expose
  (the contract list below, itself checked against the services' Prometheus registry), so a
  renamed metric breaks this test;
* with ``promtool`` installed: ``check config``, ``check rules``, the dashboard queries parse,
  and the alert rules fire on synthetic series (``promtool test rules``).

YAML: PyYAML is used when importable; otherwise the files are parsed by a system ``python3`` that
has it (``python3 -c 'import yaml'``), else the structural checks skip with the reason.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hotline.settings import REPO_ROOT, SERVICES, Settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
DEPLOY = REPO_ROOT / "deploy"
README = DEPLOY / "README.md"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS_YML = DEPLOY / "prometheus" / "alerts.yml"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "hotline.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
OVERVIEW = DASHBOARDS / "hotline-overview.json"
DATASOURCE_UID = "hotline-prometheus"

# The metric contract between the services and the dashboards/alerts: name -> (type, labels).
# Counters are listed by their exposed name (with _total).
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hotline_tickets_received_total": ("counter", ("ticket_type", "source")),
    "hotline_tickets_duplicate_total": ("counter", ("source",)),
    "hotline_assignments_total": ("counter", ("unit_type", "method")),
    "hotline_cases_opened_total": ("counter", ("unit_type",)),
    "hotline_dead_letters_total": ("counter", ("service", "reason")),
    "hotline_consumer_records_total": ("counter", ("service", "topic", "outcome")),
    "hotline_events_published_total": ("counter", ("service", "topic")),
    "hotline_consumer_retries_total": ("counter", ("service", "topic")),
    "hotline_consumer_batch_seconds": ("histogram", ("service", "topic")),
    "hotline_case_open_delay_seconds": ("histogram", ()),
    "hotline_consumer_lag_records": ("gauge", ("service", "topic")),
    "hotline_outbox_pending": ("gauge", ("service",)),
    "hotline_district_tickets": ("gauge", ("stage",)),
    "hotline_district_tickets_by_dimension": ("gauge", ("stage", "dimension", "value")),
    "hotline_warnings_raised_total": ("counter", ("kind", "level")),
    "hotline_kpi_rate_ratio": ("gauge", ("rate", "dimension", "value")),
    "hotline_kpi_denominator": ("gauge", ("rate", "dimension", "value")),
    "hotline_deputy_closed_on_time_ratio": ("gauge", ("level", "street")),
    "hotline_deputy_satisfaction_ratio": ("gauge", ("level", "street")),
    # deadlines and supervision (services/supervision/cases/sla_metrics.py, handlers.py, hotline/timers.py)
    "hotline_cases_overdue": ("gauge", ("unit_type", "category")),
    "hotline_cases_due_within_24h": ("gauge", ("unit_type", "category")),
    "hotline_case_backlog": ("gauge", ("age",)),
    "hotline_cases_supervised": ("gauge", ("level",)),
    "hotline_calendar_known_days_ahead": ("gauge", ()),
    "hotline_evaluations_waiting": ("gauge", ()),
    "hotline_evaluation_wait_oldest_seconds": ("gauge", ()),
    "hotline_timers_fired_total": ("counter", ("service", "kind", "stage")),
    "hotline_timer_lateness_seconds": ("gauge", ("service",)),
    "hotline_timer_scan_seconds": ("histogram", ("service",)),
}
# series names a query may select: counters and gauges as is, histograms by their _bucket/_sum/_count
# series (in Prometheus 2 a classic histogram has no series under its bare name), plus `up`
QUERYABLE = {
    series
    for name, (kind, _) in METRICS.items()
    for series in ([f"{name}_bucket", f"{name}_sum", f"{name}_count"] if kind == "histogram" else [name])
} | {"up"}

PROMTOOL = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
NO_PROMTOOL = "promtool is not installed (Debian package `prometheus`); the Prometheus files were not checked by it"


# --------------------------------------------------------------------------------------------
# YAML loading without making PyYAML a hard dependency


def _system_python_with_yaml() -> str | None:
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if not candidate or Path(candidate).resolve() == Path(sys.executable).resolve():
            continue
        try:
            ok = subprocess.run([candidate, "-c", "import yaml"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return candidate
    return None


_YAML_TO_JSON = (
    "import json, sys, yaml\nprint(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8')), default=str))\n"
)


def load_yaml(path: Path) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ModuleNotFoundError:
        python = _system_python_with_yaml()
        if python is None:
            pytest.skip(
                f"cannot parse {path.name}: PyYAML is not installed in this environment and no system "
                "python3 has it (add `pyyaml` to the dev dependency group)"
            )
        out = subprocess.run([python, "-c", _YAML_TO_JSON, str(path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{path} is not valid YAML:\n{out.stderr}"
        return json.loads(out.stdout)
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = load_yaml(COMPOSE)
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), "docker-compose.yml has no services"
    return doc


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    return " ".join(test) if isinstance(test, list) else str(test or "")


# --------------------------------------------------------------------------------------------
# HOTLINE_* names <-> Settings

HOTLINE_NAME = re.compile(r"\bHOTLINE_[A-Z0-9]+(?:_{1,2}[A-Z0-9]+)*")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):  # Optional[Model] and the like
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def settings_path_error(env_name: str) -> str | None:
    """Why ``env_name`` is not a Settings field, or None when it is."""
    prefix = Settings.model_config.get("env_prefix", "HOTLINE_")
    delimiter = Settings.model_config.get("env_nested_delimiter", "__")
    if not env_name.startswith(prefix):
        return f"{env_name}: no {prefix} prefix"
    parts = env_name[len(prefix) :].lower().split(delimiter)
    model: type[BaseModel] | None = Settings
    walked: list[str] = []
    for part in parts:
        if model is None:
            return f"{env_name}: {'.'.join(walked)} has no sub-fields"
        if part not in model.model_fields:
            where = ".".join(walked) or "Settings"
            return f"{env_name}: {where} has no field {part!r} (fields: {', '.join(model.model_fields)})"
        walked.append(part)
        model = _model_of(model.model_fields[part].annotation)
    if model is not None:
        return f"{env_name}: {'.'.join(walked)} is a group of settings, set its fields with {delimiter}"
    return None


def test_settings_path_walker() -> None:
    assert settings_path_error("HOTLINE_KAFKA__BOOTSTRAP_SERVERS") is None
    assert settings_path_error("HOTLINE_BIND_HOST") is None
    assert settings_path_error("HOTLINE_PORTS__INTAKE_HTTP") is None
    assert settings_path_error("HOTLINE_KAFKA__BOOTSTRAP") is not None
    assert settings_path_error("HOTLINE_KAFKA") is not None
    assert settings_path_error("HOTLINE_BIND_HOST__X") is not None


@pytest.mark.parametrize("path", [COMPOSE, DOCKERFILE, README], ids=lambda p: p.name)
def test_every_hotline_name_is_a_setting(path: Path) -> None:
    names = sorted(set(HOTLINE_NAME.findall(path.read_text(encoding="utf-8"))))
    assert names or path is README, f"{path.name} names no HOTLINE_* setting"
    errors = [e for n in names if (e := settings_path_error(n))]
    assert not errors, (
        f"{path.relative_to(REPO_ROOT)} uses names hotline.settings.Settings does not have:\n" + "\n".join(errors)
    )


def test_compose_environment_loads_into_settings(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HOTLINE_"):
            monkeypatch.delenv(key)
    env = _env(compose["services"]["intake"])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.bind_host == "0.0.0.0"
    assert s.log_json is True
    assert s.kafka.bootstrap_servers == "kafka:9092"
    assert s.mongo.url.startswith("mongodb://mongo:27017/") and "replicaSet=rs0" in s.mongo.url


# --------------------------------------------------------------------------------------------
# docker-compose.yml structure


def test_compose_services_present(compose: dict[str, Any]) -> None:
    expected = {*SERVICES, "kafka", "mongo", "topics", "prometheus", "grafana"}
    assert expected <= set(compose["services"]), f"missing: {sorted(expected - set(compose['services']))}"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_hotline_service(compose: dict[str, Any], name: str) -> None:
    svc = compose["services"][name]
    ports = Settings().ports
    http, grpc = ports.http(name), ports.grpc(name)
    assert svc.get("command") == ["serve", name]
    assert svc.get("build"), f"{name} must be built from the Dockerfile"
    assert svc.get("restart") == "unless-stopped"
    assert _depends(svc) == {
        "kafka": "service_healthy",
        "mongo": "service_healthy",
        "topics": "service_completed_successfully",
    }
    check = _healthcheck_text(svc)
    assert check.startswith("CMD") and f"127.0.0.1:{http}/healthz" in check, f"{name} healthcheck: {check!r}"
    published = {str(p) for p in svc.get("ports", [])}
    assert f"{http}:{http}" in published and f"{grpc}:{grpc}" in published, f"{name} ports: {published}"
    env = _env(svc)
    assert env.get("HOTLINE_BIND_HOST") == "0.0.0.0"
    assert env.get("HOTLINE_KAFKA__BOOTSTRAP_SERVERS") == "kafka:9092"
    assert "replicaSet=rs0" in env.get("HOTLINE_MONGO__URL", "")


def test_compose_hotline_services_share_one_image_and_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {services[n].get("image") for n in (*SERVICES, "topics")}
    assert len(images) == 1, f"the five services and topics should use one image, got {images}"
    envs = [_env(services[n]) for n in (*SERVICES, "topics")]
    assert all(e == envs[0] for e in envs), "the services should share the x-hotline-env environment"
    text = COMPOSE.read_text(encoding="utf-8")
    assert "x-hotline-env: &hotline-env" in text


def test_compose_infrastructure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka = services["kafka"]
    kenv = _env(kafka)
    assert kafka["image"] == "apache/kafka:4.4.0"
    assert kenv["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "PLAINTEXT://:9092" in kenv["KAFKA_LISTENERS"] and "CONTROLLER://:9093" in kenv["KAFKA_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in kenv["KAFKA_ADVERTISED_LISTENERS"]
    assert kenv["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kenv["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert int(kenv["KAFKA_MESSAGE_MAX_BYTES"]) >= Settings().kafka.max_message_bytes
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", kenv["CLUSTER_ID"]), "CLUSTER_ID must be a base64url UUID (22 chars)"
    assert "kafka-topics.sh" in _healthcheck_text(kafka)

    mongo = services["mongo"]
    assert str(mongo["image"]).startswith("mongo:8")
    assert "--replSet" in mongo["command"] and "rs0" in mongo["command"]
    assert "rs.initiate" in _healthcheck_text(mongo)

    topics = services["topics"]
    assert topics.get("entrypoint") == ["python", "-m", "hotline.topics"]
    assert _depends(topics) == {"kafka": "service_healthy"}
    assert str(topics.get("restart", "no")) == "no", "a one-shot service must not restart"

    prometheus = services["prometheus"]
    assert any(str(v).startswith("./deploy/prometheus:") for v in prometheus["volumes"])
    grafana = services["grafana"]
    mounts = [str(v) for v in grafana["volumes"]]
    assert any(m.startswith("./deploy/grafana/provisioning:/etc/grafana/provisioning") for m in mounts)
    assert any(m.startswith("./deploy/grafana/dashboards:") for m in mounts)


def test_compose_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {
        str(v).split(":", 1)[0]
        for svc in compose["services"].values()
        for v in svc.get("volumes", [])
        if not str(v).startswith((".", "/"))
    }
    assert used <= declared, f"undeclared volumes: {sorted(used - declared)}"
    for svc in ("kafka", "mongo", "prometheus", "grafana"):
        vols = [str(v) for v in compose["services"][svc].get("volumes", [])]
        assert any(v.split(":", 1)[0] in declared for v in vols), f"{svc} keeps its data in no named volume"


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            source = str(v).split(":", 1)[0]
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "uv sync --frozen --no-dev --no-install-project" in text
    assert text.index("COPY pyproject.toml uv.lock") < text.index("--no-install-project") < text.index("COPY hotline ")
    assert re.search(r"^USER (?!root)\S+", text, re.M), "the image must run as a non-root user"
    assert 'ENTRYPOINT ["hotline"]' in text and 'CMD ["serve", "intake"]' in text
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").split()
    for entry in (".venv", ".tools", ".run", "models", "bench/results", ".git"):
        assert entry in ignored, f".dockerignore should exclude {entry}"


def _dockerfile_stages(text: str) -> tuple[list[tuple[str, str, list[str]]], str]:
    """[(stage name, base, COPY sources)] in order, and the name of the default (last) stage."""
    stages: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        if m := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I):
            stages.append((m.group(2) or f"stage{len(stages)}", m.group(1), []))
        elif m := re.match(r"COPY\s+(?!--from)(.+)", line):
            stages[-1][2].extend(m.group(1).split()[:-1])
    return stages, stages[-1][0]


def test_service_image_carries_only_the_kit_and_the_services() -> None:
    """The default target (what compose runs the services from) copies pyproject/lock/README,
    hotline/, services/ and cli/ (the program's entry) only; hotline_dev/ (infrastructure, launcher,
    simulator) is in the tools stage alone."""
    stages, default = _dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))
    by_name = {name: (base, copies) for name, base, copies in stages}
    chain, name = [], default
    while name in by_name:
        chain.append(name)
        name = by_name[name][0]
    copied = {src.rstrip("/") for stage in chain for src in by_name[stage][1]}
    assert copied == {"pyproject.toml", "uv.lock", "README.md", "hotline", "services", "cli"}, copied
    assert any("hotline_dev" in copies for _, _, copies in stages), "the tools stage should add hotline_dev"
    compose = load_yaml(COMPOSE)
    for name in (*SERVICES, "topics"):
        assert not compose["services"][name].get("build", {}).get("target"), f"{name} must use the default target"
    assert compose["services"]["tools"]["build"]["target"] == "tools"


def test_runtime_code_does_not_import_the_dev_package() -> None:
    """hotline/ and services/ run without hotline_dev (the service image does not carry it);
    only the CLI names its modules, loaded when present."""
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for top in ("hotline", "services")
        for path in (REPO_ROOT / top).rglob("*.py")
        if re.search(r"^\s*(from|import)\s+hotline_dev\b", path.read_text(encoding="utf-8"), re.M)
    ]
    assert offenders == []


# --------------------------------------------------------------------------------------------
# Prometheus scrape config


def test_prometheus_scrapes_the_five_services() -> None:
    cfg = load_yaml(PROMETHEUS_YML)
    ports = Settings().ports
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    for name in SERVICES:
        assert name in jobs, f"no scrape job {name}"
        static = jobs[name]["static_configs"]
        targets = [t for sc in static for t in sc["targets"]]
        assert targets == [f"{name}:{ports.http(name)}"], f"{name} targets: {targets}"
        assert all(sc.get("labels", {}).get("service") == name for sc in static)
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
    assert cfg["global"]["scrape_interval"] == "5s"
    assert cfg["rule_files"] == ["alerts.yml"], "rule_files is relative to prometheus.yml (mounted together)"


def test_grafana_provisioning() -> None:
    ds = load_yaml(DATASOURCES)
    uids = [d.get("uid") for d in ds["datasources"]]
    assert DATASOURCE_UID in uids
    prom = next(d for d in ds["datasources"] if d.get("uid") == DATASOURCE_UID)
    assert prom["type"] == "prometheus" and prom["url"] == f"http://prometheus:{Settings().ports.prometheus}"
    providers = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert providers and providers[0]["type"] == "file"
    compose_text = COMPOSE.read_text(encoding="utf-8")
    assert f"./deploy/grafana/dashboards:{providers[0]['options']['path']}" in compose_text


# --------------------------------------------------------------------------------------------
# Grafana dashboard


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        if p.get("type") == "row":
            yield from _panels(p.get("panels", []))
        else:
            yield p


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) of every query in every dashboard."""
    out = []
    for path in dashboards():
        doc = json.loads(path.read_text(encoding="utf-8"))
        for panel in _panels(doc["panels"]):
            for t in panel.get("targets", []):
                out.append((f"{path.name} panel {panel.get('id')} {panel.get('title')!r} {t.get('refId')}", t["expr"]))
    return out


def test_dashboard_parses_and_uses_the_provisioned_datasource() -> None:
    assert OVERVIEW in dashboards()
    for path in dashboards():
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert doc.get("uid") and doc.get("title")
        panels = list(_panels(doc["panels"]))
        assert panels, f"{path.name} has no panels"
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for p in panels:
            where = f"{path.name} panel {p.get('id')} {p.get('title')!r}"
            assert (p.get("datasource") or {}).get("uid") == DATASOURCE_UID, (
                f"{where}: datasource {p.get('datasource')}"
            )
            assert p.get("targets"), f"{where}: no queries"
            for t in p["targets"]:
                assert (t.get("datasource") or {"uid": DATASOURCE_UID}).get("uid") == DATASOURCE_UID, where
                assert t.get("expr", "").strip(), f"{where}: empty query"
        for var in doc.get("templating", {}).get("list", []):
            if var.get("datasource"):
                assert var["datasource"].get("uid") == DATASOURCE_UID, f"{path.name} variable {var.get('name')}"
        assert "${DS_" not in path.read_text(encoding="utf-8"), (
            "exported-dashboard inputs do not work with provisioning"
        )


# --------------------------------------------------------------------------------------------
# metric names in PromQL

_FUNCTION_OR_KEYWORD = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan", "atan2",
}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (a light tokenizer, enough for our queries)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\[\]]*\]", " ", s)  # ranges, subqueries, [$__rate_interval]
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        before = s[m.start() - 1] if m.start() else " "
        if before.isdigit() or before in ".$":  # 1e3, 0.5e-2, 5m, Grafana $variables
            continue
        token = m.group(0)
        if s[m.end() :].lstrip().startswith("(") or token.lower() in _FUNCTION_OR_KEYWORD:
            continue
        names.add(token)
    return names


def test_promql_metric_names_tokenizer() -> None:
    expr = 'histogram_quantile(0.99, sum by (service, le) (rate(x_bucket{x="a b"}[$__rate_interval])))'
    assert promql_metric_names(expr) == {"x_bucket"}
    assert promql_metric_names("sum(increase(a_total[1h])) or vector(0) > 1e3 offset 5m") == {"a_total"}
    assert promql_metric_names('up{job=~"a|b"} == 0 and on (job) b') == {"up", "b"}


def alert_exprs() -> list[tuple[str, str]]:
    doc = load_yaml(ALERTS_YML)
    return [
        (f"alerts.yml {g['name']}/{r.get('alert') or r.get('record')}", str(r["expr"]))
        for g in doc["groups"]
        for r in g["rules"]
    ]


def test_metric_contract_matches_the_services() -> None:
    """The names above are what the services register (imports every service's composition root)."""
    from prometheus_client import REGISTRY

    for svc in SERVICES:
        importlib.import_module(f"services.{svc}.main")
    importlib.import_module("hotline.observability")
    families = {m.name: m.type for m in REGISTRY.collect()}
    collectors = getattr(REGISTRY, "_names_to_collectors", {})
    problems = []
    for name, (kind, labels) in METRICS.items():
        family = name.removesuffix("_total") if kind == "counter" else name
        if families.get(family) != kind:
            problems.append(f"{name}: services register {families.get(family)!r}, expected a {kind}")
            continue
        got = getattr(collectors.get(family), "_labelnames", None)
        if got is not None and tuple(got) != labels:
            problems.append(f"{name}: labels {tuple(got)}, expected {labels}")
    assert not problems, "metric contract drifted (update dashboards and alerts too):\n" + "\n".join(problems)


def test_dashboard_and_alerts_use_only_exposed_metrics() -> None:
    exprs = dashboard_exprs() + alert_exprs()
    assert exprs
    unknown = [f"{where}: {sorted(bad)}" for where, e in exprs if (bad := promql_metric_names(e) - QUERYABLE)]
    assert not unknown, "queries use metric names the services do not expose:\n" + "\n".join(unknown)
    # any hotline_* word anywhere in the files (descriptions too) must at least name a known family
    for path in [ALERTS_YML, *dashboards()]:
        words = set(re.findall(r"\bhotline_[a-z0-9_]+", path.read_text(encoding="utf-8")))
        assert words <= QUERYABLE | set(METRICS), f"{path.name}: {sorted(words - QUERYABLE - set(METRICS))}"


def test_dashboard_covers_the_required_views() -> None:
    used = set().union(*(promql_metric_names(e) for _, e in dashboard_exprs()))
    required = {
        "hotline_tickets_received_total",
        "hotline_assignments_total",
        "hotline_cases_opened_total",
        "hotline_case_open_delay_seconds_bucket",
        "hotline_dead_letters_total",
        "hotline_consumer_lag_records",
        "hotline_consumer_batch_seconds_bucket",
        "hotline_outbox_pending",
        "hotline_district_tickets",
    }
    assert required <= used, f"dashboard lacks: {sorted(required - used)}"
    delay = [e for _, e in dashboard_exprs() if "hotline_case_open_delay_seconds_bucket" in e]
    assert {q for e in delay for q in re.findall(r"histogram_quantile\(\s*(0\.\d+)", e)} >= {"0.5", "0.95", "0.99"}


def test_alert_rules_cover_the_failure_modes() -> None:
    exprs = " ".join(e for _, e in alert_exprs())
    for needed in ("hotline_dead_letters_total", "hotline_consumer_lag_records", "hotline_outbox_pending", "up{"):
        assert needed in exprs, f"no alert rule on {needed}"


# --------------------------------------------------------------------------------------------
# promtool


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_check_config() -> None:
    out = _promtool("check", "config", str(PROMETHEUS_YML))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_check_rules() -> None:
    out = _promtool("check", "rules", str(ALERTS_YML))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_parses_dashboard_queries(tmp_path: Path) -> None:
    """Each dashboard query, with Grafana's variables filled in, as a recording rule for promtool."""
    values = {
        "$__rate_interval": "1m",
        "$__interval": "1m",
        "$__range": "1h",
        "$dimension": "category",
        "$stage": "received",
    }
    rules = []
    for i, (where, expr) in enumerate(dashboard_exprs()):
        for var, value in values.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"{where}: unknown Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")  # JSON is YAML
    out = _promtool("check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def _target(service: str) -> str:
    port = Settings().ports.http(service)
    return f'job="{service}", instance="{service}:{port}", service="{service}"'


# (series, values) in promtool's expanding notation, one sample per minute
_INPUT_SERIES = [
    *((f"up{{{_target(svc)}}}", "1 1 0x10" if svc == "routing" else "1x12") for svc in SERVICES),
    (f'hotline_consumer_lag_records{{{_target("metrics")}, topic="hotline.cases.v1"}}', "20000x12"),
    (f'hotline_consumer_lag_records{{{_target("intake")}, topic="city.tickets.v1"}}', "10x12"),
    (f"hotline_outbox_pending{{{_target('intake')}}}", "5000x12"),
    (f'hotline_dead_letters_total{{{_target("intake")}, reason="malformed_json"}}', "0+3x12"),
    # a reason's counter appears only with its first dead letters: a one-off burst must alert too
    (f'hotline_dead_letters_total{{{_target("routing")}, reason="schema"}}', "_ _ _ _ _ 14x7"),
    (f'hotline_consumer_records_total{{{_target("intake")}, topic="city.tickets.v1", outcome="processed"}}', "0+10x12"),
    # one red mass-incident warning at minute 6; yellow repeats never page
    (f'hotline_warnings_raised_total{{{_target("supervision")}, kind="mass_incident", level="red"}}', "0x5 1x6"),
    (f'hotline_warnings_raised_total{{{_target("supervision")}, kind="repeat_caller", level="yellow"}}', "0+2x12"),
]

_ALERT_TESTS = {
    "rule_files": [str(ALERTS_YML)],
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [{"series": series, "values": values} for series, values in _INPUT_SERIES],
            "promql_expr_test": [
                {
                    "expr": 'count by (alertname) (ALERTS{alertstate="firing"})',
                    "eval_time": "10m",
                    "exp_samples": [
                        {"labels": '{alertname="HotlineServiceDown"}', "value": 1},
                        {"labels": '{alertname="HotlineConsumerLagHigh"}', "value": 1},
                        {"labels": '{alertname="HotlineOutboxPendingHigh"}', "value": 1},
                        {"labels": '{alertname="HotlineDeadLettersRising"}', "value": 2},
                        {"labels": '{alertname="HotlineDeadLetterRatioHigh"}', "value": 1},
                        {"labels": '{alertname="HotlineRedWarningRaised"}', "value": 1},
                    ],
                },
                {
                    "expr": 'ALERTS{alertstate="firing", alertname="HotlineServiceDown"}',
                    "eval_time": "10m",
                    "exp_samples": [
                        {
                            "labels": 'ALERTS{alertname="HotlineServiceDown", alertstate="firing", severity="critical",'
                            ' job="routing", instance="routing:8102", service="routing"}',
                            "value": 1,
                        }
                    ],
                },
            ],
        }
    ],
}


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_alerts_fire(tmp_path: Path) -> None:
    path = tmp_path / "alerts-test.yml"
    path.write_text(json.dumps(_ALERT_TESTS), encoding="utf-8")
    out = _promtool("test", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


# --------------------------------------------------------------------------------------------
# deploy/README.md


def test_readme_ticket_examples_are_valid_city_tickets() -> None:
    """The console-producer example in deploy/README.md publishes tickets intake accepts."""
    from datetime import UTC, datetime

    from services.intake import core

    text = README.read_text(encoding="utf-8")
    block = re.search(r"kafka-console-producer\.sh.*?<<'EOF'\n(.*?)\nEOF", text, re.S)
    assert block, "deploy/README.md has no console-producer example"
    lines = block.group(1).splitlines()
    assert lines
    for line in lines:
        key, value = line.split("|", 1)
        assert core.parse_city_ticket(value.encode(), datetime.now(UTC)).city_ticket_id == key
    for url in ("http://localhost:3000", "http://localhost:9090", "http://localhost:8101/docs"):
        assert url in text
    assert "docker compose up -d --build" in text
