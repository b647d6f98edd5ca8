"""Renderers: escaping of cluster and wire strings, JSON against its schema, CSV rows, self-contained HTML."""

from __future__ import annotations

import csv
import io
import json
import re

import jsonschema
import pytest

from auditor.errors import ConfigError
from auditor.model.findings import FindingKind
from auditor.report import csv_format, html, json_format, markdown
from auditor.report.data import PolicyChange
from auditor.report.render import render
from tests.report_support import (
    HOSTILE_PEER,
    HOSTILE_QUERY,
    MINUTE,
    SCHEMA,
    T0,
    finding,
    hostile_findings,
    report,
    shop_state,
    state,
)


def validate(document: object) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)


class TestJson:
    def test_document_matches_schema(self) -> None:
        """A full report validates against docs/report-schema.json."""
        validate(json.loads(json_format.render(report(hostile_findings(), shop_state()))))

    def test_empty_and_posture_less_reports_match_schema(self) -> None:
        """Empty cluster and no posture still give schema-valid documents (nulls where unknown)."""
        validate(json.loads(json_format.render(report(st=state()))))
        document = json.loads(json_format.render(report(hostile_findings(), None, posture_note="none")))
        validate(document)
        assert (document["summary"]["score"], document["posture"]["available"]) == (None, False)

    def test_dns_query_kept_verbatim(self) -> None:
        """JSON carries the query name as data, unaltered (consumers escape for their medium)."""
        document = json.loads(json_format.render(report(hostile_findings(), shop_state())))
        assert document["evidence"]["dns_denials"][0]["query"] == HOSTILE_QUERY

    def test_schema_rejects_unknown_fields(self) -> None:
        """The schema is closed: an extra top-level field is a validation error."""
        document = json.loads(json_format.render(report(st=state())))
        document["surprise"] = 1
        with pytest.raises(jsonschema.ValidationError):
            validate(document)


class TestPolicyChangeKinds:
    CHANGES = [PolicyChange(T0, "ADDED", "shop", "web", "3"),
               PolicyChange(T0 + MINUTE, "MODIFIED", "shop", "web", "4", kind="CiliumNetworkPolicy"),
               PolicyChange(T0 + 2 * MINUTE, "DELETED", "", "world", "5",
                            kind="CiliumClusterwideNetworkPolicy")]

    def test_json_names_only_cilium_kinds(self) -> None:
        """JSON policy changes carry `kind` for Cilium's kinds only, and still match the schema."""
        document = json.loads(json_format.render(report(changes=self.CHANGES)))
        validate(document)
        assert [c.get("kind") for c in document["evidence"]["policy_changes"]] == [
            None, "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"]

    def test_markdown_timeline_puts_cilium_kinds_first(self) -> None:
        """The timeline shows `ns/name` for a NetworkPolicy and kind-prefixed names for Cilium's kinds."""
        text = markdown.render(report(changes=self.CHANGES))
        assert "| shop/web | 3 |" in text
        assert "| CiliumNetworkPolicy shop/web | 4 |" in text
        assert "| CiliumClusterwideNetworkPolicy world | 5 |" in text


class TestCsv:
    def test_one_row_per_finding(self) -> None:
        """A header, then exactly one row per finding, ids in report order."""
        rows = list(csv.reader(io.StringIO(csv_format.render(report(hostile_findings(), shop_state())))))
        assert rows[0][:3] == ["id", "severity", "kind"]
        assert [r[0] for r in rows[1:]] == ["F1", "F2"]

    def test_formula_cells_are_neutralised(self) -> None:
        """A cell starting with = gets a leading apostrophe so spreadsheets do not evaluate it."""
        hostile = finding(FindingKind.POLICY_DROP, peer="=HYPERLINK(\"http://x\")")
        rows = list(csv.reader(io.StringIO(csv_format.render(report([hostile], shop_state())))))
        assert rows[1][csv_format.COLUMNS.index("peer")] == "'=HYPERLINK(\"http://x\")"

    def test_empty_report_has_header_only(self) -> None:
        """No findings: the header line alone."""
        assert csv_format.render(report(st=state())).count("\r\n") == 1


class TestMarkdown:
    def test_pipes_and_markup_escaped(self) -> None:
        """A pipe in a message cannot break the table; < and > become entities."""
        text = markdown.render(report(hostile_findings(), shop_state()))
        assert HOSTILE_QUERY not in text
        assert "&lt;img src=x onerror=alert(1)&gt;.example." in text
        assert "dropped \\| by policy" in text

    def test_every_table_row_has_its_column_count(self) -> None:
        """Each row of each table has as many cells as its header (escaped pipes do not count)."""
        lines = markdown.render(report(hostile_findings(), shop_state())).splitlines()
        width = 0
        for line in lines:
            if not line.startswith("|"):
                width = 0
                continue
            cells = len(re.findall(r"(?<!\\)\|", line)) - 1
            width = width or cells
            assert cells == width, line

    def test_sections_in_order(self) -> None:
        """The six sections appear in the issue's order."""
        text = markdown.render(report(st=shop_state()))
        positions = [text.index(h) for h in ("## 1. Summary", "## 2. Completeness", "## 3. Controls",
                                              "## 4. Namespaces", "## 5. Runtime evidence", "## 6. Appendix")]
        assert positions == sorted(positions)


class TestHtml:
    def test_hostile_strings_escaped(self) -> None:
        """No raw tag from the wire survives: the query and the peer appear only as escaped text."""
        text = html.render(report(hostile_findings(), shop_state(), title="<b>t</b>"))
        assert HOSTILE_QUERY not in text
        assert HOSTILE_PEER not in text
        assert "<b>t</b>" not in text
        assert "&lt;img src=x onerror=alert(1)&gt;.example." in text

    def test_self_contained(self) -> None:
        """No script, no external URL to fetch; a CSP forbids both."""
        text = html.render(report(hostile_findings(), shop_state()))
        assert "<script" not in text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
        assert "default-src 'none'" in text

    def test_print_css_breaks_pages_per_section(self) -> None:
        """The stylesheet has print rules with a page break before sections."""
        text = html.render(report(st=shop_state()))
        assert "@media print" in text
        assert "page-break-before: always" in text


class TestRender:
    def test_unknown_format_is_config_error(self) -> None:
        """An unknown format names the supported ones."""
        with pytest.raises(ConfigError, match="html, markdown, json, csv"):
            render(report(st=state()), "pdf")

    def test_output_is_deterministic(self) -> None:
        """The same inputs render byte-identical output in every format."""
        for fmt in ("html", "markdown", "json", "csv"):
            assert render(report(hostile_findings(), shop_state()), fmt) == render(
                report(hostile_findings(), shop_state()), fmt)
