"""Least-privilege policies from observed connections (`auditor recommend`): pure, no I/O.

Input: `Edge`s, each an observed connection seen from the pod whose policy must admit it (the
source's egress, the destination's ingress).  Output, per workload, one NetworkPolicy or
CiliumNetworkPolicy admitting exactly those peers on those ports, plus:
- DNS egress to the cluster's DNS pods (`k8s-app=kube-dns`) on 53/UDP and 53/TCP; with Cilium a
  DNS rule (`rules.dns matchPattern "*"`), which sends lookups through Cilium's DNS proxy;
- the kubelet's probe ports from the node: Cilium's entity `host`; a NetworkPolicy cannot select
  the node (Cilium matches ipBlocks against nodes only under policy-cidr-match-mode=nodes), so
  those ports get a rule without peers (auditor/policy/matching.py);
- a default deny per namespace (a NetworkPolicy with `podSelector: {}`, or a CiliumNetworkPolicy
  with `endpointSelector: {}` and `ingress: [{}]`, `egress: [{}]`), unless one is there.
Peers, namespaces, CIDRs and named ports are written as generate_peers.py says.  NetworkPolicy
has no ICMP: such edges are left out and named in the notes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from auditor.model.cilium import CiliumKind, CiliumNetworkPolicy, CiliumPolicySpec, CiliumRule
from auditor.model.decision import ExternalSubject, NodeSubject, PodSubject, Subject
from auditor.model.k8s import NetworkPolicy, Pod, PolicyDirection
from auditor.model.labels import LabelSelector
from auditor.policy.generate_build import Dns, PeerSpec, PortSpec, cilium_rules, knp_rules
from auditor.policy.generate_peers import (
    destination_port,
    external_entity,
    node_entity,
    workload_labels,
)
from auditor.policy.state import ClusterState

KIND_NETWORKPOLICY, KIND_CILIUM = "networkpolicy", "cilium"
KINDS = (KIND_NETWORKPOLICY, KIND_CILIUM)
DNS_LABEL = ("k8s-app", "kube-dns")
DEFAULT_DENY_NAME = "auditor-default-deny"
NAME_PREFIX = "auditor-"
_INGRESS, _EGRESS = PolicyDirection.INGRESS, PolicyDirection.EGRESS


@dataclass(frozen=True, slots=True)
class Edge:
    """One observed connection as the policy of `pod` sees it: `peer` is the other side."""

    pod: Pod
    direction: PolicyDirection
    peer: Subject
    port: int
    protocol: str
    flows: int = 1
    first_ns: int = 0
    last_ns: int = 0


@dataclass(frozen=True, slots=True)
class Evidence:
    """What observed traffic an object admits: flows, distinct connections, first and last seen."""

    flows: int = 0
    connections: int = 0
    first_ns: int = 0
    last_ns: int = 0

    @staticmethod
    def of(edges: Iterable[Edge]) -> Evidence:
        found = list(edges)
        if not found:
            return Evidence()
        return Evidence(sum(e.flows for e in found), len(found), min(e.first_ns for e in found),
                        max(e.last_ns for e in found))


@dataclass(frozen=True, slots=True)
class Generated:
    obj: NetworkPolicy | CiliumNetworkPolicy
    evidence: Evidence
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Workload:
    """A workload to write a policy for, and the directions to cover."""

    namespace: str
    name: str
    ingress: bool = True
    egress: bool = True


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    kind: str = KIND_NETWORKPOLICY
    min_prefix: int = 24
    default_deny: Mapping[str, tuple[bool, bool]] = field(default_factory=dict)
    """namespace -> (ingress, egress): write a default deny for these directions."""


def _dns_server(state: ClusterState) -> tuple[str, dict[str, str]]:
    key, value = DNS_LABEL
    namespaces = sorted({p.namespace for p in state.pods if p.labels.get(key) == value})
    return (namespaces[0] if namespaces else "kube-system"), {key: value}


def _is_dns(edge: Edge, dns_namespace: str) -> bool:
    peer = edge.peer
    return (edge.direction is _EGRESS and edge.port == 53 and edge.protocol in ("UDP", "TCP")
            and isinstance(peer, PodSubject) and peer.pod.namespace == dns_namespace
            and peer.pod.labels.get(DNS_LABEL[0]) == DNS_LABEL[1])


def _peer_spec(state: ClusterState, edge: Edge, cilium: bool) -> PeerSpec | None:
    peer = edge.peer
    if isinstance(peer, PodSubject) and peer.pod.host_network:
        peer = NodeSubject(node_name=peer.pod.node_name, ip=peer.ip or peer.pod.host_ip)
    if isinstance(peer, PodSubject):
        labels = workload_labels(state, peer.pod)
        return PeerSpec("pods", peer.pod.namespace, tuple(sorted(labels.items())))
    if isinstance(peer, NodeSubject):
        return PeerSpec("entity", node_entity(edge.pod, peer)) if cilium else PeerSpec("any")
    assert isinstance(peer, ExternalSubject)
    entity = external_entity(peer)
    if entity == "world" or (not cilium and peer.ip):
        return PeerSpec("address", peer.ip) if peer.ip else None
    if not cilium:
        return PeerSpec("any")  # the ingress identity has no address an ipBlock could name
    return PeerSpec("entity", entity)


def _port_spec(edge: Edge) -> PortSpec:
    if edge.protocol in ("ICMP", "ICMPv6"):
        return PortSpec(edge.port, edge.protocol)
    target = edge.pod if edge.direction is _INGRESS else None
    destination: Subject = PodSubject(target) if target is not None else edge.peer
    return PortSpec(destination_port(destination, edge.port, edge.protocol), edge.protocol)


def _probe_ports(pods: Sequence[Pod]) -> list[PortSpec]:
    ports = []
    for pod in pods:
        for probe in pod.probes:
            number = pod.resolve_port(probe.port)
            port = probe.port if number is None else destination_port(PodSubject(pod), number, "TCP")
            spec = PortSpec(port, "TCP")
            if spec not in ports:
                ports.append(spec)
    return ports


Peers = dict[PeerSpec, list[PortSpec]]


def _direction_peers(state: ClusterState, pods: Sequence[Pod], direction: PolicyDirection,
                     edges: Sequence[Edge], options: GenerateOptions) -> tuple[Peers, Dns, list[str]]:
    """The peers and their ports for one direction, the DNS server (egress), and what was left out."""
    cilium = options.kind == KIND_CILIUM
    dns_namespace, dns_labels = _dns_server(state)
    peers: Peers = defaultdict(list)
    notes: list[str] = []
    for edge in edges:
        if edge.direction is _EGRESS and _is_dns(edge, dns_namespace):
            continue
        if not cilium and edge.protocol in ("ICMP", "ICMPv6"):
            notes.append(f"{edge.protocol} type {edge.port} {direction.value.lower()} is observed but "
                         "NetworkPolicy cannot express ICMP (use --kind cilium)")
            continue
        spec = _peer_spec(state, edge, cilium)
        if spec is None:
            notes.append(f"a peer without an address on {edge.port}/{edge.protocol} cannot be named")
            continue
        port = _port_spec(edge)
        if port not in peers[spec]:
            peers[spec].append(port)
    if direction is _INGRESS:
        probes = _probe_ports(pods)
        if probes:
            node = PeerSpec("entity", "host") if cilium else PeerSpec("any")
            peers[node].extend(p for p in probes if p not in peers[node])
            if not cilium:
                ports = ", ".join(str(p.port) for p in probes)
                notes.append(f"probe ports {ports} admit every peer: a NetworkPolicy cannot select the node "
                             "(--kind cilium writes fromEntities: [host])")
    dns = (dns_namespace, tuple(sorted(dns_labels.items()))) if direction is _EGRESS else None
    return peers, dns, notes


def _name(workload: str) -> str:
    return (NAME_PREFIX + workload)[:63].rstrip("-.")


def _workload_policy(state: ClusterState, workload: Workload, pods: Sequence[Pod], edges: Sequence[Edge],
                     options: GenerateOptions) -> Generated:
    directions = [d for d, wanted in ((_INGRESS, workload.ingress), (_EGRESS, workload.egress)) if wanted]
    parts = {d: _direction_peers(state, pods, d, [e for e in edges if e.direction is d], options)
             for d in directions}
    notes = [note for _, _, why in parts.values() for note in why]
    name, selector = _name(workload.name), LabelSelector(match_labels=workload_labels(state, pods[0]))
    namespace, prefix = workload.namespace, options.min_prefix
    obj: NetworkPolicy | CiliumNetworkPolicy
    if options.kind == KIND_CILIUM:
        cilium = {d: tuple(cilium_rules(peers, namespace, prefix, dns)) for d, (peers, dns, _) in parts.items()}
        spec = CiliumPolicySpec(endpoint_selector=selector, ingress=cilium.get(_INGRESS) or None,
                                egress=cilium.get(_EGRESS) or None)
        obj = CiliumNetworkPolicy(CiliumKind.CNP, name, namespace, specs=(spec,))
    else:
        knp = {d: tuple(knp_rules(peers, namespace, prefix, dns)) for d, (peers, dns, _) in parts.items()}
        obj = NetworkPolicy(namespace, name, selector, policy_types=tuple(directions),
                            ingress=knp.get(_INGRESS), egress=knp.get(_EGRESS))
    return Generated(obj, Evidence.of(edges), tuple(dict.fromkeys(notes)))


def _default_deny(namespace: str, ingress: bool, egress: bool, kind: str) -> Generated:
    if kind == KIND_CILIUM:
        spec = CiliumPolicySpec(endpoint_selector=LabelSelector(),
                                ingress=(CiliumRule(),) if ingress else None,
                                egress=(CiliumRule(),) if egress else None)
        return Generated(CiliumNetworkPolicy(CiliumKind.CNP, DEFAULT_DENY_NAME, namespace, specs=(spec,)),
                         Evidence())
    types = tuple(d for d, wanted in ((_INGRESS, ingress), (_EGRESS, egress)) if wanted)
    policy = NetworkPolicy(namespace, DEFAULT_DENY_NAME, LabelSelector(), policy_types=types)
    return Generated(policy, Evidence())


def generate(state: ClusterState, workloads: Sequence[Workload], edges: Iterable[Edge],
             options: GenerateOptions) -> list[Generated]:
    """Default denies first (by namespace), then one policy per workload (by namespace and name)."""
    by_workload: dict[tuple[str, str], list[Edge]] = defaultdict(list)
    for edge in edges:
        by_workload[(edge.pod.namespace, edge.pod.workload_name)].append(edge)
    found = [_default_deny(ns, ingress, egress, options.kind)
             for ns, (ingress, egress) in sorted(options.default_deny.items()) if ingress or egress]
    for workload in sorted(workloads, key=lambda w: (w.namespace, w.name)):
        pods = [p for p in state.pods_in(workload.namespace)
                if p.workload_name == workload.name and not p.host_network]
        if pods and (workload.ingress or workload.egress):
            observed = by_workload[(workload.namespace, workload.name)]
            found.append(_workload_policy(state, workload, pods, observed, options))
    return found
