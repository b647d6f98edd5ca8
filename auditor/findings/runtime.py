"""Runtime findings: one judged flow -> the findings it supports, each with a one-sentence message.

The dataplane's verdict is compared with the engine's decision for the side that decided:
traffic_direction INGRESS -> the destination's ingress, EGRESS -> the source's egress,
UNKNOWN -> the overall decision (attributed to the first side that denies, else to the
destination when it is a pod).  dns-denied and health-check-blocked are emitted *alongside*
the policy-drop / unexpected-drop of the same flow, so per-policy drop counts stay complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from auditor.findings.dns import is_dns_port
from auditor.findings.resolve import Resolved
from auditor.findings.severity import UNPROTECTED_EGRESS, severity_of
from auditor.model.decision import KNP_KIND, Decision, Enforcement, PolicyId, RuleMatch, SideDecision
from auditor.model.findings import Finding, FindingKind, Severity
from auditor.model.flows import Direction, Flow, PolicyRef


@dataclass(frozen=True, slots=True)
class Judged:
    """One flow with both endpoints resolved and the engine's decision at flow time."""

    flow: Flow
    src: Resolved
    dst: Resolved
    decision: Decision
    side: Direction
    """INGRESS or EGRESS: the side whose decision is compared."""

    @property
    def side_decision(self) -> SideDecision:
        return self.decision.ingress if self.side is Direction.INGRESS else self.decision.egress

    @property
    def model_allows(self) -> bool:
        if self.flow.direction is Direction.UNKNOWN:
            return self.decision.allowed
        return self.side_decision.allowed

    @property
    def subject(self) -> Resolved:
        return self.dst if self.side is Direction.INGRESS else self.src

    @property
    def peer(self) -> Resolved:
        return self.src if self.side is Direction.INGRESS else self.dst


def deciding_side(flow: Flow, decision: Decision, dst_is_pod: bool) -> Direction:
    """The side whose decision the dataplane verdict reports (see the module docstring)."""
    if flow.direction is not Direction.UNKNOWN:
        return flow.direction
    if not decision.egress.allowed:
        return Direction.EGRESS
    if not decision.ingress.allowed or dst_is_pod:
        return Direction.INGRESS
    return Direction.EGRESS


_last_second: list[tuple[int, str]] = [(-1, "")]


def sample_of(flow: Flow) -> str:
    """The flow's uuid, else its time in RFC 3339 with nanoseconds."""
    if flow.uuid:
        return flow.uuid
    seconds, nanos = divmod(flow.time_ns, 1_000_000_000)
    cached_second, prefix = _last_second[0]
    if cached_second != seconds:  # flows come in time order: format each second once
        prefix = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _last_second[0] = (seconds, prefix)
    return f"{prefix}.{nanos:09d}Z"


def stamp(template: Finding, flow: Flow) -> Finding:
    """`template` (a finding of an identical earlier flow) as a finding of `flow`: its time and sample."""
    t = template
    return Finding(t.kind, t.severity, t.namespace, t.workload, t.message, t.pod, t.peer, t.peer_workload,
                   t.port, t.protocol, t.direction, t.policies, 1, flow.time_ns, flow.time_ns, sample_of(flow),
                   t.details)


def endpoint_text(flow: Flow, src: Resolved, dst: Resolved) -> str:
    """e.g. `shop/web-1 -> shop/api-2 on 8080/TCP`."""
    port = f"{flow.destination.port}/" if flow.destination.port else ""
    return f"{src.peer or flow.source.ip} -> {dst.peer or flow.destination.ip} on {port}{flow.protocol.value}"


def rule_text(match: RuleMatch) -> str:
    """`rule 0 (peer 1) of ns/name@3` for a NetworkPolicy rule; for Cilium's,
    `CiliumNetworkPolicy ns/name@3 egressDeny[0] (entity world)`."""
    if match.section:
        peer = f" ({match.peer})" if match.peer else ""
        return f"{match.policy} {match.path}{peer}"
    peer = f" (peer {match.peer_index})" if match.peer_index is not None else ""
    return f"rule {match.rule_index}{peer} of {match.policy}"


def make_finding(
    kind: FindingKind,
    flow: Flow,
    subject: Resolved,
    peer: Resolved,
    direction: Direction,
    message: str,
    *,
    policies: tuple[str, ...] = (),
    details: tuple[tuple[str, str], ...] = (),
    severity: Severity | None = None,
    port: int | None = None,
) -> Finding:
    """A single-flow finding about `subject` (the pod whose policy decided) and its `peer`."""
    pod = subject.pod_subject
    return Finding(
        kind=kind,
        severity=severity or severity_of(kind),
        namespace=pod.pod.namespace if pod else "",
        workload=pod.pod.workload_name if pod else subject.peer_workload,
        pod=pod.pod.name if pod else "",
        peer=peer.peer,
        peer_workload=peer.peer_workload,
        port=flow.destination.port if port is None else port,
        protocol=flow.protocol.value,
        direction=direction.value if direction is not Direction.UNKNOWN else "",
        policies=policies,
        count=1,
        first_seen_ns=flow.time_ns,
        last_seen_ns=flow.time_ns,
        sample_flow=sample_of(flow),
        message=message,
        details=details,
    )


def denied_finding(judged: Judged, *, audited: bool = False) -> Finding:
    """policy-drop when the model agrees with the drop, else unexpected-drop."""
    side = judged.side_decision
    flow = judged.flow
    what = endpoint_text(flow, judged.src, judged.dst)
    verb = "would have been dropped (audit mode)" if audited else "was dropped"
    details: list[tuple[str, str]] = [("verdict", flow.verdict.value)]
    if audited:
        details.append(("audit-mode", "true"))
    denied_by = flow.ingress_denied_by if judged.side is Direction.INGRESS else flow.egress_denied_by
    if denied_by:
        details.append(("denied-by", ", ".join(_ref_text(ref) for ref in denied_by)))
    if not judged.model_allows and side.denied_by:
        return _deny_rule_drop(judged, what, verb, details)
    l7 = [m for m in side.allowed_by if m.l7]
    if judged.model_allows and flow.l7 is not None and l7:
        return _l7_drop(judged, what, verb, details, l7)
    if not judged.model_allows:
        policies = tuple(str(p) for p in side.isolated_by)
        miss = side.closest_miss.message if side.closest_miss else "no allow rule comes close"
        details.append(("closest-miss", miss))
        owner = f" by {', '.join(policies)}" if policies else ""
        message = (
            f"{what} {verb} by policy: it is isolated for {judged.side.value}{owner} and no rule admits it "
            f"({miss}); add an allow rule if this traffic is expected."
        )
        return make_finding(FindingKind.POLICY_DROP, flow, judged.subject, judged.peer, judged.side, message,
                            policies=policies, details=tuple(details))
    policies = tuple(dict.fromkeys(str(m.policy) for m in side.allowed_by))
    message = f"{what} {verb} by Cilium although {_why_allowed(side, flow)}; {_drop_hint(flow, denied_by)}."
    if side.allowed_by:
        details.append(("should-allow", ", ".join(rule_text(m) for m in side.allowed_by)))
    return make_finding(FindingKind.UNEXPECTED_DROP, flow, judged.subject, judged.peer, judged.side, message,
                        policies=policies, details=tuple(details))


def _deny_rule_drop(judged: Judged, what: str, verb: str, details: list[tuple[str, str]]) -> Finding:
    """A drop by an explicit deny rule (Cilium's ingressDeny/egressDeny), which wins over every allow."""
    side = judged.side_decision
    policies = tuple(dict.fromkeys(str(m.policy) for m in side.denied_by))
    rules = ", ".join(rule_text(m) for m in side.denied_by)
    details.append(("deny-rule", rules))
    message = (f"{what} {verb} by policy: denied by {rules}; a deny rule wins over every allow, "
               "so narrow the deny rule if this traffic is expected.")
    return make_finding(FindingKind.POLICY_DROP, judged.flow, judged.subject, judged.peer, judged.side, message,
                        policies=policies, details=tuple(details))


def _l7_drop(judged: Judged, what: str, verb: str, details: list[tuple[str, str]],
             rules: list[RuleMatch]) -> Finding:
    """An L7 request Cilium's proxy refused: the connection is admitted only for the rule's L7 rules."""
    policies = tuple(dict.fromkeys(str(m.policy) for m in rules))
    text = ", ".join(f"{rule_text(m)} [{m.l7}]" for m in rules)
    details.append(("l7-rule", text))
    message = (f"{what} {verb} by Cilium's L7 proxy: {text} admits this connection only for the requests "
               "its L7 rules list; add the request to the rules if it is expected.")
    return make_finding(FindingKind.POLICY_DROP, judged.flow, judged.subject, judged.peer, judged.side, message,
                        policies=policies, details=tuple(details))


def _why_allowed(side: SideDecision, flow: Flow) -> str:
    if side.allowed_by:
        return f"{rule_text(side.allowed_by[0])} allows it"
    if side.enforcement is Enforcement.NODE_TRAFFIC:
        return "NetworkPolicy does not restrict traffic between a node and its pods (--enforce-node-traffic)"
    if side.enforcement in (Enforcement.NOT_A_POD, Enforcement.HOST_NETWORK):
        return "NetworkPolicy does not apply to this side"
    if side.enforcement is Enforcement.NOT_ENFORCED:
        return "policy enforcement is off (policy-enforcement=never)"
    return "no policy isolates this side"


def _drop_hint(flow: Flow, denied_by: tuple[PolicyRef, ...]) -> str:
    if denied_by:
        return (f"Cilium names {', '.join(_ref_text(r) for r in denied_by)}: check that the inventory holds "
                "that policy as the cluster has it")
    if flow.l7 is not None:
        return "an L7 rule Cilium's proxy enforces dropped it, and no L7 rule is known for this connection"
    return "check Cilium's policy (cilium-dbg policy get), the policies in force and the peer's identity"


def _ref_text(ref: PolicyRef) -> str:
    kind = f"{ref.kind} " if ref.kind else ""
    name = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
    return f"{kind}{name}" + (f"@{ref.revision}" if ref.revision else "")


def unexpected_allow(judged: Judged, is_known: Callable[[str, str, str], bool]) -> Finding:
    """A forwarded or delivered flow the model denies: an enforcement gap.

    `is_known(kind, namespace, name)` says whether the inventory has a policy Hubble names."""
    flow = judged.flow
    side = judged.side_decision
    policies = tuple(str(p) for p in (side.isolated_by or tuple(m.policy for m in side.denied_by)))
    allowed_by = flow.ingress_allowed_by if judged.side is Direction.INGRESS else flow.egress_allowed_by
    unknown = [r for r in allowed_by if not is_known(r.kind, r.namespace, r.name)]
    details: list[tuple[str, str]] = [("verdict", flow.verdict.value)]
    if allowed_by:
        details.append(("allowed-by", ", ".join(_ref_text(r) for r in allowed_by)))
    owner = f" by {', '.join(policies)}" if policies else ""
    why = (f"{', '.join(rule_text(m) for m in side.denied_by)} denies it" if side.denied_by
           else f"it is isolated for {judged.side.value}{owner} and no rule allows it")
    message = f"{endpoint_text(flow, judged.src, judged.dst)} was {flow.verdict.value.lower()} although {why}"
    if unknown:
        names = ", ".join(_ref_text(r) for r in unknown)
        details.append(("not-in-inventory", names))
        message += f"; Cilium allowed it by {names}, which the inventory does not hold, so review that policy."
    else:
        message += "; check Cilium's enforcement mode and the policies for this endpoint."
    return make_finding(FindingKind.UNEXPECTED_ALLOW, flow, judged.subject, judged.peer, judged.side, message,
                        policies=policies, details=tuple(details))


def unprotected_findings(judged: Judged) -> list[Finding]:
    """unprotected-pod for each pod side of an admitted flow that no policy selects in that direction."""
    found: list[Finding] = []
    flow = judged.flow
    what = endpoint_text(flow, judged.src, judged.dst)
    for direction, side, subject, peer in (
        (Direction.INGRESS, judged.decision.ingress, judged.dst, judged.src),
        (Direction.EGRESS, judged.decision.egress, judged.src, judged.dst),
    ):
        pod = subject.pod_subject
        if pod is None or side.isolated or side.enforcement is not Enforcement.ENFORCED:
            continue
        message = (
            f"{pod.pod.key} is selected by no NetworkPolicy for {direction.value} and carried {what}; "
            f"add a default-deny {direction.value} policy in {pod.pod.namespace} and allow only expected peers."
        )
        severity = UNPROTECTED_EGRESS if direction is Direction.EGRESS else None
        found.append(make_finding(FindingKind.UNPROTECTED_POD, flow, subject, peer, direction, message,
                                  severity=severity, details=(("exposure", peer.peer),)))
    return found


def is_dns_traffic(flow: Flow) -> bool:
    return is_dns_port(flow) or (flow.l7 is not None and flow.l7.dns is not None)


def _ref_key(kind: str, namespace: str, name: str) -> tuple[str, str, str]:
    return (kind or KNP_KIND, namespace, name)


def _pid_key(pid: PolicyId) -> tuple[str, str, str]:
    return _ref_key(pid.kind, pid.namespace, pid.name)


def attribution_mismatch(judged: Judged) -> Finding | None:
    """When the verdicts agree but Hubble's `*_allowed_by` / `*_denied_by` name a policy auditor's
    decision does not (an admitting rule's policy when allowed, a deny rule's when denied)."""
    flow = judged.flow
    side = judged.side_decision
    ingress = judged.side is Direction.INGRESS
    if side.allowed:
        refs = flow.ingress_allowed_by if ingress else flow.egress_allowed_by
        ours = tuple(m.policy for m in side.allowed_by)
    else:
        refs = flow.ingress_denied_by if ingress else flow.egress_denied_by
        ours = tuple(m.policy for m in side.denied_by)
    if not refs:
        return None
    known = {_pid_key(p) for p in ours}
    theirs = [r for r in refs if _ref_key(r.kind, r.namespace, r.name) not in known]
    if not theirs:
        return None
    cilium_text = ", ".join(_ref_text(r) for r in refs)
    ours_text = ", ".join(dict.fromkeys(str(p) for p in ours)) or "no policy rule"
    message = (f"{endpoint_text(flow, judged.src, judged.dst)}: Cilium attributes the {judged.side.value} "
               f"verdict to {cilium_text}, auditor to {ours_text}; the inventory may be out of step with the "
               "cluster or the policy may not be what it seems.")
    details = (("cilium", cilium_text), ("auditor", ours_text))
    return make_finding(FindingKind.ATTRIBUTION_MISMATCH, flow, judged.subject, judged.peer, judged.side,
                        message, policies=tuple(dict.fromkeys(str(p) for p in ours)), details=details)
