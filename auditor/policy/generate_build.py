"""Rules of a generated policy from kind-neutral peers and ports (see generate.py).

Peers that share the same ports share one rule (peers of a rule are ORed in both kinds; Cilium takes
one kind of peer per rule: endpoints, entities or CIDRs); external
addresses are aggregated into CIDRs per port first.  A NetworkPolicy rule with an `any` peer has no
`from`/`to` (it admits every peer, on its ports only).  Cilium keeps ICMP in rules of their own
(Cilium rejects `icmps` next to `toPorts` in one rule).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from auditor.model.cilium import CIDRPeer, CiliumPort, CiliumRule, ICMPType, PortRule
from auditor.model.k8s import IPBlock, Peer, PolicyPort, Rule
from auditor.model.labels import LabelSelector
from auditor.policy.generate_peers import NAMESPACE_LABEL, aggregate_cidrs

CILIUM_NAMESPACE = "k8s:io.kubernetes.pod.namespace"
_ICMP_FAMILIES = {"ICMP": "IPv4", "ICMPv6": "IPv6"}
DNS_RULES_JSON = '{"dns":[{"matchPattern":"*"}]}'
"""Every lookup through Cilium's DNS proxy: the port rule's `rules`, canonical JSON as the model keeps it."""


@dataclass(frozen=True, slots=True, order=True)
class PeerSpec:
    """A peer in neither kind's words: `pods` (namespace, labels), `entity` (name), `address` (an IP),
    `cidr` (a network) or `any`."""

    kind: str
    name: str = ""
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PortSpec:
    """A port number or declared name, or for ICMP the message type; and the protocol."""

    port: int | str
    protocol: str

    def sort_key(self) -> tuple[str, str]:
        return (self.protocol, f"{self.port:>5}" if isinstance(self.port, int) else self.port)


Dns = tuple[str, tuple[tuple[str, str], ...]] | None
"""(namespace, labels) of the DNS server pods, for an egress DNS rule; None for ingress."""


def _grouped(peers: Mapping[PeerSpec, Sequence[PortSpec]], min_prefix: int) -> list[tuple[tuple[PortSpec, ...],
                                                                                       list[PeerSpec]]]:
    """Addresses aggregated per port, then peers grouped by their (sorted) ports."""
    by_peer: dict[PeerSpec, set[PortSpec]] = defaultdict(set)
    addresses: dict[PortSpec, list[str]] = defaultdict(list)
    for peer, ports in peers.items():
        if peer.kind == "address":
            for port in ports:
                addresses[port].append(peer.name)
        else:
            by_peer[peer].update(ports)
    for port, ips in addresses.items():
        for cidr in aggregate_cidrs(ips, min_prefix):
            by_peer[PeerSpec("cidr", cidr)].add(port)
    groups: dict[tuple[PortSpec, ...], list[PeerSpec]] = defaultdict(list)
    for peer, kept in sorted(by_peer.items()):
        groups[tuple(sorted(kept, key=PortSpec.sort_key))].append(peer)
    return sorted(groups.items(), key=lambda item: [p.sort_key() for p in item[0]])


def _knp_peer(peer: PeerSpec, own_namespace: str) -> Peer:
    if peer.kind == "cidr":
        return Peer(ip_block=IPBlock(peer.name))
    namespace = LabelSelector(match_labels={NAMESPACE_LABEL: peer.name}) if peer.name != own_namespace else None
    return Peer(pod_selector=LabelSelector(match_labels=dict(peer.labels)), namespace_selector=namespace)


def knp_rules(peers: Mapping[PeerSpec, Sequence[PortSpec]], own_namespace: str, min_prefix: int,
              dns: Dns) -> list[Rule]:
    rules = []
    for ports, members in _grouped(peers, min_prefix):
        policy_ports = tuple(PolicyPort(protocol=p.protocol, port=p.port) for p in ports)
        if any(m.kind == "any" for m in members):
            rules.append(Rule(peers=(), ports=policy_ports))
        else:
            rules.append(Rule(peers=tuple(_knp_peer(m, own_namespace) for m in members), ports=policy_ports))
    if dns is not None:
        namespace, labels = dns
        server = Peer(pod_selector=LabelSelector(match_labels=dict(labels)),
                      namespace_selector=LabelSelector(match_labels={NAMESPACE_LABEL: namespace}))
        rules.append(Rule(peers=(server,), ports=(PolicyPort("UDP", 53), PolicyPort("TCP", 53))))
    return rules


def _endpoints(members: Sequence[PeerSpec], own_namespace: str) -> tuple[LabelSelector, ...] | None:
    selectors = []
    for m in members:
        if m.kind == "pods":
            labels = dict(m.labels)
            if m.name != own_namespace:
                labels[CILIUM_NAMESPACE] = m.name
            selectors.append(LabelSelector(match_labels=labels))
    return tuple(selectors) or None


def _cilium_rule(members: Sequence[PeerSpec], ports: Sequence[PortSpec], own_namespace: str) -> CiliumRule:
    entities = tuple(m.name for m in members if m.kind == "entity") or None
    cidrs = tuple(CIDRPeer(cidr=m.name) for m in members if m.kind == "cidr") or None
    icmps = tuple(ICMPType(type=int(p.port), family=_ICMP_FAMILIES[p.protocol]) for p in ports
                  if p.protocol in _ICMP_FAMILIES)
    l4 = tuple(CiliumPort(port=str(p.port), protocol=p.protocol) for p in ports
               if p.protocol not in _ICMP_FAMILIES)
    return CiliumRule(endpoints=_endpoints(members, own_namespace), entities=entities, cidr_sets=cidrs,
                      to_ports=(PortRule(ports=l4),) if l4 else (), icmps=icmps)


def cilium_rules(peers: Mapping[PeerSpec, Sequence[PortSpec]], own_namespace: str, min_prefix: int,
                 dns: Dns) -> list[CiliumRule]:
    rules = []
    for ports, members in _grouped(peers, min_prefix):
        l4 = [p for p in ports if p.protocol not in _ICMP_FAMILIES]
        icmp = [p for p in ports if p.protocol in _ICMP_FAMILIES]
        for kind in ("pods", "entity", "cidr"):  # Cilium takes one peer kind per rule
            same = [m for m in members if m.kind == kind]
            if same:
                rules += [_cilium_rule(same, part, own_namespace) for part in (l4, icmp) if part]
    if dns is not None:
        namespace, labels = dns
        server = {CILIUM_NAMESPACE: namespace, **{f"k8s:{k}": v for k, v in labels}}
        selector = LabelSelector(match_labels=server)
        dns_ports = (CiliumPort("53", protocol="UDP"), CiliumPort("53", protocol="TCP"))
        port_rule = PortRule(ports=dns_ports, l7=("dns",), rules_json=DNS_RULES_JSON)
        rules.append(CiliumRule(endpoints=(selector,), to_ports=(port_rule,)))
    return rules
