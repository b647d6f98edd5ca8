"""Distinct connections of a capture: many flows, few keys.

`auditor whatif` and `auditor recommend` ask questions of *connections*, not of flows: a million
flows of a shop are a few hundred (source, destination, port, protocol) tuples.  The collector
runs the correlator's own rules on each flow (`selection.classify`, the `DropDeduplicator` for a
denied packet's two events, `resolve.resolve_endpoint` in the state at the flow's time,
`correlate.policy_l4`) and folds flows into `Observation`s:

- an `Observation` is what the engine judges: one state revision, one source subject, one
  destination subject, port and protocol, and the dataplane's class (allowed, denied, audited);
- a `ConnectionKey` is what people read: source and destination *workload* (`peer_workload`:
  `namespace/workload`, `reserved:host`, `cidr:...`), port and protocol.

Replies, established traffic, traces, non-policy drops, DNS responses and cilium-health flows
carry no decision and are only counted, as in the correlator.

`ConnectionTally` is the daemon's side of the same question: the flows the correlator judged,
folded per (source workload, destination workload, port, protocol, direction, verdict) into the
`ConnectionCount`s of an analysis delta, which the store keeps so `whatif --store` sees them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from auditor.findings.correlate import StateHistory, policy_l4
from auditor.findings.resolve import Resolution, Resolved, resolve_endpoint
from auditor.findings.runtime import sample_of
from auditor.findings.selection import DropDeduplicator, FlowClass, classify
from auditor.model.delta import ConnectionCount, ConnectionCountKey
from auditor.model.events import FlowEvent
from auditor.model.flows import Endpoint, Flow
from auditor.policy.state import ClusterState

_ALLOWED, _DENIED, _AUDITED = FlowClass.ALLOWED, FlowClass.POLICY_DENIED, FlowClass.AUDITED
_JUDGED = {_ALLOWED: "allowed", _DENIED: "denied", _AUDITED: "audited"}
HEALTH, UNRESOLVED = "health", "unresolved"
"""`ConnectionCollector.target` of a flow with a cilium-health side, with a side that has no subject."""
RESOLVE_CACHE_MAX = 1_000_000
"""Resolved endpoints kept per (state revision, endpoint): bounded by the inventory and distinct IPs."""


@dataclass(frozen=True, slots=True, order=True)
class ConnectionKey:
    """A connection as people name it: workloads (or reserved identities / CIDRs), port, protocol."""

    source: str
    destination: str
    port: int
    protocol: str

    def __str__(self) -> str:
        return f"{self.source} -> {self.destination} {self.port}/{self.protocol}"


@dataclass(slots=True)
class Observation:
    """Flows of one judged connection: the same state, subjects, port, protocol and dataplane class."""

    key: ConnectionKey
    state: ClusterState
    src: Resolved
    dst: Resolved
    port: int
    protocol: str
    observed: str
    """The dataplane's verdict class: allowed, denied (by policy) or audited (audit mode would drop)."""
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    sample: str = ""
    """uuid (or RFC 3339 time) of the first flow."""

    def add(self, flow: Flow) -> None:
        if not self.count:
            self.first_ns = self.last_ns = flow.time_ns
            self.sample = sample_of(flow)
        self.count += 1
        if flow.time_ns < self.first_ns:
            self.first_ns = flow.time_ns
        elif flow.time_ns > self.last_ns:
            self.last_ns = flow.time_ns


@dataclass
class CollectStats:
    """What the collector saw; `skipped` by the correlator's reasons."""

    flows: int = 0
    judged: int = 0
    unresolved: int = 0
    deduplicated: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    first_ns: int = 0
    last_ns: int = 0


class ConnectionCollector:
    """Folds flow events into observations; see the module docstring."""

    def __init__(self, history: StateHistory, *, dedup: DropDeduplicator | None = None) -> None:
        self._history = history
        self._dedup = dedup or DropDeduplicator()
        self._resolved: dict[tuple[object, ...], Resolved] = {}
        self._by_object: dict[tuple[int, int, str], tuple[Endpoint, Resolved]] = {}
        self._observations: dict[tuple[object, ...], Observation] = {}
        self.stats = CollectStats()

    def add_all(self, events: Iterable[FlowEvent]) -> None:
        for event in events:
            if isinstance(event, Flow):
                self.add(event)

    def add(self, flow: Flow) -> None:
        """Count one flow; fold it into its observation when it carries a policy decision."""
        stats = self.stats
        stats.flows += 1
        time_ns = flow.time_ns
        if not stats.first_ns or time_ns < stats.first_ns:
            stats.first_ns = time_ns
        if time_ns > stats.last_ns:
            stats.last_ns = time_ns
        kind = flow.flow_class  # a light reader classified it already
        if kind is None:
            kind = classify(flow)
        observed = _JUDGED.get(kind)
        if observed is None:
            stats.skipped[kind.value] += 1
            return
        if kind is _DENIED and self._dedup.is_duplicate(flow):
            stats.deduplicated += 1
            return
        found = self.target(flow, observed)
        if isinstance(found, Observation):
            stats.judged += 1
            found.add(flow)
        elif found is HEALTH:
            stats.skipped["health"] += 1
        else:
            stats.unresolved += 1

    def target(self, flow: Flow, observed: str) -> Observation | str:
        """The observation a judged flow folds into (made empty when new), else HEALTH or UNRESOLVED
        (a cilium-health side, a side with no subject); counts nothing."""
        state = self._history.at(flow.time_ns)
        src = self._resolve(flow, state, source=True)
        dst = self._resolve(flow, state, source=False)
        if src.resolution is Resolution.HEALTH or dst.resolution is Resolution.HEALTH:
            return HEALTH
        if src.subject is None or dst.subject is None:
            return UNRESOLVED
        port, protocol = policy_l4(flow)
        key = (state.revision, id(src), id(dst), port, protocol, observed)
        found = self._observations.get(key)
        if found is None:
            connection = ConnectionKey(src.peer_workload, dst.peer_workload, port, protocol)
            found = Observation(connection, state, src, dst, port, protocol, observed)
            self._observations[key] = found
        return found

    def _resolve(self, flow: Flow, state: ClusterState, *, source: bool) -> Resolved:
        endpoint = flow.source if source else flow.destination
        # Readers share Endpoint objects between flows (KeyFlowSource caches them): the same object is
        # found by identity first, checked with `is` (the entry keeps it alive, so its id is not reused).
        same = self._by_object.get((state.revision, id(endpoint), flow.node_name))
        if same is not None and same[0] is endpoint:
            return same[1]
        key = (state.revision, endpoint.ip, endpoint.namespace, endpoint.pod_name, endpoint.identity,
               endpoint.labels, endpoint.names, flow.node_name)
        hit = self._resolved.get(key)
        if hit is None:
            if len(self._resolved) >= RESOLVE_CACHE_MAX:
                # Observations keep their Resolved objects alive, so ids in their keys stay unique.
                self._resolved.clear()
                self._by_object.clear()
            hit = resolve_endpoint(endpoint, flow.node_name, state)
            self._resolved[key] = hit
        if len(self._by_object) >= RESOLVE_CACHE_MAX:
            self._by_object.clear()
        self._by_object[(state.revision, id(endpoint), flow.node_name)] = (endpoint, hit)
        return hit

    def extend(self, observations: Iterable[Observation]) -> None:
        """Observations folded elsewhere (whatif's parts, merged), in the order of their first flows."""
        for observation in observations:
            self._observations[("merged", len(self._observations))] = observation

    def observations(self) -> list[Observation]:
        """Every observation, by connection key then first time."""
        return sorted(self._observations.values(), key=lambda o: (o.key, o.first_ns))


def sample_endpoint(endpoint: Endpoint) -> Endpoint:
    """The fields of an endpoint that `resolve_endpoint` reads, and nothing else (what the store keeps)."""
    return Endpoint(ip=endpoint.ip, identity=endpoint.identity, namespace=endpoint.namespace,
                    pod_name=endpoint.pod_name, labels=endpoint.labels, names=endpoint.names)


@dataclass(slots=True)
class _Tallied:
    count: int
    first_ns: int
    last_ns: int
    newest: Flow


class ConnectionTally:
    """Judged flows folded into distinct connections, at most `max_keys` keys per drain.

    A flow of a key beyond the bound is counted in `overflow` and not kept (the daemon reports it).
    """

    def __init__(self, max_keys: int) -> None:
        self._max_keys = max_keys
        self._slots: dict[ConnectionCountKey, _Tallied] = {}
        self.overflow = 0

    def add(self, flow: Flow, kind: FlowClass, src: Resolved, dst: Resolved) -> None:
        """One flow the correlator judged, with its class and resolved endpoints."""
        port, protocol = policy_l4(flow)
        key = (src.peer_workload, dst.peer_workload, port, protocol, flow.direction._value_, _JUDGED[kind])
        time_ns = flow.time_ns
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) >= self._max_keys:
                self.overflow += 1
                return
            self._slots[key] = _Tallied(1, time_ns, time_ns, flow)
            return
        slot.count += 1
        if time_ns < slot.first_ns:
            slot.first_ns = time_ns
        if time_ns >= slot.last_ns:
            slot.last_ns = time_ns
            slot.newest = flow

    def __len__(self) -> int:
        return len(self._slots)

    def drain(self) -> tuple[ConnectionCount, ...]:
        """The connections folded since the previous drain, in key order; the tally starts empty."""
        slots, self._slots = self._slots, {}
        return tuple(
            ConnectionCount(*key, count=slot.count, first_ns=slot.first_ns, last_ns=slot.last_ns,
                            sample_flow=sample_of(newest), source_endpoint=sample_endpoint(newest.source),
                            destination_endpoint=sample_endpoint(newest.destination), node=newest.node_name)
            for key, slot in sorted(slots.items()) for newest in (slot.newest,))
