"""`auditor audit` accounts for every input line: ignored events and unkept findings are in the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.cli import main
from tests.test_audit_cli import FLOWS, MANIFESTS

AGENT_EVENT = '{"agent_event": {"type": "AGENT_STARTED"}, "node_name": "n1", "time": "2026-11-20T10:00:00Z"}\n'


@pytest.fixture
def flows_with_agent_events(tmp_path: Path) -> Path:
    path = tmp_path / "flows.jsonl"
    path.write_text(AGENT_EVENT + Path(FLOWS).read_text() + AGENT_EVENT)
    return path


class TestAuditSummary:
    def test_json_summary_counts_ignored_events(
        self, flows_with_agent_events: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Agent events auditor does not read are counted in summary.ignored_events, not dropped silently."""
        argv = ["audit", "--manifests", MANIFESTS, "--flows", str(flows_with_agent_events), "--output", "json"]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out)["summary"]
        assert summary["ignored_events"] == 2
        assert summary["flows"] == 2

    def test_table_summary_shows_ignored_events(
        self, flows_with_agent_events: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The table's summary says how many events were ignored."""
        assert main(["audit", "--manifests", MANIFESTS, "--flows", str(flows_with_agent_events)]) == 0
        assert "ignored events: 2" in capsys.readouterr().out
