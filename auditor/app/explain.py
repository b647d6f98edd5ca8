"""`auditor explain`: one connection (or a file of them) explained against the policies in force.

Manifests (NetworkPolicies, CiliumNetworkPolicies, CiliumClusterwideNetworkPolicies,
CiliumCIDRGroups, pods, nodes, namespaces) are the state before the first cluster event; `--at`
picks the state in force at that instant (default: after the last event).  Endpoints are resolved
by `auditor.app.explain_endpoints`; the connection is TCP/UDP/SCTP to a port, or ICMP/ICMPv6
with a message type (the engine takes the type in place of the port, as Cilium's policy keys do).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.app.audit import build_history
from auditor.app.explain_endpoints import QueryError as QueryError  # re-exported
from auditor.app.explain_endpoints import resolve, subject_text
from auditor.errors import ConfigError, InputError
from auditor.model.decision import Decision, RuleMatch, SideDecision, Subject
from auditor.model.times import format_rfc3339_ns, parse_rfc3339_ns
from auditor.policy.cilium_validate import icmp_type_number
from auditor.policy.engine import PolicyEngine
from auditor.policy.state import ClusterState
from auditor.policy.validate import PROTOCOLS

ICMP_PROTOCOLS = ("ICMP", "ICMPv6")
"""Besides PROTOCOLS, what a query's protocol may be, as the engine names them (`ICMPv4` reads as ICMP)."""
_SPELLINGS = {**{p: p for p in PROTOCOLS}, "ICMP": "ICMP", "ICMPV4": "ICMP", "ICMPV6": "ICMPv6"}
ECHO_REQUEST = {"ICMP": 8, "ICMPv6": 128}
"""The default ICMP type: echo request (ping) of each family."""
_FAMILY = {"ICMP": "IPv4", "ICMPv6": "IPv6"}


@dataclass(frozen=True, slots=True)
class Query:
    source: str | Mapping[str, Any]
    destination: str | Mapping[str, Any]
    port: int | None = None
    protocol: str = "TCP"
    icmp_type: int | str | None = None
    """ICMP / ICMPv6 only: a type number or Cilium's name of it (EchoRequest); default echo request."""


@dataclass(frozen=True, slots=True)
class Explanation:
    source: Subject
    destination: Subject
    decision: Decision
    policy_enforcement: str = "default"


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


# -- protocol, port, ICMP type ---------------------------------------------------------------------

def normalize_protocol(protocol: object) -> str:
    """TCP, UDP, SCTP, ICMP or ICMPv6 in any letter case; `ICMPv4` is ICMP.  Anything else: QueryError."""
    found = _SPELLINGS.get(protocol.upper()) if isinstance(protocol, str) else None
    if found is None:
        raise QueryError(f"protocol {protocol!r} must be one of TCP, UDP, SCTP, ICMP (or ICMPv4), ICMPv6")
    return found


def icmp_number(protocol: str, icmp_type: object) -> int:
    """The ICMP type number of a query: echo request when absent, a number 0-255, or Cilium's type name
    for the family (pkg/policy/api/icmp.go names: EchoRequest, DestinationUnreachable, ...)."""
    if icmp_type is None:
        return ECHO_REQUEST[protocol]
    if isinstance(icmp_type, str) and icmp_type.strip().isdigit():
        icmp_type = int(icmp_type)
    if isinstance(icmp_type, int) and not isinstance(icmp_type, bool):
        if 0 <= icmp_type <= 255:
            return icmp_type
    elif isinstance(icmp_type, str):
        number = icmp_type_number(_FAMILY[protocol], icmp_type.strip())
        if number is not None:
            return number
    raise QueryError(f"icmp_type {icmp_type!r} must be an {protocol} type: a number from 0 to 255 or a name "
                     "such as EchoRequest")


def check_l4(port: object, protocol: object, icmp_type: object = None) -> tuple[int, str]:
    """(port, protocol) as the engine takes them; for ICMP/ICMPv6 the port is the message type."""
    name = normalize_protocol(protocol)
    if name in ICMP_PROTOCOLS:
        if port is not None:
            raise QueryError(f"port does not apply to {name}; give the message type as icmp_type")
        return icmp_number(name, icmp_type), name
    if icmp_type is not None:
        raise QueryError(f"icmp_type applies to ICMP and ICMPv6 only, not {name}")
    if port is None:
        raise QueryError("missing port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise QueryError(f"port {port!r} must be an integer from 1 to 65535")
    return port, name


def explain(state: ClusterState, engine: PolicyEngine, query: Query) -> Explanation:
    port, protocol = check_l4(query.port, query.protocol, query.icmp_type)
    source, destination = resolve(state, query.source), resolve(state, query.destination)
    # Uncached: the engine's cache keys an external address by its IP alone, and queries may give
    # the same IP different identities or DNS names.
    decision = engine.decide_uncached(state, source, destination, port, protocol)
    return Explanation(source, destination, decision, engine.policy_enforcement)


def undecided(decision: Decision) -> bool:
    """True when the verdict hangs on something the engine does not know (a DNS answer for toFQDNs):
    a side cannot be decided and no side denies outright."""
    sides = (decision.egress, decision.ingress)
    return any(s.undecided for s in sides) and all(s.allowed or s.undecided for s in sides)


# -- JSON ------------------------------------------------------------------------------------------

def _rule_json(match: RuleMatch, direction: str) -> dict[str, Any]:
    """A rule that allowed or denied: `path` is the rule's JSON path in its policy (`ingress[0]`,
    `specs[1].egressDeny[0]`); `peer_text` and `l7` are given for Cilium rules."""
    return {
        "policy": str(match.policy),
        "kind": match.policy.kind,
        "rule": match.rule_index,
        "peer": match.peer_index,
        "path": match.path if match.section else f"{direction}[{match.rule_index}]",
        "peer_text": match.peer or None,
        "l7": match.l7 or None,
    }


def _side_json(side: SideDecision, subject: Subject, direction: str) -> dict[str, Any]:
    miss = side.closest_miss
    return {
        "allowed": side.allowed,
        "isolated": side.isolated,
        "enforcement": side.enforcement.value,
        "endpoint": subject_text(subject),
        "policies": [str(p) for p in side.selecting],
        "allowed_by": [_rule_json(m, direction) for m in side.allowed_by],
        "denied_by": [_rule_json(m, direction) for m in side.denied_by],
        "isolated_by": [str(p) for p in side.isolated_by],
        "closest_miss": None if miss is None else {"policy": str(miss.policy), "kind": miss.policy.kind,
                                                   "rule": miss.rule_index, "message": miss.message},
        "undecided": side.undecided or None,
    }


def explanation_json(item: Explanation) -> dict[str, Any]:
    d = item.decision
    icmp = d.protocol in ICMP_PROTOCOLS
    return {
        "from": subject_text(item.source),
        "to": subject_text(item.destination),
        "port": None if icmp else d.port,
        "icmp_type": d.port if icmp else None,
        "protocol": d.protocol,
        "allowed": d.allowed,
        "undecided": undecided(d),
        "policy_enforcement": item.policy_enforcement,
        "egress": _side_json(d.egress, item.source, "egress"),
        "ingress": _side_json(d.ingress, item.destination, "ingress"),
    }


# -- batch -----------------------------------------------------------------------------------------

_QUERY_FIELDS = {"from", "to", "port", "protocol", "icmp_type"}


def parse_query(line: str) -> Query:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise QueryError(f"not JSON: {exc.msg} at column {exc.colno}") from exc
    except RecursionError as exc:
        raise QueryError("not a query: nested too deep") from exc
    if not isinstance(raw, dict):
        raise QueryError("a query must be a JSON object")
    missing = [k for k in ("from", "to") if k not in raw]
    if missing:
        raise QueryError(f"missing {', '.join(missing)}")
    unknown = sorted(set(raw) - _QUERY_FIELDS)
    if unknown:
        raise QueryError(f"unknown field {', '.join(unknown)}")
    return Query(raw["from"], raw["to"], raw.get("port"), raw.get("protocol", "TCP"), raw.get("icmp_type"))


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
