"""What a flow means for correlation: its class, from its event type, verdict and observation point.

A pure function of the model's Flow, in the model so that every layer that needs it (the
correlator, and the Hubble edge's light conversion, which classifies a flow once and keeps the class
on it as `Flow.flow_class`) reads the one definition without an edge importing the core.
"""

from __future__ import annotations

import enum

from auditor.model.flows import EventType, Flow, FlowType, L7Type, Protocol, Verdict

POLICY_DROP_REASONS = frozenset({"POLICY_DENIED", "POLICY_DENY"})
"""Drop reasons that are policy decisions (133 default deny, 181 explicit deny rule)."""

POLICY_DROP_SUB_TYPES = frozenset({133, 181})
"""The same reasons as a drop event's `event_type.sub_type` (a drop event's sub type is its reason code)."""

_ALLOWED_VERDICTS = frozenset({Verdict.FORWARDED, Verdict.REDIRECTED})
_NOT_NEW_TRACE_REASONS = frozenset({"REPLY", "ESTABLISHED", "RELATED"})


class FlowClass(enum.Enum):
    """What a flow means for correlation."""

    POLICY_DENIED = "policy-denied"
    """Dropped by policy (policy-verdict DROPPED, drop event POLICY_DENIED/POLICY_DENY, L7 drop)."""
    AUDITED = "audited"
    """Policy-verdict AUDIT: policy would drop it, audit mode let it through."""
    ALLOWED = "allowed"
    """A new connection admitted: policy-verdict FORWARDED/REDIRECTED, delivery, L7 request."""
    OTHER_DROP = "other-drop"
    """Dropped for a reason that is not policy (counted by reason, no finding)."""
    DNS_RESPONSE = "dns-response"
    """An L7 DNS response: not a decision, but REFUSED from the proxy is a DNS denial."""
    REPLY = "reply"
    """Reply or established traffic of an admitted connection: not a new decision."""
    NOT_DECISION = "not-decision"
    """Any other event (traces to stack/overlay/proxy, debug, capture, ...)."""


# Enum members as module globals: in Python 3.11 `Verdict.DROPPED` is a Python-level descriptor
# call (~0.1 us), and classify runs for every flow.
_EV_L7, _EV_DROP, _EV_POLICY_VERDICT, _EV_TRACE = (int(EventType.L7), int(EventType.DROP),
                                                   int(EventType.POLICY_VERDICT), int(EventType.TRACE))
_FT_L7 = FlowType.L7
_DROPPED, _AUDIT = Verdict.DROPPED, Verdict.AUDIT
_FORWARDED, _REDIRECTED = Verdict.FORWARDED, Verdict.REDIRECTED
_TCP = Protocol.TCP
_RESPONSE = L7Type.RESPONSE
_POLICY_DENIED, _AUDITED, _ALLOWED = FlowClass.POLICY_DENIED, FlowClass.AUDITED, FlowClass.ALLOWED
_OTHER_DROP, _DNS_RESPONSE = FlowClass.OTHER_DROP, FlowClass.DNS_RESPONSE
_REPLY, _NOT_DECISION = FlowClass.REPLY, FlowClass.NOT_DECISION


def classify(flow: Flow) -> FlowClass:
    """The `FlowClass` of one flow, from its event type, verdict and observation point."""
    if flow.event_type == _EV_L7 or flow.flow_type is _FT_L7:
        return _classify_l7(flow)
    if flow.verdict is _DROPPED:
        if flow.event_type == _EV_POLICY_VERDICT or flow.drop_reason in POLICY_DROP_REASONS:
            return _POLICY_DENIED
        if flow.event_type == _EV_DROP and flow.event_sub_type in POLICY_DROP_SUB_TYPES:
            return _POLICY_DENIED
        return _OTHER_DROP
    if flow.event_type == _EV_POLICY_VERDICT:
        if flow.verdict is _AUDIT:
            return _AUDITED
        if _allowed(flow.verdict):
            return _ALLOWED
        return _NOT_DECISION
    if flow.event_type == _EV_TRACE and _is_delivery(flow):
        if flow.is_reply or flow.trace_reason in _NOT_NEW_TRACE_REASONS or _established_tcp(flow):
            return _REPLY
        return _ALLOWED if _allowed(flow.verdict) else _NOT_DECISION
    return _NOT_DECISION


def _allowed(verdict: Verdict) -> bool:
    """`verdict in _ALLOWED_VERDICTS` by identity (a set lookup calls Enum.__hash__ in Python)."""
    return verdict is _FORWARDED or verdict is _REDIRECTED


def _established_tcp(flow: Flow) -> bool:
    """A TCP packet other than the opening SYN: the connection was admitted when it opened.

    Cilium keeps admitting packets of a connection it tracks, even after a policy narrowed, so
    judging them against the new policy would report gaps that are not there.
    """
    flags = flow.tcp_flags
    return flow.protocol is _TCP and bool(flags) and ("SYN" not in flags or "ACK" in flags)


def _is_delivery(flow: Flow) -> bool:
    if flow.trace_observation_point:
        return flow.trace_observation_point == "TO_ENDPOINT"
    return flow.event_sub_type == 0


def _classify_l7(flow: Flow) -> FlowClass:
    l7 = flow.l7
    if l7 is not None and l7.type is _RESPONSE:
        # A response answers a request the proxy admitted; whatever its verdict, it is no new
        # decision (Cilium's DNS proxy reports a denied query as a DROPPED *request*).
        return _DNS_RESPONSE if l7.dns is not None else _REPLY
    if flow.verdict is _DROPPED:
        return _POLICY_DENIED
    if flow.is_reply:
        return _REPLY
    if _allowed(flow.verdict):
        return _ALLOWED
    return _NOT_DECISION
