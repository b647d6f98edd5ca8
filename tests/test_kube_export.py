"""Model objects back to minimal manifests: the round trip through the converter is exact."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.kube.convert import object_from_dict
from auditor.kube.export import object_to_dict
from auditor.kube.manifests import load_manifests
from auditor.model.cilium import (
    CIDRPeer,
    CiliumCIDRGroup,
    CiliumKind,
    CiliumNetworkPolicy,
    CiliumPolicySpec,
    CiliumPort,
    CiliumRule,
    FQDNPeer,
    ICMPType,
    PortRule,
    ServicePeer,
)
from auditor.model.k8s import (
    ContainerPort,
    IPBlock,
    KubeObject,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyDirection,
    PolicyPort,
    Probe,
    ProbeKind,
    Rule,
    WorkloadRef,
)
from auditor.model.labels import LabelSelector, LabelSelectorRequirement

SHOP = Path(__file__).parent / "fixtures" / "manifests" / "shop"
SHOP_OBJECTS = load_manifests([str(SHOP)])

EDGE_CASES: list[KubeObject] = [
    Pod("shop", "bare", ready=None, host_network=True, ips=("fd00::1", "10.0.0.1")),
    Pod(
        "shop",
        "probed",
        ready=False,
        container_ports=(ContainerPort(53, "UDP", "dns", "dns"),),
        probes=(Probe(ProbeKind.STARTUP, "grpc", 9000, "sidecar"),),
        workload=WorkloadRef("CronJob", "report"),
    ),
    NetworkPolicy("shop", "deny-egress", policy_types=(PolicyDirection.EGRESS,), egress=()),
    NetworkPolicy(
        "shop",
        "shapes",
        pod_selector=LabelSelector(match_expressions=(LabelSelectorRequirement("tier", "Exists"),)),
        ingress=(
            Rule(),
            Rule(peers=(Peer(pod_selector=LabelSelector()),), ports=(PolicyPort("SCTP", None),)),
            Rule(peers=(Peer(ip_block=IPBlock("::/0", ("fd00::/8",))),), ports=(PolicyPort("TCP", 80, 90),)),
        ),
        generation=3,
    ),
]


class TestRoundTrip:
    @pytest.mark.parametrize("obj", SHOP_OBJECTS + EDGE_CASES, ids=lambda o: f"{type(o).__name__}:{o.name}")
    def test_export_then_convert_gives_the_same_object(self, obj: KubeObject) -> None:
        """object_from_dict(object_to_dict(o)) == o for fixtures and edge shapes."""
        assert object_from_dict(object_to_dict(obj)) == obj

    def test_export_keeps_only_what_auditor_reads(self) -> None:
        """Images and other container fields are not written."""
        api = next(o for o in SHOP_OBJECTS if isinstance(o, Pod) and o.name.startswith("api-"))
        containers = object_to_dict(api)["spec"]["containers"]
        assert all(
            set(c) <= {"name", "ports", "livenessProbe", "readinessProbe", "startupProbe"} for c in containers
        )


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
label_maps = st.dictionaries(names, names, max_size=3)
selectors = st.builds(
    LabelSelector,
    match_labels=label_maps,
    match_expressions=st.lists(
        st.builds(
            LabelSelectorRequirement,
            key=names,
            operator=st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
            values=st.lists(names, max_size=2).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
)
peers = st.builds(
    Peer,
    pod_selector=st.none() | selectors,
    namespace_selector=st.none() | selectors,
    ip_block=st.none() | st.builds(IPBlock, cidr=st.just("10.0.0.0/8"), except_=st.just(("10.1.0.0/16",))),
)
ports = st.builds(
    PolicyPort,
    protocol=st.sampled_from(["TCP", "UDP", "SCTP"]),
    port=st.none() | st.integers(1, 65535) | names,
    end_port=st.none() | st.integers(1, 65535),
)
rules = st.builds(
    Rule, peers=st.lists(peers, max_size=3).map(tuple), ports=st.lists(ports, max_size=3).map(tuple)
)
rule_lists = st.none() | st.lists(rules, max_size=3).map(tuple)
policies = st.builds(
    NetworkPolicy,
    namespace=names,
    name=names,
    pod_selector=selectors,
    policy_types=st.lists(st.sampled_from(list(PolicyDirection)), max_size=2, unique=True).map(tuple),
    ingress=rule_lists,
    egress=rule_lists,
    uid=names,
    resource_version=st.integers(1, 10**6).map(str),
    generation=st.integers(0, 100),
    labels=label_maps,
)


class TestRoundTripProperty:
    @settings(max_examples=150, deadline=None)
    @given(policies)
    def test_any_policy_round_trips(self, policy: NetworkPolicy) -> None:
        """Every NetworkPolicy shape survives export and conversion unchanged."""
        assert object_from_dict(object_to_dict(policy)) == policy


CILIUM = Path(__file__).parent / "fixtures" / "manifests" / "cilium"
CILIUM_OBJECTS = load_manifests([str(CILIUM)])
CILIUM_EDGE_CASES: list[KubeObject] = [
    CiliumNetworkPolicy(CiliumKind.CNP, "no-spec", "shop", has_spec=False),
    CiliumNetworkPolicy(CiliumKind.CCNP, "host",
                        specs=(CiliumPolicySpec(node_selector=LabelSelector(), ingress=()),)),
    CiliumNetworkPolicy(CiliumKind.CNP, "l7", "shop", specs=(CiliumPolicySpec(
        endpoint_selector=LabelSelector(),
        egress=(CiliumRule(to_ports=(PortRule(
            l7=("http", "dns", "kafka", "l7proto"),
            rules_json='{"dns":[{"matchPattern":"*"}],"http":[{"method":"GET","path":"/"}],"kafka":[{}],'
                       '"l7proto":"redis"}'),)),),
    ),)),
    CiliumCIDRGroup("empty"),
    Pod("shop", "sa", service_account="api"),
]

cilium_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-:.", min_size=1, max_size=12)
cilium_selectors = st.builds(
    LabelSelector,
    match_labels=st.dictionaries(cilium_names, names | st.just(""), max_size=2),
    match_expressions=selectors.map(lambda s: s.match_expressions),
)
optional = st.none().__or__
cidr_peers = st.builds(
    CIDRPeer, cidr=st.just("") | st.just("10.0.0.0/8"), except_=st.lists(names, max_size=1).map(tuple),
    group_ref=st.just("") | names, group_selector=st.none() | cilium_selectors,
)
service_peers = st.builds(ServicePeer, name=st.just("") | names, namespace=st.just("") | names,
                          selector=st.none() | cilium_selectors)
def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def l7_kinds(rules: dict[str, Any]) -> tuple[str, ...]:
    """The kinds the converter records: non-empty rule lists in a fixed order, then a named l7proto."""
    listed = tuple(k for k in ("http", "dns", "kafka") if rules.get(k))
    return listed + (("l7proto",) if rules.get("l7proto") else ())


texts = st.text(max_size=8)
l7_rules = st.fixed_dictionaries({}, optional={
    "http": st.lists(st.fixed_dictionaries({}, optional={
        "path": texts, "method": st.sampled_from(["GET", "POST"]), "host": texts,
        "headers": st.lists(texts, max_size=2),
        "headerMatches": st.lists(st.fixed_dictionaries({"name": names, "value": texts}), max_size=1),
    }), max_size=2),
    "dns": st.lists(st.fixed_dictionaries({}, optional={"matchName": names, "matchPattern": names}),
                    max_size=2),
    "kafka": st.lists(st.fixed_dictionaries({}, optional={"topic": names, "role": st.just("produce"),
                                                          "apiVersion": st.just("1")}), max_size=2),
    "l7proto": st.just("") | names,
    "l7": st.lists(st.dictionaries(names, texts, max_size=2), max_size=2),
})


@st.composite
def port_rules(draw: st.DrawFn) -> PortRule:
    """Port rules as the converter makes them: L7 kinds and rules_json from one `rules` mapping (or none)."""
    rules = draw(st.none() | l7_rules)
    return PortRule(
        ports=draw(st.lists(st.builds(CiliumPort, port=st.just("") | st.integers(0, 65535).map(str) | names,
                                      end_port=st.integers(0, 65535),
                                      protocol=st.sampled_from(["TCP", "UDP", "SCTP", "ANY"])),
                            max_size=2).map(tuple)),
        l7=() if rules is None else l7_kinds(rules),
        server_names=draw(st.lists(names, max_size=2).map(tuple)),
        rules_json="" if rules is None else canonical(rules),
    )


icmp_types = st.builds(ICMPType, type=st.integers(0, 255) | names, family=st.sampled_from(["IPv4", "IPv6"]),
                       entry=st.integers(0, 2))
group_entries = st.lists(st.fixed_dictionaries({"aws": st.fixed_dictionaries({}, optional={
    "securityGroupsIds": st.lists(names, max_size=2), "labels": label_maps, "region": names})}), max_size=2)


def cilium_rules(ingress: bool) -> st.SearchStrategy[CiliumRule]:
    """Rules of one direction: ingress rules have no toServices or toFQDNs (no such from* fields)."""
    many = st.lists(cilium_selectors, max_size=2).map(tuple)
    return st.builds(
        CiliumRule,
        endpoints=optional(many), requires=many, entities=optional(st.lists(names, max_size=2).map(tuple)),
        cidrs=optional(st.lists(st.just("192.0.2.0/24"), max_size=1).map(tuple)),
        cidr_sets=optional(st.lists(cidr_peers, max_size=2).map(tuple)),
        services=st.none() if ingress else optional(st.lists(service_peers, max_size=2).map(tuple)),
        fqdns=st.none() if ingress else optional(st.lists(
            st.builds(FQDNPeer, match_name=st.just("") | names, match_pattern=st.just("") | names), max_size=2
        ).map(tuple)),
        nodes=optional(many), group_entries=group_entries.map(lambda groups: tuple(map(canonical, groups))),
        to_ports=st.lists(port_rules(), max_size=2).map(tuple),
        icmps=st.lists(icmp_types, max_size=3).map(lambda types: tuple(sorted(types, key=lambda t: t.entry))),
    ).map(lambda rule: replace(rule, groups=len(rule.group_entries)))


def sections(ingress: bool) -> st.SearchStrategy[tuple[CiliumRule, ...] | None]:
    return optional(st.lists(cilium_rules(ingress), max_size=2).map(tuple))


cilium_specs = st.builds(
    CiliumPolicySpec,
    endpoint_selector=optional(cilium_selectors), node_selector=optional(cilium_selectors),
    ingress=sections(True), ingress_deny=sections(True), egress=sections(False), egress_deny=sections(False),
    enable_default_deny_ingress=optional(st.booleans()), enable_default_deny_egress=optional(st.booleans()),
    description=st.just("") | names,
)


@st.composite
def cilium_policies(draw: st.DrawFn) -> CiliumNetworkPolicy:
    kind = draw(st.sampled_from(list(CiliumKind)))
    has_spec = draw(st.booleans())
    specs = tuple(draw(st.lists(cilium_specs, min_size=1 if has_spec else 0, max_size=3)))
    return CiliumNetworkPolicy(
        kind=kind, name=draw(names), namespace=draw(names) if kind is CiliumKind.CNP else "", specs=specs,
        has_spec=has_spec, uid=draw(names), resource_version=draw(st.integers(1, 10**6).map(str)),
        generation=draw(st.integers(0, 100)), labels=draw(label_maps),
    )


class TestCiliumRoundTrip:
    @pytest.mark.parametrize("obj", CILIUM_OBJECTS + CILIUM_EDGE_CASES,
                             ids=lambda o: f"{type(o).__name__}:{o.name}")
    def test_export_then_convert_gives_the_same_object(self, obj: KubeObject) -> None:
        """object_from_dict(object_to_dict(o)) == o for Cilium fixtures and edge shapes."""
        assert object_from_dict(object_to_dict(obj)) == obj

    @settings(max_examples=200, deadline=None)
    @given(cilium_policies())
    def test_any_cilium_policy_round_trips(self, policy: CiliumNetworkPolicy) -> None:
        """Every CNP/CCNP shape the converter can produce survives export and conversion unchanged."""
        assert object_from_dict(object_to_dict(policy)) == policy

    @settings(max_examples=50, deadline=None)
    @given(st.builds(CiliumCIDRGroup, name=names, cidrs=st.lists(names, max_size=3).map(tuple),
                     labels=label_maps, uid=names, resource_version=names))
    def test_any_cidr_group_round_trips(self, group: CiliumCIDRGroup) -> None:
        """CiliumCIDRGroups survive export and conversion unchanged."""
        assert object_from_dict(object_to_dict(group)) == group

    def test_exported_l7_rules_are_fresh_values(self) -> None:
        """Mutating one exported manifest does not change the next export."""
        policy = CILIUM_EDGE_CASES[2]
        assert isinstance(policy, CiliumNetworkPolicy)
        object_to_dict(policy)["spec"]["egress"][0]["toPorts"][0]["rules"]["http"].append({"path": "/x"})
        assert object_to_dict(policy)["spec"]["egress"][0]["toPorts"][0]["rules"]["http"] == [
            {"method": "GET", "path": "/"}]

    def test_l7_rules_and_groups_export_as_written(self) -> None:
        """A converted CNP exports its L7 rules, toGroups entries and icmps[] entries exactly as written."""
        written = {"endpointSelector": {}, "egress": [
            {"toGroups": [{"aws": {"securityGroupsIds": ["sg-1"], "region": "eu-west-1"}}]},
            {"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}],
                          "rules": {"http": [{"method": "GET", "path": "/api/.*",
                                              "headerMatches": [{"name": "x-env", "value": "prod"}]}]}}]},
            {"icmps": [{"fields": [{"type": 8, "family": "IPv4"}]},
                       {"fields": [{"type": "EchoRequest", "family": "IPv6"}, {"type": 0, "family": "IPv4"}]}]},
        ]}
        obj = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
               "metadata": {"name": "web", "namespace": "shop"}, "spec": written}
        assert object_to_dict(object_from_dict(obj))["spec"] == written

    def test_hand_built_l7_kinds_export_as_allow_all_stand_ins(self) -> None:
        """A PortRule with L7 kinds but no rules_json exports one allow-all rule per kind."""
        rule = CiliumRule(to_ports=(PortRule(l7=("http", "dns", "kafka", "l7proto")),), groups=1)
        spec = CiliumPolicySpec(endpoint_selector=LabelSelector(), egress=(rule,))
        policy = CiliumNetworkPolicy(CiliumKind.CNP, "l7", "shop", specs=(spec,))
        egress = object_to_dict(policy)["spec"]["egress"][0]
        assert (egress["toPorts"][0]["rules"], egress["toGroups"]) == (
            {"http": [{}], "dns": [{"matchPattern": "*"}], "kafka": [{}], "l7proto": "unknown"}, [{"aws": {}}])
