"""Posture from one ClusterState: per namespace, isolation, default deny, policies and what they select."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from auditor.model.decision import KNP_KIND, RuleMatch
from auditor.model.k8s import NetworkPolicy, PolicyDirection
from auditor.policy.cilium_compile import CompiledPolicy
from auditor.policy.coverage import (
    DEFAULT,
    default_deny_policies,
    isolation,
    selected_pods,
    selects_whole_namespace,
)
from auditor.policy.state import ClusterState, policy_applies, policy_id
from auditor.report.data import NamespaceReport, PodGap, PolicyReport, RuleUse
from auditor.report.policy_text import cilium_rule_text, cilium_subject_text, rule_text, selector_text
from auditor.report.usage import RuleUsage

PolicyHits = Mapping[tuple[str, str, str], tuple[int, int]]
"""(namespace, name, policy kind) -> (allowed, dropped) flows attributed to the policy; kind is
`PolicyId.kind` (NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy with namespace "")."""


def policy_report(state: ClusterState, policy: NetworkPolicy, hits: PolicyHits,
                  usage: RuleUsage | None) -> PolicyReport:
    directions = tuple(d for d in PolicyDirection if policy_applies(policy, d))
    rules: list[RuleUse] = []
    for direction in directions:
        listed = policy.ingress if direction is PolicyDirection.INGRESS else policy.egress
        for index, rule in enumerate(listed or ()):
            matched = usage.rule_hits(policy.namespace, policy.name, direction.value, index) if usage else None
            rules.append(RuleUse(direction.value, index, rule_text(rule, direction), matched))
    allowed, dropped = hits.get((policy.namespace, policy.name, KNP_KIND), (0, 0))
    return PolicyReport(
        namespace=policy.namespace,
        name=policy.name,
        revision=policy_id(policy).revision,
        directions=tuple(d.value for d in directions),
        selector=selector_text(policy.pod_selector),
        selected_pods=tuple(p.name for p in selected_pods(state, policy)),
        rules=tuple(rules),
        allowed=allowed,
        dropped=dropped,
        isolating_hits=usage.isolating_hits(policy.namespace, policy.name) if usage else None,
    )


def cilium_policies_in(state: ClusterState, namespace: str) -> tuple[CompiledPolicy, ...]:
    """The Cilium policies that apply in `namespace`: its CNPs (by name), then the CCNPs that select some
    of its pods or every pod of it (a cluster-wide default deny applies to pods created later too)."""
    if not namespace:
        return ()
    ccnps = tuple(c for c in state.cilium.namespaced("")
                  if selected_pods(state, c, namespace)
                  or any(s.subject is not None and selects_whole_namespace(state, s.subject, namespace)
                         for s in c.specs))
    return (*state.cilium.namespaced(namespace), *ccnps)


def cilium_policy_report(state: ClusterState, compiled: CompiledPolicy, namespace: str, hits: PolicyHits,
                         usage: RuleUsage | None) -> PolicyReport:
    """A CNP or CCNP as listed in `namespace`: the pods it selects there, every rule with its path."""
    pid = compiled.pid
    rules: list[RuleUse] = []
    for direction in PolicyDirection:
        ingress = direction is PolicyDirection.INGRESS
        for rule in (r for s in compiled.specs for r in s.rules if r.section.is_ingress == ingress):
            path = RuleMatch(pid, rule.index, section=rule.section.value, spec=rule.spec).path
            matched = usage.path_hits(pid, direction.value, path) if usage else None
            rules.append(RuleUse(direction.value, rule.index, cilium_rule_text(rule), matched, path))
    allowed, dropped = hits.get((pid.namespace, pid.name, pid.kind), (0, 0))
    return PolicyReport(
        namespace=pid.namespace,
        name=pid.name,
        revision=pid.revision,
        directions=tuple(dict.fromkeys(r.direction for r in rules)),
        selector=cilium_subject_text(compiled.policy),
        selected_pods=tuple(p.name for p in selected_pods(state, compiled, namespace)),
        rules=tuple(rules),
        allowed=allowed,
        dropped=dropped,
        isolating_hits=usage.isolating_hits(pid.namespace, pid.name, pid.kind) if usage else None,
        kind=pid.kind,
    )


def namespace_names(state: ClusterState, only: Collection[str] | None) -> list[str]:
    """Every namespace the state knows of (objects, pods, policies), filtered, sorted."""
    names = {ns.name for ns in state.namespaces} | {p.namespace for p in state.pods}
    names |= {p.namespace for p in state.policies}
    names |= {c.policy.namespace for c in state.cilium_policies if c.policy.namespace}
    return sorted(n for n in names if only is None or n in only)


def _ref_namespace(ref: str) -> str:
    """The namespace of an error's `Kind ns/name` ref; "" for a cluster-scoped `Kind name`."""
    ns, slash, _ = ref.partition(" ")[2].partition("/")
    return ns if slash else ""


def invalid_policies(state: ClusterState, namespace: str) -> tuple[str, ...]:
    """The validation errors of the namespace's rejected policies (refs read `NetworkPolicy ns/name`,
    `CiliumNetworkPolicy ns/name`)."""
    return tuple(str(e) for e in state.invalid if _ref_namespace(e.ref) == namespace)


def invalid_clusterwide(state: ClusterState) -> tuple[str, ...]:
    """The validation errors of rejected cluster-scoped objects (CiliumClusterwideNetworkPolicy,
    CiliumCIDRGroup), which belong to no namespace."""
    return tuple(str(e) for e in state.invalid if not _ref_namespace(e.ref))


def namespace_report(state: ClusterState, name: str, hits: PolicyHits, usage: RuleUsage | None,
                     static_findings: tuple[int, ...], policy_enforcement: str = DEFAULT) -> NamespaceReport:
    """One namespace: isolation by policies of every kind, its default denies, its NetworkPolicies (by
    name) then the Cilium policies that apply there (`cilium_policies_in`)."""
    pods = [p for p in state.pods_in(name) if not p.host_network]
    gaps: list[PodGap] = []
    ingress = egress = 0
    for pod in pods:
        isolated_in, isolated_out = isolation(state, pod, policy_enforcement)
        ingress += isolated_in
        egress += isolated_out
        if not (isolated_in and isolated_out):
            gaps.append(PodGap(pod.name, pod.workload_name, isolated_in, isolated_out))
    policies = (*(policy_report(state, p, hits, usage) for p in state.policies_in(name)),
                *(cilium_policy_report(state, c, name, hits, usage) for c in cilium_policies_in(state, name)))
    return NamespaceReport(
        name=name,
        pods=len(pods),
        ingress_isolated=ingress,
        egress_isolated=egress,
        default_deny_ingress=default_deny_policies(state, name, PolicyDirection.INGRESS, policy_enforcement),
        default_deny_egress=default_deny_policies(state, name, PolicyDirection.EGRESS, policy_enforcement),
        policies=policies,
        unprotected=tuple(gaps),
        static_findings=static_findings,
        invalid_policies=invalid_policies(state, name),
    )
