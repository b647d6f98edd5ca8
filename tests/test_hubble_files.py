"""Flow files: every real fixture parses with the right counts; bad lines are reported, never fatal."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from auditor.errors import FlowParseError, InputError
from auditor.hubble.files import FileFlowSource, iter_responses
from auditor.model.events import LostEvents, NodeStatus
from auditor.model.flows import Flow

FIXTURES = Path(__file__).parent / "fixtures" / "real-flows"
FIXTURE_FILES = sorted(FIXTURES.glob("*.jsonl"))
ICMP_LINE = (FIXTURES / "hubble-otel-basic-sample-400-icmpv4-flows.jsonl").read_text().splitlines()[0]


def raw_flows(path: Path) -> list[dict[str, object]]:
    """The flow objects of a fixture, read with the json module only (W, W- and bare shapes)."""
    objects = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [obj.get("flow", obj) for obj in objects]


def model_flows(*paths: Path) -> tuple[list[Flow], FileFlowSource]:
    source = FileFlowSource(paths)
    events = list(source.events())
    assert all(isinstance(event, Flow) for event in events)
    return [event for event in events if isinstance(event, Flow)], source


def l7_kind(raw: dict[str, object]) -> tuple[str, str] | None:
    l7 = raw.get("l7")
    if not isinstance(l7, dict):
        return None
    record = "dns" if "dns" in l7 else "http" if "http" in l7 else ""
    return record, str(l7.get("type", "UNKNOWN_L7_TYPE"))


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.name)
class TestRealFixtureCounts:
    def test_every_line_parses(self, path: Path) -> None:
        """Every line of the real fixture becomes one flow and no error is recorded."""
        flows, source = model_flows(path)
        assert len(flows) == len(raw_flows(path)) == source.stats.flows
        assert (source.stats.bad_lines, source.stats.errors) == (0, [])

    def test_verdict_counts(self, path: Path) -> None:
        """Counts per verdict equal the counts in the raw JSON."""
        flows, _ = model_flows(path)
        expected = Counter(str(raw.get("verdict", "VERDICT_UNKNOWN")) for raw in raw_flows(path))
        assert Counter(flow.verdict.value for flow in flows) == expected

    def test_event_type_counts(self, path: Path) -> None:
        """Counts per (event type, sub type) and per flow Type equal the raw JSON's."""
        flows, _ = model_flows(path)
        raws = raw_flows(path)
        expected = Counter(
            (int(raw.get("event_type", {}).get("type", 0)), int(raw.get("event_type", {}).get("sub_type", 0)))  # type: ignore[union-attr]
            for raw in raws
        )
        assert Counter((flow.event_type, flow.event_sub_type) for flow in flows) == expected
        assert Counter(flow.flow_type.value for flow in flows) == Counter(
            str(raw.get("Type", "UNKNOWN_TYPE")) for raw in raws
        )

    def test_l7_kind_counts(self, path: Path) -> None:
        """Counts per L7 record kind (DNS/HTTP) and type (request/response) equal the raw JSON's."""
        flows, _ = model_flows(path)
        expected = Counter(kind for raw in raw_flows(path) if (kind := l7_kind(raw)) is not None)
        actual = Counter(
            ("dns" if flow.l7.dns else "http" if flow.l7.http else "", flow.l7.type.value)
            for flow in flows
            if flow.l7 is not None
        )
        assert actual == expected

    def test_dns_rcode_counts(self, path: Path) -> None:
        """Counts per DNS rcode equal the raw JSON's (absent rcode is 0, NOERROR)."""
        flows, _ = model_flows(path)
        expected = Counter(
            int(raw["l7"]["dns"].get("rcode", 0))  # type: ignore[index]
            for raw in raw_flows(path)
            if l7_kind(raw) is not None and l7_kind(raw)[0] == "dns"  # type: ignore[index]
        )
        assert Counter(flow.l7.dns.rcode for flow in flows if flow.l7 and flow.l7.dns) == expected


class TestFixtureTotals:
    def test_totals_across_fixtures(self) -> None:
        """Across all fixtures: 1,452 FORWARDED, 457 REDIRECTED, 2 DROPPED and 102 NXDOMAIN responses."""
        # SOURCES.md's summary says "FORWARDED 1 462"; its own per-file rows (and grep) add up to 1 452.
        flows, _ = model_flows(*FIXTURE_FILES)
        verdicts = Counter(flow.verdict.value for flow in flows)
        assert (verdicts["FORWARDED"], verdicts["REDIRECTED"], verdicts["DROPPED"]) == (1452, 457, 2)
        assert sum(1 for flow in flows if flow.l7 and flow.l7.dns and flow.l7.dns.rcode == 3) == 102


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


MALFORMED = [
    ICMP_LINE.encode(),                                        # 1 good
    b"",                                                       # 2 blank, ignored
    ICMP_LINE.encode()[:120],                                  # 3 truncated JSON
    b'{"flow":{"source":{"identity":"host"}}}',                # 4 wrong type
    b'{"flow":{"verdict":"SOMETHING_NEW","node_name":"n1"}}',  # 5 unknown enum name: kept and reported
    bytes(b for b in range(256) if b != 10),                   # 6 binary blob
    b'"just a string"',                                        # 7 non-object JSON
    b'{"flow":{"l4":{"TCP":{"source_port":-1}}}}',             # 8 out of range
    ICMP_LINE.encode(),                                        # 9 good
]


class TestMalformedInput:
    def test_bad_lines_reported_with_line_numbers(self, tmp_path: Path) -> None:
        """Each bad line is counted and reported as path:line: reason; good lines around them still parse."""
        path = write_lines(tmp_path / "flows.jsonl", MALFORMED)
        flows, source = model_flows(path)
        assert len(flows) == 3  # lines 1, 5 and 9
        assert [error.split(": ")[0] for error in source.stats.errors] == [
            f"{path}:{n}" for n in (3, 4, 5, 6, 7, 8)
        ]
        assert source.stats.bad_lines == 6

    def test_reasons_say_what_is_wrong(self, tmp_path: Path) -> None:
        """The reported reasons name the problem: truncation, field type, enum name, binary, shape, range."""
        path = write_lines(tmp_path / "flows.jsonl", MALFORMED)
        _, source = model_flows(path)
        reasons = [error.split(": ", 1)[1] for error in source.stats.errors]
        assert "truncated" in reasons[0]
        assert reasons[1].startswith("flow.source.identity: expected an integer")
        assert "unknown flow.Verdict name 'SOMETHING_NEW'" in reasons[2]
        assert reasons[3].startswith(("not UTF-8", "invalid JSON"))
        assert reasons[4] == "expected a JSON object, got a string"
        assert "does not fit" in reasons[5]

    def test_unknown_enum_line_keeps_flow(self, tmp_path: Path) -> None:
        """A line with an unknown enum name still yields its flow, verdict UNKNOWN."""
        path = write_lines(tmp_path / "flows.jsonl", [MALFORMED[4]])
        flows, source = model_flows(path)
        assert [(flow.verdict.value, flow.node_name) for flow in flows] == [("VERDICT_UNKNOWN", "n1")]
        assert source.stats.bad_lines == 1

    def test_gzip_detected_by_magic_bytes(self, tmp_path: Path) -> None:
        """A gzip file is read whatever its name, with the same line numbers as the plain file."""
        plain = write_lines(tmp_path / "flows.jsonl", MALFORMED)
        packed = tmp_path / "events.log"
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        plain_flows, plain_source = model_flows(plain)
        packed_flows, packed_source = model_flows(packed)
        assert packed_flows == plain_flows
        assert [e.split(": ", 1)[1] for e in packed_source.stats.errors] == [
            e.split(": ", 1)[1] for e in plain_source.stats.errors
        ]

    def test_corrupt_gzip_reports_and_stops_that_file(self, tmp_path: Path) -> None:
        """A gzip stream cut short reports where it broke; flows before it and later files still count."""
        data = gzip.compress(("\n".join([ICMP_LINE] * 200) + "\n").encode())
        broken = tmp_path / "broken.gz"
        broken.write_bytes(data[: len(data) // 2])
        good = write_lines(tmp_path / "good.jsonl", [ICMP_LINE.encode()])
        flows, source = model_flows(broken, good)
        assert 0 < len(flows) < 201
        assert source.stats.bad_lines == 1
        assert "rest of the file skipped" in source.stats.errors[0]
        assert source.stats.errors[0].startswith(f"{broken}:")

    def test_bare_legacy_flows_file(self, tmp_path: Path) -> None:
        """A file of bare Flow objects (legacy -o json) yields the same flows as the wrapped original."""
        original = FIXTURES / "hubble-otel-basic-sample-400-icmpv4-flows.jsonl"
        bare = tmp_path / "legacy.json"
        bare.write_text("".join(json.dumps(raw) + "\n" for raw in raw_flows(original)))
        assert model_flows(bare)[0] == model_flows(original)[0]

    def test_missing_file_names_it(self, tmp_path: Path) -> None:
        """A missing file raises InputError naming it, before any event is read."""
        with pytest.raises(InputError, match=r"absent\.jsonl: no such file"):
            FileFlowSource([tmp_path / "absent.jsonl"])

    def test_directory_refused(self, tmp_path: Path) -> None:
        """A directory given as a flow file raises InputError naming it."""
        with pytest.raises(InputError, match="is a directory"):
            FileFlowSource([tmp_path])


class TestIterResponses:
    def test_line_numbers_skip_blank_and_bad_lines(self, tmp_path: Path) -> None:
        """iter_responses yields (line number, response) with the file's own numbering."""
        path = write_lines(tmp_path / "flows.jsonl", MALFORMED)
        errors: list[str] = []
        numbers = [number for number, _ in iter_responses(path, errors.append)]
        assert numbers == [1, 5, 9]
        assert len(errors) == 6

    def test_raises_without_error_sink(self, tmp_path: Path) -> None:
        """Without an error callback the first bad line raises FlowParseError with path and line."""
        path = write_lines(tmp_path / "flows.jsonl", MALFORMED)
        with pytest.raises(FlowParseError) as info:
            list(iter_responses(path))
        assert (info.value.path, info.value.line) == (str(path), 3)


class TestSourceBehaviour:
    def test_lost_events_and_node_status_counted(self, tmp_path: Path) -> None:
        """Lost events are summed by source with a gap; node status updates node states."""
        path = write_lines(tmp_path / "flows.jsonl", [
            b'{"lost_events":{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":"5",'
            b'"first":"1970-01-01T00:00:01Z","last":"1970-01-01T00:00:02Z"}}',
            b'{"node_status":{"state_change":"NODE_CONNECTED","node_names":["kind-worker"]}}',
            ICMP_LINE.encode(),
        ])
        source = FileFlowSource([path])
        kinds = [type(event) for event in source.events()]
        assert kinds == [LostEvents, NodeStatus, Flow]
        assert source.stats.lost_events == {"perf_event_ring_buffer": 5}
        assert source.stats.gaps == [(1_000_000_000, 2_000_000_000)]
        assert source.stats.node_states == {"kind-worker": "connected"}
        assert source.stats.last_flow_time_ns == 1636540886095336300

    def test_close_stops_iteration(self) -> None:
        """After close() the events iterator ends at the next line."""
        source = FileFlowSource([FIXTURES / "hubble-otel-basic-sample-400-tcp-flows.jsonl"])
        events = source.events()
        next(events)
        source.close()
        assert list(events) == []
