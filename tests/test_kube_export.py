"""Model objects back to minimal manifests: the round trip through the converter is exact."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.kube.convert import object_from_dict
from auditor.kube.export import object_to_dict
from auditor.kube.manifests import load_manifests
from auditor.model.k8s import (
    ContainerPort,
    IPBlock,
    KubeObject,
    LabelSelector,
    LabelSelectorRequirement,
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
