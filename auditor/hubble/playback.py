"""What the replay server plays: recorded responses merged by time, and the clock that plays them.

The recording is played like traffic reaching a Hubble server's ring buffer.  Unpaced, every
record is in the buffer from the start; with `rate` N they arrive N per second, with `speed` S
at S times their recorded pace (2 = twice as fast), from the first GetFlows request on.  Either
way the stream of the very first GetFlows request counts as having been open before anything
arrived (see replay_server.select_history).  With `loop` the
recording starts again after its end (the buffer keeps the newest pass's worth of entries).
Entries are numbered 0, 1, 2, ... across passes; entry k is record k mod n.  A clock can be
injected so tests need no sleeping.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.hubble.convert import timestamp_ns
from auditor.hubble.files import iter_responses


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded GetFlowsResponse: wire bytes for sending, the message for filtering."""

    payload: bytes
    message: Any
    time_ns: int
    is_flow: bool


def fill_envelope(response: Any) -> Any:
    """Set the top-level `time` and `node_name` from the flow when missing, as a Hubble server does."""
    if response.WhichOneof("response_types") != "flow":
        return response
    flow = response.flow
    if not response.HasField("time") and flow.HasField("time"):
        response.time.CopyFrom(flow.time)
    if not response.node_name and flow.node_name:
        response.node_name = flow.node_name
    return response


def make_record(response: Any) -> Record:
    """Pre-serialize one GetFlowsResponse; time is the flow's, else the response's."""
    response = fill_envelope(response)
    is_flow = response.WhichOneof("response_types") == "flow"
    time_ns = (timestamp_ns(response.flow.time) if is_flow else 0) or timestamp_ns(response.time)
    return Record(response.SerializeToString(), response, time_ns, is_flow)


def merge_by_time(streams: Iterable[Sequence[Record]]) -> list[Record]:
    """Several recordings as one, ordered by time; each keeps its own order (like Relay's merge)."""
    return list(heapq.merge(*streams, key=lambda record: record.time_ns))


def load_records(paths: Sequence[str | Path], extra: Sequence[Any] = ()) -> tuple[list[Record], list[str]]:
    """Records of `extra` responses then of every file, merged by time, and each bad line's problem."""
    problems: list[str] = []
    streams = [[make_record(response) for response in extra]]
    for path in paths:
        streams.append([make_record(response) for _line, response in iter_responses(path, problems.append)])
    if len(streams) == 2 and not streams[0]:
        return streams[1], problems
    return merge_by_time(streams), problems


class Playback:
    """Which entries have 'arrived' in the buffer, and waiting for the next ones."""

    def __init__(self, records: Sequence[Record], *, rate: float | None = None, loop: bool = False,
                 speed: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.records = tuple(records)
        self.rate, self.loop, self.speed, self._clock = rate, loop, speed, clock
        times = [record.time_ns for record in self.records]
        first = min((t for t in times if t), default=0)
        self._arrivals = list(itertools.accumulate((max(t - first, 0) if t else 0 for t in times), max))
        """Nanoseconds of recorded time after the first record at which each record arrives (--speed)."""
        self._period = (self._arrivals[-1] + 1) if self._arrivals else 1
        self._started: float | None = None
        self._lock = threading.Lock()
        self._demand = len(self.records)
        """Unpaced looping: entries handed out so far (a pass is produced only when asked for)."""

    @property
    def paced(self) -> bool:
        return bool(self.rate or self.speed)

    def _due(self, number: int) -> float:
        """Seconds after the start at which entry `number` arrives."""
        if self.rate:
            return (number + 1) / self.rate
        passes, index = divmod(number, len(self.records))
        return (passes * self._period + self._arrivals[index]) / 1e9 / (self.speed or 1.0)

    def _arrived(self, elapsed: float) -> float:
        if self.rate:
            return int(elapsed * self.rate)
        recorded = elapsed * (self.speed or 1.0) * 1e9
        passes, within = divmod(recorded, self._period) if self.loop else (0, recorded)
        return passes * len(self.records) + bisect.bisect_right(self._arrivals, within)

    @property
    def total(self) -> float:
        """How many entries the playback will ever have."""
        return math.inf if self.loop and self.records else len(self.records)

    def start(self) -> bool:
        """Begin playing (at the first GetFlows); True for the call that began it."""
        with self._lock:
            if self._started is not None:
                return False
            self._started = self._clock()
            return True

    def available(self) -> int:
        """Entries in the buffer now: unpaced, the whole recording from the start; paced, what arrived."""
        if not self.paced:
            return self._demand if self.loop else len(self.records)
        if self._started is None or not self.records:
            return 0
        return int(min(self.total, self._arrived(self._clock() - self._started)))

    def window(self) -> range:
        """Entry numbers the buffer holds now: the newest pass's worth."""
        end = self.available()
        return range(max(0, end - len(self.records)), end)

    def entry(self, number: int) -> Record:
        return self.records[number % len(self.records)]

    def wait_for(self, number: int, stop: threading.Event) -> bool:
        """Block until entry `number` has arrived; False when it never will or `stop` is set."""
        if number >= self.total:
            return False
        if not self.paced:
            with self._lock:
                self._demand = max(self._demand, number + 1)
            return not stop.is_set()
        while not stop.is_set():
            assert self._started is not None
            due = self._started + self._due(number) - self._clock()
            if due <= 0:
                return True
            stop.wait(min(due, 0.2))
        return False

    def flow_counts(self) -> tuple[int, int, int]:
        """(flows in the buffer, flows recorded, flows played so far) for ServerStatus."""
        window = self.window()
        flows = sum(1 for record in self.records if record.is_flow)
        buffered = sum(1 for number in window if self.entry(number).is_flow)
        passes, rest = divmod(window.stop, len(self.records) or 1)
        return buffered, flows, passes * flows + sum(1 for record in self.records[:rest] if record.is_flow)
