"""What a reviewer checks first in a report: when and by which auditor it was written (unless
--reproducible), a posture score without not-applicable namespaces, plural-aware wording,
fixed-precision RFC 3339 times, empty CSV ports, and rule usage in store mode."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import pytest

from auditor import __version__
from auditor.app.audit import analyse_files, load_cluster_inputs
from auditor.app.report import ReportOptions, run_report
from auditor.cli import build_parser
from auditor.findings.session import AnalysisOptions
from auditor.model.findings import FindingKind
from auditor.model.k8s import Namespace
from auditor.report.csv_format import render as render_csv
from auditor.report.data import ReportData
from auditor.report.fmt import plural, rfc3339_ms
from auditor.report.html import render as render_html
from auditor.report.markdown import render as render_markdown
from auditor.store import open_store
from auditor.store.records import CounterRow
from tests.report_support import DEMO, MINUTE, T0, deny_all, finding, pod, report, state

MANIFESTS = str(DEMO / "cluster.yaml")
FLOWS = str(DEMO / "flows.jsonl")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
PLURAL_SLIPS = re.compile(r"(?<![\d.])1 (pods|flows|findings|coverage windows|policies|windows)\b|"
                          r"(?<![\d.])1 of \d+ \w+ (are|were)\b")


def _files(fmt: str, **options: object) -> str:
    options = ReportOptions(format=fmt, manifests=(MANIFESTS,), flows=(FLOWS,), **options)  # type: ignore[arg-type]
    return run_report(options).text


def _demo_store(tmp_path: Path) -> str:
    """A store written by the daemon's analysis session over the demo flows (what `auditor run` records)."""
    inputs = load_cluster_inputs([MANIFESTS], None)
    analysis = analyse_files(inputs.history(), AnalysisOptions(), [FLOWS])
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    with open_store(url) as store:
        store.apply(analysis.delta, now_ns=T0)
    return url


def _store_report(tmp_path: Path) -> ReportData:
    return run_report(ReportOptions(format="json", store=_demo_store(tmp_path), manifests=(MANIFESTS,))).data


class TestGeneratedBy:
    def test_generation_time_and_version_shown_by_default(self) -> None:
        """Without --reproducible the header names the generation time (now) and auditor's version."""
        before = time.time_ns()
        text = _files("markdown")
        line = next(line for line in text.splitlines() if line.startswith("- Generated: "))
        assert re.fullmatch(rf"- Generated: \S+\.\d{{3}}Z by auditor {re.escape(__version__)}", line), line
        shown = json.loads(_files("json"))
        assert shown["auditor_version"] == __version__
        assert rfc3339_ms(before) <= shown["generated_at"] <= rfc3339_ms(time.time_ns())

    def test_reproducible_leaves_out_time_and_version(self) -> None:
        """--reproducible: no generation line, version null in JSON, two runs byte-identical."""
        first, second = _files("markdown", reproducible=True), _files("markdown", reproducible=True)
        assert "Generated" not in first
        assert first == second
        document = json.loads(_files("json", reproducible=True))
        assert (document["generated_at"], document["auditor_version"]) == (None, None)

    def test_html_header_shows_generation(self) -> None:
        """The HTML header's facts list carries the generation time and version."""
        html = _files("html", generated_at_ns=T0)
        assert f"<dt>Generated</dt><dd>{rfc3339_ms(T0)} by auditor {__version__}</dd>" in html

    def test_cli_has_reproducible_flag(self) -> None:
        """`auditor report --reproducible` parses into the option."""
        argv = ["report", "--manifests", MANIFESTS, "--flows", FLOWS, "--format", "json", "--output", "-"]
        args = build_parser().parse_args([*argv, "--reproducible"])
        assert args.reproducible is True


class TestScoreExcludesNotApplicable:
    def test_kube_system_does_not_lower_the_score(self) -> None:
        """kube-system (default-deny not applicable) has an unisolated pod; shop is fully isolated: 100."""
        st = state(Namespace("kube-system"), Namespace("shop"), pod("kube-system", "dns-1", "dns"),
                   pod("shop", "web-1", "web"), deny_all("shop"))
        data = report(st=st)
        statuses = {r.namespace: r.status for r in data.control_results
                    if r.control_id == "NSA-CISA-NP-DEFAULT-DENY"}
        assert statuses == {"kube-system": "not-applicable", "shop": "pass"}
        assert data.summary.score == 100
        assert ("not applicable", "kube-system") in data.summary.score_inputs

    def test_totals_still_count_kube_system(self) -> None:
        """The pod and namespace totals shown still include the not-applicable namespace."""
        st = state(Namespace("kube-system"), pod("kube-system", "dns-1", "dns"), pod("shop", "web-1", "web"))
        data = report(st=st)
        assert (data.summary.pods, data.summary.namespaces) == (2, 2)
        assert data.summary.score == 0

    def test_only_not_applicable_namespaces_give_no_score(self) -> None:
        """A cluster of only kube-system has nothing to score: n/a, not 0 or 100."""
        assert report(st=state(pod("kube-system", "dns-1", "dns"))).summary.score is None

    def test_formula_says_what_is_excluded(self) -> None:
        """The stated formula names the exclusion."""
        assert "kube-system are left out" in report(st=state()).summary.score_formula


class TestWording:
    def test_plural_helper(self) -> None:
        """1 pod, 2 pods, 0 pods, irregular plurals."""
        assert [plural(1, "pod"), plural(2, "pod"), plural(0, "pod"), plural(3, "policy", "policies")] == [
            "1 pod", "2 pods", "0 pods", "3 policies"]

    @pytest.mark.parametrize("fmt", ["markdown", "html"])
    def test_demo_report_has_no_plural_slips(self, fmt: str) -> None:
        """The demo report (one-pod namespaces) never says "1 pods" or "1 of 1 pods ... are"."""
        text = _files(fmt)
        assert not PLURAL_SLIPS.findall(text), PLURAL_SLIPS.findall(text)[:5]
        assert "1 of 1 pod in namespace kube-system" in text

    def test_store_note_counts_one_window_in_the_singular(self, tmp_path: Path) -> None:
        """A store with one coverage window says "1 coverage window"."""
        url = _demo_store(tmp_path)
        text = run_report(ReportOptions(format="markdown", store=url, manifests=(MANIFESTS,))).text
        assert "store: 1 coverage window recorded" in text

    def test_one_pod_namespace_in_html_and_markdown(self) -> None:
        """A namespace with one pod reads "1 pod;" in both renderers."""
        data = report(st=state(pod("legacy", "batch-1", "batch")))
        assert "1 pod; isolated" in render_markdown(data)
        assert "1 pod; isolated" in render_html(data)


class TestTimes:
    def test_fixed_millisecond_precision(self) -> None:
        """Every time has exactly three fraction digits, trimmed nowhere (10:09:45.010Z, not .01002Z)."""
        assert rfc3339_ms(1_763_632_985_010_020_000) == "2025-11-20T10:03:05.010Z"
        assert rfc3339_ms(T0) == "2025-11-20T10:00:00.000Z"

    @pytest.mark.parametrize("fmt", ["markdown", "json", "csv"])
    def test_every_time_in_the_demo_report_has_three_digits(self, fmt: str) -> None:
        """No RFC 3339 time in a report has another precision."""
        stamps = list(TIME.finditer(_files(fmt, generated_at_ns=T0)))
        assert stamps
        assert {len(m.group(1) or "") for m in stamps} == {4}


class TestCsvPort:
    def test_finding_without_port_has_an_empty_cell(self) -> None:
        """A static finding without a port writes an empty port cell, not 0."""
        data = report([finding(FindingKind.NO_DEFAULT_DENY, port=0),
                       finding(FindingKind.POLICY_DROP, port=5432)])
        rows = {r["kind"]: r["port"] for r in csv.DictReader(io.StringIO(render_csv(data)))}
        assert rows == {"no-default-deny": "", "policy-drop": "5432"}


class TestStoreRuleUsage:
    def test_store_mode_knows_rule_usage(self, tmp_path: Path) -> None:
        """A store the daemon's session wrote has per-rule hits: usage is known, every rule has a count."""
        data = _store_report(tmp_path)
        assert data.evidence.rule_usage_known
        rules = [rule for ns in data.namespaces for p in ns.policies for rule in p.rules]
        assert rules
        assert all(rule.matched is not None for rule in rules)

    def test_store_and_files_mode_agree_on_unused_rules(self, tmp_path: Path) -> None:
        """The rules no flow matched are the same whether the report reads the store or the files."""
        store = _store_report(tmp_path)
        files = run_report(ReportOptions(format="json", manifests=(MANIFESTS,), flows=(FLOWS,))).data
        assert store.evidence.unused_rules == files.evidence.unused_rules
        assert store.evidence.unused_policies == files.evidence.unused_policies

    def test_store_mode_matched_rules_have_hits(self, tmp_path: Path) -> None:
        """A rule the demo's traffic uses (shop/api-from-frontend ingress rule 0) has a positive count."""
        data = _store_report(tmp_path)
        policy = next(p for ns in data.namespaces for p in ns.policies if p.name == "api-from-frontend")
        assert (policy.rules[0].matched or 0) > 0

    def test_store_without_recorded_rule_hits_says_unknown(self, tmp_path: Path) -> None:
        """Counters without rule-hit hours (an older daemon): usage unknown, no rule called unused."""
        url = f"sqlite:///{tmp_path / 'old.db'}"
        with open_store(url) as store:
            store.add_counts([CounterRow(T0, "", "", "FORWARDED", "ingress", "", 6)])
            store.record_window(T0, T0 + 10 * MINUTE)
        data = run_report(ReportOptions(format="json", store=url, manifests=(MANIFESTS,))).data
        assert not data.evidence.rule_usage_known
        assert data.evidence.unused_rules == ()
