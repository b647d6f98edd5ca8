"""Pods: IPs, placement, readiness, container ports, network probes and the owning workload.

Owner workload rules (from the pod's controller ownerReference):

- ReplicaSet -> Deployment: the ReplicaSet name minus `-<pod-template-hash>`, using the
  pod's `pod-template-hash` label when present, else a trailing segment that looks like a
  generated hash (5-10 characters of Kubernetes' safe alphabet).  A ReplicaSet without such
  a suffix stays a ReplicaSet.
- Job -> CronJob: a CronJob names its Jobs `<cronjob>-<scheduled time in minutes since the
  epoch>`; a trailing `-<8 to 10 digits>` is taken as that suffix.  Other Jobs stay Jobs.
- StatefulSet, DaemonSet and any other controller kind are kept as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from auditor.kube.fields import Fields
from auditor.kube.meta import Meta
from auditor.model.k8s import ContainerPort, Pod, Probe, ProbeKind, WorkloadRef

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
_GENERATED_HASH = re.compile(r"^[bcdfghjklmnpqrstvwxz2456789]{5,10}$")
_CRON_SUFFIX = re.compile(r"^(?P<name>.+)-\d{8,10}$")
_PROBE_FIELDS = (
    ("livenessProbe", ProbeKind.LIVENESS),
    ("readinessProbe", ProbeKind.READINESS),
    ("startupProbe", ProbeKind.STARTUP),
)
_NETWORK_HANDLERS = ("httpGet", "tcpSocket", "grpc")


def pod_from_dict(obj: Mapping[str, Any], fields: Fields, meta: Meta) -> Pod:
    """Convert a v1 Pod (metadata already read)."""
    spec = fields.mapping(obj.get("spec"), "spec")
    status = fields.mapping(obj.get("status"), "status")
    ports: list[ContainerPort] = []
    probes: list[Probe] = []
    for group in ("containers", "initContainers"):
        for index, container in enumerate(fields.sequence(spec.get(group), f"spec.{group}")):
            path = f"spec.{group}[{index}]"
            container = fields.mapping(container, path)
            name = fields.string(container.get("name"), f"{path}.name")
            ports.extend(_container_ports(container, fields, path, name))
            probes.extend(_probes(container, fields, path, name))
    return Pod(
        namespace=meta.namespace,
        name=meta.name,
        labels=meta.labels,
        ips=_pod_ips(status, fields),
        node_name=fields.string(spec.get("nodeName"), "spec.nodeName"),
        host_ip=fields.string(status.get("hostIP"), "status.hostIP"),
        host_network=fields.boolean(spec.get("hostNetwork"), "spec.hostNetwork"),
        ready=_ready(status, fields),
        phase=fields.string(status.get("phase"), "status.phase"),
        container_ports=tuple(ports),
        probes=tuple(probes),
        workload=workload_of(meta, fields),
        uid=meta.uid,
        resource_version=meta.resource_version,
        service_account=_service_account(spec, fields),
    )


def _service_account(spec: Mapping[str, Any], fields: Fields) -> str:
    """spec.serviceAccountName, else the deprecated spec.serviceAccount (the API server keeps both in step)."""
    name = fields.string(spec.get("serviceAccountName"), "spec.serviceAccountName")
    return name or fields.string(spec.get("serviceAccount"), "spec.serviceAccount")


def _pod_ips(status: Mapping[str, Any], fields: Fields) -> tuple[str, ...]:
    ips: list[str] = []
    for index, entry in enumerate(fields.sequence(status.get("podIPs"), "status.podIPs")):
        entry = fields.mapping(entry, f"status.podIPs[{index}]")
        ip = fields.string(entry.get("ip"), f"status.podIPs[{index}].ip")
        if ip and ip not in ips:
            ips.append(ip)
    primary = fields.string(status.get("podIP"), "status.podIP")
    if primary and primary not in ips:
        ips.insert(0, primary)
    return tuple(ips)


def _ready(status: Mapping[str, Any], fields: Fields) -> bool | None:
    """The Ready condition: True/False, None when the pod reports no Ready condition."""
    for index, condition in enumerate(fields.sequence(status.get("conditions"), "status.conditions")):
        condition = fields.mapping(condition, f"status.conditions[{index}]")
        if condition.get("type") == "Ready":
            return fields.string(condition.get("status"), f"status.conditions[{index}].status") == "True"
    return None


def _container_ports(
    container: Mapping[str, Any], fields: Fields, path: str, container_name: str
) -> list[ContainerPort]:
    ports = []
    for index, entry in enumerate(fields.sequence(container.get("ports"), f"{path}.ports")):
        where = f"{path}.ports[{index}]"
        entry = fields.mapping(entry, where)
        port = fields.integer(entry.get("containerPort"), f"{where}.containerPort")
        if port is None:
            fields.fail(f"{where}.containerPort", "required field is missing")
        ports.append(
            ContainerPort(
                port=port,
                protocol=fields.string(entry.get("protocol"), f"{where}.protocol") or "TCP",
                name=fields.string(entry.get("name"), f"{where}.name"),
                container=container_name,
            )
        )
    return ports


def _probes(container: Mapping[str, Any], fields: Fields, path: str, container_name: str) -> list[Probe]:
    probes = []
    for field_name, kind in _PROBE_FIELDS:
        probe_path = f"{path}.{field_name}"
        probe = fields.mapping(container.get(field_name), probe_path)
        for handler in _NETWORK_HANDLERS:
            if probe.get(handler) is None:
                continue
            handler_path = f"{probe_path}.{handler}"
            action = fields.mapping(probe.get(handler), handler_path)
            port = fields.int_or_string(action.get("port"), f"{handler_path}.port")
            if port is None:
                fields.fail(f"{handler_path}.port", "required field is missing")
            route = fields.string(action.get("path"), f"{handler_path}.path") if handler == "httpGet" else ""
            probes.append(Probe(kind=kind, handler=handler, port=port, container=container_name, path=route))
    return probes


def _controller(meta: Meta, fields: Fields) -> tuple[str, str] | None:
    for index, owner in enumerate(meta.owner_references):
        path = f"metadata.ownerReferences[{index}]"
        if fields.boolean(owner.get("controller"), f"{path}.controller"):
            kind = fields.string(owner.get("kind"), f"{path}.kind", required=True)
            return kind, fields.string(owner.get("name"), f"{path}.name", required=True)
    return None


def workload_of(meta: Meta, fields: Fields) -> WorkloadRef | None:
    """The top-level workload that controls the pod (see the module docstring), None for bare pods."""
    controller = _controller(meta, fields)
    if controller is None:
        return None
    kind, name = controller
    if kind == "ReplicaSet":
        deployment = _strip_template_hash(name, meta.labels.get(POD_TEMPLATE_HASH_LABEL))
        return WorkloadRef("Deployment", deployment) if deployment else WorkloadRef(kind, name)
    if kind == "Job":
        match = _CRON_SUFFIX.match(name)
        return WorkloadRef("CronJob", match["name"]) if match else WorkloadRef(kind, name)
    return WorkloadRef(kind, name)


def _strip_template_hash(replica_set: str, template_hash: str | None) -> str | None:
    base, sep, suffix = replica_set.rpartition("-")
    if not sep or not base:
        return None
    if template_hash:
        return base if suffix == template_hash else None
    return base if _GENERATED_HASH.match(suffix) else None
