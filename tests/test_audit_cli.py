"""The `auditor audit` command line: output formats, exit codes, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.cli import main

SCENARIO = Path(__file__).parent / "fixtures" / "scenarios" / "policy-drop"
MANIFESTS = str(SCENARIO / "manifests.yaml")
FLOWS = str(SCENARIO / "flows.jsonl")


class TestOutput:
    def test_json_document_shape(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--output json has findings and a summary: flows, by_verdict, skipped_lines, lost_events, window."""
        assert main(["audit", "--manifests", MANIFESTS, "--flows", FLOWS, "--output", "json"]) == 0
        document = json.loads(capsys.readouterr().out)
        summary = document["summary"]
        assert (summary["flows"], summary["by_verdict"], summary["skipped_lines"], summary["lost_events"]) == (
            2, {"DROPPED": 2}, 0, 0)
        assert summary["window"] == {"from": "2026-11-20T10:00:01.000Z", "to": "2026-11-20T10:00:01.000Z"}
        drop = next(f for f in document["findings"] if f["kind"] == "policy-drop")
        assert drop["policies"] == ["shop/api-from-web@7"]
        assert drop["first_seen"] == "2026-11-20T10:00:01.000Z"

    def test_table_fits_100_columns(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The default table output has no line longer than 100 characters."""
        assert main(["audit", "--manifests", MANIFESTS, "--flows", FLOWS]) == 0
        out = capsys.readouterr().out
        assert "policy-drop" in out
        assert max(len(line) for line in out.splitlines()) <= 100


class TestBadInput:
    def test_missing_flow_file_fails_naming_it(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A flow file that does not exist exits non-zero with its name in the message."""
        missing = str(tmp_path / "nope.jsonl")
        assert main(["audit", "--manifests", MANIFESTS, "--flows", missing]) != 0
        assert missing in capsys.readouterr().err

    def test_bad_manifest_fails_naming_the_file(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """An unparsable manifest exits non-zero naming the file."""
        bad = tmp_path / "bad.yaml"
        bad.write_text("kind: Pod\nmetadata: [unclosed\n")
        assert main(["audit", "--manifests", str(bad), "--flows", FLOWS]) != 0
        assert str(bad) in capsys.readouterr().err

    def test_bad_flow_lines_are_counted_and_listed(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Undecodable flow lines do not fail the run: counted in skipped_lines and shown on stderr."""
        flows = tmp_path / "flows.jsonl"
        flows.write_text(Path(FLOWS).read_text() + "{not json\n")
        assert main(["audit", "--manifests", MANIFESTS, "--flows", str(flows), "--output", "json"]) == 0
        captured = capsys.readouterr()
        assert json.loads(captured.out)["summary"]["skipped_lines"] == 1
        assert f"{flows}:3" in captured.err
