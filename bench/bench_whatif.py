#!/usr/bin/env python3
"""`auditor whatif` on 1M recorded flows: judging distinct connections, not flows.

    .venv/bin/python bench/bench_whatif.py [--count 1000000] [--file-count 1000000] [--shared-count 100000]

Stage 1 (the whatif itself): --count flows, made by repeating the demo capture's flows
(auditor/data/demo, synthetic) in memory with shifted times, are folded into connections
(`findings.connections.ConnectionCollector`: classify, de-duplicate, resolve in the state at the
flow's time, key) and judged under the demo manifests and under a proposed change (db-from-api
emptied: api -> db newly denied), plus the posture delta; the time excludes reading files.  A
second run gives the world -> frontend flows --clients distinct source addresses (external clients),
so the capture has that many more distinct connections to judge.
Stage 2: reading --shared-count flow lines (written to a temp file first) with the shared reader
(`FileFlowSource`, light conversion) and with whatif's `KeyFlowSource` (orjson, JSON straight to the
fields connections read).
Stage 3: `auditor whatif --flows` end to end (`run_whatif`: read + fold + judge) on a --file-count-line
file of the demo capture (every line a policy verdict), and of the real bookinfo captures (traces,
replies, L7; tests/fixtures/real-flows) with the bookinfo manifests as both current and proposed: in
parts on every core (the default, auditor/app/whatif_split.py), then in one process; wall, CPU (here
and in the workers), lines/s, the ratio to issue 16's 10 s target, the load average, and whether both
render the same JSON.

Prints numbers; asserts nothing.  Measured 2026-12-04 on the shared 2-core machine, other sessions'
test suites running (load average 1.5-10):
  stage 1: 1M flows -> 9 connections, fold 2.1-3.2 s, judge + posture 1.2-9 ms
  stage 1 with 10,000 world clients: 5,008 connections, 2.7 s in all (judging 0.53-0.59 s)
  stage 2: shared reader 14.8k-27.6k lines/s, KeyFlowSource 55k-88k lines/s (3.1-4.7x)
  stage 3, one process: 1M demo lines 13.2-17.4 s wall (13.1-13.6 s CPU); 1M real lines 14.5-16.3 s
  (12.8-13.0 s CPU)
  stage 3, in parts (load average 1.2-2.1): 1M demo lines 7.55-8.76 s wall (0.76-0.88x; 0.8 + 13.9-15.2 s
  CPU), 1M real lines 6.32-7.00 s wall (0.63-0.70x; 12.5-13.2 s CPU); identical output
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from auditor.app.audit import build_history
from auditor.app.demo import demo_files
from auditor.app.whatif import Proposed, WhatifOptions, collect_files, run_whatif
from auditor.app.whatif_format import render
from auditor.app.whatif_split import workers_available
from auditor.app.whatif_store import Collected
from auditor.findings.connections import ConnectionCollector
from auditor.findings.whatif import Change, judge, posture_delta, rows
from auditor.hubble.files import FileFlowSource
from auditor.hubble.keyflows import KeyFlowSource
from auditor.kube.convert import object_from_dict
from auditor.model.flows import Flow
from auditor.model.k8s import Change as KubeChange
from auditor.model.k8s import ChangeType
from auditor.policy.engine import PolicyEngine
from auditor.policy.history import ClusterHistory

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


REAL = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "real-flows")
REAL_CAPTURES = tuple(os.path.join(REAL, f"hubble-otel-basic-sample-400-{name}-flows.jsonl")
                      for name in ("l7-redirected", "tcp", "udp"))
BOOKINFO = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "whatif", "bookinfo",
                        "manifests.yaml")


def _write_capture(count: int, paths: tuple[str, ...] = ()) -> str:
    """A flow file of `count` lines of the demo capture, or of `paths` (times repeat: whatif folds by
    connection, not by time)."""
    lines = []
    for path in paths or (demo_files()[1],):
        with open(path, "rb") as handle:
            lines += [line if line.endswith(b"\n") else line + b"\n" for line in handle if line.strip()]
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as out:
        whole, rest = divmod(count, len(lines))
        block = b"".join(lines)
        for _ in range(whole):
            out.write(block)
        out.writelines(lines[:rest])
        return out.name


def _read(source: type[FileFlowSource], name: str) -> tuple[int, float]:
    start = time.perf_counter()
    read = sum(1 for e in source([name], light=True).events() if isinstance(e, Flow))
    return read, time.perf_counter() - start


def stage_file(count: int, shared_count: int) -> None:
    """Reading flow files: the shared reader against whatif's KeyFlowSource, lines per second."""
    name = _write_capture(max(count, shared_count))
    small = _write_capture(shared_count) if shared_count else ""
    try:
        if small:
            read, shared = _read(FileFlowSource, small)
            keyed_read, keyed = _read(KeyFlowSource, small)
            assert keyed_read == read
            print(f"stage 2: {read:,} lines: shared reader {shared:.2f} s ({read / shared:,.0f} lines/s), "
                  f"KeyFlowSource {keyed:.2f} s ({read / keyed:,.0f} lines/s), {shared / keyed:.1f}x")
        manifests, _ = demo_files()
        proposed = _proposed_file()
        _whatif("demo capture (all policy verdicts: every line a decision)", manifests, proposed, name)
        os.unlink(proposed)
    finally:
        os.unlink(name)
        if small:
            os.unlink(small)
    real = _write_capture(count, REAL_CAPTURES)
    try:
        _whatif("real bookinfo captures (traces, replies, L7; proposed: the same policies)", BOOKINFO,
                BOOKINFO, real)
    finally:
        os.unlink(real)


TARGET_S = 10.0
"""Issue 16: 1M recorded flows against a changed policy set in under 10 s on this machine."""


def _whatif(what: str, manifests: str, proposed: str, flows: str) -> None:
    """End to end in parts on every core (the default for a plain file), then in one process."""
    options = WhatifOptions(manifests=(manifests,), proposed=(proposed,), flows=(flows,))

    def one_process(history: ClusterHistory, options: WhatifOptions) -> Collected:
        collector = collect_files(history, options.flows, workers=1)
        return collector.observations(), collector.stats, "flows " + ", ".join(options.flows), ()
    outputs = []
    for label, collect in ((f"in parts, {workers_available()} workers", None), ("one process", one_process)):
        load = os.getloadavg()
        start, cpu, before = time.perf_counter(), time.process_time(), os.times()
        result = run_whatif(options, collect)
        elapsed, used, after = time.perf_counter() - start, time.process_time() - cpu, os.times()
        children = (after.children_user - before.children_user
                    + after.children_system - before.children_system)
        outputs.append(render(result, "json"))
        print(f"stage 3: auditor whatif --flows, {result.stats.flows:,} lines of the {what}, {label}: "
              f"{elapsed:.2f} s wall ({elapsed / TARGET_S:.2f}x the {TARGET_S:.0f} s target), CPU {used:.2f} s "
              f"here + {children:.2f} s in workers, {result.stats.flows / elapsed:,.0f} lines/s; "
              f"{result.distinct} connections, {result.count(Change.NEWLY_DENIED)} newly denied; "
              f"load average before {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    print(f"  identical output in parts and in one process: {outputs[0] == outputs[1]}")


def _proposed_file() -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(PROPOSED, out)
        return out.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--file-count", type=int, default=1_000_000,
                        help="lines of the flow file `auditor whatif --flows` reads end to end (stage 3)")
    parser.add_argument("--shared-count", type=int, default=100_000,
                        help="lines read by both readers for their rates (stage 2)")
    parser.add_argument("--clients", type=int, default=10_000,
                        help="a second stage 1 run with the world -> frontend flows from this many addresses")
    args = parser.parse_args()
    stage_whatif(args.count)
    if args.clients:
        stage_whatif(args.count, args.clients)
    if args.file_count:
        stage_file(args.file_count, args.shared_count)


if __name__ == "__main__":
    main()
