"""Whether one rule's peers and ports admit a connection, per networking.k8s.io/v1.

Peers (the *other* side of the connection, seen from the selected pod):
- pod/namespace selectors match only pod-network pods; podSelector alone means the policy's
  own namespace, namespaceSelector alone means every pod of the matching namespaces, both = AND;
- ipBlock matches only addresses outside the cluster's identities, as Cilium does: pod IPs never
  match an ipBlock, node IPs only when `cidr_match_nodes` (Cilium's `policy-cidr-match-mode=nodes`).
Ports: numeric with optional endPort, named ports resolved against the *destination* pod's
container ports (a named port never matches a non-pod destination), protocol must agree,
`port` omitted means every port of the protocol, no ports at all means every port.
"""

from __future__ import annotations

from auditor.model.decision import ExternalSubject, NodeSubject, PodSubject, Subject
from auditor.model.k8s import Peer, Pod, PolicyPort, Rule
from auditor.policy.selectors import ip_in_block, selector_matches
from auditor.policy.state import ClusterState

NO_PEER = -1
"""`first_peer` result when no peer of a non-empty `from`/`to` list matches."""


def as_peer(subject: Subject) -> Subject:
    """hostNetwork pods act with their node's identity (Cilium: host / remote-node), not as pods."""
    if isinstance(subject, PodSubject) and subject.pod.host_network:
        pod = subject.pod
        return NodeSubject(node_name=pod.node_name, ip=subject.ip or pod.host_ip)
    return subject


def subject_ip(subject: Subject) -> str:
    if isinstance(subject, PodSubject):
        return subject.ip or (subject.pod.ips[0] if subject.pod.ips else "")
    return subject.ip


def peer_matches(state: ClusterState, peer: Peer, policy_namespace: str, other: Subject,
                 cidr_match_nodes: bool = False) -> bool:
    """Does `peer` (of a policy in `policy_namespace`) select the other side of the connection?"""
    if peer.ip_block is not None:
        if isinstance(other, ExternalSubject) or (cidr_match_nodes and isinstance(other, NodeSubject)):
            return bool(other.ip) and ip_in_block(other.ip, peer.ip_block)
        return False
    if not isinstance(other, PodSubject):
        return False
    pod = other.pod
    if peer.namespace_selector is None:
        if pod.namespace != policy_namespace:
            return False
    elif not selector_matches(peer.namespace_selector, state.namespace_labels(pod.namespace)):
        return False
    selector = peer.pod_selector
    return selector is None or selector_matches(selector, state.selector_labels(pod, selector))


def first_peer(state: ClusterState, rule: Rule, policy_namespace: str, other: Subject,
               cidr_match_nodes: bool = False) -> int | None:
    """Index of the first peer admitting `other`; None when the rule has no peers; NO_PEER if none match."""
    if not rule.peers:
        return None
    for index, peer in enumerate(rule.peers):
        if peer_matches(state, peer, policy_namespace, other, cidr_match_nodes):
            return index
    return NO_PEER


def port_number_matches(policy_port: PolicyPort, port: int, destination: Pod | None) -> bool:
    """The number part of a NetworkPolicyPort, ignoring protocol."""
    wanted = policy_port.port
    if wanted is None:
        return True
    if isinstance(wanted, str):
        if destination is None:
            return False
        return destination.resolve_port(wanted, policy_port.protocol) == port
    if policy_port.end_port is not None:
        return wanted <= port <= policy_port.end_port
    return wanted == port


def port_matches(policy_port: PolicyPort, port: int, protocol: str, destination: Pod | None) -> bool:
    return policy_port.protocol == protocol and port_number_matches(policy_port, port, destination)


def rule_ports_match(rule: Rule, port: int, protocol: str, destination: Pod | None) -> bool:
    """True when the rule has no ports or one of them admits port/protocol on `destination`."""
    if not rule.ports:
        return True
    return any(port_matches(p, port, protocol, destination) for p in rule.ports)


def destination_pod(subject: Subject) -> Pod | None:
    """The pod named ports resolve against (None for nodes, hostNetwork pods and external IPs)."""
    if isinstance(subject, PodSubject) and not subject.pod.host_network:
        return subject.pod
    return None
