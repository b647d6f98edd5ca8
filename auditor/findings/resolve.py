"""Resolving a flow's endpoint to the subject the policy engine judges, in the inventory at flow time.

Order: reserved:health (not subject to NetworkPolicy) -> reserved:host / remote-node (a node)
-> namespace/pod name when the flow carries one (unknown name = unresolved, never guessed by
IP, which may have been reused) -> pod IP -> node IP -> world, kube-apiserver, ingress, cidr
and fqdn identities and any other IP without pod labels (external) -> unresolved.  The ingress
identity (Cilium's Envoy) is external without an address: no ipBlock selects it.

`peer_workload` is what findings aggregate the other side by: `namespace/workload` for pods,
the reserved identity (or `cidr:` label) otherwise, so the key space stays bounded whatever
the number of external IPs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from auditor.model.decision import ExternalSubject, NodeSubject, PodSubject, Subject
from auditor.model.flows import Endpoint
from auditor.model.k8s import Pod
from auditor.policy.state import ClusterState

_EXTERNAL_RESERVED = ("world", "world-ipv4", "world-ipv6", "kube-apiserver", "ingress")
_NODE_EXTRA = frozenset(("kube-apiserver",))
"""Reserved identities a node may carry besides host / remote-node (an API server on the node)."""


class Resolution(enum.Enum):
    SUBJECT = "subject"
    HEALTH = "health"
    """cilium-health endpoint: NetworkPolicy does not apply."""
    UNRESOLVED = "unresolved"
    """A pod (or identity) the inventory does not know at flow time."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """One endpoint resolved at flow time."""

    resolution: Resolution
    subject: Subject | None = None
    peer: str = ""
    """How a finding names it: namespace/pod, an IP, or reserved:<identity>."""
    peer_workload: str = ""
    """The bounded aggregation name: namespace/workload, reserved:<identity> or cidr:<prefix>."""

    @property
    def pod_subject(self) -> PodSubject | None:
        return self.subject if isinstance(self.subject, PodSubject) else None


UNRESOLVED = Resolved(Resolution.UNRESOLVED)
HEALTH = Resolved(Resolution.HEALTH, peer="reserved:health", peer_workload="reserved:health")


def node_short_name(node_name: str) -> str:
    """`cluster/node` (relay form) -> `node`."""
    return node_name.rsplit("/", 1)[-1]


def resolve_endpoint(endpoint: Endpoint, flow_node: str, state: ClusterState) -> Resolved:
    """The subject behind one side of a flow, see the module docstring for the order."""
    reserved = endpoint.reserved
    if "health" in reserved:
        return HEALTH
    if "host" in reserved:
        return _node(state, "host", endpoint.ip, node_short_name(flow_node), reserved)
    if "remote-node" in reserved:
        return _node(state, "remote-node", endpoint.ip, "", reserved)
    if endpoint.pod_name:
        pod = state.pod(endpoint.namespace, endpoint.pod_name)
        if pod is None:
            return UNRESOLVED
        return _pod(pod, endpoint.ip)
    if endpoint.ip:
        pod = state.pod_by_ip(endpoint.ip)
        if pod is not None:
            return _pod(pod, endpoint.ip)
        if state.node_by_ip(endpoint.ip) is not None:
            return _node(state, "remote-node", endpoint.ip, "")
    return _external(endpoint, reserved)


def _pod(pod: Pod, ip: str) -> Resolved:
    return Resolved(
        Resolution.SUBJECT,
        PodSubject(pod=pod, ip=ip or (pod.ips[0] if pod.ips else "")),
        peer=pod.key,
        peer_workload=f"{pod.namespace}/{pod.workload_name}",
    )


def _node(state: ClusterState, identity: str, ip: str, name: str, reserved: frozenset[str] = frozenset()
          ) -> Resolved:
    node = state.node_by_ip(ip) if ip else None
    node_name = node.name if node is not None else name
    extra = reserved & _NODE_EXTRA
    return Resolved(
        Resolution.SUBJECT,
        NodeSubject(node_name=node_name, ip=ip, identities=extra),
        peer=f"reserved:{identity}" + (f" ({node_name})" if node_name else ""),
        peer_workload=f"reserved:{identity}",
    )


def _external(endpoint: Endpoint, reserved: frozenset[str]) -> Resolved:
    if not endpoint.ip:
        return UNRESOLVED
    if "ingress" in reserved:
        # Cilium's Envoy (Ingress / Gateway API) has its own reserved identity, with IPs allocated
        # like the health endpoint's: CIDR selectors (ipBlock) never select it, pod selectors
        # neither, so only a rule without peers admits it.  No address is given to the engine.
        return Resolved(Resolution.SUBJECT, ExternalSubject(ip="", identities=frozenset(("ingress",))),
                        peer=endpoint.ip, peer_workload="reserved:ingress")
    cidr = next((label for label in endpoint.labels if label.startswith("cidr:")), "")
    known = next((name for name in _EXTERNAL_RESERVED if name in reserved), "")
    if cidr:
        aggregate = cidr
    elif known or any(label.startswith("fqdn:") for label in endpoint.labels):
        aggregate = f"reserved:{known or 'world'}"
    elif reserved or endpoint.k8s_labels:
        return UNRESOLVED  # init/unmanaged endpoints, or a labelled pod missing from the inventory
    else:
        aggregate = "reserved:world"
    identities = frozenset(("kube-apiserver",)) if known == "kube-apiserver" else frozenset()
    subject = ExternalSubject(ip=endpoint.ip, identities=identities, names=endpoint.names)
    return Resolved(Resolution.SUBJECT, subject, peer=endpoint.ip, peer_workload=aggregate)
