"""The kustomize overlays render with kubectl and produce the objects each mode needs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from auditor import cli
from tests.deploy_support import (
    BASE,
    CLUSTER_SCOPED,
    DEPLOY,
    NAMESPACE,
    OVERLAYS,
    by_kind,
    container,
    env,
    one,
    project_version,
    render,
    workload,
)

# kustomize v2.0.3 (embedded in kubectl 1.14-1.20, Debian's kubernetes-client) knows these;
# `patches`, `labels`, `components`, `replacements` came later.
CONSERVATIVE_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "bases",
    "resources",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "commonAnnotations",
}


def _kustomizations() -> list[Path]:
    return sorted(DEPLOY.rglob("kustomization.yaml"))


class TestKustomizeRender:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_overlay_renders(self, overlay: str) -> None:
        """`kubectl kustomize` renders each overlay into objects."""
        assert len(render(overlay)) >= 10

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_namespaced_objects_land_in_auditor_namespace(self, overlay: str) -> None:
        """Every namespaced object is in the auditor namespace; cluster-scoped ones have none."""
        for doc in render(overlay):
            meta = doc["metadata"]
            if doc["kind"] in CLUSTER_SCOPED:
                assert "namespace" not in meta, f"{doc['kind']}/{meta['name']}"
            else:
                assert meta.get("namespace") == NAMESPACE, f"{doc['kind']}/{meta['name']}"

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_shared_objects_present(self, overlay: str) -> None:
        """Each overlay carries RBAC, Service, ServiceMonitor, alert rules and the dashboard."""
        docs = render(overlay)
        for kind, name in [
            ("Namespace", NAMESPACE),
            ("ServiceAccount", "auditor"),
            ("ClusterRole", "auditor"),
            ("ClusterRoleBinding", "auditor"),
            ("Service", "auditor-metrics"),
            ("ServiceMonitor", "auditor"),
            ("PrometheusRule", "auditor"),
            ("NetworkPolicy", "auditor"),
            ("NetworkPolicy", "auditor-apiserver"),
        ]:
            one(docs, kind, name)
        assert any("grafana_dashboard" in d["metadata"].get("labels", {}) for d in by_kind(docs, "ConfigMap"))

    @pytest.mark.parametrize(("overlay", "kind"), [("relay", "Deployment"), ("relay-tls", "Deployment"),
                                                   ("node", "DaemonSet")])
    def test_workload_kind_per_mode(self, overlay: str, kind: str) -> None:
        """Relay mode is a Deployment, node mode a DaemonSet."""
        assert workload(render(overlay))["kind"] == kind

    def test_relay_runs_one_replica(self) -> None:
        """Relay mode runs exactly one replica, replaced (not rolled) on update."""
        deployment = workload(render("relay"))
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"

    def test_base_lists_generated_monitoring_files(self) -> None:
        """The base kustomization includes the generated PrometheusRule and dashboard ConfigMap."""
        resources = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
        assert "prometheusrule.yaml" in resources
        assert "grafana-dashboard-configmap.yaml" in resources


class TestKustomizeCompatibility:
    @pytest.mark.parametrize("path", _kustomizations(), ids=lambda p: str(p.relative_to(DEPLOY)))
    def test_only_kustomize_v2_fields(self, path: Path) -> None:
        """Kustomizations use only fields old kustomize (kubectl 1.20) understands."""
        keys = set(yaml.safe_load(path.read_text()))
        assert keys <= CONSERVATIVE_KEYS, f"{path}: newer kustomize fields {sorted(keys - CONSERVATIVE_KEYS)}"

    @pytest.mark.parametrize("path", _kustomizations(), ids=lambda p: str(p.relative_to(DEPLOY)))
    def test_directories_listed_as_bases(self, path: Path) -> None:
        """Other kustomizations come in through `bases` (kustomize v2 rejects directories in resources)."""
        for entry in yaml.safe_load(path.read_text()).get("resources", []):
            assert (path.parent / entry).is_file(), f"{path}: resources entry {entry} is not a file"

    def test_no_common_labels(self) -> None:
        """No commonLabels: it would rewrite the NetworkPolicy peer selectors (kube-dns, relay)."""
        for path in _kustomizations():
            assert "commonLabels" not in yaml.safe_load(path.read_text()), str(path)


class TestImageAndConfiguration:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_image_tag_is_project_version(self, overlay: str) -> None:
        """The manifests deploy the image tag of the project's version."""
        assert container(render(overlay))["image"] == f"auditor:{project_version()}"

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_runs_the_daemon(self, overlay: str) -> None:
        """The container runs `auditor run` (the image's ENTRYPOINT plus these args)."""
        c = container(render(overlay))
        assert c["args"] == ["run"]
        assert "command" not in c

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_env_names_are_run_flags(self, overlay: str) -> None:
        """Every AUDITOR_* variable the manifests set names a flag of `auditor run`."""
        flags = _run_flags()
        for name in env(render(overlay)):
            assert name.startswith("AUDITOR_"), name
            flag = "--" + name.removeprefix("AUDITOR_").lower().replace("_", "-")
            assert flag in flags, f"{overlay}: {name} has no matching `auditor run {flag}`"


def _run_flags() -> set[str]:
    """Option strings of `auditor run`; skips until the run command is registered."""
    if "run" not in cli.COMMAND_MODULES:
        pytest.skip("auditor run is not registered yet")
    parser = cli.build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            run = action.choices["run"]
            return {opt for a in run._actions for opt in a.option_strings}
    pytest.fail("the auditor parser has no subcommands")
