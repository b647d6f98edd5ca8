"""networking.k8s.io/v1 NetworkPolicy spec, kept exactly as written.

Absent `ingress`/`egress` become None and empty lists (); absent, null and empty `from`/`to`
all become () (every peer, as the API defines); `policyTypes` are kept as declared (the engine
applies the defaulting); port protocol defaults to TCP; selector operators are kept verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditor.kube.fields import Fields
from auditor.kube.meta import Meta
from auditor.model.k8s import IPBlock, NetworkPolicy, Peer, PolicyDirection, PolicyPort, Rule
from auditor.model.labels import LabelSelector, LabelSelectorRequirement

_DIRECTIONS = {direction.value: direction for direction in PolicyDirection}


def policy_from_dict(obj: Mapping[str, Any], fields: Fields, meta: Meta) -> NetworkPolicy:
    """Convert a NetworkPolicy (metadata already read)."""
    spec = fields.mapping(obj.get("spec"), "spec")
    return NetworkPolicy(
        namespace=meta.namespace,
        name=meta.name,
        pod_selector=label_selector(spec.get("podSelector"), fields, "spec.podSelector"),
        policy_types=_policy_types(spec.get("policyTypes"), fields),
        ingress=_rules(spec.get("ingress"), fields, "spec.ingress", "from"),
        egress=_rules(spec.get("egress"), fields, "spec.egress", "to"),
        uid=meta.uid,
        resource_version=meta.resource_version,
        generation=meta.generation,
        labels=meta.labels,
    )


def label_selector(value: Any, fields: Fields, path: str) -> LabelSelector:
    """A metav1.LabelSelector; absent or null reads as the empty selector."""
    raw = fields.mapping(value, path)
    expressions = []
    for index, entry in enumerate(fields.sequence(raw.get("matchExpressions"), f"{path}.matchExpressions")):
        where = f"{path}.matchExpressions[{index}]"
        entry = fields.mapping(entry, where)
        expressions.append(
            LabelSelectorRequirement(
                key=fields.string(entry.get("key"), f"{where}.key"),
                operator=fields.string(entry.get("operator"), f"{where}.operator"),
                values=fields.strings(entry.get("values"), f"{where}.values"),
            )
        )
    return LabelSelector(
        match_labels=fields.string_map(raw.get("matchLabels"), f"{path}.matchLabels"),
        match_expressions=tuple(expressions),
    )


def _policy_types(value: Any, fields: Fields) -> tuple[PolicyDirection, ...]:
    directions = []
    for index, name in enumerate(fields.strings(value, "spec.policyTypes")):
        direction = _DIRECTIONS.get(name)
        if direction is None:
            fields.fail(f"spec.policyTypes[{index}]", f"unknown policy type {name!r} (Ingress or Egress)")
        directions.append(direction)
    return tuple(directions)


def _rules(value: Any, fields: Fields, path: str, peers_key: str) -> tuple[Rule, ...] | None:
    if value is None:
        return None
    rules = []
    for index, rule in enumerate(fields.sequence(value, path)):
        where = f"{path}[{index}]"
        rule = fields.mapping(rule, where)
        peers = fields.sequence(rule.get(peers_key), f"{where}.{peers_key}")
        ports = fields.sequence(rule.get("ports"), f"{where}.ports")
        rules.append(
            Rule(
                peers=tuple(_peer(peer, fields, f"{where}.{peers_key}[{i}]") for i, peer in enumerate(peers)),
                ports=tuple(_port(port, fields, f"{where}.ports[{i}]") for i, port in enumerate(ports)),
            )
        )
    return tuple(rules)


def _peer(value: Any, fields: Fields, path: str) -> Peer:
    raw = fields.mapping(value, path)
    pods = raw.get("podSelector")
    namespaces = raw.get("namespaceSelector")
    return Peer(
        pod_selector=None if pods is None else label_selector(pods, fields, f"{path}.podSelector"),
        namespace_selector=(
            None if namespaces is None else label_selector(namespaces, fields, f"{path}.namespaceSelector")
        ),
        ip_block=_ip_block(raw.get("ipBlock"), fields, f"{path}.ipBlock"),
    )


def _ip_block(value: Any, fields: Fields, path: str) -> IPBlock | None:
    if value is None:
        return None
    raw = fields.mapping(value, path)
    return IPBlock(
        cidr=fields.string(raw.get("cidr"), f"{path}.cidr", required=True),
        except_=fields.strings(raw.get("except"), f"{path}.except"),
    )


def _port(value: Any, fields: Fields, path: str) -> PolicyPort:
    raw = fields.mapping(value, path)
    return PolicyPort(
        protocol=fields.string(raw.get("protocol"), f"{path}.protocol") or "TCP",
        port=fields.int_or_string(raw.get("port"), f"{path}.port"),
        end_port=fields.integer(raw.get("endPort"), f"{path}.endPort"),
    )
