"""Policies as the report prints them: selectors and rules of NetworkPolicies and of Cilium's kinds."""

from __future__ import annotations

from auditor.model.cilium import CiliumNetworkPolicy, RuleSection
from auditor.model.k8s import LabelSelector, Peer, PolicyDirection, Rule
from auditor.policy.cilium_compile import ANY_PROTOCOLS, CPort, CRule

ALL_PODS = "(all pods)"
ALL_NODES = "(all nodes)"


def selector_text(selector: LabelSelector) -> str:
    """A label selector the way kubectl's -l flag spells it; ALL_PODS for an empty one."""
    if selector.is_empty:
        return ALL_PODS
    parts = [f"{key}={value}" for key, value in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        values = ",".join(req.values)
        if req.operator == "Exists":
            parts.append(req.key)
        elif req.operator == "DoesNotExist":
            parts.append(f"!{req.key}")
        else:
            parts.append(f"{req.key} {req.operator.lower()} ({values})")
    return ",".join(parts)


def _peer_text(peer: Peer) -> str:
    if peer.ip_block is not None:
        excepts = f" except {', '.join(peer.ip_block.except_)}" if peer.ip_block.except_ else ""
        return f"{peer.ip_block.cidr}{excepts}"
    parts = []
    if peer.namespace_selector is not None:
        ns = selector_text(peer.namespace_selector)
        parts.append("all namespaces" if ns == ALL_PODS else f"namespaces {ns}")
    if peer.pod_selector is not None:
        parts.append(f"pods {selector_text(peer.pod_selector)}")
    return " & ".join(parts) if parts else "anyone"


def rule_text(rule: Rule, direction: PolicyDirection) -> str:
    """e.g. "from pods app=web on TCP/8080"; "to anyone on any port"."""
    word = "from" if direction is PolicyDirection.INGRESS else "to"
    peers = "; ".join(_peer_text(p) for p in rule.peers) if rule.peers else "anyone"
    ports = []
    for port in rule.ports:
        number = "all" if port.port is None else str(port.port)
        ports.append(f"{port.protocol}/{number}" + (f"-{port.end_port}" if port.end_port else ""))
    return f"{word} {peers} on {', '.join(ports) if ports else 'any port'}"


def cilium_subject_text(policy: CiliumNetworkPolicy) -> str:
    """The specs' endpointSelectors (ALL_PODS for `{}`) and nodeSelectors (`nodes ...`), `; `-joined."""
    texts: list[str] = []
    for spec in policy.specs:
        if spec.node_selector is not None:
            nodes = spec.node_selector
            texts.append(ALL_NODES if nodes.is_empty else f"nodes {selector_text(nodes)}")
        elif spec.endpoint_selector is not None:
            texts.append(selector_text(spec.endpoint_selector))
    return "; ".join(dict.fromkeys(texts))


_WORDS = {RuleSection.INGRESS: "from", RuleSection.INGRESS_DENY: "deny from", RuleSection.EGRESS: "to",
          RuleSection.EGRESS_DENY: "deny to"}


def _port_text(port: CPort) -> str:
    protocol = "ANY" if port.protocols == ANY_PROTOCOLS else "/".join(sorted(port.protocols))
    if port.name:
        number = port.name
    elif (port.low, port.high) == (0, 65535):
        number = "all"
    else:
        number = str(port.low) if port.low == port.high else f"{port.low}-{port.high}"
    return f"{protocol}/{number}" + (f" ({port.l7})" if port.l7 else "")


def cilium_rule_text(rule: CRule) -> str:
    """e.g. "from endpoints app=web on TCP/8080 (http)", "deny to entity world on any port",
    "from any peer on TCP/80" (a ports-only rule), "from nobody"; peers in Cilium's words."""
    if rule.peers == ():
        return f"{_WORDS[rule.section]} nobody"  # `ingress: [{}]`, or an explicitly empty peer list
    peers = "any peer" if rule.peers is None else "; ".join(dict.fromkeys(p.text for p in rule.peers))
    if rule.ports is None:
        ports = "any port"
    else:
        icmps = [f"{protocol}/{number}" for protocol, number in sorted(rule.icmps)]
        parts = [_port_text(p) for p in rule.ports] + icmps
        ports = ", ".join(parts) or "no port"
    return f"{_WORDS[rule.section]} {peers} on {ports}"
