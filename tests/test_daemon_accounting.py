"""Exact accounting at exit: every flow the source counted is analysed, still queued, or counted dropped."""

from __future__ import annotations

import time
from pathlib import Path

from tests.daemon_support import DEMO_FLOWS, DEMO_MANIFESTS, build, running


def test_stop_mid_replay_loses_no_counted_flow(tmp_path: Path) -> None:
    """Stopped while the reader waits for room, received = analysed + queued + dropped exactly."""
    flows = tmp_path / "flows.jsonl"
    flows.write_text(DEMO_FLOWS.read_text() * 400)
    daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--flows", str(flows), "--queue-size", "1",
                              "--workers", "1"])
    with running(daemon):
        deadline = time.monotonic() + 10
        while daemon.analyzer.flows_handled < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
    received = daemon.source.stats.flows
    analysed, queued, dropped = daemon.analyzer.flows_handled, daemon.queue.flows_left(), daemon.queue.dropped
    assert 200 <= received < DEMO_FLOWS.read_text().count("\n") * 400
    assert received == analysed + queued + dropped
