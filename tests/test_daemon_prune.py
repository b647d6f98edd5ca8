"""Metric series of deleted namespaces, workloads and policies go away."""

from __future__ import annotations

from collections import Counter

from auditor.app.analysis import prune_deleted
from auditor.findings.correlate import CorrelatorStats
from auditor.model.k8s import Namespace, NetworkPolicy, Pod, WorkloadRef
from auditor.policy.state import ClusterState


def _stats() -> CorrelatorStats:
    stats = CorrelatorStats()
    stats.policy_verdicts.update(
        {
            ("shop", "api-in", "ingress", "allowed"): 3,
            ("shop", "old-policy", "ingress", "dropped"): 2,
            ("gone", "p", "egress", "dropped"): 1,
        }
    )
    stats.policy_drops.update({("shop", "api", "ingress", True): 2, ("shop", "batch", "egress", True): 1})
    stats.dns_denials.update({("shop", "api"): 4, ("gone", "x"): 1})
    stats.health_check_drops.update({("shop", "api", 9090): 1, ("shop", "batch", 8080): 1})
    return stats


STATE = ClusterState.build(
    [
        Namespace("shop"),
        Pod(namespace="shop", name="api-1", workload=WorkloadRef("Deployment", "api")),
        NetworkPolicy(namespace="shop", name="api-in"),
    ]
)


class TestPruneDeleted:
    def test_keeps_what_exists(self) -> None:
        """Keys whose namespace, workload and policy still exist are kept with their counts."""
        stats = _stats()
        prune_deleted(stats, STATE)
        assert dict(stats.policy_verdicts) == {("shop", "api-in", "ingress", "allowed"): 3}
        assert dict(stats.policy_drops) == {("shop", "api", "ingress", True): 2}
        assert dict(stats.dns_denials) == {("shop", "api"): 4}
        assert dict(stats.health_check_drops) == {("shop", "api", 9090): 1}

    def test_counts_what_it_removed(self) -> None:
        """The return value is the number of keys forgotten."""
        assert prune_deleted(_stats(), STATE) == 5

    def test_prunes_extra_policy_counters(self) -> None:
        """Flush bookkeeping keyed like policy_verdicts is pruned the same way."""
        flushed: Counter[tuple[str, str, str, str]] = Counter({("shop", "old-policy", "ingress", "dropped"): 2})
        prune_deleted(CorrelatorStats(), STATE, flushed)
        assert not flushed
