"""Controls reviewers ask about, evaluated per namespace with evidence.

Only controls whose wording was checked are listed; docs/reports.md cites the sources.  The
mapping from a control to what auditor can observe is ours and is stated in `how_checked`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from auditor.model.findings import Finding, FindingKind
from auditor.report.data import Control, ControlResult, NamespaceReport
from auditor.report.fmt import plural

CIS_5_3_2 = Control(
    id="CIS-5.3.2",
    framework="CIS Kubernetes Benchmark (v1.9.0, 5.3 Network Policies and CNI)",
    title="Ensure that all Namespaces have Network Policies defined",
    how_checked="pass when the namespace has at least one valid NetworkPolicy",
)
NSA_DEFAULT_DENY = Control(
    id="NSA-CISA-NP-DEFAULT-DENY",
    framework="NSA/CISA Kubernetes Hardening Guidance (network separation: Network Policies checklist)",
    title="Use a default policy to deny all ingress and egress traffic",
    how_checked="pass when policies with an empty podSelector isolate every pod of the namespace for "
    "ingress and for egress; kube-system is not applicable (the checklist item excepts it)",
)
NSA_ENFORCED = Control(
    id="NSA-CISA-NP-CNI",
    framework="NSA/CISA Kubernetes Hardening Guidance (network separation: Network Policies checklist)",
    title="Use CNI plugin that supports NetworkPolicy API",
    how_checked="runtime evidence: fail when traffic the policies in force deny was forwarded "
    "(unexpected-allow); pass when policy drops or policy-admitted flows were observed in the namespace; "
    "unknown without such traffic",
)
CONTROLS = (CIS_5_3_2, NSA_DEFAULT_DENY, NSA_ENFORCED)
"""The controls as checked in a cluster with NetworkPolicies only."""

CILIUM_CONTROLS = (
    replace(CIS_5_3_2, how_checked="pass when the namespace has at least one valid NetworkPolicy or "
            "CiliumNetworkPolicy, or a CiliumClusterwideNetworkPolicy selects pods in it"),
    replace(NSA_DEFAULT_DENY, how_checked="pass when default-deny policies (a NetworkPolicy with an empty "
            "podSelector, a CiliumNetworkPolicy with an empty endpointSelector, a "
            "CiliumClusterwideNetworkPolicy selecting every pod of the namespace; or Cilium's "
            "policy-enforcement=always) isolate every pod of the namespace for ingress and for egress; "
            "kube-system is not applicable (the checklist item excepts it)"),
    NSA_ENFORCED,
)
"""The same controls where Cilium's policy kinds are in force: every kind counts."""


def controls_for(namespaces: Sequence[NamespaceReport]) -> tuple[Control, ...]:
    """CILIUM_CONTROLS when a namespace lists a Cilium policy, else CONTROLS."""
    return CILIUM_CONTROLS if _any_cilium(namespaces) else CONTROLS


def _any_cilium(namespaces: Sequence[NamespaceReport]) -> bool:
    return any(p.is_cilium for ns in namespaces for p in ns.policies)

EXEMPT_FROM_DEFAULT_DENY = "kube-system"

PASS, FAIL, NOT_APPLICABLE, UNKNOWN = "pass", "fail", "not-applicable", "unknown"


def _pods(count: int) -> str:
    return plural(count, "pod")


Indexed = Sequence[tuple[int, Finding]]
"""One namespace's findings with their indexes in ReportData.findings."""


def _indexes(found: Indexed, *kinds: FindingKind) -> tuple[int, ...]:
    return tuple(i for i, f in found if f.kind in kinds)


_PLURALS = (("NetworkPolicy", "NetworkPolicies"), ("CiliumNetworkPolicy", "CiliumNetworkPolicies"),
            ("CiliumClusterwideNetworkPolicy", "CiliumClusterwideNetworkPolicies"))


def _policies_text(ns: NamespaceReport) -> str:
    """`NetworkPolicies: a, b; CiliumNetworkPolicies: c; CiliumClusterwideNetworkPolicies: d`, kinds present."""
    parts = []
    for kind, kinds in _PLURALS:
        names = [p.name for p in ns.policies if p.kind == kind]
        if names:
            parts.append(f"{kinds}: {', '.join(names)}")
    return "; ".join(parts)


def cis_5_3_2(ns: NamespaceReport, cilium: bool = False) -> ControlResult:
    """Pass with a policy of any kind that applies in the namespace (listed in its report)."""
    if ns.policies:
        return ControlResult(CIS_5_3_2.id, ns.name, PASS, _policies_text(ns))
    what = "no NetworkPolicy or Cilium policy applies in the namespace" if cilium else (
        "no NetworkPolicy in the namespace")
    return ControlResult(CIS_5_3_2.id, ns.name, FAIL, f"{what}; nothing restricts its {_pods(ns.pods)}")


def nsa_default_deny(ns: NamespaceReport, found: Indexed, cilium: bool = False) -> ControlResult:
    related = _indexes(found, FindingKind.NO_DEFAULT_DENY)
    if ns.name == EXEMPT_FROM_DEFAULT_DENY:
        return ControlResult(NSA_DEFAULT_DENY.id, ns.name, NOT_APPLICABLE,
                             "the checklist item excepts kube-system", related)
    missing = [d for d, names in (("ingress", ns.default_deny_ingress), ("egress", ns.default_deny_egress))
               if not names]
    open_pods = (f"{ns.pods - ns.ingress_isolated} of {_pods(ns.pods)} not isolated for ingress, "
                 f"{ns.pods - ns.egress_isolated} for egress")
    if missing:
        what = "default-deny policy" if cilium else "empty-podSelector policy"
        return ControlResult(NSA_DEFAULT_DENY.id, ns.name, FAIL,
                             f"no {what} for {' and '.join(missing)}; {open_pods}", related)
    evidence = (f"ingress: {', '.join(ns.default_deny_ingress)}; egress: {', '.join(ns.default_deny_egress)}; "
                f"all {_pods(ns.pods)} isolated both ways")
    return ControlResult(NSA_DEFAULT_DENY.id, ns.name, PASS, evidence, related)


def nsa_enforced(ns: NamespaceReport | None, name: str, found: Indexed) -> ControlResult:
    counts = dict(found)
    gaps = _indexes(found, FindingKind.UNEXPECTED_ALLOW)
    if gaps:
        flows = sum(counts[i].count for i in gaps)
        return ControlResult(NSA_ENFORCED.id, name, FAIL,
                             f"{plural(flows, 'flow')} the policies deny {'was' if flows == 1 else 'were'} "
                             f"forwarded ({plural(len(gaps), 'finding')})", gaps)
    drops = _indexes(found, FindingKind.POLICY_DROP)
    dropped = sum(counts[i].count for i in drops)
    # a CiliumClusterwideNetworkPolicy's hits are cluster-wide, not this namespace's
    allowed = sum(p.allowed for p in ns.policies if p.namespace == ns.name) if ns is not None else 0
    if dropped or allowed:
        return ControlResult(NSA_ENFORCED.id, name, PASS,
                             f"{plural(dropped, 'flow')} dropped as the policies require, {allowed} "
                             "admitted by a policy rule; no forwarded flow the policies deny", drops)
    return ControlResult(NSA_ENFORCED.id, name, UNKNOWN, "no policy-decided traffic observed in the window")


def evaluate(namespaces: Sequence[NamespaceReport], findings: Sequence[Finding],
             finding_namespaces: Sequence[str], posture_available: bool) -> tuple[ControlResult, ...]:
    """Every control for every namespace; posture controls are unknown without a cluster state."""
    by_ns: dict[str, list[tuple[int, Finding]]] = defaultdict(list)
    for index, finding in enumerate(findings):
        by_ns[finding.namespace].append((index, finding))
    results: list[ControlResult] = []
    if posture_available:
        cilium = _any_cilium(namespaces)
        for ns in namespaces:
            found = by_ns.get(ns.name, [])
            results.extend([cis_5_3_2(ns, cilium), nsa_default_deny(ns, found, cilium),
                            nsa_enforced(ns, ns.name, found)])
        return tuple(results)
    for name in finding_namespaces:
        for control in (CIS_5_3_2, NSA_DEFAULT_DENY):
            results.append(ControlResult(control.id, name, UNKNOWN, "cluster posture unavailable"))
        results.append(nsa_enforced(None, name, by_ns.get(name, [])))
    return tuple(results)
