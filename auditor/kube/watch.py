"""The live inventory: list+watch Namespaces, Pods, Nodes, Services, EndpointSlices, NetworkPolicies and
Cilium's CNPs, CCNPs and CiliumCIDRGroups, one thread each.

    watcher = InventoryWatcher(api_client_factory(), history.apply)
    watcher.start()
    watcher.wait_synced(timeout=60)      # True once every initial list is in
    ...
    watcher.stop()

`sink` receives every Change (ADDED for the initial lists, then the watch's changes, and the
diffs of relists).  Calls to `sink` are serialised by the watcher, so it need not be
thread-safe, and must not block for long.  A resource's initial-list changes are all delivered
before `synced(resource)` turns true, so a sink can tell them from later changes.
`Change.time_ns` is the clock at receipt: Kubernetes watch events carry no time at which the
change took effect.  A Cilium resource whose CRD is not installed counts as synced and empty
(see auditor.kube.reflector), so a cluster without Cilium's CRDs still becomes ready.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from auditor.kube.client import DEFAULT_RESOURCES, ApiClientFactory, api_client_factory, resource_kinds
from auditor.kube.reflector import Reflector, Sink, WatchSettings
from auditor.kube.stats import InventoryStatus
from auditor.model.k8s import Change

__all__ = ["InventoryWatcher", "WatchSettings"]


class InventoryWatcher:
    """Watches the cluster inventory and feeds changes to `sink`; see the module docstring."""

    def __init__(
        self,
        api_client_factory: ApiClientFactory,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.time,
        resources: Sequence[str] = DEFAULT_RESOURCES,
        settings: WatchSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._factory = api_client_factory
        self._sink = sink
        self._sink_lock = threading.Lock()
        self._clock = clock
        self._kinds = resource_kinds(resources)
        self._settings = settings or WatchSettings()
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._reflectors: list[Reflector] = []
        self._threads: list[threading.Thread] = []
        self._clients: list[Any] = []

    @classmethod
    def from_kubeconfig(
        cls,
        sink: Sink,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool | None = None,
        **options: Any,
    ) -> InventoryWatcher:
        """A watcher configured from a kubeconfig (and context) or the in-cluster service account."""
        factory = api_client_factory(kubeconfig=kubeconfig, context=context, in_cluster=in_cluster)
        return cls(factory, sink, **options)

    def _deliver(self, change: Change) -> None:
        with self._sink_lock:
            self._sink(change)

    def start(self) -> None:
        """Start one daemon thread per resource.  A watcher starts once."""
        if self._threads:
            raise RuntimeError("InventoryWatcher already started")
        for kind in self._kinds:
            client = self._factory()
            self._clients.append(client)
            reflector = Reflector(
                kind,
                client,
                self._deliver,
                clock=self._clock,
                settings=self._settings,
                stop=self._stop,
                rng=random.Random(self._rng.random()),
            )
            thread = threading.Thread(target=reflector.run, name=f"inventory-{kind.resource}", daemon=True)
            self._reflectors.append(reflector)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every thread promptly (blocked watch reads are interrupted) and wait for them."""
        self._stop.set()
        for reflector in self._reflectors:
            reflector.abort()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for client in self._clients:
            close = getattr(client, "close", None)
            if callable(close):
                close()
        self._clients.clear()

    def __enter__(self) -> InventoryWatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until every initial list is in (True) or `timeout` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for reflector in self._reflectors:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not reflector.synced.wait(remaining):
                return False
        return bool(self._reflectors)

    def synced(self, resource: str) -> bool:
        """Whether `resource`'s initial list is in."""
        return any(r.kind.resource == resource and r.synced.is_set() for r in self._reflectors)

    @property
    def ready(self) -> bool:
        """All initial lists are in (what `/readyz` reports)."""
        return bool(self._reflectors) and all(r.synced.is_set() for r in self._reflectors)

    def status(self) -> InventoryStatus:
        """A snapshot of every resource's stats, for the exporter."""
        return InventoryStatus({r.kind.resource: r.stats.snapshot() for r in self._reflectors})
