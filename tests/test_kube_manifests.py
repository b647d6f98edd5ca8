"""Loading manifests: the shop fixtures, kubectl list output, JSON, directories, and errors with file+line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from auditor.errors import ManifestError
from auditor.kube.manifests import load_manifests, load_manifests_report
from auditor.model.k8s import Namespace, NetworkPolicy, Node, Pod, PolicyPort, WorkloadRef

SHOP = Path(__file__).parent / "fixtures" / "manifests" / "shop"


def keys(objects: Sequence[object], kind: type) -> list[str]:
    return [getattr(o, "key", getattr(o, "name", "")) for o in objects if isinstance(o, kind)]


class TestShopFixtures:
    def test_directory_is_read_recursively_in_sorted_order(self) -> None:
        """Every supported object of the shop directory loads, file by file in sorted order."""
        objects = load_manifests([str(SHOP)])
        assert keys(objects, Namespace) == ["shop", "payments", "legacy"]
        assert keys(objects, Node) == ["worker-1", "worker-2"]
        assert keys(objects, Pod) == [
            "shop/frontend-7d9f8b6c5d-x2x9k",
            "shop/api-5c6b7d8f9-q7w4z",
            "payments/db-0",
            "legacy/report-29400480-7xk2p",
        ]
        assert len(keys(objects, NetworkPolicy)) == 7

    def test_unsupported_kinds_are_skipped_and_counted(self) -> None:
        """ConfigMaps and Deployments are skipped and counted by apiVersion/kind (Services are kept)."""
        report = load_manifests_report([str(SHOP)])
        assert report.skipped_kinds == {"v1/ConfigMap": 1, "apps/v1/Deployment": 1}
        assert report.files == 5

    def test_kubectl_list_pods_convert_fully(self) -> None:
        """The `kubectl get pods -o yaml` List keeps owners, named ports and dual-stack IPs."""
        pods = {p.name: p for p in load_manifests([str(SHOP / "pods.yaml")]) if isinstance(p, Pod)}
        frontend, api = pods["frontend-7d9f8b6c5d-x2x9k"], pods["api-5c6b7d8f9-q7w4z"]
        assert frontend.ips == ("10.244.1.10", "fd00:10:244:1::a")
        assert frontend.workload == WorkloadRef("Deployment", "frontend")
        assert api.resolve_port("grpc-health") == 9091
        assert api.ready is False

    def test_typed_json_list_items_take_kind_from_the_list(self) -> None:
        """NodeList items without kind/apiVersion (raw API output) are Nodes."""
        nodes = load_manifests([str(SHOP / "nodes.json")])
        assert [n.addresses for n in nodes if isinstance(n, Node)] == [
            ("192.168.10.11", "203.0.113.11"),
            ("192.168.10.12", "fd00:192:168:10::12"),
        ]

    def test_multi_document_policies(self) -> None:
        """Each document of a multi-document file is one object, comments and all."""
        policies = [p for p in load_manifests([str(SHOP / "policies.yaml")]) if isinstance(p, NetworkPolicy)]
        by_key = {p.key: p for p in policies}
        assert by_key["shop/default-deny"].ingress is None
        assert by_key["payments/db-ingress"].egress == ()
        egress = by_key["shop/api-egress"].egress
        assert egress is not None
        assert egress[1].ports == (PolicyPort("TCP", 8443, 8450),)


class TestErrors:
    def test_yaml_syntax_error_names_file_and_line(self, tmp_path: Path) -> None:
        """A YAML syntax error is a ManifestError with the file and the line of the problem."""
        path = tmp_path / "bad.yaml"
        path.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [shop\n  labels: {}\n")
        with pytest.raises(ManifestError) as caught:
            load_manifests([str(path)])
        assert caught.value.path == str(path)
        assert caught.value.line == 5

    def test_conversion_error_names_the_list_item_line(self, tmp_path: Path) -> None:
        """A bad object inside a List is reported at the line where that item starts."""
        path = tmp_path / "pods.yaml"
        path.write_text(
            "apiVersion: v1\nkind: List\nitems:\n"
            "- apiVersion: v1\n  kind: Pod\n  metadata: {name: ok, namespace: shop}\n"
            "- apiVersion: v1\n  kind: Pod\n  metadata: {name: bad, namespace: shop}\n"
            "  spec: {hostNetwork: 'yes'}\n"
        )
        with pytest.raises(
            ManifestError, match=r"pods\.yaml:7: Pod shop/bad: spec\.hostNetwork: expected true or false"
        ):
            load_manifests([str(path)])

    def test_second_document_error_names_its_line(self, tmp_path: Path) -> None:
        """Errors in a later document point at that document's first line."""
        path = tmp_path / "ns.yaml"
        path.write_text(
            "kind: Namespace\napiVersion: v1\nmetadata: {name: a}\n---\nkind: Namespace\napiVersion: v1\n"
        )
        with pytest.raises(
            ManifestError, match=r"ns\.yaml:5: Namespace: metadata\.name: required field is missing"
        ):
            load_manifests([str(path)])

    def test_json_syntax_error_names_line(self, tmp_path: Path) -> None:
        """Invalid JSON gives the file and line of the decode error."""
        path = tmp_path / "objects.json"
        path.write_text('{\n  "kind": "List",\n  "items": [,]\n}\n')
        with pytest.raises(ManifestError) as caught:
            load_manifests([str(path)])
        assert (caught.value.path, caught.value.line) == (str(path), 3)

    def test_document_without_kind(self, tmp_path: Path) -> None:
        """A document that is not a Kubernetes object is an error, not a silent skip."""
        path = tmp_path / "x.yml"
        path.write_text("metadata: {name: a}\n")
        with pytest.raises(ManifestError, match=r"x\.yml:1: document has no kind"):
            load_manifests([str(path)])

    def test_missing_path(self, tmp_path: Path) -> None:
        """A path that does not exist is named in the error."""
        with pytest.raises(ManifestError, match="no such file or directory"):
            load_manifests([str(tmp_path / "nope")])


class TestShapes:
    def test_json_list_with_mixed_kinds(self, tmp_path: Path) -> None:
        """A JSON `kind: List` (kubectl -o json) with kinds of every sort loads the supported ones."""
        document = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}},
            ],
        }
        path = tmp_path / "all.json"
        path.write_text(json.dumps(document))
        report = load_manifests_report([str(path)])
        assert [type(o) for o in report.objects] == [Namespace]
        assert report.skipped_kinds == {"v1/Secret": 1}

    def test_concatenated_json_documents(self, tmp_path: Path) -> None:
        """Several JSON documents in one file (appended kubectl outputs) all load; errors give their line."""
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
        bad = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"labels": {}}}
        path = tmp_path / "appended.json"
        listed = {"kind": "List", "items": [namespace]}
        path.write_text(json.dumps(namespace, indent=1) + "\n" + json.dumps(listed))
        assert [o.name for o in load_manifests([str(path)])] == ["shop", "shop"]
        path.write_text(json.dumps(namespace, indent=1) + "\n" + json.dumps(bad))
        with pytest.raises(ManifestError, match=r"appended\.json:8: Namespace: metadata\.name"):
            load_manifests([str(path)])

    def test_empty_documents_and_hidden_files_are_ignored(self, tmp_path: Path) -> None:
        """Empty documents, hidden files and other extensions in a directory are ignored."""
        (tmp_path / "a.yaml").write_text(
            "---\n# nothing\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
        )
        (tmp_path / ".hidden.yaml").write_text("not: [valid")
        (tmp_path / "notes.txt").write_text("not: [valid")
        assert [o.name for o in load_manifests([str(tmp_path)])] == ["a"]
