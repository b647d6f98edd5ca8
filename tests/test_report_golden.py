"""Golden Markdown, JSON and CSV reports of the demo scenario (files mode).  UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from auditor.cli import main
from tests.report_support import ROOT, SCHEMA

GOLDEN = ROOT / "tests" / "golden"
ARGS = ["report", "--manifests", "auditor/data/demo/cluster.yaml", "--flows", "auditor/data/demo/flows.jsonl",
        "--reproducible"]


def produce(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(ROOT)  # relative paths: the report names its inputs as given
    out = tmp_path / f"report.{fmt}"
    assert main([*ARGS, "--format", fmt, "--output", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8", newline="")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs; rerun with UPDATE_GOLDEN=1 if intended"


class TestGolden:
    def test_markdown(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The demo scenario's Markdown report matches tests/golden/report.md."""
        check("report.md", produce("markdown", tmp_path, monkeypatch))

    def test_json(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The demo scenario's JSON report matches tests/golden/report.json and the schema."""
        text = produce("json", tmp_path, monkeypatch)
        jsonschema.validate(json.loads(text), json.loads(SCHEMA.read_text()))
        check("report.json", text)

    def test_csv(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The demo scenario's CSV report matches tests/golden/report.csv."""
        check("report.csv", produce("csv", tmp_path, monkeypatch))


class TestDemoContent:
    def test_demo_report_has_expected_facts(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Demo: 562 flows, shop passes CIS 5.3.2, legacy fails it, DNS denials of shop/api are evidence."""
        document = json.loads(produce("json", tmp_path, monkeypatch))
        assert document["completeness"]["flows"] == 562
        results = {(r["control"], r["namespace"]): r["status"] for r in document["control_results"]}
        assert (results[("CIS-5.3.2", "shop")], results[("CIS-5.3.2", "legacy")]) == ("pass", "fail")
        assert "shop" in {d["namespace"] for d in document["evidence"]["dns_denials"]}
        assert document["evidence"]["rule_usage_known"] is True
