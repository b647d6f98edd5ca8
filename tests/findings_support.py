"""Small hand-built inventories and flows for the findings tests (synthetic, not recorded)."""

from __future__ import annotations

from auditor.findings.correlate import Correlator
from auditor.model.findings import Finding, FindingKind
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
    Change,
    ContainerPort,
    KubeObject,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Peer,
    Pod,
    PolicyDirection,
    PolicyPort,
    Probe,
    ProbeKind,
    Rule,
    WorkloadRef,
)
from auditor.policy.engine import PolicyEngine
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState

T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000
NODE = Node("node-1", addresses=("192.168.0.10",))


def pod(name: str, ip: str, *, ns: str = "shop", app: str = "", probes: tuple[Probe, ...] = (),
        ports: tuple[ContainerPort, ...] = (), ready: bool | None = True) -> Pod:
    """A pod of Deployment `app` (default: the name up to the first dash) on node-1."""
    app = app or name.split("-")[0]
    return Pod(ns, name, labels={"app": app}, ips=(ip,), node_name="node-1", host_ip="192.168.0.10",
               ready=ready, container_ports=ports, probes=probes, workload=WorkloadRef("Deployment", app))


WEB = pod("web-1", "10.0.0.1")
API = pod("api-1", "10.0.0.2", ports=(ContainerPort(8080, name="http"),))
PROBED_API = pod("api-1", "10.0.0.2", ports=(ContainerPort(8080, name="http"),),
                 probes=(Probe(ProbeKind.READINESS, "httpGet", "http", path="/ready"),))
DNS = pod("coredns-1", "10.0.1.53", ns="kube-system", app="kube-dns")
DNS_LABELLED = Pod("kube-system", "coredns-1", labels={"k8s-app": "kube-dns"}, ips=("10.0.1.53",),
                   node_name="node-1", workload=WorkloadRef("Deployment", "coredns"))


def select(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=labels)


def policy(name: str, *, ns: str = "shop", app: str | None = None, ingress: tuple[Rule, ...] | None = None,
           egress: tuple[Rule, ...] | None = None, types: tuple[PolicyDirection, ...] = (),
           rv: str = "1") -> NetworkPolicy:
    selector = select(app=app) if app else LabelSelector()
    return NetworkPolicy(ns, name, pod_selector=selector, policy_types=types, ingress=ingress, egress=egress,
                         resource_version=rv)


def from_app(app: str, port: int | str | None = None, protocol: str = "TCP") -> Rule:
    ports = (PolicyPort(protocol=protocol, port=port),) if port is not None else ()
    return Rule(peers=(Peer(pod_selector=select(app=app)),), ports=ports)


API_FROM_WEB = policy("api-from-web", app="api", ingress=(from_app("web", 8080),))
DENY_ALL_INGRESS = policy("deny-all", types=(PolicyDirection.INGRESS,), ingress=())


def inventory(*objects: KubeObject) -> list[KubeObject]:
    return [Namespace("shop"), Namespace("kube-system"), NODE, *objects]


def correlator(*objects: KubeObject, enforce_node_traffic: bool = False, changes: tuple[Change, ...] = ()
               ) -> Correlator:
    """A correlator over the inventory `objects` (plus namespaces and node-1), then `changes` applied."""
    history = ClusterHistory(initial=ClusterState.build(inventory(*objects)))
    for change in changes:
        history.apply(change)
    return Correlator(history, PolicyEngine(enforce_node_traffic=enforce_node_traffic))


def ep(p: Pod, port: int = 0) -> Endpoint:
    labels = (*(f"k8s:{k}={v}" for k, v in p.labels.items()), f"k8s:io.kubernetes.pod.namespace={p.namespace}")
    return Endpoint(ip=p.ips[0], port=port, identity=12345, namespace=p.namespace, pod_name=p.name,
                    labels=labels)


HOST = Endpoint(ip="192.168.0.10", identity=1, labels=("reserved:host",))


def flow(src: Endpoint, dst: Endpoint, *, verdict: Verdict = Verdict.FORWARDED, event: int = EventType.TRACE,
         direction: Direction = Direction.INGRESS, protocol: Protocol = Protocol.TCP, time_ns: int = T0,
         drop_reason: str = "", is_reply: bool | None = False, point: str = "TO_ENDPOINT",
         l7: L7Info | None = None, uuid: str = "") -> Flow:
    return Flow(time_ns=time_ns, verdict=verdict, source=src, destination=dst, uuid=uuid, node_name="node-1",
                drop_reason=drop_reason, event_type=event, direction=direction, is_reply=is_reply,
                protocol=protocol, flow_type=FlowType.L7 if l7 else FlowType.L3_L4,
                trace_observation_point=point if event == EventType.TRACE else "", l7=l7)


def drop(src: Endpoint, dst: Endpoint, *, event: int = EventType.DROP, **kw: object) -> Flow:
    """A policy denial: a drop event (type 1, POLICY_DENIED) unless `event` says policy-verdict."""
    reason = "POLICY_DENIED" if event == EventType.DROP else ""
    return flow(src, dst, verdict=Verdict.DROPPED, event=event, drop_reason=reason, **kw)  # type: ignore[arg-type]


def dns_l7(src: Endpoint, dst: Endpoint, query: str, *, response: bool = False, rcode: int = 0,
           verdict: Verdict = Verdict.FORWARDED, time_ns: int = T0) -> Flow:
    info = L7Info(type=L7Type.RESPONSE if response else L7Type.REQUEST,
                  dns=DNSInfo(query=query, rcode=rcode, observation_source="proxy"))
    return flow(src, dst, verdict=verdict, event=EventType.L7, direction=Direction.EGRESS,
                protocol=Protocol.UDP, l7=info, is_reply=response, time_ns=time_ns)


def kinds(findings: list[Finding]) -> list[FindingKind]:
    return [f.kind for f in findings]
