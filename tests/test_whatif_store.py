"""`auditor whatif --store` and the whatif section of `auditor report` (synthetic fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from auditor.app.audit import AuditOptions, run_audit
from auditor.app.report import ReportOptions, run_report
from auditor.app.whatif import WhatifOptions, run_whatif
from auditor.app.whatif_store import STORE_NOTE
from auditor.errors import ConfigError, InputError
from auditor.findings.whatif import Change
from auditor.store import open_store

FOLDER = Path(__file__).parent / "fixtures" / "whatif" / "cross-namespace"
MANIFESTS, PROPOSED, FLOWS = (str(FOLDER / n) for n in ("manifests.yaml", "proposed.yaml", "flows.jsonl"))


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A real SQLite store holding the findings `auditor audit` gets from the capture."""
    url = f"sqlite://{tmp_path / 'auditor.db'}"
    findings = run_audit(AuditOptions(manifests=(MANIFESTS,), flows=(FLOWS,))).findings
    with open_store(url) as store:
        store.upsert_findings(findings)
    return url


def test_store_findings_are_judged_as_connections(store_url: str) -> None:
    """The unprotected-pod finding of legacy/batch -> shop/api is newly denied by the proposal."""
    result = run_whatif(WhatifOptions(manifests=(MANIFESTS,), proposed=(PROPOSED,), store=store_url))
    denied = [str(r.key) for r in result.rows if r.change is Change.NEWLY_DENIED]
    assert denied == ["legacy/batch -> shop/api 8080/TCP"]


def test_store_mode_says_what_it_cannot_see(store_url: str) -> None:
    """Connections admitted as expected leave no finding: the result carries the note."""
    result = run_whatif(WhatifOptions(manifests=(MANIFESTS,), proposed=(PROPOSED,), store=store_url))
    assert result.notes == (STORE_NOTE,)


def test_a_missing_store_is_an_error(tmp_path: Path) -> None:
    """A mistyped store path is not created empty."""
    with pytest.raises(InputError, match="no such store file"):
        run_whatif(WhatifOptions(manifests=(MANIFESTS,), proposed=(PROPOSED,),
                                 store=f"sqlite://{tmp_path / 'missing.db'}"))


def _report(tmp_path: Path, fmt: str) -> str:
    out = tmp_path / f"report.{fmt}"
    run_report(ReportOptions(format=fmt, output=str(out), manifests=(MANIFESTS,), flows=(FLOWS,),
                             whatif_proposed=(PROPOSED,), reproducible=True))
    return out.read_text()


def test_markdown_report_has_the_whatif_section(tmp_path: Path) -> None:
    """`auditor report --whatif-proposed` appends the whatif text to a Markdown report."""
    assert "**1 recorded connection would be newly denied.**" in _report(tmp_path, "markdown")


def test_html_report_has_the_whatif_section_inside_body(tmp_path: Path) -> None:
    """The HTML report gets a whatif section before </body>."""
    text = _report(tmp_path, "html")
    assert text.index('<section id="whatif">') < text.rindex("</body>")
    assert "<td>legacy/batch</td>" in text


def test_json_report_has_a_whatif_object(tmp_path: Path) -> None:
    """The JSON report gets a top-level whatif object with the connections."""
    document = json.loads(_report(tmp_path, "json"))
    assert document["whatif"]["summary"]["connection_keys"]["newly-denied"] == 1


def test_csv_report_refuses_the_section(tmp_path: Path) -> None:
    """CSV has no room for the section: a clear error, not a silent omission."""
    with pytest.raises(ConfigError, match="no whatif section"):
        _report(tmp_path, "csv")


def test_json_report_with_whatif_matches_the_published_schema(tmp_path: Path) -> None:
    """docs/report-schema.json admits the whatif object (the schema forbids unknown keys)."""
    schema = json.loads((Path(__file__).parent.parent / "docs" / "report-schema.json").read_text())
    jsonschema.validate(json.loads(_report(tmp_path, "json")), schema)
