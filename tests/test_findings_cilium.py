"""The correlator with Cilium policies: deny attribution, ICMP, L7 proxy drops, toFQDNs answers, mismatches.

Synthetic inventories and flows (tests/findings_support.py); policies are model objects.
"""

from __future__ import annotations

from dataclasses import replace

from auditor.findings.dns import DnsAnswers
from auditor.model.cilium import (
    CiliumKind,
    CiliumNetworkPolicy,
    CiliumPolicySpec,
    CiliumPort,
    CiliumRule,
    FQDNPeer,
    ICMPType,
    PortRule,
)
from auditor.model.findings import FindingKind
from auditor.model.flows import (
    Direction,
    DNSInfo,
    Endpoint,
    EventType,
    Flow,
    L7Info,
    L7Type,
    PolicyRef,
    Protocol,
    Verdict,
)
from tests.findings_support import API, DNS, SECOND, T0, WEB, correlator, drop, ep, flow, kinds, select

WORLD_IP = "198.51.100.7"
WORLD = Endpoint(ip=WORLD_IP, identity=2, labels=("reserved:world",))


def cnp(name: str, spec: CiliumPolicySpec, *, rv: str = "5") -> CiliumNetworkPolicy:
    return CiliumNetworkPolicy(CiliumKind.CNP, name, "shop", specs=(spec,), resource_version=rv)


def ports(*numbers: int, l7: tuple[str, ...] = ()) -> tuple[PortRule, ...]:
    return (PortRule(tuple(CiliumPort(str(n), 0, "TCP") for n in numbers), l7=l7),)


NO_WORLD = cnp("no-world", CiliumPolicySpec(endpoint_selector=select(app="web"),
                                            egress=(CiliumRule(entities=("all",)),),
                                            egress_deny=(CiliumRule(entities=("world",)),)))
API_FROM_WEB_CNP = cnp("api-from-web", CiliumPolicySpec(endpoint_selector=select(app="api"), ingress=(
    CiliumRule(endpoints=(select(app="web"),), to_ports=ports(8080)),
    CiliumRule(icmps=(ICMPType(8),)))))
API_HTTP = cnp("api-http", CiliumPolicySpec(endpoint_selector=select(app="api"), ingress=(
    CiliumRule(endpoints=(select(app="web"),), to_ports=ports(8080, l7=("http",))),)))
WEB_TO_EXAMPLE = cnp("web-fqdn", CiliumPolicySpec(endpoint_selector=select(app="web"), egress=(
    CiliumRule(fqdns=(FQDNPeer(match_name="api.example.com"),), to_ports=ports(443)),)))


def egress_to_world(verdict: Verdict = Verdict.FORWARDED, port: int = 443, time_ns: int = T0) -> Flow:
    dst = replace(WORLD, port=port)
    if verdict is Verdict.DROPPED:
        return drop(ep(WEB), dst, event=EventType.POLICY_VERDICT, direction=Direction.EGRESS, time_ns=time_ns)
    return flow(ep(WEB), dst, event=EventType.POLICY_VERDICT, direction=Direction.EGRESS, time_ns=time_ns)


def dns_answer(name: str, *ips: str, ttl: int = 30, time_ns: int = T0) -> Flow:
    info = L7Info(type=L7Type.RESPONSE, dns=DNSInfo(query=f"{name}.", ips=ips, ttl=ttl,
                                                   observation_source="proxy"))
    dns = Endpoint(ip="10.0.1.53", port=53)
    return flow(dns, ep(WEB), event=EventType.L7, direction=Direction.EGRESS, protocol=Protocol.UDP, l7=info,
                is_reply=True, time_ns=time_ns)


class TestDenyRules:
    def test_a_drop_by_a_deny_rule_is_a_policy_drop_naming_the_rule(self) -> None:
        """A world-bound drop denied by egressDeny is expected and names the CNP rule."""
        c = correlator(WEB, API, NO_WORLD)
        [finding] = c.process(egress_to_world(Verdict.DROPPED))
        assert finding.kind is FindingKind.POLICY_DROP
        assert finding.policies == ("CiliumNetworkPolicy shop/no-world@5",)
        assert finding.detail("deny-rule") == "CiliumNetworkPolicy shop/no-world@5 egressDeny[0] (entity world)"

    def test_deny_drops_count_under_the_deny_policy_with_its_kind(self) -> None:
        """The verdict counter attributes a deny-rule drop to the deny policy, kind included."""
        c = correlator(WEB, API, NO_WORLD)
        c.process(egress_to_world(Verdict.DROPPED))
        assert dict(c.stats.policy_verdicts) == {
            ("shop", "no-world", "egress", "dropped", "CiliumNetworkPolicy"): 1}

    def test_a_forwarded_flow_a_deny_rule_denies_is_an_unexpected_allow(self) -> None:
        """Cilium forwarding what a deny rule denies is an enforcement gap that names the deny rule."""
        c = correlator(WEB, API, NO_WORLD)
        found = c.process(egress_to_world())
        [finding] = [f for f in found if f.kind is FindingKind.UNEXPECTED_ALLOW]
        assert "egressDeny[0] (entity world) denies it" in finding.message


class TestIcmp:
    def test_an_echo_request_an_icmp_rule_admits_is_not_unexpected(self) -> None:
        """ICMP flows are judged by type: an allowed ping gives no unexpected-allow."""
        c = correlator(WEB, API, API_FROM_WEB_CNP)
        ping = replace(flow(ep(WEB), ep(API), protocol=Protocol.ICMPV4), icmp_type=8)
        assert FindingKind.UNEXPECTED_ALLOW not in kinds(c.process(ping))

    def test_a_timestamp_request_the_rule_does_not_admit_is_unexpected(self) -> None:
        """An ICMP type the rule does not list is denied by the model, so its delivery is unexpected."""
        c = correlator(WEB, API, API_FROM_WEB_CNP)
        timestamp = replace(flow(ep(WEB), ep(API), protocol=Protocol.ICMPV4), icmp_type=13)
        assert FindingKind.UNEXPECTED_ALLOW in kinds(c.process(timestamp))


class TestL7:
    def test_an_l7_drop_on_a_connection_an_http_rule_admits_is_a_policy_drop(self) -> None:
        """A request Cilium's proxy refused is attributed to the L7 rule, not reported as unexpected."""
        c = correlator(WEB, API, API_HTTP)
        l7 = L7Info(type=L7Type.REQUEST)
        refused = flow(ep(WEB), ep(API, 8080), verdict=Verdict.DROPPED, event=EventType.L7, l7=l7)
        [finding] = c.process(refused)
        assert finding.kind is FindingKind.POLICY_DROP
        rule = "CiliumNetworkPolicy shop/api-http@5 ingress[0] (endpoints app=web) [http]"
        assert finding.detail("l7-rule") == rule


class TestFqdn:
    def test_without_a_dns_answer_the_flow_is_undecided_and_counted(self) -> None:
        """A toFQDNs rule with no known name for the address: no finding, counted as undecided-fqdn."""
        c = correlator(WEB, API, WEB_TO_EXAMPLE)
        assert c.process(egress_to_world()) == []
        assert c.stats.skipped["undecided-fqdn"] == 1

    def test_the_clients_dns_answer_decides_the_flow(self) -> None:
        """After the client resolved the name to the address, the toFQDNs rule admits it."""
        c = correlator(WEB, API, WEB_TO_EXAMPLE)
        c.process(dns_answer("api.example.com", WORLD_IP))
        assert c.process(egress_to_world(time_ns=T0 + SECOND)) == []
        assert c.stats.skipped["undecided-fqdn"] == 0
        assert c.stats.policy_verdicts[("shop", "web-fqdn", "egress", "allowed", "CiliumNetworkPolicy")] == 1

    def test_an_answer_for_another_name_makes_the_flow_an_unexpected_allow(self) -> None:
        """A known name that the rule does not match: the model denies, so a forward is unexpected."""
        c = correlator(WEB, API, WEB_TO_EXAMPLE)
        c.process(dns_answer("other.example.org", WORLD_IP))
        assert FindingKind.UNEXPECTED_ALLOW in kinds(c.process(egress_to_world(time_ns=T0 + SECOND)))


class TestDnsAnswers:
    def test_an_answer_expires_after_its_ttl(self) -> None:
        """Names are valid for the answer's TTL (at least Cilium's 60 s minimum), then forgotten."""
        answers = DnsAnswers()
        answers.observe(dns_answer("api.example.com", WORLD_IP, ttl=120))
        assert answers.names_for(WEB.ips[0], WORLD_IP, T0 + 100 * SECOND) == ("api.example.com",)
        assert answers.names_for(WEB.ips[0], WORLD_IP, T0 + 121 * SECOND) == ()

    def test_answers_are_per_client(self) -> None:
        """Another client did not look the name up, so the address has no name for it."""
        answers = DnsAnswers()
        answers.observe(dns_answer("api.example.com", WORLD_IP))
        assert answers.names_for("10.0.0.99", WORLD_IP, T0) == ()


class TestAttributionMismatch:
    def test_hubble_naming_another_allow_policy_is_a_mismatch(self) -> None:
        """Both allow, but Hubble names a policy auditor's admitting rules do not: attribution-mismatch."""
        c = correlator(WEB, API, API_FROM_WEB_CNP)
        allowed = replace(flow(ep(WEB), ep(API, 8080), event=EventType.POLICY_VERDICT),
                          ingress_allowed_by=(PolicyRef("legacy", "shop", "CiliumNetworkPolicy"),))
        [finding] = [f for f in c.process(allowed) if f.kind is FindingKind.ATTRIBUTION_MISMATCH]
        assert finding.detail("cilium") == "CiliumNetworkPolicy shop/legacy"
        assert finding.detail("auditor") == "CiliumNetworkPolicy shop/api-from-web@5"

    def test_hubble_naming_the_same_policy_is_no_mismatch(self) -> None:
        """Hubble and auditor name the same CNP: no attribution-mismatch."""
        c = correlator(WEB, API, API_FROM_WEB_CNP)
        allowed = replace(flow(ep(WEB), ep(API, 8080), event=EventType.POLICY_VERDICT),
                          ingress_allowed_by=(PolicyRef("api-from-web", "shop", "CiliumNetworkPolicy", 5),))
        assert FindingKind.ATTRIBUTION_MISMATCH not in kinds(c.process(allowed))


KUBE_DNS = Endpoint(ip="10.0.1.53", port=53, namespace="kube-system", pod_name="coredns-1",
                    labels=("k8s:app=kube-dns",))
WEB_DNS = cnp("web-dns", CiliumPolicySpec(endpoint_selector=select(app="web"), egress=(
    CiliumRule(endpoints=(select(**{"io.kubernetes.pod.namespace": "kube-system"}),),
               to_ports=(PortRule((CiliumPort("53", 0, "UDP"),), l7=("dns",)),)),)))


class TestDnsProxyRefusals:
    def test_a_refused_answer_names_the_dns_rule_that_sent_the_lookup_to_the_proxy(self) -> None:
        """dns-denied from the proxy's REFUSED names the client's CNP rule with rules.dns."""
        c = correlator(WEB, API, DNS, WEB_DNS)
        info = L7Info(type=L7Type.RESPONSE, dns=DNSInfo(query="blocked.example.", rcode=5,
                                                        observation_source="proxy"))
        refused = flow(KUBE_DNS, ep(WEB), event=EventType.L7, direction=Direction.EGRESS, protocol=Protocol.UDP,
                       l7=info, is_reply=True)
        [finding] = c.process(refused)
        assert finding.kind is FindingKind.DNS_DENIED
        assert finding.policies == ("CiliumNetworkPolicy shop/web-dns@5",)
        assert finding.detail("dns-rule") == "CiliumNetworkPolicy shop/web-dns@5 egress[0] (endpoints " \
            "io.kubernetes.pod.namespace=kube-system)"


class TestNotModelled:
    def test_a_flow_only_a_to_groups_rule_could_admit_is_counted_not_guessed(self) -> None:
        """toGroups is not modelled: a flow it may admit is counted undecided-not-modelled, no finding."""
        groups = cnp("web-groups", CiliumPolicySpec(endpoint_selector=select(app="web"), egress=(
            CiliumRule(groups=1, to_ports=ports(443)),)))
        c = correlator(WEB, API, groups)
        assert c.process(egress_to_world()) == []
        assert c.stats.skipped["undecided-not-modelled"] == 1

    def test_a_to_groups_rule_on_another_port_does_not_hide_a_real_drop(self) -> None:
        """A toGroups rule for port 443 leaves port 80 decided: the forward is an unexpected-allow."""
        groups = cnp("web-groups", CiliumPolicySpec(endpoint_selector=select(app="web"), egress=(
            CiliumRule(groups=1, to_ports=ports(443)),)))
        c = correlator(WEB, API, groups)
        assert FindingKind.UNEXPECTED_ALLOW in kinds(c.process(egress_to_world(port=80)))
