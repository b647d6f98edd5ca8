"""The bounded queue between the Hubble reader thread and the analysis thread.

A live stream must never be slowed by analysis (Hubble would drop on its side, unseen), so
live events are *offered*: when the queue is full the event is dropped and counted.  File
sources are replayed losslessly: the reader blocks until there is room.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from auditor.errors import ConfigError
from auditor.hubble.source import FlowSource
from auditor.log import LOG_AT, get_logger
from auditor.model.events import FlowEvent
from auditor.model.flows import Flow

END_OF_STREAM = object()
"""Put after the source's last event, so the analysis knows nothing more will come."""

Item = FlowEvent | object

_log = get_logger("auditor.app.queue")


class FlowQueue:
    """A bounded FIFO that counts what it had to drop.

    Built for one producer and one consumer sharing the GIL.  Whenever one thread waits for the
    GIL while the other runs, every GIL release of the runner (the gRPC reader releases it for
    each message) wakes the waiter for nothing, on another core: that costs more than the analysis
    itself.  So the two threads hand over in batches instead of contending:

    - the consumer, finding the queue empty, marks itself idle and sleeps (off the GIL) until the
      producer wakes it or `POLL_S` passes (so a trickle of events waits at most that long);
    - the producer, once `HANDOFF_BATCH` events wait for an idle consumer, wakes it and yields
      until the consumer has drained them, but never longer than `HANDOFF_WAIT_S`: a consumer
      that is busy elsewhere (a store flush) cannot stall a live stream, whose overflow is counted.

    A deque (atomic append/popleft) replaces `queue.Queue`, whose condition woke the consumer per event.
    """

    HANDOFF_BATCH = 128
    """Events the producer gathers before it wakes an idle consumer."""
    HANDOFF_WAIT_S = 0.01
    """Longest the producer yields to the consumer at a hand-off."""
    POLL_S = 0.01
    """How often an idle consumer looks for events nobody woke it for (latency at low rates)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize <= 0:
            raise ConfigError(f"--queue-size must be a positive number of events, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[Item] = deque()
        self._batch = min(self.HANDOFF_BATCH, maxsize)
        self._wake = threading.Event()
        self._drained = threading.Event()
        self._idle = False
        self._lock = threading.Lock()
        self.dropped = 0
        """Events dropped because the queue was full (exported as auditor_queue_dropped_total)."""
        self.dropped_flows = 0
        """The flows among them (the exit accounting)."""

    def offer(self, item: Item) -> bool:
        """Enqueue without waiting; a full queue drops the item and counts it."""
        if len(self._items) >= self.maxsize:
            with self._lock:
                self.dropped += 1
                self.dropped_flows += type(item) is Flow
            return False
        self._append(item)
        return True

    def _append(self, item: Item) -> None:
        items = self._items
        items.append(item)
        if self._idle and len(items) >= self._batch:
            self._idle = False  # one hand-off per idle spell: the consumer marks itself idle again
            self._drained.clear()
            self._wake.set()
            self._drained.wait(self.HANDOFF_WAIT_S)

    def put(self, item: Item, stop: threading.Event) -> bool:
        """Enqueue, waiting for room; gives up (False) once `stop` is set."""
        while len(self._items) >= self.maxsize:
            if stop.wait(_ROOM_POLL_S):
                return False
        if stop.is_set():
            return False
        self._append(item)
        return True

    def put_over(self, item: Item) -> None:
        """Enqueue even past `maxsize` (by one): the event a stopping reader already read."""
        self._items.append(item)

    def put_end(self, timeout: float = 10.0) -> bool:
        """Enqueue END_OF_STREAM, waiting up to `timeout` s for the analysis to make room."""
        deadline = time.monotonic() + timeout
        while len(self._items) >= self.maxsize:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_ROOM_POLL_S)
        self._items.append(END_OF_STREAM)
        self._wake.set()
        return True

    def get(self, timeout: float) -> Item | None:
        """The next item, or None when nothing arrived within `timeout` seconds."""
        items = self._items
        try:
            return items.popleft()
        except IndexError:
            pass
        deadline = time.monotonic() + timeout
        self._wake.clear()
        self._idle = True
        self._drained.set()
        try:
            while not items:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._wake.wait(min(remaining, self.POLL_S))
                self._wake.clear()
        finally:
            self._idle = False
        return items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def flows_left(self) -> int:
        """Flows still queued (the exit accounting: received = analysed + queued + dropped)."""
        return sum(1 for item in list(self._items) if type(item) is Flow)


_ROOM_POLL_S = 0.001
"""How often a blocked producer looks for room (file sources only: live events are never blocked)."""


def pump(
    source: FlowSource,
    flow_queue: FlowQueue,
    stop: threading.Event,
    *,
    lossless: bool,
    on_fatal: Callable[[BaseException], None],
) -> None:
    """Move events from `source` into `flow_queue` until the source ends or `stop` is set.

    Always ends the stream with END_OF_STREAM.  An exception from the source (only raised for
    configuration errors: the live client reconnects by itself) is handed to `on_fatal`.
    """
    try:
        for event in source.events():
            # The source counted `event` as received: it is queued (or, live, counted dropped) before
            # any stop is obeyed, so received = analysed + queued + dropped holds at exit.
            if lossless:
                if not flow_queue.put(event, stop):
                    flow_queue.put_over(event)
                    break
            elif not flow_queue.offer(event) and flow_queue.dropped in LOG_AT:
                _log.warning("queue_overflow", dropped=flow_queue.dropped, size=flow_queue.maxsize)
            if stop.is_set():
                break
    except Exception as exc:
        on_fatal(exc)
    finally:
        flow_queue.put_end()
