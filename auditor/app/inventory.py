"""The daemon's view of the cluster: a thread-safe ClusterHistory fed by manifests or a live watch.

Live: the watcher's initial lists describe the cluster as it already was, so those objects are
folded into the base state (in force for every flow, also flows older than the daemon's start);
later changes are recorded at the time they were received.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from auditor.app.audit import load_cluster_inputs
from auditor.app.settings import RunSettings
from auditor.kube.client import DEFAULT_RESOURCES, RESOURCES, resource_of
from auditor.kube.stats import InventoryStatus, ResourceStatus
from auditor.kube.watch import InventoryWatcher
from auditor.log import get_logger
from auditor.model.k8s import Change, ChangeType, KubeObject
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState

_log = get_logger("auditor.inventory")
POLICY_RESOURCES = frozenset({"networkpolicies", "ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies",
                              "ciliumcidrgroups"})
"""Resources whose objects the cluster state validates (an invalid one is kept in history, not in force)."""


class LockedHistory:
    """ClusterHistory behind a lock: watcher threads write, the analysis thread reads."""

    def __init__(self, history: ClusterHistory) -> None:
        self._history = history
        self._lock = threading.Lock()

    def at(self, time_ns: int) -> ClusterState:
        with self._lock:
            return self._history.at(time_ns)

    def latest(self) -> ClusterState:
        with self._lock:
            return self._history.latest()

    def apply(self, change: Change) -> None:
        with self._lock:
            self._history.apply(change)

    def apply_initial(self, change: Change) -> None:
        with self._lock:
            self._history.apply_initial(change)

    def prune(self, now_ns: int) -> int:
        with self._lock:
            return self._history.prune(now_ns)

    @property
    def unchanged(self) -> int:
        """Writes that changed nothing auditor reads (status-only updates, heartbeats), not kept as states."""
        with self._lock:
            return self._history.unchanged


class Inventory:
    """Cluster state for the daemon: history, readiness and status for the exporter."""

    def __init__(self, history: ClusterHistory, status: InventoryStatus,
                 initial_changes: Sequence[Change] = ()) -> None:
        self.history = LockedHistory(history)
        self._status = status
        self.on_change: Callable[[Change], None] = lambda change: None
        self.initial_changes = tuple(initial_changes)
        """Changes already in the history when it was handed over (manifests and cluster events): the
        daemon records them in the store's policy history like a live watch's changes."""

    def start(self) -> None:
        """Nothing to start for a fixed inventory."""

    def stop(self) -> None:
        """Nothing to stop for a fixed inventory."""

    def ready(self) -> bool:
        return True

    def status(self) -> InventoryStatus:
        return self._status

    def prune(self, now_ns: int) -> int:
        """A fixed inventory keeps its whole (bounded) history."""
        return 0


class LiveInventory(Inventory):
    """Fed by an InventoryWatcher (list+watch of the live API)."""

    def __init__(self, history: ClusterHistory, make_watcher: Callable[[Callable[[Change], None]],
                                                                         InventoryWatcher]) -> None:
        super().__init__(history, InventoryStatus({}))
        self._invalid: Counter[str] = Counter()
        self._invalid_lock = threading.Lock()
        self.watcher = make_watcher(self._receive)

    def _receive(self, change: Change) -> None:
        resource = resource_of(change.obj)
        if self.watcher.synced(resource):
            self.history.apply(change)
        else:
            self.history.apply_initial(change)
            change = replace(change, time_ns=0)
        if resource in POLICY_RESOURCES and change.type is not ChangeType.DELETED:
            self._count_invalid(resource, change.obj)
        self.on_change(change)

    def _count_invalid(self, resource: str, obj: KubeObject) -> None:
        """A policy the state skipped as invalid (kept in history, not in force) counts in
        auditor_invalid_objects_total like an object the API sent undecodable, and is logged."""
        namespace = getattr(obj, "namespace", "")
        ref = f"{RESOURCES[resource].kind} {namespace}/{obj.name}" if namespace else \
            f"{RESOURCES[resource].kind} {obj.name}"
        errors = [str(e) for e in self.history.latest().invalid if e.ref == ref]
        if errors:
            with self._invalid_lock:
                self._invalid[resource] += 1
            _log.warning("inventory_invalid_object", kind=RESOURCES[resource].kind, error="; ".join(errors))

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    def ready(self) -> bool:
        return self.watcher.ready

    def status(self) -> InventoryStatus:
        status = self.watcher.status()
        with self._invalid_lock:
            invalid = dict(self._invalid)
        if not invalid:
            return status
        resources = dict(status.resources)
        for resource, count in invalid.items():
            if resource in resources:
                current = resources[resource]
                kind = RESOURCES[resource].kind
                merged = {**current.invalid_objects, kind: current.invalid_objects.get(kind, 0) + count}
                resources[resource] = replace(current, invalid_objects=merged)
        return InventoryStatus(resources)

    def prune(self, now_ns: int) -> int:
        return self.history.prune(now_ns)


def manifest_inventory(paths: Sequence[str], cluster_events: str | None, window_ns: int) -> Inventory:
    """A fixed inventory from manifests (+ timestamped cluster events)."""
    inputs = load_cluster_inputs(list(paths), cluster_events)
    history = inputs.history()
    state = history.latest()
    now = time.time_ns()
    counts = _counts(state)
    invalid = _invalid_by_kind(state)
    resources = {
        name: _fixed_status(name, now, counts[name], invalid.get(RESOURCES[name].kind, 0))
        for name in DEFAULT_RESOURCES
    }
    return Inventory(history, InventoryStatus(resources), inputs.policy_changes())


def _counts(state: ClusterState) -> dict[str, int]:
    """Valid objects per resource (invalid policies are not in the state)."""
    counts = {"namespaces": len(state.namespaces), "pods": len(state.pods), "nodes": len(state.nodes),
              "networkpolicies": len(state.policies), "ciliumcidrgroups": len(state.cilium.groups),
              "ciliumnetworkpolicies": 0, "ciliumclusterwidenetworkpolicies": 0,
              "services": len(state.services), "endpointslices": len(state.service_index.slices)}
    for compiled in state.cilium_policies:
        counts[resource_of(compiled.policy)] += 1
    return counts


def _invalid_by_kind(state: ClusterState) -> dict[str, int]:
    """Invalid objects (not errors: one object may have several) per kind, from each error's `Kind name` ref."""
    refs = {error.ref for error in state.invalid}
    return dict(Counter(ref.split(" ", 1)[0] for ref in refs))


def _fixed_status(resource: str, now_ns: int, objects: int, invalid: int) -> ResourceStatus:
    kind = RESOURCES[resource].kind
    return ResourceStatus(
        resource=resource, up=True, synced=True, resource_version="", last_sync_time_ns=now_ns, objects=objects,
        relists=0, errors=0, events={}, invalid_objects={kind: invalid} if invalid else {},
    )


def worker_history(settings: RunSettings) -> LockedHistory:
    """A worker process's own history: the same manifests rebuilt, or empty for the parent to feed
    with the live watch's changes (`auditor.app.worker`)."""
    window_ns = int(settings.history_window * 1e9)
    if settings.manifests:
        return manifest_inventory(settings.manifests, settings.cluster_events or None, window_ns).history
    return LockedHistory(ClusterHistory(window_ns=window_ns))


def live_inventory(*, kubeconfig: str | None, context: str | None, window_ns: int) -> Inventory:
    """An inventory that lists and watches the live cluster."""
    return LiveInventory(
        ClusterHistory(window_ns=window_ns),
        lambda sink: InventoryWatcher.from_kubeconfig(sink, kubeconfig=kubeconfig, context=context),
    )
