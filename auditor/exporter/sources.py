"""Fill a `MetricsSnapshot` from the edges' own status objects (Hubble source, inventory, store).

The daemon builds each scrape's snapshot by chaining these onto the pipeline's counters:

    snapshot = with_store(with_inventory(with_source(pipeline_snapshot, source.stats),
                                         watcher.status()), store.snapshot())

Each function returns a new snapshot with only its own fields replaced.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping

from auditor.exporter.snapshot import MetricsSnapshot
from auditor.hubble.source import SourceStats
from auditor.kube.stats import InventoryStatus
from auditor.store.records import StoreSnapshot

_NS_PER_S = 1_000_000_000


def with_source(snapshot: MetricsSnapshot, stats: SourceStats) -> MetricsSnapshot:
    """Hubble stream health: up, reconnects, lost events, nodes by state, last flow, bad input,
    duplicates dropped after a reconnect."""
    stats = stats.snapshot()
    lost = stats.lost_events
    node_states = Counter(stats.node_states.values())
    bad_lines = stats.bad_lines
    return dataclasses.replace(
        snapshot,
        hubble_up=stats.connected,
        hubble_reconnects=stats.reconnects,
        lost_events=lost,
        hubble_nodes=dict(node_states),
        last_flow_timestamp_seconds=stats.last_flow_time_ns / _NS_PER_S,
        bad_flows=_bad_flows(snapshot.bad_flows, decode=bad_lines, ignored=stats.ignored_events),
        flows_received=stats.flows,
        hubble_duplicates_dropped=stats.duplicates_dropped,
    )


def _bad_flows(current: Mapping[str, int], **reasons: int) -> Mapping[str, int]:
    """Input the source could not use, by reason: `decode` (bad lines/messages) and `ignored`
    (agent/debug events and other responses auditor does not read)."""
    return {**current, **{reason: count for reason, count in reasons.items() if count}}


def with_inventory(snapshot: MetricsSnapshot, status: InventoryStatus) -> MetricsSnapshot:
    """Inventory health: up per resource, the oldest last sync, invalid objects by kind, and the
    changes the daemon failed to apply (sink errors) as errors{stage="inventory"}.

    The inventory is only as current as its least current resource, so the last sync time is
    the minimum over resources (0 while any resource has never synced).
    """
    resources = status.resources.values()
    invalid: Counter[str] = Counter()
    for resource in resources:
        invalid.update(resource.invalid_objects)
    last_sync_ns = min((resource.last_sync_time_ns for resource in resources), default=0)
    sink_errors = sum(resource.sink_errors for resource in resources)
    return dataclasses.replace(
        snapshot,
        inventory_up={resource.resource: resource.up and resource.synced for resource in resources},
        inventory_last_sync_timestamp_seconds=last_sync_ns / _NS_PER_S,
        invalid_objects={**snapshot.invalid_objects, **invalid},
        errors={**snapshot.errors, "inventory": sink_errors} if sink_errors else snapshot.errors,
    )


def with_store(snapshot: MetricsSnapshot, store: StoreSnapshot) -> MetricsSnapshot:
    """Open findings by (kind, severity, namespace) from the store's summary."""
    open_findings: Counter[tuple[str, str, str]] = Counter()
    for row in store.open_findings:
        open_findings[(row.kind.value, row.severity.value, row.namespace)] += row.count
    return dataclasses.replace(snapshot, open_findings=dict(open_findings))
