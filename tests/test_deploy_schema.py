"""Every rendered manifest validates against the Kubernetes OpenAPI schemas (kubernetes-validate,
offline); the two Prometheus Operator CRDs, which it has no schema for, get a structural check."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.deploy_support import OVERLAYS, Doc, by_kind, one, render

# The oldest and the newest schema set kubernetes-validate ships.
VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
_MISSING = object()


def _core_objects(overlay: str) -> list[Doc]:
    return [doc for doc in render(overlay) if doc["kind"] not in CRD_KINDS]


def _get(doc: Doc, *path: str) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


class TestKubernetesSchemas:
    @pytest.mark.parametrize("version", VERSIONS)
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_rendered_objects_validate(self, overlay: str, version: str) -> None:
        """Each non-CRD object validates strictly (no unknown fields) against the schemas."""
        failures = []
        for doc in _core_objects(overlay):
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
        assert not failures, "\n".join(failures)

    def test_only_prometheus_crds_lack_a_schema(self) -> None:
        """Everything except ServiceMonitor and PrometheusRule has a schema to validate against."""
        kinds = {doc["kind"] for overlay in OVERLAYS for doc in render(overlay)}
        assert kinds - CRD_KINDS >= {"Deployment", "DaemonSet", "NetworkPolicy", "ClusterRole", "Service"}
        for kind in CRD_KINDS:
            doc = one(render("relay"), kind)
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)

    def test_validator_rejects_a_misspelt_field(self) -> None:
        """The strict validation this suite relies on does catch a typo in a pod spec."""
        deployment = one(render("relay"), "Deployment")
        deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


class TestPrometheusOperatorObjects:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_servicemonitor_scrapes_the_metrics_service(self, overlay: str) -> None:
        """The ServiceMonitor selects the metrics Service and scrapes its `metrics` port at /metrics."""
        docs = render(overlay)
        monitor = one(docs, "ServiceMonitor", "auditor")
        service = one(docs, "Service", "auditor-metrics")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selector = _get(monitor, "spec", "selector", "matchLabels")
        assert isinstance(selector, dict)
        assert selector
        assert selector.items() <= service["metadata"]["labels"].items()
        port_names = {p["name"] for p in service["spec"]["ports"]}
        endpoints = _get(monitor, "spec", "endpoints")
        assert isinstance(endpoints, list)
        assert endpoints
        for endpoint in endpoints:
            assert endpoint["port"] in port_names
            assert endpoint.get("path", "/metrics") == "/metrics"

    def test_prometheusrule_is_well_formed(self) -> None:
        """The PrometheusRule has named groups of rules, each an alert or a record with an expr."""
        rule = one(render("relay"), "PrometheusRule")
        assert rule["apiVersion"] == "monitoring.coreos.com/v1"
        groups = _get(rule, "spec", "groups")
        assert isinstance(groups, list)
        assert groups
        for group in groups:
            assert isinstance(group.get("name"), str)
            assert group["name"]
            for item in group.get("rules", []):
                assert ("alert" in item) != ("record" in item), item
                assert str(item.get("expr", "")).strip(), item

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_crds_carry_no_unknown_top_level_fields(self, overlay: str) -> None:
        """The CRD objects have only apiVersion, kind, metadata and spec."""
        for kind in CRD_KINDS:
            for doc in by_kind(render(overlay), kind):
                assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}, doc["metadata"]["name"]
