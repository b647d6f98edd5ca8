"""Review of the engine and findings semantics: each test pins a bug found in review (synthetic data)."""

from __future__ import annotations

from auditor.findings.probes import probe_port
from auditor.findings.selection import FlowClass, classify
from auditor.model.decision import ExternalSubject, PodSubject
from auditor.model.findings import FindingKind
from auditor.model.flows import (
    Direction,
    DNSInfo,
    Endpoint,
    EventType,
    Flow,
    FlowType,
    L7Info,
    L7Type,
    Protocol,
    Verdict,
)
from auditor.model.k8s import (
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyDirection,
    Probe,
    ProbeKind,
    Rule,
)
from auditor.policy.engine import PolicyEngine
from auditor.policy.selectors import ip_in_block, parse_network
from auditor.policy.state import ClusterState
from auditor.policy.validate import validate_policy
from tests.findings_support import (
    DNS,
    HOST,
    PROBED_API,
    T0,
    WEB,
    correlator,
    drop,
    ep,
    flow,
    kinds,
    policy,
)

DENY_EGRESS = policy("deny-egress", types=(PolicyDirection.EGRESS,), egress=())


def _ip_block_policy(cidr: str, *excepts: str) -> NetworkPolicy:
    block = IPBlock(cidr, except_=excepts)
    return NetworkPolicy("shop", "cidr", ingress=(Rule(peers=(Peer(ip_block=block),)),))


class TestIPv4MappedAddresses:
    def test_mapped_address_matches_its_ipv4_block(self) -> None:
        """::ffff:10.1.2.3 is the IPv4 address 10.1.2.3 on the wire, so 10.0.0.0/8 admits it."""
        assert ip_in_block("::ffff:10.1.2.3", IPBlock("10.0.0.0/8"))

    def test_mapped_address_is_excluded_by_an_ipv4_except(self) -> None:
        """An IPv4 `except` range excludes the IPv4-mapped form of an address in it."""
        assert not ip_in_block("::ffff:10.1.2.3", IPBlock("10.0.0.0/8", except_=("10.1.0.0/16",)))

    def test_engine_admits_a_mapped_external_source(self) -> None:
        """The engine's ingress side admits an external IPv4-mapped source inside the ipBlock."""
        api = Pod("shop", "api-1", labels={"app": "api"}, ips=("10.0.0.2",))
        state = ClusterState.build([Namespace("shop"), api, _ip_block_policy("192.0.2.0/24")])
        decision = PolicyEngine().decide(state, ExternalSubject("::ffff:192.0.2.7"), PodSubject(api), 80)
        assert decision.allowed


class TestCidrValidation:
    def test_netmask_form_is_rejected(self) -> None:
        """`10.0.0.0/255.0.0.0` is not CIDR notation; the API server (ParseCIDRSloppy) rejects it."""
        errors = validate_policy(_ip_block_policy("10.0.0.0/255.0.0.0"))
        assert [e.field for e in errors] == ["spec.ingress[0].from[0].ipBlock.cidr"]

    def test_surrounding_whitespace_is_rejected(self) -> None:
        """A CIDR with a leading space is rejected by the API server, so the policy is invalid."""
        errors = validate_policy(_ip_block_policy(" 10.0.0.0/8"))
        assert [e.field for e in errors] == ["spec.ingress[0].from[0].ipBlock.cidr"]

    def test_ipv6_zone_is_rejected(self) -> None:
        """An IPv6 zone (`fe80::%eth0/64`) is not valid CIDR notation for the API server."""
        errors = validate_policy(_ip_block_policy("fe80::%eth0/64"))
        assert [e.field for e in errors] == ["spec.ingress[0].from[0].ipBlock.cidr"]

    def test_netmask_form_except_is_rejected(self) -> None:
        """An `except` entry in netmask form is rejected on its own path."""
        errors = validate_policy(_ip_block_policy("10.0.0.0/8", "10.1.0.0/255.255.0.0"))
        assert [e.field for e in errors] == ["spec.ingress[0].from[0].ipBlock.except[0]"]

    def test_legacy_leading_zeros_are_accepted_and_match(self) -> None:
        """ParseCIDRSloppy accepts `010.000.0.0/08` as 10.0.0.0/8: valid, and it matches 10.2.3.4."""
        assert validate_policy(_ip_block_policy("010.000.0.0/08")) == []
        assert ip_in_block("10.2.3.4", IPBlock("010.000.0.0/08"))

    def test_host_bits_stay_accepted(self) -> None:
        """`10.1.2.3/8` (host bits set) is accepted by the legacy validation, as 10.0.0.0/8."""
        assert validate_policy(_ip_block_policy("10.1.2.3/8")) == []
        assert str(parse_network("10.1.2.3/8")) == "10.0.0.0/8"


class TestAuditModeSymptoms:
    def test_audited_dns_packet_is_not_dns_denied(self) -> None:
        """Audit mode let the DNS packet through: no dns-denied (the audit-mode policy-drop remains)."""
        c = correlator(WEB, DNS, DENY_EGRESS)
        audited = flow(ep(WEB, 40000), ep(DNS, 53), verdict=Verdict.AUDIT, event=EventType.POLICY_VERDICT,
                       direction=Direction.EGRESS, protocol=Protocol.UDP)
        found = c.process(audited)
        assert kinds(found) == [FindingKind.POLICY_DROP]
        assert sum(c.stats.dns_denials.values()) == 0

    def test_audited_probe_traffic_is_not_health_check_blocked(self) -> None:
        """Audit mode let the probe through: no health-check-blocked for an AUDIT verdict."""
        deny_in = policy("deny-in", types=(PolicyDirection.INGRESS,), ingress=())
        c = correlator(PROBED_API, deny_in, enforce_node_traffic=True)
        audited = flow(HOST, ep(PROBED_API, 8080), verdict=Verdict.AUDIT, event=EventType.POLICY_VERDICT)
        found = c.process(audited)
        assert kinds(found) == [FindingKind.POLICY_DROP]
        assert sum(c.stats.health_check_drops.values()) == 0


class TestHealthCheckSide:
    def test_egress_drop_at_the_client_is_not_health_check_blocked(self) -> None:
        """A drop by the *client's* egress policy does not block the target's probes: no health finding."""
        c = correlator(WEB, PROBED_API, DENY_EGRESS)
        found = c.process(drop(ep(WEB, 40000), ep(PROBED_API, 8080), direction=Direction.EGRESS))
        assert kinds(found) == [FindingKind.POLICY_DROP]
        assert found[0].direction == "egress"

    def test_ingress_drop_of_the_node_probe_is(self) -> None:
        """The node's probe dropped by the target's ingress policy is health-check-blocked."""
        deny_in = policy("deny-in", types=(PolicyDirection.INGRESS,), ingress=())
        c = correlator(WEB, PROBED_API, deny_in, enforce_node_traffic=True)
        found = c.process(drop(HOST, ep(PROBED_API, 8080), direction=Direction.INGRESS))
        assert FindingKind.HEALTH_CHECK_BLOCKED in kinds(found)

    def test_pod_to_pod_drop_on_a_probe_port_is_an_ordinary_policy_drop(self) -> None:
        """web -> api:8080 dropped is application traffic, not a health check, though a probe uses 8080."""
        deny_in = policy("deny-in", types=(PolicyDirection.INGRESS,), ingress=())
        c = correlator(WEB, PROBED_API, deny_in)
        found = c.process(drop(ep(WEB, 40000), ep(PROBED_API, 8080), direction=Direction.INGRESS))
        assert kinds(found) == [FindingKind.POLICY_DROP]
        assert sum(c.stats.health_check_drops.values()) == 0


class TestDropSubType:
    def test_drop_event_sub_type_133_without_reason_name_is_a_policy_denial(self) -> None:
        """A drop event whose sub_type is 133 (POLICY_DENIED) is a policy denial even without the name."""
        f = Flow(time_ns=T0, verdict=Verdict.DROPPED, source=Endpoint(ip="10.0.0.1"),
                 destination=Endpoint(ip="10.0.0.2", port=80), event_type=EventType.DROP, event_sub_type=133)
        assert classify(f) is FlowClass.POLICY_DENIED

    def test_drop_event_sub_type_181_is_a_policy_denial(self) -> None:
        """sub_type 181 (POLICY_DENY, an explicit deny rule) is a policy denial too."""
        f = Flow(time_ns=T0, verdict=Verdict.DROPPED, source=Endpoint(ip="10.0.0.1"),
                 destination=Endpoint(ip="10.0.0.2", port=80), event_type=EventType.DROP, event_sub_type=181)
        assert classify(f) is FlowClass.POLICY_DENIED

    def test_other_drop_sub_type_is_not(self) -> None:
        """A drop event with another sub_type (155 CT_MAP_INSERTION_FAILED) is not a policy denial."""
        f = Flow(time_ns=T0, verdict=Verdict.DROPPED, source=Endpoint(ip="10.0.0.1"),
                 destination=Endpoint(ip="10.0.0.2", port=80), event_type=EventType.DROP, event_sub_type=155)
        assert classify(f) is FlowClass.OTHER_DROP


class TestNamedProbePort:
    def test_named_probe_port_resolves_in_the_probes_own_container(self) -> None:
        """The kubelet resolves a probe's named port in the probe's container, not the pod's first match."""
        ports = (ContainerPort(9090, name="http", container="sidecar"), ContainerPort(8080, name="http",
                                                                                      container="app"))
        probe = Probe(ProbeKind.READINESS, "httpGet", "http", container="app")
        api = Pod("shop", "api-1", labels={"app": "api"}, ips=("10.0.0.2",), container_ports=ports,
                  probes=(probe,))
        assert probe_port(api, probe) == 8080


class TestDnsDeniedHint:
    def test_ingress_denial_at_the_dns_server_points_at_the_servers_policy(self) -> None:
        """A DNS packet dropped by kube-dns's ingress policy says to allow ingress there, not client egress."""
        dns_in = policy("dns-in", ns="kube-system", app="kube-dns", types=(PolicyDirection.INGRESS,),
                        ingress=())
        c = correlator(WEB, DNS, dns_in)
        found = c.process(drop(ep(WEB, 40000), ep(DNS, 53), direction=Direction.INGRESS, protocol=Protocol.UDP))
        [dns] = [f for f in found if f.kind is FindingKind.DNS_DENIED]
        assert dns.policies == ("kube-system/dns-in@1",)
        assert "allow ingress from shop/web" in dns.message
        assert "allow egress" not in dns.message

    def test_egress_denial_keeps_the_egress_hint(self) -> None:
        """A DNS packet dropped by the client's egress policy still says to allow egress to kube-dns."""
        c = correlator(WEB, DNS, DENY_EGRESS)
        found = c.process(drop(ep(WEB, 40000), ep(DNS, 53), direction=Direction.EGRESS, protocol=Protocol.UDP))
        [dns] = [f for f in found if f.kind is FindingKind.DNS_DENIED]
        assert "allow egress to kube-dns on UDP and TCP 53" in dns.message


class TestL7Responses:
    def test_dropped_l7_response_is_not_a_new_policy_decision(self) -> None:
        """An L7 response answers an admitted request: even marked DROPPED it is not judged as a denial."""
        dns = DNSInfo(query="a.example.", rcode=0, observation_source="proxy")
        response = L7Info(type=L7Type.RESPONSE, dns=dns)
        f = Flow(time_ns=T0, verdict=Verdict.DROPPED, source=ep(DNS, 53), destination=ep(WEB, 40000),
                 event_type=EventType.L7, flow_type=FlowType.L7, protocol=Protocol.UDP, l7=response)
        assert classify(f) is FlowClass.DNS_RESPONSE
        c = correlator(WEB, DNS, DENY_EGRESS)
        assert c.process(f) == []


class TestIngressIdentity:
    def test_cilium_ingress_identity_is_not_matched_by_an_ip_block(self) -> None:
        """reserved:ingress (Cilium's Envoy) has its own identity: an ipBlock over its IP does not admit it."""
        api = Pod("shop", "api-1", labels={"app": "api"}, ips=("10.0.0.2",), node_name="node-1")
        block = NetworkPolicy("shop", "from-internal", pod_selector=LabelSelector(match_labels={"app": "api"}),
                              ingress=(Rule(peers=(Peer(ip_block=IPBlock("10.0.0.0/8")),)),))
        c = correlator(api, block)
        envoy = Endpoint(ip="10.0.0.77", identity=8, labels=("reserved:ingress",))
        [finding] = c.process(drop(envoy, ep(api, 8080)))
        assert finding.kind is FindingKind.POLICY_DROP
        assert (finding.peer, finding.peer_workload) == ("10.0.0.77", "reserved:ingress")

    def test_rule_without_peers_still_admits_the_ingress_identity(self) -> None:
        """A rule without `from` admits every source, the ingress identity included."""
        api = Pod("shop", "api-1", labels={"app": "api"}, ips=("10.0.0.2",), node_name="node-1")
        open_rule = NetworkPolicy("shop", "open", pod_selector=LabelSelector(match_labels={"app": "api"}),
                                  ingress=(Rule(),))
        c = correlator(api, open_rule)
        envoy = Endpoint(ip="10.0.0.77", identity=8, labels=("reserved:ingress",))
        assert c.process(flow(envoy, ep(api, 8080), event=EventType.POLICY_VERDICT)) == []
