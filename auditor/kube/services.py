"""v1 Services and discovery.k8s.io/v1 EndpointSlices: what Cilium's `toServices` rules resolve against.

A Service keeps its labels (what `k8sServiceSelector` matches), its `spec.selector` (absent is
None: a selector-less Service), type, cluster IPs and ports.  An EndpointSlice keeps its labels
(`kubernetes.io/service-name` ties it to its Service), `addressType` and, per endpoint, the
addresses and the `ready`/`serving`/`terminating` conditions (unset conditions stay None).
Cilium reads Service backends from EndpointSlices (the legacy v1 Endpoints only on API servers
without discovery.k8s.io), so auditor does too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditor.kube.fields import Fields
from auditor.kube.meta import Meta
from auditor.model.k8s import EndpointSlice, Service, ServicePort, SliceEndpoint

DEFAULT_PROTOCOL = "TCP"


def service_from_dict(obj: Mapping[str, Any], fields: Fields, meta: Meta) -> Service:
    """Convert a v1 Service (metadata already read)."""
    spec = fields.mapping(obj.get("spec"), "spec")
    selector = spec.get("selector")
    return Service(
        namespace=meta.namespace,
        name=meta.name,
        labels=meta.labels,
        selector=None if selector is None else fields.string_map(selector, "spec.selector"),
        type=fields.string(spec.get("type"), "spec.type"),
        cluster_ips=_cluster_ips(spec, fields),
        ports=tuple(_port(entry, fields, f"spec.ports[{index}]")
                    for index, entry in enumerate(fields.sequence(spec.get("ports"), "spec.ports"))),
        uid=meta.uid,
        resource_version=meta.resource_version,
    )


def _cluster_ips(spec: Mapping[str, Any], fields: Fields) -> tuple[str, ...]:
    """spec.clusterIPs (dual-stack), else spec.clusterIP alone."""
    ips = fields.strings(spec.get("clusterIPs"), "spec.clusterIPs")
    if ips:
        return ips
    single = fields.string(spec.get("clusterIP"), "spec.clusterIP")
    return (single,) if single else ()


def _port(value: Any, fields: Fields, path: str) -> ServicePort:
    raw = fields.mapping(value, path)
    port = fields.integer(raw.get("port"), f"{path}.port")
    if port is None:
        fields.fail(f"{path}.port", "required field is missing")
    return ServicePort(
        port=port,
        protocol=fields.string(raw.get("protocol"), f"{path}.protocol") or DEFAULT_PROTOCOL,
        name=fields.string(raw.get("name"), f"{path}.name"),
        target_port=fields.int_or_string(raw.get("targetPort"), f"{path}.targetPort"),
    )


def endpoint_slice_from_dict(obj: Mapping[str, Any], fields: Fields, meta: Meta) -> EndpointSlice:
    """Convert a discovery.k8s.io/v1 EndpointSlice; `addressType` is required, as in the API."""
    address_type = fields.string(obj.get("addressType"), "addressType", required=True)
    endpoints = enumerate(fields.sequence(obj.get("endpoints"), "endpoints"))
    return EndpointSlice(
        namespace=meta.namespace,
        name=meta.name,
        address_type=address_type,
        endpoints=tuple(_endpoint(entry, fields, f"endpoints[{index}]") for index, entry in endpoints),
        labels=meta.labels,
        uid=meta.uid,
        resource_version=meta.resource_version,
    )


def _endpoint(value: Any, fields: Fields, path: str) -> SliceEndpoint:
    raw = fields.mapping(value, path)
    conditions = fields.mapping(raw.get("conditions"), f"{path}.conditions")

    def condition(name: str) -> bool | None:
        found = conditions.get(name)
        return None if found is None else fields.boolean(found, f"{path}.conditions.{name}")

    return SliceEndpoint(
        addresses=fields.strings(raw.get("addresses"), f"{path}.addresses"),
        ready=condition("ready"),
        serving=condition("serving"),
        terminating=condition("terminating"),
    )
