"""Markdown for pull-request comments and tickets: headings and pipe tables (GitHub flavour).

Every cluster or wire string goes through `md()`: pipes and Markdown punctuation are
backslash-escaped, <, > and & become entities (GitHub renders inline HTML), newlines become spaces.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.report import rows
from auditor.report.data import NamespaceReport, ReportData
from auditor.report.fmt import NONE, UNKNOWN_USAGE_NOTE, generated_text, plural, time_text

_SPECIAL = set("\\`*_[]|#")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md(value: object) -> str:
    out = []
    for char in str(value):
        if char in _ENTITIES:
            out.append(_ENTITIES[char])
        elif char in _SPECIAL:
            out.append("\\" + char)
        elif char in "\r\n":
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def table(spec: rows.Table) -> list[str]:
    """A pipe table; cells are escaped here.  An empty table is one line saying so."""
    header, body = spec
    if not body:
        return ["_None._", ""]
    lines = ["| " + " | ".join(md(c) if c != "" else NONE for c in row) + " |" for row in body]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *lines, ""]


def _ids(data: ReportData) -> rows.Ref:
    return data.finding_id


def _joined(indexes: Sequence[int], data: ReportData) -> str:
    return ", ".join(data.finding_id(i) for i in indexes)


def _header(data: ReportData) -> list[str]:
    c = data.completeness
    lines = [f"# {md(data.title)}", "",
             f"- Source: {md(data.source)} ({md(data.source_detail) or NONE})",
             f"- Window: {time_text(c.window_from_ns)} to {time_text(c.window_to_ns)}"]
    if data.generated_at_ns or data.auditor_version:
        lines.append(f"- Generated: {generated_text(data.generated_at_ns, data.auditor_version)}")
    if data.namespaces_filter:
        lines.append(f"- Namespaces: {', '.join(md(n) for n in data.namespaces_filter)}")
    lines.append(f"- Posture: {md(data.posture_note) or 'from the cluster state given'}")
    return [*lines, ""]


def _summary(data: ReportData) -> list[str]:
    s = data.summary
    inputs = ", ".join(f"{k} = {v}" for k, v in s.score_inputs)
    return ["## 1. Summary", "", *table(rows.summary(data)),
            f"Score formula: {md(s.score_formula)}; inputs: {inputs}.", "",
            "**Flows by verdict**", "", *table((("Verdict", "Flows"), list(s.flows_by_verdict))),
            "**Findings by severity**", "", *table((("Severity", "Findings"), list(s.findings_by_severity))),
            "**Findings by kind**", "", *table((("Kind", "Findings"), list(s.findings_by_kind)))]


def _completeness(data: ReportData) -> list[str]:
    return ["## 2. Completeness", "", *table(rows.completeness(data)), md(data.completeness.note), "",
            "**Gaps**", "", *table(rows.gaps(data))]


def _controls(data: ReportData) -> list[str]:
    results = rows.control_results(data, lambda ids: _joined(ids, data), str.upper)
    return ["## 3. Controls", "", *table(rows.control_defs(data)), *table(results)]


def _namespace(data: ReportData, ns: NamespaceReport) -> list[str]:
    deny_in = md(", ".join(ns.default_deny_ingress)) or "none"
    deny_out = md(", ".join(ns.default_deny_egress)) or "none"
    return [f"### {md(ns.name)}", "",
            f"{plural(ns.pods, 'pod')}; isolated for ingress {ns.ingress_isolated}, "
            f"for egress {ns.egress_isolated}; "
            f"default deny ingress: {deny_in}, egress: {deny_out}.", "",
            "**Policies**", "", *table(rows.policies(ns, "; ".join)),
            "**Pods without policy**", "", *table(rows.pod_gaps(ns)),
            *(["**Invalid policies**", "", *table(rows.invalid_policies(ns))] if ns.invalid_policies else []),
            "**Static findings**", "", *table(rows.static_findings(data, ns, _ids(data)))]


def _namespaces(data: ReportData) -> list[str]:
    lines = ["## 4. Namespaces", ""]
    if not data.posture_available:
        return [*lines, f"Posture unavailable: {md(data.posture_note)}", ""]
    if data.invalid_clusterwide:
        lines += ["**Invalid cluster-wide policies**", "", *table(rows.invalid_clusterwide(data))]
    if not data.namespaces:
        return [*lines, "_No namespaces._", ""]
    for ns in data.namespaces:
        lines += _namespace(data, ns)
    return lines


def _evidence(data: ReportData) -> list[str]:
    ref = _ids(data)
    unused_note = "" if data.evidence.rule_usage_known else UNKNOWN_USAGE_NOTE
    return ["## 5. Runtime evidence", "",
            "**Top denied connections**", "", *table(rows.top_denied(data, ref)),
            "**Unexpected drops and allows**", "", *table(rows.unexpected(data, ref)),
            "**DNS denials**", "", *table(rows.dns_denials(data, ref)),
            "**Blocked health checks**", "", *table(rows.health_checks(data, ref)),
            "**Per-policy hits**", "", *table(rows.policy_hits(data)),
            f"**Candidates for removal**{unused_note}", "", *table(rows.unused(data)),
            "**Policy change timeline**", "", *table(rows.changes(data))]


def render(data: ReportData) -> str:
    lines = [*_header(data), *_summary(data), *_completeness(data), *_controls(data), *_namespaces(data),
             *_evidence(data), "## Findings", "", *table(rows.findings(data, str)),
             "## 6. Appendix: sample flows", "", *table(rows.samples(data))]
    return "\n".join(lines).rstrip("\n") + "\n"
