"""Builders and hypothesis strategies for the policy engine tests.

Builders keep table tests short: `pod("x", "a", pod="a")`, `policy("x", "p", sel(pod="a"), ingress=[...])`.
Strategies draw small random clusters (two namespaces, a handful of pods) and policies over a
small vocabulary of labels and ports, so that random policies actually select and admit things.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hypothesis import strategies as st

from auditor.model.decision import Decision, ExternalSubject, NodeSubject, PodSubject
from auditor.model.k8s import (
    ContainerPort,
    IPBlock,
    KubeObject,
    LabelSelector,
    LabelSelectorRequirement,
    Namespace,
    NetworkPolicy,
    Node,
    Peer,
    Pod,
    PolicyDirection,
    PolicyPort,
    Rule,
)
from auditor.policy.engine import PolicyEngine
from auditor.policy.state import ClusterState

INGRESS = PolicyDirection.INGRESS
EGRESS = PolicyDirection.EGRESS

# -- builders ------------------------------------------------------------------------------------


def sel(*expressions: LabelSelectorRequirement, **labels: str) -> LabelSelector:
    return LabelSelector(match_labels=dict(labels), match_expressions=tuple(expressions))


def expr(key: str, operator: str, *values: str) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(key=key, operator=operator, values=tuple(values))


def ns(name: str, **labels: str) -> Namespace:
    return Namespace(name=name, labels={"kubernetes.io/metadata.name": name, **labels})


_ip_counter = iter(range(1, 1_000_000))


def pod(namespace: str, name: str, *, ip: str | None = None, node: str = "node-1", host_network: bool = False,
        ports: Sequence[ContainerPort] = (), **labels: str) -> Pod:
    if ip is None:
        n = next(_ip_counter)
        ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
    return Pod(namespace=namespace, name=name, labels=dict(labels), ips=(ip,), node_name=node,
               host_ip="192.168.0.1" if node == "node-1" else "192.168.0.2", host_network=host_network,
               container_ports=tuple(ports))


def node(name: str, *addresses: str) -> Node:
    return Node(name=name, addresses=tuple(addresses))


def peer(pods: LabelSelector | None = None, namespaces: LabelSelector | None = None) -> Peer:
    return Peer(pod_selector=pods, namespace_selector=namespaces)


def cidr(block: str, *excepts: str) -> Peer:
    return Peer(ip_block=IPBlock(cidr=block, except_=tuple(excepts)))


def port(number: int | str | None = None, protocol: str = "TCP", end: int | None = None) -> PolicyPort:
    return PolicyPort(protocol=protocol, port=number, end_port=end)


def rule(*peers: Peer, ports: Sequence[PolicyPort] = ()) -> Rule:
    return Rule(peers=tuple(peers), ports=tuple(ports))


def policy(namespace: str, name: str, selector: LabelSelector | None = None, *,
           ingress: Sequence[Rule] | None = None, egress: Sequence[Rule] | None = None,
           types: Sequence[PolicyDirection] = (), rv: str = "") -> NetworkPolicy:
    return NetworkPolicy(namespace=namespace, name=name, pod_selector=selector or LabelSelector(),
                         policy_types=tuple(types),
                         ingress=None if ingress is None else tuple(ingress),
                         egress=None if egress is None else tuple(egress), resource_version=rv)


def state(*objects: KubeObject) -> ClusterState:
    return ClusterState.build(objects)


def decide(st_: ClusterState, src: Pod | str, dst: Pod | str, number: int = 80, protocol: str = "TCP",
           engine: PolicyEngine | None = None) -> Decision:
    """Decide between pods (by object, or "ns/name" looked up in the state) or "ip:A.B.C.D"."""
    def subject(x: Pod | str) -> PodSubject | ExternalSubject | NodeSubject:
        if isinstance(x, Pod):
            return PodSubject(x)
        if x.startswith("ip:"):
            return ExternalSubject(x[3:])
        if x.startswith("node:"):
            return NodeSubject(node_name=x[5:])
        namespace, name = x.split("/")
        found = st_.pod(namespace, name)
        assert found is not None, x
        return PodSubject(found)
    return (engine or PolicyEngine()).decide(st_, subject(src), subject(dst), number, protocol)


# -- the upstream e2e universe: namespaces x, y, z with pods a, b, c ---------------------------

E2E_NAMESPACES = ("x", "y", "z")
E2E_PODS = ("a", "b", "c")
E2E_PORTS = tuple(
    ContainerPort(port=number, protocol=proto, name=f"serve-{number}-{proto.lower()}")
    for number in (80, 81) for proto in ("TCP", "UDP", "SCTP")
)


def e2e_objects() -> list[KubeObject]:
    objects: list[KubeObject] = [ns(n) for n in E2E_NAMESPACES]
    objects += [pod(n, p, ports=E2E_PORTS, pod=p) for n in E2E_NAMESPACES for p in E2E_PODS]
    return objects


def e2e_names() -> list[str]:
    return [f"{n}/{p}" for n in E2E_NAMESPACES for p in E2E_PODS]


# -- hypothesis strategies -------------------------------------------------------------------------

LABEL_VALUES = ("a", "b", "c")
NAMESPACES = ("x", "y")

selectors = st.one_of(
    st.just(LabelSelector()),
    st.builds(lambda v: sel(app=v), st.sampled_from(LABEL_VALUES)),
    st.builds(lambda vs: sel(expr("app", "In", *vs)), st.lists(st.sampled_from(LABEL_VALUES), min_size=1,
                                                             max_size=2, unique=True)),
    st.builds(lambda v: sel(expr("app", "NotIn", v)), st.sampled_from(LABEL_VALUES)),
    st.just(sel(expr("tier", "Exists"))),
    st.just(sel(expr("tier", "DoesNotExist"))),
)
ns_selectors = st.one_of(st.just(LabelSelector()),
                         st.builds(lambda v: sel(team=v), st.sampled_from(("1", "2"))))
peers = st.one_of(
    st.builds(peer, selectors, st.none()),
    st.builds(peer, st.none(), ns_selectors),
    st.builds(peer, selectors, ns_selectors),
    st.sampled_from((cidr("0.0.0.0/0"), cidr("203.0.113.0/24", "203.0.113.128/25"), cidr("10.0.0.0/8"))),
)
ports = st.one_of(
    st.builds(port, st.sampled_from((80, 81, 443))),
    st.just(port("http")),
    st.just(port(80, "UDP")),
    st.just(port(None)),
    st.just(port(80, end=90)),
)
rules = st.builds(lambda ps, qs: Rule(peers=tuple(ps), ports=tuple(qs)),
                  st.lists(peers, max_size=2), st.lists(ports, max_size=2))
rule_lists = st.one_of(st.none(), st.lists(rules, max_size=3).map(tuple))
policy_types = st.sampled_from(((), (INGRESS,), (EGRESS,), (INGRESS, EGRESS)))


@st.composite
def policies(draw: st.DrawFn, name: str = "") -> NetworkPolicy:
    namespace = draw(st.sampled_from(NAMESPACES))
    name = name or f"p{draw(st.integers(0, 10_000))}"
    return NetworkPolicy(namespace=namespace, name=name, pod_selector=draw(selectors),
                         policy_types=draw(policy_types), ingress=draw(rule_lists), egress=draw(rule_lists))


@st.composite
def policy_sets(draw: st.DrawFn, max_size: int = 4) -> list[NetworkPolicy]:
    count = draw(st.integers(0, max_size))
    return [draw(policies(name=f"p{i}")) for i in range(count)]


def cluster_pods() -> list[Pod]:
    """A fixed small population: every app label in both namespaces, one with tier, named ports."""
    http = (ContainerPort(80, name="http"),)
    pods = []
    for namespace in NAMESPACES:
        for value in LABEL_VALUES:
            pods.append(pod(namespace, f"{value}1", ports=http, app=value))
        pods.append(pod(namespace, "t1", ports=(ContainerPort(81, name="http"),), app="a", tier="web"))
    return pods


def cluster_objects(pols: Iterable[NetworkPolicy]) -> list[KubeObject]:
    return [ns("x", team="1"), ns("y", team="2"), *cluster_pods(), *pols]


connections = st.tuples(st.sampled_from(range(8)), st.sampled_from(range(8)),
                        st.sampled_from((80, 81, 443)), st.sampled_from(("TCP", "UDP")))
