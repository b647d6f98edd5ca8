"""The engine's answer to "is A -> B:port/proto allowed, and which policies decide it?".

A decision is a value, not a bool: per direction it says whether the pod is isolated,
which policies select it, which rule allowed, which policies isolated it when denied
(default-deny attribution) and the closest miss.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from auditor.model.k8s import AnyPolicy, NetworkPolicy, Pod


@dataclass(frozen=True, slots=True)
class PodSubject:
    """A pod endpoint of a connection."""

    pod: Pod
    ip: str = ""
    """The pod IP used, when known (ipBlock peers match by IP)."""


@dataclass(frozen=True, slots=True)
class NodeSubject:
    """A node (reserved:host / remote-node, or a node IP) as an endpoint.

    Whether it is Cilium's `host` or `remote-node` is relative: the node a pod runs on is that
    pod's `host`.  `identities` are further reserved identities Hubble gave it (`kube-apiserver`
    when the API server runs on the node).
    """

    node_name: str
    ip: str = ""
    identities: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ExternalSubject:
    """Anything outside the pod network, matched only by ipBlock / CIDR peers and entities.

    `identities` are Cilium's reserved identities of this endpoint when Hubble named them:
    empty means `world`; `kube-apiserver`, `ingress`, `init`, `unmanaged` select entities
    of those names (and `cluster`, except for world and kube-apiserver outside the cluster).
    `names` are DNS names Hubble's FQDN cache gave the address (for `toFQDNs`).
    """

    ip: str
    identities: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()


Subject = PodSubject | NodeSubject | ExternalSubject


KNP_KIND = "NetworkPolicy"
CNP_KIND = "CiliumNetworkPolicy"
CCNP_KIND = "CiliumClusterwideNetworkPolicy"


@dataclass(frozen=True, slots=True)
class PolicyId:
    """A policy of any kind and the revision in force (resourceVersion, else generation).

    Printed as `ns/name@rev` for a Kubernetes NetworkPolicy (as it always was), and with the
    kind in front for Cilium's kinds: `CiliumNetworkPolicy ns/name@rev`,
    `CiliumClusterwideNetworkPolicy name@rev` (namespace "").
    """

    namespace: str
    name: str
    revision: str = ""
    kind: str = KNP_KIND

    @property
    def key(self) -> str:
        """`namespace/name`, or `name` for a cluster-wide policy."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def ref(self) -> str:
        """Kind and key, without the revision: `CiliumNetworkPolicy ns/name`, or `ns/name` for a KNP."""
        return self.key if self.kind == KNP_KIND else f"{self.kind} {self.key}"

    @property
    def is_cilium(self) -> bool:
        return self.kind != KNP_KIND

    def __str__(self) -> str:
        return f"{self.ref}@{self.revision}" if self.revision else self.ref


def policy_id_of(policy: AnyPolicy) -> PolicyId:
    """A policy object's identity: its kind, namespace, name and revision (resourceVersion, else
    generation, else "")."""
    revision = policy.resource_version or (str(policy.generation) if policy.generation else "")
    kind = KNP_KIND if isinstance(policy, NetworkPolicy) else policy.kind.value
    return PolicyId(policy.namespace, policy.name, revision, kind)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """The rule (and peer within it) that allowed (or, in a deny section, denied) a connection.

    For Cilium policies `section` is the rule list (`ingress`, `egressDeny`, ...), `spec` the
    JSON path of the api.Rule (`spec`, `specs[1]`), `peer` the matching peer in Cilium's words
    (`entity world`, `CIDR 10.0.0.0/8`, `endpoints app=web`) and `l7` the proxy rule kind
    (`http`, `dns`, `kafka`) when the connection is handed to Cilium's L7 proxy.
    """

    policy: PolicyId
    rule_index: int
    peer_index: int | None = None
    """None when the rule has no peers (admits everyone)."""
    section: str = ""
    spec: str = ""
    peer: str = ""
    l7: str = ""

    @property
    def path(self) -> str:
        """`ingress[0]` for a NetworkPolicy rule; `egressDeny[0]` or `specs[1].egress[2]` for Cilium's."""
        if not self.section:
            return f"rule {self.rule_index}"
        prefix = f"{self.spec}." if self.spec and self.spec != "spec" else ""
        return f"{prefix}{self.section}[{self.rule_index}]"


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
    NOT_ENFORCED = "not-enforced"
    """Cilium's policy-enforcement mode `never`: no policy is enforced."""


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
    denied_by: tuple[RuleMatch, ...] = ()
    """Deny rules (Cilium's ingressDeny/egressDeny) that match: any one wins over every allow."""
    undecided: str = ""
    """Why the engine cannot tell (`fqdn`: a toFQDNs rule and no DNS answer known for the address)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed only when the source's egress AND the destination's ingress allow."""

    allowed: bool
    egress: SideDecision
    ingress: SideDecision
    port: int
    protocol: str
