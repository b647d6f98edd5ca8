"""We practise what we audit: auditor's own lint finds nothing in its deployment manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from auditor.findings.static import static_findings
from auditor.kube.manifests import load_manifests_report
from auditor.policy.state import ClusterState
from tests.deploy_support import render

OVERLAYS = ("relay", "relay-tls", "node")


def _write(tmp_path: Path, docs: list[dict[str, object]]) -> str:
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return str(path)


class TestSelfAudit:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_no_static_findings(self, overlay: str, tmp_path: Path) -> None:
        """The rendered overlay yields no static finding: covered, DNS allowed, probe port open."""
        load = load_manifests_report([_write(tmp_path, render(overlay))])
        assert load.template_pods == 1, "the workload's template stands for its pods"
        state = ClusterState.build(load.objects)
        assert state.invalid == []
        assert static_findings(state) == []

    def test_lint_catches_a_missing_policy(self, tmp_path: Path) -> None:
        """Without auditor's own NetworkPolicies the same lint reports the namespace as unprotected."""
        docs = [doc for doc in render("relay") if doc.get("kind") != "NetworkPolicy"]
        state = ClusterState.build(load_manifests_report([_write(tmp_path, docs)]).objects)
        kinds = {finding.kind.value for finding in static_findings(state)}
        assert "no-default-deny" in kinds
