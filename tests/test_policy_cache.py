"""The decision cache: hits for repeated questions, never a stale answer after a relevant change."""

from __future__ import annotations

from dataclasses import replace

from auditor.model.decision import ExternalSubject, PodSubject
from auditor.model.k8s import Change, ChangeType, KubeObject
from auditor.policy.engine import PolicyEngine
from auditor.policy.state import ClusterState
from tests.strategies import cidr, ns, peer, pod, policy, rule, sel

API = pod("shop", "api", ip="10.0.0.1", app="api")
WEB = pod("ops", "web", ip="10.0.0.2", app="web")
ALLOW_OPS_WEB = policy("shop", "api-in", sel(app="api"), ingress=[rule(peer(sel(app="web"), sel(team="ops")))])


def _cluster() -> ClusterState:
    return ClusterState.build([ns("shop"), ns("ops", team="ops"), API, WEB, ALLOW_OPS_WEB])


def _ask(engine: PolicyEngine, cluster: ClusterState, src: str = "ops/web", dst: str = "shop/api") -> bool:
    s_ns, s_name = src.split("/")
    d_ns, d_name = dst.split("/")
    source, destination = cluster.pod(s_ns, s_name), cluster.pod(d_ns, d_name)
    assert source is not None
    assert destination is not None
    return engine.decide(cluster, PodSubject(source), PodSubject(destination), 80).allowed


def _change(cluster: ClusterState, obj: KubeObject, kind: ChangeType = ChangeType.MODIFIED) -> ClusterState:
    return cluster.apply(Change(1, kind, obj))


class TestDecisionCache:
    def test_repeat_is_a_hit(self) -> None:
        """The same question on the same state is answered from the cache."""
        engine, cluster = PolicyEngine(), _cluster()
        _ask(engine, cluster)
        _ask(engine, cluster)
        assert (engine.misses, engine.hits) == (1, 1)

    def test_pod_label_change_invalidates(self) -> None:
        """Relabelling the source pod changes the answer."""
        engine, cluster = PolicyEngine(), _cluster()
        assert _ask(engine, cluster)
        assert not _ask(engine, _change(cluster, replace(WEB, labels={"app": "other"})))

    def test_destination_label_change_invalidates(self) -> None:
        """Relabelling the destination so no policy selects it opens it."""
        engine = PolicyEngine()
        cluster = _change(_cluster(), replace(WEB, labels={"app": "other"}))
        assert not _ask(engine, cluster)
        assert _ask(engine, _change(cluster, replace(API, labels={"app": "unselected"})))

    def test_namespace_label_change_invalidates(self) -> None:
        """Removing the namespace label the peer selects on changes the answer."""
        engine, cluster = PolicyEngine(), _cluster()
        assert _ask(engine, cluster)
        assert not _ask(engine, _change(cluster, ns("ops")))

    def test_policy_change_invalidates(self) -> None:
        """Modifying, deleting or adding a policy changes the answer."""
        engine, cluster = PolicyEngine(), _cluster()
        assert _ask(engine, cluster)
        narrowed = _change(cluster, replace(ALLOW_OPS_WEB, ingress=()))
        assert not _ask(engine, narrowed)
        assert _ask(engine, _change(narrowed, ALLOW_OPS_WEB, ChangeType.DELETED))

    def test_pod_ip_change_invalidates(self) -> None:
        """After a pod IP change, the IP resolves to the new owner and the decision follows it."""
        engine, cluster = PolicyEngine(), _cluster()
        old_owner = cluster.pod_by_ip("10.0.0.2")
        assert old_owner is not None
        api = cluster.pod("shop", "api")
        assert api is not None
        assert engine.decide(cluster, PodSubject(old_owner, "10.0.0.2"), PodSubject(api), 80).allowed
        moved = _change(_change(cluster, replace(WEB, ips=("10.0.0.9",))),
                        pod("shop", "intruder", ip="10.0.0.2", app="x"), ChangeType.ADDED)
        new_owner = moved.pod_by_ip("10.0.0.2")
        assert new_owner is not None
        assert new_owner.name == "intruder"
        new_api = moved.pod("shop", "api")
        assert new_api is not None
        assert not engine.decide(moved, PodSubject(new_owner, "10.0.0.2"), PodSubject(new_api), 80).allowed

    def test_foreign_pod_object_is_keyed_by_value(self) -> None:
        """A caller-made Pod with other labels than the state's is not answered from the state pod's entry."""
        engine, cluster = PolicyEngine(), _cluster()
        api = cluster.pod("shop", "api")
        assert api is not None
        assert _ask(engine, cluster)
        stranger = replace(WEB, labels={"app": "stranger"})
        assert not engine.decide(cluster, PodSubject(stranger), PodSubject(api), 80).allowed

    def test_external_subjects_are_keyed_by_ip(self) -> None:
        """Different external IPs get different cache entries."""
        pol = policy("shop", "p", sel(app="api"), ingress=[rule(cidr("1.2.3.0/24"))])
        cluster = ClusterState.build([API, pol])
        engine = PolicyEngine()
        api = cluster.pod("shop", "api")
        assert api is not None
        assert engine.decide(cluster, ExternalSubject("1.2.3.4"), PodSubject(api), 80).allowed
        assert not engine.decide(cluster, ExternalSubject("5.6.7.8"), PodSubject(api), 80).allowed

    def test_cache_is_bounded(self) -> None:
        """The cache never grows past its size; the oldest entries go first."""
        engine, cluster = PolicyEngine(cache_size=2), _cluster()
        api = cluster.pod("shop", "api")
        assert api is not None
        for port in (1, 2, 3):
            engine.decide(cluster, ExternalSubject("9.9.9.9"), PodSubject(api), port)
        engine.decide(cluster, ExternalSubject("9.9.9.9"), PodSubject(api), 3)
        engine.decide(cluster, ExternalSubject("9.9.9.9"), PodSubject(api), 1)
        assert (engine.hits, engine.misses) == (1, 4)
