"""`auditor audit` end to end on the synthetic scenario fixtures and the real recorded flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.app.audit import AuditOptions, AuditResult, run_audit
from auditor.model.findings import Finding, FindingKind, Severity

SCENARIOS = Path(__file__).parent / "fixtures" / "scenarios"
REAL = Path(__file__).parent / "fixtures" / "real-flows"


def audit(name: str, *, enforce_node_traffic: bool = False) -> AuditResult:
    folder = SCENARIOS / name
    events = folder / "cluster-events.jsonl"
    return run_audit(AuditOptions(
        manifests=(str(folder / "manifests.yaml"),),
        flows=(str(folder / "flows.jsonl"),),
        cluster_events=str(events) if events.exists() else None,
        enforce_node_traffic=enforce_node_traffic,
    ))


def of(kind: FindingKind, result: AuditResult) -> list[Finding]:
    return [f for f in result.findings if f.kind is kind]


class TestRuntimeScenarios:
    def test_policy_drop_counts_the_packet_once(self) -> None:
        """policy-drop: the policy-verdict and drop event of one packet make one count, with the policy."""
        result = audit("policy-drop")
        [finding] = of(FindingKind.POLICY_DROP, result)
        assert (finding.count, finding.policies) == (1, ("shop/api-from-web@7",))
        assert result.summary.deduplicated == 1

    def test_unexpected_drop_names_the_rule(self) -> None:
        """unexpected-drop: names the rule that should have admitted the flow."""
        [finding] = of(FindingKind.UNEXPECTED_DROP, audit("unexpected-drop"))
        assert "rule 0 (peer 0) of shop/api-from-web@7 allows it" in finding.message

    def test_unexpected_allow_is_high_and_names_the_cilium_policy(self) -> None:
        """unexpected-allow: high severity, and the CiliumNetworkPolicy Hubble named is called out."""
        [finding] = of(FindingKind.UNEXPECTED_ALLOW, audit("unexpected-allow"))
        assert finding.severity is Severity.HIGH
        assert finding.detail("not-in-inventory") == "CiliumNetworkPolicy shop/legacy-open@3"

    def test_dns_denied_recovers_query_names(self) -> None:
        """dns-denied: drops to 53, an L7 DNS drop and a proxy REFUSED, with the names they asked for."""
        [finding] = of(FindingKind.DNS_DENIED, audit("dns-denied"))
        assert finding.count == 3
        assert finding.detail("query") == "blocked.example.com."

    def test_health_check_blocked_reports_readiness_loss(self) -> None:
        """health-check-blocked: names the probes and that the pod lost readiness after the drop."""
        result = audit("health-check-blocked", enforce_node_traffic=True)
        [finding] = of(FindingKind.HEALTH_CHECK_BLOCKED, result)
        assert 'readiness httpGet /ready on port 8080 (named "http")' in finding.detail("probe")
        assert finding.severity is Severity.CRITICAL
        assert "not Ready now" in finding.message

    def test_unprotected_pod_names_the_exposure(self) -> None:
        """unprotected-pod: api's ingress is open and web was seen talking to it."""
        found = of(FindingKind.UNPROTECTED_POD, audit("unprotected-pod"))
        assert ("api", "ingress", "shop/web") in [(f.workload, f.direction, f.peer_workload) for f in found]


class TestStaticScenarios:
    @pytest.mark.parametrize(
        ("scenario", "kind", "workload"),
        [
            ("no-default-deny", FindingKind.NO_DEFAULT_DENY, ""),
            ("missing-dns-egress", FindingKind.MISSING_DNS_EGRESS, "web"),
            ("allow-all-rule", FindingKind.ALLOW_ALL_RULE, "networkpolicy/api-open"),
            ("probe-port-not-allowed", FindingKind.PROBE_PORT_NOT_ALLOWED, "api"),
            ("unused-policy", FindingKind.UNUSED_POLICY, "networkpolicy/ghost"),
        ],
    )
    def test_static_kind_found(self, scenario: str, kind: FindingKind, workload: str) -> None:
        """Each static scenario yields its finding kind for the expected workload in shop."""
        found = [f for f in of(kind, audit(scenario)) if f.namespace == "shop"]
        assert workload in [f.workload for f in found]


class TestTimeAwareness:
    def test_narrowed_policy(self) -> None:
        """Forwarded before the narrowing is no unexpected-allow; the later drop is under revision 11."""
        result = audit("policy-narrowed")
        assert of(FindingKind.UNEXPECTED_ALLOW, result) == []
        [drop] = of(FindingKind.POLICY_DROP, result)
        assert drop.policies == ("shop/api-in@11",)


class TestRealFlows:
    def test_real_dns_flows_yield_no_dns_denied(self) -> None:
        """The recorded DNS capture (102 NXDOMAIN answers) produces no dns-denied."""
        result = run_audit(AuditOptions(
            manifests=(str(SCENARIOS / "real-dns" / "manifests.yaml"),),
            flows=(str(REAL / "hubble-otel-basic-sample-330-dns-flows.jsonl"),),
        ))
        assert result.summary.flows == 330
        assert result.summary.judged > 0
        assert of(FindingKind.DNS_DENIED, result) == []

    def test_host_to_health_icmp_is_no_health_check(self) -> None:
        """cilium-health ICMP from the host is not judged and is no health-check-blocked."""
        result = run_audit(AuditOptions(
            manifests=(str(SCENARIOS / "real-dns" / "manifests.yaml"),),
            flows=(str(REAL / "hubble-otel-basic-sample-400-icmpv4-flows.jsonl"),),
        ))
        assert of(FindingKind.HEALTH_CHECK_BLOCKED, result) == []
        assert result.summary.skipped.get("health", 0) > 0

    def test_every_real_fixture_runs(self) -> None:
        """All recorded fixtures go through the pipeline without a bad line."""
        flows = tuple(sorted(str(p) for p in REAL.glob("*.jsonl")))
        manifests = (str(SCENARIOS / "real-dns" / "manifests.yaml"),)
        result = run_audit(AuditOptions(manifests=manifests, flows=flows))
        assert result.summary.skipped_lines == 0
        assert result.summary.flows == 1911
