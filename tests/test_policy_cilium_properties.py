"""Hypothesis properties of the engine with Cilium policies: deny and allow monotonicity, KNP results kept."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.model.cilium import (
    CiliumKind,
    CiliumNetworkPolicy,
    CiliumPolicySpec,
    CiliumPort,
    CiliumRule,
    ICMPType,
    PortRule,
)
from auditor.model.decision import Decision, ExternalSubject, PodSubject, Subject
from auditor.model.k8s import KubeObject, LabelSelector, NetworkPolicy
from auditor.policy.engine import PolicyEngine
from auditor.policy.state import ClusterState
from tests.strategies import NAMESPACES, cluster_objects, cluster_pods, policy_sets, sel, selectors

PODS = cluster_pods()
FAST = settings(max_examples=120, deadline=None)
WORLD = "203.0.113.7"

entities = st.lists(st.sampled_from(("world", "cluster", "all", "host", "remote-node", "kube-apiserver")),
                    min_size=1, max_size=2).map(tuple)
ns_selector = st.sampled_from((sel(**{"io.kubernetes.pod.namespace": "y"}),
                               sel(**{"k8s:io.cilium.k8s.namespace.labels.team": "1"})))
endpoint_lists = st.lists(st.one_of(selectors, ns_selector), min_size=1, max_size=2).map(tuple)
cilium_ports = st.lists(st.sampled_from((CiliumPort("80", 0, "TCP"), CiliumPort("443", 0, "ANY"),
                                         CiliumPort("80", 90, "TCP"), CiliumPort("http", 0, "TCP"),
                                         CiliumPort("0", 0, "UDP"))), min_size=1, max_size=2)
port_rules = st.one_of(st.just(()), cilium_ports.map(lambda ps: (PortRule(tuple(ps)),)))


@st.composite
def cilium_rules(draw: st.DrawFn) -> CiliumRule:
    shape = draw(st.sampled_from(("endpoints", "entities", "cidrs", "ports-only", "icmp")))
    to_ports = draw(port_rules)
    if shape == "endpoints":
        return CiliumRule(endpoints=draw(endpoint_lists), to_ports=to_ports)
    if shape == "entities":
        return CiliumRule(entities=draw(entities), to_ports=to_ports)
    if shape == "cidrs":
        return CiliumRule(cidrs=(draw(st.sampled_from(("0.0.0.0/0", "203.0.113.0/24", "10.0.0.0/8"))),),
                          to_ports=to_ports)
    if shape == "icmp":
        return CiliumRule(icmps=(ICMPType(8),))
    return CiliumRule(to_ports=draw(cilium_ports.map(lambda ps: (PortRule(tuple(ps)),))))


rule_lists = st.one_of(st.none(), st.lists(cilium_rules(), min_size=1, max_size=2).map(tuple))


@st.composite
def cilium_policies(draw: st.DrawFn, name: str = "c") -> CiliumNetworkPolicy:
    clusterwide = draw(st.booleans())
    spec = CiliumPolicySpec(endpoint_selector=draw(selectors), ingress=draw(rule_lists),
                            egress=draw(rule_lists), ingress_deny=draw(rule_lists),
                            egress_deny=draw(rule_lists))
    if clusterwide:
        return CiliumNetworkPolicy(CiliumKind.CCNP, name, specs=(spec,))
    return CiliumNetworkPolicy(CiliumKind.CNP, name, draw(st.sampled_from(NAMESPACES)), specs=(spec,))


connections = st.tuples(st.sampled_from(range(len(PODS) + 1)), st.sampled_from(range(len(PODS) + 1)),
                        st.sampled_from((80, 443, 53, 8)), st.sampled_from(("TCP", "UDP", "ICMP")))


def _subject(state: ClusterState, index: int) -> Subject:
    if index == len(PODS):
        return ExternalSubject(WORLD)
    found = state.pod(PODS[index].namespace, PODS[index].name)
    assert found is not None
    return PodSubject(found)


def _decide(objects: list[KubeObject], conn: tuple[int, int, int, str]) -> Decision:
    state = ClusterState.build(objects)
    src, dst, port, protocol = conn
    return PolicyEngine().decide(state, _subject(state, src), _subject(state, dst), port, protocol)


class TestCiliumProperties:
    @FAST
    @given(policy_sets(max_size=2), st.lists(cilium_policies(), max_size=2), cilium_rules(), connections,
           st.booleans())
    def test_adding_a_deny_never_allows_more(self, knps: list[NetworkPolicy], cnps: list[CiliumNetworkPolicy],
                                             deny: CiliumRule, conn: tuple[int, int, int, str],
                                             ingress: bool) -> None:
        """A connection denied before a deny rule is added stays denied after it."""
        base = [replace(c, name=f"c{i}") for i, c in enumerate(cnps)]
        spec = (CiliumPolicySpec(endpoint_selector=LabelSelector(), ingress_deny=(deny,)) if ingress
                else CiliumPolicySpec(endpoint_selector=LabelSelector(), egress_deny=(deny,)))
        added = CiliumNetworkPolicy(CiliumKind.CCNP, "added-deny", specs=(spec,))
        before = _decide(cluster_objects(knps) + list(base), conn)
        after = _decide([*cluster_objects(knps), *base, added], conn)
        assert before.allowed or not after.allowed

    @FAST
    @given(policy_sets(max_size=2), st.lists(cilium_policies(), max_size=2), cilium_rules(), connections)
    def test_adding_a_non_isolating_allow_never_denies_more(
            self, knps: list[NetworkPolicy], cnps: list[CiliumNetworkPolicy], allow: CiliumRule,
            conn: tuple[int, int, int, str]) -> None:
        """An allow policy with enableDefaultDeny false never turns an allowed connection into a denied one."""
        base = [replace(c, name=f"c{i}") for i, c in enumerate(cnps)]
        spec = CiliumPolicySpec(endpoint_selector=LabelSelector(), ingress=(allow,), egress=(allow,),
                                enable_default_deny_ingress=False, enable_default_deny_egress=False)
        added = CiliumNetworkPolicy(CiliumKind.CCNP, "added-allow", specs=(spec,))
        before = _decide(cluster_objects(knps) + list(base), conn)
        after = _decide([*cluster_objects(knps), *base, added], conn)
        assert after.allowed or not before.allowed

    @FAST
    @given(st.lists(cilium_policies(), min_size=1, max_size=2), cilium_rules(), connections)
    def test_an_allow_rule_in_an_isolating_policy_never_denies_more(
            self, cnps: list[CiliumNetworkPolicy], allow: CiliumRule, conn: tuple[int, int, int, str]) -> None:
        """Adding a rule to a policy's existing allow list never denies a connection that was allowed."""
        first = cnps[0]
        spec = first.specs[0]
        grown = replace(spec, ingress=(*(spec.ingress or ()), allow) if spec.ingress else spec.ingress,
                        egress=(*(spec.egress or ()), allow) if spec.egress else spec.egress)
        rest = [replace(c, name=f"c{i}") for i, c in enumerate(cnps[1:], 1)]
        before = _decide([*cluster_objects([]), first, *rest], conn)
        after = _decide([*cluster_objects([]), replace(first, specs=(grown,)), *rest], conn)
        assert after.allowed or not before.allowed

    @FAST
    @given(policy_sets(max_size=4), connections)
    def test_knp_decisions_ignore_cilium_policies_that_select_nothing(self, knps: list[NetworkPolicy],
                                                                      conn: tuple[int, int, int, str]) -> None:
        """A NetworkPolicy-only cluster decides the same when a Cilium policy selecting no pod is added."""
        idle = CiliumNetworkPolicy(CiliumKind.CCNP, "idle", specs=(CiliumPolicySpec(
            endpoint_selector=sel(app="nobody"), ingress_deny=(CiliumRule(entities=("all",)),),
            egress_deny=(CiliumRule(entities=("all",)),)),))
        before = _decide(cluster_objects(knps), conn)
        after = _decide([*cluster_objects(knps), idle], conn)
        assert before == after
