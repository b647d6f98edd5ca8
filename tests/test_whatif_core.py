"""The pure parts of whatif and recommend: connection folding, change classification, generation.

Hand-built inventories and flows (tests/findings_support.py, synthetic)."""

from __future__ import annotations

import dataclasses

from auditor.findings.connections import ConnectionCollector
from auditor.findings.whatif import Change, Verdict, change_of, judge, posture_delta
from auditor.model.cilium import CiliumKind, CiliumNetworkPolicy, CiliumPolicySpec, CiliumRule
from auditor.model.decision import ExternalSubject, NodeSubject, PodSubject
from auditor.model.k8s import Change as KubeChange
from auditor.model.k8s import ChangeType, Pod, PolicyDirection, WorkloadRef
from auditor.policy.engine import PolicyEngine
from auditor.policy.generate import KIND_CILIUM, Edge, GenerateOptions, Workload, generate
from auditor.policy.generate_peers import aggregate_cidrs, workload_labels
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState
from tests.findings_support import (
    API,
    API_FROM_WEB,
    DNS_LABELLED,
    SECOND,
    T0,
    WEB,
    drop,
    ep,
    flow,
    inventory,
    select,
)


def _collector(*objects: object, changes: tuple[KubeChange, ...] = ()) -> ConnectionCollector:
    history = ClusterHistory(initial=ClusterState.build(inventory(*objects)))  # type: ignore[arg-type]
    for change in changes:
        history.apply(change)
    return ConnectionCollector(history)


def test_many_flows_fold_into_one_observation() -> None:
    """A hundred deliveries of web -> api:8080 are one observation counting 100 flows."""
    collector = _collector(WEB, API)
    for i in range(100):
        collector.add(flow(ep(WEB), ep(API, 8080), time_ns=T0 + i))
    (observation,) = collector.observations()
    assert (str(observation.key), observation.count) == ("shop/web -> shop/api 8080/TCP", 100)


def test_replies_are_counted_not_judged() -> None:
    """A reply carries no decision: skipped as the correlator skips it."""
    collector = _collector(WEB, API)
    collector.add(flow(ep(API, 8080), ep(WEB), is_reply=True))
    assert (collector.observations(), collector.stats.skipped["reply"]) == ([], 1)


def test_a_denied_packet_counts_once() -> None:
    """The policy-verdict and drop events of one denied packet are one flow of the observation."""
    collector = _collector(WEB, API, API_FROM_WEB)
    collector.add(drop(ep(WEB), ep(API, 9090), event=5))
    collector.add(drop(ep(WEB), ep(API, 9090), time_ns=T0 + 1000))
    (observation,) = collector.observations()
    assert (observation.observed, observation.count, collector.stats.deduplicated) == ("denied", 1, 1)


def test_a_policy_change_splits_observations_by_state() -> None:
    """Flows before and after a cluster event are judged in their own states."""
    collector = _collector(WEB, API, changes=(KubeChange(T0 + SECOND, ChangeType.ADDED, API_FROM_WEB),))
    collector.add(flow(ep(WEB), ep(API, 8080), time_ns=T0))
    collector.add(flow(ep(WEB), ep(API, 8080), time_ns=T0 + 2 * SECOND))
    assert len(collector.observations()) == 2


def test_unknown_pods_are_unresolved() -> None:
    """A pod the inventory does not know is counted unresolved, never guessed."""
    collector = _collector(WEB)
    collector.add(flow(ep(WEB), ep(API, 8080)))
    assert (collector.observations(), collector.stats.unresolved) == ([], 1)


def test_change_of_compares_rules_not_misses() -> None:
    """Same verdict and rules, different closest miss: unchanged."""
    assert change_of(Verdict(False, ("x",), miss="a"), Verdict(False, ("x",), miss="b")) is Change.UNCHANGED


def test_change_of_undecided_wins() -> None:
    """A proposal that needs an unknown DNS name is undecided, not denied."""
    assert change_of(Verdict(True, ()), Verdict(False, (), undecided="fqdn")) is Change.UNDECIDED


def test_clusterwide_policy_in_a_proposal_is_judged() -> None:
    """A proposed CCNP that selects web for egress with no rule for api newly denies web -> api."""
    collector = _collector(WEB, API)
    collector.add(flow(ep(WEB), ep(API, 8080)))
    ccnp = CiliumNetworkPolicy(CiliumKind.CCNP, "lockdown", specs=(CiliumPolicySpec(
        endpoint_selector=select(app="web"), egress=(CiliumRule(),)),))
    (judged,) = judge(collector.observations(), PolicyEngine(),
                      lambda state: state.apply(KubeChange(0, ChangeType.ADDED, ccnp)))
    assert judged.change is Change.NEWLY_DENIED
    assert judged.after.decided_by == ("egress: default deny of CiliumClusterwideNetworkPolicy lockdown",)


def test_posture_delta_reports_default_deny_gained() -> None:
    """A proposed empty-selector policy gives the namespace a default deny."""
    state = ClusterState.build(inventory(WEB, API))
    deny = dataclasses.replace(API_FROM_WEB, name="deny", pod_selector=select())
    delta = posture_delta(state, state.apply(KubeChange(0, ChangeType.ADDED, deny)))
    assert delta.default_deny_gained == (("shop", "ingress"),)


def test_shared_app_label_falls_back_to_stable_labels() -> None:
    """Two workloads with app=web: the selector adds the labels that tell them apart."""
    canary = Pod("shop", "web-canary-1", labels={"app": "web", "track": "canary", "pod-template-hash": "h"},
                 ips=("10.0.0.9",), workload=WorkloadRef("Deployment", "web-canary"))
    state = ClusterState.build(inventory(WEB, canary))
    assert workload_labels(state, canary) == {"app": "web", "track": "canary"}


def test_ipv6_addresses_keep_as_many_host_bits() -> None:
    """--min-prefix 24 merges IPv6 addresses within a /120."""
    assert aggregate_cidrs(["2001:db8::1", "2001:db8::9"], 24) == ["2001:db8::/124"]


def _generate(edge: Edge, kind: str) -> tuple[object, tuple[str, ...]]:
    state = ClusterState.build(inventory(WEB, API, DNS_LABELLED))
    (generated,) = generate(state, [Workload("shop", "web", ingress=False)], [edge], GenerateOptions(kind=kind))
    return generated.obj, generated.notes


def test_icmp_becomes_a_cilium_icmp_rule() -> None:
    """Observed ICMP echo to a pod: Cilium gets an icmps rule of its own."""
    edge = Edge(WEB, PolicyDirection.EGRESS, PodSubject(API), 8, "ICMP")
    policy, _ = _generate(edge, KIND_CILIUM)
    assert isinstance(policy, CiliumNetworkPolicy)
    rules = policy.specs[0].egress or ()
    assert [(r.icmps[0].type, r.icmps[0].family) for r in rules if r.icmps] == [(8, "IPv4")]


def test_icmp_is_named_in_networkpolicy_notes() -> None:
    """NetworkPolicy has no ICMP: the edge is left out and the notes say so."""
    _, notes = _generate(Edge(WEB, PolicyDirection.EGRESS, PodSubject(API), 8, "ICMP"), "networkpolicy")
    assert any("cannot express ICMP" in note for note in notes)


def test_nodes_are_cilium_entities() -> None:
    """Egress to the pod's own node is entity host; to another node, remote-node."""
    own = _generate(Edge(WEB, PolicyDirection.EGRESS, NodeSubject("node-1"), 10250, "TCP"), KIND_CILIUM)[0]
    other = _generate(Edge(WEB, PolicyDirection.EGRESS, NodeSubject("node-2"), 10250, "TCP"), KIND_CILIUM)[0]
    assert isinstance(own, CiliumNetworkPolicy)
    assert isinstance(other, CiliumNetworkPolicy)
    assert (own.specs[0].egress or ())[0].entities == ("host",)
    assert (other.specs[0].egress or ())[0].entities == ("remote-node",)


def test_kube_apiserver_is_an_entity_in_cilium() -> None:
    """An external endpoint with the kube-apiserver identity is written as that entity."""
    apiserver = ExternalSubject("172.18.0.2", identities=frozenset(("kube-apiserver",)))
    policy, _ = _generate(Edge(WEB, PolicyDirection.EGRESS, apiserver, 6443, "TCP"), KIND_CILIUM)
    assert isinstance(policy, CiliumNetworkPolicy)
    assert (policy.specs[0].egress or ())[0].entities == ("kube-apiserver",)


def test_egress_ports_use_the_destination_pods_names() -> None:
    """api declares 8080 as `http`: web's egress rule says `http`."""
    policy, _ = _generate(Edge(WEB, PolicyDirection.EGRESS, PodSubject(API), 8080, "TCP"), "networkpolicy")
    assert [p.port for r in policy.egress or () for p in r.ports][:1] == ["http"]  # type: ignore[attr-defined]
