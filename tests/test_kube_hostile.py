"""Hostile Kubernetes inputs (wrong types, deep nesting): a ManifestError naming file and line, no crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from auditor.errors import ManifestError
from auditor.kube.convert import is_supported, object_from_dict
from auditor.kube.events import load_cluster_events
from auditor.kube.manifests import load_manifests

DEPTH = 100_000


def deep(opening: str, closing: str) -> str:
    return opening * DEPTH + closing * DEPTH


class TestUnhashableKind:
    def test_list_kind_is_a_manifest_error(self) -> None:
        """kind: [..] is reported as an unsupported kind, not a TypeError from a dict lookup."""
        with pytest.raises(ManifestError, match="unsupported object kind"):
            object_from_dict({"apiVersion": "v1", "kind": ["Pod"], "metadata": {"name": "a"}}, where="x.yaml:1")

    def test_mapping_api_version_is_not_supported(self) -> None:
        """apiVersion: {..} is simply not a supported kind."""
        assert not is_supported({"apiVersion": {"v": 1}, "kind": "Pod"})

    def test_cluster_event_with_mapping_kind_is_skipped(self, tmp_path: Path) -> None:
        """An event whose object kind is a mapping is skipped like any other unsupported kind."""
        path = tmp_path / "events.jsonl"
        path.write_text('{"time": "2026-11-20T10:00:00Z", "type": "ADDED", "object": {"apiVersion": "v1", '
                        '"kind": {"a": 1}}}\n')
        assert load_cluster_events(str(path)) == []


class TestDeepNesting:
    def test_deep_flow_yaml_manifest_is_an_error_not_a_segfault(self, tmp_path: Path) -> None:
        """100,000 nested `[` in a YAML manifest: exit 1 naming the file (libyaml used to segfault)."""
        path = tmp_path / "deep.yaml"
        path.write_text("a: " + deep("[", "]") + "\n")
        result = subprocess.run([sys.executable, "-m", "auditor", "audit", "--manifests", str(path)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stderr[-500:]
        assert f"{path}:1: " in result.stderr
        assert "nested" in result.stderr

    def test_deep_json_manifest_is_a_manifest_error(self, tmp_path: Path) -> None:
        """100,000 nested arrays in a JSON manifest raise ManifestError, not RecursionError."""
        path = tmp_path / "deep.json"
        path.write_text('{"kind": "List", "items": ' + deep("[", "]") + "}")
        with pytest.raises(ManifestError, match="nested"):
            load_manifests([str(path)])

    def test_deep_cluster_event_is_a_manifest_error(self, tmp_path: Path) -> None:
        """A cluster-events line nested 100,000 deep raises ManifestError naming file:line."""
        path = tmp_path / "events.jsonl"
        path.write_text('{"time": "2026-11-20T10:00:00Z", "type": "ADDED", "object": ' + deep("[", "]") + "}\n")
        with pytest.raises(ManifestError, match=r"events\.jsonl:1: .*nested"):
            load_cluster_events(str(path))
