"""Model objects back to minimal Kubernetes manifests: what `auditor record` writes.

Only the fields auditor reads are written (no container images, env or secrets), so a
recorded snapshot is small and safe to share, and `object_from_dict(object_to_dict(o)) == o`
for every object the converter produces.  Owner workloads are written as the workload itself
(a Deployment, a CronJob), which the converter keeps as is.

Cilium policies write their L7 `rules` and `toGroups` entries back as the converter kept them
(`PortRule.rules_json`, `CiliumRule.group_entries`) and ICMP fields into their own `icmps[]`
entries, so a converted CNP exports as written.  A model object built by hand with only the L7
kinds or a group count gets stand-ins: one allow-all rule per kind (`http: [{}]`,
`dns: [{matchPattern: "*"}]`, `kafka: [{}]`, `l7proto: <L7_PROTO_PLACEHOLDER>`) and `{aws: {}}`
per group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from auditor.kube.cilium import L7_KINDS
from auditor.model.cilium import (
    CIDRPeer,
    CiliumCIDRGroup,
    CiliumNetworkPolicy,
    CiliumPolicySpec,
    CiliumPort,
    CiliumRule,
    ICMPType,
    PortRule,
    RuleSection,
    ServicePeer,
)
from auditor.model.k8s import (
    EndpointSlice,
    KubeObject,
    Namespace,
    NetworkPolicy,
    Node,
    Peer,
    Pod,
    PolicyPort,
    ProbeKind,
    Rule,
    Service,
)
from auditor.model.labels import LabelSelector

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
    if isinstance(obj, CiliumNetworkPolicy):
        return _cilium_policy(obj)
    if isinstance(obj, CiliumCIDRGroup):
        return _cidr_group(obj)
    if isinstance(obj, Namespace):
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": _metadata(obj.name, "", obj.labels, obj)}
    if isinstance(obj, Service):
        return _service_object(obj)
    if isinstance(obj, EndpointSlice):
        return _endpoint_slice(obj)
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


def _service_object(service: Service) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if service.selector is not None:
        spec["selector"] = dict(service.selector)
    if service.type:
        spec["type"] = service.type
    if service.cluster_ips:
        spec["clusterIP"] = service.cluster_ips[0]
        spec["clusterIPs"] = list(service.cluster_ips)
    if service.ports:
        spec["ports"] = [
            {"port": p.port, "protocol": p.protocol, **({"name": p.name} if p.name else {}),
             **({"targetPort": p.target_port} if p.target_port is not None else {})}
            for p in service.ports
        ]
    metadata = _metadata(service.name, service.namespace, service.labels, service)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def _endpoint_slice(eps: EndpointSlice) -> dict[str, Any]:
    endpoints: list[dict[str, Any]] = []
    for endpoint in eps.endpoints:
        entry: dict[str, Any] = {"addresses": list(endpoint.addresses)}
        conditions = {name: value for name, value in (("ready", endpoint.ready), ("serving", endpoint.serving),
                                                      ("terminating", endpoint.terminating))
                      if value is not None}
        if conditions:
            entry["conditions"] = conditions
        endpoints.append(entry)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": _metadata(eps.name, eps.namespace, eps.labels, eps),
        "addressType": eps.address_type,
        "endpoints": endpoints,
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
    if pod.service_account:
        spec["serviceAccountName"] = pod.service_account
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


L7_PROTO_PLACEHOLDER = "unknown"
"""The `l7proto` stand-in for a hand-built port rule that has the kind but no `rules_json`."""
_CILIUM_API_VERSION = "cilium.io/v2"


def _cilium_policy(policy: CiliumNetworkPolicy) -> dict[str, Any]:
    metadata = _metadata(policy.name, policy.namespace, policy.labels, policy)
    if policy.generation:
        metadata["generation"] = policy.generation
    raw: dict[str, Any] = {"apiVersion": _CILIUM_API_VERSION, "kind": policy.kind.value, "metadata": metadata}
    specs = [_cilium_spec(spec) for spec in policy.specs]
    if policy.has_spec and specs:
        raw["spec"] = specs.pop(0)
    if specs:
        raw["specs"] = specs
    return raw


def _cidr_group(group: CiliumCIDRGroup) -> dict[str, Any]:
    return {
        "apiVersion": _CILIUM_API_VERSION,
        "kind": "CiliumCIDRGroup",
        "metadata": _metadata(group.name, "", group.labels, group),
        "spec": {"externalCIDRs": list(group.cidrs)},
    }


def _cilium_spec(spec: CiliumPolicySpec) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if spec.endpoint_selector is not None:
        raw["endpointSelector"] = _selector(spec.endpoint_selector)
    if spec.node_selector is not None:
        raw["nodeSelector"] = _selector(spec.node_selector)
    for section in RuleSection:
        rules = _section(spec, section)
        if rules is not None:
            prefix = "from" if section.is_ingress else "to"
            raw[section.value] = [_cilium_rule(rule, prefix) for rule in rules]
    default_deny = {
        direction: value
        for direction, value in (("ingress", spec.enable_default_deny_ingress),
                                 ("egress", spec.enable_default_deny_egress))
        if value is not None
    }
    if default_deny:
        raw["enableDefaultDeny"] = default_deny
    if spec.description:
        raw["description"] = spec.description
    return raw


def _section(spec: CiliumPolicySpec, section: RuleSection) -> tuple[CiliumRule, ...] | None:
    return {RuleSection.INGRESS: spec.ingress, RuleSection.INGRESS_DENY: spec.ingress_deny,
            RuleSection.EGRESS: spec.egress, RuleSection.EGRESS_DENY: spec.egress_deny}[section]


def _cilium_rule(rule: CiliumRule, prefix: str) -> dict[str, Any]:
    peers: dict[str, list[Any] | None] = {
        "Endpoints": None if rule.endpoints is None else [_selector(s) for s in rule.endpoints],
        "Requires": [_selector(s) for s in rule.requires] if rule.requires else None,
        "Entities": None if rule.entities is None else list(rule.entities),
        "CIDR": None if rule.cidrs is None else list(rule.cidrs),
        "CIDRSet": None if rule.cidr_sets is None else [_cidr_peer(p) for p in rule.cidr_sets],
        "Services": None if rule.services is None else [_service(s) for s in rule.services],
        "FQDNs": None if rule.fqdns is None else [_fqdn(f.match_name, f.match_pattern) for f in rule.fqdns],
        "Nodes": None if rule.nodes is None else [_selector(s) for s in rule.nodes],
        "Groups": _groups(rule),
    }
    raw: dict[str, Any] = {f"{prefix}{name}": value for name, value in peers.items() if value is not None}
    if rule.to_ports:
        raw["toPorts"] = [_port_rule(port_rule) for port_rule in rule.to_ports]
    if rule.icmps:
        raw["icmps"] = _icmps(rule.icmps)
    return raw


def _groups(rule: CiliumRule) -> list[Any] | None:
    if rule.group_entries:
        return [json.loads(entry) for entry in rule.group_entries]
    return [{"aws": {}} for _ in range(rule.groups)] or None


def _icmps(types: tuple[ICMPType, ...]) -> list[dict[str, Any]]:
    """One `icmps[]` entry per index up to the last one used (an index with no field is `{}`)."""
    entries: list[dict[str, Any]] = [{} for _ in range(max(icmp.entry for icmp in types) + 1)]
    for icmp in types:
        entries[icmp.entry].setdefault("fields", []).append({"type": icmp.type, "family": icmp.family})
    return entries


def _cidr_peer(peer: CIDRPeer) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if peer.cidr:
        raw["cidr"] = peer.cidr
    if peer.except_:
        raw["except"] = list(peer.except_)
    if peer.group_ref:
        raw["cidrGroupRef"] = peer.group_ref
    if peer.group_selector is not None:
        raw["cidrGroupSelector"] = _selector(peer.group_selector)
    return raw


def _service(peer: ServicePeer) -> dict[str, Any]:
    """k8sService for a name, k8sServiceSelector for a selector, both (in one namespace) for both."""
    namespace = {"namespace": peer.namespace} if peer.namespace else {}
    raw: dict[str, Any] = {}
    if peer.selector is None or peer.name:
        raw["k8sService"] = {**({"serviceName": peer.name} if peer.name else {}), **namespace}
    if peer.selector is not None:
        raw["k8sServiceSelector"] = {"selector": _selector(peer.selector), **namespace}
    return raw


def _fqdn(match_name: str, match_pattern: str) -> dict[str, str]:
    raw = {"matchName": match_name, "matchPattern": match_pattern}
    return {key: value for key, value in raw.items() if value}


def _port_rule(rule: PortRule) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if rule.ports:
        raw["ports"] = [_cilium_port(port) for port in rule.ports]
    if rule.rules_json:
        raw["rules"] = json.loads(rule.rules_json)
    elif rule.l7:
        raw["rules"] = {kind: _l7_rules(kind) for kind in rule.l7}
    if rule.server_names:
        raw["serverNames"] = list(rule.server_names)
    return raw


def _l7_rules(kind: str) -> Any:
    """One allow-all rule of an L7 kind (a fresh value each time: callers may mutate the manifest)."""
    if kind == "dns":
        return [{"matchPattern": "*"}]
    return [{}] if kind in L7_KINDS else L7_PROTO_PLACEHOLDER


def _cilium_port(port: CiliumPort) -> dict[str, Any]:
    raw: dict[str, Any] = {"protocol": port.protocol}
    if port.port:
        raw["port"] = port.port
    if port.end_port:
        raw["endPort"] = port.end_port
    return raw
