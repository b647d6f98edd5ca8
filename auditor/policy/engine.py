"""PolicyEngine: decide A -> B:port/proto under the NetworkPolicies of one ClusterState.

A connection is allowed only when the source's egress side AND the destination's ingress side
allow it.  Per side (see `SideDecision`):
- a non-pod endpoint (node, external IP) is not evaluated: NOT_A_POD, allowed;
- a hostNetwork pod is not subject to NetworkPolicy: HOST_NETWORK, allowed;
- a pod talking to itself is allowed: "a pod cannot block access to itself" (kubernetes.io
  NetworkPolicy docs): SELF;
- traffic from a node to its own pods is allowed ("traffic to and from the node where a Pod is
  running is always allowed"; Cilium: local host traffic is allowed into endpoints): NODE_TRAFFIC,
  unless `enforce_node_traffic` (Cilium host firewall / policy enforcement `always`), in which
  case the node is evaluated like any other peer.  A pod's egress to its own node is policed, as
  Cilium does (the `host` identity; cilium/cilium#13081), so an egress-isolated pod reaches its
  node only through a rule without peers;
- otherwise the policies selecting the pod for that direction decide, additively.

Decisions are cached per (state revision, source, destination, port, protocol).  A revision
identifies exactly one immutable state, so any change (pod labels or IPs, namespace labels,
policies, nodes) yields a new revision and can never be answered from a stale entry.  Pod
subjects are keyed by the identity of their Pod object (pinned by the entry), so a caller-built
Pod that differs from the state's copy is never confused with it.
"""

from __future__ import annotations

import contextlib

from auditor.model.decision import (
    Decision,
    Enforcement,
    NodeSubject,
    PodSubject,
    RuleMatch,
    SideDecision,
    Subject,
)
from auditor.model.k8s import NetworkPolicy, Pod, PolicyDirection
from auditor.policy.cilium_labels import Identity
from auditor.policy.cilium_side import (
    NOTHING,
    CiliumSide,
    decide_side,
    peer_of,
    pod_selecting,
    selecting_host_specs,
)
from auditor.policy.matching import NO_PEER, as_peer, destination_pod, first_peer, rule_ports_match
from auditor.policy.miss import closest_miss
from auditor.policy.state import ClusterState

_NOT_A_POD = SideDecision(allowed=True, isolated=False, enforcement=Enforcement.NOT_A_POD)
_HOST_NETWORK = SideDecision(allowed=True, isolated=False, enforcement=Enforcement.HOST_NETWORK)
_NODE = SideDecision(allowed=True, isolated=False, enforcement=Enforcement.NODE_TRAFFIC)
_SELF = SideDecision(allowed=True, isolated=False, enforcement=Enforcement.SELF)
_OPEN = SideDecision(allowed=True, isolated=False)
_NOT_ENFORCED = SideDecision(allowed=True, isolated=False, enforcement=Enforcement.NOT_ENFORCED)

CacheKey = tuple[object, ...]


def _subject_key(subject: Subject) -> object:
    """A cheap cache key.  Pods are keyed by object identity: the cache entry keeps both subjects'
    pods alive, so an id cannot be reused by another object while its entry exists."""
    kind = type(subject)
    if kind is PodSubject:
        return (id(subject.pod), subject.ip)  # type: ignore[union-attr]
    if kind is NodeSubject:
        return ("node", subject.node_name, subject.ip, subject.identities)  # type: ignore[union-attr]
    if subject.identities or subject.names:  # type: ignore[union-attr]
        return (subject.ip, subject.identities, subject.names)  # type: ignore[union-attr]
    return subject.ip


def _pod_of(subject: Subject) -> Pod | None:
    return subject.pod if isinstance(subject, PodSubject) else None


def _is_own_node(pod: Pod, other: Subject) -> bool:
    if not isinstance(other, NodeSubject):
        return False
    if other.node_name and pod.node_name:
        return other.node_name == pod.node_name
    return bool(other.ip) and other.ip == pod.host_ip


def _is_self(pod: Pod, other: Subject) -> bool:
    return isinstance(other, PodSubject) and other.pod.namespace == pod.namespace and other.pod.name == pod.name


POLICY_ENFORCEMENT_MODES = ("default", "always", "never")
"""Cilium's `policy-enforcement` setting: `always` isolates every endpoint, `never` enforces nothing."""


class PolicyEngine:
    """Decides connections; holds only a decision cache (bounded, FIFO eviction)."""

    def __init__(self, *, enforce_node_traffic: bool = False, cidr_match_nodes: bool = False,
                 policy_enforcement: str = "default", cache_size: int = 65_536) -> None:
        if policy_enforcement not in POLICY_ENFORCEMENT_MODES:
            raise ValueError(f"policy enforcement must be one of {', '.join(POLICY_ENFORCEMENT_MODES)}, "
                             f"not {policy_enforcement!r}")
        self.enforce_node_traffic = enforce_node_traffic
        self.cidr_match_nodes = cidr_match_nodes
        self.policy_enforcement = policy_enforcement
        self._cache_size = cache_size
        self._cache: dict[CacheKey, tuple[Decision, Pod | None, Pod | None]] = {}
        self.hits = 0
        self.misses = 0

    def decide(self, state: ClusterState, source: Subject, destination: Subject, port: int,
               protocol: str = "TCP") -> Decision:
        """The verdict for source -> destination:port/protocol under `state`.

        `protocol` is TCP, UDP, SCTP, or ICMP / ICMPv6 with `port` the ICMP type.
        """
        key = (state.revision, _subject_key(source), _subject_key(destination), port, protocol)
        cached = self._cache.get(key)
        if cached is not None:
            self.hits += 1
            return cached[0]
        self.misses += 1
        decision = self.decide_uncached(state, source, destination, port, protocol)
        if len(self._cache) >= self._cache_size:
            self._evict_one()
        self._cache[key] = (decision, _pod_of(source), _pod_of(destination))
        return decision

    def _evict_one(self) -> None:
        """Drop the oldest entry; tolerant of another thread evicting at the same time."""
        with contextlib.suppress(KeyError, RuntimeError, StopIteration):
            del self._cache[next(iter(self._cache))]

    def decide_uncached(self, state: ClusterState, source: Subject, destination: Subject, port: int,
                        protocol: str = "TCP") -> Decision:
        egress = self.side(state, PolicyDirection.EGRESS, source, destination, port, protocol)
        ingress = self.side(state, PolicyDirection.INGRESS, destination, source, port, protocol)
        return Decision(allowed=egress.allowed and ingress.allowed, egress=egress, ingress=ingress,
                        port=port, protocol=protocol)

    def side(self, state: ClusterState, direction: PolicyDirection, own: Subject, other: Subject,
             port: int, protocol: str) -> SideDecision:
        """One direction: `own` is the endpoint whose policies apply (the source for egress)."""
        if self.policy_enforcement == "never":
            return _NOT_ENFORCED
        if isinstance(own, NodeSubject):
            return self._host_side(state, direction, own, other, port, protocol)
        if not isinstance(own, PodSubject):
            return _NOT_A_POD
        pod = own.pod
        if pod.host_network:
            return _HOST_NETWORK
        if _is_self(pod, other):
            return _SELF
        peer = as_peer(other)
        if direction is PolicyDirection.INGRESS and not self.enforce_node_traffic and _is_own_node(pod, peer):
            return _NODE
        selecting = state.policies_selecting(pod, direction)
        dest = pod if direction is PolicyDirection.INGRESS else destination_pod(other)
        cilium = self._cilium_side(state, direction, pod, peer, port, protocol, dest)
        matches = self._knp_matches(state, direction, selecting, peer, port, protocol, dest)
        if cilium is NOTHING and self.policy_enforcement == "default":
            return self._knp_only(state, direction, selecting, matches, peer, port, protocol, dest)
        return self._combined(state, direction, selecting, matches, cilium, peer, port, protocol, dest)

    def _knp_matches(self, state: ClusterState, direction: PolicyDirection,
                     selecting: tuple[NetworkPolicy, ...], peer: Subject, port: int, protocol: str,
                     dest: Pod | None) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        for policy in selecting:
            rules = policy.ingress if direction is PolicyDirection.INGRESS else policy.egress
            for index, rule in enumerate(rules or ()):
                if not rule_ports_match(rule, port, protocol, dest):
                    continue
                peer_index = first_peer(state, rule, policy.namespace, peer, self.cidr_match_nodes)
                if peer_index != NO_PEER:
                    matches.append(RuleMatch(state.policy_id(policy), index, peer_index))
        return matches

    def _knp_only(self, state: ClusterState, direction: PolicyDirection, selecting: tuple[NetworkPolicy, ...],
                  matches: list[RuleMatch], peer: Subject, port: int, protocol: str, dest: Pod | None
                  ) -> SideDecision:
        """Exactly the Kubernetes NetworkPolicy answer (no Cilium policy selects the pod)."""
        if not selecting:
            return _OPEN
        ids = tuple(state.policy_id(p) for p in selecting)
        if matches:
            return SideDecision(allowed=True, isolated=True, selecting=ids, allowed_by=tuple(matches))
        miss = closest_miss(state, direction, selecting, peer, port, protocol, dest, self.cidr_match_nodes)
        return SideDecision(allowed=False, isolated=True, selecting=ids, isolated_by=ids, closest_miss=miss)

    def _cilium_side(self, state: ClusterState, direction: PolicyDirection, pod: Pod, peer: Subject, port: int,
                     protocol: str, dest: Pod | None) -> CiliumSide:
        selected = pod_selecting(state, pod, direction)
        if not selected:
            return NOTHING
        seen = peer_of(state, peer, pod.node_name, pod.host_ip, self.cidr_match_nodes, dest)
        return decide_side(selected, direction, seen, port, protocol, state)

    def _combined(self, state: ClusterState, direction: PolicyDirection, selecting: tuple[NetworkPolicy, ...],
                  matches: list[RuleMatch], cilium: CiliumSide, peer: Subject, port: int, protocol: str,
                  dest: Pod | None) -> SideDecision:
        """Kubernetes and Cilium policies together: any deny wins, allows are a union, any kind isolates."""
        ids = (*(state.policy_id(p) for p in selecting), *cilium.selecting)
        allows = (*matches, *cilium.allowed_by)
        always = self.policy_enforcement == "always"
        isolated = bool(selecting) or bool(cilium.isolating) or always
        if cilium.denied_by:
            return SideDecision(allowed=False, isolated=isolated, selecting=ids, denied_by=cilium.denied_by)
        if cilium.pending_deny:
            return SideDecision(allowed=False, isolated=isolated, selecting=ids,
                                undecided=cilium.pending_reason)
        if not isolated or allows:
            return SideDecision(allowed=True, isolated=isolated, selecting=ids, allowed_by=allows)
        isolated_by = (*(state.policy_id(p) for p in selecting), *cilium.isolating)
        undecided = cilium.pending_reason if cilium.pending else ""
        miss = (closest_miss(state, direction, selecting, peer, port, protocol, dest, self.cidr_match_nodes)
                if selecting else None)
        return SideDecision(allowed=False, isolated=True, selecting=ids, isolated_by=isolated_by,
                            closest_miss=miss, undecided=undecided)

    def _host_side(self, state: ClusterState, direction: PolicyDirection, own: NodeSubject, other: Subject,
                   port: int, protocol: str) -> SideDecision:
        """A node's own side: Cilium host policies (CCNP nodeSelector) when the host firewall is on."""
        if not self.enforce_node_traffic or not state.cilium.policies:
            return _NOT_A_POD
        node = state.node(own.node_name) if own.node_name else state.node_by_ip(own.ip)
        if node is None:
            return _NOT_A_POD
        labels = Identity.of({f"k8s:{k}": v for k, v in node.labels.items()})
        selected = selecting_host_specs(state, labels, direction)
        if not selected:
            return _NOT_A_POD
        seen = peer_of(state, as_peer(other), node.name, own.ip, self.cidr_match_nodes, destination_pod(other))
        cilium = decide_side(selected, direction, seen, port, protocol, state)
        return self._combined(state, direction, (), [], cilium, other, port, protocol, None)
