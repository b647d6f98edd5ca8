"""ClusterState snapshots and ClusterHistory: state in force at t, revisions, out-of-order, pruning."""

from __future__ import annotations

from dataclasses import replace

import pytest

from auditor.model.k8s import Change, ChangeType, KubeObject
from auditor.policy.history import DAY_NS, ClusterHistory
from auditor.policy.state import ClusterState
from tests.strategies import decide, node, ns, pod, policy, sel

S = 1_000_000_000
DENY = policy("shop", "deny", sel(app="api"), ingress=[], rv="10")


def added(t: int, obj: KubeObject) -> Change:
    return Change(t * S, ChangeType.ADDED, obj)


def modified(t: int, obj: KubeObject) -> Change:
    return Change(t * S, ChangeType.MODIFIED, obj)


def deleted(t: int, obj: KubeObject) -> Change:
    return Change(t * S, ChangeType.DELETED, obj)


def initial() -> ClusterState:
    return ClusterState.build([ns("shop"), pod("shop", "api", ip="10.0.0.1", app="api"),
                               pod("shop", "web", ip="10.0.0.2", app="web")])


def allowed(cluster: ClusterState) -> bool:
    return decide(cluster, "shop/web", "shop/api").allowed


class TestClusterState:
    def test_apply_does_not_mutate(self) -> None:
        """apply returns a new state; the old one still answers as before."""
        before = initial()
        after = before.apply(added(1, DENY))
        assert (allowed(before), allowed(after)) == (True, False)
        assert after.revision > before.revision

    def test_pod_ip_index_follows_changes(self) -> None:
        """pod_by_ip follows IP changes and deletions."""
        cluster = initial()
        api = cluster.pod("shop", "api")
        assert api is not None
        moved = cluster.apply(modified(1, replace(api, ips=("10.0.9.9",))))
        assert moved.pod_by_ip("10.0.0.1") is None
        found = moved.pod_by_ip("10.0.9.9")
        assert found is not None
        assert found.name == "api"
        assert moved.apply(deleted(2, api)).pod_by_ip("10.0.9.9") is None

    def test_host_network_pods_not_indexed_by_ip(self) -> None:
        """A hostNetwork pod's IP is its node's: pod_by_ip does not return it, node_by_ip does."""
        cluster = ClusterState.build([pod("kube-system", "agent", ip="192.168.0.1", host_network=True),
                                      node("node-1", "192.168.0.1")])
        assert cluster.pod_by_ip("192.168.0.1") is None
        found = cluster.node_by_ip("192.168.0.1")
        assert found is not None
        assert found.name == "node-1"

    def test_node_and_namespace_changes(self) -> None:
        """Nodes and namespaces are added, modified and deleted."""
        cluster = ClusterState.empty().apply(added(1, node("n1", "192.168.0.9")))
        assert cluster.node_by_ip("192.168.0.9") is not None
        cluster = cluster.apply(modified(2, node("n1", "192.168.0.10")))
        assert cluster.node_by_ip("192.168.0.9") is None
        cluster = cluster.apply(added(3, ns("shop", team="a"))).apply(deleted(4, ns("shop")))
        assert cluster.namespace("shop") is None
        assert [n.name for n in cluster.nodes] == ["n1"]

    def test_listings_are_sorted(self) -> None:
        """pods and policies are listed by namespace/name whatever the insertion order."""
        cluster = ClusterState.build([pod("b", "z"), pod("a", "y"), pod("a", "x"),
                                      policy("b", "p"), policy("a", "q")])
        assert [p.key for p in cluster.pods] == ["a/x", "a/y", "b/z"]
        assert [p.key for p in cluster.policies] == ["a/q", "b/p"]
        assert [p.name for p in cluster.pods_in("a")] == ["x", "y"]


class TestClusterHistory:
    def _history(self) -> ClusterHistory:
        history = ClusterHistory(initial=initial())
        history.apply(added(100, DENY))
        history.apply(modified(200, replace(DENY, pod_selector=sel(app="nothing"), resource_version="11")))
        history.apply(deleted(300, DENY))
        return history

    @pytest.mark.parametrize(("t", "expected"), [(50, True), (100, False), (150, False), (200, True),
                                                 (250, True), (300, True)])
    def test_state_in_force(self, t: int, expected: bool) -> None:
        """at(t) is the state after the last change at or before t."""
        assert allowed(self._history().at(t * S)) is expected

    def test_policy_revision_in_force(self) -> None:
        """The decision names the policy revision that was in force at that time."""
        history = self._history()
        d = decide(history.at(150 * S), "shop/web", "shop/api")
        assert [str(p) for p in d.ingress.isolated_by] == ["shop/deny@10"]
        modified_policy = history.at(250 * S).policy("shop", "deny")
        assert modified_policy is not None
        assert modified_policy.resource_version == "11"

    def test_changes_between_inclusive(self) -> None:
        """changes_between returns changes with from <= t <= to, in order."""
        history = self._history()
        times = [c.time_ns // S for c in history.changes_between(100 * S, 200 * S)]
        assert times == [100, 200]
        history.apply(added(400, pod("shop", "new")))
        assert len(history.changes_between(0, 500 * S, policies_only=True)) == 3

    def test_out_of_order_change_is_inserted(self) -> None:
        """A late change is placed at its time and later states are rebuilt, as if it came in order."""
        history = ClusterHistory(initial=initial())
        history.apply(added(100, DENY))
        history.apply(deleted(300, DENY))
        history.apply(added(200, pod("shop", "late", app="late")))
        assert history.out_of_order == 1
        assert history.at(250 * S).pod("shop", "late") is not None
        assert history.at(350 * S).pod("shop", "late") is not None
        assert history.at(150 * S).pod("shop", "late") is None
        assert not allowed(history.at(250 * S))

    def test_prune_keeps_state_at_window_start(self) -> None:
        """After pruning, times before the window answer with the state in force at the window start."""
        history = ClusterHistory(window_ns=1000 * S, initial=initial())
        history.apply(added(100, DENY))
        history.apply(added(200, pod("shop", "other")))
        folded = history.prune(now_ns=1150 * S)
        assert folded == 1
        assert len(history) == 1
        assert not allowed(history.at(0))
        assert history.oldest().policy("shop", "deny") is not None

    def test_change_older_than_horizon_folds_into_oldest(self) -> None:
        """A change older than the pruning horizon applies to the oldest kept state and every later one."""
        history = ClusterHistory(window_ns=1000 * S, initial=initial())
        history.apply(added(2000, pod("shop", "x")))
        history.prune(now_ns=2500 * S)
        history.apply(added(10, DENY))
        assert not allowed(history.at(0))
        assert not allowed(history.latest())

    def test_superseded_states_drop_memos_but_still_answer(self) -> None:
        """Once a newer state is appended, the older one forgets its memos and answers the same."""
        history = ClusterHistory(initial=initial())
        history.apply(added(100, DENY))
        old = history.at(150 * S)
        assert not allowed(old)
        history.apply(added(200, pod("shop", "other")))
        assert old._selecting == {}
        assert not allowed(old)

    def test_default_window_is_a_day(self) -> None:
        """The default window is 24 hours."""
        assert ClusterHistory().window_ns == DAY_NS == 86_400 * S

    def test_empty_history(self) -> None:
        """A history without changes answers with its initial state at any time."""
        base = initial()
        history = ClusterHistory(initial=base)
        assert history.at(123) is base
        assert history.latest() is base




class TestApplyInitial:
    def test_initial_objects_are_in_force_at_every_time(self) -> None:
        """An initial listing is in force before, at and after every recorded change."""
        from auditor.model.k8s import Change, ChangeType, Namespace, Pod
        from auditor.policy.history import ClusterHistory

        history = ClusterHistory(window_ns=10**12)
        history.apply(Change(500, ChangeType.ADDED, Namespace("late")))
        history.apply_initial(Change(0, ChangeType.ADDED, Pod(namespace="shop", name="api", ips=("10.0.0.1",))))
        assert len(history) == 1
        for time_ns in (0, 499, 500, 10**6):
            assert history.at(time_ns).pod_by_ip("10.0.0.1") is not None
        assert history.at(499).namespace("late") is None
        assert history.at(500).namespace("late") is not None
