"""The bounded queue between reader and analysis: overflow is counted and exported, never lost silently."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from auditor.app.daemon import Daemon
from auditor.app.flowqueue import END_OF_STREAM, FlowQueue, pump
from auditor.errors import ConfigError
from auditor.hubble.files import FileFlowSource
from auditor.hubble.replay_server import ReplayServer
from auditor.hubble.source import SourceStats
from auditor.model.events import FlowEvent
from tests.daemon_support import (
    DEMO_FLOW_COUNT,
    DEMO_FLOWS,
    DEMO_MANIFESTS,
    build,
    daemon_base,
    http_get,
    running,
    total,
    wait_until,
)


class ListSource:
    """A real in-memory FlowSource: yields a list of events as fast as the consumer takes them."""

    def __init__(self, events: Sequence[FlowEvent]) -> None:
        self._events = events
        self._stats = SourceStats(connected=True)
        self._closed = threading.Event()

    @property
    def stats(self) -> SourceStats:
        return self._stats

    def events(self) -> Iterator[FlowEvent]:
        for event in self._events:
            if self._closed.is_set():
                return
            self._stats.flows += 1
            yield event

    def close(self) -> None:
        self._closed.set()


@pytest.fixture(scope="module")
def demo_events() -> list[FlowEvent]:
    return list(FileFlowSource([DEMO_FLOWS]).events())


def drain_until_end(flow_queue: FlowQueue, timeout: float = 10.0) -> int:
    """Read the queue up to END_OF_STREAM; the number of events read before it."""
    count = 0
    while True:
        item = flow_queue.get(timeout=timeout)
        assert item is not None, "END_OF_STREAM never arrived"
        if item is END_OF_STREAM:
            return count
        count += 1


def pump_thread(source: object, flow_queue: FlowQueue, *, lossless: bool) -> tuple[threading.Thread,
                                                                                     list[BaseException]]:
    fatal: list[BaseException] = []
    thread = threading.Thread(target=pump, daemon=True, kwargs={
        "source": source, "flow_queue": flow_queue, "stop": threading.Event(), "lossless": lossless,
        "on_fatal": fatal.append})
    thread.start()
    return thread, fatal


class TestFlowQueue:
    def test_offer_to_full_queue_counts_the_drop(self) -> None:
        """offer() on a full queue returns False and counts one drop per refused item."""
        flow_queue = FlowQueue(2)
        results = [flow_queue.offer(index) for index in range(5)]
        assert results == [True, True, False, False, False]
        assert flow_queue.dropped == 3
        assert len(flow_queue) == 2

    def test_rejects_non_positive_size(self) -> None:
        """A queue size of 0 is a configuration error naming the flag, not an unbounded queue."""
        with pytest.raises(ConfigError, match="--queue-size must be a positive number of events, got 0"):
            FlowQueue(0)


class TestPumpAccounting:
    def test_lossy_pump_accounts_for_every_event(self, demo_events: list[FlowEvent]) -> None:
        """Nobody reads a 16-slot queue: dropped + enqueued == produced, and memory stays at 16."""
        source, flow_queue = ListSource(demo_events), FlowQueue(16)
        thread, fatal = pump_thread(source, flow_queue, lossless=False)
        wait_until(lambda: source.stats.flows == len(demo_events), 10, "the source to be exhausted")
        assert len(flow_queue) == 16
        enqueued = drain_until_end(flow_queue)
        thread.join(timeout=10)
        assert not fatal
        assert (flow_queue.dropped, enqueued) == (len(demo_events) - 16, 16)
        assert flow_queue.dropped + enqueued == source.stats.flows

    def test_lossless_pump_drops_nothing(self, demo_events: list[FlowEvent]) -> None:
        """A file source waits for room instead: everything arrives, in order, nothing dropped."""
        source, flow_queue = ListSource(demo_events), FlowQueue(4)
        thread, _ = pump_thread(source, flow_queue, lossless=True)
        received = []
        while (item := flow_queue.get(timeout=10)) is not END_OF_STREAM:
            received.append(item)
        thread.join(timeout=10)
        assert received == demo_events
        assert flow_queue.dropped == 0


def live_daemon(workdir: Path, address: str, queue_size: int) -> Daemon:
    return build(workdir, ["--manifests", str(DEMO_MANIFESTS), "--hubble-server", address,
                           "--flush-interval", "1s"], queue_size=queue_size)


class TestDaemonExportsOverflow:
    def test_scraped_drop_counter_matches_overflow(self, tmp_path: Path) -> None:
        """A live stream into the daemon's 8-slot queue that nobody analyses: the scrape shows every drop."""
        with ReplayServer([DEMO_FLOWS], node_status=False) as replay:  # flows only in the 8 slots
            daemon = live_daemon(tmp_path, replay.address, queue_size=8)
            daemon.server.start()
            thread, _ = pump_thread(daemon.source, daemon.queue, lossless=False)
            try:
                wait_until(lambda: daemon.source.stats.flows == DEMO_FLOW_COUNT, 15, "all demo flows received")
                text = http_get(daemon_base(daemon) + "/metrics")[1]
            finally:
                daemon.source.close()
                drain_until_end(daemon.queue)
                thread.join(timeout=10)
                daemon.server.stop()
                daemon.store.close()
        assert total(text, "auditor_flows_received_total") == DEMO_FLOW_COUNT
        assert total(text, "auditor_queue_dropped_total") == DEMO_FLOW_COUNT - 8

    @pytest.mark.slow
    def test_running_daemon_loses_nothing_silently(self, tmp_path: Path) -> None:
        """Full speed into a 1-slot queue of a running daemon: processed + dropped == received."""
        with ReplayServer([DEMO_FLOWS]) as replay, running(live_daemon(tmp_path, replay.address, 1)) as daemon:
            base = daemon_base(daemon)

            def settled() -> bool:
                text = http_get(base + "/metrics")[1]
                processed = total(text, "auditor_flows_processed_total")
                dropped = total(text, "auditor_queue_dropped_total")
                return total(text, "auditor_flows_received_total") == DEMO_FLOW_COUNT == processed + dropped
            wait_until(settled, 20, "received == processed + dropped")
