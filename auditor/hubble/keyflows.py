"""Flow files read for their connection keys only: JSON straight to light flows, for `auditor whatif`.

The shared reader (`files.FileFlowSource`) takes every line through protojson -> protobuf ->
model (~35 us a line here); whatif and recommend only fold flows into connections, which read a
flow's class, time, uuid, node, layer-4 fields and the endpoints' addresses, identities, names
and labels.  `KeyFlowSource` decodes each line with orjson and builds those fields of the `Flow`
directly from the JSON object (a light flow, as `convert.light_event_from_response` makes, when
its class is one the correlator only counts).

Only the plain shape Hubble writes is taken this way: `{"flow": {...}, "node_name", "time"}` with
proto field names, enum values by name, 32-bit integers as numbers (a uint64 as protojson's string).
Any other line (camelCase keys, a field this module does not know, a string where a number is
meant, an unknown enum name, a number out of range, lost events and node status, a bare legacy
flow, anything unreadable) goes through the shared conversion, so its flows, notes and errors are
exactly the shared reader's.  Values of fields no connection reads (policies, summary, workloads,
HTTP headers, Kafka records) are not looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from auditor._proto.flow import flow_pb2
from auditor.hubble.convert import drop_reason_name, light_event_from_response, response_from_json
from auditor.hubble.fastmodel import positional_constructor, slot_filler
from auditor.hubble.files import FileFlowSource, _lines, describe_error
from auditor.hubble.jsonpb import parse_timestamp
from auditor.hubble.source import SourceStats
from auditor.hubble.streams import display_name
from auditor.model.events import FlowEvent
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
    Protocol,
    Verdict,
)

_Msg = Any


def _names(message: _Msg) -> frozenset[str]:
    return frozenset(field.name for field in message.DESCRIPTOR.fields)


def _enum(enum: Any) -> dict[str, int]:
    return {value.name: value.number for value in enum.DESCRIPTOR.values}


_RESPONSE_KEYS = frozenset({"flow", "node_name", "time"})
_FLOW_KEYS = _names(flow_pb2.Flow)
_ENDPOINT_KEYS = _names(flow_pb2.Endpoint)
_IP_KEYS = _names(flow_pb2.IP)
_EVENT_KEYS = _names(flow_pb2.CiliumEventType)
_L4_KEYS = _names(flow_pb2.Layer4)
_PORT_KEYS = _names(flow_pb2.TCP) | _names(flow_pb2.UDP) | _names(flow_pb2.SCTP)
_ICMP_KEYS = _names(flow_pb2.ICMPv4) | _names(flow_pb2.ICMPv6)
_FLAG_NAMES = tuple(field.name for field in flow_pb2.TCPFlags.DESCRIPTOR.fields)
_FLAG_KEYS = frozenset(_FLAG_NAMES)
_L7_KEYS = _names(flow_pb2.Layer7)
_RECORDS = frozenset(("dns", "http", "kafka"))
_DNS_KEYS = _names(flow_pb2.DNS)
_HTTP_KEYS = _names(flow_pb2.HTTP)

_VERDICTS = {name: Verdict(name) for name in _enum(flow_pb2.Verdict)}
_FLOW_TYPES = {name: FlowType(name) for name in _enum(flow_pb2.FlowType)}
_DIRECTIONS = {name: Direction.INGRESS if number == flow_pb2.INGRESS else Direction.EGRESS
               if number == flow_pb2.EGRESS else Direction.UNKNOWN
               for name, number in _enum(flow_pb2.TrafficDirection).items()}
_DROP_REASONS = _enum(flow_pb2.DropReason)
_POINTS = {name: name if number else "" for name, number in _enum(flow_pb2.TraceObservationPoint).items()}
_TRACE_REASONS = {name: name if number else "" for name, number in _enum(flow_pb2.TraceReason).items()}
_L7_TYPES = {name: L7Type(name) for name in _enum(flow_pb2.L7FlowType)}
_PORTED = {"TCP": Protocol.TCP, "UDP": Protocol.UDP, "SCTP": Protocol.SCTP}
_PORTLESS = {"ICMPv4": Protocol.ICMPV4, "ICMPv6": Protocol.ICMPV6, "VRRP": Protocol.VRRP, "IGMP": Protocol.IGMP}
_NO_L4 = (Protocol.UNKNOWN, 0, 0, frozenset[str](), 0, 0)
_FLAG_SETS: dict[bytes, frozenset[str]] = {}

_UNKNOWN_VERDICT, _UNKNOWN_TYPE, _NO_DIRECTION = Verdict.UNKNOWN, FlowType.UNKNOWN, Direction.UNKNOWN
_UNKNOWN_L7 = L7Type.UNKNOWN
_POLICY_VERDICT_EVENT, _L7_EVENT = int(EventType.POLICY_VERDICT), int(EventType.L7)
_DROPPED, _L7_FLOW = Verdict.DROPPED, FlowType.L7
_REPLY, _NOT_DECISION = FlowClass.REPLY, FlowClass.NOT_DECISION
_NO_ENDPOINT = Endpoint()
_new_endpoint = positional_constructor(Endpoint, ("ip", "port", "identity", "namespace", "pod_name", "labels",
                                                  "names"))
_new_flow = positional_constructor(Flow, (
    "source", "destination", "time_ns", "verdict", "uuid", "node_name", "drop_reason", "event_type",
    "event_sub_type", "flow_type", "direction", "is_reply", "protocol", "tcp_flags", "icmp_type", "icmp_code",
    "trace_observation_point", "trace_reason", "l7", "flow_class",
))
_set_class = slot_filler(Flow, ("flow_class",))
_set_endpoints = slot_filler(Flow, ("source", "destination"))
"""Only on a flow `plain_flow` has just built (see fastmodel.slot_filler)."""
_ENDPOINT_FACTS: dict[bytes, tuple[int, str, str, tuple[str, ...]]] = {}
_CACHE_MAX = 16_384
_ENDPOINTS: dict[tuple[bytes, str, int], Endpoint] = {}
"""Endpoints (frozen, shared like the shared reader's cached facts) by object, address and port."""
_SECONDS: dict[str, int] = {}
"""ns at `YYYY-MM-DDTHH:MM:SS` UTC, by that text."""
_EMPTY: dict[str, Any] = {}
_ABSENT = object()
_HEADS: dict[tuple[Any, ...], tuple[Any, ...]] = {}


class _SharedError(Exception):
    """This line is not of the plain shape: convert it the shared way."""


def _int(value: Any) -> int:
    """A number of one of the uint32 fields read (ports, identity, event type, drop reason, ICMP)."""
    if type(value) is not int or not 0 <= value <= 0xFFFF_FFFF:  # out of range: the shared way says so
        raise _SharedError
    return value


def _str(value: Any) -> str:
    if type(value) is not str:
        raise _SharedError
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if type(value) is not list or not all(type(item) is str for item in value):
        raise _SharedError
    return tuple(value)


def _object(value: Any, keys: frozenset[str]) -> dict[str, Any]:
    if type(value) is not dict or not keys.issuperset(value):
        raise _SharedError
    return value



def _time(value: Any) -> int:
    """RFC 3339 as `jsonpb.parse_timestamp` reads it; Hubble's `...:SS.nnnnnnnnnZ` without its general path."""
    if type(value) is str and len(value) == 30 and value[19] == "." and value[29] == "Z":
        fraction = value[20:29]
        seconds = _SECONDS.get(value[:19])
        if seconds is not None and fraction.isascii() and fraction.isdigit():
            return seconds + int(fraction)
    try:
        seconds, nanos = parse_timestamp(_str(value))
    except ValueError:
        raise _SharedError from None
    if len(value) == 30 and value[29] == "Z" and len(_SECONDS) < _CACHE_MAX:
        _SECONDS[value[:19]] = seconds * 1_000_000_000
    return seconds * 1_000_000_000 + nanos


def _flags(value: Any) -> frozenset[str]:
    key = orjson.dumps(value)
    found = _FLAG_SETS.get(key)
    if found is None:  # at most 2**9 sets, spelled a few ways
        flags = _object(value, _FLAG_KEYS)
        if not all(type(v) is bool for v in flags.values()) or len(_FLAG_SETS) > 4096:
            raise _SharedError
        found = _FLAG_SETS[key] = frozenset(name for name in _FLAG_NAMES if flags.get(name))
    return found


def _layer4(value: Any) -> tuple[Protocol, int, int, frozenset[str], int, int]:
    l4 = _object(value, _L4_KEYS)
    if not l4:
        return _NO_L4
    if len(l4) != 1:
        raise _SharedError
    [(kind, body)] = l4.items()
    if kind in _PORTED:
        layer = _object(body, _PORT_KEYS)
        flags = _flags(layer.get("flags", {})) if kind == "TCP" else _NO_L4[3]
        return (_PORTED[kind], _int(layer.get("source_port", 0)), _int(layer.get("destination_port", 0)), flags,
                0, 0)
    if kind == "ICMPv4" or kind == "ICMPv6":
        layer = _object(body, _ICMP_KEYS)
        return _PORTLESS[kind], 0, 0, _NO_L4[3], _int(layer.get("type", 0)), _int(layer.get("code", 0))
    if type(body) is not dict:
        raise _SharedError
    return _PORTLESS[kind], 0, 0, _NO_L4[3], 0, 0


def _facts(value: Any) -> tuple[int, str, str, tuple[str, ...]]:
    """(identity, namespace, pod name, labels) of an endpoint object, checked once per distinct object."""
    key = orjson.dumps(value)
    found = _ENDPOINT_FACTS.get(key)
    if found is None:
        ep = _object(value, _ENDPOINT_KEYS)
        if len(_ENDPOINT_FACTS) >= _CACHE_MAX:
            _ENDPOINT_FACTS.clear()
        found = _ENDPOINT_FACTS[key] = (_int(ep.get("identity", 0)), _str(ep.get("namespace", "")),
                                        _str(ep.get("pod_name", "")), _strings(ep.get("labels", [])))
    return found


def _endpoint(value: Any, ip: Any, port: int, names: Any) -> Endpoint:
    if type(ip) is not str:
        raise _SharedError
    if names is not None:
        return _new_endpoint(ip, port, *_facts(value), _strings(names))
    key = (orjson.dumps(value), ip, port)
    found = _ENDPOINTS.get(key)
    if found is None:  # a destination's address and port repeat, a client's port rarely does
        if len(_ENDPOINTS) >= _CACHE_MAX:
            _ENDPOINTS.clear()
        found = _ENDPOINTS[key] = _new_endpoint(ip, port, *_facts(value), ())
    return found


def _enum_of(f: dict[str, Any], name: str, table: dict[str, Any], default: Any) -> Any:
    value = f.get(name)
    if value is None:
        if name in f:  # null: the shared way says what it means
            raise _SharedError
        return default
    try:
        return table[value]
    except (KeyError, TypeError):  # an unknown name, a number, a list
        raise _SharedError from None


def _reply(f: dict[str, Any]) -> bool | None:
    """is_reply (a BoolValue: absent is unknown), else the deprecated `reply` (true, else unknown)."""
    value = f.get("is_reply", _ABSENT)
    if value is _ABSENT:
        value = f.get("reply", False)
        if type(value) is not bool:
            raise _SharedError
        return True if value else None
    if type(value) is not bool:
        raise _SharedError
    return value


def _head(f: dict[str, Any], event: Any) -> tuple[Any, ...]:
    """(verdict, flow type, drop reason, direction, is_reply, observation point, trace reason, event type,
    sub type) of a flow object, checked; `_SharedError` for anything not of the plain shape."""
    event = _object(event, _EVENT_KEYS)
    drop = _enum_of(f, "drop_reason_desc", _DROP_REASONS, 0) or _int(f.get("drop_reason", 0))
    verdict = _enum_of(f, "verdict", _VERDICTS, _UNKNOWN_VERDICT)
    direction = _enum_of(f, "traffic_direction", _DIRECTIONS, _NO_DIRECTION)
    return (verdict, _enum_of(f, "Type", _FLOW_TYPES, _UNKNOWN_TYPE), drop_reason_name(drop) if drop else "",
            direction, _reply(f), _enum_of(f, "trace_observation_point", _POINTS, ""),
            _enum_of(f, "trace_reason", _TRACE_REASONS, ""), _int(event.get("type", 0)),
            _int(event.get("sub_type", 0)))


def _cached_head(f: dict[str, Any], event: Any) -> tuple[Any, ...]:
    """`_head`, cached by the raw values it reads: a capture has a few dozen combinations.

    Absent and null read alike here and mean the same (protojson's null is "not set"), but for
    `is_reply`, whose absence is its own value.  The numeric and boolean values carry their type in
    the key, so `true` never passes for `1` (nor the other way round)."""
    if type(event) is not dict:
        raise _SharedError
    get = f.get
    drop, is_reply, reply = get("drop_reason"), get("is_reply", _ABSENT), get("reply")
    kind, sub_type = event.get("type"), event.get("sub_type")
    key = (get("verdict"), get("Type"), get("drop_reason_desc"), get("traffic_direction"),
           get("trace_observation_point"), get("trace_reason"), drop, type(drop), is_reply, type(is_reply),
           reply, type(reply), kind, type(kind), sub_type, type(sub_type), tuple(event))
    try:
        found = _HEADS.get(key)
    except TypeError:  # a list or object where a scalar belongs
        raise _SharedError from None
    if found is None:
        found = _head(f, event)
        if len(_HEADS) >= _CACHE_MAX:
            _HEADS.clear()
        _HEADS[key] = found
    return found


def _uint64(value: Any) -> int:
    """A uint64 as protojson writes it: a decimal string (or a number)."""
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if type(value) is not int or not 0 <= value < 2**64:
        raise _SharedError
    return value


def _l7(value: Any) -> L7Info:
    """The Layer7 record as `convert._l7` makes it: type, latency, and the DNS or HTTP fields read."""
    l7 = _object(value, _L7_KEYS)
    records = _RECORDS.intersection(l7)
    if len(records) > 1:
        raise _SharedError  # a oneof set twice: the shared way says so
    kind = _enum_of(l7, "type", _L7_TYPES, _UNKNOWN_L7)
    latency = _uint64(l7.get("latency_ns", 0))
    dns = http = None
    if "dns" in records:
        d = _object(l7["dns"], _DNS_KEYS)
        dns = DNSInfo(_str(d.get("query", "")), _int(d.get("rcode", 0)), _strings(d.get("qtypes", [])),
                      _strings(d.get("ips", [])), _str(d.get("observation_source", "")), _int(d.get("ttl", 0)))
    elif "http" in records:
        h = _object(l7["http"], _HTTP_KEYS)
        http = HTTPInfo(_str(h.get("method", "")), _str(h.get("url", "")), _int(h.get("code", 0)),
                        _str(h.get("protocol", "")))
    elif records and type(l7[next(iter(records))]) is not dict:
        raise _SharedError
    return L7Info(kind, latency, dns, http)


def plain_flow(obj: Any) -> Flow:
    """The Flow of one decoded line of the plain shape (see the module docstring); `_SharedError` otherwise."""
    if type(obj) is not dict or not _RESPONSE_KEYS.issuperset(obj):
        raise _SharedError
    f = obj.get("flow")
    if type(f) is not dict or not _FLOW_KEYS.issuperset(f):
        raise _SharedError
    get = f.get
    time_ns = _time(f["time"]) if "time" in f else 0
    if not time_ns and "time" in obj:
        time_ns = _time(obj["time"])
    node = get("node_name", "")
    if type(node) is not str:
        raise _SharedError
    if not node:
        node = _str(obj.get("node_name", ""))
    uuid = get("uuid", "")
    if type(uuid) is not str:
        raise _SharedError
    verdict, flow_type, drop, direction, is_reply, point, reason, type_, sub_type = _cached_head(
        f, get("event_type", _EMPTY))
    protocol, src_port, dst_port, flags, icmp_type, icmp_code = _layer4(get("l4", _EMPTY))
    l7 = _l7(f["l7"]) if "l7" in f else None
    flow = _new_flow(_NO_ENDPOINT, _NO_ENDPOINT, time_ns, verdict, uuid, node, drop, type_, sub_type, flow_type,
                     direction, is_reply, protocol, flags, icmp_type, icmp_code, point, reason, l7, None)
    kind = classify(flow)
    _set_class(flow, kind)
    decision = (type_ in (_POLICY_VERDICT_EVENT, _L7_EVENT) or verdict is _DROPPED or flow_type is _L7_FLOW
                or l7 is not None)
    if (kind is _REPLY or kind is _NOT_DECISION) and not decision:
        return flow  # as light as the shared reader's
    ip = _object(get("IP", _EMPTY), _IP_KEYS)
    _set_endpoints(flow, _endpoint(get("source", _EMPTY), ip.get("source", ""), src_port, get("source_names")),
                   _endpoint(get("destination", _EMPTY), ip.get("destination", ""), dst_port,
                             get("destination_names")))
    return flow


class KeyFlowSource(FileFlowSource):
    """`FileFlowSource(light=True)` for readers of connection keys: the same stats, errors and interrupts,
    flows with the fields connections read (see the module docstring)."""

    def _events(self) -> Iterator[FlowEvent]:
        if self._keep is not None:  # filters take protobuf flows: the shared way
            yield from super()._events()
            return
        stats = self.stats
        for path in self.paths:
            name = display_name(path)

            def report(number: int, reason: str, name: str = name) -> None:
                stats.record_error(f"{name}:{number}: {reason}")

            lines = _lines(path, report)
            while not self._closed:
                self._reading = True
                try:
                    item = next(lines, None)
                finally:
                    self._reading = False
                if item is None:
                    break
                event = _event(*item, report, stats)
                if event is None:
                    continue
                if type(event) is Flow:  # FileFlowSource._count, inline: once per line
                    stats.flows += 1
                    if event.time_ns > stats.last_flow_time_ns:
                        stats.last_flow_time_ns = event.time_ns
                else:
                    self._count(event)
                yield event
            if self._closed:
                return


def _event(number: int, line: bytes, report: Callable[[int, str], None], stats: SourceStats
           ) -> FlowEvent | None:
    """The line's event: the plain way when it can, else exactly as the shared reader converts it (None
    for a line reported as bad, or an event nothing models, counted in `ignored_events`)."""
    try:
        return plain_flow(orjson.loads(line))
    except (_SharedError, orjson.JSONDecodeError):
        pass
    notes: list[str] = []
    try:
        response = response_from_json(line, notes)
    except (ValueError, RecursionError) as exc:
        report(number, describe_error(exc))
        return None
    for note in notes:
        report(number, note)
    try:
        event = light_event_from_response(response)
    except Exception as exc:  # never let one odd message stop the run
        report(number, f"cannot convert: {exc!r}")
        return None
    if event is None:
        stats.ignored_events += 1
    return event


def line_event(line: bytes) -> FlowEvent | None:
    """One line's event as `KeyFlowSource` reads it (None for a bad or ignored line; not reported: for
    readers that count flows only, like whatif's parts)."""
    return _event(0, line, _ignore, _UNREAD_STATS)


def _ignore(_number: int, _reason: str) -> None:
    return None


_UNREAD_STATS = SourceStats()
