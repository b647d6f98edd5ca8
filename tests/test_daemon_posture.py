"""Posture gauges: unprotected pods and namespace default deny."""

from __future__ import annotations

from auditor.app.analysis import compute_posture
from auditor.model.k8s import LabelSelector, Namespace, NetworkPolicy, Pod, PolicyDirection, Rule
from auditor.policy.state import ClusterState

DENY_ALL_INGRESS = NetworkPolicy(namespace="shop", name="deny", policy_types=(PolicyDirection.INGRESS,))
API_EGRESS = NetworkPolicy(
    namespace="shop",
    name="api-out",
    pod_selector=LabelSelector(match_labels={"app": "api"}),
    policy_types=(PolicyDirection.EGRESS,),
    egress=(Rule(),),
)


class TestPosture:
    def test_default_deny_needs_an_empty_selector_policy(self) -> None:
        """Ingress default deny comes from the empty-selector policy; egress covered pod by pod is not one."""
        state = ClusterState.build(
            [
                Namespace("shop"),
                Pod(namespace="shop", name="api-1", labels={"app": "api"}),
                DENY_ALL_INGRESS,
                API_EGRESS,
            ]
        )
        posture = compute_posture(state)
        assert posture.default_deny == {("shop", "ingress"): True, ("shop", "egress"): False}
        assert posture.unprotected_pods == {("shop", "ingress"): 0, ("shop", "egress"): 0}

    def test_empty_namespace_without_policy_has_no_default_deny(self) -> None:
        """A namespace with no pods and no policy is not reported as default-deny."""
        posture = compute_posture(ClusterState.build([Namespace("empty")]))
        assert posture.default_deny == {("empty", "ingress"): False, ("empty", "egress"): False}

    def test_unprotected_pods_counted_per_direction(self) -> None:
        """Pods no policy selects are counted per namespace and direction; hostNetwork pods are not."""
        state = ClusterState.build(
            [
                Namespace("shop"),
                Pod(namespace="shop", name="a"),
                Pod(namespace="shop", name="b"),
                Pod(namespace="shop", name="node-agent", host_network=True),
                DENY_ALL_INGRESS,
            ]
        )
        assert compute_posture(state).unprotected_pods == {("shop", "ingress"): 0, ("shop", "egress"): 2}
