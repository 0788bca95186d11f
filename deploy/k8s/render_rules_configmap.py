"""Writes deploy/k8s/prometheus-rules.yaml: deploy/prometheus/alerts.yml wrapped in a ConfigMap."""

from __future__ import annotations

from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1]
RULES = DEPLOY / "prometheus" / "alerts.yml"
CONFIGMAP = DEPLOY / "k8s" / "prometheus-rules.yaml"

HEADER = """\
# deploy/prometheus/alerts.yml as a ConfigMap for a Prometheus in the cluster (mount it and list
# it under rule_files). Same text as that file: tests/integration/test_deploy_manifests.py fails
# when they differ. Regenerate: python3 deploy/k8s/render_rules_configmap.py
apiVersion: v1
kind: ConfigMap
metadata:
  name: omnid-prometheus-rules
  labels:
    prometheus: omnid
data:
  omnid-alerts.yml: |
"""


def render(rules: str) -> str:
    # A literal block scalar keeps the rules byte for byte; blank lines stay blank.
    body = "".join(f"    {line}" if line.strip() else "\n" for line in rules.splitlines(True))
    return HEADER + body


if __name__ == "__main__":
    CONFIGMAP.write_text(render(RULES.read_text()))
    print(f"wrote {CONFIGMAP}")
