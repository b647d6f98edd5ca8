"""Hubble FlowFilter semantics as small pure predicates over `flow.Flow` messages.

A request's allow list (whitelist) is an OR of filters, each filter an AND of its set fields, and the
values inside one repeated field are OR'ed; the deny list (blacklist) removes whatever any of its
filters matches.  An empty allow list lets everything through.  One builder per FlowFilter field;
a set field without a builder is refused (never silently ignored).
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

Predicate = Callable[[Any], bool]
"""Takes a flow_pb2.Flow, says whether it matches."""


def _always(_flow: Any) -> bool:
    return True


def _verdict(values: Sequence[int]) -> Predicate:
    wanted = frozenset(values)
    return lambda flow: flow.verdict in wanted


def _drop_reason(values: Sequence[int]) -> Predicate:
    wanted = frozenset(values)
    return lambda flow: flow.drop_reason_desc in wanted


def _split_pod(pattern: str) -> tuple[str | None, str]:
    """`ns/prefix` -> (ns, prefix); `ns/` -> (ns, ""); `prefix` or `/prefix` -> (None = any ns, prefix)."""
    if not pattern:
        raise ConfigError("pod filter: empty string")
    namespace, slash, prefix = pattern.partition("/")
    if not slash:
        return None, pattern
    return (namespace or None), prefix


def _pod(side: str) -> Callable[[Sequence[str]], Predicate]:
    def build(values: Sequence[str]) -> Predicate:
        patterns = [_split_pod(value) for value in values]

        def match(flow: Any) -> bool:
            endpoint = getattr(flow, side)
            namespace, pod = endpoint.namespace, endpoint.pod_name
            if not namespace and not pod:
                return False
            return any(
                (ns is None or ns == namespace) and (pod.startswith(prefix) if prefix else ns is not None)
                for ns, prefix in patterns
            )

        return match

    return build


def _node_regex(pattern: str) -> re.Pattern[str]:
    """`k8s*` matches node names by glob; `cluster/` all nodes of a cluster; no cluster = any cluster."""
    if pattern.endswith("/"):
        pattern += "*"
    glob = ".*".join(re.escape(part) for part in pattern.split("*"))
    if "/" not in pattern:
        glob = f"(?:[^/]*/)?{glob}"
    return re.compile(glob)


def _node_name(values: Sequence[str]) -> Predicate:
    regexes = [_node_regex(value) for value in values]
    return lambda flow: any(regex.fullmatch(flow.node_name) for regex in regexes)


def _event_type(values: Sequence[Any]) -> Predicate:
    wanted = [(value.type, value.sub_type if value.match_sub_type else None) for value in values]

    def match(flow: Any) -> bool:
        event = flow.event_type
        return any(t == event.type and (s is None or s == event.sub_type) for t, s in wanted)

    return match


def _ip(side: str) -> Callable[[Sequence[str]], Predicate]:
    def build(values: Sequence[str]) -> Predicate:
        try:
            networks = [ipaddress.ip_network(value, strict=False) for value in values]
        except ValueError as exc:
            raise ConfigError(f"{side}_ip filter: {exc}") from exc

        def match(flow: Any) -> bool:
            text = getattr(flow.IP, side)
            if not text:
                return False
            address = ipaddress.ip_address(text)
            return any(address in network for network in networks)

        return match

    return build


def _identity(side: str) -> Callable[[Sequence[int]], Predicate]:
    def build(values: Sequence[int]) -> Predicate:
        wanted = frozenset(values)
        return lambda flow: getattr(flow, side).identity in wanted

    return build


def _direction(values: Sequence[int]) -> Predicate:
    wanted = frozenset(values)
    return lambda flow: flow.traffic_direction in wanted


def _reply(values: Sequence[bool]) -> Predicate:
    wanted = frozenset(values)
    return lambda flow: flow.HasField("is_reply") and flow.is_reply.value in wanted


def _uuid(values: Sequence[str]) -> Predicate:
    wanted = frozenset(values)
    return lambda flow: flow.uuid in wanted


def _l4_name(flow: Any) -> str:
    which = flow.l4.WhichOneof("protocol")
    return which.lower() if which else ""


def _protocol(values: Sequence[str]) -> Predicate:
    wanted = frozenset(value.lower() for value in values)

    def match(flow: Any) -> bool:
        l7 = flow.l7.WhichOneof("record") if flow.HasField("l7") else None
        return _l4_name(flow) in wanted or l7 in wanted

    return match


def _port(side: str) -> Callable[[Sequence[str]], Predicate]:
    def build(values: Sequence[str]) -> Predicate:
        try:
            wanted = frozenset(int(value) for value in values)
        except ValueError as exc:
            raise ConfigError(f"{side}_port filter: not a port number: {exc}") from exc

        def match(flow: Any) -> bool:
            name = flow.l4.WhichOneof("protocol")
            layer = getattr(flow.l4, name) if name in ("TCP", "UDP", "SCTP") else None
            return layer is not None and getattr(layer, f"{side}_port") in wanted

        return match

    return build


_SET_RE = re.compile(r"^\s*([\w.:/-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_CMP_RE = re.compile(r"^\s*(!?)\s*([\w.:/-]+)\s*(?:(==|=|!=)\s*([\w.:/-]*))?\s*$")
Requirement = Callable[[dict[str, str]], bool]


def _label_map(labels: Sequence[str]) -> dict[str, str]:
    """Cilium labels (`k8s:app=web`, `reserved:host`) keyed both `source:key` and bare `key`."""
    result: dict[str, str] = {}
    for label in labels:
        key, _, value = label.partition("=")
        result[key] = value
        result.setdefault(key.partition(":")[2] or key, value)
    return result


def _requirement(text: str) -> Requirement:
    """One selector requirement: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`."""
    if found := _SET_RE.match(text):
        key, op, values = found.group(1), found.group(2), {v.strip() for v in found.group(3).split(",")}
        if op == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: key not in labels or labels[key] not in values
    found = _CMP_RE.match(text)
    if not found:
        raise ConfigError(f"label filter: cannot parse requirement {text.strip()!r}")
    negated, key, op, value = found.groups()
    if op is None:
        return (lambda labels: key not in labels) if negated else (lambda labels: key in labels)
    if negated:
        raise ConfigError(f"label filter: '!' only negates a bare key, got {text.strip()!r}")
    if op == "!=":
        return lambda labels: labels.get(key) != value
    return lambda labels: labels.get(key) == value


def _split_selector(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _label(side: str) -> Callable[[Sequence[str]], Predicate]:
    """Label selectors (Kubernetes syntax) on an endpoint's Cilium labels; a bare key matches any source."""
    def build(values: Sequence[str]) -> Predicate:
        selectors = [[_requirement(part) for part in _split_selector(value)] for value in values]

        def match(flow: Any) -> bool:
            labels = _label_map(getattr(flow, side).labels)
            return any(all(requirement(labels) for requirement in selector) for selector in selectors)

        return match

    return build


_BUILDERS: dict[str, Callable[[Any], Predicate]] = {
    "source_label": _label("source"),
    "destination_label": _label("destination"),
    "verdict": _verdict,
    "drop_reason_desc": _drop_reason,
    "source_pod": _pod("source"),
    "destination_pod": _pod("destination"),
    "node_name": _node_name,
    "event_type": _event_type,
    "source_ip": _ip("source"),
    "destination_ip": _ip("destination"),
    "source_identity": _identity("source"),
    "destination_identity": _identity("destination"),
    "traffic_direction": _direction,
    "reply": _reply,
    "uuid": _uuid,
    "protocol": _protocol,
    "source_port": _port("source"),
    "destination_port": _port("destination"),
}
SUPPORTED_FIELDS = frozenset(_BUILDERS)


def compile_filter(flow_filter: Any) -> Predicate:
    """One FlowFilter -> a predicate that is the AND of its set fields."""
    parts: list[Predicate] = []
    for descriptor, values in flow_filter.ListFields():
        builder = _BUILDERS.get(descriptor.name)
        if builder is None:
            raise ConfigError(f"FlowFilter field {descriptor.name!r} is not supported here "
                              f"(supported: {', '.join(sorted(SUPPORTED_FIELDS))})")
        parts.append(builder(list(values)))
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
