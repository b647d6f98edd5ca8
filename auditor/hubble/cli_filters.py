"""hubble observe's filter flags for auditor's commands (`auditor audit --namespace shop --verdict DROPPED`).

The flags build FlowFilters the way the hubble CLI does (cilium hubble/cmd/observe/flows_filter.go):
a flag without a side (`--pod`, `--label`, `--ip`, `--port`, `--fqdn`, `--service`, `--identity`)
fills the source field of one filter and the destination field of a second, OR'ed; `--from-*` and
`--to-*` and side-less fields (`--verdict`, `--protocol`, ...) go into both; `--namespace` applies
to pods and services (source in the first filter, destination in the second); `--not` sends the
next flag to the deny list.  The filters are then evaluated by auditor.hubble.filters, exactly as
the replay server does.  `--allowlist` / `--denylist` take raw FlowFilter JSON, like hubble's.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from auditor._proto.flow import flow_pb2
from auditor.errors import ConfigError
from auditor.hubble.filters import Predicate, compile_filters, parse_filter_json

STEPS = "hubble_filter_steps"
_EITHER = {"pod": ("source_pod", "destination_pod"), "label": ("source_label", "destination_label"),
           "ip": ("source_ip", "destination_ip"), "port": ("source_port", "destination_port"),
           "fqdn": ("source_fqdn", "destination_fqdn"), "service": ("source_service", "destination_service"),
           "identity": ("source_identity", "destination_identity"),
           "cluster": ("source_cluster_name", "destination_cluster_name")}
_BOTH = {"from-pod": "source_pod", "to-pod": "destination_pod", "from-label": "source_label",
         "to-label": "destination_label", "from-ip": "source_ip", "to-ip": "destination_ip",
         "from-port": "source_port", "to-port": "destination_port", "from-fqdn": "source_fqdn",
         "to-fqdn": "destination_fqdn", "from-service": "source_service", "to-service": "destination_service",
         "from-identity": "source_identity", "to-identity": "destination_identity",
         "node-name": "node_name", "node-label": "node_labels", "protocol": "protocol",
         "http-status": "http_status_code", "http-method": "http_method", "http-path": "http_path",
         "http-url": "http_url", "uuid": "uuid", "trace-id": "trace_id", "snat-ip": "source_ip_xlated",
         "from-cluster": "source_cluster_name", "to-cluster": "destination_cluster_name"}
_EITHER_WORKLOAD = {"workload": ("source_workload", "destination_workload")}
_SWITCHES = {"ipv4": ("ip_version", flow_pb2.IPv4), "ipv6": ("ip_version", flow_pb2.IPv6),
             "encrypted": ("encrypted", True), "unencrypted": ("encrypted", False)}
"""Flags without a value (`-4`, `--encrypted`): the field and the value they add."""
_ALL_NAMESPACES = {"all-namespaces": "namespace", "from-all-namespaces": "from-namespace",
                   "to-all-namespaces": "to-namespace"}
RESERVED_IDENTITIES = {"host": 1, "world": 2, "unmanaged": 3, "health": 4, "init": 5, "remote-node": 6,
                       "kube-apiserver": 7, "ingress": 8, "world-ipv4": 9, "world-ipv6": 10,
                       "encrypted-overlay": 11}
"""cilium pkg/identity reserved identities, accepted by name like `hubble observe --identity host`."""
MESSAGE_TYPES = {"drop": 1, "debug": 2, "capture": 3, "trace": 4, "policy-verdict": 5, "trace-sock": 7,
                 "l7": 129, "agent": 130}
TRACE_POINTS = {"to-endpoint": 0, "to-proxy": 1, "to-host": 2, "to-stack": 3, "to-overlay": 4,
                "from-endpoint": 5, "from-proxy": 6, "from-host": 7, "from-stack": 8, "from-overlay": 9,
                "from-network": 10, "to-network": 11, "from-crypto": 12, "to-crypto": 13}
"""cilium pkg/monitor/api types.go: `--type` names and trace observation points (sub-types)."""
_ENUMS = {"verdict": ("verdict", flow_pb2.Verdict),
          "drop-reason-desc": ("drop_reason_desc", flow_pb2.DropReason),
          "traffic-direction": ("traffic_direction", flow_pb2.TrafficDirection)}
_NAMESPACES = ("namespace", "from-namespace", "to-namespace")


@dataclass
class _Tracker:
    """One list (allow or deny): two filters OR'ed, plus namespaces applied at the end."""

    left: dict[str, list[Any]] = field(default_factory=dict)
    right: dict[str, list[Any]] = field(default_factory=dict)
    namespaces: dict[str, list[str]] = field(default_factory=dict)
    touched: bool = False

    def add(self, name: str, value: str) -> None:
        self.touched = True
        if name in _ALL_NAMESPACES:
            name, value = _ALL_NAMESPACES[name], ""
        if name in _NAMESPACES:
            self.namespaces.setdefault(name, []).append(value)
        elif name in _EITHER_WORKLOAD:
            source, destination = _EITHER_WORKLOAD[name]
            self.left.setdefault(source, []).append(_workload(value))
            self.right.setdefault(destination, []).append(_workload(value))
        elif name in _EITHER:
            source, destination = _EITHER[name]
            self.left.setdefault(source, []).append(_typed(source, value))
            self.right.setdefault(destination, []).append(_typed(destination, value))
        else:
            key, typed = _field_value(name, value)
            for side in (self.left, self.right):
                side.setdefault(key, []).append(typed)

    def filters(self) -> list[Any]:
        if not self.touched:
            return []
        left, right = dict(self.left), dict(self.right)
        for name, values in self.namespaces.items():
            for side in (left, right):
                if name == "to-namespace" or (name == "namespace" and side is right):
                    _namespaced(side, values, "destination")
                if name == "from-namespace" or (name == "namespace" and side is left):
                    _namespaced(side, values, "source")
        filters = [flow_pb2.FlowFilter(**_message_fields(side)) for side in (left, right)]
        return filters[:1] if filters[0] == filters[1] else filters


def _namespaced(side: dict[str, list[Any]], namespaces: list[str], prefix: str) -> None:
    """Hubble's namespaceModifier: `ns/` for each namespace, or `ns/name` for each bare pod/service."""
    pods, services = f"{prefix}_pod", f"{prefix}_service"
    if not side.get(pods) and not side.get(services):
        side[pods] = [""]
    for key in (pods, services):
        if side.get(key):
            side[key] = [value if "/" in value else f"{ns}/{value}" for value in side[key] for ns in namespaces]


def _typed(key: str, value: str) -> Any:
    if key.endswith("_identity"):
        if value in RESERVED_IDENTITIES:
            return RESERVED_IDENTITIES[value]
        if not value.isdigit():
            raise ConfigError(f"--identity: expected one of {', '.join(RESERVED_IDENTITIES)} or a number, "
                              f"got {value!r}")
        return int(value)
    return value


def _workload(value: str) -> Any:
    """`name`, `Kind/name` or `Kind/` (hubble's parseWorkload)."""
    kind, slash, name = value.partition("/")
    return flow_pb2.Workload(kind=kind, name=name) if slash else flow_pb2.Workload(name=value)


def _event_type(value: str) -> Any:
    """`TYPE[:SUBTYPE]` by name or number (trace sub-types by observation point name)."""
    kind, colon, sub = value.partition(":")
    number = MESSAGE_TYPES.get(kind)
    if number is None and not kind.isdigit():
        names = ", ".join(MESSAGE_TYPES)
        raise ConfigError(f"--type: unknown event type {kind!r} (one of {names} or a number)")
    result = flow_pb2.EventTypeFilter(type=number if number is not None else int(kind))
    if colon:
        if result.type == MESSAGE_TYPES["trace"] and sub in TRACE_POINTS:
            result.sub_type = TRACE_POINTS[sub]
        elif sub.isdigit():
            result.sub_type = int(sub)
        else:
            raise ConfigError(f"--type: unknown event sub-type {sub!r}")
        result.match_sub_type = True
    return result


def _tcp_flags(value: str) -> Any:
    names = [name.upper() for name in value.split(",")]
    unknown = [name for name in names if name not in flow_pb2.TCPFlags.DESCRIPTOR.fields_by_name]
    if unknown:
        raise ConfigError(f"--tcp-flags: unknown tcp flag {unknown[0]!r}")
    return flow_pb2.TCPFlags(**dict.fromkeys(names, True))


_IP_VERSIONS = {"4": flow_pb2.IPv4, "v4": flow_pb2.IPv4, "ipv4": flow_pb2.IPv4, "ip4": flow_pb2.IPv4,
                "6": flow_pb2.IPv6, "v6": flow_pb2.IPv6, "ipv6": flow_pb2.IPv6, "ip6": flow_pb2.IPv6}
_BUILT: dict[str, tuple[str, Any]] = {
    "type": ("event_type", _event_type), "tcp-flags": ("tcp_flags", _tcp_flags),
    "from-workload": ("source_workload", _workload), "to-workload": ("destination_workload", _workload),
    "interface": ("interface", lambda value: flow_pb2.NetworkInterface(name=value)),
    "ip-version": ("ip_version", lambda value: _IP_VERSIONS.get(value.lower(), flow_pb2.IP_NOT_USED)),
    "http-header": ("http_header", lambda value: _header(value)),
    "ip-trace-id": ("ip_trace_id", lambda value: _trace_id(value)),
}


def _header(value: str) -> Any:
    key, colon, text = value.partition(":")
    if not colon:
        raise ConfigError(f"--http-header: invalid value {value!r}, expected name:value")
    return flow_pb2.HTTPHeader(key=key, value=text)


def _trace_id(value: str) -> int:
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(f"--ip-trace-id: invalid value {value!r}; must be a number greater than 0")
    return int(value)


def _field_value(name: str, value: str) -> tuple[str, Any]:
    if name in _SWITCHES:
        return _SWITCHES[name]
    if name in _BUILT:
        key, build = _BUILT[name]
        return key, build(value)
    if name in _BOTH:
        key = _BOTH[name]
        return key, _typed(key, value)
    if name in _ENUMS:
        key, enum = _ENUMS[name]
        try:
            return key, enum.Value(value.upper() if name == "traffic-direction" else value)
        except ValueError as exc:
            raise ConfigError(f"--{name}: invalid value {value!r}") from exc
    if name == "cel-expression":
        return "cel_expression", value
    raise ConfigError(f"unknown filter flag --{name}")


def _message_fields(side: dict[str, list[Any]]) -> dict[str, Any]:
    fields: dict[str, Any] = {key: values for key, values in side.items() if key != "cel_expression"}
    if "cel_expression" in side:
        fields["experimental"] = flow_pb2.FlowFilter.Experimental(cel_expression=side["cel_expression"])
    return fields


class _Step(argparse.Action):
    """Records every filter flag in command-line order (`--not` applies to the next one)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        steps = list(getattr(namespace, STEPS, None) or [])
        steps.append((self.metavar_name, values if isinstance(values, str) else ""))
        setattr(namespace, STEPS, steps)

    @property
    def metavar_name(self) -> str:
        return self.dest.removeprefix("hubble_filter_").replace("_", "-")


FLAGS = (*_EITHER, *_EITHER_WORKLOAD, *_BOTH, *_BUILT, *_ENUMS, *_NAMESPACES, "cel-expression")
SWITCHES = (*_SWITCHES, *_ALL_NAMESPACES)


def add_filter_arguments(parser: argparse.ArgumentParser, exclude: Sequence[str] = ()) -> None:
    """hubble observe's filter flags (a `--not` before one negates it), plus raw FlowFilter JSON.

    `exclude`: flags the command already has with its own meaning (`run --node-name`).
    """
    group = parser.add_argument_group(
        "flow filters", "hubble observe's filter flags, with its semantics (see `hubble observe --help`); "
        "repeat a flag to OR its values, `--not` before a flag negates it")
    group.add_argument("--not", dest="hubble_filter_not", nargs=0, action=_Step,
                       help="send the next filter flag to the deny list")
    for name in (flag for flag in SWITCHES if flag not in exclude):
        short = {"ipv4": ["-4"], "ipv6": ["-6"], "all-namespaces": ["-A"]}.get(name, [])
        group.add_argument(*short, f"--{name}", dest="hubble_filter_" + name.replace("-", "_"), nargs=0,
                           action=_Step)
    for name in (flag for flag in FLAGS if flag not in exclude):
        short = {"namespace": ["-n"], "label": ["-l"], "type": ["-t"]}.get(name, [])
        hidden = argparse.SUPPRESS if name.startswith(("snat", "trace")) else None
        group.add_argument(*short, f"--{name}", dest="hubble_filter_" + name.replace("-", "_"), action=_Step,
                           metavar="VALUE", help=hidden)
    group.add_argument("--allowlist", dest="hubble_allowlist", action="append", default=[], metavar="JSON",
                       help='a FlowFilter as JSON, e.g. \'{"verdict":["DROPPED"]}\' (repeat: OR)')
    group.add_argument("--denylist", dest="hubble_denylist", action="append", default=[], metavar="JSON",
                       help="a FlowFilter as JSON whose matches are left out (repeat: OR)")


def filters_from_steps(steps: Sequence[tuple[str, str]]) -> tuple[list[Any], list[Any]]:
    """(allow list, deny list) of FlowFilters from the recorded flags, as hubble builds them."""
    allow, deny = _Tracker(), _Tracker()
    negate = False
    for name, value in steps:
        if name == "not":
            if negate:
                raise ConfigError("consecutive --not statements")
            negate = True
            continue
        (deny if negate else allow).add(name, value)
        negate = False
    return allow.filters(), deny.filters()


def filters_from_args(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    """(allow list, deny list) of FlowFilters from the flags `add_filter_arguments` added."""
    allow, deny = filters_from_steps(getattr(args, STEPS, None) or [])
    allow += [parse_filter_json(text) for text in getattr(args, "hubble_allowlist", None) or []]
    deny += [parse_filter_json(text) for text in getattr(args, "hubble_denylist", None) or []]
    compile_filters(allow, deny)  # a bad value fails here, naming it, not at the first flow
    return allow, deny


def keep_from_args(args: argparse.Namespace) -> Predicate | None:
    """The predicate the filter flags ask for, or None when none was given."""
    return compile_filters(*filters_from_args(args))


def request_filters(allow: Sequence[Any], deny: Sequence[Any],
                    node_name: str = "") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Allow and deny lists as FlowFilter JSON for a GetFlows request; `node_name` is AND'ed into each."""
    allowed = [flow_pb2.FlowFilter(node_name=[node_name])] if node_name and not allow else list(allow)
    if node_name:
        allowed = [_with_node(f, node_name) for f in allowed]
    as_json = [json_format.MessageToJson(f, indent=None, preserving_proto_field_name=True) for f in allowed]
    return tuple(as_json), tuple(json_format.MessageToJson(f, indent=None, preserving_proto_field_name=True)
                                 for f in deny)


def _with_node(flow_filter: Any, node_name: str) -> Any:
    copy = flow_pb2.FlowFilter()
    copy.CopyFrom(flow_filter)
    if node_name not in copy.node_name:
        copy.node_name.append(node_name)
    return copy
