"""Our typed view of a Hubble flow event: what analysis needs, nothing protobuf-shaped.

`auditor.hubble.convert` is the only code that builds these from the wire; everything
else reads them.  Times are integer nanoseconds since the Unix epoch so that ordering,
de-duplication and window arithmetic are exact.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auditor.model.flowclass import FlowClass


class Verdict(enum.Enum):
    """flow.Verdict, by upstream enum name."""

    UNKNOWN = "VERDICT_UNKNOWN"
    FORWARDED = "FORWARDED"
    DROPPED = "DROPPED"
    ERROR = "ERROR"
    AUDIT = "AUDIT"
    REDIRECTED = "REDIRECTED"
    TRACED = "TRACED"
    TRANSLATED = "TRANSLATED"


class Direction(enum.Enum):
    """flow.TrafficDirection, lower-cased as Prometheus labels want it."""

    UNKNOWN = "unknown"
    INGRESS = "ingress"
    EGRESS = "egress"


class Protocol(enum.Enum):
    """The layer-4 protocol of a flow (Layer4 oneof)."""

    UNKNOWN = "UNKNOWN"
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"
    ICMPV4 = "ICMPv4"
    ICMPV6 = "ICMPv6"
    VRRP = "VRRP"
    IGMP = "IGMP"


class FlowType(enum.Enum):
    """flow.FlowType."""

    UNKNOWN = "UNKNOWN_TYPE"
    L3_L4 = "L3_L4"
    L7 = "L7"
    SOCK = "SOCK"


class L7Type(enum.Enum):
    """flow.L7FlowType."""

    UNKNOWN = "UNKNOWN_L7_TYPE"
    REQUEST = "REQUEST"
    RESPONSE = "RESPONSE"
    SAMPLE = "SAMPLE"


class EventType(enum.IntEnum):
    """Cilium monitor message types carried in `event_type.type`."""

    UNSPEC = 0
    DROP = 1
    DEBUG = 2
    CAPTURE = 3
    TRACE = 4
    POLICY_VERDICT = 5
    TRACE_SOCK = 7
    L7 = 129
    AGENT = 130


RESERVED_IDENTITIES: dict[int, str] = {
    1: "host",
    2: "world",
    3: "unmanaged",
    4: "health",
    5: "init",
    6: "remote-node",
    7: "kube-apiserver",
    8: "ingress",
    9: "world-ipv4",
    10: "world-ipv6",
    11: "encrypted-overlay",
}
"""Cilium's reserved numeric identities (pkg/identity/numericidentity.go)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """The controller that owns a pod, e.g. Deployment/api."""

    name: str
    kind: str = ""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a flow as Hubble saw it."""

    ip: str = ""
    """Layer-3 address of this side (from flow.IP), "" when the flow had none."""
    port: int = 0
    """Layer-4 port of this side (0 for ICMP and portless protocols)."""
    identity: int = 0
    """Cilium security identity (1 host, 2 world, ...)."""
    namespace: str = ""
    pod_name: str = ""
    labels: tuple[str, ...] = ()
    """Cilium labels as `source:key=value`, e.g. `k8s:app=web`, `reserved:host`."""
    workloads: tuple[Workload, ...] = ()
    cluster_name: str = ""
    endpoint_id: int = 0
    service: str = ""
    """`namespace/name` of the Kubernetes Service Hubble attributed, if any."""
    names: tuple[str, ...] = ()
    """DNS names of the IP from Cilium's FQDN cache."""

    @property
    def reserved(self) -> frozenset[str]:
        """Reserved identity names (`host`, `world`, ...) from labels and numeric identity."""
        names = {label[9:] for label in self.labels if label.startswith("reserved:")}
        if self.identity in RESERVED_IDENTITIES:
            names.add(RESERVED_IDENTITIES[self.identity])
        return frozenset(names)

    @property
    def k8s_labels(self) -> dict[str, str]:
        """Kubernetes pod labels carried in Cilium labels (`k8s:` source, Cilium-internal keys dropped)."""
        result: dict[str, str] = {}
        for label in self.labels:
            if not label.startswith("k8s:"):
                continue
            key, _, value = label[4:].partition("=")
            if key.startswith("io.cilium.k8s.") or key.startswith("io.kubernetes.pod.namespace"):
                continue
            result[key] = value
        return result

    @property
    def is_pod(self) -> bool:
        """True when Hubble identified this side as a pod."""
        return bool(self.pod_name)


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """A policy Hubble names in `*_allowed_by` / `*_denied_by`."""

    name: str
    namespace: str = ""
    kind: str = ""
    revision: int = 0


@dataclass(frozen=True, slots=True)
class DNSInfo:
    """An L7 DNS record (Layer7.dns)."""

    query: str = ""
    rcode: int = 0
    qtypes: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    observation_source: str = ""
    ttl: int = 0
    """Seconds the answer's addresses may be cached (0 when Hubble did not say)."""


@dataclass(frozen=True, slots=True)
class HTTPInfo:
    """An L7 HTTP record (Layer7.http)."""

    method: str = ""
    url: str = ""
    code: int = 0
    protocol: str = ""


@dataclass(frozen=True, slots=True)
class L7Info:
    """Layer7: the proxy's view of a request or response."""

    type: L7Type = L7Type.UNKNOWN
    latency_ns: int = 0
    dns: DNSInfo | None = None
    http: HTTPInfo | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """One Hubble flow, reduced to what correlation and reporting read."""

    time_ns: int
    """Event time in ns since the Unix epoch (flow.time, else the response time)."""
    verdict: Verdict
    source: Endpoint
    destination: Endpoint
    uuid: str = ""
    node_name: str = ""
    drop_reason: str = ""
    """DropReason enum name (e.g. POLICY_DENIED) for DROPPED flows, else ""."""
    event_type: int = 0
    event_sub_type: int = 0
    flow_type: FlowType = FlowType.UNKNOWN
    direction: Direction = Direction.UNKNOWN
    is_reply: bool | None = None
    """None when Hubble did not know (the BoolValue was absent)."""
    protocol: Protocol = Protocol.UNKNOWN
    ip_version: int = 0
    tcp_flags: frozenset[str] = field(default_factory=frozenset)
    icmp_type: int = 0
    icmp_code: int = 0
    l7: L7Info | None = None
    policy_match_type: int = 0
    trace_observation_point: str = ""
    trace_reason: str = ""
    egress_allowed_by: tuple[PolicyRef, ...] = ()
    ingress_allowed_by: tuple[PolicyRef, ...] = ()
    egress_denied_by: tuple[PolicyRef, ...] = ()
    ingress_denied_by: tuple[PolicyRef, ...] = ()
    summary: str = ""
    flow_class: FlowClass | None = field(default=None, compare=False, repr=False)
    """The class `auditor.model.flowclass.classify` gave it when the source already classified it (the
    light conversion does); None otherwise.  Not part of the flow's value (no eq, no repr)."""

    @property
    def time(self) -> datetime:
        """Event time as an aware UTC datetime (microsecond precision)."""
        return datetime.fromtimestamp(self.time_ns / 1e9, tz=UTC)

    @property
    def destination_port(self) -> int:
        return self.destination.port

    @property
    def source_port(self) -> int:
        return self.source.port
