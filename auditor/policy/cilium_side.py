"""The Cilium policies' part of one side of a connection: who selects the endpoint, what allows, what denies.

Per direction (pkg/policy/repository.go, pkg/policy/rule.go):
- a spec selects the endpoint through its `endpointSelector` (pods) or `nodeSelector` (the host
  endpoint, host firewall only) and matters for a direction when it has rules for it;
- it isolates the endpoint for that direction when it has allow or deny rules for it, unless
  `enableDefaultDeny` is false for the direction;
- a matching deny rule of any selecting policy wins over every allow;
- `fromRequires`/`toRequires` of every selecting rule narrow every peer of that direction's
  rules (allow requirements for allow rules, deny requirements for deny rules);
- a `toFQDNs` peer matches the addresses Hubble's DNS observations gave that name; when none is
  known the rule is *pending*: the caller says `undecided: fqdn` rather than guess.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from auditor.model.cilium import CiliumCIDRGroup
from auditor.model.decision import ExternalSubject, NodeSubject, PodSubject, PolicyId, RuleMatch, Subject
from auditor.model.k8s import Pod, PolicyDirection
from auditor.policy.cilium_compile import (
    CompiledPolicy,
    CPeer,
    CRule,
    CSpec,
    address_in,
    cidr_network,
    in_network,
)
from auditor.policy.cilium_labels import (
    DEFAULT_CLUSTER,
    Identity,
    Selector,
    pod_labels,
    reserved_identity,
    selects,
)
from auditor.policy.cilium_services import service_admits
from auditor.policy.selectors import Address, parse_address
from auditor.policy.state import ClusterState

Selected = tuple[tuple[CompiledPolicy, CSpec], ...]


@dataclass(frozen=True, slots=True)
class CiliumSide:
    """What the Cilium policies say about one side."""

    selecting: tuple[PolicyId, ...] = ()
    isolating: tuple[PolicyId, ...] = ()
    allowed_by: tuple[RuleMatch, ...] = ()
    denied_by: tuple[RuleMatch, ...] = ()
    pending: tuple[RuleMatch, ...] = ()
    """Rules that may match but cannot be decided (a toFQDNs peer with no known name, a peer not modelled)."""
    pending_reason: str = ""
    """`fqdn` or `not-modelled`, for the first pending rule."""
    pending_deny: bool = False
    """True when a pending rule is a deny rule (then only a definite deny decides the side)."""


NOTHING = CiliumSide()


@dataclass(frozen=True, slots=True)
class Peer:
    """The other side of the connection as Cilium's rules see it from the selected endpoint."""

    identity: Identity
    address: Address | None = None
    """The parsed IP address CIDR rules may match (external endpoints; nodes with cidr_match_nodes)."""
    names: tuple[str, ...] = ()
    node_labels: Identity | None = None
    pod: Pod | None = None
    """The destination pod named ports resolve against."""


def pod_identity(state: ClusterState, pod: Pod) -> Identity:
    """The pod's identity labels, memoised per state for the state's own pod objects."""
    own = state.pod(pod.namespace, pod.name) is pod
    key = ("identity", pod.namespace, pod.name)
    if own:
        hit = state.memo.get(key)
        if isinstance(hit, Identity):
            return hit
    identity = Identity.of(pod_labels(pod, state.namespace_labels(pod.namespace), DEFAULT_CLUSTER))
    if own:
        state.memo[key] = identity
    return identity


def _node_identity(node: NodeSubject, local: bool) -> Identity:
    names = ("host" if local else "remote-node", *sorted(node.identities))
    return reserved_identity(*names)


def _external_identity(ip: str, identities: frozenset[str]) -> Identity:
    """world (with its per-family label) when Hubble named no other reserved identity; an external
    kube-apiserver has identity 7 (reserved:kube-apiserver), not world."""
    if identities - {"world", "world-ipv4", "world-ipv6"}:
        return reserved_identity(*sorted(identities))
    address = parse_address(ip) if ip else None
    family = "world-ipv6" if address is not None and address.version == 6 else "world-ipv4"
    return reserved_identity("world", family)


def is_local_node(node: NodeSubject, node_name: str, host_ip: str) -> bool:
    if node.node_name and node_name:
        return node.node_name == node_name
    return bool(node.ip) and node.ip == host_ip


def peer_of(state: ClusterState, other: Subject, local_node: str, local_ip: str, cidr_match_nodes: bool,
            destination: Pod | None) -> Peer:
    """`other` as the rules of an endpoint on node `local_node` see it."""
    if isinstance(other, PodSubject):
        return Peer(pod_identity(state, other.pod), pod=destination)
    if isinstance(other, NodeSubject):
        node = state.node(other.node_name) if other.node_name else state.node_by_ip(other.ip)
        labels = Identity.of({f"k8s:{k}": v for k, v in node.labels.items()}) if node is not None else None
        address = parse_address(other.ip) if cidr_match_nodes and other.ip else None
        identity = _node_identity(other, is_local_node(other, local_node, local_ip))
        return Peer(identity, address, node_labels=labels, pod=destination)
    assert isinstance(other, ExternalSubject)
    address = parse_address(other.ip) if other.ip else None
    return Peer(_external_identity(other.ip, other.identities), address, other.names, pod=destination)


def selecting_specs(state: ClusterState, identity: Identity, direction: PolicyDirection, namespace: str,
                    memo_key: object | None) -> Selected:
    """The (policy, spec) pairs whose endpointSelector selects a pod and that have rules for `direction`."""
    if memo_key is not None:
        hit = state.memo.get(memo_key)
        if hit is not None:
            return hit  # type: ignore[return-value]
    ingress = direction is PolicyDirection.INGRESS
    candidates = [*state.cilium.clusterwide.candidates(identity),
                  *((c, s) for c in state.cilium.namespaced(namespace) for s in c.specs)]
    result = tuple((c, s) for c, s in candidates
                   if s.subject is not None and _has_rules(s, ingress) and selects(s.subject, identity))
    if memo_key is not None:
        state.memo[memo_key] = result
    return result


def pod_selecting(state: ClusterState, pod: Pod, direction: PolicyDirection) -> Selected:
    """The Cilium (policy, spec) pairs selecting `pod` with rules for `direction` (memoised per state)."""
    if not state.cilium.policies or pod.host_network:
        return ()
    own_object = state.pod(pod.namespace, pod.name) is pod
    memo_key = ("cilium-selecting", pod.namespace, pod.name, direction) if own_object else None
    return selecting_specs(state, pod_identity(state, pod), direction, pod.namespace, memo_key)


def pod_isolating(state: ClusterState, pod: Pod, direction: PolicyDirection) -> tuple[PolicyId, ...]:
    """Cilium policies that put `pod` in default deny for `direction` (rules for it, enableDefaultDeny
    not false)."""
    ingress = direction is PolicyDirection.INGRESS
    return _unique(c.pid for c, s in pod_selecting(state, pod, direction)
                   if (s.isolates_ingress if ingress else s.isolates_egress))


def selecting_host_specs(state: ClusterState, node_labels: Identity, direction: PolicyDirection) -> Selected:
    """Host policies (CCNP nodeSelector) selecting a node, with rules for `direction`."""
    ingress = direction is PolicyDirection.INGRESS
    return tuple((c, s) for c in state.cilium.namespaced("") for s in c.specs
                 if s.nodes is not None and _has_rules(s, ingress) and selects(s.nodes, node_labels))


def _has_rules(spec: CSpec, ingress: bool) -> bool:
    return any(r.section.is_ingress == ingress for r in spec.rules)


def decide_side(selected: Selected, direction: PolicyDirection, peer: Peer, port: int, protocol: str,
                state: ClusterState) -> CiliumSide:
    """Deny rules, allow rules and isolation of the selecting specs for this connection."""
    if not selected:
        return NOTHING
    ingress = direction is PolicyDirection.INGRESS
    rules = [(c, r) for c, s in selected for r in s.rules if r.section.is_ingress == ingress]
    allow_req = tuple(req for _, r in rules if not r.section.is_deny for req in r.requires)
    deny_req = tuple(req for _, r in rules if r.section.is_deny for req in r.requires)
    allowed: list[RuleMatch] = []
    denied: list[RuleMatch] = []
    pending: list[RuleMatch] = []
    reason = ""
    pending_deny = False
    for compiled, rule in rules:
        l7 = l4_match(rule, port, protocol, peer.pod)
        if l7 is None:
            continue
        requirements = deny_req if rule.section.is_deny else allow_req
        index, verdict = _peer_match(rule, peer, state, requirements)
        if verdict is False:
            continue
        match = RuleMatch(compiled.pid, rule.index, index, rule.section.value, rule.spec,
                          _peer_text(rule, index), "" if rule.section.is_deny else l7)
        if verdict is None:
            pending.append(match)
            reason = reason or _pending_reason(rule, index)
            pending_deny = pending_deny or rule.section.is_deny
        else:
            (denied if rule.section.is_deny else allowed).append(match)
    isolating = _unique(c.pid for c, s in selected if (s.isolates_ingress if ingress else s.isolates_egress))
    return CiliumSide(_unique(c.pid for c, _ in selected), isolating, tuple(allowed), tuple(denied),
                      tuple(pending), reason, pending_deny)


def _pending_reason(rule: CRule, index: int | None) -> str:
    if rule.peers is None or index is None:
        return "not-modelled"
    return rule.peers[index].unmodelled or "fqdn"


def _unique(ids: Iterable[PolicyId]) -> tuple[PolicyId, ...]:
    return tuple(dict.fromkeys(ids))


def _peer_text(rule: CRule, index: int | None) -> str:
    if index is None or rule.peers is None:
        return "any peer"
    return rule.peers[index].text


def l4_match(rule: CRule, port: int, protocol: str, destination: Pod | None) -> str | None:
    """None when the rule's ports/ICMP types do not admit port/protocol; else its L7 kind ("" for L4)."""
    if rule.ports is None:
        return ""
    if protocol in ("ICMP", "ICMPv6"):
        return "" if (protocol, port) in rule.icmps else None
    for entry in rule.ports:
        if protocol not in entry.protocols:
            continue
        if entry.name:
            if destination is not None and destination.resolve_port(entry.name, protocol) == port:
                return entry.l7
        elif entry.low <= port <= entry.high:
            return entry.l7
    return None


def _peer_match(rule: CRule, peer: Peer, state: ClusterState, requirements: tuple[Selector, ...]
                ) -> tuple[int | None, bool | None]:
    """(index of the matching peer, True) / (index, None) for an FQDN peer with no known answer /
    (None, False) when no peer matches.  A wildcard rule matches with index None.  `requirements`
    (fromRequires of every selecting rule) narrow endpoints peers only."""
    if rule.peers is None:
        return None, True
    pending: int | None = None
    for index, candidate in enumerate(rule.peers):
        if candidate.endpoints and not all(selects(r, peer.identity) for r in requirements):
            continue
        verdict = _one_peer(candidate, peer, state, requirements)
        if verdict:
            return index, True
        if verdict is None and pending is None:
            pending = index
    return (pending, None) if pending is not None else (None, False)


def _one_peer(candidate: CPeer, peer: Peer, state: ClusterState, requirements: tuple[Selector, ...] = ()
              ) -> bool | None:
    if candidate.unmodelled:
        return None
    if candidate.service is not None:
        return service_admits(state, candidate.service, peer.identity, peer.address, requirements)
    if candidate.selector is not None:
        return selects(candidate.selector, peer.identity)
    if candidate.network is not None:
        return peer.address is not None and address_in(peer.address, candidate)
    if candidate.group_ref or candidate.group_selector is not None:
        return _in_groups(candidate, peer, state)
    if candidate.fqdn is not None:
        if peer.address is None or "reserved:world" not in peer.identity.labels:
            return False
        if not peer.names:
            return None
        return any(fqdn_matches(candidate.fqdn.match_name, candidate.fqdn.match_pattern, n) for n in peer.names)
    if candidate.node_selector is not None:
        return peer.node_labels is not None and selects(candidate.node_selector, peer.node_labels)
    return False


def _in_groups(candidate: CPeer, peer: Peer, state: ClusterState) -> bool:
    """In a CIDR of the referenced (or selected) CiliumCIDRGroups and in none of the peer's excepts;
    a group that does not exist matches nothing."""
    address = peer.address
    if address is None or any(in_network(address, ex) for ex in candidate.excepts):
        return False
    groups: tuple[CiliumCIDRGroup, ...]
    if candidate.group_ref:
        group = state.cilium.groups.get(candidate.group_ref)
        groups = () if group is None else (group,)
    else:
        assert candidate.group_selector is not None
        groups = tuple(g for g in state.cilium.groups.values()
                       if selects(candidate.group_selector, Identity.of({f"cidrgroup:{k}": v
                                                                         for k, v in g.labels.items()})))
    return any(in_network(address, cidr_network(c)) for g in groups for c in g.cidrs)


def fqdn_matches(match_name: str, match_pattern: str, name: str) -> bool:
    """Cilium's toFQDNs: matchName exact, matchPattern with `*` standing for DNS name characters
    within one label (`*` alone matches every name); case-insensitive, trailing dot ignored."""
    name = name.lower().rstrip(".")
    if match_name:
        return name == match_name.lower().rstrip(".")
    pattern = match_pattern.lower().rstrip(".")
    if pattern == "*":
        return True
    return _pattern_regex(pattern).fullmatch(name) is not None


@functools.lru_cache(maxsize=4096)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A matchPattern compiled once: `*` stands for DNS name characters within one label."""
    return re.compile("".join("[-a-z0-9_]*" if ch == "*" else re.escape(ch) for ch in pattern))

