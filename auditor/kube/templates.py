"""Pods from workload templates, for manifests that hold workloads but no pods (a git repo).

A Deployment, DaemonSet, StatefulSet, ReplicaSet, Job or CronJob in the manifests stands for
the pods it will create: one representative Pod `<workload>-template` carries the template's
labels, containers, ports and probes, owned by the workload.  It is only made when the loaded
manifests hold no pod of that workload, so `kubectl get … -o yaml` output (real pods) is
unaffected.  Template pods have no IP: they take part in static analysis, not in flow matching.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from auditor.kube.convert import object_from_dict
from auditor.model.k8s import KubeObject, Pod

WORKLOAD_KINDS: Mapping[str, str] = {
    "Deployment": "apps/v1",
    "DaemonSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
}
TEMPLATE_SUFFIX = "-template"


def is_workload(raw: Mapping[str, Any]) -> bool:
    """A workload kind whose pod template we can read."""
    kind = raw.get("kind")
    return isinstance(kind, str) and kind in WORKLOAD_KINDS and isinstance(raw.get("spec"), Mapping)


def template_pods(
    workloads: Iterable[tuple[str, Mapping[str, Any]]], objects: Iterable[KubeObject]
) -> list[Pod]:
    """A representative Pod for every workload that has no pod among `objects`."""
    owned = {(pod.namespace, pod.workload.kind, pod.workload.name)
             for pod in objects if isinstance(pod, Pod) and pod.workload is not None}
    pods: list[Pod] = []
    for where, raw in workloads:
        metadata = raw.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "default")
        name, kind = str(metadata.get("name", "")), str(raw["kind"])
        if not name or (namespace, kind, name) in owned:
            continue
        template = _pod_template(raw)
        if template is None:
            continue
        where_template = f"{where} ({kind} {name} template)"
        pod = object_from_dict(_pod_dict(namespace, kind, name, template), where=where_template)
        assert isinstance(pod, Pod)
        pods.append(pod)
    return pods


def _pod_template(raw: Mapping[str, Any]) -> Mapping[str, Any] | None:
    spec = raw["spec"]
    if raw["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") if isinstance(spec, Mapping) else None
    return template if isinstance(template, Mapping) else None


def _pod_dict(namespace: str, kind: str, name: str, template: Mapping[str, Any]) -> dict[str, Any]:
    metadata = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name + TEMPLATE_SUFFIX,
            "namespace": namespace,
            "labels": dict(metadata.get("labels") or {}),
            "ownerReferences": [{"apiVersion": WORKLOAD_KINDS[kind], "kind": kind, "name": name,
                                 "controller": True, "uid": ""}],
        },
        "spec": dict(template.get("spec") or {}),
    }
