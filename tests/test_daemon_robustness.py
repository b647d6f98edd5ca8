"""The daemon never dies on one bad flow or a store outage: it counts, logs (rate-limited) and goes on."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.app.analysis import Analyzer
from auditor.app.inventory import manifest_inventory
from auditor.errors import StoreError
from auditor.findings.correlate import Correlator
from auditor.hubble.files import FileFlowSource
from auditor.hubble.replay_server import ReplayServer
from auditor.model.events import LostEvents, LostEventSource
from auditor.model.flows import Flow
from auditor.policy.engine import PolicyEngine
from auditor.store import open_store
from auditor.store.sqlite import SqliteStore
from tests.daemon_support import (
    DEMO_FLOW_COUNT,
    DEMO_FLOWS,
    DEMO_MANIFESTS,
    build,
    daemon_base,
    daemon_process,
    http_get,
    running,
    total,
    wait_until,
)
from tests.test_daemon_queue import ListSource

HOUR_NS = 3600 * 10**9


def demo_flows() -> list[Flow]:
    return [event for event in FileFlowSource([DEMO_FLOWS]).events() if isinstance(event, Flow)]


def shapeless(flow: Flow) -> Flow:
    """A flow of a shape the pure core does not expect (no source endpoint at all)."""
    return dataclasses.replace(flow, source=None)  # type: ignore[arg-type]


def metrics(base: str) -> str:
    return http_get(base + "/metrics")[1]


@pytest.fixture
def locked_db(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A migrated store file and a second connection ready to take its write lock."""
    path = tmp_path / "auditor.db"
    open_store(f"sqlite:{path}").close()
    other = sqlite3.connect(path, isolation_level=None)
    yield path, other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def analyzer_on(store: SqliteStore) -> Analyzer:
    inventory = manifest_inventory([str(DEMO_MANIFESTS)], None, HOUR_NS)
    correlator = Correlator(inventory.history, PolicyEngine())
    return Analyzer(correlator=correlator, store=store, latest_state=inventory.history.latest,
                    clock_ns=time.time_ns)


class TestBadFlowInTheRunningDaemon:
    def test_unexpected_flow_shape_is_counted_and_the_rest_analysed(self, tmp_path: Path) -> None:
        """One flow that makes the correlator raise: counted as bad_flows{reason="analysis"}, the rest go on."""
        flows = demo_flows()
        events = [*flows[:10], shapeless(flows[10]), *flows[11:]]
        daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS),
                                  "--flush-interval", "1s"])
        daemon.source = ListSource(events)
        with running(daemon) as live:
            base = daemon_base(live)
            wait_until(lambda: total(metrics(base), "auditor_flows_processed_total") == len(flows), 20,
                       "every other flow analysed")
            text = metrics(base)
            assert total(text, "auditor_bad_flows_total", reason="analysis") == 1
            wait_until(lambda: total(metrics(base), "auditor_open_findings") > 0, 10, "findings flushed")

    def test_flow_time_beyond_the_store_range_is_counted_not_fatal(self, tmp_path: Path) -> None:
        """A flow dated year 9999 (beyond 64-bit ns) in a flows file: counted as reason="time", no exit."""
        line = json.loads(DEMO_FLOWS.read_text().splitlines()[0])
        line["flow"]["time"] = line["time"] = "9999-12-31T23:59:59Z"
        flows_file = tmp_path / "flows.jsonl"
        flows_file.write_text(json.dumps(line) + "\n" + DEMO_FLOWS.read_text())
        flags = ("--manifests", str(DEMO_MANIFESTS), "--flows", str(flows_file), "--store", "sqlite:a.db",
                 "--flush-interval", "1s")
        with daemon_process(tmp_path, *flags) as daemon:
            wait_until(lambda: total(metrics(daemon.base), "auditor_open_findings") > 0, 30, "findings flushed")
            time.sleep(1.5)  # at least one more flush, which used to fail on the bad flow's hour
            assert daemon.process.poll() is None, daemon.log_path.read_text()[-2000:]
            text = metrics(daemon.base)
            code, _ = daemon.terminate()
        assert total(text, "auditor_bad_flows_total", reason="time") == 1
        assert total(text, "auditor_flows_processed_total") == DEMO_FLOW_COUNT
        assert code == 0


class TestStoreErrorsDuringFlush:
    def test_locked_store_flush_raises_and_keeps_pending_findings(
        self, locked_db: tuple[Path, sqlite3.Connection]
    ) -> None:
        """A flush against a locked store fails; the next flush writes every finding and counter once."""
        path, other = locked_db
        store = SqliteStore(str(path), busy_timeout_ms=50)
        analyzer = analyzer_on(store)
        for flow in demo_flows():
            analyzer.handle(flow)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            analyzer.flush()
        other.execute("ROLLBACK")
        analyzer.flush()
        reference = SqliteStore(str(path.with_name("ref.db")))
        expected = analyzer_on(reference)
        for flow in demo_flows():
            expected.handle(flow)
        expected.flush()
        assert sorted((f.key.as_string(), f.count) for f in store.findings()) == \
            sorted((f.key.as_string(), f.count) for f in reference.findings())
        counted = [sum(row.count for row in db.counts(0, 2**62)) for db in (store, reference)]
        assert counted[0] == counted[1] > 0
        store.close()
        reference.close()

    def test_daemon_survives_locked_store_and_counts_the_error(
        self, tmp_path: Path, locked_db: tuple[Path, sqlite3.Connection]
    ) -> None:
        """While another writer holds the lock the daemon counts store errors; afterwards it catches up."""
        path, other = locked_db
        other.execute("BEGIN IMMEDIATE")
        flags = ("--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS), "--store", f"sqlite:{path}",
                 "--flush-interval", "1s")
        with daemon_process(tmp_path, *flags) as daemon:
            wait_until(lambda: total(metrics(daemon.base), "auditor_errors_total", stage="store") >= 1, 30,
                       "a store error counted")
            assert daemon.process.poll() is None
            other.execute("ROLLBACK")
            wait_until(lambda: total(metrics(daemon.base), "auditor_open_findings") > 0, 30, "findings flushed")
            code, _ = daemon.terminate()
        assert code == 0
        assert open_store(f"sqlite:{path}").findings()

    def test_sigterm_during_blocked_store_write_exits_within_ten_seconds(
        self, tmp_path: Path, locked_db: tuple[Path, sqlite3.Connection]
    ) -> None:
        """SIGTERM while the final flush waits on another writer's lock: exit within 10 s, 1, and say so."""
        path, other = locked_db
        with ReplayServer([DEMO_FLOWS]) as replay:
            flags = ("--manifests", str(DEMO_MANIFESTS), "--hubble-server", replay.address,
                     "--store", f"sqlite:{path}", "--flush-interval", "1h")
            with daemon_process(tmp_path, *flags) as daemon:
                wait_until(lambda: total(metrics(daemon.base), "auditor_flows_processed_total")
                           == DEMO_FLOW_COUNT, 30, "every flow analysed")
                other.execute("BEGIN IMMEDIATE")
                code, seconds = daemon.terminate()
                log = daemon.log_path.read_text()
        assert seconds < 10, log[-2000:]
        assert code == 1
        assert "store_flush_failed_at_exit" in log


    def test_sigterm_while_a_periodic_flush_waits_for_the_lock_exits_within_ten_seconds(
        self, tmp_path: Path, locked_db: tuple[Path, sqlite3.Connection]
    ) -> None:
        """SIGTERM while a periodic flush is blocked on another writer's lock still exits within 10 s."""
        path, other = locked_db
        flags = ("--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS), "--store", f"sqlite:{path}",
                 "--flush-interval", "1s")
        with daemon_process(tmp_path, *flags) as daemon:
            wait_until(lambda: total(metrics(daemon.base), "auditor_flows_processed_total") == DEMO_FLOW_COUNT,
                       30, "every flow analysed")
            other.execute("BEGIN IMMEDIATE")
            time.sleep(1.2)  # a periodic flush is now waiting for the lock
            _, seconds = daemon.terminate()
            log = daemon.log_path.read_text()
        assert seconds < 10, log[-2000:]


class TestLostEventsOutOfRange:
    def test_lost_events_beyond_64_bits_do_not_block_every_later_flush(self, tmp_path: Path) -> None:
        """A LostEvents with wire values beyond 64 bits is stored clamped; it no longer fails each flush."""
        store = SqliteStore(str(tmp_path / "a.db"))
        analyzer = analyzer_on(store)
        flows = demo_flows()
        analyzer.handle(LostEvents(LostEventSource.HUBBLE_RING_BUFFER, count=2**64 - 1,
                                   time_ns=flows[0].time_ns, first_ns=10**20, last_ns=10**20 + 5))
        for flow in flows:
            analyzer.handle(flow)
        analyzer.flush()
        gaps = store.coverage(0, 2**63 - 1).gaps
        assert [(gap.reason, gap.lost_count) for gap in gaps] == [("lost-events:hubble_ring_buffer", 2**63 - 1)]
        assert store.findings()
        store.close()
