"""deploy/ is checked by the tools that will run it: Kubernetes schemas, `docker compose config`,
promtool for the alert rules and the scrape config, and names that must match our metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from omnid.adapters.collector_metrics import CollectorMetrics
from omnid.config import PROJECT_ROOT
from omnid.pipeline.worker_metrics import WorkerMetrics

DEPLOY = PROJECT_ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
KUBERNETES_VERSION = "1.30.0"


def run(*command: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def manifests() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append(
                    (f"{path.name}:{document['kind']}/{document['metadata']['name']}", document)
                )
    return documents


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    for _, document in manifests():
        if document["kind"] == kind and document["metadata"]["name"] == name:
            return document
    raise AssertionError(f"no {kind}/{name} in deploy/k8s")


# ---- Kubernetes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "document"), manifests(), ids=[m[0] for m in manifests()])
def test_manifest_validates_strictly_against_the_kubernetes_schema(
    where: str, document: dict[str, Any]
) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    # strict: an unknown field (a typo such as `readinesProbe`) is an error, not ignored.
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kustomization_builds_every_manifest_and_the_result_validates() -> None:
    # kubectl is not something .ci/run can install from the reachable registries, so this
    # extra check skips (even in CI) where no client is present; the per-file schema check
    # above always runs.
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: any kubectl client builds kustomizations offline")
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    built = run(kubectl, "kustomize", str(K8S))
    assert built.returncode == 0, built.stderr
    documents = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert {(d["kind"], d["metadata"]["name"]) for d in documents} == {
        (d["kind"], d["metadata"]["name"]) for _, d in manifests()
    }
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_each_worker_pod_gets_its_own_volume_for_rocksdb() -> None:
    workers = k8s_object("StatefulSet", "omnid-worker")["spec"]
    claim = workers["volumeClaimTemplates"][0]
    container = workers["template"]["spec"]["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    assert f"--data-dir={mount['mountPath']}" in container["args"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_worker_takes_traffic_only_when_ready_and_is_restarted_only_when_dead() -> None:
    container = k8s_object("StatefulSet", "omnid-worker")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    collector = k8s_object("Deployment", "omnid-collector")["spec"]["template"]["spec"]
    assert collector["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_rules_configmap_carries_exactly_the_alert_rules_file() -> None:
    configmap = k8s_object("ConfigMap", "omnid-prometheus-rules")
    assert configmap["data"]["omnid-alerts.yml"] == (PROMETHEUS / "alerts.yml").read_text(), (
        "regenerate with: python3 deploy/k8s/render_rules_configmap.py"
    )


# ---- Prometheus -----------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_and_stay_quiet_as_their_unit_tests_expect(promtool: str) -> None:
    result = run(promtool, "test", "rules", "alerts_test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists() -> None:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    assert {
        "OmnidConsumerLagGrowing",
        "OmnidDeadLetterRateHigh",
        "OmnidMergeRefusalSpike",
        "OmnidWorkerDown",
        "OmnidLatencySLOFastBurn",
        "OmnidLatencySLOSlowBurn",
    } <= alerts


def test_compose_scrape_config_passes_promtool_check_config(promtool: str) -> None:
    result = run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def exposed_families() -> set[str]:
    registry = CollectorRegistry()
    WorkerMetrics.on(registry)
    CollectorMetrics(registry)
    names = set()
    for family in registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names.add(family.name + suffix)
    return names


def referenced_metrics(text: str) -> set[str]:
    found = set(re.findall(r"\bomnid_[a-z_]+", text))
    # Histogram series are named after their family.
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in found}


@pytest.mark.parametrize(
    "path",
    [PROMETHEUS / "alerts.yml", DEPLOY / "grafana" / "dashboards" / "omnid.json"],
    ids=["alerts", "dashboard"],
)
def test_alerts_and_dashboard_only_use_metrics_omnid_exposes(path: Path) -> None:
    referenced = referenced_metrics(path.read_text())
    assert referenced, "no omnid metric referenced at all"
    assert referenced <= exposed_families(), referenced - exposed_families()


def test_dashboard_is_provisioned_with_a_prometheus_datasource() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "omnid.json").read_text())
    assert dashboard["uid"] == "omnid-overview"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(target["expr"] for panel in panels for target in panel["targets"])
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasources["datasources"][0]["type"] == "prometheus"


# ---- docker compose -------------------------------------------------------------------------


def compose_config() -> dict[str, Any]:
    docker = shutil.which("docker")
    if docker is None or run(docker, "compose", "version").returncode != 0:
        # Not a CI failure: the plugin is built from source by deploy/tools/ only where Go is.
        pytest.skip("`docker compose` unavailable: bash deploy/tools/install-docker-compose.sh")
    result = run(
        docker, "compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_compose_file_passes_docker_compose_config() -> None:
    services = compose_config()["services"]
    assert {"kafka", "worker-1", "worker-2", "collector", "prometheus", "grafana"} <= set(services)


def test_compose_workers_keep_separate_state_and_prometheus_scrapes_them_all() -> None:
    services = compose_config()["services"]
    volumes = {
        name: {m["source"] for m in services[name]["volumes"] if m["type"] == "volume"}
        for name in ("worker-1", "worker-2")
    }
    assert volumes["worker-1"] and volumes["worker-1"].isdisjoint(volumes["worker-2"])
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {"worker-1:6066", "worker-2:6066", "collector:8088"} <= targets
    mounted = {m["target"] for m in services["prometheus"]["volumes"]}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= mounted
