"""Model objects back to minimal Kubernetes manifests: what `auditor record` writes.

Only the fields auditor reads are written (no container images, env or secrets), so a
recorded snapshot is small and safe to share, and `object_from_dict(object_to_dict(o)) == o`
for every object the converter produces.  Owner workloads are written as the workload itself
(a Deployment, a CronJob), which the converter keeps as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditor.model.k8s import (
    KubeObject,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Peer,
    Pod,
    PolicyPort,
    ProbeKind,
    Rule,
)

_PROBE_FIELDS = {
    ProbeKind.LIVENESS: "livenessProbe",
    ProbeKind.READINESS: "readinessProbe",
    ProbeKind.STARTUP: "startupProbe",
}


def object_to_dict(obj: KubeObject) -> dict[str, Any]:
    """A manifest that converts back to `obj`."""
    if isinstance(obj, Pod):
        return _pod(obj)
    if isinstance(obj, NetworkPolicy):
        return _policy(obj)
    if isinstance(obj, Namespace):
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": _metadata(obj.name, "", obj.labels, obj)}
    return _node(obj)


def _metadata(name: str, namespace: str, labels: Mapping[str, str], obj: KubeObject) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if obj.uid:
        metadata["uid"] = obj.uid
    if obj.resource_version:
        metadata["resourceVersion"] = obj.resource_version
    if labels:
        metadata["labels"] = dict(labels)
    return metadata


def _node(node: Node) -> dict[str, Any]:
    addresses = [{"type": "InternalIP", "address": address} for address in node.addresses]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _metadata(node.name, "", node.labels, node),
        "status": {"addresses": addresses},
    }


def _pod(pod: Pod) -> dict[str, Any]:
    metadata = _metadata(pod.name, pod.namespace, pod.labels, pod)
    if pod.workload is not None:
        owner = {"kind": pod.workload.kind, "name": pod.workload.name, "controller": True}
        metadata["ownerReferences"] = [owner]
    spec: dict[str, Any] = {"containers": _containers(pod)}
    if pod.node_name:
        spec["nodeName"] = pod.node_name
    if pod.host_network:
        spec["hostNetwork"] = True
    status: dict[str, Any] = {}
    if pod.phase:
        status["phase"] = pod.phase
    if pod.host_ip:
        status["hostIP"] = pod.host_ip
    if pod.ips:
        status["podIP"] = pod.ips[0]
        status["podIPs"] = [{"ip": ip} for ip in pod.ips]
    if pod.ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if pod.ready else "False"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def _containers(pod: Pod) -> list[dict[str, Any]]:
    containers: dict[str, dict[str, Any]] = {}
    for port in pod.container_ports:
        container = containers.setdefault(port.container, {"name": port.container})
        entry: dict[str, Any] = {"containerPort": port.port, "protocol": port.protocol}
        if port.name:
            entry["name"] = port.name
        container.setdefault("ports", []).append(entry)
    for probe in pod.probes:
        container = containers.setdefault(probe.container, {"name": probe.container})
        action: dict[str, Any] = {"port": probe.port}
        if probe.path:
            action["path"] = probe.path
        container.setdefault(_PROBE_FIELDS[probe.kind], {})[probe.handler] = action
    return list(containers.values())


def _policy(policy: NetworkPolicy) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": _selector(policy.pod_selector)}
    if policy.policy_types:
        spec["policyTypes"] = [direction.value for direction in policy.policy_types]
    if policy.ingress is not None:
        spec["ingress"] = [_rule(rule, "from") for rule in policy.ingress]
    if policy.egress is not None:
        spec["egress"] = [_rule(rule, "to") for rule in policy.egress]
    metadata = _metadata(policy.name, policy.namespace, policy.labels, policy)
    if policy.generation:
        metadata["generation"] = policy.generation
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata, "spec": spec}


def _selector(selector: LabelSelector) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if selector.match_labels:
        raw["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        raw["matchExpressions"] = [
            {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
            for r in selector.match_expressions
        ]
    return raw


def _rule(rule: Rule, peers_key: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if rule.peers:
        raw[peers_key] = [_peer(peer) for peer in rule.peers]
    if rule.ports:
        raw["ports"] = [_port(port) for port in rule.ports]
    return raw


def _peer(peer: Peer) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if peer.pod_selector is not None:
        raw["podSelector"] = _selector(peer.pod_selector)
    if peer.namespace_selector is not None:
        raw["namespaceSelector"] = _selector(peer.namespace_selector)
    if peer.ip_block is not None:
        raw["ipBlock"] = {"cidr": peer.ip_block.cidr}
        if peer.ip_block.except_:
            raw["ipBlock"]["except"] = list(peer.ip_block.except_)
    return raw


def _port(port: PolicyPort) -> dict[str, Any]:
    raw: dict[str, Any] = {"protocol": port.protocol}
    if port.port is not None:
        raw["port"] = port.port
    if port.end_port is not None:
        raw["endPort"] = port.end_port
    return raw
