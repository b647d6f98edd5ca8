"""The live inventory against a Kubernetes-API-shaped server on loopback, with the real client."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog

from auditor.errors import ConfigError, InventoryError
from auditor.kube.client import api_client_factory, factory_for, list_inventory
from auditor.kube.reflector import Backoff
from auditor.kube.watch import InventoryWatcher, WatchSettings
from auditor.model.k8s import Change, ChangeType, Namespace, Pod
from tests.kubeapi import KubeAPI

FAST = WatchSettings(
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.05,
    watch_timeout_seconds=30,
    read_slack_seconds=5,
    list_timeout_seconds=5,
    connect_timeout_seconds=2,
)
WAIT = 10.0


def pod(name: str, namespace: str = "shop", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
    }


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


class Recorder:
    """A thread-safe sink the test can wait on."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self._cond = threading.Condition()

    def __call__(self, change: Change) -> None:
        with self._cond:
            self.changes.append(change)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Change]], bool]) -> list[Change]:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.changes), WAIT), self.changes
            return list(self.changes)

    def seen(self, change_type: ChangeType, key: str) -> Callable[[list[Change]], bool]:
        return lambda changes: any(c.type is change_type and _key(c) == key for c in changes)


def _key(change: Change) -> str:
    return getattr(change.obj, "key", change.obj.name)


def wait_until(predicate: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        event.wait(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture(name="api")
def _api() -> Iterator[KubeAPI]:
    api = KubeAPI().start()
    api.put("namespaces", namespace("shop"))
    api.put("pods", pod("api-1", app="api"))
    api.put("pods", pod("web-1", app="web"))
    yield api
    api.stop()


@pytest.fixture(name="recorder")
def _recorder() -> Recorder:
    return Recorder()


@pytest.fixture(name="make_watcher")
def _make_watcher(api: KubeAPI, recorder: Recorder) -> Iterator[Callable[..., InventoryWatcher]]:
    watchers: list[InventoryWatcher] = []

    def make(**options: Any) -> InventoryWatcher:
        options.setdefault("settings", FAST)
        watcher = InventoryWatcher(factory_for(api.configuration()), options.pop("sink", recorder), **options)
        watchers.append(watcher)
        watcher.start()
        return watcher

    yield make
    for watcher in watchers:
        watcher.stop()


class TestInitialList:
    def test_initial_lists_emit_added_for_everything(
        self, make_watcher: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """After the initial lists every object has been reported as ADDED, converted."""
        watcher = make_watcher()
        assert watcher.wait_synced(WAIT)
        added = {_key(c): c.obj for c in recorder.changes if c.type is ChangeType.ADDED}
        assert set(added) == {"shop", "shop/api-1", "shop/web-1"}
        assert isinstance(added["shop"], Namespace)
        assert isinstance(added["shop/api-1"], Pod)
        assert added["shop/api-1"].labels == {"app": "api"}

    def test_ready_only_after_every_initial_list(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher]
    ) -> None:
        """Readiness waits for the slowest initial list, while the other resources report synced."""
        release = api.hold("pods")
        watcher = make_watcher()
        wait_until(lambda: watcher.synced("namespaces"))
        assert not watcher.ready
        assert not watcher.wait_synced(0.2)
        assert not watcher.status().resources["pods"].synced
        release.set()
        assert watcher.wait_synced(WAIT)
        assert watcher.ready
        assert watcher.status().ready

    def test_initial_changes_arrive_before_synced(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher]
    ) -> None:
        """The initial list's changes are delivered while synced() is still false; later ones after."""
        observed: list[tuple[str, bool]] = []
        holder: list[InventoryWatcher] = []

        def sink(change: Change) -> None:
            observed.append((_key(change), holder[0].synced("pods")))

        holder.append(make_watcher(resources=("pods",), sink=sink))
        assert holder[0].wait_synced(WAIT)
        api.put("pods", pod("late-1"))
        wait_until(lambda: len(observed) == 3)
        assert observed == [("shop/api-1", False), ("shop/web-1", False), ("shop/late-1", True)]

    def test_lists_are_paged(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """With a page size the list follows `continue` tokens and still sees every object."""
        api.put("pods", pod("db-1"))
        watcher = make_watcher(resources=("pods",), settings=replace(FAST, list_page_size=2))
        assert watcher.wait_synced(WAIT)
        assert len(api.list_requests("pods")) == 2
        assert {_key(c) for c in recorder.changes} == {"shop/api-1", "shop/web-1", "shop/db-1"}

    def test_change_time_is_the_clock_at_receipt(
        self, make_watcher: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """Change.time_ns comes from the injected clock, in nanoseconds."""
        watcher = make_watcher(clock=lambda: 1_700_000_000.5)
        assert watcher.wait_synced(WAIT)
        assert {c.time_ns for c in recorder.changes} == {1_700_000_000_500_000_000}


class TestWatch:
    def test_added_modified_deleted_arrive_in_order(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """Changes after the list come from the watch, with their types and in order."""
        watcher = make_watcher(resources=("pods",))
        assert watcher.wait_synced(WAIT)
        api.put("pods", pod("db-1", app="db"))
        api.put("pods", pod("db-1", app="db", tier="data"))
        api.delete("pods", "db-1", "shop")
        changes = recorder.wait_for(recorder.seen(ChangeType.DELETED, "shop/db-1"))
        tail = [(c.type, _key(c)) for c in changes[2:]]
        assert tail == [
            (ChangeType.ADDED, "shop/db-1"),
            (ChangeType.MODIFIED, "shop/db-1"),
            (ChangeType.DELETED, "shop/db-1"),
        ]
        assert changes[3].obj.labels == {"app": "db", "tier": "data"}

    def test_bookmark_advances_resource_version(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher]
    ) -> None:
        """A BOOKMARK moves the resourceVersion, and the next watch resumes from it."""
        watcher = make_watcher(resources=("pods",))
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("pods")
        version = api.bookmark("pods")
        wait_until(lambda: watcher.status().resources["pods"].resource_version == version)
        api.drop("pods")
        wait_until(lambda: len(api.watch_requests("pods")) >= 2)
        assert api.watch_requests("pods")[1].resource_version == version
        assert watcher.status().resources["pods"].events["BOOKMARK"] == 1

    def test_watch_asks_for_bookmarks_from_the_list_version(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher]
    ) -> None:
        """The first watch starts at the list's resourceVersion."""
        listed = api.resource_version
        watcher = make_watcher(resources=("pods",))
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("pods")
        assert api.watch_requests("pods")[0].resource_version == listed

    def test_invalid_object_is_counted_not_fatal(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """An unconvertible object is counted by kind and skipped; the watch goes on."""
        watcher = make_watcher(resources=("pods",))
        assert watcher.wait_synced(WAIT)
        bad = pod("bad-1")
        bad["spec"] = {"containers": [{"name": "c", "ports": [{"containerPort": "eighty"}]}]}
        api.put("pods", bad)
        api.put("pods", pod("good-1"))
        changes = recorder.wait_for(recorder.seen(ChangeType.ADDED, "shop/good-1"))
        assert "shop/bad-1" not in {_key(c) for c in changes}
        assert watcher.status().resources["pods"].invalid_objects == {"Pod": 1}

    def test_failing_sink_is_counted_not_fatal(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher]
    ) -> None:
        """A sink that raises is counted; later changes are still delivered."""
        delivered: list[Change] = []

        def sink(change: Change) -> None:
            if _key(change) == "shop/api-1":
                raise RuntimeError("consumer bug")
            delivered.append(change)

        watcher = make_watcher(resources=("pods",), sink=sink)
        assert watcher.wait_synced(WAIT)
        api.put("pods", pod("late-1"))
        wait_until(lambda: any(_key(c) == "shop/late-1" for c in delivered))
        assert watcher.status().resources["pods"].sink_errors == 1


class TestRecovery:
    def test_gone_event_relists_and_reports_deletions_in_the_gap(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """An ERROR 410 relists; a pod deleted while its event was lost is reported DELETED."""
        watcher = make_watcher(resources=("pods",))
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("pods")
        api.delete("pods", "web-1", "shop", deliver=False)
        api.put("pods", pod("api-1", app="api", version="2"), deliver=False)
        api.expire("pods")
        changes = recorder.wait_for(recorder.seen(ChangeType.DELETED, "shop/web-1"))
        assert (ChangeType.MODIFIED, "shop/api-1") in [(c.type, _key(c)) for c in changes]
        status = watcher.status().resources["pods"]
        assert (status.relists, len(api.list_requests("pods"))) == (1, 2)
        assert status.objects == 1

    def test_http_410_on_watch_relists(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """A watch answered with HTTP 410 Gone relists instead of backing off."""
        watcher = make_watcher(resources=("pods",))
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("pods")
        api.fail_next("pods", 410, on="watch")
        api.drop("pods")
        wait_until(lambda: watcher.status().resources["pods"].relists == 1)
        assert watcher.status().resources["pods"].up

    def test_dropped_connection_resumes_from_last_version(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """A dropped watch is an error, then resumes from the last resourceVersion without a relist."""
        watcher = make_watcher(resources=("pods",))
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("pods")
        api.put("pods", pod("db-1"))
        recorder.wait_for(recorder.seen(ChangeType.ADDED, "shop/db-1"))
        seen_version = api.resource_version
        api.drop("pods")
        api.put("pods", pod("db-2"))
        recorder.wait_for(recorder.seen(ChangeType.ADDED, "shop/db-2"))
        status = watcher.status().resources["pods"]
        assert api.watch_requests("pods")[1].resource_version == seen_version
        assert (status.errors, status.relists, len(api.list_requests("pods"))) == (1, 0, 1)

    def test_server_error_backs_off_then_recovers(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher]
    ) -> None:
        """A 500 on the initial list is counted, retried after a backoff, and the watcher becomes ready."""
        api.fail_next("pods", 500, on="list")
        watcher = make_watcher(resources=("pods",))
        assert watcher.wait_synced(WAIT)
        status = watcher.status().resources["pods"]
        assert (status.errors, status.up, status.relists) == (1, True, 0)
        assert "HTTP 500" in status.last_error

    def test_server_error_on_watch_resumes(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """A 500 on a re-watch backs off and resumes without losing changes."""
        watcher = make_watcher(resources=("pods",))
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("pods")
        api.fail_next("pods", 500, on="watch")
        api.drop("pods")
        api.put("pods", pod("db-3"))
        recorder.wait_for(recorder.seen(ChangeType.ADDED, "shop/db-3"))
        assert watcher.status().resources["pods"].errors == 2

    def test_broken_log_stream_does_not_stop_the_watch(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher], tmp_path: Path
    ) -> None:
        """Logging that raises (a closed stream) is ignored; the watcher still recovers and syncs."""
        closed = (tmp_path / "log").open("w")
        closed.close()
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=closed))
        try:
            api.fail_next("pods", 500, on="list")
            watcher = make_watcher(resources=("pods",))
            assert watcher.wait_synced(WAIT)
        finally:
            structlog.reset_defaults()
        assert watcher.status().resources["pods"].errors == 1

    def test_stop_interrupts_blocked_watches(
        self, api: KubeAPI, make_watcher: Callable[..., InventoryWatcher]
    ) -> None:
        """stop() ends every watcher thread even while watches are blocked waiting for events."""
        watcher = make_watcher()
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("pods")
        watcher.stop(timeout=WAIT)
        assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("inventory-"))


class TestOneShot:
    def test_list_inventory_converts_every_resource(self, api: KubeAPI) -> None:
        """list_inventory returns a converted snapshot of the requested resources."""
        objects = list_inventory(factory_for(api.configuration())(), ("namespaces", "pods"))
        assert sorted(_key(Change(0, ChangeType.ADDED, o)) for o in objects) == [
            "shop",
            "shop/api-1",
            "shop/web-1",
        ]

    def test_missing_in_cluster_config_is_a_config_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Asking for in-cluster configuration outside a pod is a ConfigError naming the source."""
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        with pytest.raises(ConfigError, match="in-cluster service account"):
            api_client_factory(in_cluster=True)

    def test_api_errors_become_inventory_errors(self, api: KubeAPI) -> None:
        """An HTTP error from the API server is an InventoryError naming the call and the status."""
        api.fail_next("nodes", 403)
        with pytest.raises(InventoryError, match="list nodes: HTTP 403: InjectedFault"):
            list_inventory(factory_for(api.configuration())(), ("nodes",))


class TestBackoff:
    def test_delays_double_with_jitter_and_cap(self) -> None:
        """The n-th delay lies in [d/2, d] for d = initial * 2**n, never above the cap."""
        backoff = Backoff(WatchSettings(backoff_initial_seconds=1.0, backoff_max_seconds=8.0), random.Random(7))
        delays = [backoff.next_delay() for _ in range(6)]
        ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
        assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True))

    def test_reset_starts_over(self) -> None:
        """After reset the next delay is back at the initial size."""
        backoff = Backoff(WatchSettings(backoff_initial_seconds=1.0, backoff_max_seconds=8.0), random.Random(7))
        for _ in range(5):
            backoff.next_delay()
        backoff.reset()
        assert backoff.next_delay() <= 1.0
