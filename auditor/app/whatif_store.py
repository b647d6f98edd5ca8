"""Connections from a daemon's store, for `auditor whatif --store` and `auditor recommend --store`.

The daemon keeps the distinct connections it judged (`Store.connections`: one row per source and
destination workload, port, protocol, direction and verdict, with counts, first/last seen and the
newest flow's endpoints).  The rows of one connection seen at both ends (two directions) are merged,
and each becomes one `Observation`: its sample endpoints are resolved
(`findings.resolve.resolve_endpoint`, as for a flow) in the state in force at its last sighting.

A store written before it kept connections (schema version 7) still has findings: each runtime
finding that names a connection no connection row has becomes an observation from its sample pod
and peer, and the notes say how many; a store with no connection rows at all gets `STORE_NOTE`.
"""

from __future__ import annotations

from dataclasses import replace

from auditor.findings.connections import CollectStats, ConnectionKey, Observation
from auditor.findings.resolve import Resolved, resolve_endpoint
from auditor.model.delta import ConnectionCount
from auditor.model.findings import Finding, FindingKind
from auditor.model.flows import Endpoint
from auditor.policy.history import ClusterHistory
from auditor.policy.selectors import is_address
from auditor.store import open_store, require_existing_store

Collected = tuple[list[Observation], CollectStats, str, tuple[str, ...]]
"""Observations, their stats, where they came from, and notes on what the source cannot hold."""

OBSERVED = {
    FindingKind.POLICY_DROP: "denied", FindingKind.UNEXPECTED_DROP: "denied", FindingKind.DNS_DENIED: "denied",
    FindingKind.HEALTH_CHECK_BLOCKED: "denied", FindingKind.UNEXPECTED_ALLOW: "allowed",
    FindingKind.UNPROTECTED_POD: "allowed",
}
"""Runtime finding kinds that stand for a connection, and the dataplane's verdict on it."""
STORE_NOTE = ("store: it holds no connections (written before the store kept them, schema version 7), so only "
              "connections the daemon kept as findings (policy drops, unprotected pods, unexpected allows and "
              "drops, DNS and health-check denials) are judged; connections the current policies admitted as "
              "expected leave no finding, so what the change would newly deny among them is not seen. Judge "
              "recorded flow files (auditor record --out), or a store a newer daemon wrote, for the whole "
              "picture.")
_PROTOCOLS = {"ICMPv4": "ICMP"}


def peer_endpoint(finding: Finding) -> tuple[Endpoint, str]:
    """The finding's sample peer as a flow endpoint, and the node name for `reserved:host`."""
    peer, aggregate = finding.peer, finding.peer_workload
    if peer.startswith("reserved:"):
        identity, _, node = peer[len("reserved:"):].partition(" (")
        return Endpoint(labels=(f"reserved:{identity}",)), node.rstrip(")")
    if is_address(peer):
        labels = (aggregate,) if aggregate.startswith("cidr:") else ()
        if aggregate.startswith("reserved:") and aggregate != "reserved:world":
            labels = (aggregate,)
        return Endpoint(ip=peer, labels=labels), ""
    namespace, _, name = peer.partition("/")
    return Endpoint(namespace=namespace, pod_name=name), ""


def observation_of(finding: Finding, history: ClusterHistory) -> Observation | None:
    """The connection a runtime finding stands for; None when it names none or does not resolve."""
    observed = OBSERVED.get(finding.kind)
    if observed is None or not finding.pod or not finding.peer:
        return None
    state = history.at(finding.last_seen_ns)
    own = resolve_endpoint(Endpoint(namespace=finding.namespace, pod_name=finding.pod), "", state)
    endpoint, node = peer_endpoint(finding)
    other = resolve_endpoint(endpoint, node, state)
    if own.subject is None or other.subject is None:
        return None
    src, dst = (other, own) if finding.direction == "ingress" else (own, other)
    protocol = _PROTOCOLS.get(finding.protocol, finding.protocol)
    key = ConnectionKey(_name(src), _name(dst), finding.port, protocol)
    return Observation(key, state, src, dst, finding.port, protocol, observed, count=finding.count,
                       first_ns=finding.first_seen_ns, last_ns=finding.last_seen_ns, sample=finding.sample_flow)


def _name(resolved: Resolved) -> str:
    return resolved.peer_workload


def observation_of_connection(connection: ConnectionCount, history: ClusterHistory) -> Observation | None:
    """The observation a stored connection stands for; None when its sample endpoints do not resolve."""
    state = history.at(connection.last_ns)
    src = resolve_endpoint(connection.source_endpoint, connection.node, state)
    dst = resolve_endpoint(connection.destination_endpoint, connection.node, state)
    if src.subject is None or dst.subject is None:
        return None
    key = ConnectionKey(connection.source, connection.destination, connection.port, connection.protocol)
    return Observation(key, state, src, dst, connection.port, connection.protocol, connection.verdict,
                       count=connection.count, first_ns=connection.first_ns, last_ns=connection.last_ns,
                       sample=connection.sample_flow)


def _across_directions(connections: list[ConnectionCount]) -> list[ConnectionCount]:
    """Rows of one connection seen at both ends (egress at the client, ingress at the server) as one:
    a connection is judged once, its flows counted together, as a flow file's are."""
    merged: dict[tuple[str, str, int, str, str], ConnectionCount] = {}
    for c in connections:
        key = (c.source, c.destination, c.port, c.protocol, c.verdict)
        known = merged.get(key)
        merged[key] = c if known is None else known.merge(replace(c, direction=known.direction))
    return list(merged.values())


def _counted(stats: CollectStats, observation: Observation) -> None:
    stats.flows += observation.count
    stats.judged += observation.count
    if not stats.first_ns or observation.first_ns < stats.first_ns:
        stats.first_ns = observation.first_ns
    stats.last_ns = max(stats.last_ns, observation.last_ns)


def _from_findings(findings: list[Finding], history: ClusterHistory, stats: CollectStats,
                   known: set[tuple[ConnectionKey, str]]) -> list[Observation]:
    """One observation per connection the runtime findings name and `known` lacks (largest count per key)."""
    kept: dict[tuple[ConnectionKey, str], Observation] = {}
    for finding in findings:
        if finding.kind.is_static:
            continue
        observation = observation_of(finding, history)
        if observation is None:
            stats.unresolved += finding.count if finding.kind in OBSERVED else 0
            continue
        slot = (observation.key, observation.observed)
        if slot in known:
            continue
        if slot not in kept or kept[slot].count < observation.count:
            kept[slot] = observation
    for observation in kept.values():
        _counted(stats, observation)
    return list(kept.values())


def collect_store(history: ClusterHistory, url: str, from_ns: int | None, to_ns: int | None) -> Collected:
    """Observations of the store's connections overlapping the window, and of findings naming others."""
    require_existing_store(url)
    with open_store(url) as store:
        connections = store.connections(from_ns, to_ns)
        findings = store.findings(since_ns=from_ns, until_ns=to_ns)
    stats = CollectStats()
    observations = []
    for connection in _across_directions(connections):
        observation = observation_of_connection(connection, history)
        if observation is None:
            stats.unresolved += connection.count
            continue
        _counted(stats, observation)
        observations.append(observation)
    extra = _from_findings(findings, history, stats, {(o.key, o.observed) for o in observations})
    notes: tuple[str, ...] = ()
    if not connections:
        notes = (STORE_NOTE,)
    elif extra:
        notes = (f"store: {len(extra)} connection keys come only from findings (recorded before the store "
                 "kept connections), each judged from the finding's sample pod and peer",)
    ordered = sorted([*observations, *extra], key=lambda o: (o.key, o.first_ns))
    return ordered, stats, f"store {url}", notes
