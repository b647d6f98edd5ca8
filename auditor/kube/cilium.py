"""cilium.io CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and CiliumCIDRGroup, kept as written.

Field names follow Cilium's api.Rule (pkg/policy/api/rule.go, ingress.go, egress.go, l4.go,
icmp.go, cidr.go, service.go, fqdn.go) and the CRDs in pkg/k8s/apis/cilium.io/client/crds.
Ingress sections (`ingress`, `ingressDeny`) read the `from*` peer fields, egress sections the
`to*` ones; every section reads `toPorts` and `icmps`.  An absent section or peer list is None,
an empty one `()` (Cilium tells them apart).  Selector keys keep their `k8s:`/`any:`/`reserved:`
source prefixes; ports are strings (an unquoted number becomes its decimal string), protocol
defaults to ANY and ICMP family to IPv4.  Peer kinds a section does not have in Cilium (say
`toFQDNs` in `egressDeny`) are read anyway, for `auditor.policy.cilium_validate` to report.
L7 rules are kept as the kinds present with at least one rule (Cilium's L7Rules.Len), in the
fixed order http, dns, kafka, l7proto (a non-empty `l7proto` name), and as written: the `rules`
mapping and each `toGroups` entry as canonical JSON (`canonical_json`), which `kube.export`
writes back.  ICMP fields keep the index of their `icmps[]` entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from auditor.kube.fields import Fields, describe
from auditor.kube.meta import Meta
from auditor.kube.netpol import label_selector
from auditor.model.cilium import (
    CIDRPeer,
    CiliumCIDRGroup,
    CiliumKind,
    CiliumNetworkPolicy,
    CiliumPolicySpec,
    CiliumPort,
    CiliumRule,
    FQDNPeer,
    ICMPType,
    PortRule,
    RuleSection,
    ServicePeer,
)
from auditor.model.labels import LabelSelector

L7_KINDS = ("http", "dns", "kafka")
"""The list-valued L7 rule kinds, in the order `PortRule.l7` keeps them (then "l7proto")."""
DEFAULT_PROTOCOL = "ANY"
DEFAULT_ICMP_FAMILY = "IPv4"

_T = TypeVar("_T")


def cnp_from_dict(obj: Mapping[str, Any], fields: Fields, meta: Meta) -> CiliumNetworkPolicy:
    """Convert a cilium.io/v2 CiliumNetworkPolicy (metadata already read)."""
    return _policy(CiliumKind.CNP, obj, fields, meta)


def ccnp_from_dict(obj: Mapping[str, Any], fields: Fields, meta: Meta) -> CiliumNetworkPolicy:
    """Convert a cilium.io/v2 CiliumClusterwideNetworkPolicy (cluster-scoped)."""
    return _policy(CiliumKind.CCNP, obj, fields, meta)


def cidr_group_from_dict(obj: Mapping[str, Any], fields: Fields, meta: Meta) -> CiliumCIDRGroup:
    """Convert a CiliumCIDRGroup (v2alpha1 or v2); `spec.externalCIDRs` is required (may be empty)."""
    spec = fields.mapping(obj.get("spec"), "spec")
    if spec.get("externalCIDRs") is None:
        fields.fail("spec.externalCIDRs", "required field is missing")
    return CiliumCIDRGroup(
        name=meta.name,
        cidrs=fields.strings(spec.get("externalCIDRs"), "spec.externalCIDRs"),
        labels=meta.labels,
        uid=meta.uid,
        resource_version=meta.resource_version,
    )


def _policy(kind: CiliumKind, obj: Mapping[str, Any], fields: Fields, meta: Meta) -> CiliumNetworkPolicy:
    has_spec = obj.get("spec") is not None
    specs = [_spec(obj.get("spec"), fields, "spec")] if has_spec else []
    for index, entry in enumerate(fields.sequence(obj.get("specs"), "specs")):
        specs.append(_spec(entry, fields, f"specs[{index}]"))
    return CiliumNetworkPolicy(
        kind=kind,
        name=meta.name,
        namespace=meta.namespace,
        specs=tuple(specs),
        has_spec=has_spec,
        uid=meta.uid,
        resource_version=meta.resource_version,
        generation=meta.generation,
        labels=meta.labels,
    )


def _spec(value: Any, fields: Fields, path: str) -> CiliumPolicySpec:
    raw = fields.mapping(value, path)
    default_deny = fields.mapping(raw.get("enableDefaultDeny"), f"{path}.enableDefaultDeny")
    sections = {
        section: _section(raw.get(section.value), fields, f"{path}.{section.value}", section)
        for section in RuleSection
    }
    return CiliumPolicySpec(
        endpoint_selector=_optional_selector(raw.get("endpointSelector"), fields, f"{path}.endpointSelector"),
        node_selector=_optional_selector(raw.get("nodeSelector"), fields, f"{path}.nodeSelector"),
        ingress=sections[RuleSection.INGRESS],
        ingress_deny=sections[RuleSection.INGRESS_DENY],
        egress=sections[RuleSection.EGRESS],
        egress_deny=sections[RuleSection.EGRESS_DENY],
        enable_default_deny_ingress=_optional_bool(default_deny.get("ingress"), fields,
                                                   f"{path}.enableDefaultDeny.ingress"),
        enable_default_deny_egress=_optional_bool(default_deny.get("egress"), fields,
                                                  f"{path}.enableDefaultDeny.egress"),
        description=fields.string(raw.get("description"), f"{path}.description"),
    )


def _section(value: Any, fields: Fields, path: str, section: RuleSection) -> tuple[CiliumRule, ...] | None:
    if value is None:
        return None
    prefix = "from" if section.is_ingress else "to"
    items = fields.sequence(value, path)
    return tuple(_rule(item, fields, f"{path}[{index}]", prefix) for index, item in enumerate(items))


def _rule(value: Any, fields: Fields, path: str, prefix: str) -> CiliumRule:
    raw = fields.mapping(value, path)
    groups = fields.sequence(raw.get(f"{prefix}Groups"), f"{path}.{prefix}Groups")

    def peers(name: str, read: Callable[[Any, Fields, str], _T]) -> tuple[_T, ...] | None:
        return _optional_list(raw.get(f"{prefix}{name}"), fields, f"{path}.{prefix}{name}", read)

    return CiliumRule(
        endpoints=peers("Endpoints", label_selector),
        requires=peers("Requires", label_selector) or (),
        entities=peers("Entities", _string),
        cidrs=peers("CIDR", _string),
        cidr_sets=peers("CIDRSet", _cidr_peer),
        services=peers("Services", _service),
        fqdns=peers("FQDNs", _fqdn),
        nodes=peers("Nodes", label_selector),
        groups=len(groups),
        group_entries=tuple(canonical_json(entry, fields, f"{path}.{prefix}Groups[{index}]")
                            for index, entry in enumerate(groups)),
        to_ports=_list(raw.get("toPorts"), fields, f"{path}.toPorts", _port_rule),
        icmps=tuple(
            icmp
            for index, entry in enumerate(fields.sequence(raw.get("icmps"), f"{path}.icmps"))
            for icmp in _icmp_rule(entry, fields, f"{path}.icmps[{index}]", index)
        ),
    )


def canonical_json(value: Any, fields: Fields, path: str) -> str:
    """`value` as canonical JSON (sorted keys, no spaces), failing on what JSON cannot hold (a YAML date)."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_json_default)
    except (TypeError, ValueError) as exc:
        fields.fail(path, f"expected JSON values (strings, numbers, booleans, lists, objects): {exc}")


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{describe(value)} is not a JSON value")


def _list(value: Any, fields: Fields, path: str, read: Callable[[Any, Fields, str], _T]) -> tuple[_T, ...]:
    items = fields.sequence(value, path)
    return tuple(read(item, fields, f"{path}[{index}]") for index, item in enumerate(items))


def _optional_list(
    value: Any, fields: Fields, path: str, read: Callable[[Any, Fields, str], _T]
) -> tuple[_T, ...] | None:
    return None if value is None else _list(value, fields, path, read)


def _string(value: Any, fields: Fields, path: str) -> str:
    return fields.string(value, path)


def _optional_selector(value: Any, fields: Fields, path: str) -> LabelSelector | None:
    return None if value is None else label_selector(value, fields, path)


def _optional_bool(value: Any, fields: Fields, path: str) -> bool | None:
    return None if value is None else fields.boolean(value, path)


def _cidr_peer(value: Any, fields: Fields, path: str) -> CIDRPeer:
    raw = fields.mapping(value, path)
    return CIDRPeer(
        cidr=fields.string(raw.get("cidr"), f"{path}.cidr"),
        except_=fields.strings(raw.get("except"), f"{path}.except"),
        group_ref=fields.string(raw.get("cidrGroupRef"), f"{path}.cidrGroupRef"),
        group_selector=_optional_selector(raw.get("cidrGroupSelector"), fields, f"{path}.cidrGroupSelector"),
    )


def _service(value: Any, fields: Fields, path: str) -> ServicePeer:
    """k8sService {serviceName, namespace} and/or k8sServiceSelector {selector, namespace}.

    Cilium's api.Service.Matches ANDs the two when both are set; the model holds that as a name
    and a selector in one namespace, so both with different namespaces cannot be represented.
    """
    raw = fields.mapping(value, path)
    by_name = fields.mapping(raw.get("k8sService"), f"{path}.k8sService")
    name = fields.string(by_name.get("serviceName"), f"{path}.k8sService.serviceName")
    namespace = fields.string(by_name.get("namespace"), f"{path}.k8sService.namespace")
    if raw.get("k8sServiceSelector") is None:
        return ServicePeer(name=name, namespace=namespace)
    where = f"{path}.k8sServiceSelector"
    by_selector = fields.mapping(raw.get("k8sServiceSelector"), where)
    selector_namespace = fields.string(by_selector.get("namespace"), f"{where}.namespace")
    if raw.get("k8sService") is not None and selector_namespace != namespace:
        fields.fail(path, "k8sService and k8sServiceSelector name different namespaces (not supported)")
    if by_selector.get("selector") is None:
        fields.fail(f"{where}.selector", "required field is missing")
    return ServicePeer(name=name, namespace=selector_namespace,
                       selector=label_selector(by_selector.get("selector"), fields, f"{where}.selector"))


def _fqdn(value: Any, fields: Fields, path: str) -> FQDNPeer:
    raw = fields.mapping(value, path)
    return FQDNPeer(
        match_name=fields.string(raw.get("matchName"), f"{path}.matchName"),
        match_pattern=fields.string(raw.get("matchPattern"), f"{path}.matchPattern"),
    )


def _port_rule(value: Any, fields: Fields, path: str) -> PortRule:
    raw = fields.mapping(value, path)
    return PortRule(
        ports=_list(raw.get("ports"), fields, f"{path}.ports", _port),
        l7=_l7_kinds(raw.get("rules"), fields, f"{path}.rules"),
        server_names=fields.strings(raw.get("serverNames"), f"{path}.serverNames"),
        rules_json=_optional_json(raw.get("rules"), fields, f"{path}.rules"),
    )


def _optional_json(value: Any, fields: Fields, path: str) -> str:
    return "" if value is None else canonical_json(value, fields, path)


def _port(value: Any, fields: Fields, path: str) -> CiliumPort:
    raw = fields.mapping(value, path)
    port = fields.int_or_string(raw.get("port"), f"{path}.port")
    return CiliumPort(
        port="" if port is None else str(port),
        end_port=fields.integer(raw.get("endPort"), f"{path}.endPort") or 0,
        protocol=fields.string(raw.get("protocol"), f"{path}.protocol") or DEFAULT_PROTOCOL,
    )


def _l7_kinds(value: Any, fields: Fields, path: str) -> tuple[str, ...]:
    raw = fields.mapping(value, path)
    kinds = [kind for kind in L7_KINDS if fields.sequence(raw.get(kind), f"{path}.{kind}")]
    fields.sequence(raw.get("l7"), f"{path}.l7")
    if fields.string(raw.get("l7proto"), f"{path}.l7proto"):
        kinds.append("l7proto")
    return tuple(kinds)


def _icmp_rule(value: Any, fields: Fields, path: str, entry: int) -> tuple[ICMPType, ...]:
    raw = fields.mapping(value, path)
    items = fields.sequence(raw.get("fields"), f"{path}.fields")
    return tuple(_icmp_field(item, fields, f"{path}.fields[{i}]", entry) for i, item in enumerate(items))


def _icmp_field(value: Any, fields: Fields, path: str, entry: int) -> ICMPType:
    raw = fields.mapping(value, path)
    icmp_type = fields.int_or_string(raw.get("type"), f"{path}.type")
    if icmp_type is None:
        fields.fail(f"{path}.type", "required field is missing")
    family = fields.string(raw.get("family"), f"{path}.family") or DEFAULT_ICMP_FAMILY
    return ICMPType(type=icmp_type, family=family, entry=entry)
