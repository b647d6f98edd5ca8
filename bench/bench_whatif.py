#!/usr/bin/env python3
"""`auditor whatif` on 1M recorded flows: judging distinct connections, not flows.

    .venv/bin/python bench/bench_whatif.py [--count 1000000] [--file-count 200000]

Stage 1 (the whatif itself): --count flows, made by repeating the demo capture's flows
(auditor/data/demo, synthetic) in memory with shifted times, are folded into connections
(`findings.connections.ConnectionCollector`: classify, de-duplicate, resolve in the state at the
flow's time, key) and judged under the demo manifests and under a proposed change (db-from-api
emptied: api -> db newly denied), plus the posture delta; the time excludes reading files.  A
second run gives the world -> frontend flows --clients distinct source addresses (external clients),
so the capture has that many more distinct connections to judge.
Stage 2: reading a flow file (`FileFlowSource`, light conversion, as `auditor whatif --flows`
reads it), --file-count lines, written to a temp file first; its rate says what a 1M-line file
adds to stage 1.

Prints numbers; asserts nothing.  Measured 2026-12-04 on the shared 2-core machine (three runs):
  stage 1: 1M flows -> 9 connections, fold 1.9-4.8 s, judge + posture 1.2 ms
  stage 1 with 10,000 world clients: 5,008 connections, 2.75 s in all (judging 0.53 s)
  stage 2: 12k-26k lines/s (1M lines: 39-84 s)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from auditor.app.audit import build_history
from auditor.app.demo import demo_files
from auditor.app.whatif import Proposed
from auditor.findings.connections import ConnectionCollector
from auditor.findings.whatif import Change, judge, posture_delta, rows
from auditor.hubble.files import FileFlowSource
from auditor.kube.convert import object_from_dict
from auditor.model.flows import Flow
from auditor.model.k8s import Change as KubeChange
from auditor.model.k8s import ChangeType
from auditor.policy.engine import PolicyEngine

PROPOSED = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "db-from-api", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"], "ingress": []}}


def _flows(count: int, clients: int) -> list[Flow]:
    """The demo flows repeated; with `clients`, the world -> frontend flows come from that many addresses."""
    manifests, path = demo_files()
    del manifests
    base = [e for e in FileFlowSource([path], light=True).events() if isinstance(e, Flow)]
    span = max(f.time_ns for f in base) - min(f.time_ns for f in base) + 1_000_000_000
    out: list[Flow] = []
    rounds = 0
    while len(out) < count:
        shift = rounds * span
        out.extend(_client(dataclasses.replace(f, time_ns=f.time_ns + shift), len(out) + i, clients)
                   for i, f in enumerate(base[: count - len(out)]))
        rounds += 1
    return out


def _client(flow: Flow, index: int, clients: int) -> Flow:
    if not clients or "reserved:world" not in flow.source.labels:
        return flow
    n = index % clients
    return dataclasses.replace(flow, source=dataclasses.replace(flow.source, ip=f"198.18.{n // 256}.{n % 256}"))


def stage_whatif(count: int, clients: int = 0) -> None:
    manifests, _ = demo_files()
    flows = _flows(count, clients)
    start = time.perf_counter()
    history, _, _ = build_history([manifests], None)
    collector = ConnectionCollector(history)
    add = collector.add
    for flow in flows:
        add(flow)
    folded = time.perf_counter()
    proposed = Proposed([KubeChange(0, ChangeType.MODIFIED, object_from_dict(PROPOSED, where="bench"))])
    judged = judge(collector.observations(), PolicyEngine(), proposed)
    found = rows(judged)
    posture_delta(history.latest(), proposed(history.latest()))
    done = time.perf_counter()
    denied = sum(r.flows for r in found if r.change is Change.NEWLY_DENIED)
    label = f" ({clients:,} world clients)" if clients else ""
    print(f"stage 1{label}: {count:,} flows -> {len(judged):,} distinct connections, {len(found)} rows, "
          f"{denied:,} flows newly denied")
    print(f"  fold {folded - start:.2f} s ({count / (folded - start):,.0f} flows/s), judge + posture "
          f"{(done - folded) * 1000:.1f} ms, total {done - start:.2f} s")


def stage_file(count: int) -> None:
    _, path = demo_files()
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as out:
        for i in range(count):
            out.write(lines[i % len(lines)])
        name = out.name
    try:
        start = time.perf_counter()
        read = sum(1 for e in FileFlowSource([name], light=True).events() if isinstance(e, Flow))
        elapsed = time.perf_counter() - start
    finally:
        os.unlink(name)
    print(f"stage 2: read {read:,} flow lines in {elapsed:.2f} s ({read / elapsed:,.0f} lines/s); "
          f"1M lines would add ~{1_000_000 / (read / elapsed):.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--file-count", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=10_000,
                        help="a second stage 1 run with the world -> frontend flows from this many addresses")
    args = parser.parse_args()
    stage_whatif(args.count)
    if args.clients:
        stage_whatif(args.count, args.clients)
    if args.file_count:
        stage_file(args.file_count)


if __name__ == "__main__":
    main()
