"""The pure core never raises on odd flows: random endpoints, identities, IPs, ports, verdicts (synthetic)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.findings.correlate import Correlator
from auditor.findings.static import static_findings
from auditor.model.flows import (
    Direction,
    DNSInfo,
    Endpoint,
    Flow,
    FlowType,
    L7Info,
    L7Type,
    PolicyRef,
    Protocol,
    Verdict,
)
from auditor.model.k8s import IPBlock, KubeObject, NetworkPolicy, Peer, Pod, Rule
from auditor.policy.state import ClusterState
from tests.findings_support import (
    API_FROM_WEB,
    DENY_ALL_INGRESS,
    DNS,
    PROBED_API,
    WEB,
    correlator,
    from_app,
    inventory,
    policy,
)

_IPS = st.sampled_from(["", "10.0.0.1", "10.0.0.2", "10.0.1.53", "192.168.0.10", "::ffff:10.0.0.1",
                        "2001:db8::1", "not-an-ip", "0.0.0.0", "10.0.0.3"])
_LABELS = st.lists(st.sampled_from([
    "reserved:host", "reserved:world", "reserved:health", "reserved:remote-node", "reserved:kube-apiserver",
    "reserved:ingress", "reserved:init", "reserved:unmanaged", "k8s:app=web", "cidr:1.2.3.4/32", "fqdn:x.com",
]), max_size=3).map(tuple)
_ENDPOINTS = st.builds(
    Endpoint, ip=_IPS, port=st.integers(0, 70_000), identity=st.integers(0, 20),
    namespace=st.sampled_from(["", "shop", "kube-system", "ghost"]),
    pod_name=st.sampled_from(["", "web-1", "api-1", "coredns-1", "hostnet", "no-ip", "unknown"]),
    labels=_LABELS)
_L7 = st.none() | st.builds(
    L7Info, type=st.sampled_from(list(L7Type)),
    dns=st.none() | st.builds(DNSInfo, query=st.sampled_from(["", "a.example."]), rcode=st.integers(0, 6),
                              observation_source=st.sampled_from(["", "proxy", "other"])))
_REFS = st.lists(st.builds(PolicyRef, name=st.sampled_from(["api-from-web", "cnp"]),
                           namespace=st.sampled_from(["", "shop"]),
                           kind=st.sampled_from(["", "CiliumNetworkPolicy"])), max_size=2).map(tuple)
_FLOWS = st.builds(
    Flow, time_ns=st.integers(-10**18, 2 * 10**18), verdict=st.sampled_from(list(Verdict)), source=_ENDPOINTS,
    destination=_ENDPOINTS, node_name=st.sampled_from(["", "node-1", "cluster/node-1", "elsewhere"]),
    drop_reason=st.sampled_from(["", "POLICY_DENIED", "POLICY_DENY", "CT_MAP_INSERTION_FAILED"]),
    event_type=st.sampled_from([0, 1, 4, 5, 7, 129]), event_sub_type=st.integers(0, 200),
    flow_type=st.sampled_from(list(FlowType)), direction=st.sampled_from(list(Direction)),
    is_reply=st.none() | st.booleans(), protocol=st.sampled_from(list(Protocol)), l7=_L7,
    trace_observation_point=st.sampled_from(["", "TO_ENDPOINT", "TO_STACK"]),
    tcp_flags=st.frozensets(st.sampled_from(["SYN", "ACK", "RST"])),
    trace_reason=st.sampled_from(["", "NEW", "REPLY"]), ingress_allowed_by=_REFS, egress_denied_by=_REFS)

_ODD: tuple[KubeObject, ...] = (
    Pod("shop", "no-ip", labels={"app": "api"}),
    Pod("shop", "hostnet", labels={"app": "web"}, ips=("192.168.0.10",), host_network=True, node_name="node-1",
        host_ip="192.168.0.10"),
    Pod("ghost", "orphan", labels={"app": "web"}, ips=("10.9.9.9", "fd00::9")),
    NetworkPolicy("nowhere", "mapped", ingress=(Rule(peers=(Peer(ip_block=IPBlock("::ffff:10.0.0.0/104")),)),)),
    policy("web-out", app="web", egress=(from_app("api", "http"),)),
)


def _correlator() -> Correlator:
    return correlator(WEB, PROBED_API, DNS, API_FROM_WEB, DENY_ALL_INGRESS, *_ODD)


class TestNeverRaises:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(_FLOWS, max_size=4))
    def test_correlator_survives_odd_flows(self, flows: list[Flow]) -> None:
        """Any mix of endpoints, identities, IPs, ports and verdicts gives findings or nothing, never raises."""
        c = _correlator()
        for flow in flows:
            for finding in c.process(flow):
                assert finding.count == 1
        assert c.stats.judged <= len(flows)

    def test_static_findings_survive_odd_inventory(self) -> None:
        """Pods without IPs, hostNetwork pods, unknown namespaces and odd policies give findings, not errors."""
        found = static_findings(ClusterState.build(inventory(WEB, PROBED_API, DNS, *_ODD)))
        assert found
