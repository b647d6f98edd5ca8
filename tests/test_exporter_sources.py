"""Snapshot adapters: the real status objects of the Hubble source, the inventory and the store."""

from __future__ import annotations

from types import MappingProxyType

from auditor.exporter.snapshot import MetricsSnapshot
from auditor.exporter.sources import with_inventory, with_source, with_store
from auditor.hubble.source import SourceStats
from auditor.kube.stats import InventoryStatus, ResourceStats
from auditor.model.findings import FindingKind, Severity
from auditor.store.records import OpenFindingCount, StoreSnapshot


def resource(name: str, *, up: bool, synced: bool, last_sync_ns: int, invalid: dict[str, int]) -> ResourceStats:
    stats = ResourceStats(resource=name, up=up, synced=synced, last_sync_time_ns=last_sync_ns)
    stats.invalid_objects.update(invalid)
    return stats


class TestWithSource:
    def test_stream_health_fields(self) -> None:
        """Connected, reconnects, lost events, flows and last flow time come from SourceStats."""
        stats = SourceStats(
            flows=42, lost_events={"hubble_ring_buffer": 5}, connected=True, reconnects=2,
            last_flow_time_ns=1_700_000_000_500_000_000,
        )
        snapshot = with_source(MetricsSnapshot(), stats)
        assert snapshot.hubble_up is True
        assert snapshot.hubble_reconnects == 2
        assert snapshot.lost_events == {"hubble_ring_buffer": 5}
        assert snapshot.flows_received == 42
        assert snapshot.last_flow_timestamp_seconds == 1_700_000_000.5

    def test_nodes_are_counted_by_state(self) -> None:
        """node -> state becomes a count of nodes per state."""
        stats = SourceStats(node_states={"a": "connected", "b": "connected", "c": "unavailable"})
        assert with_source(MetricsSnapshot(), stats).hubble_nodes == {"connected": 2, "unavailable": 1}

    def test_bad_lines_become_decode_bad_flows(self) -> None:
        """Undecodable input counted by the source shows as bad flows with reason decode."""
        stats = SourceStats()
        stats.record_error("flows.jsonl:3: not JSON")
        snapshot = with_source(MetricsSnapshot(bad_flows={"missing_time": 1}), stats)
        assert snapshot.bad_flows == {"missing_time": 1, "decode": 1}


class TestWithInventory:
    def test_up_requires_synced(self) -> None:
        """A resource is up only when its watch works and its initial list is in."""
        status = InventoryStatus(resources=MappingProxyType({
            "pods": resource("pods", up=True, synced=True, last_sync_ns=2_000_000_000, invalid={}).snapshot(),
            "networkpolicies": resource(
                "networkpolicies", up=True, synced=False, last_sync_ns=0, invalid={}
            ).snapshot(),
        }))
        snapshot = with_inventory(MetricsSnapshot(), status)
        assert snapshot.inventory_up == {"pods": True, "networkpolicies": False}

    def test_served_flag_per_resource(self) -> None:
        """A resource the API server does not serve (no Cilium CRDs) is exported as served=False."""
        missing = resource("ciliumnetworkpolicies", up=True, synced=True, last_sync_ns=1, invalid={})
        missing.served = False
        status = InventoryStatus(resources=MappingProxyType({
            "pods": resource("pods", up=True, synced=True, last_sync_ns=1, invalid={}).snapshot(),
            "ciliumnetworkpolicies": missing.snapshot(),
        }))
        assert with_inventory(MetricsSnapshot(), status).inventory_served == {
            "pods": True, "ciliumnetworkpolicies": False}

    def test_last_sync_is_the_least_current_resource(self) -> None:
        """The inventory last-sync time is the oldest of its resources."""
        status = InventoryStatus(resources=MappingProxyType({
            "pods": resource("pods", up=True, synced=True, last_sync_ns=5_000_000_000, invalid={}).snapshot(),
            "namespaces": resource("namespaces", up=True, synced=True, last_sync_ns=3_000_000_000, invalid={})
            .snapshot(),
        }))
        assert with_inventory(MetricsSnapshot(), status).inventory_last_sync_timestamp_seconds == 3.0

    def test_invalid_objects_are_summed_by_kind(self) -> None:
        """Invalid objects of every resource are added up per kind."""
        status = InventoryStatus(resources=MappingProxyType({
            "pods": resource("pods", up=True, synced=True, last_sync_ns=1, invalid={"Pod": 2}).snapshot(),
            "networkpolicies": resource(
                "networkpolicies", up=True, synced=True, last_sync_ns=1, invalid={"NetworkPolicy": 3}
            ).snapshot(),
        }))
        assert with_inventory(MetricsSnapshot(), status).invalid_objects == {"Pod": 2, "NetworkPolicy": 3}


class TestWithStore:
    def test_open_findings_keyed_by_kind_severity_namespace(self) -> None:
        """Store open-finding rows become auditor_open_findings keys with enum values."""
        store = StoreSnapshot(
            schema_version=1,
            open_findings=(OpenFindingCount(FindingKind.DNS_DENIED, Severity.MEDIUM, "shop", 2),),
            resolved_findings=0, coverage_from_ns=0, coverage_to_ns=0, lost_total=0, policy_changes=0,
        )
        assert with_store(MetricsSnapshot(), store).open_findings == {("dns-denied", "medium", "shop"): 2}
