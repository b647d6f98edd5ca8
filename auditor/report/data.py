"""`ReportData`: everything a report shows, computed once, frozen; every renderer takes only this.

Strings in here come from the cluster and the wire unescaped; escaping is each renderer's job
(HTML entities, Markdown pipes, CSV quoting).  Collections are tuples in a stable order so the
same inputs always render byte-identical output.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.model.decision import KNP_KIND, PolicyId
from auditor.model.findings import Finding

SCHEMA_VERSION = "1"
"""Version of the JSON document (docs/report-schema.json).  Bump on any incompatible change."""


@dataclass(frozen=True, slots=True)
class GapInfo:
    """A span with missing data: Hubble lost events or a stream outage."""

    from_ns: int
    to_ns: int
    reason: str
    lost_count: int = 0


@dataclass(frozen=True, slots=True)
class Completeness:
    """How much data the report's conclusions rest on."""

    window_from_ns: int
    window_to_ns: int
    covered_ns: int
    """Length of the time flows were actually observed in the window."""
    lost_events: int
    gaps: tuple[GapInfo, ...] = ()
    flows: int = 0
    skipped_lines: int = 0
    """Flow lines that could not be read (files mode)."""
    unresolved: int = 0
    """Decision flows whose endpoints were unknown to the inventory at flow time."""
    note: str = ""

    @property
    def fraction(self) -> float | None:
        """Covered share of the window, None when the window is empty."""
        span = self.window_to_ns - self.window_from_ns
        return min(1.0, self.covered_ns / span) if span > 0 else None


@dataclass(frozen=True, slots=True)
class RuleUse:
    """One rule of a policy and how many distinct observed connections it admitted (None: not known).

    The correlator judges each distinct connection (endpoints, port, state revision) once and reuses
    the outcome, so this counts connections, not packets; zero means no flow matched the rule."""

    direction: str
    index: int
    summary: str
    matched: int | None
    path: str = ""
    """A Cilium rule's place in its policy (`ingress[0]`, `specs[1].egressDeny[0]`); "" for a KNP rule."""

    @property
    def label(self) -> str:
        """`Ingress 0` for a NetworkPolicy rule, the path for a Cilium one."""
        return self.path or f"{self.direction} {self.index}"


@dataclass(frozen=True, slots=True)
class PolicyReport:
    """A policy of any kind, what it selects, and the traffic it decided in the window."""

    namespace: str
    """"" for a CiliumClusterwideNetworkPolicy."""
    name: str
    revision: str
    directions: tuple[str, ...]
    """Ingress and/or Egress, after API-server defaulting (Cilium: the directions it has rules for)."""
    selector: str
    """The podSelector (Cilium: endpointSelectors / nodeSelectors) as text; "(all pods)" for an empty one."""
    selected_pods: tuple[str, ...]
    """Names of the pods it selects in the namespace it is listed in."""
    rules: tuple[RuleUse, ...]
    allowed: int = 0
    """Flows allowed with this policy as the primary admitting policy."""
    dropped: int = 0
    """Flows dropped with this policy among the isolating ones (primary attribution)."""
    isolating_hits: int | None = None
    """Distinct denied connections this policy isolated (any attribution), None when not known."""
    kind: str = KNP_KIND
    """NetworkPolicy, CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy (`PolicyId.kind`)."""

    @property
    def key(self) -> str:
        """`namespace/name` for a NetworkPolicy; with the kind in front for Cilium's (`PolicyId.ref`)."""
        return PolicyId(self.namespace, self.name, kind=self.kind).ref

    @property
    def is_cilium(self) -> bool:
        return self.kind != KNP_KIND

    @property
    def matched_any(self) -> bool | None:
        """Whether any flow in the window was decided by this policy (None when not known)."""
        if self.allowed or self.dropped or self.isolating_hits:
            return True
        if any(rule.matched for rule in self.rules):
            return True
        if self.isolating_hits is None or any(rule.matched is None for rule in self.rules):
            return None
        return False


@dataclass(frozen=True, slots=True)
class PodGap:
    """A pod that no policy selects for ingress and/or egress."""

    name: str
    workload: str
    ingress_isolated: bool
    egress_isolated: bool


@dataclass(frozen=True, slots=True)
class NamespaceReport:
    """Posture of one namespace (from the cluster state) and its findings."""

    name: str
    pods: int
    ingress_isolated: int
    egress_isolated: int
    default_deny_ingress: tuple[str, ...]
    """Policies that isolate every pod for ingress: NetworkPolicies with an empty podSelector (by name),
    Cilium policies selecting every pod of the namespace (`PolicyId.ref`), or `policy-enforcement=always`."""
    default_deny_egress: tuple[str, ...]
    policies: tuple[PolicyReport, ...]
    unprotected: tuple[PodGap, ...]
    static_findings: tuple[int, ...]
    """Indexes into ReportData.findings."""
    invalid_policies: tuple[str, ...] = ()
    """Why each policy the API server would reject was left out of the posture."""

    @property
    def has_default_deny(self) -> bool:
        return bool(self.default_deny_ingress) and bool(self.default_deny_egress)


@dataclass(frozen=True, slots=True)
class Control:
    """A control reviewers ask about, with the wording we checked (see docs/reports.md)."""

    id: str
    framework: str
    title: str
    how_checked: str


@dataclass(frozen=True, slots=True)
class ControlResult:
    """One control evaluated for one namespace."""

    control_id: str
    namespace: str
    status: str
    """pass, fail, not-applicable or unknown."""
    evidence: str
    findings: tuple[int, ...] = ()
    """Indexes into ReportData.findings supporting the result."""


@dataclass(frozen=True, slots=True)
class Connection:
    """A denied (or unexpected) connection, aggregated, with the policies that decided it."""

    source: str
    destination: str
    port: int
    protocol: str
    direction: str
    count: int
    policies: tuple[str, ...]
    finding: int
    """Index into ReportData.findings."""


@dataclass(frozen=True, slots=True)
class PolicyHit:
    """Flows one policy decided in the window (see PolicyReport for the meaning of each count)."""

    policy: str
    allowed: int
    dropped: int
    isolating_hits: int | None = None


@dataclass(frozen=True, slots=True)
class PolicyChange:
    time_ns: int
    change_type: str
    namespace: str
    """"" for a CiliumClusterwideNetworkPolicy."""
    name: str
    revision: str
    kind: str = KNP_KIND
    """NetworkPolicy, CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy."""

    @property
    def policy(self) -> str:
        """How reports name the policy: `ns/name` for a NetworkPolicy, else kind first (`PolicyId.ref`)."""
        return PolicyId(self.namespace, self.name, kind=self.kind).ref


@dataclass(frozen=True, slots=True)
class Evidence:
    """Runtime evidence: what traffic was actually denied or allowed, and by what."""

    top_denied: tuple[Connection, ...]
    unexpected: tuple[int, ...]
    """Findings: unexpected-drop and unexpected-allow."""
    dns_denials: tuple[int, ...]
    health_checks: tuple[int, ...]
    unused_policies: tuple[str, ...]
    """Policies that decided no flow in the window: candidates for removal."""
    unused_rules: tuple[str, ...]
    """"namespace/name direction rule N" of rules that admitted no flow in the window."""
    rule_usage_known: bool
    changes: tuple[PolicyChange, ...]
    policy_hits: tuple[PolicyHit, ...] = ()
    """Every policy of the posture, or without a posture every policy the counters name."""


@dataclass(frozen=True, slots=True)
class Summary:
    pods: int
    ingress_isolated: int
    egress_isolated: int
    namespaces: int
    namespaces_default_deny: int
    policies: int
    """Distinct policies of every kind listed in the namespaces shown."""
    flows_by_verdict: tuple[tuple[str, int], ...]
    findings_by_kind: tuple[tuple[str, int], ...]
    findings_by_severity: tuple[tuple[str, int], ...]
    score: int | None
    """Posture score 0..100 (None when there are no pods to judge)."""
    score_formula: str
    score_inputs: tuple[tuple[str, str], ...]
    policies_by_kind: tuple[tuple[str, int], ...] = ()
    """`policies` per kind present: NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy."""

    @property
    def has_cilium_policies(self) -> bool:
        return any(kind != KNP_KIND for kind, _ in self.policies_by_kind)


@dataclass(frozen=True, slots=True)
class ReportData:
    """The whole report; see the module docstring."""

    title: str
    source: str
    """files or store."""
    source_detail: str
    generated_at_ns: int
    """When the report was written; 0 with --reproducible (and no --generated-at)."""
    namespaces_filter: tuple[str, ...]
    posture_available: bool
    posture_note: str
    summary: Summary
    completeness: Completeness
    controls: tuple[Control, ...]
    control_results: tuple[ControlResult, ...]
    namespaces: tuple[NamespaceReport, ...]
    findings: tuple[Finding, ...]
    """Sorted: severity (worst first), kind, namespace, workload, peer, port."""
    evidence: Evidence
    schema_version: str = SCHEMA_VERSION
    invalid_clusterwide: tuple[str, ...] = ()
    """Why each cluster-scoped object (CiliumClusterwideNetworkPolicy, CiliumCIDRGroup) was left out."""
    auditor_version: str = ""
    """The auditor version that wrote the report; "" with --reproducible."""

    def finding_id(self, index: int) -> str:
        """A stable, human-friendly id of findings[index] (F1, F2, ...)."""
        return f"F{index + 1}"
