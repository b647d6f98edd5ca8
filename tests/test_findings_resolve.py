"""Endpoint resolution at flow time: pods, nodes, reserved identities, external IPs."""

from __future__ import annotations

from auditor.findings.resolve import Resolution, resolve_endpoint
from auditor.model.decision import ExternalSubject, NodeSubject, PodSubject
from auditor.model.flows import Endpoint
from auditor.policy.state import ClusterState
from tests.findings_support import API, HOST, WEB, ep, inventory

STATE = ClusterState.build(inventory(WEB, API))


class TestResolve:
    def test_pod_by_name(self) -> None:
        """A flow naming a known pod resolves to it, aggregated by namespace/workload."""
        resolved = resolve_endpoint(ep(WEB), "node-1", STATE)
        assert isinstance(resolved.subject, PodSubject)
        assert (resolved.peer, resolved.peer_workload) == ("shop/web-1", "shop/web")

    def test_unknown_pod_name_is_unresolved_even_if_the_ip_is_known(self) -> None:
        """A pod name the inventory lacks is unresolved, not guessed from its (maybe reused) IP."""
        ghost = Endpoint(ip=WEB.ips[0], namespace="shop", pod_name="web-old")
        assert resolve_endpoint(ghost, "node-1", STATE).resolution is Resolution.UNRESOLVED

    def test_pod_by_ip_when_the_flow_has_no_name(self) -> None:
        """A field-masked flow with only an IP resolves through the pod IP index."""
        resolved = resolve_endpoint(Endpoint(ip=API.ips[0]), "node-1", STATE)
        assert resolved.peer == "shop/api-1"

    def test_host_is_the_reporting_node(self) -> None:
        """reserved:host is the node that reported the flow, relay prefix stripped."""
        resolved = resolve_endpoint(HOST, "kind/node-1", STATE)
        assert resolved.subject == NodeSubject(node_name="node-1", ip=HOST.ip)
        assert resolved.peer_workload == "reserved:host"

    def test_node_ip_is_a_node(self) -> None:
        """An IP that is a Node address resolves to that node."""
        resolved = resolve_endpoint(Endpoint(ip="192.168.0.10"), "node-2", STATE)
        assert resolved.subject == NodeSubject(node_name="node-1", ip="192.168.0.10")

    def test_world_is_external_aggregated_by_identity(self) -> None:
        """A world IP is external; its aggregation name is the reserved identity, not the IP."""
        resolved = resolve_endpoint(Endpoint(ip="1.1.1.1", identity=2, labels=("reserved:world",)), "n", STATE)
        assert resolved.subject == ExternalSubject(ip="1.1.1.1")
        assert resolved.peer_workload == "reserved:world"

    def test_health_is_not_subject_to_policy(self) -> None:
        """reserved:health resolves to HEALTH, which the correlator skips."""
        health = Endpoint(ip="10.0.0.200", identity=4, labels=("reserved:health",))
        assert resolve_endpoint(health, "node-1", STATE).resolution is Resolution.HEALTH

    def test_labelled_unknown_ip_is_unresolved(self) -> None:
        """An IP with pod labels but no inventory entry is an unknown pod, not the outside world."""
        stranger = Endpoint(ip="10.9.9.9", identity=30000, labels=("k8s:app=stranger",))
        assert resolve_endpoint(stranger, "node-1", STATE).resolution is Resolution.UNRESOLVED
