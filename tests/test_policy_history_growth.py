"""History grows with what auditor reads: status-only writes and heartbeats are not new states;
a pod change costs the same whatever the size of its namespace."""

from __future__ import annotations

import gc
import tracemalloc
from dataclasses import replace
from typing import Any

import pytest

from auditor.kube.convert import object_from_dict
from auditor.model.k8s import Change, ChangeType, ContainerPort, KubeObject, Pod, relevant_equal
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState
from tests.strategies import node, ns, pod, policy, sel

S = 1_000_000_000


def modified(t: int, obj: KubeObject) -> Change:
    return Change(t * S, ChangeType.MODIFIED, obj)


def with_rv(obj: Any, rv: str) -> Any:
    return replace(obj, resource_version=rv)


API = replace(pod("shop", "api", ip="10.0.0.1", app="api"), resource_version="1")


def history_of(*objects: KubeObject) -> ClusterHistory:
    return ClusterHistory(initial=ClusterState.build([ns("shop"), *objects]))


def api_pod(rv: str, restarts: int) -> dict[str, Any]:
    """A Pod as the API serves it after a kubelet status write (restart count, probe time)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api", "namespace": "shop", "uid": "u1", "resourceVersion": rv,
                     "labels": {"app": "api"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "api", "ports": [{"containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "api", "restartCount": restarts, "ready": True}]},
    }


class TestNotNewStates:
    def test_status_only_pod_write_is_not_a_new_state(self) -> None:
        """A pod write that changes only its resourceVersion keeps the state in force (and its caches)."""
        history = history_of(API)
        before = history.latest()
        history.apply(modified(10, with_rv(API, "2")))
        assert (len(history), history.latest() is before, history.unchanged) == (0, True, 1)

    def test_node_heartbeat_is_not_a_new_state(self) -> None:
        """A node status write (heartbeat) with the same labels and addresses is counted, not recorded."""
        worker = with_rv(node("n1", "192.168.0.1"), "5")
        history = history_of(worker)
        for t in range(1, 101):
            history.apply(modified(t, with_rv(worker, str(5 + t))))
        assert (len(history), history.unchanged) == (0, 100)

    def test_namespace_write_without_label_change_is_not_a_new_state(self) -> None:
        """A namespace write that leaves its labels alone is not a new state."""
        shop = with_rv(ns("shop", team="a"), "3")
        history = ClusterHistory(initial=ClusterState.build([shop]))
        history.apply(modified(1, with_rv(shop, "4")))
        assert len(history) == 0

    def test_deleting_an_absent_pod_is_not_a_new_state(self) -> None:
        """The deletion of a pod the state does not hold changes nothing."""
        history = history_of(API)
        history.apply(Change(5 * S, ChangeType.DELETED, pod("shop", "gone")))
        assert (len(history), history.unchanged) == (0, 1)

    def test_status_only_write_in_the_initial_listing_is_not_folded_again(self) -> None:
        """apply_initial of an object equivalent to the base one leaves the base state as it is."""
        history = history_of(API)
        base = history.oldest()
        history.apply_initial(Change(0, ChangeType.MODIFIED, with_rv(API, "9")))
        assert history.oldest() is base

    def test_late_status_only_write_is_not_inserted(self) -> None:
        """An out-of-order write equivalent to the object in force at its time is not recorded either."""
        history = history_of(API)
        history.apply(modified(100, replace(API, labels={"app": "api", "v": "2"}, resource_version="3")))
        history.apply(modified(50, with_rv(API, "2")))
        assert (len(history), history.unchanged) == (1, 1)

    def test_kubelet_status_write_converts_to_a_relevant_equal_pod(self) -> None:
        """Two API versions of a pod differing in restart count and resourceVersion are relevant-equal."""
        assert relevant_equal(object_from_dict(api_pod("1", 0)), object_from_dict(api_pod("2", 3)))


class TestStillNewStates:
    @pytest.mark.parametrize("change", [
        {"labels": {"app": "web"}}, {"ips": ("10.0.0.9",)}, {"phase": "Succeeded"}, {"ready": False},
        {"node_name": "node-2"}, {"container_ports": (ContainerPort(8080, name="http"),)}, {"uid": "other"},
        {"service_account": "robot"},
    ])
    def test_pod_change_auditor_reads_is_a_new_state(self, change: dict[str, Any]) -> None:
        """A write that changes a field the engine or findings read is recorded."""
        history = history_of(API)
        history.apply(modified(1, replace(API, resource_version="2", **change)))
        assert len(history) == 1
        assert history.unchanged == 0

    def test_policy_write_with_the_same_spec_is_still_a_new_state(self) -> None:
        """A policy's resourceVersion is the revision decisions cite, so every policy write is recorded."""
        deny = policy("shop", "deny", sel(app="api"), ingress=[], rv="10")
        history = history_of(API, deny)
        history.apply(modified(1, with_rv(deny, "11")))
        assert len(history) == 1
        found = history.latest().policy("shop", "deny")
        assert found is not None
        assert found.resource_version == "11"

    def test_node_address_change_is_a_new_state(self) -> None:
        """A node whose addresses change is recorded (node_by_ip answers with them)."""
        history = history_of(node("n1", "192.168.0.1"))
        history.apply(modified(1, node("n1", "192.168.0.2")))
        assert history.latest().node_by_ip("192.168.0.2") is not None


class TestNamespacePods:
    def test_pods_in_stays_sorted_by_name_across_changes(self) -> None:
        """pods_in lists a namespace's pods by name after adds, modifications and deletions."""
        cluster = ClusterState.build([pod("shop", "m"), pod("shop", "c"), pod("other", "a")])
        cluster = cluster.apply(Change(1, ChangeType.ADDED, pod("shop", "a")))
        cluster = cluster.apply(modified(2, pod("shop", "m", app="x")))
        cluster = cluster.apply(Change(3, ChangeType.DELETED, pod("shop", "c")))
        assert [(p.name, dict(p.labels)) for p in cluster.pods_in("shop")] == [("a", {}), ("m", {"app": "x"})]
        assert cluster.apply(Change(4, ChangeType.DELETED, pod("other", "a"))).pods_in("other") == ()

    def test_pods_in_of_an_older_state_is_unchanged_by_later_changes(self) -> None:
        """A state keeps answering with its own pods once a newer state holds a changed namespace."""
        cluster = ClusterState.build([pod("shop", "a"), pod("shop", "b")])
        listed = [p.name for p in cluster.pods_in("shop")]
        cluster.apply(Change(1, ChangeType.DELETED, pod("shop", "a")))
        assert [p.name for p in cluster.pods_in("shop")] == listed == ["a", "b"]

    @staticmethod
    def _kept_per_change(pods: int, changes: int = 100) -> float:
        base = [Pod(namespace="big", name=f"p{i:05d}", ips=(f"10.1.{i // 256}.{i % 256}",))
                for i in range(pods)]
        history = ClusterHistory(initial=ClusterState.build(base))
        writes = [replace(base[i % pods], ready=bool(i // pods % 2)) for i in range(changes)]
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for t, write in enumerate(writes, start=1):
                history.apply(modified(t, write))
            gc.collect()
            assert len(history) == changes
            return (tracemalloc.get_traced_memory()[0] - before) / changes
        finally:
            tracemalloc.stop()

    def test_pod_change_costs_the_same_in_a_large_namespace(self) -> None:
        """A recorded pod change keeps about as much memory at 2,000 pods per namespace as at 50."""
        small, large = self._kept_per_change(50), self._kept_per_change(2_000)
        assert large < small * 1.5, (small, large)
