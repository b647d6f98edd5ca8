"""The Grafana dashboard and the generated Kubernetes objects that ship it and the alert rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest

from auditor.exporter.collector import make_registry
from tests.promtool_runner import run_promtool
from tests.test_exporter_golden import fixed_snapshot

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy/grafana/auditor.json"
GENERATOR = ROOT / "scripts/gen_deploy_artifacts.py"
PROMETHEUS_RULE = ROOT / "deploy/kubernetes/base/prometheusrule.yaml"
CONFIGMAP = ROOT / "deploy/kubernetes/base/grafana-dashboard-configmap.yaml"
RULES = ROOT / "deploy/prometheus/rules.yaml"
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
}
METRIC_NAME = re.compile(r"\bauditor_[a-z0-9_]+\b")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def expressions() -> list[tuple[str, str]]:
    """(panel title + refId, PromQL with Grafana variables replaced) of every target."""
    result = []
    for panel in panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            result.append((f"{panel['title']} {target['refId']}", expr))
    return result


def exported_names() -> set[str]:
    """Every sample name the collector exports for a fully populated snapshot."""
    text = generate_latest(make_registry(fixed_snapshot)).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


class TestDashboardStructure:
    def test_datasource_variable_is_prometheus(self) -> None:
        """A datasource variable of type prometheus exists and every panel uses it."""
        variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert all(panel["datasource"]["uid"] == "${datasource}" for panel in panels())

    def test_namespace_variable_reads_auditor_metrics(self) -> None:
        """The namespace variable lists label values of an exported auditor metric, multi-select with All."""
        variable = {v["name"]: v for v in dashboard()["templating"]["list"]}["namespace"]
        metric = re.search(r"label_values\((\w+), namespace\)", variable["definition"])
        assert metric is not None
        assert metric.group(1) in exported_names()
        assert variable["multi"] is True
        assert variable["includeAll"] is True

    def test_required_panels_exist(self) -> None:
        """The panels the issue asks for are all there."""
        titles = {panel["title"] for panel in panels()}
        assert {
            "Drops by namespace", "Drops by policy", "Unexpected drops", "Unexpected allows (open findings)",
            "DNS denials", "Health-check drops", "Unprotected pods", "Namespaces without default deny",
            "Top workloads by drops", "Hubble stream up", "Flow processing lag",
            "Lost events and queue overflow",
        } <= titles

    def test_lag_panel_shows_p50_and_p99(self) -> None:
        """The lag panel plots the 0.5 and 0.99 quantiles of the lag histogram."""
        lag = next(panel for panel in panels() if panel["title"] == "Flow processing lag")
        exprs = " ".join(target["expr"] for target in lag["targets"])
        assert "histogram_quantile(0.5," in exprs
        assert "histogram_quantile(0.99," in exprs

    def test_namespaced_queries_follow_the_namespace_variable(self) -> None:
        """Queries of policy and posture metrics filter on the selected namespaces."""
        namespaced = ("auditor_policy_", "auditor_dns_", "auditor_health_check_", "auditor_unprotected_",
                      "auditor_namespace_default_deny", "auditor_open_findings")
        for panel in panels():
            for target in panel["targets"]:
                if any(prefix in target["expr"] for prefix in namespaced):
                    assert 'namespace=~"$namespace"' in target["expr"], panel["title"]

    def test_panel_ids_are_unique(self) -> None:
        """Grafana needs distinct panel ids."""
        ids = [panel["id"] for panel in dashboard()["panels"]]
        assert len(ids) == len(set(ids))


class TestDashboardQueries:
    def test_every_expression_parses(self, tmp_path: Path) -> None:
        """promtool accepts every panel expression (as a recording rule)."""
        rules = [{"record": f"dashboard:expr_{i}", "expr": expr} for i, (_, expr) in enumerate(expressions())]
        path = tmp_path / "dashboard_rules.yaml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        result = run_promtool("check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr

    def test_expressions_reference_only_exported_metrics(self) -> None:
        """Every auditor_* name in the dashboard is a sample name the collector exports."""
        exported = exported_names()
        for where, expr in expressions():
            for name in METRIC_NAME.findall(expr):
                assert name in exported, f"{where}: {name} is not exported"

    def test_alert_expressions_reference_only_exported_metrics(self) -> None:
        """Every auditor_* name in the alert rules is a sample name the collector exports."""
        exported = exported_names()
        for name in METRIC_NAME.findall(RULES.read_text().split("groups:", 1)[1]):
            assert name in exported, name


class TestGeneratedManifests:
    def test_generated_files_are_fresh(self) -> None:
        """scripts/gen_deploy_artifacts.py --check passes (PrometheusRule and ConfigMap up to date)."""
        result = subprocess.run(
            [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr

    def test_configmap_carries_the_dashboard_for_the_sidecar(self) -> None:
        """The ConfigMap has label grafana_dashboard "1" and the dashboard JSON verbatim."""
        configmap = yaml.safe_load(CONFIGMAP.read_text())
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert configmap["data"]["auditor.json"] == DASHBOARD.read_text()

    def test_prometheus_rule_has_the_same_groups(self) -> None:
        """The PrometheusRule's spec.groups equal the plain rule file's groups."""
        rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
        assert rule["apiVersion"] == "monitoring.coreos.com/v1"
        assert rule["kind"] == "PrometheusRule"
        assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
