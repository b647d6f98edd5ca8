"""Flows per second through the whole offline pipeline (file -> findings), and its peak memory.

    .venv/bin/python bench/bench_pipeline.py [--flows 1000000] [--repeat-real 50]

Each measurement runs `auditor.app.audit.run_audit` (FileFlowSource -> Correlator ->
FindingAggregator, plus static findings) in a fresh child process, which reports wall time,
CPU time and its peak RSS (resource.getrusage).  Runs:
  (a) the real fixtures in tests/fixtures/real-flows, each file passed --repeat-real times, with
      the synthetic inventory of tests/fixtures/scenarios/real-dns;
  (b) synthetic flows (gzip jsonpb lines in a temp dir) over a synthetic 10-namespace
      inventory: 10 % and 100 % of --flows, so the two peak RSS figures show whether memory
      grows with the number of flows (it should not: every cache and the aggregator are bounded).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "fixtures" / "real-flows"
REAL_MANIFESTS = ROOT / "tests" / "fixtures" / "scenarios" / "real-dns" / "manifests.yaml"
NAMESPACES = [f"team-{i}" for i in range(10)]
APPS = ["web", "api", "db", "cache", "worker"]
REPLICAS = 4
T0_S = 1_763_600_000


def pod_ip(ns_index: int, app_index: int, replica: int) -> str:
    return f"10.{ns_index + 1}.{app_index}.{replica + 10}"


def inventory() -> list[dict[str, Any]]:
    """10 namespaces x 5 workloads x 4 pods, default-deny ingress, a few allow rules, DNS egress."""
    objects: list[dict[str, Any]] = []
    for n, ns in enumerate(NAMESPACES):
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for a, app in enumerate(APPS):
            for r in range(REPLICAS):
                objects.append({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"{app}-7d4b9c8f6-{r}x2k9", "namespace": ns,
                                 "labels": {"app": app, "pod-template-hash": "7d4b9c8f6"},
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "uid": app,
                                                      "controller": True, "name": f"{app}-7d4b9c8f6"}]},
                    "spec": {"containers": [{"name": app, "image": "x", "readinessProbe": {
                        "tcpSocket": {"port": 8080}}}]},
                    "status": {"podIP": pod_ip(n, a, r), "podIPs": [{"ip": pod_ip(n, a, r)}]},
                })
        objects.extend(_policies(ns))
    return objects


def _policies(ns: str) -> list[dict[str, Any]]:
    def netpol(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"}, "spec": spec}

    def allow(dst: str, src: str, port: int) -> dict[str, Any]:
        return netpol(f"{dst}-from-{src}", {"podSelector": {"matchLabels": {"app": dst}}, "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": src}}}], "ports": [{"port": port}]}]})

    return [netpol("default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]}),
            allow("api", "web", 8080), allow("db", "api", 5432), allow("cache", "api", 6379)]


def _endpoint(n: int, a: int, r: int) -> dict[str, Any]:
    ns, app = NAMESPACES[n], APPS[a]
    return {"identity": 1000 + n * 10 + a, "namespace": ns, "pod_name": f"{app}-7d4b9c8f6-{r}x2k9",
            "labels": [f"k8s:app={app}", f"k8s:io.kubernetes.pod.namespace={ns}"]}


def synthetic_lines(count: int, seed: int = 7) -> Any:
    """jsonpb lines: deliveries, policy verdicts, replies, denied pairs (verdict + drop event)."""
    rng = random.Random(seed)
    emitted = 0
    tick = 0
    while emitted < count:
        tick += 1
        n = rng.randrange(len(NAMESPACES))
        src = (rng.randrange(len(APPS)), rng.randrange(REPLICAS))
        dst = (rng.randrange(len(APPS)), rng.randrange(REPLICAS))
        port = rng.choice((8080, 5432, 6379, 9090))
        sport = rng.randrange(32768, 61000)
        secs, nanos = divmod(tick * 50_000, 1_000_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0_S + secs)) + f".{nanos:09d}Z"
        roll = rng.random()
        base: dict[str, Any] = {
            "time": stamp,
            "IP": {"source": pod_ip(n, *src), "destination": pod_ip(n, *dst), "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": sport, "destination_port": port, "flags": {"SYN": True}}},
            "source": _endpoint(n, src[0], src[1]), "destination": _endpoint(n, dst[0], dst[1]),
            "Type": "L3_L4", "node_name": "node-1", "traffic_direction": "INGRESS", "is_reply": False,
        }
        if roll < 0.2:
            events = [dict(base, verdict="DROPPED", event_type={"type": 5}),
                      dict(base, verdict="DROPPED", event_type={"type": 1, "sub_type": 133},
                           drop_reason_desc="POLICY_DENIED")]
        elif roll < 0.4:
            events = [dict(base, verdict="FORWARDED", event_type={"type": 5}, policy_match_type=2)]
        elif roll < 0.55:
            events = [dict(base, verdict="FORWARDED", event_type={"type": 4}, is_reply=True,
                           trace_observation_point="TO_ENDPOINT")]
        else:
            events = [dict(base, verdict="FORWARDED", event_type={"type": 4},
                           trace_observation_point="TO_ENDPOINT")]
        for flow in events:
            yield json.dumps({"flow": flow, "node_name": "node-1", "time": stamp}, separators=(",", ":"))
            emitted += 1


def write_inputs(folder: Path, count: int) -> tuple[Path, Path]:
    manifests = folder / "inventory.yaml"
    if not manifests.exists():
        manifests.write_text(yaml.safe_dump_all(inventory()))
    flows = folder / f"flows-{count}.jsonl.gz"
    with gzip.open(flows, "wt", compresslevel=1) as out:
        for line in synthetic_lines(count):
            out.write(line + "\n")
    return manifests, flows


def child(manifests: str, flows: list[str]) -> None:
    """Runs in a fresh process: one audit, then a JSON line of numbers on stdout."""
    from auditor.app.audit import AuditOptions, run_audit

    wall, cpu = time.perf_counter(), time.process_time()
    result = run_audit(AuditOptions(manifests=(manifests,), flows=tuple(flows)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"flows": result.summary.flows, "wall": wall, "cpu": cpu, "peak_mib": peak_kib / 1024,
                      "findings": len(result.findings), "judged": result.summary.judged,
                      "deduplicated": result.summary.deduplicated}))


def measure(label: str, manifests: Path, flows: list[Path]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(manifests), *map(str, flows)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    numbers: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    flows = numbers["flows"]
    print(f"  {label:22s} {flows:>9,} flows {flows / numbers['wall']:>7,.0f}/s wall"
          f" {flows / numbers['cpu']:>7,.0f}/s cpu"
          f"  peak RSS {numbers['peak_mib']:5.1f} MiB  findings {numbers['findings']:>4}"
          f"  judged {numbers['judged']:>8,}  dedup {numbers['deduplicated']:>7,}")
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--repeat-real", type=int, default=50)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return
    print("offline pipeline: file -> FileFlowSource -> Correlator -> FindingAggregator (+ static findings)")
    real = sorted(REAL.glob("*.jsonl")) * args.repeat_real
    measure(f"real fixtures x{args.repeat_real}", REAL_MANIFESTS, real)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        folder = Path(tmp)
        small = max(1, args.flows // 10)
        for count in (small, args.flows):
            started = time.perf_counter()
            manifests, flows = write_inputs(folder, count)
            print(f"  (generated {count:,} synthetic lines in {time.perf_counter() - started:.1f} s)")
            measure(f"synthetic {count:,}", manifests, [flows])


if __name__ == "__main__":
    main()
