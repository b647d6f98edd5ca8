"""The one flow-source interface: live gRPC, flow files and replays all look like this."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from auditor.model.events import FlowEvent, LostEvents, NodeStatus

MAX_KEPT_ERRORS = 100
"""How many individual bad-input errors a source keeps for reporting (all are counted)."""
MAX_GAPS = 10_000
"""Gaps kept per source (Hubble reports lost events up to once a second per node)."""


def add_gap(gaps: list[tuple[int, int]], start_ns: int, end_ns: int) -> None:
    """Append a missing window; overlapping windows merge, and past MAX_GAPS the last one widens."""
    if gaps and (start_ns <= gaps[-1][1] or len(gaps) >= MAX_GAPS):
        last_start, last_end = gaps[-1]
        gaps[-1] = (min(last_start, start_ns), max(last_end, end_ns))
    else:
        gaps.append((start_ns, end_ns))


@dataclass
class SourceStats:
    """Counters a source keeps while it runs; read by the exporter and summaries.

    Mutated only by the source's own thread; readers take `snapshot()` copies.
    """

    flows: int = 0
    lost_events: dict[str, int] = field(default_factory=dict)
    """Events Hubble reported lost, by LostEventSource label value."""
    bad_lines: int = 0
    """Input items that could not be decoded (file lines, wire messages)."""
    errors: list[str] = field(default_factory=list)
    """The first MAX_KEPT_ERRORS decode errors, with file and line."""
    last_flow_time_ns: int = 0
    connected: bool = False
    reconnects: int = 0
    duplicates_dropped: int = 0
    ignored_events: int = 0
    """Responses that carry nothing auditor reads (agent or debug events, empty oneof)."""
    node_states: dict[str, str] = field(default_factory=dict)
    """node name -> NodeState value, from relay node_status events."""
    gaps: list[tuple[int, int]] = field(default_factory=list)
    """(from_ns, to_ns) windows known to be missing: lost events, disconnections."""
    outages: list[tuple[int, int]] = field(default_factory=list)
    """(from_ns, to_ns) of each disconnection, in order (the daemon records new ones in the store)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_lost(self, event: LostEvents) -> None:
        """Count the events Hubble reported lost and record their window as a gap."""
        key = event.source.value
        with self._lock:
            self.lost_events[key] = self.lost_events.get(key, 0) + event.count
            add_gap(self.gaps, *event.span_ns)

    def record_node_status(self, event: NodeStatus) -> None:
        with self._lock:
            for node in event.node_names:
                self.node_states[node] = event.state.value

    def record_gap(self, from_ns: int, to_ns: int) -> None:
        """A disconnection: a gap, and an outage."""
        with self._lock:
            add_gap(self.gaps, from_ns, to_ns)
            if len(self.outages) < MAX_GAPS:
                self.outages.append((from_ns, to_ns))

    def snapshot(self) -> SourceStats:
        """A consistent copy for readers in other threads (the exporter, summaries)."""
        with self._lock:
            return SourceStats(
                flows=self.flows,
                lost_events=dict(self.lost_events),
                bad_lines=self.bad_lines,
                errors=list(self.errors),
                last_flow_time_ns=self.last_flow_time_ns,
                connected=self.connected,
                reconnects=self.reconnects,
                duplicates_dropped=self.duplicates_dropped,
                ignored_events=self.ignored_events,
                node_states=dict(self.node_states),
                gaps=list(self.gaps),
                outages=list(self.outages),
            )

    def record_error(self, message: str) -> None:
        """Count one bad input item and keep its message if there is room."""
        with self._lock:
            self.bad_lines += 1
            if len(self.errors) < MAX_KEPT_ERRORS:
                self.errors.append(message)


class FlowSource(Protocol):
    """Yields flow events in stream order until exhausted or closed."""

    @property
    def stats(self) -> SourceStats:
        """Counters of this source (a subclass of SourceStats is fine)."""
        ...

    def events(self) -> Iterator[FlowEvent]:
        """Iterate over events; a live source blocks waiting for more."""
        ...

    def close(self) -> None:
        """Stop producing; a blocked `events()` iterator returns soon after."""
        ...
