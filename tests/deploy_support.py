"""Shared helpers for the deployment tests: render the kustomize overlays and pick objects out.

Rendering runs the real `kubectl kustomize`.  Without kubectl the rendering tests skip, except
in CI (CI=true), where scripts/setup.sh installs Debian's kubernetes-client and a missing
kubectl is a failure.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "kubernetes"
BASE = DEPLOY / "base"
OVERLAYS = ("relay", "relay-tls", "node", "node-postgres", "relay-sharded")
RELAY_OVERLAYS = ("relay", "relay-tls")
POSTGRES_OVERLAYS = ("node-postgres", "relay-sharded")
"""Overlays whose store is the shared PostgreSQL database (URL and password from the Secret auditor-store)."""
NAMESPACE = "auditor"
POD_LABELS = {"app.kubernetes.io/name": "auditor"}
METRICS_PORT = 9967
UID = 65532
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet"}

Doc = dict[str, Any]


def kubectl() -> str:
    """Path of kubectl; skips the test when it is missing outside CI."""
    found = shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is missing in CI (scripts/setup.sh installs kubernetes-client)")
        pytest.skip("kubectl not installed")
    return found


def kustomize(directory: Path) -> list[Doc]:
    """Render one kustomization directory with `kubectl kustomize`; fails with kubectl's stderr."""
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@functools.cache
def _rendered(overlay: str) -> tuple[Doc, ...]:
    return tuple(kustomize(DEPLOY / "overlays" / overlay))


def render(overlay: str) -> list[Doc]:
    """The rendered objects of one overlay (rendered once per test session)."""
    return copy.deepcopy(list(_rendered(overlay)))


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    """All objects of one kind."""
    return [doc for doc in docs if doc.get("kind") == kind]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    """Exactly one object of a kind (and name); fails naming what was found otherwise."""
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def workload(docs: list[Doc]) -> Doc:
    """The overlay's single Deployment or DaemonSet."""
    found = [doc for doc in docs if doc.get("kind") in WORKLOAD_KINDS]
    assert len(found) == 1, f"expected one workload, found {[d['kind'] for d in found]}"
    return found[0]


def pod_spec(docs: list[Doc]) -> Doc:
    """The pod template spec of the overlay's workload."""
    spec: Doc = workload(docs)["spec"]["template"]["spec"]
    return spec


def container(docs: list[Doc]) -> Doc:
    """The auditor container of the overlay's workload."""
    containers = pod_spec(docs)["containers"]
    assert [c["name"] for c in containers] == ["auditor"]
    only: Doc = containers[0]
    return only


def env(docs: list[Doc]) -> dict[str, Doc]:
    """The auditor container's env entries by name."""
    return {item["name"]: item for item in container(docs).get("env", [])}


def source_documents() -> list[tuple[Path, Doc]]:
    """Every YAML document under deploy/kubernetes that is a Kubernetes object (not kustomize)."""
    out: list[tuple[Path, Doc]] = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") != "Kustomization":
                out.append((path, doc))
    return out


def project_version() -> str:
    """The version in pyproject.toml."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    version: str = data["project"]["version"]
    return version
