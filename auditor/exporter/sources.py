"""Fill a `MetricsSnapshot` from the edges' own status objects (Hubble source, inventory, store).

The daemon builds each scrape's snapshot in one step, `build_snapshot(pipeline_fields, source=...,
inventory=..., store=...)`; each edge's part is a `*_fields` function.  The `with_*` functions
apply one part to an existing snapshot (tests, tools).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import Any

from auditor.exporter.snapshot import MetricsSnapshot
from auditor.hubble.source import SourceStats
from auditor.kube.stats import InventoryStatus
from auditor.store.records import StoreSnapshot

_NS_PER_S = 1_000_000_000


def with_source(snapshot: MetricsSnapshot, stats: SourceStats) -> MetricsSnapshot:
    """Hubble stream health: up, reconnects, lost events, nodes by state, last flow, bad input,
    duplicates dropped after a reconnect."""
    return dataclasses.replace(snapshot, **source_fields(stats, snapshot.bad_flows))


def source_fields(stats: SourceStats, bad_flows: Mapping[str, int]) -> dict[str, Any]:
    """The fields `with_source` sets, `bad_flows` (the pipeline's) completed with the source's."""
    stats = stats.snapshot()
    return {
        "hubble_up": stats.connected,
        "hubble_reconnects": stats.reconnects,
        "lost_events": stats.lost_events,
        "hubble_nodes": dict(Counter(stats.node_states.values())),
        "last_flow_timestamp_seconds": stats.last_flow_time_ns / _NS_PER_S,
        "bad_flows": _bad_flows(bad_flows, decode=stats.bad_lines, ignored=stats.ignored_events),
        "flows_received": stats.flows,
        "hubble_duplicates_dropped": stats.duplicates_dropped,
    }


def _bad_flows(current: Mapping[str, int], **reasons: int) -> Mapping[str, int]:
    """Input the source could not use, by reason: `decode` (bad lines/messages) and `ignored`
    (agent/debug events and other responses auditor does not read)."""
    return {**current, **{reason: count for reason, count in reasons.items() if count}}


def with_inventory(snapshot: MetricsSnapshot, status: InventoryStatus) -> MetricsSnapshot:
    """Inventory health: up and served per resource, the oldest last sync, invalid objects by kind,
    and the changes the daemon failed to apply (sink errors) as errors{stage="inventory"}.

    The inventory is only as current as its least current resource, so the last sync time is
    the minimum over resources (0 while any resource has never synced).
    """
    return dataclasses.replace(snapshot, **inventory_fields(status, snapshot.invalid_objects, snapshot.errors))


def inventory_fields(status: InventoryStatus, invalid_objects: Mapping[str, int], errors: Mapping[str, int]
                     ) -> dict[str, Any]:
    """The fields `with_inventory` sets, `invalid_objects` and `errors` (the pipeline's) completed."""
    resources = status.resources.values()
    invalid: Counter[str] = Counter()
    for resource in resources:
        invalid.update(resource.invalid_objects)
    last_sync_ns = min((resource.last_sync_time_ns for resource in resources), default=0)
    sink_errors = sum(resource.sink_errors for resource in resources)
    return {
        "inventory_up": {resource.resource: resource.up and resource.synced for resource in resources},
        "inventory_served": {resource.resource: resource.served for resource in resources},
        "inventory_last_sync_timestamp_seconds": last_sync_ns / _NS_PER_S,
        "invalid_objects": {**invalid_objects, **invalid},
        "errors": {**errors, "inventory": sink_errors} if sink_errors else errors,
    }


def with_store(snapshot: MetricsSnapshot, store: StoreSnapshot) -> MetricsSnapshot:
    """Open findings by (kind, severity, namespace) from the store's summary."""
    return dataclasses.replace(snapshot, **store_fields(store))


def store_fields(store: StoreSnapshot) -> dict[str, Any]:
    """The fields `with_store` sets."""
    open_findings: Counter[tuple[str, str, str]] = Counter()
    for row in store.open_findings:
        open_findings[(row.kind.value, row.severity.value, row.namespace)] += row.count
    return {"open_findings": dict(open_findings)}


def build_snapshot(pipeline: Mapping[str, Any], *, source: SourceStats, inventory: InventoryStatus,
                   store: StoreSnapshot, hubble_up: bool | None = None) -> MetricsSnapshot:
    """One scrape's snapshot built in one step: the pipeline's fields (the analysis session's totals),
    then the source's, the inventory's and the store's; `hubble_up` overrides the source's (a file
    source is always up)."""
    fields = dict(pipeline)
    fields.update(source_fields(source, fields.get("bad_flows", {})))
    fields.update(inventory_fields(inventory, fields.get("invalid_objects", {}), fields.get("errors", {})))
    fields.update(store_fields(store))
    if hubble_up is not None:
        fields["hubble_up"] = hubble_up
    return MetricsSnapshot(**fields)
