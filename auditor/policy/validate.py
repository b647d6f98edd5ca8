"""NetworkPolicy validation as the API server performs it (networking.k8s.io/v1).

Every error names the object (`NetworkPolicy ns/name`) and the JSON path of the field, so a
skipped policy can be traced to the line a person has to fix.  Nothing here raises.
"""

from __future__ import annotations

import re

from auditor.errors import InvalidObjectError
from auditor.model.k8s import IPBlock, LabelSelector, NetworkPolicy, Peer, PolicyPort, Rule
from auditor.policy.selectors import parse_network

PROTOCOLS = ("TCP", "UDP", "SCTP")

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class _Collector:
    """Accumulates errors for one object."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.errors: list[InvalidObjectError] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append(InvalidObjectError(self.ref, field, message))


def is_valid_port_name(name: str) -> str | None:
    """IANA_SVC_NAME rules (RFC 6335); returns the problem, or None when valid."""
    if not 1 <= len(name) <= 15:
        return "must be no more than 15 characters"
    if not _SVC_NAME.match(name):
        return "must contain only lowercase alphanumerics and '-', starting and ending with an alphanumeric"
    if "--" in name:
        return "must not contain consecutive hyphens"
    if not any(c.isalpha() for c in name):
        return "must contain at least one letter"
    return None


def label_key_problem(key: str) -> str | None:
    """Qualified-name rules for label keys: optional DNS-subdomain prefix, name of at most 63 chars."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return "prefix must be a DNS subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return "name part must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return "must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
    return None


def _validate_selector(sel: LabelSelector, path: str, out: _Collector) -> None:
    for key, value in sel.match_labels.items():
        problem = label_key_problem(key)
        if problem:
            out.add(f"{path}.matchLabels", f"invalid label key {key!r}: {problem}")
        problem = label_value_problem(value)
        if problem:
            out.add(f"{path}.matchLabels.{key}", f"invalid label value {value!r}: {problem}")
    for i, req in enumerate(sel.match_expressions):
        where = f"{path}.matchExpressions[{i}]"
        problem = label_key_problem(req.key)
        if problem:
            out.add(f"{where}.key", f"invalid label key {req.key!r}: {problem}")
        if req.operator in ("In", "NotIn"):
            if not req.values:
                out.add(f"{where}.values", f"must be specified when `operator` is {req.operator!r}")
            for j, value in enumerate(req.values):
                problem = label_value_problem(value)
                if problem:
                    out.add(f"{where}.values[{j}]", f"invalid label value {value!r}: {problem}")
        elif req.operator in ("Exists", "DoesNotExist"):
            if req.values:
                out.add(f"{where}.values", f"may not be specified when `operator` is {req.operator!r}")
        else:
            out.add(f"{where}.operator", f"not a valid selector operator {req.operator!r} (In, NotIn, "
                                         "Exists, DoesNotExist)")


def _validate_port(port: PolicyPort, path: str, out: _Collector) -> None:
    if port.protocol not in PROTOCOLS:
        out.add(f"{path}.protocol", f"unsupported value {port.protocol!r}: supported values: TCP, UDP, SCTP")
    if isinstance(port.port, int) and not 1 <= port.port <= 65535:
        out.add(f"{path}.port", f"{port.port} must be between 1 and 65535, inclusive")
    if isinstance(port.port, str):
        problem = is_valid_port_name(port.port)
        if problem:
            out.add(f"{path}.port", f"invalid port name {port.port!r}: {problem}")
    if port.end_port is None:
        return
    if port.port is None:
        out.add(f"{path}.endPort", "may not be specified when `port` is not specified")
    elif isinstance(port.port, str):
        out.add(f"{path}.endPort", "may not be specified when `port` is non-numeric")
    elif port.end_port < port.port:
        out.add(f"{path}.endPort", f"{port.end_port} must be greater than or equal to `port` ({port.port})")
    if not 1 <= port.end_port <= 65535:
        out.add(f"{path}.endPort", f"{port.end_port} must be between 1 and 65535, inclusive")


def _validate_ip_block(block: IPBlock, path: str, out: _Collector) -> None:
    if not block.cidr:
        out.add(f"{path}.cidr", "Required value")
        return
    network = parse_network(block.cidr)
    if network is None or "/" not in block.cidr:
        out.add(f"{path}.cidr", f"{block.cidr!r} is not a valid CIDR")
        return
    for i, text in enumerate(block.except_):
        excluded = parse_network(text)
        where = f"{path}.except[{i}]"
        if excluded is None or "/" not in text:
            out.add(where, f"{text!r} is not a valid CIDR")
        elif (excluded.version != network.version
              or excluded.network_address not in network
              or excluded.prefixlen <= network.prefixlen):
            out.add(where, f"{text!r} must be a strict subset of `cidr` {block.cidr!r}")


def _validate_peer(peer: Peer, path: str, out: _Collector) -> None:
    selectors = peer.pod_selector is not None or peer.namespace_selector is not None
    if peer.ip_block is not None and selectors:
        out.add(path, "may not specify more than 1 peer type (ipBlock with podSelector/namespaceSelector)")
    if peer.ip_block is None and not selectors:
        out.add(path, "must specify a peer")
    if peer.pod_selector is not None:
        _validate_selector(peer.pod_selector, f"{path}.podSelector", out)
    if peer.namespace_selector is not None:
        _validate_selector(peer.namespace_selector, f"{path}.namespaceSelector", out)
    if peer.ip_block is not None:
        _validate_ip_block(peer.ip_block, f"{path}.ipBlock", out)


def _validate_rules(rules: tuple[Rule, ...] | None, kind: str, peers_field: str, out: _Collector) -> None:
    for i, rule in enumerate(rules or ()):
        for j, port in enumerate(rule.ports):
            _validate_port(port, f"spec.{kind}[{i}].ports[{j}]", out)
        for j, peer in enumerate(rule.peers):
            _validate_peer(peer, f"spec.{kind}[{i}].{peers_field}[{j}]", out)


def _validate_meta(policy: NetworkPolicy, out: _Collector) -> None:
    if not policy.name or len(policy.name) > 253 or not _DNS1123_SUBDOMAIN.match(policy.name):
        out.add("metadata.name", f"{policy.name!r} must be a lowercase RFC 1123 subdomain")
    if not policy.namespace or len(policy.namespace) > 63 or not _DNS1123_LABEL.match(policy.namespace):
        out.add("metadata.namespace", f"{policy.namespace!r} must be a lowercase RFC 1123 label")


def validate_policy(policy: NetworkPolicy) -> list[InvalidObjectError]:
    """Every reason the API server would reject `policy`; an empty list means it is valid."""
    out = _Collector(f"NetworkPolicy {policy.namespace}/{policy.name}")
    _validate_meta(policy, out)
    _validate_selector(policy.pod_selector, "spec.podSelector", out)
    _validate_rules(policy.ingress, "ingress", "from", out)
    _validate_rules(policy.egress, "egress", "to", out)
    types = policy.policy_types
    if len(types) > 2:
        out.add("spec.policyTypes", "may not specify more than two policyTypes")
    return out.errors
