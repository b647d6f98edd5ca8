"""The engine's answer to "is A -> B:port/proto allowed, and which policies decide it?".

A decision is a value, not a bool: per direction it says whether the pod is isolated,
which policies select it, which rule allowed, which policies isolated it when denied
(default-deny attribution) and the closest miss.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from auditor.model.k8s import Pod


@dataclass(frozen=True, slots=True)
class PodSubject:
    """A pod endpoint of a connection."""

    pod: Pod
    ip: str = ""
    """The pod IP used, when known (ipBlock peers match by IP)."""


@dataclass(frozen=True, slots=True)
class NodeSubject:
    """A node (reserved:host / remote-node, or a node IP) as an endpoint."""

    node_name: str
    ip: str = ""


@dataclass(frozen=True, slots=True)
class ExternalSubject:
    """Anything outside the pod network, matched only by ipBlock peers."""

    ip: str


Subject = PodSubject | NodeSubject | ExternalSubject


@dataclass(frozen=True, slots=True)
class PolicyId:
    """A policy and the revision in force (resourceVersion, else generation)."""

    namespace: str
    name: str
    revision: str = ""

    def __str__(self) -> str:
        base = f"{self.namespace}/{self.name}"
        return f"{base}@{self.revision}" if self.revision else base


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """The rule (and peer within it) that allowed a connection."""

    policy: PolicyId
    rule_index: int
    peer_index: int | None = None
    """None when the rule has no peers (admits everyone)."""


@dataclass(frozen=True, slots=True)
class ClosestMiss:
    """The allow rule that came nearest to admitting the connection, and why it did not."""

    policy: PolicyId
    rule_index: int
    message: str
    """e.g. "rule 0 of shop/api-from-web allows app=web on 8080; the source has app=worker"."""


class Enforcement(enum.Enum):
    """Why a side was or was not evaluated."""

    ENFORCED = "enforced"
    """A pod on this side: its policies decide."""
    NOT_A_POD = "not-a-pod"
    """External or node endpoint: NetworkPolicy does not apply to it."""
    NODE_TRAFFIC = "node-traffic"
    """Traffic between a node and its own pods, allowed by the spec unless node enforcement is on."""
    HOST_NETWORK = "host-network"
    """A hostNetwork pod: NetworkPolicy does not apply."""
    SELF = "self"
    """A pod talking to itself: per the NetworkPolicy docs a pod cannot block access to itself."""


@dataclass(frozen=True, slots=True)
class SideDecision:
    """The verdict of one direction: the source's egress or the destination's ingress."""

    allowed: bool
    isolated: bool
    enforcement: Enforcement = Enforcement.ENFORCED
    selecting: tuple[PolicyId, ...] = ()
    """Policies that select the pod for this direction."""
    allowed_by: tuple[RuleMatch, ...] = ()
    """Every rule that admits the connection (policies are additive)."""
    isolated_by: tuple[PolicyId, ...] = ()
    """When denied: the policies that isolated the pod (default-deny attribution)."""
    closest_miss: ClosestMiss | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed only when the source's egress AND the destination's ingress allow."""

    allowed: bool
    egress: SideDecision
    ingress: SideDecision
    port: int
    protocol: str
