"""The store's volume: the base's PersistentVolumeClaim (size from docs/deployment.md's sizing table,
storage class left to the cluster) mounted by relay mode; node mode drops it for a per-pod emptyDir."""

from __future__ import annotations

import os
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy_support import (
    BASE,
    DEPLOY,
    NAMESPACE,
    RELAY_OVERLAYS,
    REPO,
    Doc,
    by_kind,
    container,
    kustomize,
    one,
    pod_spec,
    render,
)

CLAIM = "auditor-store"
STORE = "/var/lib/auditor"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"


def _sizing(mode: str) -> str:
    """The size column of the store table in docs/deployment.md for a mode ("relay mode", "node mode")."""
    for line in DEPLOYMENT_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith(mode) and re.fullmatch(r"\d+[MG]i", cells[2]):
            return cells[2]
    pytest.fail(f"docs/deployment.md has no store sizing row for {mode}")


def _store_volume(docs: list[Doc]) -> Doc:
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert mounts["store"] == STORE
    return volumes["store"]


def _claim(docs: list[Doc]) -> Doc:
    return one(docs, "PersistentVolumeClaim", CLAIM)


class TestBaseClaim:
    def test_base_lists_the_claim(self) -> None:
        """The base kustomization includes pvc.yaml."""
        assert "pvc.yaml" in yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]

    def test_claim_size_is_the_sizing_tables(self) -> None:
        """The claim requests the relay-mode store size the sizing table gives."""
        claim = _claim(render("relay"))
        assert claim["spec"]["resources"]["requests"]["storage"] == _sizing("relay mode")

    def test_storage_class_is_left_to_the_cluster(self) -> None:
        """No storageClassName: the cluster's default StorageClass provisions the claim."""
        assert "storageClassName" not in _claim(render("relay"))["spec"]

    def test_claim_is_read_write_once_in_the_auditor_namespace(self) -> None:
        """One replica, Recreate: ReadWriteOnce in the auditor namespace."""
        claim = _claim(render("relay"))
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert claim["metadata"]["namespace"] == NAMESPACE

    @pytest.mark.parametrize("version", ["1.25.0", kubernetes_validate.latest_version()])
    def test_claim_validates(self, version: str) -> None:
        """The rendered claim validates strictly against the Kubernetes schemas."""
        kubernetes_validate.validate(_claim(render("relay")), version, strict=True)


class TestRelayMode:
    @pytest.mark.parametrize("overlay", RELAY_OVERLAYS)
    def test_store_is_the_claim(self, overlay: str) -> None:
        """Relay overlays mount the base's claim at the store path, not an emptyDir."""
        docs = render(overlay)
        assert _store_volume(docs) == {"name": "store", "persistentVolumeClaim": {"claimName": CLAIM}}
        _claim(docs)

    @pytest.mark.parametrize("overlay", RELAY_OVERLAYS)
    def test_store_path_is_the_database_directory(self, overlay: str) -> None:
        """AUDITOR_STORE points into the mounted claim."""
        variables = {e["name"]: e.get("value") for e in container(render(overlay))["env"]}
        assert variables["AUDITOR_STORE"] == f"sqlite://{STORE}/auditor.db"

    def test_volume_is_writable_through_fs_group(self) -> None:
        """fsGroup is the runtime GID, so the provisioned volume is writable by the non-root user."""
        assert pod_spec(render("relay"))["securityContext"]["fsGroup"] == 65532


class TestNodeMode:
    def test_node_overlay_has_no_claim(self) -> None:
        """The node overlay deletes the base's claim, which a DaemonSet cannot use per node."""
        assert not by_kind(render("node"), "PersistentVolumeClaim")

    def test_node_store_is_a_sized_empty_dir(self) -> None:
        """Each node pod's store is an emptyDir of the node-mode size in the sizing table."""
        volume = _store_volume(render("node"))
        assert volume["emptyDir"] == {"sizeLimit": _sizing("node mode")}

    def test_node_overlay_documents_the_choice(self) -> None:
        """The node kustomization says why neither a PVC nor a hostPath is used for the store."""
        text = (DEPLOY / "overlays" / "node" / "kustomization.yaml").read_text()
        assert "volumeClaimTemplates" in text
        assert "hostPath" in text

    def test_documented_host_path_patch_renders(self, tmp_path: Path) -> None:
        """The opt-in hostPath store of docs/deployment.md renders and validates."""
        text = DEPLOYMENT_DOC.read_text(encoding="utf-8")
        patch = re.search(r"# my-overlay/node-store.yaml[^\n]*\n(.*?)```", text, re.DOTALL)
        assert patch is not None
        node = os.path.relpath(DEPLOY / "overlays" / "node", tmp_path)
        (tmp_path / "kustomization.yaml").write_text(
            f"bases:\n  - {node}\npatchesStrategicMerge:\n  - node-store.yaml\n", encoding="utf-8")
        (tmp_path / "node-store.yaml").write_text(patch.group(1), encoding="utf-8")
        docs = kustomize(tmp_path)
        assert _store_volume(docs) == {"name": "store", "hostPath": {"path": STORE, "type": "Directory"}}
        kubernetes_validate.validate(one(docs, "DaemonSet"), kubernetes_validate.latest_version(), strict=True)
