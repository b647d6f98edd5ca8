"""Build the frozen `ReportData` from what an analysis (offline or the store) produced."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from auditor.model.findings import Finding
from auditor.policy.state import ClusterState
from auditor.report.controls import NOT_APPLICABLE, NSA_DEFAULT_DENY, controls_for, evaluate
from auditor.report.data import Completeness, NamespaceReport, PolicyChange, ReportData
from auditor.report.evidence import policy_hits, runtime_evidence, sort_key, summary
from auditor.report.posture import PolicyHits, invalid_clusterwide, namespace_names, namespace_report
from auditor.report.usage import RuleUsage

DEFAULT_TITLE = "Network policy compliance report"


def _no_hits() -> PolicyHits:
    return {}


def _no_verdicts() -> Mapping[str, int]:
    return {}


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """Everything the report is made of; the app fills it from files or from the store."""

    findings: Sequence[Finding]
    completeness: Completeness
    source: str
    source_detail: str = ""
    state: ClusterState | None = None
    """Current posture; None when unavailable (then `posture_note` says why)."""
    posture_note: str = ""
    flows_by_verdict: Mapping[str, int] = field(default_factory=_no_verdicts)
    policy_hits: PolicyHits = field(default_factory=_no_hits)
    usage: RuleUsage | None = None
    """Rule-level usage, known only when the flows were judged in this process."""
    changes: Sequence[PolicyChange] = ()
    namespaces: Sequence[str] | None = None
    """Only these namespaces (None: all)."""
    title: str = DEFAULT_TITLE
    generated_at_ns: int = 0
    policy_enforcement: str = "default"
    auditor_version: str = ""
    """Shown next to the generation time; "" with --reproducible."""
    """Cilium's policy-enforcement mode the posture assumes (`always` isolates every pod)."""


def _in_scope(findings: Sequence[Finding], only: Sequence[str] | None) -> tuple[Finding, ...]:
    kept = [f for f in findings if only is None or f.namespace in only]
    return tuple(sorted(kept, key=sort_key))


def _namespace_reports(inputs: ReportInputs, findings: Sequence[Finding]) -> tuple[NamespaceReport, ...]:
    state = inputs.state
    if state is None:
        return ()
    static: dict[str, list[int]] = {}
    for index, finding in enumerate(findings):
        if finding.kind.is_static:
            static.setdefault(finding.namespace, []).append(index)
    return tuple(namespace_report(state, name, inputs.policy_hits, inputs.usage, tuple(static.get(name, ())),
                                  inputs.policy_enforcement)
                 for name in namespace_names(state, inputs.namespaces))


def build_report(inputs: ReportInputs) -> ReportData:
    """The report; pure and deterministic for given inputs."""
    findings = _in_scope(inputs.findings, inputs.namespaces)
    namespaces = _namespace_reports(inputs, findings)
    posture = inputs.state is not None
    changes = [c for c in inputs.changes if inputs.namespaces is None or c.namespace in inputs.namespaces]
    finding_namespaces = sorted({f.namespace for f in findings if f.namespace})
    only = inputs.namespaces
    scoped_hits = {k: v for k, v in inputs.policy_hits.items() if only is None or k[0] in only}
    hits = policy_hits(namespaces, scoped_hits, posture)
    results = evaluate(namespaces, findings, finding_namespaces, posture)
    not_applicable = {r.namespace for r in results
                      if r.control_id == NSA_DEFAULT_DENY.id and r.status == NOT_APPLICABLE}
    return ReportData(
        title=inputs.title,
        source=inputs.source,
        source_detail=inputs.source_detail,
        generated_at_ns=inputs.generated_at_ns,
        namespaces_filter=tuple(inputs.namespaces or ()),
        posture_available=posture,
        posture_note=inputs.posture_note,
        summary=summary(findings, namespaces, dict(inputs.flows_by_verdict), posture, not_applicable),
        completeness=inputs.completeness,
        controls=controls_for(namespaces),
        control_results=results,
        namespaces=namespaces,
        findings=findings,
        evidence=runtime_evidence(findings, namespaces, changes, inputs.usage is not None, hits),
        invalid_clusterwide=invalid_clusterwide(inputs.state) if inputs.state is not None else (),
        auditor_version=inputs.auditor_version,
    )
