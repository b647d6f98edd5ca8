"""Runtime evidence and the summary, derived from findings, policy hits and the posture."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence

from auditor.model.decision import CCNP_KIND, CNP_KIND, KNP_KIND, PolicyId
from auditor.model.findings import Finding, FindingKind, Severity
from auditor.report.data import (
    Connection,
    Evidence,
    NamespaceReport,
    PolicyChange,
    PolicyHit,
    PolicyReport,
    RuleUse,
    Summary,
)

TOP_DENIED = 20
"""Denied connections listed in the runtime evidence (all of them stay in the findings)."""

POLICY_KINDS = (KNP_KIND, CNP_KIND, CCNP_KIND)
DENIED_KINDS = (FindingKind.POLICY_DROP, FindingKind.UNEXPECTED_DROP)
SCORE_FORMULA = (
    "score = max(0, round(60*I + 40*N) - 5*S), where I = pod directions isolated / (2 * pods), "
    "N = namespaces with pods that have a default deny for ingress and egress / namespaces with pods, "
    "both over the namespaces whose default-deny control applies (not-applicable ones such as "
    "kube-system are left out), S = findings of severity high or critical"
)


def sort_key(finding: Finding) -> tuple[object, ...]:
    """Worst first, then a total order on the aggregate key, so output is reproducible."""
    return (-finding.severity.rank, finding.kind.value, finding.namespace, finding.workload,
            finding.peer_workload, finding.peer, finding.port, finding.protocol, finding.direction,
            finding.message)


def _endpoint(namespace: str, workload: str) -> str:
    return "/".join(part for part in (namespace, workload) if part)


def connection(findings: Sequence[Finding], index: int) -> Connection:
    f = findings[index]
    own = _endpoint(f.namespace, f.workload)
    peer = f.peer_workload or f.peer
    source, destination = (peer, own) if f.direction == "ingress" else (own, peer)
    return Connection(source, destination, f.port, f.protocol, f.direction, f.count, f.policies, index)


def _of_kind(findings: Sequence[Finding], *kinds: FindingKind) -> tuple[int, ...]:
    return tuple(i for i, f in enumerate(findings) if f.kind in kinds)


def distinct_policies(namespaces: Sequence[NamespaceReport]) -> tuple[PolicyReport, ...]:
    """Every policy listed in the namespaces, once: a CiliumClusterwideNetworkPolicy may be listed in many."""
    found: dict[str, PolicyReport] = {}
    for ns in namespaces:
        for policy in ns.policies:
            found.setdefault(policy.key, policy)
    return tuple(found.values())


def policy_hits(namespaces: Sequence[NamespaceReport], hits: Mapping[tuple[str, str, str], tuple[int, int]],
                posture_available: bool) -> tuple[PolicyHit, ...]:
    """Per-policy hits of the posture's policies (each once: a cluster-wide policy may be listed in
    several namespaces), or without a posture of every policy counted.  Hits are keyed (namespace,
    name, kind) and a policy is named by `PolicyId.ref`: `ns/name` for a NetworkPolicy,
    `CiliumNetworkPolicy ns/name`, `CiliumClusterwideNetworkPolicy name`."""
    if posture_available:
        return tuple(PolicyHit(p.key, p.allowed, p.dropped, p.isolating_hits)
                     for p in distinct_policies(namespaces))
    return tuple(PolicyHit(PolicyId(ns, name, kind=kind).ref, allowed, dropped)
                 for (ns, name, kind), (allowed, dropped) in sorted(hits.items()))


def runtime_evidence(findings: Sequence[Finding], namespaces: Sequence[NamespaceReport],
                     changes: Sequence[PolicyChange], rule_usage_known: bool,
                     hits: tuple[PolicyHit, ...] = ()) -> Evidence:
    denied = sorted(_of_kind(findings, *DENIED_KINDS), key=lambda i: (-findings[i].count, i))
    unused_policies: list[str] = []
    unused_rules: list[str] = []
    for policy in distinct_policies(namespaces):
        if policy.matched_any is False:
            unused_policies.append(policy.key)
        unused_rules.extend(_rule_name(policy, rule) for rule in policy.rules if rule.matched == 0)
    return Evidence(
        top_denied=tuple(connection(findings, i) for i in denied[:TOP_DENIED]),
        unexpected=_of_kind(findings, FindingKind.UNEXPECTED_DROP, FindingKind.UNEXPECTED_ALLOW),
        dns_denials=_of_kind(findings, FindingKind.DNS_DENIED),
        health_checks=_of_kind(findings, FindingKind.HEALTH_CHECK_BLOCKED),
        unused_policies=tuple(unused_policies),
        unused_rules=tuple(unused_rules),
        rule_usage_known=rule_usage_known,
        changes=tuple(sorted(changes, key=lambda c: (c.time_ns, c.namespace, c.name, c.revision))),
        policy_hits=hits,
    )


def _rule_name(policy: PolicyReport, rule: RuleUse) -> str:
    """`shop/p ingress rule 0` for a NetworkPolicy's rule, `CiliumNetworkPolicy shop/p specs[1].egress[0]`."""
    if rule.path:
        return f"{policy.key} {rule.path}"
    return f"{policy.key} {rule.direction.lower()} rule {rule.index}"


def _tally(values: Sequence[str], order: Sequence[str]) -> tuple[tuple[str, int], ...]:
    counts = Counter(values)
    return tuple((name, counts[name]) for name in order if counts[name])


def _score(scored: Sequence[NamespaceReport], serious: int, excluded: Sequence[str]
           ) -> tuple[int | None, list[tuple[str, str]]]:
    """SCORE_FORMULA over the scored namespaces; None without pods in them."""
    pods = sum(ns.pods for ns in scored)
    with_pods = [ns for ns in scored if ns.pods]
    inputs = [("S", str(serious))]
    if excluded:
        inputs.append(("not applicable", ", ".join(excluded)))
    if not pods:
        return None, inputs
    isolated = sum(ns.ingress_isolated + ns.egress_isolated for ns in scored) / (2 * pods)
    covered = sum(1 for ns in with_pods if ns.has_default_deny) / len(with_pods)
    score = max(0, round(60 * isolated + 40 * covered) - 5 * serious)
    return score, [("I", f"{isolated:.3f}"), ("N", f"{covered:.3f}"), *inputs]


def summary(findings: Sequence[Finding], namespaces: Sequence[NamespaceReport],
            flows_by_verdict: dict[str, int], posture_available: bool,
            not_applicable: Collection[str] = ()) -> Summary:
    """Totals over every namespace shown; the score leaves out `not_applicable` namespaces (those whose
    default-deny control is not applicable: kube-system)."""
    pods = sum(ns.pods for ns in namespaces)
    ingress = sum(ns.ingress_isolated for ns in namespaces)
    egress = sum(ns.egress_isolated for ns in namespaces)
    deny = sum(1 for ns in namespaces if ns.has_default_deny)
    serious = sum(1 for f in findings if f.severity.at_least(Severity.HIGH))
    policies = distinct_policies(namespaces)
    score: int | None = None
    inputs: list[tuple[str, str]] = [("S", str(serious))]
    if posture_available:
        excluded = [ns.name for ns in namespaces if ns.name in not_applicable and ns.pods]
        score, inputs = _score([ns for ns in namespaces if ns.name not in not_applicable], serious, excluded)
    return Summary(
        pods=pods,
        ingress_isolated=ingress,
        egress_isolated=egress,
        namespaces=len(namespaces),
        namespaces_default_deny=deny,
        policies=len(policies),
        flows_by_verdict=tuple(sorted(flows_by_verdict.items())),
        findings_by_kind=_tally([f.kind.value for f in findings], [k.value for k in FindingKind]),
        findings_by_severity=_tally([f.severity.value for f in findings],
                                    [s.value for s in reversed(Severity)]),
        score=score,
        score_formula=SCORE_FORMULA,
        score_inputs=tuple(inputs),
        policies_by_kind=_tally([p.kind for p in policies], POLICY_KINDS),
    )
