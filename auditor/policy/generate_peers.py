"""The parts of a generated policy that name things: workload selectors, peers, CIDRs, ports.

- A workload is selected by the first of `WORKLOAD_LABELS` its pods carry that selects no pod of
  another workload of the namespace, else by every stable label of the pod (controller hashes and
  pod names left out): never by pod name or IP, so the policy survives a rollout.
- Namespaces are selected by `kubernetes.io/metadata.name`, which the API server sets on every
  namespace (Kubernetes >= 1.21), and which Cilium mirrors as `io.kubernetes.pod.namespace`.
- External addresses become CIDRs: addresses sharing a `/min_prefix` network are merged into their
  smallest common prefix (never shorter than /min_prefix; IPv6 keeps as many host bits as IPv4),
  then overlapping networks collapse.
- A port is written by the name the destination pod declares for it, when it declares one.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping

from auditor.model.decision import ExternalSubject, NodeSubject, PodSubject, Subject
from auditor.model.k8s import Pod
from auditor.policy.state import ClusterState

WORKLOAD_LABELS = ("app", "app.kubernetes.io/name", "k8s-app")
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
UNSTABLE_LABELS = frozenset((
    "pod-template-hash", "controller-revision-hash", "pod-template-generation",
    "statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index", "batch.kubernetes.io/controller-uid",
    "controller-uid", "batch.kubernetes.io/job-completion-index",
))
"""Labels a controller sets per revision or per pod: a selector on them breaks at the next rollout."""
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _selects(labels: Mapping[str, str], pod: Pod) -> bool:
    return all(pod.labels.get(key) == value for key, value in labels.items())


def workload_labels(state: ClusterState, pod: Pod) -> dict[str, str]:
    """The matchLabels that select `pod`'s workload (see the module docstring); {} for a pod without labels."""
    others = [p for p in state.pods_in(pod.namespace) if p.workload_name != pod.workload_name]
    for key in WORKLOAD_LABELS:
        if key in pod.labels:
            candidate = {key: pod.labels[key]}
            if not any(_selects(candidate, other) for other in others):
                return candidate
    stable = {k: v for k, v in sorted(pod.labels.items()) if k not in UNSTABLE_LABELS}
    if stable:
        return stable
    first = next((key for key in WORKLOAD_LABELS if key in pod.labels), "")
    return {first: pod.labels[first]} if first else {}


def node_entity(pod: Pod, node: NodeSubject) -> str:
    """Cilium's name for a node as `pod` sees it: `host` for its own node, else `remote-node`."""
    if node.node_name and pod.node_name:
        return "host" if node.node_name == pod.node_name else "remote-node"
    return "host" if node.ip and node.ip == pod.host_ip else "remote-node"


def external_entity(subject: ExternalSubject) -> str:
    """The Cilium entity of an external endpoint: world, or its reserved identity (kube-apiserver, ingress)."""
    for name in ("kube-apiserver", "ingress", "init", "unmanaged"):
        if name in subject.identities:
            return name
    return "world"


def destination_port(destination: Subject, port: int, protocol: str) -> int | str:
    """`port` by the name the destination pod declares for it (and this protocol), else the number."""
    if isinstance(destination, PodSubject) and not destination.pod.host_network:
        for declared in destination.pod.container_ports:
            if declared.port == port and declared.protocol == protocol and declared.name:
                return declared.name
    return port


def _min_prefix(version: int, min_prefix: int) -> int:
    return min_prefix if version == 4 else min(128, min_prefix + 96)


def aggregate_cidrs(addresses: Iterable[str], min_prefix: int) -> list[str]:
    """CIDRs covering `addresses`, merged per `/min_prefix` network (see the module docstring)."""
    groups: dict[Network, list[ipaddress.IPv4Address | ipaddress.IPv6Address]] = defaultdict(list)
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        prefix = _min_prefix(address.version, min_prefix)
        groups[ipaddress.ip_network(f"{address}/{prefix}", strict=False)].append(address)
    networks: list[Network] = []
    for members in groups.values():
        network = ipaddress.ip_network(f"{members[0]}/{members[0].max_prefixlen}")
        for address in members[1:]:
            while address not in network:
                network = network.supernet()
        networks.append(network)
    v4 = ipaddress.collapse_addresses(n for n in networks if isinstance(n, ipaddress.IPv4Network))
    v6 = ipaddress.collapse_addresses(n for n in networks if isinstance(n, ipaddress.IPv6Network))
    return [str(n) for n in (*v4, *v6)]
