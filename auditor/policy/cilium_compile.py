"""Compiling a valid CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy into what the engine matches.

Compilation applies Cilium's parser rules once per policy version (pkg/k8s/apis/cilium.io/utils
`ParseToCiliumRule`, pkg/policy/api):
- the subject `endpointSelector` of a CNP is scoped to its namespace; a CCNP's applies in every
  namespace; `nodeSelector` (CCNP) selects nodes (host policies);
- an endpoint peer of a CNP is scoped to the policy's namespace unless it names
  `io.kubernetes.pod.namespace`, an `io.cilium.k8s.namespace.labels.*` key or a `reserved:` label;
  a CCNP's peer without a namespace key gets `io.kubernetes.pod.namespace` Exists (pods only,
  never reserved identities);
- entities are selectors over reserved labels (`cluster` = every reserved in-cluster identity
  plus the pods of this cluster), `all` is the wildcard;
- a rule with ports or ICMP types and no peer field admits every peer on them (wildcard);
  a rule with neither admits nothing; an explicitly empty peer list selects nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from auditor.model.cilium import (
    CiliumNetworkPolicy,
    CiliumPolicySpec,
    CiliumRule,
    FQDNPeer,
    PortRule,
    RuleSection,
    ServicePeer,
)
from auditor.model.decision import PolicyId, policy_id_of
from auditor.policy.cilium_labels import (
    ANY,
    CLUSTER,
    K8S,
    NAMESPACE_LABELS,
    POD_NAMESPACE,
    RESERVED,
    Requirement,
    Selector,
    compile_selector,
    describe,
    has_key,
    has_reserved,
)
from auditor.policy.cilium_syntax import icmp_type_number, parse_port, parse_prefix
from auditor.policy.selectors import Address, Network

ICMP_PROTOCOLS = {"IPv4": "ICMP", "IPv6": "ICMPv6"}
ANY_PROTOCOLS = frozenset(("TCP", "UDP", "SCTP"))


def _reserved(name: str) -> Selector:
    return (Requirement(RESERVED, name, "Exists"),)


def entity_selectors(entity: str, cluster: str) -> tuple[Selector, ...]:
    """The identities an entity selects (pkg/policy/api/entity.go, `InitEntities` for `cluster`)."""
    if entity == "all":
        return ((),)
    if entity == "world":
        return (_reserved("world"), _reserved("world-ipv4"), _reserved("world-ipv6"))
    if entity == "cluster":
        names = ("host", "remote-node", "init", "ingress", "health", "unmanaged", "kube-apiserver")
        pods = (Requirement(K8S, CLUSTER, "In", frozenset((cluster,))),)
        return (*(_reserved(n) for n in names), pods)
    if entity == "none":
        return ()
    return (_reserved(entity),)


@dataclass(frozen=True, slots=True)
class CPeer:
    """One peer of a rule, in the form it is matched: a selector, a CIDR, a service or an FQDN."""

    text: str
    """The peer in Cilium's words: `endpoints app=web`, `entity world`, `CIDR 10.0.0.0/8`."""
    selector: Selector | None = None
    network: Network | None = None
    excepts: tuple[Network, ...] = ()
    group_ref: str = ""
    fqdn: FQDNPeer | None = None
    service: ServicePeer | None = None
    node_selector: Selector | None = None
    group_selector: Selector | None = None
    """cidrGroupSelector: every CiliumCIDRGroup whose labels it selects."""
    unmodelled: str = ""
    """Why the engine cannot match this peer (`not-modelled` for toGroups): the rule is pending."""
    endpoints: bool = False
    """An endpoints peer (fromEndpoints/toEndpoints): the only kind `fromRequires` narrows."""


@dataclass(frozen=True, slots=True)
class CPort:
    """A compiled port entry: a range (0-65535 for every port) or a named port, its protocols, its L7."""

    low: int
    high: int
    protocols: frozenset[str]
    name: str = ""
    l7: str = ""


@dataclass(frozen=True, slots=True)
class CRule:
    """One compiled rule.  `peers` None is the wildcard (ports-only rule); `ports` None is every L4."""

    section: RuleSection
    spec: str
    index: int
    peers: tuple[CPeer, ...] | None
    ports: tuple[CPort, ...] | None
    icmps: frozenset[tuple[str, int]]
    requires: tuple[Selector, ...]


@dataclass(frozen=True, slots=True)
class CSpec:
    """One compiled api.Rule: whom it selects, which directions it isolates, its rules per section."""

    subject: Selector | None
    nodes: Selector | None
    isolates_ingress: bool
    isolates_egress: bool
    rules: tuple[CRule, ...]


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    policy: CiliumNetworkPolicy
    pid: PolicyId
    specs: tuple[CSpec, ...]


def compile_policy(policy: CiliumNetworkPolicy, cluster: str) -> CompiledPolicy:
    """The policy's specs compiled for matching (the policy must be valid)."""
    pid = policy_id_of(policy)
    specs = tuple(_spec(policy, index, spec, cluster) for index, spec in enumerate(policy.specs))
    return CompiledPolicy(policy, pid, specs)


def _spec(policy: CiliumNetworkPolicy, index: int, spec: CiliumPolicySpec, cluster: str) -> CSpec:
    path = policy.spec_path(index)
    subject = nodes = None
    if spec.node_selector is not None:
        nodes = compile_selector(spec.node_selector)
    elif spec.endpoint_selector is not None:
        subject = compile_selector(spec.endpoint_selector)
        if policy.namespace:
            subject = (*subject, Requirement(K8S, POD_NAMESPACE, "In", frozenset((policy.namespace,))))
    rules = tuple(_rule(policy.namespace, section, path, i, rule, cluster)
                  for section in RuleSection for i, rule in enumerate(spec.rules(section)))
    return CSpec(subject, nodes,
                 _isolates(spec.ingress, spec.ingress_deny, spec.enable_default_deny_ingress),
                 _isolates(spec.egress, spec.egress_deny, spec.enable_default_deny_egress), rules)


def _isolates(allow: tuple[CiliumRule, ...] | None, deny: tuple[CiliumRule, ...] | None,
              default_deny: bool | None) -> bool:
    """A spec with rules for a direction (allow or deny) puts the subject in default deny, unless
    `enableDefaultDeny` is false for it (pkg/policy/repository.go)."""
    return bool(allow or deny) and default_deny is not False


def _rule(namespace: str, section: RuleSection, spec: str, index: int, rule: CiliumRule, cluster: str) -> CRule:
    peers: tuple[CPeer, ...] | None = _peers(namespace, rule, cluster)
    has_l4 = bool(rule.to_ports) or bool(rule.icmps)
    if not rule.has_peer_field:
        peers = None if has_l4 else ()
    ports = tuple(p for pr in rule.to_ports for p in _ports(pr)) if rule.to_ports else None
    icmps = frozenset(_icmp(t.family, t.type) for t in rule.icmps)
    if rule.icmps and ports is None:
        ports = ()
    requires = tuple(_scoped(namespace, compile_selector(s)) for s in rule.requires)
    return CRule(section, spec, index, peers, ports, frozenset(i for i in icmps if i[1] >= 0), requires)


def _icmp(family: str, value: int | str) -> tuple[str, int]:
    number = icmp_type_number(family, value)
    return (ICMP_PROTOCOLS.get(family, "ICMP"), -1 if number is None else number)


def _ports(rule: PortRule) -> list[CPort]:
    l7 = rule.l7[0] if rule.l7 else ""
    if not rule.ports:
        return [CPort(0, 65535, ANY_PROTOCOLS, l7=l7)]
    found: list[CPort] = []
    for port in rule.ports:
        protocols = ANY_PROTOCOLS if port.protocol == "ANY" else frozenset((port.protocol,))
        parsed = parse_port(port.port) if port.port else 0
        if isinstance(parsed, str):
            found.append(CPort(0, -1, protocols, name=parsed, l7=l7))
        elif not parsed:
            found.append(CPort(0, 65535, protocols, l7=l7))
        else:
            found.append(CPort(parsed, max(parsed, port.end_port or parsed), protocols, l7=l7))
    return found


def _scoped(namespace: str, selector: Selector) -> Selector:
    """An endpoint peer selector with Cilium's namespace scoping (utils.go `getEndpointSelector`)."""
    if has_reserved(selector) or has_key(selector, POD_NAMESPACE):
        return selector
    if any(r.key.startswith(NAMESPACE_LABELS) and r.source in (K8S, ANY) for r in selector):
        return selector  # namespace-label selectors reach every namespace, even in a CNP
    if namespace:
        return (*selector, Requirement(K8S, POD_NAMESPACE, "In", frozenset((namespace,))))
    return (*selector, Requirement(K8S, POD_NAMESPACE, "Exists"))


def _peers(namespace: str, rule: CiliumRule, cluster: str) -> tuple[CPeer, ...]:
    found: list[CPeer] = []
    for sel in rule.endpoints or ():
        compiled = _scoped(namespace, compile_selector(sel))
        found.append(CPeer(f"endpoints {describe(compile_selector(sel))}", selector=compiled, endpoints=True))
    for entity in rule.entities or ():
        found.extend(CPeer(f"entity {entity}", selector=s) for s in entity_selectors(entity, cluster))
    for cidr in rule.cidrs or ():
        found.append(CPeer(f"CIDR {cidr}", network=cidr_network(cidr)))
    for cidr_set in rule.cidr_sets or ():
        excepts = tuple(n for n in (cidr_network(e) for e in cidr_set.except_) if n is not None)
        suffix = f" except {', '.join(cidr_set.except_)}" if cidr_set.except_ else ""
        if cidr_set.group_ref:
            found.append(CPeer(f"CiliumCIDRGroup {cidr_set.group_ref}{suffix}", excepts=excepts,
                               group_ref=cidr_set.group_ref))
        elif cidr_set.group_selector is not None:
            group_selector = compile_selector(cidr_set.group_selector)
            found.append(CPeer(f"CiliumCIDRGroups {describe(group_selector)}{suffix}", excepts=excepts,
                               group_selector=group_selector))
        else:
            found.append(CPeer(f"CIDR {cidr_set.cidr}{suffix}", network=cidr_network(cidr_set.cidr),
                               excepts=excepts))
    for fqdn in rule.fqdns or ():
        found.append(CPeer(f"FQDN {fqdn.match_name or fqdn.match_pattern}", fqdn=fqdn))
    for service in rule.services or ():
        found.append(CPeer(service_text(service), service=service))
    if rule.groups:
        found.append(CPeer(f"toGroups ({rule.groups} cloud groups, not modelled)", unmodelled="not-modelled"))
    for node_sel in rule.nodes or ():
        compiled = compile_selector(node_sel)
        found.append(CPeer(f"nodes {describe(compiled)}", node_selector=compiled))
    return tuple(found)


def service_text(entry: ServicePeer) -> str:
    """A `toServices` entry in Cilium's words: `service ns/name`, or `services app=x in ns`; `*` for an
    empty namespace, which matches Services of every namespace (pkg/policy/k8s/service.go)."""
    namespace = entry.namespace or "*"
    if entry.selector is not None:
        return f"services {describe(compile_selector(entry.selector))} in {namespace}"
    return f"service {namespace}/{entry.name}"


def cidr_network(text: str) -> Network | None:
    """A CIDR of a Cilium rule; `fromCIDR`/`toCIDR` also take a bare address (a /32 or /128)."""
    if "/" not in text:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return None
        return ipaddress.ip_network(f"{address}/{address.max_prefixlen}")
    return parse_prefix(text)


def is_world_network(network: Network | None) -> bool:
    return network is not None and network.prefixlen == 0


def in_network(ip: Address, network: Network | None) -> bool:
    """True when `ip` is in `network` (families must agree; IPv4-mapped IPv6 counts as IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return network is not None and network.version == ip.version and ip in network


def address_in(ip: Address, peer: CPeer) -> bool:
    """True when `ip` is in the peer's CIDR and in none of its `except` ranges."""
    return in_network(ip, peer.network) and not any(in_network(ip, ex) for ex in peer.excepts)
