"""The non-flow events a flow source delivers, and the union every source yields."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from auditor.model.flows import Flow


class LostEventSource(enum.Enum):
    """flow.LostEventSource, lower-cased for metric labels."""

    UNKNOWN = "unknown"
    PERF_EVENT_RING_BUFFER = "perf_event_ring_buffer"
    OBSERVER_EVENTS_QUEUE = "observer_events_queue"
    HUBBLE_RING_BUFFER = "hubble_ring_buffer"


@dataclass(frozen=True, slots=True)
class LostEvents:
    """Hubble reported that `count` events were lost at `source` (a gap in our data)."""

    source: LostEventSource
    count: int
    node_name: str = ""
    time_ns: int = 0
    cpu: int | None = None
    first_ns: int = 0
    last_ns: int = 0

    @property
    def span_ns(self) -> tuple[int, int]:
        """(from_ns, to_ns) of the missing data: first..last when given, else the report's own time."""
        start = self.first_ns or self.time_ns
        return start, max(start, self.last_ns or self.time_ns)

    @property
    def gap_reason(self) -> str:
        """How a gap of these lost events is named: `lost-events:<source>[@node]`."""
        return f"lost-events:{self.source.value}" + (f"@{self.node_name}" if self.node_name else "")


class NodeState(enum.Enum):
    """relay.NodeState."""

    UNKNOWN = "unknown"
    CONNECTED = "connected"
    UNAVAILABLE = "unavailable"
    GONE = "gone"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """Relay says these nodes changed state."""

    state: NodeState
    node_names: tuple[str, ...]
    message: str = ""
    time_ns: int = 0


@dataclass(frozen=True, slots=True)
class RawFlow:
    """A flow still in its wire form (a serialized GetFlowsResponse), for a worker process to convert.

    The live client yields these in raw mode (`auditor run --workers N`): the reader only routes by
    node, and the worker that judges the flow converts it."""

    node_name: str
    time_ns: int
    data: bytes


FlowEvent = Flow | LostEvents | NodeStatus | RawFlow
"""Everything a flow source yields, in stream order."""
