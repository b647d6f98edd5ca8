"""Light conversion: flows the correlator only counts come back reduced, and nothing it computes changes."""

from __future__ import annotations

import dataclasses
import heapq
from pathlib import Path

import pytest

from auditor.app.audit import build_history
from auditor.findings.aggregate import FindingAggregator
from auditor.findings.correlate import Correlator, CorrelatorStats
from auditor.findings.selection import classify
from auditor.hubble.client import HubbleClient
from auditor.hubble.convert import LIGHT_CLASSES, event_from_response, light_event_from_response
from auditor.hubble.files import FileFlowSource, iter_responses
from auditor.hubble.replay_server import ReplayServer
from auditor.model.events import FlowEvent
from auditor.model.findings import Finding
from auditor.model.flows import Endpoint, Flow
from auditor.policy.engine import PolicyEngine
from tests.hubble_support import fast_config, take

ROOT = Path(__file__).parent
REAL = sorted((ROOT / "fixtures" / "real-flows").glob("*.jsonl"))
REAL_MANIFESTS = ROOT / "fixtures" / "scenarios" / "real-dns" / "manifests.yaml"
SCENARIOS = sorted(p for p in (ROOT / "fixtures" / "scenarios").iterdir() if (p / "flows.jsonl").exists())
DEMO = ROOT.parent / "auditor" / "data" / "demo"

HEAD_FIELDS = ("time_ns", "verdict", "uuid", "node_name", "drop_reason", "event_type", "event_sub_type",
               "flow_type", "direction", "is_reply", "protocol", "tcp_flags", "icmp_type", "icmp_code",
               "trace_observation_point", "trace_reason")
"""What a light flow keeps (classification and the correlator's counters read nothing else)."""


def cases() -> list[tuple[str, list[Path], Path, Path | None]]:
    """(name, flow files, manifests, cluster events) of every real fixture, scenario and the demo capture."""
    found: list[tuple[str, list[Path], Path, Path | None]] = [
        (f"real/{path.name}", [path], REAL_MANIFESTS, None) for path in REAL]
    found.append(("real/all", REAL, REAL_MANIFESTS, None))
    for folder in SCENARIOS:
        events = folder / "cluster-events.jsonl"
        found.append((f"scenario/{folder.name}", [folder / "flows.jsonl"], folder / "manifests.yaml",
                      events if events.exists() else None))
    found.append(("demo", [DEMO / "flows.jsonl"], DEMO / "cluster.yaml", None))
    return found


def correlate(paths: list[Path], manifests: Path, events: Path | None, *, light: bool
              ) -> tuple[CorrelatorStats, list[list[Finding]], list[Finding]]:
    """Counters, the findings of each event, and the aggregated findings of one correlator pass."""
    history, _, _ = build_history([str(manifests)], str(events) if events else None)
    correlator = Correlator(history, PolicyEngine())
    aggregator = FindingAggregator()
    per_event = []
    for event in FileFlowSource(paths, light=light).events():
        found = correlator.process(event)
        per_event.append(found)
        for finding in found:
            aggregator.add(finding)
    return correlator.stats, per_event, aggregator.all()


def all_responses() -> list[object]:
    paths = [*REAL, *(folder / "flows.jsonl" for folder in SCENARIOS), DEMO / "flows.jsonl"]
    return [response for path in paths for _line, response in iter_responses(path, lambda _problem: None)]


class TestLightEquivalence:
    @pytest.mark.parametrize(("name", "paths", "manifests", "events"), cases(), ids=[c[0] for c in cases()])
    def test_correlator_counts_and_findings_are_unchanged(self, name: str, paths: list[Path], manifests: Path,
                                                          events: Path | None) -> None:
        """Every counter, every per-flow finding list and the aggregated findings equal the full path's."""
        full = correlate(paths, manifests, events, light=False)
        light = correlate(paths, manifests, events, light=True)
        assert light[0] == full[0]
        assert light[1] == full[1]
        assert light[2] == full[2]

    def test_real_fixtures_have_light_flows(self) -> None:
        """The real captures contain flows that come back light (the equivalence above is not vacuous)."""
        light = list(FileFlowSource(REAL, light=True).events())
        full = list(FileFlowSource(REAL).events())
        assert len(light) == len(full)
        reduced = sum(1 for a, b in zip(light, full, strict=True) if a != b)
        assert 0 < reduced < len(full)


class TestLightFlows:
    def test_only_counted_classes_are_reduced_and_they_keep_their_head(self) -> None:
        """A flow differs from its full conversion only when its class is REPLY/NOT_DECISION, and then only
        in the fields a light flow leaves at their defaults; its class is the full flow's."""
        reduced = 0
        for response in all_responses():
            full, light = event_from_response(response), light_event_from_response(response)
            if not isinstance(full, Flow):
                assert light == full
                continue
            assert isinstance(light, Flow)
            assert classify(light) is classify(full)
            if light == full:
                continue
            reduced += 1
            assert classify(full) in LIGHT_CLASSES
            assert full.l7 is None
            for name in HEAD_FIELDS:
                assert getattr(light, name) == getattr(full, name), name
            defaults = Flow(time_ns=0, verdict=light.verdict, source=Endpoint(), destination=Endpoint())
            for field in dataclasses.fields(Flow):
                if field.name not in (*HEAD_FIELDS, "flow_class"):  # flow_class: the class it computed
                    assert getattr(light, field.name) == getattr(defaults, field.name), field.name
        assert reduced > 100

    def test_decision_flows_are_complete(self) -> None:
        """Flows that can be decisions (and every L7 flow) come back exactly as the full conversion."""
        for response in all_responses():
            full = event_from_response(response)
            if isinstance(full, Flow) and (classify(full) not in LIGHT_CLASSES or full.l7 is not None):
                assert light_event_from_response(response) == full

    def test_live_client_light_equals_file_light(self) -> None:
        """HubbleClient(light=True) over gRPC yields what FileFlowSource(light=True) yields, merged by time."""
        per_file = [list(FileFlowSource([path], light=True).events()) for path in REAL]
        expected: list[FlowEvent] = list(heapq.merge(*per_file, key=lambda event: event.time_ns))
        with ReplayServer(REAL) as server:
            client = HubbleClient(fast_config(server.address), light=True)
            got = take(client, len(expected))
        assert got == expected
