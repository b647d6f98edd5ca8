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
    node_states: dict[str, str] = field(default_factory=dict)
    """node name -> NodeState value, from relay node_status events."""
    gaps: list[tuple[int, int]] = field(default_factory=list)
    """(from_ns, to_ns) windows known to be missing: lost events, disconnections."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_error(self, message: str) -> None:
        """Count one bad input item and keep its message if there is room."""
        with self._lock:
            self.bad_lines += 1
            if len(self.errors) < MAX_KEPT_ERRORS:
                self.errors.append(message)


class FlowSource(Protocol):
    """Yields flow events in stream order until exhausted or closed."""

    stats: SourceStats

    def events(self) -> Iterator[FlowEvent]:
        """Iterate over events; a live source blocks waiting for more."""
        ...

    def close(self) -> None:
        """Stop producing; a blocked `events()` iterator returns soon after."""
        ...
