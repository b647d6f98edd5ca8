"""Policy-history memory: bytes per pod change, and 1,000 nodes heartbeating for 24 h of simulated time.

    .venv/bin/python bench/bench_history.py [--changes 2000] [--nodes 1000 --hours 24 --interval 300]

Pod changes: one namespace of 200 (then 2,000) pods as the initial state of a `ClusterHistory`,
then `--changes` watch events converted from API-shaped dicts like the live watcher's: *real*
changes (readiness flips, which auditor reads) and *status-only* writes (a new resourceVersion,
nothing auditor reads changed).  Prints the traced memory the history keeps per change (the new
Pod object included) and the apply time.

Heartbeats: 1,000 nodes in the initial state, each writing its status (new resourceVersion and
heartbeat times only) every `--interval` seconds of simulated time (kubelet's
nodeStatusReportFrequency is 5 min with node leases, 10 s without), pruned every simulated
minute with the default 24 h window as the daemon does.  Prints resident memory (VmRSS) every
simulated 2 h; stops early above `--max-rss-mib` so an unbounded history cannot take the machine.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from auditor.kube.convert import object_from_dict
from auditor.model.k8s import Change, ChangeType
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inventory import namespace, pod

S = 1_000_000_000
CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pod_write(index: int, version: int, *, ready: bool) -> dict[str, Any]:
    """Pod `index` as the API returns it after a kubelet status write."""
    raw = pod(index, 1)
    raw["metadata"]["resourceVersion"] = str(version)
    raw["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                    "lastTransitionTime": f"2026-01-01T00:00:{version % 60:02d}Z"}]
    return raw


def pod_changes(pods: int, changes: int, *, real: bool) -> tuple[float, float, int]:
    """(bytes kept per change, µs per apply, states recorded) for `changes` writes to `pods` pods.

    The memory counts everything the history keeps, the new Pod objects included (converted
    inside the traced loop, as the watcher does); the time is taken on a second, untraced run.
    """
    objects = [object_from_dict(namespace(0))] + [object_from_dict(pod(i, 1)) for i in range(pods)]
    raws = [pod_write(i % pods, 1_000_000 + i, ready=bool(i // pods % 2) if real else True)
            for i in range(changes)]
    history = ClusterHistory(initial=ClusterState.build(objects))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, raw in enumerate(raws):
        history.apply(Change((i + 1) * S, ChangeType.MODIFIED, object_from_dict(raw)))
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    writes = [object_from_dict(raw) for raw in raws]
    timed = ClusterHistory(initial=ClusterState.build(objects))
    started = time.perf_counter()
    for i, obj in enumerate(writes):
        timed.apply(Change((i + 1) * S, ChangeType.MODIFIED, obj))
    elapsed = time.perf_counter() - started
    return kept / changes, elapsed / changes * 1e6, len(history)


def node_dict(index: int, version: int, beat: int) -> dict[str, Any]:
    """Node `index` as the API returns it after a status write at simulated second `beat`."""
    name = f"worker-{index:04d}"
    stamp = f"2026-01-01T{beat // 3600 % 24:02d}:{beat // 60 % 60:02d}:{beat % 60:02d}Z"
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name, "uid": f"node-{index}", "resourceVersion": str(version),
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": f"zone-{index % 3}",
                       "node.kubernetes.io/instance-type": "m5"},
        },
        "status": {
            "addresses": [{"type": "InternalIP", "address": f"192.168.{index // 256}.{index % 256}"},
                          {"type": "Hostname", "address": name}],
            "conditions": [{"type": t, "status": "True" if t == "Ready" else "False",
                            "lastHeartbeatTime": stamp} for t in CONDITIONS],
        },
    }


def heartbeats(nodes: int, hours: int, interval: int, max_rss: float) -> None:
    initial = ClusterState.build(object_from_dict(node_dict(i, i, 0)) for i in range(nodes))
    history = ClusterHistory(initial=initial)
    version, started, base = nodes, time.perf_counter(), rss_mib()
    print(f"heartbeats: {nodes} nodes every {interval} s for {hours} h; RSS at start {base:.0f} MiB")
    for second in range(interval, hours * 3600 + 1, interval):
        for i in range(nodes):
            version += 1
            obj = object_from_dict(node_dict(i, version, second))
            history.apply(Change(second * S, ChangeType.MODIFIED, obj))
        if second % 60 == 0 or interval > 60:
            history.prune(second * S)
        if second % 7200 < interval or second == hours * 3600:
            rss = rss_mib()
            print(f"  t={second / 3600:5.1f} h  writes {version - nodes:>9,}  states kept {len(history):>9,}  "
                  f"RSS {rss:7.0f} MiB  ({time.perf_counter() - started:.0f} s)")
            if rss > max_rss:
                print(f"  stopped: RSS above {max_rss:.0f} MiB")
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=2_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--interval", type=int, default=300, help="seconds between a node's status writes")
    parser.add_argument("--max-rss-mib", type=float, default=2048)
    args = parser.parse_args()
    for pods in (200, 2_000):
        for real in (True, False):
            per_change, micros, states = pod_changes(pods, args.changes, real=real)
            kind = "real (readiness flip)" if real else "status-only (resourceVersion)"
            print(f"{pods:>5} pods/ns, {args.changes} {kind:<30} {per_change / 1024:6.2f} KiB/change "
                  f"{micros:7.1f} µs/apply  {states} states")
    heartbeats(args.nodes, args.hours, args.interval, args.max_rss_mib)


if __name__ == "__main__":
    main()
