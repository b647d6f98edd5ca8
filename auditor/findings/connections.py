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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from auditor.findings.correlate import StateHistory, policy_l4
from auditor.findings.resolve import Resolution, Resolved, resolve_endpoint
from auditor.findings.runtime import sample_of
from auditor.findings.selection import DropDeduplicator, FlowClass, classify
from auditor.model.events import FlowEvent
from auditor.model.flows import Flow
from auditor.policy.state import ClusterState

_ALLOWED, _DENIED, _AUDITED = FlowClass.ALLOWED, FlowClass.POLICY_DENIED, FlowClass.AUDITED
_JUDGED = {_ALLOWED: "allowed", _DENIED: "denied", _AUDITED: "audited"}
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
        kind = classify(flow)
        observed = _JUDGED.get(kind)
        if observed is None:
            stats.skipped[kind.value] += 1
            return
        if kind is _DENIED and self._dedup.is_duplicate(flow):
            stats.deduplicated += 1
            return
        state = self._history.at(time_ns)
        src = self._resolve(flow, state, source=True)
        dst = self._resolve(flow, state, source=False)
        if src.resolution is Resolution.HEALTH or dst.resolution is Resolution.HEALTH:
            stats.skipped["health"] += 1
            return
        if src.subject is None or dst.subject is None:
            stats.unresolved += 1
            return
        stats.judged += 1
        port, protocol = policy_l4(flow)
        key = (state.revision, id(src), id(dst), port, protocol, observed)
        found = self._observations.get(key)
        if found is None:
            connection = ConnectionKey(src.peer_workload, dst.peer_workload, port, protocol)
            found = Observation(connection, state, src, dst, port, protocol, observed)
            self._observations[key] = found
        found.add(flow)

    def _resolve(self, flow: Flow, state: ClusterState, *, source: bool) -> Resolved:
        endpoint = flow.source if source else flow.destination
        key = (state.revision, endpoint.ip, endpoint.namespace, endpoint.pod_name, endpoint.identity,
               endpoint.labels, endpoint.names, flow.node_name)
        hit = self._resolved.get(key)
        if hit is None:
            if len(self._resolved) >= RESOLVE_CACHE_MAX:
                # Observations keep their Resolved objects alive, so ids in their keys stay unique.
                self._resolved.clear()
            hit = resolve_endpoint(endpoint, flow.node_name, state)
            self._resolved[key] = hit
        return hit

    def observations(self) -> list[Observation]:
        """Every observation, by connection key then first time."""
        return sorted(self._observations.values(), key=lambda o: (o.key, o.first_ns))
