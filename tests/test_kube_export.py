"""Model objects back to minimal manifests: the round trip through the converter is exact."""

from __future__ import annotations

from pathlib import Path

import pytest

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
