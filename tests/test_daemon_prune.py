"""Metric series of deleted namespaces, workloads and policies go away."""

from __future__ import annotations

from collections import Counter

from auditor.app.analysis import prune_deleted
from auditor.findings.correlate import CorrelatorStats, PolicyVerdictKey
from auditor.model.cilium import CiliumKind, CiliumNetworkPolicy, CiliumPolicySpec, CiliumRule
from auditor.model.decision import CCNP_KIND, CNP_KIND, KNP_KIND
from auditor.model.k8s import Namespace, NetworkPolicy, Pod, WorkloadRef
from auditor.model.labels import LabelSelector
from auditor.policy.state import ClusterState


def _stats() -> CorrelatorStats:
    stats = CorrelatorStats()
    stats.policy_verdicts.update(
        {
            ("shop", "api-in", "ingress", "allowed", KNP_KIND): 3,
            ("shop", "old-policy", "ingress", "dropped", KNP_KIND): 2,
            ("gone", "p", "egress", "dropped", KNP_KIND): 1,
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
        assert dict(stats.policy_verdicts) == {("shop", "api-in", "ingress", "allowed", KNP_KIND): 3}
        assert dict(stats.policy_drops) == {("shop", "api", "ingress", True): 2}
        assert dict(stats.dns_denials) == {("shop", "api"): 4}
        assert dict(stats.health_check_drops) == {("shop", "api", 9090): 1}

    def test_counts_what_it_removed(self) -> None:
        """The return value is the number of keys forgotten."""
        assert prune_deleted(_stats(), STATE) == 5

    def test_prunes_extra_policy_counters(self) -> None:
        """Flush bookkeeping keyed like policy_verdicts is pruned the same way."""
        flushed: Counter[PolicyVerdictKey] = Counter({("shop", "old", "ingress", "dropped", KNP_KIND): 2})
        prune_deleted(CorrelatorStats(), STATE, flushed)
        assert not flushed


ANY_INGRESS = (CiliumPolicySpec(endpoint_selector=LabelSelector(),
                                ingress=(CiliumRule(endpoints=(LabelSelector(),)),)),)
CILIUM_STATE = ClusterState.build(
    [
        Namespace("shop"),
        NetworkPolicy(namespace="shop", name="api-in"),
        CiliumNetworkPolicy(CiliumKind.CNP, "web-in", "shop", ANY_INGRESS),
        CiliumNetworkPolicy(CiliumKind.CCNP, "dns", specs=ANY_INGRESS),
    ]
)


def _verdicts(*keys: PolicyVerdictKey) -> CorrelatorStats:
    stats = CorrelatorStats()
    stats.policy_verdicts.update(dict.fromkeys(keys, 1))
    return stats


class TestPruneCiliumPolicies:
    def test_keeps_existing_cilium_policies(self) -> None:
        """Counters of an existing CNP and CCNP (namespace "") are kept."""
        keys = (("shop", "web-in", "ingress", "allowed", CNP_KIND), ("", "dns", "egress", "dropped", CCNP_KIND))
        stats = _verdicts(*keys)
        assert prune_deleted(stats, CILIUM_STATE) == 0
        assert set(stats.policy_verdicts) == set(keys)

    def test_forgets_deleted_cilium_policies(self) -> None:
        """Counters of a CNP or CCNP the state no longer has are forgotten."""
        stats = _verdicts(("shop", "gone", "ingress", "allowed", CNP_KIND),
                          ("", "gone", "egress", "dropped", CCNP_KIND))
        assert prune_deleted(stats, CILIUM_STATE) == 2
        assert not stats.policy_verdicts

    def test_kind_must_match(self) -> None:
        """A NetworkPolicy does not keep a CiliumNetworkPolicy of its name alive, nor the reverse."""
        stats = _verdicts(("shop", "api-in", "ingress", "allowed", CNP_KIND),
                          ("shop", "web-in", "ingress", "allowed", KNP_KIND))
        prune_deleted(stats, CILIUM_STATE)
        assert not stats.policy_verdicts
