"""The CLI nits a new user meets in the first hour: "did you mean" for pods, namespaces, nodes and
policies, the subcommand's usage on a mistyped flag, a table that does not cut names, a static lint
without empty flow statistics, `report --namespace` typos, and `python -m auditor` beside a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.app.audit import AuditOptions, result_table, run_audit
from auditor.app.suggest import closest, hint, policy_hint
from auditor.cli import main
from auditor.model.findings import Finding, FindingKind, Severity
from tests.report_support import DEMO, deny_all, pod, state

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = str(DEMO / "cluster.yaml")
FLOWS = str(DEMO / "flows.jsonl")


def _explain(capsys: pytest.CaptureFixture[str], source: str) -> str:
    code = main(["explain", "--manifests", MANIFESTS, "--from", source, "--to", "shop/api-5f6d8c9b7-q7w3e",
                 "--port", "8080"])
    assert code == 1
    return capsys.readouterr().err


class TestDidYouMean:
    def test_workload_name_suggests_its_pod(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`--from shop/frontend` names the Deployment; the error suggests the pod of that workload."""
        err = _explain(capsys, "shop/frontend")
        assert "unknown pod shop/frontend" in err
        assert "did you mean shop/frontend-7d9c5b7f4-x2k8p?" in err

    def test_misspelt_namespace_is_named(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown namespace is said to be unknown, with the close one suggested."""
        err = _explain(capsys, "shoop/frontend-7d9c5b7f4-x2k8p")
        assert "namespace shoop is unknown (did you mean shop?)" in err

    def test_unknown_node_suggests_a_node(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`node/demo-workr` suggests the inventory's demo-worker node."""
        err = _explain(capsys, "node/demo-workr")
        assert "did you mean demo-worker?" in err

    def test_nothing_close_adds_nothing(self) -> None:
        """No suggestion when no name is close."""
        assert hint("zzz", ["shop", "legacy"]) == ""

    def test_prefix_matches_come_first_and_are_capped(self) -> None:
        """Names extending the typed text come first (shortest first), at most three."""
        names = ["web-1", "web-22", "web-333", "web-4444", "wbe"]
        assert closest("web", names) == ["web-1", "web-22", "web-333"]

    def test_policy_suggestions_cover_every_kind(self) -> None:
        """A misspelt policy ref suggests the NetworkPolicy of that name."""
        st = state(pod("shop", "web-1", "web"), deny_all("shop"))
        assert policy_hint(st, "shop/default-denny") == " (did you mean shop/default-deny?)"

    def test_report_namespace_typo_warns(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`report --namespace shoop` writes the report and warns with the close namespace."""
        out = tmp_path / "r.md"
        assert main(["report", "--manifests", MANIFESTS, "--flows", FLOWS, "--format", "markdown", "--output",
                     str(out), "--namespace", "shoop"]) == 0
        assert "namespace shoop is in neither the posture nor the findings (did you mean shop?)" in (
            capsys.readouterr().err)


class TestSubcommandUsage:
    def test_typo_prints_the_subcommands_usage(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A mistyped explain flag shows `usage: auditor explain`, not the top-level usage, and exits 2."""
        with pytest.raises(SystemExit) as exit_info:
            main(["explain", "--manifests", MANIFESTS, "--frm", "shop/x"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2
        assert err.startswith("usage: auditor explain")
        assert "unrecognized arguments: --frm shop/x" in err
        assert "--frm (did you mean --from?)" in err

    def test_top_level_typo_keeps_the_top_level_usage(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown option before any command is the top-level parser's error."""
        with pytest.raises(SystemExit):
            main(["--bogus"])
        assert capsys.readouterr().err.startswith("usage: auditor [-h]")


class TestAuditTable:
    def test_long_names_are_not_cut(self) -> None:
        """A 60-character namespace/workload appears whole, and the columns stay aligned."""
        workload = "payments-reconciliation-worker-with-a-very-long-name"
        finding = Finding(FindingKind.POLICY_DROP, Severity.LOW, "finance", workload, "dropped", port=8443,
                          protocol="TCP", peer_workload="finance/ledger", count=3)
        base = run_audit(AuditOptions(manifests=(MANIFESTS,), flows=()))
        table = result_table(type(base)(findings=(finding,), summary=base.summary))
        header, row = table.splitlines()[:2]
        assert f"finance/{workload}" in row
        assert row.index("finance/ledger") == header.index("PEER")

    def test_static_lint_has_no_flow_statistics(self) -> None:
        """Without flow files the summary says it is a lint and prints no zero flow counts."""
        table = result_table(run_audit(AuditOptions(manifests=(MANIFESTS,), flows=())))
        assert "static lint of" in table
        assert "flows:" not in table
        assert "judged:" not in table

    def test_audit_with_flows_keeps_its_statistics(self) -> None:
        """With flow files the flow statistics are still printed."""
        table = result_table(run_audit(AuditOptions(manifests=(MANIFESTS,), flows=(FLOWS,))))
        assert "flows: 562" in table


class TestModuleEntryPoint:
    def test_version_from_the_directory_holding_a_checkout_named_auditor(self, tmp_path: Path) -> None:
        """`python -m auditor --version` works next to a checkout directory called auditor."""
        (tmp_path / "auditor").symlink_to(ROOT, target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run([sys.executable, "-m", "auditor", "--version"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("auditor ")
