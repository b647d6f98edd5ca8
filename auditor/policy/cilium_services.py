"""Cilium `toServices` peers (egress only): which Services an entry names, and what they admit.

Cilium's agent translates every `toServices` entry when Services or their backends change
(pkg/policy/k8s/service.go `processRule`, `serviceRefMatches`, `serviceSelectorMatches`):
- `k8sServiceSelector` (checked first: when set, a `k8sService` beside it is ignored) selects
  Services by their labels; `k8sService` names one by `serviceName`.  A `namespace` of ""
  matches Services in every namespace (the policy's namespace is not substituted); a Service
  that does not exist matches nothing.
- A Service with a selector becomes a generated `toEndpoints` peer: the Service's selector plus
  `k8s:io.kubernetes.pod.namespace=<Service namespace>`, so it admits the pods the Service
  selects (Cilium 1.17+; older agents ignore such Services).  Being an endpoints peer, it is
  narrowed by `toRequires` like any other.
- A selector-less Service (`spec.selector` absent or empty) becomes generated `toCIDRSet`
  entries, one /32 or /128 per backend address of its EndpointSlices: they behave as CIDR peers,
  so they never match pods, nor nodes unless `policy-cidr-match-mode=nodes` (Documentation/
  security/policy/layer3.rst "Services based").
"""

from __future__ import annotations

import ipaddress

from auditor.model.cilium import ServicePeer
from auditor.model.k8s import Service
from auditor.policy.cilium_labels import (
    ANY,
    K8S,
    POD_NAMESPACE,
    Identity,
    Requirement,
    Selector,
    compile_selector,
    selects,
)
from auditor.policy.selectors import Address, parse_address
from auditor.policy.state import ClusterState


def _service_identity(service: Service) -> Identity:
    """A Service's labels as a k8s-source label set, so `any:` and `k8s:` selector keys both match."""
    return Identity.of({f"{K8S}:{k}": v for k, v in service.labels.items()})


def named_services(state: ClusterState, entry: ServicePeer) -> tuple[Service, ...]:
    """The Services a `toServices` entry names, memoised per state."""
    key = ("to-services", entry)
    hit = state.memo.get(key)
    if isinstance(hit, tuple):
        return hit
    if entry.selector is not None:
        selector = compile_selector(entry.selector)
        found = tuple(s for s in _in_namespace(state, entry.namespace)
                      if selects(selector, _service_identity(s)))
    elif entry.namespace:
        service = state.service(entry.namespace, entry.name)
        found = () if service is None else (service,)
    else:
        found = tuple(s for s in state.services if s.name == entry.name)
    state.memo[key] = found
    return found


def _in_namespace(state: ClusterState, namespace: str) -> tuple[Service, ...]:
    return tuple(s for s in state.services if not namespace or s.namespace == namespace)


def endpoint_selector(service: Service) -> Selector:
    """The `toEndpoints` selector Cilium generates for a Service with a selector."""
    assert service.selector is not None
    return (*(Requirement(ANY, k, "In", frozenset((v,))) for k, v in sorted(service.selector.items())),
            Requirement(K8S, POD_NAMESPACE, "In", frozenset((service.namespace,))))


def backend_addresses(state: ClusterState, service: Service) -> frozenset[Address]:
    """The parsed backend addresses of a selector-less Service (its EndpointSlices'), memoised per state."""
    key = ("service-backends", service.namespace, service.name)
    hit = state.memo.get(key)
    if isinstance(hit, frozenset):
        return hit
    found = frozenset(a for a in (parse_address(ip) for ip in state.service_index.backends(
        service.namespace, service.name)) if a is not None)
    state.memo[key] = found
    return found


def service_admits(state: ClusterState, entry: ServicePeer, identity: Identity, address: Address | None,
                   requirements: tuple[Selector, ...]) -> bool:
    """True when the peer (identity; address when CIDR rules may see it) is a backend of a named Service."""
    for service in named_services(state, entry):
        if service.has_selector:
            generated = endpoint_selector(service)
            if selects(generated, identity) and all(selects(r, identity) for r in requirements):
                return True
        elif address is not None and _unmapped(address) in backend_addresses(state, service):
            return True
    return False


def _unmapped(address: Address) -> Address:
    """IPv4-mapped IPv6 compares as its IPv4 address (as CIDR matching does)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address

