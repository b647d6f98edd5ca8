"""The daemon's live inventory: the real kubernetes client against a loopback API server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from auditor.app.inventory import LiveInventory
from auditor.kube.client import factory_for
from auditor.kube.watch import InventoryWatcher
from auditor.policy.history import ClusterHistory
from tests.kubeapi import KubeAPI
from tests.test_kube_watch import FAST, namespace, pod

DAY_NS = 24 * 3600 * 10**9


def _pod_with_ip(name: str, ip: str, **labels: str) -> dict[str, Any]:
    body = pod(name, **labels)
    body["status"] = {"podIP": ip, "podIPs": [{"ip": ip}]}
    return body


@pytest.fixture(name="api")
def _api() -> Iterator[KubeAPI]:
    api = KubeAPI().start()
    api.put("namespaces", namespace("shop"))
    api.put("pods", _pod_with_ip("api-1", "10.0.0.1", app="api"))
    yield api
    api.stop()


@pytest.fixture(name="inventory")
def _inventory(api: KubeAPI) -> Iterator[LiveInventory]:
    inventory = LiveInventory(
        ClusterHistory(window_ns=DAY_NS),
        lambda sink: InventoryWatcher(factory_for(api.configuration()), sink, settings=FAST),
    )
    inventory.start()
    yield inventory
    inventory.stop()


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


class TestLiveInventory:
    def test_initial_list_in_force_before_the_daemon_started(self, inventory: LiveInventory) -> None:
        """Objects of the initial list are in force at any time, also for flows older than the start."""
        _wait(inventory.ready)
        assert inventory.history.at(1).pod_by_ip("10.0.0.1") is not None
        assert inventory.status().ready

    def test_later_changes_take_effect_when_received(self, api: KubeAPI, inventory: LiveInventory) -> None:
        """A pod added after the initial list is unknown before it arrived and known after."""
        _wait(inventory.ready)
        before = time.time_ns()
        api.put("pods", _pod_with_ip("web-1", "10.0.0.2", app="web"))
        _wait(lambda: inventory.history.latest().pod_by_ip("10.0.0.2") is not None)
        assert inventory.history.at(before - 1).pod_by_ip("10.0.0.2") is None
        assert inventory.history.at(time.time_ns()).pod_by_ip("10.0.0.2") is not None

    def test_changes_reach_the_analysis_hook(self, api: KubeAPI, inventory: LiveInventory) -> None:
        """Every change, initial or later, is handed to on_change (policy history for the store)."""
        seen: list[str] = []
        inventory.on_change = lambda change: seen.append(type(change.obj).__name__)
        _wait(inventory.ready)
        api.put("networkpolicies", {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "shop"}, "spec": {"podSelector": {}},
        })
        _wait(lambda: "NetworkPolicy" in seen)

    def test_a_status_only_write_is_counted_as_unchanged(self, api: KubeAPI, inventory: LiveInventory) -> None:
        """A write that changes only status auditor does not read is counted, and is no new state."""
        _wait(inventory.ready)
        revision = inventory.history.latest().revision
        body = _pod_with_ip("api-1", "10.0.0.1", app="api")
        body["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        api.put("pods", body)
        _wait(lambda: inventory.history.unchanged == 1)
        assert inventory.history.latest().revision == revision
