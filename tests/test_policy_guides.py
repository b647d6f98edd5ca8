"""The NetworkPolicy patterns of the public guides, as manifests, against a small cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.kube.manifests import load_manifests
from auditor.model.decision import Decision, ExternalSubject, NodeSubject, PodSubject, Subject
from auditor.policy.engine import PolicyEngine
from auditor.policy.state import ClusterState

FIXTURES = Path(__file__).parent / "fixtures" / "policies"


def _cluster(pattern: str) -> ClusterState:
    paths = [str(FIXTURES / "cluster.yaml"), str(FIXTURES / f"{pattern}.yaml")]
    return ClusterState.build(load_manifests(paths))


def _subject(cluster: ClusterState, name: str) -> Subject:
    if name.startswith("node:"):
        return NodeSubject(node_name=name[5:])
    if "/" not in name:
        return ExternalSubject(name)
    namespace, pod_name = name.split("/")
    pod = cluster.pod(namespace, pod_name)
    assert pod is not None, name
    return PodSubject(pod)


def _decide(pattern: str, src: str, dst: str, port: int, protocol: str = "TCP") -> Decision:
    cluster = _cluster(pattern)
    assert cluster.invalid == []
    return PolicyEngine().decide(cluster, _subject(cluster, src), _subject(cluster, dst), port, protocol)


CASES = [
    ("default-deny-all", "dev/frontend", "prod/backend", 8080, "TCP", False),
    ("default-deny-all", "prod/frontend", "prod/backend", 8080, "TCP", False),
    ("default-deny-all", "prod/backend", "kube-system/coredns", 53, "UDP", False),
    ("default-deny-all", "dev/frontend", "partner/client", 80, "TCP", True),
    ("default-deny-all", "node:node-1", "prod/backend", 8080, "TCP", True),
    ("allow-same-namespace", "prod/frontend", "prod/backend", 8080, "TCP", True),
    ("allow-same-namespace", "dev/frontend", "prod/backend", 8080, "TCP", False),
    ("allow-same-namespace", "198.51.100.1", "prod/frontend", 80, "TCP", False),
    ("frontend-to-backend", "prod/frontend", "prod/backend", 8080, "TCP", True),
    ("frontend-to-backend", "prod/frontend", "prod/backend", 9090, "TCP", False),
    ("frontend-to-backend", "prod/other", "prod/backend", 8080, "TCP", False),
    ("frontend-to-backend", "dev/frontend", "prod/backend", 8080, "TCP", False),
    ("frontend-to-backend", "prod/other", "prod/database", 5432, "TCP", True),
    ("backend-to-database-dns", "prod/backend", "prod/database", 5432, "TCP", True),
    ("backend-to-database-dns", "prod/backend", "kube-system/coredns", 53, "UDP", True),
    ("backend-to-database-dns", "prod/backend", "kube-system/coredns", 53, "TCP", True),
    ("backend-to-database-dns", "prod/backend", "prod/frontend", 80, "TCP", False),
    ("backend-to-database-dns", "prod/backend", "93.184.216.34", 443, "TCP", False),
    ("backend-to-database-dns", "prod/frontend", "93.184.216.34", 443, "TCP", True),
    ("ipblock-except", "198.51.100.1", "prod/frontend", 80, "TCP", True),
    ("ipblock-except", "10.200.0.1", "prod/frontend", 80, "TCP", False),
    ("ipblock-except", "prod/other", "prod/frontend", 80, "TCP", False),
    ("ipblock-except", "prod/frontend", "203.0.113.10", 443, "TCP", True),
    ("ipblock-except", "prod/frontend", "203.0.113.200", 443, "TCP", False),
    ("ipblock-except", "prod/frontend", "prod/backend", 8080, "TCP", False),
    ("namespace-isolation-labels", "prod/frontend", "prod/backend", 8080, "TCP", True),
    ("namespace-isolation-labels", "dev/frontend", "prod/backend", 8080, "TCP", False),
    ("namespace-isolation-labels", "partner/client", "prod/database", 5432, "TCP", False),
    ("cross-namespace", "partner/client", "prod/database", 5432, "TCP", True),
    ("cross-namespace", "partner/scraper", "prod/database", 5432, "TCP", False),
    ("cross-namespace", "prod/backend", "prod/database", 5432, "TCP", False),
    ("cross-namespace", "partner/client", "prod/database", 5433, "TCP", False),
    ("service-mesh", "istio-system/istiod", "prod/backend", 15090, "TCP", True),
    ("service-mesh", "istio-system/istiod", "prod/backend", 8080, "TCP", False),
    ("service-mesh", "prod/frontend", "prod/backend", 8080, "TCP", False),
    ("service-mesh", "prod/backend", "istio-system/istiod", 15012, "TCP", True),
    ("service-mesh", "prod/backend", "kube-system/coredns", 53, "UDP", True),
    ("service-mesh", "prod/database", "istio-system/istiod", 15090, "TCP", False),
]


class TestGuidePatterns:
    @pytest.mark.parametrize(("pattern", "src", "dst", "port", "protocol", "expected"), CASES,
                             ids=[f"{c[0]}:{c[1]}->{c[2]}:{c[3]}/{c[4]}" for c in CASES])
    def test_pattern(self, pattern: str, src: str, dst: str, port: int, protocol: str, expected: bool) -> None:
        """Each guide pattern admits exactly what the guide says it does."""
        assert _decide(pattern, src, dst, port, protocol).allowed is expected

    def test_default_deny_attribution(self) -> None:
        """A connection denied by default-deny names that policy as the one that isolated the pod."""
        d = _decide("default-deny-all", "dev/frontend", "prod/backend", 8080)
        assert [str(p) for p in d.ingress.isolated_by] == ["prod/default-deny-all"]
        assert d.ingress.closest_miss is None

    def test_dns_rule_attribution(self) -> None:
        """The DNS rule (rule 1, peer 0) is reported as the one that allowed the lookup."""
        d = _decide("backend-to-database-dns", "prod/backend", "kube-system/coredns", 53, "UDP")
        assert [(m.policy.name, m.rule_index, m.peer_index) for m in d.egress.allowed_by] == [
            ("backend-egress", 1, 0)]
