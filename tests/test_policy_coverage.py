"""Static coverage helpers: isolation, selected pods, allow-all rules, open ports."""

from __future__ import annotations

import pytest

from auditor.model.decision import ExternalSubject, PodSubject
from auditor.model.k8s import ContainerPort, Rule
from auditor.policy.coverage import allows_port, isolation, rule_admits_everyone, selected_pods
from tests.strategies import EGRESS, INGRESS, cidr, peer, pod, policy, port, rule, sel, state

API = pod("shop", "api", ports=(ContainerPort(8080, name="http"),), app="api")
WEB = pod("shop", "web", app="web")
AGENT = pod("shop", "agent", host_network=True, app="api")


class TestIsolation:
    def test_per_direction(self) -> None:
        """A pod is isolated per direction by the policies selecting it for that direction."""
        cluster = state(API, WEB, policy("shop", "in", sel(app="api"), ingress=[]),
                        policy("shop", "out", sel(app="web"), egress=[], types=[EGRESS]))
        assert isolation(cluster, API) == (True, False)
        assert isolation(cluster, WEB) == (False, True)

    def test_host_network_never_isolated(self) -> None:
        """hostNetwork pods are not subject to NetworkPolicy."""
        cluster = state(AGENT, policy("shop", "all", ingress=[], egress=[], types=[INGRESS, EGRESS]))
        assert isolation(cluster, AGENT) == (False, False)

    def test_selected_pods(self) -> None:
        """selected_pods lists the namespace's pod-network pods the podSelector matches."""
        pol = policy("shop", "in", sel(app="api"), ingress=[])
        cluster = state(API, WEB, AGENT, pod("other", "api", app="api"), pol)
        assert [p.key for p in selected_pods(cluster, pol)] == ["shop/api"]


class TestAllowAll:
    @pytest.mark.parametrize(("r", "expected"), [
        (rule(), True),
        (rule(peer(sel(), sel())), True),
        (rule(peer(None, sel())), True),
        (rule(cidr("0.0.0.0/0"), cidr("::/0")), True),
        (rule(cidr("0.0.0.0/0")), False),
        (rule(cidr("0.0.0.0/0", "10.0.0.0/8"), cidr("::/0")), False),
        (rule(peer(sel())), False),
        (rule(peer(sel(), sel(team="a"))), False),
        (rule(ports=[port(80)]), False),
    ], ids=["no-peers", "all-pods", "all-namespaces", "world", "v4-only", "world-except", "own-namespace",
            "some-namespaces", "with-ports"])
    def test_rule_admits_everyone(self, r: Rule, expected: bool) -> None:
        """Allow-all: no ports, and no peers or a peer covering every pod or the whole internet."""
        assert rule_admits_everyone(r, INGRESS) is expected


class TestAllowsPort:
    def test_unisolated_pod_allows_every_port(self) -> None:
        """With no policy selecting it, any port is open."""
        assert allows_port(state(API), API, INGRESS, 1234)

    def test_named_port_resolves_on_the_pod(self) -> None:
        """Ingress named ports resolve on the pod itself."""
        cluster = state(API, policy("shop", "in", sel(app="api"), ingress=[rule(peer(sel(app="web")),
                                                                                 ports=[port("http")])]))
        assert allows_port(cluster, API, INGRESS, 8080)
        assert not allows_port(cluster, API, INGRESS, 9090)

    def test_with_peer_uses_the_engine(self) -> None:
        """Given a peer, the answer is the engine's side verdict for that peer."""
        cluster = state(API, WEB, policy("shop", "in", sel(app="api"), ingress=[rule(peer(sel(app="web")))]))
        assert allows_port(cluster, API, INGRESS, 8080, peer=PodSubject(WEB))
        assert not allows_port(cluster, API, INGRESS, 8080, peer=ExternalSubject("1.2.3.4"))

    def test_egress_protocol_must_match(self) -> None:
        """An egress rule for 53/UDP does not open 53/TCP."""
        cluster = state(WEB, policy("shop", "out", sel(app="web"), egress=[rule(ports=[port(53, "UDP")])]))
        assert allows_port(cluster, WEB, EGRESS, 53, "UDP")
        assert not allows_port(cluster, WEB, EGRESS, 53, "TCP")
