"""Static findings from a hand-built inventory alone."""

from __future__ import annotations

from auditor.findings.static import static_findings
from auditor.model.findings import Finding, FindingKind, Severity
from auditor.model.k8s import (
    IPBlock,
    KubeObject,
    LabelSelector,
    Peer,
    PolicyDirection,
    PolicyPort,
    Probe,
    ProbeKind,
    Rule,
)
from auditor.policy.state import ClusterState
from tests.findings_support import (
    API,
    API_FROM_WEB,
    DENY_ALL_INGRESS,
    DNS_LABELLED,
    PROBED_API,
    WEB,
    inventory,
    pod,
    policy,
)


def _static(*objects: KubeObject, enforce_node_traffic: bool = False) -> list[Finding]:
    return static_findings(ClusterState.build(inventory(*objects)), enforce_node_traffic=enforce_node_traffic)


def _of(kind: FindingKind, findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.kind is kind]


KUBE_DNS_PEER = Peer(namespace_selector=LabelSelector(), pod_selector=LabelSelector({"k8s-app": "kube-dns"}))
TO_DNS = Rule(peers=(KUBE_DNS_PEER,), ports=(PolicyPort("UDP", 53), PolicyPort("TCP", 53)))
EGRESS_LOCKED = policy("lock-egress", types=(PolicyDirection.EGRESS,), egress=())


class TestNoDefaultDeny:
    def test_namespace_with_an_unselected_pod(self) -> None:
        """A namespace where one of two pods has no ingress policy is reported for ingress."""
        found = _of(FindingKind.NO_DEFAULT_DENY, _static(WEB, API, API_FROM_WEB))
        ingress = [f for f in found if f.namespace == "shop" and f.direction == "ingress"]
        assert [(f.pod, f.detail("unisolated-pods")) for f in ingress] == [("web-1", "1")]

    def test_default_deny_namespace_is_clean_for_that_direction(self) -> None:
        """A deny-all ingress policy leaves no ingress no-default-deny in its namespace."""
        found = _of(FindingKind.NO_DEFAULT_DENY, _static(WEB, API, DENY_ALL_INGRESS))
        assert [f.direction for f in found if f.namespace == "shop"] == ["egress"]


class TestMissingDnsEgress:
    def test_egress_isolated_pod_without_dns_rule(self) -> None:
        """An egress deny-all without a DNS rule is missing-dns-egress naming the policy."""
        found = _of(FindingKind.MISSING_DNS_EGRESS, _static(WEB, DNS_LABELLED, EGRESS_LOCKED))
        assert [(f.workload, f.policies) for f in found] == [("web", ("shop/lock-egress@1",))]

    def test_rule_to_kube_dns_satisfies(self) -> None:
        """An egress rule to kube-dns on UDP 53 removes the finding."""
        dns_ok = policy("dns", types=(PolicyDirection.EGRESS,), egress=(TO_DNS,))
        assert _of(FindingKind.MISSING_DNS_EGRESS, _static(WEB, DNS_LABELLED, EGRESS_LOCKED, dns_ok)) == []


class TestAllowAllRule:
    def test_peerless_portless_rule(self) -> None:
        """An ingress rule with no peers and no ports admits everyone."""
        found = _of(FindingKind.ALLOW_ALL_RULE, _static(API, policy("open", app="api", ingress=(Rule(),))))
        assert [(f.workload, f.direction, f.detail("rule")) for f in found] == [
            ("networkpolicy/open", "ingress", "0")]

    def test_whole_internet_egress(self) -> None:
        """Egress to 0.0.0.0/0 and ::/0 on every port is allow-all."""
        world = Rule(peers=(Peer(ip_block=IPBlock("0.0.0.0/0")), Peer(ip_block=IPBlock("::/0"))))
        found = _of(FindingKind.ALLOW_ALL_RULE, _static(API, policy("out", app="api", egress=(world,))))
        assert [f.direction for f in found] == ["egress"]

    def test_rule_with_ports_is_not_allow_all(self) -> None:
        """A rule restricted to a port is not allow-all."""
        narrow = Rule(ports=(PolicyPort("TCP", 8080),))
        assert _of(FindingKind.ALLOW_ALL_RULE, _static(API, policy("p", app="api", ingress=(narrow,)))) == []


class TestProbePortNotAllowed:
    def test_isolated_pod_with_probe_port_closed(self) -> None:
        """A readiness probe port no ingress rule admits from the node is reported with the probe named."""
        found = _of(FindingKind.PROBE_PORT_NOT_ALLOWED, _static(PROBED_API, WEB, API_FROM_WEB))
        assert [(f.workload, f.port) for f in found] == [("api", 8080)]
        assert "readiness httpGet /ready" in found[0].detail("probe")
        assert found[0].severity is Severity.LOW

    def test_enforced_node_traffic_raises_severity(self) -> None:
        """With node traffic enforced the same finding is medium."""
        findings = _static(PROBED_API, API_FROM_WEB, enforce_node_traffic=True)
        found = _of(FindingKind.PROBE_PORT_NOT_ALLOWED, findings)
        assert [f.severity for f in found] == [Severity.MEDIUM]

    def test_port_open_to_any_source_is_fine(self) -> None:
        """A rule admitting any source on the probe port satisfies the probe."""
        db = pod("db-1", "10.0.0.9", probes=(Probe(ProbeKind.LIVENESS, "tcpSocket", 5432),))
        any_source = policy("db-in", app="db", ingress=(Rule(ports=(PolicyPort("TCP", 5432),)),))
        assert _of(FindingKind.PROBE_PORT_NOT_ALLOWED, _static(db, any_source)) == []


class TestUnusedPolicy:
    def test_policy_selecting_nothing(self) -> None:
        """A policy whose selector matches no pod is unused."""
        found = _of(FindingKind.UNUSED_POLICY, _static(WEB, policy("ghost", app="nothing", ingress=())))
        assert [(f.workload, f.policies) for f in found] == [("networkpolicy/ghost", ("shop/ghost@1",))]

    def test_policy_selecting_a_pod_is_used(self) -> None:
        """A policy selecting an existing pod is not reported."""
        assert _of(FindingKind.UNUSED_POLICY, _static(API, API_FROM_WEB)) == []
