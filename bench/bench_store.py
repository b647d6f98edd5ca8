"""Store throughput on a real SQLite file: finding upserts, counter writes, snapshot and report reads.

    .venv/bin/python bench/bench_store.py [--findings 100000] [--keys 5000] [--batch 500] [--dir DIR]

Prints one line per measurement.  Nothing is asserted: these are numbers to compare between commits.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auditor.model.findings import Finding, FindingKind, Severity
from auditor.store import HOUR_NS, CounterRow, Store, open_store

T0 = 1_700_000_000_000_000_000
T = TypeVar("T")
KINDS = [k for k in FindingKind if not k.is_static]


def _findings(total: int, keys: int, seed: int = 7) -> Iterator[Finding]:
    rng = random.Random(seed)
    for i in range(total):
        k = rng.randrange(keys)
        t = T0 + i * 1_000_000
        yield Finding(
            kind=KINDS[k % len(KINDS)],
            severity=Severity.MEDIUM,
            namespace=f"ns-{k % 50}",
            workload=f"wl-{k % 400}",
            message=f"wl-{k % 400} cannot reach peer on port {k % 1000}: no rule allows it.",
            pod=f"wl-{k % 400}-abc12",
            peer=f"ns-{k % 7}/peer-{k % 13}",
            peer_workload=f"ns-{k % 7}/peer-{k}",
            port=k % 1000,
            protocol="TCP",
            direction="ingress" if k % 2 else "egress",
            policies=(f"ns-{k % 50}/deny-all@{k % 3}",),
            first_seen_ns=t,
            last_seen_ns=t,
            sample_flow=f"uuid-{i}",
            details=(("closest_miss", f"ns-{k % 50}/allow-web rule 0"),),
        )


def _counters(total: int, seed: int = 11) -> Iterator[CounterRow]:
    rng = random.Random(seed)
    for _ in range(total):
        n = rng.randrange(2000)
        yield CounterRow(
            hour_ns=T0 + rng.randrange(24 * 7) * HOUR_NS,
            namespace=f"ns-{n % 50}",
            workload=f"wl-{n % 400}",
            verdict="DROPPED" if n % 3 else "FORWARDED",
            direction="ingress" if n % 2 else "egress",
            policy=f"ns-{n % 50}/p-{n % 5}",
            count=1 + n % 10,
        )


def _batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _timed(label: str, count: int, unit: str, action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    elapsed = time.perf_counter() - start
    rate = count / elapsed if elapsed else float("inf")
    print(f"{label:<44} {count:>9,} {unit:<10} {elapsed:8.3f} s  {rate:>12,.0f} {unit}/s")
    return elapsed


def run(store: Store, args: argparse.Namespace) -> None:
    finding_batches = list(_batched(_findings(args.findings, args.keys), args.batch))
    new: list[int] = []
    _timed(
        f"upsert findings ({args.keys:,} keys, batch {args.batch})",
        args.findings,
        "findings",
        lambda: new.extend(len(store.upsert_findings(b)) for b in finding_batches),
    )
    print(f"{'  new findings reported':<44} {sum(new):>9,}")
    counter_batches = list(_batched(_counters(args.counters), 1000))
    _timed(
        "add counters (batch 1000)",
        args.counters,
        "rows",
        lambda: [store.add_counts(b) for b in counter_batches],
    )
    _timed("snapshot x100", 100, "snapshots", lambda: [store.snapshot() for _ in range(100)])
    _timed("findings() all x10", 10, "queries", lambda: [store.findings() for _ in range(10)])
    _timed(
        "counts() by namespace,policy x100",
        100,
        "queries",
        lambda: [store.counts(T0, T0 + 8 * 24 * HOUR_NS, ("namespace", "policy")) for _ in range(100)],
    )
    _timed("record_window x10000 (contiguous)", 10_000, "windows", lambda: _windows(store, 10_000))
    _timed("flush (WAL checkpoint)", 1, "flushes", store.flush)


def _windows(store: Store, count: int) -> None:
    for i in range(count):
        store.record_window(T0 + i * 1_000_000_000, T0 + (i + 1) * 1_000_000_000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--counters", type=int, default=100_000)
    parser.add_argument("--dir", default=None, help="directory for the database (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "bench.db")
        with open_store(f"sqlite:///{path}") as store:
            run(store, args)
        size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
        print(f"{'database size (db + wal)':<44} {size / 1e6:>9.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
