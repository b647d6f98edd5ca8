"""The daemon's view of the cluster: a thread-safe ClusterHistory fed by manifests or a live watch.

Live: the watcher's initial lists describe the cluster as it already was, so those objects are
folded into the base state (in force for every flow, also flows older than the daemon's start);
later changes are recorded at the time they were received.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from auditor.app.audit import build_history
from auditor.kube.stats import InventoryStatus, ResourceStatus
from auditor.kube.watch import InventoryWatcher
from auditor.model.k8s import Change, KubeObject, Namespace, NetworkPolicy, Node, Pod
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState

RESOURCE_OF: dict[type, str] = {Namespace: "namespaces", Pod: "pods", Node: "nodes",
                                NetworkPolicy: "networkpolicies"}


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


class Inventory:
    """Cluster state for the daemon: history, readiness and status for the exporter."""

    def __init__(self, history: ClusterHistory, status: InventoryStatus) -> None:
        self.history = LockedHistory(history)
        self._status = status
        self.on_change: Callable[[Change], None] = lambda change: None

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
        self.watcher = make_watcher(self._receive)

    def _receive(self, change: Change) -> None:
        if self.watcher.synced(RESOURCE_OF[type(change.obj)]):
            self.history.apply(change)
        else:
            self.history.apply_initial(change)
            change = replace(change, time_ns=0)
        self.on_change(change)

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    def ready(self) -> bool:
        return self.watcher.ready

    def status(self) -> InventoryStatus:
        return self.watcher.status()

    def prune(self, now_ns: int) -> int:
        return self.history.prune(now_ns)


def manifest_inventory(paths: Sequence[str], cluster_events: str | None, window_ns: int) -> Inventory:
    """A fixed inventory from manifests (+ timestamped cluster events)."""
    history, _, _ = build_history(list(paths), cluster_events)
    state = history.latest()
    now = time.time_ns()
    invalid = {"networkpolicies": len(state.invalid)}
    resources = {
        name: _fixed_status(name, now, _count(state, name), invalid.get(name, 0))
        for name in RESOURCE_OF.values()
    }
    return Inventory(history, InventoryStatus(resources))


def _count(state: ClusterState, resource: str) -> int:
    items: dict[str, Sequence[KubeObject]] = {"namespaces": state.namespaces, "pods": state.pods,
                                              "nodes": state.nodes, "networkpolicies": state.policies}
    return len(items[resource])


def _fixed_status(resource: str, now_ns: int, objects: int, invalid: int) -> ResourceStatus:
    return ResourceStatus(
        resource=resource, up=True, synced=True, resource_version="", last_sync_time_ns=now_ns, objects=objects,
        relists=0, errors=0, events={}, invalid_objects={"NetworkPolicy": invalid} if invalid else {},
    )


def live_inventory(*, kubeconfig: str | None, context: str | None, window_ns: int) -> Inventory:
    """An inventory that lists and watches the live cluster."""
    return LiveInventory(
        ClusterHistory(window_ns=window_ns),
        lambda sink: InventoryWatcher.from_kubeconfig(sink, kubeconfig=kubeconfig, context=context),
    )
