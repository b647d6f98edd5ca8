#!/usr/bin/env python3
"""The PostgreSQL store at scale: flush rate, report reads, N writers flushing at once, bytes per row.

    .venv/bin/python bench/bench_postgres.py [--findings 1000000 --counters 10000000 --writers 1,4,8]

Starts a throwaway PostgreSQL server (tests/pg_support.py: initdb + pg_ctl, fsync off, so the flush
numbers are CPU and lock bound, not disk bound), fills one store to `--findings` finding rows and
`--counters` counter rows with generate_series (the rows look like the daemon's: 100 namespaces, 40
workloads each, 24 * 30 hours), then measures:
  - one writer's flush (`Store.apply`) of a typical delta: 500 findings (half new) and 2,000 counters;
  - N writers (threads, each its own store and pool, each its own writer identity) flushing together;
  - the reads `auditor report --store` does: findings of 24 h, counters grouped by namespace and verdict
    over 24 h and over 30 days, coverage, the snapshot the exporter reads at each scrape;
  - table sizes (pg_total_relation_size: heap + indexes) per row, for docs/deployment.md's sizing.
Nothing is asserted: numbers to compare between commits.

Measured 2026-12-04 on the shared 2-core machine (server and bench writers on the same 2 cores, other
work running: lower bounds), 1,000,000 findings and 9,008,000 counter rows (fill 217 s):
  findings   537 bytes/row, counters 202 bytes/row (heap + primary key + indexes)
  read 1,000 of the 1M findings by time range 38 ms;
  counters by namespace, verdict: 24 h 320 ms, 30 days 1.95 s;
  coverage 30 days 1.4 ms; snapshot (the cluster lease holder's scrape) 158 ms
  flush of 500 findings + 2,000 counters: 1 writer 6.7/s (143 ms each, 16,750 rows/s),
  4 writers 11.4/s together (1.72x), 8 writers 13.4/s together (2.01x, 33,500 rows/s)
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from auditor.model.delta import AnalysisDelta, HourCount
from auditor.model.findings import Finding, FindingKind, Severity
from auditor.store import HOUR_NS, open_store
from tests.pg_support import start_server

T0 = 1_795_000_000 * 1_000_000_000
HOUR0 = T0 - T0 % HOUR_NS


def fill(url: str, findings: int, counters: int) -> float:
    """Bulk rows through SQL (what months of flushes leave behind); seconds taken."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO findings (key, kind, severity, namespace, workload, peer_workload, port, protocol, "
            "direction, pod, peer, message, policies, details, sample_flow, count, first_seen_ns, "
            "last_seen_ns, status, resolved_at_ns) "
            "SELECT 'policy-drop|ns-' || (i %% 100) || '|wl-' || (i %% 4000) || '|peer-' || i "
            "|| '|8080|TCP|ingress', "
            "'policy-drop', 'medium', 'ns-' || (i %% 100), 'wl-' || (i %% 4000), 'peer-' || i, 8080, 'TCP', "
            "'ingress', 'pod-' || i, 'peer-pod-' || i, 'peer-' || i || ' cannot reach wl on 8080/TCP: no "
            "ingress rule of ns/default-deny allows it.', '[\"ns/default-deny@1000\"]', '[]', "
            "'{\"time\":\"2026-12-04T00:00:00Z\",\"verdict\":\"DROPPED\"}', 1 + i %% 50, %s, %s + i, 'open', 0 "
            "FROM generate_series(1, %s) AS i", (T0, T0, findings))
        conn.execute(
            "INSERT INTO counters (hour_ns, writer, namespace, workload, verdict, direction, policy, count) "
            "SELECT %s + (i / 2000 %% 720) * %s, 'node-' || (i %% 7), 'ns-' || (i %% 100), "
            "'wl-' || (i %% 40), "
            "CASE WHEN i %% 3 = 0 THEN 'DROPPED' ELSE 'FORWARDED' END, "
            "CASE WHEN i %% 2 = 0 THEN 'ingress' ELSE 'egress' END, "
            "'ns-' || (i %% 100) || '/allow-' || (i %% 9), "
            "1 + i %% 1000 FROM generate_series(1, %s) AS i ON CONFLICT DO NOTHING",
            (HOUR0 - 720 * HOUR_NS, HOUR_NS, counters))
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def delta(writer: int, round_: int, size: int = 500, counts: int = 2000) -> AnalysisDelta:
    """A typical flush: `size` findings (half of them keys seen before) and `counts` counter rows."""
    findings = tuple(
        Finding(kind=FindingKind.POLICY_DROP, severity=Severity.MEDIUM, namespace=f"ns-{i % 100}",
                workload=f"wl-{i % 4000}", message="m",
                peer_workload=f"w{writer}-r{round_ if i % 2 else 0}-{i}",
                port=8080, protocol="TCP", direction="ingress", count=1, first_seen_ns=T0 + i,
                last_seen_ns=T0 + i)
        for i in range(size))
    rows = tuple(HourCount(hour_ns=HOUR0 + (i % 2) * HOUR_NS, verdict="DROPPED" if i % 3 else "ALLOWED",
                           direction="ingress" if i % 2 else "egress", count=1,
                           policy=(f"ns-{i % 100}", f"allow-{i}", "NetworkPolicy")) for i in range(counts))
    return AnalysisDelta(findings=findings, counts=rows, windows=((T0, T0 + 5_000_000_000),))


def flush_rate(url: str, writers: int, rounds: int) -> tuple[float, float]:
    """Flushes per second over all writers, and the mean flush time (ms)."""
    stores = [open_store(url) for _ in range(writers)]
    for n, store in enumerate(stores):
        store.claim_writer(f"bench-{writers}-{n}")
    times: list[float] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        for r in range(rounds):
            d = delta(n, r)
            started = time.perf_counter()
            stores[n].apply(d)
            with lock:
                times.append(time.perf_counter() - started)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    for store in stores:
        store.release_writer()
        store.close()
    return writers * rounds / wall, 1000 * sum(times) / len(times)


def reads(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with open_store(url) as store:
        for name, call in (
            ("1,000 of 1M findings by time",
             lambda: store.findings(since_ns=T0 + 999_000, until_ns=T0 + 2 * 10**6)),
            ("counters 24 h by ns, verdict", lambda: store.counts(HOUR0 - 24 * HOUR_NS, HOUR0 + HOUR_NS)),
            ("counters 30 d by ns, verdict", lambda: store.counts(HOUR0 - 720 * HOUR_NS, HOUR0 + HOUR_NS)),
            ("coverage 30 d", lambda: store.coverage(HOUR0 - 720 * HOUR_NS, HOUR0 + HOUR_NS)),
            ("snapshot (each scrape)", store.snapshot),
        ):
            started = time.perf_counter()
            call()
            out[name] = 1000 * (time.perf_counter() - started)
    return out


def sizes(url: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(url) as conn:
        return {table: (int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]),  # type: ignore[index]
                        int(conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0]))  # type: ignore[index]
                for table in ("findings", "counters")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--counters", type=int, default=10_000_000)
    parser.add_argument("--writers", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    server = start_server()
    try:
        url = server.url_for(server.new_schema())
        open_store(url).close()
        seconds = fill(url, args.findings, args.counters)
        print(f"fill: {args.findings:,} findings, {args.counters:,} counters in {seconds:.0f} s")
        for table, (rows, size) in sizes(url).items():
            print(f"  {table:9} {rows:>11,} rows  {size / 2**20:8.0f} MiB  {size / max(rows, 1):6.0f} B/row")
        for name, ms in reads(url).items():
            print(f"read  {name:30} {ms:9.1f} ms")
        base = None
        for writers in (int(w) for w in args.writers.split(",")):
            rate, mean = flush_rate(url, writers, args.rounds)
            base = base or rate
            print(f"flush {writers} writer(s): {rate:6.1f} flushes/s over all, {mean:6.1f} ms each "
                  f"({rate / base:.2f}x one writer); 500 findings + 2,000 counters per flush")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
