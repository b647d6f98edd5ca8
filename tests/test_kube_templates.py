"""Workload templates stand for their pods when the manifests hold none."""

from __future__ import annotations

from pathlib import Path

import yaml

from auditor.kube.manifests import load_manifests_report
from auditor.model.k8s import Pod, ProbeKind

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "api", "namespace": "shop"},
    "spec": {
        "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {
                "containers": [
                    {
                        "name": "api",
                        "image": "x",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                    }
                ]
            },
        }
    },
}
CRONJOB = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {"name": "nightly", "namespace": "ops"},
    "spec": {
        "schedule": "0 0 * * *",
        "jobTemplate": {
            "spec": {
                "template": {
                    "metadata": {"labels": {"job": "nightly"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                }
            }
        },
    },
}


def _load(tmp_path: Path, *docs: dict[str, object]) -> list[Pod]:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return [obj for obj in load_manifests_report([str(path)]).objects if isinstance(obj, Pod)]


class TestTemplatePods:
    def test_deployment_template_becomes_a_pod(self, tmp_path: Path) -> None:
        """A Deployment without pods yields one template pod with its labels, ports, probes and owner."""
        [pod] = _load(tmp_path, DEPLOYMENT)
        assert (pod.namespace, pod.name, dict(pod.labels)) == ("shop", "api-template", {"app": "api"})
        assert pod.workload is not None
        assert (pod.workload.kind, pod.workload.name) == ("Deployment", "api")
        assert pod.resolve_port("http") == 8080
        assert [(p.kind, p.port) for p in pod.probes] == [(ProbeKind.READINESS, "http")]
        assert pod.ips == ()

    def test_real_pod_suppresses_the_template(self, tmp_path: Path) -> None:
        """When a pod of the workload is loaded, no template pod is added."""
        real = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "api-7d9c5b7f4-x2k8p",
                "namespace": "shop",
                "labels": {"app": "api", "pod-template-hash": "7d9c5b7f4"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "api-7d9c5b7f4",
                        "controller": True,
                        "uid": "1",
                    }
                ],
            },
            "spec": {"containers": []},
        }
        assert [pod.name for pod in _load(tmp_path, DEPLOYMENT, real)] == ["api-7d9c5b7f4-x2k8p"]

    def test_cronjob_template(self, tmp_path: Path) -> None:
        """A CronJob's job template is read through jobTemplate."""
        [pod] = _load(tmp_path, CRONJOB)
        assert (pod.name, dict(pod.labels)) == ("nightly-template", {"job": "nightly"})
