"""`auditor explain`: one connection (or a file of them) explained against the policies in force.

Manifests are the state before the first cluster event; `--at` picks the state in force at that
instant (default: after the last event).  Endpoints are `NS/POD` or an IP: a pod IP becomes that
pod, a node address a node, anything else an external address.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.app.audit import build_history
from auditor.errors import ConfigError, InputError
from auditor.kube.events import format_rfc3339_ns, parse_rfc3339_ns
from auditor.model.decision import Decision, ExternalSubject, NodeSubject, PodSubject, SideDecision, Subject
from auditor.policy.engine import PolicyEngine
from auditor.policy.state import ClusterState
from auditor.policy.validate import PROTOCOLS as PROTOCOLS  # re-exported for the CLI


class QueryError(InputError):
    """One query cannot be answered (unknown pod, bad endpoint, bad port)."""


@dataclass(frozen=True, slots=True)
class Query:
    source: str | Mapping[str, Any]
    destination: str | Mapping[str, Any]
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class Explanation:
    source: Subject
    destination: Subject
    decision: Decision


@dataclass(frozen=True, slots=True)
class LoadedState:
    state: ClusterState
    at_ns: int | None
    objects: int
    events: int


def load_state(manifests: Sequence[str], cluster_events: str | None, at: str | None) -> LoadedState:
    """The state in force at `at` (RFC 3339), or after the last event.  Bad input raises, naming the file."""
    at_ns = None
    if at is not None:
        try:
            at_ns = parse_rfc3339_ns(at)
        except ValueError as exc:
            raise ConfigError(f"--at: {exc}") from exc
    history, objects, changes = build_history(manifests, cluster_events)  # offline: nothing is pruned
    state = history.at(at_ns) if at_ns is not None else history.latest()
    return LoadedState(state, at_ns, objects, changes)


def resolve(state: ClusterState, endpoint: str | Mapping[str, Any]) -> Subject:
    """`NS/POD`, an IP string or `{"ip": IP}` to a subject; QueryError when it cannot be."""
    if isinstance(endpoint, Mapping):
        ip = endpoint.get("ip")
        if not isinstance(ip, str) or set(endpoint) != {"ip"}:
            shown = json.dumps(dict(endpoint))
            raise QueryError(f'endpoint {shown} must be "NS/POD" or {{"ip": "A.B.C.D"}}')
        return _by_ip(state, ip)
    if not isinstance(endpoint, str) or not endpoint:
        raise QueryError(f"endpoint {endpoint!r} must be \"NS/POD\" or an IP address")
    if "/" in endpoint and not _is_ip(endpoint.split("/")[0]):
        namespace, _, name = endpoint.partition("/")
        pod = state.pod(namespace, name)
        if pod is None:
            raise QueryError(f"unknown pod {endpoint} (not in the manifests at that time)")
        return PodSubject(pod, pod.ips[0] if pod.ips else "")
    return _by_ip(state, endpoint)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _by_ip(state: ClusterState, ip: str) -> Subject:
    if not _is_ip(ip):
        raise QueryError(f"{ip!r} is neither NS/POD nor an IP address")
    canonical = str(ipaddress.ip_address(ip))
    pod = state.pod_by_ip(canonical)
    if pod is not None:
        return PodSubject(pod, canonical)
    node = state.node_by_ip(canonical)
    if node is not None:
        return NodeSubject(node.name, canonical)
    return ExternalSubject(canonical)


def check_port(port: object, protocol: object) -> tuple[int, str]:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise QueryError(f"port {port!r} must be an integer from 1 to 65535")
    if not isinstance(protocol, str) or protocol.upper() not in PROTOCOLS:
        raise QueryError(f"protocol {protocol!r} must be one of TCP, UDP, SCTP")
    return port, protocol.upper()


def explain(state: ClusterState, engine: PolicyEngine, query: Query) -> Explanation:
    port, protocol = check_port(query.port, query.protocol)
    source, destination = resolve(state, query.source), resolve(state, query.destination)
    return Explanation(source, destination, engine.decide(state, source, destination, port, protocol))


# -- JSON ------------------------------------------------------------------------------------------

def subject_text(subject: Subject) -> str:
    if isinstance(subject, PodSubject):
        return subject.pod.key
    if isinstance(subject, NodeSubject):
        return f"node/{subject.node_name}"
    return subject.ip


def _side_json(side: SideDecision, subject: Subject) -> dict[str, Any]:
    miss = side.closest_miss
    return {
        "allowed": side.allowed,
        "isolated": side.isolated,
        "enforcement": side.enforcement.value,
        "endpoint": subject_text(subject),
        "policies": [str(p) for p in side.selecting],
        "allowed_by": [{"policy": str(m.policy), "rule": m.rule_index, "peer": m.peer_index}
                       for m in side.allowed_by],
        "isolated_by": [str(p) for p in side.isolated_by],
        "closest_miss": None if miss is None else {"policy": str(miss.policy), "rule": miss.rule_index,
                                                   "message": miss.message},
    }


def explanation_json(item: Explanation) -> dict[str, Any]:
    d = item.decision
    return {
        "from": subject_text(item.source),
        "to": subject_text(item.destination),
        "port": d.port,
        "protocol": d.protocol,
        "allowed": d.allowed,
        "egress": _side_json(d.egress, item.source),
        "ingress": _side_json(d.ingress, item.destination),
    }


# -- batch -----------------------------------------------------------------------------------------

def parse_query(line: str) -> Query:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise QueryError(f"not JSON: {exc.msg} at column {exc.colno}") from exc
    except RecursionError as exc:
        raise QueryError("not a query: nested too deep") from exc
    if not isinstance(raw, dict):
        raise QueryError("a query must be a JSON object")
    missing = [k for k in ("from", "to", "port") if k not in raw]
    if missing:
        raise QueryError(f"missing {', '.join(missing)}")
    unknown = sorted(set(raw) - {"from", "to", "port", "protocol"})
    if unknown:
        raise QueryError(f"unknown field {', '.join(unknown)}")
    return Query(raw["from"], raw["to"], raw["port"], raw.get("protocol", "TCP"))


@dataclass(frozen=True, slots=True)
class BatchLine:
    line: int
    result: Explanation | None = None
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.result is None:
            return {"line": self.line, "error": self.error}
        return {"line": self.line, **explanation_json(self.result)}


def run_batch(state: ClusterState, engine: PolicyEngine, lines: Iterable[str]) -> Iterator[BatchLine]:
    """One BatchLine per non-blank input line, in order; errors become error lines, never raise."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield BatchLine(number, explain(state, engine, parse_query(text)))
        except QueryError as exc:
            yield BatchLine(number, error=exc.reason)


def read_queries(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readlines()
    except OSError as exc:
        raise InputError(f"cannot read queries: {exc.strerror}", path=path) from exc


def state_header(loaded: LoadedState) -> str:
    when = format_rfc3339_ns(loaded.at_ns) if loaded.at_ns is not None else "after the last event"
    return f"{when} ({loaded.objects} objects, {loaded.events} cluster events, state revision " \
           f"{loaded.state.revision})"
