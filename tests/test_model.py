"""Model value types: the small behaviours they carry."""

from __future__ import annotations

from auditor.model.findings import Finding, FindingKind, Severity
from auditor.model.flows import Endpoint
from auditor.model.k8s import ContainerPort, Pod


class TestEndpoint:
    def test_reserved_from_labels_and_identity(self) -> None:
        """Reserved names come from reserved: labels and from well-known numeric identities."""
        endpoint = Endpoint(identity=6, labels=("reserved:host",))
        assert endpoint.reserved == frozenset({"host", "remote-node"})

    def test_k8s_labels_skip_cilium_internal_keys(self) -> None:
        """Pod labels are read from k8s: labels; io.cilium.k8s.* bookkeeping keys are dropped."""
        endpoint = Endpoint(
            labels=("k8s:app=web", "k8s:io.cilium.k8s.policy.cluster=default", "reserved:world")
        )
        assert endpoint.k8s_labels == {"app": "web"}


class TestPod:
    def test_named_port_resolves_per_protocol(self) -> None:
        """A named port resolves to the container port with that name and protocol only."""
        pod = Pod(
            namespace="shop",
            name="api-1",
            container_ports=(
                ContainerPort(port=53, protocol="UDP", name="dns"),
                ContainerPort(port=8080, name="http"),
            ),
        )
        assert pod.resolve_port("http") == 8080
        assert pod.resolve_port("dns", "TCP") is None
        assert pod.resolve_port("dns", "UDP") == 53


class TestSeverity:
    def test_ordering(self) -> None:
        """Severities compare by rank, so --fail-on can use at_least."""
        assert Severity.HIGH.at_least(Severity.MEDIUM)
        assert not Severity.LOW.at_least(Severity.HIGH)


class TestFinding:
    def test_key_ignores_pod_and_counts(self) -> None:
        """Two findings for different pods of one workload aggregate under one key."""
        first = Finding(FindingKind.POLICY_DROP, Severity.MEDIUM, "shop", "api", "m", pod="api-1")
        second = Finding(
            FindingKind.POLICY_DROP, Severity.MEDIUM, "shop", "api", "m", pod="api-2", count=5
        )
        assert first.key == second.key
        assert first.key.as_string() == "policy-drop|shop|api||0||"
