"""The endpoints of an `auditor explain` query, resolved to the engine's subjects.

- `NS/POD`: that pod (its first IP);
- `node/NAME`: that node (its first address), Cilium's `host` for pods on it and `remote-node`
  for the others; a pod in a namespace called `node` is still found when no node has that name;
- an IP (`A.B.C.D` or `{"ip": "A.B.C.D"}`): a pod IP is that pod, a node address that node,
  anything else an external address, which Cilium gives the `world` identity;
- `{"ip": ..., "entity": E}`: an address Cilium gives the reserved identity E instead of world:
  `kube-apiserver` (an external API server, or on a node address the API server running on that
  node), `ingress`, `health`, `init`, `unmanaged`; `world` is the default;
- `{"ip": ..., "names": ["one.one.one.one"]}`: an external address and the DNS names it was
  looked up by, which `toFQDNs` rules match; without names such a rule cannot be decided.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from auditor.app.suggest import hint, pod_hint
from auditor.errors import InputError
from auditor.model.decision import ExternalSubject, NodeSubject, PodSubject, Subject
from auditor.model.k8s import Node
from auditor.policy.selectors import is_address
from auditor.policy.state import ClusterState

ENTITIES = ("world", "kube-apiserver", "ingress", "health", "init", "unmanaged")
"""Reserved identities an `{"ip": ..., "entity": ...}` endpoint may carry."""
_NODE_ENTITIES = ("kube-apiserver",)
_KEYS = {"ip", "entity", "names"}
_SHAPES = '"NS/POD", "node/NAME", an IP or {"ip": "A.B.C.D"} (optional "entity", "names")'


class QueryError(InputError):
    """One query cannot be answered (unknown pod, bad endpoint, bad port)."""


def resolve(state: ClusterState, endpoint: str | Mapping[str, Any]) -> Subject:
    """An endpoint (see the module docstring) to a subject; QueryError when it cannot be."""
    if isinstance(endpoint, Mapping):
        return _from_mapping(state, endpoint)
    if not isinstance(endpoint, str) or not endpoint:
        raise QueryError(f"endpoint {endpoint!r} must be {_SHAPES}")
    if endpoint.startswith("node/"):
        node = state.node(endpoint[len("node/"):])
        if node is not None:
            return NodeSubject(node.name, _node_ip(node))
        if state.pod("node", endpoint[len("node/"):]) is None:
            wanted = endpoint[len("node/"):]
            raise QueryError(f"unknown node {wanted} (not in the manifests at that time)"
                             + hint(wanted, (n.name for n in state.nodes)))
    if "/" in endpoint and not is_address(endpoint.split("/")[0]):
        namespace, _, name = endpoint.partition("/")
        pod = state.pod(namespace, name)
        if pod is None:
            raise QueryError(f"unknown pod {endpoint} (not in the manifests at that time)"
                             + pod_hint(state, namespace, name))
        return PodSubject(pod, pod.ips[0] if pod.ips else "")
    return _by_ip(state, endpoint)


def parse_endpoint_arg(text: str) -> str | Mapping[str, Any]:
    """A command-line endpoint: `NS/POD`, `node/NAME`, an IP, or a JSON object as in a query file."""
    if not text.lstrip().startswith("{"):
        return text
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise QueryError(f"endpoint {text!r} is not a JSON object") from exc
    if not isinstance(value, dict):
        raise QueryError(f"endpoint {text!r} is not a JSON object")
    return value


def subject_text(subject: Subject) -> str:
    if isinstance(subject, PodSubject):
        return subject.pod.key
    if isinstance(subject, NodeSubject):
        return f"node/{subject.node_name}"
    return subject.ip


def identity_text(subject: Subject) -> str:
    """The reserved identities and DNS names a query gave a non-pod endpoint ("" when none)."""
    if isinstance(subject, PodSubject):
        return ""
    parts = [f"entity {', '.join(sorted(subject.identities))}"] if subject.identities else []
    if isinstance(subject, ExternalSubject) and subject.names:
        parts.append(f"DNS {', '.join(subject.names)}")
    return "; ".join(parts)


def _node_ip(node: Node) -> str:
    return node.addresses[0] if node.addresses else ""


def _by_ip(state: ClusterState, ip: str) -> Subject:
    if not is_address(ip):
        raise QueryError(f"{ip!r} is neither NS/POD, node/NAME nor an IP address")
    canonical = str(ipaddress.ip_address(ip))
    pod = state.pod_by_ip(canonical)
    if pod is not None:
        return PodSubject(pod, canonical)
    node = state.node_by_ip(canonical)
    if node is not None:
        return NodeSubject(node.name, canonical)
    return ExternalSubject(canonical)


def _from_mapping(state: ClusterState, endpoint: Mapping[str, Any]) -> Subject:
    shown = json.dumps(dict(endpoint), default=str)
    ip = endpoint.get("ip")
    if not isinstance(ip, str) or set(endpoint) - _KEYS:
        raise QueryError(f"endpoint {shown} must be {_SHAPES}")
    subject = _by_ip(state, ip)
    if endpoint.get("entity") is not None:
        subject = _with_entity(subject, endpoint["entity"], shown)
    if endpoint.get("names") is not None:
        subject = _with_names(subject, endpoint["names"], shown)
    return subject


def _with_entity(subject: Subject, entity: object, shown: str) -> Subject:
    if not isinstance(entity, str) or entity not in ENTITIES:
        raise QueryError(f"endpoint {shown}: entity must be one of {', '.join(ENTITIES)}")
    if isinstance(subject, PodSubject):
        raise QueryError(f"endpoint {shown}: {subject.pod.key}'s identity comes from its labels, not an entity")
    if isinstance(subject, NodeSubject):
        if entity not in _NODE_ENTITIES:
            raise QueryError(f"endpoint {shown}: a node address can only add the entity kube-apiserver")
        return dataclasses.replace(subject, identities=frozenset((entity,)))
    return subject if entity == "world" else dataclasses.replace(subject, identities=frozenset((entity,)))


def _with_names(subject: Subject, names: object, shown: str) -> Subject:
    if not isinstance(subject, ExternalSubject):
        raise QueryError(f"endpoint {shown}: DNS names (toFQDNs) apply to external addresses only")
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise QueryError(f"endpoint {shown}: names must be a list of DNS names")
    return dataclasses.replace(subject, names=tuple(n.strip() for n in names))
