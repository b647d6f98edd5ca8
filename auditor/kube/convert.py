"""Raw Kubernetes objects (dicts from YAML, JSON or the API) to the model types of `auditor.model.k8s`.

Conversion is structural and faithful: it checks types and required fields and keeps values
as written (selector operators, port names, policy types); `auditor.policy` validates the
semantics.  Two pieces of API-server behaviour are applied because the object in a cluster
always has them: a missing `metadata.namespace` on a namespaced kind means `default` (what
`kubectl apply` does), and every Namespace carries the immutable label
`kubernetes.io/metadata.name` (added when a hand-written manifest lacks it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from auditor.kube import cilium, netpol, pods, services
from auditor.kube.fields import Fields, describe, manifest_error
from auditor.kube.meta import Meta, read_meta
from auditor.model.k8s import KubeObject, Namespace, Node

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
NODE_ADDRESS_TYPES = frozenset({"InternalIP", "ExternalIP"})

_Converter = Callable[[Mapping[str, Any], Fields, Meta], KubeObject]


def _namespace(obj: Mapping[str, Any], fields: Fields, meta: Meta) -> Namespace:
    labels = meta.labels
    if labels.get(NAMESPACE_NAME_LABEL) != meta.name:
        labels = MappingProxyType({**labels, NAMESPACE_NAME_LABEL: meta.name})
    return Namespace(name=meta.name, labels=labels, uid=meta.uid, resource_version=meta.resource_version)


def _node(obj: Mapping[str, Any], fields: Fields, meta: Meta) -> Node:
    status = fields.mapping(obj.get("status"), "status")
    addresses: list[str] = []
    for index, entry in enumerate(fields.sequence(status.get("addresses"), "status.addresses")):
        path = f"status.addresses[{index}]"
        entry = fields.mapping(entry, path)
        kind = fields.string(entry.get("type"), f"{path}.type")
        address = fields.string(entry.get("address"), f"{path}.address")
        if kind in NODE_ADDRESS_TYPES and address and address not in addresses:
            addresses.append(address)
    return Node(
        name=meta.name,
        labels=meta.labels,
        addresses=tuple(addresses),
        uid=meta.uid,
        resource_version=meta.resource_version,
    )


_CONVERTERS: Mapping[tuple[str, str], tuple[_Converter, bool]] = {
    ("v1", "Namespace"): (_namespace, False),
    ("v1", "Node"): (_node, False),
    ("v1", "Pod"): (pods.pod_from_dict, True),
    ("v1", "Service"): (services.service_from_dict, True),
    ("discovery.k8s.io/v1", "EndpointSlice"): (services.endpoint_slice_from_dict, True),
    ("networking.k8s.io/v1", "NetworkPolicy"): (netpol.policy_from_dict, True),
    ("cilium.io/v2", "CiliumNetworkPolicy"): (cilium.cnp_from_dict, True),
    ("cilium.io/v2", "CiliumClusterwideNetworkPolicy"): (cilium.ccnp_from_dict, False),
    ("cilium.io/v2", "CiliumCIDRGroup"): (cilium.cidr_group_from_dict, False),
    ("cilium.io/v2alpha1", "CiliumCIDRGroup"): (cilium.cidr_group_from_dict, False),
}
"""(apiVersion, kind) -> (converter, namespaced)."""


def _type_key(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(apiVersion, kind) when both are strings (a list or a mapping there is no kind we know)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    return (api_version, kind) if isinstance(api_version, str) and isinstance(kind, str) else None


def is_supported(obj: Mapping[str, Any]) -> bool:
    """True when `object_from_dict` converts this apiVersion and kind (anything else is skipped)."""
    return _type_key(obj) in _CONVERTERS


def kind_of(obj: Mapping[str, Any]) -> str:
    """`apiVersion/kind` as written, for counting skipped objects."""
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    return f"{api_version}/{kind}" if isinstance(api_version, str) and api_version else str(kind)


def object_from_dict(obj: Mapping[str, Any], *, where: str = "") -> KubeObject:
    """Convert one Namespace, Pod, Node, NetworkPolicy, Service, EndpointSlice or Cilium kind (CNP, CCNP,
    CiliumCIDRGroup).

    Raises ManifestError naming `where`, the object (Kind namespace/name) and the field when
    the object is structurally unusable, or when its kind is not supported (check
    `is_supported` first to skip those instead).
    """
    if not isinstance(obj, Mapping):
        raise manifest_error(where, f"expected a Kubernetes object, got {describe(obj)}")
    type_key = _type_key(obj)
    entry = _CONVERTERS.get(type_key) if type_key is not None else None
    if entry is None:
        raise manifest_error(where, f"unsupported object kind {kind_of(obj)!r}")
    converter, namespaced = entry
    kind = str(obj["kind"])
    meta = read_meta(obj, kind=kind, where=where, namespaced=namespaced)
    return converter(obj, Fields(where, meta.ref), meta)
