"""auditor's own NetworkPolicies allow exactly: ingress to the metrics port; egress to cluster DNS,
the API server and (relay mode) Hubble Relay.  Nothing else, and every auditor pod is covered."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.deploy_support import (
    DEPLOY,
    METRICS_PORT,
    NAMESPACE,
    OVERLAYS,
    Doc,
    by_kind,
    kustomize,
    render,
    workload,
)

KUBE_SYSTEM = (("kubernetes.io/metadata.name", "kube-system"),)
DNS = {
    (("pods", KUBE_SYSTEM, (("k8s-app", "kube-dns"),)), "UDP", 53),
    (("pods", KUBE_SYSTEM, (("k8s-app", "kube-dns"),)), "TCP", 53),
}
APISERVER = {(("cidr", "0.0.0.0/0", ()), "TCP", 443), (("cidr", "0.0.0.0/0", ()), "TCP", 6443)}
RELAY = {(("pods", KUBE_SYSTEM, (("k8s-app", "hubble-relay"),)), "TCP", 4245)}
AUDITOR_DB = (("kubernetes.io/metadata.name", "auditor-db"),)
POSTGRES = {(("pods", AUDITOR_DB, (("app.kubernetes.io/name", "postgresql"),)), "TCP", 5432)}
EXPECTED_EGRESS = {
    "relay": DNS | APISERVER | RELAY,
    "relay-tls": DNS | APISERVER | RELAY,
    "node": DNS | APISERVER,
    "node-postgres": DNS | APISERVER | POSTGRES,
    "relay-sharded": DNS | APISERVER | RELAY | POSTGRES,
}

Peer = tuple[str, object, tuple[object, ...]]


def _labels(selector: Doc | None) -> tuple[tuple[str, str], ...]:
    assert selector is not None
    assert "matchExpressions" not in selector, "matchExpressions are not used by these policies"
    return tuple(sorted(selector.get("matchLabels", {}).items()))


def _peer(peer: Doc) -> Peer:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return ("cidr", block["cidr"], tuple(block.get("except", [])))
    return ("pods", _labels(peer.get("namespaceSelector")), _labels(peer.get("podSelector")))


def _egress(policies: list[Doc]) -> set[tuple[Peer, str, int]]:
    allowed = set()
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            name = policy["metadata"]["name"]
            assert rule.get("to"), f"{name}: egress rule open to every destination"
            assert rule.get("ports"), f"{name}: egress rule open on every port"
            for peer in rule["to"]:
                for port in rule["ports"]:
                    allowed.add((_peer(peer), port["protocol"], port["port"]))
    return allowed


def _selects_auditor(policy: Doc, pod_labels: dict[str, str]) -> bool:
    return dict(_labels(policy["spec"]["podSelector"])).items() <= pod_labels.items()


def _policies(docs: list[Doc]) -> list[Doc]:
    return by_kind(docs, "NetworkPolicy")


class TestCoverage:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_every_policy_selects_the_auditor_pods(self, overlay: str) -> None:
        """Each of auditor's NetworkPolicies selects the auditor pod template (and only by labels)."""
        docs = render(overlay)
        pod_labels = workload(docs)["spec"]["template"]["metadata"]["labels"]
        for policy in _policies(docs):
            assert policy["metadata"]["namespace"] == NAMESPACE
            assert _labels(policy["spec"]["podSelector"]), "an empty podSelector would select every pod"
            assert _selects_auditor(policy, pod_labels), policy["metadata"]["name"]

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_both_directions_are_isolated(self, overlay: str) -> None:
        """Together the policies isolate the auditor pods for ingress and egress."""
        types = {t for p in _policies(render(overlay)) for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}


class TestIngress:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_only_metrics_port_from_anywhere(self, overlay: str) -> None:
        """The single ingress rule opens TCP 9967 to any source (Prometheus, kubelet probes)."""
        rules = [r for p in _policies(render(overlay)) for r in p["spec"].get("ingress", [])]
        assert rules == [{"ports": [{"protocol": "TCP", "port": METRICS_PORT}]}]

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_ingress_declared_only_by_main_policy(self, overlay: str) -> None:
        """Only the `auditor` policy lists Ingress, so no other policy can widen it by accident."""
        policies = _policies(render(overlay))
        declaring = [p["metadata"]["name"] for p in policies if "Ingress" in p["spec"]["policyTypes"]]
        assert declaring == ["auditor"]


class TestEgress:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_egress_is_exactly_dns_apiserver_and_relay(self, overlay: str) -> None:
        """Egress allows cluster DNS (UDP+TCP 53), the API server ports, and Relay in relay mode only."""
        assert _egress(_policies(render(overlay))) == EXPECTED_EGRESS[overlay]

    def test_apiserver_cidr_is_patchable(self, tmp_path: Path) -> None:
        """A user overlay narrows the API server egress to its real endpoint with one small patch."""
        relay = os.path.relpath(DEPLOY / "overlays" / "relay", tmp_path)
        (tmp_path / "kustomization.yaml").write_text(
            f"bases:\n  - {relay}\npatchesStrategicMerge:\n  - apiserver.yaml\n", encoding="utf-8"
        )
        (tmp_path / "apiserver.yaml").write_text(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            "metadata:\n  name: auditor-apiserver\n  namespace: auditor\n"
            "spec:\n  egress:\n    - to:\n        - ipBlock:\n            cidr: 192.0.2.10/32\n"
            "      ports:\n        - protocol: TCP\n          port: 6443\n",
            encoding="utf-8",
        )
        allowed = _egress(_policies(kustomize(tmp_path)))
        assert (("cidr", "192.0.2.10/32", ()), "TCP", 6443) in allowed
        assert not allowed & APISERVER
        assert allowed >= DNS | RELAY
