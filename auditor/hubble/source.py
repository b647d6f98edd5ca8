"""The one flow-source interface: live gRPC, flow files and replays all look like this."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from auditor.model.events import FlowEvent

MAX_KEPT_ERRORS = 100
"""How many individual bad-input errors a source keeps for reporting (all are counted)."""


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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_lost(self, source: str, count: int) -> None:
        """Count events Hubble reported lost at `source`."""
        with self._lock:
            self.lost_events[source] = self.lost_events.get(source, 0) + count

    def set_node_state(self, node: str, state: str) -> None:
        with self._lock:
            self.node_states[node] = state

    def add_gap(self, from_ns: int, to_ns: int) -> None:
        with self._lock:
            self.gaps.append((from_ns, to_ns))

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
