#!/usr/bin/env python3
"""Scrape time of /metrics with about 10,000 series: collector + text encoding, and over HTTP.

    .venv/bin/python bench/bench_scrape.py [--series 10000] [--repeat 30]

Prints the median and p95 of: building the families (collect), generate_latest (collect + text),
the OpenMetrics encoding, and a full HTTP GET of /metrics on loopback (plain and gzip, as
Prometheus asks).
"""

from __future__ import annotations

import argparse
import statistics
import time
import urllib.request
from collections.abc import Callable

from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from auditor.exporter.collector import make_registry
from auditor.exporter.http import MetricsServer
from auditor.exporter.snapshot import POLICY_KINDS, LagHistogram, MetricsSnapshot


def snapshot_with(series: int) -> MetricsSnapshot:
    """Spread `series` over the labelled metrics the way a large cluster would."""
    namespaces = max(1, series // 100)
    per_metric = series // 5
    workloads = [(f"ns-{i % namespaces:03d}", f"workload-{i:05d}") for i in range(per_metric)]
    lag = LagHistogram()
    for i in range(1000):
        lag.observe(i / 100)
    directions = ("ingress", "egress")
    return MetricsSnapshot(
        policy_drops={(ns, wl, "ingress", i % 7 == 0): i for i, (ns, wl) in enumerate(workloads)},
        policy_verdicts={(ns, f"pol-{i:05d}", "egress", "dropped", POLICY_KINDS[i % 3]): i
                         for i, (ns, _) in enumerate(workloads)},
        dns_denials={(ns, wl): i for i, (ns, wl) in enumerate(workloads)},
        health_check_drops={(ns, wl, 8080): i for i, (ns, wl) in enumerate(workloads)},
        open_findings={("unexpected-drop", "high", f"ns-{i:05d}"): 1 for i in range(per_metric)},
        unprotected_pods={(f"ns-{i:03d}", d): 3 for i in range(namespaces) for d in directions},
        namespace_default_deny={(f"ns-{i:03d}", d): True for i in range(namespaces) for d in directions},
        flow_processing_lag=lag.data(),
        hubble_up=True,
    )


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{name:<28} median {statistics.median(samples) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--cap", type=int, default=0, help="max series per metric (default: no overflow)")
    args = parser.parse_args()

    snapshot = snapshot_with(args.series)
    registry = make_registry(lambda: snapshot, max_series_per_metric=args.cap or args.series)
    text = generate_latest(registry)
    exported = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    print(f"series exported: {exported}   exposition size: {len(text) / 1024:.0f} KiB")

    report("collect (families)", timed(lambda: list(registry.collect()), args.repeat))
    report("generate_latest (text)", timed(lambda: generate_latest(registry), args.repeat))
    report("OpenMetrics encoding", timed(lambda: generate_openmetrics(registry), args.repeat))

    server = MetricsServer("127.0.0.1:0", registry=registry)
    server.start()
    try:
        def fetch() -> bytes:
            with urllib.request.urlopen(server.url + "/metrics", timeout=30) as response:
                body: bytes = response.read()
                return body

        def fetch_gzip() -> bytes:
            request = urllib.request.Request(server.url + "/metrics", headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(request, timeout=30) as response:
                body: bytes = response.read()
                return body

        report("HTTP GET /metrics", timed(fetch, args.repeat))
        report("HTTP GET /metrics (gzip)", timed(fetch_gzip, args.repeat))
        print(f"gzipped size: {len(fetch_gzip()) / 1024:.0f} KiB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
