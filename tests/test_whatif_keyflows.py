"""`KeyFlowSource` (whatif's fast flow reader) against the shared reader: the same flows, stats and errors.

Every flow file of tests/fixtures and the demo capture, plus a file of odd lines that must take the
shared way; and whatif's connections from each whatif scenario read either way.  The split path
(files read in parts by worker processes, merged) against one process: every fixture, the demo
capture cut every few lines, windows, and the whatif output of every scenario.
"""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest

from auditor.app.audit import build_history
from auditor.app.whatif import WhatifOptions, collect_files, run_whatif
from auditor.app.whatif_format import render
from auditor.app.whatif_split import collect_split, line_ranges, range_lines, splittable
from auditor.app.whatif_store import Collected
from auditor.findings.connections import ConnectionCollector
from auditor.hubble.files import FileFlowSource
from auditor.hubble.keyflows import KeyFlowSource
from auditor.model.events import FlowEvent
from auditor.model.flowclass import FlowClass, classify
from auditor.model.flows import Flow
from auditor.policy.history import ClusterHistory

ROOT = Path(__file__).parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
FLOW_FILES = sorted(str(p.relative_to(ROOT)) for p in FIXTURES.rglob("*.jsonl")
                    if "cluster-events" not in str(p))
FLOW_FILES.append("auditor/data/demo/flows.jsonl")
HEAD = ("time_ns", "verdict", "uuid", "node_name", "drop_reason", "event_type", "event_sub_type", "flow_type",
        "direction", "is_reply", "protocol", "tcp_flags", "icmp_type", "icmp_code", "trace_observation_point",
        "trace_reason", "l7")
JUDGED = (FlowClass.ALLOWED, FlowClass.POLICY_DENIED, FlowClass.AUDITED)



def _view(event: FlowEvent) -> object:
    """What connections read of an event: the classifying fields, and endpoints of a judged flow."""
    if not isinstance(event, Flow):
        return event
    kind = event.flow_class or classify(event)
    sides: tuple[object, ...] = ()
    if kind in JUDGED:
        sides = tuple((e.ip, e.port, e.identity, e.namespace, e.pod_name, e.labels, e.names)
                      for e in (event.source, event.destination))
    return (*(getattr(event, name) for name in HEAD), kind, sides)


def _both(paths: list[str]) -> tuple[tuple[list[object], object], tuple[list[object], object]]:
    shared, keyed = FileFlowSource(paths, light=True), KeyFlowSource(paths, light=True)
    shared_events, keyed_events = [_view(e) for e in shared.events()], [_view(e) for e in keyed.events()]
    return (shared_events, shared.stats), (keyed_events, keyed.stats)


@pytest.mark.parametrize("path", FLOW_FILES)
def test_every_fixture_reads_the_same(path: str) -> None:
    """Flow by flow, what connections read is the shared reader's, and so are the source's stats."""
    shared, keyed = _both([str(ROOT / path)])
    assert keyed == shared


ODD_LINES = [
    '{"flow":{"time":"2026-11-20T10:00:00Z","verdict":"FORWARDED","nodeName":"camel"}}',
    '{"flow":{"time":"2026-11-20T10:00:00.5+01:00","verdict":"DROPPED","drop_reason_desc":"POLICY_DENIED",'
    '"IP":{"source":"10.0.0.1","destination":"10.0.0.2"},"l4":{"TCP":{"destination_port":"80"}},'
    '"event_type":{"type":1}}}',
    '{"flow":{"verdict":"NOT_A_VERDICT","time":"2026-11-20T10:00:01Z"}}',
    '{"flow":{"verdict":2,"time":"2026-11-20T10:00:01Z","event_type":{"type":5}}}',
    '{"flow":{"verdict":null,"uuid":null,"time":"2026-11-20T10:00:02Z"}}',
    '{"flow":{"time":"2026-11-20T10:00:03Z","future_field":{"x":1}}}',
    '{"flow":{"time":"2026-11-20T10:00:03Z","l4":{"TCP":{},"UDP":{}}}}',
    '{"lost_events":{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":3},"time":"2026-11-20T10:00:04Z"}',
    '{"time":"2026-11-20T10:00:05Z","verdict":"FORWARDED","event_type":{"type":4},"node_name":"legacy"}',
    '{"flow":{"time":"2026-11-20T10:00:06Z"',
    '[1, 2]',
    '{"flow":{"time":"2026-11-20T10:00:07.123456789Z","verdict":"FORWARDED","event_type":{"type":4},'
    '"is_reply":"no"}}',
    '{"flow":{"time":"2026-11-20T10:00:08.123456789Z","verdict":"FORWARDED","event_type":{"type":5},'
    '"source":{"labels":["k8s:app=a",7]},"IP":{"source":"10.0.0.9","destination":"10.0.0.8"}}}',
    '{"flow":{"time":"2026-11-20T10:00:09.000000001Z","verdict":"FORWARDED","event_type":{"type":5},'
    '"source_names":"not-a-list","IP":{"source":"10.0.0.9","destination":"10.0.0.8"}}}',
    '{"flow":{"time":"2026-11-20T10:00:10Z","l7":{"type":"REQUEST","dns":{"query":"a."},"http":{"method":"GET"}}}}',
    '{"flow":{"time":"2026-11-20T10:00:11Z","l7":{"type":"RESPONSE","latency_ns":"-5"}}}',
    '{"flow":{"time":"2026-11-20T10:00:12Z","l4":{"UDP":{"destination_port":4294967296}}}}',
    '{"flow":{"time":"2026-11-20T10:00:13Z","event_type":{"type":4,"match_sub_type":true},"drop_reason":1}}',
    '{"flow":{"time":"2026-11-20T10:00:14Z","event_type":{"type":4,"subType":3},"drop_reason":true}}',
]


def test_odd_lines_take_the_shared_way(tmp_path: Path) -> None:
    """camelCase, strings for numbers, unknown enums, nulls, new fields, lost events, bare flows and
    broken JSON give the shared reader's flows, notes and errors."""
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(ODD_LINES) + "\n")
    shared, keyed = _both([str(path)])
    assert shared[1].errors  # type: ignore[attr-defined]
    assert keyed == shared


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (FIXTURES / "whatif").glob("*/flows.jsonl")))
def test_whatif_connections_are_the_same(name: str) -> None:
    """The observations whatif judges, and its counts, are those of the shared reader's flows."""
    folder = FIXTURES / "whatif" / name
    history, _, _ = build_history([str(folder / "manifests.yaml")], None)
    keyed = collect_files(history, [str(folder / "flows.jsonl")])
    shared = ConnectionCollector(history)
    shared.add_all(FileFlowSource([str(folder / "flows.jsonl")], light=True).events())

    def observations(collector: ConnectionCollector) -> list[object]:
        return [(o.key, o.state.revision, o.src, o.dst, o.port, o.protocol, o.observed, o.count, o.first_ns,
                 o.last_ns, o.sample) for o in collector.observations()]
    assert observations(keyed) == observations(shared)
    assert keyed.stats == shared.stats


# The split path (auditor/app/whatif_split.py): parts read in worker processes, merged exactly.

DEMO_MANIFESTS = ROOT / "auditor" / "data" / "demo" / "cluster.yaml"
DB_EMPTIED = ('{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",'
              ' "metadata": {"name": "db-from-api", "namespace": "shop"},'
              ' "spec": {"podSelector": {"matchLabels": {"app": "db"}},'
              ' "policyTypes": ["Ingress"], "ingress": []}}')


def _observed(collector: ConnectionCollector) -> tuple[list[object], object]:
    return [(o.key, o.state.revision, o.src, o.dst, o.port, o.protocol, o.observed, o.count, o.first_ns,
             o.last_ns, o.sample) for o in collector.observations()], collector.stats


def _manifests_for(path: Path) -> str:
    own = path.parent / "manifests.yaml"
    return str(own if own.is_file() else DEMO_MANIFESTS)


@pytest.mark.parametrize("path", FLOW_FILES)
def test_every_fixture_folds_the_same_in_parts(path: str) -> None:
    """Cut into many parts read by two processes, every fixture gives the one-process observations and stats."""
    flows = ROOT / path
    history, _, _ = build_history([_manifests_for(flows)], None)
    single = collect_files(history, [str(flows)], workers=1)
    split = collect_split(history, [str(flows)], 0, 2**63, workers=2, parts_per_worker=8)
    assert _observed(split) == _observed(single)


def test_cuts_between_every_few_lines_keep_drop_pairs(tmp_path: Path) -> None:
    """The demo capture cut every few lines (denied packets' verdict and drop events split apart) and read
    twice over as two files folds the same: the de-duplication runs over the parts in file order."""
    demo = ROOT / "auditor" / "data" / "demo" / "flows.jsonl"
    history, _, _ = build_history([str(DEMO_MANIFESTS)], None)
    paths = [str(demo), str(demo)]
    single = collect_files(history, paths, workers=1)
    split = collect_split(history, paths, 0, 2**63, workers=2, parts_per_worker=150)
    assert single.stats.deduplicated
    assert _observed(split) == _observed(single)


def test_window_applies_in_parts() -> None:
    """--from/--to select the same flows in parts."""
    demo = str(ROOT / "auditor" / "data" / "demo" / "flows.jsonl")
    history, _, _ = build_history([str(DEMO_MANIFESTS)], None)
    whole = collect_files(history, [demo], workers=1)
    lo, hi = whole.stats.first_ns + 60 * 10**9, whole.stats.last_ns - 60 * 10**9
    single = collect_files(history, [demo], lo, hi, workers=1)
    split = collect_files(history, [demo], lo, hi, workers=2, min_split_bytes=0)
    assert 0 < single.stats.flows < whole.stats.flows
    assert _observed(split) == _observed(single)


def test_a_threaded_process_reads_its_parts_without_forking(monkeypatch: pytest.MonkeyPatch) -> None:
    """With other threads running (a fork could inherit their held locks), parts are read in-process."""

    def no_fork(method: str) -> None:
        raise AssertionError(f"a {method} pool was started in a threaded process")

    monkeypatch.setattr("multiprocessing.get_context", no_fork)
    demo = str(ROOT / "auditor" / "data" / "demo" / "flows.jsonl")
    history, _, _ = build_history([str(DEMO_MANIFESTS)], None)
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        split = collect_split(history, [demo], 0, 2**63, workers=2, parts_per_worker=4)
    finally:
        release.set()
        other.join()
    assert _observed(split) == _observed(collect_files(history, [demo], workers=1))


def _scenarios(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(manifests, proposed, flows) of every whatif scenario and of the demo capture."""
    proposed = tmp_path / "db-emptied.json"
    proposed.write_text(DB_EMPTIED)
    found = [(str(DEMO_MANIFESTS), str(proposed), str(ROOT / "auditor" / "data" / "demo" / "flows.jsonl"))]
    for folder in sorted((FIXTURES / "whatif").glob("*/flows.jsonl")):
        found.append((str(folder.parent / "manifests.yaml"), str(folder.parent / "proposed.yaml"), str(folder)))
    return found


def test_whatif_output_is_the_same_in_parts(tmp_path: Path) -> None:
    """`auditor whatif` renders the same table, JSON and Markdown for every scenario read in parts."""
    for manifests, proposed, flows in _scenarios(tmp_path):
        options = WhatifOptions(manifests=(manifests,), proposed=(proposed,), flows=(flows,))

        def split(history: ClusterHistory, options: WhatifOptions) -> Collected:
            collector = collect_files(history, options.flows, workers=2, min_split_bytes=0)
            return collector.observations(), collector.stats, "flows " + ", ".join(options.flows), ()
        single, parts = run_whatif(options), run_whatif(options, split)
        assert single.judged
        assert single.stats.flows == parts.stats.flows
        for fmt in ("table", "json", "markdown"):
            assert render(parts, fmt) == render(single, fmt), (flows, fmt)


def test_gzip_stdin_and_small_files_stay_in_one_process(tmp_path: Path) -> None:
    """Only plain regular files of the size threshold are split."""
    demo = ROOT / "auditor" / "data" / "demo" / "flows.jsonl"
    packed = tmp_path / "flows.jsonl"
    packed.write_bytes(gzip.compress(demo.read_bytes()))
    assert splittable([str(demo)], min_bytes=0)
    assert not splittable([str(packed)], min_bytes=0)
    assert not splittable(["-"], min_bytes=0)
    assert not splittable([str(demo)], min_bytes=demo.stat().st_size + 1)


def test_ranges_start_at_line_starts(tmp_path: Path) -> None:
    """Byte ranges cover the file, each starting at a line start, and read back every line once."""
    path = tmp_path / "lines.jsonl"
    lines = [b"x" * (i % 7) + b"%d" % i for i in range(200)]
    path.write_bytes(b"\n".join(lines) + b"\n\n")
    ranges = line_ranges(str(path), 9)
    assert ranges[0][0] == 0
    assert ranges[-1][1] == path.stat().st_size
    assert len(ranges) == 9
    assert [line for start, end in ranges for line in range_lines(str(path), start, end)] == lines


def test_ties_keep_the_order_of_first_flows(tmp_path: Path) -> None:
    """A denied and an allowed observation of one connection first seen at the same time come out in the
    order of their first lines, as in one process, although parts fold denied flows last."""
    demo = ROOT / "auditor" / "data" / "demo" / "flows.jsonl"
    denied = next(json.loads(line) for line in demo.read_text().splitlines() if '"DROPPED"' in line)
    allowed = json.loads(json.dumps(denied))
    allowed["flow"].update(verdict="FORWARDED", uuid="allowed-twin")
    for name in ("drop_reason", "drop_reason_desc"):
        allowed["flow"].pop(name)
    path = tmp_path / "ties.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in (denied, allowed) * 3) + "\n")
    history, _, _ = build_history([str(DEMO_MANIFESTS)], None)
    single = collect_files(history, [str(path)], workers=1)
    split = collect_split(history, [str(path)], 0, 2**63, workers=2, parts_per_worker=1)
    assert [(o.key, o.first_ns, o.observed) for o in single.observations()][:2] == [
        (single.observations()[0].key, single.observations()[0].first_ns, "denied"),
        (single.observations()[0].key, single.observations()[0].first_ns, "allowed")]
    assert _observed(split) == _observed(single)
