"""Kubernetes objects as the engine and the findings see them: frozen, typed, validated elsewhere.

`auditor.kube` builds these from live API objects and from manifests; `auditor.policy`
validates NetworkPolicies and decides connections over them.  Mapping fields are
excluded from hashing (they are still compared), so objects stay usable as values.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from auditor.model.cilium import CiliumCIDRGroup, CiliumNetworkPolicy
from auditor.model.labels import EMPTY_LABELS as EMPTY_LABELS
from auditor.model.labels import LabelSelector as LabelSelector
from auditor.model.labels import LabelSelectorRequirement as LabelSelectorRequirement
from auditor.model.labels import no_labels

_no_labels = no_labels


class PolicyDirection(enum.Enum):
    """A NetworkPolicy policyType."""

    INGRESS = "Ingress"
    EGRESS = "Egress"


@dataclass(frozen=True, slots=True)
class IPBlock:
    """networking.k8s.io/v1 IPBlock: `cidr` minus every `except` range."""

    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Peer:
    """NetworkPolicyPeer: pod/namespace selectors (ANDed when both are set) or an ipBlock."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True)
class PolicyPort:
    """NetworkPolicyPort: protocol (TCP when omitted), numeric or named port, optional endPort."""

    protocol: str = "TCP"
    port: int | str | None = None
    """None means every port of the protocol."""
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """An ingress or egress rule.  `peers` None or empty admits every peer; `ports` empty admits every port."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """networking.k8s.io/v1 NetworkPolicy with spec fields kept as written.

    `policy_types` is what the object declared (may be empty); the engine applies the
    defaulting rules.  `ingress`/`egress` are None when the field was absent.
    """

    namespace: str
    name: str
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    policy_types: tuple[PolicyDirection, ...] = ()
    ingress: tuple[Rule, ...] | None = None
    egress: tuple[Rule, ...] | None = None
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    labels: Mapping[str, str] = field(default_factory=_no_labels, hash=False)

    @property
    def key(self) -> str:
        """`namespace/name`, the way people and findings name a policy."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A declared container port; `name` is what named policy ports resolve against."""

    port: int
    protocol: str = "TCP"
    name: str = ""
    container: str = ""


class ProbeKind(enum.Enum):
    LIVENESS = "liveness"
    READINESS = "readiness"
    STARTUP = "startup"


@dataclass(frozen=True, slots=True)
class Probe:
    """A kubelet probe that reaches the pod over the network (httpGet, tcpSocket or grpc)."""

    kind: ProbeKind
    handler: str
    """httpGet, tcpSocket or grpc."""
    port: int | str
    """Numeric port, or a container port name (resolved with `Pod.resolve_port`)."""
    container: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    """The top-level controller of a pod (ReplicaSet resolved to its Deployment)."""

    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class Pod:
    """What auditor keeps of a Pod."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=_no_labels, hash=False)
    ips: tuple[str, ...] = ()
    node_name: str = ""
    host_ip: str = ""
    host_network: bool = False
    ready: bool | None = None
    phase: str = ""
    container_ports: tuple[ContainerPort, ...] = ()
    probes: tuple[Probe, ...] = ()
    workload: WorkloadRef | None = None
    uid: str = ""
    resource_version: str = ""
    service_account: str = ""
    """spec.serviceAccountName ("" read as `default`, as the API server defaults it)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def workload_name(self) -> str:
        """The owning workload's name, or the pod name for bare pods."""
        return self.workload.name if self.workload else self.name

    def resolve_port(self, port: int | str, protocol: str = "TCP") -> int | None:
        """Resolve a named port against this pod's container ports (None if it has no such name)."""
        if isinstance(port, int):
            return port
        for declared in self.container_ports:
            if declared.name == port and declared.protocol == protocol:
                return declared.port
        return None


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=_no_labels, hash=False)
    uid: str = ""
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=_no_labels, hash=False)
    addresses: tuple[str, ...] = ()
    """InternalIP/ExternalIP addresses, plus the node's pod CIDR gateway is not known here."""
    uid: str = ""
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One `spec.ports` entry of a Service; `target_port` None when not written (then it is `port`)."""

    port: int
    protocol: str = "TCP"
    name: str = ""
    target_port: int | str | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """What auditor keeps of a v1 Service.

    `selector` None when the spec has none (a "selector-less" Service whose endpoints are managed
    by hand or by another controller); an empty mapping is kept as written and counts as
    selector-less too (`has_selector`), as Kubernetes' endpoint controllers treat it.
    """

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=_no_labels, hash=False)
    selector: Mapping[str, str] | None = field(default=None, hash=False)
    type: str = ""
    """spec.type as written ("" when absent: ClusterIP)."""
    cluster_ips: tuple[str, ...] = ()
    """spec.clusterIPs (else spec.clusterIP), as written (a headless Service has "None")."""
    ports: tuple[ServicePort, ...] = ()
    uid: str = ""
    resource_version: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def has_selector(self) -> bool:
        return bool(self.selector)


SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""The label that ties an EndpointSlice to its Service (discovery.k8s.io/v1 LabelServiceName)."""


@dataclass(frozen=True, slots=True)
class SliceEndpoint:
    """One `endpoints[]` entry of an EndpointSlice: its addresses and conditions (None: not set)."""

    addresses: tuple[str, ...] = ()
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    """What auditor keeps of a discovery.k8s.io/v1 EndpointSlice: the backend addresses of a Service.

    `service_name` is the `kubernetes.io/service-name` label ("" when absent: the slice belongs to
    no Service).
    """

    namespace: str
    name: str
    address_type: str = "IPv4"
    endpoints: tuple[SliceEndpoint, ...] = ()
    labels: Mapping[str, str] = field(default_factory=_no_labels, hash=False)
    uid: str = ""
    resource_version: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def service_name(self) -> str:
        return self.labels.get(SERVICE_NAME_LABEL, "")


KubeObject = (Pod | Namespace | Node | NetworkPolicy | CiliumNetworkPolicy | CiliumCIDRGroup | Service
              | EndpointSlice)
"""Every kind the inventory tracks."""

AnyPolicy = NetworkPolicy | CiliumNetworkPolicy
"""A policy of any kind the engine enforces."""


class ChangeType(enum.Enum):
    """A watch event type, as in `--cluster-events` lines and the Kubernetes watch API."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class Change:
    """One inventory change and the time it took effect (ns since the Unix epoch)."""

    time_ns: int
    type: ChangeType
    obj: KubeObject


_READ_FIELDS: Mapping[type, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields(kind) if f.name != "resource_version") for kind in (Pod, Node, Namespace)
}
"""Per kind, the fields something in auditor reads: all but resourceVersion, which only says "written again"."""


def relevant_equal(old: KubeObject | None, new: KubeObject) -> bool:
    """True when `new` is a Pod, Node or Namespace that differs from `old` in nothing auditor reads.

    A kubelet status write (restart counts, probe times) or a node heartbeat changes only the
    resourceVersion and status fields the model does not keep, so it changes no decision, finding
    or posture.  Policies never compare relevant-equal across writes: their resourceVersion is the
    revision that decisions and the policy history cite.  Dataclass equality is left whole (the
    watcher diffs relists with it and keeps the newest object).
    """
    names = _READ_FIELDS.get(type(new))
    if names is None or type(old) is not type(new):
        return False
    return old is new or all(getattr(old, name) == getattr(new, name) for name in names)
