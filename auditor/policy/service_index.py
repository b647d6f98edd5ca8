"""Services and their EndpointSlices in a ClusterState, for Cilium's `toServices` peers.

Immutable like the state that holds it: `with_service` / `with_slice` return a new index sharing
everything untouched.  Slices are grouped by the Service they belong to (namespace and the
`kubernetes.io/service-name` label); a slice without that label belongs to no Service.

Backends are read the way Cilium's service cache reads EndpointSlices (pkg/k8s endpoints.go
`ParseEndpointSliceV1`, with `enable-k8s-terminating-endpoint` at its default, true): only
`addressType` IPv4 and IPv6 slices count; an endpoint counts when it is ready (an unset
condition reads as ready) or, not ready, still serving (a terminating backend); addresses are
merged over every slice of the Service.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from auditor.model.k8s import EndpointSlice, Service, SliceEndpoint
from auditor.policy.pmap import PMap

Key = tuple[str, str]
IP_ADDRESS_TYPES = frozenset(("IPv4", "IPv6"))


def _by_name(slices: list[EndpointSlice]) -> tuple[EndpointSlice, ...]:
    return tuple(sorted(slices, key=lambda s: s.name))


def counts_as_backend(endpoint: SliceEndpoint) -> bool:
    """Ready (None reads as ready), or not ready but serving (terminating, still accepting)."""
    return endpoint.ready is not False or endpoint.serving is True


def slice_addresses(endpoint_slice: EndpointSlice) -> tuple[str, ...]:
    """The backend addresses one slice contributes (none for an FQDN slice), parse-checked."""
    if endpoint_slice.address_type not in IP_ADDRESS_TYPES:
        return ()
    found: list[str] = []
    for endpoint in endpoint_slice.endpoints:
        if not counts_as_backend(endpoint):
            continue
        for address in endpoint.addresses:
            try:
                found.append(str(ipaddress.ip_address(address)))
            except ValueError:
                continue  # Cilium skips an address it cannot parse
    return tuple(found)


@dataclass(frozen=True, slots=True)
class ServiceIndex:
    """Services by (namespace, name); EndpointSlices by (namespace, name) and by their Service."""

    services: PMap[Key, Service]
    slices: PMap[Key, EndpointSlice]
    by_service: PMap[Key, tuple[EndpointSlice, ...]]
    """(namespace, service name) -> that Service's slices, sorted by slice name."""

    @classmethod
    def empty(cls) -> ServiceIndex:
        return cls(PMap(), PMap(), PMap())

    @classmethod
    def build(cls, services: list[Service], slices: list[EndpointSlice]) -> ServiceIndex:
        grouped: dict[Key, list[EndpointSlice]] = {}
        for endpoint_slice in slices:
            if endpoint_slice.service_name:
                grouped.setdefault((endpoint_slice.namespace, endpoint_slice.service_name), []).append(
                    endpoint_slice)
        return cls(PMap.from_items(((s.namespace, s.name), s) for s in services),
                   PMap.from_items(((s.namespace, s.name), s) for s in slices),
                   PMap.from_items((key, _by_name(found)) for key, found in grouped.items()))

    def with_service(self, service: Service, deleted: bool) -> ServiceIndex:
        key = (service.namespace, service.name)
        services = self.services.delete(key) if deleted else self.services.set(key, service)
        return ServiceIndex(services, self.slices, self.by_service)

    def with_slice(self, endpoint_slice: EndpointSlice, deleted: bool) -> ServiceIndex:
        """The index after a slice was added, changed (maybe moved to another Service) or deleted."""
        key = (endpoint_slice.namespace, endpoint_slice.name)
        old = self.slices.get(key)
        by_service = self.by_service
        if old is not None and old.service_name:
            by_service = self._regroup(by_service, old, drop=True)
        slices = self.slices.delete(key) if deleted else self.slices.set(key, endpoint_slice)
        if not deleted and endpoint_slice.service_name:
            by_service = self._regroup(by_service, endpoint_slice, drop=False)
        return ServiceIndex(self.services, slices, by_service)

    @staticmethod
    def _regroup(by_service: PMap[Key, tuple[EndpointSlice, ...]], endpoint_slice: EndpointSlice,
                 drop: bool) -> PMap[Key, tuple[EndpointSlice, ...]]:
        group = (endpoint_slice.namespace, endpoint_slice.service_name)
        siblings = [s for s in (by_service.get(group) or ()) if s.name != endpoint_slice.name]
        if not drop:
            siblings.append(endpoint_slice)
        return by_service.set(group, _by_name(siblings)) if siblings else by_service.delete(group)

    def service(self, namespace: str, name: str) -> Service | None:
        return self.services.get((namespace, name))

    def slices_of(self, namespace: str, name: str) -> tuple[EndpointSlice, ...]:
        """The EndpointSlices labelled for Service namespace/name (the Service itself may be absent)."""
        return self.by_service.get((namespace, name)) or ()

    def backends(self, namespace: str, name: str) -> frozenset[str]:
        """The backend addresses of Service namespace/name, as Cilium's service cache merges them."""
        return frozenset(a for s in self.slices_of(namespace, name) for a in slice_addresses(s))
