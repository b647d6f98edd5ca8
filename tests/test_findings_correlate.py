"""The correlator: flows judged against a small hand-built inventory at flow time."""

from __future__ import annotations

from dataclasses import replace

from auditor.model.findings import FindingKind, Severity
from auditor.model.flows import (
    Direction,
    Endpoint,
    EventType,
    HTTPInfo,
    L7Info,
    L7Type,
    PolicyRef,
    Protocol,
    Verdict,
)
from auditor.model.k8s import Change, ChangeType, Probe, ProbeKind, Rule
from tests.findings_support import (
    API,
    API_FROM_WEB,
    DENY_ALL_INGRESS,
    DNS,
    HOST,
    PROBED_API,
    SECOND,
    T0,
    WEB,
    correlator,
    dns_l7,
    drop,
    ep,
    flow,
    from_app,
    kinds,
    pod,
    policy,
)

WORKER = pod("worker-1", "10.0.0.3")


class TestPolicyDrop:
    def test_drop_the_model_agrees_with_is_policy_drop(self) -> None:
        """A drop the engine also denies is policy-drop, attributed to the isolating policy with revision."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        found = c.process(drop(ep(WORKER), ep(API, 8080)))
        assert kinds(found) == [FindingKind.POLICY_DROP]
        assert found[0].policies == ("shop/api-from-web@1",)
        assert (found[0].namespace, found[0].workload, found[0].peer_workload) == ("shop", "api", "shop/worker")

    def test_policy_drop_names_the_closest_miss(self) -> None:
        """The closest miss of the engine is in the details and the message."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        finding = c.process(drop(ep(WORKER), ep(API, 8080)))[0]
        assert finding.detail("closest-miss")
        assert finding.detail("closest-miss") in finding.message

    def test_verdict_and_drop_event_of_one_packet_count_once(self) -> None:
        """A policy-verdict DROPPED and the drop event for the same packet yield one finding."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        first = c.process(drop(ep(WORKER, 40000), ep(API, 8080), event=EventType.POLICY_VERDICT))
        second = c.process(drop(ep(WORKER, 40000), ep(API, 8080), time_ns=T0 + 20_000))
        assert len(first) == 1
        assert second == []
        assert c.stats.deduplicated == 1

    def test_retransmit_a_second_later_counts_again(self) -> None:
        """A retransmitted SYN (same 5-tuple, one second later) is a new denied packet."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        c.process(drop(ep(WORKER, 40000), ep(API, 8080), event=EventType.POLICY_VERDICT))
        c.process(drop(ep(WORKER, 40000), ep(API, 8080), time_ns=T0 + 10_000))
        again = c.process(drop(ep(WORKER, 40000), ep(API, 8080), event=EventType.POLICY_VERDICT,
                               time_ns=T0 + SECOND))
        assert kinds(again) == [FindingKind.POLICY_DROP]

    def test_policy_drops_counter_marks_expected(self) -> None:
        """policy_drops counts by (namespace, workload, direction, expected)."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        c.process(drop(ep(WORKER), ep(API, 8080)))
        assert c.stats.policy_drops[("shop", "api", "ingress", True)] == 1

    def test_policy_verdicts_count_under_primary_policy(self) -> None:
        """A drop isolated by two policies counts once, under the smallest namespace/name."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB, DENY_ALL_INGRESS)
        c.process(drop(ep(WORKER), ep(API, 8080)))
        expected = {("shop", "api-from-web", "ingress", "dropped", "NetworkPolicy"): 1}
        assert dict(c.stats.policy_verdicts) == expected


class TestUnexpected:
    def test_drop_the_model_allows_is_unexpected_drop_naming_the_rule(self) -> None:
        """A drop of a flow a rule admits is unexpected-drop naming that rule."""
        c = correlator(WEB, API, API_FROM_WEB)
        found = c.process(drop(ep(WEB), ep(API, 8080)))
        assert kinds(found) == [FindingKind.UNEXPECTED_DROP]
        assert "rule 0 (peer 0) of shop/api-from-web@1" in found[0].message
        assert found[0].policies == ("shop/api-from-web@1",)

    def test_forwarded_flow_the_model_denies_is_unexpected_allow(self) -> None:
        """A delivery the model denies is unexpected-allow with high severity."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        found = c.process(flow(ep(WORKER), ep(API, 8080)))
        gaps = [f for f in found if f.kind is FindingKind.UNEXPECTED_ALLOW]
        assert [f.severity for f in gaps] == [Severity.HIGH]

    def test_unexpected_allow_names_a_cilium_policy_the_inventory_lacks(self) -> None:
        """When Cilium names a CiliumNetworkPolicy the inventory does not hold, the finding says so."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        forwarded = replace(flow(ep(WORKER), ep(API, 8080), event=EventType.POLICY_VERDICT),
                            ingress_allowed_by=(PolicyRef("extra", "shop", "CiliumNetworkPolicy"),))
        finding = next(f for f in c.process(forwarded) if f.kind is FindingKind.UNEXPECTED_ALLOW)
        assert finding.detail("not-in-inventory") == "CiliumNetworkPolicy shop/extra"
        assert "the inventory does not hold" in finding.message

    def test_allowed_flow_the_model_allows_yields_nothing(self) -> None:
        """An admitted flow to an isolated pod produces no finding."""
        c = correlator(WEB, API, API_FROM_WEB, policy("web-out", app="web", egress=(Rule(),)))
        assert c.process(flow(ep(WEB), ep(API, 8080))) == []


class TestSkipped:
    def test_replies_are_not_decisions(self) -> None:
        """A reply of an allowed connection is skipped and counted."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        assert c.process(flow(ep(API, 8080), ep(WORKER), is_reply=True)) == []
        assert c.stats.skipped["reply"] == 1

    def test_traces_not_to_an_endpoint_are_skipped(self) -> None:
        """A trace to the stack is not a delivery."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        assert c.process(flow(ep(WORKER), ep(API, 8080), point="TO_STACK")) == []
        assert c.stats.skipped["not-decision"] == 1

    def test_other_drop_reasons_are_counted_not_judged(self) -> None:
        """A drop for a non-policy reason is counted by reason and yields no finding."""
        c = correlator(WEB, API)
        assert c.process(flow(ep(WEB), ep(API, 80), verdict=Verdict.DROPPED, event=EventType.DROP,
                              drop_reason="CT_MAP_INSERTION_FAILED")) == []
        assert c.stats.other_drops["CT_MAP_INSERTION_FAILED"] == 1

    def test_pods_unknown_to_the_inventory_are_unresolved(self) -> None:
        """A flow from a pod the inventory does not know yields no finding and counts as unresolved."""
        c = correlator(API, API_FROM_WEB)
        assert c.process(drop(ep(WORKER), ep(API, 8080))) == []
        assert c.stats.unresolved == 1

    def test_host_to_health_is_not_judged(self) -> None:
        """cilium-health traffic is not subject to NetworkPolicy."""
        c = correlator(API, DENY_ALL_INGRESS)
        health = Endpoint(ip="10.0.0.200", identity=4, labels=("reserved:health",))
        assert c.process(flow(HOST, health, protocol=Protocol.ICMPV4)) == []
        assert c.stats.skipped["health"] == 1


class TestDns:
    def test_dropped_dns_packet_is_dns_denied_with_recovered_query(self) -> None:
        """A policy drop to port 53 is dns-denied and carries the query seen on the same socket."""
        web_out = policy("web-out", app="web", egress=(from_app("api", 8080),))
        c = correlator(WEB, DNS, web_out)
        c.process(dns_l7(ep(WEB, 33333), ep(DNS, 53), "shop.example.com."))
        found = c.process(drop(ep(WEB, 33333), ep(DNS, 53), direction=Direction.EGRESS, protocol=Protocol.UDP))
        dns = [f for f in found if f.kind is FindingKind.DNS_DENIED]
        assert [d.detail("query") for d in dns] == ["shop.example.com."]
        assert c.stats.dns_denials[("shop", "web")] == 1

    def test_nxdomain_and_servfail_are_not_denials(self) -> None:
        """NXDOMAIN (3) and SERVFAIL (2) answers are not dns-denied."""
        c = correlator(WEB, DNS)
        for rcode in (2, 3):
            assert c.process(dns_l7(ep(DNS, 53), ep(WEB, 33333), "x.", response=True, rcode=rcode)) == []

    def test_refused_from_the_proxy_is_dns_denied(self) -> None:
        """A REFUSED answer from Cilium's DNS proxy is dns-denied for the client."""
        c = correlator(WEB, DNS)
        found = c.process(dns_l7(ep(DNS, 53), ep(WEB, 33333), "blocked.example.", response=True, rcode=5))
        assert kinds(found) == [FindingKind.DNS_DENIED]
        assert (found[0].workload, found[0].detail("query")) == ("web", "blocked.example.")


class TestHealthCheck:
    def test_drop_to_a_named_probe_port_is_health_check_blocked(self) -> None:
        """A drop from the node to the port a named readiness probe uses is health-check-blocked."""
        c = correlator(PROBED_API, DENY_ALL_INGRESS, enforce_node_traffic=True)
        found = c.process(drop(HOST, ep(PROBED_API, 8080)))
        health = [f for f in found if f.kind is FindingKind.HEALTH_CHECK_BLOCKED]
        assert len(health) == 1
        assert 'readiness httpGet /ready on port 8080 (named "http")' in health[0].message
        assert c.stats.health_check_drops[("shop", "api", 8080)] == 1

    def test_readiness_loss_is_reported(self) -> None:
        """When the pod was Ready at the drop and is not Ready now, the finding says so and is critical."""
        unready = Change(T0 + SECOND, ChangeType.MODIFIED, replace(PROBED_API, ready=False))
        c = correlator(PROBED_API, DENY_ALL_INGRESS, enforce_node_traffic=True, changes=(unready,))
        found = c.process(drop(HOST, ep(PROBED_API, 8080)))
        health = [f for f in found if f.kind is FindingKind.HEALTH_CHECK_BLOCKED]
        assert health[0].severity is Severity.CRITICAL
        assert "is not Ready now" in health[0].detail("readiness")

    def test_drop_to_another_port_is_not_a_health_check(self) -> None:
        """A drop to a port no probe uses is not health-check-blocked."""
        probe_pod = pod("db-1", "10.0.0.9", probes=(Probe(ProbeKind.LIVENESS, "tcpSocket", 5432),))
        c = correlator(probe_pod, WEB, DENY_ALL_INGRESS)
        found = c.process(drop(ep(WEB), ep(probe_pod, 6379)))
        assert FindingKind.HEALTH_CHECK_BLOCKED not in kinds(found)


class TestUnprotected:
    def test_flow_to_an_unselected_pod_is_unprotected_pod_ingress(self) -> None:
        """A delivery to a pod no policy selects for ingress names the peer as exposure."""
        c = correlator(WEB, API)
        found = c.process(flow(ep(WEB), ep(API, 8080)))
        ingress = [f for f in found if f.kind is FindingKind.UNPROTECTED_POD and f.direction == "ingress"]
        assert [(f.workload, f.peer) for f in ingress] == [("api", "shop/web-1")]

    def test_unprotected_egress_is_low(self) -> None:
        """The source's unprotected egress is reported with low severity."""
        c = correlator(WEB, API, API_FROM_WEB)
        found = c.process(flow(ep(WEB), ep(API, 8080)))
        assert [(f.workload, f.direction, f.severity) for f in found] == [("web", "egress", Severity.LOW)]


class TestTimeAwareness:
    def test_narrowed_policy_judges_each_flow_by_its_own_time(self) -> None:
        """Forwarded before a narrowing is fine; a drop after it is policy-drop under the new revision."""
        open_policy = policy("api-in", app="api", ingress=(Rule(),), rv="1")
        narrow = policy("api-in", app="api", ingress=(from_app("web", 8080),), rv="2")
        c = correlator(WEB, API, WORKER, open_policy,
                       changes=(Change(T0 + 10 * SECOND, ChangeType.MODIFIED, narrow),))
        before = c.process(flow(ep(WORKER), ep(API, 8080), time_ns=T0 + SECOND))
        after = c.process(drop(ep(WORKER), ep(API, 8080), time_ns=T0 + 20 * SECOND))
        assert FindingKind.UNEXPECTED_ALLOW not in kinds(before)
        assert kinds(after) == [FindingKind.POLICY_DROP]
        assert after[0].policies == ("shop/api-in@2",)


class TestAuditMode:
    def test_audit_verdict_is_reported_but_not_counted_as_a_drop(self) -> None:
        """A policy-verdict AUDIT gives a finding marked audit-mode and no policy_drops count."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        audited = flow(ep(WORKER), ep(API, 8080), verdict=Verdict.AUDIT, event=EventType.POLICY_VERDICT)
        [finding] = [f for f in c.process(audited) if f.kind is FindingKind.POLICY_DROP]
        assert finding.detail("audit-mode") == "true"
        assert sum(c.stats.policy_drops.values()) == 0


class TestDirection:
    def test_unknown_direction_is_attributed_to_the_denying_side(self) -> None:
        """Without traffic_direction the overall decision is used and the denying ingress side is named."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        [finding] = c.process(drop(ep(WORKER), ep(API, 8080), direction=Direction.UNKNOWN))
        assert (finding.kind, finding.workload) == (FindingKind.POLICY_DROP, "api")
        assert finding.direction == "ingress"

    def test_egress_drop_is_the_source_side(self) -> None:
        """An EGRESS drop is judged on the source's egress and attributed to the source."""
        web_out = policy("web-out", app="web", egress=(from_app("api", 8080),))
        c = correlator(WEB, API, WORKER, web_out)
        [finding] = c.process(drop(ep(WEB), ep(WORKER, 9000), direction=Direction.EGRESS))
        assert (finding.workload, finding.peer_workload, finding.policies) == ("web", "shop/worker", (
            "shop/web-out@1",))


class TestL7:
    def test_l7_http_drop_the_model_allows_points_at_l7_rules(self) -> None:
        """An HTTP request dropped by the proxy is unexpected-drop naming L7 rules as the likely cause."""
        c = correlator(WEB, API, API_FROM_WEB)
        request = L7Info(type=L7Type.REQUEST, http=HTTPInfo(method="GET", url="http://api/admin"))
        l7_drop = replace(flow(ep(WEB), ep(API, 8080), verdict=Verdict.DROPPED, event=EventType.L7), l7=request)
        [finding] = c.process(l7_drop)
        assert finding.kind is FindingKind.UNEXPECTED_DROP
        assert "L7 rule" in finding.message


class TestStatsSnapshot:
    def test_snapshot_is_a_detached_copy(self) -> None:
        """A snapshot keeps its counts while the correlator goes on counting."""
        c = correlator(WEB, API, WORKER, API_FROM_WEB)
        c.process(drop(ep(WORKER), ep(API, 8080)))
        snap = c.stats.snapshot()
        c.process(drop(ep(WORKER, 1), ep(API, 8080), time_ns=T0 + SECOND))
        assert sum(snap.policy_drops.values()) == 1
        assert sum(c.stats.policy_drops.values()) == 2
