"""Text rendering of `auditor explain`, in the spirit of `kubectl describe`, for one connection."""

from __future__ import annotations

from auditor.app.explain import Explanation, subject_text
from auditor.model.decision import Enforcement, PodSubject, RuleMatch, SideDecision, Subject
from auditor.model.k8s import PolicyDirection
from auditor.policy.selectors import describe_peer, describe_ports
from auditor.policy.state import ClusterState

_ENFORCEMENT_NOTE = {
    Enforcement.NOT_A_POD: "not a pod: NetworkPolicy does not apply on this side",
    Enforcement.HOST_NETWORK: "hostNetwork pod: NetworkPolicy does not apply",
    Enforcement.NODE_TRAFFIC: "traffic between a pod and its own node is always allowed",
    Enforcement.SELF: "a pod cannot block access to itself",
}


def _endpoint(subject: Subject) -> str:
    text = subject_text(subject)
    if isinstance(subject, PodSubject):
        ip = subject.ip or (subject.pod.ips[0] if subject.pod.ips else "")
        return f"{text} ({ip})" if ip else text
    if subject.ip and subject.ip != text:
        return f"{text} ({subject.ip})"
    return text


def _rule_text(state: ClusterState, match: RuleMatch, direction: PolicyDirection) -> str:
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


def _side(state: ClusterState, title: str, side: SideDecision, subject: Subject,
          direction: PolicyDirection) -> list[str]:
    lines = [f"{direction.value} of the {title} {_endpoint(subject)}:"]
    note = _ENFORCEMENT_NOTE.get(side.enforcement)
    if note:
        return [*lines, f"  Verdict:       allowed ({note})", ""]
    if not side.isolated:
        return [*lines, "  Isolated:      no (no NetworkPolicy selects it for this direction)",
                "  Verdict:       allowed", ""]
    lines.append("  Isolated:      yes")
    lines.append("  Selected by:   " + ", ".join(str(p) for p in side.selecting))
    if side.allowed:
        lines.append("  Verdict:       allowed")
        lines.append("  Allowed by:    " + _rule_text(state, side.allowed_by[0], direction))
        lines.extend("                 " + _rule_text(state, m, direction) for m in side.allowed_by[1:])
    else:
        lines.append("  Verdict:       DENIED")
        lines.append("  Isolated by:   " + ", ".join(str(p) for p in side.isolated_by))
        miss = side.closest_miss
        lines.append("  Closest miss:  " + (miss.message if miss else "none (the policies allow nothing here)"))
    return [*lines, ""]


def _invalid_note(state: ClusterState, item: Explanation) -> list[str]:
    namespaces = {s.pod.namespace for s in (item.source, item.destination) if isinstance(s, PodSubject)}
    skipped = [e for e in state.invalid if e.ref.split(" ", 1)[-1].split("/")[0] in namespaces]
    if not skipped:
        return []
    return ["Skipped invalid policies (the API server would reject them):",
            *(f"  {e}" for e in skipped), ""]


def explanation_text(state: ClusterState, item: Explanation, header: str = "") -> str:
    d = item.decision
    if d.allowed:
        verdict = "ALLOWED"
    else:
        denied = [name for name, side in (("egress", d.egress), ("ingress", d.ingress)) if not side.allowed]
        verdict = f"DENIED by {' and '.join(denied)}"
    lines = [
        f"Connection:  {_endpoint(item.source)} -> {_endpoint(item.destination)} port {d.port}/{d.protocol}",
        f"Verdict:     {verdict}",
    ]
    if header:
        lines.append(f"State:       {header}")
    lines.append("")
    lines += _side(state, "source", d.egress, item.source, PolicyDirection.EGRESS)
    lines += _side(state, "destination", d.ingress, item.destination, PolicyDirection.INGRESS)
    lines += _invalid_note(state, item)
    return "\n".join(lines).rstrip() + "\n"
