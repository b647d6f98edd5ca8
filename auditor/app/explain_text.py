"""Text rendering of `auditor explain`, in the spirit of `kubectl describe`, for one connection."""

from __future__ import annotations

from auditor.app.explain import ICMP_PROTOCOLS, Explanation, undecided
from auditor.app.explain_endpoints import identity_text, subject_text
from auditor.model.cilium import CiliumRule, RuleSection
from auditor.model.decision import (
    Decision,
    Enforcement,
    NodeSubject,
    PodSubject,
    RuleMatch,
    SideDecision,
    Subject,
)
from auditor.model.k8s import PolicyDirection
from auditor.policy.selectors import describe_peer, describe_ports
from auditor.policy.state import ClusterState

_ENFORCEMENT_NOTE = {
    Enforcement.HOST_NETWORK: "hostNetwork pod: it has its node's identity, pod policies do not apply",
    Enforcement.NODE_TRAFFIC: "traffic between a pod and its own node is always allowed",
    Enforcement.SELF: "a pod cannot block access to itself",
    Enforcement.NOT_ENFORCED: "policy enforcement is never: Cilium enforces no policy",
}
_L7_NOTE = "; L7 {}: Cilium's proxy then judges each request"
_FQDN_HINT = 'give the names it was looked up by: {"ip": ..., "names": [...]}'


def _endpoint(subject: Subject) -> str:
    text = subject_text(subject)
    extra = identity_text(subject)
    if isinstance(subject, PodSubject):
        ip = subject.ip or (subject.pod.ips[0] if subject.pod.ips else "")
        return f"{text} ({ip})" if ip else text
    shown = [subject.ip] if subject.ip and subject.ip != text else []
    shown += [extra] if extra else []
    return f"{text} ({'; '.join(shown)})" if shown else text


def _not_a_pod(subject: Subject) -> str:
    if isinstance(subject, NodeSubject):
        return "a node: only Cilium host policies (host firewall, --enforce-node-traffic) apply, none does here"
    return "not a pod: policies do not apply on this side"


def _knp_rule_text(state: ClusterState, match: RuleMatch, direction: PolicyDirection) -> str:
    base = f"{match.policy} rule {match.rule_index}"
    policy = state.policy(match.policy.namespace, match.policy.name)
    rules = (policy.ingress if direction is PolicyDirection.INGRESS else policy.egress) if policy else None
    if not rules or match.rule_index >= len(rules):
        return base
    rule = rules[match.rule_index]
    ports = describe_ports(rule.ports)
    if match.peer_index is None:
        return f"{base} (everyone, {ports})"
    peer = describe_peer(rule.peers[match.peer_index], match.policy.namespace)
    return f"{base} (peer {match.peer_index}: {peer}; {ports})"


def cilium_rule(state: ClusterState, match: RuleMatch) -> CiliumRule | None:
    """The rule a Cilium RuleMatch names, as written in its policy (None when not in the state)."""
    compiled = state.cilium.policies.get((match.policy.kind, match.policy.namespace, match.policy.name))
    if compiled is None:
        return None
    policy = compiled.policy
    for index, spec in enumerate(policy.specs):
        if policy.spec_path(index) == (match.spec or "spec"):
            rules = spec.rules(RuleSection(match.section))
            return rules[match.rule_index] if match.rule_index < len(rules) else None
    return None


def cilium_ports(rule: CiliumRule | None) -> str:
    """A Cilium rule's ports and ICMP types in short: `80/TCP, 8080-8090/ANY`, `ICMPv6 type EchoRequest`."""
    if rule is None:
        return "ports unknown"
    parts: list[str] = []
    for port_rule in rule.to_ports:
        for port in port_rule.ports:
            number = port.port.strip() or "0"
            span = f"{number}-{port.end_port}" if port.end_port and number.isdigit() and \
                port.end_port > int(number) else number
            parts.append(f"all ports/{port.protocol}" if number == "0" else f"{span}/{port.protocol}")
    parts += [f"{'ICMPv6' if t.family == 'IPv6' else 'ICMP'} type {t.type}" for t in rule.icmps]
    return ", ".join(parts) if parts else "all ports and protocols"


def rule_text(state: ClusterState, match: RuleMatch, direction: PolicyDirection) -> str:
    """A rule that allowed or denied: policy (with its kind when Cilium's), rule path, peer and ports."""
    if not match.policy.is_cilium:
        return _knp_rule_text(state, match, direction)
    ports = cilium_ports(cilium_rule(state, match))
    l7 = _L7_NOTE.format(match.l7) if match.l7 else ""
    return f"{match.policy} {match.path} ({match.peer or 'any peer'}; {ports}{l7})"


def _listed(label: str, items: list[str]) -> list[str]:
    return [f"  {label:<14} {items[0]}", *(f"  {'':<14} {item}" for item in items[1:])]


def _isolation(side: SideDecision, mode: str) -> list[str]:
    if not side.isolated:
        lines = ["  Isolated:      no (no policy puts it in default deny for this direction)"]
    elif mode == "always" and not side.isolated_by and not side.selecting:
        lines = ["  Isolated:      yes (policy enforcement always: every endpoint is in default deny)"]
    else:
        lines = ["  Isolated:      yes"]
    if side.selecting:
        lines.append("  Selected by:   " + ", ".join(str(p) for p in side.selecting))
    return lines


def _denied(state: ClusterState, side: SideDecision, subject: Subject, direction: PolicyDirection) -> list[str]:
    if side.denied_by:
        return ["  Verdict:       DENIED (a deny rule wins over every allow)",
                *_listed("Denied by:", [rule_text(state, m, direction) for m in side.denied_by])]
    lines = ["  Verdict:       UNDECIDED" if side.undecided else "  Verdict:       DENIED"]
    if side.isolated_by:
        lines.append("  Isolated by:   " + ", ".join(str(p) for p in side.isolated_by))
    if side.undecided == "fqdn":
        return [*lines, f"  Undecided:     only a toFQDNs rule could allow it, and the DNS name of "
                        f"{subject_text(subject)} is unknown; {_FQDN_HINT}"]
    miss = side.closest_miss
    if miss is not None:
        note = miss.message
    elif any(p.is_cilium for p in side.isolated_by):
        note = "none found (the closest-miss analysis covers NetworkPolicy rules only)"
    else:
        note = "none (the policies allow nothing here)"
    return [*lines, f"  Closest miss:  {note}"]


def _side(state: ClusterState, item: Explanation, side: SideDecision, direction: PolicyDirection) -> list[str]:
    ingress = direction is PolicyDirection.INGRESS
    own, other = (item.destination, item.source) if ingress else (item.source, item.destination)
    lines = [f"{direction.value} of the {'destination' if ingress else 'source'} {_endpoint(own)}:"]
    not_a_pod = side.enforcement is Enforcement.NOT_A_POD
    note = _not_a_pod(own) if not_a_pod else _ENFORCEMENT_NOTE.get(side.enforcement)
    if note:
        return [*lines, f"  Verdict:       allowed ({note})", ""]
    lines += _isolation(side, item.policy_enforcement)
    if side.allowed:
        lines.append("  Verdict:       allowed")
        if side.allowed_by:
            lines += _listed("Allowed by:", [rule_text(state, m, direction) for m in side.allowed_by])
    else:
        lines += _denied(state, side, other, direction)
    return [*lines, ""]


def _invalid_note(state: ClusterState, item: Explanation) -> list[str]:
    """Skipped policies that could have applied: those of the pods' namespaces, and every cluster-scoped
    one (CiliumClusterwideNetworkPolicy, CiliumCIDRGroup)."""
    namespaces = {s.pod.namespace for s in (item.source, item.destination) if isinstance(s, PodSubject)}
    skipped = []
    for error in state.invalid:
        key = error.ref.split(" ", 1)[-1]
        if "/" not in key or key.split("/")[0] in namespaces:
            skipped.append(error)
    if not skipped:
        return []
    return ["Skipped invalid policies (the API server or Cilium would reject them):",
            *(f"  {e}" for e in skipped), ""]


def _verdict(item: Explanation) -> str:
    d = item.decision
    if d.allowed:
        return "ALLOWED"
    sides = (("egress", d.egress), ("ingress", d.ingress))
    if undecided(d):
        pending = " and ".join(name for name, side in sides if side.undecided)
        return (f"UNDECIDED: {pending} cannot be decided without the DNS answer for "
                f"{subject_text(item.destination)} (toFQDNs)")
    return f"DENIED by {' and '.join(name for name, side in sides if not side.allowed and not side.undecided)}"


def _l4(d: Decision) -> str:
    return f"{d.protocol} type {d.port}" if d.protocol in ICMP_PROTOCOLS else f"port {d.port}/{d.protocol}"


def explanation_text(state: ClusterState, item: Explanation, header: str = "") -> str:
    d = item.decision
    lines = [
        f"Connection:  {_endpoint(item.source)} -> {_endpoint(item.destination)} {_l4(d)}",
        f"Verdict:     {_verdict(item)}",
    ]
    if header:
        lines.append(f"State:       {header}")
    if item.policy_enforcement != "default":
        lines.append(f"Enforcement: policy-enforcement={item.policy_enforcement}")
    lines.append("")
    lines += _side(state, item, d.egress, PolicyDirection.EGRESS)
    lines += _side(state, item, d.ingress, PolicyDirection.INGRESS)
    lines += _invalid_note(state, item)
    return "\n".join(lines).rstrip() + "\n"
