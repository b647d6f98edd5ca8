"""Label selector and ipBlock matching, plus the short human descriptions used in explanations.

Pure functions over the model types.  CIDR strings are parsed once and memoised (a bounded
cache of immutable `ipaddress` networks), so matching an ipBlock costs a few integer compares.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping

from auditor.model.k8s import IPBlock, LabelSelector, LabelSelectorRequirement, Peer, PolicyPort

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""The label the API server sets on every Namespace (immutable, equal to its name)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def requirement_matches(req: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    """One matchExpressions entry against a label set (operators as in apimachinery)."""
    op = req.operator
    if op == "In":
        return req.key in labels and labels[req.key] in req.values
    if op == "NotIn":
        return req.key not in labels or labels[req.key] not in req.values
    if op == "Exists":
        return req.key in labels
    if op == "DoesNotExist":
        return req.key not in labels
    return False


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """True when every matchLabels pair and every matchExpressions entry holds; empty matches all."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    return all(requirement_matches(req, labels) for req in selector.match_expressions)


def namespace_labels(name: str, labels: Mapping[str, str]) -> Mapping[str, str]:
    """A namespace's labels including `kubernetes.io/metadata.name`, which the API server always sets."""
    if labels.get(NAMESPACE_NAME_LABEL) == name:
        return labels
    merged = dict(labels)
    merged[NAMESPACE_NAME_LABEL] = name
    return merged


def _sloppy_ipv4(text: str) -> str | None:
    """Dotted-quad IPv4 as Go's legacy parser reads it (leading zeros allowed, decimal), normalised."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    values = [int(p) for p in parts]
    if any(v > 255 for v in values):
        return None
    return ".".join(str(v) for v in values)


@functools.lru_cache(maxsize=65536)
def parse_network(cidr: str) -> Network | None:
    """A CIDR as the API server's `ParseCIDRSloppy` reads it, None if it would reject it.

    `address/prefix` with a decimal prefix length (leading zeros allowed), host bits allowed, IPv4
    octets with leading zeros read as decimal.  No netmask form (`/255.0.0.0`), no surrounding
    whitespace, no IPv6 zone: Go's parser rejects those, so a policy using them is invalid.
    """
    address, slash, prefix = cidr.partition("/")
    if not slash or not (prefix.isascii() and prefix.isdigit()) or "%" in address:
        return None
    if ":" not in address:
        normalised = _sloppy_ipv4(address)
        if normalised is None:
            return None
        address = normalised
    try:
        return ipaddress.ip_network(f"{address}/{int(prefix)}", strict=False)
    except ValueError:
        return None


@functools.lru_cache(maxsize=65536)
def parse_address(ip: str) -> Address | None:
    """An IP address, None when the string is not one."""
    try:
        return ipaddress.ip_address(ip.strip())
    except ValueError:
        return None


def is_address(text: str) -> bool:
    """True when `text` is an IPv4 or IPv6 address."""
    return parse_address(text) is not None


def _wire_address(ip: str) -> Address | None:
    """The address as it is on the wire: an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is IPv4 a.b.c.d."""
    address = parse_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_in_block(ip: str, block: IPBlock) -> bool:
    """True when `ip` lies in `cidr` and in none of the `except` ranges (families must agree).

    IPv4-mapped IPv6 addresses count as their IPv4 address (as Go's `IPNet.Contains` does).
    """
    address = _wire_address(ip)
    network = parse_network(block.cidr)
    if address is None or network is None or address.version != network.version:
        return False
    if address not in network:
        return False
    for excluded in block.except_:
        ex = parse_network(excluded)
        if ex is not None and ex.version == address.version and address in ex:
            return False
    return True


def describe_requirement(req: LabelSelectorRequirement) -> str:
    values = ",".join(req.values)
    if req.operator == "In":
        return f"{req.key} in ({values})"
    if req.operator == "NotIn":
        return f"{req.key} notin ({values})"
    if req.operator == "Exists":
        return req.key
    if req.operator == "DoesNotExist":
        return f"!{req.key}"
    return f"{req.key} {req.operator} ({values})"


def describe_selector(selector: LabelSelector) -> str:
    """kubectl-style selector text: `app=web,tier in (a,b)`; empty selectors read `<all>`."""
    if selector.is_empty:
        return "<all>"
    parts = [f"{k}={v}" for k, v in sorted(selector.match_labels.items())]
    parts.extend(describe_requirement(r) for r in selector.match_expressions)
    return ",".join(parts)


def describe_ip_block(block: IPBlock) -> str:
    if not block.except_:
        return block.cidr
    return f"{block.cidr} except {', '.join(block.except_)}"


def describe_peer(peer: Peer, policy_namespace: str) -> str:
    """One peer in words: `app=web`, `pods app=web in namespaces team=a`, `10.0.0.0/8 except ...`."""
    if peer.ip_block is not None:
        return describe_ip_block(peer.ip_block)
    pods = peer.pod_selector
    namespaces = peer.namespace_selector
    if namespaces is None:
        text = describe_selector(pods) if pods is not None else "<all>"
        return "any pod" if text == "<all>" else text
    ns_text = "any namespace" if namespaces.is_empty else f"namespaces {describe_selector(namespaces)}"
    if pods is None or pods.is_empty:
        return f"all pods in {ns_text}"
    return f"pods {describe_selector(pods)} in {ns_text}"


def describe_port(port: PolicyPort) -> str:
    """`8080`, `53/UDP`, `8000-8100`, `port http`, `any TCP port`."""
    suffix = "" if port.protocol == "TCP" else f"/{port.protocol}"
    if port.port is None:
        return f"any {port.protocol} port"
    if isinstance(port.port, str):
        return f"port {port.port}{suffix}"
    if port.end_port is not None:
        return f"{port.port}-{port.end_port}{suffix}"
    return f"{port.port}{suffix}"


def describe_ports(ports: tuple[PolicyPort, ...]) -> str:
    """A rule's ports: `any port`, `8080, 9090`, or with protocols when they are mixed (`53/UDP, 53/TCP`)."""
    if not ports:
        return "any port"
    if all(p.protocol == "TCP" for p in ports):
        return ", ".join(describe_port(p) for p in ports)
    return ", ".join(describe_port(p) if p.protocol != "TCP" or p.port is None else f"{describe_port(p)}/TCP"
                     for p in ports)


def selector_keys(selector: LabelSelector) -> tuple[str, ...]:
    """The label keys a selector looks at, in order of appearance, without duplicates."""
    keys = list(selector.match_labels)
    keys.extend(r.key for r in selector.match_expressions)
    return tuple(dict.fromkeys(keys))
