"""Protobuf -> model: the one place that knows Hubble's protobuf field names.

`flow_from_proto` is the hot path (every flow of every source goes through it), so it reads
plain attributes of the upb message (an unset sub-message reads as an empty default, no
`HasField` needed) and maps enum numbers through prebuilt tables.  Enum numbers a newer Cilium
sends that our protos do not know map to the model's UNKNOWN member (drop reasons keep their
number: `DROP_REASON_206`).
"""

from __future__ import annotations

import json
from typing import Any

from auditor._proto.flow import flow_pb2
from auditor._proto.observer import observer_pb2
from auditor._proto.relay import relay_pb2
from auditor.hubble import jsonpb
from auditor.hubble.fastmodel import positional_constructor, slot_filler
from auditor.model.events import FlowEvent, LostEvents, LostEventSource, NodeState, NodeStatus
from auditor.model.flowclass import FlowClass, classify
from auditor.model.flows import (
    Direction,
    DNSInfo,
    Endpoint,
    EventType,
    Flow,
    FlowType,
    HTTPInfo,
    L7Info,
    L7Type,
    PolicyRef,
    Protocol,
    Verdict,
    Workload,
)

GetFlowsResponse = observer_pb2.GetFlowsResponse
ProtoFlow = flow_pb2.Flow

_VERDICTS = {value.number: Verdict(value.name) for value in flow_pb2.Verdict.DESCRIPTOR.values}
_FLOW_TYPES = {value.number: FlowType(value.name) for value in flow_pb2.FlowType.DESCRIPTOR.values}
_L7_TYPES = {value.number: L7Type(value.name) for value in flow_pb2.L7FlowType.DESCRIPTOR.values}
_DIRECTIONS = {flow_pb2.INGRESS: Direction.INGRESS, flow_pb2.EGRESS: Direction.EGRESS}
_DROP_REASONS = {value.number: value.name for value in flow_pb2.DropReason.DESCRIPTOR.values}
_OBSERVATION_POINTS = {v.number: v.name for v in flow_pb2.TraceObservationPoint.DESCRIPTOR.values if v.number}
_TRACE_REASONS = {v.number: v.name for v in flow_pb2.TraceReason.DESCRIPTOR.values if v.number}
_IP_VERSIONS = {flow_pb2.IPv4: 4, flow_pb2.IPv6: 6}
_LOST_SOURCES = {
    flow_pb2.PERF_EVENT_RING_BUFFER: LostEventSource.PERF_EVENT_RING_BUFFER,
    flow_pb2.OBSERVER_EVENTS_QUEUE: LostEventSource.OBSERVER_EVENTS_QUEUE,
    flow_pb2.HUBBLE_RING_BUFFER: LostEventSource.HUBBLE_RING_BUFFER,
}
_NODE_STATES = {
    relay_pb2.NODE_CONNECTED: NodeState.CONNECTED,
    relay_pb2.NODE_UNAVAILABLE: NodeState.UNAVAILABLE,
    relay_pb2.NODE_GONE: NodeState.GONE,
    relay_pb2.NODE_ERROR: NodeState.ERROR,
}
_TCP_FLAG_NAMES = tuple(field.name for field in flow_pb2.TCPFlags.DESCRIPTOR.fields)
_NO_FLAGS: frozenset[str] = frozenset()
_PORTED = {"TCP": Protocol.TCP, "UDP": Protocol.UDP, "SCTP": Protocol.SCTP}
_PORTLESS = {"ICMPv4": Protocol.ICMPV4, "ICMPv6": Protocol.ICMPV6, "VRRP": Protocol.VRRP, "IGMP": Protocol.IGMP}
_WRAPPER_KEYS = frozenset({"flow", "node_status", "lost_events", "agent_event", "debug_event"})
_RESPONSE_ONLY_KEYS = frozenset({"node_name", "time", "nodeName"})
_JSON_TYPE_NAMES = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean",
                   type(None): "null"}
_UNKNOWN_VERDICT = Verdict.UNKNOWN
_UNKNOWN_FLOW_TYPE = FlowType.UNKNOWN
_UNKNOWN_DIRECTION = Direction.UNKNOWN
_POLICY_VERDICT_EVENT, _L7_EVENT = int(EventType.POLICY_VERDICT), int(EventType.L7)
_DROPPED, _L7_FLOW, _TCP = Verdict.DROPPED, FlowType.L7, Protocol.TCP


_new_endpoint = positional_constructor(Endpoint, (
    "ip", "port", "service", "names",
    "identity", "namespace", "pod_name", "labels", "workloads", "cluster_name", "endpoint_id",
))
_HEAD = (
    "time_ns", "verdict", "uuid", "node_name", "drop_reason", "event_type", "event_sub_type", "flow_type",
    "direction", "is_reply", "protocol", "tcp_flags", "icmp_type", "icmp_code", "trace_observation_point",
    "trace_reason",
)
"""The fields `_convert` reads first: everything `classify` and the correlator's counters look at."""
_REST = (
    "source", "destination", "ip_version", "l7", "policy_match_type",
    "egress_allowed_by", "ingress_allowed_by", "egress_denied_by", "ingress_denied_by", "summary",
)
"""The other fields: endpoints, IP version, L7, policies, summary."""
_new_flow = positional_constructor(Flow, (*_REST, *_HEAD))
_fill_rest = slot_filler(Flow, _REST)
_set_class = slot_filler(Flow, ("flow_class",))
_NO_ENDPOINT = Endpoint()
_new_light_flow = positional_constructor(Flow, ("source", "destination", *_HEAD))
"""Builders taking these fields positionally, in this order (see auditor.hubble.fastmodel)."""


def timestamp_ns(ts: Any) -> int:
    """A google.protobuf.Timestamp as integer ns since the epoch (0 when unset)."""
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def drop_reason_name(number: int) -> str:
    """DropReason enum name for `number`; unknown numbers read `DROP_REASON_<n>`, 0 reads ""."""
    if not number:
        return ""
    return _DROP_REASONS.get(number) or f"DROP_REASON_{number}"


EndpointFacts = tuple[int, str, str, tuple[str, ...], tuple[Workload, ...], str, int]
"""What an Endpoint message says about a pod: identity, namespace, pod, labels, workloads, cluster, ID."""


class _EndpointFactsCache:
    """EndpointFacts by the Endpoint message's exact wire bytes.

    The same pods appear in flow after flow; turning labels and workloads into tuples costs
    several times more than serializing the sub-message for a key, and cached tuples are shared
    by every Endpoint built from them.  Address, port and service vary per flow and are not
    cached.  Bounded: cleared when full.
    """

    def __init__(self, max_entries: int = 16384) -> None:
        self._entries: dict[bytes, EndpointFacts] = {}
        self._max = max_entries

    def _add(self, key: bytes, ep: Any) -> EndpointFacts:
        if len(self._entries) >= self._max:
            self._entries.clear()
        workloads = ep.workloads
        found = self._entries[key] = (
            ep.identity,
            ep.namespace,
            ep.pod_name,
            tuple(ep.labels),
            tuple(Workload(w.name, w.kind) for w in workloads) if workloads else (),
            ep.cluster_name,
            ep.ID,
        )
        return found


_FACTS = _EndpointFactsCache()


def _endpoint(ep: Any, ip: str, port: int, msg: Any, service_field: str, names: Any) -> Endpoint:
    service = ""
    if msg.HasField(service_field):  # usually absent: cheaper than reading the empty sub-message
        found = getattr(msg, service_field)
        if found.name:
            service = f"{found.namespace}/{found.name}"
    facts = _FACTS._entries.get(key := ep.SerializeToString())  # looked up inline: hot path
    if facts is None:
        facts = _FACTS._add(key, ep)
    return _new_endpoint(ip, port, service, tuple(names) if names else (), *facts)


def _policies(policies: Any) -> tuple[PolicyRef, ...]:
    if not policies:
        return ()
    return tuple(PolicyRef(p.name, p.namespace, p.kind, p.revision) for p in policies)


def _l7(l7: Any) -> L7Info:
    record = l7.WhichOneof("record")
    dns = http = None
    if record == "dns":
        d = l7.dns
        dns = DNSInfo(d.query, d.rcode, tuple(d.qtypes), tuple(d.ips), d.observation_source, d.ttl)
    elif record == "http":
        h = l7.http
        http = HTTPInfo(h.method, h.url, h.code, h.protocol)
    return L7Info(_L7_TYPES.get(l7.type, L7Type.UNKNOWN), l7.latency_ns, dns, http)


_FLAG_SETS: dict[bytes, frozenset[str]] = {b"": _NO_FLAGS}


def _tcp_flags(flags: Any) -> frozenset[str]:
    key = flags.SerializeToString()
    found = _FLAG_SETS.get(key)
    if found is None:  # at most 2**9 distinct sets
        found = _FLAG_SETS[key] = frozenset(name for name in _TCP_FLAG_NAMES if getattr(flags, name))
    return found


_NO_L4 = (Protocol.UNKNOWN, 0, 0, _NO_FLAGS, 0, 0)


def _layer4(l4: Any) -> tuple[Protocol, int, int, frozenset[str], int, int]:
    """(protocol, source port, destination port, TCP flags, ICMP type, ICMP code) of a Layer4."""
    kind = l4.WhichOneof("protocol")
    if kind is None:
        return _NO_L4
    layer = getattr(l4, kind)
    if kind == "TCP":
        return _TCP, layer.source_port, layer.destination_port, _tcp_flags(layer.flags), 0, 0
    if kind in _PORTED:
        return _PORTED[kind], layer.source_port, layer.destination_port, _NO_FLAGS, 0, 0
    if kind == "ICMPv4" or kind == "ICMPv6":
        return _PORTLESS[kind], 0, 0, _NO_FLAGS, layer.type, layer.code
    return _PORTLESS[kind], 0, 0, _NO_FLAGS, 0, 0


def flow_from_proto(msg: Any, *, node_name: str = "", response_time_ns: int = 0) -> Flow:
    """Convert a `flow.Flow` message; node name and time fall back to the enclosing response's."""
    return _convert(msg, node_name, response_time_ns, None, False)


def _convert(msg: Any, node_name: str, response_time_ns: int, response: Any, light: bool) -> Flow:
    """flow_from_proto; with `response`, its node name and time are read only when the flow lacks them.

    `light`: a flow the correlator only counts comes back reduced (see `light_event_from_response`).
    """
    l4 = _layer4(msg.l4)
    event_type = msg.event_type
    type_ = event_type.type
    verdict = _VERDICTS.get(msg.verdict, _UNKNOWN_VERDICT)
    flow_type = _FLOW_TYPES.get(msg.Type, _UNKNOWN_FLOW_TYPE)
    drop = msg.drop_reason_desc or msg.drop_reason
    ts = msg.time
    time_ns = ts.seconds * 1_000_000_000 + ts.nanos
    if not time_ns:
        time_ns = timestamp_ns(response.time) if response is not None else response_time_ns
    node = msg.node_name
    if not node:
        node = response.node_name if response is not None else node_name
    head = (
        time_ns, verdict, msg.uuid, node, drop_reason_name(drop) if drop else "", type_, event_type.sub_type,
        flow_type, _DIRECTIONS.get(msg.traffic_direction, _UNKNOWN_DIRECTION),
        msg.is_reply.value if msg.HasField("is_reply") else (True if msg.reply else None),
        l4[0], l4[3], l4[4], l4[5],
        _OBSERVATION_POINTS.get(msg.trace_observation_point, ""), _TRACE_REASONS.get(msg.trace_reason, ""),
    )
    if (light and type_ != _POLICY_VERDICT_EVENT and verdict is not _DROPPED  # always decisions
            and type_ != _L7_EVENT and flow_type is not _L7_FLOW and not msg.HasField("l7")):
        flow = _new_light_flow(_NO_ENDPOINT, _NO_ENDPOINT, *head)
        kind = classify(flow)
        _set_class(flow, kind)  # classified once: the correlator reads it
        if kind is not _REPLY and kind is not _NOT_DECISION:  # not in LIGHT_CLASSES
            _fill_rest(flow, *_rest(msg, l4[1], l4[2]))
        return flow
    return _new_flow(*_rest(msg, l4[1], l4[2]), *head)


def _rest(msg: Any, src_port: int, dst_port: int) -> tuple[Any, ...]:
    """The values of the _REST fields."""
    ip = msg.IP
    egress_allowed, ingress_allowed = msg.egress_allowed_by, msg.ingress_allowed_by
    egress_denied, ingress_denied = msg.egress_denied_by, msg.ingress_denied_by
    return (
        _endpoint(msg.source, ip.source, src_port, msg, "source_service", msg.source_names),
        _endpoint(msg.destination, ip.destination, dst_port, msg, "destination_service", msg.destination_names),
        _IP_VERSIONS.get(ip.ipVersion, 0),
        _l7(msg.l7) if msg.HasField("l7") else None,
        msg.policy_match_type,
        _policies(egress_allowed) if egress_allowed else (),
        _policies(ingress_allowed) if ingress_allowed else (),
        _policies(egress_denied) if egress_denied else (),
        _policies(ingress_denied) if ingress_denied else (),
        msg.Summary,
    )


def _lost_events(lost: Any, node_name: str, time_ns: int) -> LostEvents:
    return LostEvents(
        source=_LOST_SOURCES.get(lost.source, LostEventSource.UNKNOWN),
        count=lost.num_events_lost,
        node_name=node_name,
        time_ns=time_ns,
        cpu=lost.cpu.value if lost.HasField("cpu") else None,
        first_ns=timestamp_ns(lost.first),
        last_ns=timestamp_ns(lost.last),
    )


def event_from_response(resp: Any) -> FlowEvent | None:
    """Convert one GetFlowsResponse (or ExportEvent); None when it carries nothing we model."""
    kind = resp.WhichOneof("response_types")
    if kind == "flow":
        return _convert(resp.flow, "", 0, resp, False)
    return _other_event(resp, kind)


LIGHT_CLASSES = frozenset({FlowClass.REPLY, FlowClass.NOT_DECISION})
"""Flow classes the correlator only counts (by verdict and direction, and as skipped by class)."""
_REPLY, _NOT_DECISION = FlowClass.REPLY, FlowClass.NOT_DECISION


def light_event_from_response(resp: Any) -> FlowEvent | None:
    """`event_from_response`, but a flow whose class is in LIGHT_CLASSES comes back *light*.

    A light Flow is a valid Flow carrying only what classification and the correlator's counters
    read (time, verdict, uuid, node, drop reason, event type and sub type, flow type, direction,
    is_reply, protocol, TCP flags, ICMP type/code, trace observation point and reason); endpoints,
    IP version, L7, policies and summary keep their defaults.  Most of a busy cluster's flows are
    such trace events of established connections and replies; skipping their endpoints, policies
    and summary saves most of the conversion.  Flows carrying a Layer7 record are never light (the
    DNS query cache reads them).  For sources whose consumer is the correlator only (the daemon,
    `auditor audit`): anything else that reads endpoints wants `event_from_response`.
    """
    kind = resp.WhichOneof("response_types")
    if kind == "flow":
        return _convert(resp.flow, "", 0, resp, True)
    return _other_event(resp, kind)


def light_event_from_wire(data: bytes) -> FlowEvent | None:
    """`light_event_from_response` of a serialized GetFlowsResponse (a worker's RawFlow bytes)."""
    return light_event_from_response(GetFlowsResponse.FromString(data))


def _other_event(resp: Any, kind: str | None) -> FlowEvent | None:
    if kind == "lost_events":
        return _lost_events(resp.lost_events, resp.node_name, timestamp_ns(resp.time))
    if kind == "node_status":
        status = resp.node_status
        return NodeStatus(
            state=_NODE_STATES.get(status.state_change, NodeState.UNKNOWN),
            node_names=tuple(status.node_names),
            message=status.message,
            time_ns=timestamp_ns(resp.time),
        )
    return None


_response_kwargs = jsonpb.message_converter(GetFlowsResponse.DESCRIPTOR)
_flow_kwargs = jsonpb.message_converter(ProtoFlow.DESCRIPTOR)


def response_from_json(line: str | bytes, notes: list[str] | None = None) -> Any:
    """Parse one JSON line into a GetFlowsResponse.

    Accepts `{"flow":…,"node_name":…,"time":…}` (hubble observe -o jsonpb/json, exporter files),
    `{"flow":…}`, and a bare legacy Flow object (wrapped, node_name and time copied from it).
    Unknown keys are ignored; unknown enum names leave the field unset and are described in
    `notes` if given.  Raises ValueError (JsonShapeError, json.JSONDecodeError,
    UnicodeDecodeError) with a message saying what is wrong.
    """
    try:
        obj = json.loads(line)
    except RecursionError as exc:
        raise jsonpb.JsonShapeError("JSON nested too deeply") from exc
    if not isinstance(obj, dict):
        raise jsonpb.JsonShapeError(f"expected a JSON object, got {_JSON_TYPE_NAMES.get(type(obj), 'a value')}")
    found: list[jsonpb.Note] = []
    if _WRAPPER_KEYS.isdisjoint(obj) and not _RESPONSE_ONLY_KEYS.issuperset(obj):
        kwargs = _flow_kwargs(obj, found)
        if not kwargs and not found:
            keys = ", ".join(list(obj)[:5])
            raise jsonpb.JsonShapeError(f"no Hubble flow fields in this object (keys: {keys})")
        wrapped: dict[str, Any] = {"flow": kwargs}
        if "node_name" in kwargs:
            wrapped["node_name"] = kwargs["node_name"]
        if "time" in kwargs:
            wrapped["time"] = kwargs["time"]
        kwargs = wrapped
    else:
        kwargs = _response_kwargs(obj, found)
    if notes is not None:
        notes.extend(f"{path}: {text}" if path else text for path, text in found)
    try:
        return GetFlowsResponse(**kwargs)
    except (TypeError, ValueError) as exc:  # e.g. a number out of range for its field
        raise jsonpb.JsonShapeError(f"value does not fit its field: {exc}") from exc
