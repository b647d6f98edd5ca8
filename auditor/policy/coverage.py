"""Static questions for findings: is a pod isolated, which pods does a policy select, what is open.

These ask about policies and pods, not about one concrete connection (use `PolicyEngine` for that).
"""

from __future__ import annotations

from auditor.model.decision import PodSubject, Subject
from auditor.model.k8s import NetworkPolicy, Pod, PolicyDirection, Rule
from auditor.policy.engine import PolicyEngine
from auditor.policy.matching import destination_pod, port_number_matches
from auditor.policy.selectors import parse_network, selector_matches
from auditor.policy.state import ClusterState, policy_applies


def isolation(state: ClusterState, pod: Pod) -> tuple[bool, bool]:
    """(ingress_isolated, egress_isolated): whether any valid policy selects the pod per direction.

    hostNetwork pods are never isolated (NetworkPolicy does not apply to them).
    """
    if pod.host_network:
        return (False, False)
    return (bool(state.policies_selecting(pod, PolicyDirection.INGRESS)),
            bool(state.policies_selecting(pod, PolicyDirection.EGRESS)))


def default_deny_policies(state: ClusterState, namespace: str, direction: PolicyDirection) -> tuple[str, ...]:
    """Names of the namespace's policies with an empty podSelector applying to `direction`: each isolates
    every pod of the namespace, also pods created later (its default deny)."""
    return tuple(p.name for p in state.policies_in(namespace)
                 if p.pod_selector.is_empty and policy_applies(p, direction))


def selected_pods(state: ClusterState, policy: NetworkPolicy) -> tuple[Pod, ...]:
    """Pods of the policy's namespace its podSelector matches (hostNetwork pods excluded), by name."""
    return tuple(p for p in state.pods_in(policy.namespace)
                 if not p.host_network and selector_matches(policy.pod_selector, p.labels))


def _all_pods_peer(rule: Rule) -> bool:
    return any(p.ip_block is None and p.namespace_selector is not None and p.namespace_selector.is_empty
               and (p.pod_selector is None or p.pod_selector.is_empty) for p in rule.peers)


def _world_peers(rule: Rule) -> bool:
    versions: set[int] = set()
    for peer in rule.peers:
        if peer.ip_block is not None and not peer.ip_block.except_:
            net = parse_network(peer.ip_block.cidr)
            if net is not None and net.prefixlen == 0:
                versions.add(net.version)
    return versions == {4, 6}


def rule_admits_everyone(rule: Rule, direction: PolicyDirection) -> bool:
    """An allow-all rule: no ports, and no peers, or a peer selecting every pod, or the whole internet.

    Every pod = a peer with an empty namespaceSelector and an empty or absent podSelector; the whole
    internet = ipBlocks 0.0.0.0/0 and ::/0 (both, without `except`).  `direction` is accepted for
    symmetry: the test is the same for ingress and egress rules.
    """
    del direction
    if rule.ports:
        return False
    return not rule.peers or _all_pods_peer(rule) or _world_peers(rule)


def _named_port_may_match(rule: Rule, port: int, protocol: str, destination: Pod | None) -> bool:
    for policy_port in rule.ports:
        if policy_port.protocol != protocol:
            continue
        if isinstance(policy_port.port, str) and destination is None:
            return True
        if port_number_matches(policy_port, port, destination):
            return True
    return not rule.ports


def allows_port(state: ClusterState, pod: Pod, direction: PolicyDirection, port: int, protocol: str = "TCP",
                peer: Subject | None = None, engine: PolicyEngine | None = None) -> bool:
    """Whether the pod's `direction` side lets port/protocol through.

    With `peer` it is the engine's side verdict for that peer (the destination for egress, the
    source for ingress).  Without a peer it asks whether *some* peer is admitted: the pod is not
    isolated, or a rule of a selecting policy admits the port (named ports in egress rules count
    as possibly matching, since they resolve on a destination not given here).
    """
    if peer is not None:
        own = PodSubject(pod)
        side = (engine or PolicyEngine()).side(state, direction, own, peer, port, protocol)
        return side.allowed
    if pod.host_network:
        return True
    selecting = state.policies_selecting(pod, direction)
    if not selecting:
        return True
    destination = pod if direction is PolicyDirection.INGRESS else None
    for policy in selecting:
        rules = policy.ingress if direction is PolicyDirection.INGRESS else policy.egress
        if any(_named_port_may_match(r, port, protocol, destination) for r in rules or ()):
            return True
    return False


__all__ = ["allows_port", "destination_pod", "isolation", "policy_applies", "rule_admits_everyone",
           "selected_pods"]
