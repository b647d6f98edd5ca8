"""`auditor run --workers N`: the analysis split by node across sessions merges to exactly one session's.

The pure part (split the events by node as the pool routes them, one session per worker, merge the
deltas and counters) runs over every fixture, the demo capture and a synthetic million-flow mix; the
daemon part runs real worker processes over the demo and compares the store with one process's.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from auditor.app.audit import build_history
from auditor.app.worker import merge_stats
from auditor.app.workers import merge_deltas
from auditor.exporter.snapshot import MetricsSnapshot
from auditor.findings.session import AnalysisOptions, AnalysisSession
from auditor.hubble.client import HubbleClient
from auditor.hubble.convert import light_event_from_wire
from auditor.hubble.files import FileFlowSource
from auditor.hubble.replay_server import ReplayServer
from auditor.model.delta import AnalysisDelta
from auditor.model.events import FlowEvent, LostEvents, RawFlow
from auditor.model.flows import Flow
from auditor.store import open_store
from tests.daemon_support import build
from tests.hubble_support import fast_config, take
from tests.test_hubble_light import DEMO, REAL, cases
from tests.test_pipeline_equivalence import facts, store_hours

FLUSH_EVERY = 997
"""Events between deltas (a prime, so flushes fall mid-burst)."""


def route(events: list[FlowEvent], workers: int) -> list[list[FlowEvent]]:
    """The pool's routing: a new node goes to the worker with the fewest nodes; lost events to worker 0."""
    parts: list[list[FlowEvent]] = [[] for _ in range(workers)]
    by_node: dict[str, int] = {}
    nodes = [0] * workers
    for event in events:
        if isinstance(event, Flow):
            index = by_node.get(event.node_name)
            if index is None:
                index = by_node[event.node_name] = min(range(workers), key=lambda i: (nodes[i], i))
                nodes[index] += 1
            parts[index].append(event)
        elif isinstance(event, LostEvents):
            parts[0].append(event)
    return parts


def analyse(history: Any, events: list[FlowEvent], flush_every: int = FLUSH_EVERY
            ) -> tuple[list[AnalysisDelta], AnalysisSession]:
    """One session over `events`, a delta every `flush_every` events and at the end."""
    session = AnalysisSession(history, AnalysisOptions(), keep_connections=True)
    deltas = []
    for index, event in enumerate(events, start=1):
        session.handle(event)
        if index % flush_every == 0:
            deltas.append(session.delta())
    deltas.append(session.delta())
    return deltas, session


def whole(deltas: list[AnalysisDelta]) -> AnalysisDelta:
    merged = AnalysisDelta()
    for delta in deltas:
        merged = merged.then(delta)
    return merged


def outputs(delta: AnalysisDelta) -> tuple[object, ...]:
    """What the store is given, order aside: findings' facts, counters, window, gaps, changes, rule hits."""
    return (facts(delta.findings), Counter({(c.hour_ns, c.verdict, c.direction, c.policy): c.count
                                             for c in delta.counts}),
            span(delta.windows), sorted(delta.gaps, key=repr), delta.policy_changes, delta.invalid,
            facts(delta.static or ()), Counter({(h.hour_ns, h.key): h.count for h in delta.rule_hits}),
            {c.key: (c.count, c.first_ns, c.last_ns) for c in delta.connections})


def span(windows: tuple[tuple[int, int], ...]) -> tuple[int, int] | None:
    """The time the windows cover, from first to last (the store keeps their union)."""
    return (min(w[0] for w in windows), max(w[1] for w in windows)) if windows else None


def split_and_merge(history: Any, events: list[FlowEvent], workers: int) -> tuple[AnalysisDelta, Any]:
    """Each worker's deltas (flushed at the same instants as a whole) merged as the pool merges them."""
    parts = route(events, workers)
    sessions = [AnalysisSession(history, AnalysisOptions(), keep_connections=True) for _ in parts]
    positions = [0] * workers
    owner = {id(event): index for index, part in enumerate(parts) for event in part}
    flushes: list[AnalysisDelta] = []
    for count, event in enumerate(events, start=1):
        index = owner.get(id(event))
        if index is not None:
            sessions[index].handle(event)
            positions[index] += 1
        if count % FLUSH_EVERY == 0:
            flushes.append(merge_deltas([session.delta() for session in sessions]))
    flushes.append(merge_deltas([session.delta() for session in sessions]))
    return whole(flushes), merge_stats([session.stats for session in sessions])


def spread_over_nodes(events: list[FlowEvent], nodes: int) -> list[FlowEvent]:
    """The same flows as if `nodes` nodes had observed them, by the second they happened in (so the two
    events of one denied packet, microseconds apart, share a node as they do in a cluster)."""
    return [dataclasses.replace(e, node_name=f"{e.node_name}-{e.time_ns // 10**9 % nodes}")
            if isinstance(e, Flow) else e for e in events]


@pytest.mark.parametrize(("name", "paths", "manifests", "events"), cases(), ids=[case[0] for case in cases()])
def test_split_by_node_merges_to_one_session(name: str, paths: list[Path], manifests: Path,
                                             events: Path | None) -> None:
    """Findings, counters, windows, rule hits and connections of 3 workers equal one session's, per fixture."""
    history, _, _ = build_history([str(manifests)], str(events) if events else None)
    flows: list[FlowEvent] = list(FileFlowSource(paths, light=True).events())
    single, session = analyse(history, flows)
    merged, stats = split_and_merge(history, flows, 3)
    assert outputs(merged) == outputs(whole(single))
    assert stats.snapshot() == session.stats.snapshot()


def test_demo_spread_over_nodes_merges_to_one_session() -> None:
    """The demo capture seen from 8 nodes, split over 2 workers, gives one session's delta and counters."""
    history, _, _ = build_history([str(DEMO / "cluster.yaml")], None)
    flows = spread_over_nodes(list(FileFlowSource([DEMO / "flows.jsonl"], light=True).events()), 8)
    single, session = analyse(history, flows)
    merged, stats = split_and_merge(history, flows, 2)
    assert len({flow.node_name for flow in flows if isinstance(flow, Flow)}) == 8
    assert outputs(merged) == outputs(whole(single))
    assert stats.snapshot() == session.stats.snapshot()


@pytest.mark.slow
def test_million_flow_mix_merges_to_one_session() -> None:
    """A million flows (the demo's mix from 8 nodes, repeated) over 2 workers give one session's totals."""
    history, _, _ = build_history([str(DEMO / "cluster.yaml")], None)
    base = [e for e in spread_over_nodes(list(FileFlowSource([DEMO / "flows.jsonl"], light=True).events()), 8)
            if isinstance(e, Flow)]
    repeats = -(-1_000_000 // len(base))
    flows: list[FlowEvent] = [flow for _ in range(repeats) for flow in base][:1_000_000]
    single, session = analyse(history, flows, flush_every=250_000)
    parts = route(flows, 2)
    deltas = [whole(analyse(history, part, flush_every=250_000)[0]) for part in parts]
    assert outputs(merge_deltas(deltas)) == outputs(whole(single))
    assert sum(session.stats.flows.values()) == 1_000_000


def test_merged_findings_keep_the_earliest_sample() -> None:
    """Findings of one key from two workers merge in first-seen order, whichever worker reports first."""
    history, _, _ = build_history([str(DEMO / "cluster.yaml")], None)
    flows = spread_over_nodes(list(FileFlowSource([DEMO / "flows.jsonl"], light=True).events()), 2)
    deltas = [whole(analyse(history, part)[0]) for part in route(flows, 2)]
    assert facts(merge_deltas(deltas).findings) == facts(merge_deltas(deltas[::-1]).findings)
    single = {f.key: f.sample_flow for f in whole(analyse(history, flows)[0]).findings}
    assert {f.key: f.sample_flow for f in merge_deltas(deltas[::-1]).findings} == single


def test_raw_client_bytes_convert_to_the_light_client_events() -> None:
    """HubbleClient(raw=True) yields RawFlows whose bytes convert to what the light client yields."""
    per_file = [list(FileFlowSource([path], light=True).events()) for path in REAL]
    expected: list[FlowEvent] = list(heapq.merge(*per_file, key=lambda event: event.time_ns))
    with ReplayServer(REAL) as server:
        got = take(HubbleClient(fast_config(server.address), light=True, raw=True), len(expected))
    assert all(type(event) is RawFlow for event in got if not isinstance(event, LostEvents))
    converted = [light_event_from_wire(e.data) if isinstance(e, RawFlow) else e for e in got]
    assert converted == expected
    assert [e.node_name for e in got if isinstance(e, RawFlow)] == [
        e.node_name for e in expected if isinstance(e, Flow)]


def run_daemon(tmp_path: Path, workers: int) -> tuple[str, MetricsSnapshot]:
    """`auditor run --flows` of the demo with `workers` processes, events handed in and flushed every 37."""
    url = f"sqlite:{tmp_path / f'w{workers}.db'}"
    daemon = build(tmp_path, ["--manifests", str(DEMO / "cluster.yaml"), "--flows", str(DEMO / "flows.jsonl"),
                              "--workers", str(workers), "--enforce-node-traffic", "--store", url])
    try:
        assert (daemon.pool is not None) == (workers > 1)
        for index, event in enumerate(daemon.source.events(), start=1):
            daemon.analyzer.handle(event)
            if index % 37 == 0:
                daemon.analyzer.flush()
        daemon.analyzer.flush()
        snapshot = daemon.metrics_snapshot()
    finally:
        if daemon.pool is not None:
            daemon.pool.stop()
        daemon.store.close()
    return url, snapshot


def test_daemon_with_worker_processes_stores_what_one_process_stores(tmp_path: Path) -> None:
    """Real worker processes: the store's findings and hourly counters, and the served flow counters, match."""
    (one, one_metrics), (two, two_metrics) = run_daemon(tmp_path, 1), run_daemon(tmp_path, 2)
    stores = [open_store(url) for url in (one, two)]
    try:
        assert facts(stores[1].findings()) == facts(stores[0].findings())
        assert store_hours(stores[1]) == store_hours(stores[0])
    finally:
        for store in stores:
            store.close()
    assert two_metrics.flows_processed == one_metrics.flows_processed
    assert two_metrics.policy_verdicts == one_metrics.policy_verdicts
