"""Which flows carry a policy decision (`auditor.model.flowclass`), and the de-duplication of a denied
packet's two events.

Cilium reports one denied packet twice: a policy-verdict event (type 5, DROPPED) and a drop
event (type 1, sub_type 133 POLICY_DENIED).  `DropDeduplicator` keeps the last few denied
packets keyed by their 5-tuple and suppresses the *other* event type for the same 5-tuple
within `DEDUP_WINDOW_NS`.  Two events of the same type (e.g. two drop events for a burst of
UDP packets, or a TCP SYN retransmitted a second later) are both counted.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from auditor.model.flowclass import POLICY_DROP_REASONS, POLICY_DROP_SUB_TYPES, FlowClass, classify
from auditor.model.flows import EventType, Flow, FlowType

__all__ = ["DEDUP_MAX_KEYS", "DEDUP_WINDOW_NS", "POLICY_DROP_REASONS", "POLICY_DROP_SUB_TYPES",
           "DropDeduplicator", "FlowClass", "classify"]

DEDUP_WINDOW_NS = 50_000_000
"""50 ms: the two events of one packet are microseconds apart; retransmits are >= 200 ms apart."""

DEDUP_MAX_KEYS = 4096
"""Recent denied 5-tuples kept; the oldest are evicted first."""

_EV_L7, _EV_POLICY_VERDICT = int(EventType.L7), int(EventType.POLICY_VERDICT)
_FT_L7 = FlowType.L7

FiveTuple = tuple[str, str, int, int, str]


@dataclass(frozen=True, slots=True)
class _Seen:
    time_ns: int
    is_verdict_event: bool


class DropDeduplicator:
    """Counts each denied packet once although Cilium emits a policy-verdict and a drop event for it."""

    def __init__(self, window_ns: int = DEDUP_WINDOW_NS, max_keys: int = DEDUP_MAX_KEYS) -> None:
        self._window_ns = window_ns
        self._max_keys = max_keys
        self._recent: OrderedDict[FiveTuple, _Seen] = OrderedDict()

    def __len__(self) -> int:
        return len(self._recent)

    def is_duplicate(self, flow: Flow) -> bool:
        """True when `flow` is the second event of a denied packet already counted."""
        if flow.flow_type is _FT_L7 or flow.event_type == _EV_L7:
            return False
        key: FiveTuple = (
            flow.source.ip,
            flow.destination.ip,
            flow.source.port,
            flow.destination.port,
            flow.protocol.value,
        )
        return self.is_duplicate_key(key, flow.time_ns, flow.event_type == _EV_POLICY_VERDICT)

    def is_duplicate_key(self, key: FiveTuple, time_ns: int, is_verdict_event: bool) -> bool:
        """`is_duplicate` of a (non-L7) flow given by its 5-tuple, time and whether it is a verdict event."""
        seen = self._recent.pop(key, None)
        if (
            seen is not None
            and seen.is_verdict_event != is_verdict_event
            and abs(time_ns - seen.time_ns) <= self._window_ns
        ):
            return True  # the pair is complete: forget it so a retransmit counts again
        self._recent[key] = _Seen(time_ns, is_verdict_event)
        self._evict(time_ns)
        return False

    def _evict(self, now_ns: int) -> None:
        while self._recent:
            oldest_key = next(iter(self._recent))
            oldest = self._recent[oldest_key]
            if len(self._recent) <= self._max_keys and now_ns - oldest.time_ns <= self._window_ns:
                return
            del self._recent[oldest_key]
