"""CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and CiliumCIDRGroup validation, as Cilium does it.

Two gates decide whether Cilium enforces a policy: the API server checks the CRD's OpenAPI schema
(`pkg/k8s/apis/cilium.io/client/crds/v2/*.yaml`, generated from the kubebuilder markers on
`pkg/policy/api/*.go`), then the agent parses it (`pkg/k8s/apis/cilium.io/v2/cnp_types.go`
`Parse`, `pkg/policy/api/rule_validation.go`).  A policy failing either is not enforced, so the
engine must leave it out.  Every reason is reported, one error per offending field, with the JSON
path as written in the object.  Behaviour is Cilium 1.18's; where 1.16 or 1.17 differ the check
says so (docs/policy-engine.md lists every rule with its source).  Nothing here raises.

The model flattens `icmps[].fields[]` into one tuple per rule; each field keeps the index of its
`icmps[]` entry (`ICMPType.entry`), so ICMP errors name `icmps[i].fields[j]` as written and the
40-field limit (`ICMPRule.Fields`, `+kubebuilder:validation:MaxItems=40` in pkg/policy/api/icmp.go)
applies per entry.
"""

from __future__ import annotations

import ipaddress

from auditor.errors import InvalidObjectError
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
)
from auditor.model.labels import LabelSelector
from auditor.policy.cilium_syntax import (
    ICMP_FAMILIES,
    KNOWN_ENTITIES,
    PROTOCOLS,
    Network,
    cidr_group_ref_problem,
    cilium_label_key_problem,
    fqdn_problem,
    icmp_type_number,
    icmp_type_problem,
    namespace_problem,
    object_name_problem,
    parse_port,
    parse_prefix,
    server_name_problem,
)
from auditor.policy.validate import label_key_problem, label_value_problem

__all__ = ["KNOWN_ENTITIES", "icmp_type_number", "validate_cidr_group", "validate_cilium_policy"]

MAX_PORTS = 40
MAX_ICMP_FIELDS = 40
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_CIDR_FORMAT = "Cilium accepts address/prefix-length (10.0.0.0/8, fd00::/64) without leading zeros or a zone"


class _Collector:
    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.errors: list[InvalidObjectError] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append(InvalidObjectError(self.ref, field, message))


def policy_ref(policy: CiliumNetworkPolicy) -> str:
    """`CiliumNetworkPolicy ns/name` or `CiliumClusterwideNetworkPolicy name`."""
    if policy.kind is CiliumKind.CNP:
        return f"{policy.kind.value} {policy.namespace}/{policy.name}"
    return f"{policy.kind.value} {policy.name}"


def validate_cilium_policy(policy: CiliumNetworkPolicy) -> list[InvalidObjectError]:
    """Every reason the API server or the Cilium agent would reject `policy`; empty when valid."""
    out = _Collector(policy_ref(policy))
    problem = object_name_problem(policy.name)
    if problem:
        out.add("metadata.name", problem)
    if policy.kind is CiliumKind.CNP:
        problem = namespace_problem(policy.namespace)
        if problem:
            out.add("metadata.namespace", problem)
    if not policy.specs:
        out.add("spec", "the policy has neither `spec` nor `specs` with a rule: Cilium rejects an empty policy")
    for index, spec in enumerate(policy.specs):
        _validate_spec(policy, spec, policy.spec_path(index), out)
    return out.errors


def validate_cidr_group(group: CiliumCIDRGroup) -> list[InvalidObjectError]:
    """Every reason the API server would reject a CiliumCIDRGroup (`spec.externalCIDRs` are `format: cidr`)."""
    out = _Collector(f"CiliumCIDRGroup {group.name}")
    problem = object_name_problem(group.name)
    if problem:
        out.add("metadata.name", problem)
    for index, cidr in enumerate(group.cidrs):
        if parse_prefix(cidr) is None:
            out.add(f"spec.externalCIDRs[{index}]", f"{cidr!r} is not a CIDR: {_CIDR_FORMAT}")
    return out.errors


def _validate_spec(policy: CiliumNetworkPolicy, spec: CiliumPolicySpec, path: str, out: _Collector) -> None:
    if spec.endpoint_selector is None and spec.node_selector is None:
        out.add(path, "must have one of endpointSelector (pods) or nodeSelector (nodes, host policy)")
    elif spec.endpoint_selector is not None and spec.node_selector is not None:
        out.add(path, "cannot have both endpointSelector and nodeSelector: a rule selects pods or nodes")
    if spec.endpoint_selector is not None:
        _validate_selector(spec.endpoint_selector, f"{path}.endpointSelector", out)
    if spec.node_selector is not None:
        _validate_selector(spec.node_selector, f"{path}.nodeSelector", out)
        if not policy.clusterwide:
            out.add(f"{path}.nodeSelector", "host policies (nodeSelector) are only allowed in a "
                                            "CiliumClusterwideNetworkPolicy; a CiliumNetworkPolicy needs "
                                            "endpointSelector")
    if not any(spec.rules(section) for section in RuleSection):
        out.add(path, "has no rule in ingress, ingressDeny, egress or egressDeny: Cilium 1.17+ rejects such a "
                      "spec (an empty list does not count); add a rule, e.g. `ingress: [{}]`")
    host = spec.node_selector is not None
    for section in RuleSection:
        for index, rule in enumerate(spec.rules(section)):
            _validate_rule(rule, section, f"{path}.{section.value}[{index}]", host, out)


def _members(rule: CiliumRule, section: RuleSection) -> list[tuple[str, int]]:
    """The L3 peer fields of a rule (name as written, entry count), in Cilium's order."""
    prefix = "from" if section.is_ingress else "to"
    members = [("Endpoints", len(rule.endpoints or ())), ("CIDR", len(rule.cidrs or ())),
               ("CIDRSet", len(rule.cidr_sets or ())), ("Entities", len(rule.entities or ())),
               ("Nodes", len(rule.nodes or ())), ("Groups", rule.groups)]
    if not section.is_ingress:
        members.append(("Services", len(rule.services or ())))
    if section is RuleSection.EGRESS:
        members.append(("FQDNs", len(rule.fqdns or ())))
    return [(prefix + name, count) for name, count in members]


def _validate_rule(rule: CiliumRule, section: RuleSection, path: str, host: bool, out: _Collector) -> None:
    prefix = "from" if section.is_ingress else "to"
    if rule.fqdns is not None and section is not RuleSection.EGRESS:
        out.add(f"{path}.{prefix}FQDNs", "toFQDNs is only supported in egress rules (not in ingress, "
                                         "ingressDeny or egressDeny)")
    if rule.services is not None and section.is_ingress:
        out.add(f"{path}.fromServices", "toServices is only supported in egress and egressDeny rules")
    used = [name for name, count in _members(rule, section) if count]
    if len(used) > 1:
        out.add(path, f"combining {' and '.join(used)} in one rule is not supported: Cilium takes one peer "
                      "kind per rule, split them into separate rules")
    if rule.icmps and rule.to_ports:
        out.add(f"{path}.icmps", "icmps may only be present without toPorts: put toPorts in a separate rule")
    _validate_peers(rule, prefix, path, out)
    for index, port_rule in enumerate(rule.to_ports):
        _validate_port_rule(port_rule, section, f"{path}.toPorts[{index}]", host, out)
    _validate_icmps(rule.icmps, f"{path}.icmps", out)


def _validate_peers(rule: CiliumRule, prefix: str, path: str, out: _Collector) -> None:
    for name, selectors in (("Endpoints", rule.endpoints), ("Requires", rule.requires), ("Nodes", rule.nodes)):
        for index, selector in enumerate(selectors or ()):
            _validate_selector(selector, f"{path}.{prefix}{name}[{index}]", out)
    for index, entity in enumerate(rule.entities or ()):
        if entity not in KNOWN_ENTITIES:
            out.add(f"{path}.{prefix}Entities[{index}]",
                    f"unsupported entity {entity!r}: Cilium accepts {', '.join(KNOWN_ENTITIES)}")
    for index, cidr in enumerate(rule.cidrs or ()):
        where = f"{path}.{prefix}CIDR[{index}]"
        if not cidr:
            out.add(where, f"IP must be specified: {_CIDR_FORMAT}")
        elif parse_prefix(cidr) is None:
            out.add(where, f"{cidr!r} is not a CIDR: {_CIDR_FORMAT}")
    for index, peer in enumerate(rule.cidr_sets or ()):
        _validate_cidr_peer(peer, f"{path}.{prefix}CIDRSet[{index}]", out)
    for index, service in enumerate(rule.services or ()):
        if service.selector is not None:
            where = f"{path}.{prefix}Services[{index}].k8sServiceSelector.selector"
            _validate_selector(service.selector, where, out)
    for index, fqdn in enumerate(rule.fqdns or ()):
        _validate_fqdn(fqdn, f"{path}.{prefix}FQDNs[{index}]", out)


def _validate_cidr_peer(peer: CIDRPeer, path: str, out: _Collector) -> None:
    kinds = [name for name, present in (("cidr", bool(peer.cidr)), ("cidrGroupRef", bool(peer.group_ref)),
                                        ("cidrGroupSelector", peer.group_selector is not None)) if present]
    if not kinds:
        out.add(path, "one of cidr, cidrGroupRef or cidrGroupSelector is required")
    elif len(kinds) > 1:
        out.add(path, f"set only one of cidr, cidrGroupRef and cidrGroupSelector, not {' and '.join(kinds)}")
    problem = cidr_group_ref_problem(peer.group_ref) if peer.group_ref else None
    if problem:
        out.add(f"{path}.cidrGroupRef", problem)
    if peer.group_selector is not None:
        _validate_selector(peer.group_selector, f"{path}.cidrGroupSelector", out, sources=False)
    network = parse_prefix(peer.cidr) if peer.cidr else None
    if peer.cidr and network is None:
        out.add(f"{path}.cidr", f"{peer.cidr!r} is not a CIDR: {_CIDR_FORMAT}")
    for index, text in enumerate(peer.except_):
        excluded = parse_prefix(text)
        if excluded is None:
            out.add(f"{path}.except[{index}]", f"{text!r} is not a CIDR: {_CIDR_FORMAT}")
        elif network is not None and not _starts_inside(text, network):
            out.add(f"{path}.except[{index}]", f"{text!r} must lie inside `cidr` {peer.cidr!r} (same family)")


def _starts_inside(text: str, network: Network) -> bool:
    """Cilium's `prefix.Contains(except.Addr())`: the except address as written lies in the CIDR.

    (1.19 also requires the except prefix to be at least as long; 1.16-1.18 do not.)
    """
    address = ipaddress.ip_address(text.partition("/")[0])
    return address.version == network.version and address in network


def _validate_fqdn(fqdn: FQDNPeer, path: str, out: _Collector) -> None:
    if bool(fqdn.match_name) == bool(fqdn.match_pattern):
        out.add(path, "set exactly one of matchName and matchPattern")
    if fqdn.match_name:
        problem = fqdn_problem(fqdn.match_name, pattern=False)
        if problem:
            out.add(f"{path}.matchName", f"invalid DNS name {fqdn.match_name!r}: {problem}")
    if fqdn.match_pattern:
        problem = fqdn_problem(fqdn.match_pattern, pattern=True)
        if problem:
            out.add(f"{path}.matchPattern", f"invalid DNS pattern {fqdn.match_pattern!r}: {problem}")


def _validate_port_rule(rule: PortRule, section: RuleSection, path: str, host: bool, out: _Collector) -> None:
    if section.is_deny and rule.l7:
        out.add(f"{path}.rules", "deny rules cannot have L7 rules: ingressDeny/egressDeny toPorts take only "
                                 "ports")
    if section.is_deny and rule.server_names:
        out.add(f"{path}.serverNames", "deny rules cannot match serverNames: ingressDeny/egressDeny toPorts "
                                       "take only ports")
    if len(rule.ports) > MAX_PORTS:
        out.add(f"{path}.ports", f"has {len(rule.ports)} entries: Cilium accepts at most {MAX_PORTS} per "
                                 "toPorts entry")
    numbers = [_validate_port(port, f"{path}.ports[{index}]", "dns" in rule.l7, out)
               for index, port in enumerate(rule.ports)]
    if not section.is_deny and rule.l7:
        _validate_l7(rule, section, path, host, 0 in numbers, out)
    for index, name in enumerate(rule.server_names):
        problem = server_name_problem(name)
        if problem:
            out.add(f"{path}.serverNames[{index}]", f"invalid server name {name!r}: {problem}")


def _validate_port(port: CiliumPort, path: str, dns: bool, out: _Collector) -> int | str | None:
    """Check one port entry; its number or name as Cilium reads it (None when invalid)."""
    parsed = parse_port(port.port) if port.port else None
    if not port.port:
        out.add(f"{path}.port", "is required: a number 0-65535 or a named port (leave out `ports` to match "
                                "every port)")
    elif parsed is None:
        out.add(f"{path}.port", f"{port.port!r} is not a port: use a number 0-65535 or a named port (an IANA "
                                "service name: at most 15 letters, digits and single '-', with a letter)")
    if port.protocol not in PROTOCOLS:
        out.add(f"{path}.protocol", f"unsupported value {port.protocol!r}: Cilium accepts "
                                    f"{', '.join(PROTOCOLS)}")
    if not 0 <= port.end_port <= 65535:
        out.add(f"{path}.endPort", f"{port.end_port} must be between 0 and 65535")
    elif dns and isinstance(parsed, int) and port.end_port > parsed:
        out.add(f"{path}.endPort", "DNS rules do not support port ranges: use port 53 without endPort")
    return parsed


def _validate_l7(rule: PortRule, section: RuleSection, path: str, host: bool, zero_port: bool,
                 out: _Collector) -> None:
    kinds = rule.l7
    if len(kinds) > 1:
        out.add(f"{path}.rules", f"has {' and '.join(kinds)} rules: set only one L7 protocol per toPorts entry")
    if section.is_ingress and "dns" in kinds:
        out.add(f"{path}.rules.dns", "DNS rules are not allowed on ingress: DNS proxy rules are egress only")
    if host and section.is_ingress:
        out.add(f"{path}.rules", "host policies (nodeSelector) do not support L7 rules on ingress")
    elif host and ("http" in kinds or "kafka" in kinds):
        out.add(f"{path}.rules", "host policies (nodeSelector) support only DNS L7 rules on egress, not HTTP "
                                 "or Kafka")
    if zero_port:
        out.add(f"{path}.rules", "L7 rules cannot be used when a port is 0: list the ports")
    if "dns" in kinds:
        if not rule.ports:
            out.add(f"{path}.ports", "DNS rules need their port: list port 53")
        return
    for index, port in enumerate(rule.ports):
        if port.protocol != "TCP":
            out.add(f"{path}.ports[{index}].protocol",
                    f"L7 rules can only apply to TCP (not {port.protocol}), except DNS rules: set protocol TCP")


def _validate_icmps(types: tuple[ICMPType, ...], path: str, out: _Collector) -> None:
    entries: dict[int, list[ICMPType]] = {}
    for icmp in types:
        entries.setdefault(icmp.entry, []).append(icmp)
    for entry, fields in entries.items():
        if len(fields) > MAX_ICMP_FIELDS:
            out.add(f"{path}[{entry}].fields", f"has {len(fields)} entries: Cilium accepts at most "
                                               f"{MAX_ICMP_FIELDS} per icmps entry")
        for index, icmp in enumerate(fields):
            _validate_icmp(icmp, f"{path}[{entry}].fields[{index}]", out)


def _validate_icmp(icmp: ICMPType, where: str, out: _Collector) -> None:
    if icmp.family not in ICMP_FAMILIES:
        out.add(f"{where}.family", f"unsupported value {icmp.family!r}: Cilium accepts IPv4 or IPv6")
        return
    problem = icmp_type_problem(icmp.family, icmp.type)
    if problem:
        out.add(f"{where}.type", problem)


def _validate_selector(selector: LabelSelector, path: str, out: _Collector, *, sources: bool = True) -> None:
    """Keys with an optional `source:` prefix (`k8s:app`), unless `sources` is False (plain keys)."""
    key_problem = cilium_label_key_problem if sources else label_key_problem
    for key, value in selector.match_labels.items():
        problem = key_problem(key)
        if problem:
            out.add(f"{path}.matchLabels", f"invalid label key {key!r}: {problem}")
        problem = label_value_problem(value)
        if problem:
            out.add(f"{path}.matchLabels.{key}", f"invalid label value {value!r}: {problem}")
    for index, req in enumerate(selector.match_expressions):
        where = f"{path}.matchExpressions[{index}]"
        problem = key_problem(req.key)
        if problem:
            out.add(f"{where}.key", f"invalid label key {req.key!r}: {problem}")
        if req.operator not in OPERATORS:
            out.add(f"{where}.operator", f"unsupported value {req.operator!r}: Cilium accepts "
                                         f"{', '.join(OPERATORS)} (case-sensitive)")
        elif req.operator in ("In", "NotIn") and not req.values:
            out.add(f"{where}.values", f"must be specified when `operator` is {req.operator!r}")
        elif req.operator in ("Exists", "DoesNotExist") and req.values:
            out.add(f"{where}.values", f"may not be specified when `operator` is {req.operator!r}")
        for value_index, value in enumerate(req.values):
            problem = label_value_problem(value)
            if problem:
                out.add(f"{where}.values[{value_index}]", f"invalid label value {value!r}: {problem}")
