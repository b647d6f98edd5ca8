"""Hubble FlowFilter semantics, every field of flow.proto's FlowFilter, as pure predicates on `flow.Flow`.

A request's allow list (whitelist) is an OR of filters, each filter an AND of its set fields, and the
values inside one repeated field are OR'ed; the deny list (blacklist) removes whatever any of its
filters matches.  An empty allow list lets everything through.  Each field follows Hubble's own
filter (cilium pkg/hubble/filters/<field>.go, vendored in the hubble CLI 1.19.4): e.g. a bare pod
name means namespace `default`, ports and IPs are exact, `reply` counts a DROPPED flow without
is_reply as not a reply, HTTP fields refuse an event-type filter without `l7`.  Label selectors are
in auditor.hubble.filter_labels, CEL in auditor.hubble.filter_cel.  An invalid value raises
ConfigError (the replay server answers InvalidArgument, like Hubble).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from google.protobuf import json_format

from auditor._proto.flow import flow_pb2
from auditor.errors import ConfigError
from auditor.hubble.filter_http import dns_query, http_header, http_method, http_path, http_status, http_url
from auditor.hubble.filter_labels import compile_selectors

Predicate = Callable[[Any], bool]
"""Takes a flow_pb2.Flow, says whether it matches."""
Builder = Callable[[Sequence[Any], Any], Predicate]
"""(the field's values, the whole FlowFilter) -> predicate."""

DEFAULT_CLUSTER = "default"
_FQDN_RE = r"(?:[-0-9_a-z]+(?:\.[-0-9_a-z]+)*)"


def _always(_flow: Any) -> bool:
    return True


def _in(getter: Callable[[Any], Any]) -> Builder:
    """A field whose value must be one of the filter's values (verdicts, directions, uuids ...)."""
    def build(values: Sequence[Any], _ff: Any) -> Predicate:
        wanted = frozenset(values)
        return lambda flow: getter(flow) in wanted

    return build


def _drop_reason(values: Sequence[int], _ff: Any) -> Predicate:
    wanted = frozenset(values)
    return lambda flow: flow.verdict == flow_pb2.DROPPED and flow.drop_reason_desc in wanted


def _parse_namespaced(name: str) -> tuple[str, str]:
    """Hubble's k8s.ParseNamespaceName: `ns/name`, `/name` (any ns), `name` (ns `default`)."""
    if not name:
        raise ConfigError("invalid filter, name must not be empty")
    parts = name.split("/")
    if len(parts) > 1:
        return parts[0], parts[1]
    return "default", parts[0]


def _namespaced(getter: Callable[[Any], tuple[str, str]]) -> Builder:
    """Pod and service filters: namespace equality (if given) and name prefix (if given)."""
    def build(values: Sequence[str], _ff: Any) -> Predicate:
        patterns = [_parse_namespaced(value) for value in values]

        def match(flow: Any) -> bool:
            namespace, name = getter(flow)
            if not namespace and not name:
                return False
            return any((not prefix or name.startswith(prefix)) and (not ns or ns == namespace)
                       for ns, prefix in patterns)

        return match

    return build


def _endpoint(side: str) -> Callable[[Any], tuple[str, str]]:
    return lambda flow: (getattr(flow, side).namespace, getattr(flow, side).pod_name)


def _service(side: str) -> Callable[[Any], tuple[str, str]]:
    return lambda flow: (getattr(flow, side).namespace, getattr(flow, side).name)


def _ips(getter: Callable[[Any], str]) -> Builder:
    """Exact addresses (string equality) or CIDR prefixes (containment)."""
    def build(values: Sequence[str], _ff: Any) -> Predicate:
        addresses, networks = set(), []
        for value in values:
            try:
                if "/" in value:
                    networks.append(ipaddress.ip_network(value, strict=True))
                else:
                    ipaddress.ip_address(value)
                    addresses.add(value)
            except ValueError as exc:
                raise ConfigError(f"invalid IP {'prefix' if '/' in value else 'address'} {value!r} "
                                  f"in filter: {exc}") from exc

        def match(flow: Any) -> bool:
            text = getter(flow)
            if not text:
                return False
            if text in addresses:
                return True
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                return False
            return any(address in network for network in networks)

        return match

    return build


def _l4_ports(flow: Any) -> Any:
    name = flow.l4.WhichOneof("protocol")
    return getattr(flow.l4, name) if name in ("TCP", "UDP", "SCTP") else None


def _port(side: str) -> Builder:
    def build(values: Sequence[str], _ff: Any) -> Predicate:
        wanted = set()
        for value in values:
            if not value.isdigit() or int(value) > 65535:
                raise ConfigError(f"invalid {side} port filter: invalid port {value!r}")
            wanted.add(int(value))

        def match(flow: Any) -> bool:
            layer = _l4_ports(flow)
            return layer is not None and getattr(layer, f"{side}_port") in wanted

        return match

    return build


_L4 = {"icmp": ("ICMPv4", "ICMPv6"), "icmpv4": ("ICMPv4",), "icmpv6": ("ICMPv6",), "tcp": ("TCP",),
       "udp": ("UDP",), "sctp": ("SCTP",), "vrrp": ("VRRP",), "igmp": ("IGMP",)}
_L7 = {"dns": "dns", "http": "http", "kafka": "kafka"}


def _protocol(values: Sequence[str], _ff: Any) -> Predicate:
    l4: set[str] = set()
    l7: set[str] = set()
    for value in values:
        name = value.lower()
        if name in _L4:
            l4.update(_L4[name])
        elif name in _L7:
            l7.add(_L7[name])
        else:
            raise ConfigError(f"invalid protocol filter: unknown protocol: {value!r}")

    def match(flow: Any) -> bool:
        if flow.l4.WhichOneof("protocol") in l4:
            return True
        return bool(l7) and flow.l7.WhichOneof("record") in l7

    return match


def _event_type(values: Sequence[Any], _ff: Any) -> Predicate:
    wanted = [(value.type, value.sub_type if value.match_sub_type else None) for value in values]

    def match(flow: Any) -> bool:
        if not flow.HasField("event_type"):
            return False
        event = flow.event_type
        return any((not t or t == event.type) and (s is None or s == event.sub_type) for t, s in wanted)

    return match


def _reply(values: Sequence[bool], _ff: Any) -> Predicate:
    wanted = frozenset(values)

    def match(flow: Any) -> bool:
        if not flow.HasField("is_reply") and flow.verdict != flow_pb2.DROPPED:
            return False
        return flow.is_reply.value in wanted

    return match


def _labels(getter: Callable[[Any], Sequence[str]]) -> Builder:
    def build(values: Sequence[str], _ff: Any) -> Predicate:
        matches = compile_selectors(values)
        return lambda flow: matches(getter(flow))

    return build


def _fqdn_pattern(pattern: str) -> str:
    """Hubble's FQDN pattern: lower-cased, one trailing dot dropped, `*` = `[-.0-9a-z]*`."""
    text = pattern.strip().removesuffix(".").lower()
    if not text:
        raise ConfigError("invalid FQDN filter: empty pattern")
    if text.endswith("."):
        raise ConfigError(f"invalid FQDN filter {pattern!r}: multiple trailing dots in pattern")
    out = []
    for char in text:
        if char == ".":
            out.append(r"\.")
        elif char == "*":
            out.append(r"[-.0-9a-z]*")
        elif char in "-_" or char.isdigit() or "a" <= char <= "z":
            out.append(char)
        else:
            raise ConfigError(f"invalid FQDN filter {pattern!r}: {char!r}: invalid rune in pattern")
    return "".join(out)


def _fqdn(side: str) -> Builder:
    def build(values: Sequence[str], _ff: Any) -> Predicate:
        regex = re.compile("(?:" + "|".join(_fqdn_pattern(value) for value in values) + ")")
        return lambda flow: any(regex.fullmatch(name) for name in getattr(flow, f"{side}_names"))

    return build


def _node_pattern(pattern: str) -> str:
    """`cluster/node` patterns (each an FQDN pattern, empty = any); no slash = any cluster."""
    if not pattern:
        raise ConfigError("invalid node name filter: empty pattern")
    parts = pattern.split("/")
    if len(parts) > 2:
        raise ConfigError(f"invalid node name filter {pattern!r}: too many slashes in pattern")
    cluster, node = ("", parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return (_fqdn_pattern(cluster) if cluster else _FQDN_RE) + "/" + (_fqdn_pattern(node) if node else _FQDN_RE)


def _node_name(values: Sequence[str], _ff: Any) -> Predicate:
    regex = re.compile("(?:" + "|".join(_node_pattern(value) for value in values) + ")")

    def match(flow: Any) -> bool:
        name = flow.node_name
        if not name:
            return False
        return regex.fullmatch(name if "/" in name else f"{DEFAULT_CLUSTER}/{name}") is not None

    return match


_TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")


def _tcp_flags(values: Sequence[Any], _ff: Any) -> Predicate:
    """A flow matches a TCPFlags value when it has at least every flag that value sets."""
    wanted = [[name for name in _TCP_FLAGS if getattr(value, name)] for value in values]

    def match(flow: Any) -> bool:
        if flow.l4.WhichOneof("protocol") != "TCP" or not flow.l4.TCP.HasField("flags"):
            return False
        flags = flow.l4.TCP.flags
        return any(all(getattr(flags, name) for name in names) for names in wanted)

    return match


def _workload(side: str) -> Builder:
    def build(values: Sequence[Any], _ff: Any) -> Predicate:
        wanted = [(value.name, value.kind) for value in values]

        def match(flow: Any) -> bool:
            return any((not name or name == w.name) and (not kind or kind == w.kind)
                       for w in getattr(flow, side).workloads for name, kind in wanted)

        return match

    return build


def _cluster(side: str) -> Builder:
    def build(values: Sequence[str], _ff: Any) -> Predicate:
        if "" in values:
            raise ConfigError("invalid filter, name must not be empty")
        wanted = frozenset(values)
        return lambda flow: getattr(flow, side).cluster_name in wanted

    return build


def _interface(values: Sequence[Any], _ff: Any) -> Predicate:
    wanted = [(value.index, value.name) for value in values]

    def match(flow: Any) -> bool:
        if not flow.HasField("interface"):
            return False
        have = flow.interface
        return any((not index or index == have.index) and (not name or name == have.name)
                   for index, name in wanted)

    return match


def _encrypted(values: Sequence[bool], _ff: Any) -> Predicate:
    wanted = frozenset(values)
    return lambda flow: flow.IP.encrypted in wanted


def _cel(_values: Sequence[Any], ff: Any) -> Predicate:
    expressions = list(ff.experimental.cel_expression)
    if not expressions:
        return _always
    from auditor.hubble.filter_cel import compile_cel  # celpy is loaded only when CEL is asked for

    predicate: Predicate = compile_cel(expressions)
    return predicate


_BUILDERS: dict[str, Builder] = {
    "uuid": _in(lambda flow: flow.uuid),
    "source_ip": _ips(lambda flow: flow.IP.source),
    "source_ip_xlated": _ips(lambda flow: flow.IP.source_xlated),
    "destination_ip": _ips(lambda flow: flow.IP.destination),
    "source_pod": _namespaced(_endpoint("source")),
    "destination_pod": _namespaced(_endpoint("destination")),
    "source_service": _namespaced(_service("source_service")),
    "destination_service": _namespaced(_service("destination_service")),
    "source_fqdn": _fqdn("source"),
    "destination_fqdn": _fqdn("destination"),
    "source_label": _labels(lambda flow: flow.source.labels),
    "destination_label": _labels(lambda flow: flow.destination.labels),
    "node_labels": _labels(lambda flow: flow.node_labels),
    "source_workload": _workload("source"),
    "destination_workload": _workload("destination"),
    "source_cluster_name": _cluster("source"),
    "destination_cluster_name": _cluster("destination"),
    "traffic_direction": _in(lambda flow: flow.traffic_direction),
    "verdict": _in(lambda flow: flow.verdict),
    "drop_reason_desc": _drop_reason,
    "interface": _interface,
    "event_type": _event_type,
    "http_status_code": http_status,
    "http_method": http_method,
    "http_path": http_path,
    "http_url": http_url,
    "http_header": http_header,
    "protocol": _protocol,
    "source_port": _port("source"),
    "destination_port": _port("destination"),
    "reply": _reply,
    "dns_query": dns_query,
    "source_identity": _in(lambda flow: flow.source.identity),
    "destination_identity": _in(lambda flow: flow.destination.identity),
    "tcp_flags": _tcp_flags,
    "node_name": _node_name,
    "ip_version": _in(lambda flow: flow.IP.ipVersion),
    "trace_id": _in(lambda flow: flow.trace_context.parent.trace_id),
    "ip_trace_id": _in(lambda flow: flow.ip_trace_id.trace_id),
    "encrypted": _encrypted,
    "experimental": _cel,
}
SUPPORTED_FIELDS = frozenset(_BUILDERS)


def compile_filter(flow_filter: Any) -> Predicate:
    """One FlowFilter -> a predicate that is the AND of its set fields."""
    parts: list[Predicate] = []
    for descriptor, values in flow_filter.ListFields():
        builder = _BUILDERS.get(descriptor.name)
        if builder is None:  # a field newer than these stubs: refuse rather than ignore
            raise ConfigError(f"FlowFilter field {descriptor.name!r} is not supported here")
        parts.append(builder(list(values) if descriptor.is_repeated else [values], flow_filter))
    if not parts:
        return _always
    if len(parts) == 1:
        return parts[0]
    return lambda flow: all(part(flow) for part in parts)


def compile_filters(allow: Iterable[Any], deny: Iterable[Any]) -> Predicate | None:
    """allow/deny FlowFilter lists -> one predicate, or None when no filter is set (match everything)."""
    allowed = [compile_filter(f) for f in allow]
    denied = [compile_filter(f) for f in deny]
    if not allowed and not denied:
        return None

    def match(flow: Any) -> bool:
        if allowed and not any(predicate(flow) for predicate in allowed):
            return False
        return not any(predicate(flow) for predicate in denied)

    return match


def parse_filter_json(text: str) -> Any:
    """A FlowFilter from protojson (`{"verdict":["DROPPED"],"source_pod":["shop/"]}`), with a clear error."""
    try:
        json.loads(text)
        return json_format.Parse(text, flow_pb2.FlowFilter())
    except (ValueError, json_format.ParseError) as exc:
        raise ConfigError(f"invalid FlowFilter JSON {text!r}: {exc}") from exc
