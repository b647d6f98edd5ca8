"""The report's tables as (header, rows), shared by the HTML and Markdown renderers.

`ref` turns a finding index into what the format shows for it (a link in HTML, the id in
Markdown), so both formats carry the same columns in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from auditor.report.data import NamespaceReport, ReportData
from auditor.report.fmt import (
    NONE,
    details_text,
    duration_text,
    fraction_text,
    peer_text,
    percent,
    port_text,
    time_text,
    where,
)

Ref = Callable[[int], object]
Table = tuple[tuple[str, ...], list[tuple[object, ...]]]


PLURALS = {"NetworkPolicy": "NetworkPolicies", "CiliumNetworkPolicy": "CiliumNetworkPolicies",
           "CiliumClusterwideNetworkPolicy": "CiliumClusterwideNetworkPolicies"}


def _policy_counts(data: ReportData) -> list[tuple[object, ...]]:
    """One "NetworkPolicies" row; with Cilium's kinds in force, the total and a row per kind."""
    s = data.summary
    if not s.has_cilium_policies:
        return [("NetworkPolicies", s.policies)]
    return [("Policies (every kind)", s.policies), *((PLURALS.get(k, k), n) for k, n in s.policies_by_kind)]


def summary(data: ReportData) -> Table:
    s = data.summary
    return (("Measure", "Value"), [
        ("Pods isolated for ingress",
         f"{s.ingress_isolated} of {s.pods} ({percent(s.ingress_isolated, s.pods)})"),
        ("Pods isolated for egress", f"{s.egress_isolated} of {s.pods} ({percent(s.egress_isolated, s.pods)})"),
        ("Namespaces with default deny (ingress and egress)", f"{s.namespaces_default_deny} of {s.namespaces}"),
        *_policy_counts(data),
        ("Posture score", "n/a" if s.score is None else f"{s.score} / 100"),
    ])


def completeness(data: ReportData) -> Table:
    c = data.completeness
    covered = f"{duration_text(c.covered_ns)} ({fraction_text(c.fraction)} of the window)"
    return (("Measure", "Value"), [
        ("Window", f"{time_text(c.window_from_ns)} to {time_text(c.window_to_ns)}"),
        ("Time covered by flows", covered), ("Flows", c.flows), ("Lost events", c.lost_events),
        ("Unreadable flow lines", c.skipped_lines),
        ("Flows with endpoints unknown to the inventory", c.unresolved),
    ])


def gaps(data: ReportData) -> Table:
    return (("From", "To", "Reason", "Lost events"),
            [(time_text(g.from_ns), time_text(g.to_ns), g.reason, g.lost_count)
             for g in data.completeness.gaps])


def control_defs(data: ReportData) -> Table:
    return (("Control", "Framework", "Title", "How auditor checks it"),
            [(c.id, c.framework, c.title, c.how_checked) for c in data.controls])


def control_results(data: ReportData, refs: Callable[[Sequence[int]], object],
                    status: Callable[[str], object]) -> Table:
    return (("Control", "Namespace", "Result", "Evidence", "Findings"),
            [(r.control_id, r.namespace, status(r.status), r.evidence, refs(r.findings))
             for r in data.control_results])


def policies(ns: NamespaceReport, rules: Callable[[Sequence[str]], object]) -> Table:
    header = ("Policy", "Revision", "Types", "Selects", "Pods selected", "Rules (connections matched)",
              "Allowed", "Dropped")
    rows: list[tuple[object, ...]] = []
    for p in ns.policies:
        texts = [f"{r.label}: {r.summary}: {'n/a' if r.matched is None else r.matched}" for r in p.rules]
        selected = ", ".join(p.selected_pods) or "none"
        name = f"{p.kind} {p.name}" if p.is_cilium else p.name
        rows.append((name, p.revision, ", ".join(p.directions), p.selector, selected, rules(texts), p.allowed,
                     p.dropped))
    return header, rows


def pod_gaps(ns: NamespaceReport) -> Table:
    yes = {True: "yes", False: "no"}
    return (("Pod", "Workload", "Ingress isolated", "Egress isolated"),
            [(g.name, g.workload, yes[g.ingress_isolated], yes[g.egress_isolated]) for g in ns.unprotected])


def invalid_policies(ns: NamespaceReport) -> Table:
    return (("Left out of the posture: the API server would reject it",), [(e,) for e in ns.invalid_policies])


def invalid_clusterwide(data: ReportData) -> Table:
    return (("Cluster-scoped objects left out of the posture: the API server would reject them",),
            [(e,) for e in data.invalid_clusterwide])


def static_findings(data: ReportData, ns: NamespaceReport, ref: Ref) -> Table:
    f = data.findings
    return (("Finding", "Kind", "Message"),
            [(ref(i), f[i].kind.value, f[i].message) for i in ns.static_findings])


def top_denied(data: ReportData, ref: Ref) -> Table:
    return (("Source", "Destination", "Port", "Flows", "Denied by", "Finding"),
            [(c.source, c.destination, port_text(c.port, c.protocol), c.count, ", ".join(c.policies),
              ref(c.finding)) for c in data.evidence.top_denied])


def unexpected(data: ReportData, ref: Ref) -> Table:
    f = data.findings
    return (("Finding", "Kind", "Workload", "Peer", "Port", "Flows", "Message"),
            [(ref(i), f[i].kind.value, where(f[i]), peer_text(f[i]), port_text(f[i].port, f[i].protocol),
              f[i].count, f[i].message) for i in data.evidence.unexpected])


def dns_denials(data: ReportData, ref: Ref) -> Table:
    f = data.findings
    return (("Finding", "Client", "Query", "Cause", "Flows"),
            [(ref(i), where(f[i]), f[i].detail("query") or "(not seen)", f[i].detail("cause"), f[i].count)
             for i in data.evidence.dns_denials])


def health_checks(data: ReportData, ref: Ref) -> Table:
    f = data.findings
    return (("Finding", "Pod workload", "Probe", "From", "Port", "Readiness", "Flows"),
            [(ref(i), where(f[i]), f[i].detail("probe"), peer_text(f[i]), port_text(f[i].port, f[i].protocol),
              f[i].detail("readiness"), f[i].count) for i in data.evidence.health_checks])


def policy_hits(data: ReportData) -> Table:
    return (("Policy", "Allowed", "Dropped", "Denied connections isolated"),
            [(h.policy, h.allowed, h.dropped, "n/a" if h.isolating_hits is None else h.isolating_hits)
             for h in data.evidence.policy_hits])


def unused(data: ReportData) -> Table:
    e = data.evidence
    return (("Policy or rule that matched no flow in the window",),
            [(name,) for name in (*e.unused_policies, *e.unused_rules)])


def changes(data: ReportData) -> Table:
    return (("Time", "Change", "Policy", "Revision"),
            [(time_text(c.time_ns), c.change_type, c.policy, c.revision)
             for c in data.evidence.changes])


def findings(data: ReportData, severity: Callable[[str], object]) -> Table:
    return (("ID", "Severity", "Kind", "Where", "Peer", "Port", "Count", "Message"),
            [(data.finding_id(i), severity(f.severity.value), f.kind.value, where(f), peer_text(f),
              port_text(f.port, f.protocol), f.count, f.message) for i, f in enumerate(data.findings)])


def samples(data: ReportData) -> Table:
    return (("Finding", "Sample flow", "First seen", "Last seen", "Policies", "Details"),
            [(data.finding_id(i), f.sample_flow or NONE, time_text(f.first_seen_ns), time_text(f.last_seen_ns),
              ", ".join(f.policies), details_text(f))
             for i, f in enumerate(data.findings) if not f.kind.is_static])
