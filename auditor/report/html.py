"""One self-contained HTML file: inline CSS and SVG, no script, no external fetch, printable.

Every string from the cluster or the wire passes through `html.escape` (in `cell()`/`esc()`);
only `Raw` fragments assembled here from escaped parts skip it.  A Content-Security-Policy meta
tag forbids scripts and remote loads as a second line of defence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from auditor.report import rows
from auditor.report.charts import bar_chart, share_chart
from auditor.report.data import NamespaceReport, ReportData
from auditor.report.fmt import NONE, UNKNOWN_USAGE_NOTE, generated_text, plural, time_text
from auditor.report.html_style import CSS

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@dataclass(frozen=True, slots=True)
class Raw:
    """Markup assembled here from escaped parts."""

    html: str


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def cell(value: object) -> str:
    if isinstance(value, Raw):
        return value.html
    text = str(value)
    return esc(text) if text != "" else NONE


def table(spec: rows.Table, table_id: str = "", row_ids: Sequence[str] = ()) -> str:
    header, body = spec
    attr = f' id="{esc(table_id)}"' if table_id else ""
    if not body:
        return f'<p class="empty"{attr} data-rows="0">None.</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    lines = []
    for n, row in enumerate(body):
        rid = f' id="{esc(row_ids[n])}"' if n < len(row_ids) else ""
        lines.append(f"<tr{rid}>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>")
    return (f'<table{attr} data-rows="{len(body)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table>')


def status(value: str) -> Raw:
    return Raw(f'<span class="status status-{esc(value)}">{esc(value.upper())}</span>')


def _links(data: ReportData) -> rows.Ref:
    def link(index: int) -> Raw:
        fid = data.finding_id(index)
        return Raw(f'<a href="#{fid}">{fid}</a>')
    return link


def _many(data: ReportData, indexes: Sequence[int]) -> Raw:
    link = _links(data)
    return Raw(", ".join(cell(link(i)) for i in indexes) or NONE)


def _lines(texts: Sequence[str]) -> Raw:
    return Raw("<br>".join(esc(t) for t in texts) or NONE)


def _header(data: ReportData) -> str:
    c = data.completeness
    items = [("Source", f"{data.source} ({data.source_detail or NONE})"),
             ("Window", f"{time_text(c.window_from_ns)} to {time_text(c.window_to_ns)}"),
             ("Posture", data.posture_note or "from the cluster state given")]
    if data.generated_at_ns or data.auditor_version:
        items.append(("Generated", generated_text(data.generated_at_ns, data.auditor_version)))
    if data.namespaces_filter:
        items.append(("Namespaces", ", ".join(data.namespaces_filter)))
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return f'<header><h1>{esc(data.title)}</h1><dl class="facts">{facts}</dl></header>'


def _card(value: object, label: str, card_id: str) -> str:
    return (f'<div class="card"><span class="big" id="{card_id}" data-value="{esc(value)}">{esc(value)}</span>'
            f"{esc(label)}</div>")


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{esc(caption)}</figcaption>{svg}</figure>"


def _summary(data: ReportData) -> str:
    s = data.summary
    total = sum(n for _, n in s.findings_by_severity)
    cards = "".join([_card("n/a" if s.score is None else s.score, "posture score", "score"),
                     _card(total, "findings", "total-findings"),
                     _card(data.completeness.flows, "flows", "total-flows"),
                     _card(f"{s.namespaces_default_deny} / {s.namespaces}", "namespaces with default deny",
                           "default-deny")])
    inputs = ", ".join(f"{k} = {v}" for k, v in s.score_inputs)
    isolation = share_chart("Pods isolated", [("ingress", s.ingress_isolated, s.pods),
                                              ("egress", s.egress_isolated, s.pods)], "chart-isolation")
    charts = "".join([
        _figure(f"Pods isolated ({plural(s.pods, 'pod')})", isolation),
        _figure("Flows by verdict", bar_chart("Flows by verdict", s.flows_by_verdict, "chart-verdicts")),
        _figure("Findings by severity",
                bar_chart("Findings by severity", s.findings_by_severity, "chart-severity")),
        _figure("Findings by kind", bar_chart("Findings by kind", s.findings_by_kind, "chart-kinds")),
    ])
    return (f'<section id="summary"><h2>1. Summary</h2><div class="cards">{cards}</div>'
            f'{table(rows.summary(data), "summary-table")}'
            f'<p class="formula">{esc(s.score_formula)}; inputs: {esc(inputs)}.</p>'
            f'<div class="charts">{charts}</div></section>')


def _completeness(data: ReportData) -> str:
    return (f'<section id="completeness"><h2>2. Completeness</h2>{table(rows.completeness(data))}'
            f'<p class="note">{esc(data.completeness.note)}</p><h3>Gaps</h3>{table(rows.gaps(data), "gaps")}'
            "</section>")


def _controls(data: ReportData) -> str:
    results = rows.control_results(data, lambda ids: _many(data, ids), status)
    return (f'<section id="controls"><h2>3. Controls</h2>{table(rows.control_defs(data), "control-defs")}'
            f'{table(results, "control-results")}</section>')


def _namespace(data: ReportData, ns: NamespaceReport) -> str:
    deny_in = ", ".join(ns.default_deny_ingress) or "none"
    deny_out = ", ".join(ns.default_deny_egress) or "none"
    invalid = f"<h4>Invalid policies</h4>{table(rows.invalid_policies(ns))}" if ns.invalid_policies else ""
    return (f'<article class="namespace" data-namespace="{esc(ns.name)}"><h3>{esc(ns.name)}</h3>'
            f"<p>{plural(ns.pods, 'pod')}; isolated for ingress {ns.ingress_isolated}, "
            f"for egress {ns.egress_isolated}; "
            f"default deny ingress: {esc(deny_in)}, egress: {esc(deny_out)}.</p>"
            f"<h4>Policies</h4>{table(rows.policies(ns, _lines))}"
            f"<h4>Pods without policy</h4>{table(rows.pod_gaps(ns))}{invalid}"
            f"<h4>Static findings</h4>{table(rows.static_findings(data, ns, _links(data)))}</article>")


def _namespaces(data: ReportData) -> str:
    if not data.posture_available:
        body = f'<p class="note" id="posture-unavailable">Posture unavailable: {esc(data.posture_note)}</p>'
    else:
        body = "".join(_namespace(data, ns) for ns in data.namespaces) or '<p class="empty">No namespaces.</p>'
        if data.invalid_clusterwide:
            body = (f"<h3>Invalid cluster-wide policies</h3>"
                    f'{table(rows.invalid_clusterwide(data), "invalid-clusterwide")}{body}')
    return f'<section id="namespaces"><h2>4. Namespaces</h2>{body}</section>'


def _evidence(data: ReportData) -> str:
    link = _links(data)
    unused_note = "" if data.evidence.rule_usage_known else UNKNOWN_USAGE_NOTE
    parts = [
        ("Top denied connections", table(rows.top_denied(data, link), "top-denied")),
        ("Unexpected drops and allows", table(rows.unexpected(data, link), "unexpected")),
        ("DNS denials", table(rows.dns_denials(data, link), "dns-denials")),
        ("Blocked health checks", table(rows.health_checks(data, link), "health-checks")),
        ("Per-policy hits", table(rows.policy_hits(data), "policy-hits")),
        ("Candidates for removal" + unused_note, table(rows.unused(data), "unused")),
        ("Policy change timeline", table(rows.changes(data), "changes")),
    ]
    body = "".join(f"<h3>{esc(title)}</h3>{content}" for title, content in parts)
    return f'<section id="evidence"><h2>5. Runtime evidence</h2>{body}</section>'


def _findings(data: ReportData) -> str:
    ids = [data.finding_id(i) for i in range(len(data.findings))]
    return (f'<section id="findings"><h2>Findings</h2>'
            f'{table(rows.findings(data, status), "findings-table", ids)}</section>'
            '<section id="appendix"><h2>6. Appendix: sample flows</h2>'
            f'{table(rows.samples(data), "samples")}</section>')


def render(data: ReportData) -> str:
    body = "".join([_header(data), _summary(data), _completeness(data), _controls(data), _namespaces(data),
                    _evidence(data), _findings(data)])
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(data.title)}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>\n")
