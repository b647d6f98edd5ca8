"""Nothing is lost silently: every path that skips or drops a flow is exported on /metrics."""

from __future__ import annotations

import time
from pathlib import Path

from auditor.app.analysis import Analyzer
from auditor.exporter.snapshot import MetricsSnapshot
from auditor.exporter.sources import with_inventory, with_source
from auditor.hubble.source import SourceStats
from auditor.kube.stats import InventoryStatus, ResourceStatus
from auditor.model.findings import FindingKind
from auditor.store import open_store
from tests.daemon_support import DEMO_MANIFESTS, build
from tests.test_daemon_robustness import demo_flows, shapeless


def fed_daemon(tmp_path: Path) -> object:
    daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS)])
    flows = demo_flows()
    for flow in [*flows, shapeless(flows[0])]:
        daemon.analyzer.handle(flow)
    return daemon


class TestSnapshotAccounting:
    def test_duplicates_dropped_after_reconnect_are_exported(self) -> None:
        """SourceStats.duplicates_dropped becomes auditor_hubble_duplicates_dropped_total."""
        stats = SourceStats(duplicates_dropped=4)
        assert with_source(MetricsSnapshot(), stats).hubble_duplicates_dropped == 4

    def test_inventory_changes_the_sink_rejected_are_exported(self) -> None:
        """Cluster changes the daemon failed to apply (sink errors) show as auditor_errors_total{inventory}."""
        resource = ResourceStatus(resource="pods", up=True, synced=True, resource_version="1",
                                  last_sync_time_ns=1, objects=3, relists=0, errors=0, events={},
                                  invalid_objects={}, sink_errors=2)
        snapshot = with_inventory(MetricsSnapshot(errors={"store": 1}), InventoryStatus({"pods": resource}))
        assert snapshot.errors == {"store": 1, "inventory": 2}

    def test_correlator_skips_are_exported_by_reason(self, tmp_path: Path) -> None:
        """Deduplicated, unresolved, other drops and skipped classes reach flows_skipped with their counts."""
        daemon = fed_daemon(tmp_path)
        stats = daemon.correlator.stats  # type: ignore[attr-defined]
        snapshot = daemon.metrics_snapshot()  # type: ignore[attr-defined]
        daemon.store.close()  # type: ignore[attr-defined]
        assert snapshot.flows_skipped["deduplicated"] == stats.deduplicated > 0
        assert snapshot.flows_skipped["unresolved"] == stats.unresolved
        assert snapshot.flows_skipped["other-drop"] == sum(stats.other_drops.values())

    def test_analysis_failures_reach_bad_flows(self, tmp_path: Path) -> None:
        """A flow the correlator raised on is in the snapshot's bad_flows{analysis}."""
        daemon = fed_daemon(tmp_path)
        snapshot = daemon.metrics_snapshot()  # type: ignore[attr-defined]
        daemon.store.close()  # type: ignore[attr-defined]
        assert snapshot.bad_flows["analysis"] == 1


class TestFindingKeyLimit:
    def analyzer(self, tmp_path: Path, max_findings: int) -> Analyzer:
        from auditor.app.inventory import manifest_inventory
        from auditor.findings.correlate import Correlator
        from auditor.policy.engine import PolicyEngine

        inventory = manifest_inventory([str(DEMO_MANIFESTS)], None, 3600 * 10**9)
        return Analyzer(correlator=Correlator(inventory.history, PolicyEngine()),
                        store=open_store(f"sqlite:{tmp_path / 'a.db'}"),
                        latest_state=inventory.history.latest, clock_ns=time.time_ns, max_findings=max_findings)

    def test_overflow_is_counted(self, tmp_path: Path) -> None:
        """With room for one finding key per flush, the flows of the other keys are counted as overflow."""
        analyzer = self.analyzer(tmp_path, max_findings=1)
        for flow in demo_flows():
            analyzer.handle(flow)
        analyzer.flush()
        assert analyzer.findings_overflow > 0
        analyzer.store.close()

    def test_key_limit_is_per_flush_not_per_lifetime(self, tmp_path: Path) -> None:
        """After a flush the daemon takes new finding keys again (the limit bounds memory between flushes)."""
        analyzer = self.analyzer(tmp_path, max_findings=1)
        flows = demo_flows()
        for flow in flows:
            analyzer.handle(flow)
        analyzer.flush()
        dynamic = {f.key for f in analyzer.store.findings() if not FindingKind(f.kind).is_static}
        for flow in reversed(flows):
            analyzer.handle(flow)
        analyzer.flush()
        later = {f.key for f in analyzer.store.findings() if not FindingKind(f.kind).is_static}
        analyzer.store.close()
        assert len(dynamic) == 1
        assert len(later) == 2
