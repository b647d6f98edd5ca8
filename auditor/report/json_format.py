"""JSON per docs/report-schema.json (schema_version "1"): keys are a contract for tools."""

from __future__ import annotations

import json
from typing import Any

from auditor.model.decision import KNP_KIND
from auditor.model.findings import Finding
from auditor.report.data import NamespaceReport, PolicyChange, PolicyReport, ReportData
from auditor.report.fmt import time_or_none

NS_PER_S = 1_000_000_000


def finding_json(f: Finding) -> dict[str, Any]:
    """One finding as a JSON object (times RFC 3339, details as an object); `auditor audit` prints these too."""
    return {
        "kind": f.kind.value, "severity": f.severity.value, "namespace": f.namespace,
        "workload": f.workload, "pod": f.pod, "peer": f.peer, "peer_workload": f.peer_workload,
        "port": f.port, "protocol": f.protocol, "direction": f.direction, "policies": list(f.policies),
        "count": f.count, "first_seen": time_or_none(f.first_seen_ns),
        "last_seen": time_or_none(f.last_seen_ns),
        "sample_flow": f.sample_flow, "message": f.message, "details": dict(f.details),
        "key": f.key.as_string(),
    }


def _policy(p: PolicyReport) -> dict[str, Any]:
    """A policy; `kind` and the rules' `path` are there only for Cilium's kinds (a NetworkPolicy's
    object stays as it was in schema version 1)."""
    found: dict[str, Any] = {
        "namespace": p.namespace, "name": p.name, "revision": p.revision, "directions": list(p.directions),
        "selector": p.selector, "selected_pods": list(p.selected_pods), "allowed": p.allowed,
        "dropped": p.dropped, "isolating_hits": p.isolating_hits, "matched_any": p.matched_any,
        "rules": [{"direction": r.direction, "index": r.index, "summary": r.summary, "matched": r.matched,
                   **({"path": r.path} if r.path else {})} for r in p.rules],
    }
    if p.is_cilium:
        found["kind"] = p.kind
    return found


def _namespace(data: ReportData, ns: NamespaceReport) -> dict[str, Any]:
    return {
        "name": ns.name, "pods": ns.pods, "ingress_isolated": ns.ingress_isolated,
        "egress_isolated": ns.egress_isolated,
        "default_deny": {"ingress": list(ns.default_deny_ingress), "egress": list(ns.default_deny_egress)},
        "policies": [_policy(p) for p in ns.policies],
        "unprotected_pods": [{"name": g.name, "workload": g.workload, "ingress_isolated": g.ingress_isolated,
                              "egress_isolated": g.egress_isolated} for g in ns.unprotected],
        "static_findings": [data.finding_id(i) for i in ns.static_findings],
        "invalid_policies": list(ns.invalid_policies),
    }


def _summary(data: ReportData) -> dict[str, Any]:
    s = data.summary
    return {
        "pods": s.pods, "ingress_isolated": s.ingress_isolated, "egress_isolated": s.egress_isolated,
        "namespaces": s.namespaces, "namespaces_default_deny": s.namespaces_default_deny,
        "policies": s.policies,
        "flows_by_verdict": dict(s.flows_by_verdict), "findings_by_kind": dict(s.findings_by_kind),
        "findings_by_severity": dict(s.findings_by_severity), "score": s.score,
        "score_formula": s.score_formula, "score_inputs": dict(s.score_inputs),
        **({"policies_by_kind": dict(s.policies_by_kind)} if s.has_cilium_policies else {}),
    }


def _completeness(data: ReportData) -> dict[str, Any]:
    c = data.completeness
    return {
        "window": {"from": time_or_none(c.window_from_ns), "to": time_or_none(c.window_to_ns)},
        "covered_seconds": c.covered_ns / NS_PER_S, "covered_fraction": c.fraction, "flows": c.flows,
        "lost_events": c.lost_events, "skipped_lines": c.skipped_lines, "unresolved": c.unresolved,
        "gaps": [{"from": time_or_none(g.from_ns), "to": time_or_none(g.to_ns), "reason": g.reason,
                  "lost_count": g.lost_count} for g in c.gaps],
        "note": c.note,
    }


def _evidence(data: ReportData) -> dict[str, Any]:
    e, ids = data.evidence, data.finding_id
    return {
        "top_denied": [{"source": c.source, "destination": c.destination, "port": c.port,
                        "protocol": c.protocol, "direction": c.direction, "count": c.count,
                        "policies": list(c.policies), "finding": ids(c.finding)} for c in e.top_denied],
        "unexpected": [ids(i) for i in e.unexpected],
        "dns_denials": [{"finding": ids(i), "namespace": data.findings[i].namespace,
                         "workload": data.findings[i].workload, "query": data.findings[i].detail("query"),
                         "count": data.findings[i].count} for i in e.dns_denials],
        "health_checks": [ids(i) for i in e.health_checks],
        "unused_policies": list(e.unused_policies), "unused_rules": list(e.unused_rules),
        "rule_usage_known": e.rule_usage_known,
        "policy_hits": [{"policy": h.policy, "allowed": h.allowed, "dropped": h.dropped,
                         "isolating_hits": h.isolating_hits} for h in e.policy_hits],
        "policy_changes": [_change(c) for c in e.changes],
    }


def _change(c: PolicyChange) -> dict[str, Any]:
    """A policy change; `kind` only for Cilium's kinds (a NetworkPolicy change reads as it always did)."""
    change: dict[str, Any] = {"time": time_or_none(c.time_ns), "type": c.change_type, "namespace": c.namespace,
                              "name": c.name, "revision": c.revision}
    if c.kind != KNP_KIND:
        change["kind"] = c.kind
    return change


def document(data: ReportData) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    return {
        "schema_version": data.schema_version,
        "title": data.title,
        "generated_at": time_or_none(data.generated_at_ns),
        "auditor_version": data.auditor_version or None,
        "source": {"mode": data.source, "detail": data.source_detail},
        "namespaces_filter": list(data.namespaces_filter),
        "posture": {"available": data.posture_available, "note": data.posture_note},
        "summary": _summary(data),
        "completeness": _completeness(data),
        "controls": [{"id": c.id, "framework": c.framework, "title": c.title, "how_checked": c.how_checked}
                     for c in data.controls],
        "control_results": [{"control": r.control_id, "namespace": r.namespace, "status": r.status,
                             "evidence": r.evidence, "findings": [data.finding_id(i) for i in r.findings]}
                            for r in data.control_results],
        "namespaces": [_namespace(data, ns) for ns in data.namespaces],
        "findings": [{"id": data.finding_id(i), **finding_json(f)} for i, f in enumerate(data.findings)],
        "evidence": _evidence(data),
        **({"invalid_clusterwide": list(data.invalid_clusterwide)} if data.invalid_clusterwide else {}),
    }


def render(data: ReportData) -> str:
    return json.dumps(document(data), indent=2, ensure_ascii=False) + "\n"
