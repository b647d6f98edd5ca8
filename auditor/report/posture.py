"""Posture from one ClusterState: per namespace, isolation, default deny, policies and what they select."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from auditor.model.k8s import LabelSelector, NetworkPolicy, Peer, PolicyDirection, Rule
from auditor.policy.coverage import default_deny_policies, isolation, selected_pods
from auditor.policy.state import ClusterState, policy_applies, policy_id
from auditor.report.data import NamespaceReport, PodGap, PolicyReport, RuleUse
from auditor.report.usage import RuleUsage

PolicyHits = Mapping[tuple[str, str], tuple[int, int]]
"""(namespace, name) -> (allowed, dropped) flows attributed to the policy."""

ALL_PODS = "(all pods)"


def selector_text(selector: LabelSelector) -> str:
    """A label selector the way kubectl's -l flag spells it; ALL_PODS for an empty one."""
    if selector.is_empty:
        return ALL_PODS
    parts = [f"{key}={value}" for key, value in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        values = ",".join(req.values)
        if req.operator == "Exists":
            parts.append(req.key)
        elif req.operator == "DoesNotExist":
            parts.append(f"!{req.key}")
        else:
            parts.append(f"{req.key} {req.operator.lower()} ({values})")
    return ",".join(parts)


def _peer_text(peer: Peer) -> str:
    if peer.ip_block is not None:
        excepts = f" except {', '.join(peer.ip_block.except_)}" if peer.ip_block.except_ else ""
        return f"{peer.ip_block.cidr}{excepts}"
    parts = []
    if peer.namespace_selector is not None:
        ns = selector_text(peer.namespace_selector)
        parts.append("all namespaces" if ns == ALL_PODS else f"namespaces {ns}")
    if peer.pod_selector is not None:
        parts.append(f"pods {selector_text(peer.pod_selector)}")
    return " & ".join(parts) if parts else "anyone"


def rule_text(rule: Rule, direction: PolicyDirection) -> str:
    """e.g. "from pods app=web on TCP/8080"; "to anyone on any port"."""
    word = "from" if direction is PolicyDirection.INGRESS else "to"
    peers = "; ".join(_peer_text(p) for p in rule.peers) if rule.peers else "anyone"
    ports = []
    for port in rule.ports:
        number = "all" if port.port is None else str(port.port)
        ports.append(f"{port.protocol}/{number}" + (f"-{port.end_port}" if port.end_port else ""))
    return f"{word} {peers} on {', '.join(ports) if ports else 'any port'}"


def policy_report(state: ClusterState, policy: NetworkPolicy, hits: PolicyHits,
                  usage: RuleUsage | None) -> PolicyReport:
    directions = tuple(d for d in PolicyDirection if policy_applies(policy, d))
    rules: list[RuleUse] = []
    for direction in directions:
        listed = policy.ingress if direction is PolicyDirection.INGRESS else policy.egress
        for index, rule in enumerate(listed or ()):
            matched = usage.rule_hits(policy.namespace, policy.name, direction.value, index) if usage else None
            rules.append(RuleUse(direction.value, index, rule_text(rule, direction), matched))
    allowed, dropped = hits.get((policy.namespace, policy.name), (0, 0))
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


def namespace_names(state: ClusterState, only: Collection[str] | None) -> list[str]:
    """Every namespace the state knows of (objects, pods, policies), filtered, sorted."""
    names = {ns.name for ns in state.namespaces} | {p.namespace for p in state.pods}
    names |= {p.namespace for p in state.policies}
    return sorted(n for n in names if only is None or n in only)


def invalid_policies(state: ClusterState, namespace: str) -> tuple[str, ...]:
    """The validation errors of the namespace's rejected policies (refs read `NetworkPolicy ns/name`)."""
    return tuple(str(e) for e in state.invalid if e.ref.partition(" ")[2].partition("/")[0] == namespace)


def namespace_report(state: ClusterState, name: str, hits: PolicyHits, usage: RuleUsage | None,
                     static_findings: tuple[int, ...]) -> NamespaceReport:
    pods = [p for p in state.pods_in(name) if not p.host_network]
    gaps: list[PodGap] = []
    ingress = egress = 0
    for pod in pods:
        isolated_in, isolated_out = isolation(state, pod)
        ingress += isolated_in
        egress += isolated_out
        if not (isolated_in and isolated_out):
            gaps.append(PodGap(pod.name, pod.workload_name, isolated_in, isolated_out))
    policies = state.policies_in(name)
    return NamespaceReport(
        name=name,
        pods=len(pods),
        ingress_isolated=ingress,
        egress_isolated=egress,
        default_deny_ingress=default_deny_policies(state, name, PolicyDirection.INGRESS),
        default_deny_egress=default_deny_policies(state, name, PolicyDirection.EGRESS),
        policies=tuple(policy_report(state, p, hits, usage) for p in policies),
        unprotected=tuple(gaps),
        static_findings=static_findings,
        invalid_policies=invalid_policies(state, name),
    )
