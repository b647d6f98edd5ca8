"""The upstream e2e "Netpol" truth tables (kubernetes/kubernetes test/e2e/network/netpol).

Namespaces x, y, z each hold pods a, b, c (label pod=<name>, container ports serve-80-tcp etc.);
each scenario creates the same policies as the upstream test and checks all 81 pairs against
the expected reachability matrix.  As upstream (ignoreLoopback), pod-to-itself pairs are not
compared.  Policies are built with the same helpers' semantics: SetSpecIngressRules/
SetSpecEgressRules set the rules list (possibly empty) and add the policy type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from auditor.model.decision import PodSubject
from auditor.model.k8s import KubeObject, Namespace, NetworkPolicy, Pod
from auditor.policy.engine import PolicyEngine
from tests.strategies import (
    EGRESS,
    INGRESS,
    cidr,
    e2e_names,
    e2e_objects,
    expr,
    peer,
    policy,
    port,
    rule,
    sel,
    state,
)

NS_KEY = "kubernetes.io/metadata.name"


class Reachability:
    """Expected connectivity, all allowed by default, edited like upstream's Reachability."""

    def __init__(self) -> None:
        self.names = e2e_names()
        self.matrix = {(s, d): True for s in self.names for d in self.names}

    def peer(self, src: str, dst: str, value: bool) -> Reachability:
        """src/dst: "" (any pod), "x" (namespace) or "x/a" (pod)."""
        for s, d in self.matrix:
            if _covers(src, s) and _covers(dst, d):
                self.matrix[(s, d)] = value
        return self


def _covers(pattern: str, name: str) -> bool:
    return pattern == "" or pattern == name or (("/" not in pattern) and name.startswith(pattern + "/"))


def ingress_policy(name: str, target: dict[str, str], *rules_: object, namespace: str = "x") -> NetworkPolicy:
    return policy(namespace, name, sel(**target), ingress=list(rules_), types=[INGRESS])  # type: ignore[arg-type]


def egress_policy(name: str, target: dict[str, str], *rules_: object, namespace: str = "x") -> NetworkPolicy:
    return policy(namespace, name, sel(**target), egress=list(rules_), types=[EGRESS])  # type: ignore[arg-type]


@dataclass(frozen=True)
class Scenario:
    name: str
    policies: list[NetworkPolicy]
    expect: Callable[[Reachability], Reachability]
    port: int = 80
    protocol: str = "TCP"
    edit: Callable[[list[KubeObject]], list[KubeObject]] = field(default=lambda objs: objs)


def _relabel_pod(namespace: str, name: str, **labels: str) -> Callable[[list[KubeObject]], list[KubeObject]]:
    def edit(objs: list[KubeObject]) -> list[KubeObject]:
        return [replace(o, labels={**o.labels, **labels})
                if isinstance(o, Pod) and o.namespace == namespace and o.name == name else o for o in objs]
    return edit


def _relabel_ns(name: str, **labels: str) -> Callable[[list[KubeObject]], list[KubeObject]]:
    def edit(objs: list[KubeObject]) -> list[KubeObject]:
        return [replace(o, labels={**o.labels, **labels}) if isinstance(o, Namespace) and o.name == name else o
                for o in objs]
    return edit


FROM_XA = rule(peer(sel(pod="a"), sel(**{NS_KEY: "x"})))
NOT_X = sel(expr(NS_KEY, "NotIn", "x"))
NS_Y = sel(**{NS_KEY: "y"})
DENY_ALL_X = policy("x", "deny-all", sel(), ingress=[], egress=[], types=[INGRESS, EGRESS])

SCENARIOS = [
    Scenario("default-deny-ingress", [ingress_policy("deny-ingress", {})],
             lambda r: r.peer("", "x", False)),
    Scenario("default-deny-all", [DENY_ALL_X],
             lambda r: r.peer("", "x", False).peer("x", "", False)),
    Scenario("allow from pods within server namespace by podSelector",
             [ingress_policy("x-a-allows-x-b", {"pod": "a"}, rule(peer(sel(pod="b"))))],
             lambda r: r.peer("", "x/a", False).peer("x/b", "x/a", True)),
    Scenario("allow ingress for a target over a deny-all",
             [ingress_policy("deny-all", {}),
              ingress_policy("allow-all-to-a", {"pod": "a"}, rule(peer(sel(), sel())))],
             lambda r: r.peer("", "x/b", False).peer("", "x/c", False)),
    Scenario("allow from pods in all namespaces",
             [ingress_policy("allow-from-another-ns", {"pod": "a"}, rule(peer(None, sel())))],
             lambda r: r),
    Scenario("only from a different namespace by namespaceSelector",
             [ingress_policy("allow-client-a-via-ns-selector", {"pod": "a"}, rule(peer(None, NS_Y)))],
             lambda r: r.peer("x", "x/a", False).peer("z", "x/a", False)),
    Scenario("namespaceSelector with matchExpressions",
             [ingress_policy("allow-ns-y-match-selector", {"pod": "a"},
                             rule(peer(None, sel(expr(NS_KEY, "In", "y")))))],
             lambda r: r.peer("x", "x/a", False).peer("z", "x/a", False)),
    Scenario("podSelector OR namespaceSelector",
             [ingress_policy("allow-ns-y-match-selector", {"pod": "a"},
                             rule(peer(None, NOT_X), peer(sel(pod="b"))))],
             lambda r: r.peer("x/a", "x/a", False).peer("x/c", "x/a", False)),
    Scenario("podSelector AND namespaceSelector",
             [ingress_policy("allow-ns-y-podselector-and-nsselector", {"pod": "a"},
                             rule(peer(sel(pod="b"), NOT_X)))],
             lambda r: r.peer("", "x/a", False).peer("y/b", "x/a", True).peer("z/b", "x/a", True)),
    Scenario("multiple podSelectors and namespaceSelectors",
             [ingress_policy("allow-ns-y-z-pod-b-c", {"pod": "a"},
                             rule(peer(sel(expr("pod", "In", "b", "c")), NOT_X)))],
             lambda r: r.peer("x", "x/a", False).peer("y/a", "x/a", False).peer("z/a", "x/a", False)),
    Scenario("any of several podSelectors",
             [ingress_policy("allow-ns-x-pod-b-c", {"pod": "a"}, rule(peer(sel(pod="b")), peer(sel(pod="c"))))],
             lambda r: r.peer("", "x/a", False).peer("x/b", "x/a", True).peer("x/c", "x/a", True)),
    Scenario("ports: namespace y on 81, probed on 81",
             [ingress_policy("allow-81", {"pod": "a"}, rule(peer(None, NS_Y), ports=[port(81)]))],
             lambda r: r.peer("x", "x/a", False).peer("z", "x/a", False), port=81),
    Scenario("ports: namespace y on 81, probed on 80",
             [ingress_policy("allow-81", {"pod": "a"}, rule(peer(None, NS_Y), ports=[port(81)]))],
             lambda r: r.peer("", "x/a", False)),
    Scenario("stacked policies: 81 and 80 both open to y",
             [ingress_policy("allow-81", {"pod": "a"}, rule(peer(None, NS_Y), ports=[port(81)])),
              ingress_policy("allow-80", {"pod": "a"}, rule(peer(None, NS_Y), ports=[port(80)]))],
             lambda r: r.peer("x", "x/a", False).peer("z", "x/a", False)),
    Scenario("allow-all policy", [ingress_policy("allow-all", {}, rule())], lambda r: r, port=81),
    Scenario("ingress on one named port, probed on the named port",
             [ingress_policy("allow-all", {}, rule(ports=[port("serve-81-tcp")]))], lambda r: r, port=81),
    Scenario("ingress on one named port, probed elsewhere",
             [ingress_policy("allow-all", {}, rule(ports=[port("serve-81-tcp")]))],
             lambda r: r.peer("", "x", False)),
    Scenario("ingress from namespace on one named port, probed on 81",
             [ingress_policy("allow-80", {"pod": "a"}, rule(peer(None, NS_Y), ports=[port("serve-80-tcp")]))],
             lambda r: r.peer("", "x/a", False), port=81),
    Scenario("egress on one named port, probed on 80",
             [egress_policy("allow-egress", {}, rule(ports=[port("serve-80-tcp")]))], lambda r: r),
    Scenario("egress on one named port, probed on 81",
             [egress_policy("allow-egress", {}, rule(ports=[port("serve-80-tcp")]))],
             lambda r: r.peer("x", "", False), port=81),
    Scenario("ingress from an updated namespace",
             [ingress_policy("allow-client-a-via-ns-selector", {"pod": "a"},
                             rule(peer(None, sel(ns2="updated"))))],
             lambda r: r.peer("", "x/a", False).peer("y", "x/a", True), edit=_relabel_ns("y", ns2="updated")),
    Scenario("ingress from an updated pod",
             [ingress_policy("allow-client-a-via-pod-selector", {"pod": "a"},
                             rule(peer(sel(pod="b", pod2="updated"))))],
             lambda r: r.peer("", "x/a", False).peer("x/b", "x/a", True),
             edit=_relabel_pod("x", "b", pod2="updated")),
    Scenario("deny ingress from pods in other namespaces",
             [ingress_policy("deny-empty-policy", {}, rule(peer(sel())))],
             lambda r: r.peer("y", "x", False).peer("z", "x", False)),
    Scenario("deny ingress to an updated pod",
             [ingress_policy("deny-ingress-via-label-selector", {"target": "isolated"})],
             lambda r: r.peer("", "x/a", False), edit=_relabel_pod("x", "a", target="isolated")),
    Scenario("deny egress from pod a", [egress_policy("deny-egress-pod-a", {"pod": "a"})],
             lambda r: r.peer("x/a", "", False)),
    Scenario("deny egress from a namespace", [egress_policy("deny-egress-ns-x", {})],
             lambda r: r.peer("x", "", False)),
    Scenario("ingress and egress together, probed on 81",
             [policy("x", "allow-client-a-via-pod-selector", sel(pod="a"), ingress=[rule(peer(sel(pod="b")))],
                     egress=[rule(ports=[port(80)])], types=[EGRESS, INGRESS])],
             lambda r: r.peer("", "x/a", False).peer("x/a", "", False).peer("x/b", "x/a", True), port=81),
    Scenario("egress denied on the client even though the server allows",
             [egress_policy("allow-to-ns-y-pod-a", {"pod": "a"}, rule(peer(sel(pod="a"), NS_Y))),
              ingress_policy("allow-from-xa-on-ya", {"pod": "a"}, FROM_XA,
                             namespace="y"),
              ingress_policy("allow-from-xa-on-yb", {"pod": "b"}, FROM_XA,
                             namespace="y")],
             lambda r: r.peer("x/a", "", False).peer("", "y/a", False).peer("x/a", "y/a", True)
             .peer("", "y/b", False)),
    Scenario("egress to a server in another namespace by pod and namespace selector",
             [egress_policy("allow-to-ns-y-pod-a", {"pod": "a"}, rule(peer(sel(pod="a"), NS_Y)))],
             lambda r: r.peer("x/a", "", False).peer("x/a", "y/a", True)),
    Scenario("ingress on a protocol, probed with UDP",
             [ingress_policy("allow-ingress-by-proto", {"pod": "a"}, rule(ports=[port(None, "TCP")]))],
             lambda r: r.peer("", "x/a", False), protocol="UDP"),
    Scenario("ingress on a protocol, probed with TCP",
             [ingress_policy("allow-ingress-by-proto", {"pod": "a"}, rule(ports=[port(None, "TCP")]))],
             lambda r: r),
    Scenario("ingress allow-all takes precedence over a port-80 policy",
             [ingress_policy("allow-ingress-port-80", {}, rule(ports=[port(80)])),
              ingress_policy("allow-ingress", {}, rule())], lambda r: r, port=81),
    Scenario("egress allow-all takes precedence over a port-80 policy",
             [egress_policy("allow-egress-port-80", {}, rule(ports=[port(80)])),
              egress_policy("allow-egress", {}, rule())], lambda r: r, port=81),
    Scenario("endPort range 80-81 from y, probed on 81",
             [ingress_policy("allow-range", {"pod": "a"}, rule(peer(None, NS_Y), ports=[port(80, end=81)]))],
             lambda r: r.peer("x", "x/a", False).peer("z", "x/a", False), port=81),
    Scenario("ipBlock covering the pod network does not admit pods (Cilium)",
             [ingress_policy("allow-cidr", {"pod": "a"}, rule(cidr("10.0.0.0/8")))],
             lambda r: r.peer("", "x/a", False)),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_truth_table(scenario: Scenario) -> None:
    """The engine reproduces the upstream expected reachability matrix (loopback ignored)."""
    cluster = state(*scenario.edit(e2e_objects()), *scenario.policies)
    engine = PolicyEngine()
    expected = scenario.expect(Reachability()).matrix
    wrong = []
    for (src, dst), allowed in expected.items():
        if src == dst:
            continue
        s_ns, s_pod = src.split("/")
        d_ns, d_pod = dst.split("/")
        source = cluster.pod(s_ns, s_pod)
        destination = cluster.pod(d_ns, d_pod)
        assert source is not None
        assert destination is not None
        got = engine.decide(cluster, PodSubject(source), PodSubject(destination),
                            scenario.port, scenario.protocol)
        if got.allowed != allowed:
            wrong.append(f"{src} -> {dst}: expected {allowed}, got {got.allowed}")
    assert not wrong, "\n".join(wrong)
