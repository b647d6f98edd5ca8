"""A replay fed by an endless stream: `hubble observe --follow -o jsonpb | auditor replay-server --flows -`.

Records are appended as their lines arrive (stdin or a FIFO is never read to its end first), so the
replay server serves a live pipe like a Hubble server serves its node: the buffer holds the newest
`capacity` entries (Hubble's own ring buffer holds 4095 by default), followers get each entry as
it arrives.  It has the same interface as auditor.hubble.playback.Playback.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from auditor.hubble.files import iter_responses
from auditor.hubble.playback import Record, make_record

DEFAULT_CAPACITY = 65_535
"""Entries kept for new requests (Hubble's largest ring buffer size)."""
_POLL = 0.2


class LivePlayback:
    """Entries arriving from a stream; numbered 0, 1, 2, ... in arrival order."""

    rate = speed = None
    loop = False

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._entries: deque[Record] = deque(maxlen=capacity)
        self._count = 0
        self._flows_seen = 0
        self._done = False
        self._started = False
        self._condition = threading.Condition()
        self.capacity = capacity

    @property
    def records(self) -> tuple[Record, ...]:
        """The buffered entries, oldest first (a snapshot)."""
        with self._condition:
            return tuple(self._entries)

    def append(self, record: Record) -> None:
        with self._condition:
            self._entries.append(record)
            self._count += 1
            self._flows_seen += record.is_flow
            self._condition.notify_all()

    def finish(self) -> None:
        """The stream ended: followers stop waiting for more."""
        with self._condition:
            self._done = True
            self._condition.notify_all()

    def feed(self, path: str | Path, on_problem: Callable[[str], None]) -> threading.Thread:
        """Start a thread appending every response of `path` as it arrives, then finishing."""
        def run() -> None:
            try:
                for _line, response in iter_responses(path, on_problem):
                    self.append(make_record(response))
            except Exception as exc:  # an unreadable stream ends the feed, never the server
                on_problem(f"{path}: {exc}")
            finally:
                self.finish()

        thread = threading.Thread(target=run, name="replay-feed", daemon=True)
        thread.start()
        return thread

    @property
    def total(self) -> float:
        with self._condition:
            return self._count if self._done else math.inf

    def start(self) -> bool:
        with self._condition:
            began, self._started = not self._started, True
            return began

    def available(self) -> int:
        with self._condition:
            return self._count

    def window(self) -> range:
        with self._condition:
            return range(self._count - len(self._entries), self._count)

    def entry(self, number: int) -> Record:
        """Entry `number`; one already dropped from the buffer gives the oldest kept."""
        with self._condition:
            first = self._count - len(self._entries)
            return self._entries[max(number - first, 0)]

    def wait_for(self, number: int, stop: threading.Event) -> bool:
        """Block until entry `number` arrived; False when the stream ended first or `stop` is set."""
        with self._condition:
            while self._count <= number and not self._done and not stop.is_set():
                self._condition.wait(_POLL)
            return self._count > number and not stop.is_set()

    def flow_counts(self) -> tuple[int, int, int]:
        """(flows in the buffer, buffer capacity, flows seen) for ServerStatus."""
        with self._condition:
            buffered = sum(1 for record in self._entries if record.is_flow)
            return buffered, self.capacity, self._flows_seen
