"""FlowQueue hand-off: batches between reader and analysis, never a stalled or reordered stream."""

from __future__ import annotations

import threading

from auditor.app.flowqueue import END_OF_STREAM, FlowQueue


def consume(flow_queue: FlowQueue, out: list[object]) -> threading.Thread:
    """A consumer thread reading until END_OF_STREAM."""
    def run() -> None:
        while (item := flow_queue.get(timeout=10)) is not END_OF_STREAM:
            if item is not None:
                out.append(item)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class TestHandOff:
    def test_batches_arrive_complete_and_in_order(self) -> None:
        """Many hand-offs to a consumer that keeps up deliver every event once, in order, none dropped."""
        flow_queue, got = FlowQueue(10_000), list[object]()
        thread = consume(flow_queue, got)
        for index in range(5 * FlowQueue.HANDOFF_BATCH + 7):
            assert flow_queue.offer(index)
        assert flow_queue.put_end()
        thread.join(10)
        assert got == list(range(5 * FlowQueue.HANDOFF_BATCH + 7))
        assert flow_queue.dropped == 0

    def test_idle_consumer_that_does_not_drain_cannot_stall_the_producer(self) -> None:
        """A producer whose hand-off is not answered (consumer busy elsewhere) goes on after a bounded wait."""
        flow_queue = FlowQueue(1000)
        flow_queue._idle = True  # as if the consumer had gone idle and then stopped reading
        for index in range(3 * FlowQueue.HANDOFF_BATCH):
            assert flow_queue.offer(index)
        assert len(flow_queue) == 3 * FlowQueue.HANDOFF_BATCH

    def test_small_queue_hands_off_when_full(self) -> None:
        """A queue smaller than a batch hands off at its size, so a live source drops nothing a
        consumer that keeps up could have taken."""
        flow_queue, got = FlowQueue(4), list[object]()
        thread = consume(flow_queue, got)
        threading.Event().wait(0.05)  # let the consumer go idle
        delivered = sum(flow_queue.offer(index) for index in range(200))
        assert flow_queue.put_end()
        thread.join(10)
        assert len(got) == delivered
        assert got == sorted(got, key=lambda item: item if isinstance(item, int) else -1)

    def test_get_times_out_empty(self) -> None:
        """get() on an empty queue returns None after its timeout."""
        assert FlowQueue(8).get(timeout=0.02) is None
