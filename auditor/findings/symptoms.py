"""Findings about what a drop breaks: a pod's DNS, and a pod's kubelet probes."""

from __future__ import annotations

from auditor.findings.probes import describe_probe, probes_on_port, readiness_change
from auditor.findings.resolve import Resolved
from auditor.findings.runtime import Judged, endpoint_text, make_finding, rule_text
from auditor.findings.severity import HEALTH_CHECK_NOW_UNREADY
from auditor.model.decision import NodeSubject, RuleMatch
from auditor.model.findings import Finding, FindingKind
from auditor.model.flows import Direction, Flow, L7Type
from auditor.model.k8s import Pod


def dns_denied_by_policy(judged: Judged, query: str) -> Finding | None:
    """dns-denied for a policy drop of a DNS packet or L7 DNS request; None when the client is no pod."""
    flow = judged.flow
    if judged.src.pod_subject is None:
        return None
    policies = tuple(str(p) for p in judged.side_decision.isolated_by)
    how = "an L7 DNS rule" if flow.l7 is not None else f"the {judged.side.value} policy"
    where = f" ({', '.join(policies)})" if policies else ""
    asked = f" for {query}" if query else ""
    if judged.side is Direction.INGRESS and flow.l7 is None:
        # The DNS server's own ingress policy dropped it: the fix belongs there, not in the client's egress.
        fix = (f"allow ingress from {judged.src.peer_workload} on UDP and TCP 53 in the policies of "
               f"{judged.dst.peer_workload or judged.dst.peer}")
    else:
        fix = "allow egress to kube-dns on UDP and TCP 53 for this workload"
    what = endpoint_text(flow, judged.src, judged.dst)
    message = f"DNS lookup{asked} {what} was dropped by {how}{where}; {fix}."
    details = (("query", query),) if query else ()
    direction = Direction.EGRESS if flow.direction is Direction.UNKNOWN else flow.direction
    return make_finding(FindingKind.DNS_DENIED, flow, judged.src, judged.dst, direction, message,
                        policies=policies, details=(*details, ("cause", "policy-drop")))


def dns_refused(flow: Flow, client: Resolved, server: Resolved, query: str,
                rules: tuple[RuleMatch, ...] = ()) -> Finding | None:
    """dns-denied for a REFUSED answer from Cilium's DNS proxy (the client is the response's destination).

    `rules` are the client's egress rules with DNS proxy (`rules.dns`) rules that admit the lookup's
    connection: the refusal is theirs, so the finding names them."""
    if client.pod_subject is None or flow.l7 is None or flow.l7.type is not L7Type.RESPONSE:
        return None
    asked = f" for {query}" if query else ""
    where = (f"the dns rules of {', '.join(rule_text(m) for m in rules)}" if rules
             else "the CiliumNetworkPolicy dns/toFQDNs rule for this workload")
    message = (
        f"DNS lookup{asked} from {client.peer} to {server.peer or flow.source.ip} was answered REFUSED by "
        f"Cilium's DNS proxy; allow the name in {where}."
    )
    details = (("query", query),) if query else ()
    if rules:
        details = (*details, ("dns-rule", ", ".join(rule_text(m) for m in rules)))
    policies = tuple(dict.fromkeys(str(m.policy) for m in rules))
    return make_finding(FindingKind.DNS_DENIED, flow, client, server, Direction.EGRESS, message,
                        details=(*details, ("cause", "proxy-refused")), port=flow.source.port,
                        policies=policies)


def health_check_blocked(judged: Judged, latest: Pod | None) -> Finding | None:
    """health-check-blocked when the kubelet's probe was dropped: a flow from the pod's node (reserved:host,
    remote-node, a node IP) to a port one of the destination pod's probes uses.  High severity, critical
    once the pod lost readiness.

    A drop from any other source to that port is application traffic that happens to share the probe's
    port (frontend -> api:8080): an ordinary policy finding, not a health check.
    """
    flow = judged.flow
    target = judged.dst.pod_subject
    if target is None or not isinstance(judged.src.subject, NodeSubject):
        return None
    port = flow.destination.port
    probes = probes_on_port(target.pod, port, flow.protocol.value)
    if not probes:
        return None
    names = " and ".join(describe_probe(probe, port) for probe in probes)
    readiness, went_unready = readiness_change(target.pod, latest)
    policies = tuple(str(p) for p in judged.side_decision.isolated_by)
    by = f" by {', '.join(policies)}" if policies else ""
    message = (
        f"The {names} of {target.pod.key} is blocked: traffic from {judged.src.peer} to port {port} was "
        f"dropped{by} and {readiness}; allow ingress from the node to port {port}."
    )
    return make_finding(
        FindingKind.HEALTH_CHECK_BLOCKED, flow, judged.dst, judged.src, Direction.INGRESS, message,
        policies=policies, details=(("probe", names), ("readiness", readiness), ("from-node", "true")),
        severity=HEALTH_CHECK_NOW_UNREADY if went_unready else None,
    )
