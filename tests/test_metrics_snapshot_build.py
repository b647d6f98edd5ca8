"""A scrape's MetricsSnapshot is built in one step from the session's totals and the edges' status."""

from __future__ import annotations

from types import MappingProxyType

from auditor.exporter.snapshot import MetricsSnapshot
from auditor.exporter.sources import build_snapshot, with_inventory, with_source, with_store
from auditor.hubble.source import SourceStats
from auditor.kube.stats import InventoryStatus, ResourceStats
from auditor.model.findings import FindingKind, Severity
from auditor.store.records import OpenFindingCount, StoreSnapshot


def parts() -> tuple[SourceStats, InventoryStatus, StoreSnapshot]:
    source = SourceStats(flows=9, connected=False, lost_events={"hubble_ring_buffer": 2})
    source.record_error("x.jsonl:1: not JSON")
    pods = ResourceStats(resource="pods", up=True, synced=True, last_sync_time_ns=3_000_000_000)
    pods.invalid_objects.update({"Pod": 1})
    inventory = InventoryStatus(resources=MappingProxyType({"pods": pods.snapshot()}))
    store = StoreSnapshot(schema_version=5, open_findings=(
        OpenFindingCount(FindingKind.POLICY_DROP, Severity.LOW, "shop", 3),), resolved_findings=0,
        coverage_from_ns=0, coverage_to_ns=0, lost_total=0, policy_changes=0)
    return source, inventory, store


def test_one_step_build_equals_the_chained_parts() -> None:
    """build_snapshot gives what the old chain of three replace passes gave, keeping the pipeline's maps."""
    source, inventory, store = parts()
    pipeline = {"flows_processed": {("FORWARDED", "ingress"): 4}, "bad_flows": {"time": 1},
                "errors": {"store": 2}}
    chained = with_store(with_inventory(with_source(MetricsSnapshot(**pipeline), source), inventory), store)  # type: ignore[arg-type]
    built = build_snapshot(pipeline, source=source, inventory=inventory, store=store)
    assert built == chained
    assert built.bad_flows == {"time": 1, "decode": 1}
    assert built.invalid_objects == {"Pod": 1}


def test_a_file_source_is_up() -> None:
    """hubble_up is overridden for a file source, which has no connection to lose."""
    source, inventory, store = parts()
    assert build_snapshot({}, source=source, inventory=inventory, store=store, hubble_up=True).hubble_up
