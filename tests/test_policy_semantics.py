"""networking.k8s.io/v1 semantics, one rule per test: selectors, peers, ipBlocks, ports, policyTypes, sides."""

from __future__ import annotations

import pytest

from auditor.model.decision import Enforcement, ExternalSubject, NodeSubject, PodSubject
from auditor.model.k8s import (
    ContainerPort,
    IPBlock,
    KubeObject,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    Rule,
)
from auditor.policy.engine import PolicyEngine
from auditor.policy.selectors import ip_in_block, selector_matches
from auditor.policy.state import ClusterState
from tests.strategies import (
    EGRESS,
    INGRESS,
    cidr,
    decide,
    expr,
    node,
    ns,
    peer,
    pod,
    policy,
    port,
    rule,
    sel,
    state,
)

LABELS = {"app": "web", "tier": "front"}


class TestSelectors:
    @pytest.mark.parametrize(("selector", "expected"), [
        (LabelSelector(), True),
        (sel(app="web"), True),
        (sel(app="api"), False),
        (sel(app="web", tier="back"), False),
        (sel(expr("app", "In", "api", "web")), True),
        (sel(expr("app", "In", "api")), False),
        (sel(expr("app", "NotIn", "api")), True),
        (sel(expr("app", "NotIn", "web")), False),
        (sel(expr("missing", "NotIn", "x")), True),
        (sel(expr("missing", "In", "x")), False),
        (sel(expr("tier", "Exists")), True),
        (sel(expr("missing", "Exists")), False),
        (sel(expr("missing", "DoesNotExist")), True),
        (sel(expr("tier", "DoesNotExist")), False),
        (sel(expr("tier", "Exists"), app="web"), True),
        (sel(expr("tier", "Exists"), app="api"), False),
    ], ids=lambda v: repr(v) if isinstance(v, bool) else None)
    def test_match(self, selector: LabelSelector, expected: bool) -> None:
        """matchLabels and matchExpressions are ANDed; NotIn matches a missing key; empty matches all."""
        assert selector_matches(selector, LABELS) is expected


class TestPeers:
    def setup_method(self) -> None:
        self.objects: list[KubeObject] = [ns("shop", team="a"), ns("ops", team="b"),
                        pod("shop", "api", app="api"), pod("shop", "web", app="web"),
                        pod("ops", "web", app="web"), pod("ops", "mon", app="mon")]

    def _allowed(self, *peers_: Peer, src: str) -> bool:
        pol = policy("shop", "p", sel(app="api"), ingress=[rule(*peers_)])
        return decide(state(*self.objects, pol), src, "shop/api").allowed

    def test_pod_selector_alone_is_own_namespace(self) -> None:
        """A podSelector-only peer selects pods of the policy's namespace only."""
        assert self._allowed(peer(sel(app="web")), src="shop/web")
        assert not self._allowed(peer(sel(app="web")), src="ops/web")

    def test_namespace_selector_alone_is_every_pod_there(self) -> None:
        """A namespaceSelector-only peer admits every pod of matching namespaces."""
        assert self._allowed(peer(None, sel(team="b")), src="ops/mon")
        assert not self._allowed(peer(None, sel(team="b")), src="shop/web")

    def test_both_selectors_are_anded(self) -> None:
        """podSelector and namespaceSelector in one peer must both match."""
        assert self._allowed(peer(sel(app="web"), sel(team="b")), src="ops/web")
        assert not self._allowed(peer(sel(app="web"), sel(team="b")), src="ops/mon")
        assert not self._allowed(peer(sel(app="web"), sel(team="b")), src="shop/web")

    def test_separate_peers_are_ored(self) -> None:
        """Two peers in one rule admit the union."""
        peers_ = (peer(sel(app="web")), peer(None, sel(team="b")))
        assert self._allowed(*peers_, src="shop/web")
        assert self._allowed(*peers_, src="ops/mon")

    def test_empty_namespace_selector_is_all_namespaces(self) -> None:
        """namespaceSelector {} with a podSelector selects those pods in every namespace."""
        assert self._allowed(peer(sel(app="web"), sel()), src="ops/web")

    def test_metadata_name_label_is_implicit(self) -> None:
        """kubernetes.io/metadata.name matches even when the Namespace object lacks it (API server sets it)."""
        from auditor.model.k8s import Namespace
        self.objects[1] = Namespace("ops")
        assert self._allowed(peer(None, sel(**{"kubernetes.io/metadata.name": "ops"})), src="ops/mon")

    def test_rule_without_peers_admits_everyone(self) -> None:
        """A rule with no from admits every pod and every external address."""
        pol = policy("shop", "p", sel(app="api"), ingress=[rule(ports=[port(80)])])
        cluster = state(*self.objects, pol)
        assert decide(cluster, "ops/mon", "shop/api").allowed
        assert decide(cluster, "ip:203.0.113.9", "shop/api").allowed


class TestIpBlock:
    @pytest.mark.parametrize(("ip", "block", "expected"), [
        ("10.1.2.3", IPBlock("10.0.0.0/8"), True),
        ("11.1.2.3", IPBlock("10.0.0.0/8"), False),
        ("10.1.2.3", IPBlock("10.0.0.0/8", ("10.1.0.0/16",)), False),
        ("10.2.2.3", IPBlock("10.0.0.0/8", ("10.1.0.0/16",)), True),
        ("2001:db8::1", IPBlock("2001:db8::/32"), True),
        ("2001:db8:1::1", IPBlock("2001:db8::/32", ("2001:db8:1::/48",)), False),
        ("10.1.2.3", IPBlock("::/0"), False),
        ("2001:db8::1", IPBlock("0.0.0.0/0"), False),
        ("not-an-ip", IPBlock("0.0.0.0/0"), False),
    ])
    def test_membership(self, ip: str, block: IPBlock, expected: bool) -> None:
        """cidr minus except ranges, per address family."""
        assert ip_in_block(ip, block) is expected

    def _cluster(self) -> ClusterState:
        return state(pod("shop", "api", ip="10.0.0.5", app="api"), pod("shop", "web", ip="10.0.0.6", app="web"),
                     node("node-2", "192.168.0.2"),
                     policy("shop", "p", sel(app="api"), ingress=[rule(cidr("0.0.0.0/0"))],
                            egress=[rule(cidr("0.0.0.0/0", "10.0.0.0/8"))]))

    def test_external_address_matches(self) -> None:
        """An external source inside the ipBlock is admitted."""
        assert decide(self._cluster(), "ip:198.51.100.1", "shop/api").allowed

    def test_pod_ip_never_matches(self) -> None:
        """Cilium does not match pod IPs against ipBlock: a pod inside 0.0.0.0/0 is still denied."""
        d = decide(self._cluster(), "shop/web", "shop/api")
        assert not d.allowed
        assert d.ingress.closest_miss is not None
        assert "ipBlock peers never match pod IPs" in d.ingress.closest_miss.message

    def test_node_ip_not_matched_by_default(self) -> None:
        """A remote node is not matched by ipBlock unless cidr_match_nodes (policy-cidr-match-mode=nodes)."""
        cluster = self._cluster()
        src = NodeSubject("node-2", "192.168.0.2")
        api = cluster.pod("shop", "api")
        assert api is not None
        assert not PolicyEngine().decide(cluster, src, PodSubject(api), 80).allowed
        assert PolicyEngine(cidr_match_nodes=True).decide(cluster, src, PodSubject(api), 80).allowed

    def test_egress_except_excludes(self) -> None:
        """Egress to an address in an except range is denied, outside it allowed."""
        cluster = self._cluster()
        assert decide(cluster, "shop/api", "ip:8.8.8.8").allowed
        assert not decide(cluster, "shop/api", "ip:10.9.9.9").allowed


HTTP_8080 = (ContainerPort(8080, name="http"), ContainerPort(53, "UDP", name="dns"))
HTTP_9090 = (ContainerPort(9090, name="http"),)


class TestPorts:
    def _cluster(self, *rules_: Rule, direction: str = "ingress") -> ClusterState:
        pods = [pod("shop", "api", ports=HTTP_8080, app="api"), pod("shop", "api2", ports=HTTP_9090, app="api"),
                pod("shop", "client", app="client")]
        if direction == "ingress":
            pol = policy("shop", "p", sel(app="api"), ingress=list(rules_))
        else:
            pol = policy("shop", "p", sel(app="client"), egress=list(rules_))
        return state(*pods, pol)

    @pytest.mark.parametrize(("ports", "number", "protocol", "expected"), [
        ([port(8080)], 8080, "TCP", True),
        ([port(8080)], 8081, "TCP", False),
        ([port(8080)], 8080, "UDP", False),
        ([port(53, "UDP")], 53, "UDP", True),
        ([port(5000, "SCTP")], 5000, "SCTP", True),
        ([port(8000, end=8100)], 8000, "TCP", True),
        ([port(8000, end=8100)], 8100, "TCP", True),
        ([port(8000, end=8100)], 8101, "TCP", False),
        ([port(None, "UDP")], 12345, "UDP", True),
        ([port(None, "UDP")], 12345, "TCP", False),
        ([], 1, "SCTP", True),
        ([port("http")], 8080, "TCP", True),
        ([port("http")], 9090, "TCP", False),
        ([port("dns", "UDP")], 53, "UDP", True),
        ([port("dns")], 53, "UDP", False),
    ])
    def test_ingress_port(self, ports: list[PolicyPort], number: int, protocol: str, expected: bool) -> None:
        """Numeric, ranges, protocol-only, no ports, and named ports resolved on the destination pod."""
        cluster = self._cluster(rule(ports=ports))
        assert decide(cluster, "shop/client", "shop/api", number, protocol).allowed is expected

    def test_named_port_resolves_per_pod(self) -> None:
        """One named port means 8080 on one pod and 9090 on another selected pod."""
        cluster = self._cluster(rule(ports=[port("http")]))
        assert decide(cluster, "shop/client", "shop/api2", 9090).allowed
        assert not decide(cluster, "shop/client", "shop/api2", 8080).allowed

    def test_egress_named_port_resolves_on_destination(self) -> None:
        """Egress named ports resolve against the destination pod's container ports."""
        cluster = self._cluster(rule(ports=[port("http")]), direction="egress")
        assert decide(cluster, "shop/client", "shop/api", 8080).allowed
        assert decide(cluster, "shop/client", "shop/api2", 9090).allowed
        assert not decide(cluster, "shop/client", "shop/api2", 8080).allowed

    def test_egress_named_port_to_external_never_matches(self) -> None:
        """A named port cannot resolve on an external destination."""
        cluster = self._cluster(rule(ports=[port("http")]), direction="egress")
        assert not decide(cluster, "shop/client", "ip:203.0.113.1", 8080).allowed


class TestPolicyTypes:
    def _isolation(self, pol: NetworkPolicy) -> tuple[bool, bool]:
        from auditor.policy.coverage import isolation
        cluster = state(pod("shop", "api", app="api"), pol)
        api = cluster.pod("shop", "api")
        assert api is not None
        return isolation(cluster, api)

    @pytest.mark.parametrize(("pol", "expected"), [
        (policy("shop", "p"), (True, False)),
        (policy("shop", "p", ingress=[rule()]), (True, False)),
        (policy("shop", "p", egress=[rule()]), (True, True)),
        (policy("shop", "p", egress=[]), (True, False)),
        (policy("shop", "p", egress=[], types=[EGRESS]), (False, True)),
        (policy("shop", "p", ingress=[rule()], types=[EGRESS]), (False, True)),
        (policy("shop", "p", types=[INGRESS, EGRESS]), (True, True)),
    ], ids=["bare", "ingress-rules", "egress-rules", "egress-empty-list", "egress-type", "types-win", "both"])
    def test_defaulting(self, pol: NetworkPolicy, expected: tuple[bool, bool]) -> None:
        """Ingress always when policyTypes is empty; Egress only when egress has rules (len != 0, upstream)."""
        assert self._isolation(pol) == expected

    def test_empty_ingress_allows_nothing(self) -> None:
        """ingress: [] isolates and admits nothing."""
        cluster = state(pod("shop", "api", app="api"), pod("shop", "web"), policy("shop", "p", ingress=[]))
        d = decide(cluster, "shop/web", "shop/api")
        assert (d.allowed, d.ingress.isolated, d.ingress.closest_miss) == (False, True, None)

    def test_policies_are_additive(self) -> None:
        """A second policy's rule admits what the first does not; allowed_by lists every admitting rule."""
        cluster = state(pod("shop", "api", app="api"), pod("shop", "web", app="web"),
                        policy("shop", "a", sel(app="api"),
                               ingress=[rule(peer(sel(app="web")), ports=[port(80)])]),
                        policy("shop", "b", sel(), ingress=[rule(peer(sel(app="web"))), rule()]))
        d = decide(cluster, "shop/web", "shop/api")
        assert [(m.policy.name, m.rule_index, m.peer_index) for m in d.ingress.allowed_by] == [
            ("a", 0, 0), ("b", 0, 0), ("b", 1, None)]
        assert [p.name for p in d.ingress.selecting] == ["a", "b"]


class TestSides:
    def test_both_sides_must_allow(self) -> None:
        """Ingress allows but the source's egress denies: the connection is denied by egress."""
        cluster = state(pod("shop", "api", app="api"), pod("shop", "web", app="web"),
                        policy("shop", "web-out", sel(app="web"), egress=[], types=[EGRESS]))
        d = decide(cluster, "shop/web", "shop/api")
        assert (d.allowed, d.egress.allowed, d.ingress.allowed) == (False, False, True)
        assert [p.name for p in d.egress.isolated_by] == ["web-out"]

    def test_external_sides_are_not_evaluated(self) -> None:
        """An external source has no egress side: NOT_A_POD, allowed."""
        cluster = state(pod("shop", "api", app="api"))
        d = decide(cluster, "ip:203.0.113.1", "shop/api")
        assert d.egress.enforcement is Enforcement.NOT_A_POD
        assert d.allowed

    def test_host_network_pod_not_subject(self) -> None:
        """A hostNetwork pod is not subject to NetworkPolicy (and is never selected as a pod peer)."""
        cluster = state(pod("kube-system", "agent", host_network=True, app="agent"),
                        policy("kube-system", "deny", ingress=[], egress=[], types=[INGRESS, EGRESS]))
        d = decide(cluster, "ip:203.0.113.1", "kube-system/agent")
        assert d.ingress.enforcement is Enforcement.HOST_NETWORK
        assert d.allowed

    def test_pod_to_itself_is_allowed(self) -> None:
        """A pod cannot block access to itself (kubernetes.io NetworkPolicy docs): SELF on both sides."""
        cluster = state(pod("shop", "api", app="api"),
                        policy("shop", "deny", ingress=[], egress=[], types=[INGRESS, EGRESS]))
        d = decide(cluster, "shop/api", "shop/api")
        assert d.allowed
        assert d.ingress.enforcement is Enforcement.SELF

    def test_own_node_traffic_allowed_unless_enforced(self) -> None:
        """The pod's own node reaches it through deny-all, unless enforce_node_traffic is set."""
        cluster = state(pod("shop", "api", node="node-1", app="api"), node("node-1", "192.168.0.1"),
                        policy("shop", "deny", ingress=[]))
        api = cluster.pod("shop", "api")
        assert api is not None
        src = NodeSubject("node-1", "192.168.0.1")
        d = PolicyEngine().decide(cluster, src, PodSubject(api), 8080)
        assert (d.allowed, d.ingress.enforcement) == (True, Enforcement.NODE_TRAFFIC)
        assert not PolicyEngine(enforce_node_traffic=True).decide(cluster, src, PodSubject(api), 8080).allowed

    def test_remote_node_is_subject_to_policy(self) -> None:
        """Another node is not exempt: deny-all ingress denies it."""
        cluster = state(pod("shop", "api", node="node-1", app="api"), policy("shop", "deny", ingress=[]))
        api = cluster.pod("shop", "api")
        assert api is not None
        assert not PolicyEngine().decide(cluster, NodeSubject("node-2"), PodSubject(api), 80).allowed

    def test_egress_to_own_node_is_policed(self) -> None:
        """Egress to the pod's own node is judged by its egress policies (Cilium's host identity)."""
        cluster = state(pod("shop", "api", node="node-1", app="api"),
                        policy("shop", "deny", egress=[], types=[EGRESS]),
                        policy("shop", "kubelet", sel(app="kubelet-client"),
                               egress=[rule(ports=[port(10250)])]))
        api = cluster.pod("shop", "api")
        assert api is not None
        d = PolicyEngine().decide(cluster, PodSubject(api), NodeSubject("node-1"), 10250)
        assert (d.allowed, d.egress.enforcement) == (False, Enforcement.ENFORCED)

    def test_egress_rule_without_peers_reaches_nodes(self) -> None:
        """A rule without `to` admits nodes too."""
        cluster = state(pod("shop", "api", node="node-1", app="api"),
                        policy("shop", "out", egress=[rule(ports=[port(10250)])], types=[EGRESS]))
        api = cluster.pod("shop", "api")
        assert api is not None
        assert PolicyEngine().decide(cluster, PodSubject(api), NodeSubject("node-1"), 10250).allowed

    def test_policy_revision(self) -> None:
        """PolicyId.revision is resourceVersion when set, else generation."""
        from dataclasses import replace
        with_rv = policy("shop", "a", ingress=[], rv="42")
        with_gen = replace(policy("shop", "b", ingress=[]), generation=3)
        cluster = state(pod("shop", "api"), pod("shop", "web"), with_rv, with_gen)
        d = decide(cluster, "shop/web", "shop/api")
        assert [str(p) for p in d.ingress.isolated_by] == ["shop/a@42", "shop/b@3"]


class TestClosestMiss:
    def _cluster(self) -> ClusterState:
        return state(ns("shop"), pod("shop", "api", app="api"), pod("shop", "worker", app="worker"),
                     pod("shop", "web", app="web"),
                     policy("shop", "api-from-web", sel(app="api"),
                            ingress=[rule(peer(sel(app="web")), ports=[port(8080)])]),
                     policy("shop", "api-metrics", sel(app="api"),
                            ingress=[rule(peer(sel(app="prometheus"), sel(team="ops")), ports=[port(9090)])]))

    def test_wrong_peer(self) -> None:
        """The message names the rule, what it allows and what the source has."""
        d = decide(self._cluster(), "shop/worker", "shop/api", 8080)
        miss = d.ingress.closest_miss
        assert miss is not None
        assert miss.message == ("rule 0 of shop/api-from-web allows app=web on 8080; "
                                "the source has app=worker")
        assert (miss.policy.name, miss.rule_index) == ("api-from-web", 0)

    def test_rule_with_matching_port_preferred(self) -> None:
        """On 9090 the metrics rule (port matched) is the closest miss, naming namespace and labels."""
        d = decide(self._cluster(), "shop/web", "shop/api", 9090)
        miss = d.ingress.closest_miss
        assert miss is not None
        assert miss.policy.name == "api-metrics"
        assert "the source has app=web and is in namespace shop (no team label)" in miss.message

    def test_wrong_port(self) -> None:
        """Right peer, wrong port: the message says which port was used."""
        d = decide(self._cluster(), "shop/web", "shop/api", 8081)
        assert d.ingress.closest_miss is not None
        assert d.ingress.closest_miss.message.endswith("the connection is to port 8081")

    def test_wrong_protocol(self) -> None:
        """Right peer and port number, wrong protocol."""
        d = decide(self._cluster(), "shop/web", "shop/api", 8080, "UDP")
        assert d.ingress.closest_miss is not None
        assert d.ingress.closest_miss.message.endswith("the connection is UDP")

    def test_external_source(self) -> None:
        """An external source is described by its address."""
        d = decide(self._cluster(), "ip:198.51.100.7", "shop/api", 8080)
        assert d.ingress.closest_miss is not None
        assert "the source is 198.51.100.7" in d.ingress.closest_miss.message

    def test_external_destination_against_selector_rule(self) -> None:
        """An external address missing a selector-only rule is explained as outside the cluster."""
        cluster = state(pod("shop", "web", app="web"),
                        policy("shop", "web-out", sel(app="web"), egress=[rule(peer(sel(app="api")))]))
        d = decide(cluster, "shop/web", "ip:8.8.8.8", 443)
        assert d.egress.closest_miss is not None
        assert d.egress.closest_miss.message.endswith(
            "the destination is 8.8.8.8, outside the cluster, which pod and namespace selectors never match")

    def test_egress_names_the_destination(self) -> None:
        """For egress the other side is called the destination."""
        cluster = state(pod("shop", "web", app="web"), pod("shop", "db", app="db"),
                        policy("shop", "web-out", sel(app="web"), egress=[rule(peer(sel(app="api")))]))
        d = decide(cluster, "shop/web", "shop/db")
        assert d.egress.closest_miss is not None
        assert d.egress.closest_miss.message == ("rule 0 of shop/web-out allows app=api on any port; "
                                                 "the destination has app=db")

    def test_external_subject_uses_ip(self) -> None:
        """ExternalSubject decisions work without any pod IP lookups."""
        cluster = state(pod("shop", "web", app="web"),
                        policy("shop", "web-out", sel(app="web"), egress=[rule(cidr("203.0.113.0/24"))]))
        web = cluster.pod("shop", "web")
        assert web is not None
        d = PolicyEngine().decide(cluster, PodSubject(web), ExternalSubject("203.0.113.200"), 443)
        assert d.allowed
        assert d.egress.allowed_by[0].peer_index == 0
