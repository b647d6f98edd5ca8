"""Health of the live inventory, per watched resource, for the exporter and `/readyz`.

Each watcher thread mutates its own `ResourceStats` under a lock; readers take immutable
`ResourceStatus` snapshots (through `InventoryWatcher.status()`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ResourceStatus:
    """A point-in-time copy of one resource's counters."""

    resource: str
    up: bool
    """The last list or watch call succeeded and no error has happened since."""
    synced: bool
    """The initial list is in (stays true across later relists)."""
    resource_version: str
    last_sync_time_ns: int
    """When the state was last known current: end of a list, or a watch event or bookmark."""
    objects: int
    relists: int
    """Lists after the initial one (410 Gone, or recovery from a failed list)."""
    errors: int
    events: Mapping[str, int] = field(hash=False)
    """Watch events received, by type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR)."""
    invalid_objects: Mapping[str, int] = field(hash=False)
    """Objects that could not be converted, by kind (counted, logged, skipped)."""
    sink_errors: int = 0
    last_error: str = ""
    served: bool = True
    """False while the API server does not serve the resource (an optional CRD, such as Cilium's, is
    not installed): then it is synced, up and empty, and rechecked now and then."""


@dataclass(frozen=True, slots=True)
class InventoryStatus:
    """Status of every watched resource; `ready` once all initial lists are in."""

    resources: Mapping[str, ResourceStatus] = field(hash=False)

    @property
    def ready(self) -> bool:
        return bool(self.resources) and all(status.synced for status in self.resources.values())


@dataclass
class ResourceStats:
    """Mutable counters of one resource; mutated by its watcher thread only."""

    resource: str
    up: bool = False
    synced: bool = False
    resource_version: str = ""
    last_sync_time_ns: int = 0
    objects: int = 0
    relists: int = 0
    errors: int = 0
    sink_errors: int = 0
    last_error: str = ""
    served: bool = True
    events: Counter[str] = field(default_factory=Counter)
    invalid_objects: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def snapshot(self) -> ResourceStatus:
        with self.lock:
            return ResourceStatus(
                resource=self.resource,
                up=self.up,
                synced=self.synced,
                resource_version=self.resource_version,
                last_sync_time_ns=self.last_sync_time_ns,
                objects=self.objects,
                relists=self.relists,
                errors=self.errors,
                events=MappingProxyType(dict(self.events)),
                invalid_objects=MappingProxyType(dict(self.invalid_objects)),
                sink_errors=self.sink_errors,
                last_error=self.last_error,
                served=self.served,
            )
