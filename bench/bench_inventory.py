"""Inventory load time: 10,000 pods, 2,000 namespaces, 5,000 policies from manifests and live.

    .venv/bin/python bench/bench_inventory.py [--pods 10000 --namespaces 2000 --policies 5000]

Writes the objects as `kubectl get ... -o yaml`-style Lists (and the same as JSON) into a temp
directory, then prints wall time for: YAML load+convert, JSON load+convert, conversion alone
(dicts already parsed), the live watcher's start-up (the real client listing everything from
the loopback test API in pages, until ready), and the memory of the converted objects.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import yaml

from auditor.kube.convert import object_from_dict
from auditor.kube.manifests import load_manifests

Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def namespace(index: int) -> dict[str, Any]:
    name = f"team-{index:04d}"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": f"ns-{index}",
            "resourceVersion": str(index),
            "labels": {"kubernetes.io/metadata.name": name, "team": f"t{index % 50}"},
        },
    }


def pod(index: int, namespaces: int) -> dict[str, Any]:
    app = f"app-{index % 7}"
    container = {
        "name": app,
        "image": "registry.example/app:1.0",
        "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "metrics"}],
        "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"}},
        "livenessProbe": {"tcpSocket": {"port": 8080}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{app}-5c6b7d8f9-{index:05d}",
            "namespace": f"team-{index % namespaces:04d}",
            "uid": f"pod-{index}",
            "resourceVersion": str(100_000 + index),
            "labels": {"app": app, "tier": "backend" if index % 2 else "web", "pod-template-hash": "5c6b7d8f9"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{app}-5c6b7d8f9",
                    "controller": True,
                    "uid": "rs",
                }
            ],
        },
        "spec": {"nodeName": f"worker-{index % 100}", "containers": [container]},
        "status": {
            "phase": "Running",
            "hostIP": f"192.168.{index % 100 // 256}.{index % 100}",
            "podIP": f"10.{index // 65536}.{index // 256 % 256}.{index % 256}",
            "podIPs": [{"ip": f"10.{index // 65536}.{index // 256 % 256}.{index % 256}"}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def policy(index: int, namespaces: int) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"policy-{index:05d}",
            "namespace": f"team-{index % namespaces:04d}",
            "resourceVersion": str(200_000 + index),
            "generation": 1,
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": f"app-{index % 7}"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"team": f"t{index % 50}"}},
                            "podSelector": {
                                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]
                            },
                        }
                    ],
                    "ports": [{"port": "http"}, {"port": 9090, "protocol": "TCP"}],
                }
            ],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}}],
                    "ports": [{"port": 5432}],
                }
            ],
        },
    }


def objects(pods: int, namespaces: int, policies: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "namespaces": [namespace(i) for i in range(namespaces)],
        "pods": [pod(i, namespaces) for i in range(pods)],
        "policies": [policy(i, namespaces) for i in range(policies)],
    }


def timed(label: str, func: Any) -> Any:
    started = time.perf_counter()
    result = func()
    print(f"{label:<42} {time.perf_counter() - started:8.3f} s")
    return result


def live_sync(groups: dict[str, list[dict[str, Any]]]) -> None:
    """Start-up of the live watcher: the real client lists every object from the loopback test API."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.kubeapi
    from auditor.kube.client import factory_for
    from auditor.kube.watch import InventoryWatcher
    from tests.kubeapi import KubeAPI

    api = KubeAPI().start()
    resources = {"namespaces": "namespaces", "pods": "pods", "policies": "networkpolicies"}
    for group, items in groups.items():
        for item in items:
            api.put(resources[group], item)
    changes: list[object] = []
    watcher = InventoryWatcher(factory_for(api.configuration()), changes.append)
    started = time.perf_counter()
    watcher.start()
    synced = watcher.wait_synced(600)
    elapsed = time.perf_counter() - started
    watcher.stop()
    api.stop()
    print(
        f"{'live initial lists (pages of 500) to ready':<42} {elapsed:8.3f} s",
        f"({len(changes)} changes, synced: {synced})",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=2_000)
    parser.add_argument("--policies", type=int, default=5_000)
    args = parser.parse_args()
    groups = objects(args.pods, args.namespaces, args.policies)
    total = sum(len(items) for items in groups.values())
    print(f"objects: {args.namespaces} namespaces, {args.pods} pods, {args.policies} policies ({total})")
    with tempfile.TemporaryDirectory() as tmp:
        for name, items in groups.items():
            document = {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
            (Path(tmp) / "yaml").mkdir(exist_ok=True)
            (Path(tmp) / "json").mkdir(exist_ok=True)
            (Path(tmp) / "yaml" / f"{name}.yaml").write_text(yaml.dump(document, Dumper=Dumper))
            (Path(tmp) / "json" / f"{name}.json").write_text(json.dumps(document))
        size = sum(f.stat().st_size for f in (Path(tmp) / "yaml").iterdir())
        print(f"YAML size: {size / 1e6:.1f} MB, libyaml: {yaml.__with_libyaml__}")
        loaded = timed("load_manifests (YAML, parse + convert)", lambda: load_manifests([f"{tmp}/yaml"]))
        timed("load_manifests (JSON, parse + convert)", lambda: load_manifests([f"{tmp}/json"]))
    raw = [item for items in groups.values() for item in items]
    timed("object_from_dict only (already parsed)", lambda: [object_from_dict(o) for o in raw])
    live_sync(groups)
    tracemalloc.start()
    kept = [object_from_dict(o) for o in raw]
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(kept) == len(loaded) == total
    print(
        f"{'memory of converted objects (tracemalloc)':<42} {current / 1e6:8.1f} MB (peak {peak / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    main()
