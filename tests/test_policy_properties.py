"""Hypothesis properties of the engine over small random clusters and policies."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.model.decision import Decision, PodSubject
from auditor.model.k8s import Change, ChangeType, NetworkPolicy, PolicyDirection, Rule
from auditor.policy.engine import PolicyEngine
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState, policy_applies
from tests.strategies import (
    EGRESS,
    INGRESS,
    cluster_objects,
    cluster_pods,
    connections,
    policies,
    policy_sets,
    rules,
)

Conn = tuple[int, int, int, str]
PODS = cluster_pods()
FAST = settings(max_examples=150, deadline=None)


def _decide(cluster: ClusterState, conn: Conn, engine: PolicyEngine | None = None) -> Decision:
    src, dst, number, protocol = conn
    source = cluster.pod(PODS[src].namespace, PODS[src].name)
    destination = cluster.pod(PODS[dst].namespace, PODS[dst].name)
    assert source is not None
    assert destination is not None
    engine = engine or PolicyEngine()
    return engine.decide(cluster, PodSubject(source), PodSubject(destination), number, protocol)


def _summary(d: Decision) -> tuple[object, ...]:
    return (d.allowed, d.egress.allowed, d.ingress.allowed, d.egress.isolated, d.ingress.isolated,
            frozenset(d.egress.allowed_by), frozenset(d.ingress.allowed_by))


class TestProperties:
    @FAST
    @given(policy_sets(), st.randoms(use_true_random=False), connections)
    def test_policy_order_never_matters(self, pols: list[NetworkPolicy], rnd: object,
                                        conn: Conn) -> None:
        """Building from policies in any order, or applying them one by one, gives the same verdicts."""
        shuffled = list(pols)
        rnd.shuffle(shuffled)  # type: ignore[attr-defined]
        built = ClusterState.build(cluster_objects(pols))
        applied = ClusterState.build(cluster_objects([]))
        for i, p in enumerate(shuffled):
            applied = applied.apply(Change(i, ChangeType.ADDED, p))
        assert _summary(_decide(built, conn)) == _summary(_decide(applied, conn))

    @FAST
    @given(policy_sets(), st.integers(0, 3), rules, st.sampled_from((INGRESS, EGRESS)), connections)
    def test_adding_an_allow_rule_never_denies(self, pols: list[NetworkPolicy], which: int, extra: Rule,
                                               direction: PolicyDirection, conn: Conn) -> None:
        """Adding a rule to a direction a policy already governs never turns allowed into denied."""
        before = _decide(ClusterState.build(cluster_objects(pols)), conn)
        if not pols or not policy_applies(pols[which % len(pols)], direction):
            return
        target = pols[which % len(pols)]
        if direction is INGRESS:
            grown = replace(target, ingress=(*(target.ingress or ()), extra))
        else:
            grown = replace(target, egress=(*(target.egress or ()), extra))
        after_pols = [grown if p is target else p for p in pols]
        after = _decide(ClusterState.build(cluster_objects(after_pols)), conn)
        assert not (before.allowed and not after.allowed)

    @FAST
    @given(policy_sets(), connections)
    def test_unselected_pod_is_open(self, pols: list[NetworkPolicy], conn: Conn) -> None:
        """A pod no policy selects for a direction is allowed (and not isolated) in that direction."""
        cluster = ClusterState.build(cluster_objects(pols))
        d = _decide(cluster, conn)
        src, dst = PODS[conn[0]], PODS[conn[1]]
        if src.key == dst.key:
            return
        if not cluster.policies_selecting(dst, INGRESS):
            assert d.ingress.allowed
            assert not d.ingress.isolated
        if not cluster.policies_selecting(src, EGRESS):
            assert d.egress.allowed
            assert not d.egress.isolated

    @FAST
    @given(policy_sets(), connections)
    def test_empty_ingress_never_allows(self, pols: list[NetworkPolicy], conn: Conn) -> None:
        """A policy with ingress [] never appears among the rules that allowed ingress."""
        cluster = ClusterState.build(cluster_objects(pols))
        d = _decide(cluster, conn)
        empty = {(p.namespace, p.name) for p in pols if p.ingress == ()}
        assert not any((m.policy.namespace, m.policy.name) in empty for m in d.ingress.allowed_by)

    @FAST
    @given(policy_sets(), connections)
    def test_verdict_is_consistent(self, pols: list[NetworkPolicy], conn: Conn) -> None:
        """allowed == egress AND ingress; a denied side is isolated, attributed, and has no allowing rule."""
        d = _decide(ClusterState.build(cluster_objects(pols)), conn)
        assert d.allowed == (d.egress.allowed and d.ingress.allowed)
        for side in (d.egress, d.ingress):
            if side.allowed:
                assert side.isolated_by == ()
            else:
                assert side.isolated
                assert side.isolated_by == side.selecting != ()
                assert side.allowed_by == ()

    @FAST
    @given(policy_sets(), st.lists(connections, min_size=1, max_size=5))
    def test_cache_matches_uncached(self, pols: list[NetworkPolicy], conns: list[Conn]) -> None:
        """A cached answer equals a fresh evaluation."""
        cluster = ClusterState.build(cluster_objects(pols))
        engine = PolicyEngine()
        for conn in conns + conns:
            assert _decide(cluster, conn, engine) == _decide(cluster, conn, PolicyEngine())


class TestHistoryProperties:
    @FAST
    @given(st.lists(st.tuples(st.integers(0, 20), policies(), st.booleans()), max_size=8,
                    unique_by=lambda e: e[0]),
           st.randoms(use_true_random=False), st.integers(0, 21), connections)
    def test_arrival_order_never_matters(self, events: list[tuple[int, NetworkPolicy, bool]], rnd: object,
                                         t: int, conn: Conn) -> None:
        """Changes applied out of order give the same state at every instant as in time order."""
        changes = [Change(time, ChangeType.DELETED if delete else ChangeType.ADDED, p)
                   for time, p, delete in events]
        initial = ClusterState.build(cluster_objects([]))
        in_order = ClusterHistory(initial=initial)
        for change in sorted(changes, key=lambda c: c.time_ns):
            in_order.apply(change)
        shuffled = list(changes)
        rnd.shuffle(shuffled)  # type: ignore[attr-defined]
        late = ClusterHistory(initial=initial)
        for change in shuffled:
            late.apply(change)
        assert _summary(_decide(in_order.at(t), conn)) == _summary(_decide(late.at(t), conn))
