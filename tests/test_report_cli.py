"""`auditor report` end to end: files and store modes, windows, --fail-on exit codes, bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.model.findings import FindingKind, Severity
from auditor.store import open_store
from auditor.store.records import CounterRow
from tests.kubeapi import KubeAPI
from tests.report_support import DEMO, MINUTE, T0, finding

SCENARIOS = Path(__file__).parent / "fixtures" / "scenarios"
MANIFESTS = str(DEMO / "cluster.yaml")
FLOWS = str(DEMO / "flows.jsonl")
FILES = ["report", "--manifests", MANIFESTS, "--flows", FLOWS]


def run_json(args: list[str], tmp_path: Path) -> tuple[int, dict[str, object]]:
    out = tmp_path / "r.json"
    code = main([*args, "--format", "json", "--output", str(out)])
    return code, json.loads(out.read_text())


def seeded_store(tmp_path: Path) -> str:
    """A real SQLite store with what a daemon would have recorded over ten minutes."""
    url = f"sqlite://{tmp_path / 'auditor.db'}"
    with open_store(url) as store:
        store.upsert_findings([finding(FindingKind.UNEXPECTED_ALLOW, Severity.HIGH, count=3),
                               finding(FindingKind.POLICY_DROP, Severity.LOW, ns="legacy", workload="batch")])
        # The daemon's layout: flows per verdict without a policy, then per-policy attributions.
        store.add_counts([CounterRow(T0, "", "", "FORWARDED", "ingress", "", 6),
                          CounterRow(T0, "", "", "DROPPED", "ingress", "", 2),
                          CounterRow(T0, "shop", "", "ALLOWED", "ingress", "shop/default-deny", 5),
                          CounterRow(T0, "shop", "", "DROPPED", "ingress", "shop/default-deny", 2)])
        store.record_window(T0, T0 + 10 * MINUTE)
        store.record_gap(T0 + MINUTE, T0 + 2 * MINUTE, "lost-events:hubble_ring_buffer", 42)
        store.record_policy_change(T0 + MINUTE, "MODIFIED", "shop", "default-deny", "7", "{}")
    return url


class TestFilesMode:
    def test_fail_on_high_exits_3(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The demo has high findings: --fail-on high exits 3 and says how many on stderr."""
        out = tmp_path / "r.md"
        assert main([*FILES, "--format", "markdown", "--output", str(out), "--fail-on", "high"]) == 3
        assert "findings at or above high" in capsys.readouterr().err
        assert out.read_text().startswith("# Network policy compliance report")

    def test_fail_on_critical_passes(self, tmp_path: Path) -> None:
        """No critical finding in the demo: exit 0 with --fail-on critical."""
        out = str(tmp_path / "r.csv")
        assert main([*FILES, "--format", "csv", "--output", out, "--fail-on", "critical"]) == 0

    def test_window_excludes_flows_outside_it(self, tmp_path: Path) -> None:
        """--from/--to after the capture: no flows judged, static findings remain."""
        window = ["--from", "2030-01-01T00:00:00Z", "--to", "2030-01-02T00:00:00Z"]
        code, doc = run_json([*FILES, *window], tmp_path)
        assert code == 0
        assert doc["completeness"]["flows"] == 0  # type: ignore[index]
        assert {f["kind"] for f in doc["findings"]} <= {k.value for k in FindingKind if k.is_static}  # type: ignore[attr-defined]

    def test_stdout_output(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--output - writes the report to stdout."""
        assert main([*FILES, "--format", "csv", "--output", "-"]) == 0
        assert capsys.readouterr().out.startswith("id,severity,kind")


class TestEdgeCases:
    @pytest.mark.parametrize("fmt", ["html", "markdown", "json", "csv"])
    def test_empty_cluster_renders(self, fmt: str, tmp_path: Path) -> None:
        """No objects and no flows (with --allow-empty): every format renders; JSON has nothing to score."""
        (tmp_path / "empty.yaml").write_text("")
        (tmp_path / "empty.jsonl").write_text("")
        out = tmp_path / f"r.{fmt}"
        args = ["report", "--manifests", str(tmp_path / "empty.yaml"), "--flows", str(tmp_path / "empty.jsonl"),
                "--allow-empty"]
        assert main([*args, "--format", fmt, "--output", str(out), "--fail-on", "info"]) == 0
        if fmt == "json":
            assert json.loads(out.read_text())["summary"]["score"] is None
        else:
            assert out.stat().st_size > 0


class TestScenarios:
    def test_dns_denial_shows_the_query_name(self, tmp_path: Path) -> None:
        """The dns-denied scenario's report names the query recovered from the flows."""
        scenario = SCENARIOS / "dns-denied"
        _, doc = run_json(["report", "--manifests", str(scenario / "manifests.yaml"),
                           "--flows", str(scenario / "flows.jsonl")], tmp_path)
        assert [d["query"] for d in doc["evidence"]["dns_denials"]] == ["blocked.example.com."]  # type: ignore[index]

    def test_policy_change_in_timeline_and_denial_attributed(self, tmp_path: Path) -> None:
        """policy-narrowed: the change is in the timeline; the later drop names the new revision."""
        scenario = SCENARIOS / "policy-narrowed"
        args = ["report", "--manifests", str(scenario / "manifests.yaml"), "--cluster-events",
                str(scenario / "cluster-events.jsonl"), "--flows", str(scenario / "flows.jsonl")]
        _, doc = run_json(args, tmp_path)
        evidence = doc["evidence"]
        changes = evidence["policy_changes"]  # type: ignore[index]
        assert [(c["name"], c["revision"]) for c in changes] == [("api-in", "11")]
        assert evidence["top_denied"][0]["policies"] == ["shop/api-in@11"]  # type: ignore[index]


class TestStoreMode:
    def test_reads_findings_counters_coverage_and_changes(self, tmp_path: Path) -> None:
        """Findings, flows by verdict, lost events and the change timeline come from the store."""
        code, doc = run_json(["report", "--store", seeded_store(tmp_path), "--manifests", MANIFESTS], tmp_path)
        assert code == 0
        assert doc["summary"]["flows_by_verdict"] == {"DROPPED": 2, "FORWARDED": 6}  # type: ignore[index]
        assert doc["completeness"]["lost_events"] == 42  # type: ignore[index]
        assert [c["name"] for c in doc["evidence"]["policy_changes"]] == ["default-deny"]  # type: ignore[index]
        assert "unexpected-allow" in {f["kind"] for f in doc["findings"]}  # type: ignore[attr-defined]

    def test_posture_unavailable_is_stated(self, tmp_path: Path) -> None:
        """Without manifests or a live cluster the report says posture is unavailable; controls unknown."""
        code, doc = run_json(["report", "--store", seeded_store(tmp_path), "--no-live-cluster"], tmp_path)
        assert code == 0
        assert doc["posture"]["available"] is False  # type: ignore[index]
        assert "posture unavailable" in doc["posture"]["note"]  # type: ignore[index]
        cis = {r["status"] for r in doc["control_results"] if r["control"] == "CIS-5.3.2"}  # type: ignore[attr-defined]
        assert cis == {"unknown"}
        hits = doc["evidence"]["policy_hits"]  # type: ignore[index]
        assert hits == [{"policy": "shop/default-deny", "allowed": 5, "dropped": 2, "isolating_hits": None}]

    def test_namespace_filter(self, tmp_path: Path) -> None:
        """--namespace legacy keeps legacy's finding only."""
        args = ["report", "--store", seeded_store(tmp_path), "--no-live-cluster", "--namespace", "legacy"]
        _, doc = run_json(args, tmp_path)
        assert {f["namespace"] for f in doc["findings"]} == {"legacy"}  # type: ignore[attr-defined]


def kubeconfig(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "loopback", "cluster": {"server": server}}],
        "users": [{"name": "reader", "user": {"token": "synthetic"}}],
        "contexts": [{"name": "test", "context": {"cluster": "loopback", "user": "reader"}}],
    }))
    return str(path)


class TestLivePosture:
    def test_posture_listed_from_the_cluster(self, tmp_path: Path) -> None:
        """Store mode without manifests lists the (loopback) API server once for the posture."""
        api = KubeAPI().start()
        try:
            api.put("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "legacy"}})
            meta = {"name": "batch-1", "namespace": "legacy", "labels": {"app": "batch"}}
            api.put("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": meta})
            args = ["report", "--store", seeded_store(tmp_path), "--kubeconfig", kubeconfig(tmp_path, api.url)]
            code, doc = run_json(args, tmp_path)
        finally:
            api.stop()
        assert code == 0
        assert doc["posture"] == {"available": True, "note": "posture from a listing of the live cluster"}
        legacy = next(ns for ns in doc["namespaces"] if ns["name"] == "legacy")  # type: ignore[attr-defined]
        assert [p["name"] for p in legacy["unprotected_pods"]] == ["batch-1"]

    def test_unreachable_cluster_means_posture_unavailable(self, tmp_path: Path) -> None:
        """A kubeconfig pointing nowhere costs the posture, not the report."""
        args = ["report", "--store", seeded_store(tmp_path), "--kubeconfig", str(tmp_path / "missing")]
        code, doc = run_json(args, tmp_path)
        assert code == 0
        assert doc["posture"]["available"] is False  # type: ignore[index]


class TestBadArguments:
    def test_store_and_flows_together_rejected(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
        """--store with --flows is an error naming both."""
        out = str(tmp_path / "x")
        code = main([*FILES, "--store", "sqlite:///:memory:", "--format", "csv", "--output", out])
        assert code == 1
        assert "--store" in capsys.readouterr().err

    def test_since_with_from_rejected(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--since and --from are exclusive."""
        code = main([*FILES, "--since", "1h", "--from", "2026-01-01T00:00:00Z", "--format", "csv",
                     "--output", str(tmp_path / "x")])
        assert code == 1
        assert "--since" in capsys.readouterr().err

    def test_bad_time_named(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An unparsable --from names the flag and the value."""
        code = main([*FILES, "--from", "yesterday", "--format", "csv", "--output", str(tmp_path / "x")])
        assert code == 1
        assert "--from" in capsys.readouterr().err

    def test_missing_flow_file_named(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing flow file fails with its name."""
        missing = str(tmp_path / "nope.jsonl")
        code = main(["report", "--manifests", MANIFESTS, "--flows", missing, "--format", "csv",
                     "--output", str(tmp_path / "x")])
        assert code == 1
        assert "nope.jsonl" in capsys.readouterr().err
