"""The closest miss: the allow rule that came nearest to admitting a denied connection, in words.

Each rule of the policies selecting the pod is scored on three checks: port number (or range,
or named port), peer, protocol.  The best score wins, port first, so a rule for the right port
but the wrong client beats a rule for the right client on another port; ties go to the first
rule in policy-name order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from auditor.model.decision import ClosestMiss, ExternalSubject, NodeSubject, PodSubject, Subject
from auditor.model.k8s import NetworkPolicy, Pod, PolicyDirection, Rule
from auditor.policy.matching import NO_PEER, first_peer, port_number_matches, subject_ip
from auditor.policy.selectors import describe_peer, describe_ports, selector_keys, selector_matches
from auditor.policy.state import ClusterState


def _labels_text(labels: Mapping[str, str], keys: Sequence[str]) -> str:
    return ",".join(f"{k}={labels[k]}" if k in labels else f"no {k} label" for k in keys)


def _pod_mismatch(state: ClusterState, rule: Rule, policy_namespace: str, pod: Pod, word: str) -> str:
    selector_peers = [p for p in rule.peers if p.ip_block is None]
    if not selector_peers:
        return f"the {word} is pod {pod.key}, and ipBlock peers never match pod IPs (Cilium)"
    pod_keys: list[str] = []
    ns_keys: list[str] = []
    for peer in selector_peers:
        if peer.pod_selector is not None:
            pod_keys.extend(k for k in selector_keys(peer.pod_selector) if k not in pod_keys)
        if peer.namespace_selector is not None:
            ns_keys.extend(k for k in selector_keys(peer.namespace_selector) if k not in ns_keys)
    ns_labels = state.namespace_labels(pod.namespace)
    ns_fail = all(
        (peer.namespace_selector is None and pod.namespace != policy_namespace)
        or (peer.namespace_selector is not None and not selector_matches(peer.namespace_selector, ns_labels))
        for peer in selector_peers)
    facts = [f"has {_labels_text(pod.labels, pod_keys)}"] if pod_keys else []
    if ns_fail:
        where = f"is in namespace {pod.namespace}"
        facts.append(f"{where} ({_labels_text(ns_labels, ns_keys)})" if ns_keys else where)
    if not facts:
        facts.append(f"is pod {pod.key}")
    return f"the {word} " + " and ".join(facts)


def _peer_mismatch(state: ClusterState, rule: Rule, policy_namespace: str, other: Subject, word: str) -> str:
    if isinstance(other, PodSubject):
        return _pod_mismatch(state, rule, policy_namespace, other.pod, word)
    if isinstance(other, NodeSubject):
        name = other.node_name or other.ip
        return (f"the {word} is node {name}, which pod selectors never match "
                "(nor ipBlocks, in Cilium's default mode)")
    assert isinstance(other, ExternalSubject)
    address = other.ip or "an unknown address"
    if any(p.ip_block is not None for p in rule.peers):
        return f"the {word} is {address}, outside every allowed ipBlock"
    return f"the {word} is {address}, outside the cluster, which pod and namespace selectors never match"


def _rule_text(rule: Rule, policy: NetworkPolicy) -> str:
    peers = " or ".join(describe_peer(p, policy.namespace) for p in rule.peers) if rule.peers else "everyone"
    ports = describe_ports(rule.ports)
    return f"allows {peers} on {ports}"


def closest_miss(state: ClusterState, direction: PolicyDirection, policies: Sequence[NetworkPolicy],
                 other: Subject, port: int, protocol: str, destination: Pod | None,
                 cidr_match_nodes: bool = False) -> ClosestMiss | None:
    """The best-scoring rule of `policies` for `direction` and why it did not admit; None without rules."""
    best: tuple[tuple[bool, bool, bool], NetworkPolicy, int, Rule] | None = None
    for policy in policies:
        rules = policy.ingress if direction is PolicyDirection.INGRESS else policy.egress
        for index, rule in enumerate(rules or ()):
            numbered = [p for p in rule.ports if port_number_matches(p, port, destination)]
            port_ok = not rule.ports or bool(numbered)
            proto_ok = not rule.ports or any(p.protocol == protocol for p in (numbered or rule.ports))
            peer_ok = first_peer(state, rule, policy.namespace, other, cidr_match_nodes) != NO_PEER
            score = (port_ok, peer_ok, proto_ok)
            if best is None or score > best[0]:
                best = (score, policy, index, rule)
    if best is None:
        return None
    (port_ok, peer_ok, proto_ok), policy, index, rule = best
    word = "source" if direction is PolicyDirection.INGRESS else "destination"
    reasons: list[str] = []
    if not peer_ok:
        reasons.append(_peer_mismatch(state, rule, policy.namespace, other, word))
    if not port_ok:
        named = [p.port for p in rule.ports if isinstance(p.port, str)]
        note = f" (named port {', '.join(map(str, named))} does not resolve to it)" if named else ""
        reasons.append(f"the connection is to port {port}{note}")
    if not proto_ok:
        reasons.append(f"the connection is {protocol}")
    if not reasons:  # scored fully but still denied: the peer matched only by a different address
        reasons.append(f"the {word} address {subject_ip(other) or '?'} is not admitted")
    message = f"rule {index} of {policy.key} {_rule_text(rule, policy)}; " + "; ".join(reasons)
    return ClosestMiss(state.policy_id(policy), index, message)
